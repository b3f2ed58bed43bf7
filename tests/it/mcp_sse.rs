//! MCP over the legacy HTTP+SSE transport (`GET /sse` + `POST /message?sessionId=…`), driven
//! by a raw client so every status and event is visible: the 2024-11-05 handshake, tools,
//! resources and log notifications; per-request auth and the binding of a stream to the
//! session that opened it; Host/Origin checks; limits.

use crate::harness::{Daemon, Opts, http};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

/// A raw `/sse` stream: the endpoint it announced and the events that follow.
pub struct SseStream {
    res: reqwest::Response,
    buf: String,
    pub endpoint: String,
}

impl SseStream {
    /// Opens `/sse` with `headers`; on a refusal, the status and JSON body.
    pub async fn open(url: &str, headers: &[(&str, String)]) -> Result<Self, (u16, Value)> {
        let mut req = http().get(format!("{url}/sse")).header("accept", "text/event-stream");
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        // No overall timeout on a stream: each read below has its own.
        let res = req.timeout(Duration::from_secs(3600)).send().await.unwrap();
        let status = res.status().as_u16();
        if status != 200 {
            let body = res.json().await.unwrap_or(Value::Null);
            return Err((status, body));
        }
        let mut stream = Self {
            res,
            buf: String::new(),
            endpoint: String::new(),
        };
        let (event, data) = stream.next_event().await.expect("endpoint event");
        assert_eq!(event, "endpoint");
        assert!(data.starts_with("/message?sessionId="), "{data}");
        stream.endpoint = data;
        Ok(stream)
    }

    pub async fn bearer(url: &str, token: &str) -> Self {
        Self::open(url, &[("authorization", format!("Bearer {token}"))])
            .await
            .unwrap_or_else(|e| panic!("opening /sse: {e:?}"))
    }

    /// The next `(event, data)`, skipping comments (keep-alives); `None` when the stream ends.
    pub async fn next_event(&mut self) -> Option<(String, String)> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut event, mut data) = ("message".to_owned(), Vec::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.trim_start().to_owned());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                return Some((event, data.join("\n")));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.res.chunk())
                .await
                .expect("no SSE event within 30 s")
                .ok()??;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next JSON-RPC message on the stream.
    pub async fn next_message(&mut self) -> Value {
        let (event, data) = self.next_event().await.expect("stream ended");
        assert_eq!(event, "message");
        serde_json::from_str(&data).unwrap()
    }

    /// Waits for the response to request `id`, collecting the notifications before it.
    pub async fn response(&mut self, id: u64) -> (Value, Vec<Value>) {
        let mut notes = Vec::new();
        loop {
            let m = self.next_message().await;
            if m["id"] == id {
                return (m, notes);
            }
            notes.push(m);
        }
    }

    /// POSTs `body` to this stream's endpoint with `headers`; status and body text.
    pub async fn post(&self, url: &str, headers: &[(&str, String)], body: &Value) -> (u16, String) {
        post_raw(url, &self.endpoint, headers, body.to_string().into_bytes()).await
    }
}

pub async fn post_raw(url: &str, endpoint: &str, headers: &[(&str, String)], body: Vec<u8>) -> (u16, String) {
    let mut req = http()
        .post(format!("{url}{endpoint}"))
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

pub fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

pub fn initialize(id: u64, version: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {}, "clientInfo": { "name": "bursar-test", "version": "0" } } })
}

pub fn request(id: u64, method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })
}

/// Opens a stream for `token` and completes the 2024-11-05 handshake.
pub async fn ready_stream(daemon: &Daemon, token: &str) -> SseStream {
    let mut sse = SseStream::bearer(&daemon.url, token).await;
    let auth = bearer(token);
    assert_eq!(sse.post(&daemon.url, &auth, &initialize(1, "2024-11-05")).await.0, 202);
    let (init, _) = sse.response(1).await;
    assert_eq!(init["result"]["protocolVersion"], "2024-11-05", "{init}");
    let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    assert_eq!(sse.post(&daemon.url, &auth, &initialized).await.0, 202);
    sse
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_sse_serves_tools_resources_and_log_notifications_at_2024_11_05() {
    let daemon = Daemon::start(Opts::default()).await;
    let (wallet, token) = daemon.wallet_and_token().await;
    let auth = bearer(&token);
    let mut sse = SseStream::bearer(&daemon.url, &token).await;
    assert_eq!(sse.post(&daemon.url, &auth, &initialize(1, "2024-11-05")).await.0, 202);
    let (init, _) = sse.response(1).await;
    let result = &init["result"];
    assert_eq!(result["protocolVersion"], "2024-11-05", "{init}");
    for cap in ["tools", "logging", "resources"] {
        assert!(result["capabilities"][cap].is_object(), "{cap} not advertised: {init}");
    }
    let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    assert_eq!(sse.post(&daemon.url, &auth, &initialized).await.0, 202);

    sse.post(&daemon.url, &auth, &request(2, "tools/list", json!({}))).await;
    let (tools, _) = sse.response(2).await;
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"transfer") && names.contains(&"get_balance"),
        "{names:?}"
    );

    // Logging: after setLevel, each REST call a tool makes is reported (and nothing else).
    sse.post(
        &daemon.url,
        &auth,
        &request(3, "logging/setLevel", json!({ "level": "debug" })),
    )
    .await;
    let (set, _) = sse.response(3).await;
    assert_eq!(set["result"], json!({}), "{set}");
    let call = json!({ "name": "get_address", "arguments": {} });
    sse.post(&daemon.url, &auth, &request(4, "tools/call", call)).await;
    let (addr, notes) = sse.response(4).await;
    assert_eq!(
        addr["result"]["structuredContent"]["address"], wallet["address"],
        "{addr}"
    );
    let note = notes
        .iter()
        .find(|n| n["method"] == "notifications/message")
        .unwrap_or_else(|| panic!("no log notification: {notes:?}"));
    assert_eq!(note["params"]["level"], "debug");
    assert_eq!(note["params"]["data"]["request"], "GET /v1/wallet/address");
    assert_eq!(note["params"]["data"]["status"], 200);

    // Resources: the same REST calls as the tools.
    sse.post(&daemon.url, &auth, &request(5, "resources/list", json!({})))
        .await;
    let (list, _) = sse.response(5).await;
    let uris: Vec<&str> = list["result"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert_eq!(uris, ["bursar://wallet/address", "bursar://wallet/balance"]);
    let read = json!({ "uri": "bursar://wallet/address" });
    sse.post(&daemon.url, &auth, &request(6, "resources/read", read)).await;
    let (read, _) = sse.response(6).await;
    let content = &read["result"]["contents"][0];
    assert_eq!(content["mimeType"], "application/json", "{read}");
    let parsed: Value = serde_json::from_str(content["text"].as_str().unwrap()).unwrap();
    assert_eq!(parsed["address"], wallet["address"]);
    let unknown = json!({ "uri": "bursar://wallet/keys" });
    sse.post(&daemon.url, &auth, &request(7, "resources/read", unknown))
        .await;
    let (unknown, _) = sse.response(7).await;
    assert_eq!(unknown["error"]["code"], -32002, "{unknown}");

    // Unknown tool and wrong argument types: errors on the stream, the stream lives on.
    let bogus = json!({ "name": "export_private_key", "arguments": {} });
    sse.post(&daemon.url, &auth, &request(8, "tools/call", bogus)).await;
    let (bogus, _) = sse.response(8).await;
    assert!(
        bogus["error"].is_object() || bogus["result"]["isError"] == true,
        "{bogus}"
    );
    let typed = json!({ "name": "list_transactions", "arguments": { "limit": "many" } });
    sse.post(&daemon.url, &auth, &request(9, "tools/call", typed)).await;
    let (typed, _) = sse.response(9).await;
    assert!(
        typed["error"].is_object() || typed["result"]["isError"] == true,
        "{typed}"
    );
    sse.post(&daemon.url, &auth, &request(10, "ping", json!({}))).await;
    assert_eq!(sse.response(10).await.0["result"], json!({}));
    assert!(!daemon.logs().contains(&token), "the token must never be logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_sse_rejects_bad_tokens_foreign_sessions_hosts_and_origins() {
    let daemon = Daemon::start(Opts::default()).await;
    let wallet = daemon.create_wallet("anvil").await;
    let wid = wallet["id"].as_str().unwrap();
    let mine = daemon.create_session(wid, json!({})).await;
    let token = mine["token"].as_str().unwrap().to_owned();
    let sibling = daemon.create_session(wid, json!({})).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, foreign) = daemon.wallet_and_token().await;
    let revoked = daemon.create_session(wid, json!({})).await;
    daemon
        .master(
            Method::DELETE,
            &format!("/v1/sessions/{}", revoked["id"].as_str().unwrap()),
            None,
        )
        .await;
    let revoked = revoked["token"].as_str().unwrap().to_owned();
    let expired = daemon
        .create_session(wid, json!({ "ttlSeconds": 1, "absoluteLifetimeSeconds": 60 }))
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let url = &daemon.url;
    let with = |extra: (&'static str, &str)| {
        let mut h = bearer(&token);
        h.push((extra.0, extra.1.to_owned()));
        h
    };
    // Opening a stream.
    for (what, headers, want) in [
        ("no token", vec![], 401),
        ("bad token", bearer("nope"), 401),
        ("expired token", bearer(&expired), 401),
        ("revoked token", bearer(&revoked), 401),
        (
            "master password",
            vec![("x-master-password", daemon.password.clone())],
            401,
        ),
        ("foreign origin", with(("origin", "https://evil.example")), 403),
        ("foreign host", with(("host", "evil.example")), 403),
    ] {
        let err = SseStream::open(url, &headers).await.err();
        assert_eq!(err.as_ref().map(|e| e.0), Some(want), "GET /sse with {what}: {err:?}");
        assert!(
            err.unwrap().1["error"]["code"].is_string(),
            "JSON error body for {what}"
        );
    }
    let res = http()
        .get(format!("{url}/sse"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 406, "GET /sse without Accept: text/event-stream");

    // Posting to a stream: only the session that opened it, with a live token.
    let mut sse = ready_stream(&daemon, &token).await;
    let ping = request(2, "ping", json!({}));
    for (what, headers, want) in [
        ("no token", vec![], 401),
        ("expired token", bearer(&expired), 401),
        ("revoked token", bearer(&revoked), 401),
        ("another wallet's token", bearer(&foreign), 404),
        ("another session of the same wallet", bearer(&sibling), 404),
        ("foreign origin", with(("origin", "https://evil.example")), 403),
        ("foreign host", with(("host", "evil.example")), 403),
    ] {
        let (status, body) = sse.post(url, &headers, &ping).await;
        assert_eq!(status, want, "POST /message with {what}: {body}");
    }
    let auth = bearer(&token);
    let unknown = post_raw(
        url,
        "/message?sessionId=0123456789abcdef",
        &auth,
        ping.to_string().into(),
    )
    .await;
    assert_eq!(unknown.0, 404, "{unknown:?}");
    let body: Value = serde_json::from_str(&unknown.1).unwrap();
    assert_eq!(body["error"]["code"], "NOT_FOUND");
    assert_eq!(
        post_raw(url, "/message", &auth, ping.to_string().into()).await.0,
        400,
        "no sessionId"
    );
    assert_eq!(sse.post(url, &auth, &json!({ "jsonrpc": "2.0" })).await.0, 400);
    let (status, _) = post_raw(url, &sse.endpoint, &auth, b"{not json".to_vec()).await;
    assert_eq!(status, 400, "malformed JSON");
    let huge = json!({ "jsonrpc": "2.0", "id": 3, "method": "ping", "params": { "pad": "x".repeat(100_000) } });
    assert_eq!(sse.post(url, &auth, &huge).await.0, 413, "oversized message");
    // After all that, the stream still answers, and only the opener saw anything.
    assert_eq!(sse.post(url, &auth, &ping).await.0, 202);
    let (pong, notes) = sse.response(2).await;
    assert_eq!(pong["result"], json!({}));
    assert!(notes.is_empty(), "{notes:?}");

    // Revoking the session stops the next POST at once.
    daemon
        .master(
            Method::DELETE,
            &format!("/v1/sessions/{}", mine["id"].as_str().unwrap()),
            None,
        )
        .await;
    let (status, body) = sse.post(url, &auth, &request(4, "ping", json!({}))).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("SESSION_REVOKED"), "{body}");
    assert!(!daemon.logs().contains(&token), "the token must never be logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_sse_streams_are_capped_freed_on_close_and_ended_at_shutdown() {
    let daemon = Daemon::start(Opts::default()).await;
    let (_, token) = daemon.wallet_and_token().await;
    let mut streams = Vec::new();
    for _ in 0..8 {
        streams.push(SseStream::bearer(&daemon.url, &token).await);
    }
    let refused = SseStream::open(&daemon.url, &bearer(&token)).await.err().unwrap();
    assert_eq!(refused.0, 429, "{refused:?}");
    assert_eq!(refused.1["error"]["code"], "TOO_MANY_STREAMS");
    // Another session is not affected.
    let (_, other) = daemon.wallet_and_token().await;
    drop(SseStream::bearer(&daemon.url, &other).await);

    // Closing a stream drops its MCP session: its endpoint is gone, and a slot is free.
    let closed = streams.pop().unwrap();
    let endpoint = closed.endpoint.clone();
    drop(closed);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ping = request(1, "ping", json!({})).to_string().into_bytes();
        if post_raw(&daemon.url, &endpoint, &bearer(&token), ping).await.0 == 404 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "closed stream still registered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = ready_stream(&daemon, &token).await;
    drop(again);

    // Open streams end at shutdown instead of holding it up.
    let mut daemon = daemon;
    let stop = tokio::task::spawn_blocking(move || daemon.terminate());
    let status = tokio::time::timeout(Duration::from_secs(20), stop)
        .await
        .expect("graceful shutdown waited on open SSE streams")
        .unwrap();
    assert!(status.success(), "{status:?}");
    for mut stream in streams {
        assert!(stream.next_event().await.is_none(), "stream still open after shutdown");
    }
}

/// The daemon-wide cap: 64 open streams in all (8 sessions × their 8). The 65th, from a ninth
/// session with none open, is refused; closing any stream lets it in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_sse_streams_are_capped_at_64_in_all() {
    crate::harness::raise_nofile_limit();
    let daemon = Daemon::start(Opts::default()).await;
    let wallet = daemon.create_wallet("anvil").await;
    let wid = wallet["id"].as_str().unwrap();
    let mut tokens = Vec::new();
    for _ in 0..9 {
        let s = daemon.create_session(wid, json!({})).await;
        tokens.push(s["token"].as_str().unwrap().to_owned());
    }
    let mut open = Vec::new();
    for token in &tokens[..8] {
        for _ in 0..8 {
            open.push(SseStream::bearer(&daemon.url, token).await);
        }
    }
    assert_eq!(open.len(), 64);
    let ninth = &tokens[8];
    let refused = SseStream::open(&daemon.url, &bearer(ninth)).await.err().unwrap();
    assert_eq!(refused.0, 429, "{refused:?}");
    assert_eq!(refused.1["error"]["code"], "TOO_MANY_STREAMS", "{refused:?}");
    // The daemon keeps serving everything else.
    let (status, _) = daemon.session(ninth, Method::GET, "/v1/wallet/address", None).await;
    assert_eq!(status, 200);

    // Closing one stream (any session's) frees a slot for the ninth session.
    drop(open.pop());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let admitted = loop {
        match SseStream::open(&daemon.url, &bearer(ninth)).await {
            Ok(stream) => break stream,
            Err((429, _)) => {}
            Err(other) => panic!("{other:?}"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the closed stream never freed its slot"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    open.push(admitted);
    let refused = SseStream::open(&daemon.url, &bearer(ninth)).await.err().unwrap();
    assert_eq!(refused.0, 429, "full again: {refused:?}");
}

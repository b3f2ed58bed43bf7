//! MCP over HTTP under abuse: protocol versions on `/mcp`, malformed and oversized requests,
//! unknown tools and wrong argument types (an error, never a crash), and clients that vanish
//! in the middle of a transfer on `/mcp` and `/sse` (the transfer completes or never starts;
//! it is never left half-done, and the daemon keeps serving).

use crate::harness::{Anvil, Daemon, Opts, eth, http};
use crate::mcp_sse::{bearer, initialize, ready_stream, request};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const RECIPIENT: &str = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";

/// One POST to `/mcp`: status, MCP session id, and the JSON-RPC message in the answer (JSON
/// or the last `data:` event of an SSE answer).
pub(crate) async fn post(
    daemon: &Daemon,
    token: &str,
    session: Option<&str>,
    version: Option<&str>,
    body: Vec<u8>,
) -> (u16, Option<String>, Value) {
    let mut req = http()
        .post(format!("{}/mcp", daemon.url))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(body);
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    if let Some(v) = version {
        req = req.header("mcp-protocol-version", v);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let session = res
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = res.text().await.unwrap();
    let message = serde_json::from_str(&text).unwrap_or_else(|_| {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .next_back()
            .unwrap_or(Value::String(text.clone()))
    });
    (status, session, message)
}

async fn json_post(daemon: &Daemon, token: &str, session: Option<&str>, version: &str, body: Value) -> (u16, Value) {
    let (status, _, message) = post(daemon, token, session, Some(version), body.to_string().into_bytes()).await;
    (status, message)
}

/// `initialize` + `notifications/initialized` at `version`; the MCP session id.
async fn session_at(daemon: &Daemon, token: &str, version: &str) -> String {
    let (status, session, init) = post(daemon, token, None, None, initialize(1, version).to_string().into()).await;
    assert_eq!(status, 200, "{init}");
    assert_eq!(init["result"]["protocolVersion"], version, "{init}");
    let session = session.expect("mcp-session-id");
    let note = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    let (status, _) = json_post(daemon, token, Some(&session), version, note).await;
    assert_eq!(status, 202);
    session
}

fn is_error(answer: &Value) -> bool {
    answer["error"].is_object() || answer["result"]["isError"] == true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_initializes_at_2025_06_18_and_2025_11_25() {
    let daemon = Daemon::start(Opts::default()).await;
    let (wallet, token) = daemon.wallet_and_token().await;
    for version in ["2025-06-18", "2025-11-25"] {
        let session = session_at(&daemon, &token, version).await;
        let (status, list) = json_post(
            &daemon,
            &token,
            Some(&session),
            version,
            request(2, "tools/list", json!({})),
        )
        .await;
        assert_eq!(status, 200, "{list}");
        assert!(
            list["result"]["tools"].as_array().unwrap().len() >= 9,
            "{version}: {list}"
        );
        let call = request(3, "tools/call", json!({ "name": "get_address", "arguments": {} }));
        let (_, addr) = json_post(&daemon, &token, Some(&session), version, call).await;
        assert_eq!(
            addr["result"]["structuredContent"]["address"], wallet["address"],
            "{version}: {addr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_answers_malformed_unknown_wrong_typed_and_oversized_requests_and_keeps_serving() {
    let daemon = Daemon::start(Opts::default()).await;
    let (_, token) = daemon.wallet_and_token().await;
    let v = "2025-11-25";

    let (status, _, body) = post(&daemon, &token, None, None, b"{not json".to_vec()).await;
    assert!((400..500).contains(&status), "malformed JSON: {status} {body}");
    let (status, _, body) = post(&daemon, &token, None, None, br#"{"hello":1}"#.to_vec()).await;
    assert!((400..500).contains(&status), "not JSON-RPC: {status} {body}");
    let huge = request(1, "initialize", json!({ "pad": "x".repeat(200_000) }));
    let (status, _, body) = post(&daemon, &token, None, None, huge.to_string().into_bytes()).await;
    assert_eq!(status, 413, "oversized: {body}");

    let session = session_at(&daemon, &token, v).await;
    let s = Some(session.as_str());
    let (_, unknown_method) = json_post(&daemon, &token, s, v, request(2, "wallet/export", json!({}))).await;
    assert_eq!(unknown_method["error"]["code"], -32601, "{unknown_method}");
    // Each a JSON-RPC invalid-params error (-32602) that names what is wrong, as the README
    // promises; never a crash, never a tool result.
    let cases = [
        (
            "unknown tool",
            json!({ "name": "export_private_key", "arguments": {} }),
            "tool not found",
        ),
        (
            "wrong type",
            json!({ "name": "list_transactions", "arguments": { "limit": "many" } }),
            "`limit`",
        ),
        (
            "number for a decimal string",
            json!({ "name": "transfer", "arguments": { "to": RECIPIENT, "amount": 0.5, "idempotency_key": "k" } }),
            "`amount`",
        ),
    ];
    for (id, (what, params, names)) in (3..).zip(cases) {
        let (status, answer) = json_post(&daemon, &token, s, v, request(id, "tools/call", params)).await;
        assert_eq!(status, 200, "{what}: {answer}");
        assert_eq!(answer["error"]["code"], -32602, "{what}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(names), "{what}: {answer}");
    }
    // Params that are not a tools/call at all: rmcp answers the protocol error it has for a
    // request it cannot decode (-32601 naming the method), still no tool result.
    let bad = json!({ "name": "get_balance", "arguments": [1, 2] });
    let (status, answer) = json_post(&daemon, &token, s, v, request(7, "tools/call", bad)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["error"]["code"], -32601, "{answer}");
    assert!(answer["result"].is_null(), "{answer}");
    let huge = request(
        9,
        "tools/call",
        json!({ "name": "get_balance", "arguments": { "token": "x".repeat(200_000) } }),
    );
    let (status, _, body) = post(&daemon, &token, s, Some(v), huge.to_string().into_bytes()).await;
    assert_eq!(status, 413, "oversized call: {body}");

    // Still serving, on the same session and on a new one.
    let (_, pong) = json_post(&daemon, &token, s, v, request(10, "ping", json!({}))).await;
    assert_eq!(pong["result"], json!({}), "{pong}");
    session_at(&daemon, &token, "2025-06-18").await;
    assert_eq!(daemon.request(Method::GET, "/health", &[], None).await.0, 200);
}

/// The wallet's transactions with these idempotency keys, once none is in flight.
async fn settled(daemon: &Daemon, token: &str, keys: &[&str]) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, list) = daemon
            .session(token, Method::GET, "/v1/transactions?limit=100", None)
            .await;
        assert_eq!(status, 200, "{list}");
        let mine: Vec<Value> = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| keys.contains(&t["idempotencyKey"].as_str().unwrap()))
            .cloned()
            .collect();
        if mine.len() == keys.len() && mine.iter().all(|t| t["status"] == "CONFIRMED") {
            return mine;
        }
        assert!(Instant::now() < deadline, "transfers never settled: {mine:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_transfer_never_leaves_it_half_done() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::with_anvil(&anvil).await;
    let (wallet, token) = daemon.wallet_and_token().await;
    anvil.fund(wallet["address"].as_str().unwrap(), eth(10)).await;
    let rules = json!({ "instant_max": "1" });
    let policy = json!({ "walletId": wallet["id"], "type": "SPENDING_LIMIT", "rules": rules });
    assert_eq!(daemon.master(Method::POST, "/v1/policies", Some(policy)).await.0, 201);
    // No mining: every transfer stays unconfirmed while its client goes away.
    anvil.rpc("evm_setAutomine", json!([false])).await;
    let transfer = |key: &str| json!({ "name": "transfer", "arguments": { "to": RECIPIENT, "amount": "0.01", "idempotency_key": key } });

    // Streamable HTTP: the client hangs up while the call waits for confirmation.
    let session = session_at(&daemon, &token, "2025-11-25").await;
    let cut = http()
        .post(format!("{}/mcp", daemon.url))
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .json(&request(2, "tools/call", transfer("cut-mcp")))
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    if let Ok(res) = cut {
        // Headers may come first (SSE); hang up before the result.
        drop(res);
    }
    // Legacy SSE: the stream closes right after the call is queued.
    let sse = ready_stream(&daemon, &token).await;
    let (status, _) = sse
        .post(
            &daemon.url,
            &bearer(&token),
            &request(2, "tools/call", transfer("cut-sse")),
        )
        .await;
    assert_eq!(status, 202);
    let endpoint = sse.endpoint.clone();
    drop(sse);
    // The daemon has seen the stream close once its endpoint is gone.
    let deadline = Instant::now() + Duration::from_secs(20);
    let ping = request(9, "ping", json!({})).to_string().into_bytes();
    while crate::mcp_sse::post_raw(&daemon.url, &endpoint, &bearer(&token), ping.clone())
        .await
        .0
        != 404
    {
        assert!(Instant::now() < deadline, "the closed stream is still registered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The daemon keeps serving while those wait.
    let session = session_at(&daemon, &token, "2025-06-18").await;
    let (_, pong) = json_post(
        &daemon,
        &token,
        Some(&session),
        "2025-06-18",
        request(3, "ping", json!({})),
    )
    .await;
    assert_eq!(pong["result"], json!({}));

    anvil.rpc("evm_setAutomine", json!([true])).await;
    anvil.rpc("anvil_mine", json!(["0x3"])).await;
    let done = settled(&daemon, &token, &["cut-mcp", "cut-sse"]).await;
    // Each was sent exactly once: a retry with the same key answers the same transaction,
    // and the recipient got exactly what the two confirmed transfers say.
    for t in &done {
        let key = t["idempotencyKey"].as_str().unwrap();
        let retry = json!({ "to": RECIPIENT, "amount": "0.01", "idempotencyKey": key });
        let (status, again) = daemon
            .session(&token, Method::POST, "/v1/transactions/send", Some(retry))
            .await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(again["id"], t["id"], "{again}");
    }
    let balance = anvil.rpc("eth_getBalance", json!([RECIPIENT, "latest"])).await;
    let balance = u128::from_str_radix(balance.as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    let start = 10_000u128 * 10u128.pow(18);
    assert_eq!(
        balance - start,
        2 * 10u128.pow(16),
        "recipient paid exactly twice 0.01 ETH"
    );
}

/// A client's open standalone GET stream on `/mcp` ends at shutdown instead of holding the
/// graceful shutdown up forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_mcp_stream_ends_at_shutdown() {
    let mut daemon = Daemon::start(Opts::default()).await;
    let (_, token) = daemon.wallet_and_token().await;
    let version = "2025-11-25";
    let session = session_at(&daemon, &token, version).await;
    let stream = http()
        .get(format!("{}/mcp", daemon.url))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", version)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"),
        "{:?}",
        stream.headers()
    );
    let stop = tokio::task::spawn_blocking(move || daemon.terminate());
    let status = tokio::time::timeout(Duration::from_secs(20), stop)
        .await
        .expect("graceful shutdown waited on an open /mcp stream")
        .unwrap();
    assert!(status.success(), "{status:?}");
    tokio::time::timeout(Duration::from_secs(5), stream.bytes())
        .await
        .expect("the stream is still open after shutdown")
        .ok();
}

/// The 2026-07-28 revision as far as rmcp 3.11 implements it: no `initialize`, no MCP
/// session; every request carries its protocol version and client capabilities in `_meta`,
/// and its method (and tool name) in `Mcp-Method` / `Mcp-Name` headers. The bearer token is
/// still checked on every request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_serves_the_stateless_2026_07_28_revision() {
    let daemon = Daemon::start(Opts::default()).await;
    let (wallet, token) = daemon.wallet_and_token().await;
    let version = "2026-07-28";
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": version,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": { "name": "bursar-test", "version": "0" },
    });
    let stateless = |token: String, method: &'static str, name: Option<&'static str>, params: Value| {
        let url = format!("{}/mcp", daemon.url);
        async move {
            let mut req = http()
                .post(url)
                .bearer_auth(token)
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", version)
                .header("mcp-method", method)
                .json(&request(1, method, params));
            if let Some(name) = name {
                req = req.header("mcp-name", name);
            }
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            assert!(
                res.headers().get("mcp-session-id").is_none(),
                "no session in 2026-07-28"
            );
            let text = res.text().await.unwrap();
            let message: Value = serde_json::from_str(&text).unwrap_or_else(|_| {
                let data = text.lines().filter_map(|l| l.strip_prefix("data:")).next_back();
                serde_json::from_str(data.unwrap_or("null").trim()).unwrap()
            });
            (status, message)
        }
    };
    let (status, discover) = stateless(token.clone(), "server/discover", None, json!({ "_meta": meta })).await;
    assert_eq!(status, 200, "{discover}");
    assert!(discover["result"]["capabilities"]["tools"].is_object(), "{discover}");
    let (_, list) = stateless(token.clone(), "tools/list", None, json!({ "_meta": meta })).await;
    assert_eq!(list["result"]["tools"].as_array().map(Vec::len), Some(11), "{list}");
    let call = json!({ "name": "get_address", "arguments": {}, "_meta": meta });
    let (_, addr) = stateless(token.clone(), "tools/call", Some("get_address"), call.clone()).await;
    assert_eq!(
        addr["result"]["structuredContent"]["address"], wallet["address"],
        "{addr}"
    );
    // Without `_meta` the request is refused, naming what is missing.
    let bare = json!({ "name": "get_address", "arguments": {} });
    let (_, refused) = stateless(token.clone(), "tools/call", Some("get_address"), bare).await;
    assert!(is_error(&refused), "{refused}");
    assert!(refused.to_string().contains("protocolVersion"), "{refused}");
    // No session means nothing to hide behind: a revoked token is refused at once.
    let (_, sessions) = daemon.master(Method::GET, "/v1/sessions", None).await;
    let revoke = format!("/v1/sessions/{}", sessions[0]["id"].as_str().unwrap());
    assert_eq!(daemon.master(Method::DELETE, &revoke, None).await.0, 200);
    let res = http()
        .post(format!("{}/mcp", daemon.url))
        .bearer_auth(&token)
        .header("mcp-protocol-version", version)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "get_address")
        .json(&request(1, "tools/call", call))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

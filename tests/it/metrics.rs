//! `GET /metrics`: what it counts (from real transfers on a real anvil), that it names no
//! secret and no address, and who may read it under each `[metrics] access` — with the scrape
//! token rotated by SIGHUP while the daemon runs.

use crate::harness::{Anvil, Daemon, Opts, eth, write_private};
use crate::transfers::{RECIPIENT, opts};
use reqwest::Method;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

/// GET /metrics with `headers`: (status, content type, body).
async fn scrape(daemon: &Daemon, headers: &[(&str, &str)]) -> (u16, String, String) {
    let mut req = crate::harness::http().get(format!("{}/metrics", daemon.url));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let kind = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, kind, res.text().await.unwrap())
}

/// The value of one series (`name{labels}`) in an exposition.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{series} missing in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_transfers_decisions_rpc_and_failures_and_name_no_secret() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let (wallet, token) = daemon.wallet_and_token().await;
    let (wid, address) = (wallet["id"].as_str().unwrap(), wallet["address"].as_str().unwrap());
    anvil.fund(address, eth(10)).await;
    let rules = json!({ "instant_max": "1", "delay_max": "2", "delay_seconds": 600 });
    let (status, body) = daemon
        .master(
            Method::POST,
            "/v1/policies",
            Some(json!({ "walletId": wid, "type": "SPENDING_LIMIT", "rules": rules })),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let (before, kind, _) = scrape(&daemon, &[]).await;
    assert_eq!(before, 200);
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");

    let send = |amount: &'static str, key: &'static str| {
        let body = json!({ "to": RECIPIENT, "amount": amount, "idempotencyKey": key });
        daemon.session(&token, Method::POST, "/v1/transactions/send", Some(body))
    };
    let (status, tx) = send("0.5", "m-instant").await;
    assert_eq!((status, tx["status"].as_str()), (200, Some("CONFIRMED")), "{tx}");
    let (status, tx) = send("1.5", "m-delay").await;
    assert_eq!((status, tx["status"].as_str()), (200, Some("DELAYED")), "{tx}");
    // Beyond every tier with no owner: APPROVAL, which is DENIED without an owner.
    let (status, _) = send("5", "m-denied").await;
    assert_eq!(status, 403);
    let (status, _) = daemon
        .session(
            &token,
            Method::POST,
            "/v1/transactions/check",
            Some(json!({ "to": RECIPIENT, "amount": "0.1" })),
        )
        .await;
    assert_eq!(status, 200);
    let wrong = [("x-master-password", "not-the-password-at-all")];
    assert_eq!(daemon.request(Method::GET, "/v1/wallets", &wrong, None).await.0, 401);
    let bad_bearer = [("authorization", "Bearer not.a.token")];
    assert_eq!(
        daemon
            .request(Method::GET, "/v1/wallet/address", &bad_bearer, None)
            .await
            .0,
        401
    );

    let (status, _, text) = scrape(&daemon, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(value(&text, "bursar_transfers{status=\"CONFIRMED\"}"), 1.0);
    assert_eq!(value(&text, "bursar_transfers{status=\"DELAYED\"}"), 1.0);
    assert_eq!(value(&text, "bursar_transfers{status=\"DENIED\"}"), 1.0);
    assert_eq!(value(&text, "bursar_transfers{status=\"FAILED\"}"), 0.0);
    assert_eq!(
        value(&text, "bursar_policy_decisions_total{kind=\"send\",tier=\"INSTANT\"}"),
        1.0
    );
    assert_eq!(
        value(&text, "bursar_policy_decisions_total{kind=\"send\",tier=\"DELAY\"}"),
        1.0
    );
    assert_eq!(
        value(&text, "bursar_policy_decisions_total{kind=\"send\",tier=\"DENIED\"}"),
        1.0
    );
    assert_eq!(
        value(&text, "bursar_policy_decisions_total{kind=\"check\",tier=\"INSTANT\"}"),
        1.0
    );
    assert_eq!(value(&text, "bursar_auth_failures_total{kind=\"master\"}"), 1.0);
    assert_eq!(value(&text, "bursar_auth_failures_total{kind=\"session\"}"), 1.0);
    assert_eq!(value(&text, "bursar_wallets"), 1.0);
    assert_eq!(value(&text, "bursar_sessions_active"), 1.0);
    let rpc = value(&text, "bursar_rpc_requests_total{chain=\"anvil\"}");
    assert!(rpc >= 5.0, "{rpc} RPC calls for three sends");
    assert_eq!(value(&text, "bursar_rpc_duration_seconds_count{chain=\"anvil\"}"), rpc);
    assert_eq!(
        value(&text, "bursar_rpc_duration_seconds_bucket{chain=\"anvil\",le=\"+Inf\"}"),
        rpc
    );
    let audited = value(&text, "bursar_audit_entries_written_total");
    assert!(audited >= 8.0, "{audited}");
    assert!(value(&text, "bursar_audit_entries") >= audited);
    // Every change is audited; staged batches ride on a later flush (group commit).
    let (flushes, commits) = (
        value(&text, "bursar_store_flushes_total"),
        value(&text, "bursar_audit_commits_total"),
    );
    assert!(
        flushes >= 3.0 && flushes <= commits,
        "{flushes} flushes, {commits} commits"
    );
    // No secret, no address, no id.
    for secret in [daemon.password.as_str(), token.as_str(), wid, "0x", RECIPIENT] {
        assert!(!text.contains(secret), "the exposition holds {secret}");
    }
    assert!(!text.to_lowercase().contains(&address.to_lowercase()[2..]));

    // The Host / Origin guard applies as everywhere.
    let (status, _, _) = scrape(&daemon, &[("host", "evil.example")]).await;
    assert_eq!(status, 403);
    let (status, _, _) = scrape(&daemon, &[("origin", "http://evil.example")]).await;
    assert_eq!(status, 403);
}

fn with_metrics(anvil: &Anvil, metrics: &str) -> Opts {
    let mut o = opts(anvil);
    o.extra_config += &format!("\n[metrics]\n{metrics}\n");
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_access_master_off_and_a_bad_token_file() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(with_metrics(&anvil, "access = \"master\"")).await;
    let (_, token) = daemon.wallet_and_token().await;
    let bearer = format!("Bearer {token}");
    for headers in [
        vec![],
        vec![("x-master-password", "wrong-password-here")],
        vec![("authorization", bearer.as_str())],
    ] {
        let (status, _, body) = scrape(&daemon, &headers).await;
        assert_eq!(status, 401, "{headers:?}: {body}");
        assert!(!body.contains("bursar_"), "{body}");
    }
    let (status, _, body) = scrape(&daemon, &[("x-master-password", &daemon.password)]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("bursar_transfers{status=\"CONFIRMED\"} 0"), "{body}");

    let off = Daemon::start(with_metrics(&anvil, "access = \"off\"")).await;
    let (status, _, body) = scrape(&off, &[("x-master-password", &off.password)]).await;
    assert_eq!(status, 404, "{body}");

    // A token mode whose token is short, or readable by others, does not start.
    for (mode, text) in [(0o600, "short"), (0o644, "a-long-enough-token-0123456789")] {
        let mut bad = Daemon::init(with_metrics(
            &anvil,
            "access = \"token\"\ntoken_file = \"metrics.token\"",
        ));
        let file = bad.data_dir().join("metrics.token");
        write_private(&file, text);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        let (code, log) = bad.try_spawn().await.expect_err("refused");
        assert_eq!(code, Some(1), "{log}");
        assert!(log.contains("metrics.token"), "{log}");
        assert!(!log.contains(text), "the log names the file, never its content: {log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_token_is_rotated_by_sighup_old_refused_new_accepted() {
    let anvil = Anvil::start().await;
    let mut daemon = Daemon::init(with_metrics(
        &anvil,
        "access = \"token\"\ntoken_file = \"metrics.token\"",
    ));
    let file = daemon.data_dir().join("metrics.token");
    let (old, new) = ("old-token-0123456789abcdef", "new-token-fedcba9876543210");
    write_private(&file, &format!("{old}\n"));
    daemon.spawn().await;
    let bearer = |t: &str| format!("Bearer {t}");
    let scrape_with = |t: String| {
        let d = &daemon;
        async move { scrape(d, &[("authorization", t.as_str())]).await.0 }
    };
    assert_eq!(scrape_with(bearer(old)).await, 200);
    assert_eq!(scrape_with(bearer("wrong-token-0123456789")).await, 401);
    assert_eq!(scrape(&daemon, &[]).await.0, 401);
    assert_eq!(scrape(&daemon, &[("x-master-password", &daemon.password)]).await.0, 401);

    // Rotate: write the new token, SIGHUP. No restart.
    let pid = daemon.pid().unwrap();
    write_private(&file, new);
    unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while scrape_with(bearer(new)).await != 200 {
        assert!(
            Instant::now() < deadline,
            "the new token never worked: {}",
            daemon.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(scrape_with(bearer(old)).await, 401, "the old token still works");
    assert_eq!(daemon.pid(), Some(pid), "the daemon restarted");

    // A rotation that cannot be read (loose permissions) keeps the current token.
    write_private(&file, "third-token-0123456789abcdef");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !daemon.logs().contains("secrets not re-read") {
        assert!(Instant::now() < deadline, "no refusal logged: {}", daemon.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(scrape_with(bearer(new)).await, 200);
    assert_eq!(scrape_with(bearer("third-token-0123456789abcdef")).await, 401);
    let (status, entries) = daemon
        .master(Method::GET, "/v1/audit?kind=secrets_reloaded", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(entries.as_array().unwrap().len(), 1, "{entries}");
    for t in [old, new] {
        assert!(!daemon.logs().contains(t), "a token in the log");
        assert!(!entries.to_string().contains(t), "a token in the audit log");
    }
}

//! The operator's promises end to end, on the real binary (and a real anvil where a chain is
//! involved): the kill switch for all wallets, a tampered sealed key refusing to start, every
//! `doctor` check (and `--fix` leaving a clean re-run), `bursar mcp` working without ever
//! opening the store, and session renewal stopping at the absolute lifetime.

use crate::harness::{Anvil, Daemon, Opts, bursar_bin, eth, write_private};
use crate::transfers::{RECIPIENT, opts};
use reqwest::Method;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

async fn chain_nonce(anvil: &Anvil, address: &str) -> Value {
    anvil.rpc("eth_getTransactionCount", json!([address, "latest"])).await
}

/// The kill switch without a wallet stops every wallet in one request: every session of each
/// revoked, everything not yet signed cancelled, no new session, nothing signed; lifting it
/// for all wallets lets new sessions sign again, while the old tokens stay dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kill_switch_for_all_wallets_stops_each_of_them_and_lifts_them_all() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let mut wallets = Vec::new();
    for i in 0..3 {
        let (wallet, token) = daemon.wallet_and_token().await;
        let wid = wallet["id"].as_str().unwrap().to_owned();
        let address = wallet["address"].as_str().unwrap().to_owned();
        anvil.fund(&address, eth(10)).await;
        let rules = json!({ "instant_max": "0.1", "delay_max": "1", "delay_seconds": 3600 });
        let policy = json!({ "walletId": wid, "type": "SPENDING_LIMIT", "rules": rules });
        assert_eq!(daemon.master(Method::POST, "/v1/policies", Some(policy)).await.0, 201);
        let (status, tx) = daemon
            .session(
                &token,
                Method::POST,
                "/v1/transactions/send",
                Some(json!({ "to": RECIPIENT, "amount": "0.5", "idempotencyKey": format!("queued-{i}") })),
            )
            .await;
        assert_eq!((status, tx["status"].as_str()), (200, Some("DELAYED")), "{tx}");
        wallets.push((wid, address, token, tx["id"].as_str().unwrap().to_owned()));
    }

    let (status, reports) = daemon
        .master(
            Method::POST,
            "/v1/admin/kill-switch",
            Some(json!({ "on": true, "reason": "all hands" })),
        )
        .await;
    assert_eq!(status, 200, "{reports}");
    let reports = reports.as_array().unwrap();
    assert_eq!(reports.len(), wallets.len(), "{reports:?}");
    let (_, cancelled) = daemon.master(Method::GET, "/v1/audit?kind=tx_cancelled", None).await;
    let cancelled = cancelled.to_string();
    for (wid, address, token, queued) in &wallets {
        let report = reports.iter().find(|r| r["walletId"] == wid.as_str()).unwrap();
        assert_eq!(report["sessionsRevoked"], 1, "{report}");
        assert_eq!(report["transactionsCancelled"], 1, "{report}");
        assert_eq!(report["frozen"]["by"], "master", "{report}");
        assert_eq!(report["frozen"]["reason"], "all hands", "{report}");
        let (status, body) = daemon.session(token, Method::GET, "/v1/wallet/address", None).await;
        assert_eq!((status, code(&body)), (401, "SESSION_REVOKED"), "{body}");
        let (status, body) = daemon
            .master(Method::POST, "/v1/sessions", Some(json!({ "walletId": wid })))
            .await;
        assert_eq!((status, code(&body)), (423, "WALLET_FROZEN"), "{body}");
        assert!(
            cancelled.contains(queued.as_str()),
            "{queued} not cancelled: {cancelled}"
        );
        assert_eq!(chain_nonce(&anvil, address).await, json!("0x0"), "nothing signed");
    }
    let (_, frozen) = daemon.master(Method::GET, "/v1/admin/kill-switch", None).await;
    assert_eq!(frozen.as_array().unwrap().len(), wallets.len(), "{frozen}");

    let (status, reports) = daemon
        .master(Method::POST, "/v1/admin/kill-switch", Some(json!({ "on": false })))
        .await;
    assert_eq!(status, 200, "{reports}");
    assert!(
        reports.as_array().unwrap().iter().all(|r| r["frozen"].is_null()),
        "{reports}"
    );
    let (_, frozen) = daemon.master(Method::GET, "/v1/admin/kill-switch", None).await;
    assert_eq!(frozen, json!([]));
    for (i, (wid, address, old, queued)) in wallets.iter().enumerate() {
        let (status, body) = daemon.session(old, Method::GET, "/v1/wallet/address", None).await;
        assert_eq!((status, code(&body)), (401, "SESSION_REVOKED"), "{body}");
        let token = daemon.create_session(wid, json!({})).await["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let (_, tx) = daemon
            .session(&token, Method::GET, &format!("/v1/transactions/{queued}"), None)
            .await;
        assert_eq!(
            tx["status"], "CANCELLED",
            "a lift does not revive what it cancelled: {tx}"
        );
        let (status, tx) = daemon
            .session(
                &token,
                Method::POST,
                "/v1/transactions/send",
                Some(json!({ "to": RECIPIENT, "amount": "0.01", "idempotencyKey": format!("after-{i}") })),
            )
            .await;
        assert_eq!((status, tx["status"].as_str()), (200, Some("CONFIRMED")), "{tx}");
        assert_eq!(chain_nonce(&anvil, address).await, json!("0x1"));
    }
}

/// The stopped daemon's sled store, opened as someone with file access would.
fn open_raw(daemon: &Daemon) -> sled::Db {
    sled::open(daemon.data_dir().join("store")).unwrap()
}

/// A sealed wallet key that was edited — a flipped ciphertext byte, another wallet's key, an
/// address edited to another wallet's — stops the daemon at start, naming the wallet; put
/// back, the daemon starts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_sealed_key_refuses_to_start() {
    let mut daemon = Daemon::start(Opts::default()).await;
    let a = daemon.create_wallet("anvil").await;
    let b = daemon.create_wallet("anvil").await;
    assert!(daemon.terminate().success());
    let key_a = format!("wallet/{}", a["id"].as_str().unwrap());
    let key_b = format!("wallet/{}", b["id"].as_str().unwrap());
    let (original_a, record_a, record_b) = {
        let db = open_raw(&daemon);
        let raw = db.get(&key_a).unwrap().unwrap().to_vec();
        let record_a: Value = serde_json::from_slice(&raw).unwrap();
        let record_b: Value = serde_json::from_slice(&db.get(&key_b).unwrap().unwrap()).unwrap();
        (raw, record_a, record_b)
    };
    let flipped = {
        let mut r = record_a.clone();
        let hex = r["key"]["ciphertext"].as_str().unwrap().to_owned();
        let last = if hex.ends_with('0') { "1" } else { "0" };
        r["key"]["ciphertext"] = json!(format!("{}{last}", &hex[..hex.len() - 1]));
        r
    };
    let swapped = {
        let mut r = record_a.clone();
        r["key"] = record_b["key"].clone();
        r
    };
    let readdressed = {
        let mut r = record_a.clone();
        r["address"] = record_b["address"].clone();
        r
    };
    for (what, record) in [
        ("a flipped ciphertext byte", flipped),
        ("another wallet's key", swapped),
        ("another wallet's address", readdressed),
    ] {
        {
            let db = open_raw(&daemon);
            db.insert(&key_a, serde_json::to_vec(&record).unwrap()).unwrap();
            db.flush().unwrap();
        }
        let logged = daemon.logs().len();
        let (code, log) = daemon
            .try_spawn()
            .await
            .expect_err(&format!("the daemon started with {what}"));
        assert_eq!(code, Some(1), "{what}: {log}");
        let log = &log[logged..];
        assert!(
            log.contains("wallet key failed its integrity check") && log.contains(a["id"].as_str().unwrap()),
            "{what}: {log}"
        );
        {
            let db = open_raw(&daemon);
            db.insert(&key_a, original_a.clone()).unwrap();
            db.flush().unwrap();
        }
        daemon.spawn().await;
        let (status, wallets) = daemon.master(Method::GET, "/v1/wallets", None).await;
        assert_eq!((status, wallets.as_array().map(Vec::len)), (200, Some(2)), "{what}");
        assert!(daemon.terminate().success());
    }
}

/// `bursar doctor --json`: (exit code, checks).
fn doctor(daemon: &Daemon, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, Vec<Value>) {
    let mut cmd = daemon.cli(&[&["doctor", "--json"], args].concat());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let checks: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code(), checks.as_array().unwrap().clone())
}

/// The checks named `name`, as (status, detail).
fn named(checks: &[Value], name: &str) -> Vec<(String, String)> {
    checks
        .iter()
        .filter(|c| c["check"] == name)
        .map(|c| {
            (
                c["status"].as_str().unwrap().to_owned(),
                c["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The one check named `name`: (status, detail).
fn one(checks: &[Value], name: &str) -> (String, String) {
    let found = named(checks, name);
    assert_eq!(found.len(), 1, "{name}: {checks:?}");
    found.into_iter().next().unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Every `doctor` check says what it should, on a stopped store and against a running daemon;
/// `--fix` repairs every permission it names and a re-run is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_doctor_check_and_fix_leaves_a_clean_rerun() {
    let mut daemon = Daemon::init(Opts::default());
    let data = daemon.data_dir();

    // A fresh store, stopped: doctor reads it directly (MACs checked with recovery.key).
    let (exit, checks) = doctor(&daemon, &[], &[]);
    assert_eq!(exit, Some(0), "{checks:?}");
    assert!(
        named(&checks, "permissions").iter().all(|(s, _)| s == "ok"),
        "{checks:?}"
    );
    assert_eq!(one(&checks, "recovery_key").0, "warn", "no session yet");
    assert_eq!(one(&checks, "bind").0, "ok");
    assert_eq!(one(&checks, "kdf_config").0, "warn", "the tests' cheap KDF");
    assert_eq!(one(&checks, "kdf").0, "warn");
    assert_eq!(one(&checks, "jwt_secret_age").0, "ok");
    let (status, detail) = one(&checks, "audit_chain");
    assert!(status == "ok" && detail.contains("chain verifies"), "{detail}");
    assert!(named(&checks, "secrets_in_env").is_empty(), "{checks:?}");

    // Break what doctor checks.
    let config = data.join("config.toml");
    let recovery = data.join("recovery.key");
    let store_file = data.join("store").join("conf");
    assert!(store_file.exists(), "sled's conf file");
    chmod(&data, 0o755);
    chmod(&config, 0o666);
    chmod(&recovery, 0o644);
    chmod(&store_file, 0o644);
    write_private(&data.join("recovery.key.new"), "left by an interrupted set-master");
    {
        let db = open_raw(&daemon);
        let mut record: Value = serde_json::from_slice(&db.get("meta/daemon").unwrap().unwrap()).unwrap();
        record["jwt_secret_created_at"] = json!(record["jwt_secret_created_at"].as_i64().unwrap() - 100 * 86_400);
        db.insert("meta/daemon", serde_json::to_vec(&record).unwrap()).unwrap();
        db.flush().unwrap();
    }
    let password = daemon.password.clone();
    let env = [
        ("BURSAR_MASTER_PASSWORD", password.as_str()),
        ("BURSAR_SERVER_BIND", "0.0.0.0:3999"),
    ];
    let (exit, checks) = doctor(&daemon, &[], &env);
    assert_eq!(exit, Some(1), "{checks:?}");
    let failed: Vec<String> = named(&checks, "permissions")
        .into_iter()
        .filter(|(s, _)| s == "fail")
        .map(|(_, d)| d)
        .collect();
    for (path, want) in [(&data, "chmod 700"), (&config, "chmod 600"), (&recovery, "chmod 600")] {
        assert!(
            failed
                .iter()
                .any(|d| d.starts_with(&path.display().to_string()) && d.contains(want)),
            "{} not named: {failed:?}",
            path.display()
        );
    }
    assert!(
        failed.iter().any(|d| d.starts_with(&store_file.display().to_string())),
        "the store file is not named: {failed:?}"
    );
    let recovery_checks = named(&checks, "recovery_key");
    assert!(
        recovery_checks
            .iter()
            .any(|(s, d)| s == "warn" && d.contains("interrupted set-master")),
        "{recovery_checks:?}"
    );
    let (status, detail) = one(&checks, "secrets_in_env");
    assert!(
        status == "warn" && detail.contains("BURSAR_MASTER_PASSWORD"),
        "{detail}"
    );
    // Outside a container a non-loopback bind is a warning; inside one (this sandbox has
    // `/.dockerenv`) the port's publication decides, which doctor says instead.
    let (status, detail) = one(&checks, "bind");
    if detail.contains("inside a container") {
        assert!(status == "ok" && detail.contains("127.0.0.1 only"), "{detail}");
    } else {
        assert!(status == "warn" && detail.contains("not loopback"), "{detail}");
    }
    let (status, detail) = one(&checks, "jwt_secret_age");
    assert!(status == "warn" && detail.contains("100 day"), "{detail}");

    // --fix repairs every permission it named; a re-run is clean.
    let (exit, checks) = doctor(&daemon, &["--fix"], &env);
    assert_eq!(exit, Some(0), "{checks:?}");
    let fixed = checks.iter().filter(|c| c["fixed"] == true).count();
    assert_eq!(fixed, failed.len(), "{checks:?}");
    assert_eq!(
        (mode(&data), mode(&config), mode(&recovery), mode(&store_file)),
        (0o700, 0o600, 0o600, 0o600)
    );
    let (exit, checks) = doctor(&daemon, &[], &env);
    assert_eq!(exit, Some(0), "{checks:?}");
    assert!(
        checks.iter().all(|c| c["status"] != "fail" && c["fixed"] != true),
        "{checks:?}"
    );
    assert!(
        named(&checks, "permissions").iter().all(|(s, _)| s == "ok"),
        "{checks:?}"
    );

    // A config that does not load.
    let good = std::fs::read_to_string(&config).unwrap();
    write_private(&config, &format!("{good}\n[server]\nbind = \"not an address\"\n"));
    let (exit, checks) = doctor(&daemon, &[], &[]);
    assert_eq!(
        (exit, one(&checks, "config").0.as_str()),
        (Some(1), "fail"),
        "{checks:?}"
    );
    write_private(&config, &good);

    // Running: the store is the daemon's; doctor asks it (recovery.key, audit chain), and
    // says so when it cannot reach it. The next start settles the staged recovery.key.new.
    daemon.spawn().await;
    assert!(!data.join("recovery.key.new").exists());
    let (exit, checks) = doctor(&daemon, &[], &[]);
    assert_eq!(exit, Some(0), "{checks:?}");
    assert_eq!(one(&checks, "recovery_key").0, "warn", "{checks:?}");
    let (status, detail) = one(&checks, "audit_chain");
    assert!(status == "ok" && detail.contains("chain verifies"), "{detail}");
    daemon
        .create_session(daemon.create_wallet("anvil").await["id"].as_str().unwrap(), json!({}))
        .await;
    let (exit, checks) = doctor(&daemon, &[], &[]);
    let (status, detail) = one(&checks, "recovery_key");
    assert_eq!(exit, Some(1), "{checks:?}");
    assert!(
        status == "fail" && detail.contains("agent session(s) are active"),
        "{detail}"
    );
    let (exit, checks) = doctor(&daemon, &[], &[("BURSAR_URL", &crate::harness::dead_url())]);
    assert_eq!(exit, Some(0), "{checks:?}");
    let (status, detail) = one(&checks, "daemon");
    assert!(status == "warn" && detail.contains("cannot reach"), "{detail}");
    std::fs::remove_file(&recovery).unwrap();
    let (_, checks) = doctor(&daemon, &[], &[]);
    assert_eq!(
        one(&checks, "store"),
        ("ok".into(), "held by the running daemon".into())
    );
    let (status, detail) = one(&checks, "audit_chain");
    assert!(status == "warn" && detail.contains("no master password"), "{detail}");
    assert!(daemon.terminate().success());

    // No data dir at all.
    let missing = daemon.dir.path().join("nowhere");
    let out = daemon
        .cli(&["doctor", "--json"])
        .env("BURSAR_DATA_DIR", &missing)
        .output()
        .unwrap();
    let checks: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(one(checks.as_array().unwrap(), "data_dir").0, "fail", "{checks}");
}

/// A store made with the shipped KDF cost: doctor's `kdf` check is ok and `kdf_config` silent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_the_shipped_kdf_cost() {
    let daemon = Daemon::configure(Opts::default());
    let config = daemon.data_dir().join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let shipped: String = text
        .lines()
        .filter(|l| !l.starts_with("argon2_") && *l != "[keystore]")
        .map(|l| format!("{l}\n"))
        .collect();
    write_private(&config, &shipped);
    let out = daemon.cli(&["init", "--auto-provision"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (exit, checks) = doctor(&daemon, &[], &[]);
    assert_eq!(exit, Some(0), "{checks:?}");
    let (status, detail) = one(&checks, "kdf");
    assert!(status == "ok" && detail.contains("m=65536"), "{detail}");
    assert!(named(&checks, "kdf_config").is_empty(), "{checks:?}");
}

/// Paths under `dir` that process `pid` holds open.
fn open_under(pid: u32, dir: &Path) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|p| p.starts_with(dir))
        .map(|p| p.display().to_string())
        .collect()
}

/// `bursar mcp` over stdio: sends `requests` (newline-delimited JSON-RPC) and reads one
/// answer per request with an id; checks, while it still runs, what it holds open under
/// `data_dir`. Returns the answers.
fn mcp_session(daemon: &Daemon, token_file: &Path, data_dir: &Path, calls: &[Value]) -> Vec<Value> {
    let mut child = Command::new(bursar_bin())
        .arg("mcp")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("BURSAR_DATA_DIR", data_dir)
        .env("BURSAR_URL", &daemon.url)
        .env("BURSAR_SESSION_TOKEN_FILE", token_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut send = |v: &Value| writeln!(stdin, "{v}").unwrap();
    let init = json!({ "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } } });
    send(&init);
    let mut answer = |id: u64| loop {
        let line = lines.next().expect("bursar mcp closed stdout").unwrap();
        let msg: Value = serde_json::from_str(&line).unwrap();
        if msg["id"] == id {
            return msg;
        }
    };
    assert!(answer(0)["result"]["serverInfo"].is_object());
    send(&json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }));
    let mut answers = Vec::new();
    for (i, call) in calls.iter().enumerate() {
        let id = i as u64 + 1;
        send(&json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call", "params": call }));
        answers.push(answer(id));
    }
    let held = open_under(child.id(), data_dir);
    assert!(held.is_empty(), "bursar mcp holds files of the data dir open: {held:?}");
    let _ = child.kill();
    let _ = child.wait();
    answers
}

/// `bursar mcp` holds a session token and a URL, nothing else: it works while the daemon
/// holds the store's lock (opening the store would fail there), never holds a file of the data
/// dir open, and with the daemon stopped its tools say the daemon is down while the store
/// stays free for the next `bursar start`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursar_mcp_never_opens_the_store() {
    let mut daemon = Daemon::start(Opts::default()).await;
    let (wallet, token) = daemon.wallet_and_token().await;
    let token_file = daemon.dir.path().join("agent.token");
    write_private(&token_file, &token);
    let data = daemon.data_dir();
    let address = json!({ "name": "get_address", "arguments": {} });

    let answers = mcp_session(&daemon, &token_file, &data, std::slice::from_ref(&address));
    let text = answers[0]["result"]["content"][0]["text"].as_str().unwrap_or_default();
    assert_eq!(answers[0]["result"]["isError"], false, "{}", answers[0]);
    assert!(text.contains(wallet["address"].as_str().unwrap()), "{}", answers[0]);

    assert!(daemon.terminate().success());
    let answers = mcp_session(&daemon, &token_file, &data, &[address]);
    assert_eq!(answers[0]["result"]["isError"], true, "{}", answers[0]);
    assert!(
        answers[0]["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("cannot reach the bursar daemon"),
        "{}",
        answers[0]
    );
    // Nothing of the data dir changed hands: the daemon opens its store again.
    daemon.spawn().await;
    assert_eq!(
        daemon.session(&token, Method::GET, "/v1/wallet/address", None).await.0,
        200
    );
}

/// Renewal never reaches past the absolute lifetime: the renewed token's expiry is capped at
/// it, and at the lifetime the token dies and cannot renew, with renewals left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_stops_at_the_absolute_lifetime() {
    let daemon = Daemon::start(Opts::default()).await;
    let wallet = daemon.create_wallet("anvil").await;
    let session = daemon
        .create_session(
            wallet["id"].as_str().unwrap(),
            json!({ "ttlSeconds": 3, "absoluteLifetimeSeconds": 4, "maxRenewals": 10 }),
        )
        .await;
    let id = session["id"].as_str().unwrap();
    let lifetime_end = session["absoluteExpiresAt"].as_str().unwrap().to_owned();
    // Two seconds after creation (by the daemon's clock, read back from the first expiry),
    // `now + ttl` lies a second past the lifetime: the renewal is cut to it.
    let parse = |t: &Value| {
        time::OffsetDateTime::parse(t.as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap()
    };
    let created = parse(&session["expiresAt"]) - time::Duration::seconds(3);
    let wait = created + time::Duration::milliseconds(2_050) - time::OffsetDateTime::now_utc();
    tokio::time::sleep(wait.try_into().unwrap_or(Duration::ZERO)).await;
    let (status, mut renewed) = daemon
        .session(
            session["token"].as_str().unwrap(),
            Method::PUT,
            &format!("/v1/sessions/{id}/renew"),
            None,
        )
        .await;
    let token = renewed["token"].as_str().unwrap_or_default().to_owned();
    renewed["token"] = json!("(not shown)");
    assert_eq!(status, 200, "{renewed}");
    assert_eq!(renewed["expiresAt"], lifetime_end.as_str(), "{renewed}");
    assert_eq!(renewed["renewalsLeft"], 9, "{renewed}");
    assert_eq!(
        daemon.session(&token, Method::GET, "/v1/wallet/address", None).await.0,
        200
    );

    // At the lifetime: refused, and no renewal brings it back.
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (status, body) = daemon.session(&token, Method::GET, "/v1/wallet/address", None).await;
        if status != 200 {
            assert_eq!(status, 401, "{body}");
            break body;
        }
        assert!(Instant::now() < deadline, "the token outlived its absolute lifetime");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(code(&body), "SESSION_EXPIRED", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("absolute lifetime"),
        "{body}"
    );
    let (status, body) = daemon
        .session(&token, Method::PUT, &format!("/v1/sessions/{id}/renew"), None)
        .await;
    assert_eq!(status, 401, "{body}");
    let (_, sessions) = daemon.master(Method::GET, "/v1/sessions", None).await;
    let record = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap()
        .clone();
    assert_eq!(record["renewals"], 1, "{record}");
}

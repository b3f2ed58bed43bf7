//! Inputs a hostile agent (or a careless script) could use to lock the operator out or bloat
//! what the daemon stores and logs: master-password rules for every source, `recovery.key`
//! kept in step with `set-master`, length bounds, private store files, non-ERC-20 token
//! contracts, and the owner domain of an unspecified bind address.

use crate::harness::{Anvil, Daemon, Opts, eth, http, write_private};
use reqwest::Method;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

async fn set_master(daemon: &Daemon, body: Value) -> (u16, Value) {
    daemon
        .master(Method::PUT, "/v1/admin/master-password", Some(body))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_master_refuses_passwords_no_header_can_carry() {
    let daemon = Daemon::start(Opts::default()).await;
    let cases = [
        ("\u{0}".repeat(40), "control characters"),
        ("short".to_owned(), "at least 12 characters"),
        ("a long password\nwith a newline".to_owned(), "control characters"),
        ("a long password\u{7f} with DEL".to_owned(), "control characters"),
        ("pässwörd, long enough".to_owned(), "printable ASCII"),
        (" a leading space, long enough".to_owned(), "start or end with a space"),
        ("x".repeat(1025), "at most 1024 characters"),
    ];
    for (password, needle) in cases {
        let (status, body) = set_master(&daemon, json!({ "newPassword": password })).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("INVALID_INPUT")),
            "{password:?}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{password:?}: {message}");
        assert!(!message.contains(&password), "the password is never echoed: {message}");
    }
    // Nothing changed: the old password still opens the master API, recovery.key still holds it.
    let (status, _) = daemon.master(Method::GET, "/v1/admin/status", None).await;
    assert_eq!(status, 200);
    let recovery = std::fs::read_to_string(daemon.data_dir().join("recovery.key")).unwrap();
    assert_eq!(recovery, daemon.password);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_refuses_a_password_the_prompt_would_refuse_from_env_or_file() {
    let mut daemon = Daemon::configure(Opts::default());
    let pw = daemon.dir.path().join("master.pw");
    let refused = |out: std::process::Output, needles: &[&str]| {
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        for needle in needles {
            assert!(stderr(&out).contains(needle), "{needle}: {}", stderr(&out));
        }
    };
    let init = |daemon: &Daemon| daemon.cli(&["init"]);
    refused(
        init(&daemon)
            .env("BURSAR_MASTER_PASSWORD", "elevenchars")
            .output()
            .unwrap(),
        &["at least 12 characters", "from BURSAR_MASTER_PASSWORD"],
    );
    write_private(&pw, "elevenchars\n");
    refused(
        init(&daemon).env("BURSAR_MASTER_PASSWORD_FILE", &pw).output().unwrap(),
        &["at least 12 characters", "from BURSAR_MASTER_PASSWORD_FILE"],
    );
    write_private(&pw, &"\u{0}".repeat(40));
    refused(
        init(&daemon).env("BURSAR_MASTER_PASSWORD_FILE", &pw).output().unwrap(),
        &["control characters", "X-Master-Password"],
    );
    assert!(
        !daemon.data_dir().join("store").exists(),
        "a refused password creates no store"
    );

    // Twelve characters and the trailing newline a file usually has: accepted, and the same
    // file (newline dropped the same way) opens the store and the master API.
    write_private(&pw, "twelve chars\n");
    let out = init(&daemon).env("BURSAR_MASTER_PASSWORD_FILE", &pw).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    daemon.env = vec![("BURSAR_MASTER_PASSWORD_FILE".into(), pw.display().to_string())];
    daemon.password = "twelve chars".into();
    daemon.spawn().await;
    assert_eq!(daemon.master(Method::GET, "/v1/admin/status", None).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_says_when_a_master_password_cannot_travel_in_a_header() {
    let daemon = Daemon::start(Opts::default()).await;
    let pw = daemon.dir.path().join("nul.pw");
    write_private(&pw, &"\u{0}".repeat(40));
    let out = daemon
        .cli(&["wallet", "list"])
        .env("BURSAR_MASTER_PASSWORD_FILE", &pw)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("X-Master-Password header cannot carry") && !stderr(&out).contains("cannot reach"),
        "{}",
        stderr(&out)
    );

    // Plain http:// to a host that is not loopback: a warning before anything is sent.
    let out = daemon
        .cli(&["--url", "http://0.0.0.0:1", "wallet", "list"])
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("warning: sending the master password over plain http:// to 0.0.0.0"),
        "{}",
        stderr(&out)
    );
    let out = daemon.cli(&["wallet", "list"]).output().unwrap();
    assert!(
        out.status.success() && !stderr(&out).contains("plain http"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_master_rewrites_a_kept_recovery_key_so_a_plain_start_works() {
    let mut daemon = Daemon::start(Opts::default()).await;
    daemon.create_wallet("anvil").await;
    let recovery = daemon.data_dir().join("recovery.key");
    let new = "rotated master password 2024";
    let (status, body) = set_master(&daemon, json!({ "newPassword": new })).await;
    assert_eq!(
        (status, body["recoveryKey"].as_str()),
        (200, Some("rewritten")),
        "{body}"
    );
    assert_eq!(std::fs::read_to_string(&recovery).unwrap(), new);
    assert_eq!(mode(&recovery), 0o600);
    assert!(!daemon.data_dir().join("recovery.key.new").exists());
    daemon.password = new.into();
    assert_eq!(daemon.master(Method::GET, "/v1/admin/status", None).await.0, 200);

    // The next plain `bursar start` (password from recovery.key) opens the store.
    daemon.kill();
    daemon.spawn().await;
    let (_, wallets) = daemon.master(Method::GET, "/v1/wallets", None).await;
    assert_eq!(wallets.as_array().unwrap().len(), 1, "{wallets}");

    // `delete` removes it in the same step.
    let newer = "a third master password";
    let (status, body) = set_master(&daemon, json!({ "newPassword": newer, "recoveryKey": "delete" })).await;
    assert_eq!((status, body["recoveryKey"].as_str()), (200, Some("deleted")), "{body}");
    assert!(!recovery.exists());
    daemon.password = newer.into();
    assert_eq!(daemon.master(Method::GET, "/v1/admin/status", None).await.0, 200);
    // With none there, none is created.
    let (_, body) = set_master(&daemon, json!({ "newPassword": "a fourth master password" })).await;
    assert_eq!(body["recoveryKey"], "absent", "{body}");
    assert!(!recovery.exists());
}

/// kill -9 (abort) right before and right after the store commit of a `set-master` that keeps
/// `recovery.key`: a plain `bursar start` afterwards opens the store with whichever password
/// it holds, and settles the staged file.
#[cfg(feature = "test-faults")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_master_interrupted_around_its_commit_still_starts_from_recovery_key() {
    for (point, committed) in [("set_master_before_commit", false), ("set_master_after_commit", true)] {
        assert!(bursar::faults::SET_MASTER_POINTS.contains(&point));
        let mut daemon = Daemon::init(Opts::default());
        daemon.env = vec![("BURSAR_TEST_FAULT".into(), point.into())];
        daemon.spawn().await;
        daemon.create_wallet("anvil").await;
        let old = daemon.password.clone();
        let new = format!("the new password after {point}");
        let sent = http()
            .put(format!("{}/v1/admin/master-password", daemon.url))
            .header("x-master-password", &old)
            .json(&json!({ "newPassword": new }))
            .send()
            .await;
        assert!(sent.is_err(), "{point}: the daemon must have died mid-request");
        daemon.kill();
        let staged = daemon.data_dir().join("recovery.key.new");
        assert!(staged.exists(), "{point}: the new password is staged first");

        daemon.env.clear();
        daemon.spawn().await;
        let expected = if committed { new } else { old };
        assert_eq!(
            std::fs::read_to_string(daemon.data_dir().join("recovery.key")).unwrap(),
            expected,
            "{point}"
        );
        assert!(!staged.exists(), "{point}: settled at start");
        daemon.password = expected;
        let (status, wallets) = daemon.master(Method::GET, "/v1/wallets", None).await;
        assert_eq!((status, wallets.as_array().map(Vec::len)), (200, Some(1)), "{point}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_text_fields_have_a_bound_and_a_clear_400() {
    let daemon = Daemon::start(Opts::default()).await;
    let (wallet, token) = daemon.wallet_and_token().await;
    let wid = wallet["id"].as_str().unwrap();
    let too_long = |status: u16, body: &Value, field: &str| {
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("INVALID_INPUT")),
            "{field}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("{field} is too long")), "{field}: {message}");
        assert!(message.len() < 200, "{field}: the value is not echoed");
    };

    let (status, body) = daemon
        .master(
            Method::POST,
            "/v1/admin/kill-switch",
            Some(json!({ "on": true, "walletId": wid, "reason": "r".repeat(60_000) })),
        )
        .await;
    too_long(status, &body, "reason");
    let (_, frozen) = daemon.master(Method::GET, "/v1/admin/kill-switch", None).await;
    assert_eq!(frozen, json!([]), "a refused kill switch freezes nothing");
    assert!(!daemon.logs().contains(&"r".repeat(300)), "nor reaches the log");

    let (status, body) = daemon
        .master(
            Method::POST,
            "/v1/wallets",
            Some(json!({ "name": "n".repeat(65), "chain": "anvil" })),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("INVALID_INPUT")),
        "{body}"
    );
    let (status, body) = daemon
        .master(
            Method::POST,
            "/v1/wallets",
            Some(json!({ "name": "n".repeat(5_000), "chain": "anvil" })),
        )
        .await;
    too_long(status, &body, "name");

    // 1,000 well-formed addresses: ~45 KB of rules, under the 64 KiB body limit.
    let addresses = vec!["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"; 1_000];
    let (status, body) = daemon
        .master(
            Method::POST,
            "/v1/policies",
            Some(json!({ "walletId": wid, "type": "WHITELIST", "rules": { "allowed_addresses": addresses } })),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("INVALID_INPUT")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rules are too large"),
        "{body}"
    );

    let (status, body) = daemon
        .master(
            Method::PUT,
            &format!("/v1/wallets/{wid}/owner"),
            Some(json!({ "address": "0x".to_owned() + &"a".repeat(5_000) })),
        )
        .await;
    too_long(status, &body, "address");
    let (status, body) = daemon
        .master(
            Method::POST,
            "/v1/sessions",
            Some(json!({ "walletId": "w".repeat(5_000) })),
        )
        .await;
    too_long(status, &body, "walletId");
    let (status, body) = daemon
        .master(Method::GET, &format!("/v1/audit?kind={}", "k".repeat(5_000)), None)
        .await;
    too_long(status, &body, "kind");

    let transfer = |field: &str, value: String| {
        let mut body = json!({ "to": crate::harness::ANVIL_KEY0_ADDR, "amount": "0.01", "idempotencyKey": "bounded" });
        body[field] = json!(value);
        body
    };
    for (field, len) in [("memo", 257), ("to", 5_000), ("amount", 5_000), ("idempotencyKey", 129)] {
        let (status, body) = daemon
            .session(
                &token,
                Method::POST,
                "/v1/transactions/check",
                Some(transfer(field, "1".repeat(len))),
            )
            .await;
        too_long(status, &body, field);
    }
    let (status, body) = daemon
        .session(
            &token,
            Method::GET,
            &format!("/v1/wallet/balance?token={}", "t".repeat(5_000)),
            None,
        )
        .await;
    too_long(status, &body, "token");

    // Within the bound: accepted, and sanitised before the log and the audit log.
    let (status, body) = daemon
        .master(
            Method::POST,
            "/v1/admin/kill-switch",
            Some(json!({ "on": true, "walletId": wid, "reason": format!("drill\u{202e}\n{}", "z".repeat(240)) })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let reason = body[0]["frozen"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("drillz") && reason.chars().count() == 245,
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_files_are_private_after_start_transfers_and_stop() {
    let anvil = Anvil::start().await;
    let mut daemon = Daemon::with_anvil(&anvil).await;
    let store = daemon.data_dir().join("store");
    let check_private = |when: &str| {
        let mut stack = vec![store.clone()];
        let mut files = 0;
        while let Some(dir) = stack.pop() {
            assert_eq!(mode(&dir), 0o700, "{when}: {dir:?}");
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    files += 1;
                    assert_eq!(mode(&path), 0o600, "{when}: {path:?}");
                }
            }
        }
        assert!(files > 0, "{when}: no store files?");
    };
    check_private("after start");

    let (wallet, token) = daemon.wallet_and_token().await;
    anvil.fund(wallet["address"].as_str().unwrap(), eth(5)).await;
    let (status, body) = daemon
        .master(
            Method::POST,
            "/v1/policies",
            Some(json!({ "walletId": wallet["id"], "type": "SPENDING_LIMIT", "rules": { "instant_max": "1" } })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    for idx in 0..3 {
        let (status, body) = daemon
            .session(
                &token,
                Method::POST,
                "/v1/transactions/send",
                Some(json!({ "to": crate::harness::ANVIL_KEY0_ADDR, "amount": "0.01", "idempotencyKey": format!("perm-{idx}") })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    check_private("after transfers");
    assert!(daemon.terminate().success());
    check_private("after a graceful stop");

    // A loose file (an older bursar, a restore under umask 022): doctor fails, --fix repairs,
    // and `start` tightens it as well.
    let db = store.join("db");
    assert!(db.is_file(), "sled's main file");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let doctor = daemon.cli(&["doctor", "--json"]).output().unwrap();
    assert_eq!(doctor.status.code(), Some(1));
    let checks: Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let flagged = checks.as_array().unwrap().iter().any(|c| {
        c["check"] == "permissions"
            && c["status"] == "fail"
            && c["detail"].as_str().unwrap().contains(db.to_str().unwrap())
    });
    assert!(flagged, "{checks}");
    assert_eq!(mode(&db), 0o644, "doctor without --fix changes nothing");
    let fixed = daemon.cli(&["doctor", "--fix", "--json"]).output().unwrap();
    let checks: Value = serde_json::from_slice(&fixed.stdout).unwrap();
    assert!(
        checks.as_array().unwrap().iter().any(|c| c["fixed"] == true),
        "{checks}"
    );
    assert_eq!(mode(&db), 0o600);
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    daemon.spawn().await;
    check_private("after a start over a loose file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_that_is_not_an_erc20_token_is_a_clear_400() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::with_anvil(&anvil).await;
    let (wallet, token) = daemon.wallet_and_token().await;
    anvil.fund(wallet["address"].as_str().unwrap(), eth(1)).await;
    let contracts = [
        ("always reverts", anvil.deploy_runtime("60006000fd").await),
        ("invalid opcode", anvil.deploy_runtime("fe").await),
        ("STOP, no return data", anvil.deploy_runtime("00").await),
    ];
    for (what, address) in &contracts {
        let not_a_token = |status: u16, body: &Value, call: &str| {
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (400, Some("INVALID_INPUT")),
                "{what} ({call}): {body}"
            );
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("is not an ERC-20 token contract"),
                "{what} ({call}): {body}"
            );
        };
        let (status, body) = daemon
            .session(
                &token,
                Method::GET,
                &format!("/v1/wallet/balance?token={address}"),
                None,
            )
            .await;
        not_a_token(status, &body, "balance");
        let transfer = json!({ "to": crate::harness::ANVIL_KEY0_ADDR, "amount": "1", "token": address, "idempotencyKey": format!("nt-{address}") });
        let (status, body) = daemon
            .session(&token, Method::POST, "/v1/transactions/check", Some(transfer.clone()))
            .await;
        not_a_token(status, &body, "check");
        let (status, body) = daemon
            .session(&token, Method::POST, "/v1/transactions/send", Some(transfer))
            .await;
        not_a_token(status, &body, "send");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_domain_of_an_unspecified_bind_address_is_loopback() {
    let mut daemon = Daemon::init(Opts::default());
    // Port 0: the daemon reports the port it got, and the domain carries that port.
    daemon.try_spawn_args(&["start", "--bind", "0.0.0.0:0"]).await.unwrap();
    let (status, nonce) = daemon.request(Method::GET, "/v1/nonce", &[], None).await;
    assert_eq!(status, 200, "{nonce}");
    assert_eq!(nonce["domain"], format!("127.0.0.1:{}", daemon.port));
}

//! Crash safety of `set-master`, proven at its fault points (`bursar::faults::SET_MASTER_POINTS`)
//! rather than by killing at random moments: the daemon aborts right before the store commit
//! that re-seals every key, or right after it (before `recovery.key` is renamed over or
//! deleted). After each crash exactly one of the two passwords opens the store — the old one
//! before the commit, the new one after — with it every key opens and matches its address (the
//! daemon unseals every key at unlock), the wallets, the audit chain and the agents' session
//! tokens are intact, and `recovery.key` is settled at the next start.

use crate::harness::{Daemon, Opts, http, write_private};
use reqwest::Method;
use serde_json::{Value, json};
use std::os::unix::process::ExitStatusExt;

/// Where the operator keeps the master password when `set-master` runs.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Layout {
    /// `recovery.key` kept: rewritten with the new password (staged, then renamed).
    Kept,
    /// No `recovery.key`: the password comes from `BURSAR_MASTER_PASSWORD_FILE`.
    Absent,
    /// `recovery.key` present, and `set-master` asked to delete it.
    Deleted,
}

const WALLETS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_master_crashing_at_each_fault_point_leaves_exactly_one_password() {
    for point in bursar::faults::SET_MASTER_POINTS {
        for layout in [Layout::Kept, Layout::Absent, Layout::Deleted] {
            crash_at(point, layout).await;
        }
    }
}

async fn crash_at(point: &str, layout: Layout) {
    let case = format!("{point} / {layout:?}");
    let committed = match point {
        "set_master_before_commit" => false,
        "set_master_after_commit" => true,
        other => panic!("a set-master fault point this test does not know: {other}"),
    };
    let mut daemon = Daemon::init(Opts::default());
    let old = daemon.password.clone();
    let new = format!("the new master password after {point}");
    let recovery = daemon.data_dir().join("recovery.key");
    let staged = daemon.data_dir().join("recovery.key.new");
    let pw_file = daemon.dir.path().join("master.pw");
    if layout == Layout::Absent {
        write_private(&pw_file, &old);
        std::fs::remove_file(&recovery).unwrap();
    }
    let password_file = ("BURSAR_MASTER_PASSWORD_FILE".to_owned(), pw_file.display().to_string());
    daemon.env = vec![("BURSAR_TEST_FAULT".into(), point.into())];
    if layout == Layout::Absent {
        daemon.env.push(password_file.clone());
    }
    daemon.spawn().await;
    for _ in 1..WALLETS {
        daemon.create_wallet("anvil").await;
    }
    let (_, token) = daemon.wallet_and_token().await;
    let (_, wallets) = daemon.master(Method::GET, "/v1/wallets", None).await;
    assert_eq!(wallets.as_array().unwrap().len(), WALLETS, "{case}");

    // The change aborts the daemon at the fault point: no answer, SIGABRT.
    let body = match layout {
        Layout::Deleted => json!({ "newPassword": new, "recoveryKey": "delete" }),
        _ => json!({ "newPassword": new }),
    };
    let sent = http()
        .put(format!("{}/v1/admin/master-password", daemon.url))
        .header("x-master-password", &old)
        .json(&body)
        .send()
        .await;
    assert!(sent.is_err(), "{case}: the daemon answered instead of dying: {sent:?}");
    let status = daemon.wait_exit();
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{case}: {status:?}");
    let read = |path: &std::path::Path| std::fs::read_to_string(path).ok();
    match layout {
        Layout::Kept => {
            assert_eq!(read(&staged).as_deref(), Some(new.as_str()), "{case}: staged first");
            assert_eq!(read(&recovery).as_deref(), Some(old.as_str()), "{case}");
        }
        Layout::Absent => assert!(!recovery.exists() && !staged.exists(), "{case}"),
        Layout::Deleted => {
            assert_eq!(read(&recovery).as_deref(), Some(old.as_str()), "{case}");
            assert!(!staged.exists(), "{case}");
        }
    }

    // Exactly one password opens the store: each is tried, the wrong one first.
    let expected = if committed { &new } else { &old };
    let wrong = if committed { &old } else { &new };
    daemon.env = vec![password_file.clone()];
    write_private(&pw_file, wrong);
    let (code, log) = daemon
        .try_spawn()
        .await
        .expect_err(&format!("{case}: the other password opened the store"));
    assert_eq!(code, Some(3), "{case}: {log}");
    write_private(&pw_file, expected);
    daemon.spawn().await;
    daemon.password = expected.clone();
    let (status, after) = daemon.master(Method::GET, "/v1/wallets", None).await;
    assert_eq!((status, &after), (200, &wallets), "{case}: wallets changed");
    let (_, audit) = daemon.master(Method::GET, "/v1/audit/verify", None).await;
    assert_eq!(audit["ok"], true, "{case}: {audit}");
    let changes = audit_kind(&daemon, "master_password_changed").await;
    assert_eq!(changes.len(), usize::from(committed), "{case}: {changes:?}");
    // Agents keep working through a change of the master password.
    let (status, body) = daemon.session(&token, Method::GET, "/v1/wallet/address", None).await;
    assert_eq!(status, 200, "{case}: the session token died: {body}");

    // recovery.key is settled by that start.
    assert!(!staged.exists(), "{case}: recovery.key.new left behind");
    match layout {
        Layout::Kept => {
            assert_eq!(read(&recovery).as_deref(), Some(expected.as_str()), "{case}");
            // A plain start, from recovery.key alone, opens the store.
            assert!(daemon.terminate().success(), "{case}");
            daemon.env.clear();
            daemon.spawn().await;
            let (status, _) = daemon.master(Method::GET, "/v1/wallets", None).await;
            assert_eq!(status, 200, "{case}");
        }
        Layout::Absent => assert!(!recovery.exists(), "{case}: recovery.key created"),
        Layout::Deleted if !committed => {
            // Nothing changed: recovery.key still holds the password that opens the store.
            assert_eq!(read(&recovery).as_deref(), Some(old.as_str()), "{case}");
        }
        Layout::Deleted => {
            // The commit happened, the deletion did not: the leftover holds the old password,
            // which no longer opens the store. doctor fails on it with the fix, and a start
            // from it alone says why instead of guessing.
            assert_eq!(read(&recovery).as_deref(), Some(old.as_str()), "{case}");
            let out = daemon.cli(&["doctor", "--json"]).output().unwrap();
            assert_eq!(out.status.code(), Some(1), "{case}");
            let checks: Value = serde_json::from_slice(&out.stdout).unwrap();
            let check = checks
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["check"] == "recovery_key")
                .cloned()
                .unwrap_or_default();
            assert_eq!(check["status"], "fail", "{case}: {checks}");
            assert!(
                check["detail"].as_str().unwrap().contains("no longer opens the store"),
                "{case}: {check}"
            );
            assert!(daemon.terminate().success(), "{case}");
            daemon.env.clear();
            let (code, log) = daemon
                .try_spawn()
                .await
                .expect_err(&format!("{case}: a stale recovery.key opened the store"));
            assert_eq!(code, Some(3), "{case}: {log}");
            assert!(log.contains("does not open the store"), "{case}: {log}");
        }
    }
}

async fn audit_kind(daemon: &Daemon, kind: &str) -> Vec<Value> {
    let (status, entries) = daemon
        .master(Method::GET, &format!("/v1/audit?kind={kind}&limit=1000"), None)
        .await;
    assert_eq!(status, 200, "{entries}");
    entries.as_array().unwrap().clone()
}

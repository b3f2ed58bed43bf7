//! Backups end to end: an archive taken while the daemon serves, the store wiped, restored,
//! and the daemon back with the same password, wallets, policies, owner, sessions, pending
//! approval (approved after the restore and confirmed on a real anvil) and a verifying
//! audit chain; tampered archives, wrong passphrases, a live store and an existing store
//! without --force are refused and leave the store as it was.

use crate::harness::{Anvil, Daemon, write_private};
use crate::owner::{Owner, guarded, post_signed};
use crate::transfers::{RECIPIENT, opts};
use reqwest::Method;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Runs a CLI command of `daemon`: (exit code, stdout JSON or text, stderr).
fn cli(daemon: &Daemon, args: &[&str]) -> (i32, Value, String) {
    let out = daemon.cli(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or(Value::String(stdout));
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_serving_then_wipe_and_restore_brings_everything_back() {
    let anvil = Anvil::start().await;
    let mut daemon = Daemon::start(opts(&anvil)).await;
    let owner = Owner::new();
    let (wid, token) = guarded(&anvil, &daemon, &owner, json!({})).await;
    let send = |amount: &'static str, key: &'static str| {
        let body = json!({ "to": RECIPIENT, "amount": amount, "idempotencyKey": key });
        daemon.session(&token, Method::POST, "/v1/transactions/send", Some(body))
    };
    let (status, confirmed) = send("0.05", "b-instant").await;
    assert_eq!(
        (status, confirmed["status"].as_str()),
        (200, Some("CONFIRMED")),
        "{confirmed}"
    );
    let (status, pending) = send("0.5", "b-approval").await;
    assert_eq!(
        (status, pending["status"].as_str()),
        (200, Some("PENDING_APPROVAL")),
        "{pending}"
    );
    let pending_id = pending["id"].as_str().unwrap().to_owned();
    let (_, balance_before) = daemon.session(&token, Method::GET, "/v1/wallet/balance", None).await;

    // Taken through the running daemon (recovery.key holds the master password here).
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("bursar.backup");
    let (code, report, err) = cli(&daemon, &["--json", "backup", "create", s(&archive)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(report["taken"], "through the running daemon", "{report}");
    assert_eq!(report["sealedWith"], "master password");
    let meta = std::fs::metadata(&archive).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let bytes = std::fs::read(&archive).unwrap();
    for clear in [
        wid.as_bytes(),
        b"wallet/",
        b"SPENDING_LIMIT",
        owner.address().as_bytes(),
    ] {
        assert!(
            !bytes.windows(clear.len()).any(|w| w == clear),
            "the archive shows {clear:?} in clear"
        );
    }
    // Not over an existing file without --force.
    let (code, _, err) = cli(&daemon, &["backup", "create", s(&archive)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--force"), "{err}");
    // Never while the daemon holds the store.
    let (code, _, err) = cli(&daemon, &["backup", "restore", s(&archive), "--force"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("stop it"), "{err}");

    daemon.terminate();
    // Over an existing store: refused without --force.
    let (code, _, err) = cli(&daemon, &["backup", "restore", s(&archive)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--force"), "{err}");
    // A tampered archive: refused, nothing replaced.
    let tampered = dir.path().join("tampered.backup");
    let mut bad = bytes.clone();
    let at = bad.len() / 2;
    bad[at] ^= 0x40;
    std::fs::write(&tampered, &bad).unwrap();
    let (code, _, err) = cli(&daemon, &["backup", "restore", s(&tampered), "--force"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("does not open") && err.contains("nothing was restored"),
        "{err}"
    );
    assert!(!daemon.data_dir().join("store.restoring").exists());

    // Wipe, restore, start.
    std::fs::remove_dir_all(daemon.data_dir().join("store")).unwrap();
    let (code, report, err) = cli(&daemon, &["--json", "backup", "restore", s(&archive)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(report["wallets"], 1, "{report}");
    assert_eq!(report["sessionsKept"], 1);
    assert_eq!(report["transfers"], 2);
    assert_eq!(
        (report["audit"]["ok"].as_bool(), report["audit"]["macChecked"].as_bool()),
        (Some(true), Some(true))
    );
    daemon.spawn().await;

    // The same token, balance, policies, owner and pending approval.
    let (status, balance) = daemon.session(&token, Method::GET, "/v1/wallet/balance", None).await;
    assert_eq!(status, 200, "{balance}");
    assert_eq!(balance["baseUnits"], balance_before["baseUnits"]);
    let (_, policies) = daemon
        .master(Method::GET, &format!("/v1/policies?walletId={wid}"), None)
        .await;
    assert_eq!(policies.as_array().unwrap().len(), 1, "{policies}");
    let (_, wallet) = daemon.master(Method::GET, &format!("/v1/wallets/{wid}"), None).await;
    assert_eq!(
        wallet["owner"]["address"].as_str().unwrap().to_lowercase(),
        owner.address().to_lowercase()
    );
    let (_, waiting) = daemon
        .session(&token, Method::GET, "/v1/transactions?status=PENDING_APPROVAL", None)
        .await;
    assert_eq!(waiting[0]["id"], pending_id.as_str(), "{waiting}");
    // ...which the owner approves now, and which confirms on the chain.
    let (status, m) = daemon
        .session(
            &token,
            Method::GET,
            &format!("/v1/transactions/{pending_id}/approval-message"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{m}");
    let (status, tx) = post_signed(
        &daemon,
        m["submitTo"].as_str().unwrap(),
        &owner.headers(m["message"].as_str().unwrap()),
    )
    .await;
    assert_eq!((status, tx["status"].as_str()), (200, Some("CONFIRMED")), "{tx}");
    let (code, verify, err) = cli(&daemon, &["--json", "audit", "verify"]);
    assert_eq!((code, verify["ok"].as_bool()), (0, Some(true)), "{verify} {err}");
    let (_, restored) = daemon.master(Method::GET, "/v1/audit?kind=backup_restored", None).await;
    assert_eq!(restored.as_array().unwrap().len(), 1, "{restored}");
    let (_, created) = daemon.master(Method::GET, "/v1/audit?kind=backup_created", None).await;
    assert_eq!(
        created.as_array().unwrap().len(),
        1,
        "the archive holds the record of its making"
    );
    assert!(created[0]["seq"].as_u64().unwrap() < restored[0]["seq"].as_u64().unwrap());

    // Again, dropping the sessions: the agent's token dies, the wallet stays.
    daemon.terminate();
    let (code, report, err) = cli(
        &daemon,
        &["--json", "backup", "restore", s(&archive), "--force", "--drop-sessions"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (report["sessionsKept"].as_u64(), report["sessionsDropped"].as_u64()),
        (Some(0), Some(1))
    );
    daemon.spawn().await;
    let (status, _) = daemon.session(&token, Method::GET, "/v1/wallet/address", None).await;
    assert_eq!(status, 401);
    let (status, _) = daemon.master(Method::GET, &format!("/v1/wallets/{wid}"), None).await;
    assert_eq!(status, 200);
    assert!(!daemon.data_dir().join("store.replaced").exists());
    for secret in [daemon.password.as_str(), token.as_str()] {
        assert!(!daemon.logs().contains(secret));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_store_is_backed_up_under_a_separate_passphrase_which_rotates() {
    let anvil = Anvil::start().await;
    let mut daemon = Daemon::start(opts(&anvil)).await;
    let (wallet, _) = daemon.wallet_and_token().await;
    daemon.terminate();
    let dir = tempfile::tempdir().unwrap();
    let (pass_a, pass_b, wrong) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("wrong"));
    write_private(&pass_a, "first backup passphrase\n");
    write_private(&pass_b, "second backup passphrase");
    write_private(&wrong, "not the passphrase at all");
    let (a, b) = (dir.path().join("a.backup"), dir.path().join("b.backup"));

    let (code, report, err) = cli(
        &daemon,
        &["--json", "backup", "create", s(&a), "--passphrase-file", s(&pass_a)],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(report["taken"], "from the stopped store", "{report}");
    assert_eq!(report["sealedWith"], "backup passphrase");
    // Rotation: new archives under B (here through the env form); A opens only the old one.
    let mut create_b = daemon.cli(&["backup", "create", s(&b)]);
    create_b.env("BURSAR_BACKUP_PASSPHRASE_FILE", &pass_b);
    assert!(create_b.output().unwrap().status.success());

    for (archive, passphrase, opens) in [
        (&a, &wrong, false),
        (&a, &pass_b, false),
        (&b, &pass_a, false),
        (&a, &pass_a, true),
        (&b, &pass_b, true),
    ] {
        let (code, _, err) = cli(
            &daemon,
            &[
                "backup",
                "restore",
                s(archive),
                "--force",
                "--passphrase-file",
                s(passphrase),
            ],
        );
        assert_eq!(code == 0, opens, "{archive:?} with {passphrase:?}: {code} {err}");
        if !opens {
            assert_eq!(code, 3, "{err}");
        }
    }
    // The master password does not open an archive sealed under a passphrase.
    let (code, _, err) = cli(&daemon, &["backup", "restore", s(&a), "--force"]);
    assert_eq!(code, 3, "{err}");

    // A wrong master password makes no backup at all.
    let c = dir.path().join("c.backup");
    let mut wrong_master = daemon.cli(&["backup", "create", s(&c)]);
    wrong_master.env("BURSAR_MASTER_PASSWORD_FILE", &wrong);
    let out = wrong_master.output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!c.exists());
    // A short passphrase is refused before anything is read.
    let short = dir.path().join("short");
    write_private(&short, "short");
    let (code, _, err) = cli(&daemon, &["backup", "create", s(&c), "--passphrase-file", s(&short)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("backup passphrase"), "{err}");

    daemon.spawn().await;
    let (status, _) = daemon
        .master(
            Method::GET,
            &format!("/v1/wallets/{}", wallet["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, 200);
    // The REST route refuses a short passphrase (never echoing it) and a missing password.
    let (status, body) = daemon
        .master(
            Method::POST,
            "/v1/admin/backup",
            Some(json!({ "passphrase": "tiny-secret" })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(!body.to_string().contains("tiny-secret"), "{body}");
    let (status, _) = daemon
        .request(Method::POST, "/v1/admin/backup", &[], Some(json!({})))
        .await;
    assert_eq!(status, 401);
}

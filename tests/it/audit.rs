//! The keyed audit chain against someone who can write the store but has no master password:
//! an entry rewritten with the right structure (re-linked, head updated) is named by
//! `audit verify`, the REST route and `doctor`; deleting the audit key to pass the chain off
//! as a legacy one stops the daemon from starting.

use crate::harness::{Daemon, Opts};
use bursar::store::AuditEntry;
use bursar::store::audit::legacy_entry_hash;
use reqwest::Method;
use serde_json::{Value, json};

/// The stopped daemon's sled store, opened the way an attacker with file access would.
fn open_raw(daemon: &Daemon) -> sled::Db {
    sled::open(daemon.data_dir().join("store")).unwrap()
}

/// Rewrites the first `kind` entry's detail with `edit` and re-chains every entry after it
/// (and the head) with the hash function anyone can compute. Returns the edited seq.
fn forge(db: &sled::Db, kind: &str, edit: impl Fn(&mut Value)) -> u64 {
    let mut entries: Vec<AuditEntry> = db
        .scan_prefix("auditlog/")
        .map(|kv| serde_json::from_slice(&kv.unwrap().1).unwrap())
        .collect();
    let target = entries
        .iter()
        .position(|e| e.event.kind == kind)
        .expect("entry to edit");
    edit(&mut entries[target].event.detail);
    let mut prev = entries[target].prev_hash.clone();
    for entry in &mut entries[target..] {
        entry.prev_hash = prev.clone();
        entry.hash = legacy_entry_hash(entry.seq, entry.ts, &entry.event, &prev);
        prev = entry.hash.clone();
        db.insert(
            format!("auditlog/{:020}", entry.seq),
            serde_json::to_vec(&entry).unwrap(),
        )
        .unwrap();
    }
    let last = entries.last().unwrap().seq;
    db.insert(
        "meta/audit_head",
        serde_json::to_vec(&json!({ "seq": last, "hash": prev })).unwrap(),
    )
    .unwrap();
    db.flush().unwrap();
    entries[target].seq
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_entry_rewritten_without_the_key_is_named_by_verify_and_doctor() {
    let mut daemon = Daemon::start(Opts::default()).await;
    let wallet = daemon.create_wallet("anvil").await;
    daemon.create_session(wallet["id"].as_str().unwrap(), json!({})).await;
    let (_, before) = daemon.master(Method::GET, "/v1/audit/verify", None).await;
    assert_eq!(
        (&before["ok"], &before["keyedFrom"], &before["macChecked"]),
        (&json!(true), &json!(1), &json!(true)),
        "a new store is keyed from its first entry: {before}"
    );
    assert!(daemon.terminate().success());

    // The wallet's recorded address is swapped for the attacker's, and the chain re-linked.
    let forged = {
        let db = open_raw(&daemon);
        forge(&db, "wallet_created", |detail| {
            detail["address"] = json!("0x000000000000000000000000000000000000dEaD")
        })
    };

    daemon.spawn().await;
    let out = daemon.cli(&["audit", "verify"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("AUDIT CHAIN BROKEN at entry {forged}: MAC does not verify")),
        "{stdout}"
    );
    let (status, verify) = daemon.master(Method::GET, "/v1/audit/verify", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (&verify["ok"], &verify["firstBadSeq"]),
        (&json!(false), &json!(forged)),
        "{verify}"
    );

    let out = daemon.cli(&["doctor"]).output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let line = report
        .lines()
        .find(|l| l.contains("audit_chain"))
        .unwrap_or_else(|| panic!("no audit_chain line: {report}"));
    assert!(
        line.starts_with("[FAIL]") && line.contains(&format!("entry {forged}")),
        "{line}"
    );

    // Stopped, `doctor` reads the store itself and checks the MACs with recovery.key.
    assert!(daemon.terminate().success());
    let out = daemon.cli(&["doctor", "--json"]).output().unwrap();
    let checks: Value = serde_json::from_slice(&out.stdout).unwrap();
    let audit = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "audit_chain")
        .unwrap();
    assert_eq!(audit["status"], "fail", "{audit}");
    assert!(
        audit["detail"].as_str().unwrap().contains(&format!("entry {forged}")),
        "{audit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_audit_key_to_pass_the_chain_off_as_legacy_is_refused() {
    let mut daemon = Daemon::start(Opts::default()).await;
    assert!(daemon.terminate().success());
    {
        let db = open_raw(&daemon);
        assert!(db.remove("secret/audit").unwrap().is_some());
        db.flush().unwrap();
    }
    let (code, log) = daemon
        .try_spawn()
        .await
        .expect_err("a keyed store without its key must not start");
    assert_ne!(code, Some(0));
    assert!(log.contains("secret/audit"), "{log}");
}

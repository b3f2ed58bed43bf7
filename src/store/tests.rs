use super::*;

fn event(kind: &str) -> AuditEvent {
    AuditEvent::new(kind, "system")
}

#[test]
fn commit_chains_audit_entries_and_verify_detects_tampering() {
    let kv = Arc::new(MemKv::default());
    let store = Store::with_kv(kv.clone()).unwrap();
    for kind in ["init", "unlock", "wallet_created"] {
        let mut batch = Batch::new();
        batch.put(format!("x/{kind}"), &kind).audit(event(kind));
        store.commit(batch).unwrap();
    }
    let v = store.audit_verify().unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.entries, 3);
    let listed = store
        .audit_list(&AuditFilter {
            kind: Some("unlock".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].seq, 2);

    // Rewrite entry 2's event: its hash no longer verifies.
    let mut entry: AuditEntry = store.get(&audit::entry_key(2)).unwrap().unwrap();
    entry.event.kind = "nothing_to_see".into();
    kv.commit(&[Op::Put(
        audit::entry_key(2).into_bytes(),
        serde_json::to_vec(&entry).unwrap(),
    )])
    .unwrap();
    let v = store.audit_verify().unwrap();
    assert_eq!((v.ok, v.first_bad_seq), (false, Some(2)));
}

#[test]
fn truncated_tail_is_detected() {
    let kv = Arc::new(MemKv::default());
    let store = Store::with_kv(kv.clone()).unwrap();
    for kind in ["a", "b"] {
        store.audit(event(kind)).unwrap();
    }
    kv.commit(&[Op::Delete(audit::entry_key(2).into_bytes())]).unwrap();
    assert!(!store.audit_verify().unwrap().ok);
}

#[test]
fn reopening_continues_the_chain() {
    let kv = Arc::new(MemKv::default());
    Store::with_kv(kv.clone()).unwrap().audit(event("a")).unwrap();
    let store = Store::with_kv(kv).unwrap();
    store.audit(event("b")).unwrap();
    let v = store.audit_verify().unwrap();
    assert!(v.ok && v.entries == 2, "{v:?}");
}

#[test]
fn sled_commit_is_durable_and_second_open_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let mut batch = Batch::new();
        batch
            .put("wallet/1", &serde_json::json!({"n": 1}))
            .audit(event("wallet_created"));
        store.commit(batch).unwrap();
        assert!(matches!(Store::open(dir.path()), Err(StoreError::Locked)));
    }
    let store = Store::open(dir.path()).unwrap();
    let got: Option<serde_json::Value> = store.get("wallet/1").unwrap();
    assert_eq!(got, Some(serde_json::json!({"n": 1})));
    assert!(store.audit_verify().unwrap().ok);
}

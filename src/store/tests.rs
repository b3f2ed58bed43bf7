//! Unit tests of the store: commits, the audit chain, indexes and bounded reads.

use super::*;
use crate::domain::{TxId, TxState, WalletId};
use crate::keystore::AuditKey;

fn event(kind: &str) -> AuditEvent {
    AuditEvent::new(kind, "system")
}

/// A store over `kv` with the test audit key loaded, keyed from entry 1.
fn keyed(kv: Arc<dyn Kv>) -> Store {
    let store = Store::with_kv(kv).unwrap();
    store.set_audit_key(AuditKey::for_tests(7), 1);
    store
}

fn stored_entry(kv: &MemKv, seq: u64) -> AuditEntry {
    serde_json::from_slice(&kv.get(audit::entry_key(seq).as_bytes()).unwrap().unwrap()).unwrap()
}

fn put_entry(kv: &MemKv, entry: &AuditEntry) {
    kv.commit(&[Op::Put(
        audit::entry_key(entry.seq).into_bytes(),
        serde_json::to_vec(entry).unwrap(),
    )])
    .unwrap();
}

#[test]
fn commit_chains_audit_entries_and_verify_detects_tampering() {
    let kv = Arc::new(MemKv::default());
    let store = keyed(kv.clone());
    for kind in ["init", "unlock", "wallet_created"] {
        let mut batch = Batch::new();
        batch.put(format!("x/{kind}"), &kind).audit(event(kind));
        store.commit(batch).unwrap();
    }
    let v = store.audit_verify().unwrap();
    assert!(v.ok && v.mac_checked, "{v:?}");
    assert_eq!((v.entries, v.keyed_from, v.legacy_entries), (3, Some(1), 0));
    let listed = store
        .audit_list(&AuditFilter {
            kind: Some("unlock".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].seq, 2);

    // Rewrite entry 2's event: its MAC no longer verifies.
    let mut entry = stored_entry(&kv, 2);
    entry.event.kind = "nothing_to_see".into();
    put_entry(&kv, &entry);
    let v = store.audit_verify().unwrap();
    assert_eq!((v.ok, v.first_bad_seq), (false, Some(2)));
}

/// The attack the key is for: whoever can write the store edits an entry and re-chains
/// everything after it consistently — with the hash function, not the key.
#[test]
fn an_entry_rewritten_without_the_key_is_named_even_when_the_chain_links() {
    let kv = Arc::new(MemKv::default());
    let store = keyed(kv.clone());
    for kind in ["init", "wallet_created", "tx_requested", "tx_signed"] {
        store
            .audit(event(kind).detail(serde_json::json!({ "baseUnits": "1000" })))
            .unwrap();
    }
    let mut prev = stored_entry(&kv, 2).hash;
    for seq in 3..=4 {
        let mut entry = stored_entry(&kv, seq);
        if seq == 3 {
            entry.event.detail = serde_json::json!({ "baseUnits": "1" });
        }
        entry.prev_hash = prev.clone();
        entry.hash = audit::legacy_entry_hash(entry.seq, entry.ts, &entry.event, &prev);
        prev = entry.hash.clone();
        put_entry(&kv, &entry);
    }
    let head = audit::Head { seq: 4, hash: prev };
    kv.commit(&[Op::Put(
        keys::AUDIT_HEAD.as_bytes().to_vec(),
        serde_json::to_vec(&head).unwrap(),
    )])
    .unwrap();
    // A fresh open (the daemon restarted) reads the forged head; the MAC still names seq 3.
    let reopened = keyed(kv.clone());
    let v = reopened.audit_verify().unwrap();
    assert_eq!((v.ok, v.first_bad_seq), (false, Some(3)), "{v:?}");
    assert!(v.problem.unwrap().contains("MAC"));
    // Dropping the MAC marker to pass the entry off as legacy does not help either.
    let mut entry = stored_entry(&kv, 3);
    entry.alg = None;
    put_entry(&kv, &entry);
    assert_eq!(reopened.audit_verify().unwrap().first_bad_seq, Some(3));
}

#[test]
fn legacy_entries_verify_up_to_the_keyed_start() {
    let kv = Arc::new(MemKv::default());
    // A chain as written before keyed chains: plain SHA-256 links.
    let mut prev = "0".repeat(64);
    for seq in 1..=2 {
        let ev = event("legacy");
        let hash = audit::legacy_entry_hash(seq, 1_000, &ev, &prev);
        put_entry(
            &kv,
            &AuditEntry {
                seq,
                ts: 1_000,
                event: ev,
                prev_hash: prev.clone(),
                hash: hash.clone(),
                alg: None,
            },
        );
        prev = hash;
    }
    kv.commit(&[Op::Put(
        keys::AUDIT_HEAD.as_bytes().to_vec(),
        serde_json::to_vec(&audit::Head { seq: 2, hash: prev }).unwrap(),
    )])
    .unwrap();
    let store = Store::with_kv(kv.clone()).unwrap();
    let v = store.audit_verify().unwrap();
    assert!(v.ok && v.keyed_from.is_none() && v.legacy_entries == 2, "{v:?}");
    // Nothing is appended unkeyed.
    assert!(matches!(store.audit(event("x")), Err(StoreError::AuditKeyNotLoaded)));
    store.set_audit_key(AuditKey::for_tests(9), 3);
    store.audit(event("audit_chain_keyed")).unwrap();
    store.audit(event("unlock")).unwrap();
    let v = store.audit_verify().unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!((v.entries, v.keyed_from, v.legacy_entries), (4, Some(3), 2));
    // A keyed entry cannot be passed off as legacy by moving the switch point: the verifier
    // takes it from the sealed key, and entries from there on must carry a MAC.
    let wrong_key = keyed(kv.clone());
    let v = wrong_key.audit_verify().unwrap();
    assert_eq!(v.first_bad_seq, Some(1), "legacy entries are not keyed: {v:?}");
}

#[test]
fn truncated_tail_is_detected() {
    let kv = Arc::new(MemKv::default());
    let store = keyed(kv.clone());
    for kind in ["a", "b"] {
        store.audit(event(kind)).unwrap();
    }
    kv.commit(&[Op::Delete(audit::entry_key(2).into_bytes())]).unwrap();
    assert!(!store.audit_verify().unwrap().ok);
    // Everything gone, head included: a keyed chain must still hold its first keyed entry.
    kv.commit(&[
        Op::Delete(audit::entry_key(1).into_bytes()),
        Op::Delete(keys::AUDIT_HEAD.as_bytes().to_vec()),
    ])
    .unwrap();
    let v = keyed(kv).audit_verify().unwrap();
    assert_eq!((v.ok, v.first_bad_seq), (false, Some(1)), "{v:?}");
}

#[test]
fn reopening_continues_the_chain() {
    let kv = Arc::new(MemKv::default());
    keyed(kv.clone()).audit(event("a")).unwrap();
    let store = keyed(kv);
    store.audit(event("b")).unwrap();
    let v = store.audit_verify().unwrap();
    assert!(v.ok && v.entries == 2, "{v:?}");
}

#[test]
fn events_from_a_locked_store_are_chained_in_at_unlock() {
    let kv = Arc::new(MemKv::default());
    let locked = Store::with_kv(kv.clone()).unwrap();
    locked
        .audit_pending(event("unlock_failed").detail(serde_json::json!({ "reason": "wrong master password" })))
        .unwrap();
    let store = keyed(kv);
    assert_eq!(store.append_pending().unwrap(), 1);
    assert_eq!(store.append_pending().unwrap(), 0);
    let entries = store.audit_list(&AuditFilter::default()).unwrap().items;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].event.kind, "unlock_failed");
    assert!(entries[0].event.detail["queuedAt"].is_i64());
    assert!(store.audit_verify().unwrap().ok);
}

/// A flush that fails after the batch was applied used to leave the in-memory head behind:
/// the next commit reused the sequence number and overwrote the entry that held it.
#[test]
fn a_failed_flush_never_reuses_an_audit_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.set_audit_key(AuditKey::for_tests(3), 1);
    store.audit(event("first")).unwrap();
    crate::faults::arm_on_this_thread("flush_fails_once");
    assert!(store.audit(event("applied_but_not_flushed")).is_err());
    store.audit(event("third")).unwrap();
    let kinds: Vec<(u64, String)> = store
        .audit_list(&AuditFilter::default())
        .unwrap()
        .items
        .into_iter()
        .map(|e| (e.seq, e.event.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            (1, "first".to_owned()),
            (2, "applied_but_not_flushed".to_owned()),
            (3, "third".to_owned())
        ]
    );
    assert!(store.audit_verify().unwrap().ok);
}

#[test]
fn audit_pages_walk_back_with_a_cursor_and_filters_read_a_bounded_range() {
    let store = keyed(Arc::new(MemKv::default()));
    for i in 0..120 {
        store.audit(event(if i % 10 == 0 { "rare" } else { "common" })).unwrap();
    }
    let page = |before, limit, kind: Option<&str>| {
        store
            .audit_list(&AuditFilter {
                before,
                limit: Some(limit),
                kind: kind.map(str::to_owned),
                ..Default::default()
            })
            .unwrap()
    };
    let first = page(None, 50, None);
    assert_eq!((first.items[0].seq, first.items[49].seq), (71, 120));
    assert_eq!(first.next_before, Some(71));
    let last = page(Some(21), 50, None);
    assert_eq!((last.items.len(), last.next_before), (20, None));
    let rare = page(None, 5, Some("rare"));
    let seqs: Vec<u64> = rare.items.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [71, 81, 91, 101, 111]);
    assert_eq!(rare.next_before, Some(71));
    assert_eq!(page(Some(71), 500, Some("rare")).items.len(), 7);
    // `after_seq` is a floor; the limit keeps the newest above it.
    let after = store
        .audit_list(&AuditFilter {
            after_seq: Some(100),
            limit: Some(5),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(after.items[0].seq, 116);
    assert_eq!(after.next_before, Some(116));
}

fn tx_record(wallet: WalletId, status: TxState) -> records::TxRecord {
    records::TxRecord {
        v: records::RECORD_VERSION,
        id: TxId::new(),
        wallet_id: wallet,
        session_id: None,
        chain: "anvil".parse().unwrap(),
        status,
        tier: None,
        to: "0x0000000000000000000000000000000000000001".into(),
        token: None,
        symbol: "ETH".into(),
        decimals: 18,
        base_units: alloy_primitives::U256::from(1u64),
        memo: None,
        idempotency_key: "k".into(),
        request_hash: String::new(),
        reasons: Vec::new(),
        trace: serde_json::Value::Null,
        reserved: records::Reservation::default(),
        created_at: 0,
        updated_at: 0,
        executes_at: None,
        expires_at: None,
        nonce: None,
        blockhash: None,
        raw: None,
        hash: None,
        block: None,
        confirmations: 0,
        error: None,
        nonce_passed_at: None,
        fee: None,
        fee_paid: None,
        signed_at: None,
        replaced_hashes: Vec::new(),
        cancel_hash: None,
        indexed: records::Indexed::Absent,
    }
}

fn save(store: &Store, tx: &records::TxRecord) {
    let mut batch = Batch::new();
    batch.put(keys::tx(tx.wallet_id, tx.id), tx).index_tx_status(
        tx.wallet_id,
        tx.id,
        records::Indexed::Unknown,
        tx.status,
    );
    store.commit(batch).unwrap();
}

#[test]
fn transfer_pages_counts_and_the_status_index_follow_each_save() {
    let store = keyed(Arc::new(MemKv::default()));
    let (wallet, other) = (WalletId::new(), WalletId::new());
    let mut txs = Vec::new();
    for i in 0..7 {
        let tx = tx_record(
            wallet,
            if i % 2 == 0 {
                TxState::Denied
            } else {
                TxState::Requested
            },
        );
        save(&store, &tx);
        txs.push(tx);
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    save(&store, &tx_record(other, TxState::Requested));

    let page = store.tx_page(wallet, None, None, 3).unwrap();
    let ids: Vec<TxId> = page.items.iter().map(|t| t.id).collect();
    assert_eq!(ids, [txs[6].id, txs[5].id, txs[4].id], "newest first");
    assert_eq!(page.next_before, Some(txs[4].id));
    let rest = store.tx_page(wallet, None, page.next_before, 10).unwrap();
    assert_eq!((rest.items.len(), rest.next_before), (4, None));

    let open = [TxState::Requested, TxState::Signed];
    assert_eq!(store.count_txs_in(wallet, &open, 100).unwrap(), 3);
    assert_eq!(store.count_txs_in(wallet, &open, 2).unwrap(), 2, "stops at the cap");
    // A transfer moving on leaves its old status entry behind; twice in one batch too.
    let mut moved = txs[1].clone();
    let mut batch = Batch::new();
    for status in [TxState::Signed, TxState::Confirmed] {
        moved.status = status;
        batch.put(keys::tx(wallet, moved.id), &moved).index_tx_status(
            wallet,
            moved.id,
            records::Indexed::Unknown,
            status,
        );
    }
    store.commit(batch).unwrap();
    assert_eq!(store.count_txs_in(wallet, &open, 100).unwrap(), 2);
    let confirmed = store.tx_page(wallet, Some(TxState::Confirmed), None, 10).unwrap();
    assert_eq!(confirmed.items.len(), 1);
    assert_eq!(confirmed.items[0].id, moved.id);
    // The same when the copy knows its entry: only the stale key is deleted, each time.
    let mut tracked = txs[3].clone();
    let mut from = records::Indexed::Under(TxState::Requested);
    let mut batch = Batch::new();
    for status in [TxState::Signed, TxState::Submitted, TxState::Submitted, TxState::Failed] {
        tracked.status = status;
        batch
            .put(keys::tx(wallet, tracked.id), &tracked)
            .index_tx_status(wallet, tracked.id, from, status);
        from = records::Indexed::Under(status);
    }
    store.commit(batch).unwrap();
    let in_flight = [TxState::Requested, TxState::Signed, TxState::Submitted];
    assert_eq!(
        store.count_txs_in(wallet, &in_flight, 100).unwrap(),
        1,
        "only txs[5] is left"
    );
    let failed = store.tx_page(wallet, Some(TxState::Failed), None, 10).unwrap();
    assert_eq!(failed.items.iter().map(|t| t.id).collect::<Vec<_>>(), [tracked.id]);

    let created_ms =
        |tx: &records::TxRecord| i64::from_str_radix(&tx.id.to_string().replace('-', "")[..12], 16).unwrap();
    assert_eq!(store.count_txs_since(wallet, created_ms(&txs[4]), 100).unwrap(), 3);
    assert_eq!(store.count_txs_since(wallet, 0, 5).unwrap(), 5, "stops at the cap");
    let old_denied = store
        .oldest_txs_in(wallet, TxState::Denied, created_ms(&txs[4]), 10)
        .unwrap();
    let ids: Vec<TxId> = old_denied.iter().map(|t| t.id).collect();
    assert_eq!(ids, [txs[0].id, txs[2].id]);
}

#[test]
fn the_status_index_of_an_older_store_is_built_once() {
    let kv = Arc::new(MemKv::default());
    let store = keyed(kv.clone());
    let wallet = WalletId::new();
    let tx = tx_record(wallet, TxState::Submitted);
    let mut batch = Batch::new();
    batch.put(keys::tx(wallet, tx.id), &tx);
    store.commit(batch).unwrap();
    assert_eq!(store.build_tx_index().unwrap(), Some(1));
    assert_eq!(store.build_tx_index().unwrap(), None);
    assert_eq!(store.count_txs_in(wallet, &[TxState::Submitted], 10).unwrap(), 1);
    assert!(store.audit_verify().unwrap().ok);
}

#[test]
fn sled_commit_is_durable_and_second_open_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.set_audit_key(AuditKey::for_tests(1), 1);
        let sealed = crate::keystore::Sealed {
            nonce: [0; 12],
            ciphertext: Vec::new(),
        };
        let mut batch = Batch::new();
        batch
            .put("wallet/1", &serde_json::json!({"n": 1}))
            .put(
                keys::AUDIT_KEY,
                &records::AuditKeyRecord {
                    v: 1,
                    keyed_from: 1,
                    sealed,
                },
            )
            .audit(event("wallet_created"));
        store.commit(batch).unwrap();
        assert!(matches!(Store::open(dir.path()), Err(StoreError::Locked)));
    }
    let store = Store::open(dir.path()).unwrap();
    let got: Option<serde_json::Value> = store.get("wallet/1").unwrap();
    assert_eq!(got, Some(serde_json::json!({"n": 1})));
    // Offline, without the key: links verify, MACs are not checked (and say so).
    let v = store.audit_verify().unwrap();
    assert!(v.ok && !v.mac_checked, "{v:?}");
}

#[test]
fn pruning_removes_old_final_transfers_with_their_index_and_idempotency_keys() {
    let store = keyed(Arc::new(MemKv::default()));
    let wallet = WalletId::new();
    let now = 1_900_000_000;
    let mut saved = Vec::new();
    for (i, (status, updated_at)) in [
        (TxState::Denied, now - 100),
        (TxState::Denied, now + 100), // cancelled or denied after the cutoff: kept
        (TxState::Confirmed, now - 100),
    ]
    .into_iter()
    .enumerate()
    {
        let mut tx = tx_record(wallet, status);
        tx.idempotency_key = format!("key-{i}");
        tx.updated_at = updated_at;
        let idem = keys::idempotency(wallet, &keys::idempotency_hash(&tx.idempotency_key));
        let mut batch = Batch::new();
        batch
            .put(keys::tx(wallet, tx.id), &tx)
            .index_tx_status(wallet, tx.id, records::Indexed::Unknown, status)
            .put(
                idem.clone(),
                &records::IdempotencyRecord {
                    tx_id: tx.id,
                    request_hash: String::new(),
                },
            );
        store.commit(batch).unwrap();
        saved.push((tx, idem));
    }
    // Every id here was created before `now` (2030), so the cutoff's creation test passes.
    let mut batch = Batch::new();
    let (examined, deleted) = store
        .stage_prune(&mut batch, wallet, TxState::Denied, now, 100)
        .unwrap();
    store.commit(batch).unwrap();
    assert_eq!((examined, deleted), (2, 1));
    let (gone, gone_idem) = &saved[0];
    assert!(
        store
            .get::<records::TxRecord>(&keys::tx(wallet, gone.id))
            .unwrap()
            .is_none()
    );
    assert!(store.get::<records::IdempotencyRecord>(gone_idem).unwrap().is_none());
    assert_eq!(store.count_txs_in(wallet, &[TxState::Denied], 10).unwrap(), 1);
    for (kept, idem) in &saved[1..] {
        assert!(
            store
                .get::<records::TxRecord>(&keys::tx(wallet, kept.id))
                .unwrap()
                .is_some()
        );
        assert!(store.get::<records::IdempotencyRecord>(idem).unwrap().is_some());
    }
}

/// What a caller sees of a stored transfer is typed: every field parses back to what was
/// stored (addresses for the wallet's chain kind, tier, amount, sequence, fees, the rule
/// trace), and a record with a field that does not parse is refused as corrupt, by key.
#[test]
fn a_stored_transfer_reads_back_typed_and_a_bad_field_is_refused_as_corrupt() {
    use crate::domain::{Address, Amount, Asset, ChainKind, Effect, FeeQuote, Sequence, Tier, TraceEntry};
    let token = "0x000000000000000000000000000000000000dEaD";
    let trace = vec![TraceEntry {
        policy_id: Some("p1".into()),
        rule: "SPENDING_LIMIT.delay_max".into(),
        counter: None,
        effect: Effect::Tier(Tier::Delay),
        detail: "1 is within 5".into(),
    }];
    let fee = FeeQuote {
        gas_limit: 21_000,
        max_fee_per_gas: 3,
        max_priority_fee_per_gas: 1,
        extra_fee: 0,
    };
    let mut record = tx_record(WalletId::new(), TxState::Delayed);
    record.tier = Some("DELAY".into());
    record.token = Some(token.to_lowercase());
    record.trace = records::trace_json(&trace);
    record.fee = Some(fee.into());
    record.nonce = Some(7);
    record.replaced_hashes = vec!["0xab".into()];

    let t = record.transfer(ChainKind::Evm).unwrap();
    assert_eq!(
        (t.id, t.wallet_id, t.status),
        (record.id, record.wallet_id, TxState::Delayed)
    );
    assert_eq!(t.tier, Some(Tier::Delay));
    assert_eq!(t.to, Address::parse(ChainKind::Evm, &record.to).unwrap());
    assert_eq!(t.asset, Asset::Token(Address::parse(ChainKind::Evm, token).unwrap()));
    assert_eq!(t.token().unwrap().to_string(), token, "shown EIP-55 checksummed");
    assert_eq!(t.amount, Amount::new(record.base_units, 18).unwrap());
    assert_eq!(t.trace, trace);
    assert_eq!(t.fee, Some(fee));
    assert_eq!((t.sequence, t.nonce()), (Some(Sequence::AccountNonce(7)), Some(7)));
    assert_eq!(t.replaced_hashes, record.replaced_hashes);
    // Recorded without a trace (null) reads as none.
    record.trace = serde_json::Value::Null;
    assert!(record.transfer(ChainKind::Evm).unwrap().trace.is_empty());

    let key = keys::tx(record.wallet_id, record.id);
    let refused = |r: &records::TxRecord, kind: ChainKind| match r.transfer(kind) {
        Err(StoreError::Corrupt { key: k, reason }) => {
            assert_eq!(k, key);
            reason
        }
        other => panic!("expected a corrupt record, got {other:?}"),
    };
    let bad_to = records::TxRecord {
        to: "0xnot-an-address".into(),
        ..record.clone()
    };
    assert!(refused(&bad_to, ChainKind::Evm).contains("invalid evm address"));
    // The addresses are parsed for the wallet's chain kind: an EVM address is no Solana one.
    assert!(refused(&record, ChainKind::Solana).contains("invalid solana address"));
    let bad_tier = records::TxRecord {
        tier: Some("FAST".into()),
        ..record.clone()
    };
    assert!(refused(&bad_tier, ChainKind::Evm).contains("unknown tier"));
    let bad_trace = records::TxRecord {
        trace: serde_json::json!([{ "rule": "X", "effect": "MAYBE", "detail": "", "policyId": null, "counter": null }]),
        ..record
    };
    assert!(refused(&bad_trace, ChainKind::Evm).contains("unknown rule effect"));
}

/// What a caller sees of a stored wallet: the address and the owner's typed (no sealed key),
/// and an owner state or address that does not parse is refused as corrupt.
#[test]
fn a_stored_wallet_reads_back_typed_and_a_bad_owner_is_refused_as_corrupt() {
    use crate::domain::{Address, ChainKind, OwnerState};
    let address = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
    let record = records::WalletRecord {
        v: records::RECORD_VERSION,
        id: WalletId::new(),
        name: "ops".into(),
        chain: "anvil".parse().unwrap(),
        kind: ChainKind::Evm,
        address: address.into(),
        created_at: 1,
        key: crate::keystore::Sealed {
            nonce: [0; 12],
            ciphertext: Vec::new(),
        },
        owner: Some(records::OwnerRecord {
            address: address.to_lowercase(),
            state: "LOCKED".into(),
            registered_at: 2,
        }),
        frozen: Some(records::FreezeRecord {
            by: "owner".into(),
            reason: "lost phone".into(),
            since: 3,
        }),
    };
    let w = record.wallet().unwrap();
    assert_eq!((w.id, w.name.as_str(), w.kind), (record.id, "ops", ChainKind::Evm));
    assert_eq!(w.address, Address::parse(ChainKind::Evm, address).unwrap());
    let owner = w.owner.unwrap();
    assert_eq!((owner.address, owner.state), (w.address, OwnerState::Locked));
    assert_eq!(w.frozen.map(|f| (f.by, f.since)), Some(("owner".into(), 3)));

    for owner in [
        records::OwnerRecord {
            address: address.into(),
            state: "MAYBE".into(),
            registered_at: 2,
        },
        records::OwnerRecord {
            address: "0x12".into(),
            state: "GRACE".into(),
            registered_at: 2,
        },
    ] {
        let bad = records::WalletRecord {
            owner: Some(owner),
            ..record.clone()
        };
        assert!(
            matches!(bad.wallet(), Err(StoreError::Corrupt { key, .. }) if key == keys::wallet(record.id)),
            "{:?}",
            bad.wallet()
        );
    }
}

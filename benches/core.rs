//! Micro-benchmarks of the hot and the deliberate paths: unlock (Argon2id at the
//! recommended cost), signing through the keystore (decrypt → re-derive → sign → zeroize),
//! session-token verification, AES-256-GCM open, a durable store commit, and the bounded
//! reads over a wallet with 100,000 transfers (listing, RATE_LIMIT, the open-transfer cap,
//! audit listing).
//! Run: `cargo bench --bench core` (`-- bounded_reads` for the last group alone).

use alloy_primitives::U256;
use bursar::domain::{Address, Amount, ChainKind, ChainName, SessionId, TxId, TxState, WalletId};
use bursar::keystore::{KdfParams, SigningPayload, Unlocked, WalletKeyRef};
use bursar::policy::{self, Asset, Counters, Intent, ParseContext, Policy};
use bursar::secret::Passphrase;
use bursar::session::{self, SessionKeys};
use bursar::store::records::{BudgetRecord, Indexed, RECORD_VERSION, Reservation, SessionRecord, TxRecord};
use bursar::store::{AuditEvent, AuditFilter, Batch, Store, keys};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;

fn keystore(c: &mut Criterion) {
    let password = Passphrase::from("benchmark master password".to_owned());
    let (_, meta) = Unlocked::create(&password, KdfParams::RECOMMENDED).unwrap();
    let mut g = c.benchmark_group("keystore");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.bench_function("unlock_argon2id_64MiB_t3_p4", |b| {
        b.iter(|| Unlocked::unlock(black_box(&meta), &password).unwrap())
    });
    g.finish();

    let keys = Unlocked::unlock(&meta, &password).unwrap();
    let chain: ChainName = "anvil".parse().unwrap();
    let (evm_id, sol_id) = (WalletId::new(), WalletId::new());
    let (evm_addr, evm_sealed) = keys.generate_wallet_key(evm_id, &chain, ChainKind::Evm);
    let (sol_addr, sol_sealed) = keys.generate_wallet_key(sol_id, &chain, ChainKind::Solana);
    let evm = WalletKeyRef {
        wallet_id: evm_id,
        chain: &chain,
        address: evm_addr,
        sealed: &evm_sealed,
    };
    let sol = WalletKeyRef {
        wallet_id: sol_id,
        chain: &chain,
        address: sol_addr,
        sealed: &sol_sealed,
    };
    let jwt = keys.seal_secret("jwt", &[7u8; 32]);
    let mut g = c.benchmark_group("keystore");
    g.bench_function("sign_secp256k1", |b| {
        let payload = SigningPayload::Secp256k1Prehash([9u8; 32]);
        b.iter(|| keys.sign(evm, black_box(&payload)).unwrap())
    });
    g.bench_function("sign_ed25519", |b| {
        let payload = SigningPayload::Ed25519Message(b"a solana message of moderate size".to_vec());
        b.iter(|| keys.sign(sol, black_box(&payload)).unwrap())
    });
    g.bench_function("aes256gcm_open_secret", |b| {
        b.iter(|| keys.open_secret("jwt", black_box(&jwt)).unwrap())
    });
    g.bench_function("check_master_password", |b| {
        b.iter(|| keys.check_master(black_box(b"benchmark master password")))
    });
    g.finish();
}

fn sessions(c: &mut Criterion) {
    let keys = SessionKeys::new(&[3u8; 32], "bench-daemon");
    let (sid, wid) = (SessionId::new(), WalletId::new());
    let now = 1_800_000_000;
    let minted = keys.mint(sid, wid, now, now + 3600);
    let record = SessionRecord {
        v: RECORD_VERSION,
        id: sid,
        wallet_id: wid,
        created_at: now,
        expires_at: now + 3600,
        absolute_expires_at: now + 86400,
        ttl_seconds: 3600,
        max_renewals: 10,
        renewals: 0,
        revoked_at: None,
        token_hash: minted.token_hash.clone(),
        jti: minted.jti.clone(),
    };
    c.bench_function("session/verify_hs256_and_record", |b| {
        b.iter(|| {
            let (claims, _) = keys.decode(black_box(&minted.token)).unwrap();
            session::verify_record(&record, &claims, &minted.token, now + 1).unwrap();
        })
    });
    c.bench_function("session/mint", |b| b.iter(|| keys.mint(sid, wid, now, now + 3600)));
}

fn store(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let mut n = 0u64;
    let mut g = c.benchmark_group("store");
    g.sample_size(30);
    g.bench_function("sled_commit_put_and_flush", |b| {
        b.iter(|| {
            n += 1;
            let mut batch = Batch::new();
            batch.put(format!("bench/{n}"), &n);
            store.commit(batch).unwrap();
        })
    });
    g.bench_function("sled_get", |b| {
        b.iter(|| store.get::<u64>(black_box("bench/1")).unwrap())
    });
    g.finish();
}

/// 100,000 transfers in one wallet (and 100,000 audit entries), every one created inside the
/// RATE_LIMIT window: the worst case for a counter that reads the window.
const HISTORY: usize = 100_000;

fn tx_record(wallet: WalletId, status: TxState, i: usize) -> TxRecord {
    TxRecord {
        v: RECORD_VERSION,
        id: TxId::new(),
        wallet_id: wallet,
        session_id: Some(SessionId::new().to_string()),
        chain: "anvil".parse().unwrap(),
        status,
        tier: Some("INSTANT".into()),
        to: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8".into(),
        token: None,
        symbol: "ETH".into(),
        decimals: 18,
        base_units: U256::from(1_000_000_000_000_000u64),
        memo: None,
        idempotency_key: format!("bench-{i}"),
        request_hash: "ab".repeat(32),
        reasons: vec!["within instant_max 0.1 ETH".into()],
        trace: serde_json::json!([{ "policyId": "p1", "rule": "SPENDING_LIMIT.instant_max", "effect": "INSTANT" }]),
        reserved: Reservation::default(),
        created_at: 1_800_000_000,
        updated_at: 1_800_000_000,
        executes_at: None,
        expires_at: None,
        nonce: Some(i as u64),
        blockhash: None,
        raw: Some("02f8".repeat(30)),
        hash: Some(format!("0x{}", "cd".repeat(32))),
        block: Some(i as u64),
        confirmations: 1,
        error: None,
        nonce_passed_at: None,
        fee: None,
        fee_paid: None,
        signed_at: None,
        replaced_hashes: Vec::new(),
        cancel_hash: None,
        indexed: Indexed::Absent,
    }
}

fn bounded_reads(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let cheap = KdfParams {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    };
    let (keys, _) = Unlocked::create(&Passphrase::from("bench password".to_owned()), cheap).unwrap();
    store.set_audit_key(keys.new_audit_key("audit-chain/1").0, 1);
    let wallet = WalletId::new();
    // Mostly CONFIRMED, one in ten DENIED, the newest few in flight.
    for chunk in 0..HISTORY / 1000 {
        let mut batch = Batch::new();
        for j in 0..1000 {
            let i = chunk * 1000 + j;
            let status = match i {
                i if i >= HISTORY - 20 => TxState::Submitted,
                i if i % 10 == 0 => TxState::Denied,
                _ => TxState::Confirmed,
            };
            let tx = tx_record(wallet, status, i);
            batch
                .put(keys::tx(wallet, tx.id), &tx)
                .index_tx_status(wallet, tx.id, Indexed::Absent, status)
                .audit(
                    AuditEvent::new("tx_confirmed", "system")
                        .wallet(wallet)
                        .detail(serde_json::json!({ "tx": tx.id.to_string(), "hash": tx.hash, "block": i })),
                );
        }
        store.commit(batch).unwrap();
    }
    let middle = store.tx_page(wallet, None, None, HISTORY / 2).unwrap().next_before;

    let mut g = c.benchmark_group("bounded_reads");
    g.sample_size(50);
    g.bench_function("list_transactions_limit_50_of_100k", |b| {
        b.iter(|| store.tx_page(wallet, None, None, black_box(50)).unwrap())
    });
    g.bench_function("list_transactions_limit_50_page_in_the_middle", |b| {
        b.iter(|| store.tx_page(wallet, None, middle, black_box(50)).unwrap())
    });
    g.bench_function("list_transactions_status_denied_limit_50", |b| {
        b.iter(|| {
            store
                .tx_page(wallet, Some(TxState::Denied), None, black_box(50))
                .unwrap()
        })
    });

    // A RATE_LIMIT decision as `Service::evaluate` makes it: the two budget reads, the window
    // count (capped at max_requests + 1) and the pure policy evaluation.
    let parse_ctx = ParseContext {
        chain_kind: ChainKind::Evm,
        native_decimals: 18,
    };
    let policies: Vec<Policy> = [
        (
            "SPENDING_LIMIT",
            serde_json::json!({ "instant_max": "1", "daily_limit": "10000" }),
        ),
        (
            "RATE_LIMIT",
            serde_json::json!({ "max_requests": 100, "window_seconds": 86400 }),
        ),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (kind, rules))| Policy {
        id: format!("p{i}"),
        rules: policy::parse(kind, rules, &parse_ctx).unwrap(),
    })
    .collect();
    let intent = Intent {
        chain: "anvil".parse().unwrap(),
        to: Address::parse(ChainKind::Evm, "0x70997970C51812dc3A010C7d01b50e0d17dc79C8").unwrap(),
        asset: Asset::Native,
        amount: Amount::parse_decimal("0.01", 18).unwrap(),
        call: None,
        approve: None,
        max_fee: Some(U256::from(50_000_000_000_000u64)),
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let decide = |count: &dyn Fn(u64) -> u32| {
        let today: Option<BudgetRecord> = store.get(&keys::budget(wallet, "2027-01-01")).unwrap();
        let month: Option<BudgetRecord> = store.get(&keys::budget(wallet, "2027-01")).unwrap();
        let (today, month) = (today.unwrap_or_default(), month.unwrap_or_default());
        let counters = Counters {
            spent_today_micro_usd: today.micro_usd,
            spent_month_micro_usd: month.micro_usd,
            spent_today_native: today.native,
            spent_month_native: month.native,
            requests_in_window: count,
        };
        let ctx = policy::Context {
            now,
            price: None,
            native_price: None,
            native_decimals: 18,
            max_price_age_seconds: 300,
            counters: &counters,
            owner_registered: true,
            native_symbol: "ETH",
        };
        policy::evaluate(&intent, &policies, &ctx)
    };
    let windowed = |window: u64| {
        let since_ms = (now - window as i64 + 1) * 1000;
        store.count_txs_since(wallet, since_ms, 101).unwrap() as u32 + 1
    };
    assert_eq!(decide(&windowed).outcome, policy::Outcome::Denied);
    g.bench_function("rate_limit_decision_100k_in_window", |b| {
        b.iter(|| decide(black_box(&windowed)))
    });
    g.bench_function("open_transfer_cap_count", |b| {
        let open = [
            TxState::Requested,
            TxState::Delayed,
            TxState::PendingApproval,
            TxState::Signed,
            TxState::Submitted,
        ];
        b.iter(|| store.count_txs_in(wallet, black_box(&open), 1000).unwrap())
    });
    g.bench_function("audit_list_limit_50_of_100k", |b| {
        let filter = AuditFilter {
            limit: Some(50),
            ..Default::default()
        };
        b.iter(|| store.audit_list(black_box(&filter)).unwrap())
    });
    // What the status index adds to each transfer commit (one put, ten deletes).
    let mut i = HISTORY;
    for indexed in [false, true] {
        let name = if indexed {
            "commit_tx_with_status_index_and_audit"
        } else {
            "commit_tx_without_status_index_and_audit"
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                let tx = tx_record(wallet, TxState::Confirmed, i);
                let mut batch = Batch::new();
                batch.put(keys::tx(wallet, tx.id), &tx);
                if indexed {
                    batch.index_tx_status(wallet, tx.id, Indexed::Absent, tx.status);
                }
                batch.audit(AuditEvent::new("tx_confirmed", "system"));
                store.commit(batch).unwrap();
            })
        });
    }
    g.finish();

    // What every call did before: read the whole history (here once per sample).
    let mut g = c.benchmark_group("unbounded_reads_before");
    g.sample_size(10);
    g.bench_function("list_all_100k_and_sort", |b| {
        b.iter(|| {
            let mut all: Vec<TxRecord> = store.list(&keys::wallet_txs(wallet)).unwrap();
            all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
            all.truncate(50);
            all
        })
    });
    g.finish();
}

criterion_group!(benches, keystore, sessions, store, bounded_reads);
criterion_main!(benches);

//! Unit tests of the pipeline's stages on the in-memory fake chain: a `Service` built from
//! parts (in-memory store, a `fake:` chain, the thread's shiftable clock), no node, no process.

use super::*;
use crate::chains::testing::{Control, Refusal};
use crate::config::Config;
use crate::domain::{ChainName, WalletName};
use crate::keystore::KdfParams;
use crate::secret::Passphrase;
use crate::store::Store;
use serde_json::json;

const PASSWORD: &str = "unit test master password";
const CHAIN: &str = "fake";
const RECIPIENT: &str = "0x000000000000000000000000000000000000dEaD";

struct Fixture {
    svc: Arc<Service>,
    chain: Control,
    auth: SessionAuth,
    wallet: WalletRecord,
}

/// A service on a fresh in-memory store with one wallet on the fake chain, `policies` on it
/// and a session for it. `config` is more TOML (e.g. `[transfers]` settings).
async fn fixture(policies: &[(&str, serde_json::Value)], config: &str) -> Fixture {
    let text = format!(
        "[chains.{CHAIN}]\nkind = \"evm\"\nrpc_url = \"fake:{CHAIN}\"\nchain_id = 1337\ndropped_after_seconds = 30\n{config}\n"
    );
    let (config, _) = Config::from_parts(std::path::Path::new("config.toml"), &text, Vec::new()).expect("config");
    let store = Store::in_memory();
    let password = Passphrase::from(PASSWORD.to_owned());
    let kdf = KdfParams {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    };
    Service::initialise_store(&store, &password, kdf).expect("initialise");
    let dir = std::env::temp_dir().join(format!("bursar-unit-{}", uuid::Uuid::new_v4().simple()));
    let svc = Service::from_parts(store, config, &password, crate::config::RecoveryKey::in_dir(&dir)).expect("service");
    let master = svc
        .authenticate_master(Some(PASSWORD.as_bytes()), None)
        .await
        .expect("master");
    let chain_name: ChainName = CHAIN.parse().unwrap();
    let wallet = svc
        .create_wallet(&master, "unit".parse::<WalletName>().unwrap(), chain_name.clone())
        .expect("wallet");
    for (kind, rules) in policies {
        svc.add_policy(&master, wallet.id, kind, rules.clone()).expect("policy");
    }
    let issued = svc
        .create_session(
            &master,
            super::super::NewSession {
                wallet_id: wallet.id,
                ttl_seconds: Some(3600),
                max_renewals: None,
                absolute_lifetime_seconds: None,
            },
        )
        .expect("session");
    let auth = svc.authenticate_session(&issued.token).expect("session auth");
    let chain = match svc.chains.get(&chain_name) {
        Some(Adapter::Fake(fake)) => fake.control(),
        _ => panic!("the fake chain is configured"),
    };
    Fixture {
        wallet: svc.wallet(wallet.id).expect("the wallet's record"),
        svc: Arc::new(svc),
        chain,
        auth,
    }
}

fn request(amount: &str, key: &str) -> TransferRequest {
    TransferRequest {
        to: RECIPIENT.into(),
        amount: Some(amount.into()),
        idempotency_key: key.into(),
        ..TransferRequest::default()
    }
}

fn eth(decimal: &str) -> U256 {
    Amount::parse_decimal(decimal, 18).unwrap().base_units
}

impl Fixture {
    fn recipient(&self) -> U256 {
        self.chain
            .balance(None, Address::parse(self.wallet.kind, RECIPIENT).unwrap())
    }

    fn spent_today(&self) -> U256 {
        self.svc.spent(self.wallet.id, now()).unwrap().today.native
    }

    fn reload(&self, tx: &Transfer) -> TxRecord {
        self.svc.tx(self.wallet.id, tx.id).unwrap()
    }
}

#[tokio::test]
async fn instant_confirms_and_counts_value_plus_the_fee_paid() {
    let f = fixture(&[("SPENDING_LIMIT", json!({ "instant_max": "1" }))], "").await;
    let before = f.recipient();
    let tx = f.svc.send(&f.auth, &request("0.5", "a")).await.unwrap();
    assert_eq!(tx.status, TxState::Confirmed, "{tx:?}");
    assert_eq!(f.recipient() - before, eth("0.5"));
    // The record keeps the policy's rule trace: which rule decided, and why.
    let trace = &tx.trace;
    assert!(trace.iter().any(|t| t.rule.contains("SPENDING_LIMIT")), "{trace:?}");
    let paid = tx.fee_paid.expect("fee from the receipt");
    assert!(!paid.is_zero());
    assert_eq!(
        f.spent_today(),
        eth("0.5") + paid,
        "value + the fee actually paid, trued up"
    );
    // The same key again answers from the record: nothing sent twice.
    let again = f.svc.send(&f.auth, &request("0.5", "a")).await.unwrap();
    assert_eq!(again.id, tx.id);
    assert_eq!(f.chain.broadcasts(), 1);
}

/// A send answers once its receipt is there, waiting for it (bounded by
/// `confirm_wait_seconds`) when the chain does not mine at once; past the bound it answers
/// SUBMITTED and the worker carries on.
#[tokio::test]
async fn a_send_waits_for_its_receipt_but_only_as_long_as_configured() {
    let f = fixture(
        &[("SPENDING_LIMIT", json!({ "instant_max": "1" }))],
        "[transfers]\nconfirm_wait_seconds = 2",
    )
    .await;
    f.chain.set_automine(false);
    let chain = f.chain.clone();
    let miner = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        chain.mine();
    });
    let tx = f.svc.send(&f.auth, &request("0.5", "waits")).await.unwrap();
    miner.await.unwrap();
    assert_eq!(tx.status, TxState::Confirmed, "the send waited for the receipt: {tx:?}");

    let started = std::time::Instant::now();
    let tx = f.svc.send(&f.auth, &request("0.5", "bounded")).await.unwrap();
    assert_eq!(tx.status, TxState::Submitted, "{tx:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(5),
        "waited {waited:?} for a receipt that never came"
    );
}

#[tokio::test]
async fn delay_waits_until_due_then_executes_and_a_cancel_stays_cancelled() {
    let f = fixture(
        &[(
            "SPENDING_LIMIT",
            json!({ "instant_max": "0.1", "delay_max": "5", "delay_seconds": 60 }),
        )],
        "",
    )
    .await;
    let due = f.svc.send(&f.auth, &request("1", "due")).await.unwrap();
    let cancelled = f.svc.send(&f.auth, &request("2", "cancelled")).await.unwrap();
    assert_eq!(due.status, TxState::Delayed);
    let reserved = f.spent_today();
    assert!(reserved > eth("3"), "both delayed transfers hold their budget");
    f.svc.cancel_transaction(&f.auth, cancelled.id).await.unwrap();
    assert!(
        f.spent_today() < reserved - eth("2"),
        "a cancel releases its reservation"
    );

    f.svc.tick().await;
    assert_eq!(f.reload(&due).status, TxState::Delayed, "not before executes_at");
    assert_eq!(f.chain.broadcasts(), 0);

    crate::clock::shift_this_thread(61);
    f.svc.tick().await; // executes (re-checked), broadcast; automine mines it
    f.svc.tick().await; // confirms
    assert_eq!(f.reload(&due).status, TxState::Confirmed);
    assert_eq!(
        f.reload(&cancelled).status,
        TxState::Cancelled,
        "cancelled stays cancelled"
    );
    assert_eq!(f.chain.broadcasts(), 1, "only the due transfer was sent");
    assert_eq!(
        f.recipient() - U256::from(crate::chains::testing::INITIAL_BALANCE),
        eth("1")
    );
}

#[tokio::test]
async fn a_definitive_refusal_fails_and_frees_the_nonce_for_the_next_send() {
    let f = fixture(&[("SPENDING_LIMIT", json!({ "instant_max": "1" }))], "").await;
    f.chain
        .refuse_next(Refusal::Rejected("insufficient funds for gas * price + value".into()));
    let failed = f.svc.send(&f.auth, &request("0.5", "refused")).await.unwrap();
    assert_eq!(failed.status, TxState::Failed);
    assert_eq!(f.spent_today(), U256::ZERO, "the reservation went back");
    let next = f.svc.send(&f.auth, &request("0.5", "next")).await.unwrap();
    assert_eq!(next.status, TxState::Confirmed);
    assert_eq!(next.nonce(), Some(0), "no nonce gap after a refused broadcast");
}

#[tokio::test]
async fn a_refusal_that_proves_nothing_keeps_the_transfer_and_counts_it_once() {
    let f = fixture(
        &[("SPENDING_LIMIT", json!({ "instant_max": "1" }))],
        "[transfers]\nconfirm_wait_seconds = 0",
    )
    .await;
    // A provider that forwards the transaction but answers "internal error".
    f.chain.forward_refused(true);
    f.chain.refuse_next(Refusal::NotAccepted("internal error".into()));
    f.chain.set_automine(false);
    let tx = f.svc.send(&f.auth, &request("0.5", "forwarded")).await.unwrap();
    assert_eq!(f.reload(&tx).status, TxState::Signed, "not FAILED: it may be mined");
    assert_eq!(f.chain.pooled(), 1);
    f.chain.mine();
    f.svc.tick().await;
    let tx = f.reload(&tx);
    assert_eq!(tx.status, TxState::Confirmed);
    assert_eq!(f.spent_today(), eth("0.5") + tx.fee_paid.unwrap(), "counted once");
}

#[tokio::test]
async fn a_superseded_nonce_fails_only_after_the_grace_time() {
    let f = fixture(
        &[("SPENDING_LIMIT", json!({ "instant_max": "1" }))],
        "[transfers]\nconfirm_wait_seconds = 0",
    )
    .await;
    f.chain.set_automine(false);
    let tx = f.svc.send(&f.auth, &request("0.5", "lost")).await.unwrap();
    assert_eq!(tx.status, TxState::Submitted);
    // Another signer of the same key uses the nonce: our bytes can never be mined.
    f.chain.supersede_next_nonce(f.wallet.address().unwrap());
    f.svc.tick().await;
    let waiting = f.reload(&tx);
    assert_eq!(waiting.status, TxState::Submitted, "a refusal alone proves nothing");
    assert!(waiting.nonce_passed_at.is_some(), "the grace time started");
    assert!(f.spent_today() >= eth("0.5"), "it still holds its budget");

    crate::clock::shift_this_thread(31);
    f.svc.tick().await;
    let failed = f.reload(&tx);
    assert_eq!(failed.status, TxState::Failed, "{failed:?}");
    assert!(
        failed
            .error
            .unwrap()
            .contains("nonce 0 was used by another transaction")
    );
    assert_eq!(f.spent_today(), U256::ZERO);
}

#[tokio::test]
async fn a_revert_keeps_only_the_fee_counted() {
    let f = fixture(&[("SPENDING_LIMIT", json!({ "instant_max": "1" }))], "").await;
    f.chain.revert_next();
    let tx = f.svc.send(&f.auth, &request("0.5", "revert")).await.unwrap();
    assert_eq!(tx.status, TxState::Failed);
    assert_eq!(
        f.spent_today(),
        tx.fee_paid.unwrap(),
        "the fee was spent; the value was not"
    );
}

#[tokio::test]
async fn a_stuck_transfer_is_replaced_and_only_one_version_is_mined() {
    let f = fixture(
        &[("SPENDING_LIMIT", json!({ "instant_max": "1" }))],
        "[transfers]\nconfirm_wait_seconds = 0",
    )
    .await;
    f.chain.set_automine(false);
    let tx = f.svc.send(&f.auth, &request("0.5", "stuck")).await.unwrap();
    let first_hash = tx.hash.clone().unwrap();
    crate::clock::shift_this_thread(121); // past the default replace_after_seconds (120)
    f.svc.tick().await;
    let replaced = f.reload(&tx);
    assert_eq!(replaced.replaced_hashes, vec![first_hash]);
    assert_ne!(replaced.hash, tx.hash);
    let (old, new) = (tx.fee.unwrap(), replaced.fee.unwrap());
    assert!(new.max_fee_per_gas > old.max_fee_per_gas + old.max_fee_per_gas / 10);
    assert!(new.max_priority_fee_per_gas > old.max_priority_fee_per_gas + old.max_priority_fee_per_gas / 10);
    assert_eq!(f.chain.pooled(), 1, "the replacement took the nonce's place");
    let before = f.recipient();
    assert_eq!(f.chain.mine(), 1);
    f.svc.tick().await;
    let done = f.reload(&tx);
    assert_eq!(done.status, TxState::Confirmed);
    assert_eq!(f.recipient() - before, eth("0.5"), "sent once");
}

#[tokio::test]
async fn the_daily_limit_counts_every_send_exactly() {
    let f = fixture(
        &[("SPENDING_LIMIT", json!({ "instant_max": "1", "daily_limit": "1" }))],
        "",
    )
    .await;
    let mut confirmed = 0;
    for i in 0..5 {
        let tx = f.svc.send(&f.auth, &request("0.3", &format!("k{i}"))).await.unwrap();
        match tx.status {
            TxState::Confirmed => confirmed += 1,
            TxState::Denied => assert!(tx.reasons.iter().any(|r| r.contains("daily")), "{:?}", tx.reasons),
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(confirmed, 3, "0.9 + fees fits under 1, a fourth 0.3 does not");
    assert!(f.spent_today() <= eth("1"));
}

#[tokio::test]
async fn nothing_is_signed_for_a_frozen_wallet() {
    let f = fixture(
        &[(
            "SPENDING_LIMIT",
            json!({ "instant_max": "0.1", "delay_max": "5", "delay_seconds": 10 }),
        )],
        "",
    )
    .await;
    let delayed = f.svc.send(&f.auth, &request("1", "d")).await.unwrap();
    assert_eq!(delayed.status, TxState::Delayed);
    // Frozen between the decision and the due time, without the kill switch's cancel: the
    // signer's own last check refuses.
    let mut wallet = f.svc.wallet(f.wallet.id).unwrap();
    wallet.frozen = Some(crate::store::records::FreezeRecord {
        by: "test".into(),
        reason: "unit".into(),
        since: now(),
    });
    let mut batch = Batch::new();
    batch.put(keys::wallet(wallet.id), &wallet);
    f.svc.store.commit(batch).unwrap();
    crate::clock::shift_this_thread(11);
    f.svc.tick().await;
    assert_eq!(f.chain.broadcasts(), 0, "nothing signed or sent while frozen");
    assert_ne!(f.reload(&delayed).status, TxState::Confirmed);
}

/// The daily summary's numbers are the store's: for a day with mixed outcomes (confirmed,
/// cancelled, denied) two days ago and a day with a confirmed and a pending transfer today,
/// each window counts exactly its own transfers, sums exactly its confirmed value, lists what
/// is pending now and the daily budget left now.
#[tokio::test]
async fn the_daily_summary_counts_what_the_store_holds() {
    let f = fixture(
        &[(
            "SPENDING_LIMIT",
            json!({ "instant_max": "1", "delay_max": "2", "delay_seconds": 60, "daily_limit": "10" }),
        )],
        "",
    )
    .await;
    crate::clock::shift_this_thread(-2 * 86_400);
    let day_a = now();
    let a1 = f.svc.send(&f.auth, &request("0.5", "a1")).await.unwrap();
    let a2 = f.svc.send(&f.auth, &request("0.25", "a2")).await.unwrap();
    let a3 = f.svc.send(&f.auth, &request("1.8", "a3")).await.unwrap();
    f.svc.cancel_transaction(&f.auth, a3.id).await.unwrap();
    let a4 = f.svc.send(&f.auth, &request("5", "a4")).await.unwrap();
    assert_eq!(
        [a1.status, a2.status, f.reload(&a3).status, a4.status],
        [
            TxState::Confirmed,
            TxState::Confirmed,
            TxState::Cancelled,
            TxState::Denied
        ],
        "APPROVAL without an owner is DENIED"
    );
    crate::clock::shift_this_thread(2 * 86_400);
    let b1 = f.svc.send(&f.auth, &request("0.1", "b1")).await.unwrap();
    let b2 = f.svc.send(&f.auth, &request("1.5", "b2")).await.unwrap();
    assert_eq!([b1.status, b2.status], [TxState::Confirmed, TxState::Delayed]);
    let today = now();

    // The store's own view, counted independently: every transfer of the wallet.
    let all = f.svc.list_transactions(&f.auth, None, None, 500).unwrap().items;
    assert_eq!(all.len(), 6);
    let expected = |from: i64, to: i64| {
        let mut by_status = std::collections::BTreeMap::new();
        let mut moved = U256::ZERO;
        let mut count = 0;
        for t in all.iter().filter(|t| (from..to).contains(&t.created_at)) {
            *by_status.entry(t.status.to_string()).or_insert(0u32) += 1;
            if t.status == TxState::Confirmed {
                moved += t.amount.base_units;
                count += 1;
            }
        }
        (by_status, moved, count)
    };

    for (from, to, statuses, sum) in [
        (
            day_a - 3600,
            day_a + 3600,
            json!({ "CONFIRMED": 2, "CANCELLED": 1, "DENIED": 1 }),
            "0.75",
        ),
        (
            today - 86_400,
            today + 1,
            json!({ "CONFIRMED": 1, "DELAYED": 1 }),
            "0.1",
        ),
    ] {
        let s = f.svc.daily_summary(f.wallet.id, from, to).unwrap();
        let (by_status, moved, count) = expected(from, to);
        assert_eq!(s.by_status, by_status);
        assert_eq!(serde_json::to_value(&s.by_status).unwrap(), statuses);
        assert_eq!(s.moved.len(), 1, "{:?}", s.moved);
        assert_eq!(s.moved[0].amount_base_units, moved.to_string());
        assert_eq!((s.moved[0].amount.as_str(), s.moved[0].count), (sum, count));
        assert_eq!(s.moved[0].asset, "native");
        // Pending is what waits now, whenever it was requested.
        assert_eq!(s.pending, vec![b2.id]);
        assert!(!s.frozen);
    }

    // The daily budget left now: the limit less today's counted spend (value, fees, holds).
    let s = f.svc.daily_summary(f.wallet.id, today - 86_400, today + 1).unwrap();
    let left = eth("10") - f.spent_today();
    let left = Amount::new(left, 18).unwrap().to_decimal_string();
    assert_eq!(s.budget_left, vec![format!("daily: {left} ETH of 10 ETH")]);
    // Every wallet, the 24 hours before now: the same as today's window.
    let all_wallets = f.svc.daily_summaries(today + 1).unwrap();
    assert_eq!(all_wallets.len(), 1);
    assert_eq!(all_wallets[0].by_status, s.by_status);
}

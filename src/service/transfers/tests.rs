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

/// A wallet whose transfers up to 1 ETH are INSTANT, with `config` added.
async fn instant(config: &str) -> Fixture {
    fixture(&[("SPENDING_LIMIT", json!({ "instant_max": "1" }))], config).await
}

/// [`instant`], with a send that answers at once (`confirm_wait_seconds = 0`) on a chain that
/// mines only when told: transfers stay SUBMITTED until a test mines them. `chain` is extra
/// `[chains.*]` configuration.
async fn unmined(chain: &str) -> Fixture {
    let f = instant(&format!("{chain}[transfers]\nconfirm_wait_seconds = 0")).await;
    f.chain.set_automine(false);
    f
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

/// Every pipeline test ends with the (wallet, status) index in step with the records: each
/// transfer listed once, under its own state (a save that missed its stale key would list it
/// twice).
impl Drop for Fixture {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let (store, wallet) = (&self.svc.store, self.wallet.id);
        let records = store
            .tx_page(wallet, None, None, crate::domain::MAX_PAGE)
            .unwrap()
            .items;
        let entries = store.count_txs_in(wallet, &TxState::ALL, usize::MAX).unwrap();
        assert_eq!(
            entries,
            records.len(),
            "status index entries for {} transfers",
            records.len()
        );
        for state in TxState::ALL {
            for tx in store
                .tx_page(wallet, Some(state), None, crate::domain::MAX_PAGE)
                .unwrap()
                .items
            {
                assert_eq!(tx.status, state, "{} is indexed under {state}", tx.id);
            }
        }
    }
}

#[tokio::test]
async fn instant_confirms_and_counts_value_plus_the_fee_paid() {
    let f = instant("").await;
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
    let f = instant("[transfers]\nconfirm_wait_seconds = 2").await;
    f.chain.set_automine(false);
    let chain = f.chain.clone();
    let miner = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        chain.mine();
    });
    let tx = f.svc.send(&f.auth, &request("0.5", "waits")).await.unwrap();
    miner.await.unwrap();
    assert_eq!(tx.status, TxState::Confirmed, "the send waited for the receipt: {tx:?}");

    let (broadcasts_before, looks_before) = (f.chain.broadcasts(), f.chain.status_checks());
    let started = std::time::Instant::now();
    let tx = f.svc.send(&f.auth, &request("0.5", "bounded")).await.unwrap();
    assert_eq!(tx.status, TxState::Submitted, "{tx:?}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(5),
        "waited {waited:?} for a receipt that never came"
    );
    // It looks from 5 ms apart up to 250 ms apart, not in a busy loop (about 14 looks in 2 s,
    // each re-sending the stored bytes).
    let looks = f.chain.status_checks() - looks_before;
    assert!((5..=25).contains(&looks), "{looks} looks in {waited:?}");
    assert!(f.chain.broadcasts() - broadcasts_before >= looks, "each look re-sends");
}

/// The wait's look cadence: as before for its first second (5 ms doubling up to 250 ms), then
/// a quarter of the wait so far, at most 2 s — a 12 s block costs about 20 looks, not 50.
#[test]
fn a_long_wait_looks_less_often_as_it_goes() {
    use super::confirm::next_pause;
    // (looks, the pause after the last one) for a receipt that comes after `total`.
    let looks = |total: Duration| {
        let (mut waited, mut pause, mut n) = (Duration::ZERO, Duration::from_millis(5), 1);
        while waited < total {
            waited += pause;
            n += 1;
            let next = next_pause(pause, waited);
            assert!(
                next <= (waited / 4).max(Duration::from_millis(250)),
                "{next:?} after {waited:?}: a receipt would be seen more than a quarter late"
            );
            pause = next;
        }
        (n, pause)
    };
    // The first second as before: looks at 0, 5, 15, 35, 75, 155, 315, 565, 815, 1065 ms.
    assert_eq!(looks(Duration::from_secs(1)).0, 10);
    let (n, pause) = looks(Duration::from_secs(12));
    assert!((15..=25).contains(&n), "{n} looks in 12 s");
    assert_eq!(pause, Duration::from_secs(2));
    let (n, _) = looks(Duration::from_secs(60));
    assert!(n <= 50, "{n} looks in a minute (every 250 ms: 240)");
}

/// However often a blockhash-bound transfer is looked at (a wait, the worker, both at once),
/// it is sent again at most every 500 ms; another transfer's sends do not hold it back.
#[tokio::test]
async fn a_blockhash_bound_transfer_is_re_sent_at_most_every_500_ms_however_often_it_is_looked_at() {
    let locks = WalletLocks::default();
    let (id, other) = (TxId::new(), TxId::new());
    locks.note_sent(id);
    assert!(
        (0..100).all(|_| !locks.resend_due(id)),
        "a flood of looks right after the send"
    );
    assert!(locks.resend_due(other));
    tokio::time::sleep(Duration::from_millis(520)).await;
    assert!(locks.resend_due(id));
    assert!(!locks.resend_due(id), "due once, then noted sent");
}

/// While a request waits on its transfer, the worker does not look at it too: one look at a
/// time per transfer, not the request's and the worker's (each a status call and a re-send).
#[tokio::test]
async fn the_worker_leaves_a_transfer_alone_while_a_request_waits_on_it() {
    let f = instant("[transfers]\nconfirm_wait_seconds = 2").await;
    f.chain.set_automine(false);
    let (svc, auth) = (f.svc.clone(), f.auth.clone());
    let send = tokio::spawn(async move { svc.send(&auth, &request("0.5", "waited")).await });
    // Late in the wait, where its own looks are 250 ms apart.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let before = f.chain.status_checks();
    for _ in 0..5 {
        f.svc.tick().await;
    }
    let during = f.chain.status_checks() - before;
    assert!(during <= 1, "{during} looks in five worker passes during the wait");
    let tx = send.await.unwrap().unwrap();
    assert_eq!(tx.status, TxState::Submitted, "{tx:?}");
    // The wait is over: the worker looks again, at every pass.
    let before = f.chain.status_checks();
    f.svc.tick().await;
    f.svc.tick().await;
    assert_eq!(f.chain.status_checks() - before, 2);
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
    let f = instant("").await;
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
    let f = instant("[transfers]\nconfirm_wait_seconds = 0").await;
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
    // Its broadcast was never recorded as accepted: the receipt is what audits it, once.
    let broadcasts: Vec<_> = f
        .audit_of(tx.id)
        .into_iter()
        .filter(|(kind, _)| kind == "tx_broadcast")
        .collect();
    assert_eq!(broadcasts.len(), 1, "{broadcasts:?}");
    assert_eq!(broadcasts[0].1["seenMined"], json!(true));
}

#[tokio::test]
async fn a_superseded_nonce_fails_only_after_the_grace_time() {
    let f = unmined("").await;
    let tx = f.svc.send(&f.auth, &request("0.5", "lost")).await.unwrap();
    assert_eq!(tx.status, TxState::Submitted);
    // Another signer of the same key uses the nonce: our bytes can never be mined.
    f.chain.supersede_next_nonce(f.wallet.address().unwrap());
    start_of_a_second();
    f.svc.tick().await;
    let waiting = f.reload(&tx);
    assert_eq!(waiting.status, TxState::Submitted, "a refusal alone proves nothing");
    assert!(waiting.nonce_passed_at.is_some(), "the grace time started");
    assert!(f.spent_today() >= eth("0.5"), "it still holds its budget");

    // The grace time is `dropped_after_seconds` (30): not a second less.
    crate::clock::shift_this_thread(29);
    f.svc.tick().await;
    let still = f.reload(&tx);
    assert_eq!(still.status, TxState::Submitted, "29 s into the grace time: {still:?}");
    crate::clock::shift_this_thread(1);
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
    let f = instant("").await;
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
    let f = unmined("").await;
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

/// Waits for the start of a wall-clock second, so that a test that shifts the clock by whole
/// seconds and then looks at `now()` a few milliseconds later sees exactly the shift it made
/// (not one second more because the real clock ticked over in between).
fn start_of_a_second() {
    let nanos = time::OffsetDateTime::now_utc().nanosecond();
    if nanos > 50_000_000 {
        std::thread::sleep(Duration::from_nanos(u64::from(1_000_000_000 - nanos) + 1_000_000));
    }
}

impl Fixture {
    /// The audit entries about `id`, oldest first: (kind, detail).
    fn audit_of(&self, id: TxId) -> Vec<(String, serde_json::Value)> {
        self.audit_entries(id)
            .into_iter()
            .map(|e| (e.event.kind, e.event.detail))
            .collect()
    }

    /// The audit entries about `id`, oldest first.
    fn audit_entries(&self, id: TxId) -> Vec<crate::store::AuditEntry> {
        let filter = crate::store::AuditFilter {
            wallet_id: Some(self.wallet.id.to_string()),
            limit: Some(crate::store::AuditFilter::MAX_LIMIT),
            ..Default::default()
        };
        let page = self.svc.store.audit_list(&filter).unwrap();
        page.items
            .into_iter()
            .filter(|e| e.event.detail["tx"] == json!(id.to_string()))
            .collect()
    }

    async fn master(&self) -> MasterAuth {
        self.svc
            .authenticate_master(Some(PASSWORD.as_bytes()), None)
            .await
            .expect("master")
    }
}

/// A broadcast with no answer leaves the transfer SIGNED; the worker's re-broadcast of the
/// stored bytes, once the node takes them, marks it SUBMITTED (audited as a re-broadcast).
#[tokio::test]
async fn a_signed_transfer_is_marked_submitted_when_its_rebroadcast_is_accepted() {
    let f = unmined("").await;
    f.chain.refuse_next(Refusal::Unreachable);
    let tx = f.svc.send(&f.auth, &request("0.5", "unanswered")).await.unwrap();
    assert_eq!(
        f.reload(&tx).status,
        TxState::Signed,
        "outcome unknown: it stays SIGNED"
    );
    assert_eq!(f.chain.pooled(), 0);

    f.svc.tick().await;
    let submitted = f.reload(&tx);
    assert_eq!(submitted.status, TxState::Submitted, "{submitted:?}");
    assert_eq!(submitted.hash, tx.hash, "the same stored bytes, not re-signed");
    assert!(submitted.replaced_hashes.is_empty());
    assert_eq!(f.chain.pooled(), 1);
    let broadcasts: Vec<_> = f
        .audit_of(tx.id)
        .into_iter()
        .filter(|(kind, _)| kind == "tx_broadcast")
        .collect();
    assert_eq!(broadcasts.len(), 1, "{broadcasts:?}");
    assert_eq!(broadcasts[0].1["rebroadcast"], json!(true));

    f.chain.mine();
    f.svc.tick().await;
    assert_eq!(f.reload(&tx).status, TxState::Confirmed);
}

/// A SIGNED transfer that reaches the node only after `replace_after_seconds` is marked
/// SUBMITTED and replaced in the same worker pass: being accepted late does not restart its
/// wait.
#[tokio::test]
async fn a_late_rebroadcast_of_an_overdue_transfer_is_replaced_in_the_same_pass() {
    let f = unmined("").await;
    f.chain.refuse_next(Refusal::Unreachable);
    let tx = f.svc.send(&f.auth, &request("0.5", "late")).await.unwrap();
    assert_eq!(f.reload(&tx).status, TxState::Signed);
    crate::clock::shift_this_thread(121);
    f.svc.tick().await;
    let replaced = f.reload(&tx);
    assert_eq!(replaced.status, TxState::Submitted, "{replaced:?}");
    assert_eq!(
        replaced.replaced_hashes,
        vec![tx.hash.clone().unwrap()],
        "replaced in this pass"
    );
    assert_ne!(replaced.hash, tx.hash);
    assert_eq!(f.chain.pooled(), 1, "the replacement took the nonce's place");
}

/// Without a fee-market reason a pending transfer is replaced only once it has waited the
/// configured `replace_after_seconds`: not a second before (the fee market is looked at, and
/// the base fee has not risen), at the second itself.
#[tokio::test]
async fn a_pending_transfer_is_replaced_only_after_the_configured_wait() {
    let f = unmined("replace_after_seconds = 60\n").await;
    start_of_a_second();
    let tx = f.svc.send(&f.auth, &request("0.5", "patient")).await.unwrap();
    assert_eq!(tx.status, TxState::Submitted);
    crate::clock::shift_this_thread(59);
    f.svc.tick().await;
    let waiting = f.reload(&tx);
    assert!(waiting.replaced_hashes.is_empty(), "not before 60 s: {waiting:?}");
    assert_eq!(waiting.hash, tx.hash);
    crate::clock::shift_this_thread(1);
    f.svc.tick().await;
    let replaced = f.reload(&tx);
    assert_eq!(replaced.replaced_hashes, vec![tx.hash.clone().unwrap()], "at 60 s");
    // The fee market did not move: 10% more (plus one wei) on both, and the extra counts.
    let (old, new) = (tx.fee.unwrap(), replaced.fee.unwrap());
    let bump = |x: u128| x + x / 10 + 1;
    assert_eq!(new.max_fee_per_gas, bump(old.max_fee_per_gas));
    assert_eq!(new.max_priority_fee_per_gas, bump(old.max_priority_fee_per_gas));
    let extra = FeeQuote::from(new).max_fee() - old.max_fee();
    assert_eq!(f.spent_today(), eth("0.5") + FeeQuote::from(new).max_fee(), "+{extra}");
}

/// A transfer whose max fee fell below the next block's base fee cannot be mined now: it is
/// replaced before `replace_after_seconds`, but only once it has waited 5 seconds (the fee
/// market costs a call), and only when the base fee is above its max fee, not equal to it.
#[tokio::test]
async fn a_base_fee_above_the_max_fee_replaces_a_transfer_after_five_seconds() {
    let f = unmined("").await;
    start_of_a_second();
    let tx = f.svc.send(&f.auth, &request("0.5", "outbid")).await.unwrap();
    let old = tx.fee.unwrap();
    let tip = old.max_priority_fee_per_gas;
    let rose = old.max_fee_per_gas + 1;
    f.chain.set_fees(rose, tip);
    crate::clock::shift_this_thread(4);
    f.svc.tick().await;
    let early = f.reload(&tx);
    assert!(early.replaced_hashes.is_empty(), "not before 5 s: {early:?}");

    crate::clock::shift_this_thread(1);
    // Still mineable at a base fee equal to its max fee.
    f.chain.set_fees(old.max_fee_per_gas, tip);
    f.svc.tick().await;
    let equal = f.reload(&tx);
    assert!(
        equal.replaced_hashes.is_empty(),
        "a base fee equal to the max fee: {equal:?}"
    );

    f.chain.set_fees(rose, tip);
    f.svc.tick().await;
    let replaced = f.reload(&tx);
    assert_eq!(
        replaced.replaced_hashes,
        vec![tx.hash.clone().unwrap()],
        "at 5 s, outbid"
    );
    let new = replaced.fee.unwrap();
    assert!(new.max_fee_per_gas >= rose + new.max_priority_fee_per_gas, "{new:?}");
    assert_eq!(f.chain.pooled(), 1);
    assert_eq!(f.chain.mine(), 1, "the replacement is mineable at the new base fee");
    f.svc.tick().await;
    assert_eq!(f.reload(&tx).status, TxState::Confirmed);
}

/// The operator's on-chain cancel (a zero-value transfer to the wallet itself at the same
/// nonce) is what gets mined: the transfer ends FAILED, nothing reached the recipient, and
/// only the fee paid stays counted.
#[tokio::test]
async fn the_operators_on_chain_cancel_mined_fails_the_transfer_and_releases_its_budget() {
    let f = unmined("").await;
    let tx = f.svc.send(&f.auth, &request("0.5", "cancel-me")).await.unwrap();
    assert!(f.spent_today() > eth("0.5"));
    let master = f.master().await;
    let cancel = f.svc.cancel_onchain(&master, tx.id).await.unwrap();
    let cancel_hash = cancel.cancel_hash.clone().expect("the cancel's hash is kept");
    assert_eq!(cancel.hash.as_deref(), Some(cancel_hash.as_str()));
    assert_eq!(cancel.replaced_hashes, vec![tx.hash.clone().unwrap()]);
    assert_eq!(f.chain.pooled(), 1, "the cancel took the nonce's place");
    match f.svc.cancel_onchain(&master, tx.id).await {
        Err(ServiceError::Conflict(msg)) => assert!(msg.contains("already signed"), "{msg}"),
        other => panic!("a second cancel: {:?}", other.map(|t| t.hash)),
    }

    let before = f.recipient();
    assert_eq!(f.chain.mine(), 1);
    f.svc.tick().await;
    let done = f.reload(&tx);
    assert_eq!(done.status, TxState::Failed, "{done:?}");
    assert!(
        done.error.as_deref().unwrap_or_default().contains("cancelled on chain"),
        "{done:?}"
    );
    assert_eq!(f.recipient(), before, "nothing sent");
    let paid = done.fee_paid.expect("the cancel's fee");
    assert!(!paid.is_zero());
    assert_eq!(f.spent_today(), paid, "only the fee paid stays counted");
    assert!(f.audit_of(tx.id).iter().any(|(kind, _)| kind == "tx_cancelled_onchain"));
}

/// The worker pass skips a wallet whose previous worker task is still running (a slow RPC);
/// the flag lives in the wallet's one shared set of locks.
#[tokio::test]
async fn a_wallet_whose_worker_is_still_busy_is_skipped_by_the_next_pass() {
    let f = fixture(
        &[(
            "SPENDING_LIMIT",
            json!({ "instant_max": "0.1", "delay_max": "5", "delay_seconds": 10 }),
        )],
        "",
    )
    .await;
    let delayed = f.svc.send(&f.auth, &request("1", "busy")).await.unwrap();
    assert_eq!(delayed.status, TxState::Delayed);
    crate::clock::shift_this_thread(11);
    let locks = f.svc.wallet_locks(f.wallet.id);
    locks.worker_busy.store(true, std::sync::atomic::Ordering::Release);
    f.svc.tick().await;
    assert_eq!(
        f.reload(&delayed).status,
        TxState::Delayed,
        "skipped: its worker is busy"
    );
    assert_eq!(f.chain.broadcasts(), 0);
    assert!(
        locks.worker_busy.load(std::sync::atomic::Ordering::Acquire),
        "the skipping pass does not clear another task's flag"
    );
    locks.worker_busy.store(false, std::sync::atomic::Ordering::Release);
    f.svc.tick().await;
    f.svc.tick().await;
    assert_eq!(f.reload(&delayed).status, TxState::Confirmed);
    assert!(
        !locks.worker_busy.load(std::sync::atomic::Ordering::Acquire),
        "the task's end clears the flag"
    );
}

/// With `confirmations = 3` a mined transfer stays SUBMITTED (its confirmations recorded) until
/// its receipt is three blocks deep; a revert is final at once, however shallow.
#[tokio::test]
async fn a_transfer_confirms_only_as_deep_as_configured_and_a_revert_at_once() {
    let f = instant("confirmations = 3\n[transfers]\nconfirm_wait_seconds = 0").await;
    let tx = f.svc.send(&f.auth, &request("0.5", "deep")).await.unwrap();
    assert_eq!(tx.status, TxState::Submitted, "mined, one block deep: {tx:?}");
    f.chain.advance(1);
    f.svc.tick().await;
    let shallow = f.reload(&tx);
    assert_eq!(shallow.status, TxState::Submitted, "{shallow:?}");
    assert_eq!(shallow.confirmations, 2);
    assert!(shallow.block.is_some());
    f.chain.advance(1);
    f.svc.tick().await;
    let deep = f.reload(&tx);
    assert_eq!(deep.status, TxState::Confirmed, "{deep:?}");
    assert_eq!(deep.confirmations, 3);

    f.chain.revert_next();
    let reverted = f.svc.send(&f.auth, &request("0.5", "reverted")).await.unwrap();
    assert_eq!(reverted.status, TxState::Failed, "a revert does not wait: {reverted:?}");
    assert_eq!(reverted.confirmations, 1);
}

/// A DELAY transfer re-checked when due does not count its own reservation against itself
/// (in the day and in the month it was reserved in): 0.6 under a limit of 1 still fits.
#[tokio::test]
async fn a_due_delay_is_rechecked_without_counting_its_own_reservation() {
    for limit in ["daily_limit", "monthly_limit"] {
        let f = fixture(
            &[(
                "SPENDING_LIMIT",
                json!({ "instant_max": "0.1", "delay_max": "5", "delay_seconds": 60, limit: "1" }),
            )],
            "",
        )
        .await;
        let tx = f.svc.send(&f.auth, &request("0.6", limit)).await.unwrap();
        assert_eq!(tx.status, TxState::Delayed, "{limit}: {tx:?}");
        assert!(f.spent_today() > eth("0.6"), "its reservation is counted");
        crate::clock::shift_this_thread(61);
        f.svc.tick().await;
        f.svc.tick().await;
        let done = f.reload(&tx);
        assert_eq!(
            done.status,
            TxState::Confirmed,
            "{limit}: counted once, not twice: {done:?}"
        );
        assert_eq!(f.spent_today(), eth("0.6") + done.fee_paid.unwrap(), "{limit}");
        crate::clock::shift_this_thread(-61);
    }
}

/// The asset is decoded from `token`: absent, empty or "native" is the native asset, an
/// address is that token; the amount is given in whole units or in base units, exactly one
/// of them, and never zero.
#[tokio::test]
async fn a_request_is_decoded_into_the_transfer_it_stands_for() {
    let f = instant("").await;
    for token in [None, Some(""), Some("native")] {
        let req = TransferRequest {
            token: token.map(str::to_owned),
            ..request("0.5", "native")
        };
        let check = f.svc.check_transfer(&f.auth, &req).await.unwrap();
        assert_eq!(check.symbol, "ETH", "{token:?}");
        assert_eq!(check.amount.base_units, eth("0.5"));
    }
    let token = "0x00000000000000000000000000000000000000aa";
    let owner = f.wallet.address().unwrap();
    let token_address = Address::parse(f.wallet.kind, token).unwrap();
    f.chain
        .set_balance(Some(token_address), owner, U256::from(10u64).pow(U256::from(30u64)));
    let req = TransferRequest {
        token: Some(token.into()),
        ..request("2", "token")
    };
    let check = f.svc.check_transfer(&f.auth, &req).await.unwrap();
    assert_eq!(check.symbol, "FAKE", "the token's own symbol");
    assert_eq!(
        check.amount.base_units,
        Amount::parse_decimal("2", check.amount.decimals).unwrap().base_units
    );

    // The same transfer in base units is the same request (same idempotency key: same record).
    let sent = f.svc.send(&f.auth, &request("0.5", "units")).await.unwrap();
    let in_units = TransferRequest {
        amount: None,
        amount_base_units: Some(eth("0.5").to_string()),
        ..request("0.5", "units")
    };
    let again = f.svc.send(&f.auth, &in_units).await.unwrap();
    assert_eq!(again.id, sent.id);
    let fresh = TransferRequest {
        idempotency_key: "units-2".into(),
        ..in_units.clone()
    };
    let other = f.svc.send(&f.auth, &fresh).await.unwrap();
    assert_eq!(
        (other.status, other.amount.base_units),
        (TxState::Confirmed, eth("0.5"))
    );

    let both = TransferRequest {
        amount_base_units: Some("1".into()),
        ..request("0.5", "both")
    };
    let neither = TransferRequest {
        amount: None,
        ..request("0.5", "neither")
    };
    for (req, what) in [(both, "both"), (neither, "neither"), (request("0", "zero"), "zero")] {
        match f.svc.check_transfer(&f.auth, &req).await.err() {
            Some(ServiceError::InvalidField {
                field: Field::Amount, ..
            }) => {}
            other => panic!("{what}: {other:?}"),
        }
    }
}

/// The idempotency key is required, printable and at most 128 characters (at the bound it is
/// accepted).
#[tokio::test]
async fn the_idempotency_key_is_checked_before_anything_is_decided() {
    let f = instant("").await;
    let longest = "k".repeat(MAX_IDEMPOTENCY_KEY);
    let tx = f.svc.send(&f.auth, &request("0.1", &longest)).await.unwrap();
    assert_eq!(tx.status, TxState::Confirmed);
    for key in ["", "   ", &"k".repeat(MAX_IDEMPOTENCY_KEY + 1), "new\nline"] {
        match f.svc.send(&f.auth, &request("0.1", key)).await {
            Err(ServiceError::InvalidField {
                field: Field::IdempotencyKey,
                ..
            }) => {}
            other => panic!("{key:?}: {:?}", other.map(|t| t.status)),
        }
    }
    assert_eq!(f.chain.broadcasts(), 1, "nothing else was sent");
}

/// A transfer re-checked when due is judged, signed and counted as of then: with the fees
/// quoted then, in the day it is signed (its reservation moves out of the day it was decided
/// in).
#[tokio::test]
async fn a_due_delay_is_signed_at_fresh_fees_and_counted_in_the_day_it_is_signed() {
    let f = fixture(
        &[(
            "SPENDING_LIMIT",
            json!({ "instant_max": "0.1", "delay_max": "5", "delay_seconds": 60 }),
        )],
        "",
    )
    .await;
    let decided_at = now();
    let tx = f.svc.send(&f.auth, &request("0.6", "tomorrow")).await.unwrap();
    assert_eq!(tx.status, TxState::Delayed);
    let old_fee = tx.fee.unwrap();
    f.chain.set_fees(2_000_000_000, 1_000_000_000);
    crate::clock::shift_this_thread(2 * 86_400);
    f.svc.tick().await;
    f.svc.tick().await;
    let done = f.reload(&tx);
    assert_eq!(done.status, TxState::Confirmed, "{done:?}");
    let fee = done.fee.unwrap();
    assert_eq!(fee.max_fee_per_gas, 5_000_000_000, "quoted when due, not {old_fee:?}");
    assert_eq!(done.reserved.day, period_keys(now()).0);
    assert_eq!(f.spent_today(), eth("0.6") + done.fee_paid.unwrap());
    let then = f.svc.spent(f.wallet.id, decided_at).unwrap();
    assert_eq!(
        then.today.native,
        U256::ZERO,
        "nothing left counted in the day it was decided"
    );
}

/// With an owner registered, an APPROVAL transfer waits for the owner until its timeout and
/// then EXPIRES (its budget released); approved in time, it executes. A DELAY transfer that
/// needs approval when re-checked (a stricter policy since) escalates to PENDING_APPROVAL
/// instead of executing.
#[tokio::test]
async fn approval_waits_for_the_owner_until_its_timeout_and_a_delay_can_escalate_to_it() {
    let f = fixture(
        &[(
            "SPENDING_LIMIT",
            json!({
                "instant_max": "0.1", "delay_max": "0.5", "delay_seconds": 60,
                "approval_timeout_seconds": 300
            }),
        )],
        "",
    )
    .await;
    let mut wallet = f.svc.wallet(f.wallet.id).unwrap();
    wallet.owner = Some(crate::store::records::OwnerRecord {
        address: "0x1111111111111111111111111111111111111111".into(),
        state: "GRACE".into(),
        registered_at: now(),
    });
    let mut batch = Batch::new();
    batch.put(keys::wallet(wallet.id), &wallet);
    f.svc.store.commit(batch).unwrap();

    let waits = f.svc.send(&f.auth, &request("1", "waits")).await.unwrap();
    assert_eq!(waits.status, TxState::PendingApproval, "{waits:?}");
    assert_eq!(waits.expires_at, Some(waits.created_at + 300));
    assert_eq!(waits.executes_at, None);
    let approved = f.svc.send(&f.auth, &request("1", "approved")).await.unwrap();
    let approved = f.svc.execute_approved(f.wallet.id, approved.id).await.unwrap();
    assert_eq!(approved.status, TxState::Confirmed, "{approved:?}");

    let delayed = f.svc.send(&f.auth, &request("0.4", "escalates")).await.unwrap();
    assert_eq!(delayed.status, TxState::Delayed);
    assert_eq!(delayed.expires_at, None);
    let master = f.master().await;
    f.svc
        .add_policy(
            &master,
            f.wallet.id,
            "SPENDING_LIMIT",
            json!({ "instant_max": "0.1", "delay_max": "0.2", "approval_timeout_seconds": 300 }),
        )
        .unwrap();
    crate::clock::shift_this_thread(61);
    f.svc.tick().await;
    let escalated = f.reload(&delayed);
    assert_eq!(escalated.status, TxState::PendingApproval, "{escalated:?}");
    let expires = escalated.expires_at.expect("an approval window");
    assert!((now() + 298..=now() + 300).contains(&expires), "{expires}");
    assert_eq!(f.reload(&waits).status, TxState::PendingApproval, "inside its window");

    crate::clock::shift_this_thread(240);
    f.svc.tick().await;
    let expired = f.reload(&waits);
    assert_eq!(expired.status, TxState::Expired, "{expired:?}");
    assert_eq!(f.chain.broadcasts(), 1, "only the approved transfer was sent");
    assert_eq!(
        f.spent_today(),
        eth("1") + approved.fee_paid.unwrap() + f.reload(&delayed).reserved.native.unwrap_or_default(),
        "the expired transfer's budget went back"
    );
}

/// A memo is kept (sanitised), an empty one is none; a key reused for another transfer is a
/// conflict, not the earlier record.
#[tokio::test]
async fn a_memo_is_kept_and_a_reused_key_for_another_transfer_is_refused() {
    let f = instant("").await;
    let with_memo = TransferRequest {
        memo: Some("rent".into()),
        ..request("0.1", "memo")
    };
    let tx = f.svc.send(&f.auth, &with_memo).await.unwrap();
    assert_eq!(tx.memo.as_deref(), Some("rent"));
    let empty = TransferRequest {
        memo: Some(String::new()),
        ..request("0.1", "no-memo")
    };
    assert_eq!(f.svc.send(&f.auth, &empty).await.unwrap().memo, None);
    match f.svc.send(&f.auth, &request("0.2", "memo")).await {
        Err(ServiceError::Conflict(msg)) => assert!(msg.contains("idempotencyKey"), "{msg}"),
        other => panic!("{:?}", other.map(|t| (t.id, t.status))),
    }
    let other_memo = TransferRequest {
        memo: Some("not rent".into()),
        ..request("0.1", "memo")
    };
    assert!(matches!(
        f.svc.send(&f.auth, &other_memo).await,
        Err(ServiceError::Conflict(_))
    ));
    assert_eq!(f.chain.broadcasts(), 2);
}

/// The decision's audit entry names what was decided: `tx_requested` for a transfer that
/// goes ahead (or waits), `tx_denied` for a policy denial, `tx_failed` for a transfer the
/// chain refuses before anything is signed.
#[tokio::test]
async fn the_decision_is_audited_under_its_own_kind() {
    let f = fixture(
        &[("SPENDING_LIMIT", json!({ "instant_max": "1", "daily_limit": "2" }))],
        "",
    )
    .await;
    let sent = f.svc.send(&f.auth, &request("0.5", "sent")).await.unwrap();
    let denied = f.svc.send(&f.auth, &request("3", "denied")).await.unwrap();
    assert_eq!(denied.status, TxState::Denied);
    let owner = f.wallet.address().unwrap();
    f.chain.set_balance(None, owner, eth("0.1"));
    let failed = f.svc.send(&f.auth, &request("0.5", "unfunded")).await.unwrap();
    assert_eq!(failed.status, TxState::Failed, "{failed:?}");
    for (tx, kind, status) in [
        (&sent, "tx_requested", "REQUESTED"),
        (&denied, "tx_denied", "DENIED"),
        (&failed, "tx_failed", "FAILED"),
    ] {
        let audit = f.audit_of(tx.id);
        assert_eq!(audit.first().map(|(k, _)| k.as_str()), Some(kind), "{audit:?}");
        assert_eq!(audit[0].1["status"], json!(status));
    }
}

/// An executor that comes to a transfer the agent cancelled meanwhile leaves it CANCELLED,
/// even when the chain would now refuse it (nothing is quoted, nothing failed).
#[tokio::test]
async fn an_executor_leaves_a_transfer_cancelled_meanwhile_as_it_is() {
    let f = fixture(
        &[(
            "SPENDING_LIMIT",
            json!({ "instant_max": "0.1", "delay_max": "5", "delay_seconds": 60 }),
        )],
        "",
    )
    .await;
    let tx = f.svc.send(&f.auth, &request("1", "cancelled")).await.unwrap();
    f.svc.cancel_transaction(&f.auth, tx.id).await.unwrap();
    f.chain.set_balance(None, f.wallet.address().unwrap(), U256::ZERO);
    crate::clock::shift_this_thread(61);
    let after = f.svc.execute(tx.id, f.wallet.id, true).await.unwrap();
    assert_eq!(after.status, TxState::Cancelled, "{after:?}");
    assert_eq!(f.reload(&tx).status, TxState::Cancelled);
    assert_eq!(f.reload(&tx).error, None);
}

/// With the sequence cache empty (after a definitive refusal, or at start) the next transfer
/// is signed after every sequence already signed and still to be broadcast, even one the
/// node has never seen.
#[tokio::test]
async fn the_next_sequence_is_never_below_a_signed_transfer_the_node_has_not_seen() {
    let f = unmined("").await;
    f.chain.refuse_next(Refusal::Unreachable);
    let unseen = f.svc.send(&f.auth, &request("0.1", "unseen")).await.unwrap();
    assert_eq!((unseen.status, unseen.nonce()), (TxState::Signed, Some(0)));
    assert_eq!(f.chain.pooled(), 0, "the node never got it");
    f.chain
        .refuse_next(Refusal::Rejected("insufficient funds for gas * price + value".into()));
    let refused = f.svc.send(&f.auth, &request("0.1", "refused")).await.unwrap();
    assert_eq!((refused.status, refused.nonce()), (TxState::Failed, Some(1)));
    // The refusal emptied the cache: the floor comes from the records, not the node (which
    // would say 0).
    let next = f.svc.send(&f.auth, &request("0.1", "next")).await.unwrap();
    assert_eq!(next.nonce(), Some(1), "{next:?}");
    f.svc.tick().await;
    assert_eq!(f.chain.mine(), 2, "both signed transfers are mineable, in turn");
    f.svc.tick().await;
    assert_eq!(f.reload(&unseen).status, TxState::Confirmed);
    assert_eq!(f.reload(&next).status, TxState::Confirmed);
}

/// A node's refusal of bytes it already mined ("nonce too low" for our own included
/// transaction) is the success it is; a refusal of bytes it has not mined stays a refusal.
#[tokio::test]
async fn a_refused_broadcast_of_mined_bytes_counts_as_broadcast() {
    let f = instant("[transfers]\nconfirm_wait_seconds = 0").await;
    let adapter = f.svc.adapter(&f.wallet).unwrap();
    let mined = f.svc.send(&f.auth, &request("0.1", "mined")).await.unwrap();
    assert_eq!(mined.status, TxState::Confirmed);
    f.chain.refuse_next(Refusal::NotAccepted("nonce too low".into()));
    broadcast_checked(adapter, &super::confirm::stored_signed(&f.reload(&mined)).unwrap())
        .await
        .expect("mined: the refusal proves it was broadcast");

    f.chain.set_automine(false);
    let pending = f.svc.send(&f.auth, &request("0.1", "pending")).await.unwrap();
    f.chain.refuse_next(Refusal::Rejected("nonce too low".into()));
    let refused = broadcast_checked(adapter, &super::confirm::stored_signed(&f.reload(&pending)).unwrap()).await;
    assert!(matches!(refused, Err(ChainError::Rejected { .. })), "{refused:?}");
}

/// With USD limits and a static price, the budgets count in micro-USD exactly what they
/// count in wei: the value plus the maximum fee while in flight, the value plus the fee paid
/// (rounded up) once confirmed, only the fee paid after a revert, and a replacement's extra
/// fee at its own USD value.
#[tokio::test]
async fn usd_budgets_count_the_value_and_the_fee_in_step_with_the_native_ones() {
    let f = fixture(
        &[("SPENDING_LIMIT", json!({ "instant_max_usd": "5000" }))],
        "[transfers]\nconfirm_wait_seconds = 0\n[prices.native]\nETH = \"2000\"",
    )
    .await;
    // $2000 an ETH: micro-USD = wei × 2000 / 10^12, exact for every amount below.
    let usd = |wei: U256| wei * U256::from(2000u64) / U256::from(10u64).pow(U256::from(12u64));
    let max_fee = |fee: FeeQuote| fee.max_fee();
    let spent_usd = || f.svc.spent(f.wallet.id, now()).unwrap().today.micro_usd;

    let tx = f.svc.send(&f.auth, &request("0.5", "usd")).await.unwrap();
    assert_eq!(tx.status, TxState::Confirmed, "{tx:?}");
    let (fee, paid) = (max_fee(tx.fee.unwrap()), tx.fee_paid.unwrap());
    let paid_usd = (usd(fee) * paid).div_ceil(fee);
    assert_eq!(spent_usd(), usd(eth("0.5")) + paid_usd, "value + the fee paid");
    let mut expected = spent_usd();

    f.chain.revert_next();
    let reverted = f.svc.send(&f.auth, &request("0.5", "usd-revert")).await.unwrap();
    assert_eq!(reverted.status, TxState::Failed);
    let (fee, paid) = (max_fee(reverted.fee.unwrap()), reverted.fee_paid.unwrap());
    expected += (usd(fee) * paid).div_ceil(fee);
    assert_eq!(spent_usd(), expected, "only the fee paid");

    f.chain.set_automine(false);
    let stuck = f.svc.send(&f.auth, &request("0.5", "usd-stuck")).await.unwrap();
    let old_fee = max_fee(stuck.fee.unwrap());
    assert_eq!(
        spent_usd(),
        expected + usd(eth("0.5")) + usd(old_fee),
        "value + max fee in flight"
    );
    let native_before = f.spent_today();
    f.chain.set_fees(4_000_000_000, 1_000_000_000);
    crate::clock::shift_this_thread(6);
    f.svc.tick().await;
    let replaced = f.reload(&stuck);
    assert_eq!(replaced.replaced_hashes.len(), 1, "outbid: replaced");
    let new_fee = max_fee(FeeQuote::from(replaced.fee.unwrap()));
    assert_eq!(new_fee, U256::from(21_000u64 * 9_000_000_000), "the market's max fee");
    assert_eq!(
        f.spent_today(),
        native_before + (new_fee - old_fee),
        "the extra fee counts"
    );
    assert_eq!(
        spent_usd(),
        expected + usd(eth("0.5")) + usd(new_fee),
        "the extra fee counts at its USD value, not the whole transfer again"
    );

    assert_eq!(f.chain.mine(), 1);
    f.svc.tick().await;
    let done = f.reload(&stuck);
    assert_eq!(done.status, TxState::Confirmed);
    let paid = done.fee_paid.unwrap();
    expected += usd(eth("0.5")) + (usd(new_fee) * paid).div_ceil(new_fee);
    assert_eq!(spent_usd(), expected);
}

impl Fixture {
    /// Registers an owner (GRACE) on the wallet, as the store holds it.
    fn register_owner(&self) {
        let mut wallet = self.svc.wallet(self.wallet.id).unwrap();
        wallet.owner = Some(crate::store::records::OwnerRecord {
            address: "0x1111111111111111111111111111111111111111".into(),
            state: "GRACE".into(),
            registered_at: now(),
        });
        let mut batch = Batch::new();
        batch.put(keys::wallet(wallet.id), &wallet);
        self.svc.store.commit(batch).unwrap();
    }

    /// The audit sequence number of `id`'s first entry of `kind`.
    fn audit_seq(&self, id: TxId, kind: &str) -> u64 {
        self.audit_entries(id)
            .into_iter()
            .find(|e| e.event.kind == kind)
            .unwrap_or_else(|| panic!("no {kind} for {id}"))
            .seq
    }
}

/// The owner rejects only a transfer waiting for approval (a DELAY transfer it can cancel,
/// not reject); the rejection is final, its budget released, and the owner LOCKED.
#[tokio::test]
async fn the_owner_rejects_only_a_transfer_waiting_for_approval() {
    let f = fixture(
        &[(
            "SPENDING_LIMIT",
            json!({ "instant_max": "0.1", "delay_max": "0.5", "delay_seconds": 60 }),
        )],
        "",
    )
    .await;
    f.register_owner();
    let delayed = f.svc.send(&f.auth, &request("0.4", "delayed")).await.unwrap();
    let waiting = f.svc.send(&f.auth, &request("1", "waiting")).await.unwrap();
    assert_eq!(
        (delayed.status, waiting.status),
        (TxState::Delayed, TxState::PendingApproval)
    );
    let owner = "owner:0x1111111111111111111111111111111111111111".to_owned();
    match f
        .svc
        .stop_unsigned(f.wallet.id, delayed.id, &Stop::OwnerReject(owner.clone()))
        .await
    {
        Err(ServiceError::Conflict(msg)) => assert!(msg.contains("can no longer be rejected"), "{msg}"),
        other => panic!("{:?}", other.map(|t| t.status)),
    }
    assert_eq!(f.reload(&delayed).status, TxState::Delayed);
    let rejected = f
        .svc
        .stop_unsigned(f.wallet.id, waiting.id, &Stop::OwnerReject(owner.clone()))
        .await
        .unwrap();
    assert_eq!(rejected.status, TxState::Rejected);
    assert_eq!(rejected.error.as_deref(), Some("rejected by the owner"));
    assert!(!rejected.reserved.held);
    assert_eq!(f.svc.wallet(f.wallet.id).unwrap().owner.unwrap().state, "LOCKED");
    let cancelled = f
        .svc
        .stop_unsigned(f.wallet.id, delayed.id, &Stop::OwnerCancel(owner))
        .await
        .unwrap();
    assert_eq!(cancelled.status, TxState::Cancelled);
    assert_eq!(f.spent_today(), U256::ZERO, "both budgets released");
}

/// The kill switch cancels every transfer not signed yet (DELAYED, PENDING_APPROVAL) and
/// says how many; a signed one is left to the chain.
#[tokio::test]
async fn the_kill_switch_cancels_what_is_not_signed_and_counts_it() {
    let f = fixture(
        &[(
            "SPENDING_LIMIT",
            json!({ "instant_max": "0.1", "delay_max": "0.5", "delay_seconds": 60 }),
        )],
        "[transfers]\nconfirm_wait_seconds = 0",
    )
    .await;
    f.register_owner();
    f.chain.set_automine(false);
    let signed = f.svc.send(&f.auth, &request("0.05", "signed")).await.unwrap();
    assert_eq!(signed.status, TxState::Submitted);
    let delayed = f.svc.send(&f.auth, &request("0.4", "delayed")).await.unwrap();
    let waiting = f.svc.send(&f.auth, &request("1", "waiting")).await.unwrap();
    let master = f.master().await;
    let reports = f
        .svc
        .kill_switch_on_master(&master, Some(f.wallet.id), "unit")
        .await
        .unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].transactions_cancelled, 2, "the delayed and the waiting one");
    assert_eq!(f.reload(&delayed).status, TxState::Cancelled);
    assert_eq!(f.reload(&waiting).status, TxState::Cancelled);
    assert!(f.reload(&waiting).error.unwrap().contains("cancelled: "));
    assert_eq!(
        f.reload(&signed).status,
        TxState::Submitted,
        "signed: left to the chain"
    );
}

/// A worker pass puts signed bytes on the chain before it signs anything new, whatever order
/// the transfers were requested in.
#[tokio::test]
async fn a_worker_pass_rebroadcasts_signed_transfers_before_signing_new_ones() {
    let f = fixture(
        &[(
            "SPENDING_LIMIT",
            json!({ "instant_max": "0.1", "delay_max": "5", "delay_seconds": 60 }),
        )],
        "[transfers]\nconfirm_wait_seconds = 0",
    )
    .await;
    f.chain.set_automine(false);
    let older = f.svc.send(&f.auth, &request("1", "older-delay")).await.unwrap();
    assert_eq!(older.status, TxState::Delayed);
    f.chain.refuse_next(Refusal::Unreachable);
    let signed = f.svc.send(&f.auth, &request("0.05", "signed")).await.unwrap();
    assert_eq!(signed.status, TxState::Signed);
    crate::clock::shift_this_thread(61);
    f.svc.tick().await;
    let rebroadcast = f.audit_seq(signed.id, "tx_broadcast");
    let new_signature = f.audit_seq(older.id, "tx_signed");
    assert!(rebroadcast < new_signature, "{rebroadcast} < {new_signature}");
}

/// A REQUESTED transfer (decided, not signed: a crash came in between) is executed by the next
/// worker pass: the decision stands.
#[tokio::test]
async fn a_requested_transfer_left_by_a_crash_is_executed_by_the_worker() {
    let f = fixture(
        &[(
            "SPENDING_LIMIT",
            json!({ "instant_max": "0.1", "delay_max": "5", "delay_seconds": 60 }),
        )],
        "",
    )
    .await;
    let tx = f.svc.send(&f.auth, &request("1", "crash")).await.unwrap();
    // As the re-check leaves it (committed to executing) when the process dies before signing.
    let mut requested = f.reload(&tx);
    requested.status = TxState::Requested;
    let mut batch = Batch::new();
    f.svc
        .save_tx(&mut batch, &mut requested, AuditEvent::new("tx_executing", "system"));
    f.svc.store.commit(batch).unwrap();
    f.svc.tick().await;
    f.svc.tick().await;
    assert_eq!(f.reload(&tx).status, TxState::Confirmed);
    assert_eq!(f.chain.broadcasts(), 1);
}

/// An approval window closes at `expires_at` itself: pending a second before, EXPIRED at it.
#[tokio::test]
async fn an_approval_expires_at_its_timeout_not_a_second_before() {
    let f = fixture(
        &[(
            "SPENDING_LIMIT",
            json!({ "instant_max": "0.1", "delay_max": "0.5", "approval_timeout_seconds": 300 }),
        )],
        "",
    )
    .await;
    f.register_owner();
    start_of_a_second();
    let tx = f.svc.send(&f.auth, &request("1", "window")).await.unwrap();
    assert_eq!(tx.status, TxState::PendingApproval);
    crate::clock::shift_this_thread(299);
    f.svc.tick().await;
    assert_eq!(f.reload(&tx).status, TxState::PendingApproval, "a second before");
    crate::clock::shift_this_thread(1);
    f.svc.tick().await;
    let expired = f.reload(&tx);
    assert_eq!(expired.status, TxState::Expired, "{expired:?}");
    assert_eq!(expired.error.as_deref(), Some("the owner did not approve in time"));
    assert_eq!(f.spent_today(), U256::ZERO);
}

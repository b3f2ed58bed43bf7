//! Crash safety of the transfer pipeline: kill -9 the daemon at every point between the
//! recorded decision and the confirmation (deterministic `BURSAR_TEST_FAULT` aborts, and
//! random SIGKILLs during a burst), restart it on the same data dir, retry with the same
//! idempotency keys. Every transfer happens on chain at most once, under its one signature,
//! with budgets and the audit chain in step.

use crate::harness::{ANVIL_KEY0_ADDR, Anvil, Daemon, eth, http};
use crate::transfers::{RECIPIENT, balance_of, opts, wait_status};
use alloy::primitives::U256;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const IN_FLIGHT: [&str; 3] = ["REQUESTED", "SIGNED", "SUBMITTED"];

/// A funded wallet with one SPENDING_LIMIT policy (and `RECIPIENT` as owner); returns
/// (wallet address, session token).
async fn setup(anvil: &Anvil, daemon: &Daemon, rules: Value, owner: bool) -> (String, String) {
    let (wallet, token) = daemon.wallet_and_token().await;
    let (wid, address) = (wallet["id"].as_str().unwrap(), wallet["address"].as_str().unwrap());
    anvil.fund(address, eth(100)).await;
    let policy = json!({ "walletId": wid, "type": "SPENDING_LIMIT", "rules": rules });
    let (status, body) = daemon.master(Method::POST, "/v1/policies", Some(policy)).await;
    assert_eq!(status, 201, "{body}");
    if owner {
        let path = format!("/v1/wallets/{wid}/owner");
        let (status, body) = daemon
            .master(Method::PUT, &path, Some(json!({ "address": RECIPIENT })))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    (address.to_owned(), token)
}

/// A send that may die with the daemon: `Err` when the connection breaks.
async fn try_send(url: &str, token: &str, amount: &str, key: &str) -> Result<(u16, Value), reqwest::Error> {
    let res = http()
        .post(format!("{url}/v1/transactions/send"))
        .bearer_auth(token)
        .json(&json!({ "to": RECIPIENT, "amount": amount, "idempotencyKey": key }))
        .send()
        .await?;
    let status = res.status().as_u16();
    Ok((status, res.json().await?))
}

/// A send to a live daemon: must be answered with a transaction.
async fn send(daemon: &Daemon, token: &str, amount: &str, key: &str) -> Value {
    let (status, tx) = try_send(&daemon.url, token, amount, key).await.unwrap();
    assert_eq!(status, 200, "{key}: {tx}");
    assert!(tx["id"].is_string(), "{key}: {tx}");
    tx
}

async fn get(daemon: &Daemon, token: &str, path: &str) -> Value {
    let (status, body) = daemon.session(token, Method::GET, path, None).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn list(daemon: &Daemon, token: &str, status: &str) -> Vec<Value> {
    let filter = if status.is_empty() {
        String::new()
    } else {
        format!("&status={status}")
    };
    let body = get(daemon, token, &format!("/v1/transactions?limit=500{filter}")).await;
    body.as_array().unwrap().clone()
}

/// Waits until nothing is REQUESTED, SIGNED or SUBMITTED any more.
async fn wait_settled(daemon: &Daemon, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut busy = Vec::new();
        for status in IN_FLIGHT {
            busy.extend(list(daemon, token, status).await);
        }
        if busy.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "transfers never settled: {busy:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn spent_today(daemon: &Daemon, token: &str) -> String {
    let body = json!({ "to": RECIPIENT, "amount": "0.000001" });
    let (status, c) = daemon
        .session(token, Method::POST, "/v1/transactions/check", Some(body))
        .await;
    assert_eq!(status, 200, "{c}");
    c["spentToday"]["nativeBaseUnits"].as_str().unwrap().to_owned()
}

fn hex_u256(v: &Value) -> U256 {
    U256::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

async fn chain_nonce(anvil: &Anvil, address: &str) -> u64 {
    let n = hex_u256(&anvil.rpc("eth_getTransactionCount", json!([address, "latest"])).await);
    n.to::<u64>()
}

async fn assert_audit_ok(daemon: &Daemon) {
    let (status, verify) = daemon.master(Method::GET, "/v1/audit/verify", None).await;
    assert_eq!((status, &verify["ok"]), (200, &json!(true)), "{verify}");
}

async fn audit(daemon: &Daemon, kind: &str) -> Vec<Value> {
    let (status, entries) = daemon
        .master(Method::GET, &format!("/v1/audit?kind={kind}&limit=1000"), None)
        .await;
    assert_eq!(status, 200, "{entries}");
    entries.as_array().unwrap().clone()
}

/// The invariants after any sequence of crashes, once everything settled: nothing in flight;
/// one transfer per idempotency key; the CONFIRMED ones are exactly what the chain shows
/// (one transaction each, nonces 0..n, `unit` each to the recipient, each under the one signature recorded in the
/// outbox — signed once, never re-signed), and every transfer that was signed confirmed;
/// only they count against today's budget; the audit chain verifies. Returns every transfer.
async fn assert_exactly_once(
    anvil: &Anvil,
    daemon: &Daemon,
    token: &str,
    wallet: &str,
    recipient_before: U256,
    unit: U256,
) -> Vec<Value> {
    let all = list(daemon, token, "").await;
    let keys: BTreeSet<&str> = all.iter().map(|t| t["idempotencyKey"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), all.len(), "a key created two transfers: {all:?}");
    assert!(
        all.iter().all(|t| !IN_FLIGHT.contains(&t["status"].as_str().unwrap())),
        "{all:?}"
    );
    let confirmed: Vec<&Value> = all.iter().filter(|t| t["status"] == "CONFIRMED").collect();
    let mut by_hash: BTreeMap<&str, Vec<(&Value, &Value)>> = BTreeMap::new();
    for tx in &confirmed {
        let entry = by_hash.entry(tx["hash"].as_str().unwrap()).or_default();
        entry.push((&tx["idempotencyKey"], &tx["nonce"]));
    }
    by_hash.retain(|_, txs| txs.len() > 1);
    assert!(
        by_hash.is_empty(),
        "CONFIRMED transfers sharing one on-chain transaction: {by_hash:?}"
    );
    let n = confirmed.len() as u64;
    assert_eq!(
        chain_nonce(anvil, wallet).await,
        n,
        "on-chain nonce vs CONFIRMED transfers"
    );
    let mut nonces: Vec<u64> = confirmed.iter().map(|t| t["nonce"].as_u64().unwrap()).collect();
    nonces.sort_unstable();
    assert_eq!(nonces, (0..n).collect::<Vec<_>>(), "CONFIRMED nonces");
    let total = unit * U256::from(n);
    assert_eq!(
        balance_of(anvil, RECIPIENT).await - recipient_before,
        total,
        "recipient delta"
    );
    // Each confirmed transfer counts its value and the fee it paid (trued up from the
    // receipt), nothing else.
    let fees: U256 = confirmed
        .iter()
        .map(|t| U256::from_str_radix(t["feePaidBaseUnits"].as_str().expect("fee paid"), 10).unwrap())
        .sum();
    assert_eq!(
        spent_today(daemon, token).await,
        (total + fees).to_string(),
        "spentToday"
    );

    let mut signed: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for entry in audit(daemon, "tx_signed").await {
        let detail = entry["detail"].clone();
        signed
            .entry(detail["tx"].as_str().unwrap().to_owned())
            .or_default()
            .push(detail);
    }
    for (id, sigs) in &signed {
        assert_eq!(sigs.len(), 1, "transfer {id} was signed more than once: {sigs:?}");
    }
    // Once in the outbox, a plain transfer from a funded wallet must reach the chain: a signed
    // one that FAILED lost its nonce to another transfer.
    for tx in all.iter().filter(|t| signed.contains_key(t["id"].as_str().unwrap())) {
        assert_eq!(
            tx["status"], "CONFIRMED",
            "a signed transfer did not reach the chain: {tx}"
        );
    }
    for tx in &confirmed {
        let id = tx["id"].as_str().unwrap();
        let sig = &signed.get(id).unwrap_or_else(|| panic!("no tx_signed for {tx}"))[0];
        assert_eq!((&sig["hash"], &sig["nonce"]), (&tx["hash"], &tx["nonce"]), "{tx}");
        let onchain = anvil.rpc("eth_getTransactionByHash", json!([tx["hash"]])).await;
        assert_eq!(
            hex_u256(&onchain["nonce"]),
            U256::from(tx["nonce"].as_u64().unwrap()),
            "{onchain}"
        );
        assert_eq!(hex_u256(&onchain["value"]), unit, "{onchain}");
    }
    assert_audit_ok(daemon).await;
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_at_each_pipeline_point_then_restart_sends_exactly_once() {
    let half = eth(1) / U256::from(2);
    for point in bursar::faults::POINTS {
        let anvil = Anvil::start().await;
        let mut daemon = Daemon::init(opts(&anvil));
        daemon.env = vec![("BURSAR_TEST_FAULT".into(), point.into())];
        daemon.spawn().await;
        let rules = json!({ "instant_max": "1", "daily_limit": "10" });
        let (wallet, token) = setup(&anvil, &daemon, rules, false).await;
        let before = balance_of(&anvil, RECIPIENT).await;

        let crashed = try_send(&daemon.url, &token, "0.5", "k").await;
        assert!(
            crashed.is_err(),
            "{point}: the daemon answered instead of aborting: {crashed:?}"
        );
        daemon.kill();
        let needle = format!("test fault: aborting at {point}");
        assert!(daemon.logs().contains(&needle), "{point}: {}", daemon.logs());
        daemon.env.clear();
        daemon.spawn().await;

        // The request was never answered. From `after_sign` on, the signed transfer's commit
        // made it (and its decision) durable: the retry finds the same record. At
        // `before_sign` the INSTANT decision was only staged (durable with the next commit),
        // so the retry may decide it anew; either way there is one record and one transfer.
        // At `after_confirm_staged` the receipt's record was only staged: the restart finds
        // the transfer SIGNED and records the same receipt again.
        let retried = send(&daemon, &token, "0.5", "k").await;
        let id = retried["id"].as_str().unwrap();
        let recorded = list(&daemon, &token, "").await;
        assert_eq!(recorded.len(), 1, "{point}: {recorded:?}");
        assert_eq!(recorded[0]["id"], id, "{point}");
        let tx = wait_status(&daemon, &token, id, "CONFIRMED").await;
        assert_eq!(send(&daemon, &token, "0.5", "k").await["id"], id, "{point}");
        assert_eq!(tx["nonce"], 0, "{point}: {tx}");

        let all = assert_exactly_once(&anvil, &daemon, &token, &wallet, before, half).await;
        assert_eq!(all.len(), 1, "{point}: {all:?}");
        if point == "after_sign" {
            // Signed, stored, never broadcast: the restart sent the stored bytes.
            let rebroadcasts = audit(&daemon, "tx_broadcast").await;
            assert!(
                rebroadcasts
                    .iter()
                    .any(|e| e["detail"]["rebroadcast"] == true && e["detail"]["hash"] == tx["hash"]),
                "{rebroadcasts:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_and_pending_transfers_survive_kill_9() {
    let anvil = Anvil::start().await;
    let mut daemon = Daemon::start(opts(&anvil)).await;
    let rules =
        json!({ "instant_max": "0.1", "delay_max": "1", "delay_seconds": 3600, "approval_timeout_seconds": 3600 });
    let (wallet, token) = setup(&anvil, &daemon, rules, true).await;
    let delayed = send(&daemon, &token, "0.5", "delayed").await;
    let pending = send(&daemon, &token, "2", "pending").await;
    assert_eq!(delayed["status"], "DELAYED", "{delayed}");
    assert!(delayed["executesAt"].is_string(), "{delayed}");
    assert_eq!(pending["status"], "PENDING_APPROVAL", "{pending}");
    assert!(pending["expiresAt"].is_string(), "{pending}");

    daemon.kill();
    daemon.spawn().await;
    // Untouched by the crash and the restart's reconciliation, down to the timestamps.
    for tx in [&delayed, &pending] {
        let id = tx["id"].as_str().unwrap();
        assert_eq!(&get(&daemon, &token, &format!("/v1/transactions/{id}")).await, tx);
        let (amount, key) = (tx["amount"].as_str().unwrap(), tx["idempotencyKey"].as_str().unwrap());
        assert_eq!(send(&daemon, &token, amount, key).await["id"], id, "{key}");
    }
    // Both reservations (value and most fee) are still held.
    let held: U256 = [&delayed, &pending]
        .iter()
        .map(|t| {
            U256::from_str_radix(t["baseUnits"].as_str().unwrap(), 10).unwrap()
                + U256::from_str_radix(t["maxFeeBaseUnits"].as_str().unwrap(), 10).unwrap()
        })
        .sum();
    assert_eq!(spent_today(&daemon, &token).await, held.to_string());

    let path = format!("/v1/transactions/{}/cancel", delayed["id"].as_str().unwrap());
    let (status, cancelled) = daemon.session(&token, Method::POST, &path, None).await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (200, Some("CANCELLED")),
        "{cancelled}"
    );
    let pending_held = U256::from_str_radix(pending["baseUnits"].as_str().unwrap(), 10).unwrap()
        + U256::from_str_radix(pending["maxFeeBaseUnits"].as_str().unwrap(), 10).unwrap();
    assert_eq!(spent_today(&daemon, &token).await, pending_held.to_string());

    // The cancellation is durable too.
    daemon.kill();
    daemon.spawn().await;
    let id = delayed["id"].as_str().unwrap();
    assert_eq!(
        get(&daemon, &token, &format!("/v1/transactions/{id}")).await["status"],
        "CANCELLED"
    );
    let id = pending["id"].as_str().unwrap();
    assert_eq!(
        get(&daemon, &token, &format!("/v1/transactions/{id}")).await["status"],
        "PENDING_APPROVAL"
    );
    assert_eq!(spent_today(&daemon, &token).await, pending_held.to_string());
    assert_eq!(chain_nonce(&anvil, &wallet).await, 0, "nothing reached the chain");
    assert_audit_ok(&daemon).await;
}

/// A pseudo-random point (clock-seeded, no rand crate) in the `slice`-th of `slices` equal
/// parts of `span`: over the rounds, the kills cover the whole burst.
fn kill_point(slice: usize, slices: usize, span: Duration) -> Duration {
    let nanos = u64::from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos());
    let random = (nanos ^ slice as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    let width = (span.as_micros() as u64 / slices as u64).max(1);
    Duration::from_micros(width * slice as u64 + random % width)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_kills_during_a_burst_never_double_spend() {
    const ROUNDS: usize = 6;
    const BURST: usize = 10;
    let anvil = Anvil::start().await;
    let mut daemon = Daemon::start(opts(&anvil)).await;
    let rules = json!({ "instant_max": "1", "daily_limit": "100" });
    let (wallet, token) = setup(&anvil, &daemon, rules, false).await;
    let before = balance_of(&anvil, RECIPIENT).await;
    let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let (mut span, mut kills, mut answered) = (Duration::ZERO, Vec::new(), 0);

    // Round 0 calibrates: one burst, uninterrupted, timed to its last answer. Rounds 1.. kill
    // somewhere in 0..1.2x that, each round in its own slice.
    for round in 0..=ROUNDS {
        let keys: Vec<String> = (0..BURST).map(|i| format!("r{round}-{i}")).collect();
        let t0 = Instant::now();
        let burst: Vec<_> = keys
            .iter()
            .map(|key| {
                let (url, token, key) = (daemon.url.clone(), token.clone(), key.clone());
                tokio::spawn(async move { try_send(&url, &token, "0.01", &key).await.ok() })
            })
            .collect();
        if round > 0 {
            let at = kill_point(round - 1, ROUNDS, span * 6 / 5);
            kills.push(at.as_millis());
            tokio::time::sleep(at).await;
            daemon.kill();
        }
        for (key, task) in keys.iter().zip(burst) {
            // Answers that made it out before the kill count as tries of their key too.
            if let Some((_, tx)) = task.await.unwrap()
                && let Some(id) = tx["id"].as_str()
            {
                ids.entry(key.clone()).or_default().insert(id.to_owned());
                answered += usize::from(round > 0);
            }
        }
        if round == 0 {
            span = t0.elapsed();
        } else {
            daemon.spawn().await;
        }
        for key in &keys {
            let tx = send(&daemon, &token, "0.01", key).await;
            let id = tx["id"].as_str().unwrap().to_owned();
            ids.entry(key.clone()).or_default().insert(id);
        }
    }

    wait_settled(&daemon, &token).await;
    let all = assert_exactly_once(&anvil, &daemon, &token, &wallet, before, eth(1) / U256::from(100)).await;
    assert_eq!(all.len(), (ROUNDS + 1) * BURST, "one transfer per key");
    for tx in &all {
        let key = tx["idempotencyKey"].as_str().unwrap();
        let seen = &ids[key];
        assert_eq!(seen.len(), 1, "{key}: retries saw different transfers {seen:?}");
        assert!(seen.contains(tx["id"].as_str().unwrap()), "{key}: {seen:?} vs {tx}");
    }
    let confirmed = all.iter().filter(|t| t["status"] == "CONFIRMED").count();
    let failed: Vec<_> = all
        .iter()
        .filter(|t| t["status"] != "CONFIRMED")
        .map(|t| (&t["status"], &t["error"]))
        .collect();
    eprintln!(
        "burst crash rounds: {span:?} per burst, kills at {kills:?} ms, {answered}/{} answered before \
         the kill; {confirmed} confirmed, {} failed {failed:?}",
        ROUNDS * BURST,
        failed.len()
    );
}

/// Sends racing into a crash right after the first is signed: at restart one is SIGNED (its
/// bytes in the outbox, never broadcast) and the others REQUESTED. The signed one owns its
/// nonce: the restart must not hand that nonce to another, whatever order it scans them in,
/// so all confirm with nonces 0..n. (Identical transfers signed at the same nonce are the
/// same bytes: a reused nonce shows as two CONFIRMED records for one payment on chain.)
/// The scan order is random: several racers, several trials.
/// A daemon that aborts right after committing a transfer's signed bytes (before broadcast).
async fn dies_after_signing(anvil: &Anvil) -> Daemon {
    let mut daemon = Daemon::init(opts(anvil));
    daemon.env = vec![("BURSAR_TEST_FAULT".into(), "after_sign".into())];
    daemon.spawn().await;
    daemon
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_signed_before_the_crash_keeps_its_nonce() {
    const RACERS: usize = 5;
    let cent = eth(1) / U256::from(100);
    for trial in 0..3 {
        let anvil = Anvil::start().await;
        let mut daemon = dies_after_signing(&anvil).await;
        let (wallet, token) = setup(&anvil, &daemon, json!({ "instant_max": "1" }), false).await;
        let before = balance_of(&anvil, RECIPIENT).await;
        let keys: Vec<String> = (0..RACERS).map(|i| format!("t{trial}-{i}")).collect();
        let racing: Vec<_> = keys
            .iter()
            .map(|key| {
                let (url, token, key) = (daemon.url.clone(), token.clone(), key.clone());
                tokio::spawn(async move { try_send(&url, &token, "0.01", &key).await.ok() })
            })
            .collect();
        for task in racing {
            assert!(task.await.unwrap().is_none(), "trial {trial}: a send was answered");
        }
        daemon.kill();
        daemon.env.clear();
        daemon.spawn().await;
        for key in &keys {
            send(&daemon, &token, "0.01", key).await;
        }
        wait_settled(&daemon, &token).await;
        let all = assert_exactly_once(&anvil, &daemon, &token, &wallet, before, cent).await;
        assert_eq!(all.len(), RACERS, "trial {trial}: {all:?}");
    }
}

/// The key used elsewhere while a signed transfer was never broadcast: another transaction
/// takes its nonce. Re-broadcasting is refused ("nonce too low"), but that alone does not fail
/// it (a node says the same of a transaction it mined before serving the receipt): it fails
/// only after `dropped_after_seconds` with the nonce past it and no receipt, releases its
/// reservation, and the next transfer takes the next nonce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_transfer_whose_nonce_another_transaction_took_fails_after_the_grace() {
    const GRACE: i64 = 2;
    let anvil = Anvil::start().await;
    let mut daemon = dies_after_signing(&anvil).await;
    let (wallet, token) = setup(&anvil, &daemon, json!({ "instant_max": "1" }), false).await;
    let before = balance_of(&anvil, RECIPIENT).await;
    assert!(
        try_send(&daemon.url, &token, "0.01", "dropped").await.is_err(),
        "the daemon answered"
    );
    daemon.kill();
    anvil.rpc("anvil_impersonateAccount", json!([wallet])).await;
    let other = json!({ "from": wallet, "to": ANVIL_KEY0_ADDR, "value": "0x1" });
    anvil.rpc("eth_sendTransaction", json!([other])).await;
    assert_eq!(chain_nonce(&anvil, &wallet).await, 1);

    daemon.env = vec![("BURSAR_CHAINS_ANVIL_DROPPED_AFTER_SECONDS".into(), GRACE.to_string())];
    daemon.spawn().await;
    let signed = list(&daemon, &token, "").await;
    assert_eq!(signed.len(), 1, "{signed:?}");
    let id = signed[0]["id"].as_str().unwrap();
    let failed = wait_status(&daemon, &token, id, "FAILED").await;
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("nonce 0 was used by another transaction"), "{failed}");

    let passed = audit(&daemon, "tx_nonce_passed").await;
    let fails = audit(&daemon, "tx_failed").await;
    assert_eq!((passed.len(), fails.len()), (1, 1), "{passed:?} {fails:?}");
    let waited = fails[0]["ts"].as_i64().unwrap() - passed[0]["ts"].as_i64().unwrap();
    assert!(waited >= GRACE, "failed {waited}s after the nonce was seen used");
    assert_eq!(
        spent_today(&daemon, &token).await,
        "0",
        "the reservation was not released"
    );
    assert_eq!(balance_of(&anvil, RECIPIENT).await, before);

    let next = send(&daemon, &token, "0.01", "after-drop").await;
    let next = wait_status(&daemon, &token, next["id"].as_str().unwrap(), "CONFIRMED").await;
    assert_eq!(next["nonce"], 1, "{next}");
    assert_eq!(balance_of(&anvil, RECIPIENT).await, before + eth(1) / U256::from(100));
    assert_audit_ok(&daemon).await;
}

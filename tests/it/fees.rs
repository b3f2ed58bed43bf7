//! Every wei counted (issue "every wei counted"): fees inside the budgets and under the
//! chain's caps, broadcast errors that prove nothing do not fail a transfer, and a transfer
//! counts in the period in which it is signed. Real anvil, the real binary, and a hostile
//! JSON-RPC proxy in front of anvil where the node lies.

use crate::harness::{Anvil, Daemon, Opts, eth};
use crate::rpc_proxy::RpcProxy;
use crate::transfers::{RECIPIENT, balance_of, opts, wait_status};
use alloy::primitives::U256;
use reqwest::Method;
use serde_json::{Value, json};

fn units(v: &Value) -> U256 {
    U256::from_str_radix(v.as_str().unwrap_or_else(|| panic!("not a number: {v}")), 10).unwrap()
}

/// A funded wallet and its token, with one SPENDING_LIMIT.
async fn wallet(anvil: &Anvil, daemon: &Daemon, rules: Value) -> (Value, String) {
    let (wallet, token) = daemon.wallet_and_token().await;
    anvil.fund(wallet["address"].as_str().unwrap(), eth(10)).await;
    let policy = json!({ "walletId": wallet["id"], "type": "SPENDING_LIMIT", "rules": rules });
    assert_eq!(daemon.master(Method::POST, "/v1/policies", Some(policy)).await.0, 201);
    (wallet, token)
}

async fn send(daemon: &Daemon, token: &str, body: Value) -> (u16, Value) {
    daemon
        .session(token, Method::POST, "/v1/transactions/send", Some(body))
        .await
}

async fn spent_today(daemon: &Daemon, token: &str) -> U256 {
    let body = json!({ "to": RECIPIENT, "amountBaseUnits": "1" });
    let (status, c) = daemon
        .session(token, Method::POST, "/v1/transactions/check", Some(body))
        .await;
    assert_eq!(status, 200, "{c}");
    units(&c["spentToday"]["nativeBaseUnits"])
}

/// Many one-wei sends cannot burn the wallet on fees: value + the most each fee can be
/// counts against the daily limit, which stops them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_wei_sends_stop_at_the_daily_limit_once_fees_reach_it() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let limit = eth(1) / U256::from(5_000); // 0.0002 ETH: a handful of fees
    let (_, token) = wallet(&anvil, &daemon, json!({ "instant_max": "1", "daily_limit": "0.0002" })).await;
    let (mut confirmed, mut denied) = (Vec::new(), 0);
    for i in 0..50 {
        let (status, tx) = send(
            &daemon,
            &token,
            json!({ "to": RECIPIENT, "amountBaseUnits": "1", "idempotencyKey": format!("wei-{i}") }),
        )
        .await;
        match (status, tx["status"].as_str()) {
            (200, Some("CONFIRMED")) => confirmed.push(tx),
            (403, _) => {
                assert_eq!(tx["error"]["code"], "POLICY_DENIED", "{tx}");
                assert!(tx.to_string().contains("daily_limit"), "{tx}");
                denied += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(
        !confirmed.is_empty() && denied > 0,
        "{} confirmed, {denied} denied",
        confirmed.len()
    );
    assert!(
        confirmed.len() < 10,
        "fees were not counted: {} confirmed",
        confirmed.len()
    );
    // What stays counted is what was paid: value + the fee from each receipt, within the limit.
    let paid: U256 = confirmed
        .iter()
        .map(|t| units(&t["baseUnits"]) + units(&t["feePaidBaseUnits"]))
        .sum();
    assert!(confirmed.iter().all(|t| units(&t["feePaidBaseUnits"]) > U256::ZERO));
    assert_eq!(spent_today(&daemon, &token).await, paid);
    assert!(paid <= limit);
}

/// A node quoting an absurd priority fee gets nothing signed: the quote is above the chain's
/// cap, the transfer is refused with the reason, no nonce used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_fee_quote_above_the_cap_is_refused_and_nothing_is_signed() {
    let anvil = Anvil::start().await;
    let rpc = RpcProxy::start(&anvil.url).await;
    let daemon = Daemon::start(Opts {
        anvil_url: Some(rpc.url.clone()),
        ..opts(&anvil)
    })
    .await;
    let (wallet, token) = wallet(&anvil, &daemon, json!({ "instant_max": "1" })).await;
    // 10^6 gwei of priority fee per gas, in every block of the history.
    rpc.answer(
        "eth_feeHistory",
        json!({
            "oldestBlock": "0x1",
            "baseFeePerGas": ["0x3b9aca00", "0x3b9aca00"],
            "gasUsedRatio": [0.5],
            "reward": [["0x38d7ea4c68000"]],
        }),
    );
    let (status, check) = daemon
        .session(
            &token,
            Method::POST,
            "/v1/transactions/check",
            Some(json!({ "to": RECIPIENT, "amount": "0.01" })),
        )
        .await;
    assert_eq!(
        (status, check["error"]["code"].as_str()),
        (422, Some("CHAIN_REJECTED")),
        "{check}"
    );
    assert!(check["error"]["message"].as_str().unwrap().contains("cap"), "{check}");
    let (status, tx) = send(
        &daemon,
        &token,
        json!({ "to": RECIPIENT, "amount": "0.01", "idempotencyKey": "greedy-node" }),
    )
    .await;
    assert_eq!((status, tx["status"].as_str()), (200, Some("FAILED")), "{tx}");
    assert!(
        tx["error"].as_str().unwrap().contains("max_priority_fee_per_gas_gwei"),
        "{tx}"
    );
    assert_eq!(rpc.seen("eth_sendRawTransaction"), 0, "nothing broadcast");
    let nonce = anvil
        .rpc("eth_getTransactionCount", json!([wallet["address"], "latest"]))
        .await;
    assert_eq!(nonce, json!("0x0"), "nothing signed");
    let (_, audit) = daemon.master(Method::GET, "/v1/audit?kind=tx_signed", None).await;
    assert_eq!(audit.as_array().unwrap().len(), 0, "{audit}");
    // An honest quote again: nothing was reserved, and the next transfer goes through.
    rpc.clear();
    assert_eq!(spent_today(&daemon, &token).await, U256::ZERO);
    let (status, tx) = send(
        &daemon,
        &token,
        json!({ "to": RECIPIENT, "amount": "0.01", "idempotencyKey": "honest-node" }),
    )
    .await;
    assert_eq!((status, tx["status"].as_str()), (200, Some("CONFIRMED")), "{tx}");
}

/// The fee market is read once per `fee_quote_max_age_ms` (default one second), not on every
/// send — and with 0, on every quote. The gas estimate is asked for every transfer either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fee_market_reading_is_reused_only_while_young() {
    let anvil = Anvil::start().await;
    for (max_age_ms, histories) in [(60_000, 1), (0, 3)] {
        let rpc = RpcProxy::start(&anvil.url).await;
        let mut daemon = Daemon::init(Opts {
            anvil_url: Some(rpc.url.clone()),
            ..opts(&anvil)
        });
        daemon.env.push((
            "BURSAR_CHAINS_ANVIL_FEE_QUOTE_MAX_AGE_MS".into(),
            max_age_ms.to_string(),
        ));
        daemon.spawn().await;
        let (_, token) = wallet(&anvil, &daemon, json!({ "instant_max": "1" })).await;
        for i in 0..3 {
            let (status, tx) = send(
                &daemon,
                &token,
                json!({ "to": RECIPIENT, "amount": "0.001", "idempotencyKey": format!("q-{max_age_ms}-{i}") }),
            )
            .await;
            assert_eq!((status, tx["status"].as_str()), (200, Some("CONFIRMED")), "{tx}");
        }
        assert_eq!(rpc.seen("eth_feeHistory"), histories, "max age {max_age_ms} ms");
        assert_eq!(rpc.seen("eth_estimateGas"), 3, "one estimate per transfer");
    }
}

/// A provider that forwards the signed transaction but answers "internal error": the
/// transfer is not failed (that proves nothing), stays SIGNED, and confirms — once, counted
/// once — when the chain mines it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_error_after_forwarding_still_confirms_once() {
    let anvil = Anvil::start().await;
    let rpc = RpcProxy::start(&anvil.url).await;
    let daemon = Daemon::start(Opts {
        anvil_url: Some(rpc.url.clone()),
        ..opts(&anvil)
    })
    .await;
    let (wallet, token) = wallet(&anvil, &daemon, json!({ "instant_max": "1" })).await;
    let before = balance_of(&anvil, RECIPIENT).await;
    // Not mined at once: the daemon cannot see a receipt right after the "failed" broadcast.
    anvil.rpc("evm_setAutomine", json!([false])).await;
    anvil.rpc("evm_setIntervalMining", json!([1])).await;
    rpc.error_after_forward("eth_sendRawTransaction");
    let (status, tx) = send(
        &daemon,
        &token,
        json!({ "to": RECIPIENT, "amount": "0.25", "idempotencyKey": "lying-provider" }),
    )
    .await;
    assert_eq!(status, 200, "{tx}");
    assert_ne!(
        tx["status"], "FAILED",
        "an error that proves nothing failed the transfer: {tx}"
    );
    let id = tx["id"].as_str().unwrap();
    let done = wait_status(&daemon, &token, id, "CONFIRMED").await;
    assert_eq!(balance_of(&anvil, RECIPIENT).await - before, eth(1) / U256::from(4));
    let nonce = anvil
        .rpc("eth_getTransactionCount", json!([wallet["address"], "latest"]))
        .await;
    assert_eq!(nonce, json!("0x1"), "exactly one transaction");
    let (_, audit) = daemon.master(Method::GET, "/v1/audit?limit=100", None).await;
    assert_eq!(
        spent_today(&daemon, &token).await,
        units(&done["baseUnits"]) + units(&done["feePaidBaseUnits"]),
        "counted once: {done}\n{audit}"
    );
}

/// A DELAY transfer decided just before UTC midnight and signed just after counts on the day
/// it is signed, once (the daemon's clock is shifted with the test-faults clock offset).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_across_midnight_counts_on_the_day_it_is_signed() {
    let anvil = Anvil::start().await;
    let real_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let midnight = (real_now / 86_400 + 1) * 86_400;
    let mut daemon = Daemon::init(opts(&anvil));
    // The daemon starts at 23:59:48 (its clock); setup takes a few seconds, the delay 20.
    daemon.env.push((
        "BURSAR_TEST_CLOCK_OFFSET".into(),
        (midnight - 12 - real_now).to_string(),
    ));
    daemon.spawn().await;
    let (_, token) = wallet(
        &anvil,
        &daemon,
        json!({ "instant_max": "0.01", "delay_max": "1", "delay_seconds": 20 }),
    )
    .await;
    let (status, tx) = send(
        &daemon,
        &token,
        json!({ "to": RECIPIENT, "amount": "0.5", "idempotencyKey": "midnight" }),
    )
    .await;
    assert_eq!((status, tx["status"].as_str()), (200, Some("DELAYED")), "{tx}");
    let day_of = |t: &Value| t.as_str().unwrap()[..10].to_owned();
    let decided_on = day_of(&tx["createdAt"]);
    assert_ne!(
        day_of(&tx["executesAt"]),
        decided_on,
        "decided before midnight, due after it (else the setup was too slow): {tx}"
    );
    // Reserved on the day it was decided.
    assert_eq!(
        spent_today(&daemon, &token).await,
        units(&tx["baseUnits"]) + units(&tx["maxFeeBaseUnits"])
    );
    let path = format!("/v1/transactions/{}", tx["id"].as_str().unwrap());
    let mut done = Value::Null;
    for _ in 0..400 {
        done = daemon.session(&token, Method::GET, &path, None).await.1;
        if done["status"] == "CONFIRMED" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(done["status"], "CONFIRMED", "{done}");
    // Signed after midnight: counted today (the new day), once — value + the fee it paid.
    let counted = units(&done["baseUnits"]) + units(&done["feePaidBaseUnits"]);
    assert_eq!(spent_today(&daemon, &token).await, counted);
    let (_, audit) = daemon.master(Method::GET, "/v1/audit?kind=tx_executing", None).await;
    let moved_to = audit[0]["detail"]["reservedIn"].as_str().unwrap();
    assert_ne!(moved_to, decided_on, "{audit}");
    assert_eq!(moved_to, day_of(&done["updatedAt"]));
}

/// A daemon on `anvil` whose signed transfers are replaced after `replace_after` seconds
/// without a receipt, with answers bounded to a second so that tests see SUBMITTED at once.
async fn replacing_daemon(anvil: &Anvil, replace_after: u64, fault: Option<&str>) -> Daemon {
    replacing_daemon_with(opts(anvil), replace_after, fault).await
}

async fn replacing_daemon_with(mut o: Opts, replace_after: u64, fault: Option<&str>) -> Daemon {
    o.extra_config = o
        .extra_config
        .replace("confirm_wait_seconds = 10", "confirm_wait_seconds = 1");
    let mut daemon = Daemon::init(o);
    daemon.env.push((
        "BURSAR_CHAINS_ANVIL_REPLACE_AFTER_SECONDS".into(),
        replace_after.to_string(),
    ));
    if let Some(point) = fault {
        daemon.env.push(("BURSAR_TEST_FAULT".into(), point.into()));
    }
    daemon.spawn().await;
    daemon
}

async fn audit_count(daemon: &Daemon, kind: &str) -> usize {
    let (_, entries) = daemon
        .master(Method::GET, &format!("/v1/audit?kind={kind}&limit=1000"), None)
        .await;
    entries.as_array().map_or(0, Vec::len)
}

async fn get_tx(daemon: &Daemon, token: &str, id: &str) -> Value {
    daemon
        .session(token, Method::GET, &format!("/v1/transactions/{id}"), None)
        .await
        .1
}

/// Polls `probe` (bounded) until it holds.
async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if probe().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A signed transfer that cannot be mined (its max fee is below the base fee) is replaced at
/// the same nonce with higher fees, and a replacement that waits as long unmined is replaced
/// again (the timer restarts at each signing). The promise, however many versions it took:
/// the chain shows one transfer, the record keeps every version's hash, the budget counts it
/// once. The test holds mining back until the second replacement, so that path is taken every
/// run rather than only when the machine is slow (a 2-second timer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_transfer_is_replaced_and_confirms_once() {
    let anvil = Anvil::start().await;
    let daemon = replacing_daemon(&anvil, 2, None).await;
    let (wallet, token) = wallet(&anvil, &daemon, json!({ "instant_max": "1" })).await;
    let before = balance_of(&anvil, RECIPIENT).await;
    anvil.rpc("evm_setAutomine", json!([false])).await;
    let (status, tx) = send(
        &daemon,
        &token,
        json!({ "to": RECIPIENT, "amount": "0.1", "idempotencyKey": "stuck" }),
    )
    .await;
    assert_eq!((status, tx["status"].as_str()), (200, Some("SUBMITTED")), "{tx}");
    let original = tx["hash"].as_str().unwrap().to_owned();
    // The base fee jumps above what it allows: mining a block leaves it out.
    let max_fee = units(&tx["maxFeeBaseUnits"]) / U256::from(21_000u64 * 6 / 5);
    let base = format!("{:#x}", max_fee * U256::from(5));
    anvil.rpc("anvil_setNextBlockBaseFeePerGas", json!([base])).await;
    anvil.rpc("evm_mine", json!([])).await;
    let id = tx["id"].as_str().unwrap().to_owned();
    // Nothing is mined meanwhile: the first replacement waits past the timer too.
    eventually("the replacement of the replacement", || async {
        replacements(&daemon, &id).await.len() >= 2
    })
    .await;
    // Each replacement is recorded (and audited) before it is broadcast: mine until it is in.
    eventually("CONFIRMED", || async {
        anvil.rpc("evm_mine", json!([])).await;
        get_tx(&daemon, &token, &id).await["status"] == "CONFIRMED"
    })
    .await;
    let done = get_tx(&daemon, &token, &id).await;
    assert!(assert_every_version_recorded(&daemon, &done).await >= 2, "{done}");
    assert!(
        done["replacedHashes"].as_array().unwrap().contains(&json!(original)),
        "{done}"
    );
    let hash = done["hash"].as_str().unwrap();
    // The one mined is the one recorded.
    let receipt = anvil.rpc("eth_getTransactionReceipt", json!([hash])).await;
    assert_eq!(receipt["status"], "0x1", "{receipt}");
    assert_eq!(balance_of(&anvil, RECIPIENT).await - before, eth(1) / U256::from(10));
    let nonce = anvil
        .rpc("eth_getTransactionCount", json!([wallet["address"], "latest"]))
        .await;
    assert_eq!(nonce, json!("0x1"), "one transaction");
    assert_eq!(audit_count(&daemon, "tx_signed").await, 1);
    assert_eq!(
        spent_today(&daemon, &token).await,
        units(&done["baseUnits"]) + units(&done["feePaidBaseUnits"]),
        "counted once: {done}"
    );
}

/// The node serves a mined transfer's receipt late: meanwhile the worker, seeing it unmined
/// past the timer, signs a replacement, which the node refuses (the nonce is used). When the
/// receipt appears, the first version is recorded as the one mined and the replacement stays
/// on record beside it: every signed hash is kept, none listed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_signed_while_the_receipt_lagged_stays_on_record() {
    let anvil = Anvil::start().await;
    let rpc = RpcProxy::start(&anvil.url).await;
    let o = Opts {
        anvil_url: Some(rpc.url.clone()),
        ..opts(&anvil)
    };
    let daemon = replacing_daemon_with(o, 2, None).await;
    let (wallet, token) = wallet(&anvil, &daemon, json!({ "instant_max": "1" })).await;
    let before = balance_of(&anvil, RECIPIENT).await;
    anvil.rpc("evm_setAutomine", json!([false])).await;
    let (status, tx) = send(
        &daemon,
        &token,
        json!({ "to": RECIPIENT, "amount": "0.1", "idempotencyKey": "lagging" }),
    )
    .await;
    assert_eq!((status, tx["status"].as_str()), (200, Some("SUBMITTED")), "{tx}");
    let id = tx["id"].as_str().unwrap();
    rpc.answer("eth_getTransactionReceipt", Value::Null);
    anvil.rpc("evm_mine", json!([])).await;
    // The version in the block (the send's, unless the timer already replaced it).
    let block = anvil.rpc("eth_getBlockByNumber", json!(["latest", false])).await;
    let mined = block["transactions"][0].as_str().unwrap().to_owned();
    eventually("a replacement of the mined version", || async {
        replacements(&daemon, id).await.iter().any(|r| r["replaces"] == mined)
    })
    .await;
    rpc.clear();
    eventually("CONFIRMED", || async {
        anvil.rpc("evm_mine", json!([])).await;
        get_tx(&daemon, &token, id).await["status"] == "CONFIRMED"
    })
    .await;
    let done = get_tx(&daemon, &token, id).await;
    assert_eq!(
        done["hash"], mined,
        "the version in the block is the one recorded: {done}"
    );
    assert_every_version_recorded(&daemon, &done).await;
    assert_eq!(balance_of(&anvil, RECIPIENT).await - before, eth(1) / U256::from(10));
    let nonce = anvil
        .rpc("eth_getTransactionCount", json!([wallet["address"], "latest"]))
        .await;
    assert_eq!(nonce, json!("0x1"), "one transaction");
    assert_eq!(
        spent_today(&daemon, &token).await,
        units(&done["baseUnits"]) + units(&done["feePaidBaseUnits"]),
        "counted once, the refused replacement's fee released: {done}"
    );
}

/// Every signed version of the transfer `done` is on record once: its `hash` and its
/// `replacedHashes` are exactly the hashes its `tx_replaced` audit entries name. Returns how
/// many replacements were signed.
async fn assert_every_version_recorded(daemon: &Daemon, done: &Value) -> usize {
    let replaced: Vec<&str> = done["replacedHashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    let mut recorded: std::collections::BTreeSet<&str> = replaced.iter().copied().collect();
    assert_eq!(recorded.len(), replaced.len(), "a hash listed twice: {done}");
    assert!(
        recorded.insert(done["hash"].as_str().unwrap()),
        "the mined hash is also listed as replaced: {done}"
    );
    let audited = replacements(daemon, done["id"].as_str().unwrap()).await;
    assert!(!audited.is_empty(), "{done}");
    let signed: std::collections::BTreeSet<&str> = audited
        .iter()
        .flat_map(|r| [r["replaces"].as_str().unwrap(), r["hash"].as_str().unwrap()])
        .collect();
    assert_eq!(recorded, signed, "every signed version is recorded: {done}");
    audited.len()
}

/// The `tx_replaced` audit details of transfer `id`, oldest first.
async fn replacements(daemon: &Daemon, id: &str) -> Vec<Value> {
    let (_, entries) = daemon
        .master(Method::GET, "/v1/audit?kind=tx_replaced&limit=1000", None)
        .await;
    entries
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|e| e["detail"]["tx"] == id)
                .map(|e| e["detail"].clone())
                .collect()
        })
        .unwrap_or_default()
}

/// The operator takes a stuck nonce back with a zero-value self-transfer: the transfer ends
/// FAILED with its value released, and the next transfer proceeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_cancels_a_stuck_nonce_on_chain() {
    let anvil = Anvil::start().await;
    let daemon = replacing_daemon(&anvil, 0, None).await;
    let (wallet, token) = wallet(&anvil, &daemon, json!({ "instant_max": "1" })).await;
    let before = balance_of(&anvil, RECIPIENT).await;
    anvil.rpc("evm_setAutomine", json!([false])).await;
    let (_, tx) = send(
        &daemon,
        &token,
        json!({ "to": RECIPIENT, "amount": "0.3", "idempotencyKey": "to-cancel" }),
    )
    .await;
    assert_eq!(tx["status"], "SUBMITTED", "{tx}");
    let id = tx["id"].as_str().unwrap().to_owned();
    let out = daemon.cli(&["tx", "cancel-onchain", &id, "--json"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let replaced: Value = serde_json::from_str(&stdout).unwrap();
    assert!(replaced["cancelHash"].is_string(), "{replaced}");
    // A session cannot do it: it is the operator's.
    let (status, _) = daemon
        .session(
            &token,
            Method::POST,
            &format!("/v1/admin/transactions/{id}/cancel-onchain"),
            None,
        )
        .await;
    assert_eq!(status, 401);
    anvil.rpc("evm_mine", json!([])).await;
    eventually("FAILED", || async {
        get_tx(&daemon, &token, &id).await["status"] == "FAILED"
    })
    .await;
    let failed = get_tx(&daemon, &token, &id).await;
    assert!(
        failed["error"].as_str().unwrap().contains("cancelled on chain"),
        "{failed}"
    );
    assert_eq!(balance_of(&anvil, RECIPIENT).await, before, "nothing sent");
    // Only the cancel's fee stays counted.
    assert_eq!(spent_today(&daemon, &token).await, units(&failed["feePaidBaseUnits"]));
    // The nonce is used; the next transfer takes the next one.
    anvil.rpc("evm_setAutomine", json!([true])).await;
    let (_, next) = send(
        &daemon,
        &token,
        json!({ "to": RECIPIENT, "amount": "0.01", "idempotencyKey": "after-cancel" }),
    )
    .await;
    assert_eq!(
        (next["status"].as_str(), next["nonce"].as_u64()),
        (Some("CONFIRMED"), Some(1)),
        "{next}"
    );
    let nonce = anvil
        .rpc("eth_getTransactionCount", json!([wallet["address"], "latest"]))
        .await;
    assert_eq!(nonce, json!("0x2"));
}

/// kill -9 after the replacement is signed but before it is recorded: after restart the
/// daemon signs a new replacement; still exactly one transfer on chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_signing_and_recording_a_replacement_sends_once() {
    let anvil = Anvil::start().await;
    let mut daemon = replacing_daemon(&anvil, 3, Some("replacement_signed")).await;
    let (wallet, token) = wallet(&anvil, &daemon, json!({ "instant_max": "1" })).await;
    let before = balance_of(&anvil, RECIPIENT).await;
    anvil.rpc("evm_setAutomine", json!([false])).await;
    let (_, tx) = send(
        &daemon,
        &token,
        json!({ "to": RECIPIENT, "amount": "0.2", "idempotencyKey": "crashy" }),
    )
    .await;
    assert_eq!(tx["status"], "SUBMITTED", "{tx}");
    let id = tx["id"].as_str().unwrap().to_owned();
    // The worker replaces it after three seconds, and dies at the fault point.
    let status = daemon.wait_exit();
    assert!(!status.success(), "the daemon aborted at the fault point");
    daemon.env.retain(|(k, _)| k != "BURSAR_TEST_FAULT");
    daemon.spawn().await;
    eventually("the replacement", || async {
        audit_count(&daemon, "tx_replaced").await > 0
    })
    .await;
    // Recorded before broadcast: mine until the replacement is in.
    eventually("CONFIRMED", || async {
        anvil.rpc("evm_mine", json!([])).await;
        get_tx(&daemon, &token, &id).await["status"] == "CONFIRMED"
    })
    .await;
    assert_eq!(balance_of(&anvil, RECIPIENT).await - before, eth(1) / U256::from(5));
    let nonce = anvil
        .rpc("eth_getTransactionCount", json!([wallet["address"], "latest"]))
        .await;
    assert_eq!(nonce, json!("0x1"), "exactly one transfer");
    assert_eq!(audit_count(&daemon, "tx_signed").await, 1);
    let (_, verify) = daemon.master(Method::GET, "/v1/audit/verify", None).await;
    assert_eq!(verify["ok"], true, "{verify}");
}

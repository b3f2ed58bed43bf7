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

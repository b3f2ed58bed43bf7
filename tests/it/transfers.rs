//! Transfers under policy, end to end: the real daemon, a real anvil, real signatures.

use crate::harness::{Anvil, Daemon, Opts, eth};
use alloy::primitives::U256;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

pub(crate) const RECIPIENT: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

pub(crate) fn opts(anvil: &Anvil) -> Opts {
    Opts {
        anvil_url: Some(anvil.url.clone()),
        extra_config:
            "\n[prices.native]\nETH = \"2000\"\n\n[transfers]\nworker_interval_ms = 100\nconfirm_wait_seconds = 10\n"
                .into(),
        ..Opts::default()
    }
}

/// A funded wallet with a session and the given policies; returns (wallet, token).
async fn setup(anvil: &Anvil, daemon: &Daemon, policies: &[(&str, Value)], owner: bool) -> (Value, String) {
    let (wallet, token) = daemon.wallet_and_token().await;
    let wid = wallet["id"].as_str().unwrap();
    anvil.fund(wallet["address"].as_str().unwrap(), eth(100)).await;
    for (kind, rules) in policies {
        let (status, body) = daemon
            .master(
                Method::POST,
                "/v1/policies",
                Some(json!({ "walletId": wid, "type": kind, "rules": rules })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    if owner {
        let (status, body) = daemon
            .master(
                Method::PUT,
                &format!("/v1/wallets/{wid}/owner"),
                Some(json!({ "address": RECIPIENT })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    (wallet, token)
}

async fn send(daemon: &Daemon, token: &str, amount: &str, key: &str) -> (u16, Value) {
    daemon
        .session(
            token,
            Method::POST,
            "/v1/transactions/send",
            Some(json!({ "to": RECIPIENT, "amount": amount, "idempotencyKey": key })),
        )
        .await
}

async fn check(daemon: &Daemon, token: &str, amount: &str) -> Value {
    let (status, body) = daemon
        .session(
            token,
            Method::POST,
            "/v1/transactions/check",
            Some(json!({ "to": RECIPIENT, "amount": amount })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// `n` concurrent sends of `amount` with keys `{prefix}-{i}`; (status, body) of each.
async fn send_parallel(daemon: &Daemon, token: &str, amount: &str, n: usize, prefix: &str) -> Vec<(u16, Value)> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (url, token, amount, key) = (
                daemon.url.clone(),
                token.to_owned(),
                amount.to_owned(),
                format!("{prefix}-{i}"),
            );
            tokio::spawn(async move {
                let res = crate::harness::http()
                    .post(format!("{url}/v1/transactions/send"))
                    .bearer_auth(token)
                    .json(&json!({ "to": RECIPIENT, "amount": amount, "idempotencyKey": key }))
                    .send()
                    .await
                    .unwrap();
                (res.status().as_u16(), res.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

pub(crate) async fn balance_of(anvil: &Anvil, address: &str) -> U256 {
    let hex = anvil.rpc("eth_getBalance", json!([address, "latest"])).await;
    U256::from_str_radix(hex.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

async fn get(daemon: &Daemon, token: &str, id: &str) -> Value {
    daemon
        .session(token, Method::GET, &format!("/v1/transactions/{id}"), None)
        .await
        .1
}

pub(crate) async fn wait_status(daemon: &Daemon, token: &str, id: &str, want: &str) -> Value {
    for _ in 0..100 {
        let (_, tx) = daemon
            .session(token, Method::GET, &format!("/v1/transactions/{id}"), None)
            .await;
        if tx["status"] == want {
            return tx;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("transaction {id} never reached {want}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instant_transfer_confirms_on_chain_and_is_idempotent() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let (_, token) = setup(
        &anvil,
        &daemon,
        &[("SPENDING_LIMIT", json!({ "instant_max": "1" }))],
        false,
    )
    .await;
    let before = balance_of(&anvil, RECIPIENT).await;

    let (status, tx) = send(&daemon, &token, "0.5", "pay-1").await;
    assert_eq!(status, 200, "{tx}");
    assert_eq!(
        (tx["status"].as_str(), tx["tier"].as_str()),
        (Some("CONFIRMED"), Some("INSTANT")),
        "{tx}"
    );
    assert!(tx["hash"].as_str().unwrap().starts_with("0x"));
    assert_eq!(tx["amount"], "0.5");
    assert_eq!(tx["baseUnits"], "500000000000000000");
    assert_eq!(balance_of(&anvil, RECIPIENT).await - before, eth(1) / U256::from(2));

    // A retry with the same key and body returns the first result and sends nothing.
    let (status, again) = send(&daemon, &token, "0.5", "pay-1").await;
    assert_eq!((status, &again["id"]), (200, &tx["id"]));
    let (status, again) = daemon
        .session(
            &token,
            Method::POST,
            "/v1/transactions/send",
            Some(json!({ "to": RECIPIENT, "amountBaseUnits": "500000000000000000", "idempotencyKey": "pay-1" })),
        )
        .await;
    assert_eq!(
        (status, &again["id"]),
        (200, &tx["id"]),
        "the same transfer in base units is the same request"
    );
    assert_eq!(balance_of(&anvil, RECIPIENT).await - before, eth(1) / U256::from(2));
    // The same key with another body is a conflict.
    let (status, body) = send(&daemon, &token, "0.6", "pay-1").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("CONFLICT")),
        "{body}"
    );

    let (_, list) = daemon
        .session(&token, Method::GET, "/v1/transactions?status=CONFIRMED", None)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    // A status that is not one is a 400 that names the field and lists the states, without
    // echoing what was sent.
    let (status, body) = daemon
        .session(&token, Method::GET, "/v1/transactions?status=DONE%3Cscript%3E", None)
        .await;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("INVALID_INPUT")),
        "{body}"
    );
    assert!(message.contains("status: unknown transaction status"), "{message}");
    assert!(
        message.contains("PENDING_APPROVAL") && !message.contains("DONE"),
        "{message}"
    );
    let (_, audit) = daemon.master(Method::GET, "/v1/audit?limit=1000", None).await;
    let kinds: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "policy_added",
        "tx_requested",
        "tx_signed",
        "tx_broadcast",
        "tx_confirmed",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing in {kinds:?}");
    }
    let (_, verify) = daemon.master(Method::GET, "/v1/audit/verify", None).await;
    assert_eq!(verify["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tier_table_at_every_threshold() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let limits = json!({ "instant_max": "0.1", "notify_max": "0.2", "delay_max": "0.3", "delay_seconds": 2, "approval_timeout_seconds": 1 });
    let (_, token) = setup(&anvil, &daemon, &[("SPENDING_LIMIT", limits)], true).await;
    // A threshold compares the amount plus the most the fee can be: exactly at it, and one
    // wei over. (No block is mined between these checks, so the fee quote stays the same.)
    let fee = U256::from_str_radix(
        check(&daemon, &token, "0.1").await["maxFeeBaseUnits"].as_str().unwrap(),
        10,
    )
    .unwrap();
    assert!(fee > U256::ZERO);
    let at = |threshold: u64| eth(threshold) / U256::from(10) - fee;
    let table = [
        (at(1), "INSTANT"),
        (at(1) + U256::from(1), "NOTIFY"),
        (at(2), "NOTIFY"),
        (at(2) + U256::from(1), "DELAY"),
        (at(3), "DELAY"),
        (at(3) + U256::from(1), "APPROVAL"),
        (eth(50), "APPROVAL"),
    ];
    for (base_units, tier) in table {
        let body = json!({ "to": RECIPIENT, "amountBaseUnits": base_units.to_string() });
        let (status, c) = daemon
            .session(&token, Method::POST, "/v1/transactions/check", Some(body))
            .await;
        assert_eq!(status, 200, "{c}");
        assert_eq!(c["tier"].as_str(), Some(tier), "{base_units}: {c}");
        assert_eq!(c["maxFeeBaseUnits"], fee.to_string(), "{c}");
        assert!(!c["trace"].as_array().unwrap().is_empty());
    }
    // USD thresholds (ETH = $2000) combine with native ones; the strictest wins.
    let (status, _) = send(&daemon, &token, "0.05", "instant").await;
    assert_eq!(status, 200);
    let (_, notify) = send(&daemon, &token, "0.15", "notify").await;
    assert_eq!(
        (notify["tier"].as_str(), notify["status"].as_str()),
        (Some("NOTIFY"), Some("CONFIRMED")),
        "{notify}"
    );

    // DELAY: executes when due unless cancelled.
    let (_, delayed) = send(&daemon, &token, "0.25", "delay-runs").await;
    assert_eq!(delayed["status"], "DELAYED", "{delayed}");
    assert!(delayed["executesAt"].is_string());
    let (_, cancelled) = send(&daemon, &token, "0.26", "delay-cancelled").await;
    let (status, body) = daemon
        .session(
            &token,
            Method::POST,
            &format!("/v1/transactions/{}/cancel", cancelled["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("CANCELLED")), "{body}");
    // It waits: still DELAYED (nothing signed) until its time, CONFIRMED only after it.
    let waiting = get(&daemon, &token, delayed["id"].as_str().unwrap()).await;
    if waiting["status"] == "DELAYED" {
        assert!(waiting["hash"].is_null() && waiting["nonce"].is_null(), "{waiting}");
    } else {
        // Only possible once its time has come (a slow machine).
        assert!(
            waiting["updatedAt"].as_str() >= delayed["executesAt"].as_str(),
            "{waiting}"
        );
    }
    let done = wait_status(&daemon, &token, delayed["id"].as_str().unwrap(), "CONFIRMED").await;
    assert!(done["hash"].is_string());
    assert!(
        done["updatedAt"].as_str() >= delayed["executesAt"].as_str(),
        "executed before its time: {done}"
    );
    // The cancelled one stays cancelled past its due time.
    let still = get(&daemon, &token, cancelled["id"].as_str().unwrap()).await;
    assert_eq!(still["status"], "CANCELLED", "{still}");
    assert!(still["hash"].is_null());
    // Cancelling what was already signed is refused.
    let (status, _) = daemon
        .session(
            &token,
            Method::POST,
            &format!("/v1/transactions/{}/cancel", delayed["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, 409);

    // APPROVAL waits for the owner, then expires; nothing reaches the chain.
    let (_, pending) = send(&daemon, &token, "1", "approval").await;
    assert_eq!(pending["status"], "PENDING_APPROVAL", "{pending}");
    let expired = wait_status(&daemon, &token, pending["id"].as_str().unwrap(), "EXPIRED").await;
    assert!(expired["hash"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_deny_without_policies_owner_or_known_token() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let (wallet, token) = setup(&anvil, &daemon, &[], false).await;
    // No policy at all: not even a tiny amount goes at INSTANT; with no owner it is DENIED.
    let c = check(&daemon, &token, "0.000001").await;
    assert_eq!((c["allowed"].as_bool(), c["tier"].as_str()), (Some(false), None), "{c}");
    let (status, body) = send(&daemon, &token, "0.000001", "tiny").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("POLICY_DENIED")),
        "{body}"
    );
    assert!(body["error"]["message"].as_str().unwrap().contains("owner"), "{body}");
    assert_eq!(body["error"]["details"]["transaction"]["status"], "DENIED");
    // Denied requests are recorded: the same key answers the same denial.
    let (status, again) = send(&daemon, &token, "0.000001", "tiny").await;
    assert_eq!(
        (status, &again["error"]["details"]["transaction"]["id"]),
        (403, &body["error"]["details"]["transaction"]["id"])
    );

    // With an owner, the same transfer waits for approval instead.
    let wid = wallet["id"].as_str().unwrap();
    daemon
        .master(
            Method::PUT,
            &format!("/v1/wallets/{wid}/owner"),
            Some(json!({ "address": RECIPIENT })),
        )
        .await;
    let c = check(&daemon, &token, "0.000001").await;
    assert_eq!(c["tier"], "APPROVAL", "{c}");

    // A token no policy allows is denied, whatever the amount.
    let usdc = anvil
        .deploy_token("Test USD", "USDC", 6, U256::from(10u64.pow(12)))
        .await;
    anvil
        .transfer_token(&usdc, wallet["address"].as_str().unwrap(), U256::from(10u64.pow(9)))
        .await;
    daemon
        .master(
            Method::POST,
            "/v1/policies",
            Some(json!({ "walletId": wid, "type": "SPENDING_LIMIT", "rules": { "instant_max_usd": "1000000" } })),
        )
        .await;
    let (_, c) = daemon
        .session(
            &token,
            Method::POST,
            "/v1/transactions/check",
            Some(json!({ "to": RECIPIENT, "amount": "1", "token": usdc })),
        )
        .await;
    assert_eq!(c["allowed"], false, "{c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erc20_transfer_within_allowed_tokens_confirms() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let usdc = anvil
        .deploy_token("Test USD", "USDC", 6, U256::from(10u64.pow(12)))
        .await;
    let policies = [
        ("ALLOWED_TOKENS", json!({ "tokens": [usdc, "native"] })),
        ("SPENDING_LIMIT", json!({ "instant_max_usd": "100" })),
    ];
    // Token prices are keyed by chain and address, never by symbol.
    let mut o = opts(&anvil);
    o.extra_config += &format!("\n[prices.tokens]\n\"anvil:{}\" = \"1\"\n", usdc.to_lowercase());
    drop(daemon);
    let daemon = Daemon::start(o).await;
    let (wallet, token) = setup(&anvil, &daemon, &policies, false).await;
    anvil
        .transfer_token(&usdc, wallet["address"].as_str().unwrap(), U256::from(50_000_000u64))
        .await;
    let (status, tx) = daemon
        .session(
            &token,
            Method::POST,
            "/v1/transactions/send",
            Some(json!({ "to": RECIPIENT, "amount": "12.5", "token": usdc, "idempotencyKey": "usdc-1" })),
        )
        .await;
    assert_eq!(
        (status, tx["status"].as_str(), tx["symbol"].as_str()),
        (200, Some("CONFIRMED"), Some("USDC")),
        "{tx}"
    );
    let (_, bal) = daemon
        .session(&token, Method::GET, &format!("/v1/wallet/balance?token={usdc}"), None)
        .await;
    assert_eq!(bal["amount"], "37.5");
    // Too many decimals for the token is an error, not a rounding.
    let (status, body) = daemon
        .session(
            &token,
            Method::POST,
            "/v1/transactions/send",
            Some(json!({ "to": RECIPIENT, "amount": "0.0000001", "token": usdc, "idempotencyKey": "usdc-2" })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("decimals"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_sends_get_sequential_nonces() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let (_, token) = setup(
        &anvil,
        &daemon,
        &[("SPENDING_LIMIT", json!({ "instant_max": "1" }))],
        false,
    )
    .await;
    let results = send_parallel(&daemon, &token, "0.001", 100, "p").await;
    let mut nonces = Vec::new();
    for (_, tx) in results {
        assert!(
            matches!(tx["status"].as_str(), Some("CONFIRMED") | Some("SUBMITTED")),
            "{tx}"
        );
        nonces.push(tx["nonce"].as_u64().unwrap());
    }
    nonces.sort_unstable();
    assert_eq!(nonces, (0..100).collect::<Vec<u64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_sends_cannot_overspend_the_daily_limit() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let (_, token) = setup(
        &anvil,
        &daemon,
        &[("SPENDING_LIMIT", json!({ "instant_max": "1", "daily_limit": "1" }))],
        false,
    )
    .await;
    let results = send_parallel(&daemon, &token, "0.05", 100, "d").await;
    let (mut passed, mut denied) = (Vec::new(), 0);
    for result in results {
        match result {
            (200, tx) if tx["tier"] == "INSTANT" && tx["status"] == "CONFIRMED" => passed.push(tx),
            // Over the daily limit needs the owner; there is none, so it is denied.
            (403, body) if body["error"]["code"] == "POLICY_DENIED" => denied += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    // Value + the most each fee can be, never over the limit, and no room left for one more.
    let units = |v: &Value| U256::from_str_radix(v.as_str().unwrap(), 10).unwrap();
    let reserved: U256 = passed
        .iter()
        .map(|tx| units(&tx["baseUnits"]) + units(&tx["maxFeeBaseUnits"]))
        .sum();
    let smallest_fee = passed.iter().map(|tx| units(&tx["maxFeeBaseUnits"])).min().unwrap();
    assert!(reserved <= eth(1), "overspent: {reserved}");
    assert!(
        eth(1) - reserved < eth(1) / U256::from(20) + smallest_fee,
        "under-allowed: {reserved}"
    );
    assert_eq!(passed.len() + denied, 100);
    // Once confirmed, each counts its value and the fee it paid.
    let paid: U256 = passed
        .iter()
        .map(|tx| units(&tx["baseUnits"]) + units(&tx["feePaidBaseUnits"]))
        .sum();
    let c = check(&daemon, &token, "0.05").await;
    assert_eq!(c["spentToday"]["nativeBaseUnits"], paid.to_string(), "{c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_and_transfer_inputs_are_validated() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let (wallet, token) = setup(
        &anvil,
        &daemon,
        &[("SPENDING_LIMIT", json!({ "instant_max": "1" }))],
        false,
    )
    .await;
    let wid = wallet["id"].as_str().unwrap();
    let bad_policies = [
        json!({ "walletId": wid, "type": "NOPE", "rules": {} }),
        json!({ "walletId": wid, "type": "SPENDING_LIMIT", "rules": { "instant_max": "1", "surprise": 1 } }),
        json!({ "walletId": wid, "type": "WHITELIST", "rules": { "allowed_addresses": ["0x12"] } }),
        json!({ "walletId": wid, "type": "SPENDING_LIMIT", "rules": { "instant_max": "2", "notify_max": "1" } }),
        json!({ "walletId": wid, "type": "RATE_LIMIT", "rules": { "max_requests": 0, "window_seconds": 60 } }),
        json!({ "walletId": "nope", "type": "RATE_LIMIT", "rules": { "max_requests": 1, "window_seconds": 60 } }),
    ];
    for body in bad_policies {
        let (status, res) = daemon.master(Method::POST, "/v1/policies", Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {res}");
    }
    let (status, _) = daemon
        .master(Method::POST, "/v1/policies", Some(json!({ "walletId": uuid::Uuid::new_v4().to_string(), "type": "RATE_LIMIT", "rules": { "max_requests": 1, "window_seconds": 60 } })))
        .await;
    assert_eq!(status, 404);
    // Types for contract calls and approvals, which nothing bursar signs can trigger yet: a
    // valid rule that would change nothing is refused, saying why.
    let contract = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
    for (kind, rules) in [
        ("CONTRACT_WHITELIST", json!({ "contracts": [contract] })),
        ("METHOD_WHITELIST", json!({ "methods": ["0xa9059cbb"] })),
        ("APPROVED_SPENDERS", json!({ "spenders": [RECIPIENT] })),
        ("APPROVE_AMOUNT_LIMIT", json!({ "max_amount": "1000" })),
    ] {
        let body = json!({ "walletId": wid, "type": kind, "rules": rules });
        let (status, res) = daemon.master(Method::POST, "/v1/policies", Some(body)).await;
        assert_eq!(status, 400, "{kind}: {res}");
        assert!(
            res["error"]["message"].as_str().unwrap().contains("does not sign yet"),
            "{res}"
        );
    }

    // Each with the field the service refused, typed in `details.field` (None: refused by
    // the body's schema before the service).
    let bad_sends = [
        (json!({ "to": RECIPIENT, "amount": "0.1" }), Some("idempotencyKey")),
        (
            json!({ "to": RECIPIENT, "amount": "0.1", "idempotencyKey": "" }),
            Some("idempotencyKey"),
        ),
        (
            json!({ "to": RECIPIENT, "amount": "0.1", "amountBaseUnits": "1", "idempotencyKey": "k" }),
            Some("amount"),
        ),
        (json!({ "to": RECIPIENT, "idempotencyKey": "k" }), Some("amount")),
        (
            json!({ "to": "0x123", "amount": "0.1", "idempotencyKey": "k" }),
            Some("to"),
        ),
        (
            json!({ "to": RECIPIENT, "amount": "-1", "idempotencyKey": "k" }),
            Some("amount"),
        ),
        (
            json!({ "to": RECIPIENT, "amount": "0", "idempotencyKey": "k" }),
            Some("amount"),
        ),
        (
            json!({ "to": RECIPIENT, "amount": "1e18", "idempotencyKey": "k" }),
            Some("amount"),
        ),
        (
            json!({ "to": RECIPIENT, "amountBaseUnits": "1.5", "idempotencyKey": "k" }),
            Some("amountBaseUnits"),
        ),
        (json!({ "to": RECIPIENT, "amount": 1, "idempotencyKey": "k" }), None),
        (
            json!({ "to": RECIPIENT, "amount": "0.1", "idempotencyKey": "k", "gas": "0x1" }),
            None,
        ),
    ];
    for (body, field) in bad_sends {
        let (status, res) = daemon
            .session(&token, Method::POST, "/v1/transactions/send", Some(body.clone()))
            .await;
        assert_eq!(
            (status, res["error"]["code"].as_str()),
            (400, Some("INVALID_INPUT")),
            "{body}: {res}"
        );
        if let Some(field) = field {
            assert_eq!(res["error"]["details"]["field"], field, "{body}: {res}");
            let message = res["error"]["message"].as_str().unwrap();
            assert!(message.starts_with(&format!("{field}: ")), "{body}: {res}");
        }
    }
    // Nothing was sent or recorded by any of them.
    let (_, list) = daemon.session(&token, Method::GET, "/v1/transactions", None).await;
    assert!(list.as_array().unwrap().is_empty(), "{list}");

    // Another wallet's session cannot see or cancel this wallet's transfers.
    let (_, tx) = send(&daemon, &token, "0.01", "mine").await;
    let (_, other_token) = daemon.wallet_and_token().await;
    let path = format!("/v1/transactions/{}", tx["id"].as_str().unwrap());
    assert_eq!(daemon.session(&other_token, Method::GET, &path, None).await.0, 404);
    assert_eq!(
        daemon
            .session(&other_token, Method::POST, &format!("{path}/cancel"), None)
            .await
            .0,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_dropped_sends_leave_no_nonce_gap() {
    let anvil = Anvil::start().await;
    let mut o = opts(&anvil);
    o.extra_config = o
        .extra_config
        .replace("confirm_wait_seconds = 10", "confirm_wait_seconds = 1");
    let daemon = Daemon::start(o).await;
    let (wallet, token) = daemon.wallet_and_token().await;
    let wid = wallet["id"].as_str().unwrap();
    daemon
        .master(
            Method::POST,
            "/v1/policies",
            Some(json!({ "walletId": wid, "type": "SPENDING_LIMIT", "rules": { "instant_max": "1000" } })),
        )
        .await;
    // Unfunded: the chain refuses it; FAILED, the reservation released, no nonce used.
    let (status, failed) = send(&daemon, &token, "1", "too-much").await;
    assert_eq!((status, failed["status"].as_str()), (200, Some("FAILED")), "{failed}");
    assert!(failed["error"].as_str().unwrap().contains("rejected"), "{failed}");
    assert_eq!(
        check(&daemon, &token, "0.1").await["spentToday"]["nativeBaseUnits"],
        "0"
    );

    anvil.fund(wallet["address"].as_str().unwrap(), eth(10)).await;
    // Mining off: the next send is broadcast but stays pending; then the node drops it.
    anvil.rpc("evm_setAutomine", json!([false])).await;
    let (_, pending) = send(&daemon, &token, "0.5", "dropped").await;
    assert_eq!(
        (pending["status"].as_str(), pending["nonce"].as_u64()),
        (Some("SUBMITTED"), Some(0)),
        "{pending}"
    );
    anvil.rpc("anvil_dropTransaction", json!([pending["hash"]])).await;
    // The worker notices it is unknown, re-broadcasts the same signed bytes, and it confirms.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while anvil
        .rpc("eth_getTransactionByHash", json!([pending["hash"]]))
        .await
        .is_null()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the dropped transaction was never re-broadcast"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anvil.rpc("evm_setAutomine", json!([true])).await;
    anvil.rpc("evm_mine", json!([])).await;
    let done = wait_status(&daemon, &token, pending["id"].as_str().unwrap(), "CONFIRMED").await;
    assert_eq!(done["hash"], pending["hash"], "re-broadcast, never re-signed");
    let (_, next) = send(&daemon, &token, "0.5", "after").await;
    assert_eq!(
        (next["status"].as_str(), next["nonce"].as_u64()),
        (Some("CONFIRMED"), Some(1)),
        "{next}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_is_enforced_on_the_send_path() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let policies = [
        ("SPENDING_LIMIT", json!({ "instant_max": "1" })),
        ("RATE_LIMIT", json!({ "max_requests": 2, "window_seconds": 60 })),
    ];
    let (_, token) = setup(&anvil, &daemon, &policies, false).await;
    for key in ["r1", "r2"] {
        let (status, tx) = send(&daemon, &token, "0.01", key).await;
        assert_eq!((status, tx["status"].as_str()), (200, Some("CONFIRMED")), "{tx}");
    }
    let (status, body) = send(&daemon, &token, "0.01", "r3").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("POLICY_DENIED")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rate limit reached"),
        "{body}"
    );
}

//! Every promise tested (issue 15): each test holds one sentence of README.md against the
//! real binary on a real anvil, with exact outcomes. Above each test: the deliberate break
//! it catches.
//!
//! Groups: re-check before signing (DELAY and APPROVAL), the membership rules (WHITELIST,
//! ALLOWED_NETWORKS, TIME_RESTRICTION), cumulative limits (native monthly, USD daily and
//! monthly, counted to the micro-dollar), RATE_LIMIT windows, a revert on chain, chains that
//! need more than one confirmation, and sessions across a kill switch and a restart.

use crate::harness::{Anvil, Daemon, eth};
use crate::owner::{Owner, pending, post_signed};
use crate::rpc_proxy::RpcProxy;
use crate::transfers::{RECIPIENT, balance_of, opts, wait_status};
use alloy::primitives::U256;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Anvil's account 2: a recipient no test lists.
const STRANGER: &str = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";
/// `opts(&anvil)` prices ETH at $2000: micro-USD per whole ETH.
const ETH_MICRO_USD: u64 = 2_000_000_000;

struct Wallet {
    id: String,
    address: String,
    token: String,
}

fn units(v: &Value) -> U256 {
    U256::from_str_radix(v.as_str().unwrap_or_else(|| panic!("not a number: {v}")), 10).unwrap()
}

/// A wallet funded with 10 ETH, a session, the given policies and optionally an owner (GRACE).
async fn setup(anvil: &Anvil, daemon: &Daemon, policies: &[(&str, Value)], owner: Option<&Owner>) -> Wallet {
    let (wallet, token) = daemon.wallet_and_token().await;
    let w = Wallet {
        id: wallet["id"].as_str().unwrap().to_owned(),
        address: wallet["address"].as_str().unwrap().to_owned(),
        token,
    };
    anvil.fund(&w.address, eth(10)).await;
    for (kind, rules) in policies {
        add_policy(daemon, &w.id, kind, rules.clone()).await;
    }
    if let Some(owner) = owner {
        let (status, body) = daemon
            .master(
                Method::PUT,
                &format!("/v1/wallets/{}/owner", w.id),
                Some(json!({ "address": owner.address() })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    w
}

/// Adds a policy; returns its id.
async fn add_policy(daemon: &Daemon, wid: &str, kind: &str, rules: Value) -> String {
    let body = json!({ "walletId": wid, "type": kind, "rules": rules });
    let (status, policy) = daemon.master(Method::POST, "/v1/policies", Some(body)).await;
    assert_eq!(status, 201, "{policy}");
    policy["id"].as_str().unwrap().to_owned()
}

async fn send_to(daemon: &Daemon, token: &str, to: &str, amount: &str, key: &str) -> (u16, Value) {
    daemon
        .session(
            token,
            Method::POST,
            "/v1/transactions/send",
            Some(json!({ "to": to, "amount": amount, "idempotencyKey": key })),
        )
        .await
}

async fn check_to(daemon: &Daemon, token: &str, to: &str, amount: &str) -> Value {
    let (status, c) = daemon
        .session(
            token,
            Method::POST,
            "/v1/transactions/check",
            Some(json!({ "to": to, "amount": amount })),
        )
        .await;
    assert_eq!(status, 200, "{c}");
    c
}

/// What the wallet has counted today and this month: (spentToday, spentThisMonth).
async fn spent(daemon: &Daemon, token: &str) -> (Value, Value) {
    let c = check_to(daemon, token, RECIPIENT, "0.000001").await;
    (c["spentToday"].clone(), c["spentThisMonth"].clone())
}

async fn get_tx(daemon: &Daemon, token: &str, id: &str) -> Value {
    let (status, tx) = daemon
        .session(token, Method::GET, &format!("/v1/transactions/{id}"), None)
        .await;
    assert_eq!(status, 200, "{tx}");
    tx
}

async fn chain_nonce(anvil: &Anvil, address: &str) -> Value {
    anvil.rpc("eth_getTransactionCount", json!([address, "latest"])).await
}

/// The wallet's balance of `token`, in base units, as the daemon reads it from the chain.
async fn token_balance(daemon: &Daemon, session: &str, token: &str) -> Value {
    let (status, b) = daemon
        .session(session, Method::GET, &format!("/v1/wallet/balance?token={token}"), None)
        .await;
    assert_eq!(status, 200, "{b}");
    b["baseUnits"].clone()
}

async fn audit_count(daemon: &Daemon, kind: &str) -> usize {
    let (_, entries) = daemon
        .master(Method::GET, &format!("/v1/audit?kind={kind}&limit=1000"), None)
        .await;
    entries.as_array().map_or(0, Vec::len)
}

/// Polls `probe` every 100 ms, at most 30 s, until it holds.
async fn wait_until<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if probe().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The trace entry for `rule` (the first one), as (effect, detail, counter).
fn traced<'a>(trace: &'a Value, rule: &str) -> (&'a str, &'a str, Option<&'a str>) {
    let entry = trace
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["rule"] == rule)
        .unwrap_or_else(|| panic!("{rule} not in the trace: {trace}"));
    (
        entry["effect"].as_str().unwrap(),
        entry["detail"].as_str().unwrap(),
        entry["counter"].as_str(),
    )
}

fn has_rule(trace: &Value, rule: &str) -> bool {
    trace.as_array().unwrap().iter().any(|e| e["rule"] == rule)
}

/// The engine's `policy::usd_value`: base units at `decimals` times micro-USD per whole
/// unit, rounded up.
fn usd_value(base_units: U256, decimals: u8, micro_usd_per_unit: U256) -> U256 {
    (base_units * micro_usd_per_unit).div_ceil(U256::from(10u8).pow(U256::from(decimals)))
}

/// The USD a transfer keeps counted once its receipt is in, computed the way the engine
/// does from the transaction's own numbers: the value at its price (rounded up), plus the
/// fee paid as its share of the max fee's USD (the max fee at the ETH price rounded up, then
/// the share rounded up). `value_usd` is the value's micro-USD (zero after a revert).
fn kept_usd(value_usd: U256, tx: &Value) -> U256 {
    let (max_fee, paid) = (units(&tx["maxFeeBaseUnits"]), units(&tx["feePaidBaseUnits"]));
    let max_fee_usd = usd_value(max_fee, 18, U256::from(ETH_MICRO_USD));
    value_usd + (max_fee_usd * paid).div_ceil(max_fee)
}

/// Micro-USD as the API's `usd` string (USD with 6 decimals).
fn usd_string(micro: U256) -> String {
    bursar::domain::Amount {
        base_units: micro,
        decimals: 6,
    }
    .to_decimal_string()
}

/// Micro-USD as the engine writes dollars in reasons and counters: "$200.08", "$0.000001".
fn dollars(micro: U256) -> String {
    let s = usd_string(micro);
    match s.split_once('.') {
        None => format!("${s}.00"),
        Some((_, frac)) if frac.len() == 1 => format!("${s}0"),
        Some(_) => format!("${s}"),
    }
}

// ---- re-check before signing --------------------------------------------------------------

/// A DELAY transfer, then the operator adds a WHITELIST without its recipient before it is
/// due: when due it is re-checked and ends DENIED — never signed, its reservation released.
/// Breaks caught: executing a DELAY transfer on its original decision (no re-check when due:
/// it would confirm), or a re-check denial that keeps the reservation (spentToday stays up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_transfer_denied_by_a_policy_added_while_it_waits_is_never_signed() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let limits = json!({ "instant_max": "0.01", "delay_max": "1", "delay_seconds": 3 });
    let w = setup(&anvil, &daemon, &[("SPENDING_LIMIT", limits)], None).await;
    let nonce_before = chain_nonce(&anvil, &w.address).await;
    let recipient_before = balance_of(&anvil, RECIPIENT).await;
    let (today_before, _) = spent(&daemon, &w.token).await;

    let (status, tx) = send_to(&daemon, &w.token, RECIPIENT, "0.5", "delayed").await;
    assert_eq!((status, tx["status"].as_str()), (200, Some("DELAYED")), "{tx}");
    let id = tx["id"].as_str().unwrap();
    // Reserved while it waits: value + the most its fee can be.
    assert_eq!(
        units(&spent(&daemon, &w.token).await.0["nativeBaseUnits"]),
        units(&today_before["nativeBaseUnits"]) + units(&tx["baseUnits"]) + units(&tx["maxFeeBaseUnits"])
    );

    add_policy(&daemon, &w.id, "WHITELIST", json!({ "allowed_addresses": [STRANGER] })).await;
    assert_eq!(
        get_tx(&daemon, &w.token, id).await["status"],
        "DELAYED",
        "the policy must land before the transfer is due (setup too slow)"
    );

    let done = wait_status(&daemon, &w.token, id, "DENIED").await;
    assert_eq!(done["error"], "denied when re-checked before signing", "{done}");
    assert_eq!(
        done["reasons"],
        json!([format!("recipient {RECIPIENT} is not in WHITELIST")]),
        "{done}"
    );
    assert_eq!(traced(&done["trace"], "WHITELIST.allowed_addresses").0, "DENY");
    assert!(done["hash"].is_null() && done["nonce"].is_null(), "{done}");
    assert!(
        done["updatedAt"].as_str() >= tx["executesAt"].as_str(),
        "re-checked before it was due: {done}"
    );
    // Released: back to the pre-transfer value; nothing on chain.
    assert_eq!(spent(&daemon, &w.token).await.0, today_before);
    assert_eq!(chain_nonce(&anvil, &w.address).await, nonce_before, "nothing signed");
    assert_eq!(balance_of(&anvil, RECIPIENT).await, recipient_before);
    assert_eq!(audit_count(&daemon, "tx_denied_on_recheck").await, 1);
    assert_eq!(audit_count(&daemon, "tx_signed").await, 0);
}

/// A DELAY transfer whose SPENDING_LIMIT is replaced by a lower one before it is due: when
/// due it needs the owner — PENDING_APPROVAL, nothing signed — and only the owner's
/// approval sends it.
/// Break caught: a re-check whose stricter tier is ignored (only a denial stops a due DELAY
/// transfer): it would confirm without the owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_transfer_over_a_lowered_limit_escalates_to_approval() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let owner = Owner::new();
    let w = setup(&anvil, &daemon, &[], Some(&owner)).await;
    let old = add_policy(
        &daemon,
        &w.id,
        "SPENDING_LIMIT",
        json!({ "instant_max": "0.01", "delay_max": "1", "delay_seconds": 3 }),
    )
    .await;
    let nonce_before = chain_nonce(&anvil, &w.address).await;
    let recipient_before = balance_of(&anvil, RECIPIENT).await;

    let (status, tx) = send_to(&daemon, &w.token, RECIPIENT, "0.5", "lowered").await;
    assert_eq!(
        (status, tx["status"].as_str(), tx["tier"].as_str()),
        (200, Some("DELAYED"), Some("DELAY")),
        "{tx}"
    );
    let id = tx["id"].as_str().unwrap();
    // The operator replaces the limit: 0.5 ETH is now over delay_max.
    add_policy(
        &daemon,
        &w.id,
        "SPENDING_LIMIT",
        json!({ "instant_max": "0.01", "delay_max": "0.1", "delay_seconds": 3, "approval_timeout_seconds": 600 }),
    )
    .await;
    let (status, body) = daemon
        .master(Method::DELETE, &format!("/v1/policies/{old}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        get_tx(&daemon, &w.token, id).await["status"],
        "DELAYED",
        "the new limit must land before the transfer is due (setup too slow)"
    );

    let waiting = wait_status(&daemon, &w.token, id, "PENDING_APPROVAL").await;
    assert_eq!(waiting["tier"], "APPROVAL", "{waiting}");
    assert!(waiting["hash"].is_null() && waiting["nonce"].is_null(), "{waiting}");
    assert!(waiting["expiresAt"].is_string(), "{waiting}");
    let (effect, detail, _) = traced(&waiting["trace"], "SPENDING_LIMIT.delay_max");
    assert_eq!(effect, "APPROVAL", "{waiting}");
    assert!(detail.contains("exceeds delay_max 0.1 ETH"), "{detail}");
    assert_eq!(audit_count(&daemon, "tx_escalated_to_approval").await, 1);
    // Still held (moved to the fresh quote), nothing on chain.
    assert_eq!(
        units(&spent(&daemon, &w.token).await.0["nativeBaseUnits"]),
        units(&waiting["baseUnits"]) + units(&waiting["maxFeeBaseUnits"])
    );
    assert_eq!(chain_nonce(&anvil, &w.address).await, nonce_before, "nothing signed");

    // It waits for the owner (a negative: five worker passes later nothing moved), then the
    // owner sends it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(get_tx(&daemon, &w.token, id).await["status"], "PENDING_APPROVAL");
    assert_eq!(chain_nonce(&anvil, &w.address).await, nonce_before, "nothing signed");
    let (status, m) = daemon
        .session(
            &w.token,
            Method::GET,
            &format!("/v1/transactions/{id}/approval-message?action=approve"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{m}");
    let (status, done) = post_signed(
        &daemon,
        &format!("/v1/transactions/{id}/approve"),
        &owner.headers(m["message"].as_str().unwrap()),
    )
    .await;
    assert_eq!((status, done["status"].as_str()), (200, Some("CONFIRMED")), "{done}");
    assert_eq!(
        balance_of(&anvil, RECIPIENT).await - recipient_before,
        eth(1) / U256::from(2)
    );
}

/// The owner approves (a real signature) a PENDING_APPROVAL transfer whose recipient a
/// WHITELIST added after the request excludes: the approval re-checks, and it ends DENIED,
/// nothing on chain, the reservation released.
/// Break caught: an owner approval that executes without re-checking policy (it would
/// confirm to a recipient the operator has since excluded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_for_a_recipient_a_later_whitelist_excludes_is_denied() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let owner = Owner::new();
    let limits = json!({ "instant_max": "0.1", "delay_max": "0.2", "delay_seconds": 3600 });
    let w = setup(&anvil, &daemon, &[("SPENDING_LIMIT", limits)], Some(&owner)).await;
    let nonce_before = chain_nonce(&anvil, &w.address).await;
    let recipient_before = balance_of(&anvil, RECIPIENT).await;
    let (today_before, _) = spent(&daemon, &w.token).await;

    let id = pending(&daemon, &w.token, "0.5", "needs-owner").await;
    add_policy(&daemon, &w.id, "WHITELIST", json!({ "allowed_addresses": [STRANGER] })).await;
    let (status, m) = daemon
        .session(
            &w.token,
            Method::GET,
            &format!("/v1/transactions/{id}/approval-message?action=approve"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{m}");
    let (status, body) = post_signed(
        &daemon,
        &format!("/v1/transactions/{id}/approve"),
        &owner.headers(m["message"].as_str().unwrap()),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("POLICY_DENIED")),
        "{body}"
    );
    let denied = &body["error"]["details"]["transaction"];
    assert_eq!(denied["status"], "DENIED", "{body}");
    assert_eq!(denied["error"], "denied when re-checked before signing", "{body}");
    assert_eq!(
        denied["reasons"],
        json!([format!("recipient {RECIPIENT} is not in WHITELIST")]),
        "{body}"
    );
    assert_eq!(get_tx(&daemon, &w.token, &id).await["status"], "DENIED");
    assert_eq!(
        audit_count(&daemon, "tx_approved").await,
        1,
        "the approval itself was valid"
    );
    assert_eq!(audit_count(&daemon, "tx_denied_on_recheck").await, 1);
    assert_eq!(audit_count(&daemon, "tx_signed").await, 0);
    assert_eq!(chain_nonce(&anvil, &w.address).await, nonce_before, "nothing signed");
    assert_eq!(balance_of(&anvil, RECIPIENT).await, recipient_before);
    assert_eq!(spent(&daemon, &w.token).await.0, today_before, "reservation released");
}

// ---- membership rules -----------------------------------------------------------------------

/// WHITELIST: a listed recipient passes and is paid; an unlisted one is denied with a reason
/// naming it, nothing sent.
/// Break caught: WHITELIST evaluated as a pass for every recipient (or against the sender),
/// or a reason that does not name the refused recipient.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whitelist_pays_listed_recipients_and_denies_others_by_name() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let policies = [
        ("SPENDING_LIMIT", json!({ "instant_max": "1" })),
        ("WHITELIST", json!({ "allowed_addresses": [RECIPIENT] })),
    ];
    let w = setup(&anvil, &daemon, &policies, None).await;
    let (listed_before, stranger_before) = (balance_of(&anvil, RECIPIENT).await, balance_of(&anvil, STRANGER).await);

    let (status, tx) = send_to(&daemon, &w.token, RECIPIENT, "0.01", "listed").await;
    assert_eq!(
        (status, tx["status"].as_str(), tx["tier"].as_str()),
        (200, Some("CONFIRMED"), Some("INSTANT")),
        "{tx}"
    );
    assert_eq!(traced(&tx["trace"], "WHITELIST.allowed_addresses").0, "PASS");
    assert_eq!(
        balance_of(&anvil, RECIPIENT).await - listed_before,
        eth(1) / U256::from(100)
    );

    let reason = format!("recipient {STRANGER} is not in WHITELIST");
    let c = check_to(&daemon, &w.token, STRANGER, "0.01").await;
    assert_eq!(
        (c["allowed"].as_bool(), &c["reasons"]),
        (Some(false), &json!([reason])),
        "{c}"
    );
    let (status, body) = send_to(&daemon, &w.token, STRANGER, "0.01", "unlisted").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("POLICY_DENIED")),
        "{body}"
    );
    assert_eq!(
        body["error"]["message"],
        format!("denied by policy: {reason}"),
        "{body}"
    );
    let denied = &body["error"]["details"]["transaction"];
    assert_eq!(denied["status"], "DENIED");
    assert_eq!(traced(&denied["trace"], "WHITELIST.allowed_addresses").0, "DENY");
    assert_eq!(balance_of(&anvil, STRANGER).await, stranger_before, "nothing sent");
    assert_eq!(
        chain_nonce(&anvil, &w.address).await,
        json!("0x1"),
        "only the listed send"
    );
}

/// ALLOWED_NETWORKS: a wallet on `anvil` whose list does not name anvil is denied; naming it
/// passes.
/// Break caught: ALLOWED_NETWORKS compared against something other than the wallet's chain
/// (or ignored): the first send would confirm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_networks_without_the_wallets_chain_denies() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let limit = ("SPENDING_LIMIT", json!({ "instant_max": "1" }));
    let elsewhere = setup(
        &anvil,
        &daemon,
        &[limit.clone(), ("ALLOWED_NETWORKS", json!({ "networks": ["localsol"] }))],
        None,
    )
    .await;
    let (status, body) = send_to(&daemon, &elsewhere.token, RECIPIENT, "0.01", "wrong-net").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("POLICY_DENIED")),
        "{body}"
    );
    let denied = &body["error"]["details"]["transaction"];
    assert_eq!(
        denied["reasons"],
        json!(["network anvil is not in ALLOWED_NETWORKS"]),
        "{body}"
    );
    assert_eq!(traced(&denied["trace"], "ALLOWED_NETWORKS.networks").0, "DENY");
    assert_eq!(
        chain_nonce(&anvil, &elsewhere.address).await,
        json!("0x0"),
        "nothing signed"
    );

    let here = setup(
        &anvil,
        &daemon,
        &[
            limit,
            ("ALLOWED_NETWORKS", json!({ "networks": ["localsol", "anvil"] })),
        ],
        None,
    )
    .await;
    let (status, tx) = send_to(&daemon, &here.token, RECIPIENT, "0.01", "right-net").await;
    assert_eq!((status, tx["status"].as_str()), (200, Some("CONFIRMED")), "{tx}");
    assert_eq!(traced(&tx["trace"], "ALLOWED_NETWORKS.networks").0, "PASS");
}

/// TIME_RESTRICTION in UTC: hours excluding the current one deny, hours including it allow.
/// Both lists hold or exclude the current hour and the next, so that an hour turning over
/// mid-test changes nothing.
/// Break caught: TIME_RESTRICTION ignored, inverted, or read in another zone than UTC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_restriction_allows_only_the_listed_utc_hours() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let hour = (secs / 3600 % 24) as u8;
    let now_or_next = [hour, (hour + 1) % 24];
    let other_hours: Vec<u8> = (0..24).filter(|h| !now_or_next.contains(h)).collect();
    let limit = ("SPENDING_LIMIT", json!({ "instant_max": "1" }));

    let closed = setup(
        &anvil,
        &daemon,
        &[
            limit.clone(),
            (
                "TIME_RESTRICTION",
                json!({ "allowed_hours": other_hours, "timezone": "UTC" }),
            ),
        ],
        None,
    )
    .await;
    let (status, body) = send_to(&daemon, &closed.token, RECIPIENT, "0.01", "closed").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("POLICY_DENIED")),
        "{body}"
    );
    let denied = &body["error"]["details"]["transaction"];
    let (effect, detail, _) = traced(&denied["trace"], "TIME_RESTRICTION.allowed_hours");
    assert_eq!(effect, "DENY", "{body}");
    let listed: Vec<String> = other_hours.iter().map(u8::to_string).collect();
    let said = |h: u8| {
        format!(
            "transfers are not allowed at hour {h} (UTC); allowed_hours: {}",
            listed.join(", ")
        )
    };
    assert!(
        detail == said(now_or_next[0]) || detail == said(now_or_next[1]),
        "{detail}"
    );
    assert_eq!(denied["reasons"], json!([detail]));
    assert_eq!(
        chain_nonce(&anvil, &closed.address).await,
        json!("0x0"),
        "nothing signed"
    );

    let open = setup(
        &anvil,
        &daemon,
        &[limit, ("TIME_RESTRICTION", json!({ "allowed_hours": now_or_next }))],
        None,
    )
    .await;
    let (status, tx) = send_to(&daemon, &open.token, RECIPIENT, "0.01", "open").await;
    assert_eq!((status, tx["status"].as_str()), (200, Some("CONFIRMED")), "{tx}");
    assert_eq!(traced(&tx["trace"], "TIME_RESTRICTION").0, "PASS", "{tx}");
}

// ---- cumulative limits ----------------------------------------------------------------------

/// monthly_limit (native): a confirmed send counts its value plus the fee it paid this
/// month; the next one that would pass the limit needs approval (denied: no owner); one
/// that fits still goes.
/// Break caught: monthly_limit not enforced, or the month counter not fed (or not trued up
/// to the fee paid).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monthly_limit_counts_value_and_fee_and_stops_what_would_pass_it() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let limits = json!({ "instant_max": "1", "monthly_limit": "0.5" });
    let w = setup(&anvil, &daemon, &[("SPENDING_LIMIT", limits)], None).await;

    let (status, first) = send_to(&daemon, &w.token, RECIPIENT, "0.3", "m1").await;
    assert_eq!((status, first["status"].as_str()), (200, Some("CONFIRMED")), "{first}");
    let counted = units(&first["baseUnits"]) + units(&first["feePaidBaseUnits"]);
    let (today, month) = spent(&daemon, &w.token).await;
    assert_eq!(units(&month["nativeBaseUnits"]), counted, "{month}");
    assert_eq!(units(&today["nativeBaseUnits"]), counted, "{today}");

    let (status, body) = send_to(&daemon, &w.token, RECIPIENT, "0.3", "m2").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("POLICY_DENIED")),
        "{body}"
    );
    let denied = &body["error"]["details"]["transaction"];
    let (effect, detail, counter) = traced(&denied["trace"], "SPENDING_LIMIT.monthly_limit");
    assert_eq!(effect, "APPROVAL", "{body}");
    assert!(
        detail.starts_with("monthly_limit 0.5 ETH would be exceeded"),
        "{detail}"
    );
    let shown = bursar::domain::Amount {
        base_units: counted,
        decimals: 18,
    }
    .to_decimal_string();
    assert!(
        counter
            .unwrap()
            .starts_with(&format!("monthly_limit: spent {shown} ETH + ")),
        "{counter:?}"
    );
    assert!(
        denied["reasons"]
            .as_array()
            .unwrap()
            .contains(&json!("approval required but no owner is registered")),
        "{body}"
    );
    assert_eq!(units(&spent(&daemon, &w.token).await.1["nativeBaseUnits"]), counted);

    let (status, fits) = send_to(&daemon, &w.token, RECIPIENT, "0.1", "m3").await;
    assert_eq!((status, fits["status"].as_str()), (200, Some("CONFIRMED")), "{fits}");
    assert_eq!(
        units(&spent(&daemon, &w.token).await.1["nativeBaseUnits"]),
        counted + units(&fits["baseUnits"]) + units(&fits["feePaidBaseUnits"])
    );
    assert_eq!(chain_nonce(&anvil, &w.address).await, json!("0x2"));
}

/// daily_limit_usd and monthly_limit_usd (ETH at $2000): after a confirmed send,
/// `spentToday.usd` and `spentThisMonth.usd` are exactly the value plus the fee paid in
/// micro-dollars, rounded up as the engine rounds; a send that would pass the limit is
/// stopped by that limit; one that fits goes.
/// Breaks caught: USD counters not trued up to the fee paid (the max fee stays counted),
/// rounding down (a fraction of a micro-dollar lost), a USD limit not enforced, or the
/// daily and monthly USD counters mixed up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usd_daily_and_monthly_limits_count_to_the_micro_dollar() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let price = U256::from(ETH_MICRO_USD);
    for (limit, other) in [
        ("daily_limit_usd", "monthly_limit_usd"),
        ("monthly_limit_usd", "daily_limit_usd"),
    ] {
        let mut rules = json!({ "instant_max_usd": "1000" });
        rules[limit] = json!("500");
        let w = setup(&anvil, &daemon, &[("SPENDING_LIMIT", rules)], None).await;

        // 0.1 ETH = $200 plus the fee.
        let (status, first) = send_to(&daemon, &w.token, RECIPIENT, "0.1", "u1").await;
        assert_eq!((status, first["status"].as_str()), (200, Some("CONFIRMED")), "{first}");
        let value_usd = usd_value(units(&first["baseUnits"]), 18, price);
        assert_eq!(value_usd, U256::from(200_000_000u64));
        let counted = kept_usd(value_usd, &first);
        // The engine's two roundings up never lose a fraction and add at most one micro-dollar.
        let exact = usd_value(
            units(&first["baseUnits"]) + units(&first["feePaidBaseUnits"]),
            18,
            price,
        );
        assert!(
            counted >= exact && counted - exact <= U256::from(1),
            "{counted} vs {exact}"
        );
        let (today, month) = spent(&daemon, &w.token).await;
        assert_eq!(today["usd"], usd_string(counted), "{limit}: {today}");
        assert_eq!(month["usd"], usd_string(counted), "{limit}: {month}");

        // 0.2 ETH more ($400 + fee) would pass $500.
        let (status, body) = send_to(&daemon, &w.token, RECIPIENT, "0.2", "u2").await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("POLICY_DENIED")),
            "{limit}: {body}"
        );
        let trace = &body["error"]["details"]["transaction"]["trace"];
        let rule = format!("SPENDING_LIMIT.{limit}");
        let (effect, detail, counter) = traced(trace, &rule);
        assert_eq!(effect, "APPROVAL", "{limit}: {body}");
        assert!(
            detail.starts_with(&format!(
                "{limit} $500.00 would be exceeded (spent {}, ",
                dollars(counted)
            )),
            "{detail}"
        );
        assert!(
            counter
                .unwrap()
                .starts_with(&format!("{limit}: spent {} + ", dollars(counted))),
            "{counter:?}"
        );
        assert!(!has_rule(trace, &format!("SPENDING_LIMIT.{other}")), "{trace}");
        // A denial reserves nothing.
        assert_eq!(spent(&daemon, &w.token).await.0["usd"], usd_string(counted));

        // 0.05 ETH ($100 + fee) fits.
        let (status, fits) = send_to(&daemon, &w.token, RECIPIENT, "0.05", "u3").await;
        assert_eq!((status, fits["status"].as_str()), (200, Some("CONFIRMED")), "{fits}");
        let total = counted + kept_usd(usd_value(units(&fits["baseUnits"]), 18, price), &fits);
        let (today, month) = spent(&daemon, &w.token).await;
        assert_eq!(
            (today["usd"].as_str(), month["usd"].as_str()),
            (Some(usd_string(total).as_str()), Some(usd_string(total).as_str())),
            "{limit}"
        );
    }
}

// ---- RATE_LIMIT -----------------------------------------------------------------------------

/// RATE_LIMIT {max_requests: 2, window_seconds: 3}: the third request within the window is
/// denied (and still denied right after); once the window has passed, allowed again.
/// Breaks caught: RATE_LIMIT not enforced (the third confirms), or a window that never
/// expires (counting the whole history: never allowed again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_denies_within_the_window_and_allows_after_it() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let policies = [
        ("SPENDING_LIMIT", json!({ "instant_max": "1" })),
        ("RATE_LIMIT", json!({ "max_requests": 2, "window_seconds": 3 })),
    ];
    let w = setup(&anvil, &daemon, &policies, None).await;
    let started = Instant::now();
    for key in ["r1", "r2"] {
        let (status, tx) = send_to(&daemon, &w.token, RECIPIENT, "0.01", key).await;
        assert_eq!((status, tx["status"].as_str()), (200, Some("CONFIRMED")), "{tx}");
    }
    let (status, body) = send_to(&daemon, &w.token, RECIPIENT, "0.01", "r3").await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "three sends took {:?}: the window test needs them inside 3 s",
        started.elapsed()
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("POLICY_DENIED")),
        "{body}"
    );
    let denied = &body["error"]["details"]["transaction"];
    assert_eq!(
        denied["reasons"],
        json!(["rate limit reached: 3 requests in the last 3s, max_requests 2; retry later"]),
        "{body}"
    );
    let c = check_to(&daemon, &w.token, RECIPIENT, "0.01").await;
    assert_eq!(c["allowed"], false, "still inside the window: {c}");

    // The window slides: allowed again once the first two requests are older than 3 s.
    wait_until("the rate-limit window to pass", || async {
        check_to(&daemon, &w.token, RECIPIENT, "0.01").await["allowed"] == true
    })
    .await;
    assert!(
        started.elapsed() > Duration::from_secs(2),
        "allowed again after only {:?}",
        started.elapsed()
    );
    let (status, tx) = send_to(&daemon, &w.token, RECIPIENT, "0.01", "r4").await;
    assert_eq!((status, tx["status"].as_str()), (200, Some("CONFIRMED")), "{tx}");
    assert_eq!(traced(&tx["trace"], "RATE_LIMIT.max_requests").0, "PASS");
    assert_eq!(chain_nonce(&anvil, &w.address).await, json!("0x3"));
}

// ---- a revert on chain ----------------------------------------------------------------------

/// A token transfer of more than the wallet holds, with a node that does not refuse the gas
/// estimate (a proxy answers 100,000): signed, mined, reverted → FAILED "reverted on chain";
/// the value's reservation is released, only the fee paid stays counted — natively and in
/// USD, exactly.
/// Breaks caught: a reverted receipt recorded CONFIRMED; a revert that releases the fee too
/// (spentToday back to 0) or keeps the value counted (spentToday.usd still holds the $10).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_transfer_that_reverts_on_chain_fails_and_keeps_only_the_fee() {
    let anvil = Anvil::start().await;
    let usdc = anvil
        .deploy_token("Test USD", "USDC", 6, U256::from(10u64.pow(12)))
        .await;
    let rpc = RpcProxy::start(&anvil.url).await;
    let mut o = opts(&anvil);
    o.anvil_url = Some(rpc.url.clone());
    o.extra_config += &format!("\n[prices.tokens]\n\"anvil:{}\" = \"1\"\n", usdc.to_lowercase());
    let daemon = Daemon::start(o).await;
    let policies = [
        ("ALLOWED_TOKENS", json!({ "tokens": [usdc] })),
        (
            "SPENDING_LIMIT",
            json!({ "instant_max_usd": "100", "daily_limit_usd": "1000" }),
        ),
    ];
    let w = setup(&anvil, &daemon, &policies, None).await;
    anvil.transfer_token(&usdc, &w.address, U256::from(5_000_000u64)).await;
    assert_eq!(token_balance(&daemon, &w.token, &usdc).await, "5000000");

    // 10 USDC from a wallet holding 5: anvil would refuse the estimate; the proxy does not.
    rpc.answer("eth_estimateGas", json!("0x186a0"));
    let (status, tx) = daemon
        .session(
            &w.token,
            Method::POST,
            "/v1/transactions/send",
            Some(json!({ "to": RECIPIENT, "amount": "10", "token": usdc, "idempotencyKey": "revert" })),
        )
        .await;
    assert_eq!(status, 200, "{tx}");
    assert!(rpc.seen("eth_estimateGas") >= 1);
    let tx = if tx["status"] == "FAILED" {
        tx
    } else {
        wait_status(&daemon, &w.token, tx["id"].as_str().unwrap(), "FAILED").await
    };
    assert_eq!(tx["error"], "reverted on chain", "{tx}");
    assert_eq!(tx["nonce"], 0, "{tx}");
    let receipt = anvil.rpc("eth_getTransactionReceipt", json!([tx["hash"]])).await;
    assert_eq!(receipt["status"], "0x0", "mined and reverted: {receipt}");
    let paid = units(&tx["feePaidBaseUnits"]);
    assert!(paid > U256::ZERO, "{tx}");
    assert_eq!(
        units(&tx["maxFeeBaseUnits"]) % U256::from(120_000u64),
        U256::ZERO,
        "gas limit = the proxy's estimate + 20%: {tx}"
    );
    assert_eq!(chain_nonce(&anvil, &w.address).await, json!("0x1"));
    assert_eq!(
        token_balance(&daemon, &w.token, &usdc).await,
        "5000000",
        "no token moved"
    );

    // Only the fee paid stays counted: native, and in USD (the $10 value released).
    let (today, month) = spent(&daemon, &w.token).await;
    assert_eq!(units(&today["nativeBaseUnits"]), paid, "{today}");
    let fee_usd = usd_string(kept_usd(U256::ZERO, &tx));
    assert_eq!(today["usd"], fee_usd, "{today}");
    assert_eq!(month["usd"], fee_usd, "{month}");
    assert_eq!(audit_count(&daemon, "tx_reverted").await, 1);
}

// ---- confirmations --------------------------------------------------------------------------

/// A chain that needs 3 confirmations: a mined send stays SUBMITTED (its max fee still
/// reserved) until two more blocks are mined, then CONFIRMED with the budget trued up.
/// Breaks caught: `confirmations` ignored (CONFIRMED at the first receipt), or counted off
/// by one (never confirmed after two more blocks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_needing_three_confirmations_confirms_only_after_them() {
    let anvil = Anvil::start().await;
    let mut o = opts(&anvil);
    o.extra_config = o
        .extra_config
        .replace("confirm_wait_seconds = 10", "confirm_wait_seconds = 1");
    let mut daemon = Daemon::init(o);
    daemon
        .env
        .push(("BURSAR_CHAINS_ANVIL_CONFIRMATIONS".into(), "3".into()));
    daemon.spawn().await;
    let w = setup(
        &anvil,
        &daemon,
        &[("SPENDING_LIMIT", json!({ "instant_max": "1" }))],
        None,
    )
    .await;
    let before = balance_of(&anvil, RECIPIENT).await;

    let (status, tx) = send_to(&daemon, &w.token, RECIPIENT, "0.1", "three").await;
    assert_eq!(status, 200, "{tx}");
    assert_eq!(
        (tx["status"].as_str(), tx["confirmations"].as_u64()),
        (Some("SUBMITTED"), Some(1)),
        "mined in one block, not final: {tx}"
    );
    let id = tx["id"].as_str().unwrap().to_owned();
    assert_eq!(balance_of(&anvil, RECIPIENT).await - before, eth(1) / U256::from(10));
    let reserved = units(&tx["baseUnits"]) + units(&tx["maxFeeBaseUnits"]);
    assert_eq!(units(&spent(&daemon, &w.token).await.0["nativeBaseUnits"]), reserved);

    anvil.rpc("evm_mine", json!([])).await;
    wait_until("2 confirmations", || async {
        get_tx(&daemon, &w.token, &id).await["confirmations"] == 2
    })
    .await;
    let two = get_tx(&daemon, &w.token, &id).await;
    assert_eq!(two["status"], "SUBMITTED", "two of three: {two}");
    assert!(two["feePaidBaseUnits"].is_null(), "not settled yet: {two}");

    anvil.rpc("evm_mine", json!([])).await;
    let done = wait_status(&daemon, &w.token, &id, "CONFIRMED").await;
    assert!(done["confirmations"].as_u64().unwrap() >= 3, "{done}");
    assert_eq!(done["block"], tx["block"], "{done}");
    assert_eq!(
        units(&spent(&daemon, &w.token).await.0["nativeBaseUnits"]),
        units(&done["baseUnits"]) + units(&done["feePaidBaseUnits"])
    );
}

// ---- sessions -------------------------------------------------------------------------------

/// The kill switch revokes the wallet's sessions; lifting it does not bring them back: the
/// old token stays refused, a new session works (and can send).
/// Break caught: a kill switch that only blocks a frozen wallet's tokens at auth time
/// (lifting it would revive the old token).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_revoked_by_the_kill_switch_stay_refused_after_it_is_lifted() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let w = setup(
        &anvil,
        &daemon,
        &[("SPENDING_LIMIT", json!({ "instant_max": "1" }))],
        None,
    )
    .await;
    let address = |token: String| {
        let daemon = &daemon;
        async move { daemon.session(&token, Method::GET, "/v1/wallet/address", None).await }
    };
    assert_eq!(address(w.token.clone()).await.0, 200);

    let (status, reports) = daemon
        .master(
            Method::POST,
            "/v1/admin/kill-switch",
            Some(json!({ "on": true, "walletId": w.id, "reason": "drill" })),
        )
        .await;
    assert_eq!(status, 200, "{reports}");
    assert_eq!(reports[0]["sessionsRevoked"], 1, "{reports}");
    let (status, body) = address(w.token.clone()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("SESSION_REVOKED")),
        "{body}"
    );

    let (status, reports) = daemon
        .master(
            Method::POST,
            "/v1/admin/kill-switch",
            Some(json!({ "on": false, "walletId": w.id })),
        )
        .await;
    assert_eq!((status, reports[0]["frozen"].is_null()), (200, true), "{reports}");
    let (status, body) = address(w.token.clone()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("SESSION_REVOKED")),
        "lifted, and the old token is still refused: {body}"
    );

    let fresh = daemon.create_session(&w.id, json!({})).await;
    let fresh = fresh["token"].as_str().unwrap().to_owned();
    assert_eq!(address(fresh.clone()).await.0, 200);
    let (status, tx) = send_to(&daemon, &fresh, RECIPIENT, "0.01", "after-lift").await;
    assert_eq!((status, tx["status"].as_str()), (200, Some("CONFIRMED")), "{tx}");
    // A new session for the wallet revives nothing either.
    let (status, body) = send_to(&daemon, &w.token, RECIPIENT, "0.01", "old-token").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("SESSION_REVOKED")),
        "{body}"
    );
    assert_eq!(chain_nonce(&anvil, &w.address).await, json!("0x1"));
}

/// Session tokens survive a crash and restart (kill -9): one issued before still works
/// after (it reads and sends), and one revoked before stays revoked.
/// Breaks caught: a session secret that is not persisted (regenerated at start: every
/// token dies on restart), or revocations kept in memory only (the revoked token revives).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_tokens_and_revocations_survive_a_restart() {
    let anvil = Anvil::start().await;
    let mut daemon = Daemon::start(opts(&anvil)).await;
    let w = setup(
        &anvil,
        &daemon,
        &[("SPENDING_LIMIT", json!({ "instant_max": "1" }))],
        None,
    )
    .await;
    let revoked = daemon.create_session(&w.id, json!({})).await;
    let (status, body) = daemon
        .master(
            Method::DELETE,
            &format!("/v1/sessions/{}", revoked["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!((status, body["revoked"].as_bool()), (200, Some(true)), "{body}");
    let revoked = revoked["token"].as_str().unwrap().to_owned();
    let (status, tx) = send_to(&daemon, &w.token, RECIPIENT, "0.01", "before").await;
    assert_eq!(
        (status, tx["status"].as_str(), tx["nonce"].as_u64()),
        (200, Some("CONFIRMED"), Some(0)),
        "{tx}"
    );

    daemon.kill();
    daemon.spawn().await;

    let (status, body) = daemon.session(&w.token, Method::GET, "/v1/wallet/address", None).await;
    assert_eq!(
        (status, body["address"].as_str()),
        (200, Some(w.address.as_str())),
        "{body}"
    );
    let (status, tx) = send_to(&daemon, &w.token, RECIPIENT, "0.01", "after").await;
    assert_eq!(
        (status, tx["status"].as_str(), tx["nonce"].as_u64()),
        (200, Some("CONFIRMED"), Some(1)),
        "{tx}"
    );
    let (status, body) = daemon.session(&revoked, Method::GET, "/v1/wallet/address", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("SESSION_REVOKED")),
        "{body}"
    );
}

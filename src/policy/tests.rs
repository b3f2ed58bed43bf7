//! Unit tests of the policy engine: parsing and evaluation, rule by rule.

use alloy_primitives::U256;
use serde_json::{Value, json};

use super::*;
use crate::domain::{Address, Amount, ChainKind};

// Addresses of repeated digits render identically in EIP-55 form.
const ALICE: &str = "0x1111111111111111111111111111111111111111";
const BOB: &str = "0x2222222222222222222222222222222222222222";
const USDC: &str = "0x3333333333333333333333333333333333333333";
const DAI: &str = "0x4444444444444444444444444444444444444444";
const ROUTER: &str = "0x5555555555555555555555555555555555555555";
const TRANSFER: [u8; 4] = [0xa9, 0x05, 0x9c, 0xbb];

/// Wednesday 2024-01-03 12:00:00 UTC.
const WED_NOON: i64 = 1_704_283_200;
const HOUR: i64 = 3600;
const MAX_PRICE_AGE: u64 = 60;

fn addr(s: &str) -> Address {
    Address::parse(ChainKind::Evm, s).unwrap()
}

fn usd(s: &str) -> U256 {
    Amount::parse_decimal(s, 6).unwrap().base_units
}

fn eth(s: &str) -> U256 {
    Amount::parse_decimal(s, 18).unwrap().base_units
}

/// A request as the daemon would see it, with everything around it.
struct Tx {
    intent: Intent,
    now: i64,
    /// USD per whole unit, and how old the price is.
    price: Option<(&'static str, i64)>,
    /// Today and this month, in micro-USD and in wei.
    spent_usd: [U256; 2],
    spent_eth: [U256; 2],
    requests: fn(u64) -> u32,
    owner_registered: bool,
    /// The native asset's price (for a token transfer's fee), USD per ETH and its age.
    native_price: Option<(&'static str, i64)>,
    /// The chain's native decimals as the daemon reports them (the policies are parsed at 18).
    native_decimals: u8,
}

/// `amount` ETH to ALICE on anvil at WED_NOON, ETH at a fresh $2000, an owner registered.
fn send(amount: &str) -> Tx {
    Tx {
        intent: Intent {
            chain: "anvil".parse().unwrap(),
            to: addr(ALICE),
            asset: Asset::Native,
            amount: Amount::parse_decimal(amount, 18).unwrap(),
            call: None,
            approve: None,
            max_fee: None,
        },
        now: WED_NOON,
        price: Some(("2000", 0)),
        spent_usd: [U256::ZERO; 2],
        spent_eth: [U256::ZERO; 2],
        requests: |_| 1,
        owner_registered: true,
        native_price: Some(("2000", 0)),
        native_decimals: 18,
    }
}

impl Tx {
    /// A transfer of a 6-decimals token priced at $1.
    fn token(mut self, token: &str, amount: &str) -> Self {
        self.intent.asset = Asset::Token(addr(token));
        self.intent.amount = Amount::parse_decimal(amount, 6).unwrap();
        self.price = Some(("1", 0));
        self
    }

    fn native_price(mut self, price: Option<(&'static str, i64)>) -> Self {
        self.native_price = price;
        self
    }

    /// The most the transfer can pay in fees, in ETH.
    fn fee(mut self, max_fee: &str) -> Self {
        self.intent.max_fee = Some(eth(max_fee));
        self
    }

    fn to(mut self, to: &str) -> Self {
        self.intent.to = addr(to);
        self
    }

    fn on(mut self, chain: &str) -> Self {
        self.intent.chain = chain.parse().unwrap();
        self
    }

    fn at(mut self, now: i64) -> Self {
        self.now = now;
        self
    }

    fn price(mut self, price: Option<(&'static str, i64)>) -> Self {
        self.price = price;
        self
    }

    fn spent_usd(mut self, today: &str, month: &str) -> Self {
        self.spent_usd = [usd(today), usd(month)];
        self
    }

    fn spent_eth(mut self, today: &str, month: &str) -> Self {
        self.spent_eth = [eth(today), eth(month)];
        self
    }

    fn requests(mut self, requests: fn(u64) -> u32) -> Self {
        self.requests = requests;
        self
    }

    fn no_owner(mut self) -> Self {
        self.owner_registered = false;
        self
    }

    /// A contract call sending no value.
    fn call(mut self, contract: &str, selector: [u8; 4]) -> Self {
        self.intent.to = addr(contract);
        self.intent.amount = Amount::new(U256::ZERO, 18).unwrap();
        self.intent.call = Some(ContractCall {
            contract: addr(contract),
            selector,
        });
        self
    }

    /// An ERC-20 approve: a call to the token sending no value.
    fn approve(mut self, spender: &str, token: &str, amount: u64) -> Self {
        self.intent.to = addr(token);
        self.intent.amount = Amount::new(U256::ZERO, 18).unwrap();
        self.intent.approve = Some(Approve {
            spender: addr(spender),
            token: addr(token),
            amount: U256::from(amount),
        });
        self
    }
}

/// Parses the policies (ids p1, p2, …) for an EVM wallet and evaluates `tx` against them.
fn decide(policies: &[(&str, Value)], tx: &Tx) -> Result<Decision, PolicyError> {
    let parse_ctx = ParseContext {
        chain_kind: ChainKind::Evm,
        native_decimals: 18,
    };
    let policies = policies
        .iter()
        .enumerate()
        .map(|(idx, (type_name, rules))| {
            Ok(Policy {
                id: format!("p{}", idx + 1),
                rules: parse(type_name, rules.clone(), &parse_ctx)?,
            })
        })
        .collect::<Result<Vec<_>, PolicyError>>()?;
    let counters = Counters {
        spent_today_micro_usd: tx.spent_usd[0],
        spent_month_micro_usd: tx.spent_usd[1],
        spent_today_native: tx.spent_eth[0],
        spent_month_native: tx.spent_eth[1],
        requests_in_window: &tx.requests,
    };
    let price = |p: Option<(&str, i64)>| {
        p.map(|(per_unit, age)| Price {
            micro_usd_per_unit: usd(per_unit),
            as_of: tx.now - age,
        })
    };
    let ctx = Context {
        now: tx.now,
        price: price(tx.price),
        native_price: match tx.intent.asset {
            Asset::Native => price(tx.price),
            Asset::Token(_) => price(tx.native_price),
        },
        native_decimals: tx.native_decimals,
        max_price_age_seconds: MAX_PRICE_AGE,
        counters: &counters,
        owner_registered: tx.owner_registered,
        native_symbol: "ETH",
    };
    Ok(evaluate(&tx.intent, &policies, &ctx))
}

/// "TIER (wait): reasons" or "DENIED: reasons", or the parse error.
fn check(policies: &[(&str, Value)], tx: Tx, expect: &str) {
    let got = match decide(policies, &tx) {
        Ok(decision) => {
            let head = match decision.outcome {
                Outcome::Allowed(tier) => tier.as_str(),
                Outcome::Denied => "DENIED",
            };
            let wait = match (decision.delay_seconds, decision.approval_timeout_seconds) {
                (Some(secs), None) | (None, Some(secs)) => format!(" ({secs}s)"),
                (None, None) => String::new(),
                (Some(_), Some(_)) => panic!("both a delay and an approval timeout"),
            };
            format!("{head}{wait}: {}", decision.reasons.join("; "))
        }
        Err(e) => e.to_string(),
    };
    assert_eq!(got, expect);
}

/// One line per trace entry: policy, rule, effect, counter, detail.
fn trace(policies: &[(&str, Value)], tx: Tx) -> String {
    let decision = decide(policies, &tx).unwrap();
    let lines: Vec<String> = decision
        .trace
        .iter()
        .map(|entry| {
            let effect = match entry.effect {
                Effect::Tier(tier) => tier.as_str(),
                Effect::Deny => "DENY",
                Effect::Pass => "PASS",
            };
            let counter = entry.counter.as_ref().map(|c| format!(" [{c}]")).unwrap_or_default();
            format!(
                "{} {} {effect}{counter}: {}",
                entry.policy_id.as_deref().unwrap_or("-"),
                entry.rule,
                entry.detail
            )
        })
        .collect();
    lines.join("\n")
}

fn spending(rules: Value) -> (&'static str, Value) {
    ("SPENDING_LIMIT", rules)
}

fn native_tiers() -> (&'static str, Value) {
    spending(json!({"instant_max": "0.1", "notify_max": "0.5", "delay_max": "1"}))
}

fn usdc_allowed() -> (&'static str, Value) {
    ("ALLOWED_TOKENS", json!({"tokens": [USDC]}))
}

fn instant_everything() -> (&'static str, Value) {
    spending(json!({"instant_max_usd": "1000000"}))
}

#[test]
fn native_thresholds_tier_at_every_boundary() {
    let p = [native_tiers()];
    check(
        &p,
        send("0.099999999999999999"),
        "INSTANT: 0.099999999999999999 ETH is within instant_max 0.1 ETH: INSTANT",
    );
    check(
        &p,
        send("0.1"),
        "INSTANT: 0.1 ETH is within instant_max 0.1 ETH: INSTANT",
    );
    check(
        &p,
        send("0.100000000000000001"),
        "NOTIFY: 0.100000000000000001 ETH exceeds instant_max 0.1 ETH: NOTIFY",
    );
    check(&p, send("0.5"), "NOTIFY: 0.5 ETH exceeds instant_max 0.1 ETH: NOTIFY");
    check(
        &p,
        send("0.500000000000000001"),
        "DELAY (300s): 0.500000000000000001 ETH exceeds notify_max 0.5 ETH: DELAY 300s (cancellable)",
    );
    check(
        &p,
        send("0.6"),
        "DELAY (300s): 0.6 ETH exceeds notify_max 0.5 ETH: DELAY 300s (cancellable)",
    );
    check(
        &p,
        send("1"),
        "DELAY (300s): 1 ETH exceeds notify_max 0.5 ETH: DELAY 300s (cancellable)",
    );
    check(
        &p,
        send("1.000000000000000001"),
        "APPROVAL (3600s): 1.000000000000000001 ETH exceeds delay_max 1 ETH: APPROVAL by the owner (expires after 3600s)",
    );
}

#[test]
fn usd_thresholds_tier_at_every_boundary() {
    let p = [
        spending(
            json!({"instant_max_usd": "10", "notify_max_usd": "100", "delay_max_usd": "1000", "delay_seconds": 60, "approval_timeout_seconds": 900}),
        ),
        usdc_allowed(),
    ];
    let usdc = |amount| send("0").token(USDC, amount);
    check(
        &p,
        usdc("9.999999"),
        "INSTANT: $9.999999 is within instant_max_usd $10.00: INSTANT",
    );
    check(
        &p,
        usdc("10"),
        "INSTANT: $10.00 is within instant_max_usd $10.00: INSTANT",
    );
    check(
        &p,
        usdc("10.000001"),
        "NOTIFY: $10.000001 exceeds instant_max_usd $10.00: NOTIFY",
    );
    check(
        &p,
        usdc("100"),
        "NOTIFY: $100.00 exceeds instant_max_usd $10.00: NOTIFY",
    );
    check(
        &p,
        usdc("100.000001"),
        "DELAY (60s): $100.000001 exceeds notify_max_usd $100.00: DELAY 60s (cancellable)",
    );
    check(
        &p,
        usdc("1000"),
        "DELAY (60s): $1000.00 exceeds notify_max_usd $100.00: DELAY 60s (cancellable)",
    );
    check(
        &p,
        usdc("1000.000001"),
        "APPROVAL (900s): $1000.000001 exceeds delay_max_usd $1000.00: APPROVAL by the owner (expires after 900s)",
    );
    // Native at $2000/ETH: 0.005 ETH is exactly $10; one wei more is a fraction of a
    // micro-dollar more, which rounds up and so crosses the threshold.
    check(&p, send("0.005"), "DENIED: native ETH is not in ALLOWED_TOKENS");
    let p = [p[0].clone()];
    check(
        &p,
        send("0.005"),
        "INSTANT: $10.00 is within instant_max_usd $10.00: INSTANT",
    );
    check(
        &p,
        send("0.005000000000000001"),
        "NOTIFY: $10.000001 exceeds instant_max_usd $10.00: NOTIFY",
    );
}

#[test]
fn missing_threshold_levels_are_skipped() {
    let only_delay = [spending(json!({"delay_max": "1"}))];
    check(
        &only_delay,
        send("0.01"),
        "DELAY (300s): 0.01 ETH is within delay_max 1 ETH: DELAY 300s (cancellable)",
    );
    check(
        &only_delay,
        send("2"),
        "APPROVAL (3600s): 2 ETH exceeds delay_max 1 ETH: APPROVAL by the owner (expires after 3600s)",
    );
    let instant_and_delay = [spending(json!({"instant_max": "0.1", "delay_max": "1"}))];
    check(
        &instant_and_delay,
        send("0.5"),
        "DELAY (300s): 0.5 ETH exceeds instant_max 0.1 ETH: DELAY 300s (cancellable)",
    );
    let only_notify = [spending(json!({"notify_max_usd": "50"}))];
    check(
        &only_notify,
        send("0.01"),
        "NOTIFY: $20.00 is within notify_max_usd $50.00: NOTIFY",
    );
}

#[test]
fn usd_and_native_rules_are_checked_independently_and_the_stricter_wins() {
    let p = [spending(
        json!({"instant_max": "1", "notify_max_usd": "1000", "delay_max_usd": "5000"}),
    )];
    // 0.1 ETH: native says INSTANT, $200 says NOTIFY.
    check(
        &p,
        send("0.1"),
        "NOTIFY: $200.00 is within notify_max_usd $1000.00: NOTIFY",
    );
    // 2 ETH: native says APPROVAL, $4000 says DELAY.
    check(
        &p,
        send("2"),
        "APPROVAL (3600s): 2 ETH exceeds instant_max 1 ETH: APPROVAL by the owner (expires after 3600s)",
    );
}

#[test]
fn without_a_spending_limit_approval_is_required_and_needs_an_owner() {
    check(
        &[],
        send("0.000000000000000001"),
        "APPROVAL (3600s): no spending limit: approval required",
    );
    check(
        &[],
        send("0.01").no_owner(),
        "DENIED: approval required but no owner is registered; no spending limit: approval required",
    );
    let whitelist_only = [("WHITELIST", json!({"allowed_addresses": [ALICE]}))];
    check(
        &whitelist_only,
        send("0.01"),
        "APPROVAL (3600s): no spending limit: approval required",
    );
    // APPROVAL from a limit is no different: never downgraded.
    check(
        &[native_tiers()],
        send("5").no_owner(),
        "DENIED: approval required but no owner is registered; 5 ETH exceeds delay_max 1 ETH: APPROVAL by the owner (expires after 3600s)",
    );
    // Only APPROVAL needs an owner.
    check(
        &[native_tiers()],
        send("0.6").no_owner(),
        "DELAY (300s): 0.6 ETH exceeds notify_max 0.5 ETH: DELAY 300s (cancellable)",
    );
}

#[test]
fn tokens_are_denied_unless_allowed() {
    let limit = instant_everything();
    check(
        std::slice::from_ref(&limit),
        send("0").token(USDC, "5"),
        "DENIED: token 0x3333333333333333333333333333333333333333 is denied by default: no ALLOWED_TOKENS policy lists it",
    );
    check(
        &[limit.clone(), ("ALLOWED_TOKENS", json!({"tokens": [DAI]}))],
        send("0").token(USDC, "5"),
        "DENIED: token 0x3333333333333333333333333333333333333333 is not in ALLOWED_TOKENS",
    );
    check(
        &[limit.clone(), usdc_allowed()],
        send("0").token(USDC, "5"),
        "INSTANT: $5.00 is within instant_max_usd $1000000.00: INSTANT",
    );
    // Native is allowed with no ALLOWED_TOKENS, or when "native" is listed.
    check(
        &[limit.clone(), usdc_allowed()],
        send("0.01"),
        "DENIED: native ETH is not in ALLOWED_TOKENS",
    );
    check(
        &[limit.clone(), ("ALLOWED_TOKENS", json!({"tokens": ["native", USDC]}))],
        send("0.01"),
        "INSTANT: $20.00 is within instant_max_usd $1000000.00: INSTANT",
    );
}

#[test]
fn native_unit_limits_skip_token_transfers_which_then_need_approval() {
    let p = [native_tiers(), usdc_allowed()];
    check(
        &p,
        send("0").token(USDC, "1"),
        "APPROVAL (3600s): no spending limit applies to token 0x3333333333333333333333333333333333333333: approval required",
    );
    assert_eq!(
        trace(&p, send("0").token(USDC, "1")),
        "p1 SPENDING_LIMIT.native PASS: native-unit limits do not apply to a token transfer\n\
         p2 ALLOWED_TOKENS.tokens PASS: token 0x3333333333333333333333333333333333333333 is in ALLOWED_TOKENS\n\
         - SPENDING_LIMIT APPROVAL: no spending limit applies to token 0x3333333333333333333333333333333333333333: approval required"
    );
}

#[test]
fn unknown_or_stale_price_escalates_usd_rules_to_approval() {
    // Native says INSTANT; the USD rule cannot be checked, so it fails closed.
    let p = [spending(
        json!({"instant_max": "1", "instant_max_usd": "100", "approval_timeout_seconds": 600}),
    )];
    check(
        &p,
        send("0.01").price(None),
        "APPROVAL (600s): price unknown: USD limits cannot be checked, APPROVAL by the owner (expires after 600s)",
    );
    check(
        &p,
        send("0.01").price(Some(("2000", 61))),
        "APPROVAL (600s): price stale (61s old, max 60s): USD limits cannot be checked, APPROVAL by the owner (expires after 600s)",
    );
    check(
        &p,
        send("0.01").price(Some(("2000", -1))),
        "APPROVAL (600s): price stale (dated in the future): USD limits cannot be checked, APPROVAL by the owner (expires after 600s)",
    );
    check(
        &p,
        send("0.01").price(Some(("2000", 60))),
        "INSTANT: $20.00 is within instant_max_usd $100.00: INSTANT; 0.01 ETH is within instant_max 1 ETH: INSTANT",
    );
    // Cumulative USD limits fail closed too.
    check(
        &[spending(json!({"daily_limit_usd": "50"})), usdc_allowed()],
        send("0").token(USDC, "1").price(None),
        "APPROVAL (3600s): price unknown: USD limits cannot be checked, APPROVAL by the owner (expires after 3600s)",
    );
}

#[test]
fn cumulative_limits_count_spent_plus_this_transfer() {
    let p = [
        spending(json!({"daily_limit_usd": "50", "monthly_limit_usd": "500"})),
        usdc_allowed(),
    ];
    let usdc = |amount| send("0").token(USDC, amount);
    check(
        &p,
        usdc("10").spent_usd("40", "100"),
        "INSTANT: within daily_limit_usd $50.00; within monthly_limit_usd $500.00",
    );
    check(
        &p,
        usdc("10.000001").spent_usd("40", "100"),
        "APPROVAL (3600s): daily_limit_usd $50.00 would be exceeded (spent $40.00, this transfer $10.000001): APPROVAL by the owner (expires after 3600s)",
    );
    check(
        &p,
        usdc("6").spent_usd("0", "495"),
        "APPROVAL (3600s): monthly_limit_usd $500.00 would be exceeded (spent $495.00, this transfer $6.00): APPROVAL by the owner (expires after 3600s)",
    );
    assert_eq!(
        trace(&p, usdc("25").spent_usd("40", "100")),
        "p1 SPENDING_LIMIT.daily_limit_usd APPROVAL [daily_limit_usd: spent $40.00 + $25.00 of $50.00]: daily_limit_usd $50.00 would be exceeded (spent $40.00, this transfer $25.00): APPROVAL by the owner (expires after 3600s)\n\
         p1 SPENDING_LIMIT.monthly_limit_usd INSTANT [monthly_limit_usd: spent $100.00 + $25.00 of $500.00]: within monthly_limit_usd $500.00\n\
         p2 ALLOWED_TOKENS.tokens PASS: token 0x3333333333333333333333333333333333333333 is in ALLOWED_TOKENS"
    );

    // Native limits, with thresholds: the limit escalates past the threshold's tier.
    let p = [spending(
        json!({"notify_max": "1", "daily_limit": "1", "monthly_limit": "10"}),
    )];
    check(
        &p,
        send("0.5").spent_eth("0.5", "9"),
        "NOTIFY: 0.5 ETH is within notify_max 1 ETH: NOTIFY",
    );
    check(
        &p,
        send("0.6").spent_eth("0.5", "9"),
        "APPROVAL (3600s): daily_limit 1 ETH would be exceeded (spent 0.5 ETH, this transfer 0.6 ETH): APPROVAL by the owner (expires after 3600s)",
    );
    check(
        &p,
        send("0.5").spent_eth("0", "9.6"),
        "APPROVAL (3600s): monthly_limit 10 ETH would be exceeded (spent 9.6 ETH, this transfer 0.5 ETH): APPROVAL by the owner (expires after 3600s)",
    );
}

#[test]
fn whitelist_denies_other_recipients() {
    let p = [
        instant_everything(),
        ("WHITELIST", json!({"allowed_addresses": [ALICE]})),
    ];
    check(
        &p,
        send("0.01"),
        "INSTANT: $20.00 is within instant_max_usd $1000000.00: INSTANT",
    );
    check(
        &p,
        send("0.01").to(BOB),
        "DENIED: recipient 0x2222222222222222222222222222222222222222 is not in WHITELIST",
    );
}

#[test]
fn allowed_networks_deny_other_chains() {
    let p = [
        instant_everything(),
        ("ALLOWED_NETWORKS", json!({"networks": ["anvil", "base"]})),
    ];
    check(
        &p,
        send("0.01").on("base"),
        "INSTANT: $20.00 is within instant_max_usd $1000000.00: INSTANT",
    );
    check(
        &p,
        send("0.01").on("mainnet"),
        "DENIED: network mainnet is not in ALLOWED_NETWORKS",
    );
}

#[test]
fn rate_limits_count_each_window_separately() {
    let p = [
        instant_everything(),
        ("RATE_LIMIT", json!({"max_requests": 10, "window_seconds": 60})),
        ("RATE_LIMIT", json!({"max_requests": 100, "window_seconds": 3600})),
    ];
    let at_limit = |window| if window == 60 { 10 } else { 100 };
    check(
        &p,
        send("0.01").requests(at_limit),
        "INSTANT: $20.00 is within instant_max_usd $1000000.00: INSTANT",
    );
    check(
        &p,
        send("0.01").requests(|_| 11),
        "DENIED: rate limit reached: 11 requests in the last 60s, max_requests 10; retry later",
    );
    check(
        &p,
        send("0.01").requests(|window| if window == 60 { 1 } else { 101 }),
        "DENIED: rate limit reached: 101 requests in the last 3600s, max_requests 100; retry later",
    );
    assert_eq!(
        trace(&p[1..], send("0.01").requests(at_limit)),
        "p1 RATE_LIMIT.max_requests PASS [requests: 10 of 10 in 60s]: within the rate limit\n\
         p2 RATE_LIMIT.max_requests PASS [requests: 100 of 100 in 3600s]: within the rate limit\n\
         - SPENDING_LIMIT APPROVAL: no spending limit: approval required"
    );
}

#[test]
fn time_restrictions_use_the_offset_across_midnight() {
    let office = [
        instant_everything(),
        (
            "TIME_RESTRICTION",
            json!({"allowed_hours": [9, 10, 11, 12, 13, 14, 15, 16, 17], "allowed_days": ["mon", "tue", "wed", "thu", "fri"]}),
        ),
    ];
    let ok = "INSTANT: $20.00 is within instant_max_usd $1000000.00: INSTANT";
    check(&office, send("0.01"), ok);
    check(&office, send("0.01").at(WED_NOON + 5 * HOUR + 59 * 60), ok);
    check(
        &office,
        send("0.01").at(WED_NOON + 6 * HOUR),
        "DENIED: transfers are not allowed at hour 18 (UTC); allowed_hours: 9, 10, 11, 12, 13, 14, 15, 16, 17",
    );
    check(
        &office,
        send("0.01").at(WED_NOON + 3 * 24 * HOUR),
        "DENIED: transfers are not allowed on sat (UTC); allowed_days: mon, tue, wed, thu, fri",
    );

    // Wednesday 23:30 UTC is Thursday 00:30 at +01:00 and Wednesday 15:30 at -08:00.
    let late_wed = WED_NOON + 11 * HOUR + 30 * 60;
    let wednesdays = |zone: &str| {
        [
            instant_everything(),
            ("TIME_RESTRICTION", json!({"allowed_days": ["wed"], "timezone": zone})),
        ]
    };
    check(
        &wednesdays("+01:00"),
        send("0.01").at(late_wed),
        "DENIED: transfers are not allowed on thu (UTC+01:00); allowed_days: wed",
    );
    check(&wednesdays("-08:00"), send("0.01").at(late_wed), ok);
    check(&wednesdays("UTC"), send("0.01").at(late_wed), ok);
    // Thursday 02:00 UTC is still Wednesday 18:00 at -08:00.
    check(&wednesdays("-08:00"), send("0.01").at(WED_NOON + 14 * HOUR), ok);

    // A night window across midnight, at +05:30.
    let nights = [
        instant_everything(),
        (
            "TIME_RESTRICTION",
            json!({"allowed_hours": [22, 23, 0, 1], "timezone": "+05:30"}),
        ),
    ];
    check(&nights, send("0.01").at(WED_NOON + 6 * HOUR), ok); // 23:30 local
    check(&nights, send("0.01").at(WED_NOON + 8 * HOUR), ok); // 01:30 local, Thursday
    check(
        &nights,
        send("0.01").at(WED_NOON + 9 * HOUR),
        "DENIED: transfers are not allowed at hour 2 (UTC+05:30); allowed_hours: 22, 23, 0, 1",
    );
    assert_eq!(
        trace(&nights[1..], send("0.01").at(WED_NOON + 8 * HOUR)),
        "p1 TIME_RESTRICTION PASS: thu hour 1 (UTC+05:30) is allowed\n\
         - SPENDING_LIMIT APPROVAL: no spending limit: approval required"
    );
}

#[test]
fn contract_calls_need_a_listed_contract_and_method() {
    let call = || send("0").call(ROUTER, TRANSFER);
    let limit = spending(json!({"instant_max": "0"}));
    let ok = "INSTANT: 0 ETH is within instant_max 0 ETH: INSTANT";
    check(
        std::slice::from_ref(&limit),
        call(),
        "DENIED: contract 0x5555555555555555555555555555555555555555 is denied by default: no CONTRACT_WHITELIST policy lists it",
    );
    let router_ok = ("CONTRACT_WHITELIST", json!({"contracts": [ROUTER]}));
    check(&[limit.clone(), router_ok.clone()], call(), ok);
    check(
        &[limit.clone(), ("CONTRACT_WHITELIST", json!({"contracts": [BOB]}))],
        call(),
        "DENIED: contract 0x5555555555555555555555555555555555555555 is not in CONTRACT_WHITELIST",
    );
    // Signatures and selectors name the same method.
    for method in ["transfer(address,uint256)", "0xa9059cbb", "0xA9059CBB"] {
        let methods = ("METHOD_WHITELIST", json!({"methods": [method]}));
        check(&[limit.clone(), router_ok.clone(), methods], call(), ok);
    }
    check(
        &[
            limit.clone(),
            router_ok.clone(),
            ("METHOD_WHITELIST", json!({"methods": ["approve(address,uint256)"]})),
        ],
        call(),
        "DENIED: method 0xa9059cbb is not in METHOD_WHITELIST",
    );
    // Without a call the call rules pass; a zero-value call moves no asset.
    check(
        &[
            limit.clone(),
            ("CONTRACT_WHITELIST", json!({"contracts": [BOB]})),
            ("METHOD_WHITELIST", json!({"methods": ["0x095ea7b3"]})),
            usdc_allowed(),
        ],
        send("0"),
        ok,
    );
    check(&[limit, router_ok, usdc_allowed()], call(), ok);
}

#[test]
fn approvals_need_a_listed_spender_and_a_bounded_amount() {
    let approve = |amount| send("0").approve(ROUTER, USDC, amount);
    let limit = spending(json!({"instant_max": "0"}));
    let spenders = ("APPROVED_SPENDERS", json!({"spenders": [ROUTER]}));
    let ok = "INSTANT: 0 ETH is within instant_max 0 ETH: INSTANT";
    check(
        std::slice::from_ref(&limit),
        approve(1000),
        "DENIED: spender 0x5555555555555555555555555555555555555555 is denied by default: no APPROVED_SPENDERS policy lists it",
    );
    check(&[limit.clone(), spenders.clone()], approve(1000), ok);
    check(
        &[limit.clone(), ("APPROVED_SPENDERS", json!({"spenders": [BOB]}))],
        approve(1000),
        "DENIED: spender 0x5555555555555555555555555555555555555555 is not in APPROVED_SPENDERS",
    );
    let cap = |max: &str| ("APPROVE_AMOUNT_LIMIT", json!({"max_amount": max}));
    check(&[limit.clone(), spenders.clone(), cap("1000")], approve(1000), ok);
    check(
        &[limit.clone(), spenders.clone(), cap("999")],
        approve(1000),
        "DENIED: approval of 1000 base units of 0x3333333333333333333333333333333333333333 exceeds APPROVE_AMOUNT_LIMIT max_amount 999",
    );
    // A limit for another token does not apply.
    check(
        &[
            limit,
            spenders,
            ("APPROVE_AMOUNT_LIMIT", json!({"max_amount": "1", "token": DAI})),
        ],
        approve(1000),
        ok,
    );
}

#[test]
fn any_deny_wins_over_a_tier_and_all_deny_reasons_are_given() {
    check(
        &[
            native_tiers(),
            ("WHITELIST", json!({"allowed_addresses": [BOB]})),
            ("ALLOWED_NETWORKS", json!({"networks": ["base"]})),
        ],
        send("0.01"),
        "DENIED: recipient 0x1111111111111111111111111111111111111111 is not in WHITELIST; network anvil is not in ALLOWED_NETWORKS",
    );
}

#[test]
fn the_strictest_tier_wins_across_spending_limits() {
    let p = [
        spending(json!({"notify_max": "1"})),
        spending(json!({"delay_max": "1", "delay_seconds": 900})),
        spending(json!({"delay_max": "2", "delay_seconds": 600})),
    ];
    check(
        &p,
        send("0.5"),
        "DELAY (900s): 0.5 ETH is within delay_max 1 ETH: DELAY 900s (cancellable); 0.5 ETH is within delay_max 2 ETH: DELAY 600s (cancellable)",
    );
    // The shortest approval window among the policies that ask for approval.
    let p = [
        spending(json!({"instant_max": "0.1", "approval_timeout_seconds": 7200})),
        spending(json!({"instant_max": "0.1", "approval_timeout_seconds": 600})),
        spending(json!({"instant_max": "1", "approval_timeout_seconds": 60})),
    ];
    check(
        &p,
        send("0.5"),
        "APPROVAL (600s): 0.5 ETH exceeds instant_max 0.1 ETH: APPROVAL by the owner (expires after 7200s); 0.5 ETH exceeds instant_max 0.1 ETH: APPROVAL by the owner (expires after 600s)",
    );
}

#[test]
fn the_trace_lists_every_policy_even_after_a_deny() {
    let p = [
        ("WHITELIST", json!({"allowed_addresses": [BOB]})),
        native_tiers(),
        spending(json!({"daily_limit_usd": "100"})),
        ("ALLOWED_NETWORKS", json!({"networks": ["anvil"]})),
        ("CONTRACT_WHITELIST", json!({"contracts": [ROUTER]})),
        ("APPROVED_SPENDERS", json!({"spenders": [ROUTER]})),
    ];
    assert_eq!(
        trace(&p, send("0.6").spent_usd("10", "10")),
        "p1 WHITELIST.allowed_addresses DENY: recipient 0x1111111111111111111111111111111111111111 is not in WHITELIST\n\
         p2 SPENDING_LIMIT.notify_max DELAY: 0.6 ETH exceeds notify_max 0.5 ETH: DELAY 300s (cancellable)\n\
         p3 SPENDING_LIMIT.daily_limit_usd APPROVAL [daily_limit_usd: spent $10.00 + $1200.00 of $100.00]: daily_limit_usd $100.00 would be exceeded (spent $10.00, this transfer $1200.00): APPROVAL by the owner (expires after 3600s)\n\
         p4 ALLOWED_NETWORKS.networks PASS: network anvil is in ALLOWED_NETWORKS\n\
         p5 CONTRACT_WHITELIST.contracts PASS: no contract call\n\
         p6 APPROVED_SPENDERS.spenders PASS: no token approval"
    );
}

#[test]
fn spend_is_what_to_reserve() {
    let d = decide(&[native_tiers()], &send("0.6")).unwrap();
    assert_eq!(
        d.spend,
        Spend {
            micro_usd: Some(usd("1200")),
            native: Some(eth("0.6")),
        }
    );
    let d = decide(&[usdc_allowed()], &send("0").token(USDC, "2.5")).unwrap();
    assert_eq!(
        d.spend,
        Spend {
            micro_usd: Some(usd("2.5")),
            native: None,
        }
    );
    let d = decide(&[], &send("0.6").price(Some(("2000", 61)))).unwrap();
    assert_eq!(
        d.spend,
        Spend {
            micro_usd: None,
            native: Some(eth("0.6")),
        }
    );
}

#[test]
fn usd_value_rounds_up_and_refuses_overflow() {
    let price = Price {
        micro_usd_per_unit: usd("2000"),
        as_of: 0,
    };
    let wei = |n: u64| Amount::new(U256::from(n), 18).unwrap();
    assert_eq!(usd_value(&wei(0), &price), Some(U256::ZERO));
    assert_eq!(usd_value(&wei(1), &price), Some(U256::from(1)));
    assert_eq!(
        usd_value(&Amount::parse_decimal("1.5", 18).unwrap(), &price),
        Some(usd("3000"))
    );
    let max = Amount::new(U256::MAX, 18).unwrap();
    assert_eq!(usd_value(&max, &price), None);
    let free = Price {
        micro_usd_per_unit: U256::ZERO,
        as_of: 0,
    };
    assert_eq!(usd_value(&max, &free), Some(U256::ZERO));
}

#[test]
fn huge_amounts_and_counters_escalate_instead_of_panicking() {
    let p = [spending(
        json!({"instant_max": "1", "daily_limit": "1", "instant_max_usd": "1"}),
    )];
    let mut tx = send("0").spent_eth("0.5", "0");
    tx.intent.amount = Amount::new(U256::MAX, 18).unwrap();
    let d = decide(&p, &tx).unwrap();
    assert_eq!(d.outcome, Outcome::Allowed(Tier::Approval));
    assert_eq!(
        d.reasons[0],
        "USD value overflows: USD limits cannot be checked, APPROVAL by the owner (expires after 3600s)"
    );
    assert_eq!(d.spend.micro_usd, None);

    let mut tx = send("0.5").price(Some(("1000000000000000000000000000000000000000000000000", 0)));
    tx.spent_eth = [U256::MAX, U256::MAX];
    tx.spent_usd = [U256::MAX, U256::MAX];
    let p = [spending(
        json!({"daily_limit": "1", "monthly_limit_usd": "1", "monthly_limit": "1"}),
    )];
    let d = decide(&p, &tx).unwrap();
    assert_eq!(d.outcome, Outcome::Allowed(Tier::Approval));
    assert_eq!(d.reasons.len(), 3, "every limit escalates: {:?}", d.reasons);

    // Rules too large for a U256 are refused at creation.
    check(
        &[spending(json!({"instant_max": "9".repeat(80)}))],
        send("1"),
        "invalid policy: SPENDING_LIMIT.instant_max: amount is too large",
    );
}

#[test]
fn parse_errors_name_the_field() {
    let cases: &[(&str, Value, &str)] = &[
        (
            "FOO",
            json!({}),
            "invalid policy: unknown type \"FOO\" (expected one of SPENDING_LIMIT, WHITELIST, ALLOWED_TOKENS, CONTRACT_WHITELIST, METHOD_WHITELIST, APPROVED_SPENDERS, APPROVE_AMOUNT_LIMIT, ALLOWED_NETWORKS, RATE_LIMIT, TIME_RESTRICTION)",
        ),
        (
            "spending_limit",
            json!({}),
            "invalid policy: unknown type \"spending_limit\" (expected one of SPENDING_LIMIT, WHITELIST, ALLOWED_TOKENS, CONTRACT_WHITELIST, METHOD_WHITELIST, APPROVED_SPENDERS, APPROVE_AMOUNT_LIMIT, ALLOWED_NETWORKS, RATE_LIMIT, TIME_RESTRICTION)",
        ),
        (
            "WHITELIST",
            json!([ALICE]),
            "invalid policy: WHITELIST rules must be a JSON object",
        ),
        (
            "SPENDING_LIMIT",
            json!({"instant_max": "1", "instant_maxx": "2"}),
            "invalid policy: SPENDING_LIMIT: unknown field \"instant_maxx\" (expected instant_max_usd, notify_max_usd, delay_max_usd, daily_limit_usd, monthly_limit_usd, instant_max, notify_max, delay_max, daily_limit, monthly_limit, delay_seconds, approval_timeout_seconds)",
        ),
        (
            "WHITELIST",
            json!({"allowed_addresses": [ALICE], "addresses": [BOB]}),
            "invalid policy: WHITELIST: unknown field \"addresses\" (expected allowed_addresses)",
        ),
        (
            "SPENDING_LIMIT",
            json!({}),
            "invalid policy: SPENDING_LIMIT needs at least one threshold or limit (instant_max_usd, notify_max_usd, delay_max_usd, daily_limit_usd, monthly_limit_usd, instant_max, notify_max, delay_max, daily_limit, monthly_limit)",
        ),
        (
            "SPENDING_LIMIT",
            json!({"delay_seconds": 60}),
            "invalid policy: SPENDING_LIMIT needs at least one threshold or limit (instant_max_usd, notify_max_usd, delay_max_usd, daily_limit_usd, monthly_limit_usd, instant_max, notify_max, delay_max, daily_limit, monthly_limit)",
        ),
        (
            "SPENDING_LIMIT",
            json!({"instant_max_usd": "100", "notify_max_usd": "50"}),
            "invalid policy: SPENDING_LIMIT.instant_max_usd is above notify_max_usd: thresholds must not decrease (instant ≤ notify ≤ delay)",
        ),
        (
            "SPENDING_LIMIT",
            json!({"instant_max": "2", "delay_max": "1"}),
            "invalid policy: SPENDING_LIMIT.instant_max is above delay_max: thresholds must not decrease (instant ≤ notify ≤ delay)",
        ),
        (
            "SPENDING_LIMIT",
            json!({"instant_max_usd": "0.0000001"}),
            "invalid policy: SPENDING_LIMIT.instant_max_usd: amount has 7 fractional digits but the asset has only 6 decimals",
        ),
        (
            "SPENDING_LIMIT",
            json!({"daily_limit": "1e18"}),
            "invalid policy: SPENDING_LIMIT.daily_limit: amount \"1e18\" is not a plain decimal number (digits, at most one '.', no sign or exponent)",
        ),
        (
            "SPENDING_LIMIT",
            json!({"instant_max": 1}),
            "invalid policy: SPENDING_LIMIT.instant_max: invalid type: integer `1`, expected a string",
        ),
        (
            "SPENDING_LIMIT",
            json!({"instant_max": "1", "delay_seconds": 0}),
            "invalid policy: SPENDING_LIMIT.delay_seconds: 0 is out of range 1-604800",
        ),
        (
            "SPENDING_LIMIT",
            json!({"instant_max": "1", "approval_timeout_seconds": 604801}),
            "invalid policy: SPENDING_LIMIT.approval_timeout_seconds: 604801 is out of range 1-604800",
        ),
        (
            "WHITELIST",
            json!({"allowed_addresses": [ALICE, "0x123"]}),
            "invalid policy: WHITELIST.allowed_addresses[1] \"0x123\": invalid evm address: expected 0x followed by 40 hex digits",
        ),
        (
            "WHITELIST",
            json!({"allowed_addresses": ["0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266"]}),
            "invalid policy: WHITELIST.allowed_addresses[0] \"0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266\": invalid evm address: EIP-55 checksum mismatch",
        ),
        (
            "WHITELIST",
            json!({"allowed_addresses": []}),
            "invalid policy: WHITELIST.allowed_addresses: must not be empty",
        ),
        (
            "WHITELIST",
            json!({"allowed_addresses": ALICE}),
            "invalid policy: WHITELIST.allowed_addresses: invalid type: string \"0x1111111111111111111111111111111111111111\", expected a sequence",
        ),
        (
            "ALLOWED_TOKENS",
            json!({"tokens": ["NATIVE"]}),
            "invalid policy: ALLOWED_TOKENS.tokens[0] \"NATIVE\": invalid evm address: expected 0x followed by 40 hex digits",
        ),
        (
            "CONTRACT_WHITELIST",
            json!({"contracts": []}),
            "invalid policy: CONTRACT_WHITELIST.contracts: must not be empty",
        ),
        (
            "METHOD_WHITELIST",
            json!({"methods": ["transfer(address, uint256)"]}),
            "invalid policy: METHOD_WHITELIST.methods[0] \"transfer(address, uint256)\": expected a selector like \"0xa9059cbb\" or a canonical signature like \"transfer(address,uint256)\" (no spaces)",
        ),
        (
            "METHOD_WHITELIST",
            json!({"methods": ["0xa9059c"]}),
            "invalid policy: METHOD_WHITELIST.methods[0] \"0xa9059c\": expected a selector like \"0xa9059cbb\" or a canonical signature like \"transfer(address,uint256)\" (no spaces)",
        ),
        (
            "METHOD_WHITELIST",
            json!({"methods": ["transfer"]}),
            "invalid policy: METHOD_WHITELIST.methods[0] \"transfer\": expected a selector like \"0xa9059cbb\" or a canonical signature like \"transfer(address,uint256)\" (no spaces)",
        ),
        (
            "APPROVED_SPENDERS",
            json!({}),
            "invalid policy: APPROVED_SPENDERS: missing field spenders",
        ),
        (
            "APPROVE_AMOUNT_LIMIT",
            json!({"max_amount": "1.5"}),
            "invalid policy: APPROVE_AMOUNT_LIMIT.max_amount: amount \"1.5\" is not a plain decimal number (digits, at most one '.', no sign or exponent)",
        ),
        (
            "APPROVE_AMOUNT_LIMIT",
            json!({"max_amount": "1", "token": "0x12"}),
            "invalid policy: APPROVE_AMOUNT_LIMIT.token: \"0x12\": invalid evm address: expected 0x followed by 40 hex digits",
        ),
        (
            "ALLOWED_NETWORKS",
            json!({"networks": ["Base"]}),
            "invalid policy: ALLOWED_NETWORKS.networks[0] \"Base\": invalid name: chain names are 1-32 characters of a-z, 0-9, '_' and '-'",
        ),
        (
            "RATE_LIMIT",
            json!({"max_requests": 0, "window_seconds": 60}),
            "invalid policy: RATE_LIMIT.max_requests: 0 is out of range 1-4294967295",
        ),
        (
            "RATE_LIMIT",
            json!({"max_requests": 5, "window_seconds": 2_678_401}),
            "invalid policy: RATE_LIMIT.window_seconds: 2678401 is out of range 1-2678400",
        ),
        (
            "RATE_LIMIT",
            json!({"max_requests": -1, "window_seconds": 60}),
            "invalid policy: RATE_LIMIT.max_requests: invalid value: integer `-1`, expected u32",
        ),
        (
            "RATE_LIMIT",
            json!({"max_requests": 5}),
            "invalid policy: RATE_LIMIT: missing field window_seconds",
        ),
        (
            "TIME_RESTRICTION",
            json!({"allowed_hours": [9, 24]}),
            "invalid policy: TIME_RESTRICTION.allowed_hours[1] 24: not an hour (0-23)",
        ),
        (
            "TIME_RESTRICTION",
            json!({"allowed_days": ["monday"]}),
            "invalid policy: TIME_RESTRICTION.allowed_days[0] \"monday\": expected one of mon, tue, wed, thu, fri, sat, sun",
        ),
        (
            "TIME_RESTRICTION",
            json!({"allowed_days": []}),
            "invalid policy: TIME_RESTRICTION.allowed_days: must not be empty",
        ),
        (
            "TIME_RESTRICTION",
            json!({"timezone": "UTC"}),
            "invalid policy: TIME_RESTRICTION needs allowed_hours, allowed_days or both",
        ),
    ];
    for (type_name, rules, expect) in cases {
        check(&[(type_name, rules.clone())], send("1"), expect);
    }
    for zone in [
        "Europe/Paris",
        "+15:00",
        "+5:30",
        "+05:60",
        "05:30",
        "utc",
        "+14:01",
        "-+1:00",
    ] {
        check(
            &[("TIME_RESTRICTION", json!({"allowed_hours": [9], "timezone": zone}))],
            send("1"),
            &format!(
                "invalid policy: TIME_RESTRICTION.timezone: {zone:?}: expected \"UTC\" or an offset like \"+05:30\" or \"-08:00\" (at most ±14:00)"
            ),
        );
    }
}

#[test]
fn solana_wallets_parse_solana_addresses_and_refuse_evm_selectors() {
    let solana = ParseContext {
        chain_kind: ChainKind::Solana,
        native_decimals: 9,
    };
    let system = "11111111111111111111111111111111";
    assert_eq!(
        parse("WHITELIST", json!({"allowed_addresses": [system]}), &solana),
        Ok(Rules::Whitelist {
            allowed_addresses: vec![Address::parse(ChainKind::Solana, system).unwrap()],
        })
    );
    assert_eq!(
        parse("WHITELIST", json!({"allowed_addresses": [ALICE]}), &solana)
            .unwrap_err()
            .to_string(),
        "invalid policy: WHITELIST.allowed_addresses[0] \"0x1111111111111111111111111111111111111111\": invalid solana address: not base58"
    );
    assert_eq!(
        parse("METHOD_WHITELIST", json!({"methods": ["0xa9059cbb"]}), &solana)
            .unwrap_err()
            .to_string(),
        "invalid policy: METHOD_WHITELIST applies to EVM wallets only, not solana"
    );
    // Native units at the chain's decimals: 9 for SOL.
    let Ok(Rules::SpendingLimit(limit)) = parse("SPENDING_LIMIT", json!({"instant_max": "0.5"}), &solana) else {
        panic!("SPENDING_LIMIT should parse");
    };
    assert_eq!(limit.native.instant_max, Some(U256::from(500_000_000u64)));
    assert_eq!(
        (
            limit.native_decimals,
            limit.delay_seconds,
            limit.approval_timeout_seconds
        ),
        (9, 300, 3600)
    );
}

#[test]
fn native_limits_at_other_decimals_fail_closed() {
    let mut tx = send("0");
    tx.intent.amount = Amount::new(U256::from(1), 9).unwrap();
    check(
        &[spending(json!({"instant_max": "1"}))],
        tx,
        "APPROVAL (3600s): native limits were written for 18 decimals but the amount has 9: APPROVAL by the owner (expires after 3600s)",
    );
}

// ---- fees: the most a transfer can pay in fees counts as spend ------------------------------

#[test]
fn the_max_fee_counts_in_native_thresholds_and_periods() {
    let limit = [("SPENDING_LIMIT", json!({"instant_max": "0.1", "daily_limit": "1"}))];
    // 0.1 alone is within instant_max; 0.1 + a 0.001 fee is not.
    check(
        &limit,
        send("0.1"),
        "INSTANT: 0.1 ETH is within instant_max 0.1 ETH: INSTANT; within daily_limit 1 ETH",
    );
    let d = decide(&limit, &send("0.1").fee("0.001")).unwrap();
    assert_eq!(d.outcome, Outcome::Allowed(Tier::Approval), "{:?}", d.reasons);
    assert_eq!(d.spend.native, Some(eth("0.101")));
    // The daily budget sees value + fee: 0.9 spent + 0.09 + 0.011 fee > 1.
    let d = decide(&limit, &send("0.09").fee("0.011").spent_eth("0.9", "0.9")).unwrap();
    assert_eq!(d.outcome, Outcome::Allowed(Tier::Approval), "{:?}", d.reasons);
    let d = decide(&limit, &send("0.09").fee("0.01").spent_eth("0.9", "0.9")).unwrap();
    assert_eq!(d.outcome, Outcome::Allowed(Tier::Instant), "{:?}", d.reasons);
}

#[test]
fn a_token_transfer_fee_counts_against_native_periods_and_usd() {
    let limits = [
        usdc_allowed(),
        (
            "SPENDING_LIMIT",
            json!({"instant_max_usd": "100", "daily_limit": "0.01"}),
        ),
    ];
    // 50 USDC + a 0.001 ETH fee ($2): $52, within instant_max_usd; the fee in ETH is counted.
    let d = decide(&limits, &send("0").token(USDC, "50").fee("0.001")).unwrap();
    assert_eq!(d.outcome, Outcome::Allowed(Tier::Instant), "{:?}", d.reasons);
    assert_eq!(d.spend.micro_usd, Some(usd("52")));
    assert_eq!(d.spend.native, Some(eth("0.001")));
    // The native daily limit stops a run of token sends whose fees add up.
    let d = decide(
        &limits,
        &send("0").token(USDC, "1").fee("0.001").spent_eth("0.0095", "0.0095"),
    )
    .unwrap();
    assert_eq!(d.outcome, Outcome::Allowed(Tier::Approval), "{:?}", d.reasons);
    // The fee's USD needs the native price: unknown → USD rules fail closed.
    let d = decide(&limits, &send("0").token(USDC, "50").fee("0.001").native_price(None)).unwrap();
    assert_eq!(d.outcome, Outcome::Allowed(Tier::Approval), "{:?}", d.reasons);
    assert!(d.reasons.iter().any(|r| r.contains("for the fee")), "{:?}", d.reasons);
}

#[test]
fn a_token_fee_is_not_compared_with_native_limits_written_at_other_decimals() {
    let limits = [
        usdc_allowed(),
        (
            "SPENDING_LIMIT",
            json!({"instant_max_usd": "100", "daily_limit": "0.01"}),
        ),
    ];
    // On a chain whose native asset has 9 decimals while the limit was written at 18, base
    // units at two scales are not compared: a fee of 0.001 (at 9 decimals) on top of a spent
    // counter already at the limit's number passes the native limit (USD still counts it).
    let mut tx = send("0").token(USDC, "1").spent_eth("0.01", "0.01");
    tx.intent.max_fee = Some(U256::from(1_000_000u64));
    tx.native_decimals = 9;
    let d = decide(&limits, &tx).unwrap();
    assert_eq!(d.outcome, Outcome::Allowed(Tier::Instant), "{:?}", d.reasons);
    let mut tx = send("0").token(USDC, "1");
    tx.intent.max_fee = Some(U256::from(1_000_000u64));
    tx.native_decimals = 9;
    let t = trace(&limits, tx);
    assert!(
        t.contains("SPENDING_LIMIT.native PASS: native-unit limits do not apply to a token transfer"),
        "{t}"
    );
}

#[test]
fn the_fee_is_in_the_trace() {
    let t = trace(
        &[("SPENDING_LIMIT", json!({"instant_max": "1"}))],
        send("0.5").fee("0.000042"),
    );
    assert!(t.contains("FEE.max_fee PASS"), "{t}");
    assert!(t.contains("at most 0.000042 ETH"), "{t}");
}

#[test]
fn dollars_and_zone_names_render_as_the_reasons_show_them() {
    assert_eq!(dollars(usd("12.5")), "$12.50");
    assert_eq!(dollars(usd("12")), "$12.00");
    assert_eq!(dollars(usd("0.000001")), "$0.000001");
    assert_eq!(zone_name(0), "UTC");
    assert_eq!(zone_name(330), "UTC+05:30");
    assert_eq!(zone_name(-480), "UTC-08:00");
}

#[test]
fn method_signatures_are_checked_for_their_shape_before_hashing() {
    let evm = ParseContext {
        chain_kind: ChainKind::Evm,
        native_decimals: 18,
    };
    let methods = |m: &str| parse("METHOD_WHITELIST", json!({ "methods": [m] }), &evm);
    assert_eq!(
        methods("transfer(address,uint256)"),
        Ok(Rules::MethodWhitelist {
            methods: vec![TRANSFER]
        })
    );
    for ok in ["_f()", "a_b$c(uint256[],bytes32)", "f9()"] {
        assert!(methods(ok).is_ok(), "{ok}");
    }
    for wrong in [
        "1f()",
        "tr-ansfer(address)",
        "f-()",
        "a b()",
        "f(Address)",
        "f(address",
        "(address)",
    ] {
        assert!(methods(wrong).is_err(), "{wrong}");
    }
}

#[test]
fn equal_thresholds_and_the_widest_offset_are_accepted() {
    let evm = ParseContext {
        chain_kind: ChainKind::Evm,
        native_decimals: 18,
    };
    let equal =
        json!({"instant_max": "1", "notify_max": "1", "delay_max": "1", "instant_max_usd": "5", "notify_max_usd": "5"});
    assert!(parse("SPENDING_LIMIT", equal, &evm).is_ok());
    for zone in ["+14:00", "-14:00"] {
        let rules = json!({"allowed_hours": [9], "timezone": zone});
        assert!(parse("TIME_RESTRICTION", rules, &evm).is_ok(), "{zone}");
    }
}

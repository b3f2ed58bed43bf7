//! Policy evaluation. Pure: no clock, no store, no network; everything is passed in.
//!
//! [`rules::parse`] turns what an operator wrote into typed [`Rules`] once, at policy creation;
//! [`evaluate`] runs every policy against the decoded transaction the daemon would sign and
//! answers with a [`Decision`] that carries its own trace. Default deny holds with or without
//! policies: no spending limit means APPROVAL; tokens, contract calls and token approvals are
//! denied unless a policy lists them.

pub mod rules;

#[cfg(test)]
mod tests;

use alloy_primitives::U256;

use crate::domain::{Address, Amount, ChainName};
pub use crate::domain::{Asset, Effect, Tier, TraceEntry};
use rules::{DAYS, DEFAULT_APPROVAL_TIMEOUT_SECONDS, USD_DECIMALS};
pub use rules::{Limits, ParseContext, Rules, SpendingLimit, parse};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub id: String,
    pub rules: Rules,
}

/// The decoded transaction the daemon would sign: policy judges this, not the agent's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    pub chain: ChainName,
    /// Recipient of the value; for a token transfer, the token recipient.
    pub to: Address,
    pub asset: Asset,
    pub amount: Amount,
    /// A contract interaction other than a plain token transfer.
    pub call: Option<ContractCall>,
    pub approve: Option<Approve>,
    /// The most the daemon will pay in fees for it, in native base units (EVM: gas limit ×
    /// max fee per gas). Counted as spend like the value: in native limits (a token
    /// transfer's fee counts against the cumulative native limits) and in USD at the native
    /// price. `None`: no fee quoted.
    pub max_fee: Option<U256>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContractCall {
    pub contract: Address,
    pub selector: [u8; 4],
}

/// A token allowance grant (ERC-20 `approve`, SPL delegate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Approve {
    pub spender: Address,
    pub token: Address,
    /// Base units of `token`.
    pub amount: U256,
}

/// The price of the intent's asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    /// Micro-USD per whole unit of the asset.
    pub micro_usd_per_unit: U256,
    /// Unix seconds.
    pub as_of: i64,
}

/// What has been spent, confirmed plus reserved in flight; the caller reads it from the store.
pub struct Counters<'a> {
    pub spent_today_micro_usd: U256,
    pub spent_month_micro_usd: U256,
    /// Base units of the native asset.
    pub spent_today_native: U256,
    pub spent_month_native: U256,
    /// Requests in the last `window_seconds`, this one included (for RATE_LIMIT). A closure
    /// because each RATE_LIMIT policy has its own window and only the caller can count.
    pub requests_in_window: &'a dyn Fn(u64) -> u32,
}

pub struct Context<'a> {
    /// Unix seconds, UTC.
    pub now: i64,
    /// The price of the intent's asset, if the oracle had one.
    pub price: Option<Price>,
    /// The native asset's price, for the fee (for a native transfer, the same as `price`).
    pub native_price: Option<Price>,
    /// Decimals of the native asset (the fee's unit).
    pub native_decimals: u8,
    pub max_price_age_seconds: u64,
    pub counters: &'a Counters<'a>,
    pub owner_registered: bool,
    /// For readable amounts in reasons ("0.6 ETH").
    pub native_symbol: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    /// Readable sentences an agent can act on: the deny reasons, or why this tier.
    pub reasons: Vec<String>,
    /// Every rule that was evaluated, in policy order, then the defaults.
    pub trace: Vec<TraceEntry>,
    /// Set when the outcome is DELAY.
    pub delay_seconds: Option<u64>,
    /// Set when the outcome is APPROVAL.
    pub approval_timeout_seconds: Option<u64>,
    /// What to reserve against budgets if the transfer goes ahead.
    pub spend: Spend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allowed(Tier),
    Denied,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Spend {
    /// Set when a fresh price exists.
    pub micro_usd: Option<U256>,
    /// Base units, set for native transfers.
    pub native: Option<U256>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("invalid policy: {0}")]
    Invalid(String),
}

/// Runs every policy (no short-circuit, so the trace is complete); any deny wins, otherwise the
/// strictest tier.
pub fn evaluate(intent: &Intent, policies: &[Policy], ctx: &Context) -> Decision {
    let mut eval = Eval {
        intent,
        ctx,
        usd: usd_of(intent, ctx),
        trace: Vec::new(),
        spending: Vec::new(),
    };
    for policy in policies {
        eval.policy(policy);
    }
    eval.defaults(policies);
    eval.decide()
}

/// The USD value of `amount` in micro-USD, rounded up so that a fraction of a micro-dollar
/// still counts against limits (fail closed); `None` on overflow.
pub fn usd_value(amount: &Amount, price: &Price) -> Option<U256> {
    let scale = U256::from(10u8).checked_pow(U256::from(amount.decimals))?;
    let product = amount.base_units.checked_mul(price.micro_usd_per_unit)?;
    Some(product.div_ceil(scale))
}

struct Eval<'a> {
    intent: &'a Intent,
    ctx: &'a Context<'a>,
    /// The intent's value in micro-USD, or why it is unknown.
    usd: Result<U256, String>,
    trace: Vec<TraceEntry>,
    /// Each SPENDING_LIMIT that applied, with the tier it alone asks for.
    spending: Vec<(Tier, &'a SpendingLimit)>,
}

/// The unit a SPENDING_LIMIT group is written in.
#[derive(Clone, Copy)]
enum Unit<'s> {
    Usd,
    Native { decimals: u8, symbol: &'s str },
}

impl<'a> Eval<'a> {
    fn push(&mut self, policy: Option<&Policy>, rule: impl Into<String>, effect: Effect, detail: impl Into<String>) {
        self.push_counted(policy, rule, effect, detail, None);
    }

    fn push_counted(
        &mut self,
        policy: Option<&Policy>,
        rule: impl Into<String>,
        effect: Effect,
        detail: impl Into<String>,
        counter: Option<String>,
    ) {
        self.trace.push(TraceEntry {
            policy_id: policy.map(|p| p.id.clone()),
            rule: rule.into(),
            counter,
            effect,
            detail: detail.into(),
        });
    }

    /// `TYPE.field`: pass when `listed`, deny otherwise.
    fn membership(&mut self, policy: &Policy, (type_name, field): (&str, &str), listed: bool, subject: String) {
        let (effect, detail) = if listed {
            (Effect::Pass, format!("{subject} is in {type_name}"))
        } else {
            (Effect::Deny, format!("{subject} is not in {type_name}"))
        };
        self.push(Some(policy), format!("{type_name}.{field}"), effect, detail);
    }

    fn policy(&mut self, policy: &'a Policy) {
        let intent = self.intent;
        match &policy.rules {
            Rules::SpendingLimit(limit) => self.spending_limit(policy, limit),
            Rules::Whitelist { allowed_addresses } => self.membership(
                policy,
                ("WHITELIST", "allowed_addresses"),
                allowed_addresses.contains(&intent.to),
                format!("recipient {}", intent.to),
            ),
            Rules::AllowedTokens { tokens } => {
                // A call or approval that sends no native value moves no native asset; what it
                // does is judged by CONTRACT_WHITELIST / APPROVED_SPENDERS.
                if intent.asset == Asset::Native && intent.amount.base_units.is_zero() {
                    self.push(Some(policy), "ALLOWED_TOKENS.tokens", Effect::Pass, "no value is moved");
                } else {
                    let subject = self.asset_name();
                    self.membership(
                        policy,
                        ("ALLOWED_TOKENS", "tokens"),
                        tokens.contains(&intent.asset),
                        subject,
                    );
                }
            }
            Rules::ContractWhitelist { contracts } => match &intent.call {
                None => self.push(
                    Some(policy),
                    "CONTRACT_WHITELIST.contracts",
                    Effect::Pass,
                    "no contract call",
                ),
                Some(call) => self.membership(
                    policy,
                    ("CONTRACT_WHITELIST", "contracts"),
                    contracts.contains(&call.contract),
                    format!("contract {}", call.contract),
                ),
            },
            Rules::MethodWhitelist { methods } => match &intent.call {
                None => self.push(
                    Some(policy),
                    "METHOD_WHITELIST.methods",
                    Effect::Pass,
                    "no contract call",
                ),
                Some(call) => self.membership(
                    policy,
                    ("METHOD_WHITELIST", "methods"),
                    methods.contains(&call.selector),
                    format!("method {}", alloy_primitives::hex::encode_prefixed(call.selector)),
                ),
            },
            Rules::ApprovedSpenders { spenders } => match &intent.approve {
                None => self.push(
                    Some(policy),
                    "APPROVED_SPENDERS.spenders",
                    Effect::Pass,
                    "no token approval",
                ),
                Some(approve) => self.membership(
                    policy,
                    ("APPROVED_SPENDERS", "spenders"),
                    spenders.contains(&approve.spender),
                    format!("spender {}", approve.spender),
                ),
            },
            Rules::ApproveAmountLimit { max_amount, token } => {
                let rule = "APPROVE_AMOUNT_LIMIT.max_amount";
                match &intent.approve {
                    None => self.push(Some(policy), rule, Effect::Pass, "no token approval"),
                    Some(approve) if token.is_some_and(|t| t != approve.token) => {
                        self.push(Some(policy), rule, Effect::Pass, "the limit is for another token");
                    }
                    Some(approve) if approve.amount > *max_amount => self.push(
                        Some(policy),
                        rule,
                        Effect::Deny,
                        format!(
                            "approval of {} base units of {} exceeds APPROVE_AMOUNT_LIMIT max_amount {max_amount}",
                            approve.amount, approve.token
                        ),
                    ),
                    Some(approve) => self.push(
                        Some(policy),
                        rule,
                        Effect::Pass,
                        format!(
                            "approval of {} base units is within max_amount {max_amount}",
                            approve.amount
                        ),
                    ),
                }
            }
            Rules::AllowedNetworks { networks } => self.membership(
                policy,
                ("ALLOWED_NETWORKS", "networks"),
                networks.contains(&intent.chain),
                format!("network {}", intent.chain),
            ),
            Rules::RateLimit {
                max_requests,
                window_seconds,
            } => {
                let count = (self.ctx.counters.requests_in_window)(*window_seconds);
                let counter = format!("requests: {count} of {max_requests} in {window_seconds}s");
                let (effect, detail) = if count > *max_requests {
                    (
                        Effect::Deny,
                        format!(
                            "rate limit reached: {count} requests in the last {window_seconds}s, max_requests {max_requests}; retry later"
                        ),
                    )
                } else {
                    (Effect::Pass, "within the rate limit".to_owned())
                };
                self.push_counted(Some(policy), "RATE_LIMIT.max_requests", effect, detail, Some(counter));
            }
            Rules::TimeRestriction {
                allowed_hours,
                allowed_days,
                utc_offset_minutes,
            } => self.time_restriction(policy, allowed_hours, allowed_days, *utc_offset_minutes),
        }
    }

    fn asset_name(&self) -> String {
        match self.intent.asset {
            Asset::Native => format!("native {}", self.ctx.native_symbol),
            Asset::Token(token) => format!("token {token}"),
        }
    }

    fn time_restriction(
        &mut self,
        policy: &Policy,
        allowed_hours: &[u8],
        allowed_days: &[time::Weekday],
        utc_offset_minutes: i32,
    ) {
        let zone = zone_name(utc_offset_minutes);
        let local = self
            .ctx
            .now
            .checked_add(i64::from(utc_offset_minutes) * 60)
            .and_then(|secs| time::OffsetDateTime::from_unix_timestamp(secs).ok());
        let Some(local) = local else {
            // Fail closed: a clock this far off cannot be placed in a day.
            let detail = format!("the clock ({}) is out of range", self.ctx.now);
            return self.push(Some(policy), "TIME_RESTRICTION", Effect::Deny, detail);
        };
        let (day, hour) = (day_name(local.weekday()), local.hour());
        let (rule, effect, detail) = if !allowed_days.contains(&local.weekday()) {
            let days: Vec<&str> = allowed_days.iter().map(|d| day_name(*d)).collect();
            (
                "TIME_RESTRICTION.allowed_days",
                Effect::Deny,
                format!(
                    "transfers are not allowed on {day} ({zone}); allowed_days: {}",
                    days.join(", ")
                ),
            )
        } else if !allowed_hours.contains(&hour) {
            let hours: Vec<String> = allowed_hours.iter().map(u8::to_string).collect();
            (
                "TIME_RESTRICTION.allowed_hours",
                Effect::Deny,
                format!(
                    "transfers are not allowed at hour {hour} ({zone}); allowed_hours: {}",
                    hours.join(", ")
                ),
            )
        } else {
            (
                "TIME_RESTRICTION",
                Effect::Pass,
                format!("{day} hour {hour} ({zone}) is allowed"),
            )
        };
        self.push(Some(policy), rule, effect, detail);
    }

    fn spending_limit(&mut self, policy: &Policy, limit: &'a SpendingLimit) {
        let start = self.trace.len();
        let counters = self.ctx.counters;
        if !limit.usd.is_empty() {
            match self.usd.clone() {
                Ok(value) => self.limits(
                    policy,
                    limit,
                    &limit.usd,
                    Unit::Usd,
                    value,
                    [counters.spent_today_micro_usd, counters.spent_month_micro_usd],
                ),
                Err(why) => self.push(
                    Some(policy),
                    "SPENDING_LIMIT.usd",
                    Effect::Tier(Tier::Approval),
                    format!(
                        "{why}: USD limits cannot be checked, {}",
                        tier_label(Tier::Approval, Some(limit))
                    ),
                ),
            }
        }
        if !limit.native.is_empty() {
            let amount = self.intent.amount;
            let fee = self.intent.max_fee.filter(|f| !f.is_zero());
            match self.intent.asset {
                // Native units say nothing about a token's value; its fee is native, though,
                // and counts against the cumulative native limits.
                Asset::Token(_) => match fee {
                    Some(fee) if self.ctx.native_decimals == limit.native_decimals => self.periods(
                        policy,
                        limit,
                        &limit.native,
                        Unit::Native {
                            decimals: self.ctx.native_decimals,
                            symbol: self.ctx.native_symbol,
                        },
                        fee,
                        [counters.spent_today_native, counters.spent_month_native],
                    ),
                    _ => self.push(
                        Some(policy),
                        "SPENDING_LIMIT.native",
                        Effect::Pass,
                        "native-unit limits do not apply to a token transfer",
                    ),
                },
                // Comparing base units at different scales would be off by powers of ten.
                Asset::Native if amount.decimals != limit.native_decimals => self.push(
                    Some(policy),
                    "SPENDING_LIMIT.native",
                    Effect::Tier(Tier::Approval),
                    format!(
                        "native limits were written for {} decimals but the amount has {}: {}",
                        limit.native_decimals,
                        amount.decimals,
                        tier_label(Tier::Approval, Some(limit))
                    ),
                ),
                Asset::Native => self.limits(
                    policy,
                    limit,
                    &limit.native,
                    Unit::Native {
                        decimals: amount.decimals,
                        symbol: self.ctx.native_symbol,
                    },
                    amount.base_units.saturating_add(fee.unwrap_or_default()),
                    [counters.spent_today_native, counters.spent_month_native],
                ),
            }
        }
        if let Some(tier) = self.trace[start..].iter().filter_map(tier_of).max() {
            self.spending.push((tier, limit));
        }
    }

    /// One unit's thresholds and cumulative limits. `spent` is [today, this month].
    fn limits(
        &mut self,
        policy: &Policy,
        limit: &SpendingLimit,
        limits: &Limits,
        unit: Unit,
        value: U256,
        spent: [U256; 2],
    ) {
        let suffix = unit.suffix();
        if let Some((tier, verb, name, bound)) = threshold_tier(limits, value) {
            let detail = format!(
                "{} {verb} {name}{suffix} {}: {}",
                unit.show(value),
                unit.show(bound),
                tier_label(tier, Some(limit))
            );
            self.push(
                Some(policy),
                format!("SPENDING_LIMIT.{name}{suffix}"),
                Effect::Tier(tier),
                detail,
            );
        }
        self.periods(policy, limit, limits, unit, value, spent);
    }

    /// One unit's cumulative (daily, monthly) limits. `spent` is [today, this month].
    fn periods(
        &mut self,
        policy: &Policy,
        limit: &SpendingLimit,
        limits: &Limits,
        unit: Unit,
        value: U256,
        spent: [U256; 2],
    ) {
        let suffix = unit.suffix();
        let periods = [
            ("daily_limit", limits.daily_limit, spent[0]),
            ("monthly_limit", limits.monthly_limit, spent[1]),
        ];
        for (name, cap, spent) in periods {
            let Some(cap) = cap else { continue };
            let counter = format!(
                "{name}{suffix}: spent {} + {} of {}",
                unit.show(spent),
                unit.show(value),
                unit.show(cap)
            );
            // Over budget escalates rather than denies: the owner may approve an exceptional
            // spend, and without an owner APPROVAL is denied anyway.
            let (tier, detail) = match spent.checked_add(value) {
                Some(total) if total <= cap => (Tier::Instant, format!("within {name}{suffix} {}", unit.show(cap))),
                _ => (
                    Tier::Approval,
                    format!(
                        "{name}{suffix} {} would be exceeded (spent {}, this transfer {}): {}",
                        unit.show(cap),
                        unit.show(spent),
                        unit.show(value),
                        tier_label(Tier::Approval, Some(limit))
                    ),
                ),
            };
            self.push_counted(
                Some(policy),
                format!("SPENDING_LIMIT.{name}{suffix}"),
                Effect::Tier(tier),
                detail,
                Some(counter),
            );
        }
    }

    fn defaults(&mut self, policies: &[Policy]) {
        let intent = self.intent;
        if let Some(fee) = intent.max_fee.filter(|f| !f.is_zero()) {
            let fee = Amount {
                base_units: fee,
                decimals: self.ctx.native_decimals,
            };
            self.push(
                None,
                "FEE.max_fee",
                Effect::Pass,
                format!(
                    "the fee is at most {} {}, counted as spend with the amount",
                    fee.to_decimal_string(),
                    self.ctx.native_symbol
                ),
            );
        }
        let has = |wanted: fn(&Rules) -> bool| policies.iter().any(|p| wanted(&p.rules));
        if self.spending.is_empty() {
            let detail = if has(|r| matches!(r, Rules::SpendingLimit(_))) {
                format!("no spending limit applies to {}: approval required", self.asset_name())
            } else {
                "no spending limit: approval required".to_owned()
            };
            self.push(None, "SPENDING_LIMIT", Effect::Tier(Tier::Approval), detail);
        }
        if let Asset::Token(token) = intent.asset
            && !has(|r| matches!(r, Rules::AllowedTokens { .. }))
        {
            self.push(
                None,
                "ALLOWED_TOKENS",
                Effect::Deny,
                format!("token {token} is denied by default: no ALLOWED_TOKENS policy lists it"),
            );
        }
        if let Some(call) = &intent.call
            && !has(|r| matches!(r, Rules::ContractWhitelist { .. }))
        {
            self.push(
                None,
                "CONTRACT_WHITELIST",
                Effect::Deny,
                format!(
                    "contract {} is denied by default: no CONTRACT_WHITELIST policy lists it",
                    call.contract
                ),
            );
        }
        if let Some(approve) = &intent.approve
            && !has(|r| matches!(r, Rules::ApprovedSpenders { .. }))
        {
            self.push(
                None,
                "APPROVED_SPENDERS",
                Effect::Deny,
                format!(
                    "spender {} is denied by default: no APPROVED_SPENDERS policy lists it",
                    approve.spender
                ),
            );
        }
    }

    fn decide(mut self) -> Decision {
        // Always Some: a SPENDING_LIMIT or the default adds a tier. Approval is the safe fallback.
        let tier = self.trace.iter().filter_map(tier_of).max().unwrap_or(Tier::Approval);
        let tier_reasons: Vec<String> = self
            .trace
            .iter()
            .filter(|entry| entry.effect == Effect::Tier(tier))
            .map(|entry| entry.detail.clone())
            .collect();
        let orphan_approval = tier == Tier::Approval && !self.ctx.owner_registered;
        if orphan_approval {
            self.push(
                None,
                "OWNER",
                Effect::Deny,
                "approval required but no owner is registered",
            );
        }
        let mut reasons: Vec<String> = self
            .trace
            .iter()
            .filter(|entry| entry.effect == Effect::Deny)
            .map(|entry| entry.detail.clone())
            .collect();
        let outcome = if reasons.is_empty() {
            reasons = tier_reasons;
            Outcome::Allowed(tier)
        } else {
            if orphan_approval {
                // Say why approval was needed, so the agent knows what to change.
                reasons.extend(tier_reasons);
            }
            Outcome::Denied
        };
        let deciding = self.spending.iter().filter(|(t, _)| *t == tier);
        // Several policies asking for the same tier: the longest delay and the shortest
        // approval window are the strictest.
        let delay_seconds = match outcome {
            Outcome::Allowed(Tier::Delay) => deciding.clone().map(|(_, l)| l.delay_seconds).max(),
            _ => None,
        };
        let approval_timeout_seconds = match outcome {
            Outcome::Allowed(Tier::Approval) => Some(
                deciding
                    .map(|(_, l)| l.approval_timeout_seconds)
                    .min()
                    .unwrap_or(DEFAULT_APPROVAL_TIMEOUT_SECONDS),
            ),
            _ => None,
        };
        let spend = Spend {
            micro_usd: self.usd.ok(),
            native: match self.intent.asset {
                Asset::Native => Some(
                    self.intent
                        .amount
                        .base_units
                        .saturating_add(self.intent.max_fee.unwrap_or_default()),
                ),
                Asset::Token(_) => self.intent.max_fee,
            },
        };
        Decision {
            outcome,
            reasons,
            trace: self.trace,
            delay_seconds,
            approval_timeout_seconds,
            spend,
        }
    }
}

impl Unit<'_> {
    fn suffix(self) -> &'static str {
        match self {
            Unit::Usd => "_usd",
            Unit::Native { .. } => "",
        }
    }

    fn show(self, value: U256) -> String {
        match self {
            Unit::Usd => dollars(value),
            Unit::Native { decimals, symbol } => {
                let amount = Amount {
                    base_units: value,
                    decimals,
                };
                format!("{} {symbol}", amount.to_decimal_string())
            }
        }
    }
}

fn tier_of(entry: &TraceEntry) -> Option<Tier> {
    match entry.effect {
        Effect::Tier(tier) => Some(tier),
        Effect::Deny | Effect::Pass => None,
    }
}

/// The intent's micro-USD value — the amount at its asset's price plus the maximum fee at
/// the native price — or why it is unknown (missing, stale, overflowing).
fn usd_of(intent: &Intent, ctx: &Context) -> Result<U256, String> {
    let value = priced(&intent.amount, ctx.price.as_ref(), ctx)?;
    let fee = match intent.max_fee.filter(|f| !f.is_zero()) {
        None => U256::ZERO,
        Some(fee) => {
            let fee = Amount {
                base_units: fee,
                decimals: ctx.native_decimals,
            };
            let price = match intent.asset {
                Asset::Native => ctx.price.as_ref(),
                Asset::Token(_) => ctx.native_price.as_ref(),
            };
            priced(&fee, price, ctx).map_err(|why| format!("{why} (the native asset, for the fee)"))?
        }
    };
    value.checked_add(fee).ok_or_else(|| "USD value overflows".to_owned())
}

/// `amount` in micro-USD at `price`, if the price is fresh.
fn priced(amount: &Amount, price: Option<&Price>, ctx: &Context) -> Result<U256, String> {
    let Some(price) = price else {
        return Err("price unknown".to_owned());
    };
    // A price dated in the future is as untrustworthy as an old one.
    let age = ctx.now.checked_sub(price.as_of).and_then(|age| u64::try_from(age).ok());
    match age {
        Some(age) if age <= ctx.max_price_age_seconds => {
            usd_value(amount, price).ok_or_else(|| "USD value overflows".to_owned())
        }
        Some(age) => Err(format!("price stale ({age}s old, max {}s)", ctx.max_price_age_seconds)),
        None => Err("price stale (dated in the future)".to_owned()),
    }
}

/// The tier the thresholds give `value`, with what to say: ("is within" | "exceeds", the
/// threshold named, its value). Missing levels are skipped; `None` when no threshold is set.
fn threshold_tier(limits: &Limits, value: U256) -> Option<(Tier, &'static str, &'static str, U256)> {
    let mut exceeded = None;
    for (tier, name, max) in limits.thresholds() {
        let Some(max) = max else { continue };
        if value <= max {
            return Some(match exceeded {
                None => (tier, "is within", name, max),
                Some((prev, prev_max)) => (tier, "exceeds", prev, prev_max),
            });
        }
        exceeded = Some((name, max));
    }
    exceeded.map(|(name, max)| (Tier::Approval, "exceeds", name, max))
}

fn tier_label(tier: Tier, limit: Option<&SpendingLimit>) -> String {
    match tier {
        Tier::Instant | Tier::Notify => tier.as_str().to_owned(),
        Tier::Delay => format!(
            "DELAY {}s (cancellable)",
            limit.map_or(rules::DEFAULT_DELAY_SECONDS, |l| l.delay_seconds)
        ),
        Tier::Approval => format!(
            "APPROVAL by the owner (expires after {}s)",
            limit.map_or(DEFAULT_APPROVAL_TIMEOUT_SECONDS, |l| l.approval_timeout_seconds)
        ),
    }
}

/// Micro-USD as dollars with at least two decimals: "$12.50", "$0.000001".
fn dollars(micro_usd: U256) -> String {
    let amount = Amount {
        base_units: micro_usd,
        decimals: USD_DECIMALS,
    };
    let s = amount.to_decimal_string();
    match s.split_once('.') {
        None => format!("${s}.00"),
        Some((_, frac)) if frac.len() == 1 => format!("${s}0"),
        Some(_) => format!("${s}"),
    }
}

fn day_name(day: time::Weekday) -> &'static str {
    DAYS.iter().find(|(_, d)| *d == day).map_or("?", |(name, _)| name)
}

fn zone_name(utc_offset_minutes: i32) -> String {
    if utc_offset_minutes == 0 {
        return "UTC".to_owned();
    }
    let sign = if utc_offset_minutes < 0 { '-' } else { '+' };
    let minutes = utc_offset_minutes.unsigned_abs();
    format!("UTC{sign}{:02}:{:02}", minutes / 60, minutes % 60)
}

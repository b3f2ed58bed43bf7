//! Typed policy rules, parsed once when a policy is created; evaluation never sees JSON. The
//! only serde in `policy`. Unknown types and fields are refused, and every error names the
//! field (`TYPE.field[index]`) so a 400 says exactly what to fix.

use alloy_primitives::{U256, keccak256};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::fmt::Display;
use std::ops::RangeInclusive;
use time::Weekday;

use super::{Asset, PolicyError, Tier};
use crate::domain::{Address, Amount, ChainKind, ChainName, sanitize};

/// What the caller knows about the wallet the policy is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseContext {
    pub chain_kind: ChainKind,
    pub native_decimals: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rules {
    /// Boxed: ten optional U256 bounds would make every other variant 400 bytes.
    SpendingLimit(Box<SpendingLimit>),
    Whitelist {
        allowed_addresses: Vec<Address>,
    },
    /// `Asset::Native` stands for the "native" entry.
    AllowedTokens {
        tokens: Vec<Asset>,
    },
    ContractWhitelist {
        contracts: Vec<Address>,
    },
    MethodWhitelist {
        methods: Vec<[u8; 4]>,
    },
    ApprovedSpenders {
        spenders: Vec<Address>,
    },
    ApproveAmountLimit {
        /// Base units.
        max_amount: U256,
        /// The token the limit is for; every token when `None`.
        token: Option<Address>,
    },
    AllowedNetworks {
        networks: Vec<ChainName>,
    },
    RateLimit {
        max_requests: u32,
        window_seconds: u64,
    },
    TimeRestriction {
        /// Local hours (0–23) at `utc_offset_minutes`; all hours when the rule gave none.
        allowed_hours: Vec<u8>,
        /// All days when the rule gave none.
        allowed_days: Vec<Weekday>,
        /// 0 for "UTC" or no timezone: an absent offset and UTC mean the same.
        utc_offset_minutes: i32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendingLimit {
    /// In micro-USD.
    pub usd: Limits,
    /// In base units of the native asset at `native_decimals`.
    pub native: Limits,
    /// The decimals `native` was parsed at; evaluation refuses to compare across scales.
    pub native_decimals: u8,
    pub delay_seconds: u64,
    pub approval_timeout_seconds: u64,
}

/// One unit's thresholds (inclusive upper bounds of a tier) and cumulative limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub instant_max: Option<U256>,
    pub notify_max: Option<U256>,
    pub delay_max: Option<U256>,
    pub daily_limit: Option<U256>,
    pub monthly_limit: Option<U256>,
}

pub const DEFAULT_DELAY_SECONDS: u64 = 300;
pub const DEFAULT_APPROVAL_TIMEOUT_SECONDS: u64 = 3600;
/// USD amounts are held in micro-dollars.
pub const USD_DECIMALS: u8 = 6;

const TYPE_NAMES: [&str; 10] = [
    "SPENDING_LIMIT",
    "WHITELIST",
    "ALLOWED_TOKENS",
    "CONTRACT_WHITELIST",
    "METHOD_WHITELIST",
    "APPROVED_SPENDERS",
    "APPROVE_AMOUNT_LIMIT",
    "ALLOWED_NETWORKS",
    "RATE_LIMIT",
    "TIME_RESTRICTION",
];
const DAY: u64 = 24 * 3600;
const MAX_WAIT_SECONDS: u64 = 7 * DAY;
const MAX_RATE_WINDOW_SECONDS: u64 = 31 * DAY;
const MAX_UTC_OFFSET_MINUTES: i32 = 14 * 60;
/// The one table of day names, for parsing and for reasons.
pub(super) const DAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

/// Parses a policy's `(type, rules)` as sent to `POST /v1/policies`.
pub fn parse(type_name: &str, rules: Value, ctx: &ParseContext) -> Result<Rules, PolicyError> {
    let kind = ctx.chain_kind;
    let address = move |s: String| Address::parse(kind, &s).map_err(|e| quoted(&s, e));
    let fields = move || Fields::new(type_name, rules);
    match type_name {
        "SPENDING_LIMIT" => spending_limit(fields()?, ctx).map(|limit| Rules::SpendingLimit(Box::new(limit))),
        "WHITELIST" => Ok(Rules::Whitelist {
            allowed_addresses: only_list(fields()?, "allowed_addresses", address)?,
        }),
        "ALLOWED_TOKENS" => Ok(Rules::AllowedTokens {
            tokens: only_list(fields()?, "tokens", |s: String| {
                if s == "native" {
                    Ok(Asset::Native)
                } else {
                    address(s).map(Asset::Token)
                }
            })?,
        }),
        "CONTRACT_WHITELIST" => Ok(Rules::ContractWhitelist {
            contracts: only_list(fields()?, "contracts", address)?,
        }),
        "METHOD_WHITELIST" => {
            // Selectors are EVM ABI; on Solana the rule could never be enforced.
            if kind != ChainKind::Evm {
                return Err(invalid(format!(
                    "METHOD_WHITELIST applies to EVM wallets only, not {kind}"
                )));
            }
            Ok(Rules::MethodWhitelist {
                methods: only_list(fields()?, "methods", selector)?,
            })
        }
        "APPROVED_SPENDERS" => Ok(Rules::ApprovedSpenders {
            spenders: only_list(fields()?, "spenders", address)?,
        }),
        "APPROVE_AMOUNT_LIMIT" => {
            let mut f = fields()?;
            let max_amount = f.required::<String>("max_amount")?;
            let max_amount = Amount::parse_base_units(&max_amount, 0)
                .map_err(|e| f.error("max_amount", e))?
                .base_units;
            let token = match f.optional::<String>("token")? {
                Some(s) => Some(address(s).map_err(|e| f.error("token", e))?),
                None => None,
            };
            f.finish()?;
            Ok(Rules::ApproveAmountLimit { max_amount, token })
        }
        "ALLOWED_NETWORKS" => Ok(Rules::AllowedNetworks {
            networks: only_list(fields()?, "networks", |s: String| {
                s.parse::<ChainName>().map_err(|e| quoted(&s, e))
            })?,
        }),
        "RATE_LIMIT" => {
            let mut f = fields()?;
            let max_requests = f.required_in("max_requests", 1..=u32::MAX)?;
            let window_seconds = f.required_in("window_seconds", 1..=MAX_RATE_WINDOW_SECONDS)?;
            f.finish()?;
            Ok(Rules::RateLimit {
                max_requests,
                window_seconds,
            })
        }
        "TIME_RESTRICTION" => time_restriction(fields()?),
        other => Err(invalid(format!(
            "unknown type {:?} (expected one of {})",
            sanitize::for_message(other),
            TYPE_NAMES.join(", ")
        ))),
    }
}

impl Limits {
    /// (tier, field name without unit suffix, bound), most permissive first.
    pub(super) fn thresholds(&self) -> [(Tier, &'static str, Option<U256>); 3] {
        [
            (Tier::Instant, "instant_max", self.instant_max),
            (Tier::Notify, "notify_max", self.notify_max),
            (Tier::Delay, "delay_max", self.delay_max),
        ]
    }

    pub(super) fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}

/// A JSON object's fields, taken one by one; what is left at `finish` is unknown. Hand-rolled
/// rather than `#[serde(deny_unknown_fields)]` structs because serde_json's type errors do not
/// say which field they are about ("invalid type: integer `100`, expected a string").
struct Fields<'t> {
    type_name: &'t str,
    map: Map<String, Value>,
    known: Vec<&'static str>,
}

impl<'t> Fields<'t> {
    fn new(type_name: &'t str, rules: Value) -> Result<Self, PolicyError> {
        match rules {
            Value::Object(map) => Ok(Self {
                type_name,
                map,
                known: Vec::new(),
            }),
            _ => Err(invalid(format!("{type_name} rules must be a JSON object"))),
        }
    }

    fn error(&self, field: &str, reason: impl Display) -> PolicyError {
        invalid(format!("{}.{field}: {reason}", self.type_name))
    }

    fn missing(&self, field: &str) -> PolicyError {
        invalid(format!("{}: missing field {field}", self.type_name))
    }

    /// An absent field and `null` are the same.
    fn optional<T: DeserializeOwned>(&mut self, field: &'static str) -> Result<Option<T>, PolicyError> {
        self.known.push(field);
        match self.map.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => serde_json::from_value(value)
                .map(Some)
                .map_err(|e| self.error(field, e)),
        }
    }

    fn required<T: DeserializeOwned>(&mut self, field: &'static str) -> Result<T, PolicyError> {
        self.optional(field)?.ok_or_else(|| self.missing(field))
    }

    fn optional_in<T>(&mut self, field: &'static str, range: RangeInclusive<T>) -> Result<Option<T>, PolicyError>
    where
        T: DeserializeOwned + PartialOrd + Display,
    {
        match self.optional::<T>(field)? {
            Some(n) if !range.contains(&n) => Err(self.error(
                field,
                format_args!("{n} is out of range {}-{}", range.start(), range.end()),
            )),
            n => Ok(n),
        }
    }

    fn required_in<T>(&mut self, field: &'static str, range: RangeInclusive<T>) -> Result<T, PolicyError>
    where
        T: DeserializeOwned + PartialOrd + Display,
    {
        self.optional_in(field, range)?.ok_or_else(|| self.missing(field))
    }

    /// A decimal string in whole units, as base units at `decimals`.
    fn amount(&mut self, field: &'static str, decimals: u8) -> Result<Option<U256>, PolicyError> {
        match self.optional::<String>(field)? {
            Some(s) => Amount::parse_decimal(&s, decimals)
                .map(|amount| Some(amount.base_units))
                .map_err(|e| self.error(field, e)),
            None => Ok(None),
        }
    }

    /// A non-empty list whose items `parse_item` turns into `T` (its error names the item).
    fn list<R, T>(
        &mut self,
        field: &'static str,
        parse_item: impl Fn(R) -> Result<T, String>,
    ) -> Result<Option<Vec<T>>, PolicyError>
    where
        R: DeserializeOwned,
    {
        let Some(items) = self.optional::<Vec<R>>(field)? else {
            return Ok(None);
        };
        if items.is_empty() {
            return Err(self.error(field, "must not be empty"));
        }
        items
            .into_iter()
            .enumerate()
            .map(|(idx, item)| {
                parse_item(item).map_err(|reason| invalid(format!("{}.{field}[{idx}] {reason}", self.type_name)))
            })
            .collect::<Result<Vec<T>, PolicyError>>()
            .map(Some)
    }

    fn finish(self) -> Result<(), PolicyError> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(unknown) => Err(invalid(format!(
                "{}: unknown field {:?} (expected {})",
                self.type_name,
                sanitize::for_message(unknown),
                self.known.join(", ")
            ))),
        }
    }
}

fn invalid(message: String) -> PolicyError {
    PolicyError::Invalid(message)
}

/// An item error: the item as given, then why it is wrong.
fn quoted(item: &str, reason: impl Display) -> String {
    format!("{:?}: {reason}", sanitize::for_message(item))
}

/// A policy type made of one required, non-empty list.
fn only_list<T>(
    mut f: Fields,
    field: &'static str,
    parse_item: impl Fn(String) -> Result<T, String>,
) -> Result<Vec<T>, PolicyError> {
    let items = f.list(field, parse_item)?.ok_or_else(|| f.missing(field))?;
    f.finish()?;
    Ok(items)
}

fn spending_limit(mut f: Fields, ctx: &ParseContext) -> Result<SpendingLimit, PolicyError> {
    let native_decimals = ctx.native_decimals;
    let usd = Limits {
        instant_max: f.amount("instant_max_usd", USD_DECIMALS)?,
        notify_max: f.amount("notify_max_usd", USD_DECIMALS)?,
        delay_max: f.amount("delay_max_usd", USD_DECIMALS)?,
        daily_limit: f.amount("daily_limit_usd", USD_DECIMALS)?,
        monthly_limit: f.amount("monthly_limit_usd", USD_DECIMALS)?,
    };
    let native = Limits {
        instant_max: f.amount("instant_max", native_decimals)?,
        notify_max: f.amount("notify_max", native_decimals)?,
        delay_max: f.amount("delay_max", native_decimals)?,
        daily_limit: f.amount("daily_limit", native_decimals)?,
        monthly_limit: f.amount("monthly_limit", native_decimals)?,
    };
    let amount_fields = f.known.join(", ");
    // A zero wait is no wait and a zero approval window can never be met: both start at 1.
    let delay_seconds = f
        .optional_in("delay_seconds", 1..=MAX_WAIT_SECONDS)?
        .unwrap_or(DEFAULT_DELAY_SECONDS);
    let approval_timeout_seconds = f
        .optional_in("approval_timeout_seconds", 1..=MAX_WAIT_SECONDS)?
        .unwrap_or(DEFAULT_APPROVAL_TIMEOUT_SECONDS);
    f.finish()?;
    if usd.is_empty() && native.is_empty() {
        return Err(invalid(format!(
            "SPENDING_LIMIT needs at least one threshold or limit ({amount_fields})"
        )));
    }
    non_decreasing(&usd, "_usd")?;
    non_decreasing(&native, "")?;
    Ok(SpendingLimit {
        usd,
        native,
        native_decimals,
        delay_seconds,
        approval_timeout_seconds,
    })
}

fn non_decreasing(limits: &Limits, suffix: &str) -> Result<(), PolicyError> {
    let mut prev: Option<(&str, U256)> = None;
    for (_, name, max) in limits.thresholds() {
        let Some(max) = max else { continue };
        if let Some((prev_name, prev_max)) = prev
            && prev_max > max
        {
            return Err(invalid(format!(
                "SPENDING_LIMIT.{prev_name}{suffix} is above {name}{suffix}: thresholds must not decrease (instant ≤ notify ≤ delay)"
            )));
        }
        prev = Some((name, max));
    }
    Ok(())
}

fn time_restriction(mut f: Fields) -> Result<Rules, PolicyError> {
    let hours = f.list("allowed_hours", |hour: u8| {
        if hour <= 23 {
            Ok(hour)
        } else {
            Err(format!("{hour}: not an hour (0-23)"))
        }
    })?;
    let days = f.list("allowed_days", |s: String| {
        DAYS.iter()
            .find(|(name, _)| *name == s)
            .map(|(_, day)| *day)
            .ok_or_else(|| quoted(&s, "expected one of mon, tue, wed, thu, fri, sat, sun"))
    })?;
    let utc_offset_minutes = match f.optional::<String>("timezone")? {
        Some(zone) => utc_offset_minutes(&zone).map_err(|e| f.error("timezone", e))?,
        None => 0,
    };
    f.finish()?;
    if hours.is_none() && days.is_none() {
        return Err(invalid(
            "TIME_RESTRICTION needs allowed_hours, allowed_days or both".to_owned(),
        ));
    }
    Ok(Rules::TimeRestriction {
        allowed_hours: hours.unwrap_or_else(|| (0..=23).collect()),
        allowed_days: days.unwrap_or_else(|| DAYS.iter().map(|(_, day)| *day).collect()),
        utc_offset_minutes,
    })
}

/// "UTC", or a fixed offset "+05:30" / "-08:00" up to ±14:00. No tz database: a named zone
/// with daylight saving would silently shift the window twice a year.
fn utc_offset_minutes(zone: &str) -> Result<i32, String> {
    if zone == "UTC" {
        return Ok(0);
    }
    let wrong = || {
        quoted(
            zone,
            "expected \"UTC\" or an offset like \"+05:30\" or \"-08:00\" (at most ±14:00)",
        )
    };
    let (sign, rest) = if let Some(rest) = zone.strip_prefix('+') {
        (1, rest)
    } else if let Some(rest) = zone.strip_prefix('-') {
        (-1, rest)
    } else {
        return Err(wrong());
    };
    let (hours, minutes) = rest.split_once(':').ok_or_else(wrong)?;
    let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(hours) || !two_digits(minutes) {
        return Err(wrong());
    }
    let hours: i32 = hours.parse().map_err(|_| wrong())?;
    let minutes: i32 = minutes.parse().map_err(|_| wrong())?;
    let total = hours * 60 + minutes;
    if minutes >= 60 || total > MAX_UTC_OFFSET_MINUTES {
        return Err(wrong());
    }
    Ok(sign * total)
}

/// A 4-byte selector, given as "0xa9059cbb" or as a canonical signature
/// "transfer(address,uint256)" whose keccak256 starts with it.
fn selector(s: String) -> Result<[u8; 4], String> {
    let wrong = || {
        quoted(
            &s,
            "expected a selector like \"0xa9059cbb\" or a canonical signature like \"transfer(address,uint256)\" (no spaces)",
        )
    };
    if let Some(hex) = s.strip_prefix("0x") {
        let mut out = [0u8; 4];
        return alloy_primitives::hex::decode_to_slice(hex, &mut out)
            .map(|()| out)
            .map_err(|_| wrong());
    }
    // Validate the shape: a space or a missing parenthesis would hash to a selector that
    // matches nothing, and the operator would never know.
    let (name, params) = s.split_once('(').ok_or_else(wrong)?;
    let name_ok = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$');
    let params_ok = params.ends_with(')')
        && params
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"[](),".contains(&b));
    if !name_ok || !params_ok {
        return Err(wrong());
    }
    let [a, b, c, d, ..] = keccak256(s.as_bytes()).0;
    Ok([a, b, c, d])
}

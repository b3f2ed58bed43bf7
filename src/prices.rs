//! USD prices behind one port: the operator's static table (default, offline) and an
//! optional CoinGecko-compatible HTTP source refreshed in the background. A missing or stale
//! price is `None`, and the policy engine fails closed on it.
//!
//! An HTTP value is accepted only if it is a positive number, inside the operator's
//! `[prices.bounds]` for the asset, and within `max_change_ratio` of the last accepted value;
//! anything else makes the asset's price unknown (USD rules escalate to APPROVAL) until a sane
//! value arrives. Each asset's refusal is reported once, and again only after it cleared.

use crate::config::PricesConfig;
use crate::domain::{Amount, ChainName};
use crate::policy::{Asset, Price};
use alloy_primitives::U256;
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

pub struct Prices {
    static_native: HashMap<String, U256>,
    static_tokens: HashMap<String, U256>,
    http: Option<HttpSource>,
    pub max_age_seconds: u64,
}

struct HttpSource {
    base_url: String,
    ids: HashMap<String, String>,
    refresh: Duration,
    client: reqwest::Client,
    /// Asset key → (micro-USD, as-of unix seconds): accepted values only.
    cache: RwLock<HashMap<String, (U256, i64)>>,
    sanity: Sanity,
    /// Asset key → the last accepted value (the baseline of `max_change_ratio`; it outlives a
    /// refused value, which leaves the cache).
    accepted: std::sync::Mutex<HashMap<String, U256>>,
    /// Assets whose latest value was refused, with the reason: reported once until cleared.
    refused: std::sync::Mutex<HashMap<String, String>>,
}

/// The operator's sanity rules for HTTP prices.
#[derive(Debug, Clone, Default)]
struct Sanity {
    /// Asset key → (floor, ceiling) in micro-USD.
    bounds: HashMap<String, (Option<U256>, Option<U256>)>,
    /// 0: off.
    max_change_ratio: u32,
}

/// A change in whether an asset's HTTP price is accepted, for the audit log and the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriceAlert {
    /// The source's value was refused; the price counts as unknown until a sane one arrives.
    Refused { asset: String, reason: String },
    /// A sane value arrived again after a refusal.
    Restored { asset: String },
}

/// `"<chain>:<address>"` for tokens, the symbol for native assets, in [`key_form`].
pub fn asset_key(chain: &ChainName, asset: &Asset, native_symbol: &str) -> String {
    key_form(&match asset {
        Asset::Native => native_symbol.to_owned(),
        Asset::Token(address) => format!("{chain}:{address}"),
    })
}

/// A price table key as compared: symbols, chain names and EVM hex addresses without case;
/// a Solana (base58) address keeps its case, which is part of the address (two mints can
/// differ only in case).
fn key_form(key: &str) -> String {
    match key.split_once(':') {
        Some((chain, address)) if !address.starts_with("0x") && !address.starts_with("0X") => {
            format!("{}:{address}", chain.to_lowercase())
        }
        _ => key.to_lowercase(),
    }
}

/// A USD decimal as micro-USD; digits past the sixth decimal round up (fail closed).
fn micro_usd(decimal: &str) -> Option<U256> {
    let (int, frac) = decimal.split_once('.').unwrap_or((decimal, ""));
    if frac.len() <= 6 {
        return Amount::parse_decimal(decimal, 6).ok().map(|a| a.base_units);
    }
    let (kept, rest) = frac.split_at(6);
    let base = Amount::parse_decimal(&format!("{int}.{kept}"), 6).ok()?.base_units;
    if !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(if rest.bytes().any(|b| b != b'0') {
        base.checked_add(U256::from(1))?
    } else {
        base
    })
}

impl Prices {
    pub fn new(cfg: &PricesConfig) -> Self {
        let lower = |m: &std::collections::BTreeMap<String, String>| -> HashMap<String, U256> {
            m.iter()
                .filter_map(|(k, v)| Some((key_form(k), micro_usd(v)?)))
                .collect()
        };
        let sanity = Sanity {
            bounds: cfg
                .bounds
                .iter()
                .map(|(k, b)| {
                    let usd = |v: &Option<String>| v.as_deref().and_then(micro_usd);
                    (key_form(k), (usd(&b.min), usd(&b.max)))
                })
                .collect(),
            max_change_ratio: cfg.max_change_ratio,
        };
        let http = cfg.http.as_ref().map(|h| HttpSource {
            base_url: h.base_url.trim_end_matches('/').to_owned(),
            ids: h.ids.iter().map(|(k, v)| (key_form(k), v.clone())).collect(),
            refresh: Duration::from_secs(h.refresh_seconds.max(1)),
            client: crate::tls::client(|| reqwest::Client::builder().timeout(Duration::from_secs(10)))
                .expect("an HTTP client builds with the bundled roots"),
            cache: RwLock::new(HashMap::new()),
            sanity,
            accepted: Default::default(),
            refused: Default::default(),
        });
        Self {
            static_native: lower(&cfg.native),
            static_tokens: lower(&cfg.tokens),
            http,
            max_age_seconds: cfg.max_age_seconds,
        }
    }

    /// The price of `asset`, if any source has one. Freshness is judged by the policy engine.
    pub fn lookup(&self, chain: &ChainName, asset: &Asset, native_symbol: &str, now: i64) -> Option<Price> {
        let key = asset_key(chain, asset, native_symbol);
        let table = match asset {
            Asset::Native => &self.static_native,
            Asset::Token(_) => &self.static_tokens,
        };
        if let Some(p) = table.get(&key) {
            return Some(Price {
                micro_usd_per_unit: *p,
                as_of: now,
            });
        }
        let http = self.http.as_ref()?;
        let (p, as_of) = *http.cache.read().expect("price cache").get(&key)?;
        Some(Price {
            micro_usd_per_unit: p,
            as_of,
        })
    }

    /// Refreshes the HTTP source forever (spawned by the daemon when one is configured).
    /// `report` hears each asset's refusal once, and its recovery.
    pub async fn refresh_forever(&self, report: impl Fn(PriceAlert)) {
        let Some(http) = &self.http else { return };
        loop {
            match http.refresh_once().await {
                Ok(alerts) => alerts.into_iter().for_each(&report),
                Err(err) => {
                    tracing::warn!(error = %err, "price refresh failed; USD rules escalate to APPROVAL once prices go stale")
                }
            }
            tokio::time::sleep(http.refresh).await;
        }
    }
}

impl Sanity {
    /// Why `value` for `asset` must not be used, if it must not.
    fn refuse(&self, asset: &str, value: U256, last: Option<U256>) -> Option<String> {
        let usd = |v: U256| crate::domain::Amount::new(v, 6).map_or_else(|_| v.to_string(), |a| a.to_decimal_string());
        if value.is_zero() {
            return Some("the source answered a price of 0".into());
        }
        if let Some((min, max)) = self.bounds.get(asset) {
            if let Some(min) = min.filter(|m| value < *m) {
                return Some(format!("${} is below the floor ${}", usd(value), usd(min)));
            }
            if let Some(max) = max.filter(|m| value > *m) {
                return Some(format!("${} is above the ceiling ${}", usd(value), usd(max)));
            }
        }
        let ratio = U256::from(self.max_change_ratio);
        if let Some(last) = last
            && self.max_change_ratio > 0
            && (value > last.saturating_mul(ratio) || value.saturating_mul(ratio) < last)
        {
            return Some(format!(
                "${} is more than {}x away from the last accepted ${}",
                usd(value),
                self.max_change_ratio,
                usd(last)
            ));
        }
        None
    }
}

impl HttpSource {
    /// One refresh: accepted values go into the cache; a refused one takes its asset out (an
    /// unknown price), and the returned alerts say which assets changed between the two.
    async fn refresh_once(&self) -> Result<Vec<PriceAlert>, String> {
        if self.ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut ids: Vec<&str> = self.ids.values().map(String::as_str).collect();
        ids.sort_unstable();
        ids.dedup();
        let url = format!("{}/simple/price", self.base_url);
        let res = self
            .client
            .get(&url)
            .query(&[
                ("ids", ids.join(",")),
                ("vs_currencies", "usd".into()),
                ("include_last_updated_at", "true".into()),
            ])
            .send()
            .await
            .map_err(|_| "price source unreachable".to_owned())?;
        if !res.status().is_success() {
            return Err(format!("price source answered {}", res.status()));
        }
        let body: serde_json::Value = res
            .json()
            .await
            .map_err(|_| "price source sent malformed JSON".to_owned())?;
        let now = crate::clock::now();
        let mut cache = self.cache.write().expect("price cache");
        let mut accepted = self.accepted.lock().expect("accepted prices");
        let mut refused = self.refused.lock().expect("refused prices");
        let mut alerts = Vec::new();
        for (key, id) in &self.ids {
            let entry = &body[id];
            // Numbers keep their decimal text (shortest round-trip form); a negative, a
            // string, an exponent or nothing at all is not a price.
            let verdict = match entry["usd"].as_number().map(|n| (n, micro_usd(&n.to_string()))) {
                Some((_, Some(usd))) => match self.sanity.refuse(key, usd, accepted.get(key).copied()) {
                    Some(reason) => Err(reason),
                    None => Ok(usd),
                },
                Some((n, None)) => Err(format!("the source answered {n}, not a positive USD amount")),
                None if entry.is_null() => Err("the source answered no price for it".to_owned()),
                None => Err("the source answered something that is not a number".to_owned()),
            };
            match verdict {
                Ok(usd) => {
                    let as_of = entry["last_updated_at"].as_i64().unwrap_or(now).min(now);
                    cache.insert(key.clone(), (usd, as_of));
                    accepted.insert(key.clone(), usd);
                    if refused.remove(key).is_some() {
                        tracing::info!(asset = %key, "price accepted again");
                        alerts.push(PriceAlert::Restored { asset: key.clone() });
                    }
                }
                Err(reason) => {
                    cache.remove(key);
                    if !refused.contains_key(key) {
                        tracing::warn!(asset = %key, reason = %reason, "price refused; USD rules for it escalate to APPROVAL until a sane price arrives");
                        alerts.push(PriceAlert::Refused {
                            asset: key.clone(),
                            reason: reason.clone(),
                        });
                        refused.insert(key.clone(), reason);
                    }
                }
            }
        }
        Ok(alerts)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::{Address, ChainKind};

    /// A valid Solana address that differs from `address` only in the case of one letter.
    pub(crate) fn case_twin(address: &str) -> String {
        (0..address.len())
            .filter(|&i| address.as_bytes()[i].is_ascii_alphabetic())
            .map(|i| {
                let mut b = address.as_bytes().to_vec();
                b[i] ^= 0x20;
                String::from_utf8(b).unwrap()
            })
            .find(|twin| Address::parse(ChainKind::Solana, twin).is_ok())
            .expect("some one-letter case flip is a valid address")
    }

    #[test]
    fn token_prices_match_evm_hex_in_any_case_and_base58_exactly() {
        let mint = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";
        let twin = case_twin(mint);
        let evm = "0x8464135c8F25Da09e49BC8782676a84730C318bC";
        let cfg = PricesConfig {
            tokens: [
                (format!("Sol:{mint}"), "1".to_owned()),
                (format!("anvil:{}", evm.to_lowercase()), "2".to_owned()),
            ]
            .into(),
            ..PricesConfig::default()
        };
        let prices = Prices::new(&cfg);
        let price = |chain: &str, kind, address: &str| {
            let asset = Asset::Token(Address::parse(kind, address).unwrap());
            prices
                .lookup(&chain.parse().unwrap(), &asset, "X", 0)
                .map(|p| p.micro_usd_per_unit)
        };
        assert_eq!(price("sol", ChainKind::Solana, mint), Some(U256::from(1_000_000)));
        assert_eq!(price("sol", ChainKind::Solana, &twin), None, "{twin} is another mint");
        assert_eq!(price("anvil", ChainKind::Evm, evm), Some(U256::from(2_000_000)));
    }

    fn sanity(bounds: &[(&str, Option<&str>, Option<&str>)], ratio: u32) -> Sanity {
        Sanity {
            bounds: bounds
                .iter()
                .map(|(k, lo, hi)| (k.to_string(), (lo.and_then(micro_usd), hi.and_then(micro_usd))))
                .collect(),
            max_change_ratio: ratio,
        }
    }

    #[test]
    fn zero_out_of_bounds_and_absurd_jumps_are_refused() {
        let usd = |s: &str| micro_usd(s).unwrap();
        let s = sanity(&[("eth", Some("100"), Some("100000"))], 10);
        assert_eq!(s.refuse("eth", usd("2000"), None), None);
        assert!(s.refuse("eth", U256::ZERO, None).unwrap().contains("0"));
        assert!(
            s.refuse("eth", usd("99.99"), None)
                .unwrap()
                .contains("below the floor $100")
        );
        assert!(
            s.refuse("eth", usd("100000.01"), None)
                .unwrap()
                .contains("above the ceiling")
        );
        // Within 10x of the last accepted value either way, and not beyond.
        assert_eq!(s.refuse("eth", usd("20000"), Some(usd("2000"))), None);
        assert_eq!(s.refuse("eth", usd("200"), Some(usd("2000"))), None);
        assert!(
            s.refuse("eth", usd("20000.01"), Some(usd("2000")))
                .unwrap()
                .contains("10x")
        );
        assert!(s.refuse("eth", usd("199.99"), Some(usd("2000"))).is_some());
        // Another asset has no bounds; ratio 0 is off.
        let off = sanity(&[], 0);
        assert_eq!(off.refuse("sol", usd("1000000"), Some(usd("1"))), None);
    }

    #[test]
    fn usd_decimals_become_micro_usd_rounding_up() {
        assert_eq!(micro_usd("3000"), Some(U256::from(3_000_000_000u64)));
        assert_eq!(micro_usd("0.999999"), Some(U256::from(999_999u64)));
        assert_eq!(micro_usd("0.9999991"), Some(U256::from(1_000_000u64)));
        assert_eq!(micro_usd("1.0000000"), Some(U256::from(1_000_000u64)));
        assert_eq!(micro_usd("-1"), None);
        assert_eq!(micro_usd("1e5"), None);
    }
}

//! USD prices behind one port: the operator's static table (default, offline) and an
//! optional CoinGecko-compatible HTTP source refreshed in the background. A missing or stale
//! price is `None`, and the policy engine fails closed on it.

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
    /// Asset key → (micro-USD, as-of unix seconds).
    cache: RwLock<HashMap<String, (U256, i64)>>,
}

/// `"<chain>:<address>"` for tokens, the symbol for native assets.
pub fn asset_key(chain: &ChainName, asset: &Asset, native_symbol: &str) -> String {
    match asset {
        Asset::Native => native_symbol.to_owned(),
        Asset::Token(address) => format!("{chain}:{}", address.to_string().to_lowercase()),
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
                .filter_map(|(k, v)| Some((k.to_lowercase(), micro_usd(v)?)))
                .collect()
        };
        let http = cfg.http.as_ref().map(|h| HttpSource {
            base_url: h.base_url.trim_end_matches('/').to_owned(),
            ids: h.ids.iter().map(|(k, v)| (k.to_lowercase(), v.clone())).collect(),
            refresh: Duration::from_secs(h.refresh_seconds.max(1)),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTP client"),
            cache: RwLock::new(HashMap::new()),
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
        let key = asset_key(chain, asset, native_symbol).to_lowercase();
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
    pub async fn refresh_forever(&self) {
        let Some(http) = &self.http else { return };
        loop {
            if let Err(err) = http.refresh_once().await {
                tracing::warn!(error = %err, "price refresh failed; USD rules escalate to APPROVAL once prices go stale");
            }
            tokio::time::sleep(http.refresh).await;
        }
    }
}

impl HttpSource {
    async fn refresh_once(&self) -> Result<(), String> {
        if self.ids.is_empty() {
            return Ok(());
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
        let now = crate::service::now();
        let mut cache = self.cache.write().expect("price cache");
        for (key, id) in &self.ids {
            let entry = &body[id];
            // Numbers keep their decimal text (shortest round-trip form); anything else is ignored.
            let Some(usd) = entry["usd"].as_number().and_then(|n| micro_usd(&n.to_string())) else {
                continue;
            };
            let as_of = entry["last_updated_at"].as_i64().unwrap_or(now).min(now);
            cache.insert(key.clone(), (usd, as_of));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

//! The daily summary: once a day, per wallet, what moved, what is pending and what budget is
//! left, sent to the notification senders that opted in (`daily_summary = true`). Read-only:
//! it counts the store's transfer records and budget counters, and changes nothing.

use super::transfers::Spent;
use super::{Result, Service, now};
use crate::domain::{Amount, TxId, TxState, WalletId};
use crate::notify::{Event, Moved, Summary};
use crate::policy::Rules;
use crate::store::keys;
use crate::store::records::{TxRecord, WalletRecord};
use alloy_primitives::U256;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Records read per store page while walking a wallet's day (newest first).
const PAGE: usize = 500;
const DAY: i64 = 86_400;

impl Service {
    /// One wallet's summary for transfers requested within `[from, to)`; pending transfers
    /// and budgets as they are now.
    pub fn daily_summary(&self, wallet_id: WalletId, from: i64, to: i64) -> Result<Summary> {
        let wallet = self.wallet(wallet_id)?;
        let mut by_status: BTreeMap<String, u32> = BTreeMap::new();
        let mut moved: BTreeMap<(String, String), (U256, u8, u32)> = BTreeMap::new();
        let mut before: Option<TxId> = None;
        'pages: loop {
            let page = self.store.tx_page(wallet_id, None, before, PAGE)?;
            for tx in &page.items {
                if tx.created_at < from {
                    // Newest first: everything further is older still.
                    break 'pages;
                }
                if tx.created_at >= to {
                    continue;
                }
                *by_status.entry(tx.status.to_string()).or_default() += 1;
                if tx.status == TxState::Confirmed {
                    let asset = tx.token.clone().unwrap_or_else(|| "native".into());
                    let entry = moved
                        .entry((asset, tx.symbol.clone()))
                        .or_insert((U256::ZERO, tx.decimals, 0));
                    entry.0 = entry.0.saturating_add(tx.base_units);
                    entry.2 += 1;
                }
            }
            match page.next_before {
                Some(next) => before = Some(next),
                None => break,
            }
        }
        let mut pending: Vec<TxId> = self
            .active_txs()?
            .into_iter()
            .filter(|t: &TxRecord| {
                t.wallet_id == wallet_id && matches!(t.status, TxState::Delayed | TxState::PendingApproval)
            })
            .map(|t| t.id)
            .collect();
        pending.sort();
        let moved = moved
            .into_iter()
            .map(|((asset, symbol), (base_units, decimals, count))| Moved {
                symbol: crate::domain::sanitize::chain_string(&symbol, 16),
                asset,
                amount: Amount::new(base_units, decimals)
                    .map_or_else(|_| format!("{base_units} base units"), |a| a.to_decimal_string()),
                amount_base_units: base_units.to_string(),
                count,
            })
            .collect();
        Ok(Summary {
            wallet_id,
            wallet_name: crate::domain::sanitize::chain_string(&wallet.name, 64),
            chain: wallet.chain.to_string(),
            from,
            to,
            frozen: wallet.frozen.is_some(),
            by_status,
            moved,
            pending,
            budget_left: self.budget_left(&wallet, to)?,
        })
    }

    /// The remaining daily and monthly SPENDING_LIMIT budgets at `at`, in words.
    fn budget_left(&self, wallet: &WalletRecord, at: i64) -> Result<Vec<String>> {
        let spent: Spent = self.spent(wallet.id, at)?;
        let config = self.adapter(wallet)?.config();
        let (symbol, decimals) = (config.native_symbol.clone(), config.native_decimals);
        let mut out = Vec::new();
        for policy in self.policies(wallet)? {
            let Rules::SpendingLimit(limit) = &policy.rules else {
                continue;
            };
            let periods = [
                ("daily", &spent.today, limit.usd.daily_limit, limit.native.daily_limit),
                (
                    "monthly",
                    &spent.month,
                    limit.usd.monthly_limit,
                    limit.native.monthly_limit,
                ),
            ];
            for (period, used, usd, native) in periods {
                if let Some(cap) = usd {
                    out.push(format!(
                        "{period}: {} USD of {} USD",
                        words(cap.saturating_sub(used.micro_usd), crate::policy::rules::USD_DECIMALS),
                        words(cap, crate::policy::rules::USD_DECIMALS)
                    ));
                }
                if let Some(cap) = native {
                    out.push(format!(
                        "{period}: {} {symbol} of {} {symbol}",
                        words(cap.saturating_sub(used.native), decimals),
                        words(cap, decimals)
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Every wallet's summary of the 24 hours before `to`.
    pub fn daily_summaries(&self, to: i64) -> Result<Vec<Summary>> {
        let wallets: Vec<WalletRecord> = self.store.list(keys::WALLETS)?;
        wallets.iter().map(|w| self.daily_summary(w.id, to - DAY, to)).collect()
    }

    /// Sends every wallet's summary now (to the senders that opted in).
    pub fn send_daily_summaries(&self) -> Result<usize> {
        let summaries = self.daily_summaries(now())?;
        let sent = summaries.len();
        for summary in summaries {
            self.notify(Event::DailySummary { summary });
        }
        Ok(sent)
    }

    /// The daily summary's loop (spawned by the server): at `[notifications]
    /// daily_summary_hour_utc` each day. Returns at once when no sender wants it.
    pub async fn run_daily_summary(self: Arc<Self>) {
        if !self.notifier.wants_daily_summary() {
            return;
        }
        let hour = i64::from(self.config.notifications.daily_summary_hour_utc);
        loop {
            let wait = seconds_until_hour(now(), hour);
            tokio::time::sleep(Duration::from_secs(u64::try_from(wait).unwrap_or(1).max(1))).await;
            let service = self.clone();
            match tokio::task::spawn_blocking(move || service.send_daily_summaries()).await {
                Ok(Ok(n)) => tracing::info!(wallets = n, "daily summary queued"),
                Ok(Err(err)) => tracing::warn!(error = %err, "daily summary failed"),
                Err(err) => tracing::error!(error = %err, "daily summary task failed"),
            }
            // Past the hour, so the next wait is a full day.
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
    }
}

/// Seconds from `now` to the next `hour`:00:00 UTC (a full day when it is that instant).
fn seconds_until_hour(now: i64, hour: i64) -> i64 {
    let target = hour * 3600;
    let into_day = now.rem_euclid(DAY);
    let wait = (target - into_day).rem_euclid(DAY);
    if wait == 0 { DAY } else { wait }
}

fn words(v: U256, decimals: u8) -> String {
    Amount::new(v, decimals).map_or_else(|_| v.to_string(), |a| a.to_decimal_string())
}

#[cfg(test)]
mod tests {
    use super::seconds_until_hour;

    #[test]
    fn the_next_summary_hour() {
        // 2023-11-14 22:13:20 UTC.
        let now = 1_700_000_000;
        assert_eq!(seconds_until_hour(now, 23), 2800);
        assert_eq!(seconds_until_hour(now, 8), 2800 + 9 * 3600);
        assert_eq!(seconds_until_hour(now - now.rem_euclid(86_400), 0), 86_400);
    }
}

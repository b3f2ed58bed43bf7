//! Ledger: the budgets. What a decision reserves in which day and month, the counters the
//! policy reads, every change to them (under the wallet's `decide` lock), and the fee's true-up
//! from the receipt.

use super::*;

impl Service {
    /// What `decision` reserves, in the periods of `now`, with the fee's share of it.
    pub(super) fn reservation(
        &self,
        wallet: &WalletRecord,
        decision: &Decision,
        max_fee: Option<U256>,
        now: i64,
    ) -> Result<Reservation> {
        let (day, month) = period_keys(now);
        let fee_micro_usd = match max_fee {
            Some(fee) if decision.spend.micro_usd.is_some() => {
                let config = self.adapter(wallet)?.config();
                let price = self
                    .prices
                    .lookup(&wallet.chain, &Asset::Native, &config.native_symbol, now);
                let amount = Amount {
                    base_units: fee,
                    decimals: config.native_decimals,
                };
                price.and_then(|p| policy::usd_value(&amount, &p))
            }
            _ => None,
        };
        Ok(Reservation {
            day,
            month,
            micro_usd: decision.spend.micro_usd,
            native: decision.spend.native,
            fee_native: max_fee,
            fee_micro_usd,
            held: decision.outcome != Outcome::Denied,
        })
    }

    pub(in crate::service) fn spent(&self, wallet: WalletId, now: i64) -> Result<Spent> {
        let (day, month) = period_keys(now);
        let period = |key: &str| -> Result<PeriodSpend> {
            let budget: Option<BudgetRecord> = self.store.get(&keys::budget(wallet, key))?;
            Ok(budget.as_ref().map(Into::into).unwrap_or_default())
        };
        Ok(Spent {
            today: period(&day)?,
            month: period(&month)?,
        })
    }

    /// Applies reservations to their day and month budgets (added or taken off), each
    /// budget record read once, so several changes to one period in one batch add up.
    /// Callers hold the wallet's `decide` lock.
    pub(in crate::service) fn change_budgets(
        &self,
        batch: &mut Batch,
        wallet: WalletId,
        changes: &[(&Reservation, Change)],
    ) -> Result<()> {
        let mut budgets: std::collections::BTreeMap<String, BudgetRecord> = Default::default();
        for (r, change) in changes {
            let (usd, native) = (r.micro_usd.unwrap_or_default(), r.native.unwrap_or_default());
            for period in [&r.day, &r.month] {
                let key = keys::budget(wallet, period);
                if !budgets.contains_key(&key) {
                    let current = self.store.get(&key)?.unwrap_or_default();
                    budgets.insert(key.clone(), current);
                }
                let budget = budgets.get_mut(&key).expect("inserted above");
                match change {
                    Change::Add => {
                        budget.micro_usd = budget.micro_usd.saturating_add(usd);
                        budget.native = budget.native.saturating_add(native);
                    }
                    Change::Release => {
                        budget.micro_usd = budget.micro_usd.saturating_sub(usd);
                        budget.native = budget.native.saturating_sub(native);
                    }
                }
            }
        }
        for (key, budget) in budgets {
            batch.put(key, &budget);
        }
        Ok(())
    }

    /// Trues the reservation up to the receipt: the unused part of the maximum fee goes back
    /// to the budgets; on a revert the value goes back too, and only the fee paid stays
    /// counted (it was spent). Part of the same batch as the final state.
    pub(super) fn settle_fee(&self, batch: &mut Batch, tx: &mut TxRecord, paid: U256, success: bool) -> Result<()> {
        if tx.fee_paid.is_some() {
            return Ok(());
        }
        tx.fee_paid = Some(paid);
        let r = &tx.reserved;
        let Some(max_fee) = r.fee_native.filter(|f| !f.is_zero()) else {
            return Ok(());
        };
        if !r.held {
            return Ok(());
        }
        let paid = paid.min(max_fee);
        // USD of the fee, in proportion; rounded so that what stays counted is never less.
        let paid_usd = r.fee_micro_usd.map(|u| (u * paid).div_ceil(max_fee));
        let (keep_native, keep_usd) = if success {
            let value = r.native.unwrap_or_default().saturating_sub(max_fee);
            let value_usd = r
                .micro_usd
                .map(|u| u.saturating_sub(r.fee_micro_usd.unwrap_or_default()));
            (
                value.saturating_add(paid),
                value_usd.map(|v| v.saturating_add(paid_usd.unwrap_or_default())),
            )
        } else {
            (paid, paid_usd.or(r.micro_usd.map(|_| U256::ZERO)))
        };
        let release = Reservation {
            micro_usd: r.micro_usd.map(|u| u.saturating_sub(keep_usd.unwrap_or_default())),
            native: r.native.map(|n| n.saturating_sub(keep_native)),
            ..r.clone()
        };
        self.change_budgets(batch, tx.wallet_id, &[(&release, Change::Release)])?;
        tx.reserved.native = tx.reserved.native.map(|_| keep_native);
        tx.reserved.micro_usd = keep_usd;
        tx.reserved.fee_native = Some(paid);
        tx.reserved.fee_micro_usd = paid_usd;
        if !success {
            // What stays counted is the fee alone, for good: nothing more to release.
            tx.reserved.held = false;
        }
        Ok(())
    }

    /// What `amount` of the native asset is worth in micro-USD now, when priced.
    pub(super) fn native_usd(&self, wallet: &WalletRecord, amount: U256) -> Option<U256> {
        let config = self.adapter(wallet).ok()?.config();
        let price = self
            .prices
            .lookup(&wallet.chain, &Asset::Native, &config.native_symbol, now())?;
        policy::usd_value(
            &Amount {
                base_units: amount,
                decimals: config.native_decimals,
            },
            &price,
        )
    }
}

pub(super) fn period_keys(now: i64) -> (String, String) {
    let t = time::OffsetDateTime::from_unix_timestamp(now).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let (y, m, d) = (t.year(), u8::from(t.month()), t.day());
    (format!("{y:04}-{m:02}-{d:02}"), format!("{y:04}-{m:02}"))
}

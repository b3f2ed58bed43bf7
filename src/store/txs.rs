//! Transfer history reads that stay bounded however long the history grows.
//!
//! Two orders serve every read: `tx/<wallet>/<id>` itself — ids are UUIDv7 (a 48-bit
//! millisecond timestamp first, hex, fixed width), so key order is creation order and the
//! primary records double as the (wallet, time) index — and `txstatus/<wallet>/<STATUS>/<id>`,
//! the (wallet, status) index, written in the same batch as the record. Listings are reverse
//! range scans with a limit; counters count keys in a range and stop at what the caller needs.

use super::records::{Indexed, TxRecord};
use super::{Batch, Order, Store, StoreError, decode, keys};
use crate::domain::{MAX_PAGE, Page, TxId, TxState, WalletId};

/// Format version of the (wallet, status) index, stored under [`keys::TX_INDEX`].
const TX_INDEX_VERSION: u32 = 1;

impl Batch {
    /// Keeps the (wallet, status) index in step with a transfer saved in this batch: its
    /// entry under `status`, none under any other. `from` is what the saved copy knows of its
    /// entry: the one key to delete when known, every other state's key when not.
    pub fn index_tx_status(&mut self, wallet: WalletId, id: TxId, from: Indexed, status: TxState) -> &mut Self {
        match from {
            Indexed::Absent => {}
            Indexed::Under(old) if old == status => {}
            Indexed::Under(old) => {
                self.delete(keys::tx_status(wallet, old.as_str(), id));
            }
            Indexed::Unknown => {
                for other in TxState::ALL.into_iter().filter(|s| *s != status) {
                    self.delete(keys::tx_status(wallet, other.as_str(), id));
                }
            }
        }
        self.put(keys::tx_status(wallet, status.as_str(), id), &())
    }

    /// Puts `tx` with its (wallet, status) index entry, and notes on the copy where it is now
    /// indexed (so a later save of the same copy deletes exactly that key).
    pub fn put_tx(&mut self, tx: &mut TxRecord) -> &mut Self {
        self.put(keys::tx(tx.wallet_id, tx.id), &*tx)
            .index_tx_status(tx.wallet_id, tx.id, tx.indexed, tx.status);
        tx.indexed = Indexed::Under(tx.status);
        self
    }

    /// Records that the (wallet, status) index is complete (a new store has nothing to index).
    pub fn mark_tx_index_built(&mut self) -> &mut Self {
        self.put(keys::TX_INDEX, &serde_json::json!({ "v": TX_INDEX_VERSION }))
    }
}

/// The smallest UUIDv7 text of an id created at `unix_ms` or later (all random bits zero).
fn time_floor(unix_ms: i64) -> String {
    let ms = u64::try_from(unix_ms).unwrap_or(0).min((1 << 48) - 1);
    uuid::Uuid::from_u128(u128::from(ms) << 80).hyphenated().to_string()
}

/// The first key after every key that starts with `prefix` (prefixes here end in `/`).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

fn id_of(key: &[u8]) -> Option<TxId> {
    std::str::from_utf8(key).ok()?.rsplit('/').next()?.parse().ok()
}

impl Store {
    /// One page of a wallet's transfers, newest first: those older than `before` (a cursor
    /// from the previous page), optionally in one `status` only, at most `limit` (1..=500).
    /// Reads `limit + 1` index keys and `limit` records, whatever the history holds.
    pub fn tx_page(
        &self,
        wallet: WalletId,
        status: Option<TxState>,
        before: Option<TxId>,
        limit: usize,
    ) -> Result<Page<TxRecord, TxId>, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let prefix = match status {
            Some(s) => keys::wallet_status_txs(wallet, s.as_str()),
            None => keys::wallet_txs(wallet),
        };
        let end = match before {
            Some(id) => format!("{prefix}{id}").into_bytes(),
            None => prefix_end(&prefix),
        };
        let rows = self
            .kv
            .scan_range(prefix.as_bytes(), &end, Order::Descending, limit + 1)?;
        let more = rows.len() > limit;
        let mut items = Vec::with_capacity(limit.min(rows.len()));
        for (key, bytes) in rows.into_iter().take(limit) {
            let record = match status {
                None => decode(&String::from_utf8_lossy(&key), &bytes)?,
                Some(_) => match id_of(&key) {
                    Some(id) => match self.get::<TxRecord>(&keys::tx(wallet, id))? {
                        Some(record) => record,
                        None => {
                            tracing::warn!(tx = %id, "status index names a transfer that is not stored");
                            continue;
                        }
                    },
                    None => continue,
                },
            };
            items.push(record);
        }
        let next_before = if more { items.last().map(|t| t.id) } else { None };
        Ok(Page { items, next_before })
    }

    /// How many of the wallet's transfers were created at `since_ms` (Unix milliseconds) or
    /// later, counting no further than `at_most`: a range scan over the window only.
    pub fn count_txs_since(&self, wallet: WalletId, since_ms: i64, at_most: usize) -> Result<usize, StoreError> {
        let prefix = keys::wallet_txs(wallet);
        let start = format!("{prefix}{}", time_floor(since_ms));
        self.kv.count_range(start.as_bytes(), &prefix_end(&prefix), at_most)
    }

    /// How many of the wallet's transfers are in one of `states`, counting no further than
    /// `at_most`.
    pub fn count_txs_in(&self, wallet: WalletId, states: &[TxState], at_most: usize) -> Result<usize, StoreError> {
        let mut n = 0;
        for state in states {
            if n >= at_most {
                break;
            }
            let prefix = keys::wallet_status_txs(wallet, state.as_str());
            n += self
                .kv
                .count_range(prefix.as_bytes(), &prefix_end(&prefix), at_most - n)?;
        }
        Ok(n)
    }

    /// The wallet's oldest transfers in `status` created before `before_ms`, oldest first, at
    /// most `limit`.
    pub fn oldest_txs_in(
        &self,
        wallet: WalletId,
        status: TxState,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<TxRecord>, StoreError> {
        let prefix = keys::wallet_status_txs(wallet, status.as_str());
        let end = format!("{prefix}{}", time_floor(before_ms));
        let rows = self
            .kv
            .scan_range(prefix.as_bytes(), end.as_bytes(), Order::Ascending, limit)?;
        let mut out = Vec::with_capacity(rows.len());
        for (key, _) in rows {
            if let Some(id) = id_of(&key)
                && let Some(record) = self.get::<TxRecord>(&keys::tx(wallet, id))?
            {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Adds to `batch` the deletion of the wallet's transfers in `state` that were created and
    /// last updated before `cutoff` (Unix seconds): each record with its status-index entry,
    /// its active entry and the idempotency key that names it. Examines at most `limit`,
    /// oldest first. Returns (examined, deleted). Meant for final states only (retention).
    pub fn stage_prune(
        &self,
        batch: &mut Batch,
        wallet: WalletId,
        state: TxState,
        cutoff: i64,
        limit: usize,
    ) -> Result<(usize, usize), StoreError> {
        let old = self.oldest_txs_in(wallet, state, cutoff.saturating_mul(1000), limit)?;
        let examined = old.len();
        let mut deleted = 0;
        // Finished after the cutoff (e.g. cancelled yesterday after a long wait): kept.
        for tx in old.into_iter().filter(|t| t.updated_at < cutoff) {
            let idem = keys::idempotency(wallet, &keys::idempotency_hash(&tx.idempotency_key));
            if self
                .get::<super::records::IdempotencyRecord>(&idem)?
                .is_some_and(|r| r.tx_id == tx.id)
            {
                batch.delete(idem);
            }
            batch
                .delete(keys::tx(wallet, tx.id))
                .delete(keys::tx_status(wallet, tx.status.as_str(), tx.id))
                .delete(keys::active_tx(tx.id));
            deleted += 1;
        }
        Ok((examined, deleted))
    }

    /// Builds the (wallet, status) index of a store written before it existed, in one commit
    /// with its audit entry. Runs once (the next call finds the marker): `None` then, else the
    /// number of transfers indexed.
    pub fn build_tx_index(&self) -> Result<Option<usize>, StoreError> {
        if self.kv.get(keys::TX_INDEX.as_bytes())?.is_some() {
            return Ok(None);
        }
        let txs: Vec<TxRecord> = self.list(keys::TXS)?;
        let mut batch = Batch::new();
        for tx in &txs {
            batch.put(keys::tx_status(tx.wallet_id, tx.status.as_str(), tx.id), &());
        }
        batch.mark_tx_index_built().audit(
            super::AuditEvent::new("tx_index_built", "system").detail(serde_json::json!({ "transfers": txs.len() })),
        );
        self.commit(batch)?;
        Ok(Some(txs.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_floor_sorts_below_every_id_of_its_millisecond_and_above_older_ones() {
        let id = TxId::new().to_string();
        let ms = i64::from_str_radix(&id.replace('-', "")[..12], 16).unwrap();
        assert!(time_floor(ms) <= id);
        assert!(time_floor(ms + 1) > id);
        assert!(time_floor(ms - 1) < id);
        assert_eq!(time_floor(-5), "00000000-0000-0000-0000-000000000000");
    }
}

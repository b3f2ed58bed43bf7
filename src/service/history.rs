//! A wallet's transfer history without reading all of it: cursor pages, the per-wallet cap on
//! transfers that are not final, and the retention of final DENIED and CANCELLED records.
//! Every read here is a bounded range scan over the store's transfer indexes (`store::txs`).

use super::{Result, Service, ServiceError, SessionAuth, now};
use crate::domain::{Page, Transfer, TxId, TxState, WalletId};
use crate::store::records::WalletRecord;
use crate::store::{AuditEvent, Batch, keys};
use std::sync::Arc;
use std::time::Duration;

/// Not final: what `[transfers] max_open_per_wallet` counts.
const OPEN: [TxState; 5] = [
    TxState::Requested,
    TxState::Delayed,
    TxState::PendingApproval,
    TxState::Signed,
    TxState::Submitted,
];

/// Final records `[transfers] retain_denied_days` prunes: nothing moved for them.
const PRUNABLE: [TxState; 2] = [TxState::Denied, TxState::Cancelled];

/// Records one sweep pass examines at most (one commit, one audit entry); passes repeat while
/// they delete a full load.
const SWEEP_BATCH: usize = 5_000;

/// How often the retention sweep runs (the first run is at start).
const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

impl Service {
    /// The session's own transfers, newest first, one page at a time: those older than
    /// `before` (the previous page's cursor), optionally in one state, at most `limit`
    /// (1..=500).
    pub fn list_transactions(
        &self,
        auth: &SessionAuth,
        status: Option<TxState>,
        before: Option<TxId>,
        limit: usize,
    ) -> Result<Page<Transfer, TxId>> {
        let kind = self.wallet(auth.wallet_id)?.kind;
        let page = self.store.tx_page(auth.wallet_id, status, before, limit)?;
        Ok(page.try_map(|tx| tx.transfer(kind))?)
    }

    /// Refuses a new transfer while its wallet already has `[transfers] max_open_per_wallet`
    /// that are not final. Runs under the wallet's `decide` lock, before anything is stored;
    /// counts at most `cap` index keys.
    pub(super) fn refuse_over_open_cap(&self, wallet: WalletId) -> Result<()> {
        let cap = usize::try_from(self.config.transfers.max_open_per_wallet).unwrap_or(usize::MAX);
        if self.store.count_txs_in(wallet, &OPEN, cap)? < cap {
            return Ok(());
        }
        tracing::warn!(wallet = %wallet, cap, "transfer refused: the wallet has too many open transfers");
        Err(ServiceError::TooManyOpen(format!(
            "this wallet already has {cap} transfers that are not final (queued, awaiting approval or in flight; \
             [transfers] max_open_per_wallet); nothing was stored: retry once some have finished, or cancel queued ones"
        )))
    }

    /// Deletes final DENIED and CANCELLED transfers created and last updated more than
    /// `[transfers] retain_denied_days` ago, with their index entries and idempotency keys (a
    /// retry of such a key later starts a new request). Each pass is one commit with one
    /// summary audit entry. Returns how many were deleted; 0 when retention is off (0 days).
    pub fn sweep_retention(&self) -> Result<usize> {
        let days = self.config.transfers.retain_denied_days;
        if days == 0 {
            return Ok(0);
        }
        let cutoff = now().saturating_sub(i64::from(days).saturating_mul(86_400));
        let wallets: Vec<WalletRecord> = self.store.list(keys::WALLETS)?;
        let mut total = 0;
        loop {
            let mut batch = Batch::new();
            let (mut room, mut deleted, mut touched) = (SWEEP_BATCH, [0usize; 2], 0usize);
            for wallet in &wallets {
                let mut in_wallet = 0;
                for (i, state) in PRUNABLE.into_iter().enumerate() {
                    if room == 0 {
                        break;
                    }
                    let (examined, n) = self.store.stage_prune(&mut batch, wallet.id, state, cutoff, room)?;
                    room -= examined;
                    deleted[i] += n;
                    in_wallet += n;
                }
                touched += usize::from(in_wallet > 0);
            }
            let pass = deleted[0] + deleted[1];
            if pass == 0 {
                return Ok(total);
            }
            batch.audit(
                AuditEvent::new("tx_retention_sweep", "system").detail(serde_json::json!({
                    "deleted": pass,
                    "denied": deleted[0],
                    "cancelled": deleted[1],
                    "wallets": touched,
                    "retainDeniedDays": days,
                    "before": cutoff,
                })),
            );
            self.store.commit(batch)?;
            tracing::info!(
                deleted = pass,
                retain_denied_days = days,
                "pruned old denied and cancelled transfers"
            );
            total += pass;
            if room > 0 {
                return Ok(total);
            }
        }
    }

    /// The retention sweep's loop (spawned by the server; returns at once when retention is off).
    pub async fn run_retention(self: Arc<Self>) {
        if self.config.transfers.retain_denied_days == 0 {
            return;
        }
        loop {
            let service = self.clone();
            match tokio::task::spawn_blocking(move || service.sweep_retention()).await {
                Ok(Ok(_)) => {}
                Ok(Err(err)) => tracing::warn!(error = %err, "retention sweep failed; will retry"),
                Err(err) => tracing::error!(error = %err, "retention sweep task failed"),
            }
            tokio::time::sleep(SWEEP_INTERVAL).await;
        }
    }
}

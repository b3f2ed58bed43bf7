//! Reconcile: the workers (due DELAYs, expired approvals, crash recovery of decided and signed
//! transfers, per wallet), and the stops of unsigned transfers (cancel, reject, revoke, kill
//! switch).

use super::*;

impl Service {
    /// Cancels the session's own DELAY or APPROVAL transfer that has not been signed.
    pub async fn cancel_transaction(&self, auth: &SessionAuth, id: TxId) -> Result<Transfer> {
        let tx = self
            .stop_unsigned(
                auth.wallet_id,
                id,
                &Stop::Cancel(format!("session:{}", auth.session_id)),
            )
            .await?;
        self.transfer(&tx)
    }

    /// Stops one transfer that is not signed yet (cancel or owner reject), under the
    /// wallet's `decide` lock: final state, reservation released, audited, one commit (with
    /// the owner's GRACE → LOCKED when the owner signed it).
    pub(in crate::service) async fn stop_unsigned(
        &self,
        wallet_id: WalletId,
        id: TxId,
        stop: &Stop,
    ) -> Result<TxRecord> {
        let locks = self.wallet_locks(wallet_id);
        let _decide = locks.decide.lock().await;
        let mut tx = self.tx(wallet_id, id)?;
        let (state, kind, error, actor) = match stop {
            Stop::Cancel(actor) => (TxState::Cancelled, "tx_cancelled", None, actor),
            Stop::OwnerCancel(actor) => (
                TxState::Cancelled,
                "tx_cancelled",
                Some("cancelled by the owner".to_owned()),
                actor,
            ),
            Stop::OwnerReject(actor) => (
                TxState::Rejected,
                "tx_rejected",
                Some("rejected by the owner".to_owned()),
                actor,
            ),
        };
        let open = match stop {
            Stop::OwnerReject(_) => tx.status == TxState::PendingApproval,
            _ => tx.status.is_cancellable(),
        };
        if !open {
            return Err(ServiceError::Conflict(format!(
                "transaction is {} and can no longer be {}",
                tx.status,
                if state == TxState::Rejected {
                    "rejected"
                } else {
                    "cancelled"
                }
            )));
        }
        let mut batch = Batch::new();
        let event = AuditEvent::new(kind, actor.as_str())
            .wallet(tx.wallet_id)
            .detail(serde_json::json!({ "tx": tx.id.to_string() }));
        self.finish_with_audit(&mut batch, &mut tx, state, error, event)?;
        match stop {
            Stop::Cancel(_) => self.store.commit(batch)?,
            Stop::OwnerCancel(_) | Stop::OwnerReject(_) => {
                self.commit_owner_change(wallet_id, actor, |_| Ok(()), batch)?;
            }
        }
        Ok(tx)
    }

    /// Adds to `batch` the cancellation of every transfer in `txs` that is not signed yet
    /// (REQUESTED, DELAYED, PENDING_APPROVAL). The caller holds the wallet's `decide` lock; a
    /// REQUESTED transfer whose executor is inside an RPC call sees CANCELLED when it comes
    /// back to sign. Returns how many were cancelled.
    pub(in crate::service) fn cancel_unsigned(
        &self,
        batch: &mut Batch,
        txs: Vec<TxRecord>,
        actor: &str,
        reason: &str,
    ) -> Result<usize> {
        let mut cancelled = 0;
        for mut tx in txs {
            if !matches!(
                tx.status,
                TxState::Requested | TxState::Delayed | TxState::PendingApproval
            ) {
                continue;
            }
            let event = AuditEvent::new("tx_cancelled", actor)
                .wallet(tx.wallet_id)
                .detail(serde_json::json!({ "tx": tx.id.to_string(), "reason": reason }));
            let error = Some(format!("cancelled: {reason}"));
            self.finish_with_audit(batch, &mut tx, TxState::Cancelled, error, event)?;
            cancelled += 1;
        }
        Ok(cancelled)
    }

    /// One pass over every active transfer: execute due DELAYs, expire approvals, reconcile
    /// and confirm what was signed. Each wallet is worked on by its own task, and a wallet
    /// whose previous task is still running (a slow RPC) is skipped, so one wallet never
    /// stalls another. Run at start (before serving, waited for) and then periodically.
    pub async fn tick(self: &Arc<Self>) {
        let active = match self.active_txs() {
            Ok(a) => a,
            Err(err) => {
                tracing::error!(error = %err, "cannot list active transactions");
                return;
            }
        };
        let mut by_wallet: std::collections::BTreeMap<WalletId, Vec<TxRecord>> = Default::default();
        for tx in active {
            by_wallet.entry(tx.wallet_id).or_default().push(tx);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (wallet, mut txs) in by_wallet {
            let locks = self.wallet_locks(wallet);
            if locks.worker_busy.swap(true, std::sync::atomic::Ordering::AcqRel) {
                continue;
            }
            let busy = WorkerBusy(locks);
            // Signed bytes reach the chain before anything new is signed.
            txs.sort_by_key(|t| !matches!(t.status, TxState::Signed | TxState::Submitted));
            let service = self.clone();
            tasks.spawn(async move {
                let _busy = busy;
                service.tick_wallet(txs).await;
            });
        }
        while tasks.join_next().await.is_some() {}
    }

    pub(super) async fn tick_wallet(&self, txs: Vec<TxRecord>) {
        let now = now();
        for tx in txs {
            let (id, wallet) = (tx.id, tx.wallet_id);
            let result = match tx.status {
                // A request is waiting on it and looks itself.
                TxState::Signed | TxState::Submitted if self.wallet_locks(wallet).is_waited_on(id) => Ok(()),
                TxState::Delayed if tx.executes_at.is_some_and(|t| t <= now) => {
                    self.execute(id, wallet, true).await.map(|_| ())
                }
                TxState::PendingApproval if tx.expires_at.is_some_and(|t| t <= now) => {
                    self.expire_if_due(wallet, id).await.map(|_| ())
                }
                // A crash between decision and signing: the decision stands, execute it.
                TxState::Requested => self.execute(id, wallet, false).await.map(|_| ()),
                TxState::Signed | TxState::Submitted => self.confirm_once(wallet, id).await.map(|_| ()),
                _ => Ok(()),
            };
            if let Err(err) = result {
                tracing::warn!(tx = %id, error = %err, "transaction worker step failed; will retry");
            }
        }
    }

    /// Every transfer that is not final, via the `active/` index.
    pub(in crate::service) fn active_txs(&self) -> Result<Vec<TxRecord>> {
        let index: Vec<(String, String)> = self.store.list_with_keys(keys::ACTIVE_TXS)?;
        let mut txs = Vec::with_capacity(index.len());
        for (key, wallet) in index {
            let id = key.rsplit('/').next().and_then(|s| s.parse::<TxId>().ok());
            if let (Some(id), Ok(wallet)) = (id, wallet.parse::<WalletId>()) {
                txs.push(self.tx(wallet, id)?);
            }
        }
        Ok(txs)
    }

    /// EXPIRES a PENDING_APPROVAL transfer whose approval window has closed; `None` when it
    /// is not (or no longer) waiting or still inside its window.
    pub(in crate::service) async fn expire_if_due(&self, wallet: WalletId, id: TxId) -> Result<Option<TxRecord>> {
        let locks = self.wallet_locks(wallet);
        let _decide = locks.decide.lock().await;
        let tx = self.tx(wallet, id)?;
        self.expire_locked(&tx)
    }

    /// [`Service::expire_if_due`] for a caller that holds the `decide` lock.
    pub(super) fn expire_locked(&self, tx: &TxRecord) -> Result<Option<TxRecord>> {
        if tx.status != TxState::PendingApproval || tx.expires_at.is_none_or(|t| t > now()) {
            return Ok(None);
        }
        let mut tx = tx.clone();
        let mut batch = Batch::new();
        let event = AuditEvent::new("tx_expired", "system")
            .wallet(tx.wallet_id)
            .detail(serde_json::json!({ "tx": tx.id.to_string() }));
        let error = Some("the owner did not approve in time".into());
        self.finish_with_audit(&mut batch, &mut tx, TxState::Expired, error, event)?;
        self.store.commit(batch)?;
        Ok(Some(tx))
    }

    /// Keeps the HTTP price source fresh, when one is configured. A refused price (zero, out
    /// of the operator's bounds, an absurd jump) is audited once per asset, and again when a
    /// sane price is back.
    pub async fn refresh_prices(&self) {
        self.prices
            .refresh_forever(|alert| {
                let event = match alert {
                    crate::prices::PriceAlert::Refused { asset, reason } => AuditEvent::new("price_refused", "system")
                        .detail(serde_json::json!({ "asset": asset, "reason": reason })),
                    crate::prices::PriceAlert::Restored { asset } => {
                        AuditEvent::new("price_restored", "system").detail(serde_json::json!({ "asset": asset }))
                    }
                };
                if let Err(err) = self.store.audit(event) {
                    tracing::error!(error = %err, "cannot audit a price alert");
                }
            })
            .await;
    }

    /// The workers' loop (spawned by the server after the first, blocking `tick`).
    pub async fn run_workers(self: Arc<Self>) {
        let interval = Duration::from_millis(self.config.transfers.worker_interval_ms);
        loop {
            tokio::time::sleep(interval).await;
            // Not awaited: a pass stuck on one wallet's RPC does not hold up the next pass,
            // which skips that wallet and serves the others.
            let service = self.clone();
            tokio::spawn(async move { service.tick().await });
        }
    }
}

/// Clears [`WalletLocks::worker_busy`] when the wallet's worker task ends, even by panic.
pub(super) struct WorkerBusy(Arc<WalletLocks>);

impl Drop for WorkerBusy {
    fn drop(&mut self) {
        self.0.worker_busy.store(false, std::sync::atomic::Ordering::Release);
    }
}

//! Confirm: one look at the chain for a signed transfer — re-broadcast the stored bytes,
//! record confirmations, finish on success or revert, replace when stuck, and fail only when
//! its sequence was provably used by another transaction (or expired) past the grace time.

use super::*;

/// The pause before a waiting transfer's next look, after `pause` and `waited` in all: doubling
/// from 5 ms up to 250 ms, then a quarter of the wait so far, at most 2 s. A receipt is seen at
/// most a quarter of its wait after it came (on a fast chain within milliseconds), and a 12 s
/// block costs about 20 looks rather than 50 (each a status call, and an EVM re-send).
pub(super) fn next_pause(pause: Duration, waited: Duration) -> Duration {
    (pause * 2).min((waited / 4).clamp(Duration::from_millis(250), Duration::from_secs(2)))
}

impl Service {
    /// Waits (bounded by `transfers.confirm_wait_seconds`) for a submitted transfer to confirm.
    pub(super) async fn wait_confirmed(&self, mut tx: TxRecord) -> TxRecord {
        let started = tokio::time::Instant::now();
        let deadline = started + Duration::from_secs(self.config.transfers.confirm_wait_seconds);
        let _waited_on = self.wallet_locks(tx.wallet_id).wait_on(tx.id);
        // Receipts on fast chains (anvil) are there within milliseconds: poll from 5 ms up.
        let mut pause = Duration::from_millis(5);
        while matches!(tx.status, TxState::Submitted | TxState::Signed) && tokio::time::Instant::now() < deadline {
            match self.confirm_once(tx.wallet_id, tx.id).await {
                Ok(t) => tx = t,
                Err(err) => tracing::debug!(tx = %tx.id, error = %err, "confirmation check failed"),
            }
            if matches!(tx.status, TxState::Submitted | TxState::Signed) {
                tokio::time::sleep(pause).await;
                pause = next_pause(pause, started.elapsed());
            }
        }
        tx
    }

    /// One look at the chain for a SIGNED or SUBMITTED transfer: re-broadcast the stored bytes
    /// if the node does not know them, record confirmations, finish on success or revert.
    pub(super) async fn confirm_once(&self, wallet_id: WalletId, id: TxId) -> Result<TxRecord> {
        let wallet = self.wallet(wallet_id)?;
        let adapter = self.adapter(&wallet)?;
        let tx = self.tx(wallet_id, id)?;
        if tx.hash.is_none() || !matches!(tx.status, TxState::Signed | TxState::Submitted) {
            return Ok(tx);
        }
        match mined_version(adapter, &tx).await? {
            Some((hash, mined)) => self.record_mined(adapter, wallet_id, id, hash, mined).await,
            None => self.still_pending(adapter, &wallet, id).await,
        }
    }

    /// No signed version is mined yet: re-broadcast the current bytes if the node does not
    /// know them, and replace them when they are stuck.
    pub(super) async fn still_pending(&self, adapter: &Adapter, wallet: &WalletRecord, id: TxId) -> Result<TxRecord> {
        let wallet_id = wallet.id;
        // Re-broadcasting races the executor's own broadcast: only with the nonce lock.
        let locks = self.wallet_locks(wallet_id);
        let Ok(mut next_nonce) = locks.nonce.try_lock() else {
            return self.tx(wallet_id, id);
        };
        let mut tx = self.tx(wallet_id, id)?;
        if !matches!(tx.status, TxState::Signed | TxState::Submitted) {
            return Ok(tx);
        }
        // The node accepted it, and it is bound to a blockhash: it is re-sent to stay alive,
        // at most every RESEND_EVERY. (A SIGNED transfer is always sent; an account-nonce one
        // too: the node's refusal of the same bytes is how a superseded nonce shows.)
        if tx.status == TxState::Submitted && tx.sequence().is_some_and(|s| !s.replaceable()) && !locks.resend_due(id) {
            return Ok(tx);
        }
        let signed = stored_signed(&tx)?;
        match broadcast_checked(adapter, &signed).await {
            Ok(()) if tx.status == TxState::Signed => {
                let (fresh, submitted) = self.mark_submitted(&locks, wallet_id, id, &signed.hash, true).await?;
                if !submitted {
                    return Ok(fresh);
                }
                tx = fresh;
            }
            Ok(()) => {}
            Err(ChainError::Rejected { reason, .. } | ChainError::NotAccepted { reason, .. }) => {
                let tx = self
                    .refused_rebroadcast(adapter, wallet, tx, &locks, &mut next_nonce, reason)
                    .await?;
                return self.replace_if_stuck(adapter, wallet, tx, &locks).await;
            }
            Err(err) => return Err(err.into()),
        }
        self.replace_if_stuck(adapter, wallet, tx, &locks).await
    }

    /// Marks a SIGNED transfer SUBMITTED after a broadcast the node accepted, on a fresh record
    /// under the `decide` lock: a concurrent confirmation may have finished it while the answer
    /// was on its way, and a stale copy must never overwrite it. Returns the fresh record and
    /// whether it was marked (`false`: it had moved on, nothing written).
    pub(super) async fn mark_submitted(
        &self,
        locks: &WalletLocks,
        wallet_id: WalletId,
        id: TxId,
        hash: &str,
        rebroadcast: bool,
    ) -> Result<(TxRecord, bool)> {
        let _decide = locks.decide.lock().await;
        let mut tx = self.tx(wallet_id, id)?;
        if tx.status != TxState::Signed {
            return Ok((tx, false));
        }
        tx.status = TxState::Submitted;
        tx.updated_at = now();
        let mut detail = serde_json::json!({ "tx": id.to_string(), "hash": hash });
        if rebroadcast {
            detail["rebroadcast"] = true.into();
        }
        let mut batch = Batch::new();
        let event = AuditEvent::new("tx_broadcast", "system")
            .wallet(wallet_id)
            .detail(detail);
        self.save_tx(&mut batch, &mut tx, event);
        self.store.commit(batch)?;
        Ok((tx, true))
    }

    /// Replaces a signed transfer that waited past the chain's `replace_after_seconds`, or
    /// whose max fee is below the next block's base fee (it cannot be mined now). The caller
    /// holds the nonce lock.
    pub(super) async fn replace_if_stuck(
        &self,
        adapter: &Adapter,
        wallet: &WalletRecord,
        tx: TxRecord,
        locks: &WalletLocks,
    ) -> Result<TxRecord> {
        let Some(replace_after) = adapter
            .config()
            .replace_after
            .filter(|_| tx.sequence().is_some_and(|s| s.replaceable()))
        else {
            return Ok(tx);
        };
        let Some(fee) = tx
            .fee
            .filter(|_| matches!(tx.status, TxState::Signed | TxState::Submitted))
        else {
            return Ok(tx);
        };
        let waited = now().saturating_sub(tx.signed_at.unwrap_or(tx.updated_at));
        let overdue = u64::try_from(waited).unwrap_or(0) >= replace_after.as_secs();
        // Looking at the fee market costs a call: only once it has waited a few seconds.
        if !overdue && waited < 5 {
            return Ok(tx);
        }
        let market = adapter.fee_market().await?;
        if !overdue && market.next_base_fee <= fee.max_fee_per_gas {
            return Ok(tx);
        }
        // A version may have been mined since this pass looked (a refused re-broadcast comes
        // here too): replacing it would only sign a transaction the node must refuse.
        if mined_version(adapter, &tx).await?.is_some() {
            return Ok(tx);
        }
        self.replace(adapter, wallet, tx.id, Replacement::SpeedUp, market, locks)
            .await
    }

    /// Records the mined version `hash` of a transfer: confirmations; when final, its state
    /// (CONFIRMED; FAILED when it reverted or when the operator's on-chain cancel is what
    /// was mined), the fee trued up, the budget settled.
    pub(super) async fn record_mined(
        &self,
        adapter: &Adapter,
        wallet_id: WalletId,
        id: TxId,
        hash: String,
        mined: Mined,
    ) -> Result<TxRecord> {
        let done = mined.done(adapter);
        if done {
            crate::faults::hit("before_confirm");
        }
        let locks = self.wallet_locks(wallet_id);
        let _decide = locks.decide.lock().await;
        // Fresh under the lock: the request and the worker may both be confirming it.
        let mut tx = self.tx(wallet_id, id)?;
        if !matches!(tx.status, TxState::Signed | TxState::Submitted) {
            return Ok(tx);
        }
        let mut batch = Batch::new();
        if tx.status == TxState::Signed {
            // Seen mined before its broadcast was recorded (the executor's own first look, or
            // stored bytes that reached the chain before a crash): the broadcast is audited here.
            batch.audit(
                AuditEvent::new("tx_broadcast", "system")
                    .wallet(wallet_id)
                    .detail(serde_json::json!({ "tx": id.to_string(), "hash": hash, "seenMined": true })),
            );
        }
        let cancelled = tx.cancel_hash.as_deref() == Some(hash.as_str());
        keep_every_version(&mut tx, &hash);
        tx.block = Some(mined.block);
        tx.confirmations = mined.confirmations;
        tx.updated_at = now();
        if !done {
            tx.status = TxState::Submitted;
            batch.put_tx(&mut tx);
        } else {
            let sent = mined.success && !cancelled;
            let (state, kind, error) = match (mined.success, cancelled) {
                (true, false) => (TxState::Confirmed, "tx_confirmed", None),
                (_, true) => (
                    TxState::Failed,
                    "tx_cancelled_onchain",
                    Some("cancelled on chain by the operator: its nonce was used by a zero-value transfer".to_owned()),
                ),
                (false, false) => (TxState::Failed, "tx_reverted", Some("reverted on chain".to_owned())),
            };
            if let Some(paid) = mined.fee_paid {
                self.settle_fee(&mut batch, &mut tx, paid, sent)?;
            }
            let detail = serde_json::json!({
                "tx": id.to_string(),
                "hash": hash,
                "block": mined.block,
                "feePaid": mined.fee_paid.map(|f| f.to_string()),
            });
            let event = AuditEvent::new(kind, "system").wallet(wallet_id).detail(detail);
            self.finish_with_audit(&mut batch, &mut tx, state, error, event)?;
        }
        // Staged, not waited for: what it records is on chain, and a crash before the next
        // flush leaves the transfer SIGNED or SUBMITTED, which the reconciler confirms again
        // from the same receipt (a held reservation is never less than what it settles to).
        self.store.stage(batch)?;
        if done {
            crate::faults::hit("after_confirm_staged");
        }
        Ok(tx)
    }

    /// The node refused our own signed bytes. That alone proves nothing: "nonce too low" is
    /// also what a node says about a transaction it mined but whose receipt it does not serve
    /// yet. A transfer fails only once the account's mined nonce has passed it and no receipt
    /// for its hash appeared during the chain's `dropped_after_seconds`; while its nonce is
    /// still open it keeps waiting (it may yet be mined), holding its reservation.
    pub(super) async fn refused_rebroadcast(
        &self,
        adapter: &Adapter,
        wallet: &WalletRecord,
        tx: TxRecord,
        locks: &WalletLocks,
        next_nonce: &mut Option<Sequence>,
        reason: String,
    ) -> Result<TxRecord> {
        let (Some(sequence), Some(hash)) = (tx.sequence(), tx.hash.clone()) else {
            return Ok(tx);
        };
        let state = adapter.sequence_status(&wallet.address()?, sequence).await?;
        // Any of its signed versions (a replacement, or the one it replaced) may be the one.
        if mined_version(adapter, &tx).await?.is_some() {
            return Ok(tx);
        }
        let nonce = tx.nonce;
        if !matches!(state, TxStatus::Superseded | TxStatus::Expired) {
            if locks.refused.lock().expect("refused").insert(tx.id) {
                tracing::warn!(tx = %tx.id, ?nonce, reason = %reason, "re-broadcast refused while its nonce is open; the transfer keeps waiting (it may still be mined)");
            }
            return Ok(tx);
        }
        // Fresh under the lock: a concurrent confirmation may have seen the receipt meanwhile.
        let _decide = locks.decide.lock().await;
        let mut tx = self.tx(tx.wallet_id, tx.id)?;
        if !matches!(tx.status, TxState::Signed | TxState::Submitted) {
            return Ok(tx);
        }
        let now = now();
        let Some(since) = tx.nonce_passed_at else {
            tx.nonce_passed_at = Some(now);
            tx.updated_at = now;
            let mut batch = Batch::new();
            let detail = serde_json::json!({ "tx": tx.id.to_string(), "hash": hash, "nonce": nonce, "reason": reason });
            let event = AuditEvent::new("tx_nonce_passed", "system")
                .wallet(tx.wallet_id)
                .detail(detail);
            self.save_tx(&mut batch, &mut tx, event);
            self.store.commit(batch)?;
            return Ok(tx);
        };
        let grace = i64::try_from(adapter.config().dropped_after.as_secs()).unwrap_or(i64::MAX);
        if now.saturating_sub(since) < grace {
            return Ok(tx);
        }
        *next_nonce = None;
        if state == TxStatus::Expired {
            // Its sequence expired unused and none of its signatures landed (so none can any
            // more): the same approved transfer is signed again at a fresh sequence, under
            // the same record.
            return self.resign_expired(adapter, wallet, tx, reason).await;
        }
        let error = match (state, nonce) {
            (TxStatus::Superseded, Some(nonce)) => {
                format!("dropped: nonce {nonce} was used by another transaction ({reason})")
            }
            _ => format!("dropped: its blockhash expired before it was included ({reason})"),
        };
        self.fail_locked(tx, error)
    }
}

/// A mined version's receipt.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mined {
    success: bool,
    block: u64,
    confirmations: u64,
    fee_paid: Option<U256>,
}

impl Mined {
    /// Final: reverted, or confirmed as deep as the chain's configuration asks.
    pub(super) fn done(&self, adapter: &Adapter) -> bool {
        !self.success || self.confirmations >= adapter.config().confirmations
    }
}

/// Makes `mined` the transfer's `hash`, keeping every other signed version in
/// `replaced_hashes`: when an earlier version is the one mined (a replacement signed while
/// the node had not yet served its receipt, or one it refused), the later ones stay on record.
fn keep_every_version(tx: &mut TxRecord, mined: &str) {
    if let Some(current) = tx.hash.take().filter(|h| h != mined)
        && !tx.replaced_hashes.contains(&current)
    {
        tx.replaced_hashes.push(current);
    }
    tx.replaced_hashes.retain(|h| h != mined);
    tx.hash = Some(mined.to_owned());
}

/// The signed version of `tx` that is mined, if any: the current one or one it replaced
/// (they share a nonce, so at most one can be).
pub(super) async fn mined_version(adapter: &Adapter, tx: &TxRecord) -> Result<Option<(String, Mined)>> {
    let current = tx.hash.iter();
    for hash in current.chain(tx.replaced_hashes.iter().rev()) {
        if let TxStatus::Mined {
            success,
            block,
            confirmations,
            fee_paid,
        } = adapter.status(hash).await?
        {
            return Ok(Some((
                hash.clone(),
                Mined {
                    success,
                    block,
                    confirmations,
                    fee_paid,
                },
            )));
        }
    }
    Ok(None)
}

/// The stored signed bytes of `tx` (the outbox).
pub(super) fn stored_signed(tx: &TxRecord) -> Result<crate::chains::SignedTx> {
    Ok(crate::chains::SignedTx {
        raw: hex::decode(tx.raw.as_deref().unwrap_or_default())
            .map_err(|_| invalid("stored transaction bytes are corrupt"))?,
        hash: tx.hash.clone().unwrap_or_default(),
    })
}

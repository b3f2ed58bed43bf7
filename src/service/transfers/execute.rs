//! Execute: an approved transfer signed at the sequence its adapter chose, under the wallet's
//! nonce lock, recorded (the outbox) before it is broadcast; failures; replacements of a stuck
//! signed transfer (automatic, or the operator's speed-up and on-chain cancel).

use super::confirm::mined_version;
use super::*;

impl Service {
    /// The seam for owner approvals: a PENDING_APPROVAL transfer, approved by a verified
    /// owner signature, is re-checked (denials still win) and executed with a fresh nonce.
    pub async fn execute_approved(&self, wallet: WalletId, id: TxId) -> Result<Transfer> {
        let tx = self.tx(wallet, id)?;
        if tx.status != TxState::PendingApproval {
            return Err(ServiceError::Conflict(format!(
                "transaction is {}, not PENDING_APPROVAL",
                tx.status
            )));
        }
        let tx = self.execute(id, wallet, true).await?;
        self.transfer(&self.wait_confirmed(tx).await)
    }

    /// Signs and broadcasts `id` under the wallet's nonce lock. `recheck` re-runs policy first
    /// (DELAY when due, APPROVAL when approved).
    pub(super) async fn execute(&self, id: TxId, wallet_id: WalletId, recheck: bool) -> Result<TxRecord> {
        let locks = self.wallet_locks(wallet_id);
        let mut next_nonce = locks.nonce.lock().await;
        let wallet = self.wallet(wallet_id)?;
        // The kill switch cancels what is not signed while holding this lock; this is the
        // last word for anything that slipped past it.
        refuse_frozen(&wallet)?;
        let adapter = self.adapter(&wallet)?;
        let mut tx = self.tx(wallet_id, id)?;
        let executable = matches!(tx.status, TxState::Requested)
            || (recheck && matches!(tx.status, TxState::Delayed | TxState::PendingApproval));
        if !executable {
            return Ok(tx);
        }
        if recheck {
            // Fees as of now: the re-check counts them, and the transfer is signed with them.
            let intent = self.intent_of(&wallet, &tx)?;
            let quote = match self.quote_fee(&wallet, &intent).await {
                Ok(q) => q,
                Err(ChainError::Rejected { reason, .. }) => {
                    return self.fail(tx, &locks, format!("rejected by the chain: {reason}")).await;
                }
                Err(err) => return Err(err.into()),
            };
            if let Some(stopped) = self.recheck(&wallet, &mut tx, &locks, quote).await? {
                return Ok(stopped);
            }
        }
        let fee = match tx.fee {
            Some(fee) => FeeQuote::from(fee),
            // Decided before fees were recorded (an older version, then a crash): quote now.
            None => match self.quote_fee(&wallet, &self.intent_of(&wallet, &tx)?).await {
                Ok(q) => q,
                Err(err) => return self.fail(tx, &locks, err.to_string()).await,
            },
        };
        let approved = approved(&wallet, &tx, fee)?;
        if next_nonce.is_none() {
            // Never below a sequence we already signed for and may still broadcast: after a
            // crash the chain does not know those bytes yet, and the cache is empty.
            *next_nonce = self.outstanding_floor(wallet_id)?;
        }
        let prepared = async {
            // The adapter knows the asset it signs for (Solana: the mint's program and
            // decimals), also for a transfer resumed after a restart.
            if let Some(token) = approved.token() {
                adapter.asset_meta(Some(token)).await?;
            }
            let sequence = adapter.sequence(approved.from(), *next_nonce).await?;
            Ok::<_, ChainError>((sequence, adapter.prepare(&TransferPlan::new(&approved, sequence))?))
        }
        .await;
        let (sequence, unsigned) = match prepared {
            Ok(p) => p,
            Err(err) => return self.fail(tx, &locks, err.to_string()).await,
        };
        let signed = {
            // The last word before signing, under the `decide` lock that the kill switch,
            // cancel and revoke commit under: whatever they committed while this transfer
            // was inside an RPC call wins, and nothing is signed after a freeze commits.
            let _decide = locks.decide.lock().await;
            let current = self.tx(wallet_id, id)?;
            if current.status != TxState::Requested {
                return Ok(current);
            }
            refuse_frozen(&self.wallet(wallet_id)?)?;
            tx = current;
            crate::faults::hit("before_sign");
            // Decrypt → sign → zeroize in one synchronous call; no key crosses an await.
            let signature = self.keys().sign(key_ref(&wallet)?, unsigned.payload())?;
            let signed = adapter.finalize(unsigned, &signature)?;
            tx.status = TxState::Signed;
            tx.set_sequence(sequence);
            tx.raw = Some(hex::encode(&signed.raw));
            tx.hash = Some(signed.hash.clone());
            tx.updated_at = now();
            tx.signed_at = Some(tx.updated_at);
            let mut batch = Batch::new();
            let event = AuditEvent::new("tx_signed", "system")
                .wallet(wallet_id)
                .detail(serde_json::json!({ "tx": id.to_string(), "nonce": tx.nonce, "hash": signed.hash }));
            self.save_tx(&mut batch, &mut tx, event);
            // The outbox: durable (and audited) before the signature leaves the process.
            self.store.commit(batch)?;
            signed
        };
        crate::faults::hit("after_sign");
        let broadcast = broadcast_checked(adapter, &signed).await;
        if broadcast.is_ok() {
            crate::faults::hit("after_broadcast");
        }
        match broadcast {
            Ok(()) => {
                if !sequence.replaceable() {
                    locks.note_sent(id);
                }
                *next_nonce = sequence.next();
                // The wallet's next transfer may take its sequence now: what follows is this
                // transfer's own bookkeeping (under the `decide` lock), not the sequence's.
                drop(next_nonce);
                // A fast chain (or a dev node) has the receipt already: the broadcast and the
                // confirmation are recorded in one commit.
                if let Ok(Some((hash, mined))) = mined_version(adapter, &tx).await
                    && mined.done(adapter)
                {
                    let tx = self.record_mined(adapter, wallet_id, id, hash, mined).await?;
                    self.notify_transfer(&wallet, &tx);
                    return Ok(tx);
                }
                let (tx, submitted) = self.mark_submitted(&locks, wallet_id, id, &signed.hash, false).await?;
                if submitted {
                    self.notify_transfer(&wallet, &tx);
                }
                Ok(tx)
            }
            Err(ChainError::Rejected { reason, .. }) => {
                // A definitive refusal: it can never be mined as signed; the sequence is
                // still free, the reservation goes back.
                *next_nonce = None;
                self.fail(tx, &locks, format!("rejected by the chain: {reason}")).await
            }
            Err(err) => {
                // Unknown outcome: it stays SIGNED; the worker re-broadcasts the same bytes.
                *next_nonce = sequence.next();
                tracing::warn!(tx = %id, error = %err, "broadcast outcome unknown; will retry the same signed transaction");
                Ok(tx)
            }
        }
    }

    /// Re-signs an expired, never-landed Solana transfer with a fresh blockhash: the old
    /// signatures go to `replaced_hashes` (status checks keep looking at them), the new bytes
    /// are stored (the outbox) before the worker broadcasts them. The fee quote the policy
    /// counted stays. The caller holds the nonce and `decide` locks.
    pub(super) async fn resign_expired(
        &self,
        adapter: &Adapter,
        wallet: &WalletRecord,
        mut tx: TxRecord,
        reason: String,
    ) -> Result<TxRecord> {
        let (Some(fee), Some(old_hash)) = (tx.fee, tx.hash.clone()) else {
            return Ok(tx);
        };
        if refuse_frozen(&self.wallet(wallet.id)?).is_err() {
            return self.fail_locked(
                tx,
                format!("dropped: its blockhash expired before it was included ({reason}); not re-signed: the wallet is frozen"),
            );
        }
        let approved = approved(wallet, &tx, FeeQuote::from(fee))?;
        if let Some(token) = approved.token() {
            adapter.asset_meta(Some(token)).await?;
        }
        let old = tx.sequence();
        let sequence = adapter.sequence(approved.from(), None).await?;
        if Some(sequence) == old {
            // The node still serves the expired blockhash as its latest: try again later.
            return Ok(tx);
        }
        let unsigned = adapter.prepare(&TransferPlan::new(&approved, sequence))?;
        let signature = self.keys().sign(key_ref(wallet)?, unsigned.payload())?;
        let signed = adapter.finalize(unsigned, &signature)?;
        if signed.hash == old_hash || tx.replaced_hashes.contains(&signed.hash) {
            return Ok(tx);
        }
        crate::faults::hit("resign_signed");
        tx.replaced_hashes.push(old_hash.clone());
        tx.status = TxState::Signed;
        tx.set_sequence(sequence);
        tx.raw = Some(hex::encode(&signed.raw));
        tx.hash = Some(signed.hash.clone());
        tx.nonce_passed_at = None;
        tx.updated_at = now();
        tx.signed_at = Some(tx.updated_at);
        let mut batch = Batch::new();
        let event = AuditEvent::new("tx_resigned", "system")
            .wallet(tx.wallet_id)
            .detail(serde_json::json!({
                "tx": tx.id.to_string(),
                "hash": signed.hash,
                "replaces": old_hash,
                "reason": format!("its blockhash expired before it was included ({reason})"),
            }));
        self.save_tx(&mut batch, &mut tx, event);
        self.store.commit(batch)?;
        Ok(tx)
    }

    /// The floor for the wallet's next sequence from its own records: after every sequence
    /// it signed and may still broadcast (SIGNED or SUBMITTED). Read through the status index
    /// when the cache is empty (at start, after a refusal), not on every send.
    pub(super) fn outstanding_floor(&self, wallet: WalletId) -> Result<Option<Sequence>> {
        let mut floor = None;
        for state in [TxState::Signed, TxState::Submitted] {
            for tx in self.store.oldest_txs_in(wallet, state, i64::MAX, usize::MAX)? {
                floor = Sequence::later(floor, tx.sequence().and_then(|s| s.next()));
            }
        }
        Ok(floor)
    }

    /// Fails `tx` unless it moved on meanwhile (e.g. the kill switch cancelled it while its
    /// executor waited on the chain): the fresh record under the lock decides.
    pub(super) async fn fail(&self, tx: TxRecord, locks: &WalletLocks, error: String) -> Result<TxRecord> {
        let _decide = locks.decide.lock().await;
        let current = self.tx(tx.wallet_id, tx.id)?;
        if current.status != tx.status {
            return Ok(current);
        }
        self.fail_locked(current, error)
    }

    /// [`Service::fail`] for a caller that holds the wallet's `decide` lock.
    pub(super) fn fail_locked(&self, mut tx: TxRecord, error: String) -> Result<TxRecord> {
        let mut batch = Batch::new();
        let event = AuditEvent::new("tx_failed", "system")
            .wallet(tx.wallet_id)
            .detail(serde_json::json!({ "tx": tx.id.to_string(), "error": error }));
        self.finish_with_audit(&mut batch, &mut tx, TxState::Failed, Some(error), event)?;
        self.store.commit(batch)?;
        Ok(tx)
    }

    /// Signs a replacement of a signed, unmined transfer at the same nonce with fees at
    /// least 10% higher on both (EIP-1559 replacement), within the chain's caps: the same
    /// transfer (`SpeedUp`), or a zero-value transfer to the wallet itself (`CancelOnChain`).
    /// Recorded with the earlier hashes (the outbox) before broadcast; the fee increase
    /// counts against the budgets. The caller holds the nonce lock.
    pub(super) async fn replace(
        &self,
        adapter: &Adapter,
        wallet: &WalletRecord,
        id: TxId,
        kind: Replacement,
        market: crate::chains::FeeMarket,
        locks: &WalletLocks,
    ) -> Result<TxRecord> {
        let signed = {
            let _decide = locks.decide.lock().await;
            let mut tx = self.tx(wallet.id, id)?;
            let (Some(old), Some(sequence), Some(old_hash)) = (tx.fee, tx.sequence(), tx.hash.clone()) else {
                return Ok(tx);
            };
            refuse_replacement(&tx, adapter)?;
            if !matches!(tx.status, TxState::Signed | TxState::Submitted) {
                return Ok(tx);
            }
            let bump = |x: u128| x.saturating_add(x / 10).saturating_add(1);
            let priority = bump(old.max_priority_fee_per_gas).max(market.max_priority_fee_per_gas);
            let fee = FeeQuote {
                gas_limit: match kind {
                    Replacement::SpeedUp => old.gas_limit,
                    Replacement::CancelOnChain => 21_000,
                },
                max_fee_per_gas: bump(old.max_fee_per_gas)
                    .max(market.max_fee_per_gas)
                    .max(market.next_base_fee.saturating_add(priority)),
                max_priority_fee_per_gas: priority,
                extra_fee: 0,
            };
            let same = approved(wallet, &tx, FeeQuote::from(old))?;
            let plan = TransferPlan::new(
                &match kind {
                    Replacement::SpeedUp => same.with_fee(fee),
                    Replacement::CancelOnChain => same.cancel_onchain(fee),
                },
                sequence,
            );
            // Above the caps: not signed; it keeps waiting (the operator can raise the caps).
            let unsigned = match adapter.prepare(&plan) {
                Ok(u) => u,
                Err(err) => {
                    if locks.refused.lock().expect("refused").insert(id) {
                        tracing::warn!(tx = %id, error = %err, "a stuck transfer cannot be replaced within the fee caps");
                    }
                    return Err(err.into());
                }
            };
            refuse_frozen(&self.wallet(wallet.id)?).or_else(|e| match kind {
                // Cancelling on chain stops money; a freeze never blocks it.
                Replacement::CancelOnChain => Ok(()),
                Replacement::SpeedUp => Err(e),
            })?;
            let signature = self.keys().sign(key_ref(wallet)?, unsigned.payload())?;
            let signed = adapter.finalize(unsigned, &signature)?;
            crate::faults::hit("replacement_signed");
            let mut batch = Batch::new();
            // The higher fee counts like any fee.
            let extra = fee.max_fee().saturating_sub(tx.reserved.fee_native.unwrap_or_default());
            if tx.reserved.held && !extra.is_zero() {
                let extra_usd = tx.reserved.micro_usd.and_then(|_| self.native_usd(wallet, extra));
                let more = Reservation {
                    micro_usd: extra_usd,
                    native: Some(extra),
                    ..tx.reserved.clone()
                };
                self.change_budgets(&mut batch, wallet.id, &[(&more, Change::Add)])?;
                tx.reserved.native = Some(tx.reserved.native.unwrap_or_default().saturating_add(extra));
                tx.reserved.micro_usd = tx
                    .reserved
                    .micro_usd
                    .map(|u| u.saturating_add(extra_usd.unwrap_or_default()));
                tx.reserved.fee_native = Some(fee.max_fee());
                tx.reserved.fee_micro_usd = tx
                    .reserved
                    .fee_micro_usd
                    .map(|u| u.saturating_add(extra_usd.unwrap_or_default()));
            }
            tx.replaced_hashes.push(old_hash.clone());
            tx.hash = Some(signed.hash.clone());
            tx.raw = Some(hex::encode(&signed.raw));
            tx.fee = Some(FeeRecord::from(fee));
            tx.signed_at = Some(now());
            tx.updated_at = now();
            if kind == Replacement::CancelOnChain {
                tx.cancel_hash = Some(signed.hash.clone());
            }
            let event = AuditEvent::new(
                match kind {
                    Replacement::SpeedUp => "tx_replaced",
                    Replacement::CancelOnChain => "tx_cancel_onchain_signed",
                },
                "system",
            )
            .wallet(wallet.id)
            .detail(serde_json::json!({
                "tx": id.to_string(),
                "nonce": tx.nonce,
                "replaces": old_hash,
                "hash": signed.hash,
                "maxFeePerGas": fee.max_fee_per_gas.to_string(),
                "maxPriorityFeePerGas": fee.max_priority_fee_per_gas.to_string(),
            }));
            self.save_tx(&mut batch, &mut tx, event);
            // The outbox again: durable before the replacement leaves the process.
            self.store.commit(batch)?;
            signed
        };
        match broadcast_checked(adapter, &signed).await {
            Ok(()) | Err(ChainError::NotAccepted { .. } | ChainError::Unreachable { .. }) => {}
            Err(err) => tracing::warn!(tx = %id, error = %err, "the replacement was refused; the worker keeps trying"),
        }
        self.tx(wallet.id, id)
    }

    /// `bursar tx speed-up`: the operator replaces a signed, unmined transfer with higher fees.
    pub async fn speed_up(&self, _: &super::MasterAuth, id: TxId) -> Result<Transfer> {
        self.operator_replace(id, Replacement::SpeedUp).await
    }

    /// `bursar tx cancel-onchain`: the operator replaces a signed, unmined transfer with a
    /// zero-value transfer to the wallet itself at the same nonce; if that is the one mined,
    /// the transfer ends FAILED with its budget released (but for the fee paid).
    pub async fn cancel_onchain(&self, _: &super::MasterAuth, id: TxId) -> Result<Transfer> {
        self.operator_replace(id, Replacement::CancelOnChain).await
    }

    pub(super) async fn operator_replace(&self, id: TxId, kind: Replacement) -> Result<Transfer> {
        let wallet = self.wallet(self.active_tx_wallet(id)?)?;
        let adapter = self.adapter(&wallet)?;
        let tx = self.tx(wallet.id, id)?;
        refuse_replacement(&tx, adapter)?;
        if !matches!(tx.status, TxState::Signed | TxState::Submitted) {
            return Err(ServiceError::Conflict(format!(
                "transaction is {}; only a SIGNED or SUBMITTED transfer can be replaced on chain",
                tx.status
            )));
        }
        if kind == Replacement::CancelOnChain && tx.cancel_hash.is_some() {
            return Err(ServiceError::Conflict(
                "an on-chain cancel is already signed for it".into(),
            ));
        }
        let locks = self.wallet_locks(wallet.id);
        let _nonce = locks.nonce.lock().await;
        let market = adapter.fee_market().await?;
        let actor_tx = self.replace(adapter, &wallet, id, kind, market, &locks).await?;
        self.store.audit(
            AuditEvent::new(
                match kind {
                    Replacement::SpeedUp => "tx_speed_up_requested",
                    Replacement::CancelOnChain => "tx_cancel_onchain_requested",
                },
                "master",
            )
            .wallet(wallet.id)
            .detail(serde_json::json!({ "tx": id.to_string(), "hash": actor_tx.hash })),
        )?;
        Ok(actor_tx.transfer(wallet.kind)?)
    }
}

/// A replacement needs a sequence that only one transaction can use (an account nonce). A
/// transfer signed at a recent blockhash cannot be replaced while the blockhash is valid (a
/// second one could land too); once it expired unlanded, the pipeline re-signs it itself
/// ([`Service::refused_rebroadcast`]).
fn refuse_replacement(tx: &TxRecord, adapter: &Adapter) -> Result<()> {
    if tx.sequence().is_some_and(|s| !s.replaceable()) {
        return Err(ServiceError::Chain(ChainError::NotSupported(format!(
            "a transfer on chain {} is signed at a recent blockhash: it cannot be sped up or cancelled on \
             chain; it lands, or its blockhash expires and bursar re-signs it with a fresh one",
            adapter.config().name
        ))));
    }
    Ok(())
}

/// How a stuck transfer is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Replacement {
    /// The same transfer with higher fees.
    SpeedUp,
    /// A zero-value transfer to the wallet itself, so that the nonce is used and the transfer
    /// can never be mined.
    CancelOnChain,
}

/// The transfer a REQUESTED (decided, or re-checked and allowed) or signed record stands for,
/// with `fee`: the pipeline's only way to an [`Approved`], so nothing is prepared for signing
/// that a committed decision did not allow.
pub(super) fn approved(wallet: &WalletRecord, tx: &TxRecord, fee: FeeQuote) -> Result<Approved> {
    if !matches!(tx.status, TxState::Requested | TxState::Signed | TxState::Submitted) {
        return Err(ServiceError::Conflict(format!(
            "transaction is {}; nothing to sign",
            tx.status
        )));
    }
    let parse = |a: &str| Address::parse(wallet.kind, a).map_err(|e| invalid(e.to_string()));
    let token = tx.token.as_deref().map(parse).transpose()?;
    Ok(Approved::new(
        wallet.address()?,
        parse(&tx.to)?,
        token,
        tx.base_units,
        fee,
    ))
}

/// Broadcasts, treating an error about a transaction the chain already mined (e.g. "nonce
/// too low" for our own, already included bytes) as the success it is.
pub(super) async fn broadcast_checked(adapter: &Adapter, signed: &crate::chains::SignedTx) -> Result<(), ChainError> {
    match adapter.broadcast(signed).await {
        Err(err @ (ChainError::Rejected { .. } | ChainError::NotAccepted { .. })) => {
            match adapter.status(&signed.hash).await {
                Ok(TxStatus::Mined { .. }) => Ok(()),
                _ => Err(err),
            }
        }
        other => other,
    }
}

//! Decide: a request decoded into the intent the daemon would sign, its fee quote, the policy
//! engine's decision and the reservation committed with it (before anything is signed), the
//! dry run, and the re-check of a DELAY or APPROVAL transfer before it is signed.

use super::*;

impl Service {
    /// Decodes the request into the intent the daemon would sign.
    pub(super) async fn decode(&self, wallet: &WalletRecord, req: &TransferRequest) -> Result<(Intent, AssetMeta)> {
        let adapter = self.adapter(wallet)?;
        let to = Address::parse(wallet.kind, &req.to).map_err(|e| field(Field::To, e))?;
        let token = match req.token.as_deref().filter(|t| !t.is_empty() && *t != "native") {
            Some(t) => Some(Address::parse(wallet.kind, t).map_err(|e| field(Field::Token, e))?),
            None => None,
        };
        let meta = adapter.asset_meta(token.as_ref()).await?;
        let amount = match (&req.amount, &req.amount_base_units) {
            (Some(a), None) => Amount::parse_decimal(a, meta.decimals).map_err(|e| field(Field::Amount, e))?,
            (None, Some(b)) => {
                Amount::parse_base_units(b, meta.decimals).map_err(|e| field(Field::AmountBaseUnits, e))?
            }
            _ => {
                return Err(field(
                    Field::Amount,
                    "give exactly one amount: in whole units (a decimal string) or in base units (an integer string)",
                ));
            }
        };
        if amount.base_units.is_zero() {
            return Err(field(Field::Amount, "must be greater than zero"));
        }
        let asset = token.map_or(Asset::Native, Asset::Token);
        Ok((
            Intent {
                chain: wallet.chain.clone(),
                to,
                asset,
                amount,
                call: None,
                approve: None,
                max_fee: None,
            },
            meta,
        ))
    }

    /// The node's fee quote for `intent`, held to the chain's caps (RPC: call without locks).
    pub(super) async fn quote_fee(&self, wallet: &WalletRecord, intent: &Intent) -> Result<FeeQuote, ChainError> {
        let request = FeeRequest {
            from: wallet.address().map_err(|e| ChainError::InvalidInput(e.to_string()))?,
            to: intent.to,
            token: match intent.asset {
                Asset::Native => None,
                Asset::Token(t) => Some(t),
            },
            base_units: intent.amount.base_units,
        };
        self.adapter(wallet)
            .map_err(|e| ChainError::InvalidInput(e.to_string()))?
            .quote_fee(&request)
            .await
    }

    /// The wallet's policies, parsed. A stored policy that no longer parses fails closed.
    pub(in crate::service) fn policies(&self, wallet: &WalletRecord) -> Result<Vec<Policy>> {
        let records: Vec<PolicyRecord> = self.store.list(&keys::wallet_policies(wallet.id))?;
        let ctx = ParseContext {
            chain_kind: wallet.kind,
            native_decimals: self.adapter(wallet)?.config().native_decimals,
        };
        records
            .into_iter()
            .map(|r| {
                let rules = policy::parse(&r.kind, r.rules, &ctx)
                    .map_err(|e| ServiceError::Conflict(format!("stored policy {} is invalid: {e}", r.id)))?;
                Ok(Policy {
                    id: r.id.to_string(),
                    rules,
                })
            })
            .collect()
    }

    /// Runs the policy engine. `exclude` is a transfer being re-checked: its own reservation
    /// and its own request are not counted against it again.
    pub(super) fn evaluate(
        &self,
        wallet: &WalletRecord,
        intent: &Intent,
        now: i64,
        exclude: Option<&TxRecord>,
    ) -> Result<Decision> {
        let policies = self.policies(wallet)?;
        let mut spent = self.spent(wallet.id, now)?;
        if let Some(tx) = exclude.filter(|t| t.reserved.held) {
            let (day, month) = period_keys(now);
            let (usd, native) = (
                tx.reserved.micro_usd.unwrap_or_default(),
                tx.reserved.native.unwrap_or_default(),
            );
            if tx.reserved.day == day {
                spent.today.micro_usd = spent.today.micro_usd.saturating_sub(usd);
                spent.today.native = spent.today.native.saturating_sub(native);
            }
            if tx.reserved.month == month {
                spent.month.micro_usd = spent.month.micro_usd.saturating_sub(usd);
                spent.month.native = spent.month.native.saturating_sub(native);
            }
        }
        // RATE_LIMIT reads only its window, and counts no further than the strictest decision
        // needs: a range scan of at most `max_requests + 1` keys, whatever the history holds.
        let this_request = u32::from(exclude.is_none());
        let count_cap = policies
            .iter()
            .filter_map(|p| match p.rules {
                policy::Rules::RateLimit { max_requests, .. } => Some(max_requests),
                _ => None,
            })
            .max()
            .map_or(0, |m| usize::try_from(m).unwrap_or(usize::MAX).saturating_add(1));
        let requests_in_window = |window: u64| {
            let since = now.saturating_sub(i64::try_from(window).unwrap_or(i64::MAX));
            // Created after `since` (whole seconds), as ids tell it (milliseconds).
            let since_ms = since.saturating_add(1).saturating_mul(1000);
            match self.store.count_txs_since(wallet.id, since_ms, count_cap) {
                Ok(earlier) => u32::try_from(earlier).unwrap_or(u32::MAX).saturating_add(this_request),
                Err(err) => {
                    // Fail closed: an unreadable history counts as over any limit.
                    tracing::error!(error = %err, "cannot read transaction history for RATE_LIMIT");
                    u32::MAX
                }
            }
        };
        let counters = policy::Counters {
            spent_today_micro_usd: spent.today.micro_usd,
            spent_month_micro_usd: spent.month.micro_usd,
            spent_today_native: spent.today.native,
            spent_month_native: spent.month.native,
            requests_in_window: &requests_in_window,
        };
        let chain = self.adapter(wallet)?.config();
        let native_symbol = &chain.native_symbol;
        let ctx = policy::Context {
            now,
            price: self.prices.lookup(&wallet.chain, &intent.asset, native_symbol, now),
            native_price: self.prices.lookup(&wallet.chain, &Asset::Native, native_symbol, now),
            native_decimals: chain.native_decimals,
            max_price_age_seconds: self.prices.max_age_seconds,
            counters: &counters,
            owner_registered: wallet.owner.is_some(),
            native_symbol,
        };
        Ok(policy::evaluate(intent, &policies, &ctx))
    }

    /// `POST /v1/transactions/check`: the decision, nothing reserved, nothing signed.
    pub async fn check_transfer(&self, auth: &SessionAuth, req: &TransferRequest) -> Result<CheckResult> {
        let wallet = self.wallet(auth.wallet_id)?;
        let (mut intent, meta) = self.decode(&wallet, req).await?;
        let quote = self.quote_fee(&wallet, &intent).await?;
        intent.max_fee = Some(quote.max_fee());
        let now = now();
        let decision = self.evaluate(&wallet, &intent, now, None)?;
        Ok(CheckResult {
            decision,
            amount: intent.amount,
            symbol: meta.symbol,
            spent: self.spent(wallet.id, now)?,
            max_fee: Amount::new(quote.max_fee(), self.adapter(&wallet)?.config().native_decimals).ok(),
        })
    }

    /// `POST /v1/transactions/send`.
    pub async fn send(&self, auth: &SessionAuth, req: &TransferRequest) -> Result<Transfer> {
        let key = req.idempotency_key.trim();
        if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || key.chars().any(char::is_control) {
            return Err(field(
                Field::IdempotencyKey,
                format!("is required: 1-{MAX_IDEMPOTENCY_KEY} printable characters, reused on retry"),
            ));
        }
        let memo = req
            .memo
            .as_deref()
            .map(|m| sanitize::chain_string(m, MAX_MEMO_CHARS))
            .filter(|m| !m.is_empty());
        let wallet = self.wallet(auth.wallet_id)?;
        refuse_frozen(&wallet)?;
        self.autostop_request(wallet.id).await?;
        let (mut intent, meta) = self.decode(&wallet, req).await?;
        let request_hash = request_hash(&intent, memo.as_deref());
        let key_hash = keys::idempotency_hash(key);
        let seen = |store: &crate::store::Store| -> Result<Option<TxRecord>> {
            match store.get::<IdempotencyRecord>(&keys::idempotency(wallet.id, &key_hash))? {
                Some(seen) if seen.request_hash != request_hash => Err(ServiceError::Conflict(
                    "idempotencyKey was already used for a different transfer; use a new key for a new transfer".into(),
                )),
                Some(seen) => self.tx(wallet.id, seen.tx_id).map(Some),
                None => Ok(None),
            }
        };
        // A retry answers from the record, without asking the chain again.
        if let Some(tx) = seen(&self.store)? {
            return Ok(tx.transfer(wallet.kind)?);
        }
        // The fee quote is part of what the policy judges: fetched before the lock (RPC).
        let quote = match self.quote_fee(&wallet, &intent).await {
            Ok(q) => Ok(q),
            Err(ChainError::Rejected { reason, .. }) => Err(reason),
            Err(other) => return Err(other.into()),
        };
        intent.max_fee = quote.as_ref().ok().map(FeeQuote::max_fee);
        let locks = self.wallet_locks(wallet.id);

        let tx = {
            let _decide = locks.decide.lock().await;
            if let Some(tx) = seen(&self.store)? {
                return Ok(tx.transfer(wallet.kind)?);
            }
            self.refuse_over_open_cap(wallet.id)?;
            let now = now();
            let (status, tier, reasons, trace, decision) = match &quote {
                // The node says it would fail (unfunded, reverting) or quotes fees above the
                // caps: recorded as FAILED, nothing reserved, nothing signed.
                Err(reason) => (
                    TxState::Failed,
                    None,
                    vec![format!("the chain refuses this transfer: {reason}")],
                    serde_json::Value::Array(Vec::new()),
                    None,
                ),
                Ok(_) => {
                    let decision = self.evaluate(&wallet, &intent, now, None)?;
                    let (status, tier) = match decision.outcome {
                        Outcome::Denied => (TxState::Denied, None),
                        Outcome::Allowed(t @ (Tier::Instant | Tier::Notify)) => (TxState::Requested, Some(t)),
                        Outcome::Allowed(t @ Tier::Delay) => (TxState::Delayed, Some(t)),
                        Outcome::Allowed(t @ Tier::Approval) => (TxState::PendingApproval, Some(t)),
                    };
                    (
                        status,
                        tier,
                        decision.reasons.clone(),
                        trace_json(&decision.trace),
                        Some(decision),
                    )
                }
            };
            let reserved = match &decision {
                Some(d) => self.reservation(&wallet, d, intent.max_fee, now)?,
                None => {
                    let (day, month) = period_keys(now);
                    Reservation {
                        day,
                        month,
                        ..Reservation::default()
                    }
                }
            };
            let to_i64 = |s: Option<u64>| s.map(|s| now.saturating_add(i64::try_from(s).unwrap_or(i64::MAX)));
            let mut tx = TxRecord {
                v: RECORD_VERSION,
                id: TxId::new(),
                wallet_id: wallet.id,
                session_id: Some(auth.session_id.to_string()),
                chain: wallet.chain.clone(),
                status,
                tier: tier.map(|t| t.as_str().to_owned()),
                to: intent.to.to_string(),
                token: match intent.asset {
                    Asset::Native => None,
                    Asset::Token(t) => Some(t.to_string()),
                },
                symbol: meta.symbol.clone(),
                decimals: intent.amount.decimals,
                base_units: intent.amount.base_units,
                memo,
                idempotency_key: key.to_owned(),
                request_hash: request_hash.clone(),
                reasons,
                trace,
                reserved,
                created_at: now,
                updated_at: now,
                executes_at: match &decision {
                    Some(d) if status == TxState::Delayed => to_i64(d.delay_seconds),
                    _ => None,
                },
                expires_at: match &decision {
                    Some(d) if status == TxState::PendingApproval => to_i64(d.approval_timeout_seconds),
                    _ => None,
                },
                nonce: None,
                blockhash: None,
                raw: None,
                hash: None,
                block: None,
                confirmations: 0,
                error: quote.as_ref().err().map(|r| format!("rejected by the chain: {r}")),
                nonce_passed_at: None,
                fee: quote.as_ref().ok().map(|q| FeeRecord::from(*q)),
                fee_paid: None,
                signed_at: None,
                replaced_hashes: Vec::new(),
                cancel_hash: None,
                indexed: Indexed::Absent,
            };
            let mut batch = Batch::new();
            if tx.reserved.held {
                self.change_budgets(&mut batch, wallet.id, &[(&tx.reserved, Change::Add)])?;
            }
            batch.put(
                keys::idempotency(wallet.id, &key_hash),
                &IdempotencyRecord {
                    tx_id: tx.id,
                    request_hash,
                },
            );
            let event = decided_event(&tx);
            self.save_tx(&mut batch, &mut tx, event);
            if tx.status == TxState::Requested {
                // Nobody hears of an INSTANT or NOTIFY transfer before it is signed or failed
                // (its answer and its notice wait for that), and that commit makes this
                // decision durable with it: one fsync fewer per transfer. A crash before it
                // loses an unanswered request, which its retry decides anew.
                self.store.stage(batch)?;
            } else {
                self.store.commit(batch)?;
            }
            tx
        };
        self.notify_transfer(&wallet, &tx);
        let tx = match tx.status {
            TxState::Requested => {
                let tx = self.execute(tx.id, wallet.id, false).await?;
                self.wait_confirmed(tx).await
            }
            _ => tx,
        };
        self.autostop_outcome(wallet.id, tx.status).await?;
        Ok(tx.transfer(wallet.kind)?)
    }

    /// Re-checks a DELAY or APPROVAL transfer at execution time. Returns the record when it
    /// must not go ahead (denied now, or DELAY that now needs approval).
    ///
    /// The transfer is judged as it would be signed now: with `quote`'s fees, today's
    /// counters and today's prices. When it goes ahead (or waits for approval), its
    /// reservation moves to the current day and month with the fresh amounts, in the same
    /// commit: a transfer counts in the period in which it is signed, never twice, never
    /// at a stale price.
    pub(super) async fn recheck(
        &self,
        wallet: &WalletRecord,
        tx: &mut TxRecord,
        locks: &WalletLocks,
        quote: FeeQuote,
    ) -> Result<Option<TxRecord>> {
        let _decide = locks.decide.lock().await;
        // Fresh under the lock: a cancel may have landed since the caller read it.
        *tx = self.tx(tx.wallet_id, tx.id)?;
        if !tx.status.is_cancellable() {
            return Ok(Some(tx.clone()));
        }
        if let Some(expired) = self.expire_locked(tx)? {
            return Ok(Some(expired));
        }
        let mut intent = self.intent_of(wallet, tx)?;
        intent.max_fee = Some(quote.max_fee());
        let now = now();
        let decision = self.evaluate(wallet, &intent, now, Some(tx))?;
        let was_approval = tx.status == TxState::PendingApproval;
        let mut batch = Batch::new();
        if decision.outcome != Outcome::Denied {
            let moved = self.reservation(wallet, &decision, intent.max_fee, now)?;
            let mut changes = vec![(&moved, Change::Add)];
            if tx.reserved.held {
                changes.push((&tx.reserved, Change::Release));
            }
            self.change_budgets(&mut batch, tx.wallet_id, &changes)?;
            tx.reserved = moved;
            tx.fee = Some(FeeRecord::from(quote));
        }
        let event = |kind: &str| {
            AuditEvent::new(kind, "system")
                .wallet(tx.wallet_id)
                .detail(serde_json::json!({
                    "tx": tx.id.to_string(),
                    "reasons": decision.reasons,
                    "maxFee": quote.max_fee().to_string(),
                    "reservedIn": tx.reserved.day,
                }))
        };
        match decision.outcome {
            Outcome::Denied => {
                let e = event("tx_denied_on_recheck");
                tx.reasons = decision.reasons.clone();
                tx.trace = trace_json(&decision.trace);
                let error = Some("denied when re-checked before signing".into());
                self.finish_with_audit(&mut batch, tx, TxState::Denied, error, e)?;
            }
            Outcome::Allowed(Tier::Approval) if !was_approval => {
                let e = event("tx_escalated_to_approval");
                tx.status = TxState::PendingApproval;
                tx.tier = Some(Tier::Approval.as_str().to_owned());
                tx.reasons = decision.reasons.clone();
                tx.trace = trace_json(&decision.trace);
                tx.expires_at = decision
                    .approval_timeout_seconds
                    .map(|s| now.saturating_add(i64::try_from(s).unwrap_or(i64::MAX)));
                tx.updated_at = now;
                self.save_tx(&mut batch, tx, e);
            }
            Outcome::Allowed(_) => {
                // Committed to executing: no longer cancellable, and a crash from here on
                // resumes as any REQUESTED transfer does.
                let e = event("tx_executing");
                tx.status = TxState::Requested;
                tx.updated_at = now;
                self.save_tx(&mut batch, tx, e);
                self.store.commit(batch)?;
                return Ok(None);
            }
        }
        self.store.commit(batch)?;
        self.notify_transfer(wallet, tx);
        Ok(Some(tx.clone()))
    }

    pub(super) fn intent_of(&self, wallet: &WalletRecord, tx: &TxRecord) -> Result<Intent> {
        let to = Address::parse(wallet.kind, &tx.to).map_err(|e| invalid(e.to_string()))?;
        let asset = match &tx.token {
            Some(t) => Asset::Token(Address::parse(wallet.kind, t).map_err(|e| invalid(e.to_string()))?),
            None => Asset::Native,
        };
        let amount = Amount::new(tx.base_units, tx.decimals).map_err(|e| invalid(e.to_string()))?;
        Ok(Intent {
            chain: tx.chain.clone(),
            to,
            asset,
            amount,
            call: None,
            approve: None,
            max_fee: tx.fee.map(|f| FeeQuote::from(f).max_fee()),
        })
    }
}

/// Identity of a transfer for idempotency: the decoded intent, not the raw strings, so
/// "0.5" and "500000000000000000" base units are the same request.
pub(super) fn request_hash(intent: &Intent, memo: Option<&str>) -> String {
    // EVM hex without case (as hashed since the first version); base58 keeps it: two Solana
    // addresses may differ only in case.
    let text = |a: &Address| match a.kind() {
        crate::domain::ChainKind::Evm => a.to_string().to_lowercase(),
        crate::domain::ChainKind::Solana => a.to_string(),
    };
    let asset = match &intent.asset {
        Asset::Native => "native".to_owned(),
        Asset::Token(t) => text(t),
    };
    let canonical = format!(
        "{}\0{}\0{}\0{}\0{}",
        intent.chain,
        text(&intent.to),
        asset,
        intent.amount.base_units,
        memo.unwrap_or("")
    );
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

pub(super) fn decided_event(tx: &TxRecord) -> AuditEvent {
    let kind = match tx.status {
        TxState::Denied => "tx_denied",
        TxState::Failed => "tx_failed",
        _ => "tx_requested",
    };
    AuditEvent::new(
        kind,
        tx.session_id
            .as_deref()
            .map(|s| format!("session:{s}"))
            .unwrap_or_else(|| "system".into()),
    )
    .wallet(tx.wallet_id)
    .detail(serde_json::json!({
        "tx": tx.id.to_string(),
        "status": tx.status.as_str(),
        "tier": tx.tier,
        "to": tx.to,
        "token": tx.token,
        "baseUnits": tx.base_units.to_string(),
        "maxFee": tx.reserved.fee_native.map(|f| f.to_string()),
        "reasons": tx.reasons,
        "trace": tx.trace,
        "error": tx.error,
    }))
}

fn field(field: Field, reason: impl std::fmt::Display) -> ServiceError {
    ServiceError::InvalidField {
        field,
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ChainKind;

    #[test]
    fn the_request_hash_ignores_evm_hex_case_but_not_base58_case() {
        let intent = |kind, to: &str| Intent {
            chain: "c".parse().unwrap(),
            to: Address::parse(kind, to).unwrap(),
            asset: Asset::Native,
            amount: Amount::new(U256::from(5), 9).unwrap(),
            call: None,
            approve: None,
            max_fee: None,
        };
        let evm = "0x8464135c8F25Da09e49BC8782676a84730C318bC";
        assert_eq!(
            request_hash(&intent(ChainKind::Evm, evm), None),
            request_hash(&intent(ChainKind::Evm, &evm.to_lowercase()), None)
        );
        let to = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";
        let twin = crate::prices::tests::case_twin(to);
        assert_ne!(
            request_hash(&intent(ChainKind::Solana, to), None),
            request_hash(&intent(ChainKind::Solana, &twin), None),
            "{twin} is another recipient"
        );
        assert_ne!(
            request_hash(&intent(ChainKind::Solana, to), None),
            request_hash(&intent(ChainKind::Solana, to), Some("memo"))
        );
    }
}

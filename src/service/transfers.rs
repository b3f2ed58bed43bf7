//! Transfers under policy. A request is decoded into the intent the daemon would sign, judged
//! by the policy engine, and persisted with its budget reservation and audit entry in one
//! commit — before anything is signed. INSTANT and NOTIFY execute at once; DELAY executes
//! when due unless cancelled; APPROVAL waits for the owner or expires. Execution (re-checking
//! policy for DELAY and APPROVAL) happens under the wallet's nonce lock: sign, persist the
//! signed transaction (the outbox) with its audit entry, broadcast, confirm. On restart,
//! every in-flight transaction is reconciled from its stored raw bytes: never re-signed.

use super::{Result, Service, ServiceError, SessionAuth, key_ref, now};
use crate::chains::{Adapter, Approved, AssetMeta, ChainError, FeeQuote, FeeRequest, TransferPlan, TxStatus};
use crate::domain::{Address, Amount, Sequence, TxId, TxState, WalletId, sanitize};
use crate::policy::{self, Asset, Decision, Intent, Outcome, ParseContext, Policy, Tier};
use crate::store::records::{
    BudgetRecord, FeeRecord, IdempotencyRecord, PolicyRecord, RECORD_VERSION, Reservation, TxRecord, WalletRecord,
};
use crate::store::{AuditEvent, Batch, keys};
use alloy_primitives::U256;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// A transfer as the agent asked for it (raw strings: parsed here, against the chain).
#[derive(Debug, Clone, Default)]
pub struct TransferRequest {
    pub to: String,
    pub amount: Option<String>,
    pub amount_base_units: Option<String>,
    pub token: Option<String>,
    pub idempotency_key: String,
    pub memo: Option<String>,
}

/// A dry run's answer.
pub struct CheckResult {
    pub decision: Decision,
    pub amount: Amount,
    pub symbol: String,
    pub spent: Spent,
    /// The most the transfer would pay in fees (native units), counted in the decision.
    pub max_fee: Option<Amount>,
}

/// Spend counted in the current day and month (confirmed plus in flight).
#[derive(Debug, Clone, Default)]
pub struct Spent {
    pub today: BudgetRecord,
    pub month: BudgetRecord,
}

/// Per-wallet serialisation: `decide` covers evaluation + reservation + every budget change
/// (so parallel requests cannot overspend); `nonce` covers sequence choice, sign and
/// broadcast (so parallel sends get sequential nonces) and caches the floor for the next
/// sequence (after the last one signed; `None`: read it again from the records and chain).
#[derive(Default)]
pub(super) struct WalletLocks {
    pub(super) decide: tokio::sync::Mutex<()>,
    pub(super) nonce: tokio::sync::Mutex<Option<Sequence>>,
    /// Signed transfers already warned about (re-broadcast refused while their nonce is
    /// open, or a replacement above the fee caps): once, not on every worker pass.
    refused: std::sync::Mutex<std::collections::HashSet<TxId>>,
    /// A worker task is on this wallet: the next pass skips it, so one wallet's slow RPC
    /// never stalls the others.
    worker_busy: std::sync::atomic::AtomicBool,
}

/// Clears [`WalletLocks::worker_busy`] when the wallet's worker task ends, even by panic.
struct WorkerBusy(Arc<WalletLocks>);

impl Drop for WorkerBusy {
    fn drop(&mut self) {
        self.0.worker_busy.store(false, std::sync::atomic::Ordering::Release);
    }
}

/// Whether a reservation is added to its budgets or taken off them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    Add,
    Release,
}

/// Who stops an unsigned transfer, and how (the string is the audit actor).
pub(super) enum Stop {
    /// The agent's session or the operator cancels.
    Cancel(String),
    /// The owner cancels with a signed `cancel` message.
    OwnerCancel(String),
    /// The owner rejects a PENDING_APPROVAL transfer with a signed `reject` message.
    OwnerReject(String),
}

const MAX_MEMO_CHARS: usize = 256;
const MAX_IDEMPOTENCY_KEY: usize = 128;

fn period_keys(now: i64) -> (String, String) {
    let t = time::OffsetDateTime::from_unix_timestamp(now).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let (y, m, d) = (t.year(), u8::from(t.month()), t.day());
    (format!("{y:04}-{m:02}-{d:02}"), format!("{y:04}-{m:02}"))
}

fn invalid(msg: impl Into<String>) -> ServiceError {
    ServiceError::InvalidInput(msg.into())
}

impl Service {
    pub(super) fn wallet_locks(&self, wallet: WalletId) -> Arc<WalletLocks> {
        self.wallet_locks
            .lock()
            .expect("wallet locks")
            .entry(wallet)
            .or_default()
            .clone()
    }

    /// Decodes the request into the intent the daemon would sign.
    async fn decode(&self, wallet: &WalletRecord, req: &TransferRequest) -> Result<(Intent, AssetMeta)> {
        let adapter = self.adapter(wallet)?;
        let to = Address::parse(wallet.kind, &req.to).map_err(|e| invalid(format!("to: {e}")))?;
        let token = match req.token.as_deref().filter(|t| !t.is_empty() && *t != "native") {
            Some(t) => Some(Address::parse(wallet.kind, t).map_err(|e| invalid(format!("token: {e}")))?),
            None => None,
        };
        let meta = adapter.asset_meta(token.as_ref()).await?;
        let amount = match (&req.amount, &req.amount_base_units) {
            (Some(a), None) => Amount::parse_decimal(a, meta.decimals).map_err(|e| invalid(format!("amount: {e}")))?,
            (None, Some(b)) => {
                Amount::parse_base_units(b, meta.decimals).map_err(|e| invalid(format!("amountBaseUnits: {e}")))?
            }
            _ => {
                return Err(invalid(
                    "give exactly one of amount (decimal, whole units) or amountBaseUnits (integer)",
                ));
            }
        };
        if amount.base_units.is_zero() {
            return Err(invalid("amount must be greater than zero"));
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
    async fn quote_fee(&self, wallet: &WalletRecord, intent: &Intent) -> Result<FeeQuote, ChainError> {
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

    /// What `decision` reserves, in the periods of `now`, with the fee's share of it.
    fn reservation(
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

    /// The wallet's policies, parsed. A stored policy that no longer parses fails closed.
    fn policies(&self, wallet: &WalletRecord) -> Result<Vec<Policy>> {
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

    pub(super) fn spent(&self, wallet: WalletId, now: i64) -> Result<Spent> {
        let (day, month) = period_keys(now);
        Ok(Spent {
            today: self.store.get(&keys::budget(wallet, &day))?.unwrap_or_default(),
            month: self.store.get(&keys::budget(wallet, &month))?.unwrap_or_default(),
        })
    }

    /// Runs the policy engine. `exclude` is a transfer being re-checked: its own reservation
    /// and its own request are not counted against it again.
    fn evaluate(
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
    pub async fn send(&self, auth: &SessionAuth, req: &TransferRequest) -> Result<TxRecord> {
        let key = req.idempotency_key.trim();
        if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || key.chars().any(char::is_control) {
            return Err(invalid(format!(
                "idempotencyKey is required: 1-{MAX_IDEMPOTENCY_KEY} printable characters, reused on retry"
            )));
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
            return Ok(tx);
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
                return Ok(tx);
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
                        trace_json(&decision),
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
            let tx = TxRecord {
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
                fee: quote.as_ref().ok().map(|q| fee_record(*q)),
                fee_paid: None,
                signed_at: None,
                replaced_hashes: Vec::new(),
                cancel_hash: None,
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
            self.save_tx(&mut batch, &tx, decided_event(&tx));
            self.store.commit(batch)?;
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
        Ok(tx)
    }

    pub fn get_transaction(&self, auth: &SessionAuth, id: TxId) -> Result<TxRecord> {
        self.tx(auth.wallet_id, id)
    }

    /// Cancels the session's own DELAY or APPROVAL transfer that has not been signed.
    pub async fn cancel_transaction(&self, auth: &SessionAuth, id: TxId) -> Result<TxRecord> {
        self.stop_unsigned(
            auth.wallet_id,
            id,
            &Stop::Cancel(format!("session:{}", auth.session_id)),
        )
        .await
    }

    /// Stops one transfer that is not signed yet (cancel or owner reject), under the
    /// wallet's `decide` lock: final state, reservation released, audited, one commit (with
    /// the owner's GRACE → LOCKED when the owner signed it).
    pub(super) async fn stop_unsigned(&self, wallet_id: WalletId, id: TxId, stop: &Stop) -> Result<TxRecord> {
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
        self.finish(&mut batch, &mut tx, state, error)?;
        self.save_tx(
            &mut batch,
            &tx,
            AuditEvent::new(kind, actor.as_str())
                .wallet(tx.wallet_id)
                .detail(serde_json::json!({ "tx": tx.id.to_string() })),
        );
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
    pub(super) fn cancel_unsigned(
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
            self.finish(batch, &mut tx, TxState::Cancelled, Some(format!("cancelled: {reason}")))?;
            self.save_tx(
                batch,
                &tx,
                AuditEvent::new("tx_cancelled", actor)
                    .wallet(tx.wallet_id)
                    .detail(serde_json::json!({ "tx": tx.id.to_string(), "reason": reason })),
            );
            cancelled += 1;
        }
        Ok(cancelled)
    }

    /// The seam for owner approvals: a PENDING_APPROVAL transfer, approved by a verified
    /// owner signature, is re-checked (denials still win) and executed with a fresh nonce.
    pub async fn execute_approved(&self, wallet: WalletId, id: TxId) -> Result<TxRecord> {
        let tx = self.tx(wallet, id)?;
        if tx.status != TxState::PendingApproval {
            return Err(ServiceError::Conflict(format!(
                "transaction is {}, not PENDING_APPROVAL",
                tx.status
            )));
        }
        let tx = self.execute(id, wallet, true).await?;
        Ok(self.wait_confirmed(tx).await)
    }

    pub(super) fn tx(&self, wallet: WalletId, id: TxId) -> Result<TxRecord> {
        // Keyed by wallet: another wallet's transaction is simply not found.
        self.store
            .get(&keys::tx(wallet, id))?
            .ok_or_else(|| ServiceError::NotFound(format!("transaction {id}")))
    }

    /// Puts the record, keeps the active index (what the workers scan) in step, and audits.
    pub(super) fn save_tx(&self, batch: &mut Batch, tx: &TxRecord, event: AuditEvent) {
        batch
            .put(keys::tx(tx.wallet_id, tx.id), tx)
            .index_tx_status(tx.wallet_id, tx.id, tx.status);
        let active = keys::active_tx(tx.id);
        if tx.status.is_final() {
            batch.delete(active);
        } else {
            batch.put(active, &tx.wallet_id.to_string());
        }
        batch.audit(event);
    }

    /// Moves `tx` to a final state and releases its reservation (unless it confirmed).
    pub(super) fn finish(
        &self,
        batch: &mut Batch,
        tx: &mut TxRecord,
        state: TxState,
        error: Option<String>,
    ) -> Result<()> {
        if tx.reserved.held && state != TxState::Confirmed {
            self.change_budgets(batch, tx.wallet_id, &[(&tx.reserved, Change::Release)])?;
            tx.reserved.held = false;
        }
        tx.status = state;
        tx.error = error.or(tx.error.take());
        tx.updated_at = now();
        Ok(())
    }

    /// Applies reservations to their day and month budgets (added or taken off), each
    /// budget record read once, so several changes to one period in one batch add up.
    /// Callers hold the wallet's `decide` lock.
    pub(super) fn change_budgets(
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

    /// Signs and broadcasts `id` under the wallet's nonce lock. `recheck` re-runs policy first
    /// (DELAY when due, APPROVAL when approved).
    async fn execute(&self, id: TxId, wallet_id: WalletId, recheck: bool) -> Result<TxRecord> {
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
            Some(fee) => fee_quote(fee),
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
            self.save_tx(&mut batch, &tx, event);
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
                *next_nonce = sequence.next();
                // Fresh under the decide lock: the worker may have seen it mined and
                // confirmed it while the broadcast answer was on its way.
                let _decide = locks.decide.lock().await;
                tx = self.tx(wallet_id, id)?;
                if tx.status != TxState::Signed {
                    return Ok(tx);
                }
                tx.status = TxState::Submitted;
                tx.updated_at = now();
                let mut batch = Batch::new();
                self.save_tx(
                    &mut batch,
                    &tx,
                    AuditEvent::new("tx_broadcast", "system")
                        .wallet(wallet_id)
                        .detail(serde_json::json!({ "tx": id.to_string(), "hash": signed.hash })),
                );
                self.store.commit(batch)?;
                self.notify_transfer(&wallet, &tx);
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

    /// The floor for the wallet's next sequence from its own records: after every sequence
    /// it signed and may still broadcast (SIGNED or SUBMITTED). Read through the status index
    /// when the cache is empty (at start, after a refusal), not on every send.
    fn outstanding_floor(&self, wallet: WalletId) -> Result<Option<Sequence>> {
        let mut floor = None;
        for state in [TxState::Signed, TxState::Submitted] {
            for tx in self.store.oldest_txs_in(wallet, state, i64::MAX, usize::MAX)? {
                floor = Sequence::later(floor, tx.sequence().and_then(|s| s.next()));
            }
        }
        Ok(floor)
    }

    /// Re-checks a DELAY or APPROVAL transfer at execution time. Returns the record when it
    /// must not go ahead (denied now, or DELAY that now needs approval).
    ///
    /// The transfer is judged as it would be signed now: with `quote`'s fees, today's
    /// counters and today's prices. When it goes ahead (or waits for approval), its
    /// reservation moves to the current day and month with the fresh amounts, in the same
    /// commit: a transfer counts in the period in which it is signed, never twice, never
    /// at a stale price.
    async fn recheck(
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
            tx.fee = Some(fee_record(quote));
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
                tx.trace = trace_json(&decision);
                self.finish(
                    &mut batch,
                    tx,
                    TxState::Denied,
                    Some("denied when re-checked before signing".into()),
                )?;
                self.save_tx(&mut batch, tx, e);
            }
            Outcome::Allowed(Tier::Approval) if !was_approval => {
                let e = event("tx_escalated_to_approval");
                tx.status = TxState::PendingApproval;
                tx.tier = Some(Tier::Approval.as_str().to_owned());
                tx.reasons = decision.reasons.clone();
                tx.trace = trace_json(&decision);
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

    /// Fails `tx` unless it moved on meanwhile (e.g. the kill switch cancelled it while its
    /// executor waited on the chain): the fresh record under the lock decides.
    async fn fail(&self, tx: TxRecord, locks: &WalletLocks, error: String) -> Result<TxRecord> {
        let _decide = locks.decide.lock().await;
        let current = self.tx(tx.wallet_id, tx.id)?;
        if current.status != tx.status {
            return Ok(current);
        }
        self.fail_locked(current, error)
    }

    /// [`Service::fail`] for a caller that holds the wallet's `decide` lock.
    fn fail_locked(&self, mut tx: TxRecord, error: String) -> Result<TxRecord> {
        let mut batch = Batch::new();
        self.finish(&mut batch, &mut tx, TxState::Failed, Some(error.clone()))?;
        self.save_tx(
            &mut batch,
            &tx,
            AuditEvent::new("tx_failed", "system")
                .wallet(tx.wallet_id)
                .detail(serde_json::json!({ "tx": tx.id.to_string(), "error": error })),
        );
        self.store.commit(batch)?;
        Ok(tx)
    }

    fn intent_of(&self, wallet: &WalletRecord, tx: &TxRecord) -> Result<Intent> {
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
            max_fee: tx.fee.map(|f| fee_quote(f).max_fee()),
        })
    }

    /// Waits (bounded by `transfers.confirm_wait_seconds`) for a submitted transfer to confirm.
    async fn wait_confirmed(&self, mut tx: TxRecord) -> TxRecord {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(self.config.transfers.confirm_wait_seconds);
        // Receipts on fast chains (anvil) are there within milliseconds: poll from 5 ms up.
        let mut pause = Duration::from_millis(5);
        while matches!(tx.status, TxState::Submitted | TxState::Signed) && tokio::time::Instant::now() < deadline {
            match self.confirm_once(tx.wallet_id, tx.id).await {
                Ok(t) => tx = t,
                Err(err) => tracing::debug!(tx = %tx.id, error = %err, "confirmation check failed"),
            }
            if matches!(tx.status, TxState::Submitted | TxState::Signed) {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(250));
            }
        }
        tx
    }

    /// One look at the chain for a SIGNED or SUBMITTED transfer: re-broadcast the stored bytes
    /// if the node does not know them, record confirmations, finish on success or revert.
    async fn confirm_once(&self, wallet_id: WalletId, id: TxId) -> Result<TxRecord> {
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
    async fn still_pending(&self, adapter: &Adapter, wallet: &WalletRecord, id: TxId) -> Result<TxRecord> {
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
        let signed = stored_signed(&tx)?;
        match broadcast_checked(adapter, &signed).await {
            Ok(()) if tx.status == TxState::Signed => {
                // Fresh under the decide lock: a concurrent confirmation may have finished it
                // while the broadcast was on its way; a stale copy must never overwrite it.
                let _decide = locks.decide.lock().await;
                tx = self.tx(wallet_id, id)?;
                if tx.status != TxState::Signed {
                    return Ok(tx);
                }
                tx.status = TxState::Submitted;
                tx.updated_at = now();
                let mut batch = Batch::new();
                let detail = serde_json::json!({ "tx": id.to_string(), "hash": signed.hash, "rebroadcast": true });
                self.save_tx(
                    &mut batch,
                    &tx,
                    AuditEvent::new("tx_broadcast", "system")
                        .wallet(wallet_id)
                        .detail(detail),
                );
                self.store.commit(batch)?;
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

    /// Replaces a signed transfer that waited past the chain's `replace_after_seconds`, or
    /// whose max fee is below the next block's base fee (it cannot be mined now). The caller
    /// holds the nonce lock.
    async fn replace_if_stuck(
        &self,
        adapter: &Adapter,
        wallet: &WalletRecord,
        tx: TxRecord,
        locks: &WalletLocks,
    ) -> Result<TxRecord> {
        let Some(replace_after) = adapter.config().replace_after else {
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
        self.replace(adapter, wallet, tx.id, Replacement::SpeedUp, market, locks)
            .await
    }

    /// Signs a replacement of a signed, unmined transfer at the same nonce with fees at
    /// least 10% higher on both (EIP-1559 replacement), within the chain's caps: the same
    /// transfer (`SpeedUp`), or a zero-value transfer to the wallet itself (`CancelOnChain`).
    /// Recorded with the earlier hashes (the outbox) before broadcast; the fee increase
    /// counts against the budgets. The caller holds the nonce lock.
    async fn replace(
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
            };
            let same = approved(wallet, &tx, fee_quote(old))?;
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
            tx.fee = Some(fee_record(fee));
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
            self.save_tx(&mut batch, &tx, event);
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

    /// What `amount` of the native asset is worth in micro-USD now, when priced.
    fn native_usd(&self, wallet: &WalletRecord, amount: U256) -> Option<U256> {
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

    /// `bursar tx speed-up`: the operator replaces a signed, unmined transfer with higher fees.
    pub async fn speed_up(&self, _: &super::MasterAuth, id: TxId) -> Result<TxRecord> {
        self.operator_replace(id, Replacement::SpeedUp).await
    }

    /// `bursar tx cancel-onchain`: the operator replaces a signed, unmined transfer with a
    /// zero-value transfer to the wallet itself at the same nonce; if that is the one mined,
    /// the transfer ends FAILED with its budget released (but for the fee paid).
    pub async fn cancel_onchain(&self, _: &super::MasterAuth, id: TxId) -> Result<TxRecord> {
        self.operator_replace(id, Replacement::CancelOnChain).await
    }

    async fn operator_replace(&self, id: TxId, kind: Replacement) -> Result<TxRecord> {
        let wallet = self.wallet(self.active_tx_wallet(id)?)?;
        let adapter = self.adapter(&wallet)?;
        let tx = self.tx(wallet.id, id)?;
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
        Ok(actor_tx)
    }

    /// Records the mined version `hash` of a transfer: confirmations; when final, its state
    /// (CONFIRMED; FAILED when it reverted or when the operator's on-chain cancel is what
    /// was mined), the fee trued up, the budget settled.
    async fn record_mined(
        &self,
        adapter: &Adapter,
        wallet_id: WalletId,
        id: TxId,
        hash: String,
        mined: Mined,
    ) -> Result<TxRecord> {
        let done = !mined.success || mined.confirmations >= adapter.config().confirmations;
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
        let cancelled = tx.cancel_hash.as_deref() == Some(hash.as_str());
        tx.block = Some(mined.block);
        tx.confirmations = mined.confirmations;
        tx.hash = Some(hash.clone());
        tx.updated_at = now();
        let mut batch = Batch::new();
        if !done {
            tx.status = TxState::Submitted;
            batch
                .put(keys::tx(wallet_id, id), &tx)
                .index_tx_status(wallet_id, id, tx.status);
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
            self.finish(&mut batch, &mut tx, state, error)?;
            let detail = serde_json::json!({
                "tx": id.to_string(),
                "hash": hash,
                "block": mined.block,
                "feePaid": mined.fee_paid.map(|f| f.to_string()),
            });
            self.save_tx(
                &mut batch,
                &tx,
                AuditEvent::new(kind, "system").wallet(wallet_id).detail(detail),
            );
        }
        self.store.commit(batch)?;
        Ok(tx)
    }

    /// Trues the reservation up to the receipt: the unused part of the maximum fee goes back
    /// to the budgets; on a revert the value goes back too, and only the fee paid stays
    /// counted (it was spent). Part of the same batch as the final state.
    fn settle_fee(&self, batch: &mut Batch, tx: &mut TxRecord, paid: U256, success: bool) -> Result<()> {
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

    /// The node refused our own signed bytes. That alone proves nothing: "nonce too low" is
    /// also what a node says about a transaction it mined but whose receipt it does not serve
    /// yet. A transfer fails only once the account's mined nonce has passed it and no receipt
    /// for its hash appeared during the chain's `dropped_after_seconds`; while its nonce is
    /// still open it keeps waiting (it may yet be mined), holding its reservation.
    async fn refused_rebroadcast(
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
            self.save_tx(
                &mut batch,
                &tx,
                AuditEvent::new("tx_nonce_passed", "system")
                    .wallet(tx.wallet_id)
                    .detail(detail),
            );
            self.store.commit(batch)?;
            return Ok(tx);
        };
        let grace = i64::try_from(adapter.config().dropped_after.as_secs()).unwrap_or(i64::MAX);
        if now.saturating_sub(since) < grace {
            return Ok(tx);
        }
        *next_nonce = None;
        let error = match (state, nonce) {
            (TxStatus::Superseded, Some(nonce)) => {
                format!("dropped: nonce {nonce} was used by another transaction ({reason})")
            }
            _ => format!("dropped: its blockhash expired before it was included ({reason})"),
        };
        self.fail_locked(tx, error)
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

    async fn tick_wallet(&self, txs: Vec<TxRecord>) {
        let now = now();
        for tx in txs {
            let (id, wallet) = (tx.id, tx.wallet_id);
            let result = match tx.status {
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
    pub(super) fn active_txs(&self) -> Result<Vec<TxRecord>> {
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
    pub(super) async fn expire_if_due(&self, wallet: WalletId, id: TxId) -> Result<Option<TxRecord>> {
        let locks = self.wallet_locks(wallet);
        let _decide = locks.decide.lock().await;
        let tx = self.tx(wallet, id)?;
        self.expire_locked(&tx)
    }

    /// [`Service::expire_if_due`] for a caller that holds the `decide` lock.
    fn expire_locked(&self, tx: &TxRecord) -> Result<Option<TxRecord>> {
        if tx.status != TxState::PendingApproval || tx.expires_at.is_none_or(|t| t > now()) {
            return Ok(None);
        }
        let mut tx = tx.clone();
        let mut batch = Batch::new();
        self.finish(
            &mut batch,
            &mut tx,
            TxState::Expired,
            Some("the owner did not approve in time".into()),
        )?;
        self.save_tx(
            &mut batch,
            &tx,
            AuditEvent::new("tx_expired", "system")
                .wallet(tx.wallet_id)
                .detail(serde_json::json!({ "tx": tx.id.to_string() })),
        );
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

/// How a stuck transfer is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replacement {
    /// The same transfer with higher fees.
    SpeedUp,
    /// A zero-value transfer to the wallet itself, so that the nonce is used and the transfer
    /// can never be mined.
    CancelOnChain,
}

/// A mined version's receipt.
#[derive(Debug, Clone, Copy)]
struct Mined {
    success: bool,
    block: u64,
    confirmations: u64,
    fee_paid: Option<U256>,
}

/// The signed version of `tx` that is mined, if any: the current one or one it replaced
/// (they share a nonce, so at most one can be).
async fn mined_version(adapter: &Adapter, tx: &TxRecord) -> Result<Option<(String, Mined)>> {
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

/// The transfer a REQUESTED (decided, or re-checked and allowed) or signed record stands for,
/// with `fee`: the pipeline's only way to an [`Approved`], so nothing is prepared for signing
/// that a committed decision did not allow.
fn approved(wallet: &WalletRecord, tx: &TxRecord, fee: FeeQuote) -> Result<Approved> {
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

/// The stored signed bytes of `tx` (the outbox).
fn stored_signed(tx: &TxRecord) -> Result<crate::chains::SignedTx> {
    Ok(crate::chains::SignedTx {
        raw: hex::decode(tx.raw.as_deref().unwrap_or_default())
            .map_err(|_| invalid("stored transaction bytes are corrupt"))?,
        hash: tx.hash.clone().unwrap_or_default(),
    })
}

fn fee_record(q: FeeQuote) -> FeeRecord {
    FeeRecord {
        gas_limit: q.gas_limit,
        max_fee_per_gas: q.max_fee_per_gas,
        max_priority_fee_per_gas: q.max_priority_fee_per_gas,
    }
}

fn fee_quote(r: FeeRecord) -> FeeQuote {
    FeeQuote {
        gas_limit: r.gas_limit,
        max_fee_per_gas: r.max_fee_per_gas,
        max_priority_fee_per_gas: r.max_priority_fee_per_gas,
    }
}

fn refuse_frozen(wallet: &WalletRecord) -> Result<()> {
    match &wallet.frozen {
        Some(f) => Err(ServiceError::Frozen(format!(
            "wallet is frozen by {} ({}); nothing is signed until the kill switch is lifted",
            f.by, f.reason
        ))),
        None => Ok(()),
    }
}

/// Broadcasts, treating an error about a transaction the chain already mined (e.g. "nonce
/// too low" for our own, already included bytes) as the success it is.
async fn broadcast_checked(adapter: &Adapter, signed: &crate::chains::SignedTx) -> Result<(), ChainError> {
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

/// Identity of a transfer for idempotency: the decoded intent, not the raw strings, so
/// "0.5" and "500000000000000000" base units are the same request.
fn request_hash(intent: &Intent, memo: Option<&str>) -> String {
    let asset = match intent.asset {
        Asset::Native => "native".to_owned(),
        Asset::Token(t) => t.to_string().to_lowercase(),
    };
    let canonical = format!(
        "{}\0{}\0{}\0{}\0{}",
        intent.chain,
        intent.to.to_string().to_lowercase(),
        asset,
        intent.amount.base_units,
        memo.unwrap_or("")
    );
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

pub fn trace_json(decision: &Decision) -> serde_json::Value {
    serde_json::Value::Array(
        decision
            .trace
            .iter()
            .map(|t| {
                serde_json::json!({
                    "policyId": t.policy_id,
                    "rule": t.rule,
                    "counter": t.counter,
                    "effect": match t.effect {
                        policy::Effect::Tier(tier) => tier.as_str(),
                        policy::Effect::Deny => "DENY",
                        policy::Effect::Pass => "PASS",
                    },
                    "detail": t.detail,
                })
            })
            .collect(),
    )
}

fn decided_event(tx: &TxRecord) -> AuditEvent {
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

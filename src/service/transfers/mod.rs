//! Transfers under policy. A request is decoded into the intent the daemon would sign, judged
//! by the policy engine, and persisted with its budget reservation and audit entry in one
//! commit — before anything is signed. INSTANT and NOTIFY execute at once; DELAY executes
//! when due unless cancelled; APPROVAL waits for the owner or expires. Execution (re-checking
//! policy for DELAY and APPROVAL) happens under the wallet's nonce lock: sign, persist the
//! signed transaction (the outbox) with its audit entry, broadcast, confirm. On restart,
//! every in-flight transaction is reconciled from its stored raw bytes: never re-signed.

mod confirm;
mod decide;
mod execute;
mod ledger;
mod reconcile;
#[cfg(all(test, feature = "fake-chain"))]
mod tests;

use execute::*;
use ledger::*;

use super::{Field, MasterAuth, Result, Service, ServiceError, SessionAuth, key_ref, now};
use crate::chains::{Adapter, Approved, AssetMeta, ChainError, FeeQuote, FeeRequest, TransferPlan, TxStatus};
use crate::domain::{Address, Amount, PeriodSpend, Sequence, Transfer, TxId, TxState, WalletId, sanitize};
use crate::policy::{self, Asset, Decision, Intent, Outcome, ParseContext, Policy, Tier};
use crate::store::records::{
    BudgetRecord, FeeRecord, IdempotencyRecord, Indexed, PolicyRecord, RECORD_VERSION, Reservation, TxRecord,
    WalletRecord, trace_json,
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
    pub today: PeriodSpend,
    pub month: PeriodSpend,
}

/// Per-wallet serialisation: `decide` covers evaluation + reservation + every budget change
/// (so parallel requests cannot overspend); `nonce` covers sequence choice, sign and
/// broadcast (so parallel sends get sequential nonces) and caches the floor for the next
/// sequence (after the last one signed; `None`: read it again from the records and chain).
#[derive(Default)]
pub(in crate::service) struct WalletLocks {
    pub(in crate::service) decide: tokio::sync::Mutex<()>,
    pub(in crate::service) nonce: tokio::sync::Mutex<Option<Sequence>>,
    /// Signed transfers already warned about (re-broadcast refused while their nonce is
    /// open, or a replacement above the fee caps): once, not on every worker pass.
    pub(super) refused: std::sync::Mutex<std::collections::HashSet<TxId>>,
    /// A worker task is on this wallet: the next pass skips it, so one wallet's slow RPC
    /// never stalls the others.
    pub(super) worker_busy: std::sync::atomic::AtomicBool,
    /// When each of the wallet's blockhash-bound transfers was last sent (see
    /// [`WalletLocks::resend_due`]).
    sent: std::sync::Mutex<std::collections::HashMap<TxId, tokio::time::Instant>>,
    /// Transfers a request is waiting on ([`Service::wait_confirmed`] looks at them itself):
    /// the worker leaves them alone meanwhile instead of looking twice.
    waited_on: std::sync::Mutex<std::collections::HashSet<TxId>>,
}

/// Marks a transfer waited on by a request, until dropped.
pub(super) struct WaitedOn(Arc<WalletLocks>, TxId);

impl Drop for WaitedOn {
    fn drop(&mut self) {
        self.0
            .waited_on
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&self.1);
    }
}

/// How often a transfer bound to a recent blockhash is sent again while it waits: about one
/// Solana slot (400 ms). It cannot be superseded, only dropped until its blockhash expires,
/// so re-sending is what keeps it in front of the leaders, and once a slot does that; a
/// re-send at every status look (from 5 ms apart) only costs RPC calls.
const RESEND_EVERY: Duration = Duration::from_millis(500);

impl WalletLocks {
    /// Notes that transfer `id` was just sent.
    pub(super) fn note_sent(&self, id: TxId) {
        self.mark_sent(id, Duration::ZERO);
    }

    /// Whether a blockhash-bound transfer is due to be sent again ([`RESEND_EVERY`] since its
    /// last send); if so, notes it sent now.
    pub(super) fn resend_due(&self, id: TxId) -> bool {
        self.mark_sent(id, RESEND_EVERY)
    }

    /// Notes `id` sent now unless it was sent less than `every` ago; whether it did.
    fn mark_sent(&self, id: TxId, every: Duration) -> bool {
        let now = tokio::time::Instant::now();
        let mut sent = self.sent.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if sent.get(&id).is_some_and(|at| now.duration_since(*at) < every) {
            return false;
        }
        if sent.len() >= 1024 {
            // Transfers that finished long ago are forgotten.
            sent.retain(|_, at| now.duration_since(*at) < Duration::from_secs(600));
        }
        sent.insert(id, now);
        true
    }

    /// Marks transfer `id` waited on by a request until the guard drops.
    pub(super) fn wait_on(self: &Arc<Self>, id: TxId) -> WaitedOn {
        self.waited_on
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(id);
        WaitedOn(self.clone(), id)
    }

    pub(super) fn is_waited_on(&self, id: TxId) -> bool {
        self.waited_on
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(&id)
    }
}

/// Whether a reservation is added to its budgets or taken off them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::service) enum Change {
    Add,
    Release,
}

/// Who stops an unsigned transfer, and how (the string is the audit actor).
pub(in crate::service) enum Stop {
    /// The agent's session or the operator cancels.
    Cancel(String),
    /// The owner cancels with a signed `cancel` message.
    OwnerCancel(String),
    /// The owner rejects a PENDING_APPROVAL transfer with a signed `reject` message.
    OwnerReject(String),
}

pub(super) const MAX_MEMO_CHARS: usize = 256;
pub(super) const MAX_IDEMPOTENCY_KEY: usize = 128;

pub(super) fn invalid(msg: impl Into<String>) -> ServiceError {
    ServiceError::InvalidInput(msg.into())
}

impl Service {
    pub(in crate::service) fn wallet_locks(&self, wallet: WalletId) -> Arc<WalletLocks> {
        self.wallet_locks
            .lock()
            .expect("wallet locks")
            .entry(wallet)
            .or_default()
            .clone()
    }

    pub fn get_transaction(&self, auth: &SessionAuth, id: TxId) -> Result<Transfer> {
        self.transfer(&self.tx(auth.wallet_id, id)?)
    }

    /// What a caller sees of a stored transfer (its addresses parsed for its wallet's chain).
    pub(in crate::service) fn transfer(&self, tx: &TxRecord) -> Result<Transfer> {
        Ok(tx.transfer(self.wallet(tx.wallet_id)?.kind)?)
    }

    pub(in crate::service) fn tx(&self, wallet: WalletId, id: TxId) -> Result<TxRecord> {
        // Keyed by wallet: another wallet's transaction is simply not found.
        let mut tx: TxRecord = self
            .store
            .get(&keys::tx(wallet, id))?
            .ok_or_else(|| ServiceError::NotFound(format!("transaction {id}")))?;
        tx.indexed = Indexed::Under(tx.status);
        Ok(tx)
    }

    /// Puts the record, keeps the active index (what the workers scan) in step, and audits.
    pub(in crate::service) fn save_tx(&self, batch: &mut Batch, tx: &mut TxRecord, event: AuditEvent) {
        batch.put_tx(tx);
        let active = keys::active_tx(tx.id);
        if tx.status.is_final() {
            batch.delete(active);
        } else {
            batch.put(active, &tx.wallet_id.to_string());
        }
        batch.audit(event);
    }

    /// The one way a transfer ends: moves `tx` to the final `state` (releasing its
    /// reservation unless it CONFIRMED), saves it with its indexes and audits `event`, all in
    /// `batch`.
    pub(in crate::service) fn finish_with_audit(
        &self,
        batch: &mut Batch,
        tx: &mut TxRecord,
        state: TxState,
        error: Option<String>,
        event: AuditEvent,
    ) -> Result<()> {
        if tx.reserved.held && state != TxState::Confirmed {
            self.change_budgets(batch, tx.wallet_id, &[(&tx.reserved, Change::Release)])?;
            tx.reserved.held = false;
        }
        tx.status = state;
        tx.error = error.or(tx.error.take());
        tx.updated_at = now();
        self.save_tx(batch, tx, event);
        Ok(())
    }
}

pub(super) fn refuse_frozen(wallet: &WalletRecord) -> Result<()> {
    match &wallet.frozen {
        Some(f) => Err(ServiceError::Frozen(format!(
            "wallet is frozen by {} ({}); nothing is signed until the kill switch is lifted",
            f.by, f.reason
        ))),
        None => Ok(()),
    }
}

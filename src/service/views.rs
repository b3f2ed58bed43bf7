//! What the use cases answer that is not a domain type: policies (their rules as the operator
//! wrote them) and the audit log, built here from the store's records so that no edge depends
//! on how they are stored.

use crate::domain::{PolicyId, WalletId};
use crate::store::records::PolicyRecord;

/// A policy attached to a wallet.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyView {
    pub id: PolicyId,
    pub wallet_id: WalletId,
    /// `SPENDING_LIMIT`, `WHITELIST`, …
    pub kind: String,
    /// As given (validated by the policy parser at creation).
    pub rules: serde_json::Value,
    pub created_at: i64,
}

impl From<PolicyRecord> for PolicyView {
    fn from(p: PolicyRecord) -> Self {
        Self {
            id: p.id,
            wallet_id: p.wallet_id,
            kind: p.kind,
            rules: p.rules,
            created_at: p.created_at,
        }
    }
}

/// One audit-log entry: what happened, who did it, to what, and its link in the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntryView {
    pub seq: u64,
    /// Unix time in milliseconds.
    pub ts: i64,
    /// snake_case event name, e.g. `wallet_created`.
    pub kind: String,
    /// `master`, `session:<id>`, `owner:<address>`, `system`.
    pub actor: String,
    pub wallet_id: Option<String>,
    pub session_id: Option<String>,
    /// Event-specific context; `None` when there is none.
    pub detail: Option<serde_json::Value>,
    pub prev_hash: String,
    pub hash: String,
    /// `hmac-sha256`; `None` on legacy (plain SHA-256) entries.
    pub alg: Option<String>,
}

impl From<crate::store::AuditEntry> for AuditEntryView {
    fn from(e: crate::store::AuditEntry) -> Self {
        Self {
            seq: e.seq,
            ts: e.ts,
            kind: e.event.kind,
            actor: e.event.actor,
            wallet_id: e.event.wallet_id,
            session_id: e.event.session_id,
            detail: Some(e.event.detail).filter(|d| !d.is_null()),
            prev_hash: e.prev_hash,
            hash: e.hash,
            alg: e.alg,
        }
    }
}

/// The audit chain checked from the first entry to the stored head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditVerificationView {
    pub entries: u64,
    pub ok: bool,
    /// The first sequence number whose MAC, hash or link does not verify.
    pub first_bad_seq: Option<u64>,
    /// What is wrong at `first_bad_seq`.
    pub problem: Option<String>,
    pub head_hash: String,
    /// The first entry chained with HMAC-SHA256 under the daemon's audit key.
    pub keyed_from: Option<u64>,
    /// Entries before `keyed_from`: plain SHA-256 links.
    pub legacy_entries: u64,
    /// Whether every keyed entry's MAC was checked.
    pub mac_checked: bool,
}

impl From<crate::store::AuditVerification> for AuditVerificationView {
    fn from(v: crate::store::AuditVerification) -> Self {
        Self {
            entries: v.entries,
            ok: v.ok,
            first_bad_seq: v.first_bad_seq,
            problem: v.problem,
            head_hash: v.head_hash,
            keyed_from: v.keyed_from,
            legacy_entries: v.legacy_entries,
            mac_checked: v.mac_checked,
        }
    }
}

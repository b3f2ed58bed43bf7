//! The audit log: append-only, each entry carrying the previous entry's hash. Entries
//! never hold secrets; arguments that might be sensitive are HMAC-redacted by the caller.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What happened, who did it, to what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// snake_case event name, e.g. `wallet_created`, `master_auth_failed`.
    pub kind: String,
    /// `master`, `session:<id>`, `owner:<address>`, `system`.
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

impl AuditEvent {
    pub fn new(kind: &str, actor: impl Into<String>) -> Self {
        Self {
            kind: kind.to_owned(),
            actor: actor.into(),
            wallet_id: None,
            session_id: None,
            detail: serde_json::Value::Null,
        }
    }

    pub fn wallet(mut self, id: impl ToString) -> Self {
        self.wallet_id = Some(id.to_string());
        self
    }

    pub fn session(mut self, id: impl ToString) -> Self {
        self.session_id = Some(id.to_string());
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub seq: u64,
    /// Unix time in milliseconds.
    pub ts: i64,
    #[serde(flatten)]
    pub event: AuditEvent,
    pub prev_hash: String,
    pub hash: String,
}

/// The tip of the chain, stored with every append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl Head {
    pub fn genesis() -> Self {
        Self {
            seq: 0,
            hash: GENESIS.to_owned(),
        }
    }

    pub(super) fn append(&mut self, event: AuditEvent) -> AuditEntry {
        let seq = self.seq + 1;
        let ts = now_millis();
        let hash = entry_hash(seq, ts, &event, &self.hash);
        let entry = AuditEntry {
            seq,
            ts,
            event,
            prev_hash: std::mem::take(&mut self.hash),
            hash: hash.clone(),
        };
        *self = Head { seq, hash };
        entry
    }
}

pub(super) fn entry_key(seq: u64) -> String {
    format!("{}{seq:020}", super::keys::AUDIT_LOG)
}

fn now_millis() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn entry_hash(seq: u64, ts: i64, event: &AuditEvent, prev_hash: &str) -> String {
    #[derive(Serialize)]
    struct Hashed<'a> {
        seq: u64,
        ts: i64,
        event: &'a AuditEvent,
    }
    let body = serde_json::to_vec(&Hashed { seq, ts, event }).expect("serialise");
    let mut h = Sha256::new();
    h.update(b"bursar/audit/v1\0");
    h.update(prev_hash.as_bytes());
    h.update([0]);
    h.update(&body);
    hex::encode(h.finalize())
}

/// Which entries to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub kind: Option<String>,
    pub wallet_id: Option<String>,
    pub after_seq: Option<u64>,
    pub limit: Option<usize>,
}

impl AuditFilter {
    pub(super) fn apply(&self, entries: Vec<AuditEntry>) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = entries
            .into_iter()
            .filter(|e| self.kind.as_ref().is_none_or(|k| &e.event.kind == k))
            .filter(|e| {
                self.wallet_id
                    .as_ref()
                    .is_none_or(|w| e.event.wallet_id.as_ref() == Some(w))
            })
            .filter(|e| self.after_seq.is_none_or(|s| e.seq > s))
            .collect();
        // Newest last; a limit keeps the newest ones.
        let limit = self.limit.unwrap_or(100).min(1000);
        if out.len() > limit {
            out.drain(..out.len() - limit);
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditVerification {
    pub entries: u64,
    pub ok: bool,
    /// The first sequence number whose hash or link does not verify.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<u64>,
    pub head_hash: String,
}

pub(super) fn verify(entries: &[AuditEntry], head: &Head) -> AuditVerification {
    let mut prev = GENESIS.to_owned();
    let mut expected_seq = 1;
    let bad = |seq| AuditVerification {
        entries: entries.len() as u64,
        ok: false,
        first_bad_seq: Some(seq),
        head_hash: head.hash.clone(),
    };
    for entry in entries {
        if entry.seq != expected_seq
            || entry.prev_hash != prev
            || entry_hash(entry.seq, entry.ts, &entry.event, &prev) != entry.hash
        {
            return bad(expected_seq);
        }
        prev = entry.hash.clone();
        expected_seq += 1;
    }
    // A truncated tail (entries removed after the head was written) is tampering too.
    if head.seq != expected_seq - 1 || head.hash != prev {
        return bad(expected_seq);
    }
    AuditVerification {
        entries: entries.len() as u64,
        ok: true,
        first_bad_seq: None,
        head_hash: head.hash.clone(),
    }
}

//! The audit log: append-only, each entry carrying the previous entry's hash. Entries
//! never hold secrets; arguments that might be sensitive are HMAC-redacted by the caller.
//!
//! Each entry's `hash` is an HMAC-SHA256 under the daemon's audit key (a random secret sealed
//! in the store, opened at unlock: see `keystore::AuditKey`), so whoever can write the store
//! but lacks the master password cannot rewrite history consistently. Stores created before
//! keyed chains keep their first entries as they were ("legacy": plain SHA-256, which shows
//! damage but not a forger) up to `keyed_from`, the first keyed entry; that switch point is
//! bound into the sealed key's AAD, so it cannot be moved either.

use crate::domain::AuditFilter;
use crate::keystore::AuditKey;
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
    /// `hmac-sha256` on keyed entries; absent on legacy (plain SHA-256) ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
}

/// The tip of the chain, stored with every append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// `AuditEntry::alg` of a keyed entry.
pub const HMAC_SHA256: &str = "hmac-sha256";

/// The chain's key and the first sequence number it covers.
#[derive(Clone)]
pub(super) struct ChainKey {
    pub(super) key: std::sync::Arc<AuditKey>,
    pub(super) keyed_from: u64,
}

impl Head {
    pub fn genesis() -> Self {
        Self {
            seq: 0,
            hash: GENESIS.to_owned(),
        }
    }

    /// Appends `event`, MACed under `key` (every append after the switch is keyed).
    pub(super) fn append(&mut self, event: AuditEvent, key: &AuditKey) -> AuditEntry {
        let seq = self.seq + 1;
        let ts = now_millis();
        let hash = entry_mac(key, seq, ts, &event, &self.hash);
        let entry = AuditEntry {
            seq,
            ts,
            event,
            prev_hash: std::mem::take(&mut self.hash),
            hash: hash.clone(),
            alg: Some(HMAC_SHA256.to_owned()),
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

fn hashed_body(seq: u64, ts: i64, event: &AuditEvent) -> Vec<u8> {
    #[derive(Serialize)]
    struct Hashed<'a> {
        seq: u64,
        ts: i64,
        event: &'a AuditEvent,
    }
    serde_json::to_vec(&Hashed { seq, ts, event }).expect("serialise")
}

/// The legacy, unkeyed link: SHA-256 over the previous hash and the entry.
pub fn legacy_entry_hash(seq: u64, ts: i64, event: &AuditEvent, prev_hash: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"bursar/audit/v1\0");
    h.update(prev_hash.as_bytes());
    h.update([0]);
    h.update(hashed_body(seq, ts, event));
    hex::encode(h.finalize())
}

fn entry_mac(key: &AuditKey, seq: u64, ts: i64, event: &AuditEvent, prev_hash: &str) -> String {
    let body = hashed_body(seq, ts, event);
    hex::encode(key.mac(&[b"bursar/audit/v2\0", prev_hash.as_bytes(), &[0], &body]))
}

impl AuditEntry {
    /// Whether `filter` lists this entry.
    pub(super) fn listed_by(&self, filter: &AuditFilter) -> bool {
        filter.matches(&self.event.kind, self.event.wallet_id.as_deref())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditVerification {
    pub entries: u64,
    pub ok: bool,
    /// The first sequence number whose hash, MAC or link does not verify.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<u64>,
    /// What is wrong at `firstBadSeq`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    pub head_hash: String,
    /// The first entry chained with HMAC-SHA256 under the daemon's audit key (1 on a store
    /// created keyed); `null` on a store not unlocked since keyed chains came in.
    pub keyed_from: Option<u64>,
    /// Entries before `keyedFrom`: chained with plain SHA-256, which shows damage but not a
    /// forger who can write the store.
    pub legacy_entries: u64,
    /// Whether every keyed entry's MAC was checked. `false` only when verifying without the
    /// master password (`bursar doctor` on a stopped daemon with no password source): links and
    /// sequence then verify, the MACs do not.
    pub mac_checked: bool,
}

/// Checks entries as they are streamed in (oldest first) and the stored head at the end.
pub(super) struct Verifier<'a> {
    head: &'a Head,
    key: Option<&'a AuditKey>,
    keyed_from: Option<u64>,
    prev: String,
    expected_seq: u64,
    legacy: u64,
    count: u64,
    bad: Option<(u64, String)>,
}

impl<'a> Verifier<'a> {
    pub(super) fn new(head: &'a Head, key: Option<&'a AuditKey>, keyed_from: Option<u64>) -> Self {
        Self {
            head,
            key,
            keyed_from,
            prev: GENESIS.to_owned(),
            expected_seq: 1,
            legacy: 0,
            count: 0,
            bad: None,
        }
    }

    /// Feeds the next entry. After the first bad one the rest are only counted.
    pub(super) fn push(&mut self, entry: &AuditEntry) {
        self.count += 1;
        if self.bad.is_some() {
            return;
        }
        if let Err(problem) = self.check(entry) {
            self.bad = Some((self.expected_seq, problem.to_owned()));
            return;
        }
        self.prev = entry.hash.clone();
        self.expected_seq += 1;
    }

    fn check(&mut self, entry: &AuditEntry) -> Result<(), &'static str> {
        if entry.seq != self.expected_seq {
            return Err("entry missing or out of sequence");
        }
        if entry.prev_hash != self.prev {
            return Err("does not link to the previous entry");
        }
        let keyed = self.keyed_from.is_some_and(|from| entry.seq >= from);
        if !keyed {
            if entry.alg.is_some() {
                return Err("a keyed entry before the chain was keyed");
            }
            if legacy_entry_hash(entry.seq, entry.ts, &entry.event, &self.prev) != entry.hash {
                return Err("hash does not match the entry");
            }
            self.legacy += 1;
            return Ok(());
        }
        if entry.alg.as_deref() != Some(HMAC_SHA256) {
            return Err("an unkeyed entry where the chain is keyed");
        }
        if let Some(key) = self.key {
            let mac = entry_mac(key, entry.seq, entry.ts, &entry.event, &self.prev);
            if !crate::secret::ct_eq(mac.as_bytes(), entry.hash.as_bytes()) {
                return Err("MAC does not verify: the entry was changed without the audit key");
            }
        }
        Ok(())
    }

    pub(super) fn finish(mut self) -> AuditVerification {
        let last = self.expected_seq - 1;
        if self.bad.is_none() {
            if let Some(from) = self.keyed_from
                && last < from
            {
                // The entry that switched the chain to keyed is written in the same commit as
                // the key: a keyed store without it lost its tail.
                self.bad = Some((last + 1, "the chain ends before its first keyed entry".into()));
            } else if self.head.seq != last || self.head.hash != self.prev {
                // A truncated tail (entries removed after the head was written) is tampering too.
                self.bad = Some((last + 1, "the stored head does not match the last entry".into()));
            }
        }
        let (first_bad_seq, problem) = match self.bad {
            Some((seq, problem)) => (Some(seq), Some(problem)),
            None => (None, None),
        };
        AuditVerification {
            entries: self.count,
            ok: first_bad_seq.is_none(),
            first_bad_seq,
            problem,
            head_hash: self.head.hash.clone(),
            keyed_from: self.keyed_from,
            legacy_entries: self.legacy,
            mac_checked: self.key.is_some() || self.keyed_from.is_none(),
        }
    }
}

//! Persistence. A tiny key-value port ([`Kv`]: get, prefix scan, atomic+durable commit) with
//! a sled implementation and an in-memory one for unit tests; typed, versioned records on
//! top; and the hash-chained audit log, appended in the same atomic commit as the change it
//! records. This module makes no domain decisions and never sees a plaintext secret.
//!
//! A backend swap (e.g. redb) means writing one more `Kv` impl: nothing above this file
//! knows sled exists.

pub mod audit;
mod kv;
pub mod records;

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;
use std::sync::{Arc, Mutex};

pub use audit::{AuditEntry, AuditEvent, AuditFilter, AuditVerification};
pub use kv::{Kv, MemKv, Op, SledKv};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store is locked by another process")]
    Locked,
    #[error("storage I/O failed: {0}")]
    Io(String),
    #[error("stored record {key} is unreadable: {reason}")]
    Corrupt { key: String, reason: String },
}

/// Key layout. One flat keyspace; prefixes keep scans cheap and the layout obvious.
pub mod keys {
    pub const KEYSTORE: &str = "meta/keystore";
    pub const DAEMON: &str = "meta/daemon";
    pub const AUDIT_HEAD: &str = "meta/audit_head";
    pub const JWT_SECRET: &str = "secret/jwt";
    pub const WALLETS: &str = "wallet/";
    pub const SESSIONS: &str = "session/";
    pub const AUDIT_LOG: &str = "auditlog/";
    pub const POLICIES: &str = "policy/";
    pub const TXS: &str = "tx/";
    /// Index of transfers not yet final (what the workers scan): `active/<tx id>` → wallet id.
    pub const ACTIVE_TXS: &str = "active/";

    pub fn wallet(id: impl std::fmt::Display) -> String {
        format!("{WALLETS}{id}")
    }
    pub fn session(id: impl std::fmt::Display) -> String {
        format!("{SESSIONS}{id}")
    }
    pub fn policy(wallet: impl std::fmt::Display, id: impl std::fmt::Display) -> String {
        format!("{POLICIES}{wallet}/{id}")
    }
    pub fn wallet_policies(wallet: impl std::fmt::Display) -> String {
        format!("{POLICIES}{wallet}/")
    }
    pub fn tx(wallet: impl std::fmt::Display, id: impl std::fmt::Display) -> String {
        format!("{TXS}{wallet}/{id}")
    }
    pub fn wallet_txs(wallet: impl std::fmt::Display) -> String {
        format!("{TXS}{wallet}/")
    }
    pub fn active_tx(id: impl std::fmt::Display) -> String {
        format!("{ACTIVE_TXS}{id}")
    }
    pub fn idempotency(wallet: impl std::fmt::Display, key_hash: &str) -> String {
        format!("idem/{wallet}/{key_hash}")
    }
    pub fn budget(wallet: impl std::fmt::Display, period: &str) -> String {
        format!("budget/{wallet}/{period}")
    }
}

/// Typed access over a [`Kv`]. All writes go through [`Store::commit`], which serialises
/// writers, appends their audit events to the chain, and commits both atomically.
pub struct Store {
    kv: Arc<dyn Kv>,
    writer: Mutex<audit::Head>,
}

/// A set of writes and the audit events that describe them, committed together.
#[derive(Default)]
pub struct Batch {
    ops: Vec<Op>,
    events: Vec<AuditEvent>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put<T: Serialize>(&mut self, key: impl Into<String>, value: &T) -> &mut Self {
        let bytes = serde_json::to_vec(value).expect("records serialise infallibly");
        self.ops.push(Op::Put(key.into().into_bytes(), bytes));
        self
    }

    pub fn delete(&mut self, key: impl Into<String>) -> &mut Self {
        self.ops.push(Op::Delete(key.into().into_bytes()));
        self
    }

    pub fn audit(&mut self, event: AuditEvent) -> &mut Self {
        self.events.push(event);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.events.is_empty()
    }
}

impl Store {
    /// Opens (or creates) the sled store in `dir`. Fails with [`StoreError::Locked`] when
    /// another process (a running daemon) holds it.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::with_kv(Arc::new(SledKv::open(dir)?))
    }

    pub fn in_memory() -> Self {
        Self::with_kv(Arc::new(MemKv::default())).expect("empty memory store opens")
    }

    pub fn with_kv(kv: Arc<dyn Kv>) -> Result<Self, StoreError> {
        let head = match kv.get(keys::AUDIT_HEAD.as_bytes())? {
            Some(bytes) => decode(keys::AUDIT_HEAD, &bytes)?,
            None => audit::Head::genesis(),
        };
        Ok(Self {
            kv,
            writer: Mutex::new(head),
        })
    }

    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.kv
            .get(key.as_bytes())?
            .map(|bytes| decode(key, &bytes))
            .transpose()
    }

    pub fn list<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<T>, StoreError> {
        self.kv
            .scan_prefix(prefix.as_bytes())?
            .into_iter()
            .map(|(key, bytes)| decode(&String::from_utf8_lossy(&key), &bytes))
            .collect()
    }

    /// Like [`Store::list`], with each record's key.
    pub fn list_with_keys<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<(String, T)>, StoreError> {
        self.kv
            .scan_prefix(prefix.as_bytes())?
            .into_iter()
            .map(|(key, bytes)| {
                let key = String::from_utf8_lossy(&key).into_owned();
                let value = decode(&key, &bytes)?;
                Ok((key, value))
            })
            .collect()
    }

    /// Commits `batch` atomically and durably (flushed before returning). The audit events
    /// are chained onto the log in the same commit: if the audit write fails, so does the
    /// change.
    pub fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        let mut head = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut ops = batch.ops;
        let mut next = head.clone();
        for event in batch.events {
            let entry = next.append(event);
            ops.push(Op::Put(
                audit::entry_key(entry.seq).into_bytes(),
                serde_json::to_vec(&entry).expect("serialise"),
            ));
        }
        if next != *head {
            ops.push(Op::Put(
                keys::AUDIT_HEAD.as_bytes().to_vec(),
                serde_json::to_vec(&next).expect("serialise"),
            ));
        }
        self.kv.commit(&ops)?;
        *head = next;
        Ok(())
    }

    /// Appends audit events alone (e.g. a failed authentication).
    pub fn audit(&self, event: AuditEvent) -> Result<(), StoreError> {
        let mut batch = Batch::new();
        batch.audit(event);
        self.commit(batch)
    }

    pub fn audit_list(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let all: Vec<AuditEntry> = self.list(keys::AUDIT_LOG)?;
        Ok(filter.apply(all))
    }

    /// Number of entries in the audit log (the head's sequence number).
    pub fn audit_len(&self) -> u64 {
        self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).seq
    }

    /// Recomputes the whole chain and compares it with the stored head.
    pub fn audit_verify(&self) -> Result<AuditVerification, StoreError> {
        let entries: Vec<AuditEntry> = self.list(keys::AUDIT_LOG)?;
        let head = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        Ok(audit::verify(&entries, &head))
    }
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|err| StoreError::Corrupt {
        key: key.to_owned(),
        reason: err.to_string(),
    })
}

/// Serde adapter: store domain newtypes by their `Display`/`FromStr` forms, so `domain`
/// stays free of serde.
pub mod as_string {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use std::fmt::Display;
    use std::str::FromStr;

    pub fn serialize<T: Display, S: Serializer>(value: &T, ser: S) -> Result<S::Ok, S::Error> {
        ser.collect_str(value)
    }

    pub fn deserialize<'de, T, D>(de: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let s = String::deserialize(de)?;
        s.parse().map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests;

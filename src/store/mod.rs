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
mod txs;

use crate::domain::Page;
use crate::keystore::AuditKey;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// What `audit_list` reads (a domain type: the edges name it from there).
pub use crate::domain::AuditFilter;
pub use audit::{AuditEntry, AuditEvent, AuditVerification};
pub use kv::{Entries, Kv, MemKv, Op, Order, SledKv};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store is locked by another process")]
    Locked,
    #[error("storage I/O failed: {0}")]
    Io(String),
    #[error("stored record {key} is unreadable: {reason}")]
    Corrupt { key: String, reason: String },
    /// Appending to the keyed chain needs the audit key, which only an unlocked keystore
    /// hands over (events from before unlock go through [`Store::audit_pending`]).
    #[error("the audit log cannot be appended to before unlock")]
    AuditKeyNotLoaded,
    /// The keystore says the chain is keyed, but `secret/audit` is gone.
    #[error(
        "the audit key (secret/audit) is missing although the keystore says the audit chain is keyed: the store was tampered with or damaged; restore it from a backup"
    )]
    AuditKeyMissing,
}

/// Key layout. One flat keyspace; prefixes keep scans cheap and the layout obvious.
pub mod keys {
    pub const KEYSTORE: &str = "meta/keystore";
    pub const DAEMON: &str = "meta/daemon";
    pub const AUDIT_HEAD: &str = "meta/audit_head";
    /// Marks the (wallet, status) transfer index as complete (see `store::txs`).
    pub const TX_INDEX: &str = "meta/tx_index";
    pub const JWT_SECRET: &str = "secret/jwt";
    /// The audit chain's key, sealed, with the first sequence number it covers.
    pub const AUDIT_KEY: &str = "secret/audit";
    /// Audit events recorded while the keystore was locked (a failed unlock), chained in at
    /// the next unlock.
    pub const AUDIT_PENDING: &str = "auditpending/";
    pub const WALLETS: &str = "wallet/";
    pub const SESSIONS: &str = "session/";
    pub const AUDIT_LOG: &str = "auditlog/";
    pub const POLICIES: &str = "policy/";
    /// Transfers by wallet, in time order: ids are UUIDv7, so `tx/<wallet>/<id>` is also the
    /// (wallet, created time) index.
    pub const TXS: &str = "tx/";
    /// Transfers by (wallet, status): `txstatus/<wallet>/<STATUS>/<tx id>` → null.
    pub const TX_STATUS: &str = "txstatus/";
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
    pub fn tx_status(wallet: impl std::fmt::Display, status: &str, id: impl std::fmt::Display) -> String {
        format!("{TX_STATUS}{wallet}/{status}/{id}")
    }
    pub fn wallet_status_txs(wallet: impl std::fmt::Display, status: &str) -> String {
        format!("{TX_STATUS}{wallet}/{status}/")
    }
    pub fn active_tx(id: impl std::fmt::Display) -> String {
        format!("{ACTIVE_TXS}{id}")
    }
    pub fn idempotency(wallet: impl std::fmt::Display, key_hash: &str) -> String {
        format!("idem/{wallet}/{key_hash}")
    }
    /// The `key_hash` of [`idempotency`]: SHA-256 of the (trimmed) key, hex.
    pub fn idempotency_hash(key: &str) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(key.as_bytes()))
    }
    pub fn budget(wallet: impl std::fmt::Display, period: &str) -> String {
        format!("budget/{wallet}/{period}")
    }
}

/// Typed access over a [`Kv`]. All writes go through [`Store::commit`], which serialises
/// writers, appends their audit events to the chain, and commits both atomically.
pub struct Store {
    kv: Arc<dyn Kv>,
    chain: Mutex<Chain>,
    /// Group commit: batches are applied in order under the chain lock and numbered; a
    /// commit returns once a flush that started after its batch was applied has finished —
    /// its own, or one that a concurrent commit ran meanwhile. Concurrent writers (several
    /// wallets) share fsyncs instead of queueing one each behind the chain lock.
    applied: std::sync::atomic::AtomicU64,
    /// The highest batch number a finished flush covers; held while flushing.
    flushed: Mutex<u64>,
}

/// The writer's view of the audit chain.
struct Chain {
    head: audit::Head,
    /// Set at unlock; until then nothing can be appended.
    key: Option<audit::ChainKey>,
    /// A failed commit whose head could not be re-read: read it before the next append.
    head_unknown: bool,
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

/// How many audit entries one filtered listing reads at most before it answers with what it
/// found and a cursor to go on from.
const AUDIT_SCAN_BUDGET: usize = 10_000;
const AUDIT_CHUNK: usize = 500;

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
        let head = read_head(kv.as_ref())?;
        Ok(Self {
            kv,
            chain: Mutex::new(Chain {
                head,
                key: None,
                head_unknown: false,
            }),
            applied: std::sync::atomic::AtomicU64::new(0),
            flushed: Mutex::new(0),
        })
    }

    /// Hands the store the audit key from the unlocked keystore: from here on every appended
    /// entry is MACed with it. `keyed_from` is the first sequence number it covers (1 on a
    /// store created keyed), as bound into the sealed key.
    pub fn set_audit_key(&self, key: AuditKey, keyed_from: u64) {
        self.chain().key = Some(audit::ChainKey {
            key: Arc::new(key),
            keyed_from,
        });
    }

    fn chain(&self) -> std::sync::MutexGuard<'_, Chain> {
        self.chain.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
    ///
    /// Group commit: a flush covers every batch applied before it began, so concurrent
    /// committers share fsyncs. On the daemon's multi-threaded runtime the wait for the flush
    /// is `block_in_place`: the worker's other tasks move to another thread meanwhile, so they
    /// can apply their batches and be covered by the same flush instead of queueing behind it.
    pub fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        let number = self.apply(batch)?;
        match tokio::runtime::Handle::try_current() {
            Ok(rt) if rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| self.make_durable(number))
            }
            _ => self.make_durable(number),
        }
    }

    /// Applies `batch` atomically — readers see it at once, its audit events are chained —
    /// without waiting for it to be durable: the next [`Store::commit`] (by anyone) flushes it
    /// with its own batch, and a crash before that loses it along with everything after it.
    /// sled's own background flush (every 500 ms) bounds how long that can be. Only for a
    /// change that nothing outside the process has seen before a commit that follows it (an
    /// INSTANT decision, whose answer waits for the signed transfer's commit), or one that
    /// restates what the chain holds (a receipt: the reconciler reads it again after a crash).
    pub fn stage(&self, batch: Batch) -> Result<(), StoreError> {
        self.apply(batch).map(|_| ())
    }

    /// Returns once batch `number` is flushed, by a flush of its own or one that covered it.
    fn make_durable(&self, number: u64) -> Result<(), StoreError> {
        let mut flushed = self.flushed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if *flushed >= number {
            return Ok(()); // a flush that began after this batch was applied covered it
        }
        let covers = self.applied.load(std::sync::atomic::Ordering::Acquire);
        if let Err(err) = self.kv.flush() {
            // Applied (readers see it, the head counts it) but maybe not durable: reported,
            // and the next flush retries it with everything after it.
            tracing::error!(error = %err, "store flush failed");
            return Err(err);
        }
        *flushed = covers;
        crate::metrics::store_flushed();
        Ok(())
    }

    /// Applies `batch` under the chain lock (audit entries chained, sequence numbers in
    /// order) and returns its batch number.
    fn apply(&self, batch: Batch) -> Result<u64, StoreError> {
        let mut chain = self.chain();
        if chain.head_unknown {
            chain.head = read_head(self.kv.as_ref())?;
            chain.head_unknown = false;
        }
        let mut ops = batch.ops;
        let mut next = chain.head.clone();
        let appended = batch.events.len();
        if !batch.events.is_empty() {
            let key = chain.key.as_ref().ok_or(StoreError::AuditKeyNotLoaded)?;
            for event in batch.events {
                let entry = next.append(event, &key.key);
                ops.push(Op::Put(
                    audit::entry_key(entry.seq).into_bytes(),
                    serde_json::to_vec(&entry).expect("serialise"),
                ));
            }
            ops.push(Op::Put(
                keys::AUDIT_HEAD.as_bytes().to_vec(),
                serde_json::to_vec(&next).expect("serialise"),
            ));
        }
        if let Err(err) = self.kv.apply(&ops) {
            // A failed apply may still have gone in. Take the head from the store rather than
            // assume either way, so the next append never reuses a sequence number (or
            // overwrites the entry that holds it).
            match read_head(self.kv.as_ref()) {
                Ok(stored) => chain.head = stored,
                Err(_) => chain.head_unknown = true,
            }
            tracing::error!(error = %err, head = chain.head.seq, "store commit failed");
            return Err(err);
        }
        chain.head = next;
        crate::metrics::audit_written(appended);
        Ok(self.applied.fetch_add(1, std::sync::atomic::Ordering::AcqRel) + 1)
    }

    /// Every key and value, as of one instant between commits: writers wait while it reads
    /// (every commit takes the same lock), so a backup never holds half a change.
    pub fn snapshot(&self) -> Result<kv::Entries, StoreError> {
        let _chain = self.chain();
        self.kv.scan_prefix(b"")
    }

    /// A new store in `dir` (which must not hold one) with exactly `entries`, in one atomic,
    /// flushed commit: a backup's restore.
    pub fn create_from(dir: &Path, entries: kv::Entries) -> Result<Self, StoreError> {
        let kv = SledKv::open(dir)?;
        if !kv.scan_range(b"", &[0xff; 8], Order::Ascending, 1)?.is_empty() {
            return Err(StoreError::Io(format!("{} already holds a store", dir.display())));
        }
        let ops: Vec<Op> = entries.into_iter().map(|(k, v)| Op::Put(k, v)).collect();
        kv.commit(&ops)?;
        Self::with_kv(Arc::new(kv))
    }

    /// Appends audit events alone (e.g. a failed authentication).
    pub fn audit(&self, event: AuditEvent) -> Result<(), StoreError> {
        let mut batch = Batch::new();
        batch.audit(event);
        self.commit(batch)
    }

    /// Records an event while the keystore is locked (there is no audit key yet, e.g. a
    /// failed unlock): durable at once, chained into the log by [`Store::append_pending`] at
    /// the next unlock. Unauthenticated until then, like everything a locked daemon writes.
    pub fn audit_pending(&self, event: AuditEvent) -> Result<(), StoreError> {
        let now_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        let key = format!("{}{now_ms:020}-{}", keys::AUDIT_PENDING, uuid::Uuid::new_v4().simple());
        let mut event = event;
        if let serde_json::Value::Object(detail) = &mut event.detail {
            detail.insert(
                "queuedAt".into(),
                serde_json::json!(i64::try_from(now_ms).unwrap_or(i64::MAX)),
            );
        }
        self.kv.commit(&[Op::Put(
            key.into_bytes(),
            serde_json::to_vec(&event).expect("serialise"),
        )])
    }

    /// Chains the events recorded while locked into the log (oldest first) and removes them,
    /// in one commit. Returns how many there were.
    pub fn append_pending(&self) -> Result<usize, StoreError> {
        let pending: Vec<(String, AuditEvent)> = self.list_with_keys(keys::AUDIT_PENDING)?;
        if pending.is_empty() {
            return Ok(0);
        }
        let mut batch = Batch::new();
        for (key, event) in &pending {
            batch.delete(key.as_str()).audit(event.clone());
        }
        self.commit(batch)?;
        Ok(pending.len())
    }

    /// One page of the audit log, oldest first: the newest entries below `filter.before`
    /// (and above `filter.after_seq`) that match. Reads at most `limit` entries unfiltered,
    /// and at most [`AUDIT_SCAN_BUDGET`] with a kind or wallet filter (then the page may be
    /// short, and `next_before` says where to go on).
    pub fn audit_list(&self, filter: &AuditFilter) -> Result<Page<AuditEntry, u64>, StoreError> {
        let head_seq = self.audit_len();
        let limit = filter.limit();
        let lower = filter.after_seq.map_or(1, |a| a.saturating_add(1));
        let mut cursor = filter
            .before
            .map_or(head_seq.saturating_add(1), |b| b.min(head_seq.saturating_add(1)));
        let budget = if filter.is_filtered() { AUDIT_SCAN_BUDGET } else { limit };
        let (mut items, mut scanned) = (Vec::new(), 0);
        'scan: while cursor > lower && items.len() < limit && scanned < budget {
            let chunk = AUDIT_CHUNK.min(budget - scanned);
            let rows = self.kv.scan_range(
                audit::entry_key(lower).as_bytes(),
                audit::entry_key(cursor).as_bytes(),
                Order::Descending,
                chunk,
            )?;
            if rows.is_empty() {
                cursor = lower;
                break;
            }
            for (key, bytes) in rows {
                let key = String::from_utf8_lossy(&key).into_owned();
                let seq = key
                    .strip_prefix(keys::AUDIT_LOG)
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| StoreError::Corrupt {
                        key: key.clone(),
                        reason: "not an audit entry key".into(),
                    })?;
                let entry: AuditEntry = decode(&key, &bytes)?;
                cursor = seq;
                scanned += 1;
                if entry.listed_by(filter) {
                    items.push(entry);
                    if items.len() == limit {
                        break 'scan;
                    }
                }
            }
        }
        items.reverse();
        Ok(Page {
            items,
            next_before: (cursor > lower).then_some(cursor),
        })
    }

    /// Number of entries in the audit log (the head's sequence number).
    pub fn audit_len(&self) -> u64 {
        self.chain().head.seq
    }

    /// Recomputes the chain from the first entry up to the stored head: every link, every
    /// legacy hash, and (once the audit key is loaded) every MAC. Streams the log in chunks.
    pub fn audit_verify(&self) -> Result<AuditVerification, StoreError> {
        let (head, key) = {
            let chain = self.chain();
            (chain.head.clone(), chain.key.clone())
        };
        // Without the key (a stopped daemon checked offline without a password) the switch
        // point comes from the stored record: links and legacy hashes still verify.
        let keyed_from = match &key {
            Some(k) => Some(k.keyed_from),
            None => self
                .get::<records::AuditKeyRecord>(keys::AUDIT_KEY)?
                .map(|r| r.keyed_from),
        };
        let mut verifier = audit::Verifier::new(&head, key.as_ref().map(|k| k.key.as_ref()), keyed_from);
        let end = audit::entry_key(head.seq.saturating_add(1));
        let mut next = 1;
        loop {
            let rows = self.kv.scan_range(
                audit::entry_key(next).as_bytes(),
                end.as_bytes(),
                Order::Ascending,
                AUDIT_CHUNK,
            )?;
            let Some((last_key, _)) = rows.last() else { break };
            let last_key = String::from_utf8_lossy(last_key).into_owned();
            for (key, bytes) in &rows {
                let entry: AuditEntry = decode(&String::from_utf8_lossy(key), bytes)?;
                verifier.push(&entry);
            }
            next = last_key
                .strip_prefix(keys::AUDIT_LOG)
                .and_then(|s| s.parse::<u64>().ok())
                .map_or(u64::MAX, |s| s.saturating_add(1));
            if rows.len() < AUDIT_CHUNK {
                break;
            }
        }
        Ok(verifier.finish())
    }
}

fn read_head(kv: &dyn Kv) -> Result<audit::Head, StoreError> {
    match kv.get(keys::AUDIT_HEAD.as_bytes())? {
        Some(bytes) => decode(keys::AUDIT_HEAD, &bytes),
        None => Ok(audit::Head::genesis()),
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

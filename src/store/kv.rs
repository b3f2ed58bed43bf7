//! The storage port and its implementations.

use super::StoreError;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

/// One write in an atomic batch.
#[derive(Debug, Clone)]
pub enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

/// Key-value pairs, in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Which end of a range a bounded scan starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Ascending,
    Descending,
}

/// The whole storage port. `commit` is atomic (all or nothing, also across a crash) and
/// durable when it returns; when it fails, the batch may or may not have been applied (sled:
/// applied, then the flush failed), so callers re-read what they cache. The bounded scans
/// read at most `limit` entries of `[start, end)`: what keeps listings and counters from
/// growing with the history.
pub trait Kv: Send + Sync + 'static {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, StoreError>;
    fn scan_range(&self, start: &[u8], end: &[u8], order: Order, limit: usize) -> Result<Entries, StoreError>;
    /// How many keys `[start, end)` holds, counting no further than `limit`.
    fn count_range(&self, start: &[u8], end: &[u8], limit: usize) -> Result<usize, StoreError>;
    /// Applies `ops` atomically: visible to readers at once, durable after the next `flush`.
    fn apply(&self, ops: &[Op]) -> Result<(), StoreError>;
    /// Makes everything applied so far durable.
    fn flush(&self) -> Result<(), StoreError>;
    /// `apply` then `flush`.
    fn commit(&self, ops: &[Op]) -> Result<(), StoreError> {
        self.apply(ops)?;
        self.flush()
    }
}

/// sled 0.34: one tree, `apply_batch` for atomicity, `flush` for durability.
pub struct SledKv {
    db: sled::Db,
}

impl SledKv {
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        // Create the directory private before sled does (it would use the umask).
        if !dir.exists() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| StoreError::Io(e.to_string()))?;
        }
        let db = sled::Config::new()
            .path(dir)
            // The working set is tiny; sled's 1 GiB default cache is never needed.
            .cache_capacity(16 * 1024 * 1024)
            .mode(sled::Mode::LowSpace)
            .open()
            .map_err(|err| match err {
                sled::Error::Io(io) if is_lock_error(&io) => StoreError::Locked,
                other => StoreError::Io(other.to_string()),
            })?;
        Ok(Self { db })
    }
}

fn is_lock_error(err: &std::io::Error) -> bool {
    err.kind() == std::io::ErrorKind::WouldBlock || err.to_string().contains("lock")
}

fn io(err: sled::Error) -> StoreError {
    StoreError::Io(err.to_string())
}

impl Kv for SledKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get(key).map_err(io)?.map(|v| v.to_vec()))
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, StoreError> {
        self.db
            .scan_prefix(prefix)
            .map(|it| it.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(io))
            .collect()
    }

    fn scan_range(&self, start: &[u8], end: &[u8], order: Order, limit: usize) -> Result<Entries, StoreError> {
        if start >= end {
            return Ok(Vec::new());
        }
        let range = self.db.range(start..end);
        let pair = |it: sled::Result<(sled::IVec, sled::IVec)>| it.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(io);
        match order {
            Order::Ascending => range.take(limit).map(pair).collect(),
            Order::Descending => range.rev().take(limit).map(pair).collect(),
        }
    }

    fn count_range(&self, start: &[u8], end: &[u8], limit: usize) -> Result<usize, StoreError> {
        if start >= end {
            return Ok(0);
        }
        let mut n = 0;
        for key in self.db.range(start..end).keys().take(limit) {
            key.map_err(io)?;
            n += 1;
        }
        Ok(n)
    }

    fn apply(&self, ops: &[Op]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for op in ops {
            match op {
                Op::Put(k, v) => batch.insert(k.as_slice(), v.as_slice()),
                Op::Delete(k) => batch.remove(k.as_slice()),
            }
        }
        self.db.apply_batch(batch).map_err(io)
    }

    fn flush(&self) -> Result<(), StoreError> {
        // Applied, but not yet durable: a failure here leaves the batch visible to readers.
        if crate::faults::fail_once("flush_fails_once") {
            return Err(StoreError::Io("test fault: flush failed".into()));
        }
        // sled writes are durable only after flush.
        self.db.flush().map_err(io)?;
        Ok(())
    }
}

impl Drop for SledKv {
    fn drop(&mut self) {
        let _ = self.db.flush();
    }
}

/// In-memory store for unit tests.
#[derive(Default)]
pub struct MemKv(Mutex<BTreeMap<Vec<u8>, Vec<u8>>>);

impl Kv for MemKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.lock().expect("mem store").get(key).cloned())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, StoreError> {
        let map = self.0.lock().expect("mem store");
        Ok(map
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn scan_range(&self, start: &[u8], end: &[u8], order: Order, limit: usize) -> Result<Entries, StoreError> {
        if start >= end {
            return Ok(Vec::new());
        }
        let map = self.0.lock().expect("mem store");
        let range = map.range(start.to_vec()..end.to_vec());
        let pair = |(k, v): (&Vec<u8>, &Vec<u8>)| (k.clone(), v.clone());
        Ok(match order {
            Order::Ascending => range.take(limit).map(pair).collect(),
            Order::Descending => range.rev().take(limit).map(pair).collect(),
        })
    }

    fn count_range(&self, start: &[u8], end: &[u8], limit: usize) -> Result<usize, StoreError> {
        if start >= end {
            return Ok(0);
        }
        let map = self.0.lock().expect("mem store");
        Ok(map.range(start.to_vec()..end.to_vec()).take(limit).count())
    }

    fn apply(&self, ops: &[Op]) -> Result<(), StoreError> {
        let mut map = self.0.lock().expect("mem store");
        for op in ops {
            match op {
                Op::Put(k, v) => map.insert(k.clone(), v.clone()),
                Op::Delete(k) => map.remove(k),
            };
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

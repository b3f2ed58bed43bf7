//! Backups and restores of the whole store (`bursar backup create|restore`).
//!
//! A backup is consistent: taken by the running daemon (master-authenticated; the snapshot
//! holds the commit lock while it reads) or from a stopped store. A restore never touches
//! the live store until the archive has opened, its contents are complete, and a new store
//! built from them in a sibling directory has been checked (it opens, its audit chain
//! verifies — MACs included when the master password is at hand); only then are the two
//! directories swapped.

use super::{MasterAuth, Result, Service, ServiceError, now};
use crate::backup::{self, BackupError};
use crate::keystore::{KdfParams, KeystoreMeta};
use crate::secret::Passphrase;
use crate::store::records::{DaemonRecord, SessionRecord, WalletRecord};
use crate::store::{AuditEvent, AuditVerification, Entries, Store, StoreError, keys};
use std::path::{Path, PathBuf};

impl From<BackupError> for ServiceError {
    fn from(err: BackupError) -> Self {
        match err {
            BackupError::DoesNotOpen => ServiceError::Forbidden(err.to_string()),
            other => ServiceError::InvalidInput(other.to_string()),
        }
    }
}

impl Service {
    /// An encrypted archive of the whole store, sealed under `passphrase` with the
    /// configured Argon2id cost. Audited (`backup_created`) just before the snapshot, so the
    /// archive holds the record of its own making.
    pub fn backup(&self, _: &MasterAuth, passphrase: &Passphrase) -> Result<Vec<u8>> {
        let daemon_id = self.daemon.read().expect("daemon lock").daemon_id.clone();
        self.store
            .audit(AuditEvent::new("backup_created", "master").detail(serde_json::json!({
                "kdf": self.config.keystore.kdf()
            })))?;
        let entries = self.store.snapshot()?;
        Ok(backup::seal(
            passphrase,
            self.config.keystore.kdf(),
            &entries,
            now(),
            &daemon_id,
        )?)
    }
}

/// `bursar backup create` on a stopped store (no daemon holds it). When `passphrase` is the
/// master password, it must open the keystore (one KDF run): a typo would otherwise make a
/// backup that no password you know restores. Not audited: the audit key needs an unlock.
pub fn backup_offline(store_dir: &Path, kdf: KdfParams, passphrase: &Passphrase, is_master: bool) -> Result<Vec<u8>> {
    let store = Store::open(store_dir)?;
    let meta: KeystoreMeta = store
        .get(keys::KEYSTORE)?
        .ok_or_else(|| ServiceError::NotInitialised(store_dir.display().to_string()))?;
    if is_master && !meta.opens_with(passphrase)? {
        return Err(ServiceError::WrongPassword);
    }
    let daemon: DaemonRecord = store
        .get(keys::DAEMON)?
        .ok_or_else(|| ServiceError::NotInitialised(store_dir.display().to_string()))?;
    let entries = store.snapshot()?;
    Ok(backup::seal(passphrase, kdf, &entries, now(), &daemon.daemon_id)?)
}

/// What a restore did.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreReport {
    pub created_at: i64,
    pub daemon_id: String,
    pub entries: usize,
    pub wallets: usize,
    pub sessions_kept: usize,
    pub sessions_dropped: usize,
    pub transfers: usize,
    pub replaced_existing_store: bool,
    /// The restored audit chain, verified before the swap (MACs when `macChecked`).
    pub audit: AuditVerification,
}

/// How to restore.
#[derive(Debug, Clone, Copy, Default)]
pub struct RestoreOptions {
    /// Replace an existing store.
    pub force: bool,
    /// Leave out every agent session: their tokens stop working.
    pub drop_sessions: bool,
}

/// `bursar backup restore`: opens `archive` with `passphrase`, builds the store in a sibling
/// directory, checks it, and swaps it in. Refuses a store held by a running daemon, and an
/// existing store without `force`. `master` (when at hand) must open the restored keystore.
pub fn restore(
    store_dir: &Path,
    archive: &[u8],
    passphrase: &Passphrase,
    master: Option<&Passphrase>,
    options: RestoreOptions,
) -> Result<RestoreReport> {
    // Opening the live store proves no daemon holds it, and tells whether there is one.
    let existing = if store_dir.exists() {
        let live = Store::open(store_dir).map_err(|err| match err {
            StoreError::Locked => ServiceError::Conflict(
                "the store is held by a running daemon: stop it (`bursar stop`) before restoring".into(),
            ),
            other => other.into(),
        })?;
        let initialised = live.get::<KeystoreMeta>(keys::KEYSTORE)?.is_some();
        drop(live);
        initialised
    } else {
        false
    };
    if existing && !options.force {
        return Err(ServiceError::Conflict(format!(
            "{} already holds a store; restoring replaces it (its wallets, sessions and history): add --force",
            store_dir.display()
        )));
    }
    let (header, entries) = backup::open(passphrase, archive)?;
    let (entries, dropped) = if options.drop_sessions {
        let (sessions, rest): (Entries, Entries) = entries
            .into_iter()
            .partition(|(k, _)| k.starts_with(keys::SESSIONS.as_bytes()));
        (rest, sessions.len())
    } else {
        (entries, 0)
    };
    let staging = sibling(store_dir, "restoring");
    remove_dir(&staging)?;
    let built = build(&staging, entries, master).map(|(wallets, sessions, transfers, audit)| RestoreReport {
        created_at: header.created_at,
        daemon_id: header.daemon_id.clone(),
        entries: header.entries as usize,
        wallets,
        sessions_kept: sessions,
        sessions_dropped: dropped,
        transfers,
        replaced_existing_store: existing,
        audit,
    });
    let report = match built {
        Ok(report) => report,
        Err(err) => {
            remove_dir(&staging)?;
            return Err(err);
        }
    };
    swap_in(store_dir, &staging)?;
    Ok(report)
}

/// The restored store in `staging`, checked: it opens with `master` when given (its audit
/// chain verifies, MACs included; links only without it), and the restore is recorded to be
/// chained in at the next unlock. (wallets, sessions, transfers, audit verification)
fn build(
    staging: &Path,
    entries: Entries,
    master: Option<&Passphrase>,
) -> Result<(usize, usize, usize, AuditVerification)> {
    let store = Store::create_from(staging, entries)?;
    let wallets: Vec<WalletRecord> = store.list(keys::WALLETS)?;
    let sessions: Vec<SessionRecord> = store.list(keys::SESSIONS)?;
    let transfers = store.list::<serde_json::Value>(keys::TXS)?.len();
    let audit = match master {
        Some(password) => super::verify_audit_offline(&store, password).map_err(|err| match err {
            ServiceError::WrongPassword => ServiceError::InvalidInput(
                "the master password at hand (BURSAR_MASTER_PASSWORD_FILE, env or recovery.key) does not open \
                 the restored keystore; nothing was restored"
                    .into(),
            ),
            other => other,
        })?,
        None => store.audit_verify()?,
    };
    if !audit.ok {
        return Err(ServiceError::InvalidInput(format!(
            "the archive's audit chain does not verify at entry {} ({}); nothing was restored",
            audit.first_bad_seq.unwrap_or(0),
            audit.problem.as_deref().unwrap_or("broken")
        )));
    }
    store.audit_pending(AuditEvent::new("backup_restored", "master").detail(serde_json::json!({
        "entries": store.snapshot()?.len(),
        "wallets": wallets.len(),
        "sessions": sessions.len(),
    })))?;
    Ok((wallets.len(), sessions.len(), transfers, audit))
}

/// `<store>.<suffix>` next to the store.
fn sibling(store_dir: &Path, suffix: &str) -> PathBuf {
    let mut name = store_dir.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    store_dir.with_file_name(name)
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(StoreError::Io(format!("removing {}: {err}", dir.display())).into())
        }
        _ => Ok(()),
    }
}

/// Renames the staged store into place: the old one aside first, then removed. A crash in
/// between leaves `<store>.replaced` (the old store) and `<store>.restoring` or `<store>`
/// (the new one): run the restore again.
fn swap_in(store_dir: &Path, staging: &Path) -> Result<()> {
    let io = |what: &str, err: std::io::Error| ServiceError::Store(StoreError::Io(format!("{what}: {err}")));
    let aside = sibling(store_dir, "replaced");
    remove_dir(&aside)?;
    if store_dir.exists() {
        std::fs::rename(store_dir, &aside).map_err(|e| io("moving the old store aside", e))?;
    }
    std::fs::rename(staging, store_dir).map_err(|e| io("moving the restored store in", e))?;
    if let Some(parent) = store_dir.parent() {
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("syncing the data directory", e))?;
    }
    remove_dir(&aside)
}

//! Use cases: the only API the edges (REST, MCP, CLI) call. Orchestrates keystore, store,
//! sessions and chains, and audits every security event in the same commit as the change.
//! Knows nothing of axum, rmcp, clap or wire types.
//!
//! Authentication results are proof types: `MasterAuth` and `SessionAuth` can only be made
//! here, and every privileged use case takes one, so "forgot to check auth" does not compile.

mod backup;
mod history;
mod owner;
mod policies;
mod summary;
mod transfers;
mod views;

pub use backup::{RestoreOptions, RestoreReport, backup_offline, restore};
pub use owner::{KillSwitchReport, OwnerMessage, OwnerProof, PanicStatus};

pub use transfers::{CheckResult, Spent, TransferRequest};
pub use views::{AuditEntryView, AuditVerificationView, PolicyView};

use crate::chains::{Balance, ChainError, Chains};
use crate::config::{Config, ConfigError};
use crate::domain::{Address, AuditFilter, ChainName, Page, Session, SessionId, TxState, Wallet, WalletId, WalletName};
use crate::keystore::{KdfParams, KeystoreError, KeystoreMeta, Unlocked, WalletKeyRef};
use crate::notify::{AuthKind, Event, Notifier};
use crate::secret::{Passphrase, random_key32};
use crate::session::{self, SessionError, SessionKeys};
use crate::store::records::{AuditKeyRecord, DaemonRecord, RECORD_VERSION, SessionRecord, TxRecord, WalletRecord};
use crate::store::{AuditEvent, AuditVerification, Batch, Store, StoreError, keys};
use secrecy::ExposeSecret;
use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

const JWT_PURPOSE: &str = "jwt";

/// One error type for every use case. Each edge maps it with an exhaustive `match`.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("authentication required: {0}")]
    Unauthenticated(&'static str),
    #[error("{0}")]
    Session(SessionError),
    #[error("too many failed attempts; wait a minute and try again")]
    RateLimited,
    /// A bounded resource is full (not an auth failure): the message says which and when.
    #[error("{0}")]
    TooMany(String),
    /// A capacity limit (e.g. `[transfers] max_open_per_wallet`): nothing was stored.
    #[error("{0}")]
    TooManyOpen(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    InvalidInput(String),
    /// One field of a request refused, and why; each edge names the field its own way.
    #[error("{field:?}: {reason}")]
    InvalidField { field: Field, reason: String },
    #[error("{0}")]
    Conflict(String),
    #[error("owner signature rejected: {0}")]
    OwnerRejected(String),
    #[error("{0}")]
    Frozen(String),
    #[error("{0}")]
    Chain(ChainError),
    #[error("bursar is not initialised in {0}; run `bursar init`")]
    NotInitialised(String),
    #[error("wrong master password")]
    WrongPassword,
    #[error(transparent)]
    Keystore(KeystoreError),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Config(ConfigError),
}

impl From<StoreError> for ServiceError {
    fn from(err: StoreError) -> Self {
        ServiceError::Store(err)
    }
}

impl From<KeystoreError> for ServiceError {
    fn from(err: KeystoreError) -> Self {
        match err {
            KeystoreError::WrongPassword => ServiceError::WrongPassword,
            other => ServiceError::Keystore(other),
        }
    }
}

impl From<SessionError> for ServiceError {
    fn from(err: SessionError) -> Self {
        ServiceError::Session(err)
    }
}

impl From<ChainError> for ServiceError {
    fn from(err: ChainError) -> Self {
        ServiceError::Chain(err)
    }
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// Proof that the caller presented the master password. Only `Service` makes one.
#[derive(Debug, Clone)]
pub struct MasterAuth(());

/// Proof that the caller holds a valid session token, and for which wallet.
#[derive(Debug, Clone)]
pub struct SessionAuth {
    pub session_id: SessionId,
    pub wallet_id: WalletId,
    /// The exact token presented, needed to renew it (never logged, never stored).
    token_hash: String,
}

/// Options for a new session; `None` takes the configured default.
#[derive(Debug, Clone, Default)]
pub struct NewSession {
    pub wallet_id: WalletId,
    pub ttl_seconds: Option<u64>,
    pub max_renewals: Option<u32>,
    pub absolute_lifetime_seconds: Option<u64>,
}

/// A session with its (only) token; the token is shown once.
pub struct IssuedSession {
    pub session: Session,
    pub token: String,
}

impl std::fmt::Debug for IssuedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IssuedSession {{ session: {}, token: [REDACTED] }}", self.session.id)
    }
}

/// What `set_master` does with `<data>/recovery.key` when there is one: keep it (rewritten
/// with the new password in the same step) or delete it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryKeyChoice {
    #[default]
    Keep,
    Delete,
}

/// What happened to `<data>/recovery.key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryKeyOutcome {
    /// It now holds the new password.
    Rewritten,
    Deleted,
    /// There was none (none is created).
    Absent,
    /// The password changed, but the file step failed (logged): the file still holds the old
    /// password; `bursar start` completes a staged rewrite.
    NotUpdated,
}

/// What `GET /v1/wallet/balance` answers.
pub struct WalletBalance {
    pub wallet: Wallet,
    pub balance: Balance,
}

#[derive(Debug, Clone)]
pub struct DaemonStatus {
    pub version: &'static str,
    pub uptime_seconds: u64,
    pub wallets: usize,
    pub active_sessions: usize,
    pub chains: Vec<String>,
    pub audit_entries: u64,
    pub kdf: KdfParams,
    pub master_changed_at: Option<i64>,
}

/// A field of a transfer request, typed so that no edge has to rewrite another's message:
/// REST calls it `amountBaseUnits`, an MCP tool argument `amount_base_units`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    To,
    Token,
    Amount,
    AmountBaseUnits,
    IdempotencyKey,
}

pub struct Service {
    config: Config,
    store: Store,
    keys: RwLock<Arc<Unlocked>>,
    sessions: RwLock<Arc<SessionKeys>>,
    daemon: RwLock<DaemonRecord>,
    chains: Chains,
    master_failures: FailureWindows<Option<std::net::IpAddr>>,
    /// Serialises read-modify-write use cases (sessions, key changes) so two requests
    /// cannot both act on the same stale record.
    write_lock: Mutex<()>,
    prices: crate::prices::Prices,
    wallet_locks: Mutex<std::collections::HashMap<WalletId, Arc<transfers::WalletLocks>>>,
    owner: owner::OwnerState,
    started: Instant,
    shutdown: tokio::sync::Notify,
    /// Operator notifications; `notify()` never blocks, the senders run in the background.
    notifier: Notifier,
    /// `<data>/recovery.key`, which `set_master` rewrites or deletes in the same step.
    recovery_key: crate::config::RecoveryKey,
    /// `[metrics] access = "token"`: the scrape token, re-read on SIGHUP.
    metrics_token: RwLock<Option<Passphrase>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Service")
    }
}

/// Failed authentications in the last minute, counted per key (a source address for the
/// master password, a wallet for owner proofs). A count only ever slows or refuses *wrong*
/// credentials: the caller checks the credential first, so a right one is never refused
/// because someone else sent wrong ones (that would hand the agent a switch that turns the
/// brakes off).
pub(crate) struct FailureWindows<K>(Mutex<std::collections::HashMap<K, VecDeque<Instant>>>);

impl<K> Default for FailureWindows<K> {
    fn default() -> Self {
        Self(Mutex::new(std::collections::HashMap::new()))
    }
}

impl<K: std::hash::Hash + Eq + Copy> FailureWindows<K> {
    const WINDOW: Duration = Duration::from_secs(60);
    /// Keys kept at most; past it, keys whose window is empty are dropped.
    const MAX_KEYS: usize = 4096;

    /// Records a failure for `key`; the count in its window, this one included.
    fn record(&self, key: K) -> usize {
        let mut all = self.0.lock().expect("failures lock");
        if all.len() >= Self::MAX_KEYS {
            all.retain(|_, v| v.back().is_some_and(|t| t.elapsed() <= Self::WINDOW));
        }
        let failures = all.entry(key).or_default();
        while failures.front().is_some_and(|t| t.elapsed() > Self::WINDOW) {
            failures.pop_front();
        }
        // Bounded: the count saturates at a size that no limit reaches.
        if failures.len() < 100_000 {
            failures.push_back(Instant::now());
        }
        failures.len()
    }
}

/// How long a wrong master password waits before its answer: nothing for the first half of
/// the per-minute limit from one source, then 100 ms more per failure, up to 2 s.
fn master_failure_delay(recent_failures: usize, limit: usize) -> Duration {
    let n = u64::try_from(recent_failures.saturating_sub(limit / 2)).unwrap_or(u64::MAX);
    Duration::from_millis(n.saturating_mul(100).min(2_000))
}

pub use crate::clock::now;

impl Service {
    /// `bursar init`: creates the keystore, the JWT secret and the daemon identity.
    pub fn initialise(store_dir: &Path, password: &Passphrase, kdf: KdfParams) -> Result<()> {
        let store = Store::open(store_dir)?;
        if store.get::<KeystoreMeta>(keys::KEYSTORE)?.is_some() {
            return Err(ServiceError::Conflict(format!(
                "bursar is already initialised in {}",
                store_dir.display()
            )));
        }
        Self::initialise_store(&store, password, kdf)
    }

    /// [`Service::initialise`] on an open, empty store.
    pub fn initialise_store(store: &Store, password: &Passphrase, kdf: KdfParams) -> Result<()> {
        let (unlocked, meta) = Unlocked::create(password, kdf)?;
        // Keyed from the first entry: the key is loaded before `init` is audited.
        let (audit_key, sealed_audit_key) = unlocked.new_audit_key(&AuditKeyRecord::purpose(1));
        store.set_audit_key(audit_key, 1);
        let jwt = random_key32();
        let daemon = DaemonRecord {
            v: RECORD_VERSION,
            daemon_id: uuid::Uuid::new_v4().simple().to_string(),
            created_at: now(),
            master_changed_at: None,
            jwt_secret_created_at: now(),
        };
        let mut batch = Batch::new();
        batch
            .put(keys::KEYSTORE, &meta)
            .put(
                keys::JWT_SECRET,
                &unlocked.seal_secret(JWT_PURPOSE, jwt.expose_secret()),
            )
            .put(keys::DAEMON, &daemon)
            .put(
                keys::AUDIT_KEY,
                &AuditKeyRecord {
                    v: RECORD_VERSION,
                    keyed_from: 1,
                    sealed: sealed_audit_key,
                },
            )
            .mark_tx_index_built()
            .audit(AuditEvent::new("init", "master").detail(serde_json::json!({ "kdf": kdf })));
        store.commit(batch)?;
        Ok(())
    }

    /// `bursar start`: opens the store, unlocks (one KDF run), verifies every wallet key.
    pub fn open(store_dir: &Path, config: Config, password: &Passphrase) -> Result<Self> {
        let store = Store::open(store_dir)?;
        let recovery_key = crate::config::RecoveryKey::in_dir(store_dir.parent().unwrap_or(store_dir));
        Self::from_parts(store, config, password, recovery_key).map_err(|e| match e {
            ServiceError::NotInitialised(_) => ServiceError::NotInitialised(store_dir.display().to_string()),
            other => other,
        })
    }

    /// A service from its parts: an initialised store (sled, or in memory for unit tests),
    /// the configuration (its chains, `fake:` ones included) and the master password.
    pub fn from_parts(
        store: Store,
        config: Config,
        password: &Passphrase,
        recovery_key: crate::config::RecoveryKey,
    ) -> Result<Self> {
        let not_initialised = || ServiceError::NotInitialised("the store".into());
        let meta: KeystoreMeta = store.get(keys::KEYSTORE)?.ok_or_else(not_initialised)?;
        let mut unlocked = match Unlocked::unlock(&meta, password) {
            Ok(u) => u,
            Err(err) => {
                // No audit key without the password: kept aside, chained in at the next unlock.
                store.audit_pending(
                    AuditEvent::new("unlock_failed", "master").detail(serde_json::json!({ "reason": err.to_string() })),
                )?;
                return Err(err.into());
            }
        };
        load_audit_key(&store, &mut unlocked)?;
        store.append_pending()?;
        if let Some(indexed) = store.build_tx_index()? {
            tracing::info!(transfers = indexed, "built the transfer status index");
        }
        let daemon: DaemonRecord = store.get(keys::DAEMON)?.ok_or_else(not_initialised)?;
        let sealed_jwt = store.get(keys::JWT_SECRET)?.ok_or_else(not_initialised)?;
        let jwt = unlocked.open_secret(JWT_PURPOSE, &sealed_jwt)?;
        // A store whose keys do not all open and match their addresses has been tampered
        // with or damaged: refuse to run on it rather than fail at the first signature.
        let wallets: Vec<WalletRecord> = store.list(keys::WALLETS)?;
        for w in &wallets {
            unlocked.verify_wallet_key(key_ref(w)?).map_err(|e| {
                tracing::error!(wallet = %w.id, "wallet key failed its integrity check");
                ServiceError::Keystore(e)
            })?;
        }
        store.audit(AuditEvent::new("unlock", "master").detail(serde_json::json!({ "wallets": wallets.len() })))?;
        let chains = Chains::new(config.chains().map_err(ServiceError::Config)?)?;
        let prices = crate::prices::Prices::new(&config.prices);
        let notifier =
            Notifier::new(&config.notifications, &config.server.public_url()).map_err(ServiceError::Config)?;
        let metrics_token = read_metrics_token(&config).map_err(ServiceError::Config)?;
        Ok(Self {
            metrics_token: RwLock::new(metrics_token),
            sessions: RwLock::new(Arc::new(SessionKeys::new(&jwt, &daemon.daemon_id))),
            config,
            store,
            keys: RwLock::new(Arc::new(unlocked)),
            daemon: RwLock::new(daemon),
            chains,
            master_failures: FailureWindows::default(),
            write_lock: Mutex::new(()),
            prices,
            wallet_locks: Mutex::new(Default::default()),
            owner: Default::default(),
            started: Instant::now(),
            shutdown: tokio::sync::Notify::new(),
            notifier,
            recovery_key,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    fn keys(&self) -> Arc<Unlocked> {
        self.keys.read().expect("keys lock").clone()
    }

    fn session_keys(&self) -> Arc<SessionKeys> {
        self.sessions.read().expect("session keys lock").clone()
    }

    // ---- authentication ----------------------------------------------------------------

    /// Checks a presented master password: keyed MAC, constant time, no KDF. The right
    /// password always passes at once. A wrong one is audited (up to the configured number
    /// per source and minute), answered after a delay that grows with that source's recent
    /// failures, and past the limit with 429 instead of 401.
    pub async fn authenticate_master(
        &self,
        presented: Option<&[u8]>,
        source: Option<std::net::IpAddr>,
    ) -> Result<MasterAuth> {
        let presented = presented.ok_or(ServiceError::Unauthenticated("X-Master-Password header missing"))?;
        if self.keys().check_master(presented) {
            return Ok(MasterAuth(()));
        }
        let limit = self.config.server.master_auth_failures_per_minute as usize;
        let count = self.master_failures.record(source);
        tracing::warn!(recent_failures = count, "master password rejected");
        self.notify_auth_failure(AuthKind::Master);
        // Audit up to the limit; beyond it the 429s say enough and the log stays bounded.
        if count <= limit {
            self.store.audit(
                AuditEvent::new("master_auth_failed", "unknown").detail(serde_json::json!({ "recentFailures": count })),
            )?;
        }
        tokio::time::sleep(master_failure_delay(count, limit)).await;
        if count > limit {
            return Err(ServiceError::RateLimited);
        }
        Err(ServiceError::WrongPassword)
    }

    /// Verifies a session token against its signature, audience, expiry, lifetime,
    /// revocation and the stored hash of the current token.
    pub fn authenticate_session(&self, token: &str) -> Result<SessionAuth> {
        let result = self.check_session(token);
        if result.is_err() {
            self.notify_auth_failure(crate::notify::AuthKind::Session);
        }
        result
    }

    fn check_session(&self, token: &str) -> Result<SessionAuth> {
        let (claims, session_id) = self.session_keys().decode(token)?;
        let record: SessionRecord = self
            .store
            .get(&keys::session(session_id))?
            .ok_or(ServiceError::Session(SessionError::Invalid))?;
        session::verify_record(&record, &claims, token, now())?;
        Ok(SessionAuth {
            session_id,
            wallet_id: record.wallet_id,
            token_hash: record.token_hash,
        })
    }

    // ---- wallets ----------------------------------------------------------------------

    pub fn create_wallet(&self, _: &MasterAuth, name: WalletName, chain: ChainName) -> Result<Wallet> {
        let adapter = self.chains.get(&chain).ok_or_else(|| {
            let known: Vec<_> = self.chains.names().map(ChainName::as_str).collect();
            ServiceError::InvalidInput(format!(
                "chain {chain} is not configured (configured: {})",
                known.join(", ")
            ))
        })?;
        let kind = adapter.config().kind;
        let _guard = self.write_lock.lock().expect("write lock");
        let keys = self.keys();
        let id = WalletId::new();
        let (address, sealed) = keys.generate_wallet_key(id, &chain, kind);
        let record = WalletRecord {
            v: RECORD_VERSION,
            id,
            name: name.as_str().to_owned(),
            chain: chain.clone(),
            kind,
            address: address.to_string(),
            created_at: now(),
            key: sealed,
            owner: None,
            frozen: None,
        };
        let mut batch = Batch::new();
        batch.put(keys::wallet(id), &record).audit(
            AuditEvent::new("wallet_created", "master")
                .wallet(id)
                .detail(serde_json::json!({ "chain": chain.as_str(), "address": record.address })),
        );
        self.store.commit(batch)?;
        tracing::info!(wallet = %id, chain = %chain, "wallet created");
        Ok(record.wallet()?)
    }

    pub fn list_wallets(&self, _: &MasterAuth) -> Result<Vec<Wallet>> {
        let mut wallets: Vec<WalletRecord> = self.store.list(keys::WALLETS)?;
        wallets.sort_by_key(|w| w.created_at);
        Ok(wallets.iter().map(WalletRecord::wallet).collect::<Result<_, _>>()?)
    }

    pub fn get_wallet(&self, _: &MasterAuth, id: WalletId) -> Result<Wallet> {
        Ok(self.wallet(id)?.wallet()?)
    }

    fn wallet(&self, id: WalletId) -> Result<WalletRecord> {
        self.store
            .get(&keys::wallet(id))?
            .ok_or_else(|| ServiceError::NotFound(format!("wallet {id}")))
    }

    /// The session's own wallet.
    pub fn session_wallet(&self, auth: &SessionAuth) -> Result<Wallet> {
        Ok(self.wallet(auth.wallet_id)?.wallet()?)
    }

    /// The adapter of the wallet's chain.
    fn adapter(&self, wallet: &WalletRecord) -> Result<&crate::chains::Adapter> {
        self.chains.get(&wallet.chain).ok_or_else(|| {
            ServiceError::InvalidInput(format!("wallet's chain {} is no longer configured", wallet.chain))
        })
    }

    pub async fn balance(&self, auth: &SessionAuth, token: Option<&str>) -> Result<WalletBalance> {
        let wallet = self.wallet(auth.wallet_id)?;
        let adapter = self.adapter(&wallet)?;
        let address = wallet.address()?;
        let balance = adapter.balance(&address, token).await?;
        Ok(WalletBalance {
            wallet: wallet.wallet()?,
            balance,
        })
    }

    // ---- sessions ---------------------------------------------------------------------

    pub fn create_session(&self, _: &MasterAuth, req: NewSession) -> Result<IssuedSession> {
        let limits = &self.config.sessions;
        let ttl = req.ttl_seconds.unwrap_or(limits.default_ttl_seconds);
        let lifetime = req
            .absolute_lifetime_seconds
            .unwrap_or(limits.default_absolute_lifetime_seconds.max(ttl));
        let max_renewals = req.max_renewals.unwrap_or(limits.default_max_renewals);
        if ttl == 0 || ttl > limits.max_ttl_seconds {
            return Err(ServiceError::InvalidInput(format!(
                "ttlSeconds must be in 1..={}",
                limits.max_ttl_seconds
            )));
        }
        if lifetime < ttl || lifetime > limits.max_absolute_lifetime_seconds {
            return Err(ServiceError::InvalidInput(format!(
                "absoluteLifetimeSeconds must be in ttlSeconds..={}",
                limits.max_absolute_lifetime_seconds
            )));
        }
        if max_renewals > 10_000 {
            return Err(ServiceError::InvalidInput("maxRenewals must be at most 10000".into()));
        }
        if let Some(f) = self.wallet(req.wallet_id)?.frozen {
            return Err(ServiceError::Frozen(format!(
                "the wallet is frozen ({}: {}); lift the kill switch before creating sessions",
                f.by, f.reason
            )));
        }
        let now = now();
        let to_i64 = |s: u64| i64::try_from(s).unwrap_or(i64::MAX);
        let id = SessionId::new();
        let absolute = now.saturating_add(to_i64(lifetime));
        let expires = now.saturating_add(to_i64(ttl)).min(absolute);
        let minted = self.session_keys().mint(id, req.wallet_id, now, expires);
        let record = SessionRecord {
            v: RECORD_VERSION,
            id,
            wallet_id: req.wallet_id,
            created_at: now,
            expires_at: expires,
            absolute_expires_at: absolute,
            ttl_seconds: ttl,
            max_renewals,
            renewals: 0,
            revoked_at: None,
            token_hash: minted.token_hash,
            jti: minted.jti,
        };
        let mut batch = Batch::new();
        batch.put(keys::session(id), &record).audit(
            AuditEvent::new("session_issued", "master")
                .wallet(req.wallet_id)
                .session(id)
                .detail(serde_json::json!({
                    "ttlSeconds": ttl, "maxRenewals": max_renewals, "absoluteExpiresAt": absolute
                })),
        );
        self.store.commit(batch)?;
        Ok(IssuedSession {
            session: (&record).into(),
            token: minted.token,
        })
    }

    pub fn list_sessions(&self, _: &MasterAuth, wallet: Option<WalletId>) -> Result<Vec<Session>> {
        let mut sessions: Vec<SessionRecord> = self.store.list(keys::SESSIONS)?;
        sessions.retain(|s| wallet.is_none_or(|w| s.wallet_id == w));
        sessions.sort_by_key(|s| s.created_at);
        Ok(sessions.iter().map(Into::into).collect())
    }

    /// Revokes a session and, in the same commit, cancels every transfer it asked for that
    /// is not signed yet (REQUESTED, DELAYED, PENDING_APPROVAL): a revoked agent leaves
    /// nothing queued behind it.
    pub async fn revoke_session(&self, _: &MasterAuth, id: SessionId) -> Result<Session> {
        let wallet = self
            .store
            .get::<SessionRecord>(&keys::session(id))?
            .ok_or_else(|| ServiceError::NotFound(format!("session {id}")))?
            .wallet_id;
        let locks = self.wallet_locks(wallet);
        let _decide = locks.decide.lock().await;
        let session = id.to_string();
        let queued: Vec<TxRecord> = self
            .active_txs()?
            .into_iter()
            .filter(|t| t.wallet_id == wallet && t.session_id.as_deref() == Some(session.as_str()))
            .collect();
        let _guard = self.write_lock.lock().expect("write lock");
        let mut record: SessionRecord = self
            .store
            .get(&keys::session(id))?
            .ok_or_else(|| ServiceError::NotFound(format!("session {id}")))?;
        let mut batch = Batch::new();
        let cancelled = self.cancel_unsigned(&mut batch, queued, "master", "its session was revoked")?;
        if record.revoked_at.is_none() {
            record.revoked_at = Some(now());
            batch.put(keys::session(id), &record).audit(
                AuditEvent::new("session_revoked", "master")
                    .wallet(record.wallet_id)
                    .session(id)
                    .detail(serde_json::json!({ "transactionsCancelled": cancelled })),
            );
        }
        if !batch.is_empty() {
            self.store.commit(batch)?;
        }
        Ok((&record).into())
    }

    /// Issues a new token for the caller's own session; the presented token dies at once.
    pub fn renew_session(&self, auth: &SessionAuth, id: SessionId) -> Result<IssuedSession> {
        if auth.session_id != id {
            return Err(ServiceError::Forbidden("a session can only renew itself".into()));
        }
        let _guard = self.write_lock.lock().expect("write lock");
        let mut record: SessionRecord = self
            .store
            .get(&keys::session(id))?
            .ok_or_else(|| ServiceError::NotFound(format!("session {id}")))?;
        // Re-check under the lock: a concurrent renewal may have replaced this token.
        if record.token_hash != auth.token_hash {
            return Err(SessionError::Superseded.into());
        }
        session::check_renewable(&record)?;
        let now = now();
        let expires = session::next_expiry(&record, now);
        let minted = self.session_keys().mint(id, record.wallet_id, now, expires);
        record.renewals += 1;
        record.expires_at = expires;
        record.token_hash = minted.token_hash;
        record.jti = minted.jti;
        let mut batch = Batch::new();
        batch.put(keys::session(id), &record).audit(
            AuditEvent::new("session_renewed", format!("session:{id}"))
                .wallet(record.wallet_id)
                .session(id)
                .detail(serde_json::json!({ "renewals": record.renewals, "expiresAt": expires })),
        );
        self.store.commit(batch)?;
        Ok(IssuedSession {
            session: (&record).into(),
            token: minted.token,
        })
    }

    /// Replaces the JWT signing secret: every outstanding token stops verifying.
    pub fn rotate_session_secret(&self, _: &MasterAuth) -> Result<()> {
        let _guard = self.write_lock.lock().expect("write lock");
        let secret = random_key32();
        let keys = self.keys();
        let mut daemon = self.daemon.read().expect("daemon lock").clone();
        daemon.jwt_secret_created_at = now();
        let mut batch = Batch::new();
        batch
            .put(keys::JWT_SECRET, &keys.seal_secret(JWT_PURPOSE, secret.expose_secret()))
            .put(keys::DAEMON, &daemon)
            .audit(AuditEvent::new("session_secret_rotated", "master"));
        self.store.commit(batch)?;
        *self.sessions.write().expect("session keys lock") =
            Arc::new(SessionKeys::new(secret.expose_secret(), &daemon.daemon_id));
        *self.daemon.write().expect("daemon lock") = daemon;
        Ok(())
    }

    // ---- master password ---------------------------------------------------------------

    /// Re-encrypts every wallet key and stored secret under `new_password` in one atomic,
    /// durable commit: a crash leaves the old state or the new one, never a mix. A kept
    /// `recovery.key` follows in the same step (staged before the commit, renamed after: see
    /// `config::RecoveryKey`), so a plain `bursar start` keeps working.
    pub fn set_master(
        &self,
        _: &MasterAuth,
        new_password: &Passphrase,
        recovery_key: RecoveryKeyChoice,
    ) -> Result<RecoveryKeyOutcome> {
        crate::secret::check_new_master_password(new_password)
            .map_err(|rule| ServiceError::InvalidInput(rule.to_string()))?;
        // The KDF runs before taking the lock; nothing it reads can change meanwhile.
        let (next, meta) = Unlocked::create(new_password, self.config.keystore.kdf())?;
        let _guard = self.write_lock.lock().expect("write lock");
        let current = self.keys();
        let mut batch = Batch::new();
        let wallets: Vec<WalletRecord> = self.store.list(keys::WALLETS)?;
        for wallet in &wallets {
            let resealed = current.reseal_wallet_key(key_ref(wallet)?, &next)?;
            batch.put(
                keys::wallet(wallet.id),
                &WalletRecord {
                    key: resealed,
                    ..wallet.clone()
                },
            );
        }
        let sealed_jwt = self
            .store
            .get(keys::JWT_SECRET)?
            .ok_or_else(|| ServiceError::NotInitialised("store".into()))?;
        batch.put(
            keys::JWT_SECRET,
            &current.reseal_secret(JWT_PURPOSE, &sealed_jwt, &next)?,
        );
        // The audit key itself stays: re-sealed, every entry MACed before keeps verifying.
        let audit_key: AuditKeyRecord = self
            .store
            .get(keys::AUDIT_KEY)?
            .ok_or_else(|| ServiceError::NotInitialised("store".into()))?;
        let purpose = AuditKeyRecord::purpose(audit_key.keyed_from);
        batch.put(
            keys::AUDIT_KEY,
            &AuditKeyRecord {
                sealed: current.reseal_secret(&purpose, &audit_key.sealed, &next)?,
                ..audit_key
            },
        );
        let mut daemon = self.daemon.read().expect("daemon lock").clone();
        daemon.master_changed_at = Some(now());
        batch.put(keys::DAEMON, &daemon).put(keys::KEYSTORE, &meta).audit(
            AuditEvent::new("master_password_changed", "master")
                .detail(serde_json::json!({ "wallets": wallets.len(), "kdf": meta.kdf })),
        );
        let file = &self.recovery_key;
        let rewrite = file.exists() && recovery_key == RecoveryKeyChoice::Keep;
        if rewrite {
            file.stage(new_password)
                .map_err(|e| StoreError::Io(format!("staging recovery.key: {e}")))?;
        }
        crate::faults::hit("set_master_before_commit");
        if let Err(err) = self.store.commit(batch) {
            if rewrite {
                let _ = file.discard_staged();
            }
            return Err(err.into());
        }
        *self.keys.write().expect("keys lock") = Arc::new(next);
        *self.daemon.write().expect("daemon lock") = daemon;
        tracing::info!(wallets = wallets.len(), "master password changed");
        crate::faults::hit("set_master_after_commit");
        let outcome = if rewrite {
            file.promote_staged().map(|()| RecoveryKeyOutcome::Rewritten)
        } else if recovery_key == RecoveryKeyChoice::Delete && file.exists() {
            file.remove().map(|()| RecoveryKeyOutcome::Deleted)
        } else {
            Ok(RecoveryKeyOutcome::Absent)
        };
        Ok(outcome.unwrap_or_else(|err| {
            tracing::error!(error = %err, "master password changed, but recovery.key was not updated");
            RecoveryKeyOutcome::NotUpdated
        }))
    }

    // ---- audit, status, lifecycle -------------------------------------------------------

    /// One page of the audit log (oldest first) and the cursor of the next, older page.
    pub fn audit_list(&self, _: &MasterAuth, filter: &AuditFilter) -> Result<Page<AuditEntryView, u64>> {
        Ok(self.store.audit_list(filter)?.map(Into::into))
    }

    pub fn audit_verify(&self, _: &MasterAuth) -> Result<AuditVerificationView> {
        Ok(self.store.audit_verify()?.into())
    }

    pub fn status(&self, _: &MasterAuth) -> Result<DaemonStatus> {
        let now = now();
        let sessions: Vec<SessionRecord> = self.store.list(keys::SESSIONS)?;
        let wallets: Vec<WalletRecord> = self.store.list(keys::WALLETS)?;
        Ok(DaemonStatus {
            version: env!("CARGO_PKG_VERSION"),
            uptime_seconds: self.started.elapsed().as_secs(),
            wallets: wallets.len(),
            active_sessions: sessions
                .iter()
                .filter(|s| s.revoked_at.is_none() && s.expires_at > now)
                .count(),
            chains: self.chains.names().map(|n| n.to_string()).collect(),
            audit_entries: self.store.audit_len(),
            kdf: self.keys().meta().kdf,
            master_changed_at: self.daemon.read().expect("daemon lock").master_changed_at,
        })
    }

    /// `GET /metrics`: the counters and what the store and the notifier hold right now.
    /// Transfers are counted per state from the status index (keys only, no record read).
    /// The caller has passed the `[metrics] access` rule (the route's `Auth::Metrics`).
    pub fn metrics(&self) -> Result<String> {
        let now = now();
        let wallets: Vec<WalletRecord> = self.store.list(keys::WALLETS)?;
        let sessions: Vec<SessionRecord> = self.store.list(keys::SESSIONS)?;
        let mut transfers = Vec::with_capacity(TxState::ALL.len());
        for state in TxState::ALL {
            let mut n = 0;
            for w in &wallets {
                n += self.store.count_txs_in(w.id, &[state], usize::MAX)?;
            }
            transfers.push((state.as_str(), n as u64));
        }
        let gauges = crate::metrics::Gauges {
            transfers,
            wallets: wallets.len() as u64,
            frozen_wallets: wallets.iter().filter(|w| w.frozen.is_some()).count() as u64,
            active_sessions: sessions
                .iter()
                .filter(|s| s.revoked_at.is_none() && s.expires_at > now)
                .count() as u64,
            audit_entries: self.store.audit_len(),
            notification_queues: self.notifier.queue_depths(),
            notifications_dropped: self.notifier.dropped(),
            uptime_seconds: self.started.elapsed().as_secs(),
        };
        Ok(crate::metrics::render(&gauges))
    }

    /// Whether `presented` is the metrics scrape token (constant time).
    pub fn check_metrics_token(&self, presented: &[u8]) -> bool {
        let token = self.metrics_token.read().expect("metrics token lock");
        token
            .as_ref()
            .is_some_and(|t| crate::secret::ct_eq(t.expose_secret().as_bytes(), presented))
    }

    /// SIGHUP: re-reads the secrets kept in files named by the config — the notification
    /// senders' and the metrics token — so a rotated file takes effect without a restart.
    /// All or nothing: when one cannot be read, every current secret stays (the error says
    /// which file). Audited (`secrets_reloaded`, the kinds only). Returns the kinds re-read.
    pub fn reload_secrets(&self) -> Result<Vec<&'static str>> {
        let token = read_metrics_token(&self.config).map_err(ServiceError::Config)?;
        let mut reloaded = self
            .notifier
            .reload_secrets(&self.config.notifications)
            .map_err(ServiceError::Config)?;
        if let Some(token) = token {
            *self.metrics_token.write().expect("metrics token lock") = Some(token);
            reloaded.push("metrics_token");
        }
        self.store
            .audit(AuditEvent::new("secrets_reloaded", "system").detail(serde_json::json!({ "secrets": reloaded })))?;
        Ok(reloaded)
    }

    /// Asks the server to stop gracefully (`bursar stop`).
    pub fn request_shutdown(&self, _: &MasterAuth) -> Result<()> {
        self.store.audit(AuditEvent::new("shutdown_requested", "master"))?;
        self.shutdown.notify_waiters();
        self.shutdown.notify_one();
        Ok(())
    }

    pub async fn shutdown_requested(&self) {
        self.shutdown.notified().await;
    }

    // ---- notifications -------------------------------------------------------------------

    /// Tells the operator, through every configured `[notifications]` sender:
    /// `service.notify(Event::KillSwitch { on: true, scope: KillScope::All, by: Actor::Master })`.
    /// Never blocks and never fails: delivery is queued, retried and audited in the background.
    pub fn notify(&self, event: Event) {
        self.notifier.notify(event);
    }

    /// Counts a failed authentication; a burst of them becomes one `AuthFailureBurst` event.
    pub fn notify_auth_failure(&self, kind: AuthKind) {
        crate::metrics::auth_failure(kind.as_str());
        self.notifier.auth_failure(kind);
    }

    /// The notification a transfer's new state calls for, if any: a NOTIFY-tier transfer
    /// sent (submitted, or already confirmed when its broadcast is recorded), a DELAY started,
    /// an approval waiting.
    pub(crate) fn notify_transfer(&self, wallet: &WalletRecord, tx: &TxRecord) {
        let notify_tier = tx.tier.as_deref() == Some(crate::policy::Tier::Notify.as_str());
        let wanted = match tx.status {
            TxState::Submitted | TxState::Confirmed => notify_tier,
            TxState::Delayed | TxState::PendingApproval => true,
            _ => false,
        };
        if !wanted || !self.notifier.is_enabled() {
            return;
        }
        let transfer = crate::notify::Transfer {
            wallet_id: wallet.id,
            wallet_name: wallet.name.clone(),
            chain: tx.chain.to_string(),
            tx_id: tx.id,
            to: tx.to.clone(),
            amount: crate::domain::Amount::new(tx.base_units, tx.decimals)
                .map_or_else(|_| format!("{} base units", tx.base_units), |a| a.to_decimal_string()),
            symbol: tx.symbol.clone(),
            tier: tx.tier.clone().unwrap_or_default(),
            status: tx.status.to_string(),
            reasons: tx.reasons.clone(),
            hash: tx.hash.clone(),
            requested_at: tx.created_at,
        }
        .sanitised();
        let event = match tx.status {
            TxState::Submitted | TxState::Confirmed => Event::TransferNotify { transfer },
            TxState::Delayed => Event::TransferDelayed {
                transfer,
                executes_at: tx.executes_at.unwrap_or(tx.created_at),
                cancel_hint: format!(
                    "`bursar tx cancel {}` with the wallet's session token, or `bursar kill-switch on`",
                    tx.id
                ),
            },
            TxState::PendingApproval => Event::ApprovalPending {
                transfer,
                approval_url: self.approval_page(tx.id),
                expires_at: tx.expires_at,
            },
            _ => return,
        };
        self.notify(event);
    }

    /// The owner's approval page for a PENDING_APPROVAL transfer.
    pub(crate) fn approval_page(&self, id: crate::domain::TxId) -> String {
        format!("{}/approve/{id}", self.config.server.public_url())
    }

    /// Starts the notification senders (the server calls this next to the other workers).
    /// Each final delivery outcome is appended to the audit log.
    pub fn start_notifications(self: &Arc<Self>) {
        let service = Arc::downgrade(self);
        self.notifier.start(Arc::new(move |event| {
            if let Some(service) = service.upgrade()
                && let Err(err) = service.store.audit(event)
            {
                tracing::error!(error = %err, "cannot audit a notification outcome");
            }
        }));
    }

    /// Gives queued notifications up to `grace` to go out at shutdown; a dead sink costs no more.
    pub async fn drain_notifications(&self, grace: Duration) {
        self.notifier.drain(grace).await;
    }
}

/// The scrape token when `[metrics] access = "token"`: a private file, at least 16 characters.
fn read_metrics_token(config: &Config) -> std::result::Result<Option<Passphrase>, ConfigError> {
    let metrics = &config.metrics;
    let (crate::config::MetricsAccess::Token, Some(file)) = (metrics.access, &metrics.token_file) else {
        return Ok(None);
    };
    let token = crate::config::read_private_secret_file(file)?;
    if token.expose_secret().trim().len() < 16 {
        return Err(ConfigError::Invalid(format!(
            "[metrics] token_file {} holds fewer than 16 characters; use a random token (e.g. 32 hex bytes)",
            file.display()
        )));
    }
    Ok(Some(Passphrase::from(token.expose_secret().trim().to_owned())))
}

/// Hands the store its audit key. A store from before keyed chains is switched here, once,
/// in one commit: a new random key sealed for `audit-chain/<first keyed seq>`, the keystore
/// verifier marked keyed, and the `audit_chain_keyed` entry as the first keyed one. Its older
/// entries stay as they were and verify as legacy. A store marked keyed without its key has
/// been tampered with: refused, like a wallet key that does not open.
fn load_audit_key(store: &Store, unlocked: &mut Unlocked) -> Result<()> {
    if let Some(record) = store.get::<AuditKeyRecord>(keys::AUDIT_KEY)? {
        let key = unlocked
            .open_audit_key(&AuditKeyRecord::purpose(record.keyed_from), &record.sealed)
            .inspect_err(|_| tracing::error!("the audit key failed its integrity check"))?;
        store.set_audit_key(key, record.keyed_from);
        return Ok(());
    }
    if unlocked.audit_keyed() {
        return Err(StoreError::AuditKeyMissing.into());
    }
    let keyed_from = store.audit_len() + 1;
    let (key, sealed) = unlocked.new_audit_key(&AuditKeyRecord::purpose(keyed_from));
    let meta = unlocked.mark_audit_keyed();
    store.set_audit_key(key, keyed_from);
    let mut batch = Batch::new();
    batch
        .put(keys::KEYSTORE, &meta)
        .put(
            keys::AUDIT_KEY,
            &AuditKeyRecord {
                v: RECORD_VERSION,
                keyed_from,
                sealed,
            },
        )
        .audit(
            AuditEvent::new("audit_chain_keyed", "system")
                .detail(serde_json::json!({ "legacyEntries": keyed_from - 1 })),
        );
    store.commit(batch)?;
    tracing::info!(
        keyed_from,
        "audit chain keyed from here on; older entries verify as legacy"
    );
    Ok(())
}

/// `bursar doctor` on a stopped daemon: unlocks (one KDF run) only to load the audit key, then
/// verifies every MAC. Writes nothing — a store from before keyed chains is checked as legacy.
pub fn verify_audit_offline(store: &Store, password: &Passphrase) -> Result<AuditVerification> {
    let meta: KeystoreMeta = store
        .get(keys::KEYSTORE)?
        .ok_or_else(|| ServiceError::NotInitialised("store".into()))?;
    let unlocked = Unlocked::unlock(&meta, password)?;
    match store.get::<AuditKeyRecord>(keys::AUDIT_KEY)? {
        Some(record) => {
            let key = unlocked.open_audit_key(&AuditKeyRecord::purpose(record.keyed_from), &record.sealed)?;
            store.set_audit_key(key, record.keyed_from);
        }
        None if unlocked.audit_keyed() => {
            return Err(StoreError::AuditKeyMissing.into());
        }
        None => {}
    }
    Ok(store.audit_verify()?)
}

fn key_ref(w: &WalletRecord) -> Result<WalletKeyRef<'_>> {
    let address: Address = w.address()?;
    Ok(WalletKeyRef {
        wallet_id: w.id,
        chain: &w.chain,
        address,
        sealed: &w.key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_passwords_are_slowed_past_half_the_limit_up_to_two_seconds() {
        assert_eq!(master_failure_delay(5, 10), Duration::ZERO);
        assert_eq!(master_failure_delay(6, 10), Duration::from_millis(100));
        assert_eq!(master_failure_delay(10, 10), Duration::from_millis(500));
        assert_eq!(master_failure_delay(1_000, 10), Duration::from_secs(2));
        assert_eq!(master_failure_delay(499, 1_000), Duration::ZERO);
    }

    #[test]
    fn failure_windows_count_per_key() {
        let w = FailureWindows::<u8>::default();
        assert_eq!((w.record(1), w.record(1), w.record(2)), (1, 2, 1));
    }
}

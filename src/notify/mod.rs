//! Operator notifications. Owns the vocabulary ([`Event`]), the senders (signed webhook,
//! Telegram, Slack, ntfy push) and their delivery: a bounded queue and one background task per sender,
//! a timeout per attempt, retries with exponential backoff and jitter, and an audit record of
//! every final outcome (`notification_delivered` / `notification_failed`).
//!
//! Never blocks and never fails its caller: a full queue drops the event (counted, logged).
//! Never writes a URL or a secret to a log line, an error or the audit log. Makes no
//! decisions: the service says what happened, this module says it to people.

mod event;
mod sender;

pub use event::{Actor, AuthKind, Event, KillScope, Link, Moved, Summary, Transfer};
pub use sender::sign;

use crate::config::{ConfigError, NotificationsConfig};
use crate::store::AuditEvent;
use sender::{AttemptError, Sender};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// One event on its way: exactly the JSON body a webhook receives.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Unique per event, the same for every sender and every retry: receivers deduplicate on it.
    pub id: String,
    #[serde(serialize_with = "event::rfc3339")]
    pub created_at: i64,
    /// `type` and `data`.
    #[serde(flatten)]
    pub event: Event,
}

/// Receives the audit event of each final delivery outcome (the service appends it to the log).
pub type Recorder = Arc<dyn Fn(AuditEvent) + Send + Sync>;

/// The notification front door. Without configured senders every method is a no-op.
pub struct Notifier {
    shared: Option<Arc<Shared>>,
    bursts: BurstDetector,
}

struct Shared {
    queues: Vec<Queue>,
    /// `server.public_url`: where the buttons in messages point.
    public_url: String,
    client: reqwest::Client,
    retry: Retry,
    /// Events accepted and not yet finished, summed over senders (for the shutdown drain).
    pending: AtomicUsize,
    dropped: AtomicU64,
    started: AtomicBool,
}

struct Queue {
    kind: &'static str,
    /// Whether this sender gets the daily summary (`daily_summary = true`).
    daily_summary: bool,
    /// Replaced whole when the secrets are re-read (SIGHUP); a delivery in progress keeps
    /// the one it started with.
    sender: std::sync::RwLock<Arc<Sender>>,
    tx: mpsc::Sender<Arc<Envelope>>,
    rx: Mutex<Option<mpsc::Receiver<Arc<Envelope>>>>,
}

#[derive(Debug, Clone, Copy)]
struct Retry {
    max_attempts: u32,
    initial: Duration,
    max: Duration,
}

/// Counts failed authentications per kind; one event when a kind reaches the threshold
/// within the window, then silence for that kind until a window has passed.
struct BurstDetector {
    threshold: u32,
    window: Duration,
    state: Mutex<HashMap<AuthKind, Burst>>,
}

#[derive(Default)]
struct Burst {
    recent: VecDeque<Instant>,
    last_event: Option<Instant>,
}

const BURST_WINDOW: Duration = Duration::from_secs(60);
/// Bounds the per-kind failure memory under a flood.
const BURST_MEMORY: usize = 1024;

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let senders: Vec<&str> = self
            .shared
            .iter()
            .flat_map(|s| s.queues.iter().map(|q| q.kind))
            .collect();
        write!(f, "Notifier({senders:?})")
    }
}

impl Notifier {
    /// Reads the senders' secret files (refusing group/world-readable ones) and builds the
    /// queues. Nothing runs until [`Notifier::start`]. Buttons point at `public_url`.
    pub fn new(cfg: &NotificationsConfig, public_url: &str) -> Result<Self, ConfigError> {
        let senders = Sender::from_config(cfg)?;
        let bursts = BurstDetector {
            threshold: cfg.auth_failure_burst,
            window: BURST_WINDOW,
            state: Mutex::new(HashMap::new()),
        };
        if senders.is_empty() {
            return Ok(Self { shared: None, bursts });
        }
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let client = crate::tls::client(|| {
            reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout)
                // A redirect would resend the signed body (and a Referer) somewhere unconfigured.
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("bursar/", env!("CARGO_PKG_VERSION")))
        })
        .map_err(|_| ConfigError::Invalid("[notifications] cannot build the HTTP client".into()))?;
        let queues = senders
            .into_iter()
            .map(|sender| {
                let (tx, rx) = mpsc::channel(cfg.queue_capacity);
                Queue {
                    kind: sender.kind(),
                    daily_summary: sender.wants_daily_summary(cfg),
                    sender: std::sync::RwLock::new(Arc::new(sender)),
                    tx,
                    rx: Mutex::new(Some(rx)),
                }
            })
            .collect();
        Ok(Self {
            shared: Some(Arc::new(Shared {
                queues,
                public_url: public_url.trim_end_matches('/').to_owned(),
                client,
                retry: Retry {
                    max_attempts: cfg.max_attempts,
                    initial: Duration::from_millis(cfg.backoff_initial_ms),
                    max: Duration::from_millis(cfg.backoff_max_ms),
                },
                pending: AtomicUsize::new(0),
                dropped: AtomicU64::new(0),
                started: AtomicBool::new(false),
            })),
            bursts,
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.shared.is_some()
    }

    /// Per sender: events waiting in its queue and the queue's capacity (for `/metrics`).
    pub fn queue_depths(&self) -> Vec<(&'static str, usize, usize)> {
        self.shared
            .iter()
            .flat_map(|s| s.queues.iter())
            .map(|q| {
                let cap = q.tx.max_capacity();
                (q.kind, cap - q.tx.capacity(), cap)
            })
            .collect()
    }

    /// Re-reads every sender's secret file (SIGHUP): the next delivery uses the new secret.
    /// All or nothing: if one file cannot be read (missing, empty, loose permissions, not
    /// shaped like its secret), every sender keeps its current secret and the error says
    /// which. Returns the kinds of the senders re-read.
    pub fn reload_secrets(&self, cfg: &NotificationsConfig) -> Result<Vec<&'static str>, ConfigError> {
        let Some(shared) = &self.shared else {
            return Ok(Vec::new());
        };
        let mut fresh = Sender::from_config(cfg)?;
        let mut reloaded = Vec::new();
        for queue in &shared.queues {
            if let Some(i) = fresh.iter().position(|s| s.kind() == queue.kind) {
                let sender = Arc::new(fresh.swap_remove(i));
                *queue.sender.write().unwrap_or_else(|p| p.into_inner()) = sender;
                reloaded.push(queue.kind);
            }
        }
        Ok(reloaded)
    }

    /// Events dropped because a queue was full, since start.
    pub fn dropped(&self) -> u64 {
        self.shared.as_ref().map_or(0, |s| s.dropped.load(Ordering::Relaxed))
    }

    /// Whether any sender wants the daily summary.
    pub fn wants_daily_summary(&self) -> bool {
        self.shared
            .iter()
            .flat_map(|s| s.queues.iter())
            .any(|q| q.daily_summary)
    }

    /// Queues `event` for every sender (a daily summary only for those that opted in).
    /// Never blocks: a full queue drops it with a warning.
    pub fn notify(&self, event: Event) {
        let Some(shared) = &self.shared else { return };
        let envelope = Arc::new(Envelope {
            id: uuid::Uuid::new_v4().to_string(),
            created_at: now(),
            event,
        });
        let summary = matches!(envelope.event, Event::DailySummary { .. });
        for queue in shared.queues.iter().filter(|q| q.daily_summary || !summary) {
            // Counted before the send: the task may finish it before `try_send` returns.
            shared.pending.fetch_add(1, Ordering::SeqCst);
            if queue.tx.try_send(envelope.clone()).is_err() {
                shared.pending.fetch_sub(1, Ordering::SeqCst);
                let dropped = shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    sender = queue.kind,
                    event = envelope.event.kind(),
                    dropped_total = dropped,
                    "notification queue full; event dropped"
                );
            }
        }
    }

    /// Records one failed authentication of `kind`; at the configured burst, notifies once
    /// per minute and kind.
    pub fn auth_failure(&self, kind: AuthKind) {
        if !self.is_enabled() {
            return;
        }
        if let Some(event) = self.bursts.failure(kind, Instant::now()) {
            self.notify(event);
        }
    }

    /// Spawns one delivery task per sender (on the current tokio runtime). Idempotent.
    pub fn start(&self, record: Recorder) {
        let Some(shared) = &self.shared else { return };
        if shared.started.swap(true, Ordering::SeqCst) {
            return;
        }
        for idx in 0..shared.queues.len() {
            let rx = shared.queues[idx].rx.lock().expect("queue lock").take();
            if let Some(rx) = rx {
                tokio::spawn(run_queue(shared.clone(), idx, rx, record.clone()));
            }
        }
    }

    /// At shutdown: waits up to `grace` for queued deliveries, then gives up on them (logged).
    /// A dead sink costs at most `grace`, never a hang.
    pub async fn drain(&self, grace: Duration) {
        let Some(shared) = &self.shared else { return };
        if !shared.started.load(Ordering::SeqCst) {
            return;
        }
        let deadline = Instant::now() + grace;
        while shared.pending.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = shared.pending.load(Ordering::SeqCst);
        if left > 0 {
            tracing::warn!(undelivered = left, "shutting down with notifications undelivered");
        }
    }
}

async fn run_queue(shared: Arc<Shared>, idx: usize, mut rx: mpsc::Receiver<Arc<Envelope>>, record: Recorder) {
    let queue = &shared.queues[idx];
    while let Some(envelope) = rx.recv().await {
        let sender = queue.sender.read().unwrap_or_else(|p| p.into_inner()).clone();
        let (attempts, result) = deliver(&sender, &shared.client, shared.retry, &envelope, &shared.public_url).await;
        let (kind, event) = (sender.kind(), envelope.event.kind());
        let mut detail = serde_json::json!({
            "sender": kind, "event": event, "deliveryId": envelope.id, "attempts": attempts,
        });
        let audit_kind = match result {
            Ok(()) => {
                tracing::debug!(sender = kind, event, delivery = %envelope.id, attempts, "notification delivered");
                "notification_delivered"
            }
            Err(err) => {
                tracing::warn!(sender = kind, event, delivery = %envelope.id, attempts, error = %err, "notification not delivered");
                detail["error"] = serde_json::Value::String(err.to_string());
                "notification_failed"
            }
        };
        let mut audit = AuditEvent::new(audit_kind, "system").detail(detail);
        if let Some(wallet) = envelope.event.wallet_id() {
            audit = audit.wallet(wallet);
        }
        record(audit);
        shared.pending.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Attempts until success, a final error, or `max_attempts`. Returns the attempts made.
async fn deliver(
    sender: &Sender,
    client: &reqwest::Client,
    retry: Retry,
    envelope: &Envelope,
    public_url: &str,
) -> (u32, Result<(), AttemptError>) {
    let mut attempt = 1;
    loop {
        match sender.attempt(client, envelope, public_url).await {
            Ok(()) => return (attempt, Ok(())),
            Err(err) if err.is_retryable() && attempt < retry.max_attempts => {
                let pause = backoff(retry, attempt, jitter_fraction());
                tracing::debug!(sender = sender.kind(), attempt, error = %err, pause_ms = pause.as_millis() as u64, "notification attempt failed; retrying");
                tokio::time::sleep(pause).await;
                attempt += 1;
            }
            Err(err) => return (attempt, Err(err)),
        }
    }
}

/// The pause after failed attempt `attempt` (1-based): `initial · 2^(attempt-1)`, capped at
/// `max`, of which the upper half is scaled by `jitter` ∈ [0, 1] so retries of many
/// daemons (or senders) do not arrive in step.
fn backoff(retry: Retry, attempt: u32, jitter: f64) -> Duration {
    let exp = retry
        .initial
        .saturating_mul(1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX))
        .min(retry.max);
    let half = exp / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

fn jitter_fraction() -> f64 {
    let bytes = crate::secret::random_bytes::<2>();
    f64::from(u16::from_le_bytes(bytes)) / f64::from(u16::MAX)
}

use crate::clock::now;

impl BurstDetector {
    fn failure(&self, kind: AuthKind, at: Instant) -> Option<Event> {
        if self.threshold == 0 {
            return None;
        }
        let mut state = self.state.lock().expect("burst lock");
        let burst = state.entry(kind).or_default();
        while burst
            .recent
            .front()
            .is_some_and(|t| at.saturating_duration_since(*t) >= self.window)
        {
            burst.recent.pop_front();
        }
        burst.recent.push_back(at);
        if burst.recent.len() > BURST_MEMORY {
            burst.recent.pop_front();
        }
        let count = u32::try_from(burst.recent.len()).unwrap_or(u32::MAX);
        let quiet = burst
            .last_event
            .is_none_or(|t| at.saturating_duration_since(t) >= self.window);
        if count >= self.threshold && quiet {
            burst.last_event = Some(at);
            return Some(Event::AuthFailureBurst {
                kind,
                count,
                window_seconds: self.window.as_secs(),
            });
        }
        None
    }
}

#[cfg(test)]
mod tests;

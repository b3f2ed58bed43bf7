//! Operational metrics for `GET /metrics` (Prometheus text format 0.0.4).
//!
//! Two kinds of numbers: process-wide counters bumped by one-line calls where things happen
//! (policy decisions at the REST edge, RPC calls in the chain transport, failed
//! authentications in the service, audit entries in the store), and gauges read at scrape
//! time from the store and the notifier ([`Gauges`]). Labels come from fixed vocabularies
//! (tiers, auth kinds, transfer states) or from the operator's config (chain names): never
//! from a caller, never an address or an id, so the series stay few and hold no secret.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Policy decision outcomes, as `tier` labels (`DENIED` is a decision, not a tier).
const DECISIONS: [&str; 5] = ["INSTANT", "NOTIFY", "DELAY", "APPROVAL", "DENIED"];
/// Which route asked: a real send or a dry-run check.
const DECISION_KINDS: [&str; 2] = ["send", "check"];
const AUTH_KINDS: [&str; 3] = ["master", "session", "owner"];
/// Upper bounds (seconds) of the RPC latency histogram's buckets; `+Inf` follows.
const RPC_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

struct Counters {
    decisions: [[AtomicU64; DECISIONS.len()]; DECISION_KINDS.len()],
    auth_failures: [AtomicU64; AUTH_KINDS.len()],
    audit_entries: AtomicU64,
    audit_commits: AtomicU64,
    store_flushes: AtomicU64,
    /// Per configured chain name.
    rpc: Mutex<BTreeMap<String, Rpc>>,
}

#[derive(Default, Clone)]
struct Rpc {
    requests: u64,
    transport_errors: u64,
    rpc_errors: u64,
    /// Cumulative counts per bucket of [`RPC_BUCKETS`], then `+Inf`.
    buckets: [u64; RPC_BUCKETS.len() + 1],
    seconds: f64,
}

fn counters() -> &'static Counters {
    static COUNTERS: OnceLock<Counters> = OnceLock::new();
    COUNTERS.get_or_init(|| Counters {
        decisions: Default::default(),
        auth_failures: Default::default(),
        audit_entries: AtomicU64::new(0),
        audit_commits: AtomicU64::new(0),
        store_flushes: AtomicU64::new(0),
        rpc: Mutex::new(BTreeMap::new()),
    })
}

/// A policy decision answered by `POST /v1/transactions/send` (`check: false`) or `/check`.
/// `tier` is the decision's tier or `DENIED`; anything else is not counted.
pub fn decision(check: bool, tier: &str) {
    if let Some(i) = DECISIONS.iter().position(|t| *t == tier) {
        counters().decisions[usize::from(check)][i].fetch_add(1, Relaxed);
    }
}

/// A failed authentication: `master`, `session` or `owner`.
pub fn auth_failure(kind: &str) {
    if let Some(i) = AUTH_KINDS.iter().position(|k| *k == kind) {
        counters().auth_failures[i].fetch_add(1, Relaxed);
    }
}

/// A committed batch that appended `entries` audit entries.
pub fn audit_written(entries: usize) {
    if entries > 0 {
        let c = counters();
        c.audit_entries.fetch_add(entries as u64, Relaxed);
        c.audit_commits.fetch_add(1, Relaxed);
    }
}

/// A flush that made the store durable (an fsync; it covers every batch applied before it).
pub fn store_flushed() {
    counters().store_flushes.fetch_add(1, Relaxed);
}

/// How one RPC call to a chain node ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcOutcome {
    Ok,
    /// The node answered with a JSON-RPC error.
    RpcError,
    /// No answer: connection, timeout, HTTP status, unreadable body.
    TransportError,
}

/// One RPC call to `chain`'s node, how long it took and how it ended.
pub fn rpc(chain: &str, took: Duration, outcome: RpcOutcome) {
    let mut all = counters().rpc.lock().unwrap_or_else(|p| p.into_inner());
    let stats = match all.get_mut(chain) {
        Some(stats) => stats,
        None => all.entry(chain.to_owned()).or_default(),
    };
    stats.requests += 1;
    match outcome {
        RpcOutcome::Ok => {}
        RpcOutcome::RpcError => stats.rpc_errors += 1,
        RpcOutcome::TransportError => stats.transport_errors += 1,
    }
    let seconds = took.as_secs_f64();
    stats.seconds += seconds;
    for (bucket, bound) in stats.buckets.iter_mut().zip(RPC_BUCKETS.iter().chain([&f64::INFINITY])) {
        if seconds <= *bound {
            *bucket += 1;
        }
    }
}

/// What the service reads at scrape time.
#[derive(Debug, Default, Clone)]
pub struct Gauges {
    /// Transfers on record per state (every state listed, zeros included).
    pub transfers: Vec<(&'static str, u64)>,
    pub wallets: u64,
    pub frozen_wallets: u64,
    pub active_sessions: u64,
    pub audit_entries: u64,
    /// Per notification sender: events queued (not yet taken by its task), queue capacity.
    pub notification_queues: Vec<(&'static str, usize, usize)>,
    pub notifications_dropped: u64,
    pub uptime_seconds: u64,
}

/// The Prometheus text exposition of every metric.
pub fn render(g: &Gauges) -> String {
    let c = counters();
    let mut out = String::with_capacity(4096);
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let one = |v: u64| vec![(String::new(), v.to_string())];

    family(
        "bursar_up_seconds",
        "gauge",
        "Seconds since the daemon unlocked its store.",
        &one(g.uptime_seconds),
    );
    family(
        "bursar_transfers",
        "gauge",
        "Transfers on record by state (read from the store's status index at scrape time).",
        &g.transfers
            .iter()
            .map(|(s, n)| (format!("{{status=\"{s}\"}}"), n.to_string()))
            .collect::<Vec<_>>(),
    );
    let mut decisions = Vec::new();
    for (k, kind) in DECISION_KINDS.iter().enumerate() {
        for (t, tier) in DECISIONS.iter().enumerate() {
            let n = c.decisions[k][t].load(Relaxed);
            decisions.push((format!("{{kind=\"{kind}\",tier=\"{tier}\"}}"), n.to_string()));
        }
    }
    family(
        "bursar_policy_decisions_total",
        "counter",
        "Policy decisions since start, by route (send or check) and tier (DENIED: refused).",
        &decisions,
    );
    family(
        "bursar_auth_failures_total",
        "counter",
        "Failed authentications since start, by credential kind.",
        &AUTH_KINDS
            .iter()
            .zip(&c.auth_failures)
            .map(|(k, n)| (format!("{{kind=\"{k}\"}}"), n.load(Relaxed).to_string()))
            .collect::<Vec<_>>(),
    );
    family(
        "bursar_audit_entries_written_total",
        "counter",
        "Audit entries appended since start (each in the same atomic batch as its change).",
        &one(c.audit_entries.load(Relaxed)),
    );
    family(
        "bursar_audit_commits_total",
        "counter",
        "Commits that appended audit entries since start.",
        &one(c.audit_commits.load(Relaxed)),
    );
    family(
        "bursar_store_flushes_total",
        "counter",
        "Durable flushes (fsyncs) of the store since start; one covers every batch applied before it.",
        &one(c.store_flushes.load(Relaxed)),
    );
    family(
        "bursar_audit_entries",
        "gauge",
        "Entries in the audit chain.",
        &one(g.audit_entries),
    );
    family("bursar_wallets", "gauge", "Wallets.", &one(g.wallets));
    family(
        "bursar_wallets_frozen",
        "gauge",
        "Wallets frozen by a kill switch or AutoStop.",
        &one(g.frozen_wallets),
    );
    family(
        "bursar_sessions_active",
        "gauge",
        "Agent sessions neither revoked nor expired.",
        &one(g.active_sessions),
    );
    family(
        "bursar_notification_queue_depth",
        "gauge",
        "Notifications waiting for delivery, per sender.",
        &g.notification_queues
            .iter()
            .map(|(s, depth, _)| (format!("{{sender=\"{s}\"}}"), depth.to_string()))
            .collect::<Vec<_>>(),
    );
    family(
        "bursar_notification_queue_capacity",
        "gauge",
        "Capacity of each sender's notification queue.",
        &g.notification_queues
            .iter()
            .map(|(s, _, cap)| (format!("{{sender=\"{s}\"}}"), cap.to_string()))
            .collect::<Vec<_>>(),
    );
    family(
        "bursar_notifications_dropped_total",
        "counter",
        "Notifications dropped because a queue was full.",
        &one(g.notifications_dropped),
    );

    let rpc: Vec<(String, Rpc)> = c
        .rpc
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(k, v)| (escape(k), v.clone()))
        .collect();
    family(
        "bursar_rpc_requests_total",
        "counter",
        "Chain operations (a balance, a fee quote, a broadcast, a receipt…: one or more JSON-RPC requests each), per configured chain.",
        &rpc.iter()
            .map(|(chain, r)| (format!("{{chain=\"{chain}\"}}"), r.requests.to_string()))
            .collect::<Vec<_>>(),
    );
    family(
        "bursar_rpc_errors_total",
        "counter",
        "Failed JSON-RPC calls per chain: kind=rpc (the node answered an error) or transport (no usable answer).",
        &rpc.iter()
            .flat_map(|(chain, r)| {
                [
                    (format!("{{chain=\"{chain}\",kind=\"rpc\"}}"), r.rpc_errors.to_string()),
                    (
                        format!("{{chain=\"{chain}\",kind=\"transport\"}}"),
                        r.transport_errors.to_string(),
                    ),
                ]
            })
            .collect::<Vec<_>>(),
    );
    let mut latency = Vec::new();
    for (chain, r) in &rpc {
        for (bound, n) in RPC_BUCKETS
            .iter()
            .map(|b| b.to_string())
            .chain(["+Inf".to_owned()])
            .zip(r.buckets)
        {
            latency.push((format!("_bucket{{chain=\"{chain}\",le=\"{bound}\"}}"), n.to_string()));
        }
        latency.push((format!("_sum{{chain=\"{chain}\"}}"), format!("{:.6}", r.seconds)));
        latency.push((format!("_count{{chain=\"{chain}\"}}"), r.requests.to_string()));
    }
    family(
        "bursar_rpc_duration_seconds",
        "histogram",
        "Latency of chain operations, per chain.",
        &latency,
    );
    out
}

/// A label value as the text format wants it (chain names are operator config; still escaped).
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_is_well_formed_and_counts_what_happened() {
        decision(false, "INSTANT");
        decision(true, "DENIED");
        decision(false, "not a tier");
        auth_failure("owner");
        rpc("unit\"chain", Duration::from_millis(30), RpcOutcome::Ok);
        rpc("unit\"chain", Duration::from_secs(20), RpcOutcome::TransportError);
        let text = render(&Gauges {
            transfers: vec![("CONFIRMED", 3)],
            notification_queues: vec![("webhook", 2, 256)],
            ..Gauges::default()
        });
        let value = |series: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or_else(|| panic!("{series} missing in\n{text}"))
        };
        assert!(value("bursar_policy_decisions_total{kind=\"send\",tier=\"INSTANT\"}") >= 1.0);
        assert!(value("bursar_policy_decisions_total{kind=\"check\",tier=\"DENIED\"}") >= 1.0);
        assert!(value("bursar_auth_failures_total{kind=\"owner\"}") >= 1.0);
        assert_eq!(value("bursar_transfers{status=\"CONFIRMED\"}"), 3.0);
        assert_eq!(value("bursar_notification_queue_depth{sender=\"webhook\"}"), 2.0);
        // The label is escaped; 30 ms is in the 0.05 bucket, 20 s only in +Inf.
        assert_eq!(
            value("bursar_rpc_duration_seconds_bucket{chain=\"unit\\\"chain\",le=\"0.05\"}"),
            1.0
        );
        assert_eq!(
            value("bursar_rpc_duration_seconds_bucket{chain=\"unit\\\"chain\",le=\"+Inf\"}"),
            2.0
        );
        assert_eq!(
            value("bursar_rpc_errors_total{chain=\"unit\\\"chain\",kind=\"transport\"}"),
            1.0
        );
        // Every sample line belongs to a family announced just before it.
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                current = rest.split(' ').next().unwrap().to_owned();
            } else if !line.starts_with('#') {
                assert!(line.starts_with(&current), "{line} outside its family {current}");
            }
        }
    }
}

//! Operator notifications end to end: the real daemon and anvil, and a local HTTP sink that
//! records every request. A NOTIFY send produces a signed webhook delivery (HMAC verified
//! here, timestamp fresh) and Telegram / Slack messages at their configured URLs; DELAY and
//! APPROVAL sends produce their events; a dead or slow sink never delays a transfer and ends
//! as `notification_failed` in the audit; no notification secret reaches a log or the audit.

use crate::harness::{Anvil, Daemon, Opts, eth, free_port, write_private};
use crate::transfers::RECIPIENT;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WEBHOOK_SECRET: &str = "whsec-notify-test-0123456789abcdef";
pub(crate) const BOT_TOKEN: &str = "123456789:AAH-telegram-secret-token-xyz";
const SLACK_PATH: &str = "/services/T0000/B0000/slack-secret-path-qwerty";
pub(crate) const PUBLIC_URL: &str = "https://bursar.example:8443";

/// One request the sink received.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    pub(crate) path: String,
    pub(crate) headers: HashMap<String, String>,
    pub(crate) body: Value,
    raw: Vec<u8>,
    at: Instant,
}

/// A loopback HTTP server that records every request and answers 200 after `delay`.
pub(crate) struct Sink {
    pub(crate) url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Sink {
    pub(crate) async fn start(delay: Duration) -> Self {
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let recorded = hits.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let recorded = recorded.clone();
            async move {
                let at = Instant::now();
                let path = req.uri().path().to_owned();
                let headers = req
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
                    .collect();
                let raw = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap().to_vec();
                let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
                recorded.lock().unwrap().push(Hit {
                    path,
                    headers,
                    body,
                    raw,
                    at,
                });
                tokio::time::sleep(delay).await;
                "ok"
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, hits }
    }

    pub(crate) fn hits(&self, pred: impl Fn(&Hit) -> bool) -> Vec<Hit> {
        self.hits.lock().unwrap().iter().filter(|h| pred(h)).cloned().collect()
    }

    pub(crate) async fn wait_for(&self, what: &str, pred: impl Fn(&Hit) -> bool) -> Hit {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(hit) = self.hits(&pred).into_iter().next() {
                return hit;
            }
            assert!(Instant::now() < deadline, "the sink never received {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn webhook_of(kind: &str, tx: &str) -> impl Fn(&Hit) -> bool {
    let (kind, tx) = (kind.to_owned(), tx.to_owned());
    move |h| h.path == "/hook" && h.body["type"] == kind.as_str() && h.body["data"]["txId"] == tx.as_str()
}

pub(crate) fn notifications_config(retry: &str, webhook_url: &str, telegram: Option<&str>, slack: bool) -> String {
    let mut config = format!(
        "\n[prices.native]\nETH = \"2000\"\n\n[transfers]\nworker_interval_ms = 100\nconfirm_wait_seconds = 10\n\n[notifications]\n{retry}\n\n[notifications.webhook]\nurl = \"{webhook_url}\"\nsecret_file = \"webhook.secret\"\n"
    );
    if let Some(base) = telegram {
        config += &format!(
            "\n[notifications.telegram]\nbase_url = \"{base}\"\nbot_token_file = \"telegram.token\"\nchat_id = -1001234\n"
        );
    }
    if slack {
        config += "\n[notifications.slack]\nwebhook_url_file = \"slack.url\"\n";
    }
    config
}

/// A daemon whose notification secrets live in 0600 files next to its config (relative paths).
pub(crate) async fn daemon(anvil: &Anvil, extra_config: String, slack_url: &str) -> Daemon {
    let mut daemon = Daemon::init(Opts {
        anvil_url: Some(anvil.url.clone()),
        log_level: "trace",
        extra_config,
        ..Opts::default()
    });
    let data = daemon.data_dir();
    write_private(&data.join("webhook.secret"), &format!("{WEBHOOK_SECRET}\n"));
    write_private(&data.join("telegram.token"), BOT_TOKEN);
    write_private(&data.join("slack.url"), slack_url);
    daemon.env.push(("BURSAR_SERVER_PUBLIC_URL".into(), PUBLIC_URL.into()));
    daemon.spawn().await;
    daemon
}

/// A funded wallet with NOTIFY up to 1 ETH, DELAY up to 2, APPROVAL above, and an owner.
pub(crate) async fn wallet(anvil: &Anvil, daemon: &Daemon) -> (String, String) {
    let (wallet, token) = daemon.wallet_and_token().await;
    let wid = wallet["id"].as_str().unwrap().to_owned();
    anvil.fund(wallet["address"].as_str().unwrap(), eth(100)).await;
    let rules = json!({ "instant_max": "0.001", "notify_max": "1", "delay_max": "2", "delay_seconds": 600, "approval_timeout_seconds": 600 });
    let (status, body) = daemon
        .master(
            Method::POST,
            "/v1/policies",
            Some(json!({ "walletId": wid, "type": "SPENDING_LIMIT", "rules": rules })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = daemon
        .master(
            Method::PUT,
            &format!("/v1/wallets/{wid}/owner"),
            Some(json!({ "address": RECIPIENT })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    (wid, token)
}

pub(crate) async fn send(daemon: &Daemon, token: &str, amount: &str, key: &str) -> Value {
    let (status, tx) = daemon
        .session(
            token,
            Method::POST,
            "/v1/transactions/send",
            Some(json!({ "to": RECIPIENT, "amount": amount, "idempotencyKey": key })),
        )
        .await;
    assert_eq!(status, 200, "{tx}");
    tx
}

pub(crate) async fn audit(daemon: &Daemon, kind: &str) -> Vec<Value> {
    let (status, entries) = daemon
        .master(Method::GET, &format!("/v1/audit?kind={kind}&limit=1000"), None)
        .await;
    assert_eq!(status, 200, "{entries}");
    entries.as_array().unwrap().clone()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_delay_and_approval_events_reach_webhook_telegram_and_slack() {
    let started = Instant::now();
    let anvil = Anvil::start().await;
    let sink = Sink::start(Duration::ZERO).await;
    let retry =
        "timeout_ms = 2000\nmax_attempts = 3\nbackoff_initial_ms = 50\nbackoff_max_ms = 200\nauth_failure_burst = 3";
    let config = notifications_config(
        retry,
        &format!("{}/hook", sink.url),
        Some(&format!("{}/tg", sink.url)),
        true,
    );
    let slack_url = format!("{}{SLACK_PATH}", sink.url);
    let mut daemon = daemon(&anvil, config, &slack_url).await;
    let (wallet_id, token) = wallet(&anvil, &daemon).await;

    // NOTIFY: a signed webhook, a Telegram message, a Slack message.
    let tx = send(&daemon, &token, "0.5", "notify-1").await;
    assert_eq!(
        (tx["tier"].as_str(), tx["status"].as_str()),
        (Some("NOTIFY"), Some("CONFIRMED")),
        "{tx}"
    );
    let id = tx["id"].as_str().unwrap();
    let hook = sink
        .wait_for("the NOTIFY webhook", webhook_of("transfer_notify", id))
        .await;
    let timestamp = &hook.headers["x-bursar-timestamp"];
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&hook.raw);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        hook.headers["x-bursar-signature"], expected,
        "the HMAC must verify with the secret"
    );
    let age = unix_now() - timestamp.parse::<i64>().unwrap();
    assert!((-5..=30).contains(&age), "timestamp is {age} s old");
    let data = &hook.body["data"];
    assert_eq!(data["walletId"], wallet_id.as_str());
    assert_eq!(
        (data["amount"].as_str(), data["symbol"].as_str()),
        (Some("0.5"), Some("ETH"))
    );
    assert_eq!(data["tier"], "NOTIFY");
    assert_eq!(data["to"].as_str().unwrap().to_lowercase(), RECIPIENT.to_lowercase());
    assert!(data["hash"].as_str().unwrap().starts_with("0x"), "{data}");
    assert!(hook.body["id"].as_str().is_some_and(|d| !d.is_empty()));
    assert!(hook.body["createdAt"].as_str().is_some());

    let telegram_path = format!("/tg/bot{BOT_TOKEN}/sendMessage");
    let telegram = sink
        .wait_for("the NOTIFY Telegram message", |h| {
            h.path == telegram_path && h.body["text"].as_str().is_some_and(|t| t.contains(id))
        })
        .await;
    assert_eq!(telegram.body["chat_id"], "-1001234");
    assert!(telegram.body.get("parse_mode").is_none(), "plain text only");
    let text = telegram.body["text"].as_str().unwrap();
    assert!(
        text.starts_with("bursar: NOTIFY-tier transfer submitted") && text.contains("0.5 ETH"),
        "{text}"
    );
    let slack = sink
        .wait_for("the NOTIFY Slack message", |h| {
            h.path == SLACK_PATH && h.body["text"].as_str().is_some_and(|t| t.contains(id))
        })
        .await;
    assert_eq!(slack.body.as_object().unwrap().len(), 1, "Slack gets {{text}} only");

    // DELAY: the event says when it executes and how to stop it.
    let tx = send(&daemon, &token, "1.5", "delay-1").await;
    assert_eq!(tx["status"], "DELAYED", "{tx}");
    let id = tx["id"].as_str().unwrap();
    let hook = sink
        .wait_for("the DELAY webhook", webhook_of("transfer_delayed", id))
        .await;
    assert!(hook.body["data"]["executesAt"].as_str().is_some(), "{}", hook.body);
    assert!(hook.body["data"]["cancelHint"].as_str().unwrap().contains(id));

    // APPROVAL: the event carries the approval page of this transfer.
    let tx = send(&daemon, &token, "3", "approval-1").await;
    assert_eq!(tx["status"], "PENDING_APPROVAL", "{tx}");
    let id = tx["id"].as_str().unwrap();
    let hook = sink
        .wait_for("the APPROVAL webhook", webhook_of("approval_pending", id))
        .await;
    let approval_url = format!("{PUBLIC_URL}/approve/{id}");
    assert_eq!(hook.body["data"]["approvalUrl"], approval_url.as_str());
    assert!(hook.body["data"]["expiresAt"].as_str().is_some());
    sink.wait_for("the APPROVAL Telegram message", |h| {
        h.path == telegram_path && h.body["text"].as_str().is_some_and(|t| t.contains(&approval_url))
    })
    .await;

    // Five wrong master passwords: one burst event, not five.
    for _ in 0..5 {
        let (status, _) = daemon
            .request(
                Method::GET,
                "/v1/wallets",
                &[("x-master-password", "wrong-guess")],
                None,
            )
            .await;
        assert_eq!(status, 401);
    }
    let burst = sink
        .wait_for("the auth failure burst", |h| {
            h.path == "/hook" && h.body["type"] == "auth_failure_burst"
        })
        .await;
    assert_eq!(
        burst.body["data"],
        json!({ "kind": "master", "count": 3, "windowSeconds": 60 })
    );
    // One sender delivers in order: once an event queued after the failures has arrived, a
    // second burst event would have arrived before it.
    let barrier = send(&daemon, &token, "0.01", "after-the-burst").await;
    sink.wait_for(
        "the NOTIFY webhook queued after the burst",
        webhook_of("transfer_notify", barrier["id"].as_str().unwrap()),
    )
    .await;
    let bursts = sink.hits(|h| h.path == "/hook" && h.body["type"] == "auth_failure_burst");
    assert_eq!(bursts.len(), 1);

    // Latency from the triggering send to the sink (measured, not asserted).
    let mut latencies = Vec::new();
    let mut send_times = Vec::new();
    for i in 0..20 {
        let t0 = Instant::now();
        let tx = send(&daemon, &token, "0.01", &format!("latency-{i}")).await;
        send_times.push(t0.elapsed());
        let hit = sink
            .wait_for(
                "a NOTIFY webhook",
                webhook_of("transfer_notify", tx["id"].as_str().unwrap()),
            )
            .await;
        latencies.push(hit.at.duration_since(t0));
    }
    println!(
        "notification latency send→webhook receipt: p50 {:?}, max {:?} (send itself to CONFIRMED: p50 {:?}) over {} sends",
        median(latencies.clone()),
        latencies.iter().max().unwrap(),
        median(send_times),
        latencies.len()
    );

    // Every delivery is audited with its sender, and no notification secret is anywhere.
    let delivered = audit(&daemon, "notification_delivered").await;
    for sender in ["webhook", "telegram", "slack"] {
        assert!(
            delivered
                .iter()
                .any(|e| e["detail"]["sender"] == sender && e["detail"]["attempts"] == 1),
            "no delivery audited for {sender}"
        );
    }
    let all_audit = daemon
        .master(Method::GET, "/v1/audit?limit=1000", None)
        .await
        .1
        .to_string();
    assert!(daemon.terminate().success());
    let logs = daemon.logs();
    assert!(logs.lines().count() > 10, "trace logging produced too little:\n{logs}");
    for secret in [WEBHOOK_SECRET, BOT_TOKEN, SLACK_PATH, "slack-secret-path", &slack_url] {
        assert!(
            !logs.contains(secret),
            "a notification secret appears in the daemon log"
        );
        assert!(
            !all_audit.contains(secret),
            "a notification secret appears in the audit log"
        );
    }
    assert!(!logs.contains(&sink.url), "a sink URL appears in the daemon log");
    println!("notify_delay_and_approval…: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_or_slow_sink_does_not_delay_transfers_and_ends_as_notification_failed() {
    let started = Instant::now();
    let anvil = Anvil::start().await;
    // Slack answers only after 30 s; the webhook's port has no listener.
    let slow = Sink::start(Duration::from_secs(30)).await;
    let dead = format!("http://127.0.0.1:{}/hook", free_port());
    // Three 1 s attempts at Slack outlast the 2 s shutdown grace: the stop below proves it gives up.
    let retry = "timeout_ms = 1000\nmax_attempts = 3\nbackoff_initial_ms = 50\nbackoff_max_ms = 200";
    let config = notifications_config(retry, &dead, None, true);
    let mut daemon = daemon(&anvil, config, &format!("{}{SLACK_PATH}", slow.url)).await;
    let (_, token) = wallet(&anvil, &daemon).await;

    let t0 = Instant::now();
    let tx = send(&daemon, &token, "0.5", "notify-dead-sinks").await;
    let elapsed = t0.elapsed();
    println!(
        "NOTIFY send with a dead webhook and a 30 s Slack sink answered {} in {elapsed:?}",
        tx["status"]
    );
    assert_eq!(
        (tx["tier"].as_str(), tx["status"].as_str()),
        (Some("NOTIFY"), Some("CONFIRMED")),
        "{tx}"
    );
    assert!(
        elapsed < Duration::from_secs(10),
        "the send waited for the sinks: {elapsed:?}"
    );

    // Both deliveries give up after their attempts and say so in the audit, by kind only.
    let deadline = Instant::now() + Duration::from_secs(20);
    let failed = loop {
        let failed = audit(&daemon, "notification_failed").await;
        if failed.len() >= 2 {
            break failed;
        }
        assert!(Instant::now() < deadline, "no notification_failed audited: {failed:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let by_sender = |s: &str| failed.iter().find(|e| e["detail"]["sender"] == s).unwrap().clone();
    let (webhook, slack) = (by_sender("webhook"), by_sender("slack"));
    assert_eq!(webhook["detail"]["attempts"], 3, "{webhook}");
    assert_eq!(webhook["detail"]["error"], "connection failed", "{webhook}");
    assert_eq!(webhook["detail"]["event"], "transfer_notify", "{webhook}");
    assert_eq!(slack["detail"]["attempts"], 3, "{slack}");
    assert_eq!(slack["detail"]["error"], "timeout", "{slack}");
    assert_eq!(slow.hits(|h| h.path == SLACK_PATH).len(), 3, "one request per attempt");
    println!("failed deliveries audited {:?} after the send", t0.elapsed());

    // A stopping daemon gives pending deliveries a bounded grace, not the sink's 30 s.
    send(&daemon, &token, "0.5", "notify-before-stop").await;
    let t1 = Instant::now();
    assert!(daemon.terminate().success());
    let stop = t1.elapsed();
    println!("SIGTERM → exit with deliveries pending to dead/slow sinks: {stop:?}");
    assert!(
        stop < Duration::from_secs(10),
        "shutdown waited for a dead sink: {stop:?}"
    );
    let logs = daemon.logs();
    assert!(logs.contains("shutting down with notifications undelivered"), "{logs}");
    assert!(
        !logs.contains(SLACK_PATH) && !logs.contains(&dead),
        "a sink URL appears in the daemon log"
    );
    println!("a_dead_or_slow_sink…: {:?}", started.elapsed());
}

/// `sha256=<hex>` of `<timestamp>.<body>` under `secret`, as the webhook signs.
fn webhook_signature(secret: &str, hit: &Hit) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{}.", hit.headers["x-bursar-timestamp"]).as_bytes());
    mac.update(&hit.raw);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_secrets_rotate_on_sighup_without_a_restart() {
    let anvil = Anvil::start().await;
    let sink = Sink::start(Duration::ZERO).await;
    let config = notifications_config("max_attempts = 1", &format!("{}/hook", sink.url), Some(&sink.url), true);
    let daemon = daemon(&anvil, config, &format!("{}{SLACK_PATH}", sink.url)).await;
    daemon.create_wallet("anvil").await;
    let kill_switch = |on: bool| {
        let body = json!({ "on": on, "reason": "rotation drill" });
        daemon.master(Method::POST, "/v1/admin/kill-switch", Some(body))
    };
    let kill_switch_hook =
        |on: bool| move |h: &Hit| h.path == "/hook" && h.body["type"] == "kill_switch" && h.body["data"]["on"] == on;

    assert_eq!(kill_switch(true).await.0, 200);
    let before = sink
        .wait_for("the first kill-switch webhook", kill_switch_hook(true))
        .await;
    assert_eq!(
        before.headers["x-bursar-signature"],
        webhook_signature(WEBHOOK_SECRET, &before)
    );
    sink.wait_for("the first Telegram message", |h| {
        h.path == format!("/bot{BOT_TOKEN}/sendMessage")
    })
    .await;
    sink.wait_for("the first Slack message", |h| h.path == SLACK_PATH).await;

    // Rotate all three files, then SIGHUP: no restart.
    let (new_secret, new_bot, new_slack) = (
        "whsec-rotated-fedcba9876543210",
        "987654321:AAH-rotated-telegram-token",
        "/services/T0000/B0000/rotated-slack-path",
    );
    let data = daemon.data_dir();
    write_private(&data.join("webhook.secret"), new_secret);
    write_private(&data.join("telegram.token"), new_bot);
    write_private(&data.join("slack.url"), &format!("{}{new_slack}", sink.url));
    let pid = daemon.pid().unwrap();
    unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !daemon.logs().contains("SIGHUP: secrets re-read") {
        assert!(Instant::now() < deadline, "no reload logged: {}", daemon.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let hits_before = sink.hits(|_| true).len();
    assert_eq!(kill_switch(false).await.0, 200);
    let after = sink
        .wait_for("the second kill-switch webhook", kill_switch_hook(false))
        .await;
    // The new secret signs; the old one no longer verifies.
    assert_eq!(
        after.headers["x-bursar-signature"],
        webhook_signature(new_secret, &after)
    );
    assert_ne!(
        after.headers["x-bursar-signature"],
        webhook_signature(WEBHOOK_SECRET, &after)
    );
    sink.wait_for("a Telegram message with the new token", |h| {
        h.path == format!("/bot{new_bot}/sendMessage")
    })
    .await;
    sink.wait_for("a Slack message at the new URL", |h| h.path == new_slack)
        .await;
    let late: Vec<_> = sink.hits(|_| true).into_iter().skip(hits_before).collect();
    assert!(
        late.iter().all(|h| !h.path.contains(BOT_TOKEN) && h.path != SLACK_PATH),
        "an old credential was used after the rotation: {:?}",
        late.iter().map(|h| &h.path).collect::<Vec<_>>()
    );
    assert_eq!(daemon.pid(), Some(pid), "the daemon restarted");
    let (_, audit) = daemon
        .master(Method::GET, "/v1/audit?kind=secrets_reloaded", None)
        .await;
    assert_eq!(
        audit[0]["detail"]["secrets"],
        json!(["webhook", "telegram", "slack"]),
        "{audit}"
    );
    for secret in [new_secret, new_bot, new_slack, WEBHOOK_SECRET, BOT_TOKEN, SLACK_PATH] {
        assert!(!daemon.logs().contains(secret), "{secret} in the log");
        assert!(!audit.to_string().contains(secret), "{secret} in the audit log");
    }
}

/// The webhook's HMAC over `<timestamp>.<raw body>` verifies with the secret.
fn assert_signed(hook: &Hit) {
    let timestamp = &hook.headers["x-bursar-timestamp"];
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&hook.raw);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(hook.headers["x-bursar-signature"], expected, "{}", hook.body);
}

fn event_of(kind: &str) -> impl Fn(&Hit) -> bool {
    let kind = kind.to_owned();
    move |h| h.path == "/hook" && h.body["type"] == kind.as_str()
}

/// The brakes and the alarms reach the operator, signed: the kill switch for all wallets (one
/// event per wallet, on and off), the owner's own kill switch, AutoStop, and bursts of failed
/// session tokens and owner signatures — each once, each delivery audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_switch_auto_stop_and_auth_failure_bursts_are_delivered() {
    use crate::owner::{Owner, guarded, post_signed};
    let anvil = Anvil::start().await;
    let sink = Sink::start(Duration::ZERO).await;
    let retry =
        "timeout_ms = 2000\nmax_attempts = 3\nbackoff_initial_ms = 50\nbackoff_max_ms = 200\nauth_failure_burst = 3";
    let mut config = notifications_config(retry, &format!("{}/hook", sink.url), None, false);
    config += "\n[autostop]\nconsecutive_failures = 3\nburst_requests = 0\n";
    let daemon = daemon(&anvil, config, "http://127.0.0.1:1/unused").await;
    let owner = Owner::new();
    let (owned, _) = guarded(&anvil, &daemon, &owner, json!({})).await;
    let (other, _) = daemon.wallet_and_token().await;
    let other = other["id"].as_str().unwrap().to_owned();

    // Failed session tokens: one burst event at the third.
    for i in 0..3 {
        let (status, _) = daemon
            .session(&format!("not-a-token-{i}"), Method::GET, "/v1/wallet/address", None)
            .await;
        assert_eq!(status, 401);
    }
    let burst = sink
        .wait_for("the session burst", |h| {
            event_of("auth_failure_burst")(h) && h.body["data"]["kind"] == "session"
        })
        .await;
    assert_signed(&burst);
    assert_eq!(
        burst.body["data"],
        json!({ "kind": "session", "count": 3, "windowSeconds": 60 })
    );

    // Owner signatures from the wrong key over genuine messages: one burst event.
    let stranger = Owner::new();
    for _ in 0..3 {
        let (_, m) = daemon
            .master(
                Method::GET,
                &format!("/v1/wallets/{owned}/owner/message?action=connect"),
                None,
            )
            .await;
        let (status, body) = post_signed(
            &daemon,
            "/v1/owner/connect",
            &stranger.headers(m["message"].as_str().unwrap()),
        )
        .await;
        assert_eq!(status, 401, "{body}");
    }
    let burst = sink
        .wait_for("the owner burst", |h| {
            event_of("auth_failure_burst")(h) && h.body["data"]["kind"] == "owner"
        })
        .await;
    assert_eq!(
        burst.body["data"],
        json!({ "kind": "owner", "count": 3, "windowSeconds": 60 })
    );

    // The operator's kill switch for all wallets: one event per wallet, then one per lift.
    let (status, reports) = daemon
        .master(
            Method::POST,
            "/v1/admin/kill-switch",
            Some(json!({ "on": true, "reason": "drill" })),
        )
        .await;
    assert_eq!((status, reports.as_array().map(Vec::len)), (200, Some(2)), "{reports}");
    let switched = |on: bool, wallet: &str| {
        let wallet = wallet.to_owned();
        move |h: &Hit| {
            event_of("kill_switch")(h)
                && h.body["data"]["on"] == on
                && h.body["data"]["scope"]["walletId"] == wallet.as_str()
        }
    };
    for wallet in [&owned, &other] {
        let hit = sink.wait_for("a kill switch ON event", switched(true, wallet)).await;
        assert_signed(&hit);
        assert_eq!(hit.body["data"]["by"], "master", "{}", hit.body);
        assert_eq!(hit.body["data"]["scope"]["kind"], "wallet", "{}", hit.body);
        assert_eq!(hit.body["data"]["scope"]["walletName"], "test wallet", "{}", hit.body);
    }
    let (status, reports) = daemon
        .master(Method::POST, "/v1/admin/kill-switch", Some(json!({ "on": false })))
        .await;
    assert_eq!(status, 200, "{reports}");
    assert!(
        reports.as_array().unwrap().iter().all(|r| r["frozen"].is_null()),
        "{reports}"
    );
    for wallet in [&owned, &other] {
        let hit = sink.wait_for("a kill switch OFF event", switched(false, wallet)).await;
        assert_eq!(hit.body["data"]["by"], "master", "{}", hit.body);
    }

    // The owner pulls it on its own wallet.
    let (_, m) = daemon
        .master(
            Method::GET,
            &format!("/v1/wallets/{owned}/owner/message?action=kill-switch-on"),
            None,
        )
        .await;
    let (status, body) = post_signed(
        &daemon,
        "/v1/owner/kill-switch",
        &owner.headers(m["message"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let hit = sink
        .wait_for("the owner's kill switch event", |h| {
            switched(true, &owned)(h) && h.body["data"]["by"] == "owner"
        })
        .await;
    assert_signed(&hit);

    // AutoStop: three denied sends in a row (no policy: default deny) stop the wallet.
    let (stopped, token) = daemon.wallet_and_token().await;
    let stopped = stopped["id"].as_str().unwrap().to_owned();
    for i in 0..3 {
        let (status, body) = daemon
            .session(
                &token,
                Method::POST,
                "/v1/transactions/send",
                Some(json!({ "to": RECIPIENT, "amount": "0.01", "idempotencyKey": format!("deny-{i}") })),
            )
            .await;
        assert_eq!(status, 403, "{body}");
    }
    let hit = sink
        .wait_for("the auto_stop event", |h| {
            event_of("auto_stop")(h) && h.body["data"]["walletId"] == stopped.as_str()
        })
        .await;
    assert_signed(&hit);
    assert_eq!(hit.body["data"]["walletName"], "test wallet");
    assert!(
        hit.body["data"]["reason"].as_str().unwrap().contains("consecutive"),
        "{}",
        hit.body
    );

    // A last event as a barrier (one sender delivers in order), then every count is exact.
    for _ in 0..3 {
        let (status, _) = daemon
            .request(
                Method::GET,
                "/v1/wallets",
                &[("x-master-password", "wrong-guess")],
                None,
            )
            .await;
        assert_eq!(status, 401);
    }
    sink.wait_for("the master burst", |h| {
        event_of("auth_failure_burst")(h) && h.body["data"]["kind"] == "master"
    })
    .await;
    let count = |kind: &str| sink.hits(event_of(kind)).len();
    assert_eq!(count("kill_switch"), 5, "2 on + 2 off + the owner's");
    assert_eq!(count("auto_stop"), 1);
    assert_eq!(count("auth_failure_burst"), 3, "one per kind");
    let delivered = audit(&daemon, "notification_delivered").await;
    for kind in ["kill_switch", "auto_stop", "auth_failure_burst"] {
        let n = delivered.iter().filter(|e| e["detail"]["event"] == kind).count();
        assert_eq!(n, count(kind), "{kind}: every delivery is audited");
    }
}

/// A stopping daemon waits at most 2 s for queued deliveries: a delivery its sink answers in
/// a second completes within the grace (and is audited), one whose sink would take 40 s is
/// abandoned at the bound, and the daemon exits without waiting for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_daemon_gives_deliveries_two_seconds_and_no_more() {
    let anvil = Anvil::start().await;
    let quick = Sink::start(Duration::from_secs(1)).await;
    let stuck = Sink::start(Duration::from_secs(40)).await;
    // One attempt each, allowed 30 s: only the shutdown bound ends the stuck one.
    let retry = "timeout_ms = 30000\nmax_attempts = 1\nauth_failure_burst = 3";
    let config = notifications_config(retry, &format!("{}/hook", quick.url), None, true);
    let mut daemon = daemon(&anvil, config, &format!("{}{SLACK_PATH}", stuck.url)).await;

    // Three wrong master passwords queue one event for each sender; stop at once.
    for _ in 0..3 {
        let (status, _) = daemon
            .request(
                Method::GET,
                "/v1/wallets",
                &[("x-master-password", "wrong-guess")],
                None,
            )
            .await;
        assert_eq!(status, 401);
    }
    let t0 = Instant::now();
    assert!(daemon.terminate().success());
    let stop = t0.elapsed();
    println!("SIGTERM → exit with a 1 s and a 40 s delivery pending: {stop:?}");
    assert!(
        stop < Duration::from_secs(5),
        "shutdown waited for the stuck sink: {stop:?}"
    );
    assert_eq!(quick.hits(event_of("auth_failure_burst")).len(), 1);
    assert_eq!(
        stuck.hits(|h| h.path == SLACK_PATH).len(),
        1,
        "the stuck delivery was tried"
    );
    let logs = daemon.logs();
    assert!(logs.contains("shutting down with notifications undelivered"), "{logs}");

    // The quick delivery finished inside the grace: its outcome is in the audit log.
    daemon.spawn().await;
    let delivered = audit(&daemon, "notification_delivered").await;
    assert!(
        delivered
            .iter()
            .any(|e| e["detail"]["sender"] == "webhook" && e["detail"]["event"] == "auth_failure_burst"),
        "{delivered:?}"
    );
    assert!(
        !delivered.iter().any(|e| e["detail"]["sender"] == "slack"),
        "{delivered:?}"
    );
}

//! The owner's channels (issue 14) end to end: the real daemon and anvil, and a loopback sink
//! speaking the Telegram Bot API and ntfy's JSON publishing. Approval, DELAY and kill-switch
//! messages carry URL buttons only (never a callback), each to the right page and action for
//! that transfer or wallet at `server.public_url`; nothing in a message is markup or a
//! secret; and opening every button's URL (a GET) changes nothing. Also the panic page's
//! route: what it shows, what it refuses, and that viewing it takes no nonce.

use crate::harness::{Anvil, Daemon, Opts, http, write_private};
use crate::notify::{BOT_TOKEN, Hit, PUBLIC_URL, Sink, audit, notifications_config, send, wallet};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

const NTFY_TOKEN: &str = "tk_ntfy-secret-token-0123456789";
const TOPIC: &str = "bursar-owner-7f3a9c";

/// A daemon with webhook, Telegram and ntfy senders all pointing at `sink`.
async fn channels_daemon(anvil: &Anvil, sink: &Sink) -> Daemon {
    let retry = "timeout_ms = 2000\nmax_attempts = 3\nbackoff_initial_ms = 50\nbackoff_max_ms = 200";
    let mut config = notifications_config(
        retry,
        &format!("{}/hook", sink.url),
        Some(&format!("{}/tg", sink.url)),
        false,
    );
    config += &format!(
        "\n[notifications.ntfy]\nbase_url = \"{}/ntfy\"\ntopic = \"{TOPIC}\"\ntoken_file = \"ntfy.token\"\npriority = {{ approval_pending = 5, transfer_delayed = 3 }}\n",
        sink.url
    );
    let mut daemon = Daemon::init(Opts {
        anvil_url: Some(anvil.url.clone()),
        log_level: "trace",
        extra_config: config,
        ..Opts::default()
    });
    let data = daemon.data_dir();
    write_private(&data.join("webhook.secret"), "whsec-channels-0123456789abcdef\n");
    write_private(&data.join("telegram.token"), BOT_TOKEN);
    write_private(&data.join("ntfy.token"), &format!("{NTFY_TOKEN}\n"));
    daemon.env.push(("BURSAR_SERVER_PUBLIC_URL".into(), PUBLIC_URL.into()));
    daemon.spawn().await;
    daemon
}

fn telegram_about(needle: &str) -> impl Fn(&Hit) -> bool + '_ {
    move |h| h.path.starts_with("/tg/") && h.body["text"].as_str().is_some_and(|t| t.contains(needle))
}

fn ntfy_about<'a>(kind: &'a str, needle: &'a str) -> impl Fn(&Hit) -> bool + 'a {
    move |h| {
        h.path == "/ntfy"
            && h.body["tags"] == json!([kind])
            && (h.body["message"].as_str().is_some_and(|t| t.contains(needle))
                || h.body["title"].as_str().is_some_and(|t| t.contains(needle)))
    }
}

/// The Telegram keyboard as (label, url) rows; asserts one URL button per row and no other
/// kind of button.
fn keyboard(hit: &Hit) -> Vec<(String, String)> {
    let rows = hit.body["reply_markup"]["inline_keyboard"]
        .as_array()
        .unwrap_or_else(|| panic!("no inline keyboard: {}", hit.body));
    rows.iter()
        .map(|row| {
            let row = row.as_array().unwrap();
            assert_eq!(row.len(), 1, "one button per row: {row:?}");
            let b = row[0].as_object().unwrap();
            let mut keys: Vec<&str> = b.keys().map(String::as_str).collect();
            keys.sort();
            assert_eq!(keys, ["text", "url"], "URL buttons only, never a callback: {b:?}");
            (
                b["text"].as_str().unwrap().to_owned(),
                b["url"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The ntfy `view` actions as (label, url); asserts each is a `view` action and nothing else.
fn actions(hit: &Hit) -> Vec<(String, String)> {
    hit.body["actions"]
        .as_array()
        .unwrap_or_else(|| panic!("no actions: {}", hit.body))
        .iter()
        .map(|a| {
            assert_eq!(a["action"], "view", "view actions only (they open a page): {a}");
            let mut keys: Vec<&str> = a.as_object().unwrap().keys().map(String::as_str).collect();
            keys.sort();
            assert_eq!(keys, ["action", "label", "url"], "{a}");
            (
                a["label"].as_str().unwrap().to_owned(),
                a["url"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, String)]) -> Vec<(String, String)> {
    list.iter().map(|(l, u)| ((*l).to_owned(), u.clone())).collect()
}

/// What a daemon-side observer sees of a transfer and a wallet: status, and frozen or not.
async fn state(daemon: &Daemon, token: &str, txs: &[&str], wallet: &str) -> Value {
    let mut out = json!({});
    for tx in txs {
        let (_, t) = daemon
            .session(token, Method::GET, &format!("/v1/transactions/{tx}"), None)
            .await;
        out[*tx] = t["status"].clone();
    }
    let (_, w) = daemon.master(Method::GET, &format!("/v1/wallets/{wallet}"), None).await;
    out["frozen"] = json!(!w["frozen"].is_null());
    out
}

/// Audit entries other than notification outcomes (which keep arriving in the background).
async fn owner_side_audit(daemon: &Daemon) -> Vec<Value> {
    let (status, entries) = daemon.master(Method::GET, "/v1/audit?limit=1000", None).await;
    assert_eq!(status, 200, "{entries}");
    let mut out: Vec<Value> = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e["kind"].as_str().unwrap_or("").starts_with("notification_"))
        .cloned()
        .collect();
    out.sort_by_key(|e| e["seq"].as_u64());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_and_ntfy_buttons_open_the_right_page_and_a_get_changes_nothing() {
    let anvil = Anvil::start().await;
    let sink = Sink::start(Duration::ZERO).await;
    let mut daemon = channels_daemon(&anvil, &sink).await;
    let (wid, token) = wallet(&anvil, &daemon).await;

    let delayed = send(&daemon, &token, "1.5", "channels-delay").await;
    assert_eq!(delayed["status"], "DELAYED", "{delayed}");
    let delayed = delayed["id"].as_str().unwrap().to_owned();
    let pending = send(&daemon, &token, "3", "channels-approval").await;
    assert_eq!(pending["status"], "PENDING_APPROVAL", "{pending}");
    let pending = pending["id"].as_str().unwrap().to_owned();

    let page = |tx: &str, action: &str| format!("{PUBLIC_URL}/approve/{tx}?action={action}");
    let panic = format!("{PUBLIC_URL}/owner/{wid}");

    // Telegram: the approval carries Review / Reject / Freeze, the DELAY Cancel / Freeze.
    let tg_approval = sink
        .wait_for("the approval on Telegram", telegram_about(&pending))
        .await;
    assert_eq!(
        keyboard(&tg_approval),
        pairs(&[
            ("Review and approve", page(&pending, "approve")),
            ("Reject", page(&pending, "reject")),
            ("Freeze wallet", panic.clone()),
        ])
    );
    let tg_delay = sink.wait_for("the DELAY on Telegram", telegram_about(&delayed)).await;
    assert_eq!(
        keyboard(&tg_delay),
        pairs(&[("Cancel", page(&delayed, "cancel")), ("Freeze wallet", panic.clone())])
    );

    // ntfy: the same facts, a click URL, view actions, priority per event type, the token
    // as a bearer header (never in the body).
    let nt_approval = sink
        .wait_for("the approval on ntfy", ntfy_about("approval_pending", &pending))
        .await;
    assert_eq!(nt_approval.body["topic"], TOPIC);
    assert_eq!(nt_approval.body["priority"], 5);
    assert_eq!(nt_approval.body["click"], page(&pending, "approve").as_str());
    assert_eq!(
        actions(&nt_approval),
        pairs(&[
            ("Review and approve", page(&pending, "approve")),
            ("Reject", page(&pending, "reject")),
            ("Freeze wallet", panic.clone()),
        ])
    );
    assert_eq!(nt_approval.headers["authorization"], format!("Bearer {NTFY_TOKEN}"));
    let tg_text = tg_approval.body["text"].as_str().unwrap();
    let (title, rest) = tg_text.split_once('\n').unwrap();
    assert_eq!(
        nt_approval.body["title"], title,
        "the same plain-text facts as Telegram"
    );
    assert_eq!(nt_approval.body["message"], rest);
    let nt_delay = sink
        .wait_for("the DELAY on ntfy", ntfy_about("transfer_delayed", &delayed))
        .await;
    assert_eq!(nt_delay.body["priority"], 3, "configured");
    assert_eq!(nt_delay.body["click"], page(&delayed, "cancel").as_str());
    assert_eq!(
        actions(&nt_delay),
        pairs(&[("Cancel", page(&delayed, "cancel")), ("Freeze wallet", panic.clone())])
    );

    // Every button's URL, opened (as a chat app's link preview or a curious owner would):
    // a page, and nothing changes — no approval, no rejection, no cancel, no freeze.
    let before = state(&daemon, &token, &[&pending, &delayed], &wid).await;
    assert_eq!(
        before,
        json!({ pending.as_str(): "PENDING_APPROVAL", delayed.as_str(): "DELAYED", "frozen": false })
    );
    let audit_before = owner_side_audit(&daemon).await;
    let mut urls: Vec<String> = keyboard(&tg_approval)
        .into_iter()
        .chain(keyboard(&tg_delay))
        .chain(actions(&nt_approval))
        .chain(actions(&nt_delay))
        .map(|(_, u)| u)
        .collect();
    urls.dedup();
    for url in &urls {
        let local = url.replace(PUBLIC_URL, &daemon.url);
        for _ in 0..3 {
            let res = http().get(&local).send().await.unwrap();
            assert_eq!(res.status(), 200, "{url}");
            assert!(
                res.headers()["content-security-policy"]
                    .to_str()
                    .unwrap()
                    .contains("default-src 'none'")
            );
            let html = res.text().await.unwrap();
            assert!(
                !html.contains(BOT_TOKEN) && !html.contains(NTFY_TOKEN),
                "a page embeds a secret"
            );
            assert!(!html.contains(&daemon.password), "a page embeds the master password");
        }
    }
    // The approval page shows the action the button named.
    let html = http()
        .get(format!("{}/approve/{pending}?action=reject", daemon.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Request ID: bursar:reject"),
        "the reject message is shown"
    );
    let html = http()
        .get(format!("{}/approve/{delayed}?action=cancel", daemon.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Request ID: bursar:cancel"),
        "the cancel message is shown"
    );
    assert_eq!(state(&daemon, &token, &[&pending, &delayed], &wid).await, before);
    assert_eq!(
        owner_side_audit(&daemon).await,
        audit_before,
        "viewing pages wrote to the audit log"
    );

    // The kill switch: a Freeze button to the panic page (where the owner sees the state).
    let (status, body) = daemon
        .master(
            Method::POST,
            "/v1/admin/kill-switch",
            Some(json!({ "on": true, "walletId": wid, "reason": "channels test" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let tg_kill = sink
        .wait_for("the kill switch on Telegram", |h| {
            h.path.starts_with("/tg/")
                && h.body["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("bursar: kill switch ON"))
        })
        .await;
    assert_eq!(keyboard(&tg_kill), pairs(&[("Freeze wallet", panic.clone())]));
    let nt_kill = sink
        .wait_for("the kill switch on ntfy", |h| {
            h.path == "/ntfy" && h.body["tags"] == json!(["kill_switch"])
        })
        .await;
    assert_eq!(nt_kill.body["priority"], 5, "default for kill_switch");
    assert_eq!(actions(&nt_kill), pairs(&[("Freeze wallet", panic.clone())]));

    // No message is markup or carries a secret; every ntfy delivery is audited.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = sink.hits(|h| h.path.starts_with("/tg/") || h.path == "/ntfy");
    assert!(all.len() >= 6, "{all:?}");
    for h in &all {
        let body = h.body.to_string();
        assert!(
            h.body.get("parse_mode").is_none() && h.body.get("markdown").is_none(),
            "{body}"
        );
        assert!(!body.contains("callback_data"), "{body}");
        for secret in [BOT_TOKEN, NTFY_TOKEN, daemon.password.trim(), token.as_str()] {
            assert!(!body.contains(secret), "a secret in a message: {body}");
        }
        let text = [&h.body["text"], &h.body["title"], &h.body["message"]]
            .iter()
            .filter_map(|v| v.as_str())
            .collect::<String>();
        assert!(
            !text.contains('<') && !text.contains('>'),
            "markup-looking text: {text}"
        );
    }
    let delivered = audit(&daemon, "notification_delivered").await;
    assert!(
        delivered.iter().any(|e| e["detail"]["sender"] == "ntfy"),
        "ntfy deliveries are audited"
    );
    let all_audit = daemon.master(Method::GET, "/v1/audit?limit=1000", None).await.1;
    assert!(daemon.terminate().success());
    let logs = daemon.logs();
    for secret in [NTFY_TOKEN, BOT_TOKEN] {
        assert!(!logs.contains(secret), "a notification secret in the daemon log");
        assert!(
            !all_audit.to_string().contains(secret),
            "a notification secret in the audit"
        );
    }
}

/// A page request: (status, body text, CSP header).
async fn get_page(daemon: &Daemon, path: &str) -> (u16, String, String) {
    let res = http().get(format!("{}{path}", daemon.url)).send().await.unwrap();
    let status = res.status().as_u16();
    let csp = res
        .headers()
        .get("content-security-policy")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, res.text().await.unwrap(), csp)
}

async fn panic_message(daemon: &Daemon, wallet: &str, origin: Option<&str>) -> (u16, Value) {
    let mut headers = vec![];
    if let Some(o) = origin {
        headers.push(("origin", o));
    }
    daemon
        .request(Method::POST, &format!("/owner/{wallet}/message"), &headers, None)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panic_page_shows_status_takes_no_nonce_and_refuses_bad_requests() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(crate::transfers::opts(&anvil)).await;
    let owner = crate::owner::Owner::new();
    let (wid, token) = crate::owner::guarded(&anvil, &daemon, &owner, json!({})).await;
    let tx = crate::owner::pending(&daemon, &token, "0.5", "panic-pending").await;

    // The page: the wallet's public status, the pending transfer's link, the message to sign.
    let (status, html, csp) = get_page(&daemon, &format!("/owner/{wid}")).await;
    assert_eq!(status, 200, "{html}");
    for directive in [
        "default-src 'none'",
        "script-src 'nonce-",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe-"), "{csp}");
    assert!(
        html.contains(&format!("/approve/{tx}?action=approve")),
        "the pending link"
    );
    assert!(html.contains("Request ID: bursar:kill-switch-on"));
    assert!(html.contains("\"frozen\":false"));
    assert!(!html.contains(&token) && !html.contains(daemon.password.trim()));
    // Nothing secret or private: no balance, no address of the wallet, no session.
    let (_, w) = daemon.master(Method::GET, &format!("/v1/wallets/{wid}"), None).await;
    assert!(
        !html.contains(w["address"].as_str().unwrap()),
        "the page does not show the wallet's address"
    );

    // Viewing takes no nonce: a thousand views, and the page's pool still serves its button.
    for _ in 0..200 {
        assert_eq!(get_page(&daemon, &format!("/owner/{wid}")).await.0, 200);
    }
    let origin = daemon.url.clone();
    let (status, m) = panic_message(&daemon, &wid, Some(&origin)).await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["action"], "kill-switch-on");
    assert_eq!(m["submitTo"], "/v1/owner/kill-switch");

    // Refusals: no Origin, a foreign Origin, a malformed, unknown or oversized wallet id,
    // a wallet without an owner, the wrong method.
    assert_eq!(panic_message(&daemon, &wid, None).await.0, 403);
    assert_eq!(panic_message(&daemon, &wid, Some("https://evil.example")).await.0, 403);
    assert_eq!(panic_message(&daemon, &wid, Some("http://localhost:1")).await.0, 403);
    let unknown = "0190f000-0000-7000-8000-000000000000";
    assert_eq!(panic_message(&daemon, unknown, Some(&origin)).await.0, 404);
    assert_eq!(panic_message(&daemon, "not-a-wallet", Some(&origin)).await.0, 400);
    let (status, html, csp) = get_page(&daemon, "/owner/not-a-wallet").await;
    assert_eq!(status, 400);
    assert!(html.contains("This is not a wallet id.") && csp.contains("default-src 'none'"));
    let (status, html, _) = get_page(&daemon, &format!("/owner/{unknown}")).await;
    assert_eq!(status, 404, "{html}");
    let (status, _, _) = get_page(&daemon, &format!("/owner/{}", "a".repeat(20_000))).await;
    assert!(
        status == 400 || status == 414 || status == 431,
        "oversized id: {status}"
    );
    let (status, html, _) = get_page(&daemon, "/owner/%3Cscript%3Ealert(1)%3C%2Fscript%3E").await;
    assert_eq!(status, 400);
    assert!(!html.contains("<script>alert"), "the id is never echoed as markup");
    let (status, _) = daemon.request(Method::PUT, &format!("/owner/{wid}"), &[], None).await;
    assert_eq!(status, 405);
    let (orphan, _) = daemon.wallet_and_token().await;
    let orphan = orphan["id"].as_str().unwrap();
    let (status, html, _) = get_page(&daemon, &format!("/owner/{orphan}")).await;
    assert_eq!(status, 200);
    assert!(html.contains("\"preview\":null"), "no owner, nothing to sign");
    assert_eq!(panic_message(&daemon, orphan, Some(&origin)).await.0, 409);

    // The approval page's link action: only approve, reject or cancel, once.
    for (query, code) in [
        ("?action=kill-switch-on", 400),
        ("?action=approve&action=reject", 400),
        ("?action=", 400),
        ("?action=reject", 200),
        ("?other=1", 200),
        ("?action=cancel", 200),
    ] {
        let (status, html, _) = get_page(&daemon, &format!("/approve/{tx}{query}")).await;
        assert_eq!(status, code, "{query}: {html}");
    }

    // Nothing of this changed the wallet or the transfer.
    let (_, t) = daemon
        .session(&token, Method::GET, &format!("/v1/transactions/{tx}"), None)
        .await;
    assert_eq!(t["status"], "PENDING_APPROVAL");
    let (_, w) = daemon.master(Method::GET, &format!("/v1/wallets/{wid}"), None).await;
    assert!(w["frozen"].is_null(), "{w}");

    // The owner signs the page's message: frozen, and the page says so.
    let headers = owner.headers(m["message"].as_str().unwrap());
    let (status, report) = crate::owner::post_signed(&daemon, "/v1/owner/kill-switch", &headers).await;
    assert_eq!(status, 200, "{report}");
    let (_, html, _) = get_page(&daemon, &format!("/owner/{wid}")).await;
    assert!(
        html.contains("\"frozen\":true") && !html.contains(&format!("/approve/{tx}")),
        "frozen, nothing pending"
    );
}

/// The daily summary end to end: the daemon's clock is set so that its summary hour comes
/// 30 s after start; by then one wallet has a confirmed, a cancelled, a delayed and a
/// pending-approval transfer. The senders that opted in (webhook by env, ntfy) get one
/// summary each, with exactly those numbers and a Freeze button; Telegram (not opted in)
/// gets none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_summary_reaches_only_the_senders_that_asked_with_the_days_numbers() {
    const FIRES_AFTER: i64 = 30;
    let anvil = Anvil::start().await;
    let sink = Sink::start(Duration::ZERO).await;
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let hour = (now.rem_euclid(86_400) / 3600 + 2) % 24;
    let offset = (hour * 3600 - now.rem_euclid(86_400)).rem_euclid(86_400) - FIRES_AFTER;
    let retry = format!(
        "timeout_ms = 2000\nmax_attempts = 3\nbackoff_initial_ms = 50\nbackoff_max_ms = 200\ndaily_summary_hour_utc = {hour}"
    );
    let mut config = notifications_config(
        &retry,
        &format!("{}/hook", sink.url),
        Some(&format!("{}/tg", sink.url)),
        false,
    );
    config += &format!(
        "\n[notifications.ntfy]\nbase_url = \"{}/ntfy\"\ntopic = \"{TOPIC}\"\ndaily_summary = true\n",
        sink.url
    );
    let mut daemon = Daemon::init(Opts {
        anvil_url: Some(anvil.url.clone()),
        extra_config: config,
        ..Opts::default()
    });
    let data = daemon.data_dir();
    write_private(&data.join("webhook.secret"), "whsec-channels-0123456789abcdef\n");
    write_private(&data.join("telegram.token"), BOT_TOKEN);
    daemon.env.extend([
        ("BURSAR_SERVER_PUBLIC_URL".to_owned(), PUBLIC_URL.to_owned()),
        ("BURSAR_TEST_CLOCK_OFFSET".to_owned(), offset.to_string()),
        (
            "BURSAR_NOTIFICATIONS_WEBHOOK_DAILY_SUMMARY".to_owned(),
            "true".to_owned(),
        ),
    ]);
    let started = std::time::Instant::now();
    daemon.spawn().await;
    let (wid, token) = wallet(&anvil, &daemon).await;

    let confirmed = send(&daemon, &token, "0.5", "summary-notify").await;
    let delayed = send(&daemon, &token, "1.5", "summary-delay").await;
    let cancelled = send(&daemon, &token, "1.2", "summary-cancel").await;
    let approval = send(&daemon, &token, "3", "summary-approval").await;
    let (status, body) = daemon
        .session(
            &token,
            Method::POST,
            &format!("/v1/transactions/{}/cancel", cancelled["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("CANCELLED")), "{body}");
    assert_eq!(
        [&confirmed["status"], &delayed["status"], &approval["status"]],
        ["CONFIRMED", "DELAYED", "PENDING_APPROVAL"]
    );
    assert!(
        started.elapsed() < Duration::from_secs(FIRES_AFTER as u64 - 5),
        "the setup took too long for the summary hour: {:?}",
        started.elapsed()
    );

    // The sink's wait is 15 s: start it close to the hour.
    let due = Duration::from_secs(FIRES_AFTER as u64 - 8);
    if let Some(left) = due.checked_sub(started.elapsed()) {
        tokio::time::sleep(left).await;
    }
    let hook = sink
        .wait_for("the daily summary webhook", |h| {
            h.path == "/hook" && h.body["type"] == "daily_summary"
        })
        .await;
    let d = &hook.body["data"];
    assert_eq!(d["walletId"], wid.as_str());
    assert_eq!(
        d["byStatus"],
        json!({ "CONFIRMED": 1, "CANCELLED": 1, "DELAYED": 1, "PENDING_APPROVAL": 1 })
    );
    assert_eq!(d["moved"][0]["amount"], "0.5");
    assert_eq!(d["moved"][0]["count"], 1);
    assert_eq!(d["moved"].as_array().unwrap().len(), 1);
    let mut pending = vec![
        delayed["id"].as_str().unwrap().to_owned(),
        approval["id"].as_str().unwrap().to_owned(),
    ];
    pending.sort();
    assert_eq!(d["pending"], json!(pending));
    assert_eq!(d["frozen"], false);
    let push = sink
        .wait_for("the daily summary push", |h| {
            h.path == "/ntfy" && h.body["tags"] == json!(["daily_summary"])
        })
        .await;
    assert_eq!(push.body["priority"], 2);
    assert_eq!(
        actions(&push),
        pairs(&[("Freeze wallet", format!("{PUBLIC_URL}/owner/{wid}"))])
    );
    let message = push.body["message"].as_str().unwrap();
    assert!(message.contains("moved: 0.5 ETH in 1 transfer(s)"), "{message}");
    assert!(
        message.contains(&format!("pending: 2 ({})", pending.join(", "))),
        "{message}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        sink.hits(
            |h| h.path.starts_with("/tg/") && h.body["text"].as_str().is_some_and(|t| t.contains("daily summary"))
        )
        .is_empty(),
        "Telegram did not ask for the summary"
    );
    assert_eq!(
        sink.hits(|h| h.path == "/hook" && h.body["type"] == "daily_summary")
            .len(),
        1,
        "one summary per wallet and day"
    );
    println!("daily summary arrived {:?} after start", started.elapsed());
}

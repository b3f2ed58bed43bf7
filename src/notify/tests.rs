//! Unit tests of the notification queue, senders and burst detection.

use super::*;
use crate::config::Config;
use crate::domain::{TxId, WalletId};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, String> {
    Config::from_parts(
        Path::new("/data/config.toml"),
        text,
        env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .map(|(cfg, _)| cfg)
    .map_err(|e| e.to_string())
}

fn transfer() -> Transfer {
    Transfer {
        wallet_id: WalletId::new(),
        wallet_name: "ops\u{202E}bot".into(),
        chain: "anvil".into(),
        tx_id: TxId::new(),
        to: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8".into(),
        amount: "0.5".into(),
        symbol: "US\u{200B}DC\n<!channel>".into(),
        tier: "NOTIFY".into(),
        status: "SUBMITTED".into(),
        reasons: vec!["0.5 ETH is within notify_max 1".into()],
        hash: Some("0xabc".into()),
        requested_at: 1_700_000_000,
    }
    .sanitised()
}

#[test]
fn notification_config_is_validated_with_the_reason() {
    let cases = [
        (
            "[notifications.webhook]\nurl = \"https://h\"\nsecret = \"s3cr3t-value\"",
            "secret: secrets are never inline",
        ),
        (
            "[notifications.telegram]\nbot_token = \"123:abc\"\nchat_id = 1",
            "bot_token: secrets are never inline",
        ),
        (
            "[notifications.slack]\nwebhook_url = \"https://hooks.slack.com/x\"",
            "webhook_url: secrets are never inline",
        ),
        (
            "[notifications.webhook]\nurl = \"https://h\"",
            "secret_file is required",
        ),
        (
            "[notifications.webhook]\nurl = \"ftp://h\"\nsecret_file = \"s\"",
            "webhook.url",
        ),
        (
            "[notifications.telegram]\nbot_token_file = \"t\"",
            "chat_id is required",
        ),
        (
            "[notifications.telegram]\nchat_id = \"1\"",
            "bot_token_file is required",
        ),
        ("[notifications.slack]", "webhook_url_file is required"),
        ("[notifications]\nmax_attempts = 0", "max_attempts"),
        (
            "[notifications]\nbackoff_initial_ms = 10\nbackoff_max_ms = 5",
            "backoff_initial_ms",
        ),
        ("[notifications]\ntimeout_ms = 0", "timeout_ms"),
        (
            "[notifications.webhook]\nurl = \"https://h\"\nsecret_file = \"s\"\nextra = 1",
            "unknown field",
        ),
        ("[server]\npublic_url = \"bursar.example\"", "public_url"),
    ];
    for (text, needle) in cases {
        let err = load(text, &[]).unwrap_err();
        assert!(err.contains(needle), "{text:?}: {err}");
        assert!(!err.contains("s3cr3t-value") && !err.contains("123:abc"), "{err}");
    }
    // Inline secrets by env are refused the same way, and the value is not echoed.
    let err = load("", &[("BURSAR_NOTIFICATIONS_TELEGRAM_BOT_TOKEN", "123:abc")]).unwrap_err();
    assert!(
        err.contains("[notifications.telegram] bot_token") && !err.contains("123:abc"),
        "{err}"
    );
}

#[test]
fn notification_config_from_file_and_env() {
    let cfg = load(
        "[notifications]\nmax_attempts = 3\n\n[notifications.telegram]\nbot_token_file = \"tg.token\"\nchat_id = -1001\n",
        &[
            ("BURSAR_NOTIFICATIONS_TIMEOUT_MS", "250"),
            ("BURSAR_NOTIFICATIONS_WEBHOOK_URL", "https://ops.example/hook"),
            ("BURSAR_NOTIFICATIONS_WEBHOOK_SECRET_FILE", "/run/secrets/hook"),
            ("BURSAR_NOTIFICATIONS_TELEGRAM_CHAT_ID", "-1002"),
            ("BURSAR_SERVER_PUBLIC_URL", "https://bursar.example/"),
        ],
    )
    .unwrap();
    let n = &cfg.notifications;
    assert_eq!((n.max_attempts, n.timeout_ms), (3, 250));
    let webhook = n.webhook.as_ref().unwrap();
    assert_eq!(webhook.url, "https://ops.example/hook");
    assert_eq!(webhook.secret_file.as_deref(), Some(Path::new("/run/secrets/hook")));
    let telegram = n.telegram.as_ref().unwrap();
    assert_eq!(telegram.chat_id, "-1002");
    assert_eq!(telegram.base_url, "https://api.telegram.org");
    // Relative secret paths are relative to the data dir.
    assert_eq!(telegram.bot_token_file.as_deref(), Some(Path::new("/data/tg.token")));
    assert_eq!(cfg.server.public_url(), "https://bursar.example");
    assert_eq!(load("", &[]).unwrap().server.public_url(), "http://127.0.0.1:3100");
}

#[test]
fn secret_files_must_be_private() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hook.secret");
    std::fs::write(&file, "whsec-test\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = format!(
        "[notifications.webhook]\nurl = \"https://ops.example\"\nsecret_file = \"{}\"\n",
        file.display()
    );
    let cfg = load(&text, &[]).unwrap();
    let err = Notifier::new(&cfg.notifications, "https://bursar.example")
        .unwrap_err()
        .to_string();
    assert!(err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let notifier = Notifier::new(&cfg.notifications, "https://bursar.example").unwrap();
    assert!(notifier.is_enabled());
    assert_eq!(format!("{notifier:?}"), "Notifier([\"webhook\"])");

    // A Telegram token travels in the URL path: anything but a token's characters is refused.
    let token = dir.path().join("tg.token");
    crate::config::write_private_file(&token, b"123:abc/../x?y").unwrap();
    let text = format!(
        "[notifications.telegram]\nbot_token_file = \"{}\"\nchat_id = 1\n",
        token.display()
    );
    let err = Notifier::new(&load(&text, &[]).unwrap().notifications, "https://bursar.example")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("does not hold a bot token") && !err.contains("abc"),
        "{err}"
    );
}

#[test]
fn without_senders_nothing_is_queued() {
    let notifier = Notifier::new(&Config::default().notifications, "https://bursar.example").unwrap();
    assert!(!notifier.is_enabled());
    notifier.notify(Event::TransferNotify { transfer: transfer() });
    notifier.auth_failure(AuthKind::Master);
}

#[test]
fn webhook_body_is_type_id_created_at_and_data() {
    let t = transfer();
    let envelope = Envelope {
        id: "d1".into(),
        created_at: 1_700_000_000,
        event: Event::ApprovalPending {
            transfer: t.clone(),
            approval_url: format!("https://bursar.example/approve/{}", t.tx_id),
            expires_at: Some(1_700_000_600),
        },
    };
    let v = serde_json::to_value(&envelope).unwrap();
    assert_eq!(v["type"], "approval_pending");
    assert_eq!(v["id"], "d1");
    assert_eq!(v["createdAt"], "2023-11-14T22:13:20Z");
    let data = &v["data"];
    assert_eq!(data["txId"], t.tx_id.to_string());
    assert_eq!(data["walletId"], t.wallet_id.to_string());
    assert_eq!(data["amount"], "0.5");
    assert_eq!(data["expiresAt"], "2023-11-14T22:23:20Z");
    assert_eq!(
        data["approvalUrl"],
        format!("https://bursar.example/approve/{}", t.tx_id)
    );

    let kill = serde_json::to_value(Event::KillSwitch {
        on: true,
        scope: KillScope::All,
        by: Actor::Owner,
    })
    .unwrap();
    assert_eq!(
        kill,
        serde_json::json!({ "type": "kill_switch", "data": { "on": true, "scope": { "kind": "all" }, "by": "owner" } })
    );
}

#[test]
fn chat_text_is_plain_and_outside_strings_are_inert() {
    let t = transfer();
    assert_eq!(t.symbol, "USDC<!channel>");
    assert_eq!(t.wallet_name, "opsbot");
    let text = Event::TransferDelayed {
        transfer: t.clone(),
        executes_at: 1_700_000_060,
        cancel_hint: "bursar tx cancel <id>".into(),
    }
    .text();
    let expected = format!(
        "bursar: DELAY-tier transfer waits until 2023-11-14 22:14:20 UTC\nwallet: opsbot ({})\namount: 0.5 USDC<!channel> on anvil\nto: 0x70997970C51812dc3A010C7d01b50e0d17dc79C8\ntx: {}\nhash: 0xabc\nwhy: 0.5 ETH is within notify_max 1\nto stop it: bursar tx cancel <id>",
        t.wallet_id, t.tx_id
    );
    assert_eq!(text, expected);
    let burst = Event::AuthFailureBurst {
        kind: AuthKind::Master,
        count: 5,
        window_seconds: 60,
    };
    assert_eq!(burst.text(), "bursar: 5 failed master password attempts within 60 s");
}

#[test]
fn one_auth_failure_burst_event_per_window() {
    let detector = BurstDetector {
        threshold: 3,
        window: Duration::from_secs(60),
        state: Mutex::new(HashMap::new()),
    };
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let fired: Vec<u64> = (0..10u64)
        .chain([30, 59, 61, 62, 63, 200, 201])
        .filter(|s| detector.failure(AuthKind::Master, at(*s)).is_some())
        .collect();
    // At the 3rd failure; nothing more within the minute after it; again once a minute has
    // passed and the threshold is met; a quiet spell resets the count.
    assert_eq!(fired, vec![2, 62]);
    assert!(detector.failure(AuthKind::Session, at(202)).is_none());
    let off = BurstDetector {
        threshold: 0,
        window: Duration::from_secs(60),
        state: Mutex::new(HashMap::new()),
    };
    assert!((0..100).all(|s| off.failure(AuthKind::Master, at(s)).is_none()));
}

#[test]
fn backoff_doubles_is_capped_and_jittered_in_its_upper_half() {
    let retry = Retry {
        max_attempts: 5,
        initial: Duration::from_millis(100),
        max: Duration::from_millis(1000),
    };
    let ms = |attempt, jitter| backoff(retry, attempt, jitter).as_millis();
    assert_eq!(
        [ms(1, 1.0), ms(2, 1.0), ms(3, 1.0), ms(4, 1.0), ms(5, 1.0)],
        [100, 200, 400, 800, 1000]
    );
    assert_eq!([ms(1, 0.0), ms(3, 0.5), ms(40, 0.0)], [50, 300, 500]);
}

#[test]
fn ntfy_config_refuses_clear_text_remote_servers_bad_topics_and_inline_tokens() {
    let ntfy = |base: &str, topic: &str, extra: &str| {
        load(
            &format!("[notifications.ntfy]\nbase_url = \"{base}\"\ntopic = \"{topic}\"\n{extra}"),
            &[],
        )
    };
    assert!(ntfy("https://ntfy.sh", "bursar-a1b2", "").is_ok());
    assert!(
        ntfy("http://127.0.0.1:8080", "t", "").is_ok(),
        "loopback may be plain http"
    );
    assert!(ntfy("http://localhost:8080/", "t", "").is_ok());
    let err = ntfy("http://ntfy.example", "t", "").unwrap_err();
    assert!(err.contains("ntfy.base_url must be https://"), "{err}");
    for topic in ["", "a/b", "a b", "x?y", &"t".repeat(65)] {
        let err = ntfy("https://ntfy.sh", topic, "").unwrap_err();
        assert!(err.contains("ntfy.topic"), "{topic:?}: {err}");
    }
    let err = ntfy("https://ntfy.sh", "t", "token = \"tk_inline\"").unwrap_err();
    assert!(err.contains("never inline") && !err.contains("tk_inline"), "{err}");
    let err = ntfy("https://ntfy.sh", "t", "priority = { approval_pending = 9 }").unwrap_err();
    assert!(err.contains("1..=5"), "{err}");
    let err = ntfy("https://ntfy.sh", "t", "priority = { nonsense = 3 }").unwrap_err();
    assert!(err.contains("unknown event type"), "{err}");
    // By env too, and the inline form by env is refused like the file's.
    let cfg = load(
        "",
        &[
            ("BURSAR_NOTIFICATIONS_NTFY_BASE_URL", "https://push.example"),
            ("BURSAR_NOTIFICATIONS_NTFY_TOPIC", "owner-7"),
            ("BURSAR_NOTIFICATIONS_NTFY_DAILY_SUMMARY", "true"),
        ],
    )
    .unwrap();
    let n = cfg.notifications.ntfy.unwrap();
    assert_eq!(
        (n.base_url.as_str(), n.topic.as_str(), n.daily_summary),
        ("https://push.example", "owner-7", true)
    );
    let err = load(
        "[notifications.ntfy]\nbase_url = \"https://ntfy.sh\"\ntopic = \"t\"\n",
        &[("BURSAR_NOTIFICATIONS_NTFY_TOKEN", "tk_env")],
    )
    .unwrap_err();
    assert!(err.contains("never inline") && !err.contains("tk_env"), "{err}");
}

#[test]
fn ntfy_token_file_must_be_private_and_shaped_like_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ntfy.token");
    let text = format!(
        "[notifications.ntfy]\nbase_url = \"https://ntfy.sh\"\ntopic = \"t\"\ntoken_file = \"{}\"\n",
        file.display()
    );
    std::fs::write(&file, "tk_secret\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = load(&text, &[]).unwrap();
    let err = Notifier::new(&cfg.notifications, "https://bursar.example")
        .unwrap_err()
        .to_string();
    assert!(err.contains("chmod 600") && !err.contains("tk_secret"), "{err}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let notifier = Notifier::new(&cfg.notifications, "https://bursar.example").unwrap();
    assert_eq!(format!("{notifier:?}"), "Notifier([\"ntfy\"])");
    assert!(!notifier.wants_daily_summary(), "off by default");
    std::fs::remove_file(&file).unwrap();
    crate::config::write_private_file(&file, b"tk with spaces").unwrap();
    let err = Notifier::new(&cfg.notifications, "https://bursar.example")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("does not hold an access token") && !err.contains("tk with"),
        "{err}"
    );
}

#[test]
fn links_are_pages_for_the_transfer_and_the_wallet() {
    let t = transfer();
    let base = "https://bursar.example:8443";
    let (tx, w) = (t.tx_id, t.wallet_id);
    let links =
        |e: &Event| -> Vec<(&'static str, String)> { e.links(base).into_iter().map(|l| (l.label, l.url)).collect() };
    let pending = Event::ApprovalPending {
        transfer: t.clone(),
        approval_url: String::new(),
        expires_at: None,
    };
    assert_eq!(
        links(&pending),
        [
            ("Review and approve", format!("{base}/approve/{tx}?action=approve")),
            ("Reject", format!("{base}/approve/{tx}?action=reject")),
            ("Freeze wallet", format!("{base}/owner/{w}")),
        ]
    );
    let delayed = Event::TransferDelayed {
        transfer: t.clone(),
        executes_at: 0,
        cancel_hint: String::new(),
    };
    assert_eq!(
        links(&delayed),
        [
            ("Cancel", format!("{base}/approve/{tx}?action=cancel")),
            ("Freeze wallet", format!("{base}/owner/{w}")),
        ]
    );
    let kill = |on, scope| Event::KillSwitch {
        on,
        scope,
        by: Actor::Master,
    };
    let scope = KillScope::Wallet {
        wallet_id: w,
        wallet_name: "w".into(),
    };
    assert_eq!(
        links(&kill(true, scope.clone())),
        [("Freeze wallet", format!("{base}/owner/{w}"))]
    );
    assert!(links(&kill(false, scope)).is_empty(), "nothing to press after a lift");
    assert!(links(&kill(true, KillScope::All)).is_empty());
}

#[test]
fn telegram_buttons_only_for_a_public_url_telegram_accepts() {
    use super::sender::telegram_buttons_ok;
    assert!(telegram_buttons_ok("https://bursar.example:8443"));
    assert!(telegram_buttons_ok("http://bursar.lan"));
    for local in [
        "http://127.0.0.1:3100",
        "http://localhost:3100",
        "http://[::1]:3100",
        "http://0.0.0.0:3100",
        "nonsense",
    ] {
        assert!(!telegram_buttons_ok(local), "{local}");
    }
}

#[test]
fn daily_summary_goes_only_to_senders_that_opted_in() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("hook.secret");
    crate::config::write_private_file(&secret, b"whsec-test").unwrap();
    let text = format!(
        "[notifications.webhook]\nurl = \"https://ops.example\"\nsecret_file = \"{}\"\n\n[notifications.ntfy]\nbase_url = \"https://ntfy.sh\"\ntopic = \"t\"\ndaily_summary = true\n",
        secret.display()
    );
    let notifier = Notifier::new(&load(&text, &[]).unwrap().notifications, "https://bursar.example").unwrap();
    assert!(notifier.wants_daily_summary());
    let summary = Summary {
        wallet_id: WalletId::new(),
        wallet_name: "w".into(),
        chain: "anvil".into(),
        from: 1_700_000_000 - 86_400,
        to: 1_700_000_000,
        frozen: false,
        by_status: [("CONFIRMED".to_owned(), 2)].into_iter().collect(),
        moved: vec![Moved {
            symbol: "ETH".into(),
            asset: "native".into(),
            amount: "0.75".into(),
            amount_base_units: "750000000000000000".into(),
            count: 2,
        }],
        pending: vec![],
        budget_left: vec!["daily: 9.2 ETH of 10 ETH".into()],
    };
    notifier.notify(Event::DailySummary {
        summary: summary.clone(),
    });
    let depths: Vec<(&str, usize)> = notifier.queue_depths().into_iter().map(|(k, n, _)| (k, n)).collect();
    assert_eq!(depths, [("webhook", 0), ("ntfy", 1)]);
    notifier.notify(Event::TransferNotify { transfer: transfer() });
    let depths: Vec<(&str, usize)> = notifier.queue_depths().into_iter().map(|(k, n, _)| (k, n)).collect();
    assert_eq!(depths, [("webhook", 1), ("ntfy", 2)], "other events go to every sender");
    let text = Event::DailySummary { summary }.text();
    assert!(text.starts_with("bursar: daily summary for wallet w"), "{text}");
    assert!(
        text.contains("transfers: 2 CONFIRMED") && text.contains("moved: 0.75 ETH in 2 transfer(s)"),
        "{text}"
    );
    assert!(
        text.contains("pending: none") && text.contains("budget left: daily: 9.2 ETH of 10 ETH"),
        "{text}"
    );
}

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
    let err = Notifier::new(&cfg.notifications).unwrap_err().to_string();
    assert!(err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let notifier = Notifier::new(&cfg.notifications).unwrap();
    assert!(notifier.is_enabled());
    assert_eq!(format!("{notifier:?}"), "Notifier([\"webhook\"])");

    // A Telegram token travels in the URL path: anything but a token's characters is refused.
    let token = dir.path().join("tg.token");
    crate::config::write_private_file(&token, b"123:abc/../x?y").unwrap();
    let text = format!(
        "[notifications.telegram]\nbot_token_file = \"{}\"\nchat_id = 1\n",
        token.display()
    );
    let err = Notifier::new(&load(&text, &[]).unwrap().notifications)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("does not hold a bot token") && !err.contains("abc"),
        "{err}"
    );
}

#[test]
fn without_senders_nothing_is_queued() {
    let notifier = Notifier::new(&Config::default().notifications).unwrap();
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

//! The HTTP price source against a local CoinGecko-compatible stub: a fresh price prices USD
//! rules; a stale or missing one escalates to APPROVAL (fail closed), never skips the rule.

use crate::harness::{Daemon, Opts, free_port};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Serves `GET /simple/price` with whatever `answer` holds (`Value::Null` = HTTP 503).
async fn stub(answer: Arc<Mutex<Value>>) -> String {
    let app = axum::Router::new().route(
        "/simple/price",
        axum::routing::get(move || {
            let answer = answer.clone();
            async move {
                let v = answer.lock().unwrap().clone();
                if v.is_null() {
                    Err(axum::http::StatusCode::SERVICE_UNAVAILABLE)
                } else {
                    Ok(axum::Json(v))
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A daemon with `extra` price config, a wallet with an owner (so APPROVAL is a tier, not a
/// denial) and one USD `SPENDING_LIMIT` with `rules`; returns the daemon and a session token.
async fn priced(anvil: &crate::harness::Anvil, extra: String, rules: Value) -> (Daemon, String) {
    let daemon = Daemon::start(Opts {
        anvil_url: Some(anvil.url.clone()),
        extra_config: extra,
        ..Opts::default()
    })
    .await;
    let (wallet, token) = daemon.wallet_and_token().await;
    let wid = wallet["id"].as_str().unwrap();
    let owner = json!({ "address": crate::harness::ANVIL_KEY0_ADDR });
    let (status, _) = daemon
        .master(Method::PUT, &format!("/v1/wallets/{wid}/owner"), Some(owner))
        .await;
    assert_eq!(status, 200);
    let policy = json!({ "walletId": wid, "type": "SPENDING_LIMIT", "rules": rules });
    let (status, _) = daemon.master(Method::POST, "/v1/policies", Some(policy)).await;
    assert_eq!(status, 201);
    (daemon, token)
}

async fn tier(daemon: &Daemon, token: &str) -> Value {
    let (status, c) = daemon
        .session(
            token,
            Method::POST,
            "/v1/transactions/check",
            Some(json!({ "to": crate::harness::ANVIL_KEY0_ADDR, "amount": "0.1" })),
        )
        .await;
    assert_eq!(status, 200, "{c}");
    c
}

async fn wait_tier(daemon: &Daemon, token: &str, want: &str) -> Value {
    for _ in 0..100 {
        let c = tier(daemon, token).await;
        if c["tier"] == want {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("tier never became {want}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_stale_and_missing_http_prices() {
    let anvil = crate::harness::Anvil::start().await;
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let answer = Arc::new(Mutex::new(
        json!({ "ethereum": { "usd": 2000.5, "last_updated_at": now() } }),
    ));
    let base = stub(answer.clone()).await;
    let extra = format!(
        "\n[prices]\nmax_age_seconds = 60\n\n[prices.http]\nbase_url = \"{base}\"\nrefresh_seconds = 1\n\n[prices.http.ids]\nETH = \"ethereum\"\n"
    );
    let (daemon, token) = priced(
        &anvil,
        extra,
        json!({ "instant_max_usd": "500", "notify_max_usd": "1000" }),
    )
    .await;

    // 0.1 ETH at $2000.50 = $200.05, plus the most the fee can cost: within instant_max_usd.
    let c = wait_tier(&daemon, &token, "INSTANT").await;
    assert!(c["reasons"].to_string().contains("$200.1"), "{c}");

    // The source keeps answering, but with a price from long ago: stale → APPROVAL.
    *answer.lock().unwrap() = json!({ "ethereum": { "usd": 2000.5, "last_updated_at": now() - 3600 } });
    let c = wait_tier(&daemon, &token, "APPROVAL").await;
    assert!(c["trace"].to_string().to_lowercase().contains("stale"), "{c}");

    // A price that is still fresh, but only for a few more seconds, then the source goes
    // down: the cached price keeps pricing until it ages out, then the rule fails closed.
    *answer.lock().unwrap() = json!({ "ethereum": { "usd": 2000.5, "last_updated_at": now() - 56 } });
    wait_tier(&daemon, &token, "INSTANT").await;
    *answer.lock().unwrap() = Value::Null;
    assert_eq!(
        tier(&daemon, &token).await["tier"],
        "INSTANT",
        "the cached price still serves"
    );
    let c = wait_tier(&daemon, &token, "APPROVAL").await;
    assert!(c["trace"].to_string().to_lowercase().contains("stale"), "{c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_price_source_fails_closed_from_the_start() {
    let extra = format!(
        "\n[prices.http]\nbase_url = \"http://127.0.0.1:{}\"\n\n[prices.http.ids]\nETH = \"ethereum\"\n",
        free_port()
    );
    let anvil = crate::harness::Anvil::start().await;
    let (daemon, token) = priced(&anvil, extra, json!({ "instant_max_usd": "1000000" })).await;
    let c = tier(&daemon, &token).await;
    assert_eq!(c["tier"], "APPROVAL", "{c}");
    assert!(c["trace"].to_string().contains("price"), "{c}");
}

async fn audit_kind(daemon: &Daemon, kind: &str) -> Vec<Value> {
    let (status, entries) = daemon
        .master(Method::GET, &format!("/v1/audit?kind={kind}&limit=500"), None)
        .await;
    assert_eq!(status, 200, "{entries}");
    entries.as_array().unwrap().clone()
}

/// A hostile or broken feed: a price of 0, then a 1000x jump. Either makes the price unknown,
/// so a USD-limited transfer of INSTANT size needs APPROVAL; each refusal is audited once
/// however many refreshes repeat it, and a sane price clears it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_and_absurd_prices_fail_closed_and_are_audited_once() {
    let anvil = crate::harness::Anvil::start().await;
    let answer = Arc::new(Mutex::new(json!({ "ethereum": { "usd": 2000 } })));
    let base = stub(answer.clone()).await;
    let extra = format!(
        "\n[prices]\nmax_age_seconds = 60\nmax_change_ratio = 10\n\n[prices.http]\nbase_url = \"{base}\"\nrefresh_seconds = 1\n\n[prices.http.ids]\nETH = \"ethereum\"\n"
    );
    let (daemon, token) = priced(
        &anvil,
        extra,
        json!({ "instant_max_usd": "500", "notify_max_usd": "1000" }),
    )
    .await;
    wait_tier(&daemon, &token, "INSTANT").await;

    // 0: not a price. 0.1 ETH would cost $0 and slip under every USD limit if it were used.
    *answer.lock().unwrap() = json!({ "ethereum": { "usd": 0 } });
    let c = wait_tier(&daemon, &token, "APPROVAL").await;
    assert!(c["trace"].to_string().contains("price"), "{c}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let refused = audit_kind(&daemon, "price_refused").await;
    assert_eq!(refused.len(), 1, "audited once, not per refresh: {refused:?}");
    assert_eq!(refused[0]["detail"]["asset"], "eth");
    assert!(
        refused[0]["detail"]["reason"].as_str().unwrap().contains("0"),
        "{refused:?}"
    );

    // A sane price clears it.
    *answer.lock().unwrap() = json!({ "ethereum": { "usd": 2000 } });
    wait_tier(&daemon, &token, "INSTANT").await;
    assert_eq!(audit_kind(&daemon, "price_restored").await.len(), 1);

    // 1000x the last accepted price: refused, fail closed again.
    *answer.lock().unwrap() = json!({ "ethereum": { "usd": 2_000_000 } });
    wait_tier(&daemon, &token, "APPROVAL").await;
    let refused = audit_kind(&daemon, "price_refused").await;
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused[1]["detail"]["reason"].as_str().unwrap().contains("10x"),
        "{refused:?}"
    );

    // A negative or non-numeric answer is no better.
    for bad in [json!(-2000), json!("2000")] {
        *answer.lock().unwrap() = json!({ "ethereum": { "usd": 2000 } });
        wait_tier(&daemon, &token, "INSTANT").await;
        *answer.lock().unwrap() = json!({ "ethereum": { "usd": bad } });
        wait_tier(&daemon, &token, "APPROVAL").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_plain_http_price_source_is_refused_at_start() {
    let mut daemon = Daemon::init(Opts::default());
    let config = daemon.data_dir().join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text +=
        "\n[prices.http]\nbase_url = \"http://prices.example.com/api/v3\"\n\n[prices.http.ids]\nETH = \"ethereum\"\n";
    crate::harness::write_private(&config, &text);
    let (code, log) = daemon
        .try_spawn()
        .await
        .expect_err("a plain-http remote price feed must be refused");
    assert_ne!(code, Some(0));
    assert!(log.contains("[prices.http] base_url must be an https:// URL"), "{log}");
}

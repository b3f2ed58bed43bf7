//! Session tokens against the real daemon: every way a token can be wrong is rejected with
//! the right status and code.

use crate::harness::{Daemon, Opts};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

async fn address_status(daemon: &Daemon, token: &str) -> (u16, Value) {
    daemon.session(token, Method::GET, "/v1/wallet/address", None).await
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_kills_the_old_token_and_counts() {
    let daemon = Daemon::start(Opts::default()).await;
    let wallet = daemon.create_wallet("anvil").await;
    let s = daemon
        .create_session(
            wallet["id"].as_str().unwrap(),
            json!({ "ttlSeconds": 600, "maxRenewals": 1 }),
        )
        .await;
    let (id, old) = (s["id"].as_str().unwrap(), s["token"].as_str().unwrap());
    assert_eq!(address_status(&daemon, old).await.0, 200);

    let (status, renewed) = daemon
        .session(old, Method::PUT, &format!("/v1/sessions/{id}/renew"), None)
        .await;
    assert_eq!(status, 200, "{renewed}");
    let new = renewed["token"].as_str().unwrap();
    assert_ne!(new, old);
    assert_eq!(renewed["renewalsLeft"], 0);

    let (status, body) = address_status(&daemon, old).await;
    assert_eq!(
        (status, code(&body)),
        (401, "SESSION_INVALID"),
        "old token must die at once: {body}"
    );
    assert!(body["error"]["message"].as_str().unwrap().contains("renewal"));
    // Replaying the old token on renew is refused as well.
    let (status, _) = daemon
        .session(old, Method::PUT, &format!("/v1/sessions/{id}/renew"), None)
        .await;
    assert_eq!(status, 401);
    assert_eq!(address_status(&daemon, new).await.0, 200);

    let (status, body) = daemon
        .session(new, Method::PUT, &format!("/v1/sessions/{id}/renew"), None)
        .await;
    assert_eq!((status, code(&body)), (403, "RENEWALS_EXHAUSTED"), "{body}");
    assert_eq!(
        address_status(&daemon, new).await.0,
        200,
        "a refused renewal leaves the token valid"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_expired_and_lifetime_exceeded_tokens_are_rejected() {
    let daemon = Daemon::start(Opts::default()).await;
    let wallet = daemon.create_wallet("anvil").await;
    let wid = wallet["id"].as_str().unwrap();

    let s = daemon.create_session(wid, json!({})).await;
    let (status, body) = daemon
        .master(
            Method::DELETE,
            &format!("/v1/sessions/{}", s["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!((status, body["revoked"].as_bool()), (200, Some(true)), "{body}");
    let (status, body) = address_status(&daemon, s["token"].as_str().unwrap()).await;
    assert_eq!((status, code(&body)), (401, "SESSION_REVOKED"));

    let short = daemon
        .create_session(wid, json!({ "ttlSeconds": 1, "absoluteLifetimeSeconds": 60 }))
        .await;
    let capped = daemon
        .create_session(
            wid,
            json!({ "ttlSeconds": 1, "absoluteLifetimeSeconds": 1, "maxRenewals": 5 }),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = address_status(&daemon, short["token"].as_str().unwrap()).await;
    assert_eq!((status, code(&body)), (401, "SESSION_EXPIRED"), "{body}");
    let (status, body) = address_status(&daemon, capped["token"].as_str().unwrap()).await;
    assert_eq!((status, code(&body)), (401, "SESSION_EXPIRED"), "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("absolute lifetime"),
        "{body}"
    );
    // An expired token cannot renew itself back to life.
    let (status, _) = daemon
        .session(
            capped["token"].as_str().unwrap(),
            Method::PUT,
            &format!("/v1/sessions/{}/renew", capped["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_tampered_and_cross_wallet_tokens_are_rejected() {
    let a = Daemon::start(Opts::default()).await;
    let b = Daemon::start(Opts::default()).await;
    let (_, token_a) = a.wallet_and_token().await;
    let (_, token_b) = b.wallet_and_token().await;

    // A token minted by another bursar (other secret, other audience).
    let (status, body) = address_status(&a, &token_b).await;
    assert_eq!((status, code(&body)), (401, "SESSION_INVALID"), "{body}");

    // Tampered payload: claim another wallet.
    let parts: Vec<&str> = token_a.split('.').collect();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    claims["wid"] = json!(uuid::Uuid::new_v4().to_string());
    let forged = format!("{}.{}.{}", parts[0], b64.encode(claims.to_string()), parts[2]);
    let (status, body) = address_status(&a, &forged).await;
    assert_eq!((status, code(&body)), (401, "SESSION_INVALID"), "{body}");
    for junk in ["", "garbage", "a.b.c", &format!("{token_a}x")] {
        assert_eq!(address_status(&a, junk).await.0, 401, "{junk}");
    }

    // Wallet A's session cannot act on wallet B's session, nor on master routes.
    let wallet2 = a.create_wallet("anvil").await;
    let other = a.create_session(wallet2["id"].as_str().unwrap(), json!({})).await;
    let (status, body) = a
        .session(
            &token_a,
            Method::PUT,
            &format!("/v1/sessions/{}/renew", other["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!((status, code(&body)), (403, "FORBIDDEN"), "{body}");
    let (status, _) = a
        .session(
            &token_a,
            Method::GET,
            &format!("/v1/wallets/{}", wallet2["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, 401);
    // The other session's token still works: nothing was changed by the refused call.
    assert_eq!(address_status(&a, other["token"].as_str().unwrap()).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_rotation_invalidates_every_token() {
    let daemon = Daemon::start(Opts::default()).await;
    let (_, token) = daemon.wallet_and_token().await;
    assert_eq!(address_status(&daemon, &token).await.0, 200);
    let out = daemon.cli(&["session", "rotate-secret"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(address_status(&daemon, &token).await.0, 401);
    let (_, fresh) = daemon.wallet_and_token().await;
    assert_eq!(address_status(&daemon, &fresh).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_creation_validates_its_bounds() {
    let daemon = Daemon::start(Opts::default()).await;
    let wallet = daemon.create_wallet("anvil").await;
    let wid = wallet["id"].as_str().unwrap();
    let cases = [
        json!({ "walletId": wid, "ttlSeconds": 0 }),
        json!({ "walletId": wid, "ttlSeconds": 100, "absoluteLifetimeSeconds": 10 }),
        json!({ "walletId": wid, "ttlSeconds": 99999999999u64 }),
        json!({ "walletId": "not-a-uuid" }),
        json!({ "walletId": wid, "scope": "admin" }),
        json!({}),
    ];
    for body in cases {
        let (status, res) = daemon.master(Method::POST, "/v1/sessions", Some(body.clone())).await;
        assert_eq!((status, code(&res)), (400, "INVALID_INPUT"), "{body}: {res}");
    }
    let (status, res) = daemon
        .master(
            Method::POST,
            "/v1/sessions",
            Some(json!({ "walletId": uuid::Uuid::new_v4().to_string() })),
        )
        .await;
    assert_eq!((status, code(&res)), (404, "NOT_FOUND"), "{res}");
}

//! Deny by default: walk the router's own route table and prove that every route rejects a
//! missing credential, the wrong kind of credential, a bad password, a tampered, an expired
//! and a revoked token — and that the right credential gets past auth, so the rejections
//! mean something. A route added without auth cannot compile (the table needs an `Auth`);
//! a new public route fails `only_listed_routes_are_public`.

use crate::harness::{Daemon, Opts};
use bursar::api::rest::{Auth, routes};
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

/// The only routes that take no credential: INTERFACE.md's two, and the owner's approval
/// page (which holds no secret and acts only on the owner's signature) with its Sign
/// button's same-origin POST for the message.
const PUBLIC_ROUTES: &[&str] = &[
    "/health",
    "/openapi.json",
    "/v1/nonce",
    "/approve/{id}",
    "/approve/{id}/message",
    "/owner/{id}",
    "/owner/{id}/message",
];

#[test]
fn only_listed_routes_are_public() {
    for r in routes() {
        if r.auth == Auth::Public {
            assert!(
                PUBLIC_ROUTES.contains(&r.path),
                "{} {} is public but not listed",
                r.method,
                r.path
            );
        }
    }
    // Every (method, path) appears once.
    let mut seen = std::collections::HashSet::new();
    for r in routes() {
        assert!(
            seen.insert((r.method.clone(), r.path)),
            "duplicate route {} {}",
            r.method,
            r.path
        );
    }
}

fn method(m: &axum::http::Method) -> Method {
    Method::from_bytes(m.as_str().as_bytes()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_rejects_missing_wrong_bad_expired_and_revoked_credentials() {
    let daemon = Daemon::start(Opts::default()).await;
    let wallet = daemon.create_wallet("anvil").await;
    let wid = wallet["id"].as_str().unwrap().to_owned();
    let live = daemon.create_session(&wid, json!({})).await;
    let revoked = daemon.create_session(&wid, json!({})).await;
    daemon
        .master(
            Method::DELETE,
            &format!("/v1/sessions/{}", revoked["id"].as_str().unwrap()),
            None,
        )
        .await;
    let expired = daemon
        .create_session(&wid, json!({ "ttlSeconds": 1, "absoluteLifetimeSeconds": 60 }))
        .await;
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let live_token = live["token"].as_str().unwrap().to_owned();
    let mut tampered = live_token.clone();
    tampered.pop();
    tampered.push(if live_token.ends_with('A') { 'B' } else { 'A' });

    let bearer = |t: &str| format!("Bearer {t}");
    let bad_sessions = [
        ("no credential", vec![]),
        (
            "master password on a session route",
            vec![("x-master-password".to_owned(), daemon.password.clone())],
        ),
        ("tampered token", vec![("authorization".to_owned(), bearer(&tampered))]),
        (
            "expired token",
            vec![("authorization".to_owned(), bearer(expired["token"].as_str().unwrap()))],
        ),
        (
            "revoked token",
            vec![("authorization".to_owned(), bearer(revoked["token"].as_str().unwrap()))],
        ),
        (
            "token in the wrong scheme",
            vec![("authorization".to_owned(), format!("Basic {live_token}"))],
        ),
    ];
    let bad_masters = [
        ("no credential", vec![]),
        (
            "session token on a master route",
            vec![("authorization".to_owned(), bearer(&live_token))],
        ),
        (
            "wrong password",
            vec![("x-master-password".to_owned(), format!("{}x", daemon.password))],
        ),
        ("empty password", vec![("x-master-password".to_owned(), String::new())]),
    ];
    let bad_either: Vec<(&str, Vec<(String, String)>)> = bad_sessions
        .iter()
        .filter(|(what, _)| !what.starts_with("master password"))
        .chain(
            bad_masters
                .iter()
                .filter(|(what, _)| !what.starts_with("session token")),
        )
        .cloned()
        .collect();
    let stranger = crate::owner::Owner::new();
    let (_, nonce) = daemon.request(Method::GET, "/v1/nonce", &[], None).await;
    let forged = format!(
        "127.0.0.1:{} wants you to sign in with your Ethereum account:\n{}\n\nConnect.\n\nURI: http://x/\nVersion: 1\nChain ID: 31337\nNonce: {}\nIssued At: 2030-01-01T00:00:00Z\nExpiration Time: 2030-01-01T00:05:00Z\nRequest ID: bursar:connect\nResources:\n- urn:bursar:wallet:{wid}",
        daemon.port,
        stranger.address(),
        nonce["nonce"].as_str().unwrap()
    );
    let bad_owners: Vec<(&str, Vec<(String, String)>)> = vec![
        ("no credential", vec![]),
        (
            "session token on an owner route",
            vec![("authorization".to_owned(), bearer(&live_token))],
        ),
        (
            "master password on an owner route",
            vec![("x-master-password".to_owned(), daemon.password.clone())],
        ),
        (
            "garbage owner headers",
            vec![
                ("x-owner-message".to_owned(), "bm90IGEgbWVzc2FnZQ==".to_owned()),
                ("x-owner-signature".to_owned(), "0x1234".to_owned()),
            ],
        ),
        ("a stranger's signature", stranger.headers(&forged).to_vec()),
    ];
    // Owner headers, when given, are what such a route judges: bad ones fail on their own.
    let bad_any: Vec<(&str, Vec<(String, String)>)> = bad_either
        .iter()
        .chain(
            bad_owners
                .iter()
                .filter(|(what, _)| what.contains("owner headers") || what.contains("stranger")),
        )
        .cloned()
        .collect();

    let mut checked = 0;
    for r in routes() {
        // Path parameters: the caller's own ids, so auth is the only thing that can fail.
        // (Session routes other than renew get the revoked session, so a successful DELETE
        // does not kill the live token mid-test.)
        let id = match r.path {
            p if p.ends_with("/renew") => live["id"].as_str().unwrap(),
            p if p.starts_with("/v1/sessions/") => revoked["id"].as_str().unwrap(),
            _ => &wid,
        };
        let path = r.path.replace("{id}", id);
        let cases: &[(&str, Vec<(String, String)>)] = match r.auth {
            // Loopback peers need no credential by default; every access mode is proven in
            // tests/it/metrics.rs.
            Auth::Public | Auth::Metrics => continue,
            Auth::Master => &bad_masters,
            Auth::Session => &bad_sessions,
            Auth::SessionOrMaster => &bad_either,
            Auth::SessionMasterOrOwner => &bad_any,
            Auth::Owner => &bad_owners,
        };
        for (what, headers) in cases {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let (status, body) = daemon
                .request(method(&r.method), &path, &headers, Some(json!({})))
                .await;
            assert_eq!(status, 401, "{} {} with {what}: {body}", r.method, r.path);
            assert!(
                body["error"]["code"].is_string(),
                "uniform error body for {} {}: {body}",
                r.method,
                r.path
            );
            checked += 1;
        }
        // The right credential passes auth (whatever the handler then says about the body, or
        // a 502 for a chain this test does not run — but never an internal error).
        // Shutdown and renew would change the state this test relies on.
        if r.path == "/v1/admin/shutdown"
            || r.path.ends_with("/renew")
            || r.path == "/v1/admin/rotate-session-secret"
            || r.path == "/v1/admin/master-password"
        {
            continue;
        }
        let good: Vec<(String, String)> = match r.auth {
            Auth::Master => vec![("x-master-password".to_owned(), daemon.password.clone())],
            Auth::Session | Auth::SessionOrMaster | Auth::SessionMasterOrOwner => {
                vec![("authorization".to_owned(), bearer(&live_token))]
            }
            // Proven end to end in tests/it/owner.rs with a real owner key.
            Auth::Owner => continue,
            Auth::Public | Auth::Metrics => unreachable!(),
        };
        let headers: Vec<(&str, &str)> = good.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (status, body) = daemon.request(method(&r.method), &path, &headers, None).await;
        assert!(
            status != 401 && status != 403 && status != 500,
            "{} {} with the right credential: {status} {body}",
            r.method,
            r.path
        );
    }
    assert!(checked >= 40, "checked only {checked} cases");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_password_failures_are_rate_limited_and_audited() {
    let daemon = Daemon::start(Opts {
        master_failures_per_minute: 3,
        ..Opts::default()
    })
    .await;
    let wrong = [("x-master-password", "definitely-not-it")];
    for _ in 0..3 {
        let (status, _) = daemon.request(Method::GET, "/v1/wallets", &wrong, None).await;
        assert_eq!(status, 401);
    }
    let (status, body) = daemon.request(Method::GET, "/v1/wallets", &wrong, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("RATE_LIMITED")));
    // The right password is never refused or slowed because someone sent wrong ones: a
    // lockout would hand the agent a switch that turns the operator's brakes off.
    let started = std::time::Instant::now();
    let (status, _) = daemon.master(Method::GET, "/v1/wallets", None).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < std::time::Duration::from_millis(500));
    let out = daemon
        .cli(&["audit", "list", "--kind", "master_auth_failed", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let (status, entries) = daemon
        .master(Method::GET, "/v1/audit?kind=master_auth_failed", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(entries.as_array().unwrap().len(), 3, "{entries}");
    assert!(
        !entries.to_string().contains("definitely-not-it"),
        "the attempt is audited, not the password"
    );
}

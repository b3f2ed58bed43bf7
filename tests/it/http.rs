//! The HTTP surface: Host/Origin validation, body limits, uniform JSON errors.

use crate::harness::{Daemon, Opts, http};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_host_and_origin_get_403_even_with_credentials() {
    let daemon = Daemon::start(Opts::default()).await;
    let url = format!("{}/v1/wallets", daemon.url);
    let cases = [
        ("host", "evil.example".to_owned()),
        ("host", format!("attacker.test:{}", daemon.port)),
        ("origin", "https://evil.example".to_owned()),
        ("origin", "null".to_owned()),
        ("origin", format!("http://localhost:{}0", daemon.port)),
    ];
    for (header, value) in cases {
        let res = http()
            .get(&url)
            .header("x-master-password", &daemon.password)
            .header(header, &value)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 403, "{header}: {value}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert!(
            body["error"]["code"].as_str().unwrap().starts_with("FORBIDDEN_"),
            "{body}"
        );
    }
    // The daemon's own origin is fine.
    let res = http()
        .get(&url)
        .header("x-master-password", &daemon.password)
        .header("origin", format!("http://localhost:{}", daemon.port))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    // No CORS grant is ever made.
    assert!(res.headers().get("access-control-allow-origin").is_none());
    assert_eq!(res.headers().get("cache-control").unwrap(), "no-store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversized_and_unknown_requests_get_json_errors() {
    let daemon = Daemon::start(Opts::default()).await;
    let master = [("x-master-password", daemon.password.as_str())];

    let big = json!({ "name": "x".repeat(100_000), "chain": "anvil" });
    let (status, body) = daemon.request(Method::POST, "/v1/wallets", &master, Some(big)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("PAYLOAD_TOO_LARGE")),
        "{body}"
    );

    let res = http()
        .post(format!("{}/v1/wallets", daemon.url))
        .header("x-master-password", &daemon.password)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let res = http()
        .post(format!("{}/v1/wallets", daemon.url))
        .header("x-master-password", &daemon.password)
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 415);

    let cases = [
        (json!({ "name": "w", "chain": "nope" }), "not configured"),
        (json!({ "name": "", "chain": "anvil" }), "name"),
        (json!({ "name": "w\u{202e}", "chain": "anvil" }), "invisible"),
        (json!({ "name": "w", "chain": "anvil", "extra": 1 }), "unknown field"),
        (json!({ "name": 5, "chain": "anvil" }), "invalid type"),
    ];
    for (req, needle) in cases {
        let (status, body) = daemon
            .request(Method::POST, "/v1/wallets", &master, Some(req.clone()))
            .await;
        assert_eq!(status, 400, "{req}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(needle),
            "{req}: {body}"
        );
    }

    let (status, body) = daemon.request(Method::GET, "/v1/nothing-here", &master, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("NOT_FOUND")));
    let (status, body) = daemon.request(Method::PATCH, "/v1/wallets", &master, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("METHOD_NOT_ALLOWED"))
    );
    let (status, body) = daemon
        .request(Method::GET, "/v1/wallets/not-a-uuid", &master, None)
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("INVALID_INPUT")));
    let (status, body) = daemon
        .request(
            Method::GET,
            &format!("/v1/wallets/{}", uuid::Uuid::new_v4()),
            &master,
            None,
        )
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("NOT_FOUND")));

    // A set-master body error never echoes what was sent.
    let (status, body) = daemon
        .request(
            Method::PUT,
            "/v1/admin/master-password",
            &master,
            Some(json!({ "newPasswort": "leaky-secret-value" })),
        )
        .await;
    assert_eq!(status, 400);
    assert!(!body.to_string().contains("leaky-secret-value"));
    let (status, body) = daemon
        .request(
            Method::PUT,
            "/v1/admin/master-password",
            &master,
            Some(json!({ "newPassword": "short" })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    // Nothing was lost: the wallet list still answers with the old password.
    assert_eq!(daemon.master(Method::GET, "/v1/wallets", None).await.0, 200);

    let (status, body) = daemon.request(Method::GET, "/health", &[], None).await;
    assert_eq!((status, body), (200, json!({ "status": "ok" })));
}

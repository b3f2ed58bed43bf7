//! The approval page against a hostile web page in the owner's browser: loading the page or
//! `GET /v1/nonce` a thousand times (what any page can make a browser do) spends no nonce the
//! page needs, and only the page itself — a same-origin POST — gets the message to sign.
//! The flow is the page's: POST for the message, the owner signs it, the signature approves.

use crate::harness::{Anvil, Daemon, eth, http};
use crate::owner::{Owner, pending, post_signed};
use crate::transfers::{RECIPIENT, balance_of, opts, wait_status};
use alloy::primitives::U256;
use reqwest::Method;
use serde_json::{Value, json};

/// `n` GETs of `path`, 16 at a time; the statuses seen.
async fn flood(daemon: &Daemon, path: &str, n: usize) -> std::collections::BTreeMap<u16, usize> {
    let url = format!("{}{path}", daemon.url);
    let mut seen = std::collections::BTreeMap::new();
    let client = http();
    let mut rest = n;
    while rest > 0 {
        let batch = rest.min(16);
        rest -= batch;
        let requests: Vec<_> = (0..batch).map(|_| tokio::spawn(client.get(&url).send())).collect();
        let mut statuses = Vec::new();
        for r in requests {
            statuses.push(r.await.unwrap().unwrap().status().as_u16());
        }
        for s in statuses {
            *seen.entry(s).or_default() += 1;
        }
    }
    seen
}

async fn page_message(daemon: &Daemon, tx: &str, action: &str, origin: Option<&str>) -> (u16, Value) {
    let mut headers = Vec::new();
    if let Some(o) = origin {
        headers.push(("origin", o));
    }
    daemon
        .request(
            Method::POST,
            &format!("/approve/{tx}/message?action={action}"),
            &headers,
            None,
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_and_nonce_floods_cannot_stop_the_owner_approving_from_the_page() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let owner = Owner::new();
    let (wallet, token) = daemon.wallet_and_token().await;
    let wid = wallet["id"].as_str().unwrap();
    anvil.fund(wallet["address"].as_str().unwrap(), eth(10)).await;
    let policy = json!({ "walletId": wid, "type": "SPENDING_LIMIT", "rules": { "instant_max": "0.1" } });
    assert_eq!(daemon.master(Method::POST, "/v1/policies", Some(policy)).await.0, 201);
    let (status, body) = daemon
        .master(
            Method::PUT,
            &format!("/v1/wallets/{wid}/owner"),
            Some(json!({ "address": owner.address() })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id = pending(&daemon, &token, "0.5", "page-flood").await;
    let before = balance_of(&anvil, RECIPIENT).await;

    // Any web page can make the browser fetch these (no Origin on a plain GET).
    let nonces = flood(&daemon, "/v1/nonce", 1000).await;
    assert_eq!(nonces.get(&200), Some(&1000), "{nonces:?}");
    let (status, body) = daemon.request(Method::GET, "/v1/nonce", &[], None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("RATE_LIMITED")),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        !message.contains("failed attempts") && message.contains("outstanding"),
        "a full nonce pool is not an auth failure: {message}"
    );
    let views = flood(&daemon, &format!("/approve/{id}"), 1000).await;
    assert_eq!(views.get(&200), Some(&1000), "{views:?}");

    // The page shows the transfer and the shape of the message, but no usable nonce.
    let html = http()
        .get(format!("{}/approve/{id}", daemon.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(RECIPIENT) && html.contains("Nonce: (issued when the owner signs)"));

    // Only the page itself gets the message: no Origin, a foreign one, or another local
    // origin (passes the Host/Origin guard, is not this page) are refused.
    let own = format!("http://127.0.0.1:{}", daemon.port);
    let other_port = format!("http://localhost:{}", daemon.port + 1);
    for origin in [None, Some("https://evil.example"), Some(other_port.as_str())] {
        let (status, body) = page_message(&daemon, &id, "approve", origin).await;
        assert_eq!(status, 403, "Origin {origin:?}: {body}");
    }
    let (status, body) = page_message(&daemon, &id, "nonsense", Some(&own)).await;
    assert_eq!(status, 400, "{body}");

    let (status, m) = page_message(&daemon, &id, "approve", Some(&own)).await;
    assert_eq!(status, 200, "{m}");
    let text = m["message"].as_str().unwrap();
    assert!(text.contains(&format!("urn:bursar:tx:{id}")) && !text.contains("(issued when"));
    assert_eq!(m["submitTo"], format!("/v1/transactions/{id}/approve"));
    let (status, tx) = post_signed(&daemon, m["submitTo"].as_str().unwrap(), &owner.headers(text)).await;
    assert_eq!(status, 200, "{tx}");
    wait_status(&daemon, &token, &id, "CONFIRMED").await;
    assert_eq!(balance_of(&anvil, RECIPIENT).await - before, eth(1) / U256::from(2));

    // The previewed text cannot be signed into anything.
    let other = pending(&daemon, &token, "0.6", "page-preview").await;
    let html = http()
        .get(format!("{}/approve/{other}", daemon.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let data = &html[html.find("id=\"data\"").unwrap()..];
    let data = &data[data.find('>').unwrap() + 1..data.find("</script>").unwrap()];
    let data: Value = serde_json::from_str(data).unwrap();
    let preview = data["preview"]["message"].as_str().unwrap();
    assert!(preview.contains("Nonce: (issued when the owner signs)"), "{preview}");
    let (status, body) = post_signed(
        &daemon,
        &format!("/v1/transactions/{other}/approve"),
        &owner.headers(preview),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    let (_, tx) = daemon
        .session(&token, Method::GET, &format!("/v1/transactions/{other}"), None)
        .await;
    assert_eq!(tx["status"], "PENDING_APPROVAL", "{tx}");
}

//! Bounded reads of a growing history: transaction and audit listings page with a cursor
//! (`X-Next-Before`, passed back as `before`) and keep the plain array body; a wallet's
//! transfers that are not final are capped (`[transfers] max_open_per_wallet`, 429 before
//! anything is stored).

use crate::harness::{Anvil, Daemon, Opts};
use crate::transfers::RECIPIENT;
use reqwest::Method;
use serde_json::{Value, json};

/// GET with a credential header; (status, body, `X-Next-Before`).
async fn get_page(daemon: &Daemon, header: (&str, &str), path: &str) -> (u16, Value, Option<String>) {
    let res = crate::harness::http()
        .get(format!("{}{path}", daemon.url))
        .header(header.0, header.1)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let next = res
        .headers()
        .get("x-next-before")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, res.json().await.unwrap(), next)
}

async fn send(daemon: &Daemon, token: &str, key: &str) -> (u16, Value) {
    daemon
        .session(
            token,
            Method::POST,
            "/v1/transactions/send",
            Some(json!({ "to": RECIPIENT, "amount": "0.01", "idempotencyKey": key })),
        )
        .await
}

fn ids(page: &Value) -> Vec<String> {
    page.as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_and_audit_listings_page_back_with_a_cursor() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::with_anvil(&anvil).await;
    // No policy and no owner: every transfer is DENIED (and stored).
    let (_, token) = daemon.wallet_and_token().await;
    let mut sent = Vec::new();
    for i in 0..7 {
        let (status, tx) = send(&daemon, &token, &format!("page-{i}")).await;
        assert_eq!(status, 403, "{tx}");
        sent.push(tx["error"]["details"]["transaction"]["id"].as_str().unwrap().to_owned());
    }
    sent.reverse();

    let bearer = format!("Bearer {token}");
    let auth = ("authorization", bearer.as_str());
    let mut seen = Vec::new();
    let mut path = "/v1/transactions?limit=3".to_owned();
    let mut pages = 0;
    loop {
        let (status, page, next) = get_page(&daemon, auth, &path).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(ids(&page));
        pages += 1;
        match next {
            Some(cursor) => path = format!("/v1/transactions?limit=3&before={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, sent, "newest first, each once");
    assert_eq!(pages, 3);

    let (_, denied, next) = get_page(&daemon, auth, "/v1/transactions?status=DENIED&limit=5").await;
    assert_eq!(ids(&denied), sent[..5]);
    let (_, rest, last) = get_page(
        &daemon,
        auth,
        &format!("/v1/transactions?status=DENIED&limit=5&before={}", next.unwrap()),
    )
    .await;
    assert_eq!((ids(&rest), last), (sent[5..].to_vec(), None));
    let (status, _, _) = get_page(&daemon, auth, "/v1/transactions?before=not-an-id").await;
    assert_eq!(status, 400);

    // The CLI prints the same pages, and the cursor on stderr.
    let mut cmd = daemon.cli(&["tx", "list", "--limit", "4", "--json"]);
    cmd.env("BURSAR_SESSION_TOKEN", &token);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ids(&listed), sent[..4]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("--before {}", sent[3])),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The audit log pages back the same way: oldest first within a page, older pages after.
    let master = ("x-master-password", daemon.password.as_str());
    let (_, newest, cursor) = get_page(&daemon, master, "/v1/audit?limit=4").await;
    let seqs = |page: &Value| -> Vec<u64> {
        page.as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect()
    };
    let newest = seqs(&newest);
    assert_eq!(newest.len(), 4);
    assert!(newest.windows(2).all(|w| w[1] == w[0] + 1), "{newest:?}");
    let cursor = cursor.unwrap();
    assert_eq!(cursor, newest[0].to_string());
    let (_, older, _) = get_page(&daemon, master, &format!("/v1/audit?limit=4&before={cursor}")).await;
    assert_eq!(*seqs(&older).last().unwrap() + 1, newest[0]);
    let (_, denials, _) = get_page(&daemon, master, "/v1/audit?kind=tx_denied&limit=500").await;
    assert_eq!(denials.as_array().unwrap().len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_over_its_open_transfer_cap_is_refused_before_anything_is_stored() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(Opts {
        anvil_url: Some(anvil.url.clone()),
        extra_config: "\n[transfers]\nmax_open_per_wallet = 2\n".into(),
        ..Opts::default()
    })
    .await;
    let (wallet, token) = daemon.wallet_and_token().await;
    let wid = wallet["id"].as_str().unwrap();
    // Everything up to 1 ETH waits an hour: DELAYED is not final.
    let rules = json!({ "delay_max": "1", "delay_seconds": 3600 });
    let policy = json!({ "walletId": wid, "type": "SPENDING_LIMIT", "rules": rules });
    let (status, body) = daemon.master(Method::POST, "/v1/policies", Some(policy)).await;
    assert_eq!(status, 201, "{body}");

    let (_, first) = send(&daemon, &token, "open-1").await;
    let (_, second) = send(&daemon, &token, "open-2").await;
    assert_eq!(
        (&first["status"], &second["status"]),
        (&json!("DELAYED"), &json!("DELAYED"))
    );
    let (status, refused) = send(&daemon, &token, "open-3").await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (429, Some("TOO_MANY_OPEN")),
        "{refused}"
    );
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_open_per_wallet")
    );
    // A retry of an existing key is still answered with its transfer, not refused.
    let (status, again) = send(&daemon, &token, "open-1").await;
    assert_eq!((status, &again["id"]), (200, &first["id"]));
    let (_, list) = daemon.session(&token, Method::GET, "/v1/transactions", None).await;
    assert_eq!(
        list.as_array().unwrap().len(),
        2,
        "nothing stored for the refused one: {list}"
    );
    let (_, requested) = daemon.master(Method::GET, "/v1/audit?kind=tx_requested", None).await;
    assert_eq!(requested.as_array().unwrap().len(), 2);

    // Cancelling one makes room.
    let id = first["id"].as_str().unwrap();
    let (status, _) = daemon
        .session(&token, Method::POST, &format!("/v1/transactions/{id}/cancel"), None)
        .await;
    assert_eq!(status, 200);
    let (status, third) = send(&daemon, &token, "open-3").await;
    assert_eq!((status, &third["status"]), (200, &json!("DELAYED")), "{third}");
}

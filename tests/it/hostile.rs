//! The agent as the adversary (issue "hold against a hostile agent"): it holds a valid
//! session token, speaks MCP and plain HTTP to loopback, relays the owner's messages and
//! signatures, and tries to move money past the owner or to jam the brakes. Each test here
//! is one live finding, replayed against the real binary on a real anvil.

use crate::harness::{Anvil, Daemon, Opts, eth, http};
use crate::mcp_robust::post as mcp_post;
use crate::mcp_sse::{initialize, request};
use crate::owner::{Owner, guarded, pending, post_signed};
use crate::rpc_proxy::RpcProxy;
use crate::transfers::{RECIPIENT, balance_of, opts, wait_status};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn approval_text(daemon: &Daemon, token: &str, tx: &str, action: &str) -> String {
    let (status, m) = daemon
        .session(
            token,
            Method::GET,
            &format!("/v1/transactions/{tx}/approval-message?action={action}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{m}");
    m["message"].as_str().unwrap().to_owned()
}

async fn wallet_nonce(anvil: &Anvil, daemon: &Daemon, wid: &str) -> Value {
    let (_, w) = daemon.master(Method::GET, &format!("/v1/wallets/{wid}"), None).await;
    anvil
        .rpc("eth_getTransactionCount", json!([w["address"], "latest"]))
        .await
}

async fn status_of(daemon: &Daemon, token: &str, tx: &str) -> Value {
    daemon
        .session(token, Method::GET, &format!("/v1/transactions/{tx}"), None)
        .await
        .1["status"]
        .clone()
}

fn statement(text: &str) -> &str {
    text.split('\n').nth(3).unwrap()
}

/// Finding 1: the readable part of an owner message was not checked. The agent relays
/// texts it edited; the owner signs what it reads. None of these may move money.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_owner_texts_never_approve_what_the_owner_did_not_read() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let owner = Owner::new();
    let (wid, token) = guarded(&anvil, &daemon, &owner, json!({})).await;
    let nonce_before = wallet_nonce(&anvil, &daemon, &wid).await;
    let big = pending(&daemon, &token, "9", "big").await;
    let small = pending(&daemon, &token, "0.5", "small").await;
    let refused = |what: &str, status: u16, body: &Value| {
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("OWNER_REJECTED")),
            "{what}: {body}"
        );
    };

    // The reject text with only its Request ID flipped to approve: the owner reads "Reject".
    let reject = approval_text(&daemon, &token, &big, "reject").await;
    assert!(statement(&reject).starts_with("Reject bursar transfer, nothing is sent: 9 ETH"));
    let flipped = reject.replace("Request ID: bursar:reject", "Request ID: bursar:approve");
    let (s, body) = post_signed(
        &daemon,
        &format!("/v1/transactions/{big}/approve"),
        &owner.headers(&flipped),
    )
    .await;
    refused("flipped reject text", s, &body);

    // The approve text of 9 ETH wearing the statement of the 0.5 ETH approval.
    let approve_big = approval_text(&daemon, &token, &big, "approve").await;
    let approve_small = approval_text(&daemon, &token, &small, "approve").await;
    let swapped = approve_big.replace(statement(&approve_big), statement(&approve_small));
    assert_ne!(swapped, approve_big);
    let (s, body) = post_signed(
        &daemon,
        &format!("/v1/transactions/{big}/approve"),
        &owner.headers(&swapped),
    )
    .await;
    refused("swapped approve statement", s, &body);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("statement"),
        "{body}"
    );

    // The same swap on a reject text, and a URI pointing elsewhere.
    let reject_small = approval_text(&daemon, &token, &small, "reject").await;
    let reject_big = approval_text(&daemon, &token, &big, "reject").await;
    let swapped = reject_small.replace(statement(&reject_small), statement(&reject_big));
    let (s, body) = post_signed(
        &daemon,
        &format!("/v1/transactions/{small}/reject"),
        &owner.headers(&swapped),
    )
    .await;
    refused("swapped reject statement", s, &body);
    let moved = approval_text(&daemon, &token, &big, "approve")
        .await
        .replace("URI: http://", "URI: http://evil.example/");
    let (s, body) = post_signed(
        &daemon,
        &format!("/v1/transactions/{big}/approve"),
        &owner.headers(&moved),
    )
    .await;
    refused("another URI", s, &body);

    // Approve and reject texts of one transfer never share a digest.
    let digest = |t: &str| {
        t.lines()
            .find_map(|l| l.strip_prefix("- urn:bursar:digest:sha256:"))
            .unwrap()
            .to_owned()
    };
    assert_ne!(digest(&approve_big), digest(&reject_big));

    // Nothing moved, both still wait; the genuine texts still work.
    assert_eq!(wallet_nonce(&anvil, &daemon, &wid).await, nonce_before);
    assert_eq!(status_of(&daemon, &token, &big).await, "PENDING_APPROVAL");
    let genuine = approval_text(&daemon, &token, &small, "approve").await;
    let (s, tx) = post_signed(
        &daemon,
        &format!("/v1/transactions/{small}/approve"),
        &owner.headers(&genuine),
    )
    .await;
    assert_eq!((s, tx["status"].as_str()), (200, Some("CONFIRMED")), "{tx}");
    let genuine = approval_text(&daemon, &token, &big, "reject").await;
    let (s, tx) = post_signed(
        &daemon,
        &format!("/v1/transactions/{big}/reject"),
        &owner.headers(&genuine),
    )
    .await;
    assert_eq!((s, tx["status"].as_str()), (200, Some("REJECTED")), "{tx}");
}

/// The Ed25519 (Solana) form is bound the same way: a kill-switch-on text wearing the
/// kill-switch-off statement is refused; the genuine text freezes the wallet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_ed25519_owner_texts_are_refused_too() {
    use ed25519_dalek::Signer;
    let daemon = Daemon::start(Opts::default()).await;
    let wallet = daemon.create_wallet("localsol").await;
    let wid = wallet["id"].as_str().unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let address = bs58::encode(key.verifying_key().as_bytes()).into_string();
    let (status, body) = daemon
        .master(
            Method::PUT,
            &format!("/v1/wallets/{wid}/owner"),
            Some(json!({ "address": address })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let text = |action: &'static str| {
        let daemon = &daemon;
        async move {
            let (status, m) = daemon
                .master(
                    Method::GET,
                    &format!("/v1/wallets/{wid}/owner/message?action={action}"),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{m}");
            m["message"].as_str().unwrap().to_owned()
        }
    };
    let headers = |text: &str| {
        use base64::Engine;
        let sig = key.sign(text.as_bytes());
        [
            (
                "x-owner-message".to_owned(),
                base64::engine::general_purpose::STANDARD.encode(text),
            ),
            (
                "x-owner-signature".to_owned(),
                bs58::encode(sig.to_bytes()).into_string(),
            ),
        ]
    };
    let on = text("kill-switch-on").await;
    assert!(on.contains("Solana account"), "{on}");
    let off = text("kill-switch-off").await;
    let swapped = on.replace(statement(&on), statement(&off));
    let (s, body) = post_signed(&daemon, "/v1/owner/kill-switch", &headers(&swapped)).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (401, Some("OWNER_REJECTED")),
        "{body}"
    );
    let (s, body) = post_signed(&daemon, "/v1/owner/kill-switch", &headers(&on)).await;
    assert_eq!(s, 200, "{body}");
    assert!(body["frozen"].is_object(), "{body}");
}

/// Finding 2: junk owner proofs and wrong master passwords locked out every owner and the
/// operator. Flood both (REST and MCP), then the right credentials still work at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_floods_never_lock_out_the_owner_or_the_operator() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(Opts {
        // The shipped limit, not the harness's relaxed one.
        master_failures_per_minute: 10,
        ..opts(&anvil)
    })
    .await;
    let owner = Owner::new();
    let (wid, token) = guarded(&anvil, &daemon, &owner, json!({})).await;
    let tx = pending(&daemon, &token, "0.5", "flood").await;

    // REST: junk owner headers, wrong master passwords, and a stranger's real signature over
    // a real message of this wallet (which counts for the wallet: it parsed and named it).
    let stranger = Owner::new();
    let real_text = approval_text(&daemon, &token, &tx, "approve").await;
    let junk: Vec<Vec<(String, String)>> = vec![
        vec![
            ("x-owner-message".into(), "eA==".into()),
            ("x-owner-signature".into(), "00".into()),
        ],
        stranger.headers(&real_text).to_vec(),
    ];
    let mut floods = Vec::new();
    for i in 0..60 {
        let headers = junk[i % junk.len()].clone();
        let url = daemon.url.clone();
        floods.push(tokio::spawn(async move {
            let mut req = http().post(format!("{url}/v1/owner/kill-switch"));
            for (k, v) in &headers {
                req = req.header(k, v);
            }
            req.send().await.unwrap().status().as_u16()
        }));
        let url = daemon.url.clone();
        floods.push(tokio::spawn(async move {
            http()
                .post(format!("{url}/v1/admin/kill-switch"))
                .header("x-master-password", format!("wrong-{i}"))
                .json(&json!({ "on": true }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    // MCP: junk approve_transaction / reject_transaction calls from the agent's session.
    let (status, session, _) = mcp_post(
        &daemon,
        &token,
        None,
        None,
        initialize(1, "2025-06-18").to_string().into(),
    )
    .await;
    assert_eq!(status, 200);
    let session = session.expect("an MCP session id");
    let v = Some("2025-06-18");
    let note = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    mcp_post(&daemon, &token, Some(&session), v, note.to_string().into()).await;
    for i in 0..40u64 {
        let tool = if i % 2 == 0 {
            "approve_transaction"
        } else {
            "reject_transaction"
        };
        let args = json!({ "id": tx, "owner_message": "eA==", "owner_signature": "00" });
        let body = request(10 + i, "tools/call", json!({ "name": tool, "arguments": args }));
        let (status, _, answer) = mcp_post(&daemon, &token, Some(&session), v, body.to_string().into()).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["result"]["isError"], true, "{answer}");
    }
    let statuses: Vec<u16> = futures_join(floods).await;
    assert!(statuses.iter().all(|s| [401, 429].contains(s)), "{statuses:?}");
    assert!(statuses.contains(&429), "the flood did reach the limits: {statuses:?}");

    // The owner's real kill switch: 200, within a second.
    let (status, m) = daemon
        .master(
            Method::GET,
            &format!("/v1/wallets/{wid}/owner/message?action=kill-switch-on"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{m}");
    let started = Instant::now();
    let (s, body) = post_signed(
        &daemon,
        "/v1/owner/kill-switch",
        &owner.headers(m["message"].as_str().unwrap()),
    )
    .await;
    assert_eq!(s, 200, "owner kill switch after the flood: {body}");
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    // The operator's real kill switch (all wallets): 200, within a second.
    let started = Instant::now();
    let (s, body) = daemon
        .master(
            Method::POST,
            "/v1/admin/kill-switch",
            Some(json!({ "on": true, "reason": "drill" })),
        )
        .await;
    assert_eq!(s, 200, "master kill switch after the flood: {body}");
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<u16>>) -> Vec<u16> {
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// The brakes never wait on a chain: with the RPC accepting and never answering, a transfer
/// is stuck inside an RPC call; the kill switch (all wallets) returns at once and the stuck
/// transfer is never signed afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kill_switch_does_not_wait_for_a_stuck_rpc_and_nothing_is_signed_after_it() {
    let anvil = Anvil::start().await;
    let rpc = RpcProxy::start(&anvil.url).await;
    let mut daemon = Daemon::init(Opts {
        anvil_url: Some(rpc.url.clone()),
        ..opts(&anvil)
    });
    // Long enough that the transfer is still inside its RPC call when the switch is pulled.
    daemon
        .env
        .push(("BURSAR_CHAINS_ANVIL_RPC_TIMEOUT_MS".into(), "20000".into()));
    daemon.spawn().await;
    let owner = Owner::new();
    let (wid, token) = guarded(&anvil, &daemon, &owner, json!({})).await;
    let (other, _) = daemon.wallet_and_token().await;
    // Warm up (chain id checked) while the node still answers.
    assert_eq!(
        daemon.session(&token, Method::GET, "/v1/wallet/balance", None).await.0,
        200
    );

    // The next nonce lookup — after the decision, inside the executor — never comes back.
    let nonce_lookups = rpc.seen("eth_getTransactionCount");
    rpc.stall("eth_getTransactionCount");
    let send = {
        let (url, token) = (daemon.url.clone(), token.clone());
        tokio::spawn(async move {
            let res = http()
                .post(format!("{url}/v1/transactions/send"))
                .bearer_auth(token)
                .json(&json!({ "to": RECIPIENT, "amount": "0.01", "idempotencyKey": "stuck" }))
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        })
    };
    // The transfer is decided (REQUESTED) and its executor is waiting on the node.
    let deadline = Instant::now() + Duration::from_secs(10);
    let id = loop {
        let (_, list) = daemon.session(&token, Method::GET, "/v1/transactions", None).await;
        if let Some(tx) = list.as_array().and_then(|l| l.first()) {
            assert_eq!(tx["status"], "REQUESTED", "{tx}");
            break tx["id"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "the transfer was never recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // ... and its executor has reached the node, where it now waits.
    while rpc.seen("eth_getTransactionCount") == nonce_lookups {
        assert!(
            Instant::now() < deadline,
            "the executor never asked the node for a nonce"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let started = Instant::now();
    let (s, reports) = daemon
        .master(
            Method::POST,
            "/v1/admin/kill-switch",
            Some(json!({ "on": true, "reason": "stuck rpc" })),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(s, 200, "{reports}");
    assert!(
        took < Duration::from_secs(2),
        "the kill switch waited on the chain: {took:?}"
    );
    let reports = reports.as_array().unwrap();
    assert_eq!(reports.len(), 2, "every wallet, the stuck one included: {reports:?}");
    assert!(reports.iter().all(|r| r["frozen"].is_object()), "{reports:?}");
    assert!(reports.iter().any(|r| r["walletId"] == other["id"]));
    let mine = reports.iter().find(|r| r["walletId"] == wid.as_str()).unwrap();
    assert_eq!(mine["transactionsCancelled"], 1, "{mine}");

    // The node answers again: the stuck executor comes back and must not sign.
    rpc.release("eth_getTransactionCount");
    let (status, body) = tokio::time::timeout(Duration::from_secs(30), send)
        .await
        .unwrap()
        .unwrap();
    assert!(
        body["status"] == "CANCELLED" || body["error"]["code"] == "WALLET_FROZEN",
        "{status} {body}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        wallet_nonce(&anvil, &daemon, &wid).await,
        json!("0x0"),
        "nothing signed"
    );
    let (_, audit) = daemon.master(Method::GET, "/v1/audit?kind=tx_signed", None).await;
    assert_eq!(audit.as_array().unwrap().len(), 0, "{audit}");
    let (_, audit) = daemon
        .master(
            Method::GET,
            &format!("/v1/audit?kind=tx_cancelled&walletId={wid}"),
            None,
        )
        .await;
    assert!(audit.to_string().contains(&id), "{audit}");
}

/// Revoking a session cancels what it queued; a DELAYED transfer then never executes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_session_cancels_its_queued_transfers() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let owner = Owner::new();
    let (wid, token) = guarded(&anvil, &daemon, &owner, json!({ "delay_seconds": 2 })).await;
    let before = balance_of(&anvil, RECIPIENT).await;
    let (s, delayed) = daemon
        .session(
            &token,
            Method::POST,
            "/v1/transactions/send",
            Some(json!({ "to": RECIPIENT, "amount": "0.15", "idempotencyKey": "later" })),
        )
        .await;
    assert_eq!((s, delayed["status"].as_str()), (200, Some("DELAYED")), "{delayed}");
    let approval = pending(&daemon, &token, "0.5", "needs-owner").await;
    // Another session of the same wallet: its transfer is not the revoked session's.
    let other = daemon.create_session(&wid, json!({})).await;
    let other_token = other["token"].as_str().unwrap();
    let (s, kept) = daemon
        .session(
            other_token,
            Method::POST,
            "/v1/transactions/send",
            Some(json!({ "to": RECIPIENT, "amount": "0.15", "idempotencyKey": "kept" })),
        )
        .await;
    assert_eq!((s, kept["status"].as_str()), (200, Some("DELAYED")), "{kept}");

    let (_, sessions) = daemon
        .master(Method::GET, &format!("/v1/sessions?walletId={wid}"), None)
        .await;
    let revoked = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] != other["id"])
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, body) = daemon
        .master(Method::DELETE, &format!("/v1/sessions/{revoked}"), None)
        .await;
    assert_eq!(s, 200, "{body}");
    for id in [delayed["id"].as_str().unwrap(), &approval] {
        assert_eq!(status_of(&daemon, other_token, id).await, "CANCELLED", "{id}");
    }
    // Past the due time the cancelled one stays cancelled; the other session's executes.
    wait_status(&daemon, other_token, kept["id"].as_str().unwrap(), "CONFIRMED").await;
    assert_eq!(
        status_of(&daemon, other_token, delayed["id"].as_str().unwrap()).await,
        "CANCELLED"
    );
    assert_eq!(
        balance_of(&anvil, RECIPIENT).await - before,
        eth(15) / alloy::primitives::U256::from(100)
    );
    let (_, audit) = daemon.master(Method::GET, "/v1/audit?kind=session_revoked", None).await;
    assert_eq!(audit[0]["detail"]["transactionsCancelled"], 2, "{audit}");
}

/// The operator and the owner stop queued transfers; each owner text does only its action.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_and_owner_cancel_queued_transfers() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let owner = Owner::new();
    let (_, token) = guarded(&anvil, &daemon, &owner, json!({ "daily_limit": "5" })).await;
    let send = |amount: &'static str, key: &'static str| {
        let (daemon, token) = (&daemon, token.clone());
        async move {
            let (s, tx) = daemon
                .session(
                    &token,
                    Method::POST,
                    "/v1/transactions/send",
                    Some(json!({ "to": RECIPIENT, "amount": amount, "idempotencyKey": key })),
                )
                .await;
            assert_eq!(s, 200, "{tx}");
            tx["id"].as_str().unwrap().to_owned()
        }
    };
    let spent = || async {
        let (_, check) = daemon
            .session(
                &token,
                Method::POST,
                "/v1/transactions/check",
                Some(json!({ "to": RECIPIENT, "amount": "0.01" })),
            )
            .await;
        check["spentToday"]["nativeBaseUnits"].clone()
    };
    let delayed = send("0.15", "d").await;
    let (s, tx) = daemon
        .master(Method::POST, &format!("/v1/transactions/{delayed}/cancel"), None)
        .await;
    assert_eq!((s, tx["status"].as_str()), (200, Some("CANCELLED")), "{tx}");
    let (s, _) = daemon
        .master(Method::POST, &format!("/v1/transactions/{delayed}/cancel"), None)
        .await;
    assert_eq!(s, 404, "a final transfer is no longer pending");

    let waiting = send("0.5", "w").await;
    let cancel = approval_text(&daemon, &token, &waiting, "cancel").await;
    assert!(statement(&cancel).starts_with("Cancel bursar transfer, nothing is sent: 0.5 ETH"));
    // The cancel text approves nothing, and an approve text cancels nothing.
    let (s, body) = post_signed(
        &daemon,
        &format!("/v1/transactions/{waiting}/approve"),
        &owner.headers(&cancel),
    )
    .await;
    assert_eq!(s, 401, "{body}");
    let approve = approval_text(&daemon, &token, &waiting, "approve").await;
    let (s, body) = post_signed(
        &daemon,
        &format!("/v1/transactions/{waiting}/cancel"),
        &owner.headers(&approve),
    )
    .await;
    assert_eq!(s, 401, "{body}");
    let cancel = approval_text(&daemon, &token, &waiting, "cancel").await;
    let (s, tx) = post_signed(
        &daemon,
        &format!("/v1/transactions/{waiting}/cancel"),
        &owner.headers(&cancel),
    )
    .await;
    assert_eq!((s, tx["status"].as_str()), (200, Some("CANCELLED")), "{tx}");
    // Every reservation went back.
    assert_eq!(spent().await, "0", "budget released");
    let (_, audit) = daemon.master(Method::GET, "/v1/audit?kind=tx_cancelled", None).await;
    let actors: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert!(actors.contains(&"master"), "{actors:?}");
    assert!(actors.iter().any(|a| a.starts_with("owner:")), "{actors:?}");
}

/// An approval that arrives after the approval window is refused (EXPIRED), even when the
/// worker has not run yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_approval_is_refused_and_the_transfer_expires() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(Opts {
        anvil_url: Some(anvil.url.clone()),
        // The worker would expire it on its own; a minute between passes keeps it out.
        extra_config: "\n[transfers]\nworker_interval_ms = 60000\n".into(),
        ..Opts::default()
    })
    .await;
    let owner = Owner::new();
    let (wid, token) = guarded(&anvil, &daemon, &owner, json!({ "approval_timeout_seconds": 2 })).await;
    let id = pending(&daemon, &token, "0.5", "late").await;
    let text = approval_text(&daemon, &token, &id, "approve").await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let (s, body) = post_signed(
        &daemon,
        &format!("/v1/transactions/{id}/approve"),
        &owner.headers(&text),
    )
    .await;
    assert_eq!((s, body["error"]["code"].as_str()), (409, Some("CONFLICT")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("EXPIRED"), "{body}");
    assert_eq!(status_of(&daemon, &token, &id).await, "EXPIRED");
    assert_eq!(wallet_nonce(&anvil, &daemon, &wid).await, json!("0x0"));
}

//! Owner control end to end: signed approvals bound to the exact transaction (real EIP-191
//! signatures from a key made in the test, real anvil), every message attack, the owner
//! lifecycle (GRACE → LOCKED), the kill switch and AutoStop.

use crate::harness::{Anvil, Daemon, Opts, eth};
use crate::transfers::{RECIPIENT, balance_of, opts};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Instant;

pub(crate) struct Owner {
    pub signer: PrivateKeySigner,
}

impl Owner {
    pub fn new() -> Self {
        Self {
            signer: PrivateKeySigner::random(),
        }
    }

    pub fn address(&self) -> String {
        self.signer.address().to_checksum(None)
    }

    /// EIP-191 `personal_sign` over the exact text, as `X-Owner-*` header values.
    pub fn headers(&self, message: &str) -> [(String, String); 2] {
        let sig = self.signer.sign_message_sync(message.as_bytes()).unwrap();
        [
            (
                "x-owner-message".into(),
                base64::engine::general_purpose::STANDARD.encode(message),
            ),
            ("x-owner-signature".into(), format!("0x{}", hex::encode(sig.as_bytes()))),
        ]
    }
}

pub(crate) async fn post_signed(daemon: &Daemon, path: &str, headers: &[(String, String)]) -> (u16, Value) {
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    daemon.request(Method::POST, path, &h, None).await
}

/// A funded wallet whose sends above 0.1 ETH need approval, with `owner` registered (GRACE).
async fn setup(anvil: &Anvil, daemon: &Daemon, owner: &Owner) -> (String, String) {
    guarded(anvil, daemon, owner, json!({})).await
}

/// A funded wallet (10 ETH) whose sends are INSTANT up to 0.1, DELAYed (an hour, or as
/// `extra_rules` say) up to 0.2 and need APPROVAL above, with `owner` registered (GRACE).
/// Returns (wallet id, token).
pub(crate) async fn guarded(anvil: &Anvil, daemon: &Daemon, owner: &Owner, extra_rules: Value) -> (String, String) {
    let (wallet, token) = daemon.wallet_and_token().await;
    let wid = wallet["id"].as_str().unwrap().to_owned();
    anvil.fund(wallet["address"].as_str().unwrap(), eth(10)).await;
    let mut rules = json!({ "instant_max": "0.1", "delay_max": "0.2", "delay_seconds": 3600 });
    rules
        .as_object_mut()
        .unwrap()
        .extend(extra_rules.as_object().unwrap().clone());
    let policy = json!({ "walletId": wid, "type": "SPENDING_LIMIT", "rules": rules });
    assert_eq!(daemon.master(Method::POST, "/v1/policies", Some(policy)).await.0, 201);
    let (status, body) = daemon
        .master(
            Method::PUT,
            &format!("/v1/wallets/{wid}/owner"),
            Some(json!({ "address": owner.address() })),
        )
        .await;
    assert_eq!(
        (status, body["owner"]["state"].as_str()),
        (200, Some("GRACE")),
        "{body}"
    );
    (wid, token)
}

pub(crate) async fn pending(daemon: &Daemon, token: &str, amount: &str, key: &str) -> String {
    let (status, tx) = daemon
        .session(
            token,
            Method::POST,
            "/v1/transactions/send",
            Some(json!({ "to": RECIPIENT, "amount": amount, "idempotencyKey": key })),
        )
        .await;
    assert_eq!((status, tx["status"].as_str()), (200, Some("PENDING_APPROVAL")), "{tx}");
    tx["id"].as_str().unwrap().to_owned()
}

async fn message(daemon: &Daemon, token: &str, tx: &str, action: &str) -> Value {
    let (status, m) = daemon
        .session(
            token,
            Method::GET,
            &format!("/v1/transactions/{tx}/approval-message?action={action}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{m}");
    m
}

async fn spent_today(daemon: &Daemon, token: &str) -> Value {
    let body = json!({ "to": RECIPIENT, "amountBaseUnits": "1" });
    let (_, c) = daemon
        .session(token, Method::POST, "/v1/transactions/check", Some(body))
        .await;
    c["spentToday"]["nativeBaseUnits"].clone()
}

async fn wallet(daemon: &Daemon, wid: &str) -> Value {
    daemon.master(Method::GET, &format!("/v1/wallets/{wid}"), None).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_round_trip_confirms_on_chain_and_reject_sends_nothing() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let owner = Owner::new();
    let (wid, token) = setup(&anvil, &daemon, &owner).await;
    let before = balance_of(&anvil, RECIPIENT).await;

    let id = pending(&daemon, &token, "0.5", "approve-me").await;
    let m = message(&daemon, &token, &id, "approve").await;
    let text = m["message"].as_str().unwrap();
    // The message binds what the owner sees: amount, recipient, chain, transaction, digest.
    for needle in [
        "wants you to sign in with your Ethereum account:",
        &owner.address(),
        "Chain ID: 31337",
        "Request ID: bursar:approve",
        &format!("urn:bursar:tx:{id}"),
        &format!("urn:bursar:digest:sha256:{}", m["digest"].as_str().unwrap()),
        "send 0.5 ETH to 0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from\n{text}");
    }
    assert_eq!(m["subject"]["amountBaseUnits"], "500000000000000000");
    assert_eq!(m["submitTo"], format!("/v1/transactions/{id}/approve"));

    let started = Instant::now();
    let (status, tx) = post_signed(&daemon, m["submitTo"].as_str().unwrap(), &owner.headers(text)).await;
    let took = started.elapsed();
    assert_eq!((status, tx["status"].as_str()), (200, Some("CONFIRMED")), "{tx}");
    eprintln!("approve POST → CONFIRMED on anvil: {took:?}");
    assert_eq!(
        balance_of(&anvil, RECIPIENT).await - before,
        eth(1) / alloy::primitives::U256::from(2)
    );
    assert_eq!(
        wallet(&daemon, &wid).await["owner"]["state"],
        "LOCKED",
        "first signature locks"
    );

    // Reject: REJECTED, nothing on chain, the reservation released.
    let id = pending(&daemon, &token, "0.7", "reject-me").await;
    let m = message(&daemon, &token, &id, "reject").await;
    let address = wallet(&daemon, &wid).await["address"].clone();
    let nonce_before = anvil.rpc("eth_getTransactionCount", json!([address, "latest"])).await;
    let held = spent_today(&daemon, &token).await;
    let (status, tx) = post_signed(
        &daemon,
        &format!("/v1/transactions/{id}/reject"),
        &owner.headers(m["message"].as_str().unwrap()),
    )
    .await;
    assert_eq!((status, tx["status"].as_str()), (200, Some("REJECTED")), "{tx}");
    assert_eq!(
        balance_of(&anvil, RECIPIENT).await - before,
        eth(1) / alloy::primitives::U256::from(2)
    );
    let after = anvil.rpc("eth_getTransactionCount", json!([address, "latest"])).await;
    assert_eq!(nonce_before, after, "the wallet signed nothing");
    // The rejected transfer's reservation went back: only the confirmed one counts.
    let units = |v: &Value| alloy::primitives::U256::from_str_radix(v.as_str().unwrap(), 10).unwrap();
    let released = units(&held) - units(&spent_today(&daemon, &token).await);
    assert_eq!(
        released,
        units(&tx["baseUnits"]) + units(&tx["maxFeeBaseUnits"]),
        "the reservation (value + most fee) was released"
    );
    let (_, audit) = daemon.master(Method::GET, "/v1/audit?kind=tx_rejected", None).await;
    assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_attack_is_rejected_and_audited() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let owner = Owner::new();
    let (wid, token) = setup(&anvil, &daemon, &owner).await;
    let a = pending(&daemon, &token, "0.5", "a").await;
    let b = pending(&daemon, &token, "0.6", "b").await;
    let approve = |id: &str| format!("/v1/transactions/{id}/approve");

    let mut attempts = 0;
    let mut refused = |what: &str, status: u16, body: &Value| {
        attempts += 1;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["error"]["code"], "OWNER_REJECTED", "{what}: {body}");
    };

    // A message for A, submitted for B.
    let ma = message(&daemon, &token, &a, "approve").await;
    let text_a = ma["message"].as_str().unwrap().to_owned();
    let (s, body) = post_signed(&daemon, &approve(&b), &owner.headers(&text_a)).await;
    refused("another transaction", s, &body);
    // An approve message used to reject, and the reverse.
    let (s, body) = post_signed(
        &daemon,
        &format!("/v1/transactions/{a}/reject"),
        &owner.headers(&text_a),
    )
    .await;
    refused("another action", s, &body);
    // Signed by someone else.
    let (s, body) = post_signed(&daemon, &approve(&a), &Owner::new().headers(&text_a)).await;
    refused("non-owner signer", s, &body);
    // Edited after signing, or re-signed after editing: domain, chain, digest, amount text.
    for (what, from, to) in [
        (
            "another domain",
            format!("127.0.0.1:{}", daemon.port),
            "evil.example:443".to_owned(),
        ),
        ("another chain", "Chain ID: 31337".into(), "Chain ID: 1".into()),
        ("another digest", "digest:sha256:".into(), "digest:sha256:00".into()),
    ] {
        let fresh = message(&daemon, &token, &a, "approve").await;
        let edited = fresh["message"].as_str().unwrap().replace(&from, &to);
        assert_ne!(edited, fresh["message"].as_str().unwrap(), "{what}: nothing replaced");
        let (s, body) = post_signed(&daemon, &approve(&a), &owner.headers(&edited)).await;
        refused(what, s, &body);
        // Tampering with a signed message breaks the signature as well.
        let mut headers = owner.headers(fresh["message"].as_str().unwrap());
        headers[0].1 = base64::engine::general_purpose::STANDARD.encode(&edited);
        let (s, body) = post_signed(&daemon, &approve(&a), &headers).await;
        refused(what, s, &body);
    }
    // A nonce the daemon never issued, and an expired message (built with the crate's own
    // renderer so that only the field under test is wrong).
    let fresh = message(&daemon, &token, &a, "approve").await;
    let text = fresh["message"].as_str().unwrap();
    let claims = bursar::owner::parse(bursar::domain::ChainKind::Evm, text).unwrap();
    let mut forged = claims.clone();
    forged.nonce = "0000000000000000deadbeefdeadbeef".into();
    let forged = bursar::owner::render(bursar::domain::ChainKind::Evm, &forged).unwrap();
    let (s, body) = post_signed(&daemon, &approve(&a), &owner.headers(&forged)).await;
    refused("unknown nonce", s, &body);
    let (status, n) = daemon.request(Method::GET, "/v1/nonce", &[], None).await;
    assert_eq!(status, 200, "{n}");
    let mut expired = claims.clone();
    expired.nonce = n["nonce"].as_str().unwrap().into();
    expired.issued_at -= 600;
    expired.expires_at = expired.issued_at + 60;
    let expired = bursar::owner::render(bursar::domain::ChainKind::Evm, &expired).unwrap();
    let (s, body) = post_signed(&daemon, &approve(&a), &owner.headers(&expired)).await;
    refused("expired", s, &body);
    assert!(body["error"]["message"].as_str().unwrap().contains("expired"), "{body}");
    // Malformed headers.
    let (s, body) = post_signed(
        &daemon,
        &approve(&a),
        &[
            ("x-owner-message".into(), "%%%".into()),
            ("x-owner-signature".into(), "0x00".into()),
        ],
    )
    .await;
    refused("not base64", s, &body);
    // The agent's own credentials cannot approve: no owner headers at all.
    let (s, body) = daemon.session(&token, Method::POST, &approve(&a), None).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (401, Some("UNAUTHENTICATED")),
        "{body}"
    );
    let (s, _) = daemon.master(Method::POST, &approve(&a), None).await;
    assert_eq!(s, 401);

    // Nothing above moved A or B; the genuine signature still works once, and only once.
    let headers = owner.headers(&text_a);
    let (s, tx) = post_signed(&daemon, &approve(&a), &headers).await;
    assert_eq!((s, tx["status"].as_str()), (200, Some("CONFIRMED")), "{tx}");
    let (s, body) = post_signed(&daemon, &approve(&a), &headers).await;
    refused("replay", s, &body);
    let (_, tx_b) = daemon
        .session(&token, Method::GET, &format!("/v1/transactions/{b}"), None)
        .await;
    assert_eq!(tx_b["status"], "PENDING_APPROVAL");

    let (_, audit) = daemon
        .master(Method::GET, "/v1/audit?kind=owner_auth_failed", None)
        .await;
    // Every refusal that named this wallet (all but the malformed headers) is audited, up to
    // the shipped per-wallet limit of 10 a minute: a flood cannot grow the log without bound.
    assert_eq!(
        audit.as_array().unwrap().len(),
        (attempts - 1).min(10),
        "{attempts} refusals, audit: {audit}"
    );
    assert!(
        wallet(&daemon, &wid).await["owner"]["state"] == "LOCKED",
        "the genuine approval locked the owner"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_lifecycle_grace_then_locked() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let owner = Owner::new();
    let (wid, token) = setup(&anvil, &daemon, &owner).await;
    let owner_path = format!("/v1/wallets/{wid}/owner");

    // GRACE: the operator may still replace or remove the owner.
    let other = Owner::new();
    let (s, _) = daemon
        .master(Method::PUT, &owner_path, Some(json!({ "address": other.address() })))
        .await;
    assert_eq!(s, 200);
    let (s, w) = daemon.master(Method::DELETE, &owner_path, None).await;
    assert_eq!((s, w["owner"].is_null()), (200, true), "{w}");
    let (s, _) = daemon
        .master(Method::PUT, &owner_path, Some(json!({ "address": owner.address() })))
        .await;
    assert_eq!(s, 200);

    // Connect: the owner proves control → LOCKED.
    let (s, m) = daemon
        .master(Method::GET, &format!("{owner_path}/message?action=connect"), None)
        .await;
    assert_eq!((s, m["submitTo"].as_str()), (200, Some("/v1/owner/connect")), "{m}");
    let (s, w) = post_signed(
        &daemon,
        "/v1/owner/connect",
        &other.headers(m["message"].as_str().unwrap()),
    )
    .await;
    assert_eq!(s, 401, "a stranger cannot connect: {w}");
    let (s, m) = daemon
        .master(Method::GET, &format!("{owner_path}/message?action=connect"), None)
        .await;
    assert_eq!(s, 200);
    let (s, w) = post_signed(
        &daemon,
        "/v1/owner/connect",
        &owner.headers(m["message"].as_str().unwrap()),
    )
    .await;
    assert_eq!((s, w["owner"]["state"].as_str()), (200, Some("LOCKED")), "{w}");

    // LOCKED: master alone can neither replace nor remove it, and the agent cannot either.
    let (s, body) = daemon
        .master(Method::PUT, &owner_path, Some(json!({ "address": other.address() })))
        .await;
    assert_eq!(s, 403, "{body}");
    let (s, _) = daemon.master(Method::DELETE, &owner_path, None).await;
    assert_eq!(s, 403);
    let (s, _) = daemon.session(&token, Method::POST, "/v1/owner/disconnect", None).await;
    assert_eq!(s, 401);

    // A pending approval outlives a disconnect and waits for an owner.
    let id = pending(&daemon, &token, "0.5", "waits").await;
    let (_, m) = daemon
        .master(Method::GET, &format!("{owner_path}/message?action=disconnect"), None)
        .await;
    let (s, w) = post_signed(
        &daemon,
        "/v1/owner/disconnect",
        &owner.headers(m["message"].as_str().unwrap()),
    )
    .await;
    assert_eq!((s, w["owner"].is_null()), (200, true), "{w}");
    let (_, tx) = daemon
        .session(&token, Method::GET, &format!("/v1/transactions/{id}"), None)
        .await;
    assert_eq!(tx["status"], "PENDING_APPROVAL");
    // With no owner, a new APPROVAL-tier send is denied (never silently downgraded).
    let (s, body) = daemon
        .session(
            &token,
            Method::POST,
            "/v1/transactions/send",
            Some(json!({ "to": RECIPIENT, "amount": "0.5", "idempotencyKey": "no-owner" })),
        )
        .await;
    assert_eq!(s, 403, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_switch_revokes_cancels_freezes_and_lifts_with_the_owner() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let owner = Owner::new();
    let (wid, token) = setup(&anvil, &daemon, &owner).await;
    let delayed = {
        let (s, tx) = daemon
            .session(
                &token,
                Method::POST,
                "/v1/transactions/send",
                Some(json!({ "to": RECIPIENT, "amount": "0.15", "idempotencyKey": "d" })),
            )
            .await;
        assert_eq!((s, tx["status"].as_str()), (200, Some("DELAYED")), "{tx}");
        tx["id"].as_str().unwrap().to_owned()
    };
    let approval = pending(&daemon, &token, "0.5", "p").await;
    // Lock the owner first, so lifting needs its signature.
    let (_, m) = daemon
        .master(
            Method::GET,
            &format!("/v1/wallets/{wid}/owner/message?action=connect"),
            None,
        )
        .await;
    assert_eq!(
        post_signed(
            &daemon,
            "/v1/owner/connect",
            &owner.headers(m["message"].as_str().unwrap())
        )
        .await
        .0,
        200
    );

    let (s, reports) = daemon
        .master(
            Method::POST,
            "/v1/admin/kill-switch",
            Some(json!({ "on": true, "walletId": wid, "reason": "test drill" })),
        )
        .await;
    assert_eq!(s, 200, "{reports}");
    assert_eq!(reports[0]["sessionsRevoked"], 1);
    assert_eq!(reports[0]["transactionsCancelled"], 2);
    // The agent's session is dead at once.
    let (s, body) = daemon.session(&token, Method::GET, "/v1/wallet/address", None).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (401, Some("SESSION_REVOKED")),
        "{body}"
    );
    // No new session, and nothing was signed.
    let (s, body) = daemon
        .master(Method::POST, "/v1/sessions", Some(json!({ "walletId": wid })))
        .await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (423, Some("WALLET_FROZEN")),
        "{body}"
    );
    let (_, audit) = daemon.master(Method::GET, "/v1/audit?kind=tx_cancelled", None).await;
    let cancelled: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["detail"]["tx"].as_str())
        .collect();
    assert!(
        cancelled.contains(&delayed.as_str()) && cancelled.contains(&approval.as_str()),
        "{audit}"
    );
    let (_, status) = daemon.master(Method::GET, "/v1/admin/kill-switch", None).await;
    assert_eq!(status[0]["frozen"]["by"], "master", "{status}");

    // Lifting: master alone is not enough for a LOCKED owner; master + owner is.
    let (s, body) = daemon
        .master(
            Method::POST,
            "/v1/admin/kill-switch",
            Some(json!({ "on": false, "walletId": wid })),
        )
        .await;
    assert_eq!(s, 403, "{body}");
    let (_, m) = daemon
        .master(
            Method::GET,
            &format!("/v1/wallets/{wid}/owner/message?action=kill-switch-off"),
            None,
        )
        .await;
    let mut headers: Vec<(String, String)> = owner.headers(m["message"].as_str().unwrap()).to_vec();
    // The owner alone cannot lift it either.
    let (s, _) = post_signed(&daemon, "/v1/owner/kill-switch", &headers).await;
    assert_eq!(s, 401, "a kill-switch-off message is not a kill-switch-on message");
    headers.push(("x-master-password".into(), daemon.password.clone()));
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (s, body) = daemon
        .request(
            Method::POST,
            "/v1/admin/kill-switch",
            &h,
            Some(json!({ "on": false, "walletId": wid })),
        )
        .await;
    assert_eq!((s, body[0]["frozen"].is_null()), (200, true), "{body}");
    let session = daemon.create_session(&wid, json!({})).await;
    let (s, _) = daemon
        .session(
            session["token"].as_str().unwrap(),
            Method::GET,
            "/v1/wallet/address",
            None,
        )
        .await;
    assert_eq!(s, 200);

    // The owner can pull it alone, with its own signature.
    let (_, m) = daemon
        .master(
            Method::GET,
            &format!("/v1/wallets/{wid}/owner/message?action=kill-switch-on"),
            None,
        )
        .await;
    let (s, report) = post_signed(
        &daemon,
        "/v1/owner/kill-switch",
        &owner.headers(m["message"].as_str().unwrap()),
    )
    .await;
    assert_eq!((s, report["frozen"]["by"].as_str()), (200, Some("owner")), "{report}");
    let (s, _) = daemon
        .session(
            session["token"].as_str().unwrap(),
            Method::GET,
            "/v1/wallet/address",
            None,
        )
        .await;
    assert_eq!(s, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autostop_suspends_a_wallet_after_consecutive_denials_and_bursts() {
    let anvil = Anvil::start().await;
    let mut o: Opts = opts(&anvil);
    o.extra_config += "\n[autostop]\nconsecutive_failures = 3\nburst_requests = 5\nburst_window_seconds = 60\n";
    let daemon = Daemon::start(o).await;
    let (wallet, token) = daemon.wallet_and_token().await;
    anvil.fund(wallet["address"].as_str().unwrap(), eth(10)).await;
    // No policy at all: every send is denied (default deny, no owner).
    for i in 0..3 {
        let (s, body) = daemon
            .session(
                &token,
                Method::POST,
                "/v1/transactions/send",
                Some(json!({ "to": RECIPIENT, "amount": "0.01", "idempotencyKey": format!("d{i}") })),
            )
            .await;
        assert_eq!(s, 403, "{body}");
    }
    let (s, body) = daemon.session(&token, Method::GET, "/v1/wallet/address", None).await;
    assert_eq!(s, 401, "AutoStop revoked the session: {body}");
    let (_, status) = daemon.master(Method::GET, "/v1/admin/kill-switch", None).await;
    assert_eq!(status[0]["frozen"]["by"], "autostop", "{status}");
    assert!(status[0]["frozen"]["reason"].as_str().unwrap().contains("consecutive"));

    // Bursts: the sixth request within the window trips it (checks are not sends).
    let (wallet, token) = daemon.wallet_and_token().await;
    let wid = wallet["id"].as_str().unwrap();
    let policy = json!({ "walletId": wid, "type": "SPENDING_LIMIT", "rules": { "instant_max": "1" } });
    assert_eq!(daemon.master(Method::POST, "/v1/policies", Some(policy)).await.0, 201);
    anvil.fund(wallet["address"].as_str().unwrap(), eth(10)).await;
    let mut last = (0, Value::Null);
    for i in 0..6 {
        last = daemon
            .session(
                &token,
                Method::POST,
                "/v1/transactions/send",
                Some(json!({ "to": RECIPIENT, "amount": "0.001", "idempotencyKey": format!("b{i}") })),
            )
            .await;
    }
    assert_eq!(
        (last.0, last.1["error"]["code"].as_str()),
        (423, Some("WALLET_FROZEN")),
        "{}",
        last.1
    );
    let (_, audit) = daemon.master(Method::GET, "/v1/audit?kind=kill_switch_on", None).await;
    assert_eq!(audit.as_array().unwrap().len(), 2, "{audit}");
}

/// The shipped AutoStop defaults (10 in a row): DENIED and FAILED both count, a success
/// resets the run, the tenth in a row freezes the wallet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autostop_defaults_count_denied_and_failed_and_reset_on_success() {
    let anvil = Anvil::start().await;
    let mut o: Opts = opts(&anvil);
    o.extra_config += "\n[autostop]\n"; // the shipped defaults
    let daemon = Daemon::start(o).await;
    let (wallet, token) = daemon.wallet_and_token().await;
    let wid = wallet["id"].as_str().unwrap();
    let policy = json!({ "walletId": wid, "type": "SPENDING_LIMIT", "rules": { "instant_max": "0.1" } });
    assert_eq!(daemon.master(Method::POST, "/v1/policies", Some(policy)).await.0, 201);
    // 0.05 ETH: enough for a small send, not for 0.09 (the chain refuses: FAILED).
    anvil
        .fund(
            wallet["address"].as_str().unwrap(),
            eth(1) / alloy::primitives::U256::from(20),
        )
        .await;
    let mut n = 0;
    let mut send = |amount: &'static str| {
        n += 1;
        let key = format!("a{n}");
        let (daemon, token) = (&daemon, token.clone());
        async move {
            daemon
                .session(
                    &token,
                    Method::POST,
                    "/v1/transactions/send",
                    Some(json!({ "to": RECIPIENT, "amount": amount, "idempotencyKey": key })),
                )
                .await
        }
    };
    let frozen = || async {
        let (_, status) = daemon.master(Method::GET, "/v1/admin/kill-switch", None).await;
        !status.as_array().unwrap().is_empty()
    };
    // Nine in a row: five DENIED (approval needed, no owner), four FAILED (unfunded).
    for _ in 0..5 {
        assert_eq!(send("0.5").await.0, 403);
    }
    for _ in 0..4 {
        let (s, tx) = send("0.09").await;
        assert_eq!((s, tx["status"].as_str()), (200, Some("FAILED")), "{tx}");
    }
    assert!(!frozen().await, "nine is not ten");
    // A success resets the run.
    let (s, tx) = send("0.001").await;
    assert_eq!((s, tx["status"].as_str()), (200, Some("CONFIRMED")), "{tx}");
    for _ in 0..9 {
        assert_eq!(send("0.5").await.0, 403);
    }
    assert!(!frozen().await, "the success reset the count");
    let (s, tx) = send("0.09").await;
    assert_eq!((s, tx["status"].as_str()), (200, Some("FAILED")), "{tx}");
    assert!(frozen().await, "ten in a row freeze the wallet");
    let (_, status) = daemon.master(Method::GET, "/v1/admin/kill-switch", None).await;
    assert_eq!(status[0]["frozen"]["by"], "autostop", "{status}");
    assert!(
        status[0]["frozen"]["reason"]
            .as_str()
            .unwrap()
            .contains("10 consecutive"),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_owner_connect_approve_and_kill_switch_with_a_key_file() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let owner = Owner::new();
    let (wid, token) = setup(&anvil, &daemon, &owner).await;
    let key_file = daemon.dir.path().join("owner.key");
    crate::harness::write_private(&key_file, &hex::encode(owner.signer.to_bytes()));
    let key = key_file.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = daemon.cli(args).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (
            out.status.code(),
            stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (code, out, err) = run(&["owner", "connect", &wid, "--key-file", key, "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["owner"]["state"], "LOCKED");

    // An external signer: the message alone on stdout, then the signature handed back.
    let id = pending(&daemon, &token, "0.5", "cli").await;
    let (code, message, err) = run(&["owner", "approve", &id, "--print-message"]);
    assert_eq!(code, Some(0), "{err}");
    let message = message.trim_end_matches('\n');
    assert!(message.contains(&format!("urn:bursar:tx:{id}")), "{message}");
    let msg_file = daemon.dir.path().join("message.txt");
    std::fs::write(&msg_file, message).unwrap();
    let sig = owner.signer.sign_message_sync(message.as_bytes()).unwrap();
    let sig = format!("0x{}", hex::encode(sig.as_bytes()));
    let (code, out, err) = run(&[
        "owner",
        "approve",
        &id,
        "--message-file",
        msg_file.to_str().unwrap(),
        "--signature",
        &sig,
        "--json",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["status"],
        "CONFIRMED",
        "{out}"
    );

    // Reject with the key file; a key file readable by others is refused.
    let id = pending(&daemon, &token, "0.6", "cli-2").await;
    let (code, out, err) = run(&["owner", "reject", &id, "--key-file", key, "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["status"], "REJECTED");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, _, err) = run(&["owner", "status", &wid]);
    assert_eq!(code, Some(0), "{err}");
    let id = pending(&daemon, &token, "0.6", "cli-3").await;
    let (code, _, err) = run(&["owner", "approve", &id, "--key-file", key]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The owner cancels it with the key file; the operator cancels another with the master
    // password (no session token in this CLI's environment).
    let (code, out, err) = run(&["owner", "cancel", &id, "--key-file", key, "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["status"], "CANCELLED");
    let id = pending(&daemon, &token, "0.6", "cli-4").await;
    let (code, out, err) = run(&["tx", "cancel", &id, "--operator", "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["status"], "CANCELLED");

    // Kill switch: on, status, off refused without the LOCKED owner, off with it.
    let (code, out, err) = run(&["kill-switch", "on", "--wallet", &wid, "--reason", "drill"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("FROZEN"), "{out}");
    let (_, out, _) = run(&["kill-switch", "status"]);
    assert!(out.contains("FROZEN by master") && out.contains("drill"), "{out}");
    let (code, _, err) = run(&["kill-switch", "off", "--wallet", &wid]);
    assert_eq!(code, Some(3), "{err}");
    let (code, out, err) = run(&["kill-switch", "off", "--wallet", &wid, "--key-file", key]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (_, out, _) = run(&["kill-switch", "status"]);
    assert!(out.contains("no wallet is frozen"), "{out}");
}

/// The official Python MCP SDK relays an owner's approval over `/mcp`; the agent's own forged
/// signature is an `isError` result and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_mcp_client_relays_an_owner_approval_and_cannot_forge_one() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let owner = Owner::new();
    let (_, token) = setup(&anvil, &daemon, &owner).await;
    let id = pending(&daemon, &token, "0.5", "mcp-approval").await;
    let m = message(&daemon, &token, &id, "approve").await;
    let text = m["message"].as_str().unwrap();
    let signature = owner.headers(text)[1].1.clone();
    let token_file = daemon.dir.path().join("agent.token");
    crate::harness::write_private(&token_file, &token);
    let out = crate::mcp::run_client_with(
        "approve",
        &daemon,
        &token_file,
        &[
            ("APPROVE_TX", id.as_str()),
            ("OWNER_MESSAGE", text),
            ("OWNER_SIGNATURE", signature.as_str()),
        ],
    );
    let page = format!("{}/approve/{id}", daemon.url);
    assert_eq!(
        out["pending"],
        json!([{ "id": id, "page": page, "signable": true }]),
        "{out}"
    );
    assert_eq!(out["forged"]["isError"], true, "{out}");
    assert!(out["forged"]["text"].as_str().unwrap().contains("owner"), "{out}");
    assert_eq!(out["approved"]["isError"], false, "{out}");
    assert_eq!(out["approved"]["structured"]["status"], "CONFIRMED", "{out}");
    assert!(
        !out.to_string().contains(&token),
        "the token never appears in a tool result"
    );
}

/// Owner nonces come from one pool per kind of caller. An agent that floods its pool (1,000
/// outstanding approval messages) and an anonymous caller that floods `GET /v1/nonce` get 429,
/// while the operator can still get the owner's kill-switch message — and the owner can
/// still use it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flooding_the_agent_or_public_nonce_pool_cannot_starve_the_owner() {
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let owner = Owner::new();
    let (wid, token) = setup(&anvil, &daemon, &owner).await;
    let id = pending(&daemon, &token, "0.5", "flood").await;
    let path = format!("/v1/transactions/{id}/approval-message");
    let flood = |auth: Option<String>, path: String| {
        let url = daemon.url.clone();
        async move {
            for n in 0.. {
                let mut req = crate::harness::http().get(format!("{url}{path}"));
                if let Some(token) = &auth {
                    req = req.bearer_auth(token);
                }
                let status = req.send().await.unwrap().status().as_u16();
                if status != 200 {
                    return (n, status);
                }
            }
            unreachable!()
        }
    };
    let (agent, public) = tokio::join!(flood(Some(token.clone()), path), flood(None, "/v1/nonce".into()));
    assert_eq!(agent, (1000, 429), "the agent's pool");
    assert_eq!(public, (1000, 429), "the public pool");

    let (status, m) = daemon
        .master(
            Method::GET,
            &format!("/v1/wallets/{wid}/owner/message?action=kill-switch-on"),
            None,
        )
        .await;
    assert_eq!(status, 200, "the operator's pool is untouched: {m}");
    let (status, body) = post_signed(
        &daemon,
        "/v1/owner/kill-switch",
        &owner.headers(m["message"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(wallet(&daemon, &wid).await["frozen"].is_object());
}

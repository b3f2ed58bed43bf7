//! The owner's approval page in a real browser: Debian's Chromium driven by playwright-core
//! (`tests/browser/approve.mjs`) opens `GET /approve/{id}`, checks what it shows, and clicks
//! approve or reject (the page then fetches the message to sign with a same-origin POST). The browser's wallet is an injected EIP-1193 provider whose
//! `personal_sign` is answered by a loopback signer run here (real EIP-191 signatures from
//! alloy keys); the daemon verifies them for real and the transfer lands on a real anvil.

use crate::harness::{Anvil, Daemon, eth, repo_root};
use crate::owner::{Owner, pending};
use crate::transfers::{RECIPIENT, balance_of, opts, wait_status};
use alloy::primitives::U256;
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use reqwest::Method;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn chromium() -> PathBuf {
    let path =
        std::env::var_os("BURSAR_TEST_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup (installs Debian's chromium and playwright-core)",
        path.display()
    );
    path
}

fn playwright_modules() -> PathBuf {
    let dir = repo_root().join(".tools/playwright/node_modules");
    assert!(
        dir.join("playwright-core/package.json").exists(),
        "playwright-core is missing from .tools/playwright: run scripts/setup"
    );
    dir
}

/// What the wallet signed: (account, message text).
type Signed = Arc<Mutex<Vec<(String, String)>>>;

/// A loopback EIP-191 signer for the browser's wallet: `POST /sign {data, account}` where
/// `data` is the hex of the UTF-8 message, as `personal_sign` receives it.
async fn start_signer(keys: Vec<PrivateKeySigner>, signed: Signed) -> String {
    type S = (Arc<Vec<PrivateKeySigner>>, Signed);
    async fn sign(
        State((keys, signed)): State<S>,
        Json(req): Json<Value>,
    ) -> Result<Json<Value>, (StatusCode, String)> {
        let bad = |m: &str| (StatusCode::BAD_REQUEST, m.to_owned());
        let account = req["account"].as_str().ok_or_else(|| bad("no account"))?;
        let data = req["data"].as_str().ok_or_else(|| bad("no data"))?;
        let bytes = hex::decode(data.trim_start_matches("0x")).map_err(|_| bad("data is not hex"))?;
        let key = keys
            .iter()
            .find(|k| k.address().to_string().eq_ignore_ascii_case(account))
            .ok_or((StatusCode::FORBIDDEN, format!("no key for {account}")))?;
        let sig = key.sign_message_sync(&bytes).map_err(|e| bad(&e.to_string()))?;
        let text = String::from_utf8(bytes).map_err(|_| bad("message is not UTF-8"))?;
        signed.lock().unwrap().push((key.address().to_checksum(None), text));
        Ok(Json(
            json!({ "signature": format!("0x{}", hex::encode(sig.as_bytes())) }),
        ))
    }
    let app = axum::Router::new()
        .route("/sign", axum::routing::post(sign))
        .with_state((Arc::new(keys), signed));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/sign", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A loopback Ed25519 signer for the browser's Phantom-style wallet: `POST /sign {data,
/// account}` where `data` is the hex of the bytes `signMessage` received; answers the
/// signature in hex.
async fn start_ed25519_signer(key: ed25519_dalek::SigningKey, signed: Signed) -> String {
    use ed25519_dalek::Signer;
    type S = (Arc<ed25519_dalek::SigningKey>, Signed);
    async fn sign(State((key, signed)): State<S>, Json(req): Json<Value>) -> Result<Json<Value>, (StatusCode, String)> {
        let bad = |m: &str| (StatusCode::BAD_REQUEST, m.to_owned());
        let account = req["account"].as_str().ok_or_else(|| bad("no account"))?;
        if account != bs58::encode(key.verifying_key().as_bytes()).into_string() {
            return Err((StatusCode::FORBIDDEN, format!("no key for {account}")));
        }
        let bytes =
            hex::decode(req["data"].as_str().ok_or_else(|| bad("no data"))?).map_err(|_| bad("data is not hex"))?;
        let sig = key.sign(&bytes);
        let text = String::from_utf8(bytes).map_err(|_| bad("message is not UTF-8"))?;
        signed.lock().unwrap().push((account.to_owned(), text));
        Ok(Json(json!({ "signature": hex::encode(sig.to_bytes()) })))
    }
    let app = axum::Router::new()
        .route("/sign", axum::routing::post(sign))
        .with_state((Arc::new(key), signed));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/sign", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Runs `approve.mjs` on `spec` without blocking the runtime (the signer answers meanwhile);
/// returns its JSON summary.
async fn run_browser(spec: &Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let (stdout, stderr) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new("node")
        .arg(repo_root().join("tests/browser/approve.mjs"))
        .arg(&spec_path)
        .env("NODE_PATH", playwright_modules())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("node is required for the browser test (node 20 from PATH)");
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "approve.mjs did not finish in time:\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (out, err) = (
        std::fs::read_to_string(&stdout).unwrap(),
        std::fs::read_to_string(&stderr).unwrap(),
    );
    eprint!("{err}");
    assert!(status.success(), "approve.mjs failed ({status}):\n{err}\n{out}");
    serde_json::from_str(out.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The digest of the `action` message for `tx` (it covers the action: approve and reject
/// digests of one transfer differ).
async fn digest(daemon: &Daemon, token: &str, tx: &str, action: &str) -> String {
    let (status, m) = daemon
        .session(
            token,
            Method::GET,
            &format!("/v1/transactions/{tx}/approval-message?action={action}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{m}");
    m["digest"].as_str().unwrap().to_owned()
}

/// What every scenario must show: the transfer's fields, a strict CSP, no secret, no page
/// error or CSP violation, and no request anywhere but the daemon.
fn assert_page(sc: &Value, daemon: &Daemon, secrets: &[&str], amount: &str, digest: &str, owner: &str) {
    let name = sc["name"].as_str().unwrap();
    assert_eq!(sc["status"], 200, "{name}: {sc}");
    assert_eq!(
        sc["mainVisible"], true,
        "{name}: the transfer is shown: {}",
        sc["fields"]
    );
    let f = &sc["fields"];
    assert_eq!(f["amount"], amount, "{name}: {f}");
    assert_eq!(f["symbol"], "ETH", "{name}: {f}");
    assert_eq!(f["to"], RECIPIENT, "{name}: {f}");
    assert_eq!(f["chainId"], "31337", "{name}: {f}");
    assert_eq!(f["chain"], "anvil", "{name}: {f}");
    assert_eq!(f["asset"], "native", "{name}: {f}");
    assert_eq!(f["tx"], sc["tx"], "{name}: {f}");
    assert_eq!(f["owner"], owner, "{name}: {f}");
    assert_eq!(f["digest"], digest, "{name}: the digest is the approval message's: {f}");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains(&format!("urn:bursar:digest:sha256:{digest}")),
        "{name}: {f}"
    );
    assert_eq!(f["error"], "", "{name}: {f}");

    let csp = sc["headers"]["content-security-policy"].as_str().unwrap_or_else(|| {
        panic!("{name}: no Content-Security-Policy header: {}", sc["headers"]);
    });
    for directive in ["default-src 'none'", "script-src 'nonce-", "connect-src 'self'"] {
        assert!(csp.contains(directive), "{name}: CSP {csp:?} lacks {directive:?}");
    }
    assert!(!csp.contains("unsafe-"), "{name}: CSP {csp:?}");
    let html = sc["html"].as_str().unwrap();
    for secret in secrets {
        assert!(!html.contains(secret), "{name}: the page embeds a secret");
    }

    let origin = format!("{}/", daemon.url);
    for r in sc["requests"].as_array().unwrap() {
        assert!(
            r["url"].as_str().unwrap().starts_with(&origin),
            "{name}: the page loaded something outside the daemon: {r}"
        );
    }
    assert_eq!(sc["pageErrors"], json!([]), "{name}: page errors");
    assert_eq!(sc["cspViolations"], json!([]), "{name}: CSP violations");
    let noisy: Vec<&Value> = sc["console"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["type"] == "error" || m["text"].as_str().unwrap().contains("Content Security Policy"))
        .collect();
    assert!(noisy.is_empty(), "{name}: console errors: {noisy:?}");
    assert_eq!(
        sc["timedOut"],
        Value::Null,
        "{name}: #result never settled: {:?}",
        sc["result"]
    );
}

fn posts(sc: &Value) -> Vec<String> {
    sc["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["method"] != "GET")
        .map(|r| format!("{} {}", r["method"].as_str().unwrap(), r["url"].as_str().unwrap()))
        .collect()
}

fn provider_methods(sc: &Value) -> Vec<&str> {
    sc["providerCalls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["method"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_page_in_chromium_approves_rejects_and_refuses_another_wallet() {
    let chromium = chromium();
    playwright_modules();
    let started = Instant::now();
    let anvil = Anvil::start().await;
    let daemon = Daemon::start(opts(&anvil)).await;
    let owner = Owner::new();
    let stranger = PrivateKeySigner::random();

    let (wallet, token) = daemon.wallet_and_token().await;
    let wid = wallet["id"].as_str().unwrap();
    anvil.fund(wallet["address"].as_str().unwrap(), eth(10)).await;
    let policy = json!({ "walletId": wid, "type": "SPENDING_LIMIT", "rules": { "instant_max": "0.1" } });
    let (status, body) = daemon.master(Method::POST, "/v1/policies", Some(policy)).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = daemon
        .master(
            Method::PUT,
            &format!("/v1/wallets/{wid}/owner"),
            Some(json!({ "address": owner.address() })),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let to_approve = pending(&daemon, &token, "0.5", "browser-approve").await;
    let to_reject = pending(&daemon, &token, "0.7", "browser-reject").await;
    let untouched = pending(&daemon, &token, "0.6", "browser-stranger").await;
    let digests = [
        digest(&daemon, &token, &to_approve, "approve").await,
        digest(&daemon, &token, &to_reject, "approve").await,
        digest(&daemon, &token, &untouched, "approve").await,
    ];
    let reject_digest = digest(&daemon, &token, &to_reject, "reject").await;
    let before = balance_of(&anvil, RECIPIENT).await;

    // The page as served: a CSP header, no secret in the HTML.
    let password = daemon.password.trim().to_owned();
    let res = crate::harness::http()
        .get(format!("{}/approve/{to_approve}", daemon.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("content-security-policy"));
    let html = res.text().await.unwrap();
    assert!(html.contains(&digests[0]));
    assert!(
        !html.contains(&token) && !html.contains(&password),
        "the page embeds a secret"
    );

    let signed: Signed = Arc::default();
    let signer = start_signer(vec![owner.signer.clone(), stranger.clone()], signed.clone()).await;
    let owner_addr = owner.address();
    let spec = json!({
        "daemon": daemon.url,
        "signer": signer,
        "chromium": chromium,
        "screenshotDir": PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("approve-page"),
        "scenarios": [
            { "name": "approve", "tx": to_approve, "click": "approve", "account": owner_addr },
            { "name": "reject", "tx": to_reject, "click": "reject", "account": owner_addr },
            { "name": "wrong-account", "tx": untouched, "click": "approve", "account": stranger.address().to_checksum(None) },
        ],
    });
    let browser_started = Instant::now();
    let summary = run_browser(&spec).await;
    let browser_took = browser_started.elapsed();
    let sc = summary["scenarios"].as_array().unwrap();
    assert_eq!(sc.len(), 3, "{summary}");
    let secrets = [token.as_str(), password.as_str()];
    for ((s, amount), digest) in sc.iter().zip(["0.5", "0.7", "0.6"]).zip(&digests) {
        assert_page(s, &daemon, &secrets, amount, digest, &owner_addr);
    }

    // Approve: the wallet signed the approve message, the page submitted it once, the daemon
    // broadcast and confirmed it.
    let (approve, reject, wrong) = (&sc[0], &sc[1], &sc[2]);
    let result = approve["result"].as_str().unwrap();
    assert!(
        result.starts_with("Done: the transfer is CONFIRMED"),
        "approve: {result}"
    );
    assert_eq!(
        provider_methods(approve),
        ["eth_requestAccounts", "personal_sign"],
        "{approve}"
    );
    // Viewing took no nonce: the message came from the page's own POST, after the click.
    assert_eq!(
        posts(approve),
        [
            format!("POST {}/approve/{to_approve}/message?action=approve", daemon.url),
            format!("POST {}/v1/transactions/{to_approve}/approve", daemon.url),
        ]
    );
    let tx = wait_status(&daemon, &token, &to_approve, "CONFIRMED").await;
    assert!(result.contains(tx["hash"].as_str().unwrap()), "{result} vs {tx}");

    // Reject: REJECTED, nothing sent.
    let result = reject["result"].as_str().unwrap();
    assert!(result.starts_with("Done: the transfer is REJECTED"), "reject: {result}");
    assert_eq!(
        posts(reject),
        [
            format!("POST {}/approve/{to_reject}/message?action=reject", daemon.url),
            format!("POST {}/v1/transactions/{to_reject}/reject", daemon.url),
        ]
    );
    wait_status(&daemon, &token, &to_reject, "REJECTED").await;

    // Another wallet: the page says so, asks for no signature, takes no nonce and submits
    // nothing.
    let result = wrong["result"].as_str().unwrap();
    assert!(
        result.contains("the connected wallet is not the owner"),
        "wrong account: {result}"
    );
    assert_eq!(provider_methods(wrong), ["eth_requestAccounts"], "{wrong}");
    assert_eq!(posts(wrong), Vec::<String>::new());
    assert_eq!(
        wrong["buttonsDisabled"],
        json!([false, false]),
        "the owner can still retry"
    );
    let (_, tx) = daemon
        .session(&token, Method::GET, &format!("/v1/transactions/{untouched}"), None)
        .await;
    assert_eq!(tx["status"], "PENDING_APPROVAL", "{tx}");

    // Exactly two signatures, by the owner, over the daemon's exact approve and reject texts
    // — the texts the page showed after the click, not the nonce-less preview.
    let signed = signed.lock().unwrap().clone();
    assert_eq!(signed.len(), 2, "{signed:?}");
    for (sc, (_, text)) in [approve, reject].into_iter().zip(&signed) {
        assert_eq!(sc["fieldsAfter"]["message"].as_str(), Some(text.as_str()), "{sc}");
        assert!(
            sc["fields"]["message"]
                .as_str()
                .unwrap()
                .contains("Nonce: (issued when")
        );
    }
    for ((who, text), (action, id, digest)) in signed.iter().zip([
        ("approve", &to_approve, &digests[0]),
        ("reject", &to_reject, &reject_digest),
    ]) {
        assert_eq!(who, &owner_addr);
        for needle in [
            format!("Request ID: bursar:{action}"),
            format!("urn:bursar:tx:{id}"),
            format!("urn:bursar:digest:sha256:{digest}"),
            format!("{}\n", owner_addr),
        ] {
            assert!(text.contains(&needle), "{needle:?} missing from\n{text}");
        }
    }

    // On chain: exactly the approved 0.5 ETH moved.
    assert_eq!(balance_of(&anvil, RECIPIENT).await - before, eth(1) / U256::from(2));
    eprintln!(
        "browser: {} (launch {} ms); approve.mjs {browser_took:?}, whole test {:?}; screenshots in {}",
        summary["browser"],
        summary["launchMs"],
        started.elapsed(),
        summary["screenshotDir"]
    );
}

/// The approval and panic pages on a phone (390×844, touch, taps), opened from the links a
/// push notification carried (a loopback ntfy sink records them), with an injected wallet:
/// approve → CONFIRMED on anvil, reject → REJECTED, a DELAY's Cancel → CANCELLED, the panic
/// page freezes the wallet (an EVM one through `window.ethereum`, a Solana one through a
/// Phantom-style `window.solana`, Ed25519); with no wallet the page says how to open the link
/// in a wallet app's browser. No request leaves the daemon, the CSP holds, the page fits the
/// screen and its buttons are large.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_notification_links_approve_reject_and_freeze() {
    use crate::notify::{Hit, Sink};
    let chromium = chromium();
    playwright_modules();
    let anvil = Anvil::start().await;
    let sink = Sink::start(Duration::ZERO).await;
    let config = format!(
        "\n[prices.native]\nETH = \"2000\"\n\n[transfers]\nworker_interval_ms = 100\nconfirm_wait_seconds = 10\n\n[notifications]\ntimeout_ms = 2000\nmax_attempts = 3\nbackoff_initial_ms = 50\nbackoff_max_ms = 200\n\n[notifications.ntfy]\nbase_url = \"{}/ntfy\"\ntopic = \"bursar-phone-test\"\n",
        sink.url
    );
    let mut daemon = Daemon::init(crate::harness::Opts {
        extra_config: config,
        ..opts(&anvil)
    });
    // The links must name the daemon's own address, so its port is chosen before it starts
    // (the one exception to "bind port 0"): a port someone takes in between is retried.
    let mut public = String::new();
    for attempt in 0.. {
        let port = crate::harness::free_port();
        public = format!("http://127.0.0.1:{port}");
        daemon
            .env
            .retain(|(k, _)| k != "BURSAR_SERVER_BIND" && k != "BURSAR_SERVER_PUBLIC_URL");
        daemon
            .env
            .push(("BURSAR_SERVER_BIND".into(), format!("127.0.0.1:{port}")));
        daemon.env.push(("BURSAR_SERVER_PUBLIC_URL".into(), public.clone()));
        match daemon.try_spawn().await {
            Ok(()) => break,
            Err(err) if attempt < 3 => eprintln!("port {port} was taken ({err:?}); another"),
            Err(err) => panic!("the daemon did not start: {err:?}"),
        }
    }
    assert_eq!(daemon.url, public, "the daemon is where its links point");
    let owner = Owner::new();
    let (wid, token) = crate::owner::guarded(&anvil, &daemon, &owner, json!({})).await;
    let to_approve = pending(&daemon, &token, "0.5", "phone-approve").await;
    let to_reject = pending(&daemon, &token, "0.7", "phone-reject").await;
    let (status, delayed) = daemon
        .session(
            &token,
            Method::POST,
            "/v1/transactions/send",
            Some(json!({ "to": RECIPIENT, "amount": "0.15", "idempotencyKey": "phone-cancel" })),
        )
        .await;
    assert_eq!(
        (status, delayed["status"].as_str()),
        (200, Some("DELAYED")),
        "{delayed}"
    );
    let to_cancel = delayed["id"].as_str().unwrap().to_owned();
    let digests = [
        digest(&daemon, &token, &to_approve, "approve").await,
        digest(&daemon, &token, &to_reject, "reject").await,
        digest(&daemon, &token, &to_cancel, "cancel").await,
    ];
    let before = balance_of(&anvil, RECIPIENT).await;

    // The links, as the push notifications carry them.
    let action_url = |hit: &Hit, label: &str| {
        hit.body["actions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["label"] == label)
            .and_then(|a| a["url"].as_str())
            .unwrap_or_else(|| panic!("no {label:?} action: {}", hit.body))
            .to_owned()
    };
    let about =
        |tx: String| move |h: &Hit| h.path == "/ntfy" && h.body["message"].as_str().is_some_and(|m| m.contains(&tx));
    let approve_note = sink.wait_for("the approval push", about(to_approve.clone())).await;
    let reject_note = sink
        .wait_for("the second approval push", about(to_reject.clone()))
        .await;
    let approve_url = action_url(&approve_note, "Review and approve");
    let reject_url = action_url(&reject_note, "Reject");
    let delay_note = sink
        .wait_for("the DELAY push", move |h: &Hit| {
            h.path == "/ntfy" && h.body["tags"] == json!(["transfer_delayed"])
        })
        .await;
    let cancel_url = action_url(&delay_note, "Cancel");
    assert_eq!(cancel_url, format!("{public}/approve/{to_cancel}?action=cancel"));
    let freeze_url = action_url(&approve_note, "Freeze wallet");
    assert_eq!(approve_note.body["click"], approve_url.as_str());
    assert_eq!(approve_url, format!("{public}/approve/{to_approve}?action=approve"));
    assert_eq!(reject_url, format!("{public}/approve/{to_reject}?action=reject"));
    assert_eq!(freeze_url, format!("{public}/owner/{wid}"));

    // A Solana wallet whose owner signs in a Phantom-style wallet (Ed25519 over the text).
    let sol = daemon.create_wallet("localsol").await;
    let sol_id = sol["id"].as_str().unwrap().to_owned();
    let sol_key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let sol_owner = bs58::encode(sol_key.verifying_key().as_bytes()).into_string();
    let (status, body) = daemon
        .master(
            Method::PUT,
            &format!("/v1/wallets/{sol_id}/owner"),
            Some(json!({ "address": sol_owner })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let sol_signed: Signed = Arc::default();
    let sol_signer = start_ed25519_signer(sol_key, sol_signed.clone()).await;

    let signed: Signed = Arc::default();
    let signer = start_signer(vec![owner.signer.clone()], signed.clone()).await;
    let owner_addr = owner.address();
    let panic_fields = json!(["state", "wallet", "chain", "owner", "message", "error", "pending"]);
    let spec = |scenarios: Value| {
        json!({
            "daemon": daemon.url,
            "signer": signer,
            "chromium": chromium,
            "phone": true,
            "screenshotDir": PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("phone-pages"),
            "scenarios": scenarios,
        })
    };
    // First the transfers (the agent's token reads their final state), then the freezes
    // (which revoke that token).
    let first = run_browser(&spec(json!([
        { "name": "phone-no-wallet", "url": approve_url, "tx": to_approve, "click": null, "account": owner_addr, "noWallet": true },
        { "name": "phone-approve", "url": approve_url, "tx": to_approve, "click": "approve", "account": owner_addr },
        { "name": "phone-reject", "url": reject_url, "tx": to_reject, "click": "reject", "account": owner_addr },
        { "name": "phone-cancel", "url": cancel_url, "tx": to_cancel, "click": "cancel", "account": owner_addr },
    ])))
    .await;
    wait_status(&daemon, &token, &to_approve, "CONFIRMED").await;
    wait_status(&daemon, &token, &to_reject, "REJECTED").await;
    wait_status(&daemon, &token, &to_cancel, "CANCELLED").await;
    let second = run_browser(&spec(json!([
        { "name": "phone-freeze", "url": freeze_url, "tx": "", "click": "freeze", "account": owner_addr, "fields": panic_fields },
        { "name": "phone-freeze-solana", "url": format!("{public}/owner/{sol_id}"), "tx": "", "click": "freeze", "account": sol_owner,
          "fields": panic_fields, "solana": { "publicKey": sol_owner }, "signer": sol_signer },
    ])))
    .await;
    let sc: Vec<Value> = [&first, &second]
        .iter()
        .flat_map(|s| s["scenarios"].as_array().unwrap().clone())
        .collect();
    let summary = &first;
    assert_eq!(sc.len(), 6, "{first} {second}");
    let secrets = [token.as_str(), daemon.password.trim()];
    assert_page(&sc[0], &daemon, &secrets, "0.5", &digests[0], &owner_addr);
    assert_page(&sc[1], &daemon, &secrets, "0.5", &digests[0], &owner_addr);
    assert_page(&sc[2], &daemon, &secrets, "0.7", &digests[1], &owner_addr);
    assert_page(&sc[3], &daemon, &secrets, "0.15", &digests[2], &owner_addr);
    // The DELAY's Cancel link: one button, the owner's cancel message, CANCELLED.
    assert_eq!(sc[3]["buttons"], json!(["cancel"]));
    let result = sc[3]["result"].as_str().unwrap();
    assert!(
        result.starts_with("Done: the transfer is CANCELLED"),
        "phone cancel: {result}"
    );
    assert_eq!(
        posts(&sc[3]),
        [
            format!("POST {}/approve/{to_cancel}/message?action=cancel", daemon.url),
            format!("POST {}/v1/transactions/{to_cancel}/cancel", daemon.url),
        ]
    );

    // Every page fits a phone: no sideways scrolling, full-width buttons at least 44 px high.
    for s in &sc {
        let layout = &s["layout"];
        assert!(
            layout["scrollWidth"].as_f64() <= layout["innerWidth"].as_f64(),
            "{}: scrolls sideways: {layout}",
            s["name"]
        );
        for b in layout["buttons"].as_array().unwrap() {
            assert!(
                b["height"].as_f64().unwrap() >= 44.0,
                "{}: small tap target {b}",
                s["name"]
            );
            assert!(
                b["width"].as_f64().unwrap() >= 300.0,
                "{}: narrow button {b}",
                s["name"]
            );
        }
    }

    // No wallet: the page says so, and how to open the link in a wallet app's browser.
    let none = &sc[0];
    assert_eq!(none["noWalletVisible"], true, "{none}");
    let notice = none["noWalletText"].as_str().unwrap();
    assert!(
        notice.contains("No wallet in this browser") && notice.contains("wallet app's own browser"),
        "{notice}"
    );
    assert!(
        notice.contains(&approve_url),
        "the notice shows the link to open: {notice}"
    );
    assert_eq!(sc[1]["noWalletVisible"], false);

    // The approve link preselects approve (first button), the reject link reject.
    assert_eq!(sc[1]["buttons"], json!(["approve", "reject"]));
    assert_eq!(sc[2]["buttons"], json!(["reject", "approve"]));
    let result = sc[1]["result"].as_str().unwrap();
    assert!(
        result.starts_with("Done: the transfer is CONFIRMED"),
        "phone approve: {result}"
    );
    let result = sc[2]["result"].as_str().unwrap();
    assert!(
        result.starts_with("Done: the transfer is REJECTED"),
        "phone reject: {result}"
    );
    assert_eq!(balance_of(&anvil, RECIPIENT).await - before, eth(1) / U256::from(2));

    // The panic page: status shown, one tap on the page (the second is the wallet's), frozen.
    let freeze = &sc[4];
    assert_eq!(freeze["status"], 200, "{freeze}");
    assert_eq!(freeze["fields"]["state"], "Not frozen", "{freeze}");
    assert_eq!(freeze["fields"]["wallet"], wid.as_str());
    assert_eq!(freeze["fields"]["owner"], owner_addr.as_str());
    assert!(
        freeze["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("Request ID: bursar:kill-switch-on")
    );
    let result = freeze["result"].as_str().unwrap();
    assert!(result.starts_with("Done: the wallet is FROZEN"), "freeze: {result}");
    assert!(
        freeze["fieldsAfter"]["state"].as_str().unwrap().starts_with("FROZEN"),
        "{freeze}"
    );
    assert_eq!(provider_methods(freeze), ["eth_requestAccounts", "personal_sign"]);
    assert_eq!(
        posts(freeze),
        [
            format!("POST {}/owner/{wid}/message", daemon.url),
            format!("POST {}/v1/owner/kill-switch", daemon.url),
        ]
    );
    let (_, w) = daemon.master(Method::GET, &format!("/v1/wallets/{wid}"), None).await;
    assert_eq!(w["frozen"]["by"], "owner", "{w}");
    let csp = freeze["headers"]["content-security-policy"].as_str().unwrap();
    assert!(csp.contains("default-src 'none'") && !csp.contains("unsafe-"), "{csp}");
    let origin = format!("{}/", daemon.url);
    for r in freeze["requests"].as_array().unwrap() {
        assert!(
            r["url"].as_str().unwrap().starts_with(&origin),
            "outside the daemon: {r}"
        );
    }
    assert_eq!(freeze["pageErrors"], json!([]));
    assert_eq!(freeze["cspViolations"], json!([]));
    let html = freeze["html"].as_str().unwrap();
    assert!(!html.contains(&token) && !html.contains(daemon.password.trim()));
    assert_eq!(
        signed.lock().unwrap().len(),
        4,
        "approve, reject, cancel, freeze: one signature each"
    );

    // The Solana wallet: Phantom-style connect + signMessage of the exact text, Ed25519.
    let sol_freeze = &sc[5];
    let result = sol_freeze["result"].as_str().unwrap();
    assert!(
        result.starts_with("Done: the wallet is FROZEN"),
        "solana freeze: {result}"
    );
    assert_eq!(provider_methods(sol_freeze), ["solana_connect", "solana_signMessage"]);
    let sol_signed = sol_signed.lock().unwrap().clone();
    assert_eq!(sol_signed.len(), 1);
    assert!(
        sol_signed[0]
            .1
            .contains("wants you to sign in with your Solana account"),
        "{sol_signed:?}"
    );
    assert_eq!(
        sol_freeze["fieldsAfter"]["message"].as_str(),
        Some(sol_signed[0].1.as_str())
    );
    let (_, w) = daemon.master(Method::GET, &format!("/v1/wallets/{sol_id}"), None).await;
    assert_eq!(w["frozen"]["by"], "owner", "{w}");
    assert_eq!(sol_freeze["cspViolations"], json!([]));
    assert_eq!(sol_freeze["pageErrors"], json!([]));
    eprintln!("phone pages: screenshots in {}", summary["screenshotDir"]);
}

/// A Solana wallet's owner approves on the phone page with a Phantom-style wallet
/// (`window.solana`: connect, then `signMessage` of the exact text, Ed25519), and the transfer
/// lands on a real solana-test-validator: exactly the amount, once. Nothing leaves the daemon
/// and the CSP holds, as for EVM wallets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_solana_owner_approves_on_the_phone_with_a_phantom_style_wallet() {
    use crate::solana::{LAMPORTS, Validator, airdrop, funded_wallet, keypair, lamports, pubkey_of, send, wait_status};
    let chromium = chromium();
    playwright_modules();
    let v = Validator::shared().await;
    let daemon = Daemon::start(crate::solana::opts(&v.url)).await;
    let rules = json!({ "instant_max": "0.1", "notify_max": "0.2", "delay_max": "0.3", "delay_seconds": 2 });
    let (wallet, token) = funded_wallet(&daemon, &v.url, 3, &[("SPENDING_LIMIT", rules)]).await;
    let wid = wallet["id"].as_str().unwrap();
    let owner = keypair();
    let owner_b58 = pubkey_of(&owner).to_string();
    let (status, body) = daemon
        .master(
            Method::PUT,
            &format!("/v1/wallets/{wid}/owner"),
            Some(json!({ "address": owner_b58 })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let to = pubkey_of(&keypair()).to_string();
    airdrop(&v.url, &to, LAMPORTS).await;
    let before = lamports(&v.url, &to).await;
    let (status, tx) = send(
        &daemon,
        &token,
        json!({ "to": to, "amount": "0.5", "idempotencyKey": "phone-sol" }),
    )
    .await;
    assert_eq!((status, tx["status"].as_str()), (200, Some("PENDING_APPROVAL")), "{tx}");
    let id = tx["id"].as_str().unwrap().to_owned();

    let signed: Signed = Arc::default();
    let signer = start_ed25519_signer(owner, signed.clone()).await;
    let spec = json!({
        "daemon": daemon.url,
        "signer": signer,
        "chromium": chromium,
        "phone": true,
        "screenshotDir": PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("phone-pages-solana"),
        "scenarios": [
            { "name": "phone-approve-solana", "url": format!("{}/approve/{id}?action=approve", daemon.url), "tx": id,
              "click": "approve", "account": owner_b58, "solana": { "publicKey": owner_b58 }, "signer": signer },
        ],
    });
    let summary = run_browser(&spec).await;
    let sc = &summary["scenarios"][0];
    let result = sc["result"].as_str().unwrap();
    assert!(result.starts_with("Done: the transfer is"), "solana approve: {result}");
    assert_eq!(provider_methods(sc), ["solana_connect", "solana_signMessage"]);
    let signed = signed.lock().unwrap().clone();
    assert_eq!(signed.len(), 1, "one signature: {signed:?}");
    assert!(
        signed[0].1.contains("wants you to sign in with your Solana account") && signed[0].1.contains(&id),
        "the exact approval text for this transfer: {signed:?}"
    );
    assert_eq!(sc["pageErrors"], json!([]));
    assert_eq!(sc["cspViolations"], json!([]));
    let origin = format!("{}/", daemon.url);
    for r in sc["requests"].as_array().unwrap() {
        assert!(
            r["url"].as_str().unwrap().starts_with(&origin),
            "outside the daemon: {r}"
        );
    }
    let html = sc["html"].as_str().unwrap();
    assert!(!html.contains(&token) && !html.contains(daemon.password.trim()));
    let done = wait_status(&daemon, &token, &id, "CONFIRMED", 60).await;
    assert_eq!(done["tier"], "APPROVAL", "{done}");
    assert_eq!(
        lamports(&v.url, &to).await - before,
        LAMPORTS / 2,
        "exactly the amount, once"
    );
}

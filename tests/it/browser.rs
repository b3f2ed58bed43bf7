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

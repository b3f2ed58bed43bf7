//! Solana end to end on a real `solana-test-validator` (installed by `scripts/setup` into
//! `.tools/solana`): the real daemon, real signatures, real SPL Token and Token-2022 mints.
//! One validator serves the whole test process (it costs about a core while idle); every test
//! uses fresh keys and airdrops.

use crate::harness::{Daemon, Opts, http, repo_root};
use crate::owner::post_signed;
use base64::Engine;
use ed25519_dalek::Signer;
use reqwest::Method;
use serde_json::{Value, json};
use solana_instruction::Instruction;
use solana_pubkey::Pubkey;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub(crate) const LAMPORTS: u64 = 1_000_000_000;

/// The shared validator: started once per test process by a keeper thread that lives until
/// the process ends; the validator gets SIGKILL when that thread (so the process) dies.
pub(crate) struct Validator {
    pub url: String,
}

static VALIDATOR: OnceLock<Result<Validator, String>> = OnceLock::new();

fn validator_bin() -> std::path::PathBuf {
    repo_root().join(".tools/solana/bin/solana-test-validator")
}

impl Validator {
    pub async fn shared() -> &'static Validator {
        let v = tokio::task::spawn_blocking(|| VALIDATOR.get_or_init(start_validator))
            .await
            .unwrap();
        match v {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }
}

fn start_validator() -> Result<Validator, String> {
    let bin = validator_bin();
    if !bin.exists() {
        return Err(format!(
            "{} is missing: run scripts/setup (it installs solana-test-validator into .tools/solana)",
            bin.display()
        ));
    }
    let (tx, rx) = std::sync::mpsc::channel::<Result<String, String>>();
    std::thread::Builder::new()
        .name("solana-test-validator".into())
        .spawn(move || {
            let ledger = tempfile::tempdir().unwrap();
            // Free ports: the RPC port (and +1 for its websocket), the faucet, gossip and a
            // dynamic range, all picked from a random base so parallel test processes differ.
            let base = 20_000 + (std::process::id() % 400) as u16 * 100;
            let mut cmd = Command::new(&bin);
            cmd.args([
                "--ledger",
                ledger.path().to_str().unwrap(),
                "--reset",
                "--quiet",
                "--bind-address",
                "127.0.0.1",
                "--rpc-port",
                &base.to_string(),
                "--faucet-port",
                &(base + 2).to_string(),
                "--gossip-port",
                &(base + 3).to_string(),
                "--dynamic-port-range",
                &format!("{}-{}", base + 10, base + 90),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
            // SAFETY: prctl in the child before exec; no allocation, async-signal-safe.
            unsafe {
                use std::os::unix::process::CommandExt;
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let mut child: Child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(format!("cannot start solana-test-validator: {e}")));
                    return;
                }
            };
            let url = format!("http://127.0.0.1:{base}");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let ready = rt.block_on(async {
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    if let Ok(Some(status)) = child.try_wait() {
                        return Err(format!("solana-test-validator exited early: {status}"));
                    }
                    if let Ok(slot) = try_rpc(&url, "getSlot", json!([{ "commitment": "confirmed" }])).await
                        && slot.as_u64().is_some_and(|s| s > 0)
                    {
                        return Ok(());
                    }
                    if Instant::now() > deadline {
                        return Err("solana-test-validator did not produce a slot in 120 s".to_owned());
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
            let _ = tx.send(ready.map(|_| url));
            drop(rt);
            // Keep the ledger and the child until the process ends (PDEATHSIG kills it).
            let _keep = ledger;
            loop {
                std::thread::park();
            }
        })
        .unwrap();
    rx.recv().unwrap().map(|url| Validator { url })
}

pub(crate) async fn try_rpc(url: &str, method: &str, params: Value) -> Result<Value, Value> {
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
    let res = http()
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| json!(e.to_string()))?;
    let v: Value = res.json().await.map_err(|e| json!(e.to_string()))?;
    match v.get("error") {
        Some(e) => Err(e.clone()),
        None => Ok(v["result"].clone()),
    }
}

pub(crate) async fn rpc(url: &str, method: &str, params: Value) -> Value {
    match try_rpc(url, method, params.clone()).await {
        Ok(v) => v,
        Err(e) => panic!("{method} {params} failed: {e}"),
    }
}

/// A fresh Ed25519 key.
pub(crate) fn keypair() -> ed25519_dalek::SigningKey {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).unwrap();
    ed25519_dalek::SigningKey::from_bytes(&seed)
}

pub(crate) fn pubkey_of(key: &ed25519_dalek::SigningKey) -> Pubkey {
    Pubkey::new_from_array(key.verifying_key().to_bytes())
}

pub(crate) fn parse(address: &str) -> Pubkey {
    address.parse().unwrap()
}

/// Waits until `signature` is confirmed; panics on a failed transaction.
pub(crate) async fn wait_signature(url: &str, signature: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = rpc(
            url,
            "getSignatureStatuses",
            json!([[signature], { "searchTransactionHistory": true }]),
        )
        .await;
        let status = &v["value"][0];
        if !status.is_null() {
            assert!(status["err"].is_null(), "{signature} failed: {status}");
            if matches!(status["confirmationStatus"].as_str(), Some("confirmed" | "finalized")) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{signature} not confirmed in 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn airdrop(url: &str, to: &str, lamports: u64) {
    let sig = rpc(url, "requestAirdrop", json!([to, lamports])).await;
    wait_signature(url, sig.as_str().unwrap()).await;
}

pub(crate) async fn lamports(url: &str, address: &str) -> u64 {
    rpc(url, "getBalance", json!([address, { "commitment": "confirmed" }])).await["value"]
        .as_u64()
        .unwrap()
}

/// Signs `ixs` with `signers` (the first pays), sends and waits for confirmation.
pub(crate) async fn send_ixs(url: &str, ixs: &[Instruction], signers: &[&ed25519_dalek::SigningKey]) {
    let latest = rpc(url, "getLatestBlockhash", json!([{ "commitment": "confirmed" }])).await;
    let hash: [u8; 32] = bs58::decode(latest["value"]["blockhash"].as_str().unwrap())
        .into_vec()
        .unwrap()
        .try_into()
        .unwrap();
    let payer = pubkey_of(signers[0]);
    let message =
        solana_message::Message::new_with_blockhash(ixs, Some(&payer), &solana_hash::Hash::new_from_array(hash));
    let bytes = message.serialize();
    let required = message.header.num_required_signatures as usize;
    let mut raw = vec![u8::try_from(required).unwrap()];
    for key in &message.account_keys[..required] {
        let signer = signers
            .iter()
            .find(|s| pubkey_of(s) == *key)
            .expect("a signer for every required signature");
        raw.extend_from_slice(&signer.sign(&bytes).to_bytes());
    }
    raw.extend_from_slice(&bytes);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
    let sig = rpc(
        url,
        "sendTransaction",
        json!([b64, { "encoding": "base64", "preflightCommitment": "confirmed" }]),
    )
    .await;
    wait_signature(url, sig.as_str().unwrap()).await;
}

/// A new mint of `program` (classic SPL Token or Token-2022) with `decimals`, and `amount`
/// base units minted to `holder`'s associated token account. Returns the mint.
pub(crate) async fn create_mint(url: &str, program: Pubkey, decimals: u8, holder: &Pubkey, amount: u64) -> Pubkey {
    let payer = keypair();
    airdrop(url, &pubkey_of(&payer).to_string(), 2 * LAMPORTS).await;
    let mint = keypair();
    let mint_pk = pubkey_of(&mint);
    let rent = rpc(url, "getMinimumBalanceForRentExemption", json!([82]))
        .await
        .as_u64()
        .unwrap();
    let create = solana_system_interface::instruction::create_account(&pubkey_of(&payer), &mint_pk, rent, 82, &program);
    let init = if program == spl_token_2022_interface::ID {
        spl_token_2022_interface::instruction::initialize_mint2(&program, &mint_pk, &pubkey_of(&payer), None, decimals)
    } else {
        spl_token_interface::instruction::initialize_mint2(&program, &mint_pk, &pubkey_of(&payer), None, decimals)
    }
    .unwrap();
    let ata = spl_associated_token_account_interface::address::get_associated_token_address_with_program_id(
        holder, &mint_pk, &program,
    );
    let create_ata = spl_associated_token_account_interface::instruction::create_associated_token_account_idempotent(
        &pubkey_of(&payer),
        holder,
        &mint_pk,
        &program,
    );
    let mint_to = if program == spl_token_2022_interface::ID {
        spl_token_2022_interface::instruction::mint_to(&program, &mint_pk, &ata, &pubkey_of(&payer), &[], amount)
    } else {
        spl_token_interface::instruction::mint_to(&program, &mint_pk, &ata, &pubkey_of(&payer), &[], amount)
    }
    .unwrap();
    send_ixs(url, &[create, init, create_ata, mint_to], &[&payer, &mint]).await;
    mint_pk
}

/// The token balance (base units) of `owner`'s associated token account; 0 when it has none.
pub(crate) async fn token_units(url: &str, owner: &Pubkey, mint: &Pubkey, program: &Pubkey) -> u64 {
    let ata = spl_associated_token_account_interface::address::get_associated_token_address_with_program_id(
        owner, mint, program,
    );
    match try_rpc(
        url,
        "getTokenAccountBalance",
        json!([ata.to_string(), { "commitment": "confirmed" }]),
    )
    .await
    {
        Ok(v) => v["value"]["amount"].as_str().unwrap().parse().unwrap(),
        Err(_) => 0,
    }
}

pub(crate) fn opts(url: &str) -> Opts {
    Opts {
        solana_url: Some(url.to_owned()),
        extra_config:
            "\n[prices.native]\nSOL = \"100\"\n\n[transfers]\nworker_interval_ms = 100\nconfirm_wait_seconds = 30\n"
                .into(),
        ..Opts::default()
    }
}

/// A Solana wallet with `sol` airdropped, the given policies and a session token.
pub(crate) async fn funded_wallet(daemon: &Daemon, url: &str, sol: u64, policies: &[(&str, Value)]) -> (Value, String) {
    let wallet = daemon.create_wallet("localsol").await;
    let wid = wallet["id"].as_str().unwrap();
    if sol > 0 {
        airdrop(url, wallet["address"].as_str().unwrap(), sol * LAMPORTS).await;
    }
    for (kind, rules) in policies {
        let (status, body) = daemon
            .master(
                Method::POST,
                "/v1/policies",
                Some(json!({ "walletId": wid, "type": kind, "rules": rules })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let session = daemon.create_session(wid, json!({})).await;
    (wallet, session["token"].as_str().unwrap().to_owned())
}

pub(crate) async fn send(daemon: &Daemon, token: &str, body: Value) -> (u16, Value) {
    daemon
        .session(token, Method::POST, "/v1/transactions/send", Some(body))
        .await
}

pub(crate) async fn wait_status(daemon: &Daemon, token: &str, id: &str, want: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (_, tx) = daemon
            .session(token, Method::GET, &format!("/v1/transactions/{id}"), None)
            .await;
        if tx["status"] == want {
            return tx;
        }
        assert!(
            Instant::now() < deadline && !matches!(tx["status"].as_str(), Some("FAILED" | "CANCELLED" | "REJECTED")),
            "{id} never reached {want}: {tx}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The Ed25519 owner's `X-Owner-*` headers for `message` (base64 text, base58 signature).
pub(crate) fn owner_headers(owner: &ed25519_dalek::SigningKey, message: &str) -> [(String, String); 2] {
    let sig = owner.sign(message.as_bytes());
    [
        (
            "x-owner-message".into(),
            base64::engine::general_purpose::STANDARD.encode(message),
        ),
        ("x-owner-signature".into(), bs58::encode(sig.to_bytes()).into_string()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sol_transfers_at_every_tier_on_the_validator_with_an_ed25519_owner() {
    let v = Validator::shared().await;
    let daemon = Daemon::start(opts(&v.url)).await;
    let rules = json!({ "instant_max": "0.1", "notify_max": "0.2", "delay_max": "0.3", "delay_seconds": 2 });
    let (wallet, token) = funded_wallet(&daemon, &v.url, 10, &[("SPENDING_LIMIT", rules)]).await;
    let wid = wallet["id"].as_str().unwrap();
    let owner = keypair();
    let (status, body) = daemon
        .master(
            Method::PUT,
            &format!("/v1/wallets/{wid}/owner"),
            Some(json!({ "address": pubkey_of(&owner).to_string() })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let to = pubkey_of(&keypair()).to_string();
    // The recipient exists (rent-exempt) so that small transfers to it are valid.
    airdrop(&v.url, &to, LAMPORTS).await;
    let start_to = lamports(&v.url, &to).await;
    let start_from = lamports(&v.url, wallet["address"].as_str().unwrap()).await;

    // The balance as bursar reads it.
    let (status, balance) = daemon.session(&token, Method::GET, "/v1/wallet/balance", None).await;
    assert_eq!(status, 200, "{balance}");
    assert_eq!(balance["symbol"], "SOL", "{balance}");

    // INSTANT: confirmed in the request.
    let (status, tx) = send(
        &daemon,
        &token,
        json!({ "to": to, "amount": "0.05", "idempotencyKey": "i" }),
    )
    .await;
    assert_eq!(status, 200, "{tx}");
    let instant = wait_status(&daemon, &token, tx["id"].as_str().unwrap(), "CONFIRMED", 60).await;
    assert_eq!(instant["tier"], "INSTANT", "{instant}");
    // NOTIFY.
    let (_, tx) = send(
        &daemon,
        &token,
        json!({ "to": to, "amount": "0.15", "idempotencyKey": "n" }),
    )
    .await;
    let notify = wait_status(&daemon, &token, tx["id"].as_str().unwrap(), "CONFIRMED", 60).await;
    assert_eq!(notify["tier"], "NOTIFY", "{notify}");
    // DELAY: signed only when it executes, after its delay.
    let (_, tx) = send(
        &daemon,
        &token,
        json!({ "to": to, "amount": "0.25", "idempotencyKey": "d" }),
    )
    .await;
    assert_eq!(tx["status"], "DELAYED", "{tx}");
    assert!(tx["hash"].is_null(), "nothing signed before the delay: {tx}");
    let delayed = wait_status(&daemon, &token, tx["id"].as_str().unwrap(), "CONFIRMED", 60).await;
    // APPROVAL with an Ed25519 owner signature; a message for another transfer is refused.
    let (_, a) = send(
        &daemon,
        &token,
        json!({ "to": to, "amount": "0.5", "idempotencyKey": "a" }),
    )
    .await;
    assert_eq!(a["status"], "PENDING_APPROVAL", "{a}");
    let (_, b) = send(
        &daemon,
        &token,
        json!({ "to": to, "amount": "0.6", "idempotencyKey": "b" }),
    )
    .await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let (status, m) = daemon
        .session(
            &token,
            Method::GET,
            &format!("/v1/transactions/{a}/approval-message?action=approve"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{m}");
    let text = m["message"].as_str().unwrap();
    assert!(text.contains("Solana account"), "{text}");
    let (status, body) = post_signed(
        &daemon,
        &format!("/v1/transactions/{b}/approve"),
        &owner_headers(&owner, text),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("OWNER_REJECTED")),
        "statement swap: {body}"
    );
    let (status, body) = post_signed(
        &daemon,
        &format!("/v1/transactions/{a}/approve"),
        &owner_headers(&keypair(), text),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("OWNER_REJECTED")),
        "another signer: {body}"
    );
    let (status, body) = post_signed(
        &daemon,
        &format!("/v1/transactions/{a}/approve"),
        &owner_headers(&owner, text),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let approved = wait_status(&daemon, &token, a, "CONFIRMED", 60).await;
    let (_, still) = daemon
        .session(&token, Method::GET, &format!("/v1/transactions/{b}"), None)
        .await;
    assert_eq!(still["status"], "PENDING_APPROVAL", "{still}");

    // Exactly the values arrived; the wallet paid values plus fees, each fee as counted.
    let got = lamports(&v.url, &to).await - start_to;
    assert_eq!(got, (5 + 15 + 25 + 50) * LAMPORTS / 100);
    let spent = start_from - lamports(&v.url, wallet["address"].as_str().unwrap()).await;
    let fees: u64 = [&instant, &notify, &delayed, &approved]
        .iter()
        .map(|t| {
            t["maxFeeBaseUnits"]
                .as_str()
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no fee in {t}"))
        })
        .sum();
    assert!(
        spent > got && spent - got <= fees,
        "spent {spent}, sent {got}, fees counted {fees}"
    );
    for t in [&instant, &notify, &delayed, &approved] {
        let sig = t["hash"].as_str().unwrap();
        assert_eq!(bs58::decode(sig).into_vec().unwrap().len(), 64, "{t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spl_token_and_token_2022_transfers_create_the_recipient_account_and_count_its_rent() {
    let v = Validator::shared().await;
    for program in [spl_token_interface::ID, spl_token_2022_interface::ID] {
        let holder_key = keypair();
        let holder = pubkey_of(&holder_key);
        let mint = create_mint(&v.url, program, 6, &holder, 1_000_000_000).await;
        let mut o = opts(&v.url);
        o.extra_config += &format!("\n[prices.tokens]\n\"localsol:{mint}\" = \"1\"\n");
        let daemon = Daemon::start(o).await;
        // Native limits do not apply to a token's value, but its fee (and the rent of the
        // account it creates) counts against the daily native limit: 0.003 SOL is room for
        // one account's rent (~0.00204 SOL for a classic token account), not two.
        let policies = [
            ("ALLOWED_TOKENS", json!({ "tokens": [mint.to_string(), "native"] })),
            (
                "SPENDING_LIMIT",
                json!({ "instant_max_usd": "100", "daily_limit": "0.003" }),
            ),
        ];
        let (wallet, token) = funded_wallet(&daemon, &v.url, 1, &policies).await;
        let owner = parse(wallet["address"].as_str().unwrap());
        // The wallet gets its tokens from the holder.
        let (from_ata, to_ata) = (
            spl_associated_token_account_interface::address::get_associated_token_address_with_program_id(
                &holder, &mint, &program,
            ),
            spl_associated_token_account_interface::address::get_associated_token_address_with_program_id(
                &owner, &mint, &program,
            ),
        );
        airdrop(&v.url, &holder.to_string(), LAMPORTS).await;
        let create = spl_associated_token_account_interface::instruction::create_associated_token_account_idempotent(
            &holder, &owner, &mint, &program,
        );
        let give = spl_token_2022_interface::instruction::transfer_checked(
            &program,
            &from_ata,
            &mint,
            &to_ata,
            &holder,
            &[],
            100_000_000,
            6,
        )
        .unwrap();
        send_ixs(&v.url, &[create, give], &[&holder_key]).await;

        let (status, bal) = daemon
            .session(&token, Method::GET, &format!("/v1/wallet/balance?token={mint}"), None)
            .await;
        assert_eq!((status, bal["amount"].as_str()), (200, Some("100")), "{bal}");

        // To a recipient with a token account already: base fee only.
        let has_account = pubkey_of(&keypair());
        let create = spl_associated_token_account_interface::instruction::create_associated_token_account_idempotent(
            &holder,
            &has_account,
            &mint,
            &program,
        );
        send_ixs(&v.url, &[create], &[&holder_key]).await;
        let body = json!({ "to": has_account.to_string(), "amount": "12.5", "token": mint.to_string(), "idempotencyKey": "t1" });
        let (status, tx) = send(&daemon, &token, body).await;
        assert_eq!(status, 200, "{tx}");
        let first = wait_status(&daemon, &token, tx["id"].as_str().unwrap(), "CONFIRMED", 60).await;
        let small_fee: u64 = first["maxFeeBaseUnits"].as_str().unwrap().parse().unwrap();
        assert!(small_fee < 100_000, "no account created, no rent: {first}");
        assert_eq!(token_units(&v.url, &has_account, &mint, &program).await, 12_500_000);

        // To a fresh recipient: its associated token account is created, the rent counted.
        let fresh = pubkey_of(&keypair());
        let body = json!({ "to": fresh.to_string(), "amount": "1", "token": mint.to_string(), "idempotencyKey": "t2" });
        let (status, tx) = send(&daemon, &token, body).await;
        assert_eq!(status, 200, "{tx}");
        let second = wait_status(&daemon, &token, tx["id"].as_str().unwrap(), "CONFIRMED", 60).await;
        let with_rent: u64 = second["maxFeeBaseUnits"].as_str().unwrap().parse().unwrap();
        assert!(with_rent > 2_000_000, "the new account's rent counts: {second}");
        assert_eq!(token_units(&v.url, &fresh, &mint, &program).await, 1_000_000);
        // A whitelist or token rule sees the owner and the mint, never the token account.
        assert_eq!(second["to"], fresh.to_string());
        assert_eq!(second["token"], mint.to_string());

        // A third new account's rent does not fit in the day's native limit any more.
        let body = json!({ "to": pubkey_of(&keypair()).to_string(), "amount": "1", "token": mint.to_string(), "idempotencyKey": "t3" });
        let (status, body) = send(&daemon, &token, body).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("POLICY_DENIED")),
            "{body}"
        );
        // A token not allowed is refused whatever its account.
        let other = create_mint(&v.url, program, 0, &owner, 5).await;
        let body =
            json!({ "to": fresh.to_string(), "amount": "1", "token": other.to_string(), "idempotencyKey": "t4" });
        let (status, body) = send(&daemon, &token, body).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("POLICY_DENIED")),
            "{body}"
        );
        let (_, bal) = daemon
            .session(&token, Method::GET, &format!("/v1/wallet/balance?token={mint}"), None)
            .await;
        assert_eq!(bal["amount"], "86.5", "{bal}");
    }
}

/// A daemon on the validator with `env` overrides (e.g. `BURSAR_CHAINS_LOCALSOL_*`).
async fn daemon_with(url: &str, env: &[(&str, &str)]) -> Daemon {
    let mut daemon = Daemon::init(opts(url));
    daemon.env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    daemon.spawn().await;
    daemon
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_parallel_identical_sends_from_one_wallet_all_land() {
    let v = Validator::shared().await;
    let daemon = Daemon::start(opts(&v.url)).await;
    let rules = json!({ "instant_max": "1" });
    let (_, token) = funded_wallet(&daemon, &v.url, 5, &[("SPENDING_LIMIT", rules)]).await;
    let to = pubkey_of(&keypair()).to_string();
    airdrop(&v.url, &to, LAMPORTS).await;
    let before = lamports(&v.url, &to).await;
    // The same amount to the same recipient, at once: signed within one blockhash's
    // lifetime, they would be one transaction if their bytes were the same.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (url, token, to) = (daemon.url.clone(), token.clone(), to.clone());
            tokio::spawn(async move {
                let res = http()
                    .post(format!("{url}/v1/transactions/send"))
                    .bearer_auth(token)
                    .json(&json!({ "to": to, "amount": "0.01", "idempotencyKey": format!("p{i}") }))
                    .send()
                    .await
                    .unwrap();
                (res.status().as_u16(), res.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let mut ids = Vec::new();
    for (status, tx) in results {
        assert_eq!(status, 200, "{tx}");
        ids.push(tx["id"].as_str().unwrap().to_owned());
    }
    let mut hashes = std::collections::BTreeSet::new();
    for id in &ids {
        let tx = wait_status(&daemon, &token, id, "CONFIRMED", 90).await;
        hashes.insert(tx["hash"].as_str().unwrap().to_owned());
    }
    assert_eq!(hashes.len(), 20, "20 transfers, 20 signatures");
    assert_eq!(
        lamports(&v.url, &to).await - before,
        20 * LAMPORTS / 100,
        "all 20 landed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_is_checked_against_the_configured_genesis_hash() {
    let v = Validator::shared().await;
    let genesis = rpc(&v.url, "getGenesisHash", json!([])).await;
    let wrong = bs58::encode([7u8; 32]).into_string();
    let daemon = daemon_with(&v.url, &[("BURSAR_CHAINS_LOCALSOL_GENESIS_HASH", &wrong)]).await;
    let (_, token) = funded_wallet(&daemon, &v.url, 0, &[]).await;
    let (status, body) = daemon.session(&token, Method::GET, "/v1/wallet/balance", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("CHAIN_UNAVAILABLE")),
        "{body}"
    );
    assert!(
        body["error"]["message"].as_str().unwrap().contains("genesis hash"),
        "{body}"
    );
    drop(daemon);
    let daemon = daemon_with(
        &v.url,
        &[("BURSAR_CHAINS_LOCALSOL_GENESIS_HASH", genesis.as_str().unwrap())],
    )
    .await;
    let (_, token) = funded_wallet(&daemon, &v.url, 1, &[]).await;
    let (status, body) = daemon.session(&token, Method::GET, "/v1/wallet/balance", None).await;
    assert_eq!((status, body["amount"].as_str()), (200, Some("1")), "{body}");
}

/// While a transfer waits for its commitment, bursar looks at its status from 5 ms apart and
/// sends the same bytes again (it asks the node for no retries of its own) — but at most every
/// 500 ms, about a slot: a re-send per look was 10–15 RPC calls per transfer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_transfer_is_re_sent_about_once_a_slot_not_at_every_look() {
    let v = Validator::shared().await;
    let proxy = crate::rpc_proxy::RpcProxy::start(&v.url).await;
    let daemon = daemon_with(&proxy.url, &[]).await;
    let rules = json!({ "instant_max": "1" });
    let (_, token) = funded_wallet(&daemon, &v.url, 2, &[("SPENDING_LIMIT", rules)]).await;
    let to = pubkey_of(&keypair()).to_string();
    airdrop(&v.url, &to, LAMPORTS).await;
    let (mut sends, mut looks, mut waited) = (0, 0, Duration::ZERO);
    for n in 0..3 {
        let (sent_before, looked_before) = (proxy.seen("sendTransaction"), proxy.seen("getSignatureStatuses"));
        let started = Instant::now();
        let (status, tx) = send(
            &daemon,
            &token,
            json!({ "to": to, "amount": "0.01", "idempotencyKey": format!("slot-{n}") }),
        )
        .await;
        assert_eq!(status, 200, "{tx}");
        wait_status(&daemon, &token, tx["id"].as_str().unwrap(), "CONFIRMED", 60).await;
        waited += started.elapsed();
        sends += proxy.seen("sendTransaction") - sent_before;
        looks += proxy.seen("getSignatureStatuses") - looked_before;
    }
    // Three transfers: each sent once, then again at most every 500 ms of its wait (and a
    // last look's send may race the answer).
    let bound = 3 * 2 + usize::try_from(waited.as_millis() / 500).unwrap();
    assert!(
        (3..=bound).contains(&sends),
        "{sends} sends, {looks} status looks in {waited:?} for three transfers (bound {bound})"
    );
    assert!(looks > sends, "{sends} sends, {looks} status looks in {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_unlanded_transfer_is_re_signed_and_lands_once() {
    let v = Validator::shared().await;
    let proxy = crate::rpc_proxy::RpcProxy::start(&v.url).await;
    let daemon = daemon_with(
        &proxy.url,
        &[
            ("BURSAR_CHAINS_LOCALSOL_DROPPED_AFTER_SECONDS", "1"),
            ("BURSAR_CHAINS_LOCALSOL_RPC_TIMEOUT_MS", "2000"),
            ("BURSAR_TRANSFERS_CONFIRM_WAIT_SECONDS", "5"),
        ],
    )
    .await;
    let rules = json!({ "instant_max": "1" });
    let (wallet, token) = funded_wallet(&daemon, &v.url, 2, &[("SPENDING_LIMIT", rules)]).await;
    let to = pubkey_of(&keypair()).to_string();
    airdrop(&v.url, &to, LAMPORTS).await;
    let before = lamports(&v.url, &to).await;
    // Every sendTransaction is swallowed: the signed transfer never reaches the validator.
    proxy.stall("sendTransaction");
    let latest = rpc(&v.url, "getLatestBlockhash", json!([{ "commitment": "confirmed" }])).await;
    let (status, tx) = send(
        &daemon,
        &token,
        json!({ "to": to, "amount": "0.05", "idempotencyKey": "x" }),
    )
    .await;
    assert_eq!(status, 200, "{tx}");
    let id = tx["id"].as_str().unwrap().to_owned();
    assert_eq!(tx["status"], "SIGNED", "{tx}");
    let first = tx["hash"].as_str().unwrap().to_owned();
    // Until its blockhash is past its last valid block height (the one it was signed with is
    // at most a few blocks newer than the one read before the send).
    let last_valid = latest["value"]["lastValidBlockHeight"].as_u64().unwrap() + 10;
    let deadline = Instant::now() + Duration::from_secs(300);
    while rpc(&v.url, "getBlockHeight", json!([{ "commitment": "confirmed" }]))
        .await
        .as_u64()
        .unwrap()
        <= last_valid
    {
        assert!(Instant::now() < deadline, "the blockhash did not expire in 5 minutes");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (_, still) = daemon
        .session(&token, Method::GET, &format!("/v1/transactions/{id}"), None)
        .await;
    assert!(
        matches!(still["status"].as_str(), Some("SIGNED" | "SUBMITTED")),
        "{still}"
    );
    // A transfer signed at a recent blockhash cannot be replaced: the operator's speed-up and
    // on-chain cancel are refused with the reason, and nothing is signed.
    for action in ["speed-up", "cancel-onchain"] {
        let (status, body) = daemon
            .master(Method::POST, &format!("/v1/admin/transactions/{id}/{action}"), None)
            .await;
        assert_eq!(status, 501, "{action}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("recent blockhash"),
            "{action}: {body}"
        );
    }
    let (_, same) = daemon
        .session(&token, Method::GET, &format!("/v1/transactions/{id}"), None)
        .await;
    assert_eq!(
        same["hash"], first,
        "nothing re-signed by a refused replacement: {same}"
    );
    proxy.release("sendTransaction");
    // The old bytes are refused (blockhash not found); none of its signatures landed, so the
    // same record is signed again with a fresh blockhash and lands.
    let done = wait_status(&daemon, &token, &id, "CONFIRMED", 60).await;
    assert_ne!(done["hash"], first, "{done}");
    assert_eq!(done["replacedHashes"], json!([first]), "{done}");
    let old = rpc(
        &v.url,
        "getSignatureStatuses",
        json!([[first], { "searchTransactionHistory": true }]),
    )
    .await;
    assert!(old["value"][0].is_null(), "the expired signature never landed: {old}");
    assert_eq!(
        lamports(&v.url, &to).await - before,
        5 * LAMPORTS / 100,
        "exactly one transfer"
    );
    let (_, audit) = daemon.master(Method::GET, "/v1/audit?kind=tx_resigned", None).await;
    assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");
    let _ = wallet;
}

#[cfg(feature = "test-faults")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_signing_or_after_broadcast_then_restart_lands_exactly_once() {
    let v = Validator::shared().await;
    for point in ["after_sign", "after_broadcast"] {
        let mut daemon = daemon_with(&v.url, &[("BURSAR_TEST_FAULT", point)]).await;
        let rules = json!({ "instant_max": "1" });
        let (_, token) = funded_wallet(&daemon, &v.url, 2, &[("SPENDING_LIMIT", rules)]).await;
        let to = pubkey_of(&keypair()).to_string();
        airdrop(&v.url, &to, LAMPORTS).await;
        let before = lamports(&v.url, &to).await;
        let body = json!({ "to": to, "amount": "0.25", "idempotencyKey": "k" });
        let crashed = http()
            .post(format!("{}/v1/transactions/send", daemon.url))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await;
        assert!(crashed.is_err(), "{point}: the daemon answered instead of aborting");
        daemon.kill();
        assert!(
            daemon.logs().contains(&format!("test fault: aborting at {point}")),
            "{point}"
        );
        daemon.env.clear();
        daemon.spawn().await;
        // The retry finds the one record; the stored bytes are what lands.
        let (status, tx) = send(&daemon, &token, body.clone()).await;
        assert_eq!(status, 200, "{point}: {tx}");
        let id = tx["id"].as_str().unwrap();
        let done = wait_status(&daemon, &token, id, "CONFIRMED", 60).await;
        assert_eq!(done["replacedHashes"], json!([]), "{point}: {done}");
        let (_, all) = daemon
            .session(&token, Method::GET, "/v1/transactions?limit=50", None)
            .await;
        assert_eq!(all.as_array().unwrap().len(), 1, "{point}: {all}");
        // Past a few more slots nothing else arrives.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            lamports(&v.url, &to).await - before,
            LAMPORTS / 4,
            "{point}: exactly once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_mcp_sdk_reads_a_balance_and_transfers_on_a_solana_wallet() {
    let v = Validator::shared().await;
    let daemon = Daemon::start(opts(&v.url)).await;
    let rules = json!({ "instant_max": "0.1" });
    let (wallet, token) = funded_wallet(&daemon, &v.url, 1, &[("SPENDING_LIMIT", rules)]).await;
    let to = pubkey_of(&keypair()).to_string();
    airdrop(&v.url, &to, LAMPORTS).await;
    let before = lamports(&v.url, &to).await;
    let file = daemon.dir.path().join("agent.token");
    crate::harness::write_private(&file, &token);
    let out = crate::mcp::run_client_with("solana", &daemon, &file, &[("RECIPIENT", &to)]);
    assert_eq!(out["address"]["address"], wallet["address"], "{out}");
    assert_eq!(out["balance"]["symbol"], "SOL", "{out}");
    assert_eq!(out["balance"]["amount"], "1", "{out}");
    assert_eq!(out["transfer"]["isError"], false, "{out}");
    assert_eq!(out["transfer"]["structured"]["tier"], "INSTANT", "{out}");
    let id = out["transfer"]["structured"]["id"].as_str().unwrap();
    wait_status(&daemon, &token, id, "CONFIRMED", 60).await;
    assert_eq!(lamports(&v.url, &to).await - before, LAMPORTS / 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_owner_approves_a_solana_transfer_with_a_solana_keygen_file() {
    let v = Validator::shared().await;
    let daemon = Daemon::start(opts(&v.url)).await;
    let rules = json!({ "instant_max": "0.1", "delay_max": "0.2", "delay_seconds": 3600 });
    let (wallet, token) = funded_wallet(&daemon, &v.url, 2, &[("SPENDING_LIMIT", rules)]).await;
    let wid = wallet["id"].as_str().unwrap();
    // What `solana-keygen new -o owner.json` writes: the 64-byte keypair as a JSON array.
    let owner = keypair();
    let mut pair = owner.to_bytes().to_vec();
    pair.extend_from_slice(&owner.verifying_key().to_bytes());
    let key_file = daemon.dir.path().join("owner.json");
    crate::harness::write_private(&key_file, &serde_json::to_string(&pair).unwrap());
    let key = key_file.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = daemon.cli(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&["owner", "connect", wid, "--key-file", key, "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let connected: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(connected["owner"]["state"], "LOCKED", "{out}");
    assert_eq!(connected["owner"]["address"], pubkey_of(&owner).to_string(), "{out}");
    let to = pubkey_of(&keypair()).to_string();
    airdrop(&v.url, &to, LAMPORTS).await;
    let (_, tx) = send(
        &daemon,
        &token,
        json!({ "to": to, "amount": "0.5", "idempotencyKey": "cli" }),
    )
    .await;
    assert_eq!(tx["status"], "PENDING_APPROVAL", "{tx}");
    let id = tx["id"].as_str().unwrap();
    let (code, out, err) = run(&["owner", "approve", id, "--key-file", key, "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    wait_status(&daemon, &token, id, "CONFIRMED", 60).await;
}

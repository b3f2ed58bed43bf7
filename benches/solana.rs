//! Solana end to end: the real release `bursar` binary against a real `solana-test-validator`
//! (`scripts/setup` builds it into `.tools/solana`). Measures, for SOL transfers and for SPL
//! Token transfers (to a recipient with a token account), the time from `POST
//! /v1/transactions/send` to the transfer being CONFIRMED at the `confirmed` commitment
//! (p50/p95), next to the validator's own slot time (slots produced over five seconds), and the
//! daemon's CPU time per transfer (from /proc: what bursar itself spends, the chain aside).
//!
//! Run: `cargo bench --bench solana`. Env knobs: `SOL_TRANSFERS` (default 40 of each kind),
//! `SOL_BURSAR` (the binary to measure, e.g. another commit's release build, for an A/B;
//! default this build's).

use ed25519_dalek::Signer;
use serde_json::{Value, json};
use solana_pubkey::Pubkey;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn rpc(client: &reqwest::Client, url: &str, method: &str, params: Value) -> Value {
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
    let v: Value = client.post(url).json(&body).send().await.unwrap().json().await.unwrap();
    assert!(v.get("error").is_none(), "{method}: {v}");
    v["result"].clone()
}

async fn confirmed(client: &reqwest::Client, url: &str, sig: &str) {
    loop {
        let v = rpc(client, url, "getSignatureStatuses", json!([[sig]])).await;
        if matches!(
            v["value"][0]["confirmationStatus"].as_str(),
            Some("confirmed" | "finalized")
        ) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn key() -> ed25519_dalek::SigningKey {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).unwrap();
    ed25519_dalek::SigningKey::from_bytes(&seed)
}

fn pk(k: &ed25519_dalek::SigningKey) -> Pubkey {
    Pubkey::new_from_array(k.verifying_key().to_bytes())
}

async fn send_ixs(
    client: &reqwest::Client,
    url: &str,
    ixs: &[solana_instruction::Instruction],
    signers: &[&ed25519_dalek::SigningKey],
) {
    let latest = rpc(
        client,
        url,
        "getLatestBlockhash",
        json!([{ "commitment": "confirmed" }]),
    )
    .await;
    let hash: [u8; 32] = bs58::decode(latest["value"]["blockhash"].as_str().unwrap())
        .into_vec()
        .unwrap()
        .try_into()
        .unwrap();
    let message = solana_message::Message::new_with_blockhash(
        ixs,
        Some(&pk(signers[0])),
        &solana_hash::Hash::new_from_array(hash),
    );
    let bytes = message.serialize();
    let n = message.header.num_required_signatures as usize;
    let mut raw = vec![n as u8];
    for k in &message.account_keys[..n] {
        raw.extend_from_slice(&signers.iter().find(|s| pk(s) == *k).unwrap().sign(&bytes).to_bytes());
    }
    raw.extend_from_slice(&bytes);
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
    let sig = rpc(
        client,
        url,
        "sendTransaction",
        json!([b64, { "encoding": "base64", "preflightCommitment": "confirmed" }]),
    )
    .await;
    confirmed(client, url, sig.as_str().unwrap()).await;
}

async fn airdrop(client: &reqwest::Client, url: &str, to: &str, lamports: u64) {
    let sig = rpc(client, url, "requestAirdrop", json!([to, lamports])).await;
    confirmed(client, url, sig.as_str().unwrap()).await;
}

fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn write_private(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[tokio::main]
async fn main() {
    let transfers: usize = std::env::var("SOL_TRANSFERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let root = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/solana/bin/solana-test-validator");
    assert!(bin.exists(), "{} is missing: run scripts/setup", bin.display());
    let rpc_port = free_port();
    let base = 20_000 + (std::process::id() % 400) as u16 * 100 + 50;
    let _validator = Killed(
        Command::new(&bin)
            .args([
                "--ledger",
                root.path().join("ledger").to_str().unwrap(),
                "--reset",
                "--quiet",
            ])
            .args(["--bind-address", "127.0.0.1", "--rpc-port", &rpc_port.to_string()])
            .args([
                "--faucet-port",
                &free_port().to_string(),
                "--gossip-port",
                &free_port().to_string(),
            ])
            .args(["--dynamic-port-range", &format!("{}-{}", base, base + 40)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let sol = format!("http://127.0.0.1:{rpc_port}");
    loop {
        let body = json!({ "jsonrpc": "2.0", "id": 1, "method": "getSlot", "params": [{ "commitment": "confirmed" }] });
        if let Ok(r) = client.post(&sol).json(&body).send().await
            && let Ok(v) = r.json::<Value>().await
            && v["result"].as_u64().is_some_and(|s| s > 0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The daemon, a wallet with 100 SOL and an INSTANT policy, a mint the wallet holds.
    let mint = key();
    let data = root.path().join("data");
    std::fs::DirBuilder::new().mode(0o700).create(&data).unwrap();
    let port = free_port();
    write_private(
        &data.join("config.toml"),
        &format!(
            "[server]\nbind = \"127.0.0.1:{port}\"\n[keystore]\nargon2_memory_kib = 256\nargon2_iterations = 1\nargon2_parallelism = 1\n[log]\nlevel = \"warn\"\n[autostop]\nburst_requests = 0\n[transfers]\nconfirm_wait_seconds = 30\n[chains.sol]\nkind = \"solana\"\nrpc_url = \"{sol}\"\n[prices.native]\nSOL = \"100\"\n[prices.tokens]\n\"sol:{}\" = \"1\"\n",
            pk(&mint)
        ),
    );
    let bursar = |args: &[&str]| {
        let bin = std::env::var_os("SOL_BURSAR").unwrap_or_else(|| env!("CARGO_BIN_EXE_bursar").into());
        let mut c = Command::new(bin);
        c.args(args)
            .env("BURSAR_DATA_DIR", &data)
            .env("BURSAR_URL", format!("http://127.0.0.1:{port}"));
        c
    };
    assert!(
        bursar(&["init", "--auto-provision"])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    );
    let daemon = Killed(
        bursar(&["start"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}");
    while client.get(format!("{url}/health")).send().await.is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let master = std::fs::read_to_string(data.join("recovery.key")).unwrap();
    let post = |path: &str, body: Value| {
        let request = client
            .post(format!("{url}{path}"))
            .header("x-master-password", master.trim())
            .json(&body)
            .send();
        async move { request.await.unwrap().json::<Value>().await.unwrap() }
    };
    let wallet = post("/v1/wallets", json!({ "name": "bench", "chain": "sol" })).await;
    let wid = wallet["id"].as_str().unwrap().to_owned();
    let address: Pubkey = wallet["address"].as_str().unwrap().parse().unwrap();
    airdrop(&client, &sol, &address.to_string(), 100_000_000_000).await;
    let program = spl_token_interface::ID;
    let payer = key();
    airdrop(&client, &sol, &pk(&payer).to_string(), 2_000_000_000).await;
    let rent = rpc(&client, &sol, "getMinimumBalanceForRentExemption", json!([82]))
        .await
        .as_u64()
        .unwrap();
    use spl_associated_token_account_interface::{
        address::get_associated_token_address_with_program_id as ata,
        instruction::create_associated_token_account_idempotent as create_ata,
    };
    let recipient = key();
    let to = pk(&recipient);
    airdrop(&client, &sol, &to.to_string(), 1_000_000_000).await;
    send_ixs(
        &client,
        &sol,
        &[
            solana_system_interface::instruction::create_account(&pk(&payer), &pk(&mint), rent, 82, &program),
            spl_token_interface::instruction::initialize_mint2(&program, &pk(&mint), &pk(&payer), None, 6).unwrap(),
            create_ata(&pk(&payer), &address, &pk(&mint), &program),
            create_ata(&pk(&payer), &to, &pk(&mint), &program),
            spl_token_interface::instruction::mint_to(
                &program,
                &pk(&mint),
                &ata(&address, &pk(&mint), &program),
                &pk(&payer),
                &[],
                1_000_000_000_000,
            )
            .unwrap(),
        ],
        &[&payer, &mint],
    )
    .await;
    let mint = pk(&mint).to_string();
    post(
        "/v1/policies",
        json!({ "walletId": wid, "type": "SPENDING_LIMIT", "rules": { "instant_max": "10", "instant_max_usd": "1000000" } }),
    )
    .await;
    post(
        "/v1/policies",
        json!({ "walletId": wid, "type": "ALLOWED_TOKENS", "rules": { "tokens": [mint, "native"] } }),
    )
    .await;
    let session = post("/v1/sessions", json!({ "walletId": wid })).await;
    let auth = format!("Bearer {}", session["token"].as_str().unwrap());

    // The validator's own pace: slots produced over five seconds.
    let slot = |c: &'static str| {
        let (client, sol) = (client.clone(), sol.clone());
        async move {
            rpc(&client, &sol, "getSlot", json!([{ "commitment": c }]))
                .await
                .as_u64()
                .unwrap()
        }
    };
    let pace = || async {
        let (s0, t0) = (slot("processed").await, Instant::now());
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (s1, dt) = (slot("processed").await, t0.elapsed());
        println!(
            "validator slot time: {:.0} ms ({} slots in {:.1} s)",
            dt.as_secs_f64() * 1000.0 / (s1 - s0).max(1) as f64,
            s1 - s0,
            dt.as_secs_f64()
        );
    };
    pace().await;

    let pid = daemon.0.id();
    for (label, token) in [("SOL", None), ("SPL Token", Some(mint.clone()))] {
        let cpu0 = cpu_time(pid);
        let mut lat = Vec::new();
        for i in 0..transfers {
            let mut body = json!({ "to": to.to_string(), "amount": "0.001", "idempotencyKey": format!("{label}-{i}") });
            if let Some(t) = &token {
                body["token"] = json!(t);
            }
            let t0 = Instant::now();
            let mut tx: Value = client
                .post(format!("{url}/v1/transactions/send"))
                .header("authorization", &auth)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            while tx["status"] != "CONFIRMED" {
                assert!(matches!(tx["status"].as_str(), Some("SIGNED" | "SUBMITTED")), "{tx}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                tx = client
                    .get(format!("{url}/v1/transactions/{}", tx["id"].as_str().unwrap()))
                    .header("authorization", &auth)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
            }
            lat.push(t0.elapsed());
        }
        let cpu = cpu_time(pid) - cpu0;
        lat.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{label} transfer, send → CONFIRMED (confirmed commitment), 1 client: p50 {:.0} ms, p95 {:.0} ms ({} transfers); daemon CPU per transfer {:.2} ms",
            ms(pct(&lat, 0.5)),
            ms(pct(&lat, 0.95)),
            lat.len(),
            cpu.as_secs_f64() * 1e3 / lat.len() as f64
        );
    }
    pace().await;
}

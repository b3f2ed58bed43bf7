//! End-to-end load tool: the real release `bursar` binary against a real anvil node.
//! Measures cold start to the first healthy answer (with the recommended Argon2id cost and
//! with a cheap one, to separate the deliberate KDF from everything else), idle RSS, and
//! REST latency (p50/p95/p99) and throughput for a session-authenticated read without
//! chain access (`/v1/wallet/address`) and with it (`/v1/wallet/balance`).
//!
//! Run: `cargo bench --bench e2e` (needs `scripts/setup` for anvil). Env knobs:
//! `E2E_REQUESTS` (default 2000), `E2E_CONCURRENCY` (default 16).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bursar(data: &Path, url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bursar"));
    cmd.env("BURSAR_DATA_DIR", data)
        .env("BURSAR_URL", url)
        .env_remove("BURSAR_MASTER_PASSWORD")
        .env_remove("BURSAR_MASTER_PASSWORD_FILE");
    cmd
}

fn write_private(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn init(root: &Path, anvil_url: &str, kdf: (u32, u32, u32)) -> (PathBuf, String, u16) {
    let port = free_port();
    let data = root.join(format!("data-{port}"));
    std::fs::DirBuilder::new().mode(0o700).create(&data).unwrap();
    let port = free_port();
    write_private(
        &data.join("config.toml"),
        &format!(
            "[server]\nbind = \"127.0.0.1:{port}\"\n[keystore]\nargon2_memory_kib = {}\nargon2_iterations = {}\nargon2_parallelism = {}\n[log]\nlevel = \"warn\"\n[chains.anvil]\nkind = \"evm\"\nrpc_url = \"{anvil_url}\"\nchain_id = 31337\n",
            kdf.0, kdf.1, kdf.2
        ),
    );
    let url = format!("http://127.0.0.1:{port}");
    assert!(
        bursar(&data, &url)
            .args(["init", "--auto-provision"])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    );
    (data, url, port)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn start(data: &Path, url: &str, client: &reqwest::Client) -> (Killed, Duration) {
    let t0 = Instant::now();
    let child = Killed(
        bursar(data, url)
            .arg("start")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    loop {
        if let Ok(r) = client.get(format!("{url}/health")).send().await
            && r.status().is_success()
        {
            return (child, t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn load(
    client: &reqwest::Client,
    url: String,
    token: &str,
    requests: usize,
    concurrency: usize,
) -> (Vec<Duration>, Duration) {
    let t0 = Instant::now();
    let per_task = requests / concurrency;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, auth) = (client.clone(), url.clone(), format!("Bearer {token}"));
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_task);
            for _ in 0..per_task {
                let t = Instant::now();
                let res = client.get(&url).header("authorization", &auth).send().await.unwrap();
                assert!(res.status().is_success(), "{}", res.status());
                res.bytes().await.unwrap();
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let wall = t0.elapsed();
    all.sort();
    (all, wall)
}

fn report(name: &str, lat: &[Duration], wall: Duration) {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{name:<40} n={:<6} p50={:>8.0}µs p95={:>8.0}µs p99={:>8.0}µs  {:>8.0} req/s",
        lat.len(),
        us(pct(lat, 0.50)),
        us(pct(lat, 0.95)),
        us(pct(lat, 0.99)),
        lat.len() as f64 / wall.as_secs_f64()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; under `cargo test` the tool runs as a quick smoke test.
    let full = std::env::args().any(|a| a == "--bench");
    let knob = |k: &str, full_default: usize, smoke: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if full { full_default } else { smoke })
    };
    let (requests, concurrency, starts) = (
        knob("E2E_REQUESTS", 2000, 64),
        knob("E2E_CONCURRENCY", 16, 4),
        knob("E2E_STARTS", 5, 1),
    );
    let anvil_bin =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    let anvil_port = free_port();
    let _anvil = Killed(
        Command::new(&anvil_bin)
            .args(["--host", "127.0.0.1", "--port", &anvil_port.to_string(), "--silent"])
            .spawn()
            .expect("anvil missing: run scripts/setup"),
    );
    let anvil_url = format!("http://127.0.0.1:{anvil_port}");
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    while client
        .post(&anvil_url)
        .json(&serde_json::json!({"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}))
        .send()
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let root = tempfile::tempdir().unwrap();

    println!(
        "bursar e2e ({} build), anvil {anvil_url}",
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
    for (label, kdf) in [
        ("recommended KDF (64 MiB, t=3, p=4)", (65536, 3, 4)),
        ("cheap KDF (256 KiB, t=1, p=1)", (256, 1, 1)),
    ] {
        let (data, url, _) = init(root.path(), &anvil_url, kdf);
        let mut times = Vec::new();
        for _ in 0..starts {
            let (child, took) = start(&data, &url, &client).await;
            times.push(took);
            drop(child);
        }
        println!(
            "cold start to first /health, {label:<36} median {:>6.1} ms ({} runs)",
            median(times.clone()).as_secs_f64() * 1e3,
            times.len()
        );
    }

    let (data, url, _) = init(root.path(), &anvil_url, (65536, 3, 4));
    let (daemon, _) = start(&data, &url, &client).await;
    let pid = daemon.0.id();
    let master = std::fs::read_to_string(data.join("recovery.key")).unwrap();
    let wallet: serde_json::Value = client
        .post(format!("{url}/v1/wallets"))
        .header("x-master-password", &master)
        .json(&serde_json::json!({"name": "bench", "chain": "anvil"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session: serde_json::Value = client
        .post(format!("{url}/v1/sessions"))
        .header("x-master-password", &master)
        .json(&serde_json::json!({"walletId": wallet["id"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = session["token"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!(
        "idle RSS after start + 1 wallet + 1 session: {:.1} MiB",
        rss_kib(pid) as f64 / 1024.0
    );

    for (path, name) in [
        ("/v1/wallet/address", "address (session verify + store read)"),
        ("/v1/wallet/balance", "balance (session verify + anvil RPC)"),
    ] {
        let (lat, wall) = load(&client, format!("{url}{path}"), &token, requests / 4, 1).await;
        report(&format!("{name}, c=1"), &lat, wall);
        let (lat, wall) = load(&client, format!("{url}{path}"), &token, requests, concurrency).await;
        report(&format!("{name}, c={concurrency}"), &lat, wall);
    }

    // Transfers: INSTANT under a SPENDING_LIMIT, each request answered once CONFIRMED on anvil
    // (policy → reserve → sign → outbox → broadcast → receipt, all audited and flushed).
    let wid = wallet["id"].as_str().unwrap();
    let address = wallet["address"].as_str().unwrap();
    client
        .post(format!("{url}/v1/policies"))
        .header("x-master-password", &master)
        .json(&serde_json::json!({"walletId": wid, "type": "SPENDING_LIMIT", "rules": {"instant_max": "1"}}))
        .send()
        .await
        .unwrap();
    client
        .post(&anvil_url)
        .json(&serde_json::json!({"jsonrpc":"2.0","id":1,"method":"anvil_setBalance","params":[address, "0x3635C9ADC5DEA00000"]}))
        .send()
        .await
        .unwrap();
    let sends = (requests / 10).max(8);
    for (c, n) in [(1, sends / 2), (concurrency, sends)] {
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for worker in 0..c {
            let (client, url, auth) = (client.clone(), url.clone(), format!("Bearer {token}"));
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                for i in 0..n / c {
                    let body = serde_json::json!({
                        "to": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                        "amount": "0.0001",
                        "idempotencyKey": format!("bench-{c}-{worker}-{i}"),
                    });
                    let t = Instant::now();
                    let tx: serde_json::Value = client
                        .post(format!("{url}/v1/transactions/send"))
                        .header("authorization", &auth)
                        .json(&body)
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    assert_eq!(tx["status"], "CONFIRMED", "{tx}");
                    lat.push(t.elapsed());
                }
                lat
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort();
        report(&format!("send INSTANT → CONFIRMED, c={c}"), &all, t0.elapsed());
    }
    println!("RSS after load: {:.1} MiB", rss_kib(pid) as f64 / 1024.0);
}

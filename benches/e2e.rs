//! End-to-end load tool: the real release `bursar` binary against a real anvil node.
//! Measures cold start to the first healthy answer (with the recommended Argon2id cost and
//! with a cheap one, to separate the deliberate KDF from everything else), idle RSS, and
//! REST latency (p50/p95/p99) and throughput for a session-authenticated read without
//! chain access (`/v1/wallet/address`) and with it (`/v1/wallet/balance`), INSTANT transfers
//! answered once confirmed, and MCP through rmcp's client: initialize time of the real
//! `bursar mcp` over stdio, the `tools/list` size, `get_balance` and INSTANT `transfer`
//! round trips over stdio and over the daemon's streamable HTTP `/mcp`, and the RSS of the
//! `bursar mcp` process.
//!
//! Run: `cargo bench --bench e2e` (needs `scripts/setup` for anvil). Env knobs:
//! `E2E_REQUESTS` (default 2000), `E2E_CONCURRENCY` (default 16), `E2E_STARTS` (default 5),
//! `E2E_BURSAR` (the binary to measure, e.g. an older commit's release build, for an A/B;
//! default this build's; the fake-chain rows then run only for this build's, unless
//! `E2E_ONLY=fake`), `E2E_ONLY=fake` (only the fake-chain rows, without anvil: the
//! daemon-cost profile; with `E2E_BURSAR`, that binary must be built with `fake-chain`).

use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use std::io::Write;
use std::os::fd::OwnedFd;
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
    // `E2E_BURSAR`: another build of the binary, for an A/B of two commits with one tool.
    let bin = std::env::var_os("E2E_BURSAR").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_bursar")), PathBuf::from);
    let mut cmd = Command::new(bin);
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
    let chain = format!("[chains.anvil]\nkind = \"evm\"\nrpc_url = \"{anvil_url}\"\nchain_id = 31337\n");
    init_with(root, &chain, kdf)
}

/// A data dir with `chain` (TOML) as its only extra configuration, initialised.
fn init_with(root: &Path, chain: &str, kdf: (u32, u32, u32)) -> (PathBuf, String, u16) {
    let port = free_port();
    let data = root.join(format!("data-{port}"));
    std::fs::DirBuilder::new().mode(0o700).create(&data).unwrap();
    let port = free_port();
    write_private(
        &data.join("config.toml"),
        &format!(
            "[server]\nbind = \"127.0.0.1:{port}\"\n[keystore]\nargon2_memory_kib = {}\nargon2_iterations = {}\nargon2_parallelism = {}\n[log]\nlevel = \"warn\"\n[autostop]\nburst_requests = 0\n{chain}",
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

const RECIPIENT: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

type McpClient = RunningService<RoleClient, ()>;

/// Spawns the real `bursar mcp` (stdio) and initializes an rmcp client with it; returns the
/// process, the client and the time from spawn to an initialized session.
async fn mcp_stdio(data: &Path, url: &str, token_file: &Path) -> (Killed, McpClient, Duration) {
    let t0 = Instant::now();
    let mut child = bursar(data, url)
        .arg("mcp")
        .env("BURSAR_SESSION_TOKEN_FILE", token_file)
        .env_remove("BURSAR_SESSION_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdin = tokio::net::unix::pipe::Sender::from_owned_fd(OwnedFd::from(child.stdin.take().unwrap())).unwrap();
    let stdout = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(child.stdout.take().unwrap())).unwrap();
    let client = ().serve((stdout, stdin)).await.expect("MCP initialize over stdio");
    (Killed(child), client, t0.elapsed())
}

/// `n` sequential calls of one tool; each answer must be a structured, non-error result.
/// Returns the sorted latencies, the wall time and the answers that `ok` refuses.
async fn mcp_calls(
    client: &McpClient,
    n: usize,
    call: impl Fn(usize) -> CallToolRequestParams,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> (Vec<Duration>, Duration, Vec<serde_json::Value>) {
    let t0 = Instant::now();
    let mut lat = Vec::with_capacity(n);
    let mut refused = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        let res = client.call_tool(call(i)).await.expect("tools/call");
        lat.push(t.elapsed());
        assert_ne!(res.is_error, Some(true), "{res:?}");
        let answer = res.structured_content.expect("structured content");
        if !ok(&answer) {
            refused.push(answer);
        }
    }
    let wall = t0.elapsed();
    lat.sort();
    (lat, wall, refused)
}

/// MCP round trips of `get_balance` and of INSTANT transfers. Returns how many transfers did
/// not end CONFIRMED; each is printed with the chain's receipt for its hash.
async fn mcp_load(
    client: &McpClient,
    transport: &str,
    reads: usize,
    sends: usize,
    anvil: (&reqwest::Client, &str),
) -> usize {
    let balance = |_| CallToolRequestParams::new("get_balance").with_arguments(Default::default());
    let (lat, wall, wrong) = mcp_calls(client, reads, balance, |b| b["symbol"] == "ETH").await;
    assert!(wrong.is_empty(), "{wrong:?}");
    report(&format!("MCP {transport} get_balance, c=1"), &lat, wall);
    let transfer = |i| {
        let args = serde_json::json!({
            "to": RECIPIENT, "amount": "0.0001", "idempotency_key": format!("mcp-{transport}-{i}").replace(' ', "-"),
        });
        let serde_json::Value::Object(args) = args else {
            unreachable!()
        };
        CallToolRequestParams::new("transfer").with_arguments(args)
    };
    let (lat, wall, failed) = mcp_calls(client, sends, transfer, |t| t["status"] == "CONFIRMED").await;
    report(
        &format!("MCP {transport} transfer INSTANT → CONFIRMED, c=1"),
        &lat,
        wall,
    );
    for tx in &failed {
        let rpc =
            serde_json::json!({"jsonrpc":"2.0","id":1,"method":"eth_getTransactionReceipt","params":[tx["hash"]]});
        let receipt: serde_json::Value = anvil
            .0
            .post(anvil.1)
            .json(&rpc)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        println!(
            "  NOT CONFIRMED: {} nonce {} status {} error {}; the chain's receipt for its hash: {}",
            tx["idempotencyKey"], tx["nonce"], tx["status"], tx["error"], receipt["result"]
        );
    }
    failed.len()
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
    #[cfg(feature = "fake-chain")]
    if std::env::var("E2E_ONLY").as_deref() == Ok("fake") {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let root = tempfile::tempdir().unwrap();
        fake_chain_load(root.path(), &client, requests, concurrency).await;
        return;
    }
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

    // MCP through rmcp's client, on the same wallet and policy.
    let token_file = data.join("agent.token");
    write_private(&token_file, &token);
    let mut inits = Vec::new();
    for _ in 0..starts {
        let (child, mcp, took) = mcp_stdio(&data, &url, &token_file).await;
        inits.push(took);
        mcp.cancel().await.unwrap();
        drop(child);
    }
    println!(
        "MCP initialize over stdio (spawn `bursar mcp` → initialized) median {:>6.1} ms ({} runs)",
        median(inits).as_secs_f64() * 1e3,
        starts
    );
    let (mcp_child, mcp, _) = mcp_stdio(&data, &url, &token_file).await;
    let tools = mcp.list_tools(None).await.unwrap();
    println!(
        "MCP tools/list result: {} tools, {} bytes of JSON",
        tools.tools.len(),
        serde_json::to_vec(&tools).unwrap().len()
    );
    let (reads, mcp_sends) = ((requests / 4).max(8), (requests / 20).max(4));
    let mut not_confirmed = mcp_load(&mcp, "stdio", reads, mcp_sends, (&client, &anvil_url)).await;
    println!(
        "RSS of `bursar mcp` after its load: {:.1} MiB",
        rss_kib(mcp_child.0.id()) as f64 / 1024.0
    );
    mcp.cancel().await.unwrap();
    drop(mcp_child);

    // Over HTTP: rmcp's default client opens a connection per POST (no idle pool); a client
    // that keeps connections alive shows what the server's socket options cost.
    let fresh = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    for (label, http) in [("HTTP", fresh), ("HTTP keep-alive", client.clone())] {
        let config = StreamableHttpClientTransportConfig::with_uri(format!("{url}/mcp")).auth_header(token.clone());
        let t0 = Instant::now();
        let mcp =
            ().serve(StreamableHttpClientTransport::with_client(http, config))
                .await
                .expect("MCP initialize over HTTP");
        println!(
            "MCP initialize over {label} /mcp {:>6.1} ms",
            t0.elapsed().as_secs_f64() * 1e3
        );
        not_confirmed += mcp_load(&mcp, label, reads, mcp_sends, (&client, &anvil_url)).await;
        mcp.cancel().await.unwrap();
    }
    println!("daemon RSS after all load: {:.1} MiB", rss_kib(pid) as f64 / 1024.0);
    // Every transfer here is within policy on a healthy local chain: one that does not end
    // CONFIRMED is a daemon bug (as "nonce too low" on a re-broadcast once was).
    assert_eq!(
        not_confirmed, 0,
        "MCP transfers that did not end CONFIRMED (printed above)"
    );
    drop(daemon);

    // A binary from `E2E_BURSAR` may be built without the fake chain.
    #[cfg(feature = "fake-chain")]
    if std::env::var_os("E2E_BURSAR").is_none() {
        fake_chain_load(root.path(), &client, requests, concurrency).await;
    }
}

/// Bytes the process has sent to storage so far (`write_bytes` of `/proc/<pid>/io`): unlike
/// CPU time, the same on a loaded machine.
fn storage_writes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// CPU time (user + system) the process has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10) // CLK_TCK = 100 on Linux
}

/// The daemon's own cost per INSTANT transfer, with the chain taken out: the in-memory fake
/// chain (`rpc_url = "fake:…"`, mined at broadcast) in a build with the `fake-chain` feature
/// (`cargo bench --bench e2e --features fake-chain`). 16 wallets, one session and one client
/// each, every request answered once CONFIRMED; the daemon's CPU time is read from /proc
/// before and after.
#[cfg(feature = "fake-chain")]
async fn fake_chain_load(root: &Path, client: &reqwest::Client, requests: usize, concurrency: usize) {
    let chain = "[chains.fake]\nkind = \"evm\"\nrpc_url = \"fake:bench\"\nchain_id = 1337\n";
    let (data, url, _) = init_with(root, chain, (256, 1, 1));
    let (daemon, _) = start(&data, &url, client).await;
    let pid = daemon.0.id();
    let master = std::fs::read_to_string(data.join("recovery.key")).unwrap();
    let post = |path: &str, body: serde_json::Value| {
        let request = client
            .post(format!("{url}{path}"))
            .header("x-master-password", &master)
            .json(&body)
            .send();
        async move { request.await.unwrap().json::<serde_json::Value>().await.unwrap() }
    };
    let mut tokens = Vec::new();
    for i in 0..concurrency {
        let wallet = post(
            "/v1/wallets",
            serde_json::json!({"name": format!("w{i}"), "chain": "fake"}),
        )
        .await;
        let wid = wallet["id"].as_str().unwrap().to_owned();
        post(
            "/v1/policies",
            serde_json::json!({"walletId": wid, "type": "SPENDING_LIMIT", "rules": {"instant_max": "1"}}),
        )
        .await;
        let session = post("/v1/sessions", serde_json::json!({"walletId": wid})).await;
        tokens.push(session["token"].as_str().unwrap().to_owned());
    }
    // fsyncs: the store's flush counter from /metrics (load-independent, unlike CPU time);
    // NaN for a build without it (an older commit's, under `E2E_BURSAR`).
    let flushes = || {
        let request = client
            .get(format!("{url}/metrics"))
            .header("x-master-password", &master)
            .send();
        async move {
            let text = request.await.unwrap().text().await.unwrap();
            text.lines()
                .find_map(|l| l.strip_prefix("bursar_store_flushes_total "))
                .map_or(f64::NAN, |v| v.parse().unwrap())
        }
    };
    let sends = (requests * 2).max(concurrency * 4);
    for (label, clients) in [("1 wallet", 1), ("wallets", concurrency)] {
        let n = if clients == 1 { sends / 4 } else { sends };
        let flushes0 = flushes().await;
        let written0 = storage_writes(pid);
        let cpu0 = cpu_time(pid);
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for (w, token) in tokens.iter().take(clients).enumerate() {
            let (client, url, auth) = (client.clone(), url.clone(), format!("Bearer {token}"));
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                for i in 0..n / clients {
                    let body = serde_json::json!({
                        "to": RECIPIENT, "amount": "0.0001", "idempotencyKey": format!("fake-{clients}-{w}-{i}"),
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
        let wall = t0.elapsed();
        let cpu = cpu_time(pid) - cpu0;
        all.sort();
        report(&format!("fake chain: send INSTANT, {clients} {label}"), &all, wall);
        println!(
            "fake chain: daemon CPU per transfer ({clients} {label}): {:.3} ms ({} transfers, {:.2} s CPU)",
            cpu.as_secs_f64() * 1e3 / all.len() as f64,
            all.len(),
            cpu.as_secs_f64()
        );
        println!(
            "fake chain: store flushes (fsyncs) per transfer ({clients} {label}): {:.2}; bytes written to storage per transfer: {:.0}",
            (flushes().await - flushes0) / all.len() as f64,
            (storage_writes(pid) - written0) as f64 / all.len() as f64
        );
    }
    // The fake chain runs inside the daemon: its signature check (an ECDSA public-key
    // recovery, as a node does) is chain work counted in the CPU above. Timed here alone.
    let key = k256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
    let prehash = [9u8; 32];
    let (sig, recid) = key.sign_prehash_recoverable(&prehash).unwrap();
    let sig = alloy_primitives::Signature::from_signature_and_parity(sig, recid.is_y_odd());
    let t0 = Instant::now();
    for _ in 0..500 {
        std::hint::black_box(sig.recover_address_from_prehash(&prehash.into()).unwrap());
    }
    println!(
        "fake chain: of which its own signature recovery: {:.3} ms per transfer",
        t0.elapsed().as_secs_f64() * 1e3 / 500.0
    );
}

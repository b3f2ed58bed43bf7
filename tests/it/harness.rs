//! Test harness: free ports, a real anvil node, the real `bursar` binary on a temp data
//! dir, and JSON-RPC / REST helpers. Every child process is killed on drop (also on panic).

use alloy::primitives::{Address, U256};
use alloy::sol_types::{SolCall, SolValue};
use serde_json::{Value, json};
use std::io::{BufRead, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const ANVIL_KEY0_ADDR: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

pub fn bursar_bin() -> &'static str {
    env!("CARGO_BIN_EXE_bursar")
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A loopback port nothing listens on (bind 0, read it, release it): only for addresses that
/// must refuse connections (a dead sink, a node that is down). Never for a server a test starts:
/// the port is free only until someone else takes it. Servers bind port 0 themselves and say
/// which port they got (see [`Anvil::start`], [`Daemon::spawn`]).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `http://127.0.0.1:<port>` where nothing listens (see [`free_port`]).
pub fn dead_url() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn anvil_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BURSAR_TEST_ANVIL") {
        return PathBuf::from(p);
    }
    let local = repo_root().join(".tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    if local.exists() { local } else { PathBuf::from("anvil") }
}

/// A real anvil node on a port it picked itself (`--port 0`, read from its banner).
pub struct Anvil {
    child: Child,
    pub url: String,
}

/// Reads `stdout` to its end on a thread (a child never blocks on a full pipe) and sends
/// the first port that `find` sees in a line.
fn watch_stdout(stdout: ChildStdout, find: fn(&str) -> Option<u16>) -> mpsc::Receiver<u16> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !sent && let Some(port) = find(&line) {
                sent = tx.send(port).is_ok();
            }
        }
    });
    rx
}

/// The port at the end of `<prefix>…:<port>` in `line`, if the line has `prefix`.
fn port_after(line: &str, prefix: &str) -> Option<u16> {
    let rest = &line[line.find(prefix)? + prefix.len()..];
    let digits: String = rest[rest.rfind(':')? + 1..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok().filter(|p| *p != 0)
}

impl Anvil {
    pub async fn start() -> Self {
        let mut child = Command::new(anvil_bin())
            .args(["--host", "127.0.0.1", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("anvil not found: run scripts/setup (installs it into .tools/) or set BURSAR_TEST_ANVIL");
        // anvil 1.7 prints `Listening on 127.0.0.1:<port>` once bound (not with --silent).
        let ports = watch_stdout(child.stdout.take().unwrap(), |l| port_after(l, "Listening on "));
        let deadline = Instant::now() + Duration::from_secs(15);
        let port = loop {
            if let Ok(port) = ports.try_recv() {
                break port;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("anvil exited before listening: {status}");
            }
            assert!(Instant::now() < deadline, "anvil never said where it listens");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let anvil = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        loop {
            if anvil.try_rpc("eth_chainId", json!([])).await.is_ok() {
                return anvil;
            }
            assert!(Instant::now() < deadline, "anvil did not start");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    async fn try_rpc(&self, method: &str, params: Value) -> Result<Value, String> {
        let res = http()
            .post(&self.url)
            .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = res.json().await.map_err(|e| e.to_string())?;
        match body.get("error") {
            Some(err) => Err(err.to_string()),
            None => Ok(body["result"].clone()),
        }
    }

    pub async fn rpc(&self, method: &str, params: Value) -> Value {
        self.try_rpc(method, params)
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// Sends a transaction from anvil's unlocked account 0 and waits for its receipt.
    pub async fn send_from_dev(&self, tx: Value) -> Value {
        let mut tx = tx;
        tx["from"] = json!(ANVIL_KEY0_ADDR);
        let hash = self.rpc("eth_sendTransaction", json!([tx])).await;
        // Automine includes it at once, but a loaded node may serve the receipt a moment later.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let receipt = self.rpc("eth_getTransactionReceipt", json!([hash])).await;
            if !receipt.is_null() || Instant::now() > deadline {
                assert_eq!(receipt["status"], "0x1", "dev transaction failed: {receipt}");
                return receipt;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn fund(&self, to: &str, wei: U256) {
        self.send_from_dev(json!({ "to": to, "value": format!("{wei:#x}") }))
            .await;
    }

    /// Deploys the fixture ERC-20 with the whole supply on account 0.
    pub async fn deploy_token(&self, name: &str, symbol: &str, decimals: u8, supply: U256) -> String {
        let artifact: Value = serde_json::from_str(include_str!("../fixtures/erc20/TestToken.json")).unwrap();
        let code = artifact["bytecode"].as_str().unwrap();
        let args = (name.to_owned(), symbol.to_owned(), U256::from(decimals), supply).abi_encode_params();
        let data = format!("{code}{}", hex::encode(args));
        let receipt = self.send_from_dev(json!({ "data": data, "gas": "0x300000" })).await;
        receipt["contractAddress"].as_str().unwrap().to_owned()
    }

    /// Deploys a contract whose runtime code is `runtime_hex` (under 256 bytes, no `0x`),
    /// e.g. `"00"` (STOP) or `"60006000fd"` (always reverts). Returns its address.
    pub async fn deploy_runtime(&self, runtime_hex: &str) -> String {
        let len = runtime_hex.len() / 2;
        assert!(len > 0 && len < 256, "runtime code of {len} bytes");
        // PUSH1 len PUSH1 12 PUSH1 0 CODECOPY PUSH1 len PUSH1 0 RETURN, then the runtime code.
        let init = format!(
            "0x60{len:02x}600c600039{}{runtime_hex}",
            format_args!("60{len:02x}6000f3")
        );
        let receipt = self.send_from_dev(json!({ "data": init })).await;
        receipt["contractAddress"].as_str().unwrap().to_owned()
    }

    pub async fn transfer_token(&self, token: &str, to: &str, amount: U256) {
        alloy::sol! { function transfer(address to, uint256 value) external returns (bool); }
        let data = transferCall {
            to: to.parse::<Address>().unwrap(),
            value: amount,
        }
        .abi_encode();
        self.send_from_dev(json!({ "to": token, "data": format!("0x{}", hex::encode(data)) }))
            .await;
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Options for a test daemon.
#[derive(Clone)]
pub struct Opts {
    pub anvil_url: Option<String>,
    pub chain_id: u64,
    pub log_level: &'static str,
    pub master_failures_per_minute: u32,
    pub extra_config: String,
    /// The `localsol` chain's RPC URL (a dead one unless a test starts a validator).
    pub solana_url: Option<String>,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            anvil_url: None,
            chain_id: 31337,
            log_level: "info",
            master_failures_per_minute: 1000,
            extra_config: String::new(),
            solana_url: None,
        }
    }
}

/// A real `bursar` daemon on a temp data dir.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    /// `http://127.0.0.1:<port>` once the daemon has listened; before the first start, a port
    /// nothing listens on (so a CLI command gets "cannot reach", never another daemon).
    pub url: String,
    /// The port the daemon bound (it binds port 0 and prints the address it got); kept across
    /// restarts.
    pub port: u16,
    /// Whether `port` is the daemon's own (learned from a start) or the placeholder.
    bound: bool,
    pub password: String,
    /// Extra environment for every command of this daemon (e.g. `BURSAR_MASTER_PASSWORD_FILE`).
    pub env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Daemon {
    pub async fn start(opts: Opts) -> Self {
        let mut daemon = Self::init(opts);
        daemon.spawn().await;
        daemon
    }

    pub async fn with_anvil(anvil: &Anvil) -> Self {
        Self::start(Opts {
            anvil_url: Some(anvil.url.clone()),
            ..Opts::default()
        })
        .await
    }

    /// `bursar init --auto-provision` on a fresh dir with cheap KDF parameters.
    pub fn init(opts: Opts) -> Self {
        let mut daemon = Self::configure(opts);
        let out = daemon.cli(&["init", "--auto-provision"]).output().unwrap();
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        daemon.password = std::fs::read_to_string(daemon.data_dir().join("recovery.key")).unwrap();
        daemon
    }

    /// A fresh data dir (0700) holding only `config.toml`: `bursar init` not run yet.
    pub fn configure(opts: Opts) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::DirBuilder::new().mode(0o700).create(&data).unwrap();
        // The daemon binds port 0 and prints the address it got: no port is picked here and
        // released for someone else to take before the daemon binds it.
        let port = free_port();
        let mut config = format!(
            "[server]\nbind = \"127.0.0.1:0\"\nmaster_auth_failures_per_minute = {}\n\n[keystore]\nargon2_memory_kib = 256\nargon2_iterations = 1\nargon2_parallelism = 1\n\n[log]\nlevel = \"{}\"\n",
            opts.master_failures_per_minute, opts.log_level
        );
        let rpc = opts
            .anvil_url
            .clone()
            .unwrap_or_else(|| format!("http://127.0.0.1:{}", free_port()));
        let sol = opts
            .solana_url
            .clone()
            .unwrap_or_else(|| "http://127.0.0.1:1".to_owned());
        config += &format!(
            "\n[chains.anvil]\nkind = \"evm\"\nrpc_url = \"{rpc}\"\nchain_id = {}\nnative_symbol = \"ETH\"\n\n[chains.localsol]\nkind = \"solana\"\nrpc_url = \"{sol}\"\n",
            opts.chain_id
        );
        if !opts.extra_config.contains("[autostop]") {
            // Tests fire bursts and denials on purpose; the AutoStop tests turn it back on.
            config += "\n[autostop]\nconsecutive_failures = 0\nburst_requests = 0\n";
        }
        config += &opts.extra_config;
        write_private(&data.join("config.toml"), &config);
        Self {
            dir,
            url: format!("http://127.0.0.1:{port}"),
            port,
            bound: false,
            password: String::new(),
            env: Vec::new(),
            child: None,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `$XDG_CONFIG_HOME` of every command: agent token files land in `<it>/bursar-agent`.
    pub fn config_home(&self) -> PathBuf {
        self.dir.path().join("config-home")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    /// A `bursar` command for this daemon with a clean environment.
    pub fn cli(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bursar_bin());
        for (k, _) in std::env::vars() {
            if k.starts_with("BURSAR_") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        // Agent token files default to $XDG_CONFIG_HOME/bursar-agent: never the real home's.
        cmd.env("BURSAR_DATA_DIR", self.data_dir())
            .env("BURSAR_URL", &self.url)
            .env("XDG_CONFIG_HOME", self.config_home())
            .args(args)
            .stdin(Stdio::null());
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Starts `bursar start`, logging to `daemon.log`, and waits for `/health`.
    pub async fn spawn(&mut self) {
        if let Err(err) = self.try_spawn().await {
            panic!("daemon exited with {:?}: {}", err.0, err.1);
        }
    }

    /// Like [`Daemon::spawn`], but a daemon that exits (e.g. wrong password) is an `Err`
    /// with its exit code and log.
    pub async fn try_spawn(&mut self) -> Result<(), (Option<i32>, String)> {
        self.try_spawn_args(&["start"]).await
    }

    /// [`Daemon::try_spawn`] with other arguments, e.g. `start --bind 0.0.0.0:0`.
    ///
    /// The first start binds port 0 (`config.toml`, or the `--bind` given) and the port is read
    /// from the daemon's `bursar listening on http://…` line; later starts ask for the same
    /// port again (`BURSAR_SERVER_BIND`), so URLs a test holds keep working across restarts.
    /// Should someone have taken it meanwhile, the daemon is started once more on port 0.
    pub async fn try_spawn_args(&mut self, args: &[&str]) -> Result<(), (Option<i32>, String)> {
        let rebind =
            self.bound && !args.contains(&"--bind") && !self.env.iter().any(|(k, _)| k == "BURSAR_SERVER_BIND");
        let logged = self.logs().len();
        let first = self.start_once(args, rebind.then_some(self.port)).await;
        match first {
            Err((_, log)) if rebind && log.get(logged..).is_some_and(|l| l.contains("cannot listen on")) => {
                eprintln!(
                    "port {} was taken while the daemon was down; starting on port 0",
                    self.port
                );
                self.start_once(args, None).await
            }
            other => other,
        }
    }

    async fn start_once(&mut self, args: &[&str], port: Option<u16>) -> Result<(), (Option<i32>, String)> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut cmd = self.cli(args);
        if let Some(port) = port {
            cmd.env("BURSAR_SERVER_BIND", format!("127.0.0.1:{port}"));
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(log).spawn().unwrap();
        let ports = watch_stdout(child.stdout.take().unwrap(), |l| {
            if l.contains("listening") {
                port_after(l, "http://")
            } else {
                None
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut listening = false;
        loop {
            if !listening && let Ok(port) = ports.try_recv() {
                self.port = port;
                self.url = format!("http://127.0.0.1:{port}");
                self.bound = true;
                listening = true;
            }
            if listening
                && let Ok(res) = http().get(format!("{}/health", self.url)).send().await
                && res.status().is_success()
            {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Err((status.code(), self.logs()));
            }
            assert!(Instant::now() < deadline, "daemon did not become healthy");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The daemon's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, no cleanup: a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a graceful exit; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("daemon running");
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().unwrap()
    }

    /// Waits for a daemon that was asked to stop.
    /// Waits (at most a minute) for the daemon to exit on its own.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("daemon running");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "the daemon did not exit: {}", self.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = http().request(method, format!("{}{}", self.url, path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn master(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.request(method, path, &[("x-master-password", &self.password)], body)
            .await
    }

    pub async fn session(&self, token: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let auth = format!("Bearer {token}");
        self.request(method, path, &[("authorization", &auth)], body).await
    }

    pub async fn create_wallet(&self, chain: &str) -> Value {
        let (status, body) = self
            .master(
                reqwest::Method::POST,
                "/v1/wallets",
                Some(json!({ "name": "test wallet", "chain": chain })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    /// A session for `wallet_id`; `opts` is merged into the request body.
    pub async fn create_session(&self, wallet_id: &str, opts: Value) -> Value {
        let mut body = json!({ "walletId": wallet_id });
        if let Value::Object(extra) = opts {
            body.as_object_mut().unwrap().extend(extra);
        }
        let (status, res) = self.master(reqwest::Method::POST, "/v1/sessions", Some(body)).await;
        assert_eq!(status, 201, "{res}");
        res
    }

    /// A wallet on the anvil chain and a token for it.
    pub async fn wallet_and_token(&self) -> (Value, String) {
        let wallet = self.create_wallet("anvil").await;
        let session = self.create_session(wallet["id"].as_str().unwrap(), json!({})).await;
        (wallet, session["token"].as_str().unwrap().to_owned())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn write_private(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

pub fn eth(whole: u64) -> U256 {
    U256::from(whole) * U256::from(10u64).pow(U256::from(18))
}

/// Raises this process's open-file limit to its hard limit, for tests that hold many sockets.
pub fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Open file descriptors of process `pid`.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

//! One function per command: convert arguments, one call (service or REST), print.

use super::agent::{self, TokenDir};
use super::client::{Client, Credential, path_segment};
use super::{
    AuditCommand, Cli, CliError, CliResult, Command, Output, PolicyCommand, SessionCommand, TxCommand, WalletCommand,
    denied, password,
};
use crate::api::dto;
use crate::config::{self, Config, RECOVERY_KEY_FILE, STORE_DIR};
use crate::service::{Service, ServiceError};
use crate::store::StoreError;
use anyhow::{Context, anyhow};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde::Serialize;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub async fn run(cli: Cli, out: &Output) -> CliResult {
    let data_dir = config::data_dir(cli.data_dir.clone());
    match cli.command {
        Command::Init { auto_provision } => init(&data_dir, auto_provision, out),
        Command::Start { bind, auto_provision } => {
            if auto_provision && !data_dir.join(STORE_DIR).exists() {
                first_boot(&data_dir, out)?;
            }
            start(&data_dir, bind, out).await
        }
        Command::Health { timeout } => health(cli.url, timeout, out).await,
        Command::Backup(cmd) => super::backup::run(cmd, &data_dir, cli.url, out).await,
        Command::Mcp => super::mcp::run(cli.url).await,
        Command::Doctor { fix, compose } => super::doctor::run(&data_dir, fix, &compose, cli.url, out).await,
        Command::Stop => {
            let client = master_client(&data_dir, cli.url)?;
            let _: dto::Ok = client.send(Method::POST, "/v1/admin/shutdown", &()).await?;
            out.emit(&serde_json::json!({ "stopping": true }), |_| {
                "daemon is shutting down".into()
            });
            Ok(())
        }
        Command::Status => status(&data_dir, cli.url, out).await,
        Command::Quickset {
            ttl,
            max_renewals,
            absolute_lifetime,
            agent,
        } => {
            let lifetime = Lifetime {
                ttl,
                max_renewals,
                absolute_lifetime,
            };
            // Refuse before anything is created or a password is asked for.
            let tokens = TokenDir::prepare(&data_dir, &agent::token_dir(&agent), &agent, out)?;
            quickset(&tokens, master_client(&data_dir, cli.url)?, lifetime, out).await
        }
        Command::SetMaster {
            new_password_file,
            delete_recovery_key,
            keep_recovery_key,
        } => {
            set_master(
                &data_dir,
                cli.url,
                new_password_file.as_deref(),
                delete_recovery_key,
                keep_recovery_key,
                out,
            )
            .await
        }
        Command::Wallet(cmd) => wallet(cmd, master_client(&data_dir, cli.url)?, out).await,
        Command::Session(SessionCommand::Prompt { token_file, agent }) => {
            let dir = match &token_file {
                Some(file) => file
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
                    .to_owned(),
                None => agent::token_dir(&agent),
            };
            // Refuse before anything is created or a password is asked for.
            let tokens = TokenDir::prepare(&data_dir, &dir, &agent, out)?;
            let file = match token_file {
                Some(f) => Some(tokens.dir.join(f.file_name().ok_or_else(|| CliError {
                    code: 2,
                    error: anyhow!("--token-file {} names no file", f.display()),
                })?)),
                None => None,
            };
            session_prompt(&tokens, file, master_client(&data_dir, cli.url)?, out).await
        }
        Command::Session(cmd) => session(cmd, master_client(&data_dir, cli.url)?, out).await,
        Command::Audit(cmd) => audit(cmd, master_client(&data_dir, cli.url)?, out).await,
        Command::Policy(cmd) => policy(cmd, master_client(&data_dir, cli.url)?, out).await,
        Command::Tx(TxCommand::Cancel { id, operator: true }) => {
            cancel(&id, master_client(&data_dir, cli.url)?, out).await
        }
        Command::Tx(TxCommand::SpeedUp { id }) => {
            replace(&id, "speed-up", master_client(&data_dir, cli.url)?, out).await
        }
        Command::Tx(TxCommand::CancelOnchain { id }) => {
            replace(&id, "cancel-onchain", master_client(&data_dir, cli.url)?, out).await
        }
        Command::Tx(cmd) => tx(cmd, session_client(cli.url)?, out).await,
        Command::Owner(cmd) => super::owner::owner(cmd, master_client(&data_dir, cli.url)?, out).await,
        Command::KillSwitch(cmd) => super::owner::kill_switch(cmd, master_client(&data_dir, cli.url)?, out).await,
    }
}

pub(super) fn master_client(data_dir: &Path, url: Option<String>) -> CliResult<Client> {
    let found = password::obtain(data_dir)?;
    if let Some(w) = &found.warning {
        eprintln!("warning: {w}");
    }
    Client::new(url, Credential::Master(found.password))
}

/// How long a session lives.
struct Lifetime {
    ttl: u64,
    max_renewals: u32,
    absolute_lifetime: u64,
}

/// A session for `wallet`, its token written to `file` or `<token dir>/<session id>.token`
/// (0600, outside the data dir). Returns the token file: configs point at it, so the token
/// itself is never printed.
async fn agent_session(
    tokens: &TokenDir,
    file: Option<PathBuf>,
    client: &Client,
    wallet: &dto::Wallet,
    life: &Lifetime,
) -> CliResult<(dto::SessionToken, PathBuf)> {
    let body = serde_json::json!({
        "walletId": wallet.id, "ttlSeconds": life.ttl, "maxRenewals": life.max_renewals, "absoluteLifetimeSeconds": life.absolute_lifetime
    });
    let session: dto::SessionToken = client.send(Method::POST, "/v1/sessions", &body).await?;
    let file = file.unwrap_or_else(|| tokens.dir.join(format!("{}.token", session.id)));
    tokens.write(&file, &session.token)?;
    Ok((session, file))
}

/// A `claude_desktop_config.json` block launching `bursar mcp` for each token file.
fn mcp_config_block(client: &Client, servers: &[(String, PathBuf)]) -> serde_json::Value {
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "bursar".into());
    let entries: serde_json::Map<String, serde_json::Value> = servers
        .iter()
        .map(|(name, file)| {
            let server = serde_json::json!({
                "command": exe, "args": ["mcp"],
                "env": { "BURSAR_URL": client.base(), "BURSAR_SESSION_TOKEN_FILE": file.display().to_string() }
            });
            (name.clone(), server)
        })
        .collect();
    serde_json::json!({ "mcpServers": entries })
}

async fn quickset(tokens: &TokenDir, client: Client, life: Lifetime, out: &Output) -> CliResult {
    let status: dto::Status = client.get("/v1/admin/status").await?;
    let existing: Vec<dto::Wallet> = client.get("/v1/wallets").await?;
    let mut servers = Vec::new();
    for chain in &status.chains {
        // Reuse the chain's first wallet; create one where there is none.
        let wallet = match existing.iter().find(|w| &w.chain == chain) {
            Some(w) => w.clone(),
            None => {
                client
                    .send::<_, dto::Wallet>(
                        Method::POST,
                        "/v1/wallets",
                        &serde_json::json!({ "name": format!("agent-{chain}"), "chain": chain }),
                    )
                    .await?
            }
        };
        let (_, file) = agent_session(tokens, None, &client, &wallet, &life).await?;
        servers.push((format!("bursar-{chain}"), file));
    }
    let block = mcp_config_block(&client, &servers);
    out.emit(&block, |b| {
        format!(
            "{}\n\nPaste this into claude_desktop_config.json. Tokens are in the 0600 files it names (outside the data dir); with no policy every transfer needs the owner's approval (`bursar policy add`).\nSafest: run the agent host under its own OS user, which can read the token files but not the data dir.",
            serde_json::to_string_pretty(b).unwrap_or_default()
        )
    });
    Ok(())
}

/// Reads one answer; an empty line takes `default`.
fn ask(question: &str, default: &str) -> CliResult<String> {
    eprint!("{question} [{default}]: ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let answer = line.trim();
    Ok(if answer.is_empty() {
        default.to_owned()
    } else {
        answer.to_owned()
    })
}

fn ask_number<T: std::str::FromStr + std::fmt::Display>(question: &str, default: T) -> CliResult<T> {
    let answer = ask(question, &default.to_string())?;
    answer.parse().map_err(|_| CliError {
        code: 2,
        error: anyhow!("{question}: {answer:?} is not a number"),
    })
}

async fn session_prompt(tokens: &TokenDir, file: Option<PathBuf>, client: Client, out: &Output) -> CliResult {
    let wallets: Vec<dto::Wallet> = client.get("/v1/wallets").await?;
    if wallets.is_empty() {
        return Err(
            anyhow!("no wallets yet: `bursar wallet create --name NAME --chain CHAIN` (or `bursar quickset`)").into(),
        );
    }
    for (idx, w) in wallets.iter().enumerate() {
        eprintln!("  {}) {}  {} ({})  {}", idx + 1, w.name, w.chain, w.kind, w.address);
    }
    let pick: usize = ask_number("wallet", 1)?;
    let wallet = wallets.get(pick.wrapping_sub(1)).ok_or_else(|| CliError {
        code: 2,
        error: anyhow!("no wallet number {pick}"),
    })?;
    let life = Lifetime {
        ttl: ask_number("token lifetime in seconds", 86_400)?,
        max_renewals: ask_number("renewals allowed", 30)?,
        absolute_lifetime: ask_number("absolute lifetime in seconds", 30 * 86_400)?,
    };
    let instant_max = ask(
        "basic policy: send at once up to this many whole units (empty for none)",
        "",
    )?;
    if !instant_max.is_empty() {
        let body = serde_json::json!({ "walletId": wallet.id, "type": "SPENDING_LIMIT", "rules": { "instant_max": instant_max } });
        let _: dto::PolicyDto = client.send(Method::POST, "/v1/policies", &body).await?;
    }
    let (_, file) = agent_session(tokens, file, &client, wallet, &life).await?;
    let block = mcp_config_block(&client, &[(format!("bursar-{}", wallet.name.replace(' ', "-")), file)]);
    out.emit(&block, |b| {
        format!(
            "{}\n\nPaste this into claude_desktop_config.json.",
            serde_json::to_string_pretty(b).unwrap_or_default()
        )
    });
    Ok(())
}

fn session_client(url: Option<String>) -> CliResult<Client> {
    let Some((token, _, warning)) = config::secret_from_env("BURSAR_SESSION_TOKEN")? else {
        return Err(anyhow!("no session token: set BURSAR_SESSION_TOKEN_FILE (or BURSAR_SESSION_TOKEN)").into());
    };
    if let Some(w) = warning {
        eprintln!("warning: {w}");
    }
    Client::new(url, Credential::Session(token))
}

async fn policy(cmd: PolicyCommand, client: Client, out: &Output) -> CliResult {
    let show = |p: &dto::PolicyDto| format!("{}  wallet {}  {}  {}", p.id, p.wallet_id, p.kind, p.rules);
    match cmd {
        PolicyCommand::Add {
            wallet,
            kind,
            rules,
            rules_file,
        } => {
            let text = match (rules, rules_file) {
                (Some(r), _) => r,
                (None, Some(path)) => {
                    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?
                }
                (None, None) => unreachable!("clap requires one of them"),
            };
            let rules: serde_json::Value = serde_json::from_str(&text).map_err(|e| CliError {
                code: 2,
                error: anyhow!("--rules is not valid JSON: {e}"),
            })?;
            let body = serde_json::json!({ "walletId": wallet, "type": kind, "rules": rules });
            let p: dto::PolicyDto = client.send(Method::POST, "/v1/policies", &body).await?;
            out.emit(&p, |p| show(p));
        }
        PolicyCommand::List { wallet } => {
            let path = match wallet {
                Some(w) => format!("/v1/policies?walletId={}", path_segment(&w)?),
                None => "/v1/policies".to_owned(),
            };
            let list: Vec<dto::PolicyDto> = client.get(&path).await?;
            out.emit(&list, |l| {
                if l.is_empty() {
                    "no policies (default deny: every transfer needs the owner's approval)".into()
                } else {
                    l.iter().map(show).collect::<Vec<_>>().join("\n")
                }
            });
        }
        PolicyCommand::Remove { id } => {
            let p: dto::PolicyDto = client
                .send(Method::DELETE, &format!("/v1/policies/{}", path_segment(&id)?), &())
                .await?;
            out.emit(&p, |p| format!("removed policy {}", p.id));
        }
    }
    Ok(())
}

async fn tx(cmd: TxCommand, client: Client, out: &Output) -> CliResult {
    let show = |t: &dto::Transaction| {
        format!(
            "{}  {:<16} {:<8} {} {} → {}{}",
            t.id,
            t.status.as_str(),
            t.tier.map_or("-", |tier| tier.as_str()),
            t.amount,
            t.symbol,
            t.to,
            t.hash.as_ref().map(|h| format!("  {h}")).unwrap_or_default()
        )
    };
    match cmd {
        TxCommand::List { status, limit, before } => {
            let mut path = format!("/v1/transactions?limit={limit}");
            if let Some(st) = status {
                path += &format!("&status={}", path_segment(&st)?);
            }
            if let Some(b) = before {
                path += &format!("&before={}", path_segment(&b)?);
            }
            let (list, next): (Vec<dto::Transaction>, _) = client.get_page(&path).await?;
            out.emit(&list, |l| {
                if l.is_empty() {
                    "no transactions".into()
                } else {
                    l.iter().map(show).collect::<Vec<_>>().join("\n")
                }
            });
            if let Some(next) = next {
                out.note(&format!("older transfers: bursar tx list --before {next}"));
            }
        }
        TxCommand::Show { id } => {
            let t: dto::Transaction = client.get(&format!("/v1/transactions/{}", path_segment(&id)?)).await?;
            out.emit(&t, |t| format!("{}\nreasons: {}", show(t), t.reasons.join("; ")));
        }
        TxCommand::Cancel { id, .. } => cancel(&id, client, out).await?,
        TxCommand::SpeedUp { .. } | TxCommand::CancelOnchain { .. } => unreachable!("run with the master password"),
    }
    Ok(())
}

/// `POST /v1/admin/transactions/{id}/{action}`: replace a stuck transfer on chain.
async fn replace(id: &str, action: &str, client: Client, out: &Output) -> CliResult {
    let t: dto::Transaction = client
        .send(
            Method::POST,
            &format!("/v1/admin/transactions/{}/{action}", path_segment(id)?),
            &(),
        )
        .await?;
    out.emit(&t, |t| {
        format!(
            "{} {}: now {} (replacing {})",
            t.id,
            t.status,
            t.hash.as_deref().unwrap_or("-"),
            t.replaced_hashes.join(", ")
        )
    });
    Ok(())
}

/// `POST /v1/transactions/{id}/cancel` with whichever credential `client` carries.
async fn cancel(id: &str, client: Client, out: &Output) -> CliResult {
    let t: dto::Transaction = client
        .send(
            Method::POST,
            &format!("/v1/transactions/{}/cancel", path_segment(id)?),
            &(),
        )
        .await?;
    out.emit(&t, |t| format!("cancelled {}", t.id));
    Ok(())
}

fn init(data_dir: &Path, auto_provision: bool, out: &Output) -> CliResult {
    config::create_data_dir(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    config::check_permissions(data_dir)?;
    let store_dir = data_dir.join(STORE_DIR);
    let config_path = data_dir.join(config::CONFIG_FILE);
    if !config_path.exists() {
        config::write_private_file(&config_path, Config::initial_file().as_bytes()).context("writing config.toml")?;
    }
    let (cfg, warnings) = Config::load(data_dir)?;
    for w in warnings {
        out.note(&format!("warning: {w}"));
    }
    let recovery = data_dir.join(RECOVERY_KEY_FILE);
    let (password, wrote_recovery) = if auto_provision {
        if recovery.exists() {
            return Err(anyhow!(
                "{} already exists; refusing to overwrite a master password",
                recovery.display()
            )
            .into());
        }
        let password = crate::secret::generate_passphrase();
        (password, true)
    } else if let Some(found) = password::from_sources(data_dir)? {
        // The same rule as the prompt and set-master: a password the header cannot carry
        // (or a short one) would be a store the master API can never be used on.
        password::check_new(&found)?;
        if let Some(w) = &found.warning {
            out.note(&format!("warning: {w}"));
        }
        (found.password, false)
    } else {
        (password::new_password(None, "master password")?, false)
    };
    if wrote_recovery {
        config::write_private_file(&recovery, password.expose_secret().as_bytes()).context("writing recovery.key")?;
    }
    let kdf = cfg.keystore.kdf();
    if let Err(err) = Service::initialise(&store_dir, &password, kdf) {
        if wrote_recovery && !matches!(err, ServiceError::Conflict(_)) {
            let _ = std::fs::remove_file(&recovery);
        }
        return Err(service_error(err));
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Initialised {
        data_dir: PathBuf,
        config: PathBuf,
        recovery_key: Option<PathBuf>,
    }
    let result = Initialised {
        data_dir: data_dir.to_owned(),
        config: config_path,
        recovery_key: wrote_recovery.then_some(recovery),
    };
    out.emit(&result, |r| {
        let mut s = format!("initialised bursar in {}\nconfig: {}\n", r.data_dir.display(), r.config.display());
        if let Some(rk) = &r.recovery_key {
            s += &format!(
                "master password: generated and written to {} (0600)\n  keep a copy somewhere safe, then consider `bursar set-master`\n",
                rk.display()
            );
        }
        s += "next: bursar start";
        s
    });
    Ok(())
}

async fn start(data_dir: &Path, bind: Option<std::net::SocketAddr>, out: &Output) -> CliResult {
    if !data_dir.join(STORE_DIR).exists() {
        return Err(anyhow!(
            "bursar is not initialised in {}\nrun `bursar init --auto-provision` first",
            data_dir.display()
        )
        .into());
    }
    config::check_permissions(data_dir)?;
    let (mut cfg, warnings) = Config::load(data_dir)?;
    if let Some(bind) = bind {
        cfg.server.bind = bind;
        if !bind.ip().is_loopback() {
            out.note(&format!(
                "warning: binding {bind} which is not loopback: anyone who can reach it can try credentials"
            ));
        }
    }
    crate::telemetry::init(&cfg.log.level, cfg.log.format == "json");
    for w in warnings {
        tracing::warn!("{w}");
    }
    let found = password::obtain(data_dir)?;
    if let Some(w) = &found.warning {
        tracing::warn!("{w}");
    }
    // Bound before the unlock, so that port 0 (the OS picks a free port) is resolved before
    // anything derives from the address: the owner-message domain and the links default to it.
    let bind = cfg.server.bind;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    let addr = listener.local_addr()?;
    cfg.server.bind = addr;
    let started = std::time::Instant::now();
    let service = unlock(data_dir, cfg, found).await?;
    // A store made by an older bursar (or sled under another umask) may hold 0644 files.
    match config::tighten_store_permissions(data_dir) {
        Ok(0) => {}
        Ok(n) => tracing::warn!(paths = n, "made the store's files 0600 and directories 0700"),
        Err(err) => return Err(anyhow!("securing the store's permissions: {err}").into()),
    }
    tracing::info!(%addr, unlock_ms = started.elapsed().as_millis() as u64, "bursar listening");
    out.emit(&serde_json::json!({ "listening": format!("http://{addr}") }), |v| {
        format!("bursar listening on {}", v["listening"].as_str().unwrap_or_default())
    });
    crate::api::server::serve(Arc::new(service), listener)
        .await
        .context("serving")?;
    tracing::info!("bursar stopped");
    Ok(())
}

/// Opens and unlocks the store, and settles what an interrupted `set-master` left behind: a
/// staged `recovery.key.new` is renamed over `recovery.key` when it holds the password that
/// opens the store (the change committed) and deleted otherwise (it never did).
async fn unlock(data_dir: &Path, cfg: Config, found: password::Found) -> CliResult<Service> {
    let store_dir = data_dir.join(STORE_DIR);
    let open = |cfg: Config, password: crate::secret::Passphrase| {
        let store_dir = store_dir.clone();
        async move {
            tokio::task::spawn_blocking(move || Service::open(&store_dir, cfg, &password).map(|s| (s, password)))
                .await
                .map_err(|e| CliError::from(anyhow!("unlock task failed: {e}")))
        }
    };
    let recovery = config::RecoveryKey::in_dir(data_dir);
    let from_recovery_key = found.source == password::Source::RecoveryKey;
    let (service, password) = match open(cfg.clone(), found.password).await? {
        Ok(opened) => opened,
        Err(ServiceError::WrongPassword) if from_recovery_key && recovery.staged.exists() => {
            let staged = config::read_secret_file(&recovery.staged)?;
            open(cfg, staged).await?.map_err(|err| match err {
                ServiceError::WrongPassword => stale_recovery_key(&recovery),
                other => service_error(other),
            })?
        }
        Err(ServiceError::WrongPassword) if from_recovery_key => return Err(stale_recovery_key(&recovery)),
        Err(err) => return Err(service_error(err)),
    };
    if recovery.staged.exists() {
        let staged = config::read_secret_file(&recovery.staged).ok();
        let committed = recovery.exists()
            && staged.is_some_and(|s| {
                crate::secret::ct_eq(s.expose_secret().as_bytes(), password.expose_secret().as_bytes())
            });
        if committed {
            recovery.promote_staged().context("completing recovery.key")?;
            tracing::warn!("an interrupted set-master committed: recovery.key now holds the new master password");
        } else {
            recovery.discard_staged().context("removing recovery.key.new")?;
            tracing::warn!("an interrupted set-master never committed: removed its staged recovery.key.new");
        }
    }
    Ok(service)
}

fn stale_recovery_key(recovery: &config::RecoveryKey) -> CliError {
    denied(anyhow!(
        "wrong master password: {} does not open the store (it may hold a password from before `bursar set-master`)\nstart with the current password (BURSAR_MASTER_PASSWORD_FILE, or on a terminal after moving recovery.key away), then delete or rewrite recovery.key",
        recovery.path.display()
    ))
}

/// Maps a service error at startup to a message with the fix, and its exit code.
pub(super) fn service_error(err: ServiceError) -> CliError {
    match err {
        ServiceError::Store(StoreError::Locked) => {
            anyhow!("store is locked by another process\nis `bursar start` already running? use the CLI against it")
                .into()
        }
        ServiceError::WrongPassword => denied(anyhow!("wrong master password")),
        other => CliError::from(anyhow!(other.to_string())),
    }
}

/// `start --auto-provision` on a data directory with no store: `init`, with the master
/// password from `BURSAR_MASTER_PASSWORD_FILE` (or env) when given, else a random one in
/// `recovery.key`.
fn first_boot(data_dir: &Path, out: &Output) -> CliResult {
    let given = config::secret_from_env(password::MASTER_VAR)?.is_some();
    out.note(&format!(
        "first boot: initialising {} ({})",
        data_dir.display(),
        if given {
            "master password from BURSAR_MASTER_PASSWORD_FILE"
        } else {
            "random master password in recovery.key"
        }
    ));
    init(data_dir, !given, out)
}

/// `bursar health`: `GET /health` within `timeout` seconds; no credential.
async fn health(url: Option<String>, timeout: u64, out: &Output) -> CliResult {
    let client = Client::new(url, Credential::None)?;
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(timeout.max(1)),
        client.get::<serde_json::Value>("/health"),
    )
    .await;
    match answer {
        Ok(Ok(health)) if health["status"] == "ok" => {
            out.emit(&health, |_| format!("healthy: {}", client.base()));
            Ok(())
        }
        Ok(Ok(other)) => Err(anyhow!("{} answered /health with {other}", client.base()).into()),
        Ok(Err(err)) => Err(CliError::from(anyhow!("not healthy: {:#}", err.error))),
        Err(_) => Err(anyhow!("not healthy: {} did not answer within {timeout} s", client.base()).into()),
    }
}

async fn status(data_dir: &Path, url: Option<String>, out: &Output) -> CliResult {
    let anonymous = Client::new(url.clone(), Credential::None)?;
    let health: serde_json::Value = anonymous.get("/health").await?;
    let detail: Option<dto::Status> = match password::from_sources(data_dir)? {
        Some(found) => Some(
            Client::new(url, Credential::Master(found.password))?
                .get("/v1/admin/status")
                .await?,
        ),
        None => None,
    };
    let value = serde_json::json!({ "url": anonymous.base(), "health": health, "status": detail });
    out.emit(&value, |_| {
        let mut s = format!("bursar is running at {}\n", anonymous.base());
        if let Some(d) = &detail {
            s += &format!(
                "version {}, up {}s, {} wallet(s), {} active session(s), chains: {}, audit entries: {}\n",
                d.version,
                d.uptime_seconds,
                d.wallets,
                d.active_sessions,
                d.chains.join(", "),
                d.audit_entries
            );
        }
        s
    });
    Ok(())
}

async fn set_master(
    data_dir: &Path,
    url: Option<String>,
    file: Option<&Path>,
    delete: bool,
    keep: bool,
    out: &Output,
) -> CliResult {
    let client = master_client(data_dir, url)?;
    let new = password::new_password(file, "master password")?;
    // Decided before the change: the daemon rewrites or deletes recovery.key in the same step
    // as the re-encryption, so it never holds a password that no longer opens the store.
    let recovery = data_dir.join(RECOVERY_KEY_FILE);
    let remove = if delete {
        true
    } else if keep {
        false
    } else if recovery.exists() && std::io::stdin().is_terminal() {
        eprint!(
            "{} holds the master password in clear; delete it with the change (otherwise it is rewritten with the new password)? [y/N] ",
            recovery.display()
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        answer.trim().eq_ignore_ascii_case("y")
    } else {
        false
    };
    let result: dto::SetMasterResult = client
        .send(
            Method::PUT,
            "/v1/admin/master-password",
            &serde_json::json!({
                "newPassword": new.expose_secret(),
                "recoveryKey": if remove { "delete" } else { "keep" },
            }),
        )
        .await?;
    match result.recovery_key.as_str() {
        "rewritten" => out.note(&format!(
            "note: {} now holds the new password; `bursar doctor` flags it, and `quickset` refuses while an agent could read it",
            recovery.display()
        )),
        "notUpdated" => out.note(&format!(
            "warning: the daemon could not update {} (see its log): it still holds the OLD password; `bursar start` completes the change from recovery.key.new, or delete recovery.key",
            recovery.display()
        )),
        _ => {}
    }
    out.emit(
        &serde_json::json!({
            "changed": true,
            "recoveryKey": result.recovery_key,
            "recoveryKeyDeleted": result.recovery_key == "deleted",
        }),
        |_| "master password changed; every key re-encrypted".into(),
    );
    Ok(())
}

async fn wallet(cmd: WalletCommand, client: Client, out: &Output) -> CliResult {
    let show = |w: &dto::Wallet| format!("{}  {}  {} ({})  {}", w.id, w.name, w.chain, w.kind, w.address);
    match cmd {
        WalletCommand::Create { name, chain } => {
            let w: dto::Wallet = client
                .send(
                    Method::POST,
                    "/v1/wallets",
                    &serde_json::json!({ "name": name, "chain": chain }),
                )
                .await?;
            out.emit(&w, |w| show(w));
        }
        WalletCommand::List => {
            let list: Vec<dto::Wallet> = client.get("/v1/wallets").await?;
            out.emit(&list, |l| {
                if l.is_empty() {
                    "no wallets".into()
                } else {
                    l.iter().map(show).collect::<Vec<_>>().join("\n")
                }
            });
        }
        WalletCommand::Show { id } => {
            let w: dto::Wallet = client.get(&format!("/v1/wallets/{}", path_segment(&id)?)).await?;
            out.emit(&w, |w| show(w));
        }
    }
    Ok(())
}

async fn session(cmd: SessionCommand, client: Client, out: &Output) -> CliResult {
    let show = |s: &dto::Session| {
        format!(
            "{}  wallet {}  expires {}  renewals {}/{}{}",
            s.id,
            s.wallet_id,
            s.expires_at,
            s.renewals,
            s.max_renewals,
            if s.revoked { "  REVOKED" } else { "" }
        )
    };
    match cmd {
        SessionCommand::Create {
            wallet,
            ttl,
            max_renewals,
            absolute_lifetime,
        } => {
            let body = serde_json::json!({
                "walletId": wallet, "ttlSeconds": ttl, "maxRenewals": max_renewals, "absoluteLifetimeSeconds": absolute_lifetime
            });
            let s: dto::SessionToken = client.send(Method::POST, "/v1/sessions", &body).await?;
            out.emit(&s, |s| {
                format!(
                    "session {} for wallet {}\nexpires {} (no renewal past {}), {} renewal(s) left\ntoken (shown once; give it to the agent, e.g. via BURSAR_SESSION_TOKEN_FILE):\n{}",
                    s.id, s.wallet_id, s.expires_at, s.absolute_expires_at, s.renewals_left, s.token
                )
            });
        }
        SessionCommand::List { wallet } => {
            let path = match wallet {
                Some(w) => format!("/v1/sessions?walletId={}", path_segment(&w)?),
                None => "/v1/sessions".to_owned(),
            };
            let list: Vec<dto::Session> = client.get(&path).await?;
            out.emit(&list, |l| {
                if l.is_empty() {
                    "no sessions".into()
                } else {
                    l.iter().map(show).collect::<Vec<_>>().join("\n")
                }
            });
        }
        SessionCommand::Revoke { id } => {
            let s: dto::Session = client
                .send(Method::DELETE, &format!("/v1/sessions/{}", path_segment(&id)?), &())
                .await?;
            out.emit(&s, |s| format!("revoked session {}", s.id));
        }
        // `run` handles it: the token directory is checked before the password is asked for.
        SessionCommand::Prompt { .. } => {}
        SessionCommand::RotateSecret => {
            let _: dto::Ok = client
                .send(Method::POST, "/v1/admin/rotate-session-secret", &())
                .await?;
            out.emit(&serde_json::json!({ "rotated": true }), |_| {
                "session secret rotated; every session token is now invalid".into()
            });
        }
    }
    Ok(())
}

async fn audit(cmd: AuditCommand, client: Client, out: &Output) -> CliResult {
    match cmd {
        AuditCommand::List {
            kind,
            wallet,
            limit,
            before,
        } => {
            let mut path = format!("/v1/audit?limit={limit}");
            if let Some(k) = kind {
                path += &format!("&kind={}", path_segment(&k)?);
            }
            if let Some(w) = wallet {
                path += &format!("&walletId={}", path_segment(&w)?);
            }
            if let Some(b) = before {
                path += &format!("&before={b}");
            }
            let (entries, next): (Vec<crate::store::AuditEntry>, _) = client.get_page(&path).await?;
            if let Some(next) = &next {
                out.note(&format!("older entries: bursar audit list --before {next}"));
            }
            out.emit(&entries, |l| {
                l.iter()
                    .map(|e| {
                        format!(
                            "#{:<6} {}  {:<24} {}{}",
                            e.seq,
                            dto::rfc3339(e.ts / 1000),
                            e.event.kind,
                            e.event.actor,
                            e.event
                                .wallet_id
                                .as_ref()
                                .map(|w| format!("  wallet {w}"))
                                .unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        AuditCommand::Verify => {
            let v: serde_json::Value = client.get("/v1/audit/verify").await?;
            let ok = v["ok"].as_bool().unwrap_or(false);
            out.emit(&v, |v| {
                if ok {
                    format!(
                        "audit chain verifies: {} entries, head {}{}",
                        v["entries"],
                        v["headHash"].as_str().unwrap_or_default(),
                        keyed_summary(v)
                    )
                } else {
                    format!(
                        "AUDIT CHAIN BROKEN at entry {}: {}",
                        v["firstBadSeq"],
                        v["problem"].as_str().unwrap_or("does not verify")
                    )
                }
            });
            if !ok {
                return Err(anyhow!("audit chain does not verify").into());
            }
        }
    }
    Ok(())
}

/// How an audit verification's chain is protected, for the human reading it.
pub(super) fn keyed_summary(v: &serde_json::Value) -> String {
    match (v["keyedFrom"].as_u64(), v["legacyEntries"].as_u64().unwrap_or(0)) {
        (Some(1), _) => " (HMAC-SHA256 from entry 1)".into(),
        (Some(from), legacy) => {
            format!(" (HMAC-SHA256 from entry {from}; entries 1-{legacy} are legacy SHA-256 links)")
        }
        (None, _) => " (legacy SHA-256 links: keyed at the daemon's next start)".into(),
    }
}

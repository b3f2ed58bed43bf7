//! `bursar doctor`: the security checklist. Permissions of the data dir, the store's files
//! and secret files, `recovery.key` (stale after `set-master`, or readable while agent
//! sessions exist), secrets in env, a non-loopback bind, weak KDF parameters, an old JWT
//! secret, the audit chain (its MACs when a master password is at hand: `_FILE`, env or
//! recovery.key; doctor never prompts); and for deployments: copies of secrets and backups
//! lying in the data dir, a container engine socket this user can drive, a running bursar
//! of this data dir with a secret in its environment, compose files that publish beyond
//! loopback or pass a secret as a plain variable. `--fix` repairs what is safe to repair
//! (permissions). Exit 1 on any failure; `--json` prints every check.

use super::client::{Client, Credential};
use super::{CliResult, Output};
use crate::config::{self, Config, RECOVERY_KEY_FILE, STORE_DIR};
use crate::keystore::KeystoreMeta;
use crate::store::records::{DaemonRecord, SessionRecord};
use crate::store::{Store, StoreError, keys};
use anyhow::anyhow;
use serde::Serialize;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Serialize)]
struct Check {
    check: &'static str,
    status: Level,
    detail: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    fixed: bool,
}

const JWT_SECRET_MAX_AGE_DAYS: i64 = 90;

/// Secrets that have a `_FILE` form and must not sit in an environment.
const SECRET_VARS: [&str; 3] = [
    "BURSAR_MASTER_PASSWORD",
    "BURSAR_SESSION_TOKEN",
    "BURSAR_BACKUP_PASSPHRASE",
];

pub async fn run(data_dir: &Path, fix: bool, compose: &[PathBuf], url: Option<String>, out: &Output) -> CliResult {
    let mut checks = Vec::new();
    let mut add = |check, status, detail: String, fixed| {
        checks.push(Check {
            check,
            status,
            detail,
            fixed,
        })
    };

    if !data_dir.exists() {
        add(
            "data_dir",
            Level::Fail,
            format!("{} does not exist; run `bursar init`", data_dir.display()),
            false,
        );
    } else {
        let store = config::store_paths(data_dir);
        let store_count = store.len();
        let mut store_loose = 0;
        for (g, in_store) in config::guarded_paths(data_dir)
            .into_iter()
            .map(|g| (g, false))
            .chain(store.into_iter().map(|g| (g, true)))
        {
            let Ok(meta) = std::fs::metadata(&g.path) else {
                continue;
            };
            let mode = meta.permissions().mode() & 0o777;
            if mode & g.forbid == 0 {
                // One line for the store's files, not one per sled file.
                if !in_store {
                    add(
                        "permissions",
                        Level::Ok,
                        format!("{} is {mode:04o}", g.path.display()),
                        false,
                    );
                }
                continue;
            }
            store_loose += usize::from(in_store);
            if fix {
                std::fs::set_permissions(&g.path, std::fs::Permissions::from_mode(g.want))?;
                add(
                    "permissions",
                    Level::Ok,
                    format!("{} was {mode:04o}, now {:04o}", g.path.display(), g.want),
                    true,
                );
            } else {
                add(
                    "permissions",
                    Level::Fail,
                    format!(
                        "{} is {mode:04o}; run `chmod {:o} {}` or `bursar doctor --fix`",
                        g.path.display(),
                        g.want,
                        g.path.display()
                    ),
                    false,
                );
            }
        }
        if store_count > 0 && store_loose == 0 {
            add(
                "permissions",
                Level::Ok,
                format!(
                    "{}: {store_count} files and directories, all 0600 / 0700",
                    data_dir.join(STORE_DIR).display()
                ),
                false,
            );
        }
    }

    let staged = data_dir.join(config::RECOVERY_KEY_STAGED_FILE);
    if staged.exists() {
        add(
            "recovery_key",
            Level::Warn,
            format!(
                "{} was left by an interrupted set-master; the next `bursar start` keeps or removes it",
                staged.display()
            ),
            false,
        );
    }

    if data_dir.exists() {
        checks.extend(stray_files(data_dir, fix)?);
    }
    checks.extend(engine_sockets());
    checks.extend(running_daemons(data_dir));
    checks.extend(compose_files(compose));

    let mut add = |check, status, detail: String, fixed| {
        checks.push(Check {
            check,
            status,
            detail,
            fixed,
        })
    };
    for var in SECRET_VARS {
        if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
            add(
                "secrets_in_env",
                Level::Warn,
                format!("{var} is set: env is visible to `docker inspect` and /proc/*/environ; use {var}_FILE"),
                false,
            );
        }
    }

    match Config::load(data_dir) {
        Ok((cfg, _)) => {
            let bind = cfg.server.bind;
            if bind.ip().is_loopback() {
                add("bind", Level::Ok, format!("binds {bind} (loopback)"), false);
            } else if in_container() {
                add(
                    "bind",
                    Level::Ok,
                    format!("binds {bind} inside a container: publish the port on the host's 127.0.0.1 only"),
                    false,
                );
            } else {
                add(
                    "bind",
                    Level::Warn,
                    format!(
                        "binds {bind}, which is not loopback; put it behind an authenticated proxy or bind 127.0.0.1"
                    ),
                    false,
                );
            }
            if cfg.keystore.kdf().is_weak() {
                add(
                    "kdf_config",
                    Level::Warn,
                    "configured Argon2id cost is below 64 MiB / t=3 for new keystores".into(),
                    false,
                );
            }
        }
        Err(err) => add("config", Level::Fail, err.to_string(), false),
    }

    // The store: read it directly when no daemon holds it, otherwise ask the daemon.
    let recovery = data_dir.join(RECOVERY_KEY_FILE);
    let store_dir = data_dir.join(STORE_DIR);
    // Never create one: doctor only reads (a missing store is a finding).
    let opened = if store_dir.exists() {
        Store::open(&store_dir).map(Some)
    } else {
        Ok(None)
    };
    let daemon_holds_store = matches!(opened, Err(StoreError::Locked));
    match opened {
        Ok(None) => add(
            "store",
            Level::Fail,
            format!("no store in {}: run `bursar init` first", data_dir.display()),
            false,
        ),
        Ok(Some(store)) => {
            let meta: Option<KeystoreMeta> = store.get(keys::KEYSTORE)?;
            let meta_for_recovery = meta.clone();
            let daemon: Option<DaemonRecord> = store.get(keys::DAEMON)?;
            if let Some(meta) = meta {
                if meta.kdf.is_weak() {
                    add(
                        "kdf",
                        Level::Warn,
                        format!(
                            "keystore Argon2id cost m={} KiB t={} p={} is below the recommended 64 MiB / t=3; `bursar set-master` re-derives with the configured cost",
                            meta.kdf.m_cost_kib, meta.kdf.t_cost, meta.kdf.p_cost
                        ),
                        false,
                    );
                } else {
                    add(
                        "kdf",
                        Level::Ok,
                        format!(
                            "Argon2id m={} KiB t={} p={}",
                            meta.kdf.m_cost_kib, meta.kdf.t_cost, meta.kdf.p_cost
                        ),
                        false,
                    );
                }
            }
            if let Some(d) = daemon {
                let age_days = (crate::service::now() - d.jwt_secret_created_at) / 86_400;
                let level = if age_days > JWT_SECRET_MAX_AGE_DAYS {
                    Level::Warn
                } else {
                    Level::Ok
                };
                add(
                    "jwt_secret_age",
                    level,
                    format!("session secret is {age_days} day(s) old (rotate with `bursar session rotate-secret`)"),
                    false,
                );
            }
            if recovery.exists()
                && let Some(meta) = &meta_for_recovery
            {
                let password = config::read_secret_file(&recovery)?;
                let (level, detail) = match meta.opens_with(&password) {
                    Ok(true) => {
                        let now = crate::service::now();
                        let sessions: Vec<SessionRecord> = store.list(keys::SESSIONS)?;
                        let active = sessions
                            .iter()
                            .filter(|s| s.revoked_at.is_none() && s.expires_at > now)
                            .count();
                        recovery_key_in_use(&recovery, active)
                    }
                    Ok(false) => stale_recovery_key(&recovery),
                    Err(err) => (Level::Fail, format!("keystore: {err}")),
                };
                add("recovery_key", level, detail, false);
            }
            // The MACs need the audit key, which needs the master password (one KDF run).
            let verified = match master_password(data_dir) {
                Some(password) => crate::service::verify_audit_offline(&store, &password)
                    .map_err(|err| format!("{err}"))
                    .and_then(|v| serde_json::to_value(v).map_err(|e| e.to_string())),
                None => store
                    .audit_verify()
                    .map_err(|err| err.to_string())
                    .and_then(|v| serde_json::to_value(v).map_err(|e| e.to_string())),
            };
            let (status, detail) = audit_check(verified);
            add("audit_chain", status, detail, false);
        }
        Err(StoreError::Locked) if recovery.exists() => {
            // The daemon is running; ask it whether recovery.key still holds the password.
            let password = config::read_secret_file(&recovery)?;
            let status = match Client::new(url.clone(), Credential::Master(password)) {
                Ok(client) => client.get::<crate::api::dto::Status>("/v1/admin/status").await,
                Err(err) => Err(err),
            };
            match status {
                Ok(status) => {
                    let (level, detail) = recovery_key_in_use(&recovery, status.active_sessions);
                    add("recovery_key", level, detail, false)
                }
                Err(err) if err.code == 3 => {
                    let (level, detail) = stale_recovery_key(&recovery);
                    add("recovery_key", level, detail, false)
                }
                Err(err) => add("daemon", Level::Warn, format!("{:#}", err.error), false),
            }
        }
        Err(StoreError::Locked) => add("store", Level::Ok, "held by the running daemon".into(), false),
        Err(err) => add("store", Level::Fail, err.to_string(), false),
    }
    if daemon_holds_store {
        // The daemon holds the store: it verifies its own chain, MACs included.
        match master_password(data_dir) {
            Some(password) => {
                let answer = Client::new(url, Credential::Master(password))?
                    .get::<serde_json::Value>("/v1/audit/verify")
                    .await
                    .map_err(|err| format!("{:#}", err.error));
                let (status, detail) = audit_check(answer);
                add("audit_chain", status, detail, false);
            }
            None => add(
                "audit_chain",
                Level::Warn,
                "not checked: no master password at hand (BURSAR_MASTER_PASSWORD_FILE or recovery.key); run `bursar audit verify`".into(),
                false,
            ),
        }
    }

    let failed = checks.iter().any(|c| c.status == Level::Fail);
    out.emit(&checks, |list| {
        list.iter()
            .map(|c| {
                let tag = match c.status {
                    Level::Ok => "ok  ",
                    Level::Warn => "WARN",
                    Level::Fail => "FAIL",
                };
                format!(
                    "[{tag}] {:<16} {}{}",
                    c.check,
                    c.detail,
                    if c.fixed { " (fixed)" } else { "" }
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    if failed {
        return Err(anyhow!("doctor found problems").into());
    }
    Ok(())
}

/// The master password from the non-interactive sources, if any (doctor never prompts).
fn master_password(data_dir: &Path) -> Option<crate::secret::Passphrase> {
    match super::password::from_sources(data_dir) {
        Ok(found) => found.map(|f| f.password),
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the master password");
            None
        }
    }
}

/// An audit verification (as JSON, from the store or the daemon) as a checklist line.
fn audit_check(verified: Result<serde_json::Value, String>) -> (Level, String) {
    let v = match verified {
        Ok(v) => v,
        Err(err) => return (Level::Warn, format!("not checked: {err}")),
    };
    let entries = &v["entries"];
    if v["ok"] != true {
        let problem = v["problem"].as_str().unwrap_or("does not verify");
        return (
            Level::Fail,
            format!(
                "{entries} entries, CHAIN BROKEN at entry {}: {problem}",
                v["firstBadSeq"]
            ),
        );
    }
    if v["macChecked"] == false {
        return (
            Level::Warn,
            format!(
                "{entries} entries, links verify; MACs not checked without the master password (set BURSAR_MASTER_PASSWORD_FILE){}",
                super::commands::keyed_summary(&v)
            ),
        );
    }
    (
        Level::Ok,
        format!(
            "{entries} entries, chain verifies{}",
            super::commands::keyed_summary(&v)
        ),
    )
}

/// `recovery.key` opens the store: a warning, or a failure once agents hold sessions — any
/// agent host running as this OS user can read it.
fn recovery_key_in_use(recovery: &Path, active_sessions: usize) -> (Level, String) {
    if active_sessions > 0 {
        (
            Level::Fail,
            format!(
                "{} holds the master password and {active_sessions} agent session(s) are active: an agent host running as this OS user can read it and take every fund; run `bursar set-master --delete-recovery-key`, or run the agent host under its own OS user and delete this file",
                recovery.display()
            ),
        )
    } else {
        (
            Level::Warn,
            format!(
                "{} holds the master password in a file; keep a copy offline and run `bursar set-master --delete-recovery-key` before giving an agent a session",
                recovery.display()
            ),
        )
    }
}

fn stale_recovery_key(recovery: &Path) -> (Level, String) {
    (
        Level::Fail,
        format!(
            "{} no longer opens the store (a password from before set-master); delete it",
            recovery.display()
        ),
    )
}

fn check(check: &'static str, status: Level, detail: String) -> Check {
    Check {
        check,
        status,
        detail,
        fixed: false,
    }
}

/// Whether this process runs in a container: Docker's or Podman's marker file, the
/// `container` variable Podman and systemd-nspawn set, or a container engine's cgroup.
fn in_container() -> bool {
    Path::new("/.dockerenv").exists()
        || Path::new("/run/.containerenv").exists()
        || std::env::var_os("container").is_some_and(|v| !v.is_empty())
        || std::fs::read_to_string("/proc/1/cgroup").is_ok_and(|c| {
            ["/docker/", "/docker-", "libpod", "kubepods", "containerd"]
                .iter()
                .any(|m| c.contains(m))
        })
}

/// Names that say "a copy": editor and tool leftovers, backups.
fn looks_like_a_copy(name: &str) -> bool {
    const SUFFIXES: [&str; 9] = [
        ".bak", ".tmp", ".old", ".orig", ".save", ".swp", "~", ".backup", ".copy",
    ];
    SUFFIXES.iter().any(|s| name.ends_with(s)) || name.contains(".tmp-") || name.starts_with("recovery.key.")
}

/// Files in the data dir beside bursar's own: copies of secrets (`recovery.key.bak`,
/// `config.toml~`, `*.tmp`), backup archives (a backup beside the store protects nothing),
/// leftovers of an interrupted restore, and any file group or others can read. `--fix`
/// makes loose files 0600; copies are still reported (move them offline or delete them).
fn stray_files(data_dir: &Path, fix: bool) -> CliResult<Vec<Check>> {
    let own = [
        config::CONFIG_FILE,
        RECOVERY_KEY_FILE,
        config::RECOVERY_KEY_STAGED_FILE,
        STORE_DIR,
    ];
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(data_dir)?.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if own.contains(&name.as_str()) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if name.starts_with("store.") {
                out.push(check(
                    "stray_files",
                    Level::Warn,
                    format!(
                        "{} was left by an interrupted `bursar backup restore` (a whole store): run the restore again, or delete it",
                        path.display()
                    ),
                ));
            }
            continue;
        }
        if !meta.is_file() {
            continue;
        }
        let mode = meta.permissions().mode() & 0o777;
        let backup = std::fs::File::open(&path)
            .and_then(|mut f| {
                use std::io::Read;
                let mut head = [0u8; 16];
                f.read_exact(&mut head).map(|()| head)
            })
            .is_ok_and(|head| head == *crate::backup::MAGIC);
        let copy = backup || looks_like_a_copy(&name);
        let what = if backup {
            "a backup archive"
        } else if copy {
            "a copy (of a secret or the config)"
        } else {
            "a file"
        };
        if mode & 0o077 != 0 {
            if fix {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
                let (status, advice) = if copy {
                    (Level::Warn, "; move it offline or delete it")
                } else {
                    (Level::Ok, "")
                };
                out.push(Check {
                    check: "stray_files",
                    status,
                    detail: format!("{} ({what}) was {mode:04o}, now 0600{advice}", path.display()),
                    fixed: true,
                });
            } else {
                out.push(check(
                    "stray_files",
                    Level::Fail,
                    format!(
                        "{} ({what}) is {mode:04o}: others on this host can read it; run `chmod 600 {}` or `bursar doctor --fix`{}",
                        path.display(),
                        path.display(),
                        if copy { ", then move it offline or delete it" } else { "" }
                    ),
                ));
            }
        } else if copy {
            out.push(check(
                "stray_files",
                Level::Warn,
                format!(
                    "{} is {what} in the data dir: whoever copies the data dir gets it too; move it offline or delete it",
                    path.display()
                ),
            ));
        }
    }
    Ok(out)
}

/// A container engine's API socket this user can write to: whoever can drive the engine can
/// start a container that mounts this data dir (or the whole host) and read it.
fn engine_sockets() -> Vec<Check> {
    let mut candidates: Vec<PathBuf> = [
        "/var/run/docker.sock",
        "/run/docker.sock",
        "/run/podman/podman.sock",
        "/run/containerd/containerd.sock",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR") {
        let runtime = PathBuf::from(runtime);
        candidates.push(runtime.join("docker.sock"));
        candidates.push(runtime.join("podman/podman.sock"));
    }
    if let Some(path) = std::env::var("DOCKER_HOST")
        .ok()
        .as_deref()
        .and_then(|h| h.strip_prefix("unix://"))
    {
        candidates.insert(0, PathBuf::from(path));
    }
    let mut out = Vec::new();
    for path in candidates {
        let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
            continue;
        };
        if !path.exists() {
            continue;
        }
        // SAFETY: access(2) reads a NUL-terminated path and touches no memory of ours.
        let writable = unsafe { libc::access(c_path.as_ptr(), libc::R_OK | libc::W_OK) } == 0;
        if writable {
            out.push(check(
                "engine_socket",
                Level::Fail,
                format!(
                    "{} (a container engine's API) is writable by this user: anything running as this user can start a container that mounts the data dir or the host; run bursar as a user outside the docker group, and never mount the socket into its container",
                    path.display()
                ),
            ));
        }
    }
    if out.is_empty() {
        out.push(check(
            "engine_socket",
            Level::Ok,
            "no container engine socket is writable by this user".into(),
        ));
    }
    out
}

/// Running `bursar` processes of this data dir whose environment holds a secret (as
/// `/proc/<pid>/environ` shows it to this user): visible to `docker inspect` and to anyone
/// who can read that file.
fn running_daemons(data_dir: &Path) -> Vec<Check> {
    let ours = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    let me = std::process::id();
    let mut seen = 0;
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in procs.filter_map(Result::ok) {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let proc = entry.path();
        let is_bursar = std::fs::read_link(proc.join("exe"))
            .ok()
            .and_then(|exe| exe.file_name().map(|n| n.to_string_lossy().starts_with("bursar")))
            .unwrap_or(false);
        if !is_bursar {
            continue;
        }
        let (Ok(environ), Ok(cmdline)) = (std::fs::read(proc.join("environ")), std::fs::read(proc.join("cmdline")))
        else {
            continue;
        };
        let env: Vec<(&[u8], &[u8])> = environ
            .split(|b| *b == 0)
            .filter_map(|kv| {
                let eq = kv.iter().position(|b| *b == b'=')?;
                Some((&kv[..eq], &kv[eq + 1..]))
            })
            .collect();
        let var = |name: &str| env.iter().find(|(k, _)| *k == name.as_bytes()).map(|(_, v)| *v);
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        // Its data dir, as `config::data_dir` would resolve it in that process.
        let dir = args
            .iter()
            .position(|a| a == "--data-dir")
            .and_then(|i| args.get(i + 1).map(PathBuf::from))
            .or_else(|| {
                args.iter()
                    .find_map(|a| a.strip_prefix("--data-dir=").map(PathBuf::from))
            })
            .or_else(|| {
                var("BURSAR_DATA_DIR")
                    .filter(|v| !v.is_empty())
                    .map(|v| PathBuf::from(String::from_utf8_lossy(v).into_owned()))
            })
            .or_else(|| var("HOME").map(|h| PathBuf::from(String::from_utf8_lossy(h).into_owned()).join(".bursar")));
        let Some(dir) = dir else { continue };
        if std::fs::canonicalize(&dir).unwrap_or(dir) != ours {
            continue;
        }
        seen += 1;
        let command = args
            .iter()
            .skip(1)
            .find(|a| !a.starts_with('-'))
            .cloned()
            .unwrap_or_default();
        for name in SECRET_VARS {
            if var(name).is_some_and(|v| !v.is_empty()) {
                out.push(check(
                    "process_env",
                    Level::Fail,
                    format!(
                        "`bursar {command}` (pid {pid}) has {name} in its environment, readable in /proc/{pid}/environ and `docker inspect`: restart it with {name}_FILE"
                    ),
                ));
            }
        }
    }
    if seen > 0 && out.is_empty() {
        out.push(check(
            "process_env",
            Level::Ok,
            format!("{seen} running bursar process(es) of this data dir hold no secret in their environment"),
        ));
    }
    out
}

/// Compose files: every published port on 127.0.0.1 / [::1] only, no host networking, and
/// secrets as `_FILE` variables only. Read line by line (the short and long port syntaxes).
fn compose_files(explicit: &[PathBuf]) -> Vec<Check> {
    let files: Vec<PathBuf> = if explicit.is_empty() {
        let mut found: Vec<PathBuf> = std::fs::read_dir(".")
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                (name.starts_with("docker-compose") || name.starts_with("compose"))
                    && (name.ends_with(".yml") || name.ends_with(".yaml"))
            })
            .collect();
        found.sort();
        found
    } else {
        explicit.to_vec()
    };
    let mut out = Vec::new();
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(err) => {
                out.push(check("compose", Level::Fail, format!("{}: {err}", file.display())));
                continue;
            }
        };
        let problems = compose_problems(&text);
        if problems.is_empty() {
            out.push(check(
                "compose",
                Level::Ok,
                format!("{}: ports on loopback only, secrets as files", file.display()),
            ));
        }
        for problem in problems {
            out.push(check("compose", Level::Fail, format!("{}: {problem}", file.display())));
        }
    }
    out
}

/// What is wrong in one compose file's text.
fn compose_problems(text: &str) -> Vec<String> {
    let loopback = |host: &str| {
        let host = host.trim_matches(|c| c == '[' || c == ']');
        host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    };
    let mut problems = Vec::new();
    // (indent of the `ports:` key) while inside its list; the long syntax's open item.
    let mut ports: Option<usize> = None;
    let mut long_item: Option<(usize, Option<String>)> = None;
    let finish_long = |item: Option<(usize, Option<String>)>, problems: &mut Vec<String>| {
        if let Some((line, host_ip)) = item
            && !host_ip.as_deref().is_some_and(loopback)
        {
            problems.push(format!(
                "line {line}: a published port without host_ip: 127.0.0.1 listens on every interface"
            ));
        }
    };
    for (n, raw) in text.lines().enumerate() {
        let line_no = n + 1;
        let line = raw.split(" #").next().unwrap_or("").trim_end();
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        let unquote = |s: &str| s.trim().trim_matches(|c| c == '"' || c == '\'').to_owned();
        if let Some(key_indent) = ports {
            if indent <= key_indent && !trimmed.starts_with('-') || indent < key_indent {
                finish_long(long_item.take(), &mut problems);
                ports = None;
            } else if let Some(item) = trimmed.strip_prefix('-') {
                finish_long(long_item.take(), &mut problems);
                let item = item.trim();
                if item.starts_with("target:") || item.starts_with("published:") || item.starts_with("host_ip:") {
                    let host = item.strip_prefix("host_ip:").map(unquote);
                    long_item = Some((line_no, host));
                } else {
                    let spec = unquote(item);
                    let spec = spec.split('/').next().unwrap_or("");
                    // host_ip:published:target, with IPv6 in brackets.
                    let host = match spec.strip_prefix('[') {
                        Some(rest) => rest.split(']').next().map(str::to_owned),
                        None => {
                            let parts: Vec<&str> = spec.split(':').collect();
                            (parts.len() == 3).then(|| parts[0].to_owned())
                        }
                    };
                    if !host.as_deref().is_some_and(loopback) {
                        problems.push(format!(
                            "line {line_no}: ports \"{spec}\" listens on every interface of the host; publish as \"127.0.0.1:{}\"",
                            spec.rsplit(':').take(2).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(":")
                        ));
                    }
                }
                continue;
            } else if let Some((_, host)) = long_item.as_mut()
                && let Some(value) = trimmed.strip_prefix("host_ip:")
            {
                *host = Some(unquote(value));
                continue;
            } else {
                continue;
            }
        }
        if trimmed == "ports:" {
            ports = Some(indent);
            continue;
        }
        if trimmed.starts_with("network_mode:") && unquote(&trimmed["network_mode:".len()..]) == "host" {
            problems.push(format!(
                "line {line_no}: network_mode: host puts the daemon's 0.0.0.0 on every interface of the host"
            ));
        }
        // `NAME: value` or `- NAME=value` in an environment block.
        let entry = trimmed.trim_start_matches('-').trim_start();
        for name in SECRET_VARS {
            let plain = entry
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(':') || rest.starts_with('='));
            if plain {
                problems.push(format!(
                    "line {line_no}: {name} as a plain variable shows in `docker inspect` and /proc/*/environ; mount a secret and set {name}_FILE"
                ));
            }
        }
    }
    finish_long(long_item.take(), &mut problems);
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_ports_beyond_loopback_and_plain_secrets_are_found() {
        let bad = "services:\n  bursar:\n    ports:\n      - \"3100:3100\"\n      - 0.0.0.0:3101:3100\n      - \"127.0.0.1:3102:3100\"\n      - \"[::1]:3103:3100/tcp\"\n      - target: 3100\n        published: 3104\n      - target: 3100\n        host_ip: 127.0.0.1\n        published: 3105\n    environment:\n      BURSAR_MASTER_PASSWORD: hunter2hunter2\n      BURSAR_MASTER_PASSWORD_FILE: /run/secrets/x\n      - BURSAR_SESSION_TOKEN=abc\n    network_mode: host\n";
        let problems = compose_problems(bad);
        let lines: Vec<&str> = problems.iter().map(|p| p.split(':').next().unwrap()).collect();
        assert_eq!(
            lines,
            ["line 4", "line 5", "line 8", "line 14", "line 16", "line 17"],
            "{problems:#?}"
        );
        assert!(problems[0].contains("127.0.0.1:3100:3100"), "{}", problems[0]);
        assert!(
            !problems.iter().any(|p| p.contains("hunter2")),
            "a finding quotes a value"
        );
        let repo = include_str!("../../docker-compose.yml");
        assert_eq!(compose_problems(repo), Vec::<String>::new());
        let overlay = include_str!("../../docker-compose.secrets.yml");
        assert_eq!(compose_problems(overlay), Vec::<String>::new());
    }

    #[test]
    fn copies_are_recognised_by_name() {
        for copy in [
            "recovery.key.bak",
            "config.toml~",
            "x.tmp",
            ".b.tmp-12",
            "recovery.key.old",
            "a.backup",
        ] {
            assert!(looks_like_a_copy(copy), "{copy}");
        }
        for own in ["metrics.token", "webhook.secret", "telegram.token"] {
            assert!(!looks_like_a_copy(own), "{own}");
        }
    }
}

//! `bursar doctor`: the security checklist. Permissions of the data dir, the store's files
//! and secret files, `recovery.key` (stale after `set-master`, or readable while agent
//! sessions exist), secrets in env, a non-loopback bind, weak KDF parameters, an old JWT
//! secret, the audit chain (its MACs when a master password is at hand: `_FILE`, env or
//! recovery.key; doctor never prompts). `--fix` repairs what is safe to repair (permissions).

use super::client::{Client, Credential};
use super::{CliResult, Output};
use crate::config::{self, Config, RECOVERY_KEY_FILE, STORE_DIR};
use crate::keystore::KeystoreMeta;
use crate::store::records::{DaemonRecord, SessionRecord};
use crate::store::{Store, StoreError, keys};
use anyhow::anyhow;
use serde::Serialize;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

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

pub async fn run(data_dir: &Path, fix: bool, url: Option<String>, out: &Output) -> CliResult {
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

    for var in ["BURSAR_MASTER_PASSWORD", "BURSAR_SESSION_TOKEN"] {
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
    let opened = Store::open(&data_dir.join(STORE_DIR));
    let daemon_holds_store = matches!(opened, Err(StoreError::Locked));
    match opened {
        Ok(store) => {
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

//! `bursar backup create|restore`: the archive through the running daemon or from the
//! stopped store, and a restore that replaces nothing until the archive has opened and the
//! restored store has been checked.

use super::commands::{master_client, service_error};
use super::{BackupCommand, CliError, CliResult, Output, password};
use crate::config::{self, Config, STORE_DIR};
use crate::secret::Passphrase;
use crate::service::{RestoreOptions, ServiceError};
use crate::store::StoreError;
use anyhow::{Context, anyhow};
use reqwest::Method;
use secrecy::ExposeSecret;
use std::path::{Path, PathBuf};

pub const PASSPHRASE_VAR: &str = "BURSAR_BACKUP_PASSPHRASE";

pub async fn run(cmd: BackupCommand, data_dir: &Path, url: Option<String>, out: &Output) -> CliResult {
    match cmd {
        BackupCommand::Create {
            file,
            passphrase_file,
            force,
        } => create(data_dir, url, &file, passphrase_file.as_deref(), force, out).await,
        BackupCommand::Restore {
            file,
            passphrase_file,
            force,
            drop_sessions,
        } => restore(
            data_dir,
            &file,
            passphrase_file.as_deref(),
            RestoreOptions { force, drop_sessions },
            out,
        ),
    }
}

/// A separate backup passphrase: `--passphrase-file`, then `BURSAR_BACKUP_PASSPHRASE_FILE`
/// (or the plain variable, with a warning). `None`: the master password seals the archive.
fn separate_passphrase(file: Option<&Path>, out: &Output) -> CliResult<Option<Passphrase>> {
    let found = match file {
        Some(path) => Some(config::read_secret_file(path)?),
        None => match config::secret_from_env(PASSPHRASE_VAR)? {
            Some((passphrase, _, warning)) => {
                if let Some(w) = warning {
                    out.note(&format!("warning: {w}"));
                }
                Some(passphrase)
            }
            None => None,
        },
    };
    if let Some(p) = &found {
        crate::secret::check_new_master_password(p).map_err(|rule| anyhow!("backup passphrase: {rule}"))?;
    }
    Ok(found)
}

async fn create(
    data_dir: &Path,
    url: Option<String>,
    file: &Path,
    passphrase_file: Option<&Path>,
    force: bool,
    out: &Output,
) -> CliResult {
    let store_dir = data_dir.join(STORE_DIR);
    if file.starts_with(&store_dir) {
        return Err(usage(anyhow!(
            "{} is inside the store; write the backup elsewhere",
            file.display()
        )));
    }
    if file.exists() && !force {
        return Err(anyhow!("{} exists; add --force to replace it", file.display()).into());
    }
    let separate = separate_passphrase(passphrase_file, out)?;
    let (cfg, _) = Config::load(data_dir)?;
    // A stopped store is read directly; one held by a daemon is taken through it.
    let offline = {
        let (passphrase, is_master) = match &separate {
            Some(p) => (p.clone(), false),
            None => match password::from_sources(data_dir)? {
                Some(found) => (found.password, true),
                None => (password::obtain(data_dir)?.password, true),
            },
        };
        match crate::service::backup_offline(&store_dir, cfg.keystore.kdf(), &passphrase, is_master) {
            Err(ServiceError::Store(StoreError::Locked)) => None,
            Err(ServiceError::WrongPassword) => {
                return Err(super::denied(anyhow!(
                    "the master password does not open this store; nothing was written"
                )));
            }
            other => Some(other.map_err(service_error)?),
        }
    };
    let (archive, how) = match offline {
        Some(archive) => (archive, "from the stopped store"),
        None => {
            let client = master_client(data_dir, url)?;
            let body = match &separate {
                Some(p) => serde_json::json!({ "passphrase": p.expose_secret() }),
                None => serde_json::json!({}),
            };
            let archive = client.send_for_bytes(Method::POST, "/v1/admin/backup", &body).await?;
            (archive, "through the running daemon")
        }
    };
    let header = crate::backup::header(&archive).map_err(|e| anyhow!("the archive is not readable: {e}"))?;
    write_replacing(file, &archive).with_context(|| format!("writing {}", file.display()))?;
    let summary = serde_json::json!({
        "file": file, "bytes": archive.len(), "entries": header.entries, "createdAt": header.created_at,
        "sealedWith": if separate.is_some() { "backup passphrase" } else { "master password" },
        "taken": how,
    });
    out.emit(&summary, |s| {
        format!(
            "backup written to {} ({} bytes, {} entries, taken {how}), sealed with the {}\nrestore with `bursar backup restore {}` (the daemon stopped)",
            file.display(),
            s["bytes"],
            s["entries"],
            s["sealedWith"].as_str().unwrap_or_default(),
            file.display()
        )
    });
    Ok(())
}

fn restore(
    data_dir: &Path,
    file: &Path,
    passphrase_file: Option<&Path>,
    options: RestoreOptions,
    out: &Output,
) -> CliResult {
    let archive = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    crate::backup::header(&archive).map_err(|e| anyhow!("{}: {e}", file.display()))?;
    config::create_data_dir(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let separate = separate_passphrase(passphrase_file, out)?;
    // The master password, when at hand, checks that the restored store opens with it.
    let master = password::from_sources(data_dir)?.map(|f| f.password);
    let passphrase = match (&separate, &master) {
        (Some(p), _) => p.clone(),
        (None, Some(m)) => m.clone(),
        (None, None) => password::obtain(data_dir)?.password,
    };
    let master = master.or_else(|| separate.is_none().then(|| passphrase.clone()));
    let report = crate::service::restore(
        &data_dir.join(STORE_DIR),
        &archive,
        &passphrase,
        master.as_ref(),
        options,
    )
    .map_err(|err| match err {
        ServiceError::Forbidden(msg) => super::denied(anyhow!("{msg}; nothing was restored")),
        other => service_error(other),
    })?;
    out.emit(&report, |r| {
        let mut s = format!(
            "restored {} ({} entries from {}): {} wallet(s), {} transfer(s), {} session(s) kept, {} dropped\naudit chain: {} entries, verified{}",
            data_dir.join(STORE_DIR).display(),
            r.entries,
            time::OffsetDateTime::from_unix_timestamp(r.created_at)
                .ok()
                .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
                .unwrap_or_else(|| r.created_at.to_string()),
            r.wallets,
            r.transfers,
            r.sessions_kept,
            r.sessions_dropped,
            r.audit.entries,
            if r.audit.mac_checked { " (MACs included)" } else { " (links; MACs at the next start)" },
        );
        if r.replaced_existing_store {
            s += "\nthe previous store was replaced";
        }
        s += "\nnext: bursar start (with the master password of the backed-up store)";
        s
    });
    Ok(())
}

fn usage(error: anyhow::Error) -> CliError {
    CliError { code: 2, error }
}

/// Writes `bytes` to `path` (0600) through a temporary file renamed over it.
fn write_replacing(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp: PathBuf = path.to_owned();
    tmp.set_file_name(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("backup"),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    config::write_private_file(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

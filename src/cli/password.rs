//! Where the master password comes from, in the contract's order: `_FILE`, env,
//! `<data>/recovery.key`, then a hidden prompt on a terminal.

use crate::config::{self, RECOVERY_KEY_FILE, SecretSource};
use crate::secret::Passphrase;
use anyhow::{Context, bail};
use secrecy::ExposeSecret;
use std::io::IsTerminal;
use std::path::Path;

pub const MASTER_VAR: &str = "BURSAR_MASTER_PASSWORD";

/// A master password and a warning to show, if its source deserves one.
pub struct Found {
    pub password: Passphrase,
    pub warning: Option<String>,
}

/// The non-interactive sources only.
pub fn from_sources(data_dir: &Path) -> anyhow::Result<Option<Found>> {
    if let Some((password, source, warning)) = config::secret_from_env(MASTER_VAR)? {
        if let SecretSource::File(path) = &source {
            tracing::debug!(path = %path.display(), "master password from file");
        }
        return Ok(Some(Found { password, warning }));
    }
    let recovery = data_dir.join(RECOVERY_KEY_FILE);
    if recovery.exists() {
        let password = config::read_secret_file(&recovery)?;
        return Ok(Some(Found {
            password,
            warning: None,
        }));
    }
    Ok(None)
}

/// All sources, prompting (hidden) on a terminal as the last resort.
pub fn obtain(data_dir: &Path) -> anyhow::Result<Found> {
    if let Some(found) = from_sources(data_dir)? {
        return Ok(found);
    }
    if std::io::stdin().is_terminal() {
        let password = rpassword::prompt_password("bursar master password: ").context("reading the password")?;
        return Ok(Found {
            password: Passphrase::from(password),
            warning: None,
        });
    }
    bail!(
        "no master password available\nset BURSAR_MASTER_PASSWORD_FILE, keep <data>/{RECOVERY_KEY_FILE} (bursar init --auto-provision), or run on a terminal"
    )
}

/// A new password: from a file, or typed twice on a terminal.
pub fn new_password(file: Option<&Path>, what: &str) -> anyhow::Result<Passphrase> {
    let password = match file {
        Some(path) => config::read_secret_file(path)?,
        None => {
            if !std::io::stdin().is_terminal() {
                bail!("no terminal to ask for the {what}; pass it with a file");
            }
            let first = Passphrase::from(rpassword::prompt_password(format!("new {what}: "))?);
            let second = Passphrase::from(rpassword::prompt_password(format!("repeat the {what}: "))?);
            if !crate::secret::ct_eq(first.expose_secret().as_bytes(), second.expose_secret().as_bytes()) {
                bail!("the two entries differ");
            }
            first
        }
    };
    if password.expose_secret().chars().count() < 12 {
        bail!("the {what} must be at least 12 characters");
    }
    Ok(password)
}

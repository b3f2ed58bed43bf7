//! Where the master password comes from, in the contract's order: `_FILE`, env,
//! `<data>/recovery.key`, then a hidden prompt on a terminal. A *new* password (from `init`
//! or `set-master`) must also pass the one rule, `secret::check_new_master_password`, whatever
//! its source.

use crate::config::{self, RECOVERY_KEY_FILE, SecretSource};
use crate::secret::Passphrase;
use anyhow::{Context, anyhow, bail};
use secrecy::ExposeSecret;
use std::io::IsTerminal;
use std::path::Path;

pub const MASTER_VAR: &str = "BURSAR_MASTER_PASSWORD";

/// A master password, where it came from, and a warning to show if its source deserves one.
pub struct Found {
    pub password: Passphrase,
    pub warning: Option<String>,
    pub source: Source,
}

impl std::fmt::Debug for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Found {{ password: [REDACTED], source: {:?} }}", self.source)
    }
}

/// Where a master password was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    File,
    Env,
    RecoveryKey,
    Prompt,
    /// `set-master --new-password-file`.
    NewPasswordFile,
}

impl Source {
    fn describe(self) -> &'static str {
        match self {
            Source::File => "from BURSAR_MASTER_PASSWORD_FILE",
            Source::Env => "from BURSAR_MASTER_PASSWORD",
            Source::RecoveryKey => "from recovery.key",
            Source::Prompt => "as typed",
            Source::NewPasswordFile => "from --new-password-file",
        }
    }
}

/// The non-interactive sources only.
pub fn from_sources(data_dir: &Path) -> anyhow::Result<Option<Found>> {
    if let Some((password, source, warning)) = config::secret_from_env(MASTER_VAR)? {
        let source = match &source {
            SecretSource::File(path) => {
                tracing::debug!(path = %path.display(), "master password from file");
                Source::File
            }
            SecretSource::Env => Source::Env,
        };
        return Ok(Some(Found {
            password,
            warning,
            source,
        }));
    }
    let recovery = data_dir.join(RECOVERY_KEY_FILE);
    if recovery.exists() {
        let password = config::read_secret_file(&recovery)?;
        return Ok(Some(Found {
            password,
            warning: None,
            source: Source::RecoveryKey,
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
            source: Source::Prompt,
        });
    }
    bail!(
        "no master password available\nset BURSAR_MASTER_PASSWORD_FILE, keep <data>/{RECOVERY_KEY_FILE} (bursar init --auto-provision), or run on a terminal"
    )
}

/// Refuses a new master password that breaks the rule, saying where it came from. The
/// message never holds the password.
pub fn check_new(found: &Found) -> anyhow::Result<()> {
    crate::secret::check_new_master_password(&found.password).map_err(|rule| {
        anyhow!(
            "{rule} (the password {})\na master password is {}-{} characters of printable ASCII (letters, digits, punctuation; spaces only inside); a password file may end with a newline",
            found.source.describe(),
            crate::secret::MASTER_PASSWORD_MIN_CHARS,
            crate::secret::MASTER_PASSWORD_MAX_CHARS,
        )
    })
}

/// A new password: from a file, or typed twice on a terminal; checked against the rule.
pub fn new_password(file: Option<&Path>, what: &str) -> anyhow::Result<Passphrase> {
    let found = match file {
        Some(path) => Found {
            password: config::read_secret_file(path)?,
            warning: None,
            source: Source::NewPasswordFile,
        },
        None => {
            if !std::io::stdin().is_terminal() {
                bail!("no terminal to ask for the {what}; pass it with a file");
            }
            let first = Passphrase::from(rpassword::prompt_password(format!("new {what}: "))?);
            let second = Passphrase::from(rpassword::prompt_password(format!("repeat the {what}: "))?);
            if !crate::secret::ct_eq(first.expose_secret().as_bytes(), second.expose_secret().as_bytes()) {
                bail!("the two entries differ");
            }
            Found {
                password: first,
                warning: None,
                source: Source::Prompt,
            }
        }
    };
    check_new(&found)?;
    Ok(found.password)
}

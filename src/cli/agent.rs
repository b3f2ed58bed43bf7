//! Where `quickset` and `session prompt` put the agent's token files, and the check that the
//! agent host cannot read the master password from there.
//!
//! The agent is the adversary: whatever its OS user can read, a prompt-injected agent can
//! read. So token files live outside the data directory (default
//! `$XDG_CONFIG_HOME/bursar-agent`, else `~/.config/bursar-agent`: 0700, files 0600), and
//! while `<data>/recovery.key` — the master password in clear — is readable by the OS user
//! that owns the token directory (the user the agent host runs as), both commands refuse
//! unless told `--insecure-allow-recovery-key`.

use super::{AgentFiles, CliError, CliResult, Output};
use crate::config::RECOVERY_KEY_FILE;
use anyhow::{Context, anyhow};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A checked place for token files.
pub struct TokenDir {
    pub dir: PathBuf,
    /// The OS user (and group) the files are given to, when it is not us.
    owner: Option<(u32, u32)>,
}

/// `$XDG_CONFIG_HOME/bursar-agent`, else `~/.config/bursar-agent`: next to where agent hosts
/// keep their own configuration on Linux, and outside bursar's data directory.
pub fn default_token_dir() -> PathBuf {
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    std::env::var_os("XDG_CONFIG_HOME")
        .and_then(absolute)
        .or_else(|| std::env::var_os("HOME").and_then(absolute).map(|h| h.join(".config")))
        .unwrap_or_else(|| PathBuf::from(".config"))
        .join("bursar-agent")
}

fn usage(error: anyhow::Error) -> CliError {
    CliError { code: 2, error }
}

fn euid() -> u32 {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

impl TokenDir {
    /// Creates (0700) or checks the directory, refuses one inside the data directory, and
    /// refuses while `recovery.key` is readable by the directory's owner (see the module doc).
    pub fn prepare(data_dir: &Path, dir: &Path, files: &AgentFiles, out: &Output) -> CliResult<Self> {
        let resolved = resolve(dir).with_context(|| format!("resolving the token directory {}", dir.display()))?;
        if let Ok(data) = data_dir.canonicalize()
            && resolved.starts_with(&data)
        {
            return Err(usage(anyhow!(
                "the token directory {} is inside the data directory {}\nthe agent host would have to read the data directory, where the master password and the store live; choose a directory outside it with --token-dir",
                resolved.display(),
                data.display()
            )));
        }
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("creating the token directory {}", dir.display()))?;
        }
        let dir = dir
            .canonicalize()
            .with_context(|| format!("resolving the token directory {}", dir.display()))?;
        let meta = std::fs::metadata(&dir).with_context(|| format!("reading {}", dir.display()))?;
        if !meta.is_dir() {
            return Err(usage(anyhow!("{} is not a directory", dir.display())));
        }
        let me = euid();
        let agent_uid = meta.uid();
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            out.note(&format!(
                "warning: {} is accessible by group or others (mode {mode:04o}); the token files are 0600, but consider `chmod 700 {}`",
                dir.display(),
                dir.display()
            ));
        }
        if agent_uid != me && me != 0 {
            return Err(usage(anyhow!(
                "the token directory {} belongs to another OS user (uid {agent_uid}); only root can hand token files to it\nrun this command as root (e.g. with sudo -E), or choose a directory you own",
                dir.display()
            )));
        }
        refuse_readable_recovery_key(data_dir, agent_uid, me, files.insecure_allow_recovery_key, out)?;
        Ok(Self {
            owner: (agent_uid != me).then_some((agent_uid, meta.gid())),
            dir,
        })
    }

    /// Writes `token` to `file` (in this directory) atomically, 0600, owned by the agent's
    /// OS user when that is not us.
    pub fn write(&self, file: &Path, token: &str) -> CliResult {
        super::mcp::write_token_file(file, token).with_context(|| format!("writing {}", file.display()))?;
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(file, Some(uid), Some(gid)).with_context(|| {
                format!(
                    "giving {} to uid {uid}, the owner of its directory (run as root, or as that user)",
                    file.display()
                )
            })?;
        }
        Ok(())
    }
}

/// `path` with symlinks resolved as far as it exists (the rest appended as given), so a
/// directory can be judged before it is created.
fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) else {
            break;
        };
        rest.push(name.to_owned());
        existing = parent;
    }
    let mut out = existing.canonicalize()?;
    out.extend(rest.iter().rev());
    Ok(out)
}

/// Whether the OS user `agent_uid` can read `<data>/recovery.key`: always when it is us (a
/// process of the same user can read whatever we can), otherwise when its mode lets group or
/// others read (conservative: group membership is not checked).
fn refuse_readable_recovery_key(data_dir: &Path, agent_uid: u32, me: u32, allow: bool, out: &Output) -> CliResult {
    let recovery = data_dir.join(RECOVERY_KEY_FILE);
    let Ok(meta) = std::fs::metadata(&recovery) else {
        return Ok(());
    };
    let readable = agent_uid == me || agent_uid == meta.uid() || meta.permissions().mode() & 0o044 != 0;
    if !readable {
        return Ok(());
    }
    let problem = format!(
        "{} holds the master password, and the agent host, running as the OS user that owns the token directory (uid {agent_uid}), can read it: a prompt-injected agent could take the master password and every fund",
        recovery.display()
    );
    let fix = "fix: run `bursar set-master --delete-recovery-key` (then start the daemon with BURSAR_MASTER_PASSWORD_FILE kept where the agent's user cannot read it, or type the password at the prompt), or run the agent host under its own OS user and pass --token-dir with a directory that user owns";
    if allow {
        out.note(&format!(
            "WARNING (--insecure-allow-recovery-key): {problem}\n{fix}\nonly acceptable for a throwaway local demo"
        ));
        return Ok(());
    }
    Err(anyhow!("{problem}\n{fix}\n(for a throwaway local demo only: --insecure-allow-recovery-key)").into())
}

/// The token directory chosen on the command line, or the default one.
pub fn token_dir(files: &AgentFiles) -> PathBuf {
    files.token_dir.clone().unwrap_or_else(default_token_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_token_dir_is_under_the_config_home() {
        let dir = default_token_dir();
        assert!(dir.ends_with("bursar-agent"), "{dir:?}");
    }
}

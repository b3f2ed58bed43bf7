//! The command line: clap arguments → one action each. `init`, `start` and `doctor` work on
//! the data directory; every other command talks to the running daemon over REST (sled
//! allows one process, and the daemon owns it).
//!
//! Exit codes: 0 ok, 1 failure, 2 usage, 3 denied (authentication or policy).

mod agent;
mod backup;
mod client;
mod commands;
mod doctor;
mod mcp;
mod output;
mod owner;
mod password;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

pub use output::Output;

const AFTER_HELP: &str = "Exit codes: 0 ok, 1 failure, 2 usage error, 3 denied (authentication or policy).
Master password sources, first found wins: BURSAR_MASTER_PASSWORD_FILE, BURSAR_MASTER_PASSWORD,
<data>/recovery.key, then a hidden prompt on a terminal.";

#[derive(Debug, Parser)]
#[command(name = "bursar", version, about = "Self-hosted wallet daemon for AI agents", after_help = AFTER_HELP)]
pub struct Cli {
    /// Data directory [default: $BURSAR_DATA_DIR or ~/.bursar]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print machine-readable JSON on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// Daemon URL for client commands [default: $BURSAR_URL or http://127.0.0.1:3100]
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the data directory, the encrypted keystore and the config file
    Init {
        /// Generate a random master password and write it to <data>/recovery.key (0600)
        #[arg(long)]
        auto_provision: bool,
    },
    /// Run the daemon in the foreground (SIGINT/SIGTERM stop it gracefully)
    Start {
        /// Listen address [default: config server.bind, 127.0.0.1:3100]
        #[arg(long, value_name = "ADDR")]
        bind: Option<SocketAddr>,
        /// First boot: initialise an uninitialised data directory before starting, with the
        /// master password from BURSAR_MASTER_PASSWORD_FILE (or env) when one is given,
        /// otherwise a random one written to <data>/recovery.key (0600). An initialised
        /// directory is left as it is
        #[arg(long, env = "BURSAR_AUTO_PROVISION", value_parser = clap::builder::FalseyValueParser::new())]
        auto_provision: bool,
    },
    /// Exit 0 when the daemon answers /health, 1 otherwise (a container healthcheck: needs
    /// no credential and no other tool)
    Health {
        /// Give up after this many seconds
        #[arg(long, value_name = "SECONDS", default_value_t = 3)]
        timeout: u64,
    },
    /// Ask the running daemon to shut down
    Stop,
    /// One wallet per configured chain, a bounded session for each (token in a 0600 file
    /// outside the data dir), and a ready claude_desktop_config.json block
    Quickset {
        /// Token lifetime in seconds
        #[arg(long, value_name = "SECONDS", default_value_t = 86_400)]
        ttl: u64,
        /// How many times the agent may renew
        #[arg(long, default_value_t = 30)]
        max_renewals: u32,
        /// No renewal reaches past this many seconds from now
        #[arg(long, value_name = "SECONDS", default_value_t = 30 * 86_400)]
        absolute_lifetime: u64,
        #[command(flatten)]
        agent: AgentFiles,
    },
    /// Show whether the daemon is up (and its state, when a master password is available)
    Status,
    /// Change the master password: re-encrypts every key and secret atomically
    SetMaster {
        /// Read the new password from this file instead of prompting twice
        #[arg(long, value_name = "PATH")]
        new_password_file: Option<PathBuf>,
        /// Delete <data>/recovery.key in the same step, without asking
        #[arg(long, conflicts_with = "keep_recovery_key")]
        delete_recovery_key: bool,
        /// Keep <data>/recovery.key, rewritten with the new password in the same step, without
        /// asking (`doctor` flags it; `quickset` refuses while an agent could read it)
        #[arg(long)]
        keep_recovery_key: bool,
    },
    /// Manage wallets (one key on one configured chain)
    #[command(subcommand)]
    Wallet(WalletCommand),
    /// Manage agent sessions
    #[command(subcommand)]
    Session(SessionCommand),
    /// Manage a wallet's policies (what an agent may do without asking)
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The agent's transfers, with its session token (BURSAR_SESSION_TOKEN_FILE)
    #[command(subcommand)]
    Tx(TxCommand),
    /// Read and verify the audit log
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The fund owner: register, prove control, approve or reject transfers
    #[command(subcommand)]
    Owner(owner::OwnerCommand),
    /// Freeze wallets at once: revoke sessions, cancel what is pending, sign nothing
    #[command(subcommand)]
    KillSwitch(owner::KillSwitchCommand),
    /// MCP server on stdio for agent hosts (Claude Desktop): forwards to the daemon with the
    /// session token from BURSAR_SESSION_TOKEN_FILE; stdout carries only JSON-RPC
    Mcp,
    /// Encrypted backups of the whole store (wallets, policies, owners, transfers, audit chain)
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Check the installation against the security checklist
    Doctor {
        /// Repair what can be repaired safely (file permissions)
        #[arg(long)]
        fix: bool,
        /// A compose file to check (published ports, secrets in env); repeatable [default:
        /// docker-compose*.yml / compose*.yml in the current directory]
        #[arg(long, value_name = "FILE")]
        compose: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Write an encrypted archive of the whole store to FILE (0600). With a running daemon it
    /// is taken through the daemon (master password; a consistent snapshot while it serves);
    /// otherwise from the stopped store. Sealed under the master password, or the passphrase
    /// from --passphrase-file / BURSAR_BACKUP_PASSPHRASE_FILE
    Create {
        file: PathBuf,
        /// Seal under the passphrase in this file instead of the master password
        #[arg(long, value_name = "PATH")]
        passphrase_file: Option<PathBuf>,
        /// Replace FILE if it exists
        #[arg(long)]
        force: bool,
    },
    /// Replace the store with an archive's (the daemon must be stopped). The archive must open
    /// and its audit chain verify (its MACs too when the master password is at hand) before
    /// anything is replaced
    Restore {
        file: PathBuf,
        /// The passphrase the archive was sealed under, if not the master password
        #[arg(long, value_name = "PATH")]
        passphrase_file: Option<PathBuf>,
        /// Replace an existing store (its wallets, sessions and history are lost)
        #[arg(long)]
        force: bool,
        /// Leave the archive's agent sessions out: every token issued before stops working
        #[arg(long)]
        drop_sessions: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum WalletCommand {
    /// Create a wallet on a configured chain
    Create {
        #[arg(long)]
        name: String,
        /// A chain name from config.toml ([chains.<name>])
        #[arg(long)]
        chain: String,
    },
    /// List wallets
    List,
    /// Show one wallet
    Show { id: String },
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Issue a session token for an agent, bound to one wallet
    Create {
        #[arg(long, value_name = "WALLET_ID")]
        wallet: String,
        /// Token lifetime in seconds
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<u64>,
        /// How many times the agent may renew the token
        #[arg(long)]
        max_renewals: Option<u32>,
        /// No renewal reaches past this many seconds from now
        #[arg(long, value_name = "SECONDS")]
        absolute_lifetime: Option<u64>,
    },
    /// List sessions
    List {
        #[arg(long, value_name = "WALLET_ID")]
        wallet: Option<String>,
    },
    /// Revoke a session: its token stops working at once
    Revoke { id: String },
    /// Replace the token-signing secret: every session token stops working
    RotateSecret,
    /// Interactive: pick a wallet, lifetime and an optional basic policy, then print a ready
    /// MCP config block (answers are read line by line from stdin; prompts go to stderr)
    Prompt {
        /// Write the token to this file (0600; replaced if it exists) instead of
        /// <token dir>/<session id>.token
        #[arg(long, value_name = "PATH", conflicts_with = "token_dir")]
        token_file: Option<PathBuf>,
        #[command(flatten)]
        agent: AgentFiles,
    },
}

/// Where agent token files go, and the one unsafe escape hatch.
#[derive(Debug, clap::Args)]
pub struct AgentFiles {
    /// Directory for the agent's token files (0700, files 0600), outside the data dir; the
    /// agent host must be able to read it. When another OS user owns it, the files are
    /// given to that user [default: $XDG_CONFIG_HOME/bursar-agent or ~/.config/bursar-agent]
    #[arg(long, value_name = "DIR")]
    pub token_dir: Option<PathBuf>,
    /// UNSAFE: go on although <data>/recovery.key (the master password) is readable by the OS
    /// user the agent host runs as, so a prompt-injected agent can read it and take every
    /// fund. Only for a throwaway local demo
    #[arg(long)]
    pub insecure_allow_recovery_key: bool,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Attach a policy (types and rules: see README "Policies")
    Add {
        #[arg(long, value_name = "WALLET_ID")]
        wallet: String,
        /// SPENDING_LIMIT, WHITELIST, ALLOWED_TOKENS, RATE_LIMIT, TIME_RESTRICTION, …
        #[arg(long = "type", value_name = "TYPE")]
        kind: String,
        /// The rules as JSON, e.g. '{"instant_max":"0.1","notify_max":"0.5"}'
        #[arg(long, conflicts_with = "rules_file", required_unless_present = "rules_file")]
        rules: Option<String>,
        /// Read the rules JSON from a file
        #[arg(long, value_name = "PATH")]
        rules_file: Option<PathBuf>,
    },
    /// List policies
    List {
        #[arg(long, value_name = "WALLET_ID")]
        wallet: Option<String>,
    },
    /// Remove a policy
    Remove { id: String },
}

#[derive(Debug, Subcommand)]
pub enum TxCommand {
    /// List the session's transfers, newest first
    List {
        /// REQUESTED, DELAYED, PENDING_APPROVAL, SIGNED, SUBMITTED, CONFIRMED, DENIED, …
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only transfers older than this id (the cursor the previous page printed)
        #[arg(long, value_name = "TX_ID")]
        before: Option<String>,
    },
    /// Show one transfer
    Show { id: String },
    /// Cancel a DELAYED or PENDING_APPROVAL transfer (the session's own wallet, or with
    /// --operator any wallet's, with the master password)
    Cancel {
        id: String,
        /// Cancel as the operator (master password) instead of with the session token
        #[arg(long)]
        operator: bool,
    },
    /// Operator: replace a stuck SIGNED/SUBMITTED transfer with higher fees (same nonce)
    SpeedUp { id: String },
    /// Operator: use a stuck transfer's nonce for a zero-value transfer to the wallet itself
    CancelOnchain { id: String },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit entries (newest last)
    List {
        #[arg(long)]
        kind: Option<String>,
        #[arg(long, value_name = "WALLET_ID")]
        wallet: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Only entries before this sequence number (the cursor the previous page printed)
        #[arg(long, value_name = "SEQ")]
        before: Option<u64>,
    },
    /// Recompute the chain: every entry's HMAC (legacy entries: SHA-256) and link; exit 1
    /// naming the first entry that does not verify
    Verify,
}

/// A failure with its exit code.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for CliError {
    fn from(err: E) -> Self {
        Self {
            code: 1,
            error: err.into(),
        }
    }
}

pub fn denied(error: anyhow::Error) -> CliError {
    CliError { code: 3, error }
}

pub type CliResult<T = ()> = Result<T, CliError>;

/// Entry point of the binary.
pub fn main() -> ExitCode {
    private_umask();
    let cli = Cli::parse();
    let out = Output::new(cli.json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(cli, &out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            out.error(&err.error);
            ExitCode::from(err.code)
        }
    }
}

/// Everything bursar creates is private to its OS user, whatever umask it was started with:
/// sled's store files (made with the umask, also later ones: snapshots, blobs), token files,
/// `recovery.key`. Files that must be shared do not exist.
fn private_umask() {
    // SAFETY: umask(2) only replaces the process's file-creation mask; it cannot fail and
    // touches no memory. It runs first in `main`, before any other thread exists.
    unsafe {
        libc::umask(0o077);
    }
}

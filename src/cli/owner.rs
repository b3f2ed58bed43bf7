//! `bursar owner …` and `bursar kill-switch …`: the operator's and the owner's commands.
//! Owner signatures come from a local key file (`--key-file`, 0600), or from any external
//! signer: the exact message goes to stdout (`--print-message` stops there) and the
//! signature is read back from `--signature` or stdin.

use super::client::{Client, path_segment};
use super::output::Output;
use super::{CliError, CliResult};
use crate::api::dto;
use crate::domain::ChainKind;
use crate::owner::LocalKey;
use anyhow::{Context, anyhow};
use base64::Engine;
use clap::{Args, Subcommand};
use reqwest::Method;
use secrecy::ExposeSecret;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum OwnerCommand {
    /// Register the wallet's owner (GRACE); with --key-file also prove control (LOCKED)
    Connect {
        #[arg(value_name = "WALLET_ID")]
        wallet: String,
        /// The owner's address (taken from --key-file when given)
        #[arg(long, required_unless_present = "key_file")]
        address: Option<String>,
        #[command(flatten)]
        sign: SignArgs,
    },
    /// Show the owner and kill-switch state of a wallet
    Status {
        #[arg(value_name = "WALLET_ID")]
        wallet: String,
    },
    /// Remove the owner: master alone while GRACE, the owner's signature once LOCKED
    Disconnect {
        #[arg(value_name = "WALLET_ID")]
        wallet: String,
        #[command(flatten)]
        sign: SignArgs,
    },
    /// Approve a PENDING_APPROVAL transfer with the owner's signature
    Approve {
        #[arg(value_name = "TX_ID")]
        tx: String,
        #[command(flatten)]
        sign: SignArgs,
    },
    /// Reject a PENDING_APPROVAL transfer with the owner's signature
    Reject {
        #[arg(value_name = "TX_ID")]
        tx: String,
        #[command(flatten)]
        sign: SignArgs,
    },
    /// Cancel a DELAYED or PENDING_APPROVAL transfer with the owner's signature
    Cancel {
        #[arg(value_name = "TX_ID")]
        tx: String,
        #[command(flatten)]
        sign: SignArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum KillSwitchCommand {
    /// Freeze one wallet (--wallet) or every wallet
    On {
        #[arg(long, value_name = "WALLET_ID")]
        wallet: Option<String>,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift the freeze; a wallet with a LOCKED owner needs the owner's signature too
    Off {
        #[arg(long, value_name = "WALLET_ID")]
        wallet: Option<String>,
        #[command(flatten)]
        sign: SignArgs,
    },
    /// List frozen wallets
    Status,
}

/// How the owner signs.
#[derive(Debug, Args, Default)]
pub struct SignArgs {
    /// Sign with this owner key file (0600; EVM: hex secp256k1 key; Solana: keygen JSON or hex seed)
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
    /// Print the exact message to sign and stop (sign it elsewhere, e.g. `cast wallet sign`)
    #[arg(long, conflicts_with_all = ["key_file", "signature"])]
    print_message: bool,
    /// The signature of a message printed earlier (with --message-file)
    #[arg(long, requires = "message_file")]
    signature: Option<String>,
    /// The message that --signature signs
    #[arg(long, value_name = "PATH", requires = "signature")]
    message_file: Option<PathBuf>,
}

impl SignArgs {
    fn given(&self) -> bool {
        self.key_file.is_some() || self.print_message || self.signature.is_some()
    }
}

fn usage(msg: impl Into<String>) -> CliError {
    CliError {
        code: 2,
        error: anyhow!(msg.into()),
    }
}

fn read_key(path: &std::path::Path, kind: ChainKind) -> CliResult<LocalKey> {
    let text = crate::config::read_private_secret_file(path)?;
    LocalKey::parse(kind, text.expose_secret()).map_err(|e| usage(format!("{}: {e}", path.display())))
}

/// Signs `m` as `sign` says. `None`: the message was printed for an external signer.
fn owner_headers(m: &dto::OwnerMessage, sign: &SignArgs, out: &Output) -> CliResult<Option<Vec<(String, String)>>> {
    let (message, signature) = if let Some(path) = &sign.key_file {
        let key = read_key(path, crate::owner::kind_of(&m.message))?;
        if !key.address().eq_ignore_ascii_case(&m.owner) {
            return Err(usage(format!(
                "the key in {} is for {}, but the wallet's owner is {}",
                path.display(),
                key.address(),
                m.owner
            )));
        }
        (m.message.clone(), key.sign(&m.message).map_err(|e| anyhow!(e))?)
    } else if let (Some(sig), Some(path)) = (&sign.signature, &sign.message_file) {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        (text.trim_end_matches('\n').to_owned(), sig.clone())
    } else {
        // The message alone on stdout, so `$(bursar … --print-message)` is exactly it.
        out.raw(&m.message);
        if sign.print_message {
            out.note(&format!(
                "sign this exact text (EIP-191 personal_sign / Ed25519) before {}, then run again with \
                 --message-file <file with the text> --signature <signature>",
                m.expires_at
            ));
            return Ok(None);
        }
        out.note("paste the owner's signature of the message above and press Enter:");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).context("reading the signature")?;
        (m.message.clone(), line.trim().to_owned())
    };
    Ok(Some(vec![
        (
            "X-Owner-Message".into(),
            base64::engine::general_purpose::STANDARD.encode(message),
        ),
        ("X-Owner-Signature".into(), signature),
    ]))
}

fn show_wallet(w: &dto::Wallet) -> String {
    let owner = w
        .owner
        .as_ref()
        .map_or("no owner (APPROVAL-tier transfers are denied)".to_owned(), |o| {
            format!("owner {} ({})", o.address, o.state)
        });
    let frozen = w.frozen.as_ref().map_or("not frozen".to_owned(), |f| {
        format!("FROZEN by {} since {}: {}", f.by, f.since, f.reason)
    });
    format!("{}  {}\n{owner}\n{frozen}", w.id, w.name)
}

pub async fn owner(cmd: OwnerCommand, client: Client, out: &Output) -> CliResult {
    match cmd {
        OwnerCommand::Connect { wallet, address, sign } => {
            let wallet = path_segment(&wallet)?;
            let address = match (&sign.key_file, address) {
                (Some(path), _) => {
                    let current: dto::Wallet = client.get(&format!("/v1/wallets/{wallet}")).await?;
                    let kind = if current.kind == "solana" {
                        ChainKind::Solana
                    } else {
                        ChainKind::Evm
                    };
                    read_key(path, kind)?.address()
                }
                (None, Some(a)) => a,
                (None, None) => return Err(usage("give --address or --key-file")),
            };
            let w: dto::Wallet = client
                .send(
                    Method::PUT,
                    &format!("/v1/wallets/{wallet}/owner"),
                    &serde_json::json!({ "address": address }),
                )
                .await?;
            if !sign.given() {
                out.emit(&w, |w| {
                    format!(
                        "{}\nthe owner is in GRACE until it signs once: `bursar owner connect {} --key-file …` \
                         or approve a transfer",
                        show_wallet(w),
                        w.id
                    )
                });
                return Ok(());
            }
            let m: dto::OwnerMessage = client
                .get(&format!("/v1/wallets/{wallet}/owner/message?action=connect"))
                .await?;
            let Some(headers) = owner_headers(&m, &sign, out)? else {
                return Ok(());
            };
            let w: dto::Wallet = client
                .send_with(Method::POST, "/v1/owner/connect", &(), &headers)
                .await?;
            out.emit(&w, show_wallet);
        }
        OwnerCommand::Status { wallet } => {
            let w: dto::Wallet = client.get(&format!("/v1/wallets/{}", path_segment(&wallet)?)).await?;
            out.emit(&w, show_wallet);
        }
        OwnerCommand::Disconnect { wallet, sign } => {
            let wallet = path_segment(&wallet)?;
            let current: dto::Wallet = client.get(&format!("/v1/wallets/{wallet}")).await?;
            let locked = current.owner.as_ref().is_some_and(|o| o.state == "LOCKED");
            let w: dto::Wallet = if !locked {
                client
                    .send(Method::DELETE, &format!("/v1/wallets/{wallet}/owner"), &())
                    .await?
            } else {
                let m: dto::OwnerMessage = client
                    .get(&format!("/v1/wallets/{wallet}/owner/message?action=disconnect"))
                    .await?;
                let Some(headers) = owner_headers(&m, &sign, out)? else {
                    return Ok(());
                };
                client
                    .send_with(Method::POST, "/v1/owner/disconnect", &(), &headers)
                    .await?
            };
            out.emit(&w, show_wallet);
        }
        OwnerCommand::Approve { tx, sign } => decide(&client, &tx, "approve", &sign, out).await?,
        OwnerCommand::Reject { tx, sign } => decide(&client, &tx, "reject", &sign, out).await?,
        OwnerCommand::Cancel { tx, sign } => decide(&client, &tx, "cancel", &sign, out).await?,
    }
    Ok(())
}

/// Approve, reject or cancel: fetch the exact message for this transaction, sign, submit.
async fn decide(client: &Client, tx: &str, action: &str, sign: &SignArgs, out: &Output) -> CliResult {
    let tx = path_segment(tx)?;
    let m: dto::OwnerMessage = client
        .get(&format!("/v1/transactions/{tx}/approval-message?action={action}"))
        .await?;
    let Some(headers) = owner_headers(&m, sign, out)? else {
        return Ok(());
    };
    let t: dto::Transaction = client.send_with(Method::POST, &m.submit_to, &(), &headers).await?;
    out.emit(&t, |t| {
        format!(
            "{} {}: {} {} → {}{}",
            t.id,
            t.status,
            t.amount,
            t.symbol,
            t.to,
            t.hash.as_ref().map(|h| format!("  {h}")).unwrap_or_default()
        )
    });
    Ok(())
}

pub async fn kill_switch(cmd: KillSwitchCommand, client: Client, out: &Output) -> CliResult {
    let show = |reports: &Vec<dto::KillSwitchReport>| {
        reports
            .iter()
            .map(|r| match (&r.frozen, r.needs_owner_signature) {
                (_, true) => format!("{}  still FROZEN: its LOCKED owner must sign (--key-file)", r.wallet_id),
                (Some(f), _) => format!(
                    "{}  FROZEN ({}): {} sessions revoked, {} transfers cancelled",
                    r.wallet_id, f.reason, r.sessions_revoked, r.transactions_cancelled
                ),
                (None, _) => format!("{}  not frozen", r.wallet_id),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    match cmd {
        KillSwitchCommand::On { wallet, reason } => {
            let body = serde_json::json!({ "on": true, "walletId": wallet, "reason": reason });
            let reports: Vec<dto::KillSwitchReport> = client.send(Method::POST, "/v1/admin/kill-switch", &body).await?;
            out.emit(&reports, |r| if r.is_empty() { "no wallets".into() } else { show(r) });
        }
        KillSwitchCommand::Off { wallet, sign } => {
            let mut headers = Vec::new();
            if sign.given() {
                let w = wallet
                    .as_deref()
                    .ok_or_else(|| usage("an owner signature lifts one wallet: give --wallet"))?;
                let m: dto::OwnerMessage = client
                    .get(&format!(
                        "/v1/wallets/{}/owner/message?action=kill-switch-off",
                        path_segment(w)?
                    ))
                    .await?;
                let Some(h) = owner_headers(&m, &sign, out)? else {
                    return Ok(());
                };
                headers = h;
            }
            let body = serde_json::json!({ "on": false, "walletId": wallet });
            let reports: Vec<dto::KillSwitchReport> = client
                .send_with(Method::POST, "/v1/admin/kill-switch", &body, &headers)
                .await?;
            out.emit(&reports, show);
        }
        KillSwitchCommand::Status => {
            let frozen: Vec<dto::Wallet> = client.get("/v1/admin/kill-switch").await?;
            out.emit(&frozen, |f| {
                if f.is_empty() {
                    "no wallet is frozen".into()
                } else {
                    f.iter().map(show_wallet).collect::<Vec<_>>().join("\n\n")
                }
            });
        }
    }
    Ok(())
}

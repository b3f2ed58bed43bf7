//! What operators are told. Every field is non-secret data: ids, names, addresses, human
//! amounts, tiers, reasons, times. Strings that came from outside (token symbols) are
//! sanitised when the event is built, and the text forms are plain text.

use crate::domain::{TxId, WalletId, sanitize};
use serde::Serialize;

/// One thing worth telling the operator. Emit with `service.notify(Event::…)`.
///
/// On a webhook the variant is `type` (snake_case) and its fields are `data` (camelCase),
/// times as RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(
    tag = "type",
    content = "data",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum Event {
    /// A NOTIFY-tier transfer was signed and submitted: it goes ahead, the operator is told.
    TransferNotify {
        #[serde(flatten)]
        transfer: Transfer,
    },
    /// A DELAY-tier transfer waits until `executes_at`; it can be cancelled until then.
    TransferDelayed {
        #[serde(flatten)]
        transfer: Transfer,
        #[serde(serialize_with = "rfc3339")]
        executes_at: i64,
        /// How to stop it, in words.
        cancel_hint: String,
    },
    /// An APPROVAL-tier transfer waits for the owner's signature at `approval_url`.
    ApprovalPending {
        #[serde(flatten)]
        transfer: Transfer,
        /// `<server.public_url>/approve/<tx id>`.
        approval_url: String,
        #[serde(serialize_with = "opt_rfc3339")]
        expires_at: Option<i64>,
    },
    /// The kill switch was turned on or off.
    KillSwitch { on: bool, scope: KillScope, by: Actor },
    /// A wallet was stopped automatically (e.g. an anomaly rule).
    AutoStop {
        #[serde(with = "crate::store::as_string")]
        wallet_id: WalletId,
        wallet_name: String,
        reason: String,
    },
    /// At least `count` failed authentications of one kind within `window_seconds`.
    AuthFailureBurst {
        kind: AuthKind,
        count: u32,
        window_seconds: u64,
    },
}

/// A transfer as a notification shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transfer {
    #[serde(with = "crate::store::as_string")]
    pub wallet_id: WalletId,
    pub wallet_name: String,
    pub chain: String,
    #[serde(with = "crate::store::as_string")]
    pub tx_id: TxId,
    pub to: String,
    /// Decimal, in whole units (`"0.5"`).
    pub amount: String,
    pub symbol: String,
    /// `NOTIFY`, `DELAY`, `APPROVAL`.
    pub tier: String,
    pub status: String,
    pub reasons: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub requested_at: i64,
}

/// What a kill switch covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum KillScope {
    All,
    Wallet {
        #[serde(with = "crate::store::as_string")]
        wallet_id: WalletId,
        wallet_name: String,
    },
}

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    Master,
    Owner,
}

/// Which credential failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    Master,
    Session,
    Owner,
}

impl AuthKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::Master => "master",
            AuthKind::Session => "session",
            AuthKind::Owner => "owner",
        }
    }
}

impl Event {
    /// The snake_case name: the webhook `type` and the audit `event`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::TransferNotify { .. } => "transfer_notify",
            Event::TransferDelayed { .. } => "transfer_delayed",
            Event::ApprovalPending { .. } => "approval_pending",
            Event::KillSwitch { .. } => "kill_switch",
            Event::AutoStop { .. } => "auto_stop",
            Event::AuthFailureBurst { .. } => "auth_failure_burst",
        }
    }

    /// The wallet this is about, if one.
    pub fn wallet_id(&self) -> Option<WalletId> {
        match self {
            Event::TransferNotify { transfer }
            | Event::TransferDelayed { transfer, .. }
            | Event::ApprovalPending { transfer, .. } => Some(transfer.wallet_id),
            Event::KillSwitch {
                scope: KillScope::Wallet { wallet_id, .. },
                ..
            }
            | Event::AutoStop { wallet_id, .. } => Some(*wallet_id),
            Event::KillSwitch { .. } | Event::AuthFailureBurst { .. } => None,
        }
    }

    /// The message for chat senders: plain text, one fact per line.
    pub fn text(&self) -> String {
        match self {
            Event::TransferNotify { transfer } => {
                format!("bursar: NOTIFY-tier transfer submitted\n{}", transfer.lines())
            }
            Event::TransferDelayed {
                transfer,
                executes_at,
                cancel_hint,
            } => format!(
                "bursar: DELAY-tier transfer waits until {}\n{}\nto stop it: {cancel_hint}",
                human_time(*executes_at),
                transfer.lines()
            ),
            Event::ApprovalPending {
                transfer,
                approval_url,
                expires_at,
            } => {
                let until = expires_at.map_or(String::new(), |t| format!(" (until {})", human_time(t)));
                format!(
                    "bursar: transfer waits for the owner's approval{until}\n{}\napprove or reject: {approval_url}",
                    transfer.lines()
                )
            }
            Event::KillSwitch { on, scope, by } => {
                let what = match scope {
                    KillScope::All => "all wallets".to_owned(),
                    KillScope::Wallet { wallet_id, wallet_name } => format!("wallet {wallet_name} ({wallet_id})"),
                };
                let by = match by {
                    Actor::Master => "the operator (master)",
                    Actor::Owner => "the owner",
                };
                let state = if *on {
                    "ON: sessions revoked, pending transfers cancelled, signing frozen"
                } else {
                    "OFF"
                };
                format!("bursar: kill switch {state}\nscope: {what}\nby: {by}")
            }
            Event::AutoStop {
                wallet_id,
                wallet_name,
                reason,
            } => format!("bursar: wallet {wallet_name} ({wallet_id}) stopped automatically\nreason: {reason}"),
            Event::AuthFailureBurst {
                kind,
                count,
                window_seconds,
            } => {
                let kind = match kind {
                    AuthKind::Master => "master password",
                    AuthKind::Session => "session token",
                    AuthKind::Owner => "owner signature",
                };
                format!("bursar: {count} failed {kind} attempts within {window_seconds} s")
            }
        }
    }
}

impl Transfer {
    /// Cleans the fields that may have come from outside; call once when building.
    pub fn sanitised(mut self) -> Self {
        self.symbol = sanitize::chain_string(&self.symbol, 16);
        self.wallet_name = sanitize::chain_string(&self.wallet_name, 64);
        self.reasons = self.reasons.iter().map(|r| sanitize::chain_string(r, 200)).collect();
        self
    }

    fn lines(&self) -> String {
        let mut out = format!(
            "wallet: {} ({})\namount: {} {} on {}\nto: {}\ntx: {}",
            self.wallet_name, self.wallet_id, self.amount, self.symbol, self.chain, self.to, self.tx_id
        );
        if let Some(hash) = &self.hash {
            out += &format!("\nhash: {hash}");
        }
        if !self.reasons.is_empty() {
            out += &format!("\nwhy: {}", self.reasons.join("; "));
        }
        out
    }
}

fn format_rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// `2025-01-02 03:04:05 UTC`.
fn human_time(unix: i64) -> String {
    format_rfc3339(unix).replace('T', " ").replace('Z', " UTC")
}

pub(super) fn rfc3339<S: serde::Serializer>(unix: &i64, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(&format_rfc3339(*unix))
}

fn opt_rfc3339<S: serde::Serializer>(unix: &Option<i64>, ser: S) -> Result<S::Ok, S::Error> {
    match unix {
        Some(t) => rfc3339(t, ser),
        None => ser.serialize_none(),
    }
}

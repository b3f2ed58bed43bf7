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
    /// Once a day, per wallet, to the senders that opted in: what moved, what is pending,
    /// what budget is left — so an owner notices activity they did not expect.
    DailySummary {
        #[serde(flatten)]
        summary: Summary,
    },
}

/// One wallet's day, as the daily summary shows it. Counts and sums come from the store's
/// transfer records requested within `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    #[serde(with = "crate::store::as_string")]
    pub wallet_id: WalletId,
    pub wallet_name: String,
    pub chain: String,
    #[serde(serialize_with = "rfc3339")]
    pub from: i64,
    #[serde(serialize_with = "rfc3339")]
    pub to: i64,
    pub frozen: bool,
    /// Transfers requested in the window, per final or current status (`CONFIRMED`, …).
    pub by_status: std::collections::BTreeMap<String, u32>,
    /// What left the wallet in the window (CONFIRMED transfers), per asset.
    pub moved: Vec<Moved>,
    /// Transfers waiting now (DELAYED or PENDING_APPROVAL), requested at any time.
    #[serde(serialize_with = "tx_ids")]
    pub pending: Vec<TxId>,
    /// Remaining daily / monthly budgets in words (`daily: 1.5 ETH of 2 ETH`), if limited.
    pub budget_left: Vec<String>,
}

/// A sum of one asset's transfers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Moved {
    pub symbol: String,
    /// `native` or the token contract.
    pub asset: String,
    /// Decimal, in whole units.
    pub amount: String,
    pub amount_base_units: String,
    pub count: u32,
}

fn tx_ids<S: serde::Serializer>(ids: &[TxId], ser: S) -> Result<S::Ok, S::Error> {
    ser.collect_seq(ids.iter().map(ToString::to_string))
}

/// A button under a chat message or a push notification. It only opens a page of this
/// daemon (at `server.public_url`); what happens there needs the owner's own signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub label: &'static str,
    pub url: String,
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
            Event::DailySummary { .. } => "daily_summary",
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
            Event::DailySummary { summary } => Some(summary.wallet_id),
            Event::KillSwitch { .. } | Event::AuthFailureBurst { .. } => None,
        }
    }

    /// The buttons for this event, to pages at `public_url` (no trailing slash): the approval
    /// page with the action preselected (`/approve/<tx>?action=approve|reject|cancel`) and
    /// the wallet's panic page (`/owner/<wallet>`). Every one is a plain link: opening it
    /// changes nothing, and the page acts only on the owner's wallet signature.
    pub fn links(&self, public_url: &str) -> Vec<Link> {
        let tx = |t: &Transfer, action: &str| format!("{public_url}/approve/{}?action={action}", t.tx_id);
        let panic = |w: &WalletId| Link {
            label: "Freeze wallet",
            url: format!("{public_url}/owner/{w}"),
        };
        match self {
            Event::ApprovalPending { transfer, .. } => vec![
                Link {
                    label: "Review and approve",
                    url: tx(transfer, "approve"),
                },
                Link {
                    label: "Reject",
                    url: tx(transfer, "reject"),
                },
                panic(&transfer.wallet_id),
            ],
            Event::TransferDelayed { transfer, .. } => vec![
                Link {
                    label: "Cancel",
                    url: tx(transfer, "cancel"),
                },
                panic(&transfer.wallet_id),
            ],
            Event::KillSwitch {
                on: true,
                scope: KillScope::Wallet { wallet_id, .. },
                ..
            }
            | Event::AutoStop { wallet_id, .. } => vec![panic(wallet_id)],
            Event::DailySummary { summary } => vec![panic(&summary.wallet_id)],
            Event::TransferNotify { transfer } => vec![panic(&transfer.wallet_id)],
            Event::KillSwitch { .. } | Event::AuthFailureBurst { .. } => Vec::new(),
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
            Event::DailySummary { summary } => summary.text(),
        }
    }
}

impl Summary {
    fn text(&self) -> String {
        let mut out = format!(
            "bursar: daily summary for wallet {} ({}) on {}\n{} to {}",
            self.wallet_name,
            self.wallet_id,
            self.chain,
            human_time(self.from),
            human_time(self.to)
        );
        if self.frozen {
            out += "\nwallet is FROZEN (kill switch on)";
        }
        if self.by_status.is_empty() {
            out += "\ntransfers: none";
        } else {
            let counts: Vec<String> = self.by_status.iter().map(|(s, n)| format!("{n} {s}")).collect();
            out += &format!("\ntransfers: {}", counts.join(", "));
        }
        if self.moved.is_empty() {
            out += "\nmoved: nothing";
        }
        for m in &self.moved {
            out += &format!("\nmoved: {} {} in {} transfer(s)", m.amount, m.symbol, m.count);
        }
        if self.pending.is_empty() {
            out += "\npending: none";
        } else {
            let ids: Vec<String> = self.pending.iter().map(ToString::to_string).collect();
            out += &format!("\npending: {} ({})", ids.len(), ids.join(", "));
        }
        for b in &self.budget_left {
            out += &format!("\nbudget left: {b}");
        }
        out
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

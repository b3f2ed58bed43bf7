//! Wire types (JSON, camelCase). Requests are parsed into domain types here, once.

use crate::domain::{ChainName, WalletId, WalletName};
use crate::service::{DaemonStatus, IssuedSession, NewSession, ServiceError, WalletBalance};
use crate::store::records::{SessionRecord, WalletRecord};
use serde::{Deserialize, Serialize};

pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn invalid(field: &str, err: impl std::fmt::Display) -> ServiceError {
    ServiceError::InvalidInput(format!("{field}: {err}"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWallet {
    pub name: String,
    pub chain: String,
}

impl CreateWallet {
    pub fn parse(self) -> Result<(WalletName, ChainName), ServiceError> {
        Ok((
            self.name.parse().map_err(|e| invalid("name", e))?,
            self.chain.parse().map_err(|e| invalid("chain", e))?,
        ))
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Wallet {
    pub id: String,
    pub name: String,
    pub chain: String,
    pub kind: String,
    pub address: String,
    pub created_at: String,
}

impl From<WalletRecord> for Wallet {
    fn from(w: WalletRecord) -> Self {
        Self {
            id: w.id.to_string(),
            name: w.name,
            chain: w.chain.to_string(),
            kind: w.kind.to_string(),
            address: w.address,
            created_at: rfc3339(w.created_at),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSession {
    pub wallet_id: String,
    pub ttl_seconds: Option<u64>,
    pub max_renewals: Option<u32>,
    pub absolute_lifetime_seconds: Option<u64>,
}

impl CreateSession {
    pub fn parse(self) -> Result<NewSession, ServiceError> {
        Ok(NewSession {
            wallet_id: self.wallet_id.parse().map_err(|e| invalid("walletId", e))?,
            ttl_seconds: self.ttl_seconds,
            max_renewals: self.max_renewals,
            absolute_lifetime_seconds: self.absolute_lifetime_seconds,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub id: String,
    pub wallet_id: String,
    pub created_at: String,
    pub expires_at: String,
    pub absolute_expires_at: String,
    pub renewals: u32,
    pub max_renewals: u32,
    pub revoked: bool,
}

impl From<SessionRecord> for Session {
    fn from(s: SessionRecord) -> Self {
        Self {
            id: s.id.to_string(),
            wallet_id: s.wallet_id.to_string(),
            created_at: rfc3339(s.created_at),
            expires_at: rfc3339(s.expires_at),
            absolute_expires_at: rfc3339(s.absolute_expires_at),
            renewals: s.renewals,
            max_renewals: s.max_renewals,
            revoked: s.revoked_at.is_some(),
        }
    }
}

/// A session together with its token: returned only by create and renew.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionToken {
    pub id: String,
    pub wallet_id: String,
    pub token: String,
    pub expires_at: String,
    pub absolute_expires_at: String,
    pub renewals_left: u32,
}

impl From<IssuedSession> for SessionToken {
    fn from(s: IssuedSession) -> Self {
        Self {
            id: s.record.id.to_string(),
            wallet_id: s.record.wallet_id.to_string(),
            token: s.token,
            expires_at: rfc3339(s.record.expires_at),
            absolute_expires_at: rfc3339(s.record.absolute_expires_at),
            renewals_left: s.record.max_renewals.saturating_sub(s.record.renewals),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionFilter {
    #[serde(rename = "walletId")]
    pub wallet_id: Option<String>,
}

impl SessionFilter {
    pub fn parse(self) -> Result<Option<WalletId>, ServiceError> {
        self.wallet_id
            .map(|w| w.parse().map_err(|e| invalid("walletId", e)))
            .transpose()
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WalletAddress {
    pub wallet_id: String,
    pub chain: String,
    pub kind: String,
    pub address: String,
}

impl From<WalletRecord> for WalletAddress {
    fn from(w: WalletRecord) -> Self {
        Self {
            wallet_id: w.id.to_string(),
            chain: w.chain.to_string(),
            kind: w.kind.to_string(),
            address: w.address,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalanceQuery {
    /// ERC-20 / SPL token address; absent for the native asset.
    pub token: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BalanceDto {
    pub wallet_id: String,
    pub chain: String,
    pub address: String,
    /// `null` for the native asset.
    pub token: Option<String>,
    pub symbol: String,
    pub decimals: u8,
    /// Integer string in base units (wei, lamports, token units).
    pub base_units: String,
    /// Decimal string in whole units.
    pub amount: String,
}

impl From<WalletBalance> for BalanceDto {
    fn from(b: WalletBalance) -> Self {
        Self {
            wallet_id: b.wallet.id.to_string(),
            chain: b.wallet.chain.to_string(),
            address: b.wallet.address,
            token: b.balance.token,
            symbol: b.balance.symbol,
            decimals: b.balance.amount.decimals,
            base_units: b.balance.amount.base_units.to_string(),
            amount: b.balance.amount.to_decimal_string(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetMaster {
    pub new_password: String,
}

impl std::fmt::Debug for SetMaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SetMaster([REDACTED])")
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditQuery {
    pub kind: Option<String>,
    pub wallet_id: Option<String>,
    pub after_seq: Option<u64>,
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub version: String,
    pub uptime_seconds: u64,
    pub wallets: usize,
    pub active_sessions: usize,
    pub chains: Vec<String>,
    pub audit_entries: u64,
    pub kdf_memory_kib: u32,
    pub kdf_iterations: u32,
    pub kdf_parallelism: u32,
    pub master_changed_at: Option<String>,
}

impl From<DaemonStatus> for Status {
    fn from(s: DaemonStatus) -> Self {
        Self {
            version: s.version.to_owned(),
            uptime_seconds: s.uptime_seconds,
            wallets: s.wallets,
            active_sessions: s.active_sessions,
            chains: s.chains,
            audit_entries: s.audit_entries,
            kdf_memory_kib: s.kdf.m_cost_kib,
            kdf_iterations: s.kdf.t_cost,
            kdf_parallelism: s.kdf.p_cost,
            master_changed_at: s.master_changed_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Ok {
    pub ok: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

/// Whether a body's parse errors may be echoed to the client. Off for bodies that carry a
/// secret: serde's messages can quote the offending value.
pub trait ApiJsonBody {
    const ECHO_ERRORS: bool = true;
}

impl ApiJsonBody for CreateWallet {}
impl ApiJsonBody for CreateSession {}
impl ApiJsonBody for SetMaster {
    const ECHO_ERRORS: bool = false;
}

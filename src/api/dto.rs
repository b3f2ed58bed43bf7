//! Wire types (JSON, camelCase). Requests are parsed into domain types here, once.

use crate::domain::{ChainName, Tier, TraceEntry, TxState, WalletId, WalletName};
use crate::service::{
    AuditEntryView, AuditVerificationView, DaemonStatus, IssuedSession, NewSession, PolicyView, ServiceError,
    WalletBalance,
};
use serde::{Deserialize, Serialize};

pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// The wire form of a domain enum that has `ALL` and `as_str`: exactly its `as_str` string
/// both ways, and an inline schema that lists every value (`enum`). Implemented here, once,
/// since `domain` has no serde. An unknown value is refused without being echoed (the
/// caller's extractor names the field).
macro_rules! wire_enum {
    ($ty:ty, $name:literal, $what:literal) => {
        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = String::deserialize(deserializer)?;
                <$ty>::ALL.into_iter().find(|v| v.as_str() == value).ok_or_else(|| {
                    let all: Vec<&str> = <$ty>::ALL.iter().map(|v| v.as_str()).collect();
                    serde::de::Error::custom(format!(concat!("unknown ", $what, "; expected one of {}"), all.join(", ")))
                })
            }
        }

        impl schemars::JsonSchema for $ty {
            fn inline_schema() -> bool {
                true
            }

            fn schema_name() -> std::borrow::Cow<'static, str> {
                $name.into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string", "enum": <$ty>::ALL.map(|v| v.as_str()) })
            }
        }
    };
}

wire_enum!(TxState, "TxState", "transaction status");
wire_enum!(Tier, "Tier", "tier");

fn invalid(field: &str, err: impl std::fmt::Display) -> ServiceError {
    ServiceError::InvalidInput(format!("{field}: {err}"))
}

/// Upper bounds of the strings callers send, in characters: anything longer is a 400 that
/// names the field, before it reaches a log line, the audit log or the store. The request
/// body limit (`server.max_body_bytes`) bounds the whole; these bound each field.
pub mod limits {
    /// Wallet names (`WalletName` also refuses control and invisible characters).
    pub const NAME: usize = 64;
    /// Ids, chain names, policy types, audit kinds.
    pub const ID: usize = 64;
    /// Recipient, token and owner addresses (EVM 42, Solana at most 44).
    pub const ADDRESS: usize = 128;
    /// Decimal and integer amount strings (a U256 has at most 78 digits).
    pub const AMOUNT: usize = 100;
    pub const IDEMPOTENCY_KEY: usize = 128;
    pub const MEMO: usize = 256;
    /// The kill switch's reason.
    pub const REASON: usize = 256;
    /// A policy's rules, as compact JSON (bytes): room for a whitelist of ~700 addresses.
    pub const POLICY_RULES_BYTES: usize = 32 * 1024;
}

/// Refuses `value` when it has more than `max` characters.
fn bounded(field: &str, value: &str, max: usize) -> Result<(), ServiceError> {
    // Bytes bound characters from above: most values never need counting.
    if value.len() > max && value.chars().count() > max {
        return Err(ServiceError::InvalidInput(format!(
            "{field} is too long: at most {max} characters"
        )));
    }
    Ok(())
}

fn bounded_opt(field: &str, value: Option<&str>, max: usize) -> Result<(), ServiceError> {
    value.map_or(Ok(()), |v| bounded(field, v, max))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWallet {
    /// A label for the operator (1-64 characters).
    #[schemars(length(min = 1, max = 64))]
    pub name: String,
    /// A configured chain name (`[chains.<name>]` in config.toml), e.g. `anvil`.
    #[schemars(length(max = 64))]
    pub chain: String,
}

impl CreateWallet {
    pub fn parse(self) -> Result<(WalletName, ChainName), ServiceError> {
        bounded("name", &self.name, limits::NAME)?;
        bounded("chain", &self.chain, limits::ID)?;
        Ok((
            self.name.parse().map_err(|e| invalid("name", e))?,
            self.chain.parse().map_err(|e| invalid("chain", e))?,
        ))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Wallet {
    pub id: String,
    pub name: String,
    pub chain: String,
    pub kind: String,
    pub address: String,
    pub created_at: String,
    /// The registered owner (`state`: GRACE until their first signature, then LOCKED).
    pub owner: Option<Owner>,
    /// Set while the kill switch or AutoStop holds the wallet.
    pub frozen: Option<Frozen>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Owner {
    pub address: String,
    pub state: String,
}

impl From<crate::domain::Wallet> for Wallet {
    fn from(w: crate::domain::Wallet) -> Self {
        Self {
            id: w.id.to_string(),
            name: w.name.as_str().to_owned(),
            chain: w.chain.to_string(),
            kind: w.kind.to_string(),
            address: w.address.to_string(),
            created_at: rfc3339(w.created_at),
            owner: w.owner.map(|o| Owner {
                address: o.address.to_string(),
                state: o.state.as_str().to_owned(),
            }),
            frozen: w.frozen.map(Into::into),
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSession {
    /// The one wallet this session may act on.
    #[schemars(length(max = 64))]
    pub wallet_id: String,
    /// Token lifetime; default and ceiling from `[sessions]` in config.toml.
    pub ttl_seconds: Option<u64>,
    /// How many times `PUT /v1/sessions/{id}/renew` may issue a new token.
    pub max_renewals: Option<u32>,
    /// No renewal reaches past this many seconds after creation.
    pub absolute_lifetime_seconds: Option<u64>,
}

impl CreateSession {
    pub fn parse(self) -> Result<NewSession, ServiceError> {
        bounded("walletId", &self.wallet_id, limits::ID)?;
        Ok(NewSession {
            wallet_id: self.wallet_id.parse().map_err(|e| invalid("walletId", e))?,
            ttl_seconds: self.ttl_seconds,
            max_renewals: self.max_renewals,
            absolute_lifetime_seconds: self.absolute_lifetime_seconds,
        })
    }
}

#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
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

impl From<crate::domain::Session> for Session {
    fn from(s: crate::domain::Session) -> Self {
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
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionToken {
    pub id: String,
    pub wallet_id: String,
    /// The bearer token (`Authorization: Bearer <token>`). Shown once; store it in a 0600 file.
    pub token: String,
    pub expires_at: String,
    pub absolute_expires_at: String,
    pub renewals_left: u32,
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionToken")
            .field("id", &self.id)
            .field("wallet_id", &self.wallet_id)
            .field("token", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .field("absolute_expires_at", &self.absolute_expires_at)
            .field("renewals_left", &self.renewals_left)
            .finish()
    }
}

impl From<IssuedSession> for SessionToken {
    fn from(s: IssuedSession) -> Self {
        Self {
            id: s.session.id.to_string(),
            wallet_id: s.session.wallet_id.to_string(),
            token: s.token,
            expires_at: rfc3339(s.session.expires_at),
            absolute_expires_at: rfc3339(s.session.absolute_expires_at),
            renewals_left: s.session.max_renewals.saturating_sub(s.session.renewals),
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionFilter {
    /// Only this wallet's entries.
    #[serde(rename = "walletId")]
    #[schemars(length(max = 64))]
    pub wallet_id: Option<String>,
}

impl SessionFilter {
    pub fn parse(self) -> Result<Option<WalletId>, ServiceError> {
        bounded_opt("walletId", self.wallet_id.as_deref(), limits::ID)?;
        self.wallet_id
            .map(|w| w.parse().map_err(|e| invalid("walletId", e)))
            .transpose()
    }
}

#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalletAddress {
    pub wallet_id: String,
    pub chain: String,
    pub kind: String,
    pub address: String,
}

impl From<crate::domain::Wallet> for WalletAddress {
    fn from(w: crate::domain::Wallet) -> Self {
        Self {
            wallet_id: w.id.to_string(),
            chain: w.chain.to_string(),
            kind: w.kind.to_string(),
            address: w.address.to_string(),
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BalanceQuery {
    /// ERC-20 / SPL token address; absent for the native asset.
    #[schemars(length(max = 128))]
    pub token: Option<String>,
}

impl BalanceQuery {
    pub fn token(&self) -> Result<Option<&str>, ServiceError> {
        bounded_opt("token", self.token.as_deref(), limits::ADDRESS)?;
        Ok(self.token.as_deref())
    }
}

#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
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
            address: b.wallet.address.to_string(),
            token: b.balance.token,
            symbol: b.balance.symbol,
            decimals: b.balance.amount.decimals,
            base_units: b.balance.amount.base_units.to_string(),
            amount: b.balance.amount.to_decimal_string(),
        }
    }
}

/// `POST /v1/admin/backup`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupRequest {
    /// Seal the archive under this passphrase instead of the master password (the one in
    /// `X-Master-Password`): 12-1024 characters of printable ASCII.
    #[serde(default)]
    #[schemars(length(min = 12, max = 1024), regex(pattern = "^[!-~]([ -~]*[!-~])?$"))]
    pub passphrase: Option<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetMaster {
    /// Every key and stored secret is re-sealed under it in one atomic commit. 12-1024
    /// characters of printable ASCII (letters, digits, punctuation; spaces only inside): it
    /// travels in the `X-Master-Password` header afterwards.
    #[schemars(length(min = 12, max = 1024), regex(pattern = "^[!-~]([ -~]*[!-~])?$"))]
    pub new_password: String,
    /// What to do with the daemon's `<data>/recovery.key`, if there is one: `keep` (default:
    /// rewritten with the new password in the same step, so a plain `bursar start` keeps
    /// working) or `delete`. None is ever created.
    #[serde(default)]
    pub recovery_key: RecoveryKeyChoice,
}

/// What `set-master` does with `<data>/recovery.key`.
#[derive(Debug, Clone, Copy, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RecoveryKeyChoice {
    #[default]
    Keep,
    Delete,
}

impl From<RecoveryKeyChoice> for crate::service::RecoveryKeyChoice {
    fn from(c: RecoveryKeyChoice) -> Self {
        match c {
            RecoveryKeyChoice::Keep => Self::Keep,
            RecoveryKeyChoice::Delete => Self::Delete,
        }
    }
}

/// The password changed; what happened to `<data>/recovery.key`.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetMasterResult {
    pub ok: bool,
    /// `rewritten` (it holds the new password), `deleted`, `absent` (there was none), or
    /// `notUpdated` (it still holds the old password; see the daemon log).
    #[schemars(extend("enum" = ["rewritten", "deleted", "absent", "notUpdated"]))]
    pub recovery_key: String,
}

impl From<crate::service::RecoveryKeyOutcome> for SetMasterResult {
    fn from(o: crate::service::RecoveryKeyOutcome) -> Self {
        use crate::service::RecoveryKeyOutcome as O;
        let recovery_key = match o {
            O::Rewritten => "rewritten",
            O::Deleted => "deleted",
            O::Absent => "absent",
            O::NotUpdated => "notUpdated",
        };
        Self {
            ok: true,
            recovery_key: recovery_key.to_owned(),
        }
    }
}

impl std::fmt::Debug for SetMaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SetMaster([REDACTED])")
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditQuery {
    /// Only entries of this kind, e.g. `wallet_created`.
    #[schemars(length(max = 64))]
    pub kind: Option<String>,
    /// Only entries about this wallet.
    #[schemars(length(max = 64))]
    pub wallet_id: Option<String>,
    /// Only entries after this sequence number.
    pub after_seq: Option<u64>,
    /// Only entries before this sequence number: the `X-Next-Before` header of the previous
    /// page, to walk back through the log.
    pub before: Option<u64>,
    /// At most this many, the newest ones, listed oldest first (default 50, max 500). With
    /// `kind` or `walletId`, one answer reads at most 10,000 entries: a short page with
    /// `X-Next-Before` means "more may match further back".
    pub limit: Option<usize>,
}

impl AuditQuery {
    pub fn parse(self) -> Result<crate::domain::AuditFilter, ServiceError> {
        bounded_opt("kind", self.kind.as_deref(), limits::ID)?;
        bounded_opt("walletId", self.wallet_id.as_deref(), limits::ID)?;
        Ok(crate::domain::AuditFilter {
            kind: self.kind,
            wallet_id: self.wallet_id,
            after_seq: self.after_seq,
            before: self.before,
            limit: self.limit,
        })
    }
}

#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
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

/// The action was done.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Ok {
    pub ok: bool,
}

/// Every error answer: `{"error":{"code","message"}}`, never a stack trace or a secret.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: String, details: Option<serde_json::Value>) -> Self {
        Self {
            error: ErrorDetail { code, message, details },
        }
    }
}

#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `INVALID_INPUT`, `UNAUTHENTICATED`, `SESSION_EXPIRED`,
    /// `POLICY_DENIED`, `NOT_FOUND`, … (see the responses of each operation).
    pub code: ErrorCode,
    /// For humans (and models): what happened and, where it helps, what to do.
    pub message: String,
    /// Structured context, e.g. the denied transaction with its reasons and trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// An error answer's `code`: stable and machine-readable. The HTTP status each goes with is
/// in `api::error` (service errors) and at the edge that answers it; the OpenAPI document's
/// error responses say which codes each status carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schemars(inline)]
pub enum ErrorCode {
    // 400
    InvalidInput,
    // 401
    Unauthenticated,
    SessionInvalid,
    SessionExpired,
    SessionRevoked,
    OwnerRejected,
    // 403
    Forbidden,
    ForbiddenHost,
    ForbiddenOrigin,
    RenewalsExhausted,
    PolicyDenied,
    // 404, 405, 406, 409
    NotFound,
    MethodNotAllowed,
    NotAcceptable,
    Conflict,
    // 413, 415, 422, 423
    PayloadTooLarge,
    UnsupportedMediaType,
    ChainRejected,
    WalletFrozen,
    // 429
    RateLimited,
    TooManyOpen,
    TooManyStreams,
    // 500, 501, 502, 503
    Internal,
    NotSupported,
    ChainUnavailable,
    Timeout,
    Unavailable,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 27] = [
        ErrorCode::InvalidInput,
        ErrorCode::Unauthenticated,
        ErrorCode::SessionInvalid,
        ErrorCode::SessionExpired,
        ErrorCode::SessionRevoked,
        ErrorCode::OwnerRejected,
        ErrorCode::Forbidden,
        ErrorCode::ForbiddenHost,
        ErrorCode::ForbiddenOrigin,
        ErrorCode::RenewalsExhausted,
        ErrorCode::PolicyDenied,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::NotAcceptable,
        ErrorCode::Conflict,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::ChainRejected,
        ErrorCode::WalletFrozen,
        ErrorCode::RateLimited,
        ErrorCode::TooManyOpen,
        ErrorCode::TooManyStreams,
        ErrorCode::Internal,
        ErrorCode::NotSupported,
        ErrorCode::ChainUnavailable,
        ErrorCode::Timeout,
        ErrorCode::Unavailable,
    ];

    /// The code as it is on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "INVALID_INPUT",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::SessionInvalid => "SESSION_INVALID",
            ErrorCode::SessionExpired => "SESSION_EXPIRED",
            ErrorCode::SessionRevoked => "SESSION_REVOKED",
            ErrorCode::OwnerRejected => "OWNER_REJECTED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::ForbiddenHost => "FORBIDDEN_HOST",
            ErrorCode::ForbiddenOrigin => "FORBIDDEN_ORIGIN",
            ErrorCode::RenewalsExhausted => "RENEWALS_EXHAUSTED",
            ErrorCode::PolicyDenied => "POLICY_DENIED",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::NotAcceptable => "NOT_ACCEPTABLE",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ErrorCode::ChainRejected => "CHAIN_REJECTED",
            ErrorCode::WalletFrozen => "WALLET_FROZEN",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::TooManyOpen => "TOO_MANY_OPEN",
            ErrorCode::TooManyStreams => "TOO_MANY_STREAMS",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::NotSupported => "NOT_SUPPORTED",
            ErrorCode::ChainUnavailable => "CHAIN_UNAVAILABLE",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::Unavailable => "UNAVAILABLE",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
impl ApiJsonBody for BackupRequest {
    const ECHO_ERRORS: bool = false;
}

/// A transfer request on the wire: the REST body, and what the MCP tools' arguments become
/// (`From<TransferParams>`, `From<CheckParams>` in `api::mcp`), so both speak one contract.
#[derive(Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Transfer {
    /// Recipient address.
    #[schemars(length(max = 128))]
    pub to: String,
    /// Decimal string in whole units ("0.05"); exactly one of `amount`, `amountBaseUnits`.
    #[schemars(length(max = 100))]
    pub amount: Option<String>,
    /// Integer string in base units.
    #[schemars(length(max = 100))]
    pub amount_base_units: Option<String>,
    /// Token contract; absent (or "native") for the chain's native asset.
    #[schemars(length(max = 128))]
    pub token: Option<String>,
    /// Required for send (reuse it on retry); ignored by check.
    #[serde(default)]
    #[schemars(length(max = 128))]
    pub idempotency_key: Option<String>,
    /// A note kept with the transfer (at most 256 characters; control and invisible
    /// characters are dropped).
    #[schemars(length(max = 256))]
    pub memo: Option<String>,
}

impl Transfer {
    pub fn into_request(self) -> Result<crate::service::TransferRequest, ServiceError> {
        bounded("to", &self.to, limits::ADDRESS)?;
        bounded_opt("amount", self.amount.as_deref(), limits::AMOUNT)?;
        bounded_opt("amountBaseUnits", self.amount_base_units.as_deref(), limits::AMOUNT)?;
        bounded_opt("token", self.token.as_deref(), limits::ADDRESS)?;
        bounded_opt(
            "idempotencyKey",
            self.idempotency_key.as_deref(),
            limits::IDEMPOTENCY_KEY,
        )?;
        bounded_opt("memo", self.memo.as_deref(), limits::MEMO)?;
        Ok(crate::service::TransferRequest {
            to: self.to,
            amount: self.amount,
            amount_base_units: self.amount_base_units,
            token: self.token,
            idempotency_key: self.idempotency_key.unwrap_or_default(),
            memo: self.memo,
        })
    }
}

#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Transaction {
    pub id: String,
    pub wallet_id: String,
    pub chain: String,
    pub status: TxState,
    pub tier: Option<Tier>,
    pub to: String,
    pub token: Option<String>,
    pub symbol: String,
    pub decimals: u8,
    pub base_units: String,
    pub amount: String,
    pub memo: Option<String>,
    pub idempotency_key: String,
    pub reasons: Vec<String>,
    pub trace: serde_json::Value,
    pub created_at: String,
    pub updated_at: String,
    /// DELAY: when it executes unless cancelled (`POST /v1/transactions/{id}/cancel`).
    pub executes_at: Option<String>,
    /// APPROVAL: when it expires unless the owner approves.
    pub expires_at: Option<String>,
    pub nonce: Option<u64>,
    pub hash: Option<String>,
    pub block: Option<u64>,
    pub confirmations: u64,
    pub error: Option<String>,
    /// The most it can pay in fees, in native base units (counted in its budgets).
    pub max_fee_base_units: Option<String>,
    /// What it paid in fees, in native base units, once mined.
    pub fee_paid_base_units: Option<String>,
    /// Its other signed versions at the same nonce, in signing order: each replaced with
    /// higher fees, or signed before an earlier one turned out mined (`hash` is the current
    /// one, or the one mined).
    pub replaced_hashes: Vec<String>,
    /// The operator's on-chain cancel, when signed.
    pub cancel_hash: Option<String>,
}

impl From<crate::domain::Transfer> for Transaction {
    fn from(t: crate::domain::Transfer) -> Self {
        Self {
            id: t.id.to_string(),
            wallet_id: t.wallet_id.to_string(),
            chain: t.chain.to_string(),
            status: t.status,
            tier: t.tier,
            to: t.to.to_string(),
            token: t.token().map(|token| token.to_string()),
            nonce: t.nonce(),
            symbol: t.symbol,
            decimals: t.amount.decimals,
            base_units: t.amount.base_units.to_string(),
            amount: t.amount.to_decimal_string(),
            memo: t.memo,
            idempotency_key: t.idempotency_key,
            reasons: t.reasons,
            trace: trace(&t.trace),
            created_at: rfc3339(t.created_at),
            updated_at: rfc3339(t.updated_at),
            executes_at: t.executes_at.map(rfc3339),
            expires_at: t.expires_at.map(rfc3339),
            hash: t.hash,
            block: t.block,
            confirmations: t.confirmations,
            error: t.error,
            max_fee_base_units: t.fee.map(|f| f.max_fee().to_string()),
            fee_paid_base_units: t.fee_paid.map(|f| f.to_string()),
            replaced_hashes: t.replaced_hashes,
            cancel_hash: t.cancel_hash,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Spend {
    /// USD with 6 decimals.
    pub usd: String,
    /// Native base units.
    pub native_base_units: String,
}

/// A policy's rule trace on the wire: one object per rule evaluated, in order.
fn trace(entries: &[TraceEntry]) -> serde_json::Value {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Step<'a> {
        policy_id: Option<&'a str>,
        rule: &'a str,
        counter: Option<&'a str>,
        effect: &'static str,
        detail: &'a str,
    }
    let steps: Vec<Step<'_>> = entries
        .iter()
        .map(|t| Step {
            policy_id: t.policy_id.as_deref(),
            rule: &t.rule,
            counter: t.counter.as_deref(),
            effect: t.effect.as_str(),
            detail: &t.detail,
        })
        .collect();
    serde_json::to_value(steps).unwrap_or_default()
}

impl From<&crate::domain::PeriodSpend> for Spend {
    fn from(b: &crate::domain::PeriodSpend) -> Self {
        Self {
            usd: crate::domain::Amount {
                base_units: b.micro_usd,
                decimals: 6,
            }
            .to_decimal_string(),
            native_base_units: b.native.to_string(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    pub allowed: bool,
    /// The tier the transfer would get; `null` when denied.
    pub tier: Option<Tier>,
    pub reasons: Vec<String>,
    pub trace: serde_json::Value,
    pub base_units: String,
    pub amount: String,
    pub decimals: u8,
    pub symbol: String,
    pub delay_seconds: Option<u64>,
    pub approval_timeout_seconds: Option<u64>,
    /// Counted today and this month (UTC), confirmed plus in flight.
    pub spent_today: Spend,
    pub spent_this_month: Spend,
    /// The most the transfer would pay in fees, in whole native units: the decision counts
    /// it as spend together with the amount.
    pub max_fee: Option<String>,
    pub max_fee_base_units: Option<String>,
}

impl From<crate::service::CheckResult> for Check {
    fn from(c: crate::service::CheckResult) -> Self {
        let tier = match c.decision.outcome {
            crate::policy::Outcome::Allowed(t) => Some(t),
            crate::policy::Outcome::Denied => None,
        };
        Self {
            allowed: tier.is_some(),
            tier,
            trace: trace(&c.decision.trace),
            reasons: c.decision.reasons,
            base_units: c.amount.base_units.to_string(),
            amount: c.amount.to_decimal_string(),
            decimals: c.amount.decimals,
            symbol: c.symbol,
            delay_seconds: c.decision.delay_seconds,
            approval_timeout_seconds: c.decision.approval_timeout_seconds,
            spent_today: (&c.spent.today).into(),
            spent_this_month: (&c.spent.month).into(),
            max_fee: c.max_fee.map(|f| f.to_decimal_string()),
            max_fee_base_units: c.max_fee.map(|f| f.base_units.to_string()),
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TxQuery {
    /// Only this state: REQUESTED, DELAYED, PENDING_APPROVAL, SIGNED, SUBMITTED, CONFIRMED,
    /// DENIED, CANCELLED, REJECTED, EXPIRED or FAILED.
    pub status: Option<TxState>,
    /// At most this many, newest first (default 50, max 500).
    pub limit: Option<usize>,
    /// Only transactions older than this id: the `X-Next-Before` header of the previous page.
    pub before: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePolicy {
    #[schemars(length(max = 64))]
    pub wallet_id: String,
    /// `SPENDING_LIMIT`, `WHITELIST`, `ALLOWED_TOKENS`, `RATE_LIMIT`, `TIME_RESTRICTION`, …;
    /// an unknown type is refused with 400.
    #[serde(rename = "type")]
    #[schemars(length(max = 64))]
    pub kind: String,
    /// The type's rules (snake_case keys); an unknown field is refused with 400. At most
    /// 32 KiB as compact JSON.
    pub rules: serde_json::Value,
}

impl CreatePolicy {
    /// The bounds; the policy parser checks the rest.
    pub fn check_bounds(&self) -> Result<(), ServiceError> {
        bounded("walletId", &self.wallet_id, limits::ID)?;
        bounded("type", &self.kind, limits::ID)?;
        let size = serde_json::to_vec(&self.rules).map_or(usize::MAX, |v| v.len());
        if size > limits::POLICY_RULES_BYTES {
            return Err(ServiceError::InvalidInput(format!(
                "rules are too large: at most {} bytes of JSON",
                limits::POLICY_RULES_BYTES
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyDto {
    pub id: String,
    pub wallet_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub rules: serde_json::Value,
    pub created_at: String,
}

impl From<PolicyView> for PolicyDto {
    fn from(p: PolicyView) -> Self {
        Self {
            id: p.id.to_string(),
            wallet_id: p.wallet_id.to_string(),
            kind: p.kind,
            rules: p.rules,
            created_at: rfc3339(p.created_at),
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetOwner {
    /// The owner's address on the wallet's chain (state GRACE until their first signature).
    #[schemars(length(max = 128))]
    pub address: String,
}

impl SetOwner {
    pub fn address(&self) -> Result<&str, ServiceError> {
        bounded("address", &self.address, limits::ADDRESS)?;
        Ok(&self.address)
    }
}

impl ApiJsonBody for Transfer {}
impl ApiJsonBody for CreatePolicy {}
impl ApiJsonBody for SetOwner {}

// ---- owner control ---------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Nonce {
    /// Single-use; put it in the `Nonce:` line of an owner message.
    pub nonce: String,
    pub expires_at: String,
    /// The domain owner messages must bind.
    pub domain: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionQuery {
    /// `approve` (default) or `reject` for transactions; `connect`, `disconnect`,
    /// `kill-switch-on`, `kill-switch-off` for wallets.
    pub action: Option<String>,
}

impl ActionQuery {
    pub fn parse(&self, default: crate::owner::Action) -> Result<crate::owner::Action, ServiceError> {
        match self.action.as_deref() {
            None => Ok(default),
            Some(a) => crate::owner::Action::parse(a).ok_or_else(|| {
                ServiceError::InvalidInput(
                    "action must be one of approve, reject, connect, disconnect, kill-switch-on, kill-switch-off"
                        .into(),
                )
            }),
        }
    }
}

/// The exact text the owner signs, and how to submit the signature.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OwnerMessage {
    pub message: String,
    /// `message` in base64: send it as `X-Owner-Message`, the signature as `X-Owner-Signature`.
    pub message_base64: String,
    pub action: String,
    pub wallet_id: String,
    pub owner: String,
    /// The decoded transaction whose digest the message binds (approve / reject).
    pub subject: Option<crate::owner::Subject>,
    pub digest: Option<String>,
    pub expires_at: String,
    /// Where to POST the signed message.
    pub submit_to: String,
    /// Approve / reject: the page where the owner reviews the transfer and signs with their
    /// own wallet (`server.public_url`, or the daemon's address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_page: Option<String>,
}

impl From<crate::service::OwnerMessage> for OwnerMessage {
    fn from(m: crate::service::OwnerMessage) -> Self {
        use base64::Engine;
        let submit_to = match (&m.subject, m.action) {
            (Some(s), a) => format!("/v1/transactions/{}/{}", s.tx, a.as_str()),
            (None, crate::owner::Action::KillSwitchOn) => "/v1/owner/kill-switch".into(),
            (None, crate::owner::Action::KillSwitchOff) => "/v1/admin/kill-switch".into(),
            (None, a) => format!("/v1/owner/{}", a.as_str()),
        };
        Self {
            message_base64: base64::engine::general_purpose::STANDARD.encode(&m.text),
            message: m.text,
            action: m.action.as_str().to_owned(),
            wallet_id: m.wallet_id.to_string(),
            owner: m.owner,
            digest: m.subject.as_ref().map(|s| s.digest(m.action)),
            subject: m.subject,
            expires_at: rfc3339(m.expires_at),
            submit_to,
            approval_page: m.approval_page,
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KillSwitch {
    /// `true` freezes, `false` lifts.
    pub on: bool,
    /// One wallet; absent for every wallet.
    #[schemars(length(max = 64))]
    pub wallet_id: Option<String>,
    /// Why, for the audit log and the notification (at most 256 characters; control and
    /// invisible characters are dropped).
    #[schemars(length(max = 256))]
    pub reason: Option<String>,
}

impl KillSwitch {
    /// The wallet id, bounded (parsed by the caller).
    pub fn wallet_id(&self) -> Result<Option<&str>, ServiceError> {
        bounded_opt("walletId", self.wallet_id.as_deref(), limits::ID)?;
        Ok(self.wallet_id.as_deref())
    }

    /// The reason as it may enter a log line and the audit log: bounded, then stripped of
    /// control, bidi and zero-width characters.
    pub fn reason(&self) -> Result<String, ServiceError> {
        bounded_opt("reason", self.reason.as_deref(), limits::REASON)?;
        let reason = crate::domain::sanitize::chain_string(self.reason.as_deref().unwrap_or(""), limits::REASON);
        Ok(if reason.is_empty() {
            "pulled by the operator".to_owned()
        } else {
            reason
        })
    }
}

impl ApiJsonBody for KillSwitch {}

#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KillSwitchReport {
    pub wallet_id: String,
    pub frozen: Option<Frozen>,
    pub sessions_revoked: usize,
    pub transactions_cancelled: usize,
    /// Lifting was refused for this wallet: its LOCKED owner must sign too.
    pub needs_owner_signature: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Frozen {
    /// `master`, `owner` or `autostop`.
    pub by: String,
    pub reason: String,
    pub since: String,
}

impl From<crate::domain::Freeze> for Frozen {
    fn from(f: crate::domain::Freeze) -> Self {
        Self {
            by: f.by,
            reason: f.reason,
            since: rfc3339(f.since),
        }
    }
}

impl From<crate::service::KillSwitchReport> for KillSwitchReport {
    fn from(r: crate::service::KillSwitchReport) -> Self {
        Self {
            wallet_id: r.wallet_id.to_string(),
            frozen: r.frozen.map(Into::into),
            sessions_revoked: r.sessions_revoked,
            transactions_cancelled: r.transactions_cancelled,
            needs_owner_signature: r.needs_owner_signature,
        }
    }
}

/// `GET /health`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// One audit-log entry.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub seq: u64,
    /// Unix time in milliseconds.
    pub ts: i64,
    /// snake_case event name, e.g. `wallet_created`, `master_auth_failed`.
    pub kind: String,
    /// `master`, `session:<id>`, `owner:<address>`, `system`.
    pub actor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wallet_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Event-specific context; absent when there is none. Never a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
    /// The previous entry's hash (64 zeros for the first).
    pub prev_hash: String,
    /// HMAC-SHA256 (hex) under the daemon's audit key over the previous hash and the entry;
    /// plain SHA-256 on legacy entries (those without `alg`).
    pub hash: String,
    /// `hmac-sha256`; absent on legacy entries written before keyed chains.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
}

/// The audit chain checked from the first entry to the stored head.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditVerification {
    pub entries: u64,
    pub ok: bool,
    /// The first sequence number whose MAC, hash or link does not verify.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<u64>,
    /// What is wrong at `firstBadSeq`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    pub head_hash: String,
    /// The first entry chained with HMAC-SHA256 under the daemon's audit key (1 on a store
    /// created keyed); `null` on a store not unlocked since keyed chains came in.
    pub keyed_from: Option<u64>,
    /// Entries before `keyedFrom`: plain SHA-256 links, which show damage but not a forger.
    pub legacy_entries: u64,
    /// Whether every keyed entry's MAC was checked (always, when the daemon answers).
    pub mac_checked: bool,
}

impl From<AuditEntryView> for AuditEntry {
    fn from(e: AuditEntryView) -> Self {
        Self {
            seq: e.seq,
            ts: e.ts,
            kind: e.kind,
            actor: e.actor,
            wallet_id: e.wallet_id,
            session_id: e.session_id,
            detail: e.detail,
            prev_hash: e.prev_hash,
            hash: e.hash,
            alg: e.alg,
        }
    }
}

impl From<AuditVerificationView> for AuditVerification {
    fn from(v: AuditVerificationView) -> Self {
        Self {
            entries: v.entries,
            ok: v.ok,
            first_bad_seq: v.first_bad_seq,
            problem: v.problem,
            head_hash: v.head_hash,
            keyed_from: v.keyed_from,
            legacy_entries: v.legacy_entries,
            mac_checked: v.mac_checked,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_a_session_token_hides_the_token() {
        let t = SessionToken {
            id: "s1".into(),
            wallet_id: "w1".into(),
            token: "eyJhbGciOiJIUzI1NiJ9.secret.signature".into(),
            expires_at: String::new(),
            absolute_expires_at: String::new(),
            renewals_left: 1,
        };
        let shown = format!("{t:?}");
        assert!(
            !shown.contains("secret") && shown.contains("[REDACTED]") && shown.contains("s1"),
            "{shown}"
        );
    }

    #[test]
    fn enums_are_their_strings_on_the_wire_and_in_the_schema() {
        let schema_values = |schema: schemars::Schema| schema.as_value()["enum"].clone();
        for state in TxState::ALL {
            let wire = serde_json::to_value(state).unwrap();
            assert_eq!(wire, state.as_str());
            assert_eq!(serde_json::from_value::<TxState>(wire).unwrap(), state);
        }
        assert_eq!(
            schema_values(schemars::schema_for!(TxState)),
            serde_json::json!(TxState::ALL.map(TxState::as_str))
        );
        for tier in Tier::ALL {
            assert_eq!(serde_json::to_value(tier).unwrap(), tier.as_str());
            assert_eq!(serde_json::from_value::<Tier>(tier.as_str().into()).unwrap(), tier);
        }
        assert_eq!(
            schema_values(schemars::schema_for!(Option<Tier>)),
            serde_json::json!(["INSTANT", "NOTIFY", "DELAY", "APPROVAL", null])
        );
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
            assert_eq!(serde_json::from_value::<ErrorCode>(code.as_str().into()).unwrap(), code);
        }
        assert_eq!(
            schema_values(schemars::schema_for!(ErrorCode)),
            serde_json::json!(ErrorCode::ALL.map(ErrorCode::as_str))
        );
        // Not lenient, and what was sent is not echoed.
        let err = serde_json::from_value::<TxState>("confirmed\n<b>".into())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("unknown transaction status; expected one of REQUESTED, DELAYED"),
            "{err}"
        );
        assert!(!err.contains("<b>"), "{err}");
        assert!(serde_json::from_value::<Tier>("instant".into()).is_err());
    }

    #[test]
    fn free_text_fields_are_bounded() {
        let ks = |reason: &str| KillSwitch {
            on: true,
            wallet_id: None,
            reason: Some(reason.to_owned()),
        };
        let err = ks(&"x".repeat(60_000)).reason().unwrap_err().to_string();
        assert!(err.contains("reason is too long: at most 256"), "{err}");
        assert_eq!(ks("stop\u{202e} now\n").reason().unwrap(), "stop now");
        assert_eq!(ks(&"é".repeat(256)).reason().unwrap().chars().count(), 256);
        assert_eq!(ks("").reason().unwrap(), "pulled by the operator");

        let transfer = |memo: &str| Transfer {
            to: "0x00".into(),
            amount: Some("1".into()),
            amount_base_units: None,
            token: None,
            idempotency_key: Some("k".into()),
            memo: Some(memo.to_owned()),
        };
        assert!(transfer(&"m".repeat(256)).into_request().is_ok());
        let err = transfer(&"m".repeat(257)).into_request().unwrap_err().to_string();
        assert!(err.contains("memo is too long"), "{err}");

        let policy = CreatePolicy {
            wallet_id: "w".into(),
            kind: "WHITELIST".into(),
            rules: serde_json::json!({ "allowed_addresses": vec!["0x0000000000000000000000000000000000000000"; 1000] }),
        };
        assert!(
            policy
                .check_bounds()
                .unwrap_err()
                .to_string()
                .contains("rules are too large")
        );
        let wallet = CreateWallet {
            name: "n".repeat(65),
            chain: "anvil".into(),
        };
        assert!(wallet.parse().unwrap_err().to_string().contains("name is too long"));
    }
}

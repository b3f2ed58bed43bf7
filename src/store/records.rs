//! Versioned records as stored. Field names are part of the on-disk format: add fields
//! with `#[serde(default)]`, never rename; bump `v` and migrate on read when a change is
//! not additive.

use crate::domain::{
    Address, Amount, Asset, ChainKind, ChainName, Effect, FeeQuote, Freeze, Owner, PeriodSpend, PolicyId, Sequence,
    Session, SessionId, TraceEntry, Transfer, TxId, TxState, Wallet, WalletId,
};
use crate::keystore::Sealed;
use alloy_primitives::U256;
use serde::{Deserialize, Serialize};

pub const RECORD_VERSION: u32 = 1;

/// Created once at `init`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaemonRecord {
    pub v: u32,
    /// Random id of this installation: the JWT audience, so a token minted by one bursar
    /// is worthless at another.
    pub daemon_id: String,
    pub created_at: i64,
    /// When the master password was last changed (`None`: still the initial one).
    #[serde(default)]
    pub master_changed_at: Option<i64>,
    /// When the JWT secret was generated or last rotated.
    pub jwt_secret_created_at: i64,
}

/// The audit chain's key (`secret/audit`), sealed under the KEK for the purpose
/// `audit-chain/<keyed_from>`: the switch point is bound into the AAD, so it cannot be moved
/// (to pass keyed entries off as legacy ones) without the master password.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditKeyRecord {
    pub v: u32,
    /// The first audit entry chained with this key.
    pub keyed_from: u64,
    pub sealed: Sealed,
}

impl AuditKeyRecord {
    /// The keystore purpose the key is sealed for.
    pub fn purpose(keyed_from: u64) -> String {
        format!("audit-chain/{keyed_from}")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WalletRecord {
    pub v: u32,
    #[serde(with = "super::as_string")]
    pub id: WalletId,
    pub name: String,
    #[serde(with = "super::as_string")]
    pub chain: ChainName,
    #[serde(with = "super::as_string")]
    pub kind: ChainKind,
    /// Stored as text; bound into the key's AAD, so editing it breaks decryption.
    pub address: String,
    pub created_at: i64,
    pub key: Sealed,
    /// The fund owner who approves APPROVAL-tier transfers; `None` means APPROVAL is DENIED.
    #[serde(default)]
    pub owner: Option<OwnerRecord>,
    /// Set by the kill switch or AutoStop: no session, no signature until lifted.
    #[serde(default)]
    pub frozen: Option<FreezeRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreezeRecord {
    /// `master`, `owner` or `autostop`.
    pub by: String,
    pub reason: String,
    pub since: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRecord {
    pub address: String,
    /// `GRACE` until the owner's first valid signature, then `LOCKED`.
    pub state: String,
    pub registered_at: i64,
}

impl WalletRecord {
    pub fn address(&self) -> Result<Address, super::StoreError> {
        Address::parse(self.kind, &self.address).map_err(|err| corrupt(super::keys::wallet(self.id), err))
    }

    /// What a caller may see of the wallet (no sealed key): refused as corrupt when a stored
    /// field does not parse.
    pub fn wallet(&self) -> Result<Wallet, super::StoreError> {
        let bad = |err: crate::domain::DomainError| corrupt(super::keys::wallet(self.id), err);
        let owner = match &self.owner {
            Some(o) => Some(Owner {
                address: Address::parse(self.kind, &o.address).map_err(bad)?,
                state: o.state.parse().map_err(bad)?,
                registered_at: o.registered_at,
            }),
            None => None,
        };
        Ok(Wallet {
            id: self.id,
            name: self.name.parse().map_err(bad)?,
            chain: self.chain.clone(),
            kind: self.kind,
            address: self.address()?,
            created_at: self.created_at,
            owner,
            frozen: self.frozen.as_ref().map(Into::into),
        })
    }
}

impl From<&FreezeRecord> for Freeze {
    fn from(f: &FreezeRecord) -> Self {
        Freeze {
            by: f.by.clone(),
            reason: f.reason.clone(),
            since: f.since,
        }
    }
}

fn corrupt(key: String, reason: impl std::fmt::Display) -> super::StoreError {
    super::StoreError::Corrupt {
        key,
        reason: reason.to_string(),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    pub v: u32,
    #[serde(with = "super::as_string")]
    pub id: SessionId,
    #[serde(with = "super::as_string")]
    pub wallet_id: WalletId,
    pub created_at: i64,
    /// Expiry of the current token.
    pub expires_at: i64,
    /// No renewal reaches past this.
    pub absolute_expires_at: i64,
    pub ttl_seconds: u64,
    pub max_renewals: u32,
    pub renewals: u32,
    #[serde(default)]
    pub revoked_at: Option<i64>,
    /// SHA-256 of the only token currently valid for this session (hex).
    pub token_hash: String,
    /// `jti` of that token.
    pub jti: String,
}

/// What a caller may see of the session (no token hash, no `jti`).
impl From<&SessionRecord> for Session {
    fn from(s: &SessionRecord) -> Self {
        Session {
            id: s.id,
            wallet_id: s.wallet_id,
            created_at: s.created_at,
            expires_at: s.expires_at,
            absolute_expires_at: s.absolute_expires_at,
            ttl_seconds: s.ttl_seconds,
            max_renewals: s.max_renewals,
            renewals: s.renewals,
            revoked_at: s.revoked_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyRecord {
    pub v: u32,
    #[serde(with = "super::as_string")]
    pub id: PolicyId,
    #[serde(with = "super::as_string")]
    pub wallet_id: WalletId,
    /// `SPENDING_LIMIT`, `WHITELIST`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// As given, validated by `policy::parse` at creation and parsed again on use.
    pub rules: serde_json::Value,
    pub created_at: i64,
}

/// What a copy of a [`TxRecord`] knows of its entry in the (wallet, status) index: saving it
/// deletes exactly the stale entry when known (one key instead of one per state).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Indexed {
    /// Read without it (a scan), or an older copy: every other state's key is deleted.
    #[default]
    Unknown,
    /// A new record: nothing to delete.
    Absent,
    /// Under this state, as read or last saved.
    Under(TxState),
}

/// One transfer request and its whole life.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TxRecord {
    pub v: u32,
    #[serde(with = "super::as_string")]
    pub id: TxId,
    #[serde(with = "super::as_string")]
    pub wallet_id: WalletId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(with = "super::as_string")]
    pub chain: ChainName,
    #[serde(with = "super::as_string")]
    pub status: TxState,
    /// `INSTANT` … `APPROVAL`; `None` when denied.
    pub tier: Option<String>,
    pub to: String,
    /// Token contract; `None` for the native asset.
    pub token: Option<String>,
    pub symbol: String,
    pub decimals: u8,
    #[serde(with = "super::as_string")]
    pub base_units: U256,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
    pub idempotency_key: String,
    pub request_hash: String,
    pub reasons: Vec<String>,
    pub trace: serde_json::Value,
    /// What this transfer holds against the budgets until it fails or is cancelled.
    pub reserved: Reservation,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(default)]
    pub executes_at: Option<i64>,
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// EVM: the account nonce its signed versions use.
    #[serde(default)]
    pub nonce: Option<u64>,
    /// Solana: the recent blockhash its signed versions use (hex) and its last valid height.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blockhash: Option<(String, u64)>,
    /// The signed transaction, persisted before broadcast (hex).
    #[serde(default)]
    pub raw: Option<String>,
    #[serde(default)]
    pub hash: Option<String>,
    #[serde(default)]
    pub block: Option<u64>,
    #[serde(default)]
    pub confirmations: u64,
    #[serde(default)]
    pub error: Option<String>,
    /// When the account's nonce was first seen past this transfer's while its own receipt was
    /// still missing (a re-broadcast refused): the start of the grace before it counts as dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce_passed_at: Option<i64>,
    /// The fees it is signed with (what the policy counted), once quoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee: Option<FeeRecord>,
    /// What it paid in fees, from the receipt.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_u256")]
    pub fee_paid: Option<U256>,
    /// When the current signed bytes (`raw`, `hash`) were signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_at: Option<i64>,
    /// Hashes of earlier signed versions at the same nonce (replaced with higher fees):
    /// any one of them may be the one mined, and only one can be.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaced_hashes: Vec<String>,
    /// The operator's on-chain cancel (a zero-value self-transfer at the same nonce), when
    /// signed: if it is the one mined, the transfer ends FAILED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_hash: Option<String>,
    /// Not stored: see [`Indexed`].
    #[serde(skip)]
    pub indexed: Indexed,
}

impl TxRecord {
    /// The sequence its signed versions use, once signed.
    pub fn sequence(&self) -> Option<Sequence> {
        if let Some(n) = self.nonce {
            return Some(Sequence::AccountNonce(n));
        }
        let (hash, last_valid_height) = self.blockhash.as_ref()?;
        let hash = hex::decode(hash).ok()?.try_into().ok()?;
        Some(Sequence::RecentBlockhash {
            hash,
            last_valid_height: *last_valid_height,
        })
    }

    /// What a caller may see of the transfer, typed (`kind`: its wallet's chain kind, which
    /// the addresses are parsed for): no signed bytes, no reservation, no request hash. A
    /// stored field that does not parse is refused as corrupt.
    pub fn transfer(&self, kind: ChainKind) -> Result<Transfer, super::StoreError> {
        let key = || super::keys::tx(self.wallet_id, self.id);
        let address = |s: &str| Address::parse(kind, s).map_err(|e| corrupt(key(), e));
        Ok(Transfer {
            id: self.id,
            wallet_id: self.wallet_id,
            chain: self.chain.clone(),
            status: self.status,
            tier: self
                .tier
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|e| corrupt(key(), e))?,
            to: address(&self.to)?,
            asset: match &self.token {
                Some(token) => Asset::Token(address(token)?),
                None => Asset::Native,
            },
            symbol: self.symbol.clone(),
            amount: Amount::new(self.base_units, self.decimals).map_err(|e| corrupt(key(), e))?,
            memo: self.memo.clone(),
            idempotency_key: self.idempotency_key.clone(),
            reasons: self.reasons.clone(),
            trace: read_trace(&self.trace).map_err(|e| corrupt(key(), format!("trace: {e}")))?,
            created_at: self.created_at,
            updated_at: self.updated_at,
            executes_at: self.executes_at,
            expires_at: self.expires_at,
            sequence: self.sequence(),
            hash: self.hash.clone(),
            block: self.block,
            confirmations: self.confirmations,
            error: self.error.clone(),
            fee: self.fee.map(Into::into),
            fee_paid: self.fee_paid,
            replaced_hashes: self.replaced_hashes.clone(),
            cancel_hash: self.cancel_hash.clone(),
        })
    }

    pub fn set_sequence(&mut self, sequence: Sequence) {
        match sequence {
            Sequence::AccountNonce(n) => self.nonce = Some(n),
            Sequence::RecentBlockhash {
                hash,
                last_valid_height,
            } => {
                self.blockhash = Some((hex::encode(hash), last_valid_height));
            }
        }
    }
}

/// A fee quote as stored with its transfer (wei per gas as decimal strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeRecord {
    pub gas_limit: u64,
    #[serde(with = "super::as_string")]
    pub max_fee_per_gas: u128,
    #[serde(with = "super::as_string")]
    pub max_priority_fee_per_gas: u128,
    /// Native base units beyond gas × price (Solana: the whole fee with rent); absent: 0.
    #[serde(default, with = "super::as_string", skip_serializing_if = "is_zero")]
    pub extra_fee: u128,
}

impl From<FeeQuote> for FeeRecord {
    fn from(q: FeeQuote) -> Self {
        FeeRecord {
            gas_limit: q.gas_limit,
            max_fee_per_gas: q.max_fee_per_gas,
            max_priority_fee_per_gas: q.max_priority_fee_per_gas,
            extra_fee: q.extra_fee,
        }
    }
}

impl From<FeeRecord> for FeeQuote {
    fn from(r: FeeRecord) -> Self {
        FeeQuote {
            gas_limit: r.gas_limit,
            max_fee_per_gas: r.max_fee_per_gas,
            max_priority_fee_per_gas: r.max_priority_fee_per_gas,
            extra_fee: r.extra_fee,
        }
    }
}

/// One policy rule's verdict as stored in a transfer's `trace` (camelCase keys).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredTraceEntry {
    policy_id: Option<String>,
    rule: String,
    counter: Option<String>,
    effect: String,
    detail: String,
}

/// The policy's trace as stored with a transfer.
pub fn trace_json(trace: &[TraceEntry]) -> serde_json::Value {
    let stored: Vec<StoredTraceEntry> = trace
        .iter()
        .map(|t| StoredTraceEntry {
            policy_id: t.policy_id.clone(),
            rule: t.rule.clone(),
            counter: t.counter.clone(),
            effect: t.effect.as_str().to_owned(),
            detail: t.detail.clone(),
        })
        .collect();
    serde_json::to_value(stored).expect("a trace serialises")
}

/// A stored trace, typed (`null`: none recorded).
fn read_trace(value: &serde_json::Value) -> Result<Vec<TraceEntry>, String> {
    if value.is_null() {
        return Ok(Vec::new());
    }
    let stored = Vec::<StoredTraceEntry>::deserialize(value).map_err(|e| e.to_string())?;
    stored
        .into_iter()
        .map(|t| {
            Ok(TraceEntry {
                effect: t.effect.parse::<Effect>().map_err(|e| e.to_string())?,
                policy_id: t.policy_id,
                rule: t.rule,
                counter: t.counter,
                detail: t.detail,
            })
        })
        .collect()
}

fn is_zero(v: &u128) -> bool {
    *v == 0
}

/// Budget reservation of one transfer, with the periods it was counted in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub day: String,
    pub month: String,
    #[serde(default, with = "opt_u256")]
    pub micro_usd: Option<U256>,
    #[serde(default, with = "opt_u256")]
    pub native: Option<U256>,
    /// The fee's share of `native` and `micro_usd` (the most it can pay), trued up to what
    /// it paid when the receipt comes.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_u256")]
    pub fee_native: Option<U256>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_u256")]
    pub fee_micro_usd: Option<U256>,
    /// Cleared when released (failure, cancel, expiry, denial on re-check).
    pub held: bool,
}

/// Spend counted in one period (day `YYYY-MM-DD` or month `YYYY-MM`): confirmed plus in flight.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetRecord {
    #[serde(with = "super::as_string")]
    pub micro_usd: U256,
    #[serde(with = "super::as_string")]
    pub native: U256,
}

impl From<&BudgetRecord> for PeriodSpend {
    fn from(b: &BudgetRecord) -> Self {
        PeriodSpend {
            micro_usd: b.micro_usd,
            native: b.native,
        }
    }
}

/// An idempotency key, bound to the first request's hash and its transfer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    #[serde(with = "super::as_string")]
    pub tx_id: TxId,
    pub request_hash: String,
}

mod opt_u256 {
    use alloy_primitives::U256;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &Option<U256>, ser: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => ser.collect_str(v),
            None => ser.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Option<U256>, D::Error> {
        Option::<String>::deserialize(de)?
            .map(|s| s.parse().map_err(D::Error::custom))
            .transpose()
    }
}

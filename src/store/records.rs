//! Versioned records as stored. Field names are part of the on-disk format: add fields
//! with `#[serde(default)]`, never rename; bump `v` and migrate on read when a change is
//! not additive.

use crate::domain::{Address, ChainKind, ChainName, SessionId, WalletId};
use crate::keystore::Sealed;
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
}

impl WalletRecord {
    pub fn address(&self) -> Result<Address, super::StoreError> {
        Address::parse(self.kind, &self.address).map_err(|err| super::StoreError::Corrupt {
            key: super::keys::wallet(self.id),
            reason: err.to_string(),
        })
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

//! Wallets and sessions as callers see them, typed: the address, the owner and its state, a
//! freeze, a session's lifetime, a period's spend. Made from the stored records in
//! `store::records` only (no sealed key, no token hash).

use super::{Address, ChainKind, ChainName, DomainError, SessionId, WalletId, WalletName, sanitize};
use alloy_primitives::U256;
use std::fmt;
use std::str::FromStr;

/// One key on one configured chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wallet {
    pub id: WalletId,
    pub name: WalletName,
    pub chain: ChainName,
    pub kind: ChainKind,
    pub address: Address,
    pub created_at: i64,
    /// The fund owner who approves APPROVAL-tier transfers; `None` means APPROVAL is DENIED.
    pub owner: Option<Owner>,
    /// Set by the kill switch or AutoStop: no session, no signature until lifted.
    pub frozen: Option<Freeze>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub address: Address,
    pub state: OwnerState,
    pub registered_at: i64,
}

/// GRACE until the owner's first valid signature, then LOCKED: the master password alone can
/// no longer change or remove the owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    Grace,
    Locked,
}

impl OwnerState {
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerState::Grace => "GRACE",
            OwnerState::Locked => "LOCKED",
        }
    }
}

impl FromStr for OwnerState {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "GRACE" => Ok(OwnerState::Grace),
            "LOCKED" => Ok(OwnerState::Locked),
            other => Err(DomainError::Unknown {
                what: "owner state",
                value: sanitize::for_message(other),
            }),
        }
    }
}

impl fmt::Display for OwnerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why and since when a wallet is frozen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freeze {
    /// `master`, `owner` or `autostop`.
    pub by: String,
    pub reason: String,
    pub since: i64,
}

/// One agent's bounded access to one wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub wallet_id: WalletId,
    pub created_at: i64,
    /// Expiry of the current token.
    pub expires_at: i64,
    /// No renewal reaches past this.
    pub absolute_expires_at: i64,
    pub ttl_seconds: u64,
    pub max_renewals: u32,
    pub renewals: u32,
    pub revoked_at: Option<i64>,
}

/// Spend counted in one period (a UTC day or month): confirmed plus in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeriodSpend {
    /// USD with 6 decimals.
    pub micro_usd: U256,
    /// Native base units.
    pub native: U256,
}

//! The typed vocabulary: ids, chains, addresses, amounts. No IO, no async, no serde, no
//! providers, no store. Inner code never sees raw strings: edges parse into these once.

pub mod amount;
pub mod listing;
pub mod sanitize;
pub mod transfer;
pub mod wallet;

use std::fmt;
use std::str::FromStr;

pub use amount::{Amount, AmountError};
pub use listing::{AuditFilter, MAX_PAGE, Page};
pub use transfer::{Asset, Effect, FeeQuote, Tier, TraceEntry, Transfer};
pub use wallet::{Freeze, Owner, OwnerState, PeriodSpend, Session, Wallet};

/// The two chain families bursar signs for. One wallet = one key on one chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChainKind {
    Evm,
    Solana,
}

impl ChainKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChainKind::Evm => "evm",
            ChainKind::Solana => "solana",
        }
    }
}

impl FromStr for ChainKind {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "evm" => Ok(ChainKind::Evm),
            "solana" => Ok(ChainKind::Solana),
            other => Err(DomainError::UnknownChainKind(sanitize::for_message(other))),
        }
    }
}

impl fmt::Display for ChainKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("unknown chain kind {0:?} (expected \"evm\" or \"solana\")")]
    UnknownChainKind(String),
    #[error("invalid {kind} address: {reason}")]
    InvalidAddress { kind: ChainKind, reason: &'static str },
    #[error("invalid id {0:?}")]
    InvalidId(String),
    #[error("invalid name: {0}")]
    InvalidName(&'static str),
    #[error("unknown {what} {value:?}")]
    Unknown { what: &'static str, value: String },
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// UUIDv7: ids sort in creation order (listings break same-second ties by id).
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                uuid::Uuid::try_parse(s)
                    .map(Self)
                    .map_err(|_| DomainError::InvalidId(sanitize::for_message(s)))
            }
        }
    };
}

uuid_id!(
    /// A wallet: one key on one configured chain.
    WalletId
);
uuid_id!(
    /// A session: one agent's bounded access to one wallet.
    SessionId
);

uuid_id!(
    /// A transfer request and everything that happened to it.
    TxId
);
uuid_id!(
    /// A policy attached to a wallet.
    PolicyId
);

/// Where a transfer stands. The last five are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxState {
    Requested,
    Delayed,
    PendingApproval,
    Signed,
    Submitted,
    Confirmed,
    Denied,
    Cancelled,
    Rejected,
    Expired,
    Failed,
}

impl TxState {
    pub const ALL: [TxState; 11] = [
        TxState::Requested,
        TxState::Delayed,
        TxState::PendingApproval,
        TxState::Signed,
        TxState::Submitted,
        TxState::Confirmed,
        TxState::Denied,
        TxState::Cancelled,
        TxState::Rejected,
        TxState::Expired,
        TxState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TxState::Requested => "REQUESTED",
            TxState::Delayed => "DELAYED",
            TxState::PendingApproval => "PENDING_APPROVAL",
            TxState::Signed => "SIGNED",
            TxState::Submitted => "SUBMITTED",
            TxState::Confirmed => "CONFIRMED",
            TxState::Denied => "DENIED",
            TxState::Cancelled => "CANCELLED",
            TxState::Rejected => "REJECTED",
            TxState::Expired => "EXPIRED",
            TxState::Failed => "FAILED",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            TxState::Confirmed
                | TxState::Denied
                | TxState::Cancelled
                | TxState::Rejected
                | TxState::Expired
                | TxState::Failed
        )
    }

    /// Not yet signed, waiting on time or on the owner: the agent or the owner may cancel.
    pub fn is_cancellable(self) -> bool {
        matches!(self, TxState::Delayed | TxState::PendingApproval)
    }
}

impl FromStr for TxState {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TxState::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| DomainError::InvalidId(sanitize::for_message(s)))
    }
}

impl fmt::Display for TxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A configured chain's name (`[chains.<name>]`): 1–32 of `[a-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainName(String);

impl ChainName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ChainName {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(DomainError::InvalidName(
                "chain names are 1-32 characters of a-z, 0-9, '_' and '-'",
            ))
        }
    }
}

impl fmt::Display for ChainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A human label for a wallet: 1–64 printable characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletName(String);

impl WalletName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for WalletName {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() || s.chars().count() > 64 {
            return Err(DomainError::InvalidName("wallet names are 1-64 characters"));
        }
        if s.chars().any(|c| c.is_control() || sanitize::is_invisible(c)) {
            return Err(DomainError::InvalidName(
                "wallet names must not contain control or invisible characters",
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

/// An ECDSA secp256k1 signature over a 32-byte prehash, low-S normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvmSignature {
    pub r: [u8; 32],
    pub s: [u8; 32],
    pub y_parity: bool,
}

/// What a chain asks a wallet key to sign: the one input of the keystore's signing entry
/// point. Each chain adapter builds it from its unsigned transaction; the service never looks
/// inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigningPayload {
    /// A 32-byte prehash signed with secp256k1 ECDSA (EVM: the transaction's signing hash).
    Secp256k1Prehash([u8; 32]),
    /// A message signed with Ed25519 as is (Solana: the serialized transaction message).
    Ed25519Message(Vec<u8>),
}

impl SigningPayload {
    /// The key kind that can sign it.
    pub fn kind(&self) -> ChainKind {
        match self {
            SigningPayload::Secp256k1Prehash(_) => ChainKind::Evm,
            SigningPayload::Ed25519Message(_) => ChainKind::Solana,
        }
    }
}

/// What makes a signed transaction valid once and only once on its chain, chosen by the
/// chain's adapter right before signing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sequence {
    /// EVM: the account's nonce. Transactions of one account are mined in nonce order.
    AccountNonce(u64),
    /// Solana: a recent blockhash, valid up to a block height.
    RecentBlockhash { hash: [u8; 32], last_valid_height: u64 },
}

impl Sequence {
    /// The lowest sequence the account's next transaction may use, when the chain orders
    /// them (EVM: this nonce + 1); `None` when it does not (Solana).
    pub fn next(&self) -> Option<Sequence> {
        match self {
            Sequence::AccountNonce(n) => Some(Sequence::AccountNonce(n.saturating_add(1))),
            Sequence::RecentBlockhash { .. } => None,
        }
    }

    /// Whether a second transaction signed at this sequence replaces the first: only one of
    /// them can ever be mined (an account nonce). Two transactions at one recent blockhash
    /// can both land, so neither replaces the other.
    pub fn replaceable(&self) -> bool {
        matches!(self, Sequence::AccountNonce(_))
    }

    /// The later of two floors (for ordered sequences; otherwise the first that is there).
    pub fn later(a: Option<Sequence>, b: Option<Sequence>) -> Option<Sequence> {
        match (a, b) {
            (Some(Sequence::AccountNonce(x)), Some(Sequence::AccountNonce(y))) => {
                Some(Sequence::AccountNonce(x.max(y)))
            }
            (a, b) => a.or(b),
        }
    }
}

/// A signature over a [`SigningPayload`], of the payload's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    Secp256k1(EvmSignature),
    Ed25519([u8; 64]),
}

/// An on-chain account address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Address {
    Evm(alloy_primitives::Address),
    Solana([u8; 32]),
}

impl Address {
    pub fn kind(&self) -> ChainKind {
        match self {
            Address::Evm(_) => ChainKind::Evm,
            Address::Solana(_) => ChainKind::Solana,
        }
    }

    pub fn parse(kind: ChainKind, s: &str) -> Result<Self, DomainError> {
        let s = s.trim();
        match kind {
            ChainKind::Evm => {
                let hex = s.strip_prefix("0x").ok_or(DomainError::InvalidAddress {
                    kind,
                    reason: "expected 0x followed by 40 hex digits",
                })?;
                if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(DomainError::InvalidAddress {
                        kind,
                        reason: "expected 0x followed by 40 hex digits",
                    });
                }
                let addr = alloy_primitives::Address::from_str(s).map_err(|_| DomainError::InvalidAddress {
                    kind,
                    reason: "not a valid hex address",
                })?;
                // Mixed case means the sender claims an EIP-55 checksum: hold them to it.
                let mixed = hex.bytes().any(|b| b.is_ascii_lowercase()) && hex.bytes().any(|b| b.is_ascii_uppercase());
                if mixed && addr.to_checksum(None) != s {
                    return Err(DomainError::InvalidAddress {
                        kind,
                        reason: "EIP-55 checksum mismatch",
                    });
                }
                Ok(Address::Evm(addr))
            }
            ChainKind::Solana => {
                let bytes = bs58::decode(s).into_vec().map_err(|_| DomainError::InvalidAddress {
                    kind,
                    reason: "not base58",
                })?;
                let arr: [u8; 32] = bytes.try_into().map_err(|_| DomainError::InvalidAddress {
                    kind,
                    reason: "expected 32 bytes",
                })?;
                Ok(Address::Solana(arr))
            }
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Evm(a) => f.write_str(&a.to_checksum(None)),
            Address::Solana(b) => f.write_str(&bs58::encode(b).into_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evm_address_checksum_is_enforced_when_mixed_case() {
        let good = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
        assert_eq!(Address::parse(ChainKind::Evm, good).unwrap().to_string(), good);
        let lower = good.to_lowercase();
        assert_eq!(Address::parse(ChainKind::Evm, &lower).unwrap().to_string(), good);
        let bad = "0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
        assert!(Address::parse(ChainKind::Evm, bad).is_err());
        for junk in [
            "",
            "0x",
            "f39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
            "0x123",
            "0xzz9Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        ] {
            assert!(Address::parse(ChainKind::Evm, junk).is_err(), "{junk}");
        }
    }

    #[test]
    fn solana_address_round_trips() {
        let s = "11111111111111111111111111111111";
        assert_eq!(Address::parse(ChainKind::Solana, s).unwrap().to_string(), s);
        assert!(Address::parse(ChainKind::Solana, "0OIl").is_err());
        assert!(Address::parse(ChainKind::Solana, "1111").is_err());
    }

    #[test]
    fn names_are_validated() {
        assert!("anvil".parse::<ChainName>().is_ok());
        assert!("Anvil".parse::<ChainName>().is_err());
        assert!("".parse::<ChainName>().is_err());
        assert!("a b".parse::<ChainName>().is_err());
        assert!("ops wallet".parse::<WalletName>().is_ok());
        assert!("bad\u{202e}name".parse::<WalletName>().is_err());
        assert!("".parse::<WalletName>().is_err());
    }
}

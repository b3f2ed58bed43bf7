//! A transfer as callers see it, typed: recipient, asset, amount, tier, state, the policy's
//! trace, the fees and what happened on chain. Made from the stored record in `store::records`
//! only, so no edge depends on how a transfer is stored.

use super::{Address, Amount, ChainName, DomainError, Sequence, TxId, TxState, WalletId, sanitize};
use alloy_primitives::U256;
use std::fmt;
use std::str::FromStr;

/// How a transfer may proceed, most permissive first: `max()` is the strictest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Hash)]
pub enum Tier {
    Instant,
    Notify,
    Delay,
    Approval,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::Instant, Tier::Notify, Tier::Delay, Tier::Approval];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Instant => "INSTANT",
            Tier::Notify => "NOTIFY",
            Tier::Delay => "DELAY",
            Tier::Approval => "APPROVAL",
        }
    }
}

impl FromStr for Tier {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| DomainError::Unknown {
                what: "tier",
                value: sanitize::for_message(s),
            })
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a transfer moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asset {
    Native,
    /// A token, by contract (EVM) or mint (Solana) address.
    Token(Address),
}

/// One rule the policy engine evaluated, and what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEntry {
    /// `None` for the built-in defaults (default deny, owner check).
    pub policy_id: Option<String>,
    /// `TYPE.field`, e.g. "SPENDING_LIMIT.notify_max_usd".
    pub rule: String,
    /// e.g. "daily_limit_usd: spent $40.00 + $25.00 of $50.00".
    pub counter: Option<String>,
    pub effect: Effect,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Tier(Tier),
    Deny,
    Pass,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Tier(tier) => tier.as_str(),
            Effect::Deny => "DENY",
            Effect::Pass => "PASS",
        }
    }
}

impl FromStr for Effect {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "DENY" => Ok(Effect::Deny),
            "PASS" => Ok(Effect::Pass),
            tier => tier.parse().map(Effect::Tier).map_err(|_| DomainError::Unknown {
                what: "rule effect",
                value: sanitize::for_message(s),
            }),
        }
    }
}

/// The fees a transfer will be signed with, as the node quoted them and held to the chain's
/// caps: what the policy counts (`max_fee`) is exactly what the signed transaction allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeQuote {
    pub gas_limit: u64,
    /// Wei per gas.
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
    /// Native base units the transaction costs beyond gas × price: 0 on EVM chains. Solana
    /// (whose `max_fee_per_gas` is 0, `gas_limit` the compute-unit limit and
    /// `max_priority_fee_per_gas` the compute-unit price in micro-lamports): the whole fee in
    /// lamports — base fee, priority fee and the rent of any account the transfer creates.
    pub extra_fee: u128,
}

impl FeeQuote {
    /// The most the transaction can pay: gas limit × max fee per gas plus `extra_fee`, in
    /// native base units.
    pub fn max_fee(&self) -> U256 {
        U256::from(self.gas_limit) * U256::from(self.max_fee_per_gas) + U256::from(self.extra_fee)
    }
}

/// A transfer request and everything that happened to it, as a caller may see it (no signed
/// bytes, no budget reservation, no request hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub id: TxId,
    pub wallet_id: WalletId,
    pub chain: ChainName,
    pub status: TxState,
    /// `None` when denied, or refused by the chain before the policy judged it.
    pub tier: Option<Tier>,
    /// The recipient of the value (for a token, the token's recipient).
    pub to: Address,
    pub asset: Asset,
    pub symbol: String,
    pub amount: Amount,
    pub memo: Option<String>,
    pub idempotency_key: String,
    /// Why this tier, or why denied: sentences an agent can act on.
    pub reasons: Vec<String>,
    /// Every rule the policy engine evaluated, in order.
    pub trace: Vec<TraceEntry>,
    pub created_at: i64,
    pub updated_at: i64,
    /// DELAY: when it executes unless cancelled.
    pub executes_at: Option<i64>,
    /// APPROVAL: when it expires unless the owner approves.
    pub expires_at: Option<i64>,
    /// What makes its signed versions valid once (EVM: the account nonce), once signed.
    pub sequence: Option<Sequence>,
    /// The current signed version's hash (or the one mined).
    pub hash: Option<String>,
    pub block: Option<u64>,
    pub confirmations: u64,
    pub error: Option<String>,
    /// The fees it is signed with (what the policy counted), once quoted.
    pub fee: Option<FeeQuote>,
    /// What it paid in fees (native base units), from the receipt.
    pub fee_paid: Option<U256>,
    /// Its other signed versions at the same sequence, in signing order (replaced with higher
    /// fees, or signed before an earlier one turned out mined).
    pub replaced_hashes: Vec<String>,
    /// The operator's on-chain cancel, when signed.
    pub cancel_hash: Option<String>,
}

impl Transfer {
    /// The account nonce its signed versions use (EVM), once signed.
    pub fn nonce(&self) -> Option<u64> {
        match self.sequence {
            Some(Sequence::AccountNonce(n)) => Some(n),
            _ => None,
        }
    }

    /// The token contract or mint; `None` for the native asset.
    pub fn token(&self) -> Option<Address> {
        match self.asset {
            Asset::Native => None,
            Asset::Token(t) => Some(t),
        }
    }
}

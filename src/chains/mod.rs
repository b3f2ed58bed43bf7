//! Chain adapters: RPC reads, building unsigned transactions, assembling signed ones from a
//! signature, broadcast and status. They never see keys, policy, the store or wire types.

#[cfg(feature = "evm")]
pub mod evm;

use crate::config::Chain as ChainConfig;
use crate::domain::{Address, Amount, ChainKind, ChainName, EvmSignature};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("chain {chain} is unreachable: {detail}")]
    Unreachable { chain: String, detail: String },
    #[error("chain {chain} answered with chain id {got}, but the configuration says {expected}; refusing to use it")]
    ChainIdMismatch { chain: String, expected: u64, got: u64 },
    #[error("{0} is not an ERC-20 token contract on this chain")]
    NotAToken(String),
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    NotSupported(String),
    /// The node refused the transaction for a reason that proves it can never be mined as
    /// signed (insufficient funds, intrinsic gas too low, invalid signature…): a definitive
    /// answer, unlike `Unreachable` and `NotAccepted`.
    #[error("chain {chain} rejected the transaction: {reason}")]
    Rejected { chain: String, reason: String },
    /// The node answered a broadcast with an error that proves nothing (an internal error,
    /// "underpriced", "nonce too low"…): a provider may have forwarded it, or it may have been
    /// mined already. The transfer stays SIGNED and follows the re-broadcast rule.
    #[error("chain {chain} did not accept the transaction (it may still be mined): {reason}")]
    NotAccepted { chain: String, reason: String },
}

/// Decimals and symbol of an asset (native or token), symbol sanitised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetMeta {
    pub decimals: u8,
    pub symbol: String,
}

/// A transfer to quote fees for (before any nonce is chosen).
#[derive(Debug, Clone)]
pub struct FeeRequest {
    pub from: Address,
    pub to: Address,
    /// `None` for the native asset.
    pub token: Option<Address>,
    pub base_units: alloy_primitives::U256,
}

/// The fees a transfer will be signed with, as the node quoted them and held to the chain's
/// caps: what the policy counts (`max_fee`) is exactly what the signed transaction allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeQuote {
    pub gas_limit: u64,
    /// Wei per gas.
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
}

impl FeeQuote {
    /// The most the transaction can pay: gas limit × max fee per gas, in native base units.
    pub fn max_fee(&self) -> alloy_primitives::U256 {
        alloy_primitives::U256::from(self.gas_limit) * alloy_primitives::U256::from(self.max_fee_per_gas)
    }
}

/// The fee market now: what the next block charges and what the node would quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeMarket {
    /// The next block's base fee per gas: a transaction allowing less cannot be mined now.
    pub next_base_fee: u128,
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
}

/// A transfer the policy engine approved, with the nonce the nonce manager chose and the
/// fees the policy counted.
#[derive(Debug, Clone)]
pub struct TransferPlan {
    pub from: Address,
    pub to: Address,
    /// `None` for the native asset.
    pub token: Option<Address>,
    pub base_units: alloy_primitives::U256,
    pub nonce: u64,
    pub fee: FeeQuote,
}

/// An unsigned transaction, opaque outside its adapter except for the hash to sign.
pub struct UnsignedTx {
    #[cfg(feature = "evm")]
    pub(crate) evm: alloy::consensus::TxEip1559,
    signing_hash: [u8; 32],
}

impl UnsignedTx {
    pub fn signing_hash(&self) -> &[u8; 32] {
        &self.signing_hash
    }
}

/// A signed, encoded transaction: what the outbox stores before broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTx {
    pub raw: Vec<u8>,
    /// `0x`-prefixed transaction hash.
    pub hash: String,
}

/// Where a broadcast transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    /// Not mined (in the mempool, dropped, or unknown to this node).
    Pending,
    Mined {
        success: bool,
        block: u64,
        confirmations: u64,
        /// What the transaction paid in fees (gas used × effective gas price), when the
        /// receipt says.
        fee_paid: Option<alloy_primitives::U256>,
    },
}

/// A balance as read from a chain. `symbol` is chain-sourced and sanitised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    pub amount: Amount,
    pub symbol: String,
    /// `None` for the native asset.
    pub token: Option<String>,
}

pub enum Adapter {
    #[cfg(feature = "evm")]
    Evm(evm::EvmChain),
    /// A configured chain whose operations this build does not provide yet.
    Unavailable(ChainConfig),
}

impl Adapter {
    pub fn config(&self) -> &ChainConfig {
        match self {
            #[cfg(feature = "evm")]
            Adapter::Evm(c) => c.config(),
            Adapter::Unavailable(c) => c,
        }
    }

    pub async fn balance(&self, owner: &Address, token: Option<&str>) -> Result<Balance, ChainError> {
        match self {
            #[cfg(feature = "evm")]
            Adapter::Evm(c) => c.balance(owner, token).await,
            Adapter::Unavailable(c) => Err(unavailable(c)),
        }
    }

    pub async fn asset_meta(&self, token: Option<&Address>) -> Result<AssetMeta, ChainError> {
        match self {
            #[cfg(feature = "evm")]
            Adapter::Evm(c) => c.asset_meta(token).await,
            Adapter::Unavailable(c) => Err(unavailable(c)),
        }
    }

    /// The next nonce the node would accept from `from`, counting its pending transactions.
    pub async fn pending_nonce(&self, from: &Address) -> Result<u64, ChainError> {
        match self {
            #[cfg(feature = "evm")]
            Adapter::Evm(c) => c.pending_nonce(from).await,
            Adapter::Unavailable(c) => Err(unavailable(c)),
        }
    }

    /// The account's nonce at the latest block (how many of its transactions are mined):
    /// every nonce below it is used.
    pub async fn mined_nonce(&self, from: &Address) -> Result<u64, ChainError> {
        match self {
            #[cfg(feature = "evm")]
            Adapter::Evm(c) => c.mined_nonce(from).await,
            Adapter::Unavailable(c) => Err(unavailable(c)),
        }
    }

    /// Gas and fees for a transfer, from the node, refused (`Rejected`) above the chain's
    /// fee caps or when the node says the transfer would fail.
    pub async fn quote_fee(&self, request: &FeeRequest) -> Result<FeeQuote, ChainError> {
        match self {
            #[cfg(feature = "evm")]
            Adapter::Evm(c) => c.quote_fee(request).await,
            Adapter::Unavailable(c) => Err(unavailable(c)),
        }
    }

    /// The fee market now (for replacing a stuck transaction): no gas estimate.
    pub async fn fee_market(&self) -> Result<FeeMarket, ChainError> {
        match self {
            #[cfg(feature = "evm")]
            Adapter::Evm(c) => c.fee_market().await,
            Adapter::Unavailable(c) => Err(unavailable(c)),
        }
    }

    /// Builds the unsigned transaction from the plan (its fees included): no network call,
    /// nothing signed.
    pub fn prepare(&self, plan: &TransferPlan) -> Result<UnsignedTx, ChainError> {
        match self {
            #[cfg(feature = "evm")]
            Adapter::Evm(c) => c.prepare(plan),
            Adapter::Unavailable(c) => Err(unavailable(c)),
        }
    }

    /// Attaches a signature and encodes the transaction for broadcast.
    pub fn finalize(&self, unsigned: UnsignedTx, signature: &EvmSignature) -> Result<SignedTx, ChainError> {
        match self {
            #[cfg(feature = "evm")]
            Adapter::Evm(_) => Ok(evm::finalize(unsigned, signature)),
            Adapter::Unavailable(c) => Err(unavailable(c)),
        }
    }

    pub async fn broadcast(&self, tx: &SignedTx) -> Result<(), ChainError> {
        match self {
            #[cfg(feature = "evm")]
            Adapter::Evm(c) => c.broadcast(tx).await,
            Adapter::Unavailable(c) => Err(unavailable(c)),
        }
    }

    pub async fn status(&self, hash: &str) -> Result<TxStatus, ChainError> {
        match self {
            #[cfg(feature = "evm")]
            Adapter::Evm(c) => c.status(hash).await,
            Adapter::Unavailable(c) => Err(unavailable(c)),
        }
    }
}

fn unavailable(c: &ChainConfig) -> ChainError {
    ChainError::NotSupported(format!(
        "chain {} ({}) operations are not available in this build yet",
        c.name, c.kind
    ))
}

/// Every configured chain, by name.
pub struct Chains(BTreeMap<ChainName, Adapter>);

impl Chains {
    pub fn new(configs: Vec<ChainConfig>) -> Result<Self, ChainError> {
        let map = configs
            .into_iter()
            .map(|cfg| {
                let adapter = match cfg.kind {
                    #[cfg(feature = "evm")]
                    ChainKind::Evm => Adapter::Evm(evm::EvmChain::new(cfg.clone())?),
                    _ => Adapter::Unavailable(cfg.clone()),
                };
                Ok((cfg.name, adapter))
            })
            .collect::<Result<_, ChainError>>()?;
        Ok(Self(map))
    }

    pub fn get(&self, name: &ChainName) -> Option<&Adapter> {
        self.0.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &ChainName> {
        self.0.keys()
    }
}

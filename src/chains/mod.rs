//! Chain adapters: RPC reads, (later) building unsigned transactions, broadcast, status.
//! They never see keys, policy, the store or wire types.

#[cfg(feature = "evm")]
pub mod evm;

use crate::config::Chain as ChainConfig;
use crate::domain::{Address, Amount, ChainKind, ChainName};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("chain {chain} is unreachable: {detail}")]
    Unreachable { chain: String, detail: String },
    #[error(
        "chain {chain} answered with chain id {got}, but the configuration says {expected}; refusing to use it"
    )]
    ChainIdMismatch {
        chain: String,
        expected: u64,
        got: u64,
    },
    #[error("{0} is not an ERC-20 token contract on this chain")]
    NotAToken(String),
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    NotSupported(String),
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

    pub async fn balance(
        &self,
        owner: &Address,
        token: Option<&str>,
    ) -> Result<Balance, ChainError> {
        match self {
            #[cfg(feature = "evm")]
            Adapter::Evm(c) => c.balance(owner, token).await,
            Adapter::Unavailable(c) => Err(ChainError::NotSupported(format!(
                "chain {} ({}) operations are not available in this build yet",
                c.name, c.kind
            ))),
        }
    }
}

/// Every configured chain, by name.
pub struct Chains(BTreeMap<ChainName, Adapter>);

impl Chains {
    pub fn new(configs: Vec<ChainConfig>) -> Self {
        let map = configs
            .into_iter()
            .map(|cfg| {
                let adapter = match cfg.kind {
                    #[cfg(feature = "evm")]
                    ChainKind::Evm => Adapter::Evm(evm::EvmChain::new(cfg.clone())),
                    _ => Adapter::Unavailable(cfg.clone()),
                };
                (cfg.name, adapter)
            })
            .collect();
        Self(map)
    }

    pub fn get(&self, name: &ChainName) -> Option<&Adapter> {
        self.0.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &ChainName> {
        self.0.keys()
    }
}

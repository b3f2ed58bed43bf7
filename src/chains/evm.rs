//! EVM chains through alloy: native and ERC-20 balances. Works with any chain id; the
//! node's `eth_chainId` must match the configuration before anything is read from it.

use super::{Balance, ChainError};
use crate::config::Chain as ChainConfig;
use crate::domain::{Address, Amount, ChainKind, sanitize};
use alloy::primitives::Address as EvmAddress;
use alloy::providers::{Provider, RootProvider};
use alloy::transports::{RpcError, TransportErrorKind};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::OnceCell;

alloy::sol! {
    #[sol(rpc)]
    interface IERC20 {
        function balanceOf(address owner) external view returns (uint256);
        function decimals() external view returns (uint8);
        function symbol() external view returns (string);
    }
}

#[derive(Debug, Clone)]
struct TokenMeta {
    decimals: u8,
    symbol: String,
}

pub struct EvmChain {
    config: ChainConfig,
    provider: RootProvider,
    chain_id_checked: OnceCell<()>,
    tokens: Mutex<HashMap<EvmAddress, TokenMeta>>,
}

impl EvmChain {
    pub fn new(config: ChainConfig) -> Self {
        let url = config.rpc_url.parse().expect("rpc_url validated by config");
        Self {
            provider: RootProvider::new_http(url),
            config,
            chain_id_checked: OnceCell::new(),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &ChainConfig {
        &self.config
    }

    pub async fn balance(
        &self,
        owner: &Address,
        token: Option<&str>,
    ) -> Result<Balance, ChainError> {
        let Address::Evm(owner) = *owner else {
            return Err(ChainError::InvalidInput("not an EVM address".into()));
        };
        self.ensure_chain_id().await?;
        match token {
            None => {
                let wei = self
                    .provider
                    .get_balance(owner)
                    .await
                    .map_err(|e| self.rpc_error(e))?;
                Ok(Balance {
                    amount: Amount::new(wei, self.config.native_decimals)
                        .expect("native decimals are small"),
                    symbol: self.config.native_symbol.clone(),
                    token: None,
                })
            }
            Some(token) => {
                let token = match Address::parse(ChainKind::Evm, token) {
                    Ok(Address::Evm(a)) => a,
                    _ => {
                        return Err(ChainError::InvalidInput(format!(
                            "token {:?} is not an EVM address",
                            sanitize::for_message(token)
                        )));
                    }
                };
                let meta = self.token_meta(token).await?;
                let contract = IERC20::new(token, &self.provider);
                let units = contract
                    .balanceOf(owner)
                    .call()
                    .await
                    .map_err(|e| self.contract_error(token, e))?;
                Ok(Balance {
                    amount: Amount::new(units, meta.decimals)
                        .map_err(|_| ChainError::NotAToken(token.to_checksum(None)))?,
                    symbol: meta.symbol,
                    token: Some(token.to_checksum(None)),
                })
            }
        }
    }

    /// Decimals and symbol, read from the contract once and cached.
    async fn token_meta(&self, token: EvmAddress) -> Result<TokenMeta, ChainError> {
        if let Some(meta) = self.tokens.lock().expect("token cache").get(&token) {
            return Ok(meta.clone());
        }
        let code = self
            .provider
            .get_code_at(token)
            .await
            .map_err(|e| self.rpc_error(e))?;
        if code.is_empty() {
            return Err(ChainError::NotAToken(token.to_checksum(None)));
        }
        let contract = IERC20::new(token, &self.provider);
        let decimals = contract
            .decimals()
            .call()
            .await
            .map_err(|e| self.contract_error(token, e))?;
        if decimals > 77 {
            return Err(ChainError::NotAToken(token.to_checksum(None)));
        }
        // A token without symbol() is still a token; chain strings are data, sanitised.
        let symbol = match contract.symbol().call().await {
            Ok(s) => sanitize::chain_string(&s, 16),
            Err(_) => String::new(),
        };
        let symbol = if symbol.is_empty() {
            "UNKNOWN".to_owned()
        } else {
            symbol
        };
        let meta = TokenMeta { decimals, symbol };
        self.tokens
            .lock()
            .expect("token cache")
            .insert(token, meta.clone());
        Ok(meta)
    }

    async fn ensure_chain_id(&self) -> Result<(), ChainError> {
        self.chain_id_checked
            .get_or_try_init(|| async {
                let got = self
                    .provider
                    .get_chain_id()
                    .await
                    .map_err(|e| self.rpc_error(e))?;
                let expected = self.config.chain_id.expect("EVM chains have a chain id");
                if got != expected {
                    return Err(ChainError::ChainIdMismatch {
                        chain: self.config.name.to_string(),
                        expected,
                        got,
                    });
                }
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// Maps a transport error without its text: reqwest errors embed the RPC URL, which may
    /// carry an API key.
    fn rpc_error(&self, err: RpcError<TransportErrorKind>) -> ChainError {
        let detail = match &err {
            RpcError::ErrorResp(payload) => format!(
                "RPC error {}: {}",
                payload.code,
                sanitize::chain_string(&payload.message, 120)
            ),
            RpcError::Transport(TransportErrorKind::HttpError(http)) => {
                format!("HTTP status {}", http.status)
            }
            RpcError::Transport(_) => "connection failed".to_owned(),
            RpcError::DeserError { .. } => "unexpected response".to_owned(),
            _ => "request failed".to_owned(),
        };
        tracing::debug!(chain = %self.config.name, %detail, "rpc error");
        ChainError::Unreachable {
            chain: self.config.name.to_string(),
            detail,
        }
    }

    fn contract_error(&self, token: EvmAddress, err: alloy::contract::Error) -> ChainError {
        match err {
            alloy::contract::Error::TransportError(e) => self.rpc_error(e),
            _ => ChainError::NotAToken(token.to_checksum(None)),
        }
    }
}

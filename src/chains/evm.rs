//! EVM chains through alloy: native and ERC-20 balances, EIP-1559 transfers (native and
//! ERC-20 `transfer`), broadcast and receipts. Works with any chain id; the node's
//! `eth_chainId` must match the configuration before anything is read from or sent to it.

use super::{
    AssetMeta, Balance, Chain, ChainError, FeeMarket, FeeQuote, FeeRequest, SignedTx, TransferPlan, TxStatus, Unsigned,
    UnsignedTx,
};
use crate::config::Chain as ChainConfig;
use crate::domain::{Address, Amount, ChainKind, sanitize};
use crate::domain::{Sequence, Signature, SigningPayload};
use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::Encodable2718;
use alloy::primitives::Address as EvmAddress;
use alloy::primitives::{TxKind, U256};
use alloy::providers::{Provider, RootProvider};
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolCall;
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
        function transfer(address to, uint256 value) external returns (bool);
    }
}

/// Broadcast errors that prove a signed transaction can never be mined as it is: only these
/// fail a transfer at once. Anything else ("internal error", "underpriced", "nonce too low",
/// a timeout) proves nothing — a provider may have forwarded it, or it may be mined already —
/// so the transfer stays SIGNED and fails only once its nonce has provably moved past it.
/// ("nonce too low" is not here: it is also what a node says of our own mined transaction.)
const DEFINITIVE_REFUSALS: &[&str] = &[
    "insufficient funds",
    "intrinsic gas too low",
    "invalid signature",
    "invalid sender",
    "exceeds block gas limit",
    "gas limit reached",
    "invalid chain id",
    "incorrect chain id",
    "transaction type not supported",
    "oversized data",
];

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
    /// The last fee-market reading (max fee, tip per gas) and when it was taken: reused for
    /// `fee_quote_max_age`, so a stream of sends does not ask for the fee history each time.
    fees: Mutex<Option<(std::time::Instant, u128, u128)>>,
}

impl EvmChain {
    pub fn new(config: ChainConfig) -> Result<Self, ChainError> {
        let url = config.rpc_url.parse().expect("rpc_url validated by config");
        let http = super::node_client(&config)?;
        let client = alloy::rpc::client::RpcClient::new_http_with_client(http, url);
        Ok(Self {
            provider: RootProvider::new(client),
            config,
            chain_id_checked: OnceCell::new(),
            tokens: Mutex::new(HashMap::new()),
            fees: Mutex::new(None),
        })
    }

    /// Decimals and symbol, read from the contract once and cached.
    async fn token_meta(&self, token: EvmAddress) -> Result<TokenMeta, ChainError> {
        if let Some(meta) = self.tokens.lock().expect("token cache").get(&token) {
            return Ok(meta.clone());
        }
        let code = self.provider.get_code_at(token).await.map_err(|e| self.rpc_error(e))?;
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
        self.tokens.lock().expect("token cache").insert(token, meta.clone());
        Ok(meta)
    }

    async fn ensure_chain_id(&self) -> Result<(), ChainError> {
        self.chain_id_checked
            .get_or_try_init(|| async {
                let got = self.provider.get_chain_id().await.map_err(|e| self.rpc_error(e))?;
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

    /// (max fee, tip) per gas as the node would quote them now, reused while younger than
    /// `fee_quote_max_age`. The caps are checked on every quote, cached or not.
    async fn market_fees(&self) -> Result<(u128, u128), ChainError> {
        let max_age = self.config.fee_quote_max_age;
        if let Some((at, max_fee, tip)) = *self.fees.lock().expect("fee cache")
            && at.elapsed() < max_age
        {
            return Ok((max_fee, tip));
        }
        let fees = self
            .provider
            .estimate_eip1559_fees()
            .await
            .map_err(|e| self.rpc_error(e))?;
        let reading = (fees.max_fee_per_gas, fees.max_priority_fee_per_gas);
        // A reading above the caps is refused now and asked for again next time, not reused.
        let caps = &self.config.fee_caps;
        if reading.0 <= caps.max_fee_per_gas && reading.1 <= caps.max_priority_fee_per_gas {
            *self.fees.lock().expect("fee cache") = Some((std::time::Instant::now(), reading.0, reading.1));
        }
        Ok(reading)
    }

    async fn pending_nonce(&self, from: &Address) -> Result<u64, ChainError> {
        self.ensure_chain_id().await?;
        self.provider
            .get_transaction_count(evm_address(from)?)
            .pending()
            .await
            .map_err(|e| self.rpc_error(e))
    }

    async fn mined_nonce(&self, from: &Address) -> Result<u64, ChainError> {
        self.ensure_chain_id().await?;
        self.provider
            .get_transaction_count(evm_address(from)?)
            .latest()
            .await
            .map_err(|e| self.rpc_error(e))
    }

    /// The call a transfer makes: (target, value, calldata).
    fn call_of(
        to: EvmAddress,
        token: Option<&Address>,
        base_units: U256,
    ) -> Result<(EvmAddress, U256, Vec<u8>), ChainError> {
        Ok(match token {
            None => (to, base_units, Vec::new()),
            Some(token) => (
                evm_address(token)?,
                U256::ZERO,
                IERC20::transferCall { to, value: base_units }.abi_encode(),
            ),
        })
    }

    /// A quote above any of the chain's caps is refused: never signed, whatever the node says.
    fn check_caps(&self, quote: &FeeQuote) -> Result<(), ChainError> {
        let caps = &self.config.fee_caps;
        let gwei = |wei: u128| {
            Amount::new(U256::from(wei), 9)
                .map_or_else(|_| format!("{wei} wei"), |a| format!("{} gwei", a.to_decimal_string()))
        };
        let refused = |what: String| ChainError::Rejected {
            chain: self.config.name.to_string(),
            reason: format!("the node's fee quote is above this chain's cap: {what}; nothing was signed"),
        };
        if quote.max_priority_fee_per_gas > caps.max_priority_fee_per_gas {
            return Err(refused(format!(
                "priority fee {} per gas > max_priority_fee_per_gas_gwei {}",
                gwei(quote.max_priority_fee_per_gas),
                gwei(caps.max_priority_fee_per_gas)
            )));
        }
        if quote.max_fee_per_gas > caps.max_fee_per_gas {
            return Err(refused(format!(
                "max fee {} per gas > max_fee_per_gas_gwei {}",
                gwei(quote.max_fee_per_gas),
                gwei(caps.max_fee_per_gas)
            )));
        }
        match super::over_fee_per_transfer(&self.config, quote) {
            Some(what) => Err(refused(what)),
            None => Ok(()),
        }
    }

    /// A failed gas estimate is usually the node telling us the transfer would revert
    /// (insufficient balance): a definitive refusal.
    fn estimate_error(&self, err: RpcError<TransportErrorKind>) -> ChainError {
        match err {
            RpcError::ErrorResp(payload) => ChainError::Rejected {
                chain: self.config.name.to_string(),
                reason: format!("would fail: {}", sanitize::chain_string(&payload.message, 160)),
            },
            other => self.rpc_error(other),
        }
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

    /// A failed call to a token method. The node *answering* that the call failed in the EVM
    /// (a revert, an invalid opcode, no or undecodable return data) means the contract is not
    /// an ERC-20 token: the caller's mistake, a 400. Only a failure to get an answer (a
    /// transport error, an HTTP status, a non-EVM error response) means the chain is
    /// unavailable.
    fn contract_error(&self, token: EvmAddress, err: alloy::contract::Error) -> ChainError {
        match err {
            alloy::contract::Error::TransportError(RpcError::ErrorResp(payload))
                if is_execution_failure(payload.code, &payload.message, payload.as_revert_data().is_some()) =>
            {
                tracing::debug!(chain = %self.config.name, code = payload.code, "token call failed in the EVM");
                ChainError::NotAToken(token.to_checksum(None))
            }
            alloy::contract::Error::TransportError(e) => self.rpc_error(e),
            _ => ChainError::NotAToken(token.to_checksum(None)),
        }
    }
}

impl Chain for EvmChain {
    fn config(&self) -> &ChainConfig {
        &self.config
    }

    async fn balance(&self, owner: &Address, token: Option<&str>) -> Result<Balance, ChainError> {
        let Address::Evm(owner) = *owner else {
            return Err(ChainError::InvalidInput("not an EVM address".into()));
        };
        self.ensure_chain_id().await?;
        match token {
            None => {
                let wei = self.provider.get_balance(owner).await.map_err(|e| self.rpc_error(e))?;
                Ok(Balance {
                    amount: Amount::new(wei, self.config.native_decimals).expect("native decimals are small"),
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

    async fn asset_meta(&self, token: Option<&Address>) -> Result<AssetMeta, ChainError> {
        self.ensure_chain_id().await?;
        match token {
            None => Ok(AssetMeta {
                decimals: self.config.native_decimals,
                symbol: self.config.native_symbol.clone(),
            }),
            Some(token) => {
                let meta = self.token_meta(evm_address(token)?).await?;
                Ok(AssetMeta {
                    decimals: meta.decimals,
                    symbol: meta.symbol,
                })
            }
        }
    }

    async fn quote_fee(&self, request: &FeeRequest) -> Result<FeeQuote, ChainError> {
        self.ensure_chain_id().await?;
        let (from, to) = (evm_address(&request.from)?, evm_address(&request.to)?);
        let (target, value, input) = Self::call_of(to, request.token.as_ref(), request.base_units)?;
        let call = TransactionRequest::default()
            .from(from)
            .to(target)
            .value(value)
            .input(input.into());
        // The gas estimate is per transfer (it also tells a transfer that would fail); the
        // fee market is read at most once per `fee_quote_max_age`, alongside it.
        let (gas, (max_fee_per_gas, max_priority_fee_per_gas)) = tokio::try_join!(
            async {
                self.provider
                    .estimate_gas(call)
                    .await
                    .map_err(|e| self.estimate_error(e))
            },
            self.market_fees(),
        )?;
        let quote = FeeQuote {
            // Headroom over the estimate: state can move between estimate and inclusion.
            gas_limit: gas.saturating_mul(6) / 5,
            max_fee_per_gas,
            max_priority_fee_per_gas,
            extra_fee: 0,
        };
        self.check_caps(&quote)?;
        Ok(quote)
    }

    async fn fee_market(&self) -> Result<FeeMarket, ChainError> {
        self.ensure_chain_id().await?;
        let history = self
            .provider
            .get_fee_history(10, alloy::eips::BlockNumberOrTag::Latest, &[20.0])
            .await
            .map_err(|e| self.rpc_error(e))?;
        let next_base_fee = history
            .next_block_base_fee()
            .or_else(|| history.latest_block_base_fee())
            .ok_or_else(|| ChainError::Unreachable {
                chain: self.config.name.to_string(),
                detail: "the node reports no base fee".into(),
            })?;
        let estimate = alloy::providers::utils::Eip1559Estimator::default().estimate(
            history.latest_block_base_fee().unwrap_or(next_base_fee),
            &history.reward.unwrap_or_default(),
        );
        Ok(FeeMarket {
            next_base_fee,
            max_fee_per_gas: estimate.max_fee_per_gas,
            max_priority_fee_per_gas: estimate.max_priority_fee_per_gas,
        })
    }

    async fn sequence(&self, from: &Address, floor: Option<Sequence>) -> Result<Sequence, ChainError> {
        // The node's pending count, but never below what we signed and may still broadcast:
        // after a crash the node does not know those bytes yet.
        let pending = Sequence::AccountNonce(self.pending_nonce(from).await?);
        Ok(Sequence::later(Some(pending), floor).unwrap_or(pending))
    }

    async fn sequence_status(&self, from: &Address, sequence: Sequence) -> Result<TxStatus, ChainError> {
        let Sequence::AccountNonce(nonce) = sequence else {
            return Err(ChainError::InvalidInput(
                "an EVM transaction has an account nonce".into(),
            ));
        };
        // Every nonce below the account's mined nonce is used.
        Ok(if self.mined_nonce(from).await? > nonce {
            TxStatus::Superseded
        } else {
            TxStatus::Pending
        })
    }

    fn prepare(&self, plan: &TransferPlan) -> Result<UnsignedTx, ChainError> {
        let transfer = plan.approved();
        let to = evm_address(transfer.to())?;
        let (target, value, input) = Self::call_of(to, transfer.token(), transfer.base_units())?;
        let fee = transfer.fee();
        // Held to the caps again: a stored quote signs only within today's configuration.
        self.check_caps(fee)?;
        let Sequence::AccountNonce(nonce) = plan.sequence() else {
            return Err(ChainError::InvalidInput(
                "an EVM transaction needs an account nonce".into(),
            ));
        };
        let tx = TxEip1559 {
            chain_id: self.config.chain_id.expect("EVM chains have a chain id"),
            nonce,
            gas_limit: fee.gas_limit,
            max_fee_per_gas: fee.max_fee_per_gas,
            max_priority_fee_per_gas: fee.max_priority_fee_per_gas,
            to: TxKind::Call(target),
            value,
            access_list: Default::default(),
            input: input.into(),
        };
        let payload = SigningPayload::Secp256k1Prehash(tx.signature_hash().0);
        Ok(UnsignedTx::new(Unsigned::Evm(tx), payload))
    }

    /// Attaches the signature and encodes the EIP-2718 envelope.
    fn finalize(&self, unsigned: UnsignedTx, signature: &Signature) -> Result<SignedTx, ChainError> {
        let (Unsigned::Evm(tx), Signature::Secp256k1(sig)) = (unsigned.inner, signature) else {
            return Err(ChainError::InvalidInput("not an EVM transaction and signature".into()));
        };
        let signature = alloy::primitives::Signature::from_scalars_and_parity(sig.r.into(), sig.s.into(), sig.y_parity);
        let envelope = TxEnvelope::from(tx.into_signed(signature));
        Ok(SignedTx {
            raw: envelope.encoded_2718(),
            hash: envelope.tx_hash().to_string(),
        })
    }

    async fn broadcast(&self, tx: &SignedTx) -> Result<(), ChainError> {
        match self.provider.send_raw_transaction(&tx.raw).await {
            Ok(_) => Ok(()),
            Err(RpcError::ErrorResp(payload)) => {
                let reason = sanitize::chain_string(&payload.message, 160);
                let lower = reason.to_ascii_lowercase();
                // Re-broadcasting what the node already has is success, not an error.
                if lower.contains("already known") || lower.contains("already imported") {
                    return Ok(());
                }
                let chain = self.config.name.to_string();
                if DEFINITIVE_REFUSALS.iter().any(|r| lower.contains(r)) {
                    Err(ChainError::Rejected { chain, reason })
                } else {
                    Err(ChainError::NotAccepted { chain, reason })
                }
            }
            Err(e) => Err(self.rpc_error(e)),
        }
    }

    async fn status(&self, hash: &str) -> Result<TxStatus, ChainError> {
        let hash = hash
            .parse()
            .map_err(|_| ChainError::InvalidInput("malformed transaction hash".into()))?;
        let Some(receipt) = self
            .provider
            .get_transaction_receipt(hash)
            .await
            .map_err(|e| self.rpc_error(e))?
        else {
            return Ok(TxStatus::Pending);
        };
        let Some(block) = receipt.block_number else {
            return Ok(TxStatus::Pending);
        };
        let head = self.provider.get_block_number().await.map_err(|e| self.rpc_error(e))?;
        Ok(TxStatus::Mined {
            success: receipt.status(),
            block,
            confirmations: head.saturating_sub(block) + 1,
            fee_paid: Some(U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price)),
        })
    }
}

/// Whether an `eth_call` error response says the call ran and failed in the EVM: code 3
/// (EIP-1474 "execution reverted", geth and anvil), revert data, or the wording nodes use for
/// a halt (geth `invalid opcode`, anvil `EVM error InvalidFEOpcode`, Nethermind `VM execution
/// error`, out of gas, stack errors, bad jumps).
fn is_execution_failure(code: i64, message: &str, has_revert_data: bool) -> bool {
    const HALTS: [&str; 9] = [
        "revert",
        "invalid opcode",
        "evm error",
        "vm execution error",
        "out of gas",
        "stack underflow",
        "stack overflow",
        "invalid jump",
        "bad instruction",
    ];
    let message = message.to_ascii_lowercase();
    code == 3 || has_revert_data || HALTS.iter().any(|h| message.contains(h))
}

fn evm_address(address: &Address) -> Result<EvmAddress, ChainError> {
    match address {
        Address::Evm(a) => Ok(*a),
        Address::Solana(_) => Err(ChainError::InvalidInput("not an EVM address".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evm_failures_are_told_from_an_unavailable_node() {
        for (code, message) in [
            (3, "execution reverted"),
            (-32000, "execution reverted: nope"),
            (-32603, "EVM error InvalidFEOpcode"),
            (-32000, "invalid opcode: INVALID"),
            (-32015, "VM execution error."),
            (-32000, "out of gas"),
        ] {
            assert!(is_execution_failure(code, message, false), "{code} {message}");
        }
        for (code, message) in [
            (-32005, "limit exceeded"),
            (-32000, "header not found"),
            (-32603, "internal error"),
            (429, "Too Many Requests"),
        ] {
            assert!(!is_execution_failure(code, message, false), "{code} {message}");
        }
        assert!(is_execution_failure(-32000, "call failed", true), "revert data decides");
    }
}

//! Solana through the SDK's component crates and a small JSON-RPC client ([`rpc`]): SOL
//! balances and system transfers; SPL Token and Token-2022 balances and `transfer_checked`
//! (decimals from the mint, the token program from the mint account's owner) with the
//! recipient's associated token account created idempotently. The node's genesis hash must
//! match the configuration (when set) before anything is read from or sent to it.
//!
//! A transaction is a legacy message signed by the wallet's Ed25519 key over its
//! serialization; its sequence is a recent blockhash valid up to a block height. Fees: the
//! base fee, the configured compute-unit price × a compute-unit limit from simulation, and the
//! rent of an account the transfer creates — all in [`FeeQuote::extra_fee`], so the policy
//! counts what the signed transaction can cost.

pub mod rpc;

use super::{
    AssetMeta, Balance, Chain, ChainError, FeeMarket, FeeQuote, FeeRequest, SignedTx, TransferPlan, TxStatus, Unsigned,
    UnsignedTx,
};
use crate::config::Chain as ChainConfig;
use crate::domain::{Address, Amount, Sequence, Signature, SigningPayload, sanitize};
use alloy_primitives::U256;
use base64::Engine;
use rpc::{Rpc, RpcFailure};
use solana_instruction::Instruction;
use solana_pubkey::Pubkey;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use tokio::sync::OnceCell;

/// The most compute units a transaction may ask for.
const MAX_COMPUTE_UNITS: u32 = 1_400_000;
/// A token mint's base layout (SPL Token and Token-2022 share it): decimals at 44, the
/// initialised flag at 45.
const MINT_LEN: usize = 82;
/// A token account's base layout: mint (0..32), owner (32..64), amount (64..72).
const TOKEN_ACCOUNT_LEN: usize = 165;
/// How many recently prepared messages are remembered to keep every signature distinct.
const RECENT_MESSAGES: usize = 4096;

/// sendTransaction preflight errors that prove the bytes can never land as signed: only
/// these fail a transfer at once. "BlockhashNotFound" is not here (a node behind the one that
/// gave the blockhash says it too), nor anything a retry could change.
const DEFINITIVE_PREFLIGHT: &[&str] = &[
    "InsufficientFundsForFee",
    "InsufficientFundsForRent",
    "AccountNotFound",
    "InvalidAccountForFee",
    "InstructionError",
    "SignatureFailure",
    "InvalidAccountIndex",
    "AccountLoadedTwice",
    "ProgramAccountNotFound",
    "SanitizeFailure",
    "UnsupportedVersion",
    "InvalidProgramForExecution",
    "WouldExceedMaxBlockCostLimit",
];

/// An unsigned Solana transaction: the serialized legacy message the fee payer signs.
pub struct SolanaTx {
    message: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Mint {
    program: Pubkey,
    decimals: u8,
}

/// A bounded set of message digests, oldest first in the queue.
type Recent = (HashSet<[u8; 32]>, VecDeque<[u8; 32]>);

pub struct SolanaChain {
    config: ChainConfig,
    rpc: Rpc,
    genesis_checked: OnceCell<()>,
    mints: Mutex<HashMap<Pubkey, Mint>>,
    /// Digests of the messages prepared lately: two transfers with the same content and
    /// blockhash would otherwise be the same transaction (one signature, one landing).
    recent: Mutex<Recent>,
}

impl SolanaChain {
    pub fn new(config: ChainConfig) -> Result<Self, ChainError> {
        let http = super::node_client(&config)?;
        Ok(Self {
            rpc: Rpc::new(http, config.rpc_url.clone()),
            config,
            genesis_checked: OnceCell::new(),
            mints: Mutex::new(HashMap::new()),
            recent: Mutex::new((HashSet::new(), VecDeque::new())),
        })
    }

    /// The JSON-RPC client (tests use it for airdrops and mints).
    pub fn rpc(&self) -> &Rpc {
        &self.rpc
    }

    fn commitment(&self) -> &str {
        &self.config.commitment
    }

    fn chain(&self) -> String {
        self.config.name.to_string()
    }

    /// A call that got no usable answer (or an error answer that proves nothing).
    fn rpc_error(&self, err: RpcFailure) -> ChainError {
        let detail = match err {
            RpcFailure::Transport(d) => d,
            RpcFailure::Error { code, message, .. } => format!("RPC error {code}: {message}"),
        };
        tracing::debug!(chain = %self.config.name, %detail, "rpc error");
        ChainError::Unreachable {
            chain: self.chain(),
            detail,
        }
    }

    async fn ensure_genesis(&self) -> Result<(), ChainError> {
        let Some(expected) = &self.config.genesis_hash else {
            return Ok(());
        };
        self.genesis_checked
            .get_or_try_init(|| async {
                let got = self.rpc.genesis_hash().await.map_err(|e| self.rpc_error(e))?;
                if &got != expected {
                    return Err(ChainError::GenesisMismatch {
                        chain: self.chain(),
                        expected: expected.clone(),
                        got: sanitize::chain_string(&got, 64),
                    });
                }
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// The mint's token program and decimals, read once and cached.
    async fn mint(&self, mint: &Pubkey) -> Result<Mint, ChainError> {
        if let Some(m) = self.mints.lock().expect("mint cache").get(mint) {
            return Ok(*m);
        }
        let not_a_mint = || ChainError::InvalidInput(format!("{mint} is not an SPL token mint on this chain"));
        let account = self
            .rpc
            .account(&mint.to_string(), self.commitment())
            .await
            .map_err(|e| self.rpc_error(e))?
            .ok_or_else(not_a_mint)?;
        let program: Pubkey = account.owner.parse().map_err(|_| not_a_mint())?;
        if program != spl_token_interface::ID && program != spl_token_2022_interface::ID {
            return Err(not_a_mint());
        }
        let data = account.bytes().map_err(|e| self.rpc_error(e))?;
        // A Token-2022 account with extensions says what it is at byte 165 (1: a mint).
        let is_mint = data.len() == MINT_LEN || (data.len() > TOKEN_ACCOUNT_LEN && data[TOKEN_ACCOUNT_LEN] == 1);
        if !is_mint || data[45] != 1 {
            return Err(not_a_mint());
        }
        let m = Mint {
            program,
            decimals: data[44],
        };
        self.mints.lock().expect("mint cache").insert(*mint, m);
        Ok(m)
    }

    /// The transfer's instructions with the given compute-unit limit.
    fn instructions(
        &self,
        from: &Pubkey,
        to: &Pubkey,
        token: Option<(&Pubkey, Mint)>,
        amount: u64,
        limit: u32,
        price: u64,
    ) -> Result<Vec<Instruction>, ChainError> {
        use solana_compute_budget_interface::ComputeBudgetInstruction;
        let mut ixs = vec![ComputeBudgetInstruction::set_compute_unit_limit(limit)];
        if price > 0 {
            ixs.push(ComputeBudgetInstruction::set_compute_unit_price(price));
        }
        match token {
            None => ixs.push(solana_system_interface::instruction::transfer(from, to, amount)),
            Some((mint, meta)) => {
                use spl_associated_token_account_interface::address::get_associated_token_address_with_program_id as ata;
                let source = ata(from, mint, &meta.program);
                let destination = ata(to, mint, &meta.program);
                ixs.push(
                    spl_associated_token_account_interface::instruction::create_associated_token_account_idempotent(
                        from,
                        to,
                        mint,
                        &meta.program,
                    ),
                );
                // The two programs' `transfer_checked` are the same instruction; each builder
                // checks its own program id.
                let transfer_checked = if meta.program == spl_token_2022_interface::ID {
                    spl_token_2022_interface::instruction::transfer_checked
                } else {
                    spl_token_interface::instruction::transfer_checked
                };
                let transfer = transfer_checked(
                    &meta.program,
                    &source,
                    mint,
                    &destination,
                    from,
                    &[],
                    amount,
                    meta.decimals,
                );
                ixs.push(transfer.map_err(|e| ChainError::InvalidInput(format!("token transfer: {e}")))?);
            }
        }
        Ok(ixs)
    }

    fn message(ixs: &[Instruction], payer: &Pubkey, blockhash: [u8; 32]) -> Vec<u8> {
        solana_message::Message::new_with_blockhash(ixs, Some(payer), &solana_hash::Hash::new_from_array(blockhash))
            .serialize()
    }

    fn max_price(&self) -> u64 {
        self.config.max_compute_unit_price
    }

    /// A quote above the chain's caps is refused: never signed.
    fn check_caps(&self, quote: &FeeQuote) -> Result<(), ChainError> {
        let refused = |what: String| ChainError::Rejected {
            chain: self.chain(),
            reason: format!("the fee is above this chain's cap: {what}; nothing was signed"),
        };
        if quote.max_priority_fee_per_gas > u128::from(self.max_price()) {
            return Err(refused(format!(
                "compute-unit price {} > max_compute_unit_price_micro_lamports {}",
                quote.max_priority_fee_per_gas,
                self.max_price()
            )));
        }
        match super::over_fee_per_transfer(&self.config, quote) {
            Some(what) => Err(refused(what)),
            None => Ok(()),
        }
    }

    /// Remembers a message digest; `false` when it was prepared before.
    fn remember(&self, message: &[u8]) -> bool {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(message).into();
        let mut recent = self.recent.lock().expect("recent messages");
        if !recent.0.insert(digest) {
            return false;
        }
        recent.1.push_back(digest);
        if recent.1.len() > RECENT_MESSAGES
            && let Some(old) = recent.1.pop_front()
        {
            recent.0.remove(&old);
        }
        true
    }

    /// The explanation of a failed simulation: the error and the program's last log line.
    fn failure(err: &serde_json::Value, logs: Option<&Vec<String>>) -> String {
        let mut reason = sanitize::chain_string(&err.to_string(), 160);
        if let Some(line) = logs.and_then(|l| {
            l.iter()
                .rev()
                .find(|l| l.contains("Error") || l.contains("error") || l.contains("failed"))
        }) {
            reason.push_str(": ");
            reason.push_str(&sanitize::chain_string(line, 160));
        }
        reason
    }
}

fn pubkey(address: &Address) -> Result<Pubkey, ChainError> {
    match address {
        Address::Solana(b) => Ok(Pubkey::new_from_array(*b)),
        Address::Evm(_) => Err(ChainError::InvalidInput("not a Solana address".into())),
    }
}

fn amount_u64(units: U256) -> Result<u64, ChainError> {
    u64::try_from(units)
        .map_err(|_| ChainError::InvalidInput("the amount is above what Solana can move (u64 base units)".into()))
}

/// A signed transaction's wire format: one signature (shortvec count 1), then the message.
fn wire(signature: &[u8; 64], message: &[u8]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(1 + 64 + message.len());
    raw.push(1);
    raw.extend_from_slice(signature);
    raw.extend_from_slice(message);
    raw
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl Chain for SolanaChain {
    fn config(&self) -> &ChainConfig {
        &self.config
    }

    async fn balance(&self, owner: &Address, token: Option<&str>) -> Result<Balance, ChainError> {
        let owner = pubkey(owner)?;
        self.ensure_genesis().await?;
        match token {
            None => {
                let lamports = self
                    .rpc
                    .balance(&owner.to_string(), self.commitment())
                    .await
                    .map_err(|e| self.rpc_error(e))?;
                Ok(Balance {
                    amount: Amount::new(U256::from(lamports), self.config.native_decimals)
                        .expect("native decimals are small"),
                    symbol: self.config.native_symbol.clone(),
                    token: None,
                })
            }
            Some(text) => {
                let mint = match Address::parse(crate::domain::ChainKind::Solana, text) {
                    Ok(Address::Solana(b)) => Pubkey::new_from_array(b),
                    _ => {
                        return Err(ChainError::InvalidInput(format!(
                            "token {:?} is not a Solana address",
                            sanitize::for_message(text)
                        )));
                    }
                };
                let meta = self.mint(&mint).await?;
                let ata = spl_associated_token_account_interface::address::get_associated_token_address_with_program_id(
                    &owner,
                    &mint,
                    &meta.program,
                );
                let units = match self
                    .rpc
                    .account(&ata.to_string(), self.commitment())
                    .await
                    .map_err(|e| self.rpc_error(e))?
                {
                    None => 0,
                    Some(account) => {
                        let data = account.bytes().map_err(|e| self.rpc_error(e))?;
                        data.get(64..72)
                            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
                            .unwrap_or(0)
                    }
                };
                Ok(Balance {
                    amount: Amount::new(U256::from(units), meta.decimals).expect("decimals ≤ 255 fit"),
                    symbol: "UNKNOWN".to_owned(),
                    token: Some(mint.to_string()),
                })
            }
        }
    }

    async fn asset_meta(&self, token: Option<&Address>) -> Result<AssetMeta, ChainError> {
        self.ensure_genesis().await?;
        match token {
            None => Ok(AssetMeta {
                decimals: self.config.native_decimals,
                symbol: self.config.native_symbol.clone(),
            }),
            Some(token) => {
                let meta = self.mint(&pubkey(token)?).await?;
                Ok(AssetMeta {
                    decimals: meta.decimals,
                    symbol: "UNKNOWN".to_owned(),
                })
            }
        }
    }

    async fn quote_fee(&self, request: &FeeRequest) -> Result<FeeQuote, ChainError> {
        self.ensure_genesis().await?;
        let (from, to) = (pubkey(&request.from)?, pubkey(&request.to)?);
        let amount = amount_u64(request.base_units)?;
        let token = match &request.token {
            Some(t) => {
                let mint = pubkey(t)?;
                Some((mint, self.mint(&mint).await?))
            }
            None => None,
        };
        let price = self.config.compute_unit_price;
        let created = match &token {
            Some((mint, meta)) => {
                let ata = spl_associated_token_account_interface::address::get_associated_token_address_with_program_id(
                    &to,
                    mint,
                    &meta.program,
                );
                let exists = self
                    .rpc
                    .account(&ata.to_string(), self.commitment())
                    .await
                    .map_err(|e| self.rpc_error(e))?
                    .is_some();
                (!exists).then(|| ata.to_string())
            }
            None => None,
        };
        // Simulated with the most compute units on the node's own blockhash: what it uses,
        // whether it fails, and the rent of the account it creates.
        let token_ref = token.as_ref().map(|(m, meta)| (m, *meta));
        let ixs = self.instructions(&from, &to, token_ref, amount, MAX_COMPUTE_UNITS, price)?;
        let probe = wire(&[0; 64], &Self::message(&ixs, &from, [0; 32]));
        let accounts: Vec<String> = created.iter().cloned().collect();
        let simulation = self
            .rpc
            .simulate(&b64(&probe), self.commitment(), &accounts)
            .await
            .map_err(|e| self.rpc_error(e))?;
        if let Some(err) = &simulation.err {
            return Err(ChainError::Rejected {
                chain: self.chain(),
                reason: format!("would fail: {}", Self::failure(err, simulation.logs.as_ref())),
            });
        }
        let rent = match (&created, &simulation.accounts) {
            (Some(_), Some(after)) => after.first().and_then(|a| a.as_ref()).map_or(0, |a| a.lamports),
            _ => 0,
        };
        let used = u32::try_from(simulation.units_consumed.unwrap_or(200_000)).unwrap_or(MAX_COMPUTE_UNITS);
        // Headroom over the simulation: state can move between simulation and inclusion.
        let limit = used
            .saturating_add(used / 5)
            .saturating_add(1_000)
            .min(MAX_COMPUTE_UNITS);
        let latest = self
            .rpc
            .latest_blockhash(self.commitment())
            .await
            .map_err(|e| self.rpc_error(e))?;
        let blockhash = parse_hash(&latest.blockhash)
            .ok_or_else(|| self.rpc_error(RpcFailure::Transport("unexpected blockhash".into())))?;
        let ixs = self.instructions(&from, &to, token_ref, amount, limit, price)?;
        let message = Self::message(&ixs, &from, blockhash);
        let priority = (u128::from(limit) * u128::from(price)).div_ceil(1_000_000);
        let fee = match self
            .rpc
            .fee_for_message(&b64(&message), self.commitment())
            .await
            .map_err(|e| self.rpc_error(e))?
        {
            Some(fee) => u128::from(fee),
            // The node moved past the blockhash meanwhile: one signature's base fee.
            None => 5_000 + priority,
        };
        let quote = FeeQuote {
            gas_limit: u64::from(limit),
            max_fee_per_gas: 0,
            max_priority_fee_per_gas: u128::from(price),
            extra_fee: fee.max(5_000 + priority) + u128::from(rent),
        };
        self.check_caps(&quote)?;
        Ok(quote)
    }

    async fn fee_market(&self) -> Result<FeeMarket, ChainError> {
        self.ensure_genesis().await?;
        let mut fees = self
            .rpc
            .recent_prioritization_fees(&[])
            .await
            .map_err(|e| self.rpc_error(e))?;
        fees.sort_unstable();
        let median = fees.get(fees.len() / 2).copied().unwrap_or(0);
        Ok(FeeMarket {
            next_base_fee: 0,
            max_fee_per_gas: 0,
            max_priority_fee_per_gas: u128::from(median),
        })
    }

    /// A recent blockhash (at the configured commitment) and the last block height it is
    /// valid at. A Solana sequence is not per account: `floor` does not apply.
    async fn sequence(&self, _from: &Address, _floor: Option<Sequence>) -> Result<Sequence, ChainError> {
        self.ensure_genesis().await?;
        let latest = self
            .rpc
            .latest_blockhash(self.commitment())
            .await
            .map_err(|e| self.rpc_error(e))?;
        let hash = parse_hash(&latest.blockhash)
            .ok_or_else(|| self.rpc_error(RpcFailure::Transport("unexpected blockhash".into())))?;
        Ok(Sequence::RecentBlockhash {
            hash,
            last_valid_height: latest.last_valid_block_height,
        })
    }

    /// `Expired` once the chain's *finalized* block height is past the blockhash's last valid
    /// height: no block after it can include the transaction, and no fork can bring back one
    /// before it (whatever commitment the chain is configured with: an expired transfer is
    /// re-signed on this answer).
    async fn sequence_status(&self, _from: &Address, sequence: Sequence) -> Result<TxStatus, ChainError> {
        let Sequence::RecentBlockhash { last_valid_height, .. } = sequence else {
            return Err(ChainError::InvalidInput(
                "a Solana transaction has a recent blockhash".into(),
            ));
        };
        self.ensure_genesis().await?;
        let height = self
            .rpc
            .block_height("finalized")
            .await
            .map_err(|e| self.rpc_error(e))?;
        Ok(if height > last_valid_height {
            TxStatus::Expired
        } else {
            TxStatus::Pending
        })
    }

    fn prepare(&self, plan: &TransferPlan) -> Result<UnsignedTx, ChainError> {
        let transfer = plan.approved();
        let (from, to) = (pubkey(transfer.from())?, pubkey(transfer.to())?);
        let amount = amount_u64(transfer.base_units())?;
        let fee = transfer.fee();
        self.check_caps(fee)?;
        let Sequence::RecentBlockhash { hash, .. } = plan.sequence() else {
            return Err(ChainError::InvalidInput(
                "a Solana transaction needs a recent blockhash".into(),
            ));
        };
        let token = match transfer.token() {
            Some(t) => {
                let mint = pubkey(t)?;
                let meta = *self.mints.lock().expect("mint cache").get(&mint).ok_or_else(|| {
                    ChainError::InvalidInput(format!("token {mint} was not read from the chain before signing"))
                })?;
                Some((mint, meta))
            }
            None => None,
        };
        let price = u64::try_from(fee.max_priority_fee_per_gas).unwrap_or(u64::MAX);
        let quoted = u32::try_from(fee.gas_limit)
            .unwrap_or(MAX_COMPUTE_UNITS)
            .min(MAX_COMPUTE_UNITS);
        // Two transfers with the same content and blockhash would be one transaction: the
        // compute-unit limit (within the quote's headroom, never above it, so never a higher
        // fee) tells them apart.
        let mut limit = quoted;
        let message = loop {
            let ixs = self.instructions(
                &from,
                &to,
                token.as_ref().map(|(m, meta)| (m, *meta)),
                amount,
                limit,
                price,
            )?;
            let message = Self::message(&ixs, &from, hash);
            if self.remember(&message) {
                break message;
            }
            limit = limit
                .checked_sub(1)
                .filter(|l| quoted - l < 1_000)
                .ok_or_else(|| ChainError::NotAccepted {
                    chain: self.chain(),
                    reason: "too many identical transfers at one blockhash; retry at the next".into(),
                })?;
        };
        let payload = SigningPayload::Ed25519Message(message.clone());
        Ok(UnsignedTx::new(Unsigned::Solana(SolanaTx { message }), payload))
    }

    fn finalize(&self, unsigned: UnsignedTx, signature: &Signature) -> Result<SignedTx, ChainError> {
        #[allow(unreachable_patterns)] // the other adapters' kinds, when built
        let (Unsigned::Solana(tx), Signature::Ed25519(sig)) = (unsigned.inner, signature) else {
            return Err(ChainError::InvalidInput(
                "not a Solana transaction and signature".into(),
            ));
        };
        Ok(SignedTx {
            raw: wire(sig, &tx.message),
            hash: bs58::encode(sig).into_string(),
        })
    }

    async fn broadcast(&self, tx: &SignedTx) -> Result<(), ChainError> {
        match self.rpc.send(&b64(&tx.raw), self.commitment()).await {
            Ok(_) => Ok(()),
            Err(RpcFailure::Error { code, message, data }) => {
                let err = data.get("err").cloned().unwrap_or(serde_json::Value::Null);
                let err_text = err.to_string();
                // The node has it already: re-broadcasting what landed is success.
                if err_text.contains("AlreadyProcessed") || message.contains("already been processed") {
                    return Ok(());
                }
                let reason = if err.is_null() {
                    message.clone()
                } else {
                    format!(
                        "{message} ({})",
                        Self::failure(
                            &err,
                            data.get("logs")
                                .and_then(|l| serde_json::from_value(l.clone()).ok())
                                .as_ref()
                        )
                    )
                };
                let reason = sanitize::chain_string(&reason, 240);
                let definitive = match code {
                    // Signature verification failed; a malformed transaction.
                    -32003 | -32602 | -32013 => true,
                    // The preflight simulation failed.
                    -32002 => DEFINITIVE_PREFLIGHT.iter().any(|d| err_text.contains(d)),
                    _ => false,
                };
                let chain = self.chain();
                if definitive {
                    Err(ChainError::Rejected { chain, reason })
                } else {
                    Err(ChainError::NotAccepted { chain, reason })
                }
            }
            Err(e) => Err(self.rpc_error(e)),
        }
    }

    /// `Mined` once the node knows the signature (searching its whole history); its
    /// confirmations count as the chain's `confirmations` once it reached the configured
    /// commitment, 0 before.
    async fn status(&self, hash: &str) -> Result<TxStatus, ChainError> {
        let valid = bs58::decode(hash).into_vec().is_ok_and(|b| b.len() == 64);
        if !valid {
            return Err(ChainError::InvalidInput("malformed transaction signature".into()));
        }
        let statuses = self
            .rpc
            .signature_statuses(&[hash.to_owned()])
            .await
            .map_err(|e| self.rpc_error(e))?;
        let Some(Some(status)) = statuses.into_iter().next() else {
            return Ok(TxStatus::Pending);
        };
        let rank = |c: &str| match c {
            "processed" => 0,
            "confirmed" => 1,
            _ => 2,
        };
        let reached = status
            .confirmation_status
            .as_deref()
            // No status but a slot: an old node; `confirmations: null` means rooted.
            .map_or(status.confirmations.is_none(), |c| rank(c) >= rank(self.commitment()));
        Ok(TxStatus::Mined {
            success: status.err.is_none(),
            block: status.slot,
            confirmations: if reached { self.config.confirmations.max(1) } else { 0 },
            // The quote (base, priority and rent) stays what the transfer counts.
            fee_paid: None,
        })
    }
}

fn parse_hash(text: &str) -> Option<[u8; 32]> {
    bs58::decode(text).into_vec().ok()?.try_into().ok()
}

#[cfg(all(test, feature = "fake-chain"))]
mod tests {
    use super::*;

    fn chain() -> SolanaChain {
        let text = "[chains.sol]\nkind = \"solana\"\nrpc_url = \"http://127.0.0.1:1\"\n";
        let (config, _) =
            crate::config::Config::from_parts(std::path::Path::new("config.toml"), text, Vec::new()).unwrap();
        SolanaChain::new(config.chains().unwrap().remove(0)).unwrap()
    }

    #[test]
    fn a_signed_transfer_is_the_legacy_wire_format_and_identical_transfers_differ() {
        let chain = chain();
        let from = Address::Solana([1; 32]);
        let to = Address::Solana([2; 32]);
        let fee = FeeQuote {
            gas_limit: 1_450,
            max_fee_per_gas: 0,
            max_priority_fee_per_gas: 0,
            extra_fee: 5_000,
        };
        let approved = crate::chains::testing::approved(from, to, U256::from(1_000u64), fee);
        let sequence = Sequence::RecentBlockhash {
            hash: [7; 32],
            last_valid_height: 10,
        };
        let plan = TransferPlan::new(&approved, sequence);
        let a = chain.prepare(&plan).unwrap();
        let b = chain.prepare(&plan).unwrap();
        assert_ne!(a.payload(), b.payload(), "the same transfer twice is two transactions");
        let SigningPayload::Ed25519Message(message) = a.payload().clone() else {
            panic!("an Ed25519 message");
        };
        // header (1 signer, 0 read-only signed, 2 read-only unsigned), 4 accounts.
        assert_eq!(&message[..4], &[1, 0, 2, 4]);
        assert_eq!(&message[4..36], &[1; 32], "the fee payer first");
        let signed = chain.finalize(a, &Signature::Ed25519([9; 64])).unwrap();
        assert_eq!(signed.raw[0], 1);
        assert_eq!(&signed.raw[1..65], &[9; 64]);
        assert_eq!(&signed.raw[65..], &message[..]);
        assert_eq!(signed.hash, bs58::encode([9u8; 64]).into_string());
        assert!(chain.finalize(b, &Signature::Ed25519([0; 64])).is_ok());
    }

    #[test]
    fn preflight_failures_are_told_apart() {
        let failure = SolanaChain::failure(
            &serde_json::json!({"InstructionError": [2, {"Custom": 1}]}),
            Some(&vec!["Program log: Error: insufficient funds".to_owned()]),
        );
        assert!(
            failure.contains("InstructionError") && failure.contains("insufficient funds"),
            "{failure}"
        );
    }
}

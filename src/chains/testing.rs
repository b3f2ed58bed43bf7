//! A deterministic in-memory chain and the adapter behaviours every chain must show.
//!
//! [`FakeChain`] is an account-nonce chain that lives in the daemon's memory: transactions
//! are signed for real (secp256k1 over a SHA-256 prehash of their encoding), checked on
//! broadcast like a node would (signature, nonce, funds), kept in a mempool, and mined on
//! demand ([`Control::mine`]) or at once (`automine`, the default). Its [`Control`] can make
//! the next broadcasts fail, drop the mempool, hold mining, revert the next transfer, supersede
//! a nonce with another transaction and move the fee market. A chain whose `rpc_url` starts
//! with `fake:` is served by it (builds with the `fake-chain` feature only): the pipeline's
//! unit tests and the daemon-cost benchmark run on it with no node at all.
//!
//! [`suite`] is the shared adapter suite: what the pipeline relies on from any adapter. The
//! fake chain passes it in unit tests, the EVM adapter passes it against anvil in
//! `tests/it/adapter.rs`, and a new chain's adapter must pass it too.

use super::{
    AssetMeta, Balance, Chain, ChainError, FeeMarket, FeeQuote, FeeRequest, SignedTx, TransferPlan, TxStatus, Unsigned,
    UnsignedTx,
};
use crate::config::Chain as ChainConfig;
use crate::domain::{Address, Amount, EvmSignature, Sequence, Signature, SigningPayload};
use alloy_primitives::U256;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// `rpc_url` prefix that selects the fake chain.
pub const SCHEME: &str = "fake:";

/// What every account holds at first, in base units (so a benchmark needs no funding step).
pub const INITIAL_BALANCE: u128 = 1_000_000_000_000_000_000_000_000;

const NATIVE_GAS: u64 = 21_000;
const TOKEN_GAS: u64 = 50_000;
const TOKEN_DECIMALS: u8 = 6;

/// A `[chains.<name>]` EVM configuration with the shipped defaults: `rpc_url` `fake:<name>`
/// (the fake chain, chain id 1337) or a node's URL (chain id 31337, anvil's); `extra` is
/// more TOML for the table, e.g. `"confirmations = 2"`.
pub fn config(name: &str, rpc_url: Option<&str>, extra: &str) -> ChainConfig {
    let (url, chain_id) = match rpc_url {
        Some(url) => (url.to_owned(), 31337),
        None => (format!("{SCHEME}{name}"), 1337),
    };
    let text = format!("[chains.{name}]\nkind = \"evm\"\nrpc_url = \"{url}\"\nchain_id = {chain_id}\n{extra}\n");
    let (config, _) = crate::config::Config::from_parts(std::path::Path::new("config.toml"), &text, Vec::new())
        .expect("chain config");
    config
        .chains()
        .expect("chain config")
        .into_iter()
        .find(|c| c.name.as_str() == name)
        .expect("the chain is configured")
}

/// An `Approved` for an adapter's own unit tests (test support, like the suite).
#[cfg(test)]
pub(crate) fn approved(from: Address, to: Address, base_units: U256, fee: FeeQuote) -> crate::chains::Approved {
    crate::chains::Approved::new(from, to, None, base_units, fee)
}

fn evm_address(s: &str) -> Option<Address> {
    Address::parse(crate::domain::ChainKind::Evm, s).ok()
}

/// An unsigned fake transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeTx {
    from: Address,
    to: Address,
    token: Option<Address>,
    value: U256,
    nonce: u64,
    fee: FeeQuote,
}

impl FakeTx {
    /// A canonical encoding: what is hashed and signed, then carried with the signature.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        out.extend_from_slice(self.from.to_string().as_bytes());
        out.push(0);
        out.extend_from_slice(self.to.to_string().as_bytes());
        out.push(0);
        if let Some(t) = &self.token {
            out.extend_from_slice(t.to_string().as_bytes());
        }
        out.push(0);
        out.extend_from_slice(&self.value.to_be_bytes::<32>());
        out.extend_from_slice(&self.nonce.to_be_bytes());
        out.extend_from_slice(&self.fee.gas_limit.to_be_bytes());
        out.extend_from_slice(&self.fee.max_fee_per_gas.to_be_bytes());
        out.extend_from_slice(&self.fee.max_priority_fee_per_gas.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let mut parts = bytes.splitn(4, |b| *b == 0);
        let text = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_owned);
        let from = evm_address(&text(parts.next()?)?)?;
        let to = evm_address(&text(parts.next()?)?)?;
        let token = match parts.next()? {
            [] => None,
            t => Some(evm_address(&text(t)?)?),
        };
        let rest = parts.next()?;
        if rest.len() != 32 + 8 + 8 + 16 + 16 {
            return None;
        }
        let u64_at = |i: usize| u64::from_be_bytes(rest[i..i + 8].try_into().expect("8 bytes"));
        let u128_at = |i: usize| u128::from_be_bytes(rest[i..i + 16].try_into().expect("16 bytes"));
        Some(Self {
            from,
            to,
            token,
            value: U256::from_be_slice(&rest[..32]),
            nonce: u64_at(32),
            fee: FeeQuote {
                gas_limit: u64_at(40),
                max_fee_per_gas: u128_at(48),
                max_priority_fee_per_gas: u128_at(64),
                extra_fee: 0,
            },
        })
    }

    fn prehash(&self) -> [u8; 32] {
        Sha256::digest(self.encode()).into()
    }
}

/// A receipt on the fake chain.
#[derive(Debug, Clone, Copy)]
struct Receipt {
    success: bool,
    block: u64,
    fee_paid: U256,
}

#[derive(Debug, Clone)]
struct Pooled {
    tx: FakeTx,
    hash: String,
}

/// How the next broadcasts fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A definitive refusal (`ChainError::Rejected`), like "insufficient funds".
    Rejected(String),
    /// An answer that proves nothing (`ChainError::NotAccepted`), like "internal error".
    NotAccepted(String),
    /// No answer (`ChainError::Unreachable`).
    Unreachable,
}

#[derive(Debug)]
struct State {
    balances: HashMap<(Option<Address>, Address), U256>,
    mined_nonces: HashMap<Address, u64>,
    mempool: Vec<Pooled>,
    receipts: HashMap<String, Receipt>,
    height: u64,
    base_fee: u128,
    priority_fee: u128,
    automine: bool,
    refuse: Vec<Refusal>,
    /// The broadcast is forwarded (kept in the pool) although it is answered with a refusal.
    forward_refused: bool,
    revert_next: bool,
    broadcasts: u64,
    status_checks: u64,
}

/// The fake chain: one per configured `fake:` chain, shared by its [`Control`].
pub struct FakeChain {
    config: ChainConfig,
    state: Arc<Mutex<State>>,
}

/// Drives a [`FakeChain`] from a test or a benchmark.
#[derive(Clone)]
pub struct Control(Arc<Mutex<State>>);

impl FakeChain {
    pub fn new(config: ChainConfig) -> Self {
        Self {
            config,
            state: Arc::new(Mutex::new(State {
                balances: HashMap::new(),
                mined_nonces: HashMap::new(),
                mempool: Vec::new(),
                receipts: HashMap::new(),
                height: 1,
                base_fee: 1_000_000_000,
                priority_fee: 1_000_000_000,
                automine: true,
                refuse: Vec::new(),
                forward_refused: false,
                revert_next: false,
                broadcasts: 0,
                status_checks: 0,
            })),
        }
    }

    pub fn control(&self) -> Control {
        Control(self.state.clone())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("fake chain state")
    }

    fn chain(&self) -> String {
        self.config.name.to_string()
    }
}

impl State {
    fn balance(&self, token: Option<Address>, owner: Address) -> U256 {
        self.balances.get(&(token, owner)).copied().unwrap_or(match token {
            None => U256::from(INITIAL_BALANCE),
            Some(_) => U256::ZERO,
        })
    }

    fn mined_nonce(&self, owner: &Address) -> u64 {
        self.mined_nonces.get(owner).copied().unwrap_or(0)
    }

    fn pending_nonce(&self, owner: &Address) -> u64 {
        self.mempool
            .iter()
            .filter(|p| p.tx.from == *owner)
            .map(|p| p.tx.nonce + 1)
            .fold(self.mined_nonce(owner), u64::max)
    }

    /// Mines one block: every pooled transaction whose nonce is its account's next, in turn.
    fn mine(&mut self) -> usize {
        self.height += 1;
        let block = self.height;
        let mut mined = 0;
        while let Some(i) = self
            .mempool
            .iter()
            .position(|p| p.tx.nonce == self.mined_nonce(&p.tx.from))
        {
            let Pooled { tx, hash } = self.mempool.remove(i);
            let gas_used = U256::from(match tx.token {
                None => NATIVE_GAS,
                Some(_) => TOKEN_GAS,
            });
            let price = self
                .base_fee
                .saturating_add(tx.fee.max_priority_fee_per_gas)
                .min(tx.fee.max_fee_per_gas);
            let fee_paid = gas_used * U256::from(price);
            let success = !std::mem::take(&mut self.revert_next)
                && self.balance(tx.token, tx.from) >= tx.value
                && self.balance(None, tx.from) >= fee_paid + if tx.token.is_none() { tx.value } else { U256::ZERO };
            let native = self.balance(None, tx.from).saturating_sub(fee_paid);
            self.balances.insert((None, tx.from), native);
            if success {
                let from = self.balance(tx.token, tx.from) - tx.value;
                self.balances.insert((tx.token, tx.from), from);
                let to = self.balance(tx.token, tx.to).saturating_add(tx.value);
                self.balances.insert((tx.token, tx.to), to);
            }
            self.mined_nonces.insert(tx.from, tx.nonce + 1);
            self.receipts.insert(
                hash,
                Receipt {
                    success,
                    block,
                    fee_paid,
                },
            );
            mined += 1;
        }
        mined
    }
}

impl Control {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().expect("fake chain state")
    }

    /// Mines one block; returns how many transactions it included.
    pub fn mine(&self) -> usize {
        self.state().mine()
    }

    /// Mines `n` empty-or-not blocks (confirmations).
    pub fn advance(&self, n: u64) {
        for _ in 0..n {
            self.state().mine();
        }
    }

    /// Mine at every accepted broadcast (default) or only on [`Control::mine`].
    pub fn set_automine(&self, on: bool) {
        self.state().automine = on;
    }

    pub fn set_balance(&self, token: Option<Address>, owner: Address, amount: U256) {
        self.state().balances.insert((token, owner), amount);
    }

    pub fn balance(&self, token: Option<Address>, owner: Address) -> U256 {
        self.state().balance(token, owner)
    }

    /// The next broadcast is answered with `refusal` (queue several for several).
    pub fn refuse_next(&self, refusal: Refusal) {
        self.state().refuse.push(refusal);
    }

    /// Refused broadcasts are kept in the pool anyway (a provider that forwarded them).
    pub fn forward_refused(&self, on: bool) {
        self.state().forward_refused = on;
    }

    /// The next mined transfer reverts (its fee is still paid).
    pub fn revert_next(&self) {
        self.state().revert_next = true;
    }

    /// Forgets every pooled transaction (a node restart, a dropped mempool).
    pub fn drop_mempool(&self) -> usize {
        std::mem::take(&mut self.state().mempool).len()
    }

    /// Uses the next nonce of `owner` with a transaction that is not ours (another signer of
    /// the same key, or a replacement sent elsewhere): every pooled transaction of `owner` at
    /// that nonce can never be mined.
    pub fn supersede_next_nonce(&self, owner: Address) {
        let mut state = self.state();
        let nonce = state.mined_nonce(&owner);
        state.mempool.retain(|p| !(p.tx.from == owner && p.tx.nonce == nonce));
        state.mined_nonces.insert(owner, nonce + 1);
        state.height += 1;
    }

    /// Sets the base fee the next blocks charge and the tip the node quotes.
    pub fn set_fees(&self, base_fee: u128, priority_fee: u128) {
        let mut state = self.state();
        state.base_fee = base_fee;
        state.priority_fee = priority_fee;
    }

    pub fn mined_nonce(&self, owner: &Address) -> u64 {
        self.state().mined_nonce(owner)
    }

    pub fn pooled(&self) -> usize {
        self.state().mempool.len()
    }

    /// Broadcast calls answered so far (accepted or not).
    pub fn broadcasts(&self) -> u64 {
        self.state().broadcasts
    }

    /// Status (receipt) lookups answered so far.
    pub fn status_checks(&self) -> u64 {
        self.state().status_checks
    }
}

impl Chain for FakeChain {
    fn config(&self) -> &ChainConfig {
        &self.config
    }

    async fn balance(&self, owner: &Address, token: Option<&str>) -> Result<Balance, ChainError> {
        let token = token
            .map(|t| Address::parse(owner.kind(), t).map_err(|e| ChainError::InvalidInput(format!("token: {e}"))))
            .transpose()?;
        let meta = self.asset_meta(token.as_ref()).await?;
        let base_units = self.state().balance(token, *owner);
        Ok(Balance {
            amount: Amount::new(base_units, meta.decimals).map_err(|e| ChainError::InvalidInput(e.to_string()))?,
            symbol: meta.symbol,
            token: token.map(|t| t.to_string()),
        })
    }

    async fn asset_meta(&self, token: Option<&Address>) -> Result<AssetMeta, ChainError> {
        Ok(match token {
            None => AssetMeta {
                decimals: self.config.native_decimals,
                symbol: self.config.native_symbol.clone(),
            },
            Some(_) => AssetMeta {
                decimals: TOKEN_DECIMALS,
                symbol: "FAKE".into(),
            },
        })
    }

    async fn quote_fee(&self, request: &FeeRequest) -> Result<FeeQuote, ChainError> {
        let state = self.state();
        let gas = match request.token {
            None => NATIVE_GAS,
            Some(_) => TOKEN_GAS,
        };
        let quote = FeeQuote {
            gas_limit: gas,
            max_fee_per_gas: state.base_fee.saturating_mul(2).saturating_add(state.priority_fee),
            max_priority_fee_per_gas: state.priority_fee,
            extra_fee: 0,
        };
        let (asset_balance, native_balance) = (
            state.balance(request.token, request.from),
            state.balance(None, request.from),
        );
        drop(state);
        let value = if request.token.is_none() {
            request.base_units
        } else {
            U256::ZERO
        };
        if asset_balance < request.base_units || native_balance < value + quote.max_fee() {
            return Err(ChainError::Rejected {
                chain: self.chain(),
                reason: "would fail: insufficient funds".into(),
            });
        }
        self.check_caps(&quote)?;
        Ok(quote)
    }

    async fn fee_market(&self) -> Result<FeeMarket, ChainError> {
        let state = self.state();
        Ok(FeeMarket {
            next_base_fee: state.base_fee,
            max_fee_per_gas: state.base_fee.saturating_mul(2).saturating_add(state.priority_fee),
            max_priority_fee_per_gas: state.priority_fee,
        })
    }

    async fn sequence(&self, from: &Address, floor: Option<Sequence>) -> Result<Sequence, ChainError> {
        let pending = Sequence::AccountNonce(self.state().pending_nonce(from));
        Ok(Sequence::later(Some(pending), floor).unwrap_or(pending))
    }

    async fn sequence_status(&self, from: &Address, sequence: Sequence) -> Result<TxStatus, ChainError> {
        let Sequence::AccountNonce(nonce) = sequence else {
            return Err(ChainError::InvalidInput("the fake chain uses account nonces".into()));
        };
        Ok(if self.state().mined_nonce(from) > nonce {
            TxStatus::Superseded
        } else {
            TxStatus::Pending
        })
    }

    fn prepare(&self, plan: &TransferPlan) -> Result<UnsignedTx, ChainError> {
        let Sequence::AccountNonce(nonce) = plan.sequence() else {
            return Err(ChainError::InvalidInput("the fake chain uses account nonces".into()));
        };
        let t = plan.approved();
        self.check_caps(t.fee())?;
        let tx = FakeTx {
            from: *t.from(),
            to: *t.to(),
            token: t.token().copied(),
            value: t.base_units(),
            nonce,
            fee: *t.fee(),
        };
        let payload = SigningPayload::Secp256k1Prehash(tx.prehash());
        Ok(UnsignedTx::new(Unsigned::Fake(tx), payload))
    }

    fn finalize(&self, unsigned: UnsignedTx, signature: &Signature) -> Result<SignedTx, ChainError> {
        #[allow(irrefutable_let_patterns)]
        let (Unsigned::Fake(tx), Signature::Secp256k1(sig)) = (unsigned.inner, signature) else {
            return Err(ChainError::InvalidInput(
                "not a fake-chain transaction and signature".into(),
            ));
        };
        let mut raw = tx.encode();
        raw.extend_from_slice(&sig.r);
        raw.extend_from_slice(&sig.s);
        raw.push(u8::from(sig.y_parity));
        let hash = format!("0x{}", hex::encode(Sha256::digest(&raw)));
        Ok(SignedTx { raw, hash })
    }

    async fn broadcast(&self, signed: &SignedTx) -> Result<(), ChainError> {
        let chain = self.chain();
        let invalid = || ChainError::Rejected {
            chain: chain.clone(),
            reason: "invalid transaction".into(),
        };
        let (body, sig) = signed
            .raw
            .split_at(signed.raw.len().checked_sub(65).ok_or_else(invalid)?);
        let tx = FakeTx::decode(body).ok_or_else(invalid)?;
        let sig = EvmSignature {
            r: sig[..32].try_into().expect("32 bytes"),
            s: sig[32..64].try_into().expect("32 bytes"),
            y_parity: sig[64] == 1,
        };
        let signer = alloy_primitives::Signature::from_scalars_and_parity(sig.r.into(), sig.s.into(), sig.y_parity)
            .recover_address_from_prehash(&tx.prehash().into())
            .map_err(|_| invalid())?;
        if Address::Evm(signer) != tx.from {
            return Err(ChainError::Rejected {
                chain,
                reason: "invalid signature".into(),
            });
        }
        let mut state = self.state();
        state.broadcasts += 1;
        let pool = |state: &mut State| {
            if !state.mempool.iter().any(|p| p.hash == signed.hash) {
                state
                    .mempool
                    .retain(|p| !(p.tx.from == tx.from && p.tx.nonce == tx.nonce));
                state.mempool.push(Pooled {
                    tx: tx.clone(),
                    hash: signed.hash.clone(),
                });
            }
        };
        if !state.refuse.is_empty() {
            let refusal = state.refuse.remove(0);
            if state.forward_refused {
                pool(&mut state);
            }
            return Err(match refusal {
                Refusal::Rejected(reason) => ChainError::Rejected { chain, reason },
                Refusal::NotAccepted(reason) => ChainError::NotAccepted { chain, reason },
                Refusal::Unreachable => ChainError::Unreachable {
                    chain,
                    detail: "connection failed".into(),
                },
            });
        }
        if state.receipts.contains_key(&signed.hash) || state.mempool.iter().any(|p| p.hash == signed.hash) {
            return Ok(()); // already known
        }
        if tx.nonce < state.mined_nonce(&tx.from) {
            return Err(ChainError::NotAccepted {
                chain,
                reason: "nonce too low".into(),
            });
        }
        let value = if tx.token.is_none() { tx.value } else { U256::ZERO };
        if state.balance(None, tx.from) < value + tx.fee.max_fee() {
            return Err(ChainError::Rejected {
                chain,
                reason: "insufficient funds for gas * price + value".into(),
            });
        }
        pool(&mut state);
        if state.automine {
            state.mine();
        }
        Ok(())
    }

    async fn status(&self, hash: &str) -> Result<TxStatus, ChainError> {
        let mut state = self.state();
        state.status_checks += 1;
        Ok(match state.receipts.get(hash) {
            None => TxStatus::Pending,
            Some(r) => TxStatus::Mined {
                success: r.success,
                block: r.block,
                confirmations: state.height.saturating_sub(r.block) + 1,
                fee_paid: Some(r.fee_paid),
            },
        })
    }
}

impl FakeChain {
    fn check_caps(&self, quote: &FeeQuote) -> Result<(), ChainError> {
        let caps = &self.config.fee_caps;
        if quote.max_fee_per_gas > caps.max_fee_per_gas
            || quote.max_priority_fee_per_gas > caps.max_priority_fee_per_gas
        {
            return Err(ChainError::Rejected {
                chain: self.chain(),
                reason: "the node's fee quote is above this chain's cap; nothing was signed".into(),
            });
        }
        Ok(())
    }
}

/// The shared adapter suite: what the transfer pipeline relies on from every adapter.
pub mod suite {
    use super::*;
    use crate::chains::{Adapter, Approved};
    use crate::domain::{ChainName, WalletId};
    use crate::keystore::{KdfParams, Unlocked, WalletKeyRef};

    /// What the suite needs from the chain besides the adapter: a node's test controls.
    #[allow(async_fn_in_trait)]
    pub trait Driver {
        /// Gives `owner` `amount` of the native asset.
        async fn fund(&mut self, owner: Address, amount: U256);
        /// Whether the node can hold blocks back (`set_automine(false)`, `mine`): a dev EVM
        /// node can; a Solana validator produces a slot every ~400 ms whatever the test does.
        fn can_hold_blocks(&self) -> bool {
            true
        }
        /// Mines one block now (only asked when [`Driver::can_hold_blocks`]).
        async fn mine(&mut self);
        /// Mine at every broadcast, or only on `mine` (only asked when
        /// [`Driver::can_hold_blocks`]).
        async fn set_automine(&mut self, on: bool);
    }

    /// A wallet key for the suite, generated and sealed by the real keystore.
    pub struct TestKey {
        keys: Unlocked,
        id: WalletId,
        chain: ChainName,
        address: Address,
        sealed: crate::keystore::Sealed,
    }

    impl TestKey {
        pub fn new(chain: &ChainName, kind: crate::domain::ChainKind) -> Self {
            let params = KdfParams {
                m_cost_kib: 64,
                t_cost: 1,
                p_cost: 1,
            };
            let password = crate::secret::Passphrase::from("adapter suite password".to_owned());
            let (keys, _) = Unlocked::create(&password, params).expect("keystore");
            let id = WalletId::new();
            let (address, sealed) = keys.generate_wallet_key(id, chain, kind);
            Self {
                keys,
                id,
                chain: chain.clone(),
                address,
                sealed,
            }
        }

        pub fn address(&self) -> Address {
            self.address
        }

        fn sign(&self, payload: &SigningPayload) -> Signature {
            let key = WalletKeyRef {
                wallet_id: self.id,
                chain: &self.chain,
                address: self.address,
                sealed: &self.sealed,
            };
            self.keys.sign(key, payload).expect("sign")
        }
    }

    /// Prepares, signs and finalizes a native transfer of `value` from `key` at the adapter's
    /// next sequence: the pipeline's execute step, without a store.
    pub async fn sign_transfer(adapter: &Adapter, key: &TestKey, to: Address, value: U256) -> (Sequence, SignedTx) {
        let sequence = adapter.sequence(&key.address(), None).await.expect("sequence");
        (sequence, sign_at(adapter, key, to, value, sequence).await)
    }

    /// [`sign_transfer`] at a given sequence.
    pub async fn sign_at(adapter: &Adapter, key: &TestKey, to: Address, value: U256, sequence: Sequence) -> SignedTx {
        let request = FeeRequest {
            from: key.address(),
            to,
            token: None,
            base_units: value,
        };
        let fee = adapter
            .quote_fee(&request)
            .await
            .expect("fee quote for a funded account");
        let approved = Approved::new(key.address(), to, None, value, fee);
        let unsigned = adapter
            .prepare(&TransferPlan::new(&approved, sequence))
            .expect("prepare");
        let signature = key.sign(unsigned.payload());
        adapter.finalize(unsigned, &signature).expect("finalize")
    }

    /// The receipt of `hash` once mined at the chain's confirmation depth (at once on a node
    /// that holds blocks: the test mined it; else within a minute).
    async fn mined(adapter: &Adapter, driver: &impl Driver, hash: &str) -> (bool, u64, Option<U256>) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            match adapter.status(hash).await.expect("status") {
                TxStatus::Mined {
                    success,
                    confirmations,
                    fee_paid,
                    ..
                } if confirmations >= 1 || !driver.can_hold_blocks() && !success => {
                    return (success, confirmations, fee_paid);
                }
                other if driver.can_hold_blocks() => panic!("expected {hash} mined, got {other:?}"),
                other => assert!(
                    std::time::Instant::now() < deadline,
                    "{hash} not confirmed within a minute: {other:?}"
                ),
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Runs every behaviour; what differs by sequence kind (an account nonce, a recent
    /// blockhash) and by what the node lets a test do (hold blocks) is asserted per kind,
    /// everything else the same for every chain.
    pub async fn run(adapter: &Adapter, driver: &mut impl Driver) {
        let chain = adapter.config().name.clone();
        let kind = adapter.config().kind;
        let hold = driver.can_hold_blocks();
        let key = TestKey::new(&chain, kind);
        let to = TestKey::new(&chain, kind).address();
        let one = U256::from(10u64).pow(U256::from(adapter.config().native_decimals));

        // An unfunded account: the fee quote refuses (definitively), nothing to sign.
        let empty = TestKey::new(&chain, kind);
        let request = FeeRequest {
            from: empty.address(),
            to,
            token: None,
            base_units: one,
        };
        if let Ok(q) = adapter.quote_fee(&request).await {
            // A chain that gives every account a balance (the fake) quotes; then the
            // transfer must be within the caps at least.
            assert!(q.max_fee() > U256::ZERO);
        } else {
            assert!(matches!(
                adapter.quote_fee(&request).await,
                Err(ChainError::Rejected { .. })
            ));
        }

        driver.fund(key.address(), one * U256::from(10u64)).await;
        if hold {
            driver.set_automine(false).await;
        }

        // Sequence, payload kind, sign, broadcast: pending until mined, then mined with
        // confirmations (that grow, where the test can mine) and the fee paid.
        let before = adapter.balance(&to, None).await.expect("balance").amount.base_units;
        let (first_seq, signed) = sign_transfer(adapter, &key, to, one).await;
        match first_seq {
            Sequence::AccountNonce(n) => assert_eq!(n, 0, "a fresh account starts at 0"),
            Sequence::RecentBlockhash { hash, .. } => {
                assert_eq!(
                    adapter
                        .sequence_status(&key.address(), first_seq)
                        .await
                        .expect("sequence status"),
                    TxStatus::Pending,
                    "a fresh blockhash is valid: the block height is at most its last valid height"
                );
                // Valid up to height 0: expired once the chain has finalized a block past it
                // (a fresh validator takes a few seconds to root its first).
                let past = Sequence::RecentBlockhash {
                    hash,
                    last_valid_height: 0,
                };
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
                loop {
                    let status = adapter
                        .sequence_status(&key.address(), past)
                        .await
                        .expect("sequence status");
                    if status == TxStatus::Expired {
                        break;
                    }
                    assert!(
                        std::time::Instant::now() < deadline,
                        "a blockhash past its last valid height is expired: {status:?}"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
            }
        }
        adapter.broadcast(&signed).await.expect("broadcast");
        if hold {
            assert_eq!(adapter.status(&signed.hash).await.expect("status"), TxStatus::Pending);
        }
        // Re-broadcasting the same bytes is not an error ("already known", "already
        // processed").
        adapter
            .broadcast(&signed)
            .await
            .expect("re-broadcast of a pooled transaction");
        if let Sequence::AccountNonce(_) = first_seq {
            // The next sequence counts the pooled transaction.
            let next = adapter.sequence(&key.address(), None).await.expect("sequence");
            assert_eq!(next, Sequence::AccountNonce(1));
            // A floor above the chain's count wins (what the pipeline signed and may re-send).
            let floored = adapter
                .sequence(&key.address(), Some(Sequence::AccountNonce(7)))
                .await
                .expect("sequence");
            assert_eq!(floored, Sequence::AccountNonce(7));
        }
        if hold {
            driver.mine().await;
        }
        let (success, confirmations, fee_paid) = mined(adapter, driver, &signed.hash).await;
        assert!(success);
        if hold {
            assert_eq!(confirmations, 1);
        }
        if kind == crate::domain::ChainKind::Evm {
            assert!(fee_paid.is_some_and(|f| !f.is_zero()), "the receipt says what it paid");
        }
        if hold {
            driver.mine().await;
            assert_eq!(mined(adapter, driver, &signed.hash).await.1, 2, "confirmations grow");
        }
        let balance = adapter.balance(&to, None).await.expect("balance");
        assert_eq!(
            balance.amount.base_units - before,
            one,
            "the recipient got exactly the value"
        );

        // A mined transaction re-broadcast: an error that is not a definitive refusal, or
        // success (the node may say "already known").
        match adapter.broadcast(&signed).await {
            Ok(()) | Err(ChainError::NotAccepted { .. }) => {}
            Err(other) => panic!("re-broadcast of a mined transaction must not be a definitive refusal: {other}"),
        }
        match first_seq {
            Sequence::AccountNonce(_) => assert_eq!(
                adapter
                    .sequence_status(&key.address(), first_seq)
                    .await
                    .expect("sequence status"),
                TxStatus::Superseded,
                "a used sequence is reported used"
            ),
            // A blockhash is not used up by a transaction: it stays valid until its height.
            Sequence::RecentBlockhash { .. } => assert_eq!(
                adapter
                    .sequence_status(&key.address(), first_seq)
                    .await
                    .expect("sequence status"),
                TxStatus::Pending,
            ),
        }

        // Two transactions at one sequence.
        let (seq_a, a) = sign_transfer(adapter, &key, to, U256::from(1_000_000u64)).await;
        assert_eq!(
            adapter
                .sequence_status(&key.address(), seq_a)
                .await
                .expect("sequence status"),
            TxStatus::Pending,
            "an unused sequence is open"
        );
        match seq_a {
            // EVM: the first mined supersedes its sequence.
            Sequence::AccountNonce(_) => {
                adapter.broadcast(&a).await.expect("broadcast");
                if hold {
                    driver.mine().await;
                }
                assert!(mined(adapter, driver, &a.hash).await.0);
                assert_eq!(
                    adapter
                        .sequence_status(&key.address(), seq_a)
                        .await
                        .expect("sequence status"),
                    TxStatus::Superseded
                );
            }
            // Solana: two transfers at one blockhash are two transactions (even with the
            // same content: never the same bytes, so never one signature for both), and
            // both land.
            Sequence::RecentBlockhash { .. } => {
                let b = sign_at(adapter, &key, to, U256::from(1_000_000u64), seq_a).await;
                assert_ne!(a.hash, b.hash, "the same transfer twice is two signatures");
                assert_ne!(a.raw, b.raw);
                adapter.broadcast(&a).await.expect("broadcast");
                adapter.broadcast(&b).await.expect("broadcast");
                assert!(mined(adapter, driver, &a.hash).await.0);
                assert!(mined(adapter, driver, &b.hash).await.0);
                let now = adapter.balance(&to, None).await.expect("balance").amount.base_units;
                assert_eq!(now - before, one + U256::from(2_000_000u64), "both landed");
            }
        }

        // A signature of the wrong kind is refused before anything is sent.
        let request = FeeRequest {
            from: key.address(),
            to,
            token: None,
            base_units: U256::from(1_000_000u64),
        };
        let fee = adapter.quote_fee(&request).await.expect("fee");
        let approved = Approved::new(key.address(), to, None, U256::from(1_000_000u64), fee);
        let sequence = adapter.sequence(&key.address(), None).await.expect("sequence");
        let unsigned = adapter
            .prepare(&TransferPlan::new(&approved, sequence))
            .expect("prepare");
        assert_eq!(
            unsigned.payload().kind(),
            adapter.config().kind,
            "payload of the chain's key kind"
        );
        let wrong = match kind {
            crate::domain::ChainKind::Evm => Signature::Ed25519([0; 64]),
            crate::domain::ChainKind::Solana => Signature::Secp256k1(crate::domain::EvmSignature {
                r: [1; 32],
                s: [1; 32],
                y_parity: false,
            }),
        };
        assert!(adapter.finalize(unsigned, &wrong).is_err());

        // Bytes signed by another key for this account: refused definitively.
        let other = TestKey::new(&chain, kind);
        let approved = Approved::new(key.address(), to, None, U256::from(1_000_000u64), fee);
        let unsigned = adapter
            .prepare(&TransferPlan::new(&approved, sequence))
            .expect("prepare");
        let forged = other.sign(unsigned.payload());
        let forged = adapter.finalize(unsigned, &forged).expect("finalize");
        assert!(
            adapter.broadcast(&forged).await.is_err(),
            "a transaction not signed by its sender is refused"
        );
        if hold {
            driver.set_automine(true).await;
        }
    }

    /// The fake chain's driver.
    impl Driver for Control {
        async fn fund(&mut self, owner: Address, amount: U256) {
            self.set_balance(None, owner, amount);
        }
        async fn mine(&mut self) {
            Control::mine(self);
        }
        async fn set_automine(&mut self, on: bool) {
            Control::set_automine(self, on);
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[tokio::test]
        async fn the_fake_chain_passes_the_adapter_suite() {
            let config = super::super::config("fake", None, "");
            let fake = FakeChain::new(config);
            let mut control = fake.control();
            let adapter = Adapter::Fake(fake);
            run(&adapter, &mut control).await;
        }
    }
}

/// Encoded fake transactions round-trip (what broadcast decodes is what was signed).
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fake_transaction_round_trips() {
        let a = evm_address("0x000000000000000000000000000000000000dEaD").unwrap();
        let tx = FakeTx {
            from: a,
            to: a,
            token: Some(a),
            value: U256::from(5u64),
            nonce: 9,
            fee: FeeQuote {
                gas_limit: 21_000,
                max_fee_per_gas: 3,
                max_priority_fee_per_gas: 1,
                extra_fee: 0,
            },
        };
        assert_eq!(FakeTx::decode(&tx.encode()), Some(tx.clone()));
        let native = FakeTx { token: None, ..tx };
        assert_eq!(FakeTx::decode(&native.encode()), Some(native));
    }
}

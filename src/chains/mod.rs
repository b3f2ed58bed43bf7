//! Chain adapters: RPC reads, building unsigned transactions, assembling signed ones from a
//! signature, broadcast and status. They never see keys, policy, the store or wire types.

// A build with no chain family (`--no-default-features`) has nothing to dispatch to: the
// seam's arguments and the unsigned transaction's body go unread there, by design.
#![cfg_attr(not(any(feature = "evm", feature = "solana", feature = "fake-chain")), allow(unused))]

#[cfg(feature = "evm")]
pub mod evm;
#[cfg(feature = "solana")]
pub mod solana;
#[cfg(feature = "fake-chain")]
pub mod testing;

use crate::config::Chain as ChainConfig;
pub use crate::domain::FeeQuote;
use crate::domain::{Address, Amount, ChainKind, ChainName, Sequence, Signature, SigningPayload};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("chain {chain} is unreachable: {detail}")]
    Unreachable { chain: String, detail: String },
    #[error("chain {chain} answered with chain id {got}, but the configuration says {expected}; refusing to use it")]
    ChainIdMismatch { chain: String, expected: u64, got: u64 },
    #[error(
        "chain {chain} answered with genesis hash {got}, but the configuration says {expected}; refusing to use it"
    )]
    GenesisMismatch {
        chain: String,
        expected: String,
        got: String,
    },
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

/// The fee market now: what the next block charges and what the node would quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeMarket {
    /// The next block's base fee per gas: a transaction allowing less cannot be mined now.
    pub next_base_fee: u128,
    pub max_fee_per_gas: u128,
    pub max_priority_fee_per_gas: u128,
}

/// A transfer the policy engine allowed, with the fees it counted: the only thing a
/// [`TransferPlan`] — and so anything an adapter prepares for signing — is made from.
///
/// Its fields are private and its constructor is `pub(crate)`: inside the crate only the
/// transfer pipeline's stages make one (the decision, an approving re-check, the resume of an
/// approved record — the tidy test holds that border), and outside it none can be made:
///
/// ```compile_fail,E0624
/// use bursar::chains::{Approved, TransferPlan};
/// use bursar::domain::Sequence;
/// let approved = Approved::new(todo!(), todo!(), None, todo!(), todo!());
/// let plan = TransferPlan::new(&approved, Sequence::AccountNonce(0));
/// ```
#[derive(Debug, Clone)]
pub struct Approved {
    from: Address,
    to: Address,
    /// `None` for the native asset.
    token: Option<Address>,
    base_units: alloy_primitives::U256,
    fee: FeeQuote,
}

impl Approved {
    pub(crate) fn new(
        from: Address,
        to: Address,
        token: Option<Address>,
        base_units: alloy_primitives::U256,
        fee: FeeQuote,
    ) -> Self {
        Self {
            from,
            to,
            token,
            base_units,
            fee,
        }
    }

    /// The same transfer with other fees (a replacement of a stuck signed transfer).
    pub fn with_fee(&self, fee: FeeQuote) -> Self {
        Self { fee, ..self.clone() }
    }

    /// A zero-value transfer from the wallet to itself with `fee`: signed at the sequence of
    /// this transfer, it makes this one unminable (the operator's on-chain cancel). It moves
    /// no value, so it needs no decision of its own.
    pub fn cancel_onchain(&self, fee: FeeQuote) -> Self {
        Self {
            from: self.from,
            to: self.from,
            token: None,
            base_units: alloy_primitives::U256::ZERO,
            fee,
        }
    }

    pub fn from(&self) -> &Address {
        &self.from
    }
    pub fn to(&self) -> &Address {
        &self.to
    }
    pub fn token(&self) -> Option<&Address> {
        self.token.as_ref()
    }
    pub fn base_units(&self) -> alloy_primitives::U256 {
        self.base_units
    }
    pub fn fee(&self) -> &FeeQuote {
        &self.fee
    }
}

/// An approved transfer and the sequence its adapter chose for it: what `prepare` builds an
/// unsigned transaction from.
#[derive(Debug, Clone)]
pub struct TransferPlan {
    approved: Approved,
    sequence: Sequence,
}

impl TransferPlan {
    pub fn new(approved: &Approved, sequence: Sequence) -> Self {
        Self {
            approved: approved.clone(),
            sequence,
        }
    }
    pub fn approved(&self) -> &Approved {
        &self.approved
    }
    pub fn sequence(&self) -> Sequence {
        self.sequence
    }
}

/// An unsigned transaction, opaque outside its adapter except for what the key must sign.
pub struct UnsignedTx {
    pub(crate) inner: Unsigned,
    payload: SigningPayload,
}

/// The adapter's own unsigned transaction.
pub(crate) enum Unsigned {
    #[cfg(feature = "evm")]
    Evm(alloy::consensus::TxEip1559),
    #[cfg(feature = "solana")]
    Solana(solana::SolanaTx),
    #[cfg(feature = "fake-chain")]
    Fake(testing::FakeTx),
}

impl UnsignedTx {
    pub(crate) fn new(inner: Unsigned, payload: SigningPayload) -> Self {
        Self { inner, payload }
    }

    /// What the wallet key signs ([`crate::keystore::Unlocked::sign`]).
    pub fn payload(&self) -> &SigningPayload {
        &self.payload
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
    /// Its sequence was used by another transaction (EVM: the account's mined nonce is past
    /// it): it can never be mined, unless it is that other transaction.
    Superseded,
    /// Its sequence expired unused (Solana: the blockhash is past its last valid height and
    /// the signature is unknown): it can never be mined.
    Expired,
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

/// What a chain adapter implements: adding a chain is a file in `src/chains/` with a type
/// that implements this trait and passes the shared suite in [`testing`], an arm in
/// [`Adapter`] and in [`Chains::new`], and a config kind. Nothing in `service/`, `policy/` or
/// `api/` changes: the pipeline only sees payloads, signatures, sequences and statuses.
#[allow(async_fn_in_trait)] // dispatched statically through `Adapter`, never as `dyn`
pub trait Chain {
    fn config(&self) -> &ChainConfig;

    async fn balance(&self, owner: &Address, token: Option<&str>) -> Result<Balance, ChainError>;

    async fn asset_meta(&self, token: Option<&Address>) -> Result<AssetMeta, ChainError>;

    /// Fees for a transfer, from the node, refused (`Rejected`) above the chain's fee caps or
    /// when the node says the transfer would fail.
    async fn quote_fee(&self, request: &FeeRequest) -> Result<FeeQuote, ChainError>;

    /// The fee market now (for replacing a stuck transaction).
    async fn fee_market(&self) -> Result<FeeMarket, ChainError>;

    /// The sequence the next transaction of `from` signs with, never below `floor` (the
    /// pipeline's floor: after what it signed and may still broadcast).
    async fn sequence(&self, from: &Address, floor: Option<Sequence>) -> Result<Sequence, ChainError>;

    /// Whether `sequence` of `from` is still open (`Pending`), used by another transaction
    /// (`Superseded`) or expired (`Expired`). Asked only when the chain refuses a signed
    /// transaction's bytes and none of its versions is mined.
    async fn sequence_status(&self, from: &Address, sequence: Sequence) -> Result<TxStatus, ChainError>;

    /// Builds the unsigned transaction from the plan (its fees included): no network call,
    /// nothing signed.
    fn prepare(&self, plan: &TransferPlan) -> Result<UnsignedTx, ChainError>;

    /// Attaches a signature over [`UnsignedTx::payload`] and encodes the transaction.
    fn finalize(&self, unsigned: UnsignedTx, signature: &Signature) -> Result<SignedTx, ChainError>;

    /// Sends the signed bytes. `Rejected` only when the answer proves they can never be
    /// mined; any other refusal is `NotAccepted`.
    async fn broadcast(&self, tx: &SignedTx) -> Result<(), ChainError>;

    /// `Pending` or `Mined` for one signed version.
    async fn status(&self, hash: &str) -> Result<TxStatus, ChainError>;
}

pub enum Adapter {
    #[cfg(feature = "evm")]
    Evm(evm::EvmChain),
    #[cfg(feature = "solana")]
    Solana(solana::SolanaChain),
    #[cfg(feature = "fake-chain")]
    Fake(testing::FakeChain),
    /// A configured chain whose operations this build does not provide yet.
    Unavailable(ChainConfig),
}

macro_rules! dispatch {
    ($self:expr, $c:ident => $call:expr) => {
        match $self {
            #[cfg(feature = "evm")]
            Adapter::Evm($c) => $call,
            #[cfg(feature = "solana")]
            Adapter::Solana($c) => $call,
            #[cfg(feature = "fake-chain")]
            Adapter::Fake($c) => $call,
            Adapter::Unavailable(c) => Err(unavailable(c)),
        }
    };
}

impl Adapter {
    /// Runs one chain operation and records its latency and outcome for `/metrics` (per
    /// operation, in one place for every adapter; an unavailable chain records nothing).
    async fn timed<T>(&self, operation: impl Future<Output = Result<T, ChainError>>) -> Result<T, ChainError> {
        let started = std::time::Instant::now();
        let result = operation.await;
        if !matches!(self, Adapter::Unavailable(_)) {
            use crate::metrics::RpcOutcome;
            let outcome = match &result {
                Err(
                    ChainError::Unreachable { .. }
                    | ChainError::ChainIdMismatch { .. }
                    | ChainError::GenesisMismatch { .. },
                ) => RpcOutcome::TransportError,
                Err(ChainError::Rejected { .. } | ChainError::NotAccepted { .. } | ChainError::NotAToken(_)) => {
                    RpcOutcome::RpcError
                }
                _ => RpcOutcome::Ok,
            };
            crate::metrics::rpc(self.config().name.as_str(), started.elapsed(), outcome);
        }
        result
    }

    pub fn config(&self) -> &ChainConfig {
        match self {
            #[cfg(feature = "evm")]
            Adapter::Evm(c) => c.config(),
            #[cfg(feature = "solana")]
            Adapter::Solana(c) => c.config(),
            #[cfg(feature = "fake-chain")]
            Adapter::Fake(c) => c.config(),
            Adapter::Unavailable(c) => c,
        }
    }

    pub async fn balance(&self, owner: &Address, token: Option<&str>) -> Result<Balance, ChainError> {
        self.timed(async { dispatch!(self, c => c.balance(owner, token).await) })
            .await
    }

    pub async fn asset_meta(&self, token: Option<&Address>) -> Result<AssetMeta, ChainError> {
        self.timed(async { dispatch!(self, c => c.asset_meta(token).await) })
            .await
    }

    pub async fn quote_fee(&self, request: &FeeRequest) -> Result<FeeQuote, ChainError> {
        self.timed(async { dispatch!(self, c => c.quote_fee(request).await) })
            .await
    }

    pub async fn fee_market(&self) -> Result<FeeMarket, ChainError> {
        self.timed(async { dispatch!(self, c => c.fee_market().await) }).await
    }

    pub async fn sequence(&self, from: &Address, floor: Option<Sequence>) -> Result<Sequence, ChainError> {
        self.timed(async { dispatch!(self, c => c.sequence(from, floor).await) })
            .await
    }

    pub async fn sequence_status(&self, from: &Address, sequence: Sequence) -> Result<TxStatus, ChainError> {
        self.timed(async { dispatch!(self, c => c.sequence_status(from, sequence).await) })
            .await
    }

    pub fn prepare(&self, plan: &TransferPlan) -> Result<UnsignedTx, ChainError> {
        dispatch!(self, c => c.prepare(plan))
    }

    pub fn finalize(&self, unsigned: UnsignedTx, signature: &Signature) -> Result<SignedTx, ChainError> {
        dispatch!(self, c => c.finalize(unsigned, signature))
    }

    pub async fn broadcast(&self, tx: &SignedTx) -> Result<(), ChainError> {
        self.timed(async { dispatch!(self, c => c.broadcast(tx).await) }).await
    }

    pub async fn status(&self, hash: &str) -> Result<TxStatus, ChainError> {
        self.timed(async { dispatch!(self, c => c.status(hash).await) }).await
    }
}

/// The HTTP client an adapter reaches its node with: the chain's connect and total timeouts
/// on every call, so no caller waits on a node that accepts connections and never answers.
#[cfg(any(feature = "evm", feature = "solana"))]
fn node_client(config: &ChainConfig) -> Result<reqwest::Client, ChainError> {
    crate::tls::client(|| {
        reqwest::Client::builder()
            .connect_timeout(config.rpc_connect_timeout)
            .timeout(config.rpc_timeout)
    })
    .map_err(|e| ChainError::Unreachable {
        chain: config.name.to_string(),
        // reqwest's text names the cause (e.g. no TLS root certificates), never the URL.
        detail: format!("cannot set up the HTTP client: {e}"),
    })
}

/// What is wrong when `quote` can cost more than the chain's `max_fee_per_transfer` (every
/// adapter holds its quotes to it, beside its own per-unit caps).
#[cfg(any(feature = "evm", feature = "solana"))]
fn over_fee_per_transfer(config: &ChainConfig, quote: &FeeQuote) -> Option<String> {
    let total = config.fee_caps.max_fee_per_transfer?;
    let show = |units: alloy_primitives::U256| {
        Amount::new(units, config.native_decimals).map_or_else(|_| units.to_string(), |a| a.to_decimal_string())
    };
    (quote.max_fee() > total).then(|| {
        format!(
            "up to {} {} in fees > max_fee_per_transfer {}",
            show(quote.max_fee()),
            config.native_symbol,
            show(total)
        )
    })
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
                    #[cfg(feature = "fake-chain")]
                    _ if cfg.rpc_url.starts_with(testing::SCHEME) => {
                        Adapter::Fake(testing::FakeChain::new(cfg.clone()))
                    }
                    #[cfg(feature = "evm")]
                    ChainKind::Evm => Adapter::Evm(evm::EvmChain::new(cfg.clone())?),
                    #[cfg(feature = "solana")]
                    ChainKind::Solana => Adapter::Solana(solana::SolanaChain::new(cfg.clone())?),
                    #[allow(unreachable_patterns)] // every kind is built in a default build
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

#[cfg(all(test, feature = "fake-chain", feature = "evm"))]
mod tests {
    use super::{FeeQuote, over_fee_per_transfer};

    /// The total cap counts the whole quote — gas × price and the extra fee a Solana quote
    /// carries — refuses one base unit over it, and names both amounts.
    #[test]
    fn a_quote_over_max_fee_per_transfer_is_refused_by_one_unit() {
        let config = super::testing::config("capped", None, "max_fee_per_transfer = \"0.001\"");
        let quote = |gas_limit, extra_fee| FeeQuote {
            gas_limit,
            max_fee_per_gas: 1_000_000_000_000,
            max_priority_fee_per_gas: 0,
            extra_fee,
        };
        assert_eq!(over_fee_per_transfer(&config, &quote(1000, 0)), None, "at the cap");
        let over = over_fee_per_transfer(&config, &quote(1001, 0)).expect("over the cap");
        assert!(
            over.contains("up to 0.001001 ETH") && over.contains("max_fee_per_transfer 0.001"),
            "{over}"
        );
        assert!(
            over_fee_per_transfer(&config, &quote(1000, 1)).is_some(),
            "the extra fee counts"
        );
        let uncapped = super::testing::config("free", None, "");
        assert_eq!(over_fee_per_transfer(&uncapped, &quote(u64::MAX, 0)), None);
    }
}

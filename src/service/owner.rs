//! Owner control: single-use nonces, owner messages and their verification, approve and
//! reject, owner connect/disconnect (GRACE → LOCKED), the kill switch and AutoStop.
//!
//! Every owner action is proven by a signature over a message the daemon can rebuild from
//! its own state (see [`crate::owner`]): the domain, the chain, the owner, the wallet, the
//! action, the transaction and the digest of what would be signed. Rejected attempts are
//! audited and rate-limited like wrong master passwords.

use super::transfers::Stop;
use super::{MasterAuth, Result, Service, ServiceError, SessionAuth, now};
use crate::domain::{Address, ChainKind, Freeze, Transfer, TxId, TxState, Wallet, WalletId};
use crate::notify::{Actor, AuthKind, Event, KillScope};
use crate::owner::{self, Action, Claims, NONCE_TTL_SECONDS, Subject};
use crate::store::records::{FreezeRecord, SessionRecord, TxRecord, WalletRecord};
use crate::store::{AuditEvent, Batch, keys};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Who asked for a nonce. Each has its own pool; outstanding nonces beyond a pool's size are
/// refused (429) until some expire. An agent (session) or an anonymous caller (`GET /v1/nonce`)
/// flooding its pool cannot stop the operator's CLI from getting one, e.g. for the owner's
/// kill switch, nor the approval page's Sign button (its same-origin POST, which a web page
/// elsewhere cannot send).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NoncePool {
    Operator,
    Agent,
    Public,
    Page,
}

impl NoncePool {
    const ALL: [NoncePool; 4] = [
        NoncePool::Operator,
        NoncePool::Agent,
        NoncePool::Public,
        NoncePool::Page,
    ];

    fn capacity(self) -> usize {
        match self {
            NoncePool::Operator => 10_000,
            NoncePool::Agent | NoncePool::Public | NoncePool::Page => 1_000,
        }
    }
}

/// What an owner presents: the exact message text and its signature (decoded bytes).
#[derive(Debug, Clone)]
pub struct OwnerProof {
    pub message: String,
    pub signature: Vec<u8>,
}

/// A message for the owner to sign, as the daemon issued it.
#[derive(Debug, Clone)]
pub struct OwnerMessage {
    pub text: String,
    pub action: Action,
    pub wallet_id: WalletId,
    pub owner: String,
    pub subject: Option<Subject>,
    pub expires_at: i64,
    /// Why the policy asked for approval (approve / reject only).
    pub reasons: Vec<String>,
    /// The amount in whole units (approve / reject only).
    pub amount: Option<String>,
    /// The page where the owner can sign it with their wallet (approve / reject only).
    pub approval_page: Option<String>,
}

/// What the public panic page shows about one wallet ([`Service::panic_status`]).
#[derive(Debug, Clone)]
pub struct PanicStatus {
    pub wallet_id: WalletId,
    pub chain: String,
    pub kind: ChainKind,
    /// The registered owner's address, if any.
    pub owner: Option<String>,
    /// When the kill switch was pulled, if the wallet is frozen.
    pub frozen_since: Option<i64>,
    /// DELAYED and PENDING_APPROVAL transfers, oldest first.
    pub pending: Vec<(TxId, TxState)>,
    /// The kill-switch-on message as it will read (no nonce taken); `None` without an owner.
    pub preview: Option<OwnerMessage>,
}

/// In-memory owner-side state: issued nonces, recent rejections, AutoStop counters. Losing
/// it on restart fails closed (an unknown nonce is refused).
#[derive(Default)]
pub(super) struct OwnerState {
    /// One map per [`NoncePool`], in `NoncePool::ALL` order: nonce → expiry.
    nonces: [Mutex<HashMap<String, i64>>; 4],
    /// Failed owner proofs per wallet (only proofs that parsed and named a wallet with an
    /// owner count: junk touches no counter).
    failures: super::FailureWindows<WalletId>,
    autostop: Mutex<HashMap<WalletId, AutoStopCounters>>,
}

#[derive(Default)]
struct AutoStopCounters {
    consecutive_failures: u32,
    requests: VecDeque<Instant>,
}

/// One wallet's answer to a kill-switch request.
#[derive(Debug, Clone)]
pub struct KillSwitchReport {
    pub wallet_id: WalletId,
    pub frozen: Option<Freeze>,
    pub sessions_revoked: usize,
    pub transactions_cancelled: usize,
    /// Lifting was refused: the wallet's LOCKED owner must sign too.
    pub needs_owner_signature: bool,
}

/// The nonce of a previewed message: not alphanumeric, so no owner message with it parses,
/// and never issued, so none is consumed.
const PREVIEW_NONCE: &str = "(issued when the owner signs)";

fn rejected(msg: impl Into<String>) -> ServiceError {
    ServiceError::OwnerRejected(msg.into())
}

/// Printable ASCII only (a SIWE statement must be), for names and symbols shown in one.
fn ascii(s: &str, max: usize) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(max)
        .collect()
}

impl Service {
    // ---- nonces ------------------------------------------------------------------------

    /// `GET /v1/nonce`: a single-use nonce, valid for five minutes, from the public pool.
    pub fn issue_public_nonce(&self) -> Result<(String, i64)> {
        self.issue_nonce(NoncePool::Public)
    }

    fn issue_nonce(&self, pool: NoncePool) -> Result<(String, i64)> {
        let now = now();
        let max = pool.capacity();
        let mut nonces = self.owner.nonces[pool as usize].lock().expect("nonces");
        if nonces.len() >= max {
            nonces.retain(|_, exp| *exp > now);
            if nonces.len() >= max {
                return Err(ServiceError::TooMany(format!(
                    "{max} owner messages are outstanding for this kind of caller; each expires \
                     {NONCE_TTL_SECONDS} s after it was issued: try again then"
                )));
            }
        }
        let nonce = hex::encode(crate::secret::random_bytes::<16>());
        let expires = now + NONCE_TTL_SECONDS;
        nonces.insert(nonce.clone(), expires);
        Ok((nonce, expires))
    }

    fn consume_nonce(&self, nonce: &str) -> bool {
        let exp = NoncePool::ALL
            .iter()
            .find_map(|pool| self.owner.nonces[*pool as usize].lock().expect("nonces").remove(nonce));
        exp.is_some_and(|e| e > now())
    }

    // ---- messages ----------------------------------------------------------------------

    fn chain_id_text(&self, wallet: &WalletRecord) -> Result<String> {
        Ok(match wallet.kind {
            ChainKind::Evm => self
                .adapter(wallet)?
                .config()
                .chain_id
                .map(|id| id.to_string())
                .ok_or_else(|| ServiceError::InvalidInput("the wallet's chain has no chain id".into()))?,
            ChainKind::Solana => wallet.chain.to_string(),
        })
    }

    /// The canonical decoded transaction an approval binds.
    fn approval_subject(&self, wallet: &WalletRecord, tx: &TxRecord) -> Result<Subject> {
        Ok(Subject {
            tx: tx.id.to_string(),
            wallet: wallet.id.to_string(),
            chain: tx.chain.to_string(),
            chain_id: self.chain_id_text(wallet)?,
            from: wallet.address.clone(),
            to: tx.to.clone(),
            asset: tx.token.clone().unwrap_or_else(|| "native".into()),
            symbol: tx.symbol.clone(),
            decimals: tx.decimals,
            amount_base_units: tx.base_units.to_string(),
        })
    }

    /// The one human-readable line of an owner message: what happens, in words, with the
    /// amount, asset, recipient, chain and wallet. Built from the daemon's records only;
    /// the wallet name (the operator's) and the symbol (the chain's) are cut to printable
    /// ASCII of bounded length, and the agent's memo never appears.
    fn statement(wallet: &WalletRecord, action: Action, tx: Option<&TxRecord>) -> String {
        let name = ascii(&wallet.name, 64);
        match (action, tx) {
            (Action::Approve | Action::Reject | Action::Cancel, Some(tx)) => {
                let amount = crate::domain::Amount::new(tx.base_units, tx.decimals)
                    .map(|a| a.to_decimal_string())
                    .unwrap_or_else(|_| format!("{} base units of", tx.base_units));
                let token = tx.token.as_deref().map(|t| format!(" (token {t})")).unwrap_or_default();
                let what = format!(
                    "{amount} {}{token} to {} on {} from wallet {name}",
                    ascii(&tx.symbol, 16),
                    tx.to,
                    ascii(tx.chain.as_str(), 64),
                );
                match action {
                    Action::Approve => format!("Approve bursar transfer: send {what}."),
                    Action::Reject => format!("Reject bursar transfer, nothing is sent: {what}."),
                    _ => format!("Cancel bursar transfer, nothing is sent: {what}."),
                }
            }
            (Action::Connect, _) => format!("Connect as the owner of bursar wallet {name}."),
            (Action::Disconnect, _) => format!("Stop being the owner of bursar wallet {name}."),
            (Action::KillSwitchOn, _) => {
                format!("Freeze bursar wallet {name}: revoke its sessions, cancel pending transfers, sign nothing.")
            }
            (Action::KillSwitchOff, _) => format!("Lift the freeze on bursar wallet {name}."),
            (Action::Approve | Action::Reject | Action::Cancel, None) => String::new(),
        }
    }

    /// Everything an owner message for (`wallet`, `action`, `tx`) says, with the given nonce
    /// and times: what the daemon issues, and the only thing it accepts back.
    fn claims_for(
        &self,
        wallet: &WalletRecord,
        action: Action,
        tx: Option<&TxRecord>,
        nonce: String,
        issued_at: i64,
        expires_at: i64,
    ) -> Result<Claims> {
        let owner = wallet.owner.as_ref().ok_or_else(|| {
            ServiceError::Conflict(
                "the wallet has no registered owner: register one with `bursar owner connect`".into(),
            )
        })?;
        let domain = self.config.owner_domain();
        let uri = match tx {
            Some(t) => format!("http://{domain}/approve/{}", t.id),
            None => format!("http://{domain}/v1/wallets/{}", wallet.id),
        };
        Ok(Claims {
            domain,
            owner: owner.address.clone(),
            chain_id: self.chain_id_text(wallet)?,
            statement: Self::statement(wallet, action, tx),
            uri,
            nonce,
            issued_at,
            expires_at,
            action,
            wallet: wallet.id,
            tx: tx.map(|t| t.id),
            digest: tx
                .map(|t| self.approval_subject(wallet, t).map(|s| s.digest(action)))
                .transpose()?,
        })
    }

    /// Builds the exact text the wallet's owner must sign for `action` (with a fresh nonce
    /// from `pool`; `None`: a preview with [`PREVIEW_NONCE`], which no check accepts).
    fn owner_message(
        &self,
        wallet: &WalletRecord,
        action: Action,
        tx: Option<&TxRecord>,
        pool: Option<NoncePool>,
    ) -> Result<OwnerMessage> {
        if wallet.owner.is_none() {
            // Before taking a nonce: nothing to sign without an owner.
            self.claims_for(wallet, action, tx, String::new(), 0, 0)?;
        }
        let (nonce, nonce_expires) = match pool {
            Some(pool) => self.issue_nonce(pool)?,
            None => (PREVIEW_NONCE.to_owned(), now() + NONCE_TTL_SECONDS),
        };
        let expires_at = tx
            .and_then(|t| t.expires_at)
            .map_or(nonce_expires, |e| e.min(nonce_expires));
        let claims = self.claims_for(wallet, action, tx, nonce, now(), expires_at)?;
        let text = owner::render(wallet.kind, &claims).map_err(|e| ServiceError::InvalidInput(e.to_string()))?;
        Ok(OwnerMessage {
            text,
            action,
            wallet_id: wallet.id,
            owner: claims.owner,
            subject: tx.map(|t| self.approval_subject(wallet, t)).transpose()?,
            expires_at,
            reasons: tx.map(|t| t.reasons.clone()).unwrap_or_default(),
            amount: tx.and_then(|t| {
                crate::domain::Amount::new(t.base_units, t.decimals)
                    .ok()
                    .map(|a| a.to_decimal_string())
            }),
            approval_page: tx.map(|t| self.approval_page(t.id)),
        })
    }

    /// `GET /v1/transactions/{id}/approval-message` for the agent (its own wallet).
    pub fn approval_message_for_session(&self, auth: &SessionAuth, id: TxId, action: Action) -> Result<OwnerMessage> {
        self.approval_message(auth.wallet_id, id, action, Some(NoncePool::Agent))
    }

    /// `GET /v1/transactions/{id}/approval-message` for the operator (any wallet).
    pub fn approval_message_for_master(&self, _: &MasterAuth, id: TxId, action: Action) -> Result<OwnerMessage> {
        self.approval_message(self.active_tx_wallet(id)?, id, action, Some(NoncePool::Operator))
    }

    /// The approval message for the public approval page's Sign button
    /// (`POST /approve/{id}/message`): only for a transaction still waiting for its owner,
    /// which nobody can act on without signing.
    pub fn approval_message_public(&self, id: TxId, action: Action) -> Result<OwnerMessage> {
        self.approval_message(self.active_tx_wallet(id)?, id, action, Some(NoncePool::Page))
    }

    /// What the approval page shows (`GET /approve/{id}?action=`): the `action` message
    /// (approve, reject or cancel) as it will read, with [`PREVIEW_NONCE`] for the nonce.
    /// Takes no nonce, so viewing the page costs nothing.
    pub fn approval_preview(&self, id: TxId, action: Action) -> Result<OwnerMessage> {
        self.approval_message(self.active_tx_wallet(id)?, id, action, None)
    }

    /// What the panic page (`GET /owner/{wallet}`) shows without any credential: whether the
    /// wallet is frozen, whether it has an owner (and the owner's public address, which the
    /// page needs to pick the right wallet account), the transfers waiting for the owner, and
    /// the kill-switch message as it will read (no nonce taken). Nothing secret, no balance,
    /// no history, no session.
    pub fn panic_status(&self, wallet_id: WalletId) -> Result<PanicStatus> {
        let wallet = self.wallet(wallet_id)?;
        let mut pending: Vec<(TxId, TxState)> = self
            .active_txs()?
            .into_iter()
            .filter(|t| t.wallet_id == wallet_id && matches!(t.status, TxState::Delayed | TxState::PendingApproval))
            .map(|t| (t.id, t.status))
            .collect();
        pending.sort_by_key(|(id, _)| *id);
        let preview = match wallet.owner {
            Some(_) => Some(self.owner_message(&wallet, Action::KillSwitchOn, None, None)?),
            None => None,
        };
        Ok(PanicStatus {
            wallet_id,
            chain: wallet.chain.to_string(),
            kind: wallet.kind,
            owner: wallet.owner.as_ref().map(|o| o.address.clone()),
            frozen_since: wallet.frozen.as_ref().map(|f| f.since),
            pending,
            preview,
        })
    }

    /// The kill-switch message for the panic page's button (`POST /owner/{wallet}/message`),
    /// with a fresh nonce from the page's pool. Only `kill-switch-on`: lifting a freeze needs
    /// the operator too.
    pub fn panic_message_public(&self, wallet_id: WalletId) -> Result<OwnerMessage> {
        let wallet = self.wallet(wallet_id)?;
        self.owner_message(&wallet, Action::KillSwitchOn, None, Some(NoncePool::Page))
    }

    pub(super) fn active_tx_wallet(&self, id: TxId) -> Result<WalletId> {
        self.store
            .get::<String>(&keys::active_tx(id))?
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| ServiceError::NotFound(format!("pending transaction {id}")))
    }

    fn approval_message(
        &self,
        wallet_id: WalletId,
        id: TxId,
        action: Action,
        pool: Option<NoncePool>,
    ) -> Result<OwnerMessage> {
        if !action.needs_tx() {
            return Err(ServiceError::InvalidInput(
                "action must be approve, reject or cancel".into(),
            ));
        }
        let wallet = self.wallet(wallet_id)?;
        let tx = self.tx(wallet_id, id)?;
        let open = match action {
            Action::Cancel => tx.status.is_cancellable(),
            _ => tx.status == TxState::PendingApproval,
        };
        if !open {
            return Err(ServiceError::Conflict(format!(
                "transaction is {}; the owner can {} only a {} transfer",
                tx.status,
                action.as_str(),
                if action == Action::Cancel {
                    "DELAYED or PENDING_APPROVAL"
                } else {
                    "PENDING_APPROVAL"
                }
            )));
        }
        self.owner_message(&wallet, action, Some(&tx), pool)
    }

    /// `GET /v1/wallets/{id}/owner/message?action=`: connect, disconnect or kill switch.
    pub fn wallet_owner_message(&self, _: &MasterAuth, wallet_id: WalletId, action: Action) -> Result<OwnerMessage> {
        if action.needs_tx() {
            return Err(ServiceError::InvalidInput(
                "approve/reject messages come from /v1/transactions/{id}/approval-message".into(),
            ));
        }
        let wallet = self.wallet(wallet_id)?;
        self.owner_message(&wallet, action, None, Some(NoncePool::Operator))
    }

    // ---- verification ------------------------------------------------------------------

    /// Verifies an owner proof for `action` (and, for approve/reject/cancel, transaction
    /// `tx`). In this order:
    ///
    /// 1. the text parses and names a wallet with a registered owner of its chain kind —
    ///    otherwise it is junk: refused, and counted nowhere;
    /// 2. the signature verifies for the registered owner — otherwise the failure counts
    ///    for that wallet (audited up to the limit; past it, 429);
    /// 3. the text is exactly what the daemon issues for this wallet, action and
    ///    transaction (statement, URI and every other line; only nonce and times vary), the
    ///    times hold, and the nonce is unused — a proof the owner really signed is refused
    ///    for these reasons only, never for rate reasons.
    fn verify_owner(&self, proof: &OwnerProof, action: Action, tx: Option<TxId>) -> Result<(WalletRecord, Claims)> {
        let kind = owner::kind_of(&proof.message);
        let claims = owner::parse(kind, &proof.message).map_err(|e| rejected(e.to_string()))?;
        let wallet = self
            .wallet(claims.wallet)
            .map_err(|_| rejected("the message names an unknown wallet"))?;
        if wallet.kind != kind {
            return Err(rejected("the message is for another kind of chain"));
        }
        let registered = wallet
            .owner
            .as_ref()
            .ok_or_else(|| rejected("the wallet has no registered owner"))?;
        let owner_address = Address::parse(kind, &registered.address)
            .map_err(|_| ServiceError::Conflict("the registered owner address is invalid".into()))?;
        if let Err(err) = owner::verify_signature(&owner_address, &proof.message, &proof.signature) {
            return Err(self.owner_failure(&wallet, action, tx, rejected(err.to_string()), false));
        }
        self.check_signed(&wallet, &claims, action, tx)
            .map_err(|err| self.owner_failure(&wallet, action, tx, err, true))?;
        Ok((wallet, claims))
    }

    /// Counts and audits a failed owner proof for `wallet`. Past the per-wallet limit the
    /// audit stops and an unverified proof gets 429; a verified one keeps its own error.
    fn owner_failure(
        &self,
        wallet: &WalletRecord,
        action: Action,
        tx: Option<TxId>,
        err: ServiceError,
        signed_by_owner: bool,
    ) -> ServiceError {
        let limit = self.config.server.owner_auth_failures_per_minute as usize;
        let count = self.owner.failures.record(wallet.id);
        tracing::warn!(wallet = %wallet.id, action = action.as_str(), error = %err, "owner proof rejected");
        self.notify_auth_failure(AuthKind::Owner);
        if count <= limit {
            let audited = self.store.audit(
                AuditEvent::new("owner_auth_failed", "unknown")
                    .wallet(wallet.id)
                    .detail(serde_json::json!({
                        "action": action.as_str(),
                        "tx": tx.map(|t| t.to_string()),
                        "signedByOwner": signed_by_owner,
                        "reason": err.to_string(),
                    })),
            );
            if let Err(audit_err) = audited {
                return audit_err.into();
            }
        } else if !signed_by_owner {
            return ServiceError::RateLimited;
        }
        err
    }

    /// Step 3 of [`Service::verify_owner`], for a text the registered owner signed.
    fn check_signed(&self, wallet: &WalletRecord, claims: &Claims, action: Action, tx_id: Option<TxId>) -> Result<()> {
        if claims.action != action {
            return Err(rejected(format!(
                "the message authorises {}, not {}",
                claims.action.as_str(),
                action.as_str()
            )));
        }
        if claims.tx != tx_id {
            return Err(rejected("the message is for another transaction"));
        }
        let tx = tx_id
            .map(|id| {
                self.tx(wallet.id, id)
                    .map_err(|_| rejected("the message is for another transaction"))
            })
            .transpose()?;
        let expected = self.claims_for(
            wallet,
            action,
            tx.as_ref(),
            claims.nonce.clone(),
            claims.issued_at,
            claims.expires_at,
        )?;
        if let Some(field) = owner::first_difference(&expected, claims) {
            return Err(rejected(format!(
                "the message's {field} is not what bursar issues for this {} message; \
                 fetch a fresh one and sign it unchanged",
                action.as_str()
            )));
        }
        let now = now();
        if claims.issued_at > now + owner::MAX_SKEW_SECONDS {
            return Err(rejected("the message is issued in the future"));
        }
        if claims.expires_at <= now {
            return Err(rejected("the message has expired"));
        }
        if claims.expires_at - claims.issued_at > NONCE_TTL_SECONDS + owner::MAX_SKEW_SECONDS {
            return Err(rejected("the message is valid for longer than a nonce lives"));
        }
        // Last: a message that fails any check above does not burn the owner's nonce.
        if !self.consume_nonce(&claims.nonce) {
            return Err(rejected("the nonce is unknown, expired or already used"));
        }
        Ok(())
    }

    /// Re-reads the wallet under the write lock, applies `change`, turns a GRACE owner
    /// LOCKED (its first valid signature), and commits with `extra`'s writes.
    pub(super) fn commit_owner_change(
        &self,
        wallet_id: WalletId,
        actor: &str,
        change: impl FnOnce(&mut WalletRecord) -> Result<()>,
        mut batch: Batch,
    ) -> Result<WalletRecord> {
        let _guard = self.write_lock.lock().expect("write lock");
        let mut wallet = self.wallet(wallet_id)?;
        if let Some(o) = wallet.owner.as_mut().filter(|o| o.state == "GRACE") {
            o.state = "LOCKED".into();
            batch.audit(
                AuditEvent::new("owner_locked", actor)
                    .wallet(wallet_id)
                    .detail(serde_json::json!({ "address": o.address })),
            );
        }
        change(&mut wallet)?;
        batch.put(keys::wallet(wallet_id), &wallet);
        self.store.commit(batch)?;
        Ok(wallet)
    }

    // ---- approve / reject ----------------------------------------------------------------

    /// `POST /v1/transactions/{id}/approve`: verified owner signature → policy re-checked →
    /// signed now, with a fresh nonce, through the normal pipeline.
    pub async fn approve(&self, id: TxId, proof: &OwnerProof) -> Result<Transfer> {
        // Past its approval window the transfer is EXPIRED, whether or not the worker ran.
        if let Ok(wallet) = self.active_tx_wallet(id)
            && let Some(expired) = self.expire_if_due(wallet, id).await?
        {
            return Err(ServiceError::Conflict(format!(
                "transaction is {}: the owner's approval window closed before this approval arrived",
                expired.status
            )));
        }
        let (wallet, claims) = self.verify_owner(proof, Action::Approve, Some(id))?;
        if wallet.frozen.is_some() {
            return Err(ServiceError::Frozen(
                "the wallet is frozen by the kill switch; lift it first".into(),
            ));
        }
        let actor = format!("owner:{}", claims.owner);
        let mut batch = Batch::new();
        batch.audit(
            AuditEvent::new("tx_approved", &actor)
                .wallet(wallet.id)
                .detail(serde_json::json!({ "tx": id.to_string(), "digest": claims.digest })),
        );
        self.commit_owner_change(wallet.id, &actor, |_| Ok(()), batch)?;
        self.execute_approved(wallet.id, id).await
    }

    /// `POST /v1/transactions/{id}/reject`: REJECTED, reservation released, nothing signed.
    pub async fn reject(&self, id: TxId, proof: &OwnerProof) -> Result<Transfer> {
        let (wallet, claims) = self.verify_owner(proof, Action::Reject, Some(id))?;
        let tx = self
            .stop_unsigned(wallet.id, id, &Stop::OwnerReject(format!("owner:{}", claims.owner)))
            .await?;
        Ok(tx.transfer(wallet.kind)?)
    }

    /// `POST /v1/transactions/{id}/cancel` with owner headers: the owner cancels a DELAYED or
    /// PENDING_APPROVAL transfer of its wallet.
    pub async fn cancel_by_owner(&self, id: TxId, proof: &OwnerProof) -> Result<Transfer> {
        let (wallet, claims) = self.verify_owner(proof, Action::Cancel, Some(id))?;
        let tx = self
            .stop_unsigned(wallet.id, id, &Stop::OwnerCancel(format!("owner:{}", claims.owner)))
            .await?;
        Ok(tx.transfer(wallet.kind)?)
    }

    /// `POST /v1/transactions/{id}/cancel` with the master password: any wallet's DELAYED or
    /// PENDING_APPROVAL transfer.
    pub async fn cancel_by_master(&self, _: &MasterAuth, id: TxId) -> Result<Transfer> {
        let wallet = self.active_tx_wallet(id)?;
        let tx = self.stop_unsigned(wallet, id, &Stop::Cancel("master".into())).await?;
        self.transfer(&tx)
    }

    // ---- owner lifecycle -----------------------------------------------------------------

    /// `POST /v1/owner/connect`: the registered owner proves control; GRACE → LOCKED.
    pub fn owner_connect(&self, proof: &OwnerProof) -> Result<Wallet> {
        let (wallet, claims) = self.verify_owner(proof, Action::Connect, None)?;
        let actor = format!("owner:{}", claims.owner);
        let mut batch = Batch::new();
        batch.audit(AuditEvent::new("owner_connected", &actor).wallet(wallet.id));
        Ok(self
            .commit_owner_change(wallet.id, &actor, |_| Ok(()), batch)?
            .wallet()?)
    }

    /// `POST /v1/owner/disconnect`: the owner removes itself. Pending approvals wait for a
    /// new owner (or expire).
    pub fn owner_disconnect(&self, proof: &OwnerProof) -> Result<Wallet> {
        let (wallet, claims) = self.verify_owner(proof, Action::Disconnect, None)?;
        let actor = format!("owner:{}", claims.owner);
        let mut batch = Batch::new();
        batch.audit(AuditEvent::new("owner_disconnected", &actor).wallet(wallet.id));
        let wallet = self.commit_owner_change(
            wallet.id,
            &actor,
            |w| {
                w.owner = None;
                Ok(())
            },
            batch,
        )?;
        Ok(wallet.wallet()?)
    }

    /// `DELETE /v1/wallets/{id}/owner`: the operator removes an owner that never signed.
    pub fn remove_owner(&self, _: &MasterAuth, wallet_id: WalletId) -> Result<Wallet> {
        let _guard = self.write_lock.lock().expect("write lock");
        let mut wallet = self.wallet(wallet_id)?;
        match &wallet.owner {
            None => return Err(ServiceError::NotFound(format!("owner of wallet {wallet_id}"))),
            Some(o) if o.state == "LOCKED" => {
                return Err(ServiceError::Forbidden(
                    "the owner is LOCKED: only the owner's own signature can disconnect it".into(),
                ));
            }
            Some(_) => {}
        }
        let address = wallet.owner.take().map(|o| o.address);
        let mut batch = Batch::new();
        batch.put(keys::wallet(wallet_id), &wallet).audit(
            AuditEvent::new("owner_removed", "master")
                .wallet(wallet_id)
                .detail(serde_json::json!({ "address": address })),
        );
        self.store.commit(batch)?;
        Ok(wallet.wallet()?)
    }

    // ---- kill switch ---------------------------------------------------------------------

    fn all_wallet_ids(&self, wallet: Option<WalletId>) -> Result<Vec<WalletId>> {
        match wallet {
            Some(id) => Ok(vec![self.wallet(id)?.id]),
            None => Ok(self
                .store
                .list::<WalletRecord>(keys::WALLETS)?
                .into_iter()
                .map(|w| w.id)
                .collect()),
        }
    }

    /// `POST /v1/admin/kill-switch {on: true}`: freeze one wallet or all.
    pub async fn kill_switch_on_master(
        &self,
        _: &MasterAuth,
        wallet: Option<WalletId>,
        reason: &str,
    ) -> Result<Vec<KillSwitchReport>> {
        let mut reports = Vec::new();
        for id in self.all_wallet_ids(wallet)? {
            reports.push(self.freeze(id, "master", reason).await?);
        }
        Ok(reports)
    }

    /// `POST /v1/owner/kill-switch`: the owner freezes its wallet (lifting needs master too).
    pub async fn kill_switch_on_owner(&self, proof: &OwnerProof) -> Result<KillSwitchReport> {
        let (wallet, claims) = self.verify_owner(proof, Action::KillSwitchOn, None)?;
        let actor = format!("owner:{}", claims.owner);
        self.commit_owner_change(wallet.id, &actor, |_| Ok(()), Batch::new())?;
        self.freeze(wallet.id, "owner", "pulled by the owner").await
    }

    /// `POST /v1/admin/kill-switch {on: false}`: lifts the freeze. A wallet whose owner is
    /// LOCKED also needs that owner's signature (`proof`, for that one wallet).
    pub async fn kill_switch_off(
        &self,
        _: &MasterAuth,
        wallet: Option<WalletId>,
        proof: Option<&OwnerProof>,
    ) -> Result<Vec<KillSwitchReport>> {
        let verified = match proof {
            Some(p) => Some(self.verify_owner(p, Action::KillSwitchOff, None)?),
            None => None,
        };
        if let (Some((w, _)), Some(target)) = (&verified, wallet)
            && w.id != target
        {
            return Err(rejected("the owner's message is for another wallet"));
        }
        let mut reports = Vec::new();
        for id in self.all_wallet_ids(wallet)? {
            let locks = self.wallet_locks(id);
            let _decide = locks.decide.lock().await;
            let signed_by_owner = verified.as_ref().is_some_and(|(w, _)| w.id == id);
            let _guard = self.write_lock.lock().expect("write lock");
            let mut record = self.wallet(id)?;
            let locked_owner = record.owner.as_ref().is_some_and(|o| o.state == "LOCKED");
            let mut report = KillSwitchReport {
                wallet_id: id,
                frozen: record.frozen.as_ref().map(Into::into),
                sessions_revoked: 0,
                transactions_cancelled: 0,
                needs_owner_signature: false,
            };
            if record.frozen.is_none() {
                reports.push(report);
                continue;
            }
            if locked_owner && !signed_by_owner {
                report.needs_owner_signature = true;
                reports.push(report);
                continue;
            }
            record.frozen = None;
            let mut batch = Batch::new();
            batch.put(keys::wallet(id), &record).audit(
                AuditEvent::new(
                    "kill_switch_off",
                    if signed_by_owner { "master+owner" } else { "master" },
                )
                .wallet(id),
            );
            self.store.commit(batch)?;
            self.notify(Event::KillSwitch {
                on: false,
                scope: KillScope::Wallet {
                    wallet_id: id,
                    wallet_name: record.name.clone(),
                },
                by: Actor::Master,
            });
            report.frozen = None;
            reports.push(report);
        }
        if wallet.is_some() && reports.iter().any(|r| r.needs_owner_signature) {
            return Err(ServiceError::Forbidden(
                "the wallet's owner is LOCKED: lifting the kill switch needs the owner's signature too \
                 (X-Owner-Message / X-Owner-Signature over a kill-switch-off message)"
                    .into(),
            ));
        }
        Ok(reports)
    }

    /// Which wallets are frozen.
    pub fn kill_switch_status(&self, _: &MasterAuth) -> Result<Vec<Wallet>> {
        let wallets: Vec<WalletRecord> = self.store.list(keys::WALLETS)?;
        let frozen = wallets.iter().filter(|w| w.frozen.is_some());
        Ok(frozen.map(WalletRecord::wallet).collect::<Result<_, _>>()?)
    }

    /// Freezes one wallet: under its `decide` lock (never held across an RPC call, so a
    /// transfer stuck on a slow chain cannot hold the brake), revoke every session, cancel
    /// everything not yet signed, and mark it frozen — in one commit. The executor re-checks
    /// the freeze under the same lock right before signing, so nothing is signed after this
    /// commit. Signed transactions already on their way are left to confirm.
    async fn freeze(&self, wallet_id: WalletId, by: &str, reason: &str) -> Result<KillSwitchReport> {
        let locks = self.wallet_locks(wallet_id);
        let _decide = locks.decide.lock().await;
        let now = now();
        let mut batch = Batch::new();
        let mine: Vec<TxRecord> = self
            .active_txs()?
            .into_iter()
            .filter(|t| t.wallet_id == wallet_id)
            .collect();
        let cancelled = self.cancel_unsigned(&mut batch, mine, by, "kill switch")?;
        let _guard = self.write_lock.lock().expect("write lock");
        let mut revoked = 0;
        let sessions: Vec<SessionRecord> = self.store.list(keys::SESSIONS)?;
        for mut s in sessions
            .into_iter()
            .filter(|s| s.wallet_id == wallet_id && s.revoked_at.is_none())
        {
            s.revoked_at = Some(now);
            batch.put(keys::session(s.id), &s);
            revoked += 1;
        }
        let mut wallet = self.wallet(wallet_id)?;
        let frozen = FreezeRecord {
            by: by.to_owned(),
            reason: reason.to_owned(),
            since: now,
        };
        wallet.frozen = Some(frozen.clone());
        batch.put(keys::wallet(wallet_id), &wallet).audit(
            AuditEvent::new("kill_switch_on", by)
                .wallet(wallet_id)
                .detail(serde_json::json!({
                    "reason": reason,
                    "sessionsRevoked": revoked,
                    "transactionsCancelled": cancelled,
                })),
        );
        self.store.commit(batch)?;
        tracing::warn!(wallet = %wallet_id, by, reason, revoked, cancelled, "wallet frozen");
        self.notify(match by {
            "autostop" => Event::AutoStop {
                wallet_id,
                wallet_name: wallet.name.clone(),
                reason: reason.to_owned(),
            },
            _ => Event::KillSwitch {
                on: true,
                scope: KillScope::Wallet {
                    wallet_id,
                    wallet_name: wallet.name.clone(),
                },
                by: if by == "owner" { Actor::Owner } else { Actor::Master },
            },
        });
        Ok(KillSwitchReport {
            wallet_id,
            frozen: Some((&frozen).into()),
            sessions_revoked: revoked,
            transactions_cancelled: cancelled,
            needs_owner_signature: false,
        })
    }

    // ---- AutoStop ------------------------------------------------------------------------

    /// Counts a send request; past the burst threshold the wallet is suspended and this
    /// request refused.
    pub(super) async fn autostop_request(&self, wallet: WalletId) -> Result<()> {
        let cfg = &self.config.autostop;
        if cfg.burst_requests == 0 {
            return Ok(());
        }
        let window = Duration::from_secs(cfg.burst_window_seconds);
        let burst = {
            let mut counters = self.owner.autostop.lock().expect("autostop");
            let c = counters.entry(wallet).or_default();
            while c.requests.front().is_some_and(|t| t.elapsed() > window) {
                c.requests.pop_front();
            }
            c.requests.push_back(Instant::now());
            c.requests.len() > cfg.burst_requests as usize
        };
        if burst {
            let reason = format!(
                "AutoStop: more than {} send requests in {} s",
                cfg.burst_requests, cfg.burst_window_seconds
            );
            self.autostop(wallet, &reason).await?;
            return Err(ServiceError::Frozen(format!("{reason}; the wallet is suspended")));
        }
        Ok(())
    }

    /// Counts a send's outcome: DENIED and FAILED in a row suspend the wallet.
    pub(super) async fn autostop_outcome(&self, wallet: WalletId, status: TxState) -> Result<()> {
        let limit = self.config.autostop.consecutive_failures;
        if limit == 0 {
            return Ok(());
        }
        let tripped = {
            let mut counters = self.owner.autostop.lock().expect("autostop");
            let c = counters.entry(wallet).or_default();
            if matches!(status, TxState::Denied | TxState::Failed) {
                c.consecutive_failures += 1;
            } else {
                c.consecutive_failures = 0;
            }
            c.consecutive_failures >= limit
        };
        if tripped {
            self.autostop(wallet, &format!("AutoStop: {limit} consecutive sends denied or failed"))
                .await?;
        }
        Ok(())
    }

    async fn autostop(&self, wallet: WalletId, reason: &str) -> Result<()> {
        if self.wallet(wallet)?.frozen.is_some() {
            return Ok(());
        }
        self.owner.autostop.lock().expect("autostop").remove(&wallet);
        self.freeze(wallet, "autostop", reason).await?;
        Ok(())
    }
}

//! Policies and owners: the operator's rules for a wallet, validated by the policy engine's
//! parser at creation (unknown types or fields are refused), and the owner registration that
//! tells APPROVAL from DENY.

use super::{MasterAuth, PolicyView, Result, Service, ServiceError, SessionAuth, now};
use crate::domain::{Address, PolicyId, Wallet, WalletId};
use crate::policy::{self, ParseContext};
use crate::store::records::{OwnerRecord, PolicyRecord, RECORD_VERSION};
use crate::store::{AuditEvent, Batch, keys};

/// Policy types the engine understands but that nothing bursar signs can trigger yet: every
/// transfer's intent carries no contract call and no approval. Accepting them would let an
/// operator believe something is restricted that is not.
const INERT_TYPES: [&str; 4] = [
    "CONTRACT_WHITELIST",
    "METHOD_WHITELIST",
    "APPROVED_SPENDERS",
    "APPROVE_AMOUNT_LIMIT",
];

impl Service {
    pub fn add_policy(
        &self,
        _: &MasterAuth,
        wallet_id: WalletId,
        kind: &str,
        rules: serde_json::Value,
    ) -> Result<PolicyView> {
        let wallet = self.wallet(wallet_id)?;
        let adapter = self.adapter(&wallet)?;
        let ctx = ParseContext {
            chain_kind: wallet.kind,
            native_decimals: adapter.config().native_decimals,
        };
        policy::parse(kind, rules.clone(), &ctx).map_err(|e| ServiceError::InvalidInput(e.to_string()))?;
        if INERT_TYPES.contains(&kind) {
            return Err(ServiceError::InvalidInput(format!(
                "{kind} applies to contract calls and token approvals, which bursar does not sign yet \
                 (it signs native and token transfers only): it would change nothing, so it is refused. \
                 Restrict token transfers with ALLOWED_TOKENS and recipients with WHITELIST."
            )));
        }
        let record = PolicyRecord {
            v: RECORD_VERSION,
            id: PolicyId::new(),
            wallet_id,
            kind: kind.to_owned(),
            rules,
            created_at: now(),
        };
        let mut batch = Batch::new();
        batch.put(keys::policy(wallet_id, record.id), &record).audit(
            AuditEvent::new("policy_added", "master").wallet(wallet_id).detail(
                serde_json::json!({ "policy": record.id.to_string(), "type": record.kind, "rules": record.rules }),
            ),
        );
        self.store.commit(batch)?;
        Ok(record.into())
    }

    pub fn list_policies(&self, _: &MasterAuth, wallet: Option<WalletId>) -> Result<Vec<PolicyView>> {
        self.policies_under(&wallet.map_or_else(|| keys::POLICIES.to_owned(), keys::wallet_policies))
    }

    /// The session's own wallet's policies (read-only, for agents).
    pub fn session_policies(&self, auth: &SessionAuth) -> Result<Vec<PolicyView>> {
        self.policies_under(&keys::wallet_policies(auth.wallet_id))
    }

    /// The policies stored under `prefix`, oldest first.
    fn policies_under(&self, prefix: &str) -> Result<Vec<PolicyView>> {
        let mut list: Vec<PolicyRecord> = self.store.list(prefix)?;
        list.sort_by_key(|p| p.created_at);
        Ok(list.into_iter().map(Into::into).collect())
    }

    pub fn remove_policy(&self, _: &MasterAuth, id: PolicyId) -> Result<PolicyView> {
        let all: Vec<PolicyRecord> = self.store.list(keys::POLICIES)?;
        let record = all
            .into_iter()
            .find(|p| p.id == id)
            .ok_or_else(|| ServiceError::NotFound(format!("policy {id}")))?;
        let mut batch = Batch::new();
        batch.delete(keys::policy(record.wallet_id, id)).audit(
            AuditEvent::new("policy_removed", "master")
                .wallet(record.wallet_id)
                .detail(serde_json::json!({ "policy": id.to_string(), "type": record.kind })),
        );
        self.store.commit(batch)?;
        Ok(record.into())
    }

    /// Registers the wallet's owner (state GRACE). Once the owner has signed (LOCKED), the
    /// master password alone can no longer change it.
    pub fn set_owner(&self, _: &MasterAuth, wallet_id: WalletId, address: &str) -> Result<Wallet> {
        let _guard = self.write_lock.lock().expect("write lock");
        let mut wallet = self.wallet(wallet_id)?;
        let address =
            Address::parse(wallet.kind, address).map_err(|e| ServiceError::InvalidInput(format!("address: {e}")))?;
        if wallet.owner.as_ref().is_some_and(|o| o.state == "LOCKED") {
            return Err(ServiceError::Forbidden(
                "the owner is LOCKED: changing it needs the owner's own signature".into(),
            ));
        }
        wallet.owner = Some(OwnerRecord {
            address: address.to_string(),
            state: "GRACE".into(),
            registered_at: now(),
        });
        let mut batch = Batch::new();
        batch.put(keys::wallet(wallet_id), &wallet).audit(
            AuditEvent::new("owner_registered", "master")
                .wallet(wallet_id)
                .detail(serde_json::json!({ "address": address.to_string(), "state": "GRACE" })),
        );
        self.store.commit(batch)?;
        Ok(wallet.wallet()?)
    }
}

//! A small typed Solana JSON-RPC client over the daemon's own reqwest: the dozen methods a
//! wallet uses, with the chain's connect and total timeouts on every call. Errors never carry
//! the URL (it may hold an API key) and chain-sourced text is sanitised.

use crate::domain::sanitize;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcFailure {
    /// No answer, an HTTP error status or an answer that is not JSON-RPC: proves nothing.
    Transport(String),
    /// The node answered with a JSON-RPC error. `message` is sanitised; `data` is the
    /// error's structured payload (`simulateTransaction`'s `err` for a failed preflight).
    Error { code: i64, message: String, data: Value },
}

pub struct Rpc {
    http: reqwest::Client,
    url: String,
    next_id: AtomicU64,
}

/// `{"context": …, "value": T}`.
#[derive(Debug, Deserialize)]
pub struct WithContext<T> {
    pub value: T,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LatestBlockhash {
    pub blockhash: String,
    pub last_valid_block_height: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountInfo {
    pub lamports: u64,
    /// `[base64, "base64"]`.
    pub data: (String, String),
    pub owner: String,
}

impl AccountInfo {
    pub fn bytes(&self) -> Result<Vec<u8>, RpcFailure> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(&self.data.0)
            .map_err(|_| RpcFailure::Transport("unexpected account data".into()))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Simulation {
    pub err: Option<Value>,
    #[serde(default)]
    pub logs: Option<Vec<String>>,
    #[serde(default)]
    pub units_consumed: Option<u64>,
    /// The requested accounts after the simulated transaction (`None`: does not exist).
    #[serde(default)]
    pub accounts: Option<Vec<Option<AccountInfo>>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureStatus {
    pub slot: u64,
    pub confirmations: Option<u64>,
    pub err: Option<Value>,
    pub confirmation_status: Option<String>,
}

impl Rpc {
    pub fn new(http: reqwest::Client, url: String) -> Self {
        Self {
            http,
            url,
            next_id: AtomicU64::new(1),
        }
    }

    pub async fn call<T: DeserializeOwned>(&self, method: &str, params: Value) -> Result<T, RpcFailure> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        // reqwest's error text names the URL: only its kind is kept.
        let response = self.http.post(&self.url).json(&body).send().await.map_err(|e| {
            RpcFailure::Transport(if e.is_timeout() {
                "timed out".into()
            } else {
                "connection failed".into()
            })
        })?;
        let status = response.status();
        let answer: Value = response.json().await.map_err(|e| {
            RpcFailure::Transport(if status.is_success() {
                if e.is_timeout() {
                    "timed out".into()
                } else {
                    "unexpected response".into()
                }
            } else {
                format!("HTTP status {status}")
            })
        })?;
        if let Some(error) = answer.get("error") {
            return Err(RpcFailure::Error {
                code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: sanitize::chain_string(error.get("message").and_then(Value::as_str).unwrap_or(""), 200),
                data: error.get("data").cloned().unwrap_or(Value::Null),
            });
        }
        if !status.is_success() {
            return Err(RpcFailure::Transport(format!("HTTP status {status}")));
        }
        let result = answer.get("result").cloned().unwrap_or(Value::Null);
        serde_json::from_value(result).map_err(|_| RpcFailure::Transport("unexpected response".into()))
    }

    pub async fn genesis_hash(&self) -> Result<String, RpcFailure> {
        self.call("getGenesisHash", json!([])).await
    }

    pub async fn latest_blockhash(&self, commitment: &str) -> Result<LatestBlockhash, RpcFailure> {
        let v: WithContext<LatestBlockhash> = self
            .call("getLatestBlockhash", json!([{ "commitment": commitment }]))
            .await?;
        Ok(v.value)
    }

    pub async fn block_height(&self, commitment: &str) -> Result<u64, RpcFailure> {
        self.call("getBlockHeight", json!([{ "commitment": commitment }])).await
    }

    pub async fn balance(&self, address: &str, commitment: &str) -> Result<u64, RpcFailure> {
        let v: WithContext<u64> = self
            .call("getBalance", json!([address, { "commitment": commitment }]))
            .await?;
        Ok(v.value)
    }

    pub async fn account(&self, address: &str, commitment: &str) -> Result<Option<AccountInfo>, RpcFailure> {
        let v: WithContext<Option<AccountInfo>> = self
            .call(
                "getAccountInfo",
                json!([address, { "commitment": commitment, "encoding": "base64" }]),
            )
            .await?;
        Ok(v.value)
    }

    /// The fee of a message (base64 of its serialization) in lamports; `None` when the node
    /// no longer knows its blockhash.
    pub async fn fee_for_message(&self, message_b64: &str, commitment: &str) -> Result<Option<u64>, RpcFailure> {
        let v: WithContext<Option<u64>> = self
            .call("getFeeForMessage", json!([message_b64, { "commitment": commitment }]))
            .await?;
        Ok(v.value)
    }

    /// Simulates a transaction (base64) without verifying signatures, on the node's latest
    /// blockhash; `accounts` come back as they would be after it.
    pub async fn simulate(
        &self,
        tx_b64: &str,
        commitment: &str,
        accounts: &[String],
    ) -> Result<Simulation, RpcFailure> {
        let mut config = json!({
            "encoding": "base64",
            "commitment": commitment,
            "sigVerify": false,
            "replaceRecentBlockhash": true,
        });
        if !accounts.is_empty() {
            config["accounts"] = json!({ "encoding": "base64", "addresses": accounts });
        }
        let v: WithContext<Simulation> = self.call("simulateTransaction", json!([tx_b64, config])).await?;
        Ok(v.value)
    }

    /// Sends once (`maxRetries: 0`: bursar's own worker re-broadcasts), after the node's
    /// preflight simulation at `commitment`.
    pub async fn send(&self, tx_b64: &str, commitment: &str) -> Result<String, RpcFailure> {
        self.call(
            "sendTransaction",
            json!([tx_b64, {
                "encoding": "base64",
                "skipPreflight": false,
                "preflightCommitment": commitment,
                "maxRetries": 0,
            }]),
        )
        .await
    }

    /// Statuses of signatures, searching the whole history (not only the recent cache).
    pub async fn signature_statuses(&self, signatures: &[String]) -> Result<Vec<Option<SignatureStatus>>, RpcFailure> {
        let v: WithContext<Vec<Option<SignatureStatus>>> = self
            .call(
                "getSignatureStatuses",
                json!([signatures, { "searchTransactionHistory": true }]),
            )
            .await?;
        Ok(v.value)
    }

    /// Recent prioritization fees (micro-lamports per compute unit) paid in blocks that
    /// wrote `accounts`.
    pub async fn recent_prioritization_fees(&self, accounts: &[String]) -> Result<Vec<u64>, RpcFailure> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Fee {
            prioritization_fee: u64,
        }
        let fees: Vec<Fee> = self.call("getRecentPrioritizationFees", json!([accounts])).await?;
        Ok(fees.into_iter().map(|f| f.prioritization_fee).collect())
    }

    /// Test clusters only: airdrops `lamports`; returns the airdrop's signature.
    pub async fn request_airdrop(&self, address: &str, lamports: u64) -> Result<String, RpcFailure> {
        self.call("requestAirdrop", json!([address, lamports])).await
    }
}

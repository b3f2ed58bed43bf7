//! `bursar mcp`: the stdio MCP server agent hosts launch. It holds only the session token
//! (`BURSAR_SESSION_TOKEN_FILE` or `BURSAR_SESSION_TOKEN`) and the daemon's URL; each tool is
//! one REST call (`api::mcp`). stdout carries only JSON-RPC; logs go to stderr and never hold
//! the token.
//!
//! Renewal: a renewable token is renewed (`PUT /v1/sessions/{id}/renew`) when 20% of its TTL
//! is left (at least 10 s, at most half the TTL). A token from a file is written back
//! atomically (0600, temp file + fsync + rename), so a restart of `bursar mcp` keeps working;
//! one from the environment can only be renewed in memory, which is logged once.

use super::CliResult;
use crate::api::dto;
use crate::api::mcp::{Backend, BursarMcp, SharedToken};
use crate::config::{self, SecretSource};
use anyhow::anyhow;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Starts even when the token is missing or the daemon is down, so the agent host shows each
/// tool's error (which says what to do) instead of a dead server.
pub async fn run(url: Option<String>) -> CliResult {
    crate::telemetry::init(&std::env::var("BURSAR_LOG").unwrap_or_else(|_| "warn".into()), false);
    let (token, source) = match config::secret_from_env("BURSAR_SESSION_TOKEN") {
        Ok(Some((token, source, warning))) => {
            if let Some(w) = warning {
                tracing::warn!("{w}");
            }
            (Ok(token), Some(source))
        }
        Ok(None) => (Err("no session token: the operator must set BURSAR_SESSION_TOKEN_FILE in this MCP server's environment (`bursar session create` issues one)".to_owned()), None),
        Err(err) => (Err(err.to_string()), None),
    };
    let (http, base) = (super::client::http_client()?, super::client::daemon_url(url));
    let token: SharedToken = Arc::new(tokio::sync::RwLock::new(token));
    if let Some(source) = source {
        let renewer = Renewer {
            http: http.clone(),
            base: base.clone(),
            token: token.clone(),
            source,
        };
        tokio::spawn(renewer.run());
    }
    let server = BursarMcp::new(Backend::Remote { http, base, token });
    let running = rmcp::ServiceExt::serve(server, rmcp::transport::stdio())
        .await
        .map_err(|e| anyhow!("starting the MCP server: {e}"))?;
    running.waiting().await.map_err(|e| anyhow!("MCP server: {e}"))?;
    Ok(())
}

/// Keeps the shared token fresh for as long as the session allows.
struct Renewer {
    http: reqwest::Client,
    base: String,
    token: SharedToken,
    source: SecretSource,
}

/// The claims renewal needs, read without verifying (the daemon verifies; this only schedules).
#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
    iat: i64,
    exp: i64,
}

enum RenewError {
    /// The session cannot be renewed any more (revoked, expired, out of renewals).
    Final(String),
    /// The daemon could not be asked (down, busy): try again while the token lasts.
    Retry(String),
}

impl Renewer {
    async fn run(self) {
        loop {
            let claims = {
                let token = self.token.read().await;
                token.as_ref().ok().and_then(|t| claims(t.expose_secret()))
            };
            let Some(claims) = claims else {
                return; // Not a token we can read: the daemon will say what is wrong with it.
            };
            let now = unix_now();
            let ttl = (claims.exp - claims.iat).max(1);
            let lead = (ttl / 5).max((ttl / 2).min(10));
            let due = claims.exp - lead;
            if now < due {
                // Short steps: the timer stops while the machine sleeps, the wall clock does not.
                tokio::time::sleep(Duration::from_secs((due - now).clamp(1, 30) as u64)).await;
                continue;
            }
            if now >= claims.exp {
                tracing::warn!(
                    "the session token has expired and cannot be renewed; ask the operator for a new session (`bursar session create`)"
                );
                return;
            }
            match self.renew(&claims.sub).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(RenewError::Final(why)) => {
                    tracing::warn!("session token renewal refused: {why}");
                    return;
                }
                Err(RenewError::Retry(why)) => {
                    tracing::warn!("session token renewal failed, retrying: {why}");
                    tokio::time::sleep(Duration::from_secs(((claims.exp - now) / 4).clamp(1, 5) as u64)).await;
                }
            }
        }
    }

    /// One renewal under the write lock (no call is in flight with the old token). `Ok(true)`
    /// when the new token can be renewed again.
    async fn renew(&self, session_id: &str) -> Result<bool, RenewError> {
        let mut token = self.token.write().await;
        let Ok(current) = token.as_ref() else {
            return Ok(false);
        };
        let res = self
            .http
            .put(format!("{}/v1/sessions/{}/renew", self.base, session_id))
            .bearer_auth(current.expose_secret())
            .send()
            .await
            .map_err(|e| RenewError::Retry(format!("cannot reach the daemon at {}: {e}", self.base)))?;
        let status = res.status();
        let bytes = res.bytes().await.map_err(|e| RenewError::Retry(e.to_string()))?;
        if !status.is_success() {
            let why = serde_json::from_slice::<dto::ErrorBody>(&bytes)
                .map(|b| format!("{} ({})", b.error.message, b.error.code))
                .unwrap_or_else(|_| format!("daemon answered {status}"));
            return Err(if status.is_server_error() || status.as_u16() == 429 {
                RenewError::Retry(why)
            } else {
                RenewError::Final(why)
            });
        }
        let renewed: dto::SessionToken = serde_json::from_slice(&bytes)
            .map_err(|e| RenewError::Retry(format!("unexpected answer from the daemon: {e}")))?;
        match &self.source {
            SecretSource::File(path) => match write_token_file(path, &renewed.token) {
                Ok(()) => {
                    tracing::info!(expires_at = %renewed.expires_at, "session token renewed and saved to its file")
                }
                Err(e) => tracing::warn!(
                    "session token renewed, but writing it to {} failed ({e}): it lives in memory only, and a restart of `bursar mcp` will need a new token",
                    path.display()
                ),
            },
            SecretSource::Env => {
                static WARNED: std::sync::Once = std::sync::Once::new();
                WARNED.call_once(|| {
                    tracing::warn!(
                        "session token renewed in memory only: BURSAR_SESSION_TOKEN cannot be updated, so a restart of `bursar mcp` will present the old, now invalid token; use BURSAR_SESSION_TOKEN_FILE to keep renewals across restarts"
                    )
                });
            }
        }
        // Renewing is pointless once the absolute lifetime caps the expiry.
        let parse = |t: &str| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok();
        let capped = match (parse(&renewed.expires_at), parse(&renewed.absolute_expires_at)) {
            (Some(exp), Some(absolute)) => exp >= absolute,
            _ => false,
        };
        *token = Ok(SecretString::from(renewed.token));
        Ok(renewed.renewals_left > 0 && !capped)
    }
}

/// The payload of a JWT, unverified.
fn claims(token: &str) -> Option<Claims> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Replaces `path` atomically: a new 0600 file next to it (written and fsynced), renamed over
/// it, then the directory fsynced. A crash leaves the old or the new token, never a mix.
pub(super) fn write_token_file(path: &Path, token: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    config::write_private_file(&tmp, token.as_bytes())?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::File::open(&dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn token_file_is_replaced_whole_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.token");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_token_file(&path, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temp file left behind");
    }

    #[test]
    fn claims_are_read_from_the_payload() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"s1","iat":10,"exp":70}"#);
        let c = claims(&format!("h.{payload}.sig")).unwrap();
        assert_eq!((c.sub.as_str(), c.iat, c.exp), ("s1", 10, 70));
        assert!(claims("not a jwt").is_none());
    }
}

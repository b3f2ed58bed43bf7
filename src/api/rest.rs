//! REST routes. [`routes`] is the only source of the router and every entry must name its
//! auth kind, so a route without declared auth does not compile; `tests/it/routes.rs`
//! walks this table and proves each entry rejects missing, wrong-kind, bad, expired and
//! revoked credentials. Handlers are thin: extract, one service call, convert.

use super::dto::{self, ErrorCode};
use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery, Id, invalid_id};
use super::state::AppState;
use crate::domain::{Tier, Transfer, TxState};
use crate::service::{MasterAuth, ServiceError, SessionAuth};
use axum::extract::State;
use axum::handler::Handler;
use axum::http::{Method, StatusCode};
use axum::routing::{MethodFilter, MethodRouter, on};
use axum::{Extension, Json};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No credentials (`/health`). Each one is listed in `PUBLIC_ROUTES` of the route test.
    Public,
    /// `X-Master-Password`.
    Master,
    /// `Authorization: Bearer <session token>`.
    Session,
    /// Either a session token (the caller's own wallet) or the master password.
    SessionOrMaster,
    /// Owner headers if present (verified by the use case), else a session token (the
    /// caller's own wallet), else the master password.
    SessionMasterOrOwner,
    /// `X-Owner-Message` + `X-Owner-Signature`: present here, verified by the handler's use
    /// case against the exact action, wallet and transaction.
    Owner,
    /// `[metrics] access`: a loopback peer, the scrape token, or the master password (or
    /// nobody: `off`). Read-only counters that hold no secret and no address.
    Metrics,
}

pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub auth: Auth,
    /// A long-lived answer (an MCP event stream): no request timeout.
    pub streams: bool,
    pub handler: MethodRouter<AppState>,
}

impl Route {
    fn streaming(mut self) -> Self {
        self.streams = true;
        self
    }
}

fn route<H, T>(method: Method, path: &'static str, auth: Auth, handler: H) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("standard method");
    Route {
        method,
        path,
        auth,
        streams: false,
        handler: on(filter, handler),
    }
}

/// Every REST route, with its auth kind.
pub fn routes() -> Vec<Route> {
    use Auth::*;
    vec![
        route(Method::GET, "/health", Public, health),
        route(Method::GET, "/openapi.json", Public, openapi),
        route(Method::GET, "/metrics", Metrics, metrics),
        route(Method::POST, "/v1/wallets", Master, wallet_create),
        route(Method::GET, "/v1/wallets", Master, wallet_list),
        route(Method::GET, "/v1/wallets/{id}", Master, wallet_show),
        route(Method::POST, "/v1/sessions", Master, session_create),
        route(Method::GET, "/v1/sessions", Master, session_list),
        route(Method::DELETE, "/v1/sessions/{id}", Master, session_revoke),
        route(Method::PUT, "/v1/sessions/{id}/renew", Session, session_renew),
        route(Method::GET, "/v1/wallet/address", Session, wallet_address),
        route(Method::GET, "/v1/wallet/balance", Session, wallet_balance),
        route(Method::GET, "/v1/audit", Master, audit_list),
        route(Method::GET, "/v1/audit/verify", Master, audit_verify),
        route(Method::GET, "/v1/admin/status", Master, admin_status),
        route(Method::POST, "/v1/admin/shutdown", Master, admin_shutdown),
        route(Method::PUT, "/v1/admin/master-password", Master, admin_set_master),
        route(Method::POST, "/v1/admin/backup", Master, admin_backup),
        route(
            Method::POST,
            "/v1/admin/rotate-session-secret",
            Master,
            admin_rotate_session_secret,
        ),
        route(Method::PUT, "/v1/wallets/{id}/owner", Master, wallet_set_owner),
        route(Method::POST, "/v1/policies", Master, policy_add),
        route(Method::GET, "/v1/policies", Master, policy_list),
        route(Method::DELETE, "/v1/policies/{id}", Master, policy_remove),
        route(Method::POST, "/v1/transactions/send", Session, tx_send),
        route(Method::POST, "/v1/transactions/check", Session, tx_check),
        route(Method::GET, "/v1/transactions", Session, tx_list),
        route(Method::GET, "/v1/transactions/{id}", Session, tx_show),
        route(
            Method::POST,
            "/v1/transactions/{id}/cancel",
            SessionMasterOrOwner,
            tx_cancel,
        ),
        route(Method::GET, "/v1/wallet/policies", Session, wallet_policies),
        route(
            Method::POST,
            "/v1/admin/transactions/{id}/speed-up",
            Master,
            admin_tx_speed_up,
        ),
        route(
            Method::POST,
            "/v1/admin/transactions/{id}/cancel-onchain",
            Master,
            admin_tx_cancel_onchain,
        ),
        route(Method::GET, "/v1/nonce", Public, owner_nonce),
        route(
            Method::GET,
            "/v1/transactions/{id}/approval-message",
            SessionOrMaster,
            tx_approval_message,
        ),
        route(Method::POST, "/v1/transactions/{id}/approve", Owner, tx_approve),
        route(Method::POST, "/v1/transactions/{id}/reject", Owner, tx_reject),
        route(
            Method::GET,
            "/v1/wallets/{id}/owner/message",
            Master,
            wallet_owner_message,
        ),
        route(Method::DELETE, "/v1/wallets/{id}/owner", Master, wallet_remove_owner),
        route(Method::POST, "/v1/owner/connect", Owner, owner_connect),
        route(Method::POST, "/v1/owner/disconnect", Owner, owner_disconnect),
        route(Method::POST, "/v1/owner/kill-switch", Owner, owner_kill_switch),
        route(Method::POST, "/v1/admin/kill-switch", Master, admin_kill_switch),
        route(Method::GET, "/v1/admin/kill-switch", Master, admin_kill_switch_status),
        // The owner's approval page: public on loopback; it holds no secret, and nothing
        // happens without the owner's signature. Viewing it takes no owner nonce; the page's
        // Sign button fetches the message with a same-origin POST (`api::page`).
        route(Method::GET, "/approve/{id}", Public, super::page::approval_page),
        route(
            Method::POST,
            "/approve/{id}/message",
            Public,
            super::page::approval_page_message,
        ),
        // The owner's panic page: the same rules (no secret, signature or nothing).
        route(Method::GET, "/owner/{id}", Public, super::page::panic_page),
        route(
            Method::POST,
            "/owner/{id}/message",
            Public,
            super::page::panic_page_message,
        ),
        // MCP over streamable HTTP: the bearer token is checked here on every request, and
        // again by each tool's REST call; the MCP session id is never authentication, and
        // an MCP session serves only the bursar session that opened it (`api::mcp_http`).
        route(Method::POST, "/mcp", Session, mcp).streaming(),
        route(Method::GET, "/mcp", Session, mcp).streaming(),
        route(Method::DELETE, "/mcp", Session, mcp),
        // MCP over legacy HTTP+SSE: the same per-request bearer check; a message must also
        // come from the session that opened the stream (`api::mcp_sse`).
        route(Method::GET, "/sse", Session, sse_open).streaming(),
        route(Method::POST, "/message", Session, sse_message),
    ]
}

async fn mcp(
    State(s): State<AppState>,
    Extension(a): Session,
    req: axum::extract::Request,
) -> axum::response::Response {
    s.mcp(&a, req).await
}

async fn sse_open(
    State(s): State<AppState>,
    Extension(a): Session,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    s.sse_open(&a, &headers)
}

async fn sse_message(
    State(s): State<AppState>,
    Extension(a): Session,
    req: axum::extract::Request,
) -> axum::response::Response {
    s.sse_message(&a, req).await
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// The response header that carries a listing's cursor: pass it back as `before` for the next,
/// older page. Absent on the last page. (A header, so the body stays the plain array that
/// clients already read.)
pub const NEXT_BEFORE_HEADER: &str = "x-next-before";

/// A page of a listing: the JSON array, and the next page's cursor in [`NEXT_BEFORE_HEADER`].
struct Paged<T> {
    items: Vec<T>,
    next_before: Option<String>,
}

/// A page of the service's items as a page of their wire form.
impl<T, U: From<T>, C: std::fmt::Display> From<crate::domain::Page<T, C>> for Paged<U> {
    fn from(page: crate::domain::Page<T, C>) -> Self {
        Self {
            items: page.items.into_iter().map(Into::into).collect(),
            next_before: page.next_before.map(|c| c.to_string()),
        }
    }
}

impl<T: serde::Serialize> axum::response::IntoResponse for Paged<T> {
    fn into_response(self) -> axum::response::Response {
        let mut response = Json(self.items).into_response();
        if let Some(next) = self.next_before
            && let Ok(value) = axum::http::HeaderValue::from_str(&next)
        {
            response.headers_mut().insert(NEXT_BEFORE_HEADER, value);
        }
        response
    }
}
type Master = Extension<MasterAuth>;
type Session = Extension<SessionAuth>;
type Owner = Extension<crate::service::OwnerProof>;

async fn health() -> Json<dto::Health> {
    Json(dto::Health { status: "ok" })
}

/// This API's OpenAPI document (`schemas/openapi.json`), made on first request.
async fn openapi(State(s): State<AppState>) -> axum::response::Response {
    s.openapi()
}

/// Prometheus text format 0.0.4.
async fn metrics(State(s): State<AppState>) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let text = s.service.metrics()?;
    let kind = "text/plain; version=0.0.4; charset=utf-8";
    Ok(([(axum::http::header::CONTENT_TYPE, kind)], text).into_response())
}

async fn wallet_create(
    State(s): State<AppState>,
    Extension(m): Master,
    ApiJson(body): ApiJson<dto::CreateWallet>,
) -> Result<(StatusCode, Json<dto::Wallet>), ApiError> {
    let (name, chain) = body.parse()?;
    Ok((
        StatusCode::CREATED,
        Json(s.service.create_wallet(&m, name, chain)?.into()),
    ))
}

async fn wallet_list(State(s): State<AppState>, Extension(m): Master) -> ApiResult<Vec<dto::Wallet>> {
    Ok(Json(s.service.list_wallets(&m)?.into_iter().map(Into::into).collect()))
}

async fn wallet_show(State(s): State<AppState>, Extension(m): Master, Id(id): Id) -> ApiResult<dto::Wallet> {
    Ok(Json(s.service.get_wallet(&m, id.parse().map_err(invalid_id)?)?.into()))
}

async fn session_create(
    State(s): State<AppState>,
    Extension(m): Master,
    ApiJson(body): ApiJson<dto::CreateSession>,
) -> Result<(StatusCode, Json<dto::SessionToken>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(s.service.create_session(&m, body.parse()?)?.into()),
    ))
}

async fn session_list(
    State(s): State<AppState>,
    Extension(m): Master,
    ApiQuery(q): ApiQuery<dto::SessionFilter>,
) -> ApiResult<Vec<dto::Session>> {
    Ok(Json(
        s.service
            .list_sessions(&m, q.parse()?)?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

async fn session_revoke(State(s): State<AppState>, Extension(m): Master, Id(id): Id) -> ApiResult<dto::Session> {
    Ok(Json(
        s.service
            .revoke_session(&m, id.parse().map_err(invalid_id)?)
            .await?
            .into(),
    ))
}

async fn session_renew(State(s): State<AppState>, Extension(a): Session, Id(id): Id) -> ApiResult<dto::SessionToken> {
    Ok(Json(
        s.service.renew_session(&a, id.parse().map_err(invalid_id)?)?.into(),
    ))
}

async fn wallet_address(State(s): State<AppState>, Extension(a): Session) -> ApiResult<dto::WalletAddress> {
    Ok(Json(s.service.session_wallet(&a)?.into()))
}

async fn wallet_balance(
    State(s): State<AppState>,
    Extension(a): Session,
    ApiQuery(q): ApiQuery<dto::BalanceQuery>,
) -> ApiResult<dto::BalanceDto> {
    Ok(Json(s.service.balance(&a, q.token()?).await?.into()))
}

async fn audit_list(
    State(s): State<AppState>,
    Extension(m): Master,
    ApiQuery(q): ApiQuery<dto::AuditQuery>,
) -> Result<Paged<dto::AuditEntry>, ApiError> {
    Ok(s.service.audit_list(&m, &q.parse()?)?.into())
}

async fn audit_verify(State(s): State<AppState>, Extension(m): Master) -> ApiResult<dto::AuditVerification> {
    Ok(Json(s.service.audit_verify(&m)?.into()))
}

async fn admin_status(State(s): State<AppState>, Extension(m): Master) -> ApiResult<dto::Status> {
    Ok(Json(s.service.status(&m)?.into()))
}

async fn admin_shutdown(State(s): State<AppState>, Extension(m): Master) -> ApiResult<dto::Ok> {
    s.service.request_shutdown(&m)?;
    Ok(Json(dto::Ok { ok: true }))
}

/// The encrypted archive of the whole store (`application/octet-stream`).
async fn admin_backup(
    State(s): State<AppState>,
    Extension(m): Master,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<dto::BackupRequest>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let passphrase = backup_passphrase(&headers, body)?;
    let service = s.service.clone();
    // One Argon2id run: keep it off the async workers.
    let archive = tokio::task::spawn_blocking(move || service.backup(&m, &passphrase))
        .await
        .map_err(|_| internal())??;
    let kind = (axum::http::header::CONTENT_TYPE, "application/octet-stream");
    Ok(([kind], archive).into_response())
}

/// The body's passphrase (checked by the master-password rule), else the master password
/// the request authenticated with.
fn backup_passphrase(
    headers: &axum::http::HeaderMap,
    body: dto::BackupRequest,
) -> Result<crate::secret::Passphrase, ApiError> {
    match body.passphrase {
        Some(p) => {
            let p = crate::secret::Passphrase::from(p);
            match crate::secret::check_new_master_password(&p) {
                Ok(()) => Ok(p),
                Err(rule) => Err(crate::service::ServiceError::InvalidInput(format!("passphrase: {rule}")).into()),
            }
        }
        None => headers
            .get("x-master-password")
            .and_then(|v| v.to_str().ok())
            .map(|v| crate::secret::Passphrase::from(v.to_owned()))
            .ok_or_else(internal),
    }
}

async fn admin_set_master(
    State(s): State<AppState>,
    Extension(m): Master,
    ApiJson(body): ApiJson<dto::SetMaster>,
) -> ApiResult<dto::SetMasterResult> {
    let new = crate::secret::Passphrase::from(body.new_password);
    let recovery_key = body.recovery_key.into();
    let service = s.service.clone();
    // The KDF takes tens of milliseconds: keep it off the async workers.
    let outcome = tokio::task::spawn_blocking(move || service.set_master(&m, &new, recovery_key))
        .await
        .map_err(|_| internal())??;
    Ok(Json(outcome.into()))
}

async fn admin_rotate_session_secret(State(s): State<AppState>, Extension(m): Master) -> ApiResult<dto::Ok> {
    s.service.rotate_session_secret(&m)?;
    Ok(Json(dto::Ok { ok: true }))
}

async fn wallet_set_owner(
    State(s): State<AppState>,
    Extension(m): Master,
    Id(id): Id,
    ApiJson(body): ApiJson<dto::SetOwner>,
) -> ApiResult<dto::Wallet> {
    Ok(Json(
        s.service
            .set_owner(&m, id.parse().map_err(invalid_id)?, body.address()?)?
            .into(),
    ))
}

async fn policy_add(
    State(s): State<AppState>,
    Extension(m): Master,
    ApiJson(body): ApiJson<dto::CreatePolicy>,
) -> Result<(StatusCode, Json<dto::PolicyDto>), ApiError> {
    body.check_bounds()?;
    let wallet = body.wallet_id.parse().map_err(invalid_id)?;
    Ok((
        StatusCode::CREATED,
        Json(s.service.add_policy(&m, wallet, &body.kind, body.rules)?.into()),
    ))
}

async fn policy_list(
    State(s): State<AppState>,
    Extension(m): Master,
    ApiQuery(q): ApiQuery<dto::SessionFilter>,
) -> ApiResult<Vec<dto::PolicyDto>> {
    Ok(Json(
        s.service
            .list_policies(&m, q.parse()?)?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

async fn policy_remove(State(s): State<AppState>, Extension(m): Master, Id(id): Id) -> ApiResult<dto::PolicyDto> {
    Ok(Json(
        s.service.remove_policy(&m, id.parse().map_err(invalid_id)?)?.into(),
    ))
}

async fn wallet_policies(State(s): State<AppState>, Extension(a): Session) -> ApiResult<Vec<dto::PolicyDto>> {
    Ok(Json(
        s.service.session_policies(&a)?.into_iter().map(Into::into).collect(),
    ))
}

/// 200 with the transaction (CONFIRMED, SUBMITTED, DELAYED, PENDING_APPROVAL, FAILED), or
/// 403 POLICY_DENIED with the reasons and the recorded transaction.
async fn tx_send(
    State(s): State<AppState>,
    Extension(a): Session,
    ApiJson(body): ApiJson<dto::Transfer>,
) -> ApiResult<dto::Transaction> {
    let tx = s.service.send(&a, &body.into_request()?).await?;
    let denied = tx.status == TxState::Denied;
    crate::metrics::decision(false, tx.tier.filter(|_| !denied).map_or("DENIED", Tier::as_str));
    denied_or_ok(tx)
}

async fn tx_check(
    State(s): State<AppState>,
    Extension(a): Session,
    ApiJson(body): ApiJson<dto::Transfer>,
) -> ApiResult<dto::Check> {
    let check: dto::Check = s.service.check_transfer(&a, &body.into_request()?).await?.into();
    crate::metrics::decision(true, check.tier.map_or("DENIED", Tier::as_str));
    Ok(Json(check))
}

async fn tx_list(
    State(s): State<AppState>,
    Extension(a): Session,
    ApiQuery(q): ApiQuery<dto::TxQuery>,
) -> Result<Paged<dto::Transaction>, ApiError> {
    let before = q.before.map(|b| b.parse()).transpose().map_err(invalid_id)?;
    Ok(s.service
        .list_transactions(&a, q.status, before, q.limit.unwrap_or(50))?
        .into())
}

async fn tx_show(State(s): State<AppState>, Extension(a): Session, Id(id): Id) -> ApiResult<dto::Transaction> {
    Ok(Json(
        s.service.get_transaction(&a, id.parse().map_err(invalid_id)?)?.into(),
    ))
}

/// The agent (its own wallet), the operator (any wallet) or the owner (a signed `cancel`
/// message) cancels a DELAYED or PENDING_APPROVAL transfer.
async fn tx_cancel(
    State(s): State<AppState>,
    owner: Option<Owner>,
    session: Option<Session>,
    master: Option<Master>,
    Id(id): Id,
) -> ApiResult<dto::Transaction> {
    let id = id.parse().map_err(invalid_id)?;
    let tx = match (owner, session, master) {
        (Some(Extension(proof)), _, _) => s.service.cancel_by_owner(id, &proof).await?,
        (None, Some(Extension(a)), _) => s.service.cancel_transaction(&a, id).await?,
        (None, None, Some(Extension(m))) => s.service.cancel_by_master(&m, id).await?,
        (None, None, None) => return Err(ServiceError::Unauthenticated("credentials missing").into()),
    };
    Ok(Json(tx.into()))
}

/// The operator replaces a signed, unmined transfer with higher fees (same nonce).
async fn admin_tx_speed_up(State(s): State<AppState>, Extension(m): Master, Id(id): Id) -> ApiResult<dto::Transaction> {
    let id = id.parse().map_err(invalid_id)?;
    Ok(Json(s.service.speed_up(&m, id).await?.into()))
}

/// The operator uses a stuck transfer's nonce for a zero-value transfer to the wallet itself.
async fn admin_tx_cancel_onchain(
    State(s): State<AppState>,
    Extension(m): Master,
    Id(id): Id,
) -> ApiResult<dto::Transaction> {
    let id = id.parse().map_err(invalid_id)?;
    Ok(Json(s.service.cancel_onchain(&m, id).await?.into()))
}

// ---- owner control -------------------------------------------------------------------

async fn owner_nonce(State(s): State<AppState>) -> ApiResult<dto::Nonce> {
    let (nonce, expires) = s.service.issue_public_nonce()?;
    Ok(Json(dto::Nonce {
        nonce,
        expires_at: dto::rfc3339(expires),
        domain: s.service.config().owner_domain(),
    }))
}

async fn tx_approval_message(
    State(s): State<AppState>,
    session: Option<Session>,
    master: Option<Master>,
    Id(id): Id,
    ApiQuery(q): ApiQuery<dto::ActionQuery>,
) -> ApiResult<dto::OwnerMessage> {
    let id = id.parse().map_err(invalid_id)?;
    let action = q.parse(crate::owner::Action::Approve)?;
    let message = match (session, master) {
        (Some(Extension(a)), _) => s.service.approval_message_for_session(&a, id, action)?,
        (None, Some(Extension(m))) => s.service.approval_message_for_master(&m, id, action)?,
        (None, None) => return Err(ServiceError::Unauthenticated("credentials missing").into()),
    };
    Ok(Json(message.into()))
}

async fn tx_approve(State(s): State<AppState>, Extension(proof): Owner, Id(id): Id) -> ApiResult<dto::Transaction> {
    let id = id.parse().map_err(invalid_id)?;
    denied_or_ok(s.service.approve(id, &proof).await?)
}

/// A transfer the policy denied is a 403 `POLICY_DENIED` that carries it; any other, a 200.
fn denied_or_ok(tx: Transfer) -> ApiResult<dto::Transaction> {
    let denied = tx.status == TxState::Denied;
    let tx = dto::Transaction::from(tx);
    if denied {
        return Err(ApiError::policy_denied(tx));
    }
    Ok(Json(tx))
}

async fn tx_reject(State(s): State<AppState>, Extension(proof): Owner, Id(id): Id) -> ApiResult<dto::Transaction> {
    Ok(Json(
        s.service.reject(id.parse().map_err(invalid_id)?, &proof).await?.into(),
    ))
}

async fn wallet_owner_message(
    State(s): State<AppState>,
    Extension(m): Master,
    Id(id): Id,
    ApiQuery(q): ApiQuery<dto::ActionQuery>,
) -> ApiResult<dto::OwnerMessage> {
    let action = q.parse(crate::owner::Action::Connect)?;
    Ok(Json(
        s.service
            .wallet_owner_message(&m, id.parse().map_err(invalid_id)?, action)?
            .into(),
    ))
}

async fn wallet_remove_owner(State(s): State<AppState>, Extension(m): Master, Id(id): Id) -> ApiResult<dto::Wallet> {
    Ok(Json(
        s.service.remove_owner(&m, id.parse().map_err(invalid_id)?)?.into(),
    ))
}

async fn owner_connect(State(s): State<AppState>, Extension(proof): Owner) -> ApiResult<dto::Wallet> {
    Ok(Json(s.service.owner_connect(&proof)?.into()))
}

async fn owner_disconnect(State(s): State<AppState>, Extension(proof): Owner) -> ApiResult<dto::Wallet> {
    Ok(Json(s.service.owner_disconnect(&proof)?.into()))
}

async fn owner_kill_switch(State(s): State<AppState>, Extension(proof): Owner) -> ApiResult<dto::KillSwitchReport> {
    Ok(Json(s.service.kill_switch_on_owner(&proof).await?.into()))
}

/// Freeze (`on: true`) or lift. Lifting a wallet whose owner is LOCKED also needs the
/// owner's `X-Owner-Message` / `X-Owner-Signature` over a `kill-switch-off` message.
async fn admin_kill_switch(
    State(s): State<AppState>,
    Extension(m): Master,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<dto::KillSwitch>,
) -> ApiResult<Vec<dto::KillSwitchReport>> {
    let wallet = body.wallet_id()?.map(str::parse).transpose().map_err(invalid_id)?;
    let reports = if body.on {
        let reason = body.reason()?;
        s.service.kill_switch_on_master(&m, wallet, &reason).await?
    } else {
        let proof = super::extract::owner_proof(&headers)?;
        s.service.kill_switch_off(&m, wallet, proof.as_ref()).await?
    };
    Ok(Json(reports.into_iter().map(Into::into).collect()))
}

async fn admin_kill_switch_status(State(s): State<AppState>, Extension(m): Master) -> ApiResult<Vec<dto::Wallet>> {
    Ok(Json(
        s.service.kill_switch_status(&m)?.into_iter().map(Into::into).collect(),
    ))
}

fn internal() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Internal,
        "internal error; see the daemon log",
    )
}

//! MCP over streamable HTTP (`/mcp`): rmcp's service, with the rules rmcp does not know.
//!
//! - **An MCP session belongs to the bursar session that opened it.** A request naming an
//!   `Mcp-Session-Id` opened under another bursar session's token (even one of the same
//!   wallet) gets 404, as an unknown id does: the id routes messages, it never authenticates.
//! - **Caps**: `max_mcp_sessions_per_session` per bursar session and `max_mcp_sessions` in
//!   all; an `initialize` beyond them gets 429 `RATE_LIMITED` until one is closed
//!   (`DELETE /mcp`) or expires.
//! - **Idle expiry**: rmcp closes a session with no request for `mcp_session_idle_seconds`.
//! - **Bodies in bounded time**: a POST body must arrive within the request timeout, so a
//!   trickled body cannot hold a connection busy forever (the streamed answer is not timed).
//! - **Memory comes back**: each closed session schedules a heap trim ([`crate::memory`]).
//!
//! How: [`BoundSessions`] wraps rmcp's [`LocalSessionManager`] and records the opener of
//! each session when rmcp creates it. rmcp calls `create_session` inside the request's own
//! future, so the opener travels there in a task-local set by [`McpHttp::handle`]; a
//! session created outside one (never, in rmcp 3.11) is refused, failing closed.

use super::dto::ErrorCode;
use super::error::ApiError;
use super::mcp::BursarMcp;
use crate::domain::SessionId;
use crate::service::SessionAuth;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_core::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::WorkerTransport;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError, LocalSessionWorker,
};
use rmcp::transport::streamable_http_server::session::{ServerSseMessage, SessionManager};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The header that names an MCP session.
const SESSION_HEADER: &str = "mcp-session-id";

pub type McpService = rmcp::transport::streamable_http_server::StreamableHttpService<BursarMcp, BoundSessions>;

/// Limits for `/mcp`, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct McpLimits {
    pub per_session: usize,
    pub total: usize,
    pub idle: Duration,
    pub body_timeout: Duration,
    pub max_body: usize,
}

/// `/mcp`: rmcp's service behind the binding check, the caps and the body deadline.
pub struct McpHttp {
    service: McpService,
    sessions: Arc<BoundSessions>,
    limits: McpLimits,
}

impl McpHttp {
    pub fn new(service: McpService, sessions: Arc<BoundSessions>, limits: McpLimits) -> Self {
        Self {
            service,
            sessions,
            limits,
        }
    }

    /// Session manager for [`McpService::new`].
    pub fn session_manager(limits: &McpLimits) -> Arc<BoundSessions> {
        let mut local = LocalSessionManager::default();
        local.session_config.keep_alive = Some(limits.idle);
        Arc::new(BoundSessions {
            local,
            limits: *limits,
            bound: Mutex::new(Bound::default()),
        })
    }

    /// One authenticated `/mcp` request (any method).
    pub async fn handle(&self, auth: &SessionAuth, req: Request) -> Response {
        if let Some(id) = req.headers().get(SESSION_HEADER) {
            let mine = id
                .to_str()
                .is_ok_and(|id| self.sessions.opener(id) == Some(auth.session_id));
            if !mine {
                return ApiError::new(
                    StatusCode::NOT_FOUND,
                    ErrorCode::NotFound,
                    "no open MCP session with this Mcp-Session-Id for this session token; send initialize again",
                )
                .into_response();
            }
        }
        let req = if req.method() == Method::POST {
            let (parts, bytes) = match self.read_body(req).await {
                Ok(read) => read,
                Err(refused) => return refused,
            };
            // The common refusal without the cost of rmcp: an agent at its cap asking for more.
            // (`create_session` below stays the authority; this only answers early.)
            if !parts.headers.contains_key(SESSION_HEADER)
                && is_initialize(&bytes)
                && let Err(cap) = self.sessions.has_room(auth.session_id)
            {
                return self.full(cap);
            }
            Request::from_parts(parts, Body::from(bytes))
        } else {
            req
        };
        let opener = Arc::new(Opener {
            session: auth.session_id,
            refused: OnceLock::new(),
        });
        let res = OPENER
            .scope(opener.clone(), tower::ServiceExt::oneshot(self.service.clone(), req))
            .await;
        if let Some(cap) = opener.refused.get() {
            return self.full(*cap);
        }
        match res {
            Ok(res) => res.map(Body::new),
            Err(never) => match never {},
        }
    }

    fn full(&self, cap: Cap) -> Response {
        let which = match cap {
            Cap::PerSession => format!("for this session token (at most {})", self.limits.per_session),
            Cap::Total => format!("on this daemon (at most {} over all session tokens)", self.limits.total),
        };
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            format!(
                "too many open MCP sessions {which}; close some with DELETE /mcp, or wait for idle ones \
                 to expire"
            ),
        )
        .into_response()
    }

    /// The whole POST body within the deadline; rmcp then parses it from memory.
    async fn read_body(&self, req: Request) -> Result<(axum::http::request::Parts, axum::body::Bytes), Response> {
        let (parts, body) = req.into_parts();
        let read = axum::body::to_bytes(body, self.limits.max_body);
        match tokio::time::timeout(self.limits.body_timeout, read).await {
            Ok(Ok(bytes)) => Ok((parts, bytes)),
            Ok(Err(_)) => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                format!("message larger than {} bytes", self.limits.max_body),
            )
            .into_response()),
            Err(_) => Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                ErrorCode::Timeout,
                format!(
                    "the request body did not arrive within {} s",
                    self.limits.body_timeout.as_secs()
                ),
            )
            .into_response()),
        }
    }
}

/// Whether a JSON-RPC body is an `initialize` request (the only one that opens a session).
fn is_initialize(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Method<'a> {
        #[serde(borrow)]
        method: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Method>(body).is_ok_and(|m| m.method.as_deref() == Some("initialize"))
}

/// Which cap refused a new MCP session.
#[derive(Debug, Clone, Copy)]
enum Cap {
    PerSession,
    Total,
}

/// Who is opening a session in this request, and which cap refused it, if one did.
struct Opener {
    session: SessionId,
    refused: OnceLock<Cap>,
}

tokio::task_local! {
    static OPENER: Arc<Opener>;
}

/// rmcp's in-memory session manager, plus who opened each session and the caps.
pub struct BoundSessions {
    local: LocalSessionManager,
    limits: McpLimits,
    bound: Mutex<Bound>,
}

/// The open sessions' openers and the slots taken (a slot is taken just before rmcp creates
/// the session, so `total` may briefly exceed `opener.len()`).
#[derive(Default)]
struct Bound {
    opener: HashMap<Arc<str>, SessionId>,
    /// Slots per bursar session; never holds a zero.
    per_session: HashMap<SessionId, usize>,
    total: usize,
}

impl BoundSessions {
    fn opener(&self, id: &str) -> Option<SessionId> {
        self.bound.lock().expect("mcp sessions lock").opener.get(id).copied()
    }

    /// Whether `session` could open one more MCP session now, or which cap is full.
    fn has_room(&self, session: SessionId) -> Result<(), Cap> {
        Self::room(&self.bound.lock().expect("mcp sessions lock"), &self.limits, session)
    }

    fn room(bound: &Bound, limits: &McpLimits, session: SessionId) -> Result<(), Cap> {
        if bound.per_session.get(&session).copied().unwrap_or(0) >= limits.per_session {
            return Err(Cap::PerSession);
        }
        if bound.total >= limits.total {
            return Err(Cap::Total);
        }
        Ok(())
    }

    /// Takes a slot for `session`, or says which cap is full.
    fn reserve(&self, session: SessionId) -> Result<(), Cap> {
        let mut bound = self.bound.lock().expect("mcp sessions lock");
        Self::room(&bound, &self.limits, session)?;
        *bound.per_session.entry(session).or_default() += 1;
        bound.total += 1;
        Ok(())
    }

    fn release(&self, session: SessionId) {
        let mut bound = self.bound.lock().expect("mcp sessions lock");
        Self::decrement(&mut bound, session);
    }

    fn decrement(bound: &mut Bound, session: SessionId) {
        if let Some(n) = bound.per_session.get_mut(&session) {
            *n -= 1;
            bound.total -= 1;
            if *n == 0 {
                bound.per_session.remove(&session);
            }
        }
    }

    fn unbind(&self, id: &Arc<str>) {
        let mut bound = self.bound.lock().expect("mcp sessions lock");
        if let Some(session) = bound.opener.remove(id) {
            Self::decrement(&mut bound, session);
            drop(bound);
            tracing::debug!(session = %session, "MCP session closed");
            crate::memory::release_soon();
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BoundSessionsError {
    #[error(transparent)]
    Local(#[from] LocalSessionManagerError),
    #[error("MCP session cap reached")]
    Full,
    #[error("an MCP session was created outside an authenticated /mcp request")]
    NoOpener,
}

impl SessionManager for BoundSessions {
    type Error = BoundSessionsError;
    type Transport = WorkerTransport<LocalSessionWorker>;

    async fn create_session(&self) -> Result<(Arc<str>, Self::Transport), Self::Error> {
        let opener = OPENER.try_with(Arc::clone).map_err(|_| BoundSessionsError::NoOpener)?;
        if let Err(cap) = self.reserve(opener.session) {
            let _ = opener.refused.set(cap);
            return Err(BoundSessionsError::Full);
        }
        match self.local.create_session().await {
            Ok((id, transport)) => {
                self.bound
                    .lock()
                    .expect("mcp sessions lock")
                    .opener
                    .insert(id.clone(), opener.session);
                tracing::debug!(session = %opener.session, "MCP session opened");
                Ok((id, transport))
            }
            Err(err) => {
                self.release(opener.session);
                Err(err.into())
            }
        }
    }

    async fn initialize_session(
        &self,
        id: &Arc<str>,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        Ok(self.local.initialize_session(id, message).await?)
    }

    async fn has_session(&self, id: &Arc<str>) -> Result<bool, Self::Error> {
        Ok(self.local.has_session(id).await?)
    }

    /// `DELETE /mcp`, and rmcp's clean-up when a session's service ends (idle expiry,
    /// shutdown, a failed handshake): may run twice for one id.
    async fn close_session(&self, id: &Arc<str>) -> Result<(), Self::Error> {
        let result = self.local.close_session(id).await;
        self.unbind(id);
        Ok(result?)
    }

    async fn create_stream(
        &self,
        id: &Arc<str>,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.local.create_stream(id, message).await?)
    }

    async fn accept_message(&self, id: &Arc<str>, message: ClientJsonRpcMessage) -> Result<(), Self::Error> {
        Ok(self.local.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &Arc<str>,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.local.create_standalone_stream(id).await?)
    }

    async fn resume(
        &self,
        id: &Arc<str>,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.local.resume(id, last_event_id).await?)
    }
}

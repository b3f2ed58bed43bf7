//! The HTTP server: one axum router for every surface (REST, MCP over streamable HTTP and
//! legacy SSE), auth middleware per route from the route table, `Host`/`Origin` validation and security headers on every response, body
//! limits, JSON 404/405, and graceful shutdown.

use super::error::ApiError;
use super::mcp::{Backend, BursarMcp};
use super::mcp_sse::SseSessions;
use super::rest::{self, Auth};
use crate::service::{Service, ServiceError, SessionAuth};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub service: Arc<Service>,
    guard: Arc<HostGuard>,
    /// The MCP services; set once the router they call into exists.
    mcp: Arc<std::sync::OnceLock<Mcp>>,
}

/// MCP over HTTP: streamable HTTP (`/mcp`, rmcp's service) and legacy SSE (`/sse` +
/// `/message`, our adapter onto rmcp).
struct Mcp {
    streamable: McpService,
    sse: Arc<SseSessions>,
    /// Cancelled at shutdown: ends every streamable HTTP session and its open GET stream.
    streamable_stop: tokio_util::sync::CancellationToken,
}

type McpService = rmcp::transport::streamable_http_server::StreamableHttpService<
    BursarMcp,
    rmcp::transport::streamable_http_server::session::local::LocalSessionManager,
>;

impl AppState {
    /// Hands an authenticated `/mcp` request to rmcp's streamable HTTP service.
    pub(super) async fn mcp(&self, req: Request) -> Response {
        let Some(mcp) = self.mcp.get() else {
            return mcp_starting();
        };
        match tower::ServiceExt::oneshot(mcp.streamable.clone(), req).await {
            Ok(res) => res.map(axum::body::Body::new),
            Err(never) => match never {},
        }
    }

    /// `GET /sse` (authenticated): opens a legacy SSE stream bound to the caller's session.
    pub(super) fn sse_open(&self, auth: &SessionAuth, headers: &HeaderMap) -> Response {
        match self.mcp.get() {
            Some(mcp) => mcp.sse.open(auth, headers),
            None => mcp_starting(),
        }
    }

    /// `POST /message` (authenticated): one message for a stream the caller's session opened.
    pub(super) async fn sse_message(&self, auth: &SessionAuth, req: Request) -> Response {
        match self.mcp.get() {
            Some(mcp) => mcp.sse.message(auth, req).await,
            None => mcp_starting(),
        }
    }
}

fn mcp_starting() -> Response {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", "MCP is starting").into_response()
}

/// Accepted `Host` and `Origin` values: the loopback names of the bound address plus the
/// configured extras. Anything else is DNS rebinding or a cross-site page: 403.
struct HostGuard {
    hosts: HashSet<String>,
    origins: HashSet<String>,
}

impl HostGuard {
    fn new(addr: SocketAddr, extra_hosts: &[String], extra_origins: &[String]) -> Self {
        let port = addr.port();
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "[::1]".to_owned()];
        if !addr.ip().is_unspecified() {
            names.push(match addr {
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            });
        }
        let mut hosts: HashSet<String> = names.iter().flat_map(|n| [n.clone(), format!("{n}:{port}")]).collect();
        hosts.extend(extra_hosts.iter().map(|h| h.to_ascii_lowercase()));
        let mut origins: HashSet<String> = names.iter().map(|n| format!("http://{n}:{port}")).collect();
        origins.extend(
            extra_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase()),
        );
        Self { hosts, origins }
    }

    fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_ascii_lowercase);
        if !host.is_some_and(|h| self.hosts.contains(&h)) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "FORBIDDEN_HOST",
                "Host header is not allowed",
            ));
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let ok = origin
                .to_str()
                .is_ok_and(|o| self.origins.contains(&o.to_ascii_lowercase()));
            if !ok {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "FORBIDDEN_ORIGIN",
                    "Origin is not allowed",
                ));
            }
        }
        Ok(())
    }
}

/// Builds the full router for a server bound at `addr`.
pub fn router(service: Arc<Service>, addr: SocketAddr) -> Router {
    build(service, addr).0
}

fn build(service: Arc<Service>, addr: SocketAddr) -> (Router, AppState) {
    let cfg = &service.config().server;
    let guard = Arc::new(HostGuard::new(addr, &cfg.allowed_hosts, &cfg.allowed_origins));
    let max_body = cfg.max_body_bytes;
    let mcp_hosts: Vec<String> = guard.hosts.iter().cloned().collect();
    let mcp_origins: Vec<String> = guard.origins.iter().cloned().collect();
    let state = AppState {
        service,
        guard,
        mcp: Arc::new(std::sync::OnceLock::new()),
    };
    let mut router = Router::new();
    for r in rest::routes() {
        let handler = match r.auth {
            Auth::Public => r.handler,
            Auth::Master => r.handler.route_layer(from_fn_with_state(state.clone(), require_master)),
            Auth::Session => r
                .handler
                .route_layer(from_fn_with_state(state.clone(), require_session)),
            Auth::SessionOrMaster => r
                .handler
                .route_layer(from_fn_with_state(state.clone(), require_session_or_master)),
            Auth::SessionMasterOrOwner => r.handler.route_layer(from_fn_with_state(state.clone(), require_any)),
            Auth::Owner => r.handler.route_layer(axum::middleware::from_fn(require_owner)),
        };
        router = router.route(r.path, handler);
    }
    let app = router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(from_fn_with_state(state.clone(), guard_and_headers))
        .with_state(state.clone());
    // The MCP tools call this same router in process (never `/mcp` itself).
    let mut cfg = rmcp::transport::streamable_http_server::StreamableHttpServerConfig::default();
    cfg.allowed_hosts = mcp_hosts;
    cfg.allowed_origins = mcp_origins;
    cfg.max_request_body_bytes = max_body;
    let streamable_stop = cfg.cancellation_token.clone();
    let host = format!("127.0.0.1:{}", addr.port());
    let sse = SseSessions::new(app.clone(), host.clone(), max_body);
    let rest = app.clone();
    let streamable = McpService::new(
        move || {
            Ok(BursarMcp::new(Backend::Daemon {
                rest: rest.clone(),
                host: host.clone(),
            }))
        },
        Default::default(),
        cfg,
    );
    let _ = state.mcp.set(Mcp {
        streamable,
        sse,
        streamable_stop,
    });
    (app, state)
}

async fn guard_and_headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut res = match state.guard.check(req.headers()) {
        Ok(()) => next.run(req).await,
        Err(err) => err.into_response(),
    };
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    res
}

async fn require_master(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let presented = req.headers().get("x-master-password").map(|v| v.as_bytes().to_vec());
    // The peer address keys the failure delay; in-process calls (MCP tools) have none.
    let source = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    match state.service.authenticate_master(presented.as_deref(), source).await {
        Ok(auth) => {
            req.extensions_mut().insert(auth);
            next.run(req).await
        }
        Err(err) => ApiError::from(err).into_response(),
    }
}

async fn require_session(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let result = match token {
        Some(token) => state.service.authenticate_session(token.trim()),
        None => Err(ServiceError::Unauthenticated(
            "Authorization: Bearer <session token> header missing",
        )),
    };
    match result {
        Ok(auth) => {
            req.extensions_mut().insert(auth);
            next.run(req).await
        }
        Err(err) => ApiError::from(err).into_response(),
    }
}

/// A session token if one is presented, otherwise the master password.
async fn require_session_or_master(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.headers().contains_key(header::AUTHORIZATION) {
        require_session(State(state), req, next).await
    } else {
        require_master(State(state), req, next).await
    }
}

/// Owner headers if present (the use case verifies them), else a session token, else the
/// master password.
async fn require_any(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.headers().contains_key("x-owner-message") || req.headers().contains_key("x-owner-signature") {
        require_owner(req, next).await
    } else {
        require_session_or_master(State(state), req, next).await
    }
}

/// Owner routes: the headers must be present and well-formed here; the use case verifies the
/// signature against the exact action, wallet and transaction.
async fn require_owner(mut req: Request, next: Next) -> Response {
    match owner_proof(req.headers()) {
        Ok(Some(proof)) => {
            req.extensions_mut().insert(proof);
            next.run(req).await
        }
        Ok(None) => ApiError::from(ServiceError::Unauthenticated(
            "X-Owner-Message and X-Owner-Signature headers missing",
        ))
        .into_response(),
        Err(err) => err.into_response(),
    }
}

/// Reads `X-Owner-Message` (base64 of the exact text) and `X-Owner-Signature` (hex or
/// base58). `None` when neither is present.
pub(super) fn owner_proof(headers: &HeaderMap) -> Result<Option<crate::service::OwnerProof>, ApiError> {
    use base64::Engine;
    let (message, signature) = match (headers.get("x-owner-message"), headers.get("x-owner-signature")) {
        (None, None) => return Ok(None),
        (Some(m), Some(s)) => (m, s),
        _ => {
            return Err(ServiceError::Unauthenticated("X-Owner-Message and X-Owner-Signature go together").into());
        }
    };
    let malformed = |what: &str| ApiError::from(ServiceError::OwnerRejected(format!("{what} is malformed")));
    let limit = crate::owner::MAX_MESSAGE_BYTES * 4 / 3 + 4;
    if message.len() > limit {
        return Err(malformed("X-Owner-Message (too long)"));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(message.as_bytes())
        .map_err(|_| malformed("X-Owner-Message (not base64)"))?;
    let message = String::from_utf8(bytes).map_err(|_| malformed("X-Owner-Message (not UTF-8)"))?;
    let signature = signature
        .to_str()
        .ok()
        .filter(|s| s.len() <= 256)
        .ok_or_else(|| malformed("X-Owner-Signature"))?;
    let signature = crate::owner::decode_signature(signature)
        .map_err(|e| ApiError::from(ServiceError::OwnerRejected(e.to_string())))?;
    Ok(Some(crate::service::OwnerProof { message, signature }))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "method not allowed on this route",
    )
}

/// Serves until SIGINT, SIGTERM or `POST /v1/admin/shutdown`.
pub async fn serve(service: Arc<Service>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    // Reconcile in-flight transfers before taking new ones: a SIGNED transaction from before
    // a crash must reach the chain before its nonce could be handed out again.
    service.tick().await;
    tokio::spawn(service.clone().run_workers());
    service.start_notifications();
    tokio::spawn({
        let service = service.clone();
        async move { service.refresh_prices().await }
    });
    tokio::spawn(service.clone().run_retention());
    let (app, state) = build(service.clone(), addr);
    let stopping = service.clone();
    // Small JSON-RPC and REST answers on keep-alive connections: without TCP_NODELAY, Nagle
    // plus the client's delayed ACK adds ~40 ms to a reply that follows another.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
                _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
                _ = stopping.shutdown_requested() => tracing::info!("shutdown requested over the API"),
            }
            // Open event streams never end on their own: end them, or shutdown waits forever.
            if let Some(mcp) = state.mcp.get() {
                mcp.sse.close_all();
                mcp.streamable_stop.cancel();
            }
        })
        .await?;
    service.drain_notifications(NOTIFICATION_SHUTDOWN_GRACE).await;
    Ok(())
}

/// How long a stopping daemon waits for queued notifications (a dead sink costs no more).
const NOTIFICATION_SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

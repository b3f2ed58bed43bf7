//! The HTTP server: one axum router for every surface (REST, MCP over streamable HTTP and
//! legacy SSE), auth middleware per route from the route table, `Host`/`Origin` validation and
//! security headers on every response, body limits, request timeouts, JSON 404/405, and
//! graceful shutdown. Sockets (header-read timeout, connection cap) are `listen`'s.

use super::dto::ErrorCode;
use super::error::ApiError;
use super::extract::owner_proof;
use super::listen;
use super::mcp::{Backend, BursarMcp};
use super::mcp_http::{McpHttp, McpLimits, McpService};
use super::mcp_sse::SseSessions;
use super::rest::{self, Auth};
use super::state::{AppState, HostGuard, Mcp, OpenApi};
use crate::service::{Service, ServiceError};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Builds the full router for a server bound at `addr`.
pub fn router(service: Arc<Service>, addr: SocketAddr) -> Router {
    build(service, addr).0
}

fn build(service: Arc<Service>, addr: SocketAddr) -> (Router, AppState) {
    let cfg = &service.config().server;
    let guard = Arc::new(HostGuard::new(addr, &cfg.allowed_hosts, &cfg.allowed_origins));
    let max_body = cfg.max_body_bytes;
    let request_timeout = Duration::from_secs(cfg.request_timeout_seconds);
    let mcp_limits = McpLimits {
        per_session: cfg.max_mcp_sessions_per_session,
        total: cfg.max_mcp_sessions,
        idle: Duration::from_secs(cfg.mcp_session_idle_seconds),
        body_timeout: request_timeout,
        max_body,
    };
    let state = AppState {
        service,
        guard,
        mcp: Arc::new(std::sync::OnceLock::new()),
        openapi: Arc::new(OpenApi {
            make: super::openapi::document,
            body: std::sync::OnceLock::new(),
        }),
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
            Auth::Metrics => r
                .handler
                .route_layer(from_fn_with_state(state.clone(), require_metrics)),
        };
        // Outermost, so auth counts towards the deadline too.
        let handler = if r.streams {
            handler
        } else {
            handler.route_layer(from_fn_with_state(request_timeout, deadline))
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
    // `guard_and_headers` checks Host and Origin on every request before any route, `/mcp`
    // included, with the rules above; rmcp's own check would only disagree on ports.
    cfg = cfg.disable_allowed_hosts().disable_allowed_origins();
    cfg.max_request_body_bytes = max_body;
    let streamable_stop = cfg.cancellation_token.clone();
    let host = format!("127.0.0.1:{}", addr.port());
    let sse = SseSessions::new(app.clone(), host.clone(), max_body);
    let rest = app.clone();
    let sessions = McpHttp::session_manager(&mcp_limits);
    let streamable = McpService::new(
        move || {
            Ok(BursarMcp::new(Backend::Daemon {
                rest: rest.clone(),
                host: host.clone(),
            }))
        },
        sessions.clone(),
        cfg,
    );
    let _ = state.mcp.set(Mcp {
        streamable: McpHttp::new(streamable, sessions, mcp_limits),
        sse,
        streamable_stop,
    });
    (app, state)
}

/// The request timeout of every route but the event streams. The handler runs in its own
/// task and is never cut short (a transfer half-way through signing must not be dropped on
/// the floor); past the deadline the client gets 503 `TIMEOUT` and the work finishes
/// behind it. A handler that panics answers 500 instead of dropping the connection.
async fn deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let mut work = tokio::spawn(next.run(req));
    match tokio::time::timeout(limit, &mut work).await {
        Ok(Ok(res)) => res,
        Ok(Err(err)) => {
            tracing::error!(%method, path = path.as_deref().unwrap_or(""), error = %err, "request handler failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "internal error; see the daemon log",
            )
            .into_response()
        }
        Err(_) => {
            tracing::warn!(%method, path = path.as_deref().unwrap_or(""), seconds = limit.as_secs(), "request timed out");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Timeout,
                format!(
                    "no answer within {} s (server.request_timeout_seconds); what the request started may \
                     still complete: check its state before retrying",
                    limit.as_secs()
                ),
            )
            .into_response()
        }
    }
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

/// `GET /metrics`, as `[metrics] access` says: a loopback peer, the scrape token, the master
/// password, or nobody.
async fn require_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    use crate::config::MetricsAccess;
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    match state.service.config().metrics.access {
        MetricsAccess::Master => return require_master(State(state), req, next).await,
        MetricsAccess::Token => {
            let presented = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if !presented.is_some_and(|t| state.service.check_metrics_token(t.trim().as_bytes())) {
                return ApiError::from(ServiceError::Unauthenticated(
                    "Authorization: Bearer <metrics token> missing or wrong",
                ))
                .into_response();
            }
        }
        access => {
            if let Some(refused) = metrics_gate(access, peer) {
                return refused.into_response();
            }
        }
    }
    next.run(req).await
}

/// The peer rule of `[metrics] access` for `loopback` and `off` (an in-process call has no
/// peer and is refused).
fn metrics_gate(access: crate::config::MetricsAccess, peer: Option<std::net::IpAddr>) -> Option<ApiError> {
    use crate::config::MetricsAccess;
    match access {
        MetricsAccess::Off => Some(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such route",
        )),
        MetricsAccess::Loopback if !peer.is_some_and(|ip| ip.to_canonical().is_loopback()) => Some(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "metrics are served to loopback peers only ([metrics] access = \"loopback\"); use access = \"token\" behind a port mapping",
        )),
        _ => None,
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

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
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
    tokio::spawn(service.clone().run_daily_summary());
    tokio::spawn(reload_on_sighup(service.clone()));
    let (app, state) = build(service.clone(), addr);
    let cfg = &service.config().server;
    let limits = listen::Limits {
        header_read_timeout: Duration::from_secs(cfg.header_read_timeout_seconds),
        max_connections: cfg.max_connections,
    };
    let stopping = service.clone();
    let shutdown = async move {
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
    };
    listen::serve(listener, app, limits, shutdown).await;
    service.drain_notifications(NOTIFICATION_SHUTDOWN_GRACE).await;
    Ok(())
}

/// SIGHUP: re-read the secrets that live in files named by the config (notification
/// senders, the metrics token) without a restart. A file that cannot be read leaves the
/// current secrets in place (logged and audited, never the secret).
async fn reload_on_sighup(service: Arc<Service>) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hup) => hup,
        Err(err) => {
            tracing::error!(error = %err, "cannot listen for SIGHUP; secrets reload only at restart");
            return;
        }
    };
    while hup.recv().await.is_some() {
        match service.reload_secrets() {
            Ok(reloaded) => tracing::info!(secrets = ?reloaded, "SIGHUP: secrets re-read"),
            Err(err) => tracing::error!(error = %err, "SIGHUP: secrets not re-read; the current ones stay"),
        }
    }
}

/// How long a stopping daemon waits for queued notifications (a dead sink costs no more).
const NOTIFICATION_SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

#[cfg(test)]
mod tests {
    #[test]
    fn metrics_go_to_loopback_peers_only_unless_configured_otherwise() {
        use crate::config::MetricsAccess::{Loopback, Master, Off, Token};
        let ip = |s: &str| Some(s.parse::<std::net::IpAddr>().unwrap());
        for peer in [ip("127.0.0.1"), ip("127.8.9.10"), ip("::1"), ip("::ffff:127.0.0.1")] {
            assert!(super::metrics_gate(Loopback, peer).is_none(), "{peer:?}");
        }
        // A container's published port, the LAN, an in-process call: refused.
        for peer in [
            ip("10.88.0.1"),
            ip("192.168.1.5"),
            ip("::ffff:10.0.0.1"),
            ip("fe80::1"),
            None,
        ] {
            let refused = super::metrics_gate(Loopback, peer).expect("refused");
            assert_eq!(refused.status.as_u16(), 403, "{peer:?}");
        }
        assert_eq!(super::metrics_gate(Off, ip("127.0.0.1")).unwrap().status.as_u16(), 404);
        // Token and master are checked by their credential, from any peer.
        assert!(super::metrics_gate(Token, ip("10.88.0.1")).is_none());
        assert!(super::metrics_gate(Master, None).is_none());
    }
}

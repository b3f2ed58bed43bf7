//! The state every handler shares: the service, the `Host`/`Origin` guard and the MCP
//! transports (set once the router they call into exists). A leaf of `api`: the router
//! (`server`), the routes (`rest`) and the pages (`page`) import it, it imports none of them.

use super::dto::ErrorCode;
use super::error::ApiError;
use super::mcp_http::McpHttp;
use super::mcp_sse::SseSessions;
use crate::service::{Service, SessionAuth};
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub service: Arc<Service>,
    pub(super) guard: Arc<HostGuard>,
    /// The MCP services; set once the router they call into exists.
    pub(super) mcp: Arc<std::sync::OnceLock<Mcp>>,
    pub(super) openapi: Arc<OpenApi>,
}

/// `GET /openapi.json`: the document made by `make` (the router names
/// [`super::openapi::document`]) on first request, then served from memory.
pub(super) struct OpenApi {
    pub(super) make: fn() -> Result<serde_json::Value, String>,
    pub(super) body: std::sync::OnceLock<Option<axum::body::Bytes>>,
}

/// MCP over HTTP: streamable HTTP (`/mcp`, rmcp's service) and legacy SSE (`/sse` +
/// `/message`, our adapter onto rmcp).
pub(super) struct Mcp {
    pub(super) streamable: McpHttp,
    pub(super) sse: Arc<SseSessions>,
    /// Cancelled at shutdown: ends every streamable HTTP session and its open GET stream.
    pub(super) streamable_stop: tokio_util::sync::CancellationToken,
}

impl AppState {
    /// The OpenAPI document as JSON (500 if the route table and its documentation disagree,
    /// which the schema test rules out).
    pub(super) fn openapi(&self) -> Response {
        let body = self.openapi.body.get_or_init(|| match (self.openapi.make)() {
            Ok(doc) => serde_json::to_vec_pretty(&doc).ok().map(Into::into),
            Err(err) => {
                tracing::error!(%err, "the OpenAPI document cannot be made");
                None
            }
        });
        match body {
            Some(body) => ([(header::CONTENT_TYPE, "application/json")], body.clone()).into_response(),
            None => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "internal error; see the daemon log",
            )
            .into_response(),
        }
    }

    /// Hands an authenticated `/mcp` request to rmcp's streamable HTTP service (through the
    /// session binding and caps of `mcp_http`).
    pub(super) async fn mcp(&self, auth: &SessionAuth, req: Request) -> Response {
        match self.mcp.get() {
            Some(mcp) => mcp.streamable.handle(auth, req).await,
            None => mcp_starting(),
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

    /// Whether `headers` carry an `Origin` of this very daemon as the browser reached it: the
    /// origin's authority is the request's `Host` (a page the daemon served), or the origin
    /// is one the operator listed (a reverse proxy may rewrite `Host`). For the approval
    /// page's own POSTs: a page on another port of localhost passes the guard, not this.
    pub(super) fn same_origin(&self, headers: &HeaderMap) -> bool {
        let text = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_ascii_lowercase)
        };
        let (Some(origin), Some(host)) = (text(header::ORIGIN), text(header::HOST)) else {
            return false;
        };
        let origin = origin.trim_end_matches('/');
        if self.guard.extra_origins.contains(origin) {
            return true;
        }
        ["http://", "https://"]
            .iter()
            .any(|scheme| origin.strip_prefix(scheme) == Some(host.as_str()))
    }
}

fn mcp_starting() -> Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Unavailable,
        "MCP is starting",
    )
    .into_response()
}

/// Accepted `Host` and `Origin` values. DNS-rebinding protection needs the host *name* to be
/// ours, not the port: published through a container or a port forward, the daemon is
/// reached on another port than it binds. So the loopback names (and the bound address) are
/// accepted on any port, as are their `http://` origins; `server.allowed_hosts` entries
/// match their port if they name one (any port otherwise) and `server.allowed_origins`
/// entries match exactly. Anything else is DNS rebinding or a cross-site page: 403.
pub(super) struct HostGuard {
    /// Host names (lower case; IPv6 in brackets) accepted on any port, as hosts and as
    /// `http://` origins.
    names: HashSet<String>,
    /// `server.allowed_hosts`, lower case: `host` (any port) or `host:port`.
    extra_hosts: HashSet<String>,
    /// `server.allowed_origins`, lower case, without a trailing `/`.
    extra_origins: HashSet<String>,
}

impl HostGuard {
    pub(super) fn new(addr: SocketAddr, extra_hosts: &[String], extra_origins: &[String]) -> Self {
        let mut names: HashSet<String> = ["localhost", "127.0.0.1", "[::1]"].map(str::to_owned).into();
        if !addr.ip().is_unspecified() {
            names.insert(match addr {
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            });
        }
        Self {
            names,
            extra_hosts: extra_hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            extra_origins: extra_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        let Some(name) = authority_name(&host) else {
            return false;
        };
        self.names.contains(name) || self.extra_hosts.contains(&host) || self.extra_hosts.contains(name)
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        if self.extra_origins.contains(&origin) {
            return true;
        }
        origin
            .strip_prefix("http://")
            .and_then(authority_name)
            .is_some_and(|name| self.names.contains(name))
    }

    pub(super) fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        if !host.is_some_and(|h| self.host_allowed(h)) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::ForbiddenHost,
                "Host header is not allowed",
            ));
        }
        if let Some(origin) = headers.get(header::ORIGIN)
            && !origin.to_str().is_ok_and(|o| self.origin_allowed(o))
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::ForbiddenOrigin,
                "Origin is not allowed",
            ));
        }
        Ok(())
    }
}

/// The host name of a `host[:port]` authority (lower case in, lower case out; IPv6 keeps its
/// brackets), or `None` when it is not one: user info, a path, an empty or non-numeric port.
fn authority_name(authority: &str) -> Option<&str> {
    let (name, port) = match authority.strip_prefix('[') {
        Some(rest) => authority.split_at(rest.find(']')? + 2),
        None => authority.split_at(authority.rfind(':').unwrap_or(authority.len())),
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok());
    let name_ok = match name.strip_prefix('[') {
        Some(ip) => ip
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok()),
        None => {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        }
    };
    (port_ok && name_ok).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::HostGuard;

    /// (value, accepted) for `Host` and `Origin` against a guard bound on port 3100 with one
    /// extra host on any port, one on a fixed port, and one extra origin.
    fn check(hosts: &[(&str, bool)], origins: &[(&str, bool)]) {
        let guard = HostGuard::new(
            "127.0.0.1:3100".parse().unwrap(),
            &["Wallet.Example".to_owned(), "proxy.example:8443".to_owned()],
            &["https://Wallet.Example/".to_owned()],
        );
        for (host, want) in hosts {
            assert_eq!(guard.host_allowed(host), *want, "Host {host}");
        }
        for (origin, want) in origins {
            assert_eq!(guard.origin_allowed(origin), *want, "Origin {origin}");
        }
    }

    #[test]
    fn loopback_names_on_any_port_extras_as_configured() {
        check(
            &[
                ("127.0.0.1:3100", true),
                ("127.0.0.1:3197", true),
                ("localhost", true),
                ("LocalHost:1", true),
                ("[::1]:8080", true),
                ("wallet.example:443", true),
                ("proxy.example:8443", true),
                ("proxy.example:8444", false),
                ("proxy.example", false),
                ("evil.example:3100", false),
                ("localhost.evil.example", false),
                ("127.0.0.1.nip.io:3100", false),
                ("localhost:", false),
                ("localhost:x", false),
                ("user@localhost:3100", false),
                ("localhost/x", false),
                ("", false),
            ],
            &[
                ("http://localhost:3197", true),
                ("http://127.0.0.1", true),
                ("http://[::1]:3100", true),
                ("https://wallet.example", true),
                ("http://wallet.example", false),
                ("https://localhost:3100", false),
                ("http://localhost:3100/", false),
                ("http://evil.example:3100", false),
                ("null", false),
            ],
        );
    }
}

//! MCP over the legacy HTTP+SSE transport (protocol 2024-11-05), for agent hosts that have not
//! moved to streamable HTTP. rmcp removed its SSE server, so this is only an adapter onto
//! rmcp's generic [`Transport`]: `GET /sse` opens an event stream whose first event
//! (`endpoint`) names `/message?sessionId=…`; each `POST` there goes to an rmcp service over a
//! channel, and the service's messages go out as `message` events. No protocol logic here.
//!
//! Auth: both routes are `Auth::Session` in the route table, so the bearer token is checked on
//! every request. A POST must also come from the bursar session that opened the stream: the
//! MCP session id only routes messages, it never authenticates. Each tool call forwards the
//! POST's own `Authorization` to its REST call, so revoking or expiring the token stops the
//! next call at once. Closing the stream drops the rmcp service.

use super::dto::ErrorCode;
use super::error::ApiError;
use super::mcp::{Backend, BursarMcp};
use crate::domain::SessionId;
use crate::service::SessionAuth;
use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rmcp::RoleServer;
use rmcp::model::{ClientJsonRpcMessage, GetExtensions};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Open streams at once, over all sessions: each holds an rmcp service and a connection.
pub const MAX_STREAMS: usize = 64;
/// Open streams at once per bursar session (an agent host reconnecting needs a few).
pub const MAX_STREAMS_PER_SESSION: usize = 8;
/// A comment line this often keeps proxies from closing an idle stream and tells us when
/// the client has gone.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The open `/sse` streams, by MCP session id.
pub struct SseSessions {
    streams: Mutex<HashMap<String, Stream>>,
    /// The in-process REST router the tools call (never `/sse` itself).
    rest: Router,
    host: String,
    max_body: usize,
    /// Set at shutdown: every stream ends, so graceful shutdown does not wait on them.
    closing: watch::Sender<bool>,
}

struct Stream {
    /// The bursar session whose token opened the stream; only it may post to it.
    owner: SessionId,
    inbox: mpsc::Sender<ClientJsonRpcMessage>,
}

impl SseSessions {
    pub fn new(rest: Router, host: String, max_body: usize) -> Arc<Self> {
        Arc::new(Self {
            streams: Mutex::new(HashMap::new()),
            rest,
            host,
            max_body,
            closing: watch::channel(false).0,
        })
    }

    /// Ends every stream (daemon shutdown).
    pub fn close_all(&self) {
        self.closing.send_replace(true);
    }

    /// `GET /sse`: a new MCP session bound to the caller's bursar session.
    pub fn open(self: &Arc<Self>, auth: &SessionAuth, headers: &HeaderMap) -> Response {
        let wants_sse = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("text/event-stream"));
        if !wants_sse {
            return ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                ErrorCode::NotAcceptable,
                "GET /sse opens an event stream: send Accept: text/event-stream",
            )
            .into_response();
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (inbox, inbox_rx) = mpsc::channel(32);
        let (out, out_rx) = mpsc::channel::<Bytes>(32);
        {
            let mut streams = self.streams.lock().expect("sse lock");
            let mine = streams.values().filter(|s| s.owner == auth.session_id).count();
            if streams.len() >= MAX_STREAMS || mine >= MAX_STREAMS_PER_SESSION {
                return ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::TooManyStreams,
                    "too many open MCP event streams; close one first",
                )
                .into_response();
            }
            streams.insert(
                id.clone(),
                Stream {
                    owner: auth.session_id,
                    inbox,
                },
            );
        }
        let endpoint = format!("event: endpoint\ndata: /message?sessionId={id}\n\n");
        // The channel is new and empty: this cannot fail.
        let _ = out.try_send(Bytes::from(endpoint));
        tokio::spawn(self.clone().run(id.clone(), inbox_rx, out));
        tracing::debug!(session = %auth.session_id, "MCP SSE stream opened");
        let body = SseBody {
            rx: out_rx,
            _close: CloseOnDrop {
                sessions: self.clone(),
                id,
            },
        };
        let mut res = Body::new(body).into_response();
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
        res
    }

    /// `POST /message?sessionId=…`: one JSON-RPC message for the stream's rmcp service; the
    /// answer arrives on the stream. 202 once queued.
    pub async fn message(&self, auth: &SessionAuth, req: Request) -> Response {
        let (parts, body) = req.into_parts();
        let Some(id) = parts
            .uri
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("sessionId=")))
        else {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidInput,
                "sessionId query parameter missing (it comes from the stream's endpoint event)",
            )
            .into_response();
        };
        // An unknown id and another session's id look the same: the id is not a secret
        // worth probing, but there is no reason to confirm it exists either.
        let inbox = {
            let streams = self.streams.lock().expect("sse lock");
            streams
                .get(id)
                .filter(|s| s.owner == auth.session_id)
                .map(|s| s.inbox.clone())
        };
        let Some(inbox) = inbox else {
            return not_found();
        };
        let is_json = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("application/json")
            });
        if !is_json {
            return ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "Content-Type must be application/json",
            )
            .into_response();
        }
        let Ok(bytes) = axum::body::to_bytes(body, self.max_body).await else {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                format!("message larger than {} bytes", self.max_body),
            )
            .into_response();
        };
        let mut message: ClientJsonRpcMessage = match serde_json::from_slice(&bytes) {
            Ok(m) => m,
            Err(e) => {
                return ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidInput,
                    crate::domain::sanitize::chain_string(&format!("not a JSON-RPC message: {e}"), 300),
                )
                .into_response();
            }
        };
        // The tools read the caller's `Authorization` from here, as on `/mcp`.
        match &mut message {
            ClientJsonRpcMessage::Request(r) => {
                r.request.extensions_mut().insert(parts);
            }
            ClientJsonRpcMessage::Notification(n) => {
                n.notification.extensions_mut().insert(parts);
            }
            _ => {}
        }
        match inbox.send(message).await {
            Ok(()) => (StatusCode::ACCEPTED, "Accepted").into_response(),
            Err(_) => not_found(),
        }
    }

    /// Serves one stream until the client goes, the service ends or the daemon stops.
    async fn run(self: Arc<Self>, id: String, inbox: mpsc::Receiver<ClientJsonRpcMessage>, out: mpsc::Sender<Bytes>) {
        let server = BursarMcp::new(Backend::Daemon {
            rest: self.rest.clone(),
            host: self.host.clone(),
        });
        let transport = ChannelTransport {
            inbox,
            out: out.clone(),
        };
        let serve = async move {
            match rmcp::ServiceExt::serve(server, transport).await {
                Ok(running) => {
                    let _ = running.waiting().await;
                }
                Err(e) => tracing::debug!(error = %e, "MCP SSE session ended before initialize"),
            }
        };
        let keep_alive = async {
            loop {
                tokio::time::sleep(KEEP_ALIVE).await;
                if out.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                    break;
                }
            }
        };
        let mut closing = self.closing.subscribe();
        tokio::select! {
            () = serve => {}
            () = keep_alive => {}
            _ = closing.wait_for(|c| *c) => {}
        }
        self.remove(&id);
        tracing::debug!("MCP SSE stream closed");
    }

    fn remove(&self, id: &str) {
        if self.streams.lock().expect("sse lock").remove(id).is_some() {
            crate::memory::release_soon();
        }
    }
}

fn not_found() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        "no open MCP stream with this sessionId for this session; open GET /sse again",
    )
    .into_response()
}

/// rmcp's side of a stream: messages from POSTs in, SSE `message` events out.
struct ChannelTransport {
    inbox: mpsc::Receiver<RxJsonRpcMessage<RoleServer>>,
    out: mpsc::Sender<Bytes>,
}

impl Transport<RoleServer> for ChannelTransport {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let out = self.out.clone();
        async move {
            // One line of JSON: serde_json never emits a newline without pretty printing.
            let json = serde_json::to_string(&item).map_err(std::io::Error::other)?;
            out.send(Bytes::from(format!("event: message\ndata: {json}\n\n")))
                .await
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "SSE stream closed"))
        }
    }

    fn receive(&mut self) -> impl Future<Output = Option<RxJsonRpcMessage<RoleServer>>> + Send {
        self.inbox.recv()
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// The response body of `GET /sse`. Dropped when the client disconnects: that unregisters
/// the stream, which closes the service's inbox and so ends the rmcp service.
struct SseBody {
    rx: mpsc::Receiver<Bytes>,
    _close: CloseOnDrop,
}

impl HttpBody for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|b| b.map(|b| Ok(http_body::Frame::data(b))))
    }
}

struct CloseOnDrop {
    sessions: Arc<SseSessions>,
    id: String,
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.sessions.remove(&self.id);
    }
}

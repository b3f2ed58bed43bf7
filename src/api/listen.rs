//! The accept loop: HTTP/1 connections with a header-read timeout, a cap on open connections
//! that closes idle ones first, `TCP_NODELAY`, `ConnectInfo`, and graceful shutdown. Owns
//! sockets only; what a request means is the router's business.
//!
//! Why not `axum::serve`: it sets no timer, so hyper applies no header-read timeout and a
//! connection that never finishes its headers (slowloris) stays open forever; and it accepts
//! without limit. Here:
//!
//! - a connection must deliver complete headers within `header_read_timeout` of the server
//!   waiting for them (also between keep-alive requests), or hyper closes it;
//! - at most `max_connections` are open. At the cap, a new connection closes the one that
//!   has been idle longest — stalled before its headers or between requests, nothing in
//!   flight — so stalled connections can never keep a real client out. Only when every open
//!   connection is busy with a request does accepting pause (the kernel queues the rest).

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

/// Request headers larger than this close the connection (hyper answers 431): bounds what a
/// stalled connection can make us buffer.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Connection limits, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `app` on `listener` until `shutdown` completes, then lets every connection finish
/// its in-flight requests (idle ones close at once) and returns when all are closed.
pub async fn serve(listener: TcpListener, app: Router, limits: Limits, shutdown: impl Future<Output = ()>) {
    raise_fd_limit(limits.max_connections.saturating_add(FDS_BESIDES_CONNECTIONS));
    let conns = Arc::new(Conns::new(limits.max_connections));
    let stopping = CancellationToken::new();
    // Every connection task holds a receiver; `closed()` resolves when the last one ends.
    let (all_closed, task_alive) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(&err).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small JSON-RPC and REST answers on keep-alive connections: without TCP_NODELAY,
        // Nagle plus the client's delayed ACK adds ~40 ms to a reply that follows another.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
        let conn = tokio::select! {
            conn = conns.admit() => conn,
            () = &mut shutdown => break,
        };
        let task = Connection {
            app: app.clone(),
            remote,
            conn,
            conns: conns.clone(),
            limits,
            stopping: stopping.clone(),
            _alive: task_alive.clone(),
        };
        tokio::spawn(task.run(tcp));
    }
    drop(listener);
    drop(task_alive);
    stopping.cancel();
    all_closed.closed().await;
}

/// File descriptors the daemon needs besides client connections: the store, logs, the
/// chains' and notifiers' HTTP clients.
const FDS_BESIDES_CONNECTIONS: usize = 256;

/// Lifts the soft open-file limit towards the hard one so that `want` descriptors fit: many
/// systems start processes with a soft limit of 1,024, below `max_connections` plus the rest.
fn raise_fd_limit(want: usize) {
    let want = libc::rlim_t::try_from(want).unwrap_or(libc::rlim_t::MAX);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a local struct; no other preconditions.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    if !ok || lim.rlim_cur >= want {
        return;
    }
    let raised = libc::rlimit {
        rlim_cur: want.min(lim.rlim_max),
        rlim_max: lim.rlim_max,
    };
    // SAFETY: as above; raising the soft limit up to the hard one needs no privilege.
    let applied = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0;
    let now = if applied { raised.rlim_cur } else { lim.rlim_cur };
    if now < want {
        tracing::warn!(
            open_files = now,
            wanted = want,
            "the open-file limit is below server.max_connections plus what the daemon needs; \
             raise it (ulimit -n) or lower max_connections"
        );
    }
}

/// `accept` failed. Out of file descriptors (or memory) is the one that repeats at once: back
/// off a little rather than spin. A client that gave up before we accepted is routine.
async fn accept_failed(err: &std::io::Error) {
    use std::io::ErrorKind as K;
    if matches!(
        err.kind(),
        K::ConnectionAborted | K::ConnectionReset | K::ConnectionRefused | K::Interrupted
    ) {
        return;
    }
    tracing::warn!(error = %err, "accepting a connection failed; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// The open connections, for the cap.
struct Conns {
    max: usize,
    started: Instant,
    open: Mutex<Open>,
    /// A connection closed or went idle: a paused accept loop may go on.
    freed: Notify,
}

#[derive(Default)]
struct Open {
    next_id: u64,
    by_id: HashMap<u64, Arc<ConnState>>,
}

struct ConnState {
    id: u64,
    /// Requests whose response has not been completely sent (or dropped).
    in_flight: AtomicUsize,
    /// When it last went idle (or was accepted), in ms since `Conns::started`.
    idle_since_ms: AtomicU64,
    /// Cancelled to close the connection at once (it was the idlest one at the cap).
    evict: CancellationToken,
}

impl Conns {
    fn new(max: usize) -> Self {
        Self {
            max,
            started: Instant::now(),
            open: Mutex::new(Open::default()),
            freed: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A slot for a new connection: a free one, or the idlest connection's (closed now), or
    /// — when every connection is busy — the first one that frees up.
    async fn admit(&self) -> Arc<ConnState> {
        loop {
            if let Some(conn) = self.try_admit() {
                return conn;
            }
            // `notify_one` stores a permit when nobody waits: no wake-up is lost between
            // `try_admit` and here.
            self.freed.notified().await;
        }
    }

    fn try_admit(&self) -> Option<Arc<ConnState>> {
        let mut open = self.open.lock().expect("connections lock");
        if open.by_id.len() >= self.max {
            let idlest = open
                .by_id
                .values()
                .filter(|c| c.in_flight.load(Ordering::Acquire) == 0)
                .min_by_key(|c| c.idle_since_ms.load(Ordering::Relaxed))
                .map(|c| c.id);
            let victim = idlest.and_then(|id| open.by_id.remove(&id))?;
            victim.evict.cancel();
            tracing::debug!(max = self.max, "connection cap reached: closed the idlest connection");
        }
        open.next_id += 1;
        let conn = Arc::new(ConnState {
            id: open.next_id,
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(self.now_ms()),
            evict: CancellationToken::new(),
        });
        open.by_id.insert(conn.id, conn.clone());
        Some(conn)
    }

    fn remove(&self, id: u64) {
        let removed = self.open.lock().expect("connections lock").by_id.remove(&id);
        if removed.is_some() {
            self.freed.notify_one();
        }
    }
}

/// One accepted connection's task.
struct Connection {
    app: Router,
    remote: SocketAddr,
    conn: Arc<ConnState>,
    conns: Arc<Conns>,
    limits: Limits,
    stopping: CancellationToken,
    _alive: watch::Receiver<()>,
}

impl Connection {
    async fn run(self, tcp: tokio::net::TcpStream) {
        let Self {
            app,
            remote,
            conn,
            conns,
            limits,
            stopping,
            _alive,
        } = self;
        let service = {
            let (conn, conns) = (conn.clone(), conns.clone());
            hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(remote));
                let busy = Busy::new(conn.clone(), conns.clone());
                let res = tower::ServiceExt::oneshot(app.clone(), req.map(Body::new));
                async move {
                    let res = match res.await {
                        Ok(res) => res,
                        Err(never) => match never {},
                    };
                    // The connection stays busy until the whole response is sent: an open
                    // event stream is a busy connection, never an idle one.
                    Ok::<_, Infallible>(res.map(|body| Body::new(Tracked { body, _busy: busy })))
                }
            })
        };
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_header_size(MAX_HEADER_BYTES);
        let served = http.serve_connection(TokioIo::new(tcp), service);
        let mut served = std::pin::pin!(served);
        let mut draining = false;
        loop {
            tokio::select! {
                result = served.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(error = %err, "connection ended with an error");
                    }
                    break;
                }
                () = stopping.cancelled(), if !draining => {
                    draining = true;
                    served.as_mut().graceful_shutdown();
                }
                // Dropping the connection closes the socket.
                () = conn.evict.cancelled() => break,
            }
        }
        conns.remove(conn.id);
    }
}

/// Marks its connection busy while a request is in flight.
struct Busy {
    conn: Arc<ConnState>,
    conns: Arc<Conns>,
}

impl Busy {
    fn new(conn: Arc<ConnState>, conns: Arc<Conns>) -> Self {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        Self { conn, conns }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.conn.idle_since_ms.store(self.conns.now_ms(), Ordering::Relaxed);
        if self.conn.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.conns.freed.notify_one();
        }
    }
}

/// A response body that keeps its connection marked busy until it is done or dropped.
struct Tracked {
    body: Body,
    _busy: Busy,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

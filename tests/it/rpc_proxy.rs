//! A hostile JSON-RPC node for tests: a loopback HTTP proxy in front of anvil that, per
//! method, forwards, stalls (accepts and answers only once released), answers a fixed result
//! of its own, or forwards and then answers an error as if it had not.

use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Rules {
    stalled: HashSet<String>,
    error_after_forward: HashSet<String>,
    answers: HashMap<String, Value>,
}

struct Shared {
    upstream: String,
    rules: Mutex<Rules>,
    /// Bumped whenever the stalled set changes: stalled requests re-check on it.
    changed: tokio::sync::watch::Sender<u64>,
    /// How many requests each method got.
    seen: Mutex<HashMap<String, usize>>,
}

pub struct RpcProxy {
    pub url: String,
    shared: Arc<Shared>,
}

impl RpcProxy {
    pub async fn start(upstream: &str) -> Self {
        let shared = Arc::new(Shared {
            upstream: upstream.to_owned(),
            rules: Mutex::new(Rules::default()),
            changed: tokio::sync::watch::channel(0).0,
            seen: Mutex::new(HashMap::new()),
        });
        let app = axum::Router::new().route("/", post(handle)).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, shared }
    }

    /// Requests for `method` get no answer until [`RpcProxy::release`].
    pub fn stall(&self, method: &str) {
        self.shared.rules.lock().unwrap().stalled.insert(method.to_owned());
        self.shared.changed.send_modify(|n| *n += 1);
    }

    pub fn release(&self, method: &str) {
        self.shared.rules.lock().unwrap().stalled.remove(method);
        self.shared.changed.send_modify(|n| *n += 1);
    }

    /// `method` reaches the node, but the caller is told it failed.
    pub fn error_after_forward(&self, method: &str) {
        self.shared
            .rules
            .lock()
            .unwrap()
            .error_after_forward
            .insert(method.to_owned());
    }

    /// `method` is answered with `result` by the proxy itself.
    pub fn answer(&self, method: &str, result: Value) {
        self.shared
            .rules
            .lock()
            .unwrap()
            .answers
            .insert(method.to_owned(), result);
    }

    pub fn clear(&self) {
        *self.shared.rules.lock().unwrap() = Rules::default();
        self.shared.changed.send_modify(|n| *n += 1);
    }

    pub fn seen(&self, method: &str) -> usize {
        self.shared.seen.lock().unwrap().get(method).copied().unwrap_or(0)
    }
}

async fn handle(State(shared): State<Arc<Shared>>, body: String) -> axum::response::Response {
    let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let method = request["method"].as_str().unwrap_or_default().to_owned();
    *shared.seen.lock().unwrap().entry(method.clone()).or_default() += 1;
    let mut changed = shared.changed.subscribe();
    while shared.rules.lock().unwrap().stalled.contains(&method) {
        if changed.changed().await.is_err() {
            break;
        }
    }
    let (answer, error_after) = {
        let rules = shared.rules.lock().unwrap();
        (
            rules.answers.get(&method).cloned(),
            rules.error_after_forward.contains(&method),
        )
    };
    let reply = match answer {
        Some(result) => json!({ "jsonrpc": "2.0", "id": request["id"], "result": result }).to_string(),
        None => {
            let forwarded = crate::harness::http()
                .post(&shared.upstream)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            let text = match forwarded {
                Ok(res) => res.text().await.unwrap_or_default(),
                Err(_) => return axum::http::StatusCode::BAD_GATEWAY.into_response(),
            };
            if error_after {
                json!({ "jsonrpc": "2.0", "id": request["id"], "error": { "code": -32603, "message": "internal error" } })
                    .to_string()
            } else {
                text
            }
        }
    };
    ([(axum::http::header::CONTENT_TYPE, "application/json")], reply).into_response()
}

use axum::response::IntoResponse;

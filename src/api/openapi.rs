//! The OpenAPI 3.1 description of the REST API, generated: method, path and auth come from
//! [`rest::routes`] (the router's own table), everything else from one [`Doc`] entry per route
//! in [`docs`] (summary, body, query, success response as schemars schemas of the wire types).
//! Error responses are derived: every route can answer 403 (Host/Origin guard), 500 and 503
//! (request timeout, MCP starting); a route with credentials 401; master routes 429; a JSON
//! body 400/413/415; a query or path parameter 400; a path parameter 404; plus the statuses
//! an entry lists.
//!
//! `schemas/openapi.json` is [`document`], golden-tested by `tests/it/schemas.rs`, which also
//! fails when a route has no entry here or an entry names no route. Adding a route is one line
//! in `routes()` and one entry in [`docs`]; a new [`Auth`] kind does not compile until
//! [`security`] maps it (the `owner` schemes are already declared).

use super::dto;
use super::rest::{self, Auth};
use axum::http::Method;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// The documentation of one route.
pub struct Doc {
    pub method: Method,
    pub path: &'static str,
    id: &'static str,
    summary: &'static str,
    description: Option<&'static str>,
    body: Option<SchemaFn>,
    query: Option<SchemaFn>,
    success: Success,
    errors: &'static [u16],
    /// The success response carries the `X-Next-Before` cursor of a paged listing.
    paged: bool,
}

enum Success {
    Json {
        status: u16,
        schema: SchemaFn,
    },
    /// MCP over streamable HTTP: JSON-RPC, answered as JSON or as an SSE stream.
    Mcp,
    /// An HTML page (the owner's approval page).
    Html,
    /// Prometheus text (`/metrics`).
    Prometheus,
    /// Bytes (`/v1/admin/backup`: the encrypted archive).
    Binary,
}

fn subschema<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

fn inline<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    T::json_schema(g)
}

fn op(id: &'static str, method: Method, path: &'static str, summary: &'static str) -> Doc {
    Doc {
        method,
        path,
        id,
        summary,
        description: None,
        body: None,
        query: None,
        success: Success::Json {
            status: 200,
            schema: subschema::<dto::Ok>,
        },
        errors: &[],
        paged: false,
    }
}

impl Doc {
    fn body<T: JsonSchema>(mut self) -> Self {
        self.body = Some(subschema::<T>);
        self
    }

    fn query<T: JsonSchema>(mut self) -> Self {
        self.query = Some(inline::<T>);
        self
    }

    fn ok<T: JsonSchema>(mut self) -> Self {
        self.success = Success::Json {
            status: 200,
            schema: subschema::<T>,
        };
        self
    }

    fn created<T: JsonSchema>(mut self) -> Self {
        self.success = Success::Json {
            status: 201,
            schema: subschema::<T>,
        };
        self
    }

    fn mcp(mut self) -> Self {
        self.success = Success::Mcp;
        self
    }

    fn binary(mut self) -> Self {
        self.success = Success::Binary;
        self
    }

    fn prometheus(mut self) -> Self {
        self.success = Success::Prometheus;
        self
    }

    fn html(mut self) -> Self {
        self.success = Success::Html;
        self
    }

    fn describe(mut self, text: &'static str) -> Self {
        self.description = Some(text);
        self
    }

    /// A paged listing: the body is the page, the next page's cursor is a header.
    fn paged(mut self) -> Self {
        self.paged = true;
        self
    }

    /// Statuses this route answers besides the derived ones (see the module docs).
    fn errors(mut self, statuses: &'static [u16]) -> Self {
        self.errors = statuses;
        self
    }
}

const MCP: &str = "The MCP streamable HTTP transport (protocol in the MCP specification; tools in \
    schemas/mcp-tools.json). The bearer token, Host and Origin are checked before MCP sees the request \
    (401/403 with the uniform error body); the MCP layer's own refusals (e.g. 400, 404 for an unknown \
    session, 406 without a suitable Accept header) follow the MCP specification instead.";

/// One entry per route of [`rest::routes`].
pub fn docs() -> Vec<Doc> {
    use Method as M;
    vec![
        op("health", M::GET, "/health", "Liveness").ok::<dto::Health>(),
        op("openapi", M::GET, "/openapi.json", "This document")
            .describe("The OpenAPI 3.1 description of this API, as `schemas/openapi.json` in the repository.")
            .ok::<serde_json::Value>(),
        op("metrics", M::GET, "/metrics", "Operational metrics (Prometheus text format)")
            .describe(
                "Transfers by state, policy decisions by tier, RPC calls, latency and errors per chain, failed \
                 authentications, audit writes, notification queues. No secret, no address. Who may read it is \
                 `[metrics] access`: loopback peers (default), the scrape token, the master password, or nobody (404).",
            )
            .prometheus()
            .errors(&[404]),
        op("wallet_create", M::POST, "/v1/wallets", "Create a wallet")
            .describe("One wallet is one new key on one configured chain. The key never leaves the daemon.")
            .body::<dto::CreateWallet>()
            .created::<dto::Wallet>(),
        op("wallet_list", M::GET, "/v1/wallets", "List wallets").ok::<Vec<dto::Wallet>>(),
        op("wallet_show", M::GET, "/v1/wallets/{id}", "Show a wallet").ok::<dto::Wallet>(),
        op("session_create", M::POST, "/v1/sessions", "Create an agent session")
            .describe("Issues a bearer token bound to one wallet, bounded by TTL, renewals and an absolute lifetime.")
            .body::<dto::CreateSession>()
            .created::<dto::SessionToken>()
            .errors(&[404]),
        op("session_list", M::GET, "/v1/sessions", "List sessions")
            .query::<dto::SessionFilter>()
            .ok::<Vec<dto::Session>>(),
        op("session_revoke", M::DELETE, "/v1/sessions/{id}", "Revoke a session")
            .describe("The token stops working at once, on REST and MCP alike.")
            .ok::<dto::Session>(),
        op("session_renew", M::PUT, "/v1/sessions/{id}/renew", "Renew the calling session")
            .describe("Issues a new token; the old one stops working at once. A session can renew only itself.")
            .ok::<dto::SessionToken>(),
        op("wallet_address", M::GET, "/v1/wallet/address", "The session's wallet address").ok::<dto::WalletAddress>(),
        op("wallet_balance", M::GET, "/v1/wallet/balance", "The session's wallet balance")
            .describe("Native asset, or an ERC-20 token with `token`. Base units and the human amount, never a float.")
            .query::<dto::BalanceQuery>()
            .ok::<dto::BalanceDto>()
            .errors(&[501, 502]),
        op("audit_list", M::GET, "/v1/audit", "List audit entries")
            .describe("Newest entries first selected, listed oldest first. Page back with `before` = the `X-Next-Before` header.")
            .query::<dto::AuditQuery>()
            .ok::<Vec<dto::AuditEntry>>()
            .paged(),
        op("audit_verify", M::GET, "/v1/audit/verify", "Verify the audit chain")
            .describe("Recomputes every entry's HMAC (legacy entries: SHA-256) and link up to the stored head; `firstBadSeq` names the first entry that does not verify.")
            .ok::<dto::AuditVerification>(),
        op("admin_status", M::GET, "/v1/admin/status", "Daemon status").ok::<dto::Status>(),
        op("admin_shutdown", M::POST, "/v1/admin/shutdown", "Stop the daemon gracefully"),
        op("admin_backup", M::POST, "/v1/admin/backup", "An encrypted backup of the whole store")
            .describe(
                "A consistent snapshot (writers wait while it is read), sealed with Argon2id (the configured cost) and \
                 AES-256-GCM under the master password or the given passphrase. `bursar backup restore` reads it.",
            )
            .body::<dto::BackupRequest>()
            .binary(),
        op("admin_set_master", M::PUT, "/v1/admin/master-password", "Change the master password")
            .describe("Re-seals every key and stored secret under the new password in one atomic commit.")
            .body::<dto::SetMaster>()
            .ok::<dto::SetMasterResult>(),
        op(
            "admin_rotate_session_secret",
            M::POST,
            "/v1/admin/rotate-session-secret",
            "Rotate the session signing secret",
        )
        .describe("Every issued session token stops working."),
        op("wallet_set_owner", M::PUT, "/v1/wallets/{id}/owner", "Register the wallet's owner")
            .describe("The owner is in state GRACE until their first valid signature, then LOCKED.")
            .body::<dto::SetOwner>()
            .ok::<dto::Wallet>()
            .errors(&[409]),
        op("policy_add", M::POST, "/v1/policies", "Add a policy to a wallet")
            .describe("Unknown types or rule fields are refused with 400, never ignored.")
            .body::<dto::CreatePolicy>()
            .created::<dto::PolicyDto>()
            .errors(&[404]),
        op("policy_list", M::GET, "/v1/policies", "List policies")
            .query::<dto::SessionFilter>()
            .ok::<Vec<dto::PolicyDto>>(),
        op("policy_remove", M::DELETE, "/v1/policies/{id}", "Remove a policy").ok::<dto::PolicyDto>(),
        op("tx_send", M::POST, "/v1/transactions/send", "Send funds under the wallet's policies")
            .describe(
                "200 with the transaction: CONFIRMED (or SUBMITTED while confirming) for INSTANT and NOTIFY, \
                 DELAYED with `executesAt`, PENDING_APPROVAL, or FAILED. A denial is 403 POLICY_DENIED with the \
                 reasons and the recorded transaction in `error.details.transaction`. Reuse `idempotencyKey` on \
                 retry: the same key never pays twice.",
            )
            .body::<dto::Transfer>()
            .ok::<dto::Transaction>()
            .errors(&[409, 422, 429, 501, 502]),
        op("tx_check", M::POST, "/v1/transactions/check", "Dry-run a transfer")
            .describe("The tier it would get (or the denial), the reasons, the rule trace and the spend so far. Signs and reserves nothing.")
            .body::<dto::Transfer>()
            .ok::<dto::Check>()
            .errors(&[501, 502]),
        op("tx_list", M::GET, "/v1/transactions", "List the wallet's transactions")
            .describe("Newest first. Page back with `before` = the `X-Next-Before` header; each page reads only itself.")
            .query::<dto::TxQuery>()
            .ok::<Vec<dto::Transaction>>()
            .paged(),
        op("tx_show", M::GET, "/v1/transactions/{id}", "Show one of the wallet's transactions").ok::<dto::Transaction>(),
        op("admin_tx_speed_up", M::POST, "/v1/admin/transactions/{id}/speed-up", "Replace a stuck signed transfer with higher fees")
            .describe("Signs a replacement at the same nonce with both fees at least 10% higher (within the chain's caps), records both hashes and confirms whichever is mined. The fee increase counts against the budgets. 409 unless SIGNED or SUBMITTED.")
            .ok::<dto::Transaction>()
            .errors(&[404, 409, 422, 502]),
        op("admin_tx_cancel_onchain", M::POST, "/v1/admin/transactions/{id}/cancel-onchain", "Use a stuck transfer's nonce for a zero-value self-transfer")
            .describe("Signs a zero-value transfer to the wallet itself at the same nonce with higher fees. If it is the one mined, the transfer ends FAILED with its budget released (but for the fee paid); if the transfer is mined first, it ends CONFIRMED. 409 unless SIGNED or SUBMITTED.")
            .ok::<dto::Transaction>()
            .errors(&[404, 409, 422, 502]),
        op("tx_cancel", M::POST, "/v1/transactions/{id}/cancel", "Cancel a DELAYED or PENDING_APPROVAL transfer")
            .describe("Only before it is signed; 409 otherwise. The agent cancels its own wallet's transfers (bearer token), the operator any wallet's (master password), the owner its wallet's with a signed `cancel` message (`X-Owner-Message` / `X-Owner-Signature`, from `approval-message?action=cancel`).")
            .ok::<dto::Transaction>()
            .errors(&[409]),
        op("wallet_policies", M::GET, "/v1/wallet/policies", "The session's wallet policies (read-only)")
            .ok::<Vec<dto::PolicyDto>>(),
        op("mcp_post", M::POST, "/mcp", "MCP (streamable HTTP): send a JSON-RPC message")
            .describe(MCP)
            .mcp(),
        op("mcp_get", M::GET, "/mcp", "MCP (streamable HTTP): open the server-to-client SSE stream")
            .describe(MCP)
            .mcp(),
        op("mcp_delete", M::DELETE, "/mcp", "MCP (streamable HTTP): end the MCP session")
            .describe(MCP)
            .mcp(),
        op("mcp_sse", M::GET, "/sse", "MCP legacy HTTP+SSE: open the event stream")
            .describe("The first event, `endpoint`, names the `/message?sessionId=…` URL to POST to; the stream belongs to the session that opened it.")
            .mcp(),
        op("mcp_message", M::POST, "/message", "MCP legacy HTTP+SSE: send a JSON-RPC message to an open stream")
            .describe("Needs a token of the same session that opened the stream; unknown or foreign streams are 404.")
            .mcp(),
        op("owner_nonce", M::GET, "/v1/nonce", "A single-use nonce for an owner message (5 minutes)")
            .ok::<dto::Nonce>()
            .errors(&[429]),
        op("tx_approval_message", M::GET, "/v1/transactions/{id}/approval-message", "The exact message the owner signs to approve (or `?action=reject`) a PENDING_APPROVAL transfer")
            .query::<dto::ActionQuery>()
            .ok::<dto::OwnerMessage>()
            .errors(&[409, 429]),
        op("tx_approve", M::POST, "/v1/transactions/{id}/approve", "Approve with the owner's signature: policy re-checked, then signed and sent")
            .ok::<dto::Transaction>()
            .errors(&[409, 423]),
        op("tx_reject", M::POST, "/v1/transactions/{id}/reject", "Reject with the owner's signature: REJECTED, nothing signed")
            .ok::<dto::Transaction>()
            .errors(&[409]),
        op("wallet_owner_message", M::GET, "/v1/wallets/{id}/owner/message", "The exact message for an owner connect, disconnect or kill-switch action")
            .query::<dto::ActionQuery>()
            .ok::<dto::OwnerMessage>()
            .errors(&[409]),
        op("wallet_remove_owner", M::DELETE, "/v1/wallets/{id}/owner", "Remove an owner still in GRACE (a LOCKED one: 403)")
            .ok::<dto::Wallet>(),
        op("owner_connect", M::POST, "/v1/owner/connect", "The registered owner proves control: GRACE → LOCKED").ok::<dto::Wallet>(),
        op("owner_disconnect", M::POST, "/v1/owner/disconnect", "The owner removes itself").ok::<dto::Wallet>(),
        op("owner_kill_switch", M::POST, "/v1/owner/kill-switch", "The owner freezes its wallet")
            .ok::<dto::KillSwitchReport>(),
        op("admin_kill_switch", M::POST, "/v1/admin/kill-switch", "Freeze (`on: true`) or lift one wallet or all")
            .describe("Freezing revokes every session, cancels what is not signed and refuses to sign. Lifting a wallet whose owner is LOCKED also needs that owner's `X-Owner-Message` / `X-Owner-Signature` over a `kill-switch-off` message (403 without).")
            .body::<dto::KillSwitch>()
            .ok::<Vec<dto::KillSwitchReport>>(),
        op("admin_kill_switch_status", M::GET, "/v1/admin/kill-switch", "Frozen wallets").ok::<Vec<dto::Wallet>>(),
        op("approval_page", M::GET, "/approve/{id}", "The owner's approval page (HTML; signs with a browser wallet)")
            .describe("Shows the transfer, the reasons and the approve message as it will read; takes no owner nonce.")
            .html(),
        op("approval_page_message", M::POST, "/approve/{id}/message", "The approval page's message to sign, with a fresh nonce")
            .describe("For the page's own Sign button: refused (403) without an `Origin` of this daemon as the browser reached it.")
            .query::<dto::ActionQuery>()
            .ok::<dto::OwnerMessage>()
            .errors(&[409, 429]),
        op("panic_page", M::GET, "/owner/{id}", "The owner's panic page (HTML; freezes the wallet with the owner's signature)")
            .describe("Shows whether the wallet is frozen and the transfers waiting for its owner; takes no owner nonce.")
            .html(),
        op("panic_page_message", M::POST, "/owner/{id}/message", "The panic page's kill-switch-on message to sign, with a fresh nonce")
            .describe("For the page's own button: refused (403) without an `Origin` of this daemon as the browser reached it.")
            .ok::<dto::OwnerMessage>()
            .errors(&[409, 429]),
    ]
}

/// The security requirement of an auth kind. Exhaustive on purpose: a new kind needs a line.
pub fn security(auth: Auth) -> Value {
    match auth {
        Auth::Public => json!([]),
        Auth::Master => json!([{ "master": [] }]),
        Auth::Session => json!([{ "session": [] }]),
        Auth::SessionOrMaster => json!([{ "session": [] }, { "master": [] }]),
        Auth::SessionMasterOrOwner => json!([
            { "session": [] },
            { "master": [] },
            { "ownerMessage": [], "ownerSignature": [] }
        ]),
        Auth::Owner => json!([{ "ownerMessage": [], "ownerSignature": [] }]),
        // Loopback peers need none; otherwise the scrape token or the master password, as
        // `[metrics] access` says.
        Auth::Metrics => json!([{}, { "metricsToken": [] }, { "master": [] }]),
    }
}

/// Routes without a [`Doc`] and docs without a route, as `"METHOD /path"`.
pub fn coverage() -> (Vec<String>, Vec<String>) {
    let key = |m: &Method, p: &str| format!("{m} {p}");
    let routes: BTreeSet<String> = rest::routes().iter().map(|r| key(&r.method, r.path)).collect();
    let docs: BTreeSet<String> = docs().iter().map(|d| key(&d.method, d.path)).collect();
    (
        routes.difference(&docs).cloned().collect(),
        docs.difference(&routes).cloned().collect(),
    )
}

/// (status, component name, description) of every error response.
const ERRORS: &[(u16, &str, &str)] = &[
    (
        400,
        "BadRequest",
        "`INVALID_INPUT`: a malformed body, query or path, or a value the domain refuses; the message names the field.",
    ),
    (
        401,
        "Unauthorized",
        "`UNAUTHENTICATED` (missing or wrong credential), `SESSION_INVALID`, `SESSION_EXPIRED`, `SESSION_REVOKED`, \
         `OWNER_REJECTED` (an owner message or signature that does not verify for this action).",
    ),
    (
        403,
        "Forbidden",
        "`FORBIDDEN_HOST` / `FORBIDDEN_ORIGIN` (the Host/Origin guard), `FORBIDDEN` (authenticated but not allowed), \
         `RENEWALS_EXHAUSTED`, `POLICY_DENIED` (with `error.details.transaction`: the recorded transaction, its reasons \
         and rule trace).",
    ),
    (404, "NotFound", "`NOT_FOUND`: no such object (or not this session's)."),
    (
        409,
        "Conflict",
        "`CONFLICT`: the object is not in a state that allows this (e.g. already signed), or the idempotency key was used \
         for a different transfer.",
    ),
    (
        413,
        "PayloadTooLarge",
        "`PAYLOAD_TOO_LARGE`: the body exceeds `[server] max_body_bytes`.",
    ),
    (
        415,
        "UnsupportedMediaType",
        "`UNSUPPORTED_MEDIA_TYPE`: the body must be `application/json`.",
    ),
    (
        422,
        "UnprocessableEntity",
        "`CHAIN_REJECTED`: the node refused the signed transaction.",
    ),
    (
        423,
        "Locked",
        "`WALLET_FROZEN`: the kill switch or AutoStop holds the wallet; nothing is signed until it is lifted.",
    ),
    (
        429,
        "TooManyRequests",
        "`RATE_LIMITED`: too many failed master-password attempts in the last minute, or a bounded resource is \
         full (outstanding owner nonces, open MCP sessions); the message says which. `TOO_MANY_OPEN` (send): the \
         wallet already has `[transfers] max_open_per_wallet` transfers that are not final; nothing was stored.",
    ),
    (
        500,
        "InternalError",
        "`INTERNAL`: a generic message; the detail is in the daemon log, never in the answer.",
    ),
    (
        501,
        "NotImplemented",
        "`NOT_SUPPORTED`: not available for this chain kind yet.",
    ),
    (
        502,
        "BadGateway",
        "`CHAIN_UNAVAILABLE`: the chain's node is unreachable or reports another chain id.",
    ),
    (
        503,
        "ServiceUnavailable",
        "`TIMEOUT`: no answer within `[server] request_timeout_seconds` (what the request started may still \
         complete: check before retrying); `UNAVAILABLE`: MCP is still starting.",
    ),
];

fn error_ref(status: u16) -> Value {
    let (_, name, _) = ERRORS
        .iter()
        .find(|(s, _, _)| *s == status)
        .unwrap_or_else(|| panic!("no error response for status {status}"));
    json!({ "$ref": format!("#/components/responses/{name}") })
}

fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

fn tag(path: &str) -> &'static str {
    let mut segs = path.trim_start_matches('/').split('/');
    match (segs.next(), segs.next()) {
        (Some("health"), _) => "health",
        (Some("mcp"), _) => "mcp",
        (Some("v1"), Some("wallets" | "wallet")) => "wallets",
        (Some("v1"), Some("sessions")) => "sessions",
        (Some("v1"), Some("policies")) => "policies",
        (Some("v1"), Some("transactions")) => "transactions",
        (Some("v1"), Some("audit")) => "audit",
        (Some("v1"), Some("admin")) => "admin",
        _ => "other",
    }
}

/// Query parameters from an inline object schema: one parameter per property.
fn query_params(schema: &Schema) -> Vec<Value> {
    let required: BTreeSet<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(name, prop)| {
            let mut prop = prop.clone();
            let description = prop.as_object_mut().and_then(|p| p.remove("description"));
            // A query string has no null: an optional parameter is simply absent.
            if let Some(types) = prop["type"].as_array() {
                let types: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
                prop["type"] = if types.len() == 1 {
                    types[0].clone()
                } else {
                    Value::Array(types)
                };
            }
            if let Some(Value::Array(values)) = prop.get_mut("enum") {
                values.retain(|v| !v.is_null());
            }
            let mut param = json!({
                "name": name, "in": "query", "required": required.contains(name.as_str()), "schema": prop,
            });
            if let Some(d) = description {
                param["description"] = d;
            }
            param
        })
        .collect()
}

fn mcp_operation(method: &Method) -> Value {
    let session_id = json!({
        "name": "Mcp-Session-Id", "in": "header", "required": false, "schema": { "type": "string" },
        "description": "The MCP session id from the `initialize` answer; required after it. Never authentication: \
                        the bearer token is checked on every request."
    });
    let jsonrpc = json!({ "type": "object", "description": "A JSON-RPC 2.0 message (MCP)." });
    let responses = match *method {
        Method::POST => json!({
            "200": { "description": "The JSON-RPC response, as JSON or as an SSE stream.", "content": {
                "application/json": { "schema": jsonrpc },
                "text/event-stream": { "schema": { "type": "string" } } } },
            "202": { "description": "A notification or response was accepted." },
        }),
        Method::GET => json!({
            "200": { "description": "Server-to-client messages.",
                     "content": { "text/event-stream": { "schema": { "type": "string" } } } },
        }),
        _ => json!({ "200": { "description": "The MCP session is closed." } }),
    };
    let body = (*method == Method::POST)
        .then(|| json!({ "required": true, "content": { "application/json": { "schema": jsonrpc } } }));
    let mut op = json!({ "parameters": [session_id], "responses": responses });
    if let Some(body) = body {
        op["requestBody"] = body;
    }
    op
}

/// The OpenAPI 3.1 document, or the routes and docs that do not match.
pub fn document() -> Result<Value, String> {
    let (undocumented, unrouted) = coverage();
    if !undocumented.is_empty() || !unrouted.is_empty() {
        return Err(format!(
            "routes without an OpenAPI entry in src/api/openapi.rs: {undocumented:?}; entries without a route: {unrouted:?}"
        ));
    }
    let settings = |contract: fn(SchemaSettings) -> SchemaSettings| {
        contract(SchemaSettings::draft2020_12().with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        }))
    };
    // Requests are described as they are parsed, answers as they are written.
    let mut requests = settings(SchemaSettings::for_deserialize).into_generator();
    let mut answers = settings(SchemaSettings::for_serialize).into_generator();
    let docs = docs();
    let mut paths = Map::new();
    for route in rest::routes() {
        let doc = docs
            .iter()
            .find(|d| d.method == route.method && d.path == route.path)
            .expect("coverage checked");
        let mut statuses: BTreeSet<u16> = [403, 500, 503].into();
        if route.auth != Auth::Public {
            statuses.insert(401);
        }
        if route.auth == Auth::Master {
            statuses.insert(429);
        }
        let mut operation = match doc.success {
            Success::Mcp => mcp_operation(&doc.method),
            Success::Binary => json!({ "responses": { "200": { "description": "The encrypted archive.",
                "content": { "application/octet-stream": { "schema": { "type": "string", "contentMediaType": "application/octet-stream" } } } } } }),
            Success::Prometheus => json!({ "responses": { "200": { "description": "The metrics.",
                "content": { "text/plain; version=0.0.4": { "schema": { "type": "string" } } } } } }),
            Success::Html => json!({ "responses": { "200": { "description": "The page.",
                "content": { "text/html": { "schema": { "type": "string" } } } } } }),
            Success::Json { status, schema } => {
                let content = json!({ "application/json": { "schema": schema(&mut answers) } });
                let description = if status == 201 { "Created." } else { "OK." };
                let mut response = json!({ "description": description, "content": content });
                if doc.paged {
                    response["headers"] = json!({ "X-Next-Before": {
                        "description": "The cursor of the next (older) page: pass it as `before`. Absent on the last page.",
                        "schema": { "type": "string" } } });
                }
                json!({ "responses": { status.to_string(): response } })
            }
        };
        let mut params = Vec::new();
        for name in path_params(doc.path) {
            statuses.extend([400, 404]);
            params.push(json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }));
        }
        if let Some(query) = doc.query {
            statuses.insert(400);
            params.extend(query_params(&query(&mut requests)));
        }
        if let Some(body) = doc.body {
            statuses.extend([400, 413, 415]);
            operation["requestBody"] = json!({
                "required": true, "content": { "application/json": { "schema": body(&mut requests) } }
            });
        }
        statuses.extend(doc.errors);
        if !params.is_empty() {
            let existing = operation["parameters"].as_array().cloned().unwrap_or_default();
            operation["parameters"] = Value::Array(params.into_iter().chain(existing).collect());
        }
        for status in statuses {
            operation["responses"][status.to_string()] = error_ref(status);
        }
        operation["operationId"] = json!(doc.id);
        operation["summary"] = json!(doc.summary);
        if let Some(d) = doc.description {
            operation["description"] = json!(d);
        }
        operation["tags"] = json!([tag(doc.path)]);
        operation["security"] = security(route.auth);
        paths
            .entry(doc.path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("path item")
            .insert(route.method.as_str().to_ascii_lowercase(), operation);
    }
    let error_body = answers.subschema_for::<dto::ErrorBody>();
    let mut schemas = requests.take_definitions(true);
    for (name, schema) in answers.take_definitions(true) {
        match schemas.get(&name) {
            Some(existing) if *existing != schema => {
                return Err(format!(
                    "schema {name} differs between requests and answers; give one of them its own type"
                ));
            }
            _ => {
                schemas.insert(name, schema);
            }
        }
    }
    let responses: Map<String, Value> = ERRORS
        .iter()
        .map(|(_, name, description)| {
            let content = json!({ "application/json": { "schema": error_body.clone() } });
            (
                (*name).to_owned(),
                json!({ "description": description, "content": content }),
            )
        })
        .collect();
    Ok(json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "bursar REST API",
            "version": env!("CARGO_PKG_VERSION"),
            "summary": "Self-hosted wallet daemon for AI agents: keys never leave it, policy decides what moves.",
            "description": "JSON with camelCase fields. Every error is `{\"error\":{\"code\",\"message\"}}` \
                (sometimes with `details`), never a stack trace or a secret. Amounts are strings, never floats. \
                Generated from the route table (src/api/rest.rs) and src/api/openapi.rs.",
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" },
        },
        "servers": [{ "url": "http://127.0.0.1:3100", "description": "The default bind (loopback); `BURSAR_URL` for clients." }],
        "tags": [
            { "name": "health" }, { "name": "wallets" }, { "name": "sessions" }, { "name": "policies" },
            { "name": "transactions" }, { "name": "audit" }, { "name": "admin" },
            { "name": "mcp", "description": "MCP over streamable HTTP: the same tools as `bursar mcp`, with the session token." },
        ],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": responses,
            "securitySchemes": {
                "master": { "type": "apiKey", "in": "header", "name": "X-Master-Password",
                    "description": "The operator's master password (checked by HMAC in constant time; failures are rate limited)." },
                "metricsToken": { "type": "http", "scheme": "bearer",
                    "description": "The scrape token from `[metrics] token_file` (only `GET /metrics`, with `[metrics] access = \"token\"`)." },
                "session": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": "An agent session token (HS256 JWT) bound to one wallet; revocable, expiring." },
                "ownerMessage": { "type": "apiKey", "in": "header", "name": "X-Owner-Message",
                    "description": "Owner auth, with `ownerSignature`: base64 of the exact message the daemon handed out (SIWE on EVM)." },
                "ownerSignature": { "type": "apiKey", "in": "header", "name": "X-Owner-Signature",
                    "description": "Owner auth, with `ownerMessage`: the owner's signature of that message (EIP-191 on EVM, Ed25519 on Solana)." },
            },
        },
    }))
}

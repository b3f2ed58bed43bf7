//! The owner's approval page, `GET /approve/{id}`: one self-contained HTML document (no
//! external asset, strict CSP with a per-response nonce) that shows the decoded transaction
//! — the same canonical structure whose digest the message binds — and lets the owner sign
//! the approve or reject message with a browser wallet (`personal_sign` through
//! `window.ethereum`, or `signMessage` through a Phantom-style `window.solana`) and submit it.
//! It embeds no secret: the messages are public, and useless without the owner's key.

use super::dto::{self, OwnerMessage};
use super::server::AppState;
use crate::owner::Action;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const TEMPLATE: &str = include_str!("approve.html");

pub async fn approval_page(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let data = id
        .parse()
        .map_err(|_| (StatusCode::BAD_REQUEST, "This is not a transaction id.".to_owned()))
        .and_then(|id| {
            let message = |action| {
                s.service.approval_message_public(id, action).map_err(|e| {
                    let e = super::error::ApiError::from(e);
                    (e.status, e.message)
                })
            };
            let (approve, reject) = (message(Action::Approve)?, message(Action::Reject)?);
            let kind = s
                .service
                .config()
                .chains
                .get(approve.subject.as_ref().map_or("", |s| s.chain.as_str()))
                .map_or("evm", |c| c.kind.as_str())
                .to_owned();
            Ok(serde_json::json!({
                "kind": kind,
                "owner": approve.owner,
                "amount": approve.amount,
                "reasons": approve.reasons,
                "expiresAt": dto::rfc3339(approve.expires_at),
                "approve": OwnerMessage::from(approve),
                "reject": OwnerMessage::from(reject),
            }))
        });
    let (status, data) = match data {
        Ok(d) => (StatusCode::OK, d),
        Err((status, error)) => (status, serde_json::json!({ "error": error })),
    };
    render(status, &data)
}

fn render(status: StatusCode, data: &serde_json::Value) -> Response {
    let nonce = hex::encode(crate::secret::random_bytes::<16>());
    // JSON inside <script>: no "<", ">" or "&" can end the element or start markup.
    let json = data
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    let html = TEMPLATE.replace("{{NONCE}}", &nonce).replace("{{DATA}}", &json);
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; \
         img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    let mut res = (status, html).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res
}

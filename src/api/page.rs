//! The owner's approval page, `GET /approve/{id}`: one self-contained HTML document (no
//! external asset, strict CSP with a per-response nonce) that shows the decoded transaction
//! — the same canonical structure whose digest the message binds — and lets the owner sign
//! the approve or reject message with a browser wallet (`personal_sign` through
//! `window.ethereum`, or `signMessage` through a Phantom-style `window.solana`) and submit it.
//! It embeds no secret: the messages are public, and useless without the owner's key.
//!
//! Viewing the page spends nothing. The message to sign (with its single-use nonce) is
//! fetched when the owner presses a button, by a same-origin `POST /approve/{id}/message`.

use super::dto::{self, OwnerMessage};
use super::error::ApiError;
use super::rest::{ApiQuery, Id};
use super::server::AppState;
use crate::owner::Action;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const TEMPLATE: &str = include_str!("approve.html");

/// `GET /approve/{id}`: the page, with the transfer, the reasons and the approve message as
/// it will read. Takes no owner nonce: anyone can load this page (a hostile page can make the
/// owner's browser load it a thousand times), so loading it must cost nothing.
pub async fn approval_page(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let data = id
        .parse()
        .map_err(|_| (StatusCode::BAD_REQUEST, "This is not a transaction id.".to_owned()))
        .and_then(|id| {
            let preview = s.service.approval_preview(id).map_err(|e| {
                let e = ApiError::from(e);
                (e.status, e.message)
            })?;
            let kind = s
                .service
                .config()
                .chains
                .get(preview.subject.as_ref().map_or("", |s| s.chain.as_str()))
                .map_or("evm", |c| c.kind.as_str())
                .to_owned();
            Ok(serde_json::json!({
                "kind": kind,
                "owner": preview.owner,
                "amount": preview.amount,
                "reasons": preview.reasons,
                "expiresAt": dto::rfc3339(preview.expires_at),
                "messageUrl": format!("/approve/{id}/message"),
                "preview": OwnerMessage::from(preview),
            }))
        });
    let (status, data) = match data {
        Ok(d) => (StatusCode::OK, d),
        Err((status, error)) => (status, serde_json::json!({ "error": error })),
    };
    render(status, &data)
}

/// `POST /approve/{id}/message?action=approve|reject`: the message to sign, with a fresh
/// single-use nonce, for the page's Sign button. Only from the page itself: the request must
/// carry this daemon's own `Origin` (a browser always sends it on a POST, and a page from
/// anywhere else cannot forge it), so other web pages cannot drain the nonces.
pub async fn approval_page_message(
    State(s): State<AppState>,
    headers: HeaderMap,
    Id(id): Id,
    ApiQuery(q): ApiQuery<dto::ActionQuery>,
) -> Result<Json<OwnerMessage>, ApiError> {
    if !s.same_origin(&headers) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "FORBIDDEN_ORIGIN",
            "only the approval page served by this daemon may ask for its message (Origin missing or foreign)",
        ));
    }
    let id = id.parse().map_err(super::rest::invalid_id)?;
    let action = q.parse(Action::Approve)?;
    Ok(Json(s.service.approval_message_public(id, action)?.into()))
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

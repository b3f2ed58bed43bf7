//! The owner's pages. `GET /approve/{id}?action=approve|reject|cancel`: one self-contained
//! HTML document (no external asset, strict CSP with a per-response nonce) that shows the
//! decoded transaction — the same canonical structure whose digest the message binds — and
//! lets the owner sign the approve, reject or cancel message with a browser wallet
//! (`personal_sign` through `window.ethereum`, or `signMessage` through a Phantom-style
//! `window.solana`) and submit it. `GET /owner/{wallet}`: the panic page, the same way for
//! the wallet's `kill-switch-on` message, with the wallet's public status (frozen or not,
//! transfers waiting for the owner). Both are laid out for a phone first (wallet apps' own
//! browsers) and embed no secret: the messages are public, and useless without the owner's
//! key.
//!
//! Viewing a page spends nothing and changes nothing (the `action` in a link only picks the
//! message shown). The message to sign (with its single-use nonce) is fetched when the
//! owner presses a button, by a same-origin `POST …/message`.

use super::dto::{self, ErrorCode, OwnerMessage};
use super::error::ApiError;
use super::extract::{ApiQuery, Id, invalid_id};
use super::state::AppState;
use crate::owner::Action;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const TEMPLATE: &str = include_str!("approve.html");
const PANIC_TEMPLATE: &str = include_str!("panic.html");
/// Both pages' style sheet and wallet code, inlined (no external asset).
const CSS: &str = include_str!("page.css");
const WALLET_JS: &str = include_str!("owner_wallet.js");

/// The `action` of a page link (`?action=approve`), without a JSON error: the page says it.
fn page_action(query: Option<&str>) -> Result<Action, (StatusCode, String)> {
    let mut action = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == "action" {
            if action.is_some() {
                return Err((
                    StatusCode::BAD_REQUEST,
                    "The link names more than one action.".to_owned(),
                ));
            }
            action = Some(value);
        }
    }
    match action {
        None => Ok(Action::Approve),
        Some(a) => Action::parse(a).filter(|a| a.needs_tx()).ok_or_else(|| {
            (
                StatusCode::BAD_REQUEST,
                "The link's action must be approve, reject or cancel.".to_owned(),
            )
        }),
    }
}

/// `GET /approve/{id}?action=`: the page, with the transfer, the reasons and the message of
/// `action` (approve by default; reject; cancel for a DELAYED transfer) as it will read.
/// Takes no owner nonce and changes nothing: anyone can load this page (a hostile page can
/// make the owner's browser load it a thousand times, a chat app may prefetch a link), so
/// loading it must cost nothing.
pub async fn approval_page(State(s): State<AppState>, Path(id): Path<String>, RawQuery(query): RawQuery) -> Response {
    let data = page_action(query.as_deref())
        .and_then(|action| {
            id.parse()
                .map(|id| (id, action))
                .map_err(|_| (StatusCode::BAD_REQUEST, "This is not a transaction id.".to_owned()))
        })
        .and_then(|(id, action)| {
            let preview = s.service.approval_preview(id, action).map_err(|e| {
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
            // Approve and reject are offered together; cancel (a DELAYED transfer) alone.
            let actions: &[&str] = match action {
                Action::Cancel => &["cancel"],
                Action::Reject => &["reject", "approve"],
                _ => &["approve", "reject"],
            };
            Ok(serde_json::json!({
                "kind": kind,
                "action": action.as_str(),
                "actions": actions,
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
    render(TEMPLATE, status, &data)
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
            ErrorCode::ForbiddenOrigin,
            "only the approval page served by this daemon may ask for its message (Origin missing or foreign)",
        ));
    }
    let id = id.parse().map_err(invalid_id)?;
    let action = q.parse(Action::Approve)?;
    Ok(Json(s.service.approval_message_public(id, action)?.into()))
}

/// `GET /owner/{wallet}`: the panic page. Shows what is safe to show anyone holding the link
/// (see [`crate::service::Service::panic_status`]) and lets the owner sign `kill-switch-on`
/// for this wallet: a tap on the page, a tap in the wallet. Takes no nonce, changes nothing.
pub async fn panic_page(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let data = id
        .parse()
        .map_err(|_| (StatusCode::BAD_REQUEST, "This is not a wallet id.".to_owned()))
        .and_then(|id| {
            let status = s.service.panic_status(id).map_err(|e| {
                let e = ApiError::from(e);
                (e.status, e.message)
            })?;
            let pending: Vec<serde_json::Value> = status
                .pending
                .iter()
                .map(|(tx, state)| {
                    let action = if *state == crate::domain::TxState::Delayed {
                        "cancel"
                    } else {
                        "approve"
                    };
                    serde_json::json!({
                        "id": tx.to_string(),
                        "status": state.to_string(),
                        // Relative: the page of this daemon however the owner reached it.
                        "url": format!("/approve/{tx}?action={action}"),
                    })
                })
                .collect();
            Ok(serde_json::json!({
                "kind": status.kind.as_str(),
                "walletId": status.wallet_id.to_string(),
                "chain": status.chain,
                "owner": status.owner,
                "frozen": status.frozen_since.is_some(),
                "frozenSince": status.frozen_since.map(dto::rfc3339),
                "pending": pending,
                "messageUrl": format!("/owner/{id}/message"),
                "preview": status.preview.map(OwnerMessage::from),
            }))
        });
    let (status, data) = match data {
        Ok(d) => (StatusCode::OK, d),
        Err((status, error)) => (status, serde_json::json!({ "error": error })),
    };
    render(PANIC_TEMPLATE, status, &data)
}

/// `POST /owner/{wallet}/message`: the `kill-switch-on` message to sign, with a fresh
/// single-use nonce, for the panic page's button. Same-origin only, like the approval page's.
pub async fn panic_page_message(
    State(s): State<AppState>,
    headers: HeaderMap,
    Id(id): Id,
) -> Result<Json<OwnerMessage>, ApiError> {
    if !s.same_origin(&headers) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::ForbiddenOrigin,
            "only the panic page served by this daemon may ask for its message (Origin missing or foreign)",
        ));
    }
    let id = id.parse().map_err(invalid_id)?;
    Ok(Json(s.service.panic_message_public(id)?.into()))
}

fn render(template: &str, status: StatusCode, data: &serde_json::Value) -> Response {
    let nonce = hex::encode(crate::secret::random_bytes::<16>());
    // JSON inside <script>: no "<", ">" or "&" can end the element or start markup.
    let json = data
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    // The data last: nothing it holds is read as a placeholder.
    let html = template
        .replace("{{CSS}}", CSS)
        .replace("{{WALLET_JS}}", WALLET_JS)
        .replace("{{NONCE}}", &nonce)
        .replace("{{DATA}}", &json);
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; \
         img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    let mut res = (status, html).into_response();
    let h = res.headers_mut();
    // Neither page may be cached by a proxy or shown stale: the status changes.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res
}

//! Extractors shared by the routes and the pages: JSON bodies and query strings whose
//! rejections are our JSON errors, the `{id}` path segment, and the owner's proof headers.
//! A leaf of `api`, like `state`.

use super::dto::{ApiJsonBody, ErrorCode};
use super::error::ApiError;
use crate::service::ServiceError;
use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, StatusCode, request::Parts};
use serde::de::DeserializeOwned;

pub fn invalid_id(err: crate::domain::DomainError) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidInput, err.to_string())
}

/// Reads `X-Owner-Message` (base64 of the exact text) and `X-Owner-Signature` (hex or
/// base58). `None` when neither is present.
pub fn owner_proof(headers: &HeaderMap) -> Result<Option<crate::service::OwnerProof>, ApiError> {
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

/// `Json<T>` whose rejections are our JSON errors (400/413/415), bounded in length.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + ApiJsonBody> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rej) => {
                let (status, code) = match rej.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge),
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                        (StatusCode::UNSUPPORTED_MEDIA_TYPE, ErrorCode::UnsupportedMediaType)
                    }
                    // Syntax (400) and data (422) errors alike are bad input.
                    _ => (StatusCode::BAD_REQUEST, ErrorCode::InvalidInput),
                };
                let message = if T::ECHO_ERRORS {
                    let text = rej.body_text();
                    let text = text
                        .strip_prefix("Failed to deserialize the JSON body into the target type: ")
                        .unwrap_or(&text);
                    crate::domain::sanitize::chain_string(text, 300)
                } else {
                    "request body is not valid for this route".to_owned()
                };
                Err(ApiError::new(status, code, message))
            }
        }
    }
}

/// Query string with JSON errors.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|rej| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidInput,
                    crate::domain::sanitize::chain_string(&rej.body_text(), 300),
                )
            })
    }
}

/// The single `{id}` path segment.
pub struct Id(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|p| Id(p.0))
            .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidInput, "malformed path"))
    }
}

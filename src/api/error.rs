//! Service errors → HTTP status + `{"error":{"code","message"}}`. Exhaustive: a new error
//! variant does not compile until it has a status. Internal errors get a generic message;
//! the detail goes to the log (which never holds secrets either).

use super::dto::{ErrorBody, ErrorCode};
use crate::chains::ChainError;
use crate::service::ServiceError;
use crate::session::SessionError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    /// A policy denial: 403 with the readable reasons and the recorded transaction.
    pub fn policy_denied(tx: super::dto::Transaction) -> Self {
        let message = format!("denied by policy: {}", tx.reasons.join("; "));
        let details = serde_json::to_value(&tx)
            .ok()
            .map(|t| serde_json::json!({ "transaction": t }));
        Self {
            details,
            ..Self::new(StatusCode::FORBIDDEN, ErrorCode::PolicyDenied, message)
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        use StatusCode as S;
        let msg = err.to_string();
        let (status, code) = match &err {
            ServiceError::Unauthenticated(_) => (S::UNAUTHORIZED, ErrorCode::Unauthenticated),
            ServiceError::WrongPassword => (S::UNAUTHORIZED, ErrorCode::Unauthenticated),
            ServiceError::Session(e) => match e {
                SessionError::Invalid | SessionError::WrongAudience | SessionError::Superseded => {
                    (S::UNAUTHORIZED, ErrorCode::SessionInvalid)
                }
                SessionError::Expired | SessionError::LifetimeExceeded => (S::UNAUTHORIZED, ErrorCode::SessionExpired),
                SessionError::Revoked => (S::UNAUTHORIZED, ErrorCode::SessionRevoked),
                SessionError::RenewalsExhausted(_) => (S::FORBIDDEN, ErrorCode::RenewalsExhausted),
            },
            ServiceError::RateLimited | ServiceError::TooMany(_) => (S::TOO_MANY_REQUESTS, ErrorCode::RateLimited),
            ServiceError::TooManyOpen(_) => (S::TOO_MANY_REQUESTS, ErrorCode::TooManyOpen),
            ServiceError::Forbidden(_) => (S::FORBIDDEN, ErrorCode::Forbidden),
            ServiceError::NotFound(_) => (S::NOT_FOUND, ErrorCode::NotFound),
            ServiceError::InvalidInput(_) => (S::BAD_REQUEST, ErrorCode::InvalidInput),
            ServiceError::InvalidField { field, reason } => {
                let name = rest_field(*field);
                let mut error = Self::new(S::BAD_REQUEST, ErrorCode::InvalidInput, format!("{name}: {reason}"));
                error.details = Some(serde_json::json!({ "field": name, "reason": reason }));
                return error;
            }
            ServiceError::Conflict(_) => (S::CONFLICT, ErrorCode::Conflict),
            ServiceError::OwnerRejected(_) => (S::UNAUTHORIZED, ErrorCode::OwnerRejected),
            ServiceError::Frozen(_) => (S::LOCKED, ErrorCode::WalletFrozen),
            ServiceError::Chain(e) => match e {
                ChainError::Unreachable { .. }
                | ChainError::ChainIdMismatch { .. }
                | ChainError::GenesisMismatch { .. }
                | ChainError::NotAccepted { .. } => (S::BAD_GATEWAY, ErrorCode::ChainUnavailable),
                ChainError::NotAToken(_) | ChainError::InvalidInput(_) => (S::BAD_REQUEST, ErrorCode::InvalidInput),
                ChainError::NotSupported(_) => (S::NOT_IMPLEMENTED, ErrorCode::NotSupported),
                ChainError::Rejected { .. } => (S::UNPROCESSABLE_ENTITY, ErrorCode::ChainRejected),
            },
            ServiceError::NotInitialised(_)
            | ServiceError::Keystore(_)
            | ServiceError::Store(_)
            | ServiceError::Config(_) => {
                tracing::error!(error = %msg, "internal error");
                return Self::new(
                    S::INTERNAL_SERVER_ERROR,
                    ErrorCode::Internal,
                    "internal error; see the daemon log",
                );
            }
        };
        Self::new(status, code, msg)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody::new(self.code, self.message, self.details);
        (self.status, Json(body)).into_response()
    }
}

/// A request field by its name in the REST API (the body's camelCase).
pub fn rest_field(field: crate::service::Field) -> &'static str {
    use crate::service::Field;
    match field {
        Field::To => "to",
        Field::Token => "token",
        Field::Amount => "amount",
        Field::AmountBaseUnits => "amountBaseUnits",
        Field::IdempotencyKey => "idempotencyKey",
    }
}

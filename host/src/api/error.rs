//! The API's one error type: each variant names its HTTP status; the body is always
//! `{"error":{"code","message","details"?}}`. Internal errors are logged and answered with a
//! generic 500 that leaks nothing.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Every error's body.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code (`validation_failed`, `job_not_found`, ...).
    pub code: String,
    pub message: String,
    /// With `validation_failed`: `[{field, problem}]`, one per failing field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed JSON, wrong content type, bad query parameter.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 401: missing or wrong credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: authenticated, but the request lacks what it needs (a session's CSRF token).
    #[error("{0}")]
    Forbidden(String),
    /// 402: the customer's billing limit would be exceeded.
    #[error("{0}")]
    PaymentRequired(String),
    /// 404: no such template, operation or job (another customer's job included).
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// 409: the request conflicts with the resource's state.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 413: the body is over the limit.
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 413: storing this would pass the customer's storage quota.
    #[error("{0}")]
    QuotaExceeded(String),
    /// 422: well-formed but invalid; `details` names each failing field.
    #[error("{message}")]
    Unprocessable { message: String, details: Value },
    /// 429: too many requests; retry after this many seconds.
    #[error("too many job creations: retry after {0} s")]
    TooManyRequests(u64),
    /// 503: the database did not answer this time (a connection cut, a server restarting, busy
    /// past its timeout): retry after a second. A cut during a commit leaves the outcome
    /// unknown, so a create is retried with the same `idempotency_key`.
    #[error("the database is briefly unavailable: retry after 1 s")]
    Unavailable(String),
    /// 500: a host fault (logged, not shown).
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::NotFound { code, message: message.into() }
    }

    pub fn invalid(field: &str, problem: impl Into<String>) -> Self {
        let problem = problem.into();
        Self::Unprocessable {
            message: format!("`{field}` {problem}"),
            details: json!([{ "field": field, "problem": problem }]),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::PaymentRequired(_) => (StatusCode::PAYMENT_REQUIRED, "billing_limit_reached"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound { code, .. } => (StatusCode::NOT_FOUND, code),
            Self::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::QuotaExceeded(_) => (StatusCode::PAYLOAD_TOO_LARGE, "storage_quota_exceeded"),
            Self::Unprocessable { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            Self::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }
}

/// A query string that does not parse is the client's mistake: 400 naming the problem.
impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        Self::BadRequest { code: "invalid_query", message: e.body_text() }
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        // PostgreSQL refuses the NUL character in text (SQLite stores it): text a client sent
        // that no validator caught is the client's to fix, not a server error.
        if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("22021") {
            return Self::BadRequest {
                code: "invalid_text",
                message: "text fields must not contain the NUL character (\\u0000)".into(),
            };
        }
        if crate::db::is_transient(&e) {
            return Self::Unavailable(e.to_string());
        }
        Self::Internal(format!("database: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            Self::Internal(detail) => {
                tracing::error!(error = %detail, "internal error answering a request");
                "something went wrong on our side; it has been logged".to_string()
            }
            other => other.to_string(),
        };
        let details = match &self {
            Self::Unprocessable { details, .. } => Some(details.clone()),
            _ => None,
        };
        let body = ErrorBody { error: ErrorDetail { code: code.to_string(), message, details } };
        let mut response = (status, axum::Json(body)).into_response();
        if let Self::TooManyRequests(secs) = self
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if let Self::Unavailable(detail) = &self {
            tracing::warn!(error = %detail, "the database did not answer a request; told the client to retry");
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DbError;

    fn answered(e: DbError) -> (u16, Option<String>) {
        let response = ApiError::from(e).into_response();
        let retry_after = response.headers().get(header::RETRY_AFTER).map(|v| v.to_str().unwrap_or("?").to_string());
        (response.status().as_u16(), retry_after)
    }

    #[test]
    fn a_database_that_did_not_answer_is_a_503_to_retry_and_a_broken_query_a_500() {
        let cut = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset by peer");
        assert_eq!(answered(DbError::Io(cut)), (503, Some("1".into())));
        assert_eq!(answered(DbError::PoolTimedOut), (503, Some("1".into())));
        assert_eq!(answered(DbError::RowNotFound), (500, None));
        // SQLite busy past its timeout (extended code 261, BUSY_RECOVERY), on the writer thread.
        let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(261), None);
        assert_eq!(answered(crate::db::direct_error(busy)), (503, Some("1".into())));
        let broken = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(1), Some("no such table".into()));
        assert_eq!(answered(crate::db::direct_error(broken)), (500, None));
        assert_eq!(answered(DbError::Protocol("an answer out of turn".into())), (500, None));
    }
}

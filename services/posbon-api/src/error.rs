//! API errors: a status code, a code and a message, answered as the one
//! problem document of every service ([`posbon_auth::http::problem`]).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use posbon_model::TransitionError;

/// An error answered to an HTTP client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable snake_case code.
    pub code: &'static str,
    /// What is wrong, for a person.
    pub message: String,
    /// Seconds after which trying again may work (the `Retry-After` header).
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    /// 400 with `code`.
    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// 503 (the server is at a limit) or 429 (the caller is), with
    /// `Retry-After`.
    pub(crate) fn at_limit(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
        retry_after_secs: u64,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_secs: Some(retry_after_secs),
        }
    }

    /// 404.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// 403: the caller's scope does not include the thing.
    pub(crate) fn out_of_scope(what: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            code: "out_of_scope",
            message: format!("{what} is outside your scope"),
            retry_after_secs: None,
        }
    }

    /// 503: a dependency (store, NATS) failed; retrying later may work.
    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: message.into(),
            retry_after_secs: None,
        }
    }
}

impl From<TransitionError> for ApiError {
    fn from(err: TransitionError) -> Self {
        match err {
            TransitionError::Conflict { .. } => Self {
                status: StatusCode::CONFLICT,
                code: "invalid_transition",
                message: err.to_string(),
                retry_after_secs: None,
            },
            TransitionError::Invalid(message) => Self::bad_request("invalid_action", message),
        }
    }
}

impl From<posbon_store::StoreError> for ApiError {
    fn from(err: posbon_store::StoreError) -> Self {
        tracing::error!(error = %err, "store failed");
        Self::unavailable(format!("store: {err}"))
    }
}

impl From<posbon_bus::BusError> for ApiError {
    fn from(err: posbon_bus::BusError) -> Self {
        tracing::error!(error = %err, "bus failed");
        Self::unavailable(format!("nats: {err}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        posbon_auth::http::problem(self.status, self.code, &self.message, self.retry_after_secs)
    }
}

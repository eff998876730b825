//! The error type of every bus operation.

use std::fmt;

/// What went wrong, coarse enough to decide between "fix the caller" and "try again".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BusErrorKind {
    /// The caller passed something invalid: a subject, token, header, stream or consumer
    /// configuration. Not retryable.
    InvalidInput,
    /// The message is larger than the server accepts. Not retryable.
    PayloadTooLarge,
    /// No stream captures the subject. Retryable: after the streams were ensured at start-up
    /// this means the server is restarting or the stream is being recreated.
    NoStream,
    /// The named stream or consumer does not exist. Not retryable.
    NotFound,
    /// The server refused the request (for example subjects that overlap another stream, or
    /// a consumer setting that cannot be changed). Not retryable.
    Rejected,
    /// The connection is down or JetStream is not ready. Retryable.
    Unavailable,
    /// No answer in time. Retryable; a publish with a `Nats-Msg-Id` can be resent safely.
    Timeout,
    /// The bus or the subscription was closed. Not retryable.
    Closed,
    /// The server refused the operation: this connection's user lacks the
    /// permission. Not retryable.
    Forbidden,
    /// The stream is full and refuses new messages (discard-new): retryable
    /// once its consumers caught up.
    Full,
    /// Anything else (an unexpected response, an internal client error). Retryable.
    Other,
}

impl BusErrorKind {
    /// Whether trying the same operation again later may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::NoStream | Self::Unavailable | Self::Timeout | Self::Full | Self::Other
        )
    }

    /// A stable snake_case name, for metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidInput => "invalid_input",
            Self::PayloadTooLarge => "payload_too_large",
            Self::NoStream => "no_stream",
            Self::NotFound => "not_found",
            Self::Rejected => "rejected",
            Self::Forbidden => "forbidden",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Closed => "closed",
            Self::Full => "full",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for BusErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed bus operation: a [`BusErrorKind`] and a lowercase message that already includes
/// the underlying cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BusError {
    kind: BusErrorKind,
    message: String,
}

impl BusError {
    /// Creates an error of `kind`.
    pub fn new(kind: BusErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// An [`BusErrorKind::InvalidInput`] error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(BusErrorKind::InvalidInput, message)
    }

    /// What went wrong.
    pub fn kind(&self) -> BusErrorKind {
        self.kind
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether trying again later may succeed (see [`BusErrorKind::is_retryable`]).
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}

/// Shorthand for results of bus operations.
pub type BusResult<T> = Result<T, BusError>;

//! [`StoreError`]: what went wrong, and whether trying again can help.

use std::fmt;

/// A boxed error source.
type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What kind of failure a [`StoreError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// An I/O error of the engine (disk, network). Retryable.
    Io,
    /// The operation took too long. Retryable.
    Timeout,
    /// The store cannot serve now (leader election, region moving, busy,
    /// background task gone). Retryable.
    Unavailable,
    /// Stored bytes cannot be decoded: a bug or damage, not worth a retry.
    Corrupt,
    /// The caller asked for something invalid (empty or oversized key,
    /// oversized value). Not retryable.
    InvalidRequest,
    /// The engine failed in a way that needs an operator (a poisoned database
    /// after a failed fsync, a lock held by another process). Not retryable.
    Fatal,
}

impl StoreErrorKind {
    /// True when the same request may succeed if sent again.
    pub const fn is_retryable(self) -> bool {
        matches!(self, Self::Io | Self::Timeout | Self::Unavailable)
    }

    /// A short lowercase name, e.g. `io` or `invalid_request`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Io => "io",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::Corrupt => "corrupt",
            Self::InvalidRequest => "invalid_request",
            Self::Fatal => "fatal",
        }
    }
}

impl fmt::Display for StoreErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error of an [`EventStore`](crate::EventStore) operation.
///
/// Every error has a [`kind`](StoreError::kind); [`is_retryable`](StoreError::is_retryable)
/// tells a consumer whether to let the message be redelivered (retryable) or
/// to dead-letter it.
#[derive(Debug, thiserror::Error)]
#[error("store {kind} error: {message}")]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
    #[source]
    source: Option<Source>,
}

impl StoreError {
    /// An error of `kind` with a lowercase message.
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// An error of `kind` caused by `source`.
    pub fn with_source(
        kind: StoreErrorKind,
        message: impl Into<String>,
        source: impl Into<Source>,
    ) -> Self {
        Self {
            kind,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A [`StoreErrorKind::InvalidRequest`] error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StoreErrorKind::InvalidRequest, message)
    }

    /// A [`StoreErrorKind::Corrupt`] error.
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::new(StoreErrorKind::Corrupt, message)
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// True when the same request may succeed if sent again (I/O, timeouts,
    /// temporary unavailability); false for corrupt data, bad requests and
    /// fatal engine states.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        let kind = match e.kind() {
            std::io::ErrorKind::TimedOut => StoreErrorKind::Timeout,
            std::io::ErrorKind::InvalidData => StoreErrorKind::Corrupt,
            _ => StoreErrorKind::Io,
        };
        Self::with_source(kind, "i/o failed", e)
    }
}

/// Result of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_say_whether_to_retry() {
        assert!(StoreError::new(StoreErrorKind::Io, "x").is_retryable());
        assert!(StoreError::new(StoreErrorKind::Timeout, "x").is_retryable());
        assert!(StoreError::new(StoreErrorKind::Unavailable, "x").is_retryable());
        assert!(!StoreError::corrupt("x").is_retryable());
        assert!(!StoreError::invalid("x").is_retryable());
        assert!(!StoreError::new(StoreErrorKind::Fatal, "x").is_retryable());
        assert_eq!(
            StoreError::invalid("empty key").to_string(),
            "store invalid_request error: empty key"
        );
        let timeout = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
        assert_eq!(StoreError::from(timeout).kind(), StoreErrorKind::Timeout);
    }
}

//! Errors of the test kit.

/// Why a test dependency could not be found or started.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// No usable `nats-server` binary (missing, or older than the supported minimum); the
    /// message names the install command.
    #[error("no usable nats-server: {reason}; install it with: {install}")]
    BinaryNotFound {
        /// What was looked at.
        reason: String,
        /// The command that installs the pinned version.
        install: &'static str,
    },
    /// Spawning or signalling the process failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The server did not become ready (accepting clients with JetStream up) in time.
    #[error(
        "nats-server on port {port} not ready: {reason}\n--- server log (tail) ---\n{log_tail}"
    )]
    NotReady {
        /// The client port.
        port: u16,
        /// The last readiness failure.
        reason: String,
        /// The end of the server's log, for diagnosis.
        log_tail: String,
    },
}

impl TestkitError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

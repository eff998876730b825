//! Posbon test support: a real `nats-server` with JetStream on a free port and a temporary
//! store, temporary directories, and test logging.
//!
//! Integration tests start the real dependency rather than a mock. Every [`NatsServer`] gets
//! its own dynamic port and store directory, so tests run in parallel; dropping it kills the
//! process and removes the directory.
//!
//! ```no_run
//! use posbon_testkit::NatsServer;
//!
//! posbon_testkit::init_test_logging();
//! let mut server = NatsServer::start();
//! let url = server.url(); // nats://127.0.0.1:<port>
//! // ... connect, publish to JetStream ...
//! server.kill9(); // crash it (SIGKILL)
//! server.restart(); // same port and store: streams survive
//! # drop(url);
//! ```
//!
//! # Finding `nats-server`
//!
//! The binary is taken from `POSBON_NATS_SERVER` ([`NATS_SERVER_ENV`]), else from `PATH`.
//! `eval "$(scripts/install-test-deps.sh)"` installs the pinned version and sets the
//! variable. A missing binary, or one older than 2.10, fails the test with that command in
//! the message: tests never skip silently.

mod error;
pub mod http;
mod nats;

pub use error::TestkitError;
pub use nats::{
    INSTALL_COMMAND, MIN_NATS_VERSION, NATS_SERVER_ENV, NatsServer, ProbeUser, nats_server_binary,
};
pub use tempfile::TempDir;

/// Creates a temporary directory named `posbon-test-*`, removed when the guard drops.
///
/// # Panics
///
/// Panics when the directory cannot be created (a broken test environment).
pub fn temp_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("posbon-test-")
        .tempdir()
        .expect("create a temporary directory")
}

/// Installs the test logging and tracing subscriber once per process (see
/// [`posbon_telemetry::init_for_tests`]): logs go to the test output, spans get
/// OpenTelemetry contexts so trace propagation can be asserted. Later calls do nothing.
pub fn init_test_logging() {
    posbon_telemetry::init_for_tests();
}

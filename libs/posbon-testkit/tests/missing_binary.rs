//! A missing nats-server fails the test with the install command (never a silent skip).
//!
//! The binary lookup is cached per process, so the check runs in a child process of this
//! test binary with `POSBON_NATS_SERVER` pointing nowhere.

use std::process::Command;

use posbon_testkit::{INSTALL_COMMAND, NATS_SERVER_ENV, NatsServer};

const CHILD_ENV: &str = "POSBON_TESTKIT_MISSING_BINARY_CHILD";
const MISSING: &str = "/nonexistent/nats-server";

#[test]
fn missing_binary_fails_with_install_command() {
    if std::env::var_os(CHILD_ENV).is_some() {
        let err = NatsServer::try_start().expect_err("the binary is missing");
        let text = err.to_string();
        assert!(text.contains(INSTALL_COMMAND), "{text}");
        assert!(text.contains(MISSING), "{text}");
        let panic = std::panic::catch_unwind(NatsServer::start).expect_err("start panics");
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(message.contains(INSTALL_COMMAND), "{message}");
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let output = Command::new(exe)
        .args(["--exact", "missing_binary_fails_with_install_command"])
        .env(NATS_SERVER_ENV, MISSING)
        .env(CHILD_ENV, "1")
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{stderr}"
    );
}

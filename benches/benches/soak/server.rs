//! The server under test: the release `posbon standalone` started on a free
//! port, its tokens, its resident memory and how many events it stored.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use posbon_service::client::{Endpoint, post_json, request};
use serde_json::{Value, json};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The release `posbon` binary beside this benchmark's (`target/release`).
fn posbon_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("POSBON_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("exe");
    let dir = exe.parent().and_then(Path::parent).expect("target/release");
    let bin = dir.join("posbon");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build --release -p posbon` (or set POSBON_BIN)",
        bin.display()
    );
    bin
}

/// Resident memory of `pid`, in MiB.
pub(super) fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

pub(super) struct Server {
    pub(super) child: Child,
    pub(super) port: u16,
    admin: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) async fn start_server(data: &Path, nats: &str) -> Server {
    let port = free_port();
    let child = Command::new(posbon_bin())
        .args(["standalone", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data")
        .arg(data)
        .args(["--nats", nats])
        .env("POSBON__TELEMETRY__LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start posbon standalone");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = request(Endpoint::local(port), "GET", "/readyz", None, b"").await
            && r.status == 200
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "posbon standalone never got ready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let admin = std::fs::read_to_string(data.join("admin.token"))
        .expect("admin token")
        .trim()
        .to_owned();
    Server { child, port, admin }
}

pub(super) async fn token(server: &Server, name: &str, role: &str) -> String {
    let r = post_json(
        Endpoint::local(server.port).with_token(Some(server.admin.clone())),
        "/v1/tokens",
        &json!({"name": name, "role": role}),
    )
    .await
    .expect("create token");
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let v: Value = serde_json::from_slice(&r.body).expect("json");
    v["token"].as_str().expect("token").to_owned()
}

pub(super) async fn stored_events(port: u16, token: &str) -> u64 {
    let r = post_json(
        Endpoint::local(port).with_token(Some(token.to_owned())),
        "/v1/sql",
        &json!({"query": "SELECT count(*) AS n FROM events"}),
    )
    .await;
    r.ok()
        .filter(|r| r.status == 200)
        .and_then(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .and_then(|v| v["rows"][0][0].as_u64())
        .unwrap_or(0)
}

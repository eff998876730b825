//! `posbon standalone` end to end: one process, one address. Camera alerts
//! posted over HTTP become an escalation on the feed's list; an operator
//! acknowledges it; SIGTERM stops the process cleanly; after a restart on the
//! same data directory the indexed events and the escalation are still there.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use posbon_service::client::{Endpoint, get, post_json, request};
use posbon_tests::posbon_bin;
use serde_json::{Value, json};

struct Running {
    child: Child,
    port: u16,
    /// `https://localhost:<port>` trusting the test CA, when serving HTTPS.
    https: Option<Endpoint>,
    /// The bootstrap admin token the first start wrote to the data directory.
    token: Option<String>,
}

impl Running {
    /// The server, with the admin token on every request.
    fn at(&self) -> Endpoint {
        self.https
            .clone()
            .unwrap_or_else(|| Endpoint::local(self.port))
            .with_token(self.token.clone())
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A certificate for localhost and its key, written to `dir`
/// (`cert.pem`, `key.pem`); the certificate is its own CA.
fn certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let issued =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, issued.cert.pem()).expect("cert");
    std::fs::write(&key, issued.signing_key.serialize_pem()).expect("key");
    (cert, key)
}

async fn start(data: &std::path::Path) -> Running {
    start_with(data, None).await
}

/// Starts `posbon standalone` on `data`; with `tls` (certificate, key) it
/// serves HTTPS only.
async fn start_with(
    data: &std::path::Path,
    tls: Option<(&std::path::Path, &std::path::Path)>,
) -> Running {
    let port = free_port();
    let mut command = Command::new(posbon_bin());
    command
        .args([
            "standalone",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data",
        ])
        .arg(data);
    if let Some((cert, key)) = tls {
        command
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key);
    }
    let child = command
        .env("POSBON__TELEMETRY__LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn posbon standalone");
    // Owned at once, so a failure below still kills and reaps it (Drop).
    let mut running = Running {
        child,
        port,
        https: tls.map(|(cert, _)| {
            Endpoint::parse_with_ca(&format!("https://localhost:{port}"), Some(cert))
                .expect("https endpoint")
        }),
        token: None,
    };
    for _ in 0..300 {
        if let Ok(r) = get(running.at(), "/readyz").await
            && r.status == 200
        {
            let token = std::fs::read_to_string(data.join("admin.token"))
                .expect("the first start writes <data>/admin.token");
            running.token = Some(token.trim().to_owned());
            return running;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("posbon standalone did not become ready on port {port}");
}

fn sigterm(running: &mut Running) -> std::process::ExitStatus {
    let pid = running.child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    for _ in 0..600 {
        if let Some(status) = running.child.try_wait().expect("wait") {
            return status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = running.child.kill();
    panic!("posbon standalone did not stop within 60 s of SIGTERM");
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_for<F, Fut>(what: &str, mut check: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Value>>,
{
    for _ in 0..300 {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn standalone_escalates_acknowledges_and_stops_cleanly() {
    let data = tempfile::tempdir().expect("temp dir");
    let mut running = start(data.path()).await;
    let port = running.at();
    // Without a token nothing is answered.
    let r = get(running.port, "/v1/escalations").await.expect("get");
    assert_eq!(r.status, 401, "{}", r.text());
    // Readiness names the registry the process shares with its store.
    let r = get(running.port, "/readyz").await.expect("readyz");
    let ready: Value = serde_json::from_slice(&r.body).expect("json");
    let registry = ready["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "registry"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(registry["ready"], true, "{ready}");
    assert!(
        registry["value"]
            .as_str()
            .is_some_and(|v| v.starts_with("sha256:") && v.ends_with("mahallas)")),
        "{ready}"
    );

    // Three drug-handoff alerts at one corner within minutes: the cluster rule.
    let now = Utc::now();
    let lines: Vec<String> = (0..3)
        .map(|i| {
            json!({
                "kind": "camera_alert",
                "id": format!("standalone-cam-{i}"),
                "occurred_at": (now - TimeDelta::minutes(10 - i)).fixed_offset().to_rfc3339(),
                "location": {"lat": 41.3111 + f64::from(i as i32) * 0.0001, "lng": 69.2797},
                "source": "safe-city-va",
                "camera_id": format!("tsh-cam-{i}"),
                "detection": "drug_handoff",
                "confidence": 0.91,
                "model": "va-detector/3.4.1"
            })
            .to_string()
        })
        .collect();
    let body = lines.join("\n");
    let r = request(
        port.clone(),
        "POST",
        "/v1/events",
        Some("application/x-ndjson"),
        body.as_bytes(),
    )
    .await
    .expect("post events");
    assert_eq!(r.status, 200, "{}", r.text());
    let report = r.json();
    assert_eq!(
        report["accepted"]
            .as_u64()
            .or_else(|| report["summary"]["accepted"].as_u64()),
        Some(3),
        "{report}"
    );
    // Bad input gets a clear error and nothing else is lost.
    let r = request(
        port.clone(),
        "POST",
        "/v1/events",
        Some("application/json"),
        b"{\"kind\": \"ufo\"}",
    )
    .await
    .expect("post bad");
    assert!(r.text().contains("kind"), "{}", r.text());

    let escalation = wait_for("an escalation", || async {
        let r = get(port.clone(), "/v1/escalations").await.ok()?;
        let list = r.json();
        list.as_array()?.first().cloned()
    })
    .await;
    assert_eq!(escalation["status"], "open");
    let id = escalation["id"].as_str().expect("id").to_owned();
    let r = post_json(
        port.clone(),
        &format!("/v1/escalations/{id}/acknowledge"),
        &json!({"note": "checking"}),
    )
    .await
    .expect("acknowledge");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "acknowledged");
    assert_eq!(r.json()["history"][1]["by"], "token:bootstrap-admin");
    // SQL over what was indexed.
    let count = wait_for("the events in SQL", || async {
        let r = post_json(
            port.clone(),
            "/v1/sql",
            &json!({"query": "SELECT count(*) AS n FROM camera_alerts WHERE id LIKE 'standalone-cam-%'"}),
        )
        .await
        .ok()?;
        let v = r.json();
        (v["rows"][0][0].as_u64() == Some(3)).then_some(v)
    })
    .await;
    assert_eq!(count["columns"][0]["name"], "n");

    let status = sigterm(&mut running);
    assert!(status.success(), "clean shutdown exits 0, got {status}");
    drop(running);

    // Same data directory: events and the escalation's state survived.
    let running = start(data.path()).await;
    let r = get(running.at(), &format!("/v1/escalations/{id}"))
        .await
        .expect("get");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "acknowledged");
    let r = post_json(
        running.at(),
        "/v1/sql",
        &json!({"query": "SELECT count(*) FROM events WHERE kind = 'camera_alert'"}),
    )
    .await
    .expect("sql");
    assert_eq!(r.json()["rows"][0][0].as_u64(), Some(3), "{}", r.text());
}

/// `posbon standalone --tls-cert --tls-key` speaks HTTPS only, with HSTS and
/// `Secure` session cookies, and the CLI reaches it with `--ca-file`.
#[tokio::test]
async fn standalone_serves_https_and_the_cli_speaks_it() {
    let data = tempfile::tempdir().expect("temp dir");
    let pki = tempfile::tempdir().expect("temp dir");
    let (cert, key) = certificate(pki.path());
    let running = start_with(data.path(), Some((&cert, &key))).await;
    let r = get(running.at(), "/v1/tokens").await.expect("https");
    assert_eq!(r.status, 200, "{}", r.text());
    let hsts = r.header("strict-transport-security").expect("hsts");
    assert!(hsts.contains("max-age="), "{hsts}");
    assert!(
        get(running.port, "/healthz").await.is_err(),
        "plain http gets no answer"
    );

    // A person's login over HTTPS gets a Secure cookie.
    let r = post_json(
        running.at(),
        "/v1/users",
        &json!({"name": "desk", "role": "operator", "scope": [], "password": "a long passphrase here"}),
    )
    .await
    .expect("add user");
    assert_eq!(r.status, 201, "{}", r.text());
    let anonymous =
        Endpoint::parse_with_ca(&format!("https://localhost:{}", running.port), Some(&cert))
            .expect("endpoint");
    let r = request(
        anonymous,
        "POST",
        "/v1/login",
        Some("application/json"),
        json!({"name": "desk", "password": "a long passphrase here"})
            .to_string()
            .as_bytes(),
    )
    .await
    .expect("login");
    assert_eq!(r.status, 200, "{}", r.text());
    let cookie = r.header("set-cookie").expect("session cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");

    let token = running.token.clone().expect("admin token");
    let api = format!("https://localhost:{}", running.port);
    let cli = tokio::task::spawn_blocking({
        let (api, cert, token) = (api.clone(), cert.clone(), token.clone());
        move || {
            Command::new(posbon_bin())
                .args(["tokens", "list", "--api", &api, "--ca-file"])
                .arg(&cert)
                .env("POSBON_TOKEN", &token)
                .output()
                .expect("posbon tokens list")
        }
    })
    .await
    .expect("joins");
    let stdout = String::from_utf8_lossy(&cli.stdout);
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(stdout.contains("bootstrap-admin"), "{stdout}");

    // Without the CA the CLI refuses the server's certificate and says so.
    let cli = tokio::task::spawn_blocking(move || {
        Command::new(posbon_bin())
            .args(["tokens", "list", "--api", &api])
            .env("POSBON_TOKEN", &token)
            .env_remove("POSBON_CA_FILE")
            .output()
            .expect("posbon tokens list")
    })
    .await
    .expect("joins");
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert_eq!(cli.status.code(), Some(1), "{stderr}");
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
}

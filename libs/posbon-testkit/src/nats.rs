//! A `nats-server` process with JetStream for tests.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::TestkitError;

/// The environment variable that names the `nats-server` binary; `PATH` is the fallback.
pub const NATS_SERVER_ENV: &str = "POSBON_NATS_SERVER";

/// The command that installs the pinned `nats-server` and sets [`NATS_SERVER_ENV`], run from
/// the repository root.
pub const INSTALL_COMMAND: &str = "eval \"$(scripts/install-test-deps.sh)\"";

/// The oldest supported server: several filter subjects per consumer need 2.10.
pub const MIN_NATS_VERSION: &str = "2.10.0";

/// How long a start or restart may take before it counts as failed.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a graceful stop may take before the process is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts with a fresh port when another process took the chosen one.
const PORT_ATTEMPTS: usize = 5;

/// Returns the `nats-server` binary to use: [`NATS_SERVER_ENV`], else `nats-server` on
/// `PATH`, checked to be at least [`MIN_NATS_VERSION`]. The answer is computed once per
/// process.
pub fn nats_server_binary() -> Result<PathBuf, TestkitError> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(find_binary)
        .clone()
        .map_err(|reason| TestkitError::BinaryNotFound {
            reason,
            install: INSTALL_COMMAND,
        })
}

/// The binary, or why there is none.
fn find_binary() -> Result<PathBuf, String> {
    let path = match std::env::var_os(NATS_SERVER_ENV) {
        Some(value) if !value.is_empty() => {
            let path = PathBuf::from(value);
            if !path.is_file() {
                return Err(format!(
                    "{NATS_SERVER_ENV}={} is not a file",
                    path.display()
                ));
            }
            path
        }
        _ => std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|dir| dir.join("nats-server"))
            .find(|candidate| candidate.is_file())
            .ok_or_else(|| {
                format!("{NATS_SERVER_ENV} is not set and nats-server is not on PATH")
            })?,
    };
    let output = Command::new(&path)
        .arg("--version")
        .output()
        .map_err(|err| format!("cannot run {} --version: {err}", path.display()))?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    match (parse_version(&text), parse_version(MIN_NATS_VERSION)) {
        (Some(found), Some(minimum)) if found >= minimum => Ok(path),
        _ => Err(format!(
            "{} reports {text:?}, need {MIN_NATS_VERSION} or newer",
            path.display()
        )),
    }
}

/// Parses `nats-server: v2.15.1` (or `2.10.0`) into `(2, 15, 1)`.
fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let version = text.rsplit(['v', ' ']).next()?;
    let mut parts = version
        .split(['.', '-'])
        .map(|part| part.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??, parts.next()??))
}

/// A `nats-server` process with JetStream enabled, listening on `127.0.0.1` on a free port,
/// storing into a private temporary directory.
///
/// Dropping it kills the process (SIGKILL) and removes the directory.
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    child: Option<Child>,
    port: u16,
    store_dir: PathBuf,
    log_path: PathBuf,
    /// A configuration file (`-c`) and the user the readiness probe is.
    config: Option<(PathBuf, Option<ProbeUser>)>,
    // Dropped last: removes the store and the log.
    dir: TempDir,
}

/// Who the readiness probe connects as, on a server with authorization: an
/// nkey user allowed `$JS.API.INFO` and subscriptions on `inbox`.
#[derive(Debug, Clone)]
pub struct ProbeUser {
    /// The user's nkey seed (`SU...`).
    pub seed: String,
    /// A subject under the user's inbox for the probe's reply.
    pub inbox: String,
}

impl NatsServer {
    /// Starts a server and waits until it accepts clients and JetStream answers.
    ///
    /// # Panics
    ///
    /// Panics with the reason (and the install command when the binary is missing) when the
    /// server cannot be started: a test that needs NATS fails rather than skips.
    pub fn start() -> NatsServer {
        match Self::try_start() {
            Ok(server) => server,
            Err(err) => panic!("cannot start nats-server: {err}"),
        }
    }

    /// Starts a server from the configuration file `config` (its port and
    /// address are overridden; its `jetstream` block must name the store),
    /// probing readiness as `probe`: for configurations with authorization.
    ///
    /// # Panics
    ///
    /// Panics with the reason when the server cannot be started.
    pub fn start_with_config(config: &Path, probe: ProbeUser) -> NatsServer {
        match Self::try_start_with(Some((config.to_owned(), Some(probe)))) {
            Ok(server) => server,
            Err(err) => panic!("cannot start nats-server with {}: {err}", config.display()),
        }
    }

    /// Starts a server like [`NatsServer::start`], returning the error instead of panicking.
    pub fn try_start() -> Result<NatsServer, TestkitError> {
        Self::try_start_with(None)
    }

    /// Starts a cluster of `n` servers with JetStream, routed to each other
    /// on loopback (cluster `posbon-test`, servers `n1`..`nN`), and waits
    /// until each answers JetStream (a meta leader is elected). Each server
    /// can be stopped, killed and restarted like a single one.
    ///
    /// # Panics
    ///
    /// Panics with the reason when the cluster does not form.
    pub fn start_cluster(n: usize) -> Vec<NatsServer> {
        match Self::try_start_cluster(n) {
            Ok(servers) => servers,
            Err(err) => panic!("cannot start a cluster of {n} nats-servers: {err}"),
        }
    }

    fn try_start_cluster(n: usize) -> Result<Vec<NatsServer>, TestkitError> {
        let binary = nats_server_binary()?;
        // Every port of the cluster at once, so that no two are the same
        // (one at a time, the kernel may hand a port out again once its probe
        // closed, and nats-server refuses a route listed twice).
        let ports = free_ports(2 * n)?;
        let (cluster_ports, client_ports) = ports.split_at(n);
        let routes: Vec<String> = cluster_ports
            .iter()
            .map(|p| format!("\"nats-route://127.0.0.1:{p}\""))
            .collect();
        let mut servers = Vec::with_capacity(n);
        for (i, (cluster_port, client_port)) in cluster_ports.iter().zip(client_ports).enumerate() {
            let dir = tempfile::Builder::new()
                .prefix("posbon-nats-")
                .tempdir()
                .map_err(|err| TestkitError::io("create the server directory", err))?;
            let store_dir = dir.path().join("store");
            let config = dir.path().join("nats.conf");
            std::fs::write(
                &config,
                format!(
                    "server_name: n{}\njetstream {{ store_dir: {:?} }}\n\
                     cluster {{ name: posbon-test, listen: \"127.0.0.1:{cluster_port}\", \
                     routes: [{}] }}\n",
                    i + 1,
                    store_dir.display().to_string(),
                    routes.join(", ")
                ),
            )
            .map_err(|err| TestkitError::io("write the server configuration", err))?;
            let mut server = NatsServer {
                binary: binary.clone(),
                child: None,
                port: *client_port,
                log_path: dir.path().join("nats-server.log"),
                store_dir,
                config: Some((config, None)),
                dir,
            };
            server.spawn()?;
            servers.push(server);
        }
        for server in &mut servers {
            server.wait_ready(0)?;
        }
        Ok(servers)
    }

    fn try_start_with(
        config: Option<(PathBuf, Option<ProbeUser>)>,
    ) -> Result<NatsServer, TestkitError> {
        let binary = nats_server_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("posbon-nats-")
            .tempdir()
            .map_err(|err| TestkitError::io("create the server directory", err))?;
        let store_dir = dir.path().join("store");
        let log_path = dir.path().join("nats-server.log");
        let mut server = NatsServer {
            binary,
            child: None,
            port: 0,
            store_dir,
            log_path,
            config,
            dir,
        };
        let mut attempt = 1;
        loop {
            server.port = free_port()?;
            match server.spawn_and_wait() {
                Ok(()) => return Ok(server),
                Err(err) => {
                    server.kill_child();
                    if !port_was_taken(&err) || attempt == PORT_ATTEMPTS {
                        return Err(err);
                    }
                    attempt += 1;
                }
            }
        }
    }

    /// The client URL, `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory (`-sd`), kept across [`NatsServer::restart`].
    pub fn store_dir(&self) -> &Path {
        &self.store_dir
    }

    /// The server's private temporary directory (holds the store and the log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log file (stdout and stderr of every run, appended).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The process id while the server runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Stops the server gracefully (SIGTERM), waiting for it to exit; kills it when it does
    /// not exit within 10 seconds. Does nothing when it is not running.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id().to_string();
        let signalled = Command::new("kill")
            .args(["-TERM", &pid])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
            || Command::new(&self.binary)
                .arg("--signal")
                .arg(format!("term={pid}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
        if signalled {
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Kills the server with SIGKILL, like a crash, and reaps it. The store stays.
    pub fn kill9(&mut self) {
        self.kill_child();
    }

    /// Starts the server again on the same port and store directory (stopping it first with
    /// SIGKILL if it still runs) and waits until it is ready.
    ///
    /// # Panics
    ///
    /// Panics when the server does not come back; see [`NatsServer::try_restart`].
    pub fn restart(&mut self) {
        if let Err(err) = self.try_restart() {
            panic!("cannot restart nats-server: {err}");
        }
    }

    /// Restarts like [`NatsServer::restart`], returning the error instead of panicking. The
    /// port may be briefly held by another process: it is retried until the ready timeout.
    pub fn try_restart(&mut self) -> Result<(), TestkitError> {
        self.kill_child();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return Ok(()),
                Err(err) => {
                    let retry = port_was_taken(&err) && Instant::now() < deadline;
                    self.kill_child();
                    if !retry {
                        return Err(err);
                    }
                    thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    fn kill_child(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn spawn_and_wait(&mut self) -> Result<(), TestkitError> {
        let log_start = self.spawn()?;
        self.wait_ready(log_start)
    }

    /// Starts the process; returns where its log begins.
    fn spawn(&mut self) -> Result<u64, TestkitError> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|err| TestkitError::io("open the server log", err))?;
        let log_start = log.metadata().map(|meta| meta.len()).unwrap_or(0);
        let stderr = log
            .try_clone()
            .map_err(|err| TestkitError::io("open the server log", err))?;
        let mut command = Command::new(&self.binary);
        match &self.config {
            // The file's jetstream block names the store; flags after the
            // file win over its address and port.
            Some((config, _)) => command.arg("-c").arg(config),
            None => command.arg("-js").arg("-sd").arg(&self.store_dir),
        };
        let child = command
            .args(["-a", "127.0.0.1"])
            .args(["-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .map_err(|err| TestkitError::io(format!("spawn {}", self.binary.display()), err))?;
        self.child = Some(child);
        Ok(log_start)
    }

    /// Waits until the server accepts clients and JetStream answers.
    fn wait_ready(&mut self, log_start: u64) -> Result<(), TestkitError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut reason = String::from("not probed yet");
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(self.not_ready(format!("process exited with {status}"), log_start));
            }
            let probe = self.config.as_ref().and_then(|(_, probe)| probe.as_ref());
            match probe_jetstream(self.port, probe) {
                Ok(()) => return Ok(()),
                Err(err) => reason = err,
            }
            thread::sleep(Duration::from_millis(20));
        }
        Err(self.not_ready(format!("timed out, last probe: {reason}"), log_start))
    }

    fn not_ready(&self, reason: String, log_start: u64) -> TestkitError {
        TestkitError::NotReady {
            port: self.port,
            reason,
            log_tail: self.log_since(log_start),
        }
    }

    /// The log written since byte `start`, at most its last 4 KiB.
    fn log_since(&self, start: u64) -> String {
        let Ok(mut file) = File::open(&self.log_path) else {
            return String::new();
        };
        let len = file.metadata().map(|meta| meta.len()).unwrap_or(0);
        let from = start.max(len.saturating_sub(4096));
        let mut text = String::new();
        if file.seek(SeekFrom::Start(from)).is_ok() {
            let _ = file.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill_child();
    }
}

/// Whether a start failed because another process holds the port.
fn port_was_taken(err: &TestkitError) -> bool {
    matches!(err, TestkitError::NotReady { log_tail, .. } if log_tail.contains("address already in use"))
}

/// `k` different ports that were free a moment ago: all bound at once, then
/// released.
fn free_ports(k: usize) -> Result<Vec<u16>, TestkitError> {
    let listeners = (0..k)
        .map(|_| {
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .map_err(|err| TestkitError::io("find a free port", err))
        })
        .collect::<Result<Vec<_>, _>>()?;
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .map(|a| a.port())
                .map_err(|err| TestkitError::io("find a free port", err))
        })
        .collect()
}

/// A port that was free a moment ago (the kernel's choice for an ephemeral bind).
fn free_port() -> Result<u16, TestkitError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|err| TestkitError::io("find a free port", err))?;
    let port = listener
        .local_addr()
        .map_err(|err| TestkitError::io("find a free port", err))?
        .port();
    Ok(port)
}

/// Connects with the raw client protocol and asks the JetStream API for account info: ready
/// means the server accepts clients and JetStream answers (not 503 "no responders").
fn probe_jetstream(port: u16, user: Option<&ProbeUser>) -> Result<(), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))
        .map_err(|err| format!("connect: {err}"))?;
    let timeout = Some(Duration::from_secs(2));
    stream
        .set_read_timeout(timeout)
        .and_then(|()| stream.set_write_timeout(timeout))
        .map_err(|err| format!("socket: {err}"))?;
    let mut writer = stream.try_clone().map_err(|err| format!("socket: {err}"))?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|err| format!("read info: {err}"))?;
    if !line.starts_with("INFO ") {
        return Err(format!("unexpected greeting: {}", line.trim()));
    }
    if !line.contains("\"jetstream\":true") {
        return Err("jetstream is not enabled".to_owned());
    }
    let (auth, inbox) = match user {
        None => (String::new(), "_posbon_probe".to_owned()),
        Some(user) => {
            let nonce = line
                .split("\"nonce\":\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .ok_or("the server asks for no nonce: is authorization configured?")?;
            let pair = nkeys::KeyPair::from_seed(&user.seed).map_err(|e| format!("seed: {e}"))?;
            let signature = pair
                .sign(nonce.as_bytes())
                .map_err(|e| format!("sign: {e}"))?;
            use base64::Engine as _;
            let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature);
            (
                format!(",\"nkey\":\"{}\",\"sig\":\"{sig}\"", pair.public_key()),
                user.inbox.clone(),
            )
        }
    };
    writer
        .write_all(
            format!(
                "CONNECT {{\"verbose\":false,\"pedantic\":false,\"headers\":true,\
                 \"no_responders\":true,\"protocol\":1{auth}}}\r\n\
                 SUB {inbox} 1\r\n\
                 PUB $JS.API.INFO {inbox} 0\r\n\r\n\
                 PING\r\n"
            )
            .as_bytes(),
        )
        .map_err(|err| format!("write: {err}"))?;
    loop {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .map_err(|err| format!("read: {err}"))?;
        if read == 0 {
            return Err("connection closed".to_owned());
        }
        let is_msg = line.starts_with("MSG ");
        if is_msg || line.starts_with("HMSG ") {
            let size: usize = line
                .split_whitespace()
                .last()
                .and_then(|size| size.parse().ok())
                .ok_or_else(|| format!("bad message line: {}", line.trim()))?;
            let mut body = vec![0; size + 2];
            reader
                .read_exact(&mut body)
                .map_err(|err| format!("read body: {err}"))?;
            let body = String::from_utf8_lossy(&body);
            return if is_msg
                && body.contains("account_info_response")
                && !body.contains("\"error\"")
            {
                Ok(())
            } else {
                Err(format!("jetstream not ready: {}", body.trim()))
            };
        }
        if line.starts_with("PING") {
            writer
                .write_all(b"PONG\r\n")
                .map_err(|err| format!("write: {err}"))?;
        } else if line.starts_with("-ERR") {
            return Err(line.trim().to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_version;

    #[test]
    fn parses_versions() {
        assert_eq!(parse_version("nats-server: v2.15.1"), Some((2, 15, 1)));
        assert_eq!(parse_version("2.10.0"), Some((2, 10, 0)));
        assert_eq!(parse_version("nats-server: v2.11.0-RC.1"), Some((2, 11, 0)));
        assert_eq!(parse_version("garbage"), None);
    }
}

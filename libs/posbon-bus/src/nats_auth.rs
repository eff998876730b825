//! Who a [`crate::NatsBus`] connection is, and how it reaches the servers:
//! credentials (a `.creds` file of a JWT and its nkey, an nkey seed file,
//! a user and password, or a token), TLS (the servers' CA, a client
//! certificate), the inbox prefix its replies arrive on, and whether it may
//! create streams. Every service's `[nats]` section is a [`NatsConfig`].
//!
//! The server tells a client about a refused publish or subscription only
//! with an asynchronous `-ERR 'Permissions Violation ...'`; the request that
//! was refused then times out. [`Violations`] keeps the recent refusals so
//! that the timeout is reported as [`crate::BusErrorKind::Forbidden`],
//! naming the subject the server refused.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use serde::Deserialize;

use crate::{BusError, BusErrorKind, BusResult, NatsOptions};

/// How the connection proves who it is.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum NatsCredentials {
    /// Anonymous (a server without authorization).
    #[default]
    None,
    /// A `.creds` file (user JWT and nkey seed), as `nsc` writes them.
    CredsFile(PathBuf),
    /// A file holding an nkey user seed (`SU...`), as `posbon nats-config` writes them.
    NkeyFile(PathBuf),
    /// A user and password.
    UserPassword {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
    /// A token.
    Token(String),
}

impl std::fmt::Debug for NatsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::CredsFile(p) => f.debug_tuple("CredsFile").field(p).finish(),
            Self::NkeyFile(p) => f.debug_tuple("NkeyFile").field(p).finish(),
            Self::UserPassword { user, .. } => f
                .debug_struct("UserPassword")
                .field("user", user)
                .field("password", &"<secret>")
                .finish(),
            Self::Token(_) => f.write_str("Token(<secret>)"),
        }
    }
}

impl NatsCredentials {
    /// Whether the connection authenticates at all.
    pub fn is_some(&self) -> bool {
        !matches!(self, Self::None)
    }

    /// A credentials file by what it holds: a `.creds` file (a JWT block)
    /// or an nkey user seed.
    pub fn from_file(path: &Path) -> BusResult<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            BusError::invalid(format!(
                "cannot read nats credentials {}: {e}",
                path.display()
            ))
        })?;
        if text.contains("-----BEGIN NATS USER JWT-----") {
            Ok(Self::CredsFile(path.to_owned()))
        } else if text.trim_start().starts_with("SU") {
            Ok(Self::NkeyFile(path.to_owned()))
        } else {
            Err(BusError::invalid(format!(
                "nats credentials {}: neither a .creds file (a user JWT and seed) nor an nkey \
                 user seed (SU...)",
                path.display()
            )))
        }
    }
}

/// TLS towards the NATS servers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsTls {
    /// PEM certificate authority of the servers (besides the system's roots).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for servers that verify clients (with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// PEM key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Refuse a server that does not speak TLS (implied by `tls://` URLs).
    pub required: bool,
}

/// `[nats]`: how a service connects to NATS. Secrets come from files (or
/// the environment: `POSBON__NATS__PASSWORD`), never from the file itself
/// when it can be avoided.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// A `.creds` file or an nkey seed file (told apart by content).
    pub credentials_file: Option<PathBuf>,
    /// A user, with `password_file` or `password`.
    pub user: Option<String>,
    /// A file whose first line is the user's password.
    pub password_file: Option<PathBuf>,
    /// The password itself (for the environment).
    pub password: Option<String>,
    /// A file whose first line is a token.
    pub token_file: Option<PathBuf>,
    /// TLS.
    pub tls: NatsTls,
    /// Prefix of the subjects replies come back on; a least-privilege user
    /// may subscribe only to its own (`_INBOX.<user>`, what
    /// `posbon nats-config` grants). Default `_INBOX`.
    pub inbox_prefix: Option<String>,
    /// Whether this service creates and updates the streams at start. Off
    /// by default when credentials are given (least-privilege users may not:
    /// an admin runs `posbon nats-streams`); on without credentials.
    pub manage_streams: Option<bool>,
    /// Replicas of each stream when this service creates or updates them
    /// (1..=5). Absent: 3 when the connected NATS cluster has three or more
    /// servers, else 1.
    pub replicas: Option<usize>,
}

fn first_line(path: &Path, what: &str) -> BusResult<String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        BusError::invalid(format!(
            "cannot read the nats {what} file {}: {e}",
            path.display()
        ))
    })?;
    let line = text.lines().next().unwrap_or_default().trim().to_owned();
    if line.is_empty() {
        return Err(BusError::invalid(format!(
            "the nats {what} file {} is empty",
            path.display()
        )));
    }
    Ok(line)
}

impl NatsConfig {
    /// The connection options of the service `name`, with these
    /// credentials, TLS and inbox; errors name the setting.
    pub fn options(&self, name: &str) -> BusResult<NatsOptions> {
        let credentials = match (&self.credentials_file, &self.user, &self.token_file) {
            (None, None, None) => NatsCredentials::None,
            (Some(file), None, None) => NatsCredentials::from_file(file)?,
            (None, Some(user), None) => {
                let password = match (&self.password_file, &self.password) {
                    (Some(file), None) => first_line(file, "password")?,
                    (None, Some(p)) => p.clone(),
                    _ => {
                        return Err(BusError::invalid(
                            "nats.user needs exactly one of nats.password_file or nats.password",
                        ));
                    }
                };
                NatsCredentials::UserPassword {
                    user: user.clone(),
                    password,
                }
            }
            (None, None, Some(file)) => NatsCredentials::Token(first_line(file, "token")?),
            _ => {
                return Err(BusError::invalid(
                    "give one of nats.credentials_file, nats.user or nats.token_file",
                ));
            }
        };
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return Err(BusError::invalid(
                "nats.tls.cert_file and nats.tls.key_file go together",
            ));
        }
        if let Some(prefix) = &self.inbox_prefix {
            crate::subjects::validate_subject(prefix)
                .map_err(|e| BusError::invalid(format!("nats.inbox_prefix: {e}")))?;
        }
        let manage_streams = self.manage_streams.unwrap_or(!credentials.is_some());
        if let Some(r) = self.replicas
            && !(1..=5).contains(&r)
        {
            return Err(BusError::invalid(format!(
                "nats.replicas: {r} is not in 1..=5"
            )));
        }
        // A seed file `posbon nats-config` wrote names the inbox its user may read.
        let inbox_prefix = match (&self.inbox_prefix, &credentials) {
            (Some(prefix), _) => Some(prefix.clone()),
            (None, NatsCredentials::NkeyFile(path)) => inbox_of_seed_file(path)?,
            (None, _) => None,
        };
        Ok(NatsOptions {
            name: Some(name.to_owned()),
            credentials,
            tls: self.tls.clone(),
            inbox_prefix,
            manage_streams,
            replicas: self.replicas,
            ..NatsOptions::default()
        })
    }
}

/// The line of a seed file that names its user's inbox prefix.
pub(crate) const INBOX_LINE: &str = "inbox_prefix: ";

/// The inbox prefix a seed file names (`inbox_prefix: _INBOX.<user>` on a
/// line of its own), if it names one.
fn inbox_of_seed_file(path: &Path) -> BusResult<Option<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        BusError::invalid(format!(
            "cannot read nats credentials {}: {e}",
            path.display()
        ))
    })?;
    let prefix = text
        .lines()
        .find_map(|l| l.trim().strip_prefix(INBOX_LINE))
        .map(|p| p.trim().to_owned());
    if let Some(p) = &prefix {
        crate::subjects::validate_subject(p)
            .map_err(|e| BusError::invalid(format!("{}: inbox_prefix: {e}", path.display())))?;
    }
    Ok(prefix)
}

/// The text of a seed file for a user that reads replies under
/// `inbox_prefix`: the seed on the first line, then the prefix.
pub fn seed_file_text(seed: &str, user: &str, inbox_prefix: &str) -> String {
    format!(
        "{seed}\n# posbon nats user {user}: keep this file secret (mode 0600)\n{INBOX_LINE}{inbox_prefix}\n"
    )
}

/// Applies credentials, TLS and the inbox prefix to the client's options.
pub(crate) async fn apply(
    mut connect: async_nats::ConnectOptions,
    options: &NatsOptions,
) -> BusResult<async_nats::ConnectOptions> {
    connect = match &options.credentials {
        NatsCredentials::None => connect,
        NatsCredentials::CredsFile(path) => connect
            .credentials_file(path)
            .await
            .map_err(|e| BusError::invalid(format!("nats credentials {}: {e}", path.display())))?,
        NatsCredentials::NkeyFile(path) => {
            let seed = first_line(path, "nkey seed")?;
            nkeys::KeyPair::from_seed(&seed).map_err(|_| {
                BusError::invalid(format!(
                    "the nkey seed file {} holds no valid user seed",
                    path.display()
                ))
            })?;
            connect.nkey(seed)
        }
        NatsCredentials::UserPassword { user, password } => {
            connect.user_and_password(user.clone(), password.clone())
        }
        NatsCredentials::Token(token) => connect.token(token.clone()),
    };
    if let Some(ca) = &options.tls.ca_file {
        connect = connect.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&options.tls.cert_file, &options.tls.key_file) {
        connect = connect.add_client_certificate(cert.clone(), key.clone());
    }
    if options.tls.required {
        connect = connect.require_tls(true);
    }
    if let Some(prefix) = &options.inbox_prefix {
        connect = connect.custom_inbox_prefix(prefix);
    }
    Ok(connect)
}

/// How long a refusal is remembered.
const REMEMBER: Duration = Duration::from_secs(60);

/// The server's recent permission refusals on one connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct Violations {
    seen: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Violations {
    /// Records a server error if it is a permission refusal; returns
    /// whether it was.
    pub(crate) fn record(&self, error: &str) -> bool {
        if !error.contains("Permissions Violation") {
            return false;
        }
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        seen.retain(|(at, _)| now.duration_since(*at) < REMEMBER);
        if seen.len() < 256 {
            seen.push((now, error.trim().trim_matches('\'').to_owned()));
        }
        true
    }

    /// The refusal recorded since `since` that names `subject` (or, with
    /// `None`, any), if there was one.
    pub(crate) fn since(&self, since: Instant, subject: Option<&str>) -> Option<String> {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.iter()
            .rev()
            .filter(|(at, _)| *at >= since)
            .find(|(_, text)| subject.is_none_or(|s| text.contains(&format!("\"{s}\""))))
            .map(|(_, text)| text.clone())
    }

    /// `err` as a permission refusal when it is a timeout (or a missing
    /// answer) and the server refused something matching since `since`.
    pub(crate) fn explain(&self, err: BusError, since: Instant, subject: Option<&str>) -> BusError {
        if !matches!(
            err.kind(),
            BusErrorKind::Timeout | BusErrorKind::Other | BusErrorKind::Unavailable
        ) {
            return err;
        }
        match self.since(since, subject) {
            Some(refusal) => BusError::new(
                BusErrorKind::Forbidden,
                format!(
                    "{err}: the nats server refused it ({refusal}); this user lacks the permission"
                ),
            ),
            None => err,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_and_secrets_stay_out_of_debug() {
        let dir = std::env::temp_dir().join(format!("posbon-nats-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let seed = dir.join("ingest.nk");
        let pair = nkeys::KeyPair::new_user();
        std::fs::write(
            &seed,
            seed_file_text(&pair.seed().expect("seed"), "ingest", "_INBOX.ingest"),
        )
        .expect("write");
        let options = NatsConfig {
            credentials_file: Some(seed.clone()),
            ..NatsConfig::default()
        }
        .options("posbon-ingest")
        .expect("options");
        assert_eq!(options.credentials, NatsCredentials::NkeyFile(seed.clone()));
        assert_eq!(options.inbox_prefix.as_deref(), Some("_INBOX.ingest"));
        assert!(
            !options.manage_streams,
            "least privilege: no stream changes"
        );
        let anonymous = NatsConfig::default().options("x").expect("options");
        assert!(anonymous.manage_streams);

        let password = NatsConfig {
            user: Some("u".into()),
            password: Some("hunter2-hunter2".into()),
            ..NatsConfig::default()
        }
        .options("x")
        .expect("options");
        assert!(!format!("{password:?}").contains("hunter2"));

        for (config, expect) in [
            (
                NatsConfig {
                    user: Some("u".into()),
                    ..NatsConfig::default()
                },
                "password",
            ),
            (
                NatsConfig {
                    credentials_file: Some(seed.clone()),
                    token_file: Some(seed.clone()),
                    ..NatsConfig::default()
                },
                "give one of",
            ),
            (
                NatsConfig {
                    tls: NatsTls {
                        cert_file: Some(seed.clone()),
                        ..NatsTls::default()
                    },
                    ..NatsConfig::default()
                },
                "go together",
            ),
            (
                NatsConfig {
                    inbox_prefix: Some("bad prefix".into()),
                    ..NatsConfig::default()
                },
                "inbox_prefix",
            ),
        ] {
            let e = config.options("x").expect_err(expect).to_string();
            assert!(e.contains(expect), "{e}");
        }
        std::fs::write(dir.join("junk"), "hello").expect("write");
        let e = NatsCredentials::from_file(&dir.join("junk"))
            .expect_err("junk")
            .to_string();
        assert!(e.contains("neither"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn refusals_explain_timeouts() {
        let v = Violations::default();
        let start = Instant::now();
        assert!(!v.record("slow consumer"));
        assert!(v.record("'Permissions Violation for Publish to \"posbon.alerts.a.b.c\"'"));
        let timeout = BusError::new(
            BusErrorKind::Timeout,
            "publish to posbon.alerts.a.b.c: timed out",
        );
        let e = v.explain(timeout, start, Some("posbon.alerts.a.b.c"));
        assert_eq!(e.kind(), BusErrorKind::Forbidden);
        assert!(e.to_string().contains("Permissions Violation"), "{e}");
        let other = BusError::new(BusErrorKind::Timeout, "x");
        assert_eq!(
            v.explain(other, start, Some("posbon.events.x")).kind(),
            BusErrorKind::Timeout
        );
    }
}

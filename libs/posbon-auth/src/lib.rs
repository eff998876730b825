//! Posbon identities: who is calling, what their role lets them do, which
//! part of the country they see, and a record of what they did.
//!
//! * [`Role`] and [`Permission`]: the fixed table of what each role may do.
//! * [`ScopeItem`] and [`ResolvedScope`]: regions, districts and mahallas a
//!   caller is limited to, checked against the registry.
//! * [`Identities`]: API tokens, local users (Argon2id), page sessions and
//!   one-time login links, in the store.
//! * [`AuditLog`]: a hash-chained, append-only log in the store.
//! * [`http`]: the guard every service's router goes through ([`Guarded`]):
//!   deny by default (a route without a rule is refused), 401/403 with a
//!   reason, CSRF for cookie sessions, Origin and Host checks, security
//!   headers; and the identity routes (`/v1/login`, `/v1/tokens`, ...).
//!
//! [`Auth`] holds all of it for one process.

pub mod audit;
pub mod credentials;
pub mod http;
pub mod identities;
pub mod oidc;
pub mod role;
pub mod scope;
pub mod secret;
pub mod throttle;
pub mod tls;

use posbon_model::Span;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use posbon_geo::Registry;
use posbon_store::Store;
use serde::Deserialize;

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn redaction_removes_sensitive_fields_at_any_depth() {
        let mut v = json!([{
            "id": "e-1",
            "event": {"kind": "incident", "description": "x", "victim_minor": true,
                      "offender_youth": false, "domestic": true, "attributes": {"a": "b"},
                      "category": "theft"},
            "snapshot_uri": "s3://x", "account_ref": "acct:1", "mahalla_id": "m-1",
            "incident": {"flags": {}}
        }]);
        super::redact(&mut v);
        assert_eq!(
            v,
            json!([{"id": "e-1", "event": {"kind": "incident", "category": "theft"}, "mahalla_id": "m-1", "incident": {}}])
        );
    }
}

pub use audit::{AuditEntry, AuditLog, AuditRecord, AuditVerification};
pub use credentials::Refused;
pub use http::{Access, Caller, Guarded, Via};
pub use identities::{Identities, IdentityError, IdentityLimits, TokenCheck};
pub use role::{Permission, Role};
pub use scope::{ResolvedScope, Scope, ScopeItem};

/// True for the fields of an event that only roles with
/// [`Permission::SensitiveColumns`] read: free text (`description`,
/// `attributes`), camera snapshots, account references, and the victims',
/// offenders' and domestic flags (and `flags`, the object that holds them:
/// its presence alone says an incident has one). SQL reads them as NULL, the
/// API leaves them out.
pub fn is_sensitive_field(name: &str) -> bool {
    matches!(
        name,
        "description" | "attributes" | "snapshot_uri" | "account_ref" | "domestic" | "flags"
    ) || name.starts_with("victim_")
        || name.starts_with("offender_")
}

/// Removes the sensitive fields ([`is_sensitive_field`]) from a JSON value,
/// at any depth.
pub fn redact(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|k, _| !is_sensitive_field(k));
            map.values_mut().for_each(redact);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// `[auth]`: identities and the HTTP guard, the same in every service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// How long a page session lasts (`12h`).
    pub session: Span,
    /// Consecutive failed logins before a user is locked (for a time that
    /// doubles with each further failure, up to 15 minutes).
    pub max_login_failures: u32,
    /// Failed logins from one client address (an IPv6 /64) within
    /// `login_address_window` before its logins are refused unread
    /// until the window ends ([`throttle`]).
    pub max_login_failures_per_address: u32,
    /// The window of `max_login_failures_per_address`, at most a day (`10m`).
    pub login_address_window: Span,
    /// Reverse proxies whose `X-Forwarded-For` names the client (their own
    /// address otherwise counts as the client's).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Host names (besides `localhost` and IP addresses) that requests may
    /// name in `Host`; anything else is refused (DNS rebinding).
    pub allowed_hosts: Vec<String>,
    /// Origins (`https://cc.example.uz`) besides the server's own that may
    /// open the WebSocket feed or send writes.
    pub allowed_origins: Vec<String>,
    /// A file holding the token Prometheus presents for `/metrics`
    /// (admins' tokens work too). Empty: admins only.
    pub metrics_token_file: Option<PathBuf>,
    /// Where the first start with no identities writes the bootstrap admin
    /// token (mode 0600).
    pub admin_token_file: Option<PathBuf>,
    /// Whether the session cookie is marked `Secure` (behind HTTPS).
    pub secure_cookies: bool,
    /// Whether a server listening on a non-loopback address may create the
    /// bootstrap admin token itself; otherwise it refuses to start with no
    /// identities.
    pub bootstrap_on_public_address: bool,
    /// OpenID Connect bearer tokens from the command centre's identity
    /// provider (absent: none accepted).
    pub oidc: Option<oidc::OidcConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            session: Span::from_hours(12),
            max_login_failures: 5,
            max_login_failures_per_address: 20,
            login_address_window: Span::from_secs(600),
            trusted_proxies: Vec::new(),
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            metrics_token_file: None,
            admin_token_file: None,
            secure_cookies: false,
            bootstrap_on_public_address: false,
            oidc: None,
        }
    }
}

/// Identities, audit log and guard settings of one process.
#[derive(Debug)]
pub struct Auth {
    address_throttle: throttle::AddressThrottle,
    identities: Identities,
    audit: AuditLog,
    /// `None` for services that serve only health and metrics.
    registry: Option<Arc<Registry>>,
    config: AuthConfig,
    metrics_token: Option<String>,
    oidc: Option<oidc::Oidc>,
}

impl Auth {
    /// Identities and audit log in `store`, scopes checked against `registry`.
    pub fn new(
        store: Store,
        registry: Arc<Registry>,
        config: AuthConfig,
    ) -> anyhow::Result<Arc<Self>> {
        Self::build(store, Some(registry), config)
    }

    /// For a service with no mahalla registry that serves only `/healthz`,
    /// `/readyz` and `/metrics` (the indexer): callers limited to part of
    /// the country are refused, since their scope cannot be checked.
    pub fn without_registry(store: Store, config: AuthConfig) -> anyhow::Result<Arc<Self>> {
        Self::build(store, None, config)
    }

    fn build(
        store: Store,
        registry: Option<Arc<Registry>>,
        config: AuthConfig,
    ) -> anyhow::Result<Arc<Self>> {
        anyhow::ensure!(
            config.max_login_failures >= 1,
            "auth.max_login_failures: must be at least 1"
        );
        anyhow::ensure!(
            config.max_login_failures_per_address >= 1,
            "auth.max_login_failures_per_address: must be at least 1"
        );
        anyhow::ensure!(
            config.login_address_window <= Span::from_days(1),
            "auth.login_address_window: {} is longer than a day",
            config.login_address_window
        );
        let metrics_token = match &config.metrics_token_file {
            Some(path) if !path.as_os_str().is_empty() => Some(
                secret::read_secret_file(path)
                    .map_err(|e| anyhow::anyhow!("auth.metrics_token_file: {e}"))?,
            ),
            _ => None,
        };
        let oidc = config.oidc.clone().map(oidc::Oidc::load).transpose()?;
        let limits = IdentityLimits {
            max_failures: config.max_login_failures,
            session: config.session.to_std(),
        };
        let address_throttle = throttle::AddressThrottle::new(
            config.max_login_failures_per_address,
            config.login_address_window.to_std(),
        );
        Ok(Arc::new(Self {
            address_throttle,
            identities: Identities::new(store.clone(), limits),
            audit: AuditLog::new(store),
            registry,
            config,
            metrics_token,
            oidc,
        }))
    }

    /// The identities.
    pub fn identities(&self) -> &Identities {
        &self.identities
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// The registry scopes are checked against (`None`: see
    /// [`Auth::without_registry`]).
    pub fn registry(&self) -> Option<&Arc<Registry>> {
        self.registry.as_ref()
    }

    /// The configuration.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// Checks a scope against the registry.
    pub fn resolve(&self, scope: &[ScopeItem]) -> Result<ResolvedScope, String> {
        match &self.registry {
            Some(registry) => ResolvedScope::resolve(scope, registry),
            None if scope.is_empty() => Ok(ResolvedScope::national()),
            None => Err("this service has no mahalla registry to check a scope against".to_owned()),
        }
    }

    /// Deletes expired sessions and login links (the daily retention job
    /// calls it through [`posbon_store::retention::Pruner`]).
    pub async fn prune_identities(&self, now: DateTime<Utc>) -> anyhow::Result<(u64, u64)> {
        Ok(self.identities.prune_expired(now).await?)
    }

    /// On a store with no identities: creates an admin token and writes it to
    /// `auth.admin_token_file`, returning the path. A server listening on a
    /// non-loopback address does so only with
    /// `auth.bootstrap_on_public_address`; otherwise it refuses to start.
    pub async fn bootstrap(&self, listen: SocketAddr) -> anyhow::Result<Option<PathBuf>> {
        if !self.identities.is_empty().await? {
            return Ok(None);
        }
        // With an identity provider there are identities outside the store.
        if self.oidc.is_some() && !listen.ip().is_loopback() {
            return Ok(None);
        }
        if !listen.ip().is_loopback() && !self.config.bootstrap_on_public_address {
            anyhow::bail!(
                "refusing to listen on {listen} with no identities: nobody could be told apart. \
                 Start once on a loopback address (it writes an admin token), create tokens and \
                 users, then listen publicly; or configure [auth.oidc]; or set \
                 auth.bootstrap_on_public_address = true with auth.admin_token_file"
            );
        }
        let path = self.config.admin_token_file.clone().ok_or_else(|| {
            anyhow::anyhow!(
                "no identities yet and auth.admin_token_file is not set: set it so that the \
                 bootstrap admin token can be written"
            )
        })?;
        write_bootstrap_token(&self.identities, &path).await?;
        self.audit
            .record(AuditEntry {
                actor: "posbon".to_owned(),
                role: None,
                action: "token_create",
                target: Some("bootstrap-admin".to_owned()),
                outcome: "ok",
                detail: serde_json::json!({ "role": "admin", "file": path.display().to_string() }),
            })
            .await;
        tracing::warn!(file = %path.display(), "no identities yet: wrote a bootstrap admin token (mode 0600); use it to create tokens and users, then revoke it");
        Ok(Some(path))
    }
}

async fn write_bootstrap_token(identities: &Identities, path: &Path) -> anyhow::Result<()> {
    use std::io::Write as _;
    // The file first (it must not exist), then the token: a token whose
    // file could not be written would be an admin nobody holds.
    let mut file = secret::create_secret_file(path).map_err(|e| {
        anyhow::anyhow!(
            "the store has no identities, and the bootstrap admin token cannot be written to {}: {e} \
             (an existing file belongs to another store: remove it or point auth.admin_token_file elsewhere)",
            path.display()
        )
    })?;
    let made = identities
        .create_token("bootstrap-admin", Role::Admin, Vec::new(), None, "posbon")
        .await;
    let written = match &made {
        Ok((_, token)) => writeln!(file, "{token}").and_then(|()| file.sync_all()),
        Err(_) => Ok(()),
    };
    if made.is_err() || written.is_err() {
        let _ = std::fs::remove_file(path);
        if let Ok((record, _)) = &made {
            let _ = identities.revoke_token(&record.id).await;
        }
    }
    made?;
    written.map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

#[async_trait::async_trait]
impl posbon_store::retention::Pruner for Auth {
    async fn prune_expired(
        &self,
        now: DateTime<Utc>,
        config: &posbon_store::retention::RetentionConfig,
    ) -> anyhow::Result<Vec<(&'static str, u64)>> {
        let (sessions, links) = self.prune_identities(now).await?;
        let mut out = vec![("sessions", sessions), ("login_links", links)];
        if config.audit_days > 0 {
            let cutoff = now - chrono::TimeDelta::days(i64::from(config.audit_days));
            out.push(("audit", self.audit.prune_before(cutoff).await?));
        }
        Ok(out)
    }
}

//! OpenID Connect bearer tokens: JWTs from the command centre's identity
//! provider, checked against its published keys.
//!
//! `[auth.oidc]` names the issuer and audience the token must carry, where
//! the provider's public keys are (a JWKS file read at start, or the
//! provider's `jwks_uri`, fetched on first use, again every
//! `jwks_refresh` and when a token names a key not yet known, at most
//! every few seconds), and the claims that give the caller's name, role and
//! scope. A token is
//! accepted when its signature verifies with the key its header names
//! (`kid`, or the only key), its algorithm is one of `algorithms`
//! (asymmetric only: a public key is never used as an HMAC secret), and
//! `exp`, `nbf`, `iss` and `aud` check out (with `leeway`). The role
//! claim must name a Posbon role; the scope claim, when present, is a list
//! (or a space-separated string) of `region:`, `district:` and `mahalla:`
//! items.

use posbon_model::Span;
use std::path::PathBuf;
use std::str::FromStr as _;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::role::Role;
use crate::scope::{Scope, ScopeItem};

/// `[auth.oidc]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The `iss` every token must carry.
    pub issuer: String,
    /// The `aud` every token must include.
    pub audience: String,
    /// The provider's public keys (a JWKS document), read at start.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// Or the provider's `jwks_uri` (https; http only to a loopback
    /// address), fetched when needed.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// How often the keys at `jwks_url` are fetched again (`1h`).
    #[serde(default = "default_refresh")]
    pub jwks_refresh: Span,
    /// A PEM file of the certificate authority of `jwks_url`'s server,
    /// trusted besides the system's.
    #[serde(default)]
    pub jwks_ca_file: Option<PathBuf>,
    /// The claim with the caller's name (for the audit log and lifecycle steps).
    #[serde(default = "default_name_claim")]
    pub name_claim: String,
    /// The claim with the caller's Posbon role.
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    /// The claim with the caller's scope (absent: the whole country).
    #[serde(default = "default_scope_claim")]
    pub scope_claim: String,
    /// Accepted signature algorithms.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf` (`60s`; at most `5m`).
    #[serde(default = "default_leeway")]
    #[serde(with = "posbon_model::span::zero_allowed")]
    pub leeway: Span,
}

fn default_name_claim() -> String {
    "preferred_username".to_owned()
}
fn default_role_claim() -> String {
    "posbon_role".to_owned()
}
fn default_scope_claim() -> String {
    "posbon_scope".to_owned()
}
fn default_algorithms() -> Vec<String> {
    ["RS256", "PS256", "ES256", "EdDSA"]
        .map(str::to_owned)
        .to_vec()
}
fn default_leeway() -> Span {
    Span::from_secs(60)
}
fn default_refresh() -> Span {
    Span::from_hours(1)
}

/// Most clock skew `leeway` may allow: more would keep expired tokens valid.
const MAX_LEEWAY: Span = Span::from_minutes(5);

/// Least time between two fetches of the key set for an unknown `kid`: a
/// stream of forged tokens must not turn into a stream of fetches.
const REFETCH_AFTER: Duration = Duration::from_secs(5);
/// Largest key set accepted from `jwks_url`.
const MAX_JWKS_BYTES: usize = 1 << 20;

/// Who a verified token says the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIdentity {
    /// The name claim (or `sub`).
    pub name: String,
    /// The role claim.
    pub role: Role,
    /// The scope claim.
    pub scope: Scope,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// Not a valid token of this issuer for this audience (401).
    #[error("{0}")]
    Invalid(String),
    /// A valid token whose claims give no usable role or scope (403).
    #[error("{0}")]
    Claims(String),
}

struct Key {
    kid: Option<String>,
    key: DecodingKey,
}

/// Where the keys come from.
enum Source {
    File,
    Url {
        url: String,
        client: reqwest::Client,
        /// When the last fetch was tried; taken while fetching, so that
        /// concurrent requests wait for one fetch.
        fetched: tokio::sync::Mutex<Option<Instant>>,
    },
}

/// A loaded `[auth.oidc]`.
pub struct Oidc {
    config: OidcConfig,
    algorithms: Vec<Algorithm>,
    source: Source,
    keys: RwLock<Arc<Vec<Key>>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.config.issuer)
            .field("keys", &self.keys().len())
            .finish_non_exhaustive()
    }
}

/// The keys of a JWKS document; `origin` names it in errors.
fn parse_jwks(text: &str, origin: &str) -> anyhow::Result<Vec<Key>> {
    let set: JwkSet = serde_json::from_str(text)
        .map_err(|e| anyhow::anyhow!("{origin}: not a JWKS document: {e}"))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| anyhow::anyhow!("{origin}: key {:?}: {e}", jwk.common.key_id))?;
        keys.push(Key {
            kid: jwk.common.key_id.clone(),
            key,
        });
    }
    anyhow::ensure!(!keys.is_empty(), "{origin}: no keys");
    Ok(keys)
}

/// Whether `url` may carry keys: https, or http to a loopback address.
fn check_jwks_url(url: &str) -> anyhow::Result<()> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| anyhow::anyhow!("auth.oidc.jwks_url {url:?}: {e}"))?;
    let host = parsed.host_str().unwrap_or("");
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        other => anyhow::bail!(
            "auth.oidc.jwks_url {url:?}: keys are fetched over https only (http only from a \
             loopback address), not {other}"
        ),
    }
}

impl Oidc {
    /// Reads the keys and checks the settings.
    pub fn load(config: OidcConfig) -> anyhow::Result<Self> {
        let mut algorithms = Vec::new();
        for name in &config.algorithms {
            let alg = Algorithm::from_str(name).map_err(|_| {
                anyhow::anyhow!("auth.oidc.algorithms: {name:?} is not a JWS algorithm")
            })?;
            anyhow::ensure!(
                !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512),
                "auth.oidc.algorithms: {name} is symmetric; only the provider's public keys are trusted"
            );
            algorithms.push(alg);
        }
        anyhow::ensure!(
            !algorithms.is_empty(),
            "auth.oidc.algorithms: name at least one"
        );
        anyhow::ensure!(
            !config.issuer.is_empty(),
            "auth.oidc.issuer: must not be empty"
        );
        anyhow::ensure!(
            !config.audience.is_empty(),
            "auth.oidc.audience: must not be empty"
        );
        anyhow::ensure!(
            config.leeway <= MAX_LEEWAY,
            "auth.oidc.leeway: {} is more than {MAX_LEEWAY}; a longer leeway keeps expired tokens valid",
            config.leeway
        );
        let (source, keys) = match (&config.jwks_file, &config.jwks_url) {
            (Some(file), None) => {
                let origin = format!("auth.oidc.jwks_file {}", file.display());
                let text =
                    std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
                (Source::File, parse_jwks(&text, &origin)?)
            }
            (None, Some(url)) => {
                check_jwks_url(url)?;
                let client = crate::tls::http_client(config.jwks_ca_file.as_deref())
                    .map_err(|e| anyhow::anyhow!("auth.oidc.jwks_ca_file: {e}"))?;
                let source = Source::Url {
                    url: url.clone(),
                    client,
                    fetched: tokio::sync::Mutex::new(None),
                };
                (source, Vec::new())
            }
            (Some(_), Some(_)) => {
                anyhow::bail!("auth.oidc: give jwks_file or jwks_url, not both")
            }
            (None, None) => anyhow::bail!(
                "auth.oidc: give jwks_file (the provider's keys) or jwks_url (its jwks_uri)"
            ),
        };
        Ok(Self {
            config,
            algorithms,
            source,
            keys: RwLock::new(Arc::new(keys)),
        })
    }

    fn keys(&self) -> Arc<Vec<Key>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Fetches the key set at `jwks_url` when it is older than
    /// `jwks_refresh`, or (`unknown_kid`) when a token names a key not
    /// known and the last fetch is more than a few seconds old. A failed
    /// fetch keeps the keys known and is logged.
    async fn refresh(&self, unknown_kid: bool) {
        let Source::Url {
            url,
            client,
            fetched,
        } = &self.source
        else {
            return;
        };
        let mut last = fetched.lock().await;
        let due = match *last {
            None => true,
            Some(at) => {
                let age = at.elapsed();
                age >= self.config.jwks_refresh.to_std()
                    || (unknown_kid && age >= REFETCH_AFTER.min(self.config.jwks_refresh.to_std()))
            }
        };
        if !due {
            return;
        }
        *last = Some(Instant::now());
        match fetch_jwks(client, url).await {
            Ok(keys) => {
                tracing::info!(url = %url, keys = keys.len(), "identity provider keys fetched");
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
            }
            Err(e) => tracing::warn!(
                url = %url,
                error = %format!("{e:#}"),
                "cannot fetch the identity provider's keys; keeping the ones known"
            ),
        }
    }

    /// Whether `token` looks like a JWT (three dot-separated parts).
    pub fn looks_like_jwt(token: &str) -> bool {
        token.split('.').count() == 3 && !token.starts_with(crate::identities::TOKEN_PREFIX)
    }

    /// Verifies a token and reads who it is for.
    pub async fn verify(&self, token: &str) -> Result<OidcIdentity, OidcError> {
        let invalid = |m: &str| {
            OidcError::Invalid(format!("the identity provider's token is not valid: {m}"))
        };
        let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(&e.to_string()))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(invalid(&format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let find = |keys: &Vec<Key>| -> Option<usize> {
            match &header.kid {
                Some(kid) => keys
                    .iter()
                    .position(|k| k.kid.as_deref() == Some(kid.as_str())),
                None if keys.len() == 1 => Some(0),
                None => None,
            }
        };
        self.refresh(false).await;
        let mut keys = self.keys();
        if find(&keys).is_none() {
            self.refresh(true).await;
            keys = self.keys();
        }
        let key = find(&keys)
            .map(|i| &keys[i])
            .ok_or_else(|| invalid("no key of the provider matches the token's kid"))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[self.config.issuer.as_str()]);
        validation.set_audience(&[self.config.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = u64::try_from(self.config.leeway.secs()).unwrap_or(0);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(|e| invalid(&e.to_string()))?;
        let claims = data.claims;
        let name = claims
            .get(&self.config.name_claim)
            .or_else(|| claims.get("sub"))
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty() && n.len() <= 128)
            .ok_or_else(|| {
                OidcError::Claims(format!(
                    "the token has no {} or sub",
                    self.config.name_claim
                ))
            })?
            .to_owned();
        let role = claims
            .get(&self.config.role_claim)
            .and_then(Value::as_str)
            .ok_or_else(|| {
                OidcError::Claims(format!(
                    "the token has no {} claim naming a Posbon role",
                    self.config.role_claim
                ))
            })?
            .parse::<Role>()
            .map_err(|e| OidcError::Claims(format!("{}: {e}", self.config.role_claim)))?;
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
        {
            return Err(OidcError::Claims(format!(
                "{}: use letters, digits, '.', '_', '-' or '@'",
                self.config.name_claim
            )));
        }
        let items: Vec<&str> = match claims.get(&self.config.scope_claim) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => s.split_whitespace().collect(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str().ok_or_else(|| {
                        OidcError::Claims(format!(
                            "{}: items must be strings",
                            self.config.scope_claim
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(OidcError::Claims(format!(
                    "{}: must be a list of region:, district: or mahalla: items",
                    self.config.scope_claim
                )));
            }
        };
        let scope = items
            .into_iter()
            .map(|s| s.parse::<ScopeItem>())
            .collect::<Result<Scope, _>>()
            .map_err(|e| OidcError::Claims(format!("{}: {e}", self.config.scope_claim)))?;
        if role == Role::Admin && !scope.is_empty() {
            return Err(OidcError::Claims(
                "an admin has the whole country: the token gives an admin a scope".to_owned(),
            ));
        }
        Ok(OidcIdentity { name, role, scope })
    }
}

async fn fetch_jwks(client: &reqwest::Client, url: &str) -> anyhow::Result<Vec<Key>> {
    use futures::StreamExt as _;
    let response = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(Duration::from_secs(10))
        .send()
        .await?;
    let status = response.status();
    anyhow::ensure!(status.is_success(), "{url} answered {status}");
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk?);
        anyhow::ensure!(
            body.len() <= MAX_JWKS_BYTES,
            "{url}: the key set is larger than {MAX_JWKS_BYTES} bytes"
        );
    }
    parse_jwks(&String::from_utf8_lossy(&body), url)
}

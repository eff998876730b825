//! OpenID Connect bearer tokens: JWTs from the command centre's identity
//! provider, checked against its published keys.
//!
//! `[auth.oidc]` names the issuer and audience the token must carry, a JWKS
//! file with the provider's public keys (fetch it from the provider's
//! `jwks_uri` and replace the file when keys rotate; it is read at start),
//! and the claims that give the caller's name, role and scope. A token is
//! accepted when its signature verifies with the key its header names
//! (`kid`, or the only key), its algorithm is one of `algorithms`
//! (asymmetric only: a public key is never used as an HMAC secret), and
//! `exp`, `nbf`, `iss` and `aud` check out (with `leeway_secs`). The role
//! claim must name a Posbon role; the scope claim, when present, is a list
//! (or a space-separated string) of `region:`, `district:` and `mahalla:`
//! items.

use std::path::PathBuf;
use std::str::FromStr as _;

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
    /// The provider's public keys (a JWKS document).
    pub jwks_file: PathBuf,
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
    /// Clock skew allowed on `exp` and `nbf`, seconds.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
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
fn default_leeway() -> u64 {
    60
}

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

/// A loaded `[auth.oidc]`.
pub struct Oidc {
    config: OidcConfig,
    algorithms: Vec<Algorithm>,
    keys: Vec<Key>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.config.issuer)
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
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
        let text = std::fs::read_to_string(&config.jwks_file).map_err(|e| {
            anyhow::anyhow!("auth.oidc.jwks_file {}: {e}", config.jwks_file.display())
        })?;
        let set: JwkSet = serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "auth.oidc.jwks_file {}: not a JWKS document: {e}",
                config.jwks_file.display()
            )
        })?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let key = DecodingKey::from_jwk(jwk).map_err(|e| {
                anyhow::anyhow!(
                    "auth.oidc.jwks_file {}: key {:?}: {e}",
                    config.jwks_file.display(),
                    jwk.common.key_id
                )
            })?;
            keys.push(Key {
                kid: jwk.common.key_id.clone(),
                key,
            });
        }
        anyhow::ensure!(
            !keys.is_empty(),
            "auth.oidc.jwks_file {}: no keys",
            config.jwks_file.display()
        );
        Ok(Self {
            config,
            algorithms,
            keys,
        })
    }

    /// Whether `token` looks like a JWT (three dot-separated parts).
    pub fn looks_like_jwt(token: &str) -> bool {
        token.split('.').count() == 3 && !token.starts_with(crate::identities::TOKEN_PREFIX)
    }

    /// Verifies a token and reads who it is for.
    pub fn verify(&self, token: &str) -> Result<OidcIdentity, OidcError> {
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
        let key = match &header.kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid.as_str())),
            None if self.keys.len() == 1 => self.keys.first(),
            None => None,
        }
        .ok_or_else(|| invalid("no key of the provider matches the token's kid"))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[self.config.issuer.as_str()]);
        validation.set_audience(&[self.config.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.config.leeway_secs;
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

//! API tokens: [`TokenRecord`], and making, listing, revoking and checking
//! them.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::role::Role;
use crate::scope::Scope;
use crate::secret::{random_hex, same, sha256_hex};

use super::users::check_name;
use super::{Identities, IdentityError, TOKEN, key};

/// The start of every API token.
pub const TOKEN_PREFIX: &str = "psb_";

/// An API token as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Public id (12 hex digits).
    pub id: String,
    /// What it is for (`camera-gateway`, `grafana`, ...).
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its scope (empty: the whole country).
    pub scope: Scope,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops working (`None`: never).
    pub expires_at: Option<DateTime<Utc>>,
    /// Who made it.
    pub created_by: String,
    /// SHA-256 of the secret part (hex). Never serialised to clients.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret_sha256: String,
}

impl TokenRecord {
    /// The record without its hash, for listings.
    pub fn public(&self) -> Self {
        Self {
            secret_sha256: String::new(),
            ..self.clone()
        }
    }
}

/// What checking a presented token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    /// A valid token.
    Valid(TokenRecord),
    /// A real token past its expiry.
    Expired,
    /// Not a token of this store.
    Invalid,
}

impl Identities {
    // ----- tokens -----

    /// Makes a token; the secret is in the returned string only.
    pub async fn create_token(
        &self,
        name: &str,
        role: Role,
        scope: Scope,
        expires_in: Option<TimeDelta>,
        created_by: &str,
    ) -> Result<(TokenRecord, String), IdentityError> {
        check_name("token name", name)?;
        let id = random_hex(6);
        let secret = random_hex(32);
        let now = Utc::now();
        let record = TokenRecord {
            id: id.clone(),
            name: name.to_owned(),
            role,
            scope,
            created_at: now,
            expires_at: expires_in.map(|d| now + d),
            created_by: created_by.to_owned(),
            secret_sha256: sha256_hex(secret.as_bytes()),
        };
        self.put(key(TOKEN, &id), "token", &record).await?;
        Ok((record, format!("{TOKEN_PREFIX}{id}_{secret}")))
    }

    /// Every token, without hashes.
    pub async fn tokens(&self) -> Result<Vec<TokenRecord>, IdentityError> {
        Ok(self
            .list::<TokenRecord>(TOKEN, "token")
            .await?
            .iter()
            .map(TokenRecord::public)
            .collect())
    }

    /// Removes a token; false when there was none.
    pub async fn revoke_token(&self, id: &str) -> Result<bool, IdentityError> {
        let k = key(TOKEN, id);
        if self.store.get(&k).await?.is_none() {
            return Ok(false);
        }
        let (start, end) = (k.clone(), posbon_store::keys::successor(&k));
        self.store.delete_range(&start, &end).await?;
        Ok(true)
    }

    /// Whether the token with public id `id` exists and has not expired at
    /// `now` (for a connection that authenticated with it earlier).
    pub async fn token_active(&self, id: &str, now: DateTime<Utc>) -> Result<bool, IdentityError> {
        Ok(self
            .read::<TokenRecord>(&key(TOKEN, id), "token")
            .await?
            .is_some_and(|r| r.expires_at.is_none_or(|t| t > now)))
    }

    /// Checks a presented token at `now`.
    pub async fn check_token(
        &self,
        presented: &str,
        now: DateTime<Utc>,
    ) -> Result<TokenCheck, IdentityError> {
        let Some(rest) = presented.strip_prefix(TOKEN_PREFIX) else {
            return Ok(TokenCheck::Invalid);
        };
        let Some((id, secret)) = rest.split_once('_') else {
            return Ok(TokenCheck::Invalid);
        };
        if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(TokenCheck::Invalid);
        }
        let Some(record) = self.read::<TokenRecord>(&key(TOKEN, id), "token").await? else {
            return Ok(TokenCheck::Invalid);
        };
        if !same(&sha256_hex(secret.as_bytes()), &record.secret_sha256) {
            return Ok(TokenCheck::Invalid);
        }
        if record.expires_at.is_some_and(|t| t <= now) {
            return Ok(TokenCheck::Expired);
        }
        Ok(TokenCheck::Valid(record))
    }
}

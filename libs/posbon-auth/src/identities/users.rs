//! Local users: [`UserRecord`], the rules for names and passwords, and
//! Argon2id password hashing off the async workers.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::role::Role;
use crate::scope::Scope;
use crate::secret::random_hex;

use super::{FAILURES, Identities, IdentityError, USER, key};

/// A local user as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// Login name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Scope (empty: the whole country).
    pub scope: Scope,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Argon2id PHC string. Never serialised to clients.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password_hash: String,
}

impl UserRecord {
    /// The record without its hash, for listings.
    pub fn public(&self) -> Self {
        Self {
            password_hash: String::new(),
            ..self.clone()
        }
    }
}

/// Checks a user or token name: 1 to 64 characters of `[A-Za-z0-9._@-]`.
pub fn check_name(what: &str, name: &str) -> Result<(), IdentityError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
    {
        return Err(IdentityError::Invalid(format!(
            "{what} {name:?}: use 1 to 64 letters, digits, '.', '_', '-' or '@'"
        )));
    }
    Ok(())
}

/// Checks a new password: 12 to 1024 bytes.
pub fn check_password(password: &str) -> Result<(), IdentityError> {
    if password.len() < 12 || password.len() > 1024 {
        return Err(IdentityError::Invalid(
            "password: use 12 to 1024 characters".to_owned(),
        ));
    }
    Ok(())
}

fn hash_password(password: &str) -> Result<String, IdentityError> {
    let salt = SaltString::encode_b64(&hex::decode(random_hex(16)).unwrap_or_default())
        .map_err(|e| IdentityError::Invalid(format!("cannot make a salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| IdentityError::Invalid(format!("cannot hash the password: {e}")))
}

pub(super) fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// Password hashing takes tens of milliseconds of CPU and 19 MiB: it runs
/// on the blocking pool, at most two at a time, never on the async workers.
pub(super) async fn off_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, IdentityError> {
    static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
    let _permit = HASHING
        .acquire()
        .await
        .map_err(|_| IdentityError::Invalid("password hashing is closed".to_owned()))?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| IdentityError::Invalid(format!("password hashing failed: {e}")))
}

/// A fixed hash checked when the user does not exist, so that the answer
/// takes as long as for a wrong password.
pub(super) fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("not a password of anybody").unwrap_or_default())
}

impl Identities {
    // ----- users -----

    /// Adds a user (fails if the name exists).
    pub async fn add_user(
        &self,
        name: &str,
        role: Role,
        scope: Scope,
        password: &str,
    ) -> Result<UserRecord, IdentityError> {
        check_name("user name", name)?;
        check_password(password)?;
        if self.user(name).await?.is_some() {
            return Err(IdentityError::Exists(format!(
                "user {name:?} exists already"
            )));
        }
        let record = UserRecord {
            name: name.to_owned(),
            role,
            scope,
            created_at: Utc::now(),
            password_hash: {
                let password = password.to_owned();
                off_thread(move || hash_password(&password)).await??
            },
        };
        self.put(key(USER, name), "user", &record).await?;
        Ok(record.public())
    }

    /// A user's record (with its hash).
    pub async fn user(&self, name: &str) -> Result<Option<UserRecord>, IdentityError> {
        self.read(&key(USER, name), "user").await
    }

    /// Every user, without hashes.
    pub async fn users(&self) -> Result<Vec<UserRecord>, IdentityError> {
        Ok(self
            .list::<UserRecord>(USER, "user")
            .await?
            .iter()
            .map(UserRecord::public)
            .collect())
    }

    /// Removes a user and, with it, every session of theirs (sessions are
    /// checked against the user on every request). False when there was none.
    pub async fn remove_user(&self, name: &str) -> Result<bool, IdentityError> {
        let k = key(USER, name);
        if self.store.get(&k).await?.is_none() {
            return Ok(false);
        }
        self.store
            .delete_range(&k, &posbon_store::keys::successor(&k))
            .await?;
        let f = key(FAILURES, name);
        self.store
            .delete_range(&f, &posbon_store::keys::successor(&f))
            .await?;
        Ok(true)
    }
}

//! Identities in the store: API tokens, local users with passwords, page
//! sessions and one-time login links, under the `u` prefix.
//!
//! | key | value |
//! |---|---|
//! | `u` · `t` · token id | [`TokenRecord`]: the SHA-256 of the secret, never the secret |
//! | `u` · `u` · user name | [`UserRecord`]: an Argon2id password hash, failed-login state |
//! | `u` · `s` · SHA-256 of the session id | [`SessionRecord`] |
//! | `u` · `l` · SHA-256 of the link code | [`LinkRecord`] |
//! | `u` · `f` · name | consecutive failed logins of a name and its lock |
//!
//! A token reads `psb_<id>_<secret>`: the id (12 hex digits) finds the
//! record, the secret (64 hex digits, 256 bits from the operating system)
//! is compared with the stored hash in constant time. A session id or a
//! link code is looked up by its hash, so the store never holds anything a
//! reader could present. Passwords are hashed with Argon2id (the argon2
//! crate's defaults: 19 MiB, 2 passes) on the blocking pool, two at a time;
//! after [`IdentityLimits::max_failures`] consecutive failures a name (a
//! user's or not) is locked for a time that doubles with each further
//! failure, up to 15 minutes. A login never rewrites the user record, so a
//! removal cannot be undone by a login in flight.

mod login;
mod sessions;
mod tokens;
mod users;

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt as _;
use posbon_store::codec::{decode_json, encode_json};
use posbon_store::keys::{IDENTITY, prefix_range};
use posbon_store::{EventStoreExt as _, Store};
use serde::Serialize;

pub use login::LoginFailure;
pub use sessions::{LinkRecord, SessionRecord};
pub use tokens::{TOKEN_PREFIX, TokenCheck, TokenRecord};
pub use users::{UserRecord, check_name, check_password};

const TOKEN: u8 = b't';
const USER: u8 = b'u';
const SESSION: u8 = b's';
const LINK: u8 = b'l';
const FAILURES: u8 = b'f';
const ADDRESS: u8 = b'a';

fn key(kind: u8, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + name.len());
    key.extend_from_slice(&[IDENTITY, kind]);
    key.extend_from_slice(name.as_bytes());
    key
}

/// An error of the identity store.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The request is wrong (a name, a password, a scope); the message says how.
    #[error("{0}")]
    Invalid(String),
    /// The thing already exists.
    #[error("{0}")]
    Exists(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] posbon_store::StoreError),
}

/// Limits of logins and sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityLimits {
    /// Consecutive failures before a user is locked.
    pub max_failures: u32,
    /// How long a session lasts.
    pub session: Duration,
}

impl Default for IdentityLimits {
    fn default() -> Self {
        Self {
            max_failures: 5,
            session: Duration::from_secs(12 * 3600),
        }
    }
}

/// The identities of one store.
#[derive(Clone)]
pub struct Identities {
    store: Store,
    limits: IdentityLimits,
    /// Logins of one name take turns (striped by the name's hash), so
    /// parallel guesses cannot share one failure count.
    turns: std::sync::Arc<[tokio::sync::Mutex<()>; 64]>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identities")
            .field("store", &self.store.name())
            .finish_non_exhaustive()
    }
}

impl Identities {
    /// The identities kept in `store`.
    pub fn new(store: Store, limits: IdentityLimits) -> Self {
        Self {
            store,
            limits,
            turns: std::sync::Arc::new(std::array::from_fn(|_| tokio::sync::Mutex::new(()))),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &IdentityLimits {
        &self.limits
    }

    async fn put<T: Serialize>(
        &self,
        key: Vec<u8>,
        what: &str,
        value: &T,
    ) -> Result<(), IdentityError> {
        Ok(self
            .store
            .put_batch(vec![(key, encode_json(what, value)?)])
            .await?)
    }

    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
        what: &str,
    ) -> Result<Option<T>, IdentityError> {
        match self.store.get(key).await? {
            Some(bytes) => Ok(Some(decode_json(what, &bytes)?)),
            None => Ok(None),
        }
    }

    async fn list<T: serde::de::DeserializeOwned>(
        &self,
        kind: u8,
        what: &'static str,
    ) -> Result<Vec<T>, IdentityError> {
        let (start, end) = prefix_range(&[IDENTITY, kind]);
        let pairs: Vec<_> = self
            .store
            .scan_stream(start, end, 256)
            .try_collect()
            .await?;
        let mut out = Vec::with_capacity(pairs.len());
        for (_, value) in pairs {
            out.push(decode_json(what, &value)?);
        }
        Ok(out)
    }

    async fn any(&self, kind: u8) -> Result<bool, IdentityError> {
        let (start, end) = prefix_range(&[IDENTITY, kind]);
        Ok(!self.store.scan(&start, &end, 1).await?.is_empty())
    }

    /// Deletes sessions and login links that expired before `now` (they are
    /// refused anyway; this keeps them from piling up). Returns how many of
    /// each went.
    pub async fn prune_expired(&self, now: DateTime<Utc>) -> Result<(u64, u64), IdentityError> {
        #[derive(serde::Deserialize)]
        struct Expiring {
            expires_at: DateTime<Utc>,
        }
        let mut counts = [0u64; 3];
        for (i, kind) in [SESSION, LINK, ADDRESS].into_iter().enumerate() {
            let (start, end) = prefix_range(&[IDENTITY, kind]);
            let expired: Vec<Vec<u8>> = self
                .store
                .scan_stream(start, end, 256)
                .try_filter_map(|(k, v)| async move {
                    // A record that does not read is left for a person to see.
                    Ok(decode_json::<Expiring>("expiring identity record", &v)
                        .ok()
                        .filter(|r| r.expires_at <= now)
                        .map(|_| k))
                })
                .try_collect()
                .await?;
            if let Some(c) = counts.get_mut(i) {
                *c = expired.len() as u64;
            }
            self.store.delete_keys(expired).await?;
        }
        Ok((counts[0], counts[1]))
    }

    /// Whether no token and no user exists yet.
    pub async fn is_empty(&self) -> Result<bool, IdentityError> {
        Ok(!self.any(TOKEN).await? && !self.any(USER).await?)
    }
}

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

use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, TimeDelta, Utc};
use futures::TryStreamExt as _;
use posbon_store::codec::{decode_json, encode_json};
use posbon_store::keys::{IDENTITY, prefix_range};
use posbon_store::{EventStoreExt as _, Store};
use serde::{Deserialize, Serialize};

use crate::role::Role;
use crate::scope::Scope;
use crate::secret::{random_hex, same, sha256_hex};

const TOKEN: u8 = b't';
const USER: u8 = b'u';
const SESSION: u8 = b's';
const LINK: u8 = b'l';
const FAILURES: u8 = b'f';
const ADDRESS: u8 = b'a';

/// Tries of a read-modify-write by compare-and-swap before giving up.
const MAX_SWAPS: usize = 32;

/// The start of every API token.
pub const TOKEN_PREFIX: &str = "psb_";

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

/// Failed logins of a name (kept apart from the user, and for names that
/// are no user too, so that the answers do not tell them apart).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct FailureRecord {
    /// Consecutive failed logins.
    failures: u32,
    /// No login before this time.
    locked_until: Option<DateTime<Utc>>,
}

/// Failed logins from one client address in a window
/// ([`crate::throttle`]), shared by every process on the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AddressRecord {
    /// Failed logins since the window started.
    pub(crate) failures: u32,
    /// When the window ends (the record is pruned after).
    pub(crate) expires_at: DateTime<Utc>,
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

/// A page session as stored (keyed by the hash of its id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The user.
    pub user: String,
    /// The CSRF token cookie-authenticated writes must carry.
    pub csrf: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
}

/// A one-time login link as stored (keyed by the hash of its code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    /// The user it logs in.
    pub user: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was made: a link older than its user (made for an earlier
    /// user of the same name) logs nobody in. `None` in links made before
    /// this was recorded, which are refused.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
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

/// Why a login failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginFailure {
    /// Unknown user or wrong password (the two are not told apart).
    Invalid,
    /// Too many failures: try again after this long.
    Throttled(Duration),
    /// Too many failures from the client's address ([`crate::throttle`]):
    /// its password was not looked at; try again after this long.
    AddressThrottled(Duration),
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

fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// Password hashing takes tens of milliseconds of CPU and 19 MiB: it runs
/// on the blocking pool, at most two at a time, never on the async workers.
async fn off_thread<T: Send + 'static>(
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
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("not a password of anybody").unwrap_or_default())
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

    /// Changes the record at `key` with `change` (given what it holds;
    /// `None` back leaves it as it is) by compare-and-swap, again after a
    /// short random pause on a conflict, so that concurrent changes from
    /// several processes are all kept. Returns what the record holds after.
    async fn swap<T: Serialize + serde::de::DeserializeOwned + Clone>(
        &self,
        key: &[u8],
        what: &str,
        mut change: impl FnMut(Option<T>) -> Option<T>,
    ) -> Result<Option<T>, IdentityError> {
        for attempt in 0..MAX_SWAPS {
            if attempt > 0 {
                let jitter = u64::from_str_radix(&random_hex(1), 16).unwrap_or(0);
                let pause = Duration::from_micros(attempt as u64 * 200 + jitter * 4);
                tokio::time::sleep(pause).await;
            }
            let current = self.store.get(key).await?;
            let value: Option<T> = match &current {
                Some(bytes) => Some(decode_json(what, bytes)?),
                None => None,
            };
            let Some(new) = change(value.clone()) else {
                return Ok(value);
            };
            let bytes = encode_json(what, &new)?;
            match self
                .store
                .compare_and_swap(key, current.as_deref(), bytes)
                .await?
            {
                posbon_store::Swap::Done => return Ok(Some(new)),
                posbon_store::Swap::Conflict(_) => continue,
            }
        }
        Err(IdentityError::Store(posbon_store::StoreError::new(
            posbon_store::StoreErrorKind::Unavailable,
            format!("{what}: {MAX_SWAPS} concurrent changes in a row"),
        )))
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

    /// Checks a name and password at `now`, counting failures: after
    /// `max_failures` in a row the name is locked for a time that doubles
    /// with each further failure (up to 15 minutes). Unknown names are
    /// counted and locked the same way, and take as long.
    pub async fn login(
        &self,
        name: &str,
        password: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<UserRecord, LoginFailure>, IdentityError> {
        if check_name("user name", name).is_err() || password.len() > 1024 {
            return Ok(Err(LoginFailure::Invalid));
        }
        let stripe = sha256_hex(name.as_bytes()).bytes().fold(0usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(b))
        }) % self.turns.len();
        let _turn = self.turns[stripe].lock().await;
        let failures_key = key(FAILURES, name);
        let failures: FailureRecord = self
            .read(&failures_key, "login failures")
            .await?
            .unwrap_or_default();
        if let Some(until) = failures.locked_until.filter(|t| *t > now) {
            let wait = (until - now).to_std().unwrap_or_default();
            return Ok(Err(LoginFailure::Throttled(
                wait.max(Duration::from_secs(1)),
            )));
        }
        let user = self.user(name).await?;
        let hash = user
            .as_ref()
            .map_or_else(|| dummy_hash().to_owned(), |u| u.password_hash.clone());
        let password = password.to_owned();
        let verified = off_thread(move || verify_password(&password, &hash)).await?;
        if let Some(user) = user.filter(|_| verified) {
            if failures != FailureRecord::default() {
                self.store
                    .delete_range(&failures_key, &posbon_store::keys::successor(&failures_key))
                    .await?;
            }
            return Ok(Ok(user));
        }
        // Counted by compare-and-swap: failures sent to several API
        // processes at once are all counted.
        let max = self.limits.max_failures;
        self.swap(
            &failures_key,
            "login failures",
            |current: Option<FailureRecord>| {
                let mut failures = current.unwrap_or_default();
                failures.failures = failures.failures.saturating_add(1);
                if failures.failures >= max {
                    let over = failures.failures - max;
                    let secs = (1u64 << over.min(10)).min(900);
                    failures.locked_until = Some(now + TimeDelta::seconds(secs as i64));
                }
                Some(failures)
            },
        )
        .await?;
        Ok(Err(LoginFailure::Invalid))
    }

    /// Counts a login attempt of `client` at `now`: a new window of length
    /// `window` when none is running. Returns the record after.
    pub(crate) async fn count_address_attempt(
        &self,
        client: &str,
        window: TimeDelta,
        now: DateTime<Utc>,
    ) -> Result<AddressRecord, IdentityError> {
        let fresh = AddressRecord {
            failures: 1,
            expires_at: now + window,
        };
        let record = self
            .swap(
                &key(ADDRESS, client),
                "address failures",
                |current: Option<AddressRecord>| {
                    Some(match current {
                        Some(r) if r.expires_at > now => AddressRecord {
                            failures: r.failures.saturating_add(1),
                            expires_at: r.expires_at,
                        },
                        _ => fresh.clone(),
                    })
                },
            )
            .await?;
        Ok(record.unwrap_or(fresh))
    }

    /// Takes back one attempt of `client` (a login that succeeded), in the
    /// window running at `now`.
    pub(crate) async fn uncount_address_attempt(
        &self,
        client: &str,
        now: DateTime<Utc>,
    ) -> Result<(), IdentityError> {
        self.swap(
            &key(ADDRESS, client),
            "address failures",
            |current: Option<AddressRecord>| match current {
                Some(r) if r.expires_at > now && r.failures > 0 => Some(AddressRecord {
                    failures: r.failures - 1,
                    expires_at: r.expires_at,
                }),
                _ => None,
            },
        )
        .await
        .map(drop)
    }

    // ----- sessions -----

    /// Starts a session for `user`: returns its id (for the cookie) and the
    /// record (with the CSRF token).
    pub async fn create_session(
        &self,
        user: &str,
    ) -> Result<(String, SessionRecord), IdentityError> {
        let id = random_hex(32);
        let now = Utc::now();
        let record = SessionRecord {
            user: user.to_owned(),
            csrf: random_hex(32),
            created_at: now,
            expires_at: now
                + TimeDelta::from_std(self.limits.session).unwrap_or(TimeDelta::hours(12)),
        };
        self.put(key(SESSION, &sha256_hex(id.as_bytes())), "session", &record)
            .await?;
        Ok((id, record))
    }

    /// The live session with this id.
    pub async fn session(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<SessionRecord>, IdentityError> {
        if id.len() != 64 {
            return Ok(None);
        }
        let record: Option<SessionRecord> = self
            .read(&key(SESSION, &sha256_hex(id.as_bytes())), "session")
            .await?;
        Ok(record.filter(|s| s.expires_at > now))
    }

    /// Ends a session.
    pub async fn end_session(&self, id: &str) -> Result<(), IdentityError> {
        let k = key(SESSION, &sha256_hex(id.as_bytes()));
        self.store
            .delete_range(&k, &posbon_store::keys::successor(&k))
            .await?;
        Ok(())
    }

    // ----- login links -----

    /// A one-time code that logs `user` in until `ttl` has passed.
    pub async fn create_login_link(
        &self,
        user: &str,
        ttl: Duration,
    ) -> Result<String, IdentityError> {
        if self.user(user).await?.is_none() {
            return Err(IdentityError::Invalid(format!("no user {user:?}")));
        }
        let code = random_hex(32);
        let now = Utc::now();
        let record = LinkRecord {
            user: user.to_owned(),
            expires_at: now + TimeDelta::from_std(ttl).unwrap_or(TimeDelta::hours(1)),
            created_at: Some(now),
        };
        self.put(
            key(LINK, &sha256_hex(code.as_bytes())),
            "login link",
            &record,
        )
        .await?;
        Ok(code)
    }

    /// Uses a login link: the user it logs in, once.
    pub async fn redeem_login_link(
        &self,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, IdentityError> {
        if code.len() != 64 {
            return Ok(None);
        }
        let k = key(LINK, &sha256_hex(code.as_bytes()));
        let record: Option<LinkRecord> = self.read(&k, "login link").await?;
        let Some(record) = record else {
            return Ok(None);
        };
        self.store
            .delete_range(&k, &posbon_store::keys::successor(&k))
            .await?;
        if record.expires_at <= now {
            return Ok(None);
        }
        // The user must still be the one the link was made for: removed and
        // made again (another role, another password) is another user.
        let Some(user) = self.user(&record.user).await? else {
            return Ok(None);
        };
        let made_for = record
            .created_at
            .is_some_and(|made| made >= user.created_at);
        Ok(made_for.then_some(record.user))
    }
}

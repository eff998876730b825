//! Logging in with a name and a password, and its limits: the consecutive
//! failures of a name and the attempts from a client address, both counted
//! by compare-and-swap so that every process on the store shares them.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use posbon_store::codec::{decode_json, encode_json};
use serde::{Deserialize, Serialize};

use crate::secret::{random_hex, sha256_hex};

use super::users::{UserRecord, check_name, dummy_hash, off_thread, verify_password};
use super::{ADDRESS, FAILURES, Identities, IdentityError, key};

/// Tries of a read-modify-write by compare-and-swap before giving up.
const MAX_SWAPS: usize = 32;

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

impl Identities {
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
}

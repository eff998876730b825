//! Page sessions ([`SessionRecord`]) and one-time login links
//! ([`LinkRecord`]).

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::secret::{random_hex, sha256_hex};

use super::{Identities, IdentityError, LINK, SESSION, key};

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

impl Identities {
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

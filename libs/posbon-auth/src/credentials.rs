//! Credentials to callers, for every front end: the HTTP guard's bearer
//! tokens ([`crate::http`]) and the PostgreSQL protocol's password
//! (`posbon-pg`) go through these two functions, so a token or a user is
//! checked one way whatever it arrives by.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::http::{Caller, Via};
use crate::identities::{IdentityError, LoginFailure, TOKEN_PREFIX, TokenCheck};
use crate::oidc::{Oidc, OidcError};
use crate::{Auth, Scope};

/// Why a credential did not give a caller.
#[derive(Debug)]
pub enum Refused {
    /// Not a valid token, JWT, or name and password (which one is not told).
    Invalid(String),
    /// A real token past its expiry.
    Expired,
    /// Too many failed logins for this name: try again after this long.
    Throttled(Duration),
    /// A valid identity-provider token whose claims give no usable role or
    /// scope.
    Claims(String),
    /// The identity's scope no longer matches the registry.
    Scope(String),
    /// The identity store failed.
    Unavailable(IdentityError),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Invalid(m) | Refused::Claims(m) => f.write_str(m),
            Refused::Expired => f.write_str("the token has expired"),
            Refused::Throttled(wait) => write!(
                f,
                "too many failed logins: try again in {} s",
                wait.as_secs().max(1)
            ),
            Refused::Scope(e) => write!(
                f,
                "your scope no longer matches the registry ({e}); ask an admin"
            ),
            Refused::Unavailable(_) => f.write_str("the identity store is not available; retry"),
        }
    }
}

impl Auth {
    /// The caller a bearer credential names: an API token (`psb_…`), or a
    /// JWT of the identity provider when `[auth.oidc]` is configured.
    pub async fn caller_of_token(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Caller, Refused> {
        if let Some(oidc) = self.oidc.as_ref().filter(|_| Oidc::looks_like_jwt(token)) {
            return match oidc.verify(token).await {
                Ok(id) => Ok(Caller {
                    scope: self.scope_of(&id.scope)?,
                    name: id.name,
                    role: id.role,
                    via: Via::Oidc,
                }),
                Err(OidcError::Invalid(m)) => Err(Refused::Invalid(m)),
                Err(OidcError::Claims(m)) => Err(Refused::Claims(m)),
            };
        }
        match self.identities.check_token(token, now).await {
            Ok(TokenCheck::Valid(record)) => Ok(Caller {
                scope: self.scope_of(&record.scope)?,
                name: record.name,
                role: record.role,
                via: Via::Token { id: record.id },
            }),
            Ok(TokenCheck::Expired) => Err(Refused::Expired),
            Ok(TokenCheck::Invalid) => Err(Refused::Invalid("the token is not valid".into())),
            Err(e) => Err(Refused::Unavailable(e)),
        }
    }

    /// The caller a user name and password give, for a protocol that sends
    /// a password (PostgreSQL): a password that is an API token or a JWT
    /// authenticates as that token whatever the name; otherwise it is the
    /// named user's password, with the same failure counting and lock-out
    /// as the page's login.
    pub async fn caller_of_password(
        &self,
        name: &str,
        password: &str,
        client: Option<std::net::IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<Caller, Refused> {
        if password.starts_with(TOKEN_PREFIX)
            || (self.oidc.is_some() && Oidc::looks_like_jwt(password))
        {
            return self.caller_of_token(password, now).await;
        }
        match self.login_from(name, password, client, now).await {
            Ok(Ok(user)) => Ok(Caller {
                scope: self.scope_of(&user.scope)?,
                name: user.name,
                role: user.role,
                via: Via::Password,
            }),
            Ok(Err(LoginFailure::Invalid)) => Err(Refused::Invalid(
                "the user name or password is not valid".into(),
            )),
            Ok(Err(LoginFailure::Throttled(wait) | LoginFailure::AddressThrottled(wait))) => {
                Err(Refused::Throttled(wait))
            }
            Err(e) => Err(Refused::Unavailable(e)),
        }
    }

    /// A password login from `client` (when known): counted against the
    /// address first and refused unread once the address has used up its
    /// attempts ([`crate::throttle`]), otherwise
    /// [`crate::identities::Identities::login`]; a success is taken back.
    pub async fn login_from(
        &self,
        name: &str,
        password: &str,
        client: Option<std::net::IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<Result<crate::identities::UserRecord, LoginFailure>, IdentityError> {
        // Counted before the password is looked at, so that attempts sent at
        // once are each counted; a login that succeeds is taken back.
        if let Some(c) = client
            && let Err(wait) = self
                .address_throttle
                .attempt(&self.identities, c, now)
                .await?
        {
            return Ok(Err(LoginFailure::AddressThrottled(wait)));
        }
        let outcome = self.identities.login(name, password, now).await;
        if let (Some(c), Ok(Ok(_))) = (client, &outcome) {
            self.address_throttle
                .succeeded(&self.identities, c, now)
                .await?;
        }
        outcome
    }

    /// Whether `caller`'s credential still holds at `now`: its token is not
    /// revoked or expired, its user not removed. Front ends that keep a
    /// connection open (PostgreSQL) check it before each statement.
    pub async fn still_valid(
        &self,
        caller: &Caller,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, IdentityError> {
        match &caller.via {
            Via::Token { id } => self.identities.token_active(id, now).await,
            Via::Password | Via::Session { .. } => Ok(self
                .identities
                .user(&caller.name)
                .await?
                .is_some_and(|u| u.created_at <= since)),
            // A provider's JWT is checked at log-in only: its expiry is not
            // kept with the caller (a known gap of long-lived connections;
            // SECURITY.md).
            Via::Oidc => Ok(true),
        }
    }

    fn scope_of(&self, scope: &Scope) -> Result<crate::ResolvedScope, Refused> {
        self.resolve(scope).map_err(Refused::Scope)
    }
}

//! The authenticated caller of a request ([`Caller`]) and how they proved
//! who they are ([`Via`]).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::Response;

use crate::audit::AuditEntry;
use crate::role::{Permission, Role};
use crate::scope::ResolvedScope;

use super::problem::unauthorized;

/// How a caller proved who they are.
#[derive(Clone, PartialEq, Eq)]
pub enum Via {
    /// An API token with this id.
    Token {
        /// The token's public id.
        id: String,
    },
    /// A bearer JWT of the identity provider (`[auth.oidc]`).
    Oidc,
    /// A local user's name and password, on a protocol other than the
    /// page's (PostgreSQL).
    Password,
    /// A page session, with its CSRF token.
    Session {
        /// The session's CSRF token.
        csrf: String,
        /// The session id (to end it on log-out).
        id: String,
    },
}

impl std::fmt::Debug for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Via::Token { id } => f.debug_struct("Token").field("id", id).finish(),
            Via::Oidc => f.write_str("Oidc"),
            Via::Password => f.write_str("Password"),
            Via::Session { .. } => f.write_str("Session { <secret> }"),
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user's or token's name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Scope, resolved.
    pub scope: ResolvedScope,
    /// How they authenticated.
    pub via: Via,
}

impl Caller {
    /// The name recorded for what they do: `alice`, or `token:<name>` for an
    /// API token.
    pub fn actor(&self) -> String {
        match &self.via {
            Via::Session { .. } | Via::Password => self.name.clone(),
            Via::Oidc => format!("oidc:{}", self.name),
            Via::Token { .. } => format!("token:{}", self.name),
        }
    }

    /// Whether the role has `permission`.
    pub fn may(&self, permission: Permission) -> bool {
        self.role.may(permission)
    }

    /// A caller with every permission over the whole country, for callers
    /// inside the process (tests, the CLI on a local store).
    pub fn system(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            role: Role::Admin,
            scope: ResolvedScope::national(),
            via: Via::Token { id: String::new() },
        }
    }

    /// An audit entry of this caller.
    pub fn audit(
        &self,
        action: &'static str,
        target: Option<String>,
        outcome: &'static str,
        detail: serde_json::Value,
    ) -> AuditEntry {
        AuditEntry {
            actor: self.actor(),
            role: Some(self.role.as_str().to_owned()),
            action,
            target,
            outcome,
            detail,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Arc<Caller>>()
            .map(|c| Caller::clone(c))
            .ok_or_else(|| unauthorized("authentication required", None))
    }
}

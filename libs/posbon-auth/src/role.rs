//! Roles and what each may do.
//!
//! | role | permissions |
//! |---|---|
//! | `producer` | `publish_events` |
//! | `analyst` | `read_sql`, `read_reports`, `generate_reports`, `read_map`, `read_escalations`, `read_feed` |
//! | `operator` | `read_feed`, `read_escalations`, `act_escalations`, `read_map` |
//! | `supervisor` | what analyst and operator may, and `sensitive_columns` |
//! | `admin` | everything, including `admin` (identities, tokens, audit) and `read_metrics` |

use serde::{Deserialize, Serialize};

/// Who a caller is, as far as access goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A system that publishes events (police units, cameras, fraud detectors).
    Producer,
    /// SQL, reports, the map, escalations read-only; sensitive columns hidden.
    Analyst,
    /// The feed, escalations and their actions, the map; no SQL.
    Operator,
    /// Operator and analyst together, sensitive columns included.
    Supervisor,
    /// Everything, including identities, tokens and the audit log.
    Admin,
}

/// One thing a route or a query needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// `POST /v1/events`.
    PublishEvents,
    /// The live feed (SSE and WebSocket).
    ReadFeed,
    /// Escalation lists and records.
    ReadEscalations,
    /// Lifecycle actions on escalations.
    ActEscalations,
    /// Creating and ending silences and maintenance windows (within the
    /// caller's scope).
    ManageSilences,
    /// The map, mahalla details, the registry and source precision.
    ReadMap,
    /// `POST /v1/sql`.
    ReadSql,
    /// Stored daily reports.
    ReadReports,
    /// Generating a daily report now.
    GenerateReports,
    /// Free text, snapshots, account references and victims' flags.
    SensitiveColumns,
    /// `/metrics`.
    ReadMetrics,
    /// Identities, tokens, users and the audit log.
    Admin,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 12] = [
        Permission::PublishEvents,
        Permission::ReadFeed,
        Permission::ReadEscalations,
        Permission::ActEscalations,
        Permission::ManageSilences,
        Permission::ReadMap,
        Permission::ReadSql,
        Permission::ReadReports,
        Permission::GenerateReports,
        Permission::SensitiveColumns,
        Permission::ReadMetrics,
        Permission::Admin,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::PublishEvents => "publish_events",
            Permission::ReadFeed => "read_feed",
            Permission::ReadEscalations => "read_escalations",
            Permission::ActEscalations => "act_escalations",
            Permission::ManageSilences => "manage_silences",
            Permission::ReadMap => "read_map",
            Permission::ReadSql => "read_sql",
            Permission::ReadReports => "read_reports",
            Permission::GenerateReports => "generate_reports",
            Permission::SensitiveColumns => "sensitive_columns",
            Permission::ReadMetrics => "read_metrics",
            Permission::Admin => "admin",
        }
    }
}

const ANALYST: &[Permission] = &[
    Permission::ReadSql,
    Permission::ReadReports,
    Permission::GenerateReports,
    Permission::ReadMap,
    Permission::ReadEscalations,
    Permission::ReadFeed,
];
const OPERATOR: &[Permission] = &[
    Permission::ReadFeed,
    Permission::ReadEscalations,
    Permission::ActEscalations,
    Permission::ReadMap,
];
const SUPERVISOR: &[Permission] = &[
    Permission::ReadFeed,
    Permission::ReadEscalations,
    Permission::ActEscalations,
    Permission::ManageSilences,
    Permission::ReadMap,
    Permission::ReadSql,
    Permission::ReadReports,
    Permission::GenerateReports,
    Permission::SensitiveColumns,
];

impl Role {
    /// Every role, least to most.
    pub const ALL: [Role; 5] = [
        Role::Producer,
        Role::Analyst,
        Role::Operator,
        Role::Supervisor,
        Role::Admin,
    ];

    /// What this role may do.
    pub fn permissions(self) -> &'static [Permission] {
        match self {
            Role::Producer => &[Permission::PublishEvents],
            Role::Analyst => ANALYST,
            Role::Operator => OPERATOR,
            Role::Supervisor => SUPERVISOR,
            Role::Admin => &Permission::ALL,
        }
    }

    /// Whether this role has `permission`.
    pub fn may(self, permission: Permission) -> bool {
        self.permissions().contains(&permission)
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Producer => "producer",
            Role::Analyst => "analyst",
            Role::Operator => "operator",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("role {s:?} is not one of producer, analyst, operator, supervisor, admin")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_follow_the_table() {
        assert!(Role::Producer.may(Permission::PublishEvents));
        assert!(!Role::Producer.may(Permission::ReadFeed));
        assert!(Role::Analyst.may(Permission::ReadSql));
        assert!(!Role::Analyst.may(Permission::ActEscalations));
        assert!(!Role::Analyst.may(Permission::SensitiveColumns));
        assert!(!Role::Operator.may(Permission::ReadSql));
        assert!(Role::Operator.may(Permission::ActEscalations));
        for p in ANALYST.iter().chain(OPERATOR) {
            assert!(Role::Supervisor.may(*p), "{p:?}");
        }
        assert!(Role::Supervisor.may(Permission::SensitiveColumns));
        assert!(Role::Supervisor.may(Permission::ManageSilences));
        assert!(!Role::Operator.may(Permission::ManageSilences));
        assert!(!Role::Supervisor.may(Permission::Admin));
        assert!(Permission::ALL.iter().all(|p| Role::Admin.may(*p)));
        assert_eq!("operator".parse::<Role>(), Ok(Role::Operator));
        assert!("root".parse::<Role>().is_err());
    }
}

//! Silences and maintenance windows: escalations they cover are recorded and
//! shown as always, only not paged to anyone.
//!
//! A silence matches an escalation when every list it gives contains the
//! escalation's value (an empty list matches anything), and it is active
//! from `starts_at` until `ends_at`. A maintenance window is a silence that
//! starts later.

use chrono::{DateTime, TimeDelta, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::escalation::Escalation;
use crate::lifecycle::MAX_NOTE_BYTES;
use crate::matchers::EscalationMatchers;

/// Longest silence: a standing exception belongs in the routing rules.
pub const MAX_SILENCE_DAYS: i64 = 90;

/// A request for a silence (`POST /v1/silences`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SilenceRequest {
    /// What it covers.
    #[serde(flatten)]
    pub matchers: EscalationMatchers,
    /// When it starts; absent: now. Later than now: a maintenance window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<DateTime<Utc>>,
    /// When it ends (after `starts_at`, at most 90 days later).
    pub ends_at: DateTime<Utc>,
    /// Why: 1..=2000 bytes.
    pub reason: String,
}

/// A silence as stored and listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Silence {
    /// `sil-` and 16 hex digits.
    pub id: String,
    /// What it covers.
    #[serde(flatten)]
    pub matchers: EscalationMatchers,
    /// When it starts.
    pub starts_at: DateTime<Utc>,
    /// When it ends (set to the time it was expired early).
    pub ends_at: DateTime<Utc>,
    /// Why.
    pub reason: String,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Who ended it early, when someone did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_by: Option<String>,
}

impl SilenceRequest {
    /// Checks the request at `now` and makes the silence `id` by `by`.
    pub fn into_silence(self, id: String, by: &str, now: DateTime<Utc>) -> Result<Silence, String> {
        self.matchers.validate()?;
        let reason = self.reason.trim();
        if reason.is_empty() {
            return Err("reason: must not be empty".to_owned());
        }
        if reason.len() > MAX_NOTE_BYTES {
            return Err(format!(
                "reason: {} bytes, at most {MAX_NOTE_BYTES}",
                reason.len()
            ));
        }
        if reason.chars().any(|c| c.is_control() && c != '\n') {
            return Err("reason: control characters are not allowed".to_owned());
        }
        let starts_at = self.starts_at.unwrap_or(now).max(now);
        if starts_at - now > TimeDelta::days(MAX_SILENCE_DAYS) {
            return Err(format!(
                "starts_at: a maintenance window starts within {MAX_SILENCE_DAYS} days"
            ));
        }
        if self.ends_at <= starts_at {
            return Err(format!(
                "ends_at: {} is not after the start {}",
                self.ends_at.to_rfc3339(),
                starts_at.to_rfc3339()
            ));
        }
        if self.ends_at - starts_at > TimeDelta::days(MAX_SILENCE_DAYS) {
            return Err(format!(
                "ends_at: a silence lasts at most {MAX_SILENCE_DAYS} days"
            ));
        }
        Ok(Silence {
            id,
            matchers: self.matchers,
            starts_at,
            ends_at: self.ends_at,
            reason: reason.to_owned(),
            created_by: by.to_owned(),
            created_at: now,
            expired_by: None,
        })
    }
}

impl Silence {
    /// Whether it silences at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.starts_at <= now && now < self.ends_at
    }

    /// Whether it has ended by `now` (it is kept for the record).
    pub fn has_ended(&self, now: DateTime<Utc>) -> bool {
        self.ends_at <= now
    }

    /// Whether it silences `escalation` at `now`.
    pub fn covers(&self, escalation: &Escalation, now: DateTime<Utc>) -> bool {
        self.is_active(now) && self.matchers.matches(escalation)
    }

    /// Ends it at `now` (by `by`); an ended silence is left as it is. A
    /// window that had not started yet ends without ever starting.
    pub fn expire(&mut self, by: &str, now: DateTime<Utc>) -> bool {
        if self.has_ended(now) {
            return false;
        }
        self.starts_at = self.starts_at.min(now);
        self.ends_at = now;
        self.expired_by = Some(by.to_owned());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::escalation::RiskLevel;
    use crate::lifecycle::tests::escalation;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn request(json: serde_json::Value) -> SilenceRequest {
        serde_json::from_value(json).expect("request")
    }

    #[test]
    fn matchers_and_window() {
        let now = at("2026-12-05T10:00:00Z");
        let s = request(serde_json::json!({
            "district": ["d1", "d2"], "level": ["high"],
            "ends_at": "2026-12-05T12:00:00Z", "reason": "drill"
        }))
        .into_silence("sil-1".into(), "ops", now)
        .expect("valid");
        let e = escalation();
        assert!(s.covers(&e, now));
        assert!(!s.covers(&e, at("2026-12-05T12:00:00Z")), "ended");
        let mut other = e.clone();
        other.level = RiskLevel::Critical;
        assert!(!s.covers(&other, now), "level not listed");
        other = e.clone();
        other.district_id = "d9".into();
        assert!(!s.covers(&other, now), "district not listed");
        // A maintenance window.
        let w = request(serde_json::json!({
            "mahalla": ["m1"], "starts_at": "2026-12-06T00:00:00Z",
            "ends_at": "2026-12-06T04:00:00Z", "reason": "cameras serviced"
        }))
        .into_silence("sil-2".into(), "ops", now)
        .expect("valid");
        assert!(!w.covers(&e, now));
        assert!(w.covers(&e, at("2026-12-06T01:00:00Z")));
        let mut w2 = w.clone();
        assert!(w2.expire("ops", now));
        assert!(!w2.covers(&e, at("2026-12-06T01:00:00Z")), "expired early");
        assert!(
            w2.has_ended(now),
            "a window ended before it started has ended"
        );
        assert!(!w2.expire("lead", now), "and does not end twice");
        assert_eq!(w2.expired_by.as_deref(), Some("ops"));
        let mut s2 = s.clone();
        assert!(s2.expire("lead", at("2026-12-05T11:00:00Z")));
        assert_eq!(s2.ends_at, at("2026-12-05T11:00:00Z"));
        assert!(
            !s2.expire("lead", at("2026-12-05T11:30:00Z")),
            "ended already"
        );
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let now = at("2026-12-05T10:00:00Z");
        let bad = |json: serde_json::Value| {
            request(json)
                .into_silence("sil-1".into(), "ops", now)
                .expect_err("refused")
        };
        assert!(
            bad(serde_json::json!({"ends_at": "2026-12-05T09:00:00Z", "reason": "x"}))
                .starts_with("ends_at:")
        );
        assert!(
            bad(serde_json::json!({"ends_at": "2027-12-05T09:00:00Z", "reason": "x"}))
                .contains("90 days")
        );
        assert!(
            bad(serde_json::json!({"ends_at": "2026-12-05T11:00:00Z", "reason": " "}))
                .starts_with("reason:")
        );
        assert!(
            bad(serde_json::json!({"starts_at": "2027-06-01T00:00:00Z", "ends_at": "2027-06-01T01:00:00Z", "reason": "x"}))
                .starts_with("starts_at:")
        );
        assert!(
            bad(serde_json::json!({"level": ["high", "high"], "ends_at": "2026-12-05T11:00:00Z", "reason": "x"}))
                .starts_with("level:")
        );
        assert!(
            bad(serde_json::json!({"mahalla": ["a b"], "ends_at": "2026-12-05T11:00:00Z", "reason": "x"}))
                .starts_with("mahalla:")
        );
        assert!(
            serde_json::from_value::<SilenceRequest>(serde_json::json!({
                "ends_at": "2026-12-05T11:00:00Z", "reason": "x", "everything": true
            }))
            .is_err(),
            "unknown fields are refused"
        );
    }
}

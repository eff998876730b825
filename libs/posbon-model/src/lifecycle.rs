//! The life of an escalation after it opened: acknowledge, assign, resolve or
//! mark a false alarm, each step with who, when and a note, and re-notification
//! one tier up when nobody acknowledges in time.
//!
//! ```text
//! open ──acknowledge──► acknowledged ──assign──► assigned ──resolve──► resolved
//!   │                        │                      │ ▲
//!   └──assign────────────────┼──────────────────────┘ └─ assign (reassign)
//!   └──false_alarm───────────┴──false_alarm─────────┴──false_alarm──► false_alarm
//! ```
//!
//! `resolved` and `false_alarm` are final. Resolving needs someone to have
//! acknowledged or taken the escalation first; acknowledging twice, or acting on a
//! closed escalation, is refused with a [`TransitionError`] that says why.
//!
//! One file (744 lines, 233 of them tests) because the transition rule (`next_status`) and
//! the history bounds (`MAX_HISTORY`, `ACTION_RESERVE`) are shared by `apply`,
//! `allowed_actions` and `record_delivery`, which must agree on what is allowed.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::escalation::{Escalation, EscalationStatus};

string_enum! {
    /// What an operator does to an escalation.
    EscalationAction, "action" {
        /// "I have seen it."
        Acknowledge = "acknowledge",
        /// Give it to someone (an officer or inspector) to handle.
        Assign = "assign",
        /// Handled.
        Resolve = "resolve",
        /// Not a real situation: feeds the precision statistics of its sources.
        FalseAlarm = "false_alarm",
    }
}

string_enum! {
    /// Who is notified of an escalation; goes one tier up when an escalation
    /// stays unacknowledged too long.
    NotifyTier, "tier" {
        /// The mahalla's inspector (the first responder).
        MahallaInspector = "mahalla_inspector",
        /// The district command centre.
        District = "district",
        /// The city (or region) command centre.
        City = "city",
    }
}

impl NotifyTier {
    /// The tier above, `None` at the top.
    pub const fn up(self) -> Option<Self> {
        match self {
            Self::MahallaInspector => Some(Self::District),
            Self::District => Some(Self::City),
            Self::City => None,
        }
    }
}

string_enum! {
    /// One entry kind of the audit trail.
    AuditKind, "audit kind" {
        /// The escalation opened (by the escalator).
        Opened = "opened",
        /// Acknowledged.
        Acknowledge = "acknowledge",
        /// Assigned.
        Assign = "assign",
        /// Resolved.
        Resolve = "resolve",
        /// Marked a false alarm.
        FalseAlarm = "false_alarm",
        /// Re-notified one tier up.
        Renotify = "renotify",
        /// A receiver was paged (`receiver`, for step `step`).
        Notified = "notified",
        /// Paging a receiver failed after its retries (dead-lettered).
        NotifyFailed = "notify_failed",
        /// Not paged: a silence covered the escalation (its id in `note`).
        Silenced = "silenced",
    }
}

/// The status `action` leads to from `status`, or why it cannot be taken:
/// the lifecycle's one rule, used to act and to tell clients what they may do.
fn next_status(
    status: EscalationStatus,
    action: EscalationAction,
) -> Result<EscalationStatus, &'static str> {
    use EscalationAction as A;
    use EscalationStatus as S;
    match (status, action) {
        (S::Resolved | S::FalseAlarm, _) => Err("it is closed"),
        (S::Open, A::Acknowledge) => Ok(S::Acknowledged),
        (_, A::Acknowledge) => Err("it was acknowledged already"),
        (_, A::Assign) => Ok(S::Assigned),
        (S::Open, A::Resolve) => Err("acknowledge or assign it first, so someone owns the outcome"),
        (_, A::Resolve) => Ok(S::Resolved),
        (_, A::FalseAlarm) => Ok(S::FalseAlarm),
    }
}

impl From<EscalationAction> for AuditKind {
    fn from(action: EscalationAction) -> Self {
        match action {
            EscalationAction::Acknowledge => Self::Acknowledge,
            EscalationAction::Assign => Self::Assign,
            EscalationAction::Resolve => Self::Resolve,
            EscalationAction::FalseAlarm => Self::FalseAlarm,
        }
    }
}

/// One step of an escalation's audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditStep {
    /// What happened.
    pub kind: AuditKind,
    /// Who did it (`posbon` for the system's own steps).
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The operator's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Status after the step.
    pub status: EscalationStatus,
    /// For `assign`: who it was given to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// For `opened` and `renotify`: the tier notified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<NotifyTier>,
    /// For `notified`, `notify_failed` and `silenced`: the receiver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<String>,
    /// For `notified`, `notify_failed` and `silenced`: the number (from 1)
    /// of the `opened` or `renotify` step that paged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u32>,
}

/// A request to act on an escalation, over HTTP or NATS
/// (`posbon.actions.escalations`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// The escalation (its id). Over HTTP it is in the path and may be omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation_id: Option<String>,
    /// The action. Over HTTP it is in the path and may be omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<EscalationAction>,
    /// Who acts (operator name or badge), 1..=128 bytes.
    pub by: String,
    /// A note for the audit trail, at most 2,000 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// For `assign`: who gets it (defaults to `by`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
}

/// Longest `by` / `assignee`.
pub const MAX_ACTOR_BYTES: usize = 128;
/// Longest note.
pub const MAX_NOTE_BYTES: usize = 2000;
/// Most steps an escalation's history holds (opening and re-notifications
/// included): with notes of [`MAX_NOTE_BYTES`], a record stays under about
/// 250 KB. An action past it is refused; closing stays possible.
pub const MAX_HISTORY: usize = 120;
/// Steps of a history kept for operators' actions: delivery steps
/// (`notified`, `notify_failed`, `silenced`) stop being recorded when fewer
/// than this many places are left, so paging never blocks handling.
pub const ACTION_RESERVE: usize = 20;

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The action makes no sense in the current status (HTTP 409).
    #[error("cannot {action} an escalation that is {status}: {why}")]
    Conflict {
        /// The action.
        action: EscalationAction,
        /// The current status.
        status: EscalationStatus,
        /// Why not.
        why: &'static str,
    },
    /// The request itself is wrong (HTTP 400).
    #[error("{0}")]
    Invalid(String),
}

/// An escalation with its handling state: what the API lists and the feed
/// carries. Serialised flat: the fields of the [`Escalation`] and then these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EscalationRecord {
    /// The escalation as it opened (its `status` is kept current).
    #[serde(flatten)]
    pub escalation: Escalation,
    /// Sequence of the ALERTS message that opened it.
    pub alert_sequence: u64,
    /// Who is notified now.
    pub tier: NotifyTier,
    /// Who handles it, once assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// First acknowledgement (or assignment, which implies it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// When it was resolved or marked a false alarm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<DateTime<Utc>>,
    /// Every step, oldest first.
    pub history: Vec<AuditStep>,
}

fn check_actor(what: &str, value: &str) -> Result<(), TransitionError> {
    if value.trim().is_empty() {
        return Err(TransitionError::Invalid(format!(
            "{what}: must not be empty"
        )));
    }
    if value.len() > MAX_ACTOR_BYTES {
        return Err(TransitionError::Invalid(format!(
            "{what}: {} bytes, at most {MAX_ACTOR_BYTES}",
            value.len()
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(TransitionError::Invalid(format!(
            "{what}: control characters are not allowed"
        )));
    }
    Ok(())
}

impl ActionRequest {
    /// Checks the fields that do not depend on the escalation.
    pub fn validate(&self) -> Result<(), TransitionError> {
        check_actor("by", &self.by)?;
        if let Some(assignee) = &self.assignee {
            check_actor("assignee", assignee)?;
        }
        if let Some(note) = &self.note
            && note.len() > MAX_NOTE_BYTES
        {
            return Err(TransitionError::Invalid(format!(
                "note: {} bytes, at most {MAX_NOTE_BYTES}",
                note.len()
            )));
        }
        if self.assignee.is_some() && self.action.is_some_and(|a| a != EscalationAction::Assign) {
            return Err(TransitionError::Invalid(
                "assignee: only allowed with the assign action".to_owned(),
            ));
        }
        Ok(())
    }
}

impl EscalationRecord {
    /// The record of an escalation that just opened, notified to the mahalla
    /// inspector.
    pub fn opened(mut escalation: Escalation, alert_sequence: u64, at: DateTime<Utc>) -> Self {
        escalation.status = EscalationStatus::Open;
        let step = AuditStep {
            kind: AuditKind::Opened,
            by: "posbon".to_owned(),
            at,
            note: Some(format!(
                "{} → {} by rule {} (score {:.2})",
                escalation.previous_level.as_str(),
                escalation.level.as_str(),
                escalation.rule,
                escalation.score
            )),
            status: EscalationStatus::Open,
            assignee: None,
            tier: Some(NotifyTier::MahallaInspector),
            receiver: None,
            step: None,
        };
        Self {
            escalation,
            alert_sequence,
            tier: NotifyTier::MahallaInspector,
            assignee: None,
            updated_at: at,
            acknowledged_at: None,
            closed_at: None,
            history: vec![step],
        }
    }

    /// Current status.
    pub fn status(&self) -> EscalationStatus {
        self.escalation.status
    }

    /// Whether the escalation is closed (resolved or a false alarm).
    pub fn is_closed(&self) -> bool {
        matches!(
            self.status(),
            EscalationStatus::Resolved | EscalationStatus::FalseAlarm
        )
    }

    /// The actions its status and history allow now, in the order of
    /// [`EscalationAction::ALL`] (none once it is closed; only closing ones
    /// when the history has room for one step). What a given person may do
    /// also depends on their permission and scope, and assigning to whoever
    /// has it already is refused.
    pub fn allowed_actions(&self) -> Vec<EscalationAction> {
        let full = self.history.len() >= MAX_HISTORY - 1;
        EscalationAction::ALL
            .iter()
            .copied()
            .filter(|a| match next_status(self.status(), *a) {
                Ok(next) => {
                    !full
                        || matches!(
                            next,
                            EscalationStatus::Resolved | EscalationStatus::FalseAlarm
                        )
                }
                Err(_) => false,
            })
            .collect()
    }

    /// Applies `action` by `request.by` at `at`, or says why not; on an error
    /// nothing changes.
    pub fn apply(
        &mut self,
        action: EscalationAction,
        request: &ActionRequest,
        at: DateTime<Utc>,
    ) -> Result<(), TransitionError> {
        use EscalationAction as A;
        use EscalationStatus as S;
        request.validate()?;
        if request.assignee.is_some() && action != A::Assign {
            return Err(TransitionError::Invalid(
                "assignee: only allowed with the assign action".to_owned(),
            ));
        }
        let status = self.status();
        let conflict = |why| TransitionError::Conflict {
            action,
            status,
            why,
        };
        let next = next_status(status, action).map_err(conflict)?;
        let assignee = (action == A::Assign).then(|| {
            request
                .assignee
                .clone()
                .unwrap_or_else(|| request.by.clone())
        });
        if action == A::Assign && assignee == self.assignee {
            return Err(conflict("it is assigned to them already"));
        }
        // Room is kept for the closing step: an escalation can always close.
        let room = if matches!(next, S::Resolved | S::FalseAlarm) {
            MAX_HISTORY
        } else {
            MAX_HISTORY - 1
        };
        if self.history.len() >= room {
            return Err(conflict(
                "its history holds the most steps one escalation may (120): resolve it or mark it a false alarm",
            ));
        }
        self.escalation.status = next;
        if assignee.is_some() {
            self.assignee.clone_from(&assignee);
        }
        if self.acknowledged_at.is_none() && matches!(next, S::Acknowledged | S::Assigned) {
            self.acknowledged_at = Some(at);
        }
        if matches!(next, S::Resolved | S::FalseAlarm) {
            self.closed_at = Some(at);
        }
        self.updated_at = at;
        self.history.push(AuditStep {
            kind: action.into(),
            by: request.by.clone(),
            at,
            note: request.note.clone(),
            status: next,
            assignee,
            tier: None,
            receiver: None,
            step: None,
        });
        Ok(())
    }

    /// Re-notifies one tier up when the escalation is still open (nobody
    /// acknowledged it) `after` its last notification; returns whether it did.
    pub fn renotify_if_due(&mut self, now: DateTime<Utc>, after: chrono::TimeDelta) -> bool {
        if self.status() != EscalationStatus::Open {
            return false;
        }
        let Some(up) = self.tier.up() else {
            return false;
        };
        let last_notified = self
            .history
            .iter()
            .rev()
            .find(|s| matches!(s.kind, AuditKind::Opened | AuditKind::Renotify))
            .map_or(self.updated_at, |s| s.at);
        if now - last_notified < after {
            return false;
        }
        self.tier = up;
        self.updated_at = now;
        self.history.push(AuditStep {
            kind: AuditKind::Renotify,
            by: "posbon".to_owned(),
            at: now,
            note: Some(format!(
                "not acknowledged within {} min",
                after.num_minutes()
            )),
            status: EscalationStatus::Open,
            assignee: None,
            tier: Some(up),
            receiver: None,
            step: None,
        });
        true
    }

    /// The paging step number `step` (from 1) when it is an `opened` or
    /// `renotify` step, with the tier it paged.
    pub fn paging_step(&self, step: u32) -> Option<NotifyTier> {
        let s = self
            .history
            .get(usize::try_from(step).ok()?.checked_sub(1)?)?;
        matches!(s.kind, AuditKind::Opened | AuditKind::Renotify)
            .then_some(s.tier)
            .flatten()
    }

    /// Whether the outcome of paging `receiver` for step `step` is recorded
    /// already (a redelivered page is not sent twice).
    pub fn delivery_recorded(&self, step: u32, receiver: &str) -> bool {
        self.history.iter().any(|s| {
            matches!(
                s.kind,
                AuditKind::Notified | AuditKind::NotifyFailed | AuditKind::Silenced
            ) && s.step == Some(step)
                && s.receiver.as_deref() == Some(receiver)
        })
    }

    /// Records the outcome of paging `receiver` for step `step`: `kind` is
    /// `notified`, `notify_failed` or `silenced`. Returns `false` (and
    /// changes nothing) when it was recorded already or the history has no
    /// room left outside [`ACTION_RESERVE`].
    pub fn record_delivery(
        &mut self,
        kind: AuditKind,
        step: u32,
        receiver: &str,
        note: String,
        at: DateTime<Utc>,
    ) -> bool {
        debug_assert!(matches!(
            kind,
            AuditKind::Notified | AuditKind::NotifyFailed | AuditKind::Silenced
        ));
        if self.delivery_recorded(step, receiver)
            || self.history.len() >= MAX_HISTORY - ACTION_RESERVE
        {
            return false;
        }
        let mut note = note;
        if note.len() > MAX_NOTE_BYTES {
            let mut end = MAX_NOTE_BYTES;
            while !note.is_char_boundary(end) {
                end -= 1;
            }
            note.truncate(end);
        }
        self.history.push(AuditStep {
            kind,
            by: "posbon".to_owned(),
            at,
            note: Some(note),
            status: self.status(),
            assignee: None,
            tier: self.paging_step(step),
            receiver: Some(receiver.to_owned()),
            step: Some(step),
        });
        true
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::escalation::RiskLevel;
    use std::collections::BTreeMap;

    /// A high intensity escalation of mahalla `m1` (district `d1`, region
    /// `r1`), opened 2026-11-28 10:00 UTC.
    pub(crate) fn escalation() -> Escalation {
        let t = DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        Escalation {
            id: Escalation::deterministic_id("m1", "intensity", 1),
            mahalla_id: "m1".into(),
            district_id: "d1".into(),
            region_id: "r1".into(),
            level: RiskLevel::High,
            previous_level: RiskLevel::Normal,
            score: 4.2,
            rule: "intensity".into(),
            measure: None,
            counts: BTreeMap::from([("theft".to_owned(), 5)]),
            hot_cells: vec![],
            evidence: vec!["e1".into()],
            window_start: t,
            window_end: t,
            opened_at: t,
            status: EscalationStatus::Open,
        }
    }

    fn req(by: &str) -> ActionRequest {
        ActionRequest {
            escalation_id: None,
            action: None,
            by: by.into(),
            note: Some("on it".into()),
            assignee: None,
        }
    }

    #[test]
    fn happy_path_and_audit_trail() {
        let t0 = escalation().opened_at;
        let mut r = EscalationRecord::opened(escalation(), 7, t0);
        let t1 = t0 + chrono::TimeDelta::minutes(2);
        r.apply(EscalationAction::Acknowledge, &req("op1"), t1)
            .expect("ack");
        let mut assign = req("op1");
        assign.assignee = Some("inspector-7".into());
        r.apply(EscalationAction::Assign, &assign, t1)
            .expect("assign");
        r.apply(EscalationAction::Resolve, &req("inspector-7"), t1)
            .expect("resolve");
        assert_eq!(r.status(), EscalationStatus::Resolved);
        assert_eq!(r.assignee.as_deref(), Some("inspector-7"));
        assert_eq!((r.acknowledged_at, r.closed_at), (Some(t1), Some(t1)));
        let kinds: Vec<_> = r.history.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [
                AuditKind::Opened,
                AuditKind::Acknowledge,
                AuditKind::Assign,
                AuditKind::Resolve
            ]
        );
        // Closed: everything is refused and nothing changes.
        let before = r.clone();
        for action in EscalationAction::ALL {
            let err = r.apply(*action, &req("x"), t1).expect_err("closed");
            assert!(matches!(err, TransitionError::Conflict { .. }), "{err}");
        }
        assert_eq!(r, before);
    }

    /// What `allowed_actions` offers is what `apply` accepts (assigning to
    /// whoever has it already aside).
    #[test]
    fn allowed_actions_follow_the_rule() {
        use EscalationAction as A;
        let t0 = escalation().opened_at;
        let mut r = EscalationRecord::opened(escalation(), 1, t0);
        let offered = |r: &EscalationRecord| r.allowed_actions();
        assert_eq!(offered(&r), [A::Acknowledge, A::Assign, A::FalseAlarm]);
        for action in EscalationAction::ALL {
            let mut copy = r.clone();
            assert_eq!(
                copy.apply(*action, &req("op"), t0).is_ok(),
                offered(&r).contains(action),
                "{action:?}"
            );
        }
        r.apply(A::Acknowledge, &req("op"), t0).expect("ack");
        assert_eq!(offered(&r), [A::Assign, A::Resolve, A::FalseAlarm]);
        r.apply(A::Resolve, &req("op"), t0).expect("resolve");
        assert!(offered(&r).is_empty());
    }

    #[test]
    fn refusals() {
        let t0 = escalation().opened_at;
        let mut r = EscalationRecord::opened(escalation(), 1, t0);
        let err = r
            .apply(EscalationAction::Resolve, &req("op"), t0)
            .expect_err("resolve while open");
        assert!(
            err.to_string().contains("acknowledge or assign it first"),
            "{err}"
        );
        r.apply(EscalationAction::Acknowledge, &req("op"), t0)
            .expect("ack");
        let err = r
            .apply(EscalationAction::Acknowledge, &req("op"), t0)
            .expect_err("twice");
        assert_eq!(
            err.to_string(),
            "cannot acknowledge an escalation that is acknowledged: it was acknowledged already"
        );
        let err = r
            .apply(EscalationAction::Acknowledge, &req(" "), t0)
            .expect_err("empty by");
        assert_eq!(
            err,
            TransitionError::Invalid("by: must not be empty".into())
        );
        let mut bad = req("op");
        bad.assignee = Some("x".into());
        assert!(matches!(
            r.apply(EscalationAction::Resolve, &bad, t0),
            Err(TransitionError::Invalid(_))
        ));
        r.apply(EscalationAction::FalseAlarm, &req("op"), t0)
            .expect("false alarm");
        assert_eq!(r.status(), EscalationStatus::FalseAlarm);
    }

    /// Reassigning back and forth cannot grow a record without bound; it
    /// can still be closed.
    #[test]
    fn history_is_bounded() {
        let t0 = escalation().opened_at;
        let mut r = EscalationRecord::opened(escalation(), 1, t0);
        let mut n = 0;
        let err = loop {
            let mut request = req("op");
            request.assignee = Some(if n % 2 == 0 { "a" } else { "b" }.into());
            match r.apply(EscalationAction::Assign, &request, t0) {
                Ok(()) => n += 1,
                Err(e) => break e,
            }
            assert!(n < 1000, "assignments never refused");
        };
        assert!(
            err.to_string().contains("history holds the most steps"),
            "{err}"
        );
        assert_eq!(r.history.len(), MAX_HISTORY - 1);
        assert_eq!(
            r.allowed_actions(),
            [EscalationAction::Resolve, EscalationAction::FalseAlarm],
            "only closing is offered"
        );
        r.apply(EscalationAction::Resolve, &req("op"), t0)
            .expect("closing stays possible");
        assert_eq!(r.history.len(), MAX_HISTORY);
    }

    #[test]
    fn renotification_climbs_tiers() {
        let t0 = escalation().opened_at;
        let mut r = EscalationRecord::opened(escalation(), 1, t0);
        let after = chrono::TimeDelta::minutes(10);
        assert!(!r.renotify_if_due(t0 + chrono::TimeDelta::minutes(9), after));
        assert!(r.renotify_if_due(t0 + chrono::TimeDelta::minutes(10), after));
        assert_eq!(r.tier, NotifyTier::District);
        assert!(!r.renotify_if_due(t0 + chrono::TimeDelta::minutes(15), after));
        assert!(r.renotify_if_due(t0 + chrono::TimeDelta::minutes(20), after));
        assert_eq!(r.tier, NotifyTier::City);
        assert!(!r.renotify_if_due(t0 + chrono::TimeDelta::hours(5), after));
        r.apply(EscalationAction::Acknowledge, &req("op"), t0)
            .expect("ack");
        assert!(!r.renotify_if_due(t0 + chrono::TimeDelta::hours(9), after));
    }

    #[test]
    fn deliveries_are_recorded_once_and_never_crowd_out_actions() {
        let t0 = escalation().opened_at;
        let mut r = EscalationRecord::opened(escalation(), 3, t0);
        assert_eq!(r.paging_step(1), Some(NotifyTier::MahallaInspector));
        assert_eq!(r.paging_step(0), None);
        assert_eq!(r.paging_step(2), None);
        assert!(r.record_delivery(AuditKind::Notified, 1, "ops", "sent".into(), t0));
        assert!(!r.record_delivery(AuditKind::Notified, 1, "ops", "again".into(), t0));
        assert!(r.delivery_recorded(1, "ops"));
        assert!(!r.delivery_recorded(1, "sms"));
        let last = r.history.last().expect("step");
        assert_eq!(last.tier, Some(NotifyTier::MahallaInspector));
        assert_eq!(last.step, Some(1));
        let mut n = 0;
        while r.record_delivery(
            AuditKind::NotifyFailed,
            1,
            &format!("r{n}"),
            "x".repeat(3000),
            t0,
        ) {
            n += 1;
        }
        assert_eq!(r.history.len(), MAX_HISTORY - ACTION_RESERVE);
        assert!(
            r.history
                .iter()
                .all(|s| s.note.as_ref().is_none_or(|n| n.len() <= MAX_NOTE_BYTES))
        );
        r.apply(EscalationAction::Acknowledge, &req("a"), t0)
            .expect("room is kept for actions");
    }

    #[test]
    fn record_is_flat_json_and_round_trips() {
        let t0 = escalation().opened_at;
        let r = EscalationRecord::opened(escalation(), 3, t0);
        let json = serde_json::to_value(&r).expect("json");
        assert_eq!(json["id"], "esc:m1:intensity:1");
        assert_eq!(json["status"], "open");
        assert_eq!(json["tier"], "mahalla_inspector");
        assert_eq!(json["alert_sequence"], 3);
        let back: EscalationRecord = serde_json::from_value(json).expect("parse");
        assert_eq!(back, r);
    }
}

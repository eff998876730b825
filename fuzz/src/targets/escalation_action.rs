//! The `escalation_action` target: an action on an escalation, from NATS
//! or HTTP, and an escalation as an `ALERTS` message.

use std::sync::LazyLock;

use posbon_model::{
    ActionRequest, Escalation, EscalationAction, EscalationRecord, EscalationStatus,
};

use super::{Sig, fixed_now};
use crate::Features;

/// Largest input [`escalation_action`] reads.
pub const ACTION_MAX_BYTES: usize = 64 << 10;

/// Fuzz target: an escalation action from NATS
/// ([`posbon_api::lifecycle::parse_action`]), and the same bytes as an
/// [`ActionRequest`] and as an [`Escalation`] (an `ALERTS` message).
///
/// A parsed request is applied to an escalation in every status: a refused
/// action must leave the record unchanged, an accepted one must add exactly
/// one audit step that shows the new status, and leave a record that
/// survives a JSON round trip.
pub fn escalation_action(data: &[u8]) {
    escalation_action_features(data);
}

pub(crate) fn escalation_action_features(data: &[u8]) -> Features {
    if data.len() > ACTION_MAX_BYTES {
        return Features::new();
    }
    let mut sig = Sig::new("escalation_action");
    match posbon_api::lifecycle::parse_action(data) {
        Ok((id, action, request)) => {
            sig.add(action.as_str());
            assert_eq!(request.escalation_id.as_deref(), Some(id.as_str()));
            assert_eq!(request.action, Some(action));
            apply_everywhere(action, &request, &mut sig);
        }
        Err(e) => {
            sig.add(e.code);
            sig.text(&e.message);
        }
    }
    // Over HTTP the id and the action are in the path: the body alone.
    if let Ok(request) = serde_json::from_slice::<ActionRequest>(data) {
        sig.add(&request.validate().is_ok());
        for action in EscalationAction::ALL {
            apply_everywhere(*action, &request, &mut sig);
        }
    }
    // An ALERTS message opens an escalation.
    if let Ok(escalation) = serde_json::from_slice::<Escalation>(data) {
        sig.add("escalation");
        let record = EscalationRecord::opened(escalation, 1, fixed_now());
        let json = serde_json::to_vec(&record).expect("a record serialises");
        let _ = serde_json::from_slice::<EscalationRecord>(&json);
    }
    sig.finish()
}

/// An escalation as the escalator opens it.
static ESCALATION: LazyLock<Escalation> = LazyLock::new(|| {
    let now = fixed_now();
    Escalation {
        id: "esc:chilonzor-017:burst:1".to_owned(),
        mahalla_id: "chilonzor-017".to_owned(),
        district_id: "chilonzor".to_owned(),
        region_id: "tashkent".to_owned(),
        level: posbon_model::RiskLevel::High,
        previous_level: posbon_model::RiskLevel::Elevated,
        score: 3.5,
        rule: "burst".to_owned(),
        measure: None,
        counts: Default::default(),
        hot_cells: Vec::new(),
        evidence: vec!["iiv-2026-000123".to_owned()],
        window_start: now - chrono::TimeDelta::hours(1),
        window_end: now,
        opened_at: now,
        status: EscalationStatus::Open,
    }
});

/// Applies `action` to a record in each status.
fn apply_everywhere(action: EscalationAction, request: &ActionRequest, sig: &mut Sig) {
    let at = fixed_now() + chrono::TimeDelta::minutes(5);
    let opened = EscalationRecord::opened(ESCALATION.clone(), 1, fixed_now());
    let mut records = vec![opened.clone()];
    let setup = ActionRequest {
        escalation_id: None,
        action: None,
        by: "inspector-1".to_owned(),
        note: None,
        assignee: None,
    };
    for path in [
        &[EscalationAction::Acknowledge][..],
        &[EscalationAction::Assign],
        &[EscalationAction::Assign, EscalationAction::Resolve],
        &[EscalationAction::FalseAlarm],
    ] {
        let mut r = opened.clone();
        for a in path {
            r.apply(*a, &setup, at).expect("setting up a record");
        }
        records.push(r);
    }
    for mut record in records {
        let before = record.clone();
        match record.apply(action, request, at) {
            Ok(()) => {
                sig.add(record.status().as_str());
                assert_eq!(record.history.len(), before.history.len() + 1);
                assert_eq!(
                    record.history.last().map(|s| s.status),
                    Some(record.status()),
                    "the last audit step does not show the status"
                );
                assert_eq!(
                    record.closed_at.is_some(),
                    record.is_closed(),
                    "closed_at and the status disagree"
                );
                let json = serde_json::to_vec(&record).expect("a record serialises");
                let back: EscalationRecord =
                    serde_json::from_slice(&json).expect("a record reads back");
                assert_eq!(back, record, "a record changes through JSON");
            }
            Err(e) => {
                sig.text(&e.to_string());
                assert_eq!(record, before, "a refused action changed the record");
            }
        }
    }
}

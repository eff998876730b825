//! Renderings of a [`ScopeView`]: CSV, a printable HTML page and a text
//! report for the terminal (JSON is its serde form).

mod csv;
mod html;
mod text;

use crate::report::{
    FOCUS_GROUPS, FocusGroupRow, ScopeKind, ScopeRow, ScopeView, focus_group_label,
};
use crate::situation::DifficultRow;

pub use csv::{DIFFICULT_COLUMNS, ROW_COLUMNS, csv_columns, to_csv};
pub use html::to_html;
pub use text::to_text;

/// A mahalla's days since its last offence: "12", "≥ 40" without one in
/// the records, "–" for larger areas.
fn days_since_offence(r: &ScopeRow) -> String {
    match (r.crime_free_days, r.last_offence) {
        (Some(d), Some(_)) => d.to_string(),
        (Some(d), None) => format!("≥ {d}"),
        (None, _) => "–".to_owned(),
    }
}

fn opt_num(v: Option<i64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// The focus-group row of a scope in the view.
fn focus<'a>(view: &'a ScopeView, r: &ScopeRow, group: &str) -> Option<&'a FocusGroupRow> {
    view.focus_groups
        .iter()
        .find(|f| f.scope == r.scope && f.scope_id == r.scope_id && f.focus_group == group)
}

/// A focus-group count as shown: the number, `<3`, or `withheld`.
fn focus_count(f: &FocusGroupRow) -> String {
    match (f.offences, f.fewer_than) {
        (Some(n), _) => n.to_string(),
        (None, Some(min)) => format!("<{min}"),
        (None, None) => "withheld".to_owned(),
    }
}

/// What a withheld z score reads as.
pub const NOT_ENOUGH_HISTORY: &str = "not enough history";

/// A z score, or [`NOT_ENOUGH_HISTORY`].
fn z(v: Option<f64>) -> String {
    v.map_or_else(|| NOT_ENOUGH_HISTORY.to_owned(), |v| format!("{v:+.2}"))
}

/// A z score in a table column: `–` when withheld.
fn z_cell(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:+.2}"))
}

/// A baseline with its coverage: "412.30 (6 of 7 days)".
fn baseline(v: Option<f64>, days: Option<i64>, of: i64) -> String {
    let value = v.map_or_else(|| "–".to_owned(), |v| format!("{v:.2}"));
    match days {
        Some(d) => format!("{value} ({d} of {of} days with data)"),
        None => value,
    }
}

fn share(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{:.1}%", v * 100.0))
}

fn title(view: &ScopeView) -> String {
    match view.summary.scope {
        ScopeKind::Nation => "All mahallas".to_owned(),
        ScopeKind::Unassigned => "Events outside every mahalla".to_owned(),
        kind => format!(
            "{} {} ({})",
            capital(kind.as_str()),
            view.summary.name,
            view.summary.scope_id
        ),
    }
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// "3 of 14 days (2 with an escalation, 1 with a high score)".
fn difficult_text(d: &DifficultRow) -> String {
    format!(
        "{} of 14 days ({} with an escalation, {} with a high score{})",
        d.difficult_days,
        d.escalation_days,
        d.score_days,
        if d.days_scored < 14 {
            format!("; {} of 14 days scored", d.days_scored)
        } else {
            String::new()
        }
    )
}

/// "1.23 (412 close pairs, 335 expected; 0.21 beyond chance per offence)".
fn near_repeat_text(r: &ScopeRow) -> String {
    match (
        r.near_repeat_ratio,
        r.near_repeat_pairs,
        r.near_repeat_expected,
        r.near_repeat_excess,
    ) {
        (Some(ratio), Some(pairs), Some(expected), Some(excess)) => format!(
            "{ratio:.2} ({pairs} close pairs, {expected:.0} expected; {excess:.2} beyond chance \
             per offence)"
        ),
        _ => "–".to_owned(),
    }
}

/// "12 days since the last offence (2026-05-01)"; "an offence on the day,
/// after 40 days without one"; or, without one in the records, "at least
/// 40 days: no offence since the records began on 2026-04-01".
fn streak_text(s: &ScopeRow, days: i64) -> String {
    match s.last_offence {
        Some(_) if days == 0 => match s.crime_free_days_before {
            Some(before) if before > 0 => {
                format!("an offence on the day, after {before} days without one")
            }
            _ => "an offence on the day".to_owned(),
        },
        Some(d) => format!("{days} days since the last offence ({d})"),
        None => format!(
            "at least {days} days: no offence since the records began{}",
            s.records_since
                .map(|d| format!(" on {d}"))
                .unwrap_or_default()
        ),
    }
}

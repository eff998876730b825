//! Renderings of a [`ScopeView`]: CSV, a printable HTML page and a text
//! report for the terminal (JSON is its serde form).

mod csv;
mod html;
mod text;

use posbon_i18n::Lang;

use crate::report::{FOCUS_GROUPS, FocusGroupRow, ScopeKind, ScopeRow, ScopeView};
use crate::situation::DifficultRow;

pub use csv::{csv_columns, to_csv};
pub use html::to_html;
pub use text::to_text;

/// A mahalla's days since its last offence: "12", "≥ 40" without one in
/// the records, "–" for larger areas.
fn days_since_offence(lang: Lang, r: &ScopeRow) -> String {
    match (r.crime_free_days, r.last_offence) {
        (Some(d), Some(_)) => lang.number(d),
        (Some(d), None) => format!("≥ {}", lang.number(d)),
        (None, _) => "–".to_owned(),
    }
}

/// A count as machines read it (CSV): the number or nothing.
fn opt_num(v: Option<i64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// A count as people read it: grouped digits, or "–".
fn count(lang: Lang, v: Option<i64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| lang.number(v))
}

/// The focus-group row of a scope in the view.
fn focus<'a>(view: &'a ScopeView, r: &ScopeRow, group: &str) -> Option<&'a FocusGroupRow> {
    view.focus_groups
        .iter()
        .find(|f| f.scope == r.scope && f.scope_id == r.scope_id && f.focus_group == group)
}

/// A focus-group count as written in CSV: the number, `<3`, or `withheld`.
fn focus_count(f: &FocusGroupRow) -> String {
    match (f.offences, f.fewer_than) {
        (Some(n), _) => n.to_string(),
        (None, Some(min)) => format!("<{min}"),
        (None, None) => "withheld".to_owned(),
    }
}

/// A focus-group count as people read it.
fn focus_count_in(lang: Lang, f: &FocusGroupRow) -> String {
    match (f.offences, f.fewer_than) {
        (Some(n), _) => lang.number(n),
        (None, Some(min)) => format!("<{min}"),
        (None, None) => lang.t("report.withheld"),
    }
}

/// How a focus group reads in `lang`.
fn focus_label(lang: Lang, group: &str) -> String {
    if FOCUS_GROUPS.contains(&group) {
        lang.t(&format!("report.focus_{group}"))
    } else {
        group.to_owned()
    }
}

/// A z score, or "not enough history".
fn z(lang: Lang, v: Option<f64>) -> String {
    v.map_or_else(
        || lang.t("report.not_enough_history"),
        |v| lang.decimal(v, 2, true),
    )
}

/// A z score in a table column: `–` when withheld.
fn z_cell(lang: Lang, v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| lang.decimal(v, 2, true))
}

/// A baseline with its coverage: "412.30 (6 of 7 days with data)".
fn baseline(lang: Lang, v: Option<f64>, days: Option<i64>, of: i64) -> String {
    let value = v.map_or_else(|| "–".to_owned(), |v| lang.decimal(v, 2, false));
    match days {
        Some(d) => lang.f(
            "report.baseline_coverage",
            &[("value", &value), ("days", &d), ("of", &of)],
        ),
        None => value,
    }
}

fn share(lang: Lang, v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| lang.percent(v))
}

fn title(lang: Lang, view: &ScopeView) -> String {
    let s = &view.summary;
    let key = match s.scope {
        ScopeKind::Nation => return lang.t("report.nation"),
        ScopeKind::Unassigned => return lang.t("report.unassigned"),
        ScopeKind::Region => "report.scope_region",
        ScopeKind::District => "report.scope_district",
        ScopeKind::Mahalla => "report.scope_mahalla",
    };
    lang.f(key, &[("name", &s.name), ("id", &s.scope_id)])
}

/// "3 of 14 days (2 with an escalation, 1 with a high score)".
fn difficult_text(lang: Lang, d: &DifficultRow) -> String {
    let scored = if d.days_scored < 14 {
        lang.f("report.difficult_scored", &[("n", &d.days_scored)])
    } else {
        String::new()
    };
    lang.f(
        "report.difficult_text",
        &[
            ("days", &d.difficult_days),
            ("escalation", &d.escalation_days),
            ("score", &d.score_days),
            ("scored", &scored),
        ],
    )
}

/// "1.23 (412 close pairs, 335 expected; 0.21 beyond chance per offence)".
fn near_repeat_text(lang: Lang, r: &ScopeRow) -> String {
    match (
        r.near_repeat_ratio,
        r.near_repeat_pairs,
        r.near_repeat_expected,
        r.near_repeat_excess,
    ) {
        (Some(ratio), Some(pairs), Some(expected), Some(excess)) => lang.f(
            "report.near_repeat_text",
            &[
                ("ratio", &lang.decimal(ratio, 2, false)),
                ("pairs", &lang.number(pairs)),
                ("expected", &lang.decimal(expected, 0, false)),
                ("excess", &lang.decimal(excess, 2, false)),
            ],
        ),
        _ => "–".to_owned(),
    }
}

/// "12 days since the last offence (2026-05-01)"; "an offence on the day,
/// after 40 days without one"; or, without one in the records, "at least
/// 40 days: no offence since the records began on 2026-04-01".
fn streak_text(lang: Lang, s: &ScopeRow, days: i64) -> String {
    match s.last_offence {
        Some(_) if days == 0 => match s.crime_free_days_before {
            Some(before) if before > 0 => {
                lang.f("report.streak_offence_after", &[("before", &before)])
            }
            _ => lang.t("report.streak_offence"),
        },
        Some(d) => lang.f("report.streak_days", &[("days", &days), ("date", &d)]),
        None => {
            let since = s
                .records_since
                .map(|d| lang.f("report.streak_none_since", &[("date", &d)]))
                .unwrap_or_default();
            lang.f("report.streak_none", &[("days", &days), ("since", &since)])
        }
    }
}

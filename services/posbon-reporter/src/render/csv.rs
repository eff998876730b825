//! The CSV rendering: a scope's row and its parts' rows.

use super::*;
use posbon_sql::output::{CsvField, csv_record};

/// The columns of the CSV rendering, in order: `ROW_COLUMNS`,
/// `DIFFICULT_COLUMNS` (filled for a mahalla the difficult rule lists),
/// then each focus group's offences and z against 7 days (`victim_minor`,
/// `victim_minor_z7`, ...; a withheld count reads `<3`, or `withheld`).
pub fn csv_columns() -> Vec<String> {
    let mut columns: Vec<String> = ROW_COLUMNS
        .iter()
        .chain(&DIFFICULT_COLUMNS)
        .map(|c| (*c).to_owned())
        .collect();
    for g in FOCUS_GROUPS {
        columns.push(g.to_owned());
        columns.push(format!("{g}_z7"));
    }
    columns
}

/// The columns of a scope's row in the CSV rendering, in order.
pub(crate) const ROW_COLUMNS: [&str; 46] = [
    "date",
    "scope",
    "scope_id",
    "name",
    "region_id",
    "district_id",
    "mahallas",
    "crime_free_mahallas",
    "events",
    "incidents",
    "camera_alerts",
    "fraud_flags",
    "offences",
    "cyber",
    "cyber_share",
    "harm",
    "baseline7",
    "baseline7_days",
    "z7",
    "baseline28",
    "baseline28_days",
    "z28",
    "dispersion",
    "camera_alerts_baseline7",
    "camera_alerts_z7",
    "escalations_opened",
    "escalations_closed",
    "crime_free_days",
    "crime_free_days_before",
    "last_offence",
    "records_since",
    "crime_free_30d",
    "crime_free_90d",
    "crime_free_180d",
    "difficult_mahallas",
    "newly_difficult",
    "recovered_mahallas",
    "place_offences",
    "repeat_cells",
    "repeat_offences",
    "near_repeat_offences",
    "near_repeat_share",
    "near_repeat_pairs",
    "near_repeat_expected",
    "near_repeat_ratio",
    "near_repeat_excess",
];

/// The columns of a mahalla the difficult rule lists (empty otherwise):
/// `difficult` or `recovered`, since when, its difficult days of the 14,
/// its trend and the inspector who answers for it.
pub(crate) const DIFFICULT_COLUMNS: [&str; 5] = [
    "difficult_status",
    "difficult_since",
    "difficult_days",
    "difficult_trend",
    "inspector",
];

/// A field of the report: a number as it is, anything else as text (guarded
/// against formulas: mahalla, district and inspector names come from the
/// registry).
fn field(text: &str) -> CsvField<'_> {
    if text.is_empty() {
        CsvField::Null
    } else if text.parse::<f64>().is_ok_and(f64::is_finite) {
        CsvField::Plain(text)
    } else {
        CsvField::Text(text)
    }
}

fn row_fields(view: &ScopeView, r: &ScopeRow) -> Vec<String> {
    let f = |v: f64| format!("{v:.4}");
    vec![
        view.date.to_string(),
        r.scope.to_string(),
        r.scope_id.clone(),
        r.name.clone(),
        r.region_id.clone().unwrap_or_default(),
        r.district_id.clone().unwrap_or_default(),
        r.mahallas.to_string(),
        r.crime_free_mahallas.to_string(),
        r.events.to_string(),
        r.incidents.to_string(),
        r.camera_alerts.to_string(),
        r.fraud_flags.to_string(),
        r.offences.to_string(),
        r.cyber.to_string(),
        r.cyber_share.map(f).unwrap_or_default(),
        r.harm.to_string(),
        r.baseline7.map(f).unwrap_or_default(),
        r.baseline7_days.map(|d| d.to_string()).unwrap_or_default(),
        r.z7.map(f).unwrap_or_default(),
        r.baseline28.map(f).unwrap_or_default(),
        r.baseline28_days.map(|d| d.to_string()).unwrap_or_default(),
        r.z28.map(f).unwrap_or_default(),
        r.dispersion.map(f).unwrap_or_default(),
        r.camera_alerts_baseline7.map(f).unwrap_or_default(),
        r.camera_alerts_z7.map(f).unwrap_or_default(),
        r.escalations_opened.to_string(),
        r.escalations_closed.to_string(),
        opt_num(r.crime_free_days),
        opt_num(r.crime_free_days_before),
        r.last_offence.map(|d| d.to_string()).unwrap_or_default(),
        r.records_since.map(|d| d.to_string()).unwrap_or_default(),
        opt_num(r.crime_free_30d),
        opt_num(r.crime_free_90d),
        opt_num(r.crime_free_180d),
        opt_num(r.difficult_mahallas),
        opt_num(r.newly_difficult),
        opt_num(r.recovered_mahallas),
        opt_num(r.place_offences),
        opt_num(r.repeat_cells),
        opt_num(r.repeat_offences),
        opt_num(r.near_repeat_offences),
        r.near_repeat_share.map(f).unwrap_or_default(),
        opt_num(r.near_repeat_pairs),
        r.near_repeat_expected.map(f).unwrap_or_default(),
        r.near_repeat_ratio.map(f).unwrap_or_default(),
        r.near_repeat_excess.map(f).unwrap_or_default(),
    ]
}

/// The difficult-rule row of a mahalla in the view, if it is listed.
fn difficult_of<'a>(view: &'a ScopeView, r: &ScopeRow) -> Option<&'a DifficultRow> {
    if r.scope != ScopeKind::Mahalla {
        return None;
    }
    view.difficult
        .mahallas
        .iter()
        .chain(&view.difficult.recovered)
        .find(|d| d.mahalla_id == r.scope_id)
}

fn difficult_fields(d: Option<&DifficultRow>) -> [String; 5] {
    match d {
        Some(d) => [
            d.status.clone(),
            d.difficult_since.map(|d| d.to_string()).unwrap_or_default(),
            d.difficult_days.to_string(),
            d.trend.clone(),
            d.inspector.clone().unwrap_or_default(),
        ],
        None => Default::default(),
    }
}

/// The scope's row and its parts' rows as CSV with a header line.
pub fn to_csv(view: &ScopeView) -> String {
    let mut out = String::new();
    let columns = csv_columns();
    csv_record(&mut out, columns.iter().map(|c| CsvField::Text(c)));
    for r in std::iter::once(&view.summary).chain(&view.parts) {
        let mut fields = row_fields(view, r);
        fields.extend(difficult_fields(difficult_of(view, r)));
        for g in FOCUS_GROUPS {
            match focus(view, r, g) {
                Some(f) => {
                    fields.push(focus_count(f));
                    fields.push(f.z7.map(|v| format!("{v:.4}")).unwrap_or_default());
                }
                None => fields.extend([String::new(), String::new()]),
            }
        }
        csv_record(&mut out, fields.iter().map(|f| field(f)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_fields_are_numbers_as_they_are_and_names_guarded() {
        let mut out = String::new();
        csv_record(
            &mut out,
            [
                "-1.2500",
                "12",
                "",
                "=HYPERLINK(\"x\")",
                "-Markaz",
                "<3",
                "a,b",
            ]
            .map(field),
        );
        assert_eq!(
            out,
            "-1.2500,12,,\"'=HYPERLINK(\"\"x\"\")\",'-Markaz,<3,\"a,b\"\r\n"
        );
    }
}

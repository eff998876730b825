//! The report's SQL files, in the order they run, and the tables their
//! rows are held as.

/// Per mahalla, the figures of one day (stored in `mahalla_days`).
pub(crate) const MAHALLA_DAY_SQL: &str = include_str!("../../sql/mahalla_day.sql");
/// The counts of the baseline's days and of the day per scope and measure
/// (the table `baseline_days` that `scores.sql` reads; not stored).
pub(crate) const BASELINE_DAYS_SQL: &str = include_str!("../../sql/baseline_days.sql");
/// The change scores per scope and measure (the table `scores` that
/// `report_scopes.sql` and `report_focus_groups.sql` read; not stored).
pub(crate) const SCORES_SQL: &str = include_str!("../../sql/scores.sql");
/// The difficult mahallas (stored in `daily_report_difficult`, and held as
/// the table `difficult` that `report_scopes.sql` counts).
pub(crate) const DIFFICULT_SQL: &str = include_str!("../../sql/difficult.sql");
/// The place-based offences of the last 14 days (the table
/// `recent_offences`; not stored).
pub(crate) const RECENT_OFFENCES_SQL: &str = include_str!("../../sql/recent_offences.sql");
/// Repeat locations and near repeats per scope (the table `recurrence`
/// that `report_scopes.sql` reads; not stored).
pub(crate) const RECURRENCE_SQL: &str = include_str!("../../sql/recurrence.sql");
/// One row per scope (stored in `daily_reports`).
pub(crate) const REPORT_SCOPES_SQL: &str = include_str!("../../sql/report_scopes.sql");
/// Offences per scope and focus group of prevention
/// (`daily_report_focus_groups`).
pub(crate) const REPORT_FOCUS_GROUPS_SQL: &str = include_str!("../../sql/report_focus_groups.sql");
/// Events and harm per scope, kind and category (`daily_report_categories`).
pub(crate) const REPORT_CATEGORIES_SQL: &str = include_str!("../../sql/report_categories.sql");
/// The hottest cells per scope (`daily_report_hot_cells`).
pub(crate) const REPORT_HOT_CELLS_SQL: &str = include_str!("../../sql/report_hot_cells.sql");
/// The top repeat locations per scope (`daily_report_repeat_cells`).
pub(crate) const REPORT_REPEAT_CELLS_SQL: &str = include_str!("../../sql/report_repeat_cells.sql");

/// Every SQL file of the report, by name, in the order they run.
pub const SQL_FILES: [(&str, &str); 11] = [
    ("mahalla_day.sql", MAHALLA_DAY_SQL),
    ("baseline_days.sql", BASELINE_DAYS_SQL),
    ("scores.sql", SCORES_SQL),
    ("difficult.sql", DIFFICULT_SQL),
    ("recent_offences.sql", RECENT_OFFENCES_SQL),
    ("recurrence.sql", RECURRENCE_SQL),
    ("report_scopes.sql", REPORT_SCOPES_SQL),
    ("report_focus_groups.sql", REPORT_FOCUS_GROUPS_SQL),
    ("report_categories.sql", REPORT_CATEGORIES_SQL),
    ("report_hot_cells.sql", REPORT_HOT_CELLS_SQL),
    ("report_repeat_cells.sql", REPORT_REPEAT_CELLS_SQL),
];

/// The SQL files whose rows the later files read as a table (held in
/// memory; `difficult.sql`'s rows are stored too): file, table.
pub const KEPT_TABLES: [(&str, &str); 5] = [
    ("baseline_days.sql", "baseline_days"),
    ("scores.sql", "scores"),
    ("difficult.sql", "difficult"),
    ("recent_offences.sql", "recent_offences"),
    ("recurrence.sql", "recurrence"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_harm_expression_is_the_same_in_every_file() {
        let harm = |sql: &str| {
            let start = sql.find("-- harm: begin").expect("begin marker");
            let end = sql.find("-- harm: end").expect("end marker");
            sql[start..end]
                .lines()
                .map(str::trim)
                .collect::<Vec<_>>()
                .join("\n")
        };
        let reference = harm(MAHALLA_DAY_SQL);
        assert!(reference.contains("WHEN 'homicide' THEN 10"));
        assert_eq!(harm(REPORT_CATEGORIES_SQL), reference);
        assert_eq!(harm(REPORT_HOT_CELLS_SQL), reference);
    }
}

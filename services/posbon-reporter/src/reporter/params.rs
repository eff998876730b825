//! The parameters of the report's SQL for a day ([`params_with`]), the rule
//! that calls a mahalla difficult ([`DifficultRule`]), and the limits and
//! day windows the report runs with.

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use posbon_model::RiskLevel;
use posbon_model::Span;
use posbon_sql::datafusion::common::ScalarValue;
use posbon_sql::{SqlLimits, TIME_ZONE};
use serde::{Deserialize, Serialize};

use crate::error::ReportError;

/// The default of `[reporter] small_count_min`: a mahalla's focus-group
/// count below it is withheld from callers without sensitive access.
pub const DEFAULT_SMALL_COUNT_MIN: i64 = 3;

/// Days of the recent window that the difficult-mahalla rule and
/// recurrence look at ($day and the 13 before).
pub(crate) const RECENT_DAYS: i64 = 14;

/// The rule that calls a mahalla difficult (`sql/difficult.sql` says it in
/// full): over the 14 days ending on the day, at least `escalation_days`
/// days with an escalation at `level` or above open, or at least `z_days`
/// days whose 7-day change score of offences was `z` or more.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DifficultRule {
    /// The lowest escalation level that counts.
    pub level: RiskLevel,
    /// Days with such an escalation open that make a mahalla difficult.
    pub escalation_days: i64,
    /// The lowest 7-day change score that counts.
    pub z: f64,
    /// Days with such a score that make a mahalla difficult.
    pub z_days: i64,
}

impl Default for DifficultRule {
    fn default() -> Self {
        Self {
            level: RiskLevel::Elevated,
            escalation_days: 3,
            z: 2.0,
            z_days: 3,
        }
    }
}

impl DifficultRule {
    /// Checks the rule: `level` above normal, day counts within 1..=14, `z`
    /// finite and positive. The error names what is wrong.
    pub(crate) fn check(&self) -> Result<(), ReportError> {
        let bad = |what: String| {
            Err(ReportError::InvalidRequest(format!(
                "difficult rule: {what}"
            )))
        };
        if self.level == RiskLevel::Normal {
            return bad("level must be elevated, high or critical, not normal".into());
        }
        for (name, days) in [
            ("escalation_days", self.escalation_days),
            ("z_days", self.z_days),
        ] {
            if !(1..=RECENT_DAYS).contains(&days) {
                return bad(format!(
                    "{name} must be within 1..={RECENT_DAYS}, got {days}"
                ));
            }
        }
        if !(self.z.is_finite() && self.z > 0.0) {
            return bad(format!("z must be a positive number, got {}", self.z));
        }
        Ok(())
    }
}

/// Days of the long baseline.
pub(crate) const BASELINE_DAYS: i64 = 28;
/// Days of the short baseline.
pub(crate) const SHORT_BASELINE_DAYS: i64 = 7;

/// The limits the report's queries run with: national days are large.
pub fn report_limits() -> SqlLimits {
    SqlLimits {
        timeout: Span::from_minutes(10),
        max_rows: 50_000_000,
        // The report's own queries: never cut a result silently.
        max_result_bytes: usize::MAX,
        ..SqlLimits::default()
    }
}

/// The first instant of a local day and of the next, in UTC.
pub fn day_window(date: NaiveDate) -> Result<(DateTime<Utc>, DateTime<Utc>), ReportError> {
    let start = |d: NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .and_then(|m| TIME_ZONE.from_local_datetime(&m).earliest())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| ReportError::InvalidRequest(format!("no local midnight on {d}")))
    };
    let next = date
        .succ_opt()
        .ok_or_else(|| ReportError::InvalidRequest(format!("no day after {date}")))?;
    Ok((start(date)?, start(next)?))
}

fn days_since_epoch(date: NaiveDate) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    i32::try_from((date - epoch).num_days()).unwrap_or(i32::MAX)
}

fn date_value(date: NaiveDate) -> ScalarValue {
    ScalarValue::Date32(Some(days_since_epoch(date)))
}

fn time_value(t: DateTime<Utc>) -> ScalarValue {
    ScalarValue::TimestampMicrosecond(Some(t.timestamp_micros()), Some("UTC".into()))
}

/// The parameters of the SQL files for `date`, with the default
/// [`DifficultRule`] (`params_with`).
pub fn params(date: NaiveDate) -> Result<Vec<(String, ScalarValue)>, ReportError> {
    params_with(date, &DifficultRule::default())
}

/// The parameters of the SQL files for `date`: `$day`, `$day_start`,
/// `$day_end`, `$base7_start`, `$base28_start`, `$recent_start` (the first
/// instant of the day 13 before) and the difficult rule's
/// `$difficult_level`, `$difficult_escalation_days`, `$difficult_z`,
/// `$difficult_z_days`.
pub(crate) fn params_with(
    date: NaiveDate,
    rule: &DifficultRule,
) -> Result<Vec<(String, ScalarValue)>, ReportError> {
    let (start, end) = day_window(date)?;
    let back = |days: i64| {
        date.checked_sub_signed(TimeDelta::days(days))
            .ok_or_else(|| ReportError::InvalidRequest(format!("{date} is too early")))
    };
    let (recent_start, _) = day_window(back(RECENT_DAYS - 1)?)?;
    Ok(vec![
        ("day".into(), date_value(date)),
        ("day_start".into(), time_value(start)),
        ("day_end".into(), time_value(end)),
        ("base7_start".into(), date_value(back(SHORT_BASELINE_DAYS)?)),
        ("base28_start".into(), date_value(back(BASELINE_DAYS)?)),
        ("recent_start".into(), time_value(recent_start)),
        (
            "difficult_level".into(),
            ScalarValue::Utf8(Some(rule.level.as_str().to_owned())),
        ),
        (
            "difficult_escalation_days".into(),
            ScalarValue::Int64(Some(rule.escalation_days)),
        ),
        ("difficult_z".into(), ScalarValue::Float64(Some(rule.z))),
        (
            "difficult_z_days".into(),
            ScalarValue::Int64(Some(rule.z_days)),
        ),
    ])
}

/// The local date an instant falls on ([`posbon_model::local_date`]).
pub fn local_date(t: DateTime<Utc>) -> NaiveDate {
    posbon_model::local_date(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_between_two_local_midnights() {
        let date = NaiveDate::from_ymd_opt(2026, 5, 1).expect("date");
        let (start, end) = day_window(date).expect("window");
        assert_eq!(start.to_rfc3339(), "2026-04-30T19:00:00+00:00");
        assert_eq!(end - start, TimeDelta::hours(24));
        assert_eq!(local_date(start), date);
        assert_eq!(local_date(end - TimeDelta::microseconds(1)), date);
        let p = params(date).expect("params");
        let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "day",
                "day_start",
                "day_end",
                "base7_start",
                "base28_start",
                "recent_start",
                "difficult_level",
                "difficult_escalation_days",
                "difficult_z",
                "difficult_z_days"
            ]
        );
        assert_eq!(
            p[5].1,
            time_value(day_window(date - TimeDelta::days(13)).expect("window").0)
        );
        assert_eq!(
            p[3].1,
            date_value(NaiveDate::from_ymd_opt(2026, 4, 24).expect("date"))
        );
    }
}

//! [`DailyReport`]: the rows of one day's report, and the view of one scope.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use posbon_model::CellId;
use serde::{Deserialize, Serialize};

use crate::error::ReportError;
use crate::situation::{Difficult, DifficultRow, RepeatCellRow};

/// Covered days of the 7 before that a 7-day z score needs (as in
/// `sql/report_scopes.sql`).
pub const MIN_BASELINE7_DAYS: i64 = 5;
/// Covered days of the 28 before that a 28-day z score needs.
pub const MIN_BASELINE28_DAYS: i64 = 21;

/// The kind of area a row describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeKind {
    /// Every mahalla (and the events outside them).
    Nation,
    /// A region (viloyat).
    Region,
    /// A district (tuman).
    District,
    /// A mahalla.
    Mahalla,
    /// The events outside every mahalla.
    Unassigned,
}

impl ScopeKind {
    /// The name in the SQL and on the wire.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Nation => "nation",
            ScopeKind::Region => "region",
            ScopeKind::District => "district",
            ScopeKind::Mahalla => "mahalla",
            ScopeKind::Unassigned => "unassigned",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "nation" => ScopeKind::Nation,
            "region" => ScopeKind::Region,
            "district" => ScopeKind::District,
            "mahalla" => ScopeKind::Mahalla,
            "unassigned" => ScopeKind::Unassigned,
            _ => return None,
        })
    }
}

impl fmt::Display for ScopeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scope asked for: `nation`, `region:<id>`, `district:<id>`,
/// `mahalla:<id>` or `unassigned`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    /// The kind of area.
    pub kind: ScopeKind,
    /// Its id (`nation` and `_unassigned` for the two singletons).
    pub id: String,
}

impl Scope {
    /// The nation.
    pub fn nation() -> Self {
        Self {
            kind: ScopeKind::Nation,
            id: "nation".into(),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ScopeKind::Nation | ScopeKind::Unassigned => write!(f, "{}", self.kind),
            kind => write!(f, "{kind}:{}", self.id),
        }
    }
}

impl FromStr for Scope {
    type Err = ReportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            ReportError::InvalidRequest(format!(
                "scope {s:?}: expected nation, region:<id>, district:<id>, mahalla:<id> or unassigned"
            ))
        };
        match s.split_once(':') {
            None => match s {
                "nation" => Ok(Scope::nation()),
                "unassigned" => Ok(Scope {
                    kind: ScopeKind::Unassigned,
                    id: "_unassigned".into(),
                }),
                _ => Err(bad()),
            },
            Some((kind, id)) => {
                let kind = ScopeKind::parse(kind).ok_or_else(bad)?;
                if !matches!(
                    kind,
                    ScopeKind::Region | ScopeKind::District | ScopeKind::Mahalla
                ) {
                    return Err(bad());
                }
                posbon_geo::check_place_id(id)
                    .map_err(|e| ReportError::InvalidRequest(format!("scope {s:?}: the id {e}")))?;
                Ok(Scope {
                    kind,
                    id: id.to_owned(),
                })
            }
        }
    }
}

/// One row of `daily_reports`: the figures of one scope on the day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScopeRow {
    /// The kind of area.
    pub scope: ScopeKind,
    /// Its id.
    pub scope_id: String,
    /// Its name.
    pub name: String,
    /// The region of a district or mahalla.
    pub region_id: Option<String>,
    /// The district of a mahalla.
    pub district_id: Option<String>,
    /// Mahallas in the scope.
    pub mahallas: i64,
    /// Of them, mahallas without an offence on the day.
    pub crime_free_mahallas: i64,
    /// Events of every kind.
    pub events: i64,
    /// Incidents.
    pub incidents: i64,
    /// Camera alerts.
    pub camera_alerts: i64,
    /// Fraud flags.
    pub fraud_flags: i64,
    /// Offences: incidents and fraud flags.
    pub offences: i64,
    /// Cybercrime: fraud flags and incidents of category fraud or cybercrime.
    pub cyber: i64,
    /// `cyber / offences`; `None` without offences.
    pub cyber_share: Option<f64>,
    /// Harm points (see `sql/mahalla_day.sql`).
    pub harm: i64,
    /// Offences expected on the day from the covered days of the 7 before
    /// (weekday-adjusted when the history allows; see
    /// `sql/report_scopes.sql`); `None` without a covered day.
    pub baseline7: Option<f64>,
    /// How many of the 7 days before had data (the system was receiving
    /// events); `None` in reports made before coverage was recorded.
    pub baseline7_days: Option<i64>,
    /// Change of offences against `baseline7`, as an overdispersion-aware
    /// z score; `None` ("not enough history") with fewer than
    /// [`MIN_BASELINE7_DAYS`] covered days.
    pub z7: Option<f64>,
    /// Offences expected from the covered days of the 28 before.
    pub baseline28: Option<f64>,
    /// How many of the 28 days before had data.
    pub baseline28_days: Option<i64>,
    /// Change against `baseline28`; `None` with fewer than
    /// [`MIN_BASELINE28_DAYS`] covered days.
    pub z28: Option<f64>,
    /// The dispersion (variance over mean, at least 1) of the scope's daily
    /// offences that the z scores allow for.
    pub dispersion: Option<f64>,
    /// Camera alerts expected from the covered days of the 7 before.
    pub camera_alerts_baseline7: Option<f64>,
    /// Change of camera alerts against their 7-day baseline.
    pub camera_alerts_z7: Option<f64>,
    /// Escalations opened on the day.
    pub escalations_opened: i64,
    /// Escalations resolved or marked false alarms on the day.
    pub escalations_closed: i64,
    /// A mahalla's days since its last offence (0 with one on the day);
    /// without an offence since `records_since`, the days since then
    /// (a lower bound). `None` for other scopes and in reports made before
    /// streaks were recorded.
    #[serde(default)]
    pub crime_free_days: Option<i64>,
    /// The same at the end of the day before.
    #[serde(default)]
    pub crime_free_days_before: Option<i64>,
    /// A mahalla's last day with an offence in the stored figures.
    #[serde(default)]
    pub last_offence: Option<NaiveDate>,
    /// The first day of the stored per-day figures the streaks count from.
    #[serde(default)]
    pub records_since: Option<NaiveDate>,
    /// Mahallas of the scope crime-free for at least 30 days.
    #[serde(default)]
    pub crime_free_30d: Option<i64>,
    /// For at least 90 days.
    #[serde(default)]
    pub crime_free_90d: Option<i64>,
    /// For at least 180 days.
    #[serde(default)]
    pub crime_free_180d: Option<i64>,
    /// Mahallas of the scope the difficult rule calls difficult on the day
    /// (`sql/difficult.sql`); `None` for the unassigned events and in
    /// reports made before the rule.
    #[serde(default)]
    pub difficult_mahallas: Option<i64>,
    /// Of them, those that were not the day before.
    #[serde(default)]
    pub newly_difficult: Option<i64>,
    /// Mahallas difficult the day before and no longer.
    #[serde(default)]
    pub recovered_mahallas: Option<i64>,
    /// Place-based offences (incidents other than fraud and cybercrime) of
    /// the 14 days ending on the day (`sql/recurrence.sql`).
    #[serde(default)]
    pub place_offences: Option<i64>,
    /// Repeat locations of the 14 days: cells with two or more offences of
    /// one category in one mahalla.
    #[serde(default)]
    pub repeat_cells: Option<i64>,
    /// Offences at those locations.
    #[serde(default)]
    pub repeat_offences: Option<i64>,
    /// Offences with an earlier one of the district within one ring of
    /// cells and 7 days (districts, regions and the nation only).
    #[serde(default)]
    pub near_repeat_offences: Option<i64>,
    /// `near_repeat_offences / place_offences`.
    #[serde(default)]
    pub near_repeat_share: Option<f64>,
    /// Pairs of offences close in space and time.
    #[serde(default)]
    pub near_repeat_pairs: Option<i64>,
    /// The close pairs a time-shuffled history gives on average.
    #[serde(default)]
    pub near_repeat_expected: Option<f64>,
    /// `near_repeat_pairs / near_repeat_expected`: above 1 when offences
    /// follow each other near by more than chance.
    #[serde(default)]
    pub near_repeat_ratio: Option<f64>,
    /// `(near_repeat_pairs - near_repeat_expected) / place_offences`: close
    /// pairs beyond chance per offence (it shows near repeats where dense
    /// offences keep the ratio near 1).
    #[serde(default)]
    pub near_repeat_excess: Option<f64>,
}

/// The focus groups of crime prevention, in report order (the measures of
/// `sql/report_focus_groups.sql`, which says what each is).
pub const FOCUS_GROUPS: [&str; 7] = [
    "victim_minor",
    "victim_youth",
    "victim_woman",
    "offender_minor",
    "offender_youth",
    "domestic",
    "offender_youth_drugs",
];

/// One row of `daily_report_focus_groups`: a scope's offences in one focus
/// group. In a view for a caller without sensitive access, a mahalla's
/// small count is withheld (`DailyReport::withhold_small_counts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FocusGroupRow {
    /// The kind of area.
    pub scope: ScopeKind,
    /// Its id.
    pub scope_id: String,
    /// One of [`FOCUS_GROUPS`].
    pub focus_group: String,
    /// Offences in the group on the day; `None` when withheld.
    pub offences: Option<i64>,
    /// When the count is withheld because it is small: it is below this
    /// (zero included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fewer_than: Option<i64>,
    /// Withheld (though not small) because a small count beside it could
    /// otherwise be worked out from the total.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub withheld: bool,
    /// Offences expected from the covered days of the 7 before.
    pub baseline7: Option<f64>,
    /// How many of the 7 days before had data.
    pub baseline7_days: i64,
    /// Change against `baseline7` (as [`ScopeRow::z7`]).
    pub z7: Option<f64>,
    /// Offences expected from the covered days of the 28 before.
    pub baseline28: Option<f64>,
    /// How many of the 28 days before had data.
    pub baseline28_days: i64,
    /// Change against `baseline28`.
    pub z28: Option<f64>,
}

/// One row of `daily_report_categories`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryRow {
    /// The kind of area.
    pub scope: ScopeKind,
    /// Its id.
    pub scope_id: String,
    /// `incident`, `camera_alert` or `fraud_flag`.
    pub kind: String,
    /// Incident category, camera detection or fraud scheme.
    pub category: String,
    /// Events.
    pub events: i64,
    /// Harm points.
    pub harm: i64,
}

/// One row of `daily_report_hot_cells`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HotCellRow {
    /// The kind of area.
    pub scope: ScopeKind,
    /// Its id.
    pub scope_id: String,
    /// 1 for the hottest.
    pub rank: i64,
    /// The H3 cell (storage resolution), as hex on the wire.
    pub cell: CellId,
    /// Events in it.
    pub events: i64,
    /// Harm points in it.
    pub harm: i64,
}

/// The daily situation report of one local day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DailyReport {
    /// The local date.
    pub date: NaiveDate,
    /// The time zone of the day (`Asia/Tashkent`).
    pub time_zone: String,
    /// The first instant of the day.
    pub window_start: DateTime<Utc>,
    /// The first instant of the next day.
    pub window_end: DateTime<Utc>,
    /// One row per scope: nation, regions, districts, mahallas, unassigned.
    pub scopes: Vec<ScopeRow>,
    /// Events and harm per scope, kind and category.
    pub categories: Vec<CategoryRow>,
    /// The hottest cells per scope.
    pub hot_cells: Vec<HotCellRow>,
    /// Offences per scope and focus group (empty in reports made before
    /// they were counted).
    #[serde(default)]
    pub focus_groups: Vec<FocusGroupRow>,
    /// The mahallas the difficult rule calls difficult, and those that
    /// recovered since the day before.
    #[serde(default)]
    pub difficult: Vec<DifficultRow>,
    /// The top repeat locations per scope.
    #[serde(default)]
    pub repeat_cells: Vec<RepeatCellRow>,
}

/// A crime-free mahalla in a view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrimeFreeMahalla {
    /// Its id.
    pub mahalla_id: String,
    /// Its name.
    pub name: String,
    /// Its district.
    pub district_id: Option<String>,
}

/// The crime-free mahallas of a scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrimeFree {
    /// How many.
    pub count: usize,
    /// Which.
    pub mahallas: Vec<CrimeFreeMahalla>,
}

/// The streak thresholds of the report, in days.
pub(crate) const STREAK_DAYS: [i64; 3] = [30, 90, 180];

/// The mahallas of a scope crime-free for at least a number of days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Streak {
    /// The threshold, days.
    pub days: i64,
    /// How many mahallas of the scope have been crime-free that long.
    pub count: i64,
    /// Those that reached it on the day.
    pub joined: Vec<CrimeFreeMahalla>,
    /// Those that had been crime-free that long and had an offence on the
    /// day.
    pub left: Vec<CrimeFreeMahalla>,
}

/// Crime-free streaks in a scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Streaks {
    /// The first day of the stored figures: a mahalla without an offence
    /// since has been crime-free at least since then.
    pub records_since: Option<NaiveDate>,
    /// Per threshold of `STREAK_DAYS`.
    pub thresholds: Vec<Streak>,
}

/// The report of one scope: its row, its parts, what happened in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScopeView {
    /// The local date.
    pub date: NaiveDate,
    /// The time zone of the day.
    pub time_zone: String,
    /// The figures of the scope.
    pub summary: ScopeRow,
    /// The figures of its parts: regions of the nation, districts of a
    /// region, mahallas of a district (and the unassigned events for the
    /// nation).
    pub parts: Vec<ScopeRow>,
    /// Events and harm per kind and category.
    pub categories: Vec<CategoryRow>,
    /// The hottest cells.
    pub hot_cells: Vec<HotCellRow>,
    /// The mahallas without an offence on the day.
    pub crime_free: CrimeFree,
    /// Offences per focus group of the scope and of each of its parts.
    #[serde(default)]
    pub focus_groups: Vec<FocusGroupRow>,
    /// Crime-free streaks of the scope's mahallas.
    #[serde(default)]
    pub streaks: Option<Streaks>,
    /// The scope's difficult mahallas, and those that recovered.
    #[serde(default)]
    pub difficult: Difficult,
    /// The scope's top repeat locations of the 14 days.
    #[serde(default)]
    pub repeat_cells: Vec<RepeatCellRow>,
}

impl DailyReport {
    /// The row of a scope.
    pub fn row(&self, scope: &Scope) -> Option<&ScopeRow> {
        self.scopes
            .iter()
            .find(|r| r.scope == scope.kind && r.scope_id == scope.id)
    }

    /// The mahalla rows inside `scope` (every mahalla of the nation, of a
    /// region or district, or the one mahalla), most harm first, then most
    /// offences, then by name: the report's table of mahallas.
    pub(crate) fn mahallas_of(&self, scope: &Scope) -> Result<Vec<&ScopeRow>, ReportError> {
        if self.row(scope).is_none() {
            return Err(ReportError::NotFound(format!(
                "the report of {} has no scope {scope}",
                self.date
            )));
        }
        let mut rows: Vec<&ScopeRow> = self
            .scopes
            .iter()
            .filter(|r| r.scope == ScopeKind::Mahalla)
            .filter(|r| match scope.kind {
                ScopeKind::Nation => true,
                ScopeKind::Region => r.region_id.as_deref() == Some(scope.id.as_str()),
                ScopeKind::District => r.district_id.as_deref() == Some(scope.id.as_str()),
                ScopeKind::Mahalla => r.scope_id == scope.id,
                ScopeKind::Unassigned => false,
            })
            .collect();
        rows.sort_by(|a, b| {
            b.harm
                .cmp(&a.harm)
                .then(b.offences.cmp(&a.offences))
                .then_with(|| a.name.cmp(&b.name))
        });
        Ok(rows)
    }

    /// The view of one scope; `NotFound` when the report has no such scope.
    pub fn view(&self, scope: &Scope) -> Result<ScopeView, ReportError> {
        let summary = self.row(scope).cloned().ok_or_else(|| {
            ReportError::NotFound(format!("the report of {} has no scope {scope}", self.date))
        })?;
        let inside = |r: &ScopeRow| match scope.kind {
            ScopeKind::Nation => true,
            ScopeKind::Region => r.region_id.as_deref() == Some(scope.id.as_str()),
            ScopeKind::District => r.district_id.as_deref() == Some(scope.id.as_str()),
            ScopeKind::Mahalla => r.scope_id == scope.id && r.scope == ScopeKind::Mahalla,
            ScopeKind::Unassigned => false,
        };
        let part_kind = match scope.kind {
            ScopeKind::Nation => Some(ScopeKind::Region),
            ScopeKind::Region => Some(ScopeKind::District),
            ScopeKind::District => Some(ScopeKind::Mahalla),
            _ => None,
        };
        let parts: Vec<ScopeRow> = self
            .scopes
            .iter()
            .filter(|r| {
                (Some(r.scope) == part_kind && inside(r))
                    || (scope.kind == ScopeKind::Nation && r.scope == ScopeKind::Unassigned)
            })
            .cloned()
            .collect();
        let crime_free: Vec<CrimeFreeMahalla> = self
            .scopes
            .iter()
            .filter(|r| r.scope == ScopeKind::Mahalla && r.offences == 0 && inside(r))
            .map(|r| CrimeFreeMahalla {
                mahalla_id: r.scope_id.clone(),
                name: r.name.clone(),
                district_id: r.district_id.clone(),
            })
            .collect();
        let same = |kind: ScopeKind, id: &str| kind == scope.kind && id == scope.id;
        let mahallas: Vec<&ScopeRow> = self
            .scopes
            .iter()
            .filter(|r| r.scope == ScopeKind::Mahalla && inside(r))
            .collect();
        let entry = |r: &ScopeRow| CrimeFreeMahalla {
            mahalla_id: r.scope_id.clone(),
            name: r.name.clone(),
            district_id: r.district_id.clone(),
        };
        let streaks = (summary.records_since.is_some() && scope.kind != ScopeKind::Unassigned)
            .then(|| Streaks {
                records_since: summary.records_since,
                thresholds: STREAK_DAYS
                    .iter()
                    .map(|&days| {
                        let reached = |v: Option<i64>| v.is_some_and(|v| v >= days);
                        Streak {
                            days,
                            count: mahallas
                                .iter()
                                .filter(|r| reached(r.crime_free_days))
                                .count() as i64,
                            joined: mahallas
                                .iter()
                                .filter(|r| {
                                    reached(r.crime_free_days) && !reached(r.crime_free_days_before)
                                })
                                .map(|r| entry(r))
                                .collect(),
                            left: mahallas
                                .iter()
                                .filter(|r| {
                                    !reached(r.crime_free_days) && reached(r.crime_free_days_before)
                                })
                                .map(|r| entry(r))
                                .collect(),
                        }
                    })
                    .collect(),
            });
        let shown: std::collections::HashSet<(ScopeKind, &str)> = std::iter::once(&summary)
            .chain(&parts)
            .map(|r| (r.scope, r.scope_id.as_str()))
            .collect();
        let focus_groups = self
            .focus_groups
            .iter()
            .filter(|f| shown.contains(&(f.scope, f.scope_id.as_str())))
            .cloned()
            .collect();
        Ok(ScopeView {
            date: self.date,
            time_zone: self.time_zone.clone(),
            summary,
            parts,
            categories: self
                .categories
                .iter()
                .filter(|c| same(c.scope, &c.scope_id))
                .cloned()
                .collect(),
            hot_cells: self
                .hot_cells
                .iter()
                .filter(|c| same(c.scope, &c.scope_id))
                .cloned()
                .collect(),
            crime_free: CrimeFree {
                count: crime_free.len(),
                mahallas: crime_free,
            },
            focus_groups,
            streaks,
            difficult: Difficult::of(&self.difficult, |d| match scope.kind {
                ScopeKind::Nation => true,
                ScopeKind::Region => d.region_id == scope.id,
                ScopeKind::District => d.district_id == scope.id,
                ScopeKind::Mahalla => d.mahalla_id == scope.id,
                ScopeKind::Unassigned => false,
            }),
            repeat_cells: self
                .repeat_cells
                .iter()
                .filter(|c| same(c.scope, &c.scope_id))
                .cloned()
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_print() {
        for s in [
            "nation",
            "unassigned",
            "region:tashkent",
            "district:chilonzor",
            "mahalla:m-1",
        ] {
            let scope: Scope = s.parse().expect(s);
            assert_eq!(scope.to_string(), s);
        }
        for bad in ["", "country", "nation:x", "street:1"] {
            let e = bad.parse::<Scope>().expect_err(bad);
            assert!(
                e.to_string().contains("expected nation, region:<id>"),
                "{e}"
            );
        }
        // Ids follow the registry's rule (posbon_geo::check_place_id).
        for (bad, why) in [
            ("region:", "the id is empty"),
            ("district:Chilonzor", "may only hold lowercase"),
            ("mahalla:m-1'; --", "may only hold lowercase"),
            ("region:a\nb", "may only hold lowercase"),
        ] {
            let e = bad.parse::<Scope>().expect_err(bad);
            assert!(e.to_string().contains(why), "{bad:?}: {e}");
        }
    }
}

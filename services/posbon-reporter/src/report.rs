//! [`DailyReport`]: the rows of one day's report, and the view of one scope.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use posbon_model::CellId;
use posbon_sql::datafusion::arrow::array::{
    Array, AsArray, Float64Array, Int64Array, RecordBatch, StringArray, UInt64Array,
};
use posbon_sql::datafusion::arrow::compute::cast;
use posbon_sql::datafusion::arrow::datatypes::DataType;
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
    pub const fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Nation => "nation",
            ScopeKind::Region => "region",
            ScopeKind::District => "district",
            ScopeKind::Mahalla => "mahalla",
            ScopeKind::Unassigned => "unassigned",
        }
    }

    fn parse(s: &str) -> Option<Self> {
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
                ) || id.is_empty()
                {
                    return Err(bad());
                }
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

/// How a focus group reads on the page and the printed report.
pub fn focus_group_label(group: &str) -> &str {
    match group {
        "victim_minor" => "Minor victims (under 18)",
        "victim_youth" => "Young victims (18 to 30)",
        "victim_woman" => "Women victims",
        "offender_minor" => "Minor offenders (under 18)",
        "offender_youth" => "Young offenders (18 to 30)",
        "domestic" => "Family and domestic",
        "offender_youth_drugs" => "Drug offences, young offenders",
        other => other,
    }
}

/// One row of `daily_report_focus_groups`: a scope's offences in one focus
/// group. In a view for a caller without sensitive access, a mahalla's
/// small count is withheld ([`DailyReport::withhold_small_counts`]).
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
pub const STREAK_DAYS: [i64; 3] = [30, 90, 180];

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
    /// Per threshold of [`STREAK_DAYS`].
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

    /// Withholds the focus-group figures that could identify a victim, for
    /// a caller without sensitive access (`min` below 2 withholds nothing):
    ///
    /// 1. A mahalla's (or the unassigned events') count below `min`, zero
    ///    included, reads as "fewer than `min`" (`offences` `None`,
    ///    `fewer_than` set): telling 0 from 1 in a mahalla with one incident
    ///    would tell that incident's flags.
    /// 2. A mahalla's baselines and z scores are withheld whatever its
    ///    count: the next day's baseline moves by the day's count over the
    ///    days it averages, and gives it back.
    /// 3. Per district and group, the withheld counts must not follow from
    ///    the district's total less the shown ones: when only one is
    ///    withheld, or their total would show that one of them is not 0
    ///    (above `(k - 1) (min - 1)` for `k` of them), the smallest shown
    ///    count of the district is withheld as well (`withheld`). A
    ///    district that cannot cover its counts that way (every mahalla
    ///    already withheld) has its own count withheld, and then the
    ///    smallest other district count of its region too.
    ///
    /// What a withheld set still gives away is its total, never one
    /// count, nor that one is not 0: a shown count added can hold all of
    /// the total but `min`. The rule runs over the whole report before a view
    /// is cut, so every view withholds the same counts. District, region
    /// and national totals are shown.
    pub fn withhold_small_counts(&mut self, min: i64) {
        if min < 2 {
            return;
        }
        let district_of: HashMap<&str, &str> = self
            .scopes
            .iter()
            .filter(|r| r.scope == ScopeKind::Mahalla)
            .filter_map(|r| Some((r.scope_id.as_str(), r.district_id.as_deref()?)))
            .collect();
        let region_of: HashMap<&str, &str> = self
            .scopes
            .iter()
            .filter(|r| r.scope == ScopeKind::District)
            .filter_map(|r| Some((r.scope_id.as_str(), r.region_id.as_deref()?)))
            .collect();
        let hide = |f: &mut FocusGroupRow| {
            f.offences = None;
            f.z7 = None;
            f.z28 = None;
            f.baseline7 = None;
            f.baseline28 = None;
        };
        // The counts before anything is withheld.
        let truth: Vec<i64> = self
            .focus_groups
            .iter()
            .map(|f| f.offences.unwrap_or(0))
            .collect();
        // Per district (a mahalla without one is a group of its own) and
        // group: the rows of its mahallas.
        let mut groups: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
        for (i, f) in self.focus_groups.iter_mut().enumerate() {
            match f.scope {
                ScopeKind::Mahalla => {
                    let key = district_of
                        .get(f.scope_id.as_str())
                        .map_or_else(|| format!("mahalla:{}", f.scope_id), |d| (*d).to_owned());
                    groups
                        .entry((key, f.focus_group.clone()))
                        .or_default()
                        .push(i);
                }
                ScopeKind::Unassigned => {}
                _ => continue,
            }
            // Shown or not, a mahalla's baselines and z scores go.
            let count = f.offences;
            hide(f);
            match count {
                Some(n) if n >= min => f.offences = Some(n),
                Some(_) => f.fewer_than = Some(min),
                // withheld already
                None => {}
            }
        }
        let mut uncovered: Vec<(String, String)> = Vec::new();
        for ((district, group), rows) in &groups {
            loop {
                let withheld: Vec<usize> = rows
                    .iter()
                    .copied()
                    .filter(|&i| self.focus_groups[i].offences.is_none())
                    .collect();
                if withheld.is_empty() {
                    break;
                }
                // The small counts' true values, to judge what the total
                // gives away (the complement's are at least `min`).
                let small: Vec<i64> = withheld
                    .iter()
                    .filter(|&&i| self.focus_groups[i].fewer_than.is_some())
                    .map(|&i| truth[i])
                    .collect();
                // Without a shown count among them, each small count lies
                // in 0..min; the total pins one down, or shows it is not 0,
                // when the others cannot hold the rest: total > (k - 1)
                // (min - 1). A single one is its district's remainder.
                let covered = withheld.iter().any(|&i| self.focus_groups[i].withheld);
                let (k, total) = (small.len() as i64, small.iter().sum::<i64>());
                let pinned = !covered && (k == 1 || total > (k - 1) * (min - 1));
                if !pinned {
                    break;
                }
                let next = rows
                    .iter()
                    .copied()
                    .filter(|&i| self.focus_groups[i].offences.is_some())
                    .min_by_key(|&i| {
                        (
                            self.focus_groups[i].offences,
                            self.focus_groups[i].scope_id.clone(),
                        )
                    });
                match next {
                    Some(i) => {
                        let f = &mut self.focus_groups[i];
                        f.offences = None;
                        f.withheld = true;
                    }
                    None => {
                        uncovered.push((district.clone(), group.clone()));
                        break;
                    }
                }
            }
        }
        // A district whose mahallas cannot cover each other: its own count
        // goes, and the smallest other district count of its region with it.
        for (district, group) in uncovered {
            let of_district = |f: &FocusGroupRow| {
                f.scope == ScopeKind::District && f.scope_id == district && f.focus_group == group
            };
            let Some(i) = self.focus_groups.iter().position(of_district) else {
                continue;
            };
            if self.focus_groups[i].offences.is_none() {
                continue;
            }
            hide(&mut self.focus_groups[i]);
            self.focus_groups[i].withheld = true;
            let region = region_of.get(district.as_str()).copied();
            let next = self
                .focus_groups
                .iter()
                .enumerate()
                .filter(|(_, f)| {
                    f.scope == ScopeKind::District
                        && f.focus_group == group
                        && f.offences.is_some()
                        && region.is_some()
                        && region_of.get(f.scope_id.as_str()).copied() == region
                })
                .min_by_key(|(_, f)| (f.offences, f.scope_id.clone()))
                .map(|(j, _)| j);
            if let Some(j) = next {
                hide(&mut self.focus_groups[j]);
                self.focus_groups[j].withheld = true;
            }
        }
    }
}

/// Reads the columns of stored report batches by name.
pub(crate) struct Columns<'a> {
    pub(crate) batch: &'a RecordBatch,
}

impl<'a> Columns<'a> {
    pub(crate) fn column(&self, name: &str) -> Result<&'a dyn Array, ReportError> {
        self.batch
            .column_by_name(name)
            .map(|c| c.as_ref())
            .ok_or_else(|| ReportError::Internal(format!("report rows have no column {name}")))
    }

    pub(crate) fn strings(&self, name: &str) -> Result<StringArray, ReportError> {
        let c = self.column(name)?;
        let c = cast(c, &DataType::Utf8).map_err(|e| ReportError::Internal(e.to_string()))?;
        Ok(c.as_string::<i32>().clone())
    }

    pub(crate) fn ints(&self, name: &str) -> Result<Int64Array, ReportError> {
        let c = cast(self.column(name)?, &DataType::Int64)
            .map_err(|e| ReportError::Internal(e.to_string()))?;
        Ok(c.as_primitive().clone())
    }

    pub(crate) fn floats(&self, name: &str) -> Result<Float64Array, ReportError> {
        let c = cast(self.column(name)?, &DataType::Float64)
            .map_err(|e| ReportError::Internal(e.to_string()))?;
        Ok(c.as_primitive().clone())
    }

    /// A date column as days since 1970-01-01.
    pub(crate) fn day_numbers(&self, name: &str) -> Result<Int64Array, ReportError> {
        let c = cast(self.column(name)?, &DataType::Date32)
            .and_then(|c| cast(&c, &DataType::Int32))
            .and_then(|c| cast(&c, &DataType::Int64))
            .map_err(|e| ReportError::Internal(e.to_string()))?;
        Ok(c.as_primitive().clone())
    }

    pub(crate) fn u64s(&self, name: &str) -> Result<UInt64Array, ReportError> {
        let c = cast(self.column(name)?, &DataType::UInt64)
            .map_err(|e| ReportError::Internal(e.to_string()))?;
        Ok(c.as_primitive().clone())
    }
}

pub(crate) fn days_to_date(days: i64) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(chrono::TimeDelta::days(days))
}

pub(crate) fn opt(a: &StringArray, i: usize) -> Option<String> {
    a.is_valid(i).then(|| a.value(i).to_owned())
}

pub(crate) fn scope_kind(s: &str) -> Result<ScopeKind, ReportError> {
    ScopeKind::parse(s).ok_or_else(|| ReportError::Internal(format!("unknown scope {s:?}")))
}

/// `daily_reports` rows from batches.
pub(crate) fn scope_rows(batches: &[RecordBatch]) -> Result<Vec<ScopeRow>, ReportError> {
    let mut out = Vec::new();
    for batch in batches {
        let c = Columns { batch };
        let (scope, scope_id, name) = (
            c.strings("scope")?,
            c.strings("scope_id")?,
            c.strings("name")?,
        );
        let (region, district) = (c.strings("region_id")?, c.strings("district_id")?);
        let ints: Vec<Int64Array> = [
            "mahallas",
            "crime_free_mahallas",
            "events",
            "incidents",
            "camera_alerts",
            "fraud_flags",
            "offences",
            "cyber",
            "harm",
            "escalations_opened",
            "escalations_closed",
        ]
        .iter()
        .map(|n| c.ints(n))
        .collect::<Result<_, _>>()?;
        let floats: Vec<Float64Array> = [
            "cyber_share",
            "baseline7",
            "z7",
            "baseline28",
            "z28",
            "dispersion",
            "camera_alerts_baseline7",
            "camera_alerts_z7",
        ]
        .iter()
        .map(|n| c.floats(n))
        .collect::<Result<_, _>>()?;
        let days: Vec<Int64Array> = [
            "baseline7_days",
            "baseline28_days",
            "crime_free_days",
            "crime_free_days_before",
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
            "near_repeat_pairs",
        ]
        .iter()
        .map(|n| c.ints(n))
        .collect::<Result<_, _>>()?;
        let shares: Vec<Float64Array> = [
            "near_repeat_share",
            "near_repeat_expected",
            "near_repeat_ratio",
            "near_repeat_excess",
        ]
        .iter()
        .map(|n| c.floats(n))
        .collect::<Result<_, _>>()?;
        let share = |k: usize, i: usize| shares[k].is_valid(i).then(|| shares[k].value(i));
        let dates: Vec<Int64Array> = ["last_offence", "records_since"]
            .iter()
            .map(|n| c.day_numbers(n))
            .collect::<Result<_, _>>()?;
        let date = |k: usize, i: usize| {
            dates[k]
                .is_valid(i)
                .then(|| days_to_date(dates[k].value(i)))
                .flatten()
        };
        let float = |k: usize, i: usize| floats[k].is_valid(i).then(|| floats[k].value(i));
        let day = |k: usize, i: usize| days[k].is_valid(i).then(|| days[k].value(i));
        for i in 0..batch.num_rows() {
            out.push(ScopeRow {
                scope: scope_kind(scope.value(i))?,
                scope_id: scope_id.value(i).to_owned(),
                name: name.value(i).to_owned(),
                region_id: opt(&region, i),
                district_id: opt(&district, i),
                mahallas: ints[0].value(i),
                crime_free_mahallas: ints[1].value(i),
                events: ints[2].value(i),
                incidents: ints[3].value(i),
                camera_alerts: ints[4].value(i),
                fraud_flags: ints[5].value(i),
                offences: ints[6].value(i),
                cyber: ints[7].value(i),
                cyber_share: float(0, i),
                harm: ints[8].value(i),
                baseline7: float(1, i),
                baseline7_days: day(0, i),
                z7: float(2, i),
                baseline28: float(3, i),
                baseline28_days: day(1, i),
                z28: float(4, i),
                dispersion: float(5, i),
                camera_alerts_baseline7: float(6, i),
                camera_alerts_z7: float(7, i),
                escalations_opened: ints[9].value(i),
                escalations_closed: ints[10].value(i),
                crime_free_days: day(2, i),
                crime_free_days_before: day(3, i),
                last_offence: date(0, i),
                records_since: date(1, i),
                crime_free_30d: day(4, i),
                crime_free_90d: day(5, i),
                crime_free_180d: day(6, i),
                difficult_mahallas: day(7, i),
                newly_difficult: day(8, i),
                recovered_mahallas: day(9, i),
                place_offences: day(10, i),
                repeat_cells: day(11, i),
                repeat_offences: day(12, i),
                near_repeat_offences: day(13, i),
                near_repeat_share: share(0, i),
                near_repeat_pairs: day(14, i),
                near_repeat_expected: share(1, i),
                near_repeat_ratio: share(2, i),
                near_repeat_excess: share(3, i),
            });
        }
    }
    Ok(out)
}

/// `daily_report_categories` rows from batches.
pub(crate) fn category_rows(batches: &[RecordBatch]) -> Result<Vec<CategoryRow>, ReportError> {
    let mut out = Vec::new();
    for batch in batches {
        let c = Columns { batch };
        let (scope, scope_id) = (c.strings("scope")?, c.strings("scope_id")?);
        let (kind, category) = (c.strings("kind")?, c.strings("category")?);
        let (events, harm) = (c.ints("events")?, c.ints("harm")?);
        for i in 0..batch.num_rows() {
            out.push(CategoryRow {
                scope: scope_kind(scope.value(i))?,
                scope_id: scope_id.value(i).to_owned(),
                kind: kind.value(i).to_owned(),
                category: category.value(i).to_owned(),
                events: events.value(i),
                harm: harm.value(i),
            });
        }
    }
    Ok(out)
}

/// `daily_report_hot_cells` rows from batches.
pub(crate) fn hot_cell_rows(batches: &[RecordBatch]) -> Result<Vec<HotCellRow>, ReportError> {
    let mut out = Vec::new();
    for batch in batches {
        let c = Columns { batch };
        let (scope, scope_id) = (c.strings("scope")?, c.strings("scope_id")?);
        let (rank, cell) = (c.ints("rank")?, c.u64s("cell")?);
        let (events, harm) = (c.ints("events")?, c.ints("harm")?);
        for i in 0..batch.num_rows() {
            out.push(HotCellRow {
                scope: scope_kind(scope.value(i))?,
                scope_id: scope_id.value(i).to_owned(),
                rank: rank.value(i),
                cell: CellId::new(cell.value(i))
                    .ok_or_else(|| ReportError::Internal("a hot cell is not an h3 index".into()))?,
                events: events.value(i),
                harm: harm.value(i),
            });
        }
    }
    Ok(out)
}

/// `daily_report_focus_groups` rows from batches.
pub(crate) fn focus_group_rows(batches: &[RecordBatch]) -> Result<Vec<FocusGroupRow>, ReportError> {
    let mut out = Vec::new();
    for batch in batches {
        let c = Columns { batch };
        let (scope, scope_id, group) = (
            c.strings("scope")?,
            c.strings("scope_id")?,
            c.strings("focus_group")?,
        );
        let (offences, days7, days28) = (
            c.ints("offences")?,
            c.ints("baseline7_days")?,
            c.ints("baseline28_days")?,
        );
        let floats: Vec<Float64Array> = ["baseline7", "z7", "baseline28", "z28"]
            .iter()
            .map(|n| c.floats(n))
            .collect::<Result<_, _>>()?;
        let float = |k: usize, i: usize| floats[k].is_valid(i).then(|| floats[k].value(i));
        for i in 0..batch.num_rows() {
            out.push(FocusGroupRow {
                scope: scope_kind(scope.value(i))?,
                scope_id: scope_id.value(i).to_owned(),
                focus_group: group.value(i).to_owned(),
                offences: Some(offences.value(i)),
                fewer_than: None,
                withheld: false,
                baseline7: float(0, i),
                baseline7_days: days7.value(i),
                z7: float(1, i),
                baseline28: float(2, i),
                baseline28_days: days28.value(i),
                z28: float(3, i),
            });
        }
    }
    Ok(out)
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
        for bad in ["", "country", "region:", "nation:x", "street:1"] {
            let e = bad.parse::<Scope>().expect_err(bad);
            assert!(
                e.to_string().contains("expected nation, region:<id>"),
                "{e}"
            );
        }
    }

    fn mahalla(id: &str, district: &str) -> ScopeRow {
        ScopeRow {
            scope: ScopeKind::Mahalla,
            scope_id: id.into(),
            name: id.into(),
            region_id: Some("r".into()),
            district_id: Some(district.into()),
            mahallas: 1,
            crime_free_mahallas: 0,
            events: 0,
            incidents: 0,
            camera_alerts: 0,
            fraud_flags: 0,
            offences: 0,
            cyber: 0,
            cyber_share: None,
            harm: 0,
            baseline7: None,
            baseline7_days: None,
            z7: None,
            baseline28: None,
            baseline28_days: None,
            z28: None,
            dispersion: None,
            camera_alerts_baseline7: None,
            camera_alerts_z7: None,
            escalations_opened: 0,
            escalations_closed: 0,
            crime_free_days: None,
            crime_free_days_before: None,
            last_offence: None,
            records_since: None,
            crime_free_30d: None,
            crime_free_90d: None,
            crime_free_180d: None,
            difficult_mahallas: None,
            newly_difficult: None,
            recovered_mahallas: None,
            place_offences: None,
            repeat_cells: None,
            repeat_offences: None,
            near_repeat_offences: None,
            near_repeat_share: None,
            near_repeat_pairs: None,
            near_repeat_expected: None,
            near_repeat_ratio: None,
            near_repeat_excess: None,
        }
    }

    fn focus(scope: ScopeKind, id: &str, group: &str, n: i64) -> FocusGroupRow {
        FocusGroupRow {
            scope,
            scope_id: id.into(),
            focus_group: group.into(),
            offences: Some(n),
            fewer_than: None,
            withheld: false,
            baseline7: Some(1.0),
            baseline7_days: 7,
            z7: Some(0.5),
            baseline28: Some(1.0),
            baseline28_days: 28,
            z28: Some(0.5),
        }
    }

    #[test]
    fn small_focus_counts_are_withheld_with_what_would_give_them_away() {
        use ScopeKind::{District, Mahalla};
        let district = |id: &str| ScopeRow {
            scope: District,
            region_id: Some("r".into()),
            district_id: None,
            ..mahalla(id, "")
        };
        let mut report = DailyReport {
            date: NaiveDate::from_ymd_opt(2026, 5, 1).expect("date"),
            time_zone: "Asia/Tashkent".into(),
            window_start: Utc::now(),
            window_end: Utc::now(),
            scopes: vec![
                district("a"),
                district("b"),
                district("c"),
                district("d"),
                mahalla("a1", "a"),
                mahalla("a2", "a"),
                mahalla("a3", "a"),
                mahalla("b1", "b"),
                mahalla("b2", "b"),
                mahalla("b3", "b"),
                mahalla("c1", "c"),
                mahalla("d1", "d"),
                mahalla("d2", "d"),
                mahalla("d3", "d"),
            ],
            categories: Vec::new(),
            hot_cells: Vec::new(),
            difficult: Vec::new(),
            repeat_cells: Vec::new(),
            focus_groups: vec![
                focus(District, "a", "victim_minor", 12),
                // district a: one small count (1), so the smallest shown
                // count (4) goes too
                focus(Mahalla, "a1", "victim_minor", 1),
                focus(Mahalla, "a2", "victim_minor", 4),
                focus(Mahalla, "a3", "victim_minor", 7),
                // district b: two small counts whose total (3) shows that
                // one of them is not 0: the 9 goes too
                focus(Mahalla, "b1", "victim_minor", 2),
                focus(Mahalla, "b2", "victim_minor", 1),
                focus(Mahalla, "b3", "victim_minor", 9),
                // district c: one mahalla, nothing to cover it with: the
                // district's count goes, and the smallest other district's
                // of the region (d, 5; not a, 12)
                focus(District, "c", "victim_minor", 1),
                focus(Mahalla, "c1", "victim_minor", 1),
                focus(District, "d", "victim_minor", 5),
                // district d: 0, 1 and 4: the total 1 of the two small ones
                // could be either's, nothing more goes
                focus(Mahalla, "d1", "victim_minor", 0),
                focus(Mahalla, "d2", "victim_minor", 1),
                focus(Mahalla, "d3", "victim_minor", 4),
            ],
        };
        let before = report.clone();
        report.withhold_small_counts(1);
        assert_eq!(report, before, "a minimum of 1 withholds nothing");
        report.withhold_small_counts(3);
        type Shown = (
            String,
            Option<i64>,
            Option<i64>,
            bool,
            Option<f64>,
            Option<f64>,
        );
        let shown: Vec<Shown> = report
            .focus_groups
            .iter()
            .map(|f| {
                (
                    f.scope_id.clone(),
                    f.offences,
                    f.fewer_than,
                    f.withheld,
                    f.z7,
                    f.baseline7,
                )
            })
            .collect();
        let (z, b) = (Some(0.5), Some(1.0));
        assert_eq!(
            shown,
            vec![
                ("a".into(), Some(12), None, false, z, b),
                ("a1".into(), None, Some(3), false, None, None),
                ("a2".into(), None, None, true, None, None),
                ("a3".into(), Some(7), None, false, None, None),
                ("b1".into(), None, Some(3), false, None, None),
                ("b2".into(), None, Some(3), false, None, None),
                ("b3".into(), None, None, true, None, None),
                ("c".into(), None, None, true, None, None),
                ("c1".into(), None, Some(3), false, None, None),
                ("d".into(), None, None, true, None, None),
                ("d1".into(), None, Some(3), false, None, None),
                ("d2".into(), None, Some(3), false, None, None),
                ("d3".into(), Some(4), None, false, None, None),
            ]
        );
        let again = report.clone();
        report.withhold_small_counts(3);
        assert_eq!(report, again, "withholding twice changes nothing");
        // The view of a mahalla carries its withheld count, not the number.
        let view = report
            .view(&"mahalla:a2".parse().expect("scope"))
            .expect("view");
        assert_eq!(view.focus_groups.len(), 1);
        assert_eq!(view.focus_groups[0].offences, None);
        let json = serde_json::to_string(&view).expect("json");
        assert!(json.contains("\"withheld\":true"), "{json}");
    }
}

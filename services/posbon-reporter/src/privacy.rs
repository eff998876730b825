//! What a caller without sensitive access may not read of the report: a
//! mahalla's small focus-group counts, and whatever would give them away
//! ([`DailyReport::withhold_small_counts`]).

use std::collections::{BTreeMap, HashMap};

use crate::report::{DailyReport, FocusGroupRow, ScopeKind};

impl DailyReport {
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
    pub(crate) fn withhold_small_counts(&mut self, min: i64) {
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

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, Utc};

    use crate::report::ScopeRow;

    use super::*;

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

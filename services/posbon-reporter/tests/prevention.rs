//! The report's prevention sections against a simulated city with planted
//! situations (difficult mahallas, quiet mahallas, repeat districts): the
//! difficult-mahalla rule finds the planted ones, recurrence rises where
//! repeats were planted, and every figure equals a computation in plain
//! Rust from the events and the stored reports.
//!
//! Prints its figures (run with `--nocapture` to see them):
//! `cargo test -p posbon-reporter --test prevention -- --nocapture`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use h3o::CellIndex;
use posbon_geo::Registry;
use posbon_model::{EnrichedEvent, EscalationStatus, Event, IncidentCategory, RiskLevel};
use posbon_reporter::reporter::{DifficultRule, day_window, report_limits};
use posbon_reporter::{DailyReport, Reporter, ScopeKind, ScopeRow};
use posbon_sim::{
    CityOptions, EventOptions, EventStream, SimBody, SimRegistry, SituationTruth, Situations,
    city_registry,
};
use posbon_store::EscalationStoreExt;
use rand::{RngExt, SeedableRng};

mod common;
use common::{escalation, store_of, tashkent};

/// Days simulated.
const DAYS: i64 = 24;
/// Events per hour over the whole city.
const RATE: f64 = 10.0;
/// Days at the end the planted difficult mahallas are difficult.
const DIFFICULT_DAYS: i64 = 8;
/// Reports made, the last days of the stream.
const REPORTED: i64 = 14;
/// Seconds in 7 days: near repeats are within it.
const WEEK: f64 = 604_800.0;

struct Simulated {
    registry: Arc<Registry>,
    events: Vec<EnrichedEvent>,
    truth: SituationTruth,
}

fn simulate() -> Simulated {
    let city = city_registry(&CityOptions::default()).expect("city");
    let registry = Arc::new(city.registry().expect("registry"));
    let sim = Arc::new(SimRegistry::from_generated(&city).expect("sim"));
    let mut stream = EventStream::new(
        sim,
        &EventOptions {
            seed: 23,
            rate_per_hour: RATE,
            duration: TimeDelta::days(DAYS),
            start: common::start(),
            bad_fraction: 0.0,
            situations: Situations {
                difficult: 5,
                difficult_days: DIFFICULT_DAYS,
                quiet: 20,
                repeat_districts: 3,
            },
        },
    )
    .expect("stream");
    let events = stream
        .by_ref()
        .filter_map(|item| match item.body {
            SimBody::Valid { event, .. } => Some(common::enrich(&registry, *event)),
            SimBody::Bad { .. } => None,
        })
        .collect();
    Simulated {
        registry,
        events,
        truth: stream.truth().situations.clone(),
    }
}

fn local_day(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&tashkent()).date_naive()
}

fn day(n: i64) -> NaiveDate {
    common::start().date_naive() + TimeDelta::days(n)
}

fn row<'a>(report: &'a DailyReport, kind: ScopeKind, id: &str) -> &'a ScopeRow {
    report
        .scopes
        .iter()
        .find(|r| r.scope == kind && r.scope_id == id)
        .unwrap_or_else(|| panic!("no {kind} {id}"))
}

/// A place-based offence of the recurrence figures.
#[derive(Debug, Clone)]
struct Place {
    id: String,
    region: String,
    district: String,
    mahalla: String,
    cell: CellIndex,
    category: IncidentCategory,
    /// Seconds since 1970, with microseconds.
    t: f64,
    at: DateTime<Utc>,
}

fn places(events: &[EnrichedEvent], date: NaiveDate) -> Vec<Place> {
    let (_, end) = day_window(date).expect("window");
    let (start, _) = day_window(date - TimeDelta::days(13)).expect("window");
    events
        .iter()
        .filter_map(|e| {
            let Event::Incident(i) = &e.event else {
                return None;
            };
            let at = e.event.occurred_at().with_timezone(&Utc);
            let place = !matches!(
                i.category,
                IncidentCategory::Fraud | IncidentCategory::Cybercrime
            );
            (place && at >= start && at < end && e.mahalla_id.is_some()).then(|| Place {
                id: i.header.id.clone(),
                region: e.region_id.clone().expect("region"),
                district: e.district_id.clone().expect("district"),
                mahalla: e.mahalla_id.clone().expect("mahalla"),
                cell: CellIndex::try_from(u64::from(e.cell)).expect("cell"),
                category: i.category,
                t: at.timestamp_micros() as f64 / 1e6,
                at,
            })
        })
        .collect()
}

/// The near-repeat figures of one district, computed directly.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Near {
    n: usize,
    pairs: u64,
    offences: u64,
    expected: f64,
}

fn close_in_space(a: &Place, b: &Place) -> bool {
    a.cell.grid_distance(b.cell).is_ok_and(|d| d <= 1)
}

/// Close pairs of a district with its offences at times `t`.
fn close_pairs(offences: &[Place], t: &[f64]) -> u64 {
    let mut pairs = 0;
    for i in 0..offences.len() {
        for j in i + 1..offences.len() {
            if (t[i] - t[j]).abs() <= WEEK && close_in_space(&offences[i], &offences[j]) {
                pairs += 1;
            }
        }
    }
    pairs
}

fn near(offences: &[Place]) -> Near {
    let n = offences.len();
    let t: Vec<f64> = offences.iter().map(|o| o.t).collect();
    let mut later_with_earlier = BTreeSet::new();
    let (mut space, mut time) = (0u64, 0u64);
    for i in 0..n {
        for j in i + 1..n {
            let s = close_in_space(&offences[i], &offences[j]);
            let c = (t[i] - t[j]).abs() <= WEEK;
            space += u64::from(s);
            time += u64::from(c);
            if s && c {
                // the later of the two (by time, then id) has an earlier one
                let later = if (t[j], &offences[j].id) > (t[i], &offences[i].id) {
                    j
                } else {
                    i
                };
                later_with_earlier.insert(later);
            }
        }
    }
    let all = (n * n.saturating_sub(1) / 2) as f64;
    Near {
        n,
        pairs: close_pairs(offences, &t),
        offences: later_with_earlier.len() as u64,
        expected: if n >= 2 {
            space as f64 * time as f64 / all
        } else {
            0.0
        },
    }
}

/// [`near`] per category, summed: close pairs are of one category.
fn near_by_category(offences: &[Place]) -> Near {
    let mut by: BTreeMap<IncidentCategory, Vec<Place>> = BTreeMap::new();
    for o in offences {
        by.entry(o.category).or_default().push(o.clone());
    }
    let mut sum = Near::default();
    for list in by.values() {
        let n = near(list);
        sum.n += n.n;
        sum.pairs += n.pairs;
        sum.offences += n.offences;
        sum.expected += n.expected;
    }
    sum
}

fn rel_close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// The difficult rule of `sql/difficult.sql`, over the 14 days ending on
/// `date`, from the stored reports' z7 (no escalations in this test):
/// (score days, days scored) per mahalla.
fn score_days(
    reports: &BTreeMap<NaiveDate, DailyReport>,
    date: NaiveDate,
    rule: &DifficultRule,
) -> BTreeMap<String, (i64, i64)> {
    let mut out: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for back in 0..14 {
        let Some(report) = reports.get(&(date - TimeDelta::days(back))) else {
            continue;
        };
        for r in report
            .scopes
            .iter()
            .filter(|r| r.scope == ScopeKind::Mahalla)
        {
            if let Some(z) = r.z7 {
                let e = out.entry(r.scope_id.clone()).or_default();
                e.1 += 1;
                if z >= rule.z {
                    e.0 += 1;
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn difficult_mahallas_streaks_and_recurrence_match_the_planted_situations() {
    let sim = simulate();
    let truth = &sim.truth;
    println!(
        "{} events over {DAYS} days; planted: difficult {:?}, quiet {}, repeat districts {:?}",
        sim.events.len(),
        truth
            .difficult
            .iter()
            .map(|d| d.mahalla_id.as_str())
            .collect::<Vec<_>>(),
        truth.quiet.len(),
        truth.repeat_districts
    );
    let store = store_of(&sim.events).await;
    let reporter =
        Reporter::new(store, Arc::clone(&sim.registry), report_limits()).expect("reporter");
    let rule = reporter.difficult_rule().clone();
    let mut reports = BTreeMap::new();
    let first = DAYS - REPORTED;
    for n in first..DAYS {
        let report = reporter.generate(day(n)).await.expect("report");
        reports.insert(day(n), report);
    }
    let last = day(DAYS - 1);
    let report = &reports[&last];

    // Difficult mahallas: every planted one is found; what is listed is
    // what the rule gives from the stored scores, day by day.
    let planted: BTreeSet<&str> = truth
        .difficult
        .iter()
        .map(|d| d.mahalla_id.as_str())
        .collect();
    let mut found_on: BTreeMap<&str, NaiveDate> = BTreeMap::new();
    // The day each mahalla last became difficult.
    let mut run_from: BTreeMap<String, NaiveDate> = BTreeMap::new();
    let mut false_alarms = 0usize;
    for n in first + 1..DAYS {
        let date = day(n);
        let today = score_days(&reports, date, &rule);
        let before = score_days(&reports, date - TimeDelta::days(1), &rule);
        let difficult = |m: &BTreeMap<String, (i64, i64)>, id: &str| {
            m.get(id).is_some_and(|(days, _)| *days >= rule.z_days)
        };
        let r = &reports[&date];
        let listed: BTreeMap<&str, &posbon_reporter::DifficultRow> = r
            .difficult
            .iter()
            .map(|d| (d.mahalla_id.as_str(), d))
            .collect();
        let want: BTreeSet<&str> = today
            .keys()
            .chain(before.keys())
            .map(String::as_str)
            .filter(|id| difficult(&today, id) || difficult(&before, id))
            .collect();
        assert_eq!(
            listed.keys().copied().collect::<BTreeSet<_>>(),
            want,
            "{date}: the listed mahallas"
        );
        for (id, d) in &listed {
            let (days, scored) = today.get(*id).copied().unwrap_or_default();
            assert_eq!(d.score_days, days, "{date} {id}: score days");
            assert_eq!(d.days_scored, scored, "{date} {id}: days scored");
            assert_eq!(d.escalation_days, 0, "{date} {id}");
            assert_eq!(d.difficult_days, days, "{date} {id}: difficult days");
            assert_eq!(d.is_difficult(), difficult(&today, id), "{date} {id}");
            assert_eq!(
                d.newly,
                difficult(&today, id) && !difficult(&before, id),
                "{date} {id}: newly"
            );
            if d.is_difficult() && planted.contains(id) {
                found_on.entry(id).or_insert(date);
            }
            if d.newly {
                run_from.insert(id.to_string(), date);
            }
        }
        if date == last {
            false_alarms = listed
                .values()
                .filter(|d| d.is_difficult() && !planted.contains(d.mahalla_id.as_str()))
                .count();
        }
        // The counts per scope add the list up.
        let nation = row(r, ScopeKind::Nation, "nation");
        assert_eq!(
            nation.difficult_mahallas,
            Some(listed.values().filter(|d| d.is_difficult()).count() as i64)
        );
        assert_eq!(
            nation.newly_difficult,
            Some(listed.values().filter(|d| d.newly).count() as i64)
        );
        assert_eq!(
            nation.recovered_mahallas,
            Some(listed.values().filter(|d| !d.is_difficult()).count() as i64)
        );
    }
    // How other thresholds would do on the same scores (the default is
    // z 2 on 3 days: every planted one found, few others).
    for z in [2.0, 2.5, 3.0] {
        for k in [2i64, 3, 4] {
            let rule = DifficultRule {
                z,
                z_days: k,
                ..DifficultRule::default()
            };
            let mut found = BTreeMap::new();
            let mut false_days = 0;
            for n in first + 1..DAYS {
                let date = day(n);
                for (id, (days, _)) in score_days(&reports, date, &rule) {
                    if days >= k {
                        if planted.contains(id.as_str()) {
                            found.entry(id).or_insert(date);
                        } else {
                            false_days += 1;
                        }
                    }
                }
            }
            println!(
                "rule z >= {z} on {k} of 14 days: {} of {} planted found, days after the rise \
                 {:?}; {false_days} mahalla-days of others difficult over {} days",
                found.len(),
                planted.len(),
                found
                    .values()
                    .map(|d| (*d - day(DAYS - DIFFICULT_DAYS)).num_days())
                    .collect::<Vec<_>>(),
                DAYS - first - 1
            );
        }
    }
    for d in &truth.difficult {
        let rise = local_day(d.from.with_timezone(&Utc));
        let found = found_on.get(d.mahalla_id.as_str()).copied();
        println!(
            "planted difficult {}: rises on {rise}, {:.1} extra offences a day; found on {found:?}",
            d.mahalla_id, d.extra_per_day
        );
        let found = found.unwrap_or_else(|| panic!("{} was never found", d.mahalla_id));
        assert!(
            found - rise <= TimeDelta::days(4),
            "{} found {} days after its rise",
            d.mahalla_id,
            (found - rise).num_days()
        );
    }
    let last_listed: Vec<&str> = report
        .difficult
        .iter()
        .filter(|d| d.is_difficult())
        .map(|d| d.mahalla_id.as_str())
        .collect();
    println!(
        "on {last}: {} difficult ({} planted, {false_alarms} not planted), inspectors named: {}",
        last_listed.len(),
        last_listed.iter().filter(|m| planted.contains(*m)).count(),
        report
            .difficult
            .iter()
            .filter(|d| d.inspector.is_some())
            .count()
    );
    assert!(
        false_alarms <= 3,
        "{false_alarms} mahallas difficult that were not planted"
    );
    // The inspector, the trend and the days difficult of each listed one.
    for d in &report.difficult {
        let m = sim
            .registry
            .mahallas()
            .iter()
            .find(|m| m.id == d.mahalla_id)
            .expect("mahalla");
        assert_eq!(d.inspector, m.inspector, "{}", d.mahalla_id);
        let count = |from: i64, to: i64| {
            sim.events
                .iter()
                .filter(|e| {
                    matches!(e.event, Event::Incident(_) | Event::FraudFlag(_))
                        && e.mahalla_id.as_deref() == Some(d.mahalla_id.as_str())
                })
                .filter(|e| {
                    let back =
                        (last - local_day(e.event.occurred_at().with_timezone(&Utc))).num_days();
                    (from..=to).contains(&back)
                })
                .count() as i64
        };
        assert_eq!(d.offences_7d, count(0, 6), "{}", d.mahalla_id);
        assert_eq!(d.offences_prev_7d, count(7, 13), "{}", d.mahalla_id);
        let z = 2f64.sqrt() * ((d.offences_7d as f64).sqrt() - (d.offences_prev_7d as f64).sqrt());
        let trend = if z >= 2.0 {
            "rising"
        } else if z <= -2.0 {
            "falling"
        } else {
            "steady"
        };
        assert_eq!(d.trend, trend, "{}", d.mahalla_id);
        if planted.contains(d.mahalla_id.as_str()) {
            assert_eq!(d.trend, "rising", "{}", d.mahalla_id);
            assert_eq!(d.status, "difficult");
            // Difficult since the day its run began, carried day to day.
            assert_eq!(d.difficult_since, run_from.get(&d.mahalla_id).copied());
        }
    }

    // Quiet mahallas: no offence since the records began.
    for id in &truth.quiet {
        let r = row(report, ScopeKind::Mahalla, id);
        let since = r.records_since.expect("records since");
        assert_eq!(r.last_offence, None, "{id}");
        assert_eq!(
            r.crime_free_days,
            Some((last - since).num_days() + 1),
            "{id}"
        );
    }

    // Recurrence, computed again from the events.
    let offences = places(&sim.events, last);
    let mut by_district: BTreeMap<&str, Vec<Place>> = BTreeMap::new();
    for o in &offences {
        by_district.entry(&o.district).or_default().push(o.clone());
    }
    let mut region_sum: BTreeMap<&str, (u64, u64, f64)> = BTreeMap::new();
    let mut ratios: Vec<(bool, String, f64, f64)> = Vec::new();
    for (district, list) in &by_district {
        let want = near_by_category(list);
        let r = row(report, ScopeKind::District, district);
        assert_eq!(r.place_offences, Some(want.n as i64), "{district}");
        assert_eq!(
            r.near_repeat_pairs,
            Some(want.pairs as i64),
            "{district}: pairs"
        );
        assert_eq!(
            r.near_repeat_offences,
            Some(want.offences as i64),
            "{district}: offences with an earlier close one"
        );
        let expected = r.near_repeat_expected.expect("expected");
        assert!(
            rel_close(expected, want.expected),
            "{district}: expected {expected} vs {}",
            want.expected
        );
        let ratio = r.near_repeat_ratio.expect("ratio");
        assert!(rel_close(ratio, want.pairs as f64 / want.expected));
        let excess = r.near_repeat_excess.expect("excess");
        assert!(rel_close(
            excess,
            (want.pairs as f64 - want.expected) / want.n as f64
        ));
        let e = region_sum.entry(&list[0].region).or_default();
        e.0 += want.pairs;
        e.1 += want.offences;
        e.2 += want.expected;
        ratios.push((
            truth.repeat_districts.contains(&district.to_string()),
            district.to_string(),
            ratio,
            excess,
        ));
    }
    for (region, (pairs, offences, expected)) in &region_sum {
        let r = row(report, ScopeKind::Region, region);
        assert_eq!(r.near_repeat_pairs, Some(*pairs as i64));
        assert_eq!(r.near_repeat_offences, Some(*offences as i64));
        assert!(rel_close(
            r.near_repeat_expected.expect("expected"),
            *expected
        ));
    }
    // Repeat locations per mahalla, and the top list of the nation.
    let mut groups: BTreeMap<(&str, CellIndex, IncidentCategory), Vec<&Place>> = BTreeMap::new();
    for o in &offences {
        groups
            .entry((o.mahalla.as_str(), o.cell, o.category))
            .or_default()
            .push(o);
    }
    let mut cells_of: HashMap<&str, (i64, i64)> = HashMap::new();
    for ((m, _, c), list) in &groups {
        // domestic violence is never a repeat location
        if list.len() >= 2 && *c != IncidentCategory::DomesticViolence {
            let e = cells_of.entry(m).or_default();
            e.0 += 1;
            e.1 += list.len() as i64;
        }
    }
    for r in report
        .scopes
        .iter()
        .filter(|r| r.scope == ScopeKind::Mahalla)
    {
        let (cells, n) = cells_of
            .get(r.scope_id.as_str())
            .copied()
            .unwrap_or_default();
        if r.place_offences.unwrap_or(0) > 0 {
            assert_eq!(r.repeat_cells, Some(cells), "{}", r.scope_id);
            assert_eq!(r.repeat_offences, Some(n), "{}", r.scope_id);
        }
        assert_eq!(
            r.near_repeat_ratio, None,
            "no near-repeat ratio for a mahalla"
        );
    }
    let mut top: Vec<(i64, DateTime<Utc>, u64, &str, &str)> = groups
        .iter()
        .filter(|((_, _, c), list)| list.len() >= 2 && *c != IncidentCategory::DomesticViolence)
        .map(|((m, cell, c), list)| {
            (
                list.len() as i64,
                list.iter().map(|p| p.at).max().expect("latest"),
                u64::from(*cell),
                c.as_str(),
                *m,
            )
        })
        .collect();
    top.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then(b.1.cmp(&a.1))
            .then(a.2.cmp(&b.2))
            .then(a.3.cmp(b.3))
            .then(a.4.cmp(b.4))
    });
    let listed: Vec<(i64, DateTime<Utc>, u64, &str, &str)> = report
        .repeat_cells
        .iter()
        .filter(|c| c.scope == ScopeKind::Nation)
        .map(|c| {
            (
                c.offences,
                c.last_offence,
                u64::from(c.cell),
                c.category.as_str(),
                c.mahalla_id.as_str(),
            )
        })
        .collect();
    assert_eq!(listed, top.into_iter().take(10).collect::<Vec<_>>());

    // The expectation is what shuffling the times gives: the mean of close
    // pairs over random shuffles of the times of a district's offences of
    // one category.
    let (district, list) = by_district
        .iter()
        .max_by_key(|(_, l)| l.len())
        .expect("a district");
    let category = list[0].category;
    let list: Vec<Place> = list
        .iter()
        .filter(|o| o.category == category)
        .cloned()
        .collect();
    let list = &list;
    let want = near(list);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let shuffles = 60;
    let mut total = 0.0;
    let mut squares = 0.0;
    for _ in 0..shuffles {
        let mut t: Vec<f64> = list.iter().map(|o| o.t).collect();
        for i in (1..t.len()).rev() {
            let j = rng.random_range(0..=i);
            t.swap(i, j);
        }
        let p = close_pairs(list, &t) as f64;
        total += p;
        squares += p * p;
    }
    let mean = total / f64::from(shuffles);
    let sd = (squares / f64::from(shuffles) - mean * mean)
        .max(0.0)
        .sqrt();
    println!(
        "district {district}, {category}: {} offences, {} close pairs, {:.1} expected (S*T/P), \
         {mean:.1} over {shuffles} shuffles (sd {sd:.1})",
        want.n, want.pairs, want.expected
    );
    assert!(
        (mean - want.expected).abs() <= 4.0 * sd / f64::from(shuffles).sqrt() + 1.0,
        "shuffled mean {mean:.1} vs expected {:.1}",
        want.expected
    );

    // Recurrence rises where repeats were planted: every repeat district
    // has more close pairs beyond chance per offence than any other.
    ratios.sort_by(|a, b| b.3.total_cmp(&a.3));
    for (planted, district, ratio, excess) in &ratios {
        println!(
            "{district:<14} near-repeat ratio {ratio:.3}, close pairs beyond chance per offence \
             {excess:.3}{}",
            if *planted { " (repeat district)" } else { "" }
        );
    }
    let lowest_planted = ratios
        .iter()
        .filter(|r| r.0)
        .map(|r| r.3)
        .fold(f64::INFINITY, f64::min);
    let highest_other = ratios
        .iter()
        .filter(|r| !r.0)
        .map(|r| r.3)
        .fold(f64::NEG_INFINITY, f64::max);
    assert!(
        lowest_planted > highest_other,
        "excess per offence: lowest repeat district {lowest_planted:.3}, highest other \
         {highest_other:.3}"
    );
    let nation = row(report, ScopeKind::Nation, "nation");
    assert!(nation.near_repeat_ratio.is_some_and(|r| r > 1.0));
}

/// The escalation half of the rule: days with an escalation at the level
/// or above open, false alarms left out, open escalations and their
/// highest level; and a stricter rule from the configuration.
#[tokio::test]
async fn escalation_days_make_a_mahalla_difficult() {
    let fx = common::build(common::start(), 10);
    let store = store_of(&fx.events).await;
    let mahallas: Vec<String> = fx
        .registry
        .mahallas()
        .iter()
        .take(4)
        .map(|m| m.id.clone())
        .collect();
    let date = day(9);
    let at = |n: i64, hour: i64| day_window(day(n)).expect("window").0 + TimeDelta::hours(hour);
    let records = [
        // a: elevated from day 7, still open: days 7, 8, 9.
        escalation(1, &mahallas[0], RiskLevel::Elevated, at(7, 10), None),
        // b: high on day 5, resolved on day 6 (days 5, 6); critical on
        // day 9, open.
        escalation(
            2,
            &mahallas[1],
            RiskLevel::High,
            at(5, 23),
            Some((at(6, 2), EscalationStatus::Resolved)),
        ),
        escalation(3, &mahallas[1], RiskLevel::Critical, at(9, 1), None),
        // c: a false alarm over four days counts for nothing.
        escalation(
            4,
            &mahallas[2],
            RiskLevel::High,
            at(4, 1),
            Some((at(8, 1), EscalationStatus::FalseAlarm)),
        ),
        // d: opened after the day: not yet.
        escalation(5, &mahallas[3], RiskLevel::High, at(10, 1), None),
    ];
    for r in &records {
        store.put_escalation(r).await.expect("put");
    }
    let reporter =
        Reporter::new(store.clone(), Arc::clone(&fx.registry), report_limits()).expect("reporter");
    let report = reporter.generate(date).await.expect("report");
    let of = |id: &str| report.difficult.iter().find(|d| d.mahalla_id == id);
    let a = of(&mahallas[0]).expect("a is listed");
    assert_eq!(
        (
            a.escalation_days,
            a.difficult_days,
            a.status.as_str(),
            a.newly
        ),
        (3, 3, "difficult", true)
    );
    // Newly difficult: its run begins on the day.
    assert_eq!(a.difficult_since, Some(date));
    assert_eq!(
        (a.open_escalations, a.open_level.as_deref()),
        (1, Some("elevated"))
    );
    let b = of(&mahallas[1]).expect("b is listed");
    assert_eq!((b.escalation_days, b.status.as_str()), (3, "difficult"));
    assert_eq!(
        (b.open_escalations, b.open_level.as_deref()),
        (1, Some("critical"))
    );
    assert!(of(&mahallas[2]).is_none(), "a false alarm does not count");
    assert!(
        of(&mahallas[3]).is_none(),
        "an escalation after the day does not count"
    );
    let nation = row(&report, ScopeKind::Nation, "nation");
    assert_eq!(nation.difficult_mahallas, Some(2));
    assert_eq!(nation.newly_difficult, Some(2));

    // A rule counting from `high` leaves `a` out; one needing 4 days both.
    let strict = Reporter::new(store.clone(), Arc::clone(&fx.registry), report_limits())
        .expect("reporter")
        .with_difficult_rule(DifficultRule {
            level: RiskLevel::High,
            ..DifficultRule::default()
        })
        .expect("rule");
    let report = strict.generate(date).await.expect("report");
    let ids: Vec<&str> = report
        .difficult
        .iter()
        .map(|d| d.mahalla_id.as_str())
        .collect();
    assert_eq!(ids, [mahallas[1].as_str()]);
    let four = Reporter::new(store.clone(), Arc::clone(&fx.registry), report_limits())
        .expect("reporter")
        .with_difficult_rule(DifficultRule {
            escalation_days: 4,
            ..DifficultRule::default()
        })
        .expect("rule");
    assert!(
        four.generate(date)
            .await
            .expect("report")
            .difficult
            .is_empty()
    );

    // The next day: `a` is still difficult, not newly, and carries the
    // start of its run from the day before's stored row.
    reporter.generate(date).await.expect("report");
    let report = reporter.generate(day(10)).await.expect("report");
    let a = report
        .difficult
        .iter()
        .find(|d| d.mahalla_id == mahallas[0])
        .expect("still listed");
    assert!(a.is_difficult() && !a.newly);
    assert_eq!((a.escalation_days, a.difficult_since), (4, Some(date)));

    // A rule that cannot hold is refused with what is wrong.
    let e = Reporter::new(store, Arc::clone(&fx.registry), report_limits())
        .expect("reporter")
        .with_difficult_rule(DifficultRule {
            z_days: 15,
            ..DifficultRule::default()
        })
        .expect_err("a rule of 15 days of 14");
    assert!(
        e.to_string().contains("z_days must be within 1..=14"),
        "{e}"
    );
}

/// Offences piled in one cell, many at the same instant: near repeats are
/// counted without pairing them one by one, each pair once, and equal to
/// the direct count (a producer can send thousands of incidents to one
/// place; the report must neither pair them quadratically nor miscount the
/// ties).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pile_of_offences_at_one_place_and_instant_counts_each_pair_once() {
    let fx = common::build(common::start(), 3);
    let date = day(2);
    let template = fx
        .events
        .iter()
        .find(|e| {
            matches!(&e.event, Event::Incident(i) if i.category == IncidentCategory::Theft)
                && local_day(e.event.occurred_at().with_timezone(&Utc)) == date
        })
        .expect("a theft on the day")
        .clone();
    let mut events = fx.events.clone();
    let at = template.event.occurred_at();
    for n in 0..3000i64 {
        let mut e = template.event.clone();
        let h = e.header_mut();
        h.id = format!("pile-{n}");
        // a third at the template's instant, the rest spread over the day
        if n % 3 != 0 {
            h.occurred_at = at - TimeDelta::seconds(n * 7 % 36_000);
        }
        events.push(common::enrich(&fx.registry, e));
    }
    let store = store_of(&events).await;
    let reporter =
        Reporter::new(store, Arc::clone(&fx.registry), report_limits()).expect("reporter");
    let started = std::time::Instant::now();
    let report = reporter.generate(date).await.expect("report");
    println!(
        "report with 3,000 thefts in one cell (1,000 at one instant): {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let district = template.district_id.clone().expect("district");
    let list: Vec<Place> = places(&events, date)
        .into_iter()
        .filter(|p| p.district == district)
        .collect();
    let want = near_by_category(&list);
    let r = row(&report, ScopeKind::District, &district);
    assert_eq!(r.near_repeat_pairs, Some(want.pairs as i64));
    assert_eq!(r.near_repeat_offences, Some(want.offences as i64));
    assert!(rel_close(
        r.near_repeat_expected.expect("expected"),
        want.expected
    ));
    // The pile is one repeat location of 3,001 thefts.
    assert!(
        report
            .repeat_cells
            .iter()
            .any(|c| c.scope == ScopeKind::Nation
                && c.rank == 1
                && c.offences >= 3001
                && u64::from(c.cell) == u64::from(template.cell))
    );
}

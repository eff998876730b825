//! The report's change scores: calibrated on simulated days without
//! injected anomalies, sensitive to the injected ones, and equal to an
//! independent computation from the events.
//!
//! Prints its figures (run with `--nocapture` to see them):
//! `cargo test -p posbon-reporter --test calibration -- --nocapture`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{Datelike, NaiveDate, TimeDelta};
use posbon_geo::Registry;
use posbon_model::{EnrichedEvent, Event, IncidentCategory};
use posbon_reporter::reporter::report_limits;
use posbon_reporter::{
    DailyReport, FOCUS_GROUPS, MIN_BASELINE7_DAYS, MIN_BASELINE28_DAYS, Reporter, ScopeKind,
    ScopeRow,
};
use posbon_sim::{
    CityOptions, EventOptions, EventStream, InjectionKind, Origin, SimBody, SimRegistry,
    city_registry,
};

mod common;
use common::{store_of, tashkent};

/// Days simulated: 28 of baseline before the last 7 reported days.
const DAYS: i64 = 35;
/// Events per hour over the whole city.
const RATE: f64 = 150.0;

struct Simulated {
    registry: Arc<Registry>,
    /// Every valid event with where it came from.
    events: Vec<(EnrichedEvent, Origin)>,
    /// Kind and mahalla of each injected pattern.
    injections: Vec<(InjectionKind, String)>,
}

fn simulate() -> Simulated {
    // The simulated Tashkent of the demo.
    let city = city_registry(&CityOptions::default()).expect("city");
    let registry = Arc::new(city.registry().expect("registry"));
    let sim = Arc::new(SimRegistry::from_generated(&city).expect("sim"));
    let stream = EventStream::new(
        sim,
        &EventOptions {
            seed: 17,
            rate_per_hour: RATE,
            duration: TimeDelta::days(DAYS),
            start: common::start(),
            bad_fraction: 0.0,
            situations: Default::default(),
        },
    )
    .expect("stream");
    let injections = stream
        .truth()
        .injections
        .iter()
        .map(|i| (i.kind, i.mahalla_id.clone()))
        .collect();
    let events = stream
        .filter_map(|item| match item.body {
            SimBody::Valid { event, origin, .. } => {
                Some((common::enrich(&registry, *event), origin))
            }
            SimBody::Bad { .. } => None,
        })
        .collect();
    Simulated {
        registry,
        events,
        injections,
    }
}

fn local_day(e: &EnrichedEvent) -> NaiveDate {
    e.event
        .occurred_at()
        .with_timezone(&tashkent())
        .date_naive()
}

/// What a change score counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Measure {
    Offences,
    CameraAlerts,
    /// A focus group of `sql/report_focus_groups.sql`.
    Focus(&'static str),
}

impl Measure {
    fn counts(self, e: &EnrichedEvent) -> bool {
        match self {
            Measure::Offences => matches!(e.event, Event::Incident(_) | Event::FraudFlag(_)),
            Measure::CameraAlerts => matches!(e.event, Event::CameraAlert(_)),
            Measure::Focus(group) => {
                let Event::Incident(i) = &e.event else {
                    return false;
                };
                let f = &i.flags;
                match group {
                    "victim_minor" => f.victim_minor,
                    "victim_youth" => f.victim_youth,
                    "victim_woman" => f.victim_woman,
                    "offender_minor" => f.offender_minor,
                    "offender_youth" => f.offender_youth,
                    "domestic" => f.domestic,
                    "offender_youth_drugs" => {
                        matches!(
                            i.category,
                            IncidentCategory::DrugTrafficking | IncidentCategory::DrugUse
                        ) && (f.offender_minor || f.offender_youth)
                    }
                    other => panic!("unknown focus group {other}"),
                }
            }
        }
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The change score of `sql/report_scopes.sql`, computed again from the
/// events in plain Rust.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Score {
    expected7: Option<f64>,
    days7: i64,
    z7: Option<f64>,
    expected28: Option<f64>,
    days28: i64,
    z28: Option<f64>,
}

/// The scores of the nation and of every district on `date`, for `measure`.
fn recompute(
    registry: &Registry,
    events: &[&EnrichedEvent],
    date: NaiveDate,
    measure: Measure,
) -> BTreeMap<(ScopeKind, String), Score> {
    let first = date - TimeDelta::days(28);
    let start7 = date - TimeDelta::days(7);
    // 1. Covered days.
    let mut all: BTreeMap<NaiveDate, f64> = BTreeMap::new();
    for e in events {
        let d = local_day(e);
        if d >= first && d < date {
            *all.entry(d).or_default() += 1.0;
        }
    }
    let med = median(all.values().copied().collect()).unwrap_or(0.0);
    let covered: Vec<NaiveDate> = all
        .iter()
        .filter(|(_, n)| **n > 0.0 && 2.0 * **n >= med)
        .map(|(d, _)| *d)
        .collect();
    // Counts per scope and covered day (zeros included).
    let district_of: BTreeMap<&str, &str> = registry
        .mahallas()
        .iter()
        .map(|m| (m.id.as_str(), m.district_id.as_str()))
        .collect();
    let mut scopes: BTreeMap<(ScopeKind, String), BTreeMap<NaiveDate, f64>> = BTreeMap::new();
    let mut today: BTreeMap<(ScopeKind, String), f64> = BTreeMap::new();
    let mut keys = vec![(ScopeKind::Nation, "nation".to_owned())];
    keys.extend(
        district_of
            .values()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|d| (ScopeKind::District, (*d).to_owned())),
    );
    for k in &keys {
        scopes.insert(k.clone(), covered.iter().map(|d| (*d, 0.0)).collect());
        today.insert(k.clone(), 0.0);
    }
    for e in events.iter().filter(|e| measure.counts(e)) {
        let d = local_day(e);
        let mut of = vec![(ScopeKind::Nation, "nation".to_owned())];
        if let Some(district) = e.mahalla_id.as_deref().and_then(|m| district_of.get(m)) {
            of.push((ScopeKind::District, (*district).to_owned()));
        }
        for k in of {
            if d == date {
                *today.get_mut(&k).expect("scope") += 1.0;
            } else if let Some(n) = scopes.get_mut(&k).expect("scope").get_mut(&d) {
                *n += 1.0;
            }
        }
    }
    // 2. Weekday factors from the nation.
    let weekday = |d: NaiveDate| d.weekday().num_days_from_sunday();
    let mut by_weekday: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    for (d, n) in &scopes[&(ScopeKind::Nation, "nation".to_owned())] {
        by_weekday.entry(weekday(*d)).or_default().push(*n);
    }
    let means: BTreeMap<u32, f64> = by_weekday
        .iter()
        .map(|(w, v)| (*w, v.iter().sum::<f64>() / v.len() as f64))
        .collect();
    let adjusted = by_weekday.len() == 7
        && by_weekday.values().all(|v| v.len() >= 3)
        && means.values().all(|m| *m > 0.0);
    let mean_of_means = means.values().sum::<f64>() / means.len().max(1) as f64;
    let factor = |w: u32| {
        if adjusted {
            means[&w] / mean_of_means
        } else {
            1.0
        }
    };
    let w_term = if adjusted {
        1.0 / by_weekday[&weekday(date)].len() as f64
    } else {
        0.0
    };
    // Levels and dispersion of scopes over some of their days.
    struct Level {
        n7: f64,
        sum7: f64,
        n28: f64,
        sum28: f64,
        phi_raw: Option<f64>,
    }
    let fit = |days: &[(NaiveDate, f64)]| {
        let (mut n7, mut sum7, mut n28, mut sum28) = (0.0, 0.0, 0.0, 0.0);
        for (d, x) in days {
            let a = x / factor(weekday(*d));
            n28 += 1.0;
            sum28 += a;
            if *d >= start7 {
                n7 += 1.0;
                sum7 += a;
            }
        }
        let phi_raw = (n28 >= 2.0 && sum28 > 0.0).then(|| {
            days.iter()
                .map(|(d, x)| {
                    let e = factor(weekday(*d)) * sum28 / n28;
                    (x - e) * (x - e) / e
                })
                .sum::<f64>()
                / (n28 - 1.0)
        });
        Level {
            n7,
            sum7,
            n28,
            sum28,
            phi_raw,
        }
    };
    let pool = |levels: &BTreeMap<(ScopeKind, String), Level>, kind: ScopeKind| {
        median(
            levels
                .iter()
                .filter(|(k, _)| k.0 == kind)
                .filter_map(|(_, l)| l.phi_raw)
                .collect(),
        )
    };
    // 3. The first fit over every covered day, then the days that stand
    // out from it left out.
    let all_days: BTreeMap<(ScopeKind, String), Vec<(NaiveDate, f64)>> = scopes
        .iter()
        .map(|(k, days)| (k.clone(), days.iter().map(|(d, x)| (*d, *x)).collect()))
        .collect();
    let first: BTreeMap<(ScopeKind, String), Level> = all_days
        .iter()
        .map(|(k, days)| (k.clone(), fit(days)))
        .collect();
    let mut levels: BTreeMap<(ScopeKind, String), Level> = BTreeMap::new();
    let mut coverage: BTreeMap<(ScopeKind, String), (i64, i64)> = BTreeMap::new();
    for (k, days) in &all_days {
        let l = &first[k];
        let phi = pool(&first, k.0).unwrap_or(1.0).max(1.0);
        let kept: Vec<(NaiveDate, f64)> = days
            .iter()
            .filter(|(d, x)| {
                l.sum28 == 0.0 || {
                    let e = factor(weekday(*d)) * l.sum28 / l.n28;
                    2.0 * (x.sqrt() - e.sqrt()) <= 2.58 * phi.sqrt()
                }
            })
            .copied()
            .collect();
        levels.insert(k.clone(), fit(&kept));
        coverage.insert(k.clone(), (l.n7 as i64, l.n28 as i64));
    }
    let f_day = factor(weekday(date));
    let mut out = BTreeMap::new();
    for (k, l) in &levels {
        let pooled = pool(&levels, k.0).unwrap_or(1.0);
        let (days7, days28) = coverage[k];
        let phi = match l.phi_raw {
            None => pooled.max(1.0),
            Some(raw) => (((l.n28 - 1.0) * raw + 10.0 * pooled) / ((l.n28 - 1.0) + 10.0)).max(1.0),
        };
        let x = today[k];
        let expected = |n: f64, sum: f64| (n > 0.0).then(|| f_day * (sum + 0.5) / n);
        let z = |n: f64, e: Option<f64>, days: i64, min: i64| {
            e.filter(|_| days >= min)
                .map(|e| 2.0 * (x.sqrt() - e.sqrt()) / (phi * (1.0 + 1.0 / n + w_term)).sqrt())
        };
        // A week left out whole: the kept 28 days' level.
        let (n7, sum7) = if l.n7 > 0.0 {
            (l.n7, l.sum7)
        } else {
            (l.n28, l.sum28)
        };
        let (e7, e28) = (expected(n7, sum7), expected(l.n28, l.sum28));
        out.insert(
            k.clone(),
            Score {
                expected7: e7,
                days7,
                z7: z(n7, e7, days7, MIN_BASELINE7_DAYS),
                expected28: e28,
                days28,
                z28: z(l.n28, e28, days28, MIN_BASELINE28_DAYS),
            },
        );
    }
    out
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(1.0),
        _ => false,
    }
}

fn row<'a>(report: &'a DailyReport, kind: ScopeKind, id: &str) -> &'a ScopeRow {
    report
        .scopes
        .iter()
        .find(|r| r.scope == kind && r.scope_id == id)
        .unwrap_or_else(|| panic!("no row for {kind}:{id}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_scores_are_calibrated_and_find_the_injected_episodes() {
    let sim = simulate();
    let first = common::start().date_naive();
    let dates: Vec<NaiveDate> = (0..DAYS).map(|i| first + TimeDelta::days(i)).collect();

    // Without the injected patterns: no anomalies.
    let quiet: Vec<&EnrichedEvent> = sim
        .events
        .iter()
        .filter(|(_, o)| !matches!(o, Origin::Injected(_)))
        .map(|(e, _)| e)
        .collect();
    let store = store_of(&quiet.iter().map(|e| (*e).clone()).collect::<Vec<_>>()).await;
    let reporter =
        Reporter::new(store, Arc::clone(&sim.registry), report_limits()).expect("reporter");
    let (mut district_scores, mut district_calm) = (0u32, 0u32);
    let (mut focus_scores, mut focus_calm) = (0u32, 0u32);
    let mut nation_scores = Vec::new();
    let started = std::time::Instant::now();
    let mut last = None;
    for date in &dates[7..] {
        let report = reporter.generate(*date).await.expect("report");
        let nation = row(&report, ScopeKind::Nation, "nation");
        for z in [nation.z7, nation.z28].into_iter().flatten() {
            nation_scores.push((*date, z));
        }
        for f in report
            .focus_groups
            .iter()
            .filter(|f| f.scope == ScopeKind::District)
        {
            for z in [f.z7, f.z28].into_iter().flatten() {
                focus_scores += 1;
                focus_calm += u32::from(z.abs() <= 3.0);
            }
        }
        for r in report
            .scopes
            .iter()
            .filter(|r| r.scope == ScopeKind::District)
        {
            for z in [r.z7, r.z28].into_iter().flatten() {
                district_scores += 1;
                district_calm += u32::from(z.abs() <= 3.0);
            }
        }
        last = Some(report);
    }
    let per_report = started.elapsed().as_secs_f64() / (dates.len() - 7) as f64;
    let calm_share = f64::from(district_calm) / f64::from(district_scores.max(1));
    let worst = nation_scores
        .iter()
        .map(|(_, z)| z.abs())
        .fold(0.0f64, f64::max);
    println!(
        "calibration without injected anomalies ({DAYS} days, {} districts, {RATE} events/h): \
         {district_calm} of {district_scores} district z scores within ±3 ({:.1}%); nation: {} \
         z scores, largest |z| {worst:.2}; {per_report:.2} s per report",
        sim.registry.districts().len(),
        100.0 * calm_share,
        nation_scores.len()
    );
    let focus_share = f64::from(focus_calm) / f64::from(focus_scores.max(1));
    println!(
        "focus groups without injected anomalies: {focus_calm} of {focus_scores} district z \
         scores within ±3 ({:.1}%)",
        100.0 * focus_share
    );
    assert!(focus_scores > 2000, "{focus_scores} focus-group z scores");
    assert!(focus_share >= 0.95, "{:.1}% calm", 100.0 * focus_share);
    assert!(district_scores > 300, "{district_scores} district z scores");
    assert!(calm_share >= 0.95, "{:.1}% calm", 100.0 * calm_share);
    assert!(
        nation_scores.iter().all(|(_, z)| z.abs() <= 3.0),
        "nation: {nation_scores:?}"
    );
    // z28 is there once 21 days of the 28 had data; never before.
    assert!(nation_scores.len() > dates.len() - 7);

    // The last day's baselines and scores, computed again from the events.
    let report = last.expect("a report");
    let date = report.date;
    for (measure, name) in [
        (Measure::Offences, "offences"),
        (Measure::CameraAlerts, "camera alerts"),
    ] {
        let want = recompute(&sim.registry, &quiet, date, measure);
        assert!(want.len() > 5);
        for ((kind, id), score) in &want {
            let got = row(&report, *kind, id);
            let (expected7, z7) = match measure {
                Measure::Offences => (got.baseline7, got.z7),
                Measure::CameraAlerts => (got.camera_alerts_baseline7, got.camera_alerts_z7),
                Measure::Focus(_) => unreachable!("checked below"),
            };
            assert!(
                close(expected7, score.expected7) && close(z7, score.z7),
                "{name} of {kind}:{id} on {date}: report {expected7:?}/{z7:?}, events {score:?}"
            );
            assert_eq!(got.baseline7_days, Some(score.days7));
            assert_eq!(got.baseline28_days, Some(score.days28));
            if measure == Measure::Offences {
                assert!(
                    close(got.baseline28, score.expected28) && close(got.z28, score.z28),
                    "{kind}:{id}: report {:?}/{:?}, events {score:?}",
                    got.baseline28,
                    got.z28
                );
            }
        }
        assert_eq!(want[&(ScopeKind::Nation, "nation".to_owned())].days28, 28);
    }
    // The focus groups: each scope's count and scores, from the incidents'
    // flags.
    let mut focus_checked = 0;
    for group in FOCUS_GROUPS {
        let want = recompute(&sim.registry, &quiet, date, Measure::Focus(group));
        for ((kind, id), score) in &want {
            let got = report
                .focus_groups
                .iter()
                .find(|f| f.scope == *kind && f.scope_id == *id && f.focus_group == group)
                .unwrap_or_else(|| panic!("no {group} row for {kind}:{id}"));
            let observed = quiet
                .iter()
                .filter(|e| local_day(e) == date && Measure::Focus(group).counts(e))
                .filter(|e| {
                    *kind == ScopeKind::Nation
                        || e.mahalla_id.as_deref().is_some_and(|m| {
                            sim.registry
                                .mahallas()
                                .iter()
                                .any(|r| r.id == m && r.district_id == *id)
                        })
                })
                .count() as i64;
            assert_eq!(got.offences, Some(observed), "{group} of {kind}:{id}");
            assert!(
                close(got.baseline7, score.expected7)
                    && close(got.z7, score.z7)
                    && close(got.baseline28, score.expected28)
                    && close(got.z28, score.z28),
                "{group} of {kind}:{id} on {date}: report {got:?}, events {score:?}"
            );
            assert_eq!(
                (got.baseline7_days, got.baseline28_days),
                (score.days7, score.days28)
            );
            focus_checked += 1;
        }
    }
    let nation_focus: Vec<String> = report
        .focus_groups
        .iter()
        .filter(|f| f.scope == ScopeKind::Nation)
        .map(|f| format!("{} {}", f.focus_group, f.offences.unwrap_or(0)))
        .collect();
    println!(
        "focus groups on {date}: {focus_checked} scope figures equal to the events' ({})",
        nation_focus.join(", ")
    );
    assert!(
        report
            .focus_groups
            .iter()
            .filter(|f| f.scope == ScopeKind::Nation)
            .all(|f| f.offences.is_some_and(|n| n > 0)),
        "every focus group has offences in the city: {nation_focus:?}"
    );

    // Crime-free streaks: days since each mahalla's last offence, from the
    // events; without one, since the first day with events.
    let records_since = quiet.iter().map(|e| local_day(e)).min().expect("events");
    let mut last_offence: BTreeMap<&str, NaiveDate> = BTreeMap::new();
    let mut last_before: BTreeMap<&str, NaiveDate> = BTreeMap::new();
    for e in &quiet {
        let d = local_day(e);
        if !Measure::Offences.counts(e) || d > date {
            continue;
        }
        if let Some(m) = e.mahalla_id.as_deref() {
            let l = last_offence.entry(m).or_insert(d);
            *l = (*l).max(d);
            if d < date {
                let l = last_before.entry(m).or_insert(d);
                *l = (*l).max(d);
            }
        }
    }
    let mut counts = [0i64; 3];
    for m in sim.registry.mahallas() {
        let got = row(&report, ScopeKind::Mahalla, &m.id);
        let days = match last_offence.get(m.id.as_str()) {
            Some(l) => (date - *l).num_days(),
            None => (date - records_since).num_days() + 1,
        };
        let before = match last_before.get(m.id.as_str()) {
            Some(l) => (date - *l).num_days() - 1,
            None => (date - records_since).num_days(),
        };
        assert_eq!(
            (
                got.crime_free_days,
                got.crime_free_days_before,
                got.last_offence
            ),
            (
                Some(days),
                Some(before),
                last_offence.get(m.id.as_str()).copied()
            ),
            "streak of {}",
            m.id
        );
        assert_eq!(got.records_since, Some(records_since));
        for (i, t) in [30, 90, 180].into_iter().enumerate() {
            counts[i] += i64::from(days >= t);
        }
    }
    let nation = row(&report, ScopeKind::Nation, "nation");
    assert_eq!(
        [
            nation.crime_free_30d,
            nation.crime_free_90d,
            nation.crime_free_180d
        ],
        counts.map(Some)
    );
    let view = report
        .view(&posbon_reporter::Scope::nation())
        .expect("view");
    let streaks = view.streaks.expect("streaks");
    assert_eq!(streaks.thresholds[0].count, counts[0]);
    println!(
        "crime-free streaks on {date}: {} mahallas, {} crime-free for 30 days or more \
         (records since {records_since}), every mahalla's streak equal to the events'",
        sim.registry.mahallas().len(),
        counts[0]
    );

    // With the injected patterns: the affected mahalla stands out on the
    // day that holds most of the episode.
    let mut per_day: BTreeMap<(usize, NaiveDate), u32> = BTreeMap::new();
    for (e, o) in &sim.events {
        if let Origin::Injected(i) = o {
            *per_day.entry((*i, local_day(e))).or_default() += 1;
        }
    }
    let mut episode_day: BTreeMap<usize, (NaiveDate, u32)> = BTreeMap::new();
    for ((i, d), n) in per_day {
        let best = episode_day.entry(i).or_insert((d, n));
        if n > best.1 {
            *best = (d, n);
        }
    }
    let all: Vec<EnrichedEvent> = sim.events.iter().map(|(e, _)| e.clone()).collect();
    let reporter = Reporter::new(
        store_of(&all).await,
        Arc::clone(&sim.registry),
        report_limits(),
    )
    .expect("reporter");
    let days: BTreeSet<NaiveDate> = episode_day.values().map(|(d, _)| *d).collect();
    let mut reports = BTreeMap::new();
    for d in days {
        reports.insert(d, reporter.generate(d).await.expect("report"));
    }
    // An episode is judged against a baseline free of its kind: where the
    // same mahalla had another episode of the same kind in the 7 days
    // before, the mahalla's recent normal holds such episodes (the
    // simulator places most hotspots at its busiest cameras), and a change
    // score is not what finds it. Those are counted apart.
    let recurring = |i: usize, d: NaiveDate| {
        let (kind, mahalla) = &sim.injections[i];
        episode_day.iter().any(|(j, (dj, _))| {
            *j != i
                && sim.injections[*j].0 == *kind
                && &sim.injections[*j].1 == mahalla
                && *dj < d
                && *dj >= d - TimeDelta::days(7)
        })
    };
    let (mut found, mut judged, mut too_early) = (0u32, 0u32, 0u32);
    let (mut recurring_found, mut recurring_judged) = (0u32, 0u32);
    let mut missed = Vec::new();
    for (i, (d, n)) in &episode_day {
        let (kind, mahalla) = &sim.injections[*i];
        let r = row(&reports[d], ScopeKind::Mahalla, mahalla);
        let z = match kind {
            InjectionKind::FraudWave => r.z7,
            InjectionKind::DrugHandoffHotspot => r.camera_alerts_z7,
        };
        let Some(z) = z else {
            too_early += 1;
            continue;
        };
        if recurring(*i, *d) {
            recurring_judged += 1;
            recurring_found += u32::from(z >= 3.0);
            continue;
        }
        judged += 1;
        if z >= 3.0 {
            found += 1;
        } else {
            missed.push(format!(
                "{kind:?} in {mahalla} on {d} ({n} events): z {z:.2}"
            ));
        }
    }
    let share = f64::from(found) / f64::from(judged.max(1));
    println!(
        "injected episodes: {found} of {judged} with z >= 3 on their main day ({:.1}%); \
         {recurring_found} of {recurring_judged} more that recurred within 7 days in the same \
         mahalla; {too_early} in the first days without a 7-day baseline; missed: {missed:?}",
        100.0 * share
    );
    assert!(judged >= 30, "{judged} episodes judged");
    assert!(share >= 0.8, "{:.1}% of episodes found", 100.0 * share);
}

//! Posbon reporter: the daily situation report per mahalla, district,
//! region and nation.
//!
//! The report is SQL that analysts can read and run themselves
//! (`services/posbon-reporter/sql/`, parameters `$day`, `$day_start`,
//! `$day_end`, `$base7_start`, `$base28_start`, `$recent_start` and the
//! difficult rule's `$difficult_level`, `$difficult_escalation_days`,
//! `$difficult_z`, `$difficult_z_days`):
//!
//! | file | stored as | what |
//! |---|---|---|
//! | `mahalla_day.sql` | `mahalla_days` | per mahalla and day: events by kind, offences, cybercrime, harm points |
//! | `baseline_days.sql` | (in memory, as `baseline_days`) | per scope, measure and day of the 28 before that had data, and the day itself: the counts the scores rest on |
//! | `scores.sql` | (in memory, as `scores`) | per scope and measure (offences, camera alerts, focus groups): the day's count, the 7- and 28-day baselines with their coverage, overdispersion-aware z scores |
//! | `difficult.sql` | `daily_report_difficult` (and in memory, as `difficult`) | the mahallas a configurable rule calls difficult (escalation days or high change scores over 14 days), newly difficult and recovered, with days, trend, open escalations and the responsible inspector |
//! | `recent_offences.sql` | (in memory, as `recent_offences`) | the place-based offences of the 14 days ending on the day |
//! | `recurrence.sql` | (in memory, as `recurrence`) | per scope: repeat locations, and near repeats against a time-shuffled baseline (Knox) |
//! | `report_scopes.sql` | `daily_reports` | per scope (nation, region, district, mahalla, unassigned): counts, harm, cybercrime share, the offences' and camera alerts' scores, escalations opened and closed, crime-free mahallas and streaks (30, 90, 180 days), difficult mahallas, recurrence |
//! | `report_focus_groups.sql` | `daily_report_focus_groups` | per scope and focus group of prevention (minor, young and women victims, minor and young offenders, domestic, youth drug offences): offences and their scores; sensitive |
//! | `report_categories.sql` | `daily_report_categories` | per scope, kind and category: events and harm |
//! | `report_hot_cells.sql` | `daily_report_hot_cells` | per scope, the hottest H3 cells |
//! | `report_repeat_cells.sql` | `daily_report_repeat_cells` | per scope, the top repeat locations of the 14 days |
//!
//! [`Reporter::generate`] runs them for a local (Asia/Tashkent) date and
//! stores the rows; the per-mahalla figures of the days before are computed
//! again first wherever events were written for them since (late events,
//! replays, backfills), so the baselines are never stale (in the store's `r` prefix, readable again as SQL tables);
//! the same events give the same report. [`run`] is the service: it makes
//! the report of the day that ended shortly after each local midnight (and
//! of recent days it finds missing when it starts), publishes a summary on
//! `posbon.reports.daily`, and serves `GET /v1/reports/daily` ([`http`])
//! beside `/healthz`, `/readyz` and `/metrics`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use posbon_reporter::{Reporter, Scope, render, reporter::report_limits};
//! # async fn demo(store: posbon_store::Store, registry: Arc<posbon_geo::Registry>) -> Result<(), posbon_reporter::ReportError> {
//! let reporter = Reporter::new(store, registry, report_limits())?;
//! let date = chrono::NaiveDate::from_ymd_opt(2026, 5, 1).expect("date");
//! let report = reporter.generate(date).await?;
//! println!("{}", render::to_text(&report.view(&Scope::nation())?));
//! # Ok(())
//! # }
//! ```

mod error;
pub mod http;
mod privacy;
mod publish;
pub mod render;
mod report;
pub mod reporter;
mod rows;
pub mod serve;
mod situation;

use posbon_model::Span;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use posbon_bus::Bus;
use posbon_geo::Registry;
use posbon_service::{FnCheck, Health};
use posbon_sql::{SqlLimits, TIME_ZONE};
use posbon_store::{EventStoreExt, Store};
use posbon_telemetry::{CounterVec, Histogram, Metrics};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

pub use error::ReportError;
pub use publish::ReportNotice;
use publish::publish;
pub use report::{
    CategoryRow, CrimeFree, CrimeFreeMahalla, DailyReport, FOCUS_GROUPS, FocusGroupRow, HotCellRow,
    MIN_BASELINE7_DAYS, MIN_BASELINE28_DAYS, Scope, ScopeKind, ScopeRow, ScopeView, Streak,
    Streaks,
};
pub use reporter::{DifficultRule, Reporter};
pub use situation::{Difficult, DifficultRow, RepeatCellRow};

/// Defaults embedded in the binary.
pub const DEFAULTS: &str = include_str!("default.toml");

/// The whole configuration file of `posbon-reporter`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The reporter.
    pub reporter: ReporterConfig,
    /// The event store.
    pub store: posbon_store::StoreConfig,
    /// Identities and the HTTP guard.
    #[serde(default)]
    pub auth: posbon_auth::AuthConfig,
    /// How to connect to NATS: credentials, TLS, inbox prefix, whether to
    /// manage the streams.
    #[serde(default)]
    pub nats: posbon_bus::NatsConfig,
    /// How long each table is kept; the reporter runs the daily deletion.
    #[serde(default)]
    pub retention: posbon_store::retention::RetentionConfig,
    /// Logs, traces and metrics.
    #[serde(default)]
    pub telemetry: posbon_telemetry::TelemetryConfig,
}

/// How the reporter runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReporterConfig {
    /// Address of `/healthz`, `/readyz`, `/metrics` and `/v1/reports/daily`.
    pub listen: String,
    /// The HTTP server: HTTPS, connection limit, timeouts (`[<section>.http]`).
    #[serde(default)]
    pub http: posbon_service::http::HttpConfig,
    /// NATS server URLs; several for a cluster.
    pub nats_urls: Vec<String>,
    /// Mahalla registry (GeoJSON). Required by the service binaries: every service of a deployment loads the same file (`posbon_service::registry`); the library entry points take a loaded registry.
    #[serde(default)]
    pub registry: Option<PathBuf>,
    /// How long after local midnight the report of the day that ended is
    /// made, so that events of the last minutes are stored first.
    #[serde(with = "posbon_model::span::zero_allowed")]
    pub delay: Span,
    /// At start, the reports of this many days before today are made when
    /// they are missing (0: none); afterwards, those of them whose events
    /// changed (late events for the day or its baseline days) are made
    /// again at each refresh.
    pub catch_up_days: u32,
    /// After the catch-up and after each daily report, the columnar
    /// segments and the per-mahalla figures of this many days before today
    /// are made current (rebuilt where late events arrived; 0: only the
    /// reported days').
    #[serde(default = "default_segment_days")]
    pub segment_days: u32,
    /// Between daily reports, the segments and figures of those days are
    /// checked (and rebuilt where late events arrived) this often.
    #[serde(default = "default_segment_refresh")]
    pub segment_refresh: Span,
    /// Wait between attempts when a report fails.
    pub retry: Span,
    /// Attempts per report before giving up on it until the next start.
    pub attempts: u32,
    /// Limits of the report's queries.
    pub sql: SqlLimits,
    /// A mahalla's focus-group count (offences against minors, by youth,
    /// domestic, ...) below this is shown as "fewer than" it to callers
    /// without sensitive access, so that no small count identifies a
    /// victim (1: show every count).
    #[serde(default = "default_small_count_min")]
    pub small_count_min: i64,
    /// The rule that calls a mahalla difficult (`[reporter.difficult]`:
    /// `level`, `escalation_days`, `z`, `z_days`; see
    /// `sql/difficult.sql`).
    #[serde(default)]
    pub difficult: reporter::DifficultRule,
}

impl ReporterConfig {
    /// The reporter these settings describe over `store`: its query limits,
    /// small-count withholding and difficult rule. What the reporter
    /// service, the API and the standalone process each build, so that they
    /// answer alike.
    pub fn reporter(&self, store: Store, registry: Arc<Registry>) -> Result<Reporter, ReportError> {
        Reporter::new(store, registry, self.sql.clone())?
            .with_small_count_min(self.small_count_min)
            .with_difficult_rule(self.difficult.clone())
    }
}

fn default_small_count_min() -> i64 {
    reporter::DEFAULT_SMALL_COUNT_MIN
}

fn default_segment_days() -> u32 {
    35
}

fn default_segment_refresh() -> Span {
    Span::from_hours(1)
}

/// When the next report is due and for which date: shortly after the next
/// local midnight (`delay` after it), for the day that midnight ends.
pub(crate) fn next_run(now: DateTime<Utc>, delay: Duration) -> (DateTime<Utc>, NaiveDate) {
    let delay = TimeDelta::from_std(delay).unwrap_or(TimeDelta::zero());
    // The day that is running, as of `delay` ago: its end is the next
    // midnight whose run is still ahead.
    let day = (now - delay).with_timezone(&TIME_ZONE).date_naive();
    let next = day.succ_opt().unwrap_or(day);
    let midnight = next
        .and_hms_opt(0, 0, 0)
        .and_then(|m| TIME_ZONE.from_local_datetime(&m).earliest())
        .map_or(now, |t| t.with_timezone(&Utc));
    (midnight + delay, day)
}

struct ReporterMetrics {
    reports: CounterVec,
    seconds: Histogram,
}

impl ReporterMetrics {
    fn new(metrics: &Metrics) -> anyhow::Result<Self> {
        Ok(Self {
            reports: metrics.counter_vec(
                "posbon_reporter_reports_total",
                "daily reports made, by result (ok, error)",
                &["result"],
            )?,
            seconds: metrics.histogram(
                "posbon_reporter_report_seconds",
                "time to make, store and publish one daily report",
                &[0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0],
            )?,
        })
    }
}

/// Makes, stores and publishes the report of `date`, retrying on failure.
async fn make(
    reporter: &Reporter,
    bus: &dyn Bus,
    date: NaiveDate,
    config: &ReporterConfig,
    m: &ReporterMetrics,
    shutdown: &CancellationToken,
) -> bool {
    for attempt in 1..=config.attempts.max(1) {
        let started = Instant::now();
        let result = async {
            let report = reporter.generate(date).await?;
            publish(bus, &report).await?;
            Ok::<_, ReportError>(report)
        }
        .await;
        match result {
            Ok(report) => {
                m.reports.with_labels(&["ok"]).inc();
                m.seconds.observe_duration(started.elapsed());
                let nation = report.row(&Scope::nation());
                tracing::info!(
                    %date,
                    offences = nation.map(|n| n.offences),
                    crime_free = nation.map(|n| n.crime_free_mahallas),
                    seconds = started.elapsed().as_secs_f64(),
                    "daily report made"
                );
                return true;
            }
            Err(e) => {
                m.reports.with_labels(&["error"]).inc();
                tracing::warn!(%date, attempt, error = %e, "daily report failed");
                tokio::select! {
                    _ = shutdown.cancelled() => return false,
                    _ = tokio::time::sleep(config.retry.to_std()) => {}
                }
            }
        }
    }
    false
}

/// Sleeps until `at` (wall clock), waking every minute to follow clock
/// changes; false when `shutdown` came first.
async fn sleep_until(at: DateTime<Utc>, shutdown: &CancellationToken) -> bool {
    loop {
        let left = at - Utc::now();
        let Ok(left) = left.to_std() else {
            return true;
        };
        if left.is_zero() {
            return true;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(left.min(Duration::from_secs(60))) => {}
        }
    }
}

/// Makes the missing reports of the last `catch_up_days`, then each day's
/// report after its local midnight, until `shutdown` (the scheduling part of
/// [`run`], without its HTTP server: what `posbon standalone` runs).
pub async fn schedule_reports(
    reporter: Arc<Reporter>,
    config: ReporterConfig,
    bus: Arc<dyn Bus>,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let m = ReporterMetrics::new(&metrics)?;
    schedule(&reporter, &config, bus.as_ref(), &m, &shutdown).await;
    Ok(())
}

async fn schedule(
    reporter: &Arc<Reporter>,
    config: &ReporterConfig,
    bus: &dyn Bus,
    m: &ReporterMetrics,
    shutdown: &CancellationToken,
) {
    let today = reporter::local_date(Utc::now());
    for back in (1..=i64::from(config.catch_up_days)).rev() {
        if shutdown.is_cancelled() {
            break;
        }
        let Some(date) = today.checked_sub_signed(TimeDelta::days(back)) else {
            continue;
        };
        match reporter.load(date).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                make(reporter, bus, date, config, m, shutdown).await;
            }
            Err(e) => tracing::warn!(%date, error = %e, "cannot read a stored report"),
        }
    }
    refresh_segments(reporter, bus, config, shutdown).await;
    let delay = config.delay.to_std();
    while !shutdown.is_cancelled() {
        let (at, date) = next_run(Utc::now(), delay);
        tracing::info!(%date, at = %at, "next daily report");
        // Until it is due, the recent days' segments are kept current.
        let every = config.segment_refresh.to_chrono();
        loop {
            let wake = at.min(Utc::now() + every);
            if !sleep_until(wake, shutdown).await {
                return;
            }
            if Utc::now() >= at {
                break;
            }
            refresh_segments(reporter, bus, config, shutdown).await;
        }
        make(reporter, bus, date, config, m, shutdown).await;
        refresh_segments(reporter, bus, config, shutdown).await;
    }
}

/// Makes the derived data of the last `days` days current, oldest first:
/// days with events written since their columnar segments were built get
/// new ones (the SQL engine reads such days from the records meanwhile),
/// and their per-mahalla figures (`mahalla_days`, what the baselines are
/// computed from) are computed again; then the stored reports of the last
/// `catch_up_days` days that such events concern are made again.
async fn refresh_segments(
    reporter: &Reporter,
    bus: &dyn Bus,
    config: &ReporterConfig,
    shutdown: &CancellationToken,
) {
    let days = config.segment_days;
    let today = reporter::local_date(Utc::now());
    let mut facts = 0u32;
    for back in (1..=i64::from(days)).rev() {
        if shutdown.is_cancelled() {
            return;
        }
        let Some(date) = today.checked_sub_signed(TimeDelta::days(back)) else {
            continue;
        };
        let started = Instant::now();
        match reporter.build_segments(date).await {
            Ok(Some(built)) if built.built && built.rows == 0 => {
                tracing::debug!(%date, "columnar segments of a day without events")
            }
            Ok(Some(built)) if built.built => tracing::info!(
                %date,
                rows = built.rows,
                bytes = built.bytes,
                seconds = started.elapsed().as_secs_f64(),
                "columnar segments built"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(%date, error = %e, "cannot build the columnar segments"),
        }
        match reporter.refresh_mahalla_day(date).await {
            Ok(true) => facts += 1,
            Ok(false) => {}
            Err(e) => tracing::warn!(%date, error = %e, "cannot compute the per-mahalla figures"),
        }
    }
    if facts > 0 {
        tracing::info!(
            days = facts,
            "per-mahalla figures computed again for days with new events"
        );
    }
    remake_stale_reports(reporter, bus, config.catch_up_days, shutdown).await;
}

/// Makes again the stored reports of the last `days` days whose events
/// changed since they were made: events that arrived late for the day or
/// for its baseline days (or, in the demo, the rest of a day replayed after
/// its report was made).
async fn remake_stale_reports(
    reporter: &Reporter,
    bus: &dyn Bus,
    days: u32,
    shutdown: &CancellationToken,
) {
    let today = reporter::local_date(Utc::now());
    for back in (1..=i64::from(days)).rev() {
        if shutdown.is_cancelled() {
            return;
        }
        let Some(date) = today.checked_sub_signed(TimeDelta::days(back)) else {
            continue;
        };
        match reporter.report_current(date).await {
            Ok(Some(false)) => match reporter.generate(date).await {
                Ok(report) => {
                    let nation = report.row(&Scope::nation());
                    tracing::info!(
                        %date,
                        offences = nation.map(|n| n.offences),
                        "daily report made again: events arrived for its day or its baseline"
                    );
                    if let Err(e) = publish(bus, &report).await {
                        tracing::warn!(%date, error = %e, "cannot publish a report made again");
                    }
                }
                Err(e) => tracing::warn!(%date, error = %e, "cannot make a daily report again"),
            },
            Ok(_) => {}
            Err(e) => tracing::warn!(%date, error = %e, "cannot check a stored report"),
        }
    }
}

/// Runs the reporter until `shutdown`: serves `/healthz`, `/readyz`,
/// `/metrics` and the report routes on `config.listen`, makes the missing
/// reports of the last `catch_up_days` days, then the report of each day
/// `delay` after its local midnight, each stored and published on
/// `posbon.reports.daily`.
pub async fn run(
    config: ReporterConfig,
    bus: Arc<dyn Bus>,
    store: Store,
    registry: Arc<Registry>,
    metrics: Metrics,
    auth: Arc<posbon_auth::Auth>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let m = ReporterMetrics::new(&metrics)?;
    posbon_service::registry::join(&*store, &registry, "posbon-reporter").await?;
    let registry_check = posbon_service::registry::readiness(store.clone(), &registry);
    let reporter = Arc::new(config.reporter(store.clone(), registry)?);
    let (ready_bus, ready_store) = (bus.clone(), store.clone());
    let health = Health::new(metrics.clone())
        .with_check(registry_check)
        .with_check(FnCheck::new("nats", move || {
            let bus = ready_bus.clone();
            async move { bus.health().await.map_err(|e| e.to_string()) }
        }))
        .with_check(FnCheck::new("store", move || {
            let store = ready_store.clone();
            async move {
                store
                    .checkpoint("reporter-ready-probe")
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        }));
    let app = health
        .guarded()
        .merge(http::router(
            Arc::clone(&reporter),
            Some(bus.clone()),
            auth.clone(),
        ))
        .into_router(auth);
    let listener = tokio::net::TcpListener::bind(&config.listen).await?;
    tracing::info!(listen = %listener.local_addr()?, "reporter serving");
    let server_shutdown = shutdown.clone();
    let http = config.http.clone();
    let server_metrics = metrics.clone();
    let server = tokio::spawn(async move {
        posbon_service::http::serve(listener, app, &http, &server_metrics, server_shutdown).await
    });

    schedule(&reporter, &config, bus.as_ref(), &m, &shutdown).await;
    shutdown.cancel();
    server.await??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn the_report_runs_after_local_midnight_for_the_day_that_ended() {
        let minute = Duration::from_secs(60);
        // 23:30 in Tashkent: tonight's midnight, for today.
        let (when, date) = next_run(at("2026-05-01T23:30:00+05:00"), minute);
        assert_eq!(when, at("2026-05-02T00:01:00+05:00"));
        assert_eq!(date.to_string(), "2026-05-01");
        // 30 s after midnight, before the delay is over: still yesterday's.
        let (when, date) = next_run(at("2026-05-02T00:00:30+05:00"), minute);
        assert_eq!(when, at("2026-05-02T00:01:00+05:00"));
        assert_eq!(date.to_string(), "2026-05-01");
        // Just after the run: the next one is a day later.
        let (when, date) = next_run(at("2026-05-02T00:01:00+05:00"), minute);
        assert_eq!(when, at("2026-05-03T00:01:00+05:00"));
        assert_eq!(date.to_string(), "2026-05-02");
        // In UTC terms, Tashkent's midnight is 19:00 the day before.
        let (when, _) = next_run(at("2026-05-01T12:00:00Z"), Duration::ZERO);
        assert_eq!(when, at("2026-05-01T19:00:00Z"));
    }
}

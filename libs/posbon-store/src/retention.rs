//! Retention: events and closed escalations are deleted once they are older
//! than their table's retention (`[retention]`, days; 0 keeps forever).
//!
//! Events are found through the time-ordered `t` keys, one kind at a time,
//! from where the last run of that kind stopped (checkpoint
//! `c`·`retention.<kind>`, less a week for events that arrived late) to the
//! kind's cutoff; each expired event loses its `e`, `t` and `i` keys, and
//! the write mark of every hour it touched is renewed (so the SQL engine's
//! columnar segments of those days are rebuilt without it), or removed once
//! every kind of that hour has expired. A closed escalation (resolved or a
//! false alarm) goes once it was closed longer ago than its retention; open
//! ones stay whatever their age. Nothing younger than a cutoff is touched.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use futures::TryStreamExt as _;
use serde::Deserialize;

use crate::codec::decode_event;
use crate::error::Result;
use crate::keys::{
    EVENT_BY_TIME, decode_event_time_key, event_cell_key, event_id_key, event_time_key, hour_of,
    micros, write_mark_key,
};
use crate::{DEFAULT_PAGE, EscalationStoreExt as _, EventStore, EventStoreExt as _};

/// How far back of the last run each run looks again, for events that
/// arrived after their day was swept.
pub const LATE_ARRIVAL_MARGIN: TimeDelta = TimeDelta::days(7);

/// `[retention]`: days each table is kept; 0 keeps it forever.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Incidents, by `occurred_at`.
    pub incident_days: u32,
    /// Camera alerts (with their snapshot links), by `occurred_at`.
    pub camera_alert_days: u32,
    /// Fraud flags, by `occurred_at`.
    pub fraud_flag_days: u32,
    /// Closed escalations, by when they were closed.
    pub escalation_days: u32,
    /// Audit records, by when they were written (the chain is checked from
    /// the first record kept).
    pub audit_days: u32,
    /// Whether the services run the daily job (`posbon store prune` works
    /// either way).
    pub enabled: bool,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            incident_days: 1825,
            camera_alert_days: 90,
            fraud_flag_days: 365,
            escalation_days: 730,
            audit_days: 1825,
            enabled: true,
        }
    }
}

impl RetentionConfig {
    /// Days of an event kind (wire name); `None` when kept forever.
    pub fn event_days(&self, kind: &str) -> Option<u32> {
        let days = match kind {
            "incident" => self.incident_days,
            "camera_alert" => self.camera_alert_days,
            "fraud_flag" => self.fraud_flag_days,
            _ => 0,
        };
        (days > 0).then_some(days)
    }
}

/// What one run deleted (or, dry, would delete).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Events by kind.
    pub events: BTreeMap<String, u64>,
    /// Closed escalations.
    pub escalations: u64,
    /// Hours whose write mark was renewed or removed.
    pub hours: u64,
    /// The cutoff of each table: what is older goes.
    pub cutoffs: BTreeMap<String, DateTime<Utc>>,
    /// Nothing was deleted: this is what would go.
    pub dry_run: bool,
}

const KINDS: [&str; 3] = ["incident", "camera_alert", "fraud_flag"];

fn checkpoint_name(kind: &str) -> String {
    format!("retention.{kind}")
}

fn cutoff(now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    now - TimeDelta::days(i64::from(days))
}

/// Deletes what is older than its retention at `now`. With `full`, looks at
/// every event, not only those after the last run.
pub async fn prune(
    store: &dyn EventStore,
    config: &RetentionConfig,
    now: DateTime<Utc>,
    dry_run: bool,
    full: bool,
) -> Result<PruneReport> {
    let mut report = PruneReport {
        dry_run,
        ..PruneReport::default()
    };
    let mut touched: BTreeSet<i64> = BTreeSet::new();
    for kind in KINDS {
        let Some(days) = config.event_days(kind) else {
            continue;
        };
        let to = cutoff(now, days);
        report.cutoffs.insert(kind.to_owned(), to);
        let name = checkpoint_name(kind);
        let from = match (full, store.checkpoint(&name).await?) {
            (false, Some(bytes)) if bytes.len() == 8 => {
                let last = i64::from_be_bytes(bytes.try_into().unwrap_or([0; 8]));
                last.saturating_sub(LATE_ARRIVAL_MARGIN.num_microseconds().unwrap_or(0))
            }
            _ => i64::MIN,
        };
        let deleted = prune_kind(store, kind, from, micros(&to), dry_run, &mut touched).await?;
        report.events.insert(kind.to_owned(), deleted);
        if !dry_run {
            store
                .put_checkpoint(&name, micros(&to).to_be_bytes().to_vec())
                .await?;
        }
    }
    report.hours = touched.len() as u64;
    if !dry_run && !touched.is_empty() {
        // An hour every kind of which has expired loses its mark; any other
        // touched hour gets a new one, so what was computed from it is
        // computed again.
        let expired_everywhere = KINDS
            .iter()
            .map(|k| config.event_days(k).map(|d| micros(&cutoff(now, d))))
            .collect::<Option<Vec<i64>>>()
            .and_then(|c| c.into_iter().min());
        let token = crate::ext::write_token();
        let mut renew = Vec::new();
        for hour in touched {
            let key = write_mark_key(hour);
            let hour_end = (hour + 1).saturating_mul(crate::keys::HOUR_MICROS);
            if expired_everywhere.is_some_and(|c| hour_end <= c) {
                store.delete_keys(vec![key]).await?;
            } else {
                renew.push((key, token.clone()));
            }
        }
        store.put_batch(renew).await?;
    }
    if config.escalation_days > 0 {
        let to = cutoff(now, config.escalation_days);
        report.cutoffs.insert("escalations".to_owned(), to);
        let expired: Vec<posbon_model::EscalationRecord> = store
            .escalations_stream()
            .try_filter(|r| futures::future::ready(r.closed_at.is_some_and(|closed| closed < to)))
            .try_collect()
            .await?;
        report.escalations = expired.len() as u64;
        if !dry_run {
            for chunk in expired.chunks(DEFAULT_PAGE) {
                store.delete_escalations(chunk).await?;
            }
        }
    }
    Ok(report)
}

/// Deletes the events of `kind` with `occurred_at` in `[from, to)`
/// (microseconds); returns how many.
async fn prune_kind(
    store: &dyn EventStore,
    kind: &str,
    from: i64,
    to: i64,
    dry_run: bool,
    touched: &mut BTreeSet<i64>,
) -> Result<u64> {
    if from >= to {
        return Ok(0);
    }
    let start = if from == i64::MIN {
        vec![EVENT_BY_TIME]
    } else {
        event_time_key(from, "")
    };
    let mut deleted = 0;
    let mut pages = store.scan_pages(start, event_time_key(to, ""), DEFAULT_PAGE);
    while let Some(page) = pages.try_next().await? {
        let mut keys = Vec::new();
        for (key, value) in &page {
            let Some(time) = decode_event_time_key(key) else {
                continue;
            };
            let event = decode_event(value)?;
            if event.event.kind().as_str() != kind {
                continue;
            }
            let id = event.event.id();
            keys.push(event_cell_key(event.cell.get(), time.micros, id));
            keys.push(event_id_key(id));
            keys.push(key.clone());
            touched.insert(hour_of(time.micros));
            deleted += 1;
        }
        if !dry_run && !keys.is_empty() {
            store.delete_keys(keys).await?;
        }
    }
    Ok(deleted)
}

/// More that the daily job deletes, kept by other crates (expired sessions
/// and login links, `posbon-auth`).
#[async_trait::async_trait]
pub trait Pruner: Send + Sync {
    /// Deletes what has expired at `now` under `config`; how many, by table.
    async fn prune_expired(
        &self,
        now: DateTime<Utc>,
        config: &RetentionConfig,
    ) -> anyhow::Result<Vec<(&'static str, u64)>>;
}

/// Runs [`prune`] (and every one of `also`) a minute after the start and then every day until
/// `shutdown` (when disabled, only waits for it), counting what it deletes (`posbon_retention_deleted_total`
/// by table) and when it last finished (`posbon_retention_last_run_seconds`).
/// A failed run is logged and tried again the next day.
pub async fn run_daily(
    store: crate::Store,
    config: RetentionConfig,
    metrics: posbon_telemetry::Metrics,
    shutdown: tokio_util::sync::CancellationToken,
    also: Vec<std::sync::Arc<dyn Pruner>>,
) -> anyhow::Result<()> {
    let deleted = metrics.counter_vec(
        "posbon_retention_deleted_total",
        "records deleted because they outlived their table's retention, by table",
        &["table"],
    )?;
    let last_run = metrics.gauge(
        "posbon_retention_last_run_seconds",
        "when the retention job last finished (unix seconds)",
    )?;
    if !config.enabled {
        tracing::info!("retention job disabled (retention.enabled = false)");
        shutdown.cancelled().await;
        return Ok(());
    }
    let mut wait = std::time::Duration::from_secs(60);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(wait) => {}
        }
        wait = std::time::Duration::from_secs(24 * 3600);
        match prune(&*store, &config, Utc::now(), false, false).await {
            Ok(report) => {
                for (kind, n) in &report.events {
                    deleted.with_labels(&[kind]).inc_by(*n);
                }
                deleted
                    .with_labels(&["escalations"])
                    .inc_by(report.escalations);
                last_run.set(Utc::now().timestamp());
                tracing::info!(
                    events = ?report.events,
                    escalations = report.escalations,
                    hours = report.hours,
                    "retention: records past their retention deleted"
                );
            }
            Err(e) => tracing::error!(error = %e, "retention job failed; trying again tomorrow"),
        }
        for pruner in &also {
            match pruner.prune_expired(Utc::now(), &config).await {
                Ok(counts) => {
                    for (table, n) in counts {
                        deleted.with_labels(&[table]).inc_by(n);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "expiry job failed; trying again tomorrow")
                }
            }
        }
    }
}

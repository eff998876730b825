//! The escalation lifecycle: the one writer of escalation records.
//!
//! * Records an escalation when it opens (from the ALERTS stream, durable
//!   consumer `api-lifecycle`), once: a replayed opening finds its record and
//!   leaves it alone, so an acknowledged escalation never reopens.
//! * Applies operators' actions from HTTP (`Lifecycle::act`) and from NATS
//!   (`posbon.actions.escalations`, durable consumer `api-actions`, shared by
//!   every replica). Each change reads the record, applies the step and
//!   stores it by compare-and-swap
//!   ([`posbon_store::EscalationStoreExt::swap_escalation`]): when another
//!   replica (or task) changed the record in between, the step is applied
//!   again to the record as it is now, so two operators acting at once on
//!   two replicas see one order and both steps are kept; a step that no
//!   longer applies (acknowledging what was just acknowledged) is refused
//!   with 409.
//! * Re-notifies an escalation one tier up when nobody acknowledged it in
//!   time.
//! * Feeds verdicts back: resolving counts as a confirmation, a false alarm as
//!   a false alarm, for every camera and fraud detector that gave evidence
//!   ([`posbon_store::SourcePrecision`]).
//!
//! Every change is stored first and then published on the mahalla's ALERTS
//! subject with `Posbon-Alert-Type: updated` and `Nats-Msg-Id`
//! `<escalation id>#<audit step number>`, so the live feed shows it and a
//! re-publication after a crash is dropped as a duplicate.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use posbon_bus::headers::{ALERT_TYPE, ORIGINAL_SUBJECT, REJECT_CODE, REJECT_REASON, REJECTED_BY};
use posbon_bus::subjects::{ACTIONS_STREAM, ALERTS_STREAM, Place, alert_subject, dlq_subject};
use posbon_bus::{Bus, ConsumerOptions, Delivery, Headers};
use posbon_model::{
    ActionRequest, AuditKind, Escalation, EscalationAction, EscalationRecord, Event,
};
use posbon_store::{EscalationStoreExt as _, EscalationSwap, EventStoreExt as _, Store};
use posbon_telemetry::{Counter, CounterVec, Metrics, TelemetryError};
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;

/// Durable consumer of ALERTS that records openings.
pub(crate) const ALERTS_DURABLE: &str = posbon_bus::subjects::API_ALERTS_DURABLE;
/// Durable consumer of ACTIONS.
pub(crate) const ACTIONS_DURABLE: &str = posbon_bus::subjects::API_ACTIONS_DURABLE;
/// `Posbon-Alert-Type` of an update.
pub(crate) const UPDATED: &str = "updated";

/// The lifecycle writer.
pub struct Lifecycle {
    store: Store,
    bus: Arc<dyn Bus>,
    renotify_after: TimeDelta,
    steps: CounterVec,
    /// Changes that found the record changed by another writer and were
    /// applied again.
    conflicts: Counter,
    /// Escalations not closed, by level and status.
    current: posbon_telemetry::GaugeVec,
    /// From the first notification to the acknowledgement.
    time_to_acknowledge: posbon_telemetry::Histogram,
}

impl std::fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lifecycle")
            .field("store", &self.store.name())
            .field("renotify_after", &self.renotify_after)
            .finish_non_exhaustive()
    }
}

/// How many times one change is applied again after another writer changed
/// the record first, before it gives up with 503.
const MAX_CHANGE_ATTEMPTS: usize = 32;

impl Lifecycle {
    /// A writer over `store`, publishing updates on `bus`.
    pub(crate) fn new(
        store: Store,
        bus: Arc<dyn Bus>,
        renotify_after: Duration,
        metrics: &Metrics,
    ) -> Result<Self, TelemetryError> {
        Ok(Self {
            store,
            bus,
            renotify_after: TimeDelta::from_std(renotify_after).unwrap_or(TimeDelta::MAX),
            conflicts: metrics.counter(
                "posbon_escalation_write_conflicts_total",
                "Escalation changes applied again because another writer changed the record first",
            )?,
            steps: metrics.counter_vec(
                "posbon_escalation_steps_total",
                "Escalation lifecycle steps, by kind (opened, acknowledge, ..., renotify, refused)",
                &["kind"],
            )?,
            current: metrics.gauge_vec(
                "posbon_escalations",
                "Escalations not yet closed, by level and status (refreshed every renotify_check)",
                &["level", "status"],
            )?,
            time_to_acknowledge: metrics.histogram(
                "posbon_escalation_time_to_acknowledge_seconds",
                "Time from an escalation's first notification to its acknowledgement",
                &[
                    30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
                ],
            )?,
        })
    }

    /// Sets the gauge of escalations not closed, by level and status, from
    /// the store's index of open ones.
    pub async fn measure(&self) -> Result<(), ApiError> {
        use posbon_model::{EscalationStatus, RiskLevel};
        let mut counts = std::collections::HashMap::new();
        for r in self.store.open_escalations().await? {
            *counts
                .entry((r.escalation.level, r.status()))
                .or_insert(0i64) += 1;
        }
        for level in RiskLevel::ALL {
            for status in [
                EscalationStatus::Open,
                EscalationStatus::Acknowledged,
                EscalationStatus::Assigned,
            ] {
                let n = counts.get(&(*level, status)).copied().unwrap_or(0);
                self.current
                    .with_labels(&[level.as_str(), status.as_str()])
                    .set(n);
            }
        }
        Ok(())
    }

    /// Reads escalation `id`, lets `change` change it and stores the result
    /// by compare-and-swap, applying `change` again to the record as it is
    /// now while other writers get there first. `change` answers `None` when
    /// there is nothing to store. Answers the stored record and what `change`
    /// answered, `None` when nothing was stored.
    async fn change<T>(
        &self,
        id: &str,
        mut change: impl FnMut(&mut EscalationRecord) -> Result<Option<T>, ApiError>,
    ) -> Result<Option<(EscalationRecord, T)>, ApiError> {
        let not_found = || ApiError::not_found(format!("no escalation with id {id:?}"));
        let mut read = self
            .store
            .escalation_for_update(id)
            .await?
            .ok_or_else(not_found)?;
        for _ in 0..MAX_CHANGE_ATTEMPTS {
            let mut record = read.record.clone();
            let Some(answer) = change(&mut record)? else {
                return Ok(None);
            };
            match self.store.swap_escalation(Some(&read), &record).await? {
                EscalationSwap::Done => return Ok(Some((record, answer))),
                EscalationSwap::Changed(now) => {
                    self.conflicts.inc();
                    read = *now.ok_or_else(not_found)?;
                }
            }
        }
        Err(ApiError::unavailable(format!(
            "escalation {id:?} changed {MAX_CHANGE_ATTEMPTS} times while this step was applied; try again"
        )))
    }

    /// Records an escalation that opened with ALERTS sequence `sequence`;
    /// returns `false` when it was recorded already (a replay, or another
    /// replica).
    pub(crate) async fn record_opened(
        &self,
        escalation: Escalation,
        sequence: u64,
    ) -> Result<bool, ApiError> {
        if self.store.get_escalation(&escalation.id).await?.is_some() {
            return Ok(false);
        }
        // Notified now (the wall clock), whatever the event time it opened at.
        let record = EscalationRecord::opened(escalation, sequence, Utc::now());
        match self.store.swap_escalation(None, &record).await? {
            EscalationSwap::Done => {
                self.steps.with_labels(&["opened"]).inc();
                Ok(true)
            }
            EscalationSwap::Changed(_) => Ok(false),
        }
    }

    /// Applies `action` to escalation `id`.
    pub(crate) async fn act(
        &self,
        id: &str,
        action: EscalationAction,
        request: &ActionRequest,
    ) -> Result<EscalationRecord, ApiError> {
        let result = self.act_inner(id, action, request).await;
        if result.is_err() {
            self.steps.with_labels(&["refused"]).inc();
        }
        result
    }

    async fn act_inner(
        &self,
        id: &str,
        action: EscalationAction,
        request: &ActionRequest,
    ) -> Result<EscalationRecord, ApiError> {
        request.validate()?;
        let mut acknowledged = None;
        let (record, ()) = self
            .change(id, |record| {
                let was_acknowledged = record.acknowledged_at.is_some();
                let now = Utc::now();
                record.apply(action, request, now)?;
                acknowledged = (!was_acknowledged && record.acknowledged_at.is_some())
                    .then(|| record.history.first().map(|first| now - first.at))
                    .flatten();
                Ok(Some(()))
            })
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no escalation with id {id:?}")))?;
        if let Some(waited) = acknowledged {
            self.time_to_acknowledge
                .observe_duration(waited.to_std().unwrap_or_default());
        }
        self.steps.with_labels(&[action.as_str()]).inc();
        self.publish_update(&record).await;
        // After the step is stored and published: a failure here loses this
        // verdict's count, not the step.
        let confirmed = match action {
            EscalationAction::Resolve => Some(true),
            EscalationAction::FalseAlarm => Some(false),
            _ => None,
        };
        if let Some(confirmed) = confirmed
            && let Err(err) = self.verdict(&record, confirmed).await
        {
            tracing::warn!(escalation = id, error = %err.message, "the verdict was not counted for its sources");
        }
        Ok(record)
    }

    /// Counts the verdict on `record` for every camera and fraud detector
    /// that gave evidence. After the record's step: a crash or a store
    /// failure in between loses this one verdict's count, never counts it
    /// twice (swaps are not retried blindly).
    async fn verdict(&self, record: &EscalationRecord, confirmed: bool) -> Result<(), ApiError> {
        let mut sources = BTreeSet::new();
        for id in &record.escalation.evidence {
            match self.store.get_event(id).await?.map(|e| e.event) {
                Some(Event::CameraAlert(c)) => {
                    sources.insert(("camera", c.camera_id));
                }
                Some(Event::FraudFlag(f)) => {
                    sources.insert(("detector", f.header.source));
                }
                _ => {}
            }
        }
        let sources: Vec<(&str, &str)> = sources.iter().map(|(k, i)| (*k, i.as_str())).collect();
        self.store.add_verdicts(&sources, confirmed).await?;
        Ok(())
    }

    /// Re-notifies every open escalation that waited `renotify_after` since
    /// its last notification; returns how many. Every replica may run it:
    /// the store's open index says which are open, and a re-notification
    /// another replica stored first is not due any more.
    pub(crate) async fn renotify_due(&self, now: DateTime<Utc>) -> Result<usize, ApiError> {
        let due: Vec<String> = self
            .store
            .open_escalations()
            .await?
            .into_iter()
            .filter(|r| r.status() == posbon_model::EscalationStatus::Open)
            .filter(|r| r.clone().renotify_if_due(now, self.renotify_after))
            .map(|r| r.escalation.id)
            .collect();
        let mut changed = 0;
        for id in due {
            let stored = self
                .change(&id, |record| {
                    let due = record.status() == posbon_model::EscalationStatus::Open
                        && record.renotify_if_due(now, self.renotify_after);
                    Ok(due.then_some(()))
                })
                .await;
            let record = match stored {
                Ok(Some((record, ()))) => record,
                Ok(None) => continue,
                // Deleted meanwhile (retention).
                Err(e) if e.status == axum::http::StatusCode::NOT_FOUND => continue,
                Err(e) => return Err(e),
            };
            changed += 1;
            self.steps.with_labels(&["renotify"]).inc();
            tracing::warn!(
                escalation = %record.escalation.id,
                tier = record.tier.as_str(),
                "escalation not acknowledged in time: re-notified one tier up"
            );
            self.publish_update(&record).await;
        }
        Ok(changed)
    }

    /// Records the outcomes of paging step `step` of escalation `id`
    /// (`(receiver, kind, note)`, kind `notified`, `notify_failed` or
    /// `silenced`) in its history, and publishes the update. Outcomes
    /// recorded already are skipped; returns how many were recorded.
    pub(crate) async fn record_deliveries(
        &self,
        id: &str,
        step: u32,
        outcomes: &[(String, AuditKind, String)],
    ) -> Result<usize, ApiError> {
        let stored = self
            .change(id, |record| {
                let now = Utc::now();
                let mut recorded = 0;
                for (receiver, kind, note) in outcomes {
                    if record.record_delivery(*kind, step, receiver, note.clone(), now) {
                        recorded += 1;
                    } else if !record.delivery_recorded(step, receiver) {
                        tracing::warn!(
                            escalation = id,
                            receiver = receiver.as_str(),
                            "history full: a delivery outcome is not recorded"
                        );
                    }
                }
                record.updated_at = now;
                Ok((recorded > 0).then_some(recorded))
            })
            .await?;
        let Some((record, recorded)) = stored else {
            return Ok(0);
        };
        self.publish_update(&record).await;
        Ok(recorded)
    }

    /// The store it writes to.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// The bus it publishes on.
    pub(crate) fn bus(&self) -> &Arc<dyn Bus> {
        &self.bus
    }

    /// The record of escalation `id`.
    pub(crate) async fn record(&self, id: &str) -> Result<Option<EscalationRecord>, ApiError> {
        Ok(self.store.get_escalation(id).await?)
    }

    async fn publish_update(&self, record: &EscalationRecord) {
        let e = &record.escalation;
        let subject = match alert_subject(Place::new(&e.region_id, &e.district_id, &e.mahalla_id)) {
            Ok(subject) => subject,
            Err(err) => {
                tracing::error!(escalation = %e.id, error = %err, "no alert subject");
                return;
            }
        };
        let payload = match serde_json::to_vec(record) {
            Ok(payload) => Bytes::from(payload),
            Err(err) => {
                tracing::error!(escalation = %e.id, error = %err, "cannot encode record");
                return;
            }
        };
        let headers = Headers::new()
            .with_msg_id(format!("{}#{}", e.id, record.history.len()))
            .with(ALERT_TYPE, UPDATED)
            .with_trace_context();
        // The record is stored: the feed must learn of it, so retry a while.
        for attempt in 0..5u32 {
            match self
                .bus
                .publish(&subject, headers.clone(), payload.clone())
                .await
            {
                Ok(_) => return,
                Err(err) => {
                    tracing::warn!(escalation = %e.id, attempt, error = %err, "publishing an update failed");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
        tracing::error!(escalation = %e.id, "update stored but not published on the feed");
    }
}

/// Settings of [`run`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct LifecycleSettings {
    /// How often open escalations are checked for re-notification.
    pub(crate) renotify_check: Duration,
}

/// Runs the lifecycle until `shutdown`: records openings from ALERTS, applies
/// actions from ACTIONS, re-notifies.
pub(crate) async fn run(
    lifecycle: Arc<Lifecycle>,
    settings: LifecycleSettings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let bus = lifecycle.bus.clone();
    let options = ConsumerOptions {
        ack_wait: Duration::from_secs(30),
        max_ack_pending: 1000,
        ..ConsumerOptions::default()
    };
    let alerts = bus
        .consumer(ALERTS_STREAM, ALERTS_DURABLE, vec![], options)
        .await?;
    let actions = bus
        .consumer(ACTIONS_STREAM, ACTIONS_DURABLE, vec![], options)
        .await?;
    // Three loops, so that a fetch is never dropped half-way by another branch.
    let wait = Duration::from_millis(500);
    let alerts_loop = {
        let lifecycle = lifecycle.clone();
        let shutdown = shutdown.clone();
        async move {
            while !shutdown.is_cancelled() {
                let fetched = tokio::select! {
                    () = shutdown.cancelled() => break,
                    fetched = alerts.fetch(100, wait) => fetched,
                };
                match fetched {
                    Ok(batch) => {
                        for delivery in batch {
                            let span = delivery.span("record");
                            tracing::Instrument::instrument(on_alert(&lifecycle, delivery), span)
                                .await;
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "fetching ALERTS failed");
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
    };
    let actions_loop = {
        let lifecycle = lifecycle.clone();
        let shutdown = shutdown.clone();
        async move {
            while !shutdown.is_cancelled() {
                let fetched = tokio::select! {
                    () = shutdown.cancelled() => break,
                    fetched = actions.fetch(100, wait) => fetched,
                };
                match fetched {
                    Ok(batch) => {
                        for delivery in batch {
                            let span = delivery.span("act");
                            tracing::Instrument::instrument(on_action(&lifecycle, delivery), span)
                                .await;
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "fetching ACTIONS failed");
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
    };
    let renotify_loop = async {
        let mut tick = tokio::time::interval(settings.renotify_check);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(err) = lifecycle.renotify_due(Utc::now()).await {
                tracing::warn!(error = %err, "re-notification check failed");
            }
            if let Err(err) = lifecycle.measure().await {
                tracing::warn!(error = %err, "measuring open escalations failed");
            }
        }
    };
    tokio::join!(alerts_loop, actions_loop, renotify_loop);
    Ok(())
}

pub(crate) async fn settle(delivery: &Delivery, done: Result<(), ApiError>, what: &str) {
    let reply = match done {
        Ok(()) => delivery.ack().await,
        // A store or NATS outage: offer it again later.
        Err(err) if err.status.is_server_error() => {
            tracing::warn!(error = %err, sequence = delivery.stream_sequence, "{what}: retrying later");
            delivery.nak(Duration::from_secs(2)).await
        }
        Err(err) => {
            tracing::warn!(
                error = %err,
                sequence = delivery.stream_sequence,
                subject = %delivery.subject,
                "{what}: refused"
            );
            delivery.term().await
        }
    };
    if let Err(err) = reply {
        tracing::warn!(error = %err, "acknowledging failed; the message will be redelivered");
    }
}

async fn on_alert(lifecycle: &Lifecycle, delivery: Delivery) {
    if delivery.headers.get(ALERT_TYPE) == Some(UPDATED) {
        settle(&delivery, Ok(()), "alert").await;
        return;
    }
    let done = match serde_json::from_slice::<Escalation>(&delivery.payload) {
        Ok(escalation) => lifecycle
            .record_opened(escalation, delivery.stream_sequence)
            .await
            .map(drop),
        Err(err) => Err(ApiError::bad_request(
            "invalid_escalation",
            format!("ALERTS message is not an escalation: {err}"),
        )),
    };
    settle(&delivery, done, "escalation opening").await;
}

/// Parses an action request from NATS: JSON naming the escalation and the action.
pub fn parse_action(payload: &[u8]) -> Result<(String, EscalationAction, ActionRequest), ApiError> {
    let request: ActionRequest = serde_json::from_slice(payload).map_err(|err| {
        ApiError::bad_request("invalid_action", format!("not an action request: {err}"))
    })?;
    let id = request
        .escalation_id
        .clone()
        .ok_or_else(|| ApiError::bad_request("invalid_action", "escalation_id: missing"))?;
    let action = request
        .action
        .ok_or_else(|| ApiError::bad_request("invalid_action", "action: missing"))?;
    Ok((id, action, request))
}

async fn on_action(lifecycle: &Lifecycle, delivery: Delivery) {
    let done = match parse_action(&delivery.payload) {
        Ok((id, action, request)) => lifecycle.act(&id, action, &request).await.map(drop),
        Err(err) => Err(err),
    };
    // A refused action can never succeed: it goes to the DLQ with the reason
    // (a 409 or 400), and is then terminated.
    if let Err(err) = &done
        && !err.status.is_server_error()
    {
        let headers = Headers::new()
            .with_msg_id(format!("dlq:action:{}", delivery.stream_sequence))
            .with(REJECT_CODE, err.code)
            .with(REJECT_REASON, err.message.replace(['\r', '\n'], " "))
            .with(ORIGINAL_SUBJECT, delivery.subject.clone())
            .with(REJECTED_BY, "posbon-api");
        if let Err(dlq) = lifecycle
            .bus
            .publish(
                &dlq_subject(Some("action")),
                headers,
                delivery.payload.clone(),
            )
            .await
        {
            tracing::warn!(error = %dlq, "cannot dead-letter a refused action; retrying later");
            settle(
                &delivery,
                Err(ApiError::unavailable(dlq.to_string())),
                "action",
            )
            .await;
            return;
        }
    }
    settle(&delivery, done, "action").await;
}

//! Paging: the worker that turns escalation steps into notifications.
//!
//! It reads ALERTS through the durable consumer `api-notify` (shared by every
//! API replica, so each step is paged by one of them), starting with what is
//! published after it was first created. An opening pages step 1; an update
//! whose last step is a re-notification pages that step. For each, the
//! routes of [`posbon_notify::Notifier`] name the receivers; an active
//! silence that covers the escalation holds the page back. Each outcome
//! (`notified`, `notify_failed`, `silenced`) is recorded in the escalation's
//! history by the lifecycle writer as soon as that receiver's delivery ends,
//! which is also what deduplicates: a redelivered message pages only the
//! receivers with no outcome yet. A failed delivery is dead-lettered on
//! `posbon.dlq.notify` with the reason. The message is acknowledged once
//! every outcome is recorded. Pages only go out while the escalation is
//! open (nobody acknowledged it) and for steps of the last
//! `MAX_PAGE_AGE_HOURS` hours, so a paging consumer that was off does not
//! page the past.
//!
//! A step whose message never reached ALERTS (the lifecycle stored a
//! re-notification but could not publish it, or died in between) is found
//! by the sweep ([`sweep`], every `SWEEP_EVERY`): open escalations whose
//! latest paging step is older than the consumer's acknowledgement deadline
//! and still misses an outcome are paged from the record.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use posbon_bus::headers::{ALERT_TYPE, ORIGINAL_SUBJECT, REJECT_CODE, REJECT_REASON, REJECTED_BY};
use posbon_bus::subjects::{ALERTS_STREAM, API_NOTIFY_DURABLE, dlq_subject};
use posbon_bus::{ConsumerOptions, DeliverPolicy, Delivery, Headers};
use posbon_geo::Registry;
use posbon_model::{AuditKind, Escalation, EscalationRecord, Silence};
use posbon_notify::{Notifier, Outcome, Page};
use posbon_store::EscalationStoreExt as _;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::lifecycle::{Lifecycle, UPDATED, settle};

/// Pages worked on at once (each fetched only when there is room for it, so
/// none waits for its turn past its acknowledgement deadline).
pub(crate) const CONCURRENT_PAGES: usize = 16;
/// A step older than this is not paged any more.
pub(crate) const MAX_PAGE_AGE_HOURS: i64 = 24;
/// How often ended silences are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// How often open escalations are swept for steps nobody paged.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// What one ALERTS message asks to page: escalation id and step.
fn page_request(delivery: &Delivery) -> Result<Option<(String, u32)>, ApiError> {
    if delivery.headers.get(ALERT_TYPE) == Some(UPDATED) {
        let record: EscalationRecord = serde_json::from_slice(&delivery.payload).map_err(|e| {
            ApiError::bad_request(
                "invalid_escalation",
                format!("not an escalation record: {e}"),
            )
        })?;
        let paged = record
            .history
            .last()
            .is_some_and(|s| s.kind == AuditKind::Renotify);
        let step = u32::try_from(record.history.len()).unwrap_or(u32::MAX);
        return Ok(paged.then_some((record.escalation.id, step)));
    }
    let escalation: Escalation = serde_json::from_slice(&delivery.payload).map_err(|e| {
        ApiError::bad_request("invalid_escalation", format!("not an escalation: {e}"))
    })?;
    Ok(Some((escalation.id, 1)))
}

/// The active silence that covers `escalation` now, if any.
fn silenced_by<'a>(silences: &'a [Silence], escalation: &Escalation) -> Option<&'a Silence> {
    let now = Utc::now();
    silences.iter().find(|s| s.covers(escalation, now))
}

/// Pages step `step` of escalation `id`: every receiver its routes name
/// that has no outcome recorded yet.
pub async fn page(
    lifecycle: &Lifecycle,
    notifier: &Notifier,
    registry: &Registry,
    id: &str,
    step: u32,
) -> Result<(), ApiError> {
    // The lifecycle records the opening from the same stream; until it has,
    // there is nothing to record outcomes in (the message comes back).
    let mut record = lifecycle.record(id).await?;
    for _ in 0..10 {
        if record.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        record = lifecycle.record(id).await?;
    }
    let record = record
        .ok_or_else(|| ApiError::unavailable(format!("escalation {id:?} is not recorded yet")))?;
    let Some(tier) = record.paging_step(step) else {
        return Ok(());
    };
    let at = record
        .history
        .get(step as usize - 1)
        .map_or(record.updated_at, |s| s.at);
    if record.status() != posbon_model::EscalationStatus::Open
        || Utc::now() - at > chrono::TimeDelta::hours(MAX_PAGE_AGE_HOURS)
    {
        // Someone has it already, or the step is history: nobody is paged.
        return Ok(());
    }
    let e = &record.escalation;
    let receivers: Vec<&str> = notifier
        .receivers_for(e, tier)
        .into_iter()
        .filter(|r| !record.delivery_recorded(step, r))
        .collect();
    if receivers.is_empty() {
        return Ok(());
    }
    let silences = match lifecycle.store().silences().await {
        Ok(silences) => silences,
        Err(err) => {
            // Better paged once too often than a page lost.
            tracing::warn!(error = %err, "cannot read silences: paging regardless");
            Vec::new()
        }
    };
    if let Some(silence) = silenced_by(&silences, e) {
        let note = format!(
            "not paged: silenced by {} ({}, until {})",
            silence.id,
            silence.reason,
            silence.ends_at.to_rfc3339()
        );
        let outcomes: Vec<_> = receivers
            .iter()
            .map(|r| {
                notifier.count_silenced(r);
                ((*r).to_owned(), AuditKind::Silenced, note.clone())
            })
            .collect();
        lifecycle.record_deliveries(id, step, &outcomes).await?;
        return Ok(());
    }
    let mahalla = registry.mahalla_by_id(&e.mahalla_id).map(|(_, m)| m);
    let district = registry
        .district(&e.district_id)
        .map_or(e.district_id.as_str(), |d| d.name.as_str());
    let page = Page {
        escalation: e.clone(),
        step,
        tier,
        place: format!(
            "{} ({district})",
            mahalla.map_or(e.mahalla_id.as_str(), |m| m.name.as_str())
        ),
        inspector_contact: mahalla.and_then(|m| m.inspector_contact.clone()),
        at,
    };
    // Each receiver's outcome is recorded as soon as it is known: a crash
    // later re-pages only the receivers whose outcome is missing.
    let recorded = futures::future::join_all(receivers.iter().map(|receiver| {
        let page = &page;
        async move {
            let outcome = notifier.deliver(receiver, page).await;
            let kind = notifier.kind_of(receiver).unwrap_or("unknown");
            let note = outcome.note(kind);
            let audit = match &outcome {
                Outcome::Delivered { .. } => AuditKind::Notified,
                Outcome::Failed { reason, .. } => {
                    tracing::warn!(
                        escalation = id,
                        step,
                        receiver,
                        reason = reason.as_str(),
                        "paging failed: dead-lettered"
                    );
                    AuditKind::NotifyFailed
                }
            };
            let recorded = lifecycle
                .record_deliveries(id, step, &[((*receiver).to_owned(), audit, note)])
                .await;
            if let Outcome::Failed { reason, .. } = &outcome
                && let Err(err) = dead_letter(lifecycle, page, receiver, reason).await
            {
                tracing::warn!(error = %err, escalation = id, receiver, "cannot dead-letter a failed page");
            }
            recorded
        }
    }))
    .await;
    recorded.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(())
}

/// Pages the steps that were never paged: for every open escalation, its
/// latest paging step (the opening or the last re-notification) when it is
/// older than `settled` (by then the ALERTS message, if it was published,
/// has been paged and its outcomes recorded) and younger than
/// `MAX_PAGE_AGE_HOURS`, to the receivers with no outcome yet. Returns
/// how many steps it paged.
pub async fn sweep(
    lifecycle: &Lifecycle,
    notifier: &Notifier,
    registry: &Registry,
    settled: Duration,
) -> Result<usize, ApiError> {
    let now = Utc::now();
    let settled = chrono::TimeDelta::from_std(settled).unwrap_or(chrono::TimeDelta::MAX);
    let mut paged = 0;
    for record in lifecycle.store().open_escalations().await? {
        if record.status() != posbon_model::EscalationStatus::Open {
            continue;
        }
        let Some((index, step)) = record
            .history
            .iter()
            .enumerate()
            .rev()
            .find(|(_, s)| matches!(s.kind, AuditKind::Opened | AuditKind::Renotify))
        else {
            continue;
        };
        let age = now - step.at;
        if age < settled || age > chrono::TimeDelta::hours(MAX_PAGE_AGE_HOURS) {
            continue;
        }
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let Some(tier) = record.paging_step(number) else {
            continue;
        };
        let missing = notifier
            .receivers_for(&record.escalation, tier)
            .into_iter()
            .any(|r| !record.delivery_recorded(number, r));
        if missing {
            tracing::warn!(
                escalation = %record.escalation.id,
                step = number,
                "a paging step was never paged from ALERTS: paging it from the record"
            );
            page(lifecycle, notifier, registry, &record.escalation.id, number).await?;
            paged += 1;
        }
    }
    Ok(paged)
}

/// Publishes a page that could not be delivered on `posbon.dlq.notify`.
async fn dead_letter(
    lifecycle: &Lifecycle,
    page: &Page,
    receiver: &str,
    reason: &str,
) -> Result<(), ApiError> {
    let payload = serde_json::to_vec(&serde_json::json!({
        "escalation_id": page.escalation.id,
        "step": page.step,
        "tier": page.tier,
        "receiver": receiver,
        "reason": reason,
    }))
    .map_err(|e| ApiError::unavailable(format!("cannot encode a dead letter: {e}")))?;
    let headers = Headers::new()
        .with_msg_id(format!("dlq:notify:{}/{receiver}", page.key()))
        .with(REJECT_CODE, "notify_failed")
        .with(REJECT_REASON, reason.replace(['\r', '\n'], " "))
        .with(ORIGINAL_SUBJECT, "posbon.alerts")
        .with(REJECTED_BY, "posbon-api");
    lifecycle
        .bus()
        .publish(&dlq_subject(Some("notify")), headers, Bytes::from(payload))
        .await?;
    Ok(())
}

async fn on_message(
    lifecycle: Arc<Lifecycle>,
    notifier: Arc<Notifier>,
    registry: Arc<Registry>,
    delivery: Delivery,
) {
    let done = match page_request(&delivery) {
        Ok(Some((id, step))) => page(&lifecycle, &notifier, &registry, &id, step).await,
        Ok(None) => Ok(()),
        Err(err) => Err(err),
    };
    settle(&delivery, done, "paging").await;
}

/// Runs the paging worker until `shutdown`.
pub(crate) async fn run(
    lifecycle: Arc<Lifecycle>,
    notifier: Arc<Notifier>,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let options = ConsumerOptions {
        // Every receiver of a page may use all its attempts (receivers of
        // one page are paged at once).
        ack_wait: notifier.worst_case() + Duration::from_secs(30),
        max_ack_pending: 1000,
        // Escalations from before paging was set up are not paged.
        deliver_policy: DeliverPolicy::New,
        ..ConsumerOptions::default()
    };
    let consumer = lifecycle
        .bus()
        .consumer(ALERTS_STREAM, API_NOTIFY_DURABLE, vec![], options)
        .await?;
    let wait = Duration::from_millis(500);
    let mut running = tokio::task::JoinSet::new();
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The consumer's acknowledgement deadline and a margin: a step older
    // than this that still misses an outcome was never on ALERTS.
    let settled = notifier.worst_case() + Duration::from_secs(60);
    let mut sweeps = tokio::time::interval(SWEEP_EVERY);
    sweeps.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !shutdown.is_cancelled() {
        while running.try_join_next().is_some() {}
        if running.len() >= CONCURRENT_PAGES {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = running.join_next() => {}
            }
            continue;
        }
        let room = CONCURRENT_PAGES - running.len();
        let fetched = tokio::select! {
            () = shutdown.cancelled() => break,
            _ = prune.tick() => {
                if let Err(err) = crate::silences::prune(lifecycle.store(), Utc::now()).await {
                    tracing::warn!(error = %err, "pruning ended silences failed");
                }
                continue;
            }
            _ = sweeps.tick() => {
                if let Err(err) = sweep(&lifecycle, &notifier, &registry, settled).await {
                    tracing::warn!(error = %err, "sweeping for unpaged steps failed");
                }
                continue;
            }
            fetched = consumer.fetch(room, wait) => fetched,
        };
        match fetched {
            Ok(batch) => {
                for delivery in batch {
                    let span = delivery.span("page");
                    running.spawn(tracing::Instrument::instrument(
                        on_message(
                            lifecycle.clone(),
                            notifier.clone(),
                            registry.clone(),
                            delivery,
                        ),
                        span,
                    ));
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "fetching ALERTS for paging failed");
                tokio::time::sleep(wait).await;
            }
        }
    }
    // Pages in flight get a moment to finish and record; the rest come back
    // after their acknowledgement deadline and page only what is missing.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while running.join_next().await.is_some() {}
    })
    .await;
    running.abort_all();
    Ok(())
}

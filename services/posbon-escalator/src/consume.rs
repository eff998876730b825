//! The consume loop: fetch from EVENTS, apply, publish escalations,
//! checkpoint, acknowledge; and [`run`], the service around it.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::{TimeDelta, Utc};
use posbon_bus::subjects::{EVENTS_STREAM, Place, alert_subject};
use posbon_bus::{
    Bus, ConsumerOptions, DeliverPolicy, Delivery, Headers, OutgoingMessage, default_streams,
};
use posbon_geo::Registry;
use posbon_model::EnrichedEvent;
use posbon_risk::RiskConfig;
use posbon_service::{FnCheck, Health};
use posbon_store::Store;
use posbon_telemetry::Metrics;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{Snapshot, load, save, save_snapshot, settle};
use crate::config::EscalatorConfig;
use crate::engine::{Applied, Escalator};
use crate::metrics::EscalatorMetrics;
use crate::shard::Shard;

/// Publishes the outbox; returns how many were published (a prefix).
async fn publish(bus: &dyn Bus, escalator: &mut Escalator, metrics: &EscalatorMetrics) -> usize {
    if escalator.outbox.is_empty() {
        return 0;
    }
    let mut messages = Vec::with_capacity(escalator.outbox.len());
    for e in &escalator.outbox {
        let subject = match alert_subject(Place::new(&e.region_id, &e.district_id, &e.mahalla_id)) {
            Ok(s) => s,
            Err(err) => {
                tracing::error!(escalation = %e.id, error = %err, "escalation without a valid subject");
                break;
            }
        };
        let payload = match serde_json::to_vec(e) {
            Ok(p) => Bytes::from(p),
            Err(err) => {
                tracing::error!(escalation = %e.id, error = %err, "cannot encode escalation");
                break;
            }
        };
        let headers = Headers::new()
            .with_msg_id(&e.id)
            .with(posbon_bus::headers::ALERT_TYPE, "opened")
            .with_trace_context();
        messages.push(OutgoingMessage::new(subject, headers, payload));
    }
    let results = bus.publish_many(messages).await;
    let ok = results.iter().take_while(|r| r.is_ok()).count();
    for (e, r) in escalator.outbox.iter().zip(&results).take(ok) {
        let duplicate = r.as_ref().is_ok_and(|a| a.duplicate);
        tracing::info!(
            escalation = %e.id,
            mahalla = %e.mahalla_id,
            level = e.level.as_str(),
            rule = %e.rule,
            duplicate,
            "escalation published"
        );
    }
    if let Some(Err(err)) = results.get(ok) {
        tracing::warn!(error = %err, "publishing escalations failed; retrying");
    }
    metrics.escalations.inc_by(ok as u64);
    escalator.published(ok);
    ok
}

/// Runs the escalator until `shutdown`.
// The service and its dependencies, each a separate handle the caller owns.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    config: EscalatorConfig,
    risk: RiskConfig,
    bus: Arc<dyn Bus>,
    store: Store,
    registry: Arc<Registry>,
    metrics: Metrics,
    auth: Arc<posbon_auth::Auth>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    config.validate()?;
    risk.validate()?;
    bus.ensure_streams(&default_streams()).await?;
    posbon_service::registry::join(&*store, &registry, "posbon-escalator").await?;
    let health = Health::new(metrics.clone())
        .with_check(posbon_service::registry::readiness(
            store.clone(),
            &registry,
        ))
        .with_check(FnCheck::new("nats", {
            let bus = bus.clone();
            move || {
                let bus = bus.clone();
                async move { bus.health().await.map_err(|e| e.to_string()) }
            }
        }))
        .with_check(FnCheck::new("store", {
            let store = store.clone();
            move || {
                let store = store.clone();
                async move { store.get(b"c").await.map(drop).map_err(|e| e.to_string()) }
            }
        }));
    let listener = tokio::net::TcpListener::bind(&config.listen).await?;
    tracing::info!(listen = %listener.local_addr()?, "escalator serving http");
    let server_shutdown = shutdown.clone();
    let app = health.guarded().into_router(auth);
    let http = config.http.clone();
    let server_metrics = metrics.clone();
    let server = tokio::spawn(async move {
        posbon_service::http::serve(listener, app, &http, &server_metrics, server_shutdown).await
    });
    let worked = consume(
        config,
        risk,
        bus,
        store,
        registry,
        &metrics,
        shutdown.clone(),
    )
    .await;
    shutdown.cancel();
    server.await??;
    worked
}

/// The consuming loop alone (what `posbon standalone` runs, with its own HTTP):
/// the shards this instance holds through leases ([`crate::leased`]), or the one
/// `shard_index` names.
pub async fn consume(
    config: EscalatorConfig,
    risk: RiskConfig,
    bus: Arc<dyn Bus>,
    store: Store,
    registry: Arc<Registry>,
    metrics: &Metrics,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    config.validate()?;
    let shared = Shared {
        m: Arc::new(EscalatorMetrics::new(metrics)?),
        config,
        risk,
        bus,
        store,
        registry,
    };
    crate::leased::run(shared, shutdown).await
}

/// What the shards of one instance share.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) config: EscalatorConfig,
    pub(crate) risk: RiskConfig,
    pub(crate) bus: Arc<dyn Bus>,
    pub(crate) store: Store,
    pub(crate) registry: Arc<Registry>,
    pub(crate) m: Arc<EscalatorMetrics>,
}

/// Runs `shard` from its checkpoint until `shutdown` (then publishes what is
/// left, checkpoints and acknowledges) or until `lost` (its lease went to
/// another instance: it stops at once, writing and acknowledging nothing
/// more, since the new holder starts from the last checkpoint).
pub(crate) async fn consume_shard(
    shared: &Shared,
    shard: Shard,
    shutdown: CancellationToken,
    lost: CancellationToken,
) -> anyhow::Result<()> {
    let Shared {
        config,
        risk,
        bus,
        store,
        registry,
        m,
    } = shared;
    let m = &**m;
    let mut escalator = load(store, shard, risk.clone(), registry.clone(), config).await?;
    let consumer = bus
        .consumer(
            EVENTS_STREAM,
            &shard.durable(),
            vec![],
            ConsumerOptions {
                ack_wait: config.ack_wait.to_std(),
                max_ack_pending: 50_000,
                deliver_policy: DeliverPolicy::FromSequence(escalator.sequence() + 1),
                // The checkpoint says where to resume, not the consumer: what a
                // previous holder was delivered and never checkpointed comes again,
                // in order, rather than after its ack wait behind newer events
                // (which the state's sequence would then make it skip).
                restart: true,
                ..ConsumerOptions::default()
            },
        )
        .await?;
    tracing::info!(shard = %shard.name(), sequence = escalator.sequence(), "escalator consuming EVENTS");
    let wait = config.fetch_wait.to_std();
    let checkpoint_every = config.checkpoint.to_std();
    let idle_after = config.tick.to_std();
    let mut to_ack: Vec<Delivery> = Vec::new();
    let mut last_checkpoint = Instant::now();
    let mut last_event = Instant::now();
    let mut dirty = false;
    // Escalations published since the last checkpoint began.
    let mut unsaved_escalations = false;
    // The checkpoint being written and the deliveries it covers.
    let mut in_flight: Option<(JoinHandle<anyhow::Result<()>>, Vec<Delivery>)> = None;
    loop {
        let fetched = tokio::select! {
            () = shutdown.cancelled() => None,
            () = lost.cancelled() => {
                // Another instance may hold the shard now: the checkpoint
                // being written must not land after its own.
                if let Some((written, _)) = in_flight.take() {
                    written.abort();
                }
                return Ok(());
            }
            f = consumer.fetch(config.fetch_batch, wait) => Some(f),
        };
        let Some(fetched) = fetched else { break };
        let batch = match fetched {
            Ok(batch) => batch,
            Err(err) => {
                tracing::warn!(error = %err, "fetching EVENTS failed");
                tokio::time::sleep(wait).await;
                Vec::new()
            }
        };
        if batch.is_empty() {
            if last_event.elapsed() >= idle_after
                && let Some(newest) = escalator.max_event()
            {
                let idle = TimeDelta::from_std(last_event.elapsed()).unwrap_or(TimeDelta::zero());
                escalator.idle_tick(newest + idle);
                dirty = true;
            }
        } else {
            last_event = Instant::now();
        }
        for delivery in batch {
            match EnrichedEvent::from_message(
                delivery.headers.get(posbon_bus::headers::CONTENT_TYPE),
                &delivery.payload,
            ) {
                Ok(event) => match delivery
                    .span("escalate")
                    .in_scope(|| escalator.apply(delivery.stream_sequence, &event))
                {
                    Applied::Applied { late } => {
                        m.applied.inc();
                        if late {
                            m.late.inc();
                            // Per event: counted in the metric, detail at
                            // DEBUG (a replay is thousands of them).
                            tracing::debug!(
                                event = event.event.id(),
                                occurred_at = %event.event.occurred_at(),
                                watermark = ?escalator.watermark(),
                                "late event applied"
                            );
                        }
                        dirty = true;
                    }
                    Applied::Skipped => m.skipped.inc(),
                    Applied::OutOfWindow => {
                        m.invalid.inc();
                        tracing::warn!(
                            sequence = delivery.stream_sequence,
                            event = event.event.id(),
                            occurred_at = %event.event.occurred_at(),
                            ingested_at = %event.ingested_at,
                            "event stamped far ahead of its ingestion: not applied"
                        );
                    }
                },
                Err(err) => {
                    m.invalid.inc();
                    tracing::warn!(sequence = delivery.stream_sequence, error = %err, "EVENTS message is not an enriched event; terminated");
                    if let Err(err) = delivery.term().await {
                        tracing::warn!(error = %err, "term failed");
                    }
                    continue;
                }
            }
            to_ack.push(delivery);
        }
        if let Some(newest) = escalator.max_event() {
            m.watermark_lag.set((Utc::now() - newest).num_seconds());
        }
        let produced = !escalator.outbox().is_empty();
        if produced {
            publish(&**bus, &mut escalator, m).await;
            unsaved_escalations = true;
        }
        // A checkpoint written: acknowledge what it covers.
        if in_flight.as_ref().is_some_and(|(h, _)| h.is_finished())
            && let Some((written, acks)) = in_flight.take()
        {
            settle(written.await, acks, &mut to_ack, &mut dirty, &*consumer, m).await;
        }
        // Checkpoints are encoded and written off this loop, one at a time,
        // so events keep flowing while a large state is saved.
        if in_flight.is_none()
            && !lost.is_cancelled()
            && (dirty || !to_ack.is_empty())
            && (unsaved_escalations
                || to_ack.len() >= 20_000
                || last_checkpoint.elapsed() >= checkpoint_every)
        {
            let started = Instant::now();
            let snapshot = Snapshot::of(&escalator);
            let acks = std::mem::take(&mut to_ack);
            dirty = false;
            unsaved_escalations = false;
            last_checkpoint = Instant::now();
            let written = tokio::spawn(save_snapshot(
                store.clone(),
                snapshot,
                m.checkpoint_seconds.clone(),
                started,
            ));
            in_flight = Some((written, acks));
        }
    }
    if let Some((written, acks)) = in_flight.take() {
        settle(written.await, acks, &mut to_ack, &mut dirty, &*consumer, m).await;
    }
    if lost.is_cancelled() {
        return Ok(());
    }
    // Shutting down: publish what is left, checkpoint, ack.
    publish(&**bus, &mut escalator, m).await;
    save(store, &escalator, m).await?;
    for d in to_ack {
        let _ = d.ack().await;
    }
    Ok(())
}

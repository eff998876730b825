//! Posbon escalator: keeps the risk state of every mahalla it owns from the
//! EVENTS stream and publishes escalations to ALERTS.
//!
//! * **Event time.** The [`posbon_risk::Engine`] works in event time. The
//!   escalator keeps a watermark (the newest event time seen minus the allowed
//!   lateness) and ticks the engine every `tick_secs` of watermark, so levels
//!   are re-evaluated as event time passes. An event older than the watermark
//!   is *late*: it is still applied exactly (the decayed intensity allows any
//!   order), counted in `posbon_escalator_late_events_total` and logged at
//!   DEBUG (a replay is thousands of them). When
//!   no event arrives for `tick_secs` of wall time, the engine is ticked at the
//!   newest event time plus the idle wall time, so mahallas calm down when
//!   nothing happens.
//! * **Exactly once from at-least-once parts.** Each EVENTS message is applied
//!   once: the state carries the last stream sequence it covers, and a
//!   redelivered message at or below it is acknowledged without being applied.
//!   Escalations are published with their deterministic id as `Nats-Msg-Id`.
//!   The loop is: apply a batch → publish the escalations it produced →
//!   checkpoint state, sequence and any unpublished escalations → acknowledge.
//!   A checkpoint is a copy of the state taken in the loop, encoded and
//!   written on another task while the loop goes on applying events (one
//!   checkpoint in flight at a time); the messages it covers are acknowledged
//!   only once it is written, and kept for the next one if it fails.
//!   After a kill -9 the escalator restores the checkpoint and resumes after
//!   its sequence; what it applies again reproduces the same escalations with
//!   the same ids, which JetStream (and the API's lifecycle) drop as
//!   duplicates.
//! * **Shards.** Instance `i` of `n` owns the mahallas whose id hashes
//!   (FNV-1a 64) to `i` modulo `n` ([`Shard::owns`]); events outside every
//!   mahalla belong to shard 0. Every instance reads all of EVENTS through its
//!   own durable consumer (`escalator-<i>-of-<n>`) and skips what it does not
//!   own. When the shard count changes, a new instance has no checkpoint of
//!   its own: it takes each mahalla it owns from the newest checkpoint of any
//!   earlier shard that held it, starts reading after the oldest sequence among
//!   those, and skips events a mahalla's state already covers. Episode
//!   counters travel with the state, so escalation ids continue and nothing is
//!   escalated twice.
//! * The risk of every raised mahalla (level, score, since, hot cells) is
//!   stored with each checkpoint as a [`RiskSnapshot`] for the map.

pub mod serve;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use futures::TryStreamExt as _;
use posbon_bus::subjects::{EVENTS_STREAM, Place, alert_subject};
use posbon_bus::{
    Bus, ConsumerOptions, DeliverPolicy, Delivery, Headers, OutgoingMessage, default_streams,
};
use posbon_geo::Registry;
use posbon_model::{EnrichedEvent, Escalation, MahallaRisk, RISK_SNAPSHOT_PREFIX, RiskSnapshot};
use posbon_risk::{Engine, EngineSnapshot, RiskConfig};
use posbon_service::{FnCheck, Health};
use posbon_store::keys::prefix_range;
use posbon_store::{EventStoreExt as _, Store, checkpoint_key};
use posbon_telemetry::{Counter, Gauge, Histogram, Metrics, TelemetryError};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Defaults embedded in the binary.
pub const DEFAULTS: &str = include_str!("default.toml");

/// Checkpoint name prefix of the escalator's state: `<prefix><shard>` holds a
/// [`StateHead`], the state itself is in chunks under [`CHUNK_PREFIX`].
pub const STATE_PREFIX: &str = "escalator/state/";
/// Checkpoint name prefix of state chunks: `<prefix><shard>/<n>`.
pub const CHUNK_PREFIX: &str = "escalator/chunk/";
/// Largest chunk of a checkpoint (store values are limited to 1 MiB).
pub const CHUNK_BYTES: usize = 768 * 1024;

/// The head of a shard's checkpoint: how many chunks hold its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateHead {
    /// The last EVENTS sequence the state covers.
    pub sequence: u64,
    /// Number of chunks.
    pub chunks: u32,
    /// Total bytes of the JSON [`Checkpoint`].
    pub bytes: u64,
}

/// How the escalator runs (`[escalator]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalatorConfig {
    /// HTTP address (`/healthz`, `/readyz`, `/metrics`).
    pub listen: String,
    /// The HTTP server: HTTPS, connection limit, timeouts (`[<section>.http]`).
    #[serde(default)]
    pub http: posbon_service::http::HttpConfig,
    /// NATS server URLs.
    pub nats_urls: Vec<String>,
    /// Mahalla registry (GeoJSON). Required by the service binaries: every service of a deployment loads the same file (`posbon_service::registry`); the library entry points take a loaded registry.
    #[serde(default)]
    pub registry: Option<std::path::PathBuf>,
    /// This instance's shard.
    pub shard_index: u32,
    /// Number of shards.
    pub shard_count: u32,
    /// Seconds an event may arrive after the newest event time before it counts as late.
    pub allowed_lateness_secs: u64,
    /// Seconds of event time between level evaluations; also the idle wall time
    /// after which the engine is ticked anyway.
    pub tick_secs: u64,
    /// Longest time between checkpoints, seconds.
    pub checkpoint_secs: u64,
    /// Messages fetched per batch.
    pub fetch_batch: usize,
    /// Longest wait for a batch, milliseconds.
    pub fetch_wait_ms: u64,
    /// Seconds JetStream waits for an ack before redelivering (must exceed
    /// `checkpoint_secs`: messages are acknowledged at checkpoints).
    pub ack_wait_secs: u64,
}

impl EscalatorConfig {
    /// The shard of this instance.
    pub fn shard(&self) -> anyhow::Result<Shard> {
        Shard::new(self.shard_index, self.shard_count)
    }

    /// Checks the values.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.shard()?;
        anyhow::ensure!(
            self.tick_secs >= 1,
            "escalator.tick_secs: must be at least 1"
        );
        anyhow::ensure!(
            self.checkpoint_secs >= 1 && self.checkpoint_secs < self.ack_wait_secs,
            "escalator.checkpoint_secs: must be at least 1 and below ack_wait_secs ({})",
            self.ack_wait_secs
        );
        anyhow::ensure!(
            (1..=20_000).contains(&self.fetch_batch),
            "escalator.fetch_batch: must be in 1..=20000"
        );
        Ok(())
    }
}

/// One shard of the mahallas: index `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Index, `0..count`.
    pub index: u32,
    /// Number of shards.
    pub count: u32,
}

impl Shard {
    /// Shard `index` of `count`.
    pub fn new(index: u32, count: u32) -> anyhow::Result<Self> {
        anyhow::ensure!(count >= 1, "escalator.shard_count: must be at least 1");
        anyhow::ensure!(
            index < count,
            "escalator.shard_index: {index} is not below shard_count {count}"
        );
        Ok(Self { index, count })
    }

    /// `<index>-of-<count>`.
    pub fn name(&self) -> String {
        format!("{}-of-{}", self.index, self.count)
    }

    /// The durable consumer name of this shard.
    pub fn durable(&self) -> String {
        posbon_bus::subjects::escalator_durable(self.index, self.count)
    }

    /// Whether this shard owns `mahalla_id` (`None`: an unassigned event,
    /// owned by shard 0).
    pub fn owns(&self, mahalla_id: Option<&str>) -> bool {
        match mahalla_id {
            None => self.index == 0,
            Some(id) => {
                posbon_store::stable_hash(id.as_bytes()) % u64::from(self.count)
                    == u64::from(self.index)
            }
        }
    }
}

/// What a checkpoint holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The shard that wrote it.
    pub shard: String,
    /// The last EVENTS sequence the state covers.
    pub sequence: u64,
    /// Per mahalla: the last EVENTS sequence its state covers, when it differs
    /// from `sequence` (a mahalla taken over from an older shard).
    #[serde(default)]
    pub covered: BTreeMap<String, u64>,
    /// Newest event time seen (ms since the epoch).
    pub max_event_ms: Option<i64>,
    /// The next event-time tick (ms since the epoch).
    pub next_tick_ms: Option<i64>,
    /// The engine.
    pub engine: EngineSnapshot,
    /// Escalations produced and not yet published.
    pub outbox: Vec<Escalation>,
}

struct EscalatorMetrics {
    applied: Counter,
    skipped: Counter,
    late: Counter,
    invalid: Counter,
    escalations: Counter,
    checkpoint_seconds: Histogram,
    watermark_lag: Gauge,
    lag: Gauge,
}

impl EscalatorMetrics {
    fn new(metrics: &Metrics) -> Result<Self, TelemetryError> {
        Ok(Self {
            applied: metrics.counter(
                "posbon_escalator_events_applied_total",
                "EVENTS messages applied to the risk state",
            )?,
            skipped: metrics.counter(
                "posbon_escalator_events_skipped_total",
                "EVENTS messages of other shards or already covered by the state",
            )?,
            late: metrics.counter(
                "posbon_escalator_late_events_total",
                "Events older than the watermark (applied exactly all the same)",
            )?,
            invalid: metrics.counter(
                "posbon_escalator_invalid_messages_total",
                "EVENTS messages that are not enriched events (terminated)",
            )?,
            escalations: metrics.counter(
                "posbon_escalations_published_total",
                "Escalations published to ALERTS",
            )?,
            checkpoint_seconds: metrics.histogram(
                "posbon_escalator_checkpoint_seconds",
                "Time to write a checkpoint",
                posbon_telemetry::DEFAULT_LATENCY_BUCKETS,
            )?,
            watermark_lag: metrics.gauge(
                "posbon_escalator_watermark_lag_seconds",
                "Wall clock minus the newest event time seen",
            )?,
            lag: metrics.gauge(
                "posbon_escalator_consumer_lag",
                "EVENTS messages not yet applied by this shard",
            )?,
        })
    }
}

/// The escalator's state machine around the engine: sharding, watermark,
/// ticks, sequence, outbox. No I/O.
pub struct Escalator {
    shard: Shard,
    engine: Engine,
    sequence: u64,
    covered: HashMap<String, u64>,
    lateness: TimeDelta,
    tick: TimeDelta,
    max_event: Option<DateTime<Utc>>,
    next_tick: Option<DateTime<Utc>>,
    outbox: Vec<Escalation>,
}

/// What [`Escalator::apply`] did with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Applied to the state.
    Applied {
        /// Older than the watermark.
        late: bool,
    },
    /// Another shard's, or already covered by the state.
    Skipped,
    /// Stamped further ahead of its ingestion than
    /// [`MAX_AHEAD_OF_INGEST`]: ingest refuses such events, so this one did
    /// not come through it, and applying it would move the watermark (and
    /// every tick) into the future.
    OutOfWindow,
}

/// How far ahead of its ingestion an event may be stamped and still be
/// applied (ingest's own limit, `ingest.max_future_secs`, is 5 minutes by
/// default).
pub const MAX_AHEAD_OF_INGEST: chrono::TimeDelta = chrono::TimeDelta::hours(1);

impl std::fmt::Debug for Escalator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Escalator")
            .field("shard", &self.shard)
            .field("sequence", &self.sequence)
            .field("max_event", &self.max_event)
            .field("outbox", &self.outbox.len())
            .finish_non_exhaustive()
    }
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_millis(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_millis(ms)
}

impl Escalator {
    /// A fresh escalator for `shard`.
    pub fn new(
        shard: Shard,
        engine: Engine,
        allowed_lateness: Duration,
        tick: Duration,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            shard,
            engine,
            sequence: 0,
            covered: HashMap::new(),
            lateness: TimeDelta::from_std(allowed_lateness)?,
            tick: TimeDelta::from_std(tick)?,
            max_event: None,
            next_tick: None,
            outbox: Vec::new(),
        })
    }

    /// The last EVENTS sequence applied.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// The watermark: newest event time minus the allowed lateness.
    pub fn watermark(&self) -> Option<DateTime<Utc>> {
        self.max_event.map(|t| t - self.lateness)
    }

    /// The newest event time seen.
    pub fn max_event(&self) -> Option<DateTime<Utc>> {
        self.max_event
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Escalations waiting to be published.
    pub fn outbox(&self) -> &[Escalation] {
        &self.outbox
    }

    /// Drops the first `n` escalations of the outbox (published).
    pub fn published(&mut self, n: usize) {
        self.outbox.drain(..n.min(self.outbox.len()));
    }

    /// Applies the EVENTS message with stream sequence `sequence`.
    pub fn apply(&mut self, sequence: u64, event: &EnrichedEvent) -> Applied {
        if sequence <= self.sequence {
            return Applied::Skipped;
        }
        self.sequence = sequence;
        let mahalla = event.mahalla_id.as_deref();
        if !self.shard.owns(mahalla) {
            return Applied::Skipped;
        }
        if let Some(m) = mahalla
            && let Some(&covered) = self.covered.get(m)
        {
            if sequence <= covered {
                return Applied::Skipped;
            }
            self.covered.remove(m);
        }
        let at = event.event.occurred_at().with_timezone(&Utc);
        if at > event.ingested_at + MAX_AHEAD_OF_INGEST {
            return Applied::OutOfWindow;
        }
        let late = self.watermark().is_some_and(|w| at < w);
        self.engine.apply(event, &mut self.outbox);
        if self.max_event.is_none_or(|m| at > m) {
            self.max_event = Some(at);
        }
        self.tick_until_watermark();
        Applied::Applied { late }
    }

    /// Ticks the engine at every tick boundary the watermark passed.
    fn tick_until_watermark(&mut self) {
        let Some(watermark) = self.watermark() else {
            return;
        };
        let next = *self.next_tick.get_or_insert_with(|| {
            let ms = millis(watermark);
            let step = self.tick.num_milliseconds().max(1);
            from_millis(ms - ms.rem_euclid(step) + step).unwrap_or(watermark)
        });
        let mut next = next;
        while next <= watermark {
            self.engine.tick(next, &mut self.outbox);
            next += self.tick;
        }
        self.next_tick = Some(next);
    }

    /// Ticks the engine at `now` when nothing arrived for a while (the caller
    /// decides when); `now` earlier than the newest event time is ignored.
    pub fn idle_tick(&mut self, now: DateTime<Utc>) {
        if self.max_event.is_some_and(|m| now > m) {
            self.engine.tick(now, &mut self.outbox);
        }
    }

    /// The checkpoint of the current state.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            shard: self.shard.name(),
            sequence: self.sequence,
            covered: self.covered.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            max_event_ms: self.max_event.map(millis),
            next_tick_ms: self.next_tick.map(millis),
            engine: self.engine.snapshot(),
            outbox: self.outbox.clone(),
        }
    }

    /// Restores this shard's own checkpoint.
    pub fn restore(
        shard: Shard,
        config: RiskConfig,
        registry: Arc<Registry>,
        checkpoint: Checkpoint,
        allowed_lateness: Duration,
        tick: Duration,
    ) -> anyhow::Result<Self> {
        let engine = Engine::restore(config, registry, checkpoint.engine)?;
        let mut this = Self::new(shard, engine, allowed_lateness, tick)?;
        this.sequence = checkpoint.sequence;
        this.covered = checkpoint.covered.into_iter().collect();
        this.max_event = checkpoint.max_event_ms.and_then(from_millis);
        this.next_tick = checkpoint.next_tick_ms.and_then(from_millis);
        this.outbox = checkpoint.outbox;
        Ok(this)
    }

    /// A new shard's escalator built from the checkpoints of earlier shards:
    /// each owned mahalla from the newest checkpoint that holds it.
    pub fn take_over(
        shard: Shard,
        config: RiskConfig,
        registry: Arc<Registry>,
        others: Vec<Checkpoint>,
        allowed_lateness: Duration,
        tick: Duration,
    ) -> anyhow::Result<Self> {
        let engine = Engine::new(config.clone(), registry.clone())?;
        let mut this = Self::new(shard, engine, allowed_lateness, tick)?;
        if others.is_empty() {
            return Ok(this);
        }
        let mut best: HashMap<String, (u64, posbon_risk::MahallaState)> = HashMap::new();
        let mut oldest = u64::MAX;
        for checkpoint in others {
            let sequence = checkpoint.sequence;
            let max_event = checkpoint.max_event_ms.and_then(from_millis);
            let old = Engine::restore(config.clone(), registry.clone(), checkpoint.engine)?;
            let mut any = false;
            for m in registry.mahallas() {
                if !shard.owns(Some(&m.id)) {
                    continue;
                }
                let covered = checkpoint.covered.get(&m.id).copied().unwrap_or(sequence);
                if let Some(state) = old.export_mahalla(&m.id)
                    && best.get(&m.id).is_none_or(|(s, _)| covered > *s)
                {
                    best.insert(m.id.clone(), (covered, state));
                    any = true;
                }
            }
            if any {
                oldest = oldest.min(sequence);
                this.max_event = this.max_event.max(max_event);
            }
        }
        for (id, (covered, state)) in best {
            this.engine.import_mahalla(&id, state)?;
            this.covered.insert(id, covered);
        }
        if oldest != u64::MAX {
            this.sequence = oldest;
            this.covered.retain(|_, c| *c > oldest);
        }
        Ok(this)
    }

    /// The risk snapshot of the raised mahallas.
    pub fn risk_snapshot(&self) -> RiskSnapshot {
        let mahallas = self
            .engine
            .raised()
            .into_iter()
            .map(|v| MahallaRisk {
                hot_cells: self.engine.hot_cells(&v.mahalla_id),
                mahalla_id: v.mahalla_id,
                level: v.level,
                score: if v.score.is_finite() { v.score } else { 0.0 },
                since: v.since,
            })
            .collect();
        RiskSnapshot {
            shard: self.shard.name(),
            sequence: self.sequence,
            watermark: self.watermark(),
            written_at: Utc::now(),
            mahallas,
        }
    }
}

/// The checkpoint of shard `name`, if any.
pub async fn read_checkpoint(store: &Store, name: &str) -> anyhow::Result<Option<Checkpoint>> {
    let Some(head) = store.checkpoint(&format!("{STATE_PREFIX}{name}")).await? else {
        return Ok(None);
    };
    let head: StateHead = serde_json::from_slice(&head)
        .map_err(|e| anyhow::anyhow!("checkpoint head of shard {name} is unreadable: {e}"))?;
    let mut bytes = Vec::with_capacity(usize::try_from(head.bytes).unwrap_or(0));
    for n in 0..head.chunks {
        let chunk = store
            .checkpoint(&format!("{CHUNK_PREFIX}{name}/{n:06}"))
            .await?
            .ok_or_else(|| anyhow::anyhow!("checkpoint of shard {name}: chunk {n} is missing"))?;
        bytes.extend_from_slice(&chunk);
    }
    let checkpoint = serde_json::from_slice(&bytes)
        .map_err(|e| anyhow::anyhow!("checkpoint of shard {name} is unreadable: {e}"))?;
    Ok(Some(checkpoint))
}

/// Loads the escalator for `shard`: its own checkpoint, or a take-over from
/// other shards' checkpoints, or a fresh start.
pub async fn load(
    store: &Store,
    shard: Shard,
    risk: RiskConfig,
    registry: Arc<Registry>,
    config: &EscalatorConfig,
) -> anyhow::Result<Escalator> {
    let lateness = Duration::from_secs(config.allowed_lateness_secs);
    let tick = Duration::from_secs(config.tick_secs);
    if let Some(checkpoint) = read_checkpoint(store, &shard.name()).await? {
        tracing::info!(shard = %shard.name(), sequence = checkpoint.sequence, "restoring checkpoint");
        return Escalator::restore(shard, risk, registry, checkpoint, lateness, tick);
    }
    let (start, end) = prefix_range(&checkpoint_key(STATE_PREFIX));
    let heads: Vec<_> = store.scan_stream(start, end, 64).try_collect().await?;
    let mut others = Vec::new();
    for (key, _) in heads {
        let name = String::from_utf8_lossy(&key[1 + STATE_PREFIX.len()..]).into_owned();
        match read_checkpoint(store, &name).await {
            Ok(Some(c)) => others.push(c),
            Ok(None) => {}
            Err(e) => tracing::warn!(shard = %name, error = %e, "unreadable checkpoint ignored"),
        }
    }
    if !others.is_empty() {
        tracing::info!(
            shard = %shard.name(),
            from = ?others.iter().map(|c| c.shard.clone()).collect::<Vec<_>>(),
            "taking over mahallas from other shards' checkpoints"
        );
    }
    Escalator::take_over(shard, risk, registry, others, lateness, tick)
}

async fn save(
    store: &Store,
    escalator: &Escalator,
    metrics: &EscalatorMetrics,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let snapshot = Snapshot::of(escalator);
    let (state, risk) = snapshot.encode()?;
    write(store, &snapshot.shard, snapshot.sequence, state, risk).await?;
    metrics
        .checkpoint_seconds
        .observe(started.elapsed().as_secs_f64());
    Ok(())
}

/// After a checkpoint write: acknowledges the deliveries it covers, or, when
/// it failed, keeps them for the next checkpoint.
async fn settle(
    written: Result<anyhow::Result<()>, tokio::task::JoinError>,
    acks: Vec<Delivery>,
    to_ack: &mut Vec<Delivery>,
    dirty: &mut bool,
    consumer: &dyn posbon_bus::Consumer,
    m: &EscalatorMetrics,
) {
    match written.map_err(anyhow::Error::from).and_then(|r| r) {
        Ok(()) => {
            for d in acks {
                if let Err(err) = d.ack().await {
                    tracing::warn!(error = %err, "ack failed; the message will be redelivered and skipped");
                }
            }
            if let Ok(lag) = consumer.pending().await {
                m.lag.set(i64::try_from(lag.total()).unwrap_or(i64::MAX));
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, "checkpoint failed; retrying");
            to_ack.splice(0..0, acks);
            *dirty = true;
        }
    }
}

/// A copy of what a checkpoint stores, taken in the consume loop and encoded
/// and written off it.
struct Snapshot {
    shard: String,
    sequence: u64,
    checkpoint: Checkpoint,
    risk: RiskSnapshot,
}

impl Snapshot {
    fn of(escalator: &Escalator) -> Self {
        Self {
            shard: escalator.shard.name(),
            sequence: escalator.sequence,
            checkpoint: escalator.checkpoint(),
            risk: escalator.risk_snapshot(),
        }
    }

    fn encode(&self) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
        Ok((
            serde_json::to_vec(&self.checkpoint)?,
            serde_json::to_vec(&self.risk)?,
        ))
    }
}

/// Encodes and writes `snapshot` on the blocking pool and the store, off the
/// consume loop.
async fn save_snapshot(
    store: Store,
    snapshot: Snapshot,
    checkpoint_seconds: Histogram,
    started: Instant,
) -> anyhow::Result<()> {
    let (snapshot, (state, risk)) = tokio::task::spawn_blocking(move || {
        let encoded = snapshot.encode();
        encoded.map(|e| (snapshot, e))
    })
    .await??;
    write(&store, &snapshot.shard, snapshot.sequence, state, risk).await?;
    checkpoint_seconds.observe(started.elapsed().as_secs_f64());
    Ok(())
}

/// Writes an encoded checkpoint (state in chunks, its head, the risk
/// snapshot) in one atomic batch.
async fn write(
    store: &Store,
    shard: &str,
    sequence: u64,
    state: Vec<u8>,
    risk: Vec<u8>,
) -> anyhow::Result<()> {
    let mut batch = Vec::with_capacity(state.len() / CHUNK_BYTES + 3);
    let mut chunks = 0u32;
    for (n, chunk) in state.chunks(CHUNK_BYTES).enumerate() {
        batch.push((
            checkpoint_key(&format!("{CHUNK_PREFIX}{shard}/{n:06}")),
            chunk.to_vec(),
        ));
        chunks += 1;
    }
    let head = StateHead {
        sequence,
        chunks,
        bytes: state.len() as u64,
    };
    batch.push((
        checkpoint_key(&format!("{STATE_PREFIX}{shard}")),
        serde_json::to_vec(&head)?,
    ));
    batch.push((
        checkpoint_key(&format!("{RISK_SNAPSHOT_PREFIX}{shard}")),
        risk,
    ));
    // One atomic batch: the head never points at chunks of another state.
    store.put_batch(batch).await?;
    Ok(())
}

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
pub async fn run(
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

/// The consuming loop alone (what `posbon standalone` runs, with its own HTTP).
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
    let shard = config.shard()?;
    let m = EscalatorMetrics::new(metrics)?;
    let mut escalator = load(&store, shard, risk, registry, &config).await?;
    let consumer = bus
        .consumer(
            EVENTS_STREAM,
            &shard.durable(),
            vec![],
            ConsumerOptions {
                ack_wait: Duration::from_secs(config.ack_wait_secs),
                max_ack_pending: 50_000,
                deliver_policy: DeliverPolicy::FromSequence(escalator.sequence() + 1),
                ..ConsumerOptions::default()
            },
        )
        .await?;
    tracing::info!(shard = %shard.name(), sequence = escalator.sequence(), "escalator consuming EVENTS");
    let wait = Duration::from_millis(config.fetch_wait_ms.max(1));
    let checkpoint_every = Duration::from_secs(config.checkpoint_secs);
    let idle_after = Duration::from_secs(config.tick_secs);
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
            publish(&*bus, &mut escalator, &m).await;
            unsaved_escalations = true;
        }
        // A checkpoint written: acknowledge what it covers.
        if in_flight.as_ref().is_some_and(|(h, _)| h.is_finished())
            && let Some((written, acks)) = in_flight.take()
        {
            settle(written.await, acks, &mut to_ack, &mut dirty, &*consumer, &m).await;
        }
        // Checkpoints are encoded and written off this loop, one at a time,
        // so events keep flowing while a large state is saved.
        if in_flight.is_none()
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
        settle(written.await, acks, &mut to_ack, &mut dirty, &*consumer, &m).await;
    }
    // Shutting down: publish what is left, checkpoint, ack.
    publish(&*bus, &mut escalator, &m).await;
    save(&store, &escalator, &m).await?;
    for d in to_ack {
        let _ = d.ack().await;
    }
    Ok(())
}

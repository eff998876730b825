//! The checkpoint of a shard: its format (a head and the state in chunks),
//! reading, loading (its own, or taken over from other shards') and writing
//! off the consume loop.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt as _;
use posbon_bus::Delivery;
use posbon_geo::Registry;
use posbon_model::{Escalation, RISK_SNAPSHOT_PREFIX, RiskSnapshot};
use posbon_risk::{EngineSnapshot, RiskConfig};
use posbon_store::keys::prefix_range;
use posbon_store::{EventStoreExt as _, Store, checkpoint_key};
use posbon_telemetry::Histogram;
use serde::{Deserialize, Serialize};

use crate::config::EscalatorConfig;
use crate::engine::Escalator;
use crate::metrics::EscalatorMetrics;
use crate::shard::Shard;

/// Checkpoint name prefix of the escalator's state: `<prefix><shard>` holds a
/// [`StateHead`], the state itself is in chunks under [`CHUNK_PREFIX`].
pub const STATE_PREFIX: &str = "escalator/state/";
/// Checkpoint name prefix of state chunks: `<prefix><shard>/<generation>/<n>`
/// (16 hex digits, 6 decimal digits); `<prefix><shard>/<n>` in checkpoints
/// written before generations.
pub const CHUNK_PREFIX: &str = "escalator/chunk/";
/// Largest chunk of a checkpoint (store values are limited to 1 MiB).
pub const CHUNK_BYTES: usize = 768 * 1024;

/// The head of a shard's checkpoint: which chunks hold its state.
///
/// A checkpoint is written in three steps, each finished before the next:
/// the chunks of a new generation, then the head that points at them (with
/// the risk snapshot), then the removal of every other generation's chunks.
/// No step needs a multi-key atomic write (TiKV's raw batches are not
/// atomic across requests), so a crash at any point leaves the previous
/// checkpoint or the new one readable, never a mix; a reader that finds a
/// chunk gone (a newer checkpoint replaced its head meanwhile) reads again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateHead {
    /// The last EVENTS sequence the state covers.
    pub sequence: u64,
    /// Number of chunks.
    pub chunks: u32,
    /// Total bytes of the JSON [`Checkpoint`].
    pub bytes: u64,
    /// The chunks' generation (`None`: written before generations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
}

/// The name of chunk `n` of `generation` of shard `shard`'s checkpoint.
fn chunk_name(shard: &str, generation: Option<u64>, n: u32) -> String {
    match generation {
        Some(g) => format!("{CHUNK_PREFIX}{shard}/{g:016x}/{n:06}"),
        None => format!("{CHUNK_PREFIX}{shard}/{n:06}"),
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

/// The checkpoint of shard `name`, if any.
pub async fn read_checkpoint(store: &Store, name: &str) -> anyhow::Result<Option<Checkpoint>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let Some(head) = store.checkpoint(&format!("{STATE_PREFIX}{name}")).await? else {
            return Ok(None);
        };
        let head: StateHead = serde_json::from_slice(&head)
            .map_err(|e| anyhow::anyhow!("checkpoint head of shard {name} is unreadable: {e}"))?;
        let mut bytes = Vec::with_capacity(usize::try_from(head.bytes).unwrap_or(0));
        let mut missing = None;
        for n in 0..head.chunks {
            match store
                .checkpoint(&chunk_name(name, head.generation, n))
                .await?
            {
                Some(chunk) => bytes.extend_from_slice(&chunk),
                None => {
                    missing = Some(n);
                    break;
                }
            }
        }
        match missing {
            // Replaced by a newer checkpoint while it was read: read that one.
            Some(_) if attempt < 5 => continue,
            Some(n) => anyhow::bail!("checkpoint of shard {name}: chunk {n} is missing"),
            None => {}
        }
        anyhow::ensure!(
            bytes.len() as u64 == head.bytes,
            "checkpoint of shard {name}: {} bytes in its chunks, its head says {}",
            bytes.len(),
            head.bytes
        );
        let checkpoint = serde_json::from_slice(&bytes)
            .map_err(|e| anyhow::anyhow!("checkpoint of shard {name} is unreadable: {e}"))?;
        return Ok(Some(checkpoint));
    }
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

pub(crate) async fn save(
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
pub(crate) async fn settle(
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
pub(crate) struct Snapshot {
    shard: String,
    sequence: u64,
    checkpoint: Checkpoint,
    risk: RiskSnapshot,
}

impl Snapshot {
    pub(crate) fn of(escalator: &Escalator) -> Self {
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
pub(crate) async fn save_snapshot(
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

/// Writes an encoded checkpoint: the state's chunks as a new generation,
/// then its head with the risk snapshot, then the removal of the other
/// generations' chunks (see [`StateHead`]).
pub(crate) async fn write(
    store: &Store,
    shard: &str,
    sequence: u64,
    state: Vec<u8>,
    risk: Vec<u8>,
) -> anyhow::Result<()> {
    // Unique per checkpoint: microseconds since 1970 (one writer per shard,
    // a checkpoint at most every few milliseconds), never reused.
    let generation = u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(0);
    let mut chunks = 0u32;
    let mut batch = Vec::with_capacity(state.len() / CHUNK_BYTES + 1);
    for (n, chunk) in (0u32..).zip(state.chunks(CHUNK_BYTES)) {
        batch.push((
            checkpoint_key(&chunk_name(shard, Some(generation), n)),
            chunk.to_vec(),
        ));
        chunks += 1;
    }
    store.put_batch(batch).await?;
    let head = StateHead {
        sequence,
        chunks,
        bytes: state.len() as u64,
        generation: Some(generation),
    };
    store
        .put_batch(vec![
            (
                checkpoint_key(&format!("{STATE_PREFIX}{shard}")),
                serde_json::to_vec(&head)?,
            ),
            (
                checkpoint_key(&format!("{RISK_SNAPSHOT_PREFIX}{shard}")),
                risk,
            ),
        ])
        .await?;
    // Every other generation (and chunks of the layout before generations).
    let (all_start, all_end) = prefix_range(&checkpoint_key(&format!("{CHUNK_PREFIX}{shard}/")));
    let (this_start, this_end) = prefix_range(&checkpoint_key(&format!(
        "{CHUNK_PREFIX}{shard}/{generation:016x}/"
    )));
    store.delete_range(&all_start, &this_start).await?;
    store.delete_range(&this_end, &all_end).await?;
    Ok(())
}

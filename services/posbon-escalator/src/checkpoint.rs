//! The checkpoint of a shard: its format (a head and the state in chunks),
//! reading, loading (its own, or taken over from other shards') and writing
//! off the consume loop.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use futures::TryStreamExt as _;
use posbon_bus::Delivery;
use posbon_geo::Registry;
use posbon_model::{Escalation, RISK_SNAPSHOT_PREFIX, RiskSnapshot};
use posbon_risk::{EngineSnapshot, RiskConfig};
use posbon_store::keys::prefix_range;
use posbon_store::{DocumentStoreExt as _, EventStoreExt as _, Store, checkpoint_key};
use posbon_telemetry::Histogram;
use serde::{Deserialize, Serialize};

use crate::config::EscalatorConfig;
use crate::engine::Escalator;
use crate::metrics::EscalatorMetrics;
use crate::shard::Shard;

/// Document kind of the escalator's state: key = the shard's name, value =
/// the JSON [`Checkpoint`] ([`posbon_store::documents`]: written so that a
/// crash at any point leaves the previous checkpoint or the new one).
pub(crate) const STATE_KIND: &str = "escalator-state";
/// Checkpoint name prefix of the state as earlier releases wrote it (still
/// read): `<prefix><shard>` holds a [`StateHead`], the state is in chunks
/// under [`CHUNK_PREFIX`].
pub(crate) const STATE_PREFIX: &str = "escalator/state/";
/// Checkpoint name prefix of the chunks of earlier releases:
/// `<prefix><shard>/<n>`.
pub(crate) const CHUNK_PREFIX: &str = "escalator/chunk/";

/// The head of a shard's checkpoint as earlier releases wrote it: how many
/// chunks hold its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StateHead {
    /// The last EVENTS sequence the state covers.
    pub(crate) sequence: u64,
    /// Number of chunks.
    pub(crate) chunks: u32,
    /// Total bytes of the JSON [`Checkpoint`].
    pub(crate) bytes: u64,
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
    let bytes = match store.get_document(STATE_KIND, name).await? {
        Some(bytes) => bytes,
        None => match read_legacy(store, name).await? {
            Some(bytes) => bytes,
            None => return Ok(None),
        },
    };
    let checkpoint = serde_json::from_slice(&bytes)
        .map_err(|e| anyhow::anyhow!("checkpoint of shard {name} is unreadable: {e}"))?;
    Ok(Some(checkpoint))
}

/// The state of shard `name` as earlier releases stored it, if any.
async fn read_legacy(store: &Store, name: &str) -> anyhow::Result<Option<Vec<u8>>> {
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
    Ok(Some(bytes))
}

/// The names of the shards with a checkpoint.
async fn checkpointed_shards(store: &Store) -> anyhow::Result<Vec<String>> {
    let mut names: std::collections::BTreeSet<String> = store
        .document_keys(STATE_KIND, "", "")
        .await?
        .into_iter()
        .collect();
    let (start, end) = prefix_range(&checkpoint_key(STATE_PREFIX));
    let heads: Vec<_> = store.scan_stream(start, end, 64).try_collect().await?;
    names.extend(
        heads
            .iter()
            .map(|(key, _)| String::from_utf8_lossy(&key[1 + STATE_PREFIX.len()..]).into_owned()),
    );
    Ok(names.into_iter().collect())
}

/// Loads the escalator for `shard`: its own checkpoint, or a take-over from
/// other shards' checkpoints, or a fresh start.
pub(crate) async fn load(
    store: &Store,
    shard: Shard,
    risk: RiskConfig,
    registry: Arc<Registry>,
    config: &EscalatorConfig,
) -> anyhow::Result<Escalator> {
    let lateness = config.allowed_lateness.to_std();
    let tick = config.tick.to_std();
    if let Some(checkpoint) = read_checkpoint(store, &shard.name()).await? {
        tracing::info!(shard = %shard.name(), sequence = checkpoint.sequence, "restoring checkpoint");
        return Escalator::restore(shard, risk, registry, checkpoint, lateness, tick);
    }
    let mut others = Vec::new();
    for name in checkpointed_shards(store).await? {
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
    write(store, &snapshot.shard, state, risk).await?;
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
    checkpoint: Checkpoint,
    risk: RiskSnapshot,
}

impl Snapshot {
    pub(crate) fn of(escalator: &Escalator) -> Self {
        Self {
            shard: escalator.shard.name(),
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
    write(&store, &snapshot.shard, state, risk).await?;
    checkpoint_seconds.observe(started.elapsed().as_secs_f64());
    Ok(())
}

/// Writes an encoded checkpoint: the state as a document, then the risk
/// snapshot; the first time in this process, the state as earlier releases
/// stored it is removed afterwards.
pub(crate) async fn write(
    store: &Store,
    shard: &str,
    state: Vec<u8>,
    risk: Vec<u8>,
) -> anyhow::Result<()> {
    store.put_document(STATE_KIND, shard, &state).await?;
    store
        .put_batch(vec![(
            checkpoint_key(&format!("{RISK_SNAPSHOT_PREFIX}{shard}")),
            risk,
        )])
        .await?;
    static MIGRATED: std::sync::Mutex<BTreeSet<String>> = std::sync::Mutex::new(BTreeSet::new());
    let first = MIGRATED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(shard.to_owned());
    if first {
        let head = checkpoint_key(&format!("{STATE_PREFIX}{shard}"));
        store
            .delete_range(&head, &posbon_store::keys::successor(&head))
            .await?;
        let (start, end) = prefix_range(&checkpoint_key(&format!("{CHUNK_PREFIX}{shard}/")));
        store.delete_range(&start, &end).await?;
    }
    Ok(())
}

//! [`Escalator`]: the state machine around the risk engine (sharding,
//! watermark, ticks, sequence, outbox). No I/O.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use posbon_geo::Registry;
use posbon_model::{EnrichedEvent, Escalation, MahallaRisk, RiskSnapshot};
use posbon_risk::{Engine, RiskConfig};

use crate::checkpoint::Checkpoint;
use crate::shard::Shard;

/// The escalator's state machine around the engine: sharding, watermark,
/// ticks, sequence, outbox. No I/O.
pub struct Escalator {
    pub(crate) shard: Shard,
    pub(crate) engine: Engine,
    pub(crate) sequence: u64,
    pub(crate) covered: HashMap<String, u64>,
    pub(crate) lateness: TimeDelta,
    pub(crate) tick: TimeDelta,
    pub(crate) max_event: Option<DateTime<Utc>>,
    pub(crate) next_tick: Option<DateTime<Utc>>,
    pub(crate) outbox: Vec<Escalation>,
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
/// applied (ingest's own limit, `ingest.max_future`, is 5 minutes by
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

pub(crate) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> Option<DateTime<Utc>> {
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
    pub(crate) fn sequence(&self) -> u64 {
        self.sequence
    }

    /// The watermark: newest event time minus the allowed lateness.
    pub fn watermark(&self) -> Option<DateTime<Utc>> {
        self.max_event.map(|t| t - self.lateness)
    }

    /// The newest event time seen.
    pub(crate) fn max_event(&self) -> Option<DateTime<Utc>> {
        self.max_event
    }

    /// Escalations waiting to be published.
    pub fn outbox(&self) -> &[Escalation] {
        &self.outbox
    }

    /// Drops the first `n` escalations of the outbox (published).
    pub(crate) fn published(&mut self, n: usize) {
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
    pub(crate) fn idle_tick(&mut self, now: DateTime<Utc>) {
        if self.max_event.is_some_and(|m| now > m) {
            self.engine.tick(now, &mut self.outbox);
        }
    }

    /// The checkpoint of the current state.
    pub(crate) fn checkpoint(&self) -> Checkpoint {
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
    pub(crate) fn restore(
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
    pub(crate) fn take_over(
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
    pub(crate) fn risk_snapshot(&self) -> RiskSnapshot {
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

//! The engine on a simulated stream, scored against the simulator's ground
//! truth (feature `sim`).
//!
//! [`evaluate_report`] generates a registry (the simulated Tashkent city unless
//! one is given), runs `posbon-sim`'s event stream through the engine with a
//! tick every few minutes of event time, and scores the escalations with
//! [`crate::evaluation::evaluate`] against the injected drug hand-off hotspots
//! and fraud waves. The first `warmup_days` build the baselines and are not
//! scored: a fresh engine has no history, and a real deployment replays
//! history before it goes live.
//!
//! What the simulator's ground truth ([`posbon_sim::Truth`]) records, and how
//! it is used here: each injection has a kind (`drug_handoff_hotspot`: a burst
//! of `drug_handoff` detections with confidence ≥ 0.8 at one camera, inside its
//! res-10 cell and the neighbouring cells, over 6–36 h; `fraud_wave`: a burst
//! of fraud flags of one scheme in one mahalla over 2–6 h, front-loaded), its
//! mahalla, start and end, cells and event ids. Near-repeat follow-ups and the
//! heavy-tailed background (most mahallas quiet for days) are not recorded:
//! they are the normal life of the city that must not escalate.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use posbon_geo::{Registry, RegistryOptions};
use posbon_model::{CellId, EnrichedEvent, Escalation};
use posbon_sim::{
    CityOptions, EventOptions, EventStream, InjectionKind, SimBody, SimRegistry, Truth,
};

use crate::config::{ConfigError, RiskConfig};
use crate::engine::{Engine, Footprint};
use crate::evaluation::{EvalOptions, Evaluation, TruthEpisode, evaluate};
use posbon_model::Span;

/// What to simulate and how to score it.
#[derive(Debug, Clone)]
pub struct SimEvalOptions {
    /// Seed of the event stream.
    pub seed: u64,
    /// Mean events per hour over the registry.
    pub rate_per_hour: f64,
    /// Days that build the baselines, not scored.
    pub warmup_days: u32,
    /// Days scored after the warm-up.
    pub scored_days: u32,
    /// A registry GeoJSON; `None` for the simulated Tashkent city (default seed).
    pub registry_geojson: Option<Vec<u8>>,
    /// Tick interval (event time).
    pub tick: Span,
    /// The engine's configuration.
    pub config: RiskConfig,
}

impl Default for SimEvalOptions {
    fn default() -> Self {
        Self {
            seed: 7,
            rate_per_hour: 2000.0,
            warmup_days: 4,
            scored_days: 7,
            registry_geojson: None,
            tick: Span::from_minutes(5),
            config: RiskConfig::default(),
        }
    }
}

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimEvalError {
    /// The simulator refused the options or failed.
    #[error("simulator: {0}")]
    Sim(#[from] posbon_sim::SimError),
    /// The registry did not load.
    #[error("registry: {0}")]
    Registry(#[from] posbon_geo::RegistryError),
    /// The risk configuration is invalid.
    #[error("risk configuration: {0}")]
    Config(#[from] ConfigError),
    /// Bad options.
    #[error("{0}")]
    Options(String),
}

/// The outcome of [`evaluate_report`]; `Display` prints the report.
#[derive(Debug, Clone)]
pub struct EvalReport {
    /// Seed of the stream.
    pub seed: u64,
    /// Mean events per hour.
    pub rate_per_hour: f64,
    /// Warm-up days.
    pub warmup_days: u32,
    /// Scored days.
    pub scored_days: u32,
    /// Mahallas in the registry.
    pub mahallas: usize,
    /// Events applied.
    pub events: u64,
    /// Events outside every mahalla.
    pub unassigned: u64,
    /// Injected episodes in the whole stream.
    pub injected: usize,
    /// Escalations in the whole run, by rule.
    pub escalations_by_rule: BTreeMap<String, usize>,
    /// The scores.
    pub evaluation: Evaluation,
    /// Engine state at the end.
    pub footprint: Footprint,
    /// Wall time of the engine alone, seconds.
    pub engine_seconds: f64,
    /// Wall time of the whole run (generation included), seconds.
    pub total_seconds: f64,
}

/// The simulator's injections as plain episodes.
pub fn truth_episodes(truth: &Truth) -> Vec<TruthEpisode> {
    truth
        .injections
        .iter()
        .map(|i| TruthEpisode {
            kind: match i.kind {
                InjectionKind::DrugHandoffHotspot => "drug_handoff_hotspot",
                InjectionKind::FraudWave => "fraud_wave",
            }
            .to_owned(),
            mahalla_id: i.mahalla_id.clone(),
            start: i.start.with_timezone(&Utc),
            end: i.end.with_timezone(&Utc),
            cells: i.cells.clone(),
        })
        .collect()
}

/// Everything a run produced, for tests that look further than the report.
#[derive(Debug)]
pub struct SimRun {
    /// Every escalation, in output order.
    pub escalations: Vec<Escalation>,
    /// The ground truth.
    pub truth: Truth,
    /// The engine at the end.
    pub engine: Engine,
    /// Start of the stream.
    pub start: DateTime<Utc>,
    /// End of the stream.
    pub end: DateTime<Utc>,
    /// Mahallas in the registry.
    pub mahallas: usize,
    /// Events applied.
    pub events: u64,
    /// Events outside every mahalla.
    pub unassigned: u64,
    /// Wall time of the engine alone, seconds.
    pub engine_seconds: f64,
}

/// Generates the registry and stream of `options` and runs the engine over it.
pub fn run(options: &SimEvalOptions) -> Result<SimRun, SimEvalError> {
    if options.scored_days == 0 {
        return Err(SimEvalError::Options(
            "scored days must be at least 1".into(),
        ));
    }
    let geojson = match &options.registry_geojson {
        Some(bytes) => bytes.clone(),
        None => posbon_sim::city_registry(&CityOptions::default())?
            .to_geojson_string()
            .into_bytes(),
    };
    let registry = Arc::new(Registry::from_geojson(
        &geojson,
        &RegistryOptions::default(),
    )?);
    let sim_registry = Arc::new(SimRegistry::from_geojson(&geojson)?);
    let days = i64::from(options.warmup_days) + i64::from(options.scored_days);
    let events = EventOptions {
        seed: options.seed,
        rate_per_hour: options.rate_per_hour,
        duration: TimeDelta::days(days),
        ..EventOptions::default()
    };
    let start = events.start.with_timezone(&Utc);
    let end = events.end().with_timezone(&Utc);
    let mut stream = EventStream::new(sim_registry, &events)?;
    let mut engine = Engine::new(options.config.clone(), Arc::clone(&registry))?;
    let tick = options.tick.to_chrono();
    let mut next_tick = start + tick;
    let mut escalations = Vec::new();
    let (mut applied, mut unassigned) = (0u64, 0u64);
    let mut engine_time = std::time::Duration::ZERO;
    for item in stream.by_ref() {
        let SimBody::Valid { event, .. } = item.body else {
            continue;
        };
        let loc = event.location();
        let located = registry
            .locate(loc.lat, loc.lng)
            .map_err(|e| SimEvalError::Options(format!("event {}: {e}", event.id())))?;
        let Some(cell) = CellId::new(u64::from(located.cell)) else {
            continue;
        };
        let (mahalla_id, district_id, region_id) = match located.mahalla {
            Some(idx) => {
                let m = registry.mahalla(idx);
                (
                    Some(m.id.clone()),
                    Some(m.district_id.clone()),
                    Some(m.region_id.clone()),
                )
            }
            None => {
                unassigned += 1;
                (None, None, None)
            }
        };
        let at = event.occurred_at().with_timezone(&Utc);
        let enriched = EnrichedEvent {
            event: *event,
            cell,
            mahalla_id,
            district_id,
            region_id,
            ingested_at: at,
        };
        let t = Instant::now();
        while next_tick <= at {
            engine.tick(next_tick, &mut escalations);
            next_tick += tick;
        }
        engine.apply(&enriched, &mut escalations);
        engine_time += t.elapsed();
        applied += 1;
    }
    let t = Instant::now();
    while next_tick <= end {
        engine.tick(next_tick, &mut escalations);
        next_tick += tick;
    }
    engine_time += t.elapsed();
    Ok(SimRun {
        escalations,
        truth: stream.truth().clone(),
        engine,
        start,
        end,
        mahallas: registry.mahallas().len(),
        events: applied,
        unassigned,
        engine_seconds: engine_time.as_secs_f64(),
    })
}

/// Runs [`run`] and scores it: recall of the injected episodes within 2 h and
/// false escalations per 1,000 quiet mahalla-days over the scored days.
pub fn evaluate_report(options: &SimEvalOptions) -> Result<EvalReport, SimEvalError> {
    let started = Instant::now();
    let run = run(options)?;
    let from = run.start + TimeDelta::days(i64::from(options.warmup_days));
    let truth = truth_episodes(&run.truth);
    let evaluation = evaluate(
        &run.escalations,
        &truth,
        &EvalOptions::new(from, run.end, run.mahallas),
    );
    let mut escalations_by_rule = BTreeMap::new();
    for e in &run.escalations {
        *escalations_by_rule.entry(e.rule.clone()).or_insert(0) += 1;
    }
    Ok(EvalReport {
        seed: options.seed,
        rate_per_hour: options.rate_per_hour,
        warmup_days: options.warmup_days,
        scored_days: options.scored_days,
        mahallas: run.mahallas,
        events: run.events,
        unassigned: run.unassigned,
        injected: truth.len(),
        escalations_by_rule,
        evaluation,
        footprint: run.engine.footprint(),
        engine_seconds: run.engine_seconds,
        total_seconds: started.elapsed().as_secs_f64(),
    })
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "risk evaluation: seed {}, {} mahallas, {} events/h, {} warm-up + {} scored days",
            self.seed, self.mahallas, self.rate_per_hour, self.warmup_days, self.scored_days
        )?;
        writeln!(
            f,
            "events: {} ({} unassigned), injected episodes: {}",
            self.events, self.unassigned, self.injected
        )?;
        let rules: Vec<String> = self
            .escalations_by_rule
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        writeln!(f, "escalations (whole run): {}", rules.join(", "))?;
        writeln!(f, "{}", self.evaluation)?;
        writeln!(
            f,
            "targets: recall >= 90% -> {}; false <= 1 per 1,000 quiet mahalla-days -> {}",
            if self.evaluation.recall() >= 0.9 {
                "met"
            } else {
                "NOT met"
            },
            if self.evaluation.false_per_1000_quiet_days() <= 1.0 {
                "met"
            } else {
                "NOT met"
            }
        )?;
        write!(
            f,
            "engine: {:.2} s for {} events ({:.0} events/s, this build), run {:.1} s; state: {} mahallas, {} cells, {} recent events, {} rule hits",
            self.engine_seconds,
            self.events,
            self.events as f64 / self.engine_seconds.max(1e-9),
            self.total_seconds,
            self.footprint.mahallas,
            self.footprint.cells,
            self.footprint.recent_events,
            self.footprint.rule_hits
        )
    }
}

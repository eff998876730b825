//! Posbon risk model: harm weights, decayed intensity, baselines, levels with
//! hysteresis, pattern rules and hot cells. Pure and deterministic: no I/O,
//! no wall clock, no randomness. The escalator service wraps an [`Engine`].
//!
//! ```
//! use std::sync::Arc;
//! use chrono::{TimeZone, Utc};
//! use posbon_geo::{Registry, RegistryOptions};
//! use posbon_model::{CameraAlert, CellId, Detection, EnrichedEvent, Event, EventHeader, Location, RiskLevel};
//! use posbon_risk::{Engine, RiskConfig};
//!
//! let geojson = br#"{"type": "FeatureCollection", "features": [{"type": "Feature",
//!   "properties": {"id": "chilonzor-001", "name": "Qatortol", "district": "chilonzor", "region": "tashkent"},
//!   "geometry": {"type": "Polygon", "coordinates": [[[69.20, 41.28], [69.21, 41.28],
//!                [69.21, 41.29], [69.20, 41.29], [69.20, 41.28]]]}}]}"#;
//! let registry = Arc::new(Registry::from_geojson(geojson, &RegistryOptions::default())?);
//! let mut engine = Engine::new(RiskConfig::default(), registry.clone())?;
//!
//! let mut out = Vec::new();
//! for minute in [0, 20, 45] {
//!     let t = Utc.with_ymd_and_hms(2026, 11, 2, 21, minute, 0).unwrap();
//!     let event = Event::CameraAlert(CameraAlert {
//!         header: EventHeader {
//!             id: format!("cam-7-{minute}"),
//!             occurred_at: t.fixed_offset(),
//!             location: Location::new(41.2851, 69.2052),
//!             source: "safe-city-va".into(),
//!             attributes: Default::default(),
//!         },
//!         camera_id: "cam-7".into(),
//!         detection: Detection::DrugHandoff,
//!         confidence: 0.91,
//!         model: "va-3".into(),
//!         snapshot_uri: None,
//!     });
//!     let place = registry.locate(41.2851, 69.2052)?;
//!     let enriched = EnrichedEvent {
//!         event,
//!         cell: CellId::new(u64::from(place.cell)).unwrap(),
//!         mahalla_id: Some("chilonzor-001".into()),
//!         district_id: Some("chilonzor".into()),
//!         region_id: Some("tashkent".into()),
//!         ingested_at: t,
//!     };
//!     engine.apply(&enriched, &mut out);
//! }
//! // The third strong drug hand-off within 24 h at one spot escalates.
//! assert_eq!(out.len(), 1);
//! assert_eq!(out[0].id, "esc:chilonzor-001:drug_handoff_cluster:1");
//! assert_eq!(out[0].level, RiskLevel::High);
//! assert_eq!(engine.level("chilonzor-001").unwrap().level, RiskLevel::High);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The model
//!
//! **Harm weight.** Every event gets a weight from [`WeightsConfig`]: incident
//! category × severity, camera detection × confidence band, fraud scheme ×
//! amount band ([`HarmWeights`]). Weights are kept in steps of 1/256 so that
//! baselines are exact integer sums.
//!
//! **Decayed intensity**, per mahalla and per H3 cell: λ(t) = Σ wᵢ·e^(−(t−tᵢ)/τ)
//! with τ = half-life / ln 2 (3 h by default), kept as a sum anchored at a
//! reference time: adding an event of any time is O(1) and exact, so late
//! events count as if they had come in order. Two more sums ride along: the
//! decayed number of events, and Σ wᵢ²e^(−2(t−tᵢ)/τ) for the Kish effective
//! number of events.
//!
//! **Baseline**, per mahalla: harm by hour of the day over the trailing 28
//! whole local days (the current day never counts towards its own baseline),
//! times a day-of-week factor, each shrunk towards the mahalla's mean when it
//! rests on few events, and a weak prior for mahallas with little history.
//! From it, the expected intensity at any moment (the kernel integrated over
//! the hourly rates, in closed form).
//!
//! **Score** (count-aware, never a percent change): a decayed sum of a Poisson
//! stream has variance/mean = φ/2 with φ = E[w²]/E[w], so λ/(φ/2) behaves like
//! a Poisson count, compared with its expectation by the variance-stabilising
//! 2(√observed − √expected), divided by √(1 + E/n + E/k) for the uncertainty of
//! a baseline of n effective events and overdispersion k. The same is done for
//! the decayed number of events, and the score is the smaller of the two: the
//! harm must be unusual *and* come from an unusual number of events, so one
//! heavy incident on an ordinary day does not raise a mahalla. Each level also
//! asks for a minimum Kish effective number of events.
//!
//! **Levels** `normal < elevated < high < critical` with hysteresis: a level is
//! entered when the score reaches its entry threshold (at once) and left only
//! when the score is below its exit threshold *and* the level has been held
//! for `min_dwell`, evaluated on every event of the mahalla and on every tick,
//! so a mahalla also calms down when nothing happens. A score cannot raise a
//! level before `min_baseline` of history. Every rise is an [`Escalation`]
//! (rule [`SCORE_RULE`]); going down is visible in [`Engine::level`].
//!
//! **Pattern rules** ([`RuleConfig`]): a filter (kinds, categories, severity,
//! detections, confidence, schemes, amount), a window, a group (the mahalla,
//! or an H3 cell with its grid-disk neighbours, unassigned events included), a
//! count or harm threshold, optionally a standard score against the group's
//! own trailing baseline (`min_z`), and the level the mahalla is raised to
//! while the rule's episode is open. A new episode is a new escalation; so is
//! a cell cluster at a new site, or at an old one after a pause of `max_idle`.
//! Shipped: a drug hand-off camera cluster and a fraud wave. A rule's baseline
//! does not learn the events of its own open episodes.
//!
//! **Hot cells**: Getis-Ord Gi* of the cells' decayed harm over H3 neighbours
//! (binary weights, the cell included; the study area is the occupied cells
//! plus their ring, zero-filled), attached to every escalation.
//!
//! **Determinism and sharding.** The clock is event time (the latest event or
//! tick seen); the same inputs in the same order give the same outputs bit for
//! bit. A mahalla's outputs depend on its own events only (cell rules: on the
//! events near its cells), never on statistics pooled across mahallas, so a
//! mahalla moved between engines ([`Engine::export_mahalla`],
//! [`Engine::import_mahalla`]) carries on identically; escalation ids
//! ([`Escalation::deterministic_id`]) come from per-mahalla episode counters
//! that travel with it. [`Engine::snapshot`] / [`Engine::restore`] checkpoint
//! everything. Memory is bounded: data older than the baseline window, the
//! evidence window or a rule's window is dropped (daily and hourly
//! housekeeping on ticks), and event lists are capped.
//!
//! # Where the defaults come from
//!
//! *Harm weights* ([`CategoryTable`], [`DetectionTable`], [`SchemeTable`]) are
//! judgement, not statistics, written down so they can be argued with. They
//! follow the idea of crime harm indices, which weigh an offence by the
//! sentence it typically draws (the Cambridge Crime Harm Index: Sherman,
//! Neyroud and Neyroud, *Policing* 10(3), 2016; the ONS Crime Severity Score
//! for England and Wales). The *ordering* of categories follows such indices:
//! homicide first; then robbery, weapons and drug trafficking; then assault
//! and domestic violence; then theft, fraud, cybercrime, drug use and
//! hooliganism; then vandalism and public order. The spread is compressed
//! roughly logarithmically (8 against 1.5 between a homicide and a theft at
//! the same severity, where the indices differ a hundredfold and more),
//! because here a weight measures how much an event says about a
//! mahalla's situation, not its whole social cost. Severity multiplies by 0.5,
//! 0.75, 1, 1.5, 2 for severity 1 to 5. Camera detections are machine
//! judgements and weigh less than confirmed incidents of the same kind (weapon
//! 3, drug hand-off 2, fight 1.5, down to 0.2 for loitering), times 0, 0.25,
//! 0.5, 0.75, 1 below 0.5, from 0.5, 0.7, 0.8 and 0.9 confidence. Fraud flags,
//! a bank's suspicion rather than a report, weigh a little less than a fraud
//! incident (1; investment scams and account takeovers 1.5, fake marketplaces
//! 0.8) times 0.6, 1, 1.5, 2.5 for amounts below 1 million,
//! from 1, 10 and 100 million soum (decades of the amount: the loss to a
//! household grows with it). They should be replaced by a table agreed with
//! the Ministry of Internal Affairs; the configuration takes any table.
//!
//! *The statistics* (28-day baseline, 3 h half-life, score thresholds 5 / 7 /
//! 10 with exits 3 / 5 / 7 and 3 / 5 / 8 effective events, a 2 h dwell,
//! overdispersion 150, priors) and *the rules' parameters* (the drug hand-off
//! cluster of the issue — three detections with confidence ≥ 0.8 in a cell and
//! its neighbours within 24 h — plus `min_z = 3` so that a spot that sees that
//! many most days does not escalate every day; the fraud wave as 6 flags in
//! 3 h at 5 standard scores above the mahalla's usual for those hours) were
//! calibrated on `posbon-sim`'s ground truth: the [`evaluation`] module, and
//! [`sim::evaluate_report`] with the `sim` feature, print recall and false
//! escalations for any seed.

mod baseline;
mod config;
mod engine;
pub mod evaluation;
mod hotcells;
mod ids;
mod intensity;
mod maps;
mod rules;
#[cfg(feature = "sim")]
pub mod sim;
mod weights;

pub use config::{
    AmountBand, BeforeBaseline, CameraWeights, CategoryTable, ConfidenceBand, ConfigError,
    DetectionTable, FraudWeights, HotCellsConfig, LevelThresholds, LevelsConfig, MAX_WEIGHT,
    Measure, PriorConfig, RiskConfig, RuleConfig, RuleGroup, SCORE_RULE, SchemeTable,
    WeightsConfig,
};
pub use engine::{
    CellView, Engine, EngineSnapshot, Footprint, ImportError, MahallaState, MahallaView, RuleView,
};
pub use posbon_model::Escalation;
pub use posbon_model::{InvalidSpan, Span};
pub use weights::HarmWeights;

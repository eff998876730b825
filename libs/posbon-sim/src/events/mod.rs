//! Realistic event streams over a mahalla registry.
//!
//! The model, per event kind:
//!
//! - **Background offences** (incidents and fraud flags) arrive as Poisson
//!   processes whose intensity follows daily and weekly cycles: assaults,
//!   hooliganism and robbery peak at night and at weekends, fraud and
//!   cybercrime during office hours on weekdays. Cybercrime and fraud
//!   (fraud flags plus incidents of category `fraud` or `cybercrime`) make up
//!   [`CYBER_FRAUD_SHARE`] (42%) of offences, as reported in 2024 national
//!   statistics.
//! - **Where**: every mahalla has a heavy-tailed (log-normal) base rate times
//!   its population, so a few mahallas carry much of the crime and most are
//!   quiet for days.
//! - **Near repeats**: each physical offence (theft, robbery, assault,
//!   drugs, vandalism, hooliganism, weapons, public order) triggers on average
//!   0.25 follow-ups of the same category within 200 m, after an
//!   exponentially distributed delay of mean 36 h (a Hawkes process with an
//!   exponential kernel). A decaying extra rate at the start stands in for
//!   the follow-ups of offences before the stream begins.
//! - **Cameras** sit at fixed points; they report loitering, crowds, plate
//!   matches and the like, and now and then a weak drug hand-off.
//! - **Prevention situations** (only when asked for, [`Situations`];
//!   written to the ground truth): difficult mahallas whose place-based
//!   offences rise several-fold for the last days of the stream, quiet
//!   mahallas without any offence, and districts whose offences repeat
//!   near each other more often.
//! - **Injected patterns** (written to the ground truth): drug hand-off
//!   hotspots (a burst of `drug_handoff` detections with confidence ≥ 0.8 at
//!   one camera, in its resolution-10 cell and the neighbouring cells) and
//!   fraud waves (a burst of fraud flags of one scheme in one mahalla within
//!   a few hours).
//!
//! Events come out in event-time order with ids `sim-<seed>-<n>`; the same
//! options give byte-identical output. Bad lines (`bad_fraction`) are drawn
//! from a separate random stream, so adding them does not change the valid
//! events.
//!
//! One file (1027 lines) because every `EventStream` method works on its private state (two
//! seeded generators, the heap of planned events, the injection tables), and same-seed output
//! depends on the order of their draws; the parts that stand alone are already submodules.

mod bad;
mod mix;
mod situations;
mod truth;
mod world;

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap, VecDeque};
use std::io::Write;
use std::sync::Arc;

use chrono::{DateTime, Datelike, FixedOffset, TimeDelta, TimeZone, Timelike};
use h3o::{CellIndex, LatLng, Resolution};
use posbon_model::{
    CameraAlert, Detection, Event, EventHeader, FraudFlag, FraudScheme, Incident, Location,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

pub use bad::Defect;
pub use mix::CYBER_FRAUD_SHARE;
pub use situations::{
    DIFFICULT_FACTOR, DIFFICULT_MIN_EXTRA_PER_DAY, DifficultTruth, REPEAT_BRANCHING,
    REPEAT_RADIUS_M, SituationTruth, Situations,
};
pub use truth::{BadLineTruth, Injection, InjectionKind, Truth};
pub use world::{SimMahalla, SimRegistry};

use crate::error::SimError;
use mix::{STREAMS, What};

/// Resolution of the cells named in the ground truth (the registry's default
/// storage resolution).
pub const TRUTH_RESOLUTION: Resolution = Resolution::Ten;

/// Default mean rate, events per hour of event time.
pub const DEFAULT_RATE_PER_HOUR: f64 = 40.0;

/// The offset of the local time zone ([`posbon_model::LOCAL_TIME_ZONE`],
/// UTC+05:00 all year), which simulated event times carry.
pub fn tashkent_offset() -> FixedOffset {
    FixedOffset::east_opt(posbon_model::local_offset_minutes() * 60)
        .expect("the local offset is a valid offset")
}

/// The default start of a stream: 2026-11-01T00:00:00+05:00 (fixed, so that
/// output is reproducible).
pub fn default_start() -> DateTime<FixedOffset> {
    tashkent_offset()
        .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
        .single()
        .expect("2026-11-01T00:00:00+05:00 is a valid time")
}

/// Parses a duration such as `90m`, `24h`, `7d`, `2w`, `45s` or `1d12h`
/// ([`posbon_model::Span`]).
pub fn parse_duration(text: &str) -> Result<TimeDelta, SimError> {
    text.parse::<posbon_model::Span>()
        .map(posbon_model::Span::to_chrono)
        .map_err(|_| SimError::InvalidDuration(text.to_owned()))
}

/// Options of an [`EventStream`].
#[derive(Debug, Clone)]
pub struct EventOptions {
    /// Seed: same seed, same stream.
    pub seed: u64,
    /// Mean number of events per hour of event time (all kinds, injected
    /// patterns and near repeats included).
    pub rate_per_hour: f64,
    /// Length of the stream in event time.
    pub duration: TimeDelta,
    /// Event time of the start; events carry the +05:00 offset whatever the
    /// offset given here.
    pub start: DateTime<FixedOffset>,
    /// Fraction of output lines that are malformed (0 ..= 0.5).
    pub bad_fraction: f64,
    /// Prevention situations to plant (none by default).
    pub situations: Situations,
}

impl Default for EventOptions {
    fn default() -> Self {
        Self {
            seed: crate::city::DEFAULT_SEED,
            rate_per_hour: DEFAULT_RATE_PER_HOUR,
            duration: TimeDelta::hours(24),
            start: default_start(),
            bad_fraction: 0.0,
            situations: Situations::default(),
        }
    }
}

impl EventOptions {
    /// Event time of the end of the stream (exclusive).
    pub fn end(&self) -> DateTime<FixedOffset> {
        (self.start + self.duration).with_timezone(&tashkent_offset())
    }

    fn check(&self) -> Result<(), SimError> {
        if !(self.rate_per_hour.is_finite()
            && self.rate_per_hour > 0.0
            && self.rate_per_hour <= 10_000_000.0)
        {
            return Err(SimError::InvalidOption(format!(
                "rate must be in (0, 10000000] events per hour, got {}",
                self.rate_per_hour
            )));
        }
        if self.duration <= TimeDelta::zero() || self.duration > TimeDelta::days(3660) {
            return Err(SimError::InvalidOption(
                "duration must be positive and at most 10 years".into(),
            ));
        }
        if !(0.0..=0.5).contains(&self.bad_fraction) {
            return Err(SimError::InvalidOption(format!(
                "bad fraction must be within 0..0.5, got {}",
                self.bad_fraction
            )));
        }
        Ok(())
    }
}

/// Where a valid event comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The background process.
    Background,
    /// A near-repeat follow-up of an earlier offence.
    NearRepeat,
    /// An injected pattern: index into [`Truth::injections`].
    Injected(usize),
}

/// What a line of the stream is.
#[derive(Debug, Clone)]
pub enum SimBody {
    /// A valid event.
    Valid {
        /// The event.
        event: Box<Event>,
        /// Index of the mahalla (in [`SimRegistry::mahallas`]) the event was
        /// placed in.
        mahalla: usize,
        /// Where it comes from.
        origin: Origin,
    },
    /// A line with a deliberate defect.
    Bad {
        /// The defect.
        defect: Defect,
    },
}

/// One line of the stream.
#[derive(Debug, Clone)]
pub struct SimItem {
    /// 1-based line number in the NDJSON output.
    pub line_no: u64,
    /// Event time (for a bad line, the time of the valid event before it).
    pub at: DateTime<FixedOffset>,
    /// The NDJSON line, without the newline.
    pub line: String,
    /// What the line is.
    pub body: SimBody,
}

#[derive(Debug, Clone, Copy)]
enum PlanKind {
    Background(What),
    Echo(What),
    Camera(u32),
    Hotspot(u32),
    Wave(u32),
}

#[derive(Debug, Clone, Copy)]
struct Planned {
    /// Milliseconds after the start.
    t: i64,
    seq: u64,
    kind: PlanKind,
    mahalla: u32,
    lat: f64,
    lng: f64,
}

impl PartialEq for Planned {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Planned {}
impl PartialOrd for Planned {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Planned {
    // Reversed: BinaryHeap is a max-heap and we want the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.t, other.seq).cmp(&(self.t, self.seq))
    }
}

#[derive(Debug, Clone)]
struct Camera {
    id: String,
    mahalla: u32,
    lat: f64,
    lng: f64,
}

/// Cumulative weights for sampling an index.
#[derive(Debug, Clone)]
struct Sampler {
    cumulative: Vec<f64>,
}

impl Sampler {
    fn new(weights: impl IntoIterator<Item = f64>) -> Self {
        let mut acc = 0.0;
        let cumulative = weights
            .into_iter()
            .map(|w| {
                acc += if w.is_finite() && w > 0.0 { w } else { 0.0 };
                acc
            })
            .collect();
        Self { cumulative }
    }

    fn sample<R: RngExt + ?Sized>(&self, rng: &mut R) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        if total <= 0.0 {
            return rng.random_range(0..self.cumulative.len().max(1));
        }
        let x = rng.random::<f64>() * total;
        self.cumulative
            .partition_point(|&c| c <= x)
            .min(self.cumulative.len() - 1)
    }
}

/// Length of a generation chunk, milliseconds.
const CHUNK_MS: i64 = 3_600_000;
const HOUR_MS: f64 = 3_600_000.0;
/// How many recent valid events are kept as templates for bad lines.
const RECENT: usize = 256;

/// The event generator: an iterator of [`SimItem`]s in event-time order.
#[derive(Debug)]
pub struct EventStream {
    registry: Arc<SimRegistry>,
    options: EventOptions,
    start: DateTime<FixedOffset>,
    end_ms: i64,
    rng: ChaCha8Rng,
    bad_rng: ChaCha8Rng,
    heap: BinaryHeap<Planned>,
    seq: u64,
    horizon: i64,
    /// Background rate of each of [`STREAMS`], events per hour.
    stream_rates: Vec<f64>,
    physical: Sampler,
    cyber: Sampler,
    cameras: Vec<Camera>,
    camera_sampler: Sampler,
    /// Scheme of each injection (fraud waves).
    inj_scheme: Vec<Option<FraudScheme>>,
    /// Camera of each injection (hotspots).
    inj_camera: Vec<Option<usize>>,
    /// Per mahalla: in a repeat district ([`Situations::repeat_districts`]).
    repeat_district: Vec<bool>,
    /// Difficult mahallas: index, when they rise (ms after the start),
    /// extra place-based offences per hour.
    difficult: Vec<(usize, i64, f64)>,
    /// Extra offences planted so far (their category goes round
    /// [`situations::DIFFICULT_CATEGORIES`]).
    difficult_planted: usize,
    truth: Truth,
    wave_cells: Vec<BTreeSet<CellIndex>>,
    next_id: u64,
    next_bad: u64,
    line_no: u64,
    last_at: i64,
    recent: VecDeque<(u64, Event)>,
}

impl EventStream {
    /// A stream over `registry`.
    pub fn new(registry: Arc<SimRegistry>, options: &EventOptions) -> Result<Self, SimError> {
        options.check()?;
        if registry.is_empty() {
            return Err(SimError::Registry("no mahalla in the registry".into()));
        }
        let start = options.start.with_timezone(&tashkent_offset());
        let end_ms = options.duration.num_milliseconds();
        let mut rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0x00e7_e275);
        let bad_rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0x0bad_0bad);

        // Per-mahalla hotness: log-normal, heavy-tailed.
        let hot: Vec<f64> = registry
            .mahallas()
            .iter()
            .map(|_| (1.8 * crate::city::normal(&mut rng)).exp())
            .collect();
        let pop = |i: usize| f64::from(registry.mahallas()[i].population.max(1));
        // Prevention situations, from their own random stream so that
        // without them the stream is what it always was.
        let plan = &options.situations;
        plan.check(registry.len(), options.duration.num_days())?;
        let mut sit_rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0x5175_a710);
        let quiet = situations::pick(&mut sit_rng, registry.len(), plan.quiet, &BTreeSet::new());
        let difficult_at = situations::pick(&mut sit_rng, registry.len(), plan.difficult, &quiet);
        let districts: BTreeSet<&str> = registry
            .mahallas()
            .iter()
            .map(|m| m.district.as_str())
            .collect();
        let districts: Vec<&str> = districts.into_iter().collect();
        let repeat_districts: BTreeSet<&str> = situations::pick(
            &mut sit_rng,
            districts.len(),
            plan.repeat_districts,
            &BTreeSet::new(),
        )
        .into_iter()
        .map(|i| districts[i])
        .collect();
        let repeat_district: Vec<bool> = registry
            .mahallas()
            .iter()
            .map(|m| repeat_districts.contains(m.district.as_str()))
            .collect();
        let open = |i: usize| if quiet.contains(&i) { 0.0 } else { 1.0 };
        // A repeat district keeps about its volume of place-based offences:
        // fewer start on their own, more follow others.
        let own = |i: usize| {
            if repeat_district[i] {
                (1.0 - REPEAT_BRANCHING) / (1.0 - mix::BRANCHING)
            } else {
                1.0
            }
        };
        let physical_weights: Vec<f64> = (0..registry.len())
            .map(|i| pop(i) * hot[i] * open(i) * own(i))
            .collect();
        let physical = Sampler::new(physical_weights.iter().copied());
        let cyber = Sampler::new((0..registry.len()).map(|i| pop(i) * hot[i].powf(0.6) * open(i)));

        // Cameras at fixed points, where people (and crime) are.
        let camera_count = (registry.len() / 2).clamp(10, 5000);
        let placement = Sampler::new((0..registry.len()).map(|i| pop(i) * hot[i].powf(0.7)));
        let mut cameras = Vec::with_capacity(camera_count);
        for k in 0..camera_count {
            let m = placement.sample(&mut rng);
            let mahalla = &registry.mahallas()[m];
            let (lat, lng) = mahalla.sample_point(&mut rng);
            cameras.push(Camera {
                id: format!("cam-{}-{:04}", mahalla.district, k + 1),
                mahalla: m as u32,
                lat,
                lng,
            });
        }
        let camera_sampler =
            Sampler::new(cameras.iter().map(|c| hot[c.mahalla as usize].powf(0.7)));

        // Background rates (see the module docs): the final mix counts near
        // repeats and injected patterns too.
        let rate = options.rate_per_hour;
        let offences = (1.0 - mix::CAMERA_SHARE) * rate;
        let stream_rates: Vec<f64> = STREAMS
            .iter()
            .map(|s| match s.what {
                What::Camera => (s.share - mix::HOTSPOT_SHARE) * rate,
                What::Fraud => (s.share * offences - mix::WAVE_SHARE * rate).max(0.0),
                w if w.self_exciting() => s.share * offences * (1.0 - mix::BRANCHING),
                _ => s.share * offences,
            })
            .collect();

        // A difficult mahalla's usual rate of place-based offences, and
        // what is added to it.
        let place_rate: f64 = STREAMS
            .iter()
            .zip(stream_rates.iter().copied())
            .filter(|(s, _)| matches!(s.what, What::Incident(_)) && !s.what.is_cyber())
            .map(|(s, r): (_, f64)| {
                if s.what.self_exciting() {
                    r / (1.0 - mix::BRANCHING)
                } else {
                    r
                }
            })
            .sum();
        let total_weight: f64 = physical_weights.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        let difficult_days = plan.difficult_days.max(1);
        let from_ms = (end_ms - difficult_days * 86_400_000).max(0);
        let difficult: Vec<(usize, i64, f64)> = difficult_at
            .iter()
            .map(|&m| {
                let usual = place_rate * physical_weights[m] / total_weight;
                let extra =
                    ((DIFFICULT_FACTOR - 1.0) * usual).max(DIFFICULT_MIN_EXTRA_PER_DAY / 24.0);
                (m, from_ms, extra)
            })
            .collect();
        let mut situation_truth = SituationTruth {
            difficult: difficult
                .iter()
                .map(|&(m, from, extra)| DifficultTruth {
                    mahalla_id: registry.mahallas()[m].id.clone(),
                    from: start + TimeDelta::milliseconds(from),
                    extra_per_day: extra * 24.0,
                })
                .collect(),
            quiet: quiet
                .iter()
                .map(|&m| registry.mahallas()[m].id.clone())
                .collect(),
            repeat_districts: repeat_districts.iter().map(|d| (*d).to_owned()).collect(),
        };
        situation_truth.quiet.sort();

        let mut stream = Self {
            registry,
            options: options.clone(),
            start,
            end_ms,
            rng,
            bad_rng,
            heap: BinaryHeap::new(),
            seq: 0,
            horizon: 0,
            stream_rates,
            physical,
            cyber,
            cameras,
            camera_sampler,
            inj_scheme: Vec::new(),
            inj_camera: Vec::new(),
            repeat_district,
            difficult,
            difficult_planted: 0,
            truth: Truth::new(options, start),
            wave_cells: Vec::new(),
            next_id: 0,
            next_bad: 0,
            line_no: 0,
            last_at: 0,
            recent: VecDeque::with_capacity(RECENT),
        };
        stream.truth.situations = situation_truth;
        stream.truth.mahallas = stream.registry.len();
        stream.truth.cameras = stream.cameras.len();
        stream.plan_injections();
        Ok(stream)
    }

    /// The registry the stream runs over.
    pub fn registry(&self) -> &SimRegistry {
        &self.registry
    }

    /// The options.
    pub fn options(&self) -> &EventOptions {
        &self.options
    }

    /// The ground truth so far (complete once the iterator is exhausted).
    pub fn truth(&self) -> &Truth {
        &self.truth
    }

    fn push(&mut self, t: i64, kind: PlanKind, mahalla: u32, lat: f64, lng: f64) {
        if t < 0 || t >= self.end_ms {
            return;
        }
        self.seq += 1;
        self.heap.push(Planned {
            t,
            seq: self.seq,
            kind,
            mahalla,
            lat,
            lng,
        });
    }

    fn at(&self, t: i64) -> DateTime<FixedOffset> {
        self.start + TimeDelta::milliseconds(t)
    }

    fn plan_injections(&mut self) {
        let hours = self.end_ms as f64 / HOUR_MS;
        let rate = self.options.rate_per_hour;
        let expected = rate * hours;

        // Fraud waves.
        let size = (3.0 * rate.sqrt()).round().clamp(12.0, 300.0);
        let waves =
            ((mix::WAVE_SHARE * expected / size).round() as usize).max(usize::from(hours >= 6.0));
        for _ in 0..waves {
            let m = self.cyber.sample(&mut self.rng);
            let len = ((self.rng.random_range(2.0..6.0) * HOUR_MS) as i64).min(self.end_ms);
            let t0 = self.rng.random_range(0..=(self.end_ms - len).max(0));
            let scheme = [
                FraudScheme::ScamCall,
                FraudScheme::Phishing,
                FraudScheme::FakeMarketplace,
                FraudScheme::CardFraud,
            ][self.rng.random_range(0..4)];
            let idx = self.truth.injections.len() as u32;
            self.truth.injections.push(Injection {
                kind: InjectionKind::FraudWave,
                mahalla_id: self.registry.mahallas()[m].id.clone(),
                camera_id: None,
                scheme: Some(scheme.as_str().to_owned()),
                cells: Vec::new(),
                start: self.at(t0),
                end: self.at(t0 + len),
                event_ids: Vec::new(),
            });
            self.inj_scheme.push(Some(scheme));
            self.inj_camera.push(None);
            self.wave_cells.push(BTreeSet::new());
            let n = mix::poisson(&mut self.rng, size).max(5);
            for _ in 0..n {
                // Front-loaded: most flags early in the wave.
                let u: f64 = self.rng.random::<f64>().powf(1.5);
                let t = t0 + (u * len as f64) as i64;
                let (lat, lng) = self.registry.mahallas()[m].sample_point(&mut self.rng);
                self.push(t, PlanKind::Wave(idx), m as u32, lat, lng);
            }
        }

        // Drug hand-off hotspots.
        let size = (2.0 * rate.sqrt()).round().clamp(10.0, 200.0);
        let hotspots = ((mix::HOTSPOT_SHARE * expected / size).round() as usize)
            .max(usize::from(hours >= 6.0));
        for _ in 0..hotspots {
            let c = self.camera_sampler.sample(&mut self.rng);
            let camera = self.cameras[c].clone();
            let cell = LatLng::new(camera.lat, camera.lng).map(|ll| ll.to_cell(TRUTH_RESOLUTION));
            let Ok(cell) = cell else { continue };
            let disk: BTreeSet<CellIndex> =
                cell.grid_disk::<Vec<CellIndex>>(1).into_iter().collect();
            let len = ((self.rng.random_range(6.0..36.0) * HOUR_MS) as i64).min(self.end_ms);
            let t0 = self.rng.random_range(0..=(self.end_ms - len).max(0));
            let idx = self.truth.injections.len() as u32;
            self.truth.injections.push(Injection {
                kind: InjectionKind::DrugHandoffHotspot,
                mahalla_id: self.registry.mahallas()[camera.mahalla as usize].id.clone(),
                camera_id: Some(camera.id.clone()),
                scheme: None,
                cells: disk.iter().map(ToString::to_string).collect(),
                start: self.at(t0),
                end: self.at(t0 + len),
                event_ids: Vec::new(),
            });
            self.inj_scheme.push(None);
            self.inj_camera.push(Some(c));
            self.wave_cells.push(BTreeSet::new());
            let n = mix::poisson(&mut self.rng, size).max(5);
            let mahalla = &self.registry.mahallas()[camera.mahalla as usize];
            let mut points = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let t = t0 + self.rng.random_range(0..len.max(1));
                let in_disk = |lat: f64, lng: f64| {
                    LatLng::new(lat, lng)
                        .is_ok_and(|ll| disk.contains(&ll.to_cell(TRUTH_RESOLUTION)))
                };
                let (lat, lng) = mahalla
                    .sample_near(&mut self.rng, camera.lat, camera.lng, 150.0, in_disk)
                    .unwrap_or((camera.lat, camera.lng));
                points.push((t, lat, lng));
            }
            for (t, lat, lng) in points {
                self.push(t, PlanKind::Hotspot(idx), camera.mahalla, lat, lng);
            }
        }
    }

    /// Plans the background events of the next chunk.
    fn generate_chunk(&mut self) {
        let t0 = self.horizon;
        let t1 = (t0 + CHUNK_MS).min(self.end_ms);
        self.horizon = t1;
        let len = t1 - t0;
        if len <= 0 {
            return;
        }
        let mid = self.at(t0 + len / 2);
        let (hour, weekday) = (mid.hour(), mid.weekday().num_days_from_monday());
        let hours = len as f64 / HOUR_MS;
        // Follow-ups of offences before the start, decaying.
        let legacy = mix::BRANCHING / (1.0 - mix::BRANCHING)
            * (-((t0 + len / 2) as f64 / HOUR_MS) / mix::NEAR_REPEAT_MEAN_H).exp();
        for (s, spec) in STREAMS.iter().enumerate() {
            let mut mean = self.stream_rates[s] * hours * spec.profile.factor(hour, weekday);
            if spec.what.self_exciting() {
                mean *= 1.0 + legacy;
            }
            let n = mix::poisson(&mut self.rng, mean);
            for _ in 0..n {
                let t = t0 + self.rng.random_range(0..len);
                match spec.what {
                    What::Camera => {
                        let c = self.camera_sampler.sample(&mut self.rng);
                        let cam = &self.cameras[c];
                        let (m, clat, clng) = (cam.mahalla, cam.lat, cam.lng);
                        let (lat, lng) = self.registry.mahallas()[m as usize]
                            .sample_near(&mut self.rng, clat, clng, 30.0, |_, _| true)
                            .unwrap_or((clat, clng));
                        self.push(t, PlanKind::Camera(c as u32), m, lat, lng);
                    }
                    what => {
                        let sampler = if what.is_cyber() {
                            &self.cyber
                        } else {
                            &self.physical
                        };
                        let m = sampler.sample(&mut self.rng);
                        let (lat, lng) = self.registry.mahallas()[m].sample_point(&mut self.rng);
                        self.push(t, PlanKind::Background(what), m as u32, lat, lng);
                    }
                }
            }
        }
        // The difficult mahallas' extra offences.
        for k in 0..self.difficult.len() {
            let (m, from, per_hour) = self.difficult[k];
            let a = t0.max(from);
            if a >= t1 {
                continue;
            }
            let mean = per_hour * (t1 - a) as f64 / HOUR_MS;
            let n = mix::poisson(&mut self.rng, mean);
            for _ in 0..n {
                let t = a + self.rng.random_range(0..(t1 - a));
                let category = situations::DIFFICULT_CATEGORIES
                    [self.difficult_planted % situations::DIFFICULT_CATEGORIES.len()];
                self.difficult_planted += 1;
                let (lat, lng) = self.registry.mahallas()[m].sample_point(&mut self.rng);
                self.push(
                    t,
                    PlanKind::Background(What::Incident(category)),
                    m as u32,
                    lat,
                    lng,
                );
            }
        }
    }

    /// The next planned valid event, in time order.
    fn next_planned(&mut self) -> Option<Planned> {
        loop {
            if let Some(top) = self.heap.peek()
                && (top.t < self.horizon || self.horizon >= self.end_ms)
            {
                return self.heap.pop();
            }
            if self.horizon >= self.end_ms {
                return None;
            }
            self.generate_chunk();
        }
    }

    fn has_next(&mut self) -> bool {
        loop {
            if let Some(top) = self.heap.peek()
                && (top.t < self.horizon || self.horizon >= self.end_ms)
            {
                return true;
            }
            if self.horizon >= self.end_ms {
                return false;
            }
            self.generate_chunk();
        }
    }

    fn header(&mut self, id: String, p: &Planned, source: &str, accuracy: f64) -> EventHeader {
        EventHeader {
            id,
            occurred_at: self.at(p.t),
            location: Location {
                lat: p.lat,
                lng: p.lng,
                accuracy_m: Some(accuracy),
            },
            source: source.to_owned(),
            attributes: Default::default(),
        }
    }

    fn incident(
        &mut self,
        id: String,
        p: &Planned,
        category: posbon_model::IncidentCategory,
    ) -> Event {
        let source = mix::incident_source(&mut self.rng, category);
        let accuracy = mix::incident_accuracy(&mut self.rng);
        let header = self.header(id, p, source, accuracy);
        Event::Incident(Incident {
            header,
            category,
            severity: mix::severity(&mut self.rng, category),
            flags: mix::flags(&mut self.rng, category),
            status: mix::status(&mut self.rng),
            description: mix::description(&mut self.rng, category),
        })
    }

    fn fraud(&mut self, id: String, p: &Planned, scheme: Option<FraudScheme>) -> Event {
        let in_wave = scheme.is_some();
        let scheme = scheme.unwrap_or_else(|| mix::fraud_scheme(&mut self.rng));
        let source = mix::fraud_source(&mut self.rng);
        let accuracy = f64::from(self.rng.random_range(30..=400u32));
        let header = self.header(id, p, source, accuracy);
        let payment_system = mix::payment_system(&mut self.rng);
        let score = if in_wave {
            self.rng.random_range(0.7..0.99)
        } else {
            self.rng.random_range(0.5..0.97)
        };
        Event::FraudFlag(FraudFlag {
            header,
            scheme,
            channel: mix::fraud_channel(&mut self.rng, scheme),
            amount_uzs: mix::amount_uzs(&mut self.rng),
            payment_system,
            account_ref: mix::account_ref(&mut self.rng, payment_system),
            detector_score: (score * 1000.0_f64).round() / 1000.0,
        })
    }

    fn camera(&mut self, id: String, p: &Planned, camera: usize, hotspot: bool) -> Event {
        let (detection, confidence) = if hotspot {
            (
                Detection::DrugHandoff,
                (self.rng.random_range(0.8..0.99_f64) * 1000.0).round() / 1000.0,
            )
        } else {
            mix::camera_detection(&mut self.rng)
        };
        let model = mix::camera_model(&mut self.rng);
        let header = self.header(id.clone(), p, "safe-city-va", 5.0);
        let camera_id = self.cameras[camera].id.clone();
        Event::CameraAlert(CameraAlert {
            header,
            snapshot_uri: Some(format!("https://snapshots.posbon.uz/{camera_id}/{id}.jpg")),
            camera_id,
            detection,
            confidence,
            model: model.to_owned(),
        })
    }

    fn materialize(&mut self, p: Planned) -> SimItem {
        let id = format!("sim-{}-{}", self.options.seed, self.next_id);
        self.next_id += 1;
        let (event, origin) = match p.kind {
            PlanKind::Background(What::Incident(c)) => {
                (self.incident(id, &p, c), Origin::Background)
            }
            PlanKind::Echo(What::Incident(c)) => (self.incident(id, &p, c), Origin::NearRepeat),
            PlanKind::Background(_) | PlanKind::Echo(_) => {
                (self.fraud(id, &p, None), Origin::Background)
            }
            PlanKind::Camera(c) => (self.camera(id, &p, c as usize, false), Origin::Background),
            PlanKind::Hotspot(idx) => {
                let camera = self
                    .inj_camera
                    .get(idx as usize)
                    .copied()
                    .flatten()
                    .unwrap_or(0);
                (
                    self.camera(id, &p, camera, true),
                    Origin::Injected(idx as usize),
                )
            }
            PlanKind::Wave(idx) => {
                let scheme = self.inj_scheme.get(idx as usize).copied().flatten();
                (self.fraud(id, &p, scheme), Origin::Injected(idx as usize))
            }
        };
        // Near repeats.
        let what = match p.kind {
            PlanKind::Background(w) | PlanKind::Echo(w) => Some(w),
            _ => None,
        };
        if let Some(what) = what.filter(|w| w.self_exciting()) {
            let (branching, radius) = if self.repeat_district[p.mahalla as usize] {
                (REPEAT_BRANCHING, REPEAT_RADIUS_M)
            } else {
                (mix::BRANCHING, mix::NEAR_REPEAT_RADIUS_M)
            };
            let children = mix::poisson(&mut self.rng, branching);
            for _ in 0..children {
                let delay = mix::exponential(&mut self.rng, mix::NEAR_REPEAT_MEAN_H) * HOUR_MS;
                let t = p.t + delay.max(1.0) as i64;
                if t >= self.end_ms {
                    continue;
                }
                let (lat, lng) = self.registry.mahallas()[p.mahalla as usize]
                    .sample_near(&mut self.rng, p.lat, p.lng, radius, |_, _| true)
                    .unwrap_or((p.lat, p.lng));
                self.push(t, PlanKind::Echo(what), p.mahalla, lat, lng);
            }
        }
        if let Origin::Injected(idx) = origin {
            if let Some(inj) = self.truth.injections.get_mut(idx) {
                inj.event_ids.push(event.id().to_owned());
            }
            if matches!(p.kind, PlanKind::Wave(_))
                && let (Ok(ll), Some(cells)) =
                    (LatLng::new(p.lat, p.lng), self.wave_cells.get_mut(idx))
            {
                cells.insert(ll.to_cell(TRUTH_RESOLUTION));
                if let Some(inj) = self.truth.injections.get_mut(idx) {
                    inj.cells = cells.iter().map(ToString::to_string).collect();
                }
            }
        }
        let line = serde_json::to_string(&event).unwrap_or_default();
        self.line_no += 1;
        self.last_at = p.t;
        self.truth.valid_events += 1;
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((self.line_no, event.clone()));
        SimItem {
            line_no: self.line_no,
            at: self.at(p.t),
            line,
            body: SimBody::Valid {
                event: Box::new(event),
                mahalla: p.mahalla as usize,
                origin,
            },
        }
    }

    fn template(&self, kind: &str) -> Value {
        self.recent
            .iter()
            .rev()
            .find(|(_, e)| e.kind().as_str() == kind)
            .and_then(|(_, e)| serde_json::to_value(e).ok())
            .unwrap_or_else(|| bad::fallback_template(kind))
    }

    fn bad_line(&mut self) -> SimItem {
        let mut defect = Defect::ALL[self.bad_rng.random_range(0..Defect::ALL.len())];
        if defect == Defect::DuplicateId && self.recent.is_empty() {
            defect = Defect::MalformedJson;
        }
        self.line_no += 1;
        let (line, path, duplicate_of) = if defect == Defect::DuplicateId {
            let k = self.bad_rng.random_range(0..self.recent.len());
            let (orig_line, mut event) = self.recent[k].clone();
            // Same id, different content: moved a little and re-sourced.
            let header = event.header_mut();
            header.location.lat = ((header.location.lat + 0.0003) * 1e7).round() / 1e7;
            header.source = "mahalla-inspector-resend".to_owned();
            (
                serde_json::to_string(&event).unwrap_or_default(),
                String::new(),
                Some((orig_line, event.id().to_owned())),
            )
        } else {
            let bad_id = format!("sim-{}-bad-{}", self.options.seed, self.next_bad);
            self.next_bad += 1;
            let templates: Vec<(&str, Value)> = ["incident", "camera_alert", "fraud_flag"]
                .iter()
                .map(|k| (*k, self.template(k)))
                .collect();
            let made = bad::make(&mut self.bad_rng, defect, &bad_id, |kind| {
                templates
                    .iter()
                    .find(|(k, _)| *k == kind)
                    .map_or_else(|| bad::fallback_template(kind), |(_, v)| v.clone())
            });
            (made.line, made.path, None)
        };
        self.truth.bad_lines.push(BadLineTruth {
            line: self.line_no,
            defect,
            code: defect.expected_code().map(|c| c.as_str().to_owned()),
            path: if path.is_empty() { None } else { Some(path) },
            duplicate_of_line: duplicate_of.as_ref().map(|d| d.0),
            id: duplicate_of.map(|d| d.1),
        });
        SimItem {
            line_no: self.line_no,
            at: self.at(self.last_at),
            line,
            body: SimBody::Bad { defect },
        }
    }
}

impl Iterator for EventStream {
    type Item = SimItem;

    fn next(&mut self) -> Option<SimItem> {
        if !self.has_next() {
            return None;
        }
        if self.options.bad_fraction > 0.0
            && self.bad_rng.random::<f64>() < self.options.bad_fraction
        {
            return Some(self.bad_line());
        }
        let planned = self.next_planned()?;
        Some(self.materialize(planned))
    }
}

/// Counts of what [`write_ndjson`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamSummary {
    /// Lines written.
    pub lines: u64,
    /// Valid events among them.
    pub valid: u64,
    /// Bad lines among them (duplicate ids included).
    pub bad: u64,
}

/// Writes the rest of `stream` as NDJSON (one line per item).
pub fn write_ndjson<W: Write>(
    stream: &mut EventStream,
    writer: W,
) -> Result<StreamSummary, SimError> {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, writer);
    let mut summary = StreamSummary::default();
    for item in stream.by_ref() {
        out.write_all(item.line.as_bytes())?;
        out.write_all(b"\n")?;
        summary.lines += 1;
        match item.body {
            SimBody::Valid { .. } => summary.valid += 1,
            SimBody::Bad { .. } => summary.bad += 1,
        }
    }
    out.flush()?;
    Ok(summary)
}

//! Fuzzing of Posbon's parsers on the stable toolchain.
//!
//! Every byte string that crosses a trust boundary of Posbon is read by one
//! of a few parsers; this crate throws mutated inputs at each of them and
//! checks that they never panic, hang or allocate without bound, and that
//! the invariants they promise hold. Each target is a plain
//! `pub fn name(data: &[u8])`:
//!
//! | target | what it reads | where |
//! |---|---|---|
//! | [`event_json`] | one event ([`posbon_model::parse_event`]) and a batch, JSON array or NDJSON ([`posbon_model::parse_events`]) | producers over HTTP and NATS |
//! | [`compact()`] | a stored event record ([`posbon_model::compact`]: `peek_kind`, `view`, `decode`) | the store, the `EVENTS` stream |
//! | [`registry_geojson`] | the mahalla registry ([`posbon_geo::Registry::from_geojson`]) | an operator's file |
//! | [`escalation_action`] | an action request ([`posbon_api::lifecycle::parse_action`]) and an escalation | NATS `posbon.actions.escalations`, `ALERTS` |
//! | [`sql_request`] | the body of `POST /v1/sql` ([`posbon_sql::http::SqlRequest`]) and its SQL text, parsed by DataFusion | analysts over HTTP |
//! | [`config_toml`] | a configuration file ([`posbon_service::load_config`] into the ingest and API configurations) | an operator's file |
//!
//! Besides "does not panic", the targets assert what the code promises: a
//! batch numbers its items `0..n` on lines that never go back; an accepted
//! event serialised again parses to the same event, alone, in an array and
//! in NDJSON; a decoded compact record encodes and decodes to the same bytes;
//! a loaded registry's `locate` agrees with its exact `contains`; an action
//! refused by an escalation leaves it unchanged. A broken invariant is a
//! panic like any other.
//!
//! # Running
//!
//! ```text
//! # every target for 60 s each, then a summary per target
//! cargo run -p posbon-fuzz -- run all --secs 60
//! # one target, another seed, inputs from elsewhere
//! cargo run -p posbon-fuzz -- run event_json --secs 300 --seed 7 --corpus /tmp/corpus
//! # run one input again (a crash file) and print what happened
//! cargo run -p posbon-fuzz -- repro compact fuzz/artifacts/compact/crash-0123abcd
//! ```
//!
//! The runner ([`runner`]) starts from the seed corpus in
//! `fuzz/corpus/<target>/` (and the files in `fuzz/regressions/<target>/`),
//! mutates inputs (bit flips, byte edits, interesting numbers, splices,
//! duplicated chunks, truncation, dictionary tokens, deep nesting) and keeps
//! in memory every input that shows a *feature* (a kind of error or result,
//! see [`Target::run`]) not seen before: a poor man's coverage signal. Each input
//! runs in a worker thread under `catch_unwind` with a time budget (2 s);
//! one that panics, outlives the budget or grows the process beyond the
//! memory limit is written to `fuzz/artifacts/<target>/crash-<hash>` (or
//! `hang-`, `oom-`), and the runner exits non-zero saying how to reproduce
//! it. Were the process to die outright (a stack overflow, an allocation
//! that fails), the input that was running is in
//! `fuzz/artifacts/<target>/current-input`.
//!
//! # Tests
//!
//! `cargo test -p posbon-fuzz` runs every target over every file of
//! `fuzz/corpus/` and `fuzz/regressions/` (`tests/regressions.rs`), and
//! fuzzes every target for a bounded time, 5 s each unless
//! `POSBON_FUZZ_SECS` says otherwise (`tests/bounded.rs`), so CI fuzzes on
//! every run. A crash once understood and fixed becomes a file in
//! `fuzz/regressions/<target>/` (`fuzz/regressions/README.md` says what each
//! was); one not fixed yet waits in `fuzz/known/<target>/`, outside the
//! tests, and the target leaves out inputs of its shape
//! (`fuzz/known/README.md`).
//!
//! # cargo-fuzz
//!
//! The targets need nothing from the runner: on nightly, a cargo-fuzz
//! target is one line around them.
//!
//! ```text
//! #![no_main]
//! libfuzzer_sys::fuzz_target!(|data: &[u8]| posbon_fuzz::event_json(data));
//! ```

pub mod mutate;
pub mod runner;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::LazyLock;

use chrono::{DateTime, TimeZone, Utc};
use posbon_geo::{MahallaIdx, Registry, RegistryOptions};
use posbon_model::compact;
use posbon_model::{
    ActionRequest, COMPACT_CONTENT_TYPE, EnrichedEvent, Escalation, EscalationAction,
    EscalationRecord, EscalationStatus, Event, JSON_CONTENT_TYPE, Limits, ValidationErrors,
    parse_event, parse_events,
};
use posbon_sql::datafusion::execution::SessionState;
use posbon_sql::datafusion::prelude::SessionContext;
use posbon_sql::datafusion::sql::sqlparser::keywords::ALL_KEYWORDS;

/// Largest input [`event_json`] reads (ingest's own body limit is larger,
/// but the work is linear: 1 MiB shows everything 16 MiB would).
pub const EVENT_JSON_MAX_BYTES: usize = 1 << 20;
/// Largest input [`compact()`] reads.
pub const COMPACT_MAX_BYTES: usize = 1 << 20;
/// Largest input [`registry_geojson`] reads.
pub const REGISTRY_MAX_BYTES: usize = 256 << 10;
/// Largest input [`escalation_action`] reads.
pub const ACTION_MAX_BYTES: usize = 64 << 10;
/// Largest input [`sql_request`] reads. DataFusion's parser bounds its own
/// recursion (`datafusion.sql_parser.recursion_limit`, 50), so nesting
/// cannot overflow the stack; the size bound keeps one input fast.
pub const SQL_MAX_BYTES: usize = 64 << 10;
/// Largest input [`config_toml`] reads.
pub const CONFIG_MAX_BYTES: usize = 64 << 10;

/// A fuzz target as the runner sees it.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Its name on the command line and in `fuzz/corpus/<name>/`.
    pub name: &'static str,
    /// Runs the target on one input and returns its *features*: hashes of
    /// what kind of result it had (which error codes on which fields, which
    /// messages with the numbers and quoted input left out, which kind of
    /// event). The runner keeps an input that shows a feature it has not
    /// seen. Panics on a bug.
    pub run: fn(&[u8]) -> Features,
    /// Tokens that mutations insert: field names, keywords, brackets.
    pub dictionary: &'static [&'static str],
}

/// What one input did, as hashes (see [`Target::run`]).
pub type Features = Vec<u64>;

/// Every target, in the order `run all` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "event_json",
        run: event_json_features,
        dictionary: mutate::dict::EVENT_JSON,
    },
    Target {
        name: "compact",
        run: compact_features,
        dictionary: mutate::dict::COMPACT,
    },
    Target {
        name: "registry_geojson",
        run: registry_geojson_features,
        dictionary: mutate::dict::REGISTRY,
    },
    Target {
        name: "escalation_action",
        run: escalation_action_features,
        dictionary: mutate::dict::ACTION,
    },
    Target {
        name: "sql_request",
        run: sql_request_features,
        dictionary: mutate::dict::SQL,
    },
    Target {
        name: "config_toml",
        run: config_toml_features,
        dictionary: mutate::dict::CONFIG,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

// ---------------------------------------------------------------------------
// Outcome signatures
// ---------------------------------------------------------------------------

/// Builds the features of one input: one for its overall shape (everything
/// [`Sig::add`]ed), and one for each [`Sig::feature`].
struct Sig {
    tag: &'static str,
    shape: DefaultHasher,
    features: Features,
}

impl Sig {
    fn new(tag: &'static str) -> Self {
        let mut shape = DefaultHasher::new();
        tag.hash(&mut shape);
        Sig {
            tag,
            shape,
            features: Features::new(),
        }
    }

    /// A feature of its own: new when this value was never seen, whatever
    /// came with it.
    fn feature<T: Hash + ?Sized>(&mut self, v: &T) {
        let mut h = DefaultHasher::new();
        self.tag.hash(&mut h);
        v.hash(&mut h);
        self.features.push(h.finish());
    }

    /// Part of the overall shape.
    fn add<T: Hash + ?Sized>(&mut self, v: &T) {
        v.hash(&mut self.shape);
    }

    /// Adds the shape of a message: its first line without what it quotes
    /// of the input (`"..."` as Rust's `Debug` writes it, with escapes; the
    /// rest of the line after a backtick or a single quote, which serde and
    /// others do not escape), at most 12 words, leaving out every word with
    /// a digit (positions, sizes, numbers of the input).
    fn text(&mut self, s: &str) {
        let mut template = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            match c {
                '\n' | '`' | '\'' => break,
                '"' => {
                    template.push(' ');
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => {
                                chars.next();
                            }
                            '"' => break,
                            _ => {}
                        }
                    }
                }
                c => template.push(c),
            }
        }
        for word in template
            .split(|c: char| c.is_whitespace() || "(),:;[]{}".contains(c))
            .filter(|w| !w.is_empty() && !w.bytes().any(|b| b.is_ascii_digit()))
            .take(12)
        {
            word.hash(&mut self.shape);
        }
    }

    /// Adds which errors of which fields, each pair a feature of its own:
    /// the combinations are too many to be new each.
    fn errors<'a>(&mut self, errs: impl IntoIterator<Item = &'a ValidationErrors>) {
        for e in errs.into_iter().flat_map(|e| e.iter()) {
            // A path of the event's own fields; any other was named by the
            // input and says nothing new.
            let field = e.path.split('[').next().unwrap_or_default();
            let field = if EVENT_PATHS.contains(&field) {
                field
            } else {
                "?"
            };
            self.feature(&(e.code.as_str(), field));
        }
    }

    fn finish(mut self) -> Features {
        let shape = self.shape.finish();
        self.features.sort_unstable();
        self.features.dedup();
        self.features.push(shape);
        self.features
    }
}

/// The paths of an event's fields, as its errors name them.
const EVENT_PATHS: &[&str] = &[
    "",
    "kind",
    "id",
    "occurred_at",
    "location",
    "location.lat",
    "location.lng",
    "location.accuracy_m",
    "source",
    "attributes",
    "category",
    "severity",
    "flags",
    "flags.victim_minor",
    "flags.victim_youth",
    "flags.victim_woman",
    "flags.offender_minor",
    "flags.offender_youth",
    "flags.domestic",
    "status",
    "description",
    "camera_id",
    "detection",
    "confidence",
    "model",
    "snapshot_uri",
    "scheme",
    "channel",
    "amount_uzs",
    "payment_system",
    "account_ref",
    "detector_score",
];

/// The instant the time rules of [`event_json`] are judged against.
fn fixed_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 10, 0, 0)
        .single()
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// event_json
// ---------------------------------------------------------------------------

/// Fuzz target: one event ([`parse_event`]) and a batch ([`parse_events`]).
///
/// Checks that an error lists at least one problem; that an accepted event
/// passes [`Event::validate`], serialises to JSON that parses to the same
/// event with [`parse_event`] and with the strict `Deserialize`, and goes
/// through a two-item array and NDJSON batch unchanged; that batch items are
/// numbered `0..n` on lines `>= 1` that never decrease and lie within the
/// input; and that a one-line batch is judged exactly like [`parse_event`].
pub fn event_json(data: &[u8]) {
    event_json_features(data);
}

fn event_json_features(data: &[u8]) -> Features {
    if data.len() > EVENT_JSON_MAX_BYTES {
        return Features::new();
    }
    let limits = Limits::default();
    let now = fixed_now();
    let mut sig = Sig::new("event_json");

    let single = parse_event(data, &limits, now);
    match &single {
        Ok(event) => {
            sig.add(event.kind().as_str());
            check_event_round_trip(event, &limits, now);
        }
        Err(errs) => {
            assert!(!errs.is_empty(), "parse_event failed without an error");
            sig.errors([errs]);
        }
    }

    let items = parse_events(data, &limits, now);
    let lines = 1 + data.iter().filter(|&&b| b == b'\n').count();
    let mut last_line = 1;
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item.index, i, "batch item indexes must be 0..n in order");
        assert!(item.line >= 1, "batch item {i} on line 0");
        assert!(
            item.line >= last_line,
            "batch item {i} on line {} after an item on line {last_line}",
            item.line
        );
        assert!(
            item.line <= lines,
            "batch item {i} on line {} of a {lines}-line input",
            item.line
        );
        last_line = item.line;
        if let Err(errs) = &item.result {
            assert!(!errs.is_empty(), "batch item {i} failed without an error");
        }
    }
    sig.add(&items.len().min(3));
    let kinds: std::collections::BTreeSet<&str> = items
        .iter()
        .filter_map(|i| i.result.as_ref().ok())
        .map(|e| e.kind().as_str())
        .collect();
    sig.add(&kinds);
    sig.errors(items.iter().filter_map(|i| i.result.as_ref().err()));

    // A single line that is not an array is a one-item NDJSON batch, judged
    // exactly like the event alone.
    let first = data.iter().position(|b| !b.is_ascii_whitespace());
    if !data.contains(&b'\n') && first.is_some_and(|i| data[i] != b'[') {
        assert_eq!(items.len(), 1, "a one-line NDJSON batch holds one item");
        let line = data.strip_suffix(b"\r").unwrap_or(data);
        assert_eq!(
            items[0].result,
            parse_event(line, &limits, now),
            "a one-line batch is judged like the event alone"
        );
    }
    sig.finish()
}

/// An accepted event serialised again is accepted again, unchanged, alone
/// and in batches.
fn check_event_round_trip(event: &Event, limits: &Limits, now: DateTime<Utc>) {
    assert_eq!(
        event.validate(limits, now),
        Ok(()),
        "an accepted event fails Event::validate"
    );
    let json = serde_json::to_vec(event).expect("an accepted event serialises");
    // Numbers may serialise longer than they were written (`5` as `5.0`).
    let unlimited = Limits {
        max_payload_bytes: usize::MAX,
        ..*limits
    };
    let again = parse_event(&json, &unlimited, now);
    assert_eq!(
        again.as_ref(),
        Ok(event),
        "an accepted event, serialised, parses differently: {}",
        String::from_utf8_lossy(&json)
    );
    let strict: Result<Event, _> = serde_json::from_slice(&json);
    assert!(
        strict.as_ref().is_ok_and(|e| e == event),
        "the strict Deserialize disagrees with parse_event: {strict:?}"
    );
    let mut array = b"[".to_vec();
    array.extend_from_slice(&json);
    array.extend_from_slice(b",\n");
    array.extend_from_slice(&json);
    array.push(b']');
    let mut ndjson = json.clone();
    ndjson.extend_from_slice(b"\r\n\n");
    ndjson.extend_from_slice(&json);
    for (what, batch, second_line) in [("array", &array, 2), ("ndjson", &ndjson, 3)] {
        let items = parse_events(batch, &unlimited, now);
        assert_eq!(items.len(), 2, "{what} of two events: {items:?}");
        for (i, item) in items.iter().enumerate() {
            assert_eq!(item.index, i);
            assert_eq!(item.line, if i == 0 { 1 } else { second_line }, "{what}");
            assert_eq!(item.result.as_ref(), Ok(event), "{what} item {i}");
        }
    }
}

// ---------------------------------------------------------------------------
// compact
// ---------------------------------------------------------------------------

/// Fuzz target: a compact event record ([`compact::peek_kind`],
/// [`compact::view`], [`compact::decode`]).
///
/// Checks that `view` and `decode` agree, that `peek_kind` names the kind
/// `view` finds, that a view's attributes iterate to their count, that a
/// decoded record encodes and decodes again to the same bytes, and that the
/// decoded event serialises to JSON (as the API and reports do with stored
/// events). The bytes are also read as an `EVENTS` message
/// ([`EnrichedEvent::from_message`]) in both encodings: a compact message
/// that keeps the event rules must read back the same from its JSON form.
pub fn compact(data: &[u8]) {
    compact_features(data);
}

fn compact_features(data: &[u8]) -> Features {
    if data.len() > COMPACT_MAX_BYTES {
        return Features::new();
    }
    let mut sig = Sig::new("compact");
    let peeked = compact::peek_kind(data);
    sig.add(&peeked.map(|k| k.as_str()));
    let view = compact::view(data);
    let decoded = compact::decode(data);
    match (&view, &decoded) {
        (Ok(v), Ok(event)) => {
            sig.add(v.kind().as_str());
            assert_eq!(peeked, Some(v.kind()), "peek_kind disagrees with view");
            assert_eq!(
                v.attributes.iter().count(),
                v.attributes.len(),
                "a view's attributes iterate to fewer than their count"
            );
            check_compact_round_trip(event);
            check_from_message(data, event);
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "view and decode fail differently");
            sig.text(&a.to_string());
        }
        (v, d) => panic!("view and decode disagree: {v:?} / {d:?}"),
    }
    // The same bytes as the JSON form of an EVENTS message.
    if let Ok(event) = EnrichedEvent::from_message(None, data) {
        sig.add("json");
        check_compact_round_trip(&event);
    }
    sig.finish()
}

/// An `EVENTS` message in the compact encoding is the decoded record when it
/// keeps the event rules, and then reads back the same from its JSON form.
fn check_from_message(data: &[u8], decoded: &EnrichedEvent) {
    let Ok(event) = EnrichedEvent::from_message(Some(COMPACT_CONTENT_TYPE), data) else {
        return;
    };
    assert_eq!(&event, decoded, "from_message and decode disagree");
    let json = serde_json::to_vec(&event).expect("an event serialises");
    let back = EnrichedEvent::from_message(Some(JSON_CONTENT_TYPE), &json);
    assert_eq!(
        back.as_ref(),
        Ok(&event),
        "a compact event changes through its JSON form: {}",
        String::from_utf8_lossy(&json)
    );
}

/// `encode(decode(x))` is a fixed point of decode-then-encode (compared as
/// bytes: a record may hold NaN, which is not equal to itself).
fn check_compact_round_trip(event: &EnrichedEvent) {
    let mut once = Vec::new();
    compact::encode(event, &mut once);
    let again = compact::decode(&once).expect("a re-encoded record decodes");
    let mut twice = Vec::new();
    compact::encode(&again, &mut twice);
    assert_eq!(once, twice, "decode then encode is not stable");
    // What the API and the reports do with a stored event.
    let json = serde_json::to_vec(event).expect("a decoded event serialises");
    assert!(!json.is_empty());
}

// ---------------------------------------------------------------------------
// registry_geojson
// ---------------------------------------------------------------------------

/// Fuzz target: a mahalla registry ([`Registry::from_geojson`]), inputs up
/// to [`REGISTRY_MAX_BYTES`] covering up to [`REGISTRY_MAX_SQUARES`] grid
/// squares (see there: loading takes time in proportion to the area).
///
/// On a registry that loads, checks that [`Registry::locate`] agrees with
/// [`Registry::contains`] (the first mahalla in registry order that holds
/// the point) at every vertex, edge midpoint and a few points between.
pub fn registry_geojson(data: &[u8]) {
    registry_geojson_features(data);
}

fn registry_geojson_features(data: &[u8]) -> Features {
    if data.len() > REGISTRY_MAX_BYTES {
        return Features::new();
    }
    let mut sig = Sig::new("registry_geojson");
    if registry_too_costly(data) {
        sig.add("skipped");
        return sig.finish();
    }
    let options = RegistryOptions {
        // One thread: the runner measures one input at a time.
        threads: 1,
        ..RegistryOptions::default()
    };
    match Registry::from_geojson(data, &options) {
        Ok(registry) => {
            sig.add(&registry.mahallas().len().min(8));
            sig.add(&registry.districts().len().min(4));
            check_registry(&registry);
        }
        Err(e) => sig.text(&e.to_string()),
    }
    sig.finish()
}

/// Grid squares (1/1024° a side) a registry of the target may cover: about
/// 0.5° × 0.5°. Loading scans every square of every mahalla's bounding box,
/// by design, so its time follows the area as much as the bytes; the
/// target bounds both.
pub const REGISTRY_MAX_SQUARES: f64 = (1 << 18) as f64;

/// Whether loading `data` would claim more than [`REGISTRY_MAX_SQUARES`]
/// while staying under the library's own limits (4° × 4° a mahalla, 2^28
/// squares in all), which refuse a larger registry before any work: those
/// inputs run, to test that refusal.
fn registry_too_costly(data: &[u8]) -> bool {
    const LIB_MAHALLA: f64 = 0.9 * (4096.0 * 4096.0);
    const LIB_TOTAL: f64 = 0.9 * (1u64 << 28) as f64;
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else {
        return false;
    };
    let Some(features) = doc.get("features").and_then(|f| f.as_array()) else {
        return false;
    };
    let (mut total, mut largest) = (0.0f64, 0.0f64);
    for f in features {
        let mut bbox = [
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ];
        if let Some(c) = f.pointer("/geometry/coordinates") {
            positions(c, &mut bbox, 0);
        }
        if bbox[0] <= bbox[2] && bbox[1] <= bbox[3] {
            let squares =
                ((bbox[2] - bbox[0]) * 1024.0 + 2.0) * ((bbox[3] - bbox[1]) * 1024.0 + 2.0);
            total += squares;
            largest = largest.max(squares);
        }
    }
    total > REGISTRY_MAX_SQUARES && largest < LIB_MAHALLA && total < LIB_TOTAL
}

/// Widens `bbox` (`[min x, min y, max x, max y]`) by every `[x, y, ...]`
/// position in `v`.
fn positions(v: &serde_json::Value, bbox: &mut [f64; 4], depth: usize) {
    let Some(items) = v.as_array() else {
        return;
    };
    if let [x, y, ..] = items.as_slice()
        && let (Some(x), Some(y)) = (x.as_f64(), y.as_f64())
    {
        *bbox = [
            bbox[0].min(x),
            bbox[1].min(y),
            bbox[2].max(x),
            bbox[3].max(y),
        ];
        return;
    }
    if depth < 8 {
        for item in items {
            positions(item, bbox, depth + 1);
        }
    }
}

fn check_registry(registry: &Registry) {
    const MAX_PROBES: usize = 256;
    let mut probes: Vec<(f64, f64)> = Vec::new();
    for m in registry.mahallas() {
        for poly in &m.geometry.0 {
            for ring in std::iter::once(poly.exterior()).chain(poly.interiors()) {
                for line in ring.lines() {
                    let (a, b) = (line.start, line.end);
                    probes.push((a.y, a.x));
                    probes.push(((a.y + b.y) / 2.0, (a.x + b.x) / 2.0));
                    probes.push((a.y + (b.y - a.y) / 3.0, a.x + (b.x - a.x) / 3.0));
                }
            }
        }
    }
    let step = probes.len().div_ceil(MAX_PROBES).max(1);
    let n = registry.mahallas().len();
    for &(lat, lng) in probes.iter().step_by(step) {
        let Ok(found) = registry.locate(lat, lng) else {
            continue;
        };
        let exact = (0..n)
            .map(|i| MahallaIdx(i as u32))
            .find(|&i| registry.contains(i, lat, lng));
        assert_eq!(
            found.mahalla, exact,
            "locate({lat}, {lng}) disagrees with contains"
        );
        if let Some(idx) = found.mahalla {
            let m = registry.mahalla(idx);
            assert!(
                registry.district(&m.district_id).is_some(),
                "mahalla {} in an unknown district",
                m.id
            );
        }
    }
}

// ---------------------------------------------------------------------------
// escalation_action
// ---------------------------------------------------------------------------

/// Fuzz target: an escalation action from NATS
/// ([`posbon_api::lifecycle::parse_action`]), and the same bytes as an
/// [`ActionRequest`] and as an [`Escalation`] (an `ALERTS` message).
///
/// A parsed request is applied to an escalation in every status: a refused
/// action must leave the record unchanged, an accepted one must add exactly
/// one audit step that shows the new status, and leave a record that
/// survives a JSON round trip.
pub fn escalation_action(data: &[u8]) {
    escalation_action_features(data);
}

fn escalation_action_features(data: &[u8]) -> Features {
    if data.len() > ACTION_MAX_BYTES {
        return Features::new();
    }
    let mut sig = Sig::new("escalation_action");
    match posbon_api::lifecycle::parse_action(data) {
        Ok((id, action, request)) => {
            sig.add(action.as_str());
            assert_eq!(request.escalation_id.as_deref(), Some(id.as_str()));
            assert_eq!(request.action, Some(action));
            apply_everywhere(action, &request, &mut sig);
        }
        Err(e) => {
            sig.add(e.code);
            sig.text(&e.message);
        }
    }
    // Over HTTP the id and the action are in the path: the body alone.
    if let Ok(request) = serde_json::from_slice::<ActionRequest>(data) {
        sig.add(&request.validate().is_ok());
        for action in EscalationAction::ALL {
            apply_everywhere(*action, &request, &mut sig);
        }
    }
    // An ALERTS message opens an escalation.
    if let Ok(escalation) = serde_json::from_slice::<Escalation>(data) {
        sig.add("escalation");
        let record = EscalationRecord::opened(escalation, 1, fixed_now());
        let json = serde_json::to_vec(&record).expect("a record serialises");
        let _ = serde_json::from_slice::<EscalationRecord>(&json);
    }
    sig.finish()
}

/// An escalation as the escalator opens it.
static ESCALATION: LazyLock<Escalation> = LazyLock::new(|| {
    let now = fixed_now();
    Escalation {
        id: "esc:chilonzor-017:burst:1".to_owned(),
        mahalla_id: "chilonzor-017".to_owned(),
        district_id: "chilonzor".to_owned(),
        region_id: "tashkent".to_owned(),
        level: posbon_model::RiskLevel::High,
        previous_level: posbon_model::RiskLevel::Elevated,
        score: 3.5,
        rule: "burst".to_owned(),
        measure: None,
        counts: Default::default(),
        hot_cells: Vec::new(),
        evidence: vec!["iiv-2026-000123".to_owned()],
        window_start: now - chrono::TimeDelta::hours(1),
        window_end: now,
        opened_at: now,
        status: EscalationStatus::Open,
    }
});

/// Applies `action` to a record in each status.
fn apply_everywhere(action: EscalationAction, request: &ActionRequest, sig: &mut Sig) {
    let at = fixed_now() + chrono::TimeDelta::minutes(5);
    let opened = EscalationRecord::opened(ESCALATION.clone(), 1, fixed_now());
    let mut records = vec![opened.clone()];
    let setup = ActionRequest {
        escalation_id: None,
        action: None,
        by: "inspector-1".to_owned(),
        note: None,
        assignee: None,
    };
    for path in [
        &[EscalationAction::Acknowledge][..],
        &[EscalationAction::Assign],
        &[EscalationAction::Assign, EscalationAction::Resolve],
        &[EscalationAction::FalseAlarm],
    ] {
        let mut r = opened.clone();
        for a in path {
            r.apply(*a, &setup, at).expect("setting up a record");
        }
        records.push(r);
    }
    for mut record in records {
        let before = record.clone();
        match record.apply(action, request, at) {
            Ok(()) => {
                sig.add(record.status().as_str());
                assert_eq!(record.history.len(), before.history.len() + 1);
                assert_eq!(
                    record.history.last().map(|s| s.status),
                    Some(record.status()),
                    "the last audit step does not show the status"
                );
                assert_eq!(
                    record.closed_at.is_some(),
                    record.is_closed(),
                    "closed_at and the status disagree"
                );
                let json = serde_json::to_vec(&record).expect("a record serialises");
                let back: EscalationRecord =
                    serde_json::from_slice(&json).expect("a record reads back");
                assert_eq!(back, record, "a record changes through JSON");
            }
            Err(e) => {
                sig.text(&e.to_string());
                assert_eq!(record, before, "a refused action changed the record");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// sql_request
// ---------------------------------------------------------------------------

/// The session whose parser settings (dialect, recursion limit) the SQL
/// engine uses: DataFusion's defaults, which `posbon-sql` does not change.
static SQL_SESSION: LazyLock<SessionState> = LazyLock::new(|| SessionContext::new().state());

/// Fuzz target: the body of `POST /v1/sql` ([`posbon_sql::http::SqlRequest`])
/// and its query, parsed (never planned or run) the way the engine parses
/// it, inputs up to [`SQL_MAX_BYTES`]. Input that is not a JSON body but is
/// UTF-8 is parsed as SQL directly, so that mutations reach the parser.
///
/// A statement that parses is printed and the text parsed again (it must
/// not panic; sqlparser does not promise the same tree). Queries with more
/// than [`SQL_MAX_PREFIX_KEYWORDS`] expression keywords are left out (see
/// there for the known exponential parse they would hit), and so are those
/// the engine refuses before parsing for a dotted name of more than
/// [`posbon_sql::MAX_NAME_PARTS`] parts ([`posbon_sql::check_dotted_names`]).
pub fn sql_request(data: &[u8]) {
    sql_request_features(data);
}

fn sql_request_features(data: &[u8]) -> Features {
    if data.len() > SQL_MAX_BYTES {
        return Features::new();
    }
    let mut sig = Sig::new("sql_request");
    let query = match serde_json::from_slice::<posbon_sql::http::SqlRequest>(data) {
        Ok(request) => {
            sig.add("body");
            request.query
        }
        Err(_) => match std::str::from_utf8(data) {
            Ok(text) => text.to_owned(),
            Err(_) => return sig.finish(),
        },
    };
    if prefix_keywords(&query) > SQL_MAX_PREFIX_KEYWORDS
        || posbon_sql::check_dotted_names(&query).is_err()
    {
        sig.add("skipped");
        return sig.finish();
    }
    // The audit trail keeps the first 4,000 characters.
    let audited: String = query.chars().take(4000).collect();
    assert!(audited.len() <= query.len());
    let first_line = query.lines().next().unwrap_or_default();
    let _ = posbon_sql::http::Format::negotiate(None, Some(first_line));
    let _ = posbon_sql::http::Format::negotiate(Some(first_line), None);

    match parse_sql(&query) {
        Ok(printed) => {
            // The kind of statement (its first keyword), and every keyword
            // it uses, each a feature.
            sig.add(printed.split_whitespace().next().unwrap_or_default());
            for word in printed.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if ALL_KEYWORDS.binary_search(&word).is_ok() {
                    sig.feature(word);
                }
            }
            match parse_sql(&printed) {
                Ok(_) => sig.add("reparsed"),
                Err(e) => sql_error_shape(&mut sig, &e),
            }
        }
        Err(e) => sql_error_shape(&mut sig, &e),
    }
    sig.finish()
}

/// Parses one SQL statement the way the SQL engine does (DataFusion's
/// parser, its default dialect and recursion limit, which `posbon-sql` does
/// not change), without the guards of [`sql_request`]: the statement as
/// sqlparser prints it, or the error.
pub fn parse_sql(query: &str) -> Result<String, String> {
    let state = &*SQL_SESSION;
    let dialect = state.config().options().sql_parser.dialect;
    state
        .sql_to_statement(query, &dialect)
        .map(|statement| statement.to_string())
        .map_err(|e| e.to_string())
}

/// Most expression-prefix keywords (see [`SQL_PREFIX_KEYWORDS`]) in a query
/// that [`sql_request`] parses.
///
/// A known, unfixed finding (`fuzz/known/sql_request/`): the sqlparser that
/// DataFusion 55 uses (0.62) tries a keyword as the head of an expression
/// and, when that fails, parses the same tokens again as an identifier, so a
/// failing chain of N such keywords (`SELECT ARRAY[ARRAY[ARRAY[...`,
/// `SELECT x-not-b.x-not-b....`) takes 2^N steps: 30 of them in 250 bytes
/// keep a core busy for hours, and the parse runs before the engine's time
/// limit can act. Upstream fixed it with a cache per position
/// (apache/datafusion-sqlparser-rs#2352); until the engine has that, the
/// target leaves such inputs out so that every run of the tests does not
/// rediscover it.
pub const SQL_MAX_PREFIX_KEYWORDS: usize = 16;

/// The words sqlparser 0.62 tries as the head of an expression
/// (`parse_expr_prefix_by_reserved_word`).
pub const SQL_PREFIX_KEYWORDS: &[&str] = &[
    "ARRAY",
    "BOX",
    "CASE",
    "CAST",
    "CEIL",
    "CIRCLE",
    "CONVERT",
    "CURRENT_CATALOG",
    "CURRENT_DATE",
    "CURRENT_TIME",
    "CURRENT_TIMESTAMP",
    "CURRENT_USER",
    "EXISTS",
    "EXTRACT",
    "FALSE",
    "FLOOR",
    "INTERVAL",
    "LAMBDA",
    "LINE",
    "LOCALTIME",
    "LOCALTIMESTAMP",
    "LSEG",
    "MAP",
    "MATCH",
    "NOT",
    "NULL",
    "OVERLAY",
    "PATH",
    "POINT",
    "POLYGON",
    "POSITION",
    "PRIOR",
    "SAFE_CAST",
    "SELECT",
    "SESSION_USER",
    "STRUCT",
    "SUBSTR",
    "SUBSTRING",
    "TRIM",
    "TRUE",
    "TRY_CAST",
    "TRY_CONVERT",
    "USER",
    "WITH",
];

/// How many words of `sql` are in [`SQL_PREFIX_KEYWORDS`].
pub fn prefix_keywords(sql: &str) -> usize {
    sql.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| {
            SQL_PREFIX_KEYWORDS
                .iter()
                .any(|k| k.eq_ignore_ascii_case(w))
        })
        .count()
}

/// What a parser error expected, without what it found (the input's words).
fn sql_error_shape(sig: &mut Sig, message: &str) {
    sig.text(message.split("found").next().unwrap_or(message));
}

// ---------------------------------------------------------------------------
// config_toml
// ---------------------------------------------------------------------------

/// Fuzz target: a configuration file, read the way the services read theirs
/// ([`posbon_service::load_config`], through figment's TOML) into
/// [`posbon_ingest::FileConfig`] and [`posbon_api::serve::FileConfig`], and
/// as a plain [`toml::Value`] with the workspace's `toml`; inputs up to
/// [`CONFIG_MAX_BYTES`] of UTF-8.
///
/// A document that `toml` reads is written out and must read back the same.
/// (`POSBON__` environment variables, if any are set, are merged too.)
pub fn config_toml(data: &[u8]) {
    config_toml_features(data);
}

fn config_toml_features(data: &[u8]) -> Features {
    if data.len() > CONFIG_MAX_BYTES {
        return Features::new();
    }
    let mut sig = Sig::new("config_toml");
    let Ok(text) = std::str::from_utf8(data) else {
        return sig.finish();
    };
    match toml::from_str::<toml::Table>(text) {
        Ok(table) => {
            sig.add(&table.len().min(8));
            let written = toml::to_string(&table).expect("a table writes out");
            let back: toml::Table = toml::from_str(&written)
                .unwrap_or_else(|e| panic!("written toml does not read back: {e}\n{written}"));
            assert!(
                same_toml(&toml::Value::Table(back), &toml::Value::Table(table)),
                "toml changes through a write and a read:\n{written}"
            );
        }
        Err(e) => sig.text(e.message()),
    }
    match posbon_service::load_config::<posbon_ingest::FileConfig>(text, None) {
        Ok(config) => {
            sig.add("ingest");
            sig.add(config.ingest.events_encoding.content_type());
        }
        Err(e) => figment_error_shape(&mut sig, &e.to_string()),
    }
    match posbon_service::load_config::<posbon_api::serve::FileConfig>(text, None) {
        Ok(config) => {
            sig.add("api");
            sig.add(&config.api.validate().is_ok());
            let _ = config.api.feed_keepalive();
        }
        Err(e) => figment_error_shape(&mut sig, &e.to_string()),
    }
    sig.finish()
}

/// A figment error's first line, and its last one: a TOML syntax error
/// quotes the input between them.
fn figment_error_shape(sig: &mut Sig, message: &str) {
    sig.text(message);
    sig.text(message.lines().last().unwrap_or_default());
}

/// Equality of TOML values where NaN equals NaN.
fn same_toml(a: &toml::Value, b: &toml::Value) -> bool {
    use toml::Value as V;
    match (a, b) {
        (V::Float(x), V::Float(y)) => x == y || (x.is_nan() && y.is_nan()),
        (V::Array(x), V::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_toml(x, y))
        }
        (V::Table(x), V::Table(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_toml(v, w)))
        }
        _ => a == b,
    }
}

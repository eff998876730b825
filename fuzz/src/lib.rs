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
//! Each target lives in a module of its own under `targets/`, with its
//! input limit and the checks it makes; the outcome signature they share
//! is in `targets/mod.rs`. Everything public is re-exported here.
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
//! was).
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
mod targets;

pub use targets::compact::{COMPACT_MAX_BYTES, compact};
pub use targets::config_toml::{CONFIG_MAX_BYTES, config_toml};
pub use targets::escalation_action::{ACTION_MAX_BYTES, escalation_action};
pub use targets::event_json::{EVENT_JSON_MAX_BYTES, event_json};
pub use targets::registry_geojson::{REGISTRY_MAX_BYTES, REGISTRY_MAX_SQUARES, registry_geojson};
pub use targets::sql_request::{SQL_MAX_BYTES, parse_sql, sql_request};

use targets::compact::compact_features;
use targets::config_toml::config_toml_features;
use targets::escalation_action::escalation_action_features;
use targets::event_json::event_json_features;
use targets::registry_geojson::registry_geojson_features;
use targets::sql_request::sql_request_features;

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

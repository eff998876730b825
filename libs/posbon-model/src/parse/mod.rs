//! Parsing and validation of incoming events: the ingest hot path.
//!
//! Fast path: `serde` derives straight into the private flat [`RawEvent`]
//! (every field of every kind, all optional, unknown fields denied), which is
//! then converted by kind into the typed [`Event`] while semantic problems are
//! collected. Only when `serde` fails is the slow path taken: the document is
//! parsed into a [`serde_json::Value`] (tracking the path, so even a number
//! overflow is reported at its field) and every field is checked on its own,
//! so that every problem is reported with its path.
//!
//! The parts:
//!
//! * `mod.rs`: [`Limits`] and [`parse_event`], which tries the fast path and
//!   falls back to the slow one.
//! * `batch`: [`parse_events`] and [`BatchItem`], splitting a JSON array or
//!   NDJSON body into items.
//! * `raw`: the raw input form, [`RawEvent`], with the `serde` helpers it is
//!   deserialized with.
//! * `convert`: building the typed [`Event`] from a [`RawEvent`].
//! * `checks`: the semantic field checks, shared with `Event::validate`.
//! * `slow`: the slow path, reading a [`serde_json::Value`] field by field.
//! * `tracked`: the path-tracking JSON reader the slow path starts with.
//! * `path`: JSON paths in error reports.

mod batch;
mod checks;
mod convert;
mod path;
mod raw;
mod slow;
mod tracked;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;

use crate::error::{ErrorCode, ValidationErrors};
use crate::event::Event;

pub use batch::{BatchItem, parse_events};
pub(crate) use checks::{validate_event, validate_event_static};
pub(crate) use convert::raw_to_event_static;
pub(crate) use raw::{MapOnly, RawEvent};

use checks::TimeRule;
use convert::build;
use slow::slow_path;

/// Limits applied by [`parse_event`] on top of the static rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted payload, in bytes, checked before parsing (default 64 KiB).
    pub max_payload_bytes: usize,
    /// How far `occurred_at` may be ahead of `now` (clock skew allowance;
    /// default 5 minutes).
    pub max_future: TimeDelta,
    /// Earliest accepted `occurred_at` (default 2000-01-01T00:00:00Z).
    pub min_occurred_at: DateTime<Utc>,
    /// Most items in one batch (JSON array or NDJSON, default 10,000). A
    /// larger batch is refused whole with [`ErrorCode::BatchTooLarge`], so a
    /// body of tiny invalid items cannot make an answer many times its size.
    pub max_batch_items: usize,
}

/// Default [`Limits::max_batch_items`].
pub const DEFAULT_MAX_BATCH_ITEMS: usize = 10_000;

impl Limits {
    /// The verdict on a batch of `count` items: `None` when within
    /// [`Limits::max_batch_items`], else the error that refuses it whole.
    pub fn check_batch_items(&self, count: usize) -> Option<ValidationErrors> {
        (count > self.max_batch_items).then(|| {
            ValidationErrors::single(
                "",
                ErrorCode::BatchTooLarge,
                format!(
                    "batch holds more than the limit of {} items: none was taken; split it into smaller batches",
                    self.max_batch_items
                ),
            )
        })
    }
}

/// Default [`Limits::max_payload_bytes`]: 64 KiB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 64 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            max_future: TimeDelta::minutes(5),
            min_occurred_at: default_min_occurred_at(),
            max_batch_items: DEFAULT_MAX_BATCH_ITEMS,
        }
    }
}

/// 2000-01-01T00:00:00Z.
fn default_min_occurred_at() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(946_684_800, 0).unwrap_or_default()
}

/// Parses and validates one event.
///
/// `now` is the reference for the `occurred_at` future check (pass
/// `Utc::now()` in production, a fixed instant in tests). On failure every
/// problem found is returned, each with its JSON path.
pub fn parse_event(
    bytes: &[u8],
    limits: &Limits,
    now: DateTime<Utc>,
) -> Result<Event, ValidationErrors> {
    if bytes.len() > limits.max_payload_bytes {
        return Err(ValidationErrors::single(
            "",
            ErrorCode::PayloadTooLarge,
            format!(
                "payload is {} bytes, at most {} allowed",
                bytes.len(),
                limits.max_payload_bytes
            ),
        ));
    }
    let time = TimeRule {
        min: limits.min_occurred_at,
        now: Some((now, limits.max_future)),
    };
    // Fast path.
    if let Some(raw) = fast_parse(bytes) {
        let mut errs = ValidationErrors::new();
        return match build(raw, &time, None, &mut errs) {
            Some(ev) if errs.is_empty() => Ok(ev),
            _ => Err(errs),
        };
    }
    slow_path(bytes, &time)
}

/// `None` when the document is not a well-formed, structurally valid event
/// (the slow path then explains why).
fn fast_parse(bytes: &[u8]) -> Option<RawEvent<'_>> {
    // Validating UTF-8 once up front is cheaper than per string, as
    // `from_slice` does.
    let text = std::str::from_utf8(bytes).ok()?;
    fast_parse_str(text).ok()
}

fn fast_parse_str(text: &str) -> Result<RawEvent<'_>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let raw = MapOnly::<RawEvent<'_>>::deserialize(&mut de)?.0;
    de.end()?;
    Ok(raw)
}

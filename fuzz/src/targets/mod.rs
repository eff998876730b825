//! The fuzz targets, one module each, and what they share: the outcome
//! signature ([`Sig`]) that turns what an input did into features, and the
//! fixed instant the time rules are judged against.

pub(super) mod compact;
pub(super) mod config_toml;
pub(super) mod escalation_action;
pub(super) mod event_json;
pub(super) mod registry_geojson;
pub(super) mod sql_request;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use chrono::{DateTime, TimeZone, Utc};
use posbon_model::ValidationErrors;

use crate::Features;

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

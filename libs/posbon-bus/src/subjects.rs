//! Subjects and streams: the names every service agrees on.
//!
//! | stream | captures | subject of one message |
//! |---|---|---|
//! | [`INGEST_STREAM`] | `posbon.ingest.>` | `posbon.ingest.<kind>` (raw JSON: one event or an array) |
//! | [`EVENTS_STREAM`] | `posbon.events.>` | `posbon.events.<region>.<district>.<mahalla>.<kind>` |
//! | [`ALERTS_STREAM`] | `posbon.alerts.>` | `posbon.alerts.<region>.<district>.<mahalla>` |
//! | [`DLQ_STREAM`] | `posbon.dlq.>` | `posbon.dlq.<kind>` (`unknown` when the kind is not known) |
//! | [`ACTIONS_STREAM`] | `posbon.actions.>` | [`ESCALATION_ACTIONS`]: operators' actions on escalations |
//!
//! Events outside every mahalla use [`UNASSIGNED`] for region, district and mahalla.
//! `schemas/subjects.md` documents payloads and headers.

use std::time::Duration;

use crate::error::{BusError, BusResult};

/// The stream of raw events as producers sent them.
pub const INGEST_STREAM: &str = "INGEST";
/// The stream of validated, enriched events.
pub const EVENTS_STREAM: &str = "EVENTS";
/// The stream of escalations.
pub const ALERTS_STREAM: &str = "ALERTS";
/// The stream of rejected input (dead letters).
pub const DLQ_STREAM: &str = "DLQ";
/// The stream of operators' actions (acknowledge, assign, resolve, false alarm).
pub const ACTIONS_STREAM: &str = "ACTIONS";

/// Everything [`INGEST_STREAM`] captures.
pub const INGEST_ALL: &str = "posbon.ingest.>";
/// Everything [`EVENTS_STREAM`] captures.
pub const EVENTS_ALL: &str = "posbon.events.>";
/// Everything [`ALERTS_STREAM`] captures.
pub const ALERTS_ALL: &str = "posbon.alerts.>";
/// Everything [`DLQ_STREAM`] captures.
pub const DLQ_ALL: &str = "posbon.dlq.>";
/// Everything [`ACTIONS_STREAM`] captures.
pub const ACTIONS_ALL: &str = "posbon.actions.>";
/// Where other systems publish actions on escalations (one JSON action request each).
pub const ESCALATION_ACTIONS: &str = "posbon.actions.escalations";
/// The daily situation report (a core NATS subject, captured by no stream).
pub const REPORTS_DAILY: &str = "posbon.reports.daily";

/// The durable consumer of ingest on [`INGEST_STREAM`].
pub const INGEST_DURABLE: &str = "ingest";
/// The durable consumer of the indexer on [`EVENTS_STREAM`].
pub const INDEXER_DURABLE: &str = "indexer";
/// The durable consumer of the API's escalation lifecycle on [`ALERTS_STREAM`].
pub const API_ALERTS_DURABLE: &str = "api-lifecycle";
/// The durable consumer of the API's actions on [`ACTIONS_STREAM`].
pub const API_ACTIONS_DURABLE: &str = "api-actions";
/// The durable consumer of [`ALERTS_STREAM`] that pages receivers
/// (`posbon-notify`), shared by every API replica.
pub const API_NOTIFY_DURABLE: &str = "api-notify";

/// The durable consumer of escalator shard `index` of `count` on
/// [`EVENTS_STREAM`]: `escalator-<index>-of-<count>`.
pub fn escalator_durable(index: u32, count: u32) -> String {
    format!("escalator-{index}-of-{count}")
}

/// The region, district and mahalla token of an event that falls in no known mahalla.
pub const UNASSIGNED: &str = "_unassigned";
/// The kind token of a dead letter whose kind is not known.
pub const UNKNOWN_KIND: &str = "unknown";

/// The default de-duplication window of every stream: a re-sent `Nats-Msg-Id` within it is
/// acknowledged as a duplicate and not stored again.
pub const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;
const GIB: u64 = 1 << 30;

/// Checks one subject token: non-empty, no `.`, `*`, `>`, whitespace or control characters.
pub fn validate_token(token: &str) -> BusResult<()> {
    if token.is_empty() {
        return Err(BusError::invalid("empty subject token"));
    }
    // Every token of every published subject passes here: printable ASCII
    // other than `.`, `*` and `>` is accepted without decoding characters.
    if token
        .bytes()
        .all(|b| matches!(b, b'!'..=b'~') && !matches!(b, b'.' | b'*' | b'>'))
    {
        return Ok(());
    }
    if let Some(bad) = token
        .chars()
        .find(|&c| matches!(c, '.' | '*' | '>') || c.is_whitespace() || c.is_control())
    {
        return Err(BusError::invalid(format!(
            "invalid subject token {token:?}: contains {bad:?}"
        )));
    }
    Ok(())
}

/// Checks a stream or consumer name: a valid token without path separators (JetStream
/// uses names as directory names).
pub fn validate_name(name: &str) -> BusResult<()> {
    validate_token(name)?;
    if name.contains(['/', '\\']) {
        return Err(BusError::invalid(format!(
            "invalid name {name:?}: contains a path separator"
        )));
    }
    Ok(())
}

/// Checks a subject to publish to: dot-separated valid tokens, no wildcards.
pub fn validate_subject(subject: &str) -> BusResult<()> {
    if subject.is_empty() {
        return Err(BusError::invalid("empty subject"));
    }
    for token in subject.split('.') {
        validate_token(token)
            .map_err(|err| BusError::invalid(format!("invalid subject {subject:?}: {err}")))?;
    }
    Ok(())
}

/// Checks a subject pattern (subscription, filter, stream subject): like a subject, but a
/// token may be `*` (one token) and the last token may be `>` (one or more tokens).
pub fn validate_pattern(pattern: &str) -> BusResult<()> {
    if pattern.is_empty() {
        return Err(BusError::invalid("empty subject pattern"));
    }
    let mut tokens = pattern.split('.').peekable();
    while let Some(token) = tokens.next() {
        let ok = match token {
            "*" => true,
            ">" => tokens.peek().is_none(),
            _ => validate_token(token).is_ok(),
        };
        if !ok {
            return Err(BusError::invalid(format!(
                "invalid subject pattern {pattern:?} at token {token:?}"
            )));
        }
    }
    Ok(())
}

/// Whether `subject` matches `pattern` (`*` matches one token, a final `>` one or more).
///
/// ```
/// use posbon_bus::subjects::subject_matches;
/// assert!(subject_matches("posbon.alerts.tashkent.>", "posbon.alerts.tashkent.chilonzor.m1"));
/// assert!(subject_matches("posbon.events.*.*.*.incident", "posbon.events.r.d.m.incident"));
/// assert!(!subject_matches("posbon.alerts.>", "posbon.alerts"));
/// ```
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut pattern = pattern.split('.');
    let mut subject = subject.split('.');
    loop {
        match (pattern.next(), subject.next()) {
            (Some(">"), Some(_)) => return true,
            (Some(p), Some(s)) => {
                if p != "*" && p != s {
                    return false;
                }
            }
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether some subject matches both patterns (two streams may not capture the same
/// subject).
pub fn patterns_overlap(a: &str, b: &str) -> bool {
    let mut a = a.split('.');
    let mut b = b.split('.');
    loop {
        match (a.next(), b.next()) {
            (Some(">"), Some(_)) | (Some(_), Some(">")) => return true,
            (Some(x), Some(y)) => {
                if x != "*" && y != "*" && x != y {
                    return false;
                }
            }
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Where an event or escalation happened: the subject tokens of its region, district and
/// mahalla (registry ids: lowercase ASCII letters, digits, `_` and `-`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Place<'a> {
    /// Region id.
    pub region: &'a str,
    /// District id.
    pub district: &'a str,
    /// Mahalla id.
    pub mahalla: &'a str,
}

impl<'a> Place<'a> {
    /// A place from its three ids.
    pub fn new(region: &'a str, district: &'a str, mahalla: &'a str) -> Self {
        Self {
            region,
            district,
            mahalla,
        }
    }

    fn validate(&self) -> BusResult<()> {
        validate_token(self.region)?;
        validate_token(self.district)?;
        validate_token(self.mahalla)
    }
}

/// `posbon.ingest.<kind>`: where producers publish raw events.
pub fn ingest_subject(kind: &str) -> BusResult<String> {
    validate_token(kind)?;
    Ok(format!("posbon.ingest.{kind}"))
}

/// `posbon.events.<region>.<district>.<mahalla>.<kind>`, with [`UNASSIGNED`] for all three
/// place tokens when `place` is `None`.
///
/// ```
/// use posbon_bus::subjects::{event_subject, Place};
/// let subject = event_subject(Some(Place::new("tashkent", "chilonzor", "chilonzor-017")), "incident");
/// assert_eq!(subject.unwrap(), "posbon.events.tashkent.chilonzor.chilonzor-017.incident");
/// assert_eq!(
///     event_subject(None, "fraud_flag").unwrap(),
///     "posbon.events._unassigned._unassigned._unassigned.fraud_flag",
/// );
/// ```
pub fn event_subject(place: Option<Place<'_>>, kind: &str) -> BusResult<String> {
    validate_token(kind)?;
    match place {
        Some(place) => {
            place.validate()?;
            Ok(format!(
                "posbon.events.{}.{}.{}.{kind}",
                place.region, place.district, place.mahalla
            ))
        }
        None => Ok(format!(
            "posbon.events.{UNASSIGNED}.{UNASSIGNED}.{UNASSIGNED}.{kind}"
        )),
    }
}

/// `posbon.alerts.<region>.<district>.<mahalla>`: where escalations are published.
pub fn alert_subject(place: Place<'_>) -> BusResult<String> {
    place.validate()?;
    Ok(format!(
        "posbon.alerts.{}.{}.{}",
        place.region, place.district, place.mahalla
    ))
}

/// `posbon.dlq.<kind>`. Never fails: a missing kind, or one that is not a valid token (it
/// comes from rejected input), becomes [`UNKNOWN_KIND`].
pub fn dlq_subject(kind: Option<&str>) -> String {
    match kind {
        Some(kind) if validate_token(kind).is_ok() => format!("posbon.dlq.{kind}"),
        _ => format!("posbon.dlq.{UNKNOWN_KIND}"),
    }
}

/// The parts of an event subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSubject<'a> {
    /// Where it happened; `None` for unassigned events.
    pub place: Option<Place<'a>>,
    /// The event kind.
    pub kind: &'a str,
}

/// Splits `posbon.events.<region>.<district>.<mahalla>.<kind>`; `None` for other subjects.
pub fn parse_event_subject(subject: &str) -> Option<EventSubject<'_>> {
    let rest = subject.strip_prefix("posbon.events.")?;
    let mut tokens = rest.split('.');
    let (region, district, mahalla, kind) = (
        tokens.next()?,
        tokens.next()?,
        tokens.next()?,
        tokens.next()?,
    );
    if tokens.next().is_some() {
        return None;
    }
    let place = if region == UNASSIGNED {
        None
    } else {
        Some(Place::new(region, district, mahalla))
    };
    Some(EventSubject { place, kind })
}

/// Splits `posbon.alerts.<region>.<district>.<mahalla>`; `None` for other subjects.
pub fn parse_alert_subject(subject: &str) -> Option<Place<'_>> {
    let rest = subject.strip_prefix("posbon.alerts.")?;
    let mut tokens = rest.split('.');
    let place = Place::new(tokens.next()?, tokens.next()?, tokens.next()?);
    tokens.next().is_none().then_some(place)
}

/// How a stream decides what to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Retention {
    /// Keep messages until a limit (age, bytes, count) removes the oldest.
    #[default]
    Limits,
    /// A work queue: a message is removed once a consumer acknowledges (or
    /// terminates) it, so the limits bound the work not yet done. Consumers
    /// of one work-queue stream must not overlap (one per subject).
    WorkQueue,
}

/// What a stream does when a new message would take it past `max_bytes`
/// or `max_messages`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Discard {
    /// Remove the oldest messages to make room.
    #[default]
    Old,
    /// Refuse the new message: the publisher gets [`crate::BusErrorKind::Full`]
    /// and can retry once consumers caught up. Nothing stored is lost.
    New,
}

/// Where a stream keeps its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Storage {
    /// On disk: survives a server restart.
    #[default]
    File,
    /// In the server's memory.
    Memory,
}

/// The configuration of one stream. [`crate::Bus::ensure_streams`] creates it or updates
/// an existing stream to match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// Stream name (a valid token; by convention upper case).
    pub name: String,
    /// The subject patterns the stream captures; no two streams may overlap.
    pub subjects: Vec<String>,
    /// What to keep.
    pub retention: Retention,
    /// Remove messages older than this; `None` keeps them until another limit applies.
    pub max_age: Option<Duration>,
    /// Remove the oldest messages above this many bytes; `None` for no limit.
    pub max_bytes: Option<u64>,
    /// Remove the oldest messages above this count; `None` for no limit.
    pub max_messages: Option<u64>,
    /// A re-sent `Nats-Msg-Id` within this window is not stored again.
    pub duplicate_window: Duration,
    /// Where the messages live.
    pub storage: Storage,
    /// Copies in a cluster (1, or 3 in production). The in-memory bus ignores it.
    pub replicas: usize,
    /// What happens when the byte or count limit is reached.
    pub discard: Discard,
}

impl StreamConfig {
    /// A file-backed, single-replica stream with limits retention, no size or age limit and
    /// the [`DEFAULT_DUPLICATE_WINDOW`].
    pub fn new(name: impl Into<String>, subjects: Vec<String>) -> Self {
        Self {
            name: name.into(),
            subjects,
            retention: Retention::Limits,
            max_age: None,
            max_bytes: None,
            max_messages: None,
            duplicate_window: DEFAULT_DUPLICATE_WINDOW,
            storage: Storage::File,
            replicas: 1,
            discard: Discard::Old,
        }
    }

    /// [`INGEST_STREAM`]: raw producer input, a buffer in front of ingest: a
    /// work queue of at most 1 GiB not yet processed, with no age limit.
    /// When it is full, a new message is refused (the producer gets an error
    /// to retry) instead of dropping one that producers were told was taken.
    pub fn ingest() -> Self {
        Self::new(INGEST_STREAM, vec![INGEST_ALL.to_owned()])
            .with_retention(Retention::WorkQueue)
            .with_max_bytes(GIB)
            .with_discard(Discard::New)
    }

    /// [`EVENTS_STREAM`]: enriched events, consumed by the indexer and the escalator.
    /// 7 days, 8 GiB (the store keeps the history; the stream covers consumer outages and
    /// replays).
    pub fn events() -> Self {
        Self::new(EVENTS_STREAM, vec![EVENTS_ALL.to_owned()])
            .with_max_age(Duration::from_secs(7 * DAY))
            .with_max_bytes(8 * GIB)
    }

    /// [`ALERTS_STREAM`]: escalations, for the live feed and its resumption. 30 days, 1 GiB.
    pub fn alerts() -> Self {
        Self::new(ALERTS_STREAM, vec![ALERTS_ALL.to_owned()])
            .with_max_age(Duration::from_secs(30 * DAY))
            .with_max_bytes(GIB)
    }

    /// [`DLQ_STREAM`]: rejected input with the reason in headers. 14 days, 1 GiB.
    pub fn dlq() -> Self {
        Self::new(DLQ_STREAM, vec![DLQ_ALL.to_owned()])
            .with_max_age(Duration::from_secs(14 * DAY))
            .with_max_bytes(GIB)
    }

    /// [`ACTIONS_STREAM`]: operators' actions on escalations arriving over NATS. 7 days,
    /// 256 MiB.
    pub fn actions() -> Self {
        Self::new(ACTIONS_STREAM, vec![ACTIONS_ALL.to_owned()])
            .with_max_age(Duration::from_secs(7 * DAY))
            .with_max_bytes(GIB / 4)
    }

    /// Sets [`StreamConfig::max_age`].
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// Sets [`StreamConfig::max_bytes`].
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = Some(max_bytes);
        self
    }

    /// Sets [`StreamConfig::max_messages`].
    pub fn with_max_messages(mut self, max_messages: u64) -> Self {
        self.max_messages = Some(max_messages);
        self
    }

    /// Sets [`StreamConfig::duplicate_window`].
    pub fn with_duplicate_window(mut self, window: Duration) -> Self {
        self.duplicate_window = window;
        self
    }

    /// Sets [`StreamConfig::storage`].
    pub fn with_storage(mut self, storage: Storage) -> Self {
        self.storage = storage;
        self
    }

    /// Sets [`StreamConfig::retention`].
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// Sets [`StreamConfig::discard`].
    pub fn with_discard(mut self, discard: Discard) -> Self {
        self.discard = discard;
        self
    }

    /// Sets [`StreamConfig::replicas`].
    pub fn with_replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas;
        self
    }

    /// Checks the name, the subject patterns, and that the limits make sense together.
    pub fn validate(&self) -> BusResult<()> {
        validate_name(&self.name)
            .map_err(|err| BusError::invalid(format!("invalid stream name: {err}")))?;
        if self.subjects.is_empty() {
            return Err(BusError::invalid(format!(
                "stream {} captures no subjects",
                self.name
            )));
        }
        for (index, subject) in self.subjects.iter().enumerate() {
            validate_pattern(subject)?;
            if let Some(other) = self.subjects[..index]
                .iter()
                .find(|other| patterns_overlap(subject, other))
            {
                return Err(BusError::invalid(format!(
                    "stream {}: subjects {other} and {subject} overlap",
                    self.name
                )));
            }
        }
        if self.replicas == 0 || self.replicas > 5 {
            return Err(BusError::invalid(format!(
                "stream {}: replicas must be 1..=5, got {}",
                self.name, self.replicas
            )));
        }
        if self.duplicate_window.is_zero() {
            return Err(BusError::invalid(format!(
                "stream {}: duplicate window must be positive",
                self.name
            )));
        }
        if let Some(max_age) = self.max_age
            && self.duplicate_window > max_age
        {
            return Err(BusError::invalid(format!(
                "stream {}: duplicate window {:?} exceeds max age {:?}",
                self.name, self.duplicate_window, max_age
            )));
        }
        Ok(())
    }
}

/// The five Posbon streams with their defaults: INGEST, EVENTS, ALERTS, DLQ, ACTIONS.
pub fn default_streams() -> Vec<StreamConfig> {
    vec![
        StreamConfig::ingest(),
        StreamConfig::events(),
        StreamConfig::alerts(),
        StreamConfig::dlq(),
        StreamConfig::actions(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_fast_path_agrees_with_the_character_rules() {
        let rule = |c: char| !(matches!(c, '.' | '*' | '>') || c.is_whitespace() || c.is_control());
        for c in (0u32..0x3000).filter_map(char::from_u32) {
            for token in [c.to_string(), format!("a{c}"), format!("{c}z")] {
                assert_eq!(
                    validate_token(&token).is_ok(),
                    token.chars().all(rule),
                    "{token:?}"
                );
            }
        }
    }

    #[test]
    fn tokens() {
        for good in [
            "tashkent",
            "chilonzor-017",
            "_unassigned",
            "camera_alert",
            "Ж",
        ] {
            assert!(validate_token(good).is_ok(), "{good}");
        }
        for bad in ["", "a.b", "*", "a>", "a b", "a\tb", "a\nb", "a\u{0}"] {
            assert!(validate_token(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn subjects_and_patterns() {
        assert!(validate_subject("posbon.ingest.incident").is_ok());
        assert!(validate_subject("posbon..x").is_err());
        assert!(validate_subject("posbon.*").is_err());
        assert!(validate_subject("").is_err());
        assert!(validate_pattern("posbon.*.x.>").is_ok());
        assert!(validate_pattern(">").is_ok());
        assert!(validate_pattern("posbon.>.x").is_err());
        assert!(validate_pattern("posbon.a*").is_err());
        assert!(validate_pattern("posbon.").is_err());
    }

    #[test]
    fn matching() {
        assert!(subject_matches(">", "a"));
        assert!(subject_matches("a.*", "a.b"));
        assert!(!subject_matches("a.*", "a.b.c"));
        assert!(!subject_matches("a.*", "a"));
        assert!(subject_matches("a.>", "a.b.c"));
        assert!(!subject_matches("a.>", "a"));
        assert!(subject_matches("a.b", "a.b"));
        assert!(!subject_matches("a.b", "a.c"));
    }

    #[test]
    fn overlap() {
        assert!(patterns_overlap("posbon.events.>", "posbon.events.x.>"));
        assert!(patterns_overlap("posbon.*.x", "posbon.y.*"));
        assert!(patterns_overlap("posbon.*", "posbon.>"));
        assert!(!patterns_overlap("posbon.events.>", "posbon.alerts.>"));
        assert!(!patterns_overlap("posbon.*", "posbon.a.b"));
        assert!(!patterns_overlap("a.>", "a"));
        for (i, a) in default_streams().iter().enumerate() {
            for b in &default_streams()[i + 1..] {
                assert!(!patterns_overlap(&a.subjects[0], &b.subjects[0]));
            }
        }
    }

    #[test]
    fn builders() {
        let place = Place::new("tashkent", "chilonzor", "chilonzor-017");
        assert_eq!(
            ingest_subject("camera_alert").unwrap(),
            "posbon.ingest.camera_alert"
        );
        assert!(ingest_subject("a.b").is_err());
        assert_eq!(
            alert_subject(place).unwrap(),
            "posbon.alerts.tashkent.chilonzor.chilonzor-017"
        );
        assert!(alert_subject(Place::new("a", "b c", "d")).is_err());
        assert!(event_subject(Some(Place::new("a", "*", "c")), "incident").is_err());
        assert_eq!(dlq_subject(Some("incident")), "posbon.dlq.incident");
        assert_eq!(dlq_subject(Some("bad.kind")), "posbon.dlq.unknown");
        assert_eq!(dlq_subject(None), "posbon.dlq.unknown");

        let subject = event_subject(Some(place), "incident").unwrap();
        let parsed = parse_event_subject(&subject).unwrap();
        assert_eq!(parsed.place, Some(place));
        assert_eq!(parsed.kind, "incident");
        let unassigned = event_subject(None, "incident").unwrap();
        assert_eq!(parse_event_subject(&unassigned).unwrap().place, None);
        assert!(parse_event_subject("posbon.events.a.b.c").is_none());
        assert!(parse_event_subject("posbon.events.a.b.c.d.e").is_none());
        let alert = alert_subject(place).unwrap();
        assert_eq!(parse_alert_subject(&alert), Some(place));
        assert_eq!(parse_alert_subject("posbon.alerts.a.b"), None);
    }

    #[test]
    fn default_stream_configs_are_valid() {
        let streams = default_streams();
        assert_eq!(
            streams.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            [
                INGEST_STREAM,
                EVENTS_STREAM,
                ALERTS_STREAM,
                DLQ_STREAM,
                ACTIONS_STREAM
            ]
        );
        for stream in &streams {
            stream.validate().unwrap();
            assert_eq!(stream.duplicate_window, DEFAULT_DUPLICATE_WINDOW);
            assert_eq!(stream.replicas, 1);
            assert_eq!(stream.storage, Storage::File);
        }
        let bad = StreamConfig::events().with_max_age(Duration::from_secs(60));
        assert!(bad.validate().is_err());
        assert!(
            StreamConfig::new("A.B", vec!["x".into()])
                .validate()
                .is_err()
        );
        assert!(StreamConfig::new("A", vec![]).validate().is_err());
        assert!(
            StreamConfig::new("A/B", vec!["x".into()])
                .validate()
                .is_err()
        );
        assert!(
            StreamConfig::new("A", vec!["a.*.x".into(), "a.y.>".into()])
                .validate()
                .is_err()
        );
    }
}

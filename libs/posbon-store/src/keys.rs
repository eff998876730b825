//! The key layout: order-preserving byte encodings of everything Posbon
//! stores.
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `e` | `e` · cell (u64 BE) · time (8 B) · event id | the event record ([`crate::codec`]) |
//! | `t` | `t` · time (8 B) · event id | the same event record |
//! | `i` | `i` · event id | the `e` key of the event |
//! | `c` | `c` · name | a checkpoint (format owned by its writer) |
//! | `x` | `x` · ... | escalation records and source precision ([`crate::escalations`]) |
//! | `r` | `r` · kind · ... | documents: reports, day segments, checkpoints ([`crate::documents`]) |
//! | `w` | `w` · hour (8 B) | write mark: a token that changes with every write of events in that hour |
//! | `g` | `g` | the mahalla registry the services share: its digest ([`crate::registry`]) |
//! | `l` | `l` · name | a lease: who holds a named thing until when ([`crate::leases`]) |
//!
//! *cell* is the event's H3 index at the storage resolution as a big-endian
//! `u64`; *time* is `occurred_at` in microseconds since the Unix epoch (UTC)
//! as an `i64` with its sign bit flipped, big-endian, so that byte order is
//! time order, before 1970 included; the *event id* is its bytes (visible
//! ASCII, 1..=128 bytes) and, being last, needs no terminator.
//!
//! Properties:
//!
//! * Tuples compare like their encodings: `(cell, time, id)` for `e` keys,
//!   `(time, id)` for `t` keys (a property test checks it).
//! * All events of one storage cell in `[from, to)` are the single range
//!   [`cell_time_range`]; all events of a coarser cell are the single range
//!   [`cell_span_range`], because the children of an H3 cell at a fixed finer
//!   resolution are exactly the valid indexes between two bounds
//!   ([`posbon_geo::children_range`]).
//! * All events with `occurred_at` in `[from, to)` are the range [`time_range`].
//! * Writing the same event again writes the same keys.

use chrono::{DateTime, TimeZone, Utc};

/// Prefix of the events-by-cell keys (the primary copy).
pub const EVENT_BY_CELL: u8 = b'e';
/// Prefix of the events-by-time keys.
pub const EVENT_BY_TIME: u8 = b't';
/// Prefix of the event-id index.
pub const EVENT_ID: u8 = b'i';
/// Prefix of checkpoints (consumer positions, job progress).
pub const CHECKPOINT: u8 = b'c';
/// Prefix of escalation records and source precision ([`crate::escalations`]).
pub const ESCALATION: u8 = b'x';
/// Prefix of documents: reports, day segments, checkpoints ([`crate::documents`]).
pub const DOCUMENT: u8 = b'r';
/// Prefix of the write marks: one key per hour of `occurred_at` that has
/// events, rewritten with a fresh token by every batch that writes an event
/// of that hour ([`crate::EventStoreExt::write_marks_digest`]).
pub const WRITE_MARK: u8 = b'w';
/// Prefix of identities: API tokens, users, sessions and login links
/// (`posbon-auth`).
pub const IDENTITY: u8 = b'u';
/// Prefix of the audit log (`posbon-auth`): records by sequence, and its head.
pub const AUDIT: u8 = b'a';
/// Prefix of the record of the mahalla registry the services share
/// ([`crate::registry`]).
pub const REGISTRY: u8 = b'g';
/// Prefix of leases ([`crate::leases`]).
pub const LEASE: u8 = b'l';

/// Microseconds in one hour: the granularity of the write marks.
pub const HOUR_MICROS: i64 = 3_600_000_000;

/// Length of an `e` key before the event id: prefix, cell, time.
pub const CELL_KEY_HEAD: usize = 1 + 8 + 8;
/// Length of a `t` key before the event id: prefix, time.
pub const TIME_KEY_HEAD: usize = 1 + 8;

/// Microseconds since the Unix epoch (UTC) of an instant in any time zone.
pub fn micros<Tz: TimeZone>(t: &DateTime<Tz>) -> i64 {
    t.timestamp_micros()
}

/// The instant of a microsecond timestamp; `None` outside chrono's range.
pub fn from_micros(micros: i64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_micros(micros)
}

/// Order-preserving encoding of a microsecond timestamp: sign bit flipped,
/// big-endian.
pub const fn encode_time(micros: i64) -> [u8; 8] {
    ((micros as u64) ^ (1 << 63)).to_be_bytes()
}

/// Inverse of [`encode_time`].
pub const fn decode_time(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

/// `e` · cell · time · id: the primary key of an event.
pub fn event_cell_key(cell: u64, micros: i64, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(CELL_KEY_HEAD + id.len());
    key.push(EVENT_BY_CELL);
    key.extend_from_slice(&cell.to_be_bytes());
    key.extend_from_slice(&encode_time(micros));
    key.extend_from_slice(id.as_bytes());
    key
}

/// `t` · time · id: the key of an event in time order.
pub fn event_time_key(micros: i64, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(TIME_KEY_HEAD + id.len());
    key.push(EVENT_BY_TIME);
    key.extend_from_slice(&encode_time(micros));
    key.extend_from_slice(id.as_bytes());
    key
}

/// `i` · id: the id-index key of an event.
pub fn event_id_key(id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + id.len());
    key.push(EVENT_ID);
    key.extend_from_slice(id.as_bytes());
    key
}

/// `c` · name: the key of a checkpoint.
pub fn checkpoint_key(name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + name.len());
    key.push(CHECKPOINT);
    key.extend_from_slice(name.as_bytes());
    key
}

/// The hour (since the epoch, rounded down) of a microsecond timestamp.
pub const fn hour_of(micros: i64) -> i64 {
    micros.div_euclid(HOUR_MICROS)
}

/// `w` · hour: the write mark of an hour ([`hour_of`]).
pub fn write_mark_key(hour: i64) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(WRITE_MARK);
    key.extend_from_slice(&encode_time(hour));
    key
}

/// The write marks of every hour that overlaps `[from, to)` (microseconds):
/// `[start, end)`; empty when `from >= to`.
pub fn write_mark_range(from: i64, to: i64) -> (Vec<u8>, Vec<u8>) {
    if from >= to {
        let key = write_mark_key(0);
        return (key.clone(), key);
    }
    let last = hour_of(to - 1);
    let end = match last.checked_add(1) {
        Some(next) => write_mark_key(next),
        None => vec![WRITE_MARK + 1],
    };
    (write_mark_key(hour_of(from)), end)
}

/// A decoded `e` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CellKey<'a> {
    /// H3 index at the storage resolution.
    pub cell: u64,
    /// `occurred_at` in microseconds since the epoch.
    pub micros: i64,
    /// Event id bytes.
    pub id: &'a [u8],
}

/// Decodes an `e` key; `None` when it is not one.
pub fn decode_event_cell_key(key: &[u8]) -> Option<CellKey<'_>> {
    let (&prefix, rest) = key.split_first()?;
    if prefix != EVENT_BY_CELL || rest.len() < 16 {
        return None;
    }
    let (cell, rest) = rest.split_at(8);
    let (time, id) = rest.split_at(8);
    Some(CellKey {
        cell: u64::from_be_bytes(cell.try_into().ok()?),
        micros: decode_time(time.try_into().ok()?),
        id,
    })
}

/// A decoded `t` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeKey<'a> {
    /// `occurred_at` in microseconds since the epoch.
    pub micros: i64,
    /// Event id bytes.
    pub id: &'a [u8],
}

/// Decodes a `t` key; `None` when it is not one.
pub fn decode_event_time_key(key: &[u8]) -> Option<TimeKey<'_>> {
    let (&prefix, rest) = key.split_first()?;
    if prefix != EVENT_BY_TIME || rest.len() < 8 {
        return None;
    }
    let (time, id) = rest.split_at(8);
    Some(TimeKey {
        micros: decode_time(time.try_into().ok()?),
        id,
    })
}

/// The keys of one storage cell with `occurred_at` in `[from, to)`
/// (microseconds): `[start, end)`.
pub fn cell_time_range(cell: u64, from: i64, to: i64) -> (Vec<u8>, Vec<u8>) {
    (cell_time_prefix(cell, from), cell_time_prefix(cell, to))
}

/// The keys of every storage cell in `lo..=hi`, at any time: `[start, end)`.
/// With the bounds of [`posbon_geo::children_range`] this is every event of a
/// coarser cell.
pub fn cell_span_range(lo: u64, hi: u64) -> (Vec<u8>, Vec<u8>) {
    (cell_prefix(lo), cell_end(hi))
}

/// `e` · cell: the start of a storage cell's keys.
pub fn cell_prefix(cell: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(9);
    key.push(EVENT_BY_CELL);
    key.extend_from_slice(&cell.to_be_bytes());
    key
}

/// The first key after every key of storage cell `cell`.
pub fn cell_end(cell: u64) -> Vec<u8> {
    match cell.checked_add(1) {
        Some(next) => cell_prefix(next),
        None => vec![EVENT_BY_CELL + 1],
    }
}

/// `e` · cell · time: the first key of `cell` at or after `micros`.
pub fn cell_time_prefix(cell: u64, micros: i64) -> Vec<u8> {
    let mut key = Vec::with_capacity(CELL_KEY_HEAD);
    key.push(EVENT_BY_CELL);
    key.extend_from_slice(&cell.to_be_bytes());
    key.extend_from_slice(&encode_time(micros));
    key
}

/// The `t` keys with `occurred_at` in `[from, to)` (microseconds): `[start, end)`.
pub fn time_range(from: i64, to: i64) -> (Vec<u8>, Vec<u8>) {
    let start = [&[EVENT_BY_TIME][..], &encode_time(from)].concat();
    let end = [&[EVENT_BY_TIME][..], &encode_time(to)].concat();
    (start, end)
}

/// Every key that starts with `prefix`: `[prefix, successor)`. An empty or
/// all-`0xFF` prefix has no upper bound below the largest key, so the end is
/// then `prefix` followed by a run of `0xFF` bytes longer than any key that
/// the store accepts ([`crate::MAX_KEY_BYTES`]).
pub fn prefix_range(prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return (prefix.to_vec(), end);
        }
    }
    let mut end = prefix.to_vec();
    end.resize(crate::MAX_KEY_BYTES + 1, 0xFF);
    (prefix.to_vec(), end)
}

/// The smallest key greater than `key`: `key` · `0x00`. The next page of a
/// scan starts there.
pub fn successor(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_encoding_orders_negative_before_positive() {
        let times = [
            i64::MIN,
            -1_000_000,
            -1,
            0,
            1,
            1_700_000_000_000_000,
            i64::MAX,
        ];
        for pair in times.windows(2) {
            assert!(encode_time(pair[0]) < encode_time(pair[1]));
        }
        for t in times {
            assert_eq!(decode_time(encode_time(t)), t);
        }
    }

    #[test]
    fn keys_round_trip() {
        let key = event_cell_key(0x08a2_a107_2b59_ffff, -5, "iiv-1");
        let decoded = decode_event_cell_key(&key).expect("cell key");
        assert_eq!(decoded.cell, 0x08a2_a107_2b59_ffff);
        assert_eq!(decoded.micros, -5);
        assert_eq!(decoded.id, b"iiv-1");
        let key = event_time_key(42, "x");
        let decoded = decode_event_time_key(&key).expect("time key");
        assert_eq!((decoded.micros, decoded.id), (42, &b"x"[..]));
        assert_eq!(decode_event_cell_key(&key), None);
        assert_eq!(decode_event_time_key(b"t1234"), None);
        assert_eq!(checkpoint_key("indexer"), b"cindexer");
        assert_eq!(event_id_key("a"), b"ia");
        // Write marks: one per hour, in hour order, ranges cover the hours a
        // window touches.
        assert!(write_mark_key(-1) < write_mark_key(0));
        assert_eq!(hour_of(HOUR_MICROS - 1), 0);
        assert_eq!(hour_of(-1), -1);
        let (lo, hi) = write_mark_range(HOUR_MICROS / 2, 2 * HOUR_MICROS + 1);
        assert_eq!((lo, hi), (write_mark_key(0), write_mark_key(3)));
        let (lo, hi) = write_mark_range(5, 5);
        assert!(lo >= hi);
    }

    #[test]
    fn prefix_ranges() {
        assert_eq!(prefix_range(b"e"), (b"e".to_vec(), b"f".to_vec()));
        assert_eq!(prefix_range(b"a\xff"), (b"a\xff".to_vec(), b"b".to_vec()));
        let (start, end) = prefix_range(b"\xff");
        assert_eq!(start, b"\xff");
        assert!(end.len() > crate::MAX_KEY_BYTES);
        assert_eq!(successor(b"ab"), b"ab\0");
    }
}

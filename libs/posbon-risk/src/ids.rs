//! Event ids of the hits the engine keeps (recent lists and rule windows),
//! written one after the other into shared chunks of memory rather than
//! allocated one by one.
//!
//! Hits leave the lists about a day of event time after they arrive, in
//! nearly the order they arrived. With one allocation per id, releasing a
//! hit touched memory last used a day earlier: a cache miss per event on a
//! large registry, plus a free. Here a hit holds its chunk (reference
//! counted) and a range in it; the hits that leave at about the same time
//! share a few chunks whose counts stay in the cache, and a chunk is freed
//! once, when its last hit leaves. The engine's daily housekeeping prunes
//! every list, so a chunk outlives its ids by about a day at most; the
//! windows of rules longer than the evidence window keep their ids in
//! allocations of their own (`Ctx::kept_for`).

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes per chunk: about 450 ids of 36 bytes.
const CHUNK_BYTES: usize = 16 * 1024;

/// Bytes of ids. Atomic bytes, so that the writer can fill the chunk that
/// hits already share without `unsafe`; the writer is the engine, which is
/// used from one thread at a time (relaxed stores compile to plain ones).
struct Chunk(Box<[AtomicU8]>);

impl Chunk {
    /// An empty chunk of `len` bytes, to be filled by an [`IdWriter`].
    fn new(len: usize) -> Arc<Self> {
        Arc::new(Chunk((0..len).map(|_| AtomicU8::new(0)).collect()))
    }
}

/// The id of an event kept by the engine.
#[derive(Clone)]
pub(crate) struct EventId {
    chunk: Arc<Chunk>,
    start: u32,
    len: u32,
}

impl EventId {
    /// An id in a chunk of its own (ids read from checkpoints, tests).
    pub(crate) fn new(id: &str) -> Self {
        EventId {
            chunk: Arc::new(Chunk(id.bytes().map(AtomicU8::new).collect())),
            start: 0,
            len: id.len() as u32,
        }
    }

    /// The same id in a chunk of its own.
    pub(crate) fn detached(&self) -> Self {
        EventId::new(&self.as_string())
    }

    fn bytes(&self) -> impl Iterator<Item = u8> + '_ {
        let (start, len) = (self.start as usize, self.len as usize);
        self.chunk.0[start..start + len]
            .iter()
            .map(|b| b.load(Relaxed))
    }

    /// The id as text.
    pub(crate) fn as_string(&self) -> String {
        // Written from a `&str`, byte for byte.
        String::from_utf8_lossy(&self.bytes().collect::<Vec<u8>>()).into_owned()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.as_string(), f)
    }
}

impl PartialEq for EventId {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.bytes().eq(other.bytes())
    }
}

impl Eq for EventId {}

impl PartialOrd for EventId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The order of the ids as strings.
impl Ord for EventId {
    fn cmp(&self, other: &Self) -> Ordering {
        self.bytes().cmp(other.bytes())
    }
}

impl From<&str> for EventId {
    fn from(id: &str) -> Self {
        EventId::new(id)
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.as_string())
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let id = String::deserialize(deserializer)?;
        Ok(EventId::new(&id))
    }
}

/// Writes ids into the current chunk, starting a new one when it is full.
#[derive(Default)]
pub(crate) struct IdWriter {
    chunk: Option<Arc<Chunk>>,
    used: usize,
}

impl IdWriter {
    /// `id`, kept.
    pub(crate) fn write(&mut self, id: &str) -> EventId {
        let n = id.len();
        if n > CHUNK_BYTES / 4 {
            return EventId::new(id);
        }
        let chunk = match &self.chunk {
            Some(c) if self.used + n <= c.0.len() => Arc::clone(c),
            _ => {
                let c = Chunk::new(CHUNK_BYTES);
                self.chunk = Some(Arc::clone(&c));
                self.used = 0;
                c
            }
        };
        for (slot, b) in chunk.0[self.used..self.used + n].iter().zip(id.bytes()) {
            slot.store(b, Relaxed);
        }
        let start = self.used as u32;
        self.used += n;
        EventId {
            chunk,
            start,
            len: n as u32,
        }
    }
}

/// A copy writes into chunks of its own: two writers filling one chunk
/// would write over each other's ids.
impl Clone for IdWriter {
    fn clone(&self) -> Self {
        IdWriter::default()
    }
}

impl fmt::Debug for IdWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdWriter")
            .field("used", &self.used)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_back_compare_and_serialise_as_strings() {
        let mut w = IdWriter::default();
        let texts: Vec<String> = (0..2000)
            .map(|i| format!("evt-{i:05}-{}", "x".repeat(i % 40)))
            .collect();
        let ids: Vec<EventId> = texts.iter().map(|t| w.write(t)).collect();
        for (id, text) in ids.iter().zip(&texts) {
            assert_eq!(id.to_string(), *text);
            assert_eq!(*id, EventId::new(text));
            let json = serde_json::to_string(id).expect("serialises");
            assert_eq!(json, serde_json::to_string(text).expect("serialises"));
            let back: EventId = serde_json::from_str(&json).expect("deserialises");
            assert_eq!(back, *id);
        }
        for (a, ta) in ids.iter().zip(&texts).step_by(37) {
            for (b, tb) in ids.iter().zip(&texts).step_by(41) {
                assert_eq!(a.cmp(b), ta.cmp(tb), "{ta} {tb}");
            }
        }
        // A detached id is equal and shares no chunk.
        let detached = ids[7].detached();
        assert_eq!(detached, ids[7]);
        assert!(!Arc::ptr_eq(&detached.chunk, &ids[7].chunk));
        assert!(Arc::ptr_eq(&ids[7].chunk, &ids[8].chunk));
        // A copy of the writer never writes over the ids of the original.
        let mut copy = w.clone();
        let other = copy.write("other-id");
        let mine = w.write("mine-id");
        assert_eq!(
            (other.to_string(), mine.to_string()),
            ("other-id".to_owned(), "mine-id".to_owned())
        );
        assert_eq!(ids[1999].to_string(), texts[1999]);
    }
}

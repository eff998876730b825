//! The engine's maps (H3 cells and mahalla ids): foldhash under a fixed seed,
//! and [`IdMap`] for ids kept inline. Keys come from the registry and from
//! validated events, not from an adversary choosing collisions, and nothing
//! iterates these maps in an order that reaches the outputs.

use std::collections::HashMap;
use std::hash::Hasher;

/// A `HashMap` with foldhash's fast hasher under a fixed seed (the same
/// hasher as the workspace's other maps; the risk benchmark chose it over a
/// hand-written FxHash, docs/perf/risk.md).
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// A map from string ids to `u32` that keeps ids of up to [`SHORT`] bytes
/// in the table itself. A lookup then reads its bucket and nothing else,
/// where a `HashMap<String, _>` also follows the key's heap pointer to
/// compare it: one more cache miss per event once the registry (10,000
/// mahallas) no longer fits in the cache. Longer ids live in a second map.
#[derive(Debug, Clone, Default)]
pub(crate) struct IdMap {
    short: FastMap<ShortKey, u32>,
    long: FastMap<String, u32>,
}

/// The longest id kept inline by [`IdMap`].
const SHORT: usize = 31;

/// An id of at most [`SHORT`] bytes, zero-padded, its length in the last byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ShortKey([u8; SHORT + 1]);

impl ShortKey {
    #[inline]
    fn new(id: &str) -> Option<Self> {
        let b = id.as_bytes();
        if b.len() > SHORT {
            return None;
        }
        let mut k = [0u8; SHORT + 1];
        k[..b.len()].copy_from_slice(b);
        k[SHORT] = b.len() as u8;
        Some(ShortKey(k))
    }
}

impl std::hash::Hash for ShortKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        for c in self.0.chunks_exact(8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            state.write_u64(u64::from_le_bytes(b));
        }
    }
}

impl IdMap {
    /// The value of `id`.
    #[inline]
    pub(crate) fn get(&self, id: &str) -> Option<&u32> {
        match ShortKey::new(id) {
            Some(k) => self.short.get(&k),
            None => self.long.get(id),
        }
    }

    /// Whether `id` has a value.
    pub(crate) fn contains_key(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// Sets the value of `id`, returning the previous one.
    pub(crate) fn insert(&mut self, id: &str, value: u32) -> Option<u32> {
        match ShortKey::new(id) {
            Some(k) => self.short.insert(k, value),
            None => self.long.insert(id.to_owned(), value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_map_keeps_short_and_long_ids_apart_and_exact() {
        let mut m = IdMap::default();
        let long = "x".repeat(SHORT + 1);
        let edge = "y".repeat(SHORT);
        for (i, id) in ["", "a", "a\0", "tas-yun-012", &edge, &long]
            .into_iter()
            .enumerate()
        {
            assert_eq!(m.insert(id, i as u32), None, "{id:?}");
        }
        assert_eq!(m.get(""), Some(&0));
        assert_eq!(m.get("a"), Some(&1));
        assert_eq!(m.get("a\0"), Some(&2));
        assert_eq!(m.get("tas-yun-012"), Some(&3));
        assert_eq!(m.get(&edge), Some(&4));
        assert_eq!(m.get(&long), Some(&5));
        assert_eq!(m.get("tas-yun-01"), None);
        assert_eq!(m.get(&"x".repeat(SHORT)), None);
        assert!(!m.contains_key("b"));
        assert_eq!(m.insert("a", 9), Some(1));
        assert_eq!(m.get("a"), Some(&9));
    }
}

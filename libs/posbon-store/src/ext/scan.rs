//! The scans behind [`EventStoreExt::cell_record_pages`](super::EventStoreExt::cell_record_pages):
//! `RangeScan` (one range per storage cell) and `CellScan` (an adaptive skip
//! scan), with `next_cell` and their chunk and range limits.

use crate::error::{Result, StoreError};
use crate::keys::{cell_time_prefix, decode_event_cell_key, successor};
use crate::store::{EventStore, KvPair};

/// The smallest H3 index at `resolution` after `cell` (a cell at that
/// resolution): the next value of its last digit, carrying past digit 6 into
/// the coarser digits and then the base cell. Indexes in between have a
/// digit 7 and are not cells, so no event key lies between the two. Falls
/// back to `cell + 1` (always safe) when the carry runs out.
fn next_cell(cell: u64, resolution: u8) -> Option<u64> {
    const BASE_SHIFT: u32 = 45;
    let mut next = cell;
    for r in (1..=u32::from(resolution.min(15))).rev() {
        let shift = 3 * (15 - r);
        if (next >> shift) & 0b111 < 6 {
            return Some(next + (1 << shift));
        }
        next &= !(0b111 << shift);
    }
    let base = (next >> BASE_SHIFT) & 0x7F;
    if base < 121 {
        Some(next + (1 << BASE_SHIFT))
    } else {
        cell.checked_add(1)
    }
}

/// The most storage cells a coarse cell's scan reads as ranges of their own
/// (a res-5 cell has 16,807 res-10 cells); above, it skip-scans.
pub(super) const MAX_CELLS_AS_RANGES: u64 = 20_000;
/// Ranges asked for by one [`EventStore::scan_ranges`] of a [`RangeScan`].
const RANGES_PER_READ: usize = 1024;

/// The storage cells of a coarse cell, each its own range over the window,
/// read many at a time ([`EventStore::scan_ranges`]), in key order.
pub(super) struct RangeScan<'a, S: ?Sized> {
    pub(super) store: &'a S,
    /// Sorted, one per storage cell.
    pub(super) ranges: Vec<(Vec<u8>, Vec<u8>)>,
    /// The first range not asked for yet.
    pub(super) pos: usize,
    pub(super) page: usize,
    /// Answers not yet yielded, with the end of their range.
    pub(super) ready: std::collections::VecDeque<(Vec<KvPair>, Vec<u8>)>,
    /// The rest of a range whose answer was full, read before `ready`.
    pub(super) carry: Option<(Vec<u8>, Vec<u8>)>,
}

impl<S: EventStore + ?Sized> RangeScan<'_, S> {
    pub(super) async fn next_page(mut self) -> Result<Option<(Vec<KvPair>, Self)>> {
        loop {
            if let Some((start, end)) = self.carry.take() {
                let items = self.store.scan(&start, &end, self.page).await?;
                if items.len() == self.page
                    && let Some((last, _)) = items.last()
                {
                    self.carry = Some((successor(last), end));
                }
                if !items.is_empty() {
                    return Ok(Some((items, self)));
                }
                continue;
            }
            let mut out = Vec::new();
            while let Some((list, end)) = self.ready.pop_front() {
                let full = list.len() >= self.page;
                if full && let Some((last, _)) = list.last() {
                    self.carry = Some((successor(last), end));
                }
                out.extend(list);
                if full || out.len() >= self.page {
                    break;
                }
            }
            if !out.is_empty() {
                return Ok(Some((out, self)));
            }
            if self.carry.is_some() {
                continue;
            }
            if self.pos >= self.ranges.len() {
                return Ok(None);
            }
            let group_end = (self.pos + RANGES_PER_READ).min(self.ranges.len());
            let group = &self.ranges[self.pos..group_end];
            let lists = self.store.scan_ranges(group, self.page).await?;
            let ends = group.iter().map(|(_, end)| end.clone());
            self.ready.extend(lists.into_iter().zip(ends));
            self.pos = group_end;
        }
    }
}

/// First chunk of a [`CellScan`] over several storage cells.
pub(super) const FIRST_CHUNK: usize = 32;
/// Smallest chunk of a [`CellScan`].
const MIN_CHUNK: usize = 8;

/// An adaptive skip scan over the storage cells of `[next, end)` that yields
/// only the keys with a time in `[from, to)`.
pub(super) struct CellScan<'a, S: ?Sized> {
    pub(super) store: &'a S,
    /// Where the next read starts; `None` when finished.
    pub(super) next: Option<Vec<u8>>,
    pub(super) end: Vec<u8>,
    pub(super) from: i64,
    pub(super) to: i64,
    /// Largest chunk.
    pub(super) page: usize,
    /// The storage resolution.
    pub(super) resolution: u8,
    /// Records asked for by the next read.
    pub(super) chunk: usize,
}

impl<S: EventStore + ?Sized> CellScan<'_, S> {
    /// The next non-empty page of keys in the window, and the scan to
    /// continue with.
    pub(super) async fn next_page(mut self) -> Result<Option<(Vec<KvPair>, Self)>> {
        while let Some(start) = self.next.take() {
            let items = self.store.scan(&start, &self.end, self.chunk).await?;
            let full = items.len() == self.chunk;
            let mut last = None;
            let mut kept = Vec::with_capacity(items.len());
            for (key, value) in items {
                let found = decode_event_cell_key(&key)
                    .ok_or_else(|| StoreError::corrupt("malformed event key"))?;
                last = Some((found.cell, found.micros));
                if (self.from..self.to).contains(&found.micros) {
                    kept.push((key, value));
                }
            }
            if full && let Some((cell, at)) = last {
                // Resume after the last key read, skipping what cannot be in
                // the window.
                self.next = if at < self.from {
                    Some(cell_time_prefix(cell, self.from))
                } else if at >= self.to {
                    next_cell(cell, self.resolution).map(|next| cell_time_prefix(next, self.from))
                } else {
                    kept.last().map(|(key, _)| successor(key))
                };
                self.chunk = (2 * kept.len()).clamp(MIN_CHUNK.min(self.page), self.page);
            }
            if !kept.is_empty() {
                return Ok(Some((kept, self)));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use posbon_geo::{CellIndex, LatLng, Resolution};

    #[test]
    fn next_cell_is_the_next_valid_index() {
        let parent = LatLng::new(41.31, 69.25)
            .expect("valid")
            .to_cell(Resolution::Seven);
        for res in [Resolution::Eight, Resolution::Ten] {
            let mut children: Vec<u64> = parent.children(res).map(u64::from).collect();
            children.sort_unstable();
            for pair in children.windows(2) {
                assert_eq!(next_cell(pair[0], u8::from(res)), Some(pair[1]), "{res}");
            }
        }
        // Across a base cell.
        let a = CellIndex::base_cells().nth(5).expect("base cell");
        let b = CellIndex::base_cells().nth(6).expect("base cell");
        let last_child = |c: CellIndex| c.children(Resolution::Two).map(u64::from).max();
        let first_child = |c: CellIndex| c.children(Resolution::Two).map(u64::from).min();
        let last = last_child(a).expect("children");
        assert_eq!(next_cell(last, 2), first_child(b));
    }
}

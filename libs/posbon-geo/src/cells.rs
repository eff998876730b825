//! H3 helpers the rest of the system needs: neighbours, parents and the key
//! ranges of children.

use std::ops::RangeInclusive;

use h3o::{CellIndex, Resolution};

const RES_OFFSET: u32 = 52;
const RES_MASK: u64 = 0b1111 << RES_OFFSET;
const DIGIT_BITS: u32 = 3;

/// The cell and every cell within `k` steps of it (the grid disk), sorted.
pub fn grid_disk(cell: CellIndex, k: u32) -> Vec<CellIndex> {
    let mut cells: Vec<CellIndex> = cell.grid_disk(k);
    cells.sort_unstable();
    cells
}

/// The parent of `cell` at `resolution`, or `None` when `resolution` is finer
/// than the cell's own.
pub fn parent(cell: CellIndex, resolution: Resolution) -> Option<CellIndex> {
    cell.parent(resolution)
}

/// The smallest and largest H3 index of the children of `cell` at the finer
/// `resolution`, as raw `u64`.
///
/// Children of one parent at a fixed resolution are contiguous in index order:
/// they share the parent's digits and differ only in the digits below it. No
/// valid index of another parent lies between these bounds, so "every event
/// of this cell" is one range scan over keys that start with the storage cell.
/// Returns `None` when `resolution` is coarser than the cell's.
pub fn children_range(cell: CellIndex, resolution: Resolution) -> Option<RangeInclusive<u64>> {
    let own = u8::from(cell.resolution());
    let target = u8::from(resolution);
    if target < own {
        return None;
    }
    let raw = u64::from(cell);
    let with_res = (raw & !RES_MASK) | (u64::from(target) << RES_OFFSET);
    let mut low = with_res;
    let mut high = with_res;
    for r in (own + 1)..=target {
        let shift = (15 - u32::from(r)) * DIGIT_BITS;
        low &= !(0b111 << shift); // digit 0
        high = (high & !(0b111 << shift)) | (0b110 << shift); // digit 6
    }
    Some(low..=high)
}

/// The `u64` range that holds every index at `resolution` inside `cell`, for
/// filtering raw indexes without decoding them.
pub fn contains_raw(range: &RangeInclusive<u64>, raw: u64) -> bool {
    range.contains(&raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use h3o::LatLng;

    #[test]
    fn children_are_exactly_the_indexes_in_the_range() {
        let parent = LatLng::new(41.3, 69.25)
            .expect("valid")
            .to_cell(Resolution::Seven);
        let range = children_range(parent, Resolution::Ten).expect("finer");
        let children: Vec<u64> = parent.children(Resolution::Ten).map(u64::from).collect();
        assert_eq!(children.len(), 343);
        assert!(children.iter().all(|c| range.contains(c)));
        assert_eq!(*range.start(), *children.iter().min().expect("some"));
        assert_eq!(*range.end(), *children.iter().max().expect("some"));
        // Neighbours of the parent have children outside the range.
        for n in grid_disk(parent, 1).into_iter().filter(|&n| n != parent) {
            for c in n.children(Resolution::Ten) {
                assert!(!range.contains(&u64::from(c)), "{c} of neighbour {n}");
            }
        }
        assert_eq!(
            children_range(parent, Resolution::Seven),
            Some(u64::from(parent)..=u64::from(parent))
        );
        assert_eq!(children_range(parent, Resolution::Six), None);
    }
}

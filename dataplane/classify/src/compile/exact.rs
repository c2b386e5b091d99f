//! Exact mode: segments folded into equivalence classes, one table (or
//! two) per class pair, found through a dense or hashed pair index.

use super::*;

/// (source class, destination class) → table holding every rule that
/// applies to the pair, for pairs that some rule with two segment lists
/// selects.
#[derive(Debug)]
pub(super) enum PairIndex {
    Dense {
        rows: usize,
        cols: usize,
        cells: Box<[u32]>,
    },
    Sparse(HashMap<u64, u32>),
}

impl PairIndex {
    /// An empty index over `rows × cols` keys: a dense matrix when it has at
    /// most `max_dense` cells, else a hash map.
    pub(super) fn new(rows: usize, cols: usize, max_dense: usize) -> Self {
        match rows.checked_mul(cols) {
            Some(cells) if cells <= max_dense => PairIndex::Dense {
                rows,
                cols,
                cells: vec![NO_TABLE; cells].into_boxed_slice(),
            },
            _ => PairIndex::Sparse(HashMap::new()),
        }
    }

    /// Table of (`src`, `dst`), or `NO_TABLE` (also for keys out of range).
    #[inline]
    pub(super) fn get(&self, src: u32, dst: u32) -> u32 {
        match self {
            PairIndex::Dense { rows, cols, cells } => {
                if src as usize >= *rows || dst as usize >= *cols {
                    return NO_TABLE;
                }
                cells
                    .get(src as usize * *cols + dst as usize)
                    .copied()
                    .unwrap_or(NO_TABLE)
            }
            PairIndex::Sparse(map) => map.get(&pair_key(src, dst)).copied().unwrap_or(NO_TABLE),
        }
    }

    pub(super) fn set(&mut self, src: u32, dst: u32, table: u32) {
        match self {
            PairIndex::Dense { rows, cols, cells } => {
                if (src as usize) < *rows && (dst as usize) < *cols {
                    if let Some(cell) = cells.get_mut(src as usize * *cols + dst as usize) {
                        *cell = table;
                    }
                }
            }
            PairIndex::Sparse(map) => {
                map.insert(pair_key(src, dst), table);
            }
        }
    }
}

pub(super) fn pair_key(src: u32, dst: u32) -> u64 {
    (u64::from(src) << 32) | u64::from(dst)
}

/// Equivalence classes of segments on one side (source or destination):
/// two segments share a class when exactly the same segment lists select them.
pub(super) struct Classes {
    pub(super) of_segment: Vec<u32>,
    /// Per interned set id: the distinct classes of its members (empty for
    /// sets not used on this side).
    pub(super) of_set: Vec<Vec<u32>>,
    pub(super) count: usize,
}

impl Classes {
    pub(super) fn build(segment_count: usize, sets: &[&[SegIdx]], used: &[u32]) -> Classes {
        let mut signature: Vec<Vec<u32>> = vec![Vec::new(); segment_count];
        for &set in used {
            for &seg in sets.get(set as usize).copied().unwrap_or(&[]) {
                if let Some(sig) = signature.get_mut(seg as usize) {
                    sig.push(set);
                }
            }
        }
        let mut ids: HashMap<Vec<u32>, u32> = HashMap::new();
        ids.insert(Vec::new(), 0);
        let mut of_segment = Vec::with_capacity(segment_count);
        for sig in signature {
            let next = ids.len() as u32;
            of_segment.push(*ids.entry(sig).or_insert(next));
        }
        let mut of_set = vec![Vec::new(); sets.len()];
        for &set in used {
            let members = sets.get(set as usize).copied().unwrap_or(&[]);
            let classes = distinct(
                members
                    .iter()
                    .filter_map(|&seg| of_segment.get(seg as usize).copied()),
            );
            if let Some(slot) = of_set.get_mut(set as usize) {
                *slot = classes;
            }
        }
        Classes {
            of_segment,
            of_set,
            count: ids.len(),
        }
    }

    pub(super) fn of_set(&self, set: u32) -> &[u32] {
        self.of_set.get(set as usize).map_or(&[], Vec::as_slice)
    }
}

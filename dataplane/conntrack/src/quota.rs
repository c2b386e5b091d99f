//! Quotas of tracked connections per source address and per source
//! segment, so one host (or one segment) cannot fill a worker's table.
//!
//! Counts live in count-min sketches: two rows of counters, each key adding
//! to one counter per row; the estimate is the smaller of its two. The
//! estimate is never below the true count, so a quota is never exceeded;
//! a key is over-counted only when both of its counters are shared with
//! heavier keys (probability about `1 / width²` per pair), which can only
//! make its quota stricter. Fixed memory, allocated once; every tracked
//! connection adds on insert and subtracts on removal, so the counts stay
//! exact sums.

use crate::table::ConfigError;

/// Per-worker quotas (0 = unlimited).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// Most connections one source address (in one VLAN domain) may have
    /// tracked on this worker at once.
    pub per_source: u32,
    /// Most connections the sources of one segment may have tracked on this
    /// worker at once.
    pub per_segment: u32,
}

impl Quotas {
    /// No quota.
    pub const UNLIMITED: Quotas = Quotas {
        per_source: 0,
        per_segment: 0,
    };

    /// The defaults for a table of `capacity` connections: an eighth of the
    /// table per source address, three quarters per segment (so one
    /// segment's hosts always leave room for the others).
    #[must_use]
    pub fn defaults_for(capacity: usize) -> Quotas {
        let cap = u32::try_from(capacity).unwrap_or(u32::MAX);
        Quotas {
            per_source: (cap / 8).max(1),
            per_segment: (cap / 4 * 3).max(1),
        }
    }
}

/// A count-min sketch of `2 × width` counters.
#[derive(Debug)]
pub(crate) struct Sketch {
    counts: Vec<u32>,
    mask: usize,
    limit: u32,
}

impl Sketch {
    /// `width` is rounded up to a power of two; `limit` 0 disables the
    /// sketch (no memory).
    pub(crate) fn new(width: usize, limit: u32) -> Result<Sketch, ConfigError> {
        let width = if limit == 0 {
            0
        } else {
            width.max(64).next_power_of_two()
        };
        let mut counts = Vec::new();
        counts
            .try_reserve_exact(2 * width)
            .map_err(|_| ConfigError::OutOfMemory {
                bytes: 2 * width * core::mem::size_of::<u32>(),
            })?;
        counts.resize(2 * width, 0);
        Ok(Sketch {
            counts,
            mask: width.saturating_sub(1),
            limit,
        })
    }

    #[inline]
    fn cells(&self, hash: u64) -> (usize, usize) {
        let w = self.mask + 1;
        (
            hash as usize & self.mask,
            w + ((hash >> 32) as usize & self.mask),
        )
    }

    /// Is a quota set? (Unlimited sketches take no hashing.)
    #[inline]
    pub(crate) fn enabled(&self) -> bool {
        self.limit != 0
    }

    /// Is there room for one more connection of the key hashing to `hash`?
    #[inline]
    pub(crate) fn has_room(&self, hash: u64) -> bool {
        if self.limit == 0 {
            return true;
        }
        let (a, b) = self.cells(hash);
        let est = self
            .counts
            .get(a)
            .copied()
            .unwrap_or(0)
            .min(self.counts.get(b).copied().unwrap_or(0));
        est < self.limit
    }

    #[inline]
    pub(crate) fn add(&mut self, hash: u64) {
        if self.limit == 0 {
            return;
        }
        let (a, b) = self.cells(hash);
        for i in [a, b] {
            if let Some(c) = self.counts.get_mut(i) {
                *c = c.saturating_add(1);
            }
        }
    }

    #[inline]
    pub(crate) fn sub(&mut self, hash: u64) {
        if self.limit == 0 {
            return;
        }
        let (a, b) = self.cells(hash);
        for i in [a, b] {
            if let Some(c) = self.counts.get_mut(i) {
                *c = c.saturating_sub(1);
            }
        }
    }

    /// Bytes of counters.
    pub(crate) fn bytes(&self) -> usize {
        self.counts.capacity() * core::mem::size_of::<u32>()
    }

    /// Sum of one row: the number of keys counted (tests).
    #[cfg(test)]
    pub(crate) fn total(&self) -> u64 {
        self.counts[..=self.mask]
            .iter()
            .map(|&c| u64::from(c))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_reaches_its_limit_and_others_keep_room() {
        let mut s = Sketch::new(1024, 3).unwrap();
        let h = 0x1234_5678_9abc_def0;
        for _ in 0..3 {
            assert!(s.has_room(h));
            s.add(h);
        }
        assert!(!s.has_room(h));
        assert!(s.has_room(0x0bad_cafe_0000_0001));
        s.sub(h);
        assert!(s.has_room(h));
        assert_eq!(s.total(), 2);
    }

    #[test]
    fn unlimited_uses_no_memory_and_always_has_room() {
        let mut s = Sketch::new(1 << 20, 0).unwrap();
        assert!(s.counts.is_empty());
        s.add(1);
        assert!(s.has_room(1));
    }

    #[test]
    fn defaults_scale_with_capacity() {
        let q = Quotas::defaults_for(4096);
        assert_eq!((q.per_source, q.per_segment), (512, 3072));
        assert_eq!(Quotas::defaults_for(1).per_source, 1);
    }
}

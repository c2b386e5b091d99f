//! Folding of repeated denials, so the event stream (and the disk behind
//! it) cannot be filled from the wire.
//!
//! Two limits, both per worker, both allocation-free after construction:
//! - repeated denials of the same source address, destination segment and
//!   service within one interval are folded: the first is reported, the
//!   rest only counted, and the next report of that key carries how many
//!   were folded into the previous interval (`repeats`);
//! - reported denials are rate-limited by a token bucket (a flood from
//!   random sources has no repeats to fold).
//!
//! What is not reported is counted (`events_suppressed`).

use bulkhead_packet::flow::Addr;

/// Fold and rate settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FoldConfig {
    /// Interval within which repeats of one denial are folded, ns (0: no folding).
    pub interval_ns: u64,
    /// Denial events reported per second per worker (0: unlimited).
    pub rate_per_sec: u32,
    /// Burst allowance of the rate limit, events.
    pub burst: u32,
}

impl Default for FoldConfig {
    fn default() -> Self {
        FoldConfig {
            interval_ns: 1_000_000_000,
            rate_per_sec: 1000,
            burst: 1000,
        }
    }
}

/// Slots of the fold table: a direct-mapped cache of recent denials.
const SLOTS: usize = 4096;

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    key: u64,
    start: u64,
    folded: u32,
}

/// The per-worker folder.
#[derive(Debug)]
pub struct DenyFolder {
    cfg: FoldConfig,
    slots: Box<[Slot]>,
    seed: u64,
    tokens: u64,
    last_refill: u64,
}

/// What to do with one denial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FoldVerdict {
    /// Report it; `repeats` denials of the same key were folded into the
    /// previous interval.
    Report { repeats: u32 },
    /// Count it only.
    Suppress,
}

impl DenyFolder {
    pub fn new(cfg: FoldConfig, seed: u64) -> DenyFolder {
        DenyFolder {
            cfg,
            slots: vec![Slot::default(); SLOTS].into_boxed_slice(),
            seed,
            tokens: u64::from(cfg.burst),
            last_refill: 0,
        }
    }

    /// A new connection from `src` to segment `dst_segment` for service
    /// (`proto`, `svc`) was denied at `now` (ns).
    pub fn denied(
        &mut self,
        src: Addr,
        dst_segment: u32,
        proto: u8,
        svc: u16,
        now: u64,
    ) -> FoldVerdict {
        let mut repeats = 0;
        if self.cfg.interval_ns > 0 {
            let key = self.key(src, dst_segment, proto, svc);
            let i = (key as usize) & (SLOTS - 1);
            if let Some(slot) = self.slots.get_mut(i) {
                if slot.key == key && now.saturating_sub(slot.start) < self.cfg.interval_ns {
                    slot.folded = slot.folded.saturating_add(1);
                    return FoldVerdict::Suppress;
                }
                if slot.key == key {
                    repeats = slot.folded;
                }
                *slot = Slot {
                    key,
                    start: now,
                    folded: 0,
                };
            }
        }
        if self.cfg.rate_per_sec > 0 && !self.take_token(now) {
            return FoldVerdict::Suppress;
        }
        FoldVerdict::Report { repeats }
    }

    fn take_token(&mut self, now: u64) -> bool {
        let elapsed = now.saturating_sub(self.last_refill);
        let add = u128::from(elapsed) * u128::from(self.cfg.rate_per_sec) / 1_000_000_000;
        if add > 0 {
            self.tokens = (self.tokens + add.min(u128::from(u32::MAX)) as u64)
                .min(u64::from(self.cfg.burst.max(1)));
            self.last_refill = now;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }

    fn key(&self, src: Addr, dst_segment: u32, proto: u8, svc: u16) -> u64 {
        let mix = bulkhead_conntrack::fold;
        let rest = (u64::from(dst_segment) << 32) | (u64::from(proto) << 16) | u64::from(svc);
        let h = mix(
            src as u64 ^ self.seed,
            (src >> 64) as u64 ^ 0x9e37_79b9_7f4a_7c15,
        );
        mix(h ^ rest, 0xbf58_476d_1ce4_e5b9) | 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn repeats_within_an_interval_fold_into_the_next_report() {
        let mut f = DenyFolder::new(FoldConfig::default(), 7);
        assert_eq!(
            f.denied(1, 20, 6, 22, S),
            FoldVerdict::Report { repeats: 0 }
        );
        for _ in 0..99 {
            assert_eq!(f.denied(1, 20, 6, 22, S + 1), FoldVerdict::Suppress);
        }
        // Another service, source or segment is another key.
        assert_eq!(
            f.denied(1, 20, 6, 23, S + 2),
            FoldVerdict::Report { repeats: 0 }
        );
        assert_eq!(
            f.denied(2, 20, 6, 22, S + 2),
            FoldVerdict::Report { repeats: 0 }
        );
        assert_eq!(
            f.denied(1, 21, 6, 22, S + 2),
            FoldVerdict::Report { repeats: 0 }
        );
        assert_eq!(
            f.denied(1, 20, 6, 22, 2 * S + 1),
            FoldVerdict::Report { repeats: 99 }
        );
    }

    #[test]
    fn a_flood_of_distinct_denials_is_rate_limited() {
        let cfg = FoldConfig {
            interval_ns: S,
            rate_per_sec: 100,
            burst: 10,
        };
        let mut f = DenyFolder::new(cfg, 1);
        let reported = (0..10_000u128)
            .filter(|&src| matches!(f.denied(src, 1, 17, 53, S), FoldVerdict::Report { .. }))
            .count();
        assert_eq!(reported, 10);
        // A second later the bucket has refilled up to its burst.
        let reported = (10_000..20_000u128)
            .filter(|&src| matches!(f.denied(src, 1, 17, 53, 2 * S), FoldVerdict::Report { .. }))
            .count();
        assert_eq!(reported, 10);
    }

    #[test]
    fn zero_disables_both_limits() {
        let cfg = FoldConfig {
            interval_ns: 0,
            rate_per_sec: 0,
            burst: 0,
        };
        let mut f = DenyFolder::new(cfg, 1);
        for _ in 0..100 {
            assert_eq!(f.denied(1, 1, 6, 1, S), FoldVerdict::Report { repeats: 0 });
        }
    }
}

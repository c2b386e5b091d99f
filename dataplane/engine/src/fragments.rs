//! Virtual fragment reassembly (the shallow reassembly of VPP): fragments
//! are never rebuilt into one packet; the first fragment, which carries the
//! ports, is judged like any packet, and the later fragments of the same
//! datagram pass or drop with it.
//!
//! - A datagram is known by (VLAN domain, source, destination, protocol for
//!   IPv4, identification).
//! - A verdict lives [`VERDICT_TTL_NS`] after its first fragment (time
//!   enough for the rest of the datagram, short enough that a reused
//!   identification meets a fresh judgement).
//! - A later fragment that arrives before its first is held, at most
//!   [`HOLD_SLOTS`] at a time for at most [`HOLD_NS`]; the first fragment's
//!   verdict releases them (forwarded or dropped), the deadline drops them.
//! - A later fragment that overlaps the first fragment's bytes (it would
//!   rewrite the header that was judged) is dropped, and so is one past the
//!   end the last fragment announced.
//!
//! Fixed memory, allocated once; no allocation per packet. The held frames
//! themselves stay with the caller (the worker keeps their mbufs); this
//! module only decides.

use bulkhead_packet::flow::Addr;

/// Datagrams whose verdict is remembered at once (direct-mapped, 2-way).
pub const VERDICT_SLOTS: usize = 4096;
/// How long a first fragment's verdict applies to the rest of its datagram.
pub const VERDICT_TTL_NS: u64 = 2_000_000_000;
/// Fragments held while their first fragment is awaited.
pub const HOLD_SLOTS: usize = 64;
/// How long a fragment may wait for its first.
pub const HOLD_NS: u64 = 100_000_000;

/// A datagram's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct DatagramKey {
    pub domain: u32,
    pub src: Addr,
    pub dst: Addr,
    /// IPv4 protocol (IPv6 identifications are unique per address pair; the
    /// protocol a non-first IPv6 fragment names may be another extension
    /// header, so it is left out there: 0).
    pub proto: u8,
    pub id: u32,
}

#[derive(Clone, Copy, Debug, Default)]
struct Verdict {
    key: DatagramKey,
    expires: u64,
    forward: bool,
    /// Bytes of transport data the first fragment carried: later fragments
    /// must start at or after them.
    first_len: u32,
    /// End of the datagram's payload, once the last fragment was seen (0:
    /// unknown).
    end: u32,
    live: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct Hold {
    key: DatagramKey,
    deadline: u64,
    /// Where the held fragment sits, checked against the first fragment
    /// when its verdict arrives.
    offset: u32,
    /// Taken: a frame waits here, or a decision on it waits to be taken by
    /// the caller (a slot is reused only after `take_released`).
    used: bool,
    /// Decided, waiting for `take_released`.
    decided: bool,
}

/// What to do with a later fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Later {
    /// Its datagram's first fragment was forwarded.
    Forward,
    /// Its datagram's first fragment was dropped.
    Drop,
    /// It overlaps the judged first fragment or lies past the datagram's end.
    Overlap,
    /// Held in this slot until the first fragment arrives (or the deadline).
    Hold(u16),
    /// No verdict and no room to hold it.
    NoRoom,
}

/// How a held fragment was decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// Its first fragment was forwarded.
    Forward,
    /// Its first fragment was dropped.
    Drop,
    /// Its first fragment never came in time.
    Timeout,
    /// It overlaps the first fragment's bytes.
    Overlap,
}

/// One worker's reassembly state.
#[derive(Debug)]
pub struct Fragments {
    verdicts: Box<[Verdict]>,
    holds: Box<[Hold]>,
    /// Held slots decided since the caller last took them.
    released: Vec<(u16, Release)>,
    seed: u64,
}

impl Fragments {
    pub fn new(seed: u64) -> Fragments {
        Fragments {
            verdicts: vec![Verdict::default(); VERDICT_SLOTS].into_boxed_slice(),
            holds: vec![Hold::default(); HOLD_SLOTS].into_boxed_slice(),
            released: Vec::with_capacity(HOLD_SLOTS),
            seed,
        }
    }

    fn slot(&self, key: &DatagramKey) -> usize {
        let mix = bulkhead_conntrack::fold;
        let a = mix(
            key.src as u64 ^ self.seed,
            (key.src >> 64) as u64 ^ 0x9e37_79b9_7f4a_7c15,
        );
        let b = mix(
            key.dst as u64 ^ a,
            (key.dst >> 64) as u64 ^ 0xbf58_476d_1ce4_e5b9,
        );
        let c = mix(
            b ^ u64::from(key.id),
            (u64::from(key.domain) << 8 | u64::from(key.proto)) ^ 0x94d0_49bb_1331_11eb,
        );
        (c as usize) & (VERDICT_SLOTS - 1) & !1
    }

    /// The first fragment of a datagram was judged at `now`: later fragments
    /// follow `forward`. `first_len` is the bytes of payload it carried.
    /// Held fragments of the datagram are released with the verdict.
    pub fn first(&mut self, key: DatagramKey, now: u64, forward: bool, first_len: u32) {
        let base = self.slot(&key);
        // Two ways: the same key, else a dead or expired way, else the older.
        let way = (base..base + 2)
            .find(|&i| self.verdicts.get(i).is_some_and(|v| v.live && v.key == key))
            .or_else(|| {
                (base..base + 2).find(|&i| {
                    self.verdicts
                        .get(i)
                        .is_some_and(|v| !v.live || v.expires <= now)
                })
            })
            .unwrap_or_else(|| {
                let older = self.verdicts.get(base + 1).map_or(0, |v| v.expires)
                    < self.verdicts.get(base).map_or(0, |v| v.expires);
                base + usize::from(older)
            });
        if let Some(v) = self.verdicts.get_mut(way) {
            *v = Verdict {
                key,
                expires: now + VERDICT_TTL_NS,
                forward,
                first_len,
                end: 0,
                live: true,
            };
        }
        for (i, h) in self.holds.iter_mut().enumerate() {
            if h.used && !h.decided && h.key == key {
                h.decided = true;
                // The checks a later fragment meets when the verdict is
                // already known: it must not rewrite the judged bytes.
                let r = if h.offset < first_len {
                    Release::Overlap
                } else if forward {
                    Release::Forward
                } else {
                    Release::Drop
                };
                self.released.push((i as u16, r));
            }
        }
    }

    /// A later fragment at byte `offset` of its datagram with `len` bytes of
    /// payload (`more`: not the last one).
    pub fn later(
        &mut self,
        key: DatagramKey,
        offset: u32,
        len: u32,
        more: bool,
        now: u64,
    ) -> Later {
        let base = self.slot(&key);
        let found = (base..base + 2)
            .find(|&i| {
                self.verdicts
                    .get(i)
                    .is_some_and(|v| v.live && v.key == key && v.expires > now)
            })
            .and_then(|i| self.verdicts.get_mut(i));
        if let Some(v) = found {
            let end = offset.saturating_add(len);
            if offset < v.first_len || (v.end != 0 && end > v.end) {
                return Later::Overlap;
            }
            if !more {
                v.end = end;
            }
            return if v.forward {
                Later::Forward
            } else {
                Later::Drop
            };
        }
        match self.holds.iter().position(|h| !h.used) {
            Some(i) => {
                if let Some(h) = self.holds.get_mut(i) {
                    *h = Hold {
                        key,
                        deadline: now + HOLD_NS,
                        offset,
                        used: true,
                        decided: false,
                    };
                }
                Later::Hold(i as u16)
            }
            None => Later::NoRoom,
        }
    }

    /// Release held fragments whose deadline passed (dropped).
    pub fn expire(&mut self, now: u64) {
        for (i, h) in self.holds.iter_mut().enumerate() {
            if h.used && !h.decided && h.deadline <= now {
                h.decided = true;
                self.released.push((i as u16, Release::Timeout));
            }
        }
    }

    /// Held slots decided since the last call. The caller forwards or frees
    /// the frames it keeps in those slots.
    pub fn take_released(&mut self, mut f: impl FnMut(u16, Release)) {
        for (slot, r) in self.released.drain(..) {
            if let Some(h) = self.holds.get_mut(usize::from(slot)) {
                // Only now may the slot take another fragment: the caller
                // has the frame out of it.
                h.used = false;
                h.decided = false;
            }
            f(slot, r);
        }
    }

    /// Fragments held now.
    pub fn held(&self) -> usize {
        self.holds.iter().filter(|h| h.used).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u32) -> DatagramKey {
        DatagramKey {
            domain: 0,
            src: 1,
            dst: 2,
            proto: 17,
            id,
        }
    }

    fn released(f: &mut Fragments) -> Vec<(u16, Release)> {
        let mut v = Vec::new();
        f.take_released(|s, fw| v.push((s, fw)));
        v
    }

    #[test]
    fn later_fragments_follow_the_first() {
        let mut f = Fragments::new(1);
        f.first(key(7), 0, true, 1480);
        assert_eq!(f.later(key(7), 1480, 1480, true, 1), Later::Forward);
        assert_eq!(f.later(key(7), 2960, 100, false, 1), Later::Forward);
        f.first(key(8), 0, false, 1480);
        assert_eq!(f.later(key(8), 1480, 8, false, 1), Later::Drop);
        // Another datagram (id) is unknown: held.
        assert_eq!(f.later(key(9), 1480, 8, false, 1), Later::Hold(0));
    }

    #[test]
    fn early_fragments_are_held_and_released_by_the_verdict_or_the_deadline() {
        let mut f = Fragments::new(1);
        assert_eq!(f.later(key(1), 1480, 100, false, 0), Later::Hold(0));
        assert_eq!(f.later(key(2), 1480, 100, false, 0), Later::Hold(1));
        f.first(key(1), 10, true, 1480);
        assert_eq!(released(&mut f), vec![(0, Release::Forward)]);
        f.expire(HOLD_NS - 1);
        assert!(released(&mut f).is_empty());
        f.expire(HOLD_NS);
        assert_eq!(released(&mut f), vec![(1, Release::Timeout)]);
        assert_eq!(f.held(), 0);
    }

    #[test]
    fn a_slot_is_reused_only_after_its_decision_was_taken() {
        let mut f = Fragments::new(1);
        assert_eq!(f.later(key(1), 1480, 100, false, 0), Later::Hold(0));
        f.first(key(1), 1, true, 1480);
        // Before the caller takes the decision, another fragment must not
        // land in slot 0 (its frame would go with key 1's verdict).
        assert_eq!(f.later(key(2), 1480, 100, false, 1), Later::Hold(1));
        assert_eq!(released(&mut f), vec![(0, Release::Forward)]);
        assert_eq!(f.later(key(3), 1480, 100, false, 2), Later::Hold(0));
    }

    #[test]
    fn a_held_fragment_overlapping_its_first_is_dropped_on_release() {
        let mut f = Fragments::new(1);
        assert_eq!(f.later(key(1), 8, 100, true, 0), Later::Hold(0));
        f.first(key(1), 1, true, 1480);
        assert_eq!(released(&mut f), vec![(0, Release::Overlap)]);
    }

    #[test]
    fn holding_is_bounded() {
        let mut f = Fragments::new(1);
        for i in 0..HOLD_SLOTS as u32 {
            assert!(matches!(f.later(key(i), 8, 8, true, 0), Later::Hold(_)));
        }
        assert_eq!(f.later(key(999), 8, 8, true, 0), Later::NoRoom);
    }

    #[test]
    fn overlaps_with_the_judged_header_and_past_the_end_are_refused() {
        let mut f = Fragments::new(1);
        f.first(key(3), 0, true, 1480);
        assert_eq!(f.later(key(3), 8, 1480, true, 1), Later::Overlap);
        assert_eq!(f.later(key(3), 2960, 40, false, 1), Later::Forward);
        assert_eq!(f.later(key(3), 2960, 80, true, 1), Later::Overlap);
    }

    #[test]
    fn verdicts_expire() {
        let mut f = Fragments::new(1);
        f.first(key(4), 0, true, 1480);
        assert_eq!(
            f.later(key(4), 1480, 8, false, VERDICT_TTL_NS),
            Later::Hold(0)
        );
    }
}

//! Scan mode, the last resort: per-rule claims and a wide-rule index.

use super::*;

/// Service specs of every rule in a compact form for the wide-rule scan.
#[derive(Debug, Default)]
pub(super) struct RuleClaims {
    /// Per rule: `claims[start[r]..start[r + 1]]`.
    pub(super) start: Box<[u32]>,
    pub(super) claims: Box<[ScanClaim]>,
    /// Per rule: up to `SLOTS` claims packed in one 32-byte record, so a
    /// scan reads one record per rule (independent loads, no branch per
    /// claim). Encoding: `proto | lo << 16 | hi << 32`; unused slots never
    /// match; a rule with more claims has `OVERFLOW` in its last slot and
    /// is checked through `claims`.
    pub(super) slots: Box<[[u64; SLOTS]]>,
}

pub(super) const SLOTS: usize = 4;
/// A slot that matches nothing (protocol 511 never asked, empty range).
pub(super) const EMPTY_SLOT: u64 = 511 | (1 << 16);
/// Last slot of a rule whose claims do not fit.
pub(super) const OVERFLOW: u64 = 510;

/// `proto` is the protocol number, or `ANY_PROTO` for an `any` spec.
#[derive(Clone, Copy, Debug)]
pub(super) struct ScanClaim {
    pub(super) proto: u16,
    pub(super) lo: u16,
    pub(super) hi: u16,
}

pub(super) const ANY_PROTO: u16 = 256;

impl RuleClaims {
    pub(super) fn new(rules: &[RuleDef]) -> Self {
        let mut start = Vec::with_capacity(rules.len() + 1);
        let mut claims = Vec::new();
        for rule in rules {
            start.push(claims.len() as u32);
            for spec in &rule.services {
                claims.push(match *spec {
                    ServiceSpec::Any => ScanClaim {
                        proto: ANY_PROTO,
                        lo: 0,
                        hi: u16::MAX,
                    },
                    ServiceSpec::Ports { proto, lo, hi } => ScanClaim {
                        proto: proto.into(),
                        lo,
                        hi,
                    },
                    ServiceSpec::IcmpTypes { proto, lo, hi } => ScanClaim {
                        proto: proto.into(),
                        lo: lo.into(),
                        hi: hi.into(),
                    },
                    ServiceSpec::Proto(proto) => ScanClaim {
                        proto: proto.into(),
                        lo: 0,
                        hi: u16::MAX,
                    },
                });
            }
        }
        start.push(claims.len() as u32);
        let slots = start
            .windows(2)
            .map(|w| {
                let mine = claims.get(w[0] as usize..w[1] as usize).unwrap_or(&[]);
                let mut slot = [EMPTY_SLOT; SLOTS];
                if mine.len() > SLOTS {
                    slot[SLOTS - 1] = OVERFLOW;
                } else {
                    for (cell, c) in slot.iter_mut().zip(mine) {
                        *cell = u64::from(c.proto) | u64::from(c.lo) << 16 | u64::from(c.hi) << 32;
                    }
                }
                slot
            })
            .collect();
        RuleClaims {
            start: start.into_boxed_slice(),
            claims: claims.into_boxed_slice(),
            slots,
        }
    }

    /// [`RuleClaims::matches`] from the rule's packed record: one load, no
    /// branch per claim.
    #[inline]
    pub(super) fn matches_packed(&self, rule: u32, proto: u8, port: u16) -> bool {
        let Some(slot) = self.slots.get(rule as usize) else {
            return false;
        };
        if slot[SLOTS - 1] == OVERFLOW {
            return self.matches(rule, proto, port);
        }
        let (proto, port) = (u64::from(proto), u64::from(port));
        let hit = |c: u64| {
            let p = c & 0x1FF;
            let lo = (c >> 16) & 0xFFFF;
            let hi = (c >> 32) & 0xFFFF;
            ((p == proto) | (p == u64::from(ANY_PROTO))) & (lo <= port) & (port <= hi)
        };
        hit(slot[0]) | hit(slot[1]) | hit(slot[2]) | hit(slot[3])
    }

    /// Does one of `rule`'s specs match? Same meaning as [`ServiceSpec::matches`].
    #[inline]
    pub(super) fn matches(&self, rule: u32, proto: u8, port: u16) -> bool {
        let r = rule as usize;
        let (Some(&a), Some(&b)) = (self.start.get(r), self.start.get(r + 1)) else {
            return false;
        };
        self.claims
            .get(a as usize..b as usize)
            .unwrap_or(&[])
            .iter()
            .any(|c| {
                (c.proto == u16::from(proto) || c.proto == ANY_PROTO)
                    && c.lo <= port
                    && port <= c.hi
            })
    }
}

/// One wide rule in the index of one class: the rule, and the classes of its
/// other side (`members[start..start + len]`, ascending).
#[derive(Clone, Copy, Debug)]
pub(super) struct WideEntry {
    pub(super) rule: u32,
    pub(super) start: u32,
    pub(super) len: u32,
}

/// Split mode: wide rules (long segment lists on both sides) indexed by the
/// classes of their smaller side, in rule order. Lookup scans the entries of
/// one class until the first whose service matches and whose other side
/// holds the other class: cost grows with the number of wide rules that
/// select the class, not with the total.
#[derive(Debug, Default)]
pub(super) struct WideIndex {
    /// Per class: `entries[start[c]..start[c + 1]]`.
    pub(super) start: Box<[u32]>,
    pub(super) entries: Box<[WideEntry]>,
    pub(super) members: Box<[u32]>,
}

impl WideIndex {
    /// First rule of `class`'s entries before `best` that matches, or `best`.
    #[inline]
    pub(super) fn scan(
        &self,
        class: u32,
        other: u32,
        proto: u8,
        port: u16,
        best: u32,
        claims: &RuleClaims,
    ) -> u32 {
        let c = class as usize;
        let (Some(&a), Some(&b)) = (self.start.get(c), self.start.get(c + 1)) else {
            return best;
        };
        for e in self.entries.get(a as usize..b as usize).unwrap_or(&[]) {
            if e.rule >= best {
                break;
            }
            if claims.matches(e.rule, proto, port) {
                let s = e.start as usize;
                let members = self.members.get(s..s + e.len as usize).unwrap_or(&[]);
                if members.binary_search(&other).is_ok() {
                    return e.rule;
                }
            }
        }
        best
    }
}

/// Collects (class, rule, other-side set) in rule order.
#[derive(Debug, Default)]
pub(super) struct WideBuilder {
    pub(super) items: Vec<(u32, u32, u32)>,
}

impl WideBuilder {
    pub(super) fn add(&mut self, classes: &[u32], rule: u32, other_set: u32) {
        self.items
            .extend(classes.iter().map(|&c| (c, rule, other_set)));
    }

    /// `other` holds the classes of the other side's sets.
    pub(super) fn finish(self, class_count: usize, other: &Classes) -> WideIndex {
        if self.items.is_empty() {
            return WideIndex::default();
        }
        // Counting sort by class; stable, so each class stays in rule order.
        let mut start = vec![0u32; class_count + 1];
        for &(c, _, _) in &self.items {
            if let Some(n) = start.get_mut(c as usize + 1) {
                *n += 1;
            }
        }
        for i in 1..start.len() {
            start[i] += start[i - 1];
        }
        let mut fill = start.clone();
        let mut entries = vec![
            WideEntry {
                rule: 0,
                start: 0,
                len: 0
            };
            self.items.len()
        ];
        let mut members: Vec<u32> = Vec::new();
        let mut placed: HashMap<u32, (u32, u32)> = HashMap::new();
        for &(c, rule, set) in &self.items {
            let (ms, ml) = *placed.entry(set).or_insert_with(|| {
                let list = other.of_set(set);
                let at = members.len() as u32;
                members.extend_from_slice(list);
                (at, list.len() as u32)
            });
            if let Some(slot) = fill.get_mut(c as usize) {
                if let Some(e) = entries.get_mut(*slot as usize) {
                    *e = WideEntry {
                        rule,
                        start: ms,
                        len: ml,
                    };
                }
                *slot += 1;
            }
        }
        WideIndex {
            start: start.into_boxed_slice(),
            entries: entries.into_boxed_slice(),
            members: members.into_boxed_slice(),
        }
    }
}

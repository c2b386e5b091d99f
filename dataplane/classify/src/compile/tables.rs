//! The flat table format every lookup mode reads, and the builder that
//! paints rule claims into deduplicated tables.

use super::*;

// ---------------------------------------------------------------------------
// Rule tables
// ---------------------------------------------------------------------------

/// Every compiled table, flattened into one array of 64-bit words; a
/// table's id is the offset of its first word, so a lookup touches one
/// contiguous run of memory (one or two cache lines for most tables) once
/// the id is known.
///
/// Layout of a table at `t`:
/// - `words[t]`: `other | n << 32`, where `other` answers protocols without
///   a run (the first rule with an `any` spec, or `NO_RULE`) and `n` is the
///   number of protocol runs;
/// - `words[t + 1 .. t + 1 + n]`: per run, `proto | len << 8`;
/// - then per run, in the same order: when `len > BLOCK`, a summary of
///   `ceil(ceil(len / BLOCK) / 4)` words, each packing four 16-bit samples
///   (low lane first): sample `j` is the upper end of the last interval of
///   block `j` (intervals `BLOCK·j ..`), padding lanes are 65535; then its
///   `len` disjoint port intervals, ascending: `end << 32 | rule`
///   (inclusive upper end, the last is 65535; the deciding rule), so the
///   rule is read from the cache line where the search ends.
///
/// A long run is searched in three short steps (summary words by their top
/// lane, lanes of one word, one block of `BLOCK` intervals) instead of one
/// binary search over the whole run: about three dependent cache lines
/// instead of `log2(len)`.
#[derive(Debug, Default)]
pub(super) struct Tables {
    pub(super) words: Vec<u64>,
    pub(super) count: usize,
}

impl Tables {
    /// First rule of `table` matching (`proto`, `port`), or `NO_RULE`.
    #[inline]
    pub(super) fn lookup(&self, table: u32, proto: u8, port: u16) -> u32 {
        let t = table as usize;
        let words = self.words.as_slice();
        let Some(&first) = words.get(t) else {
            return NO_RULE;
        };
        let runs = (first >> 32) as usize;
        let heads = words.get(t + 1..t + 1 + runs).unwrap_or(&[]);
        let mut at = t + 1 + heads.len();
        for &head in heads {
            let len = (head >> 8) as usize;
            let summary = summary_words(len);
            if head as u8 == proto {
                let run = words.get(at + summary..at + summary + len).unwrap_or(&[]);
                let block = if summary == 0 {
                    run
                } else {
                    let samples = words.get(at..at + summary).unwrap_or(&[]);
                    // First summary word whose top sample is >= port, then
                    // the first of its lanes that is (the top lane of the
                    // last word is 65535, so both exist).
                    let w = samples.partition_point(|&x| ((x >> 48) as u16) < port);
                    let x = samples.get(w).copied().unwrap_or(u64::MAX);
                    let lane = (0..3)
                        .map(|i| usize::from(((x >> (16 * i)) as u16) < port))
                        .sum::<usize>();
                    let first = (4 * w + lane) * BLOCK;
                    run.get(first..(first + BLOCK).min(len)).unwrap_or(&[])
                };
                // First interval whose upper end is >= port (branch-free search).
                let k = block.partition_point(|&e| ((e >> 32) as u32) < u32::from(port));
                return block.get(k).map_or(NO_RULE, |&e| e as u32);
            }
            at += summary + len;
        }
        first as u32
    }
}

/// Intervals per block of a long protocol run (eight 8-byte entries: one
/// cache line when aligned).
pub(super) const BLOCK: usize = 8;

/// Summary words before a run of `len` intervals (0 for short runs).
#[inline]
pub(super) fn summary_words(len: usize) -> usize {
    if len > BLOCK {
        len.div_ceil(BLOCK).div_ceil(4)
    } else {
        0
    }
}

/// One port-range claim while painting: rule `rule` matches `lo..=hi`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Claim {
    pub(super) proto: u8,
    pub(super) lo: u16,
    pub(super) hi: u16,
    pub(super) rule: u32,
}

/// Builds and deduplicates tables.
pub(super) struct TableBuilder {
    /// Per rule: its port claims (`rule_claims[rule_start[r]..rule_start[r + 1]]`,
    /// `rule` set, `any` specs left out), flat so painting reads one small
    /// array instead of chasing every rule's `services`.
    pub(super) rule_start: Vec<u32>,
    pub(super) rule_claims: Vec<Claim>,
    /// Per rule: does one of its specs match every protocol (`any`)?
    pub(super) any: Vec<bool>,
    pub(super) tables: Tables,
    /// Deduplication: (start in `lists`, length, table) of every list built
    /// through [`TableBuilder::table`], found by the hash of the list; the
    /// lists themselves live end to end in `lists` (no allocation per table).
    pub(super) by_list: HashTable<(u32, u32, u32)>,
    pub(super) lists: Vec<u32>,
    pub(super) hasher: DefaultHashBuilder,
    // Scratch, reused by every table.
    pub(super) claims: Vec<Claim>,
    pub(super) starts: Vec<u32>,
    pub(super) paint: Vec<u32>,
    pub(super) next: Vec<u32>,
    pub(super) ends: Vec<u16>,
    pub(super) rules: Vec<u32>,
}

impl TableBuilder {
    pub(super) fn new(rules: &[RuleDef]) -> Self {
        let mut rule_start = Vec::with_capacity(rules.len() + 1);
        let mut rule_claims = Vec::new();
        for (index, def) in rules.iter().enumerate() {
            rule_start.push(rule_claims.len() as u32);
            for spec in &def.services {
                let (proto, lo, hi) = match *spec {
                    ServiceSpec::Any => continue,
                    ServiceSpec::Ports { proto, lo, hi } => (proto, lo, hi),
                    ServiceSpec::IcmpTypes { proto, lo, hi } => {
                        (proto, u16::from(lo), u16::from(hi))
                    }
                    ServiceSpec::Proto(proto) => (proto, 0, u16::MAX),
                };
                rule_claims.push(Claim {
                    proto,
                    lo,
                    hi,
                    rule: index as u32,
                });
            }
        }
        rule_start.push(rule_claims.len() as u32);
        TableBuilder {
            rule_start,
            rule_claims,
            any: rules
                .iter()
                .map(|r| r.services.iter().any(|s| matches!(s, ServiceSpec::Any)))
                .collect(),
            tables: Tables::default(),
            by_list: HashTable::new(),
            lists: Vec::new(),
            hasher: DefaultHashBuilder::default(),
            claims: Vec::new(),
            starts: Vec::new(),
            paint: Vec::new(),
            next: Vec::new(),
            ends: Vec::new(),
            rules: Vec::new(),
        }
    }

    pub(super) fn has_any(&self, rule: u32) -> bool {
        self.any.get(rule as usize).copied().unwrap_or(false)
    }

    /// The part of an ascending rule list that can ever decide: up to and
    /// including its first rule with an `any` spec.
    pub(super) fn prefix<'l>(&self, list: &'l [u32]) -> &'l [u32] {
        match list.iter().position(|&r| self.has_any(r)) {
            Some(at) => &list[..=at],
            None => list,
        }
    }

    /// The table of an ascending rule list, built once per distinct list.
    pub(super) fn table(&mut self, list: &[u32]) -> Result<u32, CompileError> {
        let list = self.prefix(list);
        let hash = self.hasher.hash_one(list);
        let stored = |&(start, len, _): &(u32, u32, u32)| -> &[u32] {
            let start = start as usize;
            self.lists.get(start..start + len as usize).unwrap_or(&[])
        };
        if let Some(&(_, _, table)) = self.by_list.find(hash, |e| stored(e) == list) {
            return Ok(table);
        }
        let id = self.fresh_table(list)?;
        let entry = (self.lists.len() as u32, list.len() as u32, id);
        self.lists.extend_from_slice(list);
        let (lists, hasher) = (&self.lists, &self.hasher);
        self.by_list.insert_unique(hash, entry, |&(start, len, _)| {
            let start = start as usize;
            hasher.hash_one(lists.get(start..start + len as usize).unwrap_or(&[]))
        });
        Ok(id)
    }

    /// A new table for `list` without looking for an identical one: for
    /// lists that are known to be almost all distinct, where remembering
    /// them costs more than it saves.
    pub(super) fn fresh_table(&mut self, list: &[u32]) -> Result<u32, CompileError> {
        let list = self.prefix(list);
        let count = self.tables.count;
        if count >= MAX_TABLES {
            return Err(CompileError::TooLarge {
                what: "compiled tables",
                count: count + 1,
                limit: MAX_TABLES,
            });
        }
        let id = self.tables.words.len();
        if id >= MAX_TABLE_WORDS {
            return Err(CompileError::TooLarge {
                what: "compiled table words",
                count: id + 1,
                limit: MAX_TABLE_WORDS,
            });
        }
        self.paint_table(list);
        self.tables.count += 1;
        Ok(id as u32)
    }

    pub(super) fn paint_table(&mut self, list: &[u32]) {
        let other = match list.last() {
            Some(&last) if self.has_any(last) => last,
            _ => NO_RULE,
        };
        // Every claim, in rule order (`list` ascends), then grouped by
        // protocol (stable: rule order within each protocol).
        self.claims.clear();
        for &rule in list {
            let r = rule as usize;
            let (Some(&a), Some(&b)) = (self.rule_start.get(r), self.rule_start.get(r + 1)) else {
                continue;
            };
            for &c in self.rule_claims.get(a as usize..b as usize).unwrap_or(&[]) {
                self.claims.push(c);
            }
        }
        self.claims.sort_by_key(|c| c.proto);
        let runs = self.claims.chunk_by(|a, b| a.proto == b.proto).count();
        let words = &mut self.tables.words;
        words.push(u64::from(other) | ((runs as u64) << 32));
        let heads_at = words.len();
        words.resize(heads_at + runs, 0);
        let claims = std::mem::take(&mut self.claims);
        for (i, group) in claims.chunk_by(|a, b| a.proto == b.proto).enumerate() {
            let proto = group.first().map_or(0, |c| c.proto);
            self.paint_proto(group, other);
            let len = self.ends.len() as u64;
            let words = &mut self.tables.words;
            if let Some(head) = words.get_mut(heads_at + i) {
                *head = u64::from(proto) | (len << 8);
            }
            // Summary of a long run: the last end of every block, four per word.
            let blocks = self.ends.len().div_ceil(BLOCK);
            for first in (0..summary_words(self.ends.len())).map(|w| 4 * w) {
                let mut packed = 0u64;
                for lane in 0..4 {
                    let end = if first + lane < blocks {
                        let last = ((first + lane + 1) * BLOCK).min(self.ends.len()) - 1;
                        self.ends.get(last).copied().unwrap_or(u16::MAX)
                    } else {
                        u16::MAX
                    };
                    packed |= u64::from(end) << (16 * lane);
                }
                words.push(packed);
            }
            words.extend(
                self.ends
                    .iter()
                    .zip(&self.rules)
                    .map(|(&end, &rule)| (u64::from(end) << 32) | u64::from(rule)),
            );
        }
        self.claims = claims;
    }

    /// Paint the claims of one protocol, in rule order, onto the elementary
    /// intervals their bounds cut 0..=65535 into; each interval keeps the
    /// first rule that claims it (else `other`). Leaves the merged intervals
    /// in `self.ends` / `self.rules`. A few claims are checked directly per
    /// interval; beyond that a "next unpainted interval" union-find keeps it
    /// near-linear in the number of claims.
    pub(super) fn paint_proto(&mut self, claims: &[Claim], other: u32) {
        /// Up to this many claims, each interval scans the claims.
        const DIRECT: usize = 12;
        self.starts.clear();
        self.starts.push(0);
        for c in claims {
            self.starts.push(u32::from(c.lo));
            self.starts.push(u32::from(c.hi) + 1);
        }
        self.starts.sort_unstable();
        self.starts.dedup();
        // 65536 is a start past the end: the intervals are starts[k]..starts[k+1].
        if self.starts.last() != Some(&65536) {
            self.starts.push(65536);
        }
        let count = self.starts.len() - 1;
        self.paint.clear();
        if claims.len() <= DIRECT {
            // An elementary interval lies wholly inside or outside each
            // claim, so its first port decides.
            for &lo in &self.starts[..count] {
                let rule = claims
                    .iter()
                    .find(|c| u32::from(c.lo) <= lo && lo <= u32::from(c.hi))
                    .map_or(NO_RULE, |c| c.rule);
                self.paint.push(rule);
            }
        } else {
            self.paint.resize(count, NO_RULE);
            self.next.clear();
            self.next.extend(0..=count as u32);
            let mut left = count;
            for c in claims {
                if left == 0 {
                    break;
                }
                let a = self.starts.partition_point(|&s| s < u32::from(c.lo));
                let b = self.starts.partition_point(|&s| s < u32::from(c.hi) + 1);
                let mut k = find(&mut self.next, a as u32) as usize;
                while k < b {
                    self.paint[k] = c.rule;
                    self.next[k] = k as u32 + 1;
                    left -= 1;
                    k = find(&mut self.next, k as u32 + 1) as usize;
                }
            }
        }
        self.ends.clear();
        self.rules.clear();
        for k in 0..count {
            let rule = if self.paint[k] == NO_RULE {
                other
            } else {
                self.paint[k]
            };
            let end = (self.starts[k + 1] - 1) as u16;
            if self.rules.last() == Some(&rule) {
                if let Some(last) = self.ends.last_mut() {
                    *last = end;
                }
            } else {
                self.ends.push(end);
                self.rules.push(rule);
            }
        }
    }

    pub(super) fn finish(self) -> Tables {
        self.tables
    }
}

/// Root of `x` in the "next unpainted" forest, halving paths on the way.
pub(super) fn find(next: &mut [u32], mut x: u32) -> u32 {
    while next[x as usize] != x {
        let parent = next[x as usize];
        next[x as usize] = next[parent as usize];
        x = parent;
    }
    x
}

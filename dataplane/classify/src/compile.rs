//! [`CompiledPolicy`]: the tables the dataplane consults for every new
//! connection. See `DESIGN.md` beside this crate for the reasoning.
//!
//! Two independent parts, each behind an `Arc`:
//! - [`SegmentMap`] (placement, in [`crate::placement`]): a 4096-entry VLAN
//!   array and, per address family, one hash table per prefix length
//!   present, probed longest first; zone bits per segment. Endpoints are
//!   entries of the /32 or /128 table. Rebuilt alone by
//!   [`CompiledPolicy::with_endpoints`].
//! - `RuleTables` (deciding): segments are folded into source and destination
//!   equivalence classes (segments selected by exactly the same rule lists);
//!   each (source class, destination class) pair reaches one compiled table,
//!   or two when it only sees rules with an `any` side. A table answers
//!   "first matching rule" for (protocol, port) with one binary search over
//!   disjoint port intervals. Tables are deduplicated by rule list.
//!   Beyond the exact budget, [`LookupMode::Atoms`] splits every rule with
//!   two lists into (atoms held whole, residue segments) per side and probes
//!   four pair indices (short atom-pair lists are scanned, not painted);
//!   [`LookupMode::Scan`] is the last-resort fallback.
//!
//! Invariants: built only from a [`Ruleset`] that passes [`Ruleset::check`];
//! immutable once built; lookups never allocate and never panic, whatever
//! the segment index or address they are given.

use std::fmt::Debug;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::Arc;

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};

use crate::model::{
    Action, Decision, EndpointDef, FlowQuery, Mode, ModelError, PlaceError, RuleDef, RuleRef,
    Ruleset, SegIdx, SegmentId, SegmentSet, ServiceSpec,
};
use crate::placement::{PlacementBase, SegmentMap, ZoneMask};
/// "No rule matched" (the default decides). Larger than every rule index, so
/// the first match of a union of rule lists is the `min` of their answers.
const NO_RULE: u32 = u32::MAX;
/// "No table" in the pair index and the destination-class tables.
const NO_TABLE: u32 = u32::MAX;

/// Most (class pair, rule) entries the compiler will expand rules into before
/// refusing the policy: bounds compile memory for hostile policies.
pub const MAX_PAIR_ENTRIES: usize = 1 << 25;
/// Most cells of the dense (source class × destination class) pair matrix;
/// beyond it the pair index is a hash map.
pub const MAX_DENSE_PAIR_CELLS: usize = 1 << 22;
/// Most distinct compiled tables.
pub const MAX_TABLES: usize = 1 << 24;
/// Most words of all compiled tables together (table ids are word offsets
/// below 2³¹: atoms mode tags scanned lists with the top bit, and
/// `NO_TABLE` must stay out of reach).
pub const MAX_TABLE_WORDS: usize = (1 << 31) - 1;
/// Most rule-list entries copied while merging exact-mode pair tables.
pub const MAX_MERGE_WORK: usize = 1 << 26;

/// Compile tuning. The defaults suit production; tests lower them to force
/// every code path on small rulesets. Every setting gives the same answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompileOptions {
    /// Largest expansion (Σ over rules with two segment lists of
    /// |source classes| × |destination classes|) compiled in exact mode.
    pub exact_budget: usize,
    /// Split mode: rules at most this wide are expanded into pair tables;
    /// wider ones go to the wide-rule index.
    pub narrow_width: usize,
    /// Largest dense pair matrix; beyond it the pair index is a hash map.
    pub max_dense_pair_cells: usize,
    /// Beyond the exact budget: most (key pair, rule) entries that atoms
    /// mode may expand rules into (`0` disables atoms mode, leaving the
    /// wide-rule scan).
    pub atom_budget: usize,
    /// Atoms mode: a segment list splits an atom only when it holds at least
    /// this many of the atom's segments, and only lists of at least twice
    /// this length split atoms at all. Smaller values give more, finer atoms
    /// and fewer per-segment entries; larger values the reverse.
    pub atom_min: usize,
    /// Atoms mode: (source atom, destination atom) cells with at most this
    /// many rules keep the rule list and scan it at lookup (checking each
    /// rule's services) instead of a painted table; longer ones get a
    /// table. `0` paints every cell.
    pub atom_scan_max: usize,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            exact_budget: 1 << 22,
            narrow_width: 16,
            max_dense_pair_cells: MAX_DENSE_PAIR_CELLS,
            atom_budget: 1 << 24,
            atom_min: 4,
            atom_scan_max: 24,
        }
    }
}

/// How a compiled policy finds the first matching rule of a segment pair
/// (see `DESIGN.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LookupMode {
    /// One table per (source class, destination class) pair.
    Exact,
    /// Per-segment-class tables for rules with an `any` side, plus four
    /// probes: (segment, segment), (segment, atom), (atom, segment) tables
    /// and an (atom, atom) cell holding a table or a short rule list
    /// (at most [`CompileOptions::atom_scan_max`] rules) scanned in order.
    Atoms,
    /// Narrow rules in pair tables, wide rules scanned per class (the
    /// fallback when neither of the others fits its budget).
    Scan,
}

/// Why a [`Ruleset`] could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The ruleset breaks an invariant of the model.
    #[error("invalid ruleset: {0}")]
    Invalid(#[from] ModelError),
    /// The policy would expand beyond a compile limit.
    #[error("policy too large to compile: {what} would reach {count} (limit {limit})")]
    TooLarge {
        what: &'static str,
        count: usize,
        limit: usize,
    },
}

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
struct Tables {
    words: Vec<u64>,
    count: usize,
}

impl Tables {
    /// First rule of `table` matching (`proto`, `port`), or `NO_RULE`.
    #[inline]
    fn lookup(&self, table: u32, proto: u8, port: u16) -> u32 {
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
const BLOCK: usize = 8;

/// Summary words before a run of `len` intervals (0 for short runs).
#[inline]
fn summary_words(len: usize) -> usize {
    if len > BLOCK {
        len.div_ceil(BLOCK).div_ceil(4)
    } else {
        0
    }
}

/// (source class, destination class) → table holding every rule that
/// applies to the pair, for pairs that some rule with two segment lists
/// selects.
#[derive(Debug)]
enum PairIndex {
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
    fn new(rows: usize, cols: usize, max_dense: usize) -> Self {
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
    fn get(&self, src: u32, dst: u32) -> u32 {
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

    fn set(&mut self, src: u32, dst: u32, table: u32) {
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

fn pair_key(src: u32, dst: u32) -> u64 {
    (u64::from(src) << 32) | u64::from(dst)
}

/// Everything that depends on segments and rules but not on endpoints.
#[derive(Debug)]
struct RuleTables {
    /// Per segment index: its source / destination class. Class 0 is the
    /// class of segments that no segment list selects (and of unknown indices).
    src_class: Box<[u32]>,
    dst_class: Box<[u32]>,
    /// Per source class: table of the rules `class → any`, and in exact mode
    /// also `any → any` (`NO_TABLE` when it has no rule).
    src_table: Box<[u32]>,
    /// Other modes: the table of the `any → any` rules, or `NO_TABLE`.
    any_table: u32,
    /// Per destination class: table of the rules `any → class`, or `NO_TABLE`.
    dst_table: Box<[u32]>,
    pairs: PairIndex,
    /// Exact mode: a pair table holds every rule of its pair, and there are
    /// no wide rules. Atoms mode: `pairs` is empty; the answer is the first
    /// of the class tables and the four atom probes. Scan mode: pair tables
    /// hold only the pair's narrow rules; the answer is the first of pair,
    /// class tables and wide scans.
    mode: LookupMode,
    /// Atoms mode only: rules with two segment lists, by segment and atom.
    atoms: Option<AtomTables>,
    /// Split mode: wide rules indexed by source class (destination checked
    /// by membership) and by destination class (source checked).
    wide_src: WideIndex,
    wide_dst: WideIndex,
    claims: RuleClaims,
    tables: Tables,
    rule_action: Box<[Action]>,
    rule_log: Box<[bool]>,
    rule_names: Box<[String]>,
    default_action: Action,
    monitor: Box<[bool]>,
    segment_ids: Box<[SegmentId]>,
    segment_names: Box<[String]>,
    index_of: HashMap<SegmentId, SegIdx>,
}

impl RuleTables {
    /// First matching rule index, or `NO_RULE`.
    #[inline]
    fn first_match(&self, q: &FlowQuery) -> u32 {
        let src = self.src_class.get(q.src as usize).copied().unwrap_or(0);
        let dst = self.dst_class.get(q.dst as usize).copied().unwrap_or(0);
        let pair = if self.atoms.is_some() {
            NO_TABLE
        } else {
            self.pairs.get(src, dst)
        };
        if self.mode == LookupMode::Exact && pair != NO_TABLE {
            return self.tables.lookup(pair, q.proto, q.port);
        }
        let mut best = match self.src_table.get(src as usize) {
            Some(&table) if table != NO_TABLE => self.tables.lookup(table, q.proto, q.port),
            _ => NO_RULE,
        };
        if self.any_table != NO_TABLE {
            best = best.min(self.tables.lookup(self.any_table, q.proto, q.port));
        }
        if let Some(&table) = self.dst_table.get(dst as usize) {
            if table != NO_TABLE {
                best = best.min(self.tables.lookup(table, q.proto, q.port));
            }
        }
        if let Some(atoms) = &self.atoms {
            return atoms.first_match(q, &self.tables, &self.claims, best);
        }
        if pair != NO_TABLE {
            best = best.min(self.tables.lookup(pair, q.proto, q.port));
        }
        best = self
            .wide_src
            .scan(src, dst, q.proto, q.port, best, &self.claims);
        self.wide_dst
            .scan(dst, src, q.proto, q.port, best, &self.claims)
    }

    fn build(rs: &Ruleset, options: &CompileOptions) -> Result<Self, CompileError> {
        let segment_count = rs.segments.len();

        // 1. Intern the distinct segment lists (`None` = `any`).
        let mut set_ids: HashMap<&[SegIdx], u32> = HashMap::new();
        let mut sets: Vec<&[SegIdx]> = Vec::new();
        let mut rule_sets = Vec::with_capacity(rs.rules.len());
        for rule in &rs.rules {
            let from = intern(&rule.from, &mut set_ids, &mut sets);
            let to = intern(&rule.to, &mut set_ids, &mut sets);
            rule_sets.push((from, to));
        }
        drop(set_ids);

        let list_rules: Vec<(u32, u32, u32)> = rule_sets
            .iter()
            .enumerate()
            .filter_map(|(index, &(from, to))| Some((index as u32, from?, to?)))
            .collect();

        // 2. A cheap bound first: a segment named alone in some list on one
        // side is a class of its own there, so a rule with two lists covers
        // at least (such segments of `from`) × (such segments of `to`) class
        // pairs. When that bound already rules exact mode out, try atoms
        // mode before computing classes, and then compute classes only over
        // the lists of rules with an `any` side (the only ones atoms mode
        // needs them for).
        let bound = exact_lower_bound(segment_count, &sets, &list_rules);
        let atom_plan = if bound > options.exact_budget && options.atom_budget > 0 {
            AtomPlan::new(segment_count, &sets, &list_rules, options)
        } else {
            None
        };

        // 3. Source and destination classes.
        let one_any = |side: Option<u32>, other: Option<u32>| match other {
            Some(_) if atom_plan.is_some() => None,
            _ => side,
        };
        let used_from: Vec<u32> = distinct(rule_sets.iter().filter_map(|&(f, t)| one_any(f, t)));
        let used_to: Vec<u32> = distinct(rule_sets.iter().filter_map(|&(f, t)| one_any(t, f)));
        let src = Classes::build(segment_count, &sets, &used_from);
        let dst = Classes::build(segment_count, &sets, &used_to);

        // 4. Sort the rules by which sides are `any`; measure the expansion
        // of the rules with two segment lists into class pairs.
        let mut any_any: Vec<u32> = Vec::new();
        let mut from_list: Vec<Vec<u32>> = vec![Vec::new(); src.count];
        let mut to_list: Vec<Vec<u32>> = vec![Vec::new(); dst.count];
        let mut expansion = 0usize;
        for (index, &(from, to)) in rule_sets.iter().enumerate() {
            let index = index as u32; // < MAX_RULES, checked
            match (from, to) {
                (None, None) => any_any.push(index),
                (Some(from), None) => {
                    for &class in src.of_set(from) {
                        push_at(&mut from_list, class, index);
                    }
                }
                (None, Some(to)) => {
                    for &class in dst.of_set(to) {
                        push_at(&mut to_list, class, index);
                    }
                }
                (Some(from), Some(to)) => {
                    let width = src.of_set(from).len().saturating_mul(dst.of_set(to).len());
                    expansion = expansion.saturating_add(width);
                }
            }
        }
        // Exact mode: every pair's table holds every rule that applies to it
        // (one lookup). Only when the expansion and the merging stay small.
        let longest = |lists: &[Vec<u32>]| lists.iter().map(Vec::len).max().unwrap_or(0);
        let merge_work =
            expansion.saturating_mul(1 + any_any.len() + longest(&from_list) + longest(&to_list));
        let exact = atom_plan.is_none()
            && expansion <= options.exact_budget
            && merge_work <= MAX_MERGE_WORK;
        // Beyond it: atoms mode when its expansion fits, else the scan.
        let atom_plan = match atom_plan {
            None if !exact && options.atom_budget > 0 && bound <= options.exact_budget => {
                AtomPlan::new(segment_count, &sets, &list_rules, options)
            }
            plan => plan,
        };
        let mode = if exact {
            LookupMode::Exact
        } else if atom_plan.is_some() {
            LookupMode::Atoms
        } else {
            LookupMode::Scan
        };

        // 4. Exact and scan modes: expand narrow rules into class pairs;
        // index wide ones by their smaller side (scan mode only). Atoms mode
        // expands its own keys below.
        let mut both: Vec<(u64, u32)> = Vec::new();
        let mut wide_src = WideBuilder::default();
        let mut wide_dst = WideBuilder::default();
        let classed_rules: &[(u32, u32, u32)] = if atom_plan.is_some() {
            &[]
        } else {
            &list_rules
        };
        for &(index, from, to) in classed_rules {
            let (fc, tc) = (src.of_set(from), dst.of_set(to));
            let width = fc.len() * tc.len();
            if exact || width <= options.narrow_width {
                let count = both.len() + width;
                if count > MAX_PAIR_ENTRIES {
                    return Err(CompileError::TooLarge {
                        what: "segment-pair rule entries",
                        count,
                        limit: MAX_PAIR_ENTRIES,
                    });
                }
                for &s in fc {
                    for &d in tc {
                        both.push((pair_key(s, d), index));
                    }
                }
            } else if fc.len() <= tc.len() {
                wide_src.add(fc, index, to);
            } else {
                wide_dst.add(tc, index, from);
            }
        }
        both.sort_unstable();

        // 5. Compile the tables.
        let mut builder = TableBuilder::new(&rs.rules);
        let mut list = Vec::new();
        let mut src_table = Vec::with_capacity(src.count);
        // Exact mode merges `any → any` into every source-class table (pairs
        // without a table of their own fall back to it). The other modes
        // keep it apart: one table, always hot, instead of copying every
        // `any → any` rule into thousands of class tables.
        let any_table = if exact || any_any.is_empty() {
            NO_TABLE
        } else {
            builder.table(&any_any)?
        };
        let any_any_prefix: &[u32] = if exact { builder.prefix(&any_any) } else { &[] };
        for class_rules in &from_list {
            merge_sorted(any_any_prefix, builder.prefix(class_rules), &mut list);
            if list.is_empty() && !exact {
                src_table.push(NO_TABLE);
            } else {
                src_table.push(builder.table(&list)?);
            }
        }
        let mut dst_table = Vec::with_capacity(dst.count);
        for class_rules in &to_list {
            if class_rules.is_empty() {
                dst_table.push(NO_TABLE);
            } else {
                dst_table.push(builder.table(class_rules)?);
            }
        }
        let mut pairs = PairIndex::new(src.count, dst.count, options.max_dense_pair_cells);
        for group in both.chunk_by(|a, b| a.0 == b.0) {
            let key = group[0].0;
            let (s, d) = ((key >> 32) as u32, key as u32);
            list.clear();
            if exact {
                list.extend_from_slice(builder.prefix(&any_any));
                list.extend_from_slice(
                    builder.prefix(from_list.get(s as usize).map_or(&[], Vec::as_slice)),
                );
                list.extend_from_slice(
                    builder.prefix(to_list.get(d as usize).map_or(&[], Vec::as_slice)),
                );
            }
            // The pair's own rules are ascending; none after the first `any` one can decide.
            for &(_, rule) in group {
                list.push(rule);
                if builder.has_any(rule) {
                    break;
                }
            }
            list.sort_unstable();
            let table = builder.table(&list)?;
            pairs.set(s, d, table);
        }

        let atoms = match &atom_plan {
            Some(plan) => Some(plan.build(&list_rules, &mut builder, options)?),
            None => None,
        };
        drop(atom_plan);
        let wide_src = wide_src.finish(src.count, &dst);
        let wide_dst = wide_dst.finish(dst.count, &src);
        let index_of = rs
            .segments
            .iter()
            .enumerate()
            .map(|(index, seg)| (seg.id, index as SegIdx))
            .collect();
        Ok(RuleTables {
            src_class: src.of_segment.into_boxed_slice(),
            dst_class: dst.of_segment.into_boxed_slice(),
            src_table: src_table.into_boxed_slice(),
            any_table,
            mode,
            atoms,
            wide_src,
            wide_dst,
            claims: RuleClaims::new(&rs.rules),
            dst_table: dst_table.into_boxed_slice(),
            pairs,
            tables: builder.finish(),
            rule_action: rs.rules.iter().map(|r| r.action).collect(),
            rule_log: rs.rules.iter().map(|r| r.log).collect(),
            rule_names: rs.rules.iter().map(|r| r.name.clone()).collect(),
            default_action: rs.default_action,
            monitor: rs
                .segments
                .iter()
                .map(|s| s.mode == Mode::Monitor)
                .collect(),
            segment_ids: rs.segments.iter().map(|s| s.id).collect(),
            segment_names: rs.segments.iter().map(|s| s.name.clone()).collect(),
            index_of,
        })
    }
}

/// Id of a segment list (`None` for `any`), interning new lists.
fn intern<'r>(
    set: &'r SegmentSet,
    ids: &mut HashMap<&'r [SegIdx], u32>,
    sets: &mut Vec<&'r [SegIdx]>,
) -> Option<u32> {
    match set {
        SegmentSet::Any => None,
        SegmentSet::List(list) => Some(*ids.entry(list.as_slice()).or_insert_with(|| {
            sets.push(list.as_slice());
            (sets.len() - 1) as u32
        })),
    }
}

/// A lower bound of the exact-mode expansion: Σ over rules with two lists
/// of (segments of `from` that some `from` list names alone, at least 1) ×
/// (the same for `to`). Each such segment is a class of its own.
fn exact_lower_bound(
    segment_count: usize,
    sets: &[&[SegIdx]],
    list_rules: &[(u32, u32, u32)],
) -> usize {
    let mut alone_from = vec![false; segment_count];
    let mut alone_to = vec![false; segment_count];
    for &(_, from, to) in list_rules {
        for (set, alone) in [(from, &mut alone_from), (to, &mut alone_to)] {
            if let Some([seg]) = sets.get(set as usize).copied() {
                if let Some(flag) = alone.get_mut(*seg as usize) {
                    *flag = true;
                }
            }
        }
    }
    let count = |set: u32, alone: &[bool]| -> usize {
        let members = sets.get(set as usize).copied().unwrap_or(&[]);
        let n = members
            .iter()
            .filter(|&&seg| alone.get(seg as usize).copied().unwrap_or(false))
            .count();
        if members.is_empty() {
            0
        } else {
            n.max(1)
        }
    };
    let mut from_count: HashMap<u32, usize> = HashMap::new();
    let mut to_count: HashMap<u32, usize> = HashMap::new();
    let mut bound = 0usize;
    for &(_, from, to) in list_rules {
        let f = *from_count
            .entry(from)
            .or_insert_with(|| count(from, &alone_from));
        let t = *to_count.entry(to).or_insert_with(|| count(to, &alone_to));
        bound = bound.saturating_add(f.saturating_mul(t));
    }
    bound
}

/// `out` = the ascending merge of two ascending lists.
fn merge_sorted(a: &[u32], b: &[u32], out: &mut Vec<u32>) {
    out.clear();
    out.reserve(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while let (Some(&x), Some(&y)) = (a.get(i), b.get(j)) {
        if x <= y {
            out.push(x);
            i += 1;
        } else {
            out.push(y);
            j += 1;
        }
    }
    out.extend_from_slice(a.get(i..).unwrap_or(&[]));
    out.extend_from_slice(b.get(j..).unwrap_or(&[]));
}

fn push_at(lists: &mut [Vec<u32>], at: u32, value: u32) {
    if let Some(list) = lists.get_mut(at as usize) {
        list.push(value);
    }
}

fn distinct(values: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut values: Vec<u32> = values.collect();
    values.sort_unstable();
    values.dedup();
    values
}

/// Equivalence classes of segments on one side (source or destination):
/// two segments share a class when exactly the same segment lists select them.
struct Classes {
    of_segment: Vec<u32>,
    /// Per interned set id: the distinct classes of its members (empty for
    /// sets not used on this side).
    of_set: Vec<Vec<u32>>,
    count: usize,
}

impl Classes {
    fn build(segment_count: usize, sets: &[&[SegIdx]], used: &[u32]) -> Classes {
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

    fn of_set(&self, set: u32) -> &[u32] {
        self.of_set.get(set as usize).map_or(&[], Vec::as_slice)
    }
}

// ---------------------------------------------------------------------------
// Atoms mode
// ---------------------------------------------------------------------------

/// The atoms of one side (source or destination): a partition of the
/// segments refined by the long segment lists used on that side, so that
/// most of each long list is a union of whole atoms. Every list used on the
/// side is split into the atoms it holds whole and a residue of single
/// segments. Atom 0 holds no segment (unknown indices map to it).
struct SideAtoms {
    of_segment: Vec<u32>,
    size: Vec<u32>,
    /// Per interned set id `i`: its atoms held whole (ascending) are
    /// `whole[spans[i][0]..spans[i + 1][0]]`, its residue segments
    /// `residue[spans[i][1]..spans[i + 1][1]]`; both empty for sets not used
    /// on this side.
    spans: Vec<[u32; 2]>,
    whole: Vec<u32>,
    residue: Vec<u32>,
}

impl SideAtoms {
    /// `uses[set]` = how many rules use the set on this side.
    fn build(segment_count: usize, sets: &[&[SegIdx]], uses: &[u32], atom_min: usize) -> Self {
        let atom_min = atom_min.max(1);
        let mut of_segment = vec![1u32; segment_count];
        let mut size = vec![0u32, segment_count as u32];
        // Lists long enough to split atoms: most used first (a label group
        // named alone is used far more often than any union with extra
        // segments), so atoms follow groups and stray segments become
        // residue instead of cutting atoms.
        let mut order: Vec<u32> = (0..sets.len() as u32)
            .filter(|&set| {
                uses.get(set as usize).is_some_and(|&n| n > 0)
                    && sets
                        .get(set as usize)
                        .is_some_and(|l| l.len() >= 2 * atom_min)
            })
            .collect();
        order.sort_unstable_by_key(|&set| {
            let uses = uses.get(set as usize).copied().unwrap_or(0);
            let len = sets.get(set as usize).map_or(0, |l| l.len());
            (std::cmp::Reverse(uses), std::cmp::Reverse(len), set)
        });
        // Per atom, while one list is processed: members seen, and the atom
        // its seen members move to (0 = none).
        let mut seen: Vec<u32> = vec![0; 2];
        let mut moved: Vec<u32> = vec![0; 2];
        let mut touched: Vec<u32> = Vec::new();
        for &set in &order {
            let members = sets.get(set as usize).copied().unwrap_or(&[]);
            touched.clear();
            for &seg in members {
                let Some(&atom) = of_segment.get(seg as usize) else {
                    continue;
                };
                if let Some(n) = seen.get_mut(atom as usize) {
                    if *n == 0 {
                        touched.push(atom);
                    }
                    *n += 1;
                }
            }
            for &atom in &touched {
                let a = atom as usize;
                let (Some(&n), Some(&whole)) = (seen.get(a), size.get(a)) else {
                    continue;
                };
                if n as usize >= atom_min && n < whole {
                    let new = size.len() as u32;
                    size.push(0);
                    seen.push(0);
                    moved.push(0);
                    if let Some(m) = moved.get_mut(a) {
                        *m = new;
                    }
                }
            }
            for &seg in members {
                let Some(atom) = of_segment.get_mut(seg as usize) else {
                    continue;
                };
                let new = moved.get(*atom as usize).copied().unwrap_or(0);
                if new != 0 {
                    if let Some(n) = size.get_mut(*atom as usize) {
                        *n -= 1;
                    }
                    if let Some(n) = size.get_mut(new as usize) {
                        *n += 1;
                    }
                    *atom = new;
                }
            }
            for &atom in &touched {
                if let Some(n) = seen.get_mut(atom as usize) {
                    *n = 0;
                }
                if let Some(m) = moved.get_mut(atom as usize) {
                    *m = 0;
                }
            }
        }
        // Split every list used on this side into whole atoms and residue,
        // stored end to end (one allocation per side, not two per list).
        let mut spans = vec![[0u32; 2]; sets.len() + 1];
        let mut whole: Vec<u32> = Vec::new();
        let mut residue: Vec<u32> = Vec::new();
        for set in 0..sets.len() {
            if uses.get(set).is_some_and(|&n| n > 0) {
                let members = sets.get(set).copied().unwrap_or(&[]);
                for &seg in members {
                    if let Some(n) = of_segment
                        .get(seg as usize)
                        .and_then(|&a| seen.get_mut(a as usize))
                    {
                        *n += 1;
                    }
                }
                let from = whole.len();
                for &seg in members {
                    let Some(&atom) = of_segment.get(seg as usize) else {
                        continue;
                    };
                    let a = atom as usize;
                    if seen.get(a) == size.get(a) {
                        whole.push(atom);
                    } else {
                        residue.push(seg);
                    }
                }
                for &seg in members {
                    if let Some(n) = of_segment
                        .get(seg as usize)
                        .and_then(|&a| seen.get_mut(a as usize))
                    {
                        *n = 0;
                    }
                }
                // Sort and deduplicate this set's atoms in place.
                if let Some(mine) = whole.get_mut(from..) {
                    mine.sort_unstable();
                }
                let mut kept = from;
                for i in from..whole.len() {
                    if kept == from || whole[kept - 1] != whole[i] {
                        whole[kept] = whole[i];
                        kept += 1;
                    }
                }
                whole.truncate(kept);
            }
            if let Some(span) = spans.get_mut(set + 1) {
                *span = [whole.len() as u32, residue.len() as u32];
            }
        }
        SideAtoms {
            of_segment,
            size,
            spans,
            whole,
            residue,
        }
    }

    /// (atoms held whole, residue segments) of an interned set.
    fn parts(&self, set: u32) -> (&[u32], &[u32]) {
        let s = set as usize;
        let (Some(a), Some(b)) = (self.spans.get(s), self.spans.get(s + 1)) else {
            return (&[], &[]);
        };
        (
            self.whole.get(a[0] as usize..b[0] as usize).unwrap_or(&[]),
            self.residue
                .get(a[1] as usize..b[1] as usize)
                .unwrap_or(&[]),
        )
    }
}

/// Atoms of both sides, chosen when their expansion fits the budget.
struct AtomPlan {
    segment_count: usize,
    src: SideAtoms,
    dst: SideAtoms,
}

impl AtomPlan {
    /// `None` when the expansion would exceed `options.atom_budget`.
    fn new(
        segment_count: usize,
        sets: &[&[SegIdx]],
        list_rules: &[(u32, u32, u32)],
        options: &CompileOptions,
    ) -> Option<Self> {
        let mut from_uses = vec![0u32; sets.len()];
        let mut to_uses = vec![0u32; sets.len()];
        for &(_, from, to) in list_rules {
            if let Some(n) = from_uses.get_mut(from as usize) {
                *n += 1;
            }
            if let Some(n) = to_uses.get_mut(to as usize) {
                *n += 1;
            }
        }
        let src = SideAtoms::build(segment_count, sets, &from_uses, options.atom_min);
        let dst = SideAtoms::build(segment_count, sets, &to_uses, options.atom_min);
        let mut entries = 0usize;
        for &(_, from, to) in list_rules {
            let (fw, fr) = src.parts(from);
            let (tw, tr) = dst.parts(to);
            let width = (fw.len() + fr.len()).saturating_mul(tw.len() + tr.len());
            entries = entries.saturating_add(width);
        }
        (entries <= options.atom_budget).then_some(AtomPlan {
            segment_count,
            src,
            dst,
        })
    }

    /// Expand every rule with two segment lists into the four kinds of keys
    /// and compile one table per key.
    fn build(
        &self,
        list_rules: &[(u32, u32, u32)],
        builder: &mut TableBuilder,
        options: &CompileOptions,
    ) -> Result<AtomTables, CompileError> {
        let (src, dst) = (&self.src, &self.dst);
        let (segs, src_atoms, dst_atoms) = (self.segment_count, src.size.len(), dst.size.len());
        // Every (row key, column key, rule), in rule order. Source side and
        // destination side: `true` = whole atoms, `false` = residue
        // segments; `swap` makes the destination key the row.
        let each = |whole_src: bool, whole_dst: bool, swap: bool| {
            move |emit: &mut dyn FnMut(u32, u32, u32)| {
                for &(rule, from, to) in list_rules {
                    let (fw, fr) = src.parts(from);
                    let (tw, tr) = dst.parts(to);
                    let f = if whole_src { fw } else { fr };
                    let t = if whole_dst { tw } else { tr };
                    for &s in f {
                        for &d in t {
                            if swap {
                                emit(d, s, rule);
                            } else {
                                emit(s, d, rule);
                            }
                        }
                    }
                }
            }
        };
        let mut scratch = KeyScratch::default();
        let dense = options.max_dense_pair_cells;
        // (source segment, destination segment).
        let mut rr = PairIndex::new(segs, segs, dense);
        scratch.for_each_key(segs, &each(false, false, false), |s, d, rules| {
            rr.set(s, d, builder.table(rules)?);
            Ok(())
        })?;
        // (source segment, destination atom).
        let mut rw = PairIndex::new(segs, dst_atoms, dense);
        scratch.for_each_key(segs, &each(false, true, false), |s, da, rules| {
            rw.set(s, da, builder.table(rules)?);
            Ok(())
        })?;
        // (source atom, destination segment), grouped by destination.
        let mut wr = PairIndex::new(src_atoms, segs, dense);
        scratch.for_each_key(segs, &each(true, false, true), |d, sa, rules| {
            wr.set(sa, d, builder.table(rules)?);
            Ok(())
        })?;
        // (source atom, destination atom): the lists are almost all distinct
        // and short, so a short one is kept as a list of rules scanned at
        // lookup (far smaller and quicker to build than a painted table);
        // a longer one gets a table (not deduplicated).
        let mut ww = PairIndex::new(src_atoms, dst_atoms, options.max_dense_pair_cells);
        let mut ww_rules: Vec<u32> = Vec::new();
        let scan_max = options.atom_scan_max;
        scratch.for_each_key(src_atoms, &each(true, true, false), |sa, da, rules| {
            let rules = builder.prefix(rules);
            if rules.len() <= scan_max && ww_rules.len() < MAX_PAIR_ENTRIES {
                ww.set(sa, da, SCANNED | ww_rules.len() as u32);
                ww_rules.push(rules.len() as u32);
                ww_rules.extend_from_slice(rules);
            } else {
                ww.set(sa, da, builder.fresh_table(rules)?);
            }
            Ok(())
        })?;
        Ok(AtomTables {
            src_atom: src.of_segment.clone().into_boxed_slice(),
            dst_atom: dst.of_segment.clone().into_boxed_slice(),
            rr,
            rw,
            wr,
            ww,
            ww_rules: ww_rules.into_boxed_slice(),
        })
    }
}

/// Buffers for grouping (row, column, rule) triples by key.
#[derive(Default)]
struct KeyScratch {
    start: Vec<u32>,
    items: Vec<u64>,
    list: Vec<u32>,
}

impl KeyScratch {
    /// Calls `add(row, column, rules)` once per distinct key that `each`
    /// emits (rows below `rows` only), with the key's rules ascending. `each`
    /// must emit in rule order. Counting sort by row (stable, so rules stay
    /// ascending), then a small sort by (column, rule) within each row.
    fn for_each_key<E>(
        &mut self,
        rows: usize,
        each: &E,
        mut add: impl FnMut(u32, u32, &[u32]) -> Result<(), CompileError>,
    ) -> Result<(), CompileError>
    where
        E: Fn(&mut dyn FnMut(u32, u32, u32)),
    {
        self.start.clear();
        self.start.resize(rows + 1, 0);
        let start = &mut self.start;
        let mut total = 0usize;
        each(&mut |row, _, _| {
            if let Some(n) = start.get_mut(row as usize + 1) {
                *n += 1;
                total += 1;
            }
        });
        if total > MAX_PAIR_ENTRIES {
            return Err(CompileError::TooLarge {
                what: "atom-pair rule entries",
                count: total,
                limit: MAX_PAIR_ENTRIES,
            });
        }
        for i in 1..start.len() {
            start[i] += start[i - 1];
        }
        self.items.clear();
        self.items.resize(total, 0);
        let items = &mut self.items;
        // `fill[row]` = next free slot of the row; the row's start is
        // recovered afterwards as the previous row's end.
        each(&mut |row, col, rule| {
            if let Some(at) = start.get_mut(row as usize) {
                if let Some(slot) = items.get_mut(*at as usize) {
                    *slot = (u64::from(col) << 32) | u64::from(rule);
                }
                *at += 1;
            }
        });
        let mut from = 0usize;
        for (row, &end) in self.start.iter().take(rows).enumerate() {
            let end = end as usize;
            let Some(cells) = self.items.get_mut(from..end) else {
                break;
            };
            from = end;
            cells.sort_unstable();
            for group in cells.chunk_by(|a, b| a >> 32 == b >> 32) {
                let col = group.first().map_or(0, |&g| (g >> 32) as u32);
                self.list.clear();
                self.list.extend(group.iter().map(|&g| g as u32));
                add(row as u32, col, &self.list)?;
            }
        }
        Ok(())
    }
}

/// Atoms mode: every rule with two segment lists, split into (whole atoms
/// or residue segments) × (whole atoms or residue segments), indexed by the
/// four kinds of keys. A segment pair (s, d) probes each kind once; the
/// probes are independent loads.
#[derive(Debug)]
struct AtomTables {
    /// Per segment index: its source / destination atom (0 for unknown).
    src_atom: Box<[u32]>,
    dst_atom: Box<[u32]>,
    /// (source segment, destination segment).
    rr: PairIndex,
    /// (source segment, destination atom).
    rw: PairIndex,
    /// (source atom, destination segment).
    wr: PairIndex,
    /// (source atom, destination atom): a table id, or `SCANNED | at` for
    /// a short rule list kept as `ww_rules[at]` (its length) followed by
    /// its rules, ascending.
    ww: PairIndex,
    ww_rules: Box<[u32]>,
}

/// Marks an atom-pair cell that holds a rule list to scan, not a table.
const SCANNED: u32 = 1 << 31;

impl AtomTables {
    /// First rule with two segment lists matching `q` before `best`, or
    /// `best`.
    #[inline]
    fn first_match(&self, q: &FlowQuery, tables: &Tables, claims: &RuleClaims, best: u32) -> u32 {
        let sa = self.src_atom.get(q.src as usize).copied().unwrap_or(0);
        let da = self.dst_atom.get(q.dst as usize).copied().unwrap_or(0);
        let cell = self.ww.get(sa, da);
        let found = [
            self.rr.get(q.src, q.dst),
            self.rw.get(q.src, da),
            self.wr.get(sa, q.dst),
        ];
        let mut best = best;
        for table in found {
            if table != NO_TABLE {
                best = best.min(tables.lookup(table, q.proto, q.port));
            }
        }
        if cell == NO_TABLE {
            return best;
        }
        if cell & SCANNED == 0 {
            return best.min(tables.lookup(cell, q.proto, q.port));
        }
        // A short list: the first of its rules (before `best`) that matches.
        let at = (cell & !SCANNED) as usize;
        let len = self.ww_rules.get(at).copied().unwrap_or(0) as usize;
        for &rule in self.ww_rules.get(at + 1..at + 1 + len).unwrap_or(&[]) {
            if rule >= best {
                break;
            }
            if claims.matches_packed(rule, q.proto, q.port) {
                return rule;
            }
        }
        best
    }
}

/// Service specs of every rule in a compact form for the wide-rule scan.
#[derive(Debug, Default)]
struct RuleClaims {
    /// Per rule: `claims[start[r]..start[r + 1]]`.
    start: Box<[u32]>,
    claims: Box<[ScanClaim]>,
    /// Per rule: up to `SLOTS` claims packed in one 32-byte record, so a
    /// scan reads one record per rule (independent loads, no branch per
    /// claim). Encoding: `proto | lo << 16 | hi << 32`; unused slots never
    /// match; a rule with more claims has `OVERFLOW` in its last slot and
    /// is checked through `claims`.
    slots: Box<[[u64; SLOTS]]>,
}

const SLOTS: usize = 4;
/// A slot that matches nothing (protocol 511 never asked, empty range).
const EMPTY_SLOT: u64 = 511 | (1 << 16);
/// Last slot of a rule whose claims do not fit.
const OVERFLOW: u64 = 510;

/// `proto` is the protocol number, or `ANY_PROTO` for an `any` spec.
#[derive(Clone, Copy, Debug)]
struct ScanClaim {
    proto: u16,
    lo: u16,
    hi: u16,
}

const ANY_PROTO: u16 = 256;

impl RuleClaims {
    fn new(rules: &[RuleDef]) -> Self {
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
    fn matches_packed(&self, rule: u32, proto: u8, port: u16) -> bool {
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
    fn matches(&self, rule: u32, proto: u8, port: u16) -> bool {
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
struct WideEntry {
    rule: u32,
    start: u32,
    len: u32,
}

/// Split mode: wide rules (long segment lists on both sides) indexed by the
/// classes of their smaller side, in rule order. Lookup scans the entries of
/// one class until the first whose service matches and whose other side
/// holds the other class: cost grows with the number of wide rules that
/// select the class, not with the total.
#[derive(Debug, Default)]
struct WideIndex {
    /// Per class: `entries[start[c]..start[c + 1]]`.
    start: Box<[u32]>,
    entries: Box<[WideEntry]>,
    members: Box<[u32]>,
}

impl WideIndex {
    /// First rule of `class`'s entries before `best` that matches, or `best`.
    #[inline]
    fn scan(
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
struct WideBuilder {
    items: Vec<(u32, u32, u32)>,
}

impl WideBuilder {
    fn add(&mut self, classes: &[u32], rule: u32, other_set: u32) {
        self.items
            .extend(classes.iter().map(|&c| (c, rule, other_set)));
    }

    /// `other` holds the classes of the other side's sets.
    fn finish(self, class_count: usize, other: &Classes) -> WideIndex {
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

/// One port-range claim while painting: rule `rule` matches `lo..=hi`.
#[derive(Clone, Copy, Debug)]
struct Claim {
    proto: u8,
    lo: u16,
    hi: u16,
    rule: u32,
}

/// Builds and deduplicates tables.
struct TableBuilder {
    /// Per rule: its port claims (`rule_claims[rule_start[r]..rule_start[r + 1]]`,
    /// `rule` set, `any` specs left out), flat so painting reads one small
    /// array instead of chasing every rule's `services`.
    rule_start: Vec<u32>,
    rule_claims: Vec<Claim>,
    /// Per rule: does one of its specs match every protocol (`any`)?
    any: Vec<bool>,
    tables: Tables,
    /// Deduplication: (start in `lists`, length, table) of every list built
    /// through [`TableBuilder::table`], found by the hash of the list; the
    /// lists themselves live end to end in `lists` (no allocation per table).
    by_list: HashTable<(u32, u32, u32)>,
    lists: Vec<u32>,
    hasher: DefaultHashBuilder,
    // Scratch, reused by every table.
    claims: Vec<Claim>,
    starts: Vec<u32>,
    paint: Vec<u32>,
    next: Vec<u32>,
    ends: Vec<u16>,
    rules: Vec<u32>,
}

impl TableBuilder {
    fn new(rules: &[RuleDef]) -> Self {
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

    fn has_any(&self, rule: u32) -> bool {
        self.any.get(rule as usize).copied().unwrap_or(false)
    }

    /// The part of an ascending rule list that can ever decide: up to and
    /// including its first rule with an `any` spec.
    fn prefix<'l>(&self, list: &'l [u32]) -> &'l [u32] {
        match list.iter().position(|&r| self.has_any(r)) {
            Some(at) => &list[..=at],
            None => list,
        }
    }

    /// The table of an ascending rule list, built once per distinct list.
    fn table(&mut self, list: &[u32]) -> Result<u32, CompileError> {
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
    fn fresh_table(&mut self, list: &[u32]) -> Result<u32, CompileError> {
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

    fn paint_table(&mut self, list: &[u32]) {
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
    fn paint_proto(&mut self, claims: &[Claim], other: u32) {
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

    fn finish(self) -> Tables {
        self.tables
    }
}

/// Root of `x` in the "next unpainted" forest, halving paths on the way.
fn find(next: &mut [u32], mut x: u32) -> u32 {
    while next[x as usize] != x {
        let parent = next[x as usize];
        next[x as usize] = next[parent as usize];
        x = parent;
    }
    x
}

// ---------------------------------------------------------------------------
// The compiled policy
// ---------------------------------------------------------------------------

/// A compiled policy: placement plus rule tables. Immutable, `Send + Sync`,
/// cheap to clone (two `Arc`s).
#[derive(Clone, Debug)]
pub struct CompiledPolicy {
    base: Arc<PlacementBase>,
    placement: Arc<SegmentMap>,
    rules: Arc<RuleTables>,
}

impl CompiledPolicy {
    /// Compile a ruleset (its endpoints included). Fails on a ruleset that
    /// breaks an invariant or exceeds a compile limit; never panics.
    pub fn compile(rs: &Ruleset) -> Result<CompiledPolicy, CompileError> {
        Self::compile_with(rs, &CompileOptions::default())
    }

    /// [`CompiledPolicy::compile`] with explicit tuning (same answers).
    pub fn compile_with(
        rs: &Ruleset,
        options: &CompileOptions,
    ) -> Result<CompiledPolicy, CompileError> {
        rs.check()?;
        let base = Arc::new(PlacementBase::new(rs)?);
        let placement = Arc::new(SegmentMap::build(&base, &rs.endpoints)?);
        let rules = Arc::new(RuleTables::build(rs, options)?);
        Ok(CompiledPolicy {
            base,
            placement,
            rules,
        })
    }

    /// Same rule tables (shared, not recompiled), new endpoint set.
    pub fn with_endpoints(
        &self,
        endpoints: &[EndpointDef],
    ) -> Result<CompiledPolicy, CompileError> {
        Ok(CompiledPolicy {
            base: Arc::clone(&self.base),
            placement: Arc::new(SegmentMap::build(&self.base, endpoints)?),
            rules: Arc::clone(&self.rules),
        })
    }

    /// The placement structure alone.
    pub fn segment_map(&self) -> &SegmentMap {
        &self.placement
    }

    /// Do `self` and `other` share the same rule tables (one was derived from
    /// the other by [`CompiledPolicy::with_endpoints`])?
    pub fn shares_rules_with(&self, other: &CompiledPolicy) -> bool {
        Arc::ptr_eq(&self.rules, &other.rules)
    }

    /// Source segment of an IPv4 frame; `zone`: where it entered, checked
    /// against the segment's `zones` (`None`: not checked).
    #[inline]
    pub fn place_src_v4(
        &self,
        vlan: Option<u16>,
        src: u32,
        zone: Option<ZoneMask>,
    ) -> Result<SegIdx, PlaceError> {
        self.placement.place_src_v4(vlan, src, zone)
    }

    /// Source segment of an IPv6 frame (see [`CompiledPolicy::place_src_v4`]).
    #[inline]
    pub fn place_src_v6(
        &self,
        vlan: Option<u16>,
        src: u128,
        zone: Option<ZoneMask>,
    ) -> Result<SegIdx, PlaceError> {
        self.placement.place_src_v6(vlan, src, zone)
    }

    /// The bit of zone `name` in this policy (0 when it names no such zone).
    #[inline]
    pub fn zone_mask(&self, name: &str) -> ZoneMask {
        self.placement.zone_mask(name)
    }

    /// Does any segment list zones?
    #[inline]
    pub fn has_zones(&self) -> bool {
        self.placement.has_zones()
    }

    #[inline]
    pub fn place_dst_v4(&self, dst: u32) -> SegIdx {
        self.placement.place_dst_v4(dst)
    }

    #[inline]
    pub fn place_dst_v6(&self, dst: u128) -> SegIdx {
        self.placement.place_dst_v6(dst)
    }

    /// Source segment of an address (see [`CompiledPolicy::place_src_v4`]).
    pub fn place_src(
        &self,
        vlan: Option<u16>,
        src: IpAddr,
        zone: Option<ZoneMask>,
    ) -> Result<SegIdx, PlaceError> {
        match src {
            IpAddr::V4(ip) => self.place_src_v4(vlan, u32::from(ip), zone),
            IpAddr::V6(ip) => self.place_src_v6(vlan, u128::from(ip), zone),
        }
    }

    /// The segment listing this VLAN, if any.
    #[inline]
    pub fn vlan_segment(&self, vlan: u16) -> Option<SegIdx> {
        self.segment_map().vlan_segment(vlan)
    }

    pub fn place_dst(&self, dst: IpAddr) -> SegIdx {
        match dst {
            IpAddr::V4(ip) => self.place_dst_v4(u32::from(ip)),
            IpAddr::V6(ip) => self.place_dst_v6(u128::from(ip)),
        }
    }

    /// Judge a new connection. No allocation; an unknown segment index is
    /// treated as a segment that no list selects, in enforce mode.
    #[inline]
    pub fn decide(&self, q: &FlowQuery) -> Decision {
        let rules = &*self.rules;
        let index = rules.first_match(q);
        let (action, rule, log) = match rules.rule_action.get(index as usize) {
            Some(&action) => (
                action,
                RuleRef::Rule(index),
                rules.rule_log.get(index as usize).copied().unwrap_or(false),
            ),
            None => (rules.default_action, RuleRef::Default, false),
        };
        let monitored = rules.monitor.get(q.dst as usize).copied().unwrap_or(false);
        if action == Action::Deny && monitored {
            Decision {
                action: Action::Allow,
                rule,
                log,
                monitor: true,
            }
        } else {
            Decision {
                action,
                rule,
                log,
                monitor: false,
            }
        }
    }

    pub fn segment_count(&self) -> usize {
        self.rules.segment_ids.len()
    }

    /// The stable id of a segment index (world's for an unknown index).
    pub fn segment_id(&self, idx: SegIdx) -> SegmentId {
        self.rules
            .segment_ids
            .get(idx as usize)
            .copied()
            .unwrap_or(SegmentId::WORLD)
    }

    pub fn segment_index(&self, id: SegmentId) -> Option<SegIdx> {
        self.rules.index_of.get(&id).copied()
    }

    /// The name of a segment index (`"?"` for an unknown index).
    pub fn segment_name(&self, idx: SegIdx) -> &str {
        self.rules
            .segment_names
            .get(idx as usize)
            .map_or("?", String::as_str)
    }

    pub fn rule_count(&self) -> usize {
        self.rules.rule_names.len()
    }

    /// `"default"` for [`RuleRef::Default`], `"?"` for an unknown index.
    pub fn rule_name(&self, rule: RuleRef) -> &str {
        match rule {
            RuleRef::Default => "default",
            RuleRef::Rule(index) => self
                .rules
                .rule_names
                .get(index as usize)
                .map_or("?", String::as_str),
        }
    }

    /// Was the policy compiled in exact mode (one table per class pair)?
    pub fn is_exact(&self) -> bool {
        self.rules.mode == LookupMode::Exact
    }

    /// How lookups find the first matching rule.
    pub fn lookup_mode(&self) -> LookupMode {
        self.rules.mode
    }

    /// Distinct compiled tables (identical rule lists share one).
    pub fn table_count(&self) -> usize {
        self.rules.tables.count
    }

    /// Bytes held by the compiled tables (their flat array alone).
    pub fn table_bytes(&self) -> usize {
        self.rules.tables.words.len() * std::mem::size_of::<u64>()
    }
}

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
//! Files: this one holds the options, the mode choice and lookup
//! (`RuleTables`) and [`CompiledPolicy`]; `compile/tables.rs` the flat table
//! format and its builder; `compile/exact.rs` the class-pair index of exact
//! mode; `compile/atoms.rs` atoms mode; `compile/scan.rs` scan mode.
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

mod atoms;
mod exact;
mod scan;
mod tables;

use atoms::*;
use exact::*;
use scan::*;
use tables::*;

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

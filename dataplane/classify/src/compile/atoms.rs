//! Atoms mode: wide rules split into atoms held whole and per-segment
//! residue, probed through a fixed number of pair indices.

use super::*;

// ---------------------------------------------------------------------------
// Atoms mode
// ---------------------------------------------------------------------------

/// The atoms of one side (source or destination): a partition of the
/// segments refined by the long segment lists used on that side, so that
/// most of each long list is a union of whole atoms. Every list used on the
/// side is split into the atoms it holds whole and a residue of single
/// segments. Atom 0 holds no segment (unknown indices map to it).
pub(super) struct SideAtoms {
    pub(super) of_segment: Vec<u32>,
    pub(super) size: Vec<u32>,
    /// Per interned set id `i`: its atoms held whole (ascending) are
    /// `whole[spans[i][0]..spans[i + 1][0]]`, its residue segments
    /// `residue[spans[i][1]..spans[i + 1][1]]`; both empty for sets not used
    /// on this side.
    pub(super) spans: Vec<[u32; 2]>,
    pub(super) whole: Vec<u32>,
    pub(super) residue: Vec<u32>,
}

impl SideAtoms {
    /// `uses[set]` = how many rules use the set on this side.
    pub(super) fn build(
        segment_count: usize,
        sets: &[&[SegIdx]],
        uses: &[u32],
        atom_min: usize,
    ) -> Self {
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
    pub(super) fn parts(&self, set: u32) -> (&[u32], &[u32]) {
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
pub(super) struct AtomPlan {
    pub(super) segment_count: usize,
    pub(super) src: SideAtoms,
    pub(super) dst: SideAtoms,
}

impl AtomPlan {
    /// `None` when the expansion would exceed `options.atom_budget`.
    pub(super) fn new(
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
    pub(super) fn build(
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
pub(super) struct KeyScratch {
    pub(super) start: Vec<u32>,
    pub(super) items: Vec<u64>,
    pub(super) list: Vec<u32>,
}

impl KeyScratch {
    /// Calls `add(row, column, rules)` once per distinct key that `each`
    /// emits (rows below `rows` only), with the key's rules ascending. `each`
    /// must emit in rule order. Counting sort by row (stable, so rules stay
    /// ascending), then a small sort by (column, rule) within each row.
    pub(super) fn for_each_key<E>(
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
pub(super) struct AtomTables {
    /// Per segment index: its source / destination atom (0 for unknown).
    pub(super) src_atom: Box<[u32]>,
    pub(super) dst_atom: Box<[u32]>,
    /// (source segment, destination segment).
    pub(super) rr: PairIndex,
    /// (source segment, destination atom).
    pub(super) rw: PairIndex,
    /// (source atom, destination segment).
    pub(super) wr: PairIndex,
    /// (source atom, destination atom): a table id, or `SCANNED | at` for
    /// a short rule list kept as `ww_rules[at]` (its length) followed by
    /// its rules, ascending.
    pub(super) ww: PairIndex,
    pub(super) ww_rules: Box<[u32]>,
}

/// Marks an atom-pair cell that holds a rule list to scan, not a table.
pub(super) const SCANNED: u32 = 1 << 31;

impl AtomTables {
    /// First rule with two segment lists matching `q` before `best`, or
    /// `best`.
    #[inline]
    pub(super) fn first_match(
        &self,
        q: &FlowQuery,
        tables: &Tables,
        claims: &RuleClaims,
        best: u32,
    ) -> u32 {
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

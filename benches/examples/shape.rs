//! Scratch: statistics of synthetic policies (not a benchmark).
use std::time::Instant;
use bulkhead_classify::{CompiledPolicy, SegmentSet};
fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    let (segs, rules) = (args[0], args[1]);
    let t = Instant::now();
    let doc = bulkhead_policy::synthetic::generate(segs, rules, 1);
    let loaded = bulkhead_policy::load(&doc, "syn").unwrap();
    let rs = loaded.policy.ruleset().clone();
    println!("load {:?}", t.elapsed());
    let mut sum_from = 0usize; let mut sum_prod = 0usize; let mut any = 0;
    for r in &rs.rules {
        let f = match &r.from { SegmentSet::Any => {any+=1; rs.segments.len()}, SegmentSet::List(v) => v.len() };
        let to = match &r.to { SegmentSet::Any => {any+=1; rs.segments.len()}, SegmentSet::List(v) => v.len() };
        sum_from += f; sum_prod += f * to;
    }
    println!("rules {} any-sides {any} sum|from| {sum_from} sum|from|x|to| {sum_prod}", rs.rules.len());
    let t = Instant::now();
    let cp = CompiledPolicy::compile(&rs);
    println!("compile {:?} ok={} tables={:?}", t.elapsed(), cp.is_ok(), cp.as_ref().map(|c| c.table_count()).map_err(|e| e.to_string()));
}

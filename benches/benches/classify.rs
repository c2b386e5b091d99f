//! Criterion benchmarks of `bulkhead-classify`: compile time, and the cost
//! of judging a new connection (placement of source and destination, then
//! `decide`) as the number of rules grows over the same 5,000 segments.
//!
//! Run: `cargo bench -p bulkhead-benches --bench classify -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::Duration;

use bulkhead_benches::{packets, synthetic_ruleset, Packet};
use bulkhead_classify::{Action, CompiledPolicy, FlowQuery};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const SEED: u64 = 42;
const LOOKUP_SEGMENTS: usize = 5_000;
const BATCH: usize = 4_096;

fn compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    for (segments, rules) in [(50, 100), (1_000, 10_000), (5_000, 100_000)] {
        let rs = match synthetic_ruleset(segments, rules, SEED) {
            Ok(rs) => rs,
            Err(e) => panic!("synthetic policy {segments}/{rules}: {e}"),
        };
        group.bench_with_input(
            BenchmarkId::new(format!("{segments}seg"), rules),
            &rs,
            |b, rs| b.iter(|| CompiledPolicy::compile(black_box(rs)).map(|cp| cp.table_count())),
        );
    }
    group.finish();
}

/// Place and judge one packet; returns 1 when allowed (to keep it observable).
#[inline]
fn judge(cp: &CompiledPolicy, p: &Packet) -> u32 {
    let Ok(src) = cp.place_src_v4(p.vlan, p.src, None) else {
        return 0;
    };
    let dst = cp.place_dst_v4(p.dst);
    let d = cp.decide(&FlowQuery {
        src,
        dst,
        proto: p.proto,
        port: p.port,
    });
    u32::from(d.action == Action::Allow)
}

fn lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("new_connection");
    group.throughput(Throughput::Elements(BATCH as u64));
    for rules in [10, 1_000, 100_000] {
        let rs = match synthetic_ruleset(LOOKUP_SEGMENTS, rules, SEED) {
            Ok(rs) => rs,
            Err(e) => panic!("synthetic policy {LOOKUP_SEGMENTS}/{rules}: {e}"),
        };
        let cp = match CompiledPolicy::compile(&rs) {
            Ok(cp) => cp,
            Err(e) => panic!("compile {rules}: {e}"),
        };
        eprintln!(
            "new_connection/{rules}: {:?} mode, {} tables, {} MiB of tables",
            cp.lookup_mode(),
            cp.table_count(),
            cp.table_bytes() >> 20
        );
        let batch = packets(&rs, BATCH, SEED ^ rules as u64);
        group.bench_with_input(
            BenchmarkId::new("place+decide", rules),
            &batch,
            |b, batch| b.iter(|| batch.iter().map(|p| judge(&cp, black_box(p))).sum::<u32>()),
        );
        // The same connections, already placed: decide alone.
        let queries: Vec<FlowQuery> = batch
            .iter()
            .filter_map(|p| {
                let src = cp.place_src_v4(p.vlan, p.src, None).ok()?;
                Some(FlowQuery {
                    src,
                    dst: cp.place_dst_v4(p.dst),
                    proto: p.proto,
                    port: p.port,
                })
            })
            .collect();
        group.bench_with_input(BenchmarkId::new("decide", rules), &queries, |b, queries| {
            b.iter(|| {
                queries
                    .iter()
                    .map(|q| u32::from(cp.decide(black_box(q)).action == Action::Allow))
                    .sum::<u32>()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = compile, lookup
}
criterion_main!(benches);

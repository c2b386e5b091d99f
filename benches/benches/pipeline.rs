//! The burst pipeline without device I/O: prepared frames through parse,
//! segment placement, connection tracking, classification and the
//! forwarding decision, in bursts of 32.
//!
//! Cases: established traffic at 10,000 and 1,000,000 tracked connections,
//! new connections (SYNs creating entries), and a denied flood. Criterion
//! reports time and packets per second per core; at the end each case's
//! cycles per packet are printed, measured with the TSC.
//!
//! Run: `cargo bench -p bulkhead-benches --bench pipeline`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulkhead_classify::CompiledPolicy;
use bulkhead_dpdk::Eal;
use bulkhead_engine::events::EventMode;
use bulkhead_engine::handover::PolicySnapshot;
use bulkhead_engine::pipeline::{Pipeline, PipelineConfig};
use bulkhead_engine::stats::{Fate, Side};
use bulkhead_engine::BURST;
use bulkhead_packet::build::{self, FrameSpec, Tcp};
use bulkhead_packet::tcp_flags::{ACK, PSH, SYN};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use crossbeam::queue::ArrayQueue;

const POLICY: &str = r#"
version: 1
segments:
  web: { id: 10, prefixes: [10.10.0.0/16] }
  app: { id: 20, prefixes: [10.20.0.0/16] }
  db:  { id: 30, prefixes: [10.30.0.0/16] }
rules:
  - { name: web-to-app, from: [web], to: [app], services: [tcp/8080], action: allow }
  - { name: app-to-db, from: [app], to: [db], services: [tcp/5432], action: allow }
"#;

fn snapshot() -> PolicySnapshot {
    let loaded =
        bulkhead_policy::validate_full(POLICY, "bench.yaml").expect("bench policy is valid");
    PolicySnapshot::new(
        1,
        CompiledPolicy::compile(loaded.policy.ruleset()).expect("compiles"),
        1,
    )
}

/// `BULKHEAD_BENCH_WINDOWS=1` runs every case with TCP window tracking on
/// (the appliance's default); otherwise off, as the figures before window
/// tracking existed were measured.
fn windows() -> bool {
    std::env::var("BULKHEAD_BENCH_WINDOWS").is_ok_and(|v| v == "1")
}

fn pipeline(capacity: usize) -> Pipeline {
    Pipeline::new(
        PipelineConfig {
            worker: 0,
            pass_non_ip: false,
            pass_fragments: false,
            event_mode: EventMode::Off,
            conntrack_capacity: capacity,
            timeouts: bulkhead_conntrack::Timeouts::default(),
            quotas: bulkhead_conntrack::Quotas::UNLIMITED,
            fold: bulkhead_engine::fold::FoldConfig::default(),
            hash_seed: 0x1234_5678_9abc_def1,
            workers: 1,
            track_windows: windows(),
        },
        Arc::new(ArrayQueue::new(1)),
        Arc::new(bulkhead_engine::zones::ZoneConfig::default()),
    )
    .expect("pipeline")
}

/// Client and server address of connection `i` (spread over web and app /16s).
fn hosts(i: u32, dst_net: u8) -> ([u8; 4], [u8; 4], u16) {
    let c = [10, 10, (i >> 8 & 0xff) as u8, (i & 0xff) as u8];
    let s = [
        10,
        dst_net,
        (i >> 16 & 0xff) as u8,
        (i >> 12 & 0xf) as u8 + 1,
    ];
    (c, s, 1024 + (i % 50_000) as u16)
}

/// A segment with consistent sequence numbers: the client's ISN is 1000
/// (the builder's), the server's 1000 too; every segment carries 16 bytes
/// (as the frames measured before window tracking did).
fn frame(spec: FrameSpec, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut f = Vec::new();
    let ack = if flags & ACK != 0 { 1001 } else { 0 };
    build::tcp(
        &mut f,
        &spec,
        &Tcp::new(sport, dport, flags)
            .seq(if flags & SYN != 0 { 1000 } else { 1001 })
            .ack(ack)
            .payload(b"0123456789abcdef"),
    );
    f
}

/// Open `n` connections in `p`; return one data frame per connection, in a shuffled order.
fn establish(p: &mut Pipeline, snap: &PolicySnapshot, n: u32) -> Vec<Vec<u8>> {
    let mut data = Vec::with_capacity(n as usize);
    let mut fates = [Fate::Forward; 1];
    for i in 0..n {
        let (c, s, sport) = hosts(i, 20);
        for (f, side) in [
            (frame(FrameSpec::v4(c, s), sport, 8080, SYN), Side::A),
            (frame(FrameSpec::v4(s, c), 8080, sport, SYN | ACK), Side::B),
            (frame(FrameSpec::v4(c, s), sport, 8080, ACK), Side::A),
        ] {
            p.process_burst(snap, side, &[f.as_slice()], 1, &mut fates);
            assert_eq!(fates[0], Fate::Forward, "connection {i} opens");
        }
        data.push(frame(FrameSpec::v4(c, s), sport, 8080, ACK | PSH));
    }
    // Deterministic shuffle (xorshift), so lookups hit the table at random.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in (1..data.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.swap(i, (x % (i as u64 + 1)) as usize);
    }
    data
}

/// Run `frames` through the pipeline in bursts, cycling; returns packets done.
fn run_bursts(
    p: &mut Pipeline,
    snap: &PolicySnapshot,
    frames: &[&[u8]],
    start: &mut usize,
    bursts: u64,
    now: u64,
) -> u64 {
    let mut fates = [Fate::Forward; BURST];
    for _ in 0..bursts {
        if *start + BURST > frames.len() {
            *start = 0;
        }
        let chunk = &frames[*start..*start + BURST];
        p.process_burst(snap, Side::A, chunk, now, &mut fates);
        black_box(&fates);
        *start += BURST;
    }
    bursts * BURST as u64
}

/// TSC ticks per nanosecond, calibrated against the wall clock.
fn tsc_per_ns() -> f64 {
    let (t0, i0) = (Eal::tsc(), Instant::now());
    std::thread::sleep(Duration::from_millis(200));
    (Eal::tsc() - t0) as f64 / i0.elapsed().as_nanos() as f64
}

fn cycles_per_packet(label: &str, ghz: f64, mut f: impl FnMut() -> u64) {
    let t0 = Eal::tsc();
    let mut packets = 0;
    let i0 = Instant::now();
    while i0.elapsed() < Duration::from_secs(2) {
        packets += f();
    }
    let cycles = (Eal::tsc() - t0) as f64 / packets as f64;
    println!(
        "pipeline/{label}: {cycles:.1} cycles per packet ({:.1} ns, {:.2} Mpps per core at {ghz:.2} GHz TSC)",
        cycles / ghz,
        ghz * 1e3 / cycles
    );
}

fn benches(c: &mut Criterion) {
    let snap = snapshot();
    let ghz = tsc_per_ns();
    let mut summary: Vec<Box<dyn FnOnce()>> = Vec::new();
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BURST as u64));
    g.measurement_time(Duration::from_secs(5));

    for n in [10_000u32, 1_000_000] {
        let mut p = pipeline(n as usize + n as usize / 4);
        let data = establish(&mut p, &snap, n);
        let frames: Vec<&[u8]> = data.iter().map(|f| f.as_slice()).collect();
        let mut at = 0;
        g.bench_function(format!("established/{n}"), |b| {
            b.iter(|| run_bursts(&mut p, &snap, &frames, &mut at, 1, 2))
        });
        let label = format!("established/{n}");
        let snap2 = snapshot();
        summary.push(Box::new(move || {
            let frames: Vec<&[u8]> = data.iter().map(|f| f.as_slice()).collect();
            let mut at = 0;
            cycles_per_packet(&label, ghz, || {
                run_bursts(&mut p, &snap2, &frames, &mut at, 1024, 2)
            });
        }));
    }

    // New connections: distinct SYNs, each creating an entry. The table is
    // flushed (untimed) whenever the prepared SYNs run out.
    {
        const N: u32 = 500_000;
        let syns: Vec<Vec<u8>> = (0..N)
            .map(|i| {
                let (c, s, sport) = hosts(i, 20);
                frame(FrameSpec::v4(c, s), sport, 8080, SYN)
            })
            .collect();
        let frames: Vec<&[u8]> = syns.iter().map(|f| f.as_slice()).collect();
        let mut p = pipeline(N as usize + 1024);
        let mut at = 0;
        g.bench_function("new-connections", |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    if at + BURST > frames.len() {
                        p.flush(&snap, 3);
                        at = 0;
                    }
                    let room = ((frames.len() - at) / BURST) as u64;
                    let k = left.min(room);
                    let t = Instant::now();
                    run_bursts(&mut p, &snap, &frames, &mut at, k, 3);
                    spent += t.elapsed();
                    left -= k;
                }
                spent
            })
        });
        let snap2 = snapshot();
        summary.push(Box::new(move || {
            let frames: Vec<&[u8]> = syns.iter().map(|f| f.as_slice()).collect();
            p.flush(&snap2, 3);
            let mut at = 0;
            let t0 = Eal::tsc();
            let done = run_bursts(&mut p, &snap2, &frames, &mut at, (N as usize / BURST) as u64, 3);
            let cycles = (Eal::tsc() - t0) as f64 / done as f64;
            println!(
                "pipeline/new-connections: {cycles:.1} cycles per packet ({:.2} M new connections per second per core)",
                ghz * 1e3 / cycles
            );
        }));
    }

    // A flood of SYNs no rule allows: judged and dropped, nothing tracked.
    {
        let flood: Vec<Vec<u8>> = (0..65_536u32)
            .map(|i| {
                let (c, s, sport) = hosts(i, 30);
                frame(FrameSpec::v4(c, s), sport, 5432, SYN)
            })
            .collect();
        let frames: Vec<&[u8]> = flood.iter().map(|f| f.as_slice()).collect();
        let mut p = pipeline(1024);
        let mut at = 0;
        g.bench_function("denied-flood", |b| {
            b.iter(|| run_bursts(&mut p, &snap, &frames, &mut at, 1, 4))
        });
        let snap2 = snapshot();
        summary.push(Box::new(move || {
            let frames: Vec<&[u8]> = flood.iter().map(|f| f.as_slice()).collect();
            let mut at = 0;
            cycles_per_packet("denied-flood", ghz, || {
                run_bursts(&mut p, &snap2, &frames, &mut at, 1024, 4)
            });
        }));
    }
    g.finish();
    for s in summary {
        s();
    }
}

criterion_group!(pipeline_benches, benches);
criterion_main!(pipeline_benches);

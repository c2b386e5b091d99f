//! Shared helpers for the engine's tests: a test policy and frame builders.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::sync::Arc;

use bulkhead_classify::CompiledPolicy;
use bulkhead_engine::events::{EventMode, FlowEvent};
use bulkhead_engine::handover::PolicySnapshot;
use bulkhead_engine::pipeline::{Pipeline, PipelineConfig};
use bulkhead_packet::build::{self, Echo, FrameSpec, Tcp};
use bulkhead_packet::tcp_flags::{ACK, FIN, RST, SYN};
use crossbeam::queue::ArrayQueue;

pub const POLICY: &str = r#"
version: 1
segments:
  web:
    id: 10
    vlans: [10]
    prefixes: [10.0.10.0/24, "fd00:10::/64"]
  app:
    id: 20
    prefixes: [10.0.20.0/24, "fd00:20::/64"]
  db:
    id: 30
    prefixes: [10.0.30.0/24]
  logs:
    id: 40
    prefixes: [10.0.40.0/24]
    mode: monitor
rules:
  - name: web-to-app
    from: [web]
    to: [app]
    services: [tcp/8080, udp/53, icmp/8, icmpv6/128, "tcp/9000-9099"]
    action: allow
  - name: app-to-db
    from: [app]
    to: [db]
    services: [tcp/5432]
    action: allow
"#;

/// Compile a policy document (panics on an invalid test policy).
pub fn compile(yaml: &str) -> CompiledPolicy {
    let loaded = match bulkhead_policy::validate_full(yaml, "test.yaml") {
        Ok(l) => l,
        Err(errs) => panic!("test policy invalid: {errs:?}"),
    };
    CompiledPolicy::compile(loaded.policy.ruleset()).expect("compiles")
}

pub fn snapshot(generation: u64, yaml: &str) -> PolicySnapshot {
    PolicySnapshot::new(generation, compile(yaml), 1)
}

/// A pipeline with a table of `capacity` connections, all events on, no
/// quotas, no denial folding, no zones.
pub fn pipeline(capacity: usize) -> (Pipeline, Arc<ArrayQueue<FlowEvent>>) {
    let unfolded = bulkhead_engine::fold::FoldConfig {
        interval_ns: 0,
        rate_per_sec: 0,
        burst: 0,
    };
    pipeline_with(
        capacity,
        bulkhead_conntrack::Quotas::UNLIMITED,
        unfolded,
        bulkhead_engine::zones::ZoneConfig::default(),
    )
}

/// A pipeline with the given quotas, denial folding and zones.
pub fn pipeline_with(
    capacity: usize,
    quotas: bulkhead_conntrack::Quotas,
    fold: bulkhead_engine::fold::FoldConfig,
    zones: bulkhead_engine::zones::ZoneConfig,
) -> (Pipeline, Arc<ArrayQueue<FlowEvent>>) {
    let q = Arc::new(ArrayQueue::new(1 << 16));
    let p = Pipeline::new(
        PipelineConfig {
            worker: 0,
            pass_non_ip: false,
            pass_fragments: false,
            event_mode: EventMode::All,
            conntrack_capacity: capacity,
            timeouts: bulkhead_conntrack::Timeouts::default(),
            quotas,
            fold,
            hash_seed: 0x1234_5678_9abc_def1,
            workers: 1,
            track_windows: true,
        },
        q.clone(),
        Arc::new(zones),
    )
    .expect("pipeline");
    (p, q)
}

pub fn v4(src: [u8; 4], dst: [u8; 4]) -> FrameSpec {
    FrameSpec::v4(src, dst)
}

pub fn tcp(spec: FrameSpec, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut f = Vec::new();
    build::tcp(&mut f, &spec, &Tcp::new(sport, dport, flags));
    f
}

pub fn tcp_payload(spec: FrameSpec, sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    build::tcp(
        &mut f,
        &spec,
        &Tcp::new(sport, dport, flags).payload(payload),
    );
    f
}

pub fn udp(spec: FrameSpec, sport: u16, dport: u16) -> Vec<u8> {
    let mut f = Vec::new();
    build::udp(&mut f, &spec, sport, dport, b"query");
    f
}

pub fn ping(spec: FrameSpec, echo: Echo, id: u16) -> Vec<u8> {
    let mut f = Vec::new();
    build::icmp_echo(&mut f, &spec, echo, id, 1, b"ping");
    f
}

/// The three-way handshake and one data packet each way from `c` to `s`.
pub fn handshake(c: [u8; 4], s: [u8; 4], sport: u16, dport: u16) -> [Vec<u8>; 3] {
    [
        tcp(v4(c, s), sport, dport, SYN),
        tcp(v4(s, c), dport, sport, SYN | ACK),
        tcp(v4(c, s), sport, dport, ACK),
    ]
}

pub const FLAGS_FIN_ACK: u8 = FIN | ACK;
pub const FLAGS_RST: u8 = RST;

/// The test binary's EAL (one per process), with a file prefix unique to it.
pub fn test_eal(tag: &str) -> &'static bulkhead_dpdk::Eal {
    static EAL: std::sync::OnceLock<bulkhead_dpdk::Eal> = std::sync::OnceLock::new();
    EAL.get_or_init(|| {
        let prefix = format!("--file-prefix=bh-engine-{tag}-{}", std::process::id());
        bulkhead_dpdk::Eal::init(&[
            "--no-huge",
            "-m",
            "512",
            "--no-pci",
            &prefix,
            "-l",
            "0",
            "--log-level=*:error",
        ])
        .expect("EAL starts")
    })
}

//! Frame sizes on real DPDK ring ports: the MTU sizes the pool so a jumbo frame crosses the wire
//! whole in one mbuf, and a frame longer than the MTU allows (or one a device truncated, as
//! `net_af_packet` does) is an ingress drop of its own (`oversize`), never a parse error.

mod common;

use std::time::{Duration, Instant};

use bulkhead_dpdk::{Eal, IngressDrops, MbufBurst, Mempool, Port, PortId, Ring};
use bulkhead_engine::events::EventMode;
use bulkhead_engine::idle::IdleMode;
use bulkhead_engine::stats::{ingress_drop_metrics, Side};
use bulkhead_engine::{Engine, EngineConfig};
use bulkhead_packet::build;
use bulkhead_packet::DropReason;
use common::*;

const WEB: [u8; 4] = [10, 0, 10, 5];
const APP: [u8; 4] = [10, 0, 20, 3];

fn eal() -> &'static Eal {
    test_eal("mtu")
}

struct Wire {
    a_rx: Ring,
    b_tx: Ring,
    _a_tx: Ring,
    _b_rx: Ring,
    a: PortId,
    b: PortId,
    /// Test frames come from here: big enough for any frame the tests send.
    pool: Mempool,
}

fn wire(name: &str) -> Wire {
    let e = eal();
    let ring = |s: &str| Ring::new(e, &format!("{name}_{s}"), 1024).expect("ring");
    let (a_rx, a_tx, b_rx, b_tx) = (ring("arx"), ring("atx"), ring("brx"), ring("btx"));
    let a = Port::from_rings(e, &format!("net_{name}_a"), &[&a_rx], &[&a_tx]).expect("port a");
    let b = Port::from_rings(e, &format!("net_{name}_b"), &[&b_rx], &[&b_tx]).expect("port b");
    let pool = Mempool::new(e, &format!("{name}_pool"), 255, 0, 12 * 1024).expect("pool");
    Wire {
        a_rx,
        b_tx,
        _a_tx: a_tx,
        _b_rx: b_rx,
        a,
        b,
        pool,
    }
}

fn engine(w: &Wire, mtu: u16) -> Engine {
    let cfg = EngineConfig {
        workers: vec![
            if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
                1
            } else {
                0
            },
        ],
        wires: vec![(w.a, w.b)],
        mbufs: 1023,
        mbuf_cache: 0,
        rx_desc: 256,
        tx_desc: 256,
        mtu,
        rx_frame_room: 0,
        idle: IdleMode::Adaptive,
        pass_non_ip: false,
        pass_fragments: false,
        conntrack_capacity: 1024,
        timeouts: bulkhead_conntrack::Timeouts::default(),
        event_mode: EventMode::Off,
        event_queue: 64,
        quotas: bulkhead_conntrack::Quotas::UNLIMITED,
        fold: bulkhead_engine::fold::FoldConfig::default(),
        zones: bulkhead_engine::zones::ZoneConfig::default(),
        track_windows: true,
        trace_filter: bulkhead_engine::trace::TraceFilter::default(),
    };
    Engine::start(eal(), cfg, compile(POLICY)).expect("engine starts")
}

/// An allowed UDP frame (web → app, udp/53) of exactly `len` bytes.
fn udp_frame(len: usize) -> Vec<u8> {
    let mut f = Vec::new();
    let payload = vec![0x5a; len - 14 - 20 - 8];
    build::udp(&mut f, &v4(WEB, APP), 40000, 53, &payload);
    assert_eq!(f.len(), len);
    f
}

fn inject(w: &Wire, frames: &[Vec<u8>]) {
    let mut burst: MbufBurst<32> = MbufBurst::new();
    for f in frames {
        let mut m = w.pool.alloc().expect("mbuf");
        m.append(f).expect("fits");
        assert!(burst.push(m).is_ok());
    }
    assert_eq!(w.a_rx.enqueue_burst(&mut burst), frames.len());
}

/// Wait until port A's frames are all accounted for: seen by the worker or dropped at ingress.
fn wait_seen(e: &Engine, n: u64) -> IngressDrops {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (c, _) = e.counters();
        let drops = e.ingress_drops()[0].1;
        if c.rx_packets(Side::A) + drops.total() >= n {
            return drops;
        }
        assert!(Instant::now() < deadline, "{c:?} {drops:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn collect_b(w: &Wire) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut burst: MbufBurst<32> = MbufBurst::new();
    while w.b_tx.dequeue_burst(&mut burst) > 0 {
        out.extend(burst.iter().map(|m| m.data().to_vec()));
        burst.clear();
    }
    out
}

fn finish(e: Engine, w: &Wire) {
    let in_use = e.mbufs_in_use();
    let _ = e.stop();
    collect_b(w);
    assert_eq!(in_use, 0, "engine pool leaked");
    assert_eq!(w.pool.in_use_count(), 0, "test pool: every mbuf back");
}

#[test]
fn frames_over_the_mtu_and_truncated_frames_are_oversize_not_parse_errors() {
    let w = wire("mtu1");
    let e = engine(&w, 1500);
    let ok = udp_frame(1514);
    let long = udp_frame(3000);
    // What net_af_packet hands on for a 3000-byte frame when its ring frames are 2048 bytes:
    // the first 1982 bytes, the IP header still claiming 2986.
    let truncated = long[..1982].to_vec();
    inject(&w, &[ok.clone(), long, truncated]);
    let drops = wait_seen(&e, 3);
    assert_eq!(drops.oversize, 2, "{drops:?}");
    let (c, _) = e.counters();
    assert_eq!(c.rx_packets(Side::A), 1);
    assert_eq!(c.parse_drops(DropReason::IpLengthExceedsFrame), 0);
    assert_eq!(
        collect_b(&w),
        vec![ok],
        "only the frame within the MTU crosses"
    );
    let lines = ingress_drop_metrics(&e.ingress_drops());
    assert!(
        lines.contains(&(
            "bulkhead_dataplane_ingress_dropped_total{port=\"net_ring_net_mtu1_a\",reason=\"oversize\"}"
                .to_string(),
            2
        )),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|(l, n)| l.contains("reason=\"missed\"") && *n == 0),
        "{lines:?}"
    );
    finish(e, &w);
}

#[test]
fn jumbo_frames_cross_whole_with_mtu_9000() {
    let w = wire("mtu2");
    let e = engine(&w, 9000);
    assert!(
        e.frame_room() >= 9022,
        "one mbuf holds a jumbo frame with two VLAN tags: {}",
        e.frame_room()
    );
    let jumbo = udp_frame(8042);
    let largest = udp_frame(9014);
    let over = udp_frame(9100);
    inject(&w, &[jumbo.clone(), largest.clone(), over]);
    let drops = wait_seen(&e, 3);
    assert_eq!(drops.oversize, 1, "{drops:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut out = Vec::new();
    while out.len() < 2 && Instant::now() < deadline {
        out.extend(collect_b(&w));
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(out, vec![jumbo, largest], "jumbo frames leave whole");
    finish(e, &w);
}

#[test]
fn mtu_limits_are_refused_clearly() {
    let e = eal();
    let ring = Ring::new(e, "mtu3_r", 64).expect("ring");
    let id = Port::from_rings(e, "net_mtu3", &[&ring], &[&ring]).expect("port");
    let small = Mempool::new(e, "mtu3_pool", 255, 0, bulkhead_dpdk::DEFAULT_DATA_ROOM).unwrap();
    let cfg = bulkhead_dpdk::PortConfig {
        mtu: 9000,
        ..Default::default()
    };
    let err = Port::configure(e, id, &cfg, &small)
        .unwrap_err()
        .to_string();
    assert!(err.contains("MTU 9000") && err.contains("9022"), "{err}");
    assert!(bulkhead_engine::data_room(9216, 0).is_ok());
    assert_eq!(
        bulkhead_engine::data_room(1500, 0).unwrap(),
        bulkhead_dpdk::DEFAULT_DATA_ROOM,
        "MTU 1500 keeps DPDK's default buffers"
    );
}

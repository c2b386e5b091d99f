//! The engine on real DPDK virtual devices: ring-backed ports, frames
//! injected into port A's RX ring and collected from port B's TX ring (and
//! back). Every test ends with every mbuf back in its pool.

mod common;

use std::time::{Duration, Instant};

use bulkhead_dpdk::{Eal, MbufBurst, Mempool, Port, PortId, Ring};
use bulkhead_engine::events::EventMode;
use bulkhead_engine::idle::IdleMode;
use bulkhead_engine::stats::{EngineDrop, Side};
use bulkhead_engine::{Engine, EngineConfig};
use bulkhead_packet::build::{self, Echo};
use bulkhead_packet::tcp_flags::{ACK, PSH, SYN};
use common::*;

const WEB: [u8; 4] = [10, 0, 10, 5];
const APP: [u8; 4] = [10, 0, 20, 3];
const DB: [u8; 4] = [10, 0, 30, 7];

fn eal() -> &'static Eal {
    test_eal("test")
}

fn worker_core() -> usize {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    if n > 1 {
        1
    } else {
        0
    }
}

/// Two ring-backed ports and the pool test frames come from.
struct Wire {
    a_rx: Ring,
    a_tx: Ring,
    b_rx: Ring,
    b_tx: Ring,
    a: PortId,
    b: PortId,
    pool: Mempool,
}

fn wire(name: &str) -> Wire {
    let e = eal();
    let ring = |s: &str| Ring::new(e, &format!("{name}_{s}"), 4096).expect("ring");
    let (a_rx, a_tx, b_rx, b_tx) = (ring("arx"), ring("atx"), ring("brx"), ring("btx"));
    let a = Port::from_rings(e, &format!("net_{name}_a"), &[&a_rx], &[&a_tx]).expect("port a");
    let b = Port::from_rings(e, &format!("net_{name}_b"), &[&b_rx], &[&b_tx]).expect("port b");
    let pool = Mempool::new(
        e,
        &format!("{name}_pool"),
        4095,
        0,
        bulkhead_dpdk::DEFAULT_DATA_ROOM,
    )
    .expect("pool");
    Wire {
        a_rx,
        a_tx,
        b_rx,
        b_tx,
        a,
        b,
        pool,
    }
}

fn engine(w: &Wire, capacity: usize) -> Engine {
    let cfg = EngineConfig {
        workers: vec![worker_core()],
        wires: vec![(w.a, w.b)],
        mbufs: 2047,
        mbuf_cache: 32,
        rx_desc: 256,
        tx_desc: 256,
        mtu: bulkhead_dpdk::DEFAULT_MTU,
        rx_frame_room: 0,
        idle: IdleMode::Adaptive,
        pass_non_ip: false,
        pass_fragments: false,
        conntrack_capacity: capacity,
        timeouts: bulkhead_conntrack::Timeouts::default(),
        event_mode: EventMode::All,
        event_queue: 1024,
        quotas: bulkhead_conntrack::Quotas::UNLIMITED,
        fold: bulkhead_engine::fold::FoldConfig::default(),
        zones: bulkhead_engine::zones::ZoneConfig::default(),
        track_windows: true,
        trace_filter: bulkhead_engine::trace::TraceFilter::default(),
    };
    Engine::start(eal(), cfg, compile(POLICY)).expect("engine starts")
}

fn inject(w: &Wire, side: Side, frames: &[Vec<u8>]) {
    let ring = match side {
        Side::A => &w.a_rx,
        Side::B => &w.b_rx,
    };
    for chunk in frames.chunks(32) {
        let mut burst: MbufBurst<32> = MbufBurst::new();
        for f in chunk {
            let mut m = w.pool.alloc().expect("mbuf");
            m.append(f).expect("fits");
            assert!(burst.push(m).is_ok());
        }
        let n = ring.enqueue_burst(&mut burst);
        assert_eq!(n, chunk.len(), "rx ring has room");
    }
}

/// Wait until the engine has received `rx` packets in total.
fn wait_rx(e: &Engine, rx: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (c, _) = e.counters();
        let got = c.rx_packets(Side::A) + c.rx_packets(Side::B);
        if got >= rx {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "engine received {got} of {rx} packets"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Everything transmitted on `side` so far.
fn collect(w: &Wire, side: Side) -> Vec<Vec<u8>> {
    let ring = match side {
        Side::A => &w.a_tx,
        Side::B => &w.b_tx,
    };
    let mut out = Vec::new();
    let mut burst: MbufBurst<32> = MbufBurst::new();
    while ring.dequeue_burst(&mut burst) > 0 {
        for m in burst.iter() {
            out.push(m.data().to_vec());
        }
        burst.clear();
    }
    out
}

fn finish(e: Engine, w: &Wire) {
    let engine_pool_in_use = e.mbufs_in_use();
    let _ = e.stop();
    collect(w, Side::A);
    collect(w, Side::B);
    assert_eq!(engine_pool_in_use, 0, "engine pool leaked");
    assert_eq!(w.pool.in_use_count(), 0, "test pool: every mbuf back");
}

#[test]
fn allowed_denied_and_replies_through_the_wire() {
    let w = wire("t1");
    let e = engine(&w, 1024);
    let [syn, synack, ack] = handshake(WEB, APP, 40000, 8080);
    let denied = tcp(v4(WEB, DB), 40001, 5432, SYN);
    inject(&w, Side::A, &[syn.clone(), denied]);
    wait_rx(&e, 2);
    inject(&w, Side::B, std::slice::from_ref(&synack));
    wait_rx(&e, 3);
    inject(&w, Side::A, std::slice::from_ref(&ack));
    wait_rx(&e, 4);
    let out_b = collect(&w, Side::B);
    let out_a = collect(&w, Side::A);
    assert_eq!(
        out_b,
        vec![syn, ack],
        "allowed SYN and ACK leave on B; denied SYN does not"
    );
    assert_eq!(out_a, vec![synack], "the reply leaves on A");
    let (c, _) = e.counters();
    assert_eq!(c.engine_drops(EngineDrop::PolicyDeny), 1);
    assert_eq!(c.tx_packets(Side::B), 2);
    assert_eq!(c.tx_packets(Side::A), 1);
    let mut kinds = Vec::new();
    e.drain_events(usize::MAX, |ev| kinds.push(ev.kind));
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    finish(e, &w);
}

#[test]
fn related_icmp_passes_unrelated_does_not() {
    let w = wire("t2");
    let e = engine(&w, 1024);
    let probe = udp(v4(WEB, APP), 5353, 53);
    inject(&w, Side::A, std::slice::from_ref(&probe));
    wait_rx(&e, 1);
    let mut related = Vec::new();
    build::icmp_error(&mut related, &v4(APP, WEB), 3, 3, build::ip_packet(&probe));
    let other = udp(v4(WEB, APP), 7000, 53);
    let mut unrelated = Vec::new();
    build::icmp_error(
        &mut unrelated,
        &v4(APP, WEB),
        3,
        3,
        build::ip_packet(&other),
    );
    inject(&w, Side::B, &[related.clone(), unrelated]);
    wait_rx(&e, 3);
    assert_eq!(collect(&w, Side::A), vec![related]);
    assert_eq!(e.counters().0.engine_drops(EngineDrop::IcmpUnrelated), 1);
    finish(e, &w);
}

#[test]
fn policy_swap_under_traffic_loses_no_allowed_packet() {
    let w = wire("t3");
    let e = engine(&w, 1024);
    let [syn, synack, ack] = handshake(WEB, APP, 40000, 8080);
    inject(&w, Side::A, std::slice::from_ref(&syn));
    wait_rx(&e, 1);
    inject(&w, Side::B, std::slice::from_ref(&synack));
    wait_rx(&e, 2);
    inject(&w, Side::A, std::slice::from_ref(&ack));
    wait_rx(&e, 3);
    let data = tcp_payload(v4(WEB, APP), 40000, 8080, ACK | PSH, b"payload");
    let mut sent = 3u64;
    let mut generation = 1;
    for round in 0..20 {
        inject(&w, Side::A, &vec![data.clone(); 64]);
        sent += 64;
        // Every other generation adds an unrelated rule; web-to-app stays.
        let text = if round % 2 == 0 {
            POLICY.replace("rules:\n", "rules:\n  - { name: extra, from: [db], to: [app], services: [udp/9], action: allow }\n")
        } else {
            POLICY.to_string()
        };
        generation = e.publish(compile(&text));
    }
    wait_rx(&e, sent);
    assert!(e.wait_generation(generation, Duration::from_secs(5)));
    let out_b = collect(&w, Side::B);
    assert_eq!(
        out_b.len() as u64,
        sent - 1,
        "every allowed packet crossed (the SYN-ACK went the other way)"
    );
    let (c, _) = e.counters();
    assert_eq!(c.total_drops(), 0);
    assert!(c.get(bulkhead_engine::stats::slot::REJUDGED) >= 1);
    e.reclaim();
    assert_eq!(
        e.policy().retired_count(),
        0,
        "old generations freed once workers moved on"
    );
    finish(e, &w);
}

#[test]
fn full_table_evicts_unreplied_flows_first() {
    let w = wire("t4");
    let e = engine(&w, 64);
    let mut frames = Vec::new();
    for port in 0..400u16 {
        frames.push(udp(v4(WEB, APP), 10000 + port, 53));
    }
    inject(&w, Side::A, &frames);
    wait_rx(&e, 400);
    let (c, _) = e.counters();
    // Early drop: flows nobody answered make room for new ones.
    assert_eq!(c.engine_drops(EngineDrop::TableFull), 0, "{c:?}");
    assert_eq!(collect(&w, Side::B).len(), 400);
    assert!(
        c.get(bulkhead_engine::stats::slot::CONN_EVICTED) >= 400 - 64,
        "{c:?}"
    );
    finish(e, &w);
}

#[test]
fn full_table_of_answered_flows_denies_new_connections() {
    let w = wire("t4b");
    let e = engine(&w, 64);
    let requests: Vec<_> = (0..64u16)
        .map(|p| udp(v4(WEB, APP), 10000 + p, 53))
        .collect();
    let replies: Vec<_> = (0..64u16)
        .map(|p| udp(v4(APP, WEB), 53, 10000 + p))
        .collect();
    inject(&w, Side::A, &requests);
    wait_rx(&e, 64);
    inject(&w, Side::B, &replies);
    wait_rx(&e, 128);
    let (c, _) = e.counters();
    let answered = c.conns;
    assert!(answered > 48, "{c:?}");
    let more: Vec<_> = (0..100u16)
        .map(|p| udp(v4(WEB, APP), 20000 + p, 53))
        .collect();
    inject(&w, Side::A, &more);
    wait_rx(&e, 228);
    let (c, _) = e.counters();
    let full = c.engine_drops(EngineDrop::TableFull);
    assert!(full > 0, "some flows refused: {c:?}");
    assert!(c.conns >= answered, "answered flows kept: {c:?}");
    assert!(c.conns <= 64);
    finish(e, &w);
}

#[test]
fn ping_through_the_wire() {
    let w = wire("t5");
    let e = engine(&w, 1024);
    let req = ping(v4(WEB, APP), Echo::Request, 9);
    let rep = ping(v4(APP, WEB), Echo::Reply, 9);
    inject(&w, Side::A, std::slice::from_ref(&req));
    wait_rx(&e, 1);
    inject(&w, Side::B, std::slice::from_ref(&rep));
    wait_rx(&e, 2);
    assert_eq!(collect(&w, Side::B), vec![req]);
    assert_eq!(collect(&w, Side::A), vec![rep]);
    finish(e, &w);
}

/// Two workers on ring ports with two queues each: the rings behind every
/// queue, the test's own mbuf pool, and the engine.
struct TwoWorkers {
    arx: [Ring; 2],
    atx: [Ring; 2],
    brx: [Ring; 2],
    btx: [Ring; 2],
    pool: Mempool,
    engine: Engine,
}

fn two_workers(name: &str) -> TwoWorkers {
    let e = eal();
    let ring = |s: &str| Ring::new(e, &format!("{name}_{s}"), 1024).expect("ring");
    let (arx, atx, brx, btx) = (
        [ring("arx0"), ring("arx1")],
        [ring("atx0"), ring("atx1")],
        [ring("brx0"), ring("brx1")],
        [ring("btx0"), ring("btx1")],
    );
    let a = Port::from_rings(
        e,
        &format!("net_{name}_a"),
        &[&arx[0], &arx[1]],
        &[&atx[0], &atx[1]],
    )
    .expect("port a");
    let b = Port::from_rings(
        e,
        &format!("net_{name}_b"),
        &[&brx[0], &brx[1]],
        &[&btx[0], &btx[1]],
    )
    .expect("port b");
    let pool = Mempool::new(
        e,
        &format!("{name}_pool"),
        1023,
        0,
        bulkhead_dpdk::DEFAULT_DATA_ROOM,
    )
    .expect("pool");
    let cores = if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
        vec![0, 1]
    } else {
        vec![0, 0]
    };
    let cfg = EngineConfig {
        workers: cores,
        wires: vec![(a, b)],
        mbufs: 2047,
        mbuf_cache: 32,
        rx_desc: 256,
        tx_desc: 256,
        mtu: bulkhead_dpdk::DEFAULT_MTU,
        rx_frame_room: 0,
        idle: IdleMode::Adaptive,
        pass_non_ip: false,
        pass_fragments: false,
        conntrack_capacity: 1024,
        timeouts: bulkhead_conntrack::Timeouts::default(),
        event_mode: EventMode::All,
        event_queue: 1024,
        quotas: bulkhead_conntrack::Quotas::UNLIMITED,
        fold: bulkhead_engine::fold::FoldConfig::default(),
        zones: bulkhead_engine::zones::ZoneConfig::default(),
        track_windows: true,
        trace_filter: bulkhead_engine::trace::TraceFilter::default(),
    };
    let engine = Engine::start(e, cfg, compile(POLICY)).expect("engine starts");
    TwoWorkers {
        arx,
        atx,
        brx,
        btx,
        pool,
        engine,
    }
}

#[test]
fn two_workers_each_own_their_queue_of_every_port() {
    let TwoWorkers {
        arx,
        atx,
        brx,
        btx,
        pool,
        engine,
    } = two_workers("t6");
    let put = |r: &Ring, frames: &[Vec<u8>]| {
        let mut burst: MbufBurst<32> = MbufBurst::new();
        for f in frames {
            let mut m = pool.alloc().expect("mbuf");
            m.append(f).expect("fits");
            assert!(burst.push(m).is_ok());
        }
        assert_eq!(r.enqueue_burst(&mut burst), frames.len());
    };
    let take = |r: &Ring| {
        let mut burst: MbufBurst<32> = MbufBurst::new();
        let mut out = Vec::new();
        while r.dequeue_burst(&mut burst) > 0 {
            out.extend(burst.iter().map(|m| m.data().to_vec()));
            burst.clear();
        }
        out
    };
    // As symmetric RSS would: each connection, both directions, on one queue.
    let [s0, sa0, _] = handshake(WEB, APP, 40000, 8080);
    let [s1, sa1, _] = handshake(WEB, APP, 40001, 8080);
    put(&arx[0], std::slice::from_ref(&s0));
    put(&arx[1], std::slice::from_ref(&s1));
    wait_rx(&engine, 2);
    put(&brx[0], std::slice::from_ref(&sa0));
    put(&brx[1], std::slice::from_ref(&sa1));
    wait_rx(&engine, 4);
    // Each worker transmits on its own queue of the peer port.
    assert_eq!(take(&btx[0]), vec![s0]);
    assert_eq!(take(&btx[1]), vec![s1]);
    assert_eq!(take(&atx[0]), vec![sa0]);
    assert_eq!(take(&atx[1]), vec![sa1]);
    let (total, per) = engine.counters();
    assert_eq!(per.len(), 2);
    for c in &per {
        assert_eq!(
            c.rx_packets(Side::A) + c.rx_packets(Side::B),
            2,
            "each worker saw its own connection"
        );
        assert_eq!(c.conns, 1);
    }
    assert_eq!(total.conns, 2);
    // A new generation reaches both workers.
    let g = engine.publish(compile(POLICY));
    assert!(engine.wait_generation(g, Duration::from_secs(5)));
    assert_eq!(engine.worker_generations(), vec![g, g]);
    let _ = engine.stop();
    assert_eq!(pool.in_use_count(), 0);
}

#[test]
fn an_early_fragment_is_held_by_the_worker_and_sent_after_its_first() {
    let w = wire("t9");
    let e = engine(&w, 1024);
    let spec = |id: u32, offset: u16, more: bool| {
        let mut s = v4(WEB, APP).fragment(offset, more);
        s.ip_id = id;
        s
    };
    let mut first = Vec::new();
    build::udp(&mut first, &spec(7, 0, true), 5353, 53, &[1; 1000]);
    let mut later = Vec::new();
    build::ip(
        &mut later,
        &spec(7, 126, false),
        bulkhead_packet::proto::UDP,
        &[2; 400],
    );
    let mut lonely = Vec::new();
    build::ip(
        &mut lonely,
        &spec(8, 126, false),
        bulkhead_packet::proto::UDP,
        &[3; 400],
    );
    inject(&w, Side::A, std::slice::from_ref(&later));
    wait_rx(&e, 1);
    std::thread::sleep(Duration::from_millis(20));
    assert!(
        collect(&w, Side::B).is_empty(),
        "held until its first fragment"
    );
    inject(&w, Side::A, std::slice::from_ref(&first));
    wait_rx(&e, 2);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut out = Vec::new();
    while out.len() < 2 && Instant::now() < deadline {
        out.extend(collect(&w, Side::B));
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(out, vec![first, later], "the first, then the held one");
    // A fragment whose first never comes is freed at its deadline.
    inject(&w, Side::A, std::slice::from_ref(&lonely));
    wait_rx(&e, 3);
    let deadline = Instant::now() + Duration::from_secs(5);
    while e.counters().0.engine_drops(EngineDrop::FragmentTimeout) == 0 {
        assert!(Instant::now() < deadline, "held fragment never timed out");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(collect(&w, Side::B).is_empty());
    finish(e, &w);
}

/// Two workers, and the related packets of worker 1's connections arrive at
/// worker 0 (as a device hashing fragments and ICMP errors on addresses
/// would put them): they are handed to worker 1, which owns the entries.
#[test]
fn related_packets_reaching_the_wrong_worker_are_handed_to_the_owner() {
    let TwoWorkers {
        arx,
        atx,
        brx,
        btx,
        pool,
        engine,
    } = two_workers("t10");
    let put = |r: &Ring, frames: &[Vec<u8>]| {
        let mut burst: MbufBurst<32> = MbufBurst::new();
        for f in frames {
            let mut m = pool.alloc().expect("mbuf");
            m.append(f).expect("fits");
            assert!(burst.push(m).is_ok());
        }
        assert_eq!(r.enqueue_burst(&mut burst), frames.len());
    };
    let take_all = |rs: &[Ring; 2], want: usize| {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut out = Vec::new();
        while out.len() < want && Instant::now() < deadline {
            for r in rs {
                let mut burst: MbufBurst<32> = MbufBurst::new();
                while r.dequeue_burst(&mut burst) > 0 {
                    out.extend(burst.iter().map(|m| m.data().to_vec()));
                    burst.clear();
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        out
    };
    // Worker 1 owns a UDP exchange and a TCP connection.
    let query = udp(v4(WEB, APP), 5353, 53);
    let [syn, synack, ack] = handshake(WEB, APP, 40000, 8080);
    put(&arx[1], &[query.clone(), syn.clone()]);
    wait_rx(&engine, 2);
    put(&brx[1], std::slice::from_ref(&synack));
    wait_rx(&engine, 3);
    put(&arx[1], std::slice::from_ref(&ack));
    wait_rx(&engine, 4);
    assert_eq!(take_all(&btx, 3).len(), 3);
    assert_eq!(take_all(&atx, 1).len(), 1);
    // The fragmented reply reaches worker 0: a later fragment first (held),
    // then the first fragment (handed to worker 1, which sends its verdict
    // back), then another later fragment.
    let spec = |offset: u16, more: bool| {
        let mut s = v4(APP, WEB).fragment(offset, more);
        s.ip_id = 99;
        s
    };
    let mut first = Vec::new();
    build::udp(&mut first, &spec(0, true), 53, 5353, &[1; 1000]);
    let frag = |offset, more| {
        let mut f = Vec::new();
        build::ip(
            &mut f,
            &spec(offset, more),
            bulkhead_packet::proto::UDP,
            &[2; 400],
        );
        f
    };
    let (mid, last) = (frag(126, true), frag(176, false));
    put(&brx[0], std::slice::from_ref(&mid));
    wait_rx(&engine, 5);
    put(&brx[0], std::slice::from_ref(&first));
    wait_rx(&engine, 6);
    put(&brx[0], std::slice::from_ref(&last));
    wait_rx(&engine, 7);
    let mut got = take_all(&atx, 3);
    got.sort();
    let mut want = vec![first, mid, last];
    want.sort();
    assert_eq!(got, want, "the whole reply crossed");
    // An ICMP error quoting worker 1's TCP connection reaches worker 0.
    let mut err = Vec::new();
    build::icmp_error(&mut err, &v4(APP, WEB), 3, 4, build::ip_packet(&syn));
    put(&brx[0], std::slice::from_ref(&err));
    wait_rx(&engine, 8);
    assert_eq!(
        take_all(&atx, 1),
        vec![err],
        "related ICMP found its connection"
    );
    // One quoting nothing anybody tracks is judged by the last worker.
    let stray = tcp(v4(WEB, APP), 40999, 8080, SYN);
    let mut err2 = Vec::new();
    build::icmp_error(&mut err2, &v4(APP, WEB), 3, 4, build::ip_packet(&stray));
    put(&brx[0], std::slice::from_ref(&err2));
    wait_rx(&engine, 9);
    let deadline = Instant::now() + Duration::from_secs(5);
    while engine.counters().0.engine_drops(EngineDrop::IcmpUnrelated) == 0 {
        assert!(
            Instant::now() < deadline,
            "the stray error was never judged"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let (total, per) = engine.counters();
    assert_eq!(total.get(bulkhead_engine::stats::slot::HANDED_OFF), 3);
    assert_eq!(per[1].conns, 2, "no duplicate entries on worker 0");
    assert_eq!(per[0].conns, 0);
    let _ = engine.stop();
    assert_eq!(pool.in_use_count(), 0);
}

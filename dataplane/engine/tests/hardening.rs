//! Regression tests for the channels between segments and the floods an
//! attack run found (ICMP by type, ARP and neighbour discovery, RA guard,
//! QinQ domains, quotas, denial folding). Each failed on the code before.

mod common;

use bulkhead_conntrack::Quotas;
use bulkhead_engine::events::EventKind;
use bulkhead_engine::fold::FoldConfig;
use bulkhead_engine::handover::PolicySnapshot;
use bulkhead_engine::pipeline::Pipeline;
use bulkhead_engine::stats::{slot, EngineDrop, Fate, Side};
use bulkhead_engine::zones::{SideZones, ZoneConfig};
use bulkhead_packet::build::{self, ArpOp, Echo, FrameSpec};
use bulkhead_packet::tcp_flags::{ACK, RST, SYN};

use common::*;

const WEB: [u8; 4] = [10, 0, 10, 5];
const APP: [u8; 4] = [10, 0, 20, 3];
const DB: [u8; 4] = [10, 0, 30, 7];

fn one(p: &mut Pipeline, snap: &PolicySnapshot, side: Side, f: &[u8], now: u64) -> Fate {
    let mut fates = [Fate::Forward];
    p.process_burst(snap, side, &[f], now, &mut fates);
    fates[0]
}

fn icmp(spec: FrameSpec, ty: u8, id: u16) -> Vec<u8> {
    let mut f = Vec::new();
    let [hi, lo] = id.to_be_bytes();
    build::icmp(&mut f, &spec, ty, 0, [hi, lo, 0, 1], &[0; 12]);
    f
}

const INVALID: Fate = Fate::Engine(EngineDrop::Invalid);

#[test]
fn an_allowed_ping_does_not_let_the_server_ping_back() {
    let snap = snapshot(1, POLICY);
    let (mut p, q) = pipeline(1024);
    let req = ping(v4(WEB, APP), Echo::Request, 7);
    let rep = ping(v4(APP, WEB), Echo::Reply, 7);
    assert_eq!(one(&mut p, &snap, Side::A, &req, 1), Fate::Forward);
    assert_eq!(one(&mut p, &snap, Side::B, &rep, 2), Fate::Forward);
    // The server asks on the same identifier: app may not ping web.
    let back = ping(v4(APP, WEB), Echo::Request, 7);
    assert_eq!(one(&mut p, &snap, Side::B, &back, 3), INVALID);
    // Nor may the client answer it, nor send replies on its own.
    let answer = ping(v4(WEB, APP), Echo::Reply, 7);
    assert_eq!(one(&mut p, &snap, Side::A, &answer, 4), INVALID);
    let unasked = ping(v4(APP, WEB), Echo::Reply, 99);
    assert_eq!(one(&mut p, &snap, Side::B, &unasked, 5), INVALID);
    // Only one event, for the allowed ping.
    assert_eq!(q.pop().map(|e| e.kind), Some(EventKind::Allowed));
    assert!(q.pop().is_none());
}

#[test]
fn an_echo_exchange_never_admits_a_timestamp_reply() {
    let snap = snapshot(1, POLICY);
    let (mut p, _q) = pipeline(1024);
    // id 0, as in the attack run.
    let req = ping(v4(WEB, APP), Echo::Request, 0);
    assert_eq!(one(&mut p, &snap, Side::A, &req, 1), Fate::Forward);
    // A timestamp request from the server, and a timestamp reply to it.
    assert_eq!(
        one(&mut p, &snap, Side::B, &icmp(v4(APP, WEB), 13, 0), 2),
        Fate::Engine(EngineDrop::PolicyDeny)
    );
    assert_eq!(
        one(&mut p, &snap, Side::A, &icmp(v4(WEB, APP), 14, 0), 3),
        INVALID
    );
    assert_eq!(
        one(&mut p, &snap, Side::B, &icmp(v4(APP, WEB), 14, 0), 4),
        INVALID
    );
}

const ICMP_ALL: &str = r#"
version: 1
segments:
  web: { id: 10, prefixes: [10.0.10.0/24] }
  app: { id: 20, prefixes: [10.0.20.0/24] }
rules:
  - name: web-to-app-icmp
    from: [web]
    to: [app]
    services: [icmp]
    action: allow
"#;

#[test]
fn with_every_icmp_type_allowed_one_way_queries_still_do_not_flow_back() {
    let snap = snapshot(1, ICMP_ALL);
    let (mut p, _q) = pipeline(1024);
    for (req, rep) in [(8u8, 0u8), (13, 14), (15, 16), (17, 18)] {
        assert_eq!(
            one(&mut p, &snap, Side::A, &icmp(v4(WEB, APP), req, 5), 1),
            Fate::Forward,
            "type {req}"
        );
        assert_eq!(
            one(&mut p, &snap, Side::B, &icmp(v4(APP, WEB), rep, 5), 2),
            Fate::Forward,
            "type {rep}"
        );
        // The reverse query is judged as new: app -> web is not allowed.
        assert_eq!(
            one(&mut p, &snap, Side::B, &icmp(v4(APP, WEB), req, 5), 3),
            INVALID,
            "type {req} from the responder"
        );
        assert_eq!(
            one(&mut p, &snap, Side::B, &icmp(v4(APP, WEB), req, 6), 3),
            Fate::Engine(EngineDrop::PolicyDeny),
            "type {req} from app on a new identifier"
        );
    }
    // Other informational types are judged per packet, never tracked: web
    // may send a router solicitation (10) to app, app may not answer with one.
    assert_eq!(
        one(&mut p, &snap, Side::A, &icmp(v4(WEB, APP), 10, 0), 4),
        Fate::Forward
    );
    assert_eq!(
        one(&mut p, &snap, Side::B, &icmp(v4(APP, WEB), 10, 0), 5),
        Fate::Engine(EngineDrop::PolicyDeny)
    );
    assert_eq!(p.table().len(), 4);
}

fn arp(spec: FrameSpec, sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::new();
    build::arp(&mut f, &spec, ArpOp::Reply, sender.into(), target.into());
    f
}

#[test]
fn arp_may_only_announce_addresses_of_the_senders_segment() {
    let snap = snapshot(1, POLICY);
    let (mut p, _q) = pipeline(1024);
    // VLAN 10 is web: announcing a web address is fine, so is a probe.
    assert_eq!(
        one(
            &mut p,
            &snap,
            Side::A,
            &arp(v4(WEB, APP).vlan(10), WEB, APP),
            1
        ),
        Fate::Forward
    );
    assert_eq!(
        one(
            &mut p,
            &snap,
            Side::A,
            &arp(v4(WEB, APP).vlan(10), [0; 4], APP),
            1
        ),
        Fate::Forward
    );
    // Claiming db's address from VLAN 10 poisons other segments' caches.
    assert_eq!(
        one(
            &mut p,
            &snap,
            Side::A,
            &arp(v4(WEB, APP).vlan(10), DB, APP),
            2
        ),
        Fate::Engine(EngineDrop::ArpSpoofed)
    );
    assert_eq!(
        p.counters().v[slot::ENGINE_DROP_BASE + EngineDrop::ArpSpoofed.index()],
        1
    );
    // Other ARP forms are refused by the parser.
    let mut bad = arp(v4(WEB, APP), WEB, APP);
    bad[14 + 7] = 9;
    assert!(matches!(
        one(&mut p, &snap, Side::A, &bad, 3),
        Fate::Parse(_)
    ));
}

fn v6(s: &str) -> std::net::Ipv6Addr {
    s.parse().unwrap()
}

fn nd(spec: FrameSpec, ty: u8, target: std::net::Ipv6Addr) -> Vec<u8> {
    let mut f = Vec::new();
    let body: Vec<u8> = if ty == 134 {
        vec![0; 8]
    } else {
        target.octets().to_vec()
    };
    build::icmp(&mut f, &spec.ttl(255), ty, 0, [0; 4], &body);
    f
}

#[test]
fn neighbour_discovery_is_validated_and_spoof_checked() {
    let snap = snapshot(1, POLICY);
    let (mut p, _q) = pipeline(1024);
    let web6 = v6("fd00:10::5");
    let app6 = v6("fd00:20::3");
    let spec = FrameSpec::v6(web6, app6).vlan(10);
    assert_eq!(
        one(&mut p, &snap, Side::A, &nd(spec, 135, app6), 1),
        Fate::Forward
    );
    assert_eq!(
        one(&mut p, &snap, Side::A, &nd(spec, 136, web6), 1),
        Fate::Forward
    );
    // An advertisement of app's address from web's VLAN.
    assert_eq!(
        one(&mut p, &snap, Side::A, &nd(spec, 136, app6), 2),
        Fate::Engine(EngineDrop::NdSpoofed)
    );
    // A hop limit below 255 means it crossed a router.
    let mut f = Vec::new();
    build::icmp(
        &mut f,
        &FrameSpec::v6(web6, app6).ttl(64),
        135,
        0,
        [0; 4],
        &app6.octets(),
    );
    assert!(matches!(one(&mut p, &snap, Side::A, &f, 3), Fate::Parse(_)));
    // A redirect is judged by the rules: web may not redirect app.
    let mut r = Vec::new();
    build::icmp(
        &mut r,
        &FrameSpec::v6(web6, app6).ttl(255),
        137,
        0,
        [0; 4],
        &[0; 32],
    );
    assert_eq!(
        one(&mut p, &snap, Side::A, &r, 4),
        Fate::Engine(EngineDrop::PolicyDeny)
    );
}

fn zones() -> ZoneConfig {
    ZoneConfig {
        wires: vec![[
            SideZones {
                zone: Some("clients".into()),
                vlans: vec![],
            },
            SideZones {
                zone: Some("servers".into()),
                vlans: vec![(99, "uplink".into())],
            },
        ]],
        router_zones: vec!["uplink".into()],
    }
}

#[test]
fn router_advertisements_pass_only_from_router_zones() {
    let snap = snapshot(1, POLICY);
    let unfolded = FoldConfig {
        interval_ns: 0,
        rate_per_sec: 0,
        burst: 0,
    };
    let (mut p, _q) = pipeline_with(1024, Quotas::UNLIMITED, unfolded, zones());
    let router = v6("fe80::1");
    let all_nodes = v6("ff02::1");
    let ra = |vlan| nd(FrameSpec::v6(router, all_nodes).vlan(vlan), 134, all_nodes);
    // From the client side (the attack run's case), and from servers.
    assert_eq!(
        one(&mut p, &snap, Side::A, &ra(99), 1),
        Fate::Engine(EngineDrop::RaGuard)
    );
    assert_eq!(
        one(&mut p, &snap, Side::B, &ra(5), 1),
        Fate::Engine(EngineDrop::RaGuard)
    );
    // From the uplink VLAN on the server side: a router zone.
    assert_eq!(one(&mut p, &snap, Side::B, &ra(99), 2), Fate::Forward);
}

#[test]
fn qinq_customers_with_the_same_inner_vlan_do_not_share_connections() {
    let snap = snapshot(1, POLICY);
    let (mut p, _q) = pipeline(1024);
    let syn = tcp(v4(WEB, APP).qinq(100, 10), 40000, 8080, SYN);
    assert_eq!(one(&mut p, &snap, Side::A, &syn, 1), Fate::Forward);
    // The same tuple and inner VLAN, another customer (outer tag): no match.
    let other = tcp(v4(APP, WEB).qinq(200, 10), 8080, 40000, SYN | ACK);
    assert_eq!(one(&mut p, &snap, Side::B, &other, 2), INVALID);
    let reply = tcp(v4(APP, WEB).qinq(100, 10), 8080, 40000, SYN | ACK);
    assert_eq!(one(&mut p, &snap, Side::B, &reply, 3), Fate::Forward);
    // A QinQ frame is placed by its outer tag: under outer VLAN 100 (no
    // segment's) a db address is db's, not web's (VLAN 10 is only inner).
    let db = tcp(v4(DB, APP).qinq(100, 10), 40001, 8080, SYN);
    assert_eq!(
        one(&mut p, &snap, Side::A, &db, 4),
        Fate::Engine(EngineDrop::PolicyDeny)
    );
    // Under outer VLAN 10 (web's), a db source is spoofed, whatever the
    // inner tag: double tagging does not escape VLAN anti-spoofing.
    let spoof = tcp(v4(DB, APP).qinq(10, 5), 40002, 8080, SYN);
    assert_eq!(
        one(&mut p, &snap, Side::A, &spoof, 5),
        Fate::Engine(EngineDrop::Spoofed)
    );
}

#[test]
fn ipv4_mapped_ipv6_never_reaches_the_ipv4_tables() {
    let snap = snapshot(1, POLICY);
    let (mut p, _q) = pipeline(1024);
    let mapped = std::net::Ipv6Addr::from(0xffff_0a00_0a05u128); // ::ffff:10.0.10.5
    let f = tcp(FrameSpec::v6(mapped, v6("fd00:20::3")), 40000, 8080, SYN);
    assert_eq!(
        one(&mut p, &snap, Side::A, &f, 1),
        Fate::Parse(bulkhead_packet::DropReason::Ipv4MappedAddress)
    );
}

#[test]
fn a_flooding_host_is_held_to_its_quota_and_others_still_connect() {
    let snap = snapshot(1, POLICY);
    let quotas = Quotas {
        per_source: 100,
        per_segment: 0,
    };
    let (mut p, _q) = pipeline_with(1024, quotas, FoldConfig::default(), ZoneConfig::default());
    // A session established before the flood.
    let [s0, sa0, a0] = handshake([10, 0, 10, 7], APP, 41000, 8080);
    for (f, side) in [(&s0, Side::A), (&sa0, Side::B), (&a0, Side::A)] {
        assert_eq!(one(&mut p, &snap, side, f, 1), Fate::Forward);
    }
    let mut refused = 0;
    for port in 0..1000u16 {
        match one(
            &mut p,
            &snap,
            Side::A,
            &udp(v4(WEB, APP), 1024 + port, 53),
            1,
        ) {
            Fate::Forward => {}
            Fate::Engine(EngineDrop::SourceQuota) => refused += 1,
            f => panic!("{f:?}"),
        }
    }
    assert_eq!(refused, 900);
    assert_eq!(
        p.table().len(),
        101,
        "its quota, and the session from before"
    );
    // Another host of the same segment still connects.
    let [syn, synack, ack] = handshake([10, 0, 10, 6], APP, 40000, 8080);
    assert_eq!(one(&mut p, &snap, Side::A, &syn, 2), Fate::Forward);
    assert_eq!(one(&mut p, &snap, Side::B, &synack, 2), Fate::Forward);
    assert_eq!(one(&mut p, &snap, Side::A, &ack, 2), Fate::Forward);
    assert_eq!(
        p.counters().v[slot::ENGINE_DROP_BASE + EngineDrop::SourceQuota.index()],
        900
    ); // A host of another segment (app, to db) still connects, and the
       // session from before the flood keeps flowing.
    let [s1, sa1, a1] = handshake(APP, DB, 42000, 5432);
    assert_eq!(one(&mut p, &snap, Side::A, &s1, 3), Fate::Forward);
    assert_eq!(one(&mut p, &snap, Side::B, &sa1, 3), Fate::Forward);
    assert_eq!(one(&mut p, &snap, Side::A, &a1, 3), Fate::Forward);
    assert_eq!(one(&mut p, &snap, Side::A, &a0, 4), Fate::Forward);
}

#[test]
fn a_full_table_of_unanswered_udp_makes_room_for_tcp() {
    let snap = snapshot(1, POLICY);
    let (mut p, _q) = pipeline(256);
    for port in 0..2000u16 {
        assert_eq!(
            one(
                &mut p,
                &snap,
                Side::A,
                &udp(v4(WEB, APP), 1024 + port, 53),
                1
            ),
            Fate::Forward
        );
    }
    let [syn, synack, ack] = handshake([10, 0, 10, 6], APP, 40000, 8080);
    assert_eq!(one(&mut p, &snap, Side::A, &syn, 2), Fate::Forward);
    assert_eq!(one(&mut p, &snap, Side::B, &synack, 2), Fate::Forward);
    assert_eq!(one(&mut p, &snap, Side::A, &ack, 2), Fate::Forward);
    assert!(p.counters().v[slot::CONN_EVICTED] > 1000);
}

#[test]
fn repeated_denials_fold_into_one_event_with_a_count() {
    let snap = snapshot(1, POLICY);
    let (mut p, q) = pipeline_with(
        1024,
        Quotas::UNLIMITED,
        FoldConfig::default(),
        ZoneConfig::default(),
    );
    const S: u64 = 1_000_000_000;
    for i in 0..10_000u64 {
        let f = tcp(v4(APP, WEB), 40000 + (i % 1000) as u16, 22, SYN);
        assert_eq!(
            one(&mut p, &snap, Side::B, &f, S + i),
            Fate::Engine(EngineDrop::PolicyDeny)
        );
    }
    let first: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
    assert_eq!(
        first.len(),
        1,
        "one event for one source, segment and service"
    );
    // The next interval's first denial reports the folded ones.
    let f = tcp(v4(APP, WEB), 50000, 22, SYN);
    one(&mut p, &snap, Side::B, &f, 3 * S);
    let next = q.pop().expect("event");
    assert_eq!((next.kind, next.repeats), (EventKind::Denied, 9_999));
    assert_eq!(p.counters().v[slot::EVENTS_SUPPRESSED], 9_999);
    // Denials from many sources are rate-limited.
    for i in 0..50_000u32 {
        let src = [10, 1 + (i >> 16) as u8, (i >> 8) as u8, i as u8];
        let f = tcp(v4(src, WEB), 40000, 22, SYN);
        one(&mut p, &snap, Side::B, &f, 4 * S);
    }
    let flood: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
    assert!(flood.len() <= 1000, "{} events", flood.len());
}

#[test]
fn a_syn_reusing_a_live_tuple_passes_and_the_connection_starts_over() {
    let snap = snapshot(1, POLICY);
    let (mut p, _q) = pipeline(1024);
    let [syn, synack, ack] = handshake(WEB, APP, 40000, 8080);
    for (f, side) in [(&syn, Side::A), (&synack, Side::B), (&ack, Side::A)] {
        assert_eq!(one(&mut p, &snap, side, f, 1), Fate::Forward);
    }
    // The client rebooted: same tuple, new handshake.
    for (f, side) in [(&syn, Side::A), (&synack, Side::B), (&ack, Side::A)] {
        assert_eq!(one(&mut p, &snap, side, f, 2), Fate::Forward);
    }
    assert_eq!(p.table().len(), 1);
    // A SYN from the responder's side is never let through on the entry.
    let reverse = tcp(v4(APP, WEB), 8080, 40000, SYN);
    assert_eq!(one(&mut p, &snap, Side::B, &reverse, 3), INVALID);
}

const ZONED: &str = r#"
version: 1
segments:
  web: { id: 10, prefixes: [10.0.10.0/24], zones: [clients] }
  app: { id: 20, prefixes: [10.0.20.0/24], zones: [servers] }
rules:
  - { name: web-to-app, from: [web], to: [app], services: [tcp/8080], action: allow }
  - { name: app-to-app, from: [app], to: [app], services: [tcp/8080], action: allow }
"#;

#[test]
fn a_host_cannot_leave_its_segment_by_taking_an_address_of_another_zone() {
    let snap = snapshot(1, ZONED);
    let unfolded = FoldConfig {
        interval_ns: 0,
        rate_per_sec: 0,
        burst: 0,
    };
    let (mut p, _q) = pipeline_with(1024, Quotas::UNLIMITED, unfolded, zones());
    // web from the clients side, app from the servers side: fine.
    assert_eq!(
        one(
            &mut p,
            &snap,
            Side::A,
            &tcp(v4(WEB, APP), 1000, 8080, SYN),
            1
        ),
        Fate::Forward
    );
    assert_eq!(
        one(
            &mut p,
            &snap,
            Side::B,
            &tcp(v4([10, 0, 20, 9], APP), 1000, 8080, SYN),
            1
        ),
        Fate::Forward
    );
    // A client-side host claiming an app address (app -> app is allowed).
    let claim = tcp(v4([10, 0, 20, 99], APP), 1001, 8080, SYN);
    assert_eq!(
        one(&mut p, &snap, Side::A, &claim, 2),
        Fate::Engine(EngineDrop::Spoofed)
    );
    // ... nor announce it by ARP.
    assert_eq!(
        one(
            &mut p,
            &snap,
            Side::A,
            &arp(v4(WEB, APP), [10, 0, 20, 99], APP),
            2
        ),
        Fate::Engine(EngineDrop::ArpSpoofed)
    );
    // The same frame from the servers side is app's.
    assert_eq!(one(&mut p, &snap, Side::B, &claim, 3), Fate::Forward);
    // A wire side bound to no zone attaches to no zoned segment (spec).
    let (mut unbound, _q) = pipeline(1024);
    assert_eq!(
        one(&mut unbound, &snap, Side::B, &claim, 3),
        Fate::Engine(EngineDrop::Spoofed)
    );
}

fn seg(
    spec: FrameSpec,
    sport: u16,
    dport: u16,
    flags: u8,
    seq: u32,
    ack: u32,
    data: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    build::tcp(
        &mut f,
        &spec,
        &build::Tcp::new(sport, dport, flags)
            .seq(seq)
            .ack(ack)
            .payload(data),
    );
    f
}

/// A connection with real sequence numbers: client ISN 1000, server 9000.
fn live(p: &mut Pipeline, snap: &PolicySnapshot) {
    let c = |flags, seq, ack, data: &[u8]| seg(v4(WEB, APP), 40000, 8080, flags, seq, ack, data);
    let s = |flags, seq, ack, data: &[u8]| seg(v4(APP, WEB), 8080, 40000, flags, seq, ack, data);
    for (f, side) in [
        (c(SYN, 1000, 0, b""), Side::A),
        (s(SYN | ACK, 9000, 1001, b""), Side::B),
        (c(ACK, 1001, 9001, b"GET /"), Side::A),
        (s(ACK, 9001, 1006, b"200 OK"), Side::B),
    ] {
        assert_eq!(one(p, snap, side, &f, 1), Fate::Forward);
    }
}

#[test]
fn blind_rst_and_injected_data_are_dropped_by_window_tracking() {
    let snap = snapshot(1, POLICY);
    let (mut p, _q) = pipeline(1024);
    live(&mut p, &snap);
    let from_server =
        |flags, seq, ack, data: &[u8]| seg(v4(APP, WEB), 8080, 40000, flags, seq, ack, data);
    let out = Fate::Engine(EngineDrop::OutOfWindow);
    // Guessed sequence numbers: far outside the client's window.
    assert_eq!(
        one(
            &mut p,
            &snap,
            Side::B,
            &from_server(RST, 9_000_000, 0, b""),
            2
        ),
        out
    );
    assert_eq!(
        one(
            &mut p,
            &snap,
            Side::B,
            &from_server(ACK, 3_000_000_000, 1006, b"evil"),
            2
        ),
        out
    );
    // Acknowledging data the client never sent.
    assert_eq!(
        one(
            &mut p,
            &snap,
            Side::B,
            &from_server(ACK, 9007, 500_000, b"x"),
            2
        ),
        out
    );
    // The connection is intact: real traffic continues, and an in-window
    // RST still closes it.
    let client = seg(v4(WEB, APP), 40000, 8080, ACK, 1006, 9007, b"");
    assert_eq!(one(&mut p, &snap, Side::A, &client, 3), Fate::Forward);
    assert_eq!(
        one(
            &mut p,
            &snap,
            Side::B,
            &from_server(RST | ACK, 9007, 1006, b""),
            4
        ),
        Fate::Forward
    );
    assert_eq!(
        p.counters().v[slot::ENGINE_DROP_BASE + EngineDrop::OutOfWindow.index()],
        3
    );
}

#[test]
fn a_tracked_connection_is_ridden_only_from_its_own_sides() {
    let snap = snapshot(1, POLICY);
    let (mut p, _q) = pipeline(1024);
    let [syn, synack, ack] = handshake(WEB, APP, 40000, 8080);
    assert_eq!(one(&mut p, &snap, Side::A, &syn, 1), Fate::Forward);
    assert_eq!(one(&mut p, &snap, Side::B, &synack, 1), Fate::Forward);
    // The client's packet arriving from the server's side (a host there
    // forging the client's address) rides nothing.
    assert_eq!(
        one(&mut p, &snap, Side::B, &ack, 2),
        Fate::Engine(EngineDrop::Spoofed)
    );
    // Nor does a server packet from the client's side.
    assert_eq!(
        one(&mut p, &snap, Side::A, &synack, 2),
        Fate::Engine(EngineDrop::Spoofed)
    );
    assert_eq!(one(&mut p, &snap, Side::A, &ack, 3), Fate::Forward);
    // The same tuple on another wire is another connection: a non-SYN there
    // matches nothing.
    let other = bulkhead_engine::zones::Ingress {
        wire: 1,
        side: Side::A,
    };
    let mut fates = [Fate::Forward];
    p.process_burst(&snap, other, &[ack.as_slice()], 4, &mut fates);
    assert_eq!(fates[0], Fate::Engine(EngineDrop::Invalid));
}

//! The packet path on byte buffers: verdicts, tracking, events, counters.

mod common;

use bulkhead_engine::events::EventKind;
use bulkhead_engine::stats::{slot, EngineDrop, Fate, Side};
use bulkhead_packet::build::{self, Echo, FrameSpec};
use bulkhead_packet::tcp_flags::{ACK, PSH, SYN};
use bulkhead_packet::DropReason;
use common::*;

const WEB: [u8; 4] = [10, 0, 10, 5];
const APP: [u8; 4] = [10, 0, 20, 3];
const DB: [u8; 4] = [10, 0, 30, 7];
const LOGS: [u8; 4] = [10, 0, 40, 9];
const OUTSIDE: [u8; 4] = [203, 0, 113, 9];

fn run(
    p: &mut bulkhead_engine::pipeline::Pipeline,
    snap: &bulkhead_engine::handover::PolicySnapshot,
    side: Side,
    frames: &[&Vec<u8>],
    now: u64,
) -> Vec<Fate> {
    let slices: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
    let mut fates = vec![Fate::Forward; slices.len()];
    p.process_burst(snap, side, &slices, now, &mut fates);
    fates
}

fn one(
    p: &mut bulkhead_engine::pipeline::Pipeline,
    snap: &bulkhead_engine::handover::PolicySnapshot,
    side: Side,
    f: &Vec<u8>,
    now: u64,
) -> Fate {
    run(p, snap, side, &[f], now)[0]
}

#[test]
fn allowed_connection_passes_both_ways_and_is_reported() {
    let snap = snapshot(1, POLICY);
    let (mut p, q) = pipeline(1024);
    let [syn, synack, ack] = handshake(WEB, APP, 40000, 8080);
    assert_eq!(one(&mut p, &snap, Side::A, &syn, 1), Fate::Forward);
    assert_eq!(one(&mut p, &snap, Side::B, &synack, 2), Fate::Forward);
    assert_eq!(one(&mut p, &snap, Side::A, &ack, 3), Fate::Forward);
    let data = tcp_payload(v4(APP, WEB), 8080, 40000, ACK | PSH, b"reply");
    assert_eq!(one(&mut p, &snap, Side::B, &data, 4), Fate::Forward);
    assert_eq!(p.table().len(), 1);
    let ev = q.pop().expect("an event");
    assert_eq!(ev.kind, EventKind::Allowed);
    assert_eq!((ev.src_segment, ev.dst_segment), (10, 20));
    assert_eq!(ev.rule, 0);
    assert_eq!(ev.tuple.dport, 8080);
    assert!(q.pop().is_none());
    let c = p.counters();
    assert_eq!(c.v[slot::NEW_ALLOWED], 1);
    assert_eq!(c.v[slot::RX_PKTS + Side::A.index()], 2);
    assert_eq!(c.v[slot::RX_PKTS + Side::B.index()], 2);
    assert_eq!(snap.rule_counts()[0], ("web-to-app".to_string(), 1));
}

#[test]
fn denied_connection_is_dropped_counted_and_reported() {
    let snap = snapshot(1, POLICY);
    let (mut p, q) = pipeline(1024);
    let syn = tcp(v4(WEB, DB), 40000, 5432, SYN);
    assert_eq!(
        one(&mut p, &snap, Side::A, &syn, 1),
        Fate::Engine(EngineDrop::PolicyDeny)
    );
    assert_eq!(p.table().len(), 0);
    let ev = q.pop().expect("event");
    assert_eq!(ev.kind, EventKind::Denied);
    assert_eq!(ev.rule, bulkhead_engine::events::RULE_DEFAULT);
    assert_eq!(p.counters().v[slot::NEW_DENIED], 1);
    assert_eq!(
        p.counters().v[slot::ENGINE_DROP_BASE + EngineDrop::PolicyDeny.index()],
        1
    );
    // The service boundary: the rule allows tcp/9000-9099 only.
    assert_eq!(
        one(&mut p, &snap, Side::A, &tcp(v4(WEB, APP), 1, 9099, SYN), 2),
        Fate::Forward
    );
    assert_eq!(
        one(&mut p, &snap, Side::A, &tcp(v4(WEB, APP), 1, 9100, SYN), 3),
        Fate::Engine(EngineDrop::PolicyDeny)
    );
    // Replies need no rule, but a reverse-direction opening does.
    assert_eq!(
        one(&mut p, &snap, Side::B, &tcp(v4(APP, WEB), 2, 8080, SYN), 4),
        Fate::Engine(EngineDrop::PolicyDeny)
    );
}

#[test]
fn non_syn_without_connection_is_invalid() {
    let snap = snapshot(1, POLICY);
    let (mut p, _q) = pipeline(1024);
    let ack = tcp(v4(WEB, APP), 40000, 8080, ACK);
    assert_eq!(
        one(&mut p, &snap, Side::A, &ack, 1),
        Fate::Engine(EngineDrop::Invalid)
    );
    let synack = tcp(v4(APP, WEB), 8080, 40000, SYN | ACK);
    assert_eq!(
        one(&mut p, &snap, Side::B, &synack, 1),
        Fate::Engine(EngineDrop::Invalid)
    );
    assert_eq!(p.table().len(), 0);
}

#[test]
fn udp_and_ping_replies_follow_the_connection() {
    let snap = snapshot(1, POLICY);
    let (mut p, _q) = pipeline(1024);
    assert_eq!(
        one(&mut p, &snap, Side::A, &udp(v4(WEB, APP), 5353, 53), 1),
        Fate::Forward
    );
    assert_eq!(
        one(&mut p, &snap, Side::B, &udp(v4(APP, WEB), 53, 5353), 2),
        Fate::Forward
    );
    // A UDP packet from app to web on another port is a new, denied flow.
    assert_eq!(
        one(&mut p, &snap, Side::B, &udp(v4(APP, WEB), 53, 5354), 3),
        Fate::Engine(EngineDrop::PolicyDeny)
    );
    assert_eq!(
        one(
            &mut p,
            &snap,
            Side::A,
            &ping(v4(WEB, APP), Echo::Request, 7),
            4
        ),
        Fate::Forward
    );
    assert_eq!(
        one(
            &mut p,
            &snap,
            Side::B,
            &ping(v4(APP, WEB), Echo::Reply, 7),
            5
        ),
        Fate::Forward
    );
    // Ping from app to web is not allowed.
    assert_eq!(
        one(
            &mut p,
            &snap,
            Side::B,
            &ping(v4(APP, WEB), Echo::Request, 8),
            6
        ),
        Fate::Engine(EngineDrop::PolicyDeny)
    );
}

#[test]
fn icmp_errors_pass_only_when_related() {
    let snap = snapshot(1, POLICY);
    let (mut p, _q) = pipeline(1024);
    let probe = udp(v4(WEB, APP), 5353, 53);
    assert_eq!(one(&mut p, &snap, Side::A, &probe, 1), Fate::Forward);
    // Port unreachable from app, quoting the probe.
    let mut err = Vec::new();
    build::icmp_error(&mut err, &v4(APP, WEB), 3, 3, build::ip_packet(&probe));
    assert_eq!(one(&mut p, &snap, Side::B, &err, 2), Fate::Forward);
    // The same error about a flow nobody opened.
    let other = udp(v4(WEB, APP), 6000, 53);
    let mut err2 = Vec::new();
    build::icmp_error(&mut err2, &v4(APP, WEB), 3, 3, build::ip_packet(&other));
    assert_eq!(
        one(&mut p, &snap, Side::B, &err2, 3),
        Fate::Engine(EngineDrop::IcmpUnrelated)
    );
}

#[test]
fn a_new_policy_rejudges_and_cuts_revoked_connections() {
    let snap1 = snapshot(1, POLICY);
    let (mut p, q) = pipeline(1024);
    for (i, f) in handshake(WEB, APP, 40000, 8080).iter().enumerate() {
        let side = if i == 1 { Side::B } else { Side::A };
        assert_eq!(one(&mut p, &snap1, side, f, i as u64), Fate::Forward);
    }
    for (i, f) in handshake(APP, DB, 41000, 5432).iter().enumerate() {
        let side = if i == 1 { Side::B } else { Side::A };
        assert_eq!(one(&mut p, &snap1, side, f, i as u64), Fate::Forward);
    }
    while q.pop().is_some() {}
    // Generation 2 no longer allows web to app on 8080; app to db stays.
    let revoked = POLICY.replace("tcp/8080, ", "");
    let snap2 = snapshot(2, &revoked);
    let data = tcp_payload(v4(WEB, APP), 40000, 8080, ACK | PSH, b"x");
    assert_eq!(
        one(&mut p, &snap2, Side::A, &data, 10),
        Fate::Engine(EngineDrop::Revoked)
    );
    let ev = q.pop().expect("revoked event");
    assert_eq!(ev.kind, EventKind::Revoked);
    assert_eq!(
        ev.packets,
        [2, 1],
        "SYN and ACK from the initiator, SYN-ACK back; the revoked packet is not counted"
    );
    // The connection is gone: later packets are invalid.
    assert_eq!(
        one(&mut p, &snap2, Side::A, &data, 11),
        Fate::Engine(EngineDrop::Invalid)
    );
    // The still-allowed connection continues, re-judged once.
    let data2 = tcp_payload(v4(APP, DB), 41000, 5432, ACK | PSH, b"y");
    assert_eq!(one(&mut p, &snap2, Side::A, &data2, 12), Fate::Forward);
    assert_eq!(one(&mut p, &snap2, Side::A, &data2, 13), Fate::Forward);
    assert_eq!(p.counters().v[slot::REJUDGED], 2);
}

#[test]
fn monitor_mode_forwards_would_deny_and_marks_it() {
    let snap = snapshot(1, POLICY);
    let (mut p, q) = pipeline(1024);
    let syn = tcp(v4(WEB, LOGS), 40000, 514, SYN);
    assert_eq!(one(&mut p, &snap, Side::A, &syn, 1), Fate::Forward);
    let ev = q.pop().expect("event");
    assert_eq!(ev.kind, EventKind::WouldDeny);
    assert!(ev.monitor);
    assert_eq!(p.counters().v[slot::NEW_MONITORED], 1);
    // Its reply is tracked like any connection.
    let synack = tcp(v4(LOGS, WEB), 514, 40000, SYN | ACK);
    assert_eq!(one(&mut p, &snap, Side::B, &synack, 2), Fate::Forward);
}

#[test]
fn vlan_places_the_source_and_spoofed_sources_are_dropped() {
    let snap = snapshot(1, POLICY);
    let (mut p, _q) = pipeline(1024);
    // VLAN 10 is web: a host outside every prefix on VLAN 10 may reach app.
    let tagged = tcp(v4(OUTSIDE, APP).vlan(10), 40000, 8080, SYN);
    assert_eq!(one(&mut p, &snap, Side::A, &tagged, 1), Fate::Forward);
    // The reply carries the same VLAN (virtual wire) and matches.
    let reply = tcp(v4(APP, OUTSIDE).vlan(10), 8080, 40000, SYN | ACK);
    assert_eq!(one(&mut p, &snap, Side::B, &reply, 2), Fate::Forward);
    // Untagged, the same host is world and world may not reach app.
    let untagged = tcp(v4(OUTSIDE, APP), 40001, 8080, SYN);
    assert_eq!(
        one(&mut p, &snap, Side::A, &untagged, 3),
        Fate::Engine(EngineDrop::PolicyDeny)
    );
    // VLAN 10 (web) with a source in db's prefix: spoofed.
    let spoofed = tcp(v4(DB, APP).vlan(10), 40002, 8080, SYN);
    assert_eq!(
        one(&mut p, &snap, Side::A, &spoofed, 4),
        Fate::Engine(EngineDrop::Spoofed)
    );
    assert_eq!(
        p.counters().v[slot::ENGINE_DROP_BASE + EngineDrop::Spoofed.index()],
        1
    );
}

#[test]
fn ipv6_connections_are_judged_and_tracked() {
    let snap = snapshot(1, POLICY);
    let (mut p, _q) = pipeline(1024);
    let c: std::net::Ipv6Addr = "fd00:10::5".parse().unwrap();
    let s: std::net::Ipv6Addr = "fd00:20::3".parse().unwrap();
    let syn = tcp(FrameSpec::v6(c, s), 40000, 8080, SYN);
    let synack = tcp(FrameSpec::v6(s, c), 8080, 40000, SYN | ACK);
    assert_eq!(one(&mut p, &snap, Side::A, &syn, 1), Fate::Forward);
    assert_eq!(one(&mut p, &snap, Side::B, &synack, 2), Fate::Forward);
    let denied = tcp(FrameSpec::v6(c, s), 40001, 22, SYN);
    assert_eq!(
        one(&mut p, &snap, Side::A, &denied, 3),
        Fate::Engine(EngineDrop::PolicyDeny)
    );
    assert_eq!(
        one(
            &mut p,
            &snap,
            Side::A,
            &ping(FrameSpec::v6(c, s), Echo::Request, 1),
            4
        ),
        Fate::Forward
    );
}

#[test]
fn full_table_refuses_new_connections_and_counts() {
    let snap = snapshot(1, POLICY);
    let (mut p, _q) = pipeline(16);
    let cap = p.table().capacity();
    let mut refused = 0;
    // Established connections cannot be evicted; fill the table with them.
    for (now, port) in (1u64..).zip(0..(cap as u16 + 8)) {
        let sport = 10000 + port;
        let [syn, synack, ack] = handshake(WEB, APP, sport, 8080);
        match one(&mut p, &snap, Side::A, &syn, now) {
            Fate::Forward => {
                assert_eq!(one(&mut p, &snap, Side::B, &synack, now), Fate::Forward);
                assert_eq!(one(&mut p, &snap, Side::A, &ack, now), Fate::Forward);
            }
            Fate::Engine(EngineDrop::TableFull) => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(refused >= 8, "refused {refused}");
    assert!(p.table().len() <= cap);
    assert_eq!(
        p.counters().v[slot::ENGINE_DROP_BASE + EngineDrop::TableFull.index()],
        refused
    );
}

#[test]
fn half_open_entries_are_evicted_before_refusing() {
    let snap = snapshot(1, POLICY);
    let (mut p, _q) = pipeline(16);
    let cap = p.table().capacity();
    // Fill with half-open SYNs, then keep opening: eviction makes room.
    for port in 0..(cap as u16 * 3) {
        let syn = tcp(v4(WEB, APP), 20000 + port, 8080, SYN);
        assert_eq!(
            one(&mut p, &snap, Side::A, &syn, u64::from(port) + 1),
            Fate::Forward,
            "port {port}"
        );
    }
    assert!(p.table().len() <= cap);
}

#[test]
fn l2_fragments_and_malformed_frames() {
    let snap = snapshot(1, POLICY);
    let (mut p, _q) = pipeline(64);
    let mut arp = Vec::new();
    build::arp(
        &mut arp,
        &v4(WEB, APP),
        build::ArpOp::Request,
        WEB.into(),
        APP.into(),
    );
    assert_eq!(one(&mut p, &snap, Side::A, &arp, 1), Fate::Forward);
    let mut lldp = Vec::new();
    build::ethernet(&mut lldp, &v4(WEB, APP), 0x88cc, &[0u8; 46]);
    assert_eq!(
        one(&mut p, &snap, Side::A, &lldp, 1),
        Fate::Engine(EngineDrop::NonIp)
    );
    let mut frag = Vec::new();
    build::udp(
        &mut frag,
        &v4(WEB, APP).fragment(4, false),
        5353,
        53,
        b"tail",
    );
    // A later fragment without its first waits for it (virtual reassembly).
    assert!(matches!(
        one(&mut p, &snap, Side::A, &frag, 1),
        Fate::Held(_)
    ));
    let truncated = tcp(v4(WEB, APP), 1, 8080, SYN)[..20].to_vec();
    assert!(matches!(
        one(&mut p, &snap, Side::A, &truncated, 1),
        Fate::Parse(_)
    ));
    let c = p.counters();
    assert_eq!(c.v[slot::PASSED_L2], 1);
    let parse_drops: u64 = (0..DropReason::COUNT)
        .map(|i| c.v[slot::PARSE_DROP_BASE + i])
        .sum();
    assert_eq!(parse_drops, 1);
}

#[test]
fn closed_connections_expire_with_counts() {
    let snap = snapshot(1, POLICY);
    let (mut p, q) = pipeline(64);
    assert_eq!(
        one(&mut p, &snap, Side::A, &udp(v4(WEB, APP), 5353, 53), 1),
        Fate::Forward
    );
    assert_eq!(
        one(&mut p, &snap, Side::B, &udp(v4(APP, WEB), 53, 5353), 2),
        Fate::Forward
    );
    while q.pop().is_some() {}
    let later = 3 + 10 * 60 * 1_000_000_000u64;
    for _ in 0..64 {
        p.expire(&snap, later, 64);
    }
    assert_eq!(p.table().len(), 0);
    let ev = q.pop().expect("closed event");
    assert_eq!(ev.kind, EventKind::Closed);
    assert_eq!(ev.packets, [1, 1]);
    assert_eq!(ev.tuple.dport, 53);
    assert_eq!((ev.src_segment, ev.dst_segment), (10, 20));
}

#[test]
fn icmp_errors_must_go_back_to_the_quoted_sender_and_redirects_are_never_related() {
    let snap = snapshot(1, POLICY);
    let (mut p, _q) = pipeline(1024);
    let probe = udp(v4(WEB, APP), 5353, 53);
    assert_eq!(one(&mut p, &snap, Side::A, &probe, 1), Fate::Forward);
    // An error quoting that tracked flow but addressed to db, not to web.
    let mut misaddressed = Vec::new();
    build::icmp_error(
        &mut misaddressed,
        &v4(APP, DB),
        3,
        3,
        build::ip_packet(&probe),
    );
    assert_eq!(
        one(&mut p, &snap, Side::B, &misaddressed, 2),
        Fate::Engine(EngineDrop::IcmpUnrelated)
    );
    // A redirect back to web about the tracked flow.
    let mut redirect = Vec::new();
    build::icmp_error(&mut redirect, &v4(APP, WEB), 5, 1, build::ip_packet(&probe));
    assert_eq!(
        one(&mut p, &snap, Side::B, &redirect, 3),
        Fate::Engine(EngineDrop::IcmpUnrelated)
    );
    // The genuine error still passes.
    let mut genuine = Vec::new();
    build::icmp_error(&mut genuine, &v4(APP, WEB), 3, 3, build::ip_packet(&probe));
    assert_eq!(one(&mut p, &snap, Side::B, &genuine, 4), Fate::Forward);
}

#[test]
fn a_policy_that_moves_an_address_rejudges_its_connections_instead_of_losing_them() {
    let snap1 = snapshot(1, POLICY);
    let (mut p, q) = pipeline(1024);
    for (i, f) in handshake(WEB, APP, 40000, 8080).iter().enumerate() {
        let side = if i == 1 { Side::B } else { Side::A };
        assert_eq!(one(&mut p, &snap1, side, f, i as u64), Fate::Forward);
    }
    // Generation 2: 10.0.20.3 moves to a new segment "api" that web may still reach on 8080.
    let moved = POLICY.replace(
        "rules:\n",
        "  api:\n    id: 21\n    prefixes: [10.0.20.0/28]\nrules:\n  - { name: web-to-api, from: [web], to: [api], services: [tcp/8080], action: allow }\n",
    );
    let snap2 = snapshot(2, &moved);
    let data = tcp_payload(v4(APP, WEB), 8080, 40000, ACK | PSH, b"still here");
    assert_eq!(
        one(&mut p, &snap2, Side::B, &data, 10),
        Fate::Forward,
        "allowed under the new placement"
    );
    assert_eq!(p.counters().v[slot::REJUDGED], 1);
    // Generation 3: api exists but web may no longer reach it: the connection is cut.
    let denied = moved.replace(
        "  - { name: web-to-api, from: [web], to: [api], services: [tcp/8080], action: allow }\n",
        "",
    );
    let snap3 = snapshot(3, &denied);
    while q.pop().is_some() {}
    assert_eq!(
        one(&mut p, &snap3, Side::B, &data, 11),
        Fate::Engine(EngineDrop::Revoked)
    );
    let ev = q.pop().expect("revoked event");
    assert_eq!(ev.kind, EventKind::Revoked);
    assert_eq!(
        (ev.src_segment, ev.dst_segment),
        (10, 21),
        "segments as placed under the new policy"
    );
}

/// One burst that inserts, removes and re-inserts entries and carries
/// established packets of the same connections: every packet sees the
/// table as the packets before it in the burst left it.
#[test]
fn a_mixed_burst_sees_its_own_inserts_and_removals() {
    let snap = snapshot(1, POLICY);
    let (mut p, q) = pipeline(1024);
    // c3 is established before the burst.
    let [s3, sa3, a3] = handshake(WEB, APP, 40003, 8080);
    assert_eq!(one(&mut p, &snap, Side::A, &s3, 1), Fate::Forward);
    assert_eq!(one(&mut p, &snap, Side::B, &sa3, 1), Fate::Forward);
    assert_eq!(one(&mut p, &snap, Side::A, &a3, 1), Fate::Forward);
    while q.pop().is_some() {}
    let syn1 = tcp(v4(WEB, APP), 40001, 8080, SYN);
    let ack1 = tcp(v4(WEB, APP), 40001, 8080, ACK);
    let syn2 = tcp(v4(WEB, APP), 40002, 8080, SYN);
    let rst2 = tcp(v4(WEB, APP), 40002, 8080, bulkhead_packet::tcp_flags::RST);
    let data3 = tcp_payload(v4(WEB, APP), 40003, 8080, ACK | PSH, b"x");
    let syn2_again = tcp(v4(WEB, APP), 40002, 8080, SYN);
    let fates = run(
        &mut p,
        &snap,
        Side::A,
        &[&syn1, &syn2, &ack1, &data3, &rst2, &syn2_again, &data3],
        2,
    );
    assert_eq!(
        fates,
        vec![
            Fate::Forward,                     // c1 inserted
            Fate::Forward,                     // c2 inserted
            Fate::Engine(EngineDrop::Invalid), // c1: an ACK before the SYN-ACK
            Fate::Forward,                     // c3 established, looked up after two inserts
            Fate::Forward,                     // c2 reset
            Fate::Forward,                     // c2's tuple reused: closed entry replaced
            Fate::Forward,                     // c3 again, after a removal and an insert
        ]
    );
    assert_eq!(p.table().len(), 3);
    let kinds: Vec<_> = std::iter::from_fn(|| q.pop()).map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::Allowed,
            EventKind::Allowed,
            EventKind::Closed,
            EventKind::Allowed
        ],
        "c1 and c2 opened, c2's reset entry closed when its tuple was reused, c2 opened again"
    );
}

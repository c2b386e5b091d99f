//! Virtual reassembly on byte buffers: later fragments follow their first
//! fragment's verdict, early ones wait for it (bounded), overlaps are
//! dropped.

mod common;

use bulkhead_engine::handover::PolicySnapshot;
use bulkhead_engine::pipeline::Pipeline;
use bulkhead_engine::stats::{slot, EngineDrop, Fate, Side};
use bulkhead_packet::build::{self, FrameSpec};
use bulkhead_packet::proto;
use common::*;

const WEB: [u8; 4] = [10, 0, 10, 5];
const APP: [u8; 4] = [10, 0, 20, 3];

fn one(p: &mut Pipeline, snap: &PolicySnapshot, side: Side, f: &[u8], now: u64) -> Fate {
    let mut fates = [Fate::Forward];
    p.process_burst(snap, side, &[f], now, &mut fates);
    fates[0]
}

fn spec(src: [u8; 4], dst: [u8; 4], id: u32) -> FrameSpec {
    let mut s = FrameSpec::v4(src, dst);
    s.ip_id = id;
    s
}

/// First fragment of a UDP datagram: the UDP header and 1472 bytes.
fn first(src: [u8; 4], dst: [u8; 4], id: u32, sport: u16, dport: u16) -> Vec<u8> {
    let mut f = Vec::new();
    build::udp(
        &mut f,
        &spec(src, dst, id).fragment(0, true),
        sport,
        dport,
        &[7; 1472],
    );
    f
}

/// A later fragment at `offset` (8-byte units).
fn later(src: [u8; 4], dst: [u8; 4], id: u32, offset: u16, more: bool) -> Vec<u8> {
    let mut f = Vec::new();
    build::ip(
        &mut f,
        &spec(src, dst, id).fragment(offset, more),
        proto::UDP,
        &[9; 800],
    );
    f
}

fn released(p: &mut Pipeline, now: u64) -> Vec<(u16, Fate)> {
    let mut v = Vec::new();
    p.release_fragments(now, |s, f| v.push((s, f)));
    v
}

#[test]
fn a_fragmented_reply_to_an_allowed_request_arrives_whole() {
    let snap = snapshot(1, POLICY);
    let (mut p, _q) = pipeline(1024);
    let query = udp(v4(WEB, APP), 5353, 53);
    assert_eq!(one(&mut p, &snap, Side::A, &query, 1), Fate::Forward);
    // The reply is fragmented: its first fragment matches the connection,
    // the rest follow it.
    assert_eq!(
        one(&mut p, &snap, Side::B, &first(APP, WEB, 41, 53, 5353), 2),
        Fate::Forward
    );
    assert_eq!(
        one(&mut p, &snap, Side::B, &later(APP, WEB, 41, 185, true), 3),
        Fate::Forward
    );
    assert_eq!(
        one(&mut p, &snap, Side::B, &later(APP, WEB, 41, 285, false), 3),
        Fate::Forward
    );
}

#[test]
fn fragments_of_a_denied_datagram_are_dropped() {
    let snap = snapshot(1, POLICY);
    let (mut p, _q) = pipeline(1024);
    // app -> web udp/53 is not allowed.
    assert_eq!(
        one(&mut p, &snap, Side::B, &first(APP, WEB, 42, 5353, 53), 1),
        Fate::Engine(EngineDrop::PolicyDeny)
    );
    assert_eq!(
        one(&mut p, &snap, Side::B, &later(APP, WEB, 42, 185, false), 2),
        Fate::Engine(EngineDrop::Fragment)
    );
    // Before: every later fragment was dropped, allowed or not. Now an
    // unrelated datagram's later fragment waits for its first.
    assert!(matches!(
        one(&mut p, &snap, Side::B, &later(APP, WEB, 43, 185, false), 3),
        Fate::Held(_)
    ));
}

#[test]
fn early_fragments_wait_for_their_first_and_go_with_its_verdict() {
    let snap = snapshot(1, POLICY);
    let (mut p, _q) = pipeline(1024);
    let Fate::Held(slot) = one(&mut p, &snap, Side::A, &later(WEB, APP, 44, 185, false), 1) else {
        panic!("held")
    };
    assert!(released(&mut p, 2).is_empty(), "still waiting");
    assert_eq!(
        one(&mut p, &snap, Side::A, &first(WEB, APP, 44, 5353, 53), 3),
        Fate::Forward
    );
    assert_eq!(released(&mut p, 3), vec![(slot, Fate::Forward)]);
    // One whose first never comes is dropped at the deadline, and counted.
    let Fate::Held(slot) = one(&mut p, &snap, Side::A, &later(WEB, APP, 45, 185, false), 4) else {
        panic!("held")
    };
    let deadline = 4 + bulkhead_engine::fragments::HOLD_NS;
    assert_eq!(
        released(&mut p, deadline),
        vec![(slot, Fate::Engine(EngineDrop::FragmentTimeout))]
    );
    assert_eq!(
        p.counters().v[slot::ENGINE_DROP_BASE + EngineDrop::FragmentTimeout.index()],
        1
    );
}

#[test]
fn a_later_fragment_rewriting_the_judged_header_is_dropped() {
    let snap = snapshot(1, POLICY);
    let (mut p, _q) = pipeline(1024);
    assert_eq!(
        one(&mut p, &snap, Side::A, &first(WEB, APP, 46, 5353, 53), 1),
        Fate::Forward
    );
    // Offset 1 (8 bytes) lies inside the first fragment's 1480 bytes.
    assert_eq!(
        one(&mut p, &snap, Side::A, &later(WEB, APP, 46, 1, true), 2),
        Fate::Engine(EngineDrop::FragmentOverlap)
    );
}

#[test]
fn ipv6_fragments_follow_their_first_too() {
    let snap = snapshot(1, POLICY);
    let (mut p, _q) = pipeline(1024);
    let c: std::net::Ipv6Addr = "fd00:10::5".parse().unwrap();
    let s: std::net::Ipv6Addr = "fd00:20::3".parse().unwrap();
    let mut first6 = Vec::new();
    let mut sp = FrameSpec::v6(c, s).fragment(0, true);
    sp.ip_id = 0xdead_beef;
    build::udp(&mut first6, &sp, 5353, 53, &[1; 1200]);
    let mut later6 = Vec::new();
    let mut sp2 = FrameSpec::v6(c, s).fragment(151, false);
    sp2.ip_id = 0xdead_beef;
    build::ip(&mut later6, &sp2, proto::UDP, &[2; 300]);
    assert_eq!(one(&mut p, &snap, Side::A, &first6, 1), Fate::Forward);
    assert_eq!(one(&mut p, &snap, Side::A, &later6, 2), Fate::Forward);
}

#[test]
fn a_forged_first_fragment_does_not_condemn_a_victims_datagram() {
    let snap = snapshot(1, POLICY);
    let (mut p, _q) = pipeline(1024);
    // A first fragment with web's datagram identification but a source of
    // db's address on web's VLAN: spoofed, so no verdict is recorded ...
    let mut forged = Vec::new();
    let mut sp = FrameSpec::v4([10, 0, 30, 7], APP)
        .vlan(10)
        .fragment(0, true);
    sp.ip_id = 50;
    build::udp(&mut forged, &sp, 5353, 53, &[0; 64]);
    assert_eq!(
        one(&mut p, &snap, Side::A, &forged, 1),
        Fate::Engine(EngineDrop::Spoofed)
    );
    // ... and the real datagram's fragments still follow their own first.
    assert_eq!(
        one(&mut p, &snap, Side::A, &first(WEB, APP, 51, 5353, 53), 2),
        Fate::Forward
    );
    assert_eq!(
        one(&mut p, &snap, Side::A, &later(WEB, APP, 51, 185, false), 2),
        Fate::Forward
    );
}

#[test]
fn ipv6_extension_headers_after_the_fragment_header_count_as_judged_bytes() {
    let snap = snapshot(1, POLICY);
    let (mut p, _q) = pipeline(1024);
    let c: std::net::Ipv6Addr = "fd00:10::5".parse().unwrap();
    let s: std::net::Ipv6Addr = "fd00:20::3".parse().unwrap();
    // Built as DestOpts | Fragment | UDP, then reordered to
    // Fragment | DestOpts | UDP (both headers are 8 bytes).
    let mut sp = FrameSpec::v6(c, s)
        .ipv6_ext(&[bulkhead_packet::build::Ext::DestOpts])
        .fragment(0, true);
    sp.ip_id = 7;
    let mut f = Vec::new();
    build::udp(&mut f, &sp, 5353, 53, &[1; 64]);
    let (mut dest, mut frag) = (f[54..62].to_vec(), f[62..70].to_vec());
    f[20] = proto::FRAGMENT;
    frag[0] = 60; // fragment -> destination options
    dest[0] = proto::UDP; // destination options -> UDP
    f[54..62].copy_from_slice(&frag);
    f[62..70].copy_from_slice(&dest);
    assert_eq!(one(&mut p, &snap, Side::A, &f, 1), Fate::Forward);
    // The fragmentable part of the first fragment is 8 + 72 bytes: a later
    // fragment at byte 72 would rewrite the last of it.
    let mut later6 = Vec::new();
    let mut sp2 = FrameSpec::v6(c, s).fragment(9, false);
    sp2.ip_id = 7;
    build::ip(&mut later6, &sp2, proto::UDP, &[2; 16]);
    assert_eq!(
        one(&mut p, &snap, Side::A, &later6, 2),
        Fate::Engine(EngineDrop::FragmentOverlap)
    );
}

//! Control-plane questions answered from a worker's table: list tracked
//! connections with filters, flush the matching ones.

mod common;

use bulkhead_engine::control::ConnFilter;
use bulkhead_engine::events::EventKind;
use bulkhead_engine::stats::{Fate, Side};
use common::*;

const WEB: [u8; 4] = [10, 0, 10, 5];
const APP: [u8; 4] = [10, 0, 20, 3];
const DB: [u8; 4] = [10, 0, 30, 7];

fn open(
    p: &mut bulkhead_engine::pipeline::Pipeline,
    snap: &bulkhead_engine::handover::PolicySnapshot,
    c: [u8; 4],
    s: [u8; 4],
    sport: u16,
    dport: u16,
) {
    for (f, side) in handshake(c, s, sport, dport)
        .iter()
        .zip([Side::A, Side::B, Side::A])
    {
        let mut fate = [Fate::Forward];
        p.process_burst(snap, side, &[f.as_slice()], 1, &mut fate);
        assert_eq!(fate[0], Fate::Forward);
    }
}

#[test]
fn connections_are_listed_by_filter_and_flushed() {
    let snap = snapshot(1, POLICY);
    let (mut p, q) = pipeline(1024);
    open(&mut p, &snap, WEB, APP, 40000, 8080);
    open(&mut p, &snap, WEB, APP, 40001, 8080);
    open(&mut p, &snap, APP, DB, 50000, 5432);
    while q.pop().is_some() {}

    let all = ConnFilter::default();
    let (list, truncated) = p.connections(&snap, &all, 10, 5);
    assert_eq!((list.len(), truncated), (3, false));
    let c = list.iter().find(|c| c.dst_port == 5432).unwrap();
    assert_eq!(c.src.to_string(), "10.0.20.3");
    assert_eq!(
        (c.src_segment.as_str(), c.dst_segment.as_str()),
        ("app", "db")
    );
    assert_eq!(c.rule, "app-to-db");
    assert_eq!(c.state, "TcpEstablished");
    assert_eq!(c.packets, [2, 1]);

    let (list, truncated) = p.connections(&snap, &all, 2, 5);
    assert_eq!((list.len(), truncated), (2, true), "the limit holds");
    let web = ConnFilter {
        segment: Some("web".into()),
        ..ConnFilter::default()
    };
    assert_eq!(p.connections(&snap, &web, 10, 5).0.len(), 2);
    let port = ConnFilter {
        port: Some(5432),
        prefix: Some("10.0.30.0/24".parse().unwrap()),
        ..ConnFilter::default()
    };
    assert_eq!(p.connections(&snap, &port, 10, 5).0.len(), 1);

    // Flush web's connections: gone from the table, reported as closed;
    // app -> db stays and keeps flowing.
    assert_eq!(p.flush_matching(&snap, &web, 6), 2);
    assert_eq!(p.table().len(), 1);
    let closed: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
    assert_eq!(closed.len(), 2);
    assert!(closed.iter().all(|e| e.kind == EventKind::Closed));
    let data = tcp(v4(APP, DB), 50000, 5432, bulkhead_packet::tcp_flags::ACK);
    let mut fate = [Fate::HandOff];
    p.process_burst(&snap, Side::A, &[data.as_slice()], 7, &mut fate);
    assert_eq!(fate[0], Fate::Forward);
    let stale = tcp(v4(WEB, APP), 40000, 8080, bulkhead_packet::tcp_flags::ACK);
    p.process_burst(&snap, Side::A, &[stale.as_slice()], 8, &mut fate);
    assert_ne!(
        fate[0],
        Fate::Forward,
        "a flushed connection no longer passes"
    );
}

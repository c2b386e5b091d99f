//! The steady-state burst loop allocates nothing: a counting global allocator
//! watches the pipeline process bursts of established traffic.

mod common;

use bulkhead_alloc_counter::{count_allocations, CountingAllocator};
use bulkhead_engine::stats::{Fate, Side};
use bulkhead_packet::tcp_flags::{ACK, PSH};
use common::*;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn steady_state_bursts_allocate_nothing() {
    let snap = snapshot(1, POLICY);
    let (mut p, q) = pipeline(4096);
    // Open 64 connections (allocation allowed here: the slow path emits events).
    let mut data_a = Vec::new();
    let mut data_b = Vec::new();
    for i in 0..64u16 {
        let [syn, synack, ack] = handshake([10, 0, 10, 5], [10, 0, 20, 3], 30000 + i, 8080);
        for (f, side) in [(&syn, Side::A), (&synack, Side::B), (&ack, Side::A)] {
            let mut fate = [Fate::Forward];
            p.process_burst(&snap, side, &[f.as_slice()], 1, &mut fate);
            assert_eq!(fate[0], Fate::Forward);
        }
        data_a.push(tcp_payload(
            v4([10, 0, 10, 5], [10, 0, 20, 3]),
            30000 + i,
            8080,
            ACK | PSH,
            b"data",
        ));
        data_b.push(tcp_payload(
            v4([10, 0, 20, 3], [10, 0, 10, 5]),
            8080,
            30000 + i,
            ACK | PSH,
            b"data",
        ));
    }
    while q.pop().is_some() {}
    let a: Vec<&[u8]> = data_a.iter().map(|f| f.as_slice()).collect();
    let b: Vec<&[u8]> = data_b.iter().map(|f| f.as_slice()).collect();
    let mut fates = [Fate::Forward; 32];
    let (allocs, ()) = count_allocations(|| {
        for round in 0..1000u64 {
            for (frames, side) in [(&a, Side::A), (&b, Side::B)] {
                for chunk in frames.chunks(32) {
                    p.process_burst(&snap, side, chunk, 2 + round, &mut fates[..chunk.len()]);
                }
            }
            p.expire(&snap, 2 + round, 64);
        }
    });
    assert_eq!(allocs, 0, "allocations in the steady-state loop");
    assert!(fates.iter().all(|f| *f == Fate::Forward));
    assert_eq!(p.table().len(), 64);
}

//! Rough lookup cost at 1,000,000 tracked connections (not a benchmark
//! harness; the lead benches the pipeline with criterion). Run with
//! `cargo run --release -p bulkhead-conntrack --example lookup_1m`.

use std::time::Instant;

use bulkhead_conntrack::{ConnFlags, ConnKey, ConnTable, Endpoint, KeySide, NewConn, TableConfig};
use bulkhead_packet::flow::v4_to_addr;

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn key(n: u64) -> ConnKey {
    let a = Endpoint {
        addr: v4_to_addr(0x0a00_0000 | (n as u32 & 0xffff)),
        port: (n >> 16) as u16 | 1024,
    };
    let b = Endpoint {
        addr: v4_to_addr(0x0a01_0001),
        port: 443,
    };
    ConnKey::new(0, a, b, 6, 0).0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const N: u64 = 1_000_000;
    const BURST: usize = 32;
    let mut cfg = TableConfig::for_slots(1 << 21);
    cfg.hash_seed = 0x1234_5678_9abc_def1;
    let mut t = ConnTable::new(&cfg)?;
    println!("bytes per connection: {}", t.bytes_per_connection());
    let new = NewConn {
        initiator: KeySide::A,
        src_segment: 1,
        generation: 1,
        rule: 0,
        flags: ConnFlags::NONE,
        svc: 443,
        bytes: 60,
    };
    for n in 0..N {
        let k = key(n);
        t.insert(&k, t.hash(&k), 0, new, |_| {})
            .map_err(|e| format!("insert {n}: {e}"))?;
    }
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let rounds = 200_000;
    let mut keys = [ConnKey::new(0, Endpoint::default(), Endpoint::default(), 0, 0).0; BURST];
    let mut hashes = [0u64; BURST];
    let mut out = [None; BURST];
    let mut hits = 0usize;

    let start = Instant::now();
    for _ in 0..rounds {
        for (k, h) in keys.iter_mut().zip(hashes.iter_mut()) {
            *k = key(xorshift(&mut rng) % N);
            *h = t.hash(k);
        }
        t.lookup_burst(&keys, &hashes, &mut out);
        hits += out.iter().filter(|o| o.is_some()).count();
    }
    let burst_ns = start.elapsed().as_nanos() as f64 / (rounds * BURST) as f64;

    let start = Instant::now();
    for _ in 0..rounds {
        for _ in 0..BURST {
            let k = key(xorshift(&mut rng) % N);
            if t.lookup(&k, t.hash(&k)).is_some() {
                hits += 1;
            }
        }
    }
    let single_ns = start.elapsed().as_nanos() as f64 / (rounds * BURST) as f64;
    println!("hits {hits} of {}", 2 * rounds * BURST);
    println!("random hit, lookup_burst: {burst_ns:.1} ns/key (incl. key build + hash)");
    println!("random hit, lookup:       {single_ns:.1} ns/key (incl. key build + hash)");
    Ok(())
}

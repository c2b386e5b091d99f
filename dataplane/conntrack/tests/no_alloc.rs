//! The steady-state loop of a worker allocates nothing: lookups in bursts,
//! tracking, inserts with evictions and refusals, removals, expiry slices.

use bulkhead_alloc_counter::{count_allocations, CountingAllocator};
use bulkhead_conntrack::state::tcp_flags::{ACK, SYN};
use bulkhead_conntrack::{
    tcp_may_open, ConnFlags, ConnKey, ConnTable, Dir, Endpoint, NewConn, TableConfig, Track,
};
use bulkhead_packet::flow::v4_to_addr;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

const SEC: u64 = 1_000_000_000;
const BURST: usize = 32;

fn key(n: u32) -> (ConnKey, bulkhead_conntrack::KeySide) {
    let a = Endpoint {
        addr: v4_to_addr(0x0a00_0000 | (n % 500)),
        port: 1024 + (n % 700) as u16,
    };
    let b = Endpoint {
        addr: v4_to_addr(0x0a09_0001),
        port: 443,
    };
    ConnKey::new(1 + n % 3, a, b, if n % 2 == 0 { 6 } else { 17 }, 0)
}

#[test]
fn steady_state_allocates_nothing() {
    let mut cfg = TableConfig::for_slots(1024);
    cfg.max_connections = 300; // small: the loop hits "full" and evicts
    let mut t = ConnTable::new(&cfg).unwrap();
    let mut keys = [key(0).0; BURST];
    let mut sides = [key(0).1; BURST];
    let mut hashes = [0u64; BURST];
    let mut out = [None; BURST];
    let mut events = 0u64;
    let (allocs, ()) = count_allocations(|| {
        let mut now = 0;
        let mut n = 0u32;
        for round in 0..400u32 {
            now += SEC / 2;
            for i in 0..BURST {
                n = n.wrapping_mul(1_103_515_245).wrapping_add(12_345 + round);
                let (k, s) = key(n % 3000);
                keys[i] = k;
                sides[i] = s;
                hashes[i] = t.hash(&k);
            }
            t.lookup_burst(&keys, &hashes, &mut out);
            for i in 0..BURST {
                let hit = out[i].and_then(|id| t.dir_of(id, sides[i]).map(|d| (id, d)));
                // A mix of openings, handshakes and data, valid or not.
                let flags = match (hit.map(|h| h.1), (n >> 8).wrapping_add(i as u32) % 4) {
                    (Some(Dir::Reply), 0 | 1) => SYN | ACK,
                    (_, 2) => SYN,
                    _ => ACK,
                };
                match hit {
                    Some((id, dir)) => {
                        let stale = t.track(id, dir, flags, 100, now) == Track::Stale;
                        events += u64::from(stale && t.remove(id).is_some());
                    }
                    None if keys[i].proto() != 6 || tcp_may_open(flags) => {
                        let new = NewConn {
                            initiator: sides[i],
                            src_segment: 1,
                            generation: 1,
                            rule: 0,
                            flags: ConnFlags::NONE,
                            svc: 443,
                            bytes: 60,
                        };
                        let _ = t.insert(&keys[i], hashes[i], now, new, |_| events += 1);
                    }
                    None => {}
                }
            }
            t.expire_slice(now, 16, |_| events += 1);
        }
    });
    assert_eq!(allocs, 0);
    let c = t.counters();
    // The loop really exercised the slow paths it claims to.
    assert!(c.inserts > 300, "{c:?}");
    assert!(
        c.expired + c.evicted_unreplied + c.evicted_expired + c.refused_full > 0,
        "{c:?}"
    );
    assert!(events > 0);
    t.check_invariants().unwrap();
}

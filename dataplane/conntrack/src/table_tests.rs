use super::*;
use crate::key::Endpoint;
use crate::state::tcp_flags::{ACK, FIN, RST, SYN};
use bulkhead_packet::flow::v4_to_addr;
use bulkhead_packet::proto::{ICMP as PROTO_ICMP, TCP as PROTO_TCP, UDP as PROTO_UDP};
use core::time::Duration;

const SEC: u64 = 1_000_000_000;

fn ep(ip: u32, port: u16) -> Endpoint {
    Endpoint {
        addr: v4_to_addr(ip),
        port,
    }
}

/// Key in VLAN domain `domain`.
fn key_in(domain: u32, src: Endpoint, dst: Endpoint, proto: u8) -> (ConnKey, KeySide) {
    ConnKey::new(domain, src, dst, proto, 0)
}

/// Key of client `n` (port 10000 + n) to a server, and the client's side.
fn client_key(n: u16, proto: u8) -> (ConnKey, KeySide) {
    key_in(0, ep(0x0a00_0001, 10000 + n), ep(0x0a00_0202, 443), proto)
}

fn new_conn(initiator: KeySide) -> NewConn {
    NewConn {
        initiator,
        src_segment: 10,
        generation: 1,
        rule: 3,
        flags: ConnFlags::NONE,
        svc: 443,
        bytes: 60,
    }
}

fn small(slots: usize, max: usize) -> ConnTable {
    let mut cfg = TableConfig::for_slots(slots);
    cfg.max_connections = max;
    ConnTable::new(&cfg).unwrap()
}

fn insert(t: &mut ConnTable, n: u16, proto: u8, now: u64) -> (EntryId, ConnKey, KeySide) {
    let (k, side) = client_key(n, proto);
    let h = t.hash(&k);
    let id = t
        .insert(&k, h, now, new_conn(side), |_| {
            panic!("unexpected eviction")
        })
        .unwrap();
    (id, k, side)
}

#[test]
fn entry_layout() {
    assert_eq!(core::mem::size_of::<Entry>(), 128);
    assert_eq!(core::mem::align_of::<Entry>(), 64);
    assert_eq!(core::mem::size_of::<Bucket>(), 64);
}

#[test]
fn insert_then_both_directions_find_the_entry_and_count_separately() {
    let mut t = small(64, 32);
    let (id, k, client) = insert(&mut t, 1, PROTO_TCP, 5 * SEC);
    // The server's reply builds the same key from the other side.
    let (k2, server) = key_in(0, ep(0x0a00_0202, 443), ep(0x0a00_0001, 10001), 6);
    assert_eq!(k, k2);
    assert_eq!(server, client.other());
    assert_eq!(t.lookup(&k2, t.hash(&k2)), Some(id));

    let e = t.entry(id).unwrap();
    assert_eq!(e.dir(client), Dir::Original);
    assert_eq!(e.dir(server), Dir::Reply);
    assert_eq!(e.state(), ConnState::TcpSynSent);
    assert_eq!((e.created(), e.last_seen()), (5 * SEC, 5 * SEC));
    assert_eq!((e.packets(Dir::Original), e.bytes(Dir::Original)), (1, 60));
    assert_eq!((e.generation(), e.rule(), e.svc()), (1, 3, 443));

    let d = t.dir_of(id, server).unwrap();
    assert_eq!(t.track(id, d, SYN | ACK, 60, 6 * SEC), Track::Accept);
    assert_eq!(t.track(id, Dir::Original, ACK, 52, 7 * SEC), Track::Accept);
    assert_eq!(t.track(id, Dir::Reply, ACK, 1500, 8 * SEC), Track::Accept);
    let e = t.entry(id).unwrap();
    assert_eq!(e.state(), ConnState::TcpEstablished);
    assert_eq!((e.packets(Dir::Original), e.bytes(Dir::Original)), (2, 112));
    assert_eq!((e.packets(Dir::Reply), e.bytes(Dir::Reply)), (2, 1560));
    assert_eq!(e.last_seen(), 8 * SEC);
    assert_eq!(e.duration_ns(), 3 * SEC);
    assert_eq!(t.counters().occupancy, 1);
    assert_eq!(t.counters().inserts, 1);
}

#[test]
fn invalid_packets_change_nothing() {
    let mut t = small(64, 32);
    let (id, _, _) = insert(&mut t, 1, PROTO_TCP, SEC);
    let before = *t.entry(id).unwrap();
    assert_eq!(
        t.track(id, Dir::Original, SYN | ACK, 60, 2 * SEC),
        Track::Invalid
    );
    assert_eq!(t.track(id, Dir::Reply, ACK, 60, 2 * SEC), Track::Invalid);
    assert_eq!(*t.entry(id).unwrap(), before);
}

#[test]
fn equal_addresses_in_different_vlan_domains_are_different_connections() {
    let mut t = small(64, 32);
    let (ka, sa) = key_in(1, ep(0x0a00_0001, 1000), ep(0x0a00_0002, 80), 6);
    let (kb, sb) = key_in(3, ep(0x0a00_0001, 1000), ep(0x0a00_0002, 80), 6);
    let ia = t.insert(&ka, t.hash(&ka), 0, new_conn(sa), |_| {}).unwrap();
    let ib = t.insert(&kb, t.hash(&kb), 0, new_conn(sb), |_| {}).unwrap();
    assert_ne!(ia, ib);
    assert_eq!(t.lookup(&ka, t.hash(&ka)), Some(ia));
    assert_eq!(t.lookup(&kb, t.hash(&kb)), Some(ib));
}

#[test]
fn duplicate_insert_reports_the_existing_entry() {
    let mut t = small(64, 32);
    let (id, k, side) = insert(&mut t, 1, PROTO_UDP, 0);
    let again = t.insert(&k, t.hash(&k), 1, new_conn(side.other()), |_| {});
    assert_eq!(again, Err(InsertError::Exists(id)));
    assert_eq!(t.len(), 1);
}

#[test]
fn timeouts_per_state() {
    let to = Timeouts::default();
    let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap();
    let mut t = small(64, 32);
    let base = 100 * SEC;

    // Half-open TCP: tcp_syn_sent.
    let (syn, _, _) = insert(&mut t, 1, PROTO_TCP, base);
    // Established TCP: tcp_established.
    let (est, _, _) = insert(&mut t, 2, PROTO_TCP, base);
    assert_eq!(t.track(est, Dir::Reply, SYN | ACK, 0, base), Track::Accept);
    assert_eq!(t.track(est, Dir::Original, ACK, 0, base), Track::Accept);
    // Reset: tcp_closed.
    let (rst, _, _) = insert(&mut t, 3, PROTO_TCP, base);
    assert_eq!(t.track(rst, Dir::Reply, RST | ACK, 0, base), Track::Accept);
    // UDP unreplied and assured.
    let (u1, _, _) = insert(&mut t, 4, PROTO_UDP, base);
    let (u2, _, _) = insert(&mut t, 5, PROTO_UDP, base);
    assert_eq!(t.track(u2, Dir::Reply, 0, 0, base), Track::Accept);
    // ICMP and other.
    let (ic, _, _) = insert(&mut t, 6, PROTO_ICMP, base);
    let (gre, _, _) = insert(&mut t, 7, 47, base);

    let cases = [
        (syn, ConnState::TcpSynSent, to.tcp_syn_sent),
        (est, ConnState::TcpEstablished, to.tcp_established),
        (rst, ConnState::TcpClosed, to.tcp_closed),
        (u1, ConnState::UdpUnreplied, to.udp_unreplied),
        (u2, ConnState::UdpAssured, to.udp_assured),
        (ic, ConnState::IcmpRequest, to.icmp),
        (gre, ConnState::OtherNew, to.other),
    ];
    for (id, state, timeout) in cases {
        let e = t.entry(id).unwrap();
        assert_eq!(e.state(), state);
        assert!(!t.is_expired(e, base + ns(timeout) - 1), "{state:?}");
        assert!(t.is_expired(e, base + ns(timeout)), "{state:?}");
    }
    // A packet after the timeout finds the entry stale and does not revive it.
    assert_eq!(
        t.track(u1, Dir::Original, 0, 10, base + ns(to.udp_unreplied)),
        Track::Stale
    );
    assert_eq!(t.entry(u1).unwrap().last_seen(), base);
    // One just before it refreshes the entry.
    let just = base + ns(to.udp_assured) - 1;
    assert_eq!(t.track(u2, Dir::Original, 0, 10, just), Track::Accept);
    assert!(!t.is_expired(t.entry(u2).unwrap(), just + ns(to.udp_assured) - 1));
}

#[test]
fn fin_both_sides_then_time_wait_expiry_and_tuple_reuse() {
    let mut t = small(64, 32);
    let (id, k, side) = insert(&mut t, 1, PROTO_TCP, 0);
    for (d, f) in [
        (Dir::Reply, SYN | ACK),
        (Dir::Original, ACK),
        (Dir::Original, FIN | ACK),
        (Dir::Reply, FIN | ACK),
        (Dir::Original, ACK),
    ] {
        assert_eq!(t.track(id, d, f, 40, SEC), Track::Accept);
    }
    assert_eq!(t.entry(id).unwrap().state(), ConnState::TcpTimeWait);
    // The client reuses its port: the old entry is stale, the engine removes it
    // and inserts a fresh one.
    assert_eq!(t.track(id, Dir::Original, SYN, 60, 2 * SEC), Track::Stale);
    let old = t.remove(id).unwrap();
    assert_eq!(old.packets(Dir::Original), 4);
    assert_eq!(old.packets(Dir::Reply), 2);
    assert_eq!(t.lookup(&k, t.hash(&k)), None);
    let id2 = t
        .insert(&k, t.hash(&k), 2 * SEC, new_conn(side), |_| {})
        .unwrap();
    assert_eq!(t.entry(id2).unwrap().state(), ConnState::TcpSynSent);
    // Same slab slot, new version: the old handle is dead.
    assert_eq!(id2.index(), id.index());
    assert_ne!(id2, id);
    assert!(t.entry(id).is_none());
    assert_eq!(t.track(id, Dir::Original, ACK, 1, 3 * SEC), Track::Stale);
    assert!(t.remove(id).is_none());
    assert!(t.entry(id2).is_some());
    assert!(!t.set_judgement(id, 9, 9, ConnFlags::LOG));
    assert!(t.set_judgement(id2, 9, 4, ConnFlags::LOG | ConnFlags::MONITOR));
    let e = t.entry(id2).unwrap();
    assert_eq!((e.generation(), e.rule()), (9, 4));
    assert!(e.flags().contains(ConnFlags::MONITOR) && e.flags().contains(ConnFlags::LOG));
}

#[test]
fn full_table_evicts_oldest_unreplied_then_refuses() {
    let mut t = small(64, 4);
    // Four half-open connections, the second one the oldest.
    let times = [5 * SEC, SEC, 3 * SEC, 4 * SEC];
    let mut ids = Vec::new();
    for (n, &at) in times.iter().enumerate() {
        ids.push(insert(&mut t, n as u16, PROTO_TCP, at).0);
    }
    let (k, side) = client_key(100, PROTO_TCP);
    let mut evicted = Vec::new();
    let id = t
        .insert(&k, t.hash(&k), 6 * SEC, new_conn(side), |e| {
            evicted.push(*e)
        })
        .unwrap();
    assert_eq!(evicted.len(), 1);
    assert_eq!(evicted[0].key(), &client_key(1, PROTO_TCP).0);
    assert!(t.entry(ids[1]).is_none());
    assert!(t.entry(id).is_some());
    assert_eq!(t.counters().evicted_unreplied, 1);

    // Establish all four: nothing may be evicted any more.
    for &i in [ids[0], ids[2], ids[3], id].iter() {
        assert_eq!(t.track(i, Dir::Reply, SYN | ACK, 0, 7 * SEC), Track::Accept);
        assert_eq!(t.track(i, Dir::Original, ACK, 0, 7 * SEC), Track::Accept);
    }
    let (k, side) = client_key(101, PROTO_TCP);
    let r = t.insert(&k, t.hash(&k), 8 * SEC, new_conn(side), |_| {
        panic!("evicted")
    });
    assert_eq!(r, Err(InsertError::Full));
    assert_eq!(t.counters().refused_full, 1);
    assert_eq!(t.len(), 4);
    t.check_invariants().unwrap();
}

#[test]
fn full_table_prefers_expired_over_unreplied() {
    let mut t = small(64, 2);
    let (udp, _, _) = insert(&mut t, 1, PROTO_UDP, 10 * SEC); // expires at 40 s
    let (syn, _, _) = insert(&mut t, 2, PROTO_TCP, 0);
    // A retransmitted SYN at 20 s: half-open and oldest-seen, but not expired
    // at 41 s (20 + 30), whereas the UDP entry is (10 + 30).
    assert_eq!(
        t.track(syn, Dir::Original, SYN, 60, 20 * SEC),
        Track::Accept
    );
    let (k, side) = client_key(3, PROTO_UDP);
    let mut evicted = Vec::new();
    t.insert(&k, t.hash(&k), 41 * SEC, new_conn(side), |e| {
        evicted.push(*e)
    })
    .unwrap();
    assert_eq!(evicted.len(), 1);
    assert_eq!(evicted[0].state(), ConnState::UdpUnreplied);
    assert!(t.entry(udp).is_none() && t.entry(syn).is_some());
    assert_eq!(t.counters().evicted_expired, 1);
}

#[test]
fn probe_window_full_with_colliding_hashes() {
    // A large table, but every key hashes to the same home bucket: after
    // MAX_PROBE_BUCKETS * BUCKET_SLOTS entries the window is full.
    let mut t = small(1024, 512);
    let h = 0x1234_0000_0000_0005u64;
    let window = MAX_PROBE_BUCKETS * BUCKET_SLOTS;
    let mut ids = Vec::new();
    for n in 0..window as u16 {
        let (k, s) = client_key(n, PROTO_UDP);
        let id = t.insert(&k, h, SEC, new_conn(s), |_| {}).unwrap();
        // Answered: not evictable by early drop.
        assert_eq!(t.track(id, Dir::Reply, 0, 60, SEC), Track::Accept);
        ids.push(id);
    }
    t.check_invariants().unwrap();
    let (k, s) = client_key(999, PROTO_UDP);
    assert_eq!(
        t.insert(&k, h, 2 * SEC, new_conn(s), |_| {}),
        Err(InsertError::Full)
    );
    // Once they have expired the window makes room again (oldest first).
    let mut evicted = 0;
    t.insert(&k, h, 1000 * SEC, new_conn(s), |_| evicted += 1)
        .unwrap();
    assert_eq!(evicted, 1);
    t.check_invariants().unwrap();
    // A key with a different home is unaffected.
    let (k2, s2) = client_key(1000, PROTO_UDP);
    t.insert(&k2, h + 100, 2 * SEC, new_conn(s2), |_| panic!())
        .unwrap();
}

#[test]
fn removal_under_collisions_keeps_every_other_key_reachable() {
    let mut t = small(64, 56);
    // Three hash values for 48 keys: long overflow chains that wrap around.
    let hash_of = |n: u16| [7u64, 7, 0xffff_0000_0000_0007, 6][usize::from(n % 4)];
    let keys: Vec<_> = (0..48u16).map(|n| (n, client_key(n, PROTO_UDP))).collect();
    let mut ids = Vec::new();
    for &(n, (k, s)) in &keys {
        ids.push(t.insert(&k, hash_of(n), 0, new_conn(s), |_| {}).unwrap());
    }
    t.check_invariants().unwrap();
    // Remove every third key, check the rest, re-insert, check again.
    for (i, &(n, (k, _))) in keys.iter().enumerate() {
        if i % 3 == 0 {
            let e = t.remove(ids[i]).unwrap();
            assert_eq!(e.key(), &k);
            assert_eq!(t.lookup(&k, hash_of(n)), None);
        }
    }
    t.check_invariants().unwrap();
    for (i, &(n, (k, _))) in keys.iter().enumerate() {
        let found = t.lookup(&k, hash_of(n));
        if i % 3 == 0 {
            assert_eq!(found, None);
        } else {
            assert_eq!(found, Some(ids[i]));
        }
    }
    for (i, &(n, (k, s))) in keys.iter().enumerate() {
        if i % 3 == 0 {
            ids[i] = t.insert(&k, hash_of(n), 0, new_conn(s), |_| {}).unwrap();
        }
    }
    t.check_invariants().unwrap();
    for (i, &(n, (k, _))) in keys.iter().enumerate() {
        assert_eq!(t.lookup(&k, hash_of(n)), Some(ids[i]));
    }
    assert_eq!(t.counters().removed, 16);
}

#[test]
fn expire_slices_are_bounded_and_complete() {
    let mut t = small(256, 100);
    for n in 0..40 {
        insert(&mut t, n, PROTO_UDP, 0);
    }
    for n in 40..60 {
        insert(&mut t, n, PROTO_UDP, 50 * SEC); // not expired at 60 s
    }
    let now = 60 * SEC;
    let mut seen = Vec::new();
    let mut calls = 0;
    loop {
        let got = t.expire_slice(now, 7, |e| seen.push(*e.key()));
        assert!(got <= 7);
        calls += 1;
        if calls * 7 >= t.capacity() {
            break;
        }
    }
    // 100 slots / 7 per call: every slot visited after 15 calls.
    assert_eq!(calls, 15);
    assert_eq!(seen.len(), 40);
    for n in 0..40 {
        assert!(seen.contains(&client_key(n, PROTO_UDP).0));
    }
    assert_eq!(t.len(), 20);
    assert_eq!(t.counters().expired, 40);
    for n in 40..60 {
        let (k, _) = client_key(n, PROTO_UDP);
        assert!(t.lookup(&k, t.hash(&k)).is_some());
    }
    // A slice of zero does nothing; another sweep finds nothing.
    assert_eq!(t.expire_slice(now, 0, |_| panic!()), 0);
    assert_eq!(t.expire_slice(now, 1000, |_| panic!()), 0);
    t.check_invariants().unwrap();
}

#[test]
fn lookup_burst_matches_lookup() {
    let mut t = small(256, 200);
    let mut keys = Vec::new();
    for n in 0..150u16 {
        let (k, s) = client_key(n, PROTO_TCP);
        if n % 3 != 0 {
            t.insert(&k, t.hash(&k), 0, new_conn(s), |_| {}).unwrap();
        }
        keys.push(k);
    }
    // Tag collisions: same hash for a present and an absent key.
    let (kx, sx) = client_key(500, PROTO_TCP);
    let (ky, _) = client_key(501, PROTO_TCP);
    t.insert(&kx, 42, 0, new_conn(sx), |_| {}).unwrap();
    keys.push(ky);
    keys.push(kx);
    let mut hashes: Vec<u64> = keys.iter().map(|k| t.hash(k)).collect();
    let last = hashes.len() - 1;
    hashes[last] = 42;
    hashes[last - 1] = 42;
    for n in [0, 1, 3, 4, 5, 8, 9, 31, keys.len()] {
        let mut out = vec![None; n];
        t.lookup_burst(&keys[keys.len() - n..], &hashes[keys.len() - n..], &mut out);
        for (i, got) in out.iter().enumerate() {
            let j = keys.len() - n + i;
            assert_eq!(*got, t.lookup(&keys[j], hashes[j]), "burst {n} key {j}");
        }
    }
    let mut out = vec![None; keys.len()];
    t.lookup_burst(&keys, &hashes, &mut out);
    assert_eq!(out.iter().filter(|o| o.is_some()).count(), 101);
    assert_eq!(out[last], t.lookup(&kx, 42));
    assert!(out[last].is_some() && out[last - 1].is_none());
    // Shorter `out` bounds the work.
    let mut short = [None; 2];
    t.lookup_burst(&keys, &hashes, &mut short);
    assert_eq!(short[1], t.lookup(&keys[1], hashes[1]));
}

#[test]
fn no_reallocation_in_steady_state() {
    let mut t = small(128, 64);
    let ptrs = (
        t.buckets.as_ptr(),
        t.entries.as_ptr(),
        t.free.as_ptr(),
        t.free.capacity(),
    );
    let mut now = 0;
    for round in 0..50u16 {
        now += 7 * SEC;
        for n in 0..80u16 {
            let (k, s) = client_key(n + round, PROTO_UDP);
            let h = t.hash(&k);
            match t.lookup(&k, h) {
                Some(id) => {
                    if t.track(id, Dir::Reply, 0, 1, now) == Track::Stale {
                        let _ = t.remove(id);
                    }
                }
                None => {
                    let _ = t.insert(&k, h, now, new_conn(s), |_| {});
                }
            }
        }
        t.expire_slice(now, 16, |_| {});
    }
    t.flush(|_| {});
    assert!(t.is_empty());
    let after = (
        t.buckets.as_ptr(),
        t.entries.as_ptr(),
        t.free.as_ptr(),
        t.free.capacity(),
    );
    assert_eq!(ptrs, after);
    t.check_invariants().unwrap();
}

#[test]
fn config_errors_are_all_reported() {
    let cfg = TableConfig {
        slots: 1000,
        max_connections: 0,
        timeouts: Timeouts {
            tcp_closed: Duration::ZERO,
            ..Timeouts::default()
        },
        hash_seed: 1,
        quotas: Quotas::UNLIMITED,
        track_windows: false,
    };
    let err = ConnTable::new(&cfg).unwrap_err();
    assert_eq!(err.0.len(), 2, "{err}");
    assert!(matches!(err.0[0], ConfigError::Slots { got: 1000, .. }));
    assert!(matches!(&err.0[1], ConfigError::Timeout(b) if b.field == "tcp_closed"));
    assert!(err.to_string().contains("power of two"));

    let mut cfg = TableConfig::for_slots(64);
    cfg.max_connections = 57;
    let err = ConnTable::new(&cfg).unwrap_err();
    assert_eq!(
        err.0,
        vec![ConfigError::MaxConnections {
            got: 57,
            max: 56,
            slots: 64
        }]
    );
    cfg.max_connections = 56;
    assert!(ConnTable::new(&cfg).is_ok());
    assert!(ConnTable::with_capacity(4).is_err());
    assert!(ConnTable::with_capacity(MAX_SLOTS * 2).is_err());
}

#[test]
fn million_connections_fit_in_two_million_slots() {
    let t = ConnTable::with_capacity(1 << 21).unwrap();
    assert!(t.capacity() >= 1_000_000);
    // 64 B of index per 8 slots (16 per connection at 50 % load) + 128 B
    // entry + 4 B free-stack slot.
    assert_eq!(t.bytes_per_connection(), 148);
}

#[test]
fn icmp_echo_request_and_reply_share_one_entry() {
    let mut t = small(64, 8);
    let client = ep(0x0a00_0001, 77);
    let server = ep(0x0a00_0202, 77);
    let (k, side) = ConnKey::new(0, client, server, PROTO_ICMP, 8);
    let (k2, side2) = ConnKey::new(0, server, client, PROTO_ICMP, 8);
    assert_eq!(k, k2);
    let h = t.hash(&k);
    let mut nc = new_conn(side);
    nc.svc = 8;
    let id = t.insert(&k, h, 0, nc, |_| {}).unwrap();
    assert_eq!(t.lookup(&k2, h), Some(id));
    let dir = t.dir_of(id, side2).unwrap();
    assert_eq!(dir, Dir::Reply);
    assert_eq!(t.track(id, dir, 0, 84, SEC), Track::Accept);
    let e = t.entry(id).unwrap();
    assert_eq!(e.state(), ConnState::IcmpReplied);
    assert_eq!(e.svc(), 8);
    assert_eq!(e.bytes(Dir::Reply), 84);
    // A timestamp exchange on the same identifier is another connection.
    let (ts, _) = ConnKey::new(0, server, client, PROTO_ICMP, 13);
    assert_eq!(t.lookup(&ts, t.hash(&ts)), None);
}

#[test]
fn early_drop_evicts_unreplied_udp_but_never_replied_flows() {
    let mut t = small(64, 4);
    // Two unreplied UDP flows (a flood) and two answered ones.
    let (flood1, _, _) = insert(&mut t, 1, PROTO_UDP, SEC);
    let (flood2, _, _) = insert(&mut t, 2, PROTO_UDP, 2 * SEC);
    let (dns, _, _) = insert(&mut t, 3, PROTO_UDP, 0);
    let (ping, _, _) = insert(&mut t, 4, PROTO_ICMP, 0);
    assert_eq!(t.track(dns, Dir::Reply, 0, 80, 3 * SEC), Track::Accept);
    assert_eq!(t.track(ping, Dir::Reply, 0, 80, 3 * SEC), Track::Accept);
    // A new TCP connection evicts the oldest unreplied flow.
    let (k, side) = client_key(10, PROTO_TCP);
    let mut evicted = Vec::new();
    t.insert(&k, t.hash(&k), 4 * SEC, new_conn(side), |e| {
        evicted.push(*e.key())
    })
    .unwrap();
    assert_eq!(evicted, vec![client_key(1, PROTO_UDP).0]);
    assert!(t.entry(flood1).is_none() && t.entry(flood2).is_some());
    assert!(t.entry(dns).is_some() && t.entry(ping).is_some());
    assert_eq!(t.counters().evicted_unreplied, 1);
    t.check_invariants().unwrap();
}

fn with_quotas(per_source: u32, per_segment: u32) -> ConnTable {
    let mut cfg = TableConfig::for_slots(256);
    cfg.max_connections = 128;
    cfg.quotas = Quotas {
        per_source,
        per_segment,
    };
    ConnTable::new(&cfg).unwrap()
}

#[test]
fn a_source_address_is_held_to_its_quota_and_gets_room_back_on_removal() {
    let mut t = with_quotas(3, 0);
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(insert(&mut t, n, PROTO_UDP, SEC).0);
    }
    let (k, side) = client_key(3, PROTO_UDP);
    let r = t.insert(&k, t.hash(&k), SEC, new_conn(side), |_| panic!("evicted"));
    assert_eq!(r, Err(InsertError::SourceQuota));
    assert_eq!(t.counters().refused_source_quota, 1);
    // Another address of the same segment, and the same address in another
    // VLAN domain, are not affected.
    let (k2, s2) = key_in(0, ep(0x0a00_0009, 5000), ep(0x0a00_0202, 443), PROTO_UDP);
    assert!(t
        .insert(&k2, t.hash(&k2), SEC, new_conn(s2), |_| {})
        .is_ok());
    let (k3, s3) = key_in(7, ep(0x0a00_0001, 5000), ep(0x0a00_0202, 443), PROTO_UDP);
    assert!(t
        .insert(&k3, t.hash(&k3), SEC, new_conn(s3), |_| {})
        .is_ok());
    // Removal gives room back.
    assert!(t.remove(ids[0]).is_some());
    assert!(t
        .insert(&k, t.hash(&k), SEC, new_conn(side), |_| {})
        .is_ok());
    // Expiry gives room back too.
    t.expire_slice(1000 * SEC, t.capacity(), |_| {});
    assert_eq!(t.len(), 0);
    assert_eq!(t.by_source.total(), 0);
    t.check_invariants().unwrap();
}

#[test]
fn a_source_segment_is_held_to_its_quota() {
    let mut t = with_quotas(0, 2);
    for n in 0..2 {
        insert(&mut t, n, PROTO_TCP, SEC);
    }
    let (k, side) = client_key(2, PROTO_TCP);
    assert_eq!(
        t.insert(&k, t.hash(&k), SEC, new_conn(side), |_| {}),
        Err(InsertError::SegmentQuota)
    );
    let mut other = new_conn(side);
    other.src_segment = 11;
    assert!(t.insert(&k, t.hash(&k), SEC, other, |_| {}).is_ok());
    assert_eq!(t.counters().refused_segment_quota, 1);
    t.flush(|_| {});
    assert_eq!(t.by_segment.total(), 0);
}

fn established(t: &mut ConnTable) -> EntryId {
    let (id, _, _) = insert(t, 1, PROTO_TCP, SEC);
    assert_eq!(t.track(id, Dir::Reply, SYN | ACK, 60, SEC), Track::Accept);
    assert_eq!(t.track(id, Dir::Original, ACK, 60, SEC), Track::Accept);
    id
}

#[test]
fn a_syn_on_a_live_connection_passes_and_a_syn_ack_starts_it_over() {
    let mut t = small(64, 8);
    let id = established(&mut t);
    // The client rebooted and reuses the tuple.
    assert_eq!(t.track(id, Dir::Original, SYN, 60, 2 * SEC), Track::Accept);
    let e = *t.entry(id).unwrap();
    assert_eq!(e.state(), ConnState::TcpEstablished);
    assert_eq!(
        e.last_seen(),
        SEC,
        "a SYN alone does not keep the entry alive"
    );
    assert_eq!(e.flags(), ConnFlags::NONE, "the mark is internal");
    // The server answers it: the connection starts over.
    assert_eq!(
        t.track(id, Dir::Reply, SYN | ACK, 60, 3 * SEC),
        Track::Accept
    );
    assert_eq!(t.entry(id).unwrap().state(), ConnState::TcpSynRecv);
    assert_eq!(t.track(id, Dir::Original, ACK, 60, 3 * SEC), Track::Accept);
    assert_eq!(t.entry(id).unwrap().state(), ConnState::TcpEstablished);
}

#[test]
fn a_syn_on_a_live_connection_changes_nothing_if_the_peer_carries_on() {
    let mut t = small(64, 8);
    let id = established(&mut t);
    assert_eq!(t.track(id, Dir::Original, SYN, 60, 2 * SEC), Track::Accept);
    // The server keeps talking on the old connection (it answers the SYN
    // with an ACK, RFC 793's challenge): the mark is dropped, and a later
    // SYN-ACK is only a retransmission.
    assert_eq!(t.track(id, Dir::Reply, ACK, 60, 3 * SEC), Track::Accept);
    assert_eq!(
        t.track(id, Dir::Reply, SYN | ACK, 60, 3 * SEC),
        Track::Accept
    );
    assert_eq!(t.entry(id).unwrap().state(), ConnState::TcpEstablished);
    // A SYN from the responder is never let through (that would open the
    // reverse direction without the rules).
    assert_eq!(t.track(id, Dir::Reply, SYN, 60, 4 * SEC), Track::Invalid);
    // The verdict flags survive set_judgement, the mark too.
    assert_eq!(t.track(id, Dir::Original, SYN, 60, 5 * SEC), Track::Accept);
    assert!(t.set_judgement(id, 2, 3, ConnFlags::LOG));
    assert_eq!(t.entry(id).unwrap().flags(), ConnFlags::LOG);
    assert_eq!(
        t.track(id, Dir::Reply, SYN | ACK, 60, 6 * SEC),
        Track::Accept
    );
    assert_eq!(t.entry(id).unwrap().state(), ConnState::TcpSynRecv);
}

#[test]
fn with_windows_only_the_syn_ack_to_the_new_syn_restarts_a_live_connection() {
    let mut cfg = TableConfig::for_slots(64);
    cfg.max_connections = 8;
    cfg.track_windows = true;
    let mut t = ConnTable::new(&cfg).unwrap();
    let (k, side) = client_key(1, PROTO_TCP);
    let seg = |flags, seq, ack| Segment {
        flags,
        seq,
        ack,
        window: 65535,
        wscale: None,
        len: 0,
    };
    let id = t
        .insert(&k, t.hash(&k), SEC, new_conn(side), |_| {})
        .unwrap();
    t.open_window(id, &seg(SYN, 1000, 0));
    assert_eq!(
        t.track_tcp(id, Dir::Reply, &seg(SYN | ACK, 5000, 1001), 60, SEC),
        Track::Accept
    );
    assert_eq!(
        t.track_tcp(id, Dir::Original, &seg(ACK, 1001, 5001), 60, SEC),
        Track::Accept
    );
    // A (forged) SYN on the live connection, then a forged SYN-ACK that does
    // not acknowledge it: no restart, the connection goes on.
    assert_eq!(
        t.track_tcp(id, Dir::Original, &seg(SYN, 777, 0), 60, 2 * SEC),
        Track::Accept
    );
    let _ = t.track_tcp(id, Dir::Reply, &seg(SYN | ACK, 5000, 1001), 60, 2 * SEC);
    assert_eq!(t.entry(id).unwrap().state(), ConnState::TcpEstablished);
    assert_eq!(
        t.track_tcp(id, Dir::Original, &seg(ACK, 1001, 5001), 60, 3 * SEC),
        Track::Accept
    );
    // The real restart: the SYN-ACK acknowledges the new SYN.
    assert_eq!(
        t.track_tcp(id, Dir::Original, &seg(SYN, 90_000, 0), 60, 4 * SEC),
        Track::Accept
    );
    assert_eq!(
        t.track_tcp(id, Dir::Reply, &seg(SYN | ACK, 70_000, 90_001), 60, 4 * SEC),
        Track::Accept
    );
    assert_eq!(t.entry(id).unwrap().state(), ConnState::TcpSynRecv);
    assert_eq!(
        t.track_tcp(id, Dir::Original, &seg(ACK, 90_001, 70_001), 60, 4 * SEC),
        Track::Accept
    );
    assert_eq!(t.entry(id).unwrap().state(), ConnState::TcpEstablished);
}

//! The table against a plain model: a `HashMap` from key to the connection's
//! expected state, with the same timeout and eviction rules. Small tables
//! (8 buckets = one probe window) and deliberately colliding hashes.

use std::collections::HashMap;

use bulkhead_conntrack::state::tcp_flags::{ACK, FIN, PSH, RST, SYN};
use bulkhead_conntrack::{
    ConnFlags, ConnKey, ConnState, ConnTable, Dir, Endpoint, Entry, EntryId, InsertError, KeySide,
    NewConn, Step, TableConfig, Timeouts, Track,
};
use bulkhead_packet::flow::v4_to_addr;
use proptest::prelude::*;

const SEC: u64 = 1_000_000_000;
const UNIVERSE: usize = 40;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Model {
    state: ConnState,
    initiator: KeySide,
    created: u64,
    last_seen: u64,
    packets: [u64; 2],
    bytes: [u64; 2],
    /// A SYN passed on the live connection (table-internal mark).
    syn_again: bool,
}

#[derive(Clone, Debug)]
enum Op {
    Advance(u64),
    Insert {
        k: usize,
        from_b: bool,
    },
    Track {
        k: usize,
        from_b: bool,
        flags: u8,
        bytes: u32,
    },
    Remove {
        k: usize,
    },
    Expire {
        slots: usize,
    },
    Sweep,
}

fn op() -> impl Strategy<Value = Op> {
    let flags = prop::sample::select(vec![
        SYN,
        SYN | ACK,
        ACK,
        PSH | ACK,
        FIN | ACK,
        RST,
        RST | ACK,
        0,
    ]);
    prop_oneof![
        3 => prop_oneof![8 => 0u64..3, 3 => 0u64..40, 1 => 0u64..8000].prop_map(Op::Advance),
        8 => (0..UNIVERSE, any::<bool>()).prop_map(|(k, from_b)| Op::Insert { k, from_b }),
        6 => (0..UNIVERSE, any::<bool>(), flags, 0u32..2000)
            .prop_map(|(k, from_b, flags, bytes)| Op::Track { k, from_b, flags, bytes }),
        1 => (0..UNIVERSE).prop_map(|k| Op::Remove { k }),
        1 => (0..20usize).prop_map(|slots| Op::Expire { slots }),
        1 => Just(Op::Sweep),
    ]
}

/// Key `n` of the universe. Protocols rotate TCP, UDP, ICMP, GRE; keys 20..40
/// repeat the addresses of 0..20 in another segment.
fn key(n: usize) -> ConnKey {
    let protos = [6u8, 17, 1, 47];
    let domain = if n >= 20 { 7 } else { 3 };
    let m = (n % 20) as u16;
    let a = Endpoint {
        addr: v4_to_addr(0x0a00_0001 + u32::from(m % 5)),
        port: 1000 + m,
    };
    let b = Endpoint {
        addr: v4_to_addr(0x0a00_0900),
        port: 80,
    };
    let icmp_type = if protos[n % 4] == 1 { 8 } else { 0 };
    ConnKey::new(domain, a, b, protos[n % 4], icmp_type).0
}

fn timeout_ns(t: &Timeouts, s: ConnState) -> u64 {
    u64::try_from(t.for_state(s).as_nanos()).unwrap()
}

struct Harness {
    t: ConnTable,
    model: HashMap<ConnKey, Model>,
    timeouts: Timeouts,
    now: u64,
    degenerate: bool,
    dead_ids: Vec<EntryId>,
}

impl Harness {
    fn hash(&self, n: usize) -> u64 {
        if self.degenerate {
            // Three home buckets, one tag: every probe compares keys.
            [0u64, 5, 7][n % 3]
        } else {
            self.t.hash(&key(n))
        }
    }

    fn expired(&self, m: &Model) -> bool {
        self.now - m.last_seen >= timeout_ns(&self.timeouts, m.state)
    }

    fn check_entry(&self, e: &Entry) {
        let m = self
            .model
            .get(e.key())
            .expect("table entry missing from the model");
        let got = Model {
            state: e.state(),
            initiator: e.initiator(),
            created: e.created(),
            last_seen: e.last_seen(),
            packets: [e.packets(Dir::Original), e.packets(Dir::Reply)],
            bytes: [e.bytes(Dir::Original), e.bytes(Dir::Reply)],
            syn_again: m.syn_again,
        };
        assert_eq!(&got, m, "entry {:?}", e.key());
        assert_eq!(e.svc(), 80);
    }

    fn remove_from_model(&mut self, e: &Entry) {
        self.check_entry(e);
        self.model.remove(e.key());
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Advance(s) => self.now += s * SEC,
            Op::Insert { k, from_b } => self.insert(k, from_b),
            Op::Track {
                k,
                from_b,
                flags,
                bytes,
            } => self.track(k, from_b, flags, bytes),
            Op::Remove { k } => {
                let key = key(k);
                match self.t.lookup(&key, self.hash(k)) {
                    Some(id) => {
                        let e = self.t.remove(id).expect("lookup gave a dead id");
                        self.remove_from_model(&e);
                        self.dead_ids.push(id);
                    }
                    None => assert!(!self.model.contains_key(&key)),
                }
            }
            Op::Expire { slots } => {
                let mut gone = Vec::new();
                let n = self.t.expire_slice(self.now, slots, |e| gone.push(*e));
                assert_eq!(n, gone.len());
                assert!(n <= slots);
                for e in gone {
                    let m = self.model[e.key()];
                    assert!(self.expired(&m), "expired too early: {m:?}");
                    self.remove_from_model(&e);
                }
            }
            Op::Sweep => {
                let mut gone = Vec::new();
                self.t
                    .expire_slice(self.now, self.t.capacity(), |e| gone.push(*e));
                for e in gone {
                    self.remove_from_model(&e);
                }
                assert!(
                    self.model.values().all(|m| !self.expired(m)),
                    "sweep left expired entries"
                );
            }
        }
    }

    fn insert(&mut self, k: usize, from_b: bool) {
        let key = key(k);
        let side = if from_b { KeySide::B } else { KeySide::A };
        let new = NewConn {
            initiator: side,
            src_segment: 3,
            generation: 1,
            rule: 0,
            flags: ConnFlags::NONE,
            svc: 80,
            bytes: 100,
        };
        // What the model allows to be evicted if the table is full: the
        // oldest expired entries, else the oldest unreplied ones.
        let full = self.model.len() == self.t.capacity();
        let expired: Vec<(u64, ConnKey)> = self
            .model
            .iter()
            .filter(|(_, m)| self.expired(m))
            .map(|(k, m)| (m.last_seen, *k))
            .collect();
        let half_open: Vec<(u64, ConnKey)> = self
            .model
            .iter()
            .filter(|(_, m)| m.state.is_unreplied())
            .map(|(k, m)| (m.last_seen, *k))
            .collect();
        let pool = if expired.is_empty() {
            half_open
        } else {
            expired
        };
        let oldest = pool.iter().map(|p| p.0).min();
        let allowed: Vec<ConnKey> = pool
            .iter()
            .filter(|p| Some(p.0) == oldest)
            .map(|p| p.1)
            .collect();

        let mut evicted = Vec::new();
        let r = self
            .t
            .insert(&key, self.hash(k), self.now, new, |e| evicted.push(*e));
        if self.model.contains_key(&key) {
            assert_eq!(
                r,
                Err(InsertError::Exists(
                    self.t.lookup(&key, self.hash(k)).unwrap()
                ))
            );
            assert!(evicted.is_empty());
            return;
        }
        if full && allowed.is_empty() {
            assert_eq!(r, Err(InsertError::Full));
            assert!(evicted.is_empty());
            return;
        }
        let id = r.expect("insert refused with room in the model");
        if full {
            assert_eq!(evicted.len(), 1);
            assert!(
                allowed.contains(evicted[0].key()),
                "evicted the wrong entry"
            );
            self.remove_from_model(&evicted[0]);
        } else {
            assert!(evicted.is_empty(), "evicted while not full");
        }
        self.model.insert(
            key,
            Model {
                state: ConnState::initial(key.proto()),
                initiator: side,
                created: self.now,
                last_seen: self.now,
                packets: [1, 0],
                bytes: [100, 0],
                syn_again: false,
            },
        );
        assert_eq!(self.t.entry(id).unwrap().key(), &key);
    }

    fn track(&mut self, k: usize, from_b: bool, flags: u8, bytes: u32) {
        let key = key(k);
        let side = if from_b { KeySide::B } else { KeySide::A };
        let Some(id) = self.t.lookup(&key, self.hash(k)) else {
            assert!(!self.model.contains_key(&key));
            return;
        };
        let dir = self.t.dir_of(id, side).unwrap();
        let m = self.model[&key];
        assert_eq!(
            dir,
            if side == m.initiator {
                Dir::Original
            } else {
                Dir::Reply
            }
        );
        let expect = if self.expired(&m) {
            Step::Stale
        } else {
            m.state.next(dir, flags)
        };
        let got = self.t.track(id, dir, flags, bytes, self.now);
        // A SYN on a live connection (see `ConnTable::track`): passes
        // unchanged and marks it; the responder's SYN-ACK starts it over.
        let f = flags & (SYN | ACK | FIN | RST);
        if !self.expired(&m) && m.state.is_tcp() {
            let past_handshake = !matches!(
                m.state,
                ConnState::TcpSynSent
                    | ConnState::TcpSynRecv
                    | ConnState::TcpTimeWait
                    | ConnState::TcpClosed
            );
            let mm = self.model.get_mut(&key).unwrap();
            if dir == Dir::Original && f == SYN && past_handshake {
                assert_eq!(got, Track::Accept);
                mm.syn_again = true;
                mm.packets[0] += 1;
                mm.bytes[0] += u64::from(bytes);
                return;
            }
            if dir == Dir::Reply && mm.syn_again {
                mm.syn_again = false;
                if f == SYN | ACK {
                    assert_eq!(got, Track::Accept);
                    mm.state = ConnState::TcpSynRecv;
                    mm.last_seen = self.now;
                    mm.packets[1] += 1;
                    mm.bytes[1] += u64::from(bytes);
                    return;
                }
            }
        }
        match expect {
            Step::To(s) => {
                assert_eq!(got, Track::Accept);
                let m = self.model.get_mut(&key).unwrap();
                m.state = s;
                m.last_seen = self.now;
                m.packets[dir as usize] += 1;
                m.bytes[dir as usize] += u64::from(bytes);
            }
            Step::Invalid => assert_eq!(got, Track::Invalid),
            Step::Stale => {
                assert_eq!(got, Track::Stale);
                // What the engine does: remove and treat as a miss.
                let e = self.t.remove(id).unwrap();
                self.remove_from_model(&e);
                self.dead_ids.push(id);
            }
        }
    }

    fn check(&self) {
        self.t.check_invariants().unwrap();
        assert_eq!(self.t.len(), self.model.len());
        assert!(self.t.len() <= self.t.capacity());
        let keys: Vec<ConnKey> = (0..UNIVERSE).map(key).collect();
        let hashes: Vec<u64> = (0..UNIVERSE).map(|n| self.hash(n)).collect();
        let mut burst = vec![None; UNIVERSE];
        self.t.lookup_burst(&keys, &hashes, &mut burst);
        for n in 0..UNIVERSE {
            let found = self.t.lookup(&keys[n], hashes[n]);
            assert_eq!(found, burst[n]);
            assert_eq!(
                found.is_some(),
                self.model.contains_key(&keys[n]),
                "key {n}"
            );
            if let Some(id) = found {
                self.check_entry(self.t.entry(id).unwrap());
            }
        }
        for &id in &self.dead_ids {
            assert!(self.t.entry(id).is_none(), "a dead handle resolves");
        }
        let c = self.t.counters();
        assert_eq!(c.occupancy, self.model.len() as u64);
    }
}

fn run(max_connections: usize, degenerate: bool, ops: &[Op]) {
    let mut cfg = TableConfig::for_slots(64);
    cfg.max_connections = max_connections;
    let timeouts = cfg.timeouts;
    let mut h = Harness {
        t: ConnTable::new(&cfg).unwrap(),
        model: HashMap::new(),
        timeouts,
        now: 1000 * SEC,
        degenerate,
        dead_ids: Vec::new(),
    };
    for op in ops {
        h.apply(op);
        h.check();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn table_matches_model(
        max in prop::sample::select(vec![3usize, 12, 32, 56]),
        degenerate in any::<bool>(),
        ops in prop::collection::vec(op(), 1..300),
    ) {
        run(max, degenerate, &ops);
    }
}

/// A fixed churn scenario: the table repeatedly full of half-open and
/// expired entries, with and without colliding hashes.
#[test]
fn full_table_churn() {
    let mut ops = Vec::new();
    for round in 0..4 {
        for k in 0..UNIVERSE {
            ops.push(Op::Insert {
                k,
                from_b: k % 2 == 0,
            });
            ops.push(Op::Track {
                k,
                from_b: k % 2 == 1,
                flags: SYN | ACK,
                bytes: 60,
            });
        }
        ops.push(Op::Advance(if round % 2 == 0 { 31 } else { 200 }));
        ops.push(Op::Expire { slots: 9 });
    }
    run(56, true, &ops);
    run(12, false, &ops);
}

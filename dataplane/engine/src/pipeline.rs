//! The packet path of one worker, without device I/O: a burst of frames in,
//! one [`Fate`] per frame out. Pure Rust, so tests and benchmarks drive it
//! with byte buffers.
//!
//! Two passes (the VPP pattern): pass 1 parses every frame, builds its
//! connection key, hashes it and prefetches its table bucket; pass 2 looks the
//! keys up (the buckets are in cache by then) and decides. Everything slow —
//! a new connection, a re-judgement after a policy change, an ICMP error,
//! an event — is `#[cold]`.
//!
//! Connection keys hold the addresses, ports and protocol, and in place of
//! segments the frame's VLAN domain (VLAN ID + 1, 0 when untagged). A virtual
//! wire passes frames unchanged, so both directions carry the same VLAN; the
//! VLAN and an address determine that address's segment under any policy
//! (VLAN segment if listed, else longest prefix), so equal addresses in
//! different segments never share a key. Unlike placed segments, the domain
//! does not change when a new policy moves an address to another segment:
//! the connection is then found and judged again under the new placement,
//! kept if allowed and cut if denied. Rules judge with the spec's placement
//! (source: VLAN, else prefix, with anti-spoofing; destination: prefix).
//! Anti-spoofing applies to packets that open connections; later packets
//! must match a tracked connection exactly.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bulkhead_classify::{Action, FlowQuery, PlaceError, RuleRef, SegIdx};
use bulkhead_conntrack::{
    tcp_may_open, ConnFlags, ConnKey, ConnTable, Dir, Endpoint, Entry, EntryId, InsertError,
    NewConn, TableConfig, Timeouts, Track,
};
use bulkhead_packet::flow::{addr_to_v4, Addr, FlowTuple};
use bulkhead_packet::{parse, IpPacket, ParseConfig, Parsed};
use crossbeam::queue::ArrayQueue;

use crate::events::{EventKind, EventMode, FlowEvent, RULE_DEFAULT};
use crate::handover::PolicySnapshot;
use crate::stats::{slot, EngineDrop, Fate, LocalCounters, Side};
use crate::BURST;

/// Frames ahead whose first cache line is prefetched while parsing: hides the
/// DRAM/LLC latency of packet data (a NIC writes it by DMA, so the first
/// touch misses) behind the parsing of the frames in between. Tuned with
/// `benches/benches/pipeline.rs`.
const DATA_PREFETCH_DISTANCE: usize = 4;

const ICMP: u8 = 1;
/// ICMP redirect: changes a host's routing, never accepted as "related".
const ICMP_REDIRECT: u16 = 5;

const PROTO_TCP: u8 = 6;

/// Pipeline settings.
#[derive(Debug, Clone, Copy)]
pub struct PipelineConfig {
    pub worker: u16,
    pub pass_non_ip: bool,
    pub pass_fragments: bool,
    pub event_mode: EventMode,
    /// Most connections tracked at once by this worker.
    pub conntrack_capacity: usize,
    pub timeouts: Timeouts,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("connection table: {0}")]
    Table(String),
}

/// What pass 1 found out about a frame.
#[derive(Clone, Copy, Debug)]
enum Stage {
    /// Fate already known.
    Done,
    /// An IP packet to look up under `key`.
    Lookup(IpPacket),
    /// An ICMP error whose quoted flow is looked up under `key`.
    IcmpError(IpPacket),
}

/// One worker's packet path and the state it owns.
#[derive(Debug)]
pub struct Pipeline {
    cfg: PipelineConfig,
    parse_cfg: ParseConfig,
    ct: ConnTable,
    counters: LocalCounters,
    events: Arc<ArrayQueue<FlowEvent>>,
    stage: [Stage; BURST],
    keys: [ConnKey; BURST],
    /// Which side of the key the packet's source is.
    key_side: [bulkhead_conntrack::Side; BURST],
    hashes: [u64; BURST],
    /// Pass 2 lookup results, valid until the table changes within the burst.
    found: [Option<EntryId>; BURST],
    /// The table changed (insert or remove) since `found` was filled.
    changed: bool,
}

impl Pipeline {
    pub fn new(
        cfg: PipelineConfig,
        events: Arc<ArrayQueue<FlowEvent>>,
    ) -> Result<Pipeline, PipelineError> {
        let want = cfg
            .conntrack_capacity
            .max(bulkhead_conntrack::MIN_SLOTS / 2);
        // Half the index slots hold entries: short probe sequences.
        let slots = want.saturating_mul(2).next_power_of_two();
        let table = TableConfig {
            slots,
            max_connections: want,
            timeouts: cfg.timeouts,
            hash_seed: seed(cfg.worker),
        };
        let ct = ConnTable::new(&table).map_err(|e| PipelineError::Table(e.to_string()))?;
        Ok(Pipeline {
            cfg,
            parse_cfg: ParseConfig::default(),
            ct,
            counters: LocalCounters::default(),
            events,
            stage: [Stage::Done; BURST],
            keys: [ConnKey::default(); BURST],
            key_side: [bulkhead_conntrack::Side::A; BURST],
            hashes: [0; BURST],
            found: [None; BURST],
            changed: false,
        })
    }

    pub fn counters(&self) -> &LocalCounters {
        &self.counters
    }

    pub fn counters_mut(&mut self) -> &mut LocalCounters {
        &mut self.counters
    }

    pub fn table(&self) -> &ConnTable {
        &self.ct
    }

    /// Run one burst of frames that entered on `side`. `fates[i]` receives
    /// the fate of `frames[i]`; at most [`BURST`] frames.
    pub fn process_burst(
        &mut self,
        snap: &PolicySnapshot,
        side: Side,
        frames: &[&[u8]],
        now: u64,
        fates: &mut [Fate],
    ) {
        let n = frames.len().min(BURST).min(fates.len());
        // Pass 1: parse, key, hash, prefetch the bucket.
        let mut rx_bytes = 0u64;
        for f in frames.iter().take(n.min(DATA_PREFETCH_DISTANCE)) {
            if let Some(b) = f.first() {
                bulkhead_prefetch::prefetch_read(b);
            }
        }
        for i in 0..n {
            if let Some(b) = frames
                .get(i + DATA_PREFETCH_DISTANCE)
                .and_then(|f| f.first())
            {
                bulkhead_prefetch::prefetch_read(b);
            }
            let frame = frames[i];
            rx_bytes += frame.len() as u64;
            fates[i] = Fate::Forward;
            self.stage[i] = Stage::Done;
            self.keys[i] = ConnKey::default();
            self.hashes[i] = 0;
            match parse(frame, &self.parse_cfg) {
                Parsed::Ip(p) => {
                    if p.fragment == bulkhead_packet::Fragment::NonFirst && !self.cfg.pass_fragments
                    {
                        fates[i] = Fate::Engine(EngineDrop::Fragment);
                        continue;
                    }
                    if p.fragment == bulkhead_packet::Fragment::NonFirst {
                        continue; // configured to pass untracked
                    }
                    let tuple = match p.icmp_error {
                        Some(q) => {
                            self.stage[i] = Stage::IcmpError(p);
                            q.tuple
                        }
                        None => {
                            self.stage[i] = Stage::Lookup(p);
                            p.tuple
                        }
                    };
                    let (key, ks) = conn_key(p.vlan, &tuple);
                    self.keys[i] = key;
                    self.key_side[i] = ks;
                    self.hashes[i] = self.ct.hash(&key);
                    self.ct.prefetch(self.hashes[i]);
                }
                Parsed::Arp | Parsed::NeighborDiscovery(_) => {
                    self.counters.add(slot::PASSED_L2, 1);
                }
                Parsed::NonIp { .. } => {
                    if !self.cfg.pass_non_ip {
                        fates[i] = Fate::Engine(EngineDrop::NonIp);
                    }
                }
                Parsed::Drop(r) => fates[i] = Fate::Parse(r),
            }
        }
        self.counters.add(slot::RX_PKTS + side.index(), n as u64);
        self.counters.add(slot::RX_BYTES + side.index(), rx_bytes);
        // Pass 2: look the whole burst up (buckets and candidate entries
        // prefetched ahead inside the table), then decide packet by packet.
        // Frames that need no lookup carry a zero key: a cheap miss.
        self.ct
            .lookup_burst(&self.keys[..n], &self.hashes[..n], &mut self.found[..n]);
        self.changed = false;
        for i in 0..n {
            let fate = match self.stage[i] {
                Stage::Done => fates[i],
                Stage::Lookup(p) => self.tracked(snap, side, i, &p, frames[i].len() as u32, now),
                Stage::IcmpError(p) => self.icmp_error(snap, i, &p, now),
            };
            fates[i] = fate;
            self.counters.drop(fate);
        }
        self.counters.conns = self.ct.len() as u64;
    }

    /// The table entry for packet `i`'s key: the batch result, unless a slow
    /// path inserted or removed earlier in this burst.
    #[inline]
    fn looked_up(&self, i: usize) -> Option<EntryId> {
        if self.changed {
            self.ct.lookup(&self.keys[i], self.hashes[i])
        } else {
            self.found[i]
        }
    }

    /// `(expired, judged under the current generation)` of an entry; a stale
    /// handle counts as expired.
    #[inline]
    fn status(&self, id: EntryId, snap: &PolicySnapshot, now: u64) -> (bool, bool) {
        match self.ct.entry(id) {
            Some(e) => (
                self.ct.is_expired(e, now),
                e.generation() == snap.generation,
            ),
            None => (true, false),
        }
    }

    /// A packet to match against the connection table.
    #[inline]
    fn tracked(
        &mut self,
        snap: &PolicySnapshot,
        side: Side,
        i: usize,
        p: &IpPacket,
        len: u32,
        now: u64,
    ) -> Fate {
        let Some(id) = self.looked_up(i) else {
            return self.new_connection(snap, side, i, p, len, now);
        };
        // One look at the entry: direction, liveness and generation.
        let Some((dir, expired, current)) = self.ct.entry(id).map(|e| {
            (
                e.dir(self.key_side[i]),
                self.ct.is_expired(e, now),
                e.generation() == snap.generation,
            )
        }) else {
            return self.new_connection(snap, side, i, p, len, now);
        };
        if expired {
            // Dead already (the expiry walk has not reached it): a new connection.
            self.close(snap, id, EventKind::Closed, now);
            return self.new_connection(snap, side, i, p, len, now);
        }
        if !current {
            if let Some(fate) = self.rejudge(snap, id, p.vlan, now) {
                return fate;
            }
        }
        match self.ct.track(id, dir, p.tcp_flags, len, now) {
            Track::Accept => Fate::Forward,
            Track::Invalid => Fate::Engine(EngineDrop::Invalid),
            Track::Stale => {
                self.close(snap, id, EventKind::Closed, now);
                self.new_connection(snap, side, i, p, len, now)
            }
        }
    }

    /// The first packet of a connection: place, judge, track.
    #[cold]
    #[inline(never)]
    fn new_connection(
        &mut self,
        snap: &PolicySnapshot,
        side: Side,
        i: usize,
        p: &IpPacket,
        len: u32,
        now: u64,
    ) -> Fate {
        let t = &p.tuple;
        let policy = &snap.policy;
        let src = match place_src(snap, p.vlan, t.src) {
            Ok(s) => s,
            Err(PlaceError::Spoofed) => return Fate::Engine(EngineDrop::Spoofed),
        };
        if t.proto == PROTO_TCP && !tcp_may_open(p.tcp_flags) {
            return Fate::Engine(EngineDrop::Invalid);
        }
        let dst = place_dst(snap, t.dst);
        let d = policy.decide(&FlowQuery {
            src,
            dst,
            proto: t.proto,
            port: t.svc,
        });
        let rule = match d.rule {
            RuleRef::Rule(r) => r,
            RuleRef::Default => RULE_DEFAULT,
        };
        snap.count_rule(rule);
        let src_id = policy.segment_id(src).0;
        let dst_id = policy.segment_id(dst).0;
        let mut ev = FlowEvent {
            kind: EventKind::Allowed,
            time_ns: now,
            worker: self.cfg.worker,
            generation: snap.generation,
            rule,
            logged: d.log,
            monitor: d.monitor,
            src_segment: src_id,
            dst_segment: dst_id,
            tuple: *t,
            side: Some(side),
            packets: [1, 0],
            bytes: [u64::from(len), 0],
            duration_ns: 0,
        };
        if d.action == Action::Deny {
            self.counters.add(slot::NEW_DENIED, 1);
            ev.kind = EventKind::Denied;
            self.emit(ev);
            return Fate::Engine(EngineDrop::PolicyDeny);
        }
        let mut flags = ConnFlags::NONE;
        if d.log {
            flags = ConnFlags(flags.0 | ConnFlags::LOG.0);
        }
        if d.monitor {
            flags = ConnFlags(flags.0 | ConnFlags::MONITOR.0);
        }
        let new = NewConn {
            initiator: self.key_side[i],
            generation: snap.generation,
            rule,
            flags,
            bytes: len,
            svc: t.svc,
        };
        let key = self.keys[i];
        let hash = self.hashes[i];
        let mut evicted: Option<Entry> = None;
        self.changed = true;
        let res = self.ct.insert(&key, hash, now, new, |e| evicted = Some(*e));
        if let Some(e) = evicted {
            self.counters.add(slot::CONN_EXPIRED, 1);
            let ev = closed_event(snap, &e, EventKind::Closed, now, self.cfg.worker);
            self.emit(ev);
        }
        match res {
            Ok(_) => {}
            Err(InsertError::Full) => return Fate::Engine(EngineDrop::TableFull),
            Err(InsertError::Exists(_)) => return Fate::Engine(EngineDrop::Invalid),
        }
        if d.monitor {
            self.counters.add(slot::NEW_MONITORED, 1);
            ev.kind = EventKind::WouldDeny;
        } else {
            self.counters.add(slot::NEW_ALLOWED, 1);
        }
        self.emit(ev);
        Fate::Forward
    }

    /// A tracked connection judged under an older policy generation: judge it
    /// again as its initiator opened it. `None` when it may continue.
    #[cold]
    #[inline(never)]
    fn rejudge(
        &mut self,
        snap: &PolicySnapshot,
        id: EntryId,
        vlan: Option<u16>,
        now: u64,
    ) -> Option<Fate> {
        let e = *self.ct.entry(id)?;
        let key = e.key();
        let init = key.endpoint(e.initiator());
        let resp = key.endpoint(e.initiator().other());
        let policy = &snap.policy;
        let src = initiator_segment(snap, vlan, init.addr);
        let dst = place_dst(snap, resp.addr);
        let proto = key.proto();
        let d = policy.decide(&FlowQuery {
            src,
            dst,
            proto,
            port: e.svc(),
        });
        self.counters.add(slot::REJUDGED, 1);
        let rule = match d.rule {
            RuleRef::Rule(r) => r,
            RuleRef::Default => RULE_DEFAULT,
        };
        if d.action == Action::Deny {
            self.close(snap, id, EventKind::Revoked, now);
            return Some(Fate::Engine(EngineDrop::Revoked));
        }
        let mut flags = ConnFlags::NONE;
        if d.log {
            flags = ConnFlags(flags.0 | ConnFlags::LOG.0);
        }
        if d.monitor {
            flags = ConnFlags(flags.0 | ConnFlags::MONITOR.0);
        }
        self.ct.set_judgement(id, snap.generation, rule, flags);
        None
    }

    /// An ICMP error: related to a tracked connection passes; otherwise the
    /// rules judge it like a new flow (never tracked). Related means: it goes
    /// back to the sender of the packet it quotes, it is not a redirect, and
    /// the quoted connection is live and allowed under the current policy.
    #[cold]
    #[inline(never)]
    fn icmp_error(&mut self, snap: &PolicySnapshot, i: usize, p: &IpPacket, now: u64) -> Fate {
        let t = &p.tuple;
        let back_to_sender = p.icmp_error.is_some_and(|q| q.tuple.src == t.dst);
        let redirect = t.proto == ICMP && t.svc == ICMP_REDIRECT;
        if back_to_sender && !redirect {
            if let Some(id) = self.looked_up(i) {
                let (expired, current) = self.status(id, snap, now);
                if !expired {
                    if current {
                        return Fate::Forward;
                    }
                    return match self.rejudge(snap, id, p.vlan, now) {
                        None => Fate::Forward,
                        Some(fate) => fate,
                    };
                }
            }
        }
        let Ok(src) = place_src(snap, p.vlan, t.src) else {
            return Fate::Engine(EngineDrop::Spoofed);
        };
        let dst = place_dst(snap, t.dst);
        let d = snap.policy.decide(&FlowQuery {
            src,
            dst,
            proto: t.proto,
            port: t.svc,
        });
        if d.action == Action::Allow {
            Fate::Forward
        } else {
            Fate::Engine(EngineDrop::IcmpUnrelated)
        }
    }

    /// Remove a connection and report it.
    #[cold]
    fn close(&mut self, snap: &PolicySnapshot, id: EntryId, kind: EventKind, now: u64) {
        self.changed = true;
        if let Some(e) = self.ct.remove(id) {
            self.counters.add(slot::CONN_CLOSED, 1);
            let ev = closed_event(snap, &e, kind, now, self.cfg.worker);
            self.emit(ev);
        }
    }

    /// Expire idle connections, examining at most `max_slots` table slots.
    pub fn expire(&mut self, snap: &PolicySnapshot, now: u64, max_slots: usize) {
        let Pipeline {
            ct,
            counters,
            events,
            cfg,
            ..
        } = self;
        let removed = ct.expire_slice(now, max_slots, |e| {
            report_closed(snap, e, now, cfg, events, counters);
        });
        counters.add(slot::CONN_EXPIRED, removed as u64);
        counters.conns = ct.len() as u64;
    }

    /// Remove every tracked connection (each reported as closed).
    pub fn flush(&mut self, snap: &PolicySnapshot, now: u64) {
        let Pipeline {
            ct,
            counters,
            events,
            cfg,
            ..
        } = self;
        ct.flush(|e| report_closed(snap, e, now, cfg, events, counters));
        counters.conns = ct.len() as u64;
    }

    #[inline]
    fn emit(&mut self, ev: FlowEvent) {
        if wants(self.cfg.event_mode, &ev) && self.events.push(ev).is_err() {
            self.counters.add(slot::EVENTS_DROPPED, 1);
        }
    }
}

/// Queue the "closed" event of an entry leaving the table (expiry, flush).
fn report_closed(
    snap: &PolicySnapshot,
    e: &Entry,
    now: u64,
    cfg: &PipelineConfig,
    events: &ArrayQueue<FlowEvent>,
    counters: &mut LocalCounters,
) {
    let ev = closed_event(snap, e, EventKind::Closed, now, cfg.worker);
    if wants(cfg.event_mode, &ev) && events.push(ev).is_err() {
        counters.add(slot::EVENTS_DROPPED, 1);
    }
}

/// Does the event mode ask for this event?
#[inline]
fn wants(mode: EventMode, ev: &FlowEvent) -> bool {
    match mode {
        EventMode::All => true,
        EventMode::Off => false,
        EventMode::Logged => match ev.kind {
            EventKind::Denied | EventKind::WouldDeny | EventKind::Revoked => true,
            EventKind::Allowed | EventKind::Closed => ev.logged || ev.monitor,
        },
    }
}

/// A per-worker hash seed, so tuples cannot be chosen to collide on every appliance.
fn seed(worker: u16) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    t ^ (u64::from(worker) << 48) ^ u64::from(std::process::id()).rotate_left(17)
}

#[inline]
fn place_dst(snap: &PolicySnapshot, a: Addr) -> SegIdx {
    match addr_to_v4(a) {
        Some(v4) => snap.policy.place_dst_v4(v4),
        None => snap.policy.place_dst_v6(a),
    }
}

#[inline]
fn place_src(snap: &PolicySnapshot, vlan: Option<u16>, a: Addr) -> Result<SegIdx, PlaceError> {
    match addr_to_v4(a) {
        Some(v4) => snap.policy.place_src_v4(vlan, v4),
        None => snap.policy.place_src_v6(vlan, a),
    }
}

/// The connection key of a flow seen in a frame with `vlan`: both endpoint
/// "segment" fields hold the frame's VLAN domain (VLAN ID + 1, 0 untagged).
/// See the module docs for why this, not the placed segments, is the key.
#[inline]
fn conn_key(vlan: Option<u16>, t: &FlowTuple) -> (ConnKey, bulkhead_conntrack::Side) {
    let domain = vlan.map_or(0, |v| u32::from(v) + 1);
    ConnKey::new(
        Endpoint {
            seg: domain,
            addr: t.src,
            port: t.sport,
        },
        Endpoint {
            seg: domain,
            addr: t.dst,
            port: t.dport,
        },
        t.proto,
    )
}

/// The VLAN of a key's domain (see [`conn_key`]).
#[inline]
fn domain_vlan(domain: u32) -> Option<u16> {
    domain.checked_sub(1).and_then(|v| u16::try_from(v).ok())
}

/// Segment of a connection's initiator under `snap`, as the rules place a
/// source: the VLAN's segment if listed, else the longest prefix.
fn initiator_segment(snap: &PolicySnapshot, vlan: Option<u16>, addr: Addr) -> SegIdx {
    match vlan.and_then(|v| snap.policy.vlan_segment(v)) {
        Some(s) => s,
        None => place_dst(snap, addr),
    }
}

/// The "closed" (or "revoked") event of a connection entry.
fn closed_event(
    snap: &PolicySnapshot,
    e: &Entry,
    kind: EventKind,
    now: u64,
    worker: u16,
) -> FlowEvent {
    let key = e.key();
    let init = key.endpoint(e.initiator());
    let resp = key.endpoint(e.initiator().other());
    let proto = key.proto();
    let src_seg = snap
        .policy
        .segment_id(initiator_segment(snap, domain_vlan(init.seg), init.addr))
        .0;
    let dst_seg = snap.policy.segment_id(place_dst(snap, resp.addr)).0;
    FlowEvent {
        kind,
        time_ns: now,
        worker,
        generation: e.generation(),
        rule: e.rule(),
        logged: e.flags().contains(ConnFlags::LOG),
        monitor: e.flags().contains(ConnFlags::MONITOR),
        src_segment: src_seg,
        dst_segment: dst_seg,
        tuple: FlowTuple {
            src: init.addr,
            dst: resp.addr,
            sport: init.port,
            dport: resp.port,
            proto,
            v6: addr_to_v4(init.addr).is_none(),
            svc: e.svc(),
        },
        side: None,
        packets: [e.packets(Dir::Original), e.packets(Dir::Reply)],
        bytes: [e.bytes(Dir::Original), e.bytes(Dir::Reply)],
        // Closed entries left idle: their life ended at the last packet.
        duration_ns: match kind {
            EventKind::Closed => e.duration_ns(),
            _ => now.saturating_sub(e.created()),
        },
    }
}

impl PolicySnapshot {
    /// Count a new connection decided by `rule` ([`RULE_DEFAULT`] for the default).
    #[inline]
    pub fn count_rule(&self, rule: u32) {
        let i = if rule == RULE_DEFAULT {
            self.rule_hits.len().saturating_sub(1)
        } else {
            rule as usize
        };
        if let Some(c) = self.rule_hits.get(i) {
            c.fetch_add(1, Relaxed);
        }
    }
}

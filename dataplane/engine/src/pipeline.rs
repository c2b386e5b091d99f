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
//! Connection keys hold the addresses, ports, protocol, the request type of
//! an ICMP query pair, and the frame's VLAN domain (outer and inner tag, see
//! [`vlan_domain`]) in place of segments. A virtual wire passes frames
//! unchanged, so both directions carry the same tags; the tags and an
//! address determine that address's segment under any policy (VLAN segment
//! if listed, else longest prefix), so equal addresses in different segments
//! never share a key. Unlike placed segments, the domain does not change
//! when a new policy moves an address to another segment: the connection is
//! then found and judged again under the new placement, kept if allowed and
//! cut if denied. Rules judge with the spec's placement (source: VLAN, else
//! prefix, with anti-spoofing; destination: prefix); a QinQ frame is placed
//! by address only (a segment's `vlans` are single tags). Anti-spoofing
//! applies to packets that open connections and to the addresses ARP and
//! neighbour discovery announce; later packets must match a tracked
//! connection exactly.

use std::sync::Arc;

use bulkhead_classify::{Action, FlowQuery, PlaceError, RuleRef, SegIdx, ZoneMask};
use bulkhead_conntrack::{
    domain_vlans, tcp_may_open, vlan_domain, ConnFlags, ConnKey, ConnTable, Dir, Endpoint, Entry,
    EntryId, InsertError, KeySide, NewConn, Quotas, Segment, TableConfig, Timeouts, Track,
};
use bulkhead_packet::flow::{addr_to_v4, Addr, FlowTuple};
use bulkhead_packet::{
    icmp_query, parse, tcp_seq, Arp, Fragment, IcmpClass, IpPacket, ParseConfig, Parsed,
};
use crossbeam::queue::ArrayQueue;

use crate::events::{EventKind, EventMode, FlowEvent, RULE_DEFAULT};
use crate::fold::{DenyFolder, FoldConfig, FoldVerdict};
use crate::fragments::{DatagramKey, Fragments, Later, Release};
use crate::handoff::FragmentVerdict;
use crate::handover::PolicySnapshot;
use crate::stats::{slot, EngineDrop, Fate, LocalCounters};
use crate::zones::{Ingress, ZoneConfig};
use crate::BURST;

/// Frames ahead whose first cache line is prefetched while parsing: hides the
/// DRAM/LLC latency of packet data (a NIC writes it by DMA, so the first
/// touch misses) behind the parsing of the frames in between. Tuned with
/// `benches/benches/pipeline.rs`.
const DATA_PREFETCH_DISTANCE: usize = 4;

const ICMP: u8 = 1;
/// ICMP redirect: changes a host's routing, never accepted as "related".
const ICMP_REDIRECT: u16 = 5;
/// ICMPv6 router advertisement (RA guard).
const ND_ROUTER_ADVERTISEMENT: u16 = 134;
/// ICMPv6 neighbour advertisement (announces its target address).
const ND_NEIGHBOR_ADVERTISEMENT: u16 = 136;

const PROTO_TCP: u8 = 6;

/// Pipeline settings.
#[derive(Debug, Clone, Copy)]
pub struct PipelineConfig {
    pub worker: u16,
    pub pass_non_ip: bool,
    /// Forward later fragments without their first fragment's verdict
    /// (default off: virtual reassembly, see [`crate::fragments`]).
    pub pass_fragments: bool,
    pub event_mode: EventMode,
    /// Most connections tracked at once by this worker.
    pub conntrack_capacity: usize,
    pub timeouts: Timeouts,
    /// Tracked connections per source address and per source segment.
    pub quotas: Quotas,
    /// Folding and rate limit of denial events.
    pub fold: FoldConfig,
    /// Seed of the connection table's hash (give each worker a random one).
    pub hash_seed: u64,
    /// Workers of the engine (packets may be handed to the others).
    pub workers: u16,
    /// Check TCP sequence windows (refuses blind RST and data injection).
    pub track_windows: bool,
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
    /// An ICMP informational message outside the query pairs: judged by
    /// the rules per packet, never tracked.
    Untracked(IpPacket),
    /// A non-first fragment: follows its datagram's first fragment.
    LaterFragment(IpPacket),
}

/// One worker's packet path and the state it owns.
#[derive(Debug)]
pub struct Pipeline {
    cfg: PipelineConfig,
    parse_cfg: ParseConfig,
    ct: ConnTable,
    counters: LocalCounters,
    events: Arc<ArrayQueue<FlowEvent>>,
    zones: Arc<ZoneConfig>,
    folder: DenyFolder,
    fragments: Fragments,
    /// Workers the packets of the current burst may still be handed to.
    hops_left: u8,
    /// The worker that received the current burst from the device.
    origin: u16,
    /// First-fragment verdicts for the workers holding their datagrams.
    verdicts_out: Vec<(u16, FragmentVerdict)>,
    stage: [Stage; BURST],
    keys: [ConnKey; BURST],
    /// Which side of the key the packet's source is.
    key_side: [KeySide; BURST],
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
        zones: Arc<ZoneConfig>,
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
            hash_seed: cfg.hash_seed,
            quotas: cfg.quotas,
            track_windows: cfg.track_windows,
        };
        let ct = ConnTable::new(&table).map_err(|e| PipelineError::Table(e.to_string()))?;
        Ok(Pipeline {
            folder: DenyFolder::new(cfg.fold, cfg.hash_seed.rotate_left(23)),
            fragments: Fragments::new(cfg.hash_seed.rotate_left(41)),
            hops_left: 0,
            origin: cfg.worker,
            verdicts_out: Vec::with_capacity(BURST),
            cfg,
            parse_cfg: ParseConfig::default(),
            ct,
            counters: LocalCounters::default(),
            events,
            zones,
            stage: [Stage::Done; BURST],
            keys: [ConnKey::default(); BURST],
            key_side: [KeySide::A; BURST],
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

    /// Run one burst of frames that entered at `ingress` (a wire side).
    /// `fates[i]` receives the fate of `frames[i]`; at most [`BURST`] frames.
    pub fn process_burst(
        &mut self,
        snap: &PolicySnapshot,
        ingress: impl Into<Ingress>,
        frames: &[&[u8]],
        now: u64,
        fates: &mut [Fate],
    ) {
        self.hops_left = u8::try_from(self.cfg.workers.saturating_sub(1)).unwrap_or(u8::MAX);
        self.origin = self.cfg.worker;
        self.run_burst(snap, ingress.into(), frames, now, fates, true);
    }

    /// Run one packet another worker handed over (see [`crate::handoff`]):
    /// `hops_left` further workers may still be asked, `origin` received it.
    #[cold]
    pub fn process_handed(
        &mut self,
        snap: &PolicySnapshot,
        ingress: Ingress,
        frame: &[u8],
        now: u64,
        hops_left: u8,
        origin: u16,
    ) -> Fate {
        self.hops_left = hops_left;
        self.origin = origin;
        let mut fate = [Fate::Forward];
        // Counted as received by the worker that received it.
        self.run_burst(snap, ingress, &[frame], now, &mut fate, false);
        fate[0]
    }

    /// Workers a packet handed on from the current burst may still visit
    /// after the next one.
    pub fn next_hops_left(&self) -> u8 {
        self.hops_left.saturating_sub(1)
    }

    /// The worker that received the current burst from the device.
    pub fn origin(&self) -> u16 {
        self.origin
    }

    /// Hand every first-fragment verdict owed to another worker to `f`.
    pub fn take_verdicts(&mut self, mut f: impl FnMut(u16, FragmentVerdict)) {
        for (to, v) in self.verdicts_out.drain(..) {
            f(to, v);
        }
    }

    /// A first fragment's verdict from the worker that judged it.
    pub fn apply_verdict(&mut self, v: FragmentVerdict, now: u64) {
        self.fragments.first(v.key, now, v.forward, v.first_len);
    }

    fn run_burst(
        &mut self,
        snap: &PolicySnapshot,
        ingress: Ingress,
        frames: &[&[u8]],
        now: u64,
        fates: &mut [Fate],
        count_rx: bool,
    ) {
        let side = ingress.side;
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
                    if p.fragment == Fragment::NonFirst {
                        if !self.cfg.pass_fragments {
                            self.stage[i] = Stage::LaterFragment(p);
                        }
                        continue;
                    }
                    let (tuple, icmp_type) = match (p.icmp_error, p.icmp) {
                        (Some(q), _) => {
                            self.stage[i] = Stage::IcmpError(p);
                            (q.tuple, quoted_icmp_type(&q.tuple))
                        }
                        (None, IcmpClass::Informational) => {
                            self.stage[i] = Stage::Untracked(p);
                            continue;
                        }
                        (None, IcmpClass::Query(q)) => {
                            self.stage[i] = Stage::Lookup(p);
                            (p.tuple, q.request_type)
                        }
                        (None, _) => {
                            self.stage[i] = Stage::Lookup(p);
                            (p.tuple, 0)
                        }
                    };
                    let domain = vlan_domain(p.outer_vlan, p.vlan);
                    let (key, ks) = conn_key(domain, &tuple, icmp_type);
                    self.keys[i] = key;
                    self.key_side[i] = ks;
                    self.hashes[i] = self.ct.hash(&key);
                    self.ct.prefetch(self.hashes[i]);
                }
                Parsed::Arp(a) => fates[i] = self.arp(snap, ingress, &a),
                Parsed::NeighborDiscovery(p) => fates[i] = self.nd(snap, ingress, frame, &p),
                Parsed::NonIp { .. } => {
                    if !self.cfg.pass_non_ip {
                        fates[i] = Fate::Engine(EngineDrop::NonIp);
                    }
                }
                Parsed::Drop(r) => fates[i] = Fate::Parse(r),
            }
        }
        if count_rx {
            self.counters.add(slot::RX_PKTS + side.index(), n as u64);
            self.counters.add(slot::RX_BYTES + side.index(), rx_bytes);
        }
        // Pass 2: look the whole burst up (buckets and candidate entries
        // prefetched ahead inside the table), then decide packet by packet.
        // Frames that need no lookup carry a zero key: a cheap miss.
        self.ct
            .lookup_burst(&self.keys[..n], &self.hashes[..n], &mut self.found[..n]);
        self.changed = false;
        for i in 0..n {
            let fate = match self.stage[i] {
                Stage::Done => fates[i],
                Stage::Lookup(p) => {
                    let fate = self.tracked(snap, ingress, i, &p, frames[i], now);
                    if p.fragment == Fragment::First && fate != Fate::HandOff {
                        self.first_fragment(&p, fate, now);
                    }
                    fate
                }
                Stage::LaterFragment(p) => self.later_fragment(&p, now),
                Stage::IcmpError(p) => self.icmp_error(snap, ingress, i, &p, now),
                Stage::Untracked(p) => {
                    self.untracked(snap, ingress, &p, frames[i].len() as u32, now)
                }
            };
            fates[i] = fate;
            self.counters.drop(fate);
        }
        self.counters.conns = self.ct.len() as u64;
    }

    /// A first fragment was judged: its datagram's later fragments follow.
    #[cold]
    fn first_fragment(&mut self, p: &IpPacket, fate: Fate, now: u64) {
        let payload = u32::from(p.ip_len) - (u32::from(p.l4_offset) - u32::from(p.l3_offset));
        let key = datagram_key(p);
        let forward = fate == Fate::Forward;
        self.fragments.first(key, now, forward, payload);
        if self.origin != self.cfg.worker && self.verdicts_out.len() < self.verdicts_out.capacity()
        {
            let v = FragmentVerdict {
                key,
                forward,
                first_len: payload,
            };
            self.verdicts_out.push((self.origin, v));
        }
    }

    /// A later fragment: its datagram's verdict, or held for it.
    #[cold]
    #[inline(never)]
    fn later_fragment(&mut self, p: &IpPacket, now: u64) -> Fate {
        let payload = u32::from(p.ip_len) - (u32::from(p.l4_offset) - u32::from(p.l3_offset));
        let offset = u32::from(p.frag.offset) * 8;
        match self
            .fragments
            .later(datagram_key(p), offset, payload, p.frag.more, now)
        {
            Later::Forward => Fate::Forward,
            Later::Drop => Fate::Engine(EngineDrop::Fragment),
            Later::Overlap => Fate::Engine(EngineDrop::FragmentOverlap),
            Later::Hold(slot) => Fate::Held(slot),
            Later::NoRoom => Fate::Engine(EngineDrop::FragmentTimeout),
        }
    }

    /// Release held fragments past their deadline, and hand every decided
    /// hold slot to `f` with its fate (forward, or the drop it was counted
    /// as). Call between bursts.
    pub fn release_fragments(&mut self, now: u64, mut f: impl FnMut(u16, Fate)) {
        self.fragments.expire(now);
        let counters = &mut self.counters;
        self.fragments.take_released(|slot, r| {
            let fate = match r {
                Release::Forward => Fate::Forward,
                Release::Drop => Fate::Engine(EngineDrop::Fragment),
                Release::Timeout => Fate::Engine(EngineDrop::FragmentTimeout),
            };
            counters.drop(fate);
            f(slot, fate);
        });
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
            Some(e) => (self.ct.is_expired(e, now), e.judged_under(snap.generation)),
            None => (true, false),
        }
    }

    /// A packet to match against the connection table.
    #[inline]
    fn tracked(
        &mut self,
        snap: &PolicySnapshot,
        ingress: Ingress,
        i: usize,
        p: &IpPacket,
        frame: &[u8],
        now: u64,
    ) -> Fate {
        let len = frame.len() as u32;
        let Some(id) = self.looked_up(i) else {
            // A first fragment hashed by addresses only: its connection may
            // be another worker's.
            if p.fragment == Fragment::First && self.hops_left > 0 {
                return Fate::HandOff;
            }
            return self.new_connection(snap, ingress, i, p, frame, now);
        };
        // One look at the entry: direction, liveness and generation.
        let Some((dir, expired, current)) = self.ct.entry(id).map(|e| {
            (
                e.dir(self.key_side[i]),
                self.ct.is_expired(e, now),
                e.judged_under(snap.generation),
            )
        }) else {
            return self.new_connection(snap, ingress, i, p, frame, now);
        };
        if expired {
            // Dead already (the expiry walk has not reached it): a new connection.
            self.close(snap, id, EventKind::Closed, now);
            return self.new_connection(snap, ingress, i, p, frame, now);
        }
        if let IcmpClass::Query(q) = p.icmp {
            // Only the initiator asks, only the responder answers.
            if q.is_request != (dir == Dir::Original) {
                return Fate::Engine(EngineDrop::Invalid);
            }
        }
        if !current {
            if let Some(fate) = self.rejudge(snap, id, now) {
                return fate;
            }
        }
        let track = if p.tuple.proto == PROTO_TCP && self.ct.tracks_windows() {
            match segment(frame, p) {
                Some(seg) => self.ct.track_tcp(id, dir, &seg, len, now),
                None => Track::Invalid,
            }
        } else {
            self.ct.track(id, dir, p.tcp_flags, len, now)
        };
        match track {
            Track::Accept => Fate::Forward,
            Track::Invalid => Fate::Engine(EngineDrop::Invalid),
            Track::OutOfWindow => Fate::Engine(EngineDrop::OutOfWindow),
            Track::Stale => {
                self.close(snap, id, EventKind::Closed, now);
                self.new_connection(snap, ingress, i, p, frame, now)
            }
        }
    }

    /// The first packet of a connection: place, judge, track.
    #[cold]
    #[inline(never)]
    fn new_connection(
        &mut self,
        snap: &PolicySnapshot,
        ingress: Ingress,
        i: usize,
        p: &IpPacket,
        frame: &[u8],
        now: u64,
    ) -> Fate {
        let len = frame.len() as u32;
        let t = &p.tuple;
        let policy = &snap.policy;
        let zone = self.ingress_zone(snap, ingress, p.outer_vlan, p.vlan);
        let src = match place_src(snap, placement_vlan(p.outer_vlan, p.vlan), t.src, zone) {
            Ok(s) => s,
            Err(PlaceError::Spoofed) => return Fate::Engine(EngineDrop::Spoofed),
        };
        if t.proto == PROTO_TCP && !tcp_may_open(p.tcp_flags) {
            return Fate::Engine(EngineDrop::Invalid);
        }
        // A reply that answers no tracked request.
        if matches!(p.icmp, IcmpClass::Query(q) if !q.is_request) {
            return Fate::Engine(EngineDrop::Invalid);
        }
        let dst = place_dst(snap, t.dst);
        let d = policy.decide(&FlowQuery {
            src,
            dst,
            proto: t.proto,
            port: t.svc,
        });
        let rule = rule_index(d.rule);
        snap.count_rule(self.cfg.worker, rule);
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
            side: Some(ingress.side),
            packets: [1, 0],
            bytes: [u64::from(len), 0],
            duration_ns: 0,
            repeats: 0,
        };
        if d.action == Action::Deny {
            self.counters.add(slot::NEW_DENIED, 1);
            ev.kind = EventKind::Denied;
            self.emit_denied(ev);
            return Fate::Engine(EngineDrop::PolicyDeny);
        }
        let new = NewConn {
            initiator: self.key_side[i],
            src_segment: src_id,
            generation: snap.generation,
            rule,
            flags: verdict_flags(d.log, d.monitor),
            bytes: len,
            svc: t.svc,
        };
        let key = self.keys[i];
        let hash = self.hashes[i];
        let mut evicted: Option<Entry> = None;
        self.changed = true;
        let before = self.ct.counters();
        let res = self.ct.insert(&key, hash, now, new, |e| evicted = Some(*e));
        if let Some(e) = evicted {
            let early = self.ct.counters().evicted_unreplied > before.evicted_unreplied;
            let slot = if early {
                slot::CONN_EVICTED
            } else {
                slot::CONN_EXPIRED
            };
            self.counters.add(slot, 1);
            let ev = closed_event(snap, &e, EventKind::Closed, now, self.cfg.worker);
            self.emit(ev);
        }
        match res {
            Ok(id) => {
                if t.proto == PROTO_TCP && self.ct.tracks_windows() {
                    if let Some(seg) = segment(frame, p) {
                        self.ct.open_window(id, &seg);
                    }
                }
            }
            Err(InsertError::Full) => return Fate::Engine(EngineDrop::TableFull),
            Err(InsertError::SourceQuota) => return Fate::Engine(EngineDrop::SourceQuota),
            Err(InsertError::SegmentQuota) => return Fate::Engine(EngineDrop::SegmentQuota),
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

    /// An ICMP informational message outside the query pairs (router
    /// solicitation, multicast listener messages, redirects, ...): the rules
    /// judge each one; nothing is tracked, so nothing passes back unasked.
    #[cold]
    #[inline(never)]
    fn untracked(
        &mut self,
        snap: &PolicySnapshot,
        ingress: Ingress,
        p: &IpPacket,
        len: u32,
        now: u64,
    ) -> Fate {
        let t = &p.tuple;
        let zone = self.ingress_zone(snap, ingress, p.outer_vlan, p.vlan);
        let Ok(src) = place_src(snap, placement_vlan(p.outer_vlan, p.vlan), t.src, zone) else {
            return Fate::Engine(EngineDrop::Spoofed);
        };
        let dst = place_dst(snap, t.dst);
        let d = snap.policy.decide(&FlowQuery {
            src,
            dst,
            proto: t.proto,
            port: t.svc,
        });
        if d.action == Action::Allow || d.monitor {
            return Fate::Forward;
        }
        self.counters.add(slot::NEW_DENIED, 1);
        let ev = FlowEvent {
            kind: EventKind::Denied,
            time_ns: now,
            worker: self.cfg.worker,
            generation: snap.generation,
            rule: rule_index(d.rule),
            logged: d.log,
            monitor: false,
            src_segment: snap.policy.segment_id(src).0,
            dst_segment: snap.policy.segment_id(dst).0,
            tuple: *t,
            side: Some(ingress.side),
            packets: [1, 0],
            bytes: [u64::from(len), 0],
            duration_ns: 0,
            repeats: 0,
        };
        self.emit_denied(ev);
        Fate::Engine(EngineDrop::PolicyDeny)
    }

    /// ARP: never judged by the rules, but a host may only announce an
    /// address of its own segment (the same anti-spoofing as IP). An ARP
    /// probe (sender 0.0.0.0, RFC 5227) announces nothing.
    #[cold]
    #[inline(never)]
    fn arp(&mut self, snap: &PolicySnapshot, ingress: Ingress, a: &Arp) -> Fate {
        let vlan = placement_vlan(a.outer_vlan, a.vlan);
        let zone = self.ingress_zone(snap, ingress, a.outer_vlan, a.vlan);
        if a.sender != 0 && snap.policy.place_src_v4(vlan, a.sender, zone).is_err() {
            return Fate::Engine(EngineDrop::ArpSpoofed);
        }
        self.counters.add(slot::PASSED_L2, 1);
        Fate::Forward
    }

    /// IPv6 neighbour discovery (validated by the parser): the source and an
    /// advertisement's target pass the same anti-spoofing as IP; router
    /// advertisements pass only from router zones (RA guard, RFC 6105).
    #[cold]
    #[inline(never)]
    fn nd(&mut self, snap: &PolicySnapshot, ingress: Ingress, frame: &[u8], p: &IpPacket) -> Fate {
        let t = &p.tuple;
        if t.svc == ND_ROUTER_ADVERTISEMENT
            && !self.zones.is_router_zone(ingress, p.outer_vlan, p.vlan)
        {
            return Fate::Engine(EngineDrop::RaGuard);
        }
        let vlan = placement_vlan(p.outer_vlan, p.vlan);
        let zone = self.ingress_zone(snap, ingress, p.outer_vlan, p.vlan);
        let announces = |a: Addr| a != 0 && snap.policy.place_src_v6(vlan, a, zone).is_err();
        if announces(t.src) {
            return Fate::Engine(EngineDrop::NdSpoofed);
        }
        if t.svc == ND_NEIGHBOR_ADVERTISEMENT
            && bulkhead_packet::nd_target(frame, p).is_some_and(announces)
        {
            return Fate::Engine(EngineDrop::NdSpoofed);
        }
        self.counters.add(slot::PASSED_L2, 1);
        Fate::Forward
    }

    /// A tracked connection judged under an older policy generation: judge it
    /// again as its initiator opened it. `None` when it may continue.
    #[cold]
    #[inline(never)]
    fn rejudge(&mut self, snap: &PolicySnapshot, id: EntryId, now: u64) -> Option<Fate> {
        let e = *self.ct.entry(id)?;
        let key = e.key();
        let init = key.endpoint(e.initiator());
        let resp = key.endpoint(e.initiator().other());
        let policy = &snap.policy;
        let src = initiator_segment(snap, key.domain(), init.addr);
        let dst = place_dst(snap, resp.addr);
        let proto = key.proto();
        let d = policy.decide(&FlowQuery {
            src,
            dst,
            proto,
            port: e.svc(),
        });
        self.counters.add(slot::REJUDGED, 1);
        let rule = rule_index(d.rule);
        if d.action == Action::Deny {
            self.close(snap, id, EventKind::Revoked, now);
            return Some(Fate::Engine(EngineDrop::Revoked));
        }
        self.ct
            .set_judgement(id, snap.generation, rule, verdict_flags(d.log, d.monitor));
        None
    }

    /// An ICMP error: related to a tracked connection passes; otherwise the
    /// rules judge it like a new flow (never tracked). Related means: it goes
    /// back to the sender of the packet it quotes, it is not a redirect, and
    /// the quoted connection is live and allowed under the current policy.
    #[cold]
    #[inline(never)]
    fn icmp_error(
        &mut self,
        snap: &PolicySnapshot,
        ingress: Ingress,
        i: usize,
        p: &IpPacket,
        now: u64,
    ) -> Fate {
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
                    return match self.rejudge(snap, id, now) {
                        None => Fate::Forward,
                        Some(fate) => fate,
                    };
                }
            }
            // Hashed by its outer addresses: the connection it quotes may
            // be another worker's.
            if self.hops_left > 0 {
                return Fate::HandOff;
            }
        }
        let zone = self.ingress_zone(snap, ingress, p.outer_vlan, p.vlan);
        let Ok(src) = place_src(snap, placement_vlan(p.outer_vlan, p.vlan), t.src, zone) else {
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

    /// The zone a frame entered in, as bits of the snapshot's policy; `None`
    /// when the policy binds no segment to zones (nothing to check).
    #[inline]
    fn ingress_zone(
        &self,
        snap: &PolicySnapshot,
        ingress: Ingress,
        outer: Option<u16>,
        inner: Option<u16>,
    ) -> Option<ZoneMask> {
        if !snap.policy.has_zones() {
            return None;
        }
        Some(
            self.zones
                .zone_of(ingress, outer, inner)
                .map_or(0, |z| snap.policy.zone_mask(z)),
        )
    }

    /// A denial event, folded with its repeats and rate-limited (see [`crate::fold`]).
    #[cold]
    fn emit_denied(&mut self, mut ev: FlowEvent) {
        if !wants(self.cfg.event_mode, &ev) {
            return;
        }
        let t = &ev.tuple;
        match self
            .folder
            .denied(t.src, ev.dst_segment, t.proto, t.svc, ev.time_ns)
        {
            FoldVerdict::Report { repeats } => {
                ev.repeats = repeats;
                self.emit(ev);
            }
            FoldVerdict::Suppress => self.counters.add(slot::EVENTS_SUPPRESSED, 1),
        }
    }
}

/// The rule index an event and the counters use for a decision.
#[inline]
fn rule_index(r: RuleRef) -> u32 {
    match r {
        RuleRef::Rule(r) => r,
        RuleRef::Default => RULE_DEFAULT,
    }
}

/// The connection flags of a verdict.
#[inline]
fn verdict_flags(log: bool, monitor: bool) -> ConnFlags {
    let mut flags = ConnFlags::NONE;
    if log {
        flags = flags | ConnFlags::LOG;
    }
    if monitor {
        flags = flags | ConnFlags::MONITOR;
    }
    flags
}

/// The request type a quoted ICMP query is tracked under (0 for others).
#[inline]
fn quoted_icmp_type(t: &FlowTuple) -> u8 {
    let icmp = if t.v6 { 58 } else { ICMP };
    if t.proto != icmp {
        return 0;
    }
    u8::try_from(t.svc)
        .ok()
        .and_then(|ty| icmp_query(t.v6, ty))
        .map_or(0, |q| q.request_type)
}

/// The VLAN that places a frame in a segment: the only tag of a
/// single-tagged frame. A QinQ frame is placed by address (a segment's
/// `vlans` are single tags; its domain still keeps its connections apart).
#[inline]
fn placement_vlan(outer: Option<u16>, inner: Option<u16>) -> Option<u16> {
    if outer.is_some() {
        None
    } else {
        inner
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

#[inline]
fn place_dst(snap: &PolicySnapshot, a: Addr) -> SegIdx {
    match addr_to_v4(a) {
        Some(v4) => snap.policy.place_dst_v4(v4),
        None => snap.policy.place_dst_v6(a),
    }
}

#[inline]
fn place_src(
    snap: &PolicySnapshot,
    vlan: Option<u16>,
    a: Addr,
    zone: Option<ZoneMask>,
) -> Result<SegIdx, PlaceError> {
    match addr_to_v4(a) {
        Some(v4) => snap.policy.place_src_v4(vlan, v4, zone),
        None => snap.policy.place_src_v6(vlan, a, zone),
    }
}

/// The TCP segment of a packet, for window tracking.
#[inline]
fn segment(frame: &[u8], p: &IpPacket) -> Option<Segment> {
    let s = tcp_seq(frame, p)?;
    Some(Segment {
        flags: p.tcp_flags,
        seq: s.seq,
        ack: s.ack,
        window: s.window,
        wscale: s.wscale,
        len: s.payload,
    })
}

/// The datagram a fragment belongs to.
#[inline]
fn datagram_key(p: &IpPacket) -> DatagramKey {
    DatagramKey {
        domain: vlan_domain(p.outer_vlan, p.vlan),
        src: p.tuple.src,
        dst: p.tuple.dst,
        proto: if p.tuple.v6 { 0 } else { p.tuple.proto },
        id: p.frag.id,
    }
}

/// The connection key of a flow seen in a frame of VLAN `domain`.
#[inline]
fn conn_key(domain: u32, t: &FlowTuple, icmp_type: u8) -> (ConnKey, KeySide) {
    ConnKey::new(
        domain,
        Endpoint {
            addr: t.src,
            port: t.sport,
        },
        Endpoint {
            addr: t.dst,
            port: t.dport,
        },
        t.proto,
        icmp_type,
    )
}

/// Segment of a connection's initiator under `snap`, as the rules place a
/// source: the VLAN's segment if listed, else the longest prefix.
fn initiator_segment(snap: &PolicySnapshot, domain: u32, addr: Addr) -> SegIdx {
    let (outer, inner) = domain_vlans(domain);
    match placement_vlan(outer, inner).and_then(|v| snap.policy.vlan_segment(v)) {
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
        .segment_id(initiator_segment(snap, key.domain(), init.addr))
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
        repeats: 0,
    }
}

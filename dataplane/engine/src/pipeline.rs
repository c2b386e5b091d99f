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
//! [`wire_domain`]: the wire too) in place of segments. A virtual wire passes frames
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

use bulkhead_classify::{Action, Decision, FlowQuery, PlaceError, RuleRef, SegIdx, ZoneMask};
use bulkhead_conntrack::{
    domain_vlans, tcp_may_open, wire_domain, ConnFlags, ConnKey, ConnTable, Dir, Endpoint, Entry,
    EntryId, InsertError, KeySide, NewConn, Quotas, Segment, TableConfig, Timeouts, Track,
};
use bulkhead_packet::flow::{addr_to_v4, Addr, FlowTuple};
use bulkhead_packet::{
    icmp_query, parse_into, quoted_flow, tcp_seq, Arp, Fragment, FrameKind, IcmpClass, IpPacket,
    ParseConfig, Parsed,
};
use crossbeam::queue::ArrayQueue;

use crate::events::{EventKind, EventMode, FlowEvent, RULE_DEFAULT};
use crate::fold::{DenyFolder, FoldConfig, FoldVerdict};
use crate::fragments::{DatagramKey, Fragments, Later, Release};
use crate::handoff::FragmentVerdict;
use crate::handover::PolicySnapshot;
use crate::stats::{slot, EngineDrop, Fate, LocalCounters, Side};
use crate::trace::Tracer;
use crate::zones::{Ingress, ZoneConfig};
use crate::BURST;

mod conns;
mod frag;
mod judge;
mod l2;
mod place;
mod trace_record;

use place::*;

/// Frames ahead whose first cache line is prefetched while parsing: hides the
/// DRAM/LLC latency of packet data (a NIC writes it by DMA, so the first
/// touch misses) behind the parsing of the frames in between. Tuned with
/// `benches/benches/pipeline.rs`.
const DATA_PREFETCH_DISTANCE: usize = 4;

/// ICMP redirect: changes a host's routing, never accepted as "related".
const ICMP_REDIRECT: u16 = 5;
/// ICMPv6 router advertisement (RA guard).
const ND_ROUTER_ADVERTISEMENT: u16 = 134;
/// ICMPv6 neighbour advertisement (announces its target address).
const ND_NEIGHBOR_ADVERTISEMENT: u16 = 136;

use bulkhead_packet::proto::{ICMP, TCP as PROTO_TCP};

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
    /// An IP packet (in `pkts`) to look up under `key`.
    Lookup,
    /// An ICMP error (in `pkts`) whose quoted flow is looked up under `key`.
    IcmpError,
    /// An ICMP informational message (in `pkts`) outside the query pairs:
    /// judged by the rules per packet, never tracked.
    Untracked,
    /// A non-first fragment (in `pkts`): follows its datagram's first fragment.
    LaterFragment,
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
    /// Packet trace (see [`crate::trace`]), when the engine has one.
    tracer: Option<Arc<Tracer>>,
    stage: [Stage; BURST],
    /// The parsed IP packet of each frame of the burst (valid where
    /// `stage` says so), written in place by the parser.
    pkts: [IpPacket; BURST],
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
            tracer: None,
            cfg,
            parse_cfg: ParseConfig::default(),
            ct,
            counters: LocalCounters::default(),
            events,
            zones,
            stage: [Stage::Done; BURST],
            pkts: [IpPacket::default(); BURST],
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
            match parse_into(frame, &self.parse_cfg, &mut self.pkts[i]) {
                FrameKind::Ip => {
                    let p = &self.pkts[i];
                    if p.fragment == Fragment::NonFirst {
                        if !self.cfg.pass_fragments {
                            self.stage[i] = Stage::LaterFragment;
                        }
                        continue;
                    }
                    let domain = wire_domain(ingress.wire, p.outer_vlan, p.vlan);
                    let (key, ks) = match p.icmp {
                        IcmpClass::None => {
                            self.stage[i] = Stage::Lookup;
                            conn_key(domain, &p.tuple, 0)
                        }
                        IcmpClass::Query(q) => {
                            self.stage[i] = Stage::Lookup;
                            conn_key(domain, &p.tuple, q.request_type)
                        }
                        IcmpClass::Error => {
                            self.stage[i] = Stage::IcmpError;
                            quoted_key(frame, p, domain)
                        }
                        IcmpClass::Informational => {
                            self.stage[i] = Stage::Untracked;
                            continue;
                        }
                    };
                    self.keys[i] = key;
                    self.key_side[i] = ks;
                    self.hashes[i] = self.ct.hash(&key);
                    self.ct.prefetch(self.hashes[i]);
                }
                FrameKind::Arp(a) => fates[i] = self.arp(snap, ingress, &a),
                FrameKind::NeighborDiscovery => {
                    let p = self.pkts[i];
                    fates[i] = self.nd(snap, ingress, frame, &p);
                }
                FrameKind::NonIp { .. } => {
                    if !self.cfg.pass_non_ip {
                        fates[i] = Fate::Engine(EngineDrop::NonIp);
                    }
                }
                FrameKind::Drop(r) => fates[i] = Fate::Parse(r),
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
                Stage::Lookup => {
                    let p = self.pkts[i];
                    let fate = self.tracked(snap, ingress, i, &p, frames[i], now);
                    if p.fragment == Fragment::First && fate != Fate::HandOff {
                        self.first_fragment(&p, frames[i], ingress.wire, fate, now);
                    }
                    fate
                }
                Stage::LaterFragment => {
                    let p = self.pkts[i];
                    self.later_fragment(&p, frames[i], ingress.wire, now)
                }
                Stage::IcmpError => {
                    let p = self.pkts[i];
                    self.icmp_error(snap, ingress, i, &p, now)
                }
                Stage::Untracked => {
                    let p = self.pkts[i];
                    self.untracked(snap, ingress, &p, frames[i].len() as u32, now)
                }
            };
            fates[i] = fate;
            self.counters.drop(fate);
        }
        self.counters.conns = self.ct.len() as u64;
        if self.tracer.as_ref().is_some_and(|t| t.armed()) {
            self.trace_burst(snap, ingress, &frames[..n], &fates[..n], now);
        }
    }

    /// Record packets into `tracer` whenever it is armed.
    pub fn set_tracer(&mut self, tracer: Arc<Tracer>) {
        self.tracer = Some(tracer);
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
        let Some((dir, expired, current, init_on_b)) = self.ct.entry(id).map(|e| {
            (
                e.dir(self.key_side[i]),
                self.ct.is_expired(e, now),
                e.judged_under(snap.generation),
                e.initiator_on_b(),
            )
        }) else {
            return self.new_connection(snap, ingress, i, p, frame, now);
        };
        // The initiator's packets enter where its first did, its peer's on
        // the other side: no host elsewhere on the wire rides the entry.
        if !expired && (ingress.side == Side::B) != (init_on_b == (dir == Dir::Original)) {
            return Fate::Engine(EngineDrop::Spoofed);
        }
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

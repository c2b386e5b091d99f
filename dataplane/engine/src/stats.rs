//! Per-worker counters.
//!
//! A worker accumulates into plain integers it owns ([`LocalCounters`]) and
//! publishes them once per burst into its own cache-line-aligned
//! [`SharedCounters`] with relaxed stores (single writer, no read-modify-write,
//! no contention). Readers sum the shared copies off the hot path.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use bulkhead_packet::DropReason;

/// Which side of the virtual wire a packet entered on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// Port A of the pair (RX on A, TX on B).
    A = 0,
    /// Port B of the pair (RX on B, TX on A).
    B = 1,
}

impl Side {
    #[inline]
    pub fn peer(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Side::A => "a",
            Side::B => "b",
        }
    }
}

/// Reasons the engine itself drops a packet, beyond the parser's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EngineDrop {
    /// The rules (or the default) deny a new connection.
    PolicyDeny = 0,
    /// A TCP packet other than a SYN without a tracked connection, or a packet
    /// out of state for its connection.
    Invalid,
    /// Placed by VLAN in one segment, source address in another segment's prefix.
    Spoofed,
    /// A later fragment of a datagram whose first fragment was dropped.
    Fragment,
    /// A non-IP frame other than ARP, with `pass_non_ip` off.
    NonIp,
    /// The connection table is full and nothing could be evicted.
    TableFull,
    /// A live connection cut because a new policy generation denies it.
    Revoked,
    /// An ICMP error that quotes no tracked connection.
    IcmpUnrelated,
    /// The device did not take the packet on transmit.
    TxFull,
    /// ARP announcing an address of another segment than its VLAN's.
    ArpSpoofed,
    /// Neighbour discovery from, or advertising, an address of another
    /// segment than its VLAN's.
    NdSpoofed,
    /// A router advertisement from outside the router zones (RFC 6105).
    RaGuard,
    /// The source address has its quota of tracked connections.
    SourceQuota,
    /// The source segment has its quota of tracked connections.
    SegmentQuota,
    /// A later fragment overlapping its judged first fragment, or past the
    /// datagram's end.
    FragmentOverlap,
    /// A later fragment whose first fragment did not come in time, or that
    /// found no room to wait for it.
    FragmentTimeout,
    /// The next worker's hand-off ring was full.
    HandoffFull,
    /// A TCP segment outside its connection's sequence windows.
    OutOfWindow,
}

impl EngineDrop {
    pub const COUNT: usize = 18;
    pub const ALL: [EngineDrop; Self::COUNT] = [
        EngineDrop::PolicyDeny,
        EngineDrop::Invalid,
        EngineDrop::Spoofed,
        EngineDrop::Fragment,
        EngineDrop::NonIp,
        EngineDrop::TableFull,
        EngineDrop::Revoked,
        EngineDrop::IcmpUnrelated,
        EngineDrop::TxFull,
        EngineDrop::ArpSpoofed,
        EngineDrop::NdSpoofed,
        EngineDrop::RaGuard,
        EngineDrop::SourceQuota,
        EngineDrop::SegmentQuota,
        EngineDrop::FragmentOverlap,
        EngineDrop::FragmentTimeout,
        EngineDrop::HandoffFull,
        EngineDrop::OutOfWindow,
    ];
    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }
    pub fn as_str(self) -> &'static str {
        match self {
            EngineDrop::PolicyDeny => "policy_deny",
            EngineDrop::Invalid => "invalid",
            EngineDrop::Spoofed => "spoofed",
            EngineDrop::Fragment => "fragment",
            EngineDrop::NonIp => "non_ip",
            EngineDrop::TableFull => "table_full",
            EngineDrop::Revoked => "revoked",
            EngineDrop::IcmpUnrelated => "icmp_unrelated",
            EngineDrop::TxFull => "tx_full",
            EngineDrop::ArpSpoofed => "arp_spoofed",
            EngineDrop::NdSpoofed => "nd_spoofed",
            EngineDrop::RaGuard => "ra_guard",
            EngineDrop::SourceQuota => "source_quota",
            EngineDrop::SegmentQuota => "segment_quota",
            EngineDrop::FragmentOverlap => "fragment_overlap",
            EngineDrop::FragmentTimeout => "fragment_timeout",
            EngineDrop::HandoffFull => "handoff_full",
            EngineDrop::OutOfWindow => "out_of_window",
        }
    }
}

/// Where a packet went: forwarded, or dropped for a reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fate {
    Forward,
    Parse(DropReason),
    Engine(EngineDrop),
    /// A fragment held until its first fragment is judged: the caller keeps
    /// the frame in this hold slot until the pipeline releases it.
    Held(u16),
    /// Its connection may live on another worker: hand it to the next one
    /// (see [`crate::handoff`]).
    HandOff,
}

/// Counter slots, as indices into the flat arrays below.
pub mod slot {
    use super::*;
    /// packets received per side
    pub const RX_PKTS: usize = 0;
    pub const RX_BYTES: usize = 2;
    pub const TX_PKTS: usize = 4;
    pub const TX_BYTES: usize = 6;
    /// new connections allowed / denied / monitored (would-deny forwarded)
    pub const NEW_ALLOWED: usize = 8;
    pub const NEW_DENIED: usize = 9;
    pub const NEW_MONITORED: usize = 10;
    pub const EVENTS_DROPPED: usize = 11;
    pub const CONN_EXPIRED: usize = 12;
    pub const CONN_CLOSED: usize = 13;
    pub const BUSY_CYCLES: usize = 14;
    pub const BUSY_PACKETS: usize = 15;
    pub const PASSED_L2: usize = 16;
    pub const REJUDGED: usize = 17;
    /// entries evicted early (never replied to) to make room
    pub const CONN_EVICTED: usize = 18;
    /// denial events folded or rate-limited (see `fold`)
    pub const EVENTS_SUPPRESSED: usize = 19;
    /// packets handed to another worker (related packets whose connection
    /// was not here)
    pub const HANDED_OFF: usize = 20;
    pub const PARSE_DROP_BASE: usize = 21;
    pub const ENGINE_DROP_BASE: usize = PARSE_DROP_BASE + DropReason::COUNT;
    pub const COUNT: usize = ENGINE_DROP_BASE + EngineDrop::COUNT;
}

/// A worker's own counters: plain integers, no atomics.
#[derive(Clone, Debug)]
pub struct LocalCounters {
    pub v: [u64; slot::COUNT],
    /// Connection table occupancy (a gauge, not a counter).
    pub conns: u64,
}

impl Default for LocalCounters {
    fn default() -> Self {
        LocalCounters {
            v: [0; slot::COUNT],
            conns: 0,
        }
    }
}

impl LocalCounters {
    #[inline(always)]
    pub fn add(&mut self, slot: usize, n: u64) {
        self.v[slot] = self.v[slot].wrapping_add(n);
    }
    #[inline(always)]
    pub fn drop(&mut self, fate: Fate) {
        match fate {
            Fate::Forward | Fate::Held(_) => {}
            Fate::HandOff => self.add(slot::HANDED_OFF, 1),
            Fate::Parse(r) => self.add(slot::PARSE_DROP_BASE + r.index(), 1),
            Fate::Engine(r) => self.add(slot::ENGINE_DROP_BASE + r.index(), 1),
        }
    }
}

/// The published copy of one worker's counters (written by that worker only).
#[derive(Debug)]
#[repr(align(128))]
pub struct SharedCounters {
    v: [AtomicU64; slot::COUNT],
    conns: AtomicU64,
    /// The policy generation this worker enforces.
    generation: AtomicU64,
}

impl Default for SharedCounters {
    fn default() -> Self {
        SharedCounters {
            v: std::array::from_fn(|_| AtomicU64::new(0)),
            conns: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        }
    }
}

impl SharedCounters {
    /// Publish the worker's running totals (single writer: plain relaxed stores).
    #[inline]
    pub fn publish(&self, local: &LocalCounters) {
        for (dst, src) in self.v.iter().zip(local.v.iter()) {
            dst.store(*src, Relaxed);
        }
        self.conns.store(local.conns, Relaxed);
    }
    #[inline]
    pub fn set_generation(&self, generation: u64) {
        self.generation
            .store(generation, std::sync::atomic::Ordering::Release);
    }
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }
    pub fn snapshot(&self) -> Counters {
        Counters {
            v: std::array::from_fn(|i| self.v[i].load(Relaxed)),
            conns: self.conns.load(Relaxed),
        }
    }
}

/// A readable copy of counters (one worker's or a sum).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counters {
    pub v: [u64; slot::COUNT],
    pub conns: u64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            v: [0; slot::COUNT],
            conns: 0,
        }
    }
}

impl Counters {
    pub fn get(&self, slot: usize) -> u64 {
        self.v[slot]
    }
    pub fn rx_packets(&self, side: Side) -> u64 {
        self.v[slot::RX_PKTS + side.index()]
    }
    pub fn rx_bytes(&self, side: Side) -> u64 {
        self.v[slot::RX_BYTES + side.index()]
    }
    pub fn tx_packets(&self, side: Side) -> u64 {
        self.v[slot::TX_PKTS + side.index()]
    }
    pub fn tx_bytes(&self, side: Side) -> u64 {
        self.v[slot::TX_BYTES + side.index()]
    }
    pub fn parse_drops(&self, r: DropReason) -> u64 {
        self.v[slot::PARSE_DROP_BASE + r.index()]
    }
    pub fn engine_drops(&self, r: EngineDrop) -> u64 {
        self.v[slot::ENGINE_DROP_BASE + r.index()]
    }
    pub fn total_drops(&self) -> u64 {
        self.v[slot::PARSE_DROP_BASE..].iter().sum()
    }
    /// Busy TSC cycles per packet processed (0 when no packet yet).
    pub fn busy_cycles_per_packet(&self) -> f64 {
        let p = self.v[slot::BUSY_PACKETS];
        if p == 0 {
            0.0
        } else {
            self.v[slot::BUSY_CYCLES] as f64 / p as f64
        }
    }
    pub fn accumulate(&mut self, other: &Counters) {
        for (a, b) in self.v.iter_mut().zip(other.v.iter()) {
            *a = a.wrapping_add(*b);
        }
        self.conns += other.conns;
    }

    /// Every non-zero counter as `(metric_name, labels, value)`, names in the
    /// `bulkhead_dataplane_*` namespace.
    pub fn metrics(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for side in [Side::A, Side::B] {
            let s = side.as_str();
            out.push((
                format!("bulkhead_dataplane_rx_packets_total{{port=\"{s}\"}}"),
                self.rx_packets(side),
            ));
            out.push((
                format!("bulkhead_dataplane_rx_bytes_total{{port=\"{s}\"}}"),
                self.rx_bytes(side),
            ));
            out.push((
                format!("bulkhead_dataplane_tx_packets_total{{port=\"{s}\"}}"),
                self.tx_packets(side),
            ));
            out.push((
                format!("bulkhead_dataplane_tx_bytes_total{{port=\"{s}\"}}"),
                self.tx_bytes(side),
            ));
        }
        for (name, slot) in [
            ("allow", slot::NEW_ALLOWED),
            ("deny", slot::NEW_DENIED),
            ("would_deny", slot::NEW_MONITORED),
        ] {
            out.push((
                format!("bulkhead_dataplane_new_connections_total{{verdict=\"{name}\"}}"),
                self.v[slot],
            ));
        }
        for r in DropReason::ALL {
            let n = self.parse_drops(r);
            if n > 0 {
                out.push((
                    format!(
                        "bulkhead_dataplane_drops_total{{reason=\"{}\"}}",
                        r.as_str()
                    ),
                    n,
                ));
            }
        }
        for r in EngineDrop::ALL {
            let n = self.engine_drops(r);
            if n > 0 {
                out.push((
                    format!(
                        "bulkhead_dataplane_drops_total{{reason=\"{}\"}}",
                        r.as_str()
                    ),
                    n,
                ));
            }
        }
        out.push((
            "bulkhead_dataplane_l2_passed_total".into(),
            self.v[slot::PASSED_L2],
        ));
        out.push((
            "bulkhead_dataplane_connections_rejudged_total".into(),
            self.v[slot::REJUDGED],
        ));
        out.push((
            "bulkhead_dataplane_connections_expired_total".into(),
            self.v[slot::CONN_EXPIRED],
        ));
        out.push((
            "bulkhead_dataplane_connections_closed_total".into(),
            self.v[slot::CONN_CLOSED],
        ));
        out.push((
            "bulkhead_dataplane_connections_evicted_total".into(),
            self.v[slot::CONN_EVICTED],
        ));
        out.push((
            "bulkhead_dataplane_flow_events_suppressed_total".into(),
            self.v[slot::EVENTS_SUPPRESSED],
        ));
        out.push((
            "bulkhead_dataplane_handed_off_total".into(),
            self.v[slot::HANDED_OFF],
        ));
        out.push((
            "bulkhead_dataplane_flow_events_dropped_total".into(),
            self.v[slot::EVENTS_DROPPED],
        ));
        out.push(("bulkhead_dataplane_connections".into(), self.conns));
        out.push((
            "bulkhead_dataplane_busy_cycles_total".into(),
            self.v[slot::BUSY_CYCLES],
        ));
        out.push((
            "bulkhead_dataplane_busy_packets_total".into(),
            self.v[slot::BUSY_PACKETS],
        ));
        out
    }
}

/// Ingress drops of every port (see [`crate::Engine::ingress_drops`]) as
/// `bulkhead_dataplane_ingress_dropped_total{port="...",reason="..."}` lines: frames the
/// device, the kernel (`kernel_ring`: an `net_af_packet` socket's full RX ring) or the RX path
/// (`oversize`) dropped before a worker saw them. Every reason a port has is listed, zeros too.
pub fn ingress_drop_metrics(ports: &[(String, bulkhead_dpdk::IngressDrops)]) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for (port, d) in ports {
        for (reason, n) in d.reasons() {
            out.push((
                format!(
                    "bulkhead_dataplane_ingress_dropped_total{{port=\"{port}\",reason=\"{reason}\"}}"
                ),
                n,
            ));
        }
    }
    out
}

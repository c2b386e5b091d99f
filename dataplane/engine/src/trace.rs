//! Packet trace, as VPP's `trace add`: record what the next N packets (or
//! the next N matching a filter) went through — parse result, VLAN domain,
//! placement, connection found or created and its state, verdict, rule,
//! drop reason — to explain any drop.
//!
//! Arming sets a shared budget; workers look at it once per burst (one
//! relaxed load) and, only while it is positive, record matching packets
//! into their own bounded queue, claiming each record from the budget. So a
//! trace costs nothing when off and never blocks a worker.

use std::sync::atomic::{AtomicU32, Ordering};

use bulkhead_conntrack::ConnState;
use bulkhead_packet::flow::{Addr, FlowTuple};
use bulkhead_packet::DropReason;
use crossbeam::queue::ArrayQueue;

use crate::stats::{Fate, Side};

/// Records each worker keeps at most until they are read.
pub const TRACE_QUEUE: usize = 1024;

/// Which packets to trace (every given field must match).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceFilter {
    /// Source or destination address.
    pub addr: Option<Addr>,
    /// IP protocol.
    pub proto: Option<u8>,
    /// Source or destination port (or ICMP identifier).
    pub port: Option<u16>,
}

impl TraceFilter {
    /// Does a packet with this tuple (none: not IP) match?
    pub fn matches(&self, t: Option<&FlowTuple>) -> bool {
        if self.addr.is_none() && self.proto.is_none() && self.port.is_none() {
            return true;
        }
        let Some(t) = t else { return false };
        self.addr.is_none_or(|a| t.src == a || t.dst == a)
            && self.proto.is_none_or(|p| t.proto == p)
            && self.port.is_none_or(|p| t.sport == p || t.dport == p)
    }
}

/// What the parser made of the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parse {
    Ip,
    Fragment,
    Arp,
    NeighborDiscovery,
    NonIp(u16),
    Drop(DropReason),
}

/// What connection tracking did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conn {
    /// Not looked up (not IP, dropped before, untracked ICMP, fragment).
    NotTracked,
    /// Found; its state after this packet.
    Found(ConnState),
    /// Created by this packet.
    Created(ConnState),
    /// Looked up, not found, nothing created.
    Missed,
}

/// One traced packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceRecord {
    pub time_ns: u64,
    pub worker: u16,
    pub wire: u16,
    pub side: Side,
    pub len: u32,
    pub parse: Parse,
    pub outer_vlan: Option<u16>,
    pub vlan: Option<u16>,
    pub tuple: Option<FlowTuple>,
    /// Segment ids under the policy in force (`None`: not placed, or the
    /// source was refused as spoofed).
    pub src_segment: Option<u32>,
    pub dst_segment: Option<u32>,
    pub conn: Conn,
    pub fate: Fate,
    /// Policy generation and deciding rule of its connection, if any.
    pub generation: u64,
    pub rule: Option<u32>,
}

/// The shared trace control and the workers' record queues.
#[derive(Debug)]
pub struct Tracer {
    remaining: AtomicU32,
    filter: TraceFilter,
    queues: Vec<ArrayQueue<TraceRecord>>,
}

impl Tracer {
    pub fn new(workers: usize, filter: TraceFilter) -> Tracer {
        Tracer {
            remaining: AtomicU32::new(0),
            filter,
            queues: (0..workers.max(1))
                .map(|_| ArrayQueue::new(TRACE_QUEUE))
                .collect(),
        }
    }

    /// Record the next `n` matching packets (replaces any budget left).
    pub fn arm(&self, n: u32) {
        self.remaining.store(n, Ordering::Relaxed);
    }

    /// Is a trace running? (Workers ask once per burst.)
    #[inline]
    pub fn armed(&self) -> bool {
        self.remaining.load(Ordering::Relaxed) > 0
    }

    pub fn filter(&self) -> &TraceFilter {
        &self.filter
    }

    /// Claim one record from the budget.
    pub fn claim(&self) -> bool {
        self.remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| r.checked_sub(1))
            .is_ok()
    }

    /// Store a record of `worker` (dropped when its queue is full).
    pub fn record(&self, worker: u16, r: TraceRecord) {
        if let Some(q) = self.queues.get(usize::from(worker)) {
            let _ = q.push(r);
        }
    }

    /// Take every record so far, ordered by time.
    pub fn take(&self) -> Vec<TraceRecord> {
        let mut out: Vec<TraceRecord> = self
            .queues
            .iter()
            .flat_map(|q| std::iter::from_fn(|| q.pop()))
            .collect();
        out.sort_by_key(|r| r.time_ns);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_claimed_once_per_record() {
        let t = Tracer::new(2, TraceFilter::default());
        assert!(!t.armed());
        t.arm(2);
        assert!(t.armed());
        assert!(t.claim() && t.claim());
        assert!(!t.claim());
        assert!(!t.armed());
    }

    #[test]
    fn filters_match_either_end() {
        let t = FlowTuple {
            src: 1,
            dst: 2,
            sport: 1000,
            dport: 80,
            proto: 6,
            v6: false,
            svc: 80,
        };
        let f = TraceFilter {
            addr: Some(2),
            proto: Some(6),
            port: Some(1000),
        };
        assert!(f.matches(Some(&t)));
        assert!(!TraceFilter {
            proto: Some(17),
            ..f
        }
        .matches(Some(&t)));
        assert!(!f.matches(None));
        assert!(TraceFilter::default().matches(None));
    }
}

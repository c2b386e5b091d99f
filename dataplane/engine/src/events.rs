//! Flow events: what a worker reports about connections, through a bounded
//! per-worker queue. A worker never blocks on it: when the queue is full the
//! event is dropped and counted (`flow_events_dropped`).

use bulkhead_packet::flow::FlowTuple;

use crate::stats::Side;

/// What happened to a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A new connection was admitted by a rule (or an allowing default).
    Allowed,
    /// A new connection was refused.
    Denied,
    /// Refused by the rules but forwarded: the destination segment is in monitor mode.
    WouldDeny,
    /// A tracked connection ended (closed or expired), with its counts and duration.
    Closed,
    /// A live connection cut because a new policy generation denies it.
    Revoked,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Allowed => "allowed",
            EventKind::Denied => "denied",
            EventKind::WouldDeny => "would-deny",
            EventKind::Closed => "closed",
            EventKind::Revoked => "revoked",
        }
    }
}

/// Which flow events workers emit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EventMode {
    /// Every new connection (allowed, denied, would-deny) and every close.
    #[default]
    All,
    /// Denials, would-denials, and connections admitted by rules with `log: true`.
    Logged,
    /// No flow events.
    Off,
}

/// Rule reference inside an event: `u32::MAX` is the policy default (the
/// connection table's, so entries and events agree).
pub use bulkhead_conntrack::RULE_DEFAULT;

/// One flow event. `Copy` and allocation-free so workers can emit it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowEvent {
    pub kind: EventKind,
    /// Monotonic time of the event in nanoseconds (the engine's clock).
    pub time_ns: u64,
    pub worker: u16,
    /// Policy generation that judged the connection.
    pub generation: u64,
    /// Deciding rule index in that generation, or [`RULE_DEFAULT`].
    pub rule: u32,
    /// The deciding rule has `log: true`.
    pub logged: bool,
    /// Forwarded only because the destination segment is in monitor mode.
    pub monitor: bool,
    /// Source (initiator) and destination segment ids (the policy's `id:`).
    pub src_segment: u32,
    pub dst_segment: u32,
    /// The connection as the initiator sent it.
    pub tuple: FlowTuple,
    /// Side of the wire the initiator's first packet entered on (not known
    /// for `Closed` / `Revoked`, which come from the connection table).
    pub side: Option<Side>,
    /// Packets and bytes from the initiator (`[0]`) and from the responder (`[1]`).
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    /// For `Closed` / `Revoked`: connection lifetime in nanoseconds.
    pub duration_ns: u64,
    /// For `Denied`: identical denials (source, destination segment,
    /// service) folded into the previous interval and not reported one by
    /// one (see [`crate::fold`]).
    pub repeats: u32,
}

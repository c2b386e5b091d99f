//! The resolved policy model: what `bulkhead-policy` produces after parsing and
//! validation, with every name resolved to a segment index. It is the input of
//! both the compiler ([`crate::compile`]) and the reference evaluator
//! ([`crate::reference`]), so the two can be compared on the same value.
//!
//! Invariants the producer guarantees (and `Ruleset::check` re-verifies):
//! - `segments[0]` is `world` with id 0; segment ids and names are unique;
//! - VLANs are 1..=4094 and claimed by at most one segment;
//! - prefixes have no host bits set and are claimed by at most one segment;
//! - every `SegIdx` in rules and endpoints is `< segments.len()`;
//! - port ranges have `lo <= hi`.

use std::net::IpAddr;

use ipnet::IpNet;

/// A segment's user-visible, stable identifier (the policy's `id:`). Stable
/// across policy revisions, so connection-tracking keys use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SegmentId(pub u32);

impl SegmentId {
    /// `world`: everything not placed elsewhere.
    pub const WORLD: SegmentId = SegmentId(0);
}

/// Dense index of a segment inside one compiled policy (`0` is always world).
/// Not stable across revisions: never store it beyond one policy generation.
pub type SegIdx = u32;

/// Rule action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Allow,
    Deny,
}

/// Segment enforcement mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    #[default]
    Enforce,
    /// Would-be denials *to* this segment are forwarded and marked `would-deny`.
    Monitor,
}

/// IANA protocol numbers used by service specs.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;
}

/// One protocol spec of a service, resolved. Port and type ranges are inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServiceSpec {
    /// `any`: every protocol, every port and type.
    Any,
    /// `tcp/…`, `udp/…`, `sctp/…` with a destination port range (`tcp` alone = 0..=65535).
    Ports { proto: u8, lo: u16, hi: u16 },
    /// `icmp`, `icmp/8`, `icmpv6/128`: `proto` is 1 or 58; type range `lo..=hi`.
    IcmpTypes { proto: u8, lo: u8, hi: u8 },
    /// `proto/47`: every packet of that IP protocol, whatever its ports.
    Proto(u8),
}

impl ServiceSpec {
    /// Does this spec match a connection of `proto` whose destination port
    /// (TCP/UDP/SCTP) or ICMP type (ICMP/ICMPv6) is `port`? For other
    /// protocols `port` is ignored.
    pub fn matches(&self, proto: u8, port: u16) -> bool {
        match *self {
            ServiceSpec::Any => true,
            ServiceSpec::Ports { proto: p, lo, hi } => p == proto && lo <= port && port <= hi,
            ServiceSpec::IcmpTypes { proto: p, lo, hi } => {
                p == proto && u16::from(lo) <= port && port <= u16::from(hi)
            }
            ServiceSpec::Proto(p) => p == proto,
        }
    }
}

/// A set of segments a rule's `from` or `to` selects, after expanding groups.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SegmentSet {
    /// `any`: every segment including world (and segments added later).
    Any,
    /// Sorted, deduplicated segment indices.
    List(Vec<SegIdx>),
}

impl SegmentSet {
    pub fn contains(&self, seg: SegIdx) -> bool {
        match self {
            SegmentSet::Any => true,
            SegmentSet::List(v) => v.binary_search(&seg).is_ok(),
        }
    }
}

/// One segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentDef {
    pub id: SegmentId,
    pub name: String,
    pub vlans: Vec<u16>,
    pub prefixes: Vec<IpNet>,
    pub mode: Mode,
}

/// One endpoint: a single address placed in a segment (acts as a /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EndpointDef {
    pub ip: IpAddr,
    pub segment: SegIdx,
}

/// One rule, in policy order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleDef {
    pub name: String,
    pub from: SegmentSet,
    pub to: SegmentSet,
    /// Non-empty; a rule matches when any spec matches.
    pub services: Vec<ServiceSpec>,
    pub action: Action,
    pub log: bool,
}

/// A whole resolved policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ruleset {
    /// `default:` — the verdict when no rule matches.
    pub default_action: Action,
    /// `segments[0]` is world.
    pub segments: Vec<SegmentDef>,
    pub endpoints: Vec<EndpointDef>,
    pub rules: Vec<RuleDef>,
    /// Anti-spoofing (on by default): a frame placed by VLAN in A whose source
    /// IP lies in a prefix of another segment B is dropped as `spoofed`.
    pub anti_spoofing: bool,
}

/// Which rule decided: an index into `Ruleset::rules`, or the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuleRef {
    Rule(u32),
    Default,
}

/// The judgement of a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decision {
    /// What the dataplane does: a monitored would-deny is `Allow`.
    pub action: Action,
    pub rule: RuleRef,
    /// Emit a flow event for this connection because the deciding rule says `log: true`.
    pub log: bool,
    /// The rules said deny but the destination segment is in monitor mode.
    pub monitor: bool,
}

/// A new connection as the rules see it (after segment placement).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowQuery {
    pub src: SegIdx,
    pub dst: SegIdx,
    pub proto: u8,
    /// Destination port for TCP/UDP/SCTP, ICMP/ICMPv6 type, 0 otherwise.
    pub port: u16,
}

/// Why a packet could not be placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PlaceError {
    /// VLAN says segment A, source address lies in a prefix of segment B.
    Spoofed,
}

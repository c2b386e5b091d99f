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
pub use bulkhead_packet::proto;

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
    /// Zones where its workloads attach; empty: not bound to a place.
    pub zones: Vec<String>,
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
    /// IP lies in a prefix of another segment B is dropped as `spoofed`, and
    /// so is a source placed in a segment with `zones` that entered in none
    /// of them.
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
    /// VLAN says segment A, source address lies in a prefix of segment B;
    /// or the source's segment lists zones and the frame entered in none.
    Spoofed,
}

/// A broken [`Ruleset`] invariant, found by [`Ruleset::check`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("the ruleset has no segments: segments[0] must be world")]
    NoWorld,
    #[error("segments[0] must be world with id 0, but its id is {0}")]
    WorldId(u32),
    #[error("too many segments: {0} (limit {MAX_SEGMENTS})")]
    TooManySegments(usize),
    #[error("too many rules: {0} (limit {MAX_RULES})")]
    TooManyRules(usize),
    #[error("segment id {id} is used by both {first:?} and {second:?}")]
    DuplicateSegmentId {
        id: u32,
        first: String,
        second: String,
    },
    #[error("segment name {0:?} is used twice")]
    DuplicateSegmentName(String),
    #[error("segment {segment:?}: VLAN {vlan} is outside 1..=4094")]
    VlanOutOfRange { segment: String, vlan: u16 },
    #[error("VLAN {vlan} is claimed by both {first:?} and {second:?}")]
    DuplicateVlan {
        vlan: u16,
        first: String,
        second: String,
    },
    #[error("segment {segment:?}: prefix {prefix} has host bits set")]
    HostBits { segment: String, prefix: IpNet },
    #[error("prefix {prefix} is claimed by both {first:?} and {second:?}")]
    DuplicatePrefix {
        prefix: IpNet,
        first: String,
        second: String,
    },
    #[error("rule {rule:?}: segment index {index} is out of range ({count} segments)")]
    RuleSegmentOutOfRange {
        rule: String,
        index: SegIdx,
        count: usize,
    },
    #[error("rule {rule:?}: segment list is not sorted and deduplicated")]
    UnsortedSegmentList { rule: String },
    #[error("rule {rule:?} has no service spec")]
    EmptyServices { rule: String },
    #[error("rule {rule:?}: range {lo}-{hi} has start > end")]
    BadRange { rule: String, lo: u16, hi: u16 },
    #[error("{0} distinct zones (limit {limit})", limit = crate::placement::MAX_ZONES)]
    TooManyZones(usize),
    #[error("endpoint {ip}: segment index {index} is out of range ({count} segments)")]
    EndpointSegmentOutOfRange {
        ip: IpAddr,
        index: SegIdx,
        count: usize,
    },
}

/// Most segments a ruleset may hold (indices must fit a `u32` below the
/// "no segment" sentinel).
pub const MAX_SEGMENTS: usize = 1 << 24;
/// Most rules a ruleset may hold.
pub const MAX_RULES: usize = 1 << 24;

impl Ruleset {
    /// Re-verify every invariant listed in the module documentation.
    /// Returns the first violation found.
    pub fn check(&self) -> Result<(), ModelError> {
        let world = self.segments.first().ok_or(ModelError::NoWorld)?;
        if world.id != SegmentId::WORLD {
            return Err(ModelError::WorldId(world.id.0));
        }
        let count = self.segments.len();
        if count > MAX_SEGMENTS {
            return Err(ModelError::TooManySegments(count));
        }
        if self.rules.len() > MAX_RULES {
            return Err(ModelError::TooManyRules(self.rules.len()));
        }
        let mut ids = std::collections::HashMap::with_capacity(count);
        let mut names = std::collections::HashSet::with_capacity(count);
        let mut vlans: std::collections::HashMap<u16, &str> = std::collections::HashMap::new();
        let mut prefixes: std::collections::HashMap<IpNet, &str> = std::collections::HashMap::new();
        for seg in &self.segments {
            if let Some(first) = ids.insert(seg.id, seg.name.as_str()) {
                return Err(ModelError::DuplicateSegmentId {
                    id: seg.id.0,
                    first: first.to_owned(),
                    second: seg.name.clone(),
                });
            }
            if !names.insert(seg.name.as_str()) {
                return Err(ModelError::DuplicateSegmentName(seg.name.clone()));
            }
            for &vlan in &seg.vlans {
                if !(1..=4094).contains(&vlan) {
                    return Err(ModelError::VlanOutOfRange {
                        segment: seg.name.clone(),
                        vlan,
                    });
                }
                match vlans.insert(vlan, seg.name.as_str()) {
                    Some(first) if first != seg.name => {
                        return Err(ModelError::DuplicateVlan {
                            vlan,
                            first: first.to_owned(),
                            second: seg.name.clone(),
                        });
                    }
                    _ => {}
                }
            }
            for &prefix in &seg.prefixes {
                if prefix.trunc() != prefix {
                    return Err(ModelError::HostBits {
                        segment: seg.name.clone(),
                        prefix,
                    });
                }
                match prefixes.insert(prefix, seg.name.as_str()) {
                    Some(first) if first != seg.name => {
                        return Err(ModelError::DuplicatePrefix {
                            prefix,
                            first: first.to_owned(),
                            second: seg.name.clone(),
                        });
                    }
                    _ => {}
                }
            }
        }
        for rule in &self.rules {
            for set in [&rule.from, &rule.to] {
                if let SegmentSet::List(list) = set {
                    if list.windows(2).any(|w| w[0] >= w[1]) {
                        return Err(ModelError::UnsortedSegmentList {
                            rule: rule.name.clone(),
                        });
                    }
                    if let Some(&index) = list.iter().find(|&&i| i as usize >= count) {
                        return Err(ModelError::RuleSegmentOutOfRange {
                            rule: rule.name.clone(),
                            index,
                            count,
                        });
                    }
                }
            }
            if rule.services.is_empty() {
                return Err(ModelError::EmptyServices {
                    rule: rule.name.clone(),
                });
            }
            for spec in &rule.services {
                let (lo, hi) = match *spec {
                    ServiceSpec::Ports { lo, hi, .. } => (lo, hi),
                    ServiceSpec::IcmpTypes { lo, hi, .. } => (u16::from(lo), u16::from(hi)),
                    ServiceSpec::Any | ServiceSpec::Proto(_) => continue,
                };
                if lo > hi {
                    return Err(ModelError::BadRange {
                        rule: rule.name.clone(),
                        lo,
                        hi,
                    });
                }
            }
        }
        for ep in &self.endpoints {
            if ep.segment as usize >= count {
                return Err(ModelError::EndpointSegmentOutOfRange {
                    ip: ep.ip,
                    index: ep.segment,
                    count,
                });
            }
        }
        Ok(())
    }
}

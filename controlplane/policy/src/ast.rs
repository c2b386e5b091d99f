//! The policy document as written (names unresolved where the text names
//! them), with source positions. Positions never take part in equality, so
//! two documents that say the same thing compare equal wherever they were
//! written (`diff` relies on this).

use std::net::IpAddr;

use bulkhead_classify::{Action, Mode, ServiceSpec};
use ipnet::IpNet;

use crate::spec::Probe;
use crate::yaml::Pos;

/// A source position that is ignored by `==`.
#[derive(Clone, Copy, Debug, Default)]
pub struct At(pub Pos);

impl PartialEq for At {
    fn eq(&self, _: &At) -> bool {
        true
    }
}
impl Eq for At {}

/// A value with the position it was written at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spanned<T> {
    pub v: T,
    pub at: At,
}

/// A segment other than `world`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentAst {
    pub name: String,
    pub at: At,
    pub id: u32,
    pub vlans: Vec<Spanned<u16>>,
    pub prefixes: Vec<Spanned<IpNet>>,
    /// In document order.
    pub labels: Vec<(String, String)>,
    pub mode: Mode,
    /// Zones where its workloads attach, in document order.
    pub zones: Vec<Spanned<String>>,
    pub description: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointAst {
    pub at: At,
    pub ip: IpAddr,
    pub segment: Spanned<String>,
    /// `override: true`: deliberately placed inside another segment's prefix.
    pub override_prefix: bool,
    pub description: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupBody {
    /// Every segment whose labels include all of these.
    Match(Vec<(String, String)>),
    /// An explicit list of segment names (`world` allowed).
    Segments(Vec<Spanned<String>>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupAst {
    pub name: String,
    pub at: At,
    pub body: GroupBody,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceAst {
    pub name: String,
    pub at: At,
    pub specs: Vec<Spanned<ServiceSpec>>,
}

/// A rule's `from`/`to` selector.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Selector {
    /// A segment name (`world` included).
    Segment(String),
    /// `group:NAME`.
    Group(String),
    /// `any`: every segment including world.
    Any,
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Segment(s) => f.write_str(s),
            Selector::Group(g) => write!(f, "group:{g}"),
            Selector::Any => f.write_str("any"),
        }
    }
}

/// A rule's service entry: a service name or a literal spec.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ServiceRef {
    Named(String),
    Spec(ServiceSpec),
}

impl std::fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceRef::Named(n) => f.write_str(n),
            ServiceRef::Spec(s) => f.write_str(&crate::spec::spec_to_string(s)),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleAst {
    pub name: String,
    pub at: At,
    pub from: Vec<Spanned<Selector>>,
    pub to: Vec<Spanned<Selector>>,
    pub services: Vec<Spanned<ServiceRef>>,
    pub action: Action,
    pub log: bool,
    pub description: Option<String>,
}

/// A test's `from`/`to`: a segment by name, or an address to place.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Place {
    Segment(String),
    Ip(IpAddr),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Segment(s) => f.write_str(s),
            Place::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestAst {
    pub name: Option<String>,
    pub at: At,
    pub from: Spanned<Place>,
    pub to: Spanned<Place>,
    pub vlan: Option<u16>,
    /// Ingress zone (checked against the source segment's `zones`).
    pub zone: Option<String>,
    pub service: Probe,
    pub expect: Action,
    /// The rule name (or `default`) that must decide.
    pub rule: Option<Spanned<String>>,
}

/// The whole document as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    pub default_action: Action,
    pub anti_spoofing: bool,
    pub description: Option<String>,
    /// `world` was written out (`world: {id: 0}`).
    pub world_declared: bool,
    pub world_description: Option<String>,
    /// Segments in document order, `world` excluded.
    pub segments: Vec<SegmentAst>,
    pub endpoints: Vec<EndpointAst>,
    pub groups: Vec<GroupAst>,
    pub services: Vec<ServiceAst>,
    pub rules: Vec<RuleAst>,
    pub tests: Vec<TestAst>,
}

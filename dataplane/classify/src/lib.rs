//! `bulkhead-classify`: the compiled policy the dataplane consults for every
//! new connection, and the reference evaluator that is its test oracle.
//!
//! Owns:
//! - [`model`]: the resolved policy ([`Ruleset`]) that `bulkhead-policy` produces.
//! - [`reference`]: a literal reading of `spec/policy.md` (first match over the
//!   ordered rules, linear scans). Slow and obviously right; the oracle.
//! - [`placement`]: segment placement (VLAN map, longest prefix for IPv4 and
//!   IPv6 including endpoints, anti-spoofing by VLAN and by ingress zone).
//! - [`compile`]: [`CompiledPolicy`], placement plus rule
//!   tables per (source class, destination class) of segments, identical
//!   tables shared; policies too wide for per-pair tables compile in atoms
//!   mode (segments folded into atoms of the long lists, plus per-segment
//!   residue: a fixed number of table probes), and as a last resort in a
//!   scan mode with a wide-rule index (see `DESIGN.md`).
//!
//! Invariant: for every ruleset and packet, the compiled lookup and the
//! reference evaluator return the same placement and [`Decision`]. Property
//! tests hold the two against each other.
#![forbid(unsafe_code)]

pub mod compile;
pub mod model;
pub mod placement;
pub mod reference;

pub use compile::{CompileError, CompileOptions, CompiledPolicy, LookupMode};
pub use model::*;
pub use placement::{SegmentMap, ZoneMask, MAX_ZONES};

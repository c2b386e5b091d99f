//! `bulkhead-classify`: the compiled policy the dataplane consults for every
//! new connection, and the reference evaluator that is its test oracle.
//!
//! Owns:
//! - [`model`]: the resolved policy ([`Ruleset`]) that `bulkhead-policy` produces.
//! - [`reference`]: a literal reading of `spec/policy.md` (first match over the
//!   ordered rules, linear scans). Slow and obviously right; the oracle.
//! - [`compile`]: [`CompiledPolicy`], segment placement (VLAN map, longest
//!   prefix for IPv4 and IPv6 including endpoints, anti-spoofing) and one rule
//!   table per (source segment, destination segment), identical tables shared.
//!
//! Invariant: for every ruleset and packet, the compiled lookup and the
//! reference evaluator return the same placement and [`Decision`]. Property
//! tests hold the two against each other.
#![forbid(unsafe_code)]

pub mod compile;
pub mod model;
pub mod reference;

pub use compile::{CompileError, CompileOptions, CompiledPolicy, SegmentMap};
pub use model::*;

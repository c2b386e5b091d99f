//! `bulkhead-packet`: parsing of one Ethernet frame into what the dataplane
//! decides on, and builders of valid frames for tests and benchmarks.
//!
//! Owns:
//! - [`flow`]: the [`FlowTuple`](flow::FlowTuple) contract shared with
//!   conntrack and the engine.
//! - [`parse()`]: Ethernet II, 802.1Q and QinQ, ARP, IPv4 (options,
//!   fragments), IPv6 (extension header chain, fragments), TCP, UDP, SCTP,
//!   ICMP and ICMPv6 (query pairs keyed by identifier and request type,
//!   errors with their quoted flow, neighbour discovery validated and set
//!   apart), ARP validated; IPv4-mapped IPv6 addresses refused; AH walked
//!   past in both IP versions.
//! - [`DropReason`]: why a frame was refused, doubling as a counter index.
//! - `build` (feature `test-util`): writers of valid frames (correct lengths
//!   and checksums) for tests and benchmarks.
//!
//! Invariants:
//! - `parse` never panics, never allocates, never loops more than a fixed
//!   bound (two VLAN tags, [`MAX_IPV6_EXT_HEADERS`] extension headers), and
//!   reads only within the frame it is given.
//! - On [`Parsed::Ip`] and [`Parsed::NeighborDiscovery`]:
//!   `l3_offset < l4_offset <= l3_offset + ip_len <= frame.len()`, and the
//!   transport header fields behind the tuple lie inside the IP packet.
//! - Ethernet padding after the IP packet is allowed; a frame shorter than
//!   its IP length fields is dropped, never parsed partially.
//!
//! Safe Rust only (`forbid(unsafe_code)`), no dependency on DPDK: it runs on byte slices.
#![forbid(unsafe_code)]

#[cfg(any(test, feature = "test-util"))]
pub mod build;
pub mod checksum;
mod drop;
pub mod flow;
mod parse;

pub use drop::DropReason;
pub use parse::{
    fragment_info, icmp_query, nd_target, parse, parse_into, proto, quoted_flow, tcp_flags,
    tcp_flags_valid, tcp_seq, Arp, FragInfo, Fragment, FrameKind, IcmpClass, IcmpQuery, IpPacket,
    ParseConfig, Parsed, QuotedFlow, TcpSeq, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6,
    ETH_HEADER_LEN, MAX_ARP_BYTES, MAX_IPV6_EXT_HEADERS, MAX_ND_BYTES, MAX_VLAN_TAGS, TPID_8021AD,
    TPID_8021Q, TPID_QINQ_LEGACY,
};

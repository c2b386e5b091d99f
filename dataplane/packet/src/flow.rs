//! The flow tuple: what the parser extracts from an IP packet for connection
//! tracking and classification. Shared contract between `bulkhead-packet`
//! (producer), `bulkhead-conntrack` and `bulkhead-engine` (consumers).

/// Addresses are stored as 128-bit integers: IPv4 as the IPv4-mapped IPv6
/// address (`::ffff:a.b.c.d`), so one key type serves both families and an
/// IPv4 address can never equal an IPv6 one.
pub type Addr = u128;

/// Map an IPv4 address (host order `u32`) into [`Addr`].
#[inline]
pub const fn v4_to_addr(v4: u32) -> Addr {
    0xffff_0000_0000u128 | v4 as u128
}

/// The IPv4 address inside an [`Addr`], if it is IPv4-mapped.
#[inline]
pub const fn addr_to_v4(a: Addr) -> Option<u32> {
    if a >> 32 == 0xffff {
        Some(a as u32)
    } else {
        None
    }
}

/// One direction of a flow, as seen in a packet.
///
/// Port semantics by protocol:
/// - TCP, UDP, SCTP: `sport`/`dport` are the ports; `svc` = `dport`.
/// - ICMP / ICMPv6 echo request and reply: `sport` = `dport` = identifier,
///   so both directions share one key; `svc` = the ICMP type.
/// - other ICMP / ICMPv6 (not errors): `sport` = `dport` = 0; `svc` = type.
/// - other protocols: ports 0, `svc` = 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowTuple {
    pub src: Addr,
    pub dst: Addr,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub v6: bool,
    /// What the rules match on: destination port or ICMP type (see above).
    pub svc: u16,
}

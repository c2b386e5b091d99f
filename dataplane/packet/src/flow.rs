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

/// An [`std::net::IpAddr`] as an [`Addr`] (IPv4 mapped).
#[inline]
pub fn ip_to_addr(ip: std::net::IpAddr) -> Addr {
    match ip {
        std::net::IpAddr::V4(v4) => v4_to_addr(u32::from(v4)),
        std::net::IpAddr::V6(v6) => u128::from(v6),
    }
}

/// An [`Addr`] as an [`std::net::IpAddr`] (IPv4-mapped addresses become IPv4).
#[inline]
pub fn addr_to_ip(a: Addr) -> std::net::IpAddr {
    match addr_to_v4(a) {
        Some(v4) => std::net::IpAddr::V4(v4.into()),
        None => std::net::IpAddr::V6(a.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    #[test]
    fn v4_mapping_round_trips_and_never_equals_v6() {
        let a = v4_to_addr(0x0a00_0001);
        assert_eq!(addr_to_v4(a), Some(0x0a00_0001));
        assert_eq!(addr_to_ip(a), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(ip_to_addr(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))), a);
        let six = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
        assert_eq!(addr_to_v4(u128::from(six)), None);
        assert_eq!(addr_to_ip(ip_to_addr(IpAddr::V6(six))), IpAddr::V6(six));
        assert_ne!(ip_to_addr(IpAddr::V6(Ipv6Addr::from(0x0a00_0001u128))), a);
    }
}

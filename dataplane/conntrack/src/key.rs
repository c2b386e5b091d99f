//! The canonical connection key and its hash.

use bulkhead_packet::flow::Addr;

/// One end of a connection: address and port.
///
/// For ICMP queries the "port" is the identifier (see
/// [`FlowTuple`](bulkhead_packet::flow::FlowTuple)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Endpoint {
    pub addr: Addr,
    pub port: u16,
}

/// Which end of a [`ConnKey`] an endpoint is: `A` is the lower endpoint in
/// (address, port) order, `B` the higher one. (Not a wire side: that is the
/// engine's `Side`.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum KeySide {
    A = 0,
    B = 1,
}

impl KeySide {
    /// The other end.
    #[inline]
    #[must_use]
    pub const fn other(self) -> KeySide {
        match self {
            KeySide::A => KeySide::B,
            KeySide::B => KeySide::A,
        }
    }
}

/// The VLAN domain of a frame: its outer (S-tag) and inner (C-tag or only)
/// VLAN IDs, each plus one (0 = absent), packed as `outer << 16 | inner`.
/// Equal addresses in different VLAN domains are different hosts (QinQ:
/// two customers may use the same inner VLAN), so the domain is part of
/// every key.
#[inline]
#[must_use]
pub const fn vlan_domain(outer: Option<u16>, inner: Option<u16>) -> u32 {
    let o = match outer {
        Some(v) => v as u32 + 1,
        None => 0,
    };
    let i = match inner {
        Some(v) => v as u32 + 1,
        None => 0,
    };
    (o << 16) | i
}

/// Most wires whose connections a domain keeps apart ([`wire_domain`]).
pub const MAX_WIRES: usize = 16;

/// A [`vlan_domain`] on one wire (`wire < MAX_WIRES`, in the top four
/// bits): the same addresses and tags on two wires are two connections, so
/// a host on one wire cannot ride another wire's connection.
#[inline]
#[must_use]
pub const fn wire_domain(wire: u16, outer: Option<u16>, inner: Option<u16>) -> u32 {
    ((wire as u32 & 0xf) << 28) | vlan_domain(outer, inner)
}

/// The (outer, inner) VLAN IDs of a [`vlan_domain`] (or [`wire_domain`]).
#[inline]
#[must_use]
pub const fn domain_vlans(domain: u32) -> (Option<u16>, Option<u16>) {
    (
        unpack_vlan((domain >> 16) & 0x0fff),
        unpack_vlan(domain & 0xffff),
    )
}

const fn unpack_vlan(v: u32) -> Option<u16> {
    if v == 0 {
        None
    } else {
        Some((v - 1) as u16)
    }
}

/// Connection key in canonical order: both directions of a connection give
/// the same key. The VLAN domain is part of the key, so equal addresses in
/// different domains never share an entry; so is the request type of an
/// ICMP query pair, so an echo exchange never admits a timestamp reply.
///
/// Invariant: `(addr_a, port_a) <= (addr_b, port_b)`; only the constructor
/// below builds keys, so it always holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(C)]
pub struct ConnKey {
    addr_a: Addr,
    addr_b: Addr,
    domain: u32,
    port_a: u16,
    port_b: u16,
    proto: u8,
    /// ICMP / ICMPv6 query pairs: the request type (never 0); else 0.
    icmp_type: u8,
}

const _: () = assert!(core::mem::size_of::<ConnKey>() == 48);

impl ConnKey {
    pub(crate) const ZERO: ConnKey = ConnKey {
        addr_a: 0,
        addr_b: 0,
        domain: 0,
        port_a: 0,
        port_b: 0,
        proto: 0,
        icmp_type: 0,
    };

    /// Key of a packet going from `src` to `dst` in VLAN `domain`, and the
    /// side its source is on (`KeySide::A` when the source is the lower
    /// endpoint). A packet whose two endpoints are equal maps to `KeySide::A`
    /// in both directions. `icmp_type` is the request type of an ICMP query
    /// pair, 0 for everything else.
    #[inline]
    #[must_use]
    pub fn new(
        domain: u32,
        src: Endpoint,
        dst: Endpoint,
        proto: u8,
        icmp_type: u8,
    ) -> (ConnKey, KeySide) {
        let (a, b, side) = if src <= dst {
            (src, dst, KeySide::A)
        } else {
            (dst, src, KeySide::B)
        };
        let key = ConnKey {
            addr_a: a.addr,
            addr_b: b.addr,
            domain,
            port_a: a.port,
            port_b: b.port,
            proto,
            icmp_type,
        };
        (key, side)
    }

    /// The endpoint on `side`.
    #[inline]
    #[must_use]
    pub fn endpoint(&self, side: KeySide) -> Endpoint {
        match side {
            KeySide::A => Endpoint {
                addr: self.addr_a,
                port: self.port_a,
            },
            KeySide::B => Endpoint {
                addr: self.addr_b,
                port: self.port_b,
            },
        }
    }

    /// IP protocol number.
    #[inline]
    #[must_use]
    pub fn proto(&self) -> u8 {
        self.proto
    }

    /// The VLAN domain (see [`vlan_domain`]).
    #[inline]
    #[must_use]
    pub fn domain(&self) -> u32 {
        self.domain
    }

    /// Request type of an ICMP query pair, 0 otherwise.
    #[inline]
    #[must_use]
    pub fn icmp_type(&self) -> u8 {
        self.icmp_type
    }
}

// Odd 64-bit constants (digits of pi and e); any odd values with mixed bits do.
const K0: u64 = 0x243f_6a88_85a3_08d3;
const K1: u64 = 0x1319_8a2e_0370_7345;
const K2: u64 = 0xa409_3822_299f_31d1;
const K3: u64 = 0x082e_fa98_ec4e_6c89;
const K4: u64 = 0x4528_21e6_38d0_1377;
const K5: u64 = 0xbe54_66cf_34e9_0c6d;
const K6: u64 = 0xb7e1_5162_8aed_2a6b;
const K7: u64 = 0x9e37_79b9_7f4a_7c15;

/// 64x64 -> 128 multiply, folded by xor: every output bit depends on every
/// input bit of both factors (the wyhash / foldhash primitive).
/// Also the mixing step of the engine's other small hash tables.
#[inline(always)]
pub fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Seeded hash of a canonical key. Symmetric by construction (the key is
/// canonical). Low bits pick the bucket, the top 16 bits are the tag, both
/// well mixed. Not a cryptographic PRF: with a secret per-table seed it makes
/// targeted collisions impractical, and probe lengths are bounded anyway.
#[inline]
#[must_use]
pub fn hash_key(key: &ConnKey, seed: u64) -> u64 {
    let a_lo = key.addr_a as u64;
    let a_hi = (key.addr_a >> 64) as u64;
    let b_lo = key.addr_b as u64;
    let b_hi = (key.addr_b >> 64) as u64;
    let segs = u64::from(key.domain) | (u64::from(key.icmp_type) << 32);
    let rest = (u64::from(key.port_a) << 24) | (u64::from(key.port_b) << 8) | u64::from(key.proto);
    let h1 = fold(a_lo ^ seed ^ K0, a_hi ^ K1);
    let h2 = fold(b_lo ^ K2, b_hi ^ seed ^ K3);
    let h3 = fold(segs ^ K4, rest ^ K5);
    let x = fold(h1 ^ h3 ^ K6, h2 ^ K7);
    fold(x ^ seed, x.rotate_left(29) ^ K7 ^ h3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_packet::flow::v4_to_addr;

    fn key(
        domain: u32,
        src: u32,
        sport: u16,
        dst: u32,
        dport: u16,
        proto: u8,
    ) -> (ConnKey, KeySide) {
        let ep = |a, port| Endpoint {
            addr: v4_to_addr(a),
            port,
        };
        ConnKey::new(domain, ep(src, sport), ep(dst, dport), proto, 0)
    }

    #[test]
    fn both_directions_give_the_same_key_and_opposite_sides() {
        let (k1, s1) = key(3, 0x0a00_0001, 40000, 0x0a00_0102, 443, 6);
        let (k2, s2) = key(3, 0x0a00_0102, 443, 0x0a00_0001, 40000, 6);
        assert_eq!(k1, k2);
        assert_eq!(s1, s2.other());
        assert_eq!(hash_key(&k1, 7), hash_key(&k2, 7));
        // The source endpoint is recoverable from the side.
        assert_eq!(k1.endpoint(s1).addr, v4_to_addr(0x0a00_0001));
        assert_eq!(k1.endpoint(s1).port, 40000);
        assert_eq!(k1.endpoint(s1.other()).port, 443);
        assert_eq!((k1.proto(), k1.domain()), (6, 3));
    }

    #[test]
    fn the_vlan_domain_is_part_of_the_key() {
        let (k1, _) = key(vlan_domain(None, Some(10)), 1, 1000, 2, 80, 6);
        let (k2, _) = key(vlan_domain(Some(100), Some(10)), 1, 1000, 2, 80, 6);
        let (k3, _) = key(vlan_domain(Some(200), Some(10)), 1, 1000, 2, 80, 6);
        assert_ne!(k1, k2);
        assert_ne!(k2, k3);
        assert_ne!(hash_key(&k2, 0), hash_key(&k3, 0));
    }

    #[test]
    fn vlan_domains_round_trip() {
        for (o, i) in [
            (None, None),
            (None, Some(0)),
            (Some(4094), Some(1)),
            (Some(7), None),
        ] {
            assert_eq!(domain_vlans(vlan_domain(o, i)), (o, i));
            assert_eq!(domain_vlans(wire_domain(15, o, i)), (o, i));
        }
        assert_ne!(wire_domain(1, None, Some(5)), wire_domain(2, None, Some(5)));
        assert_ne!(vlan_domain(Some(5), None), vlan_domain(None, Some(5)));
    }

    #[test]
    fn protocol_ports_and_icmp_type_are_part_of_the_key() {
        let (t, _) = key(1, 1, 1000, 2, 53, 6);
        let (u, _) = key(1, 1, 1000, 2, 53, 17);
        let (p, _) = key(1, 1, 1001, 2, 53, 6);
        assert_ne!(t, u);
        assert_ne!(t, p);
        let ep = |a, port| Endpoint { addr: a, port };
        let (echo, _) = ConnKey::new(0, ep(1, 7), ep(2, 7), 1, 8);
        let (stamp, _) = ConnKey::new(0, ep(1, 7), ep(2, 7), 1, 13);
        assert_ne!(echo, stamp);
        assert_ne!(hash_key(&echo, 0), hash_key(&stamp, 0));
        assert_eq!(stamp.icmp_type(), 13);
    }

    #[test]
    fn hash_spreads_sequential_keys_over_buckets() {
        // 4096 keys differing only in the source port, 256 buckets: every
        // bucket should get some and none far above the mean of 16.
        let mut counts = [0u32; 256];
        for p in 0..4096u16 {
            let (k, _) = key(1, 0x0a00_0001, p, 0x0a00_0002, 80, 6);
            counts[(hash_key(&k, 0) & 255) as usize] += 1;
        }
        let max = counts.iter().copied().max().unwrap_or(0);
        let min = counts.iter().copied().min().unwrap_or(0);
        assert!(min >= 2 && max <= 40, "min {min} max {max}");
        // The tag bits too.
        let mut tags = [0u32; 256];
        for p in 0..4096u16 {
            let (k, _) = key(1, 0x0a00_0001, p, 0x0a00_0002, 80, 6);
            tags[(hash_key(&k, 0) >> 56) as usize] += 1;
        }
        let max = tags.iter().copied().max().unwrap_or(0);
        assert!(max <= 40, "tag max {max}");
    }
}

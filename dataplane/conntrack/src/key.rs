//! The canonical connection key and its hash.

use bulkhead_packet::flow::{Addr, FlowTuple};

/// One end of a connection: segment id (policy `id:`), address, port.
///
/// For ICMP echo the "port" is the echo identifier (see [`FlowTuple`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Endpoint {
    /// Segment id (`SegmentId.0` in `bulkhead-classify`). Field order matters:
    /// endpoints are ordered by (segment, address, port).
    pub seg: u32,
    pub addr: Addr,
    pub port: u16,
}

/// Which end of a [`ConnKey`] an endpoint is: `A` is the lower endpoint in
/// (segment, address, port) order, `B` the higher one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Side {
    A = 0,
    B = 1,
}

impl Side {
    /// The other end.
    #[inline]
    #[must_use]
    pub const fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// Connection key in canonical order: both directions of a connection give
/// the same key. Segments are part of the key, so equal addresses in
/// different segments never share an entry.
///
/// Invariant: `(seg_a, addr_a, port_a) <= (seg_b, addr_b, port_b)`; only the
/// constructors below build keys, so it always holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(C)]
pub struct ConnKey {
    addr_a: Addr,
    addr_b: Addr,
    seg_a: u32,
    seg_b: u32,
    port_a: u16,
    port_b: u16,
    proto: u8,
}

const _: () = assert!(core::mem::size_of::<ConnKey>() == 48);

impl ConnKey {
    pub(crate) const ZERO: ConnKey = ConnKey {
        addr_a: 0,
        addr_b: 0,
        seg_a: 0,
        seg_b: 0,
        port_a: 0,
        port_b: 0,
        proto: 0,
    };

    /// Key of a packet going from `src` to `dst`, and the side its source is
    /// on (`Side::A` when the source is the lower endpoint). A packet whose
    /// two endpoints are equal maps to `Side::A` in both directions.
    #[inline]
    #[must_use]
    pub fn new(src: Endpoint, dst: Endpoint, proto: u8) -> (ConnKey, Side) {
        let (a, b, side) = if src <= dst {
            (src, dst, Side::A)
        } else {
            (dst, src, Side::B)
        };
        let key = ConnKey {
            addr_a: a.addr,
            addr_b: b.addr,
            seg_a: a.seg,
            seg_b: b.seg,
            port_a: a.port,
            port_b: b.port,
            proto,
        };
        (key, side)
    }

    /// Key of a parsed packet whose source was placed in `src_seg` and
    /// destination in `dst_seg`.
    #[inline]
    #[must_use]
    pub fn from_flow(src_seg: u32, dst_seg: u32, t: &FlowTuple) -> (ConnKey, Side) {
        ConnKey::new(
            Endpoint {
                seg: src_seg,
                addr: t.src,
                port: t.sport,
            },
            Endpoint {
                seg: dst_seg,
                addr: t.dst,
                port: t.dport,
            },
            t.proto,
        )
    }

    /// The endpoint on `side`.
    #[inline]
    #[must_use]
    pub fn endpoint(&self, side: Side) -> Endpoint {
        match side {
            Side::A => Endpoint {
                seg: self.seg_a,
                addr: self.addr_a,
                port: self.port_a,
            },
            Side::B => Endpoint {
                seg: self.seg_b,
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
#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
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
    let segs = (u64::from(key.seg_a) << 32) | u64::from(key.seg_b);
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

    fn flow(src: u32, sport: u16, dst: u32, dport: u16, proto: u8) -> FlowTuple {
        FlowTuple {
            src: v4_to_addr(src),
            dst: v4_to_addr(dst),
            sport,
            dport,
            proto,
            v6: false,
            svc: dport,
        }
    }

    #[test]
    fn both_directions_give_the_same_key_and_opposite_sides() {
        let fwd = flow(0x0a00_0001, 40000, 0x0a00_0102, 443, 6);
        let rev = flow(0x0a00_0102, 443, 0x0a00_0001, 40000, 6);
        let (k1, s1) = ConnKey::from_flow(10, 20, &fwd);
        let (k2, s2) = ConnKey::from_flow(20, 10, &rev);
        assert_eq!(k1, k2);
        assert_eq!(s1, s2.other());
        assert_eq!(hash_key(&k1, 7), hash_key(&k2, 7));
        // The source endpoint is recoverable from the side.
        assert_eq!(k1.endpoint(s1).addr, fwd.src);
        assert_eq!(k1.endpoint(s1).port, 40000);
        assert_eq!(k1.endpoint(s1).seg, 10);
        assert_eq!(k1.endpoint(s1.other()).seg, 20);
        assert_eq!(k1.proto(), 6);
    }

    #[test]
    fn segments_are_part_of_the_key() {
        let f = flow(0x0a00_0001, 1000, 0x0a00_0002, 80, 6);
        let (k1, _) = ConnKey::from_flow(10, 20, &f);
        let (k2, _) = ConnKey::from_flow(11, 20, &f);
        let (k3, _) = ConnKey::from_flow(10, 21, &f);
        assert_ne!(k1, k2);
        assert_ne!(k1, k3);
        assert_ne!(k2, k3);
        assert_ne!(hash_key(&k1, 0), hash_key(&k2, 0));
    }

    #[test]
    fn protocol_and_ports_are_part_of_the_key() {
        let (t, _) = ConnKey::from_flow(1, 1, &flow(1, 1000, 2, 53, 6));
        let (u, _) = ConnKey::from_flow(1, 1, &flow(1, 1000, 2, 53, 17));
        let (p, _) = ConnKey::from_flow(1, 1, &flow(1, 1001, 2, 53, 6));
        assert_ne!(t, u);
        assert_ne!(t, p);
    }

    #[test]
    fn ordering_uses_segment_before_address() {
        // Lower address but higher segment: the other endpoint is side A.
        let (k, side) = ConnKey::from_flow(9, 1, &flow(1, 5, 2, 6, 17));
        assert_eq!(side, Side::B);
        assert_eq!(k.endpoint(Side::A).seg, 1);
    }

    #[test]
    fn hash_spreads_sequential_keys_over_buckets() {
        // 4096 keys differing only in the source port, 256 buckets: every
        // bucket should get some and none far above the mean of 16.
        let mut counts = [0u32; 256];
        for p in 0..4096u16 {
            let (k, _) = ConnKey::from_flow(1, 2, &flow(0x0a00_0001, p, 0x0a00_0002, 80, 6));
            counts[(hash_key(&k, 0) & 255) as usize] += 1;
        }
        let max = counts.iter().copied().max().unwrap_or(0);
        let min = counts.iter().copied().min().unwrap_or(0);
        assert!(min >= 2 && max <= 40, "min {min} max {max}");
        // The tag bits too.
        let mut tags = [0u32; 256];
        for p in 0..4096u16 {
            let (k, _) = ConnKey::from_flow(1, 2, &flow(0x0a00_0001, p, 0x0a00_0002, 80, 6));
            tags[(hash_key(&k, 0) >> 56) as usize] += 1;
        }
        let max = tags.iter().copied().max().unwrap_or(0);
        assert!(max <= 40, "tag max {max}");
    }
}

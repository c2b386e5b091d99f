//! Property tests: no panic on any input, truncations give truncation drops,
//! builder → parse round trips recover every field.

use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use bulkhead_packet::build::{self, Echo, Ext, FrameSpec, Tcp, Vlan};
use bulkhead_packet::flow::{ip_to_addr, FlowTuple};
use bulkhead_packet::tcp_flags::{ACK, FIN, PSH, RST, SYN, URG};
use bulkhead_packet::{
    parse, proto, quoted_flow, DropReason, Fragment, IcmpClass, ParseConfig, Parsed,
};

const VALID_FLAGS: [u8; 9] = [
    SYN,
    SYN | URG,
    SYN | ACK,
    RST,
    RST | ACK,
    FIN | ACK,
    FIN | ACK | URG,
    ACK,
    ACK | URG,
];
const EXTS: [Ext; 4] = [
    Ext::HopByHop,
    Ext::DestOpts,
    Ext::Routing { routing_type: 4 },
    Ext::Ah,
];

/// Every combination of extension headers the builder can write validly
/// (hop-by-hop first), as 'static slices.
const EXT_CHAINS: [&[Ext]; 6] = [
    &[],
    &[Ext::HopByHop],
    &[Ext::DestOpts, Ext::Routing { routing_type: 4 }],
    &[Ext::HopByHop, Ext::Ah, Ext::DestOpts],
    &[Ext::Ah],
    &[
        Ext::HopByHop,
        Ext::DestOpts,
        Ext::Routing { routing_type: 2 },
        Ext::Ah,
        Ext::DestOpts,
    ],
];
const V4_OPTIONS: [&[u8]; 3] = [&[], &[1, 1, 1, 1], &[0x94, 4, 0, 0, 1, 1, 1, 0, 7, 3, 4, 0]];

#[derive(Clone, Debug)]
enum L4 {
    Tcp { sport: u16, dport: u16, flags: u8 },
    Udp { sport: u16, dport: u16 },
    Sctp { sport: u16, dport: u16 },
    Echo { request: bool, id: u16 },
    Info { ty: u8 },
    Other { proto: u8 },
}

#[derive(Clone, Debug)]
struct Case {
    v6: bool,
    src4: [u8; 4],
    dst4: [u8; 4],
    src6: [u16; 8],
    dst6: [u16; 8],
    vlan: Vlan,
    ttl: u8,
    ext: usize,
    opts: usize,
    first_fragment: bool,
    min_len: usize,
    l4: L4,
    payload: Vec<u8>,
}

fn vid() -> impl Strategy<Value = u16> {
    1u16..4095
}

fn vlan() -> impl Strategy<Value = Vlan> {
    prop_oneof![
        Just(Vlan::Untagged),
        vid().prop_map(Vlan::Tagged),
        (vid(), vid()).prop_map(|(outer, inner)| Vlan::QinQ { outer, inner }),
        (vid(), vid()).prop_map(|(outer, inner)| Vlan::DoubleTagged { outer, inner }),
    ]
}

fn l4() -> impl Strategy<Value = L4> {
    prop_oneof![
        (
            any::<u16>(),
            any::<u16>(),
            0..VALID_FLAGS.len(),
            any::<bool>()
        )
            .prop_map(|(sport, dport, i, psh)| {
                L4::Tcp {
                    sport,
                    dport,
                    flags: VALID_FLAGS[i] | if psh { PSH } else { 0 },
                }
            }),
        (any::<u16>(), any::<u16>()).prop_map(|(sport, dport)| L4::Udp { sport, dport }),
        (any::<u16>(), any::<u16>()).prop_map(|(sport, dport)| L4::Sctp { sport, dport }),
        (any::<bool>(), any::<u16>()).prop_map(|(request, id)| L4::Echo { request, id }),
        // Informational types that are neither echo, errors nor neighbour discovery.
        prop_oneof![Just(13u8), Just(17), Just(130), Just(143), Just(200)]
            .prop_map(|ty| L4::Info { ty }),
        prop_oneof![
            Just(proto::GRE),
            Just(proto::ESP),
            Just(89u8),
            Just(103),
            Just(4)
        ]
        .prop_map(|proto| L4::Other { proto }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<bool>(),
        any::<([u8; 4], [u8; 4], [u16; 8], [u16; 8])>(),
        vlan(),
        any::<u8>(),
        0..EXT_CHAINS.len(),
        0..V4_OPTIONS.len(),
        any::<bool>(),
        0usize..100,
        l4(),
        proptest::collection::vec(any::<u8>(), 0..80),
    )
        .prop_map(
            |(
                v6,
                (src4, dst4, src6, dst6),
                vlan,
                ttl,
                ext,
                opts,
                first_fragment,
                min_len,
                l4,
                payload,
            )| {
                Case {
                    v6,
                    src4,
                    dst4,
                    src6,
                    dst6,
                    vlan,
                    ttl,
                    ext,
                    opts,
                    first_fragment,
                    min_len,
                    l4,
                    payload,
                }
            },
        )
}

impl Case {
    fn spec(&self) -> FrameSpec {
        let mut s = if self.v6 {
            FrameSpec::v6(self.src6, self.dst6).ipv6_ext(EXT_CHAINS[self.ext])
        } else {
            FrameSpec::v4(self.src4, self.dst4).ipv4_options(V4_OPTIONS[self.opts])
        };
        s = s.tagging(self.vlan).ttl(self.ttl).min_len(self.min_len);
        if self.first_fragment {
            s = s.fragment(0, true);
        }
        s
    }

    fn build(&self, buf: &mut Vec<u8>) {
        let spec = self.spec();
        match self.l4 {
            L4::Tcp {
                sport,
                dport,
                flags,
            } => build::tcp(
                buf,
                &spec,
                &Tcp::new(sport, dport, flags).payload(&self.payload),
            ),
            L4::Udp { sport, dport } => build::udp(buf, &spec, sport, dport, &self.payload),
            L4::Sctp { sport, dport } => build::sctp(buf, &spec, sport, dport, &self.payload),
            L4::Echo { request, id } => {
                let echo = if request { Echo::Request } else { Echo::Reply };
                build::icmp_echo(buf, &spec, echo, id, 7, &self.payload)
            }
            L4::Info { ty } => build::icmp(buf, &spec, ty, 0, [0; 4], &self.payload),
            L4::Other { proto } => build::ip(buf, &spec, proto, &self.payload),
        }
    }

    fn expected_tuple(&self) -> FlowTuple {
        let (src, dst) = if self.v6 {
            (
                u128::from(Ipv6Addr::from(self.src6)),
                u128::from(Ipv6Addr::from(self.dst6)),
            )
        } else {
            (
                ip_to_addr(Ipv4Addr::from(self.src4).into()),
                ip_to_addr(Ipv4Addr::from(self.dst4).into()),
            )
        };
        let icmp = if self.v6 { proto::ICMPV6 } else { proto::ICMP };
        let (proto, sport, dport, svc) = match self.l4 {
            L4::Tcp { sport, dport, .. } => (proto::TCP, sport, dport, dport),
            L4::Udp { sport, dport } => (proto::UDP, sport, dport, dport),
            L4::Sctp { sport, dport } => (proto::SCTP, sport, dport, dport),
            L4::Echo { request, id } => {
                let ty = match (self.v6, request) {
                    (false, true) => 8,
                    (false, false) => 0,
                    (true, true) => 128,
                    (true, false) => 129,
                };
                (icmp, id, id, ty)
            }
            L4::Info { ty } => (icmp, 0, 0, u16::from(ty)),
            L4::Other { proto } => (proto, 0, 0, 0),
        };
        FlowTuple {
            src,
            dst,
            sport,
            dport,
            proto,
            v6: self.v6,
            svc,
        }
    }

    fn expected_vlans(&self) -> (Option<u16>, Option<u16>) {
        match self.vlan {
            Vlan::Untagged => (None, None),
            Vlan::Tagged(v) => (Some(v), None),
            Vlan::QinQ { outer, inner } | Vlan::DoubleTagged { outer, inner } => {
                (Some(inner), Some(outer))
            }
        }
    }

    /// Bytes of L2 and L3 headers before the transport header.
    fn l4_offset(&self) -> usize {
        let l2 = 14
            + 4 * match self.vlan {
                Vlan::Untagged => 0,
                Vlan::Tagged(_) => 1,
                _ => 2,
            };
        let l3 = if self.v6 {
            let ext: usize = EXT_CHAINS[self.ext]
                .iter()
                .map(|e| if *e == Ext::Ah { 24 } else { 8 })
                .sum();
            40 + ext + if self.first_fragment { 8 } else { 0 }
        } else {
            20 + V4_OPTIONS[self.opts].len()
        };
        l2 + l3
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse(&bytes, &ParseConfig::default());
        let _ = parse(&bytes, &ParseConfig { verify_ipv4_checksum: true, check_tcp_flags: false });
    }

    /// Random bytes behind a plausible L2/L3 prefix, to get past the first checks.
    #[test]
    fn never_panics_on_arbitrary_ip(
        ethertype in prop_oneof![Just(0x0800u16), Just(0x86dd), Just(0x0806), Just(0x8100), Just(0x88a8)],
        first in prop_oneof![Just(0x45u8), Just(0x46), Just(0x60), any::<u8>()],
        rest in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.push(first);
        f.extend_from_slice(&rest);
        if let Parsed::Ip(p) | Parsed::NeighborDiscovery(p) = parse(&f, &ParseConfig::default()) {
            let (l3, l4, len) = (usize::from(p.l3_offset), usize::from(p.l4_offset), usize::from(p.ip_len));
            prop_assert!(l3 < l4 && l4 <= l3 + len && l3 + len <= f.len());
        }
    }

    #[test]
    fn round_trip(c in case()) {
        let mut f = Vec::new();
        c.build(&mut f);
        let p = match parse(&f, &ParseConfig { verify_ipv4_checksum: true, ..ParseConfig::default() }) {
            Parsed::Ip(p) => p,
            other => return Err(TestCaseError::fail(format!("{other:?}"))),
        };
        prop_assert_eq!(p.tuple, c.expected_tuple());
        prop_assert_eq!((p.vlan, p.outer_vlan), c.expected_vlans());
        prop_assert_eq!(p.ttl, c.ttl);
        prop_assert_eq!(usize::from(p.l4_offset), c.l4_offset());
        prop_assert_eq!(p.fragment, if c.first_fragment { Fragment::First } else { Fragment::None });
        prop_assert_eq!(p.tcp_flags, match c.l4 { L4::Tcp { flags, .. } => flags, _ => 0 });
        prop_assert!(p.icmp != IcmpClass::Error);
        prop_assert!(usize::from(p.l3_offset) + usize::from(p.ip_len) <= f.len());
        prop_assert!(f.len() >= c.min_len);
    }

    /// Cutting a valid frame anywhere before the end of its IP packet gives a
    /// truncation drop; cutting only padding changes nothing.
    #[test]
    fn truncations(c in case()) {
        let mut f = Vec::new();
        c.build(&mut f);
        let cfg = ParseConfig::default();
        let whole = parse(&f, &cfg);
        let Parsed::Ip(p) = whole else { return Err(TestCaseError::fail(format!("{whole:?}"))) };
        let ip_end = usize::from(p.l3_offset) + usize::from(p.ip_len);
        for len in 0..f.len() {
            let cut = parse(&f[..len], &cfg);
            if len < ip_end {
                prop_assert!(matches!(cut, Parsed::Drop(r) if r.is_truncation()), "cut at {}: {:?}", len, cut);
            } else {
                prop_assert_eq!(cut, whole);
            }
        }
    }

    /// An ICMP error quoting any packet recovers that packet's tuple, also
    /// when the quote stops right after 8 bytes of the transport header.
    #[test]
    fn icmp_error_round_trip(c in case(), ty_idx in 0usize..5, short in any::<bool>()) {
        let mut orig = Vec::new();
        c.build(&mut orig);
        let Parsed::Ip(inner) = parse(&orig, &ParseConfig::default()) else {
            return Err(TestCaseError::fail("original did not parse"));
        };
        let quoted = build::ip_packet(&orig);
        let l4_rel = usize::from(inner.l4_offset) - usize::from(inner.l3_offset);
        let quoted = if short { &quoted[..(l4_rel + 8).min(quoted.len())] } else { quoted };
        let router = if c.v6 {
            FrameSpec::v6(Ipv6Addr::LOCALHOST, c.src6)
        } else {
            FrameSpec::v4([192, 0, 2, 1], c.src4)
        };
        let ty = if c.v6 { [1u8, 2, 3, 4, 1][ty_idx] } else { [3u8, 4, 5, 11, 12][ty_idx] };
        let mut err = Vec::new();
        build::icmp_error(&mut err, &router, ty, 0, quoted);
        let got = parse(&err, &ParseConfig::default());
        let needs_8 = matches!(c.l4, L4::Tcp { .. } | L4::Udp { .. } | L4::Sctp { .. } | L4::Echo { .. } | L4::Info { .. });
        if needs_8 && quoted.len() < l4_rel + 8 {
            prop_assert_eq!(got, Parsed::Drop(DropReason::TruncatedIcmpQuote));
        } else {
            let Parsed::Ip(p) = got else { return Err(TestCaseError::fail(format!("{got:?}"))) };
            prop_assert_eq!(quoted_flow(&err, &p).map(|q| q.tuple), Some(inner.tuple));
            prop_assert_eq!(p.tuple.svc, u16::from(ty));
        }
    }
}

#[test]
fn ext_table_matches_builder_variants() {
    // Keep the strategy honest: every extension kind appears in some chain.
    for e in EXTS {
        assert!(EXT_CHAINS.iter().any(|c| c
            .iter()
            .any(|x| std::mem::discriminant(x) == std::mem::discriminant(&e))));
    }
}

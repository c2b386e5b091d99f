//! Unit tests of the parser per protocol, on frames from the builders and
//! hand-corrupted copies of them.

use std::net::{Ipv4Addr, Ipv6Addr};

use bulkhead_packet::build::{self, ArpOp, Echo, Ext, FrameSpec, Tcp, Vlan};
use bulkhead_packet::flow::{v4_to_addr, FlowTuple};
use bulkhead_packet::tcp_flags::{ACK, CWR, ECE, FIN, PSH, RST, SYN, URG};
use bulkhead_packet::{
    nd_target, parse, proto, quoted_flow, Arp, DropReason, Fragment, IcmpClass, IcmpQuery,
    IpPacket, ParseConfig, Parsed, MAX_ARP_BYTES,
};

const A4: [u8; 4] = [10, 0, 0, 1];
const B4: [u8; 4] = [10, 0, 0, 2];

fn a6() -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)
}
fn b6() -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)
}

fn cfg() -> ParseConfig {
    ParseConfig::default()
}

fn ip(frame: &[u8]) -> IpPacket {
    match parse(frame, &cfg()) {
        Parsed::Ip(p) => p,
        other => panic!("expected IP, got {other:?}"),
    }
}

fn dropped(frame: &[u8]) -> DropReason {
    dropped_with(frame, &cfg())
}

fn dropped_with(frame: &[u8], cfg: &ParseConfig) -> DropReason {
    match parse(frame, cfg) {
        Parsed::Drop(r) => r,
        other => panic!("expected a drop, got {other:?}"),
    }
}

fn v4(a: [u8; 4]) -> u128 {
    v4_to_addr(u32::from_be_bytes(a))
}

fn tcp4(flags: u8) -> Vec<u8> {
    let mut f = Vec::new();
    build::tcp(&mut f, &FrameSpec::v4(A4, B4), &Tcp::new(40000, 443, flags));
    f
}

fn tcp6(spec: FrameSpec) -> Vec<u8> {
    let mut f = Vec::new();
    build::tcp(&mut f, &spec, &Tcp::new(40000, 443, SYN));
    f
}

fn v6spec() -> FrameSpec {
    FrameSpec::v6(a6(), b6())
}

// ---------------------------------------------------------------- layer 2

#[test]
fn tcp_v4_untagged() {
    let f = tcp4(SYN);
    assert_eq!(f.len(), 60, "54 bytes padded to the Ethernet minimum");
    let p = ip(&f);
    assert_eq!(
        p.tuple,
        FlowTuple {
            src: v4(A4),
            dst: v4(B4),
            sport: 40000,
            dport: 443,
            proto: 6,
            v6: false,
            svc: 443
        }
    );
    assert_eq!((p.vlan, p.outer_vlan), (None, None));
    assert_eq!((p.l3_offset, p.l4_offset, p.ip_len), (14, 34, 40));
    assert_eq!(
        (p.ttl, p.tcp_flags, p.fragment, p.icmp),
        (64, SYN, Fragment::None, IcmpClass::None)
    );
}

#[test]
fn single_tag_is_the_vlan() {
    let mut f = Vec::new();
    build::udp(&mut f, &FrameSpec::v4(A4, B4).vlan(10), 5353, 53, b"q");
    let p = ip(&f);
    assert_eq!(
        (p.vlan, p.outer_vlan, p.l3_offset, p.l4_offset),
        (Some(10), None, 18, 38)
    );
    assert_eq!(
        (p.tuple.sport, p.tuple.dport, p.tuple.svc, p.tuple.proto),
        (5353, 53, 53, 17)
    );
}

#[test]
fn priority_tag_has_no_vlan() {
    let mut f = Vec::new();
    build::udp(&mut f, &FrameSpec::v4(A4, B4).vlan(0), 1, 2, b"");
    let p = ip(&f);
    assert_eq!((p.vlan, p.l3_offset), (None, 18));
}

#[test]
fn qinq_inner_tag_is_the_vlan() {
    let mut f = Vec::new();
    build::udp(&mut f, &FrameSpec::v4(A4, B4).qinq(100, 20), 1, 2, b"");
    assert_eq!(&f[12..14], &[0x88, 0xa8]);
    let p = ip(&f);
    assert_eq!(
        (p.vlan, p.outer_vlan, p.l3_offset, p.l4_offset),
        (Some(20), Some(100), 22, 42)
    );

    let spec = FrameSpec::v4(A4, B4).tagging(Vlan::DoubleTagged { outer: 7, inner: 8 });
    build::udp(&mut f, &spec, 1, 2, b"");
    assert_eq!(&f[12..14], &[0x81, 0x00]);
    assert_eq!((ip(&f).vlan, ip(&f).outer_vlan), (Some(8), Some(7)));

    // Legacy 0x9100 outer TPID.
    f[12] = 0x91;
    assert_eq!((ip(&f).vlan, ip(&f).outer_vlan), (Some(8), Some(7)));
}

#[test]
fn three_tags_are_too_many() {
    let mut f = Vec::new();
    build::udp(&mut f, &FrameSpec::v4(A4, B4).qinq(100, 20), 1, 2, b"");
    f.splice(16..16, [0x81, 0x00, 0x00, 0x1e]);
    assert_eq!(dropped(&f), DropReason::TooManyVlanTags);
}

#[test]
fn vlan_4095_is_reserved() {
    let mut f = Vec::new();
    build::udp(&mut f, &FrameSpec::v4(A4, B4).vlan(4095), 1, 2, b"");
    assert_eq!(dropped(&f), DropReason::ReservedVlanId);
}

#[test]
fn truncated_at_every_layer_boundary_v4_qinq() {
    let mut f = Vec::new();
    let spec = FrameSpec::v4(A4, B4).qinq(100, 20).min_len(0);
    build::tcp(&mut f, &spec, &Tcp::new(1, 2, SYN));
    assert_eq!(f.len(), 22 + 40);
    for len in 0..f.len() {
        let want = match len {
            0..=13 => DropReason::TruncatedEthernet,
            14..=21 => DropReason::TruncatedVlan,
            22..=41 => DropReason::TruncatedIpv4,
            _ => DropReason::IpLengthExceedsFrame,
        };
        assert_eq!(dropped(&f[..len]), want, "cut at {len}");
    }
    assert_eq!(ip(&f).l4_offset, 42);
}

#[test]
fn truncated_at_every_layer_boundary_v6() {
    let f = tcp6(v6spec().ipv6_ext(&[Ext::HopByHop]));
    assert_eq!(f.len(), 14 + 40 + 8 + 20);
    for len in 0..f.len() {
        let want = match len {
            0..=13 => DropReason::TruncatedEthernet,
            14..=53 => DropReason::TruncatedIpv6,
            _ => DropReason::IpLengthExceedsFrame,
        };
        assert_eq!(dropped(&f[..len]), want, "cut at {len}");
    }
}

#[test]
fn arp_and_non_ip() {
    let mut f = Vec::new();
    let spec = FrameSpec::v4(A4, B4).vlan(5);
    build::arp(
        &mut f,
        &spec,
        ArpOp::Request,
        Ipv4Addr::from(A4),
        Ipv4Addr::from(B4),
    );
    let want = |op| {
        Parsed::Arp(Arp {
            op,
            sender: u32::from_be_bytes(A4),
            target: u32::from_be_bytes(B4),
            vlan: Some(5),
            outer_vlan: None,
        })
    };
    assert_eq!(parse(&f, &cfg()), want(1));
    build::arp(
        &mut f,
        &spec.min_len(0),
        ArpOp::Reply,
        Ipv4Addr::from(A4),
        Ipv4Addr::from(B4),
    );
    assert_eq!(f.len(), 18 + 28);
    assert_eq!(parse(&f, &cfg()), want(2));
    assert_eq!(dropped(&f[..18 + 27]), DropReason::TruncatedArp);
    assert_eq!(dropped(&f[..18 + 7]), DropReason::TruncatedArp);
    // Padding up to a minimum frame is fine; more is data ARP never carries.
    let mut g = f.clone();
    g.resize(18 + MAX_ARP_BYTES, 0);
    assert_eq!(parse(&g, &cfg()), want(2));
    g.push(0);
    assert_eq!(dropped(&g), DropReason::OversizedArp);
    // Only Ethernet/IPv4 requests and replies.
    for (at, v) in [(18 + 1, 6u8), (18 + 2, 0x86), (18 + 5, 2), (18 + 7, 3)] {
        let mut g = f.clone();
        g[at] = v;
        assert_eq!(dropped(&g), DropReason::UnsupportedArp, "byte {at}");
    }

    build::ethernet(&mut f, &FrameSpec::v4(A4, B4), 0x88cc, &[1, 2, 3]);
    assert_eq!(parse(&f, &cfg()), Parsed::NonIp { ethertype: 0x88cc });
    build::ethernet(
        &mut f,
        &FrameSpec::v4(A4, B4).vlan(3),
        0x0050,
        &[0xaa; 0x50],
    );
    assert_eq!(parse(&f, &cfg()), Parsed::NonIp { ethertype: 0x0050 });
}

// ---------------------------------------------------------------- IPv4

#[test]
fn ipv4_options_move_the_transport_header() {
    let mut f = Vec::new();
    let spec = FrameSpec::v4(A4, B4).ipv4_options(&[0x94, 0x04, 0, 0, 1, 1, 1]);
    build::tcp(&mut f, &spec, &Tcp::new(1234, 80, SYN).payload(b"hello"));
    assert_eq!(f[14], 0x47, "IHL 7: 8 bytes of options");
    let p = ip(&f);
    assert_eq!(
        (p.l4_offset, p.ip_len, p.tuple.sport, p.tuple.dport),
        (42, 28 + 20 + 5, 1234, 80)
    );
    let strict = ParseConfig {
        verify_ipv4_checksum: true,
        ..cfg()
    };
    assert!(
        matches!(parse(&f, &strict), Parsed::Ip(_)),
        "builder checksum covers the options"
    );
}

#[test]
fn ipv4_header_field_checks() {
    let base = tcp4(SYN);
    let mut f = base.clone();
    f[14] = 0x65;
    assert_eq!(dropped(&f), DropReason::BadIpVersion);
    f[14] = 0x44;
    assert_eq!(dropped(&f), DropReason::BadIpv4HeaderLength);
    f[14] = 0x4f; // 60-byte header in a 60-byte frame
    assert_eq!(dropped(&f), DropReason::TruncatedIpv4);

    let mut f = base.clone();
    f[16..18].copy_from_slice(&19u16.to_be_bytes());
    assert_eq!(dropped(&f), DropReason::BadIpTotalLength);
    f[16..18].copy_from_slice(&47u16.to_be_bytes()); // 14 + 47 > 60
    assert_eq!(dropped(&f), DropReason::IpLengthExceedsFrame);
    f[16..18].copy_from_slice(&46u16.to_be_bytes()); // into the padding: allowed
    assert_eq!(ip(&f).ip_len, 46);
}

#[test]
fn ipv4_checksum_is_optional() {
    let mut f = tcp4(SYN);
    let strict = ParseConfig {
        verify_ipv4_checksum: true,
        ..cfg()
    };
    assert!(matches!(parse(&f, &strict), Parsed::Ip(_)));
    f[24] ^= 0x01;
    assert_eq!(dropped_with(&f, &strict), DropReason::BadIpv4Checksum);
    assert!(
        matches!(parse(&f, &cfg()), Parsed::Ip(_)),
        "not verified by default"
    );
}

#[test]
fn ipv6_version_checked() {
    let mut f = tcp6(v6spec());
    f[14] = 0x40;
    assert_eq!(dropped(&f), DropReason::BadIpVersion);
}

#[test]
fn ttl_zero_is_reported_not_dropped() {
    let mut f = Vec::new();
    build::udp(&mut f, &FrameSpec::v4(A4, B4).ttl(0), 1, 2, b"");
    assert_eq!(ip(&f).ttl, 0);
}

// ---------------------------------------------------------------- fragments

#[test]
fn ipv4_fragments() {
    let mut f = Vec::new();
    build::tcp(
        &mut f,
        &FrameSpec::v4(A4, B4).fragment(0, true),
        &Tcp::new(5, 6, SYN).payload(&[0; 16]),
    );
    let p = ip(&f);
    assert_eq!(
        (p.fragment, p.tuple.sport, p.tuple.dport, p.tcp_flags),
        (Fragment::First, 5, 6, SYN)
    );

    build::ip(
        &mut f,
        &FrameSpec::v4(A4, B4).fragment(3, true),
        proto::TCP,
        &[0xff; 24],
    );
    let p = ip(&f);
    assert_eq!(p.fragment, Fragment::NonFirst);
    assert_eq!(
        (
            p.tuple.sport,
            p.tuple.dport,
            p.tuple.svc,
            p.tuple.proto,
            p.tcp_flags
        ),
        (0, 0, 0, 6, 0)
    );
    assert_eq!((p.l4_offset, p.ip_len), (34, 44));

    // Last fragment (M clear, offset > 0) is also non-first.
    build::ip(
        &mut f,
        &FrameSpec::v4(A4, B4).fragment(3, false),
        proto::UDP,
        &[0xff; 8],
    );
    assert_eq!(ip(&f).fragment, Fragment::NonFirst);

    // UDP first fragment: the UDP length covers the whole datagram.
    build::ip(
        &mut f,
        &FrameSpec::v4(A4, B4).fragment(0, true),
        proto::UDP,
        &[0, 7, 0, 9, 0x05, 0xdc, 0, 0],
    );
    let p = ip(&f);
    assert_eq!(
        (p.fragment, p.tuple.sport, p.tuple.dport),
        (Fragment::First, 7, 9)
    );
}

#[test]
fn fragment_attacks() {
    let mut f = Vec::new();
    // RFC 1858: a first fragment too short for the TCP header.
    build::ip(
        &mut f,
        &FrameSpec::v4(A4, B4).fragment(0, true),
        proto::TCP,
        &[0; 16],
    );
    assert_eq!(dropped(&f), DropReason::TinyFragment);
    // ... or whose data offset reaches past it.
    build::ip(
        &mut f,
        &FrameSpec::v4(A4, B4).fragment(0, true),
        proto::TCP,
        &[
            0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, SYN, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
    );
    assert_eq!(dropped(&f), DropReason::TinyFragment);
    // RFC 1858: a TCP fragment at offset 8 bytes overwrites the flags.
    build::ip(
        &mut f,
        &FrameSpec::v4(A4, B4).fragment(1, false),
        proto::TCP,
        &[0; 16],
    );
    assert_eq!(dropped(&f), DropReason::BadFragment);
    build::ip(
        &mut f,
        &FrameSpec::v4(A4, B4).fragment(1, false),
        proto::UDP,
        &[0; 16],
    );
    assert_eq!(
        ip(&f).fragment,
        Fragment::NonFirst,
        "offset 1 only matters for TCP"
    );
    // Ping of death: reassembly past 65535 bytes.
    build::ip(
        &mut f,
        &FrameSpec::v4(A4, B4).fragment(8189, false),
        proto::ICMP,
        &[0; 24],
    );
    assert_eq!(dropped(&f), DropReason::BadFragment);
    build::ip(
        &mut f,
        &FrameSpec::v4(A4, B4).fragment(8189, false),
        proto::ICMP,
        &[0; 8],
    );
    assert_eq!(ip(&f).fragment, Fragment::NonFirst);
}

#[test]
fn ipv6_fragments() {
    let mut f = Vec::new();
    build::udp(&mut f, &v6spec().fragment(0, true), 1000, 2000, &[0; 32]);
    let p = ip(&f);
    assert_eq!(
        (p.fragment, p.tuple.proto, p.tuple.sport, p.tuple.dport),
        (Fragment::First, 17, 1000, 2000)
    );
    assert_eq!(p.l4_offset, 14 + 40 + 8);

    build::ip(&mut f, &v6spec().fragment(4, true), proto::UDP, &[0xee; 32]);
    let p = ip(&f);
    assert_eq!(
        (
            p.fragment,
            p.tuple.proto,
            p.tuple.sport,
            p.tuple.dport,
            p.tuple.svc
        ),
        (Fragment::NonFirst, 17, 0, 0, 0)
    );
    assert_eq!(p.l4_offset, 14 + 40 + 8);

    // Atomic fragment (offset 0, M clear) is a whole packet.
    build::udp(&mut f, &v6spec().fragment(0, false), 1000, 2000, &[]);
    assert_eq!(ip(&f).fragment, Fragment::None);
    assert_eq!(ip(&f).tuple.dport, 2000);

    build::ip(&mut f, &v6spec().fragment(1, true), proto::TCP, &[0; 16]);
    assert_eq!(dropped(&f), DropReason::BadFragment);
    build::ip(&mut f, &v6spec().fragment(0, true), proto::TCP, &[0; 12]);
    assert_eq!(dropped(&f), DropReason::TinyFragment);
}

// ---------------------------------------------------------------- IPv6 chain

#[test]
fn ipv6_extension_chain() {
    let f = tcp6(v6spec().ipv6_ext(&[
        Ext::HopByHop,
        Ext::DestOpts,
        Ext::Routing { routing_type: 4 },
        Ext::Ah,
    ]));
    let p = ip(&f);
    assert_eq!(p.l4_offset as usize, 14 + 40 + 8 + 8 + 8 + 24);
    assert_eq!(
        p.tuple,
        FlowTuple {
            src: a6().into(),
            dst: b6().into(),
            sport: 40000,
            dport: 443,
            proto: 6,
            v6: true,
            svc: 443
        }
    );
    assert_eq!(p.ip_len as usize, 40 + 48 + 20);
}

#[test]
fn ipv6_chain_limits() {
    const EIGHT: &[Ext] = &[Ext::DestOpts; 8];
    const NINE: &[Ext] = &[Ext::DestOpts; 9];
    assert_eq!(ip(&tcp6(v6spec().ipv6_ext(EIGHT))).tuple.dport, 443);
    assert_eq!(
        dropped(&tcp6(v6spec().ipv6_ext(NINE))),
        DropReason::TooManyExtensionHeaders
    );
    assert_eq!(
        dropped(&tcp6(v6spec().ipv6_ext(&[Ext::DestOpts, Ext::HopByHop]))),
        DropReason::BadIpv6ExtensionChain
    );
    assert_eq!(
        dropped(&tcp6(
            v6spec().ipv6_ext(&[Ext::Routing { routing_type: 0 }])
        )),
        DropReason::DeprecatedRoutingHeader
    );
    // Header length reaching past the payload length.
    let mut f = tcp6(v6spec().ipv6_ext(&[Ext::DestOpts]));
    f[55] = 3; // (3 + 1) * 8 = 32 bytes, only 28 in the payload
    assert_eq!(dropped(&f), DropReason::TruncatedIpv6Extension);
    // A chain that ends exactly at the payload end with no room for a header.
    let mut f = Vec::new();
    build::ip(
        &mut f,
        &v6spec().min_len(0),
        proto::DEST_OPTS,
        &[6, 0, 1, 4],
    );
    assert_eq!(dropped(&f), DropReason::TruncatedIpv6Extension);
    // Two fragment headers.
    build::ip(
        &mut f,
        &v6spec().fragment(0, true),
        proto::FRAGMENT,
        &[6, 0, 0, 1, 0, 0, 0, 9],
    );
    assert_eq!(dropped(&f), DropReason::BadIpv6ExtensionChain);
}

#[test]
fn ipv6_chain_enders() {
    let mut f = Vec::new();
    build::ip(
        &mut f,
        &v6spec().ipv6_ext(&[Ext::HopByHop]),
        proto::ESP,
        &[0xab; 40],
    );
    let p = ip(&f);
    assert_eq!(
        (
            p.tuple.proto,
            p.tuple.sport,
            p.tuple.dport,
            p.tuple.svc,
            p.l4_offset
        ),
        (50, 0, 0, 0, 62)
    );
    build::ip(&mut f, &v6spec(), proto::NO_NEXT_HEADER, &[]);
    assert_eq!(ip(&f).tuple.proto, 59);
    assert_eq!(ip(&f).ip_len, 40);
}

#[test]
fn ipv6_jumbo_length_is_refused() {
    let mut f = Vec::new();
    build::ip(&mut f, &v6spec(), proto::NO_NEXT_HEADER, &vec![0; 65535]);
    assert_eq!(u16::from_be_bytes([f[18], f[19]]), 65535);
    assert_eq!(dropped(&f), DropReason::BadIpTotalLength);
    build::ip(&mut f, &v6spec(), proto::NO_NEXT_HEADER, &vec![0; 65495]);
    assert_eq!(ip(&f).ip_len, 65535);
}

// ---------------------------------------------------------------- TCP

#[test]
fn tcp_header_length() {
    let mut f = tcp4(SYN);
    f[46] = 0x40;
    assert_eq!(dropped(&f), DropReason::BadTcpHeaderLength);
    f[46] = 0x60; // 24 bytes, only 20 in the IP packet (the rest is padding)
    assert_eq!(dropped(&f), DropReason::BadTcpHeaderLength);

    let mut f = Vec::new();
    build::tcp(
        &mut f,
        &FrameSpec::v4(A4, B4),
        &Tcp::new(1, 2, SYN).options(&[2, 4, 5, 0xb4, 1, 3, 3, 7]),
    );
    assert_eq!(f[46], 0x70);
    assert_eq!(ip(&f).tuple.dport, 2);

    build::ip(&mut f, &FrameSpec::v4(A4, B4), proto::TCP, &[0; 19]);
    assert_eq!(dropped(&f), DropReason::TruncatedTcp);
}

#[test]
fn tcp_flag_combinations() {
    let valid = [
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
    for flags in 0..=255u8 {
        let core = flags & !(PSH | ECE | CWR);
        let f = tcp4(flags);
        if valid.contains(&core) {
            assert_eq!(ip(&f).tcp_flags, flags, "flags {flags:#04x}");
        } else {
            assert_eq!(dropped(&f), DropReason::BadTcpFlags, "flags {flags:#04x}");
            let lax = ParseConfig {
                check_tcp_flags: false,
                ..cfg()
            };
            assert!(matches!(parse(&f, &lax), Parsed::Ip(p) if p.tcp_flags == flags));
        }
    }
    for bad in [
        0,
        SYN | FIN,
        SYN | RST,
        FIN,
        FIN | PSH | URG,
        PSH,
        SYN | FIN | RST | PSH | ACK | URG,
    ] {
        assert_eq!(dropped(&tcp4(bad)), DropReason::BadTcpFlags, "{bad:#04x}");
    }
}

// ---------------------------------------------------------------- UDP, SCTP, other

#[test]
fn udp_length_checks() {
    let mut f = Vec::new();
    build::udp(&mut f, &FrameSpec::v4(A4, B4), 68, 67, &[1; 10]);
    assert_eq!(ip(&f).tuple.svc, 67);
    f[38..40].copy_from_slice(&7u16.to_be_bytes());
    assert_eq!(dropped(&f), DropReason::BadUdpLength);
    f[38..40].copy_from_slice(&19u16.to_be_bytes());
    assert_eq!(dropped(&f), DropReason::BadUdpLength);
    f[38..40].copy_from_slice(&8u16.to_be_bytes());
    assert_eq!(
        ip(&f).tuple.dport,
        67,
        "a UDP length below the IP payload is tolerated"
    );

    build::ip(&mut f, &FrameSpec::v4(A4, B4), proto::UDP, &[0; 7]);
    assert_eq!(dropped(&f), DropReason::TruncatedUdp);
}

#[test]
fn sctp_ports() {
    let mut f = Vec::new();
    build::sctp(&mut f, &v6spec(), 3868, 3869, &[1, 0, 0, 4]);
    let p = ip(&f);
    assert_eq!(
        (p.tuple.proto, p.tuple.sport, p.tuple.dport, p.tuple.svc),
        (132, 3868, 3869, 3869)
    );
    build::ip(&mut f, &v6spec(), proto::SCTP, &[0; 11]);
    assert_eq!(dropped(&f), DropReason::TruncatedSctp);
}

#[test]
fn other_protocols_have_no_ports() {
    let mut f = Vec::new();
    build::ip(
        &mut f,
        &FrameSpec::v4(A4, B4),
        proto::GRE,
        &[0, 0, 0x08, 0x00, 1, 2, 3, 4],
    );
    let p = ip(&f);
    assert_eq!(
        (
            p.tuple.proto,
            p.tuple.sport,
            p.tuple.dport,
            p.tuple.svc,
            p.l4_offset
        ),
        (47, 0, 0, 0, 34)
    );
    // ICMPv6 over IPv4 and ICMP over IPv6 are just protocol numbers.
    build::ip(
        &mut f,
        &FrameSpec::v4(A4, B4),
        proto::ICMPV6,
        &[128, 0, 0, 0, 0, 1, 0, 1],
    );
    assert_eq!((ip(&f).tuple.sport, ip(&f).tuple.svc), (0, 0));
    build::ip(&mut f, &v6spec(), proto::ICMP, &[8, 0, 0, 0, 0, 1, 0, 1]);
    assert_eq!((ip(&f).tuple.sport, ip(&f).tuple.svc), (0, 0));
}

// ---------------------------------------------------------------- ICMP

#[test]
fn icmp_echo_keyed_by_identifier() {
    let mut f = Vec::new();
    for (spec, req, rep) in [(FrameSpec::v4(A4, B4), 8u16, 0u16), (v6spec(), 128, 129)] {
        build::icmp_echo(&mut f, &spec, Echo::Request, 0x4242, 1, b"ping");
        let p = ip(&f);
        assert_eq!(
            (p.tuple.sport, p.tuple.dport, p.tuple.svc),
            (0x4242, 0x4242, req)
        );
        build::icmp_echo(&mut f, &spec.reversed(), Echo::Reply, 0x4242, 1, b"ping");
        let q = ip(&f);
        assert_eq!(
            (q.tuple.sport, q.tuple.dport, q.tuple.svc),
            (0x4242, 0x4242, rep)
        );
        assert_eq!((q.tuple.src, q.tuple.dst), (p.tuple.dst, p.tuple.src));
        assert_ne!(p.icmp, IcmpClass::Error);
    }
}

#[test]
fn icmp_informational_types() {
    let mut f = Vec::new();
    build::icmp(
        &mut f,
        &FrameSpec::v4(A4, B4),
        13,
        0,
        [0, 9, 0, 1],
        &[0; 12],
    );
    let p = ip(&f);
    assert_eq!(
        (
            p.tuple.proto,
            p.tuple.sport,
            p.tuple.dport,
            p.tuple.svc,
            p.icmp == IcmpClass::Error
        ),
        (1, 9, 9, 13, false),
        "timestamp is a query pair: keyed by its identifier"
    );
    build::icmp(&mut f, &v6spec(), 130, 0, [0; 4], &[0; 16]);
    assert_eq!(ip(&f).tuple.svc, 130);
    build::ip(
        &mut f,
        &FrameSpec::v4(A4, B4),
        proto::ICMP,
        &[8, 0, 0, 0, 0, 1, 0],
    );
    assert_eq!(dropped(&f), DropReason::TruncatedIcmp);
}

#[test]
fn icmp_errors_quote_the_original_flow() {
    let orig_spec = FrameSpec::v4(A4, B4);
    let router = FrameSpec::v4([192, 0, 2, 1], A4);
    let mut orig = Vec::new();
    let mut err = Vec::new();
    let mut originals: Vec<(Vec<u8>, FlowTuple)> = Vec::new();
    build::tcp(
        &mut orig,
        &orig_spec,
        &Tcp::new(40000, 443, SYN).payload(b"data"),
    );
    originals.push((orig.clone(), ip(&orig).tuple));
    build::udp(&mut orig, &orig_spec, 5000, 53, b"query");
    originals.push((orig.clone(), ip(&orig).tuple));
    build::icmp_echo(&mut orig, &orig_spec, Echo::Request, 77, 1, b"x");
    originals.push((orig.clone(), ip(&orig).tuple));
    build::sctp(&mut orig, &orig_spec, 9, 10, &[]);
    originals.push((orig.clone(), ip(&orig).tuple));
    build::ip(&mut orig, &orig_spec, proto::GRE, &[0; 4]);
    originals.push((orig.clone(), ip(&orig).tuple));

    for (frame, tuple) in &originals {
        for ty in [3u8, 4, 5, 11, 12] {
            // Whole packet, and the RFC 792 minimum: header + 8 bytes.
            for quote in [
                build::ip_packet(frame),
                &build::ip_packet(frame)[..28.min(build::ip_packet(frame).len())],
            ] {
                build::icmp_error(&mut err, &router, ty, 0, quote);
                let p = ip(&err);
                assert_eq!(
                    (p.tuple.proto, p.tuple.svc, p.tuple.sport, p.tuple.dport),
                    (1, u16::from(ty), 0, 0)
                );
                assert_eq!(p.tuple.src, v4([192, 0, 2, 1]));
                assert_eq!(
                    quoted_flow(&err, &p).map(|q| q.tuple),
                    Some(*tuple),
                    "type {ty}"
                );
            }
        }
    }
    assert_eq!(
        originals[0].1.src,
        v4(A4),
        "the quoted src is the original sender"
    );
}

#[test]
fn icmp_error_quote_checks() {
    let mut orig = Vec::new();
    let mut err = Vec::new();
    let router = FrameSpec::v4([192, 0, 2, 1], A4);
    build::udp(&mut orig, &FrameSpec::v4(A4, B4), 5000, 53, b"query");
    let q = build::ip_packet(&orig).to_vec();

    build::icmp_error(&mut err, &router, 3, 1, &q[..27]);
    assert_eq!(dropped(&err), DropReason::TruncatedIcmpQuote);
    build::icmp_error(&mut err, &router, 3, 1, &q[..19]);
    assert_eq!(dropped(&err), DropReason::TruncatedIcmpQuote);
    build::icmp_error(&mut err, &router, 11, 0, &[]);
    assert_eq!(dropped(&err), DropReason::TruncatedIcmpQuote);

    let mut bad = q.clone();
    bad[0] = 0x43;
    build::icmp_error(&mut err, &router, 3, 1, &bad);
    assert_eq!(dropped(&err), DropReason::BadIcmpQuote);
    // An IPv6 packet quoted by ICMPv4.
    build::udp(&mut orig, &v6spec(), 1, 2, b"");
    build::icmp_error(&mut err, &router, 3, 1, build::ip_packet(&orig));
    assert_eq!(dropped(&err), DropReason::BadIcmpQuote);
    // An error about an error.
    build::icmp_error(&mut orig, &FrameSpec::v4(A4, B4), 3, 3, &q);
    build::icmp_error(&mut err, &router, 3, 1, build::ip_packet(&orig));
    assert_eq!(dropped(&err), DropReason::BadIcmpQuote);
    // A quoted non-first fragment has no ports.
    build::ip(
        &mut orig,
        &FrameSpec::v4(A4, B4).fragment(10, false),
        proto::UDP,
        &[0xff; 8],
    );
    build::icmp_error(&mut err, &router, 11, 1, build::ip_packet(&orig));
    let t = quoted_flow(&err, &ip(&err)).map(|q| q.tuple);
    assert_eq!(
        t.map(|t| (t.proto, t.sport, t.dport, t.src)),
        Some((17, 0, 0, v4(A4)))
    );
    // The quote may carry IPv4 options.
    build::udp(
        &mut orig,
        &FrameSpec::v4(A4, B4).ipv4_options(&[1, 1, 1, 1]),
        7,
        8,
        b"",
    );
    build::icmp_error(&mut err, &router, 3, 3, &build::ip_packet(&orig)[..32]);
    assert_eq!(
        quoted_flow(&err, &ip(&err)).map(|q| (q.tuple.sport, q.tuple.dport)),
        Some((7, 8))
    );
}

#[test]
fn icmpv6_errors_quote_the_original_flow() {
    let router = FrameSpec::v6(Ipv6Addr::new(0x2001, 0xdb8, 9, 0, 0, 0, 0, 1), a6());
    let mut orig = Vec::new();
    let mut err = Vec::new();
    build::tcp(
        &mut orig,
        &v6spec().ipv6_ext(&[Ext::HopByHop, Ext::DestOpts]),
        &Tcp::new(40000, 22, SYN),
    );
    let tuple = ip(&orig).tuple;
    for ty in 1u8..=4 {
        build::icmp_error(&mut err, &router, ty, 0, build::ip_packet(&orig));
        let p = ip(&err);
        assert_eq!(
            (p.tuple.proto, p.tuple.svc, p.tuple.v6),
            (58, u16::from(ty), true)
        );
        assert_eq!(quoted_flow(&err, &p).map(|q| q.tuple), Some(tuple));
    }
    let q = build::ip_packet(&orig);
    build::icmp_error(&mut err, &router, 1, 0, &q[..40 + 16 + 8]);
    assert_eq!(
        quoted_flow(&err, &ip(&err)).map(|q| q.tuple),
        Some(tuple),
        "8 transport bytes suffice"
    );
    build::icmp_error(&mut err, &router, 1, 0, &q[..40 + 16 + 7]);
    assert_eq!(dropped(&err), DropReason::TruncatedIcmpQuote);
    build::icmp_error(&mut err, &router, 1, 0, &q[..40 + 12]);
    assert_eq!(dropped(&err), DropReason::TruncatedIcmpQuote);
    build::icmp_error(&mut err, &router, 1, 0, &q[..39]);
    assert_eq!(dropped(&err), DropReason::TruncatedIcmpQuote);

    // Echo quoted by ICMPv6.
    build::icmp_echo(&mut orig, &v6spec(), Echo::Request, 0x77, 3, b"");
    build::icmp_error(&mut err, &router, 3, 0, build::ip_packet(&orig));
    let t = quoted_flow(&err, &ip(&err)).map(|q| q.tuple);
    assert_eq!(
        t.map(|t| (t.proto, t.sport, t.dport, t.svc)),
        Some((58, 0x77, 0x77, 128))
    );
    // An IPv4 packet quoted by ICMPv6.
    build::udp(&mut orig, &FrameSpec::v4(A4, B4), 1, 2, &[0; 32]);
    build::icmp_error(&mut err, &router, 1, 0, build::ip_packet(&orig));
    assert_eq!(dropped(&err), DropReason::BadIcmpQuote);
}

#[test]
fn neighbor_discovery_is_set_apart() {
    let mut f = Vec::new();
    let spec = v6spec().ttl(255);
    for ty in 133u8..=136 {
        build::icmp(&mut f, &spec, ty, 0, [0; 4], &b6().octets());
        match parse(&f, &cfg()) {
            Parsed::NeighborDiscovery(p) => {
                assert_eq!((p.tuple.svc, p.ttl), (u16::from(ty), 255));
                let target = matches!(ty, 135 | 136).then(|| u128::from(b6()));
                assert_eq!(nd_target(&f, &p), target);
            }
            other => panic!("type {ty}: {other:?}"),
        }
    }
    // Redirects are judged by the rules like any ICMPv6 type.
    build::icmp(&mut f, &spec, 137, 0, [0; 4], &b6().octets());
    assert!(matches!(parse(&f, &cfg()), Parsed::Ip(p) if p.icmp == IcmpClass::Informational));
    build::icmp(&mut f, &spec, 138, 0, [0; 4], &[]);
    assert!(matches!(parse(&f, &cfg()), Parsed::Ip(_)));
    // ICMP (v4) type 135 is not neighbour discovery.
    build::icmp(&mut f, &FrameSpec::v4(A4, B4), 135, 0, [0; 4], &[]);
    assert!(matches!(parse(&f, &cfg()), Parsed::Ip(_)));
    build::icmp(
        &mut f,
        &spec.fragment(0, true),
        135,
        0,
        [0; 4],
        &b6().octets(),
    );
    assert_eq!(dropped(&f), DropReason::FragmentedNeighborDiscovery);
}

#[test]
fn neighbor_discovery_is_validated_as_rfc_4861_asks() {
    let mut f = Vec::new();
    // A router forwarded it: not from the link.
    build::icmp(&mut f, &v6spec().ttl(254), 134, 0, [0; 4], &[0; 8]);
    assert_eq!(dropped(&f), DropReason::NeighborDiscoveryHopLimit);
    // Hidden behind a destination options header.
    build::icmp(
        &mut f,
        &v6spec().ttl(255).ipv6_ext(&[Ext::DestOpts]),
        136,
        0,
        [0; 4],
        &[0; 16],
    );
    assert_eq!(dropped(&f), DropReason::NeighborDiscoveryExtensionHeader);
    // Too large.
    build::icmp(&mut f, &v6spec().ttl(255), 134, 0, [0; 4], &[0; 1300]);
    assert_eq!(dropped(&f), DropReason::OversizedNeighborDiscovery);
    // An advertisement without its target.
    build::icmp(&mut f, &v6spec().ttl(255), 136, 0, [0; 4], &[0; 8]);
    assert_eq!(dropped(&f), DropReason::TruncatedNeighborDiscovery);
}

#[test]
fn icmp_queries_are_request_reply_pairs_keyed_by_identifier() {
    let mut f = Vec::new();
    let q = |request_type, is_request| {
        IcmpClass::Query(IcmpQuery {
            request_type,
            is_request,
        })
    };
    for (ty, class) in [
        (8u8, q(8, true)),
        (0, q(8, false)),
        (13, q(13, true)),
        (14, q(13, false)),
        (15, q(15, true)),
        (16, q(15, false)),
        (17, q(17, true)),
        (18, q(17, false)),
        (9, IcmpClass::Informational),
        (10, IcmpClass::Informational),
    ] {
        build::icmp(
            &mut f,
            &FrameSpec::v4(A4, B4),
            ty,
            0,
            [0x12, 0x34, 0, 1],
            &[],
        );
        let p = ip(&f);
        assert_eq!(p.icmp, class, "type {ty}");
        let id = if matches!(class, IcmpClass::Query(_)) {
            0x1234
        } else {
            0
        };
        assert_eq!(
            (p.tuple.sport, p.tuple.dport, p.tuple.svc),
            (id, id, u16::from(ty))
        );
    }
    for (ty, class) in [
        (128u8, q(128, true)),
        (129, q(128, false)),
        (130, IcmpClass::Informational),
    ] {
        build::icmp(&mut f, &v6spec(), ty, 0, [0x12, 0x34, 0, 1], &[]);
        assert_eq!(ip(&f).icmp, class, "type {ty}");
    }
    build::tcp(&mut f, &FrameSpec::v4(A4, B4), &Tcp::new(1, 2, SYN));
    assert_eq!(ip(&f).icmp, IcmpClass::None);
}

#[test]
fn ipv4_mapped_ipv6_addresses_are_refused_on_the_wire() {
    let mapped = Ipv6Addr::from(0xffff_0a00_0001u128);
    let mut f = Vec::new();
    build::udp(&mut f, &FrameSpec::v6(mapped, b6()), 1, 2, b"x");
    assert_eq!(dropped(&f), DropReason::Ipv4MappedAddress);
    build::udp(&mut f, &FrameSpec::v6(b6(), mapped), 1, 2, b"x");
    assert_eq!(dropped(&f), DropReason::Ipv4MappedAddress);
}

#[test]
fn ah_is_walked_past_in_both_ip_versions() {
    let mut f = Vec::new();
    // IPv4: AH (next header TCP, length 4 = 24 bytes) then a TCP SYN.
    let mut tcp = Vec::new();
    build::tcp(&mut tcp, &FrameSpec::v4(A4, B4), &Tcp::new(1000, 443, SYN));
    let seg = build::ip_packet(&tcp)[20..].to_vec();
    let mut payload = vec![proto::TCP, 4, 0, 0];
    payload.extend_from_slice(&[0; 20]);
    payload.extend_from_slice(&seg);
    build::ip(&mut f, &FrameSpec::v4(A4, B4), proto::AH, &payload);
    let p = ip(&f);
    assert_eq!(
        (p.tuple.proto, p.tuple.dport, p.tcp_flags),
        (proto::TCP, 443, SYN)
    );
    assert_eq!(usize::from(p.l4_offset), 14 + 20 + 24);
    // Cut inside the AH.
    build::ip(&mut f, &FrameSpec::v4(A4, B4), proto::AH, &payload[..16]);
    assert_eq!(dropped(&f), DropReason::TruncatedAh);
    // IPv6 does the same.
    let g = tcp6(v6spec().ipv6_ext(&[Ext::Ah]));
    assert_eq!(ip(&g).tuple.proto, proto::TCP);
}

// ---------------------------------------------------------------- coverage

/// One frame per drop reason; the union must cover every reason.
#[test]
fn every_drop_reason_is_reachable() {
    let mut f = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut check = |frame: &[u8], cfg: &ParseConfig, want: DropReason| {
        assert_eq!(dropped_with(frame, cfg), want);
        seen.insert(want);
    };
    let c = cfg();
    let strict = ParseConfig {
        verify_ipv4_checksum: true,
        ..c
    };
    check(&[0; 13], &c, DropReason::TruncatedEthernet);
    check(
        &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x81, 0],
        &c,
        DropReason::TruncatedVlan,
    );
    build::udp(&mut f, &FrameSpec::v4(A4, B4).qinq(1, 2), 1, 2, b"");
    f.splice(16..16, [0x81, 0x00, 0x00, 0x03]);
    check(&f, &c, DropReason::TooManyVlanTags);
    build::udp(&mut f, &FrameSpec::v4(A4, B4).vlan(4095), 1, 2, b"");
    check(&f, &c, DropReason::ReservedVlanId);
    build::arp(
        &mut f,
        &FrameSpec::v4(A4, B4).min_len(0),
        ArpOp::Request,
        A4.into(),
        B4.into(),
    );
    check(&f[..30], &c, DropReason::TruncatedArp);
    check(&tcp4(SYN)[..33], &c, DropReason::TruncatedIpv4);
    let mut g = tcp4(SYN);
    g[14] = 0x55;
    check(&g, &c, DropReason::BadIpVersion);
    g[14] = 0x41;
    check(&g, &c, DropReason::BadIpv4HeaderLength);
    let mut g = tcp4(SYN);
    g[22] ^= 1;
    check(&g, &strict, DropReason::BadIpv4Checksum);
    let mut g = tcp4(SYN);
    g[17] = 10;
    check(&g, &c, DropReason::BadIpTotalLength);
    g[17] = 100;
    check(&g, &c, DropReason::IpLengthExceedsFrame);
    build::ip(
        &mut f,
        &FrameSpec::v4(A4, B4).fragment(1, true),
        proto::TCP,
        &[0; 8],
    );
    check(&f, &c, DropReason::BadFragment);
    build::ip(
        &mut f,
        &FrameSpec::v4(A4, B4).fragment(0, true),
        proto::UDP,
        &[0; 4],
    );
    check(&f, &c, DropReason::TinyFragment);
    check(&tcp6(v6spec())[..50], &c, DropReason::TruncatedIpv6);
    let mut g = tcp6(v6spec().ipv6_ext(&[Ext::DestOpts]));
    g[55] = 9;
    check(&g, &c, DropReason::TruncatedIpv6Extension);
    check(
        &tcp6(v6spec().ipv6_ext(&[Ext::Ah, Ext::HopByHop])),
        &c,
        DropReason::BadIpv6ExtensionChain,
    );
    check(
        &tcp6(v6spec().ipv6_ext(&[Ext::Ah; 9])),
        &c,
        DropReason::TooManyExtensionHeaders,
    );
    check(
        &tcp6(v6spec().ipv6_ext(&[Ext::Routing { routing_type: 0 }])),
        &c,
        DropReason::DeprecatedRoutingHeader,
    );
    build::ip(&mut f, &v6spec(), proto::TCP, &[0; 10]);
    check(&f, &c, DropReason::TruncatedTcp);
    let mut g = tcp4(SYN);
    g[46] = 0x10;
    check(&g, &c, DropReason::BadTcpHeaderLength);
    check(&tcp4(SYN | FIN), &c, DropReason::BadTcpFlags);
    build::ip(&mut f, &v6spec(), proto::UDP, &[0; 6]);
    check(&f, &c, DropReason::TruncatedUdp);
    build::ip(&mut f, &v6spec(), proto::UDP, &[0, 1, 0, 2, 0, 4, 0, 0]);
    check(&f, &c, DropReason::BadUdpLength);
    build::ip(&mut f, &FrameSpec::v4(A4, B4), proto::SCTP, &[0; 8]);
    check(&f, &c, DropReason::TruncatedSctp);
    build::ip(&mut f, &v6spec(), proto::ICMPV6, &[128, 0, 0, 0]);
    check(&f, &c, DropReason::TruncatedIcmp);
    build::icmp_error(&mut f, &FrameSpec::v4(B4, A4), 3, 0, &[0x45, 0, 0, 20]);
    check(&f, &c, DropReason::TruncatedIcmpQuote);
    build::icmp_error(&mut f, &FrameSpec::v4(B4, A4), 3, 0, &[0x65; 28]);
    check(&f, &c, DropReason::BadIcmpQuote);
    build::icmp(
        &mut f,
        &v6spec().fragment(0, true),
        136,
        0,
        [0; 4],
        &[0; 16],
    );
    check(&f, &c, DropReason::FragmentedNeighborDiscovery);
    build::icmp(&mut f, &v6spec().ttl(64), 135, 0, [0; 4], &[0; 16]);
    check(&f, &c, DropReason::NeighborDiscoveryHopLimit);
    build::icmp(
        &mut f,
        &v6spec().ttl(255).ipv6_ext(&[Ext::HopByHop]),
        135,
        0,
        [0; 4],
        &[0; 16],
    );
    check(&f, &c, DropReason::NeighborDiscoveryExtensionHeader);
    build::icmp(&mut f, &v6spec().ttl(255), 134, 0, [0; 4], &[0; 1400]);
    check(&f, &c, DropReason::OversizedNeighborDiscovery);
    build::icmp(&mut f, &v6spec().ttl(255), 135, 0, [0; 4], &[0; 4]);
    check(&f, &c, DropReason::TruncatedNeighborDiscovery);
    build::arp(
        &mut f,
        &FrameSpec::v4(A4, B4).min_len(0),
        ArpOp::Request,
        A4.into(),
        B4.into(),
    );
    let mut g = f.clone();
    g[14 + 7] = 9;
    check(&g, &c, DropReason::UnsupportedArp);
    g = f.clone();
    g.resize(14 + 47, 0);
    check(&g, &c, DropReason::OversizedArp);
    build::udp(
        &mut f,
        &FrameSpec::v6(Ipv6Addr::from(0xffff_0102_0304u128), b6()),
        1,
        2,
        b"",
    );
    check(&f, &c, DropReason::Ipv4MappedAddress);
    build::ip(&mut f, &FrameSpec::v4(A4, B4), proto::AH, &[6, 4, 0, 0]);
    check(&f, &c, DropReason::TruncatedAh);

    let missing: Vec<_> = DropReason::ALL
        .iter()
        .filter(|r| !seen.contains(r))
        .collect();
    assert!(missing.is_empty(), "no test frame for {missing:?}");
}

#[test]
fn fragment_info_reads_the_position_back_from_the_frame() {
    use bulkhead_packet::{fragment_info, parse_into, FragInfo, FrameKind};
    // IPv4: identification, offset, M flag, header length, protocol.
    let mut spec = FrameSpec::v4([10, 0, 0, 1], [10, 0, 0, 2])
        .vlan(7)
        .fragment(0, true);
    spec.ip_id = 0x1234;
    let mut f = Vec::new();
    build::udp(&mut f, &spec, 1000, 53, &[0u8; 64]);
    let mut slot = IpPacket::default();
    assert_eq!(parse_into(&f, &cfg(), &mut slot), FrameKind::Ip);
    assert_eq!(slot, ip(&f), "parse_into fills the slot as parse does");
    assert_eq!(
        fragment_info(&f, &slot),
        FragInfo {
            id: 0x1234,
            offset: 0,
            data: 20,
            more: true,
            proto: proto::UDP,
        }
    );
    let mut later = Vec::new();
    build::udp(&mut later, &spec.fragment(9, false), 0, 0, &[0u8; 16]);
    let p = ip(&later);
    let info = fragment_info(&later, &p);
    assert_eq!((info.id, info.offset, info.more), (0x1234, 9, false));
    // IPv6: after a destination options header, the fragment header's
    // fields; the fragmentable part starts after it (from the IP header).
    let mut spec6 = FrameSpec::v6(a6(), b6())
        .ipv6_ext(&[Ext::DestOpts])
        .fragment(3, true);
    spec6.ip_id = 0xdead_beef;
    let mut f6 = Vec::new();
    build::udp(&mut f6, &spec6, 0, 0, &[0u8; 24]);
    let p6 = ip(&f6);
    let info6 = fragment_info(&f6, &p6);
    assert_eq!(
        (info6.id, info6.offset, info6.more, info6.data),
        (0xdead_beef, 3, true, 40 + 8 + 8)
    );
    // Not a fragment: all zero.
    let mut whole = Vec::new();
    build::udp(
        &mut whole,
        &FrameSpec::v4([10, 0, 0, 1], [10, 0, 0, 2]),
        1,
        2,
        b"x",
    );
    assert_eq!(fragment_info(&whole, &ip(&whole)), FragInfo::default());
}

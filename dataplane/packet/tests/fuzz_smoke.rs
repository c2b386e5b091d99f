//! A bounded, deterministic fuzz run inside `cargo test`: random frames and
//! mutations of valid ones through `parse`, checking it never panics and
//! that what it returns is consistent with the frame. The unbounded,
//! coverage-guided version lives in `fuzz/` (cargo-fuzz).

use std::net::Ipv6Addr;

use bulkhead_packet::build::{self, Addrs, ArpOp, Echo, Ext, FrameSpec, Tcp};
use bulkhead_packet::tcp_flags::{ACK, SYN};
use bulkhead_packet::{parse, proto, ParseConfig, Parsed};

/// xorshift64*: deterministic, so a failure reproduces from the iteration number.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Bytes that steer the parser into its branches.
const INTERESTING: [u8; 16] = [
    0, 1, 0xff, 0x45, 0x4f, 0x60, 0x81, 0x88, 0x86, 0xdd, 0x06, 0x11, 0x3a, 0x2c, 0x2b, 0x33,
];

fn seeds() -> Vec<Vec<u8>> {
    let v4 = FrameSpec::v4([10, 0, 0, 1], [10, 0, 0, 2]);
    let v6 = FrameSpec::v6(Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED);
    let mut out = Vec::new();
    let mut f = Vec::new();
    let mut push = |f: &Vec<u8>| out.push(f.clone());
    for spec in [
        v4,
        v4.vlan(10),
        v4.qinq(3, 4).ipv4_options(&[1, 1, 1, 1]),
        v6,
        v6.vlan(7),
    ] {
        build::tcp(&mut f, &spec, &Tcp::new(1, 2, SYN | ACK).payload(b"abc"));
        push(&f);
        build::udp(&mut f, &spec, 3, 4, b"hello");
        push(&f);
        build::sctp(&mut f, &spec, 5, 6, &[]);
        push(&f);
        build::icmp_echo(&mut f, &spec, Echo::Request, 9, 1, b"");
        push(&f);
        let mut orig = Vec::new();
        build::tcp(&mut orig, &spec.reversed(), &Tcp::new(2, 1, SYN));
        let ty = if matches!(spec.addrs, Addrs::V4 { .. }) {
            3
        } else {
            1
        };
        build::icmp_error(&mut f, &spec, ty, 0, build::ip_packet(&orig));
        push(&f);
        build::ip(&mut f, &spec.fragment(5, false), proto::UDP, &[0; 16]);
        push(&f);
    }
    let chain = v6.ipv6_ext(&[
        Ext::HopByHop,
        Ext::DestOpts,
        Ext::Routing { routing_type: 4 },
        Ext::Ah,
    ]);
    build::tcp(&mut f, &chain.fragment(0, true), &Tcp::new(1, 2, SYN));
    push(&f);
    let mut orig = Vec::new();
    build::udp(&mut orig, &chain, 1, 2, b"x");
    build::icmp_error(&mut f, &v6, 1, 0, build::ip_packet(&orig));
    push(&f);
    build::icmp(&mut f, &v6.ttl(255), 135, 0, [0; 4], &[0; 16]);
    push(&f);
    build::arp(
        &mut f,
        &v4,
        ArpOp::Request,
        [1, 2, 3, 4].into(),
        [5, 6, 7, 8].into(),
    );
    push(&f);
    out
}

fn mutate(rng: &mut Rng, frame: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        let len = frame.len().max(1);
        match rng.below(6) {
            0 => {
                let i = rng.below(len);
                if let Some(b) = frame.get_mut(i) {
                    *b ^= 1 << rng.below(8);
                }
            }
            1 => {
                let i = rng.below(len);
                let v = INTERESTING[rng.below(INTERESTING.len())];
                if let Some(b) = frame.get_mut(i) {
                    *b = v;
                }
            }
            2 => frame.truncate(rng.below(len + 1)),
            3 => {
                let i = rng.below(len + 1).min(frame.len());
                let n = rng.below(9);
                frame.splice(i..i, (0..n).map(|_| rng.next() as u8));
            }
            4 => {
                let i = rng.below(len);
                if let Some(b) = frame.get_mut(i) {
                    *b = rng.next() as u8;
                }
            }
            _ => {
                // Make a random 16-bit field look like a length near the frame size.
                let i = rng.below(len);
                let v = (frame.len() as u16)
                    .wrapping_add(rng.below(16) as u16)
                    .wrapping_sub(8);
                if let Some(s) = frame.get_mut(i..i + 2) {
                    s.copy_from_slice(&v.to_be_bytes());
                }
            }
        }
    }
}

fn check(frame: &[u8], cfg: &ParseConfig) {
    match parse(frame, cfg) {
        Parsed::Ip(p) | Parsed::NeighborDiscovery(p) => {
            let (l3, l4, len) = (
                usize::from(p.l3_offset),
                usize::from(p.l4_offset),
                usize::from(p.ip_len),
            );
            assert!(
                l3 < l4 && l4 <= l3 + len && l3 + len <= frame.len(),
                "offsets {p:?} for {frame:02x?}"
            );
            let header = if p.tuple.v6 { 40 } else { 20 };
            assert!(l4 - l3 >= header, "{p:?}");
            if p.fragment == bulkhead_packet::Fragment::NonFirst {
                assert_eq!(
                    (p.tuple.sport, p.tuple.dport, p.tuple.svc, p.tcp_flags),
                    (0, 0, 0, 0)
                );
            }
        }
        Parsed::Arp(_) => assert!(frame.len() >= 14 + 28),
        Parsed::NonIp { .. } => assert!(frame.len() >= 14),
        Parsed::Drop(r) => assert!(r.index() < bulkhead_packet::DropReason::COUNT),
    }
}

#[test]
fn fuzz_smoke() {
    let seeds = seeds();
    let configs = [
        ParseConfig::default(),
        ParseConfig {
            verify_ipv4_checksum: true,
            check_tcp_flags: false,
        },
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut frame = Vec::with_capacity(256);
    let mut outcomes = [0usize; 5];
    for i in 0..1_000_000 {
        frame.clear();
        if i % 4 == 0 {
            // Random bytes, half of them behind an IP ethertype.
            let n = rng.below(120);
            frame.extend((0..n).map(|_| rng.next() as u8));
            if i % 8 == 0 && frame.len() > 14 {
                let et: u16 = [0x0800, 0x86dd, 0x8100, 0x88a8, 0x0806][rng.below(5)];
                frame[12..14].copy_from_slice(&et.to_be_bytes());
            }
        } else {
            frame.extend_from_slice(&seeds[rng.below(seeds.len())]);
            mutate(&mut rng, &mut frame);
        }
        let cfg = &configs[i % 2];
        check(&frame, cfg);
        outcomes[match parse(&frame, cfg) {
            Parsed::Ip(_) => 0,
            Parsed::NeighborDiscovery(_) => 1,
            Parsed::Arp(_) => 2,
            Parsed::NonIp { .. } => 3,
            Parsed::Drop(_) => 4,
        }] += 1;
    }
    eprintln!("outcomes (ip, nd, arp, non-ip, drop): {outcomes:?}");
    // The mutations must keep reaching every outcome, or this test fuzzes nothing.
    assert!(outcomes.iter().all(|&n| n > 100), "outcomes {outcomes:?}");
}

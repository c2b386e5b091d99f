//! The builders write checksums a receiver accepts. Verified the way a
//! receiver does (RFC 1071: the sum over the pseudo header and the segment,
//! checksum included, folds to 0xffff), with the pseudo header assembled
//! here byte by byte from RFC 768 / 793 / 8200 / 4443, independently of the
//! builder's own arithmetic.

use std::net::Ipv6Addr;

use bulkhead_packet::build::{self, Echo, Ext, FrameSpec, Tcp};
use bulkhead_packet::checksum::{crc32c, verify};
use bulkhead_packet::tcp_flags::{ACK, PSH};
use bulkhead_packet::{parse, ParseConfig, Parsed};

/// (IP header bytes, transport bytes, protocol, v6) of a built frame.
fn split(frame: &[u8]) -> (Vec<u8>, Vec<u8>, u8, bool) {
    let Parsed::Ip(p) = parse(frame, &ParseConfig::default()) else {
        panic!("not IP")
    };
    let l3 = usize::from(p.l3_offset);
    let l4 = usize::from(p.l4_offset);
    let end = l3 + usize::from(p.ip_len);
    (
        frame[l3..l4].to_vec(),
        frame[l4..end].to_vec(),
        p.tuple.proto,
        p.tuple.v6,
    )
}

fn pseudo_header(ip: &[u8], proto: u8, v6: bool, l4_len: usize) -> Vec<u8> {
    let mut ph = Vec::new();
    if v6 {
        ph.extend_from_slice(&ip[8..40]); // source, destination
        ph.extend_from_slice(&(l4_len as u32).to_be_bytes());
        ph.extend_from_slice(&[0, 0, 0, proto]);
    } else {
        ph.extend_from_slice(&ip[12..20]);
        ph.extend_from_slice(&[0, proto]);
        ph.extend_from_slice(&(l4_len as u16).to_be_bytes());
    }
    ph
}

fn assert_valid(frame: &[u8]) {
    let (ip, l4, proto, v6) = split(frame);
    if !v6 {
        assert!(verify(&ip), "IPv4 header checksum");
    }
    match proto {
        1 => assert!(verify(&l4), "ICMP checksum"),
        6 | 17 | 58 => {
            let mut all = pseudo_header(&ip, proto, v6, l4.len());
            all.extend_from_slice(&l4);
            assert!(verify(&all), "proto {proto} checksum");
        }
        132 => {
            let mut zeroed = l4.clone();
            zeroed[8..12].fill(0);
            assert_eq!(
                u32::from_le_bytes([l4[8], l4[9], l4[10], l4[11]]),
                crc32c(&zeroed)
            );
        }
        other => panic!("unexpected protocol {other}"),
    }
}

#[test]
fn builders_write_valid_checksums() {
    let v4 = FrameSpec::v4([192, 168, 1, 10], [172, 16, 5, 3]);
    let v6 = FrameSpec::v6(
        Ipv6Addr::new(0xfe80, 0, 0, 0, 1, 2, 3, 4),
        Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0xff, 1),
    );
    let chain = v6.ipv6_ext(&[Ext::HopByHop, Ext::Ah]);
    let mut f = Vec::new();
    let payloads: [&[u8]; 4] = [b"", b"a", b"odd-length payload", &[0xff; 1001]];
    for spec in [
        v4,
        v4.vlan(3).ipv4_options(&[7, 3, 4]),
        v6,
        chain.qinq(1, 2),
    ] {
        for payload in payloads {
            build::tcp(
                &mut f,
                &spec,
                &Tcp::new(443, 51000, ACK | PSH)
                    .seq(7)
                    .ack(9)
                    .payload(payload),
            );
            assert_valid(&f);
            build::tcp(
                &mut f,
                &spec,
                &Tcp::new(1, 2, ACK)
                    .options(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2])
                    .payload(payload),
            );
            assert_valid(&f);
            build::udp(&mut f, &spec, 53, 33000, payload);
            assert_valid(&f);
            build::icmp_echo(&mut f, &spec, Echo::Reply, 0xbeef, 4, payload);
            assert_valid(&f);
            build::sctp(&mut f, &spec, 2905, 2905, payload);
            assert_valid(&f);
        }
    }
}

#[test]
fn udp_length_covers_header_and_payload() {
    let mut f = Vec::new();
    build::udp(
        &mut f,
        &FrameSpec::v4([1, 1, 1, 1], [2, 2, 2, 2]),
        1,
        2,
        b"12345",
    );
    assert_eq!(u16::from_be_bytes([f[38], f[39]]), 13);
}

//! Writes one valid frame per protocol and feature into `corpus/parse/` so
//! libFuzzer starts deep in the parser instead of rediscovering Ethernet:
//!   cargo run --example seed_corpus && cargo +nightly fuzz run parse
#![forbid(unsafe_code)]

use std::net::Ipv6Addr;

use bulkhead_packet::build::{self, ArpOp, Echo, Ext, FrameSpec, Tcp};
use bulkhead_packet::{proto, tcp_flags};

fn main() -> std::io::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/parse");
    std::fs::create_dir_all(&dir)?;
    let v4 = FrameSpec::v4([10, 0, 0, 1], [10, 0, 0, 2]);
    let v6 = FrameSpec::v6(
        Ipv6Addr::LOCALHOST,
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
    );
    let chain = v6.ipv6_ext(&[
        Ext::HopByHop,
        Ext::DestOpts,
        Ext::Routing { routing_type: 4 },
        Ext::Ah,
    ]);
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut f = Vec::new();
    for spec in [
        v4,
        v4.qinq(5, 6).ipv4_options(&[1, 1, 1, 1]),
        v6,
        chain.vlan(9),
    ] {
        build::tcp(&mut f, &spec, &Tcp::new(1, 2, tcp_flags::SYN));
        frames.push(f.clone());
        build::udp(&mut f, &spec, 3, 4, b"x");
        frames.push(f.clone());
        build::sctp(&mut f, &spec, 5, 6, &[]);
        frames.push(f.clone());
        build::icmp_echo(&mut f, &spec, Echo::Request, 7, 1, b"");
        frames.push(f.clone());
        build::ip(&mut f, &spec.fragment(3, true), proto::UDP, &[0; 8]);
        frames.push(f.clone());
        build::udp(&mut f, &spec.fragment(0, true), 3, 4, &[0; 8]);
        frames.push(f.clone());
        let mut orig = Vec::new();
        build::tcp(&mut orig, &spec.reversed(), &Tcp::new(2, 1, tcp_flags::SYN));
        let ty = if matches!(spec.addrs, build::Addrs::V4 { .. }) {
            3
        } else {
            1
        };
        build::icmp_error(&mut f, &spec, ty, 0, build::ip_packet(&orig));
        frames.push(f.clone());
    }
    build::icmp(&mut f, &v6.ttl(255), 135, 0, [0; 4], &[0; 16]);
    frames.push(f.clone());
    build::arp(
        &mut f,
        &v4,
        ArpOp::Request,
        [10, 0, 0, 1].into(),
        [10, 0, 0, 2].into(),
    );
    frames.push(f.clone());
    for (i, frame) in frames.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:02}")), frame)?;
    }
    println!("wrote {} seeds to {}", frames.len(), dir.display());
    Ok(())
}

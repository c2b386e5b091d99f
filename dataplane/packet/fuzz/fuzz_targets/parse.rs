//! Fuzz target: `parse` never panics, under both configurations, and what it
//! returns is consistent with the frame.
//!
//! No `#![forbid(unsafe_code)]` here: `fuzz_target!` expands to the
//! `#[no_mangle] extern "C"` entry point libFuzzer calls, which that lint
//! rejects. This crate holds no unchecked code of its own.
#![no_main]

use bulkhead_packet::{parse, DropReason, Fragment, ParseConfig, Parsed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    let lax = ParseConfig {
        verify_ipv4_checksum: false,
        check_tcp_flags: false,
    };
    let strict = ParseConfig {
        verify_ipv4_checksum: true,
        check_tcp_flags: true,
    };
    for cfg in [lax, strict] {
        match parse(frame, &cfg) {
            Parsed::Ip(p) | Parsed::NeighborDiscovery(p) => {
                let l3 = usize::from(p.l3_offset);
                let l4 = usize::from(p.l4_offset);
                let end = l3 + usize::from(p.ip_len);
                assert!(l3 < l4 && l4 <= end && end <= frame.len());
                if p.fragment == Fragment::NonFirst {
                    assert_eq!(
                        (p.tuple.sport, p.tuple.dport, p.tuple.svc, p.tcp_flags),
                        (0, 0, 0, 0)
                    );
                }
            }
            Parsed::Arp(_) | Parsed::NonIp { .. } => assert!(frame.len() >= 14),
            Parsed::Drop(r) => assert!(r.index() < DropReason::COUNT),
        }
    }
    // The strict configuration only ever drops more.
    if let Parsed::Drop(_) = parse(frame, &lax) {
        assert!(matches!(parse(frame, &strict), Parsed::Drop(_)));
    }
});

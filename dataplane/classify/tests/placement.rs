//! Placement: VLANs, nested prefixes, IPv6, endpoints, anti-spoofing.

mod common;

use bulkhead_classify::{CompiledPolicy, PlaceError};
use common::*;

fn sample() -> Both {
    let mut rs = ruleset(
        vec![
            world(),
            seg(50, "wide", &[], &["10.50.0.0/16", "fd00:50::/32"]),
            seg(51, "narrow", &[], &["10.50.30.0/24", "fd00:50:30::/48"]),
            seg(10, "web", &[10], &["10.0.10.0/24"]),
            seg(40, "logs", &[], &["10.0.40.10/32"]),
            seg(60, "vlan-only", &[60, 61], &[]),
            seg(70, "eps", &[], &[]),
        ],
        vec![],
    );
    rs.endpoints = vec![
        endpoint("10.0.40.10", 6),    // equal to logs' /32: the endpoint wins
        endpoint("10.50.30.7", 6),    // inside narrow
        endpoint("fd00:50:30::7", 6), // inside narrow (IPv6)
        endpoint("192.0.2.1", 6),     // outside every prefix
    ];
    Both::new(rs)
}

#[test]
fn nested_prefixes_longest_wins() {
    let b = sample();
    assert_eq!(b.dst("10.50.1.1"), 1);
    assert_eq!(b.dst("10.50.30.1"), 2);
    assert_eq!(b.dst("10.50.31.255"), 1);
    assert_eq!(b.dst("10.51.0.0"), 0);
    assert_eq!(b.src(None, "10.50.30.200"), Ok(2));
    assert_eq!(b.src(None, "8.8.8.8"), Ok(0));
}

#[test]
fn ipv6_nested_prefixes() {
    let b = sample();
    assert_eq!(b.dst("fd00:50:1::1"), 1);
    assert_eq!(b.dst("fd00:50:30::1"), 2);
    assert_eq!(b.dst("fd00:51::1"), 0);
    // An IPv4 prefix never matches an IPv6 address, even a mapped one.
    assert_eq!(b.dst("::ffff:10.50.30.1"), 0);
}

#[test]
fn endpoints_override_prefixes() {
    let b = sample();
    assert_eq!(
        b.dst("10.0.40.10"),
        6,
        "endpoint beats an equal /32 segment prefix"
    );
    assert_eq!(b.dst("10.50.30.7"), 6);
    assert_eq!(b.dst("10.50.30.8"), 2);
    assert_eq!(b.dst("fd00:50:30::7"), 6);
    assert_eq!(b.dst("192.0.2.1"), 6);
    assert_eq!(b.dst("192.0.2.2"), 0);
}

#[test]
fn later_endpoint_with_same_address_wins() {
    let mut rs = ruleset(
        vec![world(), seg(1, "a", &[], &[]), seg(2, "b", &[], &[])],
        vec![],
    );
    rs.endpoints = vec![endpoint("10.1.1.1", 1), endpoint("10.1.1.1", 2)];
    let b = Both::new(rs);
    assert_eq!(b.dst("10.1.1.1"), 2);
}

#[test]
fn vlan_places_source_before_address() {
    let b = sample();
    assert_eq!(b.src(Some(60), "8.8.8.8"), Ok(5));
    assert_eq!(b.src(Some(61), "fd00:99::1"), Ok(5));
    assert_eq!(b.src(Some(10), "10.0.10.9"), Ok(3));
    // Unlisted VLANs (and 0, 4095, out of range) fall back to the address.
    assert_eq!(b.src(Some(11), "10.0.10.9"), Ok(3));
    assert_eq!(b.src(Some(0), "10.50.0.1"), Ok(1));
    assert_eq!(b.src(Some(4095), "10.50.0.1"), Ok(1));
    assert_eq!(b.src(Some(u16::MAX), "10.50.0.1"), Ok(1));
    // Destination placement ignores VLANs entirely.
    assert_eq!(b.dst("10.0.10.9"), 3);
}

#[test]
fn anti_spoofing() {
    let b = sample();
    // VLAN says web, address lies in narrow: spoofed.
    assert_eq!(b.src(Some(10), "10.50.30.1"), Err(PlaceError::Spoofed));
    // ... or in an endpoint of another segment.
    assert_eq!(b.src(Some(10), "192.0.2.1"), Err(PlaceError::Spoofed));
    assert_eq!(b.src(Some(60), "fd00:50::1"), Err(PlaceError::Spoofed));
    // Address in world (no prefix) or in the VLAN's own segment: fine.
    assert_eq!(b.src(Some(10), "203.0.113.9"), Ok(3));
    assert_eq!(b.src(Some(10), "10.0.10.1"), Ok(3));

    let mut rs = b.rs.clone();
    rs.anti_spoofing = false;
    let off = Both::new(rs);
    assert_eq!(off.src(Some(10), "10.50.30.1"), Ok(3));
}

#[test]
fn default_route_prefix_is_a_normal_prefix() {
    let b = Both::new(ruleset(
        vec![
            world(),
            seg(1, "all", &[], &["0.0.0.0/0"]),
            seg(2, "x", &[7], &["10.0.0.0/8"]),
        ],
        vec![],
    ));
    assert_eq!(b.dst("1.2.3.4"), 1);
    assert_eq!(b.dst("10.2.3.4"), 2);
    assert_eq!(b.dst("::1"), 0);
    assert_eq!(b.src(Some(7), "1.2.3.4"), Err(PlaceError::Spoofed));
}

#[test]
fn with_endpoints_replaces_only_placement() {
    let b = sample();
    let moved = b.cp.with_endpoints(&[endpoint("10.50.1.1", 5)]).unwrap();
    assert!(moved.shares_rules_with(&b.cp));
    assert_eq!(moved.place_dst(ip("10.50.1.1")), 5);
    assert_eq!(
        moved.place_dst(ip("10.0.40.10")),
        4,
        "old endpoint gone, logs' /32 again"
    );
    assert_eq!(
        b.cp.place_dst(ip("10.0.40.10")),
        6,
        "the original is untouched"
    );
    let bad = b.cp.with_endpoints(&[endpoint("10.50.1.1", 99)]);
    assert!(bad.is_err());
}

#[test]
fn invalid_rulesets_are_refused_not_panicked() {
    let good = sample().rs;
    let mut dup_vlan = good.clone();
    dup_vlan.segments[2].vlans = vec![10];
    let mut dup_prefix = good.clone();
    dup_prefix.segments[2].prefixes = vec!["10.50.0.0/16".parse().unwrap()];
    let mut host_bits = good.clone();
    host_bits.segments[2].prefixes = vec!["10.50.30.1/24".parse().unwrap()];
    let mut no_world = good.clone();
    no_world.segments.clear();
    let mut bad_world = good.clone();
    bad_world.segments[0].id = bulkhead_classify::SegmentId(5);
    let mut bad_rule = good.clone();
    bad_rule.rules = vec![rule(
        "r",
        list(&[1, 99]),
        list(&[1]),
        vec![tcp(1, 2)],
        bulkhead_classify::Action::Allow,
    )];
    let mut unsorted = good.clone();
    unsorted.rules = vec![rule(
        "r",
        list(&[2, 1]),
        list(&[1]),
        vec![tcp(1, 2)],
        bulkhead_classify::Action::Allow,
    )];
    let mut bad_range = good.clone();
    bad_range.rules = vec![rule(
        "r",
        list(&[1]),
        list(&[1]),
        vec![tcp(9, 2)],
        bulkhead_classify::Action::Allow,
    )];
    let mut no_services = good.clone();
    no_services.rules = vec![rule(
        "r",
        list(&[1]),
        list(&[1]),
        vec![],
        bulkhead_classify::Action::Allow,
    )];
    let mut bad_endpoint = good.clone();
    bad_endpoint.endpoints.push(endpoint("1.1.1.1", 7));
    let mut bad_vlan = good.clone();
    bad_vlan.segments[1].vlans = vec![4095];
    for (what, rs) in [
        ("dup vlan", dup_vlan),
        ("dup prefix", dup_prefix),
        ("host bits", host_bits),
        ("no world", no_world),
        ("world id", bad_world),
        ("rule index", bad_rule),
        ("unsorted list", unsorted),
        ("port range", bad_range),
        ("no services", no_services),
        ("endpoint index", bad_endpoint),
        ("vlan 4095", bad_vlan),
    ] {
        let err = CompiledPolicy::compile(&rs).err();
        assert!(err.is_some(), "{what}: compiled a broken ruleset");
        assert!(!err.unwrap().to_string().is_empty());
    }
}

#[test]
fn segment_lookups() {
    let b = sample();
    assert_eq!(b.cp.segment_count(), 7);
    assert_eq!(
        b.cp.segment_index(bulkhead_classify::SegmentId(51)),
        Some(2)
    );
    assert_eq!(b.cp.segment_index(bulkhead_classify::SegmentId(52)), None);
    assert_eq!(b.cp.segment_id(2), bulkhead_classify::SegmentId(51));
    assert_eq!(b.cp.segment_name(2), "narrow");
    assert_eq!(b.cp.segment_name(200), "?");
}

#[test]
fn zoned_segments_accept_sources_only_from_their_zones() {
    let b = Both::new(ruleset(
        vec![
            world(),
            zoned(seg(10, "clients", &[], &["10.1.0.0/16"]), &["edge", "vpn"]),
            zoned(seg(20, "servers", &[20], &["10.2.0.0/16"]), &["dc"]),
            seg(30, "free", &[], &["10.3.0.0/16"]),
        ],
        vec![],
    ));
    // Entered where the segment attaches.
    assert_eq!(b.src_in(None, "10.1.2.3", Some("edge")), Ok(1));
    assert_eq!(b.src_in(None, "10.1.2.3", Some("vpn")), Ok(1));
    assert_eq!(b.src_in(Some(20), "10.2.0.9", Some("dc")), Ok(2));
    // A host elsewhere claiming the address, or a zone the policy does not
    // name, or no zone at all.
    assert_eq!(
        b.src_in(None, "10.1.2.3", Some("dc")),
        Err(PlaceError::Spoofed)
    );
    assert_eq!(
        b.src_in(None, "10.1.2.3", Some("lab")),
        Err(PlaceError::Spoofed)
    );
    assert_eq!(b.src_in(None, "10.1.2.3", None), Err(PlaceError::Spoofed));
    // Placed by VLAN into a zoned segment: the zone is checked too.
    assert_eq!(
        b.src_in(Some(20), "192.0.2.1", Some("edge")),
        Err(PlaceError::Spoofed)
    );
    // Segments without zones, and world, are not bound to a place.
    assert_eq!(b.src_in(None, "10.3.0.1", Some("edge")), Ok(3));
    assert_eq!(b.src_in(None, "192.0.2.1", None), Ok(0));
    // Unchecked (tests and `check` without a zone).
    assert_eq!(b.src(None, "10.1.2.3"), Ok(1));
}

#[test]
fn zone_checks_follow_the_anti_spoofing_switch() {
    let mut rs = ruleset(
        vec![
            world(),
            zoned(seg(10, "clients", &[], &["10.1.0.0/16"]), &["edge"]),
        ],
        vec![],
    );
    rs.anti_spoofing = false;
    let b = Both::new(rs);
    assert_eq!(b.src_in(None, "10.1.2.3", Some("dc")), Ok(1));
}

#[test]
fn more_than_64_zones_are_refused() {
    let segs: Vec<_> = std::iter::once(world())
        .chain((0..65u32).map(|i| {
            let name = format!("s{i}");
            let zone = format!("z{i}");
            zoned(seg(i + 1, &name, &[], &[]), &[zone.as_str()])
        }))
        .collect();
    let e = CompiledPolicy::compile(&ruleset(segs, vec![])).unwrap_err();
    assert!(e.to_string().contains("65 distinct zones"), "{e}");
}

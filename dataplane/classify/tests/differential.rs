//! Property tests: for random valid rulesets and random packets, the compiled
//! policy places and decides exactly as the reference evaluator does.

mod common;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bulkhead_classify::{
    reference, Action, CompileOptions, CompiledPolicy, EndpointDef, FlowQuery, LookupMode, Mode,
    RuleDef, Ruleset, SegmentDef, SegmentId, SegmentSet, ServiceSpec,
};
use ipnet::IpNet;
use proptest::prelude::*;

/// Prefixes drawn from a small address space so they nest and collide.
fn prefix() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        4 => (0u8..4, 0u8..4, any::<u8>(), prop::sample::select(vec![0u8, 8, 16, 20, 24, 25, 30, 32]))
            .prop_map(|(b, c, d, len)| {
                let len = if len == 0 && d % 8 != 0 { 16 } else { len };
                IpNet::new(IpAddr::V4(Ipv4Addr::new(10, b, c, d)), len).unwrap().trunc()
            }),
        2 => (0u16..4, 0u16..4, any::<u16>(), prop::sample::select(vec![16u8, 32, 48, 64, 120, 127, 128]))
            .prop_map(|(b, c, d, len)| {
                let ip = Ipv6Addr::new(0xfd00, b, c, 0, 0, 0, 0, d);
                IpNet::new(IpAddr::V6(ip), len).unwrap().trunc()
            }),
    ]
}

fn address() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u8..4, 0u8..4, any::<u8>()).prop_map(|(b, c, d)| IpAddr::V4(Ipv4Addr::new(10, b, c, d))),
        (0u16..4, 0u16..4, any::<u16>())
            .prop_map(|(b, c, d)| IpAddr::V6(Ipv6Addr::new(0xfd00, b, c, 0, 0, 0, 0, d))),
    ]
}

#[derive(Clone, Debug)]
struct SegRecipe {
    vlans: Vec<u16>,
    prefixes: Vec<IpNet>,
    monitor: bool,
    zones: Vec<String>,
}

/// Zone names the random policies use; `zx` is never listed by a segment.
const ZONES: [&str; 4] = ["z0", "z1", "z2", "zx"];

fn seg_recipe() -> impl Strategy<Value = SegRecipe> {
    (
        prop::collection::vec(1u16..12, 0..3),
        prop::collection::vec(prefix(), 0..4),
        prop::bool::weighted(0.2),
        prop::sample::subsequence(vec!["z0", "z1", "z2"], 0..3),
    )
        .prop_map(|(vlans, prefixes, monitor, zones)| SegRecipe {
            vlans,
            prefixes,
            monitor,
            zones: zones.into_iter().map(String::from).collect(),
        })
}

fn spec() -> impl Strategy<Value = ServiceSpec> {
    let port = prop_oneof![
        3 => prop::sample::select(vec![0u16, 1, 22, 53, 80, 443, 1000, 8080, 65534, 65535]),
        1 => any::<u16>(),
    ];
    prop_oneof![
        1 => Just(ServiceSpec::Any),
        6 => (prop::sample::select(vec![6u8, 17, 132]), port.clone(), port)
            .prop_map(|(proto, a, b)| ServiceSpec::Ports { proto, lo: a.min(b), hi: a.max(b) }),
        2 => (prop::sample::select(vec![1u8, 58]), any::<u8>(), any::<u8>(), any::<bool>())
            .prop_map(|(proto, a, b, one)| {
                let (lo, hi) = if one { (a, a) } else { (a.min(b), a.max(b)) };
                ServiceSpec::IcmpTypes { proto, lo, hi }
            }),
        1 => prop::sample::select(vec![6u8, 17, 47, 50, 1]).prop_map(ServiceSpec::Proto),
    ]
}

/// A segment selector over `n` segments (indices < n, world included).
fn selector(n: u32) -> impl Strategy<Value = SegmentSet> {
    prop_oneof![
        1 => Just(SegmentSet::Any),
        4 => prop::collection::vec(0..n, 0..4).prop_map(|mut v| {
            v.sort_unstable();
            v.dedup();
            SegmentSet::List(v)
        }),
    ]
}

fn rule_def(n: u32) -> impl Strategy<Value = RuleDef> {
    (
        selector(n),
        selector(n),
        // Up to 5 specs: more than the 4 packed scan slots of a rule.
        prop::collection::vec(spec(), 1..6),
        prop::bool::weighted(0.35),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(from, to, services, deny, log)| RuleDef {
            name: String::new(),
            from,
            to,
            services,
            action: if deny { Action::Deny } else { Action::Allow },
            log,
        })
}

fn ruleset() -> impl Strategy<Value = Ruleset> {
    (1u32..9)
        .prop_flat_map(|extra| {
            let n = extra + 1;
            (
                prop::collection::vec(seg_recipe(), extra as usize),
                prop::collection::vec((address(), 0..n), 0..6),
                prop::collection::vec(rule_def(n), 0..24),
                any::<bool>(),
                prop::bool::weighted(0.8),
                prop::bool::weighted(0.3),
            )
        })
        .prop_map(
            |(recipes, endpoints, rules, default_allow, anti_spoofing, world_monitor)| {
                let mut segments = vec![SegmentDef {
                    id: SegmentId::WORLD,
                    name: "world".into(),
                    vlans: vec![],
                    prefixes: vec![],
                    mode: if world_monitor {
                        Mode::Monitor
                    } else {
                        Mode::Enforce
                    },
                    zones: vec![],
                }];
                // Keep invariants: a VLAN or prefix goes to the first segment claiming it.
                let mut vlans_seen = HashSet::new();
                let mut prefixes_seen = HashSet::new();
                for (i, r) in recipes.into_iter().enumerate() {
                    segments.push(SegmentDef {
                        id: SegmentId(i as u32 * 10 + 10),
                        name: format!("seg{i}"),
                        vlans: r
                            .vlans
                            .into_iter()
                            .filter(|v| vlans_seen.insert(*v))
                            .collect(),
                        prefixes: r
                            .prefixes
                            .into_iter()
                            .filter(|p| prefixes_seen.insert(*p))
                            .collect(),
                        mode: if r.monitor {
                            Mode::Monitor
                        } else {
                            Mode::Enforce
                        },
                        zones: r.zones,
                    });
                }
                let rules = rules
                    .into_iter()
                    .enumerate()
                    .map(|(i, mut r)| {
                        r.name = format!("r{i}");
                        r
                    })
                    .collect();
                Ruleset {
                    default_action: if default_allow {
                        Action::Allow
                    } else {
                        Action::Deny
                    },
                    segments,
                    endpoints: endpoints
                        .into_iter()
                        .map(|(ip, segment)| EndpointDef { ip, segment })
                        .collect(),
                    rules,
                    anti_spoofing,
                }
            },
        )
}

/// A tiny deterministic generator for the packets of one case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// An address mostly inside the ruleset's prefixes and endpoints.
fn pick_address(rs: &Ruleset, rng: &mut Rng) -> IpAddr {
    let prefixes: Vec<IpNet> = rs
        .segments
        .iter()
        .flat_map(|s| s.prefixes.iter().copied())
        .collect();
    match rng.below(10) {
        0..=5 if !prefixes.is_empty() => {
            let p = prefixes[rng.below(prefixes.len())];
            let bits = u128::from(rng.next()) << 64 | u128::from(rng.next());
            match p {
                IpNet::V4(n) => {
                    let host = !u32::from(n.netmask()) & bits as u32;
                    IpAddr::V4(Ipv4Addr::from(u32::from(n.network()) | host))
                }
                IpNet::V6(n) => {
                    let host = !u128::from(n.netmask()) & bits;
                    IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) | host))
                }
            }
        }
        6..=7 if !rs.endpoints.is_empty() => rs.endpoints[rng.below(rs.endpoints.len())].ip,
        _ => {
            if rng.below(2) == 0 {
                IpAddr::V4(Ipv4Addr::new(
                    10,
                    rng.below(4) as u8,
                    rng.below(4) as u8,
                    rng.next() as u8,
                ))
            } else {
                IpAddr::V6(Ipv6Addr::new(
                    0xfd00,
                    rng.below(4) as u16,
                    rng.below(4) as u16,
                    0,
                    0,
                    0,
                    0,
                    rng.next() as u16,
                ))
            }
        }
    }
}

/// A protocol and port, biased to the boundaries of the ruleset's specs.
fn pick_service(rs: &Ruleset, rng: &mut Rng) -> (u8, u16) {
    let specs: Vec<ServiceSpec> = rs
        .rules
        .iter()
        .flat_map(|r| r.services.iter().copied())
        .collect();
    if !specs.is_empty() && rng.below(4) != 0 {
        let spec = specs[rng.below(specs.len())];
        let (proto, lo, hi) = match spec {
            ServiceSpec::Any => return ([6u8, 17, 1, 47, 0][rng.below(5)], rng.next() as u16),
            ServiceSpec::Proto(p) => return (p, rng.next() as u16),
            ServiceSpec::Ports { proto, lo, hi } => (proto, lo, hi),
            ServiceSpec::IcmpTypes { proto, lo, hi } => (proto, u16::from(lo), u16::from(hi)),
        };
        let port = match rng.below(5) {
            0 => lo.wrapping_sub(1),
            1 => lo,
            2 => hi,
            3 => hi.wrapping_add(1),
            _ => lo + (rng.next() % (u64::from(hi - lo) + 1)) as u16,
        };
        return (proto, port);
    }
    (
        [6u8, 17, 132, 1, 58, 47, 255][rng.below(7)],
        rng.next() as u16,
    )
}

fn vlans(rs: &Ruleset, rng: &mut Rng) -> Option<u16> {
    match rng.below(4) {
        0 => None,
        1 => Some(rng.next() as u16 % 4096),
        _ => {
            let listed: Vec<u16> = rs
                .segments
                .iter()
                .flat_map(|s| s.vlans.iter().copied())
                .collect();
            if listed.is_empty() {
                None
            } else {
                Some(listed[rng.below(listed.len())])
            }
        }
    }
}

fn check_agrees(rs: &Ruleset, cp: &CompiledPolicy, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Rng(seed | 1);
    for _ in 0..300 {
        let vlan = vlans(rs, &mut rng);
        let src = pick_address(rs, &mut rng);
        let dst = pick_address(rs, &mut rng);
        // Ingress zone: unchecked, in no zone, or one of the names.
        let zone: Option<Option<&str>> = match rng.below(6) {
            0 => None,
            1 => Some(None),
            n => Some(Some(ZONES[n - 2])),
        };
        let mask = zone.map(|z| z.map_or(0, |name| cp.zone_mask(name)));
        let want_src = reference::place_src(rs, vlan, src, zone);
        prop_assert_eq!(
            cp.place_src(vlan, src, mask),
            want_src,
            "place_src({:?}, {}, {:?})",
            vlan,
            src,
            zone
        );
        let want_dst = reference::place_dst(rs, dst);
        prop_assert_eq!(cp.place_dst(dst), want_dst, "place_dst({})", dst);
        let Ok(src_seg) = want_src else { continue };
        let (proto, port) = pick_service(rs, &mut rng);
        let q = FlowQuery {
            src: src_seg,
            dst: want_dst,
            proto,
            port,
        };
        prop_assert_eq!(cp.decide(&q), reference::decide(rs, &q), "decide({:?})", q);
    }
    // Every segment pair (and one unknown index) with random services.
    let n = rs.segments.len() as u32 + 1;
    for src in 0..n {
        for dst in 0..n {
            for _ in 0..4 {
                let (proto, port) = pick_service(rs, &mut rng);
                let q = FlowQuery {
                    src,
                    dst,
                    proto,
                    port,
                };
                prop_assert_eq!(cp.decide(&q), reference::decide(rs, &q), "decide({:?})", q);
            }
        }
    }
    Ok(())
}

/// Every compile mode: exact with a sparse pair index; the wide-rule scan
/// with every two-list rule wide, and with a mix of narrow and wide rules;
/// atoms mode with fine atoms (every list of two or more splits them), with
/// the default split threshold, with one atom (every list is residue), with
/// sparse indices, with every atom-pair cell painted (none scanned), and
/// with a mix of scanned and painted cells.
fn modes() -> Vec<(CompileOptions, LookupMode)> {
    let scan = CompileOptions {
        exact_budget: 0,
        atom_budget: 0,
        ..CompileOptions::default()
    };
    let atoms = CompileOptions {
        exact_budget: 0,
        ..CompileOptions::default()
    };
    vec![
        (
            CompileOptions {
                max_dense_pair_cells: 0,
                ..CompileOptions::default()
            },
            LookupMode::Exact,
        ),
        (
            CompileOptions {
                narrow_width: 0,
                ..scan
            },
            LookupMode::Scan,
        ),
        (
            CompileOptions {
                narrow_width: 2,
                max_dense_pair_cells: 0,
                ..scan
            },
            LookupMode::Scan,
        ),
        (
            CompileOptions {
                atom_min: 1,
                ..atoms
            },
            LookupMode::Atoms,
        ),
        (
            CompileOptions {
                atom_min: 2,
                ..atoms
            },
            LookupMode::Atoms,
        ),
        (
            CompileOptions {
                atom_min: usize::MAX / 4,
                ..atoms
            },
            LookupMode::Atoms,
        ),
        (
            CompileOptions {
                atom_min: 1,
                max_dense_pair_cells: 0,
                ..atoms
            },
            LookupMode::Atoms,
        ),
        (
            CompileOptions {
                atom_min: 1,
                atom_scan_max: 0,
                ..atoms
            },
            LookupMode::Atoms,
        ),
        (
            CompileOptions {
                atom_min: 2,
                atom_scan_max: 2,
                ..atoms
            },
            LookupMode::Atoms,
        ),
    ]
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400)
}

proptest! {
    // 400 cases unless `PROPTEST_CASES` asks for another number.
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn compiled_matches_reference(rs in ruleset(), seed in any::<u64>()) {
        prop_assert_eq!(rs.check(), Ok(()));
        let cp = CompiledPolicy::compile(&rs).unwrap();
        prop_assert!(cp.is_exact());
        check_agrees(&rs, &cp, seed)?;
        for (options, mode) in modes() {
            let cp = CompiledPolicy::compile_with(&rs, &options).unwrap();
            // Exact mode may be chosen whenever a ruleset has no rule with
            // two lists; otherwise the options force the mode.
            prop_assert!(
                cp.lookup_mode() == mode || cp.lookup_mode() == LookupMode::Exact,
                "{:?} gave {:?}", options, cp.lookup_mode()
            );
            check_agrees(&rs, &cp, seed)?;
        }
    }

    #[test]
    fn with_endpoints_equals_full_recompile(
        rs in ruleset(),
        new_endpoints in prop::collection::vec((address(), 0u32..64), 0..8),
        seed in any::<u64>(),
    ) {
        let cp = CompiledPolicy::compile(&rs).unwrap();
        let n = rs.segments.len() as u32;
        let endpoints: Vec<EndpointDef> = new_endpoints
            .into_iter()
            .map(|(ip, segment)| EndpointDef { ip, segment: segment % n })
            .collect();
        let swapped = cp.with_endpoints(&endpoints).unwrap();
        prop_assert!(swapped.shares_rules_with(&cp));
        let mut rs2 = rs.clone();
        rs2.endpoints = endpoints;
        let full = CompiledPolicy::compile(&rs2).unwrap();
        prop_assert_eq!(swapped.table_count(), full.table_count());
        // Both agree with the reference on the new ruleset, hence with each other.
        check_agrees(&rs2, &swapped, seed)?;
        check_agrees(&rs2, &full, seed)?;
    }
}

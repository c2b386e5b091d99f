//! Deciding: first match, deny before allow, `any`, proto/N, ICMP types,
//! monitor mode, logging, table sharing.

mod common;

use bulkhead_classify::{Action, RuleRef, ServiceSpec};
use common::*;

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const GRE: u8 = 47;

/// world=0, web=1, app=2, db=3, logs=4 (monitor), admin=5.
fn segments() -> Vec<bulkhead_classify::SegmentDef> {
    vec![
        world(),
        seg(10, "web", &[10], &["10.0.10.0/24"]),
        seg(20, "app", &[], &["10.0.20.0/24", "fd00:20::/64"]),
        seg(30, "db", &[], &["10.0.30.0/24"]),
        monitored(seg(40, "logs", &[], &["10.0.40.10/32"])),
        seg(99, "admin", &[], &["192.168.1.0/24"]),
    ]
}

#[test]
fn first_match_in_order_and_deny_before_allow() {
    let b = Both::new(ruleset(
        segments(),
        vec![
            rule(
                "block-8081",
                list(&[1]),
                list(&[2]),
                vec![tcp(8081, 8081)],
                Action::Deny,
            ),
            rule(
                "web-app",
                list(&[1]),
                list(&[2]),
                vec![tcp(8000, 8099)],
                Action::Allow,
            ),
            rule(
                "web-app-wide",
                list(&[1]),
                list(&[2]),
                vec![tcp(1, 9000)],
                Action::Deny,
            ),
        ],
    ));
    let d = b.decide(1, 2, TCP, 8081);
    assert_eq!((d.action, d.rule), (Action::Deny, RuleRef::Rule(0)));
    let d = b.decide(1, 2, TCP, 8080);
    assert_eq!((d.action, d.rule), (Action::Allow, RuleRef::Rule(1)));
    for port in [8000, 8099, 8082] {
        assert_eq!(
            b.decide(1, 2, TCP, port).rule,
            RuleRef::Rule(1),
            "port {port}"
        );
    }
    assert_eq!(b.decide(1, 2, TCP, 7999).rule, RuleRef::Rule(2));
    assert_eq!(b.decide(1, 2, TCP, 9001).rule, RuleRef::Default);
    assert_eq!(b.decide(1, 2, TCP, 0).rule, RuleRef::Default);
    assert_eq!(b.decide(1, 2, UDP, 8080).rule, RuleRef::Default);
    // Direction matters: app → web is not web → app.
    assert_eq!(b.decide(2, 1, TCP, 8080).rule, RuleRef::Default);
    assert_eq!(b.decide(2, 1, TCP, 8080).action, Action::Deny);
}

#[test]
fn any_selectors_and_any_service() {
    let b = Both::new(ruleset(
        segments(),
        vec![
            rule(
                "deny-db-ssh",
                SegmentSet::Any,
                list(&[3]),
                vec![tcp(22, 22)],
                Action::Deny,
            ),
            rule(
                "admin-any",
                list(&[5]),
                SegmentSet::Any,
                vec![ServiceSpec::Any],
                Action::Allow,
            ),
            rule(
                "all-https",
                SegmentSet::Any,
                SegmentSet::Any,
                vec![tcp(443, 443)],
                Action::Allow,
            ),
            rule(
                "app-everything",
                list(&[2]),
                list(&[3]),
                vec![ServiceSpec::Any],
                Action::Allow,
            ),
        ],
    ));
    assert_eq!(b.decide(5, 3, TCP, 22).rule, RuleRef::Rule(0));
    assert_eq!(b.decide(5, 3, TCP, 23).rule, RuleRef::Rule(1));
    assert_eq!(b.decide(5, 0, GRE, 0).rule, RuleRef::Rule(1));
    assert_eq!(b.decide(0, 4, TCP, 443).rule, RuleRef::Rule(2));
    assert_eq!(b.decide(2, 3, TCP, 443).rule, RuleRef::Rule(2));
    assert_eq!(b.decide(2, 3, TCP, 22).rule, RuleRef::Rule(0));
    assert_eq!(b.decide(2, 3, ICMP, 8).rule, RuleRef::Rule(3));
    assert_eq!(b.decide(3, 2, ICMP, 8).rule, RuleRef::Default);
    // An unknown segment index is in no list but in `any`.
    assert_eq!(b.decide(1000, 1000, TCP, 443).rule, RuleRef::Rule(2));
    assert_eq!(b.decide(1000, 3, TCP, 22).rule, RuleRef::Rule(0));
    assert_eq!(b.decide(1000, 3, TCP, 80).rule, RuleRef::Default);
}

#[test]
fn proto_n_and_icmp_types() {
    let b = Both::new(ruleset(
        segments(),
        vec![
            rule(
                "gre",
                list(&[1]),
                list(&[2]),
                vec![ServiceSpec::Proto(GRE)],
                Action::Allow,
            ),
            rule(
                "echo",
                list(&[1]),
                list(&[2]),
                vec![ServiceSpec::IcmpTypes {
                    proto: ICMP,
                    lo: 8,
                    hi: 8,
                }],
                Action::Allow,
            ),
            rule(
                "icmp-rest",
                list(&[1]),
                list(&[2]),
                vec![ServiceSpec::IcmpTypes {
                    proto: ICMP,
                    lo: 0,
                    hi: 255,
                }],
                Action::Deny,
            ),
            rule(
                "v6-echo",
                list(&[1]),
                list(&[2]),
                vec![ServiceSpec::IcmpTypes {
                    proto: 58,
                    lo: 128,
                    hi: 129,
                }],
                Action::Allow,
            ),
            rule(
                "tcp-all",
                list(&[1]),
                list(&[2]),
                vec![ServiceSpec::Proto(TCP)],
                Action::Allow,
            ),
        ],
    ));
    for port in [0, 1, 65535] {
        assert_eq!(b.decide(1, 2, GRE, port).rule, RuleRef::Rule(0));
        assert_eq!(b.decide(1, 2, TCP, port).rule, RuleRef::Rule(4));
    }
    assert_eq!(b.decide(1, 2, ICMP, 8).rule, RuleRef::Rule(1));
    assert_eq!(b.decide(1, 2, ICMP, 0).rule, RuleRef::Rule(2));
    assert_eq!(b.decide(1, 2, 58, 128).rule, RuleRef::Rule(3));
    assert_eq!(b.decide(1, 2, 58, 129).rule, RuleRef::Rule(3));
    assert_eq!(b.decide(1, 2, 58, 130).rule, RuleRef::Default);
    assert_eq!(b.decide(1, 2, 58, 8).rule, RuleRef::Default);
    assert_eq!(b.decide(1, 2, UDP, 53).rule, RuleRef::Default);
    assert_eq!(b.decide(1, 2, 132, 3868).rule, RuleRef::Default);
}

#[test]
fn monitor_mode_allows_would_deny() {
    let mut rs = ruleset(
        segments(),
        vec![
            rule(
                "syslog",
                list(&[1, 2]),
                list(&[4]),
                vec![udp(514, 514)],
                Action::Allow,
            ),
            rule(
                "no-tcp-to-logs",
                SegmentSet::Any,
                list(&[4]),
                vec![tcp(0, 65535)],
                Action::Deny,
            ),
        ],
    );
    rs.rules[1].log = true;
    let b = Both::new(rs);
    let d = b.decide(1, 4, UDP, 514);
    assert_eq!((d.action, d.monitor, d.log), (Action::Allow, false, false));
    // Explicit deny rule into a monitored segment: forwarded, marked, rule kept.
    let d = b.decide(1, 4, TCP, 80);
    assert_eq!(
        (d.action, d.rule, d.monitor, d.log),
        (Action::Allow, RuleRef::Rule(1), true, true)
    );
    // Default deny into a monitored segment.
    let d = b.decide(3, 4, UDP, 53);
    assert_eq!(
        (d.action, d.rule, d.monitor, d.log),
        (Action::Allow, RuleRef::Default, true, false)
    );
    // Monitor is about the destination only.
    let d = b.decide(4, 3, UDP, 53);
    assert_eq!((d.action, d.monitor), (Action::Deny, false));
}

#[test]
fn default_allow_and_log_flags() {
    let mut rs = ruleset(
        segments(),
        vec![rule(
            "ssh",
            list(&[5]),
            list(&[1, 2, 3]),
            vec![tcp(22, 22)],
            Action::Allow,
        )],
    );
    rs.rules[0].log = true;
    rs.default_action = Action::Allow;
    let b = Both::new(rs);
    let d = b.decide(5, 3, TCP, 22);
    assert_eq!(
        (d.action, d.rule, d.log),
        (Action::Allow, RuleRef::Rule(0), true)
    );
    let d = b.decide(5, 3, TCP, 23);
    assert_eq!(
        (d.action, d.rule, d.log),
        (Action::Allow, RuleRef::Default, false)
    );
    assert_eq!(b.cp.rule_name(RuleRef::Rule(0)), "ssh");
    assert_eq!(b.cp.rule_name(RuleRef::Default), "default");
    assert_eq!(b.cp.rule_count(), 1);
}

#[test]
fn placement_then_decision_from_the_spec_example() {
    let b = Both::new(ruleset(
        segments(),
        vec![
            rule(
                "internet-to-web",
                list(&[0]),
                list(&[1]),
                vec![tcp(443, 443)],
                Action::Allow,
            ),
            rule(
                "app-to-db",
                list(&[2]),
                list(&[3]),
                vec![tcp(5432, 5432)],
                Action::Allow,
            ),
        ],
    ));
    let src = b.src(None, "203.0.113.9").unwrap();
    let dst = b.dst("10.0.10.5");
    assert_eq!(b.decide(src, dst, TCP, 443).action, Action::Allow);
    let src = b.src(None, "10.0.20.3").unwrap();
    let dst = b.dst("10.0.30.7");
    assert_eq!(b.decide(src, dst, TCP, 5432).rule, RuleRef::Rule(1));
    assert_eq!(b.decide(1, 3, TCP, 5432).action, Action::Deny);
}

#[test]
fn identical_pair_tables_are_shared() {
    // 200 segments; every segment may reach every other on tcp/443 (one
    // `any → any` rule), and 100 rules each between a different pair of
    // segments with the same service.
    let mut segs = vec![world()];
    for i in 1..=200u32 {
        segs.push(seg(i, &format!("s{i}"), &[], &[]));
    }
    let mut rules = vec![rule(
        "https",
        SegmentSet::Any,
        SegmentSet::Any,
        vec![tcp(443, 443)],
        Action::Allow,
    )];
    for i in 1..=100u32 {
        rules.push(rule(
            &format!("r{i}"),
            list(&[i]),
            list(&[i + 100]),
            vec![tcp(22, 22)],
            Action::Allow,
        ));
    }
    let b = Both::new(ruleset(segs, rules));
    // 100 pairs see {https, r_i}: different rule lists, so one table each,
    // plus the shared `https` table for every other pair.
    assert!(
        b.cp.table_count() <= 102,
        "table_count = {}",
        b.cp.table_count()
    );
    assert_eq!(b.decide(7, 107, TCP, 22).rule, RuleRef::Rule(7));
    assert_eq!(b.decide(7, 108, TCP, 22).rule, RuleRef::Default);
    assert_eq!(b.decide(7, 108, TCP, 443).rule, RuleRef::Rule(0));

    // Now the 100 rules are one group-to-group rule: every selected pair sees
    // the same list, so they share one table.
    let mut segs = vec![world()];
    for i in 1..=200u32 {
        segs.push(seg(i, &format!("s{i}"), &[], &[]));
    }
    let rules = vec![
        rule(
            "https",
            SegmentSet::Any,
            SegmentSet::Any,
            vec![tcp(443, 443)],
            Action::Allow,
        ),
        rule(
            "ssh",
            list(&(1..=100).collect::<Vec<_>>()),
            list(&(101..=200).collect::<Vec<_>>()),
            vec![tcp(22, 22)],
            Action::Allow,
        ),
    ];
    let b = Both::new(ruleset(segs, rules));
    assert!(
        b.cp.table_count() <= 3,
        "table_count = {}",
        b.cp.table_count()
    );
    assert_eq!(b.decide(1, 200, TCP, 22).rule, RuleRef::Rule(1));
    assert_eq!(b.decide(200, 1, TCP, 22).rule, RuleRef::Default);
}

#[test]
fn large_mesh_compiles_in_split_mode_and_agrees() {
    // 3,000 segments, each in its own class, and a mesh rule from every one
    // to every one: 9M class pairs, beyond the exact budget.
    let mut segs = vec![world()];
    for i in 1..=3000u32 {
        segs.push(seg(i, &format!("s{i}"), &[], &[]));
    }
    let all: Vec<u32> = (1..=3000).collect();
    let mut rules = Vec::new();
    for i in 1..=3000u32 {
        rules.push(rule(
            &format!("own{i}"),
            list(&[i]),
            list(&[i % 3000 + 1]),
            vec![tcp(1, 1)],
            Action::Allow,
        ));
    }
    rules.push(rule(
        "mesh",
        list(&all),
        list(&all[..2000]),
        vec![tcp(1, 2)],
        Action::Deny,
    ));
    let mut b = Both::new(ruleset(segs, rules));
    assert!(!b.cp.is_exact());
    // The mesh's lists are whole atoms: one (atom, atom) table, no scan.
    assert_eq!(b.cp.lookup_mode(), LookupMode::Atoms);
    let scan = CompileOptions {
        atom_budget: 0,
        ..CompileOptions::default()
    };
    let scanned = CompiledPolicy::compile_with(&b.rs, &scan).unwrap();
    assert_eq!(scanned.lookup_mode(), LookupMode::Scan);
    for cp in [b.cp.clone(), scanned] {
        b.cp = cp;
        assert_eq!(b.decide(5, 6, TCP, 1).rule, RuleRef::Rule(4));
        assert_eq!(b.decide(5, 7, TCP, 1).rule, RuleRef::Rule(3000));
        assert_eq!(b.decide(5, 2500, TCP, 1).rule, RuleRef::Default);
        assert_eq!(b.decide(0, 7, TCP, 2).rule, RuleRef::Default);
        for (s, d) in [(1, 2), (2999, 3000), (3000, 1), (17, 1999), (17, 2001)] {
            for port in 0..4 {
                b.decide(s, d, TCP, port);
            }
        }
    }
}

#[test]
fn atoms_mode_splits_lists_into_groups_and_residue() {
    // Two "label groups" of 40 segments on each side, named alone and in
    // unions with stray segments: atoms follow the groups, the strays are
    // residue, and every kind of key decides somewhere.
    let mut segs = vec![world()];
    for i in 1..=100u32 {
        segs.push(seg(i, &format!("s{i}"), &[], &[]));
    }
    let a: Vec<u32> = (1..=40).collect();
    let b: Vec<u32> = (41..=80).collect();
    let with = |group: &[u32], extra: u32| {
        let mut v = group.to_vec();
        v.push(extra);
        v.sort_unstable();
        list(&v)
    };
    let rules = vec![
        rule("a-b", list(&a), list(&b), vec![tcp(80, 80)], Action::Allow),
        rule("a-b2", list(&a), list(&b), vec![tcp(81, 81)], Action::Allow),
        rule(
            "a+90-b",
            with(&a, 90),
            list(&b),
            vec![tcp(1, 100)],
            Action::Deny,
        ),
        rule(
            "a-b+91",
            list(&a),
            with(&b, 91),
            vec![tcp(1, 100)],
            Action::Deny,
        ),
        rule(
            "a+92-b+93",
            with(&a, 92),
            with(&b, 93),
            vec![udp(53, 53)],
            Action::Allow,
        ),
        rule(
            "one",
            list(&[95]),
            list(&[96]),
            vec![tcp(22, 22)],
            Action::Allow,
        ),
    ];
    let b = Both::new(ruleset(segs, rules));
    let options = CompileOptions {
        exact_budget: 0,
        ..CompileOptions::default()
    };
    let mut both = b;
    both.cp = CompiledPolicy::compile_with(&both.rs, &options).unwrap();
    assert_eq!(both.cp.lookup_mode(), LookupMode::Atoms);
    // (atom, atom)
    assert_eq!(both.decide(3, 50, TCP, 80).rule, RuleRef::Rule(0));
    assert_eq!(both.decide(3, 50, TCP, 81).rule, RuleRef::Rule(1));
    assert_eq!(both.decide(3, 50, TCP, 82).rule, RuleRef::Rule(2));
    // (segment, atom): the stray 90 reaches group b only through rule 2.
    assert_eq!(both.decide(90, 50, TCP, 80).rule, RuleRef::Rule(2));
    assert_eq!(both.decide(90, 91, TCP, 80).rule, RuleRef::Default);
    // (atom, segment)
    assert_eq!(both.decide(3, 91, TCP, 80).rule, RuleRef::Rule(3));
    // (segment, segment)
    assert_eq!(both.decide(92, 93, UDP, 53).rule, RuleRef::Rule(4));
    assert_eq!(both.decide(95, 96, TCP, 22).rule, RuleRef::Rule(5));
    assert_eq!(both.decide(96, 95, TCP, 22).rule, RuleRef::Default);
    // Unknown segment indices belong to no list.
    assert_eq!(both.decide(500, 50, TCP, 80).rule, RuleRef::Default);
    assert_eq!(both.decide(3, 500, TCP, 80).rule, RuleRef::Default);
    for s in [0, 1, 40, 41, 90, 92, 95, 100, 101] {
        for d in [0, 1, 41, 80, 91, 93, 96, 100, 101] {
            for port in [22, 53, 80, 81, 82, 100, 101] {
                both.decide(s, d, TCP, port);
                both.decide(s, d, UDP, port);
            }
        }
    }
}

use bulkhead_classify::{CompileOptions, CompiledPolicy, LookupMode, SegmentSet};

#[test]
fn long_port_runs_agree_with_reference_at_every_boundary() {
    // Hundreds of overlapping port claims on one pair: protocol runs far
    // longer than one search block (summary, lanes and last partial block
    // all used), in every lookup mode.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: u32| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % u64::from(n)) as u16
    };
    let mut rules = Vec::new();
    for r in 0..300 {
        let lo = next(65_000);
        let hi = lo.saturating_add(next(if r % 3 == 0 { 2_000 } else { 20 }));
        let spec = if r % 4 == 0 { udp(lo, hi) } else { tcp(lo, hi) };
        let action = if r % 5 == 0 {
            Action::Deny
        } else {
            Action::Allow
        };
        rules.push(rule(
            &format!("r{r}"),
            list(&[1]),
            list(&[2]),
            vec![spec],
            action,
        ));
    }
    let rs = ruleset(segments(), rules);
    let mut ports: Vec<u16> = rs
        .rules
        .iter()
        .flat_map(|r| r.services.iter())
        .flat_map(|s| match *s {
            ServiceSpec::Ports { lo, hi, .. } => {
                vec![lo.saturating_sub(1), lo, hi, hi.saturating_add(1)]
            }
            _ => vec![],
        })
        .collect();
    ports.extend([0, 1, 65_534, 65_535]);
    let options = [
        CompileOptions::default(),
        CompileOptions {
            exact_budget: 0,
            ..CompileOptions::default()
        },
        CompileOptions {
            exact_budget: 0,
            atom_budget: 0,
            ..CompileOptions::default()
        },
    ];
    for options in options {
        let cp = CompiledPolicy::compile_with(&rs, &options).unwrap();
        let both = Both { rs: rs.clone(), cp };
        for &port in &ports {
            for proto in [TCP, UDP, ICMP] {
                both.decide(1, 2, proto, port);
                both.decide(2, 1, proto, port);
            }
        }
    }
}

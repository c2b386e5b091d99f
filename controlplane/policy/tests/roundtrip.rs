//! Property tests: parse → format → parse keeps the policy (same ruleset,
//! same document) and formatting is idempotent; and a bounded fuzz smoke run
//! of random and mutated documents through `load` (no panic, no hang).

use proptest::prelude::*;

const NAMES: &[&str] = &[
    "web", "app", "db", "logs", "admin", "cache", "q.1", "x_y", "true", "10", "yes", "a-b",
];
const SPECS: &[&str] = &[
    "tcp/443",
    "tcp",
    "udp/53",
    "tcp/8000-8099",
    "icmp",
    "icmp/8",
    "icmpv6/128",
    "proto/47",
    "any",
    "sctp/3868",
    "tcp/0-65535",
];
const LABEL_VALUES: &[&str] = &[
    "prod",
    "true",
    "1",
    "",
    "with space",
    "a:b",
    "\"q\"",
    "null",
];

/// Zone lists a generated segment may attach in.
const ZONE_LISTS: [&[&str]; 4] = [&[], &["edge"], &["edge", "dc"], &["\"dc\""]];

/// from, to, services, allow, log.
type RuleGen = (Vec<usize>, Vec<usize>, Vec<usize>, bool, bool);

#[derive(Clone, Debug)]
struct Gen {
    nseg: usize,
    vlans: Vec<bool>,
    v6: Vec<bool>,
    labels: Vec<(usize, usize)>,
    monitor: Vec<bool>,
    /// Index into `ZONE_LISTS` per segment.
    zones: Vec<usize>,
    rules: Vec<RuleGen>,
    default_allow: bool,
    world: bool,
    tests: Vec<(usize, usize, u16, bool)>,
}

fn gen() -> impl Strategy<Value = Gen> {
    (1usize..NAMES.len()).prop_flat_map(|nseg| {
        (
            Just(nseg),
            prop::collection::vec(any::<bool>(), nseg),
            prop::collection::vec(any::<bool>(), nseg),
            prop::collection::vec((0usize..3, 0usize..LABEL_VALUES.len()), nseg),
            prop::collection::vec(any::<bool>(), nseg),
            prop::collection::vec(0usize..ZONE_LISTS.len(), nseg),
            prop::collection::vec(
                (
                    prop::collection::vec(0usize..nseg + 3, 1..4),
                    prop::collection::vec(0usize..nseg + 3, 1..4),
                    prop::collection::vec(0usize..SPECS.len() + 2, 1..4),
                    any::<bool>(),
                    any::<bool>(),
                ),
                0..12,
            ),
            any::<bool>(),
            any::<bool>(),
            prop::collection::vec(
                (
                    0usize..nseg + 1,
                    0usize..nseg + 1,
                    1u16..65535,
                    any::<bool>(),
                ),
                0..4,
            ),
        )
            .prop_map(
                |(nseg, vlans, v6, labels, monitor, zones, rules, default_allow, world, tests)| {
                    Gen {
                        nseg,
                        vlans,
                        v6,
                        labels,
                        monitor,
                        zones,
                        rules,
                        default_allow,
                        world,
                        tests,
                    }
                },
            )
    })
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Render a random but valid policy, in a non-canonical style.
fn render(g: &Gen) -> String {
    let mut s = String::from("# generated\nversion: 1\n");
    if g.default_allow {
        s.push_str("default: allow\n");
    }
    s.push_str("segments:\n");
    if g.world {
        s.push_str("  world: { id: 0 }\n");
    }
    for (i, name) in NAMES.iter().enumerate().take(g.nseg) {
        s.push_str(&format!("  {}:\n    id: {}\n", quote(name), 100 + i));
        if g.vlans[i] {
            s.push_str(&format!("    vlans:\n      - {}\n", 10 + i));
        }
        s.push_str(&format!("    prefixes: [10.{i}.0.0/16"));
        if g.v6[i] {
            s.push_str(&format!(", \"fd00:{i}::/64\""));
        }
        s.push_str("]\n");
        let (k, v) = g.labels[i];
        s.push_str(&format!(
            "    labels: {{ k{k}: {} }}\n",
            quote(LABEL_VALUES[v])
        ));
        if g.monitor[i] {
            s.push_str("    mode: monitor\n");
        }
        if !ZONE_LISTS[g.zones[i]].is_empty() {
            s.push_str(&format!(
                "    zones: [{}]\n",
                ZONE_LISTS[g.zones[i]].join(", ")
            ));
        }
    }
    s.push_str("groups:\n  g0: { match: { k0: prod } }\n  g1: { segments: [world");
    for n in NAMES.iter().take(g.nseg) {
        s.push_str(&format!(", {}", quote(n)));
    }
    s.push_str("] }\nservices:\n  svc-a: [tcp/22, udp/53]\n  svc-b: [icmp/0-8]\n");
    s.push_str("rules:\n");
    for (i, (from, to, svc, allow, log)) in g.rules.iter().enumerate() {
        let sel = |x: &usize| -> String {
            if *x < g.nseg {
                quote(NAMES[*x])
            } else {
                ["world", "any", "group:g0"][*x - g.nseg].to_string()
            }
        };
        let f: Vec<String> = from.iter().map(sel).collect();
        let t: Vec<String> = to.iter().map(sel).collect();
        let sv: Vec<String> = svc
            .iter()
            .map(|x| {
                if *x < SPECS.len() {
                    SPECS[*x].to_string()
                } else {
                    ["svc-a", "svc-b"][*x - SPECS.len()].to_string()
                }
            })
            .collect();
        s.push_str(&format!(
            "  - name: rule-{i}\n    from: [{}]\n    to: [{}]\n    services: [{}]\n    action: {}\n",
            f.join(", "),
            t.join(", "),
            sv.join(", "),
            if *allow { "allow" } else { "deny" }
        ));
        if *log {
            s.push_str("    log: true\n");
        }
    }
    if g.rules.is_empty() {
        s.push_str("  []\n");
    }
    if !g.tests.is_empty() {
        s.push_str("tests:\n");
        for (from, to, port, allow) in &g.tests {
            let place = |x: &usize| {
                if *x < g.nseg {
                    quote(NAMES[*x])
                } else {
                    "\"203.0.113.1\"".to_string()
                }
            };
            // An address source may name the zone it entered in.
            let zone = if *from >= g.nseg && port % 2 == 0 {
                ", zone: edge"
            } else {
                ""
            };
            s.push_str(&format!(
                "  - {{from: {}, to: {}{zone}, service: tcp/{port}, expect: {}}}\n",
                place(from),
                place(to),
                if *allow { "allow" } else { "deny" }
            ));
        }
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn parse_format_round_trip(g in gen()) {
        let src = render(&g);
        let p = match bulkhead_policy::load(&src, "gen.yaml") {
            Ok(l) => l.policy,
            Err(e) => panic!("generated policy refused:\n{src}\n{e:#?}"),
        };
        let f1 = bulkhead_policy::format(&p);
        let p2 = match bulkhead_policy::load(&f1, "fmt.yaml") {
            Ok(l) => l.policy,
            Err(e) => panic!("formatted policy refused:\n{f1}\n{e:#?}"),
        };
        prop_assert_eq!(p2.ruleset(), p.ruleset());
        prop_assert_eq!(p2.document(), p.document());
        let f2 = bulkhead_policy::format(&p2);
        prop_assert_eq!(&f2, &f1);
        // Same verdicts for every test of the policy.
        let a: Vec<_> = p.run_tests().into_iter().map(|t| (t.got, t.got_rule)).collect();
        let b: Vec<_> = p2.run_tests().into_iter().map(|t| (t.got, t.got_rule)).collect();
        prop_assert_eq!(a, b);
        prop_assert!(bulkhead_policy::diff(&p, &p2).is_empty());
    }

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,300}") {
        let _ = bulkhead_policy::load(&s, "any.yaml");
    }
}

/// splitmix64 for the deterministic mutation smoke run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn mutated_example_policies_never_panic() {
    let base = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../configs/policies/three-tier.yaml"
    ))
    .unwrap();
    let tokens: &[&str] = &[
        ":",
        "-",
        "[",
        "]",
        "{",
        "}",
        ",",
        "&a",
        "*a",
        "!!str",
        "\"",
        "'",
        "#",
        "\n",
        "  ",
        "\t",
        "/",
        "0",
        "65536",
        "4095",
        "group:",
        "any",
        "world",
        "::",
        "10.0.0.0/8",
        "fd00::/8",
        "~",
        "null",
        "?",
        "|",
        ">",
        "%",
        "@",
        "é",
    ];
    let mut rng = Rng(0x5eed);
    let mut accepted = 0;
    let mut refused = 0;
    for _ in 0..3000 {
        let mut doc: Vec<char> = base.chars().collect();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(doc.len() + 1);
            match rng.below(5) {
                0 if at < doc.len() => {
                    let n = 1 + rng.below(8.min(doc.len() - at));
                    doc.drain(at..at + n);
                }
                1 => {
                    let t = tokens[rng.below(tokens.len())];
                    for (k, c) in t.chars().enumerate() {
                        doc.insert(at + k, c);
                    }
                }
                2 if at < doc.len() => {
                    doc[at] = tokens[rng.below(tokens.len())]
                        .chars()
                        .next()
                        .unwrap_or('x')
                }
                3 => doc.truncate(at),
                _ => {
                    // Duplicate a random line range.
                    let start = rng.below(doc.len().max(1));
                    let end = (start + rng.below(80)).min(doc.len());
                    let chunk: Vec<char> = doc[start..end].to_vec();
                    for (k, c) in chunk.into_iter().enumerate() {
                        doc.insert(at.min(doc.len()) + k, c);
                    }
                }
            }
        }
        let text: String = doc.into_iter().collect();
        match bulkhead_policy::load(&text, "mutant.yaml") {
            Ok(l) => {
                accepted += 1;
                // Whatever loads must also test, lint, format and round-trip.
                let _ = l.policy.run_tests();
                let _ = bulkhead_policy::lint(&l.policy);
                let f = bulkhead_policy::format(&l.policy);
                let again =
                    bulkhead_policy::load(&f, "fmt.yaml").unwrap_or_else(|e| panic!("{f}\n{e:#?}"));
                assert_eq!(again.policy.ruleset(), l.policy.ruleset());
            }
            Err(e) => {
                refused += 1;
                assert!(!e.is_empty());
            }
        }
    }
    // Both outcomes occur: the mutations are neither all fatal nor all harmless.
    assert!(
        accepted > 50 && refused > 50,
        "accepted {accepted}, refused {refused}"
    );
}

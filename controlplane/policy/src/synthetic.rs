//! Large, valid, realistic policies for benchmarks and stress tests.
//!
//! [`generate`] is deterministic for a given `(segments, rules, seed)`. The
//! output loads with [`crate::load`] and its tests pass
//! ([`crate::validate_full`]):
//! - segment `sN` has id `N+1`, prefix `10.{N/256}.{N%256}.0/24` (every 7th
//!   also an IPv6 /64), a VLAN for every third of the first 4,094 segments,
//!   labels `tier`, `env`, `team`, and every 97th is in monitor mode;
//! - groups by label (`tier-env`, `team-N`) and a few explicit lists;
//! - about 40 named services plus literal specs (ports, ranges, ICMP types);
//!   no rule uses `any` as a service or names `proto/47`, so GRE always falls
//!   to the default;
//! - the first two rules are probes the tests rely on; the rest mix
//!   segments, groups, `world` and `any`, mostly `allow`, some `deny`;
//! - one endpoint per ten segments, in 172.16.0.0/12.

use std::fmt::Write as _;

use crate::limits::MAX_SEGMENTS;

/// splitmix64: small, fast, good enough for test data.
#[derive(Debug)]
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
        if n == 0 {
            return 0;
        }
        usize::try_from(self.next() % u64::try_from(n).unwrap_or(u64::MAX)).unwrap_or(0)
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const TIERS: &[&str] = &["web", "app", "db", "cache", "queue", "batch"];
const ENVS: &[&str] = &["prod", "staging", "dev"];
const TEAMS: usize = 50;
const SERVICES: &[(&str, &str)] = &[
    ("https", "[tcp/443]"),
    ("http", "[tcp/80]"),
    ("ssh", "[tcp/22]"),
    ("postgres", "[tcp/5432]"),
    ("mysql", "[tcp/3306]"),
    ("redis", "[tcp/6379]"),
    ("memcached", "[tcp/11211, udp/11211]"),
    ("dns", "[udp/53, tcp/53]"),
    ("ntp", "[udp/123]"),
    ("syslog", "[udp/514]"),
    ("app-http", "[tcp/8080]"),
    ("app-range", "[tcp/8000-8099]"),
    ("grpc", "[tcp/50051]"),
    ("kafka", "[tcp/9092-9094]"),
    ("zookeeper", "[tcp/2181, tcp/2888-3888]"),
    ("elasticsearch", "[tcp/9200, tcp/9300]"),
    ("mongodb", "[tcp/27017]"),
    ("ldap", "[tcp/389, tcp/636]"),
    ("kerberos", "[tcp/88, udp/88]"),
    ("smtp", "[tcp/25, tcp/587]"),
    ("imap", "[tcp/993]"),
    ("rdp", "[tcp/3389]"),
    ("vnc", "[tcp/5900-5901]"),
    ("snmp", "[udp/161-162]"),
    ("radius", "[udp/1812-1813]"),
    ("diameter", "[sctp/3868]"),
    ("sip", "[udp/5060, tcp/5060-5061]"),
    ("rtp", "[udp/10000-20000]"),
    ("nfs", "[tcp/2049, udp/2049]"),
    ("smb", "[tcp/445]"),
    ("prometheus", "[tcp/9090-9100]"),
    ("statsd", "[udp/8125]"),
    ("amqp", "[tcp/5672]"),
    ("etcd", "[tcp/2379-2380]"),
    ("consul", "[tcp/8300-8302, udp/8301-8302]"),
    ("vault", "[tcp/8200]"),
    ("ping", "[icmp/8, icmpv6/128]"),
    ("icmp-errors", "[icmp/3, icmp/11, icmpv6/1-4]"),
    ("traceroute", "[udp/33434-33534]"),
    ("bgp", "[tcp/179]"),
];

/// Generate a policy with `segments` segments (besides world, capped at the
/// segment limit and at least 2) and `rules` rules, deterministically from
/// `seed`.
pub fn generate(segments: usize, rules: usize, seed: u64) -> String {
    let n = segments.clamp(2, MAX_SEGMENTS - 1);
    let mut rng = Rng(seed);
    let mut out = String::with_capacity(
        rules
            .saturating_mul(110)
            .saturating_add(n.saturating_mul(120)),
    );
    let _ = writeln!(
        out,
        "# Synthetic policy: {n} segments, {rules} rules, seed {seed}."
    );
    out.push_str("version: 1\ndefault: deny\nsegments:\n  world: {id: 0}\n");
    for i in 0..n {
        let tier = TIERS[i % TIERS.len()];
        let env = ENVS[(i / TIERS.len()) % ENVS.len()];
        let _ = write!(
            out,
            "  s{i}: {{id: {}, prefixes: [10.{}.{}.0/24",
            i + 1,
            (i / 256) % 256,
            i % 256
        );
        if i % 7 == 3 {
            let _ = write!(out, ", \"fd00:{:x}::/64\"", i + 1);
        }
        out.push(']');
        if i < 4094 && i % 3 == 0 {
            let _ = write!(out, ", vlans: [{}]", i + 1);
        }
        let _ = write!(
            out,
            ", labels: {{tier: {tier}, env: {env}, team: t{}}}",
            i % TEAMS
        );
        if i % 97 == 5 {
            out.push_str(", mode: monitor");
        }
        out.push_str("}\n");
    }

    let endpoints = n / 10;
    if endpoints > 0 {
        out.push_str("endpoints:\n");
        for j in 0..endpoints {
            let seg = rng.below(n);
            let _ = writeln!(
                out,
                "  - {{ip: 172.{}.{}.{}, segment: s{seg}}}",
                16 + (j / 65536) % 16,
                (j / 256) % 256,
                j % 256
            );
        }
    }

    out.push_str("groups:\n");
    let mut groups: Vec<String> = Vec::new();
    for tier in TIERS {
        for env in ENVS {
            let _ = writeln!(
                out,
                "  {tier}-{env}: {{match: {{tier: {tier}, env: {env}}}}}"
            );
            groups.push(format!("{tier}-{env}"));
        }
    }
    for t in 0..TEAMS.min(n) {
        let _ = writeln!(out, "  team-{t}: {{match: {{team: t{t}}}}}");
        groups.push(format!("team-{t}"));
    }
    for k in 0..5 {
        let members: Vec<String> = (0..5).map(|_| format!("s{}", rng.below(n))).collect();
        let _ = writeln!(out, "  list-{k}: {{segments: [{}]}}", members.join(", "));
        groups.push(format!("list-{k}"));
    }

    out.push_str("services:\n");
    for (name, specs) in SERVICES {
        let _ = writeln!(out, "  {name}: {specs}");
    }

    out.push_str("rules:\n");
    if rules >= 2 {
        out.push_str(
            "  - {name: probe-allow, from: [s0], to: [s1], services: [tcp/7], action: allow}\n",
        );
        out.push_str(
            "  - {name: probe-deny, from: [s1], to: [s0], services: [tcp/9], action: deny}\n",
        );
    }
    for r in (if rules >= 2 { 2 } else { 0 })..rules {
        let from = selectors(&mut rng, n, &groups);
        let to = selectors(&mut rng, n, &groups);
        let svc_count = 1 + rng.below(3);
        let services: Vec<String> = (0..svc_count).map(|_| service(&mut rng)).collect();
        let action = if rng.chance(85) { "allow" } else { "deny" };
        let log = if rng.chance(10) { ", log: true" } else { "" };
        let _ = writeln!(
            out,
            "  - {{name: r{r}, from: [{}], to: [{}], services: [{}], action: {action}{log}}}",
            from.join(", "),
            to.join(", "),
            services.join(", ")
        );
    }
    if rules == 0 {
        // `rules:` with no items reads as null; say it is an empty list.
        out.truncate(out.len() - "rules:\n".len());
        out.push_str("rules: []\n");
    }

    out.push_str("tests:\n");
    if rules >= 2 {
        out.push_str("  - {name: probe-allow, from: 10.0.0.5, to: 10.0.1.5, service: tcp/7, expect: allow, rule: probe-allow}\n");
        out.push_str("  - {name: probe-deny, from: s1, to: s0, service: tcp/9, expect: deny, rule: probe-deny}\n");
    }
    out.push_str("  - {name: gre-from-world, from: world, to: s0, service: proto/47, expect: deny, rule: default}\n");
    out.push_str("  - {name: gre-outside, from: 203.0.113.9, to: 198.51.100.1, service: proto/47, expect: deny, rule: default}\n");
    out
}

fn selectors(rng: &mut Rng, n: usize, groups: &[String]) -> Vec<String> {
    let k = 1 + rng.below(3);
    let mut v = Vec::with_capacity(k);
    for _ in 0..k {
        let roll = rng.below(100);
        v.push(if roll < 70 {
            format!("s{}", rng.below(n))
        } else if roll < 92 {
            format!("group:{}", groups[rng.below(groups.len())])
        } else if roll < 97 {
            "world".to_string()
        } else {
            "any".to_string()
        });
    }
    v
}

fn service(rng: &mut Rng) -> String {
    if rng.chance(70) {
        return SERVICES[rng.below(SERVICES.len())].0.to_string();
    }
    match rng.below(6) {
        0 => format!("tcp/{}", 1024 + rng.below(60000)),
        1 => format!("udp/{}", 1024 + rng.below(60000)),
        2 => {
            let lo = 1024 + rng.below(50000);
            format!("tcp/{lo}-{}", lo + rng.below(1000))
        }
        3 => format!("icmp/{}", rng.below(20)),
        4 => format!("sctp/{}", 1 + rng.below(10000)),
        _ => format!("udp/{}", 1 + rng.below(1023)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_synthetic_loads_and_passes_its_tests() {
        let doc = generate(50, 300, 7);
        let loaded = crate::validate_full(&doc, "synthetic").unwrap_or_else(|e| {
            panic!(
                "{}",
                e.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
        let rs = loaded.policy.ruleset();
        assert_eq!(rs.segments.len(), 51);
        assert_eq!(rs.rules.len(), 300);
        assert_eq!(loaded.policy.run_tests().len(), 4);
    }

    #[test]
    fn deterministic() {
        assert_eq!(generate(20, 40, 1), generate(20, 40, 1));
        assert_ne!(generate(20, 40, 1), generate(20, 40, 2));
    }

    #[test]
    fn tiny_and_empty() {
        crate::validate_full(&generate(0, 0, 1), "s").unwrap();
        crate::validate_full(&generate(2, 1, 1), "s").unwrap();
    }
}

//! Lint: advisories about a valid policy (errors with `bulkctl policy lint
//! --strict`).
//!
//! Warnings:
//! - an `allow` rule from `world` (directly, through `any` or a group) to an
//!   internal segment on an administrative or database port ([`ADMIN_PORTS`],
//!   TCP or UDP);
//! - a shadowed rule: earlier rules together cover every (source segment,
//!   destination segment, protocol, port) it matches, so it never decides.
//!   Precision: the check is exact (a union of earlier rules, not only a
//!   single covering rule, is recognised) when the rule's from × to has at
//!   most [`EXACT_PAIR_LIMIT`] segment pairs; beyond that only earlier rules
//!   whose `from` and `to` each contain the whole of this rule's are
//!   combined (sound: it never reports a rule that is not shadowed, but may
//!   miss one). Service sets are compared exactly as intervals over
//!   (protocol, port or type). The whole analysis stops after
//!   [`SHADOW_WORK_BUDGET`] candidate comparisons and says so;
//! - a rule that can never match (its `from` or `to` selects no segment);
//! - a group or service that no rule uses; an empty group;
//! - `default: allow`;
//! - a segment with no members (no VLAN, prefix or endpoint; world excluded).

use std::collections::{HashMap, HashSet};

use bulkhead_classify::{proto, Action, RuleDef, SegIdx, SegmentSet, ServiceSpec};

use crate::ast::{GroupBody, Selector, ServiceRef};
use crate::diag::{Diagnostic, Severity};
use crate::yaml::Pos;
use crate::Policy;

/// Administrative and database ports that `world` should not reach.
pub const ADMIN_PORTS: &[u16] = &[
    22, 23, 3389, 5900, 3306, 5432, 1433, 6379, 9200, 11211, 27017,
];

/// Largest from × to (in segment pairs) for which shadowing is exact.
pub const EXACT_PAIR_LIMIT: usize = 4096;

/// Most candidate-rule comparisons spent on shadow analysis per policy.
pub const SHADOW_WORK_BUDGET: u64 = 50_000_000;

/// Lint warnings for a loaded policy, sorted by position.
/// Zones the policy names that none of the given appliances binds (the
/// spec: "a zone no appliance binds is not an error (lint notes it)").
/// `bound` holds every zone the appliance configurations name; the notes
/// are warnings whose message starts with `note:`. One per segment and zone,
/// at the zone's position.
pub fn unbound_zones(
    policy: &Policy,
    bound: &std::collections::BTreeSet<String>,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for s in &policy.document().segments {
        for z in &s.zones {
            if !bound.contains(&z.v) {
                out.push(Diagnostic {
                    severity: Severity::Warning,
                    origin: policy.origin().to_string(),
                    object: Some(format!("segment \"{}\"", s.name)),
                    line: z.at.0.line,
                    column: z.at.0.col,
                    message: format!(
                        "note: zone \"{}\" is bound by none of the given appliance configurations: its hosts can reach no appliance from there",
                        z.v
                    ),
                });
            }
        }
    }
    out
}

pub fn lint(policy: &Policy) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let doc = policy.document();
    let rs = policy.ruleset();
    let w = |object: Option<String>, pos: Pos, message: String| Diagnostic {
        severity: Severity::Warning,
        origin: policy.origin().to_string(),
        object,
        line: pos.line,
        column: pos.col,
        message,
    };

    if doc.default_action == Action::Allow {
        out.push(w(
            None,
            Pos::default(),
            "default: allow admits everything no rule denies (meant only for migrations)".into(),
        ));
    }

    // Segments with no members.
    let mut has_endpoint = vec![false; rs.segments.len()];
    for e in &rs.endpoints {
        if let Some(slot) = usize::try_from(e.segment)
            .ok()
            .and_then(|i| has_endpoint.get_mut(i))
        {
            *slot = true;
        }
    }
    for (i, s) in doc.segments.iter().enumerate() {
        if s.vlans.is_empty()
            && s.prefixes.is_empty()
            && !has_endpoint.get(i + 1).copied().unwrap_or(false)
        {
            out.push(w(
                Some(format!("segment \"{}\"", s.name)),
                s.at.0,
                "has no members (no vlans, prefixes or endpoints); it only gets traffic from endpoints added at run time".into(),
            ));
        }
    }

    // Zones: when some segments are bound to places, a segment with
    // prefixes but neither VLANs nor zones can be claimed from anywhere.
    if doc.segments.iter().any(|s| !s.zones.is_empty()) {
        for s in &doc.segments {
            if !s.prefixes.is_empty() && s.vlans.is_empty() && s.zones.is_empty() {
                out.push(w(
                    Some(format!("segment \"{}\"", s.name)),
                    s.at.0,
                    "has prefixes but neither vlans nor zones while other segments have zones: its sources are not bound to a place (any host may claim its addresses)".into(),
                ));
            }
        }
    }

    // Groups: empty, unused.
    let mut used_groups: HashSet<&str> = HashSet::new();
    let mut used_services: HashSet<&str> = HashSet::new();
    for r in &doc.rules {
        for s in r.from.iter().chain(r.to.iter()) {
            if let Selector::Group(g) = &s.v {
                used_groups.insert(g);
            }
        }
        for s in &r.services {
            if let ServiceRef::Named(n) = &s.v {
                used_services.insert(n);
            }
        }
    }
    for (g, members) in doc.groups.iter().zip(policy.all_group_members()) {
        let obj = Some(format!("group \"{}\"", g.name));
        if members.is_empty() {
            let why = match &g.body {
                GroupBody::Match(_) => "no segment has all of its labels",
                GroupBody::Segments(_) => "it lists no segment",
            };
            out.push(w(obj.clone(), g.at.0, format!("is empty: {why}")));
        }
        if !used_groups.contains(g.name.as_str()) {
            out.push(w(obj, g.at.0, "is not used by any rule".into()));
        }
    }
    for s in &doc.services {
        if !used_services.contains(s.name.as_str()) {
            out.push(w(
                Some(format!("service \"{}\"", s.name)),
                s.at.0,
                "is not used by any rule".into(),
            ));
        }
    }

    // Rules.
    let nseg = rs.segments.len();
    for (r, ast) in rs.rules.iter().zip(&doc.rules) {
        let obj = Some(format!("rule \"{}\"", r.name));
        let empty = |s: &SegmentSet| matches!(s, SegmentSet::List(v) if v.is_empty());
        if empty(&r.from) || empty(&r.to) {
            let side = if empty(&r.from) { "from" } else { "to" };
            out.push(w(
                obj.clone(),
                ast.at.0,
                format!("can never match: `{side}` selects no segment (its groups are empty)"),
            ));
            continue;
        }
        if r.action == Action::Allow && r.from.contains(0) {
            let internal = match &r.to {
                SegmentSet::Any => (1..nseg).find_map(|i| SegIdx::try_from(i).ok()),
                SegmentSet::List(v) => v.iter().copied().find(|&s| s != 0),
            };
            if let Some(dst) = internal {
                let hits: Vec<String> = ADMIN_PORTS
                    .iter()
                    .flat_map(|&p| [(proto::TCP, p, "tcp"), (proto::UDP, p, "udp")])
                    .filter(|&(pr, p, _)| r.services.iter().any(|s| s.matches(pr, p)))
                    .map(|(_, p, w)| format!("{w}/{p}"))
                    .collect();
                if !hits.is_empty() {
                    let from = if r.from == SegmentSet::Any {
                        "any (including world)"
                    } else {
                        "world"
                    };
                    out.push(w(
                        obj.clone(),
                        ast.at.0,
                        format!(
                            "allows {from} to internal segment \"{}\" on administrative or database port(s) {}",
                            policy.segment_name(dst),
                            hits.join(", ")
                        ),
                    ));
                }
            }
        }
    }
    shadowing(policy, &mut out);

    out.sort_by_key(|d| (d.line == 0, d.line, d.column));
    out
}

/// Key space for service sets: `proto << 16 | port`, with each protocol's
/// reachable ports (0..=65535 for TCP/UDP/SCTP, 0..=255 for ICMP types,
/// 0 for other protocols, which carry no port in a [`bulkhead_classify::FlowQuery`]).
fn max_port(p: u8) -> u32 {
    match p {
        proto::TCP | proto::UDP | proto::SCTP => 65535,
        proto::ICMP | proto::ICMPV6 => 255,
        _ => 0,
    }
}

fn key(p: u8, port: u32) -> u32 {
    (u32::from(p) << 16) | port
}

/// Sorted, merged, inclusive intervals of the key space a spec list matches.
pub(crate) fn intervals(specs: &[ServiceSpec]) -> Vec<(u32, u32)> {
    let mut v: Vec<(u32, u32)> = Vec::new();
    for s in specs {
        match *s {
            ServiceSpec::Any => {
                for p in 0..=255u8 {
                    v.push((key(p, 0), key(p, max_port(p))));
                }
            }
            ServiceSpec::Ports { proto: p, lo, hi } => {
                let m = max_port(p);
                let (lo, hi) = (u32::from(lo).min(m), u32::from(hi).min(m));
                v.push((key(p, lo), key(p, hi)));
            }
            ServiceSpec::IcmpTypes { proto: p, lo, hi } => {
                let m = max_port(p);
                if u32::from(lo) <= m {
                    v.push((key(p, u32::from(lo)), key(p, u32::from(hi).min(m))));
                }
            }
            ServiceSpec::Proto(p) => v.push((key(p, 0), key(p, max_port(p)))),
        }
    }
    merge(v)
}

fn merge(mut v: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    v.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(v.len());
    for (lo, hi) in v {
        match out.last_mut() {
            // Adjacent intervals of the same protocol merge too.
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// Is every interval of `need` inside the union `have` (both merged)?
fn covered(need: &[(u32, u32)], have: &[(u32, u32)]) -> bool {
    need.iter()
        .all(|&(lo, hi)| have.iter().any(|&(a, b)| a <= lo && hi <= b))
}

fn is_superset(big: &SegmentSet, small: &SegmentSet) -> bool {
    match (big, small) {
        (SegmentSet::Any, _) => true,
        (SegmentSet::List(_), SegmentSet::Any) => false,
        (SegmentSet::List(b), SegmentSet::List(s)) => s.iter().all(|x| b.binary_search(x).is_ok()),
    }
}

fn expand(s: &SegmentSet, nseg: usize) -> Vec<SegIdx> {
    match s {
        SegmentSet::Any => (0..nseg).filter_map(|i| SegIdx::try_from(i).ok()).collect(),
        SegmentSet::List(v) => v.clone(),
    }
}

fn shadowing(policy: &Policy, out: &mut Vec<Diagnostic>) {
    let rs = policy.ruleset();
    let doc = policy.document();
    let nseg = rs.segments.len();
    let ivs: Vec<Vec<(u32, u32)>> = rs.rules.iter().map(|r| intervals(&r.services)).collect();
    // Rules (by index, increasing) whose from holds a segment; `any` kept apart.
    let mut by_from: HashMap<SegIdx, Vec<usize>> = HashMap::new();
    let mut any_from: Vec<usize> = Vec::new();
    for (i, r) in rs.rules.iter().enumerate() {
        match &r.from {
            SegmentSet::Any => any_from.push(i),
            SegmentSet::List(v) => {
                for s in v {
                    by_from.entry(*s).or_default().push(i);
                }
            }
        }
    }
    let mut work: u64 = 0;
    let empty: Vec<usize> = Vec::new();
    for (j, r) in rs.rules.iter().enumerate() {
        if work > SHADOW_WORK_BUDGET {
            out.push(Diagnostic {
                severity: Severity::Warning,
                origin: policy.origin().to_string(),
                object: None,
                line: 0,
                column: 0,
                message: format!(
                    "shadowed-rule analysis stopped at rule {} of {} (work budget spent); later rules were not checked",
                    j + 1,
                    rs.rules.len()
                ),
            });
            break;
        }
        let from = expand(&r.from, nseg);
        let to = expand(&r.to, nseg);
        if from.is_empty() || to.is_empty() {
            continue;
        }
        let candidates = |s: SegIdx| -> (&[usize], &[usize]) {
            let a = by_from.get(&s).unwrap_or(&empty);
            let cut_a = a.partition_point(|&i| i < j);
            let cut_b = any_from.partition_point(|&i| i < j);
            (&a[..cut_a], &any_from[..cut_b])
        };
        let mut coverers: Vec<usize> = Vec::new();
        let shadowed = if from.len().saturating_mul(to.len()) <= EXACT_PAIR_LIMIT {
            let mut all = true;
            'pairs: for &s in &from {
                let (a, b) = candidates(s);
                for &d in &to {
                    let mut have = Vec::new();
                    let mut used = Vec::new();
                    for &i in a.iter().chain(b) {
                        work += 1;
                        if rs.rules[i].to.contains(d) {
                            have.extend_from_slice(&ivs[i]);
                            used.push(i);
                        }
                    }
                    let have = merge(have);
                    if !covered(&ivs[j], &have) {
                        all = false;
                        break 'pairs;
                    }
                    for u in used {
                        if !coverers.contains(&u) {
                            coverers.push(u);
                        }
                    }
                }
            }
            all
        } else {
            let (a, b) = candidates(from[0]);
            let mut have = Vec::new();
            for &i in a.iter().chain(b) {
                work += 1;
                let e: &RuleDef = &rs.rules[i];
                if is_superset(&e.from, &r.from) && is_superset(&e.to, &r.to) {
                    have.extend_from_slice(&ivs[i]);
                    coverers.push(i);
                }
            }
            covered(&ivs[j], &merge(have))
        };
        if shadowed {
            coverers.sort_unstable();
            let names: Vec<String> = coverers
                .iter()
                .take(5)
                .map(|&i| format!("\"{}\"", rs.rules[i].name))
                .collect();
            let more = if coverers.len() > 5 {
                format!(" and {} more", coverers.len() - 5)
            } else {
                String::new()
            };
            let pos = doc.rules.get(j).map(|a| a.at.0).unwrap_or_default();
            out.push(Diagnostic {
                severity: Severity::Warning,
                origin: policy.origin().to_string(),
                object: Some(format!("rule \"{}\"", r.name)),
                line: pos.line,
                column: pos.col,
                message: format!("is shadowed: earlier rule(s) {}{more} already decide every connection it matches", names.join(", ")),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lint_of(src: &str) -> Vec<String> {
        let p = crate::load(src, "t.yaml")
            .unwrap_or_else(|e| panic!("{e:?}"))
            .policy;
        lint(&p).iter().map(ToString::to_string).collect()
    }

    const BASE: &str = "version: 1\nsegments:\n  a: {id: 1, prefixes: [10.1.0.0/16]}\n  b: {id: 2, prefixes: [10.2.0.0/16]}\n  c: {id: 3, prefixes: [10.3.0.0/16]}\n";

    #[test]
    fn clean_policy_has_no_warnings() {
        let src = format!("{BASE}rules:\n  - {{name: r1, from: [a], to: [b], services: [tcp/443], action: allow}}\n  - {{name: r2, from: [b], to: [c], services: [tcp/443], action: allow}}\n  - {{name: r3, from: [c], to: [a], services: [tcp/443], action: allow}}\n");
        assert_eq!(lint_of(&src), Vec::<String>::new());
    }

    #[test]
    fn shadowed_by_one_rule() {
        let src = format!("{BASE}rules:\n  - {{name: wide, from: [a, b], to: [c], services: [tcp], action: deny}}\n  - {{name: narrow, from: [a], to: [c], services: [tcp/22], action: allow}}\n");
        let l = lint_of(&src);
        assert!(
            l.iter().any(|m| m.contains(
                "t.yaml:8:5: warning: rule \"narrow\": is shadowed: earlier rule(s) \"wide\""
            )),
            "{l:?}"
        );
    }

    #[test]
    fn shadowed_by_a_union_of_rules() {
        // Neither earlier rule alone covers `late`; together they do (ports and segments).
        let src = format!("{BASE}rules:\n  - {{name: lo, from: [a], to: [c], services: [tcp/1-100], action: allow}}\n  - {{name: hi, from: [a], to: [c], services: [tcp/101-200], action: deny}}\n  - {{name: other, from: [b], to: [c], services: [tcp/1-200], action: allow}}\n  - {{name: late, from: [a, b], to: [c], services: [tcp/50-150], action: allow}}\n");
        let l = lint_of(&src);
        assert!(
            l.iter().any(|m| m.contains("rule \"late\": is shadowed")),
            "{l:?}"
        );
        assert!(
            !l.iter().any(|m| m.contains("rule \"hi\": is shadowed")),
            "{l:?}"
        );
    }

    #[test]
    fn partly_covered_rule_is_not_shadowed() {
        let src = format!("{BASE}rules:\n  - {{name: first, from: [a], to: [c], services: [tcp/1-100], action: allow}}\n  - {{name: second, from: [a], to: [c], services: [tcp/100-101], action: allow}}\n  - {{name: third, from: [a, b], to: [c], services: [tcp/1], action: allow}}\n");
        let l = lint_of(&src);
        assert!(!l.iter().any(|m| m.contains("shadowed")), "{l:?}");
    }

    #[test]
    fn any_covers_everything_including_other_protocols() {
        let src = format!("{BASE}rules:\n  - {{name: all, from: [any], to: [any], services: [any], action: deny}}\n  - {{name: gre, from: [a], to: [b], services: [proto/47], action: allow}}\n  - {{name: icmp, from: [world], to: [b], services: [icmp], action: allow}}\n");
        let l = lint_of(&src);
        assert!(
            l.iter().any(|m| m.contains("rule \"gre\": is shadowed")),
            "{l:?}"
        );
        assert!(
            l.iter().any(|m| m.contains("rule \"icmp\": is shadowed")),
            "{l:?}"
        );
    }

    #[test]
    fn proto_number_covers_its_ports() {
        let src = format!("{BASE}rules:\n  - {{name: tcpall, from: [a], to: [b], services: [proto/6], action: allow}}\n  - {{name: web, from: [a], to: [b], services: [tcp/80], action: allow}}\n");
        assert!(lint_of(&src)
            .iter()
            .any(|m| m.contains("rule \"web\": is shadowed")));
    }

    #[test]
    fn admin_port_from_world() {
        let src = format!("{BASE}rules:\n  - {{name: open-db, from: [world], to: [b], services: [tcp/5432, tcp/443], action: allow}}\n  - {{name: any-ssh, from: [any], to: [c], services: [tcp/20-25], action: allow}}\n  - {{name: deny-ok, from: [world], to: [a], services: [tcp/22], action: deny}}\n");
        let l = lint_of(&src);
        assert!(l.iter().any(|m| m.contains("rule \"open-db\": allows world to internal segment \"b\" on administrative or database port(s) tcp/5432")), "{l:?}");
        assert!(l.iter().any(|m| m.contains("rule \"any-ssh\": allows any (including world) to internal segment \"c\" on administrative or database port(s) tcp/22, tcp/23")), "{l:?}");
        assert!(!l.iter().any(|m| m.contains("deny-ok")), "{l:?}");
    }

    #[test]
    fn unused_empty_and_memberless() {
        let src = "version: 1\ndefault: allow\nsegments:\n  a: {id: 1, prefixes: [10.1.0.0/16]}\n  lonely: {id: 2, labels: {x: y}}\ngroups:\n  nobody: {match: {tier: none}}\n  spare: {segments: [a]}\nservices:\n  unused: [tcp/1]\nrules:\n  - {name: never, from: [group:nobody], to: [a], services: [any], action: allow}\n";
        let l = lint_of(src);
        let has = |s: &str| l.iter().any(|m| m.contains(s));
        assert!(has("t.yaml: warning: default: allow"), "{l:?}");
        assert!(has("segment \"lonely\": has no members"), "{l:?}");
        assert!(!has("segment \"a\": has no members"), "{l:?}");
        assert!(has("group \"nobody\": is empty"), "{l:?}");
        assert!(has("group \"spare\": is not used by any rule"), "{l:?}");
        assert!(!has("group \"nobody\": is not used"), "{l:?}");
        assert!(has("service \"unused\": is not used by any rule"), "{l:?}");
        assert!(
            has("rule \"never\": can never match: `from` selects no segment"),
            "{l:?}"
        );
    }

    #[test]
    fn endpoint_gives_a_segment_members() {
        let src = "version: 1\nsegments:\n  a: {id: 1}\nendpoints:\n  - {ip: 10.0.0.1, segment: a}\nrules: []\n";
        assert!(!lint_of(src).iter().any(|m| m.contains("no members")));
    }

    #[test]
    fn prefix_segment_unbound_while_others_have_zones() {
        let src = "version: 1\nsegments:\n  a: {id: 1, prefixes: [10.1.0.0/16], zones: [edge]}\n  b: {id: 2, prefixes: [10.2.0.0/16]}\n  c: {id: 3, prefixes: [10.3.0.0/16], vlans: [3]}\nrules:\n  - {name: r1, from: [a], to: [b], services: [tcp/443], action: allow}\n  - {name: r2, from: [b], to: [c], services: [tcp/443], action: allow}\n";
        let w = lint_of(src);
        assert!(
            w.iter()
                .any(|m| m.contains("segment \"b\"") && m.contains("not bound to a place")),
            "{w:?}"
        );
        assert!(!w
            .iter()
            .any(|m| m.contains("segment \"c\"") && m.contains("not bound")));
        let unzoned = src.replace(", zones: [edge]", "");
        assert!(!lint_of(&unzoned).iter().any(|m| m.contains("not bound")));
    }

    #[test]
    fn unbound_zones_are_noted_once_per_segment_and_zone() {
        let src = "version: 1\nsegments:\n  a: {id: 1, prefixes: [10.1.0.0/16], zones: [edge, vpn]}\n  b: {id: 2, prefixes: [10.2.0.0/16], zones: [core]}\n";
        let p = crate::load(src, "z.yaml").unwrap().policy;
        let bound: std::collections::BTreeSet<String> =
            ["edge".to_string(), "core".to_string()].into();
        let notes = unbound_zones(&p, &bound);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].message.contains("\"vpn\""));
        assert_eq!(notes[0].object.as_deref(), Some("segment \"a\""));
        assert_eq!(notes[0].line, 3);
        assert_eq!(unbound_zones(&p, &Default::default()).len(), 3);
    }
}

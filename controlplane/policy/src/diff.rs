//! Semantic diff of two policies.
//!
//! Verdict changes: for every (source segment, destination segment) over the
//! union of both policies' segment names and every class of equivalent
//! traffic, the decision of the old and the new policy is compared (through
//! `bulkhead_classify::reference::decide`). Traffic classes are derived from
//! both policies' service specs: each protocol a spec names is cut at every
//! range boundary (`tcp/8000-8099` gives 0-7999, 8000-8099, 8100-65535);
//! protocols no spec names behave alike and form one class, shown as
//! `proto/other`. Adjacent classes with the same change are merged.
//!
//! A segment that exists in one policy only is compared as `world` on the
//! other side (its traffic is unplaced there, unless another segment's prefix
//! covers its addresses: the diff is by name, not by address). Verdicts are
//! `allow`, `deny` or `would-deny` (denied, destination in monitor mode), so
//! switching a segment between `monitor` and `enforce` shows up. The
//! evaluation stops after [`MAX_DIFF_WORK`] rule visits and says so
//! (`truncated`).
//!
//! Object changes: segments, groups, services, rules (including a change of
//! position), endpoints, `default` and `anti_spoofing`, added, removed or
//! changed. Tests are not compared.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use bulkhead_classify::{proto, reference, Action, FlowQuery, SegIdx, ServiceSpec};

use crate::policy::verdict_word;
use crate::spec::proto_word;
use crate::Policy;

/// Most (evaluations × rules) spent on verdict comparison.
pub const MAX_DIFF_WORK: u64 = 2_000_000_000;

/// One side of a verdict change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// `allow`, `deny` or `would-deny`.
    pub verdict: String,
    /// Deciding rule or `default`.
    pub rule: String,
}

/// Traffic whose verdict differs between the two policies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerdictChange {
    pub src: String,
    pub dst: String,
    /// e.g. `tcp/5432`, `tcp/8000-8099`, `proto/47`, `proto/other`.
    pub service: String,
    pub old: Verdict,
    pub new: Verdict,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Added,
    Removed,
    Changed,
}

/// An object added, removed or changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectChange {
    /// `segment`, `group`, `service`, `rule`, `endpoint`, `default`, `anti_spoofing`.
    pub kind: &'static str,
    pub name: String,
    pub change: Change,
    /// What changed, for `Changed`.
    pub detail: Option<String>,
}

/// The difference between two policies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyDiff {
    pub verdict_changes: Vec<VerdictChange>,
    pub objects: Vec<ObjectChange>,
    /// The verdict comparison stopped early (work limit).
    pub truncated: bool,
}

impl PolicyDiff {
    /// No verdict and no object changed.
    pub fn is_empty(&self) -> bool {
        self.verdict_changes.is_empty() && self.objects.is_empty()
    }

    /// The diff as JSON:
    /// `{"verdict_changes": [{"src","dst","service","old": {"verdict","rule"},"new": {...}}],
    ///   "objects": [{"kind","name","change": "added"|"removed"|"changed","detail"}], "truncated": bool}`.
    pub fn to_json(&self) -> serde_json::Value {
        let v = |x: &Verdict| serde_json::json!({"verdict": x.verdict, "rule": x.rule});
        serde_json::json!({
            "verdict_changes": self.verdict_changes.iter().map(|c| serde_json::json!({
                "src": c.src, "dst": c.dst, "service": c.service, "old": v(&c.old), "new": v(&c.new),
            })).collect::<Vec<_>>(),
            "objects": self.objects.iter().map(|o| serde_json::json!({
                "kind": o.kind, "name": o.name, "change": change_word(o.change), "detail": o.detail,
            })).collect::<Vec<_>>(),
            "truncated": self.truncated,
        })
    }
}

fn change_word(c: Change) -> &'static str {
    match c {
        Change::Added => "added",
        Change::Removed => "removed",
        Change::Changed => "changed",
    }
}

impl fmt::Display for PolicyDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(f, "no differences");
        }
        if !self.verdict_changes.is_empty() {
            writeln!(f, "verdict changes ({}):", self.verdict_changes.len())?;
            for c in &self.verdict_changes {
                writeln!(
                    f,
                    "  {} -> {} {}: {} ({}) => {} ({})",
                    c.src, c.dst, c.service, c.old.verdict, c.old.rule, c.new.verdict, c.new.rule
                )?;
            }
        } else {
            writeln!(f, "no verdict changes")?;
        }
        if self.truncated {
            writeln!(
                f,
                "  (verdict comparison stopped early: policies too large; list incomplete)"
            )?;
        }
        if !self.objects.is_empty() {
            writeln!(f, "object changes ({}):", self.objects.len())?;
            for o in &self.objects {
                let sign = match o.change {
                    Change::Added => '+',
                    Change::Removed => '-',
                    Change::Changed => '~',
                };
                write!(f, "  {sign} {} {}", o.kind, o.name)?;
                if let Some(d) = &o.detail {
                    write!(f, ": {d}")?;
                }
                writeln!(f)?;
            }
        }
        Ok(())
    }
}

fn max_port(p: u8) -> u32 {
    match p {
        proto::TCP | proto::UDP | proto::SCTP => 65535,
        proto::ICMP | proto::ICMPV6 => 255,
        _ => 0,
    }
}

/// A class of traffic: protocol `proto` (or every unnamed protocol when
/// `other`), ports or types `lo..=hi`.
#[derive(Clone, Copy, Debug)]
struct Class {
    proto: u8,
    lo: u32,
    hi: u32,
    other: bool,
}

impl Class {
    fn describe(&self) -> String {
        if self.other {
            return "proto/other".into();
        }
        let m = max_port(self.proto);
        let w = proto_word(self.proto);
        if m == 0 || (self.lo == 0 && self.hi == m) {
            w
        } else if self.lo == self.hi {
            format!("{w}/{}", self.lo)
        } else {
            format!("{w}/{}-{}", self.lo, self.hi)
        }
    }
}

fn classes(a: &Policy, b: &Policy) -> Vec<Class> {
    let mut cuts: HashMap<u8, BTreeSet<u32>> = HashMap::new();
    for spec in a
        .ruleset()
        .rules
        .iter()
        .chain(&b.ruleset().rules)
        .flat_map(|r| &r.services)
    {
        match *spec {
            ServiceSpec::Any => {}
            ServiceSpec::Ports { proto: p, lo, hi } => {
                let c = cuts.entry(p).or_default();
                c.insert(u32::from(lo));
                c.insert(u32::from(hi) + 1);
            }
            ServiceSpec::IcmpTypes { proto: p, lo, hi } => {
                let c = cuts.entry(p).or_default();
                c.insert(u32::from(lo));
                c.insert(u32::from(hi) + 1);
            }
            ServiceSpec::Proto(p) => {
                cuts.entry(p).or_default();
            }
        }
    }
    let mut out = Vec::new();
    let mut other: Option<u8> = None;
    for p in 0..=255u8 {
        match cuts.get(&p) {
            None => {
                if other.is_none() {
                    other = Some(p);
                }
            }
            Some(c) => {
                let m = max_port(p);
                let mut points: Vec<u32> = c.iter().copied().filter(|&x| x <= m).collect();
                points.push(0);
                points.push(m + 1);
                points.sort_unstable();
                points.dedup();
                for w in points.windows(2) {
                    out.push(Class {
                        proto: p,
                        lo: w[0],
                        hi: w[1] - 1,
                        other: false,
                    });
                }
            }
        }
    }
    if let Some(p) = other {
        out.push(Class {
            proto: p,
            lo: 0,
            hi: 0,
            other: true,
        });
    }
    out
}

fn verdict_of(p: &Policy, src: SegIdx, dst: SegIdx, c: &Class) -> Verdict {
    let d = reference::decide(
        p.ruleset(),
        &FlowQuery {
            src,
            dst,
            proto: c.proto,
            port: u16::try_from(c.lo).unwrap_or(0),
        },
    );
    let verdict = if d.monitor {
        "would-deny"
    } else {
        verdict_word(d.action)
    };
    Verdict {
        verdict: verdict.into(),
        rule: p.rule_name(d.rule).to_string(),
    }
}

/// Compare two policies (see the module docs).
pub fn diff(old: &Policy, new: &Policy) -> PolicyDiff {
    let mut out = PolicyDiff::default();
    let mut names: Vec<&str> = old
        .ruleset()
        .segments
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    for s in &new.ruleset().segments {
        if old.segment_index(&s.name).is_none() {
            names.push(&s.name);
        }
    }
    let cls = classes(old, new);
    let per_eval = u64::try_from(old.ruleset().rules.len() + new.ruleset().rules.len() + 1)
        .unwrap_or(u64::MAX);
    let mut work: u64 = 0;
    'outer: for s in &names {
        let (os, ns) = (
            old.segment_index(s).unwrap_or(0),
            new.segment_index(s).unwrap_or(0),
        );
        for d in &names {
            let (od, nd) = (
                old.segment_index(d).unwrap_or(0),
                new.segment_index(d).unwrap_or(0),
            );
            let mut pending: Option<(VerdictChange, Class)> = None;
            for c in &cls {
                work = work.saturating_add(per_eval);
                if work > MAX_DIFF_WORK {
                    out.truncated = true;
                    if let Some((p, _)) = pending.take() {
                        out.verdict_changes.push(p);
                    }
                    break 'outer;
                }
                let a = verdict_of(old, os, od, c);
                let b = verdict_of(new, ns, nd, c);
                if a.verdict == b.verdict {
                    if let Some((p, _)) = pending.take() {
                        out.verdict_changes.push(p);
                    }
                    continue;
                }
                // Merge with the previous class when contiguous and the same change.
                if let Some((p, pc)) = &mut pending {
                    if !c.other
                        && !pc.other
                        && pc.proto == c.proto
                        && pc.hi + 1 == c.lo
                        && p.old == a
                        && p.new == b
                    {
                        pc.hi = c.hi;
                        p.service = pc.describe();
                        continue;
                    }
                }
                if let Some((p, _)) = pending.take() {
                    out.verdict_changes.push(p);
                }
                pending = Some((
                    VerdictChange {
                        src: (*s).to_string(),
                        dst: (*d).to_string(),
                        service: c.describe(),
                        old: a,
                        new: b,
                    },
                    *c,
                ));
            }
            if let Some((p, _)) = pending.take() {
                out.verdict_changes.push(p);
            }
        }
    }
    objects(old, new, &mut out.objects);
    out
}

fn compare<T: PartialEq>(
    kind: &'static str,
    old: &[T],
    new: &[T],
    name: impl Fn(&T) -> String,
    detail: impl Fn(&T, &T) -> Option<String>,
    out: &mut Vec<ObjectChange>,
) {
    let old_map: HashMap<String, &T> = old.iter().map(|o| (name(o), o)).collect();
    let new_map: HashMap<String, &T> = new.iter().map(|o| (name(o), o)).collect();
    for o in old {
        let n = name(o);
        match new_map.get(&n) {
            None => out.push(ObjectChange {
                kind,
                name: n,
                change: Change::Removed,
                detail: None,
            }),
            Some(x) => {
                if let Some(d) = detail(o, x) {
                    out.push(ObjectChange {
                        kind,
                        name: n,
                        change: Change::Changed,
                        detail: Some(d),
                    });
                }
            }
        }
    }
    for o in new {
        let n = name(o);
        if !old_map.contains_key(&n) {
            out.push(ObjectChange {
                kind,
                name: n,
                change: Change::Added,
                detail: None,
            });
        }
    }
}

fn objects(old: &Policy, new: &Policy, out: &mut Vec<ObjectChange>) {
    let (a, b) = (old.document(), new.document());
    if a.default_action != b.default_action {
        out.push(ObjectChange {
            kind: "default",
            name: "default".into(),
            change: Change::Changed,
            detail: Some(format!(
                "{} -> {}",
                verdict_word(a.default_action),
                verdict_word(b.default_action)
            )),
        });
    }
    if a.anti_spoofing != b.anti_spoofing {
        out.push(ObjectChange {
            kind: "anti_spoofing",
            name: "anti_spoofing".into(),
            change: Change::Changed,
            detail: Some(format!("{} -> {}", a.anti_spoofing, b.anti_spoofing)),
        });
    }
    let q = |s: &str| format!("\"{s}\"");
    compare(
        "segment",
        &a.segments,
        &b.segments,
        |s| q(&s.name),
        |x, y| {
            let mut d = Vec::new();
            if x.id != y.id {
                d.push(format!("id {} -> {}", x.id, y.id));
            }
            if x.vlans != y.vlans {
                d.push("vlans".to_string());
            }
            if x.prefixes != y.prefixes {
                d.push("prefixes".to_string());
            }
            if x.labels != y.labels {
                d.push("labels".to_string());
            }
            if x.mode != y.mode {
                d.push(format!("mode {:?} -> {:?}", x.mode, y.mode).to_lowercase());
            }
            if x.zones != y.zones {
                d.push("zones".to_string());
            }
            if x.description != y.description {
                d.push("description".to_string());
            }
            (!d.is_empty()).then(|| d.join(", "))
        },
        out,
    );
    compare(
        "group",
        &a.groups,
        &b.groups,
        |g| q(&g.name),
        |x, y| (x != y).then(|| "definition".to_string()),
        out,
    );
    compare(
        "service",
        &a.services,
        &b.services,
        |s| q(&s.name),
        |x, y| (x != y).then(|| "specs".to_string()),
        out,
    );
    let pos_a: HashMap<&str, usize> = a
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.as_str(), i))
        .collect();
    let pos_b: HashMap<&str, usize> = b
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.as_str(), i))
        .collect();
    compare(
        "rule",
        &a.rules,
        &b.rules,
        |r| q(&r.name),
        |x, y| {
            let mut d = Vec::new();
            for (what, changed) in [
                ("from", x.from != y.from),
                ("to", x.to != y.to),
                ("services", x.services != y.services),
                ("log", x.log != y.log),
                ("description", x.description != y.description),
            ] {
                if changed {
                    d.push(what.to_string());
                }
            }
            if x.action != y.action {
                d.push(format!(
                    "action {} -> {}",
                    verdict_word(x.action),
                    verdict_word(y.action)
                ));
            }
            let (pa, pb) = (pos_a.get(x.name.as_str()), pos_b.get(y.name.as_str()));
            if let (Some(pa), Some(pb)) = (pa, pb) {
                if pa != pb {
                    d.push(format!("position {} -> {}", pa + 1, pb + 1));
                }
            }
            (!d.is_empty()).then(|| d.join(", "))
        },
        out,
    );
    compare(
        "endpoint",
        &a.endpoints,
        &b.endpoints,
        |e| e.ip.to_string(),
        |x, y| (x != y).then(|| format!("segment {} -> {}", x.segment.v, y.segment.v)),
        out,
    );
}

/// Verdict word for an action (re-exported for the CLI).
pub fn action_word(a: Action) -> &'static str {
    verdict_word(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Policy {
        crate::load(s, "t")
            .unwrap_or_else(|e| panic!("{e:?}"))
            .policy
    }

    const OLD: &str = "version: 1\nsegments:\n  a: {id: 1, prefixes: [10.1.0.0/16]}\n  b: {id: 2, prefixes: [10.2.0.0/16]}\nservices:\n  web: [tcp/8000-8099]\nrules:\n  - {name: r1, from: [a], to: [b], services: [web], action: allow}\n";

    #[test]
    fn identical_policies_have_no_diff() {
        let d = diff(&p(OLD), &p(OLD));
        assert!(d.is_empty());
        assert_eq!(d.to_string(), "no differences\n");
    }

    #[test]
    fn narrowing_a_range_reports_exactly_the_lost_ports() {
        let new = OLD.replace("tcp/8000-8099", "tcp/8000-8049");
        let d = diff(&p(OLD), &p(&new));
        assert_eq!(d.verdict_changes.len(), 1, "{d}");
        let c = &d.verdict_changes[0];
        assert_eq!(
            (c.src.as_str(), c.dst.as_str(), c.service.as_str()),
            ("a", "b", "tcp/8050-8099")
        );
        assert_eq!(
            c.old,
            Verdict {
                verdict: "allow".into(),
                rule: "r1".into()
            }
        );
        assert_eq!(
            c.new,
            Verdict {
                verdict: "deny".into(),
                rule: "default".into()
            }
        );
        assert_eq!(
            d.objects,
            vec![ObjectChange {
                kind: "service",
                name: "\"web\"".into(),
                change: Change::Changed,
                detail: Some("specs".into())
            }]
        );
        let j = d.to_json();
        assert_eq!(j["verdict_changes"][0]["service"], "tcp/8050-8099");
        assert_eq!(j["objects"][0]["change"], "changed");
    }

    #[test]
    fn monitor_mode_and_new_segment() {
        let new = OLD.replace(
            "b: {id: 2, prefixes: [10.2.0.0/16]}",
            "b: {id: 2, prefixes: [10.2.0.0/16], mode: monitor}\n  c: {id: 3}",
        ) + "  - {name: r2, from: [c], to: [a], services: [proto/47], action: allow}\n";
        let d = diff(&p(OLD), &p(&new));
        let text = d.to_string();
        assert!(
            text.contains("a -> b tcp/0-7999: deny (default) => would-deny (default)"),
            "{text}"
        );
        assert!(
            text.contains("c -> a proto/47: deny (default) => allow (r2)"),
            "{text}"
        );
        assert!(text.contains("+ segment \"c\""), "{text}");
        assert!(
            text.contains("~ segment \"b\": mode enforce -> monitor"),
            "{text}"
        );
        assert!(text.contains("+ rule \"r2\""), "{text}");
        // c is world in the old policy, and world -> a did not change for tcp.
        assert!(!text.contains("world -> a"), "{text}");
    }
}

//! [`Policy`]: a loaded, structurally valid policy; its tests and flow checks.
//! Every verdict comes from `bulkhead_classify::reference`, the one
//! implementation of the semantics shared with the dataplane's tests.

use std::collections::HashMap;
use std::net::IpAddr;

use bulkhead_classify::{reference, Action, FlowQuery, PlaceError, RuleRef, Ruleset, SegIdx};

use crate::ast::{Document, Place};
use crate::diag::{Diagnostic, Severity};
use crate::load::Resolved;
use crate::spec::{parse_probe, Probe};

/// A policy that passed every load-time check (its tests have not run).
#[derive(Clone, Debug)]
pub struct Policy {
    origin: String,
    doc: Document,
    ruleset: Ruleset,
    seg_index: HashMap<String, SegIdx>,
    rule_index: HashMap<String, u32>,
    group_members: Vec<Vec<SegIdx>>,
}

/// The result of [`crate::load`].
#[derive(Clone, Debug)]
pub struct Loaded {
    pub policy: Policy,
    /// Advisories found while loading (lint warnings are separate: [`crate::lint`]).
    pub warnings: Vec<Diagnostic>,
}

/// Placement and decision for one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckOutcome {
    /// What the dataplane does: a monitored would-deny is `Allow`.
    pub verdict: Action,
    /// The deciding rule's name, `default`, or `spoofed` (dropped by
    /// anti-spoofing before any rule is consulted).
    pub rule: String,
    pub src_segment: String,
    pub dst_segment: String,
    /// The rules deny but the destination segment is in monitor mode, so the
    /// connection is forwarded and marked would-deny.
    pub monitor: bool,
}

impl CheckOutcome {
    /// What the rules say, monitor mode aside (`Deny` for a monitored would-deny).
    pub fn rule_verdict(&self) -> Action {
        if self.monitor {
            Action::Deny
        } else {
            self.verdict
        }
    }
}

/// The outcome of one policy test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestOutcome {
    /// The test's name, or `#N` (1-based position).
    pub name: String,
    pub line: u32,
    pub column: u32,
    pub passed: bool,
    pub expected: Action,
    /// The rule name (or `default`) the test requires, if any.
    pub expected_rule: Option<String>,
    /// The rule verdict (monitor mode aside: see [`CheckOutcome::rule_verdict`]).
    pub got: Action,
    pub got_rule: String,
    /// The destination is in monitor mode and the rules deny: forwarded as would-deny.
    pub monitor: bool,
    /// The flow, for messages: `from -> to service`.
    pub flow: String,
}

pub(crate) fn verdict_word(a: Action) -> &'static str {
    match a {
        Action::Allow => "allow",
        Action::Deny => "deny",
    }
}

impl std::fmt::Display for TestOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = if self.passed { "pass" } else { "FAIL" };
        write!(
            f,
            "{status} test {} (line {}): {}: expected {}",
            self.name,
            self.line,
            self.flow,
            verdict_word(self.expected)
        )?;
        if let Some(r) = &self.expected_rule {
            write!(f, " by rule {r}")?;
        }
        write!(
            f,
            ", got {} by rule {}",
            verdict_word(self.got),
            self.got_rule
        )?;
        if self.monitor {
            write!(f, " (destination in monitor mode: forwarded as would-deny)")?;
        }
        Ok(())
    }
}

impl Policy {
    pub(crate) fn from_resolved(r: Resolved, origin: &str) -> Policy {
        Policy {
            origin: origin.to_string(),
            doc: r.doc,
            ruleset: r.ruleset,
            seg_index: r.seg_index,
            rule_index: r.rule_index,
            group_members: r.group_members,
        }
    }

    /// The resolved model the dataplane compiles.
    pub fn ruleset(&self) -> &Ruleset {
        &self.ruleset
    }

    /// The document as written (objects in document order, with positions).
    pub fn document(&self) -> &Document {
        &self.doc
    }

    /// Where the policy came from (as given to [`crate::load`]).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Index of a segment by name (`world` is 0).
    pub fn segment_index(&self, name: &str) -> Option<SegIdx> {
        self.seg_index.get(name).copied()
    }

    /// Name of a segment by index (`?` if out of range).
    pub fn segment_name(&self, idx: SegIdx) -> &str {
        usize::try_from(idx)
            .ok()
            .and_then(|i| self.ruleset.segments.get(i))
            .map_or("?", |s| s.name.as_str())
    }

    /// Index of a rule by name.
    pub fn rule_index(&self, name: &str) -> Option<u32> {
        self.rule_index.get(name).copied()
    }

    /// Name of the deciding rule, `default` for the default.
    pub fn rule_name(&self, r: RuleRef) -> &str {
        match r {
            RuleRef::Default => "default",
            RuleRef::Rule(i) => usize::try_from(i)
                .ok()
                .and_then(|i| self.ruleset.rules.get(i))
                .map_or("?", |r| r.name.as_str()),
        }
    }

    /// Members of a group by name (sorted segment indices).
    pub fn group_members(&self, name: &str) -> Option<&[SegIdx]> {
        let i = self.doc.groups.iter().position(|g| g.name == name)?;
        self.group_members.get(i).map(Vec::as_slice)
    }

    /// Members of every group, in group order.
    pub fn all_group_members(&self) -> &[Vec<SegIdx>] {
        &self.group_members
    }

    /// Place and judge one connection. `from` and `to` are a segment name
    /// (taken as the segment directly) or an address (placed as the dataplane
    /// places it). `vlan` and `zone` (the ingress zone, checked against the
    /// source segment's `zones`) are only meaningful with an address source.
    pub fn check(
        &self,
        from: &str,
        to: &str,
        service: &str,
        vlan: Option<u16>,
        zone: Option<&str>,
    ) -> Result<CheckOutcome, Diagnostic> {
        let bad = |m: String| Diagnostic {
            severity: Severity::Error,
            origin: self.origin.clone(),
            object: None,
            line: 0,
            column: 0,
            message: m,
        };
        let probe = parse_probe(service).map_err(|e| bad(format!("service: {e}")))?;
        let from = self
            .parse_place(from)
            .map_err(|e| bad(format!("from: {e}")))?;
        let to = self.parse_place(to).map_err(|e| bad(format!("to: {e}")))?;
        if let Some(v) = vlan {
            if !(1..=4094).contains(&v) {
                return Err(bad(format!("VLAN {v} is outside 1..=4094")));
            }
            if matches!(from, Place::Segment(_)) {
                return Err(bad("vlan applies only when from is an address (a segment name already places the packet)".into()));
            }
        }
        if let Some(z) = zone {
            crate::load::check_name(z).map_err(|e| bad(format!("zone {e}")))?;
            if matches!(from, Place::Segment(_)) {
                return Err(bad("zone applies only when from is an address (a segment name already places the packet)".into()));
            }
        }
        Ok(self.evaluate(&from, &to, vlan, zone, probe))
    }

    fn parse_place(&self, s: &str) -> Result<Place, String> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Place::Ip(ip));
        }
        if self.seg_index.contains_key(s) {
            return Ok(Place::Segment(s.to_string()));
        }
        Err(format!(
            "\"{s}\" is neither an address nor a segment of this policy"
        ))
    }

    fn place_index(&self, p: &Place) -> SegIdx {
        match p {
            Place::Segment(n) => self.seg_index.get(n).copied().unwrap_or(0),
            Place::Ip(ip) => reference::place_dst(&self.ruleset, *ip),
        }
    }

    /// Judge a connection between already-parsed places.
    pub(crate) fn evaluate(
        &self,
        from: &Place,
        to: &Place,
        vlan: Option<u16>,
        zone: Option<&str>,
        probe: Probe,
    ) -> CheckOutcome {
        let dst = self.place_index(to);
        let src = match from {
            Place::Segment(_) => Ok(self.place_index(from)),
            Place::Ip(ip) => reference::place_src(&self.ruleset, vlan, *ip, zone.map(Some)),
        };
        match src {
            Err(PlaceError::Spoofed) => {
                // Where the frame claims to come from: the VLAN's segment,
                // else (a zone mismatch) the address's.
                let by_vlan = vlan
                    .and_then(|v| {
                        self.ruleset
                            .segments
                            .iter()
                            .position(|s| s.vlans.contains(&v))
                    })
                    .and_then(|i| SegIdx::try_from(i).ok())
                    .or_else(|| match from {
                        Place::Ip(ip) => reference::place_src(&self.ruleset, vlan, *ip, None).ok(),
                        Place::Segment(_) => None,
                    })
                    .unwrap_or(0);
                CheckOutcome {
                    verdict: Action::Deny,
                    rule: "spoofed".into(),
                    src_segment: self.segment_name(by_vlan).to_string(),
                    dst_segment: self.segment_name(dst).to_string(),
                    monitor: false,
                }
            }
            Ok(src) => {
                let d = reference::decide(
                    &self.ruleset,
                    &FlowQuery {
                        src,
                        dst,
                        proto: probe.proto,
                        port: probe.port,
                    },
                );
                CheckOutcome {
                    verdict: d.action,
                    rule: self.rule_name(d.rule).to_string(),
                    src_segment: self.segment_name(src).to_string(),
                    dst_segment: self.segment_name(dst).to_string(),
                    monitor: d.monitor,
                }
            }
        }
    }

    /// Run every test of the policy, in order.
    ///
    /// A test's `expect` is compared with the rule verdict, monitor mode
    /// aside: a test written for staged enforcement keeps its meaning when
    /// the segment later switches from `monitor` to `enforce`. The outcome
    /// still reports `monitor` so the reader knows the dataplane forwards it.
    pub fn run_tests(&self) -> Vec<TestOutcome> {
        self.doc
            .tests
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let out = self.evaluate(&t.from.v, &t.to.v, t.vlan, t.zone.as_deref(), t.service);
                let got = out.rule_verdict();
                let rule_ok = t.rule.as_ref().is_none_or(|r| r.v == out.rule);
                let mut flow = format!("{} -> {} {}", t.from.v, t.to.v, t.service);
                if let Some(v) = t.vlan {
                    flow.push_str(&format!(" vlan {v}"));
                }
                if let Some(z) = &t.zone {
                    flow.push_str(&format!(" zone {z}"));
                }
                TestOutcome {
                    name: t.name.clone().unwrap_or_else(|| format!("#{}", i + 1)),
                    line: t.at.0.line,
                    column: t.at.0.col,
                    passed: got == t.expect && rule_ok,
                    expected: t.expect,
                    expected_rule: t.rule.as_ref().map(|r| r.v.clone()),
                    got,
                    got_rule: out.rule,
                    monitor: out.monitor,
                    flow,
                }
            })
            .collect()
    }
}

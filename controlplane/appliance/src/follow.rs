//! Cluster mode: what the workers enforce follows the replicated state.
//!
//! Each change of the current revision is loaded and compiled on a thread of
//! its own (never on the control loop, which answers signals); a change of
//! the run-time endpoints alone re-places segments with the same compiled
//! rule tables ([`CompiledPolicy::with_endpoints`]). Before the first
//! revision the member enforces deny-all (an empty policy: every connection
//! denied; ARP and neighbour discovery pass). A revision that cannot be
//! compiled here (it was validated before it was committed, so this means a
//! local limit) is logged and the last enforced policy stays: never fail
//! open.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use bulkhead_classify::{CompiledPolicy, EndpointDef, Ruleset};
use bulkhead_cluster::State;
use tracing::warn;

/// The policy every member enforces before the cluster's first revision.
pub const DENY_ALL: &str = "version: 1\n";

/// What the workers should enforce: a revision (0: deny-all) and the
/// run-time endpoints placed with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub revision: u64,
    pub endpoints: Arc<BTreeMap<String, String>>,
}

impl Target {
    /// The target a replicated state asks for.
    pub fn of(state: &State) -> Target {
        Target {
            revision: state.current_revision().map_or(0, |r| r.number),
            endpoints: Arc::new(state.endpoints.clone()),
        }
    }
}

/// One compiled revision, kept to re-place endpoints without recompiling.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub target: Target,
    pub policy: CompiledPolicy,
    /// The revision's resolved policy (for its own endpoints and segment names).
    ruleset: Arc<Ruleset>,
}

/// Compile what `target` asks for: from scratch when the revision changed
/// (`document` is its text), or by re-placing endpoints on `base` when only
/// the endpoints did. Errors name the revision and the problem.
pub fn compile(
    target: Target,
    document: Option<&str>,
    base: Option<&Compiled>,
) -> Result<Compiled, String> {
    // The rule tables: compiled now, or those of the same revision.
    let (tables, ruleset) = match base.filter(|b| b.target.revision == target.revision) {
        Some(b) => (Tables::Reused(&b.policy), b.ruleset.clone()),
        None => {
            let text = document.unwrap_or(DENY_ALL);
            let origin = format!("revision {}", target.revision);
            let loaded = bulkhead_policy::load(text, &origin).map_err(|errs| {
                errs.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            })?;
            let rs = Arc::new(loaded.policy.ruleset().clone());
            let compiled = CompiledPolicy::compile(&rs).map_err(|e| format!("{origin}: {e}"))?;
            (Tables::Fresh(compiled), rs)
        }
    };
    let policy = match tables {
        Tables::Fresh(p) if target.endpoints.is_empty() => Ok(p),
        Tables::Fresh(p) => p.with_endpoints(&merged_endpoints(&ruleset, &target.endpoints)),
        Tables::Reused(p) => p.with_endpoints(&merged_endpoints(&ruleset, &target.endpoints)),
    }
    .map_err(|e| format!("revision {}: endpoints: {e}", target.revision))?;
    Ok(Compiled {
        target,
        policy,
        ruleset,
    })
}

/// Where a compile's rule tables come from.
enum Tables<'a> {
    Fresh(CompiledPolicy),
    Reused(&'a CompiledPolicy),
}

/// The document's endpoints with the run-time ones over them (a run-time
/// endpoint for the same address wins). Run-time endpoints naming a segment
/// this revision lacks, or `world`, are skipped with a warning: they were
/// valid against the revision current when they were added.
fn merged_endpoints(rs: &Ruleset, runtime: &BTreeMap<String, String>) -> Vec<EndpointDef> {
    let mut out: BTreeMap<IpAddr, EndpointDef> = rs.endpoints.iter().map(|e| (e.ip, *e)).collect();
    for (addr, segment) in runtime {
        // The API stores canonical address literals only.
        let Ok(ip) = addr.parse::<IpAddr>() else {
            warn!(address = %addr, "run-time endpoint: not an address; skipped");
            continue;
        };
        match rs
            .segments
            .iter()
            .position(|s| &s.name == segment)
            .filter(|&i| i != 0)
        {
            Some(i) => {
                out.insert(
                    ip,
                    EndpointDef {
                        ip,
                        segment: i as bulkhead_classify::SegIdx,
                    },
                );
            }
            None => warn!(
                address = %addr,
                segment = %segment,
                "run-time endpoint: the enforced revision has no such segment; skipped"
            ),
        }
    }
    out.into_values().collect()
}

/// Follows the replicated state: starts a compile when the target changes,
/// hands finished ones back. Owned by the control loop; never blocks it.
#[derive(Debug, Default)]
pub struct Follower {
    /// What is being compiled.
    pending: Option<(Target, JoinHandle<Result<Compiled, String>>)>,
    /// The last compiled (and handed back) target.
    last: Option<Compiled>,
    /// A newer target seen while a compile ran.
    queued: Option<(Target, Option<String>)>,
}

impl Follower {
    /// Look at the current state; start (or queue) a compile when it asks
    /// for something other than what was compiled last.
    pub fn observe(&mut self, state: &State) {
        let wanted_now = self
            .queued
            .as_ref()
            .map(|(t, _)| t)
            .or(self.pending.as_ref().map(|(t, _)| t))
            .or(self.last.as_ref().map(|c| &c.target));
        // Most applied entries (audit, grants) change neither: compare
        // before copying the endpoint map.
        let revision = state.current_revision().map_or(0, |r| r.number);
        if wanted_now.is_some_and(|t| t.revision == revision && *t.endpoints == state.endpoints) {
            return;
        }
        let target = Target::of(state);
        let document = state.current_revision().map(|r| r.document.clone());
        if self.pending.is_some() {
            self.queued = Some((target, document));
        } else {
            self.start(target, document);
        }
    }

    fn start(&mut self, target: Target, document: Option<String>) {
        let base = self.last.clone();
        let t = target.clone();
        let spawned = std::thread::Builder::new()
            .name("bulkhead-compile".into())
            .spawn(move || compile(t, document.as_deref(), base.as_ref()));
        match spawned {
            Ok(h) => self.pending = Some((target, h)),
            Err(e) => warn!(error = %e, "cannot start the compile thread; retrying"),
        }
    }

    /// A finished compile, if any (and the next queued one started).
    pub fn poll(&mut self) -> Option<Result<Compiled, String>> {
        if !self.pending.as_ref().is_some_and(|(_, h)| h.is_finished()) {
            return None;
        }
        let (target, handle) = self.pending.take()?;
        let out = handle
            .join()
            .unwrap_or_else(|_| Err(format!("revision {}: compile panicked", target.revision)));
        if let Ok(c) = &out {
            self.last = Some(c.clone());
        }
        if let Some((t, doc)) = self.queued.take() {
            self.start(t, doc);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "version: 1\nsegments:\n  web: { id: 10, prefixes: [10.1.0.0/16] }\n  db: { id: 20, prefixes: [10.2.0.0/16] }\nendpoints:\n  - { ip: 10.9.0.1, segment: web }\nrules:\n  - { name: w2d, from: [web], to: [db], services: [tcp/5432], action: allow }\n";

    fn target(revision: u64, eps: &[(&str, &str)]) -> Target {
        Target {
            revision,
            endpoints: Arc::new(
                eps.iter()
                    .map(|(a, s)| (a.to_string(), s.to_string()))
                    .collect(),
            ),
        }
    }

    fn seg_of(c: &Compiled, ip: &str) -> String {
        let idx = c.policy.place_dst(ip.parse().unwrap());
        c.policy.segment_name(idx).to_string()
    }

    #[test]
    fn deny_all_before_the_first_revision() {
        let c = compile(target(0, &[]), None, None).unwrap();
        assert_eq!(c.policy.rule_count(), 0);
        assert_eq!(seg_of(&c, "10.1.0.1"), "world");
    }

    #[test]
    fn endpoints_alone_reuse_the_rule_tables() {
        let first = compile(target(3, &[]), Some(DOC), None).unwrap();
        assert_eq!(seg_of(&first, "10.9.0.1"), "web", "the document's endpoint");
        assert_eq!(seg_of(&first, "10.9.0.2"), "world");
        let second = compile(
            target(3, &[("10.9.0.2", "db"), ("10.9.0.1", "db")]),
            None,
            Some(&first),
        )
        .unwrap();
        assert!(second.policy.shares_rules_with(&first.policy));
        assert_eq!(seg_of(&second, "10.9.0.2"), "db");
        assert_eq!(seg_of(&second, "10.9.0.1"), "db", "run-time endpoint wins");
        // A segment this revision lacks, world, or a non-address: skipped.
        let third = compile(
            target(
                3,
                &[("10.9.0.3", "gone"), ("10.9.0.4", "world"), ("x", "web")],
            ),
            None,
            Some(&first),
        )
        .unwrap();
        assert_eq!(seg_of(&third, "10.9.0.3"), "world");
        assert_eq!(seg_of(&third, "10.9.0.4"), "world");
        assert_eq!(
            third.policy.segment_index(bulkhead_classify::SegmentId(10)),
            Some(1)
        );
    }

    #[test]
    fn a_new_revision_compiles_from_its_document() {
        let first = compile(target(1, &[]), Some(DOC), None).unwrap();
        let doc2 = DOC.replace("tcp/5432", "tcp/5433");
        let second = compile(target(2, &[]), Some(&doc2), Some(&first)).unwrap();
        assert!(!second.policy.shares_rules_with(&first.policy));
        let bad = compile(target(4, &[]), Some("version: 1\nsegments: 3\n"), None).unwrap_err();
        assert!(bad.contains("revision 4"), "{bad}");
    }
}

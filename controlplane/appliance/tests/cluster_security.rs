//! Bad input and bad actors against a live three-member cluster: each is
//! refused with the documented exit code and a message naming the problem,
//! leaves an audit entry where it reached the cluster, and changes no
//! revision, endpoint or grant.

mod cluster;

use std::process::Command;

use cluster::{bulkctl_path, policy, text, Lab};
use serde_json::Value;

/// Revision numbers member `i` holds, oldest first.
fn revisions(lab: &Lab, i: usize) -> Vec<u64> {
    let mut r: Vec<u64> = lab
        .json(i, &["policy", "history"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["revision"].as_u64().unwrap())
        .collect();
    r.sort_unstable();
    r
}

fn refused(lab: &Lab, i: usize, identity: &str, args: &[&str], code: i32, needle: &str) {
    let out = lab.ctl_as(i, identity, args);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(code), "{args:?} as {identity}: {t}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(needle),
        "{args:?} as {identity}: expected {needle:?} in: {t}"
    );
}

#[test]
fn bad_input_and_bad_actors_are_refused_audited_and_change_nothing() {
    let lab = Lab::new("security", 3, &["ops-bot", "admin2"]);
    let _m: Vec<_> = (1..=3).map(|i| lab.start(i, 3)).collect();
    lab.wait_status(1, "a leader", |v| {
        v["leader"].as_str().is_some_and(|l| !l.is_empty())
    });
    let good = lab.file("good.yaml", &policy(5432));
    let v = lab.json(1, &["policy", "apply", &good, "--wait=30"]);
    assert_eq!(v["revision"], 1);

    // Invalid documents: exit 2 with the reason, nothing replicated.
    let broken = lab.file(
        "broken.yaml",
        "version: 1\nsegments:\n  web: { id: 10, prefixes: [10.1.0.1/16] }\n",
    );
    refused(
        &lab,
        2,
        "admin",
        &["policy", "apply", &broken],
        2,
        "host bits",
    );
    let failing = lab.file(
        "failing.yaml",
        &policy(5432).replace("expect: allow", "expect: deny"),
    );
    refused(
        &lab,
        3,
        "admin",
        &["policy", "apply", &failing],
        2,
        "failed",
    );
    // A stale --if-revision.
    let next = lab.file("next.yaml", &policy(5433));
    refused(
        &lab,
        2,
        "admin",
        &["policy", "apply", &next, "--if-revision", "7"],
        3,
        "revision changed: now 1, you expected 7",
    );
    // Unknown revision and member.
    refused(&lab, 1, "admin", &["policy", "rollback", "9"], 3, "9");
    refused(
        &lab,
        1,
        "admin",
        &["cluster", "remove-member", "gw-9"],
        3,
        "gw-9",
    );

    // A viewer reads but cannot change.
    let out = lab.ctl(1, &["access", "grant", "ops-bot", "viewer"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = lab.ctl_as(2, "ops-bot", &["policy", "get", "--json"]);
    assert!(out.status.success(), "a viewer reads: {}", text(&out));
    refused(
        &lab,
        2,
        "ops-bot",
        &["policy", "apply", &next],
        3,
        "has role viewer",
    );
    // An identity with no grant at all.
    refused(&lab, 3, "admin2", &["policy", "apply", &next], 3, "admin2");

    // A second admin, revoked through one member, is refused on another.
    let out = lab.ctl(1, &["access", "grant", "admin2", "admin"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = lab.ctl_as(3, "admin2", &["policy", "apply", &next, "--json"]);
    assert!(out.status.success(), "admin2 applies: {}", text(&out));
    let out = lab.ctl(1, &["access", "revoke", "admin2"]);
    assert!(out.status.success(), "{}", text(&out));
    let again = lab.file("again.yaml", &policy(5434));
    refused(&lab, 2, "admin2", &["policy", "apply", &again], 3, "admin2");

    // A client certificate from another CA never gets in.
    let foreign = lab.dir.join("foreign-pki");
    let out = Command::new(bulkctl_path())
        .args(["pki", "init"])
        .arg(&foreign)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = Command::new(bulkctl_path())
        .args([
            "policy",
            "get",
            "--endpoint",
            &lab.addr(1),
            "--identity",
            "admin",
        ])
        .arg("--pki")
        .arg(&foreign)
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(3 | 4)),
        "another CA's client is refused: {}",
        text(&out)
    );

    // Nothing refused changed the replicated state: revisions 1 and 2 only
    // (admin2's apply), on every member.
    for i in 1..=3 {
        assert_eq!(revisions(&lab, i), vec![1, 2], "gw-{i}");
    }
    // The refusals that reached the cluster are in the audit log.
    let audit = lab.json(1, &["audit", "--limit", "1000"]);
    let entries = audit
        .as_array()
        .or_else(|| audit["entries"].as_array())
        .unwrap_or_else(|| panic!("audit entries: {audit}"))
        .clone();
    let refusal_by = |who: &str| {
        entries.iter().any(|e: &Value| {
            e["identity"] == who
                && e["outcome"]
                    .as_str()
                    .is_some_and(|o| o != "ok" && o != "OK")
        })
    };
    assert!(
        refusal_by("ops-bot"),
        "the viewer's refused apply is audited: {audit}"
    );
    assert!(
        refusal_by("admin2"),
        "the revoked admin's refused apply is audited: {audit}"
    );
    assert!(
        refusal_by("admin"),
        "the invalid and stale applies are audited: {audit}"
    );
}

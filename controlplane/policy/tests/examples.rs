//! Every example policy under configs/policies loads, passes its tests and
//! formats canonically.

use std::path::PathBuf;

fn policies_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../configs/policies")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(policies_dir().join(name)).unwrap()
}

fn show(e: &[bulkhead_policy::Diagnostic]) -> String {
    e.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn three_tier_is_the_spec_example_and_passes() {
    let src = read("three-tier.yaml");
    let loaded = bulkhead_policy::validate_full(&src, "three-tier.yaml")
        .unwrap_or_else(|e| panic!("{}", show(&e)));
    let p = &loaded.policy;
    let outcomes = p.run_tests();
    assert_eq!(outcomes.len(), 4);
    assert!(outcomes.iter().all(|t| t.passed));
    let rs = p.ruleset();
    assert_eq!(rs.segments.len(), 6);
    assert_eq!(rs.segments[0].name, "world");
    assert_eq!(rs.rules.len(), 5);
    assert_eq!(rs.endpoints.len(), 1);
    // admin-ssh to group:prod = web, app, db, logs (not admin, not world).
    let prod = p.group_members("prod").unwrap();
    let names: Vec<&str> = prod.iter().map(|&i| p.segment_name(i)).collect();
    assert_eq!(names, ["web", "app", "db", "logs"]);
}

#[test]
fn every_example_policy_is_accepted() {
    let mut count = 0;
    for entry in std::fs::read_dir(policies_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let src = std::fs::read_to_string(&path).unwrap();
        let loaded =
            bulkhead_policy::validate_full(&src, &name).unwrap_or_else(|e| panic!("{}", show(&e)));
        assert!(!loaded.policy.run_tests().is_empty(), "{name} has no tests");
        count += 1;
    }
    assert!(count >= 1);
}

#[test]
fn examples_format_idempotently_and_round_trip() {
    for entry in std::fs::read_dir(policies_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let src = std::fs::read_to_string(&path).unwrap();
        let p = bulkhead_policy::load(&src, "x").unwrap().policy;
        let f1 = bulkhead_policy::format(&p);
        let p2 = bulkhead_policy::load(&f1, "formatted")
            .unwrap_or_else(|e| panic!("{}\n{f1}", show(&e)))
            .policy;
        assert_eq!(p2.ruleset(), p.ruleset(), "{}", path.display());
        assert_eq!(p2.document(), p.document(), "{}", path.display());
        assert_eq!(bulkhead_policy::format(&p2), f1);
    }
}

#[test]
fn three_tier_canonical_form() {
    let p = bulkhead_policy::load(&read("three-tier.yaml"), "t")
        .unwrap()
        .policy;
    let f = bulkhead_policy::format(&p);
    assert!(
        f.contains("  app:\n    id: 20\n    prefixes: [10.0.20.0/24, \"fd00:20::/64\"]\n"),
        "{f}"
    );
    assert!(f.contains("  - {ip: 10.9.0.7, segment: app}\n"), "{f}");
    assert!(f.contains("  senders: {segments: [web, app]}\n"), "{f}");
    assert!(f.contains("  - name: admin-ssh\n    from: [admin]\n    to: [group:prod]\n    services: [ssh]\n    action: allow\n    log: true\n"), "{f}");
    assert!(f.contains("  - {from: 10.0.20.3, to: 10.0.30.7, service: tcp/5432, expect: allow, rule: app-to-db}\n"), "{f}");
}

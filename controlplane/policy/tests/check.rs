//! `Policy::check` and `run_tests`: placement by name, by address, by VLAN,
//! anti-spoofing, monitor mode, endpoints overriding prefixes.

use bulkhead_classify::Action;
use bulkhead_policy::CheckOutcome;

const SRC: &str = r#"
version: 1
segments:
  web: {id: 10, vlans: [10], prefixes: [10.0.10.0/24]}
  app: {id: 20, prefixes: [10.0.20.0/24, "fd00:20::/64"]}
  inner: {id: 21, prefixes: [10.0.20.128/25]}
  db: {id: 30, prefixes: [10.0.30.0/24], mode: monitor}
endpoints:
  - {ip: 10.0.10.99, segment: app, override: true}
rules:
  - {name: web-app, from: [web], to: [app], services: [tcp/8080], action: allow}
  - {name: app-db, from: [app], to: [db], services: [tcp/5432], action: allow}
  - {name: ping, from: [any], to: [web], services: [icmp/8], action: allow}
  - {name: no-inner, from: [web], to: [inner], services: [any], action: deny}
"#;

fn check(from: &str, to: &str, svc: &str, vlan: Option<u16>) -> CheckOutcome {
    let p = bulkhead_policy::load(SRC, "c.yaml").unwrap().policy;
    p.check(from, to, svc, vlan, None)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn o(verdict: Action, rule: &str, src: &str, dst: &str, monitor: bool) -> CheckOutcome {
    CheckOutcome {
        verdict,
        rule: rule.into(),
        src_segment: src.into(),
        dst_segment: dst.into(),
        monitor,
    }
}

#[test]
fn by_name_and_by_address() {
    assert_eq!(
        check("web", "app", "tcp/8080", None),
        o(Action::Allow, "web-app", "web", "app", false)
    );
    assert_eq!(
        check("10.0.10.5", "10.0.20.5", "tcp/8080", None),
        o(Action::Allow, "web-app", "web", "app", false)
    );
    assert_eq!(
        check("web", "app", "tcp/8081", None),
        o(Action::Deny, "default", "web", "app", false)
    );
    assert_eq!(
        check("10.0.10.5", "fd00:20::9", "tcp/8080", None),
        o(Action::Allow, "web-app", "web", "app", false)
    );
}

#[test]
fn longest_prefix_and_endpoint_override() {
    // 10.0.20.200 is in inner (/25), not app (/24).
    assert_eq!(
        check("web", "10.0.20.200", "tcp/8080", None),
        o(Action::Deny, "no-inner", "web", "inner", false)
    );
    // The endpoint places 10.0.10.99 in app although it lies in web's prefix.
    assert_eq!(
        check("10.0.10.99", "db", "tcp/5432", None),
        o(Action::Allow, "app-db", "app", "db", false)
    );
    // Unplaced addresses are world.
    assert_eq!(
        check("192.0.2.1", "10.0.10.1", "icmp/8", None),
        o(Action::Allow, "ping", "world", "web", false)
    );
}

#[test]
fn icmp_is_not_icmpv6() {
    assert_eq!(check("world", "web", "icmpv6/8", None).rule, "default");
    assert_eq!(check("world", "web", "icmp/0", None).rule, "default");
}

#[test]
fn monitor_mode_forwards_would_deny() {
    let c = check("web", "db", "tcp/5432", None);
    assert_eq!(c, o(Action::Allow, "default", "web", "db", true));
    assert_eq!(c.rule_verdict(), Action::Deny);
}

#[test]
fn vlan_placement_and_spoofing() {
    // VLAN 10 places an unplaced source address in web.
    assert_eq!(
        check("192.0.2.1", "app", "tcp/8080", Some(10)),
        o(Action::Allow, "web-app", "web", "app", false)
    );
    // VLAN 10 (web) with a source address of app: spoofed, dropped.
    assert_eq!(
        check("10.0.20.5", "app", "tcp/8080", Some(10)),
        o(Action::Deny, "spoofed", "web", "app", false)
    );
    // A VLAN no segment lists: the address decides.
    assert_eq!(
        check("10.0.20.5", "db", "tcp/5432", Some(77)),
        o(Action::Allow, "app-db", "app", "db", false)
    );
}

#[test]
fn check_input_errors() {
    let p = bulkhead_policy::load(SRC, "c.yaml").unwrap().policy;
    let e = p.check("web", "app", "tcp/1-5", None, None).unwrap_err();
    assert!(e.message.contains("not one connection"), "{e}");
    let e = p.check("web", "nowhere", "tcp/1", None, None).unwrap_err();
    assert!(
        e.message
            .contains("\"nowhere\" is neither an address nor a segment"),
        "{e}"
    );
    let e = p.check("web", "app", "tcp/1", Some(10), None).unwrap_err();
    assert!(
        e.message
            .contains("vlan applies only when from is an address"),
        "{e}"
    );
    let e = p
        .check("10.0.0.1", "app", "tcp/1", Some(4095), None)
        .unwrap_err();
    assert!(e.message.contains("outside 1..=4094"), "{e}");
}

#[test]
fn test_outcomes_report_what_they_got() {
    let src = format!(
        "{SRC}tests:\n  - {{name: ok, from: web, to: app, service: tcp/8080, expect: allow, rule: web-app}}\n  - {{name: wrong-rule, from: web, to: app, service: tcp/8080, expect: allow, rule: default}}\n  - {{from: web, to: db, service: tcp/5432, expect: deny}}\n  - {{from: web, to: db, service: tcp/5432, expect: allow}}\n"
    );
    let p = bulkhead_policy::load(&src, "t.yaml").unwrap().policy;
    let t = p.run_tests();
    assert_eq!(
        t.iter().map(|t| t.passed).collect::<Vec<_>>(),
        [true, false, true, false]
    );
    assert_eq!(t[1].got_rule, "web-app");
    assert_eq!(t[2].name, "#3");
    assert!(t[2].monitor);
    assert_eq!(t[3].got, Action::Deny);
    let e = bulkhead_policy::validate_full(&src, "t.yaml").unwrap_err();
    assert_eq!(e.len(), 2);
    assert!(e[0].to_string().starts_with("t.yaml:"), "{}", e[0]);
    assert!(e[0].to_string().contains("test wrong-rule: failed: web -> app tcp/8080: expected allow by rule default, got allow by rule web-app"), "{}", e[0]);
}

//! Runs the built `bulkctl` on configs/policies and checks exit codes and output.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn policy(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs/policies")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn bulkctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bulkctl"))
        .args(args)
        .output()
        .unwrap()
}

fn bulkctl_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bulkctl"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The child may refuse a huge input before reading all of it.
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn temp(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bulkctl-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

#[test]
fn validate_every_example() {
    for f in [
        "three-tier.yaml",
        "three-tier-v2.yaml",
        "pci-cardholder.yaml",
        "k8s-namespaces.yaml",
    ] {
        let o = bulkctl(&["policy", "validate", &policy(f)]);
        assert_eq!(o.status.code(), Some(0), "{f}: {}", text(&o.stderr));
        assert!(text(&o.stdout).contains("valid"), "{f}");
    }
}

#[test]
fn test_three_tier_passes() {
    let o = bulkctl(&["policy", "test", &policy("three-tier.yaml")]);
    assert_eq!(o.status.code(), Some(0));
    let out = text(&o.stdout);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("pass ")).count(),
        4,
        "{out}"
    );
    assert!(out.contains("4 of 4 tests passed"), "{out}");
}

#[test]
fn check_json_is_one_object() {
    let o = bulkctl(&[
        "policy",
        "check",
        &policy("three-tier.yaml"),
        "--from",
        "10.0.20.3",
        "--to",
        "10.0.30.7",
        "--service",
        "tcp/5432",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"verdict": "allow", "rule": "app-to-db", "src_segment": "app", "dst_segment": "db", "monitor": false})
    );
    // By segment name; denied by default.
    let o = bulkctl(&[
        "policy",
        "check",
        &policy("three-tier.yaml"),
        "--from",
        "web",
        "--to",
        "db",
        "--service",
        "tcp/5432",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["verdict"], "deny");
    assert_eq!(v["rule"], "default");
    // Monitor mode: the rules deny, the dataplane forwards.
    let o = bulkctl(&[
        "policy",
        "check",
        &policy("three-tier.yaml"),
        "--from",
        "db",
        "--to",
        "logs",
        "--service",
        "udp/514",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"verdict": "allow", "rule": "default", "src_segment": "db", "dst_segment": "logs", "monitor": true})
    );
}

#[test]
fn check_human_output_and_usage_errors() {
    let o = bulkctl(&[
        "policy",
        "check",
        &policy("three-tier.yaml"),
        "--from",
        "admin",
        "--to",
        "db",
        "--service",
        "tcp/22",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let out = text(&o.stdout);
    assert!(out.contains("verdict: allow\nrule: admin-ssh\nsrc_segment: admin\ndst_segment: db\nmonitor: false\n"), "{out}");
    for bad in [["--service", "tcp/1-2"], ["--service", "htps"]] {
        let o = bulkctl(&[
            "policy",
            "check",
            &policy("three-tier.yaml"),
            "--from",
            "web",
            "--to",
            "db",
            bad[0],
            bad[1],
        ]);
        assert_eq!(o.status.code(), Some(2));
        assert!(text(&o.stderr).contains("service"), "{}", text(&o.stderr));
    }
    let o = bulkctl(&[
        "policy",
        "check",
        &policy("three-tier.yaml"),
        "--from",
        "nowhere",
        "--to",
        "db",
        "--service",
        "tcp/1",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("\"nowhere\" is neither an address nor a segment"));
    let o = bulkctl(&[
        "policy",
        "check",
        &policy("three-tier.yaml"),
        "--to",
        "db",
        "--service",
        "tcp/1",
    ]);
    assert_eq!(o.status.code(), Some(2), "missing --from is a usage error");
}

#[test]
fn invalid_document_lists_every_error() {
    let p = temp(
        "bad.yaml",
        "version: 1\nsegments:\n  a: {id: 1, prefixes: [10.0.0.1/24]}\n  b: {id: 1}\nrules:\n  - {name: r, from: [a], to: [c], services: [htps], action: allow}\n",
    );
    let o = bulkctl(&["policy", "validate", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("bad.yaml:3:25: segment \"a\": prefix 10.0.0.1/24 has host bits set"),
        "{err}"
    );
    assert!(
        err.contains("bad.yaml:4:11: segment \"b\": duplicate id 1"),
        "{err}"
    );
    assert!(
        err.contains("bad.yaml:6:31: rule \"r\": unknown segment \"c\""),
        "{err}"
    );
    assert!(
        err.contains("bad.yaml:6:46: rule \"r\": unknown service \"htps\""),
        "{err}"
    );
    for cmd in ["test", "lint", "fmt"] {
        assert_eq!(
            bulkctl(&["policy", cmd, p.to_str().unwrap()]).status.code(),
            Some(2),
            "{cmd}"
        );
    }
}

#[test]
fn failing_test_is_exit_1_for_test_and_2_for_validate() {
    let src = std::fs::read_to_string(policy("three-tier.yaml"))
        .unwrap()
        .replace(
            "service: tcp/22,   expect: allow",
            "service: tcp/22,   expect: deny",
        );
    let p = temp("failing.yaml", &src);
    let o = bulkctl(&["policy", "test", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o.stdout);
    assert!(out.contains("FAIL test #4"), "{out}");
    assert!(
        out.contains("expected deny, got allow by rule admin-ssh"),
        "{out}"
    );
    let o = bulkctl(&["policy", "validate", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("test #4: failed"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn lint_strict() {
    let o = bulkctl(&["policy", "lint", "--strict", &policy("pci-cardholder.yaml")]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    let o = bulkctl(&["policy", "lint", "--strict", &policy("three-tier-v2.yaml")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stdout).contains("group \"prod\": is not used by any rule"));
    let o = bulkctl(&["policy", "lint", &policy("three-tier-v2.yaml")]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn diff_of_three_tier_revisions() {
    let o = bulkctl(&[
        "policy",
        "diff",
        &policy("three-tier.yaml"),
        &policy("three-tier-v2.yaml"),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let out = text(&o.stdout);
    assert!(
        out.contains("admin -> db tcp/22: allow (admin-ssh) => deny (default)"),
        "{out}"
    );
    assert!(
        out.contains("app -> cache tcp/6379: deny (default) => allow (app-to-cache)"),
        "{out}"
    );
    assert!(out.contains("+ rule \"app-to-cache\""), "{out}");
    let o = bulkctl(&[
        "policy",
        "diff",
        "--json",
        &policy("three-tier.yaml"),
        &policy("three-tier-v2.yaml"),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let changes = v["verdict_changes"].as_array().unwrap();
    assert!(changes.iter().any(|c| c["src"] == "web"
        && c["dst"] == "app"
        && c["service"] == "tcp/8443"
        && c["new"]["verdict"] == "allow"));
    let o = bulkctl(&[
        "policy",
        "diff",
        &policy("three-tier.yaml"),
        &policy("three-tier.yaml"),
    ]);
    assert_eq!(text(&o.stdout), "no differences\n");
}

#[test]
fn fmt_check_write_and_stdin() {
    let src = std::fs::read_to_string(policy("three-tier.yaml")).unwrap();
    let o = bulkctl_stdin(&["policy", "fmt", "-"], &src);
    assert_eq!(o.status.code(), Some(0));
    let canonical = text(&o.stdout);
    let p = temp("fmt.yaml", &src);
    let ps = p.to_str().unwrap();
    assert_eq!(
        bulkctl(&["policy", "fmt", "--check", ps]).status.code(),
        Some(1)
    );
    assert_eq!(
        bulkctl(&["policy", "fmt", "--write", ps]).status.code(),
        Some(0)
    );
    assert_eq!(std::fs::read_to_string(&p).unwrap(), canonical);
    assert_eq!(
        bulkctl(&["policy", "fmt", "--check", ps]).status.code(),
        Some(0)
    );
    let o = bulkctl_stdin(&["policy", "validate", "-"], &canonical);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
}

#[test]
fn offline_commands_ignore_the_endpoint_and_help_has_examples() {
    // A FILE keeps `policy validate` and `policy check` offline, even with an
    // endpoint that nothing listens on.
    let o = bulkctl(&[
        "--endpoint",
        "127.0.0.1:1",
        "policy",
        "validate",
        &policy("three-tier.yaml"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let o = bulkctl(&[
        "policy",
        "check",
        &policy("three-tier.yaml"),
        "--from",
        "web",
        "--to",
        "app",
        "--service",
        "tcp/8080",
        "--endpoint",
        "127.0.0.1:1",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let o = bulkctl(&["--server", "https://gw-1:7443", "policy", "validate", "x"]);
    assert_eq!(o.status.code(), Some(2));
    let o = bulkctl(&["--help"]);
    assert!(text(&o.stdout).contains("bulkctl cluster status"));
    let o = bulkctl(&["policy", "check", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o.stdout).contains("Examples:"));
    let o = bulkctl(&["policy", "frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn missing_file_and_huge_stdin() {
    let o = bulkctl(&["policy", "validate", "/nonexistent/policy.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("cannot open"));
    let big = "#".repeat(bulkhead_limit() + 10);
    let o = bulkctl_stdin(&["policy", "validate", "-"], &big);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("larger than the limit"),
        "{}",
        text(&o.stderr)
    );
}

fn bulkhead_limit() -> usize {
    16 * 1024 * 1024
}

#[test]
fn check_with_an_ingress_zone() {
    let zoned = policy("zoned-campus.yaml");
    let check = |zone: &str| {
        bulkctl(&[
            "policy",
            "check",
            &zoned,
            "--from",
            "10.20.0.99",
            "--zone",
            zone,
            "--to",
            "10.30.0.5",
            "--service",
            "tcp/873",
            "--json",
        ])
    };
    let o = check("office");
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["verdict"].as_str(), v["rule"].as_str()),
        (Some("deny"), Some("spoofed"))
    );
    let v: serde_json::Value = serde_json::from_slice(&check("servers").stdout).unwrap();
    assert_eq!(v["rule"], "servers-to-backups");
    // A zone only qualifies an address source; a bad name is refused.
    let o = bulkctl(&[
        "policy",
        "check",
        &zoned,
        "--from",
        "office",
        "--zone",
        "office",
        "--to",
        "servers",
        "--service",
        "tcp/443",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("zone applies only"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(check("no such zone").status.code(), Some(2));
}

#[test]
fn lint_notes_zones_no_given_appliance_binds() {
    let dir = std::env::temp_dir().join(format!("bulkctl-zones-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("gw.toml");
    std::fs::write(
        &cfg,
        "[policy]\nfile = \"p.yaml\"\n[dataplane]\nwire = [{ a = \"x\", b = \"y\", zones = [\"office\", \"servers\"] }]\n",
    )
    .unwrap();
    let policy = PathBuf::from(policy("zoned-campus.yaml"));
    let out = Command::new(env!("CARGO_BIN_EXE_bulkctl"))
        .args(["policy", "lint"])
        .arg(&policy)
        .arg("--appliance")
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("zone \"vpn\" is bound by none"),
        "vpn is unbound: {text}"
    );
    assert!(!text.contains("zone \"office\" is bound"), "{text}");
    assert!(!text.contains("zone \"servers\" is bound"), "{text}");
    // Without --appliance there is nothing to compare with: no note.
    let out = Command::new(env!("CARGO_BIN_EXE_bulkctl"))
        .args(["policy", "lint"])
        .arg(&policy)
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("bound by none"));
    // A file that is not an appliance configuration is refused by name.
    let out = Command::new(env!("CARGO_BIN_EXE_bulkctl"))
        .args(["policy", "lint"])
        .arg(&policy)
        .arg("--appliance")
        .arg(&policy)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("zoned-campus.yaml"));
    std::fs::remove_dir_all(&dir).unwrap();
}

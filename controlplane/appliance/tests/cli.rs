//! bulkheadd refuses bad input before touching DPDK: clear message, exit 2.

use std::path::Path;
use std::process::{Command, Output};

fn bulkheadd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bulkheadd"))
        .args(args)
        .output()
        .expect("runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("bulkheadd-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn no_arguments_is_a_usage_error() {
    let o = bulkheadd(&[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--policy FILE --wire A B") && stderr(&o).contains("cluster mode"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn help_documents_signals() {
    let o = bulkheadd(&["--help"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    for word in [
        "--config",
        "--policy",
        "--wire",
        "--workers",
        "SIGHUP",
        "SIGTERM",
    ] {
        assert!(out.contains(word), "{word} missing from --help:\n{out}");
    }
}

#[test]
fn unknown_config_key_is_refused_by_name() {
    let cfg = temp(
        "typo.toml",
        "[policy]\nfile = \"p.yaml\"\n[dataplane]\nwire = [{ a = \"net_null0\", b = \"net_null1\" }]\nworkrs = [1]\n",
    );
    let o = bulkheadd(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("typo.toml") && e.contains("workrs"), "{e}");
}

#[test]
fn invalid_policy_is_refused_with_every_error() {
    let policy = temp(
        "bad.yaml",
        "version: 1\nsegments:\n  web: {id: 10, prefixes: [10.0.0.1/24]}\nrules:\n  - {name: r, from: [web], to: [nope], services: [tcp/80], action: allow}\n",
    );
    let o = bulkheadd(&[
        "--policy",
        policy.to_str().unwrap(),
        "--wire",
        "net_null0",
        "net_null1",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("host bits"), "{e}");
    assert!(e.contains("unknown segment \"nope\""), "{e}");
    assert!(
        e.contains("bad.yaml:3:"),
        "errors carry line and column: {e}"
    );
}

#[test]
fn a_policy_whose_tests_fail_is_refused() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/policies/three-tier.yaml"),
    )
    .unwrap()
    .replace(
        "service: tcp/5432, expect: deny",
        "service: tcp/5432, expect: allow",
    );
    let policy = temp("failing.yaml", &text);
    let o = bulkheadd(&[
        "--policy",
        policy.to_str().unwrap(),
        "--wire",
        "net_null0",
        "net_null1",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("test"), "{}", stderr(&o));
}

#[test]
fn bad_flag_values_are_refused() {
    let policy =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/policies/three-tier.yaml");
    let p = policy.to_str().unwrap();
    for (args, needle) in [
        (vec!["--idle", "sometimes"], "--idle"),
        (vec!["--conntrack-capacity", "3"], "conntrack.capacity"),
        (vec!["--workers", "0,0"], "listed twice"),
    ] {
        let mut all = vec!["--policy", p, "--wire", "net_null0", "net_null1"];
        all.extend(args);
        let o = bulkheadd(&all);
        assert_eq!(o.status.code(), Some(2), "{all:?}");
        assert!(stderr(&o).contains(needle), "{all:?}: {}", stderr(&o));
    }
}

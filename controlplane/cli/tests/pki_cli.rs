//! Runs the built `bulkctl pki` and checks the files it writes and its exit codes.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn bulkctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bulkctl"))
        .args(args)
        .output()
        .expect("run bulkctl")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

#[test]
fn init_then_issue_writes_the_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("pki");
    let d = dir.to_str().expect("utf-8 path");

    let o = bulkctl(&["pki", "init", d]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for f in ["ca.crt", "ca.key", "admin.crt", "admin.key"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    assert_eq!(mode(&dir.join("ca.key")), 0o600);
    assert!(String::from_utf8_lossy(&o.stdout).contains("ca.crt"));

    let o = bulkctl(&[
        "pki",
        "issue",
        d,
        "gw-1",
        "--host",
        "127.0.0.1",
        "--host",
        "gw-1.lab",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(dir.join("gw-1.crt").is_file());
    assert_eq!(mode(&dir.join("gw-1.key")), 0o600);
    let pem = std::fs::read_to_string(dir.join("gw-1.crt")).expect("read");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
}

#[test]
fn refusals_exit_2_naming_the_problem() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().to_str().expect("utf-8 path");

    let o = bulkctl(&["pki", "issue", d, "gw-1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no CA in"), "{}", stderr(&o));

    assert_eq!(bulkctl(&["pki", "init", d]).status.code(), Some(0));
    let o = bulkctl(&["pki", "init", d]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("already holds a CA"), "{}", stderr(&o));

    let o = bulkctl(&["pki", "issue", d, "../evil"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("invalid name \"../evil\""),
        "{}",
        stderr(&o)
    );
    assert!(!tmp.path().join("../evil.crt").exists());

    let o = bulkctl(&["pki", "issue", d, "gw-2", "--host", "bad host"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("invalid host \"bad host\""),
        "{}",
        stderr(&o)
    );

    assert_eq!(bulkctl(&["pki", "issue", d, "gw-3"]).status.code(), Some(0));
    let o = bulkctl(&["pki", "issue", d, "gw-3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("refusing to overwrite"),
        "{}",
        stderr(&o)
    );

    let o = bulkctl(&["pki", "issue", d]);
    assert_eq!(o.status.code(), Some(2), "usage error: NAME missing");
}

//! The malformed-document corpus: every file under tests/malformed/ is
//! refused with the expected message at the expected line:column, and a few
//! generated hostile documents (100 MB, alias bomb, deep nesting) are refused
//! without a panic.
//!
//! File header: `# expect: LINE:COL MESSAGE` (or `# expect: * MESSAGE` when
//! the position is the parser's), optionally preceded by `# mode: full` to
//! use `validate_full` (tests run) instead of `load`.

use std::path::PathBuf;

fn corpus() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/malformed");
    let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("yaml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn every_malformed_document_is_refused_precisely() {
    let files = corpus();
    assert!(files.len() >= 30, "corpus has {} files", files.len());
    let mut failures = Vec::new();
    for (name, src) in files {
        if let Err(f) = check_one(&name, &src) {
            failures.push(f);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn check_one(name: &str, src: &str) -> Result<(), String> {
    let full = src.lines().next() == Some("# mode: full");
    let expect = src
        .lines()
        .find_map(|l| l.strip_prefix("# expect: "))
        .ok_or(format!("{name}: no `# expect:` header"))?;
    let (pos, msg) = expect
        .split_once(' ')
        .ok_or(format!("{name}: bad header"))?;
    let result = if full {
        bulkhead_policy::validate_full(src, name)
    } else {
        bulkhead_policy::load(src, name)
    };
    let errors = match result {
        Ok(_) => return Err(format!("{name}: accepted, expected: {msg}")),
        Err(e) => e,
    };
    if !errors.iter().all(|d| d.is_error() && d.origin == name) {
        return Err(format!("{name}: non-error diagnostic or wrong origin"));
    }
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let Some(hit) = errors.iter().find(|d| d.to_string().contains(msg)) else {
        return Err(format!(
            "{name}: no error contains {msg:?}; got: {}",
            shown.join(" | ")
        ));
    };
    if pos != "*" {
        let want = format!("{name}:{pos}: ");
        if !hit.to_string().starts_with(&want) {
            return Err(format!("{name}: expected at {pos}, got {hit}"));
        }
    }
    Ok(())
}

#[test]
fn every_error_is_reported_at_once() {
    let src = "version: 1\nsegments:\n  a: {id: 1, vlans: [5000], prefixes: [10.0.0.1/8]}\n  b: {id: 1, colour: red}\nrules:\n  - {name: r, from: [x], to: [group:y], services: [tcp/99999, htps], action: maybe}\n";
    let e = bulkhead_policy::load(src, "many.yaml").unwrap_err();
    let text: Vec<String> = e.iter().map(ToString::to_string).collect();
    for needle in [
        "VLAN 5000 is outside 1..=4094",
        "prefix 10.0.0.1/8 has host bits set",
        "duplicate id 1",
        "unknown key \"colour\"",
        "unknown segment \"x\"",
        "unknown group \"y\"",
        "port 99999 is out of range",
        "unknown service \"htps\"",
        "action must be allow or deny",
    ] {
        assert!(
            text.iter().any(|t| t.contains(needle)),
            "missing {needle:?} in {text:#?}"
        );
    }
    // Sorted by position.
    let lines: Vec<u32> = e.iter().map(|d| d.line).collect();
    let mut sorted = lines.clone();
    sorted.sort_unstable();
    assert_eq!(lines, sorted);
}

#[test]
fn hundred_megabyte_document_is_refused_before_parsing() {
    let mut doc = String::with_capacity(100 * 1024 * 1024 + 64);
    doc.push_str("version: 1\n");
    while doc.len() < 100 * 1024 * 1024 {
        doc.push_str("# padding padding padding padding padding padding padding padding padding\n");
    }
    let e = bulkhead_policy::load(&doc, "huge.yaml").unwrap_err();
    assert_eq!(e.len(), 1);
    assert!(
        e[0].message
            .contains("more than the limit of 16777216 bytes"),
        "{}",
        e[0]
    );
}

#[test]
fn generated_alias_bomb_and_nesting_are_refused() {
    // Ten levels of ten: 10^10 nodes if expanded.
    let mut s = String::from("version: 1\nl0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let prev = format!("*l{}", i - 1);
        s.push_str(&format!("l{i}: &l{i} [{}]\n", vec![prev; 10].join(", ")));
    }
    let e = bulkhead_policy::load(&s, "bomb.yaml").unwrap_err();
    assert!(e[0].message.contains("alias bomb"), "{}", e[0]);

    for depth in [33usize, 1000, 100_000] {
        let s = format!(
            "version: 1\nx: {}{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let e = bulkhead_policy::load(&s, "deep.yaml").unwrap_err();
        assert!(
            e[0].message.contains("nesting") || e[0].message.contains("recursion"),
            "{depth}: {}",
            e[0]
        );
    }
    // Block-style nesting too.
    let mut s = String::from("version: 1\nx:\n");
    for i in 0..200 {
        s.push_str(&" ".repeat(2 * (i + 1)));
        s.push_str("k:\n");
    }
    let e = bulkhead_policy::load(&s, "deep.yaml").unwrap_err();
    assert!(e[0].message.contains("nesting deeper than 32"), "{}", e[0]);
}

//! `bulkhead-policy`: the Bulkhead policy language (spec/policy.md, version 1).
//!
//! Owns loading (YAML or JSON, with line:column for every object), every
//! load-time check, policy tests, `check` of one flow, lint, semantic diff,
//! canonical formatting, and a synthetic policy generator for benchmarks.
//! It produces [`bulkhead_classify::Ruleset`]; every verdict it reports comes
//! from `bulkhead_classify::reference`, the single implementation of the
//! semantics, so offline tools and appliances agree.
//!
//! # Entry points
//! - [`load`]: parse and check structure; every error at once, as
//!   [`Diagnostic`]s (`file:line:col: object: message`). Tests do not run.
//! - [`validate_full`]: [`load`] plus the policy's tests; a failing test is an
//!   error. This is what "policy accepted" means (the appliance uses it).
//! - [`Policy::check`], [`Policy::run_tests`], [`lint()`], [`diff()`], [`format()`],
//!   [`synthetic::generate`].
//!
//! # Limits ([`limits`])
//! A document is refused with an error (never a panic) when it exceeds:
//! [`limits::MAX_DOCUMENT_BYTES`] (16 MiB, checked before parsing),
//! [`limits::MAX_DEPTH`] (32 levels of nesting), [`limits::MAX_NODES`]
//! (4,000,000 YAML nodes, alias expansion included: alias bombs are
//! refused), [`limits::MAX_SEGMENTS`] (65,536), [`limits::MAX_RULES`]
//! (200,000), [`limits::MAX_PREFIXES`] (1,000,000 over all segments),
//! [`limits::MAX_ENDPOINTS`] (1,000,000), [`limits::MAX_SERVICES`] (65,536),
//! [`limits::MAX_GROUPS`] (65,536), [`limits::MAX_TESTS`] (100,000), and
//! [`limits::MAX_NAME_LEN`] (128 bytes per name).
//!
//! # Readings of the spec fixed here
//! - A service spec without a port (`tcp`) means every port; `icmp/8` never
//!   matches ICMPv6 (`icmpv6/128` is its own protocol).
//! - Tests and `check`: a segment name places the packet in that segment
//!   directly (no address is invented); an address is placed as the dataplane
//!   places it. `vlan` is only accepted with an address source.
//! - A test's `expect` is the rule verdict, monitor mode aside (see
//!   [`Policy::run_tests`]); `check` reports what the dataplane does
//!   (monitored would-deny = allow, `monitor: true`).
//! - A frame dropped by anti-spoofing reports rule `spoofed`, verdict deny;
//!   `default` and `spoofed` are reserved rule names.
//! - `world` takes only `id: 0` and `description`; it may be listed in a
//!   group's `segments` (then the group holds unplaced addresses) but no label
//!   `match` ever selects it; endpoints cannot be placed in it.
//! - An extra top-level key `anti_spoofing: true|false` (default true)
//!   switches anti-spoofing.
//! - Comments are not preserved by [`format()`].
//!
//! Invariant: a [`Policy`] exists only for a document that passed every
//! load-time check, and its [`Ruleset`](bulkhead_classify::Ruleset) satisfies
//! the invariants listed in `bulkhead_classify::model`.
#![forbid(unsafe_code)]

pub mod ast;
mod diag;
pub mod diff;
pub mod format;
pub mod limits;
pub mod lint;
mod load;
mod policy;
pub mod spec;
pub mod synthetic;
pub mod yaml;

pub use diag::{Diagnostic, Severity};
pub use diff::{diff, PolicyDiff};
pub use format::format;
pub use lint::lint;
pub use load::check_name;
pub use policy::{CheckOutcome, Loaded, Policy, TestOutcome};

/// Load a policy document (YAML or JSON) and run every structural check.
/// `origin` names the document in diagnostics (a file name, or `-`).
/// Tests are not run: see [`validate_full`].
pub fn load(source: &str, origin: &str) -> Result<Loaded, Vec<Diagnostic>> {
    let root = yaml::parse(source).map_err(|e| {
        vec![Diagnostic {
            severity: Severity::Error,
            origin: origin.to_string(),
            object: None,
            line: e.pos.line,
            column: e.pos.col,
            message: e.message,
        }]
    })?;
    let r = load::load_tree(&root, origin)?;
    let warnings = r.warnings.clone();
    Ok(Loaded {
        policy: Policy::from_resolved(r, origin),
        warnings,
    })
}

/// [`load`] plus the policy's tests: every failing test becomes an error.
/// This is what "policy accepted" means.
pub fn validate_full(source: &str, origin: &str) -> Result<Loaded, Vec<Diagnostic>> {
    let loaded = load(source, origin)?;
    let errors: Vec<Diagnostic> = loaded
        .policy
        .run_tests()
        .into_iter()
        .filter(|t| !t.passed)
        .map(|t| Diagnostic {
            severity: Severity::Error,
            origin: origin.to_string(),
            object: Some(format!("test {}", t.name)),
            line: t.line,
            column: t.column,
            message: format!(
                "failed: {}: expected {}{}, got {} by rule {}",
                t.flow,
                policy::verdict_word(t.expected),
                t.expected_rule
                    .as_ref()
                    .map(|r| format!(" by rule {r}"))
                    .unwrap_or_default(),
                policy::verdict_word(t.got),
                t.got_rule
            ),
        })
        .collect();
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(errors)
    }
}

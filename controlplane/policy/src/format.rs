//! Canonical YAML for a policy.
//!
//! Fixed section order (`version`, `default`, `anti_spoofing`,
//! `description`, `segments`, `endpoints`, `groups`, `services`, `rules`,
//! `tests`), fixed key order inside each object, two-space indentation, flow
//! style (`[a, b]`, `{k: v}`) for lists and small mappings that fit in 80
//! columns, block style otherwise. Objects keep their document order (rule
//! order is meaningful; segment order fixes segment indices). Service specs
//! are written canonically (`tcp/0-65535` becomes `tcp`). Empty sections and
//! default values (`mode: enforce`, `log: false`, `override: false`,
//! `anti_spoofing: true`) are left out.
//!
//! Comments are not preserved: YAML parsers drop them, and this formatter
//! works from the loaded policy.
//!
//! Guarantees (tested): `format(load(format(p)))` is `format(p)`, and
//! `load(format(p)).ruleset()` equals `p.ruleset()`.

use std::fmt::Write as _;

use bulkhead_classify::{Action, Mode};

use crate::ast::{GroupBody, Place};
use crate::policy::verdict_word;
use crate::spec::spec_to_string;
use crate::yaml::is_null;
use crate::Policy;

const WIDTH: usize = 80;

/// Does `s` need quotes to read back as the same string?
fn needs_quotes(s: &str) -> bool {
    if s.is_empty() || is_null(s) {
        return true;
    }
    let lower = s.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "true"
            | "false"
            | "yes"
            | "no"
            | "on"
            | "off"
            | "y"
            | "n"
            | ".nan"
            | ".inf"
            | "-.inf"
            | "+.inf"
    ) {
        return true;
    }
    // Anything a YAML 1.2 parser could read as a number.
    let b = s.as_bytes();
    let radix = lower.starts_with("0x") || lower.starts_with("0o");
    if s.parse::<f64>().is_ok() || radix {
        return true;
    }
    let first_ok = b
        .first()
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'/');
    let all_ok = s
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"_./:-".contains(&c));
    !(first_ok && all_ok) || s.ends_with(':') || s.contains("::") || s.contains(": ")
}

/// A scalar as YAML: plain when safe, double-quoted with escapes otherwise.
pub fn scalar(s: &str) -> String {
    if !needs_quotes(s) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn flow_list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

/// `key: [a, b]` if it fits, else a block list, at `indent` spaces.
fn list_field(out: &mut String, indent: usize, key: &str, items: &[String]) {
    let pad = " ".repeat(indent);
    let flow = flow_list(items);
    if indent + key.len() + 2 + flow.len() <= WIDTH || items.is_empty() {
        let _ = writeln!(out, "{pad}{key}: {flow}");
    } else {
        let _ = writeln!(out, "{pad}{key}:");
        for i in items {
            let _ = writeln!(out, "{pad}  - {i}");
        }
    }
}

fn flow_map(pairs: &[(String, String)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}: {v}", scalar(k)))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

/// Canonical YAML text of a policy (see the module docs).
pub fn format(policy: &Policy) -> String {
    let d = policy.document();
    let mut out = String::new();
    out.push_str("version: 1\n");
    let _ = writeln!(out, "default: {}", verdict_word(d.default_action));
    if !d.anti_spoofing {
        out.push_str("anti_spoofing: false\n");
    }
    if let Some(desc) = &d.description {
        let _ = writeln!(out, "description: {}", scalar(desc));
    }

    if d.world_declared || !d.segments.is_empty() {
        out.push_str("\nsegments:\n");
        if d.world_declared {
            match &d.world_description {
                Some(desc) => {
                    let _ = writeln!(out, "  world: {{id: 0, description: {}}}", scalar(desc));
                }
                None => out.push_str("  world: {id: 0}\n"),
            }
        }
        for s in &d.segments {
            let _ = writeln!(out, "  {}:", scalar(&s.name));
            let _ = writeln!(out, "    id: {}", s.id);
            if !s.vlans.is_empty() {
                let v: Vec<String> = s.vlans.iter().map(|v| v.v.to_string()).collect();
                list_field(&mut out, 4, "vlans", &v);
            }
            if !s.prefixes.is_empty() {
                let v: Vec<String> = s
                    .prefixes
                    .iter()
                    .map(|p| scalar(&p.v.to_string()))
                    .collect();
                list_field(&mut out, 4, "prefixes", &v);
            }
            if !s.labels.is_empty() {
                let pairs: Vec<(String, String)> = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), scalar(v)))
                    .collect();
                let flow = flow_map(&pairs);
                if 4 + 8 + flow.len() <= WIDTH {
                    let _ = writeln!(out, "    labels: {flow}");
                } else {
                    out.push_str("    labels:\n");
                    for (k, v) in &pairs {
                        let _ = writeln!(out, "      {}: {v}", scalar(k));
                    }
                }
            }
            if s.mode == Mode::Monitor {
                out.push_str("    mode: monitor\n");
            }
            if !s.zones.is_empty() {
                let v: Vec<String> = s.zones.iter().map(|z| scalar(&z.v)).collect();
                list_field(&mut out, 4, "zones", &v);
            }
            if let Some(desc) = &s.description {
                let _ = writeln!(out, "    description: {}", scalar(desc));
            }
        }
    }

    if !d.endpoints.is_empty() {
        out.push_str("\nendpoints:\n");
        for e in &d.endpoints {
            let mut pairs = vec![
                ("ip".to_string(), scalar(&e.ip.to_string())),
                ("segment".to_string(), scalar(&e.segment.v)),
            ];
            if e.override_prefix {
                pairs.push(("override".into(), "true".into()));
            }
            if let Some(desc) = &e.description {
                pairs.push(("description".into(), scalar(desc)));
            }
            let _ = writeln!(out, "  - {}", flow_map(&pairs));
        }
    }

    if !d.groups.is_empty() {
        out.push_str("\ngroups:\n");
        for g in &d.groups {
            let body = match &g.body {
                GroupBody::Match(labels) => {
                    let pairs: Vec<(String, String)> =
                        labels.iter().map(|(k, v)| (k.clone(), scalar(v))).collect();
                    format!("{{match: {}}}", flow_map(&pairs))
                }
                GroupBody::Segments(names) => {
                    let v: Vec<String> = names.iter().map(|n| scalar(&n.v)).collect();
                    format!("{{segments: {}}}", flow_list(&v))
                }
            };
            let _ = writeln!(out, "  {}: {body}", scalar(&g.name));
        }
    }

    if !d.services.is_empty() {
        out.push_str("\nservices:\n");
        for s in &d.services {
            let v: Vec<String> = s.specs.iter().map(|sp| spec_to_string(&sp.v)).collect();
            list_field(&mut out, 2, &scalar(&s.name), &v);
        }
    }

    if d.rules.is_empty() {
        out.push_str("\nrules: []\n");
    } else {
        out.push_str("\nrules:\n");
        for r in &d.rules {
            let _ = writeln!(out, "  - name: {}", scalar(&r.name));
            let from: Vec<String> = r.from.iter().map(|s| scalar(&s.v.to_string())).collect();
            let to: Vec<String> = r.to.iter().map(|s| scalar(&s.v.to_string())).collect();
            let svc: Vec<String> = r
                .services
                .iter()
                .map(|s| scalar(&s.v.to_string()))
                .collect();
            list_field(&mut out, 4, "from", &from);
            list_field(&mut out, 4, "to", &to);
            list_field(&mut out, 4, "services", &svc);
            let _ = writeln!(out, "    action: {}", verdict_word(r.action));
            if r.log {
                out.push_str("    log: true\n");
            }
            if let Some(desc) = &r.description {
                let _ = writeln!(out, "    description: {}", scalar(desc));
            }
        }
    }

    if !d.tests.is_empty() {
        out.push_str("\ntests:\n");
        for t in &d.tests {
            let mut pairs = Vec::new();
            if let Some(n) = &t.name {
                pairs.push(("name".to_string(), scalar(n)));
            }
            let place = |p: &Place| scalar(&p.to_string());
            pairs.push(("from".into(), place(&t.from.v)));
            pairs.push(("to".into(), place(&t.to.v)));
            if let Some(z) = &t.zone {
                pairs.push(("zone".into(), scalar(z)));
            }
            if let Some(v) = t.vlan {
                pairs.push(("vlan".into(), v.to_string()));
            }
            pairs.push(("service".into(), t.service.to_string()));
            pairs.push(("expect".into(), verdict_word(t.expect).to_string()));
            if let Some(r) = &t.rule {
                pairs.push(("rule".into(), scalar(&r.v)));
            }
            let _ = writeln!(out, "  - {}", flow_map(&pairs));
        }
    }
    out
}

/// `allow`/`deny` as written in a policy.
pub fn action_word(a: Action) -> &'static str {
    verdict_word(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        for s in ["web", "10.0.0.0/24", "group:prod", "tcp/443", "a.b-c_d"] {
            assert_eq!(scalar(s), s);
        }
        for s in [
            "true",
            "No",
            "10",
            "1.5",
            "",
            "~",
            "fd00:20::/64",
            "a b",
            "x:",
            "-x",
            "0x1f",
            "a\"b",
        ] {
            assert!(scalar(s).starts_with('"'), "{s}");
        }
        assert_eq!(scalar("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
    }
}

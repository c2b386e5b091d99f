//! From a YAML tree to a [`Document`] and a resolved [`Ruleset`], collecting
//! every error (not only the first). All lookups use hash maps so loading is
//! linear in the size of the document (group expansion aside).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use bulkhead_classify::MAX_ZONES;
use bulkhead_classify::{
    Action, EndpointDef, Mode, RuleDef, Ruleset, SegIdx, SegmentDef, SegmentId, SegmentSet,
    ServiceSpec,
};
use ipnet::IpNet;

use crate::ast::*;
use crate::diag::{Diagnostic, Severity};
use crate::limits::*;
use crate::spec::{parse_probe, parse_spec, SPEC_WORDS};
use crate::yaml::{is_null, Key, Node, NodeKind, Pos};

mod groups;
mod rules;
mod segments;

use groups::{load_groups, load_services};
use rules::{load_rules, load_tests};
use segments::{load_endpoints, load_segments};

const TOP_KEYS: &[&str] = &[
    "version",
    "default",
    "anti_spoofing",
    "description",
    "segments",
    "endpoints",
    "groups",
    "services",
    "rules",
    "tests",
];
const SEGMENT_KEYS: &[&str] = &[
    "id",
    "vlans",
    "prefixes",
    "labels",
    "mode",
    "zones",
    "description",
];
const WORLD_KEYS: &[&str] = &["id", "description"];
const ENDPOINT_KEYS: &[&str] = &["ip", "segment", "override", "description"];
const GROUP_KEYS: &[&str] = &["match", "segments"];
const RULE_KEYS: &[&str] = &[
    "name",
    "from",
    "to",
    "services",
    "action",
    "log",
    "description",
];
const TEST_KEYS: &[&str] = &[
    "name", "from", "to", "service", "expect", "rule", "vlan", "zone",
];

/// Rule names that would be ambiguous in test expectations and outputs.
pub const RESERVED_RULE_NAMES: &[&str] = &["default", "spoofed"];

/// Everything the loader produces besides the document.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub doc: Document,
    pub ruleset: Ruleset,
    pub seg_index: HashMap<String, SegIdx>,
    pub rule_index: HashMap<String, u32>,
    /// Members of each group, by group order (sorted, deduplicated).
    pub group_members: Vec<Vec<SegIdx>>,
    pub warnings: Vec<Diagnostic>,
}

struct Ctx<'a> {
    origin: &'a str,
    diags: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn err(&mut self, object: Option<&str>, pos: Pos, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            severity: Severity::Error,
            origin: self.origin.to_string(),
            object: object.map(str::to_string),
            line: pos.line,
            column: pos.col,
            message: message.into(),
        });
    }

    fn map<'n>(
        &mut self,
        node: &'n Node,
        obj: Option<&str>,
        what: &str,
    ) -> Option<&'n [(Key, Node)]> {
        match &node.kind {
            NodeKind::Map(m) => Some(m),
            _ => {
                self.err(
                    obj,
                    node.pos,
                    format!("{what} must be a mapping, found {}", node.type_name()),
                );
                None
            }
        }
    }

    fn seq<'n>(&mut self, node: &'n Node, obj: Option<&str>, what: &str) -> Option<&'n [Node]> {
        match &node.kind {
            NodeKind::Seq(s) => Some(s),
            _ => {
                self.err(
                    obj,
                    node.pos,
                    format!("{what} must be a list, found {}", node.type_name()),
                );
                None
            }
        }
    }

    /// A string scalar (quoted or plain, not null).
    fn string(&mut self, node: &Node, obj: Option<&str>, what: &str) -> Option<String> {
        match &node.kind {
            NodeKind::Scalar { value, plain } if !(*plain && is_null(value)) => {
                if value.len() > MAX_NAME_LEN.max(1024) || value.chars().any(char::is_control) {
                    self.err(
                        obj,
                        node.pos,
                        format!("{what} is too long or contains control characters"),
                    );
                    return None;
                }
                Some(value.clone())
            }
            _ => {
                self.err(
                    obj,
                    node.pos,
                    format!("{what} must be a string, found {}", node.type_name()),
                );
                None
            }
        }
    }

    fn uint(&mut self, node: &Node, obj: Option<&str>, what: &str, max: u64) -> Option<u64> {
        match &node.kind {
            NodeKind::Scalar { value, plain: true }
                if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) =>
            {
                match value.parse::<u64>() {
                    Ok(n) if n <= max => Some(n),
                    _ => {
                        self.err(
                            obj,
                            node.pos,
                            format!("{what} {value} is out of range 0..={max}"),
                        );
                        None
                    }
                }
            }
            NodeKind::Scalar { value, .. } => {
                self.err(
                    obj,
                    node.pos,
                    format!("{what} must be an integer, found \"{value}\""),
                );
                None
            }
            _ => {
                self.err(
                    obj,
                    node.pos,
                    format!("{what} must be an integer, found {}", node.type_name()),
                );
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, obj: Option<&str>, what: &str) -> Option<bool> {
        match &node.kind {
            NodeKind::Scalar { value, plain: true } if value == "true" => Some(true),
            NodeKind::Scalar { value, plain: true } if value == "false" => Some(false),
            _ => {
                self.err(obj, node.pos, format!("{what} must be true or false"));
                None
            }
        }
    }

    fn name(&mut self, node: &Node, obj: Option<&str>, what: &str) -> Option<String> {
        let s = self.string(node, obj, what)?;
        if let Err(m) = check_name(&s) {
            self.err(obj, node.pos, format!("{what} \"{s}\" {m}"));
            return None;
        }
        Some(s)
    }

    /// Report keys outside `allowed`.
    fn keys(&mut self, entries: &[(Key, Node)], allowed: &[&str], obj: Option<&str>) {
        for (k, _) in entries {
            if !allowed.contains(&k.name.as_str()) {
                self.err(
                    obj,
                    k.pos,
                    format!(
                        "unknown key \"{}\"; allowed keys: {}",
                        k.name,
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    fn action(&mut self, node: &Node, obj: Option<&str>, what: &str) -> Option<Action> {
        match &node.kind {
            NodeKind::Scalar { value, .. } if value == "allow" => Some(Action::Allow),
            NodeKind::Scalar { value, .. } if value == "deny" => Some(Action::Deny),
            _ => {
                self.err(obj, node.pos, format!("{what} must be allow or deny"));
                None
            }
        }
    }

    fn labels(&mut self, node: &Node, obj: Option<&str>, what: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let Some(m) = self.map(node, obj, what) else {
            return out;
        };
        for (k, v) in m {
            if let Err(e) = check_label(&k.name) {
                self.err(obj, k.pos, format!("label key \"{}\" {e}", k.name));
                continue;
            }
            let val = match &v.kind {
                NodeKind::Scalar { value, plain } if !(*plain && is_null(value)) => value.clone(),
                _ => {
                    self.err(
                        obj,
                        v.pos,
                        format!("label \"{}\" must have a string value", k.name),
                    );
                    continue;
                }
            };
            if val.len() > MAX_NAME_LEN || val.chars().any(char::is_control) {
                self.err(
                    obj,
                    v.pos,
                    format!(
                        "label \"{}\" value is too long or has control characters",
                        k.name
                    ),
                );
                continue;
            }
            out.push((k.name.clone(), val));
        }
        out
    }
}

/// Names of segments, groups, services and rules: ASCII letters, digits,
/// `_`, `.`, `-`, starting with a letter or digit, at most
/// [`MAX_NAME_LEN`] bytes.
pub fn check_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.len() > MAX_NAME_LEN {
        return Err(format!("is longer than {MAX_NAME_LEN} bytes"));
    }
    let first_ok = s.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric);
    if !first_ok
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        return Err(
            "must be letters, digits, '_', '.', '-' and start with a letter or digit".into(),
        );
    }
    Ok(())
}

fn check_label(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > MAX_NAME_LEN {
        return Err(format!("must be 1..={MAX_NAME_LEN} bytes"));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b))
    {
        return Err("must be letters, digits, '_', '.', '-', '/'".into());
    }
    Ok(())
}

fn seg_obj(name: &str) -> String {
    format!("segment \"{name}\"")
}

/// Longest prefix in `prefixes` that contains `ip`, with its owner.
pub(crate) fn lpm(prefixes: &HashMap<IpNet, SegIdx>, ip: IpAddr) -> Option<(IpNet, SegIdx)> {
    let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
    (0..=max).rev().find_map(|len| {
        let net = IpNet::new(ip, len).ok()?.trunc();
        prefixes.get(&net).map(|s| (net, *s))
    })
}

pub(crate) fn load_tree(root: &Node, origin: &str) -> Result<Resolved, Vec<Diagnostic>> {
    let mut cx = Ctx {
        origin,
        diags: Vec::new(),
    };
    let r = resolve(&mut cx, root);
    let (errors, warnings): (Vec<_>, Vec<_>) = cx.diags.into_iter().partition(Diagnostic::is_error);
    match r {
        Some(mut res) if errors.is_empty() => {
            res.warnings = warnings;
            Ok(res)
        }
        _ => {
            let mut errors = errors;
            if errors.is_empty() {
                // resolve() gave up without saying why: never accept silently.
                cx_fallback(&mut errors, origin);
            }
            errors.sort_by_key(|d| (d.line == 0, d.line, d.column));
            Err(errors)
        }
    }
}

fn cx_fallback(errors: &mut Vec<Diagnostic>, origin: &str) {
    errors.push(Diagnostic {
        severity: Severity::Error,
        origin: origin.to_string(),
        object: None,
        line: 0,
        column: 0,
        message: "policy could not be loaded".into(),
    });
}

fn resolve(cx: &mut Ctx<'_>, root: &Node) -> Option<Resolved> {
    let top = match &root.kind {
        NodeKind::Map(m) => m,
        _ => {
            cx.err(
                None,
                root.pos,
                format!("a policy must be a mapping, found {}", root.type_name()),
            );
            return None;
        }
    };
    cx.keys(top, TOP_KEYS, None);
    // A section written with no items (`tests:`) reads as null: treat it as absent.
    let get = |k: &str| {
        top.iter()
            .find(|(key, _)| key.name == k)
            .map(|(_, v)| v)
            .filter(
                |v| !matches!(&v.kind, NodeKind::Scalar { value, plain: true } if is_null(value)),
            )
    };

    load_version(cx, root, get("version"));
    let default_action = match get("default") {
        None => Action::Deny,
        Some(v) => cx.action(v, None, "default").unwrap_or(Action::Deny),
    };
    let anti_spoofing = match get("anti_spoofing") {
        None => true,
        Some(v) => cx.boolean(v, None, "anti_spoofing").unwrap_or(true),
    };
    let description = get("description").and_then(|v| cx.string(v, None, "description"));

    // ---- segments
    let mut doc = Document {
        default_action,
        anti_spoofing,
        description,
        world_declared: false,
        world_description: None,
        segments: Vec::new(),
        endpoints: Vec::new(),
        groups: Vec::new(),
        services: Vec::new(),
        rules: Vec::new(),
        tests: Vec::new(),
    };
    let mut seg_index: HashMap<String, SegIdx> = HashMap::new();
    seg_index.insert("world".into(), 0);
    let mut segdefs = vec![SegmentDef {
        id: SegmentId::WORLD,
        name: "world".into(),
        vlans: Vec::new(),
        prefixes: Vec::new(),
        mode: Mode::Enforce,
        zones: Vec::new(),
    }];
    let mut ids: HashMap<u32, String> = HashMap::new();
    ids.insert(0, "world".into());
    let mut vlan_owner: HashMap<u16, SegIdx> = HashMap::new();
    let mut prefix_owner: HashMap<IpNet, SegIdx> = HashMap::new();
    if let Some(segs) = get("segments") {
        load_segments(
            cx,
            segs,
            &mut doc,
            &mut seg_index,
            &mut segdefs,
            &mut ids,
            &mut vlan_owner,
            &mut prefix_owner,
        );
    }

    // ---- groups
    let labels = label_index(&doc.segments, &seg_index);
    let (group_index, group_members) = match get("groups") {
        Some(g) => load_groups(cx, g, &mut doc.groups, &seg_index, &labels),
        None => (HashMap::new(), Vec::new()),
    };

    // ---- services
    let service_index = match get("services") {
        Some(sv) => load_services(cx, sv, &mut doc),
        None => HashMap::new(),
    };

    // ---- endpoints
    let mut endpoints = Vec::new();
    if let Some(e) = get("endpoints") {
        load_endpoints(cx, e, &mut doc, &seg_index, &prefix_owner, &mut endpoints);
    }

    // ---- rules
    let (rule_index, rules) = match get("rules") {
        Some(r) => load_rules(
            cx,
            r,
            &mut doc,
            &seg_index,
            &group_index,
            &group_members,
            &service_index,
        ),
        None => (HashMap::new(), Vec::new()),
    };

    // ---- tests
    if let Some(t) = get("tests") {
        load_tests(cx, t, &mut doc, &seg_index, &rule_index);
    }

    let ruleset = Ruleset {
        default_action,
        segments: segdefs,
        endpoints,
        rules,
        anti_spoofing,
    };
    Some(Resolved {
        doc,
        ruleset,
        seg_index,
        rule_index,
        group_members,
        warnings: Vec::new(),
    })
}

/// Check `version: 1`.
fn load_version(cx: &mut Ctx<'_>, root: &Node, version: Option<&Node>) {
    match version {
        None => cx.err(
            None,
            root.pos,
            "missing required key \"version\" (must be 1)",
        ),
        Some(v) => {
            if let Some(n) = cx.uint(v, None, "version", u64::MAX) {
                if n != 1 {
                    cx.err(
                        None,
                        v.pos,
                        format!("unsupported version {n}: version must be 1"),
                    );
                }
            }
        }
    }
}

/// Segments by each of their labels, for groups' `match`.
fn label_index<'d>(
    segments: &'d [SegmentAst],
    seg_index: &HashMap<String, SegIdx>,
) -> HashMap<(&'d str, &'d str), Vec<SegIdx>> {
    let mut index: HashMap<(&str, &str), Vec<SegIdx>> = HashMap::new();
    for (i, s) in segments.iter().enumerate() {
        let idx = seg_index.get(&s.name).copied();
        if let Some(idx) = idx {
            // Only the segment that owns the name (duplicates were refused).
            if usize::try_from(idx).ok() == Some(i + 1) {
                for (k, v) in &s.labels {
                    index.entry((k.as_str(), v.as_str())).or_default().push(idx);
                }
            }
        }
    }
    index
}

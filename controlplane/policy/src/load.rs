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

    match get("version") {
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

    // ---- label index for groups
    let mut label_index: HashMap<(&str, &str), Vec<SegIdx>> = HashMap::new();
    for (i, s) in doc.segments.iter().enumerate() {
        let idx = seg_index.get(&s.name).copied();
        if let Some(idx) = idx {
            // Only the segment that owns the name (duplicates were refused).
            if usize::try_from(idx).ok() == Some(i + 1) {
                for (k, v) in &s.labels {
                    label_index
                        .entry((k.as_str(), v.as_str()))
                        .or_default()
                        .push(idx);
                }
            }
        }
    }

    // ---- groups
    let mut group_index: HashMap<String, usize> = HashMap::new();
    let mut group_members: Vec<Vec<SegIdx>> = Vec::new();
    if let Some(g) = get("groups") {
        if let Some(m) = cx.map(g, None, "groups") {
            if m.len() > MAX_GROUPS {
                cx.err(
                    None,
                    g.pos,
                    format!("{} groups exceed the limit of {MAX_GROUPS}", m.len()),
                );
            } else {
                for (k, v) in m {
                    let obj = format!("group \"{}\"", k.name);
                    let o = Some(obj.as_str());
                    if let Err(e) = check_name(&k.name) {
                        cx.err(o, k.pos, format!("group name {e}"));
                        continue;
                    }
                    let Some(body) = cx.map(v, o, "a group") else {
                        continue;
                    };
                    cx.keys(body, GROUP_KEYS, o);
                    let mat = body.iter().find(|(k, _)| k.name == "match").map(|(_, v)| v);
                    let segs = body
                        .iter()
                        .find(|(k, _)| k.name == "segments")
                        .map(|(_, v)| v);
                    let (gb, members) = match (mat, segs) {
                        (Some(_), Some(_)) => {
                            cx.err(
                                o,
                                k.pos,
                                "a group has either `match` or `segments`, not both",
                            );
                            continue;
                        }
                        (None, None) => {
                            cx.err(
                                o,
                                k.pos,
                                "a group needs `match: {LABEL: VALUE}` or `segments: [NAME, ...]`",
                            );
                            continue;
                        }
                        (Some(mv), None) => {
                            let labels = cx.labels(mv, o, "match");
                            if labels.is_empty() {
                                cx.err(o, mv.pos, "match needs at least one label");
                                continue;
                            }
                            let mut lists: Vec<&Vec<SegIdx>> = Vec::new();
                            let mut empty = false;
                            for (lk, lv) in &labels {
                                match label_index.get(&(lk.as_str(), lv.as_str())) {
                                    Some(l) => lists.push(l),
                                    None => empty = true,
                                }
                            }
                            let members = if empty {
                                Vec::new()
                            } else {
                                lists.sort_by_key(|l| l.len());
                                let mut acc: Vec<SegIdx> =
                                    lists.first().map(|l| l.to_vec()).unwrap_or_default();
                                for l in lists.iter().skip(1) {
                                    let set: HashSet<SegIdx> = l.iter().copied().collect();
                                    acc.retain(|s| set.contains(s));
                                }
                                acc.sort_unstable();
                                acc.dedup();
                                acc
                            };
                            (GroupBody::Match(labels), members)
                        }
                        (None, Some(sv)) => {
                            let Some(list) = cx.seq(sv, o, "segments") else {
                                continue;
                            };
                            let mut names = Vec::new();
                            let mut members = Vec::new();
                            for item in list {
                                let Some(n) = cx.string(item, o, "a segment name") else {
                                    continue;
                                };
                                match seg_index.get(&n) {
                                    Some(&i) => members.push(i),
                                    None => cx.err(o, item.pos, format!("unknown segment \"{n}\"")),
                                }
                                names.push(Spanned {
                                    v: n,
                                    at: At(item.pos),
                                });
                            }
                            members.sort_unstable();
                            members.dedup();
                            (GroupBody::Segments(names), members)
                        }
                    };
                    group_index.insert(k.name.clone(), doc.groups.len());
                    group_members.push(members);
                    doc.groups.push(GroupAst {
                        name: k.name.clone(),
                        at: At(k.pos),
                        body: gb,
                    });
                }
            }
        }
    }

    // ---- services
    let mut service_index: HashMap<String, usize> = HashMap::new();
    if let Some(s) = get("services") {
        if let Some(m) = cx.map(s, None, "services") {
            if m.len() > MAX_SERVICES {
                cx.err(
                    None,
                    s.pos,
                    format!("{} services exceed the limit of {MAX_SERVICES}", m.len()),
                );
            } else {
                for (k, v) in m {
                    let obj = format!("service \"{}\"", k.name);
                    let o = Some(obj.as_str());
                    if let Err(e) = check_name(&k.name) {
                        cx.err(o, k.pos, format!("service name {e}"));
                        continue;
                    }
                    if SPEC_WORDS.contains(&k.name.as_str()) {
                        cx.err(
                            o,
                            k.pos,
                            format!(
                                "service name \"{}\" is reserved: it reads as a protocol spec",
                                k.name
                            ),
                        );
                        continue;
                    }
                    let Some(list) = cx.seq(v, o, "a service") else {
                        continue;
                    };
                    if list.is_empty() {
                        cx.err(
                            o,
                            v.pos,
                            "a service needs at least one spec, e.g. [tcp/443]",
                        );
                        continue;
                    }
                    let mut specs = Vec::new();
                    for item in list {
                        let Some(t) = cx.string(item, o, "a spec") else {
                            continue;
                        };
                        match parse_spec(&t) {
                            Ok(sp) => specs.push(Spanned {
                                v: sp,
                                at: At(item.pos),
                            }),
                            Err(e) => cx.err(o, item.pos, e),
                        }
                    }
                    service_index.insert(k.name.clone(), doc.services.len());
                    doc.services.push(ServiceAst {
                        name: k.name.clone(),
                        at: At(k.pos),
                        specs,
                    });
                }
            }
        }
    }

    // ---- endpoints
    let mut endpoints = Vec::new();
    if let Some(e) = get("endpoints") {
        load_endpoints(cx, e, &mut doc, &seg_index, &prefix_owner, &mut endpoints);
    }

    // ---- rules
    let mut rule_index: HashMap<String, u32> = HashMap::new();
    let mut rules = Vec::new();
    if let Some(r) = get("rules") {
        if let Some(list) = cx.seq(r, None, "rules") {
            if list.len() > MAX_RULES {
                cx.err(
                    None,
                    r.pos,
                    format!("{} rules exceed the limit of {MAX_RULES}", list.len()),
                );
            } else {
                for (i, item) in list.iter().enumerate() {
                    let Some((ast, def)) = load_rule(
                        cx,
                        item,
                        i,
                        &seg_index,
                        &group_index,
                        &group_members,
                        &doc.services,
                        &service_index,
                    ) else {
                        continue;
                    };
                    if rule_index.contains_key(&ast.name) {
                        cx.err(
                            Some(&format!("rule \"{}\"", ast.name)),
                            ast.at.0,
                            "duplicate rule name",
                        );
                        continue;
                    }
                    let n = u32::try_from(rules.len()).unwrap_or(u32::MAX);
                    rule_index.insert(ast.name.clone(), n);
                    rules.push(def);
                    doc.rules.push(ast);
                }
            }
        }
    }

    // ---- tests
    if let Some(t) = get("tests") {
        if let Some(list) = cx.seq(t, None, "tests") {
            if list.len() > MAX_TESTS {
                cx.err(
                    None,
                    t.pos,
                    format!("{} tests exceed the limit of {MAX_TESTS}", list.len()),
                );
            } else {
                let mut names = HashSet::new();
                for (i, item) in list.iter().enumerate() {
                    if let Some(test) = load_test(cx, item, i, &seg_index, &rule_index) {
                        if let Some(n) = &test.name {
                            if !names.insert(n.clone()) {
                                cx.err(
                                    Some(&format!("test \"{n}\"")),
                                    test.at.0,
                                    "duplicate test name",
                                );
                            }
                        }
                        doc.tests.push(test);
                    }
                }
            }
        }
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

#[allow(clippy::too_many_arguments)] // reason: one call site; the maps are the loader's state
fn load_segments(
    cx: &mut Ctx<'_>,
    segs: &Node,
    doc: &mut Document,
    seg_index: &mut HashMap<String, SegIdx>,
    segdefs: &mut Vec<SegmentDef>,
    ids: &mut HashMap<u32, String>,
    vlan_owner: &mut HashMap<u16, SegIdx>,
    prefix_owner: &mut HashMap<IpNet, SegIdx>,
) {
    let Some(m) = cx.map(segs, None, "segments") else {
        return;
    };
    if m.len() > MAX_SEGMENTS {
        cx.err(
            None,
            segs.pos,
            format!("{} segments exceed the limit of {MAX_SEGMENTS}", m.len()),
        );
        return;
    }
    let mut total_prefixes = 0usize;
    let mut all_zones: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (k, v) in m {
        let obj = seg_obj(&k.name);
        let o = Some(obj.as_str());
        if k.name == "world" {
            doc.world_declared = true;
            if let NodeKind::Scalar { value, plain: true } = &v.kind {
                if is_null(value) {
                    continue;
                }
            }
            let Some(body) = cx.map(v, o, "world") else {
                continue;
            };
            for (bk, _) in body {
                if !WORLD_KEYS.contains(&bk.name.as_str()) {
                    cx.err(o, bk.pos, format!(
                        "unknown key \"{}\"; world is implicit (everything not placed elsewhere) and takes only: {}",
                        bk.name,
                        WORLD_KEYS.join(", ")
                    ));
                }
            }
            for (bk, bv) in body {
                match bk.name.as_str() {
                    "id" => {
                        if let Some(id) = cx.uint(bv, o, "id", u64::from(u32::MAX)) {
                            if id != 0 {
                                cx.err(o, bv.pos, format!("world's id is always 0, not {id}"));
                            }
                        }
                    }
                    "description" => doc.world_description = cx.string(bv, o, "description"),
                    _ => {}
                }
            }
            continue;
        }
        if let Err(e) = check_name(&k.name) {
            cx.err(o, k.pos, format!("segment name {e}"));
            continue;
        }
        if k.name == "any" {
            cx.err(o, k.pos, "\"any\" is reserved (it selects every segment)");
            continue;
        }
        let Some(body) = cx.map(v, o, "a segment") else {
            continue;
        };
        cx.keys(body, SEGMENT_KEYS, o);
        let mut seg = SegmentAst {
            name: k.name.clone(),
            at: At(k.pos),
            id: 0,
            vlans: Vec::new(),
            prefixes: Vec::new(),
            labels: Vec::new(),
            mode: Mode::Enforce,
            zones: Vec::new(),
            description: None,
        };
        let idx = SegIdx::try_from(segdefs.len()).unwrap_or(SegIdx::MAX);
        let mut id_ok = false;
        match body.iter().find(|(bk, _)| bk.name == "id") {
            None => cx.err(o, k.pos, "missing required key \"id\""),
            Some((_, iv)) => {
                if let Some(id) = cx.uint(iv, o, "id", 4_294_967_294) {
                    let id = u32::try_from(id).unwrap_or(u32::MAX);
                    if id == 0 {
                        cx.err(o, iv.pos, "id 0 is reserved for world");
                    } else if let Some(other) = ids.get(&id) {
                        cx.err(
                            o,
                            iv.pos,
                            format!("duplicate id {id}: already used by segment \"{other}\""),
                        );
                    } else {
                        ids.insert(id, k.name.clone());
                        seg.id = id;
                        id_ok = true;
                    }
                }
            }
        }
        let mut vlans = Vec::new();
        let mut prefixes = Vec::new();
        for (bk, bv) in body {
            match bk.name.as_str() {
                "vlans" => {
                    let Some(list) = cx.seq(bv, o, "vlans") else {
                        continue;
                    };
                    for item in list {
                        let Some(n) = cx.uint(item, o, "VLAN", u64::MAX) else {
                            continue;
                        };
                        if !(1..=4094).contains(&n) {
                            cx.err(o, item.pos, format!("VLAN {n} is outside 1..=4094"));
                            continue;
                        }
                        let vl = u16::try_from(n).unwrap_or(0);
                        if let Some(&owner) = vlan_owner.get(&vl) {
                            let on = name_of(segdefs, owner);
                            cx.err(
                                o,
                                item.pos,
                                format!("VLAN {vl} is already claimed by segment \"{on}\""),
                            );
                            continue;
                        }
                        vlan_owner.insert(vl, idx);
                        vlans.push(vl);
                        seg.vlans.push(Spanned {
                            v: vl,
                            at: At(item.pos),
                        });
                    }
                }
                "prefixes" => {
                    let Some(list) = cx.seq(bv, o, "prefixes") else {
                        continue;
                    };
                    total_prefixes = total_prefixes.saturating_add(list.len());
                    if total_prefixes > MAX_PREFIXES {
                        cx.err(
                            o,
                            bv.pos,
                            format!("more than {MAX_PREFIXES} prefixes in the policy"),
                        );
                        continue;
                    }
                    for item in list {
                        let Some(t) = cx.string(item, o, "a prefix") else {
                            continue;
                        };
                        let Some(net) = parse_prefix(cx, &t, o, item.pos) else {
                            continue;
                        };
                        if let Some(&owner) = prefix_owner.get(&net) {
                            let on = name_of(segdefs, owner);
                            cx.err(
                                o,
                                item.pos,
                                format!("prefix {net} is already claimed by segment \"{on}\""),
                            );
                            continue;
                        }
                        prefix_owner.insert(net, idx);
                        prefixes.push(net);
                        seg.prefixes.push(Spanned {
                            v: net,
                            at: At(item.pos),
                        });
                    }
                }
                "labels" => seg.labels = cx.labels(bv, o, "labels"),
                "zones" => {
                    let Some(list) = cx.seq(bv, o, "zones") else {
                        continue;
                    };
                    for item in list {
                        let Some(z) = cx.name(item, o, "zone") else {
                            continue;
                        };
                        if seg.zones.iter().any(|s| s.v == z) {
                            cx.err(o, item.pos, format!("zone \"{z}\" is listed twice"));
                            continue;
                        }
                        if !all_zones.contains(&z) && all_zones.len() >= MAX_ZONES {
                            cx.err(
                                o,
                                item.pos,
                                format!("more than {MAX_ZONES} distinct zones in the policy"),
                            );
                            continue;
                        }
                        all_zones.insert(z.clone());
                        seg.zones.push(Spanned {
                            v: z,
                            at: At(item.pos),
                        });
                    }
                }
                "mode" => match &bv.kind {
                    NodeKind::Scalar { value, .. } if value == "enforce" => {
                        seg.mode = Mode::Enforce
                    }
                    NodeKind::Scalar { value, .. } if value == "monitor" => {
                        seg.mode = Mode::Monitor
                    }
                    _ => cx.err(o, bv.pos, "mode must be enforce or monitor"),
                },
                "description" => seg.description = cx.string(bv, o, "description"),
                _ => {}
            }
        }
        if !id_ok {
            // Keep going so later references resolve, but the policy is refused.
            seg.id = 0;
        }
        seg_index.insert(k.name.clone(), idx);
        segdefs.push(SegmentDef {
            id: SegmentId(seg.id),
            name: k.name.clone(),
            vlans,
            prefixes,
            mode: seg.mode,
            zones: seg.zones.iter().map(|z| z.v.clone()).collect(),
        });
        doc.segments.push(seg);
    }
}

fn name_of(segdefs: &[SegmentDef], idx: SegIdx) -> &str {
    usize::try_from(idx)
        .ok()
        .and_then(|i| segdefs.get(i))
        .map_or("?", |s| s.name.as_str())
}

fn parse_prefix(cx: &mut Ctx<'_>, t: &str, o: Option<&str>, pos: Pos) -> Option<IpNet> {
    match t.parse::<IpNet>() {
        Ok(net) => {
            if net.trunc() != net {
                cx.err(
                    o,
                    pos,
                    format!(
                        "prefix {t} has host bits set (did you mean {}?)",
                        net.trunc()
                    ),
                );
                return None;
            }
            Some(net)
        }
        Err(_) => {
            if t.parse::<IpAddr>().is_ok() {
                cx.err(
                    o,
                    pos,
                    format!(
                        "prefix \"{t}\" has no length: write {t}/{} for one address",
                        if t.contains(':') { 128 } else { 32 }
                    ),
                );
            } else {
                cx.err(
                    o,
                    pos,
                    format!("bad prefix \"{t}\": expected a CIDR such as 10.0.0.0/24 or fd00::/64"),
                );
            }
            None
        }
    }
}

fn load_endpoints(
    cx: &mut Ctx<'_>,
    node: &Node,
    doc: &mut Document,
    seg_index: &HashMap<String, SegIdx>,
    prefix_owner: &HashMap<IpNet, SegIdx>,
    out: &mut Vec<EndpointDef>,
) {
    let Some(list) = cx.seq(node, None, "endpoints") else {
        return;
    };
    if list.len() > MAX_ENDPOINTS {
        cx.err(
            None,
            node.pos,
            format!(
                "{} endpoints exceed the limit of {MAX_ENDPOINTS}",
                list.len()
            ),
        );
        return;
    }
    let mut seen: HashMap<IpAddr, usize> = HashMap::new();
    for (i, item) in list.iter().enumerate() {
        let mut obj = format!("endpoint #{}", i + 1);
        let Some(m) = cx.map(item, Some(&obj), "an endpoint") else {
            continue;
        };
        let get = |k: &str| m.iter().find(|(key, _)| key.name == k).map(|(_, v)| v);
        let ip = match get("ip") {
            None => {
                cx.err(Some(&obj), item.pos, "missing required key \"ip\"");
                None
            }
            Some(v) => match cx.string(v, Some(&obj), "ip") {
                Some(t) => match t.parse::<IpAddr>() {
                    Ok(ip) => {
                        obj = format!("endpoint {ip}");
                        Some(ip)
                    }
                    Err(_) => {
                        cx.err(
                            Some(&obj),
                            v.pos,
                            format!("bad address \"{t}\": expected one IPv4 or IPv6 address"),
                        );
                        None
                    }
                },
                None => None,
            },
        };
        let o = Some(obj.as_str());
        cx.keys(m, ENDPOINT_KEYS, o);
        let seg = match get("segment") {
            None => {
                cx.err(o, item.pos, "missing required key \"segment\"");
                None
            }
            Some(v) => cx.string(v, o, "segment").map(|s| (s, v.pos)),
        };
        let override_prefix = get("override")
            .and_then(|v| cx.boolean(v, o, "override"))
            .unwrap_or(false);
        let description = get("description").and_then(|v| cx.string(v, o, "description"));
        let (Some(ip), Some((sname, spos))) = (ip, seg) else {
            continue;
        };
        let Some(&sidx) = seg_index.get(&sname) else {
            cx.err(o, spos, format!("unknown segment \"{sname}\""));
            continue;
        };
        if sidx == 0 {
            cx.err(
                o,
                spos,
                "an endpoint cannot be placed in world (world is everything not placed elsewhere)",
            );
            continue;
        }
        if seen.insert(ip, i).is_some() {
            cx.err(
                o,
                item.pos,
                format!("address {ip} is listed as an endpoint twice"),
            );
            continue;
        }
        let host = IpNet::from(ip);
        if let Some(&owner) = prefix_owner.get(&host) {
            if owner != sidx {
                cx.err(
                    o,
                    item.pos,
                    format!("address {ip} is already claimed by a prefix of another segment"),
                );
                continue;
            }
        } else if let Some((net, owner)) = lpm(prefix_owner, ip) {
            if owner != sidx && !override_prefix {
                let on = doc
                    .segments
                    .iter()
                    .find(|s| seg_index.get(&s.name) == Some(&owner))
                    .map_or("?", |s| s.name.as_str());
                cx.err(o, item.pos, format!(
                    "{ip} lies inside prefix {net} of segment \"{on}\"; set `override: true` to place it in \"{sname}\" deliberately"
                ));
                continue;
            }
        }
        out.push(EndpointDef { ip, segment: sidx });
        doc.endpoints.push(EndpointAst {
            at: At(item.pos),
            ip,
            segment: Spanned {
                v: sname,
                at: At(spos),
            },
            override_prefix,
            description,
        });
    }
}

#[allow(clippy::too_many_arguments)] // reason: the loader's lookup tables
fn load_rule(
    cx: &mut Ctx<'_>,
    item: &Node,
    i: usize,
    seg_index: &HashMap<String, SegIdx>,
    group_index: &HashMap<String, usize>,
    group_members: &[Vec<SegIdx>],
    services: &[ServiceAst],
    service_index: &HashMap<String, usize>,
) -> Option<(RuleAst, RuleDef)> {
    let mut obj = format!("rule #{}", i + 1);
    let m = cx.map(item, Some(&obj), "a rule")?;
    let get = |k: &str| m.iter().find(|(key, _)| key.name == k).map(|(_, v)| v);
    let name = match get("name") {
        None => {
            cx.err(Some(&obj), item.pos, "missing required key \"name\"");
            None
        }
        Some(v) => cx.name(v, Some(&obj), "rule name"),
    };
    if let Some(n) = &name {
        obj = format!("rule \"{n}\"");
        if RESERVED_RULE_NAMES.contains(&n.as_str()) {
            cx.err(
                Some(&obj),
                item.pos,
                format!("rule name \"{n}\" is reserved"),
            );
        }
    }
    let o = Some(obj.as_str());
    cx.keys(m, RULE_KEYS, o);
    let mut ok = name.is_some();
    let sel = |cx: &mut Ctx<'_>, key: &str| -> Option<(Vec<Spanned<Selector>>, SegmentSet)> {
        let Some(v) = get(key) else {
            cx.err(o, item.pos, format!("missing required key \"{key}\""));
            return None;
        };
        let list = cx.seq(v, o, key)?;
        if list.is_empty() {
            cx.err(o, v.pos, format!("{key} must list at least one selector"));
            return None;
        }
        let mut out = Vec::new();
        let mut any = false;
        let mut segs: Vec<SegIdx> = Vec::new();
        let mut good = true;
        for it in list {
            let Some(t) = cx.string(it, o, "a selector") else {
                good = false;
                continue;
            };
            let s = if t == "any" {
                any = true;
                Selector::Any
            } else if let Some(g) = t.strip_prefix("group:") {
                match group_index.get(g) {
                    Some(&gi) => {
                        segs.extend_from_slice(group_members.get(gi).map_or(&[][..], |v| v))
                    }
                    None => {
                        cx.err(o, it.pos, format!("unknown group \"{g}\""));
                        good = false;
                    }
                }
                Selector::Group(g.to_string())
            } else {
                match seg_index.get(&t) {
                    Some(&si) => segs.push(si),
                    None => {
                        cx.err(o, it.pos, format!("unknown segment \"{t}\""));
                        good = false;
                    }
                }
                Selector::Segment(t)
            };
            out.push(Spanned {
                v: s,
                at: At(it.pos),
            });
        }
        if !good {
            return None;
        }
        let set = if any {
            SegmentSet::Any
        } else {
            segs.sort_unstable();
            segs.dedup();
            SegmentSet::List(segs)
        };
        Some((out, set))
    };
    let from = sel(cx, "from");
    let to = sel(cx, "to");
    ok &= from.is_some() && to.is_some();

    let mut svc_refs = Vec::new();
    let mut specs: Vec<ServiceSpec> = Vec::new();
    match get("services") {
        None => {
            cx.err(
                o,
                item.pos,
                "missing required key \"services\" (use [any] for every service)",
            );
            ok = false;
        }
        Some(v) => {
            match cx.seq(v, o, "services") {
                None => ok = false,
                Some([]) => {
                    cx.err(o, v.pos, "services must list at least one service or spec (use [any] for every service)");
                    ok = false;
                }
                Some(list) => {
                    for it in list {
                        let Some(t) = cx.string(it, o, "a service") else {
                            ok = false;
                            continue;
                        };
                        if let Some(&si) = service_index.get(&t) {
                            if let Some(s) = services.get(si) {
                                specs.extend(s.specs.iter().map(|sp| sp.v));
                            }
                            svc_refs.push(Spanned {
                                v: ServiceRef::Named(t),
                                at: At(it.pos),
                            });
                            continue;
                        }
                        let word = t.split('/').next().unwrap_or("");
                        if t.contains('/') || SPEC_WORDS.contains(&word) {
                            match parse_spec(&t) {
                                Ok(sp) => {
                                    specs.push(sp);
                                    svc_refs.push(Spanned {
                                        v: ServiceRef::Spec(sp),
                                        at: At(it.pos),
                                    });
                                }
                                Err(e) => {
                                    cx.err(o, it.pos, e);
                                    ok = false;
                                }
                            }
                        } else {
                            cx.err(o, it.pos, format!("unknown service \"{t}\""));
                            ok = false;
                        }
                    }
                }
            }
        }
    }
    let action = match get("action") {
        None => {
            cx.err(
                o,
                item.pos,
                "missing required key \"action\" (allow or deny)",
            );
            None
        }
        Some(v) => cx.action(v, o, "action"),
    };
    let log = get("log")
        .and_then(|v| cx.boolean(v, o, "log"))
        .unwrap_or(false);
    let description = get("description").and_then(|v| cx.string(v, o, "description"));
    let (Some(name), Some((from_ast, from_set)), Some((to_ast, to_set)), Some(action)) =
        (name, from, to, action)
    else {
        return None;
    };
    if !ok {
        return None;
    }
    let mut dedup = Vec::with_capacity(specs.len());
    for s in specs {
        if !dedup.contains(&s) {
            dedup.push(s);
        }
    }
    Some((
        RuleAst {
            name: name.clone(),
            at: At(item.pos),
            from: from_ast,
            to: to_ast,
            services: svc_refs,
            action,
            log,
            description,
        },
        RuleDef {
            name,
            from: from_set,
            to: to_set,
            services: dedup,
            action,
            log,
        },
    ))
}

fn load_test(
    cx: &mut Ctx<'_>,
    item: &Node,
    i: usize,
    seg_index: &HashMap<String, SegIdx>,
    rule_index: &HashMap<String, u32>,
) -> Option<TestAst> {
    let mut obj = format!("test #{}", i + 1);
    let m = cx.map(item, Some(&obj), "a test")?;
    let get = |k: &str| m.iter().find(|(key, _)| key.name == k).map(|(_, v)| v);
    let name = get("name").and_then(|v| cx.string(v, Some(&obj), "test name"));
    if let Some(n) = &name {
        obj = format!("test \"{n}\"");
    }
    let o = Some(obj.as_str());
    cx.keys(m, TEST_KEYS, o);
    let place = |cx: &mut Ctx<'_>, key: &str| -> Option<Spanned<Place>> {
        let Some(v) = get(key) else {
            cx.err(o, item.pos, format!("missing required key \"{key}\""));
            return None;
        };
        let t = cx.string(v, o, key)?;
        if let Ok(ip) = t.parse::<IpAddr>() {
            return Some(Spanned {
                v: Place::Ip(ip),
                at: At(v.pos),
            });
        }
        if seg_index.contains_key(&t) {
            return Some(Spanned {
                v: Place::Segment(t),
                at: At(v.pos),
            });
        }
        if t.contains('/') {
            cx.err(
                o,
                v.pos,
                format!("{key} \"{t}\" is a prefix: give one address or a segment name"),
            );
        } else if t.contains('.') || t.contains(':') {
            cx.err(
                o,
                v.pos,
                format!("{key} \"{t}\" is neither an address nor a known segment"),
            );
        } else {
            cx.err(o, v.pos, format!("unknown segment \"{t}\""));
        }
        None
    };
    let from = place(cx, "from");
    let to = place(cx, "to");
    let vlan = match get("vlan") {
        None => Some(None),
        Some(v) => match cx.uint(v, o, "vlan", u64::MAX) {
            Some(n) if (1..=4094).contains(&n) => {
                if let Some(Spanned {
                    v: Place::Segment(_),
                    ..
                }) = &from
                {
                    cx.err(o, v.pos, "vlan applies only when `from` is an address (a segment name already places the packet)");
                    None
                } else {
                    Some(Some(u16::try_from(n).unwrap_or(0)))
                }
            }
            Some(n) => {
                cx.err(o, v.pos, format!("VLAN {n} is outside 1..=4094"));
                None
            }
            None => None,
        },
    };
    let zone = match get("zone") {
        None => Some(None),
        Some(v) => match cx.name(v, o, "zone") {
            Some(z) => {
                if let Some(Spanned {
                    v: Place::Segment(_),
                    ..
                }) = &from
                {
                    cx.err(o, v.pos, "zone applies only when `from` is an address (a segment name already places the packet)");
                    None
                } else {
                    Some(Some(z))
                }
            }
            None => None,
        },
    };
    let service = match get("service") {
        None => {
            cx.err(
                o,
                item.pos,
                "missing required key \"service\" (one spec such as tcp/443)",
            );
            None
        }
        Some(v) => match cx.string(v, o, "service") {
            Some(t) => match parse_probe(&t) {
                Ok(p) => Some(p),
                Err(e) => {
                    cx.err(o, v.pos, e);
                    None
                }
            },
            None => None,
        },
    };
    let expect = match get("expect") {
        None => {
            cx.err(
                o,
                item.pos,
                "missing required key \"expect\" (allow or deny)",
            );
            None
        }
        Some(v) => cx.action(v, o, "expect"),
    };
    let rule = match get("rule") {
        None => Some(None),
        Some(v) => match cx.string(v, o, "rule") {
            Some(r) if r == "default" || r == "spoofed" || rule_index.contains_key(&r) => {
                Some(Some(Spanned {
                    v: r,
                    at: At(v.pos),
                }))
            }
            Some(r) => {
                cx.err(o, v.pos, format!("unknown rule \"{r}\""));
                None
            }
            None => None,
        },
    };
    Some(TestAst {
        name,
        at: At(item.pos),
        from: from?,
        to: to?,
        vlan: vlan?,
        zone: zone?,
        service: service?,
        expect: expect?,
        rule: rule?,
    })
}

//! The `rules` and `tests` sections.

use super::*;

/// The `rules` section, in order: their indices by name and definitions.
pub(super) fn load_rules(
    cx: &mut Ctx<'_>,
    r: &Node,
    doc: &mut Document,
    seg_index: &HashMap<String, SegIdx>,
    group_index: &HashMap<String, usize>,
    group_members: &[Vec<SegIdx>],
    service_index: &HashMap<String, usize>,
) -> (HashMap<String, u32>, Vec<RuleDef>) {
    let mut rule_index: HashMap<String, u32> = HashMap::new();
    let mut rules = Vec::new();
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
                    seg_index,
                    group_index,
                    group_members,
                    &doc.services,
                    service_index,
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
    (rule_index, rules)
}

/// The `tests` section.
pub(super) fn load_tests(
    cx: &mut Ctx<'_>,
    t: &Node,
    doc: &mut Document,
    seg_index: &HashMap<String, SegIdx>,
    rule_index: &HashMap<String, u32>,
) {
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
                if let Some(test) = load_test(cx, item, i, seg_index, rule_index) {
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

#[allow(clippy::too_many_arguments)] // reason: the loader's lookup tables
pub(super) fn load_rule(
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

pub(super) fn load_test(
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

//! The `groups` and `services` sections.

use super::*;

/// The `groups` section: each group's members, by name.
pub(super) fn load_groups(
    cx: &mut Ctx<'_>,
    g: &Node,
    groups: &mut Vec<GroupAst>,
    seg_index: &HashMap<String, SegIdx>,
    label_index: &HashMap<(&str, &str), Vec<SegIdx>>,
) -> (HashMap<String, usize>, Vec<Vec<SegIdx>>) {
    let mut group_index: HashMap<String, usize> = HashMap::new();
    let mut group_members: Vec<Vec<SegIdx>> = Vec::new();
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
                group_index.insert(k.name.clone(), groups.len());
                group_members.push(members);
                groups.push(GroupAst {
                    name: k.name.clone(),
                    at: At(k.pos),
                    body: gb,
                });
            }
        }
    }
    (group_index, group_members)
}

/// The `services` section: each service's index in `doc.services`, by name.
pub(super) fn load_services(
    cx: &mut Ctx<'_>,
    s: &Node,
    doc: &mut Document,
) -> HashMap<String, usize> {
    let mut service_index: HashMap<String, usize> = HashMap::new();
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
    service_index
}

//! The `segments` and `endpoints` sections.

use super::*;

#[allow(clippy::too_many_arguments)] // reason: one call site; the maps are the loader's state
pub(super) fn load_segments(
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

pub(super) fn name_of(segdefs: &[SegmentDef], idx: SegIdx) -> &str {
    usize::try_from(idx)
        .ok()
        .and_then(|i| segdefs.get(i))
        .map_or("?", |s| s.name.as_str())
}

pub(super) fn parse_prefix(cx: &mut Ctx<'_>, t: &str, o: Option<&str>, pos: Pos) -> Option<IpNet> {
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

pub(super) fn load_endpoints(
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

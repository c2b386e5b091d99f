//! The reference evaluator: a literal reading of `spec/policy.md`, sections
//! "Placing a packet" and "Deciding". Every function scans the whole
//! [`Ruleset`] linearly; nothing is precomputed. It is slow and meant to be
//! obviously right: the compiled tables ([`crate::compile`]) are tested
//! against it.
//!
//! Readings of the spec that it fixes (the compiled policy follows them):
//! - An endpoint acts as a /32 (IPv4) or /128 (IPv6) prefix of its segment.
//!   When an endpoint's address equals a segment prefix that is itself a /32
//!   or /128, the endpoint wins (it is the more specific, run-time placement).
//!   When several endpoints share an address, the last one listed wins.
//! - Anti-spoofing compares the VLAN's segment A with the segment B of the
//!   source address's longest match over prefixes *and endpoints*; the frame
//!   is spoofed when B exists, differs from A and is not world (index 0).
//! - A VLAN that no segment lists (including 0 and 4095) places nothing: the
//!   source address decides, as for an untagged frame.
//! - A segment index that is out of range in a [`FlowQuery`] belongs to no
//!   segment list (only `any` holds it) and is in enforce mode.

use std::net::IpAddr;

use crate::model::{
    Action, Decision, FlowQuery, Mode, PlaceError, RuleRef, Ruleset, SegIdx, SegmentSet,
};

/// Longest match of `ip` over every segment prefix and every endpoint, or
/// `None` when nothing matches.
pub fn longest_match(rs: &Ruleset, ip: IpAddr) -> Option<SegIdx> {
    let mut best: Option<(u8, SegIdx)> = None;
    for (index, seg) in rs.segments.iter().enumerate() {
        for prefix in &seg.prefixes {
            if prefix.contains(&ip) {
                let len = prefix.prefix_len();
                if best.is_none_or(|(best_len, _)| len > best_len) {
                    best = Some((len, index as SegIdx));
                }
            }
        }
    }
    let host_len = match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    for ep in &rs.endpoints {
        // `>=`: an endpoint beats a segment's host prefix and earlier endpoints.
        if ep.ip == ip && best.is_none_or(|(best_len, _)| host_len >= best_len) {
            best = Some((host_len, ep.segment));
        }
    }
    best.map(|(_, seg)| seg)
}

/// Source segment of a frame that arrived with `vlan` (or untagged) and
/// source address `src`, in zone `zone` (`Some(None)`: in no zone; `None`:
/// the zone is not checked).
pub fn place_src(
    rs: &Ruleset,
    vlan: Option<u16>,
    src: IpAddr,
    zone: Option<Option<&str>>,
) -> Result<SegIdx, PlaceError> {
    let seg = place_src_by_vlan(rs, vlan, src)?;
    if let Some(entered) = zone {
        let zones = rs.segments.get(seg as usize).map(|s| &s.zones);
        if rs.anti_spoofing
            && seg != 0
            && zones.is_some_and(|z| {
                !z.is_empty() && !entered.is_some_and(|e| z.iter().any(|n| n == e))
            })
        {
            return Err(PlaceError::Spoofed);
        }
    }
    Ok(seg)
}

fn place_src_by_vlan(rs: &Ruleset, vlan: Option<u16>, src: IpAddr) -> Result<SegIdx, PlaceError> {
    if let Some(vlan) = vlan {
        if let Some(by_vlan) = rs.segments.iter().position(|seg| seg.vlans.contains(&vlan)) {
            let by_vlan = by_vlan as SegIdx;
            if rs.anti_spoofing {
                if let Some(by_addr) = longest_match(rs, src) {
                    if by_addr != by_vlan && by_addr != 0 {
                        return Err(PlaceError::Spoofed);
                    }
                }
            }
            return Ok(by_vlan);
        }
    }
    Ok(longest_match(rs, src).unwrap_or(0))
}

/// Destination segment of address `dst`.
pub fn place_dst(rs: &Ruleset, dst: IpAddr) -> SegIdx {
    longest_match(rs, dst).unwrap_or(0)
}

/// Judge a new connection: first matching rule in order, else the default,
/// then monitor mode of the destination segment.
pub fn decide(rs: &Ruleset, q: &FlowQuery) -> Decision {
    let mut verdict = (rs.default_action, RuleRef::Default, false);
    for (index, rule) in rs.rules.iter().enumerate() {
        if set_contains(&rule.from, q.src)
            && set_contains(&rule.to, q.dst)
            && rule
                .services
                .iter()
                .any(|spec| spec.matches(q.proto, q.port))
        {
            verdict = (rule.action, RuleRef::Rule(index as u32), rule.log);
            break;
        }
    }
    let (action, rule, log) = verdict;
    let dst_monitored = rs
        .segments
        .get(q.dst as usize)
        .is_some_and(|seg| seg.mode == Mode::Monitor);
    if action == Action::Deny && dst_monitored {
        Decision {
            action: Action::Allow,
            rule,
            log,
            monitor: true,
        }
    } else {
        Decision {
            action,
            rule,
            log,
            monitor: false,
        }
    }
}

fn set_contains(set: &SegmentSet, seg: SegIdx) -> bool {
    match set {
        SegmentSet::Any => true,
        // Linear on purpose: the oracle does not rely on the list being sorted.
        SegmentSet::List(list) => list.contains(&seg),
    }
}

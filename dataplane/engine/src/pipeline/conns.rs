//! Listing and flushing this worker's tracked connections (control-plane
//! questions, see [`crate::control`]; cold, between bursts).

use super::*;
use crate::control::{ConnFilter, ConnInfo};
use bulkhead_packet::flow::addr_to_ip;

impl Pipeline {
    /// At most `limit` of this worker's connections matching `filter`, and
    /// whether more matched.
    #[cold]
    pub fn connections(
        &self,
        snap: &PolicySnapshot,
        filter: &ConnFilter,
        limit: usize,
        now: u64,
    ) -> (Vec<ConnInfo>, bool) {
        let mut out = Vec::new();
        for (_, e) in self.ct.iter() {
            let c = conn_info(snap, e, now, self.cfg.worker);
            if filter.matches(&c) {
                if out.len() == limit {
                    return (out, true);
                }
                out.push(c);
            }
        }
        (out, false)
    }

    /// Remove this worker's connections matching `filter`, each reported
    /// as closed; returns how many.
    #[cold]
    pub fn flush_matching(&mut self, snap: &PolicySnapshot, filter: &ConnFilter, now: u64) -> u64 {
        let doomed: Vec<EntryId> = self
            .ct
            .iter()
            .filter(|(_, e)| filter.matches(&conn_info(snap, e, now, self.cfg.worker)))
            .map(|(id, _)| id)
            .collect();
        for &id in &doomed {
            self.close(snap, id, EventKind::Closed, now);
        }
        self.counters.conns = self.ct.len() as u64;
        doomed.len() as u64
    }
}

/// One entry as the control plane sees it (names from `snap`).
fn conn_info(snap: &PolicySnapshot, e: &Entry, now: u64, worker: u16) -> ConnInfo {
    let key = e.key();
    let init = key.endpoint(e.initiator());
    let resp = key.endpoint(e.initiator().other());
    let policy = &snap.policy;
    let seg_name = |id: u32| {
        policy
            .segment_index(bulkhead_classify::SegmentId(id))
            .map_or_else(
                || format!("segment#{id}"),
                |i| policy.segment_name(i).to_string(),
            )
    };
    let rule = if e.rule() == RULE_DEFAULT {
        "default".to_string()
    } else if e.judged_under(snap.generation) {
        policy.rule_name(RuleRef::Rule(e.rule())).to_string()
    } else {
        format!("rule#{}@generation{}", e.rule(), e.generation())
    };
    ConnInfo {
        worker,
        src: addr_to_ip(init.addr),
        src_port: init.port,
        dst: addr_to_ip(resp.addr),
        dst_port: resp.port,
        proto: key.proto(),
        src_segment: seg_name(e.src_segment()),
        dst_segment: policy.segment_name(place_dst(snap, resp.addr)).to_string(),
        state: format!("{:?}", e.state()),
        rule,
        monitor: e.flags().contains(ConnFlags::MONITOR),
        generation: e.generation(),
        age_ns: now.saturating_sub(e.created()),
        idle_ns: now.saturating_sub(e.last_seen()),
        packets: [e.packets(Dir::Original), e.packets(Dir::Reply)],
        bytes: [e.bytes(Dir::Original), e.bytes(Dir::Reply)],
    }
}

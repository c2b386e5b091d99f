//! Recording a burst into the packet trace (cold: only while a trace is
//! armed). Every step is recomputed from the frame and the tables after the
//! burst, so the hot path carries nothing for it.

use super::judge::rule_index;
use super::*;
use crate::trace::{Conn, Parse, TraceRecord};

impl Pipeline {
    #[cold]
    #[inline(never)]
    pub(super) fn trace_burst(
        &mut self,
        snap: &PolicySnapshot,
        ingress: Ingress,
        frames: &[&[u8]],
        fates: &[Fate],
        now: u64,
    ) {
        let Some(tracer) = self.tracer.clone() else {
            return;
        };
        for (i, (frame, &fate)) in frames.iter().zip(fates).enumerate() {
            let parsed = bulkhead_packet::parse(frame, &self.parse_cfg);
            let (kind, ip) = match parsed {
                Parsed::Ip(p) if p.fragment == Fragment::NonFirst => (Parse::Fragment, Some(p)),
                Parsed::Ip(p) => (Parse::Ip, Some(p)),
                Parsed::NeighborDiscovery(p) => (Parse::NeighborDiscovery, Some(p)),
                Parsed::Arp(_) => (Parse::Arp, None),
                Parsed::NonIp { ethertype } => (Parse::NonIp(ethertype), None),
                Parsed::Drop(r) => (Parse::Drop(r), None),
            };
            if !tracer.filter().matches(ip.as_ref().map(|p| &p.tuple)) || !tracer.claim() {
                continue;
            }
            let mut r = TraceRecord {
                time_ns: now,
                worker: self.cfg.worker,
                wire: ingress.wire,
                side: ingress.side,
                len: frame.len() as u32,
                parse: kind,
                outer_vlan: None,
                vlan: None,
                tuple: None,
                src_segment: None,
                dst_segment: None,
                conn: Conn::NotTracked,
                fate,
                generation: snap.generation,
                rule: None,
            };
            if let Parsed::Arp(a) = parsed {
                (r.outer_vlan, r.vlan) = (a.outer_vlan, a.vlan);
            }
            if let Some(p) = ip {
                self.trace_ip(snap, ingress, i, &p, frame, &mut r);
            }
            tracer.record(self.cfg.worker, r);
        }
    }

    /// Placement, connection and rule of a traced IP packet.
    fn trace_ip(
        &self,
        snap: &PolicySnapshot,
        ingress: Ingress,
        i: usize,
        p: &IpPacket,
        frame: &[u8],
        r: &mut TraceRecord,
    ) {
        let quoted = quoted_flow(frame, p);
        let t = p.tuple;
        (r.outer_vlan, r.vlan, r.tuple) = (p.outer_vlan, p.vlan, Some(t));
        let zone = self.ingress_zone(snap, ingress, p.outer_vlan, p.vlan);
        let src = place_src(snap, placement_vlan(p.outer_vlan, p.vlan), t.src, zone).ok();
        let dst = place_dst(snap, t.dst);
        r.src_segment = src.map(|s| snap.policy.segment_id(s).0);
        r.dst_segment = Some(snap.policy.segment_id(dst).0);
        if p.fragment == Fragment::NonFirst || p.icmp == IcmpClass::Informational {
            return;
        }
        let (tuple, icmp_type) = match (quoted, p.icmp) {
            (Some(q), _) => (q.tuple, quoted_icmp_type(&q.tuple)),
            (None, IcmpClass::Query(q)) => (t, q.request_type),
            _ => (t, 0),
        };
        let (key, _) = conn_key(
            wire_domain(ingress.wire, p.outer_vlan, p.vlan),
            &tuple,
            icmp_type,
        );
        let before = self.found.get(i).copied().flatten().is_some();
        match self
            .ct
            .lookup(&key, self.ct.hash(&key))
            .and_then(|id| self.ct.entry(id))
        {
            Some(e) => {
                r.conn = if before || quoted.is_some() {
                    Conn::Found(e.state())
                } else {
                    Conn::Created(e.state())
                };
                r.generation = e.generation();
                r.rule = Some(e.rule());
            }
            None => {
                r.conn = Conn::Missed;
                if let (Some(src), None) = (src, quoted) {
                    let d = snap.policy.decide(&FlowQuery {
                        src,
                        dst,
                        proto: t.proto,
                        port: t.svc,
                    });
                    r.rule = Some(rule_index(d.rule));
                }
            }
        }
    }
}

//! Judging: a new connection, an untracked ICMP message, an ICMP error,
//! a connection under a new policy generation; denial events.

use super::*;

impl Pipeline {
    /// The first packet of a connection: place, judge, track.
    #[cold]
    #[inline(never)]
    pub(super) fn new_connection(
        &mut self,
        snap: &PolicySnapshot,
        ingress: Ingress,
        i: usize,
        p: &IpPacket,
        frame: &[u8],
        now: u64,
    ) -> Fate {
        let len = frame.len() as u32;
        let t = &p.tuple;
        let policy = &snap.policy;
        let zone = self.ingress_zone(snap, ingress, p.outer_vlan, p.vlan);
        let src = match place_src(snap, placement_vlan(p.outer_vlan, p.vlan), t.src, zone) {
            Ok(s) => s,
            Err(PlaceError::Spoofed) => return Fate::Engine(EngineDrop::Spoofed),
        };
        if t.proto == PROTO_TCP && !tcp_may_open(p.tcp_flags) {
            return Fate::Engine(EngineDrop::Invalid);
        }
        // A reply that answers no tracked request.
        if matches!(p.icmp, IcmpClass::Query(q) if !q.is_request) {
            return Fate::Engine(EngineDrop::Invalid);
        }
        let dst = place_dst(snap, t.dst);
        let d = policy.decide(&FlowQuery {
            src,
            dst,
            proto: t.proto,
            port: t.svc,
        });
        let rule = rule_index(d.rule);
        snap.count_rule(self.cfg.worker, rule);
        let src_id = policy.segment_id(src).0;
        let mut ev = self.opening_event(
            snap,
            EventKind::Allowed,
            ingress,
            p,
            (src, dst),
            &d,
            len,
            now,
        );
        if d.action == Action::Deny {
            self.counters.add(slot::NEW_DENIED, 1);
            ev.kind = EventKind::Denied;
            self.emit_denied(ev);
            return Fate::Engine(EngineDrop::PolicyDeny);
        }
        let new = NewConn {
            initiator: self.key_side[i],
            src_segment: src_id,
            generation: snap.generation,
            rule,
            flags: verdict_flags(d.log, d.monitor) | initiator_side(ingress.side),
            bytes: len,
            svc: t.svc,
        };
        let key = self.keys[i];
        let hash = self.hashes[i];
        let mut evicted: Option<Entry> = None;
        self.changed = true;
        let res = self.ct.insert(&key, hash, now, new, |e| evicted = Some(*e));
        if let Some(e) = evicted {
            // Evicted while still live: nobody answered it (early drop).
            let early = !self.ct.is_expired(&e, now);
            let slot = if early {
                slot::CONN_EVICTED
            } else {
                slot::CONN_EXPIRED
            };
            self.counters.add(slot, 1);
            let ev = closed_event(snap, &e, EventKind::Closed, now, self.cfg.worker);
            self.emit(ev);
        }
        match res {
            Ok(id) => {
                if t.proto == PROTO_TCP && self.ct.tracks_windows() {
                    if let Some(seg) = segment(frame, p) {
                        self.ct.open_window(id, &seg);
                    }
                }
            }
            Err(InsertError::Full) => return Fate::Engine(EngineDrop::TableFull),
            Err(InsertError::SourceQuota) => return Fate::Engine(EngineDrop::SourceQuota),
            Err(InsertError::SegmentQuota) => return Fate::Engine(EngineDrop::SegmentQuota),
            Err(InsertError::Exists(_)) => return Fate::Engine(EngineDrop::Invalid),
        }
        if d.monitor {
            self.counters.add(slot::NEW_MONITORED, 1);
            ev.kind = EventKind::WouldDeny;
        } else {
            self.counters.add(slot::NEW_ALLOWED, 1);
        }
        self.emit(ev);
        Fate::Forward
    }

    /// An ICMP informational message outside the query pairs (router
    /// solicitation, multicast listener messages, redirects, ...): the rules
    /// judge each one; nothing is tracked, so nothing passes back unasked.
    #[cold]
    #[inline(never)]
    pub(super) fn untracked(
        &mut self,
        snap: &PolicySnapshot,
        ingress: Ingress,
        p: &IpPacket,
        len: u32,
        now: u64,
    ) -> Fate {
        let Some((src, dst, d)) = self.judge_packet(snap, ingress, p) else {
            return Fate::Engine(EngineDrop::Spoofed);
        };
        if d.action == Action::Allow || d.monitor {
            return Fate::Forward;
        }
        self.counters.add(slot::NEW_DENIED, 1);
        let ev = self.opening_event(
            snap,
            EventKind::Denied,
            ingress,
            p,
            (src, dst),
            &d,
            len,
            now,
        );
        self.emit_denied(ev);
        Fate::Engine(EngineDrop::PolicyDeny)
    }

    /// A tracked connection judged under an older policy generation: judge it
    /// again as its initiator opened it. `None` when it may continue.
    #[cold]
    #[inline(never)]
    pub(super) fn rejudge(&mut self, snap: &PolicySnapshot, id: EntryId, now: u64) -> Option<Fate> {
        let e = *self.ct.entry(id)?;
        let key = e.key();
        let init = key.endpoint(e.initiator());
        let resp = key.endpoint(e.initiator().other());
        let policy = &snap.policy;
        let src = initiator_segment(snap, key.domain(), init.addr);
        let dst = place_dst(snap, resp.addr);
        let proto = key.proto();
        let d = policy.decide(&FlowQuery {
            src,
            dst,
            proto,
            port: e.svc(),
        });
        self.counters.add(slot::REJUDGED, 1);
        let rule = rule_index(d.rule);
        if d.action == Action::Deny {
            self.close(snap, id, EventKind::Revoked, now);
            return Some(Fate::Engine(EngineDrop::Revoked));
        }
        self.ct
            .set_judgement(id, snap.generation, rule, verdict_flags(d.log, d.monitor));
        None
    }

    /// An ICMP error: related to a tracked connection passes; otherwise the
    /// rules judge it like a new flow (never tracked). Related means: it goes
    /// back to the sender of the packet it quotes, it is not a redirect, and
    /// the quoted connection is live and allowed under the current policy.
    #[cold]
    #[inline(never)]
    pub(super) fn icmp_error(
        &mut self,
        snap: &PolicySnapshot,
        ingress: Ingress,
        i: usize,
        p: &IpPacket,
        now: u64,
    ) -> Fate {
        let t = &p.tuple;
        // Pass 1 keyed the quoted packet: its source is the key's endpoint on
        // the side the quote's source is (a zero key when unreadable).
        let quoted_src = self.keys[i].endpoint(self.key_side[i]).addr;
        let back_to_sender = quoted_src == t.dst && quoted_src != 0;
        let redirect = t.proto == ICMP && t.svc == ICMP_REDIRECT;
        if back_to_sender && !redirect {
            if let Some(id) = self.looked_up(i) {
                let (expired, current) = self.status(id, snap, now);
                if !expired {
                    if current {
                        return Fate::Forward;
                    }
                    return match self.rejudge(snap, id, now) {
                        None => Fate::Forward,
                        Some(fate) => fate,
                    };
                }
            }
            // Hashed by its outer addresses: the connection it quotes may
            // be another worker's.
            if self.hops_left > 0 {
                return Fate::HandOff;
            }
        }
        match self.judge_packet(snap, ingress, p) {
            None => Fate::Engine(EngineDrop::Spoofed),
            Some((_, _, d)) if d.action == Action::Allow => Fate::Forward,
            Some(_) => Fate::Engine(EngineDrop::IcmpUnrelated),
        }
    }

    /// The event of a packet judged as the first of its flow.
    #[allow(
        clippy::too_many_arguments,
        reason = "one event, every field named once"
    )]
    fn opening_event(
        &self,
        snap: &PolicySnapshot,
        kind: EventKind,
        ingress: Ingress,
        p: &IpPacket,
        (src, dst): (SegIdx, SegIdx),
        d: &Decision,
        len: u32,
        now: u64,
    ) -> FlowEvent {
        FlowEvent {
            kind,
            time_ns: now,
            worker: self.cfg.worker,
            generation: snap.generation,
            rule: rule_index(d.rule),
            logged: d.log,
            monitor: d.monitor,
            src_segment: snap.policy.segment_id(src).0,
            dst_segment: snap.policy.segment_id(dst).0,
            tuple: p.tuple,
            side: Some(ingress.side),
            packets: [1, 0],
            bytes: [u64::from(len), 0],
            duration_ns: 0,
            repeats: 0,
        }
    }

    /// Place a packet (source with anti-spoofing by VLAN and zone,
    /// destination) and judge it by the rules, as a packet on its own.
    /// `None`: its source is spoofed.
    pub(super) fn judge_packet(
        &self,
        snap: &PolicySnapshot,
        ingress: Ingress,
        p: &IpPacket,
    ) -> Option<(SegIdx, SegIdx, Decision)> {
        let t = &p.tuple;
        let zone = self.ingress_zone(snap, ingress, p.outer_vlan, p.vlan);
        let src = place_src(snap, placement_vlan(p.outer_vlan, p.vlan), t.src, zone).ok()?;
        let dst = place_dst(snap, t.dst);
        let d = snap.policy.decide(&FlowQuery {
            src,
            dst,
            proto: t.proto,
            port: t.svc,
        });
        Some((src, dst, d))
    }

    /// A denial event, folded with its repeats and rate-limited (see [`crate::fold`]).
    #[cold]
    pub(super) fn emit_denied(&mut self, mut ev: FlowEvent) {
        if !wants(self.cfg.event_mode, &ev) {
            return;
        }
        let t = &ev.tuple;
        match self
            .folder
            .denied(t.src, ev.dst_segment, t.proto, t.svc, ev.time_ns)
        {
            FoldVerdict::Report { repeats } => {
                ev.repeats = repeats;
                self.emit(ev);
            }
            FoldVerdict::Suppress => self.counters.add(slot::EVENTS_SUPPRESSED, 1),
        }
    }
}

/// The rule index an event and the counters use for a decision.
#[inline]
pub(super) fn rule_index(r: RuleRef) -> u32 {
    match r {
        RuleRef::Rule(r) => r,
        RuleRef::Default => RULE_DEFAULT,
    }
}

/// The flag recording the wire side the initiator's first packet entered on.
#[inline]
pub(super) fn initiator_side(side: Side) -> ConnFlags {
    if side == Side::B {
        ConnFlags::INITIATOR_ON_B
    } else {
        ConnFlags::NONE
    }
}

/// The connection flags of a verdict.
#[inline]
pub(super) fn verdict_flags(log: bool, monitor: bool) -> ConnFlags {
    let mut flags = ConnFlags::NONE;
    if log {
        flags = flags | ConnFlags::LOG;
    }
    if monitor {
        flags = flags | ConnFlags::MONITOR;
    }
    flags
}

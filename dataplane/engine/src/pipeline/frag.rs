//! The pipeline side of virtual reassembly (see [`crate::fragments`]).

use super::*;
use bulkhead_packet::{fragment_info, FragInfo};

impl Pipeline {
    /// Hand every first-fragment verdict owed to another worker to `f`.
    pub fn take_verdicts(&mut self, mut f: impl FnMut(u16, FragmentVerdict)) {
        for (to, v) in self.verdicts_out.drain(..) {
            f(to, v);
        }
    }

    /// A first fragment's verdict from the worker that judged it.
    pub fn apply_verdict(&mut self, v: FragmentVerdict, now: u64) {
        self.fragments.first(v.key, now, v.forward, v.first_len);
    }

    /// A first fragment was judged: its datagram's later fragments follow.
    #[cold]
    pub(super) fn first_fragment(
        &mut self,
        p: &IpPacket,
        frame: &[u8],
        wire: u16,
        fate: Fate,
        now: u64,
    ) {
        let frag = fragment_info(frame, p);
        // The fragmentable part the first fragment carries (later fragments'
        // offsets count from its start), so that no later fragment may
        // overwrite any of it: with IPv6, extension headers after the
        // fragment header are part of it.
        let payload = u32::from(p.ip_len).saturating_sub(u32::from(frag.data));
        // Only a judgement of the datagram itself is a verdict for its later
        // fragments: a first fragment dropped as spoofed, invalid or for
        // want of room says nothing about the datagram it claims to start
        // (else a forged first fragment could condemn a victim's datagram).
        if !matches!(
            fate,
            Fate::Forward | Fate::Engine(EngineDrop::PolicyDeny | EngineDrop::Revoked)
        ) {
            return;
        }
        let key = datagram_key(p, &frag, wire);
        let forward = fate == Fate::Forward;
        self.fragments.first(key, now, forward, payload);
        if self.origin != self.cfg.worker && self.verdicts_out.len() < self.verdicts_out.capacity()
        {
            let v = FragmentVerdict {
                key,
                forward,
                first_len: payload,
            };
            self.verdicts_out.push((self.origin, v));
        }
    }

    /// A later fragment: its datagram's verdict, or held for it.
    #[cold]
    #[inline(never)]
    pub(super) fn later_fragment(
        &mut self,
        p: &IpPacket,
        frame: &[u8],
        wire: u16,
        now: u64,
    ) -> Fate {
        let frag = fragment_info(frame, p);
        let payload = u32::from(p.ip_len) - (u32::from(p.l4_offset) - u32::from(p.l3_offset));
        let offset = u32::from(frag.offset) * 8;
        match self.fragments.later(
            datagram_key(p, &frag, wire),
            offset,
            payload,
            frag.more,
            now,
        ) {
            Later::Forward => Fate::Forward,
            Later::Drop => Fate::Engine(EngineDrop::Fragment),
            Later::Overlap => Fate::Engine(EngineDrop::FragmentOverlap),
            Later::Hold(slot) => Fate::Held(slot),
            Later::NoRoom => Fate::Engine(EngineDrop::FragmentTimeout),
        }
    }

    /// Release held fragments past their deadline, and hand every decided
    /// hold slot to `f` with its fate (forward, or the drop it was counted
    /// as). Call between bursts.
    pub fn release_fragments(&mut self, now: u64, mut f: impl FnMut(u16, Fate)) {
        self.fragments.expire(now);
        let counters = &mut self.counters;
        self.fragments.take_released(|slot, r| {
            let fate = match r {
                Release::Forward => Fate::Forward,
                Release::Drop => Fate::Engine(EngineDrop::Fragment),
                Release::Timeout => Fate::Engine(EngineDrop::FragmentTimeout),
                Release::Overlap => Fate::Engine(EngineDrop::FragmentOverlap),
            };
            counters.drop(fate);
            f(slot, fate);
        });
    }
}

/// The datagram a fragment belongs to.
#[inline]
pub(super) fn datagram_key(p: &IpPacket, frag: &FragInfo, wire: u16) -> DatagramKey {
    DatagramKey {
        domain: wire_domain(wire, p.outer_vlan, p.vlan),
        src: p.tuple.src,
        dst: p.tuple.dst,
        proto: frag.proto,
        id: frag.id,
    }
}

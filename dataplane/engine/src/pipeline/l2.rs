//! ARP and neighbour discovery: never judged by the rules, validated and
//! spoof-checked; router advertisements only from router zones.

use super::*;

impl Pipeline {
    /// ARP: never judged by the rules, but a host may only announce an
    /// address of its own segment (the same anti-spoofing as IP). An ARP
    /// probe (sender 0.0.0.0, RFC 5227) announces nothing.
    #[cold]
    #[inline(never)]
    pub(super) fn arp(&mut self, snap: &PolicySnapshot, ingress: Ingress, a: &Arp) -> Fate {
        let vlan = placement_vlan(a.outer_vlan, a.vlan);
        let zone = self.ingress_zone(snap, ingress, a.outer_vlan, a.vlan);
        if a.sender != 0 && snap.policy.place_src_v4(vlan, a.sender, zone).is_err() {
            return Fate::Engine(EngineDrop::ArpSpoofed);
        }
        self.counters.add(slot::PASSED_L2, 1);
        Fate::Forward
    }

    /// IPv6 neighbour discovery (validated by the parser): the source and an
    /// advertisement's target pass the same anti-spoofing as IP; router
    /// advertisements pass only from router zones (RA guard, RFC 6105).
    #[cold]
    #[inline(never)]
    pub(super) fn nd(
        &mut self,
        snap: &PolicySnapshot,
        ingress: Ingress,
        frame: &[u8],
        p: &IpPacket,
    ) -> Fate {
        let t = &p.tuple;
        if t.svc == ND_ROUTER_ADVERTISEMENT
            && !self.zones.is_router_zone(ingress, p.outer_vlan, p.vlan)
        {
            return Fate::Engine(EngineDrop::RaGuard);
        }
        let vlan = placement_vlan(p.outer_vlan, p.vlan);
        let zone = self.ingress_zone(snap, ingress, p.outer_vlan, p.vlan);
        let announces = |a: Addr| a != 0 && snap.policy.place_src_v6(vlan, a, zone).is_err();
        if announces(t.src) {
            return Fate::Engine(EngineDrop::NdSpoofed);
        }
        if t.svc == ND_NEIGHBOR_ADVERTISEMENT
            && bulkhead_packet::nd_target(frame, p).is_some_and(announces)
        {
            return Fate::Engine(EngineDrop::NdSpoofed);
        }
        self.counters.add(slot::PASSED_L2, 1);
        Fate::Forward
    }
}

//! Placement and keys: segments of addresses, ingress zones, connection
//! keys and the TCP segment fields window tracking reads.

use super::*;

impl Pipeline {
    /// The zone a frame entered in, as bits of the snapshot's policy; `None`
    /// when the policy binds no segment to zones (nothing to check).
    #[inline]
    pub(super) fn ingress_zone(
        &self,
        snap: &PolicySnapshot,
        ingress: Ingress,
        outer: Option<u16>,
        inner: Option<u16>,
    ) -> Option<ZoneMask> {
        if !snap.policy.has_zones() {
            return None;
        }
        Some(
            self.zones
                .zone_of(ingress, outer, inner)
                .map_or(0, |z| snap.policy.zone_mask(z)),
        )
    }
}

/// The request type a quoted ICMP query is tracked under (0 for others).
#[inline]
/// The connection key of the packet an ICMP error quotes (cold: errors are
/// rare; a zero key, which matches nothing, if the quote cannot be read).
#[cold]
pub(super) fn quoted_key(frame: &[u8], p: &IpPacket, domain: u32) -> (ConnKey, KeySide) {
    match quoted_flow(frame, p) {
        Some(q) => conn_key(domain, &q.tuple, quoted_icmp_type(&q.tuple)),
        None => (ConnKey::default(), KeySide::A),
    }
}

pub(super) fn quoted_icmp_type(t: &FlowTuple) -> u8 {
    let icmp = if t.v6 { 58 } else { ICMP };
    if t.proto != icmp {
        return 0;
    }
    u8::try_from(t.svc)
        .ok()
        .and_then(|ty| icmp_query(t.v6, ty))
        .map_or(0, |q| q.request_type)
}

/// The VLAN that places a frame in a segment: the outermost tag (the only
/// tag of a single-tagged frame, the service tag of a QinQ frame, which
/// names the attachment), so anti-spoofing by VLAN holds for double-tagged
/// hosts too. The inner tag still keeps their connections apart (domain).
#[inline]
pub(super) fn placement_vlan(outer: Option<u16>, inner: Option<u16>) -> Option<u16> {
    outer.or(inner)
}

#[inline]
pub(super) fn place_dst(snap: &PolicySnapshot, a: Addr) -> SegIdx {
    match addr_to_v4(a) {
        Some(v4) => snap.policy.place_dst_v4(v4),
        None => snap.policy.place_dst_v6(a),
    }
}

#[inline]
pub(super) fn place_src(
    snap: &PolicySnapshot,
    vlan: Option<u16>,
    a: Addr,
    zone: Option<ZoneMask>,
) -> Result<SegIdx, PlaceError> {
    match addr_to_v4(a) {
        Some(v4) => snap.policy.place_src_v4(vlan, v4, zone),
        None => snap.policy.place_src_v6(vlan, a, zone),
    }
}

/// The TCP segment of a packet, for window tracking.
#[inline]
pub(super) fn segment(frame: &[u8], p: &IpPacket) -> Option<Segment> {
    let s = tcp_seq(frame, p)?;
    Some(Segment {
        flags: p.tcp_flags,
        seq: s.seq,
        ack: s.ack,
        window: s.window,
        wscale: s.wscale,
        len: s.payload,
    })
}

/// The connection key of a flow seen in a frame of VLAN `domain`.
#[inline]
pub(super) fn conn_key(domain: u32, t: &FlowTuple, icmp_type: u8) -> (ConnKey, KeySide) {
    ConnKey::new(
        domain,
        Endpoint {
            addr: t.src,
            port: t.sport,
        },
        Endpoint {
            addr: t.dst,
            port: t.dport,
        },
        t.proto,
        icmp_type,
    )
}

/// Segment of a connection's initiator under `snap`, as the rules place a
/// source: the VLAN's segment if listed, else the longest prefix.
pub(super) fn initiator_segment(snap: &PolicySnapshot, domain: u32, addr: Addr) -> SegIdx {
    let (outer, inner) = domain_vlans(domain);
    match placement_vlan(outer, inner).and_then(|v| snap.policy.vlan_segment(v)) {
        Some(s) => s,
        None => place_dst(snap, addr),
    }
}

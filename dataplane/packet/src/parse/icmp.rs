//! ICMP and ICMPv6 beyond the header: query pairs, the packet an error
//! quotes, and neighbour discovery's RFC 4861 checks.

use super::*;

/// The request/reply pair an ICMP (`v6` false) or ICMPv6 type belongs to.
#[inline]
pub const fn icmp_query(v6: bool, ty: u8) -> Option<IcmpQuery> {
    let (request_type, is_request) = if v6 {
        match ty {
            128 => (128, true),
            129 => (128, false),
            _ => return None,
        }
    } else {
        match ty {
            8 | 13 | 15 | 17 => (ty, true),
            0 => (8, false),
            14 | 16 | 18 => (ty - 1, false),
            _ => return None,
        }
    };
    Some(IcmpQuery {
        request_type,
        is_request,
    })
}

/// ICMPv4 types that quote the offending packet.
#[inline(always)]
pub(super) fn icmp4_is_error(ty: u8) -> bool {
    matches!(ty, 3 | 4 | 5 | 11 | 12)
}

/// ICMPv6 types that quote the offending packet.
#[inline(always)]
pub(super) fn icmp6_is_error(ty: u8) -> bool {
    matches!(ty, 1..=4)
}

/// RFC 4861 validity of a neighbour discovery message at the IP layer: sent
/// on-link only (hop limit 255, which no router forwards), no extension
/// header before it (RFC 6980 forbids fragments; other headers only hide the
/// message from RA guards), and bounded in size.
#[cold]
pub(super) fn check_neighbor_discovery(ip: &Ip, ty: u8, len: usize) -> Result<(), DropReason> {
    if ip.fragment != Fragment::None {
        return Err(DropReason::FragmentedNeighborDiscovery);
    }
    if ip.l4 != ip.l3 + 40 {
        return Err(DropReason::NeighborDiscoveryExtensionHeader);
    }
    if ip.ttl != 255 {
        return Err(DropReason::NeighborDiscoveryHopLimit);
    }
    if ip.end - ip.l3 > MAX_ND_BYTES {
        return Err(DropReason::OversizedNeighborDiscovery);
    }
    // RFC 4861's minimum lengths: RS 8, RA 16, NS and NA 24 bytes.
    let min = match ty {
        133 => 8,
        134 => 16,
        _ => 24,
    };
    if len < min {
        return Err(DropReason::TruncatedNeighborDiscovery);
    }
    Ok(())
}

/// The target address a neighbour advertisement (136) or solicitation (135)
/// names: bytes 8 to 24 of the ICMPv6 message (the parser refused shorter
/// ones). `None` for other types.
#[inline]
pub fn nd_target(frame: &[u8], p: &IpPacket) -> Option<Addr> {
    if !matches!(p.tuple.svc, 135 | 136) {
        return None;
    }
    let t = chunk::<16>(frame, usize::from(p.l4_offset) + 8)?;
    if usize::from(p.l4_offset) + 24 > usize::from(p.l3_offset) + usize::from(p.ip_len) {
        return None;
    }
    Some(u128::from_be_bytes(*t))
}

/// The packet an ICMP or ICMPv6 error quotes (`None` for other packets).
/// The parser has validated the quote; this reads it again from the frame.
#[cold]
pub fn quoted_flow(frame: &[u8], p: &IpPacket) -> Option<QuotedFlow> {
    if p.icmp != IcmpClass::Error {
        return None;
    }
    let end = usize::from(p.l3_offset) + usize::from(p.ip_len);
    let quote = frame.get(usize::from(p.l4_offset) + 8..end)?;
    parse_quote(quote, p.tuple.v6)
        .ok()
        .map(|tuple| QuotedFlow { tuple })
}

/// The flow an ICMP error quotes: an IP header of the error's own version,
/// then at least 8 bytes of its transport header (fewer are enough for
/// protocols without ports). Cold: errors are rare.
#[cold]
pub(super) fn parse_quote(q: &[u8], v6: bool) -> Result<FlowTuple, DropReason> {
    let (src, dst, proto, l4, nonfirst) = if v6 {
        let h = q
            .first_chunk::<40>()
            .ok_or(DropReason::TruncatedIcmpQuote)?;
        if h[0] >> 4 != 6 {
            return Err(DropReason::BadIcmpQuote);
        }
        // The quote is cut short by design: walk within what was quoted.
        let chain = walk_ipv6_chain(q, 40, q.len(), h[6]).map_err(|r| match r {
            DropReason::TruncatedIpv6Extension => DropReason::TruncatedIcmpQuote,
            _ => DropReason::BadIcmpQuote,
        })?;
        (
            addr_v6(h, 8),
            addr_v6(h, 24),
            chain.proto,
            chain.l4,
            chain.fragment == Fragment::NonFirst,
        )
    } else {
        let h = q
            .first_chunk::<20>()
            .ok_or(DropReason::TruncatedIcmpQuote)?;
        if h[0] >> 4 != 4 {
            return Err(DropReason::BadIcmpQuote);
        }
        let ihl = usize::from(h[0] & 0x0f) * 4;
        if ihl < 20 || usize::from(be16(h[2], h[3])) < ihl {
            return Err(DropReason::BadIcmpQuote);
        }
        let nonfirst = be16(h[6], h[7]) & 0x1fff != 0;
        let (proto, l4) = if nonfirst {
            (h[9], ihl)
        } else {
            skip_ah(q, h[9], ihl, q.len()).map_err(|_| DropReason::TruncatedIcmpQuote)?
        };
        (addr_v4(h, 12), addr_v4(h, 16), proto, l4, nonfirst)
    };
    if v6 && (is_v4_mapped(src) || is_v4_mapped(dst)) {
        return Err(DropReason::BadIcmpQuote);
    }
    let mut t = FlowTuple {
        src,
        dst,
        sport: 0,
        dport: 0,
        proto,
        v6,
        svc: 0,
    };
    if nonfirst {
        return Ok(t);
    }
    let l4 = q.get(l4..).ok_or(DropReason::TruncatedIcmpQuote)?;
    match proto {
        proto::TCP | proto::UDP | proto::SCTP => {
            let h = l4
                .first_chunk::<8>()
                .ok_or(DropReason::TruncatedIcmpQuote)?;
            t.sport = be16(h[0], h[1]);
            t.dport = be16(h[2], h[3]);
            t.svc = t.dport;
        }
        proto::ICMP | proto::ICMPV6 if (proto == proto::ICMPV6) == v6 => {
            let h = l4
                .first_chunk::<8>()
                .ok_or(DropReason::TruncatedIcmpQuote)?;
            let ty = h[0];
            // RFC 1122 / 4443: never an error about an error.
            if v6 && icmp6_is_error(ty) || !v6 && icmp4_is_error(ty) {
                return Err(DropReason::BadIcmpQuote);
            }
            t.svc = u16::from(ty);
            if icmp_query(v6, ty).is_some() {
                t.sport = be16(h[4], h[5]);
                t.dport = t.sport;
            }
        }
        _ => {}
    }
    Ok(t)
}

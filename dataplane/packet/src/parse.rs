//! The frame parser: one Ethernet frame in, one [`Parsed`] out.
//!
//! Zero-copy and allocation-free: it reads the frame through bounds-checked
//! `get`/`first_chunk` into fixed-size arrays and returns a small `Copy`
//! value. Every malformed input becomes a [`DropReason`]; nothing panics.

use crate::checksum;
use crate::flow::{v4_to_addr, Addr, FlowTuple};
use crate::DropReason;

mod icmp;
mod tcp;

use icmp::{check_neighbor_discovery, icmp4_is_error, icmp6_is_error, parse_quote};
pub use icmp::{icmp_query, nd_target, quoted_flow};
pub use tcp::{tcp_flags_valid, tcp_seq, TcpSeq};

/// Ethernet header length (no FCS: the NIC strips it).
pub const ETH_HEADER_LEN: usize = 14;
/// Ethertype of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// Ethertype of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// Ethertype of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// TPID of an 802.1Q customer tag.
pub const TPID_8021Q: u16 = 0x8100;
/// TPID of an 802.1ad service tag (QinQ outer tag).
pub const TPID_8021AD: u16 = 0x88a8;
/// Pre-standard QinQ outer TPID still sent by some switches.
pub const TPID_QINQ_LEGACY: u16 = 0x9100;
/// Most VLAN tags accepted in one frame (QinQ).
pub const MAX_VLAN_TAGS: usize = 2;
/// Most IPv6 extension headers walked before the frame is dropped
/// ([`DropReason::TooManyExtensionHeaders`]).
pub const MAX_IPV6_EXT_HEADERS: usize = 8;

/// IP protocol numbers the parser knows.
pub mod proto {
    /// IPv6 hop-by-hop options.
    pub const HOP_BY_HOP: u8 = 0;
    /// ICMP (IPv4 only).
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 routing header.
    pub const ROUTING: u8 = 43;
    /// IPv6 fragment header.
    pub const FRAGMENT: u8 = 44;
    /// GRE.
    pub const GRE: u8 = 47;
    /// ESP (ends the IPv6 header chain: what follows is encrypted).
    pub const ESP: u8 = 50;
    /// Authentication header.
    pub const AH: u8 = 51;
    /// ICMPv6 (IPv6 only).
    pub const ICMPV6: u8 = 58;
    /// IPv6 "no next header".
    pub const NO_NEXT_HEADER: u8 = 59;
    /// IPv6 destination options.
    pub const DEST_OPTS: u8 = 60;
    /// SCTP.
    pub const SCTP: u8 = 132;
}

/// TCP flag bits (byte 13 of the TCP header).
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// Parser knobs. `Default` is what the dataplane runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseConfig {
    /// Verify the IPv4 header checksum ([`DropReason::BadIpv4Checksum`]).
    /// Default off: NICs verify it on receive (DPDK reports the result in the
    /// mbuf's offload flags, which the engine can check for free), and a
    /// bump-in-the-wire forwards the header untouched, so a wrong checksum
    /// is the receiver's to drop. Costs one pass over 20 to 60 bytes.
    pub verify_ipv4_checksum: bool,
    /// Drop TCP segments whose flags no conforming stack sends
    /// ([`DropReason::BadTcpFlags`]). Default on. Ignoring PSH, ECE and CWR,
    /// the valid combinations are SYN, SYN+URG, SYN+ACK, RST, RST+ACK,
    /// FIN+ACK, FIN+ACK+URG, ACK and ACK+URG: this refuses null, Xmas and
    /// FIN scans, SYN+FIN and SYN+RST.
    pub check_tcp_flags: bool,
}

impl Default for ParseConfig {
    fn default() -> Self {
        ParseConfig {
            verify_ipv4_checksum: false,
            check_tcp_flags: true,
        }
    }
}

/// Where a packet sits in a fragmented datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Fragment {
    /// Not fragmented (including IPv6 atomic fragments: offset 0, M clear).
    #[default]
    None,
    /// Offset 0 with more fragments: carries the transport header, parsed as usual.
    First,
    /// Offset above 0: no transport header; the tuple's ports and `svc` are 0.
    /// For IPv6, `proto` is the fragment header's next header (which may be
    /// another extension header: the chain is not walked past it).
    NonFirst,
}

/// The packet an ICMP or ICMPv6 error quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct QuotedFlow {
    /// The quoted packet's tuple as its original sender sent it: `src` is the
    /// host the error is about a packet from (normally the error's
    /// destination). Ports (or the echo identifier) come from the first 8
    /// bytes of the quoted transport header, by the same rules as
    /// [`FlowTuple`]; a quoted non-first fragment has ports 0.
    pub tuple: FlowTuple,
}

/// An ICMP or ICMPv6 query message, tracked as a request/reply pair: echo,
/// timestamp, information and address mask (ICMP); echo (ICMPv6). The
/// identifier is in both ports of the tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IcmpQuery {
    /// The request type of the pair (8, 13, 15, 17; ICMPv6 128), also for a
    /// reply: both directions of one exchange share it.
    pub request_type: u8,
    /// A request (opens a connection) rather than a reply (only passes back).
    pub is_request: bool,
}

/// What an ICMP or ICMPv6 message is to connection tracking.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum IcmpClass {
    /// Not ICMP, or a non-first fragment.
    #[default]
    None,
    /// A query type of a request/reply pair.
    Query(IcmpQuery),
    /// An error quoting another packet (see [`quoted_flow`]).
    Error,
    /// Any other informational type: judged per packet, never tracked.
    Informational,
}

/// An Ethernet/IPv4 ARP message (hardware type 1, protocol 0x0800).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Arp {
    /// 1 request, 2 reply (other operations are refused).
    pub op: u16,
    /// Sender protocol address (host order): the address the sender announces.
    pub sender: u32,
    /// Target protocol address (host order).
    pub target: u32,
    /// As in [`IpPacket::vlan`].
    pub vlan: Option<u16>,
    /// As in [`IpPacket::outer_vlan`].
    pub outer_vlan: Option<u16>,
}

/// Most bytes an ARP message may occupy after its L2 header: the 28-byte
/// message plus the padding of a minimum-size Ethernet frame. Anything
/// longer carries data no ARP implementation sends.
pub const MAX_ARP_BYTES: usize = 46;
/// Most bytes of an IPv6 neighbour discovery packet (header included): the
/// IPv6 minimum MTU. Router advertisements with many options fit.
pub const MAX_ND_BYTES: usize = 1280;

/// A parsed IP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct IpPacket {
    /// The flow tuple (see [`FlowTuple`] for the port semantics). For ICMP
    /// errors: ports 0, `svc` = type; the quoted flow is read by
    /// [`quoted_flow`] (errors are rare: the hot structure does not carry it).
    pub tuple: FlowTuple,
    /// The ingress VLAN, the one segments are defined by: the only tag of a
    /// single-tagged frame, or the inner (customer, C-tag) of a QinQ frame.
    /// `None` when untagged or the VLAN ID is 0 (priority-tagged frame).
    pub vlan: Option<u16>,
    /// The outer (service, S-tag) VLAN ID of a QinQ frame; `None` otherwise.
    pub outer_vlan: Option<u16>,
    /// Offset of the IP header in the frame: 14, 18 or 22 (Ethernet and up
    /// to two VLAN tags), hence a byte.
    pub l3_offset: u8,
    /// Offset of the transport header (after IPv4 options and IPv6 extension
    /// headers); for a non-first fragment, of the fragment's payload.
    pub l4_offset: u16,
    /// Bytes of the IP packet (header and payload); frame bytes beyond
    /// `l3_offset + ip_len` are Ethernet padding.
    /// Never above 65535: a larger IPv6 packet is dropped
    /// ([`DropReason::BadIpTotalLength`]); one DPDK mbuf segment cannot
    /// hold one anyway.
    pub ip_len: u16,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// TCP flags; 0 for other protocols and non-first fragments.
    pub tcp_flags: u8,
    /// Fragment position.
    pub fragment: Fragment,
    /// What an ICMP / ICMPv6 message is to connection tracking.
    pub icmp: IcmpClass,
}

/// The position of a fragment in its datagram (all 0 when not fragmented):
/// read from the frame by [`fragment_info`] when needed, so that the hot
/// structure stays small for the packets that are not fragments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FragInfo {
    /// The datagram's identification: IPv4's 16 bits, IPv6's 32.
    pub id: u32,
    /// Offset of the fragment's payload in the datagram, in 8-byte units.
    pub offset: u16,
    /// Where the fragmentable part starts, from the IP header: the IPv4
    /// header length, or just after the IPv6 fragment header (extension
    /// headers after it belong to the fragmentable part).
    pub data: u16,
    /// More fragments follow (clear on the last one).
    pub more: bool,
    /// The protocol field of the IP header itself (IPv4; before any AH
    /// walk), the same in every fragment of a datagram.
    pub proto: u8,
}

/// What a frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Parsed {
    /// An IP packet for the rules and connection tracking.
    Ip(IpPacket),
    /// An Ethernet/IPv4 ARP request or reply (never judged by the rules;
    /// its sender address is subject to anti-spoofing).
    Arp(Arp),
    /// ICMPv6 neighbour discovery, types 133 to 136, validated as RFC 4861
    /// asks (hop limit 255, no extension header, not fragmented, at most
    /// [`MAX_ND_BYTES`]). Never judged by the rules. Redirects (137) are
    /// ordinary ICMPv6 packets, judged by the rules.
    NeighborDiscovery(IpPacket),
    /// Another ethertype (or an 802.3 length field below 0x0600).
    NonIp {
        /// The ethertype after any VLAN tags.
        ethertype: u16,
    },
    /// Refused; count it under this reason.
    Drop(DropReason),
}

/// Hot structures stay small enough to keep a burst of results in L1.
const _: () =
    assert!(core::mem::size_of::<IpPacket>() <= 80 && core::mem::size_of::<Parsed>() <= 96);

/// What a frame is, from [`parse_into`]: as [`Parsed`], with the IP
/// packet of `Ip` and `NeighborDiscovery` written to the caller's slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// An IP packet (in the slot).
    Ip,
    /// ICMPv6 neighbour discovery (in the slot); see [`Parsed::NeighborDiscovery`].
    NeighborDiscovery,
    /// See [`Parsed::Arp`].
    Arp(Arp),
    /// See [`Parsed::NonIp`].
    NonIp {
        /// The ethertype after any VLAN tags.
        ethertype: u16,
    },
    /// Refused; count it under this reason.
    Drop(DropReason),
}

/// Parse one Ethernet frame (without FCS). Never panics, never allocates.
#[inline]
pub fn parse(frame: &[u8], cfg: &ParseConfig) -> Parsed {
    let mut ip = IpPacket::default();
    match parse_into(frame, cfg, &mut ip) {
        FrameKind::Ip => Parsed::Ip(ip),
        FrameKind::NeighborDiscovery => Parsed::NeighborDiscovery(ip),
        FrameKind::Arp(a) => Parsed::Arp(a),
        FrameKind::NonIp { ethertype } => Parsed::NonIp { ethertype },
        FrameKind::Drop(r) => Parsed::Drop(r),
    }
}

/// [`parse`], writing an IP packet's fields straight into `ip` (left as it
/// was for other frames): the burst loop parses into its per-packet slots.
/// Building the packet in a temporary and copying it out costs a
/// store-forwarding stall per packet (many narrow field stores read back
/// by wide loads), about a sixth of the established path's time.
#[inline]
pub fn parse_into(frame: &[u8], cfg: &ParseConfig, ip: &mut IpPacket) -> FrameKind {
    match parse_frame(frame, cfg, ip) {
        Ok(k) => k,
        Err(r) => FrameKind::Drop(r),
    }
}

/// `N` bytes at `at`, if the buffer holds them.
#[inline(always)]
fn chunk<const N: usize>(b: &[u8], at: usize) -> Option<&[u8; N]> {
    b.get(at..)?.first_chunk::<N>()
}

#[inline(always)]
fn be16(a: u8, b: u8) -> u16 {
    u16::from_be_bytes([a, b])
}

#[inline(always)]
fn addr_v6(b: &[u8; 40], at: usize) -> Addr {
    u128::from_be_bytes(core::array::from_fn(|i| b[at + i]))
}

#[inline(always)]
fn addr_v4(b: &[u8; 20], at: usize) -> Addr {
    v4_to_addr(u32::from_be_bytes(core::array::from_fn(|i| b[at + i])))
}

/// The layer 2 outcome.
#[derive(Clone, Copy)]
struct L2 {
    ethertype: u16,
    l3: usize,
    vlan: Option<u16>,
    outer_vlan: Option<u16>,
}

#[inline(always)]
fn is_tpid(t: u16) -> bool {
    matches!(t, TPID_8021Q | TPID_8021AD | TPID_QINQ_LEGACY)
}

#[inline(always)]
fn parse_frame(
    frame: &[u8],
    cfg: &ParseConfig,
    out: &mut IpPacket,
) -> Result<FrameKind, DropReason> {
    let l2 = parse_l2(frame)?;
    match l2.ethertype {
        ETHERTYPE_IPV4 => parse_ipv4(frame, &l2, cfg, out),
        ETHERTYPE_IPV6 => parse_ipv6(frame, &l2, cfg, out),
        ETHERTYPE_ARP => parse_arp(frame, &l2),
        ethertype => Ok(FrameKind::NonIp { ethertype }),
    }
}

#[inline(always)]
fn parse_l2(frame: &[u8]) -> Result<L2, DropReason> {
    let eth = frame
        .first_chunk::<ETH_HEADER_LEN>()
        .ok_or(DropReason::TruncatedEthernet)?;
    let ethertype = be16(eth[12], eth[13]);
    if !is_tpid(ethertype) {
        return Ok(L2 {
            ethertype,
            l3: ETH_HEADER_LEN,
            vlan: None,
            outer_vlan: None,
        });
    }
    parse_vlan_tags(frame, ethertype)
}

#[inline]
fn parse_vlan_tags(frame: &[u8], mut ethertype: u16) -> Result<L2, DropReason> {
    let mut off = ETH_HEADER_LEN;
    let mut vids = [0u16; MAX_VLAN_TAGS];
    let mut n = 0;
    while is_tpid(ethertype) {
        let slot = vids.get_mut(n).ok_or(DropReason::TooManyVlanTags)?;
        let tag = chunk::<4>(frame, off).ok_or(DropReason::TruncatedVlan)?;
        let vid = be16(tag[0], tag[1]) & 0x0fff;
        if vid == 0x0fff {
            return Err(DropReason::ReservedVlanId);
        }
        *slot = vid;
        n += 1;
        off += 4;
        ethertype = be16(tag[2], tag[3]);
    }
    let nonzero = |v: u16| (v != 0).then_some(v);
    let (vlan, outer_vlan) = match n {
        1 => (nonzero(vids[0]), None),
        _ => (nonzero(vids[1]), nonzero(vids[0])),
    };
    Ok(L2 {
        ethertype,
        l3: off,
        vlan,
        outer_vlan,
    })
}

#[cold]
fn parse_arp(frame: &[u8], l2: &L2) -> Result<FrameKind, DropReason> {
    let l3 = l2.l3;
    let h = chunk::<8>(frame, l3).ok_or(DropReason::TruncatedArp)?;
    let need = 8 + 2 * (usize::from(h[4]) + usize::from(h[5]));
    if frame.len() - l3 < need {
        return Err(DropReason::TruncatedArp);
    }
    // Ethernet hardware (1), IPv4 protocol, 6- and 4-byte addresses: the
    // only ARP a virtual wire between IP segments carries.
    if be16(h[0], h[1]) != 1 || be16(h[2], h[3]) != ETHERTYPE_IPV4 || h[4] != 6 || h[5] != 4 {
        return Err(DropReason::UnsupportedArp);
    }
    let op = be16(h[6], h[7]);
    if !matches!(op, 1 | 2) {
        return Err(DropReason::UnsupportedArp);
    }
    if frame.len() - l3 > MAX_ARP_BYTES {
        return Err(DropReason::OversizedArp);
    }
    let m = chunk::<28>(frame, l3).ok_or(DropReason::TruncatedArp)?;
    let sender = u32::from_be_bytes([m[14], m[15], m[16], m[17]]);
    let target = u32::from_be_bytes([m[24], m[25], m[26], m[27]]);
    Ok(FrameKind::Arp(Arp {
        op,
        sender,
        target,
        vlan: l2.vlan,
        outer_vlan: l2.outer_vlan,
    }))
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`): never valid on the wire
/// (RFC 4291 section 2.5.5.2, RFC 6052 section 5.1).
#[inline(always)]
fn is_v4_mapped(a: Addr) -> bool {
    crate::flow::addr_to_v4(a).is_some()
}

/// What both IP versions hand to the transport parser.
#[derive(Clone, Copy)]
struct Ip {
    src: Addr,
    dst: Addr,
    proto: u8,
    v6: bool,
    ttl: u8,
    l3: usize,
    l4: usize,
    end: usize,
    fragment: Fragment,
}

#[inline(always)]
fn parse_ipv4(
    frame: &[u8],
    l2: &L2,
    cfg: &ParseConfig,
    out: &mut IpPacket,
) -> Result<FrameKind, DropReason> {
    let l3 = l2.l3;
    let h = chunk::<20>(frame, l3).ok_or(DropReason::TruncatedIpv4)?;
    if h[0] >> 4 != 4 {
        return Err(DropReason::BadIpVersion);
    }
    let ihl = usize::from(h[0] & 0x0f) * 4;
    if ihl < 20 {
        return Err(DropReason::BadIpv4HeaderLength);
    }
    // chunk succeeded, so l3 + 20 <= frame.len().
    let avail = frame.len() - l3;
    if avail < ihl {
        return Err(DropReason::TruncatedIpv4);
    }
    let total = usize::from(be16(h[2], h[3]));
    if total < ihl {
        return Err(DropReason::BadIpTotalLength);
    }
    if total > avail {
        return Err(DropReason::IpLengthExceedsFrame);
    }
    if cfg.verify_ipv4_checksum && !frame.get(l3..l3 + ihl).is_some_and(checksum::verify) {
        return Err(DropReason::BadIpv4Checksum);
    }
    let proto = h[9];
    let frag = be16(h[6], h[7]);
    let offset = frag & 0x1fff;
    let more = frag & 0x2000 != 0;
    let fragment = fragment_kind(offset, more, proto, total - ihl)?;
    let (proto, l4) = if proto == proto::AH && fragment != Fragment::NonFirst {
        skip_ah(frame, proto, l3 + ihl, l3 + total)?
    } else {
        (proto, l3 + ihl)
    };
    let ip = Ip {
        src: addr_v4(h, 12),
        dst: addr_v4(h, 16),
        proto,
        v6: false,
        ttl: h[8],
        l3,
        l4,
        end: l3 + total,
        fragment,
    };
    finish(frame, l2, ip, cfg, out)
}

/// Walk past IPv4 authentication headers (RFC 4302), as the IPv6 chain walk
/// does, so both versions judge the protocol AH protects: at most
/// [`MAX_IPV6_EXT_HEADERS`] of them, each within `b[..end]`. Cold: AH is rare.
#[cold]
fn skip_ah(b: &[u8], mut proto: u8, mut off: usize, end: usize) -> Result<(u8, usize), DropReason> {
    let mut count = 0;
    while proto == proto::AH {
        if count == MAX_IPV6_EXT_HEADERS {
            return Err(DropReason::TooManyExtensionHeaders);
        }
        let h = b
            .get(off..end)
            .and_then(<[u8]>::first_chunk::<8>)
            .ok_or(DropReason::TruncatedAh)?;
        let len = (usize::from(h[1]) + 2) * 4;
        if len > end - off {
            return Err(DropReason::TruncatedAh);
        }
        proto = h[0];
        off += len;
        count += 1;
    }
    Ok((proto, off))
}

/// Classify a fragment from its offset (8-byte units) and M flag; refuse the
/// two fragment attacks of RFC 1858 / "ping of death".
#[inline(always)]
fn fragment_kind(
    offset: u16,
    more: bool,
    proto: u8,
    payload: usize,
) -> Result<Fragment, DropReason> {
    if offset == 0 {
        return Ok(if more {
            Fragment::First
        } else {
            Fragment::None
        });
    }
    // Reassembly would exceed 65535 bytes, or a fragment at byte 8 rewrites
    // the TCP flags of the first one.
    if usize::from(offset) * 8 + payload > 65535 || (offset == 1 && proto == proto::TCP) {
        return Err(DropReason::BadFragment);
    }
    Ok(Fragment::NonFirst)
}

#[inline(always)]
fn parse_ipv6(
    frame: &[u8],
    l2: &L2,
    cfg: &ParseConfig,
    out: &mut IpPacket,
) -> Result<FrameKind, DropReason> {
    let l3 = l2.l3;
    let h = chunk::<40>(frame, l3).ok_or(DropReason::TruncatedIpv6)?;
    if h[0] >> 4 != 6 {
        return Err(DropReason::BadIpVersion);
    }
    let total = 40 + usize::from(be16(h[4], h[5]));
    if total > usize::from(u16::MAX) {
        return Err(DropReason::BadIpTotalLength);
    }
    if total > frame.len() - l3 {
        return Err(DropReason::IpLengthExceedsFrame);
    }
    let end = l3 + total;
    let (src, dst) = (addr_v6(h, 8), addr_v6(h, 24));
    if is_v4_mapped(src) || is_v4_mapped(dst) {
        return Err(DropReason::Ipv4MappedAddress);
    }
    let chain = walk_ipv6_chain(frame, l3 + 40, end, h[6])?;
    let ip = Ip {
        src,
        dst,
        proto: chain.proto,
        v6: true,
        ttl: h[7],
        l3,
        l4: chain.l4,
        end,
        fragment: chain.fragment,
    };
    finish(frame, l2, ip, cfg, out)
}

/// Where fragment `p` (parsed from `frame`; `p.fragment` not `None`) sits
/// in its datagram, read again from its IP header (IPv4) or fragment header
/// (IPv6). All 0 for a packet that is not a fragment. Only fragments pay
/// for this; `parse` already validated what is read here.
pub fn fragment_info(frame: &[u8], p: &IpPacket) -> FragInfo {
    if p.fragment == Fragment::None {
        return FragInfo::default();
    }
    let l3 = usize::from(p.l3_offset);
    let end = l3 + usize::from(p.ip_len);
    if p.tuple.v6 {
        match chunk::<40>(frame, l3).map(|h| walk_ipv6_chain(frame, l3 + 40, end, h[6])) {
            Some(Ok(chain)) => FragInfo {
                data: chain.frag.data.saturating_sub(l3 as u16),
                ..chain.frag
            },
            _ => FragInfo::default(),
        }
    } else {
        match chunk::<20>(frame, l3) {
            Some(h) => {
                let field = be16(h[6], h[7]);
                FragInfo {
                    id: u32::from(be16(h[4], h[5])),
                    offset: field & 0x1fff,
                    data: u16::from(h[0] & 0x0f) * 4,
                    more: field & 0x2000 != 0,
                    proto: h[9],
                }
            }
            None => FragInfo::default(),
        }
    }
}

/// The end of an IPv6 extension header chain.
#[derive(Clone, Copy)]
struct Chain {
    proto: u8,
    l4: usize,
    fragment: Fragment,
    frag: FragInfo,
}

/// Walk the extension headers from `off` (next header `next`) within
/// `b[..end]`: hop-by-hop (first only), routing, destination options,
/// fragment (once) and AH, at most [`MAX_IPV6_EXT_HEADERS`]. Anything else
/// (transport, ESP, no next header, unknown) ends the chain. A non-first
/// fragment ends it too: what follows its fragment header is not a header.
fn walk_ipv6_chain(
    b: &[u8],
    mut off: usize,
    end: usize,
    mut next: u8,
) -> Result<Chain, DropReason> {
    let mut fragment = Fragment::None;
    let mut frag = FragInfo::default();
    let mut seen_fragment = false;
    let mut count = 0;
    loop {
        if !matches!(
            next,
            proto::HOP_BY_HOP | proto::ROUTING | proto::DEST_OPTS | proto::FRAGMENT | proto::AH
        ) {
            return Ok(Chain {
                proto: next,
                l4: off,
                fragment,
                frag,
            });
        }
        if count == MAX_IPV6_EXT_HEADERS {
            return Err(DropReason::TooManyExtensionHeaders);
        }
        // Every extension header is at least 8 bytes long.
        let h = b
            .get(off..end)
            .and_then(<[u8]>::first_chunk::<8>)
            .ok_or(DropReason::TruncatedIpv6Extension)?;
        let len = match next {
            proto::HOP_BY_HOP if count != 0 => return Err(DropReason::BadIpv6ExtensionChain),
            proto::ROUTING if h[2] == 0 => return Err(DropReason::DeprecatedRoutingHeader),
            proto::FRAGMENT => {
                if seen_fragment {
                    return Err(DropReason::BadIpv6ExtensionChain);
                }
                seen_fragment = true;
                let field = be16(h[2], h[3]);
                let offset = field >> 3;
                let more = field & 1 != 0;
                // off + 8 <= end: the chunk above succeeded within ..end.
                fragment = fragment_kind(offset, more, h[0], end - off - 8)?;
                frag = FragInfo {
                    id: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                    offset,
                    // Absolute here; `parse_ipv6` makes it relative.
                    data: u16::try_from(off + 8).unwrap_or(u16::MAX),
                    more,
                    proto: 0,
                };
                if fragment == Fragment::NonFirst {
                    return Ok(Chain {
                        proto: h[0],
                        l4: off + 8,
                        fragment,
                        frag,
                    });
                }
                8
            }
            proto::AH => (usize::from(h[1]) + 2) * 4,
            _ => (usize::from(h[1]) + 1) * 8,
        };
        if len > end - off {
            return Err(DropReason::TruncatedIpv6Extension);
        }
        next = h[0];
        off += len;
        count += 1;
    }
}

/// The transport part of a packet: ports, flags, quoted flow.
#[inline(always)]
fn finish(
    frame: &[u8],
    l2: &L2,
    ip: Ip,
    cfg: &ParseConfig,
    out: &mut IpPacket,
) -> Result<FrameKind, DropReason> {
    let mut tuple = FlowTuple {
        src: ip.src,
        dst: ip.dst,
        sport: 0,
        dport: 0,
        proto: ip.proto,
        v6: ip.v6,
        svc: 0,
    };
    let mut tcp_flags = 0;
    let mut icmp = IcmpClass::None;
    let mut neighbor_discovery = false;
    if ip.fragment != Fragment::NonFirst {
        // l4 <= end <= frame.len() by construction; an empty slice would only
        // turn into a truncation drop below.
        let l4 = frame.get(ip.l4..ip.end).unwrap_or_default();
        // A first fragment that cannot hold its transport header is an attack.
        let short = |r| {
            if ip.fragment == Fragment::First {
                DropReason::TinyFragment
            } else {
                r
            }
        };
        match ip.proto {
            proto::TCP => {
                let h = l4
                    .first_chunk::<20>()
                    .ok_or(short(DropReason::TruncatedTcp))?;
                let data_offset = usize::from(h[12] >> 4) * 4;
                if data_offset < 20 {
                    return Err(DropReason::BadTcpHeaderLength);
                }
                if data_offset > l4.len() {
                    return Err(short(DropReason::BadTcpHeaderLength));
                }
                tcp_flags = h[13];
                if cfg.check_tcp_flags && !tcp_flags_valid(tcp_flags) {
                    return Err(DropReason::BadTcpFlags);
                }
                tuple.sport = be16(h[0], h[1]);
                tuple.dport = be16(h[2], h[3]);
                tuple.svc = tuple.dport;
            }
            proto::UDP => {
                let h = l4
                    .first_chunk::<8>()
                    .ok_or(short(DropReason::TruncatedUdp))?;
                let len = usize::from(be16(h[4], h[5]));
                // A first fragment's UDP length covers the whole datagram.
                if len < 8 || (len > l4.len() && ip.fragment == Fragment::None) {
                    return Err(DropReason::BadUdpLength);
                }
                tuple.sport = be16(h[0], h[1]);
                tuple.dport = be16(h[2], h[3]);
                tuple.svc = tuple.dport;
            }
            proto::SCTP => {
                let h = l4
                    .first_chunk::<12>()
                    .ok_or(short(DropReason::TruncatedSctp))?;
                tuple.sport = be16(h[0], h[1]);
                tuple.dport = be16(h[2], h[3]);
                tuple.svc = tuple.dport;
            }
            proto::ICMP | proto::ICMPV6 if (ip.proto == proto::ICMPV6) == ip.v6 => {
                let h = l4
                    .first_chunk::<8>()
                    .ok_or(short(DropReason::TruncatedIcmp))?;
                let ty = h[0];
                tuple.svc = u16::from(ty);
                if let Some(q) = icmp_query(ip.v6, ty) {
                    let id = be16(h[4], h[5]);
                    tuple.sport = id;
                    tuple.dport = id;
                    icmp = IcmpClass::Query(q);
                } else if ip.v6 && icmp6_is_error(ty) || !ip.v6 && icmp4_is_error(ty) {
                    let quote = l4.get(8..).unwrap_or_default();
                    // Validated here; read again by `quoted_flow` when needed.
                    parse_quote(quote, ip.v6)?;
                    icmp = IcmpClass::Error;
                } else if ip.v6 && matches!(ty, 133..=136) {
                    check_neighbor_discovery(&ip, ty, l4.len())?;
                    neighbor_discovery = true;
                } else {
                    icmp = IcmpClass::Informational;
                }
            }
            _ => {}
        }
    }
    // The casts cannot truncate: l3 <= 22 (two VLAN tags at most); l4 - l3
    // is at most 60 (IPv4) or 40 + 8 * 2048 (IPv6: MAX_IPV6_EXT_HEADERS
    // headers of at most 2048 bytes); ip_len <= 65535 (the IPv4 total length
    // is a u16, larger IPv6 packets were dropped above).
    *out = IpPacket {
        tuple,
        vlan: l2.vlan,
        outer_vlan: l2.outer_vlan,
        l3_offset: ip.l3 as u8,
        l4_offset: ip.l4 as u16,
        ip_len: (ip.end - ip.l3) as u16,
        ttl: ip.ttl,
        tcp_flags,
        fragment: ip.fragment,
        icmp,
    };
    Ok(if neighbor_discovery {
        FrameKind::NeighborDiscovery
    } else {
        FrameKind::Ip
    })
}

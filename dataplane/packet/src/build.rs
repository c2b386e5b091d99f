//! Builders of valid frames, for tests and benchmarks (they allocate: never
//! use them on the hot path).
//!
//! Each builder clears the caller's `Vec` and writes one complete Ethernet
//! frame into it: MAC addresses and VLAN tags from the [`FrameSpec`], an IP
//! header with correct lengths and checksum, a transport header with correct
//! length and checksum (pseudo header included; CRC32c for SCTP), then zero
//! padding up to [`FrameSpec::min_len`] (60 by default, the Ethernet minimum
//! without FCS). Reusing one `Vec` across calls keeps benchmarks from
//! allocating after the first frame.
//!
//! ```
//! use bulkhead_packet::build::{self, FrameSpec, Tcp};
//! use bulkhead_packet::{parse, tcp_flags::SYN, ParseConfig, Parsed};
//!
//! let mut frame = Vec::new();
//! let spec = FrameSpec::v4([10, 0, 0, 1], [10, 0, 0, 2]).vlan(10);
//! build::tcp(&mut frame, &spec, &Tcp::new(40000, 443, SYN));
//! let Parsed::Ip(p) = parse(&frame, &ParseConfig::default()) else { panic!() };
//! assert_eq!((p.vlan, p.tuple.dport, p.tcp_flags), (Some(10), 443, SYN));
//! ```
//!
//! Builders never panic. Out-of-range requests are clamped and documented:
//! IPv4 options are zero-padded to a multiple of 4 and cut at 40 bytes; a
//! packet longer than 65535 bytes of IP is cut to 65535.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::checksum;
use crate::parse::{proto, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, TPID_8021AD, TPID_8021Q};

/// Default source MAC (locally administered).
pub const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// Default destination MAC (locally administered).
pub const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// VLAN tagging of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Vlan {
    /// No tag.
    #[default]
    Untagged,
    /// One 802.1Q tag (TPID 0x8100).
    Tagged(u16),
    /// 802.1ad: an outer service tag (TPID 0x88a8) then an inner customer tag (0x8100).
    QinQ {
        /// S-tag VLAN ID.
        outer: u16,
        /// C-tag VLAN ID (what the parser reports as `vlan`).
        inner: u16,
    },
    /// Two 802.1Q tags (outer TPID 0x8100), as older switches stack them.
    DoubleTagged {
        /// Outer VLAN ID.
        outer: u16,
        /// Inner VLAN ID.
        inner: u16,
    },
}

/// Source and destination addresses; the family decides IPv4 or IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addrs {
    V4 { src: Ipv4Addr, dst: Ipv4Addr },
    V6 { src: Ipv6Addr, dst: Ipv6Addr },
}

/// Fragment position: `offset` in 8-byte units, `more` = the M flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frag {
    pub offset: u16,
    pub more: bool,
}

/// An IPv6 extension header, written in its minimal form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ext {
    /// Hop-by-hop options: 8 bytes (one PadN).
    HopByHop,
    /// Destination options: 8 bytes (one PadN).
    DestOpts,
    /// Routing header of the given type, segments left 0: 8 bytes.
    Routing { routing_type: u8 },
    /// Authentication header with a 12-byte ICV: 24 bytes.
    Ah,
}

impl Ext {
    fn code(self) -> u8 {
        match self {
            Ext::HopByHop => proto::HOP_BY_HOP,
            Ext::DestOpts => proto::DEST_OPTS,
            Ext::Routing { .. } => proto::ROUTING,
            Ext::Ah => proto::AH,
        }
    }
}

/// Everything about a frame below the transport header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameSpec {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub vlan: Vlan,
    pub addrs: Addrs,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// IPv4 identification (low 16 bits) or IPv6 fragment identification.
    pub ip_id: u32,
    /// Write a fragment: IPv4 flags and offset, or an IPv6 fragment header
    /// placed after the `ipv6_ext` headers.
    pub fragment: Option<Frag>,
    /// Raw IPv4 options (zero-padded to a multiple of 4, cut at 40 bytes).
    pub ipv4_options: &'static [u8],
    /// IPv6 extension headers, in this order, before any fragment header.
    pub ipv6_ext: &'static [Ext],
    /// Pad the frame with zeros to at least this many bytes.
    pub min_len: usize,
}

impl FrameSpec {
    /// An untagged IPv4 frame between the default MACs, TTL 64.
    pub fn v4(src: impl Into<Ipv4Addr>, dst: impl Into<Ipv4Addr>) -> Self {
        Self::with_addrs(Addrs::V4 {
            src: src.into(),
            dst: dst.into(),
        })
    }

    /// An untagged IPv6 frame between the default MACs, hop limit 64.
    pub fn v6(src: impl Into<Ipv6Addr>, dst: impl Into<Ipv6Addr>) -> Self {
        Self::with_addrs(Addrs::V6 {
            src: src.into(),
            dst: dst.into(),
        })
    }

    /// An untagged frame with these addresses and defaults for the rest.
    pub fn with_addrs(addrs: Addrs) -> Self {
        FrameSpec {
            src_mac: SRC_MAC,
            dst_mac: DST_MAC,
            vlan: Vlan::Untagged,
            addrs,
            ttl: 64,
            ip_id: 0x1234,
            fragment: None,
            ipv4_options: &[],
            ipv6_ext: &[],
            min_len: 60,
        }
    }

    /// One 802.1Q tag.
    pub fn vlan(mut self, vid: u16) -> Self {
        self.vlan = Vlan::Tagged(vid);
        self
    }

    /// An 802.1ad S-tag then an 802.1Q C-tag.
    pub fn qinq(mut self, outer: u16, inner: u16) -> Self {
        self.vlan = Vlan::QinQ { outer, inner };
        self
    }

    /// Any tagging.
    pub fn tagging(mut self, vlan: Vlan) -> Self {
        self.vlan = vlan;
        self
    }

    pub fn ttl(mut self, ttl: u8) -> Self {
        self.ttl = ttl;
        self
    }

    /// A fragment at `offset` 8-byte units, with the M flag `more`.
    pub fn fragment(mut self, offset: u16, more: bool) -> Self {
        self.fragment = Some(Frag { offset, more });
        self
    }

    pub fn ipv4_options(mut self, options: &'static [u8]) -> Self {
        self.ipv4_options = options;
        self
    }

    pub fn ipv6_ext(mut self, ext: &'static [Ext]) -> Self {
        self.ipv6_ext = ext;
        self
    }

    pub fn min_len(mut self, min_len: usize) -> Self {
        self.min_len = min_len;
        self
    }

    /// The other direction: addresses and MACs swapped.
    pub fn reversed(mut self) -> Self {
        std::mem::swap(&mut self.src_mac, &mut self.dst_mac);
        self.addrs = match self.addrs {
            Addrs::V4 { src, dst } => Addrs::V4 { src: dst, dst: src },
            Addrs::V6 { src, dst } => Addrs::V6 { src: dst, dst: src },
        };
        self
    }

    fn is_v6(&self) -> bool {
        matches!(self.addrs, Addrs::V6 { .. })
    }
}

/// A TCP segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tcp<'a> {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// Raw TCP options (zero-padded to a multiple of 4, cut at 40 bytes).
    pub options: &'a [u8],
    pub payload: &'a [u8],
}

impl<'a> Tcp<'a> {
    /// Sequence 1000, acknowledgment 0 (1 when ACK is set), window 65535.
    pub fn new(sport: u16, dport: u16, flags: u8) -> Self {
        let ack = u32::from(flags & crate::tcp_flags::ACK != 0);
        Tcp {
            sport,
            dport,
            seq: 1000,
            ack,
            flags,
            window: 65535,
            options: &[],
            payload: &[],
        }
    }
    pub fn seq(mut self, seq: u32) -> Self {
        self.seq = seq;
        self
    }
    pub fn ack(mut self, ack: u32) -> Self {
        self.ack = ack;
        self
    }
    pub fn window(mut self, window: u16) -> Self {
        self.window = window;
        self
    }
    pub fn options(mut self, options: &'a [u8]) -> Self {
        self.options = options;
        self
    }
    pub fn payload(mut self, payload: &'a [u8]) -> Self {
        self.payload = payload;
        self
    }
}

/// ICMP echo direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Echo {
    /// ICMP type 8, ICMPv6 type 128.
    Request,
    /// ICMP type 0, ICMPv6 type 129.
    Reply,
}

/// ARP operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArpOp {
    Request = 1,
    Reply = 2,
}

fn padded(options: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let len = options.len().min(40).next_multiple_of(4);
    options
        .iter()
        .copied()
        .chain(std::iter::repeat(0))
        .take(len)
}

fn put16(buf: &mut [u8], at: usize, v: u16) {
    if let Some(s) = buf.get_mut(at..at + 2) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

/// Ethernet header and VLAN tags.
fn l2(buf: &mut Vec<u8>, spec: &FrameSpec, ethertype: u16) {
    buf.clear();
    buf.extend_from_slice(&spec.dst_mac);
    buf.extend_from_slice(&spec.src_mac);
    let tags: &[(u16, u16)] = match spec.vlan {
        Vlan::Untagged => &[],
        Vlan::Tagged(v) => &[(TPID_8021Q, v)],
        Vlan::QinQ { outer, inner } => &[(TPID_8021AD, outer), (TPID_8021Q, inner)],
        Vlan::DoubleTagged { outer, inner } => &[(TPID_8021Q, outer), (TPID_8021Q, inner)],
    };
    for &(tpid, vid) in tags {
        buf.extend_from_slice(&tpid.to_be_bytes());
        buf.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    }
    buf.extend_from_slice(&ethertype.to_be_bytes());
}

fn pad(buf: &mut Vec<u8>, spec: &FrameSpec) {
    if buf.len() < spec.min_len {
        buf.resize(spec.min_len, 0);
    }
}

/// Where the transport checksum lives, and how it is computed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum L4Fix {
    /// Leave the transport bytes alone.
    None,
    /// Internet checksum at this offset, with the pseudo header.
    Pseudo(usize),
    /// Internet checksum at offset 2, without pseudo header (ICMPv4).
    Plain,
    /// UDP: length at 4, checksum at 6 (0 sent as 0xffff).
    Udp,
    /// SCTP: CRC32c at 8.
    Crc32c,
}

/// Write an IP frame whose transport part `l4` writes, then fix lengths and checksums.
fn ip_frame(
    buf: &mut Vec<u8>,
    spec: &FrameSpec,
    l4_proto: u8,
    fix: L4Fix,
    l4: impl FnOnce(&mut Vec<u8>),
) {
    let ethertype = if spec.is_v6() {
        ETHERTYPE_IPV6
    } else {
        ETHERTYPE_IPV4
    };
    l2(buf, spec, ethertype);
    let l3 = buf.len();
    let mut pseudo = 0u64;
    match spec.addrs {
        Addrs::V4 { src, dst } => {
            let opts: Vec<u8> = padded(spec.ipv4_options).collect();
            let ihl = 5 + opts.len() / 4;
            let frag = spec
                .fragment
                .map_or(0, |f| (f.offset & 0x1fff) | if f.more { 0x2000 } else { 0 });
            buf.push(0x40 | ihl as u8);
            buf.push(0); // DSCP/ECN
            buf.extend_from_slice(&[0, 0]); // total length, below
            buf.extend_from_slice(&(spec.ip_id as u16).to_be_bytes());
            buf.extend_from_slice(&frag.to_be_bytes());
            buf.extend_from_slice(&[spec.ttl, l4_proto, 0, 0]);
            buf.extend_from_slice(&src.octets());
            buf.extend_from_slice(&dst.octets());
            buf.extend_from_slice(&opts);
            pseudo = checksum::sum(&src.octets(), pseudo);
            pseudo = checksum::sum(&dst.octets(), pseudo);
        }
        Addrs::V6 { src, dst } => {
            let codes = spec
                .ipv6_ext
                .iter()
                .map(|e| e.code())
                .chain(spec.fragment.map(|_| proto::FRAGMENT))
                .chain(std::iter::once(l4_proto));
            let first = codes.clone().next().unwrap_or(l4_proto);
            buf.extend_from_slice(&[0x60, 0, 0, 0, 0, 0, first, spec.ttl]);
            buf.extend_from_slice(&src.octets());
            buf.extend_from_slice(&dst.octets());
            let mut nexts = codes.skip(1);
            for ext in spec.ipv6_ext {
                let next = nexts.next().unwrap_or(l4_proto);
                match *ext {
                    Ext::HopByHop | Ext::DestOpts => {
                        buf.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0])
                    }
                    Ext::Routing { routing_type } => {
                        buf.extend_from_slice(&[next, 0, routing_type, 0, 0, 0, 0, 0])
                    }
                    Ext::Ah => {
                        buf.extend_from_slice(&[next, 4, 0, 0]);
                        buf.extend_from_slice(&0x100u32.to_be_bytes()); // SPI
                        buf.extend_from_slice(&1u32.to_be_bytes()); // sequence
                        buf.extend_from_slice(&[0; 12]); // ICV
                    }
                }
            }
            if let Some(f) = spec.fragment {
                let next = nexts.next().unwrap_or(l4_proto);
                buf.extend_from_slice(&[next, 0]);
                buf.extend_from_slice(&((f.offset << 3) | u16::from(f.more)).to_be_bytes());
                buf.extend_from_slice(&spec.ip_id.to_be_bytes());
            }
            pseudo = checksum::sum(&src.octets(), pseudo);
            pseudo = checksum::sum(&dst.octets(), pseudo);
        }
    }
    let l4_off = buf.len();
    l4(buf);
    let max_ip = if spec.is_v6() { 40 + 65535 } else { 65535 };
    buf.truncate(l3 + max_ip);
    let ip_len = buf.len() - l3;
    let l4_len = buf.len() - l4_off;
    if spec.is_v6() {
        put16(buf, l3 + 4, (ip_len - 40) as u16);
    } else {
        put16(buf, l3 + 2, ip_len as u16);
    }
    // Pseudo header: protocol and upper-layer length (RFC 768 / 8200).
    pseudo += u64::from(l4_proto) + l4_len as u64;
    let non_first = spec.fragment.is_some_and(|f| f.offset != 0);
    if !non_first {
        match fix {
            L4Fix::None => {}
            L4Fix::Pseudo(at) => {
                let c = checksum::checksum(buf.get(l4_off..).unwrap_or_default(), pseudo);
                put16(buf, l4_off + at, c);
            }
            L4Fix::Plain => {
                let c = checksum::checksum(buf.get(l4_off..).unwrap_or_default(), 0);
                put16(buf, l4_off + 2, c);
            }
            L4Fix::Udp => {
                put16(buf, l4_off + 4, l4_len.min(0xffff) as u16);
                let c = checksum::checksum(buf.get(l4_off..).unwrap_or_default(), pseudo);
                put16(buf, l4_off + 6, if c == 0 { 0xffff } else { c });
            }
            L4Fix::Crc32c => {
                let crc = checksum::crc32c(buf.get(l4_off..).unwrap_or_default());
                if let Some(s) = buf.get_mut(l4_off + 8..l4_off + 12) {
                    // SCTP transmits the CRC32c least significant byte first.
                    s.copy_from_slice(&crc.to_le_bytes());
                }
            }
        }
    }
    if !spec.is_v6() {
        let hlen = l4_off - l3;
        let c = checksum::checksum(buf.get(l3..l3 + hlen).unwrap_or_default(), 0);
        put16(buf, l3 + 10, c);
    }
    pad(buf, spec);
}

/// A TCP segment.
pub fn tcp(buf: &mut Vec<u8>, spec: &FrameSpec, tcp: &Tcp<'_>) {
    ip_frame(buf, spec, proto::TCP, L4Fix::Pseudo(16), |b| {
        let opts: Vec<u8> = padded(tcp.options).collect();
        let data_offset = (5 + opts.len() / 4) as u8;
        b.extend_from_slice(&tcp.sport.to_be_bytes());
        b.extend_from_slice(&tcp.dport.to_be_bytes());
        b.extend_from_slice(&tcp.seq.to_be_bytes());
        b.extend_from_slice(&tcp.ack.to_be_bytes());
        b.extend_from_slice(&[data_offset << 4, tcp.flags]);
        b.extend_from_slice(&tcp.window.to_be_bytes());
        b.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
        b.extend_from_slice(&opts);
        b.extend_from_slice(tcp.payload);
    });
}

/// A UDP datagram.
pub fn udp(buf: &mut Vec<u8>, spec: &FrameSpec, sport: u16, dport: u16, payload: &[u8]) {
    ip_frame(buf, spec, proto::UDP, L4Fix::Udp, |b| {
        b.extend_from_slice(&sport.to_be_bytes());
        b.extend_from_slice(&dport.to_be_bytes());
        b.extend_from_slice(&[0, 0, 0, 0]);
        b.extend_from_slice(payload);
    });
}

/// An SCTP packet; `chunks` are written as given after the common header.
pub fn sctp(buf: &mut Vec<u8>, spec: &FrameSpec, sport: u16, dport: u16, chunks: &[u8]) {
    ip_frame(buf, spec, proto::SCTP, L4Fix::Crc32c, |b| {
        b.extend_from_slice(&sport.to_be_bytes());
        b.extend_from_slice(&dport.to_be_bytes());
        b.extend_from_slice(&1u32.to_be_bytes()); // verification tag
        b.extend_from_slice(&[0, 0, 0, 0]);
        b.extend_from_slice(chunks);
    });
}

/// Any ICMP message (ICMPv6 for an IPv6 spec): type, code, the 4 bytes after
/// the checksum, then `body`.
pub fn icmp(buf: &mut Vec<u8>, spec: &FrameSpec, ty: u8, code: u8, rest: [u8; 4], body: &[u8]) {
    let (p, fix) = if spec.is_v6() {
        (proto::ICMPV6, L4Fix::Pseudo(2))
    } else {
        (proto::ICMP, L4Fix::Plain)
    };
    ip_frame(buf, spec, p, fix, |b| {
        b.extend_from_slice(&[ty, code, 0, 0]);
        b.extend_from_slice(&rest);
        b.extend_from_slice(body);
    });
}

/// An ICMP / ICMPv6 echo request or reply.
pub fn icmp_echo(
    buf: &mut Vec<u8>,
    spec: &FrameSpec,
    echo: Echo,
    id: u16,
    seq: u16,
    payload: &[u8],
) {
    let ty = match (spec.is_v6(), echo) {
        (false, Echo::Request) => 8,
        (false, Echo::Reply) => 0,
        (true, Echo::Request) => 128,
        (true, Echo::Reply) => 129,
    };
    let [a, b] = id.to_be_bytes();
    let [c, d] = seq.to_be_bytes();
    icmp(buf, spec, ty, 0, [a, b, c, d], payload);
}

/// An ICMP / ICMPv6 error of type `ty` quoting `quoted`, an IP packet as
/// [`ip_packet`] returns it (slice it to quote less). The 4 bytes after the
/// checksum are zero (unused; next-hop MTU and pointer 0).
pub fn icmp_error(buf: &mut Vec<u8>, spec: &FrameSpec, ty: u8, code: u8, quoted: &[u8]) {
    icmp(buf, spec, ty, code, [0; 4], quoted);
}

/// An IP packet with protocol `ip_proto` and a raw payload, no transport
/// fix-up: for other protocols, non-first fragments and malformed headers.
pub fn ip(buf: &mut Vec<u8>, spec: &FrameSpec, ip_proto: u8, payload: &[u8]) {
    ip_frame(buf, spec, ip_proto, L4Fix::None, |b| {
        b.extend_from_slice(payload)
    });
}

/// An ARP request or reply for IPv4 over Ethernet, from `spec.src_mac`
/// (the target MAC is `spec.dst_mac` in a reply, zero in a request).
pub fn arp(
    buf: &mut Vec<u8>,
    spec: &FrameSpec,
    op: ArpOp,
    sender_ip: Ipv4Addr,
    target_ip: Ipv4Addr,
) {
    l2(buf, spec, ETHERTYPE_ARP);
    buf.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
    buf.extend_from_slice(&(op as u16).to_be_bytes());
    buf.extend_from_slice(&spec.src_mac);
    buf.extend_from_slice(&sender_ip.octets());
    buf.extend_from_slice(&if op == ArpOp::Reply {
        spec.dst_mac
    } else {
        [0; 6]
    });
    buf.extend_from_slice(&target_ip.octets());
    pad(buf, spec);
}

/// A frame of any ethertype with a raw payload (VLAN tags from `spec`).
pub fn ethernet(buf: &mut Vec<u8>, spec: &FrameSpec, ethertype: u16, payload: &[u8]) {
    l2(buf, spec, ethertype);
    buf.extend_from_slice(payload);
    pad(buf, spec);
}

/// The IP packet inside a frame: from the IP header to the end given by its
/// length field (padding excluded). Empty when the frame is not IP or its
/// length field is out of range.
pub fn ip_packet(frame: &[u8]) -> &[u8] {
    let mut off = 12;
    loop {
        let Some(&[a, b]) = frame.get(off..off + 2) else {
            return &[];
        };
        off += 2;
        match u16::from_be_bytes([a, b]) {
            crate::TPID_8021Q | crate::TPID_8021AD | crate::TPID_QINQ_LEGACY => off += 2,
            ETHERTYPE_IPV4 => {
                let Some(&[x, y]) = frame.get(off + 2..off + 4) else {
                    return &[];
                };
                let len = usize::from(u16::from_be_bytes([x, y]));
                return frame.get(off..off + len).unwrap_or_default();
            }
            ETHERTYPE_IPV6 => {
                let Some(&[x, y]) = frame.get(off + 4..off + 6) else {
                    return &[];
                };
                let len = 40 + usize::from(u16::from_be_bytes([x, y]));
                return frame.get(off..off + len).unwrap_or_default();
            }
            _ => return &[],
        }
    }
}

//! Why the parser refused a frame. Each reason doubles as a counter index.

/// Defines [`DropReason`] with its metric label and description in one place,
/// so `ALL`, `COUNT`, `as_str` and `Display` can never disagree.
macro_rules! drop_reasons {
    ($( $(#[$doc:meta])* $name:ident => $label:literal, $msg:literal; )*) => {
        /// Why a frame was refused by [`parse`](crate::parse).
        ///
        /// The discriminants are dense from 0, so [`DropReason::index`] can index
        /// a per-worker counter array of length [`DropReason::COUNT`];
        /// [`DropReason::as_str`] is a snake_case metric label.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, thiserror::Error)]
        #[repr(u8)]
        pub enum DropReason {
            $( $(#[$doc])* #[error($msg)] $name, )*
        }

        impl DropReason {
            /// Every reason, in index order.
            pub const ALL: [DropReason; Self::COUNT] = [$(DropReason::$name,)*];
            /// Number of reasons (length of a counter array).
            pub const COUNT: usize = [$(DropReason::$name,)*].len();

            /// The snake_case name, usable as a metric label.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(DropReason::$name => $label,)*
                }
            }
        }
    };
}

drop_reasons! {
    /// Fewer than 14 bytes: no complete Ethernet header.
    TruncatedEthernet => "truncated_ethernet", "frame shorter than an Ethernet header";
    /// A VLAN TPID announces a tag the frame does not hold.
    TruncatedVlan => "truncated_vlan", "frame ends inside an 802.1Q tag";
    /// More than two stacked VLAN tags.
    TooManyVlanTags => "too_many_vlan_tags", "more than two stacked VLAN tags";
    /// VLAN ID 4095, reserved by IEEE 802.1Q.
    ReservedVlanId => "reserved_vlan_id", "reserved VLAN ID 4095";
    /// ARP shorter than its fixed header and the addresses it announces.
    TruncatedArp => "truncated_arp", "ARP message shorter than its addresses";
    /// Frame ends inside the IPv4 header (fixed part or options).
    TruncatedIpv4 => "truncated_ipv4", "frame ends inside the IPv4 header";
    /// Ethertype says IPv4 (IPv6) but the version nibble is not 4 (6).
    BadIpVersion => "bad_ip_version", "IP version does not match the ethertype";
    /// IPv4 IHL below 5.
    BadIpv4HeaderLength => "bad_ipv4_header_length", "IPv4 header length below 20 bytes";
    /// IPv4 header checksum wrong (only with `ParseConfig::verify_ipv4_checksum`).
    BadIpv4Checksum => "bad_ipv4_checksum", "IPv4 header checksum mismatch";
    /// IPv4 total length smaller than the header, or an IPv6 packet longer
    /// than 65535 bytes (jumbograms are not supported).
    BadIpTotalLength => "bad_ip_total_length", "IP length field out of range";
    /// The IP length fields claim more bytes than the frame holds.
    IpLengthExceedsFrame => "ip_length_exceeds_frame", "IP length exceeds the frame";
    /// A fragment reaching past 65535 bytes, or a TCP fragment at offset 8
    /// (RFC 1858 overlap attack).
    BadFragment => "bad_fragment", "fragment offset overflows or overlaps the TCP header";
    /// A first fragment too short to hold the transport header (RFC 1858).
    TinyFragment => "tiny_fragment", "first fragment shorter than the transport header";
    /// Frame ends inside the IPv6 fixed header.
    TruncatedIpv6 => "truncated_ipv6", "frame ends inside the IPv6 header";
    /// An IPv6 extension header reaches past the payload length.
    TruncatedIpv6Extension => "truncated_ipv6_extension", "IPv6 extension header exceeds the payload";
    /// Hop-by-hop options not first, or two fragment headers.
    BadIpv6ExtensionChain => "bad_ipv6_extension_chain", "malformed IPv6 extension header chain";
    /// More extension headers than [`MAX_IPV6_EXT_HEADERS`](crate::MAX_IPV6_EXT_HEADERS).
    TooManyExtensionHeaders => "too_many_extension_headers", "too many IPv6 extension headers";
    /// IPv6 routing header type 0, deprecated by RFC 5095.
    DeprecatedRoutingHeader => "deprecated_routing_header", "IPv6 type 0 routing header";
    /// IP payload shorter than a TCP header.
    TruncatedTcp => "truncated_tcp", "IP payload shorter than a TCP header";
    /// TCP data offset below 5 or past the end of the IP payload.
    BadTcpHeaderLength => "bad_tcp_header_length", "TCP data offset out of range";
    /// A TCP flag combination no conforming stack sends (SYN+FIN, no flags, ...).
    BadTcpFlags => "bad_tcp_flags", "invalid TCP flag combination";
    /// IP payload shorter than a UDP header.
    TruncatedUdp => "truncated_udp", "IP payload shorter than a UDP header";
    /// UDP length below 8 or above the IP payload.
    BadUdpLength => "bad_udp_length", "UDP length out of range";
    /// IP payload shorter than an SCTP common header.
    TruncatedSctp => "truncated_sctp", "IP payload shorter than an SCTP common header";
    /// IP payload shorter than an 8-byte ICMP / ICMPv6 header.
    TruncatedIcmp => "truncated_icmp", "IP payload shorter than an ICMP header";
    /// An ICMP error whose quote lacks the inner IP header or 8 bytes of its transport header.
    TruncatedIcmpQuote => "truncated_icmp_quote", "ICMP error quotes too little of the original packet";
    /// An ICMP error whose quote is not a well-formed packet of the same IP
    /// version, or quotes another ICMP error.
    BadIcmpQuote => "bad_icmp_quote", "ICMP error quotes a malformed packet";
    /// IPv6 neighbour discovery inside a fragment (RFC 6980 forbids it).
    FragmentedNeighborDiscovery => "fragmented_neighbor_discovery", "fragmented neighbour discovery message";
    /// Neighbour discovery with a hop limit other than 255: it crossed a
    /// router, so it is not from the link (RFC 4861).
    NeighborDiscoveryHopLimit => "nd_bad_hop_limit", "neighbour discovery hop limit is not 255";
    /// Neighbour discovery behind an IPv6 extension header.
    NeighborDiscoveryExtensionHeader => "nd_extension_header", "neighbour discovery behind an extension header";
    /// Neighbour discovery larger than [`MAX_ND_BYTES`](crate::MAX_ND_BYTES).
    OversizedNeighborDiscovery => "nd_oversized", "neighbour discovery message too large";
    /// Neighbour solicitation or advertisement without its target address.
    TruncatedNeighborDiscovery => "nd_truncated", "neighbour discovery message without its target";
    /// ARP for other than Ethernet/IPv4, or an operation other than request or reply.
    UnsupportedArp => "arp_unsupported", "ARP for other than Ethernet and IPv4, or not a request or reply";
    /// ARP longer than [`MAX_ARP_BYTES`](crate::MAX_ARP_BYTES): data no ARP carries.
    OversizedArp => "arp_oversized", "ARP message with trailing data";
    /// An IPv6 packet with an IPv4-mapped source or destination
    /// (`::ffff:0:0/96`), never valid on the wire (RFC 4291, RFC 6052).
    Ipv4MappedAddress => "ipv4_mapped_address", "IPv4-mapped IPv6 address on the wire";
    /// An IPv4 authentication header reaching past the packet.
    TruncatedAh => "truncated_ah", "authentication header exceeds the packet";
}

impl DropReason {
    /// Position in a counter array of length [`DropReason::COUNT`].
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// True for the reasons a frame cut short produces (as opposed to a
    /// well-delimited but malformed packet): cutting a valid frame anywhere
    /// before the end of its IP packet yields one of these.
    pub const fn is_truncation(self) -> bool {
        matches!(
            self,
            DropReason::TruncatedEthernet
                | DropReason::TruncatedVlan
                | DropReason::TruncatedArp
                | DropReason::TruncatedIpv4
                | DropReason::TruncatedIpv6
                | DropReason::IpLengthExceedsFrame
        )
    }
}

#[cfg(test)]
mod tests {
    use super::DropReason;

    #[test]
    fn index_is_dense_and_matches_all() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        assert_eq!(DropReason::ALL.len(), DropReason::COUNT);
    }

    #[test]
    fn labels_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for r in DropReason::ALL {
            let s = r.as_str();
            assert!(seen.insert(s), "duplicate label {s}");
            assert!(!s.is_empty());
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{s}"
            );
            assert!(!r.to_string().is_empty());
        }
    }
}

//! TCP beyond the ports: which flag combinations are valid, and the
//! sequence fields window tracking reads.

use super::*;

/// Bit `f` is set for each valid combination of FIN, SYN, RST, ACK, URG.
pub(super) const TCP_VALID_FLAGS: u64 = {
    use tcp_flags::{ACK, FIN, RST, SYN, URG};
    let valid = [
        SYN,
        SYN | URG,
        SYN | ACK,
        RST,
        RST | ACK,
        FIN | ACK,
        FIN | ACK | URG,
        ACK,
        ACK | URG,
    ];
    let mut mask = 0u64;
    let mut i = 0;
    while i < valid.len() {
        mask |= 1 << valid[i];
        i += 1;
    }
    mask
};

/// See [`ParseConfig::check_tcp_flags`].
#[inline(always)]
pub fn tcp_flags_valid(flags: u8) -> bool {
    use tcp_flags::{ACK, FIN, RST, SYN, URG};
    (TCP_VALID_FLAGS >> (flags & (FIN | SYN | RST | ACK | URG))) & 1 == 1
}

/// The sequence-space fields of a TCP segment, for window tracking.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TcpSeq {
    pub seq: u32,
    pub ack: u32,
    /// The window field (unscaled).
    pub window: u16,
    /// The window scale option (kind 3), read on SYNs only.
    pub wscale: Option<u8>,
    /// Payload bytes after the TCP header.
    pub payload: u32,
}

/// Read the sequence fields of a TCP packet the parser accepted (`None` for
/// anything else). Bounds-checked; options are walked only on SYNs, at most
/// 40 bytes.
#[inline]
pub fn tcp_seq(frame: &[u8], p: &IpPacket) -> Option<TcpSeq> {
    if p.tuple.proto != proto::TCP || p.fragment == Fragment::NonFirst {
        return None;
    }
    let l4 = usize::from(p.l4_offset);
    let end = usize::from(p.l3_offset) + usize::from(p.ip_len);
    let h = chunk::<20>(frame.get(..end)?, l4)?;
    let hlen = usize::from(h[12] >> 4) * 4;
    let wscale = if h[13] & tcp_flags::SYN != 0 {
        frame.get(l4 + 20..l4 + hlen).and_then(window_scale)
    } else {
        None
    };
    Some(TcpSeq {
        seq: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        ack: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
        window: be16(h[14], h[15]),
        wscale,
        payload: u32::try_from(end.saturating_sub(l4 + hlen)).unwrap_or(0),
    })
}

/// The window scale option among TCP options, if present and well formed.
#[cold]
pub(super) fn window_scale(opts: &[u8]) -> Option<u8> {
    let mut i = 0;
    while let Some(&kind) = opts.get(i) {
        match kind {
            0 => return None,
            1 => i += 1,
            _ => {
                let len = usize::from(*opts.get(i + 1)?);
                if len < 2 {
                    return None;
                }
                if kind == 3 && len == 3 {
                    return opts.get(i + 2).copied();
                }
                i += len;
            }
        }
    }
    None
}

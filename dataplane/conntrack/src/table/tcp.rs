//! TCP beside the state machine: the sequence windows kept for an entry
//! and a SYN on a live connection.

use super::*;

/// The TCP state kept beside an entry when window tracking is on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct TcpWindows {
    pub(super) windows: Windows,
    /// Sequence number plus one of the SYN seen on the live connection
    /// (`ConnFlags::SYN_AGAIN`): only a SYN-ACK acknowledging exactly it
    /// starts the connection over.
    pub(super) syn_again_ack: u32,
}

/// The window side of one TCP segment (see [`ConnTable::track_tcp`]):
/// handshake segments open the halves they start, a SYN-ACK answering a SYN
/// on a live connection starts both over; everything else is checked.
#[inline]
pub(super) fn window_fits(
    t: &mut TcpWindows,
    state: ConnState,
    marked: bool,
    dir: Dir,
    seg: &Segment,
) -> bool {
    use crate::state::tcp_flags::{ACK, FIN, RST, SYN};
    let f = seg.flags & (SYN | ACK | FIN | RST);
    let d = dir as usize;
    let w = &mut t.windows;
    match (dir, f) {
        // Retransmitted SYN before the answer, or a SYN on a live
        // connection (it passes unchanged, see `syn_again`: its sequence
        // number is kept, for the SYN-ACK that may start it over).
        (Dir::Original, SYN) => {
            if state == ConnState::TcpSynSent {
                window::open(w, d, seg);
            } else {
                t.syn_again_ack = seg.seq.wrapping_add(1);
            }
            true
        }
        (Dir::Reply, x) if x == SYN | ACK => {
            // Only a SYN-ACK to that very SYN starts the connection over; a
            // forged one (it must guess the SYN's sequence number) is
            // checked like any segment.
            if marked && seg.ack == t.syn_again_ack {
                // The peer answered a new SYN on this tuple: a new
                // connection; its initiator's ISN is what this SYN-ACK acks.
                let syn = Segment {
                    flags: SYN,
                    seq: seg.ack.wrapping_sub(1),
                    ack: 0,
                    window: u16::MAX,
                    wscale: None,
                    len: 0,
                };
                *w = Windows::default();
                window::open(w, 0, &syn);
                window::open(w, d, seg);
                true
            } else if matches!(state, ConnState::TcpSynSent | ConnState::TcpSynRecv) {
                window::open(w, d, seg);
                true
            } else {
                window::check(w, d, seg)
            }
        }
        _ => window::check(w, d, seg),
    }
}

/// A SYN on a live TCP connection (Linux conntrack's behaviour): from the
/// initiator, on a connection past its handshake, it passes without
/// changing the state (the host rebooted, or a FIN or RST was lost, and
/// reuses the tuple) and marks the entry; the responder's SYN-ACK to it then
/// starts the connection over from `TcpSynRecv` (with window tracking, only
/// one acknowledging that SYN: `restart_ok`). `None`: not such a packet, the
/// ordinary transitions apply.
#[inline]
pub(super) fn syn_again(
    e: &mut Entry,
    dir: Dir,
    flags: u8,
    restart_ok: bool,
    bytes: u32,
    now: u64,
) -> Option<Track> {
    use crate::state::tcp_flags::{ACK, FIN, RST, SYN};
    let marked = e.flags.contains(ConnFlags::SYN_AGAIN);
    // Every case below needs a SYN or the mark: most packets leave here.
    if flags & SYN == 0 && !marked {
        return None;
    }
    let f = flags & (SYN | ACK | FIN | RST);
    let past_handshake = !matches!(
        e.state,
        ConnState::TcpSynSent
            | ConnState::TcpSynRecv
            | ConnState::TcpTimeWait
            | ConnState::TcpClosed
    );
    match (dir, f) {
        (Dir::Original, SYN) if past_handshake => {
            e.flags = e.flags | ConnFlags::SYN_AGAIN;
            e.count(dir, bytes);
            Some(Track::Accept)
        }
        (Dir::Reply, x) if marked && restart_ok && x == SYN | ACK => {
            e.flags = ConnFlags(e.flags.0 & !ConnFlags::SYN_AGAIN.0);
            e.state = ConnState::TcpSynRecv;
            e.last_seen = now;
            e.count(dir, bytes);
            Some(Track::Accept)
        }
        (Dir::Reply, _) if marked => {
            // The responder carried on with the old connection: forget the SYN.
            e.flags = ConnFlags(e.flags.0 & !ConnFlags::SYN_AGAIN.0);
            None
        }
        _ => None,
    }
}

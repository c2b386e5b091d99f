//! TCP sequence-window tracking, as Linux's conntrack and pf do (Guido van
//! Rooney, "Real stateful TCP packet filtering in IP Filter"): a segment
//! passes only if its sequence numbers fall in the window the receiver
//! advertised and its acknowledgement in what the receiver sent, so a blind
//! RST or data injection from inside an allowed pair (which must guess the
//! sequence numbers) is dropped.
//!
//! For each direction (the *sender* of a segment) the table keeps:
//! - `end`: highest sequence number sent plus one (`seq + len`);
//! - `maxend`: highest sequence number the other side allows it to send
//!   (its `ack + window`);
//! - `maxwin`: largest window it advertised;
//! - `scale`: its window scale (RFC 7323; 0 unless both SYNs carried one).
//!
//! A segment from `s` to `r` with sequence `seq`, payload `len`, ack `ack`
//! passes when (modular arithmetic):
//! 1. `seq <= s.maxend` — it starts inside what `r` allows;
//! 2. `seq + len >= s.end - r.maxwin` — it is not older than a window;
//! 3. `ack <= r.end` — it acknowledges nothing `r` has not sent;
//! 4. `ack >= r.end - max(s.maxwin, 66000)` — nor far behind it.

/// A TCP segment as window tracking needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Segment {
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    /// The window field as sent (not scaled).
    pub window: u16,
    /// The window scale option, on SYNs that carry one.
    pub wscale: Option<u8>,
    /// Payload bytes.
    pub len: u32,
}

/// One direction's window state (16 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Half {
    end: u32,
    maxend: u32,
    maxwin: u32,
    scale: u8,
    /// A SYN from this side carried a window scale option.
    scale_offered: bool,
    /// This side has sent its SYN (or SYN-ACK).
    seen: bool,
}

/// Window state of a connection: `[original direction, reply direction]`.
pub type Windows = [Half; 2];

const SYN: u8 = bulkhead_packet::tcp_flags::SYN;
const FIN: u8 = bulkhead_packet::tcp_flags::FIN;
const ACK: u8 = bulkhead_packet::tcp_flags::ACK;
const RST: u8 = bulkhead_packet::tcp_flags::RST;

/// RFC 7323's largest shift.
const MAX_SCALE: u8 = 14;
/// Linux's floor for how far behind an acknowledgement may be.
const MIN_ACK_WINDOW: u32 = 66_000;

#[inline]
fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

#[inline]
fn after(a: u32, b: u32) -> bool {
    before(b, a)
}

/// Sequence space the segment occupies (SYN and FIN count one each).
#[inline]
fn seg_end(s: &Segment) -> u32 {
    s.seq
        .wrapping_add(s.len)
        .wrapping_add(u32::from(s.flags & SYN != 0))
        .wrapping_add(u32::from(s.flags & FIN != 0))
}

/// Start tracking from the initiator's SYN (`d` = 0) or the responder's
/// SYN-ACK (`d` = 1).
pub fn open(w: &mut Windows, d: usize, s: &Segment) {
    let end = seg_end(s);
    let Some(h) = w.get_mut(d) else { return };
    *h = Half {
        end,
        maxend: end,
        maxwin: u32::from(s.window).max(1),
        scale: s.wscale.map_or(0, |v| v.min(MAX_SCALE)),
        scale_offered: s.wscale.is_some(),
        seen: true,
    };
    if d == 1 {
        // Scaling applies only if both SYNs offered it (RFC 7323).
        let both = w[0].scale_offered && w[1].scale_offered;
        if !both {
            w[0].scale = 0;
            w[1].scale = 0;
        }
        // The SYN-ACK acknowledges the SYN: the initiator may send up to
        // its ack plus window.
        if s.flags & ACK != 0 {
            let win = u32::from(s.window).max(1);
            w[0].maxend = s.ack.wrapping_add(win);
        }
    }
}

/// Check a segment from direction `d` against the windows and, if it fits,
/// account it. False: out of window (drop it; nothing changes).
pub fn check(w: &mut Windows, d: usize, s: &Segment) -> bool {
    let r = 1 - d.min(1);
    let (sender, receiver) = (w[d], w[r]);
    if !sender.seen || !receiver.seen {
        // Before both SYNs only the state machine judges (a SYN-ACK opens
        // the reply half, see `open`).
        return true;
    }
    let end = seg_end(s);
    // A SYN's window is never scaled.
    let win = if s.flags & SYN != 0 {
        u32::from(s.window)
    } else {
        u32::from(s.window) << sender.scale
    };
    let ack = if s.flags & ACK != 0 {
        s.ack
    } else {
        receiver.end
    };
    let ack_window = sender.maxwin.max(MIN_ACK_WINDOW);
    let fits = !after(s.seq, sender.maxend)
        && !before(end, sender.end.wrapping_sub(receiver.maxwin))
        && !after(ack, receiver.end)
        && !before(ack, receiver.end.wrapping_sub(ack_window));
    if !fits {
        return false;
    }
    if s.flags & RST != 0 {
        return true;
    }
    let (sender, receiver) = if d == 0 {
        let [a, b] = w;
        (a, b)
    } else {
        let [a, b] = w;
        (b, a)
    };
    if sender.maxwin < win {
        sender.maxwin = win.max(1);
    }
    if after(end, sender.end) {
        sender.end = end;
    }
    // What the sender allows the receiver to send.
    let limit = ack.wrapping_add(win.max(1));
    if after(limit, receiver.maxend) {
        receiver.maxend = limit;
    }
    if after(end, sender.maxend) {
        sender.maxend = end;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(flags: u8, seq: u32, ack: u32, window: u16, len: u32) -> Segment {
        Segment {
            flags,
            seq,
            ack,
            window,
            wscale: None,
            len,
        }
    }

    /// A handshake: client ISN 1000, server ISN 5000, windows 64 KiB.
    fn established() -> Windows {
        let mut w = Windows::default();
        open(&mut w, 0, &seg(SYN, 1000, 0, 65535, 0));
        open(&mut w, 1, &seg(SYN | ACK, 5000, 1001, 65535, 0));
        assert!(check(&mut w, 0, &seg(ACK, 1001, 5001, 65535, 0)));
        w
    }

    #[test]
    fn a_conversation_stays_in_window() {
        let mut w = established();
        assert!(check(&mut w, 0, &seg(ACK, 1001, 5001, 65535, 500)));
        assert!(check(&mut w, 1, &seg(ACK, 5001, 1501, 65535, 1400)));
        assert!(check(&mut w, 0, &seg(ACK, 1501, 6401, 65535, 0)));
        // A retransmission of old data is fine.
        assert!(check(&mut w, 1, &seg(ACK, 5001, 1501, 65535, 1400)));
        assert!(check(&mut w, 0, &seg(FIN | ACK, 1501, 6401, 65535, 0)));
    }

    #[test]
    fn blind_rst_and_data_with_a_guessed_sequence_are_refused() {
        let mut w = established();
        let before = w;
        // Far ahead of the window.
        assert!(!check(&mut w, 1, &seg(RST, 5001 + 10_000_000, 0, 0, 0)));
        assert!(!check(
            &mut w,
            0,
            &seg(ACK, 1001 + 200_000, 5001, 65535, 100)
        ));
        // Far behind.
        assert!(!check(
            &mut w,
            0,
            &seg(ACK, 1001u32.wrapping_sub(1_000_000), 5001, 65535, 100)
        ));
        // Acknowledging data never sent.
        assert!(!check(&mut w, 0, &seg(ACK, 1001, 5001 + 100_000, 65535, 0)));
        assert_eq!(w, before, "refused segments change nothing");
        // An RST in the window passes.
        assert!(check(&mut w, 1, &seg(RST | ACK, 5001, 1001, 0, 0)));
    }

    #[test]
    fn window_scaling_applies_only_when_both_offer_it() {
        let mut w = Windows::default();
        let mut syn = seg(SYN, 1, 0, 1024, 0);
        syn.wscale = Some(7);
        open(&mut w, 0, &syn);
        let mut synack = seg(SYN | ACK, 100, 2, 1024, 0);
        synack.wscale = Some(7);
        open(&mut w, 1, &synack);
        assert!(check(&mut w, 0, &seg(ACK, 2, 101, 1024, 0)));
        // 1024 << 7 = 128 KiB: the server may send 100 KiB at once.
        assert!(check(&mut w, 1, &seg(ACK, 101, 2, 1024, 100_000)));
        // Without the client's offer, no scaling: 100 KiB is past a 1 KiB window.
        let mut w = Windows::default();
        open(&mut w, 0, &seg(SYN, 1, 0, 1024, 0));
        open(&mut w, 1, &synack);
        assert!(check(&mut w, 0, &seg(ACK, 2, 101, 1024, 0)));
        assert!(!check(&mut w, 1, &seg(ACK, 150_000, 2, 1024, 100)));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut w = Windows::default();
        open(&mut w, 0, &seg(SYN, u32::MAX - 10, 0, 65535, 0));
        open(&mut w, 1, &seg(SYN | ACK, 7, u32::MAX - 9, 65535, 0));
        assert!(check(&mut w, 0, &seg(ACK, u32::MAX - 9, 8, 65535, 1000)));
        assert!(check(&mut w, 1, &seg(ACK, 8, 990, 65535, 0)));
    }
}

//! Per-connection state machines (TCP, UDP, ICMP echo, other protocols).
//!
//! The TCP state machine follows the flags; sequence numbers are checked
//! separately by [`crate::window`] when window tracking is on (the
//! default in `bulkheadd`), which refuses blind RSTs and injected data.

/// TCP flag bits as in the TCP header's flags byte (the parser's definitions).
pub use bulkhead_packet::tcp_flags;

use tcp_flags::{ACK, FIN, RST, SYN};

use bulkhead_packet::proto::{
    ICMP as PROTO_ICMP, ICMPV6 as PROTO_ICMPV6, TCP as PROTO_TCP, UDP as PROTO_UDP,
};

/// Direction of a packet relative to the connection: `Original` is from the
/// initiator (the endpoint whose packet created the entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Dir {
    Original = 0,
    Reply = 1,
}

/// May a TCP packet with these flags open a connection? SYN without ACK
/// (and without FIN or RST). On a table miss, any other TCP packet is
/// `invalid` and must be dropped (policy spec, "Deciding").
#[inline]
#[must_use]
pub const fn tcp_may_open(flags: u8) -> bool {
    flags & (SYN | ACK | FIN | RST) == SYN
}

/// State of a tracked connection. `u8`-sized; the discriminant indexes the
/// timeout table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ConnState {
    /// SYN seen from the initiator, nothing from the responder yet.
    TcpSynSent = 0,
    /// SYN-ACK seen from the responder; waiting for the initiator's ACK.
    TcpSynRecv,
    /// Handshake complete.
    TcpEstablished,
    /// The initiator sent a FIN (half-closed); data may still flow back.
    TcpFinOrig,
    /// The responder sent a FIN.
    TcpFinReply,
    /// Both sent FINs; waiting for the initiator's final ACK.
    TcpLastAckOrig,
    /// Both sent FINs; waiting for the responder's final ACK.
    TcpLastAckReply,
    /// Closed in an orderly way; absorbs retransmitted FINs and ACKs.
    TcpTimeWait,
    /// Reset (RST seen from either side).
    TcpClosed,
    /// UDP, nothing seen from the responder yet.
    UdpUnreplied,
    /// UDP, traffic seen both ways.
    UdpAssured,
    /// ICMP/ICMPv6 query request seen (echo, timestamp, ...).
    IcmpRequest,
    /// Its reply seen.
    IcmpReplied,
    /// Other protocol, one way so far.
    OtherNew,
    /// Other protocol, seen both ways.
    OtherReplied,
}

/// Number of [`ConnState`] values (size of the timeout table).
pub const STATE_COUNT: usize = 15;

/// Outcome of one state-machine step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Packet accepted; the connection is now in this state.
    To(ConnState),
    /// Packet does not fit the state (e.g. SYN-ACK from the initiator):
    /// drop and count it; the entry is unchanged.
    Invalid,
    /// A SYN re-uses the tuple of a finished connection (TIME_WAIT or reset):
    /// the old entry should be removed and the packet handled as a new
    /// connection, judged by the current policy.
    Stale,
}

impl ConnState {
    /// State of a new entry for protocol `proto`. For TCP the opening packet
    /// must satisfy [`tcp_may_open`]; the caller checks that.
    #[inline]
    #[must_use]
    pub const fn initial(proto: u8) -> ConnState {
        match proto {
            PROTO_TCP => ConnState::TcpSynSent,
            PROTO_UDP => ConnState::UdpUnreplied,
            PROTO_ICMP | PROTO_ICMPV6 => ConnState::IcmpRequest,
            _ => ConnState::OtherNew,
        }
    }

    /// Nothing seen from the responder yet (or, for TCP, the handshake not
    /// complete): the entries a full table evicts first (early drop, as
    /// Linux's conntrack does), since no reply has proven them wanted.
    #[inline]
    #[must_use]
    pub const fn is_unreplied(self) -> bool {
        matches!(
            self,
            ConnState::TcpSynSent
                | ConnState::TcpSynRecv
                | ConnState::UdpUnreplied
                | ConnState::IcmpRequest
                | ConnState::OtherNew
        )
    }

    /// Is this a TCP state?
    #[inline]
    #[must_use]
    pub const fn is_tcp(self) -> bool {
        (self as u8) <= ConnState::TcpClosed as u8
    }

    /// Advance by one packet travelling in `dir`. `flags` is used for TCP
    /// states only.
    #[inline]
    #[must_use]
    pub fn next(self, dir: Dir, flags: u8) -> Step {
        use ConnState::*;
        match self {
            UdpUnreplied | UdpAssured => Step::To(match dir {
                Dir::Reply => UdpAssured,
                Dir::Original => self,
            }),
            IcmpRequest | IcmpReplied => Step::To(match dir {
                Dir::Reply => IcmpReplied,
                Dir::Original => self,
            }),
            OtherNew | OtherReplied => Step::To(match dir {
                Dir::Reply => OtherReplied,
                Dir::Original => self,
            }),
            _ => tcp_next(self, dir, flags),
        }
    }
}

/// The TCP transitions (flags only, see the module doc). Inlined into the
/// per-packet path: a call here cost a measurable share of it.
#[inline(always)]
fn tcp_next(s: ConnState, dir: Dir, flags: u8) -> Step {
    use ConnState::*;
    use Dir::{Original as O, Reply as R};
    let syn = flags & SYN != 0;
    let ack = flags & ACK != 0;
    let fin = flags & FIN != 0;
    let rst = flags & RST != 0;

    // Malformed combinations never pass: SYN+FIN, SYN+RST, and packets with
    // none of SYN, ACK, RST (null scans, bare FIN).
    if (syn && (fin || rst)) || !(syn || ack || rst) {
        return Step::Invalid;
    }
    if rst {
        // Either side may reset at any point (no window check).
        return Step::To(TcpClosed);
    }
    if syn && !ack {
        return match (s, dir) {
            (TcpSynSent, O) => Step::To(TcpSynSent), // retransmitted SYN
            (TcpSynRecv, O) => Step::To(TcpSynRecv), // retransmitted SYN
            (TcpTimeWait | TcpClosed, _) => Step::Stale, // tuple re-use
            // Includes simultaneous open (SYN from the responder), which is
            // not supported.
            _ => Step::Invalid,
        };
    }
    if syn {
        // SYN-ACK: only from the responder, only before or just after the
        // initiator's ACK (a retransmitted SYN-ACK when that ACK was lost
        // downstream of us).
        return match (s, dir) {
            (TcpSynSent | TcpSynRecv, R) => Step::To(TcpSynRecv),
            (TcpEstablished, R) => Step::To(TcpEstablished),
            _ => Step::Invalid,
        };
    }
    // ACK set, no SYN, no RST; maybe FIN.
    match s {
        TcpSynSent => Step::Invalid,
        TcpSynRecv => match (dir, fin) {
            (O, false) => Step::To(TcpEstablished),
            (O, true) => Step::To(TcpFinOrig),
            (R, _) => Step::Invalid,
        },
        TcpEstablished => Step::To(match (fin, dir) {
            (false, _) => TcpEstablished,
            (true, O) => TcpFinOrig,
            (true, R) => TcpFinReply,
        }),
        TcpFinOrig => Step::To(match (fin, dir) {
            (true, R) => TcpLastAckOrig,
            _ => TcpFinOrig,
        }),
        TcpFinReply => Step::To(match (fin, dir) {
            (true, O) => TcpLastAckReply,
            _ => TcpFinReply,
        }),
        TcpLastAckOrig => Step::To(match (fin, dir) {
            (false, O) => TcpTimeWait,
            _ => TcpLastAckOrig,
        }),
        TcpLastAckReply => Step::To(match (fin, dir) {
            (false, R) => TcpTimeWait,
            _ => TcpLastAckReply,
        }),
        TcpTimeWait => Step::To(TcpTimeWait),
        TcpClosed => Step::Invalid,
        // Not TCP states; `next` never sends them here.
        UdpUnreplied | UdpAssured | IcmpRequest | IcmpReplied | OtherNew | OtherReplied => {
            Step::Invalid
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConnState::*;
    use Dir::{Original as O, Reply as R};

    const PSH_ACK: u8 = tcp_flags::PSH | ACK;

    fn run(start: ConnState, steps: &[(Dir, u8)]) -> Vec<Step> {
        let mut s = start;
        let mut out = Vec::new();
        for &(d, f) in steps {
            let st = s.next(d, f);
            if let Step::To(n) = st {
                s = n;
            }
            out.push(st);
        }
        out
    }

    #[test]
    fn may_open_only_on_bare_syn() {
        assert!(tcp_may_open(SYN));
        assert!(tcp_may_open(SYN | tcp_flags::PSH));
        assert!(!tcp_may_open(SYN | ACK));
        assert!(!tcp_may_open(ACK));
        assert!(!tcp_may_open(SYN | FIN));
        assert!(!tcp_may_open(SYN | RST));
        assert!(!tcp_may_open(0));
    }

    #[test]
    fn handshake_data_and_orderly_close_initiator_first() {
        let steps = [
            (R, SYN | ACK),
            (O, ACK),
            (O, PSH_ACK),
            (R, PSH_ACK),
            (O, FIN | ACK),
            (R, ACK),
            (R, PSH_ACK), // half-closed: the responder may still send
            (R, FIN | ACK),
            (O, ACK),
            (R, ACK), // late retransmission absorbed by TIME_WAIT
        ];
        let got = run(ConnState::initial(PROTO_TCP), &steps);
        let want = [
            TcpSynRecv,
            TcpEstablished,
            TcpEstablished,
            TcpEstablished,
            TcpFinOrig,
            TcpFinOrig,
            TcpFinOrig,
            TcpLastAckOrig,
            TcpTimeWait,
            TcpTimeWait,
        ];
        assert_eq!(got, want.map(Step::To).to_vec());
    }

    #[test]
    fn responder_closes_first() {
        let got = run(
            TcpEstablished,
            &[(R, FIN | ACK), (O, ACK), (O, FIN | ACK), (O, ACK), (R, ACK)],
        );
        let want = [
            TcpFinReply,
            TcpFinReply,
            TcpLastAckReply,
            TcpLastAckReply, // the initiator's ACK is not the final one
            TcpTimeWait,
        ];
        assert_eq!(got, want.map(Step::To).to_vec());
    }

    #[test]
    fn simultaneous_close() {
        let got = run(
            TcpEstablished,
            &[(O, FIN | ACK), (R, FIN | ACK), (R, ACK), (O, ACK)],
        );
        let want = [TcpFinOrig, TcpLastAckOrig, TcpLastAckOrig, TcpTimeWait];
        assert_eq!(got, want.map(Step::To).to_vec());
    }

    #[test]
    fn rst_closes_from_any_state_and_either_side() {
        for s in [
            TcpSynSent,
            TcpSynRecv,
            TcpEstablished,
            TcpFinOrig,
            TcpFinReply,
            TcpLastAckOrig,
            TcpLastAckReply,
            TcpTimeWait,
            TcpClosed,
        ] {
            for d in [O, R] {
                assert_eq!(s.next(d, RST), Step::To(TcpClosed), "{s:?} {d:?}");
                assert_eq!(s.next(d, RST | ACK), Step::To(TcpClosed), "{s:?} {d:?}");
            }
        }
    }

    #[test]
    fn out_of_state_packets_are_invalid() {
        // SYN-ACK from the initiator.
        assert_eq!(TcpSynSent.next(O, SYN | ACK), Step::Invalid);
        assert_eq!(TcpEstablished.next(O, SYN | ACK), Step::Invalid);
        // Data before the handshake completes.
        assert_eq!(TcpSynSent.next(O, ACK), Step::Invalid);
        assert_eq!(TcpSynSent.next(R, ACK), Step::Invalid);
        assert_eq!(TcpSynRecv.next(R, PSH_ACK), Step::Invalid);
        // Simultaneous open is not supported.
        assert_eq!(TcpSynSent.next(R, SYN), Step::Invalid);
        // A new SYN inside a live connection.
        assert_eq!(TcpEstablished.next(O, SYN), Step::Invalid);
        assert_eq!(TcpFinOrig.next(R, SYN), Step::Invalid);
        // After a reset only a new SYN or another RST means anything.
        assert_eq!(TcpClosed.next(O, ACK), Step::Invalid);
        assert_eq!(TcpClosed.next(R, FIN | ACK), Step::Invalid);
    }

    #[test]
    fn malformed_flag_combinations_are_invalid_everywhere() {
        for s in [TcpSynSent, TcpEstablished, TcpTimeWait] {
            for f in [
                SYN | FIN,
                SYN | RST,
                SYN | FIN | ACK,
                0,
                FIN,
                tcp_flags::PSH,
            ] {
                assert_eq!(s.next(O, f), Step::Invalid, "{s:?} flags {f:#x}");
            }
        }
    }

    #[test]
    fn retransmissions_keep_state() {
        assert_eq!(TcpSynSent.next(O, SYN), Step::To(TcpSynSent));
        assert_eq!(TcpSynRecv.next(O, SYN), Step::To(TcpSynRecv));
        assert_eq!(TcpSynRecv.next(R, SYN | ACK), Step::To(TcpSynRecv));
        assert_eq!(TcpEstablished.next(R, SYN | ACK), Step::To(TcpEstablished));
        assert_eq!(TcpFinOrig.next(O, FIN | ACK), Step::To(TcpFinOrig));
    }

    #[test]
    fn handshake_ack_with_fin_goes_straight_to_fin() {
        assert_eq!(TcpSynRecv.next(O, FIN | ACK), Step::To(TcpFinOrig));
    }

    #[test]
    fn syn_reusing_a_finished_tuple_is_stale() {
        assert_eq!(TcpTimeWait.next(O, SYN), Step::Stale);
        assert_eq!(TcpTimeWait.next(R, SYN), Step::Stale);
        assert_eq!(TcpClosed.next(O, SYN), Step::Stale);
    }

    #[test]
    fn udp_icmp_other_become_replied_on_reply() {
        for (proto, new, replied) in [
            (PROTO_UDP, UdpUnreplied, UdpAssured),
            (PROTO_ICMP, IcmpRequest, IcmpReplied),
            (PROTO_ICMPV6, IcmpRequest, IcmpReplied),
            (47, OtherNew, OtherReplied),
        ] {
            let s = ConnState::initial(proto);
            assert_eq!(s, new);
            assert!(!s.is_tcp());
            assert_eq!(s.next(O, 0), Step::To(new));
            assert_eq!(s.next(R, 0), Step::To(replied));
            assert_eq!(replied.next(O, 0), Step::To(replied));
        }
    }

    #[test]
    fn half_open_and_tcp_classification() {
        for s in [TcpSynSent, TcpSynRecv, UdpUnreplied, IcmpRequest, OtherNew] {
            assert!(s.is_unreplied(), "{s:?}");
        }
        for s in [
            TcpEstablished,
            TcpFinOrig,
            UdpAssured,
            IcmpReplied,
            OtherReplied,
        ] {
            assert!(!s.is_unreplied(), "{s:?}");
        }
        assert!(TcpClosed.is_tcp() && TcpSynSent.is_tcp() && !UdpUnreplied.is_tcp());
        assert_eq!(OtherReplied as usize + 1, STATE_COUNT);
    }
}

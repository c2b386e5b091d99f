//! Idle timeouts per protocol and state.

use core::fmt;
use core::time::Duration;

use crate::state::{ConnState, STATE_COUNT};

/// Idle timeouts: an entry expires when `now - last_seen >= timeout(state)`.
///
/// Defaults (compare Linux `nf_conntrack`, VPP ACL sessions):
///
/// | field | default | why |
/// |---|---|---|
/// | `tcp_syn_sent` | 30 s | half-open entries are cheap to attack; Linux uses 120 s, a SYN is retried within ~30 s |
/// | `tcp_syn_recv` | 30 s | same (Linux 60 s) |
/// | `tcp_established` | 7500 s (2 h 5 min) | just above Linux's default TCP keepalive time (7200 s), so idle connections kept by default keepalives survive; Linux keeps 5 days, VPP 24 h, both far too long for a bounded table under churn |
/// | `tcp_fin_wait` | 120 s | one side closed, the other may still send (Linux `fin_wait` 120 s) |
/// | `tcp_last_ack` | 30 s | both FINs seen, final ACK pending (Linux 30 s) |
/// | `tcp_time_wait` | 60 s | absorbs retransmitted FIN/ACK (Linux 120 s = 2 MSL) |
/// | `tcp_closed` | 10 s | after RST (Linux 10 s) |
/// | `udp_unreplied` | 30 s | Linux 30 s |
/// | `udp_assured` | 120 s | seen both ways (Linux `udp_timeout_stream` 120 s) |
/// | `icmp` | 30 s | echo request or reply (Linux 30 s) |
/// | `other` | 600 s | any other protocol (Linux generic 600 s) |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp_syn_sent: Duration,
    pub tcp_syn_recv: Duration,
    pub tcp_established: Duration,
    pub tcp_fin_wait: Duration,
    pub tcp_last_ack: Duration,
    pub tcp_time_wait: Duration,
    pub tcp_closed: Duration,
    pub udp_unreplied: Duration,
    pub udp_assured: Duration,
    pub icmp: Duration,
    pub other: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let s = Duration::from_secs;
        Timeouts {
            tcp_syn_sent: s(30),
            tcp_syn_recv: s(30),
            tcp_established: s(7500),
            tcp_fin_wait: s(120),
            tcp_last_ack: s(30),
            tcp_time_wait: s(60),
            tcp_closed: s(10),
            udp_unreplied: s(30),
            udp_assured: s(120),
            icmp: s(30),
            other: s(600),
        }
    }
}

/// Shortest accepted timeout.
pub const MIN_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest accepted timeout (30 days): anything longer is a typo (ms for s?).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(30 * 24 * 3600);

/// One rejected timeout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadTimeout {
    /// Field name as in [`Timeouts`].
    pub field: &'static str,
    pub value: Duration,
}

impl fmt::Display for BadTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timeout {} = {:?} is outside {:?}..={:?}",
            self.field, self.value, MIN_TIMEOUT, MAX_TIMEOUT
        )
    }
}

impl Timeouts {
    fn fields(&self) -> [(&'static str, Duration); 11] {
        [
            ("tcp_syn_sent", self.tcp_syn_sent),
            ("tcp_syn_recv", self.tcp_syn_recv),
            ("tcp_established", self.tcp_established),
            ("tcp_fin_wait", self.tcp_fin_wait),
            ("tcp_last_ack", self.tcp_last_ack),
            ("tcp_time_wait", self.tcp_time_wait),
            ("tcp_closed", self.tcp_closed),
            ("udp_unreplied", self.udp_unreplied),
            ("udp_assured", self.udp_assured),
            ("icmp", self.icmp),
            ("other", self.other),
        ]
    }

    /// Every timeout outside `MIN_TIMEOUT..=MAX_TIMEOUT` (zero included), all
    /// of them, not just the first.
    pub fn validate(&self) -> Result<(), Vec<BadTimeout>> {
        let bad: Vec<BadTimeout> = self
            .fields()
            .into_iter()
            .filter(|(_, v)| *v < MIN_TIMEOUT || *v > MAX_TIMEOUT)
            .map(|(field, value)| BadTimeout { field, value })
            .collect();
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad)
        }
    }

    /// The timeout for a state.
    #[must_use]
    pub fn for_state(&self, s: ConnState) -> Duration {
        use ConnState::*;
        match s {
            TcpSynSent => self.tcp_syn_sent,
            TcpSynRecv => self.tcp_syn_recv,
            TcpEstablished => self.tcp_established,
            TcpFinOrig | TcpFinReply => self.tcp_fin_wait,
            TcpLastAckOrig | TcpLastAckReply => self.tcp_last_ack,
            TcpTimeWait => self.tcp_time_wait,
            TcpClosed => self.tcp_closed,
            UdpUnreplied => self.udp_unreplied,
            UdpAssured => self.udp_assured,
            IcmpRequest | IcmpReplied => self.icmp,
            OtherNew | OtherReplied => self.other,
        }
    }

    /// Nanosecond table indexed by `ConnState as usize`. Only called on
    /// validated timeouts (≤ 30 days, far below `u64::MAX` ns); saturates
    /// otherwise.
    pub(crate) fn to_ns_table(self) -> [u64; STATE_COUNT] {
        use ConnState::*;
        let all = [
            TcpSynSent,
            TcpSynRecv,
            TcpEstablished,
            TcpFinOrig,
            TcpFinReply,
            TcpLastAckOrig,
            TcpLastAckReply,
            TcpTimeWait,
            TcpClosed,
            UdpUnreplied,
            UdpAssured,
            IcmpRequest,
            IcmpReplied,
            OtherNew,
            OtherReplied,
        ];
        let mut t = [0u64; STATE_COUNT];
        for s in all {
            t[s as usize] = u64::try_from(self.for_state(s).as_nanos()).unwrap_or(u64::MAX);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Timeouts::default().validate(), Ok(()));
    }

    #[test]
    fn zero_and_absurd_values_are_all_reported() {
        let t = Timeouts {
            tcp_syn_sent: Duration::ZERO,
            udp_assured: Duration::from_secs(365 * 24 * 3600),
            icmp: Duration::from_millis(500),
            ..Timeouts::default()
        };
        let errs = t.validate().unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["tcp_syn_sent", "udp_assured", "icmp"]);
        assert!(errs[0].to_string().contains("tcp_syn_sent"));
    }

    #[test]
    fn ns_table_follows_state_mapping() {
        let t = Timeouts::default();
        let ns = t.to_ns_table();
        assert_eq!(ns[ConnState::TcpEstablished as usize], 7500 * 1_000_000_000);
        assert_eq!(ns[ConnState::TcpFinReply as usize], 120 * 1_000_000_000);
        assert_eq!(ns[ConnState::TcpLastAckOrig as usize], 30 * 1_000_000_000);
        assert_eq!(ns[ConnState::OtherReplied as usize], 600 * 1_000_000_000);
        assert!(ns.iter().all(|&v| v > 0));
    }
}

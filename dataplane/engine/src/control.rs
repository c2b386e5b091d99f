//! Questions the control plane asks the workers about their connection
//! tables — list the tracked connections, flush some — answered by each
//! worker between bursts from its own table (no lock, no shared table).
//!
//! A request goes into a small per-worker queue; the worker takes at most one
//! per loop iteration (an empty queue costs one atomic load) and replies on
//! the request's channel. The caller waits with a timeout, so a stopped or
//! stuck worker never blocks the management API for long.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::queue::ArrayQueue;

/// Requests waiting per worker before more are refused.
const QUEUE: usize = 8;

/// Which connections a request is about; every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnFilter {
    /// Source or destination segment name.
    pub segment: Option<String>,
    /// Source or destination address within this prefix.
    pub prefix: Option<ipnet::IpNet>,
    /// Source or destination port.
    pub port: Option<u16>,
    /// IP protocol number.
    pub proto: Option<u8>,
}

impl ConnFilter {
    /// Does a connection with these endpoints match?
    pub fn matches(&self, c: &ConnInfo) -> bool {
        self.segment
            .as_ref()
            .is_none_or(|s| *s == c.src_segment || *s == c.dst_segment)
            && self
                .prefix
                .is_none_or(|p| p.contains(&c.src) || p.contains(&c.dst))
            && self.port.is_none_or(|p| p == c.src_port || p == c.dst_port)
            && self.proto.is_none_or(|p| p == c.proto)
    }
}

/// One tracked connection as a worker reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    pub worker: u16,
    /// The initiator.
    pub src: IpAddr,
    pub src_port: u16,
    /// The responder.
    pub dst: IpAddr,
    pub dst_port: u16,
    pub proto: u8,
    pub src_segment: String,
    pub dst_segment: String,
    /// Connection state, e.g. `TcpEstablished`.
    pub state: String,
    /// Deciding rule, or `default`.
    pub rule: String,
    pub monitor: bool,
    /// Policy generation that judged it.
    pub generation: u64,
    pub age_ns: u64,
    pub idle_ns: u64,
    /// From the initiator (`[0]`) and the responder (`[1]`).
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
}

/// What the control plane asks.
#[derive(Debug, Clone)]
pub enum Query {
    /// At most `limit` connections matching the filter.
    Connections { filter: ConnFilter, limit: usize },
    /// Remove the matching connections (each reported as closed).
    Flush { filter: ConnFilter },
}

/// A worker's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Matching connections, and whether more matched than the limit.
    Connections {
        list: Vec<ConnInfo>,
        truncated: bool,
    },
    /// How many were removed.
    Flushed(u64),
}

type Request = (Query, crossbeam::channel::Sender<Answer>);

/// The workers' request queues; cheap to clone, usable from any thread.
#[derive(Debug, Clone)]
pub struct Control {
    queues: Arc<Vec<ArrayQueue<Request>>>,
}

/// Why a question got no complete answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("worker {0} has too many requests waiting; try again")]
    Busy(usize),
    #[error("{missing} of {workers} workers did not answer within {ms} ms")]
    Timeout {
        missing: usize,
        workers: usize,
        ms: u64,
    },
}

impl Control {
    /// Queues for `workers` workers.
    pub fn new(workers: usize) -> Control {
        Control {
            queues: Arc::new((0..workers).map(|_| ArrayQueue::new(QUEUE)).collect()),
        }
    }

    /// Ask every worker; wait at most `timeout` for all the answers.
    pub fn ask(&self, q: &Query, timeout: Duration) -> Result<Vec<Answer>, ControlError> {
        let (tx, rx) = crossbeam::channel::bounded(self.queues.len());
        for (i, queue) in self.queues.iter().enumerate() {
            queue
                .push((q.clone(), tx.clone()))
                .map_err(|_| ControlError::Busy(i))?;
        }
        drop(tx);
        let deadline = Instant::now() + timeout;
        let mut out = Vec::with_capacity(self.queues.len());
        while out.len() < self.queues.len() {
            match rx.recv_deadline(deadline) {
                Ok(a) => out.push(a),
                Err(_) => {
                    return Err(ControlError::Timeout {
                        missing: self.queues.len() - out.len(),
                        workers: self.queues.len(),
                        ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                    })
                }
            }
        }
        Ok(out)
    }

    /// Worker `i`'s next request, if any (called between bursts).
    #[inline]
    pub(crate) fn next(&self, i: usize) -> Option<Request> {
        self.queues.get(i)?.pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> ConnInfo {
        ConnInfo {
            worker: 0,
            src: "10.0.10.5".parse().unwrap(),
            src_port: 40000,
            dst: "10.0.20.3".parse().unwrap(),
            dst_port: 8080,
            proto: 6,
            src_segment: "web".into(),
            dst_segment: "app".into(),
            state: "TcpEstablished".into(),
            rule: "web-to-app".into(),
            monitor: false,
            generation: 1,
            age_ns: 0,
            idle_ns: 0,
            packets: [1, 1],
            bytes: [60, 60],
        }
    }

    #[test]
    fn filters_match_either_end() {
        let c = conn();
        assert!(ConnFilter::default().matches(&c));
        let f = |segment: Option<&str>, prefix: Option<&str>, port, proto| ConnFilter {
            segment: segment.map(str::to_string),
            prefix: prefix.map(|p| p.parse().unwrap()),
            port,
            proto,
        };
        assert!(f(Some("app"), None, None, None).matches(&c));
        assert!(f(None, Some("10.0.10.0/24"), Some(8080), Some(6)).matches(&c));
        assert!(!f(Some("db"), None, None, None).matches(&c));
        assert!(!f(None, Some("10.0.30.0/24"), None, None).matches(&c));
        assert!(!f(None, None, Some(22), None).matches(&c));
        assert!(!f(None, None, None, Some(17)).matches(&c));
    }

    #[test]
    fn unanswered_requests_time_out_and_full_queues_are_busy() {
        let c = Control::new(2);
        let q = Query::Flush {
            filter: ConnFilter::default(),
        };
        let e = c.ask(&q, Duration::from_millis(20)).unwrap_err();
        assert_eq!(
            e,
            ControlError::Timeout {
                missing: 2,
                workers: 2,
                ms: 20
            }
        );
        for _ in 0..QUEUE - 1 {
            let _ = c.ask(&q, Duration::ZERO);
        }
        assert_eq!(
            c.ask(&q, Duration::ZERO).unwrap_err(),
            ControlError::Busy(0)
        );
        // A worker answering: its queue drains.
        while let Some((_, reply)) = c.next(0) {
            let _ = reply.send(Answer::Flushed(0));
        }
        assert!(c.next(0).is_none());
    }
}

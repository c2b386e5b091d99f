//! Flow events as JSON lines.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use bulkhead_engine::events::{EventKind, FlowEvent, RULE_DEFAULT};
use bulkhead_engine::handover::PolicyHandle;
use bulkhead_packet::flow::{addr_to_v4, Addr};

/// Render an address stored as [`Addr`].
pub fn addr_to_ip(a: Addr) -> IpAddr {
    match addr_to_v4(a) {
        Some(v4) => IpAddr::V4(Ipv4Addr::from(v4)),
        None => IpAddr::V6(Ipv6Addr::from(a)),
    }
}

/// IANA protocol name for the usual ones.
pub fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        132 => "sctp".into(),
        n => format!("proto/{n}"),
    }
}

/// One event as a JSON object. Segment and rule names come from the policy
/// generation that judged the connection, while it is retained.
pub fn to_json(
    e: &FlowEvent,
    node: &str,
    unix_base_ns: u128,
    policy: &PolicyHandle,
) -> serde_json::Value {
    // Names from the generation that judged the connection; once that
    // snapshot is reclaimed, segment names from the current one (segment ids
    // are stable across revisions) and the rule by index and generation.
    let snap = policy.snapshot_of(e.generation);
    let current = policy.load();
    let seg_name = |id: u32| -> String {
        [snap.as_deref(), Some(&*current)]
            .into_iter()
            .flatten()
            .find_map(|s| {
                let p = &s.policy;
                p.segment_index(bulkhead_classify::SegmentId(id))
                    .map(|i| p.segment_name(i).to_string())
            })
            .unwrap_or_else(|| format!("segment#{id}"))
    };
    let rule = if e.rule == RULE_DEFAULT {
        "default".to_string()
    } else {
        snap.as_ref()
            .map(|s| {
                s.policy
                    .rule_name(bulkhead_classify::RuleRef::Rule(e.rule))
                    .to_string()
            })
            .unwrap_or_else(|| format!("rule#{}@generation{}", e.rule, e.generation))
    };
    let t = e.tuple;
    let time_ns = unix_base_ns + u128::from(e.time_ns);
    let mut v = serde_json::json!({
        "time": format_unix_ns(time_ns),
        "node": node,
        "event": e.kind.as_str(),
        "worker": e.worker,
        "src_segment": seg_name(e.src_segment),
        "dst_segment": seg_name(e.dst_segment),
        "proto": proto_name(t.proto),
        "src": addr_to_ip(t.src).to_string(),
        "dst": addr_to_ip(t.dst).to_string(),
        "rule": rule,
        "generation": e.generation,
        "logged": e.logged,
        "monitor": e.kind == EventKind::WouldDeny || e.monitor,
    });
    if let Some(side) = e.side {
        v["ingress"] = side.as_str().into();
    }
    if matches!(t.proto, 6 | 17 | 132) {
        v["sport"] = t.sport.into();
        v["dport"] = t.dport.into();
    } else if matches!(t.proto, 1 | 58) {
        v["icmp_type"] = t.svc.into();
    }
    if matches!(e.kind, EventKind::Closed | EventKind::Revoked) {
        v["packets_out"] = e.packets[0].into();
        v["packets_in"] = e.packets[1].into();
        v["bytes_out"] = e.bytes[0].into();
        v["bytes_in"] = e.bytes[1].into();
        v["duration_ms"] = (e.duration_ns / 1_000_000).into();
    }
    if e.repeats > 0 {
        // Identical denials folded into the previous interval.
        v["repeats"] = e.repeats.into();
    }
    v
}

/// One event for the management API's flow stream, from its JSON form
/// (names already resolved by [`to_json`]) and the revision that judged it.
pub fn to_proto(
    e: &FlowEvent,
    json: &serde_json::Value,
    unix_base_ns: u128,
    revision: u64,
) -> bulkhead_proto::v1::FlowEvent {
    use bulkhead_proto::v1::FlowEventKind as K;
    let text = |k: &str| json[k].as_str().unwrap_or_default().to_string();
    let t = e.tuple;
    bulkhead_proto::v1::FlowEvent {
        kind: match e.kind {
            EventKind::Allowed => K::Allowed,
            EventKind::Denied => K::Denied,
            EventKind::WouldDeny => K::WouldDeny,
            EventKind::Closed => K::Closed,
            EventKind::Revoked => K::Revoked,
        } as i32,
        time_ms: u64::try_from((unix_base_ns + u128::from(e.time_ns)) / 1_000_000)
            .unwrap_or(u64::MAX),
        worker: u32::from(e.worker),
        revision,
        rule: text("rule"),
        monitor: json["monitor"].as_bool().unwrap_or(false),
        src_segment: text("src_segment"),
        dst_segment: text("dst_segment"),
        src_address: addr_to_ip(t.src).to_string(),
        src_port: u32::from(t.sport),
        dst_address: addr_to_ip(t.dst).to_string(),
        dst_port: u32::from(t.dport),
        protocol: u32::from(t.proto),
        packets: e.packets.to_vec(),
        bytes: e.bytes.to_vec(),
        duration_ms: e.duration_ns / 1_000_000,
        repeats: e.repeats,
        lost: 0,
    }
}

/// RFC 3339 UTC with milliseconds, without a date-time dependency.
pub fn format_unix_ns(ns: u128) -> String {
    let secs = (ns / 1_000_000_000) as i64;
    let ms = (ns / 1_000_000 % 1000) as u32;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Where flow events go: standard output or a file opened for appending.
///
/// Invariant: the output never keeps part of a line. Lines are written in
/// batches; when a write to a regular file fails part-way (ENOSPC, EIO), the
/// file is cut back to the end of the last whole line written, and if even
/// that fails, cut again before anything else is written. A pipe or terminal
/// cannot be cut back: there the rest of the batch is written from where the
/// failed write stopped, completing the line.
#[derive(Debug)]
pub struct EventSink {
    out: std::fs::File,
    /// The configured file; `None` for standard output.
    path: Option<PathBuf>,
    /// A regular file opened for appending: can be cut back.
    regular: bool,
    /// A failed write left a part line past this length and cutting it failed.
    cut_at: Option<u64>,
}

/// A write of lines that failed after `written` bytes of them were kept in
/// the output (on a regular file, always whole lines).
#[derive(Debug)]
pub struct WriteError {
    pub written: usize,
    pub error: std::io::Error,
}

impl EventSink {
    /// `-` for standard output, otherwise a file, created if missing.
    pub fn open(output: &str) -> std::io::Result<EventSink> {
        if output == "-" {
            // Our own descriptor for fd 1: writes are not buffered by std, so
            // what a failed write kept is known to the byte.
            let fd = std::io::stdout().as_fd().try_clone_to_owned()?;
            Ok(EventSink {
                out: std::fs::File::from(fd),
                path: None,
                regular: false,
                cut_at: None,
            })
        } else {
            let path = PathBuf::from(output);
            let (out, regular) = open_append(&path)?;
            Ok(EventSink {
                out,
                path: Some(path),
                regular,
                cut_at: None,
            })
        }
    }

    /// The output, for log lines.
    pub fn describe(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => "standard output".to_string(),
        }
    }

    /// Open the configured path again (after log rotation renamed the file):
    /// later lines go to a new file there. Returns false for standard output.
    /// On error the current file stays in use.
    pub fn reopen(&mut self) -> std::io::Result<bool> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        let (out, regular) = open_append(path)?;
        if let Some(len) = self.cut_at.take() {
            // Last chance to remove a part line from the old file.
            let _ = self.out.set_len(len);
        }
        self.out = out;
        self.regular = regular;
        Ok(true)
    }

    /// Write `buf`, whole JSON lines, each ending in `\n`.
    pub fn write_lines(&mut self, buf: &[u8]) -> Result<(), WriteError> {
        let fail = |written, error| Err(WriteError { written, error });
        if let Some(len) = self.cut_at {
            if let Err(e) = self.out.set_len(len) {
                return fail(0, e);
            }
            self.cut_at = None;
        }
        let start = if self.regular {
            match self.out.metadata() {
                Ok(m) => m.len(),
                Err(e) => return fail(0, e),
            }
        } else {
            0
        };
        let (done, error) = write_prefix(&mut self.out, buf);
        let Some(error) = error else { return Ok(()) };
        if !self.regular {
            return fail(done, error);
        }
        let keep = whole_lines(&buf[..done]);
        if keep < done {
            let len = start + keep as u64;
            if self.out.set_len(len).is_err() {
                self.cut_at = Some(len);
            }
        }
        fail(keep, error)
    }
}

fn open_append(path: &Path) -> std::io::Result<(std::fs::File, bool)> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let regular = f.metadata()?.file_type().is_file();
    Ok((f, regular))
}

/// Write as much of `buf` as the output takes: how many bytes it took, and
/// the error that stopped it, if any.
pub fn write_prefix(out: &mut impl Write, buf: &[u8]) -> (usize, Option<std::io::Error>) {
    let mut done = 0;
    while done < buf.len() {
        match out.write(&buf[done..]) {
            Ok(0) => return (done, Some(std::io::ErrorKind::WriteZero.into())),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (done, Some(e)),
        }
    }
    (done, None)
}

/// Length of the longest prefix of `buf` made of whole lines.
pub fn whole_lines(buf: &[u8]) -> usize {
    buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_unix_time() {
        assert_eq!(format_unix_ns(0), "1970-01-01T00:00:00.000Z");
        // 2026-11-21T09:45:42.123Z
        assert_eq!(
            format_unix_ns(1_795_254_342_123_000_000),
            "2026-11-21T09:45:42.123Z"
        );
        assert_eq!(
            format_unix_ns(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn renders_addresses_of_both_families() {
        assert_eq!(
            addr_to_ip(bulkhead_packet::flow::v4_to_addr(0x0a00_0a05)).to_string(),
            "10.0.10.5"
        );
        assert_eq!(addr_to_ip(1).to_string(), "::1");
        assert_eq!(proto_name(47), "proto/47");
    }

    /// Takes `room` bytes, then fails like a full disk.
    struct Full {
        room: usize,
        got: Vec<u8>,
    }

    impl Write for Full {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if self.room == 0 {
                return Err(std::io::Error::from_raw_os_error(28));
            }
            let n = b.len().min(self.room).min(7);
            self.room -= n;
            self.got.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failed_write_keeps_only_whole_lines() {
        let buf = b"{\"a\":1}\n{\"b\":22}\n{\"c\":333}\n";
        for room in 0..buf.len() {
            let mut out = Full {
                room,
                got: Vec::new(),
            };
            let (done, err) = write_prefix(&mut out, buf);
            assert_eq!(done, room);
            assert_eq!(err.unwrap().raw_os_error(), Some(28));
            let keep = whole_lines(&buf[..done]);
            assert!(keep <= done && (keep == 0 || buf[keep - 1] == b'\n'));
            for line in out.got[..keep]
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
            {
                serde_json::from_slice::<serde_json::Value>(line).unwrap();
            }
        }
        let mut out = Full {
            room: usize::MAX,
            got: Vec::new(),
        };
        assert_eq!(write_prefix(&mut out, buf).0, buf.len());
    }

    #[test]
    fn a_full_device_is_an_error_that_kept_nothing() {
        let mut sink = EventSink::open("/dev/full").unwrap();
        let e = sink.write_lines(b"{}\n").unwrap_err();
        assert_eq!(e.written, 0);
        assert_eq!(e.error.raw_os_error(), Some(28));
    }
}

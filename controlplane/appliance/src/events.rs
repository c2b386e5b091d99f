//! Flow events as JSON lines.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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

/// Where events go.
pub enum EventSink {
    Stdout(std::io::Stdout),
    File(std::io::BufWriter<std::fs::File>),
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventSink::Stdout(_) => f.write_str("EventSink::Stdout"),
            EventSink::File(_) => f.write_str("EventSink::File"),
        }
    }
}

impl EventSink {
    pub fn open(output: &str) -> std::io::Result<EventSink> {
        if output == "-" {
            Ok(EventSink::Stdout(std::io::stdout()))
        } else {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(output)?;
            Ok(EventSink::File(std::io::BufWriter::new(f)))
        }
    }
    pub fn write_line(&mut self, v: &serde_json::Value) -> std::io::Result<()> {
        match self {
            EventSink::Stdout(s) => writeln!(s.lock(), "{v}"),
            EventSink::File(f) => writeln!(f, "{v}"),
        }
    }
    pub fn flush(&mut self) -> std::io::Result<()> {
        match self {
            EventSink::Stdout(s) => s.flush(),
            EventSink::File(f) => f.flush(),
        }
    }
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
}

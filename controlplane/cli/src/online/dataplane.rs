//! `stats`, `conns` and `flows`: the answering member's dataplane.

use std::time::Duration;

use bulkhead_proto::v1;
use serde_json::{json, Value};

use super::conn::Settings;
use super::output::{note, print, print_json, table, utc};
use crate::args::FilterArgs;
use crate::Fail;

/// Without `--follow`, `flows` stops after this long without an event.
const FLOWS_IDLE: Duration = Duration::from_secs(2);

/// `tcp`, `udp`, `icmp`, `icmpv6`, `sctp` or a protocol number.
pub(crate) fn parse_proto(text: &str) -> Result<u8, String> {
    match text.to_ascii_lowercase().as_str() {
        "tcp" => Ok(6),
        "udp" => Ok(17),
        "icmp" => Ok(1),
        "icmpv6" => Ok(58),
        "sctp" => Ok(132),
        other => other.parse::<u8>().map_err(|_| {
            format!("{text:?} is not a protocol (tcp, udp, icmp, icmpv6, sctp or a number 0-255)")
        }),
    }
}

pub(crate) fn proto_name(n: u32) -> String {
    match n {
        6 => "tcp".into(),
        17 => "udp".into(),
        1 => "icmp".into(),
        58 => "icmpv6".into(),
        132 => "sctp".into(),
        n => format!("proto/{n}"),
    }
}

fn filter(f: FilterArgs) -> v1::FlowFilter {
    v1::FlowFilter {
        segment: f.segment,
        address: f.address,
        port: f.port.map(u32::from),
        protocol: f.proto.map(u32::from),
    }
}

fn pair(a: &[u64]) -> (u64, u64) {
    (
        a.first().copied().unwrap_or(0),
        a.get(1).copied().unwrap_or(0),
    )
}

fn side(addr: &str, port: u32, segment: &str) -> String {
    let host = if addr.contains(':') {
        format!("[{addr}]")
    } else {
        addr.to_owned()
    };
    if segment.is_empty() {
        format!("{host}:{port}")
    } else {
        format!("{host}:{port} ({segment})")
    }
}

pub(crate) async fn stats(s: &Settings) -> Result<u8, Fail> {
    let conn = s.connect().await?;
    let r = conn
        .call(
            "DataplaneService/Counters",
            conn.dataplane().counters(conn.req(v1::CountersRequest {})),
        )
        .await?;
    if s.json {
        print_json(&counters_json(&r));
    } else {
        print(&counters_text(&r));
    }
    Ok(0)
}

pub(crate) fn counters_json(r: &v1::CountersResponse) -> Value {
    let workers: Vec<Value> = r
        .workers
        .iter()
        .map(|w| json!({"worker": w.worker, "core": w.core, "counters": w.counters}))
        .collect();
    json!({"enforced_revision": r.enforced_revision, "totals": r.totals, "workers": workers})
}

/// One row per counter: the total, then each worker's value.
pub(crate) fn counters_text(r: &v1::CountersResponse) -> String {
    let mut names: Vec<&String> = r.totals.keys().collect();
    names.sort();
    let heads: Vec<String> = r
        .workers
        .iter()
        .map(|w| format!("W{}@{}", w.worker, w.core))
        .collect();
    let mut headers = vec!["COUNTER", "TOTAL"];
    headers.extend(heads.iter().map(String::as_str));
    let rows: Vec<Vec<String>> = names
        .iter()
        .map(|n| {
            let mut row = vec![(*n).clone(), r.totals[*n].to_string()];
            row.extend(
                r.workers
                    .iter()
                    .map(|w| w.counters.get(*n).copied().unwrap_or(0).to_string()),
            );
            row
        })
        .collect();
    format!(
        "enforced revision: {}\n\n{}",
        r.enforced_revision,
        table(&headers, &rows)
    )
}

pub(crate) async fn conns(s: &Settings, f: FilterArgs, limit: Option<u32>) -> Result<u8, Fail> {
    let conn = s.connect().await?;
    let req = v1::ConnectionsRequest {
        filter: Some(filter(f)),
        limit: limit.unwrap_or(0),
    };
    let r = conn
        .call(
            "DataplaneService/Connections",
            conn.dataplane().connections(conn.req(req)),
        )
        .await?;
    if s.json {
        print_json(&connections_json(&r));
    } else {
        print(&connections_text(&r.connections));
        if r.truncated {
            note("note: more connections matched; raise --limit or narrow the filter");
        }
    }
    Ok(0)
}

pub(crate) async fn flush(s: &Settings, f: FilterArgs) -> Result<u8, Fail> {
    let conn = s.connect().await?;
    let req = v1::FlushRequest {
        filter: Some(filter(f)),
    };
    let r = conn
        .call(
            "DataplaneService/Flush",
            conn.dataplane().flush(conn.req(req)),
        )
        .await?;
    if s.json {
        print_json(&json!({"flushed": r.flushed}));
    } else {
        print(&format!("flushed {} connection(s)", r.flushed));
    }
    Ok(0)
}

pub(crate) fn connections_json(r: &v1::ConnectionsResponse) -> Value {
    let list: Vec<Value> = r
        .connections
        .iter()
        .map(|c| {
            json!({
                "src_address": c.src_address, "src_port": c.src_port, "src_segment": c.src_segment,
                "dst_address": c.dst_address, "dst_port": c.dst_port, "dst_segment": c.dst_segment,
                "protocol": c.protocol, "state": c.state, "rule": c.rule, "monitor": c.monitor,
                "revision": c.revision, "worker": c.worker, "age_ms": c.age_ms, "idle_ms": c.idle_ms,
                "packets": c.packets, "bytes": c.bytes,
            })
        })
        .collect();
    json!({"connections": list, "truncated": r.truncated})
}

pub(crate) fn connections_text(cs: &[v1::Connection]) -> String {
    let rows: Vec<Vec<String>> = cs
        .iter()
        .map(|c| {
            let (p0, p1) = pair(&c.packets);
            let (b0, b1) = pair(&c.bytes);
            vec![
                proto_name(c.protocol),
                side(&c.src_address, c.src_port, &c.src_segment),
                side(&c.dst_address, c.dst_port, &c.dst_segment),
                c.state.clone(),
                if c.monitor {
                    format!("{} (monitor)", c.rule)
                } else {
                    c.rule.clone()
                },
                c.revision.to_string(),
                c.worker.to_string(),
                format!("{}s", c.age_ms / 1000),
                format!("{}s", c.idle_ms / 1000),
                format!("{p0}/{p1}"),
                format!("{b0}/{b1}"),
            ]
        })
        .collect();
    table(
        &[
            "PROTO",
            "SOURCE",
            "DESTINATION",
            "STATE",
            "RULE",
            "REV",
            "WORKER",
            "AGE",
            "IDLE",
            "PACKETS",
            "BYTES",
        ],
        &rows,
    )
}

fn kind(k: v1::FlowEventKind) -> &'static str {
    match k {
        v1::FlowEventKind::Allowed => "allowed",
        v1::FlowEventKind::Denied => "denied",
        v1::FlowEventKind::WouldDeny => "would-deny",
        v1::FlowEventKind::Closed => "closed",
        v1::FlowEventKind::Revoked => "revoked",
        v1::FlowEventKind::Unspecified => "event",
    }
}

pub(crate) fn flow_json(e: &v1::FlowEvent) -> Value {
    json!({
        "kind": kind(e.kind()), "time": utc(e.time_ms, true), "worker": e.worker,
        "revision": e.revision, "rule": e.rule, "monitor": e.monitor,
        "src_segment": e.src_segment, "dst_segment": e.dst_segment,
        "src_address": e.src_address, "src_port": e.src_port,
        "dst_address": e.dst_address, "dst_port": e.dst_port, "protocol": e.protocol,
        "packets": e.packets, "bytes": e.bytes, "duration_ms": e.duration_ms,
        "repeats": e.repeats, "lost": e.lost,
    })
}

/// `2024-05-01T12:00:00.123Z denied tcp 10.0.0.1:4000 (web) -> 10.0.0.2:5432 (db) rule default rev 7`.
pub(crate) fn flow_text(e: &v1::FlowEvent) -> String {
    let mut s = format!(
        "{} {} {} {} -> {} rule {} rev {}",
        utc(e.time_ms, true),
        kind(e.kind()),
        proto_name(e.protocol),
        side(&e.src_address, e.src_port, &e.src_segment),
        side(&e.dst_address, e.dst_port, &e.dst_segment),
        e.rule,
        e.revision
    );
    if e.monitor {
        s.push_str(" monitor");
    }
    if e.repeats > 1 {
        s.push_str(&format!(" x{}", e.repeats));
    }
    if matches!(
        e.kind(),
        v1::FlowEventKind::Closed | v1::FlowEventKind::Revoked
    ) {
        let (p0, p1) = pair(&e.packets);
        let (b0, b1) = pair(&e.bytes);
        s.push_str(&format!(
            " after {} ms, packets {p0}/{p1}, bytes {b0}/{b1}",
            e.duration_ms
        ));
    }
    if e.lost > 0 {
        s.push_str(&format!(" ({} events lost before this)", e.lost));
    }
    s
}

pub(crate) async fn flows(
    s: &Settings,
    f: FilterArgs,
    follow: bool,
    count: Option<u64>,
) -> Result<u8, Fail> {
    let conn = s.connect().await?;
    // No deadline on the stream itself: it lasts until we stop reading.
    let req = tonic::Request::new(v1::FlowsRequest {
        filter: Some(filter(f)),
    });
    let mut stream = conn
        .call("DataplaneService/Flows", conn.dataplane().flows(req))
        .await?;
    let mut seen = 0u64;
    loop {
        if count.is_some_and(|n| seen >= n) {
            return Ok(0);
        }
        let next = if follow {
            stream.message().await
        } else {
            match tokio::time::timeout(FLOWS_IDLE, stream.message()).await {
                Err(_) => return Ok(0),
                Ok(m) => m,
            }
        };
        match next {
            Ok(Some(e)) => {
                seen += 1;
                if s.json {
                    print_json(&flow_json(&e));
                } else {
                    print(&flow_text(&e));
                }
            }
            Ok(None) => return Ok(0),
            Err(status) => return Err(conn.target.status_fail("DataplaneService/Flows", &status)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_by_name_or_number() {
        assert_eq!(parse_proto("TCP"), Ok(6));
        assert_eq!(parse_proto("udp"), Ok(17));
        assert_eq!(parse_proto("47"), Ok(47));
        assert!(parse_proto("256").is_err());
        assert!(parse_proto("gre")
            .expect_err("unknown")
            .contains("not a protocol"));
        assert_eq!(proto_name(47), "proto/47");
    }

    #[test]
    fn flow_lines() {
        let e = v1::FlowEvent {
            kind: v1::FlowEventKind::Denied as i32,
            time_ms: 1_714_564_800_123,
            revision: 7,
            rule: "default".into(),
            src_segment: "web".into(),
            dst_segment: "db".into(),
            src_address: "10.0.0.1".into(),
            src_port: 40000,
            dst_address: "2001:db8::2".into(),
            dst_port: 5432,
            protocol: 6,
            repeats: 3,
            ..Default::default()
        };
        assert_eq!(
            flow_text(&e),
            "2024-05-01T12:00:00.123Z denied tcp 10.0.0.1:40000 (web) -> [2001:db8::2]:5432 (db) rule default rev 7 x3"
        );
        let v = flow_json(&e);
        assert_eq!(v["kind"], "denied");
        assert_eq!(v["dst_port"], 5432);
    }

    #[test]
    fn counters_table_has_a_column_per_worker() {
        let w = |worker: u32, core: u32, rx: u64| v1::WorkerCounters {
            worker,
            core,
            counters: [("rx_packets".to_owned(), rx), ("drops".to_owned(), 1)].into(),
        };
        let r = v1::CountersResponse {
            totals: [("rx_packets".to_owned(), 30), ("drops".to_owned(), 2)].into(),
            workers: vec![w(0, 2, 10), w(1, 3, 20)],
            enforced_revision: 7,
        };
        assert_eq!(
            counters_text(&r),
            "enforced revision: 7\n\nCOUNTER     TOTAL  W0@2  W1@3\ndrops       2      1     1\nrx_packets  30     10    20\n"
        );
        assert_eq!(
            counters_json(&r)["workers"][1]["counters"]["rx_packets"],
            20
        );
    }

    #[test]
    fn connection_rows() {
        let c = v1::Connection {
            src_address: "10.0.0.1".into(),
            src_port: 40000,
            dst_address: "10.0.0.2".into(),
            dst_port: 5432,
            protocol: 6,
            src_segment: "app".into(),
            dst_segment: "db".into(),
            state: "established".into(),
            rule: "app-to-db".into(),
            revision: 7,
            age_ms: 5_000,
            idle_ms: 1_000,
            packets: vec![3, 2],
            bytes: vec![300, 200],
            ..Default::default()
        };
        let t = connections_text(std::slice::from_ref(&c));
        assert!(t.lines().nth(1).is_some_and(|l| l == "tcp    10.0.0.1:40000 (app)  10.0.0.2:5432 (db)  established  app-to-db  7    0       5s   1s    3/2      300/200"), "{t}");
        let v = connections_json(&v1::ConnectionsResponse {
            connections: vec![c],
            truncated: true,
        });
        assert_eq!(v["truncated"], true);
        assert_eq!(v["connections"][0]["bytes"], json!([300, 200]));
    }
}

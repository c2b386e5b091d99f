//! The packet trace as text: one block per SIGUSR2, one line per packet,
//! each step it went through (see `bulkhead_engine::trace`).

use std::fmt::Write;

use bulkhead_classify::RuleRef;
use bulkhead_engine::events::RULE_DEFAULT;
use bulkhead_engine::stats::Fate;
use bulkhead_engine::trace::{Conn, Parse, TraceRecord};
use bulkhead_engine::Engine;
use bulkhead_packet::flow::addr_to_ip;

/// Every record taken from the engine's trace, as a block of lines.
pub fn render(engine: &Engine) -> String {
    let records = engine.tracer().take();
    let mut out = format!("bulkheadd: packet trace: {} packets\n", records.len());
    for r in &records {
        let _ = writeln!(out, "  {}", line(engine, r));
    }
    out
}

/// One traced packet.
pub fn line(engine: &Engine, r: &TraceRecord) -> String {
    let mut s = format!(
        "t={}.{:06} worker={} wire={} in={} len={}",
        r.time_ns / 1_000_000_000,
        r.time_ns / 1000 % 1_000_000,
        r.worker,
        r.wire,
        r.side.as_str(),
        r.len
    );
    let _ = write!(
        s,
        " parse={}",
        match r.parse {
            Parse::Ip => "ip".to_string(),
            Parse::Fragment => "ip-fragment".to_string(),
            Parse::Arp => "arp".to_string(),
            Parse::NeighborDiscovery => "nd".to_string(),
            Parse::NonIp(t) => format!("non-ip(0x{t:04x})"),
            Parse::Drop(d) => format!("drop({})", d.as_str()),
        }
    );
    if r.outer_vlan.is_some() || r.vlan.is_some() {
        let v = |x: Option<u16>| x.map_or("-".to_string(), |v| v.to_string());
        let _ = write!(s, " vlan={}/{}", v(r.outer_vlan), v(r.vlan));
    }
    if let Some(t) = r.tuple {
        let _ = write!(
            s,
            " {} {}:{} -> {}:{}",
            crate::events::proto_name(t.proto),
            addr_to_ip(t.src),
            t.sport,
            addr_to_ip(t.dst),
            t.dport
        );
        let seg = |x: Option<u32>| x.map_or("spoofed".to_string(), |v| v.to_string());
        let _ = write!(
            s,
            " segments={}->{}",
            seg(r.src_segment),
            seg(r.dst_segment)
        );
    }
    let _ = write!(
        s,
        " conn={}",
        match r.conn {
            Conn::NotTracked => "-".to_string(),
            Conn::Found(st) => format!("found({st:?})"),
            Conn::Created(st) => format!("created({st:?})"),
            Conn::Missed => "none".to_string(),
        }
    );
    if let Some(rule) = r.rule {
        let name = engine
            .policy()
            .snapshot_of(r.generation)
            .map(|snap| {
                if rule == RULE_DEFAULT {
                    "default".to_string()
                } else {
                    snap.policy.rule_name(RuleRef::Rule(rule)).to_string()
                }
            })
            .unwrap_or_else(|| format!("#{rule}"));
        let _ = write!(s, " rule={name} generation={}", r.generation);
    }
    let _ = write!(
        s,
        " -> {}",
        match r.fate {
            Fate::Forward => "forward".to_string(),
            Fate::Parse(d) => format!("drop({})", d.as_str()),
            Fate::Engine(d) => format!("drop({})", d.as_str()),
            Fate::Held(_) => "held(awaiting first fragment)".to_string(),
            Fate::HandOff => "handed to the next worker".to_string(),
        }
    );
    s
}

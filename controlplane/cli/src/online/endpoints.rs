//! `endpoint add|rm|ls`: addresses placed in segments, thousands per request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use bulkhead_proto::v1;
use serde_json::{json, Value};

use super::conn::{Settings, EXIT_INVALID};
use super::output::{print, print_json, table};
use crate::args::EndpointCmd;
use crate::Fail;

/// Errors listed before the rest are only counted.
const MAX_LISTED_ERRORS: usize = 20;

fn check_endpoint(addr: &str, segment: &str) -> Result<v1::Endpoint, String> {
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an IPv4 or IPv6 address"))?;
    bulkhead_policy::check_name(segment).map_err(|why| format!("segment {segment:?}: {why}"))?;
    Ok(v1::Endpoint {
        address: ip.to_string(),
        segment: segment.to_owned(),
    })
}

/// Lines `ADDR SEGMENT`; blank lines and `#` comments skipped. Every bad
/// line is reported as `ORIGIN:LINE: why`, as is an address given twice.
pub(crate) fn parse_endpoints(text: &str, origin: &str) -> Result<Vec<v1::Endpoint>, String> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let ep = match fields.as_slice() {
            [addr, segment] => check_endpoint(addr, segment),
            _ => Err(format!("expected `ADDR SEGMENT`, got {line:?}")),
        };
        match ep {
            Ok(ep) => {
                if let Some(first) = seen.insert(ep.address.clone(), n) {
                    errors.push(format!(
                        "{origin}:{n}: {} is already on line {first}",
                        ep.address
                    ));
                }
                out.push(ep);
            }
            Err(why) => errors.push(format!("{origin}:{n}: {why}")),
        }
    }
    if errors.is_empty() {
        return Ok(out);
    }
    let count = errors.len();
    let mut msg: Vec<String> = errors.into_iter().take(MAX_LISTED_ERRORS).collect();
    if count > MAX_LISTED_ERRORS {
        msg.push(format!("... and {} more", count - MAX_LISTED_ERRORS));
    }
    msg.push(format!("{origin}: {count} bad line(s); nothing was sent"));
    Err(msg.join("\n"))
}

fn read_endpoints(path: &Path) -> Result<Vec<v1::Endpoint>, Fail> {
    let text = crate::read_source(path)?;
    let origin = if path.as_os_str() == "-" {
        "<stdin>".to_owned()
    } else {
        path.display().to_string()
    };
    let eps = parse_endpoints(&text, &origin).map_err(|e| Fail(EXIT_INVALID, e))?;
    if eps.is_empty() {
        return Err(Fail(
            EXIT_INVALID,
            format!("{origin}: no endpoints in the file"),
        ));
    }
    Ok(eps)
}

pub(crate) async fn run(s: &Settings, cmd: EndpointCmd) -> Result<u8, Fail> {
    match cmd {
        EndpointCmd::Add {
            addr,
            segment,
            file,
        } => {
            let endpoints = match (addr, segment, file) {
                (Some(a), Some(seg), None) => {
                    vec![check_endpoint(&a, &seg).map_err(|e| Fail(EXIT_INVALID, e))?]
                }
                (None, None, Some(f)) => read_endpoints(&f)?,
                _ => {
                    return Err(Fail(
                        EXIT_INVALID,
                        "give ADDR SEGMENT or --file FILE".into(),
                    ))
                }
            };
            let sent = endpoints.len();
            let conn = s.connect().await?;
            let req = v1::AddEndpointsRequest { endpoints };
            let r = conn
                .call("EndpointService/Add", conn.endpoints().add(conn.req(req)))
                .await?;
            if s.json {
                print_json(&json!({"sent": sent, "changed": r.changed, "index": r.index}));
            } else {
                print(&format!(
                    "placed {sent} endpoint(s), {} new or moved, at log index {}",
                    r.changed, r.index
                ));
            }
        }
        EndpointCmd::Rm { addrs } => {
            let mut addresses = Vec::with_capacity(addrs.len());
            for a in &addrs {
                let ip: IpAddr = a.parse().map_err(|_| {
                    Fail(
                        EXIT_INVALID,
                        format!("{a:?} is not an IPv4 or IPv6 address"),
                    )
                })?;
                addresses.push(ip.to_string());
            }
            let conn = s.connect().await?;
            let req = v1::RemoveEndpointsRequest { addresses };
            let r = conn
                .call(
                    "EndpointService/Remove",
                    conn.endpoints().remove(conn.req(req)),
                )
                .await?;
            if s.json {
                print_json(&json!({"removed": r.removed, "unknown": r.unknown, "index": r.index}));
            } else {
                print(&format!(
                    "removed {} endpoint(s) ({} unknown) at log index {}",
                    r.removed, r.unknown, r.index
                ));
            }
        }
        EndpointCmd::Ls { segment } => {
            let conn = s.connect().await?;
            let req = v1::ListEndpointsRequest { segment };
            let r = conn
                .call("EndpointService/List", conn.endpoints().list(conn.req(req)))
                .await?;
            if s.json {
                print_json(&endpoints_json(&r.endpoints));
            } else {
                print(&endpoints_text(&r.endpoints));
            }
        }
    }
    Ok(0)
}

pub(crate) fn endpoints_json(eps: &[v1::Endpoint]) -> Value {
    Value::Array(
        eps.iter()
            .map(|e| json!({"address": e.address, "segment": e.segment}))
            .collect(),
    )
}

pub(crate) fn endpoints_text(eps: &[v1::Endpoint]) -> String {
    let rows: Vec<Vec<String>> = eps
        .iter()
        .map(|e| vec![e.address.clone(), e.segment.clone()])
        .collect();
    table(&["ADDRESS", "SEGMENT"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_of_endpoints() {
        let text = "# lab hosts\n10.0.20.7 app\n\n  2001:db8::1\tdb  \n10.0.20.8 app\n";
        let eps = parse_endpoints(text, "eps.txt").expect("valid");
        assert_eq!(eps.len(), 3);
        assert_eq!(
            eps[1],
            v1::Endpoint {
                address: "2001:db8::1".into(),
                segment: "db".into()
            }
        );
    }

    #[test]
    fn bad_lines_are_named() {
        let text = "10.0.20.7 app\n10.0.20.300 app\nlonely\n10.0.20.9 app extra\n10.0.20.7 db\n10.0.0.1 -bad\n";
        let e = parse_endpoints(text, "eps.txt").expect_err("invalid");
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(
            lines[0],
            "eps.txt:2: \"10.0.20.300\" is not an IPv4 or IPv6 address"
        );
        assert_eq!(
            lines[1],
            "eps.txt:3: expected `ADDR SEGMENT`, got \"lonely\""
        );
        assert_eq!(
            lines[2],
            "eps.txt:4: expected `ADDR SEGMENT`, got \"10.0.20.9 app extra\""
        );
        assert_eq!(lines[3], "eps.txt:5: 10.0.20.7 is already on line 1");
        assert!(
            lines[4].starts_with("eps.txt:6: segment \"-bad\""),
            "{}",
            lines[4]
        );
        assert_eq!(lines[5], "eps.txt: 5 bad line(s); nothing was sent");
    }

    #[test]
    fn many_errors_are_counted_not_listed() {
        let text = "x\n".repeat(25);
        let e = parse_endpoints(&text, "f").expect_err("invalid");
        assert!(e.contains("... and 5 more"), "{e}");
        assert_eq!(e.lines().count(), MAX_LISTED_ERRORS + 2);
    }

    #[test]
    fn thousands_parse_quickly() {
        let text: String = (0..5000u32)
            .map(|i| {
                format!(
                    "10.{}.{}.{} seg-{}\n",
                    i >> 16,
                    (i >> 8) & 255,
                    i & 255,
                    i % 7
                )
            })
            .collect();
        assert_eq!(parse_endpoints(&text, "f").expect("valid").len(), 5000);
    }

    #[test]
    fn endpoint_list_renders() {
        let eps = vec![v1::Endpoint {
            address: "10.0.20.7".into(),
            segment: "app".into(),
        }];
        assert_eq!(
            endpoints_json(&eps),
            json!([{"address": "10.0.20.7", "segment": "app"}])
        );
        assert_eq!(endpoints_text(&eps), "ADDRESS    SEGMENT\n10.0.20.7  app\n");
    }
}

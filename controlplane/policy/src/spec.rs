//! Service specs: `tcp|udp|sctp[/port|/lo-hi]`, `icmp|icmpv6[/type|/lo-hi]`,
//! `proto/N`, `any`; and probes (one protocol with one port or type) used by
//! tests and `check`.

use bulkhead_classify::{proto, ServiceSpec};

/// Words that read as a protocol spec (a service may not take these names).
pub const SPEC_WORDS: &[&str] = &["any", "tcp", "udp", "sctp", "icmp", "icmpv6", "proto"];

const FORMS: &str =
    "expected tcp|udp|sctp[/PORT|/LO-HI], icmp|icmpv6[/TYPE|/LO-HI], proto/N or any";

fn port_proto(word: &str) -> Option<u8> {
    match word {
        "tcp" => Some(proto::TCP),
        "udp" => Some(proto::UDP),
        "sctp" => Some(proto::SCTP),
        _ => None,
    }
}

fn icmp_proto(word: &str) -> Option<u8> {
    match word {
        "icmp" => Some(proto::ICMP),
        "icmpv6" => Some(proto::ICMPV6),
        _ => None,
    }
}

/// Parse a decimal number with at most 10 digits, no sign.
fn number(s: &str, what: &str) -> Result<u64, String> {
    if s.is_empty() {
        return Err(format!("missing {what}"));
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 10 {
        return Err(format!("{what} \"{s}\" is not a number"));
    }
    s.parse::<u64>()
        .map_err(|_| format!("{what} \"{s}\" is not a number"))
}

fn bounded(s: &str, what: &str, max: u64) -> Result<u64, String> {
    let n = number(s, what)?;
    if n > max {
        return Err(format!("{what} {n} is out of range 0..={max}"));
    }
    Ok(n)
}

/// Parse `lo` or `lo-hi` bounded by `max`.
fn range(s: &str, what: &str, max: u64) -> Result<(u64, u64), String> {
    match s.split_once('-') {
        None => {
            let n = bounded(s, what, max)?;
            Ok((n, n))
        }
        Some((a, b)) => {
            let lo = bounded(a, what, max)?;
            let hi = bounded(b, what, max)?;
            if lo > hi {
                return Err(format!("{what} range {lo}-{hi} has start > end"));
            }
            Ok((lo, hi))
        }
    }
}

/// Parse one service spec.
pub fn parse_spec(s: &str) -> Result<ServiceSpec, String> {
    let (word, arg) = match s.split_once('/') {
        Some((w, a)) => (w, Some(a)),
        None => (s, None),
    };
    if let Some(p) = port_proto(word) {
        let (lo, hi) = match arg {
            None => (0, 65535),
            Some(a) => range(a, "port", 65535)?,
        };
        // Bounded to 65535 above.
        let lo = u16::try_from(lo).map_err(|_| "port out of range".to_string())?;
        let hi = u16::try_from(hi).map_err(|_| "port out of range".to_string())?;
        return Ok(ServiceSpec::Ports { proto: p, lo, hi });
    }
    if let Some(p) = icmp_proto(word) {
        let (lo, hi) = match arg {
            None => (0, 255),
            Some(a) => range(a, &format!("{word} type"), 255)?,
        };
        let lo = u8::try_from(lo).map_err(|_| "type out of range".to_string())?;
        let hi = u8::try_from(hi).map_err(|_| "type out of range".to_string())?;
        return Ok(ServiceSpec::IcmpTypes { proto: p, lo, hi });
    }
    match (word, arg) {
        ("any", None) => Ok(ServiceSpec::Any),
        ("any", Some(_)) => Err("`any` takes no port".into()),
        ("proto", None) => Err("proto needs a protocol number, e.g. proto/47".into()),
        ("proto", Some(a)) => {
            let n = bounded(a, "protocol number", 255)?;
            let n = u8::try_from(n).map_err(|_| "protocol out of range".to_string())?;
            Ok(ServiceSpec::Proto(n))
        }
        _ => Err(format!("malformed service spec \"{s}\": {FORMS}")),
    }
}

/// Canonical text of a spec (`tcp` for every TCP port, `icmp` for every type).
pub fn spec_to_string(spec: &ServiceSpec) -> String {
    match *spec {
        ServiceSpec::Any => "any".into(),
        ServiceSpec::Ports { proto: p, lo, hi } => {
            let w = proto_word(p);
            if lo == 0 && hi == 65535 {
                w
            } else if lo == hi {
                format!("{w}/{lo}")
            } else {
                format!("{w}/{lo}-{hi}")
            }
        }
        ServiceSpec::IcmpTypes { proto: p, lo, hi } => {
            let w = proto_word(p);
            if lo == 0 && hi == 255 {
                w
            } else if lo == hi {
                format!("{w}/{lo}")
            } else {
                format!("{w}/{lo}-{hi}")
            }
        }
        ServiceSpec::Proto(p) => format!("proto/{p}"),
    }
}

/// Name of a protocol number as used in specs (`proto/N` for others).
pub fn proto_word(p: u8) -> String {
    match p {
        proto::TCP => "tcp".into(),
        proto::UDP => "udp".into(),
        proto::SCTP => "sctp".into(),
        proto::ICMP => "icmp".into(),
        proto::ICMPV6 => "icmpv6".into(),
        n => format!("proto/{n}"),
    }
}

/// One connection's protocol and destination port (TCP/UDP/SCTP) or type
/// (ICMP/ICMPv6); `port` is 0 for other protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Probe {
    pub proto: u8,
    pub port: u16,
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.proto {
            proto::TCP | proto::UDP | proto::SCTP | proto::ICMP | proto::ICMPV6 => {
                write!(f, "{}/{}", proto_word(self.proto), self.port)
            }
            n => write!(f, "proto/{n}"),
        }
    }
}

/// Parse a probe: one spec with exactly one port or type (`tcp/5432`,
/// `udp/53`, `icmp/8`, `icmpv6/128`, `proto/47`). Ranges, `any`, a bare
/// `tcp` and `proto/N` for a protocol that has ports or types are refused.
pub fn parse_probe(s: &str) -> Result<Probe, String> {
    let spec = parse_spec(s)?;
    match spec {
        ServiceSpec::Any => {
            Err("`any` is not one connection: give one protocol and port, e.g. tcp/443".into())
        }
        ServiceSpec::Ports { proto: p, lo, hi } => {
            if s.contains('/') && lo == hi {
                Ok(Probe { proto: p, port: lo })
            } else {
                Err(format!(
                    "\"{s}\" is not one connection: give exactly one port, e.g. {}/443",
                    proto_word(p)
                ))
            }
        }
        ServiceSpec::IcmpTypes { proto: p, lo, hi } => {
            if s.contains('/') && lo == hi {
                Ok(Probe {
                    proto: p,
                    port: u16::from(lo),
                })
            } else {
                Err(format!(
                    "\"{s}\" is not one connection: give exactly one type, e.g. {}/8",
                    proto_word(p)
                ))
            }
        }
        ServiceSpec::Proto(p) => match p {
            proto::TCP | proto::UDP | proto::SCTP | proto::ICMP | proto::ICMPV6 => Err(format!(
                "proto/{p} is {}: give its port or type, e.g. {}/{}",
                proto_word(p),
                proto_word(p),
                if p == proto::ICMP || p == proto::ICMPV6 {
                    8
                } else {
                    443
                }
            )),
            _ => Ok(Probe { proto: p, port: 0 }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(
            parse_spec("tcp/443"),
            Ok(ServiceSpec::Ports {
                proto: 6,
                lo: 443,
                hi: 443
            })
        );
        assert_eq!(
            parse_spec("udp"),
            Ok(ServiceSpec::Ports {
                proto: 17,
                lo: 0,
                hi: 65535
            })
        );
        assert_eq!(
            parse_spec("sctp/3868"),
            Ok(ServiceSpec::Ports {
                proto: 132,
                lo: 3868,
                hi: 3868
            })
        );
        assert_eq!(
            parse_spec("tcp/8000-8099"),
            Ok(ServiceSpec::Ports {
                proto: 6,
                lo: 8000,
                hi: 8099
            })
        );
        assert_eq!(
            parse_spec("icmp"),
            Ok(ServiceSpec::IcmpTypes {
                proto: 1,
                lo: 0,
                hi: 255
            })
        );
        assert_eq!(
            parse_spec("icmpv6/128"),
            Ok(ServiceSpec::IcmpTypes {
                proto: 58,
                lo: 128,
                hi: 128
            })
        );
        assert_eq!(parse_spec("proto/47"), Ok(ServiceSpec::Proto(47)));
        assert_eq!(parse_spec("any"), Ok(ServiceSpec::Any));
    }

    #[test]
    fn bad_specs() {
        let e = parse_spec("tcp/70000").unwrap_err();
        assert!(e.contains("port 70000 is out of range"), "{e}");
        let e = parse_spec("tcp/80-20").unwrap_err();
        assert!(e.contains("start > end"), "{e}");
        assert!(parse_spec("icmp/256").unwrap_err().contains("out of range"));
        assert!(parse_spec("proto/300")
            .unwrap_err()
            .contains("out of range"));
        assert!(parse_spec("htps").unwrap_err().contains("malformed"));
        assert!(parse_spec("tcp/").unwrap_err().contains("missing port"));
        assert!(parse_spec("tcp/-5").unwrap_err().contains("missing port"));
        assert!(parse_spec("tcp/x").unwrap_err().contains("not a number"));
        assert!(parse_spec("TCP/80").is_err());
    }

    #[test]
    fn canonical_text_round_trips() {
        for s in [
            "tcp",
            "tcp/1",
            "udp/1-2",
            "icmp",
            "icmp/3-4",
            "icmpv6/128",
            "proto/47",
            "any",
        ] {
            assert_eq!(spec_to_string(&parse_spec(s).unwrap()), s);
        }
        assert_eq!(spec_to_string(&parse_spec("tcp/0-65535").unwrap()), "tcp");
    }

    #[test]
    fn probes() {
        assert_eq!(
            parse_probe("tcp/5432"),
            Ok(Probe {
                proto: 6,
                port: 5432
            })
        );
        assert_eq!(parse_probe("icmp/8"), Ok(Probe { proto: 1, port: 8 }));
        assert_eq!(parse_probe("proto/47"), Ok(Probe { proto: 47, port: 0 }));
        assert!(parse_probe("tcp/1-2").is_err());
        assert!(parse_probe("tcp").is_err());
        assert!(parse_probe("any").is_err());
        assert!(parse_probe("proto/6").is_err());
        assert_eq!(Probe { proto: 6, port: 22 }.to_string(), "tcp/22");
        assert_eq!(Probe { proto: 47, port: 0 }.to_string(), "proto/47");
    }
}

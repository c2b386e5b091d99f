//! Shared helpers for the criterion benchmarks (see `benches/`): synthetic
//! policies from `bulkhead_policy::synthetic` and batches of packets drawn
//! from inside their prefixes. Setup only; nothing here is timed.
//!
//! Invariant: every helper is deterministic for a given seed, so runs compare.
#![forbid(unsafe_code)]

use bulkhead_classify::{Ruleset, ServiceSpec};
use ipnet::IpNet;

/// Why a synthetic policy could not be made.
#[derive(Debug)]
pub struct SetupError(pub String);

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SetupError {}

/// A synthetic policy of `segments` segments and `rules` rules, resolved.
pub fn synthetic_ruleset(segments: usize, rules: usize, seed: u64) -> Result<Ruleset, SetupError> {
    let doc = bulkhead_policy::synthetic::generate(segments, rules, seed);
    let loaded = bulkhead_policy::load(&doc, "synthetic").map_err(|diags| {
        SetupError(
            diags
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    Ok(loaded.policy.ruleset().clone())
}

/// The first packet of a new IPv4 connection, as the classifier sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    pub vlan: Option<u16>,
    pub src: u32,
    pub dst: u32,
    pub proto: u8,
    pub port: u16,
}

/// splitmix64.
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// `count` packets whose addresses lie inside the policy's IPv4 prefixes
/// (random hosts), a tenth tagged with a segment's VLAN, and whose
/// protocol and port come from the policy's own specs three times in four
/// (otherwise a random TCP/UDP port).
pub fn packets(rs: &Ruleset, count: usize, seed: u64) -> Vec<Packet> {
    let mut rng = Rng(seed);
    let prefixes: Vec<(u32, u32)> = rs
        .segments
        .iter()
        .flat_map(|s| s.prefixes.iter())
        .filter_map(|p| match p {
            IpNet::V4(n) => Some((u32::from(n.network()), !u32::from(n.netmask()))),
            IpNet::V6(_) => None,
        })
        .collect();
    let specs: Vec<ServiceSpec> = rs
        .rules
        .iter()
        .flat_map(|r| r.services.iter().copied())
        .collect();
    let vlans: Vec<u16> = rs
        .segments
        .iter()
        .flat_map(|s| s.vlans.iter().copied())
        .collect();
    let address = |rng: &mut Rng| -> u32 {
        match prefixes.get(rng.below(prefixes.len())) {
            Some(&(net, host)) => net | (rng.next_u64() as u32 & host),
            None => rng.next_u64() as u32,
        }
    };
    (0..count)
        .map(|_| {
            let src = address(&mut rng);
            let dst = address(&mut rng);
            let vlan = if rng.below(10) == 0 {
                vlans.get(rng.below(vlans.len())).copied()
            } else {
                None
            };
            let (proto, port) = match specs.get(rng.below(specs.len())) {
                Some(ServiceSpec::Ports { proto, lo, hi }) if rng.below(4) != 0 => (
                    *proto,
                    lo + (rng.next_u64() % (u64::from(hi - lo) + 1)) as u16,
                ),
                Some(ServiceSpec::IcmpTypes { proto, lo, .. }) if rng.below(4) != 0 => {
                    (*proto, u16::from(*lo))
                }
                _ => (
                    if rng.below(2) == 0 { 6 } else { 17 },
                    rng.next_u64() as u16,
                ),
            };
            Packet {
                vlan,
                src,
                dst,
                proto,
                port,
            }
        })
        .collect()
}

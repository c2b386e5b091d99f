//! `bulkheadd` configuration: a TOML file (every key documented in
//! `configs/bulkheadd.toml`), or the quick-start flags, both ending in one
//! validated [`Config`]. Unknown keys are refused: a typo in a firewall's
//! configuration must fail loudly.

use std::path::{Path, PathBuf};

use serde::Deserialize;

mod cluster;
pub use cluster::{ClusterConfig, Founder};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub node: NodeConfig,
    /// Standalone: the policy is a file (exactly one of `policy`, `cluster`).
    #[serde(default)]
    pub policy: Option<PolicyConfig>,
    /// Cluster mode: the policy is the cluster's replicated revision.
    #[serde(default)]
    pub cluster: Option<ClusterConfig>,
    pub dataplane: DataplaneConfig,
    #[serde(default)]
    pub conntrack: ConntrackConfig,
    #[serde(default)]
    pub events: EventsConfig,
    #[serde(default)]
    pub trace: TraceConfig,
}

/// The packet trace: SIGUSR2 prints what was recorded and records the next
/// `packets` packets matching the filter.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct TraceConfig {
    /// Packets recorded after each SIGUSR2 (default 50; at most 4096).
    #[serde(default)]
    pub packets: Option<u32>,
    /// Only packets from or to this address.
    #[serde(default)]
    pub address: Option<std::net::IpAddr>,
    /// Only this protocol: "tcp", "udp", "icmp", "icmpv6", "sctp" or a number.
    #[serde(default)]
    pub proto: Option<String>,
    /// Only packets from or to this port.
    #[serde(default)]
    pub port: Option<u16>,
}

impl TraceConfig {
    /// Packets recorded per SIGUSR2.
    pub fn packets(&self) -> u32 {
        self.packets.unwrap_or(50)
    }

    /// The protocol number of `proto`, if valid.
    pub fn proto_number(&self) -> Result<Option<u8>, String> {
        let Some(p) = &self.proto else {
            return Ok(None);
        };
        let n = match p.as_str() {
            "tcp" => 6,
            "udp" => 17,
            "icmp" => 1,
            "icmpv6" => 58,
            "sctp" => 132,
            other => other.parse::<u8>().map_err(|_| {
                format!("{other:?} is not tcp, udp, icmp, icmpv6, sctp or a protocol number")
            })?,
        };
        Ok(Some(n))
    }

    /// The dataplane's trace filter.
    pub fn filter(&self) -> bulkhead_engine::trace::TraceFilter {
        bulkhead_engine::trace::TraceFilter {
            addr: self.address.map(bulkhead_packet::flow::ip_to_addr),
            proto: self.proto_number().ok().flatten(),
            port: self.port,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Name of this appliance in logs and events.
    #[serde(default = "default_node_name")]
    pub name: String,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            name: default_node_name(),
        }
    }
}

fn default_node_name() -> String {
    "bulkhead".into()
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Policy document (YAML or JSON). Re-read on SIGHUP.
    pub file: PathBuf,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WireConfig {
    /// DPDK device arguments of port A, e.g. `net_af_packet0,iface=veth-a`.
    pub a: String,
    /// DPDK device arguments of port B.
    pub b: String,
    /// Zones of sides A and B (where frames entering there attach; see the
    /// policy's segment `zones`). Absent: no zone.
    #[serde(default)]
    pub zones: Option<[String; 2]>,
    /// Per-VLAN zones on a side, overriding the side's zone (the outer tag
    /// of a QinQ frame is the one matched).
    #[serde(default)]
    pub vlan_zones: Vec<VlanZone>,
}

/// A zone bound to one VLAN on one side of a wire.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VlanZone {
    /// `a` or `b`.
    pub side: String,
    pub vlan: u16,
    pub zone: String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum IdleConfig {
    BusyPoll,
    #[default]
    Adaptive,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataplaneConfig {
    /// Extra EAL arguments (the `--vdev` of each wire port is added by bulkheadd).
    #[serde(default = "default_eal")]
    pub eal_args: Vec<String>,
    /// CPU cores for workers, one worker per core.
    #[serde(default = "default_workers")]
    pub workers: Vec<usize>,
    /// Port pairs forwarded as virtual wires.
    pub wire: Vec<WireConfig>,
    #[serde(default = "default_mbufs")]
    pub mbufs: u32,
    #[serde(default = "default_mbuf_cache")]
    pub mbuf_cache: u32,
    #[serde(default = "default_desc")]
    pub rx_desc: u16,
    #[serde(default = "default_desc")]
    pub tx_desc: u16,
    /// Largest IP packet every port carries (68..=9216; frames may add an
    /// Ethernet header and two VLAN tags). Longer frames are dropped and
    /// counted as ingress drops (`oversize`).
    #[serde(default = "default_mtu")]
    pub mtu: u32,
    #[serde(default)]
    pub idle: IdleConfig,
    /// Forward non-IP frames other than ARP (default: drop and count).
    #[serde(default)]
    pub pass_non_ip: bool,
    /// Forward later IP fragments without waiting for their first
    /// fragment's verdict (default: off; later fragments follow the verdict
    /// of their datagram's first fragment, see the spec's virtual reassembly).
    #[serde(default)]
    pub pass_fragments: bool,
    /// Zones router advertisements may come from (RA guard, RFC 6105);
    /// empty: none pass.
    #[serde(default)]
    pub router_zones: Vec<String>,
}

fn default_eal() -> Vec<String> {
    Vec::new()
}
fn default_workers() -> Vec<usize> {
    vec![0]
}
fn default_mbufs() -> u32 {
    8191
}
fn default_mbuf_cache() -> u32 {
    256
}
fn default_desc() -> u16 {
    1024
}
fn default_mtu() -> u32 {
    u32::from(bulkhead_dpdk::DEFAULT_MTU)
}

/// The MTUs `dataplane.mtu` accepts: IPv4's minimum to the largest jumbo frame commonly
/// configured.
pub const MTU_RANGE: std::ops::RangeInclusive<u32> = 68..=9216;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConntrackConfig {
    /// Most connections tracked at once per worker (the table has twice as many slots).
    #[serde(default = "default_capacity")]
    pub capacity: usize,
    /// Timeouts in seconds; absent keys keep the documented defaults.
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
    /// Most connections one source address may have tracked per worker
    /// (0: unlimited; default: capacity / 8).
    #[serde(default)]
    pub per_source_limit: Option<u32>,
    /// Most connections the sources of one segment may have tracked per
    /// worker (0: unlimited; default: capacity * 3 / 4).
    #[serde(default)]
    pub per_segment_limit: Option<u32>,
    /// Check TCP sequence numbers against the windows (refuses blind RSTs
    /// and data injection within an allowed pair). Default off: measured at
    /// more than 10 % of established throughput (see the README).
    #[serde(default)]
    pub tcp_window_tracking: bool,
}

impl Default for ConntrackConfig {
    fn default() -> Self {
        ConntrackConfig {
            capacity: default_capacity(),
            timeouts: TimeoutsConfig::default(),
            per_source_limit: None,
            per_segment_limit: None,
            tcp_window_tracking: false,
        }
    }
}

impl ConntrackConfig {
    /// The quotas, defaults filled in from the capacity.
    pub fn quotas(&self) -> bulkhead_conntrack::Quotas {
        let d = bulkhead_conntrack::Quotas::defaults_for(self.capacity);
        bulkhead_conntrack::Quotas {
            per_source: self.per_source_limit.unwrap_or(d.per_source),
            per_segment: self.per_segment_limit.unwrap_or(d.per_segment),
        }
    }
}

fn default_capacity() -> usize {
    1 << 16
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsConfig {
    pub tcp_syn_sent: Option<u64>,
    pub tcp_syn_recv: Option<u64>,
    pub tcp_established: Option<u64>,
    pub tcp_fin_wait: Option<u64>,
    pub tcp_last_ack: Option<u64>,
    pub tcp_time_wait: Option<u64>,
    pub tcp_closed: Option<u64>,
    pub udp_unreplied: Option<u64>,
    pub udp_assured: Option<u64>,
    pub icmp: Option<u64>,
    pub other: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum EventModeConfig {
    #[default]
    All,
    Logged,
    Off,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// `-` for standard output, or a file path (appended to).
    #[serde(default = "default_events_output")]
    pub output: String,
    #[serde(default)]
    pub mode: EventModeConfig,
    /// Per-worker event queue length; events beyond it are dropped and counted.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// Print counters to stderr every this many seconds (0 = only at exit).
    #[serde(default)]
    pub stats_interval: u64,
    /// Repeated denials of one source, destination segment and service
    /// within this many milliseconds are reported once, with a count
    /// (0: report each).
    #[serde(default = "default_fold_ms")]
    pub deny_fold_ms: u64,
    /// Denial events reported per second per worker; the rest are counted
    /// only (0: unlimited).
    #[serde(default = "default_deny_rate")]
    pub deny_rate: u32,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            output: default_events_output(),
            mode: EventModeConfig::default(),
            queue: default_queue(),
            stats_interval: 0,
            deny_fold_ms: default_fold_ms(),
            deny_rate: default_deny_rate(),
        }
    }
}

impl EventsConfig {
    /// The dataplane's folding settings.
    pub fn fold(&self) -> bulkhead_engine::fold::FoldConfig {
        bulkhead_engine::fold::FoldConfig {
            interval_ns: self.deny_fold_ms.saturating_mul(1_000_000),
            rate_per_sec: self.deny_rate,
            burst: self.deny_rate,
        }
    }
}

fn default_fold_ms() -> u64 {
    1000
}
fn default_deny_rate() -> u32 {
    1000
}

fn default_events_output() -> String {
    "-".into()
}
fn default_queue() -> usize {
    4096
}

impl Config {
    /// `dataplane.mtu`, once validated (out-of-range values read as the default).
    pub fn mtu(&self) -> u16 {
        if MTU_RANGE.contains(&self.dataplane.mtu) {
            self.dataplane.mtu as u16
        } else {
            bulkhead_dpdk::DEFAULT_MTU
        }
    }

    /// The dataplane's zone bindings.
    pub fn zones(&self) -> bulkhead_engine::zones::ZoneConfig {
        use bulkhead_engine::zones::{SideZones, ZoneConfig};
        let wires = self
            .dataplane
            .wire
            .iter()
            .map(|w| {
                let side = |i: usize, name: &str| SideZones {
                    zone: w.zones.as_ref().map(|z| z[i].clone()),
                    vlans: w
                        .vlan_zones
                        .iter()
                        .filter(|v| v.side == name)
                        .map(|v| (v.vlan, v.zone.clone()))
                        .collect(),
                };
                [side(0, "a"), side(1, "b")]
            })
            .collect();
        ZoneConfig {
            wires,
            router_zones: self.dataplane.router_zones.clone(),
        }
    }

    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parse and validate config text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        // Relative paths are relative to the config file.
        if let Some(dir) = path.parent() {
            if let Some(p) = cfg.policy.as_mut() {
                if p.file.is_relative() {
                    p.file = dir.join(&p.file);
                }
            }
            if let Some(c) = cfg.cluster.as_mut() {
                for p in [&mut c.data_dir, &mut c.pki] {
                    if p.is_relative() {
                        *p = dir.join(&*p);
                    }
                }
            }
        }
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Check values serde cannot.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |key: &'static str, message: String| {
            Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                key,
                message,
            })
        };
        match (&self.policy, &self.cluster) {
            (Some(_), Some(_)) => {
                return bad(
                    "cluster",
                    "give either [policy] (standalone) or [cluster], not both".into(),
                )
            }
            (None, None) => {
                return bad(
                    "policy",
                    "missing: [policy] file = ... (standalone) or a [cluster] section".into(),
                )
            }
            (None, Some(c)) => {
                if let Err((key, message)) = c.check(&self.node.name) {
                    return bad(key, message);
                }
            }
            (Some(_), None) => {}
        }
        let d = &self.dataplane;
        if d.wire.is_empty() {
            return bad(
                "dataplane.wire",
                "at least one port pair is required".into(),
            );
        }
        if d.wire.len() > bulkhead_conntrack::MAX_WIRES {
            return bad(
                "dataplane.wire",
                format!(
                    "{} wires; at most {} (connection keys keep wires apart by a 4-bit index)",
                    d.wire.len(),
                    bulkhead_conntrack::MAX_WIRES
                ),
            );
        }
        if d.workers.is_empty() {
            return bad(
                "dataplane.workers",
                "at least one worker core is required".into(),
            );
        }
        // The cores this process may run on (taskset / cpuset aware). Checked
        // before the EAL starts: afterwards this thread is pinned to one core.
        let allowed: std::collections::HashSet<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect();
        let mut seen = std::collections::HashSet::new();
        for &c in &d.workers {
            if c >= 1024 {
                return bad("dataplane.workers", format!("core {c} is out of range"));
            }
            if !seen.insert(c) {
                return bad("dataplane.workers", format!("core {c} is listed twice"));
            }
            if !allowed.is_empty() && !allowed.contains(&c) {
                let mut list: Vec<usize> = allowed.iter().copied().collect();
                list.sort_unstable();
                return bad(
                    "dataplane.workers",
                    format!("core {c} is not available to this process (available: {list:?})"),
                );
            }
        }
        for w in &d.wire {
            for dev in [&w.a, &w.b] {
                if device_name(dev).is_empty() {
                    return bad("dataplane.wire", format!("empty device name in {dev:?}"));
                }
            }
        }
        let mut names = std::collections::HashSet::new();
        for w in &d.wire {
            for dev in [&w.a, &w.b] {
                if !names.insert(device_name(dev).to_string()) {
                    return bad(
                        "dataplane.wire",
                        format!("device {:?} is used twice", device_name(dev)),
                    );
                }
            }
        }
        if d.mbufs < 1024 {
            return bad(
                "dataplane.mbufs",
                format!("{} is too few (at least 1024)", d.mbufs),
            );
        }
        if d.mbuf_cache > 512 {
            return bad(
                "dataplane.mbuf_cache",
                format!("{} exceeds DPDK's 512", d.mbuf_cache),
            );
        }
        if !MTU_RANGE.contains(&d.mtu) {
            return bad(
                "dataplane.mtu",
                format!(
                    "{} is outside {}..={}",
                    d.mtu,
                    MTU_RANGE.start(),
                    MTU_RANGE.end()
                ),
            );
        }
        for w in &d.wire {
            for dev in [&w.a, &w.b] {
                if crate::af_packet::is_af_packet(dev) {
                    if let Err(e) = crate::af_packet::geometry(dev, self.mtu()) {
                        return bad("dataplane.wire", format!("{dev:?}: {e}"));
                    }
                }
            }
        }
        for (key, v) in [
            ("dataplane.rx_desc", d.rx_desc),
            ("dataplane.tx_desc", d.tx_desc),
        ] {
            if !(64..=16384).contains(&v) {
                return bad(key, format!("{v} is outside 64..=16384"));
            }
        }
        for w in &d.wire {
            let names = w.zones.iter().flatten().map(String::as_str);
            let vlan_names = w.vlan_zones.iter().map(|v| v.zone.as_str());
            for z in names
                .chain(vlan_names)
                .chain(d.router_zones.iter().map(String::as_str))
            {
                if !valid_zone_name(z) {
                    return bad(
                        "dataplane.wire.zones",
                        format!("zone name {z:?} is not a name (letters, digits, '-', '_', '.')"),
                    );
                }
            }
            for v in &w.vlan_zones {
                if v.side != "a" && v.side != "b" {
                    return bad(
                        "dataplane.wire.vlan_zones",
                        format!("side {:?} is not \"a\" or \"b\"", v.side),
                    );
                }
                if !(1..=4094).contains(&v.vlan) {
                    return bad(
                        "dataplane.wire.vlan_zones",
                        format!("VLAN {} is outside 1..=4094", v.vlan),
                    );
                }
            }
        }
        let c = &self.conntrack;
        if c.capacity < 64 || c.capacity > (1 << 26) {
            return bad(
                "conntrack.capacity",
                format!("{} is outside 64..=67108864", c.capacity),
            );
        }
        let t = &c.timeouts;
        for (key, v) in [
            ("conntrack.timeouts.tcp_syn_sent", t.tcp_syn_sent),
            ("conntrack.timeouts.tcp_syn_recv", t.tcp_syn_recv),
            ("conntrack.timeouts.tcp_established", t.tcp_established),
            ("conntrack.timeouts.tcp_fin_wait", t.tcp_fin_wait),
            ("conntrack.timeouts.tcp_last_ack", t.tcp_last_ack),
            ("conntrack.timeouts.tcp_time_wait", t.tcp_time_wait),
            ("conntrack.timeouts.tcp_closed", t.tcp_closed),
            ("conntrack.timeouts.udp_unreplied", t.udp_unreplied),
            ("conntrack.timeouts.udp_assured", t.udp_assured),
            ("conntrack.timeouts.icmp", t.icmp),
            ("conntrack.timeouts.other", t.other),
        ] {
            if let Some(v) = v {
                if !(1..=30 * 24 * 3600).contains(&v) {
                    return bad(key, format!("{v} s is outside 1..=2592000 (30 days)"));
                }
            }
        }
        if self.trace.packets() > 4096 {
            return bad(
                "trace.packets",
                format!("{} is above 4096", self.trace.packets()),
            );
        }
        if let Err(e) = self.trace.proto_number() {
            return bad("trace.proto", e);
        }
        if self.events.queue == 0 || self.events.queue > (1 << 24) {
            return bad(
                "events.queue",
                format!("{} is outside 1..=16777216", self.events.queue),
            );
        }
        Ok(())
    }
}

/// A zone name: like a policy name (letters, digits, `-`, `_`, `.`), 1 to 64 bytes.
fn valid_zone_name(z: &str) -> bool {
    !z.is_empty()
        && z.len() <= 64
        && z.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The DPDK device name of device arguments (`net_ring0,x=y` → `net_ring0`).
pub fn device_name(devargs: &str) -> &str {
    devargs.split(',').next().unwrap_or("").trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[policy]
file = "policy.yaml"
[dataplane]
wire = [{ a = "net_ring0", b = "net_ring1" }]
"#;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = Config::parse(MINIMAL, Path::new("/etc/bulkhead/b.toml")).unwrap();
        assert_eq!(
            c.policy.unwrap().file,
            PathBuf::from("/etc/bulkhead/policy.yaml")
        );
        assert_eq!(c.dataplane.workers, vec![0]);
        assert_eq!(c.conntrack.capacity, 1 << 16);
        assert_eq!(c.events.output, "-");
        assert_eq!(c.dataplane.idle, IdleConfig::Adaptive);
    }

    #[test]
    fn unknown_key_is_refused_by_name() {
        let text = format!("{MINIMAL}\n[conntrack]\ncapacty = 1024\n");
        let e = Config::parse(&text, Path::new("b.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("capacty"), "{e}");
        assert!(e.starts_with("b.toml"), "{e}");
    }

    #[test]
    fn bad_values_are_refused_with_key() {
        for (extra, key) in [
            ("[conntrack]\ncapacity = 10\n", "conntrack.capacity"),
            (
                "[conntrack.timeouts]\nicmp = 0\n",
                "conntrack.timeouts.icmp",
            ),
            ("[events]\nqueue = 0\n", "events.queue"),
        ] {
            let text = format!("{MINIMAL}\n{extra}");
            let e = Config::parse(&text, Path::new("b.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{e}");
        }
        let dup = MINIMAL.replace("net_ring1", "net_ring0,x=1");
        let e = Config::parse(&dup, Path::new("b.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("used twice"), "{e}");
        let nowire = "[policy]\nfile='p'\n[dataplane]\nwire = []\n";
        let e = Config::parse(nowire, Path::new("b.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("dataplane.wire"), "{e}");
    }

    #[test]
    fn mtu_is_checked_by_key() {
        let c = Config::parse(MINIMAL, Path::new("b.toml")).unwrap();
        assert_eq!(c.mtu(), 1500);
        for bad in [0, 67, 9217, 70000] {
            let text = MINIMAL.replace("[dataplane]", &format!("[dataplane]\nmtu = {bad}"));
            let e = Config::parse(&text, Path::new("b.toml"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("dataplane.mtu") && e.contains("68..=9216"),
                "{e}"
            );
        }
        let text = MINIMAL.replace("[dataplane]", "[dataplane]\nmtu = 9000");
        assert_eq!(
            Config::parse(&text, Path::new("b.toml")).unwrap().mtu(),
            9000
        );
        let af = r#"
[policy]
file = "p.yaml"
[dataplane]
mtu = 9000
wire = [{ a = "net_af_packet0,iface=a,framesz=2048", b = "net_af_packet1,iface=b" }]
"#;
        let e = Config::parse(af, Path::new("b.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("dataplane.wire") && e.contains("framesz=2048"),
            "{e}"
        );
    }

    #[test]
    fn shipped_example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/bulkheadd.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        Config::parse(&text, &path).unwrap();
    }

    #[test]
    fn device_name_strips_args() {
        assert_eq!(device_name("net_af_packet0,iface=veth-a"), "net_af_packet0");
        assert_eq!(device_name("net_ring0"), "net_ring0");
    }

    #[test]
    fn zones_quotas_and_fold_settings() {
        let text = r#"
[policy]
file = "p.yaml"
[dataplane]
router_zones = ["uplink"]
wire = [{ a = "net_ring0", b = "net_ring1", zones = ["clients", "servers"], vlan_zones = [{ side = "a", vlan = 30, zone = "uplink" }] }]
[conntrack]
capacity = 4096
per_source_limit = 0
[events]
deny_rate = 5
"#;
        let c = Config::parse(text, Path::new("b.toml")).unwrap();
        let z = c.zones();
        assert_eq!(z.wires[0][0].zone.as_deref(), Some("clients"));
        assert_eq!(z.wires[0][0].vlans, vec![(30, "uplink".to_string())]);
        assert_eq!(z.wires[0][1].zone.as_deref(), Some("servers"));
        assert_eq!(z.router_zones, vec!["uplink".to_string()]);
        let q = c.conntrack.quotas();
        assert_eq!((q.per_source, q.per_segment), (0, 3072));
        assert_eq!(c.events.fold().rate_per_sec, 5);
        for (bad, key) in [
            (r#"zones = ["a b", "c"]"#, "zone name"),
            (
                r#"vlan_zones = [{ side = "c", vlan = 3, zone = "z" }]"#,
                "side",
            ),
            (
                r#"vlan_zones = [{ side = "a", vlan = 4095, zone = "z" }]"#,
                "4095",
            ),
        ] {
            let t = MINIMAL.replace(
                r#"b = "net_ring1" }"#,
                &format!(r#"b = "net_ring1", {bad} }}"#),
            );
            let e = Config::parse(&t, Path::new("b.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{e}");
        }
    }
}

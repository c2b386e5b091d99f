//! `bulkheadd`: the Bulkhead appliance. Loads a policy, starts the DPDK
//! workers on the configured virtual wires, writes flow events as JSON lines,
//! reloads the policy on SIGHUP and stops cleanly on SIGTERM/SIGINT.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use mimalloc::MiMalloc;
use tracing::{error, info};

use bulkhead_appliance::config::{Config, WireConfig};
use bulkhead_appliance::run::{self, RunError};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// Bulkhead appliance daemon: a stateful, segment-keyed DPDK firewall on virtual wires.
#[derive(Debug, Parser)]
#[command(
    name = "bulkheadd",
    version,
    after_help = "Examples:\n  bulkheadd --config /etc/bulkhead/bulkheadd.toml\n  bulkheadd --policy configs/policies/three-tier.yaml \\\n      --wire net_af_packet0,iface=veth-a net_af_packet1,iface=veth-b --workers 1\n  bulkheadd --node gw-1 --data-dir /var/lib/bulkhead --listen 10.0.0.1:7443 --pki /etc/bulkhead/pki \\\n      --initial-cluster gw-1=10.0.0.1:7443,gw-2=10.0.0.2:7443,gw-3=10.0.0.3:7443 \\\n      --wire net_af_packet0,iface=veth-a net_af_packet1,iface=veth-b\n\nSignals: SIGHUP reloads the policy (standalone; an invalid one is refused, the running one stays),\nSIGUSR1 prints counters, SIGTERM/SIGINT stop with final counters."
)]
struct Args {
    /// Configuration file (TOML; every key documented in configs/bulkheadd.toml).
    #[arg(long, conflicts_with_all = ["policy", "wire", "initial_cluster", "join"])]
    config: Option<PathBuf>,
    /// Quick start without a config file: the policy document (standalone).
    #[arg(long, requires = "wire", conflicts_with_all = ["initial_cluster", "join"])]
    policy: Option<PathBuf>,
    /// Cluster mode: this member's name (the common name of its certificate).
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
    /// Cluster mode: where the Raft log and snapshots live.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Cluster mode: the one address for peers and management clients.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<String>,
    /// Cluster mode: the address others reach this member at (default: --listen).
    #[arg(long, value_name = "ADDR:PORT")]
    advertise: Option<String>,
    /// Cluster mode: directory with ca.crt and NAME.crt / NAME.key (bulkctl pki).
    #[arg(long, value_name = "DIR")]
    pki: Option<PathBuf>,
    /// Cluster mode: the founding members, NAME=ADDR:PORT,…
    #[arg(
        long,
        value_name = "NAME=ADDR:PORT,…",
        value_delimiter = ',',
        requires = "wire"
    )]
    initial_cluster: Vec<String>,
    /// Cluster mode: join a running cluster through this member (after
    /// `bulkctl cluster add-member`), instead of --initial-cluster.
    #[arg(
        long,
        value_name = "ADDR:PORT",
        requires = "wire",
        conflicts_with = "initial_cluster"
    )]
    join: Option<String>,
    /// Cluster mode: identities granted admin when the cluster is founded (default: admin).
    #[arg(long, value_delimiter = ',', value_name = "NAME,…")]
    admins: Vec<String>,
    /// Quick start: one port pair as two DPDK device arguments (repeatable).
    #[arg(long, num_args = 2, value_names = ["DEVARGS_A", "DEVARGS_B"], action = clap::ArgAction::Append)]
    wire: Vec<String>,
    /// Quick start: worker cores, e.g. `1` or `1,2` (default: 0).
    /// Zones of the two sides of a wire: the first --zones names those of
    /// the first --wire, and so on.
    #[arg(long, num_args = 2, value_names = ["ZONE_A", "ZONE_B"], action = clap::ArgAction::Append, requires = "wire")]
    zones: Vec<String>,
    /// Zones router advertisements may come from (RA guard); none by default.
    #[arg(long, value_delimiter = ',')]
    router_zones: Vec<String>,
    #[arg(long, value_delimiter = ',')]
    workers: Vec<usize>,
    /// Quick start: extra EAL arguments as one string (default: "--no-huge -m 512 --no-pci").
    #[arg(long, allow_hyphen_values = true)]
    eal: Option<String>,
    /// Flow events output: `-` (stdout, default) or a file.
    #[arg(long)]
    events: Option<String>,
    /// Most connections tracked at once per worker.
    #[arg(long)]
    conntrack_capacity: Option<usize>,
    /// Packet buffers in the pool (a pcap replay device needs one per packet in its file).
    #[arg(long)]
    mbufs: Option<u32>,
    /// Idle behaviour: busy-poll or adaptive.
    #[arg(long)]
    idle: Option<String>,
    /// Print counters every N seconds.
    #[arg(long)]
    stats_interval: Option<u64>,
    /// Largest IP packet every port carries (dataplane.mtu, 68..=9216; default 1500).
    #[arg(long, value_name = "BYTES")]
    mtu: Option<u32>,
    /// Forward later IP fragments without their first fragment's verdict
    /// (dataplane.pass_fragments).
    #[arg(long)]
    pass_fragments: bool,
    /// Check TCP sequence windows (conntrack.tcp_window_tracking).
    #[arg(long)]
    tcp_window_tracking: bool,
}

fn quick_start_config(args: &Args) -> Result<Config, String> {
    let cluster = !args.initial_cluster.is_empty() || args.join.is_some();
    if args.policy.is_none() && !cluster {
        return Err("either --config FILE, --policy FILE --wire A B, or cluster mode \
                    (--node NAME --data-dir DIR --listen ADDR:PORT --pki DIR \
                    --initial-cluster NAME=ADDR:PORT,… | --join ADDR:PORT) with --wire A B is required"
            .into());
    }
    if args.zones.len() > args.wire.len() {
        return Err(format!(
            "--zones given {} times for {} --wire",
            args.zones.len() / 2,
            args.wire.len() / 2
        ));
    }
    let wire: Vec<WireConfig> = args
        .wire
        .chunks(2)
        .enumerate()
        .map(|(i, c)| WireConfig {
            a: c[0].clone(),
            b: c.get(1).cloned().unwrap_or_default(),
            zones: args
                .zones
                .get(2 * i..2 * i + 2)
                .map(|z| [z[0].clone(), z[1].clone()]),
            vlan_zones: Vec::new(),
        })
        .collect();
    let eal = args
        .eal
        .clone()
        .unwrap_or_else(|| "--no-huge -m 512 --no-pci".to_string());
    let mut toml = String::new();
    match &args.policy {
        Some(policy) => {
            toml.push_str("[policy]\nfile = ");
            toml.push_str(&toml_str(&policy.to_string_lossy()));
            toml.push('\n');
        }
        None => toml.push_str(&cluster_section(args)?),
    }
    toml.push_str("[dataplane]\neal_args = [");
    toml.push_str(
        &eal.split_whitespace()
            .map(toml_str)
            .collect::<Vec<_>>()
            .join(", "),
    );
    toml.push_str("]\nwire = [");
    toml.push_str(
        &wire
            .iter()
            .map(|w| match &w.zones {
                Some([za, zb]) => format!(
                    "{{ a = {}, b = {}, zones = [{}, {}] }}",
                    toml_str(&w.a),
                    toml_str(&w.b),
                    toml_str(za),
                    toml_str(zb)
                ),
                None => format!("{{ a = {}, b = {} }}", toml_str(&w.a), toml_str(&w.b)),
            })
            .collect::<Vec<_>>()
            .join(", "),
    );
    toml.push_str("]\n");
    if !args.workers.is_empty() {
        toml.push_str(&format!("workers = {:?}\n", args.workers));
    }
    if !args.router_zones.is_empty() {
        toml.push_str(&format!(
            "router_zones = [{}]\n",
            args.router_zones
                .iter()
                .map(|z| toml_str(z))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Config::parse(&toml, Path::new("(command line)")).map_err(|e| e.to_string())
}

/// The `[node]` and `[cluster]` sections from the cluster quick-start flags.
fn cluster_section(args: &Args) -> Result<String, String> {
    let need =
        |v: Option<String>, flag: &str| v.ok_or_else(|| format!("cluster mode needs {flag}"));
    let node = need(args.node.clone(), "--node NAME")?;
    let data_dir = need(
        args.data_dir
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        "--data-dir DIR",
    )?;
    let listen = need(args.listen.clone(), "--listen ADDR:PORT")?;
    let pki = need(
        args.pki.as_ref().map(|p| p.to_string_lossy().into_owned()),
        "--pki DIR",
    )?;
    let list = |v: &[String]| v.iter().map(|s| toml_str(s)).collect::<Vec<_>>().join(", ");
    let mut t = format!(
        "[node]\nname = {}\n[cluster]\ndata_dir = {}\nlisten = {}\npki = {}\n",
        toml_str(&node),
        toml_str(&data_dir),
        toml_str(&listen),
        toml_str(&pki)
    );
    if let Some(a) = &args.advertise {
        t.push_str(&format!("advertise = {}\n", toml_str(a)));
    }
    if !args.initial_cluster.is_empty() {
        t.push_str(&format!(
            "initial_cluster = [{}]\n",
            list(&args.initial_cluster)
        ));
    }
    if let Some(j) = &args.join {
        t.push_str(&format!("join = {}\n", toml_str(j)));
    }
    if !args.admins.is_empty() {
        t.push_str(&format!("admins = [{}]\n", list(&args.admins)));
    }
    Ok(t)
}

fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Log lines on stderr: time, level, target, message and fields. The level
/// comes from `RUST_LOG` (e.g. `RUST_LOG=debug`), `info` by default; colour
/// only on a terminal, so a log file stays greppable.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::builder()
        .with_default_directive(tracing::level_filters::LevelFilter::INFO.into())
        .from_env_lossy();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging();
    let started = Instant::now();
    let mut cfg = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                error!("{e}");
                return ExitCode::from(2);
            }
        },
        None => match quick_start_config(&args) {
            Ok(c) => c,
            Err(e) => {
                error!("{e}");
                return ExitCode::from(2);
            }
        },
    };
    if let Some(e) = &args.events {
        cfg.events.output = e.clone();
    }
    if let Some(c) = args.conntrack_capacity {
        cfg.conntrack.capacity = c;
    }
    if let Some(m) = args.mbufs {
        cfg.dataplane.mbufs = m;
    }
    if let Some(s) = args.stats_interval {
        cfg.events.stats_interval = s;
    }
    if let Some(m) = args.mtu {
        cfg.dataplane.mtu = m;
    }
    if args.tcp_window_tracking {
        cfg.conntrack.tcp_window_tracking = true;
    }
    if args.pass_fragments {
        cfg.dataplane.pass_fragments = true;
    }
    if let Some(idle) = &args.idle {
        cfg.dataplane.idle = match idle.as_str() {
            "busy-poll" => bulkhead_appliance::config::IdleConfig::BusyPoll,
            "adaptive" => bulkhead_appliance::config::IdleConfig::Adaptive,
            other => {
                error!("--idle {other:?}: expected busy-poll or adaptive");
                return ExitCode::from(2);
            }
        };
    }
    let origin = args
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from("(command line)"));
    if let Err(e) = cfg.validate(&origin) {
        error!("{e}");
        return ExitCode::from(2);
    }
    match run::run(cfg) {
        Ok(()) => {
            info!(uptime = ?started.elapsed(), "stopped");
            ExitCode::SUCCESS
        }
        Err(e @ RunError::Policy { .. }) | Err(e @ RunError::Config(_)) => {
            error!("{e}");
            ExitCode::from(2)
        }
        Err(e) => {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            error!("{msg}");
            ExitCode::FAILURE
        }
    }
}

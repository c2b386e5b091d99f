//! Start-up, the control loop and shutdown of an appliance: standalone
//! (the policy is a file, re-read on SIGHUP) or a cluster member (the
//! policy is the cluster's replicated revision, see [`crate::member_mode`]).

use std::time::{Duration, Instant};

use bulkhead_dpdk::{Eal, Port};
use bulkhead_engine::events::EventMode;
use bulkhead_engine::idle::IdleMode;
use bulkhead_engine::stats::Counters;
use bulkhead_engine::{Engine, EngineConfig};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
use tracing::{error, info, warn};

use crate::af_packet;
use crate::config::{device_name, Config, ConfigError, EventModeConfig, IdleConfig};
use crate::event_writer::EventWriter;
use crate::events::EventSink;
use crate::member_mode::MemberMode;
pub use crate::reload::load_policy;
use crate::reload::{Outcome, Reloader};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("policy {path} refused:\n{errors}")]
    Policy { path: String, errors: String },
    #[error("DPDK start-up failed")]
    Dpdk(#[from] bulkhead_dpdk::DpdkError),
    #[error("device {device:?}")]
    Device {
        device: String,
        source: bulkhead_dpdk::DpdkError,
    },
    #[error("dataplane start-up failed")]
    Engine(#[from] bulkhead_engine::EngineError),
    #[error("flow events output {output:?}")]
    Events {
        output: String,
        source: std::io::Error,
    },
    #[error("signal handling")]
    Signals(std::io::Error),
    #[error("cluster member start-up failed: {0}")]
    Member(String),
}

/// EAL arguments for this configuration (the program name is added by `Eal::init`).
pub fn eal_args(cfg: &Config) -> Vec<String> {
    let mut args = vec![
        format!(
            "--file-prefix=bulkhead-{}-{}",
            sanitize(&cfg.node.name),
            std::process::id()
        ),
        "-l".to_string(),
        "0".to_string(),
        "--log-level=*:warning".to_string(),
        "--no-telemetry".to_string(),
    ];
    args.extend(cfg.dataplane.eal_args.iter().cloned());
    for w in &cfg.dataplane.wire {
        for dev in [&w.a, &w.b] {
            if af_packet::is_af_packet(dev) {
                // Validated with the config; a geometry error leaves the devargs as given.
                let dev = match af_packet::geometry(dev, cfg.mtu()) {
                    Ok(g) => af_packet::with_geometry(dev, &g),
                    Err(_) => dev.clone(),
                };
                args.push(format!("--vdev={dev}"));
            } else if device_name(dev).starts_with("net_") || device_name(dev).starts_with("eth_") {
                args.push(format!("--vdev={dev}"));
            } else {
                args.push(format!("--allow={dev}"));
            }
        }
    }
    args
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Run the appliance until SIGTERM or SIGINT.
pub fn run(cfg: Config) -> Result<(), RunError> {
    // First: a signal during start-up is then handled by the loop below,
    // not by the default action (which would kill the process mid start-up).
    let mut signals =
        signal_hook::iterator::Signals::new([SIGHUP, SIGTERM, SIGINT, SIGUSR1, SIGUSR2])
            .map_err(RunError::Signals)?;
    let policy_file = cfg.policy.as_ref().map(|p| p.file.clone());
    let mut reloader = policy_file.clone().map(Reloader::new);
    let policy = match reloader.as_mut() {
        Some(r) => match first_policy(&mut signals, r)? {
            Some(p) => p,
            None => return Ok(()),
        },
        // A member enforces deny-all until its first replicated revision applies.
        None => {
            crate::follow::compile(
                crate::follow::Target {
                    revision: 0,
                    endpoints: Default::default(),
                },
                None,
                None,
            )
            .map_err(RunError::Member)?
            .policy
        }
    };
    let args = eal_args(&cfg);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let eal = Eal::init(&argv)?;
    let mut wires = Vec::new();
    for w in &cfg.dataplane.wire {
        let mut pair = [bulkhead_dpdk::PortId(0); 2];
        for (slot, dev) in pair.iter_mut().zip([&w.a, &w.b]) {
            *slot = Port::by_name(&eal, device_name(dev)).map_err(|source| RunError::Device {
                device: dev.clone(),
                source,
            })?;
        }
        wires.push((pair[0], pair[1]));
    }
    let t = &cfg.conntrack.timeouts;
    let mut timeouts = bulkhead_conntrack::Timeouts::default();
    let secs = Duration::from_secs;
    for (v, field) in [
        (t.tcp_syn_sent, &mut timeouts.tcp_syn_sent),
        (t.tcp_syn_recv, &mut timeouts.tcp_syn_recv),
        (t.tcp_established, &mut timeouts.tcp_established),
        (t.tcp_fin_wait, &mut timeouts.tcp_fin_wait),
        (t.tcp_last_ack, &mut timeouts.tcp_last_ack),
        (t.tcp_time_wait, &mut timeouts.tcp_time_wait),
        (t.tcp_closed, &mut timeouts.tcp_closed),
        (t.udp_unreplied, &mut timeouts.udp_unreplied),
        (t.udp_assured, &mut timeouts.udp_assured),
        (t.icmp, &mut timeouts.icmp),
        (t.other, &mut timeouts.other),
    ] {
        if let Some(v) = v {
            *field = secs(v);
        }
    }
    // The af_packet PMD copies up to its frame size into one mbuf and refuses a pool whose
    // buffers cannot hold that much.
    let mut rx_frame_room = 0;
    for w in &cfg.dataplane.wire {
        for dev in [&w.a, &w.b] {
            if af_packet::is_af_packet(dev) {
                let g = af_packet::geometry(dev, cfg.mtu()).map_err(|message| {
                    ConfigError::Invalid {
                        path: "(configuration)".into(),
                        key: "dataplane.wire",
                        message,
                    }
                })?;
                rx_frame_room = rx_frame_room.max(g.frame_room());
                warn!(
                    device = device_name(dev),
                    framesz = g.framesz,
                    blocksz = g.blocksz,
                    framecnt = g.framecnt,
                    "net_af_packet: the kernel reassembles IPv4 fragments before DPDK sees them \
                     (DPDK 22.11's PMD joins a PACKET_FANOUT group with PACKET_FANOUT_FLAG_DEFRAG, \
                     which no devarg turns off); a reassembled datagram longer than the MTU is \
                     dropped as oversize, an incomplete one never arrives; IPv6 fragments arrive \
                     as sent"
                );
            }
        }
    }
    let ecfg = EngineConfig {
        workers: cfg.dataplane.workers.clone(),
        wires,
        mbufs: cfg.dataplane.mbufs,
        mbuf_cache: cfg.dataplane.mbuf_cache,
        rx_desc: cfg.dataplane.rx_desc,
        tx_desc: cfg.dataplane.tx_desc,
        mtu: cfg.mtu(),
        rx_frame_room,
        idle: match cfg.dataplane.idle {
            IdleConfig::BusyPoll => IdleMode::BusyPoll,
            IdleConfig::Adaptive => IdleMode::Adaptive,
        },
        pass_non_ip: cfg.dataplane.pass_non_ip,
        pass_fragments: cfg.dataplane.pass_fragments,
        conntrack_capacity: cfg.conntrack.capacity,
        timeouts,
        event_mode: match cfg.events.mode {
            EventModeConfig::All => EventMode::All,
            EventModeConfig::Logged => EventMode::Logged,
            EventModeConfig::Off => EventMode::Off,
        },
        event_queue: cfg.events.queue,
        quotas: cfg.conntrack.quotas(),
        fold: cfg.events.fold(),
        zones: cfg.zones(),
        track_windows: cfg.conntrack.tcp_window_tracking,
        trace_filter: cfg.trace.filter(),
    };
    let sink = EventSink::open(&cfg.events.output).map_err(|source| RunError::Events {
        output: cfg.events.output.clone(),
        source,
    })?;
    let (nseg, nrules) = (policy.segment_count(), policy.rule_count());
    let engine = Engine::start(&eal, ecfg, policy)?;
    info!(
        workers = cfg.dataplane.workers.len(),
        cores = ?cfg.dataplane.workers,
        wires = cfg.dataplane.wire.len(),
        mtu = cfg.mtu(),
        frame_room = engine.frame_room(),
        policy = %policy_file.as_ref().map_or("(cluster)".into(), |p| p.display().to_string()),
        generation = 1,
        segments = nseg,
        rules = nrules,
        "workers running"
    );
    if cfg.dataplane.workers.len() > 1 {
        log_spreading(&engine);
    }
    let node = cfg.node.name.clone();
    let writer = EventWriter::start(
        sink,
        node,
        engine.unix_base_ns(),
        engine.policy().clone(),
        cfg.events.queue,
    );
    let mut member = match &cfg.cluster {
        Some(c) => match MemberMode::start(&cfg, c, &engine) {
            Ok(m) => Some(m),
            Err(e) => {
                let mut engine = engine;
                engine.halt();
                let _ = writer.finish(Duration::from_secs(1));
                engine.stop();
                return Err(e);
            }
        },
        None => None,
    };
    let unix_base = engine.unix_base_ns();
    let started = Instant::now();
    let mut last_stats = Instant::now();
    let interval = Duration::from_secs(cfg.events.stats_interval);
    let mut enforcing: Option<Enforcing> = None;
    'run: loop {
        for sig in signals.pending() {
            match sig {
                SIGHUP => {
                    match (&mut reloader, &policy_file) {
                        (Some(r), Some(path)) => {
                            info!(
                                path = %path.display(),
                                "SIGHUP: reloading the policy; reopening the flow events file"
                            );
                            r.request();
                        }
                        _ => info!(
                            "SIGHUP: reopening the flow events file (the policy is the cluster's)"
                        ),
                    }
                    writer.reopen();
                }
                SIGUSR1 => print_counters(&engine, &writer, started),
                SIGUSR2 => {
                    write_block(&crate::trace::render(&engine));
                    engine.tracer().arm(cfg.trace.packets());
                    info!(
                        packets = cfg.trace.packets(),
                        "SIGUSR2: tracing the next packets"
                    );
                }
                SIGTERM | SIGINT => {
                    info!(signal = sig, "stopping");
                    break 'run;
                }
                _ => {}
            }
        }
        if let Some(outcome) = reloader.as_mut().and_then(Reloader::poll) {
            enforcing = publish(&engine, outcome).or(enforcing);
        }
        if let Some(m) = member.as_mut() {
            m.tick(&engine);
        }
        if let Some(e) = &enforcing {
            if e.check(&engine) {
                enforcing = None;
            }
        }
        match member.as_ref().filter(|m| m.wants_flows()) {
            Some(m) => writer.take_from_with(&engine, cfg.events.queue, |e| {
                let json = crate::events::to_json(e, &cfg.node.name, unix_base, engine.policy());
                m.offer_flow(e, &json, unix_base);
            }),
            None => writer.take_from(&engine, cfg.events.queue),
        }
        engine.reclaim();
        if !interval.is_zero() && last_stats.elapsed() >= interval {
            print_counters(&engine, &writer, started);
            last_stats = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if let Some(r) = reloader.as_mut() {
        r.abandon();
    }
    if let Some(m) = member.as_mut() {
        m.stop();
    }
    let mut engine = engine;
    engine.halt();
    // Events emitted during the last bursts: the queues are finite now.
    writer.take_from(&engine, usize::MAX);
    let lost = writer.finish(Duration::from_secs(5));
    let policy_handle = engine.policy().clone();
    let ports = engine.port_stats();
    let ingress = engine.ingress_drops();
    let gens = engine.worker_generations();
    let (_, per_worker) = engine.counters();
    let final_counters = engine.stop();
    let mut block = format!("bulkheadd: final counters (workers at generation {gens:?}):\n");
    block.push_str(&render_counters(&final_counters));
    block.push_str(&render_workers(&per_worker));
    block.push_str(&render_ingress(&ingress));
    block.push_str(&format!(
        "  bulkhead_appliance_flow_events_unwritten_total {lost}\n"
    ));
    for (name, s) in ports {
        block.push_str(&format!(
            "  port {name}: rx {} pkts {} bytes, tx {} pkts {} bytes, missed {}, rx errors {}, tx errors {}\n",
            s.ipackets, s.ibytes, s.opackets, s.obytes, s.imissed, s.ierrors, s.oerrors
        ));
    }
    let snap = policy_handle.load();
    for (rule, n) in snap.rule_counts() {
        if n > 0 {
            block.push_str(&format!("  rule {rule}: {n} new connections\n"));
        }
    }
    write_block(&block);
    drop(policy_handle);
    drop(eal);
    Ok(())
}

/// A standalone appliance's first policy, compiled on the reload thread so
/// that SIGTERM is served while a huge policy compiles (`None`: stopped
/// meanwhile); a SIGHUP meanwhile reloads once started.
fn first_policy(
    signals: &mut signal_hook::iterator::Signals,
    reloader: &mut Reloader,
) -> Result<Option<bulkhead_classify::CompiledPolicy>, RunError> {
    reloader.request();
    let mut hup_during_start = false;
    let policy = loop {
        for sig in signals.pending() {
            match sig {
                SIGHUP => hup_during_start = true,
                SIGTERM | SIGINT => {
                    info!(signal = sig, "stopping during start-up");
                    reloader.abandon();
                    return Ok(None);
                }
                _ => {}
            }
        }
        if let Some(outcome) = reloader.poll() {
            break outcome?;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if hup_during_start {
        reloader.request();
    }
    Ok(Some(policy))
}

/// Hand a finished reload's policy to the workers, or log its refusal.
/// Returns the generation now waiting to be enforced by every worker.
fn publish(engine: &Engine, outcome: Outcome) -> Option<Enforcing> {
    match outcome {
        Ok(policy) => {
            let generation = engine.publish(policy);
            info!(generation, "policy published");
            Some(Enforcing {
                generation,
                deadline: Instant::now() + Duration::from_secs(5),
            })
        }
        Err(e) => {
            error!("{e}");
            warn!(
                generation = engine.policy().generation(),
                "the running policy stays in force"
            );
            None
        }
    }
}

/// A published generation not yet reported by every worker. Checked once
/// per control-loop tick rather than waited for, so signals keep being served.
#[derive(Debug)]
struct Enforcing {
    generation: u64,
    deadline: Instant,
}

impl Enforcing {
    /// Log and return true once every worker enforces the generation (or
    /// once the deadline passes: the workers are then reported as they are).
    fn check(&self, engine: &Engine) -> bool {
        let workers = engine.worker_generations();
        if workers.iter().all(|&g| g >= self.generation) {
            info!(
                generation = self.generation,
                "policy enforced by every worker"
            );
            true
        } else if Instant::now() >= self.deadline {
            warn!(
                generation = self.generation,
                workers = ?workers,
                "policy published; not every worker enforces it after 5 s"
            );
            true
        } else {
            false
        }
    }
}

fn print_counters(engine: &Engine, writer: &EventWriter, started: Instant) {
    let (total, _) = engine.counters();
    write_block(&format!(
        "bulkheadd: counters at {:.3} s:\n{}{}  bulkhead_appliance_flow_events_unwritten_total {}\n",
        started.elapsed().as_secs_f64(),
        render_counters(&total),
        render_ingress(&engine.ingress_drops()),
        writer.unwritten()
    ));
}

/// Counters stay a plain block on stderr (Prometheus exposition lines under
/// one header line, as `perf-lab/ringbench.sh` reads them), written in one
/// call so log lines from other threads cannot land inside it.
fn write_block(block: &str) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(block.as_bytes());
}

/// Ingress drops of every port as `name value` lines.
pub fn render_ingress(ports: &[(String, bulkhead_dpdk::IngressDrops)]) -> String {
    let mut out = String::new();
    for (name, v) in bulkhead_engine::stats::ingress_drop_metrics(ports) {
        out.push_str(&format!("  {name} {v}\n"));
    }
    out
}

/// Per-worker packet counts: how the device spread the traffic.
pub fn render_workers(per: &[Counters]) -> String {
    use bulkhead_engine::stats::{slot, Side};
    let mut out = String::new();
    for (w, c) in per.iter().enumerate() {
        out.push_str(&format!(
            "  bulkhead_dataplane_worker_rx_packets_total{{worker=\"{w}\"}} {}\n",
            c.rx_packets(Side::A) + c.rx_packets(Side::B)
        ));
        out.push_str(&format!(
            "  bulkhead_dataplane_worker_handed_off_total{{worker=\"{w}\"}} {}\n",
            c.get(slot::HANDED_OFF)
        ));
    }
    out
}

/// Counters as `name value` lines (Prometheus exposition style).
pub fn render_counters(c: &Counters) -> String {
    let mut out = String::new();
    for (name, v) in c.metrics() {
        out.push_str(&format!("  {name} {v}\n"));
    }
    out.push_str(&format!(
        "  bulkhead_dataplane_busy_cycles_per_packet {:.1}\n",
        c.busy_cycles_per_packet()
    ));
    out
}

/// Say how each port spreads packets over several workers: by symmetric RSS
/// (both directions of a connection on one worker), or by the device's own
/// function (`net_af_packet`: the kernel's fan-out hash, also symmetric).
/// Either way the packets that hash on addresses only (ICMP errors,
/// fragments) are handed to the worker that owns their connection.
fn log_spreading(engine: &bulkhead_engine::Engine) {
    for (port, rss) in engine.port_rss() {
        match rss {
            bulkhead_dpdk::RssState::Enabled { hash_functions } => tracing::info!(
                port = %port,
                hash_functions = format_args!("{hash_functions:#x}"),
                "port spreads connections over the workers by symmetric RSS"
            ),
            bulkhead_dpdk::RssState::Unsupported { device_supports } => tracing::warn!(
                port = %port,
                device_supports = format_args!("{device_supports:#x}"),
                "port does not do RSS: packets are spread by the device's own function \
                 (net_af_packet: the kernel's fan-out hash over qpairs; net_ring/net_null: \
                 each queue is its own source); ICMP errors and fragments are handed to the \
                 worker owning their connection"
            ),
            bulkhead_dpdk::RssState::Disabled => tracing::warn!(
                port = %port,
                "RSS not enabled on this port: all its packets reach one worker"
            ),
        }
    }
}

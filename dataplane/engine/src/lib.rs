//! `bulkhead-engine`: the dataplane workers.
//!
//! Owns:
//! - [`pipeline`]: the per-burst packet path without device I/O — parse, place
//!   in segments, track, classify new connections, decide each packet's fate.
//!   Pure Rust, so it is tested and benchmarked on byte buffers.
//! - [`worker`]: the DPDK poll loop around the pipeline (one worker per pinned
//!   core; worker *i* owns RX and TX queue *i* of every port).
//! - [`handover`]: read-copy-update of the compiled policy between bursts.
//! - [`stats`], [`events`]: per-worker counters and the bounded flow-event queues.
//! - [`Engine`]: start-up (mempool, ports, queues, pinned threads registered
//!   with the EAL), policy publication, counters, events, clean stop.
//!
//! Invariants: a burst runs under one policy snapshot; a worker never blocks,
//! allocates or takes a lock in its loop; every mbuf is either transmitted or
//! freed in the burst that received it.
#![forbid(unsafe_code)]

pub mod control;
pub mod events;
pub mod fold;
pub mod fragments;
pub mod handoff;
pub mod handover;
pub mod idle;
pub mod pipeline;
pub mod stats;
pub mod trace;
pub mod worker;
pub mod zones;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bulkhead_classify::CompiledPolicy;
use bulkhead_conntrack::{Quotas, Timeouts};
use bulkhead_dpdk::{Eal, Mempool, Port, PortConfig, PortId};
use crossbeam::queue::ArrayQueue;

use crate::events::{EventMode, FlowEvent};
use crate::fold::FoldConfig;
use crate::handover::PolicyHandle;
use crate::idle::IdleMode;
use crate::pipeline::{Pipeline, PipelineConfig};
use crate::stats::{Counters, SharedCounters};
use crate::zones::ZoneConfig;

/// Packets per burst.
pub const BURST: usize = 32;

/// Engine start-up parameters.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// CPU cores, one worker per core.
    pub workers: Vec<usize>,
    /// Port pairs (virtual wires), as DPDK port ids already probed.
    pub wires: Vec<(PortId, PortId)>,
    pub mbufs: u32,
    pub mbuf_cache: u32,
    pub rx_desc: u16,
    pub tx_desc: u16,
    /// Largest IP packet every port carries (L3 MTU); longer frames are dropped at RX and
    /// counted as ingress drops (`oversize`).
    pub mtu: u16,
    /// Bytes of frame data each mbuf must hold, when a device may write more than the MTU
    /// needs (`net_af_packet` copies up to its ring's frame size into one mbuf, and refuses
    /// smaller buffers). 0: what the MTU needs.
    pub rx_frame_room: u32,
    pub idle: IdleMode,
    pub pass_non_ip: bool,
    pub pass_fragments: bool,
    /// Most connections tracked at once per worker (the table gets twice as many index slots).
    pub conntrack_capacity: usize,
    pub timeouts: Timeouts,
    pub event_mode: EventMode,
    /// Per-worker flow-event queue length.
    pub event_queue: usize,
    /// Tracked connections per source address and per source segment, per worker.
    pub quotas: Quotas,
    /// Folding and rate limit of denial events, per worker.
    pub fold: FoldConfig,
    /// Zones of the wire sides and router zones.
    pub zones: ZoneConfig,
    /// Check TCP sequence windows.
    pub track_windows: bool,
    /// Which packets a packet trace records when armed.
    pub trace_filter: trace::TraceFilter,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("DPDK")]
    Dpdk(#[from] bulkhead_dpdk::DpdkError),
    #[error("connection table: {0}")]
    Conntrack(String),
    #[error("worker core {core}: {message}")]
    Core { core: usize, message: String },
    #[error("worker {0} failed to start: {1}")]
    Start(usize, String),
    #[error("cannot read a hash seed from the OS's random source: {0}")]
    Random(std::io::Error),
    #[error("MTU {mtu}: buffers of {room} bytes exceed DPDK's 65535-byte mbuf data room")]
    FrameRoom { mtu: u16, room: u32 },
}

/// A random 64-bit value from the OS (`/dev/urandom`): connection-table hash
/// seeds, so no one can choose tuples that collide on this appliance.
pub fn os_random_u64() -> std::io::Result<u64> {
    use std::io::Read;
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(u64::from_ne_bytes(b))
}

/// The mbuf data room (headroom included) for frames of `mtu` and devices writing up to
/// `rx_frame_room` bytes: never less than DPDK's default, so MTU 1500 keeps 2 KB buffers.
pub fn data_room(mtu: u16, rx_frame_room: u32) -> Result<u16, EngineError> {
    let frame = bulkhead_dpdk::max_frame_len(mtu)
        .max(rx_frame_room)
        .max(u32::from(
            bulkhead_dpdk::DEFAULT_DATA_ROOM - bulkhead_dpdk::MBUF_HEADROOM,
        ));
    let room = frame + u32::from(bulkhead_dpdk::MBUF_HEADROOM);
    u16::try_from(room).map_err(|_| EngineError::FrameRoom { mtu, room })
}

/// A running dataplane.
#[derive(Debug)]
pub struct Engine {
    policy: Arc<PolicyHandle>,
    tracer: Arc<trace::Tracer>,
    control: control::Control,
    shared: Vec<Arc<SharedCounters>>,
    events: Vec<Arc<ArrayQueue<FlowEvent>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    ports: Vec<Port>,
    pool: Mempool,
    unix_base_ns: u128,
    _eal: Eal,
}

static POOL_SEQ: AtomicUsize = AtomicUsize::new(0);

impl Engine {
    /// Configure the ports, start one pinned worker per core, enforce `policy`.
    pub fn start(
        eal: &Eal,
        cfg: EngineConfig,
        policy: CompiledPolicy,
    ) -> Result<Engine, EngineError> {
        let nworkers = cfg.workers.len();
        // Cores are checked when each worker pins itself: after EAL start-up
        // this thread's own affinity is the main lcore only, so asking it
        // which cores exist would be wrong.
        cfg.timeouts.validate().map_err(|e| {
            EngineError::Conntrack(
                e.iter()
                    .map(|b| b.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let seq = POOL_SEQ.fetch_add(1, Ordering::Relaxed);
        let pool = Mempool::new(
            eal,
            &format!("bh_pool_{}_{seq}", std::process::id()),
            cfg.mbufs,
            cfg.mbuf_cache,
            data_room(cfg.mtu, cfg.rx_frame_room)?,
        )?;
        let port_cfg = PortConfig {
            rx_queues: nworkers as u16,
            tx_queues: nworkers as u16,
            rx_desc: cfg.rx_desc,
            tx_desc: cfg.tx_desc,
            rss_symmetric: nworkers > 1,
            promiscuous: true,
            mtu: cfg.mtu,
        };
        let mut ports = Vec::new();
        for &(a, b) in &cfg.wires {
            ports.push(Port::configure(eal, a, &port_cfg, &pool)?);
            ports.push(Port::configure(eal, b, &port_cfg, &pool)?);
        }
        let policy = Arc::new(PolicyHandle::new(policy, nworkers));
        let zones = Arc::new(cfg.zones.clone());
        let mailboxes = Arc::new(handoff::Mailboxes::new(nworkers));
        let tracer = Arc::new(trace::Tracer::new(nworkers, cfg.trace_filter));
        let control = control::Control::new(nworkers);
        let stop = Arc::new(AtomicBool::new(false));
        let tsc_hz = eal.tsc_hz();
        let base_tsc = Eal::tsc();
        let unix_base_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let mut shared = Vec::new();
        let mut events = Vec::new();
        let mut threads = Vec::new();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        // Everything that can fail is built before any thread starts, so a
        // failure leaves no worker running.
        let mut workers = Vec::new();
        for i in 0..nworkers {
            let mut wires = Vec::new();
            for pair in ports.chunks_mut(2) {
                wires.push(worker::WireQueues {
                    rx: [pair[0].rx_queue(i as u16)?, pair[1].rx_queue(i as u16)?],
                    tx: [pair[0].tx_queue(i as u16)?, pair[1].tx_queue(i as u16)?],
                });
            }
            let counters = Arc::new(SharedCounters::default());
            let queue = Arc::new(ArrayQueue::new(cfg.event_queue.max(1)));
            let pipeline = Pipeline::new(
                PipelineConfig {
                    worker: i as u16,
                    pass_non_ip: cfg.pass_non_ip,
                    pass_fragments: cfg.pass_fragments,
                    event_mode: cfg.event_mode,
                    conntrack_capacity: cfg.conntrack_capacity,
                    timeouts: cfg.timeouts,
                    quotas: cfg.quotas,
                    fold: cfg.fold,
                    hash_seed: os_random_u64().map_err(EngineError::Random)?,
                    workers: nworkers as u16,
                    track_windows: cfg.track_windows,
                },
                queue.clone(),
                zones.clone(),
            )
            .map_err(|e| EngineError::Conntrack(e.to_string()))?;
            let mut pipeline = pipeline;
            pipeline.set_tracer(tracer.clone());
            workers.push(worker::Worker {
                index: i,
                wires,
                pipeline,
                policy: policy.clone(),
                shared: counters.clone(),
                stop: stop.clone(),
                idle: cfg.idle,
                tsc_hz,
                base_tsc,
                mailboxes: mailboxes.clone(),
                control: control.clone(),
            });
            shared.push(counters);
            events.push(queue);
        }
        let mut spawn_error = None;
        for (w, &core) in workers.into_iter().zip(cfg.workers.iter()) {
            let i = w.index;
            let eal2 = eal.clone();
            let ready = ready_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("bh-worker-{i}"))
                .spawn(move || {
                    if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                        let _ = ready.send(Err(format!("cannot pin to core {core}")));
                        return;
                    }
                    let _lcore = match eal2.register_thread() {
                        Ok(g) => g,
                        Err(e) => {
                            let _ = ready.send(Err(format!("cannot register with the EAL: {e}")));
                            return;
                        }
                    };
                    let _ = ready.send(Ok(()));
                    drop(ready);
                    w.run();
                });
            match spawned {
                Ok(handle) => threads.push(handle),
                Err(e) => {
                    spawn_error = Some(EngineError::Start(i, e.to_string()));
                    break;
                }
            }
        }
        drop(ready_tx);
        let mut engine = Engine {
            policy,
            tracer,
            control,
            shared,
            events,
            stop,
            threads,
            ports,
            pool,
            unix_base_ns,
            _eal: eal.clone(),
        };
        if let Some(e) = spawn_error {
            engine.shutdown();
            return Err(e);
        }
        for i in 0..nworkers {
            match ready_rx.recv_timeout(Duration::from_secs(10)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    engine.shutdown();
                    return Err(EngineError::Start(i, e));
                }
                Err(_) => {
                    engine.shutdown();
                    return Err(EngineError::Start(i, "did not start within 10 s".into()));
                }
            }
        }
        Ok(engine)
    }

    /// The policy hand-over point (publish, generations, retained snapshots).
    pub fn policy(&self) -> &Arc<PolicyHandle> {
        &self.policy
    }

    /// Publish a new compiled policy; returns its generation.
    pub fn publish(&self, policy: CompiledPolicy) -> u64 {
        self.policy.publish(policy)
    }

    /// Questions to the workers about their connection tables (list, flush);
    /// a clone can be handed to another thread.
    pub fn control(&self) -> &control::Control {
        &self.control
    }

    /// The packet trace: arm it, take what it recorded.
    pub fn tracer(&self) -> &Arc<trace::Tracer> {
        &self.tracer
    }

    /// The generation each worker reports enforcing.
    pub fn worker_generations(&self) -> Vec<u64> {
        self.shared.iter().map(|s| s.generation()).collect()
    }

    /// Wait until every worker enforces `generation` (or newer).
    pub fn wait_generation(&self, generation: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.worker_generations().iter().all(|&g| g >= generation) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Free policy snapshots no worker can still hold. Call periodically.
    pub fn reclaim(&self) -> usize {
        let min = self.worker_generations().into_iter().min().unwrap_or(0);
        self.policy.reclaim(min)
    }

    /// Counters summed over workers, and per worker.
    pub fn counters(&self) -> (Counters, Vec<Counters>) {
        let per: Vec<Counters> = self.shared.iter().map(|s| s.snapshot()).collect();
        let mut total = Counters::default();
        for c in &per {
            total.accumulate(c);
        }
        (total, per)
    }

    /// Take queued flow events, at most `max_per_worker` from each worker's
    /// queue. The bound matters: under a flood a worker refills its queue as
    /// fast as it is drained, and an unbounded drain would never return to
    /// the caller (signals, counters, shutdown).
    pub fn drain_events(&self, max_per_worker: usize, mut f: impl FnMut(&FlowEvent)) -> usize {
        let mut n = 0;
        for q in &self.events {
            for _ in 0..max_per_worker {
                let Some(e) = q.pop() else { break };
                f(&e);
                n += 1;
            }
        }
        n
    }

    /// Unix time (ns) of the engine clock's zero: event `time_ns` is relative to it.
    pub fn unix_base_ns(&self) -> u128 {
        self.unix_base_ns
    }

    /// Device statistics of every port, in wire order (a, b, a, b, ...).
    pub fn port_stats(&self) -> Vec<(String, bulkhead_dpdk::PortStats)> {
        self.ports
            .iter()
            .map(|p| (p.name().to_string(), p.stats().unwrap_or_default()))
            .collect()
    }

    /// How each port spreads packets over the workers' queues, in wire
    /// order (a, b, a, b, ...).
    pub fn port_rss(&self) -> Vec<(String, bulkhead_dpdk::RssState)> {
        self.ports
            .iter()
            .map(|p| (p.name().to_string(), p.rss()))
            .collect()
    }

    /// Frames each port received that no worker saw, in wire order (a, b, a, b, ...). A port
    /// whose statistics cannot be read reports zeros.
    pub fn ingress_drops(&self) -> Vec<(String, bulkhead_dpdk::IngressDrops)> {
        self.ports
            .iter()
            .map(|p| (p.name().to_string(), p.ingress_drops().unwrap_or_default()))
            .collect()
    }

    /// Bytes of frame data one mbuf of the engine's pool holds.
    pub fn frame_room(&self) -> u16 {
        self.pool.frame_room()
    }

    /// Mbufs of the engine's pool currently out of the pool.
    pub fn mbufs_in_use(&self) -> u32 {
        self.pool.in_use_count()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// Stop the workers (ports stay open): counters and queued events can
    /// then be read to the end. Idempotent.
    pub fn halt(&mut self) {
        self.shutdown();
    }

    /// Stop the workers, stop the ports, return the final counters.
    pub fn stop(mut self) -> Counters {
        self.shutdown();
        let (total, _) = self.counters();
        total
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

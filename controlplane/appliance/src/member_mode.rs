//! `bulkheadd` as a cluster member: the Raft member runtime
//! ([`bulkhead_api::Member`]) beside the workers, the replicated policy
//! followed into them ([`crate::follow`]), and this member's dataplane seen
//! through the management API (counters, flow events, the revision every
//! worker enforces, tracked connections listed and flushed).
//!
//! The control loop owns the engine; the API's threads read what the loop
//! publishes here (an atomic, a counters snapshot refreshed every second, a
//! broadcast of flow events). Listing and flushing connections ask the
//! workers themselves through [`bulkhead_engine::control`] (answered
//! between bursts, waited for on a blocking thread with a timeout).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulkhead_api::{Dataplane, Member, MemberConfig};
use bulkhead_cluster::{State, StateWatch};
use bulkhead_engine::control::{Answer, ConnFilter, ConnInfo, Control, ControlError, Query};
use bulkhead_engine::events::FlowEvent;
use bulkhead_engine::Engine;
use bulkhead_proto::v1;
use tokio::sync::broadcast;
use tracing::{error, info, warn};

use crate::config::{ClusterConfig, Config};
use crate::follow::Follower;
use crate::run::RunError;

/// Flow events buffered for slow API subscribers before they lag.
const FLOW_BUFFER: usize = 4096;
/// How often the counters seen by the API are refreshed.
const COUNTERS_EVERY: Duration = Duration::from_secs(1);

/// How long a question to the workers may take before the API answers
/// UNAVAILABLE (they answer between bursts: normally within a millisecond).
const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections listed when the request sets no limit.
const DEFAULT_CONN_LIMIT: usize = 1000;

/// What the API reads of this member's dataplane.
#[derive(Debug)]
struct Shared {
    enforced: AtomicU64,
    counters: Mutex<v1::CountersResponse>,
    flows: broadcast::Sender<v1::FlowEvent>,
    /// Generation → revision of the last few generations published.
    revisions: Mutex<VecDeque<(u64, u64)>>,
}

impl Shared {
    fn revision_of(&self, generation: u64) -> u64 {
        self.revisions
            .lock()
            .ok()
            .and_then(|r| {
                r.iter()
                    .rev()
                    .find(|(g, _)| *g == generation)
                    .map(|(_, r)| *r)
            })
            .unwrap_or(0)
    }
}

/// The [`Dataplane`] the API serves from.
#[derive(Debug, Clone)]
struct View(Arc<Shared>, Control);

/// The workers' filter from the API's.
fn conn_filter(f: Option<&v1::FlowFilter>) -> Result<ConnFilter, tonic::Status> {
    let Some(f) = f else {
        return Ok(ConnFilter::default());
    };
    let prefix = match &f.address {
        None => None,
        Some(a) => Some(
            a.parse::<ipnet::IpNet>()
                .or_else(|_| a.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    tonic::Status::invalid_argument(format!(
                        "address {a:?} is not an address or prefix"
                    ))
                })?,
        ),
    };
    let small = |v: Option<u32>, what: &str, max: u32| match v {
        Some(n) if n > max => Err(tonic::Status::invalid_argument(format!(
            "{what} {n} is above {max}"
        ))),
        other => Ok(other),
    };
    Ok(ConnFilter {
        segment: f.segment.clone(),
        prefix,
        port: small(f.port, "port", 65535)?.map(|p| p as u16),
        proto: small(f.protocol, "protocol", 255)?.map(|p| p as u8),
    })
}

fn unavailable(e: ControlError) -> tonic::Status {
    tonic::Status::unavailable(format!("the workers did not answer: {e}"))
}

impl View {
    fn to_proto(&self, c: ConnInfo) -> v1::Connection {
        v1::Connection {
            src_address: c.src.to_string(),
            src_port: u32::from(c.src_port),
            dst_address: c.dst.to_string(),
            dst_port: u32::from(c.dst_port),
            protocol: u32::from(c.proto),
            src_segment: c.src_segment,
            dst_segment: c.dst_segment,
            state: c.state,
            rule: c.rule,
            monitor: c.monitor,
            revision: self.0.revision_of(c.generation),
            worker: u32::from(c.worker),
            age_ms: c.age_ns / 1_000_000,
            idle_ms: c.idle_ns / 1_000_000,
            packets: c.packets.to_vec(),
            bytes: c.bytes.to_vec(),
        }
    }
}

impl Dataplane for View {
    fn enforced_revision(&self) -> u64 {
        self.0.enforced.load(Ordering::Acquire)
    }

    fn counters(&self) -> v1::CountersResponse {
        let mut c = self
            .0
            .counters
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default();
        c.enforced_revision = self.enforced_revision();
        c
    }

    fn connections(
        &self,
        req: &v1::ConnectionsRequest,
    ) -> Result<v1::ConnectionsResponse, tonic::Status> {
        let filter = conn_filter(req.filter.as_ref())?;
        let limit = match req.limit {
            0 => DEFAULT_CONN_LIMIT,
            n => n as usize,
        };
        let answers = self
            .1
            .ask(&Query::Connections { filter, limit }, ASK_TIMEOUT)
            .map_err(unavailable)?;
        let mut out = v1::ConnectionsResponse::default();
        for a in answers {
            if let Answer::Connections { list, truncated } = a {
                out.truncated |= truncated;
                out.connections
                    .extend(list.into_iter().map(|c| self.to_proto(c)));
            }
        }
        if out.connections.len() > limit {
            out.connections.truncate(limit);
            out.truncated = true;
        }
        Ok(out)
    }

    fn flush(&self, filter: &v1::FlowFilter) -> Result<u64, tonic::Status> {
        let filter = conn_filter(Some(filter))?;
        let answers = self
            .1
            .ask(&Query::Flush { filter }, ASK_TIMEOUT)
            .map_err(unavailable)?;
        Ok(answers
            .into_iter()
            .map(|a| match a {
                Answer::Flushed(n) => n,
                Answer::Connections { .. } => 0,
            })
            .sum())
    }

    fn flows(&self) -> broadcast::Receiver<v1::FlowEvent> {
        self.0.flows.subscribe()
    }
}

/// The member beside the workers, driven by the control loop.
#[derive(Debug)]
pub struct MemberMode {
    member: Option<Member>,
    watch: StateWatch,
    seen: Option<Arc<State>>,
    follower: Follower,
    /// Published generations not yet enforced by every worker, with their revision.
    enforcing: VecDeque<(u64, u64, Instant)>,
    shared: Arc<Shared>,
    last_counters: Instant,
    /// Worker cores, by worker index.
    cores: Vec<usize>,
}

impl MemberMode {
    /// Start the member runtime (gRPC server, Raft node) for `cluster`.
    pub fn start(
        cfg: &Config,
        cluster: &ClusterConfig,
        engine: &Engine,
    ) -> Result<MemberMode, RunError> {
        let founders = cluster.founders().map_err(|message| {
            RunError::Config(crate::config::ConfigError::Invalid {
                path: "(configuration)".into(),
                key: "cluster.initial_cluster",
                message,
            })
        })?;
        let (flows, _) = broadcast::channel(FLOW_BUFFER);
        let shared = Arc::new(Shared {
            enforced: AtomicU64::new(0),
            counters: Mutex::new(v1::CountersResponse::default()),
            flows,
            revisions: Mutex::new(VecDeque::new()),
        });
        let member = Member::start(
            MemberConfig {
                name: cfg.node.name.clone(),
                data_dir: cluster.data_dir.clone(),
                listen: cluster.listen,
                advertise: cluster.address(),
                pki: cluster.pki.clone(),
                initial_cluster: founders.into_iter().map(|f| (f.name, f.address)).collect(),
                join: cluster.join,
                admins: cluster.admins.clone(),
            },
            Arc::new(View(shared.clone(), engine.control().clone())),
        )
        .map_err(|e| RunError::Member(e.to_string()))?;
        info!(
            node = %cfg.node.name,
            listen = %cluster.listen,
            data_dir = %cluster.data_dir.display(),
            "cluster member running; enforcing deny-all until the first revision applies"
        );
        let watch = member.watch();
        Ok(MemberMode {
            member: Some(member),
            watch,
            seen: None,
            follower: Follower::default(),
            enforcing: VecDeque::new(),
            shared,
            last_counters: Instant::now() - COUNTERS_EVERY,
            cores: cfg.dataplane.workers.clone(),
        })
    }

    /// One control-loop tick: follow the replicated state, publish what
    /// compiled, record what every worker enforces, refresh counters.
    pub fn tick(&mut self, engine: &Engine) {
        let state = self.watch.current();
        if !self.seen.as_ref().is_some_and(|s| Arc::ptr_eq(s, &state)) {
            self.follower.observe(&state);
            self.seen = Some(state);
        }
        match self.follower.poll() {
            Some(Ok(compiled)) => {
                let revision = compiled.target.revision;
                let generation = engine.publish(compiled.policy);
                info!(
                    revision,
                    generation,
                    endpoints = compiled.target.endpoints.len(),
                    "replicated policy published to the workers"
                );
                self.enforcing
                    .push_back((generation, revision, Instant::now()));
                if let Ok(mut r) = self.shared.revisions.lock() {
                    r.push_back((generation, revision));
                    if r.len() > 64 {
                        r.pop_front();
                    }
                }
            }
            Some(Err(e)) => {
                error!(error = %e, "replicated revision not enforced here; the last one stays in force")
            }
            None => {}
        }
        self.check_enforced(engine);
        if self.last_counters.elapsed() >= COUNTERS_EVERY {
            self.refresh_counters(engine);
            self.last_counters = Instant::now();
        }
    }

    fn check_enforced(&mut self, engine: &Engine) {
        let lowest = engine.worker_generations().into_iter().min().unwrap_or(0);
        while let Some(&(generation, revision, since)) = self.enforcing.front() {
            if lowest < generation {
                if since.elapsed() > Duration::from_secs(5) {
                    warn!(
                        revision,
                        generation, lowest, "workers slow to take the revision"
                    );
                    if let Some(e) = self.enforcing.front_mut() {
                        e.2 = Instant::now();
                    }
                }
                return;
            }
            self.enforcing.pop_front();
            self.shared.enforced.store(revision, Ordering::Release);
            info!(revision, generation, "revision enforced by every worker");
        }
    }

    fn refresh_counters(&self, engine: &Engine) {
        let (total, per) = engine.counters();
        let map = |c: &bulkhead_engine::stats::Counters| c.metrics().into_iter().collect();
        let resp = v1::CountersResponse {
            totals: map(&total),
            workers: per
                .iter()
                .enumerate()
                .map(|(i, c)| v1::WorkerCounters {
                    worker: i as u32,
                    core: self.cores.get(i).map_or(0, |&c| c as u32),
                    counters: map(c),
                })
                .collect(),
            enforced_revision: self.shared.enforced.load(Ordering::Acquire),
        };
        if let Ok(mut c) = self.shared.counters.lock() {
            *c = resp;
        }
    }

    /// Whether any API client follows flow events (skip converting otherwise).
    pub fn wants_flows(&self) -> bool {
        self.shared.flows.receiver_count() > 0
    }

    /// Offer one flow event (already rendered as JSON by the event writer's
    /// rules) to API subscribers.
    pub fn offer_flow(&self, e: &FlowEvent, json: &serde_json::Value, unix_base_ns: u128) {
        let revision = self.shared.revision_of(e.generation);
        let _ = self
            .shared
            .flows
            .send(crate::events::to_proto(e, json, unix_base_ns, revision));
    }

    /// Stop serving and leave the cluster's threads (the data directory
    /// keeps everything acknowledged).
    pub fn stop(&mut self) {
        if let Some(m) = self.member.take() {
            m.stop();
        }
    }
}

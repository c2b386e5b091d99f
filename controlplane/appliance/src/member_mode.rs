//! `bulkheadd` as a cluster member: the Raft member runtime
//! ([`bulkhead_api::Member`]) beside the workers, the replicated policy
//! followed into them ([`crate::follow`]), and this member's dataplane seen
//! through the management API (counters, flow events, the revision every
//! worker enforces).
//!
//! The control loop owns the engine; the API's threads only read what the
//! loop publishes here (an atomic, a counters snapshot refreshed every
//! second, a broadcast of flow events), so no request ever waits on a worker.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulkhead_api::{Dataplane, Member, MemberConfig};
use bulkhead_cluster::{State, StateWatch};
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

/// What the API reads of this member's dataplane.
#[derive(Debug)]
struct Shared {
    enforced: AtomicU64,
    counters: Mutex<v1::CountersResponse>,
    flows: broadcast::Sender<v1::FlowEvent>,
}

/// The [`Dataplane`] the API serves from.
#[derive(Debug, Clone)]
struct View(Arc<Shared>);

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
        _req: &v1::ConnectionsRequest,
    ) -> Result<v1::ConnectionsResponse, tonic::Status> {
        Err(tonic::Status::unimplemented(
            "listing tracked connections is not available yet; watch `bulkctl flows --follow` \
             or record a packet trace with SIGUSR2",
        ))
    }

    fn flush(&self, _filter: &v1::FlowFilter) -> Result<u64, tonic::Status> {
        Err(tonic::Status::unimplemented(
            "flushing connections is not available yet; a policy revision that revokes a \
             service cuts its connections",
        ))
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
    /// Generation → revision, for flow events (the last few generations).
    revisions: VecDeque<(u64, u64)>,
    shared: Arc<Shared>,
    last_counters: Instant,
    /// Worker cores, by worker index.
    cores: Vec<usize>,
}

impl MemberMode {
    /// Start the member runtime (gRPC server, Raft node) for `cluster`.
    pub fn start(cfg: &Config, cluster: &ClusterConfig) -> Result<MemberMode, RunError> {
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
            Arc::new(View(shared.clone())),
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
            revisions: VecDeque::new(),
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
                self.revisions.push_back((generation, revision));
                if self.revisions.len() > 64 {
                    self.revisions.pop_front();
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
        let revision = self
            .revisions
            .iter()
            .rev()
            .find(|(g, _)| *g == e.generation)
            .map_or(0, |(_, r)| *r);
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

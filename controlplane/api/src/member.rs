//! [`Member`]: the runtime the appliance starts — its own tokio runtime, the
//! cluster driver with the gRPC transport, and the management API server
//! (mutual TLS, the auth layer, health, reflection, every service).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bulkhead_cluster::{Change, Driver, DriverConfig, DriverHandle, NodeConfig, StateWatch};
use bulkhead_proto::v1;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::access_svc::AccessSvc;
use crate::cluster_svc::ClusterSvc;
use crate::ctx::{Ctx, Op, PeerClients, Reachability, Refused};
use crate::dataplane_svc::DataplaneSvc;
use crate::endpoint_svc::EndpointSvc;
use crate::grants::StateGrants;
use crate::peer::PeerSvc;
use crate::policy_svc::PolicySvc;
use crate::transport::{GrpcTransport, Shared};
use crate::{ApiServer, AuthLayer};

/// This member's dataplane, as the API sees it.
pub trait Dataplane: Send + Sync + 'static {
    /// Policy revision every worker of this member enforces (0: none yet, deny-all).
    fn enforced_revision(&self) -> u64;
    fn counters(&self) -> v1::CountersResponse;
    fn connections(
        &self,
        req: &v1::ConnectionsRequest,
    ) -> Result<v1::ConnectionsResponse, tonic::Status>;
    fn flush(&self, filter: &v1::FlowFilter) -> Result<u64, tonic::Status>;
    fn flows(&self) -> tokio::sync::broadcast::Receiver<v1::FlowEvent>;
}

/// How to run one member.
#[derive(Clone, Debug)]
pub struct MemberConfig {
    /// Member name: the common name of its certificate in `pki`.
    pub name: String,
    /// Raft log and state (raft-engine).
    pub data_dir: PathBuf,
    /// Where the gRPC server (management API and peer protocol) listens.
    pub listen: SocketAddr,
    /// The address other members and clients reach it at.
    pub advertise: SocketAddr,
    /// PKI directory: `ca.crt`, `NAME.crt`, `NAME.key`.
    pub pki: PathBuf,
    /// Every initial voter (empty for a joining member).
    pub initial_cluster: Vec<(String, SocketAddr)>,
    /// A member of the cluster this one joins (informational: the leader
    /// contacts the new member once `AddMember` named it).
    pub join: Option<SocketAddr>,
    /// Identities granted admin when the cluster bootstraps.
    pub admins: Vec<String>,
}

/// Why a member could not start.
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error("member {name}: TLS material in {pki}: {source}")]
    Pki {
        name: String,
        pki: PathBuf,
        #[source]
        source: bulkhead_pki::PkiError,
    },
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cluster node: {0}")]
    Cluster(#[from] bulkhead_cluster::ClusterError),
    #[error("invalid configuration: {reason}")]
    Config { reason: String },
}

/// A running member (see the module doc).
pub struct Member {
    name: String,
    runtime: Option<Runtime>,
    driver: DriverHandle,
    health: HealthReporter,
    services: Vec<&'static str>,
    shutdown: Option<oneshot::Sender<()>>,
    served: Option<std::sync::mpsc::Receiver<()>>,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member").field("name", &self.name).finish()
    }
}

/// Refusals queued before they are proposed.
const AUDIT_QUEUE: usize = 1024;

fn check_config(cfg: &MemberConfig) -> Result<(), MemberError> {
    if cfg.initial_cluster.is_empty() && cfg.join.is_none() {
        return Err(MemberError::Config {
            reason: "give the initial cluster (NAME=ADDR,...) or a member to join".into(),
        });
    }
    if !cfg.initial_cluster.is_empty() && !cfg.initial_cluster.iter().any(|(n, _)| *n == cfg.name) {
        return Err(MemberError::Config {
            reason: format!(
                "the initial cluster does not name this member ({})",
                cfg.name
            ),
        });
    }
    Ok(())
}

impl Member {
    /// Starts its own tokio runtime (2 worker threads, named), the cluster
    /// driver and the gRPC server (mutual TLS, auth layer, health,
    /// reflection, every service). Do not call from inside an async context.
    pub fn start(cfg: MemberConfig, dataplane: Arc<dyn Dataplane>) -> Result<Member, MemberError> {
        check_config(&cfg)?;
        let tls =
            bulkhead_pki::server_tls(&cfg.pki, &cfg.name).map_err(|source| MemberError::Pki {
                name: cfg.name.clone(),
                pki: cfg.pki.clone(),
                source,
            })?;
        bulkhead_pki::client_tls(&cfg.pki, &cfg.name, "localhost").map_err(|source| {
            MemberError::Pki {
                name: cfg.name.clone(),
                pki: cfg.pki.clone(),
                source,
            }
        })?;
        std::fs::create_dir_all(&cfg.data_dir).map_err(|source| MemberError::DataDir {
            path: cfg.data_dir.clone(),
            source,
        })?;
        let listener = std::net::TcpListener::bind(cfg.listen)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| MemberError::Listen {
                addr: cfg.listen,
                source,
            })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(format!("api-{}", cfg.name))
            .enable_all()
            .build()
            .map_err(MemberError::Runtime)?;
        let _guard = runtime.enter();
        let listener =
            tokio::net::TcpListener::from_std(listener).map_err(|source| MemberError::Listen {
                addr: cfg.listen,
                source,
            })?;

        let initial: Vec<(String, String)> = cfg
            .initial_cluster
            .iter()
            .map(|(n, a)| (n.clone(), a.to_string()))
            .collect();
        let reach = Arc::new(Reachability::default());
        let clients = Arc::new(PeerClients::new(cfg.pki.clone(), cfg.name.clone()));
        let shared = Arc::new(Shared {
            clients: Arc::clone(&clients),
            reach: Arc::clone(&reach),
            driver: OnceLock::new(),
            watch: OnceLock::new(),
            initial: initial.clone(),
            advertise: cfg.advertise.to_string(),
            name: cfg.name.clone(),
        });
        let transport = GrpcTransport::new(Arc::clone(&shared), runtime.handle().clone());
        let mut node = NodeConfig::new(&cfg.name, cfg.data_dir.clone(), initial);
        node.admins = cfg.admins.clone();
        let mut dcfg = DriverConfig::new(node);
        dcfg.request_timeout = Duration::from_secs(4);
        let driver = Driver::spawn(dcfg, transport)?;
        let _ = shared.driver.set(driver.clone());
        let _ = shared.watch.set(driver.watch());

        let (audit_tx, audit_rx) = mpsc::channel(AUDIT_QUEUE);
        let ctx = Arc::new(Ctx {
            name: cfg.name.clone(),
            driver: driver.clone(),
            watch: driver.watch(),
            peers: PeerClients::new(cfg.pki.clone(), cfg.name.clone()),
            reach,
            dataplane: Arc::clone(&dataplane),
            initial: cfg.initial_cluster.clone(),
            audit_tx: audit_tx.clone(),
        });
        let grants = StateGrants::new(
            driver.watch(),
            cfg.initial_cluster.iter().map(|(n, _)| n.clone()).collect(),
            cfg.admins.clone(),
            audit_tx,
        );
        runtime.spawn(record_refusals(Arc::clone(&ctx), audit_rx));
        runtime.spawn(log_changes(Arc::clone(&ctx)));
        if let (Some(join), true) = (cfg.join, cfg.initial_cluster.is_empty()) {
            runtime.spawn(learn_members(
                cfg.pki.clone(),
                cfg.name.clone(),
                join,
                Arc::clone(&grants),
                driver.watch(),
            ));
        }

        let server = ApiServer::new()
            .policy(PolicySvc {
                ctx: Arc::clone(&ctx),
            })
            .endpoints(EndpointSvc {
                ctx: Arc::clone(&ctx),
            })
            .cluster(ClusterSvc {
                ctx: Arc::clone(&ctx),
            })
            .access(AccessSvc {
                ctx: Arc::clone(&ctx),
            })
            .dataplane(DataplaneSvc { dataplane })
            .peer(PeerSvc {
                ctx: Arc::clone(&ctx),
                grants: Arc::clone(&grants),
                snapshots: tokio::sync::Semaphore::new(1),
            });
        let health = server.health_reporter();
        let services = server.services().to_vec();
        let auth = AuthLayer::new(grants.clone(), grants);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let name = cfg.name.clone();
        runtime.spawn(async move {
            let stopped = async {
                let _ = stop_rx.await;
            };
            if let Err(e) = server.serve(listener, tls, auth, stopped).await {
                tracing::error!(member = %name, error = %e, "API server stopped");
            }
            let _ = done_tx.send(());
        });
        tracing::info!(member = %cfg.name, listen = %cfg.listen, advertise = %cfg.advertise, join = ?cfg.join, "member started");
        drop(_guard);
        Ok(Member {
            name: cfg.name,
            runtime: Some(runtime),
            driver,
            health,
            services,
            shutdown: Some(stop_tx),
            served: Some(done_rx),
        })
    }

    /// The replicated state as applied on this member.
    pub fn watch(&self) -> StateWatch {
        self.driver.watch()
    }

    /// Health `NOT_SERVING`, stop the server and the driver; returns within
    /// a few seconds. Do not call from inside an async context.
    pub fn stop(mut self) {
        self.shutdown_now();
    }

    fn shutdown_now(&mut self) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        let health = self.health.clone();
        let services = self.services.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        runtime.spawn(async move {
            health
                .set_service_status("", ServingStatus::NotServing)
                .await;
            for s in services {
                health
                    .set_service_status(s, ServingStatus::NotServing)
                    .await;
            }
            let _ = tx.send(());
        });
        let _ = rx.recv_timeout(Duration::from_secs(1));
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
        // Graceful shutdown waits for open streams (peers' `Send`); give it a moment.
        if let Some(done) = self.served.take() {
            let _ = done.recv_timeout(Duration::from_secs(2));
        }
        self.driver.stop();
        runtime.shutdown_timeout(Duration::from_secs(2));
        tracing::info!(member = %self.name, "member stopped");
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}

/// Proposes queued refusals as `AuditRefused`, skipping them without quorum.
async fn record_refusals(ctx: Arc<Ctx>, mut rx: mpsc::Receiver<Refused>) {
    // Refusals are replicated: an identity that is refused in a loop must
    // not grow the log without bound. Each identity gets at most
    // REFUSALS_PER_WINDOW audit entries per window; the rest are counted
    // and summed up in one entry when the window rolls over. Texts are cut.
    let mut windows: std::collections::HashMap<String, (tokio::time::Instant, u32, u64)> =
        std::collections::HashMap::new();
    while let Some(r) = rx.recv().await {
        let now = tokio::time::Instant::now();
        let w = windows.entry(r.identity.clone()).or_insert((now, 0, 0));
        let mut summary = None;
        if now.duration_since(w.0) >= REFUSAL_WINDOW {
            if w.2 > 0 {
                summary = Some(w.2);
            }
            *w = (now, 0, 0);
        }
        if windows.len() > 10_000 {
            windows.retain(|_, w| now.duration_since(w.0) < REFUSAL_WINDOW);
        }
        let Some(w) = windows.get_mut(&r.identity) else {
            continue;
        };
        if w.1 >= REFUSALS_PER_WINDOW {
            w.2 += 1;
            continue;
        }
        w.1 += 1;
        let mut reason = cut(&r.reason, MAX_REFUSAL_TEXT);
        if let Some(n) = summary {
            reason =
                format!("{reason} ({n} earlier refusals of this identity not recorded one by one)");
        }
        let op = Op::Change(Change::AuditRefused {
            action: cut(&r.action, 128),
            reason,
        });
        if let Err(st) = ctx.write(&cut(&r.identity, 128), op).await {
            tracing::debug!(member = %ctx.name, status = %st, "refusal not recorded");
        }
    }
}

/// Audit entries of refusals per identity per [`REFUSAL_WINDOW`].
const REFUSALS_PER_WINDOW: u32 = 20;
const REFUSAL_WINDOW: Duration = Duration::from_secs(60);
/// Longest refusal text recorded (bytes).
const MAX_REFUSAL_TEXT: usize = 1024;

/// `s` cut to at most `max` bytes at a character boundary, marked when cut.
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// Logs leader changes and applied revisions.
async fn log_changes(ctx: Arc<Ctx>) {
    let mut leader = None;
    let mut revision = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let driver = ctx.driver.clone();
        let Ok(Ok(status)) = crate::ctx::blocking(move || driver.status()).await else {
            return;
        };
        if status.leader != leader {
            leader = status.leader;
            tracing::info!(member = %ctx.name, leader = ?leader.map(|l| format!("{l:#x}")), term = status.term, "leader changed");
        }
        let state = ctx.state();
        let now = state.current_revision().map_or(0, |r| r.number);
        if now != revision {
            revision = now;
            tracing::info!(member = %ctx.name, revision, applied = state.applied, "policy revision applied");
        }
    }
}

/// A joining member learns who the cluster's members are from the member at
/// its `--join` address (the TLS server certificate must name that
/// address), once that cluster lists this member (after `bulkctl cluster
/// add-member`). Until then it accepts Raft traffic from nobody; once its
/// first snapshot is applied, the replicated members map rules.
async fn learn_members(
    pki: PathBuf,
    name: String,
    join: SocketAddr,
    grants: Arc<StateGrants>,
    watch: StateWatch,
) {
    use bulkhead_proto::v1::cluster_service_client::ClusterServiceClient;
    let mut warned = false;
    loop {
        if watch.current().bootstrapped {
            return;
        }
        let host = join.ip().to_string();
        let asked = async {
            let tls = bulkhead_pki::client_tls(&pki, &name, &host).map_err(|e| e.to_string())?;
            let ch = tonic::transport::Endpoint::from_shared(format!("https://{join}"))
                .map_err(|e| e.to_string())?
                .tls_config(tls)
                .map_err(|e| e.to_string())?
                .connect_timeout(Duration::from_secs(2))
                .connect()
                .await
                .map_err(|e| e.to_string())?;
            ClusterServiceClient::new(ch)
                .status(bulkhead_proto::v1::ClusterStatusRequest {})
                .await
                .map(|r| r.into_inner())
                .map_err(|e| e.message().to_string())
        };
        match asked.await {
            Ok(status) if status.members.iter().any(|m| m.name == name) => {
                let names: Vec<String> = status.members.into_iter().map(|m| m.name).collect();
                tracing::info!(member = %name, via = %join, members = ?names, "joined: accepting the cluster's members as peers");
                grants.set_joined(names);
                return;
            }
            Ok(_) | Err(_) if !warned => {
                tracing::info!(member = %name, via = %join, "waiting to be added: run `bulkctl cluster add-member {name} ADDR:PORT` on the cluster");
                warned = true;
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn refusal_texts_are_cut_at_a_character_boundary() {
        assert_eq!(cut("short", 10), "short");
        let long = "é".repeat(600);
        let c = cut(&long, 1023);
        assert!(c.starts_with(&"é".repeat(511)));
        assert!(c.ends_with("… (1200 bytes)"), "{c}");
        assert!(c.len() < 1100);
    }
}

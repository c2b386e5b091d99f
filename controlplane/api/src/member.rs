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
    while let Some(r) = rx.recv().await {
        let op = Op::Change(Change::AuditRefused {
            action: r.action,
            reason: r.reason,
        });
        if let Err(st) = ctx.write(&r.identity, op).await {
            tracing::debug!(member = %ctx.name, status = %st, "refusal not recorded");
        }
    }
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

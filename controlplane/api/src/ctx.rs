//! What every service of one member shares ([`Ctx`]): the cluster driver,
//! the applied state, clients to other members, the dataplane, and the
//! write path — propose here when this member leads, otherwise forward to
//! the leader through `PeerService/Forward`, retrying across elections.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bulkhead_cluster::{
    member_id, ApplyOutcome, Change, ClusterError, Command, DriverHandle, MemberChangeKind, State,
    StateWatch,
};
use bulkhead_proto::v1::{self, peer_service_client::PeerServiceClient};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};
use tonic::Status;

use crate::member::Dataplane;
use crate::Caller;

/// How long a write keeps retrying while a leader is elected or moves.
const WRITE_DEADLINE: Duration = Duration::from_secs(8);
/// Pause between write attempts while there is no usable leader.
const WRITE_RETRY: Duration = Duration::from_millis(200);
/// Deadline of one forwarded write (the leader waits up to its own propose timeout).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// A write as it travels to the leader in `ForwardRequest.command` (JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Forwarded {
    /// The client's identity (the follower's auth layer verified it).
    pub identity: String,
    /// Wall clock of the receiving member, milliseconds.
    pub time_ms: u64,
    pub op: Op,
}

/// The writes the API makes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Op {
    /// A state-machine command.
    Change(Change),
    /// A member change.
    Member {
        kind: MemberChangeKind,
        name: String,
        address: String,
    },
    /// Move leadership.
    Transfer { name: String },
}

impl Op {
    /// The gRPC method whose role the leader checks again for a forwarded write.
    pub(crate) fn method(&self) -> Option<&'static str> {
        Some(match self {
            Op::Change(Change::PutPolicy { .. }) => "/bulkhead.v1.PolicyService/Apply",
            Op::Change(Change::Rollback { .. }) => "/bulkhead.v1.PolicyService/Rollback",
            Op::Change(Change::Endpoints { .. }) => "/bulkhead.v1.EndpointService/Add",
            Op::Change(Change::Grant { .. }) => "/bulkhead.v1.AccessService/Grant",
            Op::Change(Change::Revoke { .. }) => "/bulkhead.v1.AccessService/Revoke",
            // Any member may record a refusal it saw.
            Op::Change(Change::AuditRefused { .. }) => return None,
            Op::Change(_) => "/bulkhead.v1.ClusterService/AddMember",
            Op::Member {
                kind: MemberChangeKind::Remove,
                ..
            } => "/bulkhead.v1.ClusterService/RemoveMember",
            Op::Member { .. } => "/bulkhead.v1.ClusterService/AddMember",
            Op::Transfer { .. } => "/bulkhead.v1.ClusterService/TransferLeader",
        })
    }
}

/// A refusal to be recorded in the replicated audit log.
#[derive(Clone, Debug)]
pub(crate) struct Refused {
    pub identity: String,
    pub action: String,
    pub reason: String,
}

/// Which peers the transport currently holds a live stream to (raft ids).
#[derive(Debug, Default)]
pub(crate) struct Reachability {
    connected: Mutex<HashMap<u64, bool>>,
    /// Addresses peers advertised on their `Send` streams (raft id → address).
    learned: Mutex<HashMap<u64, String>>,
}

impl Reachability {
    pub(crate) fn set(&self, id: u64, up: bool) -> bool {
        let mut g = self
            .connected
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        g.insert(id, up) != Some(up)
    }

    pub(crate) fn is_up(&self, id: u64) -> bool {
        let g = self
            .connected
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        g.get(&id).copied().unwrap_or(false)
    }

    pub(crate) fn learn(&self, id: u64, address: String) {
        let mut g = self.learned.lock().unwrap_or_else(PoisonError::into_inner);
        g.insert(id, address);
    }

    pub(crate) fn learned(&self, id: u64) -> Option<String> {
        let g = self.learned.lock().unwrap_or_else(PoisonError::into_inner);
        g.get(&id).cloned()
    }
}

/// Wall clock, milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The host part of `host:port` (brackets of an IPv6 literal removed), for
/// the TLS server name.
pub(crate) fn host_of(address: &str) -> String {
    if let Ok(sa) = address.parse::<SocketAddr>() {
        return sa.ip().to_string();
    }
    address
        .rsplit_once(':')
        .map_or(address, |(h, _)| h)
        .trim_matches(|c| c == '[' || c == ']')
        .to_owned()
}

/// gRPC channels to other members, presenting this member's certificate.
#[derive(Debug)]
pub(crate) struct PeerClients {
    pub pki: PathBuf,
    pub own: String,
    channels: Mutex<HashMap<String, Channel>>,
}

impl PeerClients {
    pub(crate) fn new(pki: PathBuf, own: String) -> Self {
        PeerClients {
            pki,
            own,
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// An endpoint to `address` with this member's client certificate.
    pub(crate) fn endpoint(&self, address: &str) -> Result<Endpoint, Status> {
        let tls = bulkhead_pki::client_tls(&self.pki, &self.own, &host_of(address))
            .map_err(|e| Status::internal(format!("client TLS for {address}: {e}")))?;
        Endpoint::from_shared(format!("https://{address}"))
            .and_then(|e| e.tls_config(tls))
            .map(|e| {
                e.connect_timeout(Duration::from_secs(1))
                    .http2_keep_alive_interval(Duration::from_secs(1))
                    .keep_alive_timeout(Duration::from_secs(2))
                    .keep_alive_while_idle(true)
                    .tcp_nodelay(true)
            })
            .map_err(|e| Status::internal(format!("peer address {address}: {e}")))
    }

    /// A (cached, lazily connecting) channel to `address`.
    pub(crate) fn channel(&self, address: &str) -> Result<Channel, Status> {
        let mut g = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(ch) = g.get(address) {
            return Ok(ch.clone());
        }
        let ch = self.endpoint(address)?.connect_lazy();
        g.insert(address.to_owned(), ch.clone());
        Ok(ch)
    }
}

/// What every service of one member shares.
pub(crate) struct Ctx {
    pub name: String,
    pub driver: DriverHandle,
    pub watch: StateWatch,
    pub peers: PeerClients,
    pub reach: Arc<Reachability>,
    pub dataplane: Arc<dyn Dataplane>,
    pub initial: Vec<(String, SocketAddr)>,
    pub audit_tx: mpsc::Sender<Refused>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("name", &self.name).finish()
    }
}

/// Runs a blocking driver call off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("blocking task failed: {e}")))
}

/// The caller the auth layer put into the request.
pub(crate) fn caller<T>(req: &tonic::Request<T>) -> Result<Caller, Status> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no authenticated caller on this request"))
}

impl Ctx {
    /// The applied state on this member.
    pub(crate) fn state(&self) -> Arc<State> {
        self.watch.current()
    }

    /// The state after a ReadIndex barrier (current as of the call), or the
    /// local state when no leader can confirm it.
    pub(crate) async fn read_state(&self) -> Arc<State> {
        let driver = self.driver.clone();
        if let Ok(Err(e)) = blocking(move || driver.read_index()).await {
            tracing::debug!(member = %self.name, error = %e, "read index failed; serving local state");
        }
        self.state()
    }

    /// Every member name and address: the replicated members, or the initial
    /// cluster before bootstrap.
    pub(crate) fn members(&self, state: &State) -> BTreeMap<String, (String, bool)> {
        if state.bootstrapped {
            state
                .members
                .values()
                .map(|m| (m.name.clone(), (m.address.clone(), m.voter)))
                .collect()
        } else {
            self.initial
                .iter()
                .map(|(n, a)| (n.clone(), (a.to_string(), true)))
                .collect()
        }
    }

    /// "no quorum: N of M members reachable".
    pub(crate) fn no_quorum(&self) -> Status {
        let members = self.members(&self.state());
        let total = members.len().max(1);
        let up = members
            .keys()
            .filter(|n| **n == self.name || self.reach.is_up(member_id(n)))
            .count()
            .max(1);
        Status::unavailable(format!(
            "no quorum: {up} of {total} members reachable; retry when more members are up"
        ))
    }

    /// A cluster error as the status a client sees.
    pub(crate) fn status_of(&self, e: &ClusterError) -> Status {
        match e {
            ClusterError::NotLeader { leader: None } | ClusterError::Timeout { .. } => {
                self.no_quorum()
            }
            ClusterError::NotLeader { .. }
            | ClusterError::ProposalDropped { .. }
            | ClusterError::OutcomeUnknown { .. }
            | ClusterError::Stopped { .. } => Status::unavailable(e.to_string()),
            ClusterError::UnknownMember { .. } => Status::not_found(e.to_string()),
            ClusterError::MemberExists { .. } => Status::already_exists(e.to_string()),
            ClusterError::NotCaughtUp { .. } => Status::failed_precondition(e.to_string()),
            ClusterError::Config { .. } => Status::invalid_argument(e.to_string()),
            _ => Status::internal(e.to_string()),
        }
    }

    /// Records a refusal in the replicated audit log, best effort: never
    /// blocks, dropped when the queue is full.
    pub(crate) fn refuse(&self, identity: &str, action: &str, reason: &str) {
        let r = Refused {
            identity: identity.to_owned(),
            action: action.to_owned(),
            reason: reason.to_owned(),
        };
        if self.audit_tx.try_send(r).is_err() {
            tracing::warn!(member = %self.name, identity, action, "audit queue full; refusal not recorded");
        }
    }

    /// Executes a write on this member's node (it must lead).
    pub(crate) async fn execute_local(
        &self,
        fwd: Forwarded,
    ) -> Result<Result<(u64, ApplyOutcome), ClusterError>, Status> {
        let driver = self.driver.clone();
        blocking(move || match fwd.op {
            Op::Change(change) => driver.propose_at(Command {
                identity: fwd.identity,
                time_ms: fwd.time_ms,
                change,
            }),
            Op::Member {
                kind,
                name,
                address,
            } => driver.change_member(&fwd.identity, &name, &address, kind),
            Op::Transfer { name } => driver
                .transfer_leader(&name)
                .map(|()| (0, ApplyOutcome::Ok)),
        })
        .await
    }

    /// A write by `identity`: proposed here when this member leads,
    /// otherwise forwarded to the leader; retried while leadership moves.
    pub(crate) async fn write(
        &self,
        identity: &str,
        op: Op,
    ) -> Result<(u64, ApplyOutcome), Status> {
        let fwd = Forwarded {
            identity: identity.to_owned(),
            time_ms: now_ms(),
            op,
        };
        let deadline = Instant::now() + WRITE_DEADLINE;
        loop {
            let retry = match self.execute_local(fwd.clone()).await? {
                Ok(done) => return Ok(done),
                Err(ClusterError::NotLeader {
                    leader: Some(leader),
                }) if !leader.address.is_empty() => match self.forward(&leader.address, &fwd).await
                {
                    Ok(done) => return Ok(done),
                    Err(st) if st.code() == tonic::Code::Unavailable => st,
                    Err(st) => return Err(st),
                },
                Err(
                    e @ (ClusterError::NotLeader { .. } | ClusterError::ProposalDropped { .. }),
                ) => self.status_of(&e),
                Err(e) => return Err(self.status_of(&e)),
            };
            if Instant::now() + WRITE_RETRY >= deadline {
                return Err(if retry.message().starts_with("no quorum") {
                    retry
                } else {
                    self.no_quorum()
                });
            }
            tokio::time::sleep(WRITE_RETRY).await;
        }
    }

    async fn forward(&self, address: &str, fwd: &Forwarded) -> Result<(u64, ApplyOutcome), Status> {
        let command = serde_json::to_vec(fwd)
            .map_err(|e| Status::internal(format!("encode forwarded write: {e}")))?;
        let mut client = PeerServiceClient::new(self.peers.channel(address)?)
            .max_decoding_message_size(crate::MAX_PEER_MESSAGE_BYTES);
        let mut req = tonic::Request::new(v1::ForwardRequest {
            command,
            identity: fwd.identity.clone(),
        });
        req.set_timeout(FORWARD_TIMEOUT);
        let resp = client.forward(req).await.map_err(|st| match st.code() {
            // The leader is down or unreachable: a new one will be elected.
            tonic::Code::Unknown | tonic::Code::Cancelled | tonic::Code::DeadlineExceeded => {
                Status::unavailable(format!(
                    "forward to the leader at {address}: {}",
                    st.message()
                ))
            }
            _ => st,
        })?;
        let resp = resp.into_inner();
        let outcome: ApplyOutcome = serde_json::from_slice(&resp.result)
            .map_err(|e| Status::internal(format!("decode the leader's answer: {e}")))?;
        Ok((resp.index, outcome))
    }
}

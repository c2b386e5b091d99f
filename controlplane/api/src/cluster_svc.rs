//! `ClusterService`: status of every member (asked over gRPC), membership
//! changes (a new member joins as a learner and is promoted once caught
//! up), leadership transfer, and this member's own progress.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulkhead_cluster::{member_id, MemberChangeKind};
use bulkhead_proto::v1::{
    self, cluster_service_client::ClusterServiceClient, cluster_service_server::ClusterService,
};
use tokio::task::JoinSet;
use tonic::{Request, Response, Status};

use crate::ctx::{blocking, caller, Ctx, Op};

/// How long `Status` waits for each member's own answer.
const MEMBER_STATE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a new learner may take to catch up before promotion gives up.
const PROMOTE_DEADLINE: Duration = Duration::from_secs(60);
/// Pause between promotion attempts.
const PROMOTE_RETRY: Duration = Duration::from_millis(300);

/// The cluster service of one member.
#[derive(Debug)]
pub struct ClusterSvc {
    pub(crate) ctx: Arc<Ctx>,
}

/// Asks the member at `address` for its own progress.
async fn ask(ctx: &Ctx, address: &str) -> Option<v1::MemberStateResponse> {
    let channel = ctx.peers.channel(address).ok()?;
    let mut client = ClusterServiceClient::new(channel);
    let mut req = Request::new(v1::MemberStateRequest {});
    req.set_timeout(MEMBER_STATE_TIMEOUT);
    match tokio::time::timeout(MEMBER_STATE_TIMEOUT, client.member_state(req)).await {
        Ok(Ok(resp)) => Some(resp.into_inner()),
        _ => None,
    }
}

/// Every member (replicated members map, or the initial cluster before
/// bootstrap) with its own answer to `MemberState` (reachable = answered).
pub(crate) async fn member_states(ctx: &Arc<Ctx>) -> Vec<v1::Member> {
    let members = ctx.members(&ctx.state());
    let mut set = JoinSet::new();
    for (i, (name, (address, voter))) in members.into_iter().enumerate() {
        let ctx = Arc::clone(ctx);
        set.spawn(async move {
            let own = (name == ctx.name).then(|| own_state(&ctx));
            let answer = match own {
                Some(s) => Some(s),
                None => ask(&ctx, &address).await,
            };
            let m = v1::Member {
                reachable: answer.is_some(),
                enforced_revision: answer.as_ref().map_or(0, |a| a.enforced_revision),
                applied_index: answer.as_ref().map_or(0, |a| a.applied_index),
                name,
                address,
                voter,
            };
            (i, m)
        });
    }
    let mut out: Vec<(usize, v1::Member)> = set.join_all().await;
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, m)| m).collect()
}

fn own_state(ctx: &Ctx) -> v1::MemberStateResponse {
    v1::MemberStateResponse {
        name: ctx.name.clone(),
        enforced_revision: ctx.dataplane.enforced_revision(),
        applied_index: ctx.state().applied,
    }
}

/// Retries promoting learner `name` until it has caught up (or the deadline).
async fn promote_when_caught_up(ctx: Arc<Ctx>, identity: String, name: String) {
    let deadline = Instant::now() + PROMOTE_DEADLINE;
    loop {
        tokio::time::sleep(PROMOTE_RETRY).await;
        let op = Op::Member {
            kind: MemberChangeKind::Promote,
            name: name.clone(),
            address: String::new(),
        };
        match ctx.write(&identity, op).await {
            Ok(_) => {
                tracing::info!(member = %ctx.name, learner = %name, "learner promoted to voter");
                return;
            }
            Err(st) if st.code() == tonic::Code::NotFound => {
                tracing::warn!(member = %ctx.name, learner = %name, status = %st, "promotion abandoned");
                return;
            }
            Err(st) if Instant::now() >= deadline => {
                tracing::warn!(member = %ctx.name, learner = %name, status = %st, "learner did not catch up in time; promote it later");
                return;
            }
            Err(st) => tracing::debug!(learner = %name, status = %st, "not promoted yet"),
        }
    }
}

impl ClusterSvc {
    /// A member write; a refusal before the log (unknown member, …) is audited.
    async fn member_write(&self, identity: &str, action: &str, op: Op) -> Result<u64, Status> {
        match self.ctx.write(identity, op).await {
            Ok((index, _)) => Ok(index),
            Err(st) => {
                if matches!(
                    st.code(),
                    tonic::Code::NotFound
                        | tonic::Code::AlreadyExists
                        | tonic::Code::InvalidArgument
                        | tonic::Code::FailedPrecondition
                ) {
                    self.ctx.refuse(identity, action, st.message());
                }
                Err(st)
            }
        }
    }
}

#[tonic::async_trait]
impl ClusterService for ClusterSvc {
    async fn status(
        &self,
        _request: Request<v1::ClusterStatusRequest>,
    ) -> Result<Response<v1::ClusterStatus>, Status> {
        let driver = self.ctx.driver.clone();
        let status = blocking(move || driver.status())
            .await?
            .map_err(|e| self.ctx.status_of(&e))?;
        let state = self.ctx.state();
        let leader = status
            .leader
            .and_then(|id| {
                self.ctx
                    .members(&state)
                    .into_keys()
                    .find(|n| member_id(n) == id)
            })
            .unwrap_or_default();
        let members = member_states(&self.ctx).await;
        Ok(Response::new(v1::ClusterStatus {
            leader,
            term: status.term,
            revision: state.current_revision().map_or(0, |r| r.number),
            members,
        }))
    }

    async fn add_member(
        &self,
        request: Request<v1::AddMemberRequest>,
    ) -> Result<Response<v1::MembershipResponse>, Status> {
        let who = caller(&request)?;
        let req = request.into_inner();
        let problem = bulkhead_pki::check_identity_name(&req.name)
            .err()
            .map(|e| e.to_string())
            .or_else(|| {
                req.address
                    .parse::<SocketAddr>()
                    .err()
                    .map(|_| format!("address {:?} is not host:port with an IP host", req.address))
            });
        if let Some(p) = problem {
            self.ctx
                .refuse(&who.identity, "ClusterService/AddMember", &p);
            return Err(Status::invalid_argument(p));
        }
        let op = Op::Member {
            kind: MemberChangeKind::AddLearner,
            name: req.name.clone(),
            address: req.address,
        };
        let index = self
            .member_write(&who.identity, "ClusterService/AddMember", op)
            .await?;
        tracing::info!(member = %self.ctx.name, learner = %req.name, "member added as learner");
        tokio::spawn(promote_when_caught_up(
            Arc::clone(&self.ctx),
            who.identity,
            req.name,
        ));
        Ok(Response::new(v1::MembershipResponse { index }))
    }

    async fn remove_member(
        &self,
        request: Request<v1::RemoveMemberRequest>,
    ) -> Result<Response<v1::MembershipResponse>, Status> {
        let who = caller(&request)?;
        let op = Op::Member {
            kind: MemberChangeKind::Remove,
            name: request.into_inner().name,
            address: String::new(),
        };
        let index = self
            .member_write(&who.identity, "ClusterService/RemoveMember", op)
            .await?;
        Ok(Response::new(v1::MembershipResponse { index }))
    }

    async fn transfer_leader(
        &self,
        request: Request<v1::TransferLeaderRequest>,
    ) -> Result<Response<v1::TransferLeaderResponse>, Status> {
        let who = caller(&request)?;
        let op = Op::Transfer {
            name: request.into_inner().name,
        };
        self.member_write(&who.identity, "ClusterService/TransferLeader", op)
            .await?;
        Ok(Response::new(v1::TransferLeaderResponse {}))
    }

    async fn member_state(
        &self,
        _request: Request<v1::MemberStateRequest>,
    ) -> Result<Response<v1::MemberStateResponse>, Status> {
        Ok(Response::new(own_state(&self.ctx)))
    }
}

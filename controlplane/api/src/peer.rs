//! `PeerService`, the server side of the Raft transport and of forwarded
//! writes. Only members reach it (the auth layer checks membership).

use std::sync::Arc;

use bulkhead_cluster::{decode_message, member_id};
use bulkhead_proto::v1::{self, peer_service_server::PeerService};
use tonic::{Request, Response, Status, Streaming};

use crate::ctx::{caller, Ctx, Forwarded, Op};
use crate::grants::StateGrants;
use crate::transport::ADVERTISE_KEY;
use crate::MAX_PEER_MESSAGE_BYTES;

/// Largest snapshot accepted (reassembled).
pub const MAX_SNAPSHOT_BYTES: usize = 1024 * 1024 * 1024;

/// The peer service of one member.
#[derive(Debug)]
pub struct PeerSvc {
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) grants: Arc<StateGrants>,
    /// Snapshots being received (at most one).
    pub(crate) snapshots: tokio::sync::Semaphore,
}

impl PeerSvc {
    /// The caller is (still) a member: streams outlive the auth layer's
    /// check at their start.
    fn still_member(&self, identity: &str) -> Result<(), Status> {
        use crate::Grants;
        if self.grants.is_member(identity) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "{identity} is not a member of this cluster (any more)"
            )))
        }
    }
}

#[tonic::async_trait]
impl PeerService for PeerSvc {
    async fn send(
        &self,
        request: Request<Streaming<v1::RaftBatch>>,
    ) -> Result<Response<v1::SendResponse>, Status> {
        let who = caller(&request)?;
        if let Some(addr) = request
            .metadata()
            .get(ADVERTISE_KEY)
            .and_then(|v| v.to_str().ok())
        {
            self.ctx
                .reach
                .learn(member_id(&who.identity), addr.to_owned());
        }
        let mut stream = request.into_inner();
        while let Some(batch) = stream.message().await? {
            // Membership is checked per batch, not only when the stream
            // opened: a removed member's stream ends here.
            self.still_member(&who.identity)?;
            for bytes in batch.messages {
                if bytes.len() > MAX_PEER_MESSAGE_BYTES {
                    return Err(Status::out_of_range(format!(
                        "raft message of {} bytes exceeds {MAX_PEER_MESSAGE_BYTES}",
                        bytes.len()
                    )));
                }
                let msg = decode_message(&bytes).map_err(|e| {
                    Status::invalid_argument(format!("undecodable raft message: {e}"))
                })?;
                if msg.from != member_id(&who.identity) {
                    return Err(Status::permission_denied(format!(
                        "identity {} sent a raft message as another member",
                        who.identity
                    )));
                }
                self.ctx.driver.step(msg);
            }
        }
        Ok(Response::new(v1::SendResponse {}))
    }

    async fn snapshot(
        &self,
        request: Request<Streaming<v1::SnapshotChunk>>,
    ) -> Result<Response<v1::SnapshotResponse>, Status> {
        let who = caller(&request)?;
        // One snapshot at a time: each may buffer up to MAX_SNAPSHOT_BYTES.
        let _one = self
            .snapshots
            .try_acquire()
            .map_err(|_| Status::resource_exhausted("a snapshot is already being received"))?;
        let mut stream = request.into_inner();
        let mut header: Option<Vec<u8>> = None;
        let mut data = Vec::new();
        while let Some(chunk) = stream.message().await? {
            self.still_member(&who.identity)?;
            if header.is_none() {
                // The sender is checked on the first chunk, before buffering.
                let msg = decode_message(&chunk.header).map_err(|e| {
                    Status::invalid_argument(format!("undecodable snapshot header: {e}"))
                })?;
                if msg.from != member_id(&who.identity) {
                    return Err(Status::permission_denied(format!(
                        "identity {} sent a snapshot as another member",
                        who.identity
                    )));
                }
                header = Some(chunk.header);
            }
            if chunk.offset != data.len() as u64 {
                return Err(Status::invalid_argument(format!(
                    "snapshot chunk at offset {}, expected {}",
                    chunk.offset,
                    data.len()
                )));
            }
            if data.len() + chunk.data.len() > MAX_SNAPSHOT_BYTES {
                return Err(Status::out_of_range(format!(
                    "snapshot exceeds {MAX_SNAPSHOT_BYTES} bytes"
                )));
            }
            data.extend_from_slice(&chunk.data);
            if chunk.last {
                break;
            }
        }
        let header = header.ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        let mut msg = decode_message(&header)
            .map_err(|e| Status::invalid_argument(format!("undecodable snapshot header: {e}")))?;
        if msg.from != member_id(&who.identity) {
            return Err(Status::permission_denied(format!(
                "identity {} sent a snapshot as another member",
                who.identity
            )));
        }
        let received = data.len() as u64;
        msg.mut_snapshot().set_data(data.into());
        self.ctx.driver.step(msg);
        Ok(Response::new(v1::SnapshotResponse { received }))
    }

    async fn forward(
        &self,
        request: Request<v1::ForwardRequest>,
    ) -> Result<Response<v1::ForwardResponse>, Status> {
        let req = request.into_inner();
        let fwd: Forwarded = serde_json::from_slice(&req.command)
            .map_err(|e| Status::invalid_argument(format!("undecodable forwarded write: {e}")))?;
        if fwd.identity != req.identity {
            return Err(Status::invalid_argument(
                "forwarded write names two different identities",
            ));
        }
        if let Some(method) = fwd.op.method() {
            // The auth layer only saw a member: check the client's role here,
            // against this member's replicated grants.
            if let Err(refusal) = crate::decide(self.grants.as_ref(), &fwd.identity, method) {
                self.ctx.refuse(
                    &fwd.identity,
                    crate::authz::short_method(method),
                    &format!("permission denied: {}", refusal.message),
                );
                return Err(refusal.to_status());
            }
        }
        let is_audit = matches!(
            fwd.op,
            Op::Change(bulkhead_cluster::Change::AuditRefused { .. })
        );
        match self.ctx.execute_local(fwd).await? {
            Ok((index, outcome)) => {
                let result = serde_json::to_vec(&outcome)
                    .map_err(|e| Status::internal(format!("encode the outcome: {e}")))?;
                Ok(Response::new(v1::ForwardResponse { index, result }))
            }
            Err(e) => {
                if !is_audit {
                    tracing::debug!(member = %self.ctx.name, error = %e, "forwarded write failed");
                }
                Err(self.ctx.status_of(&e))
            }
        }
    }
}

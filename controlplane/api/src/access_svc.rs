//! `AccessService`: role grants and the audit log, replicated.

use std::sync::Arc;

use bulkhead_cluster::{ApplyOutcome, AuditEntry, Change, Refusal};
use bulkhead_proto::v1::{self, access_service_server::AccessService};
use tonic::{Request, Response, Status};

use crate::ctx::{caller, Ctx, Op};
use crate::grants::{api_role, state_role};
use crate::Role;

/// Audit entries in one answer when the request sets no limit.
const DEFAULT_AUDIT: usize = 1000;
/// Prefix of the reasons of refusals by authorisation.
pub(crate) const DENIED: &str = "permission denied: ";

/// The access service of one member.
#[derive(Debug)]
pub struct AccessSvc {
    pub(crate) ctx: Arc<Ctx>,
}

fn access_reply(index: u64, outcome: ApplyOutcome) -> Result<v1::AccessChangeResponse, Status> {
    match outcome {
        ApplyOutcome::Ok | ApplyOutcome::Revision(_) => Ok(v1::AccessChangeResponse { index }),
        ApplyOutcome::Refused(r @ Refusal::NoSuchGrant { .. }) => {
            Err(Status::not_found(r.to_string()))
        }
        ApplyOutcome::Refused(r) => Err(Status::failed_precondition(r.to_string())),
    }
}

/// One replicated audit record as the API shows it.
fn proto_entry(e: &AuditEntry) -> v1::AuditEntry {
    let (outcome, detail) = match e.outcome.strip_prefix("refused: ") {
        None => (v1::AuditOutcome::Ok, String::new()),
        Some(reason) if reason.starts_with(DENIED) => {
            (v1::AuditOutcome::Refused, reason.to_owned())
        }
        Some(reason) => (v1::AuditOutcome::Failed, reason.to_owned()),
    };
    v1::AuditEntry {
        index: e.index,
        time_ms: e.time_ms,
        identity: e.identity.clone(),
        action: e.action.clone(),
        outcome: outcome as i32,
        detail,
        revision: e.revision,
    }
}

#[tonic::async_trait]
impl AccessService for AccessSvc {
    async fn grant(
        &self,
        request: Request<v1::GrantRequest>,
    ) -> Result<Response<v1::AccessChangeResponse>, Status> {
        let who = caller(&request)?;
        let req = request.into_inner();
        let role = Role::from_proto(req.role).ok_or_else(|| {
            Status::invalid_argument("role must be ROLE_VIEWER, ROLE_OPERATOR or ROLE_ADMIN")
        })?;
        bulkhead_pki::check_identity_name(&req.identity)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let change = Change::Grant {
            subject: req.identity,
            role: state_role(role),
        };
        let (index, outcome) = self.ctx.write(&who.identity, Op::Change(change)).await?;
        Ok(Response::new(access_reply(index, outcome)?))
    }

    async fn revoke(
        &self,
        request: Request<v1::RevokeRequest>,
    ) -> Result<Response<v1::AccessChangeResponse>, Status> {
        let who = caller(&request)?;
        let change = Change::Revoke {
            subject: request.into_inner().identity,
        };
        let (index, outcome) = self.ctx.write(&who.identity, Op::Change(change)).await?;
        Ok(Response::new(access_reply(index, outcome)?))
    }

    async fn list(
        &self,
        _request: Request<v1::ListGrantsRequest>,
    ) -> Result<Response<v1::ListGrantsResponse>, Status> {
        let state = self.ctx.read_state().await;
        let grants = state
            .roles
            .iter()
            .map(|(identity, role)| v1::Grant {
                identity: identity.clone(),
                role: api_role(*role).to_proto() as i32,
            })
            .collect();
        Ok(Response::new(v1::ListGrantsResponse { grants }))
    }

    async fn audit(
        &self,
        request: Request<v1::AuditRequest>,
    ) -> Result<Response<v1::AuditResponse>, Status> {
        let req = request.into_inner();
        let limit = match req.limit {
            0 => DEFAULT_AUDIT,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let state = self.ctx.read_state().await;
        let entries = state
            .audit
            .iter()
            .filter(|e| e.index > req.since_index)
            .take(limit)
            .map(proto_entry)
            .collect();
        Ok(Response::new(v1::AuditResponse { entries }))
    }
}

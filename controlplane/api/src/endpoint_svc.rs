//! `EndpointService`: place single addresses in segments of the current
//! policy, one replicated change per call.

use std::net::IpAddr;
use std::sync::Arc;

use bulkhead_cluster::Change;
use bulkhead_proto::v1::{self, endpoint_service_server::EndpointService};
use tonic::{Request, Response, Status};

use crate::ctx::{caller, Ctx, Op};
use crate::policy_svc::load_revision;

/// The segment nobody may place an endpoint in.
const WORLD: &str = "world";

/// The endpoint service of one member.
#[derive(Debug)]
pub struct EndpointSvc {
    pub(crate) ctx: Arc<Ctx>,
}

/// Canonical text of an IPv4/IPv6 literal, or why not.
fn address(s: &str) -> Result<String, String> {
    s.trim()
        .parse::<IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| format!("{s:?} is not an IPv4 or IPv6 address"))
}

impl EndpointSvc {
    fn refuse(&self, identity: &str, action: &str, problems: &[String]) -> Status {
        let message = format!(
            "{} endpoint(s) refused, nothing changed:\n{}",
            problems.len(),
            problems.join("\n")
        );
        self.ctx.refuse(identity, action, &message);
        Status::invalid_argument(message)
    }
}

#[tonic::async_trait]
impl EndpointService for EndpointSvc {
    async fn add(
        &self,
        request: Request<v1::AddEndpointsRequest>,
    ) -> Result<Response<v1::AddEndpointsResponse>, Status> {
        let who = caller(&request)?;
        let req = request.into_inner();
        let state = self.ctx.read_state().await;
        let Some(rev) = state.current_revision() else {
            let message = "no policy has been applied yet; endpoints are placed in its segments";
            self.ctx
                .refuse(&who.identity, "EndpointService/Add", message);
            return Err(Status::failed_precondition(message));
        };
        let policy = load_revision(rev)?;
        let mut problems = Vec::new();
        let mut add = Vec::with_capacity(req.endpoints.len());
        for (i, e) in req.endpoints.iter().enumerate() {
            let entry = format!("endpoint {} ({} in {})", i + 1, e.address, e.segment);
            let addr = match address(&e.address) {
                Ok(a) => a,
                Err(why) => {
                    problems.push(format!("{entry}: {why}"));
                    continue;
                }
            };
            if e.segment == WORLD {
                problems.push(format!("{entry}: endpoints cannot be placed in world"));
            } else if policy.segment_index(&e.segment).is_none() {
                problems.push(format!(
                    "{entry}: no segment {:?} in revision {}",
                    e.segment, rev.number
                ));
            } else {
                add.push((addr, e.segment.clone()));
            }
        }
        if !problems.is_empty() {
            return Err(self.refuse(&who.identity, "EndpointService/Add", &problems));
        }
        let changed = add
            .iter()
            .filter(|(a, s)| state.endpoints.get(a) != Some(s))
            .count() as u64;
        let change = Change::Endpoints {
            add,
            remove: Vec::new(),
        };
        let (index, _) = self.ctx.write(&who.identity, Op::Change(change)).await?;
        Ok(Response::new(v1::AddEndpointsResponse { changed, index }))
    }

    async fn remove(
        &self,
        request: Request<v1::RemoveEndpointsRequest>,
    ) -> Result<Response<v1::RemoveEndpointsResponse>, Status> {
        let who = caller(&request)?;
        let req = request.into_inner();
        let mut problems = Vec::new();
        let mut remove = Vec::with_capacity(req.addresses.len());
        for (i, a) in req.addresses.iter().enumerate() {
            match address(a) {
                Ok(a) => remove.push(a),
                Err(why) => problems.push(format!("address {}: {why}", i + 1)),
            }
        }
        if !problems.is_empty() {
            return Err(self.refuse(&who.identity, "EndpointService/Remove", &problems));
        }
        let state = self.ctx.read_state().await;
        let removed = remove
            .iter()
            .filter(|a| state.endpoints.contains_key(*a))
            .count() as u64;
        let unknown = remove.len() as u64 - removed;
        let change = Change::Endpoints {
            add: Vec::new(),
            remove,
        };
        let (index, _) = self.ctx.write(&who.identity, Op::Change(change)).await?;
        Ok(Response::new(v1::RemoveEndpointsResponse {
            removed,
            unknown,
            index,
        }))
    }

    async fn list(
        &self,
        request: Request<v1::ListEndpointsRequest>,
    ) -> Result<Response<v1::ListEndpointsResponse>, Status> {
        let segment = request.into_inner().segment;
        let state = self.ctx.read_state().await;
        let endpoints = state
            .endpoints
            .iter()
            .filter(|(_, s)| segment.as_ref().is_none_or(|want| want == *s))
            .map(|(a, s)| v1::Endpoint {
                address: a.clone(),
                segment: s.clone(),
            })
            .collect();
        Ok(Response::new(v1::ListEndpointsResponse { endpoints }))
    }
}

#[cfg(test)]
mod tests {
    use super::address;

    #[test]
    fn addresses_are_literals_in_canonical_form() {
        assert_eq!(address("10.0.0.1"), Ok("10.0.0.1".to_owned()));
        assert_eq!(address("fd00:0::1"), Ok("fd00::1".to_owned()));
        assert!(address("10.0.0.0/24").is_err());
        assert!(address("host.example").is_err());
    }
}

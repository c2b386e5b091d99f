//! The Bulkhead management API: who may call what, how large a request may
//! be, the mutual-TLS gRPC server that carries the `bulkhead.v1` services
//! together with `grpc.health.v1` and server reflection, the services
//! themselves over the Raft-replicated cluster state, the gRPC Raft
//! transport, and [`Member`], the runtime an appliance starts.
//!
//! Modules: [`role`] (the roles and their order), [`authz`] (the table from
//! gRPC method to the role it needs, and the decision), [`layer`] (the tower
//! layer that enforces it on every call before the body is decoded),
//! [`server`] (assembly and serving), [`member`] (the member runtime and the
//! [`Dataplane`] seam), `grants` (roles and membership from the replicated
//! state), `ctx` (the write path: propose on the leader or forward to it),
//! `policy_svc`, `endpoint_svc`, `cluster_svc`, `access_svc`,
//! `dataplane_svc` (the services), `transport` and `peer` (Raft over
//! `PeerService`, client and server side).
//!
//! Invariants: every call is made by a TLS-verified identity (the common
//! name of its certificate, see `bulkhead-pki`); a call that is refused never
//! reaches a service and is reported to the [`AuditSink`]; a method missing
//! from the table needs [`Role::Admin`]; the peer (Raft) service is only for
//! current cluster members, whatever role an identity holds.
#![forbid(unsafe_code)]

mod access_svc;
pub mod authz;
mod cluster_svc;
mod ctx;
mod dataplane_svc;
mod endpoint_svc;
mod grants;
pub mod layer;
pub mod member;
mod peer;
mod policy_svc;
pub mod role;
pub mod server;
mod transport;

pub use access_svc::AccessSvc;
pub use authz::{decide, required, AuditSink, Caller, Grants, Need, Refusal};
pub use cluster_svc::ClusterSvc;
pub use dataplane_svc::DataplaneSvc;
pub use endpoint_svc::EndpointSvc;
pub use grants::StateGrants;
pub use layer::{AuthLayer, AuthService};
pub use member::{Dataplane, Member, MemberConfig, MemberError};
pub use peer::{PeerSvc, MAX_SNAPSHOT_BYTES};
pub use policy_svc::PolicySvc;
pub use role::Role;
pub use server::{ApiError, ApiServer};
pub use transport::SNAPSHOT_CHUNK;

/// Largest decoded request of the policy and endpoint services: a policy
/// document (at most `bulkhead_policy::limits::MAX_DOCUMENT_BYTES`, 16 MiB)
/// with room for the rest of the message, or a batch of endpoints.
pub const MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;

/// Largest decoded message of the peer service: a batch of Raft messages
/// (entries carry policy documents) or a snapshot chunk.
pub const MAX_PEER_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Largest decoded request of the other services (cluster, access,
/// dataplane), whose requests are a few names and numbers.
pub const MAX_SMALL_REQUEST_BYTES: usize = 1024 * 1024;

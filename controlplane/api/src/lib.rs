//! The Bulkhead management API server: who may call what, how large a
//! request may be, and the mutual-TLS gRPC server that carries the
//! `bulkhead.v1` services together with `grpc.health.v1` and server
//! reflection. Service implementations plug in through [`ApiServer`]; this
//! crate holds none.
//!
//! Modules: [`role`] (the roles and their order), [`authz`] (the table from
//! gRPC method to the role it needs, and the decision), [`layer`] (the tower
//! layer that enforces it on every call before the body is decoded),
//! [`server`] (assembly and serving).
//!
//! Invariants: every call is made by a TLS-verified identity (the common
//! name of its certificate, see `bulkhead-pki`); a call that is refused never
//! reaches a service and is reported to the [`AuditSink`]; a method missing
//! from the table needs [`Role::Admin`]; the peer (Raft) service is only for
//! current cluster members, whatever role an identity holds.
#![forbid(unsafe_code)]

pub mod authz;
pub mod layer;
pub mod role;
pub mod server;

pub use authz::{decide, required, AuditSink, Caller, Grants, Need, Refusal};
pub use layer::{AuthLayer, AuthService};
pub use role::Role;
pub use server::{ApiError, ApiServer};

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

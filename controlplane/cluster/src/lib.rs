//! `bulkhead-cluster`: the Raft-replicated state of a cluster of appliances
//! (raft-rs, with raft-engine as the log store).
//!
//! # Who owns what
//! - [`state`]: the replicated state machine (policy revisions, endpoints,
//!   role grants, members, settings, audit log); deterministic, idempotent,
//!   the applied index stored with the state.
//! - [`storage`]: [`LogStore`], the raft log, hard state and last snapshot in a
//!   raft-engine directory, and the [`raft::Storage`] view of them.
//! - [`node`]: [`Node`], the deterministic core that owns the `RawNode` and runs
//!   the ready loop; driven step by step by tests or by the driver.
//! - [`driver`]: one node on its own thread (100 ms tick), commanded over a
//!   channel through a [`DriverHandle`]; the [`Transport`] carries messages.
//!
//! # Invariants
//! - One owner for the `RawNode`: the node's thread. Everyone else sends it a
//!   request and waits for the reply; the only shared data is the read-only
//!   published [`State`] (an `Arc` replaced after each applied batch).
//! - Entries and hard state are persisted (synced when raft asks) before the
//!   messages that depend on them leave the node; a storage error stops it.
//! - Member ids are derived from member names ([`member_id`]), so every process
//!   computes the same ids from `--initial-cluster NAME=ADDR,…`.
//!
//! See `DESIGN.md` beside this crate for the ready order and what is not done.
#![forbid(unsafe_code)]

pub mod driver;
mod error;
mod logging;
pub mod node;
mod ready;
pub mod state;
pub mod storage;

pub use driver::{Driver, DriverConfig, DriverHandle, StateWatch, Transport};
pub use error::{ClusterError, LeaderInfo};
pub use node::{member_id, Completion, CrashPoint, Node, NodeConfig, ProposalId, Status};
pub use state::{
    digest, ApplyOutcome, AuditEntry, Change, Command, Member, MemberChange, MemberChangeKind,
    Refusal, Revision, Role, State,
};
pub use storage::{decode_message, encode_message, LogStore, StoreError};

/// Re-exported raft types used in this crate's API (messages, snapshot status).
pub use raft::eraftpb::{Message, MessageType};
pub use raft::SnapshotStatus;

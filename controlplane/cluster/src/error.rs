//! Errors of the node and the driver, with messages a person can act on.

use crate::storage::StoreError;

/// The current leader, as far as this node knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderInfo {
    /// Raft id.
    pub id: u64,
    /// Member name (empty if not yet known).
    pub name: String,
    /// Peer address (empty if not yet known).
    pub address: String,
}

impl std::fmt::Display for LeaderInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.name.is_empty() {
            write!(f, "member with raft id {:#x}", self.id)
        } else {
            write!(f, "{} at {}", self.name, self.address)
        }
    }
}

fn leader_text(leader: &Option<LeaderInfo>) -> String {
    match leader {
        Some(l) => format!("leader is {l}; send the request there"),
        None => {
            "no leader is known yet (election in progress or no quorum); retry shortly".to_owned()
        }
    }
}

/// Why a cluster request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Writes go through the leader; this member is not it.
    #[error("not leader; {}", leader_text(.leader))]
    NotLeader {
        /// The leader, if one is known.
        leader: Option<LeaderInfo>,
    },
    /// No reply within the deadline (no quorum, partition, overload).
    #[error("{what} timed out after {after_ms} ms: a quorum of members may be unreachable")]
    Timeout {
        /// What was waited for.
        what: &'static str,
        /// The deadline.
        after_ms: u64,
    },
    /// The proposal was replaced in the log by a new leader and was not applied.
    #[error("proposal at index {index} (term {term}) was dropped by a leader change; retry it")]
    ProposalDropped {
        /// Log index it was given.
        index: u64,
        /// Term it was proposed in.
        term: u64,
    },
    /// A snapshot from the leader covered the proposal; it may or may not have applied.
    #[error("outcome of the proposal at index {index} is unknown (covered by a snapshot); check the state before retrying")]
    OutcomeUnknown {
        /// Log index it was given.
        index: u64,
    },
    /// The node has stopped (storage failure or shutdown).
    #[error("cluster node stopped: {reason}")]
    Stopped {
        /// Why.
        reason: String,
    },
    /// Persistence failed; the node stops.
    #[error(transparent)]
    Storage(#[from] StoreError),
    /// raft-rs refused an operation.
    #[error("raft refused to {op}: {source}")]
    Raft {
        /// What was attempted.
        op: &'static str,
        /// raft-rs's error.
        #[source]
        source: raft::Error,
    },
    /// A snapshot or entry could not be encoded or decoded.
    #[error("cannot {op}: {source}")]
    Codec {
        /// What was attempted.
        op: &'static str,
        /// The decoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// A received snapshot's state does not match its metadata.
    #[error("snapshot at index {meta_index} holds a state applied to {state_index}")]
    SnapshotMismatch {
        /// Index in the snapshot metadata.
        meta_index: u64,
        /// Applied index inside the snapshot data.
        state_index: u64,
    },
    /// No member of that name.
    #[error("no member named {name}")]
    UnknownMember {
        /// The name given.
        name: String,
    },
    /// A member exists already under that name.
    #[error("member {name} exists already")]
    MemberExists {
        /// The name given.
        name: String,
    },
    /// Promotion refused: the learner is behind.
    #[error("learner {name} has replicated up to {matched}, commit is {commit}; wait for it to catch up")]
    NotCaughtUp {
        /// Learner name.
        name: String,
        /// Its matched index.
        matched: u64,
        /// The leader's commit index.
        commit: u64,
    },
    /// The node configuration is invalid.
    #[error("invalid cluster configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
}

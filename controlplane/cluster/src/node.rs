//! [`Node`]: the deterministic core owning the `RawNode`, its [`LogStore`] and
//! the [`State`]. Nothing here reads a clock or spawns a thread: a test drives
//! it with [`Node::tick`], [`Node::step`], [`Node::propose`] and
//! [`Node::handle_ready`] (in `ready.rs`); the driver does the same on a thread.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, Message};
use raft::{RawNode, StateRole};
use sha2::{Digest, Sha256};

use crate::error::{ClusterError, LeaderInfo};
use crate::state::{ApplyOutcome, Command, MemberChange, MemberChangeKind, State};
use crate::storage::LogStore;

/// Derives a member's raft id from its name: the first 8 bytes of SHA-256 of
/// the name, big-endian; never 0 (raft's "none").
pub fn member_id(name: &str) -> u64 {
    let hash = Sha256::digest(name.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&hash[..8]);
    match u64::from_be_bytes(bytes) {
        0 => 1,
        id => id,
    }
}

/// How to start one node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This member's name (its raft id is [`member_id`] of it).
    pub name: String,
    /// raft-engine directory.
    pub data_dir: PathBuf,
    /// `(name, address)` of every initial voter. A first start with this node
    /// in the list bootstraps; otherwise the node joins and waits for the leader.
    pub initial_cluster: Vec<(String, String)>,
    /// Identities granted admin by the bootstrap command.
    pub admins: Vec<String>,
    /// Make a snapshot (and compact the log) when this many entries were
    /// applied since the last one.
    pub snapshot_threshold: u64,
    /// Ticks without a leader before an election.
    pub election_tick: usize,
    /// Ticks between heartbeats.
    pub heartbeat_tick: usize,
    /// Fixed election timeout of exactly `election_tick` ticks instead of
    /// raft's random one in `[election_tick, 2 * election_tick)` (drawn from
    /// an unseeded generator): for seeded, replayable simulations, where the
    /// schedule supplies the randomness. Keep `false` in production.
    pub fixed_election_timeout: bool,
}

impl NodeConfig {
    /// Defaults: snapshot every 1,000 entries, election after 10 ticks, heartbeat every 2.
    pub fn new(name: &str, data_dir: PathBuf, initial_cluster: Vec<(String, String)>) -> Self {
        NodeConfig {
            name: name.to_owned(),
            data_dir,
            initial_cluster,
            admins: Vec::new(),
            snapshot_threshold: 1_000,
            election_tick: 10,
            heartbeat_tick: 2,
            fixed_election_timeout: false,
        }
    }
}

/// Where a proposal landed in the log; completes when that index applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProposalId {
    /// Log index.
    pub index: u64,
    /// Term it was proposed in.
    pub term: u64,
}

/// Something the node finished since the last [`Node::take_completions`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completion {
    /// The proposal was applied here with this outcome.
    Applied(ProposalId, ApplyOutcome),
    /// Another entry took the proposal's place (leader change): not applied.
    Dropped(ProposalId),
    /// A snapshot covered the proposal; its outcome is unknown here.
    Unknown(ProposalId),
    /// A read barrier is satisfied: the state includes every write committed
    /// before the read was requested (`index` is the read index).
    Read {
        /// The context given to [`Node::read_index`].
        ctx: u64,
        /// The read index (the state's applied index is at least this).
        index: u64,
    },
}

/// Where a test can make [`Node::handle_ready_crashing`] stop, as if the
/// process died there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// After the leader's messages left, before anything was persisted.
    BeforePersist,
    /// After entries and hard state were persisted, before the messages that
    /// depended on them left.
    AfterPersistBeforeSend,
    /// After applying committed entries, before `advance`.
    AfterApplyBeforeAdvance,
}

/// A snapshot of the node's raft status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// Raft id.
    pub id: u64,
    /// Member name.
    pub name: String,
    /// Leader's id, if known.
    pub leader: Option<u64>,
    /// Current term.
    pub term: u64,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
    /// Voter ids.
    pub voters: Vec<u64>,
    /// Learner ids.
    pub learners: Vec<u64>,
    /// Matched index per peer (filled on the leader only).
    pub progress: BTreeMap<u64, u64>,
}

/// The deterministic core of one cluster member.
pub struct Node {
    pub(crate) raw: RawNode<LogStore>,
    pub(crate) state: State,
    pub(crate) config: NodeConfig,
    /// Proposals waiting to apply: index → term.
    pub(crate) pending: BTreeMap<u64, u64>,
    /// Read barriers granted by raft, waiting for apply: (ctx, read index).
    pub(crate) reads: VecDeque<(u64, u64)>,
    pub(crate) completions: Vec<Completion>,
    /// Term in which this node last proposed `Bootstrap`.
    pub(crate) bootstrap_term: u64,
    /// Proposer's clock for commands the node makes itself (set by the driver).
    pub(crate) now_ms: u64,
    /// Make a snapshot after this ready round even below the threshold: a
    /// member was added, and raft only sends a joining member a snapshot
    /// whose conf state includes it.
    pub(crate) snapshot_due: bool,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.config.name)
            .field("id", &self.raw.raft.id)
            .field("applied", &self.state.applied)
            .finish()
    }
}

fn raft_err(op: &'static str) -> impl FnOnce(raft::Error) -> ClusterError {
    move |source| ClusterError::Raft { op, source }
}

impl Node {
    /// Opens the node's data directory: recovers a previous run (hard state,
    /// log, last snapshot, then replays committed entries after it), or on a
    /// first start bootstraps from `initial_cluster` (or waits to join).
    pub fn open(config: NodeConfig) -> Result<Node, ClusterError> {
        let id = member_id(&config.name);
        let mut store = LogStore::open(&config.data_dir)?;
        if !store.is_initialized()
            && config
                .initial_cluster
                .iter()
                .any(|(n, _)| *n == config.name)
        {
            let mut voters: Vec<u64> = config
                .initial_cluster
                .iter()
                .map(|(n, _)| member_id(n))
                .collect();
            voters.sort_unstable();
            voters.dedup();
            if voters.len() != config.initial_cluster.len() {
                return Err(ClusterError::Config {
                    reason: "initial cluster names are not unique".to_owned(),
                });
            }
            store.bootstrap(voters)?;
        }
        let state = match store.last_snapshot().get_metadata().index {
            0 => State::default(),
            _ => State::from_snapshot_bytes(&store.last_snapshot().data).map_err(|source| {
                ClusterError::Codec {
                    op: "restore the state from the last snapshot",
                    source,
                }
            })?,
        };
        let raft_config = raft::Config {
            id,
            election_tick: config.election_tick,
            heartbeat_tick: config.heartbeat_tick,
            applied: state.applied,
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
            min_election_tick: if config.fixed_election_timeout {
                config.election_tick
            } else {
                0
            },
            max_election_tick: if config.fixed_election_timeout {
                config.election_tick + 1
            } else {
                0
            },
            check_quorum: true,
            pre_vote: true,
            ..Default::default()
        };
        raft_config
            .validate()
            .map_err(raft_err("validate its configuration"))?;
        let raw = RawNode::new(&raft_config, store, &crate::logging::raft_logger(id))
            .map_err(raft_err("start"))?;
        Ok(Node {
            raw,
            state,
            config,
            pending: BTreeMap::new(),
            reads: VecDeque::new(),
            completions: Vec::new(),
            bootstrap_term: 0,
            now_ms: 0,
            snapshot_due: false,
        })
    }

    /// This node's raft id.
    pub fn id(&self) -> u64 {
        self.raw.raft.id
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The applied state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Whether this node is the leader.
    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// Sets the time stamped on commands the node proposes itself (bootstrap).
    pub fn set_now_ms(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    /// Advances raft's logical clock by one tick.
    pub fn tick(&mut self) {
        self.raw.tick();
    }

    /// Steps an inbound raft message. Messages raft rejects (stale, from
    /// unknown peers, local types) are dropped with a trace, as raft expects.
    pub fn step(&mut self, msg: Message) {
        if let Err(e) = self.raw.step(msg) {
            tracing::trace!(node = %self.config.name, error = %e, "raft message dropped");
        }
    }

    /// The leader as far as this node knows, named from the replicated
    /// members (or the initial cluster before bootstrap).
    pub fn leader(&self) -> Option<LeaderInfo> {
        let id = self.raw.raft.leader_id;
        if id == raft::INVALID_ID {
            return None;
        }
        if let Some(m) = self.state.member_by_id(id) {
            return Some(LeaderInfo {
                id,
                name: m.name.clone(),
                address: m.address.clone(),
            });
        }
        let initial = self
            .config
            .initial_cluster
            .iter()
            .find(|(n, _)| member_id(n) == id);
        Some(match initial {
            Some((name, address)) => LeaderInfo {
                id,
                name: name.clone(),
                address: address.clone(),
            },
            None => LeaderInfo {
                id,
                name: String::new(),
                address: String::new(),
            },
        })
    }

    fn not_leader(&self) -> ClusterError {
        ClusterError::NotLeader {
            leader: self.leader(),
        }
    }

    fn last_proposal(&mut self) -> ProposalId {
        let id = ProposalId {
            index: self.raw.raft.raft_log.last_index(),
            term: self.raw.raft.term,
        };
        if let Some(term) = self.pending.insert(id.index, id.term) {
            // An earlier proposal at this index was truncated away (this node
            // lost leadership and won it back): it will never apply.
            self.completions.push(Completion::Dropped(ProposalId {
                index: id.index,
                term,
            }));
        }
        id
    }

    /// Proposes a command (leader only). Completes with
    /// [`Completion::Applied`] once applied here.
    pub fn propose(&mut self, command: &Command) -> Result<ProposalId, ClusterError> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        let data = serde_json::to_vec(command).map_err(|source| ClusterError::Codec {
            op: "encode the command",
            source,
        })?;
        let before = self.raw.raft.raft_log.last_index();
        self.raw.propose(Vec::new(), data).map_err(|e| match e {
            raft::Error::ProposalDropped => self.not_leader(),
            source => ClusterError::Raft {
                op: "propose",
                source,
            },
        })?;
        if self.raw.raft.raft_log.last_index() == before {
            return Err(self.not_leader());
        }
        Ok(self.last_proposal())
    }

    /// Proposes a member change (leader only): add a learner, promote a
    /// caught-up learner, or remove a member.
    pub fn propose_member_change(
        &mut self,
        change: MemberChange,
    ) -> Result<ProposalId, ClusterError> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        let id = member_id(&change.name);
        let change_type = self.check_member_change(&change, id)?;
        let context = serde_json::to_vec(&change).map_err(|source| ClusterError::Codec {
            op: "encode the member change",
            source,
        })?;
        // The member's name and address travel in the conf change's own context.
        let mut cc = ConfChange {
            node_id: id,
            context: context.into(),
            ..Default::default()
        };
        cc.set_change_type(change_type);
        let before = self.raw.raft.raft_log.last_index();
        self.raw
            .propose_conf_change(Vec::new(), cc)
            .map_err(raft_err("propose a member change"))?;
        if self.raw.raft.raft_log.last_index() == before {
            return Err(self.not_leader());
        }
        Ok(self.last_proposal())
    }

    fn check_member_change(
        &self,
        change: &MemberChange,
        id: u64,
    ) -> Result<ConfChangeType, ClusterError> {
        let conf = self.raw.raft.prs().conf();
        let is_voter = conf.voters().contains(id);
        let is_learner = conf.learners().contains(&id);
        let unknown = || ClusterError::UnknownMember {
            name: change.name.clone(),
        };
        match change.kind {
            MemberChangeKind::AddLearner if is_voter || is_learner => {
                Err(ClusterError::MemberExists {
                    name: change.name.clone(),
                })
            }
            MemberChangeKind::AddLearner => Ok(ConfChangeType::AddLearnerNode),
            MemberChangeKind::Promote if !is_learner => Err(unknown()),
            MemberChangeKind::Promote => {
                let matched = self.raw.raft.prs().get(id).map_or(0, |p| p.matched);
                let commit = self.raw.raft.raft_log.committed;
                if matched < commit {
                    return Err(ClusterError::NotCaughtUp {
                        name: change.name.clone(),
                        matched,
                        commit,
                    });
                }
                Ok(ConfChangeType::AddNode)
            }
            MemberChangeKind::Remove if !is_voter && !is_learner => Err(unknown()),
            // Removing the last voter would commit a configuration no node
            // can apply: refused before it reaches the log.
            MemberChangeKind::Remove if is_voter && conf.voters().ids().len() <= 1 => {
                Err(ClusterError::Config {
                    reason: format!(
                        "{} is the last voter; add another member before removing it",
                        change.name
                    ),
                })
            }
            MemberChangeKind::Remove => Ok(ConfChangeType::RemoveNode),
        }
    }

    /// Asks leadership to move to the member `name` (leader only).
    pub fn transfer_leader(&mut self, name: &str) -> Result<(), ClusterError> {
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        let id = member_id(name);
        if !self.raw.raft.prs().conf().voters().contains(id) {
            return Err(ClusterError::UnknownMember {
                name: name.to_owned(),
            });
        }
        self.raw.transfer_leader(id);
        Ok(())
    }

    /// Requests a ReadIndex barrier; completes with [`Completion::Read`] for
    /// `ctx` once this node applied up to the leader's commit index at the
    /// time of the request. Dropped silently if there is no leader.
    pub fn read_index(&mut self, ctx: u64) {
        self.raw.read_index(ctx.to_be_bytes().to_vec());
    }

    /// Tells raft a peer could not be reached (the transport failed to send).
    pub fn report_unreachable(&mut self, id: u64) {
        self.raw.report_unreachable(id);
    }

    /// Tells raft whether a snapshot reached a peer.
    pub fn report_snapshot(&mut self, id: u64, status: raft::SnapshotStatus) {
        self.raw.report_snapshot(id, status);
    }

    /// Takes what completed since the last call.
    pub fn take_completions(&mut self) -> Vec<Completion> {
        std::mem::take(&mut self.completions)
    }

    /// Raft status of this node.
    pub fn status(&self) -> Status {
        let raft = &self.raw.raft;
        let conf = raft.prs().conf();
        let mut voters: Vec<u64> = conf.voters().ids().iter().collect();
        voters.sort_unstable();
        let mut learners: Vec<u64> = conf.learners().iter().copied().collect();
        learners.sort_unstable();
        let progress = if self.is_leader() {
            raft.prs().iter().map(|(id, p)| (*id, p.matched)).collect()
        } else {
            BTreeMap::new()
        };
        Status {
            id: raft.id,
            name: self.config.name.clone(),
            leader: (raft.leader_id != raft::INVALID_ID).then_some(raft.leader_id),
            term: raft.term,
            commit: raft.raft_log.committed,
            applied: self.state.applied,
            voters,
            learners,
            progress,
        }
    }

    /// Decodes a conf change entry's payload.
    pub(crate) fn decode_conf_change(data: &[u8]) -> Result<ConfChange, ClusterError> {
        ConfChange::parse_from_bytes(data).map_err(|e| ClusterError::Raft {
            op: "decode a conf change entry",
            source: raft::Error::CodecError(e),
        })
    }
}

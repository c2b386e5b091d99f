//! The ready loop of [`Node`], in raft-rs's documented order, with the
//! persistence order written out:
//!
//! 1. send the leader's messages (`Ready::messages`): a leader may send
//!    appends before persisting its own entries;
//! 2. install a received snapshot (stored and synced, state restored);
//! 3. persist new entries and the hard state in one write, synced when raft
//!    says so (`must_sync`: entries, term or vote changed);
//! 4. send the persisted messages (votes, append responses): only now may a
//!    peer learn what this node promised;
//! 5. apply committed entries (the commit index was persisted in step 3);
//! 6. `advance`; persist the light ready's commit index, send its messages,
//!    apply its committed entries, `advance_apply`;
//! 7. make a snapshot and compact the log when enough entries were applied;
//!    a leader whose state is not bootstrapped yet proposes `Bootstrap`.

use protobuf::Message as _;
use raft::eraftpb::{ConfChangeType, Entry, EntryType, Message, Snapshot};
use raft::StateRole;

use crate::error::ClusterError;
use crate::node::{member_id, Completion, CrashPoint, Node, ProposalId};
use crate::state::{ApplyOutcome, Change, Command, Member, MemberChange, State};

impl Node {
    /// Runs one round of the ready loop and returns the messages to send, in
    /// order. An error means persistence failed: stop the node.
    pub fn handle_ready(&mut self) -> Result<Vec<Message>, ClusterError> {
        self.run_ready(None).map(|(msgs, _)| msgs)
    }

    /// As [`Node::handle_ready`], but stops at `crash` as if the process died
    /// there; returns the messages sent before that point and whether it
    /// stopped. The node must then be dropped and reopened from its directory.
    pub fn handle_ready_crashing(
        &mut self,
        crash: CrashPoint,
    ) -> Result<(Vec<Message>, bool), ClusterError> {
        self.run_ready(Some(crash))
    }

    fn run_ready(
        &mut self,
        crash: Option<CrashPoint>,
    ) -> Result<(Vec<Message>, bool), ClusterError> {
        let mut out = Vec::new();
        if !self.raw.has_ready() {
            self.after_ready()?;
            return Ok((out, false));
        }
        let mut ready = self.raw.ready();
        out.extend(ready.take_messages());
        if crash == Some(CrashPoint::BeforePersist) {
            return Ok((out, true));
        }
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            self.install_snapshot(&snapshot, ready.hs())?;
        }
        let sync = ready.must_sync();
        self.raw
            .mut_store()
            .append(ready.entries(), ready.hs(), sync)?;
        if crash == Some(CrashPoint::AfterPersistBeforeSend) {
            return Ok((out, true));
        }
        out.extend(ready.take_persisted_messages());
        for rs in ready.take_read_states() {
            let ctx = read_ctx(&rs.request_ctx);
            self.reads.push_back((ctx, rs.index));
        }
        self.apply_entries(ready.take_committed_entries())?;
        if crash == Some(CrashPoint::AfterApplyBeforeAdvance) {
            return Ok((out, true));
        }
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit)?;
        }
        out.extend(light.take_messages());
        self.apply_entries(light.take_committed_entries())?;
        self.raw.advance_apply();
        self.after_ready()?;
        Ok((out, false))
    }

    fn after_ready(&mut self) -> Result<(), ClusterError> {
        self.complete_reads();
        self.drop_replaced_proposals();
        self.maybe_snapshot()?;
        self.maybe_propose_bootstrap();
        Ok(())
    }

    fn install_snapshot(
        &mut self,
        snapshot: &Snapshot,
        hs: Option<&raft::eraftpb::HardState>,
    ) -> Result<(), ClusterError> {
        let meta_index = snapshot.get_metadata().index;
        let state =
            State::from_snapshot_bytes(&snapshot.data).map_err(|source| ClusterError::Codec {
                op: "decode a snapshot received from the leader",
                source,
            })?;
        if state.applied != meta_index {
            return Err(ClusterError::SnapshotMismatch {
                meta_index,
                state_index: state.applied,
            });
        }
        self.raw.mut_store().apply_snapshot(snapshot, hs)?;
        self.state = state;
        let covered: Vec<u64> = self.pending.range(..=meta_index).map(|(i, _)| *i).collect();
        for index in covered {
            if let Some(term) = self.pending.remove(&index) {
                self.completions
                    .push(Completion::Unknown(ProposalId { index, term }));
            }
        }
        Ok(())
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<(), ClusterError> {
        for entry in entries {
            let outcome = match entry.get_entry_type() {
                EntryType::EntryNormal if entry.data.is_empty() => {
                    self.state.apply_noop(entry.index);
                    None
                }
                EntryType::EntryNormal => self.apply_command(&entry),
                EntryType::EntryConfChange => self.apply_conf_change(&entry)?,
                EntryType::EntryConfChangeV2 => {
                    // Never proposed by this crate; applied as a no-op so indexes stay aligned.
                    self.state.apply_noop(entry.index);
                    None
                }
            };
            self.complete(entry.index, entry.term, outcome);
        }
        Ok(())
    }

    fn apply_command(&mut self, entry: &Entry) -> Option<ApplyOutcome> {
        match serde_json::from_slice::<Command>(&entry.data) {
            Ok(command) => self.state.apply(entry.index, &command),
            Err(e) => self.state.apply_malformed(entry.index, e.to_string()),
        }
    }

    fn apply_conf_change(&mut self, entry: &Entry) -> Result<Option<ApplyOutcome>, ClusterError> {
        if entry.index <= self.state.applied {
            return Ok(None);
        }
        let cc = Node::decode_conf_change(&entry.data)?;
        self.raw
            .apply_conf_change(&cc)
            .map_err(|source| ClusterError::Raft {
                op: "apply a committed member change",
                source,
            })?;
        match serde_json::from_slice::<MemberChange>(&cc.context) {
            Ok(change) if member_id(&change.name) == cc.node_id => {
                self.state
                    .apply_member_change(entry.index, cc.node_id, &change);
            }
            _ => {
                let detail = format!(
                    "conf change {:?} for {:#x} without a valid context",
                    cc.get_change_type(),
                    cc.node_id
                );
                return Ok(self.state.apply_malformed(entry.index, detail));
            }
        }
        if cc.get_change_type() != ConfChangeType::RemoveNode {
            self.snapshot_due = true;
        }
        if cc.get_change_type() == ConfChangeType::RemoveNode && cc.node_id == self.id() {
            tracing::warn!(node = %self.config.name, "this member was removed from the cluster");
        }
        Ok(Some(ApplyOutcome::Ok))
    }

    /// Completes the proposal waiting at `index`, if any.
    fn complete(&mut self, index: u64, term: u64, outcome: Option<ApplyOutcome>) {
        let Some(expected_term) = self.pending.remove(&index) else {
            return;
        };
        let id = ProposalId {
            index,
            term: expected_term,
        };
        self.completions.push(match outcome {
            Some(outcome) if term == expected_term => Completion::Applied(id, outcome),
            _ => Completion::Dropped(id),
        });
    }

    /// A proposal whose log position now holds an entry of another term, or
    /// lies past the end of the log (a new leader truncated it), never applies.
    fn drop_replaced_proposals(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let log = &self.raw.raft.raft_log;
        let last = log.last_index();
        let gone: Vec<(u64, u64)> = self
            .pending
            .iter()
            .filter(|(index, term)| **index > last || log.term(**index).is_ok_and(|t| t != **term))
            .map(|(i, t)| (*i, *t))
            .collect();
        for (index, term) in gone {
            self.pending.remove(&index);
            self.completions
                .push(Completion::Dropped(ProposalId { index, term }));
        }
    }

    fn complete_reads(&mut self) {
        while let Some(&(ctx, index)) = self.reads.front() {
            if index > self.state.applied {
                break;
            }
            self.reads.pop_front();
            self.completions.push(Completion::Read { ctx, index });
        }
    }

    fn maybe_snapshot(&mut self) -> Result<(), ClusterError> {
        let applied = self.state.applied;
        let last = self.raw.store().last_snapshot().get_metadata().index;
        let due = self.snapshot_due && applied > last;
        if !due && applied < last + self.config.snapshot_threshold.max(1) {
            return Ok(());
        }
        self.snapshot_due = false;
        let term = self
            .raw
            .raft
            .raft_log
            .term(applied)
            .map_err(|source| ClusterError::Raft {
                op: "read the term of the applied index",
                source,
            })?;
        let data = self
            .state
            .to_snapshot_bytes()
            .map_err(|source| ClusterError::Codec {
                op: "encode the state for a snapshot",
                source,
            })?;
        let mut snapshot = Snapshot {
            data: data.into(),
            ..Default::default()
        };
        let meta = snapshot.mut_metadata();
        meta.index = applied;
        meta.term = term;
        meta.set_conf_state(self.raw.raft.prs().conf().to_conf_state());
        self.raw.mut_store().save_snapshot(&snapshot)?;
        tracing::debug!(node = %self.config.name, index = applied, bytes = snapshot.compute_size(), "snapshot made, log compacted");
        Ok(())
    }

    /// A new leader whose applied state is current for its term and not yet
    /// bootstrapped proposes `Bootstrap` (once per term).
    fn maybe_propose_bootstrap(&mut self) {
        let raft = &self.raw.raft;
        if raft.state != StateRole::Leader
            || self.state.bootstrapped
            || self.config.initial_cluster.is_empty()
            || self.bootstrap_term == raft.term
            || raft.raft_log.term(self.state.applied).ok() != Some(raft.term)
        {
            return;
        }
        self.bootstrap_term = raft.term;
        let members = self
            .config
            .initial_cluster
            .iter()
            .map(|(name, address)| Member {
                name: name.clone(),
                id: member_id(name),
                address: address.clone(),
                voter: true,
            })
            .collect();
        let command = Command {
            identity: format!("member:{}", self.config.name),
            time_ms: self.now_ms,
            change: Change::Bootstrap {
                admins: self.config.admins.clone(),
                members,
            },
        };
        if let Err(e) = self.propose(&command) {
            tracing::debug!(node = %self.config.name, error = %e, "bootstrap proposal not accepted");
        }
    }
}

fn read_ctx(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let n = bytes.len().min(8);
    buf[..n].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(buf)
}

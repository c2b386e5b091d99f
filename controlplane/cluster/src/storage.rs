//! [`LogStore`]: the raft log, hard state and last snapshot, persisted with
//! raft-engine in one data directory, and the [`raft::Storage`] view of them.
//!
//! Invariants:
//! - Every write that a later message depends on is synced before the node
//!   sends that message (the node calls the write methods with `sync` as raft
//!   asks, and always syncs snapshots).
//! - After a snapshot at index `S` (received or created) no entry `<= S` is
//!   kept; a received snapshot also drops every entry after `S` (the leader
//!   re-sends them), so `first_index == S + 1` and `last_index >= S`.
//! - The conf state stored is the one of the last snapshot (or of the
//!   bootstrap); conf changes after it are replayed from the log on restart,
//!   together with the state machine.
//! - A failed write is returned as [`StoreError`]; the node stops on it.

use std::path::Path;

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState};
use raft_engine::{Command as EngineCommand, Engine, LogBatch, MessageExt};

/// The raft-engine group id holding this node's log (one raft group per process).
const GROUP: u64 = 1;
const KEY_HARD_STATE: &[u8] = b"hard_state";
const KEY_CONF_STATE: &[u8] = b"conf_state";
const KEY_SNAPSHOT: &[u8] = b"snapshot";

/// A persistence failure; the node must stop.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// raft-engine refused or failed an operation.
    #[error("raft log storage failed to {op} in {dir}: {source}")]
    Engine {
        /// What was being done.
        op: &'static str,
        /// The data directory.
        dir: String,
        /// The engine's error.
        #[source]
        source: raft_engine::Error,
    },
}

#[derive(Debug)]
struct EntryCodec;

impl MessageExt for EntryCodec {
    type Entry = Entry;

    fn index(e: &Entry) -> u64 {
        e.index
    }
}

/// The persisted raft state of one node.
pub struct LogStore {
    engine: Engine,
    dir: String,
    hard_state: HardState,
    conf_state: ConfState,
    snapshot: Snapshot,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("dir", &self.dir)
            .field("hard_state", &self.hard_state)
            .field("conf_state", &self.conf_state)
            .field("snapshot_index", &self.snapshot.get_metadata().index)
            .finish()
    }
}

impl LogStore {
    /// Opens (creating if needed) the store in `dir` and recovers its contents.
    pub fn open(dir: &Path) -> Result<LogStore, StoreError> {
        let dir = dir.display().to_string();
        let cfg = raft_engine::Config {
            dir: dir.clone(),
            ..Default::default()
        };
        let engine = Engine::open(cfg).map_err(|source| StoreError::Engine {
            op: "open",
            dir: dir.clone(),
            source,
        })?;
        let mut store = LogStore {
            engine,
            dir,
            hard_state: HardState::default(),
            conf_state: ConfState::default(),
            snapshot: Snapshot::default(),
        };
        store.hard_state = store.read_message(KEY_HARD_STATE)?.unwrap_or_default();
        store.conf_state = store.read_message(KEY_CONF_STATE)?.unwrap_or_default();
        store.snapshot = store.read_message(KEY_SNAPSHOT)?.unwrap_or_default();
        Ok(store)
    }

    fn read_message<M: protobuf::Message>(&self, key: &[u8]) -> Result<Option<M>, StoreError> {
        self.engine
            .get_message::<M>(GROUP, key)
            .map_err(|source| self.error("read state", source))
    }

    fn error(&self, op: &'static str, source: raft_engine::Error) -> StoreError {
        StoreError::Engine {
            op,
            dir: self.dir.clone(),
            source,
        }
    }

    /// Whether this store holds a raft state (a restart rather than a first start).
    pub fn is_initialized(&self) -> bool {
        self.conf_state != ConfState::default()
            || self.hard_state != HardState::default()
            || self.snapshot.get_metadata().index > 0
    }

    /// Writes the initial configuration of a new cluster: every initial member
    /// calls this with the same voters, so all start from the same conf state.
    pub fn bootstrap(&mut self, voters: Vec<u64>) -> Result<(), StoreError> {
        let cs = ConfState {
            voters,
            ..Default::default()
        };
        let mut batch = LogBatch::default();
        batch
            .put_message(GROUP, KEY_CONF_STATE.to_vec(), &cs)
            .map_err(|e| self.error("encode conf state", e))?;
        self.write(&mut batch, true, "write bootstrap conf state")?;
        self.conf_state = cs;
        Ok(())
    }

    fn write(&self, batch: &mut LogBatch, sync: bool, op: &'static str) -> Result<(), StoreError> {
        self.engine
            .write(batch, sync)
            .map(|_| ())
            .map_err(|source| self.error(op, source))
    }

    /// Appends `entries` (replacing any conflicting tail) and stores `hard_state`
    /// if given, in one write; synced when `sync`.
    pub fn append(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
        sync: bool,
    ) -> Result<(), StoreError> {
        let mut batch = LogBatch::default();
        batch
            .add_entries::<EntryCodec>(GROUP, entries)
            .map_err(|e| self.error("encode entries", e))?;
        if let Some(hs) = hard_state {
            batch
                .put_message(GROUP, KEY_HARD_STATE.to_vec(), hs)
                .map_err(|e| self.error("encode hard state", e))?;
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.write(&mut batch, sync, "append entries")?;
        if let Some(hs) = hard_state {
            self.hard_state = hs.clone();
        }
        Ok(())
    }

    /// Stores a new commit index (from a light ready); not synced: losing it
    /// is harmless, raft learns the commit index again from the leader.
    pub fn set_commit(&mut self, commit: u64) -> Result<(), StoreError> {
        let mut hs = self.hard_state.clone();
        hs.commit = commit;
        self.append(&[], Some(&hs), false)
    }

    /// Installs a snapshot received from the leader: stores it with its conf
    /// state (and `hard_state` if given) and drops every log entry. Synced.
    pub fn apply_snapshot(
        &mut self,
        snapshot: &Snapshot,
        hard_state: Option<&HardState>,
    ) -> Result<(), StoreError> {
        let meta = snapshot.get_metadata();
        let drop_to = self.engine.last_index(GROUP).unwrap_or(0).max(meta.index) + 1;
        let mut hs = hard_state
            .cloned()
            .unwrap_or_else(|| self.hard_state.clone());
        hs.commit = hs.commit.max(meta.index);
        hs.term = hs.term.max(meta.term);
        let mut batch = LogBatch::default();
        self.put_snapshot(&mut batch, snapshot)?;
        batch
            .put_message(GROUP, KEY_HARD_STATE.to_vec(), &hs)
            .map_err(|e| self.error("encode hard state", e))?;
        batch.add_command(GROUP, EngineCommand::Compact { index: drop_to });
        self.write(&mut batch, true, "install snapshot")?;
        self.hard_state = hs;
        self.conf_state = meta.get_conf_state().clone();
        self.snapshot = snapshot.clone();
        Ok(())
    }

    fn put_snapshot(&self, batch: &mut LogBatch, snapshot: &Snapshot) -> Result<(), StoreError> {
        batch
            .put_message(GROUP, KEY_SNAPSHOT.to_vec(), snapshot)
            .map_err(|e| self.error("encode snapshot", e))?;
        batch
            .put_message(
                GROUP,
                KEY_CONF_STATE.to_vec(),
                snapshot.get_metadata().get_conf_state(),
            )
            .map_err(|e| self.error("encode conf state", e))
    }

    /// Stores a snapshot made from this node's own applied state and compacts
    /// the log up to its index. Synced.
    pub fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let meta = snapshot.get_metadata();
        let mut batch = LogBatch::default();
        self.put_snapshot(&mut batch, snapshot)?;
        batch.add_command(
            GROUP,
            EngineCommand::Compact {
                index: meta.index + 1,
            },
        );
        self.write(&mut batch, true, "save snapshot")?;
        self.conf_state = meta.get_conf_state().clone();
        self.snapshot = snapshot.clone();
        // Reclaims files that only held compacted entries; failure only costs disk.
        if let Err(e) = self.engine.purge_expired_files() {
            tracing::warn!(dir = %self.dir, error = %e, "raft log purge failed");
        }
        Ok(())
    }

    /// The last snapshot stored (empty when none).
    pub fn last_snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The stored hard state.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    fn first(&self) -> u64 {
        match self.engine.first_index(GROUP) {
            Some(i) if i > self.snapshot_index() => i,
            _ => self.snapshot_index() + 1,
        }
    }

    fn last(&self) -> u64 {
        match self.engine.last_index(GROUP) {
            Some(i) if i > self.snapshot_index() => i,
            _ => self.snapshot_index(),
        }
    }

    fn raft_error(&self, op: &'static str, source: raft_engine::Error) -> raft::Error {
        raft::Error::Store(raft::StorageError::Other(Box::new(self.error(op, source))))
    }
}

impl raft::Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(raft::StorageError::Compacted));
        }
        if high > self.last() + 1 {
            return Err(raft::Error::Store(raft::StorageError::Unavailable));
        }
        let max = max_size
            .into()
            .map(|m| usize::try_from(m).unwrap_or(usize::MAX));
        let mut out = Vec::with_capacity(usize::try_from(high - low).unwrap_or(0));
        self.engine
            .fetch_entries_to::<EntryCodec>(GROUP, low, high, max, &mut out)
            .map_err(|e| self.raft_error("read entries", e))?;
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.snapshot_index() {
            return Ok(self.snapshot.get_metadata().term);
        }
        if idx < self.first() {
            return Err(raft::Error::Store(raft::StorageError::Compacted));
        }
        if idx > self.last() {
            return Err(raft::Error::Store(raft::StorageError::Unavailable));
        }
        match self.engine.get_entry::<EntryCodec>(GROUP, idx) {
            Ok(Some(e)) => Ok(e.term),
            Ok(None) => Err(raft::Error::Store(raft::StorageError::Unavailable)),
            Err(e) => Err(self.raft_error("read entry", e)),
        }
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        // Snapshots are made after applying (see `Node`), so the stored one is
        // the newest there is; raft falls back to it for any lagging peer.
        if self.snapshot_index() == 0 {
            return Err(raft::Error::Store(
                raft::StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}

/// Encodes a raft message for the wire (raft's protobuf codec).
pub fn encode_message(msg: &raft::eraftpb::Message) -> Result<Vec<u8>, protobuf::ProtobufError> {
    msg.write_to_bytes()
}

/// Decodes a raft message from the wire; callers cap the size first.
pub fn decode_message(bytes: &[u8]) -> Result<raft::eraftpb::Message, protobuf::ProtobufError> {
    raft::eraftpb::Message::parse_from_bytes(bytes)
}

#[cfg(test)]
mod tests;

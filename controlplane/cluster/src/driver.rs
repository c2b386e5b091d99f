//! The threaded driver: one [`Node`] on its own thread, ticked every
//! [`DriverConfig::tick`], commanded through a [`DriverHandle`] (any thread,
//! blocking with a timeout). The thread is the only owner of the node; the
//! only shared data is the published, read-only [`State`] ([`StateWatch`]).

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use raft::eraftpb::Message;
use raft::SnapshotStatus;

use crate::error::ClusterError;
use crate::node::{Completion, Node, NodeConfig, ProposalId, Status};
use crate::state::{ApplyOutcome, Command, MemberChange, MemberChangeKind, State};

/// Carries raft messages to peers. `send` must not block the node's thread:
/// queue and return (snapshot messages may be large). Report failures back
/// with [`DriverHandle::report_unreachable`] / [`DriverHandle::report_snapshot`].
pub trait Transport: Send + 'static {
    /// Queues `msgs` for delivery (each names its recipient in `to`).
    fn send(&self, msgs: Vec<Message>);
}

/// How to run one node.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// The node.
    pub node: NodeConfig,
    /// Raft tick interval (100 ms in production).
    pub tick: Duration,
    /// How long handle calls wait for a reply.
    pub request_timeout: Duration,
}

impl DriverConfig {
    /// 100 ms ticks, 5 s request timeout.
    pub fn new(node: NodeConfig) -> Self {
        DriverConfig {
            node,
            tick: Duration::from_millis(100),
            request_timeout: Duration::from_secs(5),
        }
    }
}

type Reply<T> = Sender<Result<T, ClusterError>>;

enum Request {
    Propose(Command, Reply<(u64, ApplyOutcome)>),
    Member(MemberChange, Reply<(u64, ApplyOutcome)>),
    Transfer(String, Reply<()>),
    ReadIndex(Reply<u64>),
    Step(Box<Message>),
    Status(Sender<Status>),
    Unreachable(u64),
    SnapshotReport(u64, SnapshotStatus),
    Stop,
}

struct Published {
    inner: Mutex<(u64, Arc<State>, Option<String>)>,
    changed: Condvar,
}

impl Published {
    fn lock(&self) -> MutexGuard<'_, (u64, Arc<State>, Option<String>)> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, state: Arc<State>) {
        let mut g = self.lock();
        g.0 += 1;
        g.1 = state;
        self.changed.notify_all();
    }

    fn stop(&self, reason: String) {
        let mut g = self.lock();
        g.0 += 1;
        g.2 = Some(reason);
        self.changed.notify_all();
    }
}

/// Read-only view of the applied state, replaced after each applied batch;
/// the appliance waits on it to react to new revisions and endpoint changes.
#[derive(Clone)]
pub struct StateWatch {
    published: Arc<Published>,
    seen: u64,
}

impl std::fmt::Debug for StateWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateWatch")
            .field("seen", &self.seen)
            .finish()
    }
}

impl StateWatch {
    /// The latest applied state.
    pub fn current(&self) -> Arc<State> {
        Arc::clone(&self.published.lock().1)
    }

    /// Waits until a state newer than the last one returned is published;
    /// `None` on timeout or when the node stopped.
    pub fn wait_changed(&mut self, timeout: Duration) -> Option<Arc<State>> {
        let deadline = Instant::now() + timeout;
        let mut g = self.published.lock();
        while g.0 == self.seen && g.2.is_none() {
            let left = deadline.checked_duration_since(Instant::now())?;
            g = self
                .published
                .changed
                .wait_timeout(g, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if g.2.is_some() {
            return None;
        }
        self.seen = g.0;
        Some(Arc::clone(&g.1))
    }
}

/// Starts drivers.
#[derive(Debug)]
pub struct Driver;

impl Driver {
    /// Opens the node on a new thread (recovering its data dir or
    /// bootstrapping) and starts its loop.
    pub fn spawn(
        config: DriverConfig,
        transport: impl Transport,
    ) -> Result<DriverHandle, ClusterError> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let published = Arc::new(Published {
            inner: Mutex::new((0, Arc::new(State::default()), None)),
            changed: Condvar::new(),
        });
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let thread_published = Arc::clone(&published);
        let name = config.node.name.clone();
        let timeout = config.request_timeout;
        let thread = std::thread::Builder::new()
            .name(format!("raft-{name}"))
            .spawn(move || {
                // The node is opened on its own thread: raft-engine's read cache is thread-local.
                match Node::open(config.node.clone()) {
                    Ok(node) => {
                        let _ = ready_tx.send(Ok(()));
                        Loop::new(node, config, transport, thread_published, rx).run();
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| ClusterError::Stopped {
                reason: format!("cannot start the raft thread: {e}"),
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(ClusterError::Stopped {
                    reason: "raft thread died while opening".to_owned(),
                })
            }
        }
        Ok(DriverHandle {
            tx,
            published,
            timeout,
            name,
            thread: Arc::new(Mutex::new(Some(thread))),
        })
    }
}

/// Commands one running node; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct DriverHandle {
    tx: Sender<Request>,
    published: Arc<Published>,
    timeout: Duration,
    name: String,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl std::fmt::Debug for DriverHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverHandle")
            .field("name", &self.name)
            .finish()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl DriverHandle {
    fn stopped(&self) -> ClusterError {
        let reason = self
            .published
            .lock()
            .2
            .clone()
            .unwrap_or_else(|| "the node was shut down".to_owned());
        ClusterError::Stopped { reason }
    }

    fn call<T>(
        &self,
        what: &'static str,
        make: impl FnOnce(Reply<T>) -> Request,
    ) -> Result<T, ClusterError> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.tx.send(make(reply)).map_err(|_| self.stopped())?;
        match rx.recv_timeout(self.timeout) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(ClusterError::Timeout {
                what,
                after_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
            }),
            Err(RecvTimeoutError::Disconnected) => Err(self.stopped()),
        }
    }

    /// Proposes `command` and waits until it is applied on this node (leader only).
    pub fn propose(&self, command: Command) -> Result<ApplyOutcome, ClusterError> {
        self.propose_at(command).map(|(_, outcome)| outcome)
    }

    /// As [`DriverHandle::propose`], also returning the log index the command applied at.
    pub fn propose_at(&self, command: Command) -> Result<(u64, ApplyOutcome), ClusterError> {
        self.call("propose", |r| Request::Propose(command, r))
    }

    /// ReadIndex barrier: returns once this node's state includes every write
    /// committed before the call; the value is the applied index reached.
    pub fn read_index(&self) -> Result<u64, ClusterError> {
        self.call("read index", Request::ReadIndex)
    }

    /// Hands an inbound raft message to the node (never blocks).
    pub fn step(&self, msg: Message) {
        let _ = self.tx.send(Request::Step(Box::new(msg)));
    }

    /// Raft status of the node.
    pub fn status(&self) -> Result<Status, ClusterError> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.tx
            .send(Request::Status(reply))
            .map_err(|_| self.stopped())?;
        rx.recv_timeout(self.timeout).map_err(|_| self.stopped())
    }

    fn member(
        &self,
        identity: &str,
        name: &str,
        address: &str,
        kind: MemberChangeKind,
    ) -> Result<ApplyOutcome, ClusterError> {
        self.change_member(identity, name, address, kind)
            .map(|(_, outcome)| outcome)
    }

    /// Proposes a member change (leader only) and waits until it applies here;
    /// returns the log index it applied at. `address` is only used by
    /// [`MemberChangeKind::AddLearner`]; `identity` is audited.
    pub fn change_member(
        &self,
        identity: &str,
        name: &str,
        address: &str,
        kind: MemberChangeKind,
    ) -> Result<(u64, ApplyOutcome), ClusterError> {
        let change = MemberChange {
            identity: identity.to_owned(),
            time_ms: now_ms(),
            name: name.to_owned(),
            address: address.to_owned(),
            kind,
        };
        self.call("member change", |r| Request::Member(change, r))
    }

    /// Adds member `name` at `address` as a learner (leader only); `identity` is audited.
    pub fn add_learner(
        &self,
        identity: &str,
        name: &str,
        address: &str,
    ) -> Result<ApplyOutcome, ClusterError> {
        self.member(identity, name, address, MemberChangeKind::AddLearner)
    }

    /// Promotes learner `name` to voter once it has caught up (leader only).
    pub fn promote(&self, identity: &str, name: &str) -> Result<ApplyOutcome, ClusterError> {
        self.member(identity, name, "", MemberChangeKind::Promote)
    }

    /// Removes member `name` (leader only).
    pub fn remove_member(&self, identity: &str, name: &str) -> Result<ApplyOutcome, ClusterError> {
        self.member(identity, name, "", MemberChangeKind::Remove)
    }

    /// Asks leadership to move to `name` (leader only); returns once asked.
    pub fn transfer_leader(&self, name: &str) -> Result<(), ClusterError> {
        let name = name.to_owned();
        self.call("transfer leader", |r| Request::Transfer(name, r))
    }

    /// The transport could not reach peer `id`.
    pub fn report_unreachable(&self, id: u64) {
        let _ = self.tx.send(Request::Unreachable(id));
    }

    /// The transport delivered (or failed to deliver) a snapshot to peer `id`.
    pub fn report_snapshot(&self, id: u64, status: SnapshotStatus) {
        let _ = self.tx.send(Request::SnapshotReport(id, status));
    }

    /// A watch on the applied state.
    pub fn watch(&self) -> StateWatch {
        StateWatch {
            published: Arc::clone(&self.published),
            seen: 0,
        }
    }

    /// Stops the node's thread and waits for it (idempotent).
    pub fn stop(&self) {
        let _ = self.tx.send(Request::Stop);
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

struct Loop<T> {
    node: Node,
    config: DriverConfig,
    transport: T,
    published: Arc<Published>,
    rx: Receiver<Request>,
    proposals: HashMap<ProposalId, (Instant, Reply<(u64, ApplyOutcome)>)>,
    reads: HashMap<u64, (Instant, Reply<u64>)>,
    next_read: u64,
    applied: u64,
}

impl<T: Transport> Loop<T> {
    fn new(
        node: Node,
        config: DriverConfig,
        transport: T,
        published: Arc<Published>,
        rx: Receiver<Request>,
    ) -> Self {
        let l = Loop {
            node,
            config,
            transport,
            published,
            rx,
            proposals: HashMap::new(),
            reads: HashMap::new(),
            next_read: 0,
            applied: u64::MAX,
        };
        l.published.publish(Arc::new(l.node.state().clone()));
        l
    }

    fn run(mut self) {
        let mut next_tick = Instant::now() + self.config.tick;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(req) => {
                    if !self.handle(req) {
                        return self.shutdown("the node was shut down".to_owned());
                    }
                    while let Ok(req) = self.rx.try_recv() {
                        if !self.handle(req) {
                            return self.shutdown("the node was shut down".to_owned());
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return self.shutdown("every handle was dropped".to_owned())
                }
            }
            if Instant::now() >= next_tick {
                self.node.tick();
                next_tick += self.config.tick;
                self.expire();
            }
            self.node.set_now_ms(now_ms());
            if let Err(e) = self.ready() {
                tracing::error!(node = %self.node.name(), error = %e, "raft node stopped");
                return self.shutdown(e.to_string());
            }
        }
    }

    /// Returns false on `Stop`.
    fn handle(&mut self, req: Request) -> bool {
        match req {
            Request::Propose(cmd, reply) => match self.node.propose(&cmd) {
                Ok(pid) => {
                    self.proposals.insert(pid, (Instant::now(), reply));
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Request::Member(change, reply) => match self.node.propose_member_change(change) {
                Ok(pid) => {
                    self.proposals.insert(pid, (Instant::now(), reply));
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Request::Transfer(name, reply) => {
                let _ = reply.send(self.node.transfer_leader(&name));
            }
            Request::ReadIndex(reply) => {
                if self.node.status().leader.is_none() {
                    let _ = reply.send(Err(ClusterError::NotLeader { leader: None }));
                } else {
                    self.next_read += 1;
                    self.node.read_index(self.next_read);
                    self.reads.insert(self.next_read, (Instant::now(), reply));
                }
            }
            Request::Step(msg) => self.node.step(*msg),
            Request::Status(reply) => {
                let _ = reply.send(self.node.status());
            }
            Request::Unreachable(id) => self.node.report_unreachable(id),
            Request::SnapshotReport(id, status) => self.node.report_snapshot(id, status),
            Request::Stop => return false,
        }
        true
    }

    fn ready(&mut self) -> Result<(), ClusterError> {
        let msgs = self.node.handle_ready()?;
        if !msgs.is_empty() {
            self.transport.send(msgs);
        }
        // Publish first: a caller that gets its reply then sees the state it implies.
        if self.node.state().applied != self.applied {
            self.applied = self.node.state().applied;
            self.published.publish(Arc::new(self.node.state().clone()));
        }
        for c in self.node.take_completions() {
            match c {
                Completion::Applied(pid, outcome) => self.reply(pid, Ok(outcome)),
                Completion::Dropped(pid) => self.reply(
                    pid,
                    Err(ClusterError::ProposalDropped {
                        index: pid.index,
                        term: pid.term,
                    }),
                ),
                Completion::Unknown(pid) => {
                    self.reply(pid, Err(ClusterError::OutcomeUnknown { index: pid.index }))
                }
                Completion::Read { ctx, .. } => {
                    if let Some((_, reply)) = self.reads.remove(&ctx) {
                        let _ = reply.send(Ok(self.node.state().applied));
                    }
                }
            }
        }
        Ok(())
    }

    fn reply(&mut self, pid: ProposalId, result: Result<ApplyOutcome, ClusterError>) {
        if let Some((_, reply)) = self.proposals.remove(&pid) {
            let _ = reply.send(result.map(|outcome| (pid.index, outcome)));
        }
    }

    /// Forgets requests whose caller has certainly given up.
    fn expire(&mut self) {
        let limit = self.config.request_timeout * 2;
        self.proposals.retain(|_, (at, _)| at.elapsed() < limit);
        self.reads.retain(|_, (at, _)| at.elapsed() < limit);
    }

    fn shutdown(mut self, reason: String) {
        for (_, (_, reply)) in self.proposals.drain() {
            let _ = reply.send(Err(ClusterError::Stopped {
                reason: reason.clone(),
            }));
        }
        for (_, (_, reply)) in self.reads.drain() {
            let _ = reply.send(Err(ClusterError::Stopped {
                reason: reason.clone(),
            }));
        }
        self.published.stop(reason);
    }
}

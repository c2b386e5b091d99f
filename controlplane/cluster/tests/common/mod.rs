//! A deterministic simulated cluster: nodes driven step by step with real
//! raft-engine storage in temp dirs, and a network that drops, delays,
//! duplicates, reorders and partitions messages, seeded by a `StdRng`.
#![allow(dead_code, reason = "each test binary uses part of the harness")]

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::thread::JoinHandle;

use bulkhead_cluster::{
    ApplyOutcome, AuditEntry, Change, Command, Completion, CrashPoint, Message, MessageType, Node,
    NodeConfig, ProposalId, SnapshotStatus, State, Status,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// How unreliable the network and the processes are (probabilities per event).
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    pub drop: f64,
    pub duplicate: f64,
    pub max_delay: u64,
    pub crash: f64,
    pub partition: f64,
}

impl Faults {
    pub const NONE: Faults = Faults {
        drop: 0.0,
        duplicate: 0.0,
        max_delay: 0,
        crash: 0.0,
        partition: 0.0,
    };
    pub const ROUGH: Faults = Faults {
        drop: 0.1,
        duplicate: 0.05,
        max_delay: 4,
        crash: 0.01,
        partition: 0.01,
    };
}

type Job = Box<dyn FnOnce(&mut Option<Node>) + Send>;

/// One thread per simulated node. raft-engine keeps a thread-local block
/// cache keyed by (file, offset): two engines used from one thread read each
/// other's blocks. The sim stays deterministic: the main thread waits for
/// every job.
pub struct Host {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Host {
    fn spawn() -> Host {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::spawn(move || {
            let mut slot: Option<Node> = None;
            while let Ok(job) = rx.recv() {
                job(&mut slot);
            }
        });
        Host {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Option<Node>) -> R + Send + 'static,
    ) -> R {
        let (rtx, rrx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |slot| {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(slot)));
            let _ = rtx.send(r);
        });
        let sent = self.tx.as_ref().map(|tx| tx.send(job));
        assert!(matches!(sent, Some(Ok(()))), "node thread is gone");
        match rrx.recv() {
            Ok(Ok(r)) => r,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => panic!("node thread died"),
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What one node did in one step.
struct Turn {
    out: Vec<Message>,
    completions: Vec<Completion>,
    crashed: bool,
    proposed: Option<ProposalId>,
    view: Option<View>,
}

/// The last seen status of a node (None when down).
#[derive(Clone, Debug)]
pub struct View {
    pub status: Status,
    pub leader: bool,
    pub state: State,
}

fn view(n: &Node) -> View {
    View {
        status: n.status(),
        leader: n.is_leader(),
        state: n.state().clone(),
    }
}

/// Work for one node in one step.
struct Plan {
    now: u64,
    tick: bool,
    inbound: Vec<Message>,
    reports: Vec<(u64, SnapshotStatus)>,
    propose: Option<Command>,
    crash: Option<CrashPoint>,
}

fn play(slot: &mut Option<Node>, plan: Plan) -> Turn {
    let Some(node) = slot.as_mut() else {
        return Turn {
            out: Vec::new(),
            completions: Vec::new(),
            crashed: false,
            proposed: None,
            view: None,
        };
    };
    node.set_now_ms(plan.now);
    for (to, status) in plan.reports {
        node.report_snapshot(to, status);
    }
    if plan.tick {
        node.tick();
    }
    for msg in plan.inbound {
        node.step(msg);
    }
    let proposed = plan.propose.and_then(|cmd| node.propose(&cmd).ok());
    let result = match plan.crash {
        Some(point) => node.handle_ready_crashing(point),
        None => node.handle_ready().map(|m| (m, false)),
    };
    let (out, crashed) = match result {
        Ok(r) => r,
        Err(e) => panic!("{}: ready failed: {e}", node.name()),
    };
    let completions = node.take_completions();
    let v = view(node);
    if crashed {
        *slot = None;
    }
    Turn {
        out,
        completions,
        crashed,
        proposed,
        view: Some(v),
    }
}

pub struct Sim {
    pub rng: StdRng,
    pub faults: Faults,
    dirs: Vec<tempfile::TempDir>,
    pub configs: Vec<NodeConfig>,
    pub hosts: Vec<Host>,
    pub views: Vec<Option<View>>,
    /// (deliver at step, message)
    inflight: Vec<(u64, Message)>,
    reports: Vec<Vec<(u64, SnapshotStatus)>>,
    /// Side of each node; messages between different sides are dropped.
    side: Vec<u8>,
    pub now: u64,
    next_client: u64,
    /// A command to propose on the leader at the next step (else one is made up).
    pub queued: Vec<Command>,
    /// Proposals waiting for an outcome: (node index, proposal) → command.
    waiting: BTreeMap<(usize, ProposalId), Command>,
    /// Commands whose outcome the leader reported after applying them.
    pub acked: Vec<(Command, ApplyOutcome)>,
    /// Snapshot messages delivered to each node.
    pub snapshots_received: Vec<u64>,
    /// Crashes injected in ready loops.
    pub crashes: u64,
}

fn tmp_root() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

pub fn name(i: usize) -> String {
    format!("gw-{}", i + 1)
}

impl Sim {
    /// `voters` initial members; `extra` more data dirs for members joining later.
    pub fn new(
        seed: u64,
        voters: usize,
        extra: usize,
        faults: Faults,
        snapshot_threshold: u64,
    ) -> Sim {
        let initial: Vec<(String, String)> = (0..voters)
            .map(|i| (name(i), format!("10.0.0.{}:7000", i + 1)))
            .collect();
        let n = voters + extra;
        let mut sim = Sim {
            rng: StdRng::seed_from_u64(seed),
            faults,
            dirs: Vec::new(),
            configs: Vec::new(),
            hosts: (0..n).map(|_| Host::spawn()).collect(),
            views: vec![None; n],
            inflight: Vec::new(),
            reports: vec![Vec::new(); n],
            side: vec![0; n],
            now: 0,
            next_client: 0,
            queued: Vec::new(),
            waiting: BTreeMap::new(),
            acked: Vec::new(),
            snapshots_received: vec![0; n],
            crashes: 0,
        };
        for i in 0..n {
            let dir = tempfile::Builder::new()
                .prefix("bulkhead-sim")
                .tempdir_in(tmp_root())
                .expect("temp dir");
            let cluster = if i < voters {
                initial.clone()
            } else {
                Vec::new()
            };
            let mut cfg = NodeConfig::new(&name(i), dir.path().to_path_buf(), cluster);
            cfg.admins = vec!["root".to_owned()];
            cfg.snapshot_threshold = snapshot_threshold;
            cfg.election_tick = 10;
            cfg.heartbeat_tick = 2;
            cfg.fixed_election_timeout = true;
            sim.dirs.push(dir);
            sim.configs.push(cfg);
            if i < voters {
                sim.start(i);
            }
        }
        sim
    }

    /// Opens node `i` from its data dir if it is down.
    pub fn start(&mut self, i: usize) {
        let cfg = self.configs[i].clone();
        self.views[i] = self.hosts[i].run(move |slot| {
            if slot.is_none() {
                match Node::open(cfg) {
                    Ok(n) => *slot = Some(n),
                    Err(e) => panic!("open: {e}"),
                }
            }
            slot.as_ref().map(view)
        });
    }

    /// Drops node `i` (a crash) and forgets its waiting proposals.
    pub fn crash(&mut self, i: usize) {
        self.hosts[i].run(|slot| *slot = None);
        self.views[i] = None;
        self.waiting.retain(|(n, _), _| *n != i);
    }

    /// Runs `f` on node `i` (which must be up).
    pub fn with<R: Send + 'static>(
        &self,
        i: usize,
        f: impl FnOnce(&mut Node) -> R + Send + 'static,
    ) -> R {
        self.hosts[i].run(move |slot| match slot.as_mut() {
            Some(n) => f(n),
            None => panic!("node is down"),
        })
    }

    fn index_of(&self, id: u64) -> Option<usize> {
        self.configs
            .iter()
            .position(|c| bulkhead_cluster::member_id(&c.name) == id)
    }

    /// The up node that believes it leads, with the highest term.
    pub fn leader(&self) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for (i, v) in self.views.iter().enumerate() {
            if let Some(v) = v.as_ref().filter(|v| v.leader) {
                if best.is_none_or(|(t, _)| v.status.term > t) {
                    best = Some((v.status.term, i));
                }
            }
        }
        best.map(|(_, i)| i)
    }

    fn plan(&mut self, i: usize, leader: Option<usize>, client_rate: f64) -> Plan {
        let now = self.now;
        let target = bulkhead_cluster::member_id(&self.configs[i].name);
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.inflight)
            .into_iter()
            .partition(|(at, m)| *at <= now && m.to == target);
        self.inflight = later;
        let mut inbound: Vec<Message> = due.into_iter().map(|(_, m)| m).collect();
        for k in (1..inbound.len()).rev() {
            let j = self.rng.random_range(0..=k);
            inbound.swap(k, j);
        }
        let mut propose = None;
        if leader == Some(i) && (!self.queued.is_empty() || self.rng.random_bool(client_rate)) {
            propose = Some(if self.queued.is_empty() {
                self.make_command()
            } else {
                self.queued.remove(0)
            });
        }
        let crash = if self.rng.random_bool(self.faults.crash) {
            Some(match self.rng.random_range(0..3) {
                0 => CrashPoint::BeforePersist,
                1 => CrashPoint::AfterPersistBeforeSend,
                _ => CrashPoint::AfterApplyBeforeAdvance,
            })
        } else {
            None
        };
        Plan {
            now,
            tick: self.rng.random_bool(0.5),
            inbound,
            reports: std::mem::take(&mut self.reports[i]),
            propose,
            crash,
        }
    }

    fn make_command(&mut self) -> Command {
        self.next_client += 1;
        let k = self.next_client;
        let change = if k % 4 == 0 {
            Change::Endpoints {
                add: vec![(
                    format!("10.1.{}.{}", k / 250, k % 250),
                    format!("seg-{}", k % 3),
                )],
                remove: vec![],
            }
        } else {
            Change::PutPolicy {
                document: format!("policy {k}"),
                comment: String::new(),
                expected_revision: None,
            }
        };
        Command {
            identity: format!("client-{k}"),
            time_ms: self.now,
            change,
        }
    }

    /// One step of the world: faults, then every node ticks (maybe), takes its
    /// due messages, maybe proposes, and runs its ready loop (maybe crashing).
    pub fn step(&mut self, client_rate: f64) {
        self.now += 1;
        let n = self.hosts.len();
        if self.rng.random_bool(self.faults.partition) {
            for i in 0..n {
                self.side[i] = self.rng.random_range(0..2);
            }
        }
        if self.side.iter().any(|s| *s != 0) && self.rng.random_bool(0.1) {
            self.side.iter_mut().for_each(|s| *s = 0);
        }
        for i in 0..n {
            if self.views[i].is_none()
                && !self.configs[i].initial_cluster.is_empty()
                && self.rng.random_bool(0.1)
            {
                self.start(i);
            }
        }
        let leader = self.leader();
        for i in 0..n {
            let plan = self.plan(i, leader, client_rate);
            let command = plan.propose.clone();
            // A queued command is taken back if the proposal is refused.
            let from_queue = command
                .as_ref()
                .is_some_and(|c| c.identity.starts_with("queued-"));
            let turn = self.hosts[i].run(move |slot| play(slot, plan));
            self.views[i] = if turn.crashed { None } else { turn.view };
            match (turn.proposed, command) {
                (Some(pid), Some(cmd)) => {
                    self.waiting.insert((i, pid), cmd);
                }
                (None, Some(cmd)) if from_queue => self.queued.insert(0, cmd),
                _ => {}
            }
            for msg in turn.out {
                self.send(i, msg);
            }
            self.complete(i, turn.completions);
            if turn.crashed {
                self.crashes += 1;
                self.waiting.retain(|(k, _), _| *k != i);
            }
        }
        self.check_prefix();
    }

    fn complete(&mut self, i: usize, completions: Vec<Completion>) {
        for c in completions {
            match c {
                Completion::Applied(pid, outcome) => {
                    if let Some(cmd) = self.waiting.remove(&(i, pid)) {
                        self.acked.push((cmd, outcome));
                    }
                }
                Completion::Dropped(pid) | Completion::Unknown(pid) => {
                    self.waiting.remove(&(i, pid));
                }
                Completion::Read { .. } => {}
            }
        }
    }

    fn send(&mut self, from: usize, msg: Message) {
        let f = self.faults;
        let copies = if self.rng.random_bool(f.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let dropped = self.rng.random_bool(f.drop);
            let to = self.index_of(msg.to);
            let cut = to.is_none_or(|t| self.side[t] != self.side[from]);
            let snap = msg.get_msg_type() == MessageType::MsgSnapshot;
            if dropped || cut {
                if snap {
                    self.reports[from].push((msg.to, SnapshotStatus::Failure));
                }
                continue;
            }
            if snap {
                self.reports[from].push((msg.to, SnapshotStatus::Finish));
                if let Some(t) = to {
                    self.snapshots_received[t] += 1;
                }
            }
            let delay = if f.max_delay > 0 {
                self.rng.random_range(0..=f.max_delay)
            } else {
                0
            };
            self.inflight.push((self.now + delay, msg.clone()));
        }
    }

    /// Every node's applied history is a prefix of every other's.
    pub fn check_prefix(&self) {
        let audits: Vec<(usize, &[AuditEntry])> = self
            .views
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.as_ref().map(|v| (i, v.state.audit.as_slice())))
            .collect();
        for (i, a) in &audits {
            for (j, b) in &audits {
                let k = a.len().min(b.len());
                assert!(
                    a[..k] == b[..k],
                    "applied histories of {} and {} diverge",
                    name(*i),
                    name(*j)
                );
            }
        }
    }

    /// Removes every fault, starts every member, and runs until all members
    /// applied the leader's commit index. Panics if it does not converge.
    pub fn heal_and_converge(&mut self, members: &[usize]) {
        self.faults = Faults::NONE;
        self.side.iter_mut().for_each(|s| *s = 0);
        for &i in members {
            self.start(i);
        }
        self.converge(members);
    }

    /// As [`Sim::heal_and_converge`], keeping node `down` down (a removed member).
    pub fn heal_and_converge_without(&mut self, members: &[usize], down: usize) {
        self.configs[down].initial_cluster.clear();
        self.heal_and_converge(members);
    }

    fn converge(&mut self, members: &[usize]) {
        for _ in 0..3000 {
            self.step(0.0);
            if self.queued.is_empty() && self.waiting.is_empty() && self.converged(members) {
                return;
            }
        }
        let status: Vec<String> = members
            .iter()
            .filter_map(|&i| self.views[i].as_ref())
            .map(|v| {
                let s = &v.status;
                format!(
                    "{} leader={:?} term={} commit={} applied={} bootstrapped={}",
                    s.name,
                    s.leader.map(|l| l % 1000),
                    s.term,
                    s.commit,
                    s.applied,
                    v.state.bootstrapped
                )
            })
            .collect();
        let waiting: Vec<_> = self
            .waiting
            .iter()
            .map(|((i, pid), c)| (name(*i), *pid, c.identity.clone()))
            .collect();
        panic!("cluster did not converge: {status:#?}\nwaiting for outcomes of {waiting:?}\nqueued: {}", self.queued.len());
    }

    /// Steps without new client commands until `f` holds; panics after `max` steps.
    pub fn run_until(&mut self, what: &str, max: u32, mut f: impl FnMut(&Sim) -> bool) {
        for _ in 0..max {
            if f(self) {
                return;
            }
            self.step(0.0);
        }
        panic!("gave up waiting for {what}");
    }

    pub fn converged(&self, members: &[usize]) -> bool {
        let Some(l) = self.leader() else { return false };
        let Some(leader) = self.views[l].as_ref() else {
            return false;
        };
        let commit = leader.status.commit;
        leader.state.bootstrapped
            && members.iter().all(|&i| {
                self.views[i]
                    .as_ref()
                    .is_some_and(|v| v.state.applied == commit)
            })
    }

    pub fn view(&self, i: usize) -> &View {
        match self.views[i].as_ref() {
            Some(v) => v,
            None => panic!("{} is down", name(i)),
        }
    }

    /// After convergence: identical states, every acknowledged command present
    /// once with the outcome the leader reported.
    pub fn check_final(&self, members: &[usize]) {
        let first = &self.view(members[0]).state;
        for &i in members {
            let s = &self.view(i).state;
            assert_eq!(
                s.audit,
                first.audit,
                "{} audit differs from {}",
                name(i),
                name(members[0])
            );
            assert_eq!(s.revisions, first.revisions, "{} revisions differ", name(i));
            assert_eq!(s.endpoints, first.endpoints, "{} endpoints differ", name(i));
            assert_eq!(s.members, first.members, "{} members differ", name(i));
        }
        for (cmd, outcome) in &self.acked {
            let found = first
                .audit
                .iter()
                .filter(|a| a.identity == cmd.identity)
                .count();
            assert_eq!(
                found, 1,
                "acknowledged command of {} applied {found} times",
                cmd.identity
            );
            if let (Change::PutPolicy { document, .. }, ApplyOutcome::Revision(n)) =
                (&cmd.change, outcome)
            {
                let rev = first.revision(*n).map(|r| (&r.document, &r.digest));
                assert_eq!(
                    rev,
                    Some((document, &bulkhead_cluster::digest(document))),
                    "revision {n} of {}",
                    cmd.identity
                );
            }
        }
    }
}

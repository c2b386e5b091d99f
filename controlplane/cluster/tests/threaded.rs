//! Three drivers on their own threads, connected by an in-process channel
//! transport. Waits poll a condition with a generous deadline; nothing asserts
//! on time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulkhead_cluster::{
    member_id, ApplyOutcome, Change, ClusterError, Command, Driver, DriverConfig, DriverHandle,
    Message, NodeConfig, Transport,
};

type Routes = Arc<Mutex<HashMap<u64, DriverHandle>>>;

struct ChannelTransport(Routes);

impl Transport for ChannelTransport {
    fn send(&self, msgs: Vec<Message>) {
        let routes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for msg in msgs {
            if let Some(h) = routes.get(&msg.to) {
                h.step(msg);
            }
        }
    }
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

struct Cluster {
    dirs: Vec<tempfile::TempDir>,
    routes: Routes,
    handles: Vec<Option<DriverHandle>>,
}

fn name(i: usize) -> String {
    format!("gw-{}", i + 1)
}

impl Cluster {
    fn new(n: usize) -> Cluster {
        let mut c = Cluster {
            dirs: Vec::new(),
            routes: Arc::default(),
            handles: Vec::new(),
        };
        for _ in 0..n {
            c.dirs.push(tempfile::tempdir().expect("temp dir"));
            c.handles.push(None);
        }
        for i in 0..n {
            c.start(i);
        }
        c
    }

    fn start(&mut self, i: usize) {
        let initial = (0..self.dirs.len())
            .map(|k| (name(k), format!("127.0.0.1:{}", 7000 + k)))
            .collect();
        let mut node = NodeConfig::new(&name(i), self.dirs[i].path().to_path_buf(), initial);
        node.admins = vec!["root".to_owned()];
        node.snapshot_threshold = 4;
        let mut cfg = DriverConfig::new(node);
        cfg.tick = Duration::from_millis(10);
        cfg.request_timeout = Duration::from_secs(10);
        let handle = match Driver::spawn(cfg, ChannelTransport(Arc::clone(&self.routes))) {
            Ok(h) => h,
            Err(e) => panic!("start {}: {e}", name(i)),
        };
        self.routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(member_id(&name(i)), handle.clone());
        self.handles[i] = Some(handle);
    }

    fn stop(&mut self, i: usize) {
        self.routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&member_id(&name(i)));
        if let Some(h) = self.handles[i].take() {
            h.stop();
        }
    }

    fn handle(&self, i: usize) -> &DriverHandle {
        self.handles[i].as_ref().expect("node is up")
    }

    /// The index of the node every live node agrees leads, once its state is bootstrapped.
    fn leader(&self) -> Option<usize> {
        let mut leader = None;
        for h in self.handles.iter().flatten() {
            let id = h.status().ok()?.leader?;
            if leader.is_some_and(|l| l != id) {
                return None;
            }
            leader = Some(id);
        }
        let i = (0..self.handles.len()).find(|&i| Some(member_id(&name(i))) == leader)?;
        self.handles[i]
            .as_ref()?
            .watch()
            .current()
            .bootstrapped
            .then_some(i)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.handles.len() {
            self.stop(i);
        }
    }
}

fn put(k: u32) -> Command {
    Command {
        identity: "root".to_owned(),
        time_ms: 1,
        change: Change::PutPolicy {
            document: format!("policy {k}"),
            comment: String::new(),
            expected_revision: None,
        },
    }
}

#[test]
fn three_drivers_elect_replicate_forward_and_recover() {
    let mut c = Cluster::new(3);
    let mut leader = None;
    wait_until("a bootstrapped leader", || {
        leader = c.leader();
        leader.is_some()
    });
    let l = leader.unwrap_or_default();
    let f = (l + 1) % 3;

    assert_eq!(
        c.handle(l).propose(put(1)).ok(),
        Some(ApplyOutcome::Revision(1))
    );

    match c.handle(f).propose(put(99)) {
        Err(ClusterError::NotLeader { leader: Some(info) }) => {
            assert_eq!(
                (info.name.as_str(), info.id),
                (name(l).as_str(), member_id(&name(l)))
            );
            assert_eq!(info.address, format!("127.0.0.1:{}", 7000 + l));
        }
        other => panic!("propose on a follower: {other:?}"),
    }

    // ReadIndex on a follower sees the committed write.
    let written = c.handle(l).status().map(|s| s.applied).unwrap_or(u64::MAX);
    let read = c.handle(f).read_index().unwrap_or(0);
    assert!(
        read >= written,
        "read index {read} is before the write at {written}"
    );
    assert_eq!(c.handle(f).watch().current().revisions.len(), 1);

    // A stopped follower misses writes (enough for a snapshot), restarts from
    // its data dir and catches up.
    c.stop(f);
    for k in 2..=10 {
        assert_eq!(
            c.handle(l).propose(put(k)).ok(),
            Some(ApplyOutcome::Revision(u64::from(k)))
        );
    }
    c.start(f);
    let mut watch = c.handle(f).watch();
    wait_until("the restarted follower to catch up", || {
        watch.wait_changed(Duration::from_millis(100));
        watch.current().revisions.len() == 10
    });
    let leader_state = c.handle(l).watch().current();
    let follower_state = watch.current();
    assert_eq!(follower_state.revisions, leader_state.revisions);
    assert_eq!(follower_state.audit.len(), leader_state.audit.len());
}

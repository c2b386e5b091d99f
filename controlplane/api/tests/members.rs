//! Three (then four) `Member`s in one process over real gRPC on loopback,
//! real mutual TLS and real raft-engine storage in temporary directories;
//! the clients are tonic clients with certificates of the same lab PKI.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulkhead_api::{Dataplane, Member, MemberConfig};
use bulkhead_proto::v1::{
    self, access_service_client::AccessServiceClient, cluster_service_client::ClusterServiceClient,
    endpoint_service_client::EndpointServiceClient, policy_service_client::PolicyServiceClient,
};
use tonic::transport::Channel;
use tonic::Code;

const THREE_TIER: &str = include_str!("../../../configs/policies/three-tier.yaml");
const ENFORCED: u64 = 7;

/// The dataplane seam: reports a fixed enforced revision, no traffic.
struct FixedDataplane {
    flows: tokio::sync::broadcast::Sender<v1::FlowEvent>,
}

impl Dataplane for FixedDataplane {
    fn enforced_revision(&self) -> u64 {
        ENFORCED
    }
    fn counters(&self) -> v1::CountersResponse {
        v1::CountersResponse {
            enforced_revision: ENFORCED,
            ..Default::default()
        }
    }
    fn connections(
        &self,
        _: &v1::ConnectionsRequest,
    ) -> Result<v1::ConnectionsResponse, tonic::Status> {
        Ok(v1::ConnectionsResponse::default())
    }
    fn flush(&self, _: &v1::FlowFilter) -> Result<u64, tonic::Status> {
        Ok(0)
    }
    fn flows(&self) -> tokio::sync::broadcast::Receiver<v1::FlowEvent> {
        self.flows.subscribe()
    }
}

fn dataplane() -> Arc<dyn Dataplane> {
    Arc::new(FixedDataplane {
        flows: tokio::sync::broadcast::channel(16).0,
    })
}

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

struct Lab {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    pki: PathBuf,
    rt: tokio::runtime::Runtime,
    initial: Vec<(String, SocketAddr)>,
}

impl Lab {
    fn new(names: &[&str]) -> Lab {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().to_owned();
        let pki = root.join("pki");
        bulkhead_pki::init(&pki).expect("pki init");
        for n in ["m1", "m2", "m3", "m4"] {
            bulkhead_pki::issue(&pki, n, &["127.0.0.1".into()]).expect("issue member");
        }
        bulkhead_pki::issue(&pki, "viewer", &[]).expect("issue viewer");
        let initial = names.iter().map(|n| (n.to_string(), free_port())).collect();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("client runtime");
        Lab {
            _tmp: tmp,
            root,
            pki,
            rt,
            initial,
        }
    }

    fn config(&self, name: &str, addr: SocketAddr, initial: bool) -> MemberConfig {
        MemberConfig {
            name: name.to_owned(),
            data_dir: self.root.join(format!("data-{name}")),
            listen: addr,
            advertise: addr,
            pki: self.pki.clone(),
            initial_cluster: if initial {
                self.initial.clone()
            } else {
                Vec::new()
            },
            join: (!initial).then(|| self.initial[0].1),
            admins: vec!["admin".to_owned()],
        }
    }

    fn start(&self, i: usize) -> Member {
        let (name, addr) = self.initial[i].clone();
        Member::start(self.config(&name, addr, true), dataplane()).expect("member starts")
    }

    fn addr(&self, i: usize) -> SocketAddr {
        self.initial[i].1
    }

    fn channel(&self, addr: SocketAddr, identity: &str) -> Channel {
        let tls = bulkhead_pki::client_tls(&self.pki, identity, "127.0.0.1").expect("client tls");
        let _in_runtime = self.rt.enter();
        Channel::from_shared(format!("https://{addr}"))
            .expect("url")
            .tls_config(tls)
            .expect("tls")
            .connect_lazy()
    }

    fn policy(&self, addr: SocketAddr, identity: &str) -> PolicyServiceClient<Channel> {
        PolicyServiceClient::new(self.channel(addr, identity))
    }

    fn cluster(&self, addr: SocketAddr) -> ClusterServiceClient<Channel> {
        ClusterServiceClient::new(self.channel(addr, "admin"))
    }

    fn access(&self, addr: SocketAddr, identity: &str) -> AccessServiceClient<Channel> {
        AccessServiceClient::new(self.channel(addr, identity))
    }

    fn endpoints(&self, addr: SocketAddr) -> EndpointServiceClient<Channel> {
        EndpointServiceClient::new(self.channel(addr, "admin"))
    }

    /// Retries `f` (every 100 ms, up to 30 s) until it returns `Some`.
    fn until<T>(&self, what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(v) = self.rt.block_on(f()) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn status(&self, addr: SocketAddr) -> v1::ClusterStatus {
        let mut c = self.cluster(addr);
        self.until("cluster status", async || {
            c.status(v1::ClusterStatusRequest {})
                .await
                .ok()
                .map(|r| r.into_inner())
        })
    }

    fn apply(
        &self,
        addr: SocketAddr,
        identity: &str,
        document: &str,
        if_revision: Option<u64>,
    ) -> Result<v1::ApplyResponse, tonic::Status> {
        let mut c = self.policy(addr, identity);
        self.rt
            .block_on(c.apply(v1::ApplyRequest {
                document: document.to_owned(),
                comment: "test".into(),
                if_revision,
                ..Default::default()
            }))
            .map(|r| r.into_inner())
    }

    fn get(&self, addr: SocketAddr, revision: Option<u64>) -> Option<v1::PolicyRevision> {
        let mut c = self.policy(addr, "admin");
        self.rt
            .block_on(c.get(v1::GetPolicyRequest { revision }))
            .ok()
            .map(|r| r.into_inner())
    }

    fn wait_audit(&self, addr: SocketAddr, what: &str, f: impl Fn(&v1::AuditEntry) -> bool) {
        self.until(what, async || {
            let mut c = self.access(addr, "admin");
            let entries = c.audit(v1::AuditRequest::default()).await.ok()?;
            entries.into_inner().entries.iter().any(&f).then_some(())
        });
    }
}

fn code<T: std::fmt::Debug>(r: Result<T, tonic::Status>) -> (Code, String) {
    let st = r.expect_err("refused");
    (st.code(), st.message().to_owned())
}

fn index_of(lab: &Lab, name: &str) -> usize {
    lab.initial
        .iter()
        .position(|(n, _)| n == name)
        .expect("known member")
}

fn data_dir_exists(dir: &Path) -> bool {
    dir.read_dir().is_ok_and(|mut d| d.next().is_some())
}

#[test]
fn three_members_replicate_forward_audit_recover_and_grow() {
    let lab = Lab::new(&["m1", "m2", "m3"]);
    let mut members: Vec<Option<Member>> = (0..3).map(|i| Some(lab.start(i))).collect();

    // A leader, three reachable members, each reporting its dataplane's revision.
    let status = lab.until("a leader and three reachable members", async || {
        let mut c = lab.cluster(lab.addr(0));
        let s = c
            .status(v1::ClusterStatusRequest {})
            .await
            .ok()?
            .into_inner();
        (!s.leader.is_empty() && s.members.len() == 3 && s.members.iter().all(|m| m.reachable))
            .then_some(s)
    });
    assert!(status
        .members
        .iter()
        .all(|m| m.voter && m.enforced_revision == ENFORCED));
    let leader = index_of(&lab, &status.leader);
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;

    // Apply on a follower: forwarded to the leader, same revision everywhere.
    let applied = lab
        .apply(lab.addr(follower), "admin", THREE_TIER, None)
        .expect("apply on a follower");
    assert_eq!(applied.revision, 1);
    for i in 0..3 {
        let got = lab.get(lab.addr(i), None).expect("get");
        assert_eq!(
            (got.revision, got.digest.as_str()),
            (1, applied.digest.as_str())
        );
        assert_eq!(got.identity, "admin");
        assert_eq!(got.document, THREE_TIER);
    }

    // Stale if_revision.
    let (c, m) = code(lab.apply(lab.addr(other), "admin", THREE_TIER, Some(0)));
    assert_eq!(c, Code::FailedPrecondition, "{m}");
    assert!(m.contains("revision changed: now 1, you expected 0"), "{m}");

    // Invalid document and failing test: INVALID_ARGUMENT, audited, revision unchanged.
    let (c, m) = code(lab.apply(
        lab.addr(follower),
        "admin",
        "version: 1\nsegments: [\n",
        None,
    ));
    assert_eq!(c, Code::InvalidArgument, "{m}");
    assert!(m.contains("policy:"), "diagnostics name the document: {m}");
    let failing = THREE_TIER.replace(
        "service: tcp/5432, expect: deny }",
        "service: tcp/5432, expect: allow }",
    );
    assert_ne!(failing, THREE_TIER);
    let (c, m) = code(lab.apply(lab.addr(follower), "admin", &failing, None));
    assert_eq!(c, Code::InvalidArgument, "{m}");
    assert!(m.contains("failed: web -> db"), "{m}");
    lab.wait_audit(lab.addr(other), "the failing test in the audit log", |e| {
        e.identity == "admin"
            && e.outcome == v1::AuditOutcome::Failed as i32
            && e.detail.contains("failed: web -> db")
    });
    assert_eq!(lab.get(lab.addr(other), None).expect("get").revision, 1);

    // Viewer: granted on one member, effective on another; apply refused and audited.
    let mut access = lab.access(lab.addr(leader), "admin");
    lab.rt
        .block_on(access.grant(v1::GrantRequest {
            identity: "viewer".into(),
            role: v1::Role::Viewer as i32,
        }))
        .expect("grant");
    lab.until("the viewer can read on a follower", async || {
        let mut c = lab.policy(lab.addr(follower), "viewer");
        c.get(v1::GetPolicyRequest::default())
            .await
            .ok()
            .map(|_| ())
    });
    let (c, m) = code(lab.apply(lab.addr(follower), "viewer", THREE_TIER, None));
    assert_eq!(c, Code::PermissionDenied, "{m}");
    lab.wait_audit(
        lab.addr(leader),
        "the viewer's refusal in the audit log",
        |e| {
            e.identity == "viewer"
                && e.action == "PolicyService/Apply"
                && e.outcome == v1::AuditOutcome::Refused as i32
        },
    );
    let mut access_other = lab.access(lab.addr(other), "admin");
    lab.rt
        .block_on(access_other.revoke(v1::RevokeRequest {
            identity: "viewer".into(),
        }))
        .expect("revoke");
    lab.until("the revocation reaches the follower", async || {
        let mut c = lab.policy(lab.addr(follower), "viewer");
        match c.get(v1::GetPolicyRequest::default()).await {
            Err(st) if st.code() == Code::PermissionDenied => Some(()),
            _ => None,
        }
    });

    // Endpoints.
    let mut ep = lab.endpoints(lab.addr(follower));
    let add = |address: &str, segment: &str| v1::AddEndpointsRequest {
        endpoints: vec![v1::Endpoint {
            address: address.into(),
            segment: segment.into(),
        }],
    };
    let added = lab
        .rt
        .block_on(ep.add(add("10.9.1.1", "app")))
        .expect("add endpoint")
        .into_inner();
    assert_eq!(added.changed, 1);
    let (c, m) = code(lab.rt.block_on(ep.add(add("10.9.1.2", "world"))));
    assert_eq!(c, Code::InvalidArgument);
    assert!(
        m.contains("10.9.1.2 in world") && m.contains("world"),
        "{m}"
    );
    let (c, m) = code(lab.rt.block_on(ep.add(add("not-an-ip", "app"))));
    assert_eq!(c, Code::InvalidArgument);
    assert!(m.contains("not-an-ip"), "{m}");
    let (c, m) = code(lab.rt.block_on(ep.add(add("10.9.1.3", "nosuch"))));
    assert_eq!(c, Code::InvalidArgument);
    assert!(m.contains("nosuch"), "{m}");
    let listed = lab.until("the endpoint on another member", async || {
        let mut c = lab.endpoints(lab.addr(other));
        let l = c
            .list(v1::ListEndpointsRequest::default())
            .await
            .ok()?
            .into_inner();
        (!l.endpoints.is_empty()).then_some(l)
    });
    assert_eq!(listed.endpoints.len(), 1);
    assert_eq!(listed.endpoints[0].segment, "app");
    let removed = lab
        .rt
        .block_on(ep.remove(v1::RemoveEndpointsRequest {
            addresses: vec!["10.9.1.1".into(), "10.9.9.9".into()],
        }))
        .expect("remove")
        .into_inner();
    assert_eq!((removed.removed, removed.unknown), (1, 1));

    // A second revision, diff, check, rollback.
    let v2 = format!("{THREE_TIER}\n# second revision\n");
    let r2 = lab
        .apply(lab.addr(other), "admin", &v2, Some(1))
        .expect("apply v2");
    assert_eq!(r2.revision, 2);
    let mut pol = lab.policy(lab.addr(follower), "admin");
    let diff = lab
        .rt
        .block_on(pol.diff(v1::DiffRequest {
            from: 1,
            to: Some(2),
        }))
        .expect("diff")
        .into_inner();
    assert!(
        diff.verdict_changes.is_empty() && diff.objects.is_empty(),
        "{diff:?}"
    );
    let check = lab
        .rt
        .block_on(pol.check(v1::CheckRequest {
            from: "10.0.20.3".into(),
            to: "db".into(),
            service: "tcp/5432".into(),
            ..Default::default()
        }))
        .expect("check")
        .into_inner();
    assert_eq!(
        (check.verdict.as_str(), check.rule.as_str()),
        ("allow", "app-to-db")
    );
    assert_eq!(check.revision, 2);
    let rolled = lab
        .rt
        .block_on(pol.rollback(v1::RollbackRequest {
            to: 1,
            comment: "back".into(),
            ..Default::default()
        }))
        .expect("rollback")
        .into_inner();
    assert_eq!(rolled.revision, 3);
    assert_eq!(rolled.digest, applied.digest);
    let got = lab.get(lab.addr(leader), Some(3)).expect("get 3");
    assert_eq!(got.rollback_of, Some(1));
    let (c, m) = code(
        lab.rt
            .block_on(pol.get(v1::GetPolicyRequest { revision: Some(9) })),
    );
    assert_eq!(c, Code::NotFound);
    assert_eq!(m, "no revision 9; latest is 3");

    // One member down: writes still succeed; restarted from its data dir, it catches up.
    let down = follower;
    members[down].take().expect("running").stop();
    assert!(data_dir_exists(
        &lab.root.join(format!("data-{}", lab.initial[down].0))
    ));
    let r4 = lab
        .apply(lab.addr(other), "admin", THREE_TIER, Some(3))
        .expect("apply with one member down");
    assert_eq!(r4.revision, 4);
    members[down] = Some(lab.start(down));
    lab.until("the restarted member catches up", async || {
        let mut c = lab.policy(lab.addr(down), "admin");
        let g = c
            .get(v1::GetPolicyRequest::default())
            .await
            .ok()?
            .into_inner();
        (g.revision == 4).then_some(())
    });

    // A fourth member joins: added as a learner, promoted once caught up.
    let addr4 = free_port();
    let m4 = Member::start(lab.config("m4", addr4, false), dataplane()).expect("m4 starts");
    let mut cl = lab.cluster(lab.addr(other));
    lab.rt
        .block_on(cl.add_member(v1::AddMemberRequest {
            name: "m4".into(),
            address: addr4.to_string(),
        }))
        .expect("add member");
    lab.until("m4 promoted to voter", async || {
        let mut c = lab.cluster(lab.addr(leader));
        let s = c
            .status(v1::ClusterStatusRequest {})
            .await
            .ok()?
            .into_inner();
        s.members
            .iter()
            .any(|m| m.name == "m4" && m.voter && m.reachable)
            .then_some(())
    });
    assert_eq!(lab.get(addr4, None).expect("get on m4").revision, 4);

    // Remove it again; unknown members are refused and audited.
    lab.rt
        .block_on(cl.remove_member(v1::RemoveMemberRequest { name: "m4".into() }))
        .expect("remove member");
    let (c, _) = code(lab.rt.block_on(cl.remove_member(v1::RemoveMemberRequest {
        name: "nobody".into(),
    })));
    assert_eq!(c, Code::NotFound);
    let s = lab.status(lab.addr(leader));
    assert_eq!(s.members.len(), 3, "{s:?}");
    m4.stop();
    for m in members.into_iter().flatten() {
        m.stop();
    }
}

//! `bulkctl` online commands against real gRPC servers on 127.0.0.1 with
//! real mutual TLS (`bulkhead_api::ApiServer`, certificates from
//! `bulkhead_pki`). The servers here answer fixed data: what is tested is
//! the client — flags, certificate files, connection and TLS failures,
//! status codes to exit codes, output shapes, `--wait`, large answers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use bulkhead_api::{ApiServer, AuditSink, AuthLayer, Grants, Role};
use bulkhead_proto::v1::{
    self, cluster_service_server::ClusterService, dataplane_service_server::DataplaneService,
    policy_service_server::PolicyService,
};
use tonic::{Request, Response, Status};

fn bulkctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bulkctl"))
        .args(args)
        .env_remove("BULKHEAD_ENDPOINT")
        .env_remove("BULKHEAD_PKI")
        .env_remove("BULKHEAD_IDENTITY")
        .output()
        .expect("run bulkctl")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct FixedGrants(HashMap<String, Role>);

impl Grants for FixedGrants {
    fn role_of(&self, identity: &str) -> Option<Role> {
        self.0.get(identity).copied()
    }
    fn is_member(&self, _: &str) -> bool {
        false
    }
}

struct NoAudit;

impl AuditSink for NoAudit {
    fn refused(&self, _: &str, _: &str, _: &str) {}
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not in this test"))
}

/// Policy answers: revision 5 for any valid document; a document with
/// `invalid` is INVALID_ARGUMENT with diagnostics; `--if-revision` other
/// than 4 is FAILED_PRECONDITION; Get answers an 8 MiB document.
struct Policy;

#[tonic::async_trait]
impl PolicyService for Policy {
    async fn apply(
        &self,
        r: Request<v1::ApplyRequest>,
    ) -> Result<Response<v1::ApplyResponse>, Status> {
        let r = r.into_inner();
        if r.document.contains("invalid") {
            return Err(Status::invalid_argument(
                "policy.yaml:3:5: error: rule \"x\": unknown segment \"nowhere\"\npolicy is invalid: 1 error(s)",
            ));
        }
        if r.if_revision.is_some_and(|n| n != 4) {
            return Err(Status::failed_precondition(
                "the current revision is 4, not 3",
            ));
        }
        Ok(Response::new(v1::ApplyResponse {
            revision: 5,
            digest: "ab12".into(),
            warnings: vec![v1::Diagnostic {
                severity: v1::Severity::Warning as i32,
                message: "rule \"y\" is shadowed".into(),
                ..Default::default()
            }],
            dry_run: r.dry_run,
        }))
    }
    async fn validate(
        &self,
        _: Request<v1::ValidateRequest>,
    ) -> Result<Response<v1::ValidateResponse>, Status> {
        unimplemented()
    }
    async fn get(
        &self,
        _: Request<v1::GetPolicyRequest>,
    ) -> Result<Response<v1::PolicyRevision>, Status> {
        Ok(Response::new(v1::PolicyRevision {
            revision: 5,
            digest: "ab12".into(),
            identity: "admin".into(),
            time_ms: 1_714_564_800_000,
            comment: "big".into(),
            document: "#".repeat(8 * 1024 * 1024),
            rollback_of: None,
        }))
    }
    async fn history(
        &self,
        _: Request<v1::HistoryRequest>,
    ) -> Result<Response<v1::HistoryResponse>, Status> {
        unimplemented()
    }
    async fn diff(
        &self,
        _: Request<v1::DiffRequest>,
    ) -> Result<Response<v1::DiffResponse>, Status> {
        unimplemented()
    }
    async fn rollback(
        &self,
        _: Request<v1::RollbackRequest>,
    ) -> Result<Response<v1::ApplyResponse>, Status> {
        Err(Status::not_found("no revision 99"))
    }
    async fn check(
        &self,
        _: Request<v1::CheckRequest>,
    ) -> Result<Response<v1::CheckResponse>, Status> {
        unimplemented()
    }
}

/// Cluster status: revision 5; gw-3 unreachable and still enforcing 4.
struct Cluster;

#[tonic::async_trait]
impl ClusterService for Cluster {
    async fn status(
        &self,
        _: Request<v1::ClusterStatusRequest>,
    ) -> Result<Response<v1::ClusterStatus>, Status> {
        let m = |name: &str, n: u8, reachable: bool, enforced: u64| v1::Member {
            name: name.into(),
            address: format!("10.0.0.1{n}:7444"),
            voter: true,
            reachable,
            enforced_revision: enforced,
            applied_index: 0,
        };
        Ok(Response::new(v1::ClusterStatus {
            leader: "gw-1".into(),
            term: 2,
            revision: 5,
            members: vec![
                m("gw-1", 1, true, 5),
                m("gw-2", 2, true, 5),
                m("gw-3", 3, false, 4),
            ],
        }))
    }
    async fn add_member(
        &self,
        _: Request<v1::AddMemberRequest>,
    ) -> Result<Response<v1::MembershipResponse>, Status> {
        Err(Status::already_exists("member gw-2 exists"))
    }
    async fn remove_member(
        &self,
        _: Request<v1::RemoveMemberRequest>,
    ) -> Result<Response<v1::MembershipResponse>, Status> {
        Err(Status::unavailable("no quorum: 1 of 3 members reachable"))
    }
    async fn transfer_leader(
        &self,
        _: Request<v1::TransferLeaderRequest>,
    ) -> Result<Response<v1::TransferLeaderResponse>, Status> {
        unimplemented()
    }
    async fn member_state(
        &self,
        _: Request<v1::MemberStateRequest>,
    ) -> Result<Response<v1::MemberStateResponse>, Status> {
        unimplemented()
    }
}

/// Flows: three events, then silence with the stream left open (or closed
/// when the filter's port is 1).
struct Dataplane;

#[tonic::async_trait]
impl DataplaneService for Dataplane {
    type FlowsStream = tokio_stream::wrappers::ReceiverStream<Result<v1::FlowEvent, Status>>;

    async fn counters(
        &self,
        _: Request<v1::CountersRequest>,
    ) -> Result<Response<v1::CountersResponse>, Status> {
        unimplemented()
    }
    async fn connections(
        &self,
        _: Request<v1::ConnectionsRequest>,
    ) -> Result<Response<v1::ConnectionsResponse>, Status> {
        unimplemented()
    }
    async fn flows(
        &self,
        r: Request<v1::FlowsRequest>,
    ) -> Result<Response<Self::FlowsStream>, Status> {
        let close = r.into_inner().filter.and_then(|f| f.port) == Some(1);
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            for i in 0..3u32 {
                let e = v1::FlowEvent {
                    kind: v1::FlowEventKind::Allowed as i32,
                    time_ms: 1_714_564_800_000,
                    src_address: "10.0.0.1".into(),
                    src_port: 40_000 + i,
                    dst_address: "10.0.0.2".into(),
                    dst_port: 5432,
                    protocol: 6,
                    rule: "app-to-db".into(),
                    ..Default::default()
                };
                if tx.send(Ok(e)).await.is_err() {
                    return;
                }
            }
            if !close {
                // Keep the stream open until the client goes away.
                tx.closed().await;
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }
    async fn flush(
        &self,
        _: Request<v1::FlushRequest>,
    ) -> Result<Response<v1::FlushResponse>, Status> {
        unimplemented()
    }
}

/// A server on 127.0.0.1 presenting `server_pki`'s `gw-1` (IP SAN
/// 127.0.0.1), with grants admin → admin, ops-bot → viewer.
struct Lab {
    _rt: tokio::runtime::Runtime,
    addr: SocketAddr,
}

fn serve(server_pki: &Path) -> Lab {
    bulkhead_pki::issue(server_pki, "gw-1", &["127.0.0.1".into()]).expect("issue gw-1");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let grants = FixedGrants(HashMap::from([
        ("admin".to_owned(), Role::Admin),
        ("ops-bot".to_owned(), Role::Viewer),
    ]));
    let auth = AuthLayer::new(Arc::new(grants), Arc::new(NoAudit));
    let tls = bulkhead_pki::server_tls(server_pki, "gw-1").expect("server tls");
    let server = ApiServer::new()
        .policy(Policy)
        .cluster(Cluster)
        .dataplane(Dataplane);
    rt.spawn(async move {
        server
            .serve(listener, tls, auth, std::future::pending())
            .await
            .expect("serve");
    });
    Lab { _rt: rt, addr }
}

fn pki(dir: &Path) -> PathBuf {
    let p = dir.join("pki");
    bulkhead_pki::init(&p).expect("init");
    for name in ["ops-bot", "stranger"] {
        bulkhead_pki::issue(&p, name, &[]).expect("issue");
    }
    p
}

fn online(lab: &Lab, pki: &Path, identity: &str, args: &[&str]) -> Output {
    let ep = lab.addr.to_string();
    let mut all = vec![
        "--endpoint",
        &ep,
        "--pki",
        pki.to_str().expect("utf-8"),
        "--identity",
        identity,
    ];
    all.extend_from_slice(args);
    bulkctl(&all)
}

#[test]
fn missing_certificate_files_are_exit_2_naming_the_file() {
    let tmp = tempfile::tempdir().expect("tmp");
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let o = bulkctl(&[
        "--endpoint",
        "127.0.0.1:1",
        "--pki",
        empty.to_str().expect("utf-8"),
        "cluster",
        "status",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("empty/ca.crt is missing") && err.contains("bulkctl pki init"),
        "{err}"
    );

    let p = pki(tmp.path());
    let o = bulkctl(&[
        "--endpoint",
        "127.0.0.1:1",
        "--pki",
        p.to_str().expect("utf-8"),
        "--identity",
        "ghost",
        "cluster",
        "status",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("ghost.crt is missing") && err.contains("bulkctl pki issue"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    std::fs::remove_file(p.join("ops-bot.key")).expect("rm key");
    let o = Command::new(env!("CARGO_BIN_EXE_bulkctl"))
        .args(["cluster", "status"])
        .env("BULKHEAD_ENDPOINT", "127.0.0.1:1")
        .env("BULKHEAD_PKI", &p)
        .env("BULKHEAD_IDENTITY", "ops-bot")
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("ops-bot.key is missing"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn usage_errors_are_exit_2_before_any_connection() {
    let tmp = tempfile::tempdir().expect("tmp");
    let p = pki(tmp.path());
    let ps = p.to_str().expect("utf-8");
    let o = bulkctl(&["--pki", ps, "cluster", "status"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("no endpoint"),
        "{}",
        text(&o.stderr)
    );
    let o = bulkctl(&["--endpoint", "127.0.0.1", "--pki", ps, "cluster", "status"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("no port"), "{}", text(&o.stderr));
    // Bad endpoint lines are refused before connecting (nothing listens on port 1).
    let f = tmp.path().join("eps.txt");
    std::fs::write(&f, "10.0.0.1 web\n10.0.0.999 web\n").expect("write");
    let o = bulkctl(&[
        "--endpoint",
        "127.0.0.1:1",
        "--pki",
        ps,
        "endpoint",
        "add",
        "--file",
        f.to_str().expect("utf-8"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("eps.txt:2: \"10.0.0.999\" is not an IPv4 or IPv6 address"),
        "{}",
        text(&o.stderr)
    );
    let o = bulkctl(&[
        "--endpoint",
        "127.0.0.1:1",
        "--pki",
        ps,
        "policy",
        "apply",
        "/nonexistent.yaml",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("cannot open"),
        "{}",
        text(&o.stderr)
    );
    let o = bulkctl(&["policy", "apply", "x.yaml", "--wait=soon"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("not a duration"),
        "{}",
        text(&o.stderr)
    );
    let o = bulkctl(&["access", "grant", "ops-bot", "root"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_closed_port_is_exit_4_cannot_reach() {
    let tmp = tempfile::tempdir().expect("tmp");
    let p = pki(tmp.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port();
    let ep = format!("127.0.0.1:{port}");
    let o = bulkctl(&[
        "--endpoint",
        &ep,
        "--pki",
        p.to_str().expect("utf-8"),
        "policy",
        "history",
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stderr),
        format!("bulkctl: cannot reach {ep}: connection refused\n")
    );
}

#[test]
fn a_server_of_another_ca_is_refused_with_a_tls_message() {
    let tmp = tempfile::tempdir().expect("tmp");
    let ours = pki(tmp.path());
    let theirs = tmp.path().join("theirs");
    bulkhead_pki::init(&theirs).expect("init theirs");
    let lab = serve(&theirs);
    let o = online(&lab, &ours, "admin", &["cluster", "status"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.starts_with(&format!(
            "bulkctl: cannot reach {}: TLS handshake failed",
            lab.addr
        )),
        "{err}"
    );
    assert!(err.contains("certificate"), "{err}");

    // Trusting the server's CA but presenting a certificate of another CA:
    // the server refuses us during (or right after) the handshake.
    let mixed = tmp.path().join("mixed");
    bulkhead_pki::init(&mixed).expect("init mixed");
    std::fs::copy(theirs.join("ca.crt"), mixed.join("ca.crt")).expect("copy ca");
    let o = online(&lab, &mixed, "admin", &["cluster", "status"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains("TLS client certificate"), "{err}");
    assert!(err.contains("mixed/admin.crt"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn refusals_and_answers_of_a_real_server() {
    let tmp = tempfile::tempdir().expect("tmp");
    let p = pki(tmp.path());
    let lab = serve(&p);
    let doc = tmp.path().join("policy.yaml");
    std::fs::write(&doc, "version: 1\n").expect("write");
    let docs = doc.to_str().expect("utf-8");

    // Authorisation refusals are exit 3 with the server's message.
    let o = online(&lab, &p, "ops-bot", &["policy", "apply", docs]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(
        text(&o.stderr),
        "bulkctl: identity ops-bot has role viewer; PolicyService/Apply needs admin\n"
    );
    let o = online(&lab, &p, "stranger", &["cluster", "status"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        text(&o.stderr).contains("identity stranger has no role"),
        "{}",
        text(&o.stderr)
    );

    // Apply: JSON shape, dry run, warnings on stderr.
    let o = online(&lab, &p, "admin", &["policy", "apply", docs, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v, serde_json::json!({"revision": 5, "digest": "ab12"}));
    assert!(text(&o.stderr).contains("warning: rule \"y\" is shadowed"));
    let o = online(
        &lab,
        &p,
        "admin",
        &["--json", "policy", "apply", "--dry-run", docs],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["warnings"][0]["message"], "rule \"y\" is shadowed");

    // Invalid policy: exit 2 with the server's diagnostics; stale precondition: 3.
    std::fs::write(&doc, "invalid\n").expect("write");
    let o = online(&lab, &p, "admin", &["policy", "apply", docs]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("unknown segment \"nowhere\"\npolicy is invalid: 1 error(s)"),
        "{}",
        text(&o.stderr)
    );
    std::fs::write(&doc, "version: 1\n").expect("write");
    let o = online(
        &lab,
        &p,
        "admin",
        &["policy", "apply", docs, "--if-revision", "3"],
    );
    assert_eq!(o.status.code(), Some(3));
    let o = online(&lab, &p, "admin", &["policy", "rollback", "99"]);
    assert_eq!(
        (o.status.code(), text(&o.stderr).as_str()),
        (Some(3), "bulkctl: no revision 99\n")
    );
    let o = online(
        &lab,
        &p,
        "admin",
        &["cluster", "add-member", "gw-2", "10.0.0.12:7444"],
    );
    assert_eq!(o.status.code(), Some(3));
    let o = online(&lab, &p, "admin", &["cluster", "remove-member", "gw-3"]);
    assert_eq!(
        (o.status.code(), text(&o.stderr).as_str()),
        (Some(4), "bulkctl: no quorum: 1 of 3 members reachable\n")
    );
    let o = online(&lab, &p, "admin", &["policy", "history"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "unimplemented is an unexpected server error"
    );

    // Cluster status, both forms.
    let o = online(&lab, &p, "ops-bot", &["cluster", "status", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["leader"], "gw-1");
    assert_eq!(
        v["members"][2],
        serde_json::json!({"name": "gw-3", "address": "10.0.0.13:7444", "voter": true, "reachable": false, "enforced_revision": 4})
    );
    let o = online(&lab, &p, "ops-bot", &["cluster", "status"]);
    assert!(
        text(&o.stdout).contains("gw-3    10.0.0.13:7444  voter  no         4"),
        "{}",
        text(&o.stdout)
    );

    // An answer over tonic's default 4 MiB limit.
    let o = online(&lab, &p, "ops-bot", &["policy", "get", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["document"].as_str().map(str::len), Some(8 * 1024 * 1024));
    assert_eq!(v["time"], "2024-05-01T12:00:00.000Z");
}

#[test]
fn wait_names_the_members_that_lag() {
    let tmp = tempfile::tempdir().expect("tmp");
    let p = pki(tmp.path());
    let lab = serve(&p);
    let doc = tmp.path().join("policy.yaml");
    std::fs::write(&doc, "version: 1\n").expect("write");
    let start = std::time::Instant::now();
    let o = online(
        &lab,
        &p,
        "admin",
        &["policy", "apply", doc.to_str().expect("utf-8"), "--wait=1s"],
    );
    assert_eq!(o.status.code(), Some(4), "{}", text(&o.stderr));
    assert!(start.elapsed() >= std::time::Duration::from_secs(1));
    assert!(
        text(&o.stdout).contains("applied revision 5"),
        "{}",
        text(&o.stdout)
    );
    let err = text(&o.stderr);
    assert!(
        err.ends_with("bulkctl: timed out after 1 s: gw-3 enforces revision 4 (unreachable)\n"),
        "{err}"
    );
}

#[test]
fn flows_stop_when_idle_after_a_count_or_at_the_end() {
    let tmp = tempfile::tempdir().expect("tmp");
    let p = pki(tmp.path());
    let lab = serve(&p);
    let start = std::time::Instant::now();
    let o = online(&lab, &p, "ops-bot", &["flows", "--segment", "db"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        start.elapsed() >= std::time::Duration::from_secs(2),
        "stops after the idle period"
    );
    let out = text(&o.stdout);
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(out.starts_with("2024-05-01T12:00:00.000Z allowed tcp 10.0.0.1:40000 -> 10.0.0.2:5432 rule app-to-db rev 0\n"), "{out}");
    let o = online(&lab, &p, "ops-bot", &["flows", "--count", "2", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let lines: Vec<serde_json::Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["src_port"], 40001);
    // --follow ends when the member ends the stream.
    let o = online(&lab, &p, "ops-bot", &["flows", "--follow", "--port", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).lines().count(), 3);
}

#[test]
fn a_silent_endpoint_times_out_with_exit_4() {
    let tmp = tempfile::tempdir().expect("tmp");
    let p = pki(tmp.path());
    // Accepts TCP, never speaks TLS.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let ep = silent.local_addr().expect("addr").to_string();
    let start = std::time::Instant::now();
    let o = bulkctl(&[
        "--endpoint",
        &ep,
        "--pki",
        p.to_str().expect("utf-8"),
        "--timeout",
        "1",
        "cluster",
        "status",
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o.stderr));
    assert!(start.elapsed() < std::time::Duration::from_secs(8));
    let err = text(&o.stderr);
    assert!(
        err.contains(&format!("no answer from {ep} within 1 s")),
        "{err}"
    );
    drop(silent);
}

//! A lab for the API server tests: a PKI in a temporary directory, a server
//! on 127.0.0.1 with minimal test services, and clients with chosen
//! identities. The services here exist for the tests only.

#![allow(dead_code, reason = "each test file uses part of the lab")]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bulkhead_api::{ApiServer, AuditSink, AuthLayer, Caller, Grants, Role};
use bulkhead_proto::v1::{
    self, peer_service_server::PeerService, policy_service_server::PolicyService,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic::{Request, Response, Status, Streaming};

/// Grants fixed by the test.
pub struct TestGrants {
    pub roles: HashMap<String, Role>,
    pub members: HashSet<String>,
}

impl Grants for TestGrants {
    fn role_of(&self, identity: &str) -> Option<Role> {
        self.roles.get(identity).copied()
    }
    fn is_member(&self, identity: &str) -> bool {
        self.members.contains(identity)
    }
}

/// Every refusal the layer reported: (identity, method, reason).
#[derive(Default)]
pub struct TestAudit(pub Mutex<Vec<(String, String, String)>>);

impl AuditSink for TestAudit {
    fn refused(&self, identity: &str, method: &str, reason: &str) {
        self.0
            .lock()
            .expect("lock")
            .push((identity.into(), method.into(), reason.into()));
    }
}

/// Identities of the callers that reached a test service.
#[derive(Clone, Default)]
pub struct Reached(pub Arc<Mutex<Vec<String>>>);

impl Reached {
    fn note<T>(&self, req: &Request<T>) {
        let who = req
            .extensions()
            .get::<Caller>()
            .map_or_else(|| "<no caller>".to_owned(), |c| c.identity.clone());
        self.0.lock().expect("lock").push(who);
    }

    pub fn all(&self) -> Vec<String> {
        self.0.lock().expect("lock").clone()
    }
}

/// PolicyService for tests: Apply answers revision 1, the rest is unimplemented.
pub struct TestPolicy(pub Reached);

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not in this test"))
}

#[tonic::async_trait]
impl PolicyService for TestPolicy {
    async fn apply(
        &self,
        request: Request<v1::ApplyRequest>,
    ) -> Result<Response<v1::ApplyResponse>, Status> {
        self.0.note(&request);
        Ok(Response::new(v1::ApplyResponse {
            revision: 1,
            digest: "00".into(),
            warnings: vec![],
            dry_run: request.get_ref().dry_run,
        }))
    }
    async fn validate(
        &self,
        request: Request<v1::ValidateRequest>,
    ) -> Result<Response<v1::ValidateResponse>, Status> {
        self.0.note(&request);
        unimplemented()
    }
    async fn get(
        &self,
        request: Request<v1::GetPolicyRequest>,
    ) -> Result<Response<v1::PolicyRevision>, Status> {
        self.0.note(&request);
        Ok(Response::new(v1::PolicyRevision::default()))
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
        unimplemented()
    }
    async fn check(
        &self,
        _: Request<v1::CheckRequest>,
    ) -> Result<Response<v1::CheckResponse>, Status> {
        unimplemented()
    }
}

/// PeerService for tests: Forward echoes the command, the rest is unimplemented.
pub struct TestPeer(pub Reached);

#[tonic::async_trait]
impl PeerService for TestPeer {
    async fn send(
        &self,
        _: Request<Streaming<v1::RaftBatch>>,
    ) -> Result<Response<v1::SendResponse>, Status> {
        unimplemented()
    }
    async fn snapshot(
        &self,
        _: Request<Streaming<v1::SnapshotChunk>>,
    ) -> Result<Response<v1::SnapshotResponse>, Status> {
        unimplemented()
    }
    async fn forward(
        &self,
        request: Request<v1::ForwardRequest>,
    ) -> Result<Response<v1::ForwardResponse>, Status> {
        self.0.note(&request);
        Ok(Response::new(v1::ForwardResponse {
            index: 1,
            result: request.into_inner().command,
        }))
    }
}

/// A running server and its PKI.
pub struct Lab {
    _tmp: tempfile::TempDir,
    pub pki: PathBuf,
    pub addr: SocketAddr,
    pub audit: Arc<TestAudit>,
    pub reached: Reached,
    /// The server's health statuses.
    pub health: tonic_health::server::HealthReporter,
}

/// Identities issued by [`Lab::start`]: `gw-1` (the server), `gw-2` (a
/// member), `ops-bot` (viewer), `stranger` (no role); `admin` from init.
pub async fn start() -> Lab {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = tmp.path().join("pki");
    bulkhead_pki::init(&pki).expect("init");
    bulkhead_pki::issue(&pki, "gw-1", &["127.0.0.1".into()]).expect("issue gw-1");
    for name in ["gw-2", "ops-bot", "stranger"] {
        bulkhead_pki::issue(&pki, name, &[]).expect("issue");
    }
    let grants = TestGrants {
        roles: HashMap::from([
            ("admin".to_owned(), Role::Admin),
            ("ops-bot".to_owned(), Role::Viewer),
        ]),
        members: HashSet::from(["gw-1".to_owned(), "gw-2".to_owned()]),
    };
    let audit = Arc::new(TestAudit::default());
    let reached = Reached::default();
    let auth = AuthLayer::new(Arc::new(grants), audit.clone());
    let tls = bulkhead_pki::server_tls(&pki, "gw-1").expect("server tls");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = ApiServer::new()
        .policy(TestPolicy(reached.clone()))
        .peer(TestPeer(reached.clone()));
    let health = server.health_reporter();
    tokio::spawn(async move {
        server
            .serve(listener, tls, auth, std::future::pending())
            .await
            .expect("serve");
    });
    Lab {
        _tmp: tmp,
        pki,
        addr,
        audit,
        reached,
        health,
    }
}

impl Lab {
    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// A channel presenting `identity`'s certificate from this lab's PKI.
    pub async fn client(&self, identity: &str) -> Result<Channel, tonic::transport::Error> {
        let tls = bulkhead_pki::client_tls(&self.pki, identity, "127.0.0.1").expect("client tls");
        self.connect(tls).await
    }

    pub async fn connect(&self, tls: ClientTlsConfig) -> Result<Channel, tonic::transport::Error> {
        Channel::from_shared(self.url())
            .expect("url")
            .tls_config(tls)?
            .connect()
            .await
    }

    /// TLS trusting this lab's CA but presenting no client certificate.
    pub fn tls_without_identity(&self) -> ClientTlsConfig {
        let ca = std::fs::read(self.pki.join("ca.crt")).expect("ca");
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca))
            .domain_name("127.0.0.1")
    }
}

/// A PKI of another CA, with an `admin` identity, in `dir`.
pub fn foreign_pki(dir: &Path) {
    bulkhead_pki::init(dir).expect("foreign init");
}

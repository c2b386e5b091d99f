//! The management API server over real TCP on 127.0.0.1 with real mutual
//! TLS: health, reflection, handshake refusals, authorisation and caps.

mod common;

use bulkhead_proto::v1::{
    self, peer_service_client::PeerServiceClient, policy_service_client::PolicyServiceClient,
};
use tonic::transport::ClientTlsConfig;
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};
use tonic_reflection::pb::v1::{
    server_reflection_client::ServerReflectionClient, server_reflection_request::MessageRequest,
    server_reflection_response::MessageResponse, ServerReflectionRequest,
};
use tonic_reflection::pb::v1alpha::{
    server_reflection_client::ServerReflectionClient as AlphaClient,
    server_reflection_request::MessageRequest as AlphaMessageRequest,
    server_reflection_response::MessageResponse as AlphaMessageResponse,
    ServerReflectionRequest as AlphaRequest,
};

async fn health(ch: tonic::transport::Channel, service: &str) -> Result<i32, tonic::Status> {
    let resp = HealthClient::new(ch)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await?;
    Ok(resp.into_inner().status)
}

fn apply(document: String) -> v1::ApplyRequest {
    v1::ApplyRequest {
        document,
        dry_run: false,
        comment: "test".into(),
        if_revision: None,
        wait_timeout_ms: 0,
    }
}

#[tokio::test]
async fn a_client_of_the_same_ca_gets_serving() {
    let lab = common::start().await;
    let ch = lab.client("admin").await.expect("connect");
    assert_eq!(
        health(ch.clone(), "").await.expect("health"),
        ServingStatus::Serving as i32
    );
    assert_eq!(
        health(ch, "bulkhead.v1.PolicyService")
            .await
            .expect("health"),
        ServingStatus::Serving as i32
    );
    // Health is open to any verified identity, with or without a role.
    let ch = lab.client("stranger").await.expect("connect");
    assert_eq!(
        health(ch, "").await.expect("health"),
        ServingStatus::Serving as i32
    );
    assert!(lab.audit.0.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn reflection_lists_the_services_and_describes_them() {
    let lab = common::start().await;
    let ch = lab.client("stranger").await.expect("connect");
    let req = |m: MessageRequest| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(m),
    };
    let reqs = [
        req(MessageRequest::ListServices(String::new())),
        req(MessageRequest::FileContainingSymbol(
            "bulkhead.v1.PolicyService".into(),
        )),
    ];
    let mut stream = ServerReflectionClient::new(ch.clone())
        .server_reflection_info(tokio_stream::iter(reqs))
        .await
        .expect("reflection call")
        .into_inner();
    let resp = stream.message().await.expect("answer").expect("list");
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected answer {resp:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for want in [
        "bulkhead.v1.PolicyService",
        "bulkhead.v1.PeerService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    let resp = stream.message().await.expect("answer").expect("file");
    let Some(MessageResponse::FileDescriptorResponse(files)) = resp.message_response else {
        panic!("unexpected answer {resp:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());

    // The older v1alpha protocol, still used by some tools, answers too.
    let mut stream = AlphaClient::new(ch)
        .server_reflection_info(tokio_stream::iter([AlphaRequest {
            host: String::new(),
            message_request: Some(AlphaMessageRequest::ListServices(String::new())),
        }]))
        .await
        .expect("v1alpha call")
        .into_inner();
    let resp = stream.message().await.expect("answer").expect("list");
    let Some(AlphaMessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected answer {resp:?}");
    };
    assert!(list
        .service
        .iter()
        .any(|s| s.name == "bulkhead.v1.PolicyService"));
}

#[tokio::test]
async fn health_follows_the_reporter() {
    let lab = common::start().await;
    let ch = lab.client("ops-bot").await.expect("connect");
    lab.health
        .set_service_status(
            "bulkhead.v1.PolicyService",
            tonic_health::ServingStatus::NotServing,
        )
        .await;
    assert_eq!(
        health(ch.clone(), "bulkhead.v1.PolicyService")
            .await
            .expect("health"),
        ServingStatus::NotServing as i32
    );
    let err = health(ch, "bulkhead.v1.NoSuchService")
        .await
        .expect_err("unknown service");
    assert_eq!(err.code(), tonic::Code::NotFound);
}

/// A refused handshake shows either at connect or at the first call (TLS
/// 1.3 clients learn of a refused certificate after their side finished).
async fn refused(lab: &common::Lab, tls: ClientTlsConfig) {
    let res = match lab.connect(tls).await {
        Err(_) => return,
        Ok(ch) => health(ch, "").await,
    };
    let err = res.expect_err("handshake refused");
    assert!(
        matches!(err.code(), tonic::Code::Unavailable | tonic::Code::Unknown),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_client_of_another_ca_is_refused_at_the_handshake() {
    let lab = common::start().await;
    let other = tempfile::tempdir().expect("tempdir");
    common::foreign_pki(other.path());
    // Trusts the lab's CA (so the server is accepted) but presents a
    // certificate of the other CA.
    let ca = std::fs::read(lab.pki.join("ca.crt")).expect("ca");
    let crt = std::fs::read(other.path().join("admin.crt")).expect("crt");
    let key = std::fs::read(other.path().join("admin.key")).expect("key");
    let tls = ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(ca))
        .identity(tonic::transport::Identity::from_pem(crt, key))
        .domain_name("127.0.0.1");
    refused(&lab, tls).await;
    assert!(lab.reached.all().is_empty());
    assert!(
        lab.audit.0.lock().expect("lock").is_empty(),
        "refused by TLS, not by the layer"
    );
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let lab = common::start().await;
    refused(&lab, lab.tls_without_identity()).await;
    assert!(lab.reached.all().is_empty());
    assert!(
        lab.audit.0.lock().expect("lock").is_empty(),
        "refused by TLS, not by the layer"
    );
}

#[tokio::test]
async fn the_client_checks_the_server_name() {
    let lab = common::start().await;
    // gw-1's certificate names 127.0.0.1 only: a client expecting another
    // address (or a DNS name) refuses the server.
    for expected in ["10.9.9.9", "gw-1.lab"] {
        let tls = bulkhead_pki::client_tls(&lab.pki, "admin", expected).expect("tls");
        refused(&lab, tls).await;
    }
    assert!(lab.audit.0.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn a_viewer_cannot_apply_and_the_refusal_is_audited() {
    let lab = common::start().await;
    let ch = lab.client("ops-bot").await.expect("connect");
    let err = PolicyServiceClient::new(ch.clone())
        .apply(apply("version: 1".into()))
        .await
        .expect_err("viewer refused");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert_eq!(
        err.message(),
        "identity ops-bot has role viewer; PolicyService/Apply needs admin"
    );
    let seen = lab.audit.0.lock().expect("lock").clone();
    assert_eq!(
        seen,
        [(
            "ops-bot".to_owned(),
            "/bulkhead.v1.PolicyService/Apply".to_owned(),
            err.message().to_owned()
        )]
    );
    assert!(lab.reached.all().is_empty(), "the service never saw it");
    // The same viewer may read.
    PolicyServiceClient::new(ch)
        .get(v1::GetPolicyRequest { revision: None })
        .await
        .expect("viewer reads");
    assert_eq!(lab.reached.all(), ["ops-bot"]);
}

#[tokio::test]
async fn an_admin_reaches_the_service_with_its_identity() {
    let lab = common::start().await;
    let ch = lab.client("admin").await.expect("connect");
    let resp = PolicyServiceClient::new(ch)
        .apply(apply("version: 1".into()))
        .await
        .expect("admin applies");
    assert_eq!(resp.get_ref().revision, 1);
    assert_eq!(lab.reached.all(), ["admin"]);
    assert!(lab.audit.0.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn an_identity_without_a_role_is_refused() {
    let lab = common::start().await;
    let ch = lab.client("stranger").await.expect("connect");
    let err = PolicyServiceClient::new(ch)
        .get(v1::GetPolicyRequest { revision: None })
        .await
        .expect_err("no role");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert!(
        err.message().contains("identity stranger has no role"),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains("PolicyService/Get needs viewer"),
        "{}",
        err.message()
    );
    assert_eq!(lab.audit.0.lock().expect("lock")[0].0, "stranger");
}

#[tokio::test]
async fn only_members_speak_the_peer_protocol() {
    let lab = common::start().await;
    let forward = || v1::ForwardRequest {
        command: b"cmd".to_vec(),
        identity: "admin".into(),
    };
    // An admin client is not a member.
    let ch = lab.client("admin").await.expect("connect");
    let err = PeerServiceClient::new(ch)
        .forward(forward())
        .await
        .expect_err("client refused");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert!(
        err.message()
            .contains("identity admin is not a cluster member"),
        "{}",
        err.message()
    );

    let ch = lab.client("gw-2").await.expect("connect");
    let resp = PeerServiceClient::new(ch)
        .forward(forward())
        .await
        .expect("member");
    assert_eq!(resp.get_ref().result, b"cmd");
    assert_eq!(lab.reached.all(), ["gw-2"]);
}

#[tokio::test]
async fn an_oversized_request_is_refused() {
    let lab = common::start().await;
    let ch = lab.client("admin").await.expect("connect");
    // Above tonic's default of 4 MiB, below the cap: accepted.
    let large = "#".repeat(8 * 1024 * 1024);
    PolicyServiceClient::new(ch.clone())
        .apply(apply(large))
        .await
        .expect("8 MiB document accepted");
    assert_eq!(lab.reached.all(), ["admin"]);
    let big = "#".repeat(bulkhead_api::MAX_REQUEST_BYTES + 1);
    let err = PolicyServiceClient::new(ch)
        .apply(apply(big))
        .await
        .expect_err("too large");
    // tonic refuses by the length prefix, before reading the message.
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err:?}");
    assert!(err.message().contains("too large"), "{err:?}");
    assert_eq!(lab.reached.all(), ["admin"], "the service never saw it");
}

#[tokio::test]
async fn unknown_methods_need_admin() {
    let lab = common::start().await;
    let ch = lab.client("ops-bot").await.expect("connect");
    // A method this server does not know, called with a raw gRPC client.
    let mut grpc = tonic::client::Grpc::new(ch);
    grpc.ready().await.expect("ready");
    let path = http::uri::PathAndQuery::from_static("/bulkhead.v1.Future/Thing");
    let err = grpc
        .unary::<v1::GetPolicyRequest, v1::PolicyRevision, _>(
            tonic::Request::new(v1::GetPolicyRequest { revision: None }),
            path,
            tonic_prost::ProstCodec::default(),
        )
        .await
        .expect_err("refused");
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert!(
        err.message()
            .contains("Future/Thing needs admin (unknown method)"),
        "{}",
        err.message()
    );
}

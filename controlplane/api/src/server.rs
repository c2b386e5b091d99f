//! Assembly: the application services given by the caller, `grpc.health.v1`
//! and server reflection (v1 and v1alpha), behind mutual TLS and the
//! [`AuthLayer`], each `bulkhead.v1` service with its request size cap.

use std::future::Future;

use bulkhead_proto::v1::{
    access_service_server::{AccessService, AccessServiceServer},
    cluster_service_server::{ClusterService, ClusterServiceServer},
    dataplane_service_server::{DataplaneService, DataplaneServiceServer},
    endpoint_service_server::{EndpointService, EndpointServiceServer},
    peer_service_server::{PeerService, PeerServiceServer},
    policy_service_server::{PolicyService, PolicyServiceServer},
};
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Server, ServerTlsConfig};
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};
use tonic_health::ServingStatus;

use crate::{AuthLayer, MAX_PEER_MESSAGE_BYTES, MAX_REQUEST_BYTES, MAX_SMALL_REQUEST_BYTES};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("TLS configuration refused: {0}")]
    Tls(#[source] tonic::transport::Error),
    #[error("reflection descriptors: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server: {0}")]
    Serve(#[source] tonic::transport::Error),
}

/// The management API server being assembled: add the application services
/// that this process implements, then [`serve`](ApiServer::serve).
#[derive(Debug)]
pub struct ApiServer {
    routes: RoutesBuilder,
    services: Vec<&'static str>,
    health: HealthReporter,
}

impl Default for ApiServer {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiServer {
    pub fn new() -> Self {
        Self {
            routes: RoutesBuilder::default(),
            services: Vec::new(),
            health: HealthReporter::new(),
        }
    }

    /// The health statuses served by `grpc.health.v1`: the server as a whole
    /// (`""`) and each added service start `SERVING`; set `NOT_SERVING`
    /// while draining.
    pub fn health_reporter(&self) -> HealthReporter {
        self.health.clone()
    }

    /// Full names of the application services added so far.
    pub fn services(&self) -> &[&'static str] {
        &self.services
    }

    pub fn policy<S: PolicyService>(mut self, svc: S) -> Self {
        self.services
            .push(<PolicyServiceServer<S> as NamedService>::NAME);
        self.routes.add_service(
            PolicyServiceServer::new(svc).max_decoding_message_size(MAX_REQUEST_BYTES),
        );
        self
    }

    pub fn endpoints<S: EndpointService>(mut self, svc: S) -> Self {
        self.services
            .push(<EndpointServiceServer<S> as NamedService>::NAME);
        self.routes.add_service(
            EndpointServiceServer::new(svc).max_decoding_message_size(MAX_REQUEST_BYTES),
        );
        self
    }

    pub fn cluster<S: ClusterService>(mut self, svc: S) -> Self {
        self.services
            .push(<ClusterServiceServer<S> as NamedService>::NAME);
        self.routes.add_service(
            ClusterServiceServer::new(svc).max_decoding_message_size(MAX_SMALL_REQUEST_BYTES),
        );
        self
    }

    pub fn access<S: AccessService>(mut self, svc: S) -> Self {
        self.services
            .push(<AccessServiceServer<S> as NamedService>::NAME);
        self.routes.add_service(
            AccessServiceServer::new(svc).max_decoding_message_size(MAX_SMALL_REQUEST_BYTES),
        );
        self
    }

    pub fn dataplane<S: DataplaneService>(mut self, svc: S) -> Self {
        self.services
            .push(<DataplaneServiceServer<S> as NamedService>::NAME);
        self.routes.add_service(
            DataplaneServiceServer::new(svc).max_decoding_message_size(MAX_SMALL_REQUEST_BYTES),
        );
        self
    }

    pub fn peer<S: PeerService>(mut self, svc: S) -> Self {
        self.services
            .push(<PeerServiceServer<S> as NamedService>::NAME);
        self.routes.add_service(
            PeerServiceServer::new(svc).max_decoding_message_size(MAX_PEER_MESSAGE_BYTES),
        );
        self
    }

    /// Serve on `listener` until `shutdown` completes: mutual TLS with
    /// `tls` (see `bulkhead_pki::server_tls`), every call through `auth`,
    /// plus health and reflection.
    pub async fn serve<F>(
        mut self,
        listener: TcpListener,
        tls: ServerTlsConfig,
        auth: AuthLayer,
        shutdown: F,
    ) -> Result<(), ApiError>
    where
        F: Future<Output = ()> + Send,
    {
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(bulkhead_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        self.routes.add_service(reflection().build_v1()?);
        self.routes.add_service(reflection().build_v1alpha()?);
        for name in &self.services {
            self.health
                .set_service_status(*name, ServingStatus::Serving)
                .await;
        }
        self.routes
            .add_service(HealthServer::new(HealthService::from_health_reporter(
                self.health.clone(),
            )));
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        Server::builder()
            .tls_config(tls)
            .map_err(ApiError::Tls)?
            .layer(auth)
            .add_routes(self.routes.routes())
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .map_err(ApiError::Serve)
    }
}

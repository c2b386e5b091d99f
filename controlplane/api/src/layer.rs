//! The tower layer that authorises every call on the HTTP request, before a
//! service decodes its body: identity from the verified client certificate,
//! role or membership from [`Grants`], refusals answered directly (and told
//! to the [`AuditSink`]), the [`Caller`] handed on in the request extensions.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::{Layer, Service};

use crate::authz::{decide, unauthenticated, Caller, Refusal};
use crate::{AuditSink, Grants};

/// Authorises every call of the services it wraps (see the crate root).
#[derive(Clone)]
pub struct AuthLayer {
    grants: Arc<dyn Grants>,
    audit: Arc<dyn AuditSink>,
}

impl AuthLayer {
    pub fn new(grants: Arc<dyn Grants>, audit: Arc<dyn AuditSink>) -> Self {
        Self { grants, audit }
    }
}

impl fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer").finish_non_exhaustive()
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`AuthLayer`] makes.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    layer: AuthLayer,
}

impl<S> fmt::Debug for AuthService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthService").finish_non_exhaustive()
    }
}

/// The identity of the caller: the common name of the verified client
/// certificate of the TLS connection the request came on.
fn identity_of_request<B>(req: &http::Request<B>) -> Result<String, String> {
    let info = req
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .ok_or("the connection is not TLS")?;
    let certs = info.peer_certs().ok_or("no client certificate")?;
    let leaf = certs.first().ok_or("no client certificate")?;
    bulkhead_pki::identity_of(leaf).map_err(|e| e.to_string())
}

impl AuthLayer {
    /// The caller, or the refusal (already told to the audit sink).
    fn authorise<B>(&self, req: &http::Request<B>) -> Result<Caller, Refusal> {
        let path = req.uri().path();
        let (identity, res) = match identity_of_request(req) {
            Ok(identity) => {
                let res = decide(self.grants.as_ref(), &identity, path);
                (identity, res)
            }
            Err(why) => (String::new(), Err(unauthenticated(path, &why))),
        };
        if let Err(refusal) = &res {
            tracing::info!(identity, method = path, reason = %refusal.message, "call refused");
            self.audit.refused(&identity, path, &refusal.message);
        }
        res
    }
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> Service<http::Request<B>> for AuthService<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        match self.layer.authorise(&req) {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
                Box::pin(self.inner.call(req))
            }
            Err(refusal) => {
                let response = refusal.to_status().into_http::<Body>();
                Box::pin(std::future::ready(Ok(response)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;
    use std::convert::Infallible;
    use std::sync::Mutex;
    use tower::ServiceExt;

    struct Everyone;
    impl Grants for Everyone {
        fn role_of(&self, _: &str) -> Option<Role> {
            Some(Role::Admin)
        }
        fn is_member(&self, _: &str) -> bool {
            true
        }
    }

    #[derive(Default)]
    struct Seen(Mutex<Vec<(String, String, String)>>);
    impl AuditSink for Seen {
        fn refused(&self, identity: &str, method: &str, reason: &str) {
            self.0
                .lock()
                .expect("lock")
                .push((identity.into(), method.into(), reason.into()));
        }
    }

    #[tokio::test]
    async fn a_request_without_tls_is_unauthenticated_and_audited() {
        let seen = Arc::new(Seen::default());
        let layer = AuthLayer::new(Arc::new(Everyone), seen.clone());
        let reached = Arc::new(Mutex::new(false));
        let flag = reached.clone();
        let inner = tower::service_fn(move |_req: http::Request<Body>| {
            *flag.lock().expect("lock") = true;
            async { Ok::<_, Infallible>(http::Response::new(Body::empty())) }
        });
        let req = http::Request::builder()
            .uri("/bulkhead.v1.PolicyService/Get")
            .body(Body::empty())
            .expect("request");
        let resp = layer.layer(inner).oneshot(req).await.expect("infallible");
        let status = tonic::Status::from_header_map(resp.headers()).expect("grpc status");
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert!(status.message().contains("PolicyService/Get"), "{status:?}");
        assert!(!*reached.lock().expect("lock"), "inner service not called");
        let seen = seen.0.lock().expect("lock");
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0, "");
        assert_eq!(seen[0].1, "/bulkhead.v1.PolicyService/Get");
    }
}

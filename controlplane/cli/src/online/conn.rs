//! Reaching the cluster: the endpoint, the identity's certificate, mutual
//! TLS, per-call deadlines, and every failure turned into one clear line and
//! an exit code.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bulkhead_proto::v1::{
    access_service_client::AccessServiceClient, cluster_service_client::ClusterServiceClient,
    dataplane_service_client::DataplaneServiceClient,
    endpoint_service_client::EndpointServiceClient, policy_service_client::PolicyServiceClient,
};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use super::duration::human;
use crate::args::Global;
use crate::Fail;

/// Something unexpected on the server (internal error, unimplemented).
pub(crate) const EXIT_FAILED: u8 = 1;
/// Invalid input: usage, unreadable file, invalid policy, failing test.
pub(crate) const EXIT_INVALID: u8 = 2;
/// Refused: role, authentication, stale precondition, unknown or existing thing.
pub(crate) const EXIT_REFUSED: u8 = 3;
/// Unavailable: unreachable, TLS, no quorum, deadline, `--wait` timed out.
pub(crate) const EXIT_UNAVAILABLE: u8 = 4;

/// Largest answer accepted (tonic's default is 4 MiB; a policy document may
/// be 16 MiB and an endpoint list larger).
pub(crate) const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// The exit code of a failed call.
pub(crate) fn exit_code(code: Code) -> u8 {
    match code {
        Code::Ok => 0,
        Code::InvalidArgument | Code::OutOfRange => EXIT_INVALID,
        Code::PermissionDenied
        | Code::Unauthenticated
        | Code::FailedPrecondition
        | Code::NotFound
        | Code::AlreadyExists
        | Code::Aborted => EXIT_REFUSED,
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::ResourceExhausted => {
            EXIT_UNAVAILABLE
        }
        Code::Unknown | Code::Internal | Code::Unimplemented | Code::DataLoss => EXIT_FAILED,
    }
}

/// `10.0.0.1` of `10.0.0.1:7443`, `::1` of `[::1]:7443`: the name the
/// member's certificate must carry (members have IP SANs).
pub(crate) fn split_endpoint(endpoint: &str) -> Result<(String, u16), String> {
    let bad =
        |why: &str| format!("--endpoint {endpoint:?}: {why} (give ADDR:PORT, e.g. 10.0.0.11:7443)");
    let (host, port) = endpoint.rsplit_once(':').ok_or_else(|| bad("no port"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(['/', ' ']) {
        return Err(bad("no host"));
    }
    if host.contains(':') && !endpoint.starts_with('[') {
        return Err(bad("put an IPv6 address in brackets"));
    }
    let port = port.parse::<u16>().map_err(|_| bad("bad port"))?;
    Ok((host.to_owned(), port))
}

/// Who to reach and how; nothing is contacted until [`Settings::connect`].
#[derive(Debug)]
pub(crate) struct Settings {
    pub endpoint: Option<String>,
    pub pki: Option<PathBuf>,
    pub identity: String,
    pub timeout: Duration,
    pub json: bool,
}

impl Settings {
    pub(crate) fn from_global(g: &Global) -> Self {
        Settings {
            endpoint: g.endpoint.clone(),
            pki: g.pki.clone(),
            identity: g.identity.clone(),
            timeout: g.timeout,
            json: g.json,
        }
    }

    /// Check the certificate files, then connect with mutual TLS.
    pub(crate) async fn connect(&self) -> Result<Conn, Fail> {
        let endpoint = self
            .endpoint
            .as_deref()
            .map(|e| e.trim_start_matches("https://").trim_end_matches('/'))
            .ok_or_else(|| {
                Fail(
                    EXIT_INVALID,
                    "no endpoint: give --endpoint ADDR:PORT or set BULKHEAD_ENDPOINT".into(),
                )
            })?;
        let (host, _) = split_endpoint(endpoint).map_err(|e| Fail(EXIT_INVALID, e))?;
        let pki = self.pki.as_deref().ok_or_else(|| {
            Fail(
                EXIT_INVALID,
                "no PKI directory: give --pki DIR or set BULKHEAD_PKI".into(),
            )
        })?;
        check_files(pki, &self.identity)?;
        let tls = bulkhead_pki::client_tls(pki, &self.identity, &host)
            .map_err(|e| Fail(EXIT_INVALID, e.to_string()))?;
        let url = format!("https://{endpoint}");
        let ep = Endpoint::from_shared(url)
            .and_then(|e| e.tls_config(tls))
            .map_err(|e| Fail(EXIT_INVALID, format!("--endpoint {endpoint}: {e}")))?
            .connect_timeout(self.timeout)
            .tcp_nodelay(true);
        let target = Target {
            endpoint: endpoint.to_owned(),
            pki: pki.to_owned(),
            identity: self.identity.clone(),
            timeout: self.timeout,
        };
        match tokio::time::timeout(self.timeout, ep.connect()).await {
            Err(_) => Err(target.timed_out("connecting")),
            Ok(Err(e)) => Err(target.unreachable(&e)),
            Ok(Ok(channel)) => Ok(Conn { channel, target }),
        }
    }
}

/// Missing certificate files are invalid input, named with the command that makes them.
fn check_files(dir: &Path, identity: &str) -> Result<(), Fail> {
    let ca = bulkhead_pki::ca_cert_path(dir);
    if !ca.exists() {
        return Err(Fail(
            EXIT_INVALID,
            format!(
                "{} is missing: {} is not a Bulkhead PKI directory (make one with `bulkctl pki init {}`, or give the cluster's with --pki)",
                ca.display(),
                dir.display(),
                dir.display()
            ),
        ));
    }
    for path in [
        bulkhead_pki::cert_path(dir, identity),
        bulkhead_pki::key_path(dir, identity),
    ] {
        if !path.exists() {
            return Err(Fail(
                EXIT_INVALID,
                format!(
                    "{} is missing: no certificate for identity {identity} (make one with `bulkctl pki issue {} {identity}`, or pick another with --identity)",
                    path.display(),
                    dir.display()
                ),
            ));
        }
    }
    Ok(())
}

/// A connected channel.
#[derive(Debug)]
pub(crate) struct Conn {
    pub channel: Channel,
    pub target: Target,
}

/// What was reached, as messages name it.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub endpoint: String,
    pub pki: PathBuf,
    pub identity: String,
    pub timeout: Duration,
}

/// Every message of an error and its sources, outermost first.
fn chain(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if out.last() != Some(&text) {
            out.push(text);
        }
        cur = s.source();
    }
    out
}

/// Whether an error chain is about TLS rather than the network.
fn is_tls(parts: &[String]) -> bool {
    parts.iter().any(|p| {
        let p = p.to_ascii_lowercase();
        p.contains("certificate")
            || p.contains("tls")
            || p.contains("alert")
            || p.contains("handshake")
    })
}

fn connection_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(s) = cur {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        cur = s.source();
    }
    false
}

impl Conn {
    pub(crate) fn policy(&self) -> PolicyServiceClient<Channel> {
        PolicyServiceClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_ANSWER_BYTES)
            .max_encoding_message_size(MAX_ANSWER_BYTES)
    }
    pub(crate) fn endpoints(&self) -> EndpointServiceClient<Channel> {
        EndpointServiceClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_ANSWER_BYTES)
            .max_encoding_message_size(MAX_ANSWER_BYTES)
    }
    pub(crate) fn cluster(&self) -> ClusterServiceClient<Channel> {
        ClusterServiceClient::new(self.channel.clone()).max_decoding_message_size(MAX_ANSWER_BYTES)
    }
    pub(crate) fn access(&self) -> AccessServiceClient<Channel> {
        AccessServiceClient::new(self.channel.clone()).max_decoding_message_size(MAX_ANSWER_BYTES)
    }
    pub(crate) fn dataplane(&self) -> DataplaneServiceClient<Channel> {
        DataplaneServiceClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_ANSWER_BYTES)
    }

    /// A request carrying the call deadline (`grpc-timeout`).
    pub(crate) fn req<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.set_timeout(self.target.timeout);
        r
    }

    /// Await a call within the deadline; failures become [`Fail`]s.
    /// `method` is `Service/Method`, for messages.
    pub(crate) async fn call<T, F>(&self, method: &str, fut: F) -> Result<T, Fail>
    where
        F: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.call_within(self.target.timeout, method, fut).await
    }

    pub(crate) async fn call_within<T, F>(
        &self,
        limit: Duration,
        method: &str,
        fut: F,
    ) -> Result<T, Fail>
    where
        F: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        match tokio::time::timeout(limit, fut).await {
            Err(_) => Err(self.target.timed_out(method)),
            Ok(Err(status)) => Err(self.target.status_fail(method, &status)),
            Ok(Ok(r)) => Ok(r.into_inner()),
        }
    }
}

impl Target {
    pub(crate) fn timed_out(&self, what: &str) -> Fail {
        Fail(
            EXIT_UNAVAILABLE,
            format!(
                "{}: no answer from {} within {} (raise --timeout)",
                what,
                self.endpoint,
                human(self.timeout)
            ),
        )
    }

    /// A connection that could not be made.
    pub(crate) fn unreachable(&self, e: &(dyn std::error::Error + 'static)) -> Fail {
        let parts = chain(e);
        let deepest = parts.last().cloned().unwrap_or_default();
        let msg = if connection_refused(e) {
            format!("cannot reach {}: connection refused", self.endpoint)
        } else if is_tls(&parts) {
            let host =
                split_endpoint(&self.endpoint).map_or_else(|_| self.endpoint.clone(), |(h, _)| h);
            format!(
                "cannot reach {}: TLS handshake failed: {deepest} (is {} the cluster's PKI, and does the member's certificate name {host}?)",
                self.endpoint,
                self.pki.display(),
            )
        } else {
            format!("cannot reach {}: {deepest}", self.endpoint)
        };
        Fail(EXIT_UNAVAILABLE, msg)
    }

    /// A call that failed in the transport, after the connection was made:
    /// the member closed it or TLS failed (with TLS 1.3 a server refuses a
    /// client certificate after the client thinks the handshake is done).
    fn transport_fail(&self, src: &(dyn std::error::Error + 'static)) -> Fail {
        let parts = chain(src);
        let cert = bulkhead_pki::cert_path(&self.pki, &self.identity);
        let msg = if is_tls(&parts) {
            let deepest = parts.last().cloned().unwrap_or_default();
            format!(
                "{} refused the TLS session: {deepest} (is the TLS client certificate {} signed by the cluster's CA?)",
                self.endpoint,
                cert.display()
            )
        } else if parts.iter().any(|p| {
            let p = p.to_ascii_lowercase();
            ["connection closed", "broken pipe", "connection reset"]
                .iter()
                .any(|c| p.contains(c))
        }) {
            format!(
                "{} closed the connection during the call (a member refuses a TLS client certificate its CA did not sign: is {} from the cluster's PKI?)",
                self.endpoint,
                cert.display()
            )
        } else {
            return self.unreachable(src);
        };
        Fail(EXIT_UNAVAILABLE, msg)
    }

    /// A call the server (or the transport) failed.
    pub(crate) fn status_fail(&self, method: &str, s: &Status) -> Fail {
        let code = exit_code(s.code());
        // A status made by the transport (not the server) carries the error.
        if let Some(src) = std::error::Error::source(s) {
            return self.transport_fail(src);
        }
        let text = s.message().trim();
        let msg = match s.code() {
            Code::DeadlineExceeded if text.is_empty() => {
                format!("{method}: deadline exceeded after {}", human(self.timeout))
            }
            Code::Unimplemented => format!(
                "{method} is not implemented by {}{}",
                self.endpoint,
                if text.is_empty() {
                    String::new()
                } else {
                    format!(": {text}")
                }
            ),
            _ if text.is_empty() => format!("{method}: {}", s.code().description()),
            _ => text.to_owned(),
        };
        Fail(code, msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_exit() {
        let cases = [
            (Code::Ok, 0),
            (Code::InvalidArgument, 2),
            (Code::OutOfRange, 2),
            (Code::PermissionDenied, 3),
            (Code::Unauthenticated, 3),
            (Code::FailedPrecondition, 3),
            (Code::NotFound, 3),
            (Code::AlreadyExists, 3),
            (Code::Aborted, 3),
            (Code::Unavailable, 4),
            (Code::DeadlineExceeded, 4),
            (Code::Cancelled, 4),
            (Code::ResourceExhausted, 4),
            (Code::Internal, 1),
            (Code::Unknown, 1),
            (Code::Unimplemented, 1),
            (Code::DataLoss, 1),
        ];
        for (code, exit) in cases {
            assert_eq!(exit_code(code), exit, "{code:?}");
        }
    }

    fn conn() -> Target {
        Target {
            endpoint: "10.0.0.1:7443".into(),
            pki: "/etc/bulkhead/pki".into(),
            identity: "ops-bot".into(),
            timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn server_messages_pass_through_with_their_exit() {
        let c = conn();
        let Fail(code, msg) = c.status_fail(
            "PolicyService/Apply",
            &Status::permission_denied(
                "identity ops-bot has role viewer; PolicyService/Apply needs admin",
            ),
        );
        assert_eq!(code, 3);
        assert_eq!(
            msg,
            "identity ops-bot has role viewer; PolicyService/Apply needs admin"
        );
        let Fail(code, msg) = c.status_fail(
            "PolicyService/Apply",
            &Status::unavailable("no quorum: 1 of 3 members reachable"),
        );
        assert_eq!(
            (code, msg.as_str()),
            (4, "no quorum: 1 of 3 members reachable")
        );
        let Fail(code, msg) = c.status_fail(
            "PolicyService/Apply",
            &Status::invalid_argument(
                "p.yaml:3:1: error: unknown segment\npolicy is invalid: 1 error(s)",
            ),
        );
        assert_eq!(code, 2);
        assert!(msg.contains('\n'), "{msg}");
        let Fail(code, msg) = c.status_fail("ClusterService/Status", &Status::not_found(""));
        assert_eq!(
            (code, msg.as_str()),
            (
                3,
                "ClusterService/Status: Some requested entity was not found"
            )
        );
        let Fail(code, msg) = c.status_fail("X/Y", &Status::unimplemented(""));
        assert_eq!(
            (code, msg.as_str()),
            (1, "X/Y is not implemented by 10.0.0.1:7443")
        );
    }

    #[test]
    fn refused_connections_are_named() {
        let c = conn();
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let Fail(code, msg) = c.unreachable(&io);
        assert_eq!(
            (code, msg.as_str()),
            (4, "cannot reach 10.0.0.1:7443: connection refused")
        );
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "invalid peer certificate: UnknownIssuer",
        );
        let Fail(code, msg) = c.unreachable(&io);
        assert_eq!(code, 4);
        assert!(
            msg.contains("TLS handshake failed: invalid peer certificate"),
            "{msg}"
        );
    }

    #[test]
    fn endpoints_split_into_host_and_port() {
        assert_eq!(
            split_endpoint("10.0.0.1:7443"),
            Ok(("10.0.0.1".into(), 7443))
        );
        assert_eq!(split_endpoint("[::1]:7443"), Ok(("::1".into(), 7443)));
        assert_eq!(
            split_endpoint("gw-1.lab:7443"),
            Ok(("gw-1.lab".into(), 7443))
        );
        for bad in [
            "10.0.0.1",
            ":7443",
            "10.0.0.1:x",
            "::1:7443",
            "10.0.0.1:70000",
        ] {
            assert!(split_endpoint(bad).is_err(), "{bad}");
        }
    }
}

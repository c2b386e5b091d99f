//! Mutual TLS from a PKI directory, and the identity of a verified peer.

use std::path::Path;
use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::files::{self, ca_cert_path, cert_path, key_path};
use crate::PkiError;

/// Longest a server waits for a client to finish the TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Server side: present `dir/NAME.crt` and require every client to present a
/// certificate signed by the CA in `dir` (connections without one are
/// refused during the handshake, as are handshakes slower than
/// [`TLS_HANDSHAKE_TIMEOUT`]).
pub fn server_tls(dir: &Path, name: &str) -> Result<ServerTlsConfig, PkiError> {
    let (ca, identity) = load(dir, name)?;
    Ok(ServerTlsConfig::new()
        .identity(identity)
        .client_ca_root(ca)
        .client_auth_optional(false)
        .timeout(TLS_HANDSHAKE_TIMEOUT))
}

/// Client side: present `dir/IDENTITY.crt`, trust only the CA in `dir`, and
/// expect the server's certificate to name `server_name` (an IP address
/// matches an IP SAN: members are reached by address).
pub fn client_tls(
    dir: &Path,
    identity: &str,
    server_name: &str,
) -> Result<ClientTlsConfig, PkiError> {
    let (ca, identity) = load(dir, identity)?;
    Ok(ClientTlsConfig::new()
        .ca_certificate(ca)
        .identity(identity)
        .domain_name(server_name))
}

/// Read and check the CA certificate and one identity's certificate and key.
fn load(dir: &Path, name: &str) -> Result<(Certificate, Identity), PkiError> {
    crate::check_identity_name(name)?;
    let ca_path = ca_cert_path(dir);
    if !ca_path.exists() {
        return Err(PkiError::NoCa {
            dir: dir.to_owned(),
            path: ca_path,
        });
    }
    let ca = files::read(&ca_path)?;
    check_cert_pem(&ca_path, &ca)?;
    let crt_path = cert_path(dir, name);
    let crt = files::read(&crt_path)?;
    check_cert_pem(&crt_path, &crt)?;
    let key_path = key_path(dir, name);
    let key = files::read(&key_path)?;
    rcgen::KeyPair::from_pem(&key).map_err(|e| PkiError::BadFile {
        path: key_path,
        reason: format!("not a private key: {e}"),
    })?;
    Ok((Certificate::from_pem(ca), Identity::from_pem(crt, key)))
}

fn check_cert_pem(path: &Path, pem: &str) -> Result<(), PkiError> {
    let bad = |reason: String| PkiError::BadFile {
        path: path.to_owned(),
        reason,
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| bad(format!("not a PEM certificate: {e}")))?;
    pem.parse_x509()
        .map_err(|e| bad(format!("not an X.509 certificate: {e}")))?;
    Ok(())
}

/// The identity of a peer: the common name of its certificate (DER), which
/// the TLS handshake has already verified against the CA. Refuses a
/// certificate with no common name, with several, or with one that is not a
/// valid identity name.
pub fn identity_of(cert_der: &[u8]) -> Result<String, PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| PkiError::BadCertificate(format!("cannot parse: {e}")))?;
    let mut cns = cert.subject().iter_common_name();
    let cn = cns
        .next()
        .ok_or_else(|| PkiError::BadCertificate("no common name".into()))?;
    if cns.next().is_some() {
        return Err(PkiError::BadCertificate("several common names".into()));
    }
    let cn = cn
        .as_str()
        .map_err(|e| PkiError::BadCertificate(format!("common name is not text: {e}")))?;
    bulkhead_policy::check_name(cn).map_err(|reason| {
        PkiError::BadCertificate(format!("common name {cn:?} is not an identity: {reason}"))
    })?;
    Ok(cn.to_owned())
}

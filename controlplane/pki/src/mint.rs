//! Minting: the CA ([`init`]) and the identities it signs ([`issue`]).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::files::{self, ca_cert_path, ca_key_path, cert_path, key_path, CERT_MODE, KEY_MODE};
use crate::{check_identity_name, PkiError, ADMIN_IDENTITY, CA_VALID_DAYS, CERT_VALID_DAYS};

/// Longest DNS name accepted as a host.
const MAX_DNS_NAME: usize = 253;

/// The files of one issued identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    pub name: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The files [`init`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Initialised {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub admin: Issued,
}

/// Make a new CA in `dir` (created if missing) and an [`ADMIN_IDENTITY`]
/// identity signed by it. Refuses, writing nothing, if `dir` already holds a
/// CA or an `admin` identity.
pub fn init(dir: &Path) -> Result<Initialised, PkiError> {
    for path in [ca_cert_path(dir), ca_key_path(dir)] {
        if path.exists() {
            return Err(PkiError::CaExists {
                dir: dir.to_owned(),
                path,
            });
        }
    }
    files::refuse_existing(&cert_path(dir, ADMIN_IDENTITY))?;
    files::refuse_existing(&key_path(dir, ADMIN_IDENTITY))?;
    std::fs::create_dir_all(dir).map_err(|source| PkiError::Write {
        path: dir.to_owned(),
        source,
    })?;

    let ca_key = KeyPair::generate()?;
    let params = ca_params(OffsetDateTime::now_utc())?;
    let ca_cert = params.self_signed(&ca_key)?;
    // The key first: a half-written CA is then refused by the next `init`.
    files::write_new(&ca_key_path(dir), &ca_key.serialize_pem(), KEY_MODE)?;
    files::write_new(&ca_cert_path(dir), &ca_cert.pem(), CERT_MODE)?;

    let issuer = Issuer::new(params, ca_key);
    let admin = sign_and_write(dir, ADMIN_IDENTITY, &[], &issuer)?;
    Ok(Initialised {
        ca_cert: ca_cert_path(dir),
        ca_key: ca_key_path(dir),
        admin,
    })
}

/// Issue `dir/NAME.crt` and `dir/NAME.key`, signed by the CA in `dir`:
/// common name NAME, `hosts` as subject alternative names (IP addresses as
/// IP SANs, anything else as DNS names), usable as TLS server and client
/// certificate. Refuses an invalid name or host and an existing identity.
pub fn issue(dir: &Path, name: &str, hosts: &[String]) -> Result<Issued, PkiError> {
    check_identity_name(name)?;
    let sans = hosts
        .iter()
        .map(|h| san_of(h))
        .collect::<Result<Vec<_>, _>>()?;
    let (ca_pem, key_pem) = files::read_ca(dir)?;
    let ca_key = KeyPair::from_pem(&key_pem).map_err(|e| PkiError::BadFile {
        path: ca_key_path(dir),
        reason: format!("not a private key: {e}"),
    })?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(|e| PkiError::BadFile {
        path: ca_cert_path(dir),
        reason: format!("not a CA certificate: {e}"),
    })?;
    sign_and_write(dir, name, &sans, &issuer)
}

fn ca_params(now: OffsetDateTime) -> Result<CertificateParams, PkiError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(DnType::CommonName, "Bulkhead cluster CA");
    p.distinguished_name
        .push(DnType::OrganizationName, "Bulkhead");
    // Leaves only: no intermediate CAs below this one.
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = now - Duration::hours(1);
    p.not_after = now + Duration::days(CA_VALID_DAYS);
    Ok(p)
}

fn leaf_params(name: &str, sans: &[SanType], now: OffsetDateTime) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, name);
    p.subject_alt_names = sans.to_vec();
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.use_authority_key_identifier_extension = true;
    // An hour back tolerates clocks a little behind the CA's host.
    p.not_before = now - Duration::hours(1);
    p.not_after = now + Duration::days(CERT_VALID_DAYS);
    p
}

fn sign_and_write(
    dir: &Path,
    name: &str,
    sans: &[SanType],
    issuer: &Issuer<'_, KeyPair>,
) -> Result<Issued, PkiError> {
    let cert = cert_path(dir, name);
    let key = key_path(dir, name);
    files::refuse_existing(&cert)?;
    files::refuse_existing(&key)?;
    let leaf_key = KeyPair::generate()?;
    let signed = leaf_params(name, sans, OffsetDateTime::now_utc()).signed_by(&leaf_key, issuer)?;
    files::write_new(&key, &leaf_key.serialize_pem(), KEY_MODE)?;
    files::write_new(&cert, &signed.pem(), CERT_MODE)?;
    Ok(Issued {
        name: name.to_owned(),
        cert,
        key,
    })
}

/// A host as a subject alternative name: an IP address, or a DNS name of
/// letters, digits, `-` and `.` (a leading `*.` wildcard is not accepted).
fn san_of(host: &str) -> Result<SanType, PkiError> {
    let bad = |reason: &str| PkiError::InvalidHost {
        host: host.to_owned(),
        reason: reason.to_owned(),
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    if host.is_empty() {
        return Err(bad("is empty"));
    }
    if host.len() > MAX_DNS_NAME {
        return Err(bad("is longer than 253 bytes"));
    }
    let labels_ok = host.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    if !labels_ok {
        return Err(bad(
            "is neither an IP address nor a DNS name (labels of letters, digits and '-', separated by '.')",
        ));
    }
    let name = host
        .to_owned()
        .try_into()
        .map_err(|e: rcgen::Error| bad(&e.to_string()))?;
    Ok(SanType::DnsName(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_become_ip_or_dns_sans() {
        assert!(matches!(san_of("10.0.0.1"), Ok(SanType::IpAddress(_))));
        assert!(matches!(san_of("::1"), Ok(SanType::IpAddress(_))));
        assert!(matches!(san_of("gw-1.lab"), Ok(SanType::DnsName(_))));
        for bad in ["", "a..b", "-a", "a b", "*.lab", "10.0.0.1:80", "é.lab"] {
            assert!(
                matches!(san_of(bad), Err(PkiError::InvalidHost { .. })),
                "{bad}"
            );
        }
    }
}

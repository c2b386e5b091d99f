//! The Bulkhead lab PKI: one certificate authority per cluster, and the
//! certificates of members (appliances) and clients (operators, bots) signed
//! by it; plus the mutual-TLS configurations `bulkctl` and `bulkheadd` build
//! from those files, and the identity (common name) of a verified peer.
//!
//! Layout of a PKI directory: `ca.crt`, `ca.key`, and `NAME.crt` /
//! `NAME.key` for each identity. [`init`] makes the CA and an `admin`
//! identity; [`issue`] signs one more identity.
//!
//! Invariants: an existing CA is never overwritten, nor an existing
//! identity; key files are created with mode 0600; every issued certificate
//! carries its name as common name, validated with the same rules as a
//! policy name (`[A-Za-z0-9_.-]`, at most 128 bytes), and serves both as a
//! TLS server and a TLS client certificate. This is a lab PKI: keys are
//! plain files, nothing is revoked here (roles are revoked in the replicated
//! state instead).
#![forbid(unsafe_code)]

mod files;
mod mint;
mod tls;

use std::path::PathBuf;

pub use files::{ca_cert_path, ca_key_path, cert_path, key_path};
pub use mint::{init, issue, Initialised, Issued};
pub use tls::{client_tls, identity_of, server_tls, TLS_HANDSHAKE_TIMEOUT};

/// The identity [`init`] issues besides the CA.
pub const ADMIN_IDENTITY: &str = "admin";

/// Names that cannot be issued: they would collide with the CA's files.
pub const RESERVED_NAMES: &[&str] = &["ca"];

/// How long the CA is valid, in days.
pub const CA_VALID_DAYS: i64 = 3650;

/// How long an issued certificate is valid, in days.
pub const CERT_VALID_DAYS: i64 = 825;

/// Everything that can go wrong in the PKI, with the file or value concerned.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("invalid name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("invalid host {host:?}: {reason} (give an IP address or a DNS name)")]
    InvalidHost { host: String, reason: String },
    #[error("{} already holds a CA ({} exists); refusing to overwrite it", dir.display(), path.display())]
    CaExists { dir: PathBuf, path: PathBuf },
    #[error("{} already exists; refusing to overwrite it", path.display())]
    Exists { path: PathBuf },
    #[error("no CA in {}: {} is missing (run `bulkctl pki init {}` first)", dir.display(), path.display(), dir.display())]
    NoCa { dir: PathBuf, path: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    BadFile { path: PathBuf, reason: String },
    #[error("cannot make a certificate: {0}")]
    Mint(#[from] rcgen::Error),
    #[error("peer certificate: {0}")]
    BadCertificate(String),
}

/// Check an identity name: the rules of a policy name, and not reserved.
pub fn check_identity_name(name: &str) -> Result<(), PkiError> {
    bulkhead_policy::check_name(name).map_err(|reason| PkiError::InvalidName {
        name: name.to_owned(),
        reason,
    })?;
    if RESERVED_NAMES.contains(&name) {
        return Err(PkiError::InvalidName {
            name: name.to_owned(),
            reason: "is reserved for the CA's own files".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_policy_rules() {
        for ok in ["gw-1", "ops.bot", "a_b", "A9", &"x".repeat(128)] {
            assert!(check_identity_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-x",
            ".hidden",
            "a/b",
            "../x",
            "a b",
            "é",
            "ca",
            &"x".repeat(129),
        ] {
            assert!(
                matches!(check_identity_name(bad), Err(PkiError::InvalidName { .. })),
                "{bad}"
            );
        }
    }
}

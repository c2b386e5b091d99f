//! The lab PKI on real files: what `init` and `issue` write, and what they refuse.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use bulkhead_pki::{identity_of, init, issue, PkiError};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::*;

fn der_of(path: &Path) -> Vec<u8> {
    let pem = std::fs::read(path).expect("read cert");
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).expect("pem");
    pem.contents
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

#[test]
fn init_writes_a_ca_and_an_admin_identity() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("pki");
    let done = init(&dir).expect("init");
    for f in ["ca.crt", "ca.key", "admin.crt", "admin.key"] {
        assert!(dir.join(f).is_file(), "{f} written");
    }
    assert_eq!(mode(&dir.join("ca.key")), 0o600);
    assert_eq!(mode(&dir.join("admin.key")), 0o600);
    assert_eq!(done.admin.name, "admin");

    let ca_der = der_of(&done.ca_cert);
    let (_, ca) = parse_x509_certificate(&ca_der).expect("ca parses");
    assert!(ca.is_ca());
    let admin_der = der_of(&done.admin.cert);
    assert_eq!(identity_of(&admin_der).expect("cn"), "admin");
    let (_, admin) = parse_x509_certificate(&admin_der).expect("admin parses");
    assert_eq!(admin.issuer(), ca.subject());
    assert!(admin.verify_signature(Some(ca.public_key())).is_ok());
}

#[test]
fn issue_sets_cn_sans_and_both_usages() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    init(dir).expect("init");
    let hosts = vec!["127.0.0.1".to_owned(), "::1".into(), "gw-1.lab".into()];
    let done = issue(dir, "gw-1", &hosts).expect("issue");
    assert_eq!(done.cert, dir.join("gw-1.crt"));
    assert_eq!(mode(&done.key), 0o600);

    let der = der_of(&done.cert);
    assert_eq!(identity_of(&der).expect("cn"), "gw-1");
    let (_, cert) = parse_x509_certificate(&der).expect("parses");
    assert!(!cert.is_ca());
    let san = cert
        .subject_alternative_name()
        .expect("one SAN extension")
        .expect("SAN present");
    let mut ips = Vec::new();
    let mut dns = Vec::new();
    for n in &san.value.general_names {
        match n {
            GeneralName::IPAddress(b) => {
                let ip = match b.len() {
                    4 => IpAddr::from(<[u8; 4]>::try_from(*b).expect("v4")),
                    _ => IpAddr::from(<[u8; 16]>::try_from(*b).expect("v6")),
                };
                ips.push(ip.to_string());
            }
            GeneralName::DNSName(d) => dns.push((*d).to_owned()),
            other => panic!("unexpected SAN {other:?}"),
        }
    }
    assert_eq!(ips, ["127.0.0.1", "::1"]);
    assert_eq!(dns, ["gw-1.lab"]);
    let eku = cert
        .extended_key_usage()
        .expect("one EKU extension")
        .expect("EKU present");
    assert!(eku.value.server_auth && eku.value.client_auth);

    let ca_der = der_of(&dir.join("ca.crt"));
    let (_, ca) = parse_x509_certificate(&ca_der).expect("ca parses");
    assert!(cert.verify_signature(Some(ca.public_key())).is_ok());
}

#[test]
fn init_refuses_to_overwrite_a_ca() {
    let tmp = tempfile::tempdir().expect("tempdir");
    init(tmp.path()).expect("first init");
    let before = std::fs::read(tmp.path().join("ca.key")).expect("key");
    let err = init(tmp.path()).expect_err("second init refused");
    assert!(matches!(err, PkiError::CaExists { .. }), "{err}");
    assert!(err.to_string().contains("refusing to overwrite"), "{err}");
    assert_eq!(
        std::fs::read(tmp.path().join("ca.key")).expect("key"),
        before
    );
}

#[test]
fn issue_refuses_bad_names_hosts_existing_identities_and_a_missing_ca() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let err = issue(dir, "gw-1", &[]).expect_err("no CA yet");
    assert!(matches!(err, PkiError::NoCa { .. }), "{err}");
    assert!(err.to_string().contains("pki init"), "{err}");

    init(dir).expect("init");
    for bad in ["", "../evil", "a/b", "has space", "ca", &"n".repeat(129)] {
        let err = issue(dir, bad, &[]).expect_err("bad name refused");
        assert!(matches!(err, PkiError::InvalidName { .. }), "{bad}: {err}");
    }
    let err = issue(dir, "gw-2", &["not a host".into()]).expect_err("bad host");
    assert!(matches!(err, PkiError::InvalidHost { .. }), "{err}");
    assert!(!dir.join("gw-2.crt").exists(), "nothing written on refusal");

    issue(dir, "gw-3", &[]).expect("issue");
    let err = issue(dir, "gw-3", &[]).expect_err("exists");
    assert!(matches!(err, PkiError::Exists { .. }), "{err}");
    let err = issue(dir, "admin", &[]).expect_err("admin exists");
    assert!(matches!(err, PkiError::Exists { .. }), "{err}");
}

#[test]
fn tls_configs_need_the_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    assert!(matches!(
        bulkhead_pki::server_tls(dir, "gw-1"),
        Err(PkiError::NoCa { .. })
    ));
    init(dir).expect("init");
    assert!(bulkhead_pki::client_tls(dir, "admin", "127.0.0.1").is_ok());
    assert!(matches!(
        bulkhead_pki::server_tls(dir, "gw-1"),
        Err(PkiError::Read { .. })
    ));
    std::fs::write(dir.join("bad.crt"), "junk").expect("write");
    std::fs::write(dir.join("bad.key"), "junk").expect("write");
    assert!(matches!(
        bulkhead_pki::client_tls(dir, "bad", "x"),
        Err(PkiError::BadFile { .. })
    ));
}

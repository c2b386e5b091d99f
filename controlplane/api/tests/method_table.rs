//! The authorisation table covers every method of the generated services,
//! and names nothing that does not exist.

use bulkhead_api::authz::METHOD_ROLES;
use bulkhead_api::{required, Need};
use prost::Message;

fn methods() -> Vec<(String, String)> {
    let set = prost_types::FileDescriptorSet::decode(bulkhead_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set decodes");
    let mut out = Vec::new();
    for file in set.file {
        if file.package() != bulkhead_proto::PACKAGE {
            continue;
        }
        for svc in &file.service {
            for m in &svc.method {
                out.push((
                    svc.name().to_owned(),
                    format!("/{}.{}/{}", file.package(), svc.name(), m.name()),
                ));
            }
        }
    }
    out
}

#[test]
fn every_method_has_an_explicit_rule() {
    let all = methods();
    assert!(all.len() > 20, "{all:?}");
    for (svc, path) in &all {
        if svc == "PeerService" {
            assert_eq!(required(path), Need::Member, "{path}");
        } else {
            assert!(
                METHOD_ROLES.iter().any(|(p, _)| p == path),
                "{path} missing from METHOD_ROLES (it would need admin by default)"
            );
        }
    }
    for (p, _) in METHOD_ROLES {
        assert!(all.iter().any(|(_, path)| path == p), "{p} is not a method");
    }
}

#[test]
fn every_service_is_listed() {
    let mut services: Vec<String> = methods()
        .into_iter()
        .map(|(s, _)| format!("bulkhead.v1.{s}"))
        .collect();
    services.dedup();
    assert_eq!(services, bulkhead_proto::SERVICES);
}

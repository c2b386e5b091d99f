//! Authorisation: the role each gRPC method needs, and the decision for one
//! call from one identity.

use crate::Role;

/// Where the role grants and the cluster membership live (the replicated
/// state, in `bulkheadd`). Read on every call, so a revocation takes effect
/// on the next call.
pub trait Grants: Send + Sync {
    /// The role granted to `identity`, if any.
    fn role_of(&self, identity: &str) -> Option<Role>;
    /// Whether `identity` is a current cluster member (may speak the peer protocol).
    fn is_member(&self, identity: &str) -> bool;
}

/// Told about every refused call.
pub trait AuditSink: Send + Sync {
    /// `identity` is empty when the caller presented no usable certificate;
    /// `method` is the gRPC path (`/bulkhead.v1.PolicyService/Apply`);
    /// `reason` is the message sent to the caller.
    fn refused(&self, identity: &str, method: &str, reason: &str);
}

/// What a method needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Any identity with a valid certificate (health, reflection).
    Open,
    /// An identity granted at least this role.
    Role(Role),
    /// A current cluster member (the peer protocol); roles do not count.
    Member,
}

const PEER_SERVICE: &str = "/bulkhead.v1.PeerService/";

/// Methods a cluster member may call without a role (besides the peer
/// service): `ClusterService/MemberState`, which `Status` asks every member,
/// and `Status`, which a joining member asks to learn who its peers are.
pub const MEMBER_ALSO: &[&str] = &[
    "/bulkhead.v1.ClusterService/MemberState",
    "/bulkhead.v1.ClusterService/Status",
];

/// Services open to any verified identity.
const OPEN_SERVICES: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// Every `bulkhead.v1` client method and the role it needs. Viewers read
/// everything; operators also change endpoints and flush connections;
/// admins also change policy, membership and access.
pub const METHOD_ROLES: &[(&str, Role)] = {
    use Role::{Admin, Operator, Viewer};
    &[
        ("/bulkhead.v1.PolicyService/Apply", Admin),
        ("/bulkhead.v1.PolicyService/Validate", Viewer),
        ("/bulkhead.v1.PolicyService/Get", Viewer),
        ("/bulkhead.v1.PolicyService/History", Viewer),
        ("/bulkhead.v1.PolicyService/Diff", Viewer),
        ("/bulkhead.v1.PolicyService/Rollback", Admin),
        ("/bulkhead.v1.PolicyService/Check", Viewer),
        ("/bulkhead.v1.EndpointService/Add", Operator),
        ("/bulkhead.v1.EndpointService/Remove", Operator),
        ("/bulkhead.v1.EndpointService/List", Viewer),
        ("/bulkhead.v1.ClusterService/Status", Viewer),
        ("/bulkhead.v1.ClusterService/AddMember", Admin),
        ("/bulkhead.v1.ClusterService/RemoveMember", Admin),
        ("/bulkhead.v1.ClusterService/TransferLeader", Admin),
        ("/bulkhead.v1.ClusterService/MemberState", Viewer),
        ("/bulkhead.v1.AccessService/Grant", Admin),
        ("/bulkhead.v1.AccessService/Revoke", Admin),
        ("/bulkhead.v1.AccessService/List", Viewer),
        ("/bulkhead.v1.AccessService/Audit", Viewer),
        ("/bulkhead.v1.DataplaneService/Counters", Viewer),
        ("/bulkhead.v1.DataplaneService/Connections", Viewer),
        ("/bulkhead.v1.DataplaneService/Flows", Viewer),
        ("/bulkhead.v1.DataplaneService/Flush", Operator),
    ]
};

/// What calling `path` (a gRPC path, `/package.Service/Method`) needs. The
/// whole peer service needs membership; an unknown method needs admin.
pub fn required(path: &str) -> Need {
    if path.starts_with(PEER_SERVICE) {
        return Need::Member;
    }
    if OPEN_SERVICES.iter().any(|s| path.starts_with(s)) {
        return Need::Open;
    }
    METHOD_ROLES
        .iter()
        .find(|(p, _)| *p == path)
        .map_or(Need::Role(Role::Admin), |&(_, r)| Need::Role(r))
}

/// The authorised caller of a call; put into the request's extensions for
/// the service implementations (`request.extensions().get::<Caller>()`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Common name of the client certificate.
    pub identity: String,
    /// Role granted at the time of the call (`None` for open services and
    /// for members calling the peer service without a role).
    pub role: Option<Role>,
}

/// A refused call: the gRPC code and a message a person can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: tonic::Code,
    pub message: String,
}

impl Refusal {
    pub fn to_status(&self) -> tonic::Status {
        tonic::Status::new(self.code, self.message.clone())
    }
}

/// `PolicyService/Apply` for `/bulkhead.v1.PolicyService/Apply`: the part a
/// person reads in messages.
pub fn short_method(path: &str) -> &str {
    let trimmed = path.trim_start_matches('/');
    match trimmed.split_once('/') {
        Some((service, method)) if !method.is_empty() => {
            let svc_start = service.rfind('.').map_or(0, |i| i + 1);
            &trimmed[svc_start..]
        }
        _ => path,
    }
}

/// Decide whether `identity` may call `path`.
pub fn decide(grants: &dyn Grants, identity: &str, path: &str) -> Result<Caller, Refusal> {
    let method = short_method(path);
    let denied = |message: String| Refusal {
        code: tonic::Code::PermissionDenied,
        message,
    };
    match required(path) {
        Need::Open => Ok(Caller {
            identity: identity.to_owned(),
            role: grants.role_of(identity),
        }),
        Need::Member => {
            if grants.is_member(identity) {
                Ok(Caller {
                    identity: identity.to_owned(),
                    role: grants.role_of(identity),
                })
            } else {
                Err(denied(format!(
                    "identity {identity} is not a cluster member; {method} is only for cluster members"
                )))
            }
        }
        Need::Role(_) if MEMBER_ALSO.contains(&path) && grants.is_member(identity) => Ok(Caller {
            identity: identity.to_owned(),
            role: grants.role_of(identity),
        }),
        Need::Role(needed) => {
            let unknown = if METHOD_ROLES.iter().any(|(p, _)| *p == path) {
                ""
            } else {
                " (unknown method)"
            };
            match grants.role_of(identity) {
                Some(role) if role.allows(needed) => Ok(Caller {
                    identity: identity.to_owned(),
                    role: Some(role),
                }),
                Some(role) => Err(denied(format!(
                    "identity {identity} has role {role}; {method} needs {needed}{unknown}"
                ))),
                None => Err(denied(format!(
                    "identity {identity} has no role; {method} needs {needed}{unknown} (an admin can grant one)"
                ))),
            }
        }
    }
}

/// The refusal for a call without a usable client certificate.
pub fn unauthenticated(path: &str, why: &str) -> Refusal {
    Refusal {
        code: tonic::Code::Unauthenticated,
        message: format!(
            "{}: {why}; present a client certificate signed by the cluster CA",
            short_method(path)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    struct Table {
        roles: HashMap<&'static str, Role>,
        members: HashSet<&'static str>,
    }

    impl Grants for Table {
        fn role_of(&self, identity: &str) -> Option<Role> {
            self.roles.get(identity).copied()
        }
        fn is_member(&self, identity: &str) -> bool {
            self.members.contains(identity)
        }
    }

    fn table() -> Table {
        Table {
            roles: HashMap::from([
                ("ops-bot", Role::Viewer),
                ("oper", Role::Operator),
                ("root", Role::Admin),
            ]),
            members: HashSet::from(["gw-1"]),
        }
    }

    #[test]
    fn table_follows_the_roles() {
        assert_eq!(
            required("/bulkhead.v1.PolicyService/Apply"),
            Need::Role(Role::Admin)
        );
        assert_eq!(
            required("/bulkhead.v1.EndpointService/Add"),
            Need::Role(Role::Operator)
        );
        assert_eq!(
            required("/bulkhead.v1.DataplaneService/Flows"),
            Need::Role(Role::Viewer)
        );
        assert_eq!(required("/bulkhead.v1.PeerService/Send"), Need::Member);
        assert_eq!(required("/bulkhead.v1.PeerService/Nope"), Need::Member);
        assert_eq!(required("/grpc.health.v1.Health/Check"), Need::Open);
        assert_eq!(required("/x.Y/Z"), Need::Role(Role::Admin));
        assert_eq!(
            required("/bulkhead.v1.PolicyService/Unknown"),
            Need::Role(Role::Admin)
        );
    }

    #[test]
    fn decisions_name_identity_role_and_need() {
        let t = table();
        let r = decide(&t, "ops-bot", "/bulkhead.v1.PolicyService/Apply").expect_err("viewer");
        assert_eq!(r.code, tonic::Code::PermissionDenied);
        assert_eq!(
            r.message,
            "identity ops-bot has role viewer; PolicyService/Apply needs admin"
        );
        let ok = decide(&t, "oper", "/bulkhead.v1.DataplaneService/Flush").expect("operator");
        assert_eq!(ok.role, Some(Role::Operator));
        assert!(decide(&t, "root", "/bulkhead.v1.AccessService/Grant").is_ok());
        let r = decide(&t, "nobody", "/bulkhead.v1.PolicyService/Get").expect_err("no role");
        assert!(
            r.message.contains("identity nobody has no role"),
            "{}",
            r.message
        );
        let r = decide(&t, "root", "/bulkhead.v1.PeerService/Send").expect_err("not member");
        assert!(r.message.contains("not a cluster member"), "{}", r.message);
        assert!(decide(&t, "gw-1", "/bulkhead.v1.PeerService/Forward").is_ok());
        assert!(decide(&t, "gw-1", "/bulkhead.v1.ClusterService/MemberState").is_ok());
        // A joining member asks Status to learn its peers; members read nothing else.
        assert!(decide(&t, "gw-1", "/bulkhead.v1.ClusterService/Status").is_ok());
        assert!(decide(&t, "gw-1", "/bulkhead.v1.PolicyService/Get").is_err());
        assert!(decide(&t, "nobody", "/grpc.health.v1.Health/Check").is_ok());
        let r = decide(&t, "oper", "/x.Y/Z").expect_err("unknown needs admin");
        assert!(
            r.message.contains("Y/Z needs admin (unknown method)"),
            "{}",
            r.message
        );
    }

    #[test]
    fn short_method_keeps_service_and_method() {
        assert_eq!(
            short_method("/bulkhead.v1.PolicyService/Apply"),
            "PolicyService/Apply"
        );
        assert_eq!(short_method("/Svc/M"), "Svc/M");
        assert_eq!(short_method("garbage"), "garbage");
    }
}

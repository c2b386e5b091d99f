//! Roles, ordered: admin ≥ operator ≥ viewer.

use std::fmt;
use std::str::FromStr;

use bulkhead_proto::v1;

/// What an identity may do; each role includes every role below it (the
/// derived order is the inclusion order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads everything.
    Viewer,
    /// Also adds and removes endpoints and flushes connections.
    Operator,
    /// Also applies and rolls back policy, changes membership, grants roles.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    /// Lower-case name: `viewer`, `operator`, `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Whether this role includes `needed`.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }

    /// The wire enum; `None` for `ROLE_UNSPECIFIED` and unknown values.
    pub fn from_proto(value: i32) -> Option<Role> {
        match v1::Role::try_from(value).ok()? {
            v1::Role::Unspecified => None,
            v1::Role::Viewer => Some(Role::Viewer),
            v1::Role::Operator => Some(Role::Operator),
            v1::Role::Admin => Some(Role::Admin),
        }
    }

    pub fn to_proto(self) -> v1::Role {
        match self {
            Role::Viewer => v1::Role::Viewer,
            Role::Operator => v1::Role::Operator,
            Role::Admin => v1::Role::Admin,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error of [`Role::from_str`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?} (expected viewer, operator or admin)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_inclusion() {
        assert!(Role::Admin > Role::Operator && Role::Operator > Role::Viewer);
        assert!(Role::Admin.allows(Role::Viewer));
        assert!(Role::Operator.allows(Role::Operator));
        assert!(!Role::Viewer.allows(Role::Operator));
        assert!(!Role::Operator.allows(Role::Admin));
    }

    #[test]
    fn names_and_wire_values_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
            assert_eq!(Role::from_proto(r.to_proto() as i32), Some(r));
        }
        assert_eq!("ADMIN".parse::<Role>(), Ok(Role::Admin));
        assert!("root".parse::<Role>().is_err());
        assert_eq!(Role::from_proto(0), None);
        assert_eq!(Role::from_proto(99), None);
    }
}

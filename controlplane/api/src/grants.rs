//! [`StateGrants`]: the auth layer's [`Grants`] and [`AuditSink`] over the
//! replicated state of this member.

use std::sync::Arc;

use bulkhead_cluster::StateWatch;
use tokio::sync::mpsc;

use crate::ctx::Refused;
use crate::{AuditSink, Grants, Role};

/// Roles and membership from the applied state; refusals queued for the
/// replicated audit log (best effort, never blocking the call).
#[derive(Debug)]
pub struct StateGrants {
    watch: StateWatch,
    initial: Vec<String>,
    /// The first admins of the configuration: admins on a founding member
    /// until the cluster's bootstrap entry (which grants them in the
    /// replicated state) is applied here.
    admins: Vec<String>,
    /// A joining member: the members named by the cluster it joins, once
    /// it has been added there (see `member::learn_members`).
    joined: std::sync::RwLock<Vec<String>>,
    refusals: mpsc::Sender<Refused>,
}

impl StateGrants {
    pub(crate) fn new(
        watch: StateWatch,
        initial: Vec<String>,
        admins: Vec<String>,
        refusals: mpsc::Sender<Refused>,
    ) -> Arc<Self> {
        Arc::new(StateGrants {
            watch,
            initial,
            admins,
            joined: std::sync::RwLock::new(Vec::new()),
            refusals,
        })
    }

    /// A joining member learned the cluster's members from the member it
    /// joins through (TLS-verified at the `--join` address).
    pub(crate) fn set_joined(&self, names: Vec<String>) {
        if let Ok(mut j) = self.joined.write() {
            *j = names;
        }
    }
}

/// The API role of a replicated role.
pub(crate) fn api_role(r: bulkhead_cluster::Role) -> Role {
    match r {
        bulkhead_cluster::Role::Viewer => Role::Viewer,
        bulkhead_cluster::Role::Operator => Role::Operator,
        bulkhead_cluster::Role::Admin => Role::Admin,
    }
}

/// The replicated role of an API role.
pub(crate) fn state_role(r: Role) -> bulkhead_cluster::Role {
    match r {
        Role::Viewer => bulkhead_cluster::Role::Viewer,
        Role::Operator => bulkhead_cluster::Role::Operator,
        Role::Admin => bulkhead_cluster::Role::Admin,
    }
}

impl Grants for StateGrants {
    fn role_of(&self, identity: &str) -> Option<Role> {
        let state = self.watch.current();
        // Only on a founding member: a joining one learns roles from the
        // leader's snapshot (its forwarded writes are checked there anyway).
        if !state.bootstrapped
            && !self.initial.is_empty()
            && self.admins.iter().any(|a| a == identity)
        {
            return Some(Role::Admin);
        }
        state.role_of(identity).map(api_role)
    }

    /// A name in the replicated members map; before bootstrap, a name of the
    /// initial cluster. A joining member (no state and no initial cluster)
    /// accepts only the members the cluster named when asked at the
    /// `--join` address after it was added: nobody before that (any other
    /// certificate of the CA could otherwise feed it a forged snapshot).
    fn is_member(&self, identity: &str) -> bool {
        let state = self.watch.current();
        if state.bootstrapped {
            state.members.contains_key(identity)
        } else if self.initial.is_empty() {
            self.joined
                .read()
                .is_ok_and(|j| j.iter().any(|n| n == identity))
        } else {
            self.initial.iter().any(|n| n == identity)
        }
    }
}

impl AuditSink for StateGrants {
    fn refused(&self, identity: &str, method: &str, reason: &str) {
        let r = Refused {
            identity: identity.to_owned(),
            action: crate::authz::short_method(method).to_owned(),
            reason: format!("permission denied: {reason}"),
        };
        if self.refusals.try_send(r).is_err() {
            tracing::warn!(identity, method, "audit queue full; refusal not recorded");
        }
    }
}

//! The replicated state machine: policy revisions, endpoints, role grants,
//! members, settings and the audit log.
//!
//! Invariants:
//! - Applying is deterministic: the outcome depends only on the state and the
//!   command (identity and time come from the proposer; no clock is read).
//! - Applying is idempotent: an entry whose index is at most [`State::applied`]
//!   is ignored, so replaying the log after a restart is harmless.
//! - The applied index is part of the state, so a snapshot carries it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A permission level; ordered so that `Admin > Operator > Viewer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads state.
    Viewer,
    /// Changes policy and endpoints.
    Operator,
    /// Changes roles, members and settings.
    Admin,
}

/// One stored policy revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// 1, 2, 3, … in apply order.
    pub number: u64,
    /// The policy document as submitted.
    pub document: String,
    /// Lower-case hex SHA-256 of `document`.
    pub digest: String,
    /// Who proposed it.
    pub identity: String,
    /// Proposer's wall clock, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Free text from the author.
    pub comment: String,
    /// `Some(n)` when this revision restores revision `n`'s document.
    pub rollback_of: Option<u64>,
}

/// A cluster member as recorded in the replicated state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Member name (`--initial-cluster NAME=ADDR`).
    pub name: String,
    /// Raft id, derived from the name ([`crate::member_id`]).
    pub id: u64,
    /// Peer address.
    pub address: String,
    /// Voter (true) or learner (false).
    pub voter: bool,
}

/// One audit record: an applied command or a refused change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Raft log index of the entry that produced this record.
    pub index: u64,
    /// Proposer's time.
    pub time_ms: u64,
    /// Proposer's identity.
    pub identity: String,
    /// What was attempted (`policy.put`, `endpoints`, …).
    pub action: String,
    /// `"ok"` or `"refused: <reason>"`.
    pub outcome: String,
    /// Revision created or targeted, if any.
    pub revision: Option<u64>,
}

/// A change to the replicated state, as proposed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// Authenticated identity of the requester (certificate common name).
    pub identity: String,
    /// Proposer's wall clock in milliseconds; never read while applying.
    pub time_ms: u64,
    /// What to change.
    pub change: Change,
}

/// The changes the state machine knows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// First admins and the initial members; applied once, later ones refused.
    Bootstrap {
        /// Identities granted [`Role::Admin`].
        admins: Vec<String>,
        /// Initial voters.
        members: Vec<Member>,
    },
    /// Store a new policy revision.
    PutPolicy {
        /// Policy text.
        document: String,
        /// Author's comment.
        comment: String,
        /// Refused unless the current revision number equals this (0 = none yet).
        expected_revision: Option<u64>,
    },
    /// Store a new revision carrying the document of revision `to`.
    Rollback {
        /// Revision whose document to restore.
        to: u64,
        /// Author's comment.
        comment: String,
        /// As for [`Change::PutPolicy`].
        expected_revision: Option<u64>,
    },
    /// Place addresses in segments (`add`: address, segment) and remove others.
    Endpoints {
        /// (address, segment) pairs; an existing address moves.
        add: Vec<(String, String)>,
        /// Addresses to remove (absent ones are ignored).
        remove: Vec<String>,
    },
    /// Grant `role` to `subject` (replaces an earlier grant).
    Grant {
        /// Identity receiving the role.
        subject: String,
        /// The role.
        role: Role,
    },
    /// Remove every role of `subject`.
    Revoke {
        /// Identity losing its role.
        subject: String,
    },
    /// Set one cluster setting.
    SetSetting {
        /// Setting name.
        key: String,
        /// New value.
        value: String,
    },
    /// Record a change refused before it reached the log (e.g. permission denied).
    AuditRefused {
        /// What was attempted.
        action: String,
        /// Why it was refused.
        reason: String,
    },
}

/// Why the state machine refused a command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// `expected_revision` did not match.
    #[error("stale revision: expected {expected}, current is {current}")]
    StaleRevision {
        /// What the proposer expected.
        expected: u64,
        /// The current revision number (0 when there is none).
        current: u64,
    },
    /// Rollback to a revision that does not exist.
    #[error("unknown revision {requested}")]
    UnknownRevision {
        /// The requested revision.
        requested: u64,
    },
    /// A second bootstrap.
    #[error("cluster already bootstrapped")]
    AlreadyBootstrapped,
    /// Revoke of an identity that has no role.
    #[error("{subject} has no role")]
    NoSuchGrant {
        /// The identity.
        subject: String,
    },
    /// The change would leave the cluster without an admin.
    #[error("{subject} is the last admin")]
    LastAdmin {
        /// The identity.
        subject: String,
    },
    /// A refusal recorded by the API layer ([`Change::AuditRefused`]).
    #[error("{reason}")]
    Recorded {
        /// The reason given.
        reason: String,
    },
    /// The entry could not be decoded (written by an incompatible version).
    #[error("malformed entry: {detail}")]
    Malformed {
        /// Decoder message.
        detail: String,
    },
}

/// What applying one command did; delivered to the proposer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApplyOutcome {
    /// Applied.
    Ok,
    /// Applied and created this revision.
    Revision(u64),
    /// Refused (recorded in the audit log).
    Refused(Refusal),
}

/// Audit entries kept in the replicated state (the oldest are dropped).
pub const MAX_AUDIT_ENTRIES: usize = 100_000;
/// The whole replicated state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Index of the last applied log entry.
    pub applied: u64,
    /// Whether a `Bootstrap` has been applied.
    pub bootstrapped: bool,
    /// Every revision, `revisions[i].number == i + 1`.
    pub revisions: Vec<Revision>,
    /// Address → segment.
    pub endpoints: BTreeMap<String, String>,
    /// Identity → role.
    pub roles: BTreeMap<String, Role>,
    /// Member name → member.
    pub members: BTreeMap<String, Member>,
    /// Cluster settings.
    pub settings: BTreeMap<String, String>,
    /// Audit log, in apply order.
    pub audit: Vec<AuditEntry>,
}

/// A member change as carried in a raft conf change's context.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberChange {
    /// Who asked.
    pub identity: String,
    /// Proposer's time.
    pub time_ms: u64,
    /// Member name.
    pub name: String,
    /// Member address (empty for removals).
    pub address: String,
    /// What happens to the member.
    pub kind: MemberChangeKind,
}

/// The kinds of member change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberChangeKind {
    /// Added as a learner.
    AddLearner,
    /// Learner promoted to voter (or voter added).
    Promote,
    /// Removed.
    Remove,
}

/// Lower-case hex SHA-256 of `document`.
pub fn digest(document: &str) -> String {
    let hash = Sha256::digest(document.as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

impl State {
    /// The latest revision, if any.
    pub fn current_revision(&self) -> Option<&Revision> {
        self.revisions.last()
    }

    /// Revision `number`, if it exists.
    pub fn revision(&self, number: u64) -> Option<&Revision> {
        let i = usize::try_from(number.checked_sub(1)?).ok()?;
        self.revisions.get(i)
    }

    /// The role of `identity`, if any.
    pub fn role_of(&self, identity: &str) -> Option<Role> {
        self.roles.get(identity).copied()
    }

    /// The member with raft id `id`.
    pub fn member_by_id(&self, id: u64) -> Option<&Member> {
        self.members.values().find(|m| m.id == id)
    }

    /// Marks `index` applied without changing anything else (empty entries).
    /// Returns false if `index` was already applied.
    pub fn apply_noop(&mut self, index: u64) -> bool {
        if index <= self.applied {
            return false;
        }
        self.applied = index;
        true
    }

    /// Applies `command` at log `index`. `None` if `index` was already applied.
    pub fn apply(&mut self, index: u64, command: &Command) -> Option<ApplyOutcome> {
        if index <= self.applied {
            return None;
        }
        self.applied = index;
        let (action, outcome) = self.apply_change(&command.change, command);
        let revision = match (&outcome, &command.change) {
            (ApplyOutcome::Revision(n), _) => Some(*n),
            (_, Change::Rollback { to, .. }) => Some(*to),
            _ => None,
        };
        self.record_audit(AuditEntry {
            index,
            time_ms: command.time_ms,
            identity: command.identity.clone(),
            action: action.to_owned(),
            outcome: outcome_text(&outcome),
            revision,
        });
        Some(outcome)
    }

    /// Append to the audit log, keeping its newest [`MAX_AUDIT_ENTRIES`]
    /// (deterministic: every member trims at the same entries).
    fn record_audit(&mut self, e: AuditEntry) {
        self.audit.push(e);
        if self.audit.len() > MAX_AUDIT_ENTRIES {
            let excess = self.audit.len() - MAX_AUDIT_ENTRIES;
            self.audit.drain(..excess);
        }
    }

    /// Records an entry that could not be decoded: applied, refused, audited.
    pub fn apply_malformed(&mut self, index: u64, detail: String) -> Option<ApplyOutcome> {
        if index <= self.applied {
            return None;
        }
        self.applied = index;
        let outcome = ApplyOutcome::Refused(Refusal::Malformed { detail });
        self.record_audit(AuditEntry {
            index,
            time_ms: 0,
            identity: String::new(),
            action: "unknown".to_owned(),
            outcome: outcome_text(&outcome),
            revision: None,
        });
        Some(outcome)
    }

    /// Applies a member change at `index` (the raft conf change itself is
    /// applied by the node). `false` if `index` was already applied.
    pub fn apply_member_change(&mut self, index: u64, id: u64, change: &MemberChange) -> bool {
        if index <= self.applied {
            return false;
        }
        self.applied = index;
        let action = match change.kind {
            MemberChangeKind::AddLearner => {
                self.members.insert(
                    change.name.clone(),
                    Member {
                        name: change.name.clone(),
                        id,
                        address: change.address.clone(),
                        voter: false,
                    },
                );
                "member.add_learner"
            }
            MemberChangeKind::Promote => {
                let member = self.members.entry(change.name.clone()).or_insert(Member {
                    name: change.name.clone(),
                    id,
                    address: change.address.clone(),
                    voter: true,
                });
                member.voter = true;
                "member.promote"
            }
            MemberChangeKind::Remove => {
                self.members.remove(&change.name);
                "member.remove"
            }
        };
        self.record_audit(AuditEntry {
            index,
            time_ms: change.time_ms,
            identity: change.identity.clone(),
            action: format!("{action} {}", change.name),
            outcome: "ok".to_owned(),
            revision: None,
        });
        true
    }

    fn apply_change<'c>(
        &mut self,
        change: &'c Change,
        command: &Command,
    ) -> (&'c str, ApplyOutcome) {
        match change {
            Change::Bootstrap { admins, members } => ("bootstrap", self.bootstrap(admins, members)),
            Change::PutPolicy {
                document,
                comment,
                expected_revision,
            } => {
                let outcome = self.check_expected(*expected_revision).unwrap_or_else(|| {
                    self.push_revision(document.clone(), command, comment, None)
                });
                ("policy.put", outcome)
            }
            Change::Rollback {
                to,
                comment,
                expected_revision,
            } => (
                "policy.rollback",
                self.rollback(*to, comment, *expected_revision, command),
            ),
            Change::Endpoints { add, remove } => {
                for address in remove {
                    self.endpoints.remove(address);
                }
                for (address, segment) in add {
                    self.endpoints.insert(address.clone(), segment.clone());
                }
                ("endpoints", ApplyOutcome::Ok)
            }
            Change::Grant { subject, role } => ("role.grant", self.grant(subject, *role)),
            Change::Revoke { subject } => ("role.revoke", self.revoke(subject)),
            Change::SetSetting { key, value } => {
                self.settings.insert(key.clone(), value.clone());
                ("setting.set", ApplyOutcome::Ok)
            }
            Change::AuditRefused { action, reason } => {
                let outcome = ApplyOutcome::Refused(Refusal::Recorded {
                    reason: reason.clone(),
                });
                (action.as_str(), outcome)
            }
        }
    }

    fn bootstrap(&mut self, admins: &[String], members: &[Member]) -> ApplyOutcome {
        if self.bootstrapped {
            return ApplyOutcome::Refused(Refusal::AlreadyBootstrapped);
        }
        self.bootstrapped = true;
        for admin in admins {
            self.roles.insert(admin.clone(), Role::Admin);
        }
        for member in members {
            self.members
                .entry(member.name.clone())
                .or_insert_with(|| member.clone());
        }
        ApplyOutcome::Ok
    }

    fn current_number(&self) -> u64 {
        self.current_revision().map_or(0, |r| r.number)
    }

    fn check_expected(&self, expected: Option<u64>) -> Option<ApplyOutcome> {
        let current = self.current_number();
        match expected {
            Some(expected) if expected != current => {
                Some(ApplyOutcome::Refused(Refusal::StaleRevision {
                    expected,
                    current,
                }))
            }
            _ => None,
        }
    }

    fn rollback(
        &mut self,
        to: u64,
        comment: &str,
        expected: Option<u64>,
        command: &Command,
    ) -> ApplyOutcome {
        if let Some(refused) = self.check_expected(expected) {
            return refused;
        }
        match self.revision(to) {
            Some(target) => {
                let document = target.document.clone();
                self.push_revision(document, command, comment, Some(to))
            }
            None => ApplyOutcome::Refused(Refusal::UnknownRevision { requested: to }),
        }
    }

    fn push_revision(
        &mut self,
        document: String,
        command: &Command,
        comment: &str,
        rollback_of: Option<u64>,
    ) -> ApplyOutcome {
        let number = self.current_number() + 1;
        self.revisions.push(Revision {
            number,
            digest: digest(&document),
            document,
            identity: command.identity.clone(),
            time_ms: command.time_ms,
            comment: comment.to_owned(),
            rollback_of,
        });
        ApplyOutcome::Revision(number)
    }

    fn grant(&mut self, subject: &str, role: Role) -> ApplyOutcome {
        if role != Role::Admin && self.is_last_admin(subject) {
            return ApplyOutcome::Refused(Refusal::LastAdmin {
                subject: subject.to_owned(),
            });
        }
        self.roles.insert(subject.to_owned(), role);
        ApplyOutcome::Ok
    }

    fn revoke(&mut self, subject: &str) -> ApplyOutcome {
        if !self.roles.contains_key(subject) {
            return ApplyOutcome::Refused(Refusal::NoSuchGrant {
                subject: subject.to_owned(),
            });
        }
        if self.is_last_admin(subject) {
            return ApplyOutcome::Refused(Refusal::LastAdmin {
                subject: subject.to_owned(),
            });
        }
        self.roles.remove(subject);
        ApplyOutcome::Ok
    }

    fn is_last_admin(&self, subject: &str) -> bool {
        self.roles.get(subject) == Some(&Role::Admin)
            && self.roles.values().filter(|r| **r == Role::Admin).count() == 1
    }

    /// The state as snapshot bytes.
    pub fn to_snapshot_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Restores a state from [`State::to_snapshot_bytes`] output.
    pub fn from_snapshot_bytes(bytes: &[u8]) -> Result<State, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

fn outcome_text(outcome: &ApplyOutcome) -> String {
    match outcome {
        ApplyOutcome::Ok | ApplyOutcome::Revision(_) => "ok".to_owned(),
        ApplyOutcome::Refused(reason) => format!("refused: {reason}"),
    }
}

#[cfg(test)]
mod tests;

use super::*;

fn cmd(change: Change) -> Command {
    Command {
        identity: "alice".to_owned(),
        time_ms: 7,
        change,
    }
}

fn put(doc: &str, expected: Option<u64>) -> Command {
    cmd(Change::PutPolicy {
        document: doc.to_owned(),
        comment: "c".to_owned(),
        expected_revision: expected,
    })
}

fn bootstrapped() -> State {
    let mut s = State::default();
    let members = vec![Member {
        name: "gw-1".into(),
        id: 11,
        address: "10.0.0.1:7000".into(),
        voter: true,
    }];
    let out = s.apply(
        1,
        &cmd(Change::Bootstrap {
            admins: vec!["root".into()],
            members,
        }),
    );
    assert_eq!(out, Some(ApplyOutcome::Ok));
    s
}

#[test]
fn bootstrap_applies_once() {
    let mut s = bootstrapped();
    assert!(s.bootstrapped);
    assert_eq!(s.role_of("root"), Some(Role::Admin));
    assert_eq!(s.members["gw-1"].id, 11);
    let again = s.apply(
        2,
        &cmd(Change::Bootstrap {
            admins: vec!["mallory".into()],
            members: vec![],
        }),
    );
    assert_eq!(
        again,
        Some(ApplyOutcome::Refused(Refusal::AlreadyBootstrapped))
    );
    assert_eq!(s.role_of("mallory"), None);
    assert_eq!(
        s.audit.last().map(|a| a.outcome.as_str()),
        Some("refused: cluster already bootstrapped")
    );
}

#[test]
fn put_policy_numbers_and_digests_revisions() {
    let mut s = bootstrapped();
    assert_eq!(
        s.apply(2, &put("a", Some(0))),
        Some(ApplyOutcome::Revision(1))
    );
    assert_eq!(s.apply(3, &put("b", None)), Some(ApplyOutcome::Revision(2)));
    let r = s.revision(2).cloned();
    assert_eq!(
        r.as_ref().map(|r| r.digest.as_str()),
        Some(digest("b").as_str())
    );
    assert_eq!(
        digest("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        r.map(|r| (r.identity, r.time_ms)),
        Some(("alice".to_owned(), 7))
    );
    assert_eq!(s.audit.last().and_then(|a| a.revision), Some(2));
}

#[test]
fn stale_expected_revision_is_refused_and_audited() {
    let mut s = bootstrapped();
    s.apply(2, &put("a", None));
    let out = s.apply(3, &put("b", Some(0)));
    assert_eq!(
        out,
        Some(ApplyOutcome::Refused(Refusal::StaleRevision {
            expected: 0,
            current: 1
        }))
    );
    assert_eq!(s.revisions.len(), 1);
    let last = s.audit.last().map(|a| {
        (
            a.index,
            a.action.clone(),
            a.outcome.starts_with("refused: stale"),
        )
    });
    assert_eq!(last, Some((3, "policy.put".to_owned(), true)));
}

#[test]
fn rollback_copies_the_document_or_refuses() {
    let mut s = bootstrapped();
    s.apply(2, &put("a", None));
    s.apply(3, &put("b", None));
    let rb = |to| {
        cmd(Change::Rollback {
            to,
            comment: "undo".into(),
            expected_revision: Some(2),
        })
    };
    assert_eq!(
        s.apply(4, &rb(9)),
        Some(ApplyOutcome::Refused(Refusal::UnknownRevision {
            requested: 9
        }))
    );
    assert_eq!(s.apply(5, &rb(1)), Some(ApplyOutcome::Revision(3)));
    let r3 = s.revision(3).cloned();
    assert_eq!(
        r3.map(|r| (r.document, r.rollback_of, r.digest)),
        Some(("a".to_owned(), Some(1), digest("a")))
    );
}

#[test]
fn endpoints_add_and_remove_in_one_command() {
    let mut s = bootstrapped();
    let add = vec![
        ("10.1.0.5".to_owned(), "web".to_owned()),
        ("10.1.0.6/32".to_owned(), "db".to_owned()),
    ];
    s.apply(
        2,
        &cmd(Change::Endpoints {
            add,
            remove: vec![],
        }),
    );
    let change = Change::Endpoints {
        add: vec![("10.1.0.5".into(), "db".into())],
        remove: vec!["10.1.0.6/32".into(), "absent".into()],
    };
    assert_eq!(s.apply(3, &cmd(change)), Some(ApplyOutcome::Ok));
    assert_eq!(s.endpoints.len(), 1);
    assert_eq!(s.endpoints.get("10.1.0.5").map(String::as_str), Some("db"));
}

#[test]
fn grants_revokes_and_the_last_admin() {
    let mut s = bootstrapped();
    assert!(Role::Admin > Role::Operator && Role::Operator > Role::Viewer);
    s.apply(
        2,
        &cmd(Change::Grant {
            subject: "bob".into(),
            role: Role::Operator,
        }),
    );
    assert_eq!(s.role_of("bob"), Some(Role::Operator));
    let demote = s.apply(
        3,
        &cmd(Change::Grant {
            subject: "root".into(),
            role: Role::Viewer,
        }),
    );
    assert_eq!(
        demote,
        Some(ApplyOutcome::Refused(Refusal::LastAdmin {
            subject: "root".into()
        }))
    );
    let revoke_root = s.apply(
        4,
        &cmd(Change::Revoke {
            subject: "root".into(),
        }),
    );
    assert_eq!(
        revoke_root,
        Some(ApplyOutcome::Refused(Refusal::LastAdmin {
            subject: "root".into()
        }))
    );
    assert_eq!(
        s.apply(
            5,
            &cmd(Change::Revoke {
                subject: "bob".into()
            })
        ),
        Some(ApplyOutcome::Ok)
    );
    let again = s.apply(
        6,
        &cmd(Change::Revoke {
            subject: "bob".into(),
        }),
    );
    assert_eq!(
        again,
        Some(ApplyOutcome::Refused(Refusal::NoSuchGrant {
            subject: "bob".into()
        }))
    );
}

#[test]
fn settings_and_recorded_refusals() {
    let mut s = bootstrapped();
    s.apply(
        2,
        &cmd(Change::SetSetting {
            key: "wait_ms".into(),
            value: "500".into(),
        }),
    );
    assert_eq!(s.settings.get("wait_ms").map(String::as_str), Some("500"));
    let refused = cmd(Change::AuditRefused {
        action: "policy.put".into(),
        reason: "permission denied".into(),
    });
    let before = s.clone();
    let out = s.apply(3, &refused);
    assert_eq!(
        out,
        Some(ApplyOutcome::Refused(Refusal::Recorded {
            reason: "permission denied".into()
        }))
    );
    assert_eq!(s.revisions, before.revisions);
    let last = s
        .audit
        .last()
        .map(|a| (a.action.clone(), a.outcome.clone()));
    assert_eq!(
        last,
        Some((
            "policy.put".to_owned(),
            "refused: permission denied".to_owned()
        ))
    );
}

#[test]
fn applying_an_old_index_is_ignored() {
    let mut s = bootstrapped();
    s.apply(2, &put("a", None));
    let before = s.clone();
    assert_eq!(s.apply(2, &put("b", None)), None);
    assert_eq!(s.apply(1, &put("b", None)), None);
    assert!(!s.apply_noop(2));
    let mc = MemberChange {
        identity: "x".into(),
        time_ms: 0,
        name: "gw-9".into(),
        address: "a".into(),
        kind: MemberChangeKind::AddLearner,
    };
    assert!(!s.apply_member_change(2, 9, &mc));
    assert_eq!(s, before);
    assert!(s.apply_noop(3));
    assert_eq!(s.applied, 3);
}

#[test]
fn member_changes_update_members() {
    let mut s = bootstrapped();
    let mut mc = MemberChange {
        identity: "root".into(),
        time_ms: 1,
        name: "gw-4".into(),
        address: "10.0.0.4:7000".into(),
        kind: MemberChangeKind::AddLearner,
    };
    assert!(s.apply_member_change(2, 44, &mc));
    assert!(!s.members["gw-4"].voter);
    mc.kind = MemberChangeKind::Promote;
    assert!(s.apply_member_change(3, 44, &mc));
    assert!(s.members["gw-4"].voter);
    assert_eq!(s.member_by_id(44).map(|m| m.name.as_str()), Some("gw-4"));
    mc.kind = MemberChangeKind::Remove;
    assert!(s.apply_member_change(4, 44, &mc));
    assert!(!s.members.contains_key("gw-4"));
}

#[test]
fn snapshot_round_trip() {
    let mut s = bootstrapped();
    s.apply(2, &put("a", None));
    s.apply(
        3,
        &cmd(Change::Grant {
            subject: "bob".into(),
            role: Role::Viewer,
        }),
    );
    let bytes = s.to_snapshot_bytes().unwrap_or_default();
    let back = State::from_snapshot_bytes(&bytes).ok();
    assert_eq!(back.as_ref(), Some(&s));
    assert!(State::from_snapshot_bytes(b"{not json").is_err());
}

#[test]
fn malformed_entries_are_refused_and_audited() {
    let mut s = State::default();
    let out = s.apply_malformed(1, "bad".into());
    assert_eq!(
        out,
        Some(ApplyOutcome::Refused(Refusal::Malformed {
            detail: "bad".into()
        }))
    );
    assert_eq!(s.applied, 1);
    assert_eq!(s.audit.len(), 1);
}

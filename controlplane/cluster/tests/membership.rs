//! Leader transfer and member changes on the simulated network (no faults):
//! a learner that joins empty catches up from a snapshot after compaction, is
//! promoted, and a member is removed.

mod common;

use bulkhead_cluster::{member_id, ClusterError, MemberChange, MemberChangeKind};
use common::{name, Faults, Sim};

fn change(name: &str, kind: MemberChangeKind) -> MemberChange {
    MemberChange {
        identity: "root".to_owned(),
        time_ms: 5,
        name: name.to_owned(),
        address: "10.0.0.4:7000".to_owned(),
        kind,
    }
}

fn settled(seed: u64, extra: usize) -> Sim {
    let mut sim = Sim::new(seed, 3, extra, Faults::NONE, 5);
    sim.heal_and_converge(&[0, 1, 2]);
    sim
}

#[test]
fn leader_transfer_moves_leadership() {
    let mut sim = settled(1, 0);
    let l = sim.leader().unwrap_or_default();
    let t = (l + 1) % 3;
    let target = name(t);
    let asked = sim.with(l, move |n| n.transfer_leader(&target));
    assert!(asked.is_ok(), "{asked:?}");
    let t_id = member_id(&name(t));
    sim.run_until("leadership to move", 500, |s| {
        (0..3).all(|i| s.view(i).status.leader == Some(t_id))
    });
    // A follower refuses transfers and names the new leader.
    let refused = sim.with(l, |n| n.transfer_leader("gw-1"));
    assert!(
        matches!(refused, Err(ClusterError::NotLeader { leader: Some(ref i) }) if i.id == member_id(&name(t))),
        "{refused:?}"
    );
    sim.queued.push(sim_command(1));
    sim.run_until("the new leader to apply a write", 500, |s| {
        s.acked.len() == 1
    });
    sim.heal_and_converge(&[0, 1, 2]);
    sim.check_final(&[0, 1, 2]);
}

fn sim_command(k: u32) -> bulkhead_cluster::Command {
    bulkhead_cluster::Command {
        identity: format!("queued-{k}"),
        time_ms: 0,
        change: bulkhead_cluster::Change::PutPolicy {
            document: format!("p{k}"),
            comment: String::new(),
            expected_revision: None,
        },
    }
}

#[test]
fn learner_catches_up_from_a_snapshot_is_promoted_and_a_member_is_removed() {
    let mut sim = settled(2, 1);
    for k in 0..30 {
        sim.queued.push(sim_command(k));
    }
    sim.heal_and_converge(&[0, 1, 2]);
    assert_eq!(sim.view(0).state.revisions.len(), 30);
    let l = sim.leader().unwrap_or_default();

    // Add gw-4 as a learner while it is down: promotion is refused until it catches up.
    let added = sim.with(l, |n| {
        n.propose_member_change(change("gw-4", MemberChangeKind::AddLearner))
    });
    assert!(added.is_ok(), "{added:?}");
    sim.run_until("the learner to be recorded", 500, |s| {
        s.view(l)
            .state
            .members
            .get("gw-4")
            .is_some_and(|m| !m.voter)
    });
    let early = sim.with(l, |n| {
        n.propose_member_change(change("gw-4", MemberChangeKind::Promote))
    });
    assert!(
        matches!(early, Err(ClusterError::NotCaughtUp { .. })),
        "{early:?}"
    );

    sim.start(3);
    sim.run_until("the learner to catch up", 2000, |s| {
        let commit = s.view(l).status.commit;
        s.views[3]
            .as_ref()
            .is_some_and(|v| v.state.applied == commit)
    });
    assert!(
        sim.snapshots_received[3] >= 1,
        "the learner should have been sent a snapshot (log compacted)"
    );
    assert_eq!(sim.view(3).state.revisions, sim.view(l).state.revisions);
    assert!(sim.view(l).status.learners.contains(&member_id("gw-4")));

    sim.run_until("the leader to see the learner's progress", 500, |s| {
        let st = &s.view(l).status;
        st.progress
            .get(&member_id("gw-4"))
            .is_some_and(|m| *m >= st.commit)
    });
    let promoted = sim.with(l, |n| {
        n.propose_member_change(change("gw-4", MemberChangeKind::Promote))
    });
    assert!(promoted.is_ok(), "{promoted:?}");
    sim.run_until("the promotion", 500, |s| {
        s.view(l).status.voters.contains(&member_id("gw-4"))
    });
    sim.heal_and_converge(&[0, 1, 2, 3]);
    assert!(sim
        .view(3)
        .state
        .members
        .get("gw-4")
        .is_some_and(|m| m.voter));

    // Remove a follower that is not the leader.
    let victim = (0..3)
        .find(|&i| Some(i) != sim.leader())
        .unwrap_or_default();
    let l = sim.leader().unwrap_or_default();
    let victim_name = name(victim);
    let removed = sim.with(l, move |n| {
        n.propose_member_change(change(&victim_name, MemberChangeKind::Remove))
    });
    assert!(removed.is_ok(), "{removed:?}");
    sim.run_until("the removal", 500, |s| {
        s.leader()
            .is_some_and(|l| !s.view(l).status.voters.contains(&member_id(&name(victim))))
    });
    sim.crash(victim);
    let rest: Vec<usize> = (0..4).filter(|&i| i != victim).collect();
    for k in 100..105 {
        sim.queued.push(sim_command(k));
    }
    sim.heal_and_converge_without(&rest, victim);
    sim.check_final(&rest);
    assert!(!sim.view(rest[0]).state.members.contains_key(&name(victim)));
    assert_eq!(sim.view(rest[0]).state.revisions.len(), 35);
}

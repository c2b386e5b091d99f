//! A three-member cluster of real `bulkheadd` processes on loopback, driven
//! by the real `bulkctl`: applies through any member, the leader killed
//! with SIGKILL in the middle of a stream of applies, a member stopped with
//! SIGSTOP and resumed, a member restarted from its data directory, a fourth
//! member added and one removed. After each step every acknowledged
//! revision is on every member, in the same order, with the same digest.

mod cluster;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cluster::{policy, text, Lab};
use serde_json::Value;

/// `(revision, digest)` of every revision, oldest first, as member `i` has them.
fn history(lab: &Lab, i: usize) -> Vec<(u64, String)> {
    let v = lab.json(i, &["policy", "history"]);
    let mut h: Vec<(u64, String)> = v
        .as_array()
        .unwrap_or_else(|| panic!("history is a list: {v}"))
        .iter()
        .map(|r| {
            (
                r["revision"].as_u64().unwrap(),
                r["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    h.sort();
    h
}

/// Apply `policy(port)` through member `i`; `Some((revision, digest))` when
/// acknowledged.
fn apply(lab: &Lab, i: usize, port: u16) -> Option<(u64, String)> {
    let f = lab.file(&format!("p{port}.yaml"), &policy(port));
    let out = lab.ctl(
        i,
        &[
            "policy",
            "apply",
            &f,
            "--json",
            "--comment",
            &format!("port {port}"),
        ],
    );
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    Some((v["revision"].as_u64()?, v["digest"].as_str()?.to_string()))
}

/// Every acknowledged revision is in `h` with its digest, and `h` is 1..=n.
fn check_history(h: &[(u64, String)], acked: &BTreeMap<u64, String>, who: &str) {
    for (n, (rev, _)) in h.iter().enumerate() {
        assert_eq!(
            *rev,
            n as u64 + 1,
            "{who}: revisions are consecutive: {h:?}"
        );
    }
    for (rev, digest) in acked {
        assert!(
            h.iter().any(|(r, d)| r == rev && d == digest),
            "{who}: acknowledged revision {rev} ({digest}) is missing: {h:?}"
        );
    }
}

fn leader(lab: &Lab, i: usize) -> String {
    lab.wait_status(i, "a leader", |v| {
        v["leader"].as_str().is_some_and(|l| !l.is_empty())
    })["leader"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_cluster_keeps_every_acknowledged_revision_through_faults() {
    let lab = Lab::new("faults", 4, &[]);
    let mut m: Vec<_> = (1..=3).map(|i| Some(lab.start(i, 3))).collect();
    let first_leader = leader(&lab, 1);

    // A policy applied through a member with --wait: enforced everywhere.
    let f = lab.file("first.yaml", &policy(5432));
    let out = lab.ctl(2, &["policy", "apply", &f, "--wait=30", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["revision"], 1, "{v}");
    let mut acked = BTreeMap::new();
    acked.insert(1, v["digest"].as_str().unwrap().to_string());
    let status = lab.wait_status(3, "revision 1 everywhere", |s| {
        s["members"]
            .as_array()
            .is_some_and(|ms| ms.len() == 3 && ms.iter().all(|m| m["enforced_revision"] == 1))
    });
    assert_eq!(status["revision"], 1);

    // A stream of applies through every member; the leader is killed in the middle.
    let li: usize = first_leader.trim_start_matches("gw-").parse().unwrap();
    let mut unacked = Vec::new();
    for (k, port) in (6000u16..6010).enumerate() {
        if k == 4 {
            m[li - 1].as_mut().unwrap().kill9();
            m[li - 1] = None;
        }
        let via = (1..=3).filter(|&i| m[i - 1].is_some()).nth(k % 2).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match apply(&lab, via, port) {
                Some((rev, digest)) => {
                    acked.insert(rev, digest);
                    break;
                }
                None if Instant::now() < deadline => {
                    unacked.push(port);
                    std::thread::sleep(Duration::from_millis(500));
                }
                None => panic!("no apply through gw-{via} for 30 s after the leader died"),
            }
        }
    }
    let alive: Vec<usize> = (1..=3).filter(|&i| m[i - 1].is_some()).collect();
    let new_leader = leader(&lab, alive[0]);
    assert_ne!(new_leader, first_leader, "a new leader was elected");

    // The killed member restarts from its data directory and catches up.
    m[li - 1] = Some(lab.start(li, 3));
    let latest = *acked.keys().last().unwrap();
    lab.wait_status(li, "the restarted member caught up", |s| {
        s["members"].as_array().is_some_and(|ms| {
            ms.iter()
                .all(|m| m["enforced_revision"].as_u64() == Some(latest))
        })
    });
    let reference = history(&lab, 1);
    check_history(&reference, &acked, "gw-1");
    for i in 2..=3 {
        assert_eq!(
            history(&lab, i),
            reference,
            "gw-{i} has the same history as gw-1"
        );
    }
    // An unacknowledged apply is on every member or on none: the histories
    // are identical, so it is (checked above); none is half-applied.

    // A follower stopped (SIGSTOP) while the others keep accepting changes.
    let leader_now = leader(&lab, 1);
    let fi = (1..=3).find(|&i| format!("gw-{i}") != leader_now).unwrap();
    m[fi - 1].as_ref().unwrap().signal("-STOP");
    let other = (1..=3).find(|&i| i != fi).unwrap();
    for port in 7000u16..7003 {
        let (rev, digest) = apply(&lab, other, port).expect("quorum of two accepts changes");
        acked.insert(rev, digest);
    }
    m[fi - 1].as_ref().unwrap().signal("-CONT");
    let latest = *acked.keys().last().unwrap();
    lab.wait_status(other, "the resumed member caught up", |s| {
        s["members"].as_array().is_some_and(|ms| {
            ms.iter()
                .all(|m| m["enforced_revision"].as_u64() == Some(latest))
        })
    });

    // A fourth member joins, is promoted once caught up; then one is removed.
    let _m4 = lab.join(4, 1);
    let out = lab.ctl(1, &["cluster", "add-member", "gw-4", &lab.addr(4)]);
    assert!(out.status.success(), "{}", text(&out));
    lab.wait_status(1, "gw-4 a caught-up voter", |s| {
        s["members"].as_array().is_some_and(|ms| {
            ms.iter().any(|m| {
                m["name"] == "gw-4"
                    && m["voter"] == true
                    && m["enforced_revision"].as_u64() == Some(latest)
            })
        })
    });
    let victim = (1..=3)
        .find(|&i| format!("gw-{i}") != leader(&lab, 1))
        .unwrap();
    let keep = (1..=3).find(|&i| i != victim).unwrap();
    let out = lab.ctl(keep, &["cluster", "remove-member", &format!("gw-{victim}")]);
    assert!(out.status.success(), "{}", text(&out));
    lab.wait_status(keep, "three members left", |s| {
        s["members"].as_array().is_some_and(|ms| {
            ms.len() == 3 && !ms.iter().any(|m| m["name"] == format!("gw-{victim}"))
        })
    });
    let (rev, digest) = apply(&lab, 4, 7100).expect("the new member accepts changes");
    acked.insert(rev, digest);
    let reference = history(&lab, keep);
    check_history(&reference, &acked, &format!("gw-{keep}"));
    assert_eq!(history(&lab, 4), reference, "gw-4 has the same history");
    eprintln!(
        "{} revisions acknowledged and on every member; leader {first_leader} killed, \
         {new_leader} took over; gw-{fi} stopped and resumed; gw-4 added, gw-{victim} removed; \
         {} applies were retried while leadership moved",
        acked.len(),
        unacked.len()
    );
    drop(m);
}

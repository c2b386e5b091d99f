//! `cluster status|add-member|remove-member|transfer-leader`, and `--wait`:
//! polling `ClusterService/Status` until every member enforces a revision.

use std::time::{Duration, Instant};

use bulkhead_proto::v1;
use serde_json::{json, Value};

use super::conn::{Conn, Settings, EXIT_UNAVAILABLE};
use super::duration::human;
use super::output::{print, print_json, table, yes_no};
use crate::args::ClusterCmd;
use crate::Fail;

/// How often `--wait` asks for the cluster status.
const WAIT_POLL: Duration = Duration::from_millis(250);

pub(crate) async fn run(s: &Settings, cmd: ClusterCmd) -> Result<u8, Fail> {
    let conn = s.connect().await?;
    let mut c = conn.cluster();
    match cmd {
        ClusterCmd::Status => {
            let st = conn
                .call(
                    "ClusterService/Status",
                    c.status(conn.req(v1::ClusterStatusRequest {})),
                )
                .await?;
            if s.json {
                print_json(&status_json(&st));
            } else {
                print(&status_text(&st));
            }
        }
        ClusterCmd::AddMember { name, address } => {
            let req = v1::AddMemberRequest {
                name: name.clone(),
                address: address.clone(),
            };
            let r = conn
                .call("ClusterService/AddMember", c.add_member(conn.req(req)))
                .await?;
            if s.json {
                print_json(&json!({"name": name, "address": address, "index": r.index}));
            } else {
                print(&format!(
                    "added member {name} ({address}) at log index {}",
                    r.index
                ));
            }
        }
        ClusterCmd::RemoveMember { name } => {
            let req = v1::RemoveMemberRequest { name: name.clone() };
            let r = conn
                .call(
                    "ClusterService/RemoveMember",
                    c.remove_member(conn.req(req)),
                )
                .await?;
            if s.json {
                print_json(&json!({"name": name, "index": r.index}));
            } else {
                print(&format!("removed member {name} at log index {}", r.index));
            }
        }
        ClusterCmd::TransferLeader { name } => {
            let req = v1::TransferLeaderRequest { name: name.clone() };
            conn.call(
                "ClusterService/TransferLeader",
                c.transfer_leader(conn.req(req)),
            )
            .await?;
            if s.json {
                print_json(&json!({"transfer_to": name}));
            } else {
                print(&format!("leadership handed to {name}"));
            }
        }
    }
    Ok(0)
}

pub(crate) fn status_json(st: &v1::ClusterStatus) -> Value {
    let members: Vec<Value> = st
        .members
        .iter()
        .map(|m| {
            json!({
                "name": m.name,
                "address": m.address,
                "voter": m.voter,
                "reachable": m.reachable,
                "enforced_revision": m.enforced_revision,
            })
        })
        .collect();
    json!({
        "leader": if st.leader.is_empty() { Value::Null } else { Value::from(st.leader.clone()) },
        "term": st.term,
        "revision": st.revision,
        "members": members,
    })
}

pub(crate) fn status_text(st: &v1::ClusterStatus) -> String {
    let leader = if st.leader.is_empty() {
        "none (election under way)"
    } else {
        &st.leader
    };
    let mut out = format!(
        "leader: {leader}\nterm: {}\nrevision: {}\n\n",
        st.term, st.revision
    );
    let rows: Vec<Vec<String>> = st
        .members
        .iter()
        .map(|m| {
            let name = if m.name == st.leader {
                format!("{} *", m.name)
            } else {
                m.name.clone()
            };
            vec![
                name,
                m.address.clone(),
                if m.voter {
                    "voter".into()
                } else {
                    "learner".into()
                },
                yes_no(m.reachable),
                m.enforced_revision.to_string(),
                m.applied_index.to_string(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "NAME",
            "ADDRESS",
            "ROLE",
            "REACHABLE",
            "ENFORCED",
            "APPLIED",
        ],
        &rows,
    ));
    out
}

/// Members that do not yet enforce `revision`: `gw-3 enforces revision 4 (unreachable)`.
pub(crate) fn laggards(st: &v1::ClusterStatus, revision: u64) -> Vec<String> {
    st.members
        .iter()
        .filter(|m| m.enforced_revision < revision)
        .map(|m| {
            format!(
                "{} enforces revision {}{}",
                m.name,
                m.enforced_revision,
                if m.reachable { "" } else { " (unreachable)" }
            )
        })
        .collect()
}

/// The `--wait` failure from the last status seen (or the last error).
pub(crate) fn wait_failure(
    limit: Duration,
    revision: u64,
    last: Option<&v1::ClusterStatus>,
    last_error: Option<&str>,
) -> String {
    let why = match last {
        Some(st) if st.members.is_empty() => "the cluster status lists no members".to_owned(),
        Some(st) => laggards(st, revision).join(", "),
        None => format!(
            "no cluster status while waiting for revision {revision} ({})",
            last_error.unwrap_or("no answer")
        ),
    };
    format!("timed out after {}: {why}", human(limit))
}

/// Poll until every member enforces `revision`; the number of members.
pub(crate) async fn wait_enforced(
    conn: &Conn,
    revision: u64,
    limit: Duration,
) -> Result<usize, Fail> {
    let deadline = Instant::now() + limit;
    let mut last: Option<v1::ClusterStatus> = None;
    let mut last_error: Option<String> = None;
    let mut c = conn.cluster();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Fail(
                EXIT_UNAVAILABLE,
                wait_failure(limit, revision, last.as_ref(), last_error.as_deref()),
            ));
        }
        let per_call = left.min(conn.target.timeout);
        let mut req = conn.req(v1::ClusterStatusRequest {});
        req.set_timeout(per_call);
        match conn
            .call_within(per_call, "ClusterService/Status", c.status(req))
            .await
        {
            Ok(st) => {
                if !st.members.is_empty() && laggards(&st, revision).is_empty() {
                    return Ok(st.members.len());
                }
                last = Some(st);
            }
            // Refusals do not pass with time; unavailability might.
            Err(Fail(code, msg)) if code != EXIT_UNAVAILABLE => return Err(Fail(code, msg)),
            Err(Fail(_, msg)) => last_error = Some(msg),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(WAIT_POLL.min(left)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, reachable: bool, enforced: u64) -> v1::Member {
        v1::Member {
            name: name.into(),
            address: format!("10.0.0.{}:7444", name.len()),
            voter: name != "gw-4",
            reachable,
            enforced_revision: enforced,
            applied_index: 40 + enforced,
        }
    }

    fn status() -> v1::ClusterStatus {
        v1::ClusterStatus {
            leader: "gw-1".into(),
            term: 3,
            revision: 5,
            members: vec![
                member("gw-1", true, 5),
                member("gw-2", true, 5),
                member("gw-3", false, 4),
            ],
        }
    }

    #[test]
    fn status_json_has_the_documented_shape() {
        let v = status_json(&status());
        assert_eq!(
            v,
            json!({
                "leader": "gw-1", "term": 3, "revision": 5,
                "members": [
                    {"name": "gw-1", "address": "10.0.0.4:7444", "voter": true, "reachable": true, "enforced_revision": 5},
                    {"name": "gw-2", "address": "10.0.0.4:7444", "voter": true, "reachable": true, "enforced_revision": 5},
                    {"name": "gw-3", "address": "10.0.0.4:7444", "voter": true, "reachable": false, "enforced_revision": 4},
                ]
            })
        );
        let none = v1::ClusterStatus {
            leader: String::new(),
            ..status()
        };
        assert_eq!(status_json(&none)["leader"], Value::Null);
    }

    #[test]
    fn status_text_is_a_table() {
        let t = status_text(&status());
        assert!(
            t.starts_with("leader: gw-1\nterm: 3\nrevision: 5\n\n"),
            "{t}"
        );
        assert!(
            t.contains("NAME    ADDRESS        ROLE   REACHABLE  ENFORCED  APPLIED\n"),
            "{t}"
        );
        assert!(
            t.contains("gw-1 *  10.0.0.4:7444  voter  yes        5         45\n"),
            "{t}"
        );
        assert!(
            t.contains("gw-3    10.0.0.4:7444  voter  no         4         44\n"),
            "{t}"
        );
    }

    #[test]
    fn laggards_are_named_with_their_revision() {
        assert_eq!(
            laggards(&status(), 5),
            vec!["gw-3 enforces revision 4 (unreachable)"]
        );
        assert!(laggards(&status(), 4).is_empty());
        assert_eq!(
            wait_failure(Duration::from_secs(30), 5, Some(&status()), None),
            "timed out after 30 s: gw-3 enforces revision 4 (unreachable)"
        );
        assert_eq!(
            wait_failure(Duration::from_secs(2), 5, None, Some("cannot reach 10.0.0.1:7443: connection refused")),
            "timed out after 2 s: no cluster status while waiting for revision 5 (cannot reach 10.0.0.1:7443: connection refused)"
        );
    }
}

//! `access grant|revoke|ls` and `audit`.

use bulkhead_proto::v1;
use serde_json::{json, Value};

use super::conn::Settings;
use super::output::{print, print_json, table, utc};
use crate::args::{AccessCmd, RoleArg};
use crate::Fail;

fn role_name(r: v1::Role) -> &'static str {
    match r {
        v1::Role::Viewer => "viewer",
        v1::Role::Operator => "operator",
        v1::Role::Admin => "admin",
        v1::Role::Unspecified => "none",
    }
}

fn to_proto(r: RoleArg) -> v1::Role {
    match r {
        RoleArg::Viewer => v1::Role::Viewer,
        RoleArg::Operator => v1::Role::Operator,
        RoleArg::Admin => v1::Role::Admin,
    }
}

pub(crate) async fn run(s: &Settings, cmd: AccessCmd) -> Result<u8, Fail> {
    let conn = s.connect().await?;
    let mut c = conn.access();
    match cmd {
        AccessCmd::Grant {
            subject: identity,
            role,
        } => {
            let role = to_proto(role);
            let req = v1::GrantRequest {
                identity: identity.clone(),
                role: role as i32,
            };
            let r = conn
                .call("AccessService/Grant", c.grant(conn.req(req)))
                .await?;
            if s.json {
                print_json(
                    &json!({"identity": identity, "role": role_name(role), "index": r.index}),
                );
            } else {
                print(&format!(
                    "granted {} to {identity} at log index {}",
                    role_name(role),
                    r.index
                ));
            }
        }
        AccessCmd::Revoke { subject: identity } => {
            let req = v1::RevokeRequest {
                identity: identity.clone(),
            };
            let r = conn
                .call("AccessService/Revoke", c.revoke(conn.req(req)))
                .await?;
            if s.json {
                print_json(&json!({"identity": identity, "index": r.index}));
            } else {
                print(&format!(
                    "revoked the role of {identity} at log index {}",
                    r.index
                ));
            }
        }
        AccessCmd::Ls => {
            let r = conn
                .call(
                    "AccessService/List",
                    c.list(conn.req(v1::ListGrantsRequest {})),
                )
                .await?;
            if s.json {
                print_json(&grants_json(&r.grants));
            } else {
                print(&grants_text(&r.grants));
            }
        }
    }
    Ok(0)
}

pub(crate) async fn audit(
    s: &Settings,
    limit: Option<u32>,
    since: Option<u64>,
) -> Result<u8, Fail> {
    let conn = s.connect().await?;
    let req = v1::AuditRequest {
        limit: limit.unwrap_or(0),
        since_index: since.unwrap_or(0),
    };
    let r = conn
        .call("AccessService/Audit", conn.access().audit(conn.req(req)))
        .await?;
    if s.json {
        print_json(&audit_json(&r.entries));
    } else {
        print(&audit_text(&r.entries));
    }
    Ok(0)
}

pub(crate) fn grants_json(grants: &[v1::Grant]) -> Value {
    Value::Array(
        grants
            .iter()
            .map(|g| json!({"identity": g.identity, "role": role_name(g.role())}))
            .collect(),
    )
}

pub(crate) fn grants_text(grants: &[v1::Grant]) -> String {
    let rows: Vec<Vec<String>> = grants
        .iter()
        .map(|g| vec![g.identity.clone(), role_name(g.role()).to_owned()])
        .collect();
    table(&["IDENTITY", "ROLE"], &rows)
}

fn outcome(o: v1::AuditOutcome) -> &'static str {
    match o {
        v1::AuditOutcome::Ok => "ok",
        v1::AuditOutcome::Refused => "refused",
        v1::AuditOutcome::Failed => "failed",
        v1::AuditOutcome::Unspecified => "unknown",
    }
}

pub(crate) fn audit_json(entries: &[v1::AuditEntry]) -> Value {
    Value::Array(
        entries
            .iter()
            .map(|e| {
                json!({
                    "index": e.index, "time": utc(e.time_ms, true), "identity": e.identity,
                    "action": e.action, "outcome": outcome(e.outcome()), "detail": e.detail,
                    "revision": e.revision,
                })
            })
            .collect(),
    )
}

pub(crate) fn audit_text(entries: &[v1::AuditEntry]) -> String {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.index.to_string(),
                utc(e.time_ms, false),
                e.identity.clone(),
                e.action.clone(),
                outcome(e.outcome()).to_owned(),
                e.revision.map_or_else(|| "-".to_owned(), |r| r.to_string()),
                e.detail.lines().next().unwrap_or("").to_owned(),
            ]
        })
        .collect();
    table(
        &[
            "INDEX", "TIME", "IDENTITY", "ACTION", "OUTCOME", "REVISION", "DETAIL",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_render() {
        let g = vec![
            v1::Grant {
                identity: "admin".into(),
                role: v1::Role::Admin as i32,
            },
            v1::Grant {
                identity: "ops-bot".into(),
                role: v1::Role::Viewer as i32,
            },
        ];
        assert_eq!(
            grants_json(&g),
            json!([{"identity": "admin", "role": "admin"}, {"identity": "ops-bot", "role": "viewer"}])
        );
        assert_eq!(
            grants_text(&g),
            "IDENTITY  ROLE\nadmin     admin\nops-bot   viewer\n"
        );
    }

    #[test]
    fn audit_renders() {
        let e = vec![v1::AuditEntry {
            index: 12,
            time_ms: 1_714_564_800_000,
            identity: "ops-bot".into(),
            action: "PolicyService/Apply".into(),
            outcome: v1::AuditOutcome::Refused as i32,
            detail: "identity ops-bot has role viewer; PolicyService/Apply needs admin".into(),
            revision: None,
        }];
        assert_eq!(
            audit_json(&e),
            json!([{"index": 12, "time": "2024-05-01T12:00:00.000Z", "identity": "ops-bot",
                    "action": "PolicyService/Apply", "outcome": "refused",
                    "detail": "identity ops-bot has role viewer; PolicyService/Apply needs admin",
                    "revision": null}])
        );
        let t = audit_text(&e);
        assert!(
            t.lines().nth(1).is_some_and(|l| l.starts_with(
                "12     2024-05-01T12:00:00Z  ops-bot   PolicyService/Apply  refused  -"
            )),
            "{t}"
        );
    }
}

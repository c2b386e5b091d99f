//! `policy apply|get|history|diff|rollback|check` against the live cluster.

use std::path::Path;

use bulkhead_proto::v1;
use serde_json::{json, Value};

use super::cluster::wait_enforced;
use super::conn::{Conn, Settings, EXIT_INVALID};
use super::output::{diagnostic_json, diagnostic_text, note, print, print_json, table, utc};
use crate::args::{ChangeArgs, PolicyCmd};
use crate::Fail;

/// Whether a `policy` command is the online form: apply, get, history and
/// rollback always; check without a FILE; diff of two revision numbers
/// (unless a file of that name exists).
pub(crate) fn is_online(cmd: &PolicyCmd) -> bool {
    match cmd {
        PolicyCmd::Apply { .. }
        | PolicyCmd::Get { .. }
        | PolicyCmd::History { .. }
        | PolicyCmd::Rollback { .. } => true,
        PolicyCmd::Check { file, .. } => file.is_none(),
        PolicyCmd::Diff { old, new } => revisions(old, new).is_some(),
        _ => false,
    }
}

fn revisions(a: &str, b: &str) -> Option<(u64, u64)> {
    let rev = |s: &str| {
        if Path::new(s).exists() {
            None
        } else {
            s.parse::<u64>().ok()
        }
    };
    Some((rev(a)?, rev(b)?))
}

pub(crate) async fn run(s: &Settings, cmd: PolicyCmd) -> Result<u8, Fail> {
    match cmd {
        PolicyCmd::Apply {
            file,
            dry_run,
            change,
        } => {
            let document = crate::read_source(&file.file)?;
            let conn = s.connect().await?;
            let req = v1::ApplyRequest {
                document,
                dry_run,
                comment: change.comment.clone().unwrap_or_default(),
                if_revision: change.if_revision,
                wait_timeout_ms: 0,
            };
            let r = conn
                .call("PolicyService/Apply", conn.policy().apply(conn.req(req)))
                .await?;
            finish_change(s, &conn, &r, &change, "applied").await
        }
        PolicyCmd::Rollback { revision, change } => {
            let conn = s.connect().await?;
            let req = v1::RollbackRequest {
                to: revision,
                comment: change.comment.clone().unwrap_or_default(),
                if_revision: change.if_revision,
                wait_timeout_ms: 0,
            };
            let r = conn
                .call(
                    "PolicyService/Rollback",
                    conn.policy().rollback(conn.req(req)),
                )
                .await?;
            finish_change(
                s,
                &conn,
                &r,
                &change,
                &format!("rolled back to revision {revision} as"),
            )
            .await
        }
        cmd @ (PolicyCmd::Get { .. } | PolicyCmd::History { .. }) => read(s, cmd).await,
        cmd @ (PolicyCmd::Diff { .. } | PolicyCmd::Check { .. }) => query(s, cmd).await,
        other => Err(Fail(
            EXIT_INVALID,
            format!("not an online policy command: {other:?}"),
        )),
    }
}

/// `policy get` and `policy history`.
async fn read(s: &Settings, cmd: PolicyCmd) -> Result<u8, Fail> {
    match cmd {
        PolicyCmd::Get { revision } => {
            let conn = s.connect().await?;
            let req = v1::GetPolicyRequest { revision };
            let r = conn
                .call("PolicyService/Get", conn.policy().get(conn.req(req)))
                .await?;
            if s.json {
                print_json(&revision_json(&r, true));
            } else {
                print(&revision_text(&r));
            }
            Ok(0)
        }
        PolicyCmd::History { limit } => {
            let conn = s.connect().await?;
            let req = v1::HistoryRequest {
                limit: limit.unwrap_or(0),
            };
            let r = conn
                .call(
                    "PolicyService/History",
                    conn.policy().history(conn.req(req)),
                )
                .await?;
            if s.json {
                let list: Vec<Value> = r
                    .revisions
                    .iter()
                    .map(|x| revision_json(x, false))
                    .collect();
                print_json(&Value::Array(list));
            } else {
                print(&history_text(&r.revisions));
            }
            Ok(0)
        }
        other => Err(Fail(EXIT_INVALID, format!("not a read: {other:?}"))),
    }
}

/// `policy diff` of revisions and `policy check` without a file.
async fn query(s: &Settings, cmd: PolicyCmd) -> Result<u8, Fail> {
    match cmd {
        PolicyCmd::Diff { old, new } => {
            let Some((from, to)) = revisions(&old, &new) else {
                return Err(Fail(
                    2,
                    format!("policy diff {old} {new}: not two revision numbers"),
                ));
            };
            let conn = s.connect().await?;
            let req = v1::DiffRequest { from, to: Some(to) };
            let r = conn
                .call("PolicyService/Diff", conn.policy().diff(conn.req(req)))
                .await?;
            if s.json {
                print_json(&diff_json(from, to, &r));
            } else {
                print(&r.text);
                if r.truncated {
                    note("note: the verdict comparison stopped early (work limit); the list may be incomplete");
                }
            }
            Ok(0)
        }
        PolicyCmd::Check {
            from,
            to,
            service,
            vlan,
            zone,
            revision,
            ..
        } => {
            let conn = s.connect().await?;
            let req = v1::CheckRequest {
                from,
                to,
                service,
                zone,
                vlan: vlan.map(u32::from),
                revision,
            };
            let r = conn
                .call("PolicyService/Check", conn.policy().check(conn.req(req)))
                .await?;
            if s.json {
                print_json(&check_json(&r));
            } else {
                print(&check_text(&r));
            }
            Ok(0)
        }
        other => Err(Fail(EXIT_INVALID, format!("not a query: {other:?}"))),
    }
}

/// Print the outcome of apply or rollback, then `--wait` if asked.
async fn finish_change(
    s: &Settings,
    conn: &Conn,
    r: &v1::ApplyResponse,
    change: &ChangeArgs,
    verb: &str,
) -> Result<u8, Fail> {
    if s.json {
        print_json(&apply_json(r));
        if !r.dry_run {
            for w in &r.warnings {
                note(&diagnostic_text(w));
            }
        }
    } else {
        for w in &r.warnings {
            note(&diagnostic_text(w));
        }
        if r.dry_run {
            print(&format!(
                "dry run: valid; would become revision {} (digest {}), {} warning(s)",
                r.revision,
                r.digest,
                r.warnings.len()
            ));
        } else {
            print(&format!(
                "{verb} revision {} (digest {})",
                r.revision, r.digest
            ));
        }
    }
    if let (Some(limit), false) = (change.wait, r.dry_run) {
        let n = wait_enforced(conn, r.revision, limit).await?;
        if !s.json {
            print(&format!(
                "revision {} enforced by all {n} members",
                r.revision
            ));
        }
    }
    Ok(0)
}

pub(crate) fn apply_json(r: &v1::ApplyResponse) -> Value {
    if r.dry_run {
        let warnings: Vec<Value> = r.warnings.iter().map(diagnostic_json).collect();
        json!({"revision": r.revision, "digest": r.digest, "dry_run": true, "warnings": warnings})
    } else {
        json!({"revision": r.revision, "digest": r.digest})
    }
}

pub(crate) fn revision_json(r: &v1::PolicyRevision, with_document: bool) -> Value {
    let mut v = json!({
        "revision": r.revision,
        "digest": r.digest,
        "identity": r.identity,
        "time": utc(r.time_ms, true),
        "comment": r.comment,
    });
    if with_document {
        v["document"] = Value::from(r.document.clone());
    }
    v
}

/// The document, preceded by its revision as YAML comments (so the output
/// can be applied again as it is).
fn revision_text(r: &v1::PolicyRevision) -> String {
    let mut out = format!(
        "# revision {} applied by {} at {}\n# digest {}\n",
        r.revision,
        r.identity,
        utc(r.time_ms, false),
        r.digest
    );
    if let Some(of) = r.rollback_of {
        out.push_str(&format!("# rollback of revision {of}\n"));
    }
    for line in r.comment.lines() {
        out.push_str(&format!("# comment: {line}\n"));
    }
    out.push_str(&r.document);
    out
}

pub(crate) fn history_text(revs: &[v1::PolicyRevision]) -> String {
    let rows: Vec<Vec<String>> = revs
        .iter()
        .map(|r| {
            let mut comment = r.comment.lines().next().unwrap_or("").to_owned();
            if let Some(of) = r.rollback_of {
                comment = format!("(rollback of {of}) {comment}")
                    .trim_end()
                    .to_owned();
            }
            vec![
                r.revision.to_string(),
                utc(r.time_ms, false),
                r.identity.clone(),
                r.digest.chars().take(12).collect(),
                comment,
            ]
        })
        .collect();
    table(
        &["REVISION", "TIME", "IDENTITY", "DIGEST", "COMMENT"],
        &rows,
    )
}

fn change_kind(k: v1::ChangeKind) -> &'static str {
    match k {
        v1::ChangeKind::Added => "added",
        v1::ChangeKind::Removed => "removed",
        v1::ChangeKind::Changed => "changed",
        v1::ChangeKind::Unspecified => "unspecified",
    }
}

fn verdict_json(v: Option<&v1::DiffVerdict>) -> Value {
    v.map_or(
        Value::Null,
        |v| json!({"verdict": v.verdict, "rule": v.rule}),
    )
}

pub(crate) fn diff_json(from: u64, to: u64, r: &v1::DiffResponse) -> Value {
    let verdicts: Vec<Value> = r
        .verdict_changes
        .iter()
        .map(|c| {
            json!({
                "src": c.src, "dst": c.dst, "service": c.service,
                "old": verdict_json(c.old.as_ref()), "new": verdict_json(c.new.as_ref()),
            })
        })
        .collect();
    let objects: Vec<Value> = r
        .objects
        .iter()
        .map(|o| json!({"kind": o.kind, "name": o.name, "change": change_kind(o.change()), "detail": o.detail}))
        .collect();
    json!({
        "from": from, "to": to, "text": r.text,
        "verdict_changes": verdicts, "objects": objects, "truncated": r.truncated,
    })
}

pub(crate) fn check_json(r: &v1::CheckResponse) -> Value {
    json!({
        "verdict": r.verdict, "rule": r.rule, "src_segment": r.src_segment,
        "dst_segment": r.dst_segment, "monitor": r.monitor, "revision": r.revision,
    })
}

fn check_text(r: &v1::CheckResponse) -> String {
    let mut out = format!(
        "verdict: {}\nrule: {}\nsrc_segment: {}\ndst_segment: {}\nmonitor: {}\nrevision: {}\n",
        r.verdict, r.rule, r.src_segment, r.dst_segment, r.monitor, r.revision
    );
    if r.monitor {
        out.push_str("note: the rules deny this; the destination is in monitor mode, so it is forwarded and logged as would-deny\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(n: u64) -> v1::PolicyRevision {
        v1::PolicyRevision {
            revision: n,
            digest: "ab".repeat(32),
            identity: "admin".into(),
            time_ms: 1_714_564_800_000 + n,
            comment: format!("change {n}"),
            document: "version: 1\n".into(),
            rollback_of: (n == 3).then_some(1),
        }
    }

    #[test]
    fn apply_json_shapes() {
        let mut r = v1::ApplyResponse {
            revision: 7,
            digest: "d1".into(),
            warnings: vec![],
            dry_run: false,
        };
        r.warnings.push(v1::Diagnostic {
            severity: 2,
            message: "m".into(),
            ..Default::default()
        });
        assert_eq!(apply_json(&r), json!({"revision": 7, "digest": "d1"}));
        r.dry_run = true;
        assert_eq!(
            apply_json(&r),
            json!({"revision": 7, "digest": "d1", "dry_run": true,
                   "warnings": [{"severity": "warning", "object": "", "line": 0, "column": 0, "message": "m"}]})
        );
    }

    #[test]
    fn revision_json_shapes() {
        let full = revision_json(&rev(2), true);
        assert_eq!(
            full,
            json!({"revision": 2, "digest": "ab".repeat(32), "identity": "admin",
                   "time": "2024-05-01T12:00:00.002Z", "comment": "change 2", "document": "version: 1\n"})
        );
        let short = revision_json(&rev(2), false);
        assert!(short.get("document").is_none());
        assert_eq!(short.as_object().map(|o| o.len()), Some(5));
    }

    #[test]
    fn history_table_and_document_text() {
        let t = history_text(&[rev(3), rev(2)]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "REVISION  TIME                  IDENTITY  DIGEST        COMMENT"
        );
        assert_eq!(
            lines[1],
            "3         2024-05-01T12:00:00Z  admin     abababababab  (rollback of 1) change 3"
        );
        assert_eq!(lines.len(), 3);
        let d = revision_text(&rev(3));
        assert!(
            d.starts_with("# revision 3 applied by admin at 2024-05-01T12:00:00Z\n"),
            "{d}"
        );
        assert!(d.ends_with("# comment: change 3\nversion: 1\n"), "{d}");
    }

    #[test]
    fn diff_and_check_json_mirror_the_answer() {
        let r = v1::DiffResponse {
            text: "t".into(),
            verdict_changes: vec![v1::VerdictChange {
                src: "web".into(),
                dst: "db".into(),
                service: "tcp/5432".into(),
                old: Some(v1::DiffVerdict {
                    verdict: "deny".into(),
                    rule: "default".into(),
                }),
                new: Some(v1::DiffVerdict {
                    verdict: "allow".into(),
                    rule: "web-db".into(),
                }),
            }],
            objects: vec![v1::ObjectChange {
                kind: "rule".into(),
                name: "web-db".into(),
                change: 1,
                detail: String::new(),
            }],
            truncated: false,
        };
        let v = diff_json(2, 3, &r);
        assert_eq!(
            v["verdict_changes"][0]["new"],
            json!({"verdict": "allow", "rule": "web-db"})
        );
        assert_eq!(v["objects"][0]["change"], "added");
        let c = v1::CheckResponse {
            verdict: "allow".into(),
            rule: "r".into(),
            src_segment: "a".into(),
            dst_segment: "b".into(),
            monitor: false,
            revision: 4,
        };
        assert_eq!(
            check_json(&c),
            json!({"verdict": "allow", "rule": "r", "src_segment": "a", "dst_segment": "b", "monitor": false, "revision": 4})
        );
    }

    #[test]
    fn online_forms_are_told_apart() {
        let diff = |a: &str, b: &str| PolicyCmd::Diff {
            old: a.into(),
            new: b.into(),
        };
        assert!(is_online(&diff("3", "5")));
        assert!(!is_online(&diff("a.yaml", "5")));
        assert!(!is_online(&diff("Cargo.toml", "b.yaml")));
        assert!(!is_online(&diff("-1", "2")));
    }
}

//! `PolicyService`: apply (validate, test, lint, then replicate), validate,
//! read revisions, diff, roll back and check a flow against a revision.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bulkhead_cluster::{digest, ApplyOutcome, Change, Refusal, Revision, State};
use bulkhead_policy::{Diagnostic, Policy, Severity};
use bulkhead_proto::v1::{self, policy_service_server::PolicyService};
use tonic::{Request, Response, Status};

use crate::ctx::{caller, Ctx, Op};

/// Name of a submitted document in diagnostics.
const ORIGIN: &str = "policy";
/// Revisions in a `History` answer when the request sets no limit.
const DEFAULT_HISTORY: usize = 50;

/// The policy service of one member.
#[derive(Debug)]
pub struct PolicySvc {
    pub(crate) ctx: Arc<Ctx>,
}

fn proto_diag(d: &Diagnostic) -> v1::Diagnostic {
    v1::Diagnostic {
        severity: match d.severity {
            Severity::Error => v1::Severity::Error,
            Severity::Warning => v1::Severity::Warning,
        } as i32,
        object: d.object.clone().unwrap_or_default(),
        line: d.line,
        column: d.column,
        message: d.message.clone(),
    }
}

/// Every diagnostic, one per line (`file:line:col: object: message`).
pub(crate) fn join(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn invalid_message(diags: &[Diagnostic]) -> String {
    format!(
        "policy is invalid: {} error(s)\n{}",
        diags.len(),
        join(diags)
    )
}

/// "no revision 7; latest is 5".
fn no_revision(state: &State, n: u64) -> Status {
    match state.current_revision() {
        Some(cur) => Status::not_found(format!("no revision {n}; latest is {}", cur.number)),
        None => Status::not_found(format!("no revision {n}; no policy has been applied yet")),
    }
}

fn pick(state: &State, n: Option<u64>) -> Result<Revision, Status> {
    match n {
        Some(n) => state
            .revision(n)
            .cloned()
            .ok_or_else(|| no_revision(state, n)),
        None => state.current_revision().cloned().ok_or_else(|| {
            Status::not_found(
                "no policy has been applied yet; apply one with `bulkctl policy apply`",
            )
        }),
    }
}

/// Loads a stored revision (it was valid when stored).
pub(crate) fn load_revision(rev: &Revision) -> Result<Policy, Status> {
    bulkhead_policy::load(&rev.document, &format!("revision {}", rev.number))
        .map(|l| l.policy)
        .map_err(|d| {
            Status::internal(format!(
                "stored revision {} no longer loads: {}",
                rev.number,
                join(&d)
            ))
        })
}

fn proto_revision(r: &Revision, with_document: bool) -> v1::PolicyRevision {
    v1::PolicyRevision {
        revision: r.number,
        digest: r.digest.clone(),
        identity: r.identity.clone(),
        time_ms: r.time_ms,
        comment: r.comment.clone(),
        document: if with_document {
            r.document.clone()
        } else {
            String::new()
        },
        rollback_of: r.rollback_of,
    }
}

/// The outcome of a policy write as a reply.
/// `digest` is the new revision's (this member may not have applied it yet).
fn revision_reply(
    state: &State,
    outcome: ApplyOutcome,
    digest: String,
    warnings: Vec<v1::Diagnostic>,
) -> Result<v1::ApplyResponse, Status> {
    match outcome {
        ApplyOutcome::Revision(n) => Ok(v1::ApplyResponse {
            revision: n,
            digest,
            warnings,
            dry_run: false,
        }),
        ApplyOutcome::Refused(Refusal::StaleRevision { expected, current }) => {
            Err(Status::failed_precondition(format!(
                "revision changed: now {current}, you expected {expected}; fetch the current policy and retry"
            )))
        }
        ApplyOutcome::Refused(Refusal::UnknownRevision { requested }) => {
            Err(no_revision(state, requested))
        }
        ApplyOutcome::Refused(r) => Err(Status::failed_precondition(r.to_string())),
        ApplyOutcome::Ok => Err(Status::internal("the policy write made no revision")),
    }
}

impl PolicySvc {
    /// Validate and lint; the refusal (already audited) or the warnings.
    fn check_document(
        &self,
        identity: &str,
        document: &str,
    ) -> Result<Vec<v1::Diagnostic>, Status> {
        match bulkhead_policy::validate_full(document, ORIGIN) {
            Ok(loaded) => {
                let mut warnings: Vec<v1::Diagnostic> =
                    loaded.warnings.iter().map(proto_diag).collect();
                warnings.extend(bulkhead_policy::lint(&loaded.policy).iter().map(proto_diag));
                Ok(warnings)
            }
            Err(diags) => {
                let message = invalid_message(&diags);
                self.ctx.refuse(identity, "PolicyService/Apply", &message);
                Err(Status::invalid_argument(message))
            }
        }
    }

    /// With `wait_ms` > 0: waits until every member enforces `revision`.
    async fn wait_enforced(&self, revision: u64, wait_ms: u32) -> Result<(), Status> {
        if wait_ms == 0 {
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_millis(u64::from(wait_ms));
        loop {
            let members = crate::cluster_svc::member_states(&self.ctx).await;
            let laggards: Vec<String> = members
                .iter()
                .filter(|m| m.enforced_revision < revision)
                .map(|m| format!("{} (enforces {})", m.name, m.enforced_revision))
                .collect();
            if laggards.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Status::deadline_exceeded(format!(
                    "revision {revision} is committed but not yet enforced by: {}",
                    laggards.join(", ")
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tonic::async_trait]
impl PolicyService for PolicySvc {
    async fn apply(
        &self,
        request: Request<v1::ApplyRequest>,
    ) -> Result<Response<v1::ApplyResponse>, Status> {
        let who = caller(&request)?;
        let req = request.into_inner();
        let warnings = self.check_document(&who.identity, &req.document)?;
        if req.dry_run {
            let next = self.ctx.state().current_revision().map_or(0, |r| r.number) + 1;
            return Ok(Response::new(v1::ApplyResponse {
                revision: next,
                digest: digest(&req.document),
                warnings,
                dry_run: true,
            }));
        }
        let new_digest = digest(&req.document);
        let change = Change::PutPolicy {
            document: req.document,
            comment: req.comment,
            expected_revision: req.if_revision,
        };
        let (_, outcome) = self.ctx.write(&who.identity, Op::Change(change)).await?;
        let reply = revision_reply(&self.ctx.state(), outcome, new_digest, warnings)?;
        tracing::info!(member = %self.ctx.name, identity = %who.identity, revision = reply.revision, "policy applied");
        self.wait_enforced(reply.revision, req.wait_timeout_ms)
            .await?;
        Ok(Response::new(reply))
    }

    async fn validate(
        &self,
        request: Request<v1::ValidateRequest>,
    ) -> Result<Response<v1::ValidateResponse>, Status> {
        let doc = request.into_inner().document;
        let reply = match bulkhead_policy::load(&doc, ORIGIN) {
            Err(diags) => v1::ValidateResponse {
                valid: false,
                diagnostics: diags.iter().map(proto_diag).collect(),
                tests_passed: 0,
                tests_failed: 0,
            },
            Ok(loaded) => {
                let tests = loaded.policy.run_tests();
                let failed = tests.iter().filter(|t| !t.passed).count();
                let mut diagnostics: Vec<v1::Diagnostic> = match failed {
                    0 => Vec::new(),
                    _ => bulkhead_policy::validate_full(&doc, ORIGIN)
                        .err()
                        .unwrap_or_default()
                        .iter()
                        .map(proto_diag)
                        .collect(),
                };
                diagnostics.extend(loaded.warnings.iter().map(proto_diag));
                diagnostics.extend(bulkhead_policy::lint(&loaded.policy).iter().map(proto_diag));
                v1::ValidateResponse {
                    valid: failed == 0,
                    diagnostics,
                    tests_passed: u32::try_from(tests.len() - failed).unwrap_or(u32::MAX),
                    tests_failed: u32::try_from(failed).unwrap_or(u32::MAX),
                }
            }
        };
        Ok(Response::new(reply))
    }

    async fn get(
        &self,
        request: Request<v1::GetPolicyRequest>,
    ) -> Result<Response<v1::PolicyRevision>, Status> {
        let state = self.ctx.read_state().await;
        let rev = pick(&state, request.into_inner().revision)?;
        Ok(Response::new(proto_revision(&rev, true)))
    }

    async fn history(
        &self,
        request: Request<v1::HistoryRequest>,
    ) -> Result<Response<v1::HistoryResponse>, Status> {
        let limit = match request.into_inner().limit {
            0 => DEFAULT_HISTORY,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let state = self.ctx.read_state().await;
        let revisions = state
            .revisions
            .iter()
            .rev()
            .take(limit)
            .map(|r| proto_revision(r, false))
            .collect();
        Ok(Response::new(v1::HistoryResponse { revisions }))
    }

    async fn diff(
        &self,
        request: Request<v1::DiffRequest>,
    ) -> Result<Response<v1::DiffResponse>, Status> {
        let req = request.into_inner();
        let state = self.ctx.read_state().await;
        let old = load_revision(&pick(&state, Some(req.from))?)?;
        let new = load_revision(&pick(&state, req.to)?)?;
        let d = bulkhead_policy::diff(&old, &new);
        let verdict = |v: &bulkhead_policy::diff::Verdict| v1::DiffVerdict {
            verdict: v.verdict.clone(),
            rule: v.rule.clone(),
        };
        let reply = v1::DiffResponse {
            text: d.to_string(),
            verdict_changes: d
                .verdict_changes
                .iter()
                .map(|c| v1::VerdictChange {
                    src: c.src.clone(),
                    dst: c.dst.clone(),
                    service: c.service.clone(),
                    old: Some(verdict(&c.old)),
                    new: Some(verdict(&c.new)),
                })
                .collect(),
            objects: d
                .objects
                .iter()
                .map(|o| v1::ObjectChange {
                    kind: o.kind.to_owned(),
                    name: o.name.clone(),
                    change: match o.change {
                        bulkhead_policy::diff::Change::Added => v1::ChangeKind::Added,
                        bulkhead_policy::diff::Change::Removed => v1::ChangeKind::Removed,
                        bulkhead_policy::diff::Change::Changed => v1::ChangeKind::Changed,
                    } as i32,
                    detail: o.detail.clone().unwrap_or_default(),
                })
                .collect(),
            truncated: d.truncated,
        };
        Ok(Response::new(reply))
    }

    async fn rollback(
        &self,
        request: Request<v1::RollbackRequest>,
    ) -> Result<Response<v1::ApplyResponse>, Status> {
        let who = caller(&request)?;
        let req = request.into_inner();
        let change = Change::Rollback {
            to: req.to,
            comment: req.comment,
            expected_revision: req.if_revision,
        };
        let (_, outcome) = self.ctx.write(&who.identity, Op::Change(change)).await?;
        let state = self.ctx.state();
        let target = state
            .revision(req.to)
            .map(|r| r.digest.clone())
            .unwrap_or_default();
        let reply = revision_reply(&state, outcome, target, Vec::new())?;
        self.wait_enforced(reply.revision, req.wait_timeout_ms)
            .await?;
        Ok(Response::new(reply))
    }

    async fn check(
        &self,
        request: Request<v1::CheckRequest>,
    ) -> Result<Response<v1::CheckResponse>, Status> {
        let req = request.into_inner();
        let state = self.ctx.read_state().await;
        let rev = pick(&state, req.revision)?;
        let policy = load_revision(&rev)?;
        let vlan = req
            .vlan
            .map(|v| {
                u16::try_from(v)
                    .map_err(|_| Status::invalid_argument(format!("VLAN {v} is outside 1..=4094")))
            })
            .transpose()?;
        let o = policy
            .check(&req.from, &req.to, &req.service, vlan, req.zone.as_deref())
            .map_err(|d| Status::invalid_argument(d.to_string()))?;
        Ok(Response::new(v1::CheckResponse {
            verdict: bulkhead_policy::diff::action_word(o.verdict).to_owned(),
            rule: o.rule,
            src_segment: o.src_segment,
            dst_segment: o.dst_segment,
            monitor: o.monitor,
            revision: rev.number,
        }))
    }
}

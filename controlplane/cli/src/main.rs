//! `bulkctl`: the Bulkhead management client and the offline policy tools.
//!
//! Offline: `bulkctl policy validate|lint|test|check FILE|diff FILES|fmt`
//! work on files (or `-` for standard input) with `bulkhead-policy`;
//! `bulkctl pki init DIR` and `bulkctl pki issue DIR NAME [--host ADDR]...`
//! make the cluster's lab PKI (`bulkhead-pki`).
//!
//! Online: `policy apply|get|history|rollback`, `policy check` without a
//! FILE, `policy diff` of two revision numbers, `endpoint`, `cluster`,
//! `access`, `audit`, `stats`, `conns`, `flows` speak gRPC (`bulkhead.v1`)
//! with mutual TLS to one member given by `--endpoint` (see [`online`]).
//! A current-thread tokio runtime exists only while an online command runs.
//! bulkctl never links DPDK.
//!
//! Modules: [`args`] (every command and flag), `main.rs` (offline commands
//! and dispatch), [`online`] (connection and errors, one module per
//! service group, output formatting).
//!
//! Exit codes: 0 success; 1 a finding (`test` failures, `lint --strict`
//! warnings, `fmt --check` differences) or an unexpected server error; 2
//! invalid input (usage, unreadable file, invalid policy); 3 refused by the
//! cluster (role, stale `--if-revision`, unknown revision or member, already
//! exists); 4 unavailable (unreachable, TLS, no quorum, deadline, `--wait`
//! timed out).
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

mod appliance_zones;
mod args;
mod online;

use args::{Cli, Command, FileArg, PkiCmd, PolicyCmd};
use bulkhead_policy::{limits::MAX_DOCUMENT_BYTES, Diagnostic, Loaded};
use clap::Parser;

/// A failure with the exit code to use and the message for stderr.
#[derive(Debug)]
pub(crate) struct Fail(pub(crate) u8, pub(crate) String);

fn origin(path: &std::path::Path) -> String {
    if path.as_os_str() == "-" {
        "<stdin>".into()
    } else {
        path.display().to_string()
    }
}

/// Read a policy, refusing anything larger than the document limit without
/// reading all of it.
pub(crate) fn read_source(path: &std::path::Path) -> Result<String, Fail> {
    let name = origin(path);
    let limit = u64::try_from(MAX_DOCUMENT_BYTES)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut buf = Vec::new();
    let res = if path.as_os_str() == "-" {
        std::io::stdin().lock().take(limit).read_to_end(&mut buf)
    } else {
        match std::fs::File::open(path) {
            Ok(f) => f.take(limit).read_to_end(&mut buf),
            Err(e) => return Err(Fail(2, format!("{name}: cannot open: {e}"))),
        }
    };
    if let Err(e) = res {
        return Err(Fail(2, format!("{name}: cannot read: {e}")));
    }
    if buf.len() > MAX_DOCUMENT_BYTES {
        return Err(Fail(
            2,
            format!("{name}: document is larger than the limit of {MAX_DOCUMENT_BYTES} bytes"),
        ));
    }
    String::from_utf8(buf).map_err(|e| {
        Fail(
            2,
            format!(
                "{name}: not UTF-8 text (byte {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

fn join(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn load(path: &std::path::Path) -> Result<Loaded, Fail> {
    let src = read_source(path)?;
    bulkhead_policy::load(&src, &origin(path)).map_err(|e| Fail(2, invalid(&e)))
}

fn invalid(e: &[Diagnostic]) -> String {
    format!("{}\npolicy is invalid: {} error(s)", join(e), e.len())
}

fn warn_all(diags: &[Diagnostic]) {
    let mut err = std::io::stderr().lock();
    for d in diags {
        let _ = writeln!(err, "{d}");
    }
}

fn run(cli: Cli) -> Result<u8, Fail> {
    let Cli { global, command } = cli;
    match command {
        Command::Policy(cmd) if !online::is_online_policy(&cmd) => run_policy(cmd, global.json),
        Command::Pki(cmd) => run_pki(cmd),
        online_cmd => online::run(&global, online_cmd),
    }
}

fn run_pki(cmd: PkiCmd) -> Result<u8, Fail> {
    let mut out = std::io::stdout().lock();
    match cmd {
        PkiCmd::Init { dir } => {
            let done = bulkhead_pki::init(&dir).map_err(|e| Fail(2, e.to_string()))?;
            for path in [
                &done.ca_cert,
                &done.ca_key,
                &done.admin.cert,
                &done.admin.key,
            ] {
                let _ = writeln!(out, "wrote {}", path.display());
            }
        }
        PkiCmd::Issue { dir, name, hosts } => {
            let done =
                bulkhead_pki::issue(&dir, &name, &hosts).map_err(|e| Fail(2, e.to_string()))?;
            for path in [&done.cert, &done.key] {
                let _ = writeln!(out, "wrote {}", path.display());
            }
        }
    }
    Ok(0)
}

fn run_policy(cmd: PolicyCmd, json: bool) -> Result<u8, Fail> {
    let mut out = std::io::stdout().lock();
    match cmd {
        PolicyCmd::Validate(f) => {
            let src = read_source(&f.file)?;
            let name = origin(&f.file);
            let loaded =
                bulkhead_policy::validate_full(&src, &name).map_err(|e| Fail(2, invalid(&e)))?;
            warn_all(&loaded.warnings);
            warn_all(&bulkhead_policy::lint(&loaded.policy));
            let p = &loaded.policy;
            let _ = writeln!(
                out,
                "{name}: valid ({} segments, {} rules, {} tests passed)",
                p.ruleset().segments.len(),
                p.ruleset().rules.len(),
                p.document().tests.len()
            );
            Ok(0)
        }
        PolicyCmd::Lint {
            file,
            strict,
            appliance,
        } => {
            let loaded = load(&file.file)?;
            let mut all = loaded.warnings.clone();
            all.extend(bulkhead_policy::lint(&loaded.policy));
            if !appliance.is_empty() {
                let mut bound = std::collections::BTreeSet::new();
                for path in &appliance {
                    bound.extend(appliance_zones::bound_zones(path).map_err(|e| Fail(2, e))?);
                }
                all.extend(bulkhead_policy::lint::unbound_zones(&loaded.policy, &bound));
            }
            for d in &all {
                let _ = writeln!(out, "{d}");
            }
            if all.is_empty() {
                let _ = writeln!(out, "{}: no lint warnings", origin(&file.file));
            }
            Ok(if strict && !all.is_empty() { 1 } else { 0 })
        }
        PolicyCmd::Test(f) => {
            let loaded = load(&f.file)?;
            let outcomes = loaded.policy.run_tests();
            for t in &outcomes {
                let _ = writeln!(out, "{t}");
            }
            let failed = outcomes.iter().filter(|t| !t.passed).count();
            let _ = writeln!(
                out,
                "{} of {} tests passed{}",
                outcomes.len() - failed,
                outcomes.len(),
                if failed > 0 {
                    format!("; {failed} FAILED")
                } else {
                    String::new()
                }
            );
            Ok(if failed > 0 { 1 } else { 0 })
        }
        cmd @ PolicyCmd::Check { .. } => check_file(cmd, json),
        PolicyCmd::Diff { old, new } => {
            let (old, new) = (PathBuf::from(old), PathBuf::from(new));
            if old.as_os_str() == "-" && new.as_os_str() == "-" {
                return Err(Fail(
                    2,
                    "only one of OLD and NEW can be standard input".into(),
                ));
            }
            let a = load(&old)?;
            let b = load(&new)?;
            let d = bulkhead_policy::diff(&a.policy, &b.policy);
            if json {
                let _ = writeln!(out, "{}", d.to_json());
            } else {
                let _ = write!(out, "{d}");
            }
            Ok(0)
        }
        PolicyCmd::Fmt { file, check, write } => fmt_file(&file, check, write),
        PolicyCmd::Apply { .. }
        | PolicyCmd::Get { .. }
        | PolicyCmd::History { .. }
        | PolicyCmd::Rollback { .. } => {
            Err(Fail(2, "an online command reached the offline path".into()))
        }
    }
}

/// `policy check FILE ...`: judge one connection against a file.
fn check_file(cmd: PolicyCmd, json: bool) -> Result<u8, Fail> {
    let PolicyCmd::Check {
        file,
        from,
        to,
        service,
        vlan,
        zone,
        revision: _,
    } = cmd
    else {
        return Err(Fail(2, "not a policy check".into()));
    };
    let mut out = std::io::stdout().lock();
    let Some(file) = file else {
        return Err(Fail(2, "policy check: no FILE and not online".into()));
    };
    let loaded = load(&file)?;
    let o = loaded
        .policy
        .check(&from, &to, &service, vlan, zone.as_deref())
        .map_err(|d| Fail(2, d.to_string()))?;
    let verdict = bulkhead_policy::diff::action_word(o.verdict);
    if json {
        let v = serde_json::json!({
            "verdict": verdict,
            "rule": o.rule,
            "src_segment": o.src_segment,
            "dst_segment": o.dst_segment,
            "monitor": o.monitor,
        });
        let _ = writeln!(out, "{v}");
    } else {
        let _ = writeln!(out, "verdict: {verdict}");
        let _ = writeln!(out, "rule: {}", o.rule);
        let _ = writeln!(out, "src_segment: {}", o.src_segment);
        let _ = writeln!(out, "dst_segment: {}", o.dst_segment);
        let _ = writeln!(out, "monitor: {}", o.monitor);
        if o.monitor {
            let _ = writeln!(out, "note: the rules deny this; the destination is in monitor mode, so it is forwarded and logged as would-deny");
        }
    }
    Ok(0)
}

/// `policy fmt`: print, check or rewrite the canonical form.
fn fmt_file(file: &FileArg, check: bool, write: bool) -> Result<u8, Fail> {
    let mut out = std::io::stdout().lock();
    let src = read_source(&file.file)?;
    let name = origin(&file.file);
    let loaded = bulkhead_policy::load(&src, &name).map_err(|e| Fail(2, invalid(&e)))?;
    let text = bulkhead_policy::format(&loaded.policy);
    if check {
        if text == src {
            return Ok(0);
        }
        let _ = writeln!(
            std::io::stderr(),
            "{name}: not in canonical form (run `bulkctl policy fmt --write {name}`)"
        );
        return Ok(1);
    }
    if write {
        if file.file.as_os_str() == "-" {
            return Err(Fail(2, "--write needs a file, not standard input".into()));
        }
        if text != src {
            std::fs::write(&file.file, &text)
                .map_err(|e| Fail(2, format!("{name}: cannot write: {e}")))?;
        }
        return Ok(0);
    }
    let _ = write!(out, "{text}");
    Ok(0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(Fail(code, msg)) => {
            let _ = writeln!(std::io::stderr(), "bulkctl: {msg}");
            ExitCode::from(code)
        }
    }
}

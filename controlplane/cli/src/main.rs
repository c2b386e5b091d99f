//! `bulkctl`: the Bulkhead management client and the offline policy tools.
//!
//! Offline today: `bulkctl policy validate|lint|test|check|diff|fmt` work on
//! files (or `-` for standard input) with `bulkhead-policy`, never DPDK. The
//! command tree is laid out so the same subcommands can gain online forms
//! (`--server`, reserved: refused with a clear message for now).
//!
//! `bulkctl pki init DIR` and `bulkctl pki issue DIR NAME [--host ADDR]...`
//! make the cluster's lab PKI (`bulkhead-pki`).
//!
//! Exit codes: 0 success; 1 a finding (`test` failures, `lint --strict`
//! warnings, `fmt --check` differences); 2 invalid document or usage.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

mod appliance_zones;

use bulkhead_policy::{limits::MAX_DOCUMENT_BYTES, Diagnostic, Loaded};
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "bulkctl",
    version,
    about = "Bulkhead management client and offline policy tools",
    after_help = "Examples:\n  bulkctl policy validate configs/policies/three-tier.yaml\n  bulkctl policy check three-tier.yaml --from web --to db --service tcp/5432 --json\n  bulkctl policy diff three-tier.yaml three-tier-v2.yaml\n\nExit codes: 0 ok, 1 findings (failed tests, lint --strict, fmt --check), 2 invalid document or usage."
)]
struct Cli {
    /// Management API address of an appliance (reserved for online mode; not available yet).
    #[arg(long, global = true, value_name = "URL")]
    server: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Policy as code: validate, lint, test, check, diff and format policy files.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Lab PKI: the cluster CA and the certificates of members and clients.
    #[command(subcommand)]
    Pki(PkiCmd),
}

#[derive(Debug, Subcommand)]
enum PkiCmd {
    /// Make a new CA in DIR (ca.crt, ca.key) and an `admin` identity (admin.crt, admin.key).
    #[command(
        after_help = "Refuses to overwrite an existing CA. Key files are written with mode 0600.\n\nExit: 0 written, 2 refused (the message names the problem).\n\nExample:\n  bulkctl pki init /etc/bulkhead/pki"
    )]
    Init {
        /// Directory of the PKI (created if missing).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Issue DIR/NAME.crt and DIR/NAME.key, signed by the CA in DIR (TLS server and client use).
    #[command(
        after_help = "NAME is the identity (certificate common name): letters, digits, '_', '.', '-', at most 128 bytes.\nEach --host (IP address or DNS name) becomes a subject alternative name; members need the\naddresses they are reached at.\n\nExit: 0 written, 2 refused (invalid name or host, no CA, identity exists).\n\nExamples:\n  bulkctl pki issue /etc/bulkhead/pki gw-1 --host 10.0.0.11 --host gw-1.lab\n  bulkctl pki issue /etc/bulkhead/pki ops-bot"
    )]
    Issue {
        /// Directory of the PKI (made by `bulkctl pki init`).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Identity name (the certificate's common name).
        #[arg(value_name = "NAME")]
        name: String,
        /// IP address or DNS name the identity serves at (repeatable).
        #[arg(long = "host", value_name = "ADDR")]
        hosts: Vec<String>,
    },
}

/// A policy file, or `-` for standard input.
#[derive(Debug, Args)]
struct FileArg {
    /// Policy file (YAML or JSON), or `-` for standard input.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

#[derive(Debug, Subcommand)]
enum PolicyCmd {
    /// Check a policy: structure, references, limits, and its tests (a failing test is an error).
    #[command(
        after_help = "Exit: 0 valid (warnings on stderr), 2 invalid (every error listed on stderr).\n\nExample:\n  bulkctl policy validate configs/policies/three-tier.yaml\n  cat policy.yaml | bulkctl policy validate -"
    )]
    Validate(FileArg),
    /// Lint warnings: world to admin/db ports, shadowed or unused rules, unused or empty groups and services, default allow, memberless segments.
    #[command(
        after_help = "Exit: 0 (warnings printed), 1 with --strict when there is any warning, 2 invalid document.\n\nExample:\n  bulkctl policy lint --strict configs/policies/pci-cardholder.yaml"
    )]
    Lint {
        #[command(flatten)]
        file: FileArg,
        /// Treat warnings as errors (exit 1 if any).
        #[arg(long)]
        strict: bool,
        /// Appliance configurations (bulkheadd.toml, repeatable): note every
        /// zone the policy names that none of them binds.
        #[arg(long, value_name = "CONFIG")]
        appliance: Vec<PathBuf>,
    },
    /// Run the policy's tests: one line per test.
    #[command(
        after_help = "Exit: 0 all pass, 1 any fails, 2 invalid document.\n\nExample:\n  bulkctl policy test configs/policies/three-tier.yaml"
    )]
    Test(FileArg),
    /// Judge one connection: verdict, deciding rule, source and destination segments, monitor flag.
    #[command(
        after_help = "FROM and TO are a segment name (the packet is taken to be in that segment) or an IP address\n(placed by longest prefix, or by --vlan for the source; --zone checks the ingress zone). SERVICE is one protocol with one port\nor type: tcp/5432, udp/53, sctp/3868, icmp/8, icmpv6/128, proto/47.\nThe policy's tests are not run (use `validate`).\n\nExit: 0 for any verdict, 2 invalid document or input.\n\nExamples:\n  bulkctl policy check three-tier.yaml --from web --to db --service tcp/5432\n  bulkctl policy check three-tier.yaml --from 10.0.20.3 --to 10.0.30.7 --service tcp/5432 --json\n  bulkctl policy check three-tier.yaml --from 10.0.10.9 --vlan 10 --to app --service tcp/8080\n  bulkctl policy check zoned.yaml --from 10.0.20.3 --zone clients --to db --service tcp/5432"
    )]
    Check {
        #[command(flatten)]
        file: FileArg,
        /// Source: segment name or IP address.
        #[arg(long, value_name = "SEGMENT|IP")]
        from: String,
        /// Destination: segment name or IP address.
        #[arg(long, value_name = "SEGMENT|IP")]
        to: String,
        /// One protocol with one port or type, e.g. tcp/443.
        #[arg(long, value_name = "SPEC")]
        service: String,
        /// Ingress 802.1Q VLAN of the frame (only with an IP source).
        #[arg(long, value_name = "N")]
        vlan: Option<u16>,
        /// Ingress zone of the frame, checked against the source segment's
        /// `zones` (only with an IP source; unchecked when absent).
        #[arg(long, value_name = "ZONE")]
        zone: Option<String>,
        /// Print exactly one JSON object: {"verdict","rule","src_segment","dst_segment","monitor"}.
        #[arg(long)]
        json: bool,
    },
    /// Semantic difference: traffic whose verdict changes, and objects added, removed or changed.
    #[command(
        after_help = "Exit: 0 (whether or not they differ), 2 invalid document.\n\nExample:\n  bulkctl policy diff configs/policies/three-tier.yaml configs/policies/three-tier-v2.yaml"
    )]
    Diff {
        /// The old policy (or `-`).
        #[arg(value_name = "OLD")]
        old: PathBuf,
        /// The new policy (or `-`, not both).
        #[arg(value_name = "NEW")]
        new: PathBuf,
        /// Print the diff as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Canonical formatting (comments are not kept). Prints to stdout unless --write or --check.
    #[command(
        after_help = "Exit: 0 ok, 1 with --check when the file is not canonical, 2 invalid document.\n\nExamples:\n  bulkctl policy fmt policy.yaml > policy.canonical.yaml\n  bulkctl policy fmt --check policy.yaml\n  bulkctl policy fmt --write policy.yaml"
    )]
    Fmt {
        #[command(flatten)]
        file: FileArg,
        /// Exit 1 if the file is not already in canonical form (prints nothing else).
        #[arg(long, conflicts_with = "write")]
        check: bool,
        /// Rewrite the file in place.
        #[arg(long)]
        write: bool,
    },
}

/// A failure with the exit code to use.
#[derive(Debug)]
struct Fail(u8, String);

fn origin(path: &std::path::Path) -> String {
    if path.as_os_str() == "-" {
        "<stdin>".into()
    } else {
        path.display().to_string()
    }
}

/// Read a policy, refusing anything larger than the document limit without
/// reading all of it.
fn read_source(path: &std::path::Path) -> Result<String, Fail> {
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
    if let Some(s) = &cli.server {
        return Err(Fail(
            2,
            format!(
                "--server {s}: online mode is not available yet; the policy and pki commands work offline"
            ),
        ));
    }
    match cli.command {
        Command::Policy(cmd) => run_policy(cmd),
        Command::Pki(cmd) => run_pki(cmd),
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

fn run_policy(cmd: PolicyCmd) -> Result<u8, Fail> {
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
        PolicyCmd::Check {
            file,
            from,
            to,
            service,
            vlan,
            zone,
            json,
        } => {
            let loaded = load(&file.file)?;
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
        PolicyCmd::Diff { old, new, json } => {
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
        PolicyCmd::Fmt { file, check, write } => {
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
    }
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

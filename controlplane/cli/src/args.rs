//! The command line: every command, flag and help text (clap). Offline
//! commands run in `main.rs`; online ones in [`crate::online`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::online::duration::parse_duration;

const TOP_HELP: &str = "\
Offline (files):
  bulkctl policy validate configs/policies/three-tier.yaml
  bulkctl policy check three-tier.yaml --from web --to db --service tcp/5432 --json
  bulkctl policy diff three-tier.yaml three-tier-v2.yaml
  bulkctl pki init /etc/bulkhead/pki && bulkctl pki issue /etc/bulkhead/pki ops-bot

Online (a live cluster over mutual TLS):
  export BULKHEAD_ENDPOINT=10.0.0.11:7443 BULKHEAD_PKI=/etc/bulkhead/pki
  bulkctl cluster status
  bulkctl policy apply three-tier.yaml --comment 'open app to db' --wait
  bulkctl policy history --limit 5 --json
  bulkctl endpoint add --file endpoints.txt
  bulkctl --identity ops-bot policy check --from web --to db --service tcp/5432
  bulkctl flows --follow --segment db

Exit codes: 0 ok; 1 findings (failed tests, lint --strict, fmt --check) or an
unexpected server error; 2 invalid input (usage, file, invalid policy); 3 refused
(role, stale --if-revision, unknown revision or member, already exists);
4 unavailable (unreachable, TLS, no quorum, deadline, --wait timed out).";

#[derive(Debug, Parser)]
#[command(
    name = "bulkctl",
    version,
    about = "Bulkhead management client and offline policy tools",
    after_help = TOP_HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Policy as code: validate, lint, test, check, diff and format files; apply, get, history, roll back, check and diff on the cluster.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Lab PKI: the cluster CA and the certificates of members and clients.
    #[command(subcommand)]
    Pki(PkiCmd),
    /// Endpoints of the live cluster: addresses placed in segments (online).
    #[command(subcommand)]
    Endpoint(EndpointCmd),
    /// Cluster membership and leadership (online).
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// Roles granted to identities (online).
    #[command(subcommand)]
    Access(AccessCmd),
    /// The replicated audit log, oldest first (online).
    #[command(after_help = "Example:\n  bulkctl audit --limit 50 --since 1200")]
    Audit {
        /// Most entries to show (server default when absent).
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
        /// Only entries with an index greater than this.
        #[arg(long, value_name = "INDEX")]
        since: Option<u64>,
    },
    /// Dataplane counters of the answering member, summed and per worker (online).
    Stats,
    /// Live connections of the answering member (online).
    #[command(
        after_help = "Examples:\n  bulkctl conns --segment db --port 5432\n  bulkctl conns --address 10.0.0.0/8 --proto udp --limit 100 --json"
    )]
    Conns {
        #[command(flatten)]
        filter: FilterArgs,
        /// Most connections to show (server default when absent).
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    /// Remove the answering member's connections matching the filter, each
    /// reported as closed (operator; online). Without a filter: all of them.
    #[command(
        after_help = "Example:\n  bulkctl flush --address 10.0.10.5 --port 8080\n  bulkctl flush --segment guest --endpoint 10.0.0.11:7443"
    )]
    Flush {
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Flow events of the answering member (online).
    #[command(
        after_help = "Without --follow, prints events until none has come for 2 s (or --count events).\n\nExamples:\n  bulkctl flows --segment db\n  bulkctl flows --follow --proto tcp --port 22 --json"
    )]
    Flows {
        #[command(flatten)]
        filter: FilterArgs,
        /// Keep printing events until interrupted.
        #[arg(long, conflicts_with = "count")]
        follow: bool,
        /// Stop after this many events.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PkiCmd {
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
pub struct FileArg {
    /// Policy file (YAML or JSON), or `-` for standard input.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
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
        after_help = "FROM and TO are a segment name (the packet is taken to be in that segment) or an IP address\n(placed by longest prefix, or by --vlan for the source; --zone checks the ingress zone). SERVICE is one protocol with one port\nor type: tcp/5432, udp/53, sctp/3868, icmp/8, icmpv6/128, proto/47.\nThe policy's tests are not run (use `validate`).\nWithout FILE the live cluster judges it (--endpoint; --revision picks a revision).\n\nExit: 0 for any verdict, 2 invalid document or input (online: 3 refused, 4 unavailable).\n\nExamples:\n  bulkctl policy check three-tier.yaml --from web --to db --service tcp/5432\n  bulkctl policy check three-tier.yaml --from 10.0.20.3 --to 10.0.30.7 --service tcp/5432 --json\n  bulkctl policy check three-tier.yaml --from 10.0.10.9 --vlan 10 --to app --service tcp/8080\n  bulkctl policy check zoned.yaml --from 10.0.20.3 --zone clients --to db --service tcp/5432\n  bulkctl policy check --endpoint 10.0.0.11:7443 --from web --to db --service tcp/5432"
    )]
    Check {
        /// Policy file (YAML or JSON), or `-`; without it the live cluster is asked.
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
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
        /// Revision to judge against (online only; the current one when absent).
        #[arg(long, value_name = "N")]
        revision: Option<u64>,
    },
    /// Semantic difference: traffic whose verdict changes, and objects added, removed or changed.
    #[command(
        after_help = "OLD and NEW are files, unless both are revision numbers and no file of that name exists:\nthen the live cluster compares its revisions.\n\nExit: 0 (whether or not they differ), 2 invalid document (online: 3 unknown revision, 4 unavailable).\n\nExamples:\n  bulkctl policy diff configs/policies/three-tier.yaml configs/policies/three-tier-v2.yaml\n  bulkctl policy diff 4 7 --endpoint 10.0.0.11:7443"
    )]
    Diff {
        /// The old policy file (or `-`), or a revision number of the live cluster.
        #[arg(value_name = "OLD")]
        old: String,
        /// The new policy file (or `-`, not both), or a revision number.
        #[arg(value_name = "NEW")]
        new: String,
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
    /// Validate, test and lint FILE on the cluster, then make it the new revision (admin).
    #[command(
        after_help = "Exit: 0 applied, 2 invalid policy or failing test (diagnostics on stderr), 3 refused\n(role, stale --if-revision), 4 unavailable or --wait timed out.\n\nExamples:\n  bulkctl policy apply three-tier.yaml --comment 'open app to db' --wait\n  bulkctl policy apply three-tier.yaml --dry-run --json\n  bulkctl policy apply three-tier.yaml --if-revision 6 --wait=60s"
    )]
    Apply {
        #[command(flatten)]
        file: FileArg,
        /// Run every check on the cluster, apply nothing.
        #[arg(long, conflicts_with = "wait")]
        dry_run: bool,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Show one revision (the current one by default) with its document.
    #[command(
        after_help = "Examples:\n  bulkctl policy get\n  bulkctl policy get --revision 3 --json"
    )]
    Get {
        /// Revision to show.
        #[arg(long, value_name = "N")]
        revision: Option<u64>,
    },
    /// Revisions, newest first.
    #[command(after_help = "Example:\n  bulkctl policy history --limit 10")]
    History {
        /// Most revisions to show (server default when absent).
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    /// Make revision N's document current again, as a new revision (admin).
    #[command(
        after_help = "Exit: 0 done, 3 refused or unknown revision, 4 unavailable or --wait timed out.\n\nExample:\n  bulkctl policy rollback 4 --comment 'back out #231' --wait"
    )]
    Rollback {
        /// The revision whose document becomes current again.
        #[arg(value_name = "N")]
        revision: u64,
        #[command(flatten)]
        change: ChangeArgs,
    },
}

/// Where and as whom to reach the cluster, and how to print. Global: given
/// before or after the subcommand; ignored by the offline commands except `--json`.
#[derive(Debug, Args)]
pub struct Global {
    /// Management API of a cluster member (online commands).
    #[arg(
        long,
        global = true,
        env = "BULKHEAD_ENDPOINT",
        value_name = "ADDR:PORT"
    )]
    pub endpoint: Option<String>,
    /// PKI directory with ca.crt and the identity's NAME.crt and NAME.key.
    #[arg(long, global = true, env = "BULKHEAD_PKI", value_name = "DIR")]
    pub pki: Option<PathBuf>,
    /// Identity to present (the certificate DIR/NAME.crt).
    #[arg(
        long,
        global = true,
        env = "BULKHEAD_IDENTITY",
        default_value = "admin",
        value_name = "NAME"
    )]
    pub identity: String,
    /// Print JSON for scripts instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Deadline of each call to the cluster, in seconds.
    #[arg(long, global = true, default_value = "10", value_name = "SECS", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// Options of a policy change (apply, rollback).
#[derive(Debug, Args)]
pub struct ChangeArgs {
    /// Free text kept with the revision.
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
    /// Refuse unless the current revision is N (optimistic concurrency).
    #[arg(long, value_name = "N")]
    pub if_revision: Option<u64>,
    /// Then wait until every member enforces the new revision (bare: 30 s).
    #[arg(
        long,
        value_name = "TIMEOUT",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "30",
        value_parser = parse_duration
    )]
    pub wait: Option<Duration>,
}

#[derive(Debug, Subcommand)]
pub enum EndpointCmd {
    /// Place ADDR in SEGMENT, or every `ADDR SEGMENT` line of --file, in one change (operator).
    #[command(
        after_help = "The file has one `ADDR SEGMENT` per line; blank lines and lines starting with # are\nignored; `-` reads standard input. An address already placed moves.\n\nExamples:\n  bulkctl endpoint add 10.0.20.7 app\n  bulkctl endpoint add --file endpoints.txt"
    )]
    Add {
        /// One IPv4 or IPv6 address.
        #[arg(value_name = "ADDR", requires = "segment", conflicts_with = "file")]
        addr: Option<String>,
        /// Segment of the current policy.
        #[arg(value_name = "SEGMENT")]
        segment: Option<String>,
        /// Lines `ADDR SEGMENT` (or `-`).
        #[arg(long, value_name = "FILE", required_unless_present = "addr")]
        file: Option<PathBuf>,
    },
    /// Remove addresses (operator); unknown ones are counted, not errors.
    #[command(after_help = "Example:\n  bulkctl endpoint rm 10.0.20.7 10.0.20.8")]
    Rm {
        #[arg(value_name = "ADDR", required = true)]
        addrs: Vec<String>,
    },
    /// List endpoints.
    #[command(after_help = "Example:\n  bulkctl endpoint ls --segment db --json")]
    Ls {
        /// Only this segment's endpoints.
        #[arg(long, value_name = "SEGMENT")]
        segment: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClusterCmd {
    /// Leader, term, revision, and every member's reachability and enforced revision.
    #[command(after_help = "Example:\n  bulkctl cluster status --json")]
    Status,
    /// Add a member by name and cluster (peer) address (admin).
    #[command(after_help = "Example:\n  bulkctl cluster add-member gw-4 10.0.0.14:7444")]
    AddMember {
        #[arg(value_name = "NAME")]
        name: String,
        #[arg(value_name = "ADDR:PORT")]
        address: String,
    },
    /// Remove a member (admin).
    RemoveMember {
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Hand leadership to a member (admin).
    TransferLeader {
        #[arg(value_name = "NAME")]
        name: String,
    },
}

/// A role to grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Viewer,
    Operator,
    Admin,
}

#[derive(Debug, Subcommand)]
pub enum AccessCmd {
    /// Give IDENTITY a role, replacing any it had (admin).
    #[command(after_help = "Example:\n  bulkctl access grant ops-bot viewer")]
    Grant {
        // Not `identity`: that id is the global --identity flag (who asks).
        #[arg(value_name = "IDENTITY")]
        subject: String,
        #[arg(value_name = "ROLE")]
        role: RoleArg,
    },
    /// Take IDENTITY's role away (admin).
    Revoke {
        #[arg(value_name = "IDENTITY")]
        subject: String,
    },
    /// Every grant.
    Ls,
}

/// Which connections or flow events: every given field must match.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Source or destination segment.
    #[arg(long, value_name = "SEGMENT")]
    pub segment: Option<String>,
    /// Source or destination address or prefix (10.0.0.0/8).
    #[arg(long, value_name = "ADDR")]
    pub address: Option<String>,
    /// Source or destination port.
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// IP protocol: tcp, udp, icmp, icmpv6, sctp or a number.
    #[arg(long, value_name = "PROTO", value_parser = crate::online::dataplane::parse_proto)]
    pub proto: Option<u8>,
}

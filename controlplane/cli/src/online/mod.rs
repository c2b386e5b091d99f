//! The online commands: `bulkctl` as a gRPC client of a live cluster over
//! mutual TLS. Each command connects to the one member given by
//! `--endpoint` (followers forward writes to the leader themselves).
//!
//! Modules: [`conn`] (endpoint, certificates, TLS, deadlines, status →
//! message and exit code), [`policy`], [`endpoints`], [`cluster`] (with
//! `--wait`), [`access`] (grants and audit), [`dataplane`] (stats, conns,
//! flows), [`output`] (times, tables, JSON), [`duration`] (`--wait=15s`).
//!
//! Invariants: input is checked (files read, endpoint lines parsed) before
//! anything is contacted, so invalid input is exit 2 even with no cluster;
//! every call has a deadline (`--timeout`) except a followed flow stream;
//! the runtime is current-thread and lives only for the command.

pub(crate) mod access;
pub(crate) mod cluster;
pub(crate) mod conn;
pub(crate) mod dataplane;
pub(crate) mod duration;
pub(crate) mod endpoints;
pub(crate) mod output;
pub(crate) mod policy;

use crate::args::{Command, Global, PolicyCmd};
use crate::Fail;
use conn::{Settings, EXIT_FAILED};

/// Whether a `policy` subcommand is the online form (see [`policy::is_online`]).
pub(crate) fn is_online_policy(cmd: &PolicyCmd) -> bool {
    policy::is_online(cmd)
}

/// Run one online command on a current-thread runtime.
pub(crate) fn run(global: &Global, cmd: Command) -> Result<u8, Fail> {
    let settings = Settings::from_global(global);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Fail(EXIT_FAILED, format!("cannot start the async runtime: {e}")))?;
    rt.block_on(dispatch(&settings, cmd))
}

async fn dispatch(s: &Settings, cmd: Command) -> Result<u8, Fail> {
    match cmd {
        Command::Policy(p) => policy::run(s, p).await,
        Command::Endpoint(e) => endpoints::run(s, e).await,
        Command::Cluster(c) => cluster::run(s, c).await,
        Command::Access(a) => access::run(s, a).await,
        Command::Audit { limit, since } => access::audit(s, limit, since).await,
        Command::Stats => dataplane::stats(s).await,
        Command::Conns { filter, limit } => dataplane::conns(s, filter, limit).await,
        Command::Flush { filter } => dataplane::flush(s, filter).await,
        Command::Flows {
            filter,
            follow,
            count,
        } => dataplane::flows(s, filter, follow, count).await,
        Command::Pki(_) => Err(Fail(conn::EXIT_INVALID, "pki commands are offline".into())),
    }
}

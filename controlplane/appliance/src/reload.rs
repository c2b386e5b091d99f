//! Reading, validating and compiling the policy document, at start-up and on
//! SIGHUP.
//!
//! Invariants:
//! - Only a regular file is read, and never more than
//!   [`bulkhead_policy::limits::MAX_DOCUMENT_BYTES`] (+1 byte to tell that it
//!   is too long). The file is opened with `O_NONBLOCK` so that a FIFO cannot
//!   block the open, then its type is checked on the opened descriptor
//!   (no window between the check and the read for a rename to exploit).
//! - A reload runs on its own thread: the control loop keeps serving signals
//!   (SIGTERM within its 10 ms tick) however long a huge policy takes to
//!   compile. At most one reload runs at a time; SIGHUPs that arrive during a
//!   reload are coalesced into one more reload after it, so the file is
//!   always read again after the last SIGHUP.
//! - The compiled policy is handed back over a channel; publishing it to the
//!   engine stays with the control loop, the engine's only owner.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::thread::JoinHandle;

use bulkhead_classify::CompiledPolicy;
use bulkhead_policy::limits::MAX_DOCUMENT_BYTES;
use tracing::{error, info, warn};

use crate::run::RunError;

/// Read, validate (including the document's tests) and compile a policy.
/// Every error is reported, one per line.
pub fn load_policy(path: &Path) -> Result<CompiledPolicy, RunError> {
    let refuse = |errors: String| RunError::Policy {
        path: path.display().to_string(),
        errors,
    };
    let text = read_document(path, MAX_DOCUMENT_BYTES).map_err(|e| refuse(format!("  {e}")))?;
    let origin = path.display().to_string();
    let loaded = bulkhead_policy::validate_full(&text, &origin).map_err(|errs| {
        refuse(
            errs.iter()
                .map(|d| format!("  {d}"))
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    for w in &loaded.warnings {
        warn!(path = %path.display(), "policy: {w}");
    }
    CompiledPolicy::compile(loaded.policy.ruleset()).map_err(|e| refuse(format!("  {e}")))
}

/// The text of a policy document: a regular file of at most `limit` bytes,
/// UTF-8. Anything else is refused with a one-line reason.
pub fn read_document(path: &Path, limit: usize) -> Result<String, String> {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
    // writer. O_NOCTTY: a terminal device must not become ours. Neither
    // changes how a regular file is read.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("cannot open: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        return Err(format!(
            "not a regular file: it is {}; the policy must be a regular file",
            describe(&kind)
        ));
    }
    if meta.len() > limit as u64 {
        return Err(format!(
            "document is {} bytes; the limit is {limit}",
            meta.len()
        ));
    }
    // The file may grow after the stat: the read itself is bounded too.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() > limit {
        return Err(format!(
            "document is larger than the limit of {limit} bytes"
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// What a non-regular file is, for the refusal message.
fn describe(kind: &std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// The outcome of one reload: the compiled policy, or why it was refused.
pub type Outcome = Result<CompiledPolicy, RunError>;

/// Runs policy loads off the control loop, one at a time, coalescing
/// requests that arrive while one runs.
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    running: Option<Job>,
    /// A request arrived while a load was running: load again after it.
    again: bool,
}

#[derive(Debug)]
struct Job {
    rx: Receiver<Outcome>,
    handle: JoinHandle<()>,
}

impl Reloader {
    pub fn new(path: PathBuf) -> Reloader {
        Reloader {
            path,
            running: None,
            again: false,
        }
    }

    /// Ask for a load of the policy file: start one now, or, if one is
    /// running, one more after it (however many requests arrive meanwhile).
    pub fn request(&mut self) {
        if self.running.is_some() {
            if !self.again {
                info!(path = %self.path.display(), "a policy reload is running; another follows it");
            }
            self.again = true;
        } else {
            self.start();
        }
    }

    /// Whether a load is running.
    pub fn busy(&self) -> bool {
        self.running.is_some()
    }

    /// The outcome of a finished load, if one finished; starts the coalesced
    /// follow-up load, if one was asked for. Never blocks.
    pub fn poll(&mut self) -> Option<Outcome> {
        let job = self.running.as_ref()?;
        let outcome = match job.rx.try_recv() {
            Ok(outcome) => outcome,
            Err(TryRecvError::Empty) => return None,
            Err(TryRecvError::Disconnected) => Err(RunError::Policy {
                path: self.path.display().to_string(),
                errors: "  the reload thread stopped without a result (a bug: see the log)"
                    .to_string(),
            }),
        };
        if let Some(job) = self.running.take() {
            // It has sent its outcome (or died): joining does not wait long.
            let _ = job.handle.join();
        }
        if std::mem::take(&mut self.again) {
            self.start();
        }
        Some(outcome)
    }

    /// Stop waiting for a running load (at shutdown): its thread is left to
    /// finish or to end with the process; its outcome is discarded.
    pub fn abandon(&mut self) {
        if self.running.take().is_some() {
            warn!(path = %self.path.display(), "a policy reload was still running; abandoned");
        }
        self.again = false;
    }

    fn start(&mut self) {
        let (tx, rx) = mpsc::sync_channel(1);
        let path = self.path.clone();
        match std::thread::Builder::new()
            .name("bh-reload".into())
            .spawn(move || {
                let _ = tx.send(load_policy(&path));
            }) {
            Ok(handle) => self.running = Some(Job { rx, handle }),
            Err(e) => error!(error = %e, "cannot start a policy reload thread; reload skipped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("bh-reload-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_device_is_refused_by_type_without_reading_it() {
        let e = read_document(Path::new("/dev/zero"), 1024).unwrap_err();
        assert!(e.contains("character device"), "{e}");
    }

    #[test]
    fn a_directory_is_refused_by_type() {
        let e = read_document(&std::env::temp_dir(), 1024).unwrap_err();
        assert!(e.contains("a directory"), "{e}");
    }

    #[test]
    fn the_limit_is_inclusive() {
        let d = temp_dir("limit");
        let p = d.join("p.yaml");
        std::fs::write(&p, "x".repeat(16)).unwrap();
        assert_eq!(read_document(&p, 16).unwrap().len(), 16);
        let e = read_document(&p, 15).unwrap_err();
        assert!(e.contains("16 bytes; the limit is 15"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn requests_during_a_load_are_coalesced_into_one_more() {
        let d = temp_dir("coalesce");
        let mut r = Reloader::new(d.join("missing.yaml"));
        r.request();
        r.request();
        r.request();
        let mut outcomes = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline && (r.busy() || outcomes == 0) {
            if let Some(o) = r.poll() {
                assert!(o.is_err(), "a missing file is refused");
                outcomes += 1;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(!r.busy());
        assert_eq!(outcomes, 2, "three requests: the running load and one more");
        let _ = std::fs::remove_dir_all(&d);
    }
}

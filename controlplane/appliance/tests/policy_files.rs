//! The policy path may name something that is not a policy document: a device
//! that never ends (`/dev/zero`), a FIFO nobody writes to. bulkheadd refuses
//! it by file type at start-up (exit 2) and on SIGHUP (the running policy
//! stays in force and SIGTERM is still served), and a SIGTERM that arrives
//! while a huge policy is still compiling stops it without waiting for the
//! compile. Runs real DPDK on `net_null` ports that receive nothing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("bulkheadd-pf-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A bulkheadd with its stderr in a file, killed (by PID) on drop.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn spawn(dir: &Path, policy: &Path) -> Daemon {
        let log = dir.join("bulkheadd.log");
        let child = Command::new(env!("CARGO_BIN_EXE_bulkheadd"))
            .arg("--policy")
            .arg(policy)
            .args(["--wire", "net_null0,no-rx=1", "net_null1,no-rx=1"])
            .args(["--events", "/dev/null"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start bulkheadd");
        Daemon { child, log }
    }

    /// Start on a good policy and wait until the workers run.
    fn start(dir: &Path, policy: &Path) -> Daemon {
        let mut d = Daemon::spawn(dir, policy);
        d.wait_log("workers running", Duration::from_secs(30));
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log().contains(needle) {
            if let Ok(Some(s)) = self.child.try_wait() {
                panic!("bulkheadd exited ({s}) before {needle:?}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(st.success());
    }

    /// Wait for the exit, at most `timeout`; None if still running.
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM: the process must exit 0 within a generous bound.
    fn stop(&mut self) -> String {
        self.signal("-TERM");
        match self.wait_exit(Duration::from_secs(10)) {
            Some(s) => assert!(s.success(), "exit status {s}:\n{}", self.log()),
            None => panic!("bulkheadd did not stop on SIGTERM:\n{}", self.log()),
        }
        self.log()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn good_policy(dir: &Path) -> PathBuf {
    let p = dir.join("policy.yaml");
    std::fs::copy(repo().join("configs/policies/three-tier.yaml"), &p).unwrap();
    p
}

fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(st.success());
}

/// Start-up with the policy path naming a special file: refused, exit 2.
fn refused_at_start(policy: &Path, dir: &Path, kind: &str) {
    let mut d = Daemon::spawn(dir, policy);
    let Some(status) = d.wait_exit(Duration::from_secs(10)) else {
        panic!(
            "bulkheadd still running 10 s after start with policy {}:\n{}",
            policy.display(),
            d.log()
        );
    };
    let log = d.log();
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(log.contains(&policy.display().to_string()), "{log}");
    assert!(log.contains(kind), "{log}");
    assert!(!log.contains("workers running"), "{log}");
}

#[test]
fn start_with_dev_zero_as_the_policy_is_refused() {
    let s = Scratch::new("start-zero");
    refused_at_start(
        Path::new("/dev/zero"),
        &s.0,
        "not a regular file: it is a character device",
    );
}

#[test]
fn start_with_a_fifo_as_the_policy_is_refused() {
    let s = Scratch::new("start-fifo");
    let fifo = s.0.join("policy.yaml");
    mkfifo(&fifo);
    refused_at_start(&fifo, &s.0, "not a regular file: it is a FIFO");
}

/// Running on a good policy, the path is replaced by `replace`; SIGHUP is
/// refused with `kind` in the log, the running policy stays, SIGTERM stops it.
fn refused_on_sighup(name: &str, replace: impl FnOnce(&Path), kind: &str) {
    let s = Scratch::new(name);
    let policy = good_policy(&s.0);
    let mut d = Daemon::start(&s.0, &policy);
    std::fs::remove_file(&policy).unwrap();
    replace(&policy);
    d.signal("-HUP");
    d.wait_log("stays in force", Duration::from_secs(10));
    let log = d.stop();
    assert!(
        log.contains(kind),
        "the refusal names the file type:\n{log}"
    );
    assert!(
        log.contains(&format!("policy {} refused", policy.display())),
        "the refusal names the path:\n{log}"
    );
    assert!(
        log.contains("final counters (workers at generation [1])"),
        "{log}"
    );
}

#[test]
fn sighup_with_the_policy_a_symlink_to_dev_zero_is_refused() {
    refused_on_sighup(
        "hup-zero",
        |p| std::os::unix::fs::symlink("/dev/zero", p).unwrap(),
        "not a regular file: it is a character device",
    );
}

#[test]
fn sighup_with_the_policy_a_fifo_is_refused() {
    refused_on_sighup("hup-fifo", mkfifo, "not a regular file: it is a FIFO");
}

/// A valid policy big enough to take a while to validate and compile
/// (seconds here): 2,000 segments and 100,000 rules, about 8 MB.
fn huge_policy(path: &Path) {
    use std::fmt::Write;
    let (segments, rules) = (2000, 100_000);
    let mut t = String::from("version: 1\nsegments:\n");
    for i in 0..segments {
        let _ = writeln!(
            t,
            "  s{i}: {{id: {}, prefixes: [10.{}.{}.0/24]}}",
            i + 1,
            i / 256,
            i % 256
        );
    }
    t.push_str("rules:\n");
    for r in 0..rules {
        let _ = writeln!(
            t,
            "  - {{name: r{r}, from: [s{}], to: [s{}], services: [tcp/{}], action: allow}}",
            r % segments,
            (r * 7 + 3) % segments,
            1 + r % 60000
        );
    }
    std::fs::write(path, t).unwrap();
}

/// SIGTERM right after a SIGHUP that loads a huge policy: the control loop
/// serves it while the reload is still compiling (the log says the reload was
/// abandoned) instead of after the compile.
#[test]
fn sigterm_during_a_long_reload_is_served_without_waiting_for_it() {
    let s = Scratch::new("hup-huge");
    let policy = good_policy(&s.0);
    let mut d = Daemon::start(&s.0, &policy);
    let next = s.0.join("next.yaml");
    huge_policy(&next);
    std::fs::rename(&next, &policy).unwrap();
    d.signal("-HUP");
    d.wait_log("SIGHUP: reloading the policy", Duration::from_secs(10));
    let log = d.stop();
    assert!(
        log.contains("a policy reload was still running; abandoned"),
        "SIGTERM was served while the reload ran:\n{log}"
    );
    assert!(!log.contains("generation=2"), "{log}");
}

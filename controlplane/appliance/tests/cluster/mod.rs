//! Real `bulkheadd` cluster members on loopback (each with its own
//! `net_null` wire and data directory) and the real `bulkctl` against them.
//! Used by the cluster test binaries.
#![allow(dead_code, reason = "each test binary uses a different part")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// `bulkctl`, built beside `bulkheadd` by `cargo test --workspace`.
pub fn bulkctl_path() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_bulkheadd")).with_file_name("bulkctl");
    assert!(
        p.exists(),
        "{} is missing: build it first (cargo build -p bulkhead-cli, or cargo test --workspace)",
        p.display()
    );
    p
}

/// A scratch directory with a lab PKI, removed on drop.
pub struct Lab {
    pub dir: PathBuf,
    pub pki: PathBuf,
    /// Ports handed out so far (members get consecutive free ports).
    base_port: u16,
}

impl Lab {
    pub fn new(name: &str, members: usize, extra_identities: &[&str]) -> Lab {
        let dir =
            std::env::temp_dir().join(format!("bulkhead-cluster-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let pki = dir.join("pki");
        let lab = Lab {
            base_port: free_port_block(members + 2),
            dir,
            pki,
        };
        let pki_s = lab.pki.to_string_lossy().into_owned();
        lab.ctl_ok(&["pki", "init", &pki_s]);
        for i in 1..=members + 1 {
            lab.ctl_ok(&[
                "pki",
                "issue",
                &pki_s,
                &format!("gw-{i}"),
                "--host",
                "127.0.0.1",
            ]);
        }
        for id in extra_identities {
            lab.ctl_ok(&["pki", "issue", &pki_s, id]);
        }
        lab
    }

    pub fn addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.base_port + i as u16)
    }

    /// `gw-1=ADDR,…` for the first `n` members.
    pub fn initial(&self, n: usize) -> String {
        (1..=n)
            .map(|i| format!("gw-{i}={}", self.addr(i)))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn ctl_ok(&self, args: &[&str]) {
        let out = Command::new(bulkctl_path()).args(args).output().unwrap();
        assert!(out.status.success(), "bulkctl {args:?}: {}", text(&out));
    }

    /// `bulkctl` against member `i` as `identity`.
    pub fn ctl_as(&self, i: usize, identity: &str, args: &[&str]) -> Output {
        Command::new(bulkctl_path())
            .args(args)
            .arg("--endpoint")
            .arg(self.addr(i))
            .arg("--pki")
            .arg(&self.pki)
            .arg("--identity")
            .arg(identity)
            .output()
            .unwrap()
    }

    pub fn ctl(&self, i: usize, args: &[&str]) -> Output {
        self.ctl_as(i, "admin", args)
    }

    /// `--json` output of a successful command.
    pub fn json(&self, i: usize, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.ctl(i, &a);
        assert!(
            out.status.success(),
            "bulkctl {args:?} on gw-{i}: {}",
            text(&out)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("bulkctl {args:?}: not JSON ({e}): {}", text(&out)))
    }

    /// Write a file in the lab directory.
    pub fn file(&self, name: &str, content: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, content).unwrap();
        p.to_string_lossy().into_owned()
    }

    /// Member `i` of a cluster founded by the first `founders` members.
    pub fn start(&self, i: usize, founders: usize) -> Proc {
        self.spawn(i, &["--initial-cluster", &self.initial(founders)])
    }

    /// Member `i` joining through member `via`.
    pub fn join(&self, i: usize, via: usize) -> Proc {
        self.spawn(i, &["--join", &self.addr(via)])
    }

    fn spawn(&self, i: usize, how: &[&str]) -> Proc {
        let name = format!("gw-{i}");
        let data = self.dir.join(&name);
        let log_path = self.dir.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_bulkheadd"))
            .args(["--node", &name, "--listen", &self.addr(i)])
            .arg("--data-dir")
            .arg(&data)
            .arg("--pki")
            .arg(&self.pki)
            .args(how)
            .args(["--wire", "net_null0,no-rx=1", "net_null1,no-rx=1"])
            .args(["--idle", "adaptive", "--events", "/dev/null"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start bulkheadd");
        let mut p = Proc {
            child: Some(child),
            log: log_path,
            name,
        };
        p.wait_log("cluster member running", Duration::from_secs(60));
        p
    }

    /// Wait until `cond` holds for member `i`'s `cluster status --json`.
    pub fn wait_status(&self, i: usize, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = String::new();
        loop {
            let out = self.ctl(i, &["cluster", "status", "--json"]);
            if out.status.success() {
                if let Ok(v) = serde_json::from_slice::<Value>(&out.stdout) {
                    if cond(&v) {
                        return v;
                    }
                    last = v.to_string();
                }
            } else {
                last = text(&out);
            }
            assert!(
                Instant::now() < deadline,
                "gw-{i}: {what}: last status {last}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A running member process, killed (by PID) on drop.
pub struct Proc {
    child: Option<Child>,
    pub log: PathBuf,
    pub name: String,
}

impl Proc {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn wait_log(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log().contains(needle) {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!(
                        "{} exited ({st}) before {needle:?}:\n{}",
                        self.name,
                        self.log()
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "{}: no {needle:?}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            assert!(Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status()
                .unwrap()
                .success());
        }
    }

    /// kill -9 and reap.
    pub fn kill9(&mut self) {
        self.signal("-KILL");
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    /// SIGTERM; wait for a clean exit.
    pub fn stop(&mut self) {
        self.signal("-TERM");
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(Some(st)) = c.try_wait() {
                    assert!(st.success(), "{} exit {st}:\n{}", self.name, self.log());
                    return;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!("{} did not stop on SIGTERM:\n{}", self.name, self.log());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The first of `n` consecutive ports that are free now.
fn free_port_block(n: usize) -> u16 {
    'search: for _ in 0..50 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = l.local_addr().unwrap().port();
        drop(l);
        if base > 65000 {
            continue;
        }
        for p in base..base + n as u16 {
            if std::net::TcpListener::bind(("127.0.0.1", p)).is_err() {
                continue 'search;
            }
        }
        return base;
    }
    panic!("no block of {n} free ports on 127.0.0.1");
}

/// A policy document; `n` varies a comment-free detail so each apply is a
/// new document (a different allowed port).
pub fn policy(port: u16) -> String {
    format!(
        "version: 1\nsegments:\n  web: {{ id: 10, prefixes: [10.1.0.0/16] }}\n  db: {{ id: 20, prefixes: [10.2.0.0/16] }}\nrules:\n  - {{ name: web-to-db, from: [web], to: [db], services: [tcp/{port}], action: allow }}\ntests:\n  - {{ from: web, to: db, service: tcp/{port}, expect: allow }}\n"
    )
}

//! Shared by the end-to-end tests: a namespace topology joined only through
//! a running `bulkheadd`, clients and servers in it, and the daemon itself.
//! Each test binary uses part of it.
#![allow(dead_code, reason = "each test binary uses a different part")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One appliance at a time: the machine has two cores.
pub static SERIAL: Mutex<()> = Mutex::new(());

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn lib(file: &str) -> String {
    repo().join("perf-lab/lib").join(file).display().to_string()
}

/// A namespace topology (see perf-lab/lib/topology.sh), torn down on drop.
pub struct Topo {
    prefix: String,
}

impl Topo {
    pub fn up(prefix: &str, client: &str, server: &str, ipv6: bool) -> Topo {
        let t = Topo {
            prefix: prefix.to_string(),
        };
        let script = format!(
            ". {}; TOPO_IPV6={} topo_up {prefix} {client} {server}",
            lib("topology.sh"),
            u8::from(ipv6)
        );
        let out = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "topology: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t
    }

    pub fn ns(&self, side: &str) -> String {
        format!("{}-{side}", self.prefix)
    }

    /// Run a command in a namespace and wait for it.
    pub fn run(&self, side: &str, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(side)])
            .args(args)
            .output()
            .expect("ip netns exec")
    }

    pub fn ok(&self, side: &str, args: &[&str]) {
        let out = self.run(side, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn spawn(&self, side: &str, args: &[&str]) -> Guarded {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(side)])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        Guarded(child)
    }

    pub fn server(&self, addr: &str, port: u16, udp: bool) -> Guarded {
        let port = port.to_string();
        let mut args = vec!["python3", "-u", &*SERVER, addr, &port];
        if udp {
            args.push("--udp");
        }
        let g = self.spawn("server", &args);
        std::thread::sleep(Duration::from_millis(300));
        g
    }

    /// Connect (or send a datagram), expect the echo. Bounded by the client's 2 s timeout.
    pub fn echo(&self, addr: &str, port: u16, udp: bool) -> bool {
        let port = port.to_string();
        let mut args = vec!["python3", &*CLIENT, addr, &port, "hello through bulkhead"];
        if udp {
            args.push("--udp");
        }
        self.run("client", &args).status.success()
    }

    /// Send `n` UDP datagrams from the client to `addr`:`port`, each from a
    /// new socket (a new source port: a new connection, with its flow event).
    pub fn udp_burst(&self, addr: &str, port: u16, n: usize) {
        let script = "import socket, sys\n\
                      for _ in range(int(sys.argv[3])):\n    \
                      s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n    \
                      s.sendto(b'x', (sys.argv[1], int(sys.argv[2])))\n    \
                      s.close()\n";
        let (port, n) = (port.to_string(), n.to_string());
        self.ok("client", &["python3", "-c", script, addr, &port, &n]);
    }

    /// Set the MTU of every link of the topology (both hosts and both wire ports).
    pub fn set_mtu(&self, mtu: u32) {
        let mtu = mtu.to_string();
        for (side, dev) in [
            ("client", "cli0"),
            ("server", "srv0"),
            ("fw", "veth-a"),
            ("fw", "veth-b"),
        ] {
            self.ok(side, &["ip", "link", "set", dev, "mtu", &mtu]);
        }
    }

    /// A counter of an interface in a namespace (`/sys/class/net/DEV/statistics/NAME`).
    pub fn link_stat(&self, side: &str, dev: &str, name: &str) -> u64 {
        let out = self.run(
            side,
            &["cat", &format!("/sys/class/net/{dev}/statistics/{name}")],
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{dev} {name}: {out:?}"))
    }

    pub fn ping(&self, addr: &str) -> bool {
        self.run("client", &["ping", "-c", "1", "-W", "2", addr])
            .status
            .success()
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        let script = format!(". {}; topo_down {}", lib("topology.sh"), self.prefix);
        let _ = Command::new("bash").arg("-c").arg(&script).status();
    }
}

pub static SERVER: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| lib("echo_server.py"));
pub static CLIENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| lib("echo_client.py"));

/// A child process killed (by PID) on drop.
pub struct Guarded(pub Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The wire of the topology: af_packet ports on the firewall's veths, PMD defaults.
pub const DEFAULT_WIRE: [&str; 2] = ["net_af_packet0,iface=veth-a", "net_af_packet1,iface=veth-b"];

/// A running bulkheadd in the topology's firewall namespace.
pub struct Daemon {
    child: Option<Child>,
    /// Scratch directory (log, policy; removed on drop).
    pub dir: PathBuf,
    pub policy: PathBuf,
    /// The flow events output file.
    pub events: PathBuf,
}

impl Daemon {
    /// Start with flow events in the scratch directory.
    pub fn start(t: &Topo, name: &str, policy: &str) -> Daemon {
        Daemon::start_with_events(t, name, policy, None)
    }

    /// Start with flow events in `events` (default: in the scratch directory).
    pub fn start_with_events(t: &Topo, name: &str, policy: &str, events: Option<&Path>) -> Daemon {
        Daemon::start_opts(t, name, policy, events, &[], DEFAULT_WIRE)
    }

    /// Start with extra quick-start flags.
    pub fn start_with(t: &Topo, name: &str, policy: &str, extra: &[&str]) -> Daemon {
        Daemon::start_opts(t, name, policy, None, extra, DEFAULT_WIRE)
    }

    /// Start on the wire ports given as devargs (the interfaces are veth-a and veth-b),
    /// with extra quick-start flags.
    pub fn start_wire(
        t: &Topo,
        name: &str,
        policy: &str,
        wire: [&str; 2],
        extra: &[&str],
    ) -> Daemon {
        Daemon::start_opts(t, name, policy, None, extra, wire)
    }

    fn start_opts(
        t: &Topo,
        name: &str,
        policy: &str,
        events: Option<&Path>,
        extra: &[&str],
        wire: [&str; 2],
    ) -> Daemon {
        let dir = std::env::temp_dir().join(format!("bulkhead-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let policy_path = dir.join("policy.yaml");
        std::fs::write(&policy_path, policy).expect("write policy");
        let log = std::fs::File::create(dir.join("bulkheadd.log")).expect("log");
        let events = events.map_or_else(|| dir.join("events.jsonl"), Path::to_path_buf);
        let core = if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
            "1"
        } else {
            "0"
        };
        let default_workers: Vec<&str> = if extra.contains(&"--workers") {
            Vec::new()
        } else {
            vec!["--workers", core]
        };
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &t.ns("fw"),
                env!("CARGO_BIN_EXE_bulkheadd"),
            ])
            .arg("--policy")
            .arg(&policy_path)
            .arg("--wire")
            .args(wire)
            .args(default_workers.iter())
            .args(extra)
            .arg("--events")
            .arg(&events)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start bulkheadd");
        let mut d = Daemon {
            child: Some(child),
            dir,
            policy: policy_path,
            events,
        };
        d.wait_log("workers running", Duration::from_secs(30));
        d
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("bulkheadd.log")).unwrap_or_default()
    }

    pub fn events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("each event line is JSON"))
            .collect()
    }

    pub fn wait_log(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return;
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!(
                        "bulkheadd exited ({status}) before {needle:?}:\n{}",
                        self.log()
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            // `ip netns exec` execs bulkheadd: the child's PID is bulkheadd's.
            let st = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status()
                .expect("kill");
            assert!(st.success());
        }
    }

    /// SIGTERM, wait, return the log with the final counters.
    pub fn stop(&mut self) -> String {
        self.signal("-TERM");
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(Some(status)) = c.try_wait() {
                    assert!(
                        status.success(),
                        "bulkheadd exit status {status}:\n{}",
                        self.log()
                    );
                    break;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!("bulkheadd did not stop on SIGTERM:\n{}", self.log());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.log()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The value of one counter line of bulkheadd's final counters.
pub fn counter(log: &str, name: &str) -> u64 {
    log.lines()
        .filter_map(|l| l.trim().strip_prefix(name))
        .filter_map(|rest| rest.trim().parse().ok())
        .next_back()
        .unwrap_or(0)
}

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

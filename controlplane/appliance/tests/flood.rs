//! Under a denied flood (a denial per packet, far more than the control
//! loop can write) bulkheadd folds and rate-limits denial events, so the
//! disk cannot be filled from the wire, and still answers signals and stops
//! promptly.
//! Runs real DPDK: net_pcap replaying a prepared pcap forever into net_null.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sigterm_stops_bulkheadd_promptly_under_a_denied_flood() {
    flood(false);
}

/// Events to a standard output pipe nobody reads: the writer blocks, the
/// control loop must not.
#[test]
fn a_stalled_event_consumer_does_not_block_shutdown() {
    flood(true);
}

fn flood(stalled_stdout: bool) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::temp_dir().join(format!(
        "bulkheadd-flood-{}-{stalled_stdout}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("flood.pcap");
    let st = Command::new("python3")
        .arg(repo.join("perf-lab/gen_pcap.py"))
        .arg(&pcap)
        .args(["tcp-denied", "2000"])
        .status()
        .expect("python3");
    assert!(st.success());
    let log = dir.join("bulkheadd.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bulkheadd"))
        .arg("--policy")
        .arg(repo.join("perf-lab/bench-policy.yaml"))
        .arg("--wire")
        .arg(format!(
            "net_pcap0,rx_pcap={},infinite_rx=1",
            pcap.display()
        ))
        .arg("net_null0,no-rx=1")
        .args(["--mbufs", "8191", "--events"])
        .arg(if stalled_stdout {
            "-".into()
        } else {
            dir.join("events.jsonl")
        })
        .stdout(if stalled_stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start bulkheadd");
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !read_log().contains("workers running") {
        assert!(Instant::now() < deadline, "did not start:\n{}", read_log());
        if let Ok(Some(s)) = child.try_wait() {
            panic!("exited {s}:\n{}", read_log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let sent = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break s;
        }
        if sent.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "bulkheadd did not stop within 10 s of SIGTERM under a flood:\n{}",
                read_log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{}", read_log());
    let text = read_log();
    let counter = |name: &str| {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix(name))
            .filter_map(|v| v.trim().parse::<u64>().ok())
            .next_back()
            .unwrap_or(0)
    };
    let suppressed = counter("bulkhead_dataplane_flow_events_suppressed_total");
    let denied = counter("bulkhead_dataplane_new_connections_total{verdict=\"deny\"}");
    assert!(
        suppressed > 0,
        "repeated denials were folded and rate-limited, and counted:\n{text}"
    );
    if stalled_stdout {
        assert!(text.contains("flow_events_unwritten_total"), "{text}");
    } else {
        let events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
        let lines = events.lines().count() as u64;
        assert!(events
            .lines()
            .take(100)
            .all(|l| l.contains("\"event\":\"denied\"")));
        // The disk cannot be filled from the wire: about 1000 events per
        // second per worker at most, whatever the flood offers.
        assert!(
            lines < 10_000 && denied > 5 * lines,
            "{lines} events written for {denied} denials"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

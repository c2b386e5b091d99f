//! Table exhaustion end to end (issue: "survive floods"): one host floods
//! allowed UDP from random source ports as fast as it can through a running
//! `bulkheadd` with a small connection table, while another host of the same
//! segment and a host of another segment open TCP connections, and a session
//! opened before the flood keeps exchanging data. Needs root (namespaces).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use common::{counter, lib, serial, Daemon, Topo};

const POLICY: &str = r#"
version: 1
segments:
  hosts:
    id: 10
    prefixes: [10.1.0.0/24]
  guests:
    id: 20
    prefixes: [10.1.128.0/24]
  servers:
    id: 30
    prefixes: [10.1.200.0/24]
rules:
  - name: hosts-to-servers
    from: [hosts]
    to: [servers]
    services: [udp/9999, tcp/8080]
    action: allow
  - name: guests-to-servers
    from: [guests]
    to: [servers]
    services: [tcp/8080]
    action: allow
"#;

/// A session from 10.1.0.10: "connected", then per stdin line the echo
/// (6 s for TCP's retransmissions under the flood's ingress loss) and "ok".
const SESSION: &str = "import socket, sys\n\
    s = socket.create_connection(('10.1.200.1', 8080), timeout=6.0)\n\
    print('connected', flush=True)\n\
    for line in sys.stdin:\n    \
        m = line.strip().encode()\n    \
        s.sendall(m)\n    \
        got = b''\n    \
        while len(got) < len(m):\n        \
            got += s.recv(100)\n    \
        print('ok' if got == m else 'fail', flush=True)\n";

/// Connect from `src` to the server's echo port and expect the echo. The
/// flood overruns the wire's kernel ring (about half its frames never reach
/// the worker), so TCP's own retransmissions get time: 6 s.
fn echo_from(t: &Topo, src: &str) -> bool {
    let script = "import socket, sys\n\
                  s = socket.socket()\n\
                  s.settimeout(6.0)\n\
                  s.bind((sys.argv[1], 0))\n\
                  s.connect(('10.1.200.1', 8080))\n\
                  s.sendall(b'through the flood')\n\
                  sys.exit(0 if s.recv(100) == b'through the flood' else 1)\n";
    let out = t.run("client", &["python3", "-c", script, src]);
    if !out.status.success() {
        eprintln!("echo from {src}: {}", String::from_utf8_lossy(&out.stderr));
    }
    out.status.success()
}

#[test]
fn a_udp_flood_from_random_ports_leaves_room_for_other_hosts_and_sessions() {
    let _g = serial();
    let t = Topo::up(
        "bhq1",
        "10.1.0.10/16,10.1.0.11/16,10.1.128.10/16",
        "10.1.200.1/16",
        false,
    );
    // 4,096 entries: the source quota is 512, the segment quota 3,072.
    let mut d = Daemon::start_with(&t, "quota", POLICY, &["--conntrack-capacity", "4096"]);
    let _srv = t.server("10.1.200.1", 8080, false);
    // A session opened before the flood, from the host that will flood.
    let mut session = t.spawn("client", &["python3", "-u", "-c", SESSION]);
    let stdin = session.0.stdin.as_mut().expect("stdin");
    let mut out = BufReader::new(session.0.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("connected"), "{line}");

    // Flood for 8 s (at most 3 million frames) from 10.1.0.10, each
    // datagram from a new source port: a new allowed connection each.
    let mut flood = t.spawn(
        "client",
        &[
            "python3",
            &lib("udp_spray.py"),
            "cli0",
            "10.1.0.10",
            "10.1.200.1",
            "9999",
            "02:00:00:00:0c:01",
            "02:00:00:00:05:01",
            "8",
            "3000000",
        ],
    );
    std::thread::sleep(Duration::from_secs(2));
    // During the flood: a host of the same segment and one of another
    // segment still connect; the session opened before still flows.
    let same = echo_from(&t, "10.1.0.11");
    let other = echo_from(&t, "10.1.128.10");
    if !(same && other) {
        let log = d.stop();
        panic!("same segment {same}, other segment {other}:\n{log}");
    }
    for i in 0..3 {
        writeln!(stdin, "during {i}").unwrap();
        line.clear();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ok", "the open session still flows");
    }
    let mut sent = String::new();
    BufReader::new(flood.0.stdout.take().expect("stdout"))
        .read_line(&mut sent)
        .expect("the flood's count");
    let sent: u64 = sent.trim().parse().unwrap_or(0);
    let log = d.stop();
    let quota = counter(
        &log,
        "bulkhead_dataplane_drops_total{reason=\"source_quota\"}",
    );
    let allowed = counter(
        &log,
        "bulkhead_dataplane_new_connections_total{verdict=\"allow\"}",
    );
    let received = counter(&log, "bulkhead_dataplane_rx_packets_total{port=\"a\"}");
    eprintln!(
        "flood: {sent} frames sent, {received} received on side a, {quota} refused over quota, \
         {allowed} connections allowed"
    );
    // The flood really filled the flooder's quota: most of what reached
    // the worker was refused as over quota (the flood cycles 4,096 source
    // ports; the 512 admitted first are forwarded on their entries).
    assert!(received > 20_000, "the worker saw only {received} frames");
    assert!(
        quota > received / 2,
        "source quota refused {quota} of {received} frames:\n{log}"
    );
    assert!(allowed >= 512, "the flooder got its quota first:\n{log}");
}

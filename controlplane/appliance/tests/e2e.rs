//! End to end: real TCP, UDP and ICMP between two network namespaces joined
//! only through a running `bulkheadd` (DPDK `net_af_packet` ports on veths).
//! Needs root (CI is root) and iproute2, ethtool, ping and python3, which the
//! README's test command installs.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, ChildStdout};
use std::time::{Duration, Instant};

use common::{counter, lib, serial, Daemon, Topo};

const POLICY: &str = r#"
version: 1
segments:
  client:
    id: 10
    prefixes: [10.0.10.0/24, "fd00:10::/64"]
  server:
    id: 20
    prefixes: [10.0.20.0/24, "fd00:20::/64"]
  tenant:
    id: 30
    vlans: [100]
  svc:
    id: 40
    prefixes: [10.77.0.1/32]
  other:
    id: 50
    prefixes: [10.77.0.128/25]
rules:
  - name: client-to-server
    from: [client]
    to: [server]
    services: [tcp/8080, udp/5353, icmp/8, icmpv6/128]
    action: allow
  - name: tenant-to-svc
    from: [tenant]
    to: [svc]
    services: [tcp/7000]
    action: allow
"#;

#[test]
fn tcp_udp_and_ping_allowed_and_a_denied_port_refused() {
    let _g = serial();
    let t = Topo::up("bhe1", "10.0.10.5/8", "10.0.20.3/8", false);
    let mut d = Daemon::start(&t, "basic", POLICY);
    let _tcp = t.server("10.0.20.3", 8080, false);
    let _udp = t.server("10.0.20.3", 5353, true);
    let _denied = t.server("10.0.20.3", 9999, false);
    assert!(
        t.echo("10.0.20.3", 8080, false),
        "TCP echo both ways through the wire"
    );
    assert!(t.echo("10.0.20.3", 5353, true), "UDP request and reply");
    assert!(t.ping("10.0.20.3"), "ping");
    assert!(
        !t.echo("10.0.20.3", 9999, false),
        "a port no rule allows gets no connection"
    );
    std::thread::sleep(Duration::from_millis(200));
    let events = d.events();
    let log = d.stop();
    assert!(
        events.iter().any(|e| e["event"] == "allowed"
            && e["dport"] == 8080
            && e["rule"] == "client-to-server"),
        "{events:?}"
    );
    assert!(events
        .iter()
        .any(|e| e["event"] == "denied" && e["dport"] == 9999 && e["rule"] == "default"));
    assert!(
        counter(
            &log,
            "bulkhead_dataplane_new_connections_total{verdict=\"allow\"}"
        ) >= 3,
        "{log}"
    );
    assert!(
        counter(
            &log,
            "bulkhead_dataplane_drops_total{reason=\"policy_deny\"}"
        ) >= 1,
        "{log}"
    );
}

#[test]
fn sighup_revoking_a_service_cuts_an_open_connection() {
    let _g = serial();
    let t = Topo::up("bhe2", "10.0.10.5/8", "10.0.20.3/8", false);
    let mut d = Daemon::start(&t, "hup", POLICY);
    let _srv = t.server("10.0.20.3", 8080, false);
    let mut session = t.spawn(
        "client",
        &[
            "python3",
            "-u",
            &lib("echo_session.py"),
            "10.0.20.3",
            "8080",
        ],
    );
    let stdin: &mut ChildStdin = session.0.stdin.as_mut().expect("stdin");
    let mut out = BufReader::new(session.0.stdout.take().expect("stdout"));
    let mut line = String::new();
    let mut next = |out: &mut BufReader<ChildStdout>| {
        line.clear();
        out.read_line(&mut line).expect("session output");
        line.trim().to_string()
    };
    assert!(next(&mut out).starts_with("connected"));
    writeln!(stdin, "before").unwrap();
    assert_eq!(next(&mut out), "ok", "the open connection works");

    // A bad policy is refused and the running one stays in force.
    std::fs::write(
        &d.policy,
        "version: 1\nsegments: {web: {id: 10, prefixes: [10.0.10.1/24]}}\n",
    )
    .unwrap();
    d.signal("-HUP");
    d.wait_log("stays in force", Duration::from_secs(10));
    assert!(
        d.log().contains("host bits"),
        "the refusal names the problem:\n{}",
        d.log()
    );
    writeln!(stdin, "still").unwrap();
    assert_eq!(next(&mut out), "ok", "the refused reload changed nothing");

    // Revoke tcp/8080.
    std::fs::write(&d.policy, POLICY.replace("tcp/8080, ", "")).unwrap();
    d.signal("-HUP");
    d.wait_log(
        "policy enforced by every worker generation=2",
        Duration::from_secs(10),
    );
    writeln!(stdin, "after").unwrap();
    let reply = next(&mut out);
    assert!(
        reply.starts_with("fail"),
        "the revoked connection is cut, got {reply:?}"
    );
    assert!(
        !t.echo("10.0.20.3", 8080, false),
        "and a new one is refused"
    );
    std::thread::sleep(Duration::from_millis(200));
    let events = d.events();
    let log = d.stop();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "revoked" && e["dport"] == 8080),
        "{events:?}"
    );
    assert!(
        counter(&log, "bulkhead_dataplane_drops_total{reason=\"revoked\"}") >= 1,
        "{log}"
    );
}

/// Capture TCP frames with `port` on one side while `send` runs, return the lines.
fn capture(t: &Topo, side: &str, dev: &str, port: u16, send: impl FnOnce()) -> Vec<String> {
    let port = port.to_string();
    let mut rx = t.spawn(
        side,
        &[
            "python3",
            "-u",
            &lib("rawframe.py"),
            "recv",
            dev,
            &port,
            "3",
        ],
    );
    let mut out = BufReader::new(rx.0.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("capture starts");
    assert_eq!(line.trim(), "ready");
    send();
    let mut lines = Vec::new();
    loop {
        line.clear();
        match out.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => lines.push(line.trim().to_string()),
        }
    }
    lines
}

/// Send one raw TCP frame from a side of the topology.
fn raw(t: &Topo, side: &str, dev: &str, frame: &[&str]) {
    let mut args = vec!["python3", &*RAW, "send", dev];
    args.extend_from_slice(frame);
    t.ok(side, &args);
}

static RAW: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| lib("rawframe.py"));

// This kernel has no 802.1Q module, so the hosts cannot have VLAN devices:
// the tagged frames are written and captured with raw sockets instead.
#[test]
fn vlan_places_the_source_and_spoofed_sources_are_dropped() {
    let _g = serial();
    let t = Topo::up("bhe3", "10.0.10.5/8", "10.0.20.3/8", false);
    let mut d = Daemon::start(&t, "vlan", POLICY);
    let (c_mac, s_mac) = ("02:00:00:00:0c:01", "02:00:00:00:05:01");
    // 10.77.0.5 lies in no prefix: only VLAN 100 places it in "tenant", which may reach svc on 7000.
    let got = capture(&t, "server", "srv0", 7000, || {
        raw(
            &t,
            "client",
            "cli0",
            &[
                "10.77.0.5",
                "10.77.0.1",
                "40000",
                "7000",
                "S",
                "--vlan",
                "100",
            ],
        );
        // Untagged, the same host is world: denied.
        raw(
            &t,
            "client",
            "cli0",
            &["10.77.0.5", "10.77.0.1", "40001", "7000", "S"],
        );
        // On VLAN 100 but with a source inside segment "other": spoofed.
        raw(
            &t,
            "client",
            "cli0",
            &[
                "10.77.0.200",
                "10.77.0.1",
                "40002",
                "7000",
                "S",
                "--vlan",
                "100",
            ],
        );
    });
    assert_eq!(
        got,
        vec!["10.77.0.5 10.77.0.1 40000 7000 S"],
        "only the VLAN-placed SYN crossed"
    );
    // The reply carries the same VLAN and follows the tracked connection back.
    let back = capture(&t, "client", "cli0", 7000, || {
        raw(
            &t,
            "server",
            "srv0",
            &[
                "10.77.0.1",
                "10.77.0.5",
                "7000",
                "40000",
                "SA",
                "--vlan",
                "100",
                "--src-mac",
                s_mac,
                "--dst-mac",
                c_mac,
            ],
        );
    });
    assert_eq!(back, vec!["10.77.0.1 10.77.0.5 7000 40000 SA"]);
    let log = d.stop();
    assert_eq!(
        counter(&log, "bulkhead_dataplane_drops_total{reason=\"spoofed\"}"),
        1,
        "{log}"
    );
    assert_eq!(
        counter(
            &log,
            "bulkhead_dataplane_drops_total{reason=\"policy_deny\"}"
        ),
        1,
        "{log}"
    );
    assert_eq!(
        counter(
            &log,
            "bulkhead_dataplane_new_connections_total{verdict=\"allow\"}"
        ),
        1,
        "{log}"
    );
}

#[test]
fn ipv6_through_the_wire() {
    let _g = serial();
    let t = Topo::up("bhe4", "fd00:10::5/16", "fd00:20::3/16", true);
    let mut d = Daemon::start(&t, "v6", POLICY);
    let _srv = t.server("fd00:20::3", 8080, false);
    let _deny = t.server("fd00:20::3", 9999, false);
    // Neighbour discovery passes the wire; then TCP and ping.
    assert!(t.echo("fd00:20::3", 8080, false), "TCP over IPv6");
    assert!(t.ping("fd00:20::3"), "ping over IPv6");
    assert!(!t.echo("fd00:20::3", 9999, false), "denied over IPv6");
    let log = d.stop();
    assert!(
        counter(&log, "bulkhead_dataplane_l2_passed_total") >= 1,
        "ND passed: {log}"
    );
}

const ZONED: &str = r#"
version: 1
segments:
  client:
    id: 10
    prefixes: [10.0.10.0/24, "fd00:10::/64"]
    zones: [clients]
  server:
    id: 20
    prefixes: [10.0.20.0/24, "fd00:20::/64"]
    zones: [servers]
rules:
  - name: client-to-server
    from: [client]
    to: [server]
    services: [tcp/8080, icmp/8]
    action: allow
  - name: server-to-server
    from: [server]
    to: [server]
    services: [icmp/8]
    action: allow
"#;

/// The server namespace's IPv6 default route, if any.
fn default_route6(t: &Topo) -> String {
    let out = t.run("server", &["ip", "-6", "route", "show", "default"]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Wait until the client's link-local address is usable (DAD done).
fn wait_link_local(t: &Topo) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = t.run(
            "client",
            &["ip", "-6", "addr", "show", "dev", "cli0", "scope", "link"],
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if text.contains("fe80") && !text.contains("tentative") {
            return;
        }
        assert!(Instant::now() < deadline, "no link-local address: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn zones_bind_segments_to_wire_sides_and_ra_guard_stops_rogue_routers() {
    let _g = serial();
    let t = Topo::up(
        "bhe5",
        "10.0.10.5/8,fd00:10::5/64",
        "10.0.20.3/8,fd00:20::3/64",
        true,
    );
    t.ok(
        "server",
        &["sysctl", "-qw", "net.ipv6.conf.srv0.accept_ra=2"],
    );
    let zones = ["--zones", "clients", "servers", "--router-zones", "servers"];
    let mut d = Daemon::start_with(&t, "zones", ZONED, &zones);
    let _tcp = t.server("10.0.20.3", 8080, false);
    assert!(
        t.echo("10.0.20.3", 8080, false),
        "client to server through its zones"
    );
    // The client takes an address of the server segment: placed in server
    // by prefix, but it entered in zone clients, so it is spoofed.
    t.ok(
        "client",
        &["ip", "addr", "add", "10.0.20.99/8", "dev", "cli0"],
    );
    let spoofed = t.run(
        "client",
        &[
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            "-I",
            "10.0.20.99",
            "10.0.20.3",
        ],
    );
    assert!(
        !spoofed.status.success(),
        "a server address from the client side is refused"
    );
    // A rogue router advertisement from the client side (the attack run's case).
    wait_link_local(&t);
    t.ok("client", &["python3", &lib("send_ra.py"), "cli0", "3"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        default_route6(&t),
        "",
        "the server did not install the client as its router"
    );
    let log = d.stop();
    assert!(
        counter(&log, "bulkhead_dataplane_drops_total{reason=\"ra_guard\"}") >= 3,
        "{log}"
    );
    assert!(
        counter(&log, "bulkhead_dataplane_drops_total{reason=\"spoofed\"}") >= 1,
        "{log}"
    );
    drop(d);

    // Control: with the client side a router zone, the same RA is obeyed
    // (so the check above can fail).
    let zones = ["--zones", "clients", "servers", "--router-zones", "clients"];
    let mut d = Daemon::start_with(&t, "zones2", ZONED, &zones);
    t.ok("client", &["python3", &lib("send_ra.py"), "cli0", "3"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while default_route6(&t).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        default_route6(&t).contains("fe80"),
        "RA from a router zone passes"
    );
    d.stop();
}

#[test]
fn sigusr2_traces_the_next_packets_with_every_step() {
    let _g = serial();
    let t = Topo::up("bht1", "10.0.10.5/8", "10.0.20.3/8", false);
    let mut d = Daemon::start(&t, "trace", POLICY);
    let _tcp = t.server("10.0.20.3", 8080, false);
    let _denied = t.server("10.0.20.3", 9999, false);
    d.signal("-USR2");
    d.wait_log("tracing the next packets", Duration::from_secs(5));
    assert!(t.echo("10.0.20.3", 8080, false));
    assert!(!t.echo("10.0.20.3", 9999, false));
    d.signal("-USR2");
    d.wait_log("packet trace:", Duration::from_secs(5));
    let log = d.stop();
    // The first SIGUSR2 printed an empty trace; the second, the packets.
    let last = log.rfind("packet trace:").expect("a trace");
    let trace: Vec<&str> = log[last..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  t="))
        .collect();
    assert!(trace.len() >= 6, "the exchange was traced:\n{log}");
    let opened = trace
        .iter()
        .find(|l| l.contains(":8080") && l.contains("conn=created(TcpSynSent)"))
        .unwrap_or_else(|| panic!("a SYN creating its connection:\n{}", trace.join("\n")));
    assert!(
        opened.contains("segments=10->20") && opened.contains("rule=client-to-server"),
        "{opened}"
    );
    assert!(opened.ends_with("-> forward"), "{opened}");
    assert!(
        trace.iter().any(|l| l.contains(":9999")
            && l.contains("rule=default")
            && l.ends_with("drop(policy_deny)")),
        "the denied SYN and why:\n{}",
        trace.join("\n")
    );
    assert!(trace
        .iter()
        .any(|l| l.contains("conn=found(TcpEstablished)")));
}

const TWO_WORKERS: &str = r#"
version: 1
segments:
  client: { id: 10, prefixes: [10.0.10.0/24, "fd00:10::/64"] }
  server: { id: 20, prefixes: [10.0.20.0/24, "fd00:20::/64"] }
rules:
  - name: client-to-server
    from: [client]
    to: [server]
    services: [tcp/8080, udp/5353, icmp/8, icmpv6/128]
    action: allow
"#;

/// Two workers through `net_af_packet` with `qpairs=2` (the kernel's fan-out
/// hash spreads the traffic): TCP both ways on many connections, a
/// fragmented UDP reply (IPv6: af_packet reassembles IPv4 itself), an ICMP
/// fragmentation-needed for a live TCP connection, and ping.
#[test]
fn two_workers_through_af_packet_keep_related_packets_with_their_connections() {
    let _g = serial();
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("one core: two pinned workers need two");
    }
    let t = Topo::up(
        "bhw2",
        "10.0.10.5/8,fd00:10::5/16",
        "10.0.20.3/8,fd00:20::3/16",
        true,
    );
    let _tcp = t.server("10.0.20.3", 8080, false);
    let _udp6 = t.server("fd00:20::3", 5353, true);
    let mut d = Daemon::start_wire(
        &t,
        "two-workers",
        TWO_WORKERS,
        [
            "net_af_packet0,iface=veth-a,qpairs=2",
            "net_af_packet1,iface=veth-b,qpairs=2",
        ],
        &["--workers", "0,1", "--tcp-window-tracking"],
    );
    // Many connections: the fan-out hash puts some on each worker.
    for _ in 0..12 {
        assert!(
            t.echo("10.0.20.3", 8080, false),
            "TCP echo through two workers"
        );
    }
    assert!(t.ping("10.0.20.3"), "ping");
    // Neighbour discovery first, then a datagram fragmented both ways.
    let _ = t.run(
        "client",
        &[
            "python3",
            &lib("big_datagram.py"),
            "fd00:20::3",
            "5353",
            "100",
        ],
    );
    for _ in 0..4 {
        let big = t.run(
            "client",
            &[
                "python3",
                &lib("big_datagram.py"),
                "fd00:20::3",
                "5353",
                "3000",
                "--frag",
            ],
        );
        assert!(
            big.status.success(),
            "a fragmented UDP reply arrives whole: {big:?}\n{}",
            d.log()
        );
    }
    // A live TCP connection, and a router's "fragmentation needed" about it.
    let mut session = t.spawn(
        "client",
        &[
            "python3",
            "-u",
            &lib("echo_session.py"),
            "10.0.20.3",
            "8080",
        ],
    );
    let mut out = BufReader::new(session.0.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("session");
    let port = line
        .trim()
        .strip_prefix("connected ")
        .expect("connected")
        .to_string();
    let mut watch = t.spawn(
        "client",
        &["python3", "-u", &lib("icmp_error.py"), "recv", "5"],
    );
    let mut wout = BufReader::new(watch.0.stdout.take().expect("stdout"));
    let mut ready = String::new();
    wout.read_line(&mut ready).expect("watcher");
    for _ in 0..3 {
        t.ok(
            "server",
            &[
                "python3",
                &lib("icmp_error.py"),
                "send",
                "10.0.10.5",
                "10.0.10.5",
                "10.0.20.3",
                &port,
                "8080",
                "1200",
            ],
        );
    }
    let mut got = String::new();
    wout.read_line(&mut got).expect("watcher result");
    assert_eq!(
        got.trim(),
        "got 1200",
        "the related ICMP error reached the sender\n{}",
        d.log()
    );
    drop(session);
    let log = d.stop();
    assert_eq!(
        counter(
            &log,
            "bulkhead_dataplane_drops_total{reason=\"icmp_unrelated\"}"
        ),
        0,
        "{log}"
    );
    assert_eq!(
        counter(
            &log,
            "bulkhead_dataplane_drops_total{reason=\"fragment_timeout\"}"
        ),
        0,
        "{log}"
    );
    // For the record (cargo test -- --nocapture): how the kernel spread it.
    for l in log
        .lines()
        .filter(|l| l.contains("worker_") || l.contains("handed_off"))
    {
        eprintln!("{}", l.trim());
    }
    for w in ["0", "1"] {
        let rx = counter(
            &log,
            &format!("bulkhead_dataplane_worker_rx_packets_total{{worker=\"{w}\"}}"),
        );
        assert!(rx > 0, "worker {w} received traffic:\n{log}");
    }
}

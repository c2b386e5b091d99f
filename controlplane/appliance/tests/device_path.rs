//! End to end, the device path of `net_af_packet` ports between network namespaces: jumbo
//! frames with `--mtu`, what becomes of IP fragments, and frames the kernel dropped because
//! the PMD's ring was full. Needs root, iproute2 and python3 (see e2e.rs).

mod common;

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
rules:
  - name: client-to-server
    from: [client]
    to: [server]
    services: [udp/5353]
    action: allow
"#;

const PARSE_TRUNCATED: &str = "bulkhead_dataplane_drops_total{reason=\"ip_length_exceeds_frame\"}";
const OVERSIZE_A: &str =
    "bulkhead_dataplane_ingress_dropped_total{port=\"net_af_packet0\",reason=\"oversize\"}";
const KERNEL_RING_A: &str =
    "bulkhead_dataplane_ingress_dropped_total{port=\"net_af_packet0\",reason=\"kernel_ring\"}";

/// Send one UDP datagram of `size` bytes from the client and expect it echoed whole.
fn big_echo(t: &Topo, addr: &str, size: usize, fragment: bool) -> std::process::Output {
    let size = size.to_string();
    let mut args = vec!["python3", &*BIG, addr, "5353", &size];
    if fragment {
        args.push("--frag");
    }
    t.run("client", &args)
}

/// A counter of the `Ip:` lines of /proc/net/snmp.
fn ip_mib(snmp: &str, name: &str) -> u64 {
    let mut ip = snmp.lines().filter(|l| l.starts_with("Ip:"));
    let (names, values) = (ip.next().unwrap_or(""), ip.next().unwrap_or(""));
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

static BIG: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| lib("big_datagram.py"));

#[test]
fn an_8000_byte_datagram_crosses_whole_with_mtu_9000_and_is_oversize_without() {
    let _g = serial();
    let t = Topo::up("bhd1", "10.0.10.5/8", "10.0.20.3/8", false);
    t.set_mtu(9000);
    let _srv = t.server("10.0.20.3", 5353, true);

    let mut d = Daemon::start_with(&t, "jumbo", POLICY, &["--mtu", "9000"]);
    assert!(d.log().contains("framesz=12288"), "{}", d.log());
    let out = big_echo(&t, "10.0.20.3", 8000, false);
    let log = d.stop();
    assert!(
        out.status.success(),
        "one 8028-byte IP packet each way through --mtu 9000: {out:?}\n{log}"
    );
    assert_eq!(counter(&log, OVERSIZE_A), 0, "{log}");
    assert_eq!(counter(&log, PARSE_TRUNCATED), 0, "{log}");
    drop(d);

    // The default MTU: the same frame is refused, and counted as what it is.
    let mut d = Daemon::start(&t, "jumbo-default", POLICY);
    let out = big_echo(&t, "10.0.20.3", 8000, false);
    let log = d.stop();
    assert_eq!(
        out.status.code(),
        Some(1),
        "not forwarded at MTU 1500: {out:?}\n{log}"
    );
    assert!(counter(&log, OVERSIZE_A) >= 1, "{log}");
    assert_eq!(counter(&log, PARSE_TRUNCATED), 0, "{log}");
}

/// DPDK 22.11's af_packet PMD joins a PACKET_FANOUT group with PACKET_FANOUT_FLAG_DEFRAG:
/// the kernel reassembles IPv4 fragments before the ring (a datagram longer than the MTU then
/// arrives truncated: oversize), while IPv6 fragments arrive as sent and cross by virtual
/// reassembly.
#[test]
fn fragments_on_af_packet_ipv6_as_fragments_ipv4_reassembled_by_the_kernel() {
    let _g = serial();
    let t = Topo::up(
        "bhd2",
        "10.0.10.5/8,fd00:10::5/16",
        "10.0.20.3/8,fd00:20::3/16",
        true,
    );
    let _srv4 = t.server("10.0.20.3", 5353, true);
    let _srv6 = t.server("fd00:20::3", 5353, true);

    let mut d = Daemon::start(&t, "frag", POLICY);
    // Neighbour discovery first, so the fragments are not queued behind it.
    let _ = big_echo(&t, "fd00:20::3", 100, false);
    let v6 = big_echo(&t, "fd00:20::3", 3000, true);
    let v4 = big_echo(&t, "10.0.20.3", 3000, true);
    let log = d.stop();
    // Virtual reassembly: the later IPv6 fragments follow their first one,
    // both ways (request and echoed reply).
    assert!(
        v6.status.success(),
        "a fragmented IPv6 datagram and its fragmented reply cross: {v6:?}\n{log}"
    );
    assert_eq!(
        counter(
            &log,
            "bulkhead_dataplane_drops_total{reason=\"fragment_timeout\"}"
        ),
        0,
        "{log}"
    );
    assert!(!v4.status.success(), "{log}");
    assert!(
        counter(&log, OVERSIZE_A) >= 1,
        "the IPv4 datagram, reassembled by the kernel and truncated to the ring's frame: {log}"
    );
    assert_eq!(counter(&log, PARSE_TRUNCATED), 0, "{log}");
    // The kernel of the firewall's namespace did the reassembly (Ip: ReasmOKs).
    let snmp = String::from_utf8_lossy(&t.run("fw", &["cat", "/proc/net/snmp"]).stdout).to_string();
    assert!(ip_mib(&snmp, "ReasmOKs") >= 1, "{snmp}");
    drop(d);

    let mut d = Daemon::start_with(&t, "frag-pass", POLICY, &["--pass-fragments"]);
    let _ = big_echo(&t, "fd00:20::3", 100, false);
    let v6 = big_echo(&t, "fd00:20::3", 3000, true);
    let log = d.stop();
    assert!(
        v6.status.success(),
        "with pass_fragments a fragmented IPv6 datagram crosses both ways: {v6:?}\n{log}"
    );
    assert_eq!(counter(&log, PARSE_TRUNCATED), 0, "{log}");
}

/// A flood into a 16-frame af_packet ring: what the kernel could not put in the ring is
/// counted (PACKET_STATISTICS tp_drops), and with what the worker received it accounts for
/// every frame the interface received.
#[test]
fn kernel_ring_drops_are_counted_and_account_for_the_flood() {
    let _g = serial();
    let t = Topo::up("bhd3", "10.0.10.5/8", "10.0.20.3/8", false);
    let mut d = Daemon::start_wire(
        &t,
        "ring",
        POLICY,
        [
            "net_af_packet0,iface=veth-a,framecnt=16",
            "net_af_packet1,iface=veth-b",
        ],
        &[],
    );
    let before = t.link_stat("fw", "veth-a", "rx_packets");
    let flood = lib("udp_flood.py");
    // Bounded: at most 5 rounds of 50,000 datagrams, 10 s each.
    let started = Instant::now();
    for _ in 0..5 {
        t.ok(
            "client",
            &["python3", &flood, "10.0.20.3", "5353", "50000", "10"],
        );
        std::thread::sleep(Duration::from_millis(500));
        d.signal("-USR1");
        std::thread::sleep(Duration::from_millis(300));
        if counter(&d.log(), KERNEL_RING_A) > 0 {
            break;
        }
    }
    assert!(started.elapsed() < Duration::from_secs(80));
    std::thread::sleep(Duration::from_millis(500));
    let arrived = t.link_stat("fw", "veth-a", "rx_packets") - before;
    let usr1 = d.log();
    assert!(
        usr1.contains("bulkheadd: counters at") && usr1.contains(KERNEL_RING_A),
        "SIGUSR1 prints ingress drops:\n{usr1}"
    );
    let log = d.stop();
    let dropped = counter(&log, KERNEL_RING_A);
    let received = counter(&log, "bulkhead_dataplane_rx_packets_total{port=\"a\"}");
    let oversize = counter(&log, OVERSIZE_A);
    assert!(
        dropped > 0,
        "a 16-frame ring overruns under a flood:\n{log}"
    );
    let accounted = received + dropped + oversize;
    eprintln!(
        "veth-a received {arrived}; bulkheadd received {received}, kernel ring dropped \
         {dropped}, oversize {oversize}"
    );
    // Frames still in the ring at stop, or counted by the interface between our reads, are
    // the only slack.
    let slack = arrived / 100 + 32;
    assert!(
        accounted.abs_diff(arrived) <= slack,
        "veth-a received {arrived}; bulkheadd received {received}, kernel ring dropped \
         {dropped}, oversize {oversize}:\n{log}"
    );
}

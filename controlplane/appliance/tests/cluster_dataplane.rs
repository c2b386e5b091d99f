//! A cluster member's dataplane through the management API, with real
//! traffic: a one-member cluster on the wire between two namespaces;
//! `bulkctl` (in the firewall namespace) follows flow events, lists the
//! tracked connection, reads counters, and flushes the connection, after
//! which the open session no longer passes. Needs root (namespaces).

mod cluster;
mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster::{bulkctl_path, text};
use common::{lib, serial, Topo};
use serde_json::Value;

const POLICY: &str = "version: 1\nsegments:\n  client: { id: 10, prefixes: [10.0.10.0/24] }\n  server: { id: 20, prefixes: [10.0.20.0/24] }\nrules:\n  - { name: client-to-server, from: [client], to: [server], services: [tcp/8080], action: allow }\n";

#[test]
fn a_members_connections_are_listed_and_flushed_over_the_api() {
    let _g = serial();
    let t = Topo::up("bhc1", "10.0.10.5/8", "10.0.20.3/8", false);
    let dir = std::env::temp_dir().join(format!("bulkhead-cluster-dp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pki = dir.join("pki");
    let ctl = |args: &[&str]| {
        Command::new("ip")
            .args(["netns", "exec", &t.ns("fw")])
            .arg(bulkctl_path())
            .args(args)
            .args(["--endpoint", "127.0.0.1:7601", "--pki"])
            .arg(&pki)
            .output()
            .unwrap()
    };
    let pki_s = pki.to_string_lossy().into_owned();
    for args in [
        vec!["pki", "init", &pki_s],
        vec!["pki", "issue", &pki_s, "gw-1", "--host", "127.0.0.1"],
    ] {
        let out = Command::new(bulkctl_path()).args(&args).output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    let log = std::fs::File::create(dir.join("gw-1.log")).unwrap();
    let mut member = common::Guarded(
        Command::new("ip")
            .args(["netns", "exec", &t.ns("fw")])
            .arg(env!("CARGO_BIN_EXE_bulkheadd"))
            .args(["--node", "gw-1", "--listen", "127.0.0.1:7601"])
            .arg("--data-dir")
            .arg(dir.join("gw-1"))
            .arg("--pki")
            .arg(&pki)
            .args(["--initial-cluster", "gw-1=127.0.0.1:7601"])
            .args([
                "--wire",
                "net_af_packet0,iface=veth-a",
                "net_af_packet1,iface=veth-b",
            ])
            .args(["--workers", "1", "--events", "/dev/null"])
            .stderr(log)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let read_log = || std::fs::read_to_string(dir.join("gw-1.log")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ctl(&["cluster", "status", "--json"]).status.success()
        || !String::from_utf8_lossy(&ctl(&["cluster", "status", "--json"]).stdout)
            .contains("\"leader\":\"gw-1\"")
    {
        assert!(Instant::now() < deadline, "no leader:\n{}", read_log());
        if let Ok(Some(st)) = member.0.try_wait() {
            panic!("bulkheadd exited {st}:\n{}", read_log());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    std::fs::write(dir.join("p.yaml"), POLICY).unwrap();
    let out = ctl(&[
        "policy",
        "apply",
        &dir.join("p.yaml").to_string_lossy(),
        "--wait=30",
    ]);
    assert!(out.status.success(), "{}", text(&out));

    // Follow flow events while a session opens.
    let flows = Command::new("ip")
        .args(["netns", "exec", &t.ns("fw")])
        .arg(bulkctl_path())
        .args(["flows", "--count", "1", "--json", "--port", "8080"])
        .args(["--endpoint", "127.0.0.1:7601", "--pki"])
        .arg(&pki)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
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
    let stdin = session.0.stdin.as_mut().unwrap();
    let mut replies = BufReader::new(session.0.stdout.take().unwrap());
    let mut line = String::new();
    replies.read_line(&mut line).unwrap();
    assert!(line.starts_with("connected"), "{line}");
    writeln!(stdin, "one").unwrap();
    line.clear();
    replies.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ok");
    let flow = flows.wait_with_output().unwrap();
    let ev: Value = serde_json::from_slice(&flow.stdout)
        .unwrap_or_else(|e| panic!("a flow event ({e}): {}", text(&flow)));
    assert_eq!(ev["rule"], "client-to-server", "{ev}");
    assert_eq!(ev["dst_port"], 8080, "{ev}");

    // The connection is listed, with its segments, rule and revision.
    let out = ctl(&["conns", "--port", "8080", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let conns = v["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 1, "{v}");
    assert_eq!(conns[0]["src_segment"], "client");
    assert_eq!(conns[0]["dst_segment"], "server");
    assert_eq!(conns[0]["rule"], "client-to-server");
    assert_eq!(conns[0]["revision"], 1);
    let out = ctl(&["stats", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["enforced_revision"], 1, "{v}");

    // Flushed: gone from the table, and the open session no longer passes
    // (its next segment has no connection and is not a SYN).
    let out = ctl(&["flush", "--port", "8080", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["flushed"], 1, "{v}");
    let out = ctl(&["conns", "--port", "8080", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["connections"].as_array().unwrap().len(), 0, "{v}");
    writeln!(stdin, "two").unwrap();
    line.clear();
    let _ = replies.read_line(&mut line);
    assert_ne!(line.trim(), "ok", "a flushed session is cut");
    let _ = std::fs::remove_dir_all(&dir);
}

//! DPDK on virtual devices (`net_null`, `net_ring`), no hugepages. All tests in this binary
//! share one EAL (DPDK allows one per process); each test uses its own pool and checks that
//! every mbuf went back to it.

use std::sync::OnceLock;

use bulkhead_dpdk::{
    DpdkError, Eal, Mbuf, MbufBurst, Mempool, Port, PortConfig, Ring, RssState, DEFAULT_DATA_ROOM,
};

/// The EAL of a test process is never cleaned up (it lives in a static), so its runtime
/// directory stays behind; remove those of earlier test processes that are gone.
fn remove_stale_runtime_dirs() {
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|_| !std::path::Path::new("/var/run/dpdk").exists())
        .map(|d| std::path::PathBuf::from(d).join("dpdk"))
        .unwrap_or_else(|| "/var/run/dpdk".into());
    let Ok(entries) = std::fs::read_dir(&base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = ["bh-dpdk-test-", "bh-dpdk-args-"]
            .iter()
            .find_map(|p| name.strip_prefix(p))
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

fn eal() -> &'static Eal {
    static EAL: OnceLock<Eal> = OnceLock::new();
    EAL.get_or_init(|| {
        remove_stale_runtime_dirs();
        let prefix = format!("--file-prefix=bh-dpdk-test-{}", std::process::id());
        Eal::init(&[
            "--no-huge",
            "-m",
            "512",
            "--no-pci",
            "--no-telemetry",
            "--log-level=warning",
            &prefix,
            "-l",
            "0",
            "--vdev=net_null0,size=64",
            "--vdev=net_null1",
        ])
        .expect("EAL init with virtual devices")
    })
}

fn pool(name: &str, n: u32) -> Mempool {
    Mempool::new(eal(), name, n, 0, DEFAULT_DATA_ROOM).unwrap()
}

fn frame(tag: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| tag.wrapping_add(i as u8)).collect()
}

fn mbuf_with(p: &Mempool, bytes: &[u8]) -> Mbuf {
    let mut m = p.alloc().unwrap();
    m.append(bytes).unwrap();
    m
}

#[test]
fn handles_cross_threads_as_documented() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Eal>();
    send_sync::<Mempool>();
    send_sync::<Ring>();
    send::<Mbuf>();
    send::<MbufBurst>();
    send::<bulkhead_dpdk::RxQueue>();
    send::<bulkhead_dpdk::TxQueue>();
}

#[test]
fn second_init_is_an_error_not_ub() {
    let _ = eal();
    assert_eq!(
        Eal::init(&["--no-huge"]).unwrap_err(),
        DpdkError::AlreadyInitialized
    );
}

#[test]
fn tsc_runs_and_is_calibrated() {
    let a = Eal::tsc();
    let b = Eal::tsc();
    assert!(b >= a);
    assert!(eal().tsc_hz() > 1_000_000, "tsc_hz = {}", eal().tsc_hz());
}

#[test]
fn mempool_counts_follow_alloc_and_free() {
    let p = pool("t_counts", 255);
    assert_eq!(p.name(), "t_counts");
    assert_eq!(p.in_use_count(), 0);
    assert_eq!(p.avail_count(), 255);
    let held: Vec<Mbuf> = (0..10).map(|_| p.alloc().unwrap()).collect();
    assert_eq!(p.in_use_count(), 10);
    assert_eq!(p.avail_count(), 245);
    drop(held);
    assert_eq!(p.in_use_count(), 0);

    // Exhaustion is a None, not a crash.
    let all: Vec<Mbuf> = std::iter::from_fn(|| p.alloc()).collect();
    assert_eq!(all.len(), 255);
    assert!(p.alloc().is_none());
    drop(all);
    assert_eq!(p.in_use_count(), 0);
}

#[test]
fn mempool_rejects_bad_arguments() {
    let e = Mempool::new(eal(), "bad\0name", 64, 0, DEFAULT_DATA_ROOM).unwrap_err();
    assert!(matches!(e, DpdkError::InvalidName { .. }), "{e}");
    let e = Mempool::new(eal(), "t_tiny", 64, 0, 64).unwrap_err();
    assert!(e.to_string().contains("headroom"), "{e}");
    let e = Mempool::new(eal(), "t_cache", 64, 100_000, DEFAULT_DATA_ROOM).unwrap_err();
    assert!(e.to_string().contains("cache_size"), "{e}");
    let _p = pool("t_dup", 64);
    let e = Mempool::new(eal(), "t_dup", 64, 0, DEFAULT_DATA_ROOM).unwrap_err();
    assert!(matches!(e, DpdkError::Rte { .. }), "{e}");
}

#[test]
fn mbuf_append_prepend_adj_trim() {
    let p = pool("t_mbuf", 64);
    {
        let mut m = p.alloc().unwrap();
        assert!(m.is_empty());
        assert_eq!(m.headroom(), 128);
        let room = m.tailroom();
        assert_eq!(room, usize::from(DEFAULT_DATA_ROOM) - 128);
        m.append(&frame(1, 60)).unwrap();
        assert_eq!(m.data(), &frame(1, 60)[..]);
        assert_eq!(m.len(), 60);
        assert_eq!(m.pkt_len(), 60);
        assert_eq!(m.nb_segs(), 1);
        assert_eq!(m.tailroom(), room - 60);

        m.prepend(&[0xaa, 0xbb]).unwrap();
        assert_eq!(&m.data()[..3], &[0xaa, 0xbb, 1]);
        assert_eq!(m.pkt_len(), 62);
        m.adj(2).unwrap();
        assert_eq!(m.data(), &frame(1, 60)[..]);
        m.trim(10).unwrap();
        assert_eq!(m.data(), &frame(1, 50)[..]);

        m.data_mut()[0] = 0xff;
        assert_eq!(m.data()[0], 0xff);

        let e = m.append(&vec![0u8; room]).unwrap_err();
        assert!(matches!(e, DpdkError::NoRoom { .. }), "{e}");
        assert_eq!(m.len(), 50, "a failed append changes nothing");
        assert!(m.prepend(&[0u8; 129]).is_err());
        assert!(m.adj(51).is_err());
        assert!(m.trim(51).is_err());
        assert!(m.append(&vec![0u8; 70_000]).is_err());
        assert_eq!(m.rss_hash(), None);
        assert_eq!(p.in_use_count(), 1);
    }
    assert_eq!(p.in_use_count(), 0);
}

#[test]
fn burst_push_take_retain_drain_clear_return_every_mbuf() {
    let p = pool("t_burst", 128);
    let mut b: MbufBurst<8> = MbufBurst::new();
    assert_eq!(b.capacity(), 8);
    for i in 0..8u8 {
        b.push(mbuf_with(&p, &[i])).unwrap();
    }
    assert!(b.is_full());
    let extra = b.push(mbuf_with(&p, &[99])).unwrap_err();
    assert_eq!(extra.data(), &[99]);
    drop(extra);
    assert_eq!(p.in_use_count(), 8);

    let firsts = |b: &MbufBurst<8>| b.iter().map(|m| m.data()[0]).collect::<Vec<u8>>();
    // Keep the even ones, in order; the odd ones are freed.
    b.retain_mut(|m| m.data()[0] % 2 == 0);
    assert_eq!(firsts(&b), vec![0, 2, 4, 6]);
    assert_eq!(p.in_use_count(), 4);

    let t = b.take(1).unwrap();
    assert_eq!(t.data(), &[2]);
    assert!(b.take(3).is_none());
    assert_eq!(firsts(&b), vec![0, 4, 6]);
    assert!(b.push(t).is_ok());
    assert_eq!(firsts(&b), vec![0, 4, 6, 2]);
    b.get_mut(0).unwrap().data_mut()[0] = 10;
    assert_eq!(b.pop().unwrap().data(), &[2]);
    assert_eq!(firsts(&b), vec![10, 4, 6]);
    assert_eq!(p.in_use_count(), 3);

    // Partially consumed drain frees the rest.
    let mut d = b.drain();
    assert_eq!(d.len(), 3);
    let first = d.next().unwrap();
    drop(d);
    assert!(b.is_empty());
    assert_eq!(first.data(), &[10]);
    assert_eq!(p.in_use_count(), 1);
    drop(first);

    p.alloc_bulk(&mut b, 5).unwrap();
    assert_eq!(b.len(), 5);
    assert_eq!(p.in_use_count(), 5);
    let e = p.alloc_bulk(&mut b, 4).unwrap_err();
    assert!(
        matches!(
            e,
            DpdkError::NoRoom {
                requested: 4,
                available: 3
            }
        ),
        "{e}"
    );
    b.clear();
    assert_eq!(p.in_use_count(), 0);

    // Drop of a non-empty burst frees too.
    {
        let mut b2: MbufBurst = MbufBurst::new();
        p.alloc_bulk(&mut b2, 32).unwrap();
        assert_eq!(p.in_use_count(), 32);
    }
    assert_eq!(p.in_use_count(), 0);
}

#[test]
fn alloc_bulk_is_all_or_nothing_when_pool_runs_dry() {
    let p = pool("t_dry", 40);
    let mut a: MbufBurst = MbufBurst::new();
    p.alloc_bulk(&mut a, 30).unwrap();
    let mut b: MbufBurst = MbufBurst::new();
    let e = p.alloc_bulk(&mut b, 20).unwrap_err();
    assert!(matches!(e, DpdkError::Rte { .. }), "{e}");
    assert!(b.is_empty());
    assert_eq!(p.in_use_count(), 30);
    a.clear();
    assert_eq!(p.in_use_count(), 0);
}

#[test]
fn ring_enqueue_dequeue_keeps_order_and_leftovers() {
    let p = pool("t_ring", 128);
    let r = Ring::new(eal(), "t_ring", 20).unwrap();
    let mut b: MbufBurst = MbufBurst::new();
    for i in 0..32u8 {
        b.push(mbuf_with(&p, &[i])).unwrap();
    }
    assert_eq!(r.enqueue_burst(&mut b), 20);
    assert_eq!(r.count(), 20);
    assert_eq!(b.len(), 12, "what did not fit stays in the burst");
    assert_eq!(b.get(0).unwrap().data(), &[20]);
    b.clear();

    let mut out: MbufBurst<16> = MbufBurst::new();
    assert_eq!(r.dequeue_burst(&mut out), 16);
    let got: Vec<u8> = out.iter().map(|m| m.data()[0]).collect();
    assert_eq!(got, (0..16).collect::<Vec<u8>>());
    out.clear();
    assert_eq!(p.in_use_count(), 4);
    // Dropping the ring frees what it still holds.
    drop(r);
    assert_eq!(p.in_use_count(), 0);

    let e = Ring::new(eal(), "t_ring_zero", 0).unwrap_err();
    assert!(matches!(e, DpdkError::InvalidConfig { .. }), "{e}");
}

#[test]
fn ring_port_rx_and_tx() {
    let p = pool("t_rport", 256);
    let rx = Ring::new(eal(), "t_rport_rx", 64).unwrap();
    let tx = Ring::new(eal(), "t_rport_tx", 64).unwrap();
    let id = Port::from_rings(eal(), "t_rport", &[&rx], &[&tx]).unwrap();
    // DPDK names the device `net_ring_<name>`.
    assert_eq!(Port::by_name(eal(), "net_ring_t_rport").unwrap(), id);
    let mut port = Port::configure(eal(), id, &PortConfig::default(), &p).unwrap();
    assert_eq!(port.name(), "net_ring_t_rport");
    assert_eq!(port.id(), id);
    assert_eq!(port.rss(), RssState::Disabled);
    assert!(port.link_status().unwrap().up);
    assert!(Port::configure(eal(), id, &PortConfig::default(), &p).is_err());

    let mut rxq = port.rx_queue(0).unwrap();
    let mut txq = port.tx_queue(0).unwrap();
    assert!(matches!(port.rx_queue(0), Err(DpdkError::Queue { .. })));
    assert!(matches!(port.tx_queue(1), Err(DpdkError::Queue { .. })));
    assert!(matches!(
        port.stop(),
        Err(DpdkError::QueuesInUse { held: 2, .. })
    ));

    // Frames injected into the RX ring come out of rx_burst, in order.
    let mut inject: MbufBurst = MbufBurst::new();
    for i in 0..10u8 {
        inject.push(mbuf_with(&p, &frame(i, 64))).unwrap();
    }
    assert_eq!(rx.enqueue_burst(&mut inject), 10);
    let mut got: MbufBurst = MbufBurst::new();
    assert_eq!(rxq.rx_burst(&mut got), 10);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.data(), &frame(i as u8, 64)[..]);
    }
    assert_eq!(rxq.rx_burst(&mut got), 0);

    // tx_burst moves them to the TX ring.
    assert_eq!(txq.tx_burst(&mut got), 10);
    assert!(got.is_empty());
    assert_eq!(tx.count(), 10);
    let mut out: MbufBurst = MbufBurst::new();
    assert_eq!(tx.dequeue_burst(&mut out), 10);
    assert_eq!(out.get(9).unwrap().data(), &frame(9, 64)[..]);
    out.clear();

    let s = port.stats().unwrap();
    assert_eq!((s.ipackets, s.opackets), (10, 10));

    // A full TX ring leaves the unsent mbufs in the burst.
    let mut big: MbufBurst<128> = MbufBurst::new();
    p.alloc_bulk(&mut big, 100).unwrap();
    assert_eq!(txq.tx_burst(&mut big), 64);
    assert_eq!(big.len(), 36);
    big.clear();

    drop((rxq, txq));
    port.stop().unwrap();
    assert!(!port.is_started());
    port.start().unwrap();
    drop(port);
    // The TX ring still holds 64 mbufs; dropping our last handle (the port released its own
    // when it closed) frees them.
    drop(tx);
    drop(rx);
    assert_eq!(p.in_use_count(), 0);
    assert!(matches!(
        Port::by_name(eal(), "net_ring_t_rport"),
        Err(DpdkError::PortNotFound { .. })
    ));
}

#[test]
fn rss_request_degrades_on_a_device_without_rss() {
    let p = pool("t_rss_ring", 512);
    let rings: Vec<Ring> = (0..4)
        .map(|i| Ring::new(eal(), &format!("t_rss_r{i}"), 32).unwrap())
        .collect();
    let id = Port::from_rings(
        eal(),
        "t_rss_ring",
        &[&rings[0], &rings[1]],
        &[&rings[2], &rings[3]],
    )
    .unwrap();
    drop(rings); // the port keeps them alive
    let cfg = PortConfig {
        rx_queues: 2,
        tx_queues: 2,
        rss_symmetric: true,
        promiscuous: true,
        ..PortConfig::default()
    };
    let mut port = Port::configure(eal(), id, &cfg, &p).unwrap();
    assert!(
        matches!(port.rss(), RssState::Unsupported { .. }),
        "{:?}",
        port.rss()
    );
    let mut q1 = port.rx_queue(1).unwrap();
    let mut b: MbufBurst = MbufBurst::new();
    assert_eq!(q1.rx_burst(&mut b), 0);
    drop((q1, port));
    assert_eq!(p.in_use_count(), 0);
}

#[test]
fn null_port_configure_start_rx_tx_stats() {
    let p = pool("t_null", 1024);
    let id = Port::by_name(eal(), "net_null0,size=64").unwrap();
    let mut port = Port::configure(eal(), id, &PortConfig::default(), &p).unwrap();
    assert_eq!(port.name(), "net_null0");
    assert!(port.link_status().unwrap().up);
    let _mac = port.mac().unwrap();
    let mut rxq = port.rx_queue(0).unwrap();
    let mut txq = port.tx_queue(0).unwrap();
    let mut b: MbufBurst = MbufBurst::new();
    assert_eq!(rxq.rx_burst(&mut b), 32);
    assert!(b.iter().all(|m| m.len() == 64));
    assert_eq!(p.in_use_count(), 32);
    assert_eq!(txq.tx_burst(&mut b), 32);
    assert!(b.is_empty());
    assert_eq!(p.in_use_count(), 0, "net_null frees what it transmits");
    let s = port.stats().unwrap();
    assert_eq!(s.ipackets, 32);
    assert_eq!(s.opackets, 32);
    drop((rxq, txq, port));
    assert_eq!(p.in_use_count(), 0);
}

#[test]
fn null_port_rss_and_errors() {
    let p = pool("t_null_rss", 1024);
    let id = Port::by_name(eal(), "net_null1").unwrap();
    let bad = PortConfig {
        rx_queues: 0,
        ..PortConfig::default()
    };
    let e = Port::configure(eal(), id, &bad, &p).unwrap_err();
    assert!(e.to_string().contains("rx_queues 0"), "{e}");
    let cfg = PortConfig {
        rx_queues: 2,
        tx_queues: 2,
        rss_symmetric: true,
        ..PortConfig::default()
    };
    let port = Port::configure(eal(), id, &cfg, &p).unwrap();
    match port.rss() {
        RssState::Enabled { hash_functions } => assert_ne!(hash_functions, 0),
        other => panic!("net_null supports RSS, got {other:?}"),
    }
    assert!(matches!(
        Port::configure(eal(), id, &cfg, &p),
        Err(DpdkError::PortBusy { .. })
    ));
    drop(port);
    assert!(matches!(
        Port::by_name(eal(), "net_nothing9"),
        Err(DpdkError::PortNotFound { .. })
    ));
    assert_eq!(p.in_use_count(), 0);
}

#[test]
fn registered_thread_is_an_lcore_with_a_pool_cache() {
    let p = Mempool::new(eal(), "t_lcore", 512, 32, DEFAULT_DATA_ROOM).unwrap();
    let p2 = p.clone();
    let e = eal().clone();
    std::thread::spawn(move || {
        assert_eq!(Eal::current_lcore(), None);
        let guard = e.register_thread().unwrap();
        let lcore = Eal::current_lcore().unwrap();
        assert_ne!(lcore, 0, "lcore 0 is the main lcore");
        assert!(matches!(
            e.register_thread(),
            Err(DpdkError::AlreadyLcore { .. })
        ));
        let mut b: MbufBurst = MbufBurst::new();
        p2.alloc_bulk(&mut b, 20).unwrap();
        assert_eq!(p2.in_use_count(), 20);
        b.clear();
        // Freed into this lcore's cache, which still counts as available.
        assert_eq!(p2.in_use_count(), 0);
        drop(guard);
        assert_eq!(Eal::current_lcore(), None);
    })
    .join()
    .unwrap();
    assert_eq!(p.in_use_count(), 0);
}

#[test]
fn mbuf_moves_between_threads() {
    let p = pool("t_send", 64);
    let m = mbuf_with(&p, b"hello");
    let back = std::thread::spawn(move || {
        assert_eq!(m.data(), b"hello");
        m
    })
    .join()
    .unwrap();
    assert_eq!(back.data(), b"hello");
    drop(back);
    assert_eq!(p.in_use_count(), 0);
}

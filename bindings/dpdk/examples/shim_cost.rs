//! Shim cost, Rust side: N bursts of `rx_burst` (32) + free, or `alloc_bulk` (32) + `tx_burst`,
//! on `net_null`, through the wrapper (and so through the C shim). Compare with
//! `bench-c/shim_cost.c`, the same loop in C calling DPDK's inlines directly;
//! `bench-c/run.sh` runs both.
//!
//! Usage: `shim_cost [rx|tx] [bursts] [--huge]` (default: rx, 2000000, --no-huge).

use std::time::Instant;

use bulkhead_dpdk::{Eal, MbufBurst, Mempool, Port, PortConfig};

const BURST: usize = 32;
const WARMUP: u64 = 10_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("rx").to_owned();
    let bursts: u64 = match args.get(1) {
        Some(s) => s.parse()?,
        None => 2_000_000,
    };
    let huge = args.iter().any(|a| a == "--huge");
    if mode != "rx" && mode != "tx" {
        return Err(format!("mode must be rx or tx, got {mode:?}").into());
    }

    let prefix = format!("--file-prefix=bh-shim-cost-{}", std::process::id());
    let mut eal_args = vec![
        "-l",
        "0",
        "--no-pci",
        "--no-telemetry",
        "--log-level=warning",
        &prefix,
        "--vdev=net_null0",
    ];
    if !huge {
        eal_args.extend(["--no-huge", "-m", "512"]);
    }
    let eal = Eal::init(&eal_args)?;
    let pool = Mempool::new(
        &eal,
        "shim_cost",
        8191,
        256,
        bulkhead_dpdk::DEFAULT_DATA_ROOM,
    )?;
    let id = Port::by_name(&eal, "net_null0")?;
    let mut port = Port::configure(&eal, id, &PortConfig::default(), &pool)?;
    let mut rxq = port.rx_queue(0)?;
    let mut txq = port.tx_queue(0)?;
    let mut burst: MbufBurst<BURST> = MbufBurst::new();

    let mut packets = 0u64;
    let mut run = |n: u64, packets: &mut u64| -> Result<(), Box<dyn std::error::Error>> {
        for _ in 0..n {
            if mode == "rx" {
                *packets += rxq.rx_burst(&mut burst) as u64;
                burst.clear();
            } else {
                pool.alloc_bulk(&mut burst, BURST)?;
                *packets += txq.tx_burst(&mut burst) as u64;
                burst.clear();
            }
        }
        Ok(())
    };
    run(WARMUP, &mut packets)?;
    packets = 0;
    let t0 = Instant::now();
    run(bursts, &mut packets)?;
    let ns = t0.elapsed().as_nanos() as f64;
    println!(
        "rust {mode} burst={BURST} bursts={bursts} packets={packets} hugepages={} ns/packet={:.2}",
        if huge { "yes" } else { "no" },
        ns / packets.max(1) as f64
    );
    if pool.in_use_count() != 0 {
        return Err(format!("{} mbufs not returned", pool.in_use_count()).into());
    }
    Ok(())
}

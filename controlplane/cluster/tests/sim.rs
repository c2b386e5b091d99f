//! Seeded schedules over a simulated network; a failing seed is printed so it
//! can be replayed with `BULKHEAD_SIM_SEED=<seed>`.

mod common;

use common::{Faults, Sim};

/// Acknowledged commands, crashes and snapshots delivered in one schedule.
fn run(seed: u64, voters: usize, steps: u64) -> [u64; 3] {
    let mut sim = Sim::new(seed, voters, 0, Faults::ROUGH, 5);
    for _ in 0..steps {
        sim.step(0.3);
    }
    let members: Vec<usize> = (0..voters).collect();
    sim.heal_and_converge(&members);
    sim.check_final(&members);
    [
        sim.acked.len() as u64,
        sim.crashes,
        sim.snapshots_received.iter().sum(),
    ]
}

fn seeds(count: u64) -> Vec<u64> {
    match std::env::var("BULKHEAD_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => vec![seed],
        None => (0..count).collect(),
    }
}

fn run_many(voters: usize, count: u64, steps: u64) {
    let mut totals = [0u64; 3];
    for seed in seeds(count) {
        let result = std::panic::catch_unwind(|| run(seed, voters, steps));
        match result {
            Ok(n) => (0..3).for_each(|k| totals[k] += n[k]),
            Err(e) => {
                eprintln!(
                    "FAILING SEED: {seed} ({voters} voters); replay with BULKHEAD_SIM_SEED={seed}"
                );
                std::panic::resume_unwind(e);
            }
        }
    }
    // The schedules must exercise what they claim to.
    let [acked, crashes, snapshots] = totals;
    eprintln!("{voters} voters: {acked} acknowledged commands, {crashes} crashes, {snapshots} snapshots delivered");
    assert!(
        acked > 0 && crashes > 0 && snapshots > 0,
        "schedules too tame: {totals:?}"
    );
}

#[test]
fn three_nodes_under_faults() {
    run_many(3, 150, 300);
}

#[test]
fn five_nodes_under_faults() {
    run_many(5, 50, 300);
}

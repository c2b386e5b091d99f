//! Seeded schedules over a simulated network; a failing seed is printed so it
//! can be replayed with `BULKHEAD_SIM_SEED=<seed>`.

mod common;

use common::{Faults, Sim};

fn run(seed: u64, voters: usize, steps: u64) -> usize {
    let mut sim = Sim::new(seed, voters, 0, Faults::ROUGH, 5);
    for _ in 0..steps {
        sim.step(0.3);
    }
    let members: Vec<usize> = (0..voters).collect();
    sim.heal_and_converge(&members);
    sim.check_final(&members);
    sim.acked.len()
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
    let mut acked = 0;
    for seed in seeds(count) {
        let result = std::panic::catch_unwind(|| run(seed, voters, steps));
        match result {
            Ok(n) => acked += n,
            Err(e) => {
                eprintln!(
                    "FAILING SEED: {seed} ({voters} voters); replay with BULKHEAD_SIM_SEED={seed}"
                );
                std::panic::resume_unwind(e);
            }
        }
    }
    assert!(
        acked > 0,
        "no command was ever acknowledged: the schedules test nothing"
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

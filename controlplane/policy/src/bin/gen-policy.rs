//! `gen-policy`: print a synthetic policy (see `bulkhead_policy::synthetic`).
//!
//! `gen-policy --segments 5000 --rules 100000 --seed 1 > big.yaml`
#![forbid(unsafe_code)]

use std::process::ExitCode;

const USAGE: &str = "usage: gen-policy [--segments N] [--rules N] [--seed N]\n\
  Prints a valid synthetic policy (YAML) to stdout. Defaults: 100 segments, 1000 rules, seed 1.\n\
  Example: gen-policy --segments 5000 --rules 100000 --seed 1 > big.yaml";

fn main() -> ExitCode {
    let mut segments = 100usize;
    let mut rules = 1000usize;
    let mut seed = 1u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "-h" || a == "--help" {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        let value = args.next();
        let parsed = value.as_deref().map(str::parse::<u64>);
        let n = match parsed {
            Some(Ok(n)) => n,
            _ => {
                eprintln!("gen-policy: {a} needs a non-negative integer\n{USAGE}");
                return ExitCode::from(2);
            }
        };
        match a.as_str() {
            "--segments" => segments = usize::try_from(n).unwrap_or(usize::MAX),
            "--rules" => rules = usize::try_from(n).unwrap_or(usize::MAX),
            "--seed" => seed = n,
            _ => {
                eprintln!("gen-policy: unknown option {a}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    if rules > bulkhead_policy::limits::MAX_RULES {
        eprintln!(
            "gen-policy: --rules {rules} exceeds the policy limit of {}",
            bulkhead_policy::limits::MAX_RULES
        );
        return ExitCode::from(2);
    }
    print!(
        "{}",
        bulkhead_policy::synthetic::generate(segments, rules, seed)
    );
    ExitCode::SUCCESS
}

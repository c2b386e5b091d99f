#!/usr/bin/env bash
# Shim cost: the same net_null burst loop in Rust (through bulkhead-dpdk and its C shim) and
# in C (DPDK's inlines called directly). Usage: bindings/dpdk/bench-c/run.sh [runs] [bursts] [--huge]
# Run from anywhere; builds the Rust example in release and the C program with -O3.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
runs="${1:-3}"
bursts="${2:-2000000}"
huge="${3:-}"
out="$root/target/shim-cost"
mkdir -p "$out"
# shellcheck disable=SC2046
cc -O3 -o "$out/shim_cost_c" "$here/shim_cost.c" $(pkg-config --cflags --libs libdpdk)
cargo build --release -q -p bulkhead-dpdk --example shim_cost --manifest-path "$root/Cargo.toml"
for _ in $(seq "$runs"); do
  for mode in rx tx; do
    "$out/shim_cost_c" "$mode" "$bursts" $huge 2>/dev/null | grep ns/packet
    "$root/target/release/examples/shim_cost" "$mode" "$bursts" $huge 2>/dev/null | grep ns/packet
  done
done
rm -rf /var/run/dpdk/bh-shim-cost-* 2>/dev/null || true

#!/usr/bin/env bash
# The README's test command: installs what is missing, then runs every check
# CI runs (format, lints, all tests including DPDK and network-namespace ones).
# Needs root for the namespace / tap tests (CI is root).
set -euo pipefail
cd "$(dirname "$0")/.."
. perf-lab/lib/deps.sh
bulkhead_ensure_deps

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo test"
cargo test --workspace --locked -- --test-threads="${BULKHEAD_TEST_THREADS:-2}"
echo "==> all checks passed"

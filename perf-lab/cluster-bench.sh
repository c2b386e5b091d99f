#!/usr/bin/env bash
# The cluster benchmark (issue "A cluster of appliances", Performance):
# three bulkheadd members on loopback (net_null wires), then in the same run
# three etcd members (Debian's etcd-server) as the reference. Measures, p50
# and p99 over many applies: commit latency and apply-to-enforced on every
# worker of every member, for the three-tier policy and a 100,000-rule
# synthetic one; bulk endpoint updates per second; etcd's put latency of a
# same-sized value. Writes perf-lab/results/<UTC time>-cluster.json and
# prints a table. A benchmark, not a test: never part of the CI gate.
# Needs root (DPDK). Usage: sudo perf-lab/cluster-bench.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
. perf-lab/lib/deps.sh
bulkhead_ensure_deps
if ! command -v etcd >/dev/null; then
    echo "==> installing etcd-server (the reference)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
fi

APPLIES=100 BIG_APPLIES=10 EP_SECONDS=10 PUTS=300
if [ "${1:-}" = --quick ]; then APPLIES=10 BIG_APPLIES=2 EP_SECONDS=2 PUTS=30; fi

WORK=$(mktemp -d /tmp/bulkhead-cluster-bench.XXXXXX)
cleanup() {
    set +e
    for pid in $(cat "$WORK/pids" 2>/dev/null); do kill "$pid" 2>/dev/null; done
    for pid in $(cat "$WORK/pids" 2>/dev/null); do
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "==> building (release)"
cargo build --quiet --release -p bulkhead-appliance -p bulkhead-cli
cargo build --quiet --release -p bulkhead-policy --bin gen-policy
cargo build --quiet --release -p bulkhead-api --example cluster_bench
BIN=target/release

$BIN/bulkctl pki init "$WORK/pki" >/dev/null
for i in 1 2 3; do $BIN/bulkctl pki issue "$WORK/pki" "gw-$i" --host 127.0.0.1 >/dev/null; done
MEMBERS=127.0.0.1:7451,127.0.0.1:7452,127.0.0.1:7453
CLUSTER=gw-1=127.0.0.1:7451,gw-2=127.0.0.1:7452,gw-3=127.0.0.1:7453
echo "==> three bulkheadd members"
for i in 1 2 3; do
    $BIN/bulkheadd --node "gw-$i" --data-dir "$WORK/gw-$i" --listen "127.0.0.1:745$i" \
        --pki "$WORK/pki" --initial-cluster "$CLUSTER" \
        --wire net_null0,no-rx=1 net_null1,no-rx=1 --idle adaptive --events /dev/null \
        >"$WORK/gw-$i.log" 2>&1 &
    echo $! >>"$WORK/pids"
done
export BULKHEAD_PKI=$WORK/pki BULKHEAD_ENDPOINT=127.0.0.1:7451
for _ in $(seq 1 100); do
    $BIN/bulkctl cluster status --json 2>/dev/null | grep -q '"leader":"gw' && break
    sleep 0.3
done
$BIN/bulkctl policy apply configs/policies/three-tier.yaml --wait=30 >/dev/null

bench() { # policy applies [endpoint-seconds]
    $BIN/examples/cluster_bench --pki "$WORK/pki" --members "$MEMBERS" --policy "$1" \
        --applies "$2" --endpoint-seconds "${3:-0}" --batch 1000 --segment app --prefix 10.200
}
echo "==> three-tier policy: $APPLIES applies, then endpoint batches for $EP_SECONDS s"
SMALL=$(bench configs/policies/three-tier.yaml "$APPLIES" "$EP_SECONDS")
echo "$SMALL"
$BIN/gen-policy --segments 1000 --rules 100000 --seed 1 >"$WORK/big.yaml"
echo "==> 100,000-rule policy ($(stat -c %s "$WORK/big.yaml") bytes): $BIG_APPLIES applies"
BIG=$(bench "$WORK/big.yaml" "$BIG_APPLIES")
echo "$BIG"

echo "==> etcd reference: three members, put of a same-sized value"
E=""
for i in 1 2 3; do E="$E,e$i=http://127.0.0.1:2381$i"; done
for i in 1 2 3; do
    etcd --name "e$i" --data-dir "$WORK/etcd-$i" \
        --listen-client-urls "http://127.0.0.1:2379$i" --advertise-client-urls "http://127.0.0.1:2379$i" \
        --listen-peer-urls "http://127.0.0.1:2381$i" --initial-advertise-peer-urls "http://127.0.0.1:2381$i" \
        --initial-cluster "${E#,}" --initial-cluster-state new >"$WORK/etcd-$i.log" 2>&1 &
    echo $! >>"$WORK/pids"
done
for _ in $(seq 1 100); do
    python3 perf-lab/lib/etcd_put.py 127.0.0.1:23791 8 1 >/dev/null 2>&1 && break
    sleep 0.3
done
SIZE=$(stat -c %s configs/policies/three-tier.yaml)
ETCD_SMALL=$(python3 perf-lab/lib/etcd_put.py 127.0.0.1:23791 "$SIZE" "$PUTS")
echo "$ETCD_SMALL"

mkdir -p perf-lab/results
OUT="perf-lab/results/$(date -u +%Y%m%dT%H%M%SZ)-cluster.json"
python3 - "$OUT" "$SMALL" "$BIG" "$ETCD_SMALL" <<'PY'
import json, platform, subprocess, sys
out, small, big, etcd = sys.argv[1], *map(json.loads, sys.argv[2:])
def ver(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0]
    except Exception:
        return None
res = {
    "scenario": "cluster",
    "machine": {"cpus": __import__("os").cpu_count(), "kernel": platform.release()},
    "versions": {"etcd": ver(["etcd", "--version"])},
    "results": {"three_tier": small, "rules_100000": big, "etcd_put_same_size": etcd},
}
json.dump(res, open(out, "w"), indent=2)
c99, e99 = small["commit"]["p99_ms"], etcd["p99_ms"]
ae99 = small["apply_to_enforced"]["p99_ms"]
eps = small.get("endpoints", {})
def mark(ok):
    return "met" if ok else "NOT met"
print()
print("| measure | p50 | p99 | goal |")
print("|---|---|---|---|")
print(f"| commit, three-tier ({small['document_bytes']} B) | {small['commit']['p50_ms']:.2f} ms | {c99:.2f} ms | p99 <= 1.3x etcd put p99 ({1.3*e99:.2f} ms): {mark(c99 <= 1.3*e99)} |")
print(f"| etcd put, same size | {etcd['p50_ms']:.2f} ms | {e99:.2f} ms | reference |")
print(f"| apply-to-enforced, three-tier, every worker of 3 members | {small['apply_to_enforced']['p50_ms']:.2f} ms | {ae99:.2f} ms | p99 < 50 ms: {mark(ae99 < 50)} |")
print(f"| commit, 100,000 rules ({big['document_bytes']} B) | {big['commit']['p50_ms']:.1f} ms | {big['commit']['p99_ms']:.1f} ms | - |")
print(f"| apply-to-enforced, 100,000 rules | {big['apply_to_enforced']['p50_ms']:.1f} ms | {big['apply_to_enforced']['p99_ms']:.1f} ms | - |")
if eps:
    print(f"| endpoint updates (batches of {eps['batch']}) | {eps['per_second']:.0f} /s | batch commit p99 {eps['batch_commit']['p99_ms']:.1f} ms | >= 20,000/s: {mark(eps['per_second'] >= 20000)} (p99 to enforced: not measured) |")
print(f"\nwrote {out}")
PY

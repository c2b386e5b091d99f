#!/usr/bin/env bash
# Appliance benchmark: the real bulkheadd (release build) forwarding prepared
# traffic between DPDK virtual devices, no kernel in the path:
#   port A = net_pcap replaying a prepared pcap forever (infinite_rx=1)
#   port B = net_null (transmit discards, no receive)
# Reports the packet rate and bulkheadd's own busy cycles per packet for
# established UDP flows and a denied SYN flood. Uses 2 MB hugepages when it
# can (reserves them for the run and gives them back), else --no-huge.
#
# Usage: perf-lab/ringbench.sh [SECONDS] [FLOWS]    (root; defaults 10 s, 10000 flows)
# Note: the pcap PMD copies every replayed frame into a fresh mbuf on the
# worker's core, so the rate includes that generator cost; busy cycles per
# packet is measured around the worker's own processing only.
set -euo pipefail
cd "$(dirname "$0")/.."
. perf-lab/lib/deps.sh
bulkhead_ensure_deps
SECS=${1:-10}
FLOWS=${2:-10000}
WORK=$(mktemp -d /tmp/bulkhead-ringbench.XXXXXX)
HP=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
OLD_HP=$(cat "$HP" 2>/dev/null || echo 0)
MOUNTED=
PID=
cleanup() {
    set +e
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    [ -n "$MOUNTED" ] && umount /dev/hugepages
    [ -w "$HP" ] && echo "$OLD_HP" > "$HP"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "==> building bulkheadd (release)"
cargo build --release --quiet -p bulkhead-appliance
BIN=target/release/bulkheadd

EAL="--no-huge -m 2048 --no-pci"
if [ -w "$HP" ] && echo 600 > "$HP" 2>/dev/null && [ "$(cat $HP)" -ge 512 ]; then
    if ! mountpoint -q /dev/hugepages; then
        mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages && MOUNTED=1
    fi
    EAL="-m 1024 --no-pci"
    echo "==> hugepages: $(cat $HP) x 2 MB"
else
    echo "==> hugepages unavailable: running with --no-huge"
fi
CORE=$(( $(nproc) > 1 ? 1 : 0 ))
echo "==> machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; worker on core $CORE"

run() { # label kind
    local label=$1 kind=$2
    python3 perf-lab/gen_pcap.py "$WORK/$kind.pcap" "$kind" "$FLOWS"
    "$BIN" --policy perf-lab/bench-policy.yaml \
        --wire "net_pcap0,rx_pcap=$WORK/$kind.pcap,infinite_rx=1" "net_null0,no-rx=1" \
        --workers "$CORE" --eal "$EAL" --idle busy-poll --conntrack-capacity $((FLOWS * 2)) --mbufs $((FLOWS + 16384)) \
        --events /dev/null --stats-interval 1 2>"$WORK/$kind.log" &
    PID=$!
    sleep "$SECS"
    kill -TERM "$PID"; wait "$PID" || true; PID=
    python3 - "$WORK/$kind.log" "$label" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
blocks = re.split(r"bulkheadd: counters at ", text)[1:]
def val(block, name):
    m = re.search(re.escape(name) + r"\s+([0-9.]+)", block)
    return float(m.group(1)) if m else 0.0
snaps = [(float(b.split(" s:")[0]), val(b, 'bulkhead_dataplane_rx_packets_total{port="a"}')) for b in blocks]
if len(snaps) < 3:
    sys.exit(f"too few counter snapshots:\n{text}")
# Skip the first snapshot (start-up, first pass over the flows), use the rest.
(t0, r0), (t1, r1) = snaps[1], snaps[-1]
rate = (r1 - r0) / (t1 - t0)
final = text.split("final counters")[-1]
cpp = val(final, "bulkhead_dataplane_busy_cycles_per_packet")
drops = val(final, 'bulkhead_dataplane_drops_total{reason="policy_deny"}')
tx = val(final, 'bulkhead_dataplane_tx_packets_total{port="b"}')
print(f"  {sys.argv[2]:<28} {rate/1e6:6.2f} Mpps   {cpp:6.1f} busy cycles/packet   (forwarded {tx:.0f}, denied {drops:.0f})")
PY
}
echo "==> results (${SECS} s each, ${FLOWS} flows)"
run "established UDP flows" udp-allowed
run "denied SYN flood" tcp-denied

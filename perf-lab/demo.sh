#!/usr/bin/env bash
# The README's demo: a client namespace and a server namespace joined only
# through a running bulkheadd (DPDK net_af_packet ports), enforcing
# configs/policies/three-tier.yaml. Shows allowed and refused connections,
# the flow events and the counters, then cleans up (also when interrupted).
# Needs root (namespaces). Usage: perf-lab/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. perf-lab/lib/deps.sh
. perf-lab/lib/topology.sh
bulkhead_ensure_deps

P=bhdemo
WORK=$(mktemp -d /tmp/bulkhead-demo.XXXXXX)
DEMO=
cleanup() {
    set +e
    [ -n "$DEMO" ] && kill "$DEMO" 2>/dev/null
    # Every process the demo started in its namespaces (bulkheadd, servers,
    # clients) is killed by PID there, then the namespaces are removed.
    topo_down "$P"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo; echo "==> interrupted: cleaning up"; exit 130' INT TERM

echo "==> building bulkheadd and bulkctl"
cargo build --quiet -p bulkhead-appliance -p bulkhead-cli
BIN=target/debug
POLICY=configs/policies/three-tier.yaml

echo "==> checking the policy offline"
$BIN/bulkctl policy test "$POLICY"

# The namespace part runs as a job the shell waits for: `wait` returns at
# once on Ctrl-C, so the interrupt trap and the cleanup run immediately.
run_demo() {
BHD_PID=
echo "==> creating namespaces: $P-client (web 10.0.10.5), $P-server (app 10.0.20.3, db 10.0.30.7), $P-fw (bulkheadd)"
topo_up "$P" 10.0.10.5/8 10.0.20.3/8,10.0.30.7/8

echo "==> starting bulkheadd on the wire veth-a <-> veth-b"
ip netns exec "$P-fw" "$BIN/bulkheadd" --policy "$POLICY" \
    --wire net_af_packet0,iface=veth-a net_af_packet1,iface=veth-b \
    --workers 0 --events "$WORK/events.jsonl" >"$WORK/bulkheadd.log" 2>&1 &
BHD_PID=$!
for _ in $(seq 1 100); do
    grep -q "workers running" "$WORK/bulkheadd.log" 2>/dev/null && break
    kill -0 "$BHD_PID" 2>/dev/null || { cat "$WORK/bulkheadd.log"; echo "bulkheadd failed to start" >&2; exit 1; }
    sleep 0.2
done
grep "workers running" "$WORK/bulkheadd.log"

echo "==> starting servers: app on 10.0.20.3:8080, db on 10.0.30.7:5432"
for hp in 10.0.20.3:8080 10.0.30.7:5432; do
    ip netns exec "$P-server" python3 perf-lab/lib/echo_server.py "${hp%:*}" "${hp#*:}" &
done
sleep 0.5

try() { # description addr port
    if out=$(ip netns exec "$P-client" python3 perf-lab/lib/echo_client.py "$2" "$3" "hello from web" 2>&1); then
        printf '  %-40s ALLOWED   (%s)\n' "$1" "$out"
    else
        printf '  %-40s REFUSED   (%s)\n' "$1" "$out"
    fi
}
echo "==> connections from web (10.0.10.5)"
try "web -> app tcp/8080 (rule web-to-app)" 10.0.20.3 8080
try "web -> db  tcp/5432 (no rule: default)" 10.0.30.7 5432
if ip netns exec "$P-client" ping -c1 -W1 10.0.20.3 >/dev/null 2>&1; then
    printf '  %-40s ALLOWED\n' "web -> app ping (no rule)"
else
    printf '  %-40s REFUSED\n' "web -> app ping (no rule)"
fi

sleep 0.5
kill -TERM "$BHD_PID"; wait "$BHD_PID" || true
echo "==> flow events (JSON lines)"
cat "$WORK/events.jsonl"
echo "==> bulkheadd log and final counters"
cat "$WORK/bulkheadd.log"
}

run_demo &
DEMO=$!
wait "$DEMO"
DEMO=

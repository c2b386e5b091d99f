#!/usr/bin/env bash
# The README's demo: a cluster of three appliances. gw-1 is a bulkheadd on
# the wire between a client namespace (web 10.0.10.5) and a server namespace
# (app 10.0.20.3, db 10.0.30.7); gw-2 and gw-3 are bulkheadd members on
# net_null wires beside it. A policy is applied through gw-2 and judged on
# gw-1's wire; a revision that revokes a service cuts an open session; a
# viewer is refused a change; a member is killed and the cluster still
# accepts changes; the member restarts from its data directory and catches
# up. Cleans up after itself (also when interrupted). Needs root.
# Usage: perf-lab/demo.sh
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
    # Members started here (the demo job records their PIDs): killed by PID.
    for pid in $(cat "$WORK/pids" 2>/dev/null); do kill "$pid" 2>/dev/null; done
    # Wait (at most 10 s each) until they have stopped.
    for pid in $(cat "$WORK/pids" 2>/dev/null); do
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    done
    topo_down "$P"
    ip link del "$P-m0" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo; echo "==> interrupted: cleaning up"; exit 130' INT TERM

echo "==> building bulkheadd and bulkctl"
cargo build --quiet -p bulkhead-appliance -p bulkhead-cli
BIN=$PWD/target/debug
POLICY=configs/policies/three-tier.yaml
# Management addresses: gw-1 inside the firewall namespace, gw-2 and gw-3 here.
M1=169.254.77.2 M0=169.254.77.1
A1=$M1:7441 A2=$M0:7442 A3=$M0:7443
CLUSTER="gw-1=$A1,gw-2=$A2,gw-3=$A3"
export BULKHEAD_PKI=$WORK/pki BULKHEAD_ENDPOINT=$A2

step() { printf '\n==> %s\n' "$*"; }
ctl() { echo "\$ bulkctl $*" | sed "s|$WORK|\$WORK|g"; "$BIN/bulkctl" "$@"; }

member() { # i netns-or-empty wire...
    local i=$1 ns=$2; shift 2
    local addr_var="A$i"
    local cmd=("$BIN/bulkheadd" --node "gw-$i" --data-dir "$WORK/gw-$i" --listen "${!addr_var}"
        --pki "$WORK/pki" --initial-cluster "$CLUSTER" --wire "$@" --idle adaptive
        --events "$WORK/gw-$i.events")
    if [ -n "$ns" ]; then cmd=(ip netns exec "$ns" "${cmd[@]}"); fi
    "${cmd[@]}" >>"$WORK/gw-$i.log" 2>&1 &
    echo $! >>"$WORK/pids"
    eval "GW${i}_PID=$!"
}

wait_log() { # file needle
    for _ in $(seq 1 150); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.2; done
    cat "$1"; echo "timed out waiting for '$2' in $1" >&2; exit 1
}

try() { # description addr port
    if out=$(ip netns exec "$P-client" python3 perf-lab/lib/echo_client.py "$2" "$3" "hello from web" 2>&1); then
        printf '  %-42s ALLOWED   (%s)\n' "$1" "$out"
    else
        printf '  %-42s REFUSED   (%s)\n' "$1" "$out"
    fi
}

run_demo() {
step "a lab PKI: a CA, an admin identity, one certificate per member, a viewer (alice)"
ctl pki init "$WORK/pki"
for i in 1 2 3; do
    h=$M0; [ "$i" = 1 ] && h=$M1
    "$BIN/bulkctl" pki issue "$WORK/pki" "gw-$i" --host "$h" >/dev/null
done
"$BIN/bulkctl" pki issue "$WORK/pki" alice >/dev/null

step "namespaces: $P-client (web 10.0.10.5), $P-server (app 10.0.20.3, db 10.0.30.7), $P-fw (gw-1's wire)"
topo_up "$P" 10.0.10.5/8 10.0.20.3/8,10.0.30.7/8
ip link add "$P-m0" type veth peer name "$P-m1"
ip link set "$P-m1" netns "$P-fw"
ip addr add "$M0/30" dev "$P-m0"; ip link set "$P-m0" up
ip -n "$P-fw" addr add "$M1/30" dev "$P-m1"; ip -n "$P-fw" link set "$P-m1" up

step "three appliances: gw-1 on the namespace wire, gw-2 and gw-3 on net_null wires"
member 1 "$P-fw" net_af_packet0,iface=veth-a net_af_packet1,iface=veth-b
member 2 "" net_null0,no-rx=1 net_null1,no-rx=1
member 3 "" net_null0,no-rx=1 net_null1,no-rx=1
for i in 1 2 3; do wait_log "$WORK/gw-$i.log" "cluster member running"; done
for _ in $(seq 1 100); do
    "$BIN/bulkctl" cluster status --json 2>/dev/null | grep -q '"leader":"gw' && break
    sleep 0.3
done
ctl cluster status

for hp in 10.0.20.3:8080 10.0.30.7:5432; do
    ip netns exec "$P-server" python3 perf-lab/lib/echo_server.py "${hp%:*}" "${hp#*:}" &
done
sleep 0.5
step "before any revision every member enforces deny-all"
try "web -> app tcp/8080" 10.0.20.3 8080

step "apply $POLICY through gw-2, wait until every worker of every member enforces it"
ctl policy apply "$POLICY" --comment "three tiers" --wait=30
step "judged on gw-1's wire"
try "web -> app tcp/8080 (rule web-to-app)" 10.0.20.3 8080
try "web -> db  tcp/5432 (no rule: default)" 10.0.30.7 5432

step "an open session web -> app, then a revision that revokes tcp/8080 (applied through gw-3)"
mkfifo "$WORK/session.in"
ip netns exec "$P-client" python3 -u perf-lab/lib/echo_session.py 10.0.20.3 8080 \
    <"$WORK/session.in" >"$WORK/session.out" 2>&1 &
SESSION=$!
exec 7>"$WORK/session.in"
sleep 0.5
echo "before" >&7; sleep 0.5
sed 's/    services: \[app-http\]/    services: [https]/' "$POLICY" >"$WORK/revoke.yaml"
ctl policy apply "$WORK/revoke.yaml" --endpoint "$A3" --comment "revoke app-http" --wait=30
echo "after" >&7; sleep 2.5
exec 7>&-
wait "$SESSION" 2>/dev/null || true
echo "  the session's two messages: $(tr '\n' ' ' <"$WORK/session.out")"
try "web -> app tcp/8080 (revoked)" 10.0.20.3 8080

step "alice gets read-only access; her change is refused"
ctl access grant alice viewer
ctl policy history --identity alice
ctl policy apply "$POLICY" --identity alice || echo "  (exit $?: refused)"

step "gw-3 is killed (kill -9); the other two still accept changes"
kill -9 "$GW3_PID"; wait "$GW3_PID" 2>/dev/null || true
ctl policy rollback 1 --endpoint "$A1" --comment "back to three tiers"
try "web -> app tcp/8080 (rolled back)" 10.0.20.3 8080
ctl cluster status || true

step "gw-3 restarts from its data directory and catches up"
member 3 "" net_null0,no-rx=1 net_null1,no-rx=1
wait_log "$WORK/gw-3.log" "cluster member running"
for _ in $(seq 1 100); do
    "$BIN/bulkctl" cluster status --json 2>/dev/null \
        | python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if all(m["enforced_revision"]==s["revision"] for m in s["members"]) else 1)' \
        2>/dev/null && break
    sleep 0.3
done
ctl cluster status
ctl policy history
ctl audit --limit 20
}

run_demo &
DEMO=$!
wait "$DEMO"
DEMO=

# shellcheck shell=bash
# A two-sided namespace topology joined only through bulkheadd:
#
#   [ns $P-client] cli0 ==veth== veth-a [ns $P-fw: bulkheadd] veth-b ==veth== srv0 [ns $P-server]
#
# Client and server share one L2 segment (10.0.0.0/8 here) and can reach each
# other only through the virtual wire bulkheadd forwards. Offloads are off on
# every veth: af_packet hands frames to DPDK as they are, so checksums must be
# complete and frames no larger than the MTU.
#
# Usage: [TOPO_IPV6=1] topo_up PREFIX CLIENT_ADDRS SERVER_ADDRS   (addresses "ip/len[,ip/len...]")
#        topo_down PREFIX

topo_offloads_off() { # ns dev
    ip netns exec "$1" ethtool -K "$2" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
    # VLAN tags stay in the frame data, as they would on a physical wire.
    ip netns exec "$1" ethtool -K "$2" rxvlan off txvlan off >/dev/null 2>&1 || true
}

topo_up() {
    local p=$1 caddrs=$2 saddrs=$3 a
    topo_down "$p"
    ip netns add "$p-client"
    ip netns add "$p-server"
    ip netns add "$p-fw"
    ip link add "$p-c" type veth peer name "$p-a"
    ip link add "$p-s" type veth peer name "$p-b"
    ip link set "$p-c" netns "$p-client" name cli0
    ip link set "$p-s" netns "$p-server" name srv0
    ip link set "$p-a" netns "$p-fw" name veth-a
    ip link set "$p-b" netns "$p-fw" name veth-b
    for ns in client server fw; do ip -n "$p-$ns" link set lo up; done
    ip -n "$p-client" link set cli0 address 02:00:00:00:0c:01 up
    ip -n "$p-server" link set srv0 address 02:00:00:00:05:01 up
    ip -n "$p-fw" link set veth-a up
    ip -n "$p-fw" link set veth-b up
    # The wire side has no addresses; keep its own IPv6 quiet.
    ip netns exec "$p-fw" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 || true
    ip netns exec "$p-fw" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 || true
    if [ "${TOPO_IPV6:-0}" = 0 ]; then
        for ns in client server; do
            ip netns exec "$p-$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 || true
            ip netns exec "$p-$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 || true
        done
    fi
    for a in ${caddrs//,/ }; do ip -n "$p-client" addr add "$a" dev cli0 nodad 2>/dev/null || ip -n "$p-client" addr add "$a" dev cli0; done
    for a in ${saddrs//,/ }; do ip -n "$p-server" addr add "$a" dev srv0 nodad 2>/dev/null || ip -n "$p-server" addr add "$a" dev srv0; done
    if [ "${TOPO_IPV6:-0}" = 0 ]; then
        ip netns exec "$p-client" sysctl -qw net.ipv6.conf.cli0.disable_ipv6=1 || true
        ip netns exec "$p-server" sysctl -qw net.ipv6.conf.srv0.disable_ipv6=1 || true
    fi
    ip netns exec "$p-fw" sysctl -qw net.ipv6.conf.veth-a.disable_ipv6=1 || true
    ip netns exec "$p-fw" sysctl -qw net.ipv6.conf.veth-b.disable_ipv6=1 || true
    topo_offloads_off "$p-client" cli0
    topo_offloads_off "$p-server" srv0
    topo_offloads_off "$p-fw" veth-a
    topo_offloads_off "$p-fw" veth-b
}

topo_down() {
    local p=$1 ns i
    for ns in client server fw; do
        ip netns pids "$p-$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
    done
    # Let them exit (bulkheadd prints its final counters), at most 10 s, then force.
    for i in $(seq 1 100); do
        [ -z "$(for ns in client server fw; do ip netns pids "$p-$ns" 2>/dev/null; done)" ] && break
        [ "$i" = 100 ] && for ns in client server fw; do ip netns pids "$p-$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null; done
        sleep 0.1
    done
    for ns in client server fw; do
        ip netns del "$p-$ns" 2>/dev/null || true
    done
}

"""Send one UDP datagram of SIZE bytes and expect it echoed whole.

big_datagram.py ADDR PORT SIZE [--frag]

Without --frag the datagram leaves as one frame or not at all (path MTU
discovery on, IP_PMTUDISC_DO / IPV6_DONTFRAG: the kernel refuses to fragment
it); with --frag the kernel fragments it to the interface MTU (IPv4:
IP_PMTUDISC_DONT). Exits 0 if the same bytes come back within 2 s, 1 if not,
2 if the kernel refused to send.
"""
import socket
import sys

addr, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
frag = "--frag" in sys.argv
v6 = ":" in addr
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
if v6:
    # IPV6_DONTFRAG = 62; IPv6 has no router fragmentation, only the sender's.
    s.setsockopt(socket.IPPROTO_IPV6, 62, 0 if frag else 1)
else:
    # IP_MTU_DISCOVER = 10; IP_PMTUDISC_DONT = 0, IP_PMTUDISC_DO = 2 (linux/in.h).
    s.setsockopt(socket.IPPROTO_IP, 10, 0 if frag else 2)
s.settimeout(2)
payload = bytes((i * 7) & 0xFF for i in range(size))
try:
    s.sendto(payload, (addr, port))
except OSError as e:
    print(f"send refused: {e}", file=sys.stderr)
    sys.exit(2)
try:
    data, _ = s.recvfrom(65535)
except socket.timeout:
    print("no echo", file=sys.stderr)
    sys.exit(1)
if data != payload:
    print(f"echo differs: {len(data)} bytes back for {size}", file=sys.stderr)
    sys.exit(1)
print(f"echoed {len(data)} bytes")

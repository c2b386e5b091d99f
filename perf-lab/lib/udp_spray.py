"""Flood UDP datagrams from random source ports, as raw Ethernet frames, as
fast as one core of Python can: udp_spray.py IFACE SRC_IP DST_IP DPORT SRC_MAC DST_MAC SECONDS COUNT

Each datagram comes from a new source port, so every one is a new
connection to a firewall. Bounded by SECONDS and COUNT. Prints the number
of frames sent. For tests on namespaces the test created."""
import random
import socket
import struct
import sys
import time
import signal

signal.signal(signal.SIGINT, signal.SIG_DFL)

iface, src, dst, dport = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
smac, dmac = (bytes(int(x, 16) for x in m.split(":")) for m in sys.argv[5:7])
seconds, count = float(sys.argv[7]), int(sys.argv[8])


def csum(data):
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


ip_src, ip_dst = socket.inet_aton(src), socket.inet_aton(dst)
payload = b"spray-%08d" % 0
frames = []
rng = random.Random(7)
for i in range(4096):
    sport = rng.randrange(1024, 65536)
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i, 0, 64, 17, 0, ip_src, ip_dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    frames.append(dmac + smac + b"\x08\x00" + ip + udp)

s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
sent = 0
deadline = time.monotonic() + seconds
while sent < count:
    for f in frames:
        try:
            s.send(f)
            sent += 1
        except OSError:
            pass
    if time.monotonic() > deadline:
        break
print(sent)

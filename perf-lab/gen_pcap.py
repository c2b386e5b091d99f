"""Write a pcap of prepared traffic for perf-lab/ringbench.sh.

  gen_pcap.py OUT.pcap KIND FLOWS
    KIND: udp-allowed  FLOWS UDP flows web -> app udp/5353 (one packet each; replayed
                       forever, the first pass opens the connections, later passes hit them)
          tcp-denied   FLOWS TCP SYNs web -> db tcp/5432, which no rule allows
Addresses match perf-lab/bench-policy.yaml."""
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from rawframe import csum  # noqa: E402


def frame(src, dst, proto, l4):
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, proto, 0, bytes(src), bytes(dst))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    f = bytes.fromhex("020000000002020000000001") + b"\x08\x00" + ip + l4
    return f + b"\0" * max(0, 60 - len(f))


def main():
    out, kind, flows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(out, "wb") as w:
        w.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(flows):
            src = [10, 10, (i >> 8) & 0xFF, i & 0xFF]
            sport = 1024 + (i >> 16)
            if kind == "udp-allowed":
                dst = [10, 20, 0, 1 + (i % 200)]
                payload = b"x" * 18
                l4 = struct.pack("!HHHH", sport, 5353, 8 + len(payload), 0) + payload
                f = frame(src, dst, 17, l4)
            elif kind == "tcp-denied":
                dst = [10, 30, 0, 1 + (i % 200)]
                l4 = struct.pack("!HHIIBBHHH", sport, 5432, 1, 0, 5 << 4, 0x02, 65535, 0, 0)
                f = frame(src, dst, 6, l4)
            else:
                sys.exit(f"unknown kind {kind}")
            w.write(struct.pack("<IIII", 0, i, len(f), len(f)) + f)


main()

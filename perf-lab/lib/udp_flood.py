"""Send COUNT small UDP datagrams as fast as one socket can, for at most
SECONDS (default 10): udp_flood.py ADDR PORT COUNT [SECONDS].

Prints the number of datagrams the kernel accepted (sendto errors such as
ENOBUFS are counted as not sent). Bounded in count and time, for tests.
"""
import socket
import sys
import time

addr, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
limit = float(sys.argv[4]) if len(sys.argv) > 4 else 10.0
s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
payload = b"f" * 18
dest = (addr, port)
sent = 0
deadline = time.monotonic() + limit
for i in range(count):
    try:
        s.sendto(payload, dest)
        sent += 1
    except OSError:
        pass
    if i & 1023 == 0 and time.monotonic() > deadline:
        break
print(sent)

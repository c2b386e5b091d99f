"""Connect, send a message, expect it echoed: echo_client.py ADDR PORT MESSAGE [--udp]. Exit 0 on echo."""
import socket
import sys
import signal

# Die of SIGINT (not KeyboardInterrupt) so the calling shell sees the interrupt.
signal.signal(signal.SIGINT, signal.SIG_DFL)

addr, port, msg = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
udp = "--udp" in sys.argv
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
s.settimeout(2.0)
try:
    if udp:
        s.sendto(msg, (addr, port))
        data, _ = s.recvfrom(65535)
    else:
        s.connect((addr, port))
        s.sendall(msg)
        data = s.recv(65536)
except OSError as e:
    print(f"no connection: {e.strerror or e}")
    sys.exit(1)
if data != msg:
    print(f"unexpected reply {data!r}")
    sys.exit(1)
print(f"echoed {len(data)} bytes")

"""A long-lived TCP session driven from stdin: echo_session.py ADDR PORT.

Connects once, then for every line read on stdin sends it and waits up to
2 s for the echo, printing "ok" or "fail: <reason>" (flushed) per line.
Prints "connected" or "fail: ..." first. Used to show that a policy change
cuts a connection that is already open."""
import socket
import sys
import signal

# Die of SIGINT (not KeyboardInterrupt) so the calling shell sees the interrupt.
signal.signal(signal.SIGINT, signal.SIG_DFL)

addr, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.settimeout(2.0)
try:
    s.connect((addr, port))
except OSError as e:
    print(f"fail: {e}", flush=True)
    sys.exit(1)
print(f"connected {s.getsockname()[1]}", flush=True)
for line in sys.stdin:
    msg = line.strip().encode() or b"."
    try:
        s.sendall(msg)
        data = s.recv(65536)
        print("ok" if data == msg else f"fail: got {data!r}", flush=True)
    except OSError as e:
        print(f"fail: {e}", flush=True)

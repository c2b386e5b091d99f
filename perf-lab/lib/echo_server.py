"""A TCP echo server for demos and tests: echo_server.py ADDR PORT [--udp]."""
import socket
import sys
import threading
import signal

# Die of SIGINT (not KeyboardInterrupt) so the calling shell sees the interrupt.
signal.signal(signal.SIGINT, signal.SIG_DFL)

addr, port = sys.argv[1], int(sys.argv[2])
udp = "--udp" in sys.argv
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
if udp:
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((addr, port))
    while True:
        data, peer = s.recvfrom(65535)
        s.sendto(data, peer)
s = socket.socket(fam, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((addr, port))
s.listen(64)


def serve(c):
    with c:
        while True:
            data = c.recv(65536)
            if not data:
                return
            c.sendall(data)


while True:
    conn, _ = s.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()

#!/usr/bin/env python3
"""Send, or wait for, an ICMP "fragmentation needed" (type 3, code 4) about
a TCP connection, as a router with a smaller MTU on the path would send it.
Test helper for related ICMP errors.

  icmp_error.py send TO QUOTED_SRC QUOTED_DST QUOTED_SPORT QUOTED_DPORT MTU
      send the error to TO (the sender of the quoted segment), quoting a TCP
      segment QUOTED_SRC:SPORT -> QUOTED_DST:DPORT
  icmp_error.py recv SECONDS
      exit 0 with "got MTU" once such an error arrives, 1 after SECONDS
"""
import socket
import struct
import sys
import time


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def send(to, qsrc, qdst, sport, dport, mtu):
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0x1234, 0x4000, 64, 6, 0,
                     socket.inet_aton(qsrc), socket.inet_aton(qdst))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    # The first 8 bytes of the TCP header: ports and sequence number.
    quoted = ip + struct.pack("!HHI", sport, dport, 1)
    body = struct.pack("!BBHHH", 3, 4, 0, 0, mtu) + quoted
    body = body[:2] + struct.pack("!H", csum(body)) + body[4:]
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.sendto(body, (to, 0))


def recv(seconds):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.settimeout(0.2)
    print("ready", flush=True)
    end = time.time() + seconds
    while time.time() < end:
        try:
            pkt = s.recv(65535)
        except socket.timeout:
            continue
        ihl = (pkt[0] & 0x0F) * 4
        ty, code = pkt[ihl], pkt[ihl + 1]
        if ty == 3 and code == 4:
            mtu = struct.unpack("!H", pkt[ihl + 6:ihl + 8])[0]
            print(f"got {mtu}", flush=True)
            return 0
    return 1


if __name__ == "__main__":
    if sys.argv[1] == "send":
        send(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]))
    else:
        sys.exit(recv(float(sys.argv[2])))

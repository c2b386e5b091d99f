#!/usr/bin/env python3
"""Send one IPv6 router advertisement (router lifetime 1800 s) to all nodes
on an interface, as a rogue router would. Test helper for RA guard.

Usage: send_ra.py IFACE [COUNT]
"""
import socket
import struct
import sys
import time


def main():
    iface = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    # RFC 4861: on-link only, hop limit 255.
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
    index = socket.if_nametoindex(iface)
    # type 134, code 0, checksum (the kernel fills it), cur hop limit 64,
    # flags 0, router lifetime 1800, reachable time 0, retrans timer 0.
    ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)
    for _ in range(count):
        s.sendto(ra, ("ff02::1", 0, 0, index))
        time.sleep(0.2)


if __name__ == "__main__":
    main()

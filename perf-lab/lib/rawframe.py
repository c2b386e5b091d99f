"""Send or capture raw Ethernet frames (802.1Q-tagged if asked) for tests on
kernels without the 8021q module.

  rawframe.py send IFACE SRC_IP DST_IP SPORT DPORT FLAGS [--vlan N] [--src-mac M] [--dst-mac M]
      FLAGS: S (SYN), SA (SYN-ACK), A (ACK)
  rawframe.py recv IFACE PORT SECONDS
      prints "SRC DST SPORT DPORT FLAGS" for every IPv4 TCP frame with PORT as
      either port, captured for SECONDS; prints "ready" once listening."""
import socket
import struct
import sys
import time
import signal

# Die of SIGINT (not KeyboardInterrupt) so the calling shell sees the interrupt.
signal.signal(signal.SIGINT, signal.SIG_DFL)


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def mac(s):
    return bytes(int(x, 16) for x in s.split(":"))


def send(args):
    iface, src, dst, sport, dport, flags = args[:6]
    opts = dict(zip(args[6::2], args[7::2]))
    fl = {"S": 0x02, "SA": 0x12, "A": 0x10}[flags]
    srcb, dstb = socket.inet_aton(src), socket.inet_aton(dst)
    tcp = struct.pack("!HHIIBBHHH", int(sport), int(dport), 1000, 0 if fl == 0x02 else 1, 5 << 4, fl, 65535, 0, 0)
    pseudo = srcb + dstb + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, srcb, dstb)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    eth = mac(opts.get("--dst-mac", "02:00:00:00:05:01")) + mac(opts.get("--src-mac", "02:00:00:00:0c:01"))
    if "--vlan" in opts:
        eth += struct.pack("!HH", 0x8100, int(opts["--vlan"]))
    frame = eth + struct.pack("!H", 0x0800) + ip + tcp
    frame += b"\0" * max(0, 60 - len(frame))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    s.send(frame)


def recv(args):
    iface, port, seconds = args[0], int(args[1]), float(args[2])
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
    s.bind((iface, 0))
    s.settimeout(0.1)
    print("ready", flush=True)
    end = time.time() + seconds
    while time.time() < end:
        try:
            f = s.recv(65535)
        except socket.timeout:
            continue
        off = 12
        (et,) = struct.unpack("!H", f[off:off + 2])
        while et in (0x8100, 0x88A8):
            off += 4
            (et,) = struct.unpack("!H", f[off:off + 2])
        if et != 0x0800:
            continue
        ip = f[off + 2:]
        if len(ip) < 40 or ip[9] != 6:
            continue
        ihl = (ip[0] & 0xF) * 4
        sp, dp = struct.unpack("!HH", ip[ihl:ihl + 4])
        if port not in (sp, dp):
            continue
        flags = ip[ihl + 13]
        name = {0x02: "S", 0x12: "SA", 0x10: "A"}.get(flags, hex(flags))
        print(socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20]), sp, dp, name, flush=True)


if __name__ == "__main__":
    {"send": send, "recv": recv}[sys.argv[1]](sys.argv[2:])

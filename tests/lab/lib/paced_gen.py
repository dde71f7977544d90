#!/usr/bin/env python3
"""A paced generator of new UDP flows, run on a LAN host of the lab: `count` datagrams at `rate` per
second, evenly spaced (trafgen's --rate sends each second's packets in one burst), each from a new
(source address, source port), sent from an AF_PACKET socket to the balancer's MAC.

    paced_gen.py IFACE DST_MAC VIP PORT COUNT RATE NET [FIRST]

Sources are NET.(i % 256) and port 1024 + (i / 256) % 64511 for i = FIRST .. FIRST + COUNT - 1. Prints
{"event": "ready"} once the frames are built, then a JSON summary (sent, seconds, rate)."""
import json, socket, struct, sys, time
iface, dmac, vip, port, count, rate, net = sys.argv[1:8]
first = int(sys.argv[8]) if len(sys.argv) > 8 else 0
port, count, rate = int(port), int(count), float(rate)
net = bytes(int(x) for x in net.split(".")[:3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
eth = bytes.fromhex(dmac.replace(":", "")) + s.getsockname()[4] + b"\x08\x00"
def csum(b):
    x = sum(struct.unpack("!10H", b))
    x = (x >> 16) + (x & 0xFFFF)
    x += x >> 16
    return ~x & 0xFFFF
frames = []
for i in range(first, first + count):   # source x.x.x.(i % 256), port 1024 + (i / 256) % 64511
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 46, i & 0xFFFF, 0, 64, 17, 0, net + bytes([i & 255]),
                     socket.inet_aton(vip))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    frames.append(eth + ip + struct.pack("!HHHH", 1024 + (i >> 8) % 64511, port, 26, 0) + bytes(18))
print(json.dumps({"event": "ready"}), flush=True)
t0 = time.monotonic()
sent = 0
while sent < count:
    due = min(count, int((time.monotonic() - t0) * rate) + 1)
    while sent < due:
        s.send(frames[sent])
        sent += 1
    d = t0 + sent / rate - time.monotonic()
    if d > 0:
        time.sleep(d)
el = time.monotonic() - t0
print(json.dumps({"sent": sent, "seconds": round(el, 3), "rate": round(sent / el)}), flush=True)

"""Captured frames read fast, and raw frames sent from a lab namespace: the few header fields the
suites look at (Ethernet, VLAN tags, ARP, IPv4, IPv6 with its extension headers, TCP, UDP, ICMP and
ICMPv6), parsed with the standard library only (scapy is ten times slower on large captures).

    frames = read_frames(cap.path)              # after or while capturing (lib.capture.Capture)
    wait_frames(cap, lambda f: f.icmp_type == 3, 3)
    send_frames(lab, "router", [bytes(frame)])  # raw Ethernet frames from the host's eth0
"""

import base64
import collections
import json
import socket
import struct
import sys

from .capture import Capture
from .lab import wait_for

# IPv6 extension headers a frame may carry before its upper layer (RFC 8200 4.1).
IPV6_EXT = {0, 43, 60}
IPV6_FRAG = 44


def _mac(b):
    return ":".join(f"{x:02x}" for x in b)


class Frame:
    """The few header fields these tests look at, parsed from one captured Ethernet frame. For IPv6,
    `proto` is the upper-layer protocol after the extension headers, `frag` the fragment offset
    (in 8-byte units, with the More Fragments bit as for IPv4: nonzero means a fragment) and ip_id
    the fragment's identification."""

    __slots__ = ("raw", "dst", "src", "etype", "ip_src", "ip_dst", "proto", "ip_id", "frag", "ttl",
                 "sport", "dport", "flags", "icmp_type", "icmp_code", "arp", "l4")

    def __init__(self, raw):
        self.raw = raw
        self.dst = _mac(raw[0:6])
        self.src = _mac(raw[6:12])
        off = 12
        etype = struct.unpack("!H", raw[off:off + 2])[0] if len(raw) >= 14 else None
        while etype in (0x8100, 0x88A8) and len(raw) >= off + 6:
            off += 4
            etype = struct.unpack("!H", raw[off:off + 2])[0]
        self.etype = etype
        self.ip_src = self.ip_dst = self.proto = self.ip_id = self.frag = self.ttl = None
        self.sport = self.dport = self.flags = self.icmp_type = self.icmp_code = self.arp = None
        self.l4 = None
        ip = raw[off + 2:]
        if etype == 0x0800 and len(ip) >= 20:
            ihl = (ip[0] & 15) * 4
            self.ip_id, fragw = struct.unpack("!HH", ip[4:8])
            self.frag = fragw & 0x3FFF
            self.ttl, self.proto = ip[8], ip[9]
            self.ip_src, self.ip_dst = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
            if fragw & 0x1FFF:
                return
            self._l4(ip[ihl:], 1)
        elif etype == 0x86DD and len(ip) >= 40:
            self.ttl = ip[7]
            self.ip_src = socket.inet_ntop(socket.AF_INET6, ip[8:24])
            self.ip_dst = socket.inet_ntop(socket.AF_INET6, ip[24:40])
            nh, pos, later = ip[6], 40, False
            while len(ip) >= pos + 8 and nh in IPV6_EXT | {IPV6_FRAG}:
                if nh == IPV6_FRAG:
                    fragw = struct.unpack("!H", ip[pos + 2:pos + 4])[0]
                    self.frag = (fragw >> 3) | ((fragw & 1) << 13)
                    self.ip_id = struct.unpack("!I", ip[pos + 4:pos + 8])[0]
                    later = fragw >> 3 != 0
                    nh, pos = ip[pos], pos + 8
                else:
                    nh, pos = ip[pos], pos + (ip[pos + 1] + 1) * 8
            self.proto = nh
            if not later:
                self._l4(ip[pos:], 58)
        elif etype == 0x0806 and len(ip) >= 28:
            op = struct.unpack("!H", ip[6:8])[0]
            self.arp = {"op": op, "sha": _mac(ip[8:14]), "spa": socket.inet_ntoa(ip[14:18]),
                        "tpa": socket.inet_ntoa(ip[24:28])}

    def _l4(self, l4, icmp_proto):
        self.l4 = l4
        if self.proto in (6, 17) and len(l4) >= 4:
            self.sport, self.dport = struct.unpack("!HH", l4[:4])
            if self.proto == 6 and len(l4) >= 14:
                self.flags = l4[13]
        elif self.proto == icmp_proto and len(l4) >= 2:
            self.icmp_type, self.icmp_code = l4[0], l4[1]

    def __repr__(self):
        return (f"<{self.src}>{self.dst} {self.etype:#06x} {self.ip_src}:{self.sport}>{self.ip_dst}:{self.dport}"
                f" p{self.proto} f{self.flags} icmp{self.icmp_type}/{self.icmp_code} {self.arp or ''}>")


def read_frames(path):
    """Every frame of a pcap file (Ethernet link type) as a Frame; fast, standard library only."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    if len(data) < 24:
        return []
    end = "<" if struct.unpack("<I", data[:4])[0] in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    assert struct.unpack(end + "I", data[20:24])[0] == 1, "not an Ethernet capture"
    out, off = [], 24
    while off + 16 <= len(data):
        incl = struct.unpack(end + "I", data[off + 8:off + 12])[0]
        off += 16
        if off + incl > len(data):
            break  # tcpdump is still writing this one
        out.append(Frame(data[off:off + incl]))
        off += incl
    return out


def wait_frames(cap, pred, count, timeout=3, what="frames"):
    """While `cap` runs, wait until at least `count` of its frames satisfy pred; returns them."""
    def enough():
        got = [f for f in read_frames(cap.path) if pred(f)]
        return got if len(got) >= count else None

    return wait_for(enough, timeout, what=f"{count} {what} on {cap.host}/{cap.iface}")


SERVED = range(20000, 20100)     # source ports of syn_burst's SYNs to port 80
UNSERVED = range(21000, 21100)   # ...and of those to port 8081, which no service has


def syn_burst(src, dst):
    """A SYN from src to dst from each port of SERVED to port 80, and of UNSERVED to 8081: raw IPv4
    or IPv6 packets (the family of dst) for send_frames(..., l3_dst=dst)."""
    from scapy import all as sc
    ip = sc.IPv6 if ":" in dst else sc.IP
    return [bytes(ip(src=src, dst=dst) / sc.TCP(sport=s, dport=80 if s in SERVED else 8081, flags="S", seq=s * 1000))
            for s in list(SERVED) + list(UNSERVED)]


def is_syn(f):
    return f.flags is not None and bool(f.flags & 0x02)


def assert_syns_once(from_lb, at_backends, be_mac, src):
    """Every SYN of syn_burst (from src) to port 80 left the balancer exactly once and arrived
    exactly once, at the backend it was sent to; none to port 8081 did either. from_lb: the frames
    the balancer sent; at_backends: {backend: the frames it received}; be_mac: {MAC: backend}."""
    once = {s: 1 for s in SERVED}
    out = collections.Counter(f.sport for f in from_lb if f.dport == 80 and is_syn(f) and f.ip_src == src)
    assert {s: out.get(s, 0) for s in SERVED} == once
    assert not any(f.dport == 8081 for f in from_lb)
    where_sent = {f.sport: be_mac[f.dst] for f in from_lb if f.dport == 80 and f.sport in SERVED}
    arrived = collections.Counter()
    for b, frames in at_backends.items():
        for f in frames:
            assert f.dport != 8081, f
            if f.ip_src == src and f.dport == 80 and f.sport in SERVED:
                arrived[f.sport] += 1
                assert where_sent[f.sport] == b, (f.sport, where_sent[f.sport], b)
    assert {s: arrived.get(s, 0) for s in SERVED} == once


def arrivals(lab, hosts, bpf, send, pred, owner, count, what="frames"):
    """Capture `bpf` on the bridge port of each of `hosts` (what each receives), call send(), wait
    until `count` frames matching pred reached owner; returns {host: frames matching pred}."""
    caps = {h: Capture(lab, "br", h, bpf) for h in hosts}
    try:
        for cap in caps.values():
            cap.start()
        send()
        wait_frames(caps[owner], pred, count, what=f"{what} at {owner}")
    finally:
        for cap in caps.values():
            cap.stop()
    return {h: len([f for f in read_frames(cap.path) if pred(f)]) for h, cap in caps.items()}


SEND_FRAMES = r"""
import base64, json, socket, sys, time
a = json.load(sys.stdin)
frames = [base64.b64decode(f) for f in a["frames"]]
if a["mode"] == "l2":
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a["iface"], 0))
    send = s.send
elif ":" in a["dst"]:
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
    send = lambda f: s.sendto(f, (a["dst"], 0))
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    send = lambda f: s.sendto(f, (a["dst"], 0))
sent = errors = n = 0
t0 = time.monotonic()
for _ in range(a["repeat"]):
    for f in frames:
        try:
            send(f)
            sent += 1
        except OSError:
            errors += 1
        n += 1
        if a["rate"] and n % 100 == 0:
            ahead = n / a["rate"] - (time.monotonic() - t0)  # pacing to a bounded rate
            if ahead > 0:
                time.sleep(ahead)
print(json.dumps({"sent": sent, "errors": errors, "elapsed": round(time.monotonic() - t0, 3)}))
"""


def send_frames(lab, host, frames, repeat=1, rate=0, l3_dst=None, timeout=20):
    """Send raw frames (bytes) from host's eth0, or raw IP packets (IPv4 or IPv6, whole, header
    included) toward l3_dst."""
    job = {"mode": "l3" if l3_dst else "l2", "iface": "eth0", "dst": l3_dst, "repeat": repeat, "rate": rate,
           "frames": [base64.b64encode(bytes(f)).decode() for f in frames]}
    r = lab.run(host, [sys.executable, "-c", SEND_FRAMES], input=json.dumps(job), timeout=timeout)
    res = json.loads(r.stdout)
    assert res["errors"] == 0, res
    return res

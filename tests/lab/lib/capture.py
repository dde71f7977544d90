"""Packet capture in a lab namespace (tcpdump to a pcap, read back with scapy) and ARP probing.

    with Capture(lab, "router", "eth0", "arp or udp port 9000") as cap:
        ...traffic...
    pkts = cap.packets()              # scapy PacketList, after the capture stopped

    arp_probe(lab, "router", "192.0.2.100")  -> ["02:..", ...], one MAC per reply
    nd_probe(lab, "router", "2001:db8::100") -> the same for IPv6: one Neighbour Solicitation,
                                                the target MAC of each Neighbour Advertisement

Run as a script inside a namespace, `capture.py arp-probe IFACE TARGET TIMEOUT [SRC_IP]` sends one
ARP request from a raw packet socket and prints the replies as JSON; `capture.py nd-probe IFACE
TARGET TIMEOUT SRC_IP` does the same with a Neighbour Solicitation. Standard library only here:
scapy takes 0.4 s to import, too slow for a probe that tests call often.
"""

import json
import os
import signal
import socket
import struct
import sys
import time

try:
    from .inet import checksum
except ImportError:  # run as a script: this directory is sys.path[0]
    from inet import checksum

HERE = os.path.dirname(os.path.abspath(__file__))
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ICMPV6, ND_NS, ND_NA = 58, 135, 136


# ----------------------------------------------------------------------------- script side

def _mac(b):
    return ":".join(f"{x:02x}" for x in b)


def arp_probe_raw(iface, target, timeout, src_ip=None):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    try:
        s.bind((iface, ETH_P_ARP))
        own_mac = s.getsockname()[4]
        if src_ip is None:
            src_ip = "0.0.0.0"
        tip = socket.inet_aton(target)
        frame = (b"\xff" * 6 + own_mac + struct.pack("!H", ETH_P_ARP)
                 + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
                 + own_mac + socket.inet_aton(src_ip) + b"\0" * 6 + tip)
        s.send(frame.ljust(60, b"\0"))

        def reply(buf):
            if len(buf) >= 42 and struct.unpack("!H", buf[20:22])[0] == 2 and buf[28:32] == tip:
                return {"mac": _mac(buf[22:28]), "eth_src": _mac(buf[6:12])}
            return None

        return _collect(s, timeout, reply)
    finally:
        s.close()


def _collect(s, timeout, parse):
    """parse(frame) of every frame socket s receives for `timeout` seconds, but the None ones."""
    answers = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return answers
        s.settimeout(left)
        try:
            got = parse(s.recv(2048))
        except socket.timeout:
            return answers
        if got is not None:
            answers.append(got)


def icmp6_frame(src_mac, dst_mac, src, dst, icmp, hlim=255):
    """An Ethernet frame carrying one ICMPv6 message (bytes, checksum field zero) from src to dst."""
    s, d = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
    pseudo = s + d + struct.pack("!I3xB", len(icmp), ICMPV6)
    icmp = icmp[:2] + struct.pack("!H", checksum(pseudo + icmp)) + icmp[4:]
    ip6 = struct.pack("!IHBB", 6 << 28, len(icmp), ICMPV6, hlim) + s + d
    return dst_mac + src_mac + struct.pack("!H", ETH_P_IPV6) + ip6 + icmp


def solicited_node(target):
    """(solicited-node multicast address, its MAC) of an IPv6 address (RFC 4291 2.7.1)."""
    t = socket.inet_pton(socket.AF_INET6, target)
    group = socket.inet_ntop(socket.AF_INET6, bytes.fromhex("ff02" + "00" * 9 + "01ff") + t[13:])
    return group, b"\x33\x33\xff" + t[13:]


def parse_na(buf):
    """The fields of a Neighbour Advertisement frame (None for anything else): target, flags,
    target link-layer address option, Ethernet and IPv6 source and destination."""
    if len(buf) < 14 + 40 + 24 or buf[12:14] != struct.pack("!H", ETH_P_IPV6) or buf[20] != ICMPV6:
        return None
    icmp = buf[54:]
    if icmp[0] != ND_NA:
        return None
    flags = icmp[4]
    tlla = None
    off = 24
    while off + 8 <= len(icmp):
        typ, ln = icmp[off], icmp[off + 1] * 8
        if ln == 0:
            break
        if typ == 2 and ln >= 8:
            tlla = _mac(icmp[off + 2:off + 8])
        off += ln
    return {"target": socket.inet_ntop(socket.AF_INET6, icmp[8:24]), "mac": tlla, "eth_src": _mac(buf[6:12]),
            "eth_dst": _mac(buf[0:6]), "src": socket.inet_ntop(socket.AF_INET6, buf[22:38]),
            "dst": socket.inet_ntop(socket.AF_INET6, buf[38:54]), "hlim": buf[21],
            "router": bool(flags & 0x80), "solicited": bool(flags & 0x40), "override": bool(flags & 0x20)}


def nd_probe_raw(iface, target, timeout, src_ip):
    """One Neighbour Solicitation for target, multicast to its solicited-node group, with the
    source link-layer address option; the Neighbour Advertisements for target that come back."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IPV6))
    try:
        s.bind((iface, ETH_P_IPV6))
        own_mac = s.getsockname()[4]
        group, group_mac = solicited_node(target)
        ns = (struct.pack("!BBHI", ND_NS, 0, 0, 0) + socket.inet_pton(socket.AF_INET6, target)
              + struct.pack("!BB", 1, 1) + own_mac)
        s.send(icmp6_frame(own_mac, group_mac, src_ip, group, ns))
        want = socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, target))

        def advert(buf):
            na = parse_na(buf)
            return na if na and na["target"] == want and na["eth_src"] != _mac(own_mac) else None

        return _collect(s, timeout, advert)
    finally:
        s.close()


def main(argv):
    if len(argv) >= 4 and argv[0] == "arp-probe":
        ans = arp_probe_raw(argv[1], argv[2], float(argv[3]), argv[4] if len(argv) > 4 else None)
        print(json.dumps(ans))
        return 0
    if len(argv) >= 5 and argv[0] == "nd-probe":
        print(json.dumps(nd_probe_raw(argv[1], argv[2], float(argv[3]), argv[4])))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


# ----------------------------------------------------------------------------- harness side

def arp_probe(lab, host, ip, iface="eth0", timeout=0.5, src_ip=None, detail=False):
    """Send one ARP request for `ip` from `host` and collect the replies for `timeout` seconds.

    Returns the sender MACs of the replies (a list: two answers = two entries). The request's
    sender IP is the host's own address unless src_ip is given. detail=True returns dicts with
    the ARP sender MAC ("mac") and the Ethernet source ("eth_src")."""
    src = src_ip or lab.addr(host)
    out = lab.run(host, [sys.executable, os.path.join(HERE, "capture.py"), "arp-probe", iface, ip,
                         str(timeout), src], timeout=timeout + 10).stdout
    ans = json.loads(out)
    return ans if detail else [a["mac"] for a in ans]


def nd_probe(lab, host, ip, iface="eth0", timeout=0.5, src_ip=None, detail=False):
    """Send one Neighbour Solicitation for the IPv6 address `ip` from `host` (source: its own
    IPv6 address unless src_ip) and collect the Neighbour Advertisements for `timeout` seconds.

    Returns the target link-layer addresses of the answers (one entry per answer), or with
    detail=True dicts: "mac" (the option), "eth_src", "router", "solicited", "override", "src",
    "dst", "hlim"."""
    src = src_ip or lab.addr6(host)
    out = lab.run(host, [sys.executable, os.path.join(HERE, "capture.py"), "nd-probe", iface, ip,
                         str(timeout), src], timeout=timeout + 10).stdout
    ans = json.loads(out)
    return ans if detail else [a["mac"] for a in ans]


def assert_nd_owner(lab, ip, owner, probes=3, host="router"):
    """Each of `probes` Neighbour Solicitations for ip from host is answered exactly once, by
    owner: a solicited NA with the Override flag and hop limit 255 carrying owner's MAC, from
    owner's MAC. An unsolicited NA for ip meanwhile must be owner's too (the second burst a node
    sends garp_repeat after taking over may fall into the probe)."""
    mac = lab.mac(owner)
    for _ in range(probes):
        ans = nd_probe(lab, host, ip, timeout=0.2, detail=True)
        got = [(a["eth_src"], a["mac"], a["solicited"], a["override"], a["hlim"]) for a in ans if a["solicited"]]
        assert got == [(mac, mac, True, True, 255)], f"NS for {ip} answered by {ans}, want only {owner} ({mac})"
        assert all((a["eth_src"], a["mac"]) == (mac, mac) for a in ans), f"NA for {ip} not from {owner}: {ans}"


def unsolicited_na_frame(mac, target):
    """An unsolicited Neighbour Advertisement (Override set, to all nodes) announcing target at
    mac, as a node taking over an address sends it (RFC 4861 7.2.6); bytes of an Ethernet frame."""
    m = bytes.fromhex(mac.replace(":", ""))
    na = (struct.pack("!BBHI", ND_NA, 0, 0, 0x20 << 24) + socket.inet_pton(socket.AF_INET6, target)
          + struct.pack("!BB", 2, 1) + m)
    return icmp6_frame(m, b"\x33\x33\x00\x00\x00\x01", target, "ff02::1", na)


def neigh_probe(lab, host, ip, **kw):
    """arp_probe for an IPv4 address, nd_probe for an IPv6 one."""
    return (nd_probe if ":" in ip else arp_probe)(lab, host, ip, **kw)


class Capture:
    """tcpdump on one interface of one namespace, writing a pcap in the lab's tmp dir."""

    _seq = 0

    def __init__(self, lab, host, iface="eth0", filter="", snaplen=0, promisc=False, name=None):
        Capture._seq += 1
        self.lab = lab
        self.host = host
        self.iface = iface
        self.filter = filter
        self.name = name or f"{host}-{iface}-{Capture._seq}"
        self.path = os.path.join(lab.tmpdir, "pcap", f"{self.name}.pcap")
        self.log = os.path.join(lab.logdir, f"tcpdump-{self.name}.log")
        self.snaplen = snaplen
        self.promisc = promisc
        self.proc = None

    def start(self, timeout=5):
        from .lab import LabError, wait_for
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        # --immediate-mode: no block timeout in the ring; -U: write each packet at once;
        # -Z root: keep the right to write into our tmp dir.
        cmd = ["tcpdump", "-n", "--immediate-mode", "-U", "-Z", "root", "-i", self.iface, "-w", self.path,
               "-s", str(self.snaplen)]
        if not self.promisc:
            cmd.append("-p")  # promiscuous mode would change what the hosts' packet sockets see
        if self.filter:
            cmd.append(self.filter)
        with open(self.log, "ab") as err:
            self.proc = self.lab.popen(self.host, cmd, stdout=err, stderr=err)

        def ready():
            if self.proc.poll() is not None:
                raise LabError(f"tcpdump on {self.host}/{self.iface} exited: {self._log_text()}")
            return "listening on" in self._log_text()

        wait_for(ready, timeout, interval=0.02, what=f"tcpdump on {self.host}/{self.iface}", ignore=())
        return self

    def stop(self, timeout=5, settle=0.06):
        """Stop tcpdump and return the pcap path. Packets still on their way to tcpdump would
        be lost on SIGINT, so first wait (at most 1 s) until the file has not grown for `settle`."""
        if self.proc is not None and self.proc.poll() is None:
            if settle:
                self._settle(settle)
            self.lab.stop(self.proc, sig=signal.SIGINT, timeout=timeout)
        return self.path

    def _size(self):
        try:
            return os.path.getsize(self.path)
        except OSError:
            return 0

    def _settle(self, quiet, limit=1.0):
        end = time.monotonic() + limit
        size, since = self._size(), time.monotonic()
        while time.monotonic() < end:
            time.sleep(0.01)
            now = self._size()
            if now != size:
                size, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return

    def wait_packets(self, pred=None, count=1, timeout=5):
        """While capturing, wait until at least `count` captured packets satisfy pred(pkt)."""
        from scapy.all import rdpcap
        from .lab import wait_for

        def enough():
            if self._size() <= 24:
                return None
            pkts = [p for p in rdpcap(self.path) if pred is None or pred(p)]
            return pkts if len(pkts) >= count else None

        return wait_for(enough, timeout, interval=0.05,
                        what=f"{count} matching packets on {self.host}/{self.iface}")

    def packets(self):
        """The captured packets as a scapy PacketList (stops the capture first)."""
        self.stop()
        from scapy.all import rdpcap  # scapy.all registers the layers rdpcap dissects with
        if not os.path.exists(self.path) or os.path.getsize(self.path) == 0:
            return []
        return rdpcap(self.path)

    def _log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The ECMP lab (issue 14): the router runs BIRD with a BGP session and BFD to every balancer node,
each node runs its own BIRD, which learns the VIP route lbd keeps in kernel table 100 and
announces it with next hop self; the router installs one multipath VIP/32 with a next hop per
announcing node and hashes flows over them on L4 (fib_multipath_hash_policy = 1).

    client --- router (BIRD: bgp lb1..lbN passive, bfd, kernel "merge paths") --- br0
                 ^ BGP + BFD 10 ms x 3                                           |
                 +------------------------ lbK (BIRD: kernel table 100 learn -> bgp; lbd)

    TOPOLOGY = ecmp.topology(nodes=4)        # module's lab: lb1..lb4, backends as usual
    e = Ecmp(lab, nodes=("lb1", "lb2", "lb3")).start()    # BIRDs up, sessions Established, BFD Up
    e.announce("lb1")                        # simulation: a tun dsrlb0 and VIP/32 in table 100
    e.wait_nexthops({"192.0.2.11"})          # the router routes the VIP to lb1
    ms = e.timed_change(lambda: e.crash("lb1"), set())   # ms until the router's route agrees
    e.restore("lb1"); e.add_node("lb4"); e.stop()

In a lab with IPv6 (topology(ipv6=True)) every BIRD also carries the VIP6 routes: a second kernel
protocol per node (announce6, table 100 again), an ipv6 BGP session between the IPv6 LAN addresses
(upstream6 on the node, NODE_6 on the router, with BFD), and the router's fib6 merges them into one
multipath VIP6/128 hashed on L4 (net.ipv6.fib_multipath_hash_policy = 1); router_nexthops(family=6),
wait_nexthops(..., family=6) and timed_change(..., family=6) look at that route. The simulated
announcement (announce, withdraw, readd) is IPv4 only.

Every process goes through lab.popen (killed by the lab's cleanup); BIRD's files live under the
lab's run dir (lib/bird.py); only the lab's namespaces are touched.
"""

import contextlib
import datetime
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

from . import lab as lablib
from .bird import Bird
from .lab import ROUTER_LAN, LabError, WaitTimeout, wait_for

ROUTER_AS = 65000
NODE_AS = 65001
ANNOUNCE_TABLE = 100
ANNOUNCE_DEVICE = "dsrlb0"
# Lab timers: BFD 10 ms x 3 (30 ms detection); BGP only a backstop to BFD, but quick to come up.
TIMERS = {"bfd_interval_ms": 10, "bfd_multiplier": 3, "bfd_idle_ms": 100, "hold": 3, "keepalive": 1,
          "connect_delay": 1, "connect_retry": 1, "error_wait": (1, 1), "kernel_scan": 60}


def env_timers():
    """DSRLB_ECMP_BFD=INTERVAL_MSxMULTIPLIER (e.g. 20x5) for a machine too busy for 10 ms x 3."""
    v = os.environ.get("DSRLB_ECMP_BFD")
    if not v:
        return {}
    m = re.fullmatch(r"(\d+)\s*x\s*(\d+)", v)
    if not m:
        raise LabError(f"DSRLB_ECMP_BFD={v!r}: want INTERVAL_MSxMULTIPLIER, e.g. 10x3")
    return {"bfd_interval_ms": int(m.group(1)), "bfd_multiplier": int(m.group(2))}


# Every BIRD runs SCHED_FIFO at this priority (below vrrpd's 10, above the timing probes' 1-2).
BIRD_RT_PRIORITY = 5


def topology(nodes=3, **kw):
    """lab.topology() with `nodes` balancer nodes (2..4 fit the lab's addresses .11-.14)."""
    if not 2 <= nodes <= 4:
        raise LabError(f"the ECMP lab has 2 to 4 nodes, not {nodes}")
    return lablib.topology(lbs=nodes, **kw)


def _filter(name, vips, plen):
    nets = ", ".join(f"{v}/{plen}" for v in vips)
    return f"filter {name} {{\n\tif net ~ [ {nets} ] then accept;\n\treject;\n}}\n\n"


def _head(what, router_id, lab):
    """Logging, router id, the device protocol, the VIP filters (vips6 in a lab with IPv6 VIPs):
    the start of every lab config."""
    return (f"# ECMP lab {what} (tests/lab/lib/ecmp.py)\nlog stderr all;\n"
            f"debug protocols {{ states, events }};\nrouter id {router_id};\n\n"
            f"protocol device {{\n}}\n\n" + _filter("vips", lab.vips, 32)
            + (_filter("vips6", lab.vips6, 128) if lab.vips6 else ""))


def _bfd_block(t):
    return (f"protocol bfd {{\n"
            f"\tinterface \"eth0\" {{\n"
            f"\t\tmin rx interval {t['bfd_interval_ms']} ms;\n"
            f"\t\tmin tx interval {t['bfd_interval_ms']} ms;\n"
            f"\t\tidle tx interval {t['bfd_idle_ms']} ms;\n"
            f"\t\tmultiplier {t['bfd_multiplier']};\n"
            f"\t}};\n}}\n")


def _bgp_timers(t):
    return (f"\thold time {t['hold']};\n\tstartup hold time {t['hold']};\n"
            f"\tkeepalive time {t['keepalive']};\n"
            f"\tconnect delay time {t['connect_delay']};\n\tconnect retry time {t['connect_retry']};\n"
            f"\terror wait time {t['error_wait'][0]}, {t['error_wait'][1]};\n"
            f"\tgraceful restart off;\n\tbfd on;\n")


def router_config(lab, nodes, timers=None):
    """The router's BIRD: a passive eBGP session with BFD to each node, only the VIPs accepted,
    merged into one multipath route in the main table. Its other routes are the kernel's and
    stay untouched (no `learn`, and only VIPs are exported). With IPv6 VIPs the same again for
    ipv6 (docs/deploy-ecmp.md, IPv6 VIPs): a second kernel protocol, and a session NODE_6 to each
    node's IPv6 LAN address, so that the next hop a node announces is that address."""
    t = dict(TIMERS, **(timers or {}))
    text = _head("router", ROUTER_LAN, lab) + _bfd_block(t)
    families = [("", "ipv4", "vips", ROUTER_LAN, lab.addr)]
    if lab.vips6:
        families.append(("6", "ipv6", "vips6", lab.addr6(lab.router), lab.addr6))
    for sfx, chan, filt, local, addr in families:
        text += (f"\nprotocol kernel fib{sfx} {{\n\t{chan} {{ import none; export filter {filt}; }};\n"
                 "\tmerge paths yes;\n}\n\n"
                 f"template bgp node{sfx} {{\n\tlocal {local} as {ROUTER_AS};\n\tpassive on;\n"
                 + _bgp_timers(t) +
                 f"\t{chan} {{ import filter {filt}; export none; }};\n}}\n")
        for n in nodes:
            name = f"{n}_6" if sfx else n
            text += f"\nprotocol bgp {name} from node{sfx} {{\n\tneighbor {addr(n)} as {NODE_AS};\n}}\n"
    return text


def node_config(lab, node, timers=None, table=ANNOUNCE_TABLE):
    """A node's BIRD: learn the VIP routes lbd keeps in kernel table `table` (any protocol but
    kernel and bird is alien to BIRD, and `learn` takes alien routes, through netlink as they
    change) and announce them to the router with next hop self, under BFD. With IPv6 VIPs a
    kernel protocol per family (BIRD's has one channel) and an ipv6 session between the IPv6
    LAN addresses."""
    t = dict(TIMERS, **(timers or {}))
    addr = lab.addr(node)
    text = _head(f"node {node}", addr, lab) + _bfd_block(t)
    families = [("", "ipv4", "vips", addr, ROUTER_LAN)]
    if lab.vips6:
        families.append(("6", "ipv6", "vips6", lab.addr6(node), lab.addr6(lab.router)))
    for sfx, chan, filt, local, router in families:
        text += (f"\nprotocol kernel announce{sfx} {{\n\tkernel table {table};\n\tlearn;\n"
                 f"\tscan time {t['kernel_scan']};\n\t{chan} {{ import filter {filt}; export none; }};\n}}\n\n"
                 f"protocol bgp upstream{sfx} {{\n\tlocal {local} as {NODE_AS};\n"
                 f"\tneighbor {router} as {ROUTER_AS};\n" + _bgp_timers(t) +
                 f"\t{chan} {{ import none; export filter {filt}; next hop self; }};\n}}\n")
    return text


# ----------------------------------------------------------------------------- the router's route

_TS_RE = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)\]\s?(.*)$")


def parse_route_nexthops(routes, prefix):
    """`ip -j route show` list -> the gateways of the route to prefix (set; empty when none)."""
    out = set()
    for r in routes:
        if r.get("dst") not in (prefix, prefix + "/32", prefix + "/128"):
            continue
        if r.get("gateway"):
            out.add(r["gateway"])
        for nh in r.get("nexthops", []):
            if nh.get("gateway"):
                out.add(nh["gateway"])
    return out


def _popen_piped(lab, host, cmd, log):
    """lab.popen with stdout to a pipe we read and stderr to logs/LOG.log."""
    with open(lab.log_path(log), "ab") as err:
        return lab.popen(host, cmd, stdout=subprocess.PIPE, stderr=err)


class RouteWatch:
    """`ip -ts monitor route` in a namespace: the time (wall clock, from ip's own timestamp of each
    netlink message) and next-hop set of every change of the main-table route to `prefix`."""

    def __init__(self, lab, host, prefix):
        self.lab = lab
        self.host = host
        self.prefix = prefix
        self.events = []    # (unix time, frozenset of gateways), in order
        self.seen = []      # first lines of every message, for the sentinel
        self._cond = threading.Condition()
        self.proc = _popen_piped(lab, host, ["ip", "-ts", "monitor", "route"], f"{host}-routewatch")
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        self._sync()

    def _sync(self, timeout=5):
        """Return once the monitor is subscribed: it reports a sentinel route we add and remove."""
        sentinel = "203.0.113.254"

        def seen():
            self.lab.run(self.host, f"ip route replace blackhole {sentinel}/32 table 250; "
                                    f"ip route del blackhole {sentinel}/32 table 250", timeout=5)
            with self._cond:
                self._cond.wait_for(lambda: any(sentinel in s for s in self.seen), 0.2)
                return any(sentinel in s for s in self.seen)

        wait_for(seen, timeout, 0.0, f"ip monitor in {self.host} subscribed")

    def _read(self):
        fd = self.proc.stdout.fileno()
        buf = ""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk.decode(errors="replace")
            # ip flushes after each message: a read that ends with a newline ends messages.
            if not buf.endswith("\n"):
                continue
            msgs, cur = [], None
            for line in buf.splitlines():
                m = _TS_RE.match(line)
                if m:
                    cur = [m.group(1), m.group(2)]
                    msgs.append(cur)
                elif cur is not None:
                    cur.append(line)
            buf = ""
            with self._cond:
                for msg in msgs:
                    self._message(msg)
                self._cond.notify_all()

    def _message(self, msg):
        ts = datetime.datetime.strptime(msg[0], "%Y-%m-%dT%H:%M:%S.%f").timestamp()
        first = msg[1]
        self.seen.append(first)
        words = first.split()
        deleted = bool(words) and words[0] == "Deleted"
        if deleted:
            words = words[1:]
        if not words or words[0] not in (self.prefix, self.prefix + "/32", self.prefix + "/128") \
                or "table" in words:
            return
        gws = set() if deleted else set(re.findall(r"\bvia (?:inet6? )?(\S+)", " ".join(msg[1:])))
        self.events.append((ts, frozenset(gws)))

    def wait(self, pred, since, timeout=5):
        """The first change at or after `since` (unix time) whose next-hop set satisfies pred:
        (time, set). Raises WaitTimeout."""
        def found():
            return next(((t, set(g)) for t, g in self.events if t >= since and pred(g)), None)

        with self._cond:
            ev = self._cond.wait_for(found, timeout)
        if not ev:
            raise WaitTimeout(f"no change of the route to {self.prefix} in {self.host} matching "
                              f"{pred!r} within {timeout}s; changes since: "
                              f"{[(round(t - since, 4), sorted(g)) for t, g in self.events if t >= since]}")
        return ev

    def stop(self):
        self.lab.stop(self.proc, timeout=2)


# ----------------------------------------------------------------------------- simulated lbd

# Holds a non-persistent tun device like lbd's (it vanishes with this process, routes and all)
# and keeps VIP/32 routes in the announce table while it runs. argv: json {dev, table, vips, proto}.
TUN_HOLDER = r"""
import fcntl, json, os, signal, struct, subprocess, sys
a = json.loads(sys.argv[1])
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454ca, struct.pack("16sH", a["dev"].encode(), 0x0001 | 0x1000))  # TUNSETIFF, IFF_TUN|IFF_NO_PI
subprocess.run(["ip", "link", "set", a["dev"], "up"], check=True)
for v in a["vips"]:
    subprocess.run(["ip", "route", "replace", v + "/32", "dev", a["dev"], "table", str(a["table"]),
                    "proto", a["proto"]], check=True)
print("ready", flush=True)
signal.pause()
"""

# Flows from the client: one UDP datagram, or one TCP SYN, from each (src, sport, proto, dport).
SEND_FLOWS = r"""
import json, socket, sys, time
a = json.loads(sys.argv[1])
socks, errors = [], 0
for src, sport, proto, dport in a["flows"]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((src, sport))
        if proto == "udp":
            s.sendto(b"ecmp-lab flow", (a["dst"], dport))
        else:
            s.setblocking(False)
            s.connect_ex((a["dst"], dport))
    except OSError:
        errors += 1
    socks.append(s)
time.sleep(a["linger"])
for s in socks:
    s.close()
print(json.dumps({"sent": len(socks) - errors, "errors": errors}))
"""

NFT_COUNTERS = """table netdev ecmplab {{
\tset flows {{ type ipv4_addr . inet_proto . inet_service; flags dynamic; counter; size 65536; }}
\tset flows6 {{ type ipv6_addr . inet_proto . inet_service; flags dynamic; counter; size 65536; }}
\tchain in {{
\t\ttype filter hook ingress device "eth0" priority -500;
{rules}\t}}
}}
"""
NFT_VIP_RULES = """\t\t{ip} daddr {{ {vips} }} counter
\t\t{ip} daddr {{ {vips} }} meta l4proto {{ tcp, udp }} update @{set} {{ {ip} saddr . meta l4proto . th sport }}
"""


def flows_from(lab, count, proto="udp", dport=9000, base_port=20000, host="client"):
    """`count` distinct flows [src, sport, proto, dport] over every address of the client."""
    addrs = lab.addrs(host)
    return [[addrs[i % len(addrs)], base_port + i // len(addrs), proto, dport] for i in range(count)]


def summary(values):
    """min / median / max, rounded, of a list of numbers."""
    return {"min": round(min(values), 1), "median": round(statistics.median(values), 1),
            "max": round(max(values), 1), "n": len(values)}


# ----------------------------------------------------------------------------- the lab

class Ecmp:
    """BIRD on the router and on `nodes` (default: the lab's first three balancer nodes; the
    others get a session on the router but no BIRD until add_node)."""

    def __init__(self, lab, nodes=None, timers=None):
        self.lab = lab
        self.timers = dict(TIMERS, **env_timers(), **(timers or {}))
        self.all_nodes = list(lab.lbs)
        self.nodes = list(nodes) if nodes is not None else self.all_nodes[:3]
        self.start_nodes = list(self.nodes)
        unknown = set(self.nodes) - set(self.all_nodes)
        if unknown:
            raise LabError(f"not balancer nodes of this lab: {sorted(unknown)}")
        self.router = lab.router
        self.router_bird = Bird(lab, self.router, router_config(lab, self.all_nodes, self.timers),
                                rt_priority=BIRD_RT_PRIORITY)
        self.birds = {n: Bird(lab, n, node_config(lab, n, self.timers), rt_priority=BIRD_RT_PRIORITY)
                      for n in self.all_nodes}
        self.holders = {}      # node -> tun holder Popen (simulated lbd)
        self.cut = set()       # nodes whose bridge port we took down
        self.counting = set()  # nodes with the nft counters
        self.watch = None
        self.watch6 = None

    def addr(self, node, family=4):
        return self.lab.addr_of(node, family)

    def node_by_addr(self, addr):
        family = 6 if ":" in addr else 4
        return next((n for n in self.all_nodes if self.addr(n, family) == addr), None)

    def vip_of(self, family):
        return self.lab.vip6 if family == 6 else self.lab.vip

    def families(self):
        """4, and 6 in a lab with IPv6 VIPs (each has its own sessions, route and watch)."""
        return (4, 6) if self.lab.vips6 else (4,)

    # --- start and stop
    def start(self, timeout=15):
        """L4 multipath hashing in the router's namespace, the router's BIRD, each node's BIRD,
        then wait for every session Established and every BFD session Up."""
        for f in self.families():
            self.lab.sysctl(self.router, f"net.ipv{f}.fib_multipath_hash_policy", 1)
        self.router_bird.check()
        self.router_bird.start()
        for n in self.nodes:
            self.birds[n].check()
            self.birds[n].start()
        self.wait_sessions(self.nodes, timeout)
        self.watch = RouteWatch(self.lab, self.router, self.lab.vip)
        if 6 in self.families():
            self.watch6 = RouteWatch(self.lab, self.router, self.lab.vip6)
        return self

    def stop(self):
        """Withdraw every simulation, stop every BIRD, bring cut cables back: the lab as it was."""
        for n in list(self.holders):
            self.kill_announcer(n)
        for n in list(self.cut):
            self.lab.link_set("br", self.lab.bridge_port(n), True)
            self.cut.discard(n)
        for b in [self.router_bird] + list(self.birds.values()):
            if b.running():
                b.stop()
        for n in list(self.counting):
            self.lab.run(n, ["nft", "delete", "table", "netdev", "ecmplab"], check=False)
            self.counting.discard(n)
        for w in (self.watch, self.watch6):
            if w:
                w.stop()
        self.watch = self.watch6 = None

    def reset(self, nodes=None, timeout=15):
        """Between tests: no simulated announcement, every cable up, BIRD running on exactly
        `nodes` (default: those of start()) with their sessions Established and BFD Up."""
        self.nodes = list(nodes if nodes is not None else self.start_nodes)
        for n in list(self.holders):
            self.kill_announcer(n)
        for n in list(self.cut):
            self.restore(n, bird=False)
        for n in self.all_nodes:
            b = self.birds[n]
            if n not in self.nodes and b.running():
                b.stop()
            elif n in self.nodes and not b.running():
                b.start()
        self.wait_sessions(self.nodes, timeout)

    def bfd_downs(self):
        """{node: how many times the router's BFD or BGP session to it went down}, from the router's
        log (a rise between two calls without a crash is a flap)."""
        text = self.lab.log_tail(self.router_bird.log, lines=1000000)
        # Either side may see the stall first: the router's BFD session going down, or the node's,
        # which then closes its BGP session (the router logs the session going down, its BFD session
        # being removed rather than going down). NODE_6 is the node's IPv6 session.
        return {n: sum(text.count(f"Session to {self.addr(n, f)} changed state from Up to Down")
                       + text.count(f"{n}{'_6' if f == 6 else ''}: State changed to down")
                       for f in self.families()) for n in self.all_nodes}

    def wait_sessions(self, nodes, timeout=15):
        """Router's BGP sessions to each node (NODE, and NODE_6 with IPv6 VIPs) Established and
        their BFD sessions Up."""
        nodes = list(nodes)
        six = 6 in self.families()
        self.router_bird.wait_protocols({n: "Established" for n in nodes}
                                        | ({f"{n}_6": "Established" for n in nodes} if six else {}), timeout)
        self.router_bird.wait_bfd({self.addr(n, f): "Up" for n in nodes for f in self.families()}, timeout)

    def start_bird(self, node, wait=True, timeout=15):
        b = self.birds[node]
        b.start()
        if wait:
            self.wait_sessions([node], timeout)
        return b

    def stop_bird(self, node):
        """SIGTERM the node's BIRD: it closes its session (Cease), the router withdraws at once."""
        return self.birds[node].stop()

    def add_node(self, node, timeout=15):
        """Scale out: start BIRD on a node the router already has a session for; returns once
        Established with BFD Up (the node announces once its table 100 holds the VIP)."""
        if node not in self.nodes:
            self.nodes.append(node)
        return self.start_bird(node, timeout=timeout)

    # --- faults
    def crash(self, node):
        """A dead node: its cable cut first (nothing more leaves it), then kill -9 of every process
        in its namespace (BIRD, lbd, the simulation's tun holder), reaped."""
        self.lab.link_set("br", self.lab.bridge_port(node), False)
        self.cut.add(node)
        for pid in lablib._netns_pids(self.lab.ns(node)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in [self.birds[node].proc, self.holders.pop(node, None)]:
            if p is not None:
                p.wait(5)

    def restore(self, node, bird=True, timeout=15):
        """Cable back; with bird, start the node's BIRD and wait for its sessions."""
        self.lab.link_set("br", self.lab.bridge_port(node), True)
        self.cut.discard(node)
        if bird and not self.birds[node].running():
            self.start_bird(node, timeout=timeout)

    # --- the router's view
    def router_routes(self, family=4):
        """The router's routes to the VIP (family 6: VIP6), `ip -j route show`."""
        out = self.lab.run(self.router, ["ip", f"-{family}", "-j", "route", "show", self.vip_of(family)],
                           timeout=5).stdout
        return json.loads(out or "[]")

    def router_nexthops(self, family=4):
        """The set of node addresses the router's VIP (or VIP6) route uses now (empty: no route)."""
        return parse_route_nexthops(self.router_routes(family), self.vip_of(family))

    def _gateways(self, want, family):
        return frozenset(self.addr(w, family) if w in self.all_nodes else w for w in want)

    def wait_nexthops(self, want, timeout=5, interval=0.01, family=4):
        """Poll until the router's VIP (family 6: VIP6) route has exactly the next hops `want`
        (addresses or node names); returns the seconds it took."""
        want = self._gateways(want, family)
        t0 = time.monotonic()
        wait_for(lambda: self.router_nexthops(family) == want, timeout, interval,
                 f"router's route to {self.vip_of(family)} via {sorted(want)}")
        return time.monotonic() - t0

    def timed_change(self, action, want, timeout=5, family=4):
        """Run action() and return the milliseconds from just before it until the router's kernel
        reported the VIP (family 6: VIP6) route with exactly the next hops `want` (addresses or
        node names)."""
        want = self._gateways(want, family)
        t0 = time.time()
        action()
        t, _ = (self.watch6 if family == 6 else self.watch).wait(lambda g: g == want, t0, timeout)
        return (t - t0) * 1000.0

    def node_of_flow(self, src, sport, dport=9000, proto="udp"):
        """The node the router sends this flow to now, or None without a route: `ip route get` with
        the flow's ports, the router's own L4 hash. Exact for frames that carry no socket hash
        (unconnected UDP as send_flows sends it, packet sockets). A TCP or connected UDP socket's
        frames keep the client socket's hash across the veth, and hash policy 1 uses that hash
        instead of the ports: find those flows with flow_nodes()."""
        r = self.lab.run(self.router, ["ip", "-j", "route", "get", self.lab.vip, "from", src, "iif", "eth1",
                                       "ipproto", proto, "sport", str(sport), "dport", str(dport)],
                         check=False, timeout=5)
        if r.returncode:
            return None
        gw = (json.loads(r.stdout) or [{}])[0].get("gateway")
        return self.node_by_addr(gw) if gw else None

    # --- the simulated announcement (what lbd does in mode = ecmp)
    def announce(self, node, proto="static", timeout=5):
        """Simulate lbd: a tun device dsrlb0 held by a process, VIP/32 dev dsrlb0 table 100."""
        if node in self.holders:
            raise LabError(f"{node} already announces")
        arg = json.dumps({"dev": ANNOUNCE_DEVICE, "table": ANNOUNCE_TABLE, "vips": self.lab.vips, "proto": proto})
        p = _popen_piped(self.lab, node, [sys.executable, "-c", TUN_HOLDER, arg], f"{node}-announce")
        self.holders[node] = p
        line = p.stdout.readline().decode().strip()  # bounded: the holder exits or says ready
        if line != "ready":
            raise LabError(f"tun holder on {node} failed:\n" + self.lab.log_tail(f"{node}-announce"))
        wait_for(lambda: self.table_routes(node), timeout, 0.01, f"VIP in table {ANNOUNCE_TABLE} on {node}")
        return p

    def table_routes(self, node):
        out = self.lab.run(node, ["ip", "-j", "route", "show", "table", str(ANNOUNCE_TABLE)], timeout=5).stdout
        return json.loads(out or "[]")

    def withdraw(self, node):
        """Delete the VIP routes from table 100 (the device stays)."""
        for v in self.lab.vips:
            self.lab.run(node, ["ip", "route", "del", f"{v}/32", "table", str(ANNOUNCE_TABLE)], check=False)

    def readd(self, node, proto="static"):
        """Put the VIP routes back on the held device."""
        for v in self.lab.vips:
            self.lab.run(node, ["ip", "route", "replace", f"{v}/32", "dev", ANNOUNCE_DEVICE,
                                "table", str(ANNOUNCE_TABLE), "proto", proto])

    def kill_announcer(self, node):
        """kill -9 of the simulated lbd: its tun device, and with it the route, vanishes."""
        p = self.holders.pop(node, None)
        if p is not None and p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(5)

    # --- which node got what
    def count_frames(self, nodes=None):
        """(Re)install the nft counters on the nodes' eth0 ingress (before lbd or the stack see a
        frame): frames to the VIPs, and every distinct TCP/UDP flow (source, protocol, port)."""
        rules = "".join(NFT_VIP_RULES.format(ip=ip, set=name, vips=", ".join(vips))
                        for ip, name, vips in (("ip", "flows", self.lab.vips), ("ip6", "flows6", self.lab.vips6))
                        if vips)
        text = NFT_COUNTERS.format(rules=rules)
        for n in nodes or self.all_nodes:
            self.lab.run(n, ["sh", "-c", "nft delete table netdev ecmplab 2>/dev/null; nft -f -"],
                         input=text, timeout=10)
            self.counting.add(n)

    def frames(self):
        """{node: frames to a VIP seen on its eth0 since count_frames()}."""
        out = {}
        for n in sorted(self.counting):
            data = json.loads(self.lab.run(n, ["nft", "-j", "list", "chain", "netdev", "ecmplab", "in"]).stdout)
            c = [x["counter"] for r in data["nftables"] if "rule" in r for x in r["rule"]["expr"] if "counter" in x]
            out[n] = sum(x["packets"] for x in c)
        return out

    def flows(self):
        """{node: {(src, proto, sport), ...}} seen on its eth0 since count_frames() (IPv4 and IPv6)."""
        out = {}
        for n in sorted(self.counting):
            elems = []
            for name in ("flows", "flows6"):
                data = json.loads(self.lab.run(n, ["nft", "-j", "list", "set", "netdev", "ecmplab", name]).stdout)
                elems += next((x["set"].get("elem", []) for x in data["nftables"] if "set" in x), [])
            seen = set()
            for e in elems:
                v = e["elem"]["val"] if isinstance(e, dict) and "elem" in e else e
                src, proto, sport = v["concat"]
                seen.add((src, proto, int(sport)))
            out[n] = seen
        return out

    def flow_nodes(self, src=None, proto=None, sport=None, flows=None):
        """{node: number of flows seen there since count_frames() that match src / proto / sport
        (None: any)}, e.g. the node of a probe sent from an address of its own; from `flows` (what
        flows() returned) when given, to ask about many sources at one moment."""
        out = {}
        for n, seen in (flows if flows is not None else self.flows()).items():
            k = sum(1 for s, p, sp in seen if src in (None, s) and proto in (None, p) and sport in (None, sp))
            if k:
                out[n] = k
        return out

    def send_flows(self, flows, linger=0.3, host="client"):
        """One UDP datagram or TCP SYN per flow from the client ([src, sport, proto, dport]);
        nobody needs to answer. Returns {"sent", "errors"}."""
        arg = json.dumps({"flows": flows, "dst": self.lab.vip, "linger": linger})
        r = self.lab.run(host, [sys.executable, "-c", SEND_FLOWS, arg], timeout=30 + len(flows) / 100)
        return json.loads(r.stdout)


@contextlib.contextmanager
def ecmp_lab(lab, nodes=None, timers=None, start=True):
    """An Ecmp on the lab, started unless start=False, always stopped on leaving."""
    e = Ecmp(lab, nodes, timers)
    try:
        if start:
            e.start()
        yield e
    finally:
        e.stop()

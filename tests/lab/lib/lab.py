"""Network-namespace lab for dsrlb: builds a LAN with a router, a client, two balancer nodes and
backends from a small topology description, runs commands and daemons in it, and always removes
it again (fixture finalizer, atexit, SIGTERM/SIGHUP handler; stale labs of killed runs are reaped).

Only RFC 5737 addresses are used, every link lives inside the lab's own namespaces (veth pairs are
created inside the bridge or router namespace with their peer moved straight into the host's), and
the root namespace's links, addresses, routes and sysctls are never touched.

    client 198.51.100.10/24 (+ .11-.19) --- eth1 router eth0 192.0.2.1/24 --- br0 (namespace "br")
    br0: lb1 192.0.2.11, lb2 .12 (no VIP), be1 .21, be2 .22, be3 .23, be4 .24 (spare)
    backends: VIP 192.0.2.100/32 on lo, arp_ignore=1, arp_announce=2 (scripts/dsr-backend)

With topology(ipv6=True) the same segments also carry IPv6 (RFC 3849 documentation prefixes):
192.0.2.N is 2001:db8::N and 198.51.100.N is 2001:db8:1::N (the decimal digits written as they
are), the router is 2001:db8::1 / 2001:db8:1::1 and forwards IPv6, backends carry VIP6
2001:db8::100/128 on lo as well. Addresses are added with nodad (usable at once), accept_ra is off.
Without it IPv6 is disabled in every namespace, so IPv4-only suites see no IPv6 frame.
"""

import atexit
import copy
import glob
import ipaddress
import json
import os
import pwd
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
BUILD = os.environ.get("DSRLB_BUILD", os.path.join(REPO, "build"))
DSR_BACKEND = os.path.join(REPO, "scripts", "dsr-backend")
TMP_ROOT = os.environ.get("DSRLB_LAB_TMP", tempfile.gettempdir())

VIP = "192.0.2.100"
VIP6 = "2001:db8::100"
ROUTER_LAN = "192.0.2.1"
ROUTER_WAN = "198.51.100.1"
ALLOWED_NETS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",
                                                   "2001:db8::/32")]
# The IPv6 twin of each IPv4 network the lab numbers hosts in: 192.0.2.N -> 2001:db8::N.
V6_OF_V4 = {ipaddress.ip_network("192.0.2.0/24"): "2001:db8::",
            ipaddress.ip_network("198.51.100.0/24"): "2001:db8:1::"}
NS_RE = re.compile(r"^(dsr\d{1,5}[0-9a-f]{2})-")
BRIDGE_NS = "br"


class LabError(Exception):
    pass


class WaitTimeout(AssertionError):
    """A bounded wait ran out; an AssertionError so pytest reports a failure, not an error."""


class CommandError(subprocess.CalledProcessError):
    def __str__(self):
        cmd = self.cmd if isinstance(self.cmd, str) else " ".join(map(str, self.cmd))
        return (f"command failed (exit {self.returncode}): {cmd}\n"
                f"stdout: {(self.stdout or '').strip()[-2000:]}\n"
                f"stderr: {(self.stderr or '').strip()[-2000:]}")


def wait_for(fn, timeout, interval=0.05, what="condition", ignore=(Exception,)):
    """Call fn() until it returns something true and return that, or raise WaitTimeout after
    `timeout` seconds naming `what`, the last value and the last exception (exceptions of the
    classes in `ignore` count as "not yet")."""
    deadline = time.monotonic() + timeout
    last, last_exc, tries = None, None, 0
    while True:
        tries += 1
        try:
            last = fn()
            if last:
                return last
        except ignore as e:
            last_exc = e
        if time.monotonic() >= deadline:
            msg = f"timed out after {timeout}s ({tries} tries) waiting for {what}; last value: {last!r}"
            if last_exc is not None:
                msg += f"; last error: {type(last_exc).__name__}: {last_exc}"
            raise WaitTimeout(msg)
        time.sleep(max(0.0, min(interval, deadline - time.monotonic())))


# ----------------------------------------------------------------------------- topology

def v6_of(addr):
    """The lab's IPv6 twin of an IPv4 address ("a.b.c.d" or "a.b.c.d/len"): 192.0.2.21 ->
    2001:db8::21, 198.51.100.10/24 -> 2001:db8:1::10/64 (the last octet's decimal digits)."""
    iface = ipaddress.ip_interface(addr)
    net = next((n for n in V6_OF_V4 if iface.ip in n), None)
    if net is None:
        raise LabError(f"{addr} has no IPv6 twin in the lab (only {', '.join(map(str, V6_OF_V4))})")
    v6 = str(ipaddress.ip_address(V6_OF_V4[net] + str(int(iface.ip) & 0xFF)))
    return f"{v6}/64" if "/" in addr else v6


def _add_ipv6(topo, vips6):
    """Give every host of topo the IPv6 twins of its addresses, default routes via the router."""
    topo["vips6"] = list(vips6)
    for h in topo["hosts"].values():
        h["addrs6"] = [v6_of(a) for a in h["addrs"]]
        if h["role"] == "router":
            h["wan6"] = [v6_of(a) for a in h["wan"]]
        elif h.get("gw"):
            h["gw6"] = v6_of(h["gw"])


def topology(backends=4, spares=1, lbs=2, client_addrs=10, vips=(VIP,), lan_hosts=None,
             dsr_setup=True, ipv6=False, vips6=(VIP6,)):
    """The default lab description; change the returned dict to vary a suite's lab.

    hosts[name] = {"role": router|client|lb|backend|host, "addrs": ["a.b.c.d/len", ...] (eth0,
    the first is primary), "gw": default gateway, optional "mac", "sysctls": {key: value},
    backends: "dsr": run `dsr-backend setup VIPS`, "spare": no servers by default;
    router: "wan": addresses of eth1, the link to the client}.
    ipv6=True adds "addrs6", "gw6" (router: "wan6") to every host, the twins of the IPv4 ones
    (v6_of), and topo["vips6"] (vips6, on the backends' lo next to the IPv4 VIPs).
    """
    hosts = {
        "router": {"role": "router", "addrs": [f"{ROUTER_LAN}/24"], "wan": [f"{ROUTER_WAN}/24"]},
        "client": {"role": "client", "gw": ROUTER_WAN,
                   "addrs": [f"198.51.100.{10 + i}/24" for i in range(client_addrs)]},
    }
    for i in range(lbs):
        hosts[f"lb{i + 1}"] = {"role": "lb", "addrs": [f"192.0.2.{11 + i}/24"], "gw": ROUTER_LAN}
    for i in range(backends):
        hosts[f"be{i + 1}"] = {"role": "backend", "addrs": [f"192.0.2.{21 + i}/24"], "gw": ROUTER_LAN,
                               "dsr": bool(dsr_setup), "spare": i >= backends - spares}
    for name, addr in (lan_hosts or {}).items():
        hosts[name] = {"role": "host", "addrs": [addr if "/" in addr else f"{addr}/24"], "gw": ROUTER_LAN}
    topo = {"vips": list(vips), "ipv6": ipv6, "vips6": [], "hosts": hosts}
    if ipv6:
        _add_ipv6(topo, vips6)
    return topo


def _check_topology(topo):
    hosts = topo["hosts"]
    roles = [h["role"] for h in hosts.values()]
    if roles.count("router") != 1 or roles.count("client") > 1:
        raise LabError("a topology needs exactly one router and at most one client")
    for name, h in hosts.items():
        if not re.fullmatch(r"[a-z][a-z0-9]{0,9}", name) or name == BRIDGE_NS:
            raise LabError(f"bad host name {name!r}: lowercase letters and digits, at most 10")
        addrs = [h.get(k, []) for k in ("addrs", "wan", "addrs6", "wan6")] + [topo["vips"], topo.get("vips6", [])]
        for a in [a for group in addrs for a in group]:
            ip = ipaddress.ip_interface(a).ip
            if not any(ip in n for n in ALLOWED_NETS):
                raise LabError(f"{name}: {a} is outside the documentation ranges the lab may use "
                               "(RFC 5737, RFC 3849)")
        if (h.get("addrs6") or h.get("wan6")) and not topo.get("ipv6"):
            raise LabError(f"{name}: IPv6 addresses in a topology without ipv6=True")


def _mac_for(addr):
    """02:d5 followed by the IPv4 address: unique, locally administered, readable in a pcap."""
    ip = ipaddress.ip_interface(addr).ip.packed
    return "02:d5:" + ":".join(f"{b:02x}" for b in ip)


# ----------------------------------------------------------------------------- cleanup plumbing

_LABS = []
_LABS_LOCK = threading.Lock()
_HANDLERS_INSTALLED = False


def _cleanup_all():
    with _LABS_LOCK:
        labs = list(_LABS)
    for lab in labs:
        try:
            lab.destroy()
        except Exception as e:  # keep going: the other labs must go too
            print(f"lab: cleanup of {lab.prefix} failed: {e}", file=sys.stderr)


def _on_signal(signum, frame):
    _cleanup_all()
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def _install_handlers():
    global _HANDLERS_INSTALLED
    if _HANDLERS_INSTALLED or threading.current_thread() is not threading.main_thread():
        return
    _HANDLERS_INSTALLED = True
    atexit.register(_cleanup_all)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) == signal.SIG_DFL:
            signal.signal(sig, _on_signal)


def _proc_start_time(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def list_netns():
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _netns_pids(ns):
    r = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=10)
    return [int(p) for p in r.stdout.split() if p.isdigit()]


def _delete_netns(names):
    """Kill what still runs in our namespaces (all of it started by a lab) and delete them."""
    for ns in names:
        for pid in _netns_pids(ns):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    if names:
        subprocess.run(["ip", "-force", "-batch", "-"], input="".join(f"netns del {n}\n" for n in names),
                       capture_output=True, text=True, timeout=30)
    left = set(names) & set(list_netns())
    for ns in left:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
    return sorted(set(names) & set(list_netns()))


def reap_stale(verbose=True):
    """Delete the namespaces of lab runs whose owning process is gone (e.g. killed with SIGKILL).
    A run is judged by the owner.json in its tmp dir; namespaces without one are left alone."""
    stems = {}
    for ns in list_netns():
        m = NS_RE.match(ns)
        if m:
            stems.setdefault(m.group(1), []).append(ns)
    reaped, unknown = [], []
    for stem, names in stems.items():
        owners = glob.glob(os.path.join(TMP_ROOT, f"dsrlb-{stem}-*", "owner.json"))
        if not owners:
            unknown += names
            continue
        try:
            with open(owners[0]) as f:
                owner = json.load(f)
        except (OSError, ValueError):
            unknown += names
            continue
        if _proc_start_time(owner["pid"]) == owner["start"]:
            continue  # its owner still runs
        _delete_netns(names)
        os.unlink(owners[0])
        reaped += names
    if verbose and reaped:
        print(f"lab: reaped stale namespaces {reaped}", file=sys.stderr)
    return reaped, unknown


def dsr_backend_etc(root, flavour):
    """A fake /etc below `root` (a pathlib.Path) for `dsr-backend setup` with persistence:
    flavour "ifupdown" or "networkd". Returns (env for lab.dsr_backend, the lo snippet's path)."""
    etc = root / "etc"
    if flavour == "ifupdown":
        (etc / "network" / "interfaces.d").mkdir(parents=True)
        (etc / "network" / "interfaces").write_text("source /etc/network/interfaces.d/*\n")
        snippet = etc / "network" / "interfaces.d" / "dsrlb-vip"
    else:
        (etc / "systemd" / "system" / "multi-user.target.wants").mkdir(parents=True)
        (etc / "systemd" / "system" / "multi-user.target.wants" / "systemd-networkd.service").touch()
        snippet = etc / "systemd" / "network" / "90-dsrlb-lo.network"
    return {"DSR_BACKEND_ETC": str(etc)}, snippet


# ----------------------------------------------------------------------------- the lab

def _free_stem():
    """A namespace prefix no namespace has now: this process's pid and a random byte, drawn again
    while taken (two labs of one process live at once, e.g. a module's and a test's own: one random
    byte alone collided in CI, "Cannot create namespace file ... File exists")."""
    taken = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    for _ in range(256):
        stem = f"dsr{os.getpid() % 100000}{random.getrandbits(8):02x}"
        if not any(n.startswith(stem + "-") for n in taken):
            return stem
    raise RuntimeError("no free lab namespace prefix: 256 labs of this process alive?")


class Lab:
    """One lab instance. Build with Lab(topo).build() (or `with Lab() as lab:`), always destroy()."""

    def __init__(self, topo=None, build_dir=None, keep=None):
        self.topo = copy.deepcopy(topo or topology())
        _check_topology(self.topo)
        self.hosts = self.topo["hosts"]
        self.vips = list(self.topo["vips"])
        self.vip = self.vips[0]
        self.vips6 = list(self.topo.get("vips6") or [])
        self.vip6 = self.vips6[0] if self.vips6 else None
        self.build_dir = build_dir or BUILD
        self.stem = _free_stem()
        self.prefix = self.stem + "-"
        self.keep = keep if keep is not None else bool(os.environ.get("DSRLB_KEEP"))
        self.failed = False  # set by the test fixture when a test using this lab failed
        self.tmpdir = None
        self.logdir = None
        self.build_seconds = None
        self._namespaces = []
        self._procs = []
        self._procs_lock = threading.Lock()
        self._destroyed = False
        self._seq = 0

    def __repr__(self):
        return f"<Lab {self.prefix} {len(self.hosts)} hosts{' destroyed' if self._destroyed else ''}>"

    # --- names and facts
    @property
    def router(self):
        return next(n for n, h in self.hosts.items() if h["role"] == "router")

    @property
    def client(self):
        return next((n for n, h in self.hosts.items() if h["role"] == "client"), None)

    @property
    def lbs(self):
        return [n for n, h in self.hosts.items() if h["role"] == "lb"]

    @property
    def backends(self):
        return [n for n, h in self.hosts.items() if h["role"] == "backend"]

    @property
    def spares(self):
        return [n for n in self.backends if self.hosts[n].get("spare")]

    @property
    def active_backends(self):
        return [n for n in self.backends if not self.hosts[n].get("spare")]

    def ns(self, host):
        """Full namespace name of a host ("br" is the bridge's)."""
        if host != BRIDGE_NS and host not in self.hosts:
            raise LabError(f"no host {host!r} in this lab")
        return self.prefix + host

    def addr(self, host):
        """Primary IPv4 address of the host (no prefix length)."""
        return str(ipaddress.ip_interface(self.hosts[host]["addrs"][0]).ip)

    def addrs(self, host):
        return [str(ipaddress.ip_interface(a).ip) for a in self.hosts[host]["addrs"]]

    def addr6(self, host):
        """Primary IPv6 address of the host (no prefix length); the lab must have ipv6=True."""
        return self.addrs6(host)[0]

    def addrs6(self, host):
        a6 = self.hosts[host].get("addrs6")
        if not a6:
            raise LabError(f"{host} has no IPv6 address (topology(ipv6=True) gives every host one)")
        return [str(ipaddress.ip_interface(a).ip) for a in a6]

    def addr_of(self, host, family=4):
        """addr(host) for family 4, addr6(host) for 6: for tests written once for both."""
        return self.addr6(host) if family == 6 else self.addr(host)

    def mac(self, host, ifname="eth0"):
        out = self.run(host, ["ip", "-j", "link", "show", "dev", ifname], timeout=5).stdout
        return json.loads(out)[0]["address"]

    def bridge_port(self, host):
        """The host's port on br0, in the "br" namespace (cut it to simulate a dead cable)."""
        return host

    def bin(self, name):
        path = os.path.join(self.build_dir, name)
        if not os.access(path, os.X_OK):
            raise LabError(f"{path} is not built (run make)")
        return path

    def have_binaries(self, *names):
        return all(os.access(os.path.join(self.build_dir, n), os.X_OK) for n in names or ("lbd", "vrrpd", "lbctl"))

    # --- build
    def build(self):
        t0 = time.monotonic()
        _install_handlers()
        with _LABS_LOCK:
            _LABS.append(self)
        self.tmpdir = tempfile.mkdtemp(prefix=f"dsrlb-{self.stem}-", dir=TMP_ROOT)
        self.logdir = os.path.join(self.tmpdir, "logs")
        for d in ("logs", "conf", "run", "pcap"):
            os.makedirs(os.path.join(self.tmpdir, d))
        if self.daemon_gid() is not None:
            # The daemons' user re-reads conf/ at reload: let it through (not list) the tmp dir.
            os.chmod(self.tmpdir, 0o711)
            os.chmod(os.path.join(self.tmpdir, "conf"), 0o711)
        with open(os.path.join(self.tmpdir, "owner.json"), "w") as f:
            json.dump({"pid": os.getpid(), "start": _proc_start_time(os.getpid()), "prefix": self.prefix}, f)
        try:
            self._build()
        except BaseException:
            self.failed = True
            self.destroy()
            raise
        self.build_seconds = round(time.monotonic() - t0, 3)
        return self

    def _build(self):
        names = [BRIDGE_NS] + list(self.hosts)
        # Registered before they exist, so an interruption half way still deletes them.
        self._namespaces = [self.prefix + n for n in names]
        self._ip(None, "".join(f"netns add {ns}\n" for ns in self._namespaces))
        with ThreadPoolExecutor(max_workers=8) as ex:
            list(ex.map(self._sysctls, names))
            wiring = [ex.submit(self._wire_bridge), ex.submit(self._wire_client)]
            for f in wiring:
                f.result()
            list(ex.map(self._address, self.hosts))
        self._wait_links()

    def _sysctls(self, host):
        """Known values in each namespace before any link exists (new links copy "default").
        IPv4 settings of a new namespace are inherited from the root namespace, so set them all."""
        role = self.hosts[host]["role"] if host in self.hosts else "bridge"
        vals = {"net.ipv4.ip_forward": 1 if role == "router" else 0}
        ipv6 = self.topo.get("ipv6") and role != "bridge"
        for c in ("all", "default"):
            vals.update({f"net.ipv4.conf.{c}.rp_filter": 0, f"net.ipv4.conf.{c}.arp_ignore": 0,
                         f"net.ipv4.conf.{c}.arp_announce": 0, f"net.ipv4.conf.{c}.arp_filter": 0,
                         f"net.ipv4.conf.{c}.accept_redirects": 0})
            if not ipv6:
                vals[f"net.ipv6.conf.{c}.disable_ipv6"] = 1
                continue
            # A new namespace starts with the kernel's IPv6 defaults, not the root's: set all that
            # matters. No DAD, no router advertisements, no autoconfiguration, no redirects.
            vals.update({f"net.ipv6.conf.{c}.disable_ipv6": 0,
                         f"net.ipv6.conf.{c}.forwarding": 1 if role == "router" else 0,
                         f"net.ipv6.conf.{c}.accept_ra": 0, f"net.ipv6.conf.{c}.accept_dad": 0,
                         f"net.ipv6.conf.{c}.accept_redirects": 0, f"net.ipv6.conf.{c}.autoconf": 0})
        if host in self.hosts:
            vals.update(self.hosts[host].get("sysctls", {}))
        script = "".join(f"echo {v} > /proc/sys/{k.replace('.', '/')}\n" for k, v in vals.items())
        if role == "bridge":
            # A switch passes frames as they are. With br_netfilter loaded the bridge would hand
            # bridged IPv4 to iptables, which drops malformed headers before any host sees them.
            script += ("for f in /proc/sys/net/bridge/bridge-nf-call-*; do "
                       "[ -e \"$f\" ] && echo 0 > \"$f\"; done; true\n")
        self.run(host, ["sh", "-ec", script + "ip link set lo up\n"], timeout=10)

    def _wire_bridge(self):
        lines = ["link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0",
                 "link set br0 up"]
        for name, h in self.hosts.items():
            if h["role"] == "client":
                continue
            mac = h.get("mac") or _mac_for(h["addrs"][0])
            lines += [f"link add {name} type veth peer name eth0 address {mac} netns {self.ns(name)}",
                      f"link set {name} master br0", f"link set {name} up"]
        self._ip(BRIDGE_NS, "\n".join(lines) + "\n")

    def _wire_client(self):
        client = self.client
        if client is None:
            return
        r = self.hosts[self.router]
        c = self.hosts[client]
        rmac = r.get("wan_mac") or _mac_for(r["wan"][0])
        cmac = c.get("mac") or _mac_for(c["addrs"][0])
        self._ip(self.router, f"link add eth1 address {rmac} type veth peer name eth0 address {cmac} "
                              f"netns {self.ns(client)}\n")

    def _address(self, host):
        h = self.hosts[host]
        lines = []
        for a in h["addrs"]:
            lines.append(f"addr add {a} dev eth0")
        lines += [f"addr add {a} dev eth0 nodad" for a in h.get("addrs6", [])]
        lines.append("link set eth0 up")
        if h["role"] == "router" and self.client:
            lines += [f"addr add {a} dev eth1" for a in h["wan"]]
            lines += [f"addr add {a} dev eth1 nodad" for a in h.get("wan6", [])] + ["link set eth1 up"]
        if h.get("gw"):
            lines.append(f"route add default via {h['gw']}")
        if h.get("gw6"):
            lines.append(f"route add ::/0 via {h['gw6']}")
        self._ip(host, "\n".join(lines) + "\n")
        if h["role"] == "backend" and h.get("dsr"):
            self.dsr_backend(host, "setup", *self.vips, *self.vips6)

    def _wait_links(self):
        def up():
            ports = json.loads(self.run(BRIDGE_NS, ["ip", "-j", "link", "show"], timeout=5).stdout)
            state = {p["ifname"]: p.get("operstate") for p in ports}
            want = [n for n, h in self.hosts.items() if h["role"] != "client"]
            bad = [n for n in want if state.get(n) != "UP"]
            if self.client:
                r = json.loads(self.run(self.router, ["ip", "-j", "link", "show", "eth1"], timeout=5).stdout)
                if r[0].get("operstate") != "UP":
                    bad.append("router/eth1")
            return not bad or None

        wait_for(up, 5, interval=0.02, what="all lab links up")

    def _ip(self, host, batch):
        cmd = ["ip"] + (["-n", self.ns(host)] if host else []) + ["-batch", "-"]
        r = subprocess.run(cmd, input=batch, capture_output=True, text=True, timeout=30)
        if r.returncode:
            raise CommandError(r.returncode, cmd + ["<<", batch], r.stdout, r.stderr)

    # --- destroy
    def destroy(self):
        """Stop every process started here, delete every namespace, remove the tmp dir unless
        a test failed (or keep). Safe to call again, also from a signal handler."""
        if self._destroyed:
            return
        old_mask = None
        if threading.current_thread() is threading.main_thread():
            old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
        try:
            self._stop_all()
            present = set(list_netns())
            left = _delete_netns([ns for ns in self._namespaces if ns in present])
            if left:
                raise LabError(f"namespaces still present after delete: {left}")
            self._destroyed = True
            with _LABS_LOCK:
                if self in _LABS:
                    _LABS.remove(self)
            if self.tmpdir:
                try:
                    os.unlink(os.path.join(self.tmpdir, "owner.json"))
                except OSError:
                    pass
                if self.keep or self.failed:
                    print(f"lab: logs and files kept in {self.tmpdir}", file=sys.stderr)
                else:
                    shutil.rmtree(self.tmpdir, ignore_errors=True)
        finally:
            if old_mask is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

    def _stop_all(self, timeout=3):
        with self._procs_lock:
            procs = [p for p in self._procs if p.returncode is None]
        live = []
        for p in procs:
            if p.poll() is None:
                self._killpg(p, signal.SIGTERM)
                self._killpg(p, signal.SIGCONT)  # a stopped process must see its SIGTERM
                live.append(p)
        deadline = time.monotonic() + timeout
        for p in live:
            try:
                p.wait(timeout=max(0.01, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._killpg(p, signal.SIGKILL)
        for p in live:
            try:
                p.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass

    @staticmethod
    def _killpg(p, sig):
        # Only while the leader is unreaped: its pid (= our process group id) cannot be reused.
        if p.returncode is None:
            try:
                os.killpg(p.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def __enter__(self):
        return self.build()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and not issubclass(exc_type, KeyboardInterrupt):
            self.failed = True
        self.destroy()

    # --- running things
    def _wrap(self, host, cmd):
        if isinstance(cmd, str):
            cmd = ["sh", "-c", cmd]
        return ["ip", "netns", "exec", self.ns(host)] + [str(c) for c in cmd]

    def _track(self, p):
        with self._procs_lock:
            self._procs = [q for q in self._procs if q.returncode is None]
            self._procs.append(p)

    def run(self, host, cmd, check=True, timeout=10, input=None, env=None):
        """Run cmd (list, or str for sh -c) in host's namespace; CompletedProcess with text output.
        env adds to the environment. The whole process group is killed when `timeout` runs out."""
        full = self._wrap(host, cmd)
        p = subprocess.Popen(full, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True, env=dict(os.environ, **env) if env else None)
        self._track(p)
        try:
            out, err = p.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            self._killpg(p, signal.SIGKILL)
            out, err = p.communicate()
            raise CommandError(-9, full, out, (err or "") + f"\n[timed out after {timeout}s]") from None
        except BaseException:
            self._killpg(p, signal.SIGKILL)
            p.wait()
            raise
        if check and p.returncode:
            raise CommandError(p.returncode, full, out, err)
        return subprocess.CompletedProcess(full, p.returncode, out, err)

    def popen(self, host, cmd, log=None, env=None, **kw):
        """Start cmd in host's namespace as a new session (its own process group), tracked for
        cleanup. log="name" sends stdout+stderr to logs/name.log, which failure reports show;
        env adds to the environment; other keywords go to subprocess.Popen."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        if env:
            kw["env"] = dict(os.environ, **env)
        kw["start_new_session"] = True
        f = None
        if log:
            f = open(self.log_path(log), "ab")
            kw.setdefault("stdout", f)
            kw.setdefault("stderr", subprocess.STDOUT)
        try:
            p = subprocess.Popen(self._wrap(host, cmd), **kw)
        finally:
            if f:
                f.close()
        p.lab_log = log
        self._track(p)
        return p

    def stop(self, proc, sig=signal.SIGTERM, timeout=5):
        """Send sig to proc's process group, wait up to timeout, then SIGKILL; returns exit code."""
        if proc.poll() is None:
            self._killpg(proc, sig)
            if sig != signal.SIGSTOP:
                self._killpg(proc, signal.SIGCONT)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._killpg(proc, signal.SIGKILL)
                proc.wait(timeout=5)
        return proc.returncode

    def signal(self, proc, sig):
        """Deliver sig (e.g. SIGSTOP, SIGCONT, SIGKILL) to proc itself, for fault injection."""
        if proc.poll() is None:
            os.kill(proc.pid, sig)

    def link_set(self, host, ifname, up):
        self.run(host, ["ip", "link", "set", "dev", ifname, "up" if up else "down"], timeout=5)

    def sysctl(self, host, key, value=None):
        path = "/proc/sys/" + key.replace(".", "/")
        if value is None:
            return self.run(host, ["cat", path], timeout=5).stdout.strip()
        self.run(host, ["sh", "-c", f"echo {value} > {path}"], timeout=5)
        return str(value)

    def dsr_backend(self, host, *args, check=True, persist=False, env=None):
        """scripts/dsr-backend in host's namespace (--no-persist unless persist)."""
        cmd = ["sh", DSR_BACKEND] + ([] if persist else ["--no-persist"]) + list(args)
        return self.run(host, cmd, check=check, timeout=10, env=env)

    # --- files
    def log_path(self, name):
        return os.path.join(self.logdir, f"{name}.log")

    def log_tail(self, name, lines=40):
        try:
            with open(self.log_path(name), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def log_tails(self, lines=40):
        """The last lines of every log of this lab, for failure reports."""
        if not self.logdir or not os.path.isdir(self.logdir):
            return ""
        out = []
        for path in sorted(glob.glob(os.path.join(self.logdir, "*.log"))):
            name = os.path.basename(path)[:-4]
            text = self.log_tail(name, lines)
            if text.strip():
                out.append(f"----- {name} (last {lines} lines) -----\n{text.rstrip()}\n")
        return "\n".join(out)

    @staticmethod
    def config_text(text):
        """The config as the suites run it: with DSRLB_WORKERS=N in the environment, `workers = N` is
        added to [cluster] (unless the text sets workers itself), so a suite can run with N workers;
        with DSRLB_USER=NAME, `user = NAME` likewise, so a suite runs its daemons as NAME (nobody)."""
        for var, key in (("DSRLB_WORKERS", "workers"), ("DSRLB_USER", "user")):
            v = os.environ.get(var)
            if not v or "[cluster]" not in text or re.search(rf"^\s*{key}\s*=", text, re.M):
                continue
            v = int(v) if key == "workers" else v
            text = text.replace("[cluster]", f"[cluster]\n{key} = {v}", 1)
        return text

    @staticmethod
    def daemon_gid():
        """The group the daemons run in with DSRLB_USER (None without): keys are readable by it."""
        user = os.environ.get("DSRLB_USER")
        return pwd.getpwnam(user).pw_gid if user else None

    def write_config(self, text, name=None):
        """Write a config file into the lab's tmp dir; returns its path."""
        if name is None:
            self._seq += 1
            name = f"dsrlb-{self._seq}.conf"
        path = os.path.join(self.tmpdir, "conf", name)
        with open(path, "w") as f:
            f.write(self.config_text(text))
        return path

    def keygen(self, path=None):
        """A pair key: `lbctl keygen PATH` when built, else 32 random bytes as hex; mode 0600."""
        if path is None:
            path = os.path.join(self.tmpdir, "conf", "pair.key")
        lbctl = os.path.join(self.build_dir, "lbctl")
        if os.path.exists(path):
            os.unlink(path)  # lbctl keygen never overwrites
        if os.access(lbctl, os.X_OK):
            r = subprocess.run([lbctl, "keygen", path], capture_output=True, text=True, timeout=10)
            if r.returncode:
                raise CommandError(r.returncode, [lbctl, "keygen", path], r.stdout, r.stderr)
        else:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(os.urandom(32).hex() + "\n")
        gid = self.daemon_gid()
        if gid is not None:
            os.chown(path, 0, gid)  # re-read at reload by the daemons' user (docs/deploy.md)
        os.chmod(path, 0o600 if gid is None else 0o640)
        return path

    # --- daemons
    def run_dir(self, node):
        path = os.path.join(self.tmpdir, "run", node)
        os.makedirs(path, exist_ok=True)
        return path

    def _start_daemon(self, prog, node, conf_path, extra_args):
        cmd = [self.bin(prog), "-c", conf_path, "-n", node, "--run-dir", self.run_dir(node), "-f"]
        return self.popen(node, cmd + list(extra_args), log=f"{node}-{prog}")

    def start_lbd(self, node, conf_path, extra_args=()):
        """build/lbd -c CONF -n NODE --run-dir RUNDIR -f in node's namespace; log logs/NODE-lbd.log."""
        return self._start_daemon("lbd", node, conf_path, extra_args)

    def start_vrrpd(self, node, conf_path, extra_args=()):
        """build/vrrpd -c CONF -n NODE --run-dir RUNDIR -f in node's namespace; log logs/NODE-vrrpd.log."""
        return self._start_daemon("vrrpd", node, conf_path, extra_args)

    def lbctl(self, node, *args, check=False, timeout=5):
        """build/lbctl --run-dir RUNDIR ARGS in node's namespace; CompletedProcess."""
        return self.run(node, [self.bin("lbctl"), "--run-dir", self.run_dir(node)] + list(args),
                        check=check, timeout=timeout)

    def status(self, node):
        """json of `lbctl status --json` on node."""
        r = self.lbctl(node, "status", "--json", check=True)
        return json.loads(r.stdout)

    def wait_status(self, node, pred, timeout=5, what=None, interval=0.05):
        """Poll status(node) until pred(status) is true; returns that status."""
        def check():
            s = self.status(node)
            return s if pred(s) else None

        return wait_for(check, timeout, interval, what or f"status of {node} matching {pred!r}")

    def wait_json(self, node, subset, timeout=5, what=None, interval=0.05):
        """Poll status(node) until it contains subset (lib.jsonmatch.json_cmp); returns it."""
        from .jsonmatch import wait_json
        return wait_json(lambda: self.status(node), subset, timeout, what or f"status of {node}", interval)

    def describe(self):
        rows = [f"lab {self.prefix} tmp {self.tmpdir}"]
        for name, h in self.hosts.items():
            rows.append(f"  {name:8} {h['role']:8} {' '.join(h['addrs'] + h.get('addrs6', []))}")
        return "\n".join(rows)


def main(argv):
    """python3 lab.py reap | up (build the default lab, print it, wait for Ctrl-C)."""
    if argv[:1] == ["reap"]:
        reaped, unknown = reap_stale()
        print(json.dumps({"reaped": reaped, "unknown": unknown}))
        return 0
    if argv[:1] == ["up"]:
        with Lab() as lab:
            print(lab.describe(), f"\nbuilt in {lab.build_seconds}s; Ctrl-C to tear down", flush=True)
            try:
                signal.pause()
            except KeyboardInterrupt:
                pass
        return 0
    print(main.__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

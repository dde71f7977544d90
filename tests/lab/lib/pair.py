"""The balancer pair in a lab: a config, lbd and vrrpd on lb1 and lb2, fault injection, and the
checks every failover scenario ends with (exactly one node owns the VIP, on the wire too).

    pair = Pair(lab, advert="50ms", preempt=True)
    pair.start()                        # both nodes; returns once lb1 (the higher priority) is MASTER
    pair.crash("lb1")                   # SIGKILL both daemons of lb1
    pair.wait_master("lb2")
    pair.restart("lb1")
    owner = pair.assert_single_owner()  # polls until exactly one lbd is active; ARP agrees
    pair.stop()                         # every daemon, links back up; always call it (finally)

A suite's `make_pair` fixture is `make_pairs` with the suite's defaults (see there).
"""

import contextlib
import json
import os
import signal
import time

from .capture import arp_probe
from .jsonmatch import wait_json
from .lab import WaitTimeout, wait_for

NODES = {"lb1": ("192.0.2.11", 150), "lb2": ("192.0.2.12", 100)}
BACKENDS = ("192.0.2.21", "192.0.2.22", "192.0.2.23")
BACKENDS6 = ("2001:db8::21", "2001:db8::22", "2001:db8::23")
SERVICES = (("web", 80, "tcp"), ("sink", 81, "tcp"), ("probe", 9000, "udp"))


def config_text(key, advert="100ms", preempt=True, priorities=None, cluster_extra=None,
                vip="192.0.2.100", backends=BACKENDS, key2=None, vip6=None, backends6=BACKENDS6):
    """A pair config: the web service (tcp 80), a sink (tcp 81) and the probe service (udp 9000),
    health checks off so no backend state changes under a test. cluster_extra: {key: value}.
    With vip6 the same three services on the IPv6 VIP too, named web6, sink6 and probe6, over
    backends6. A backend may carry options: "192.0.2.22 weight=2"."""
    prios = dict((n, p) for n, (_a, p) in NODES.items())
    prios.update(priorities or {})
    lines = ["[cluster]", "interface = eth0", f"key_file = {key}"]
    if key2:
        lines.append(f"key_file = {key2}")
    lines += [f"advert_interval = {advert}", f"preempt = {'yes' if preempt else 'no'}"]
    lines += [f"{k} = {v}" for k, v in (cluster_extra or {}).items()]
    for name, (addr, _p) in NODES.items():
        lines += ["", f"[node {name}]", f"address = {addr}", f"priority = {prios[name]}"]
    families = [("", vip, backends)] + ([("6", vip6, backends6)] if vip6 else [])
    for suffix, v, bs in families:
        for name, port, proto in SERVICES:
            lines += ["", f"[service {name}{suffix}]", f"vip = {v}", f"port = {port}", f"protocol = {proto}",
                      "check = none"] + [f"backend = {b}" for b in bs]
    return "\n".join(lines) + "\n"


class Pair:
    def __init__(self, lab, advert="100ms", preempt=True, priorities=None, cluster_extra=None,
                 key=None, conf_text=None):
        self.lab = lab
        self.key = key or lab.keygen()
        self.conf_text = conf_text or config_text(self.key, advert, preempt, priorities, cluster_extra)
        self.conf = lab.write_config(self.conf_text)
        self.procs = {}            # (node, "lbd"|"vrrpd") -> Popen
        self.cut = set()           # bridge ports we took down
        self.ifdown = set()        # nodes whose eth0 we set down
        self.extra_procs = []      # helper processes of a test (generators, fake peers): stopped first
        self.nodes = list(NODES)

    # --- daemons
    def start_lbd(self, node, timeout=5):
        self.procs[(node, "lbd")] = p = self.lab.start_lbd(node, self.conf)

        def ready():
            if p.poll() is not None:
                raise AssertionError(f"lbd on {node} exited with {p.returncode}:\n"
                                     + self.lab.log_tail(f"{node}-lbd"))
            return self.lbd(node) is not None

        wait_for(ready, timeout, interval=0.02, what=f"lbd on {node} answering", ignore=(WaitTimeout,))
        return p

    def start_vrrpd(self, node, timeout=5):
        self.procs[(node, "vrrpd")] = p = self.lab.start_vrrpd(node, self.conf)

        def ready():
            if p.poll() is not None:
                raise AssertionError(f"vrrpd on {node} exited with {p.returncode}:\n"
                                     + self.lab.log_tail(f"{node}-vrrpd"))
            v = self.vrrp(node)
            return v is not None and v["state"] != "INIT"

        wait_for(ready, timeout, interval=0.02, what=f"vrrpd on {node} running", ignore=(WaitTimeout,))
        return p

    def start_node(self, node):
        """lbd first (vrrpd would go FAULT while its lbd is not up yet), then vrrpd."""
        self.start_lbd(node)
        self.start_vrrpd(node)

    def start(self, master="lb1", timeout=5):
        """Start both nodes; with master, return once it is MASTER with its lbd active and the
        other node BACKUP."""
        self.lab.run("router", ["ip", "neigh", "flush", "to", self.lab.vip], check=False)
        for n in self.nodes:
            self.start_lbd(n)
        for n in self.nodes:
            self.start_vrrpd(n)
        if master:
            self.wait_master(master, timeout)
            self.wait_backup([n for n in self.nodes if n != master][0], timeout)
            owner = self.assert_single_owner(timeout, arp_checks=0)
            assert owner == master, f"{master} is MASTER but {owner}'s lbd is the active one"
        return self

    def proc(self, node, prog):
        return self.procs.get((node, prog))

    def running(self, node, prog):
        p = self.proc(node, prog)
        return p is not None and p.poll() is None

    def kill(self, node, prog, sig=signal.SIGKILL):
        """Deliver sig to one daemon (the process itself, not its group); no wait."""
        p = self.proc(node, prog)
        assert p is not None and p.poll() is None, f"{prog} on {node} is not running"
        os.kill(p.pid, sig)
        return p

    def crash(self, node):
        """SIGKILL both daemons of node at once and reap them."""
        ps = [self.kill(node, prog) for prog in ("vrrpd", "lbd")]
        for p in ps:
            p.wait(5)

    def restart(self, node):
        for prog in ("vrrpd", "lbd"):
            p = self.proc(node, prog)
            if p is not None and p.poll() is None:
                self.lab.stop(p, signal.SIGKILL)
        self.start_node(node)

    def reload(self, conf_text, nodes=("lb1", "lb2"), timeout=5, services_ok=None):
        """Rewrite the pair's config file with conf_text and reload the running `nodes` (both
        daemons); returns once every listed node has reloaded without error and its services pass
        services_ok(services of lbd's status) (default: every backend's MAC known)."""
        self.conf_text = conf_text
        with open(self.conf, "w") as f:
            f.write(self.lab.config_text(conf_text))
        before = {n: self.lbd(n)["reloads"] for n in nodes}
        for n in nodes:
            r = self.lab.lbctl(n, "reload")
            assert r.returncode == 0, f"lbctl reload on {n}: {r.stdout} {r.stderr}"
        ok = services_ok or (lambda svcs: all(b["mac"] for s in svcs for b in s["backends"]))
        for n in nodes:
            def done(st, n=n):
                lbd = st["lbd"]
                return lbd["reloads"] > before[n] and not lbd.get("last_reload_error") and ok(lbd["services"])

            self.lab.wait_status(n, done, timeout, f"{n} reloaded with the new config, every backend ready")

    def flow_map(self, node, service="web", limit=5000):
        """{client ip:port: backend} of one service in node's connection table."""
        r = self.lab.lbctl(node, "flows", "--json", "--limit", str(limit), check=True, timeout=10)
        return {f["client"]: f["backend"] for f in json.loads(r.stdout).get("flows") or []
                if f["service"] == service}

    def cut_cable(self, node, up=False):
        """Take node's port on the bridge down (a pulled cable) or back up."""
        self.lab.link_set("br", self.lab.bridge_port(node), up)
        (self.cut.discard if up else self.cut.add)(node)

    def stop(self):
        """Stop the test's extra processes, kill every daemon of the pair and bring every link
        back: the next test starts clean."""
        for p in self.extra_procs:
            self.lab.stop(p, timeout=3)
        for p in self.procs.values():
            if p.poll() is None:
                self.lab.stop(p, signal.SIGKILL)
        for node in list(self.cut):
            self.cut_cable(node, True)
        for node in list(self.ifdown):
            self.lab.link_set(node, "eth0", True)
            self.ifdown.discard(node)

    # --- status
    def status(self, node):
        """`lbctl status --json` of node, also when one daemon is down (lbctl then exits 3 but
        still prints what the other said); None when neither answers."""
        try:
            r = self.lab.lbctl(node, "status", "--json")
            return json.loads(r.stdout) if r.stdout.lstrip().startswith("{") else None
        except Exception:
            return None

    def wait_json(self, node, subset, timeout=5, what=None, interval=0.02):
        """Poll node's status until it contains subset (lib.jsonmatch.json_cmp); returns it."""
        return wait_json(lambda: self.status(node), subset, timeout, what or f"status of {node}", interval)

    def vrrp(self, node):
        s = self.status(node)
        return s and s.get("vrrpd")

    def lbd(self, node):
        s = self.status(node)
        return s and s.get("lbd")

    def wait_vrrp(self, node, subset, timeout=5, what=None, interval=0.02):
        """Poll until node's vrrpd status contains subset (json_cmp); returns that vrrpd status."""
        return self.wait_json(node, {"vrrpd": subset}, timeout, what or f"vrrpd on {node}", interval)["vrrpd"]

    def wait_lbd(self, node, subset, timeout=5, what=None, interval=0.02):
        """Poll until node's lbd status contains subset (json_cmp); returns that lbd status."""
        return self.wait_json(node, {"lbd": subset}, timeout, what or f"lbd on {node}", interval)["lbd"]

    def wait_master(self, node, timeout=5):
        return self.wait_vrrp(node, {"state": "MASTER"}, timeout, f"{node} MASTER")

    def wait_backup(self, node, timeout=5):
        return self.wait_vrrp(node, {"state": "BACKUP"}, timeout, f"{node} BACKUP")

    def actives(self):
        """{node: lbd active?} of the nodes whose lbd answers."""
        out = {}
        for n in self.nodes:
            st = self.lbd(n)
            if st is not None:
                out[n] = bool(st.get("active"))
        return out

    def assert_single_owner(self, timeout=5, arp_checks=3):
        """Poll until exactly one lbd is active and no vrrpd claims MASTER but that node's; then
        ARP from the router must be answered by that node alone, every time. Returns the owner."""
        def settled():
            act = self.actives()
            owners = [n for n, a in act.items() if a]
            if len(owners) != 1:
                return None
            masters = []
            for n in self.nodes:
                v = self.vrrp(n)
                if v is not None and v["state"] == "MASTER":
                    masters.append(n)
                if v is not None and any("split brain" in w for w in v.get("warnings", [])):
                    return None
            return owners[0] if masters == owners else None

        owner = wait_for(settled, timeout, 0.05, "exactly one active lbd (and it the only MASTER)")
        mac = self.lab.mac(owner)
        for _ in range(arp_checks):
            ans = arp_probe(self.lab, "router", self.lab.vip, timeout=0.2)
            assert ans == [mac], f"ARP for the VIP answered by {ans}, want only {owner} ({mac})"
        return owner

    def sample_arp(self, seconds, timeout=0.1):
        """ARP probes from the router for `seconds`: the list of answers (one list per probe)."""
        out = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            out.append(arp_probe(self.lab, "router", self.lab.vip, timeout=timeout))
        return out


@contextlib.contextmanager
def make_pairs(lab, advert="100ms", cluster_extra=None, prepare=None):
    """The body of a suite's function-scoped `make_pair` fixture:

        @pytest.fixture
        def make_pair(lab):
            with make_pairs(lab, advert="50ms", cluster_extra={"lbd_timeout": "300ms"}) as make:
                yield make

    make(start=True, master="lb1", **Pair kwargs) -> a Pair, started (master MASTER, the other
    BACKUP) unless start=False. `advert` is the default advert_interval; `cluster_extra` the
    suite's default [cluster] keys, which a call's own cluster_extra adds to and overrides;
    `prepare(pair)` runs on each new pair before it starts. On leaving, every pair is stopped:
    its extra processes, every daemon, every link it took down."""
    pairs = []

    def make(start=True, master="lb1", **kw):
        kw.setdefault("advert", advert)
        extra = dict(cluster_extra or {})
        extra.update(kw.pop("cluster_extra", None) or {})
        kw["cluster_extra"] = extra
        p = Pair(lab, **kw)
        pairs.append(p)
        if prepare:
            prepare(p)
        if start:
            p.start(master=master)
        return p

    try:
        yield make
    finally:
        for p in pairs:
            p.stop()

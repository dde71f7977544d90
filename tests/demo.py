#!/usr/bin/python3
"""dsrlb demo: a balancer pair in network namespaces, with traffic and failovers.

    demo.py           the whole demo (about 30 s): lab, pair, traffic, a planned stop, a restart,
                      a crash, a summary; everything is torn down at the end (also on Ctrl-C)
    demo.py --up      build the lab and start the pair, then leave it running in the background
                      (state in /tmp/dsrlb-demo.json, log in /tmp/dsrlb-demo.log)
    demo.py --down    tear down what --up left running

Needs root (network namespaces) and the binaries in build/ (`make`). It uses the network-namespace
harness of the lab suites (tests/lab/lib): it never touches the host's own network.

The lab:   client 198.51.100.10 -- router -- LAN 192.0.2.0/24 (a bridge)
             lb1 192.0.2.11 (priority 150), lb2 192.0.2.12 (priority 100)
             be1 .21, be2 .22, be3 .23: backends, VIP 192.0.2.100/32 on lo (DSR)
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "lab"))

from lib import client, servers  # noqa: E402
from lib.lab import VIP6, Lab, LabError, WaitTimeout, list_netns, topology, v6_of, wait_for  # noqa: E402

STATE_FILE = os.environ.get("DSRLB_DEMO_STATE", "/tmp/dsrlb-demo.json")
LOG_FILE = os.environ.get("DSRLB_DEMO_LOG", "/tmp/dsrlb-demo.log")
NODES = (("lb1", "192.0.2.11", 150), ("lb2", "192.0.2.12", 100))
BACKENDS = ("192.0.2.21", "192.0.2.22", "192.0.2.23")
HOLD_CONNS = 20

# Timeline of the traffic phase, in seconds after the traffic starts. The probe and the long-lived
# connections run for TRAFFIC_S; every step below has bounded waits that fit its slot.
T_GRACEFUL = 2.5
T_RESTART = 6.5
T_CRASH = 10.5
T_HTTP_END = 14.0
TRAFFIC_S = 15.0


def config_text(key):
    """The README's example, plus a UDP service for the 1 ms probe (no health check: the backends
    have no TCP listener on 9000)."""
    lines = ["# dsrlb demo config: the README's example plus a UDP probe service", "[cluster]",
             "interface = eth0", f"key_file = {key}", "advert_interval = 100ms", ""]
    for name, addr, prio in NODES:
        lines += [f"[node {name}]", f"address = {addr}", f"priority = {prio}", ""]
    lines += ["[service web]", "vip = 192.0.2.100", "port = 80", "protocol = tcp", "check = http",
              f"backend = {BACKENDS[0]}", f"backend = {BACKENDS[1]} weight=2", f"backend = {BACKENDS[2]}", ""]
    lines += ["[service probe]", "vip = 192.0.2.100", "port = 9000", "protocol = udp", "check = none"]
    lines += [f"backend = {b}" for b in BACKENDS]
    lines += ["", "[service probe6]", f"vip = {VIP6}", "port = 9000", "protocol = udp", "check = none"]
    lines += [f"backend = {v6_of(b)}" for b in BACKENDS]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- output

class Out:
    def __init__(self):
        self.t0 = time.monotonic()
        self.step_no = 0

    def step(self, title, why=None):
        self.step_no += 1
        print(f"\n[{self.step_no}] {title}", flush=True)
        if why:
            print(f"    {why}", flush=True)

    def info(self, text):
        print(f"    {text}", flush=True)

    def block(self, text, indent="      | "):
        for line in text.rstrip("\n").splitlines():
            print(indent + line)
        sys.stdout.flush()


# ----------------------------------------------------------------------------- the pair

class Pair:
    """lbd and vrrpd on lb1 and lb2 of a lab, each daemon a tracked process of the lab."""

    def __init__(self, lab):
        self.lab = lab
        self.key = lab.keygen()
        self.conf = lab.write_config(config_text(self.key), "dsrlb.conf")
        self.procs = {}

    def status(self, node):
        """`lbctl status --json` on node: {"lbd": ..., "vrrpd": ...}, a part missing when that daemon
        does not answer; None when lbctl gave nothing."""
        r = self.lab.lbctl(node, "status", "--json")
        try:
            return json.loads(r.stdout)
        except ValueError:
            return None

    def vrrp_state(self, node):
        s = self.status(node)
        return (s or {}).get("vrrpd") and s["vrrpd"].get("state")

    def _start(self, node, prog, ready, timeout=5):
        start = self.lab.start_lbd if prog == "lbd" else self.lab.start_vrrpd
        p = self.procs[(node, prog)] = start(node, self.conf)

        def check():
            if p.poll() is not None:
                raise LabError(f"{prog} on {node} exited with {p.returncode}:\n"
                               + self.lab.log_tail(f"{node}-{prog}"))
            return ready(self.status(node))

        wait_for(check, timeout, 0.02, f"{prog} on {node} ready", ignore=(ValueError, KeyError, TypeError))
        return p

    def start_node(self, node):
        """lbd first (a vrrpd without its lbd goes to FAULT), then vrrpd."""
        self._start(node, "lbd", lambda s: s and s.get("lbd"))
        self._start(node, "vrrpd", lambda s: s and s.get("vrrpd") and s["vrrpd"]["state"] != "INIT")

    def signal(self, node, prog, sig):
        p = self.procs[(node, prog)]
        if p.poll() is None:
            os.kill(p.pid, sig)
        return p

    def wait_state(self, node, state, timeout):
        t = time.monotonic()
        wait_for(lambda: self.vrrp_state(node) == state, timeout, 0.02, f"vrrpd on {node} {state}")
        return time.monotonic() - t

    def kill_all(self):
        for p in self.procs.values():
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in self.procs.values():
            try:
                p.wait(3)
            except subprocess.TimeoutExpired:
                pass


def build_lab(out, keep=None):
    lab = Lab(topology(backends=3, spares=0, ipv6=True), keep=keep).build()
    out.info(f"namespaces {lab.prefix}{{client,router,br,lb1,lb2,be1,be2,be3}}, built in {lab.build_seconds} s")
    out.info("client 198.51.100.10 -- router 198.51.100.1 | 192.0.2.1 -- LAN bridge 192.0.2.0/24")
    out.info("lb1 192.0.2.11, lb2 192.0.2.12; backends be1-be3 192.0.2.21-23 with the VIP 192.0.2.100/32 on lo")
    out.info(f"IPv6 on the same LAN: 2001:db8::/64 (lb1 2001:db8::11, ...), clients 2001:db8:1::/64; "
             f"the IPv6 VIP {VIP6}/128 on the backends' lo")
    servers.start_all(lab, lab.backends)
    out.info("backend servers up: HTTP on 80 (answers with its name), UDP echo on 9000")
    return lab


def start_pair(out, lab):
    pair = Pair(lab)
    out.info(f"config {pair.conf} (key {pair.key}, made by `lbctl keygen`):")
    with open(pair.conf) as f:
        out.block(f.read(), "      ")
    for node, _a, _p in NODES:
        pair._start(node, "lbd", lambda s: s and s.get("lbd"))
    for node, _a, _p in NODES:
        pair._start(node, "vrrpd", lambda s: s and s.get("vrrpd") and s["vrrpd"]["state"] != "INIT")
    pair.wait_state("lb1", "MASTER", 5)
    pair.wait_state("lb2", "BACKUP", 5)
    return pair


# ----------------------------------------------------------------------------- traffic

class HttpLoop(threading.Thread):
    """Batches of HTTP GETs from the client (a new connection each) until stopped; bounded."""

    def __init__(self, lab, batch=20, max_batches=400):
        super().__init__(daemon=True)
        self.lab = lab
        self.batch = batch
        self.max_batches = max_batches
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.failed = 0
        self.kinds = {}
        self.by_backend = {}
        self.error = None

    def run(self):
        for _ in range(self.max_batches):
            if self.stop_ev.is_set():
                break
            try:
                r = client.http_gets(self.lab, self.batch, timeout=3.0, deadline=30.0)
            except Exception as e:  # the lab going away under us ends the loop
                self.error = e
                break
            with self.lock:
                self.ok += r["ok"]
                self.failed += r["errors"]
                for k, v in r.get("error_kinds", {}).items():
                    self.kinds[k] = self.kinds.get(k, 0) + v
                for k, v in r["counts"].items():
                    self.by_backend[k] = self.by_backend.get(k, 0) + v

    def snapshot(self):
        with self.lock:
            return self.ok, self.failed

    def finish(self, timeout=15):
        self.stop_ev.set()
        self.join(timeout)


def sleep_until(t):
    d = t - time.monotonic()
    if d > 0:
        time.sleep(d)


def show_status(out, pair, node, title=None):
    r = pair.lab.lbctl(node, "status")
    ns = pair.lab.ns(node)
    out.info(title or f"`lbctl status` on {node}:")
    out.info(f"$ ip netns exec {ns} build/lbctl --run-dir {pair.lab.run_dir(node)} status")
    out.block(r.stdout if r.stdout.strip() else r.stderr)


def settle(pair, node, pred, timeout=1.5):
    """Wait (bounded) until node's status satisfies pred, so what we print is the settled view
    and not the instant of a transition; the status is printed either way."""
    try:
        wait_for(lambda: pred(pair.status(node)), timeout, 0.02, f"{node} settled",
                 ignore=(ValueError, KeyError, TypeError, AttributeError))
    except WaitTimeout:
        pass


def peer_state(s):
    return ((s or {}).get("vrrpd") or {}).get("peer", {}).get("state")


def http_line(http):
    ok, failed = http.snapshot()
    return f"HTTP requests so far: {ok} ok, {failed} failed"


def attribute(outages, events):
    """Assign each probe outage to the last event before it: {event: [outages]}."""
    res = {name: [] for name, _t in events}
    res["steady state"] = []
    for o in outages:
        start = o["start_ms"] / 1000 + 0.05
        owner = "steady state"
        for name, t in events:
            if t <= start:
                owner = name
        res[owner].append(o)
    return res


# ----------------------------------------------------------------------------- the demo

def demo():
    out = Out()
    print("dsrlb demo: a Direct Server Return load-balancer pair in network namespaces.")
    print("Two balancers (lb1, lb2) share the VIP 192.0.2.100; only the MASTER answers ARP for it and forwards.")
    print("Backends answer the client directly. We fail the pair over three times under traffic.")
    lab = pair = http = None
    ok = False
    try:
        out.step("Build the lab", "one network namespace per host, wired by veth pairs and a bridge")
        lab = build_lab(out)

        out.step("Start lbd and vrrpd on both balancers",
                 "lbd forwards frames; vrrpd elects the MASTER (highest priority) and tells its lbd to go active")
        pair = start_pair(out, lab)
        out.info("lb1 is MASTER (priority 150), lb2 is BACKUP (priority 100)")

        out.step("Start client traffic through the VIP",
                 f"an HTTP request loop, {HOLD_CONNS} long-lived connections (1 byte / 100 ms each), "
                 "a UDP probe every 1 ms")
        probe = client.start_udp_probe(lab, TRAFFIC_S, interval=0.001)
        probe6 = client.start_udp_probe(lab, TRAFFIC_S, interval=0.001, dst=VIP6)
        probe.wait_event("started", timeout=10)
        probe6.wait_event("started", timeout=10)
        t0 = time.monotonic()
        hold = client.start_hold(lab, HOLD_CONNS, TRAFFIC_S - 1, stall=3.0)
        http = HttpLoop(lab)
        http.start()
        probe.wait_event("answered", timeout=3)
        probe6.wait_event("answered", timeout=3)
        ev = hold.wait_event("connected", timeout=5)
        out.info(f"probe answered; {ev['conns']} long-lived connections open")
        events = []
        takeover = {}

        out.step("Look at the pair with lbctl status",
                 "each node shows itself and what it hears of its peer; the MASTER owns the VIP")
        show_status(out, pair, "lb1")
        show_status(out, pair, "lb2")
        info = pair.status("lb1")["lbd"]
        out.info(f"lb1 forwards {info['flows']} flows now; lb2 received them by connection sync")

        sleep_until(t0 + T_GRACEFUL)
        out.step("Planned stop of lb1: SIGTERM to vrrpd, then to lbd",
                 "vrrpd announces priority 0 and keeps forwarding until lb2 is MASTER: a lossless handover")
        events.append(("planned stop of lb1", time.monotonic() - t0))
        t = time.monotonic()
        vp = pair.signal("lb1", "vrrpd", signal.SIGTERM)
        rc = vp.wait(8)
        out.info(f"vrrpd on lb1 exited with {rc} after {time.monotonic() - t:.2f} s")
        pair.wait_state("lb2", "MASTER", 3)
        takeover["planned stop of lb1"] = time.monotonic() - t
        out.info(f"lb2 is MASTER {time.monotonic() - t:.2f} s after the SIGTERM")
        lp = pair.signal("lb1", "lbd", signal.SIGTERM)
        out.info(f"lbd on lb1 exited with {lp.wait(5)}")
        show_status(out, pair, "lb2", "`lbctl status` on the new master lb2:")
        out.info(http_line(http))

        sleep_until(t0 + T_RESTART)
        out.step("Start lb1 again",
                 "it comes back as BACKUP, receives the connection table from lb2, then (preempt = yes, "
                 "higher priority) takes the VIP back")
        t = time.monotonic()
        pair.start_node("lb1")
        events.append(("lb1 back, preempts", time.monotonic() - t0))
        out.info(f"lb1 started: {pair.vrrp_state('lb1')}")
        pair.wait_state("lb1", "MASTER", 4)
        pair.wait_state("lb2", "BACKUP", 2)
        takeover["lb1 back, preempts"] = time.monotonic() - t
        out.info(f"lb1 is MASTER again {time.monotonic() - t:.2f} s after its start; lb2 is BACKUP")
        settle(pair, "lb1", lambda s: peer_state(s) == "BACKUP")
        show_status(out, pair, "lb1", "`lbctl status` on lb1:")
        out.info(http_line(http))

        sleep_until(t0 + T_CRASH)
        out.step("Crash lb1: kill -9 vrrpd and lbd",
                 "no goodbye this time: lb2 notices the missing heartbeats (3 x 100 ms + skew), takes over "
                 "and sends gratuitous ARP")
        events.append(("crash of lb1", time.monotonic() - t0))
        t = time.monotonic()
        for prog in ("vrrpd", "lbd"):
            pair.signal("lb1", prog, signal.SIGKILL)
        for prog in ("vrrpd", "lbd"):
            pair.procs[("lb1", prog)].wait(3)
        pair.wait_state("lb2", "MASTER", 3)
        takeover["crash of lb1"] = time.monotonic() - t
        master_down = (pair.status("lb2") or {}).get("vrrpd", {}).get("master_down_ms", "?")
        out.info(f"lb2 is MASTER {time.monotonic() - t:.2f} s after the crash")
        settle(pair, "lb2", lambda s: peer_state(s) == "SILENT")
        show_status(out, pair, "lb2", "`lbctl status` on lb2:")
        out.info(http_line(http))

        sleep_until(t0 + T_HTTP_END)
        out.step("Collect the results", "the probe and the long-lived connections end on their own")
        http.finish()
        pr = probe.result()
        pr6 = probe6.result()
        hr = hold.result()

        print("\n==== Summary " + "=" * 60)
        per = attribute(pr["outages"], events)
        print(f"UDP probe (one flow, 1 ms interval): {pr['sent']} sent, {pr['answered']} answered, "
              f"{pr['lost']} lost, answered by {len(pr['by_backend'])} backend(s)")
        print(f"IPv6 UDP probe to {VIP6} (1 ms): {pr6['sent']} sent, {pr6['answered']} answered, "
              f"{pr6['lost']} lost, longest outage {pr6['longest_outage_ms']:.1f} ms")
        print(f"  {'failover':24} {'new master after':>16} {'longest outage':>15} {'probes lost':>12}")
        for name, _t in events + [("steady state", 0)]:
            os_ = per[name]
            if name == "steady state" and not os_:
                continue
            longest = max((o["ms"] for o in os_), default=0.0)
            lost = sum(o["lost"] for o in os_)
            tk = f"{takeover[name]:.2f} s" if name in takeover else "-"
            print(f"  {name:24} {tk:>16} {longest:12.1f} ms {lost:12d}")
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(http.kinds.items()))
        by_be = ", ".join(f"{k} {v}" for k, v in sorted(http.by_backend.items()))
        print(f"HTTP requests: {http.ok} ok, {http.failed} failed{f' ({kinds})' if kinds else ''}"
              f"  [by backend: {by_be}]")
        bad = {k: v for k, v in hr["states"].items() if k != "ok"}
        print(f"Long-lived connections: {hr['ok']} of {hr['conns']} survived all three failovers, "
              f"{hr['reset']} reset" + (f", other: {bad}" if set(bad) - {"reset"} else ""))
        if events[-1][1] > TRAFFIC_S - 2:
            print(f"note: this machine was slow; the crash came {events[-1][1]:.1f} s into {TRAFFIC_S:.0f} s of "
                  "traffic, so its numbers may be incomplete")
        print("-" * 73)
        print("A planned stop and a preemption hand the VIP over without loss: the old master forwards")
        print("until the new one has it. A crash costs the failure detection time: lb2 waits")
        print(f"master-down = 3 x advert_interval + skew = {master_down} ms of silence before it takes over.")
        print("Established connections keep their backend through every failover: the standby lbd holds")
        print("a copy of the connection table (connection sync).")
        print("=" * 73)
        ok = True
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
    except (Exception, WaitTimeout) as e:
        print(f"\ndemo failed: {e}", file=sys.stderr)
        if lab is not None:
            lab.failed = True
            print(lab.log_tails(20), file=sys.stderr)
    finally:
        if http is not None:
            http.stop_ev.set()
        if pair is not None:
            pair.kill_all()
        if lab is not None:
            print("\n[*] Tear down: stop every process, delete the namespaces", flush=True)
            lab.destroy()
            print("    done", flush=True)
    return 0 if ok else 1


# ----------------------------------------------------------------------------- demo-up / demo-down

def _start_time(pid):
    """Start time of a live process (None when gone or a zombie): with the pid it names a process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return None if fields[0] in ("Z", "X") else fields[19]
    except (OSError, IndexError):
        return None


def _alive(rec):
    return rec and _start_time(rec["pid"]) == rec["start"]


def _read_state():
    try:
        with open(STATE_FILE) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def up_owner():
    """The background process that owns a demo-up lab: builds it, writes the state file, then waits
    for SIGTERM (from --down) and tears everything down. Because it stays alive, the lab harness's
    reap_stale() leaves the lab alone (its owner.json names this process)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    out = Out()
    lab = pair = None
    try:
        out.step("Build the lab")
        lab = build_lab(out)
        out.step("Start the pair")
        pair = start_pair(out, lab)
        procs = {f"{n}-{p}": pr.pid for (n, p), pr in pair.procs.items()}
        pids = [{"name": k, "pid": v, "start": _start_time(v)} for k, v in procs.items()]
        with lab._procs_lock:
            others = [p for p in lab._procs if p.returncode is None and p.pid not in procs.values()]
        pids += [{"name": getattr(p, "lab_log", None) or "proc", "pid": p.pid, "start": _start_time(p.pid)}
                 for p in others]
        state = {"prefix": lab.prefix, "owner": {"pid": os.getpid(), "start": _start_time(os.getpid())},
                 "tmpdir": lab.tmpdir, "logdir": lab.logdir, "conf": pair.conf, "key": pair.key,
                 "namespaces": list(lab._namespaces), "pids": pids, "repo": REPO,
                 "run_dirs": {n: lab.run_dir(n) for n, _a, _p in NODES}}
        tmp = STATE_FILE + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f, indent=1)
        os.replace(tmp, STATE_FILE)
        print("ready", flush=True)
        while not stop.wait(1):
            pass
        print("SIGTERM: tearing down", flush=True)
    except Exception as e:
        print(f"demo-up failed: {e}", flush=True)
        if lab is not None:
            lab.failed = True
            print(lab.log_tails(20), flush=True)
        return 1
    finally:
        if pair is not None:
            pair.kill_all()
        if lab is not None:
            lab.destroy()
        st = _read_state()
        if st and st.get("owner", {}).get("pid") == os.getpid():
            os.unlink(STATE_FILE)
    return 0


def up():
    st = _read_state()
    if st and _alive(st.get("owner")):
        print(f"a demo lab is already up (prefix {st['prefix']}, owner pid {st['owner']['pid']}); "
              "`make demo-down` first", file=sys.stderr)
        return 1
    if st:
        print("removing the state of a demo lab whose owner is gone: running --down first", file=sys.stderr)
        down()
    log = open(LOG_FILE, "w")
    owner = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--up-owner"], stdin=subprocess.DEVNULL,
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO)
    log.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        st = _read_state()
        if st and st["owner"]["pid"] == owner.pid:
            break
        if owner.poll() is not None:
            print(f"demo-up failed (exit {owner.returncode}); {LOG_FILE}:", file=sys.stderr)
            with open(LOG_FILE, errors="replace") as f:
                print(f.read()[-6000:], file=sys.stderr)
            return 1
        time.sleep(0.1)
    else:
        print(f"demo-up: the lab was not ready within 60 s; see {LOG_FILE}; stopping it", file=sys.stderr)
        owner.terminate()
        return 1
    with open(LOG_FILE, errors="replace") as f:
        sys.stdout.write(f.read().replace("\nready\n", "\n"))
    p = st["prefix"]
    lbctl = os.path.join(REPO, "build", "lbctl")
    pids = {x["name"]: x["pid"] for x in st["pids"]}
    have_curl = shutil.which("curl") is not None

    def daemon(prog):
        return (f"{os.path.join(REPO, 'build', prog)} -c {st['conf']} -n lb1 --run-dir {st['run_dirs']['lb1']} -f "
                f">>{os.path.join(st['logdir'], 'lb1-' + prog + '.log')} 2>&1")
    print(f"""
The demo lab is up and stays up (owner pid {st['owner']['pid']}; state in {STATE_FILE}).

  status of each node:
    ip netns exec {p}lb1 {lbctl} --run-dir {st['run_dirs']['lb1']} status
    ip netns exec {p}lb2 {lbctl} --run-dir {st['run_dirs']['lb2']} status
  a request from the client, through the VIP:
    ip netns exec {p}client {'curl -s http://192.0.2.100/; echo' if have_curl else
                             f'python3 {REPO}/tests/lab/lib/client.py http --count 1'}
  many requests, and a 1 ms UDP probe for 5 s (prints the longest outage):
    ip netns exec {p}client python3 {REPO}/tests/lab/lib/client.py http --count 100
    ip netns exec {p}client python3 {REPO}/tests/lab/lib/client.py udp --duration 5
  a planned stop of lb1 (lossless handover), or a crash:
    kill -TERM {pids.get('lb1-vrrpd')}                # vrrpd on lb1
    kill -9 {pids.get('lb1-vrrpd')} {pids.get('lb1-lbd')}         # vrrpd and lbd on lb1
  start lb1's daemons again (lbd first):
    ip netns exec {p}lb1 setsid {daemon('lbd')} &
    ip netns exec {p}lb1 setsid {daemon('vrrpd')} &
  a shell on a host: ip netns exec {p}lb1 bash
  config {st['conf']}, daemon logs in {st['logdir']}

The background process {st['owner']['pid']} owns the lab; while it runs, test sessions leave the lab alone.
  make demo-down     (or: python3 tests/demo.py --down) stops it, which ends everything running in the
                     lab's namespaces (a shell opened there too) and deletes them.""")
    return 0


def down():
    st = _read_state()
    if not st:
        print(f"no demo lab recorded in {STATE_FILE}; nothing to do")
        return 0
    prefix = st["prefix"]
    owner = st.get("owner")
    if _alive(owner):
        print(f"stopping the demo lab {prefix} (owner pid {owner['pid']})")
        os.kill(owner["pid"], signal.SIGTERM)
        try:
            wait_for(lambda: not _alive(owner), 20, 0.1, "the demo lab's owner to exit")
        except WaitTimeout:
            print("the owner did not exit; killing it", file=sys.stderr)
            os.kill(owner["pid"], signal.SIGKILL)
    # Whatever is left (the owner was killed, or did not finish): the recorded processes, if they are
    # still the same processes, then the namespaces of this prefix.
    for rec in st.get("pids", []):
        if _alive(rec):
            print(f"killing {rec['name']} (pid {rec['pid']})")
            try:
                os.kill(rec["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
    left = [ns for ns in list_netns() if ns.startswith(prefix)]
    if left:
        print(f"deleting namespaces {' '.join(left)}")
        subprocess.run(["ip", "-force", "-batch", "-"], input="".join(f"netns del {n}\n" for n in left),
                       capture_output=True, text=True, timeout=30)
    left = [ns for ns in list_netns() if ns.startswith(prefix)]
    tmpdir = st.get("tmpdir") or ""
    if tmpdir.startswith("/") and os.path.basename(tmpdir).startswith(f"dsrlb-{prefix[:-1]}-"):
        shutil.rmtree(tmpdir, ignore_errors=True)
    try:
        os.unlink(STATE_FILE)
    except FileNotFoundError:
        pass
    if left:
        print(f"namespaces still present: {left}", file=sys.stderr)
        return 1
    print("demo lab is down")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--up", action="store_true", help="leave the lab and the pair running")
    g.add_argument("--down", action="store_true", help="tear down what --up left running")
    g.add_argument("--up-owner", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("the demo needs root (network namespaces)", file=sys.stderr)
        return 1
    if a.down:
        return down()
    for b in ("lbd", "vrrpd", "lbctl"):
        if not os.access(os.path.join(REPO, "build", b), os.X_OK):
            print(f"build/{b} is missing: run make", file=sys.stderr)
            return 1
    if a.up:
        return up()
    if a.up_owner:
        return up_owner()
    return demo()


if __name__ == "__main__":
    sys.exit(main())

"""The operator's user story, end to end, with the documented commands only (README.md "Running a
pair", docs/deploy.md sections 3 to 9), in the order an operator meets them:

    lbctl keygen KEY                    the cluster key (mode 0600)
    examples/dsrlb.conf                 as shipped, except key_file (see adapt_example())
    lbd -t -c FILE; vrrpd -t -c FILE    check the file
    lbd -c FILE; vrrpd -c FILE          on lb1 and lb2, WITHOUT -n: each node is found by its address
    lbctl status [--json]               roles, VIP owner, backends, peer, digest, sync; both nodes named
    curl http://VIP/                    traffic through the VIP (client namespace, through the router)
    lbctl drain / undrain / flows       backend maintenance on both nodes
    systemctl stop vrrpd lbd            (SIGTERM vrrpd, then lbd) on the master: lossless handover
    systemctl start vrrpd               (lbd, then vrrpd) the node comes back and preempts

The steps share one running pair (module scope) and run in file order; once a step has failed the
later ones are skipped rather than failing for the same reason. The lbctl error cases (missing,
dead, confused and silent control sockets) need no lab and run on their own.

The daemons run with --run-dir (a per-node directory of the lab, instead of /run/dsrlb which the
lab must not touch) and -f (the lab keeps them as children, as systemd's Type=simple would).
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from lib import client
from lib.jsonmatch import wait_json
from lib.lab import REPO, VIP, topology, wait_for

TOPOLOGY = topology()  # lb1 .11, lb2 .12, be1..be3 .21..23 (be4 spare): examples/dsrlb.conf's network
EXAMPLE = os.path.join(REPO, "examples", "dsrlb.conf")
NODES = {"lb1": ("192.0.2.11", 150), "lb2": ("192.0.2.12", 100)}
WEB = {"be1": ("192.0.2.21", 1), "be2": ("192.0.2.22", 2), "be3": ("192.0.2.23", 1)}
LBCTL_TIMEOUT_S = 3.0  # lbctl/lbctl.c LBCTL_TIMEOUT_MS


# ----------------------------------------------------------------------------- the config

def adapt_example(key_path):
    """examples/dsrlb.conf with the one change the lab needs: key_file points at the key made by
    `lbctl keygen` in the lab's tmp dir (the lab must not write /etc/dsrlb). Everything else stays as
    shipped: the lab's LAN is the example's (interface eth0, lb1 192.0.2.11 / lb2 192.0.2.12,
    backends 192.0.2.21-23, VIP 192.0.2.100, router 192.0.2.1), and the backends serve HTTP on
    port 80 on 0.0.0.0, which the default TCP health check connects to."""
    with open(EXAMPLE) as f:
        text = f.read()
    old = "key_file = /etc/dsrlb/cluster.key\n"
    assert text.count(old) == 1, f"{EXAMPLE} no longer has exactly one line {old.strip()!r}"
    return text.replace(old, f"key_file = {key_path}\n")


# ----------------------------------------------------------------------------- the story's pair

class Story:
    """The pair as an operator runs it: one config file per node (a byte-for-byte copy), the
    daemons started without -n, stopped the way systemd's units stop them."""

    def __init__(self, lab):
        self.lab = lab
        self.procs = {}
        self.confs = {}
        self.key = None

    def lbctl(self, node, *args, timeout=10):
        return self.lab.run(node, [self.lab.bin("lbctl"), "--run-dir", self.lab.run_dir(node)] + list(args),
                            check=False, timeout=timeout)

    def status(self, node):
        """`lbctl status --json` (also when one daemon is down: lbctl then exits 3 but prints what
        the other said); None when neither answers."""
        r = self.lbctl(node, "status", "--json")
        return json.loads(r.stdout) if r.stdout.lstrip().startswith("{") else None

    def start(self, node, prog):
        """`PROG -c FILE --run-dir DIR -f` in node's namespace, no -n; returns once it answers."""
        cmd = [self.lab.bin(prog), "-c", self.confs[node], "--run-dir", self.lab.run_dir(node), "-f"]
        p = self.procs[(node, prog)] = self.lab.popen(node, cmd, log=f"{node}-{prog}")

        def ready():
            if p.poll() is not None:
                raise AssertionError(f"{prog} on {node} exited with {p.returncode}:\n"
                                     + self.lab.log_tail(f"{node}-{prog}"))
            s = self.status(node)
            if prog == "lbd":
                return s and s["lbd"]
            return s and s["vrrpd"] and s["vrrpd"]["state"] != "INIT"

        wait_for(ready, 10, interval=0.05, what=f"{prog} on {node} answering", ignore=(ValueError,))
        return p

    def start_node(self, node):
        """What `systemctl start vrrpd` does: lbd first (Wants=, After=lbd.service), then vrrpd."""
        self.start(node, "lbd")
        self.start(node, "vrrpd")

    def stop_node(self, node, timeout=10):
        """What `systemctl stop vrrpd lbd` does: SIGTERM vrrpd and wait for it to exit (the
        graceful handover), then SIGTERM lbd. Returns the exit codes and vrrpd's stop time."""
        rcs = {}
        t0 = time.monotonic()
        for prog in ("vrrpd", "lbd"):
            p = self.procs[(node, prog)]
            assert p.poll() is None, f"{prog} on {node} is not running (exit {p.returncode})"
            os.kill(p.pid, signal.SIGTERM)
            try:
                rcs[prog] = p.wait(timeout)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"{prog} on {node} still runs {timeout}s after SIGTERM") from None
            if prog == "vrrpd":
                rcs["vrrpd_seconds"] = round(time.monotonic() - t0, 3)
        return rcs

    def kill_all(self):
        for p in self.procs.values():
            if p.poll() is None:
                self.lab.stop(p, signal.SIGKILL)


def pair_problems(st, master, backup):
    """What is wrong with the statuses {node: status json} for a healthy pair with `master` active."""
    bad = []
    digests = set()
    for node, other in ((master, backup), (backup, master)):
        s = st.get(node)
        if s is None:
            bad.append(f"{node}: lbctl status gave nothing")
            continue
        v, l = s.get("vrrpd"), s.get("lbd")
        if v is None or l is None:
            bad.append(f"{node}: a daemon is not reachable: {s.get('errors')}")
            continue
        if s["errors"]:
            bad.append(f"{node}: errors {s['errors']}")
        addr, prio = NODES[node]
        # Found by its address: the node name comes from the config's [node] whose address is local.
        if (v["node"], l["node"], v["address"], v["priority"]) != (node, node, addr, prio):
            bad.append(f"{node}: vrrpd runs as {v['node']} {v['address']} prio {v['priority']}, lbd as {l['node']}")
        want = "MASTER" if node == master else "BACKUP"
        if v["state"] != want or v["effective_priority"] != prio:
            bad.append(f"{node}: vrrpd {v['state']} (advertising {v['effective_priority']}), want {want} {prio}")
        if v["master"] != master:
            bad.append(f"{node}: vrrpd.master = {v['master']!r}, want {master}")
        if v["advert_interval_ms"] != 100 or not v["preempt"]:
            bad.append(f"{node}: advert {v['advert_interval_ms']} ms preempt {v['preempt']}: not the example's")
        if not v["lbd_healthy"] or not v["link_up"] or v["fault_reason"]:
            bad.append(f"{node}: lbd_healthy {v['lbd_healthy']} link_up {v['link_up']} fault {v['fault_reason']!r}")
        if v["warnings"]:
            bad.append(f"{node}: vrrpd warnings {v['warnings']}")
        p = v["peer"]
        pwant = "MASTER" if other == master else "BACKUP"
        if (p["name"], p["address"], p["state"]) != (other, NODES[other][0], pwant):
            bad.append(f"{node}: peer {p['name']} {p['address']} {p['state']}, want {other} {pwant}")
        if not 0 <= p["last_heard_ms"] < v["master_down_ms"]:
            bad.append(f"{node}: peer last heard {p['last_heard_ms']} ms ago (master_down {v['master_down_ms']})")
        if not p["digest_match"] or not p["lbd_healthy"]:
            bad.append(f"{node}: peer digest_match {p['digest_match']} lbd_healthy {p['lbd_healthy']}")
        active = node == master
        if l["active"] != active or l["mode_reason"] != "vrrpd":
            bad.append(f"{node}: lbd active {l['active']} ({l['mode_reason']}), want {active} (vrrpd)")
        if l["vips"] != [VIP]:
            bad.append(f"{node}: lbd vips {l['vips']}")
        if l["sync"]["state"] != "established":
            bad.append(f"{node}: sync {l['sync']['state']}")
        svcs = {x["name"]: x for x in l["services"]}
        if list(svcs) != ["web"]:
            bad.append(f"{node}: services {list(svcs)}")
        else:
            web = svcs["web"]
            if (web["vip"], web["port"], web["protocol"], web["all_down"]) != (VIP, 80, "tcp", False):
                bad.append(f"{node}: service web {web['vip']}:{web['port']}/{web['protocol']} all_down {web['all_down']}")
            got = {b["address"]: b for b in web["backends"]}
            for be, (baddr, weight) in WEB.items():
                b = got.get(baddr)
                if b is None:
                    bad.append(f"{node}: backend {baddr} missing")
                elif (b["state"], b["healthy"], b["weight"], b["answers_vip_arp"]) != ("up", True, weight, False) \
                        or not b["mac"]:
                    bad.append(f"{node}: backend {baddr} state {b['state']} healthy {b['healthy']} "
                               f"weight {b['weight']} mac {b['mac']!r} answers_vip_arp {b['answers_vip_arp']}")
        digests |= {v["config_digest"], l["config_digest"]}
    if len(digests) > 1:
        bad.append(f"config digests differ: {sorted(digests)}")
    return bad


def wait_pair(story, master, backup, timeout=15):
    """Poll both nodes until pair_problems() finds nothing; returns the statuses."""
    last = {"problems": ["never polled"]}

    def ok():
        st = {n: story.status(n) for n in (master, backup)}
        last["problems"] = pair_problems(st, master, backup)
        return st if not last["problems"] else None

    try:
        return wait_for(ok, timeout, interval=0.1, what=f"{master} MASTER / {backup} BACKUP, all healthy",
                        ignore=(ValueError,))
    except AssertionError:
        raise AssertionError(f"pair not healthy after {timeout}s:\n  " + "\n  ".join(last["problems"])) from None


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def story(lab, backend_servers):
    s = Story(lab)
    yield s
    # Leave as `systemctl stop` would, where still possible; the lab kills whatever is left.
    for node in NODES:
        for prog in ("vrrpd", "lbd"):
            p = s.procs.get((node, prog))
            if p is not None and p.poll() is None:
                lab.stop(p, signal.SIGTERM, timeout=5)
    s.kill_all()


@pytest.fixture
def step(lab, story):
    """A step of the story: skipped once an earlier step has failed."""
    if lab.failed:
        pytest.skip("an earlier step of the user story failed")
    return story


# ----------------------------------------------------------------------------- the story

def test_keygen_and_config_check(lab, step):
    # deploy.md section 3: lbctl keygen on one node; the file is 64 hex digits, mode 0600.
    key = os.path.join(lab.tmpdir, "conf", "cluster.key")
    r = lab.run("lb1", [lab.bin("lbctl"), "keygen", key])
    assert os.stat(key).st_mode & 0o777 == 0o600
    with open(key) as f:
        assert re.fullmatch(r"[0-9a-f]{64}\n?", f.read())
    assert "wrote a new cluster key" in r.stdout
    again = lab.run("lb1", [lab.bin("lbctl"), "keygen", key], check=False)
    assert again.returncode != 0 and len(again.stderr.strip().splitlines()) == 1, "keygen overwrote a key"
    step.key = key
    # Section 4: one file, copied byte for byte to the other node.
    text = adapt_example(key)
    first = lab.write_config(text, name="dsrlb-lb1.conf")
    step.confs = {"lb1": first, "lb2": os.path.join(lab.tmpdir, "conf", "dsrlb-lb2.conf")}
    shutil.copyfile(first, step.confs["lb2"])
    for node, conf in step.confs.items():
        for prog in ("lbd", "vrrpd"):
            r = lab.run(node, [lab.bin(prog), "-t", "-c", conf], check=False)
            assert r.returncode == 0 and r.stdout.strip() == f"{conf}: ok", \
                f"{prog} -t on {node}: exit {r.returncode}\n{r.stdout}{r.stderr}"
    # A broken copy is refused with file:line (what ExecStartPre relies on).
    broken = lab.write_config(text.replace("advert_interval = 100ms", "advert_interval = 4ms"), name="broken.conf")
    line = text.splitlines().index("advert_interval = 100ms") + 1
    for prog in ("lbd", "vrrpd"):
        r = lab.run("lb1", [lab.bin(prog), "-t", "-c", broken], check=False)
        assert r.returncode == 1 and r.stderr.startswith(f"{broken}:{line}: advert_interval"), (prog, r.stderr)


def test_pair_starts_by_address(lab, step):
    # README "Running a pair": lbd, then vrrpd, on each node; no -n.
    for node in NODES:
        step.start_node(node)
    st = wait_pair(step, "lb1", "lb2")
    assert st["lb1"]["lbd"]["mac"] == lab.mac("lb1")
    for be, (addr, _w) in WEB.items():
        macs = {b["address"]: b["mac"] for b in st["lb1"]["lbd"]["services"][0]["backends"]}
        assert macs[addr] == lab.mac(be), f"lbd resolved {addr} to {macs[addr]}, {be} is {lab.mac(be)}"
    # The logs say which node each daemon found.
    for node in NODES:
        for prog, said in (("lbd", f"node {node} on eth0"), ("vrrpd", f"node {node} priority {NODES[node][1]}")):
            assert said in lab.log_tail(f"{node}-{prog}", 200), f"{prog} on {node} never says {said!r}"


def test_status_text_names_both_nodes_and_master(lab, step):
    for node, other, state, other_state in (("lb1", "lb2", "MASTER", "BACKUP"), ("lb2", "lb1", "BACKUP", "MASTER")):
        r = step.lbctl(node, "status")
        out = r.stdout
        assert r.returncode == 0 and not r.stderr, f"exit {r.returncode}: {r.stderr}"
        want = [rf"^node {node}\b.*\beth0\b", rf"^\s+vrrpd\s+{state}\b",
                rf"^\s+peer\s+{other}\s+{re.escape(NODES[other][0])}\s+{other_state}\b.*\bconfig same\b",
                r"^\s+master\s+lb1\s*$",
                rf"^\s+lbd\s+{'ACTIVE' if node == 'lb1' else 'standby'}\b",
                rf"^\s+vips\s+{re.escape(VIP)}" + (r"  \(owned by this node\)" if node == "lb1" else r"\s*$"),
                r"^\s+sync\s+established\b", r"^service web\s+192\.0\.2\.100:80/tcp"]
        want += [rf"^\s+{re.escape(a)}\s+up\s+([0-9a-f]{{2}}:){{5}}[0-9a-f]{{2}}\s+{w}\b" for a, w in WEB.values()]
        missing = [w for w in want if not re.search(w, out, re.M)]
        assert not missing, f"lbctl status on {node} lacks {missing}:\n{out}"
        assert "WARNING" not in out, out


def test_traffic_through_vip(lab, step):
    r = client.http_gets(lab, 60, parallel=4)
    assert r["ok"] == 60 and r["errors"] == 0, r
    assert set(r["counts"]) == set(WEB), f"not every backend served: {r['counts']}"
    st = step.status("lb1")["lbd"]
    assert st["services"][0]["forwarded"] > 0 and st["counters"]["forwarded"] > 0, st["counters"]


def test_flows(lab, step):
    r = step.lbctl("lb1", "flows", "--json")
    assert r.returncode == 0, r.stderr
    flows = json.loads(r.stdout)
    assert flows["flows_total"] > 0 and flows["flows"], flows
    backends = {a for a, _w in WEB.values()}
    # The default idle timeouts (docs/config.md) by state: idle_ms + expires_ms is the flow's timeout.
    timeout_ms = {"SYN": 60_000, "EST": 900_000, "FIN": 120_000, "CLOSED": 120_000}
    for f in flows["flows"]:
        assert f["service"] == "web" and f["vip"].split(":")[0] == VIP and f["protocol"] == "tcp", f
        assert f["backend"].split(":")[0] in backends and f["client"].startswith("198.51.100."), f
        assert 0 < f["expires_ms"] and f["idle_ms"] + f["expires_ms"] == timeout_ms[f["state"]], f
    text = step.lbctl("lb1", "flows", "--limit", "5")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].split()[:4] == ["client", "vip", "proto", "backend"], text.stdout
    m = re.fullmatch(r"\((\d+) of (\d+) flows\)", lines[-1])
    assert m and int(m.group(1)) == len(lines) - 2 == min(5, int(m.group(2))), text.stdout
    # The backup has the flows too, through sync.
    wait_for(lambda: json.loads(step.lbctl("lb2", "flows", "--json").stdout)["flows_total"] > 0, 5,
             what="flows synced to lb2")


def test_drain_and_undrain(lab, step):
    be1 = WEB["be1"][0]
    # deploy.md section 9: a drain is a runtime setting of the local lbd: run it on both nodes.
    for node in NODES:
        r = step.lbctl(node, "drain", "web", be1)
        assert r.returncode == 0 and r.stdout.strip() == "ok", (node, r.stdout, r.stderr)

    def state(node, addr):
        web = step.status(node)["lbd"]["services"][0]
        return next(b for b in web["backends"] if b["address"] == addr)

    for node in NODES:
        b = state(node, be1)
        assert b["state"] == "draining" and b["draining"], (node, b)
    r = client.http_gets(lab, 40, parallel=4)
    assert r["ok"] == 40 and "be1" not in r["counts"], f"new flows reached a drained backend: {r}"
    bad = step.lbctl("lb1", "drain", "web", "192.0.2.99")
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1, (bad.returncode, bad.stderr)
    for node in NODES:
        r = step.lbctl(node, "undrain", "web", be1)
        assert r.returncode == 0 and r.stdout.strip() == "ok", (node, r.stdout, r.stderr)
        b = state(node, be1)
        assert b["state"] == "up" and not b["draining"], (node, b)
    r = client.http_gets(lab, 60, parallel=4)
    assert r["ok"] == 60 and set(r["counts"]) == set(WEB), r
    wait_pair(step, "lb1", "lb2", timeout=5)


def test_stop_master_hands_over(lab, step):
    # Connections open across the handover must survive it (deploy.md section 8: "no connection
    # may break"), and new ones must work through lb2 afterwards.
    received = step.status("lb2")["lbd"]["sync"]["received_flows"]
    hold = client.start_hold(lab, conns=6, seconds=6)
    hold.wait_event("connected", timeout=5)
    wait_json(lambda: step.status("lb2"), {"lbd": {"sync": {"received_flows": lambda n: n >= received + 6}}}, 3,
              "the 6 connections synced to lb2")
    rcs = step.stop_node("lb1")
    assert rcs["vrrpd"] == 0 and rcs["lbd"] == 0, f"exit codes on SIGTERM: {rcs}"
    assert rcs["vrrpd_seconds"] < 3.0, f"vrrpd took {rcs['vrrpd_seconds']} s to hand over (stop_timeout 3s)"
    s2 = wait_json(lambda: step.status("lb2"), {"vrrpd": {"state": "MASTER"}, "lbd": {"active": True}}, 3,
                   "lb2 MASTER with its lbd active")
    v2, l2 = s2["vrrpd"], s2["lbd"]
    assert v2["master"] == "lb2" and l2["mode_reason"] == "vrrpd", s2
    # lb1 runs nothing now: lbctl there is "not reachable" (3) with one line on stderr.
    r = step.lbctl("lb1", "status")
    assert r.returncode == 3 and len(r.stderr.strip().splitlines()) == 1 and not r.stdout, r
    text = step.lbctl("lb2", "status").stdout
    assert re.search(r"^\s+master\s+lb2\s*$", text, re.M) and re.search(r"^\s+vrrpd\s+MASTER\b", text, re.M) \
        and "(owned by this node)" in text and re.search(r"^\s+peer\s+lb1\b", text, re.M), text
    res = hold.result()
    assert res["ok"] == res["conns"] == 6 and res["reset"] == 0, f"connections broke in the handover: {res}"
    r = client.http_gets(lab, 40, parallel=4)
    assert r["ok"] == 40 and r["errors"] == 0 and set(r["counts"]) == set(WEB), r


def test_master_comes_back_and_preempts(lab, step):
    t0 = time.monotonic()
    step.start_node("lb1")
    st = wait_pair(step, "lb1", "lb2", timeout=20)
    took = time.monotonic() - t0
    # It came back as BACKUP (it never took the VIP by itself) and became MASTER by preempting.
    assert st["lb1"]["vrrpd"]["transitions"] >= 1, st["lb1"]["vrrpd"]
    assert "BACKUP" in lab.log_tail("lb1-vrrpd", 5), lab.log_tail("lb1-vrrpd", 5)
    print(f"\nlb1 restarted and preempted within {took:.1f} s")
    text = step.lbctl("lb1", "status").stdout
    assert re.search(r"^\s+master\s+lb1\s*$", text, re.M) and re.search(r"^\s+peer\s+lb2\s+\S+\s+BACKUP", text, re.M), text
    r = client.http_gets(lab, 60, parallel=4)
    assert r["ok"] == 60 and r["errors"] == 0 and set(r["counts"]) == set(WEB), r


# ----------------------------------------------------------------------------- config check, bad key

@pytest.mark.parametrize("prog", ["lbd", "vrrpd"])
@pytest.mark.parametrize("fault", ["missing", "mode0644"])
def test_config_check_refuses_unusable_key(request, tmp_path, prog, fault):
    """deploy.md section 3: "The daemons refuse a key file that others can read"; config.md: the
    file is checked completely before it is used. The example as shipped, before `lbctl keygen`
    (key missing), or with a key others can read, must fail the check that ExecStartPre runs."""
    from lib.lab import BUILD
    key = tmp_path / "cluster.key"
    if fault == "mode0644":
        subprocess.run([os.path.join(BUILD, "lbctl"), "keygen", str(key)], check=True, capture_output=True)
        os.chmod(key, 0o644)
    conf = tmp_path / "dsrlb.conf"
    conf.write_text(adapt_example(str(key)))
    r = subprocess.run([os.path.join(BUILD, prog), "-t", "-c", str(conf)], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and str(key) in r.stderr and len(r.stderr.strip().splitlines()) == 1, \
        f"{prog} -t: exit {r.returncode}\nstdout: {r.stdout}stderr: {r.stderr}"


# ----------------------------------------------------------------------------- lbctl without a daemon

class FakeDaemon:
    """A Unix stream server at `path` that misbehaves: mode "junk" answers text that is not the
    control protocol, "framed-junk" a well-framed message that is not protobuf, "close" hangs up at
    once, "silent" accepts and never answers (keeps the connection open)."""

    def __init__(self, path, mode):
        self.mode = mode
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.conns = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(c)
            if self.mode == "silent":
                continue
            try:
                if self.mode != "close":
                    self._read_request(c)
                if self.mode == "junk":
                    c.sendall(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 3\r\n\r\nno\n")
                elif self.mode == "framed-junk":
                    c.sendall(b"\x00\x00\x00\x10" + b"\xff" * 16)
            except OSError:
                pass
            c.close()

    @staticmethod
    def _read_request(c):
        """Read the whole request (4-byte big-endian length, then the message), so that our answer
        does not race lbctl's send (it would see EPIPE instead of our answer)."""
        c.settimeout(1)
        buf = b""
        try:
            while len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[:4], "big"):
                chunk = c.recv(4096)
                if not chunk:
                    return
                buf += chunk
        except OSError:
            pass

    def close(self):
        self.stop.set()
        self.sock.close()
        for c in self.conns:
            c.close()
        self.thread.join(2)


def lbctl_direct(run_dir, *args, timeout=15):
    from lib.lab import BUILD
    lbctl = os.path.join(BUILD, "lbctl")
    if not os.access(lbctl, os.X_OK):
        pytest.skip(f"{lbctl} is not built")
    t0 = time.monotonic()
    r = subprocess.run([lbctl, "--run-dir", run_dir] + list(args), capture_output=True, text=True, timeout=timeout)
    return r, time.monotonic() - t0


def assert_one_line_failure(r, secs, rc=3, limit=LBCTL_TIMEOUT_S + 1.0):
    err = r.stderr.strip().splitlines()
    assert r.returncode == rc, f"exit {r.returncode}, want {rc}; stderr: {r.stderr!r}"
    assert len(err) == 1 and err[0].startswith("lbctl: "), f"want one line on stderr, got {r.stderr!r}"
    assert "Traceback" not in r.stderr and "Sanitizer" not in r.stderr
    assert not r.stdout, f"nothing on stdout when nothing answered, got {r.stdout!r}"
    assert secs < limit, f"lbctl took {secs:.2f} s (timeout {LBCTL_TIMEOUT_S} s)"
    return err[0]


COMMANDS = [["status"], ["status", "--json"], ["stats"], ["backends"], ["flows"], ["drain", "web", "192.0.2.21"],
            ["undrain", "web", "192.0.2.21"], ["reload"], ["set-mode", "standby"]]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: "-".join(c).replace("--", ""))
def test_lbctl_missing_socket(tmp_path, cmd):
    r, secs = lbctl_direct(str(tmp_path), *cmd)
    line = assert_one_line_failure(r, secs, limit=1.0)
    assert "No such file or directory" in line and "lbd.sock" in line, line


@pytest.mark.parametrize("cmd", [["status"], ["flows"]], ids=["status", "flows"])
def test_lbctl_missing_run_dir(tmp_path, cmd):
    r, secs = lbctl_direct(str(tmp_path / "nonexistent"), *cmd)
    assert_one_line_failure(r, secs, limit=1.0)


@pytest.mark.parametrize("cmd", [["status"], ["status", "--json"], ["flows"], ["reload"]],
                         ids=["status", "status-json", "flows", "reload"])
def test_lbctl_dead_socket(tmp_path, cmd):
    # Socket files left behind by a daemon that died: nobody listens (ECONNREFUSED).
    for name in ("lbd.sock", "vrrpd.sock"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(tmp_path / name))
        s.listen(1)
        s.close()
        assert (tmp_path / name).is_socket()
    r, secs = lbctl_direct(str(tmp_path), *cmd)
    line = assert_one_line_failure(r, secs, limit=1.0)
    assert "Connection refused" in line, line


# What lbctl does with a daemon that answers something it cannot read, as observed: it treats the
# daemon as not reachable (exit 3) and says why in one line: "Message too long" for a length prefix
# beyond the 16 MiB limit (text: "HTTP" read as a length), "the daemon's answer does not parse" for a
# well-framed answer that is not protobuf, "Connection reset by peer" for a daemon that hangs up, and
# "no answer within the timeout" after 3 s for one that never answers.
# A daemon that hangs up at once may also be seen as "Broken pipe" when lbctl is still sending.
JUNK = {"junk": "Message too long", "framed-junk": "does not parse", "close": "(Connection reset|Broken pipe)",
        "silent": "no answer within the timeout"}

# `lbctl status` and `lbctl reload` ask lbd and then vrrpd, each with a fresh 3 s timeout
# (lbctl/lbctl.c:69 and :87 pass LBCTL_TIMEOUT_MS to every ipc_call; lbctl_status() calls both in
# turn at :214-216, lbctl_reload() likewise): with both daemons hung, the command takes 6 s.
TWO_CALLS = ("status", "reload")


@pytest.mark.parametrize("mode", list(JUNK))
@pytest.mark.parametrize("cmd", [["status"], ["status", "--json"], ["flows"], ["drain", "web", "192.0.2.21"],
                                 ["reload"]],
                         ids=["status", "status-json", "flows", "drain", "reload"])
def test_lbctl_confused_daemon(request, tmp_path, mode, cmd):
    daemons = [FakeDaemon(str(tmp_path / n), mode) for n in ("lbd.sock", "vrrpd.sock")]
    try:
        r, secs = lbctl_direct(str(tmp_path), *cmd)
    finally:
        for d in daemons:
            d.close()
    line = assert_one_line_failure(r, secs)
    assert re.search(JUNK[mode], line), line
    if mode == "silent":
        assert secs >= LBCTL_TIMEOUT_S - 0.1, f"gave up after {secs:.2f} s, before its timeout"

"""systemd conventions without systemd (PID 1 is not systemd here): the tests play its part.

- The notify protocol (sd_notify(3)) through a NOTIFY_SOCKET of the test's own: lbd sends READY=1 only
  once it forwards (a probe sent the moment READY=1 arrives is answered), STATUS= with its role,
  WATCHDOG=1 from its main loop every half WATCHDOG_USEC; a stopped process misses the watchdog and the
  pings resume when it runs again; STOPPING=1 on SIGTERM. vrrpd: READY=1 and a STATUS= naming its state.
- journald: with stderr being the stream JOURNAL_STREAM names, every line starts with the priority
  prefix <N> (so `journalctl -p warning` works); without it, the usual time-stamped lines.
- `lbctl reload lbd`, the units' synchronous ExecReload=, exits non-zero with the reason on a refused
  config, 0 on a good one."""

import os
import signal
import socket
import subprocess
import time

import pytest

from lib import client
from lib.lab import wait_for
from lib.pair import config_text

WATCHDOG_US = 400_000


@pytest.fixture(scope="module", autouse=True)
def servers_up(backend_servers):
    return backend_servers


class NotifySocket:
    """A datagram socket standing in for systemd's: (monotonic time, message) of every datagram."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        self.msgs = []

    def poll(self, timeout=0.05):
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(4096)
                self.msgs.append((time.monotonic(), data.decode()))
                self.sock.settimeout(0.001)
        except (socket.timeout, BlockingIOError):
            pass
        return self.msgs

    def wait(self, pred, timeout, what, since=0.0):
        """The first message since `since` (monotonic) matching pred (polled, bounded)."""
        def found():
            for t, m in self.poll():
                if t >= since and pred(m):
                    return t, m
            return None
        return wait_for(found, timeout, interval=0, what=what)

    def close(self):
        self.sock.close()
        os.unlink(self.path)


def fields(msg):
    return dict(line.split("=", 1) for line in msg.splitlines() if "=" in line)


def start(lab, prog, node, text, env, name):
    conf = lab.write_config(text, name=f"{name}.conf")
    cmd = [lab.bin(prog), "-c", conf, "-n", node, "--run-dir", lab.run_dir(node), "-f"]
    if prog == "lbd":
        cmd.append("--standalone")
    return lab.popen(node, cmd, log=f"{node}-{prog}", env=env)


def test_lbd_notify_ready_status_watchdog_stopping(lab):
    ns = NotifySocket(os.path.join(lab.tmpdir, "notify-lbd.sock"))
    p = None
    try:
        p = start(lab, "lbd", "lb1", config_text(lab.keygen()), name="notify-lbd",
                  env={"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": str(WATCHDOG_US)})
        t_ready, ready = ns.wait(lambda m: "READY=1" in m.splitlines(), 10, "READY=1 from lbd")
        # The moment READY=1 is in, lbd forwards: a datagram to the VIP is answered by a backend.
        answers = client.udp_query(lab, [(lab.addr("client"), 40001)], timeout=1, resend=5)   # one datagram
        assert len(answers) == 1, answers
        assert fields(ready)["STATUS"].startswith("active (standalone)"), ready
        assert all("READY=1" not in m for t, m in ns.msgs if t < t_ready)

        # WATCHDOG=1 every WATCHDOG_USEC / 2 from the running main loop.
        wait_for(lambda: len([m for _t, m in ns.poll() if "WATCHDOG=1" in m]) >= 5, 5, interval=0,
                 what="5 watchdog pings")
        # A stopped lbd misses the watchdog: nothing for well over WATCHDOG_USEC, then pings again.
        lab.signal(p, signal.SIGSTOP)
        t_stop = time.monotonic()
        time.sleep(0.1)                     # a ping that was in flight
        n_before = len(ns.poll())
        wait_for(lambda: time.monotonic() - t_stop > 2.5 * WATCHDOG_US / 1e6, 5, interval=0.05,
                 what="watchdog period passing")
        assert len(ns.poll()) == n_before, ns.msgs[n_before:]
        lab.signal(p, signal.SIGCONT)
        t_cont = time.monotonic()
        t_ping, _m = ns.wait(lambda m: "WATCHDOG=1" in m, 3, "pings after SIGCONT", since=t_cont)
        gaps = [b[0] - a[0] for a, b in zip(ns.msgs, ns.msgs[1:]) if b[0] < t_stop]
        print(f"\nlbd: READY=1 with STATUS={fields(ready)['STATUS']!r}; {len(gaps) + 1} messages before "
              f"SIGSTOP, largest gap {max(gaps) * 1000:.0f} ms (watchdog {WATCHDOG_US // 1000} ms); "
              f"first ping {1000 * (t_ping - t_cont):.0f} ms after SIGCONT")
        assert max(gaps) < WATCHDOG_US / 1e6, gaps

        lab.signal(p, signal.SIGTERM)
        ns.wait(lambda m: "STOPPING=1" in m, 10, "STOPPING=1 from lbd")
        assert p.wait(10) == 0
    finally:
        if p is not None:
            lab.stop(p)
        ns.close()


def test_vrrpd_notify_ready_and_state(lab):
    ns = NotifySocket(os.path.join(lab.tmpdir, "notify-vrrpd.sock"))
    procs = []
    try:
        # A single-node cluster: vrrpd becomes MASTER by itself and says so in STATUS=.
        text = config_text(lab.keygen()).replace("[node lb2]\naddress = 192.0.2.12\npriority = 100\n", "")
        conf = lab.write_config(text, name="notify-single.conf")
        procs.append(lab.start_lbd("lb1", conf))
        procs.append(start(lab, "vrrpd", "lb1", text, name="notify-vrrpd", env={"NOTIFY_SOCKET": ns.path}))
        _t, ready = ns.wait(lambda m: "READY=1" in m.splitlines(), 10, "READY=1 from vrrpd")
        assert fields(ready)["STATUS"].endswith(", node lb1"), ready
        ns.wait(lambda m: fields(m).get("STATUS", "").startswith("MASTER"), 10, "STATUS=MASTER from vrrpd")
        lab.signal(procs[-1], signal.SIGTERM)
        ns.wait(lambda m: "STOPPING=1" in m, 10, "STOPPING=1 from vrrpd")
    finally:
        for p in reversed(procs):
            lab.stop(p)
        ns.close()


def test_journald_priority_prefixes(lab):
    """A warning (every backend at weight 0) and the info lines of start-up, as journald would get them."""
    text = config_text(lab.keygen()).replace("backend = 192.0.2.21\nbackend = 192.0.2.22\nbackend = 192.0.2.23",
                                             "backend = 192.0.2.21 weight=0", 1)
    conf = lab.write_config(text, name="journal.conf")
    for journal in (True, False):
        path = os.path.join(lab.tmpdir, f"stderr-{journal}.log")
        with open(path, "wb") as f:
            st = os.fstat(f.fileno())
            env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}" if journal else "1:1"}
            p = lab.popen("lb1", [lab.bin("lbd"), "-c", conf, "-n", "lb1", "--run-dir", lab.run_dir("lb1"),
                                  "-f", "--standalone"], env=env, stdout=f, stderr=f)
        try:
            wait_for(lambda: "node lb1 on eth0" in open(path).read(), 10, what="lbd's start-up line")
        finally:
            lab.stop(p)
        lines = open(path).read().splitlines()
        warn = [x for x in lines if "every backend has weight 0" in x]
        info = [x for x in lines if "node lb1 on eth0" in x]
        assert len(warn) == 1 and len(info) == 1, lines
        if journal:
            assert warn[0].startswith("<4>") and info[0].startswith("<6>"), lines
            assert all(x[:1] == "<" and x[2:3] == ">" for x in lines), lines
        else:
            assert "lbd: warning: " in warn[0] and not warn[0].startswith("<"), lines


def test_reload_command_reports_a_refused_config(lab):
    p = None
    try:
        text = config_text(lab.keygen())
        conf = lab.write_config(text, name="reload.conf")
        p = lab.start_lbd("lb1", conf, ["--standalone"])
        wait_for(lambda: lab.lbctl("lb1", "status").returncode == 0, 10, what="lbd answering")
        r = lab.lbctl("lb1", "reload", "lbd")
        assert r.returncode == 0, r
        with open(conf, "a") as f:
            f.write("stop_timeout = 3\n")     # in [service probe]: an unknown key there
        r = lab.lbctl("lb1", "reload", "lbd")
        assert r.returncode == 1 and f"{conf}:" in r.stderr, r
        assert lab.lbctl("lb1", "reload", "vrrpd").returncode == 3    # no vrrpd here: unreachable
    finally:
        if p is not None:
            lab.stop(p)

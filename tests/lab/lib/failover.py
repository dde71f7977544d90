"""Crashes of a balancer node for the failover suites, and the probe streams that measure them:
`crash(pair, how)` / `recover(pair, how)` (kill -9, a pulled cable, an interface down, or kill and
cable together), `crash_at_phase` (kill and cable at a chosen phase of the master's advert timer),
`measure_outages` (one such crash under 1 ms UDP probes to one or more VIPs at once)."""

import json
import shutil
import subprocess
import sys

from . import client


def probe_ok(r):
    """A probe stream that got answers and whose longest outage ended before the stream did."""
    return r["answered"] > 0 and (r["longest_outage"] is None or r["longest_outage"]["recovered"])


def crash(pair, how, node="lb1"):
    """Inject a crash of node: kill (both daemons -9), cable (bridge port down), ifdown (its eth0
    down), killcable (both: the reference measurement's crash)."""
    if how in ("kill", "killcable"):
        pair.crash(node)
    if how in ("cable", "killcable"):
        pair.cut_cable(node)
    if how == "ifdown":
        pair.lab.link_set(node, "eth0", False)
        pair.ifdown.add(node)


def recover(pair, how, node="lb1"):
    if how in ("cable", "killcable"):
        pair.cut_cable(node, up=True)
    if how == "ifdown":
        pair.lab.link_set(node, "eth0", True)
        pair.ifdown.discard(node)
    if how in ("kill", "killcable"):
        pair.start_node(node)


# Runs in the bridge namespace: watches the master's heartbeats on the backup's bridge port and
# crashes the master (SIGKILL its daemons, then its cable) `phase` ms after one of them, so the
# phase of the crash within the advert timer is chosen, and known, not guessed.
CRASHER = r"""
import json, os, select, signal, socket, struct, subprocess, sys, time
port, src, link = sys.argv[1], socket.inet_aton(sys.argv[2]), sys.argv[4]
phase, timeout = float(sys.argv[3]), float(sys.argv[5])
pids = [int(p) for p in sys.argv[6:]]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((port, 3))
print(json.dumps({"ready": True}), flush=True)
def heartbeat(buf):
    if len(buf) < 38 or buf[12:14] != b"\x08\x00" or buf[23] != 17 or buf[26:30] != src:
        return False
    ihl = (buf[14] & 15) * 4
    return struct.unpack("!H", buf[14 + ihl + 2:14 + ihl + 4])[0] == 8112
deadline = time.monotonic() + timeout
last = target = None
while True:
    now = time.monotonic()
    if target is not None and now >= target:
        break
    if now >= deadline:
        print(json.dumps({"error": "no heartbeat from the master"}), flush=True)
        sys.exit(1)
    wait = (target if target is not None else deadline) - now
    r, _, _ = select.select([s], [], [], max(0.0, wait - 0.0005))
    if r:
        buf = s.recv(2048)
        if heartbeat(buf):
            last = time.monotonic()
            if target is None:
                target = last + phase / 1000
    elif target is not None:
        while time.monotonic() < target:
            pass
        break
t = time.monotonic()
for p in pids:
    os.kill(p, signal.SIGKILL)
subprocess.run(["ip", "link", "set", "dev", link, "down"], check=True)
print(json.dumps({"phase_ms": round((t - last) * 1000, 2)}), flush=True)
"""


def crash_at_phase(lab, pair, phase_ms, node="lb1", watch="lb2"):
    """Kill -9 both daemons of node and cut its cable phase_ms after one of its heartbeats to
    `watch` passed the bridge; returns the actual phase (time since its last heartbeat)."""
    pids = [str(pair.proc(node, prog).pid) for prog in ("vrrpd", "lbd")]
    # Real-time, like the probe: the crash phase is taken from the crasher's own clock.
    rt = ["chrt", "-f", "2"] if shutil.which("chrt") else []
    p = lab.popen("br", rt + [sys.executable, "-c", CRASHER, lab.bridge_port(watch), lab.addr(node),
                         str(phase_ms), lab.bridge_port(node), "3"] + pids,
                  stdout=subprocess.PIPE, text=True)
    try:
        assert json.loads(p.stdout.readline()).get("ready"), "crasher did not start"
        out = json.loads(p.stdout.readline() or "{}")
        assert p.wait(5) == 0 and "phase_ms" in out, f"crasher failed: {out}"
    finally:
        lab.stop(p)
    pair.cut.add(node)
    for prog in ("vrrpd", "lbd"):
        pair.proc(node, prog).wait(5)
    return out["phase_ms"]


def measure_outages(lab, pair, advert_ms, phase_ms, dsts=(None,)):
    """One crash (kill -9 + cable) of the master lb1 at phase_ms of its advert timer, under one 1 ms
    UDP probe stream per address of `dsts` (None: the lab's VIP), all running at once: the longest
    outage of each stream (a list, in the order of dsts), the actual phase and master-down; lb1 is
    master again afterwards."""
    md = pair.vrrp("lb2")["master_down_ms"]
    jobs = [client.start_udp_probe(lab, 0.3 + md / 1000 + 0.4 + advert_ms / 1000, dst=dst, grace=0.2)
            for dst in dsts]
    for job in jobs:
        job.wait_event("answered", timeout=3)
    phase = crash_at_phase(lab, pair, phase_ms)
    results = [job.result() for job in jobs]
    for dst, r in zip(dsts, results):
        assert probe_ok(r) and r["outage_count"] == 1, (dst or lab.vip, r)
    pair.wait_master("lb2", 1)
    recover(pair, "killcable")
    pair.wait_master("lb1", 5)
    pair.wait_backup("lb2", 3)
    return [r["longest_outage_ms"] for r in results], phase, md

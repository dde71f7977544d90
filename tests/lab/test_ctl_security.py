"""Control sockets (issue 12, docs/security.md): who may do what, and what a local client can cost.

- A process that can connect but is neither root, nor the daemons' user, nor in operator_group tries
  every state-changing request on lbd and on vrrpd: each one is answered "permission denied" and
  counted in ctl_refused, and nothing changes (no drain, same mode, no reload). A status_group member
  reads status and flows but cannot drain; an operator_group member (by primary or by supplementary
  group) can. The groups are numeric gids, so /etc/group is not touched.
- 100 silent connections held open on lbd's socket: vrrpd's link stays up (no fence, no FAULT, no
  transition), also across a restart of vrrpd, which reconnects while the 100 are held; the silent
  ones are evicted and counted. A stranger that keeps reconnecting 100 silent connections for a few
  seconds evicts only its own.
- A length prefix over the 64 KiB request limit closes that client and is counted in ctl_oversized.

Throwaway identities come from setpriv (util-linux): uid 65534 for the stranger, 64101 and 64102 for
the group members. The lab's tmp dir is made traversable (0711) so they reach the sockets at all:
the daemon, not the file system, must be the one that refuses."""

import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

from lib.lab import wait_for
from lib.pair import BACKENDS, Pair

OPS_GID = 64000
VIEW_GID = 64001
STRANGER = ("65534", "65534", None)             # uid, gid, supplementary groups
VIEWER = ("64101", "64101", str(VIEW_GID))
OPERATOR_SUPP = ("64102", "64102", str(OPS_GID))
OPERATOR_PRIMARY = ("64103", str(OPS_GID), None)
BACKEND = BACKENDS[0]
HOLD = 100
LBD_GARP, LBD_STATUS = 7, 1

# A raw control-socket client for the requests lbctl has no command for (GARP): one framed request,
# the response's ok flag (field 1) and error (field 2) printed as JSON.
RAW_CLIENT = r"""
import json, socket, struct, sys
path, body = sys.argv[1], bytes.fromhex(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(3)
s.connect(path)
s.sendall(struct.pack("!I", len(body)) + body)
def recv(n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise SystemExit("closed")
        b += c
    return b
msg = recv(struct.unpack("!I", recv(4))[0])
ok, err, i = False, "", 0
while i < len(msg):
    tag = msg[i]; i += 1
    if tag == 0x08:
        ok = msg[i] != 0; i += 1
    elif tag & 7 == 2:
        n = msg[i]; i += 1
        if n & 0x80:
            n = (n & 0x7f) | (msg[i] << 7); i += 1
        if tag >> 3 == 2:
            err = msg[i:i + n].decode()
        i += n
    else:
        break
print(json.dumps({"ok": ok, "error": err}))
"""

# Keeps `count` silent connections open on `path` for `seconds`, reconnecting each one the server
# closes; prints how many it opened and how many the server closed.
FLOOD = r"""
import json, select, socket, sys, time
path, count, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s
socks = [conn() for _ in range(count)]
opened, closed, end = count, 0, time.monotonic() + seconds
while time.monotonic() < end:
    r, _, _ = select.select(socks, [], [], 0.05)
    for s in r:
        if not s.recv(16):
            socks[socks.index(s)] = conn()
            s.close()
            opened += 1
            closed += 1
    time.sleep(0.01)
print(json.dumps({"opened": opened, "closed": closed}))
"""


@pytest.fixture(scope="module")
def pair(lab, backend_servers):
    os.chmod(lab.tmpdir, 0o711)
    for node in ("lb1", "lb2"):
        os.chmod(os.path.join(lab.tmpdir, "run"), 0o755)
        os.chmod(lab.run_dir(node), 0o755)
    p = Pair(lab, advert="100ms", cluster_extra={
        "operator_group": str(OPS_GID), "status_group": str(VIEW_GID), "lbd_timeout": "300ms"})
    try:
        p.start(master="lb1")
        yield p
    finally:
        p.stop()


def as_user(lab, who, *cmd, timeout=10):
    uid, gid, groups = who
    ids = ["setpriv", "--reuid", uid, "--regid", gid]
    ids += ["--groups", groups] if groups else ["--clear-groups"]
    return lab.run("lb1", ids + list(cmd), check=False, timeout=timeout)


def lbctl_as(lab, who, *args):
    return as_user(lab, who, lab.bin("lbctl"), "--run-dir", lab.run_dir("lb1"), *args)


def raw_as(lab, who, sock, body):
    r = as_user(lab, who, sys.executable, "-c", RAW_CLIENT, os.path.join(lab.run_dir("lb1"), sock), body.hex())
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def state(pair):
    st = pair.status("lb1")
    lbd, v = st["lbd"], st["vrrpd"]
    web = next(s for s in lbd["services"] if s["name"] == "web")
    be = next(b for b in web["backends"] if b["address"] == BACKEND)
    return {"lbd_refused": lbd["counters"].get("ctl_refused", 0),
            "lbd_evicted": lbd["counters"].get("ctl_evicted", 0),
            "lbd_oversized": lbd["counters"].get("ctl_oversized", 0),
            "vrrpd_oversized": v.get("ctl_oversized", 0),
            "vrrpd_refused": v.get("ctl_refused", 0),
            "active": lbd["active"], "reason": lbd["mode_reason"], "reloads": lbd.get("reloads", 0),
            "draining": be.get("draining", False), "vrrp": v["state"], "fault": v.get("fault_reason", ""),
            "lbd_healthy": v.get("lbd_healthy", False), "transitions": v.get("transitions", 0)}


def unchanged(before, after):
    keys = ("active", "reason", "reloads", "draining", "vrrp", "fault", "transitions")
    return {k: (before[k], after[k]) for k in keys if before[k] != after[k]}


def test_stranger_changes_nothing(lab, pair):
    s0 = state(pair)
    assert s0["active"] and s0["reason"] == "vrrpd" and s0["vrrp"] == "MASTER" and not s0["draining"], s0
    denied = "permission denied: uid 65534 is not in group 64000 (operator_group)"
    lbd_tries = vrrpd_tries = 0
    for args in (("drain", "web", BACKEND), ("undrain", "web", BACKEND), ("set-mode", "standby"),
                 ("set-mode", "active"), ("reload",)):
        r = lbctl_as(lab, STRANGER, *args)
        assert r.returncode == 1, (args, r.returncode, r.stdout, r.stderr)
        assert denied in r.stderr, (args, r.stderr)
        lbd_tries += 1
        vrrpd_tries += args[0] == "reload"      # lbctl reload asks both daemons
    r = raw_as(lab, STRANGER, "lbd.sock", bytes([0x08, LBD_GARP]))
    assert not r["ok"] and denied in r["error"], r
    lbd_tries += 1
    # Reading is refused too, with its own message, and counted.
    r = lbctl_as(lab, STRANGER, "status")
    assert r.returncode == 1 and "permission denied: uid 65534 is not in group 64001 (status_group)" in r.stderr, \
        r.stderr
    lbd_tries += 1
    vrrpd_tries += 1
    s1 = state(pair)
    assert not unchanged(s0, s1), unchanged(s0, s1)
    assert s1["lbd_refused"] - s0["lbd_refused"] == lbd_tries, (s0, s1, lbd_tries)
    assert s1["vrrpd_refused"] - s0["vrrpd_refused"] == vrrpd_tries, (s0, s1, vrrpd_tries)


def test_status_group_reads_only(lab, pair):
    s0 = state(pair)
    r = lbctl_as(lab, VIEWER, "status", "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["lbd"] and st["vrrpd"] and not st["errors"], st
    r = lbctl_as(lab, VIEWER, "flows")
    assert r.returncode == 0, r.stderr
    r = lbctl_as(lab, VIEWER, "drain", "web", BACKEND)
    assert r.returncode == 1 and "permission denied: uid 64101 is not in group 64000 (operator_group)" in r.stderr, \
        r.stderr
    s1 = state(pair)
    assert not s1["draining"] and s1["lbd_refused"] - s0["lbd_refused"] == 1, (s0, s1)


@pytest.mark.parametrize("who", [OPERATOR_SUPP, OPERATOR_PRIMARY], ids=["supplementary", "primary"])
def test_operator_group_drains(lab, pair, who):
    s0 = state(pair)
    r = lbctl_as(lab, who, "drain", "web", BACKEND)
    assert r.returncode == 0 and r.stdout.strip() == "ok", (r.stdout, r.stderr)
    wait_for(lambda: state(pair)["draining"], 3, what="backend draining")
    r = lbctl_as(lab, who, "undrain", "web", BACKEND)
    assert r.returncode == 0, r.stderr
    s1 = state(pair)
    assert not s1["draining"] and s1["lbd_refused"] == s0["lbd_refused"], (s0, s1)


def hold(path, n):
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        socks.append(s)
    return socks


def closed_count(socks):
    r, _, _ = select.select(socks, [], [], 0)
    return sum(1 for s in r if not s.recv(16))


def test_silent_connections_do_not_lock_out_vrrpd(lab, pair):
    s0 = state(pair)
    socks = hold(os.path.join(lab.run_dir("lb1"), "lbd.sock"), HOLD)
    try:
        # 3 s = 30 advert intervals, 10 fence timeouts: the link must carry on.
        end = time.monotonic() + 3
        while time.monotonic() < end:
            s = state(pair)
            assert s["active"] and s["reason"] == "vrrpd" and s["vrrp"] == "MASTER" and not s["fault"], s
            time.sleep(0.2)
        s1 = state(pair)
        assert s1["transitions"] == s0["transitions"], (s0, s1)
        # Every slot past the 63 others was made by evicting a silent one; lbctl's own calls evict more.
        assert s1["lbd_evicted"] - s0["lbd_evicted"] >= HOLD - 63, (s0, s1)
        # vrrpd restarts while the 100 are held: it hands over, comes back, reconnects, preempts.
        pair.kill("lb1", "vrrpd", signal.SIGTERM).wait(10)
        pair.wait_master("lb2", timeout=10)
        pair.start_vrrpd("lb1")
        pair.wait_master("lb1", timeout=15)
        wait_for(lambda: state(pair)["active"] and state(pair)["lbd_healthy"], 5, what="lb1's lbd active again")
        s2 = state(pair)
        assert s2["reason"] == "vrrpd" and not s2["fault"], s2
        assert closed_count(socks) >= HOLD - 63
    finally:
        for s in socks:
            s.close()


def test_stranger_flood_evicts_only_its_own(lab, pair):
    s0 = state(pair)
    path = os.path.join(lab.run_dir("lb1"), "lbd.sock")
    uid, gid, _ = STRANGER
    flood = lab.popen("lb1", ["setpriv", "--reuid", uid, "--regid", gid, "--clear-groups", sys.executable, "-c",
                              FLOOD, path, str(HOLD), "3"], stdout=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 3
        while time.monotonic() < end:
            s = state(pair)
            assert s["active"] and s["vrrp"] == "MASTER" and not s["fault"] and s["lbd_healthy"], s
            time.sleep(0.2)
        out, _ = flood.communicate(timeout=10)
    finally:
        if flood.poll() is None:
            flood.kill()
            flood.wait()
    res = json.loads(out)
    s1 = state(pair)
    assert s1["transitions"] == s0["transitions"] and s1["reason"] == "vrrpd", (s0, s1)
    assert res["closed"] >= HOLD - 63, res
    assert s1["lbd_evicted"] - s0["lbd_evicted"] >= res["closed"], (s0, s1, res)


def test_oversized_length_prefix(lab, pair):
    s0 = state(pair)
    for sock, over in (("lbd.sock", 64 * 1024 + 1), ("lbd.sock", 0xFFFFFFFF), ("vrrpd.sock", 64 * 1024 + 1)):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(3)
        s.connect(os.path.join(lab.run_dir("lb1"), sock))
        s.sendall(struct.pack("!I", over))
        assert s.recv(16) == b"", "the server should close a client announcing an oversized request"
        s.close()
    s1 = state(pair)
    assert s1["lbd_oversized"] - s0["lbd_oversized"] == 2, (s0, s1)
    assert s1["vrrpd_oversized"] - s0["vrrpd_oversized"] == 1, (s0, s1)
    # Nothing else suffered: a good request is answered.
    r = raw_as(lab, ("0", "0", None), "lbd.sock", bytes([0x08, LBD_STATUS]))
    assert r["ok"], r

"""Privileges: with `user = nobody` both daemons run as uid 65534 once started, with no capability at
all, and lbd's nftables helper with CAP_NET_ADMIN alone (docs/deploy.md, Privileges); no_new_privs set,
ambient and inheritable sets empty. As that user the pair still does its whole job: traffic through
the VIP, a reload that adds a VIP (read again as nobody: config and group-readable key) changes the
nftables rule, a failover moves the VIP, `lbctl status` answers, SIGTERM ends both cleanly with their
control sockets removed. A daemon started by a non-root user refuses with a clear message, and a
`user` that does not exist is a config error naming file:line."""

import os
import pwd
import re
import signal
import subprocess

import pytest

from lib import client
from lib.lab import VIP, topology, wait_for
from lib.pair import Pair, config_text
from lib.procinfo import nft_helper, proc_status

VIP2 = "192.0.2.101"
TOPOLOGY = topology(vips=(VIP, VIP2))
USER = "nobody"
NOBODY = pwd.getpwnam(USER)
CAP_NET_ADMIN = 12
# What docs/deploy.md lists: the daemons keep nothing, the nftables helper CAP_NET_ADMIN.
CAPS = {"lbd": 0, "vrrpd": 0, "lbd-nft": 1 << CAP_NET_ADMIN}


@pytest.fixture(scope="module", autouse=True)
def servers_up(backend_servers):
    return backend_servers


def nobody_key(lab):
    """The daemons re-read the config and the key at reload as nobody: let it through the lab's tmp
    dir (root's, mode 0700), and have `lbctl keygen FILE GROUP` make the key readable by its group,
    as docs/deploy.md says."""
    os.chmod(lab.tmpdir, 0o711)
    os.chmod(os.path.join(lab.tmpdir, "conf"), 0o711)
    path = os.path.join(lab.tmpdir, "conf", "nobody.key")
    if os.path.exists(path):
        os.unlink(path)
    r = subprocess.run([lab.bin("lbctl"), "keygen", path, str(NOBODY.pw_gid)], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 0, r
    st = os.stat(path)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, NOBODY.pw_gid, 0o640), st
    return path


@pytest.fixture
def pair(lab):
    p = Pair(lab, key=nobody_key(lab), cluster_extra={"user": USER})
    try:
        p.start()
        yield p
    finally:
        p.stop()


def assert_unprivileged(pid, what, caps):
    st = proc_status(pid)
    for field in ("Uid", "Gid"):
        ids = [int(x) for x in st[field].split()]
        want = NOBODY.pw_uid if field == "Uid" else NOBODY.pw_gid
        assert ids == [want] * 4, f"{what} (pid {pid}) {field}: {st[field]}"
    assert st["Groups"].split() == [str(NOBODY.pw_gid)], f"{what} supplementary groups: {st['Groups']!r}"
    for field in ("CapEff", "CapPrm", "CapBnd"):
        assert int(st[field], 16) == caps, f"{what} {field} {st[field]}, documented {caps:#x}"
    assert int(st["CapInh"], 16) == 0 and int(st["CapAmb"], 16) == 0, f"{what}: {st['CapInh']} {st['CapAmb']}"
    assert st["NoNewPrivs"].strip() == "1", f"{what} NoNewPrivs {st['NoNewPrivs']}"


def nft_vips(lab, node):
    r = lab.run(node, ["nft", "list", "table", "netdev", "dsrlb"], check=False, timeout=5)
    if r.returncode:
        return None
    m = re.search(r"ip daddr (\{[^}]*\}|\S+)", r.stdout)
    return set(re.findall(r"\d+\.\d+\.\d+\.\d+", m.group(1))) if m else set()


def test_daemons_run_as_user_with_documented_caps(lab, pair):
    for node in pair.nodes:
        for prog in ("lbd", "vrrpd"):
            assert_unprivileged(pair.proc(node, prog).pid, f"{prog} on {node}", CAPS[prog])
        helper = nft_helper(pair.proc(node, "lbd").pid)
        assert_unprivileged(helper, f"nftables helper on {node}", CAPS["lbd-nft"])
    # Every thread of lbd (the workers) too: capabilities are per thread. What start-up set stays:
    # lbd at nice -10, vrrpd real-time (realtime = yes, the default).
    pid = pair.proc("lb1", "lbd").pid
    for tid in os.listdir(f"/proc/{pid}/task"):
        assert int(proc_status(f"{pid}/task/{tid}")["CapEff"], 16) == 0, f"lbd thread {tid}"
        assert os.getpriority(os.PRIO_PROCESS, int(tid)) == -10, f"lbd thread {tid} nice"
    vrrpd = pair.proc("lb1", "vrrpd").pid
    assert os.sched_getscheduler(vrrpd) & ~0x40000000 == os.SCHED_FIFO, os.sched_getscheduler(vrrpd)
    assert int(proc_status(vrrpd)["VmLck"].split()[0]) > 0, proc_status(vrrpd)["VmLck"]


def test_forwarding_reload_failover_status_as_user(lab, pair):
    r = client.http_gets(lab, 20, timeout=2.0)
    assert r["ok"] == 20, r
    assert nft_vips(lab, "lb1") == {VIP}, lab.run("lb1", ["nft", "list", "ruleset"], check=False).stdout

    # A reload as nobody: the config and the key are read again; the new VIP reaches the rule.
    text = pair.conf_text + "\n".join(["", "[service web2]", f"vip = {VIP2}", "port = 80", "check = none",
                                       "backend = 192.0.2.21", "backend = 192.0.2.22"]) + "\n"
    with open(pair.conf, "w") as f:
        f.write(lab.config_text(text))
    for node in pair.nodes:
        r = lab.lbctl(node, "reload")
        assert r.returncode == 0, f"reload on {node}: {r.stdout} {r.stderr}"
    for node in pair.nodes:
        wait_for(lambda n=node: nft_vips(lab, n) == {VIP, VIP2}, 5, what=f"nftables rule on {node} with {VIP2}")
        st = lab.status(node)
        assert st["lbd"]["reloads"] >= 1 and not st["lbd"].get("last_reload_error"), st["lbd"]
    r = client.http_gets(lab, 10, url=f"http://{VIP2}/", timeout=2.0)
    assert r["ok"] == 10, r

    # Failover: the master's vrrpd dies; lb2 takes the VIPs; traffic follows.
    pair.kill("lb1", "vrrpd")
    pair.wait_master("lb2", timeout=5)
    assert pair.assert_single_owner(5) == "lb2"
    r = client.http_gets(lab, 10, timeout=2.0)
    assert r["ok"] == 10, r
    st = lab.status("lb2")
    assert st["vrrpd"]["state"] == "MASTER", st


def test_reload_with_unreadable_key_is_refused_clearly(lab, pair):
    """A key file only root may read (mode 0600, as `lbctl keygen FILE` without a group writes it):
    the daemons, now nobody, refuse the reload naming the file and why, and run on unchanged."""
    os.chmod(pair.key, 0o600)
    try:
        r = lab.lbctl("lb1", "reload")
        assert r.returncode == 1, r
        # Both daemons say it (lbd's answer, then "vrrpd: ..."), with the way out.
        assert r.stderr.count(f"{pair.key}: Permission denied (make the key file group-readable") == 2, r.stderr
        # Named at the config line of its key_file (issue 16), then the file and why.
        err = pair.lbd("lb1")["last_reload_error"]
        assert re.match(rf"{re.escape(pair.conf)}:\d+: key_file: {re.escape(pair.key)}: Permission denied", err), err
        for prog in ("lbd", "vrrpd"):
            assert pair.running("lb1", prog), f"{prog} on lb1 exited"
        assert pair.vrrp("lb1")["state"] == "MASTER"
    finally:
        os.chmod(pair.key, 0o640)
    r = lab.lbctl("lb1", "reload")
    assert r.returncode == 0, r


def test_sigterm_exits_cleanly_and_removes_sockets(lab, pair):
    socks = {(n, prog): os.path.join(lab.run_dir(n), f"{prog}.sock") for n in pair.nodes for prog in ("lbd", "vrrpd")}
    assert all(os.path.exists(s) for s in socks.values()), socks
    helper = nft_helper(pair.proc("lb2", "lbd").pid)
    # The backup first (nothing to hand over), then the master: each leaves by itself.
    for node in ("lb2", "lb1"):
        for prog in ("vrrpd", "lbd"):
            p = pair.proc(node, prog)
            os.kill(p.pid, signal.SIGTERM)
            assert p.wait(10) == 0, f"{prog} on {node} exited {p.returncode}:\n" + lab.log_tail(f"{node}-{prog}")
            assert not os.path.exists(socks[(node, prog)]), f"{socks[(node, prog)]} left behind"
    wait_for(lambda: not os.path.exists(f"/proc/{helper}"), 5, what="the nftables helper gone")
    # lbd removed its rule at exit (through the helper).
    assert nft_vips(lab, "lb1") is None, lab.run("lb1", ["nft", "list", "ruleset"], check=False).stdout


def unit_bounding_set(prog):
    """setpriv's --bounding-set for the CapabilityBoundingSet= of examples/systemd/PROG.service."""
    path = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "systemd", f"{prog}.service")
    with open(path) as f:
        caps = re.search(r"^CapabilityBoundingSet=(.*)$", f.read(), re.M).group(1).split()
    return "-all," + ",".join("+" + c.lower().removeprefix("cap_") for c in caps)


def test_unit_capability_sets_suffice(lab, monkeypatch):
    """The pair starts, elects and forwards with no more than the systemd units give it, as root
    with only their CapabilityBoundingSet (what systemd does for User=root), and still ends up as
    documented."""
    def under_unit(prog):
        def start(node, conf_path, extra_args=()):
            cmd = ["setpriv", "--bounding-set", unit_bounding_set(prog), "--inh-caps", "-all", lab.bin(prog),
                   "-c", conf_path, "-n", node, "--run-dir", lab.run_dir(node), "-f", *extra_args]
            return lab.popen(node, cmd, log=f"{node}-{prog}")
        return start

    monkeypatch.setattr(lab, "start_lbd", under_unit("lbd"))
    monkeypatch.setattr(lab, "start_vrrpd", under_unit("vrrpd"))
    p = Pair(lab, key=nobody_key(lab), cluster_extra={"user": USER})
    logs = [lab.log_path(f"lb1-{prog}") for prog in ("lbd", "vrrpd")]
    since = {f: os.path.getsize(f) if os.path.exists(f) else 0 for f in logs}
    try:
        p.start()
        for prog in ("lbd", "vrrpd"):
            assert_unprivileged(p.proc("lb1", prog).pid, f"{prog} on lb1", CAPS[prog])
        assert_unprivileged(nft_helper(p.proc("lb1", "lbd").pid), "nftables helper on lb1", CAPS["lbd-nft"])
        assert nft_vips(lab, "lb1") == {VIP}
        r = client.http_gets(lab, 10, timeout=2.0)
        assert r["ok"] == 10, r
        for f in logs:
            with open(f) as fh:
                fh.seek(since[f])
                text = fh.read()
            assert "running as uid" in text and "warning" not in text and "error" not in text, text
    finally:
        p.stop()


def test_unknown_user_is_a_config_error(lab):
    key = lab.keygen()
    conf = lab.write_config(config_text(key, cluster_extra={"user": "dsrlb-no-such-user"}))
    for prog in ("lbd", "vrrpd"):
        r = subprocess.run([lab.bin(prog), "-t", "-c", conf], capture_output=True, text=True, timeout=10)
        assert r.returncode == 1, r
        line = [i + 1 for i, t in enumerate(open(conf).read().splitlines()) if t.startswith("user =")][0]
        assert f"{conf}:{line}: user: no such user 'dsrlb-no-such-user'" in r.stderr, r.stderr


def test_started_by_non_root_refuses_clearly(lab):
    key = lab.keygen()
    os.chmod(lab.tmpdir, 0o711)
    os.chmod(os.path.join(lab.tmpdir, "conf"), 0o711)
    os.chown(key, NOBODY.pw_uid, NOBODY.pw_gid)
    conf = lab.write_config(config_text(key))
    for prog in ("lbd", "vrrpd"):
        r = lab.run("lb1", ["setpriv", f"--reuid={NOBODY.pw_uid}", f"--regid={NOBODY.pw_gid}", "--clear-groups",
                            lab.bin(prog), "-c", conf, "-n", "lb1", "--run-dir", lab.run_dir("lb1"), "-f"],
                    check=False, timeout=10)
        assert r.returncode == 1, (prog, r.returncode, r.stdout, r.stderr)
        assert f"{prog}: must be started as root" in r.stderr, r.stderr

"""The lab itself, before any dsrlb binary exists: addressing, routing, the DSR backend setup,
the helpers (servers, clients, capture, ARP probe) and that the lab always cleans up after itself
without touching the root namespace."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from lib import client, servers
from lib.capture import Capture, arp_probe
from lib.lab import NS_RE, TMP_ROOT, Lab, WaitTimeout, dsr_backend_etc, list_netns, topology, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))


def root_state():
    """What the lab must never change in the root namespace."""
    def out(*cmd):
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout

    sysctls = {}
    for key in ("ipv4/ip_forward", "ipv4/conf/all/arp_ignore", "ipv4/conf/all/arp_announce",
                "ipv4/conf/all/rp_filter", "ipv4/conf/default/arp_ignore", "ipv6/conf/all/disable_ipv6"):
        with open(f"/proc/sys/net/{key}") as f:
            sysctls[key] = f.read().strip()
    return {"link": out("ip", "-br", "link"), "addr": out("ip", "-br", "addr"),
            "route": out("ip", "route", "show", "table", "all"), "rule": out("ip", "rule"),
            "neigh_vip": out("ip", "neigh", "show", "192.0.2.100"), "sysctl": sysctls}


def our_netns(prefix):
    return [n for n in list_netns() if n.startswith(prefix)]


# ----------------------------------------------------------------------------- the default lab

def test_build_is_fast(lab):
    assert lab.build_seconds < 3, f"building the lab took {lab.build_seconds}s"


def test_namespaces_and_names(lab):
    names = our_netns(lab.prefix)
    assert sorted(names) == sorted(lab.ns(h) for h in ["br"] + list(lab.hosts))
    assert lab.lbs == ["lb1", "lb2"]
    assert lab.backends == ["be1", "be2", "be3", "be4"]
    assert lab.spares == ["be4"] and lab.active_backends == ["be1", "be2", "be3"]
    assert lab.addr("be2") == "192.0.2.22" and lab.addr("client") == "198.51.100.10"
    assert lab.mac("lb1") == "02:d5:c0:00:02:0b"
    assert len({lab.mac(h) for h in lab.hosts}) == len(lab.hosts)


def test_client_pings_every_backend_through_router(lab):
    for be in lab.backends:
        r = client.ping(lab, lab.addr(be))
        assert r["received"] == 1, (be, r)
    # ...and the check can fail: nobody has 192.0.2.99.
    assert client.ping(lab, "192.0.2.99", timeout=0.3)["received"] == 0


def test_client_source_addresses(lab):
    addrs = lab.run("client", ["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout
    for i in range(10, 20):
        assert f"198.51.100.{i}/24" in addrs
    r = lab.run("client", ["ip", "route", "get", "192.0.2.21"]).stdout
    assert "via 198.51.100.1" in r and "src 198.51.100.10" in r


def test_host_sysctls(lab):
    assert lab.sysctl("router", "net.ipv4.ip_forward") == "1"
    assert lab.sysctl("router", "net.ipv4.conf.all.rp_filter") == "0"
    for lb in lab.lbs:
        assert lab.sysctl(lb, "net.ipv4.ip_forward") == "0"
        assert lab.sysctl(lb, "net.ipv4.conf.all.arp_ignore") == "0"
        lo = lab.run(lb, ["ip", "-4", "-o", "addr", "show"]).stdout
        assert lab.vip not in lo, "the VIP must not be a kernel address on the balancer nodes"
        assert "default via 192.0.2.1" in lab.run(lb, ["ip", "route"]).stdout


def test_offloads_stay_on(lab):
    # The forwarder must cope with GSO super-frames: the lab leaves veth offloads as Linux sets them.
    feats = lab.run("client", ["ip", "-d", "link", "show", "eth0"]).stdout
    assert "gso_max_size 65536" in feats


def test_backends_dsr_setup(lab):
    for be in lab.backends:
        lo = lab.run(be, ["ip", "-4", "-o", "addr", "show", "dev", "lo"]).stdout
        assert f"inet {lab.vip}/32" in lo
        eth = lab.run(be, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout
        assert lab.vip not in eth
        assert lab.sysctl(be, "net.ipv4.conf.all.arp_ignore") == "1"
        assert lab.sysctl(be, "net.ipv4.conf.all.arp_announce") == "2"
        assert lab.sysctl(be, "net.ipv4.conf.eth0.arp_ignore") == "1"
        r = lab.dsr_backend(be, "check", lab.vip)
        assert r.returncode == 0 and "problem" not in r.stdout


def test_dsr_backend_check_reports_problems(lab):
    be = "be4"  # the spare: nothing runs there yet
    try:
        lab.run(be, ["ip", "addr", "del", f"{lab.vip}/32", "dev", "lo"])
        lab.run(be, ["ip", "addr", "add", f"{lab.vip}/24", "dev", "lo"])
        lab.sysctl(be, "net.ipv4.conf.all.arp_ignore", 0)
        lab.sysctl(be, "net.ipv4.conf.eth0.arp_ignore", 0)
        r = lab.dsr_backend(be, "check", lab.vip, check=False)
        assert r.returncode == 1
        assert "must be 192.0.2.100/32" in r.stdout and "whole /24 subnet" in r.stdout
        assert "arp_ignore is 0" in r.stdout
        # Fixing it is what `setup` is for.
        lab.dsr_backend(be, "setup", lab.vip)
        assert lab.dsr_backend(be, "check", lab.vip, check=False).returncode == 0
        lab.run(be, ["ip", "addr", "add", f"{lab.vip}/24", "dev", "eth0"])
        r = lab.dsr_backend(be, "check", lab.vip, check=False)
        assert r.returncode == 1 and "also on eth0" in r.stdout
    finally:
        lab.run(be, ["ip", "addr", "del", f"{lab.vip}/24", "dev", "eth0"], check=False)
        lab.dsr_backend(be, "setup", lab.vip)
    assert lab.dsr_backend(be, "check", lab.vip, check=False).returncode == 0


@pytest.mark.parametrize("flavour", ["ifupdown", "networkd"])
def test_dsr_backend_persists(lab, tmp_path, flavour):
    env, snippet = dsr_backend_etc(tmp_path, flavour)
    etc = tmp_path / "etc"
    be, vip2 = "be4", "192.0.2.101"
    try:
        lab.dsr_backend(be, "setup", lab.vip, persist=True, env=env)
        lab.dsr_backend(be, "setup", vip2, persist=True, env=env)
        text = snippet.read_text()
        assert f"{lab.vip}/32" in text and f"{vip2}/32" in text, text
        assert "net.ipv4.conf.all.arp_ignore = 1" in (etc / "sysctl.d" / "90-dsrlb.conf").read_text()
        lab.dsr_backend(be, "remove", vip2, persist=True, env=env)
        text = snippet.read_text()
        assert f"{lab.vip}/32" in text and vip2 not in text, text
        assert vip2 not in lab.run(be, ["ip", "-o", "addr", "show", "dev", "lo"]).stdout
        lab.dsr_backend(be, "remove", lab.vip, persist=True, env=env)
        assert not snippet.exists() and not (etc / "sysctl.d" / "90-dsrlb.conf").exists()
        assert lab.sysctl(be, "net.ipv4.conf.all.arp_ignore") == "0"
    finally:
        lab.dsr_backend(be, "setup", lab.vip)
    assert lab.dsr_backend(be, "check", lab.vip, check=False).returncode == 0


def test_nobody_answers_arp_for_vip(lab):
    # Positive control first, so this test can fail: a backend's real address is answered.
    assert arp_probe(lab, "router", lab.addr("be1")) == [lab.mac("be1")]
    assert arp_probe(lab, "router", lab.vip) == []
    assert arp_probe(lab, "lb1", lab.vip) == []


def test_http_to_each_backend_real_address(lab, backend_servers):
    for be in lab.active_backends:
        r = client.http_gets(lab, 3, url=f"http://{lab.addr(be)}/")
        assert r["counts"] == {be: 3} and r["errors"] == 0, r


def test_http_many_sources_parallel(lab, backend_servers):
    r = client.http_gets(lab, 60, url="http://192.0.2.21/", parallel=8,
                         sources=lab.addrs("client"))
    assert r["counts"] == {"be1": 60}, r


def test_download_and_upload_integrity(lab, backend_servers):
    d = client.download(lab, 4 << 20, dst=lab.addr("be2"))
    assert d["ok"] and d["backend"] == "be2", d
    u = client.upload(lab, 4 << 20, dst=lab.addr("be3"))
    assert u["ok"] and u["backend"] == "be3", u


def test_udp_probe_counts_answers_and_outages(lab, backend_servers):
    # 5 s of probes: the cut and the repair below take ~0.2 s on a quiet machine but seconds on a busy
    # one, and the stream must outlast the repair for "recovered" to be seen.
    job = client.start_udp_probe(lab, 5.0, dst=lab.addr("be1"), steady=100)
    job.wait_event("steady", timeout=3)   # answers before the cut
    lab.link_set("br", lab.bridge_port("be1"), False)
    try:
        wait_for(lambda: "state DOWN" in lab.run("br", ["ip", "link", "show", "be1"]).stdout, 2,
                 what="be1 port down")
        time.sleep(0.15)
    finally:
        lab.link_set("br", lab.bridge_port("be1"), True)
    r = job.result()
    assert r["sent"] == 5000 and r["by_backend"].keys() == {"be1"}, r
    assert r["lost"] > 50 and r["longest_outage_ms"] >= 100, r
    assert r["longest_outage"]["recovered"], r


def test_udp_replies_come_from_vip(lab, backend_servers):
    # The probe's socket is connected to the VIP: replies from a real address would not count.
    # Reach be1's VIP directly through a host route on the router, no balancer involved.
    lab.run("router", ["ip", "route", "add", f"{lab.vip}/32", "via", lab.addr("be1")])
    try:
        r = client.udp_probe(lab, 0.2)
        assert r["lost"] == 0 and r["by_backend"] == {"be1": 200}, r
        h = client.http_gets(lab, 2)
        assert h["counts"] == {"be1": 2}, h
    finally:
        lab.run("router", ["ip", "route", "del", f"{lab.vip}/32"])


def test_hold_connections(lab, backend_servers):
    job = client.start_hold(lab, 4, 1.0, dst=lab.addr("be1"))
    job.wait_event("connected", timeout=5)
    r = job.result()
    assert r["ok"] == 4 and r["reset"] == 0 and r["by_backend"] == {"be1": 4}, r


def test_hold_reports_resets(lab, backend_servers):
    job = client.start_hold(lab, 3, 3.0, dst=lab.addr("be2"))
    job.wait_event("connected", timeout=5)
    # A server restart kills its connections; the client sees an RST on its next ACK.
    backend_servers["be2"].stop()
    try:
        r = job.result()
    finally:
        backend_servers["be2"] = servers.start_servers(lab, "be2")
    assert r["ok"] == 0 and r["reset"] + r["states"].get("short", 0) == 3, r


def test_failing_http_server(lab, backend_servers):
    backend_servers["be3"].set_failing(True)
    try:
        r = client.http_gets(lab, 2, url="http://192.0.2.23/")
        assert r["error_kinds"] == {"status 500": 2}, r
    finally:
        backend_servers["be3"].set_failing(False)
    assert client.http_gets(lab, 1, url="http://192.0.2.23/")["counts"] == {"be3": 1}


def test_capture_with_scapy(lab):
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.l2 import Ether
    with Capture(lab, "router", "eth0", "icmp") as cap:
        assert client.ping(lab, lab.addr("be2"), count=2, interval=0.05)["received"] == 2
    pkts = [p for p in cap.packets() if ICMP in p]
    req = [p for p in pkts if p[ICMP].type == 8]
    rep = [p for p in pkts if p[ICMP].type == 0]
    assert len(req) == 2 and len(rep) == 2
    assert req[0][IP].src == "198.51.100.10" and req[0][Ether].dst == lab.mac("be2")
    assert rep[0][Ether].src == lab.mac("be2")


def test_keygen_and_config(lab):
    key = lab.keygen()
    assert os.stat(key).st_mode & 0o777 == 0o600
    with open(key) as f:
        assert len(f.read().strip()) == 64
    path = lab.write_config("vip 192.0.2.100\n")
    with open(path) as f:
        assert f.read() == "vip 192.0.2.100\n"


FAKE_LBD = """#!/bin/sh
trap 'echo "fake got TERM"; exit 0' TERM
echo "fake $0 $*"
while :; do sleep 0.05; done
"""
FAKE_LBCTL = """#!/bin/sh
echo '{"node": "fake", "args": "'"$*"'", "netns": "'"$(ip netns identify)"'"}'
"""


def test_daemon_helpers_with_fake_binaries(lab, tmp_path):
    for name, text in (("lbd", FAKE_LBD), ("vrrpd", FAKE_LBD), ("lbctl", FAKE_LBCTL)):
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(0o755)
    real = lab.build_dir
    lab.build_dir = str(tmp_path)
    try:
        conf = lab.write_config("# fake\n")
        lbd = lab.start_lbd("lb1", conf, ["-v"])
        vrrpd = lab.start_vrrpd("lb1", conf)
        rundir = lab.run_dir("lb1")
        # Both fakes run on their own: vrrpd's line may come after lbd's (seen on a busy machine).
        wait_for(lambda: "fake" in lab.log_tail("lb1-lbd"), 3, what="fake lbd log")
        wait_for(lambda: "fake" in lab.log_tail("lb1-vrrpd"), 3, what="fake vrrpd log")
        assert f"-c {conf} -n lb1 --run-dir {rundir} -f -v" in lab.log_tail("lb1-lbd")
        assert f"-c {conf} -n lb1 --run-dir {rundir} -f" in lab.log_tail("lb1-vrrpd")
        st = lab.status("lb1")
        assert st["args"] == f"--run-dir {rundir} status --json" and st["netns"] == lab.ns("lb1")
        assert lab.wait_status("lb1", lambda s: s["node"] == "fake", 1)
        assert lab.stop(lbd) == 0
        wait_for(lambda: "fake got TERM" in lab.log_tail("lb1-lbd"), 2, what="the fake's TERM message")
        lab.signal(vrrpd, signal.SIGKILL)
        assert vrrpd.wait(3) == -signal.SIGKILL
    finally:
        lab.build_dir = real
    lab.build_dir = str(tmp_path / "none")
    try:
        with pytest.raises(Exception, match="not built"):
            lab.start_lbd("lb1", "/nonexistent.conf")
    finally:
        lab.build_dir = real


def test_wait_for_is_bounded():
    t0 = time.monotonic()
    with pytest.raises(WaitTimeout, match="waiting for the impossible"):
        wait_for(lambda: False, 0.2, what="the impossible")
    assert time.monotonic() - t0 < 1
    assert wait_for(lambda: 42, 1) == 42


def test_topology_rejects_foreign_addresses():
    topo = topology()
    topo["hosts"]["lb1"]["addrs"] = ["10.0.0.1/24"]
    with pytest.raises(Exception, match="RFC 5737"):
        Lab(topo)


# ----------------------------------------------------------------------------- cleanup

def test_lifecycle_leaves_root_namespace_untouched(need_root):
    before = root_state()
    topo = topology(backends=2, spares=0, client_addrs=1)
    with Lab(topo) as lab:
        prefix = lab.prefix
        assert len(our_netns(prefix)) == 1 + len(topo["hosts"])
        assert client.ping(lab, "192.0.2.22")["received"] == 1
        servers.start_servers(lab, "be1")  # a running process must not keep anything alive
        tmp = lab.tmpdir
    assert our_netns(prefix) == []
    assert not os.path.exists(tmp)
    assert root_state() == before


def test_cleanup_after_exception(need_root):
    lab = Lab(topology(backends=1, spares=0, client_addrs=1))
    with pytest.raises(RuntimeError):
        with lab:
            servers.start_servers(lab, "be1")
            raise RuntimeError("boom")
    assert our_netns(lab.prefix) == []
    assert os.path.isdir(lab.tmpdir), "a failed lab keeps its logs"
    import shutil
    shutil.rmtree(lab.tmpdir)


CHILD = textwrap.dedent("""
    import signal, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)  # a background shell ignores it
    signal.signal(signal.SIGHUP, signal.SIG_DFL)              # and nohup this one: the lab then keeps it
    sys.path.insert(0, {here!r})
    from lib.lab import Lab, topology
    from lib import servers
    lab = Lab(topology(backends=1, spares=0, client_addrs=1)).build()
    servers.start_servers(lab, "be1")
    print(lab.prefix, flush=True)
    time.sleep(30)
""")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_cleanup_on_signal(need_root, sig):
    p = subprocess.Popen([sys.executable, "-c", CHILD.format(here=HERE)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        prefix = p.stdout.readline().strip()
        assert NS_RE.match(prefix), p.stderr.read() if p.poll() is not None else prefix
        assert our_netns(prefix)
        p.send_signal(sig)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            _out, err = p.communicate()
            raise AssertionError(f"no exit 10 s after {sig.name}; its stderr:\n{err[-3000:]}") from None
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert our_netns(prefix) == [], f"namespaces left after {sig.name}"
    assert p.returncode != 0


def test_stale_lab_of_killed_run_is_reaped(need_root):
    from lib.lab import reap_stale
    p = subprocess.Popen([sys.executable, "-c", CHILD.format(here=HERE)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    prefix = p.stdout.readline().strip()
    assert NS_RE.match(prefix)
    p.kill()  # SIGKILL: no handler runs; the namespaces and the server survive
    p.wait(timeout=5)
    assert our_netns(prefix)
    reaped, _ = reap_stale(verbose=False)
    assert our_netns(prefix) == [] and len(reaped) > 0
    import glob
    import shutil
    for d in glob.glob(os.path.join(TMP_ROOT, f"dsrlb-{prefix[:-1]}-*")):
        shutil.rmtree(d)

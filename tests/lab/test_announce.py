"""mode = ecmp without a routing daemon: lbd announces each VIP as a route in table 100 through the
TUN device it holds (dsrlb0), answers no ARP for the VIPs and forwards what the router sends to the
node's own MAC; the route follows the backends (per VIP), lbctl drain-node, SIGTERM (withdraw first,
forward until the router has stopped sending: 0 probes lost) and dies with lbd on kill -9. The test
plays the routing daemon: a static route on the router sends the VIP to lb1, and is moved to lb2 when
lb1's announcement disappears. A reload that changes announce_table is refused with file:line, and
drain-node is refused in mode = pair. docs/deploy-ecmp.md, "How dsrlb announces".
"""

import json
import os
import re
import signal
import time

import pytest

from lib import client, servers
from lib.capture import arp_probe
from lib.lab import VIP, topology, wait_for
from lib.lbdrunner import LbdRunner
from lib.procinfo import nft_helper, proc_status

VIP2 = "192.0.2.101"
TOPOLOGY = topology(lbs=3, vips=(VIP, VIP2))
TABLE, DEVICE, RTPROT = 100, "dsrlb0", 177
DRAIN_QUIET_MS, STOP_TIMEOUT_MS = 300, 5000
CAP_NET_ADMIN = 12


def ecmp_conf(lab, extra="", mode="ecmp"):
    """echo (9000/udp) on VIP over be1..be3, unchecked; web (80/tcp) on VIP2 over be4 alone, with
    fast TCP checks, so that stopping be4's server leaves VIP2 without a usable backend. mode=pair:
    the same services for the pair lb1 + lb3."""
    if mode == "ecmp":
        nodes = "".join(f"\n[node {n}]\naddress = {lab.addr(n)}\n" for n in lab.lbs)
    else:
        nodes = "".join(f"\n[node {n}]\naddress = {lab.addr(n)}\npriority = {p}\n"
                        for n, p in (("lb1", 150), ("lb3", 100)))
    echo = "".join(f"backend = {lab.addr(b)}\n" for b in ("be1", "be2", "be3"))
    return f"""[cluster]
mode = {mode}
interface = eth0
key_file = {lab.tmpdir}/conf/pair.key
sync = no
drain_quiet = {DRAIN_QUIET_MS}ms
stop_timeout = {STOP_TIMEOUT_MS}ms
{extra}{nodes}
[service echo]
vip = {VIP}
port = 9000
protocol = udp
check = none
{echo}
[service web]
vip = {VIP2}
port = 80
protocol = tcp
check = tcp
check_interval = 100ms
check_timeout = 50ms
fall = 2
rise = 1
backend = {lab.addr('be4')}
"""


def routes(lab, node):
    """The routes of table 100 on node: {dst: route} ({} when the table does not exist at all)."""
    r = lab.run(node, ["ip", "-j", "route", "show", "table", str(TABLE)], check=False, timeout=5)
    if r.returncode and "table does not exist" in r.stderr:
        return {}
    assert r.returncode == 0, r
    return {x["dst"]: x for x in json.loads(r.stdout or "[]")}


def device(lab, node):
    r = lab.run(node, ["ip", "-j", "link", "show", "dev", DEVICE], check=False, timeout=5)
    return json.loads(r.stdout)[0] if r.returncode == 0 else None


def wait_routes(lab, node, want, timeout=3):
    """Poll until table 100 on node holds exactly the VIPs in `want`; returns (routes, seconds)."""
    t0 = time.monotonic()
    last = {}

    def check():
        nonlocal last
        last = routes(lab, node)
        return set(last) == set(want)

    wait_for(check, timeout, interval=0.01, what=f"table {TABLE} on {node} holding {sorted(want)}")
    return last, time.monotonic() - t0


def router_route(lab, via):
    """The test plays the routing daemon: VIP/32 via `via` on the router (None: no route)."""
    if via is None:
        lab.run("router", ["ip", "route", "del", f"{VIP}/32"], check=False, timeout=5)
    else:
        lab.run("router", ["ip", "route", "replace", f"{VIP}/32", "via", via], timeout=5)


@pytest.fixture(scope="module")
def be4_web(lab):
    srv = servers.start_servers(lab, "be4", udp_port=0, sink_port=0)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def nodes(lab, backend_servers, be4_web):
    lab.keygen()
    runners = {n: LbdRunner(lab, n, ecmp=True) for n in ("lb1", "lb2")}
    try:
        yield runners
    finally:
        for r in runners.values():
            r.stop()
        router_route(lab, None)


def ready(lab, runner):
    """runner's lbd running the module's config with both VIPs announced."""
    runner.ensure(ecmp_conf(lab))
    wait_routes(lab, runner.node, {VIP, VIP2})
    return runner.wait_json({"cluster_mode": "ecmp", "announced": True, "announce_why": "announced"})


# ----------------------------------------------------------------------------- tests

def test_announces_routes_answers_no_arp_and_forwards(lab, nodes):
    lb1 = nodes["lb1"]
    st = ready(lab, lb1)
    assert st["active"] and st["mode_reason"] == "ecmp", st
    assert {a["vip"]: (a["announced"], a["why"]) for a in st["announcements"]} == \
        {VIP: (True, "announced"), VIP2: (True, "announced")}, st["announcements"]
    r = routes(lab, "lb1")
    for vip in (VIP, VIP2):
        assert r[vip]["dev"] == DEVICE and str(r[vip]["protocol"]) == str(RTPROT), r
    # The device: a TUN with carrier, held by lbd (the routing daemon exports only routes of live links).
    dev = device(lab, "lb1")
    assert dev and "UP" in dev["flags"] and "LOWER_UP" in dev["flags"], dev

    # Nobody answers ARP for the VIPs (positive control first, so this can fail).
    assert arp_probe(lab, "router", lab.addr("be1")) == [lab.mac("be1")]
    assert arp_probe(lab, "router", VIP) == []
    assert arp_probe(lab, "router", VIP2) == []

    # Routed to lb1's own address, VIP traffic arrives for lb1's MAC and is forwarded.
    router_route(lab, lab.addr("lb1"))
    before = lb1.counters()
    res = client.udp_probe(lab, 0.5, interval=0.005)
    after = lb1.counters()
    assert res["lost"] == 0 and res["answered"] > 50, res
    assert after["forwarded"] - before["forwarded"] >= res["answered"], (before, after)
    assert after["vip_frames"] - before["vip_frames"] >= res["answered"], (before, after)
    assert after["arp_replies"] == before["arp_replies"] == 0 and after["garp_sent"] == 0, after

    # lbd holds no capability; its helper alone has CAP_NET_ADMIN (it adds the routes).
    pid = lb1.proc.pid
    for tid in os.listdir(f"/proc/{pid}/task"):
        assert int(proc_status(f"{pid}/task/{tid}")["CapEff"], 16) == 0, f"lbd thread {tid}"
    helper = nft_helper(pid)
    assert int(proc_status(helper)["CapEff"], 16) == 1 << CAP_NET_ADMIN, proc_status(helper)

    # vrrpd is not used: set-mode is refused, and lbctl status does not ask vrrpd.
    r = lb1.lbctl("set-mode", "standby")
    assert r.returncode == 1 and "mode = ecmp" in r.stderr, r
    text = lb1.ok("status")
    assert "announce yes" in text and "vrrpd" not in text, text


def test_vip_withdrawn_when_its_backends_fail(lab, nodes, be4_web):
    lb1 = nodes["lb1"]
    ready(lab, lb1)
    try:
        t0 = time.monotonic()
        be4_web.stop()
        r, _ = wait_routes(lab, "lb1", {VIP}, timeout=5)
        gone = time.monotonic() - t0
        st = lb1.wait_json({"announced": False, "announce_why": "no usable backend for service web"})
        assert {a["vip"]: a["announced"] for a in st["announcements"]} == {VIP: True, VIP2: False}, st
        # The other VIP keeps its route: granularity is per VIP.
        assert r[VIP]["dev"] == DEVICE, r
        print(f"\nVIP2 withdrawn {gone * 1000:.0f} ms after its only backend's server stopped "
              f"(checks every 100 ms, fall 2)")
        assert gone < 2.0, gone
    finally:
        be4_web.proc = servers.start_servers(lab, "be4", udp_port=0, sink_port=0).proc
    _, back = wait_routes(lab, "lb1", {VIP, VIP2}, timeout=5)
    lb1.wait_json({"announced": True, "announce_why": "announced"})
    print(f"VIP2 announced again {back * 1000:.0f} ms after the server came back")


def test_drain_node_withdraws_and_keeps_forwarding(lab, nodes):
    lb1 = nodes["lb1"]
    ready(lab, lb1)
    router_route(lab, lab.addr("lb1"))
    lb1.ok("drain-node")
    wait_routes(lab, "lb1", set(), timeout=2)
    st = lb1.wait_json({"draining": True, "announced": False, "announce_why": "draining (lbctl drain-node)"})
    assert st["active"], st
    # Still forwarding what the router sends (a routing daemon would take a moment to move it).
    before = lb1.counters()["forwarded"]
    res = client.udp_probe(lab, 0.3, interval=0.005)
    assert res["lost"] == 0, res
    assert lb1.counters()["forwarded"] - before >= res["answered"]
    assert "DRAINING" in lb1.ok("status")
    lb1.ok("undrain-node")
    wait_routes(lab, "lb1", {VIP, VIP2}, timeout=2)
    lb1.wait_json({"draining": False, "announced": True})


def test_reload_changing_announce_table_is_refused(lab, nodes):
    lb1 = nodes["lb1"]
    ready(lab, lb1)
    text = ecmp_conf(lab, extra="announce_table = 101\n")
    lb1.write(text)
    line = next(i for i, l in enumerate(lab.config_text(text).splitlines(), 1) if l.startswith("announce_table"))
    r = lb1.lbctl("reload")
    assert r.returncode == 1, r
    assert re.search(rf"{re.escape(lb1.conf)}:{line}: announce_table changes only on restart", r.stderr), r.stderr
    st = lb1.status()
    assert f":{line}: announce_table" in st["last_reload_error"], st
    assert set(routes(lab, "lb1")) == {VIP, VIP2}
    other = lab.run("lb1", ["ip", "route", "show", "table", "101"], check=False, timeout=5)
    assert VIP not in other.stdout, other


def test_reload_adds_and_removes_a_vip_route(lab, nodes):
    """A VIP added by a reload is announced (the helper, which announces only VIPs of the config file,
    reads the file again), and its route goes when a reload removes it."""
    lb1 = nodes["lb1"]
    ready(lab, lb1)
    vip3 = "192.0.2.102"
    lb1.write(ecmp_conf(lab) + f"\n[service extra]\nvip = {vip3}\nport = 80\ncheck = none\n"
              f"backend = {lab.addr('be1')}\n")
    lb1.ok("reload")
    r, _ = wait_routes(lab, "lb1", {VIP, VIP2, vip3})
    assert r[vip3]["dev"] == DEVICE, r
    lb1.write(ecmp_conf(lab))
    lb1.ok("reload")
    wait_routes(lab, "lb1", {VIP, VIP2})
    st = lb1.wait_json({"announced": True})
    assert {a["vip"] for a in st["announcements"]} == {VIP, VIP2}, st
    assert "refused to announce" not in lab.log_tail("lb1-lbd", 40)


def test_sigterm_withdraws_first_and_loses_nothing(lab, nodes):
    lb1, lb2 = nodes["lb1"], nodes["lb2"]
    ready(lab, lb1)
    ready(lab, lb2)
    router_route(lab, lab.addr("lb1"))
    job = client.start_udp_probe(lab, 4.0, interval=0.001, steady=200)
    job.wait_event("steady", timeout=3)
    proc = lb1.proc
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    # The routing daemon's part: the announcement disappears, the router moves the VIP to lb2.
    _, withdrawn = wait_routes(lab, "lb1", set(), timeout=2)
    assert proc.poll() is None, "lbd left before the router stopped sending"
    router_route(lab, lab.addr("lb2"))
    t_moved = time.monotonic()
    proc.wait(timeout=STOP_TIMEOUT_MS / 1000 + 2)
    t_exit = time.monotonic()
    lb1.proc = None
    res = job.result()
    log = lab.log_tail("lb1-lbd", 20)
    print(f"\nSIGTERM: routes withdrawn after {withdrawn * 1000:.0f} ms; router moved at "
          f"{(t_moved - t0) * 1000:.0f} ms; lbd kept forwarding {(t_exit - t0) * 1000:.0f} ms in all and left "
          f"{(t_exit - t_moved) * 1000:.0f} ms after the router moved (drain_quiet {DRAIN_QUIET_MS} ms); "
          f"probes sent {res['sent']} lost {res['lost']}")
    assert proc.returncode == 0, log
    assert res["lost"] == 0, res
    assert "the routers have moved" in log, log
    # It left because the router stopped sending, not at stop_timeout.
    assert t_exit - t_moved < DRAIN_QUIET_MS / 1000 + 1.5, (t_exit - t_moved, log)
    assert device(lab, "lb1") is None


def test_kill9_removes_route_and_device(lab, nodes):
    lb1 = nodes["lb1"]
    ready(lab, lb1)
    pid = lb1.proc.pid
    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not routes(lab, "lb1") and device(lab, "lb1") is None, 2, interval=0.002,
             what="route and device gone after kill -9")
    took = time.monotonic() - t0
    lb1.proc.wait(timeout=5)
    lb1.proc = None
    print(f"\nkill -9 of lbd: route and {DEVICE} gone within {took * 1000:.1f} ms (an upper bound: each poll "
          f"runs `ip` twice in the namespace)")
    assert took < 1.0, took
    # And a new lbd announces again (no left-over device in the way).
    ready(lab, lb1)


def test_drain_node_refused_in_pair_mode(lab, backend_servers, be4_web):
    lb3 = LbdRunner(lab, "lb3")
    try:
        lb3.ensure(ecmp_conf(lab, mode="pair"))
        for cmd in ("drain-node", "undrain-node"):
            r = lb3.lbctl(cmd)
            assert r.returncode == 1 and "mode = ecmp" in r.stderr and "mode = pair" in r.stderr, r
        st = lb3.status()
        assert st["cluster_mode"] == "pair" and not st["announced"] and not st.get("announcements"), st
        assert not routes(lab, "lb3") and device(lab, "lb3") is None
    finally:
        lb3.stop()

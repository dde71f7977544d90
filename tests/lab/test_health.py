"""Backend health, drain and reload on one standalone lbd (lb1).

A killed backend leaves within fall x interval (+ timeout) and rejoins after rise checks (both times
measured); flows of a dead backend move or stay as on_backend_down says; an HTTP check sees a 500
that a TCP check cannot; drain and weight=0 keep open connections while new ones go elsewhere; a
reload under load resets nothing and a broken one changes nothing; a service without a usable
backend drops its traffic or uses its sorry backend; garbage on the control socket costs only the
client that sent it.

Servers on the backends, each its own process so that one can be killed alone:
    main       HTTP 80 (web, webhttp), UDP 9000 echo (echo, echokeep), TCP 81   be1..be4
    check9000  TCP 9000: what the checks of the UDP services connect to          be1..be3
    alt        HTTP 8080 (lonely, sorry; be4 is the sorry backend)               be1, be2, be4
"""

import json
import os
import random
import socket
import time

import pytest

from lib import client, servers
from lib.lab import VIP, CommandError, topology, wait_for
from lib.lbdrunner import LbdRunner

VIP2 = "192.0.2.101"
TOPOLOGY = topology(vips=(VIP, VIP2))

INTERVAL, TIMEOUT, FALL, RISE = 0.2, 0.1, 3, 2
SLACK = 0.1  # status polling, process exit and scheduling in the lab
FIN_TIMEOUT = 1.0  # tcp_fin_timeout of the module's config
# lbd expires flows incrementally: each worker scans 1/50 of its table every 100 ms, so a closed flow
# goes up to one full pass (5 s) after its tcp_fin_timeout, not at once (measured under load: 1.2 s,
# or 5.9 s when the cursor had just passed its slot). Waits allow two passes: the ticks slip under load.
EXPIRY_PASS = 5.0
WEB = ["be1", "be2", "be3"]
ROLES = {
    "main": {},
    "check9000": {"http_port": 0, "udp_port": 0, "sink_port": 9000},
    "alt": {"http_port": 8080, "udp_port": 0, "sink_port": 0},
}
PLACES = [(b, "main") for b in ("be1", "be2", "be3", "be4")] + \
         [(b, "check9000") for b in WEB] + [(b, "alt") for b in ("be1", "be2", "be4")]


# ----------------------------------------------------------------------------- config

def make_conf(lab, web=None, web_extra=()):
    """The module's config; `web` = {backend host: weight} of service web (default be1..be3 at 1),
    `web_extra` = lines added right after web's header."""
    web = web or {b: 1 for b in WEB}
    checks = (f"check_interval = {int(INTERVAL * 1000)}ms\ncheck_timeout = {int(TIMEOUT * 1000)}ms\n"
              f"fall = {FALL}\nrise = {RISE}\n")

    def backends(hosts):
        return "".join(f"backend = {lab.addr(h)}{'' if w == 1 else f' weight={w}'}\n"
                       for h, w in hosts.items())

    three = {b: 1 for b in WEB}
    two = {"be1": 1, "be2": 1}
    return (f"[cluster]\ninterface = eth0\nkey_file = {lab.tmpdir}/conf/pair.key\n"
            f"garp_repeat = 0\ntcp_fin_timeout = {int(FIN_TIMEOUT)}s\n"
            f"\n[node lb1]\naddress = {lab.addr('lb1')}\npriority = 150\n"
            "\n[service web]\n" + "".join(line + "\n" for line in web_extra)
            + f"vip = {VIP}\nport = 80\ncheck = tcp\n" + checks + backends(web)
            + f"\n[service webhttp]\nvip = {VIP2}\nport = 80\ncheck = http\n" + checks + backends(three)
            + f"\n[service echo]\nvip = {VIP}\nport = 9000\nprotocol = udp\ncheck = tcp\non_backend_down = reschedule\n"
            + checks + backends(three)
            + f"\n[service echokeep]\nvip = {VIP2}\nport = 9000\nprotocol = udp\ncheck = tcp\non_backend_down = keep\n"
            + checks + backends(three)
            + f"\n[service lonely]\nvip = {VIP}\nport = 8080\n" + checks + backends(two)
            + f"\n[service sorry]\nvip = {VIP2}\nport = 8080\nsorry_backend = {lab.addr('be4')}\n"
            + checks + backends(two))


def service(st, name):
    return next(s for s in st["services"] if s["name"] == name)


def backend(st, svc, addr):
    return next(b for b in service(st, svc)["backends"] if b["address"] == addr)


def poll_backend(lb, svc, addr, pred, timeout, what):
    """Poll until pred(backend) holds; (backend, t) with t the monotonic time of the status reply."""
    def check():
        t0 = time.monotonic()
        b = backend(lb.status(), svc, addr)
        t = (t0 + time.monotonic()) / 2
        return (b, t) if pred(b) else None

    return wait_for(check, timeout, 0.02, what=f"{addr} of {svc}: {what}", ignore=(CommandError, ValueError))


def changed_at(b, t):
    """Monotonic time of the backend's last up/down change, from a status taken at t."""
    return t - b["last_change_ms_ago"] / 1000


def udp_ask(lab, dst, sources, timeout=2.0):
    """One datagram from each fixed (address, port) to dst:9000: {"addr:port": answering backend};
    a flow that got no answer within timeout is missing."""
    return client.udp_query(lab, sources, dst=dst, timeout=timeout, resend=0.2)


# ----------------------------------------------------------------------------- fixtures

def start_server(lab, host, role, wait=True):
    return servers.start_servers(lab, host, wait=wait, **ROLES[role])


@pytest.fixture(scope="module")
def srv(lab):
    started = {p: start_server(lab, *p, wait=False) for p in PLACES}
    for s in started.values():
        s.wait_ready()
    return started


@pytest.fixture(scope="module")
def lbd(lab, srv):
    lab.keygen()
    runner = LbdRunner(lab, "lb1")
    runner.start(make_conf(lab))
    try:
        yield runner
    finally:
        runner.stop()


@pytest.fixture
def lb(lab, lbd, srv):
    """lbd with the base config, every server running and healthy, nothing drained, all up."""
    for p, s in list(srv.items()):
        s.set_failing(False)
        if not s.running():
            srv[p] = start_server(lab, *p)
    base = make_conf(lab)
    if not lbd.running():
        lbd.start(base)
    elif lbd.text != base:
        lbd.write(base)
        lbd.ok("reload")
    st = wait_for(lbd.status, 5, what="lbd answering lbctl", ignore=(CommandError, ValueError))
    for s in st["services"]:
        for b in s["backends"]:
            if b["draining"] and b["weight"]:
                lbd.ok("undrain", s["name"], b["address"])
    lbd.wait_ready()
    return lbd


def gets(lab, count, url=None, **kw):
    kw.setdefault("parallel", 6)
    kw.setdefault("sources", lab.addrs("client"))
    return client.http_gets(lab, count, url=url, **kw)


# ----------------------------------------------------------------------------- health checks

def test_killed_backend_leaves_within_fall_and_rejoins_after_rise(lab, lb, srv):
    be1 = lab.addr("be1")
    r = gets(lab, 30)
    assert set(r["counts"]) == set(WEB) and r["errors"] == 0, r

    srv["be1", "main"].stop()
    t_kill = time.monotonic()
    b, t = poll_backend(lb, "web", be1, lambda b: b["state"] == "down", FALL * INTERVAL + TIMEOUT + 2,
                        "down after its server was killed")
    detect = changed_at(b, t) - t_kill
    assert b["healthy"] is False and b["check_result"] == "connection refused", b
    assert b["check_failures"] >= FALL, b
    r = gets(lab, 30)
    assert set(r["counts"]) == {"be2", "be3"} and r["errors"] == 0, r

    t_start = time.monotonic()
    srv["be1", "main"] = start_server(lab, "be1", "main")
    t_ready = time.monotonic()
    b, t = poll_backend(lb, "web", be1, lambda b: b["state"] == "up", RISE * INTERVAL + TIMEOUT + 2,
                        "up after its server was restarted")
    rejoin = changed_at(b, t) - t_ready
    print(f"\nmeasured: down {detect * 1000:.0f} ms after the kill (bounds "
          f"{(FALL - 1) * INTERVAL * 1000:.0f}..{(FALL * INTERVAL + TIMEOUT) * 1000:.0f}), up "
          f"{rejoin * 1000:.0f} ms after the server listened (bounds {(RISE - 1) * INTERVAL * 1000:.0f}.."
          f"{(RISE * INTERVAL + TIMEOUT) * 1000:.0f}; server start took {(t_ready - t_start) * 1000:.0f} ms)")
    # fall failed checks span at least (fall - 1) intervals and end at most fall intervals
    # (+ one timeout) after the kill; likewise rise passed checks after the server listens.
    assert (FALL - 1) * INTERVAL - SLACK / 2 <= detect <= FALL * INTERVAL + TIMEOUT + SLACK, detect
    assert changed_at(b, t) - t_start >= (RISE - 1) * INTERVAL, (t_start, t_ready, b)
    assert (RISE - 1) * INTERVAL - SLACK <= rejoin <= RISE * INTERVAL + TIMEOUT + SLACK, rejoin
    assert b["check_result"] == "ok", b
    r = gets(lab, 30)
    assert set(r["counts"]) == set(WEB) and r["errors"] == 0, r


def test_established_udp_flows_follow_on_backend_down(lab, lb, srv):
    """Only be1's check port dies: its UDP echo still answers, so a kept flow shows that it stayed."""
    be1 = lab.addr("be1")
    src = lab.addrs("client")
    resched = [[a, 40000 + i] for a in src for i in range(3)]
    keep = [[a, 41000 + i] for a in src for i in range(3)]
    before_r, before_k = udp_ask(lab, VIP, resched), udp_ask(lab, VIP2, keep)
    assert len(before_r) == len(before_k) == 30, (before_r, before_k)
    on_be1_r = sorted(k for k, v in before_r.items() if v == "be1")
    on_be1_k = sorted(k for k, v in before_k.items() if v == "be1")
    assert on_be1_r and on_be1_k, ("no flow landed on be1", before_r, before_k)

    srv["be1", "check9000"].stop()
    for svc in ("echo", "echokeep"):
        poll_backend(lb, svc, be1, lambda b: b["state"] == "down", FALL * INTERVAL + TIMEOUT + 2, "down")
    after_r, after_k = udp_ask(lab, VIP, resched), udp_ask(lab, VIP2, keep)

    # reschedule: be1's flows now answered elsewhere, every other flow where it was
    assert len(after_r) == 30, after_r
    moved = {k: after_r[k] for k in on_be1_r}
    assert set(moved.values()) <= {"be2", "be3"}, moved
    assert {k: v for k, v in after_r.items() if k not in moved} == \
           {k: v for k, v in before_r.items() if k not in moved}
    # keep: every flow stays, be1's included
    assert after_k == before_k
    flows = json.loads(lb.ok("flows", "--json", "--limit", "100000"))["flows"]
    kept = {f["client"]: f["backend"] for f in flows if f["vip"] == f"{VIP2}:9000"}
    assert all(kept.get(k) == be1 for k in on_be1_k), (on_be1_k, kept)
    st = lb.status()
    assert backend(st, "echo", be1)["flows"] == 0, backend(st, "echo", be1)
    assert backend(st, "echokeep", be1)["flows"] >= len(on_be1_k), backend(st, "echokeep", be1)
    # and new flows never go to the dead backend, whatever on_backend_down says
    for vip, base in ((VIP, 42000), (VIP2, 43000)):
        fresh = udp_ask(lab, vip, [[a, base + i] for a in src for i in range(3)])
        assert len(fresh) == 30 and "be1" not in fresh.values(), (vip, fresh)


@pytest.mark.workerless
def test_http_500_is_down_under_http_check_and_up_under_tcp(lab, lb, srv):
    be2 = lab.addr("be2")
    checks0 = backend(lb.status(), "web", be2)["checks"]
    srv["be2", "main"].set_failing(True)
    b, _ = poll_backend(lb, "webhttp", be2, lambda b: b["state"] == "down", FALL * INTERVAL + TIMEOUT + 2,
                        "down while answering 500")
    assert b["check_result"] == "HTTP 500", b
    # The TCP check of the same server kept passing, over at least fall + 1 checks.
    b, _ = poll_backend(lb, "web", be2, lambda b: b["checks"] >= checks0 + FALL + 1, 3, f"{FALL + 1} checks")
    assert b["state"] == "up" and b["check_result"] == "ok", b
    r = gets(lab, 30, url=f"http://{VIP2}/")
    assert set(r["counts"]) == {"be1", "be3"} and r["errors"] == 0, r
    r = gets(lab, 30, url=f"http://{VIP}/")
    assert r["error_kinds"].get("status 500", 0) > 0, r  # a TCP check cannot see it

    srv["be2", "main"].set_failing(False)
    poll_backend(lb, "webhttp", be2, lambda b: b["state"] == "up", RISE * INTERVAL + TIMEOUT + 2,
                 "up once it answers 200")
    r = gets(lab, 30, url=f"http://{VIP2}/")
    assert set(r["counts"]) == set(WEB) and r["errors"] == 0, r


# ----------------------------------------------------------------------------- drain, weight 0, reload

def drain_check(lab, lb, start_drain, stop_drain, held=30):
    """Open `held` streaming connections, drain be1, run new connections: none reaches be1 and the
    held ones all finish; status shows be1 draining with its flows, which fall to 0 once they end."""
    be1 = lab.addr("be1")
    job = client.start_hold(lab, held, 3.0)
    job.wait_event("connected", timeout=10)
    start_drain()
    b = backend(lb.status(), "web", be1)
    assert b["state"] == "draining" and b["draining"] and b["healthy"], b
    text = lb.ok("status")
    assert any(line.split()[:2] == [be1, "draining"] for line in text.splitlines()), text
    r = gets(lab, 60)
    assert set(r["counts"]) == {"be2", "be3"} and r["errors"] == 0, r
    res = job.result()
    on_be1 = res["by_backend"].get("be1", 0)
    assert on_be1 > 0, res["by_backend"]
    broken = [(d["backend"], d["state"], d["bytes"]) for d in res["details"] if d["state"] != "ok"]
    assert res["ok"] == held and res["reset"] == 0, (res["states"], broken)
    assert b["flows"] >= on_be1, (b, res["by_backend"])
    poll_backend(lb, "web", be1, lambda b: b["flows"] == 0, FIN_TIMEOUT + 2 * EXPIRY_PASS,
                 "no flows left once its connections ended")
    stop_drain()
    b = backend(lb.status(), "web", be1)
    assert b["state"] == "up" and not b["draining"], b
    r = gets(lab, 60)
    assert set(r["counts"]) == set(WEB) and r["errors"] == 0, r


def test_drain_keeps_open_connections_and_sends_no_new_ones(lab, lb):
    be1 = lab.addr("be1")
    drain_check(lab, lb, lambda: lb.ok("drain", "web", be1), lambda: lb.ok("undrain", "web", be1))


def test_weight_zero_and_reload_drains_like_drain(lab, lb):
    def zero():
        lb.write(make_conf(lab, web={"be1": 0, "be2": 1, "be3": 1}))
        lb.ok("reload")
        assert backend(lb.status(), "web", lab.addr("be1"))["weight"] == 0

    def back():
        lb.write(make_conf(lab))
        lb.ok("reload")

    drain_check(lab, lb, zero, back)


def test_reload_under_load_adds_backend_and_changes_weight(lab, lb):
    reloads = lb.status()["reloads"]
    job = client.start_hold(lab, 50, 4.0)
    job.wait_event("connected", timeout=15)
    lb.write(make_conf(lab, web={"be1": 1, "be2": 3, "be3": 1, "be4": 1}))
    lb.ok("reload")
    st = lb.wait_ready(3)
    assert st["reloads"] == reloads + 1 and st["last_reload_error"] == "", st
    assert backend(st, "web", lab.addr("be2"))["weight"] == 3
    r = gets(lab, 300, parallel=8)
    c = r["counts"]
    assert r["errors"] == 0 and set(c) == set(WEB) | {"be4"}, r
    # be2 has half of the weight, the others a sixth each
    assert c["be2"] >= 1.5 * max(c["be1"], c["be3"], c["be4"]), c
    res = job.result()
    assert res["ok"] == 50 and res["reset"] == 0, res
    assert res["by_backend"].keys() <= set(WEB), res["by_backend"]


@pytest.mark.parametrize("kind", ["syntax", "unknown_key"])
def test_broken_reload_changes_nothing(lab, lb, kind):
    bad_line = {"syntax": "this line is not a key and a value", "unknown_key": "colour = blue"}[kind]
    # A valid change (a new backend, a new weight) rides along: it must not be applied either.
    text = make_conf(lab, web={"be1": 1, "be2": 3, "be3": 1, "be4": 1}, web_extra=[bad_line])
    line = text.splitlines().index(bad_line) + 1
    where = f"{lb.conf}:{line}:"
    st0 = lb.status()
    probe = client.start_udp_probe(lab, 1.0, interval=0.005)
    probe.wait_event("answered", timeout=3)
    lb.write(text)
    r = lb.lbctl("reload")
    assert r.returncode != 0 and where in r.stderr, (r.returncode, r.stdout, r.stderr)
    st = lb.status()
    assert st["reloads"] == st0["reloads"] and st["config_digest"] == st0["config_digest"]
    assert where in st["last_reload_error"], st["last_reload_error"]
    strip = ("flows", "forwarded", "forwarded_bytes", "checks", "check_failures", "last_change_ms_ago")
    assert [[{k: v for k, v in b.items() if k not in strip} for b in s["backends"]] for s in st["services"]] == \
           [[{k: v for k, v in b.items() if k not in strip} for b in s["backends"]] for s in st0["services"]]
    text_status = lb.ok("status")
    assert "WARNING last reload failed" in text_status and where in text_status, text_status
    res = probe.result()
    assert res["lost"] == 0 and res["answered"] == res["sent"], res
    g = gets(lab, 30)
    assert set(g["counts"]) == set(WEB) and g["errors"] == 0, g
    # A good reload clears the error.
    lb.write(make_conf(lab))
    lb.ok("reload")
    st = lb.status()
    assert st["last_reload_error"] == "" and st["reloads"] == st0["reloads"] + 1, st


# ----------------------------------------------------------------------------- every backend down

def test_every_backend_down_drops_or_uses_sorry_backend(lab, lb, srv):
    for vip in (VIP, VIP2):
        r = gets(lab, 20, url=f"http://{vip}:8080/")
        assert set(r["counts"]) == {"be1", "be2"} and r["errors"] == 0, (vip, r)
    srv["be1", "alt"].stop()
    srv["be2", "alt"].stop()

    def all_down(name):
        return {"name": name, "all_down": True, "backends": lambda bs: all(b["state"] == "down" for b in bs)}

    st = lb.wait_json({"services": [all_down("lonely"), all_down("sorry")]}, FALL * INTERVAL + TIMEOUT + 2,
                      "lonely and sorry all down")
    assert not service(st, "web")["all_down"]
    drops0 = st["counters"]["drop_no_backend"]
    # lonely: dropped (a timeout, not a refusal: nobody answers at all)
    r = gets(lab, 5, url=f"http://{VIP}:8080/", timeout=0.5)
    assert r["ok"] == 0 and r["error_kinds"] == {"timeout": 5}, r
    assert lb.status()["counters"]["drop_no_backend"] >= drops0 + 5
    # sorry: every new connection goes to the sorry backend
    r = gets(lab, 20, url=f"http://{VIP2}:8080/")
    assert r["counts"] == {"be4": 20} and r["errors"] == 0, r
    text = lb.ok("status")
    head = {line.split()[1]: line for line in text.splitlines() if line.startswith("service ")}
    assert "NO USABLE BACKEND" in head["lonely"] and "dropped" in head["lonely"], text
    assert "NO USABLE BACKEND" in head["sorry"], text


@pytest.mark.workerless
def test_all_down_text_names_the_sorry_backend(lab, lb, srv):
    srv["be1", "alt"].stop()
    srv["be2", "alt"].stop()
    lb.wait_json({"services": [{"name": "sorry", "all_down": True}]}, FALL * INTERVAL + TIMEOUT + 2, "sorry all down")
    text = lb.ok("status")
    head = next(line for line in text.splitlines() if line.startswith("service sorry "))
    assert "dropped" not in head and lab.addr("be4") in head, head


# ----------------------------------------------------------------------------- control socket

@pytest.mark.workerless
def test_garbage_on_control_socket_drops_only_that_client(lab, lb):
    path = os.path.join(lab.run_dir("lb1"), "lbd.sock")
    c0 = lb.status()["counters"]
    bad0, over0 = c0["ctl_bad_requests"], c0.get("ctl_oversized", 0)
    noise = bytearray(random.Random(7).randbytes(8192))
    noise[0] |= 0x80  # its length prefix is then over the 64 KiB request limit
    cases = {
        "huge length prefix": b"\xff\xff\xff\xff" + b"x" * 64,
        "random bytes": bytes(noise),
        "length-prefixed garbage": b"\x00\x00\x00\x20" + b"\xff" * 32,  # no valid protobuf
    }
    for name, data in cases.items():
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(3)
            s.connect(path)
            try:
                s.sendall(data)
                got = s.recv(4096)
            except (ConnectionResetError, BrokenPipeError):
                got = b""
            except socket.timeout:
                pytest.fail(f"{name}: lbd kept the client open")
            assert got == b"", (name, got)
        lb.alive()
    st = lb.status()
    # The two oversized length prefixes are counted as such, the garbage as a bad request.
    assert st["counters"]["ctl_bad_requests"] == bad0 + 1, st["counters"]
    assert st["counters"]["ctl_oversized"] == over0 + 2, st["counters"]
    assert "lonely" in lb.ok("status")

"""Stopping and restarting the daemons of the active node, in every order an operator (or an init
system) may use, loses no packet and no connection; `lbctl status` shows a stopping node as stopping.

Each scenario runs under a 1 ms UDP probe through the VIP and 20 long-lived TCP connections, with
20 ms adverts: vrrpd first, lbd first, both at the same moment, lbd restarted alone (a planned
handover and, with preemption, the way back). Then the corner cases: lbd stopping while its vrrpd
is hung (the peer's gratuitous ARP tells lbd the VIPs moved), a standby lbd leaving at once, and
stop_timeout bounding the wait when no peer takes over. DSRLB_STOP_RUNS repeats each order (default 1)."""

import os
import signal
import time

import pytest

from lib import client
from lib.pair import make_pairs

ADVERT = "20ms"
RUNS = int(os.environ.get("DSRLB_STOP_RUNS", "1"))
PROBE_S = 6.0                     # long enough for the slowest order (restart) on a busy machine
HOLD_CONNS = 20


@pytest.fixture(scope="module", autouse=True)
def servers_up(backend_servers):
    return backend_servers


@pytest.fixture
def make_pair(lab):
    with make_pairs(lab, advert=ADVERT) as make:
        yield make


def exited(pair, node, prog, timeout):
    """Waits for a daemon we signalled to exit; its exit code must be 0."""
    rc = pair.proc(node, prog).wait(timeout)
    assert rc == 0, f"{prog} on {node} exited with {rc}:\n" + pair.lab.log_tail(f"{node}-{prog}")


def stop_vrrpd_first(pair):
    pair.kill("lb1", "vrrpd", signal.SIGTERM)
    exited(pair, "lb1", "vrrpd", 5)
    pair.kill("lb1", "lbd", signal.SIGTERM)
    exited(pair, "lb1", "lbd", 5)


def stop_lbd_first(pair):
    pair.kill("lb1", "lbd", signal.SIGTERM)
    exited(pair, "lb1", "lbd", 5)
    pair.kill("lb1", "vrrpd", signal.SIGTERM)
    exited(pair, "lb1", "vrrpd", 5)


def stop_together(pair):
    pair.kill("lb1", "lbd", signal.SIGTERM)
    pair.kill("lb1", "vrrpd", signal.SIGTERM)
    exited(pair, "lb1", "lbd", 5)
    exited(pair, "lb1", "vrrpd", 5)


def restart_lbd(pair):
    pair.kill("lb1", "lbd", signal.SIGTERM)
    exited(pair, "lb1", "lbd", 5)
    pair.wait_master("lb2", 2)
    pair.start_lbd("lb1")
    # Back as BACKUP once its bulk sync is done, then preemption gives lb1 the VIPs again.
    pair.wait_master("lb1", 10)
    pair.wait_backup("lb2", 3)


ORDERS = {"vrrpd-first": stop_vrrpd_first, "lbd-first": stop_lbd_first, "together": stop_together,
          "restart-lbd": restart_lbd}


@pytest.mark.parametrize("run", range(RUNS), ids=lambda r: f"run{r}")
@pytest.mark.parametrize("order", list(ORDERS))
def test_stopping_the_active_node_loses_nothing(lab, make_pair, order, run):
    pair = make_pair()
    hold = client.start_hold(lab, HOLD_CONNS, PROBE_S + 1)
    hold.wait_event("connected", timeout=5)
    probe = client.start_udp_probe(lab, PROBE_S)
    probe.wait_event("answered", timeout=3)
    t0 = time.monotonic()
    ORDERS[order](pair)
    took = time.monotonic() - t0
    want = "lb1" if order == "restart-lbd" else "lb2"
    assert pair.assert_single_owner() == want
    assert took < PROBE_S - 0.5, f"{order} took {took:.2f}s, longer than the probe runs"
    r = probe.result()
    h = hold.result()
    print(f"\n{order}: done in {took * 1000:.0f} ms; probes sent {r['sent']} lost {r['lost']}; "
          f"held connections ok {h['ok']} of {h['conns']}, reset {h['reset']}")
    assert r["lost"] == 0, f"{order}: lost {r['lost']} probes: {r['outages'][:5]}"
    assert r["duplicates"] == 0 and len(r["by_backend"]) == 1, r
    assert h["ok"] == HOLD_CONNS and h["reset"] == 0, {k: h[k] for k in ("ok", "reset", "states")}


def test_status_shows_a_stopping_node(lab, make_pair):
    """lb2's vrrpd is frozen, so nobody takes over: lb1's lbd stays stopping (and forwarding) until
    stop_timeout, and both daemons and the peer say so, in JSON and in text."""
    pair = make_pair(cluster_extra={"stop_timeout": "10s"})
    pair.kill("lb2", "vrrpd", signal.SIGSTOP)
    try:
        pair.kill("lb1", "lbd", signal.SIGTERM)
        st = pair.wait_json("lb1", {"lbd": {"stopping": True}, "vrrpd": {"lbd_stopping": True}}, 3,
                            "lb1's lbd and vrrpd reporting the stop")
        assert st["lbd"]["active"], st["lbd"]
        assert st["vrrpd"]["state"] == "MASTER" and st["vrrpd"]["effective_priority"] == 0, st["vrrpd"]
        text = lab.lbctl("lb1", "status", check=True).stdout
        assert "STOPPING" in text, text
        r = client.udp_probe(lab, 0.3)
        assert r["lost"] == 0, f"a stopping lbd must keep forwarding: {r}"
    finally:
        pair.kill("lb2", "vrrpd", signal.SIGCONT)
    # lb2 hears lb1 at priority 0, takes over; lb1's lbd leaves; lb1's vrrpd holds FAULT.
    pair.wait_master("lb2", 2)
    exited(pair, "lb1", "lbd", 5)
    v1 = pair.wait_vrrp("lb1", {"state": "FAULT"}, 3, "lb1's vrrpd in FAULT without its lbd")
    assert "lbd" in v1["fault_reason"], v1


def test_stopping_lbd_with_a_hung_vrrpd_waits_for_the_takeover(lab, make_pair):
    """lb1's vrrpd hangs (SIGSTOP) and lbd is stopped: lbd keeps forwarding (no fence while stopping)
    until lb2 takes over and announces the VIPs, and leaves once it sees lb2's gratuitous ARP."""
    pair = make_pair()
    probe = client.start_udp_probe(lab, 3.0)
    probe.wait_event("answered", timeout=3)
    pair.kill("lb1", "vrrpd", signal.SIGSTOP)
    pair.kill("lb1", "lbd", signal.SIGTERM)
    t0 = time.monotonic()
    exited(pair, "lb1", "lbd", 5)
    took = time.monotonic() - t0
    pair.wait_master("lb2", 1)
    r = probe.result()
    assert r["lost"] == 0, f"lost {r['lost']} probes: {r['outages'][:5]}"
    assert "gratuitous ARP" in lab.log_tail("lb1-lbd", 20), lab.log_tail("lb1-lbd", 20)
    assert took < 2.0, f"lbd took {took:.2f}s to leave: it did not notice the takeover"
    pair.kill("lb1", "vrrpd", signal.SIGCONT)


def test_standby_lbd_leaves_at_once(lab, make_pair):
    pair = make_pair()
    t0 = time.monotonic()
    pair.kill("lb2", "lbd", signal.SIGTERM)
    exited(pair, "lb2", "lbd", 5)
    took = time.monotonic() - t0
    assert took < 1.0, f"a standby lbd took {took:.2f}s to leave"
    assert "once the peer has" not in lab.log_tail("lb2-lbd", 10)
    assert pair.assert_single_owner() == "lb1"


def test_stop_timeout_bounds_the_wait(lab, make_pair):
    """No peer to take over (lb2 is gone): lb1's lbd forwards until stop_timeout, then leaves."""
    pair = make_pair(cluster_extra={"stop_timeout": "1s"})
    pair.crash("lb2")
    probe = client.start_udp_probe(lab, 2.5)
    probe.wait_event("answered", timeout=3)
    t0 = time.monotonic()
    pair.kill("lb1", "lbd", signal.SIGTERM)
    exited(pair, "lb1", "lbd", 5)
    took = time.monotonic() - t0
    r = probe.result()
    assert 0.9 <= took < 3.0, f"lbd left {took:.2f}s after the signal; stop_timeout is 1s"
    # Answered until the very end of the wait: the outage starts about stop_timeout after the signal.
    assert r["longest_outage"] is not None and r["answered"] >= 800, r
    assert "stop_timeout" in lab.log_tail("lb1-lbd", 10)

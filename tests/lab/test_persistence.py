"""Session persistence (`persistence = client`, issue 16): every connection and datagram of one client
address goes to one backend, whatever its source port, like IPVS's persistence; different clients still
spread. The entry is keyed without the client port (`lbctl flows` shows port 0, state PERSIST) and
expires after persistence_timeout. A service without persistence, on the same VIP, still spreads one
client's ports over the backends."""

import collections

import pytest

from lib import client
from lib.lab import VIP, topology, wait_for
from lib.lbdrunner import LbdRunner

BACKENDS = ("be1", "be2", "be3")
VIP2 = "192.0.2.101"
TOPOLOGY = topology(vips=(VIP, VIP2))


@pytest.fixture(scope="module", autouse=True)
def servers_up(backend_servers):
    return backend_servers


def make_conf(lab):
    backends = "".join(f"backend = {lab.addr(b)}\n" for b in BACKENDS)
    text = (f"[cluster]\ninterface = eth0\nkey_file = {lab.keygen()}\npersistence_timeout = 2s\n"
            f"[node lb1]\naddress = {lab.addr('lb1')}\npriority = 150\n")
    for name, vip, port, proto, persist in (("web", VIP, 80, "tcp", "client"), ("echo", VIP, 9000, "udp", "client"),
                                            ("echo2", VIP2, 9000, "udp", "none")):
        text += (f"\n[service {name}]\nvip = {vip}\nport = {port}\nprotocol = {proto}\ncheck = none\n"
                 f"persistence = {persist}\n" + backends)
    return text


@pytest.fixture(scope="module")
def lb(lab):
    runner = LbdRunner(lab, "lb1")
    try:
        runner.ensure(make_conf(lab))
        lab.run("router", ["ip", "neigh", "flush", "dev", "eth1"], check=False)
        yield runner
    finally:
        runner.stop()


def by_client(answers):
    out = collections.defaultdict(set)
    for src, backend in answers.items():
        out[src.split(":")[0]].add(backend)
    return out


def test_udp_one_backend_per_client_address(lab, lb):
    addrs = lab.addrs("client")
    sources = [(a, 42000 + p) for a in addrs for p in range(8)]
    answers = client.udp_query(lab, sources, port=9000)
    assert len(answers) == len(sources), answers
    per = by_client(answers)
    assert all(len(b) == 1 for b in per.values()), dict(per)
    assert len({next(iter(b)) for b in per.values()}) >= 2, dict(per)   # clients still spread
    flows = [f for f in lb.flows() if f["service"] == "echo"]
    assert len(flows) == len(addrs), flows
    assert all(f["client"].endswith(":0") and f["state"] == "PERSIST" for f in flows), flows

    # Without persistence the same client's ports spread over the backends.
    answers = client.udp_query(lab, [(addrs[0], 43000 + p) for p in range(24)], dst=VIP2)
    assert len(set(answers.values())) >= 2, answers


def test_tcp_connections_of_one_client_stay_together(lab, lb):
    addrs = lab.addrs("client")[:4]
    for a in addrs:
        r = client.http_gets(lab, 12, sources=[a])
        assert r["errors"] == 0 and len(r["counts"]) == 1, (a, r)


def test_entry_expires_after_persistence_timeout(lab, lb):
    a = lab.addrs("client")[-1]
    client.udp_query(lab, [(a, 44000)], port=9000)
    assert any(f["client"] == f"{a}:0" for f in lb.flows())
    wait_for(lambda: not any(f["client"] == f"{a}:0" for f in lb.flows()), 10, what="the entry expiring")

"""mode = ecmp with an IPv6 VIP (issue 15): three lbd nodes serve VIP6 beside the IPv4 VIP. Each lbd keeps
VIP6/128 in table 100 through dsrlb0; each node's BIRD learns it with a second kernel protocol and
announces it over an IPv6 BGP session (with BFD) between the IPv6 LAN addresses; the router merges the
paths into one multipath VIP6/128 (lib/ecmp.py, docs/deploy-ecmp.md "IPv6 VIPs"). On the wire: the
client's IPv6 flows spread over the nodes and the backends, and kill -9 of one lbd withdraws its next
hop while the IPv6 probes through it are answered again within the IPv4 bar (test_ecmp.py).

The cluster, its config and the fault runs are test_ecmp.py's, with an IPv6 service added.
"""

import json
import statistics

import pytest

from lib import client
from lib import ecmp as lab_ecmp
from lib.lab import VIP6
from test_ecmp import BACKENDS, NODES, OUTAGE_BAR_MS, Cluster, conf, fault_runs

TOPOLOGY = lab_ecmp.topology(nodes=3, ipv6=True)
RUNS = 3
PROBES = 4                   # 1 ms probes from as many client addresses during each fault
# lbd killed alone leaves BIRD and BFD up, so BFD's detection time is no part of what is measured; a
# generous one keeps the shared machine's stalls (lib/ecmp.py) from dropping every session (six here,
# both families) and sending a run again.
ECMP_TIMERS = {"bfd_interval_ms": 20, "bfd_multiplier": 10}
WITHDRAW_LIMIT_MS = 1000     # far below BIRD's kernel scan (60 s) and BGP's hold time (3 s)
SPREAD_SOURCES = 300


def conf6(lab):
    """test_ecmp's IPv4 services and the same UDP probe service on VIP6 over the backends' IPv6
    addresses."""
    be = "".join(f"backend = {lab.addr6(b)}\n" for b in BACKENDS)
    return conf(lab) + f"\n[service probe6]\nvip = {VIP6}\nport = 9000\nprotocol = udp\ncheck = none\n{be}"


@pytest.fixture(scope="module", autouse=True)
def servers_up(backend_servers):
    return backend_servers


@pytest.fixture(scope="module")
def cluster(lab, ecmp):
    lab.keygen()
    c = Cluster(lab, ecmp)
    c.text = conf6(lab)
    try:
        yield c
    finally:
        c.stop()


def table6(lab, node):
    """The IPv6 routes of the node's announce table: {dst: route}."""
    r = lab.run(node, ["ip", "-6", "-j", "route", "show", "table", str(lab_ecmp.ANNOUNCE_TABLE)], timeout=5)
    return {x["dst"]: x for x in json.loads(r.stdout or "[]")}


def test_every_node_announces_vip6_one_multipath_route(lab, cluster):
    c = cluster.start()
    for n in NODES:
        r = table6(lab, n)
        assert set(r) == {VIP6} and r[VIP6]["dev"] == lab_ecmp.ANNOUNCE_DEVICE, (n, r)
        assert str(r[VIP6]["protocol"]) in ("177", "dsrlb"), r
        st = c.lbd[n].status()
        assert {a["vip"]: a["announced"] for a in st["announcements"]} == {lab.vip: True, VIP6: True}, st
        assert f"{VIP6}/128" in c.e.birds[n].routes(), c.e.birds[n].routes()
    routes = c.e.router_routes(family=6)
    assert len(routes) == 1 and routes[0]["protocol"] == "bird", routes
    assert c.e.router_nexthops(family=6) == {lab.addr6(n) for n in NODES}, routes
    assert lab.sysctl("router", "net.ipv6.fib_multipath_hash_policy") == "1"
    # The IPv4 VIP is announced as before, beside it.
    assert c.e.router_nexthops() == {lab.addr(n) for n in NODES}


def test_vip6_answered_and_spread_over_nodes_and_backends(lab, cluster):
    c = cluster.start()
    res = client.udp_probe(lab, 1.0, interval=0.002, dst=VIP6)
    assert res["answered"] > 100 and res["lost"] == 0, res
    # Many flows: one datagram from each of SPREAD_SOURCES (address, port), resent until answered.
    before = c.counters()
    srcs = lab.addrs6("client")
    sources = [(srcs[i % len(srcs)], 41000 + i // len(srcs)) for i in range(SPREAD_SOURCES)]
    answers = client.udp_query(lab, sources, dst=VIP6, timeout=5.0)
    after = c.counters()
    fwd = {n: after[n]["forwarded"] - before[n]["forwarded"] for n in NODES}
    flows = {n: after[n]["flows_created"] - before[n]["flows_created"] for n in NODES}
    by_backend = {b: list(answers.values()).count(b) for b in sorted(set(answers.values()))}
    print(f"\nIPv6 probe: {res['answered']} answered by {res['by_backend']}; {len(sources)} IPv6 flows: "
          f"forwarded per node {fwd}, flows created per node {flows}, answers per backend {by_backend}")
    assert len(answers) == len(sources), f"{len(sources) - len(answers)} flows unanswered"
    assert set(by_backend) == set(BACKENDS), by_backend
    assert sum(flows.values()) >= len(sources), flows
    assert all(f >= 0.2 * len(sources) and fwd[n] >= f for n, f in flows.items()), (fwd, flows)


def test_lbd_killed_withdraws_vip6(lab, cluster):
    def kill(node):
        """kill -9 of the node's lbd; ms until the router's VIP6 route has every other node only."""
        others = [n for n in NODES if n != node]
        return cluster.e.timed_change(lambda: cluster.kill_lbd(node), others, family=6)

    gone = []
    outages = fault_runs(lab, cluster, kill, cluster.restart_lbd, "lbd killed alone, IPv6 probes (BIRD up)",
                         runs=RUNS, dst=VIP6, srcs=lab.addrs6("client")[:PROBES], kept=gone)
    print(f"kill -9 of lbd -> router's VIP6 route without the node (ms): {lab_ecmp.summary(gone)}")
    assert max(gone) < WITHDRAW_LIMIT_MS, gone
    assert statistics.median(outages) <= OUTAGE_BAR_MS, outages

"""Connection-state sync as a full mesh (lbd/sync.c, sync_peer.c): mode = ecmp, four nodes in the
config, three lbd's running (--standalone: always forwarding), the fourth started later.

- Each of the three establishes with the two others (lb4, not running, stays "connecting").
- Flows created on lb1 (a generator host sends new UDP flows straight to lb1's MAC) appear on lb2
  and lb3 with the same backends; lb2 and lb3 show lb1's NODE_STATE (forwarding, flow count,
  config digest match).
- Hostile input: a non-member connecting to the sync port and sending garbage is refused and
  counted; a member's own address (a process on lb1's node) sending garbage frames is counted in
  that peer's counters; the sessions stay established and no table changes.
- A fourth node started later takes the whole table in bulk from every peer; its sync_ready is
  false while its sync port is blocked and becomes true only once every established peer's bulk is
  done, with the whole table.
- Killing one node's lbd (kill -9) leaves the others synced (new flows still reach every survivor);
  its restart bulk-syncs again.

Every wait is bounded; the module takes about a minute.
"""

import os
import signal
import time

import pytest

from lib.jsonmatch import wait_json
from lib.lab import CommandError, VIP, topology
from lib.lbdrunner import LbdRunner
from lib.nftblock import block_tcp

GEN = "gen"
GEN_ADDR = "192.0.2.50"
EVIL = "evil"                      # a LAN host that is no member
EVIL_ADDR = "192.0.2.60"
TOPOLOGY = topology(lbs=4, lan_hosts={GEN: GEN_ADDR, EVIL: EVIL_ADDR})

NODES = {"lb1": "192.0.2.11", "lb2": "192.0.2.12", "lb3": "192.0.2.13", "lb4": "192.0.2.14"}
BACKENDS = ("192.0.2.21", "192.0.2.22", "192.0.2.23")
SYNC_PORT = 8113
FILL_PORT = 9001
FLOWS = 20_000
IGNORE = (CommandError, ValueError, KeyError, TypeError, IndexError)


def mesh_conf(key):
    lines = ["[cluster]", "mode = ecmp", "interface = eth0", f"key_file = {key}", "sync = yes",
             f"sync_port = {SYNC_PORT}", "sync_timeout = 30s", "flow_max = 65536"]
    for name, addr in NODES.items():
        lines += ["", f"[node {name}]", f"address = {addr}"]
    for name, port, proto in (("web", 80, "tcp"), ("fill", FILL_PORT, "udp")):
        lines += ["", f"[service {name}]", f"vip = {VIP}", f"port = {port}", f"protocol = {proto}",
                  "check = none"] + [f"backend = {b}" for b in BACKENDS]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def mesh(lab):
    """lb1..lb3 running the ecmp config; lb4 prepared but stopped. {name: LbdRunner}."""
    rules = (f"table inet syncfill {{\n chain pre {{\n  type filter hook prerouting priority -300; "
             f"policy accept;\n  udp dport {FILL_PORT} drop\n }}\n}}\n")
    for b in lab.backends:
        lab.run(b, ["nft", "-f", "-"], input=rules, timeout=10)
    text = mesh_conf(lab.keygen())
    runners = {n: LbdRunner(lab, n) for n in NODES}
    try:
        for n in ("lb1", "lb2", "lb3"):
            runners[n].start(text)
        for n in ("lb1", "lb2", "lb3"):
            runners[n].wait_ready(timeout=10)
        runners["lb4"].text = text
        yield runners
    finally:
        for r in runners.values():
            r.stop()
        for n in NODES:
            block_tcp(lab, n, SYNC_PORT, on=False)


def peers(st):
    return {p["name"]: p for p in st["sync"]["peers"]}


def wait_peers(runner, established, timeout=10, **extra):
    """Poll runner's status until exactly the peers in `established` are established (and the
    sync fields in `extra` match); returns the status."""
    want = {"sync": dict(extra, peers_established=len(established),
                         peers=lambda ps: {p["name"] for p in ps if p["established"]} == set(established))}
    return runner.wait_json(want, timeout, f"{runner.node} established with {sorted(established)}")


def trafgen(lab, dst_node, count, net):
    """`count` new UDP flows from net's /24 (ports 1024..) to the fill service, straight to
    dst_node's MAC; waits until trafgen has sent them."""
    ip = f"ipv4(sa={net}, sa[3]=dinc(), da={VIP}, ttl=64)"
    udp = f"udp(sp=dinc(1024, 65534), dp={FILL_PORT})"
    path = os.path.join(lab.tmpdir, "conf", f"trafgen-{net}.cfg")
    with open(path, "w") as f:
        f.write(f"{{ eth(da={lab.mac(dst_node)}, sa={lab.mac(GEN)}), {ip}, {udp}, fill(0x00, 18) }}\n")
    lab.run(GEN, ["trafgen", "-o", "eth0", "-P", "1", "--no-sock-mem", "-q", "-i", path, "-n", str(count),
                  "-b", "40000pps"], timeout=60)


def settled_flows(runner, at_least, timeout=20):
    """runner's flow count once it is at least `at_least` and the same in two polls 0.3 s apart
    (trafgen's last frames forwarded; a few may be lost at the RX ring, so callers ask for 90 %)."""
    last = [None]

    def same(n):
        ok = n >= at_least and n == last[0]
        last[0] = n
        return ok

    return runner.wait_json({"flows": same}, timeout, f"{runner.node}'s flow count settled", interval=0.3)["flows"]


def table(runner):
    """{(client, vip, protocol): backend} of runner's flow table."""
    return {(f["client"], f["vip"], f["protocol"]): f["backend"] for f in runner.flows()}


def vmrss_kib(lab, runner):
    with open(f"/proc/{runner.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def block_sync_in(lab, node, on=True):
    """Drop every TCP segment to node's sync port (connections to it hang) or stop doing so."""
    block_tcp(lab, node, SYNC_PORT, "input", "drop", on)


GARBAGE = r"""
import os, socket, sys
src, dst, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket()
s.bind((src, 0))
s.settimeout(5)
s.connect((dst, port))
# frames of plausible length with random contents, then an oversized length prefix
try:
    for n in (40, 200, 1000):
        s.sendall(n.to_bytes(4, "big") + os.urandom(n))
    s.sendall(b"\xff\xff\xff\xff" + os.urandom(64))
    while s.recv(4096):
        pass
except OSError:
    pass
print("closed")
"""


def send_garbage(lab, host, src, dst):
    r = lab.run(host, ["python3", "-c", GARBAGE, src, dst, str(SYNC_PORT)], timeout=15)
    assert "closed" in r.stdout, r.stdout + r.stderr


# ----------------------------------------------------------------------------- tests

def test_mesh_establishes(mesh):
    for n, other in (("lb1", ("lb2", "lb3")), ("lb2", ("lb1", "lb3")), ("lb3", ("lb1", "lb2"))):
        st = wait_peers(mesh[n], other, state="partial")
        p = peers(st)
        assert set(p) == set(NODES) - {n}
        assert p["lb4"]["state"] == "connecting" and not p["lb4"]["established"]
        assert st["sync"]["peer"] == ""
        # every running peer tells us about itself (a change within 100 ms), with the same config
        for o in other:
            wait_json(lambda o=o: peers(mesh[n].status())[o], {"forwarding": True, "config_digest_match": True,
                      "state_age_ms": lambda a: 0 <= a < 1500}, 3, f"{o}'s NODE_STATE on {n}", ignore=IGNORE)
    out = mesh["lb1"].ok("status")
    print(out)
    for o in ("lb2", "lb3", "lb4"):
        assert o in out, out


def test_flows_reach_every_node(lab, mesh):
    rss0 = {n: vmrss_kib(lab, mesh[n]) for n in ("lb1", "lb2", "lb3")}
    trafgen(lab, "lb1", FLOWS, "203.0.113.0")
    n1 = settled_flows(mesh["lb1"], FLOWS * 90 // 100)
    t0 = time.monotonic()
    for n in ("lb2", "lb3"):
        mesh[n].wait_json({"flows": n1}, 20, f"lb1's {n1} flows on {n}", interval=0.1)
    print(f"MEASURE {n1} flows from lb1 on lb2 and lb3 within {time.monotonic() - t0:.2f} s of lb1 having them")
    ref = table(mesh["lb1"])
    assert len(ref) == n1
    for n in ("lb2", "lb3"):
        got = table(mesh[n])
        assert got == ref, f"{n}: {len(set(got.items()) ^ set(ref.items()))} flows differ from lb1's"
        p = peers(mesh[n].status())["lb1"]
        assert p["received_flows"] >= n1 and p["unknown_backend"] == 0, p
    # lb1's updates went to both peers, none dropped; its NODE_STATE carries its flow count
    st1 = mesh["lb1"].status()
    for o in ("lb2", "lb3"):
        assert peers(st1)[o]["sent_flows"] >= n1 and peers(st1)[o]["dropped"] == 0, peers(st1)[o]
        wait_json(lambda o=o: peers(mesh[o].status())["lb1"], {"flows": n1}, 3, f"lb1's NODE_STATE on {o}",
                  ignore=IGNORE)
    rss1 = {n: vmrss_kib(lab, mesh[n]) for n in ("lb1", "lb2", "lb3")}
    print(f"MEASURE VmRSS KiB before/after {n1} flows: " +
          ", ".join(f"{n} {rss0[n]} -> {rss1[n]}" for n in rss0))


def test_hostile(lab, mesh):
    before = {n: (mesh[n].status(), table(mesh[n])) for n in ("lb2", "lb3")}
    # a non-member: closed at once, counted, nothing read
    send_garbage(lab, EVIL, EVIL_ADDR, NODES["lb2"])
    mesh["lb2"].wait_json({"sync": {"refused_not_peer": before["lb2"][0]["sync"]["refused_not_peer"] + 1}}, 5)
    # a member's address (another process on lb1's node): rejected frames, counted per peer
    send_garbage(lab, "lb1", NODES["lb1"], NODES["lb3"])
    p0 = peers(before["lb3"][0])["lb1"]
    st = mesh["lb3"].wait_json({"sync": {"peers": lambda ps: any(
        p["name"] == "lb1" and p["unauthenticated"] > p0["unauthenticated"] and p["rejected"] > p0["rejected"]
        for p in ps)}}, 5, "lb3 counts lb1's garbage connection")
    p1 = peers(st)["lb1"]
    assert p1["oversized"] == p0["oversized"] + 1, p1
    assert p1["established"] and p1["reconnects"] == p0["reconnects"], p1
    for n in ("lb2", "lb3"):
        wait_peers(mesh[n], {"lb1", "lb2", "lb3"} - {n})
        assert table(mesh[n]) == before[n][1], f"{n}'s table changed"


def test_fourth_node_bulk(lab, mesh):
    n1 = mesh["lb1"].status()["flows"]
    lb4 = mesh["lb4"]
    block_sync_in(lab, "lb4")
    lb4.start(lb4.text)
    try:
        lb4.wait_ready(timeout=10)
        st = lb4.wait_json({"sync": {"peers_established": 0, "ready": False}}, 5)
        assert st["sync"]["bulk_state"] == "none" and st["flows"] == 0
    finally:
        block_sync_in(lab, "lb4", on=False)
    # ready only once the whole table came from every established peer
    samples, t0 = [], time.monotonic()
    while time.monotonic() - t0 < 15:
        st = lb4.status()
        samples.append(st)
        if st["sync"]["ready"] and st["sync"]["peers_established"] == 3:
            break
        time.sleep(0.02)
    assert samples[-1]["sync"]["ready"], samples[-1]["sync"]
    for s in samples:
        if s["sync"]["ready"]:
            ps = [p for p in s["sync"]["peers"] if p["established"]]
            assert ps and all(p["bulk_state"] == "done" for p in ps), s["sync"]
            assert s["flows"] == n1, (s["flows"], n1)
    st = lb4.wait_json({"sync": {"peers_established": 3, "ready": True, "bulk_state": "done"}, "flows": n1}, 10)
    assert table(lb4) == table(mesh["lb1"])
    durs = {p["name"]: p["bulk_duration_ms"] for p in st["sync"]["peers"]}
    print(f"MEASURE lb4 bulk of {n1} flows from each peer: {durs} ms; VmRSS {vmrss_kib(lab, lb4)} KiB")
    for n in ("lb1", "lb2", "lb3"):
        p = wait_peers(mesh[n], {"lb1", "lb2", "lb3", "lb4"} - {n}, state="established")
        p = peers(p)["lb4"]
        assert p["bulk_sent"] >= n1, p
        wait_json(lambda n=n: peers(mesh[n].status())["lb4"], {"bulk_tx_state": "done", "has_our_bulk": True},
                  5, f"lb4 tells {n} it has its table", ignore=IGNORE)


def test_kill_one_node(lab, mesh):
    lb3 = mesh["lb3"]
    lab.signal(lb3.proc, signal.SIGKILL)
    lb3.proc.wait(timeout=5)
    lb3.proc = None
    for n in ("lb1", "lb2", "lb4"):
        wait_peers(mesh[n], {"lb1", "lb2", "lb4"} - {n}, timeout=10, state="partial")
    n0 = mesh["lb1"].status()["flows"]
    trafgen(lab, "lb1", 2000, "203.0.114.0")
    n1 = settled_flows(mesh["lb1"], n0 + 1800)
    for n in ("lb2", "lb4"):
        mesh[n].wait_json({"flows": n1}, 10, f"lb1's new flows on {n}", interval=0.1)
    lb3.start(lb3.text)
    lb3.wait_ready(timeout=10)
    st = lb3.wait_json({"sync": {"peers_established": 3, "ready": True, "bulk_state": "done"}, "flows": n1}, 15)
    assert table(lb3) == table(mesh["lb1"])
    print(f"MEASURE lb3 restarted: bulk of {n1} flows: "
          f"{ {p['name']: p['bulk_duration_ms'] for p in st['sync']['peers']} } ms")

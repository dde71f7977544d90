"""Connection-state sync between the two lbd's (lbd/sync.c): what it is for, measured.

- Established TCP connections (200, many source ports) survive a crash failover after a backend
  was added to both nodes while they were open, with zero resets; the same scenario with
  `sync = no` resets some of them (the control experiment: the test proves sync matters).
- Failback: connections opened through the new master, with the backend set changed, survive the
  returning node's bulk sync and preemption.
- Sync lag p99 <= 50 ms while 10 000 new flows per second arrive (evenly paced datagrams from a
  generator host on the LAN, each from a new source address/port).
- A restarted node asks for the whole table (100k flows), receives it, and its vrrpd does not
  preempt before its lbd reports sync ready (the sync port is blocked for a while to make the
  wait visible); with the port blocked past sync_timeout it preempts anyway (bulk "timeout").
  A standby that returns after an outage gets the table within seconds.
- A bulk transfer interrupted part way (an nftables quota stalls it at ~60 %, then the connection
  is killed with `ss -K`) starts over on the next connection: the whole table of 300k flows comes
  again, and the standby ends with exactly the active node's flows. When the active node's table
  changes under the stall (a backend removed, 60k new flows in the freed slots, many below the point
  the transfer had reached; their updates die with the connection), the standby still converges to
  exactly its flows, per backend too: a transfer resumed from its cursor would leave those holes.
- Hostile input on the sync port: connections from a non-peer are refused and counted; from the
  peer's own address (its daemons stopped) random bytes, a truncated frame, oversized and empty
  length prefixes, a reflected stream and a replayed capture of the real sync stream change no
  table entry and raise the `rejected` counter; the real peer then syncs again as before.
- Who may take the session: silent connections from another process on the peer node, every 100 ms
  for 10 s, leave the session established in every status poll with `reconnects` unchanged, and are
  closed and counted; so are an oversized length prefix (at once), a trickle and a burst of 12 (at
  the 2 s handshake deadline). A restarted peer whose old connection lb2 still holds (its FIN and
  resets dropped) replaces that session within a round trip.

Every wait is bounded; the module takes about 110 seconds.
"""

import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import time

import pytest

from lib import client, servers
from lib.capture import Capture, arp_probe
from lib.lab import VIP, wait_for, topology
from lib.nftblock import block_tcp
from lib.pair import BACKENDS, NODES, config_text, make_pairs

GEN = "gen"                       # a LAN host that generates new flows (trafgen, paced_start)
GEN_ADDR = "192.0.2.50"
TOPOLOGY = topology(lan_hosts={GEN: GEN_ADDR})

ADVERT = "50ms"
BE4 = "192.0.2.24"                # the spare backend the tests add at run time
FILL_PORT = 9001                  # udp service for generated flows; dropped on arrival at the backends
FILL_NET = "203.0.113.0"          # their source addresses: x.x.x.0-255, source ports 1024..65534
SYNC_PORT = 8113
CONNS = 200
LAG_BAR_MS = 50
LAG_RATE = 10_000                 # new flows per second
LAG_SECONDS = 4


# ----------------------------------------------------------------------------- fixtures, helpers

@pytest.fixture(scope="module", autouse=True)
def servers_up(lab):
    """Servers on every backend, the spare be4 included (it joins the services at run time), and
    a drop rule for the generated fill traffic so no backend answers 10k datagrams a second."""
    rules = (f"table inet syncfill {{\n chain pre {{\n  type filter hook prerouting priority -300; "
             f"policy accept;\n  udp dport {FILL_PORT} drop\n }}\n}}\n")
    for b in lab.backends:
        lab.run(b, ["nft", "-f", "-"], input=rules, timeout=10)
    return servers.start_all(lab, lab.backends)


def pair_conf(key, sync=True, backends=BACKENDS, priorities=None, extra=None):
    """config_text's pair (web tcp 80, sink tcp 81, probe udp 9000) plus the fill service."""
    cluster = {"lbd_timeout": "300ms", "sync": "yes" if sync else "no"}
    cluster.update(extra or {})
    text = config_text(key, ADVERT, True, priorities, cluster, backends=backends)
    text += "\n".join(["", "[service fill]", f"vip = {VIP}", f"port = {FILL_PORT}", "protocol = udp",
                       "check = none"] + [f"backend = {b}" for b in backends]) + "\n"
    return text


@pytest.fixture
def make_pair(lab):
    """make_pair(sync=, backends=, priorities=, extra=, start=, master=, key=) -> Pair; every
    daemon, generator and fake peer is stopped and every link restored after the test."""
    with make_pairs(lab, advert=ADVERT) as new:
        def make(sync=True, backends=BACKENDS, priorities=None, extra=None, start=True, master="lb1",
                 key=None):
            key = key or lab.keygen()
            p = new(start=False, key=key, conf_text=pair_conf(key, sync, backends, priorities, extra))
            p.sync_args = dict(sync=sync, priorities=priorities, extra=extra)
            if start:
                p.start(master=master)
            return p

        yield make
    for n in NODES:
        lab.run(n, ["nft", "delete", "table", "inet", "syncblock"], check=False)


def assert_owner(pair, want, timeout=5, probes=3):
    """pair.assert_single_owner() without its ARP part, then ARP probes from the router that only
    `want` may answer. Two answers from the same MAC are tolerated but reported (seen once right
    after a preemption; the capture shows what they were)."""
    lab = pair.lab
    owner = pair.assert_single_owner(timeout, arp_checks=0)
    assert owner == want, f"{owner} owns the VIP, want {want}"
    mac = lab.mac(owner)
    with Capture(lab, "router", "eth0", "arp", name=f"owner-{owner}-{time.monotonic():.0f}") as cap:
        answers = [arp_probe(lab, "router", VIP, timeout=0.2) for _ in range(probes)]
    assert all(a and set(a) == {mac} for a in answers), f"ARP for the VIP answered by {answers}, want {mac}"
    if any(len(a) > 1 for a in answers):
        pkts = cap.packets()
        t0 = float(pkts[0].time) if pkts else 0
        print(f"NOTE duplicate ARP answers from {owner}: {answers}\n" +
              "\n".join(f"  {float(p.time) - t0:.4f} {p.summary()}" for p in pkts))
    return owner


def sync_st(pair, node):
    st = pair.lbd(node)
    return st and st.get("sync")


def wait_sync(pair, node, subset, timeout=5, what=None, **lbd):
    """Poll until node's lbd status has sync fields `subset` and other fields `lbd` (json_cmp);
    returns that lbd status."""
    return pair.wait_lbd(node, dict(lbd, sync=subset), timeout, what or f"sync status of {node}")


def wait_established(pair, nodes=("lb1", "lb2"), timeout=5):
    for n in nodes:
        wait_sync(pair, n, {"state": "established", "bulk_state": "done"}, timeout,
                  f"{n}: sync established and its bulk done")


def set_backends(pair, backends, nodes=("lb1", "lb2"), timeout=5):
    """Rewrite the pair's config file with this backend set and reload the running `nodes` (both
    daemons); returns once every listed node has reloaded and knows every backend's MAC."""
    args = pair.sync_args
    want = set(backends)

    def services_ok(services):
        for svc in services:
            have = {b["address"]: b for b in svc["backends"]}
            if set(have) != want or any(not b["mac"] for b in have.values()):
                return False
        return True

    pair.reload(pair_conf(pair.key, args["sync"], backends, args["priorities"], args["extra"]), nodes,
                timeout, services_ok)


def crash_master(pair, node="lb1"):
    """The reference crash: kill -9 both daemons and pull the cable."""
    pair.crash(node)
    pair.cut_cable(node)


def log_times(lab, name, pattern, since=0.0):
    """Epoch timestamps of the lines of logs/NAME.log matching `pattern` at or after `since`
    (daemon log lines start with seconds since the epoch; a log spans the module's tests)."""
    rx = re.compile(pattern)
    out = []
    try:
        with open(lab.log_path(name), errors="replace") as f:
            for line in f:
                if rx.search(line):
                    try:
                        t = float(line.split()[0])
                    except (ValueError, IndexError):
                        continue
                    if t >= since:
                        out.append(t)
    except OSError:
        pass
    return out


def block_sync(lab, node, on=True):
    """Make node's outgoing sync connections fail at once (TCP reset) or work again."""
    block_tcp(lab, node, SYNC_PORT, "output", "reject with tcp reset", on)


# --- the generator: new UDP flows to the fill service, straight to the active node's MAC

def trafgen_start(lab, dst_node, count=0, rate=None, name="fill", net=FILL_NET):
    """trafgen on the generator: `count` datagrams (0: until stopped), at `rate` per second (None:
    full speed), each a new flow from net's /24, sent to dst_node's MAC."""
    ip = f"ipv4(sa={net}, sa[3]=dinc(), da={VIP}, ttl=64)"
    udp = f"udp(sp=dinc(1024, 65534), dp={FILL_PORT})"
    text = f"{{ eth(da={lab.mac(dst_node)}, sa={lab.mac(GEN)}), {ip}, {udp}, fill(0x00, 18) }}\n"
    path = os.path.join(lab.tmpdir, "conf", f"trafgen-{name}.cfg")
    with open(path, "w") as f:
        f.write(text)
    cmd = ["taskset", "-c", "0", "trafgen", "-o", "eth0", "-P", "1", "--no-sock-mem", "-q", "-i", path]
    if count:
        cmd += ["-n", str(count)]
    if rate:
        cmd += ["-b", f"{rate}pps"]
    return lab.popen(GEN, cmd, log=f"{GEN}-trafgen-{name}")


# The paced generator (evenly spaced new flows): lib/paced_gen.py.
PACED_GEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib", "paced_gen.py")


def paced_start(lab, dst_node, count, rate, name="paced"):
    """`count` new UDP flows to the fill service at `rate` per second, evenly spaced; returns the
    Popen once the frames are built and sending starts."""
    path = PACED_GEN
    # Real-time class (below lbd's and vrrpd's), so a busy host does not stretch the schedule.
    rt = ["chrt", "-f", "1"] if shutil.which("chrt") else []
    proc = lab.popen(GEN, rt + [sys.executable, path, "eth0", lab.mac(dst_node), VIP, str(FILL_PORT), str(count),
                           str(rate), FILL_NET], stdout=subprocess.PIPE, stderr=open(lab.log_path(name), "w"),
                     text=True)
    line = proc.stdout.readline()
    assert "ready" in line, f"paced generator: {line!r} {lab.log_tail(name)}"
    return proc


def paced_wait(lab, proc, timeout):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        lab.stop(proc)
        raise AssertionError(f"paced generator still running after {timeout}s") from None
    assert proc.returncode == 0, f"paced generator exited with {proc.returncode}"
    return json.loads(out.strip().splitlines()[-1])


def fill(lab, pair, node, flows, timeout=30):
    """At least `flows` new flows in node's table (trafgen at full speed, then settle)."""
    base = pair.lbd(node)["flows"]
    tg = trafgen_start(lab, node, rate=60_000, name="fill")
    try:
        return pair.wait_lbd(node, {"flows": lambda n: n >= base + flows}, timeout,
                             f"{flows} more flows in {node}'s table", interval=0.2)
    finally:
        lab.stop(tg, sig=signal.SIGINT, timeout=3)


def skip_without(*tools):
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed")


# ----------------------------------------------------------------------------- failover with a changed backend set

def hold_add_crash(lab, pair, hold_s=7.0):
    """CONNS held connections through lb1; be4 added on both nodes while they are open; lb1
    crashed. Returns (hold result, flows of web on lb1 and lb2 just before the crash)."""
    job = client.start_hold(lab, CONNS, hold_s, stall=2.5)
    job.wait_event("connected", timeout=15)
    set_backends(pair, BACKENDS + (BE4,))
    # The standby's copy of the table settles within a few flush intervals.
    m1 = pair.flow_map("lb1")
    if pair.sync_args["sync"]:
        wait_for(lambda: len(pair.flow_map("lb2")) >= len(m1), 2, 0.05, "lb2 holding every web flow of lb1")
    m2 = pair.flow_map("lb2")
    crash_master(pair)
    pair.wait_master("lb2", 2)
    return job.result(), m1, m2


def summary(r):
    return {k: r[k] for k in ("conns", "ok", "reset", "states", "by_backend")}


def test_connections_survive_crash_after_backend_added(lab, make_pair):
    pair = make_pair(sync=True)
    wait_established(pair)
    r, m1, m2 = hold_add_crash(lab, pair)
    print(f"\nsync on: {summary(r)}")
    assert len(m1) >= CONNS, f"lb1 holds only {len(m1)} web flows"
    assert m2 == m1, (f"the standby's table differs from the master's: "
                      f"{len(set(m1.items()) - set(m2.items()))} of {len(m1)} entries missing or different")
    assert len(r["by_backend"]) == 3, f"connections not spread over be1-be3: {r['by_backend']}"
    assert r["reset"] == 0 and r["ok"] == CONNS, summary(r)
    assert_owner(pair, "lb2")
    s2 = sync_st(pair, "lb2")
    assert s2["unknown_backend"] == 0, s2


def test_without_sync_the_same_crash_resets_connections(lab, make_pair):
    """The control experiment: the standby has no table and must hash with the new backend set."""
    pair = make_pair(sync=False)
    assert sync_st(pair, "lb1")["state"] == "disabled"
    r, m1, m2 = hold_add_crash(lab, pair)
    print(f"\nsync off: {summary(r)}")
    assert len(m1) >= CONNS and not m2, (len(m1), len(m2))
    assert r["reset"] > 0, f"no connection was reset without sync: the test would not prove anything: {summary(r)}"
    assert_owner(pair, "lb2")


def test_failback_after_backend_change_keeps_connections(lab, make_pair):
    """The node that took over syncs its table to the returning one, which preempts without
    breaking the connections opened through the other node (with the backend set changed)."""
    pair = make_pair(sync=True, extra={"sync_timeout": "20s"})
    wait_established(pair)
    pair.crash("lb1")
    pair.wait_master("lb2", 2)
    assert_owner(pair, "lb2")
    job = client.start_hold(lab, CONNS, 6.0, stall=2.5)
    job.wait_event("connected", timeout=15)
    set_backends(pair, BACKENDS + (BE4,), nodes=("lb2",))   # lb1 reads the new file when it starts
    flows2 = pair.lbd("lb2")["flows"]
    pair.start_node("lb1")
    pair.wait_master("lb1", 5)
    s1 = sync_st(pair, "lb1")
    r = job.result()
    print(f"\nfailback: {summary(r)}; lb1 bulk {s1['bulk_received']} flows in {s1['bulk_duration_ms']} ms")
    assert s1["bulk_state"] == "done" and s1["bulk_received"] >= flows2 >= CONNS, s1
    assert r["reset"] == 0 and r["ok"] == CONNS, summary(r)
    assert_owner(pair, "lb1")


# ----------------------------------------------------------------------------- lag under load

def test_sync_lag_p99_at_10k_new_flows_per_second(lab, make_pair):
    """10 000 new UDP flows per second, evenly spaced, for a few seconds; the active node's lag p99
    (queued -> acknowledged by the standby, over the updates acknowledged in the last 5 s, read as the
    load ends) stays within the bar and every flow reaches the standby."""
    pair = make_pair(sync=True)
    wait_established(pair)
    offered = int(LAG_RATE * 1.03)       # a little above the bar: lbd's RX ring may lose a few frames
    st0 = pair.lbd("lb1")
    c0, m0 = st0["counters"]["flows_created"], st0["sync"]["sent_messages"]
    gen = paced_start(lab, "lb1", offered * LAG_SECONDS, offered)
    try:
        g = paced_wait(lab, gen, LAG_SECONDS + 10)
    finally:
        lab.stop(gen, timeout=3)
    s1 = pair.lbd("lb1")["sync"]        # at once, while the lag window holds the load's updates
    settled_flows(pair, "lb1")   # the frames left in lb1's RX ring are in its table
    created = pair.lbd("lb1")["counters"]["flows_created"] - c0
    rate = created / g["seconds"]
    # Every flow reached the standby.
    pair.wait_lbd("lb2", {"flows": lambda n: n >= pair.lbd("lb1")["flows"]}, 3, "lb2 holding as many flows as lb1",
                  interval=0.05)
    st1 = pair.lbd("lb1")
    print(f"\nsync lag at {rate:,.0f} new flows/s (generator {g['rate']:,}/s for {g['seconds']}s; {st1['flows']:,} "
          f"flows, RX ring drops {st1['counters']['ring_drops']}): p99 {s1['lag_p99_ms']} ms, last "
          f"{s1['last_lag_ms']} ms; {s1['sent_flows']:,} flows in {s1['sent_messages']:,} messages, "
          f"dropped {s1['dropped']}")
    assert rate >= LAG_RATE, f"only {rate:,.0f} new flows/s entered lb1's table"
    assert s1["dropped"] == 0, s1
    assert s1["lag_samples"] >= min(4000, (s1["sent_messages"] - m0) // 2), s1   # the p99 is this load's
    assert s1["lag_p99_ms"] <= LAG_BAR_MS, s1


# ----------------------------------------------------------------------------- bulk sync before preemption

def test_returning_node_bulk_syncs_before_it_preempts(lab, make_pair):
    skip_without("trafgen", "nft")
    flows = 100_000
    pair = make_pair(sync=True, extra={"sync_timeout": "30s", "udp_timeout": "10m"})
    wait_established(pair)
    fill(lab, pair, "lb1", flows)
    pair.wait_lbd("lb2", {"flows": lambda n: n >= pair.lbd("lb1")["flows"]}, 5, "lb2 holding lb1's flows",
                  interval=0.1)
    pair.crash("lb1")
    pair.wait_master("lb2", 2)
    n2 = pair.lbd("lb2")["flows"]
    assert n2 >= flows, n2

    # lb1 returns, but cannot reach lb2's sync port: it must stay BACKUP, not ready.
    block_sync(lab, "lb1")
    pair.start_node("lb1")
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        v1, s1 = pair.vrrp("lb1"), sync_st(pair, "lb1")
        assert v1["state"] == "BACKUP", f"lb1 left BACKUP before its bulk sync: {v1['state']}, sync {s1}"
        assert not s1["ready"] and s1["bulk_state"] != "done", s1
        time.sleep(0.05)
    assert pair.vrrp("lb2")["state"] == "MASTER"

    # Unblocked: the whole table arrives, then (not before) lb1 preempts.
    t_unblock = time.time()
    block_sync(lab, "lb1", on=False)
    seen = []

    def master():
        v1, s1 = pair.vrrp("lb1"), sync_st(pair, "lb1")
        seen.append((v1["state"], s1["ready"], s1["bulk_state"]))
        return v1["state"] == "MASTER" and s1
    s1 = wait_for(master, 10, 0.02, "lb1 MASTER again")
    early = [x for x in seen if x[0] == "MASTER" and not x[1]]
    assert not early, f"lb1 MASTER while its sync was not ready: {early[:3]}"
    t_bulk = log_times(lab, "lb1-lbd", r"bulk sync from \S+ done", since=t_unblock - 0.5)
    t_master = log_times(lab, "lb1-vrrpd", r"vrrpd: info: MASTER", since=t_unblock - 0.5)
    assert t_bulk and t_master, f"bulk-done or MASTER line missing from the logs: {t_bulk} {t_master}"
    print(f"\nbulk of {s1['bulk_received']:,} flows (total {s1['bulk_total']:,}; lb2 had {n2:,}, now "
          f"{pair.lbd('lb2')['flows']:,}; lb1 now {pair.lbd('lb1')['flows']:,}) in {s1['bulk_duration_ms']} ms; "
          f"done {t_bulk[0] - t_unblock:.3f}s after unblocking, MASTER {t_master[0] - t_unblock:.3f}s after")
    assert s1["bulk_state"] == "done" and s1["bulk_received"] >= n2, s1
    assert s1["bulk_total"] >= n2 and pair.lbd("lb1")["flows"] >= n2
    assert t_bulk[0] <= t_master[0], f"MASTER at {t_master[0]} before bulk done at {t_bulk[0]}"
    assert_owner(pair, "lb1")


def test_returning_standby_gets_the_table_promptly_after_an_outage(lab, make_pair):
    """lb2 (the listener) crashes and is unreachable for a while; when it returns, lb1 must connect
    and send it the whole table within a few seconds, not after TCP's SYN back-off."""
    pair = make_pair(sync=True)
    wait_established(pair)
    assert client.http_gets(lab, 20)["ok"] == 20
    pair.crash("lb2")
    pair.cut_cable("lb2")
    time.sleep(8)
    pair.cut_cable("lb2", up=True)
    n1 = pair.lbd("lb1")["flows"]
    t0 = time.monotonic()
    pair.start_node("lb2")
    try:
        st = wait_sync(pair, "lb2", {"bulk_state": "done"}, 3, "lb2's bulk sync done")
    finally:
        print(f"\nlb2 back after an 8 s outage: {sync_st(pair, 'lb2')}; lb1: {sync_st(pair, 'lb1')['state']}")
    took = time.monotonic() - t0
    print(f"bulk of {st['sync']['bulk_received']} flows done {took:.2f}s after lb2 started")
    assert st["sync"]["bulk_received"] >= n1 and st["flows"] >= n1, st["sync"]


INTERRUPT_FLOWS = 300_000         # lb1's table when lb2's bulk is interrupted
HOLE_FLOWS = 150_000              # the same, table changed under the stall: lb2's part about fits
                                  # one `lbctl flows` listing (100 000 entries at most)
NEW_FLOWS = 60_000                # new flows lb1 takes while lb2's bulk is stalled
NEW_NET = "198.51.100.0"          # their source addresses: the fill's keys would only repeat old flows
SYNC_BYTES_PER_FLOW = 32          # bulk bytes on the wire per flow, TCP/IP headers included (~31 measured)
STALL_SHARE = 0.6                 # of the bulk let through before the quota holds it
# The stall holds lb1's segments back; lb1 would give the connection up after sync_peer_timeout
# (3 s by default) and the stall would end by itself on a slow machine. A stall lasts as long as
# the test needs: the connection ends only when the test kills it.
STALL_CONFIG = {"udp_timeout": "10m", "sync_peer_timeout": "10m"}


def nft_counters(lab, node, table="syncblock"):
    """[(packets, bytes)] of the counters in node's nftables table `table`, in rule order."""
    out = lab.run(node, ["nft", "list", "table", "inet", table], timeout=10).stdout
    return [(int(p), int(b)) for p, b in re.findall(r"counter packets (\d+) bytes (\d+)", out)]


def backend_flows(st):
    """{(service, backend address): flows} of an lbd status."""
    return {(svc["name"], b["address"]): b["flows"] for svc in st["services"] for b in svc["backends"]}


def table_order(lab, node, limit=100_000):
    """[(client address:port, backend)] of the first `limit` entries of node's table (lbd answers
    100 000 at most) in table order: worker by worker, slot by slot, the order of a bulk transfer."""
    r = lab.lbctl(node, "flows", "--json", "--limit", str(limit), check=True, timeout=30)
    return [(f["client"], f["backend"]) for f in json.loads(r.stdout).get("flows") or []]


def settled_flows(pair, node, timeout=5):
    """node's flow count once two readings 0.1 s apart agree: the generator has stopped and the
    frames left in lbd's RX ring are in the table."""
    last = {}

    def settled():
        n = pair.lbd(node)["flows"]
        same, last["n"] = last.get("n") == n, n
        return (n,) if same else None

    return wait_for(settled, timeout, 0.1, f"{node}'s flow count settled")[0]


def interrupt_bulk(lab, pair, flows, during_stall=None):
    """lb2 (the standby; it listens, lb1 connects) restarts and asks lb1 for its whole table of at
    least `flows` flows. An nftables quota on lb2's sync port lets about STALL_SHARE of the transfer
    through, then drops lb1's segments: the bulk stalls part way on every run. during_stall(held)
    runs there (held: lb2's status at the stall; the connection must still be stalled afterwards);
    then lb2's end of the connection is killed (`ss -K`) and, once lb2 has noticed, the quota
    removed. Returns a dict: n1 (lb1's flows when lb2 returned), s1_before (lb1's sync status then),
    quota, held, t_held, cut (lb2's status once it noticed the kill), counters (nft counters then),
    t_free (monotonic time the quota went)."""
    skip_without("trafgen", "nft", "ss")
    wait_established(pair)
    pair.crash("lb2")
    fill(lab, pair, "lb1", flows)
    n1 = settled_flows(pair, "lb1")
    s1_before = sync_st(pair, "lb1")

    # lb2 returns behind the quota. The first counter sees every segment from lb1 to the sync port,
    # the second those dropped once the quota is used up.
    quota = int(n1 * SYNC_BYTES_PER_FLOW * STALL_SHARE)
    rules = ("table inet syncblock {\n chain in {\n  type filter hook input priority 0; policy accept;\n"
             f"  tcp dport {SYNC_PORT} counter\n"
             f"  tcp dport {SYNC_PORT} quota over {quota} bytes counter drop\n }}\n}}\n")
    lab.run("lb2", ["nft", "-f", "-"], input=rules, timeout=10)
    t_start = time.monotonic()
    pair.start_node("lb2")
    seen, prev = [], {}

    def stalled():
        st = pair.lbd("lb2")
        s = st["sync"]
        seen.append((round(time.monotonic() - t_start, 2), s["state"], s["bulk_state"], s["bulk_received"]))
        same, prev["r"] = prev.get("r") == s["bulk_received"], s["bulk_received"]
        if (same and s["state"] == "established" and s["bulk_state"] == "receiving"
                and 0 < s["bulk_received"] < s["bulk_total"] and nft_counters(lab, "lb2")[1][0] > 0):
            return st
        return None

    try:
        held = wait_for(stalled, 15, 0.05, "lb2's bulk stalled part way by the quota")
    except AssertionError as e:
        raise AssertionError(f"{e}\nlb2's progress: {seen[-8:]}; nft counters {nft_counters(lab, 'lb2')}") from None
    t_held = time.monotonic() - t_start
    if during_stall:
        during_stall(held)
        s = sync_st(pair, "lb2")
        hs = held["sync"]
        assert (s["state"] == "established" and s["bulk_state"] == "receiving"
                and s["bulk_received"] == hs["bulk_received"] and s["received_flows"] == hs["received_flows"]), (
            f"lb2's bulk moved on (or the connection broke) while it should have been held: {s}; at the stall {hs}")

    # Kill lb2's end of the sync connection: lb2's lbd sees the abort at once, lb1 gets a reset.
    kill = lab.run("lb2", ["ss", "-K", "-tn", "state", "established", f"( sport = :{SYNC_PORT} )"], timeout=10)
    assert lab.addr("lb1") in kill.stdout, f"ss -K found no sync connection on lb2:\n{kill.stdout}{kill.stderr}"
    cut = wait_sync(pair, "lb2", {"reconnects": lambda n: n >= 1}, 3, "lb2 noticing the killed connection")
    counters = nft_counters(lab, "lb2")
    block_sync(lab, "lb2", on=False)
    return dict(n1=n1, s1_before=s1_before, quota=quota, held=held, t_held=t_held, cut=cut, counters=counters,
                t_free=time.monotonic())


def assert_cut_mid_bulk(r):
    """The connection died mid-bulk: lb2 held part of the table, lb1 still had more to send."""
    cs, counters = r["cut"]["sync"], r["counters"]
    assert counters[1][0] > 0, f"no segment from lb1 was held back: the bulk was not stalled ({counters})"
    assert cs["bulk_state"] == "receiving" and cs["state"] != "established", cs
    assert 0 < cs["bulk_received"] < cs["bulk_total"] and cs["bulk_received"] < r["n1"], (r["n1"], cs)
    assert cs["bulk_received"] == r["held"]["sync"]["bulk_received"], (cs, r["held"]["sync"])
    assert cs["reconnects"] == 1, cs


def cut_summary(r):
    held, cut, cs, counters = r["held"], r["cut"], r["cut"]["sync"], r["counters"]
    return (f"lb1 {r['n1']:,} flows; quota {r['quota']:,} bytes; lb2's bulk stalled at "
            f"{held['sync']['bulk_received']:,} flows {r['t_held']:.2f}s after lb2 started; killed there: lb2 "
            f"{cut['flows']:,} flows, bulk_received {cs['bulk_received']:,} of {cs['bulk_total']:,} "
            f"({cs['bulk_received'] / max(1, cs['bulk_total']):.0%}), state {cs['state']}, bulk {cs['bulk_state']}; "
            f"nft (packets, bytes) in/dropped {counters} "
            f"({(counters[0][1] - counters[1][1]) / max(1, cs['bulk_received']):.1f} bytes/flow)")


def assert_clean_end(pair, r, done, st1):
    """Nothing rejected, garbled or lost, one interruption only; the roles unchanged."""
    s2, s1, s1_before = done["sync"], st1["sync"], r["s1_before"]
    assert s2["rejected"] == 0 and s2["unknown_backend"] == 0 and s2["reconnects"] == 1, s2
    assert done["counters"]["flow_table_full"] == 0, done["counters"]
    assert s1["rejected"] == s1_before["rejected"] and s1["reconnects"] > s1_before["reconnects"], s1
    assert pair.vrrp("lb1")["state"] == "MASTER" and pair.vrrp("lb2")["state"] == "BACKUP"


def test_interrupted_bulk_sync_starts_over_and_leaves_no_holes(lab, make_pair):
    """lb2's bulk of ~300k flows is stalled part way and its connection killed (interrupt_bulk).
    lb1 reconnects and lb2 asks for the whole table again, from the start: the new connection
    carries all of lb1's flows (not just those lb2 lacked), counted as one bulk of bulk_total flows,
    and lb2 ends with exactly lb1's flows, per backend too; nothing is rejected."""
    pair = make_pair(sync=True, extra=STALL_CONFIG)
    r = interrupt_bulk(lab, pair, INTERRUPT_FLOWS)
    n1, cut, cs = r["n1"], r["cut"], r["cut"]["sync"]
    done = wait_sync(pair, "lb2", {"bulk_state": "done"}, 10, "lb2's new bulk done")
    took = time.monotonic() - r["t_free"]
    st1 = pair.lbd("lb1")
    s2, s1 = done["sync"], st1["sync"]
    again = s2["received_flows"] - cs["received_flows"]     # flows that came over the new connection
    print(f"\n{cut_summary(r)}; the new connection carried {again:,} flows, bulk done {took:.3f}s after the "
          f"quota went; lb2 {done['flows']:,} flows, bulk_received {s2['bulk_received']:,} of {s2['bulk_total']:,}, "
          f"received_flows {s2['received_flows']:,}, bulk_duration_ms {s2['bulk_duration_ms']}, reconnects lb2 "
          f"{s2['reconnects']} lb1 +{s1['reconnects'] - r['s1_before']['reconnects']}; lb1 bulk_sent "
          f"+{s1['bulk_sent'] - r['s1_before']['bulk_sent']:,}")

    assert_cut_mid_bulk(r)
    assert cut["flows"] == cs["bulk_received"], (cut["flows"], cs)
    # It started over: the whole table again on the new connection, counted as one bulk.
    assert st1["flows"] == n1, f"lb1's table changed under the test: {st1['flows']:,} flows, {n1:,} before"
    assert again == n1, (
        f"lb2 received {again:,} flows on the new connection, want lb1's whole table of {n1:,} (it already "
        f"held {cs['bulk_received']:,} of them): the bulk did not start over")
    assert s2["bulk_total"] == n1 and s2["bulk_received"] == n1, s2
    # Exactly lb1's table.
    assert done["flows"] == n1, (done["flows"], n1)
    assert backend_flows(done) == backend_flows(st1), "lb2's flows per backend differ from lb1's"
    assert_clean_end(pair, r, done, st1)


def test_table_changed_under_a_stalled_bulk_leaves_no_holes(lab, make_pair):
    """The reason the bulk starts over. lb2's bulk of lb1's ~150k flows is stalled part way
    (interrupt_bulk); there lb1's table changes below the point the transfer had reached: backend be3
    is removed (config + `lbctl reload` on both nodes; its ~1/3 of the flows, spread over the whole
    table, go) and NEW_FLOWS new flows arrive, which lb1 puts into the freed slots, many of them below
    the stall point. Their updates die with the killed connection (the test checks that none reached
    lb2), so only a whole new pass brings them: lb2 must converge to exactly lb1's flows (count, and
    count per backend of every service) within a bounded wait, with the whole table on the new
    connection and nothing rejected."""
    pair = make_pair(sync=True, extra=STALL_CONFIG)
    new_prefix = NEW_NET.rsplit(".", 1)[0] + "."
    ch = {}

    def change(held):
        # lb2's table is the part of lb1's it received, in lb1's order: each of its entries marks a
        # point the transfer had passed.
        part = [c for c, b in table_order(lab, "lb2") if b != BACKENDS[2]]
        assert part, "lb2 lists no flow of be1/be2"
        st1, st2 = pair.lbd("lb1"), pair.lbd("lb2")
        set_backends(pair, BACKENDS[:2])
        ch["removed1"] = st1["flows"] - pair.lbd("lb1")["flows"]
        ch["removed2"] = st2["flows"] - pair.lbd("lb2")["flows"]
        base = settled_flows(pair, "lb1")
        tg = trafgen_start(lab, "lb1", count=NEW_FLOWS, rate=60_000, name="new", net=NEW_NET)
        try:
            wait_for(lambda: tg.poll() is not None, 10, 0.1, f"trafgen sending {NEW_FLOWS:,} new flows")
        finally:
            lab.stop(tg, sig=signal.SIGINT, timeout=3)
        ch["n1"] = settled_flows(pair, "lb1")
        ch["new"] = ch["n1"] - base
        order = [c for c, _b in table_order(lab, "lb1")]
        # The mark: the furthest flow of lb2's part that lb1's listing (100 000 at most) still reaches.
        # Not simply lb2's last listed flow: with two workers, lb1's first worker (listed first) can end
        # with more flows than before (new ones beyond those it lost), which pushes that flow past
        # lb1's first 100 000, depending on how far fill() overshot (it polls lb1's status while 60k
        # new flows a second arrive: more on a busy machine).
        at = {c: i for i, c in enumerate(order)}
        listed = [c for c in part if c in at]
        assert listed, f"no flow of lb2's part ({len(part):,}) is among lb1's first {len(order):,}"
        mark = max(listed, key=at.get)
        ch["mark_at"] = at[mark]
        ch["new_below"] = sum(c.startswith(new_prefix) for c in order[:ch["mark_at"]])

    r = interrupt_bulk(lab, pair, HOLE_FLOWS, during_stall=change)
    cut, cs = r["cut"], r["cut"]["sync"]
    n1 = ch["n1"]
    seen = {}

    def converged():
        st2, st1 = pair.lbd("lb2"), pair.lbd("lb1")
        seen.update(st2=st2, st1=st1)
        ok = (st2["sync"]["bulk_state"] == "done" and st2["flows"] == st1["flows"]
              and backend_flows(st2) == backend_flows(st1))
        return (st2, st1) if ok else None

    try:
        done, st1 = wait_for(converged, 10, 0.05, "lb2 holding exactly lb1's flows")
    except AssertionError as e:
        st2, st1 = seen["st2"], seen["st1"]
        b1, b2 = backend_flows(st1), backend_flows(st2)
        diff = {k: (b1.get(k), b2.get(k)) for k in sorted(set(b1) | set(b2)) if b1.get(k) != b2.get(k)}
        raise AssertionError(
            f"{e}\nlb2 {st2['flows']:,} flows, lb1 {st1['flows']:,}: lb2 lacks {st1['flows'] - st2['flows']:,}; "
            f"lb2's bulk {st2['sync']['bulk_state']}, received {st2['sync']['bulk_received']:,} of "
            f"{st2['sync']['bulk_total']:,}; (service, backend): (lb1, lb2) flows where they differ: {diff}; "
            f"{cut_summary(r)}; changes under the stall: {ch}") from None
    took = time.monotonic() - r["t_free"]
    s2, s1 = done["sync"], st1["sync"]
    again = s2["received_flows"] - cs["received_flows"]
    print(f"\n{cut_summary(r)}; under the stall: be3 removed (lb1 -{ch['removed1']:,} flows, lb2 -{ch['removed2']:,} "
          f"of the part it held), {ch['new']:,} new flows on lb1, {ch['new_below']:,} of them in slots before "
          f"the mark (lb2's furthest flow lb1 lists, #{ch['mark_at']:,} in lb1's table order), lb1 then {n1:,} "
          f"flows; the new connection carried {again:,} flows, lb2 equal to lb1 {took:.3f}s after the quota went "
          f"(bulk_duration_ms {s2['bulk_duration_ms']}); lb2 {done['flows']:,} flows, per backend {backend_flows(done)}")

    assert_cut_mid_bulk(r)
    # The table changed below the stall point, and no update of it reached lb2 before the kill.
    assert ch["removed2"] > 0 and ch["removed1"] > ch["removed2"], ch
    assert ch["new"] >= NEW_FLOWS * 0.9, f"only {ch['new']:,} of {NEW_FLOWS:,} new flows entered lb1's table"
    assert ch["new_below"] > 0, f"no new flow took a slot the stalled transfer had passed: {ch}"
    assert cs["received_flows"] == r["held"]["sync"]["received_flows"], (cs, r["held"]["sync"])
    # The whole table again on the new connection, and lb2 exactly lb1's table.
    assert st1["flows"] == n1 and done["flows"] == n1, (done["flows"], st1["flows"], n1)
    assert s2["bulk_total"] == n1 and s2["bulk_received"] == n1 and again == n1, (again, s2)
    assert_clean_end(pair, r, done, st1)


@pytest.mark.workerless
def test_preempts_after_sync_timeout_without_bulk(lab, make_pair):
    skip_without("nft")
    pair = make_pair(sync=True, extra={"sync_timeout": "2s"})
    pair.crash("lb1")
    pair.wait_master("lb2", 2)
    block_sync(lab, "lb1")
    t0 = time.monotonic()
    pair.start_node("lb1")
    pair.wait_master("lb1", 5)
    waited = time.monotonic() - t0
    s1 = sync_st(pair, "lb1")
    assert s1["bulk_state"] == "timeout" and s1["ready"], s1
    assert 1.8 <= waited, f"lb1 preempted after {waited:.2f}s, before sync_timeout (2s)"
    assert_owner(pair, "lb1")
    block_sync(lab, "lb1", on=False)
    wait_established(pair, timeout=5)


# ----------------------------------------------------------------------------- hostile input

@pytest.mark.workerless
def test_sync_port_refuses_non_peers(lab, make_pair):
    pair = make_pair(sync=True)
    wait_established(pair)
    listener = "lb2"      # the node with the higher address accepts, the lower one connects
    before = sync_st(pair, listener)
    code = f"""
import json, socket
out = []
for host in ({lab.addr('lb2')!r}, {lab.addr('lb1')!r}):
    for i in range(5 if host == {lab.addr('lb2')!r} else 1):
        s = socket.socket(); s.settimeout(2)
        try:
            s.connect((host, {SYNC_PORT}))
            s.sendall(b"\\x00\\x00\\x00\\x10" + b"x" * 16)
            out.append([host, "closed" if s.recv(100) == b"" else "data"])
        except OSError as e:
            out.append([host, type(e).__name__])
        s.close()
print(json.dumps(out))
"""
    res = json.loads(lab.run(GEN, [sys.executable, "-c", code], timeout=20).stdout)
    to2 = [r for h, r in res if h == lab.addr("lb2")]
    to1 = [r for h, r in res if h == lab.addr("lb1")]
    assert all(r in ("closed", "ConnectionResetError", "BrokenPipeError") for r in to2), res
    assert to1 == ["ConnectionRefusedError"], res
    after = wait_sync(pair, listener, {"rejected": lambda n: n >= before["rejected"] + 5}, 2,
                      f"{listener} counting the refused connections")["sync"]
    assert after["state"] == "established" and after["reconnects"] == before["reconnects"], after
    assert after["refused_not_peer"] == before["refused_not_peer"] + 5, after
    assert after["unauthenticated"] == before["unauthenticated"], after
    assert after["received_messages"] >= before["received_messages"]
    # The real connection still works: a new flow reaches the standby.
    n2 = pair.lbd("lb2")["flows"]
    assert client.http_gets(lab, 5)["ok"] == 5
    pair.wait_lbd("lb2", {"flows": lambda n: n >= n2 + 5}, 2, "new flows synced to lb2", interval=0.05)


# Opens connections to HOST:PORT from this namespace, one every GAP seconds, N in all, and keeps each
# open (sending whatever its kind says) until the far end closes it; reports when each closed.
#   silent:   sends nothing
#   oversize: a length prefix above the largest frame, then 100 bytes
#   trickle:  a plausible length prefix (4096), then one byte every 100 ms
SYNC_CLIENT = r'''
import json, select, socket, sys, time
host, port, kind, n, gap, linger = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), \
    float(sys.argv[5]), float(sys.argv[6])
first = {"oversize": b"\x7f\xff\xff\xff" + b"x" * 100, "trickle": b"\x00\x00\x10\x00"}.get(kind, b"")
connecting = set()
conns = {}                 # socket -> [connected at, last byte sent at]
out = {"opened": 0, "closed": [], "refused": 0, "got": 0, "open_left": 0}
t0 = time.monotonic()
while True:
    now = time.monotonic()
    if out["opened"] < n and now >= t0 + out["opened"] * gap:
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((host, port))  # a burst can overflow the listen backlog: the kernel resends the SYN
        connecting.add(s)
        out["opened"] += 1
        continue
    if out["opened"] >= n and (not conns and not connecting or now > t0 + n * gap + linger):
        break
    if kind == "trickle":
        for s, (opened, last) in list(conns.items()):
            if now - last >= 0.1:
                try:
                    s.send(b"t")
                except OSError:
                    pass
                conns[s][1] = now
    r, w, _ = select.select(list(conns), list(connecting), [], 0.01)
    for s in w:
        connecting.discard(s)
        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            out["refused"] += 1
            s.close()
            continue
        if first:
            s.send(first)
        conns[s] = [time.monotonic(), time.monotonic()]
    for s in r:
        try:
            d = s.recv(65536)
        except BlockingIOError:
            continue
        except OSError:
            d = b""
        if d:
            out["got"] += len(d)
            continue
        out["closed"].append(round(time.monotonic() - conns.pop(s)[0], 3))
        s.close()
out["open_left"] = len(conns) + len(connecting)
print(json.dumps(out))
'''


def sync_client(lab, node, target, kind, n, gap, linger=4.0):
    """Starts SYNC_CLIENT in node's namespace against target's sync port; returns the process."""
    path = os.path.join(lab.tmpdir, "conf", "sync_client.py")
    with open(path, "w") as f:
        f.write(SYNC_CLIENT)
    return lab.popen(node, [sys.executable, path, lab.addr(target), str(SYNC_PORT), kind, str(n), str(gap),
                            str(linger)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def sync_client_result(proc, timeout):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out)


def watch_sync(pair, node, proc, interval=0.2):
    """node's sync status every `interval` while proc runs: [(state, reconnects), ...]."""
    polls = []
    while proc.poll() is None:
        s = sync_st(pair, node)
        polls.append((s["state"], s["reconnects"]) if s else (None, None))
        time.sleep(interval)
    return polls


SYNC_COUNTERS = ("rejected", "refused_not_peer", "unauthenticated", "handshake_timeouts", "oversized",
                 "reconnects")


def counter_delta(before, after):
    return {k: after[k] - before[k] for k in SYNC_COUNTERS}


@pytest.mark.workerless
def test_silent_connections_from_the_peer_node_leave_the_session_up(lab, make_pair):
    """Another process on lb1 opens a silent connection to lb2's sync port every 100 ms for 10 s
    while lb1 creates flows. lb2 keeps the authenticated session established in every status poll,
    `reconnects` stays where it was on both nodes, each silent connection is closed (replaced by the
    next one, the last at the handshake deadline) and counted, and the flows created meanwhile reach
    lb2."""
    pair = make_pair(sync=True)
    wait_established(pair)
    b1, b2 = sync_st(pair, "lb1"), sync_st(pair, "lb2")
    n_conns, gap = 100, 0.1
    proc = sync_client(lab, "lb1", "lb2", "silent", n_conns, gap)
    pair.extra_procs = [proc]
    gen = paced_start(lab, "lb1", 2000, 250)
    polls = watch_sync(pair, "lb2", proc)
    res = sync_client_result(proc, 20)
    paced_wait(lab, gen, 10)
    a2 = wait_sync(pair, "lb2", {"unauthenticated": lambda n: n >= b2["unauthenticated"] + n_conns}, 3,
                   "lb2 counting the silent connections")["sync"]
    a1 = sync_st(pair, "lb1")
    d2 = counter_delta(b2, a2)
    up = sum(1 for st, _r in polls if st == "established")
    print(f"\nsilent: {res['opened']} connections, {len(res['closed'])} closed by lb2 (median life "
          f"{sorted(res['closed'])[len(res['closed']) // 2] if res['closed'] else '-'} s, longest "
          f"{max(res['closed'], default=0)} s); lb2 established in {up} of {len(polls)} polls; lb2 {d2}; "
          f"reconnects lb1 {b1['reconnects']} -> {a1['reconnects']}")
    assert res["opened"] == n_conns and res["refused"] == 0 and res["got"] == 0, res
    assert len(res["closed"]) == n_conns and res["open_left"] == 0, res
    # Each was replaced by the next within about the gap; the last lived until the deadline (2 s).
    assert 1.5 <= max(res["closed"]) <= 3.0, res["closed"]
    assert len(polls) >= 30 and up == len(polls), polls
    assert {r for _st, r in polls} == {b2["reconnects"]}, polls
    assert d2 == {"rejected": 0, "refused_not_peer": 0, "unauthenticated": n_conns, "handshake_timeouts": 1,
                  "oversized": 0, "reconnects": 0}, d2
    assert a1["reconnects"] == b1["reconnects"] and a1["state"] == "established", a1
    assert a2["state"] == "established" and a2["bulk_state"] == "done", a2
    # The updates of the flows lb1 created meanwhile arrived on the session.
    assert a2["received_flows"] >= b2["received_flows"] + 1000, (b2["received_flows"], a2["received_flows"])
    pair.wait_lbd("lb2", {"flows": lambda n: n == pair.lbd("lb1")["flows"]}, 3, "lb2 holding lb1's flows",
                  interval=0.05)


@pytest.mark.workerless
def test_oversized_and_trickling_connections_are_closed_and_counted(lab, make_pair):
    """From lb1's address: a length prefix above the largest frame is closed at once; a connection
    that trickles a byte every 100 ms is closed at the handshake deadline (2 s); 12 connections
    opened at once cost one pending slot (each replaced by the next, the last at the deadline).
    The session stays established throughout."""
    pair = make_pair(sync=True)
    wait_established(pair)
    b2 = sync_st(pair, "lb2")
    res = {}
    for kind, n, gap in (("oversize", 3, 0.3), ("trickle", 1, 0.0), ("silent", 12, 0.0)):
        proc = sync_client(lab, "lb1", "lb2", kind, n, gap, linger=10.0)
        pair.extra_procs = [proc]
        polls = watch_sync(pair, "lb2", proc, 0.1)
        res[kind] = sync_client_result(proc, 15)
        assert {p for p in polls} == {("established", b2["reconnects"])}, (kind, polls)
    a2 = wait_sync(pair, "lb2", {"unauthenticated": lambda n: n >= b2["unauthenticated"] + 16}, 3,
                   "lb2 counting the closed connections")["sync"]
    d2 = counter_delta(b2, a2)
    print(f"\nhostile connections: oversize closed after {res['oversize']['closed']} s, trickle after "
          f"{res['trickle']['closed']} s, 12 at once: longest {max(res['silent']['closed'], default=0)} s; "
          f"lb2 {d2}")
    for kind, n in (("oversize", 3), ("trickle", 1), ("silent", 12)):
        r = res[kind]
        assert r["opened"] == n and r["refused"] == 0 and r["open_left"] == 0 and len(r["closed"]) == n, (kind, r)
        assert r["got"] == 0, (kind, r)
    assert max(res["oversize"]["closed"]) < 0.5, res["oversize"]
    assert 1.5 <= res["trickle"]["closed"][0] <= 3.0, res["trickle"]
    # The burst fits the listen backlog (16): each is replaced at once by the next, the newest is
    # closed at the deadline.
    closed = sorted(res["silent"]["closed"])
    assert closed[-2] < 0.5 and 1.5 <= closed[-1] <= 3.0, closed
    assert d2 == {"rejected": 3, "refused_not_peer": 0, "unauthenticated": 16, "handshake_timeouts": 2,
                  "oversized": 3, "reconnects": 0}, d2
    assert a2["state"] == "established", a2
    n2 = pair.lbd("lb2")["flows"]
    assert client.http_gets(lab, 5)["ok"] == 5
    pair.wait_lbd("lb2", {"flows": lambda n: n >= n2 + 5}, 2, "new flows synced to lb2", interval=0.05)


@pytest.mark.workerless
def test_restarted_peer_replaces_a_half_dead_session_promptly(lab, make_pair):
    """lb1 (the connecting node) crashes with its FIN and resets dropped, so lb2 still holds the old
    session as established when the new lb1 connects. The new connection waits as pending, sends
    authentic messages within a round trip and replaces the old session: both nodes are established
    again, with lb1's bulk done, well within a second of lb1's lbd answering."""
    skip_without("nft")
    pair = make_pair(sync=True, master="lb2", priorities={"lb1": 100, "lb2": 150})
    wait_established(pair)
    rules = ("table inet syncblock {\n chain out {\n  type filter hook output priority 0; policy accept;\n"
             f"  tcp dport {SYNC_PORT} tcp flags & (fin | rst) != 0 drop\n }}\n}}\n")
    lab.run("lb1", ["nft", "-f", "-"], input=rules, timeout=10)
    b2 = sync_st(pair, "lb2")
    pair.crash("lb1")
    time.sleep(0.3)
    held = sync_st(pair, "lb2")
    assert held["state"] == "established" and held["reconnects"] == b2["reconnects"], held
    t0 = time.monotonic()
    pair.start_lbd("lb1")
    t_up = time.monotonic()
    a2 = wait_sync(pair, "lb2", {"reconnects": b2["reconnects"] + 1, "state": "established"}, 3,
                   "lb2 taking the new session")["sync"]
    t_new = time.monotonic()
    wait_established(pair, ("lb1",), timeout=3)
    t_bulk = time.monotonic()
    lab.run("lb1", ["nft", "delete", "table", "inet", "syncblock"], check=False, timeout=10)
    pair.start_vrrpd("lb1")
    d2 = counter_delta(b2, a2)
    print(f"\nrestart over a half-dead session: lb1's lbd answering after {t_up - t0:.2f} s, lb2 on the new "
          f"session {t_new - t_up:.3f} s later, lb1's bulk done {t_bulk - t_up:.3f} s later; lb2 {d2}")
    assert t_new - t_up < 1.0 and t_bulk - t_up < 1.5, (t_new - t_up, t_bulk - t_up)
    assert d2["unauthenticated"] == 0 and d2["rejected"] == 0, d2
    assert log_times(lab, "lb2-lbd", "replaced by an authenticated new connection", 0), "not the replacement path"


FAKE_PEER = r'''
import json, socket, sys, time
payloads = json.load(open(sys.argv[1]))
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((sys.argv[2], int(sys.argv[3])))
ls.listen(4)
ls.settimeout(5)
for name, hexdata, hold in payloads:
    c, addr = ls.accept()
    c.settimeout(0.05)
    data = bytes.fromhex(hexdata)
    got, closed = 0, False
    try:
        c.sendall(data)
    except OSError:
        closed = True
    end = time.monotonic() + hold
    while time.monotonic() < end and not closed:
        try:
            b = c.recv(65536)
            if not b:
                closed = True
            got += len(b)
        except socket.timeout:
            pass
        except OSError:
            closed = True
    c.close()
    print(json.dumps({"name": name, "from": addr[0], "sent": len(data), "got": got,
                      "peer_closed": closed}), flush=True)
'''


def tcp_streams(pkts, port):
    """{(src, sport): bytes} of each direction of the TCP connections to or from `port`,
    reassembled by sequence number (retransmissions and overlaps removed)."""
    from scapy.layers.inet import IP, TCP
    segs = {}
    isn = {}
    for p in pkts:
        if IP not in p or TCP not in p:
            continue
        t = p[TCP]
        if port not in (t.sport, t.dport):
            continue
        key = (p[IP].src, t.sport, p[IP].dst, t.dport)
        if t.flags & 0x02:           # SYN
            isn[key] = t.seq + 1
        data = bytes(t.payload)
        if data:
            segs.setdefault(key, {})[t.seq] = data
    out = {}
    for key, by_seq in segs.items():
        if key not in isn:
            continue
        buf = bytearray()
        nxt = isn[key]
        for seq in sorted(by_seq, key=lambda s: (s - isn[key]) & 0xFFFFFFFF):
            off = (seq - nxt) & 0xFFFFFFFF
            d = by_seq[seq]
            if off > 0x7FFFFFFF:                 # starts before nxt: overlap
                skip = (nxt - seq) & 0xFFFFFFFF
                if skip >= len(d):
                    continue
                d = d[skip:]
            elif off:
                break                            # a hole: stop at what is contiguous
            buf += d
            nxt = (nxt + len(d)) & 0xFFFFFFFF
        out[key] = bytes(buf)
    return out


def frames(stream):
    """Split a sync byte stream into its length-prefixed frames (prefix included)."""
    out, off = [], 0
    while off + 4 <= len(stream):
        n = struct.unpack("!I", stream[off:off + 4])[0]
        if off + 4 + n > len(stream):
            break
        out.append(stream[off:off + 4 + n])
        off += 4 + n
    return out


def test_hostile_input_from_the_peer_address(lab, make_pair):
    """lb2 is master first and streams flow updates to lb1 (captured); then lb2's daemons stop, lb1
    takes over, its copies of the flows expire, and a fake peer on lb2's address feeds lb1 garbage
    and the captured frames. Nothing may enter lb1's table; `rejected` counts the frames."""
    skip_without("tcpdump")
    extra = {"udp_timeout": "2s", "flow_max": "1024"}   # small table: expiry sweeps it within ~1 s
    pair = make_pair(sync=True, priorities={"lb1": 100, "lb2": 150}, extra=extra, start=False)
    cap = Capture(lab, "lb1", "eth0", f"tcp port {SYNC_PORT}", name="sync-stream").start()
    try:
        pair.start(master="lb2")
        wait_established(pair)
        paced_wait(lab, paced_start(lab, "lb2", 300, 3000), 10)
        # The standby holds what the master created (some frames may be lost in lb2's RX ring).
        wait_sync(pair, "lb1", {"received_flows": lambda n: n >= 100}, 3, "lb1 holding lb2's flows",
                  flows=lambda n: n >= 100 and n == pair.lbd("lb2")["flows"])
        # The capture holds lb2's side of the stream: at least three segments with data.
        from scapy.layers.inet import TCP
        cap.wait_packets(lambda p: TCP in p and p[TCP].sport == SYNC_PORT and len(p[TCP].payload) > 0,
                         count=3, timeout=3)
    finally:
        pkts = cap.packets()
    streams = tcp_streams(pkts, SYNC_PORT)
    from_lb2 = [d for (src, sport, _d, _p), d in streams.items() if src == lab.addr("lb2") and sport == SYNC_PORT]
    from_lb1 = [d for (src, _s, _d, dport), d in streams.items() if src == lab.addr("lb1") and dport == SYNC_PORT]
    assert from_lb2 and from_lb1, f"sync streams not captured: {[(k, len(v)) for k, v in streams.items()]}"
    rec2, rec1 = max(from_lb2, key=len), max(from_lb1, key=len)
    fr2 = frames(rec2)
    assert len(fr2) >= 3, f"only {len(fr2)} frames from lb2 captured"

    # lb2's daemons stop; lb1 takes over and its copies of lb2's flows expire.
    pair.crash("lb2")
    pair.wait_master("lb1", 2)
    pair.wait_lbd("lb1", {"flows": 0}, 8, "lb1's flows expired", interval=0.1)
    base = pair.lbd("lb1")
    s0 = base["sync"]

    big = max(fr2, key=len)
    rnd = random.Random(4711)
    garbage = bytes(rnd.getrandbits(8) for _ in range(3000))
    payloads = [
        ("replay", rec2.hex(), 0.5),                          # lb2's whole stream: HELLO, UPDATEs, ...
        ("replay-updates", b"".join(fr2[1:]).hex(), 0.3),      # without the handshake
        ("reflect", rec1.hex(), 0.3),                         # lb1's own frames back to it
        ("random", garbage.hex(), 0.3),
        ("garbage-frame", (struct.pack("!I", 1000) + garbage[:1000]).hex(), 0.3),
        ("bitflip", (big[:40] + bytes([big[40] ^ 1]) + big[41:]).hex(), 0.3),
        ("empty-frame", (b"\0\0\0\0" * 4).hex(), 0.3),
        ("truncated", big[:len(big) // 2].hex(), 0.3),        # then the connection closes
        ("oversized", (b"\x7f\xff\xff\xff" + garbage[:100]).hex(), 0.3),
    ]
    ppath = os.path.join(lab.tmpdir, "conf", "hostile.json")
    with open(ppath, "w") as f:
        json.dump(payloads, f)
    spath = os.path.join(lab.tmpdir, "conf", "fake_peer.py")
    with open(spath, "w") as f:
        f.write(FAKE_PEER)
    fake = lab.popen("lb2", [sys.executable, spath, ppath, lab.addr("lb2"), str(SYNC_PORT)],
                     stdout=open(lab.log_path("fake-peer"), "w"), stderr=open(lab.log_path("fake-peer-err"), "w"))
    pair.extra_procs = [fake]
    try:
        fake.wait(20)
    except Exception:
        lab.stop(fake)
        raise AssertionError("the fake peer did not finish:\n" + lab.log_tail("fake-peer")
                             + lab.log_tail("fake-peer-err"))
    results = [json.loads(line) for line in open(lab.log_path("fake-peer")) if line.strip()]
    assert [r["name"] for r in results] == [p[0] for p in payloads], (results, lab.log_tail("fake-peer-err"))
    assert all(r["from"] == lab.addr("lb1") for r in results), results
    # Each replayed, reflected or forged frame is counted: wait until lb1 has counted them all.
    expect = len(fr2) + len(fr2) - 1 + len(frames(rec1)) + 1 + 1 + 1 + 1
    wait_sync(pair, "lb1", {"rejected": lambda n: n - s0["rejected"] >= expect}, 3,
              f"lb1 counting {expect} rejected frames")
    after = pair.lbd("lb1")
    s1 = after["sync"]
    print(f"\nhostile: lb1 rejected {s1['rejected'] - s0['rejected']} frames, flows {base['flows']} -> "
          f"{after['flows']}, received_messages {s0['received_messages']} -> {s1['received_messages']}; "
          + ", ".join(f"{r['name']}: {'closed' if r['peer_closed'] else 'open'}" for r in results))
    assert after["flows"] == base["flows"], f"lb1's table changed: {base['flows']} -> {after['flows']}"
    assert s1["received_messages"] == s0["received_messages"], "a hostile frame was accepted"
    assert s1["received_flows"] == s0["received_flows"]
    assert s1["rejected"] - s0["rejected"] >= expect, (s1["rejected"] - s0["rejected"], expect)
    assert s1["state"] != "established", s1
    assert after["active"]
    oversized = next(r for r in results if r["name"] == "oversized")
    assert oversized["peer_closed"], "lb1 kept a connection open after an oversized length prefix"

    # The real lb2 returns: sync works again both ways and nothing more is rejected.
    pair.start_node("lb2")
    wait_established(pair, timeout=5)
    s2 = sync_st(pair, "lb1")
    assert s2["rejected"] == s1["rejected"], s2
    pair.wait_master("lb2", 5)
    assert_owner(pair, "lb2")

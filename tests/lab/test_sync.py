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
- Hostile input on the sync port: connections from a non-peer are refused and counted; from the
  peer's own address (its daemons stopped) random bytes, a truncated frame, oversized and empty
  length prefixes, a reflected stream and a replayed capture of the real sync stream change no
  table entry and raise the `rejected` counter; the real peer then syncs again as before.

Every wait is bounded; the module takes about 70 seconds.
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
from lib.pair import BACKENDS, NODES, Pair, config_text

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
    pairs = []

    def make(sync=True, backends=BACKENDS, priorities=None, extra=None, start=True, master="lb1",
             key=None):
        key = key or lab.keygen()
        p = Pair(lab, key=key, conf_text=pair_conf(key, sync, backends, priorities, extra))
        p.sync_args = dict(sync=sync, priorities=priorities, extra=extra)
        pairs.append(p)
        if start:
            p.start(master=master)
        return p

    yield make
    for p in pairs:
        for proc in getattr(p, "extra_procs", []):
            lab.stop(proc, timeout=3)
        p.stop()
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


def wait_sync(pair, node, pred, timeout=5, what=None):
    def check():
        st = pair.lbd(node)
        return st if st is not None and st.get("sync") is not None and pred(st["sync"], st) else None

    return wait_for(check, timeout, 0.02, what or f"sync status of {node}")


def wait_established(pair, nodes=("lb1", "lb2"), timeout=5):
    for n in nodes:
        wait_sync(pair, n, lambda s, _st: s["state"] == "established" and s["bulk_state"] == "done",
                  timeout, f"{n}: sync established and its bulk done")


def set_backends(pair, backends, nodes=("lb1", "lb2"), timeout=5):
    """Rewrite the pair's config file with this backend set and reload the running `nodes` (both
    daemons); returns once every listed node has reloaded and knows every backend's MAC."""
    lab = pair.lab
    args = pair.sync_args
    pair.conf_text = pair_conf(pair.key, args["sync"], backends, args["priorities"], args["extra"])
    with open(pair.conf, "w") as f:
        f.write(lab.config_text(pair.conf_text))
    before = {n: pair.lbd(n)["reloads"] for n in nodes}
    for n in nodes:
        r = lab.lbctl(n, "reload")
        assert r.returncode == 0, f"lbctl reload on {n}: {r.stdout} {r.stderr}"
    want = set(backends)
    for n in nodes:
        def done(st, n=n):
            if st["lbd"]["reloads"] <= before[n] or st["lbd"].get("last_reload_error"):
                return False
            for svc in st["lbd"]["services"]:
                have = {b["address"]: b for b in svc["backends"]}
                if set(have) != want or any(not b["mac"] for b in have.values()):
                    return False
            return True

        lab.wait_status(n, done, timeout, f"{n} reloaded with backends {sorted(want)}, every MAC known")


def flow_map(lab, node, service="web", limit=5000):
    """{client ip:port: backend} of one service in node's connection table."""
    r = lab.lbctl(node, "flows", "--json", "--limit", str(limit), check=True, timeout=10)
    return {f["client"]: f["backend"] for f in json.loads(r.stdout).get("flows") or []
            if f["service"] == service}


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
    if on:
        rules = ("table inet syncblock {\n chain out {\n  type filter hook output priority 0; policy accept;\n"
                 f"  tcp dport {SYNC_PORT} reject with tcp reset\n }}\n}}\n")
        lab.run(node, ["nft", "-f", "-"], input=rules, timeout=10)
    else:
        lab.run(node, ["nft", "delete", "table", "inet", "syncblock"], check=False, timeout=10)


# --- the generator: new UDP flows to the fill service, straight to the active node's MAC

def trafgen_start(lab, dst_node, count=0, rate=None, name="fill"):
    """trafgen on the generator: `count` datagrams (0: until stopped), at `rate` per second (None:
    full speed), each a new flow, sent to dst_node's MAC."""
    ip = f"ipv4(sa={FILL_NET}, sa[3]=dinc(), da={VIP}, ttl=64)"
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
        return wait_for(lambda: (lambda st: st if st["flows"] >= base + flows else None)(pair.lbd(node)),
                        timeout, 0.2, f"{flows} more flows in {node}'s table")
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
    m1 = flow_map(lab, "lb1")
    if pair.sync_args["sync"]:
        wait_for(lambda: len(flow_map(lab, "lb2")) >= len(m1), 2, 0.05, "lb2 holding every web flow of lb1")
    m2 = flow_map(lab, "lb2")
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
    (queued -> acknowledged by the standby, over the last 4096 updates) stays within the bar and
    every flow reaches the standby."""
    pair = make_pair(sync=True)
    wait_established(pair)
    offered = int(LAG_RATE * 1.03)       # a little above the bar: lbd's RX ring may lose a few frames
    c0 = pair.lbd("lb1")["counters"]["flows_created"]
    gen = paced_start(lab, "lb1", offered * LAG_SECONDS, offered)
    try:
        g = paced_wait(lab, gen, LAG_SECONDS + 10)
    finally:
        lab.stop(gen, timeout=3)
    time.sleep(0.1)
    created = pair.lbd("lb1")["counters"]["flows_created"] - c0
    rate = created / g["seconds"]
    # Every flow reached the standby.
    wait_for(lambda: pair.lbd("lb2")["flows"] >= pair.lbd("lb1")["flows"], 3, 0.05,
             "lb2 holding as many flows as lb1")
    st1 = pair.lbd("lb1")
    s1 = st1["sync"]
    print(f"\nsync lag at {rate:,.0f} new flows/s (generator {g['rate']:,}/s for {g['seconds']}s; {st1['flows']:,} "
          f"flows, RX ring drops {st1['counters']['ring_drops']}): p99 {s1['lag_p99_ms']} ms, last "
          f"{s1['last_lag_ms']} ms; {s1['sent_flows']:,} flows in {s1['sent_messages']:,} messages, "
          f"dropped {s1['dropped']}")
    assert rate >= LAG_RATE, f"only {rate:,.0f} new flows/s entered lb1's table"
    assert s1["dropped"] == 0, s1
    assert s1["lag_p99_ms"] <= LAG_BAR_MS, s1


# ----------------------------------------------------------------------------- bulk sync before preemption

def test_returning_node_bulk_syncs_before_it_preempts(lab, make_pair):
    skip_without("trafgen", "nft")
    flows = 100_000
    pair = make_pair(sync=True, extra={"sync_timeout": "30s", "udp_timeout": "10m"})
    wait_established(pair)
    fill(lab, pair, "lb1", flows)
    wait_for(lambda: pair.lbd("lb2")["flows"] >= pair.lbd("lb1")["flows"], 5, 0.1,
             "lb2 holding lb1's flows")
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
        st = wait_sync(pair, "lb2", lambda s, _st: s["bulk_state"] == "done", 3, "lb2's bulk sync done")
    finally:
        print(f"\nlb2 back after an 8 s outage: {sync_st(pair, 'lb2')}; lb1: {sync_st(pair, 'lb1')['state']}")
    took = time.monotonic() - t0
    print(f"bulk of {st['sync']['bulk_received']} flows done {took:.2f}s after lb2 started")
    assert st["sync"]["bulk_received"] >= n1 and st["flows"] >= n1, st["sync"]


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
    after = wait_sync(pair, listener, lambda s, _st: s["rejected"] >= before["rejected"] + 5, 2,
                      f"{listener} counting the refused connections")["sync"]
    assert after["state"] == "established" and after["reconnects"] == before["reconnects"], after
    assert after["received_messages"] >= before["received_messages"]
    # The real connection still works: a new flow reaches the standby.
    n2 = pair.lbd("lb2")["flows"]
    assert client.http_gets(lab, 5)["ok"] == 5
    wait_for(lambda: pair.lbd("lb2")["flows"] >= n2 + 5, 2, 0.05, "new flows synced to lb2")


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
        wait_sync(pair, "lb1", lambda s, st: s["received_flows"] >= 100 and st["flows"] >= 100
                  and st["flows"] == pair.lbd("lb2")["flows"], 3, "lb1 holding lb2's flows")
        time.sleep(0.2)
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
    wait_for(lambda: pair.lbd("lb1")["flows"] == 0, 8, 0.1, "lb1's flows expired")
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
    time.sleep(0.2)
    after = pair.lbd("lb1")
    s1 = after["sync"]
    print(f"\nhostile: lb1 rejected {s1['rejected'] - s0['rejected']} frames, flows {base['flows']} -> "
          f"{after['flows']}, received_messages {s0['received_messages']} -> {s1['received_messages']}; "
          + ", ".join(f"{r['name']}: {'closed' if r['peer_closed'] else 'open'}" for r in results))
    assert after["flows"] == base["flows"], f"lb1's table changed: {base['flows']} -> {after['flows']}"
    assert s1["received_messages"] == s0["received_messages"], "a hostile frame was accepted"
    assert s1["received_flows"] == s0["received_flows"]
    # Each replayed, reflected or forged frame is counted.
    expect = len(fr2) + len(fr2) - 1 + len(frames(rec1)) + 1 + 1 + 1 + 1
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

"""Heartbeat security: whatever arrives at a node's heartbeat port that is not a fresh, authentic
heartbeat of its peer is counted under the right rejected.* counter and changes nothing.

The attacker is "mallory", a spare host on the LAN, sending from a raw socket with lb2's address
(vrrpd checks the source address first) unless a test says otherwise; one test injects frames at
the switch (the bridge namespace) instead. Forged envelopes come from lib/envelope.py, a Python
rebuild of common/auth.c checked here against the daemons (test_codec_matches_daemons), so a
rejection below is the daemon's verdict on exactly what the test meant to send."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from lib import envelope as E
from lib.capture import Capture
from lib.lab import topology, wait_for
from lib.pair import Pair

TOPOLOGY = topology(lan_hosts={"mallory": "192.0.2.30"})
ADVERT_MS = 50
LB1, LB2, MALLORY = "192.0.2.11", "192.0.2.12", "192.0.2.30"
COUNTERS = ("malformed", "bad_mac", "replay", "unknown_node", "unknown_key", "stale_epoch")


@pytest.fixture
def pair(lab):
    """A fresh pair per test (lb1 MASTER, lb2 BACKUP, each trusting the other's epoch)."""
    p = Pair(lab, advert=f"{ADVERT_MS}ms", cluster_extra={"lbd_timeout": "300ms"})
    try:
        p.start()
        for n in p.nodes:
            p.wait_vrrp(n, {"peer": {"state": lambda st: st in ("MASTER", "BACKUP")}}, 3, f"{n} hearing its peer")
        yield p
    finally:
        p.stop()


def rejected(pair, node):
    return pair.vrrp(node)["rejected"]


def snapshot(pair):
    """What an attack must not change: roles, transitions, lbd ownership, the rejected counters."""
    out = {}
    for n in pair.nodes:
        v = pair.vrrp(n)
        out[n] = {"state": v["state"], "transitions": v["transitions"], "rejected": v["rejected"],
                  "active": pair.lbd(n)["active"], "priority": v["peer"]["priority"]}
    return out


def expect_rejections(pair, before, node, want, timeout=3):
    """Wait until node's rejected counters rose by exactly `want` ({counter: n}) and no other."""
    def deltas():
        now = rejected(pair, node)
        return {c: int(now.get(c, 0)) - int(before[node]["rejected"].get(c, 0)) for c in COUNTERS}

    full = {c: want.get(c, 0) for c in COUNTERS}
    try:
        wait_for(lambda: deltas() == full, timeout, 0.05, f"{node}'s rejected counters to rise by {want}")
    except AssertionError:
        raise AssertionError(f"{node}: rejected counters rose by {deltas()}, want {full}") from None


def assert_undisturbed(pair, before, watch_s=0.0):
    """Roles, transitions and lbd ownership as before (watched for watch_s), the peers still hear
    each other (genuine heartbeats still pass), and exactly one node owns the VIP."""
    end = time.monotonic() + watch_s
    while True:
        for n in pair.nodes:
            v, b = pair.vrrp(n), before[n]
            assert (v["state"], v["transitions"]) == (b["state"], b["transitions"]), (n, v, b)
            assert pair.lbd(n)["active"] == b["active"], n
            assert v["peer"]["state"] in ("MASTER", "BACKUP"), (n, v["peer"])
            assert v["peer"]["priority"] == b["priority"], (n, v["peer"])
        if time.monotonic() >= end:
            break
        time.sleep(0.05)
    assert pair.assert_single_owner(arp_checks=1) == "lb1"


def capture_heartbeats(lab, to_node, src, count, timeout=3):
    """Genuine heartbeat datagrams from src to to_node's port 8112, captured at to_node."""
    from scapy.layers.inet import UDP
    with Capture(lab, to_node, "eth0", f"udp and src host {src} and dst port 8112") as cap:
        cap.wait_packets(count=count, timeout=timeout)
    return [bytes(p[UDP].payload) for p in cap.packets() if UDP in p]


def send(lab, grams, src=LB2, dst=LB1, spoof=True, interval=0.0):
    n = E.send(lab, "mallory", grams, src, dst, spoof=spoof, interval=interval)
    assert n == len(grams)
    return n


def lb2_heartbeat(state="MASTER", priority=254, vips=("192.0.2.100",)):
    return E.heartbeat("lb2", priority, state, ADVERT_MS, vips, address=LB2)


# ----------------------------------------------------------------------------- positive control

def test_codec_matches_daemons(lab, pair):
    """The Python envelope opens the daemons' heartbeats, and what it seals with the cluster key
    passes the daemon's MAC check (a new epoch that has not echoed lb1's challenge: stale_epoch,
    not bad_mac). Without this, the rejections below could be our encoding's fault."""
    key = E.Key.load(pair.key)
    grams = capture_heartbeats(lab, "lb1", LB2, 3)
    env = E.decode_envelope(grams[0])
    assert env["key_id"] == key.id and env["sender"] == "lb2" and env["kind"] == E.KIND_HEARTBEAT, env
    hb = E.decode_heartbeat(key.open(grams[0]))
    assert hb["node"] == "lb2" and hb["priority"] == 100 and hb["address"] == LB2, hb
    assert hb["state"] == "BACKUP" and hb["vips"] == ["192.0.2.100"], hb
    assert E.Key.random().open(grams[0]) is None
    # Re-encoding the decoded envelope gives the same bytes: the canonical form auth_open wants.
    assert E.encode_envelope(**env) == grams[0]

    before = snapshot(pair)
    forged = key.seal(lb2_heartbeat(), "lb2", epoch=random.getrandbits(64) | 1, counter=1,
                      challenge=random.getrandbits(64) | 1)
    send(lab, [forged])
    expect_rejections(pair, before, "lb1", {"stale_epoch": 1})
    assert_undisturbed(pair, before)


# ----------------------------------------------------------------------------- wrong key, tampering

def test_wrong_key(lab, pair):
    """Heartbeats sealed with another key: its own key id -> unknown_key; the cluster key's id
    -> bad_mac. They claim priority 254 MASTER to lb1 and a step-down (priority 0) of lb1 to lb2,
    for longer than a master-down interval; nobody moves."""
    key, other = E.Key.load(pair.key), E.Key.random()
    assert other.id != key.id
    before = snapshot(pair)
    epoch, ch = random.getrandbits(64) | 1, random.getrandbits(64) | 1
    n = 10
    to_lb1 = [other.seal(lb2_heartbeat(), "lb2", epoch, c, ch) for c in range(1, n + 1)]
    to_lb1 += [other.seal(lb2_heartbeat(), "lb2", epoch, c, ch, key_id=key.id) for c in range(n + 1, 2 * n + 1)]
    step_down = E.heartbeat("lb1", 0, "MASTER", ADVERT_MS, ["192.0.2.100"], address=LB1)
    to_lb2 = [other.seal(step_down, "lb1", epoch, c, ch, key_id=key.id) for c in range(1, n + 1)]
    # One every 20 ms: 10 x 20 ms is longer than either node's master-down interval.
    send(lab, to_lb1, interval=0.02)
    send(lab, to_lb2, src=LB1, dst=LB2, interval=0.02)
    expect_rejections(pair, before, "lb1", {"unknown_key": n, "bad_mac": n})
    expect_rejections(pair, before, "lb2", {"bad_mac": n})
    assert_undisturbed(pair, before, watch_s=4 * ADVERT_MS / 1000)


def flip(b, i):
    b = bytearray(b)
    b[i] ^= 0x01
    return bytes(b)


def test_tampered_genuine_heartbeats(lab, pair):
    """A genuine heartbeat with one bit changed in the sealed box or in the authenticated header
    -> bad_mac; with the sender renamed (a node's own heartbeat reflected to it) -> unknown_node."""
    key = E.Key.load(pair.key)
    grams = capture_heartbeats(lab, "lb1", LB2, 6)
    own = capture_heartbeats(lab, "lb2", LB1, 2)   # lb1's own, to reflect back to it
    before = snapshot(pair)
    bad_mac = []
    for g in grams[:3]:
        env = E.decode_envelope(g)
        bad_mac.append(flip(g, len(g) - 1))                                     # last tag byte
        bad_mac.append(flip(g, len(g) - 20))                                    # ciphertext
        bad_mac.append(E.encode_envelope(**dict(env, counter=env["counter"] + 1000)))
        bad_mac.append(E.encode_envelope(**dict(env, challenge=env["challenge"] ^ 1)))
        bad_mac.append(E.encode_envelope(**dict(env, echo=env["echo"] ^ 1)))
    reflected = own[:2]
    assert all(key.open(g) is None for g in bad_mac)
    send(lab, bad_mac + reflected)
    expect_rejections(pair, before, "lb1", {"bad_mac": len(bad_mac), "unknown_node": len(reflected)})
    assert_undisturbed(pair, before)


# ----------------------------------------------------------------------------- replay

def test_replay_in_current_epoch(lab, pair):
    """Genuine heartbeats of lb2, replayed: each one once, then all again, then one 50 times -> replay."""
    grams = capture_heartbeats(lab, "lb1", LB2, 5)
    before = snapshot(pair)
    replays = grams + grams + [grams[-1]] * 50
    send(lab, replays)
    expect_rejections(pair, before, "lb1", {"replay": len(replays)})
    assert_undisturbed(pair, before)


def test_replay_after_sender_restart(lab, pair):
    """Heartbeats of lb2 recorded before its vrrpd restarted, replayed after lb1 accepted the new
    epoch -> stale_epoch, each one; lb1 keeps hearing the real lb2."""
    old = capture_heartbeats(lab, "lb1", LB2, 5)
    pair.lab.stop(pair.proc("lb2", "vrrpd"), signal.SIGKILL)
    pair.start_vrrpd("lb2")
    pair.wait_backup("lb2", 3)
    pair.wait_vrrp("lb1", {"peer": {"state": "BACKUP", "last_heard_ms": lambda ms: 0 <= ms < ADVERT_MS * 2}},
                   3, "lb1 hearing the restarted lb2")
    pair.wait_vrrp("lb2", {"peer": {"state": "MASTER"}}, 3, "lb2 hearing lb1")
    before = snapshot(pair)
    replays = old * 4
    send(lab, replays, interval=0.005)
    expect_rejections(pair, before, "lb1", {"stale_epoch": len(replays)})
    assert_undisturbed(pair, before)
    v1 = pair.vrrp("lb1")
    assert 0 <= v1["peer"]["last_heard_ms"] < 3 * ADVERT_MS, v1["peer"]


def test_replayed_step_down_does_not_move_the_backup(lab, pair):
    """The master's own priority-0 heartbeats (recorded while it was in FAULT), replayed to the
    backup once the master is healthy again in the same epoch -> replay; accepted, they would make
    the backup take over after its skew time (a few ms)."""
    lbd1 = pair.proc("lb1", "lbd")
    with Capture(lab, "lb2", "eth0", f"udp and src host {LB1} and dst port 8112") as cap:
        os.kill(lbd1.pid, signal.SIGSTOP)
        try:
            pair.wait_vrrp("lb1", {"state": "FAULT"}, 3, "lb1 in FAULT")
            pair.wait_master("lb2", 2)
            cap.wait_packets(count=10, timeout=3)
        finally:
            os.kill(lbd1.pid, signal.SIGCONT)
    key = E.Key.load(pair.key)
    from scapy.layers.inet import UDP
    step_downs = [g for g in (bytes(p[UDP].payload) for p in cap.packets() if UDP in p)
                  if E.decode_heartbeat(key.open(g))["priority"] == 0]
    assert len(step_downs) >= 3, "no priority-0 heartbeats of lb1 recorded"
    pair.wait_master("lb1", 10)     # preempts back, same vrrpd, same epoch
    pair.wait_backup("lb2", 3)
    assert pair.assert_single_owner() == "lb1"
    before = snapshot(pair)
    replays = step_downs * 3
    send(lab, replays, src=LB1, dst=LB2, interval=0.005)
    expect_rejections(pair, before, "lb2", {"replay": len(replays)})
    assert_undisturbed(pair, before, watch_s=4 * ADVERT_MS / 1000)


# ----------------------------------------------------------------------------- garbage and wrong sources

def truncations(g):
    """Prefixes of a genuine envelope that end inside a field (a tag alone, the sender, the epoch,
    the box), so none of them is a well-formed envelope. (A prefix ending between two fields is
    a well-formed envelope with fields missing: before the sender it names no sender, which the
    daemon counts as unknown_node, not malformed.)"""
    env = E.decode_envelope(g)
    sender = g.index(b"\x22" + bytes([len(env["sender"])]) + env["sender"].encode())
    epoch = sender + 2 + len(env["sender"])
    box = len(g) - len(env["box"])
    assert g[epoch] == 0x29 and g[box - 2] == 0x4a, "unexpected envelope layout"
    return [g[:n] for n in (1, sender + 1, sender + 3, epoch + 3, box - 1, box + 1, len(g) - 17, len(g) - 1)]


def test_garbage_datagrams(lab, pair):
    """Random bytes, truncated genuine heartbeats, an empty datagram and oversized ones (4097 bytes
    to 60000, fragmented) from lb2's address -> malformed, each one."""
    rnd = random.Random(8112)
    g = capture_heartbeats(lab, "lb1", LB2, 2)[0]
    garbage = [bytes([0xff]) + rnd.randbytes(rnd.randrange(1, 1400)) for _ in range(10)]  # wire type 7
    garbage += [rnd.randbytes(rnd.randrange(1, 1400)) for _ in range(10)]
    garbage += truncations(g)
    garbage += [b""]
    garbage += [rnd.randbytes(n) for n in (4097, 9000, 60000)]
    garbage += [g + rnd.randbytes(4097 - len(g))]          # a genuine heartbeat, padded past the limit
    before = snapshot(pair)
    send(lab, garbage, interval=0.002)
    expect_rejections(pair, before, "lb1", {"malformed": len(garbage)})
    assert_undisturbed(pair, before)


def kernel_dropped(pair, node):
    return int(rejected(pair, node).get("kernel_dropped", 0))


def test_wrong_source_address(lab, pair):
    """Genuine heartbeats of lb2 from another address (mallory's own, the router's), and a forged one
    sealed with the right key: the socket filter drops each before it is queued (kernel_dropped),
    so none reaches vrrpd's own checks and no rejected.* counter moves."""
    key = E.Key.load(pair.key)
    grams = capture_heartbeats(lab, "lb1", LB2, 3)
    forged = key.seal(lb2_heartbeat(), "lb2", epoch=random.getrandbits(64) | 1, counter=1, challenge=7)
    before = snapshot(pair)
    dropped = kernel_dropped(pair, "lb1")
    send(lab, grams + [forged], src=MALLORY, spoof=False)
    send(lab, grams, src="192.0.2.1")
    want = dropped + 2 * len(grams) + 1
    wait_for(lambda: kernel_dropped(pair, "lb1") >= want, 3, 0.05,
             f"lb1's kernel_dropped to reach {want}")
    expect_rejections(pair, before, "lb1", {})
    assert_undisturbed(pair, before)


def test_flood_from_other_addresses_is_dropped_by_the_kernel(lab, pair):
    """200 000 datagrams to lb2's heartbeat port, as fast as trafgen sends them, from mallory's own
    address: the backup hears every genuine heartbeat meanwhile (no takeover, no transition), the
    kernel drops the flood before it is queued (kernel_dropped), and vrrpd never sees it."""
    count = 200000
    cfg = os.path.join(lab.tmpdir, "conf", "hb-flood.cfg")
    with open(cfg, "w") as f:
        f.write(f"{{ eth(da={lab.mac('lb2')}, sa={lab.mac('mallory')}), "
                f"ipv4(sa={MALLORY}, da={LB2}, ttl=64), udp(sp=dinc(1000, 60000), dp=8112), "
                f"fill(0x41, 64) }}\n")
    before = snapshot(pair)
    dropped = kernel_dropped(pair, "lb2")
    heard = pair.vrrp("lb2")["adverts_received"]
    r = lab.run("mallory", ["trafgen", "-o", "eth0", "-n", str(count), "-P", "1", "--no-sock-mem", "-Q",
                            "-i", cfg], timeout=60)
    assert r.returncode == 0, r.stderr
    # The count rides along with the next genuine heartbeat, so it is read within an advert interval.
    wait_for(lambda: kernel_dropped(pair, "lb2") - dropped >= count * 0.99, 3, 0.05,
             f"lb2's kernel_dropped to rise by {count}")
    expect_rejections(pair, before, "lb2", {})
    assert pair.vrrp("lb2")["adverts_received"] > heard
    assert_undisturbed(pair, before)


# ----------------------------------------------------------------------------- replay against a restart

# Runs in the bridge namespace, on lb1's switch port: right after every genuine lb2 -> lb1
# heartbeat goes out to lb1, sends lb1 one of the recorded heartbeats of an earlier lb2 epoch.
INJECTOR = r"""
import json, socket, struct, sys, time
port, lb1mac, lb2mac, dur = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", "")), \
    bytes.fromhex(sys.argv[3].replace(":", "")), float(sys.argv[4])
grams = [bytes.fromhex(h) for h in json.loads(sys.stdin.readline())]
src, dst = socket.inet_aton("192.0.2.12"), socket.inet_aton("192.0.2.11")
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xFFFF); s += s >> 16
    return ~s & 0xFFFF
def frame(g, ident):
    udp = struct.pack("!HHHH", 8112, 8112, 8 + len(g), 0) + g
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident, 0, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return lb1mac + lb2mac + b"\x08\x00" + ip + udp
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((port, 3))
s.settimeout(0.05)
print("ready", flush=True)
end, n = time.monotonic() + dur, 0
while time.monotonic() < end:
    try:
        buf, addr = s.recvfrom(4096)
    except socket.timeout:
        continue
    if addr[2] != 4 or len(buf) < 42 or buf[23] != 17 or buf[26:30] != src or buf[30:34] != dst:
        continue
    if buf[42:] not in grams:
        s.send(frame(grams[n % len(grams)], n & 0xFFFF))
        n += 1
print(json.dumps({"injected": n}), flush=True)
"""


def test_replays_cannot_keep_a_restarted_node_out(lab):
    """A recorded heartbeat of an earlier lb2 epoch is rejected (stale_epoch), but it must not
    change lb1's session either: if it did, lb1 would echo the recorded challenge instead of the
    live lb2's and lb2 would never accept lb1's new epoch after a restart. An attacker at the
    switch replays one right after each genuine lb2 heartbeat while lb1's vrrpd restarts
    (preempt = no: lb1 comes back as BACKUP and answers nothing at once); lb2 must hear lb1 again
    within a few advert intervals."""
    pair = Pair(lab, advert=f"{ADVERT_MS}ms", preempt=False, cluster_extra={"lbd_timeout": "300ms"})
    inj = None
    try:
        pair.start()
        old = capture_heartbeats(lab, "lb1", LB2, 5)
        pair.lab.stop(pair.proc("lb2", "vrrpd"), signal.SIGKILL)   # those are now an old epoch
        pair.start_vrrpd("lb2")
        pair.wait_vrrp("lb1", {"peer": {"state": "BACKUP"}}, 3, "lb1 hearing the new lb2")
        duration = 6.0
        inj = lab.popen("br", [sys.executable, "-c", INJECTOR, lab.bridge_port("lb1"), lab.mac("lb1"),
                               lab.mac("lb2"), str(duration)],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        inj.stdin.write(json.dumps([g.hex() for g in old]) + "\n")
        inj.stdin.flush()
        assert inj.stdout.readline().strip() == "ready"
        t0 = time.monotonic()
        pair.lab.stop(pair.proc("lb1", "vrrpd"), signal.SIGKILL)
        # lb2 takes over first; otherwise a quick restart finds no master and lb1, the higher
        # priority, rightly takes the VIPs itself.
        pair.wait_master("lb2", 2)
        pair.start_vrrpd("lb1")
        pair.wait_vrrp("lb1", {"peer": {"state": "MASTER"}}, 3, "lb1 hearing lb2 as master")
        try:
            pair.wait_vrrp("lb2", {"peer": {"state": "BACKUP"}}, 20 * ADVERT_MS / 1000,
                           "lb2 accepting the restarted lb1")
        except AssertionError:
            v2 = pair.vrrp("lb2")
            raise AssertionError(
                f"lb2 has not accepted lb1's new epoch {time.monotonic() - t0:.1f}s after the restart "
                f"while old lb2 heartbeats are replayed to lb1: lb2 sees lb1 as {v2['peer']['state']}, "
                f"rejected {v2['rejected']}, warnings {v2['warnings']}") from None
        assert time.monotonic() - t0 < duration, "the injector stopped before the test ended"
        v1 = pair.vrrp("lb1")
        assert v1["rejected"]["stale_epoch"] >= 1, v1["rejected"]
        assert pair.assert_single_owner() == "lb2"
    finally:
        if inj is not None:
            lab.stop(inj)
        pair.stop()

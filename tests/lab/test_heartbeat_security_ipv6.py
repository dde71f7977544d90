"""Heartbeat security over IPv6: with IPv6 node addresses vrrpd's heartbeats travel by UDP over IPv6
and carry the sender's address in `address6` (proto/heartbeat.proto); whatever arrives that is not a
fresh, authentic heartbeat of the peer from the peer's address is counted and changes nothing.

The IPv6 twin of test_heartbeat_security.py's core cases, on one pair for the whole module (lb1
MASTER, lb2 BACKUP, nodes at 2001:db8::11 and ::12, services on VIP and VIP6): "mallory" sends from
a raw IPv6 socket with lb2's address unless a test says otherwise. Every test leaves the pair as it
found it, and checks that it did."""

import contextlib
import os
import random
import signal
import time

import pytest

from lib import client
from lib import envelope as E
from lib.capture import Capture, nd_probe
from lib.lab import VIP, VIP6, topology, wait_for
from lib.pair import BACKENDS6, NODES, Pair, config_text
from test_heartbeat_security import capture_heartbeats, expect_rejections, kernel_dropped, snapshot

TOPOLOGY = topology(ipv6=True, lan_hosts={"mallory": "192.0.2.30"})
ADVERT_MS = 50
LB1, LB2, MALLORY, ROUTER = "2001:db8::11", "2001:db8::12", "2001:db8::30", "2001:db8::1"


def conf6(key):
    """config_text's pair with IPv6 node addresses and the services on VIP and VIP6 both."""
    text = config_text(key, f"{ADVERT_MS}ms", cluster_extra={"lbd_timeout": "300ms"}, vip6=VIP6,
                       backends6=BACKENDS6)
    for addr6, (addr, _prio) in zip((LB1, LB2), NODES.values()):
        assert f"address = {addr}\n" in text
        text = text.replace(f"address = {addr}\n", f"address = {addr6}\n")
    return text


@pytest.fixture(scope="module")
def pair(lab):
    key = lab.keygen()
    p = Pair(lab, key=key, conf_text=conf6(key))
    try:
        p.start()
        yield p
    finally:
        p.stop()


@pytest.fixture(autouse=True)
def settled(pair):
    """Before each test: lb1 MASTER and lb2 BACKUP, each hearing the other right now."""
    fresh = {"state": lambda st: st in ("MASTER", "BACKUP"), "last_heard_ms": lambda ms: 0 <= ms < 3 * ADVERT_MS}
    pair.wait_vrrp("lb1", {"state": "MASTER", "address": LB1, "peer": dict(fresh, address=LB2)}, 10,
                   "lb1 MASTER over IPv6, hearing lb2")
    pair.wait_vrrp("lb2", {"state": "BACKUP", "address": LB2, "peer": dict(fresh, address=LB1)}, 10,
                   "lb2 BACKUP over IPv6, hearing lb1")








def assert_undisturbed(pair, before, watch_s=0.0):
    """Roles, transitions and lbd ownership as before (watched for watch_s), the peers still hear
    each other, and lb1 alone answers for VIP (ARP) and VIP6 (neighbour discovery)."""
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
    assert_vip6_owner(pair.lab, "lb1")


def assert_vip6_owner(lab, owner):
    """A Neighbour Solicitation for VIP6 from the router is answered once, by owner; any other NA
    for VIP6 meanwhile is owner's too (its second takeover burst, garp_repeat after a takeover)."""
    mac = lab.mac(owner)
    ans = nd_probe(lab, "router", VIP6, timeout=0.2, detail=True)
    solicited = [a for a in ans if a["solicited"]]
    assert len(solicited) == 1 and all((a["eth_src"], a["mac"]) == (mac, mac) for a in ans), \
        f"NS for {VIP6} answered by {ans}, want only {owner} ({mac})"




def send(lab, grams, src=LB2, dst=LB1, spoof=True, interval=0.0):
    n = E.send(lab, "mallory", grams, src, dst, spoof=spoof, interval=interval)
    assert n == len(grams)
    return n


def lb2_heartbeat(state="MASTER", priority=254, address=LB2):
    return E.heartbeat("lb2", priority, state, ADVERT_MS, (VIP, VIP6), address=address)


def new_epoch():
    return random.getrandbits(64) | 1


@contextlib.contextmanager
def lb2_muted(pair):
    """lb2's own heartbeats dropped on their way out (an nftables table of lb2's), so that only the
    test's heartbeats in lb2's name reach lb1; lb2 still hears lb1. On leaving, lb2 is heard again:
    it echoes lb1's current challenge, so lb1 takes its epoch back at once (no stale_epoch)."""
    rules = ("table inet hbmute {\n chain c {\n  type filter hook output priority 0; policy accept;\n"
             "  udp dport 8112 drop\n }\n}\n")
    pair.lab.run("lb2", ["nft", "-f", "-"], input=rules)
    try:
        yield
    finally:
        pair.lab.run("lb2", ["nft", "delete", "table", "inet", "hbmute"], check=False)
    heard = {"state": "BACKUP", "flows": 0, "last_heard_ms": lambda ms: 0 <= ms < 3 * ADVERT_MS}
    pair.wait_vrrp("lb1", {"peer": heard}, 3, "lb1 hearing the genuine lb2 again")


def lb1_challenge(pair):
    """lb1's current challenge, as its heartbeats to lb2 carry it: what a new epoch of lb2 must echo."""
    return E.decode_envelope(capture_heartbeats(pair.lab, "lb2", LB1, 1)[-1])["challenge"]


def fresh_lb2(pair, key, hb):
    """hb sealed as the first message of a new lb2 epoch that echoes lb1's challenge: only the key
    holder can make one, and lb1 accepts it as lb2 (re)starting."""
    return key.seal(hb, "lb2", new_epoch(), 1, new_epoch(), echo=lb1_challenge(pair))


# ----------------------------------------------------------------------------- positive control

def test_codec_matches_daemons(lab, pair):
    """The Python envelope opens lb2's IPv6 heartbeats and rebuilds their Heartbeat byte for byte
    (address6 and vips6 included); a heartbeat it seals with the cluster key as a new lb2 epoch is
    accepted by lb1 like lb2's own (lb1 takes its flow count), and one that has not echoed lb1's
    challenge passes the MAC check (stale_epoch, not bad_mac). Without this, the rejections below
    could be our encoding's fault."""
    key = E.Key.load(pair.key)
    grams = capture_heartbeats(lab, "lb1", LB2, 3)
    env = E.decode_envelope(grams[0])
    assert env["key_id"] == key.id and env["sender"] == "lb2" and env["kind"] == E.KIND_HEARTBEAT, env
    plain = key.open(grams[0])
    hb = E.decode_heartbeat(plain)
    assert hb["node"] == "lb2" and hb["priority"] == 100 and hb["state"] == "BACKUP", hb
    assert hb["address6"] == LB2 and hb["address"] == "0.0.0.0", hb
    assert hb["vips"] == [VIP] and hb["vips6"] == [VIP6], hb
    own = E.heartbeat(hb["node"], hb["priority"], hb["state"], hb["advert_interval_ms"], hb["vips"] + hb["vips6"],
                      bytes.fromhex(hb["config_digest"]), hb["lbd_healthy"], hb["flow_count"], hb["sync_state"],
                      address=hb["address6"])
    assert own == plain, (own.hex(), plain.hex())
    assert E.Key.random().open(grams[0]) is None
    assert E.encode_envelope(**env) == grams[0]

    before = snapshot(pair)
    marker = 6112
    like_lb2 = E.heartbeat("lb2", 100, "BACKUP", ADVERT_MS, (VIP, VIP6), bytes.fromhex(hb["config_digest"]),
                           flows=marker, address=LB2)
    with lb2_muted(pair):
        send(lab, [fresh_lb2(pair, key, like_lb2)])
        pair.wait_vrrp("lb1", {"peer": {"flows": marker, "state": "BACKUP", "digest_match": True}}, 3,
                       "lb1 taking the test's heartbeat as lb2's")
    expect_rejections(pair, before, "lb1", {})

    before = snapshot(pair)
    send(lab, [key.seal(lb2_heartbeat(), "lb2", new_epoch(), 1, new_epoch())])
    expect_rejections(pair, before, "lb1", {"stale_epoch": 1})
    assert_undisturbed(pair, before)


# ----------------------------------------------------------------------------- wrong key

def test_wrong_key(lab, pair):
    """IPv6 heartbeats sealed with another key: its own key id -> unknown_key; the cluster key's id
    -> bad_mac. They claim priority 254 MASTER to lb1 and a step-down (priority 0) of lb1 to lb2,
    for longer than a master-down interval; nobody moves."""
    key, other = E.Key.load(pair.key), E.Key.random()
    assert other.id != key.id
    before = snapshot(pair)
    epoch, ch = new_epoch(), new_epoch()
    n = 10
    to_lb1 = [other.seal(lb2_heartbeat(), "lb2", epoch, c, ch) for c in range(1, n + 1)]
    to_lb1 += [other.seal(lb2_heartbeat(), "lb2", epoch, c, ch, key_id=key.id) for c in range(n + 1, 2 * n + 1)]
    step_down = E.heartbeat("lb1", 0, "MASTER", ADVERT_MS, (VIP, VIP6), address=LB1)
    to_lb2 = [other.seal(step_down, "lb1", epoch, c, ch, key_id=key.id) for c in range(1, n + 1)]
    # One every 20 ms: 10 x 20 ms is longer than either node's master-down interval.
    send(lab, to_lb1, interval=0.02)
    send(lab, to_lb2, src=LB1, dst=LB2, interval=0.02)
    expect_rejections(pair, before, "lb1", {"unknown_key": n, "bad_mac": n})
    expect_rejections(pair, before, "lb2", {"bad_mac": n})
    assert_undisturbed(pair, before, watch_s=4 * ADVERT_MS / 1000)


# ----------------------------------------------------------------------------- replay

def test_replay_in_current_epoch(lab, pair):
    """Genuine IPv6 heartbeats of lb2, replayed: each one once, then all again, then one 30 times -> replay."""
    grams = capture_heartbeats(lab, "lb1", LB2, 5)
    before = snapshot(pair)
    replays = grams + grams + [grams[-1]] * 30
    send(lab, replays)
    expect_rejections(pair, before, "lb1", {"replay": len(replays)})
    assert_undisturbed(pair, before)


def test_replayed_step_down_does_not_move_the_backup(lab, pair):
    """lb1's own priority-0 IPv6 heartbeats (recorded while it was in FAULT), replayed to lb2 once
    lb1 is master again in the same epoch -> replay; accepted, they would make lb2 take over."""
    key = E.Key.load(pair.key)
    lbd1 = pair.proc("lb1", "lbd")
    with Capture(lab, "lb2", "eth0", f"ip6 and udp and src host {LB1} and dst port 8112") as cap:
        os.kill(lbd1.pid, signal.SIGSTOP)
        try:
            pair.wait_vrrp("lb1", {"state": "FAULT"}, 3, "lb1 in FAULT")
            pair.wait_master("lb2", 2)
            cap.wait_packets(count=10, timeout=3)
        finally:
            os.kill(lbd1.pid, signal.SIGCONT)
    from scapy.layers.inet import UDP
    step_downs = [g for g in (bytes(p[UDP].payload) for p in cap.packets() if UDP in p)
                  if E.decode_heartbeat(key.open(g))["priority"] == 0]
    assert len(step_downs) >= 3, "no priority-0 heartbeats of lb1 recorded"
    assert all(E.decode_heartbeat(key.open(g))["address6"] == LB1 for g in step_downs)
    pair.wait_master("lb1", 10)     # preempts back, same vrrpd, same epoch
    pair.wait_backup("lb2", 3)
    assert pair.assert_single_owner() == "lb1"
    before = snapshot(pair)
    replays = step_downs[:10] * 3
    send(lab, replays, src=LB1, dst=LB2, interval=0.005)
    expect_rejections(pair, before, "lb2", {"replay": len(replays)})
    assert_undisturbed(pair, before, watch_s=4 * ADVERT_MS / 1000)


# ----------------------------------------------------------------------------- wrong source



def test_wrong_source_address(lab, pair):
    """Heartbeats of lb2, genuine and sealed with the right key, from IPv6 addresses that are not
    lb2's: mallory's own (an ordinary socket), the router's, and two that differ from lb2's in one
    32-bit word only (the socket filter compares all four). The filter drops each before it is
    queued (kernel_dropped); no rejected.* counter moves. And a heartbeat lb1 would accept as a new
    lb2 epoch, from lb2's address but naming mallory's in address6 -> unknown_node."""
    key = E.Key.load(pair.key)
    grams = capture_heartbeats(lab, "lb1", LB2, 3)
    forged = key.seal(lb2_heartbeat(), "lb2", new_epoch(), 1, 7)
    before = snapshot(pair)
    dropped = kernel_dropped(pair, "lb1")
    spoofed = (ROUTER, "2001:db8:1::12", "2001:db8::1:0:0:12")
    send(lab, grams + [forged], src=MALLORY, spoof=False)
    for src in spoofed:
        send(lab, grams, src=src)
    want = dropped + len(grams) + 1 + len(spoofed) * len(grams)
    wait_for(lambda: kernel_dropped(pair, "lb1") >= want, 3, 0.05, f"lb1's kernel_dropped to reach {want}")
    expect_rejections(pair, before, "lb1", {})
    assert_undisturbed(pair, before)

    before = snapshot(pair)
    with lb2_muted(pair):
        send(lab, [fresh_lb2(pair, key, lb2_heartbeat("BACKUP", 100, address=MALLORY))])
        expect_rejections(pair, before, "lb1", {"unknown_node": 1})
    expect_rejections(pair, before, "lb1", {"unknown_node": 1})
    assert_undisturbed(pair, before)


def test_sync_over_ipv6_node_addresses(lab, pair, backend_servers):
    """Connection-state sync between IPv6 node addresses: the session runs between lb1's and lb2's IPv6
    addresses, and the flows of connections through VIP and through VIP6 reach lb2's table. The IPv4
    service works at all only because lbd, on an IPv6 node, resolves the IPv4 backends by ARP from the
    interface's IPv4 address (it sent no ARP request before: they stayed no-mac)."""
    for n in pair.nodes:
        pair.wait_lbd(n, {"sync": {"state": "established"}}, 10, f"{n}'s sync established over IPv6",
                      interval=0.05)
    r = lab.run("lb1", ["ss", "-Htn", "state", "established", f"( sport = :8113 or dport = :8113 )"])
    assert f"[{LB1}]" in r.stdout and f"[{LB2}]" in r.stdout, r.stdout
    got0 = pair.lbd("lb2")["sync"]["received_flows"]
    for vip in (VIP, VIP6):
        g = client.http_gets(lab, 20, url=client.http_url(vip), parallel=2)
        assert g["ok"] == 20, (g, lab.lbctl("lb1", "status").stdout)
    pair.wait_lbd("lb2", {"sync": {"received_flows": lambda x: x >= got0 + 40}}, 5,
                  "lb2 holding the 40 new flows", interval=0.05)
    assert pair.flow_map("lb2", "web6") and pair.flow_map("lb2", "web"), "lb2 lacks the flows of one family"

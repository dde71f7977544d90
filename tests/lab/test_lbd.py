"""lbd on the wire: one standalone lbd on lb1 forwards the lab's VIP traffic to the backends.

Proves, with captures and lbd's counters: weighted spreading, replies that bypass the balancer,
large transfers through GSO super-frames (both RX ring versions), no RST / ICMP / duplicate from
the balancer's kernel, unserved ports dropped and counted, ICMP echo answered only while active,
backends without a MAC never chosen, fragments kept together, ICMP errors following their flow,
flows kept when a backend joins, a standby lbd that stays silent, gratuitous ARP on activation,
and hostile frames that are counted without harm.
"""

import collections
import ipaddress
import random
import socket
import struct

import pytest

from lib import client, servers
from lib.capture import Capture, arp_probe
from lib.frames import (SERVED, UNSERVED, arrivals, assert_syns_once, is_syn, read_frames, send_frames, syn_burst,
                        wait_frames)
from lib.lab import VIP, topology, wait_for
from lib.lbdrunner import LbdRunner

VIP2 = "192.0.2.101"
NO_HOST = "192.0.2.29"  # a backend address nobody has
TOPOLOGY = topology(vips=(VIP, VIP2))
BACKENDS = ["be1", "be2", "be3"]
WEIGHTS = {"be1": 1, "be2": 2, "be3": 1}
GARP_COUNT = 3


# ----------------------------------------------------------------------------- config

def make_conf(lab, ring=3, extra_backends=()):
    """The lab's config: web (80/tcp), sink (81/tcp) and echo (9000/udp) on the VIP over be1..be3
    with be2 at weight 2, and ghost (80/tcp on VIP2) whose third backend has no host."""
    key = lab.tmpdir + "/conf/pair.key"
    backends = "".join(f"backend = {lab.addr(b)}{' weight=2' if b == 'be2' else ''}\n" for b in BACKENDS)
    backends += "".join(f"backend = {lab.addr(b)}\n" for b in extra_backends)
    text = f"""[cluster]
interface = eth0
key_file = {key}
rx_ring_version = {ring}
garp_count = {GARP_COUNT}
garp_repeat = 0

[node lb1]
address = {lab.addr('lb1')}
priority = 150

[node lb2]
address = {lab.addr('lb2')}
priority = 100
"""
    for name, port, proto in (("web", 80, "tcp"), ("sink", 81, "tcp"), ("echo", 9000, "udp")):
        text += (f"\n[service {name}]\nvip = {VIP}\nport = {port}\nprotocol = {proto}\ncheck = none\n"
                 + backends)
    text += (f"\n[service ghost]\nvip = {VIP2}\nport = 80\nprotocol = tcp\ncheck = none\n"
             f"backend = {lab.addr('be1')}\nbackend = {lab.addr('be3')}\nbackend = {NO_HOST}\n")
    return text


def backend_of(status, service, addr):
    svc = next(s for s in status["services"] if s["name"] == service)
    return next(b for b in svc["backends"] if b["address"] == addr)


def delta(before, after):
    return {k: after[k] - before[k] for k in after if isinstance(after[k], int)}


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def lb1(lab, backend_servers):
    lab.keygen()
    runner = LbdRunner(lab, "lb1", unresolved=(NO_HOST,))
    try:
        yield runner
    finally:
        runner.stop()


@pytest.fixture
def lb(lab, lb1):
    """lb1's lbd running the base config (ring V3)."""
    return lb1.ensure(make_conf(lab))


@pytest.fixture
def lb2(lab, lb):
    runner = LbdRunner(lab, "lb2", standalone=False, unresolved=(NO_HOST,))
    try:
        runner.ensure(make_conf(lab))
        yield runner
    finally:
        runner.stop()
        # lb2 may have taken the VIPs in the router's ARP cache: let it ask again (lb1 answers).
        for vip in (VIP, VIP2):
            lab.run("router", ["ip", "neigh", "del", vip, "dev", "eth0"], check=False)


@pytest.fixture(scope="module")
def macs(lab):
    return {h: lab.mac(h) for h in ["router", "lb1", "lb2"] + lab.backends}


# ----------------------------------------------------------------------------- pcap and traffic helpers

def scapy():
    from scapy import all as s
    return s


# ----------------------------------------------------------------------------- basics

def test_lbd_starts_standalone_and_resolves_backends(lab, lb, macs):
    st = lb.status()
    assert st["node"] == "lb1" and st["active"] and st["mode_reason"] == "standalone", st
    assert sorted(st["vips"]) == sorted([VIP, VIP2]) and st["mac"] == macs["lb1"]
    web = next(s for s in st["services"] if s["name"] == "web")
    got = {b["address"]: (b["mac"], b["weight"], b["state"]) for b in web["backends"]}
    assert got == {lab.addr(b): (macs[b], WEIGHTS[b], "up") for b in BACKENDS}, got
    # The balancer's kernel has no VIP and does not route: nothing in it can answer VIP traffic.
    assert VIP not in lab.run("lb1", ["ip", "-4", "-o", "addr"]).stdout
    assert lab.sysctl("lb1", "net.ipv4.conf.eth0.forwarding") == "0"


@pytest.mark.parametrize("ring", [3, 2], scope="class", ids=lambda v: f"ringv{v}")
class TestForwarding:
    """Basic forwarding and large transfers, once per RX ring version."""

    def test_http_spread_by_weight_and_replies_bypass(self, lab, lb1, macs, ring):
        lb1.ensure(make_conf(lab, ring=ring))
        n = 400
        be_macs = {macs[b] for b in BACKENDS}
        before = lb1.status()
        with Capture(lab, "router", "eth0", f"ip src host {VIP} and tcp src port 80", snaplen=96) as rcap, \
                Capture(lab, "br", "lb1", f"ip host {VIP}", snaplen=96) as lcap:
            r = client.http_gets(lab, n, parallel=8, sources=lab.addrs("client"))
        after = lb1.status()
        assert r["ok"] == n and r["errors"] == 0, r
        assert set(r["counts"]) <= set(BACKENDS), r
        share = {b: r["counts"].get(b, 0) / n for b in BACKENDS}
        # Expected 1/4, 1/2, 1/4; the bounds are > 4 standard deviations wide for 400 requests,
        # and an unweighted spread (1/3 each) falls outside them.
        assert 0.40 <= share["be2"] <= 0.60 and all(0.15 <= share[b] <= 0.35 for b in ("be1", "be3")), share
        # lbd's own account: a new flow per connection, on the backend that answered (a few
        # fewer where the client reused a source port: a SYN on a known tuple renews its flow).
        for b in BACKENDS:
            addr = lab.addr(b)
            d = backend_of(after, "web", addr)["flows"] - backend_of(before, "web", addr)["flows"]
            assert 0 <= r["counts"].get(b, 0) - d <= 4, (b, d, r["counts"])
        # Replies go from the backends straight to the router; none passes the balancer.
        replies = read_frames(rcap.path)
        assert len(replies) >= 2 * n, len(replies)
        assert {f.src for f in replies} == be_macs, collections.Counter(f.src for f in replies)
        at_lb = read_frames(lcap.path)
        assert [f for f in at_lb if f.ip_src == VIP] == []
        requests = [f for f in at_lb if f.ip_dst == VIP]
        assert sum(1 for f in requests if f.dst == macs["lb1"]) >= 3 * n
        assert {f.dst for f in requests if f.src == macs["lb1"]} == be_macs

    def test_large_transfers_intact(self, lab, lb1, ring):
        lb1.ensure(make_conf(lab, ring=ring))
        before = lb1.counters()
        up = client.upload(lab, 8 << 20)
        mid = lb1.counters()
        down = client.download(lab, 4 << 20)
        c = delta(before, lb1.counters())
        assert up["ok"] and up["backend"] in BACKENDS, up
        assert down["ok"] and down["backend"] in BACKENDS, down
        assert c["tx_wrong_format"] == 0 and c["drop_malformed"] == 0, c
        # The upload crossed as GSO super-frames (the checksum-partial path): far fewer frames
        # than 8 MiB / MSS.
        fwd_up = mid["forwarded"] - before["forwarded"]
        assert 0 < fwd_up < (8 << 20) // 1448 // 4, (fwd_up, c)


# ----------------------------------------------------------------------------- the balancer's kernel stays silent

def test_syn_bursts_no_rst_no_icmp_no_duplicates(lab, lb, macs):
    cip = lab.addr("client")
    be_mac = {macs[b]: b for b in BACKENDS}
    syn_to_vip = f"tcp and dst host {VIP} and tcp[tcpflags] & tcp-syn != 0"
    before = lb.counters()
    caps = {b: Capture(lab, "br", b, syn_to_vip, snaplen=96) for b in BACKENDS}
    try:
        for cap in caps.values():
            cap.start()
        with Capture(lab, "br", "lb1", "", snaplen=128) as lcap:
            send_frames(lab, "client", syn_burst(cip, VIP), l3_dst=VIP)
            lb.wait_json({"counters": {"drop_no_service": lambda n: n - before["drop_no_service"] >= len(UNSERVED)}},
                         3, "the unserved SYNs counted")
            wait_frames(lcap, lambda f: f.src == macs["lb1"] and f.dport == 80 and f.sport in SERVED and is_syn(f),
                        len(SERVED), what="forwarded SYNs")
    finally:
        for cap in caps.values():
            cap.stop()
    c = delta(before, lb.counters())
    assert c["drop_no_service"] == len(UNSERVED), c
    frames = read_frames(lcap.path)
    from_lb = [f for f in frames if f.src == macs["lb1"]]
    client_net = ipaddress.ip_network("198.51.100.0/24")
    # Everything lb1 sends is ARP, its own heartbeat/sync traffic to the peer, or a client's frame
    # passed on to a backend: no RST, no ICMP, no reply of its own kernel (source VIP or lb1's address).
    pair_ports = {8112, 8113}
    bad = [f for f in from_lb if f.etype != 0x0806
           and not (f.ip_src == lab.addr("lb1") and f.ip_dst == lab.addr("lb2") and f.proto in (6, 17)
                    and {f.sport, f.dport} & pair_ports and not (f.flags or 0) & 0x04)
           and not (f.etype == 0x0800 and f.dst in be_mac and f.ip_src
                    and ipaddress.ip_address(f.ip_src) in client_net and f.ip_dst == VIP and f.proto == 6)]
    assert bad == [], bad[:10]
    # ...and each SYN leaves once and arrives once, on the backend lb1 sent it to.
    assert_syns_once(from_lb, {b: read_frames(cap.path) for b, cap in caps.items()}, be_mac, cip)


def test_unserved_port_dropped_and_counted(lab, lb):
    before = lb.counters()
    r = client.udp_query(lab, [(lab.addr("client"), 30000 + i) for i in range(5)], port=9001, timeout=0.6, resend=0.2)
    assert r == {}
    c = delta(before, lb.counters())
    assert c["drop_no_service"] >= 5 and c["forwarded"] == 0, c


def test_ping_vip_answered_by_active_node(lab, lb, macs):
    before = lb.counters()
    with Capture(lab, "router", "eth0", f"icmp and host {VIP}") as cap:
        r = client.ping(lab, VIP, count=3, interval=0.05)
    assert r["received"] == 3, r
    replies = [f for f in read_frames(cap.path) if f.icmp_type == 0]
    assert len(replies) == 3 and {f.src for f in replies} == {macs["lb1"]} and replies[0].ip_src == VIP
    c = delta(before, lb.counters())
    assert c["icmp_echo_replies"] == 3 and c["forwarded"] == 0, c


# ----------------------------------------------------------------------------- backend choice

def test_backend_without_mac_is_never_chosen(lab, lb):
    st = lb.status()
    ghost = backend_of(st, "ghost", NO_HOST)
    assert ghost["state"] == "no-mac" and ghost["mac"] == "", ghost
    assert not next(s for s in st["services"] if s["name"] == "ghost")["all_down"]
    before = lb.counters()
    r = client.http_gets(lab, 60, url=f"http://{VIP2}/", parallel=4, sources=lab.addrs("client"))
    assert r["ok"] == 60 and set(r["counts"]) == {"be1", "be3"}, r
    after = lb.status()
    assert after["counters"]["drop_no_backend"] == before["drop_no_backend"]
    assert backend_of(after, "ghost", NO_HOST)["forwarded"] == 0


def test_fragments_of_a_datagram_reach_one_backend(lab, lb):
    before = lb.counters()
    sources = [(a, 45000) for a in lab.addrs("client")]
    # 4000 bytes: three fragments on the 1500-byte path; only a backend that got all of them can
    # reassemble the datagram and echo it back whole.
    r = client.udp_query(lab, sources, size=4000, timeout=3.0)
    assert sorted(r) == sorted(f"{a}:{p}" for a, p in sources), r
    assert set(r.values()) <= set(BACKENDS)
    c = delta(before, lb.counters())
    assert c["fragments"] >= 3 * len(sources) and c["drop_no_backend"] == 0, c


def test_fragments_stay_with_the_service_of_their_port(lab, lb1, macs):
    """Two UDP services on one VIP with different backends: every fragment of a datagram to the second
    service reaches that service's backend (the later fragments carry no port), and a later fragment
    whose first one was never seen is dropped and counted, since either service would be a guess."""
    be4 = servers.start_servers(lab, "be4", http_port=0, sink_port=0, udp_port=9001)
    try:
        text = make_conf(lab) + (f"\n[service echo2]\nvip = {VIP}\nport = 9001\nprotocol = udp\n"
                                 f"check = none\nbackend = {lab.addr('be4')}\n")
        lb = lb1.ensure(text)
        before = lb.counters()
        sources = [(a, 46000) for a in lab.addrs("client")]
        r = client.udp_query(lab, sources, port=9001, size=4000, timeout=3.0)
        assert r == {f"{a}:{p}": "be4" for a, p in sources}, r
        r = client.udp_query(lab, sources, port=9000, size=4000, timeout=3.0)
        assert len(r) == len(sources) and set(r.values()) <= set(BACKENDS), r
        c = delta(before, lb.counters())
        assert c["fragments"] >= 6 * len(sources) and c["frag_unmatched"] == 0, c
        sc = scapy()
        lone = bytes(sc.Ether(src=macs["router"], dst=macs["lb1"])
                     / sc.IP(src=lab.addr("router"), dst=VIP, proto=17, id=4242, frag=185) / (b"z" * 64))
        before = lb.counters()
        send_frames(lab, "router", [lone], repeat=5)
        wait_for(lambda: delta(before, lb.counters())["frag_unmatched"] >= 5, 5,
                 what="lbd counting the 5 later fragments without a first one")
        c = delta(before, lb.counters())
        assert c["frag_unmatched"] == 5 and c["forwarded"] == 0, c
        lb.alive()
    finally:
        be4.stop()


def test_flows_keep_their_backend_when_one_is_added(lab, lb1, lb):
    cip = lab.addr("client")
    old = [(cip, 40000 + i) for i in range(64)]
    be4 = servers.start_servers(lab, "be4")
    try:
        hold = client.start_hold(lab, 12, 3.0)
        hold.wait_event("connected", timeout=5)
        first = client.udp_query(lab, old)
        assert len(first) == len(old), first
        lb1.write(make_conf(lab, extra_backends=["be4"]))
        lb1.ok("reload")
        lb1.wait_ready()
        st = lb1.status()
        assert st["reloads"] >= 1 and backend_of(st, "echo", lab.addr("be4"))["state"] == "up", st
        again = client.udp_query(lab, old)
        assert again == first, {k: (first.get(k), v) for k, v in again.items() if first.get(k) != v}
        new = client.udp_query(lab, [(cip, 41000 + i) for i in range(200)])
        assert len(new) == 200 and collections.Counter(new.values())["be4"] >= 10, collections.Counter(new.values())
        held = hold.result()
        assert held["ok"] == 12 and held["reset"] == 0, held
    finally:
        be4.stop()
    # lbd's table says the same as the answers.
    addr_of = {b: lab.addr(b) for b in lab.backends}
    table = {(f["client"], f["vip"]): f["backend"] for f in lb1.flows()}
    for key, name in first.items():
        assert table.get((key, f"{VIP}:9000")) == addr_of[name], (key, name, table.get((key, f"{VIP}:9000")))
    for d in held["details"]:
        assert table.get((f"{cip}:{d['lport']}", f"{VIP}:80")) == addr_of[d["backend"]], d
    # Control: without the connection table (a fresh lbd, same backends) Maglev alone moves some
    # of those flows, so the check above could fail.
    be4 = servers.start_servers(lab, "be4")
    try:
        lb1.dirty = True
        lb1.ensure(make_conf(lab, extra_backends=["be4"]))
        fresh = client.udp_query(lab, old)
    finally:
        be4.stop()
        lb1.dirty = True
    assert len(fresh) == len(old) and any(fresh[k] != first[k] for k in first), fresh


def test_icmp_frag_needed_follows_its_flow(lab, lb1, macs):
    lb1.dirty = True  # restart: a clean connection table
    lb = lb1.ensure(make_conf(lab))
    cip = lab.addr("client")
    hold = client.start_hold(lab, 1, 2.5)
    hold.wait_event("connected", timeout=5)
    est = [f for f in lb.flows() if f["vip"] == f"{VIP}:80" and f["state"].lower().startswith("est")]
    assert len(est) == 1, est
    cport = int(est[0]["client"].rsplit(":", 1)[1])
    owner = next(b for b in BACKENDS if lab.addr(b) == est[0]["backend"])
    # Drained, the owner gets no new flows: Maglev alone would send this tuple elsewhere now.
    lb.ok("drain", "web", lab.addr(owner))
    lb.dirty = True
    sc = scapy()
    quoted = bytes(sc.IP(src=VIP, dst=cip) / sc.TCP(sport=80, dport=cport, flags="PA", seq=1))[:28]
    err = (sc.Ether(src=macs["router"], dst=macs["lb1"])
           / sc.IP(src=lab.addr("router"), dst=VIP) / sc.ICMP(type=3, code=4, nexthopmtu=1400) / quoted)
    before = lb.counters()
    got = arrivals(lab, BACKENDS, f"icmp and dst host {VIP}",
                   lambda: send_frames(lab, "router", [bytes(err)], repeat=3), lambda f: f.icmp_type == 3, owner, 3,
                   "ICMP errors")
    assert got == {b: 3 if b == owner else 0 for b in BACKENDS}, (owner, got)
    assert delta(before, lb.counters())["icmp_errors_forwarded"] == 3
    held = hold.result()
    assert held["ok"] == 1 and held["by_backend"] == {owner: 1}, held


# ----------------------------------------------------------------------------- standby, activation

def test_standby_is_silent_then_announces_when_active(lab, lb, lb2, macs):
    st = lb2.status()
    assert not st["active"] and st["mode_reason"] == "startup", st
    before = lb2.counters()
    for vip in (VIP, VIP2):
        assert arp_probe(lab, "router", vip) == [macs["lb1"]]
    sc = scapy()
    to_lb2 = sc.Ether(src=macs["router"], dst=macs["lb2"]) / sc.IP(src=lab.addr("router"), dst=VIP)
    frames = [bytes(to_lb2 / sc.TCP(sport=22000 + i, dport=80, flags="S")) for i in range(20)]
    frames += [bytes(to_lb2 / sc.UDP(sport=22000 + i, dport=9000) / b"standby?") for i in range(20)]
    frames += [bytes(to_lb2 / sc.ICMP(type=8, id=7, seq=i) / b"ping") for i in range(5)]
    # Everything lb2 sends but ARP and its own heartbeat/sync traffic with lb1.
    quiet = f"ether src {macs['lb2']} and not arp and not port 8112 and not port 8113"
    with Capture(lab, "br", "lb2", quiet) as cap:
        send_frames(lab, "router", frames)
        lb2.wait_json({"counters": {"drop_standby": lambda n: n - before["drop_standby"] >= len(frames) + 2}}, 3,
                      "lb2 counting the frames it must not forward (and the ARP requests)")
    assert read_frames(cap.path) == [], "a standby lbd sent IP frames"
    c = delta(before, lb2.counters())
    assert c["forwarded"] == 0 and c["arp_replies"] == 0 and c["icmp_echo_replies"] == 0, c

    # Activation: gratuitous ARP for every VIP from lb2's MAC.
    with Capture(lab, "router", "eth0", "arp") as cap:
        lb2.ok("set-mode", "active")
        garps = wait_frames(cap, lambda f: f.arp and f.src == macs["lb2"] and f.arp["spa"] == f.arp["tpa"],
                            2 * GARP_COUNT, what="gratuitous ARPs from lb2")
    assert collections.Counter(f.arp["spa"] for f in garps) == {VIP: GARP_COUNT, VIP2: GARP_COUNT}
    assert all(f.dst == "ff:ff:ff:ff:ff:ff" and f.arp["sha"] == macs["lb2"] for f in garps)
    st = lb2.status()
    assert st["active"] and st["mode_reason"] == "operator" and st["counters"]["garp_sent"] == 2 * GARP_COUNT
    assert sorted(arp_probe(lab, "router", VIP)) == sorted([macs["lb1"], macs["lb2"]])
    lb2.ok("set-mode", "standby")
    assert not lb2.status()["active"]
    assert arp_probe(lab, "router", VIP) == [macs["lb1"]]


# ----------------------------------------------------------------------------- hostile input

def hostile_frames(lab, macs):
    """(malformed, vlan, fragments, random): frames to lb1's MAC that lbd must count, not choke on."""
    sc = scapy()
    rnd = random.Random(5)
    eth = sc.Ether(src=macs["router"], dst=macs["lb1"])
    ip = sc.IP(src=lab.addr("router"), dst=VIP)
    udp = bytes(eth / ip / sc.UDP(sport=5555, dport=9000) / (b"u" * 20))
    arp = bytes(eth / sc.ARP(psrc=lab.addr("router"), pdst=VIP))

    def patch(frame, off, data):
        return frame[:off] + data + frame[off + len(data):]

    def with_len(frame, n):
        return patch(frame, 16, struct.pack("!H", n))

    malformed = [
        bytes(eth)[:12] + b"\x08\x00",                           # Ethernet header only
        udp[:30],                                                # IPv4 header cut short
        patch(udp, 14, b"\x43"),                                 # IHL 3
        patch(udp, 14, b"\x40"),                                 # IHL 0
        patch(udp, 14, b"\x4f"),                                 # IHL 15 > frame
        patch(udp, 14, b"\x65"),                                 # version 6 in an IPv4 frame
        with_len(udp, 1400),                                     # total length beyond the frame
        with_len(udp, 12),                                       # total length below the header
        with_len(bytes(eth / ip / sc.TCP(dport=80)), 30),        # TCP header cut to 10 bytes
        with_len(udp, 24),                                       # UDP header cut to 4 bytes
        with_len(bytes(eth / ip / sc.ICMP(type=3) / (b"\0" * 28)), 24),  # ICMP cut to 4 bytes
        bytes(sc.Ether(src=macs["router"], dst=macs["lb1"], type=0x0806) / (b"\0\x01\x08\x00\x06\x04" + b"\0" * 10)),
        patch(arp, 14, b"\x00\x06"),                            # ARP for Token Ring
        patch(arp, 18, b"\x08"),                                 # ARP with 8-byte MACs
    ]
    vlan = [
        bytes(sc.Ether(src=macs["router"], dst=macs["lb1"]) / sc.Dot1Q(vlan=7) / ip / sc.UDP(dport=9000)),
        bytes(sc.Ether(src=macs["router"], dst=macs["lb1"], type=0x88A8) / sc.Dot1AD(vlan=8) / sc.Dot1Q(vlan=9)
              / ip / sc.TCP(dport=80)),
    ]
    fragments = [
        bytes(eth / sc.IP(src=lab.addr("router"), dst=VIP, proto=17, frag=100) / (b"f" * 64)),
        bytes(eth / sc.IP(src=lab.addr("router"), dst=VIP, proto=47, flags="MF") / (b"g" * 64)),
        bytes(eth / sc.IP(src=lab.addr("router"), dst=VIP, proto=17, flags="MF") / b"abc"),
    ]
    vip = socket.inet_aton(VIP)
    randoms = []
    for i in range(24):
        body = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(20, 300)))
        if i < 12:   # "IPv4" to the VIP: whatever the filter lets through
            body = body[:16] + vip + body[20:]
            randoms.append(bytes(eth)[:12] + b"\x08\x00" + body)
        elif i < 18:
            randoms.append(bytes(eth)[:12] + b"\x08\x06" + body)
        else:
            randoms.append(bytes(eth)[:12] + body)
    return malformed, vlan, fragments, randoms


def test_hostile_frames_counted_not_fatal(lab, lb, macs):
    malformed, vlan, fragments, randoms = hostile_frames(lab, macs)
    frames = malformed + vlan + fragments + randoms
    repeat = -(-20000 // len(frames))
    before = lb.counters()
    res = send_frames(lab, "router", frames, repeat=repeat, rate=10000, timeout=30)
    assert res["elapsed"] <= 10, res
    # IPv4 to the VIP, ARP and VLAN frames pass the kernel filter: all of them reach lbd.
    reach = len(malformed) + len(vlan) + len(fragments) + 18
    lb.wait_json({"counters": {"rx_frames": lambda n: n - before["rx_frames"] >= reach * repeat}}, 5,
                 f"lbd receiving the {reach * repeat} hostile frames that pass its filter")
    lb.alive()
    c = delta(before, lb.counters())
    assert c["ring_drops"] == 0, c
    assert c["drop_malformed"] >= len(malformed) * repeat, c
    assert c["drop_vlan"] >= len(vlan) * repeat, c
    assert c["fragments"] >= len(fragments) * repeat, c
    assert c["tx_wrong_format"] == 0, c
    # Still forwarding, to every backend.
    r = client.http_gets(lab, 40, parallel=4, sources=lab.addrs("client"))
    assert r["ok"] == 40 and set(r["counts"]) == set(BACKENDS), r
    lb.alive()


def test_lbd_stops_cleanly(lab, lb):
    assert lb.stop() == 0
    assert "stopped" in lab.log_tail("lb1-lbd", 5)

"""IPv6 through the pair: the forwarding, failover and sync bars of issue 15, on the lab's IPv6
(topology(ipv6=True)) with IPv4 and IPv6 services side by side in one config.

- Forwarding: an 8 MiB upload through VIP6 arrives intact across GSO super-frames; flows spread by
  weight and the replies bypass the balancer; SYN bursts leave the balancer node exactly once each,
  with no RST, ICMPv6 error or reply of its own kernel; ICMPv6 errors about a flow (Packet Too Big,
  Destination Unreachable, Time Exceeded, Parameter Problem) reach the backend that owns the flow;
  fragments reach one backend, also with a Destination Options header after the fragment header;
  chains lbd cannot follow are dropped and counted; ICMPv6 echo to VIP6 is answered by the active node.
- Operator views: lbctl backends, flows and status show the IPv6 service, backends and flows; a
  backend advertising VIP6 is flagged; lbctl check-backend passes an IPv6 backend set up for DSR and
  fails one without VIP6 on lo.
- Neighbour discovery: only the active node answers a Neighbour Solicitation for VIP6 (Override
  set, its own MAC), never the standby or a backend; after a takeover the new active node sends
  unsolicited Neighbour Advertisements and the router's neighbour entry moves to it.
- Failover at 20 ms adverts: the median outage of a 1 ms IPv6 probe over DSRLB_FAILOVER_RUNS crashes
  (default 7) is within 5 ms of a 1 ms IPv4 probe's in the same runs; a graceful stop of the
  active node loses no IPv6 probe; CONNS established IPv6 connections survive a crash after a
  backend was added: no reset.

Every wait is bounded. Until lbd serves IPv6 every test fails at the pair's start (lbd refuses
`vip = 2001:db8::100`); once it does, the module should take about 90 seconds on 2 cores.
"""

import collections
import contextlib
import ipaddress
import json
import os
import random
import signal
import statistics

import pytest

from lib import client, servers
from lib.capture import Capture, assert_nd_owner, parse_na
from lib.failover import crash, measure_outages
from lib.frames import (SERVED, UNSERVED, arrivals, assert_syns_once, is_syn, read_frames, send_frames, syn_burst,
                        wait_frames)
from lib.lab import VIP, VIP6, topology, wait_for
from lib.pair import BACKENDS, config_text, make_pairs

TOPOLOGY = topology(ipv6=True)
ADVERT = "50ms"
BACKEND_HOSTS = ("be1", "be2", "be3")
WEIGHTS = {"be1": 1, "be2": 2, "be3": 1}
CLIENT_NET6 = ipaddress.ip_network("2001:db8:1::/64")
PAIR_PORTS = {8112, 8113}        # heartbeats and sync between the nodes (IPv4 node addresses)
ND_NA = 136
RUNS = int(os.environ.get("DSRLB_FAILOVER_RUNS", "7"))
CONNS = 200


@pytest.fixture(scope="module", autouse=True)
def servers_up(lab):
    """Servers on every backend, the spare be4 included (it joins the IPv6 services at run time)."""
    return servers.start_all(lab, lab.backends)


@pytest.fixture(scope="module")
def macs(lab):
    return {h: lab.mac(h) for h in ["router", "lb1", "lb2"] + lab.backends}


def backends6(lab, hosts=BACKEND_HOSTS):
    """The IPv6 services' backend lines: be2 at weight 2, like test_lbd's IPv4 services."""
    return tuple(lab.addr6(h) + (f" weight={WEIGHTS[h]}" if WEIGHTS.get(h, 1) != 1 else "") for h in hosts)


def conf6(lab, key, advert=ADVERT, hosts=BACKEND_HOSTS):
    """config_text's IPv4 services (web, sink, probe on VIP) beside the same three on VIP6 (web6,
    sink6, probe6) over the IPv6 addresses of `hosts`; sync on."""
    return config_text(key, advert, True, None, {"lbd_timeout": "300ms", "sync": "yes"}, backends=BACKENDS,
                       vip6=VIP6, backends6=backends6(lab, hosts))


@pytest.fixture
def make_pair(lab):
    """make_pair(advert=, hosts=) -> a started Pair running conf6 (lb1 MASTER); everything is stopped
    and every link restored after the test."""
    def forget_vip6(pair):
        lab.run("router", ["ip", "-6", "neigh", "flush", "to", VIP6], check=False)

    with make_pairs(lab, advert=ADVERT, prepare=forget_vip6) as new:
        def make(advert=ADVERT, hosts=BACKEND_HOSTS):
            key = lab.keygen()
            return new(key=key, conf_text=conf6(lab, key, advert, hosts))

        yield make


def counters(pair, node="lb1"):
    return pair.lbd(node)["counters"]


def delta(before, after):
    return {k: after[k] - before[k] for k in after if isinstance(after[k], int)}


def same_addr(a, b):
    return ipaddress.ip_address(a) == ipaddress.ip_address(b)


def host_of(lab, addr6):
    """The backend whose IPv6 address is addr6 (in any spelling)."""
    return next(h for h in lab.backends if same_addr(lab.addr6(h), addr6))


def split_hostport(s):
    """("addr", port) of "addr:port" as lbctl writes it ("[2001:db8:1::10]:40000" or without the
    brackets): the port follows the last colon."""
    host, _, port = s.rpartition(":")
    return host.strip("[]"), int(port)


def flows(lab, node, service):
    r = lab.lbctl(node, "flows", "--json", "--limit", "1000", check=True)
    return [f for f in json.loads(r.stdout).get("flows") or [] if f["service"] == service]


def router_lladdr(lab, ip):
    """The MAC of the router's neighbour entry for ip on its LAN side, or None."""
    out = lab.run("router", ["ip", "-6", "neigh", "show", ip, "dev", "eth0"]).stdout.split()
    return out[out.index("lladdr") + 1] if "lladdr" in out else None


def na_for(f, target):
    """The Neighbour Advertisement for target in frame f (lib.capture.parse_na's fields), or None."""
    na = parse_na(f.raw) if f.proto == 58 and f.icmp_type == ND_NA else None
    return na if na and same_addr(na["target"], target) else None


def own_reply(f):
    """A frame the balancer's kernel must never send about VIP6: a TCP reset, an ICMPv6 error, or
    anything from VIP6 but neighbour discovery and echo replies (lbd's own)."""
    if f.etype != 0x86DD:
        return False
    return bool((f.proto == 6 and (f.flags or 0) & 0x04) or (f.proto == 58 and (f.icmp_type or 0) < 128)
            or (f.ip_src == VIP6 and not (f.proto == 58 and f.icmp_type in (129, ND_NA))))


def scapy():
    from scapy import all as s
    return s


# ----------------------------------------------------------------------------- forwarding

def test_upload_8mib_through_vip6_intact(lab, make_pair, macs):
    pair = make_pair()
    before = counters(pair)
    with Capture(lab, "br", "lb1", f"ether src {macs['lb1']} and ip6", snaplen=128) as cap:
        up = client.upload(lab, 8 << 20, dst=VIP6)
    c = delta(before, counters(pair))
    assert up["ok"] and up["backend"] in BACKEND_HOSTS, up
    assert c["tx_wrong_format"] == 0 and c["drop_malformed"] == 0, c
    # The upload crossed as GSO super-frames (TSO on the client, through the router's veth): far
    # fewer frames than 8 MiB / the IPv6 MSS (1428 with timestamps).
    assert 0 < c["forwarded"] < (8 << 20) // 1428 // 4, c
    # No frame of lb1's own kernel about VIP6: no RST, no ICMPv6 error, nothing from VIP6.
    own = [f for f in read_frames(cap.path) if own_reply(f)]
    assert own == [], own[:10]


def test_vip6_flows_spread_by_weight_and_replies_bypass(lab, make_pair, macs):
    pair = make_pair()
    n = 400
    be_macs = {macs[b] for b in BACKEND_HOSTS}
    with Capture(lab, "router", "eth0", f"ip6 src host {VIP6} and tcp src port 80", snaplen=96) as rcap:
        r = client.http_gets(lab, n, url=client.http_url(VIP6), parallel=8, sources=lab.addrs6("client"))
    assert r["ok"] == n and r["errors"] == 0, r
    assert set(r["counts"]) <= set(BACKEND_HOSTS), r
    share = {b: r["counts"].get(b, 0) / n for b in BACKEND_HOSTS}
    # Expected 1/4, 1/2, 1/4 (as test_lbd's IPv4 bounds: > 4 standard deviations wide for 400
    # requests; an unweighted spread falls outside).
    assert 0.40 <= share["be2"] <= 0.60 and all(0.15 <= share[b] <= 0.35 for b in ("be1", "be3")), share
    replies = read_frames(rcap.path)
    assert len(replies) >= 2 * n, len(replies)
    assert {f.src for f in replies} == be_macs, collections.Counter(f.src for f in replies)
    web6 = next(s for s in pair.lbd("lb1")["services"] if s["name"] == "web6")
    assert all(b["mac"] == macs[host_of(lab, b["address"])] for b in web6["backends"]), web6


def test_text_views_show_ipv6(lab, make_pair, macs):
    """`lbctl backends`, `flows` and `status` for people (not --json): the IPv6 service as [VIP6]:port,
    its backends by IPv6 address with their MACs, its flows with bracketed addresses."""
    make_pair()
    r = client.http_gets(lab, 12, url=client.http_url(VIP6), parallel=2, sources=lab.addrs6("client"))
    assert r["ok"] == 12, r
    for cmd in ("backends", "status"):
        text = lab.lbctl("lb1", cmd, check=True).stdout
        assert f"service web6  [{VIP6}]:80/tcp" in text, text
        for h in BACKEND_HOSTS:
            row = next((line for line in text.splitlines() if line.split()[:1] == [lab.addr6(h)]), None)
            assert row and row.split()[1] == "up" and macs[h] in row, (cmd, h, text)
    text = lab.lbctl("lb1", "flows", "--limit", "1000", check=True).stdout
    rows = [line.split() for line in text.splitlines()[1:-1]]
    v6 = [r for r in rows if r[1] == f"[{VIP6}]:80"]
    assert v6 and all(r[0].startswith("[2001:db8:1::") and r[3] in {lab.addr6(h) for h in BACKEND_HOSTS}
                      and r[-1] == "web6" for r in v6), text


def test_backend_advertising_vip6_is_flagged(lab, make_pair, macs):
    """A backend that advertises VIP6 (a Neighbour Advertisement for it from the backend's MAC, as one
    with VIP6 on its LAN interface sends) is flagged in status, as one that answers ARP for the IPv4 VIP
    is, and the text view says so; the other backends are not."""
    pair = make_pair()
    sc = scapy()
    na = (sc.Ether(src=macs["be1"], dst="33:33:00:00:00:01") / sc.IPv6(src=lab.addr6("be1"), dst="ff02::1", hlim=255)
          / sc.ICMPv6ND_NA(tgt=VIP6, R=0, S=0, O=1) / sc.ICMPv6NDOptDstLLAddr(lladdr=macs["be1"]))
    send_frames(lab, "be1", [bytes(na)], repeat=2)

    def flagged():
        web6 = next(s for s in pair.lbd("lb1")["services"] if s["name"] == "web6")
        return {host_of(lab, b["address"]): bool(b.get("answers_vip_arp")) for b in web6["backends"]}

    assert wait_for(lambda: (lambda f: f if f["be1"] else None)(flagged()), 5, what="be1 flagged") == \
        {"be1": True, "be2": False, "be3": False}
    text = lab.lbctl("lb1", "backends", check=True).stdout
    row = next(line for line in text.splitlines() if line.split()[:1] == [lab.addr6("be1")])
    assert "answers ARP/NDP for the VIP" in row, text


def test_check_backend_ipv6(lab, make_pair):
    """`lbctl check-backend` from a balancer node against an IPv6 backend: set up right it passes (VIP6 on
    lo, no Neighbour Advertisement for it, the service listening); without VIP6 on lo it fails."""
    make_pair()
    cmd = [lab.bin("lbctl"), "check-backend", lab.addr6("be1"), "--vip", VIP6, "--port", "80", "--interface", "eth0"]
    r = lab.run("lb1", cmd, check=False, timeout=10)
    assert r.returncode == 0 and "ready for DSR" in r.stdout and "FAIL" not in r.stdout, r.stdout + r.stderr
    lab.run("be1", ["ip", "-6", "addr", "del", f"{VIP6}/128", "dev", "lo"])
    try:
        r = lab.run("lb1", cmd, check=False, timeout=10)
    finally:
        lab.run("be1", ["ip", "-6", "addr", "add", f"{VIP6}/128", "dev", "lo", "nodad"])
    assert r.returncode == 1 and "NOT ready for DSR" in r.stdout, r.stdout + r.stderr
    assert f"{VIP6}/128 dev lo" in r.stdout, r.stdout


def test_syn_bursts_no_rst_no_icmp_no_duplicates(lab, make_pair, macs):
    pair = make_pair()
    cip = lab.addr6("client")
    be_mac = {macs[b]: b for b in BACKEND_HOSTS}
    syn_to_vip = f"ip6 dst host {VIP6} and tcp and ip6[53] & 2 != 0"
    before = counters(pair)
    caps = {b: Capture(lab, "br", b, syn_to_vip, snaplen=128) for b in BACKEND_HOSTS}
    try:
        for cap in caps.values():
            cap.start()
        with Capture(lab, "br", "lb1", f"ether src {macs['lb1']}", snaplen=128) as lcap:
            send_frames(lab, "client", syn_burst(cip, VIP6), l3_dst=VIP6)
            pair.wait_lbd("lb1", {"counters": {"drop_no_service": lambda v: v - before["drop_no_service"]
                                               >= len(UNSERVED)}}, 3, "the unserved SYNs counted")
            wait_frames(lcap, lambda f: f.dport == 80 and f.sport in SERVED and is_syn(f), len(SERVED),
                        what="forwarded SYNs")
    finally:
        for cap in caps.values():
            cap.stop()
    from_lb = read_frames(lcap.path)

    def allowed(f):
        if f.etype == 0x0806 or (f.etype == 0x0800 and {f.sport, f.dport} & PAIR_PORTS
                                 and not (f.flags or 0) & 0x04):
            return True  # ARP; heartbeats and sync with the peer
        if f.etype != 0x86DD:
            return False
        # A client's frame passed on to a backend, untouched (the client kernel's RSTs to the backends'
        # SYN-ACKs for the raw SYNs included, as in the IPv4 test).
        if (f.dst in be_mac and f.proto == 6 and f.ip_dst == VIP6 and f.ip_src
                and ipaddress.ip_address(f.ip_src) in CLIENT_NET6):
            return True
        if own_reply(f):
            return False
        return f.proto == 58 and f.icmp_type in (130, 131, 132, 133, 135, 136, 143)  # MLD, neighbour discovery

    bad = [f for f in from_lb if not allowed(f)]
    assert bad == [], bad[:10]
    assert_syns_once(from_lb, {b: read_frames(cap.path) for b, cap in caps.items()}, be_mac, cip)
    assert delta(before, counters(pair))["drop_no_service"] == len(UNSERVED)


# ICMPv6 errors (RFC 4443) a router may send about a backend's reply: scapy's class, its type.
ICMP6_ERRORS = {"packet-too-big": ("ICMPv6PacketTooBig", {"mtu": 1280}, 2),
                "unreachable": ("ICMPv6DestUnreach", {"code": 3}, 1),
                "time-exceeded": ("ICMPv6TimeExceeded", {"code": 0}, 3),
                "parameter-problem": ("ICMPv6ParamProblem", {"code": 0, "ptr": 6}, 4)}


@pytest.mark.parametrize("kind", list(ICMP6_ERRORS))
def test_icmp6_error_follows_its_flow(lab, make_pair, macs, kind):
    """An ICMPv6 error about a backend's reply reaches that flow's backend, chosen by the quoted header,
    even when the backend is drained (a balancer hashing the error itself would send it elsewhere)."""
    cls, fields, icmp_type = ICMP6_ERRORS[kind]
    pair = make_pair()
    hold = client.start_hold(lab, 1, 2.5, dst=VIP6)
    hold.wait_event("connected", timeout=5)
    est = [f for f in flows(lab, "lb1", "web6") if f["state"].lower().startswith("est")]
    assert len(est) == 1, est
    # The flow's own client address: IPv6 source selection on the client need not pick addr6("client").
    cip, cport = split_hostport(est[0]["client"])
    owner = host_of(lab, est[0]["backend"])
    # Drained, the owner gets no new flows: a balancer hashing the error itself would send it elsewhere.
    lab.lbctl("lb1", "drain", "web6", lab.addr6(owner), check=True)
    sc = scapy()
    # The backend's reply VIP6 -> client that did not fit, quoted as RFC 4443 3.2 says.
    quoted = bytes(sc.IPv6(src=VIP6, dst=cip) / sc.TCP(sport=80, dport=cport, flags="PA", seq=1) / (b"d" * 64))
    err = (sc.Ether(src=macs["router"], dst=macs["lb1"])
           / sc.IPv6(src=lab.addr6("router"), dst=VIP6) / getattr(sc, cls)(**fields) / quoted)
    before = counters(pair)
    got = arrivals(lab, BACKEND_HOSTS, f"icmp6 and ip6 dst host {VIP6}",
                   lambda: send_frames(lab, "router", [bytes(err)], repeat=3), lambda f: f.icmp_type == icmp_type,
                   owner, 3, f"ICMPv6 {kind}")
    assert got == {b: 3 if b == owner else 0 for b in BACKEND_HOSTS}, (owner, got)
    assert delta(before, counters(pair))["icmp_errors_forwarded"] == 3
    held = hold.result()
    assert held["ok"] == 1 and held["by_backend"] == {owner: 1}, held


@pytest.mark.parametrize("dstopts", [False, True], ids=["udp", "dstopts-udp"])
def test_fragments_of_a_datagram_reach_one_backend(lab, make_pair, dstopts):
    """4000-byte UDP datagrams to the IPv6 VIP from a client socket, three fragments each on the
    1500-byte path: only a backend that got every fragment reassembles one and echoes it whole. With
    IPV6_DSTOPTS the client's kernel puts a Destination Options header before the fragment header (no
    routing header: RFC 8200's unfragmentable part)."""
    pair = make_pair()
    before = counters(pair)
    sources = [(a, 45000) for a in lab.addrs6("client")]
    r = client.udp_query(lab, sources, dst=VIP6, size=4000, timeout=3.0, dstopts=dstopts)
    assert sorted(r) == sorted(f"[{a}]:{p}" for a, p in sources), r
    assert set(r.values()) <= set(BACKEND_HOSTS), r
    c = delta(before, counters(pair))
    assert c["fragments"] >= 3 * len(sources) and c["frag_unmatched"] == 0 and c["drop_no_service"] == 0, c


def test_fragments_with_options_after_the_fragment_header_reach_one_backend(lab, make_pair, macs):
    """Fragments whose fragmentable part starts with a Destination Options header (where RFC 8200 puts
    it behind a routing header, and where other stacks may): the first fragment names UDP past the
    options, the later ones name only the options header (60). Every piece of a datagram reaches one
    backend, and none is taken for a later fragment without its first."""
    pair = make_pair()
    sc = scapy()
    frames, n = [], 4
    for i, a in enumerate(lab.addrs6("client")[:n]):
        whole = (sc.IPv6(src=a, dst=VIP6) / sc.IPv6ExtHdrDestOpt(nh=17) / sc.UDP(sport=47000 + i, dport=9000)
                 / (b"f" * 3000))
        part = bytes(whole)[40:]                 # the options, UDP and the payload: the fragmentable part
        for off in range(0, len(part), 1232):
            frames.append(bytes(sc.Ether(src=macs["router"], dst=macs["lb1"]) / sc.IPv6(src=a, dst=VIP6, nh=44)
                                / sc.IPv6ExtHdrFragment(nh=60, offset=off // 8, m=int(off + 1232 < len(part)),
                                                        id=0x5000 + i)
                                / sc.Raw(part[off:off + 1232])))
    before = counters(pair)
    caps = {h: Capture(lab, "br", h, f"ip6 dst host {VIP6} and ip6[6] == 44") for h in BACKEND_HOSTS}
    try:
        for cap in caps.values():
            cap.start()
        send_frames(lab, "router", frames)
        got = wait_for(lambda: (lambda g: g if sum(len(v) for v in g.values()) >= len(frames) else None)(
            {h: read_frames(cap.path) for h, cap in caps.items()}), 5, what=f"{len(frames)} fragments at the backends")
    finally:
        for cap in caps.values():
            cap.stop()
    where = collections.defaultdict(set)
    for h, fs in got.items():
        for f in fs:
            where[f.ip_id].add(h)
    assert len(where) == n and all(len(hs) == 1 for hs in where.values()), dict(where)
    c = delta(before, counters(pair))
    assert c["fragments"] == len(frames) and c["frag_unmatched"] == 0, c


def test_unwalkable_extension_chains_dropped_and_counted(lab, make_pair, macs):
    """Frames to VIP6 whose chain lbd cannot follow to the ports: an extension header it does not walk
    (Mobility 135, HIP 139, Shim6 140, experimental 253), routing type 0, a second fragment header, a
    hop-by-hop header not first. Each is dropped and counted in drop_ipv6_ext; none is forwarded."""
    pair = make_pair()
    sc = scapy()
    eth = sc.Ether(src=macs["router"], dst=macs["lb1"])
    udp = sc.UDP(sport=40000, dport=9000) / (b"x" * 16)

    def ip(nh=None):
        kw = {"src": lab.addr6("router"), "dst": VIP6}
        return sc.IPv6(nh=nh, **kw) if nh is not None else sc.IPv6(**kw)

    frames = [eth / ip(nh) / bytes([17, 0, 0, 0, 0, 0, 0, 0]) / udp for nh in (135, 139, 140, 253)]
    frames += [eth / ip() / sc.IPv6ExtHdrRouting(type=0) / udp,
               eth / ip() / sc.IPv6ExtHdrFragment(m=1, id=7) / sc.IPv6ExtHdrFragment(m=1, id=7) / udp,
               eth / ip() / sc.IPv6ExtHdrDestOpt() / sc.IPv6ExtHdrHopByHop() / udp]
    before = counters(pair)
    send_frames(lab, "router", [bytes(f) for f in frames], repeat=2)
    n = 2 * len(frames)
    wait_for(lambda: delta(before, counters(pair))["drop_ipv6_ext"] >= n, 5, what=f"{n} frames counted")
    c = delta(before, counters(pair))
    assert c["drop_ipv6_ext"] == n and c["forwarded"] == 0, c
    pair.lbd("lb1")                         # still answering


def test_echo_to_vip6_answered_by_the_active_node(lab, make_pair, macs):
    make_pair()
    with Capture(lab, "router", "eth0", f"icmp6 and host {VIP6}") as cap:
        r = client.ping(lab, VIP6, count=3, interval=0.05)
    assert r["received"] == 3, r
    replies = [f for f in read_frames(cap.path) if f.icmp_type == 129]
    assert len(replies) == 3 and {f.src for f in replies} == {macs["lb1"]}, replies
    assert all(f.ip_src == VIP6 for f in replies), replies


# ----------------------------------------------------------------------------- neighbour discovery

def test_only_the_active_node_answers_ns_and_a_takeover_moves_the_router(lab, make_pair, macs):
    pair = make_pair()
    # What the standby and the backends send, each on its own bridge port.
    with contextlib.ExitStack() as stack:
        caps = [stack.enter_context(Capture(lab, "br", h, f"icmp6 and ip6[40] == {ND_NA}", snaplen=128))
                for h in ["lb2"] + lab.backends]
        assert_nd_owner(lab, VIP6, "lb1")
    claims = [f for cap in caps for f in read_frames(cap.path) if na_for(f, VIP6)]
    assert claims == [], f"the standby or a backend advertised {VIP6}: {claims}"
    # The router learns VIP6 from traffic, then lb1 dies: lb2 must tell it with unsolicited NAs.
    assert client.ping(lab, VIP6)["received"] == 1
    assert router_lladdr(lab, VIP6) == macs["lb1"], lab.run("router", ["ip", "-6", "neigh"]).stdout
    with Capture(lab, "router", "eth0", "icmp6", snaplen=128) as cap:
        crash(pair, "killcable")
        pair.wait_master("lb2", 2)
        wait_frames(cap, lambda f: f.src == macs["lb2"] and na_for(f, VIP6), 1, timeout=2,
                    what="unsolicited NAs for VIP6 from lb2")
        wait_for(lambda: router_lladdr(lab, VIP6) == macs["lb2"], 2, what="the router's entry for VIP6 on lb2",
                 ignore=())
    nas = [na_for(f, VIP6) for f in read_frames(cap.path) if f.src == macs["lb2"]]
    for na in filter(None, nas):
        # Unsolicited (RFC 4861 7.2.6): Override set, Solicited clear, to all nodes, lb2's MAC.
        assert na["override"] and not na["solicited"] and not na["router"] and na["hlim"] == 255, na
        assert na["dst"] == "ff02::1" and na["eth_dst"] == "33:33:00:00:00:01" and na["mac"] == macs["lb2"], na
    assert pair.assert_single_owner() == "lb2"
    assert_nd_owner(lab, VIP6, "lb2")


# ----------------------------------------------------------------------------- failover

def test_crash_outage_ipv6_within_5ms_of_ipv4(lab, make_pair):
    """Median outage of a 1 ms IPv6 and a 1 ms IPv4 probe, both running through every crash (kill -9
    and cable of the master at 20 ms adverts, the phases a stratified sample as in test_failover)."""
    advert_ms = 20
    pair = make_pair(advert=f"{advert_ms}ms")
    n = max(1, RUNS)
    phases = [(k + random.random()) * advert_ms / n for k in range(n)]
    random.shuffle(phases)
    runs = []
    for want in phases:
        (ms4, ms6), phase, md = measure_outages(lab, pair, advert_ms, want, dsts=(VIP, VIP6))
        runs.append((ms4, ms6, phase))
    med4 = statistics.median(r[0] for r in runs)
    med6 = statistics.median(r[1] for r in runs)
    print(f"\nadvert {advert_ms} ms (master-down {md} ms): median outage IPv4 {med4} ms, IPv6 {med6} ms; "
          f"(IPv4, IPv6, phase) {runs}")
    assert abs(med6 - med4) <= 5, f"IPv6 median outage {med6} ms, IPv4 {med4} ms: {runs}"
    assert pair.assert_single_owner() == "lb1"
    assert_nd_owner(lab, VIP6, "lb1")


def test_graceful_stop_loses_no_ipv6_probe(lab, make_pair):
    pair = make_pair(advert="20ms")
    job = client.start_udp_probe(lab, 3.0, dst=VIP6)
    job.wait_event("steady", timeout=3)
    pair.kill("lb1", "vrrpd", signal.SIGTERM)
    assert pair.proc("lb1", "vrrpd").wait(5) == 0
    pair.wait_master("lb2", 1)
    pair.kill("lb1", "lbd", signal.SIGTERM)
    assert pair.proc("lb1", "lbd").wait(5) == 0
    r = job.result()
    assert r["lost"] == 0, f"graceful stop lost IPv6 probes: {r['outages'][:5]}"
    assert len(r["by_backend"]) == 1 and r["duplicates"] == 0, r
    assert pair.assert_single_owner() == "lb2"
    assert_nd_owner(lab, VIP6, "lb2")


def test_ipv6_connections_survive_crash_after_backend_added(lab, make_pair):
    pair = make_pair()
    for n in ("lb1", "lb2"):
        pair.wait_lbd(n, {"sync": {"state": "established", "bulk_state": "done"}}, 5, f"{n}: sync established")
    job = client.start_hold(lab, CONNS, 7.0, dst=VIP6, stall=2.5)
    job.wait_event("connected", timeout=15)
    be4 = lab.addr6("be4")

    def be4_ready(services):
        web6 = next(s for s in services if s["name"] == "web6")
        return all(b["mac"] for b in web6["backends"]) and any(same_addr(b["address"], be4) for b in web6["backends"])

    pair.reload(conf6(lab, pair.key, hosts=BACKEND_HOSTS + ("be4",)), services_ok=be4_ready)
    m1 = pair.flow_map("lb1", "web6")
    wait_for(lambda: len(pair.flow_map("lb2", "web6")) >= len(m1), 2, 0.05, "lb2 holding every web6 flow of lb1")
    m2 = pair.flow_map("lb2", "web6")
    crash(pair, "killcable")
    pair.wait_master("lb2", 2)
    r = job.result()
    summary = {k: r[k] for k in ("conns", "ok", "reset", "states", "by_backend")}
    print(f"\nIPv6 connections across the crash: {summary}")
    assert len(m1) >= CONNS, f"lb1 holds only {len(m1)} web6 flows"
    assert m2 == m1, f"the standby's table differs: {len(set(m1.items()) - set(m2.items()))} of {len(m1)} entries"
    assert len(r["by_backend"]) == 3, f"connections not spread over be1-be3: {r['by_backend']}"
    assert r["reset"] == 0 and r["ok"] == CONNS, summary
    assert pair.assert_single_owner() == "lb2"

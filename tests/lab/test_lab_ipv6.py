"""The lab's IPv6, before lbd serves it: addressing and routing on the same segments, the backends'
VIP6 on lo (scripts/dsr-backend) that they never claim with a Neighbour Advertisement, and DSR through
VIP6 with the router's neighbour entry pointed at one backend by hand: the client's UDP probe and a TCP
upload reach be1 and are answered by it directly, from VIP6."""

import collections

import pytest

from lib import client
from lib.capture import Capture, assert_nd_owner, nd_probe, unsolicited_na_frame
from lib.frames import read_frames, send_frames, wait_frames
from lib.lab import VIP, VIP6, Lab, LabError, dsr_backend_etc, topology, v6_of, wait_for

TOPOLOGY = topology(ipv6=True)


@pytest.fixture(scope="module", autouse=True)
def servers_up(backend_servers):
    return backend_servers


def test_addresses_are_the_ipv4_twins(lab):
    assert lab.addr6("lb1") == "2001:db8::11" and lab.addr6("be1") == "2001:db8::21"
    assert lab.addr6("client") == "2001:db8:1::10" and lab.addrs6("client")[-1] == "2001:db8:1::19"
    assert lab.addr6("router") == "2001:db8::1" and lab.vip6 == VIP6
    assert v6_of("198.51.100.1/24") == "2001:db8:1::1/64"
    with pytest.raises(LabError):
        v6_of("203.0.113.5")
    with pytest.raises(LabError, match="outside the documentation ranges"):
        Lab(topology(ipv6=True, vips6=("2001:db9::1",)))
    for host in lab.hosts:
        out = lab.run(host, ["ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global"]).stdout
        for a in lab.hosts[host]["addrs6"]:
            assert a in out and "tentative" not in out, (host, out)
    wan = lab.run("router", ["ip", "-6", "-o", "addr", "show", "dev", "eth1", "scope", "global"]).stdout
    assert "2001:db8:1::1/64" in wan, wan
    assert "via 2001:db8:1::1" in lab.run("client", ["ip", "-6", "route", "get", "2001:db8::21"]).stdout
    assert "via 2001:db8::1" in lab.run("be1", ["ip", "-6", "route", "get", "2001:db8:1::10"]).stdout


def test_ipv6_sysctls(lab):
    for host in lab.hosts:
        want = "1" if host == "router" else "0"
        assert lab.sysctl(host, "net.ipv6.conf.all.forwarding") == want, host
        assert lab.sysctl(host, "net.ipv6.conf.eth0.accept_ra") == "0", host
        assert lab.sysctl(host, "net.ipv6.conf.eth0.disable_ipv6") == "0", host
    # The bridge only switches frames: no IPv6 of its own (no MLD or NDP from it in captures).
    assert lab.sysctl("br", "net.ipv6.conf.all.disable_ipv6") == "1"


def test_client_pings_backends_over_ipv6_through_router(lab):
    got = {be: client.ping(lab, lab.addr6(be))["received"] for be in lab.backends}
    assert got == {be: 1 for be in lab.backends}, got
    # ...and the check can fail: nobody has 2001:db8::99.
    assert client.ping(lab, "2001:db8::99", timeout=0.3)["received"] == 0


def test_backends_hold_vip6_on_lo_and_never_claim_it(lab):
    for be in lab.active_backends:
        lo = lab.run(be, ["ip", "-6", "-o", "addr", "show", "dev", "lo"]).stdout
        assert f"{VIP6}/128" in lo, (be, lo)
        r = lab.dsr_backend(be, "check", lab.vip, VIP6, check=False)
        assert r.returncode == 0, r.stdout
    # Nobody answers a Neighbour Solicitation for VIP6 (no lbd yet), every backend answers for its own.
    assert nd_probe(lab, "router", VIP6, timeout=0.3) == []
    for be in lab.backends:
        assert_nd_owner(lab, lab.addr6(be), be, probes=1)


def test_dsr_backend_ipv6_vip(lab):
    be, vip = "be4", "2001:db8::101"
    before = {k: lab.sysctl(be, f"net.ipv4.conf.all.{k}") for k in ("arp_ignore", "arp_announce")}
    try:
        out = lab.dsr_backend(be, "setup", vip).stdout
        assert "no ARP setting" in out, out
        assert lab.dsr_backend(be, "check", vip, check=False).returncode == 0
        # A wider mask is a problem, and setup puts it right.
        lab.run(be, ["ip", "addr", "del", f"{vip}/128", "dev", "lo"])
        lab.run(be, ["ip", "addr", "add", f"{vip}/64", "dev", "lo", "nodad"])
        r = lab.dsr_backend(be, "check", "2001:DB8:0::101", check=False)
        assert r.returncode == 1 and "/64" in r.stdout, r.stdout
        lab.dsr_backend(be, "setup", vip)
        assert lab.dsr_backend(be, "check", vip, check=False).returncode == 0
        assert lab.dsr_backend(be, "check", "2001:db8::102", check=False).returncode == 1
        assert lab.dsr_backend(be, "setup", "2001:db8::zz", check=False).returncode == 2
    finally:
        lab.dsr_backend(be, "remove", vip)
    assert vip not in lab.run(be, ["ip", "-6", "-o", "addr", "show", "dev", "lo"]).stdout
    # IPv6 only: the IPv4 ARP settings were never touched.
    assert {k: lab.sysctl(be, f"net.ipv4.conf.all.{k}") for k in before} == before


@pytest.mark.parametrize("flavour", ["ifupdown", "networkd"])
def test_dsr_backend_persists_ipv6_vips(lab, tmp_path, flavour):
    env, snippet = dsr_backend_etc(tmp_path, flavour)
    sysctl_file = tmp_path / "etc" / "sysctl.d" / "90-dsrlb.conf"
    be, vip6 = "be4", "2001:db8::101"
    try:
        lab.dsr_backend(be, "setup", VIP, vip6, persist=True, env=env)
        text = snippet.read_text()
        assert f"{VIP}/32" in text and f"{vip6}/128" in text, text
        assert sysctl_file.exists()
        # Only the IPv6 VIP left: no ARP settings to persist, the address stays.
        lab.dsr_backend(be, "remove", VIP, persist=True, env=env)
        text = snippet.read_text()
        assert f"{vip6}/128" in text and VIP not in text and not sysctl_file.exists(), text
        assert lab.sysctl(be, "net.ipv4.conf.all.arp_ignore") == "0"
        lab.dsr_backend(be, "remove", vip6, persist=True, env=env)
        assert not snippet.exists()
    finally:
        lab.dsr_backend(be, "remove", vip6)
        lab.dsr_backend(be, "setup", VIP, VIP6)
    assert lab.dsr_backend(be, "check", VIP, VIP6, check=False).returncode == 0


@pytest.fixture
def vip6_at_be1(lab):
    """The router's neighbour entry for VIP6 pointed at be1 by hand (what lbd's NA will do)."""
    lab.run("router", ["ip", "-6", "neigh", "replace", VIP6, "lladdr", lab.mac("be1"), "nud", "permanent",
                       "dev", "eth0"])
    try:
        yield lab.mac("be1")
    finally:
        lab.run("router", ["ip", "-6", "neigh", "del", VIP6, "dev", "eth0"], check=False)


def test_dsr_through_vip6_without_lbd(lab, vip6_at_be1):
    be1 = vip6_at_be1
    with Capture(lab, "router", "eth0", f"ip6 host {VIP6}", snaplen=128) as cap:
        probe = client.udp_probe(lab, 0.3, dst=VIP6)
        up = client.upload(lab, 1 << 20, dst=VIP6)
    assert probe["lost"] == 0 and probe["by_backend"] == {"be1": probe["sent"]}, probe
    assert up["ok"] and up["backend"] == "be1", up
    frames = read_frames(cap.path)
    to_vip = [f for f in frames if f.ip_dst == VIP6]
    from_vip = [f for f in frames if f.ip_src == VIP6]
    assert len(to_vip) >= probe["sent"] and len(from_vip) >= probe["sent"], (len(to_vip), len(from_vip))
    # Every frame for VIP6 went to be1's MAC, every answer came from be1, from VIP6 itself (DSR),
    # UDP and TCP both.
    assert {f.dst for f in to_vip} == {be1} and {f.src for f in from_vip} == {be1}
    assert collections.Counter(f.proto for f in from_vip).keys() == {6, 17}
    assert all(f.ip_dst in lab.addrs6("client") for f in from_vip)


def test_raw_ipv6_packets_from_the_client_reach_vip6(lab, vip6_at_be1):
    """send_frames' IPv6 mode (whole packets, header included) as the SYN-burst tests use it."""
    from scapy import all as sc
    cip = lab.addr6("client")
    syns = [bytes(sc.IPv6(src=cip, dst=VIP6) / sc.TCP(sport=23000 + i, dport=80, flags="S")) for i in range(5)]
    with Capture(lab, "br", "be1", f"ip6 dst host {VIP6} and tcp", snaplen=128) as cap:
        send_frames(lab, "client", syns, l3_dst=VIP6)
        got = wait_frames(cap, lambda f: f.ip_src == cip and f.flags == 0x02, 5, what="the raw SYNs at be1")
    assert sorted(f.sport for f in got) == [23000 + i for i in range(5)], got


def test_unsolicited_na_moves_the_routers_entry(lab):
    """What a takeover relies on: the router's existing (stale) entry for VIP6 follows an
    unsolicited NA with the Override flag, as lbd sends it on becoming active."""
    lab.run("router", ["ip", "-6", "neigh", "replace", VIP6, "lladdr", lab.mac("be1"), "nud", "stale", "dev", "eth0"])
    try:
        send_frames(lab, "be2", [unsolicited_na_frame(lab.mac("be2"), VIP6)])
        wait_for(lambda: f"lladdr {lab.mac('be2')}" in lab.run("router", ["ip", "-6", "neigh", "show", VIP6]).stdout,
                 2, what="the router's entry for VIP6 on be2's MAC", ignore=())
    finally:
        lab.run("router", ["ip", "-6", "neigh", "del", VIP6, "dev", "eth0"], check=False)

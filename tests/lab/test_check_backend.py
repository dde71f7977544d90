"""`lbctl check-backend` from a balancer node against backends set up right and wrong: each README
pitfall (ARP for the VIP answered, VIP not on lo, nothing listening, no host at all) must fail with
its own explanation, a correct backend must pass, and every run ends within its time bound. Each
test breaks its own backend and puts it back, so the tests do not depend on their order."""

import contextlib
import time

import pytest

from lib.lab import VIP
from lib.pair import config_text

NO_HOST = "192.0.2.99"
RUN_BOUND = 5.0      # seconds; the command's own waits add up to about 1.5 s per service


def check_backend(lab, address, *args, node="lb1", flags=True):
    """build/lbctl check-backend in node's namespace; (CompletedProcess, seconds it took)."""
    cmd = [lab.bin("lbctl"), "check-backend", address]
    if flags:
        cmd += ["--vip", VIP, "--port", "80", "--interface", "eth0"]
    t0 = time.monotonic()
    r = lab.run(node, cmd + list(args), check=False, timeout=2 * RUN_BOUND)
    took = time.monotonic() - t0
    assert took < RUN_BOUND, f"check-backend took {took:.1f}s:\n{r.stdout}{r.stderr}"
    return r, took


def lines(r, level):
    return [line for line in r.stdout.splitlines() if line.split(" ", 1)[0] == level]


def assert_fails(r, *words):
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    fails = "\n".join(lines(r, "FAIL"))
    for w in words:
        assert w in fails or w in out, f"{w!r} not in the output:\n{out}"
    assert "NOT ready for DSR" in r.stdout, out


@contextlib.contextmanager
def arp_ignore_off(lab, host):
    """The backend answers ARP for every local address again, the VIP on lo included."""
    keys = [f"net.ipv4.conf.{c}.arp_ignore" for c in ("all", "eth0")]
    saved = {k: lab.sysctl(host, k) for k in keys}
    try:
        for k in keys:
            lab.sysctl(host, k, 0)
        yield
    finally:
        for k, v in saved.items():
            lab.sysctl(host, k, v)


@contextlib.contextmanager
def vip_off_lo(lab, host):
    lab.run(host, ["ip", "addr", "del", f"{VIP}/32", "dev", "lo"])
    try:
        yield
    finally:
        lab.run(host, ["ip", "addr", "add", f"{VIP}/32", "dev", "lo"])


@pytest.fixture(scope="module")
def conf(lab):
    """The pair config: web 80/tcp, sink 81/tcp, probe 9000/udp over be1..be3, check = none."""
    return lab.write_config(config_text(lab.keygen()))


# ----------------------------------------------------------------------------- a correct backend

def test_ready_backend_passes(lab, backend_servers):
    r, _ = check_backend(lab, lab.addr("be1"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(lines(r, "ok")) == 4 and not lines(r, "FAIL"), r.stdout
    assert lab.mac("be1") in r.stdout and "ready for DSR" in r.stdout


def test_services_come_from_the_config(lab, backend_servers, conf):
    r, _ = check_backend(lab, lab.addr("be1"), "-c", conf, flags=False)
    assert r.returncode == 0, r.stdout + r.stderr
    ok = "\n".join(lines(r, "ok"))
    for svc in (f"web {VIP}:80/tcp", f"sink {VIP}:81/tcp", f"probe {VIP}:9000/udp"):
        assert svc in ok, r.stdout
    # A flag overrides the config: nothing listens on 8080, over TCP (RST) or UDP (port unreachable).
    r, _ = check_backend(lab, lab.addr("be1"), "-c", conf, "--port", "8080", flags=False)
    assert_fails(r, "nothing listens on port 8080", "ICMP port unreachable")


@pytest.mark.parametrize("node", ["lb1", "lb2"])
def test_with_an_active_balancer(lab, backend_servers, conf, node):
    """lbd owns the VIP on lb2: its ARP answer is no problem, and the check also runs on lb2 itself."""
    p = lab.start_lbd("lb2", conf, ["--standalone"])
    try:
        lab.wait_json("lb2", {"lbd": {"active": True}}, 5, "lbd active on lb2")
        r, _ = check_backend(lab, lab.addr("be1"), node=node)
        assert r.returncode == 0, r.stdout + r.stderr
        if node == "lb1":
            assert f"{lab.mac('lb2')} does: the active balancer" in r.stdout, r.stdout
    finally:
        lab.stop(p)


# ----------------------------------------------------------------------------- the README's pitfalls

def test_backend_answering_arp_for_the_vip_fails(lab, backend_servers):
    with arp_ignore_off(lab, "be2"):
        r, _ = check_backend(lab, lab.addr("be2"))
    assert_fails(r, "answers ARP for the VIP", "arp_ignore=1", "arp_announce=2", "/32")
    assert len(lines(r, "FAIL")) == 1, r.stdout  # the VIP and the service are there
    # Put back, the same backend passes.
    r, _ = check_backend(lab, lab.addr("be2"))
    assert r.returncode == 0, r.stdout + r.stderr


def test_backend_without_the_vip_fails(lab, backend_servers):
    with vip_off_lo(lab, "be3"):
        r, _ = check_backend(lab, lab.addr("be3"))
    assert_fails(r, "does not accept packets for the VIP", "is the VIP on lo (/32)?",
                 f"ip addr add {VIP}/32 dev lo")
    assert len(lines(r, "FAIL")) == 1, r.stdout  # its own address still answers


def test_backend_with_nothing_listening_fails(lab, backend_servers):
    spare = lab.spares[0]                         # VIP on lo, no servers
    r, _ = check_backend(lab, lab.addr(spare))
    assert_fails(r, "nothing listens on port 80", "refuses connections", "0.0.0.0:80")


def test_address_without_a_host_is_unreachable(lab):
    r, took = check_backend(lab, NO_HOST)
    assert_fails(r, "unreachable", "no answer to ARP")
    assert lines(r, "skip"), r.stdout
    assert took < 2.5, took                        # one ARP wait, nothing else


# ----------------------------------------------------------------------------- cannot run, usage

def test_without_cap_net_raw_cannot_run(lab):
    r = lab.run("lb1", ["setpriv", "--bounding-set", "-net_raw", "--inh-caps", "-all", lab.bin("lbctl"),
                        "check-backend", lab.addr("be1"), "--vip", VIP, "--port", "80", "--interface", "eth0"],
                check=False, timeout=RUN_BOUND)
    assert r.returncode == 3 and "CAP_NET_RAW" in r.stderr, r.stdout + r.stderr


def test_no_such_interface_cannot_run(lab):
    r, _ = check_backend(lab, lab.addr("be1"), "--interface", "eth9")
    assert r.returncode == 3 and "eth9" in r.stderr, r.stdout + r.stderr


@pytest.mark.parametrize("args", [
    [],                                               # no VIP, no config
    ["--vip", VIP],                                   # no port
    ["--vip", "not-an-address", "--port", "80", "--interface", "eth0"],
    ["--vip", VIP, "--port", "0", "--interface", "eth0"],
    ["--vip", VIP, "--port", "80", "--interface", "eth0", "extra"],
])
def test_usage_errors(lab, args):
    r = lab.run("lb1", [lab.bin("lbctl"), "check-backend", lab.addr("be1")] + args, check=False, timeout=RUN_BOUND)
    assert r.returncode == 2, r.stdout + r.stderr


def test_backend_not_in_the_config(lab, conf):
    r, _ = check_backend(lab, lab.addr("be4"), "-c", conf, flags=False)
    assert r.returncode == 2 and "not a backend of any service" in r.stderr, r.stdout + r.stderr

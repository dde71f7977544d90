"""Fixtures of the network-namespace suites, in the style of FRR topotests.

`lab` (module scope) builds the topology of the test module's TOPOLOGY (a lib.lab.topology()
dict) or the default one, and always tears it down. `backend_servers` starts the servers on the
active backends. When a test fails, the tails of the lab's logs (daemons, servers, clients) are
attached to its report and the lab's tmp dir is kept.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib import servers as lab_servers  # noqa: E402
from lib.lab import Lab, reap_stale  # noqa: E402


def pytest_sessionstart(session):
    if os.geteuid() == 0:
        reap_stale()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    lab = getattr(item, "funcargs", {}).get("lab")
    if isinstance(lab, Lab):
        lab.failed = True
        tails = lab.log_tails()
        if tails:
            rep.sections.append((f"lab logs ({lab.tmpdir})", tails))


@pytest.fixture(scope="session")
def need_root():
    if os.geteuid() != 0:
        pytest.skip("the network-namespace lab needs root (namespaces, veth, tcpdump)")


@pytest.fixture(scope="module")
def lab(request, need_root):
    lab = Lab(getattr(request.module, "TOPOLOGY", None))
    lab.build()
    try:
        yield lab
    finally:
        lab.destroy()


@pytest.fixture(scope="module")
def backend_servers(lab):
    """{backend: BackendServers} on every active (non-spare) backend, all listening."""
    return lab_servers.start_all(lab)


@pytest.fixture(scope="module")
def ecmp(request, lab):
    """The ECMP routing lab on the module's lab (TOPOLOGY = lib.ecmp.topology(nodes=N)): BIRD on
    the router and on the module's ECMP_NODES (default: lb1-lb3), BGP Established and BFD Up to
    each; ECMP_TIMERS overrides lib.ecmp.TIMERS. Stopped at the end of the module."""
    from lib import bird, ecmp as lab_ecmp
    if not bird.available():
        pytest.skip("BIRD 2 is not installed (scripts/deps.sh installs bird2)")
    with lab_ecmp.ecmp_lab(lab, getattr(request.module, "ECMP_NODES", None),
                           getattr(request.module, "ECMP_TIMERS", None)) as e:
        yield e

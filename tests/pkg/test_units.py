"""The systemd units (examples/systemd) let each daemon open every kind of socket its code opens:
RestrictAddressFamilies= makes any other socket() fail with EAFNOSUPPORT under systemd, which a lab
run (no systemd) would never show. The families are read from the daemons' sources: a socket() of a
named family, a socket() whose family follows a configured address (IPv4 or IPv6: node addresses,
backends, metrics_listen), netlink for getifaddrs() and libmnl."""

import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNITS = os.path.join(REPO, "examples", "systemd")

# The source folders linked into each daemon.
DAEMONS = {"lbd": ("lbd", "common"), "vrrpd": ("vrrpd", "common"), "dsrlb-exporter": ("exporter", "common")}
# The exporter links common/config.c but never asks which node it runs on (cfg_find_node, the one caller
# of getifaddrs): no netlink for it. test_exporter_asks_no_node keeps that true.
UNUSED = {"dsrlb-exporter": {"AF_NETLINK"}}

SOCKET_CALL = re.compile(r"\bsocket\(\s*([^,]+),")
NETLINK_USE = re.compile(r"\b(getifaddrs|mnl_socket_open)\(")


def families_in_sources(dirs):
    """{family: first "file:line" that needs it}."""
    out = {}
    for d in dirs:
        for name in sorted(os.listdir(os.path.join(REPO, d))):
            if not name.endswith(".c"):
                continue
            with open(os.path.join(REPO, d, name)) as f:
                for n, line in enumerate(f, 1):
                    where = f"{d}/{name}:{n}"
                    for m in SOCKET_CALL.finditer(line):
                        arg = m.group(1).strip()
                        named = re.fullmatch(r"AF_[A-Z0-9]+", arg)
                        # Anything else follows an address of the config: either family.
                        for fam in [arg] if named else ["AF_INET", "AF_INET6"]:
                            out.setdefault(fam, where)
                    if NETLINK_USE.search(line):
                        out.setdefault("AF_NETLINK", where)
    return out


def unit_families(unit):
    with open(os.path.join(UNITS, f"{unit}.service")) as f:
        lines = [line.split("=", 1)[1].split() for line in f if line.startswith("RestrictAddressFamilies=")]
    assert len(lines) == 1, f"{unit}.service: one RestrictAddressFamilies= line expected, found {len(lines)}"
    return set(lines[0])


@pytest.mark.parametrize("daemon", sorted(DAEMONS))
def test_units_allow_every_socket_family_the_code_opens(daemon):
    need = {f: w for f, w in families_in_sources(DAEMONS[daemon]).items() if f not in UNUSED.get(daemon, ())}
    assert {"AF_INET", "AF_INET6", "AF_UNIX"} <= set(need), f"the scan found too little: {need}"
    missing = {fam: where for fam, where in need.items() if fam not in unit_families(daemon)}
    assert not missing, f"{daemon}.service's RestrictAddressFamilies= lacks what the code opens: {missing}"


def test_exporter_asks_no_node():
    for name in os.listdir(os.path.join(REPO, "exporter")):
        with open(os.path.join(REPO, "exporter", name)) as f:
            text = f.read()
        assert not re.search(r"\b(cfg_find_node|getifaddrs|mnl_socket_open)\(", text), f"exporter/{name}"

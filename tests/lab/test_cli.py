"""Command-line conventions that need no lab: every program prints the version written in the file VERSION
(the one place it is kept) with --version and exits 0, and a wrong option is a usage error (exit 2)."""

import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("DSRLB_BUILD", os.path.join(REPO, "build"))


def version():
    with open(os.path.join(REPO, "VERSION")) as f:
        return f.read().strip()


@pytest.mark.parametrize("prog", ["lbd", "vrrpd", "lbctl"])
def test_version(prog):
    r = subprocess.run([os.path.join(BUILD, prog), "--version"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r
    assert r.stdout == f"{prog} (dsrlb) {version()}\n", r.stdout


@pytest.mark.parametrize("prog", ["lbd", "vrrpd", "lbctl"])
def test_unknown_option_is_a_usage_error(prog):
    r = subprocess.run([os.path.join(BUILD, prog), "--no-such-option"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2, r
    assert "usage:" in r.stderr, r.stderr

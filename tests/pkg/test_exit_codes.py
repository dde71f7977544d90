"""lbctl's exit status as its man page and --help document it: 0 ok, 1 refused or failed, 2 usage, 3 no
daemon reachable. Needs no daemon and no root privileges beyond writing a temporary directory."""

import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("DSRLB_BUILD", os.path.join(REPO, "build"))


def lbctl(*args):
    return subprocess.run([os.path.join(BUILD, "lbctl")] + list(args), capture_output=True, text=True, timeout=20)


@pytest.mark.parametrize("args", [[], ["no-such-command"], ["drain", "web"], ["set-mode", "sideways"],
                                  ["--no-such-option", "status"]])
def test_usage_is_2(args):
    assert lbctl(*args).returncode == 2


@pytest.mark.parametrize("cmd", [["status"], ["stats"], ["backends"], ["flows"], ["reload"],
                                 ["drain", "web", "192.0.2.21"]])
def test_no_daemon_is_3(tmp_path, cmd):
    r = lbctl("--run-dir", str(tmp_path), *cmd)
    assert r.returncode == 3, r


def test_keygen(tmp_path):
    key = str(tmp_path / "k")
    assert lbctl("keygen", key).returncode == 0
    assert lbctl("keygen", key).returncode == 1             # never overwrites
    assert lbctl("keygen", str(tmp_path / "k2"), "no-such-group-dsrlb").returncode == 2

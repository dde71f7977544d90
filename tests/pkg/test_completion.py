"""Bash completion of lbctl (completion/lbctl.bash): commands as `lbctl --help` lists them, options,
and service names, backend addresses and VIPs from the config given with -c. Needs bash and build/lbctl."""

import os
import shlex
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("DSRLB_BUILD", os.path.join(REPO, "build"))
COMPLETION = os.path.join(REPO, "completion", "lbctl.bash")

CONF = """\
[cluster]
interface = eth0
key_file = /etc/dsrlb/cluster.key

[node lb1]
address = 192.0.2.11
priority = 150

[node  lb-2]   # a comment
address = 192.0.2.12
priority = 100

[service web]
vip = 192.0.2.100
port = 80
backend = 192.0.2.21
backend = 192.0.2.22 weight=2   # twice the share
# backend = 192.0.2.99

[service dns]
vip = 192.0.2.101
port = 53
protocol = udp
backend: 192.0.2.31

[service web6]
vip = 2001:db8::100
port = 80
backend = 2001:db8::21
"""


def complete(words, cwd=None):
    """The completions bash offers for the last of words (an empty string: a new word)."""
    script = (f"source {shlex.quote(COMPLETION)}\n"
              f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
              "_lbctl; printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    env = dict(os.environ, PATH=f"{BUILD}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True, text=True, env=env,
                       cwd=cwd, timeout=10)
    assert r.returncode == 0, r
    return sorted(w for w in r.stdout.splitlines() if w)


@pytest.fixture
def conf(tmp_path):
    p = tmp_path / "dsrlb.conf"
    p.write_text(CONF)
    return str(p)


def test_commands_are_those_of_help():
    r = subprocess.run([os.path.join(BUILD, "lbctl"), "--help"], capture_output=True, text=True, timeout=10)
    listed = {line.split()[0] for line in r.stdout.split("commands:\n")[1].split("\n\n")[0].splitlines()
              if line.startswith("  ") and line[2] != " "}
    assert {"status", "drain", "check-backend", "keygen"} <= listed
    assert complete(["lbctl", ""]) == sorted(listed)
    assert complete(["lbctl", "st"]) == ["stats", "status"]


def test_options():
    assert complete(["lbctl", "--j"]) == ["--json"]
    assert complete(["lbctl", "flows", "--"]) == ["--json", "--limit"]
    assert complete(["lbctl", "status", "--"]) == ["--json"]
    assert complete(["lbctl", "set-mode", ""]) == ["active", "standby"]
    assert "--vip" in complete(["lbctl", "check-backend", "192.0.2.21", "--"])


def test_names_from_the_config(conf):
    assert complete(["lbctl", "-c", conf, "drain", ""]) == ["dns", "web", "web6"]
    assert complete(["lbctl", "-c", conf, "drain", "web", ""]) == ["192.0.2.21", "192.0.2.22"]
    assert complete(["lbctl", "--config", conf, "undrain", "dns", ""]) == ["192.0.2.31"]
    assert complete(["lbctl", "-c", conf, "drain", "web", "192.0.2.21", ""]) == []
    assert complete(["lbctl", "-c", conf, "drain-node", ""]) == []     # takes no argument
    assert complete(["lbctl", "-c", conf, "undrain-node", ""]) == []
    assert complete(["lbctl", "-c", conf, "check-backend", ""]) == \
        ["192.0.2.21", "192.0.2.22", "192.0.2.31", "2001:db8::21"]
    assert complete(["lbctl", "-c", conf, "check-backend", "192.0.2.21", "--vip", ""]) == \
        ["192.0.2.100", "192.0.2.101", "2001:db8::100"]
    # IPv6 addresses whole (the words are given here unsplit, as bash-completion's `-n :` takes them).
    assert complete(["lbctl", "-c", conf, "drain", "web6", "2001:d"]) == ["2001:db8::21"]
    assert complete(["lbctl", "-c", conf, "check-backend", "2001:db8::21", "--vip", "2001"]) == ["2001:db8::100"]


def test_no_config_no_names(tmp_path):
    assert complete(["lbctl", "-c", str(tmp_path / "missing.conf"), "drain", ""]) == []


def test_files_and_dirs(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.conf").write_text("")
    assert complete(["lbctl", "-c", str(tmp_path / "a")]) == [str(tmp_path / "a.conf")]
    assert complete(["lbctl", "--run-dir", str(tmp_path / "s")]) == [str(tmp_path / "sub")]

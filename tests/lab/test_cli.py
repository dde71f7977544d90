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


# --- configuration errors an operator hits: one line naming file:line, a non-zero exit (issue 16)

def _conf(tmp_path, cluster="", key=None, svc_extra="", weights=(1,)):
    if key is None:
        key = tmp_path / "k"
        if not key.exists():
            r = subprocess.run([os.path.join(BUILD, "lbctl"), "keygen", str(key)], capture_output=True, text=True,
                               timeout=10)
            assert r.returncode == 0, r
    backends = "".join(f"backend = 192.0.2.{21 + i} weight={w}\n" for i, w in enumerate(weights))
    text = (f"[cluster]\ninterface = eth0\nkey_file = {key}\n{cluster}"
            "[node a]\naddress = 192.0.2.11\npriority = 100\n"
            f"[service web]\nvip = 192.0.2.100\nport = 80\n{backends}{svc_extra}")
    path = tmp_path / "dsrlb.conf"
    path.write_text(text)
    return str(path), text.splitlines()


def _check(path):
    return subprocess.run([os.path.join(BUILD, "lbd"), "-t", "-c", path], capture_output=True, text=True, timeout=10)


def _line_of(lines, start):
    return next(i for i, x in enumerate(lines, 1) if x.startswith(start))


def _bad_key(tmp_path, kind):
    key = tmp_path / "bad.key"
    if kind == "missing":
        return key
    if kind == "mode 0644":
        r = subprocess.run([os.path.join(BUILD, "lbctl"), "keygen", str(key)], capture_output=True, text=True,
                           timeout=10)
        assert r.returncode == 0, r
        os.chmod(key, 0o644)
    else:   # wrong size
        key.write_text("00" * 16 + "\n")
        os.chmod(key, 0o600)
    return key


@pytest.mark.parametrize("kind", ["missing", "mode 0644", "wrong size"])
def test_bad_key_file_names_its_config_line(tmp_path, kind):
    path, lines = _conf(tmp_path, key=_bad_key(tmp_path, kind))
    r = _check(path)
    errs = r.stderr.strip().splitlines()
    assert r.returncode != 0 and len(errs) == 1, r
    assert errs[0].startswith(f"{path}:{_line_of(lines, 'key_file')}: key_file: "), errs


@pytest.mark.parametrize("key,value,hint", [("stop_timeout", "3", "did you mean 3s?"),
                                            ("advert_interval", "10", "did you mean 10s?"),
                                            ("advert_interval", "50", "did you mean 50ms?")])
def test_duration_without_unit_is_refused_with_a_hint(tmp_path, key, value, hint):
    path, lines = _conf(tmp_path, cluster=f"{key} = {value}\n")
    r = _check(path)
    errs = r.stderr.strip().splitlines()
    assert r.returncode != 0 and len(errs) == 1, r
    assert errs[0].startswith(f"{path}:{_line_of(lines, key)}: {key}: '{value}' has no unit"), errs
    assert hint in errs[0], errs


def test_every_backend_at_weight_zero_is_a_warning(tmp_path):
    path, lines = _conf(tmp_path, weights=(0, 0))
    r = _check(path)
    assert r.returncode == 0, r
    assert f"{path}:{_line_of(lines, '[service web]')}: [service web]: every backend has weight 0" in r.stderr, r
    path, _ = _conf(tmp_path, weights=(0, 1))
    assert "weight 0" not in _check(path).stderr


def test_notify_command_of_the_documented_length_is_accepted(tmp_path):
    longest = "/bin/true " + "x" * (182 - len("/bin/true "))   # docs/config.md: up to 182 characters
    path, _ = _conf(tmp_path, cluster=f"notify_master = {longest}\n")
    r = _check(path)
    assert r.returncode == 0, r
    path, lines = _conf(tmp_path, cluster=f"notify_master = {longest}x\n")
    r = _check(path)
    assert r.returncode != 0 and f"{path}:{_line_of(lines, 'notify_master')}: line is too long" in r.stderr, r

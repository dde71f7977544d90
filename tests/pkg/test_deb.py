"""The Debian package (issue 16): `dpkg-buildpackage -us -uc -b` builds it from a copy of the tree
(scripts/deb.sh), it holds the binaries, units, man pages, example config, completion and documents,
its files are exactly those of `make install PREFIX=/usr`, lintian reports no error, and its maintainer
scripts create the dsrlb account but neither enable nor start a service on a fresh install.

Run by `make deb-check` (part of make check); needs debhelper, dpkg-dev, fakeroot and lintian
(`scripts/deps.sh pkg`). The unit tests are not run again inside the package build (nocheck)."""

import gzip
import io
import os
import stat
import subprocess
import tarfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# What the package adds to `make install`: Debian's own changelog and copyright file.
DEBIAN_ONLY = {"usr/share/doc/dsrlb/changelog.gz", "usr/share/doc/dsrlb/copyright"}

REQUIRED = [
    "usr/sbin/lbd", "usr/sbin/vrrpd", "usr/sbin/dsr-backend", "usr/sbin/dsrlb-exporter", "usr/bin/lbctl",
    "lib/systemd/system/lbd.service", "lib/systemd/system/vrrpd.service",
    "lib/systemd/system/dsrlb-exporter.service", "lib/systemd/system/dsrlb.target",
    "usr/share/man/man8/lbd.8.gz", "usr/share/man/man8/vrrpd.8.gz", "usr/share/man/man8/lbctl.8.gz",
    "usr/share/man/man5/dsrlb.conf.5.gz", "usr/share/man/man8/dsrlb-exporter.8.gz",
    "etc/dsrlb/dsrlb.conf.example", "usr/share/doc/dsrlb/dsrlb.conf",
    "usr/share/bash-completion/completions/lbctl",
    "usr/share/doc/dsrlb/README.md", "usr/share/doc/dsrlb/config.md", "usr/share/doc/dsrlb/deploy.md",
]


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{cmd}: exit {r.returncode}\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r


def version():
    with open(os.path.join(REPO, "VERSION")) as f:
        return f.read().strip()


@pytest.fixture(scope="module")
def pkg(tmp_path_factory):
    """Builds the package once: its .deb, .changes, the tree it was built from, and that tree's
    `make install PREFIX=/usr DESTDIR=...`."""
    top = tmp_path_factory.mktemp("deb")
    out, work = top / "out", top / "work"
    env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck")
    run([os.path.join(REPO, "scripts", "deb.sh"), str(out), str(work)], env=env, timeout=900)
    src = work / f"dsrlb-{version()}"
    inst = top / "inst"
    # --no-print-directory: under `make check` MAKEFLAGS asks sub-makes to print "Entering directory".
    install_vars = run(["make", "-s", "--no-print-directory", "-f", "debian/rules", "print-install-vars"],
                       cwd=src).stdout.split()
    run(["make", "-C", str(src), "install", f"DESTDIR={inst}"] + install_vars, timeout=600)
    arch = run(["dpkg-architecture", "-qDEB_HOST_ARCH"]).stdout.strip()
    return {
        "deb": out / f"dsrlb_{version()}_{arch}.deb",
        "changes": out / f"dsrlb_{version()}_{arch}.changes",
        "src": src,
        "inst": inst,
        "ctl": top / "control",
    }


def deb_members(deb):
    """path -> (mode, bytes or None) of the files (not directories) in the .deb's data archive."""
    raw = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
    files = {}
    with tarfile.open(fileobj=io.BytesIO(raw)) as t:
        for m in t.getmembers():
            if m.isdir():
                continue
            path = m.name[2:] if m.name.startswith("./") else m.name
            body = t.extractfile(m).read() if m.isfile() else None
            files[path] = (stat.S_IMODE(m.mode), body)
    return files


def tree_files(root):
    files = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            with open(p, "rb") as f:
                files[os.path.relpath(p, root)] = (stat.S_IMODE(os.lstat(p).st_mode), f.read())
    return files


def test_changelog_version_is_VERSION():
    r = run(["dpkg-parsechangelog", "-l", os.path.join(REPO, "debian", "changelog"), "-S", "Version"])
    assert r.stdout.strip() == version()


def test_contents(pkg):
    listing = run(["dpkg-deb", "-c", str(pkg["deb"])]).stdout
    paths = {line.split()[-1].lstrip(".").lstrip("/") for line in listing.splitlines()}
    missing = [p for p in REQUIRED if p not in paths]
    assert not missing, f"not in the package: {missing}\n{listing}"


def test_same_files_as_make_install(pkg):
    """Same paths and modes; the same bytes except for what dh_strip and dh_compress change (the
    binaries are stripped, the man pages gzipped)."""
    deb = deb_members(pkg["deb"])
    inst = tree_files(pkg["inst"])
    norm = {}
    for path, (mode, body) in deb.items():
        if path in DEBIAN_ONLY:
            continue
        if path.startswith("usr/share/man/") and path.endswith(".gz"):
            path, body = path[:-3], gzip.decompress(body)
        norm[path] = (mode, body)
    assert sorted(norm) == sorted(inst), (
        f"only in the package: {sorted(set(norm) - set(inst))}; only in make install: {sorted(set(inst) - set(norm))}")
    for path, (mode, body) in norm.items():
        imode, ibody = inst[path]
        assert mode == imode, f"{path}: mode {mode:o} in the package, {imode:o} from make install"
        if not path.startswith(("usr/sbin/lbd", "usr/sbin/vrrpd", "usr/sbin/dsrlb-exporter", "usr/bin/lbctl")):
            assert body == ibody, f"{path} differs between the package and make install"
    for path in DEBIAN_ONLY:
        assert path in deb, f"{path} missing"


def test_units_point_at_the_package_paths(pkg):
    deb = deb_members(pkg["deb"])
    for unit in ("lbd", "vrrpd"):
        text = deb[f"lib/systemd/system/{unit}.service"][1].decode()
        assert f"ExecStart=/usr/sbin/{unit} " in text, text
        assert "/usr/local" not in text, text


def test_lintian_reports_no_error(pkg):
    r = subprocess.run(["lintian", "--allow-root", "--pedantic", "--display-info", str(pkg["changes"])],
                       capture_output=True, text=True, timeout=600)
    tags = [line for line in r.stdout.splitlines() if line[:2] in ("E:", "W:", "I:", "P:", "X:")]
    print("lintian:\n" + "\n".join(tags))
    errors = [t for t in tags if t.startswith("E:")]
    assert not errors, "\n".join(errors)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture(scope="module")
def maintscripts(pkg):
    run(["dpkg-deb", "-e", str(pkg["deb"]), str(pkg["ctl"])])
    return pkg["ctl"]


def run_maintscript(tmp_path, script, args, user_exists):
    """Runs a maintainer script with every command it may call replaced by a stub that logs its
    arguments, so nothing on this host changes; returns the log, one call a line."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    log = tmp_path / "calls"
    log.write_text("")
    stubs = {
        "getent": "exit 0" if user_exists else "exit 2",
        "dpkg-statoverride": "exit 1",
        # Known to debhelper's bookkeeping, never enabled by hand: --no-enable must not enable it.
        "deb-systemd-helper": 'case "$1 $2" in "debian-installed "*) exit 0 ;; "--quiet was-enabled") exit 1 ;; esac',
    }
    for name in ("adduser", "chown", "chmod", "getent", "dpkg-statoverride", "deb-systemd-helper",
                 "deb-systemd-invoke", "systemctl", "rmdir", "dpkg-maintscript-helper"):
        p = bindir / name
        p.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n{stubs.get(name, "exit 0")}\n')
        p.chmod(0o755)
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "DPKG_MAINTSCRIPT_PACKAGE": "dsrlb"}
    r = subprocess.run(["/bin/sh", str(script)] + args, env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r
    return log.read_text().splitlines()


def test_units_are_handled_by_debhelper_but_never_started(maintscripts):
    """dh_installsystemd found the units (its snippets are there) and was told --no-enable --no-start:
    the postinst starts nothing, an upgrade restarts only what runs (try-restart) and stops nothing
    before it, and a removal stops both (dsrlb.prerm)."""
    postinst = (maintscripts / "postinst").read_text()
    postrm = (maintscripts / "postrm").read_text()
    for unit in ("lbd.service", "vrrpd.service"):
        assert f"deb-systemd-helper update-state '{unit}'" in postinst, postinst
        assert "deb-systemd-helper purge" in postrm and f"'{unit}'" in postrm, postrm
    assert "try-restart" in postinst, postinst
    assert "_dh_action" not in postinst and "deb-systemd-invoke start" not in postinst, postinst
    # --no-enable: a unit is enabled again only if it was enabled before (not on a fresh install).
    assert "deb-systemd-helper debian-installed" in postinst, postinst
    preinst = maintscripts / "preinst"
    assert not preinst.exists() or "deb-systemd-invoke stop" not in preinst.read_text()
    prerm = (maintscripts / "prerm").read_text()
    assert "deb-systemd-invoke stop vrrpd.service lbd.service" in prerm, prerm


def test_postinst_fresh_install_creates_the_user_and_starts_nothing(maintscripts, tmp_path):
    calls = run_maintscript(tmp_path, maintscripts / "postinst", ["configure"], user_exists=False)
    assert any(c.startswith("adduser --system") and c.endswith(" dsrlb") for c in calls), calls
    assert "chown root:dsrlb /etc/dsrlb" in calls and "chmod 0750 /etc/dsrlb" in calls, calls
    assert not [c for c in calls if c.startswith("deb-systemd-invoke") or c.startswith("systemctl start")
                or c.startswith("deb-systemd-helper enable")], calls


def test_postinst_upgrade_keeps_the_user_and_starts_nothing_new(maintscripts, tmp_path):
    calls = run_maintscript(tmp_path, maintscripts / "postinst", ["configure", "0.8.0"], user_exists=True)
    assert not [c for c in calls if c.startswith("adduser")], calls
    # Only try-restart (units that were running) may appear, and only under systemd.
    starts = [c for c in calls if c.startswith("deb-systemd-invoke") and "try-restart" not in c]
    assert not starts, calls

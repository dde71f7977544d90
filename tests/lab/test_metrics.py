"""The Prometheus exporter (dsrlb-exporter, docs/metrics.md; issue 16), tested with the real thing.

The pair runs with `metrics_listen = 0.0.0.0:9810` and `status_group = 64001`; on each node the exporter
runs as an unprivileged user (uid 65534, supplementary group 64001, no capabilities), as the docs say to
run it. Debian's `prometheus` runs in the router's namespace and scrapes both nodes every 500 ms.

- `promtool check metrics` passes on both nodes' output, which says both daemons are up.
- With client traffic through the VIP, Prometheus answers `dsrlb_vrrp_master == 1` (and
  `dsrlb_active == 1`) with lb1 alone, and `rate(dsrlb_backend_forwarded_frames_total[5s]) > 0` with exactly
  the backends lb1's lbd says it forwarded to (none on lb2, the standby).
- Garbage: random bytes, a TLS hello, an HTTP/2 preface, a 100 KB head, wrong methods and paths, and
  more silent connections than the exporter has slots: each is answered with a 4xx or closed, a real
  scrape still gets its 200 while the silent ones are held, and the exporter process is the same.
- A stopped daemon (SIGSTOP: it accepts the connection and never answers) costs a scrape at most the
  exporter's --timeout, and the scrape answers with dsrlb_up{daemon="lbd"} 0; a killed lbd shows as
  dsrlb_up 0 in Prometheus too.

Every wait is bounded; the module takes about 30 seconds.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse

import pytest

from lib import client
from lib.lab import wait_for

PORT = 9810
VIEW_GID = 64001
EXPORTER_USER = ("65534", "65534", str(VIEW_GID))   # uid, gid, supplementary groups (status_group)
TIMEOUT_MS = 300                                     # the exporter's --timeout: per daemon, per scrape
PROM_WEB = "127.0.0.1:9090"
SCRAPE_INTERVAL = "500ms"

# One HTTP GET from inside a namespace: {"status", "body", "seconds"} (status None: no HTTP answer).
FETCH = r"""
import json, sys, time, urllib.error, urllib.request
url, timeout = sys.argv[1], float(sys.argv[2])
t0 = time.monotonic()
try:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        out = {"status": r.status, "ctype": r.headers.get("Content-Type"), "body": r.read().decode()}
except urllib.error.HTTPError as e:
    out = {"status": e.code, "body": e.read().decode(errors="replace")}
except Exception as e:
    out = {"status": None, "error": repr(e)}
out["seconds"] = round(time.monotonic() - t0, 4)
print(json.dumps(out))
"""

# Hostile clients against one exporter: what each got back (the status line, or "closed").
GARBAGE = r"""
import json, os, socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])

def send(data, read_timeout=5.0):
    s = socket.create_connection((host, port), timeout=3)
    try:
        s.sendall(data)
    except OSError:
        pass
    s.settimeout(read_timeout)
    buf = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    except OSError:
        pass
    s.close()
    return buf.split(b"\r\n", 1)[0].decode(errors="replace") if buf else "closed"

out = {}
out["random"] = send(os.urandom(3000) + b"\r\n\r\n")
out["tls_hello"] = send(bytes.fromhex("160301020001000100fc0303") + os.urandom(200))
out["http2_preface"] = send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
out["oversized"] = send(b"GET /metrics HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 100000 + b"\r\n\r\n")
out["post"] = send(b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
out["path"] = send(b"GET /../../etc/passwd HTTP/1.1\r\n\r\n")
out["nul"] = send(b"GET /metrics\x00 HTTP/1.1\r\n\r\n")
out["http09"] = send(b"GET /metrics\r\n\r\n")
# More silent connections than the exporter has slots; a real scrape must still be answered.
silent = [socket.create_connection((host, port), timeout=3) for _ in range(10)]
t0 = time.monotonic()
out["scrape_while_held"] = send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
out["scrape_while_held_s"] = round(time.monotonic() - t0, 3)
for s in silent:
    s.close()
print(json.dumps(out))
"""


def fetch(lab, host, url, timeout=3.0):
    r = lab.run(host, [sys.executable, "-c", FETCH, url, str(timeout)], timeout=timeout + 10)
    return json.loads(r.stdout)


def scrape(lab, node, timeout=3.0):
    """GET /metrics of node's exporter from the router: (fetch result, {sample: value})."""
    r = fetch(lab, "router", f"http://{lab.addr(node)}:{PORT}/metrics", timeout)
    samples = {}
    for line in (r.get("body") or "").splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return r, samples


def promql(lab, query):
    """An instant query to the lab's Prometheus: the result vector as [(labels, value)]."""
    url = f"http://{PROM_WEB}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    r = fetch(lab, "router", url)
    assert r["status"] == 200, r
    d = json.loads(r["body"])
    assert d["status"] == "success", d
    return [(x["metric"], float(x["value"][1])) for x in d["data"]["result"]]


def start_exporter(lab, pair, node):
    uid, gid, groups = EXPORTER_USER
    cmd = ["setpriv", "--reuid", uid, "--regid", gid, "--groups", groups, "--inh-caps", "-all",
           "--bounding-set", "-all", lab.bin("dsrlb-exporter"), "-c", pair.conf, "--run-dir", lab.run_dir(node),
           "--timeout", f"{TIMEOUT_MS}ms"]
    p = lab.popen(node, cmd, log=f"{node}-exporter")
    pair.extra_procs.append(p)
    return p


def prometheus_config(lab):
    targets = "\n".join(f"      - targets: ['{lab.addr(n)}:{PORT}']\n        labels: {{node: {n}}}"
                        for n in ("lb1", "lb2"))
    return (f"global:\n  scrape_interval: {SCRAPE_INTERVAL}\n  scrape_timeout: 450ms\n"
            f"scrape_configs:\n  - job_name: dsrlb\n    static_configs:\n{targets}\n")


@pytest.fixture(scope="module", autouse=True)
def servers_up(backend_servers):
    return backend_servers


@pytest.fixture(scope="module")
def setup(lab):
    """The pair, an exporter on each node and Prometheus in the router's namespace."""
    if not shutil.which("prometheus") or not shutil.which("promtool"):
        pytest.fail("prometheus and promtool are missing: make deps installs the Debian package prometheus")
    from lib.pair import make_pairs
    # The exporters' user reaches the config and the run dirs, not the key (0600, root's).
    for d in (lab.tmpdir, os.path.join(lab.tmpdir, "conf"), os.path.join(lab.tmpdir, "run")):
        os.chmod(d, 0o711)
    with make_pairs(lab, advert="50ms",
                    cluster_extra={"metrics_listen": f"0.0.0.0:{PORT}", "status_group": VIEW_GID}) as make:
        pair = make()
        os.chmod(pair.conf, 0o644)
        exporters = {n: start_exporter(lab, pair, n) for n in ("lb1", "lb2")}
        for n in exporters:
            wait_for(lambda n=n: scrape(lab, n)[1].get('dsrlb_up{daemon="lbd"}') == 1, 5, 0.1,
                     f"the exporter on {n} serving, lbd up")
        pdir = os.path.join(lab.tmpdir, "prometheus")
        os.makedirs(pdir)
        with open(os.path.join(pdir, "prometheus.yml"), "w") as f:
            f.write(prometheus_config(lab))
        prom = lab.popen("router", ["prometheus", f"--config.file={pdir}/prometheus.yml",
                                    f"--storage.tsdb.path={pdir}/data", f"--web.listen-address={PROM_WEB}",
                                    "--log.level=warn"], log="prometheus")
        pair.extra_procs.append(prom)
        wait_for(lambda: fetch(lab, "router", f"http://{PROM_WEB}/-/ready")["status"] == 200, 20, 0.2,
                 "Prometheus ready")
        yield pair, exporters


def test_promtool_check_metrics(lab, setup):
    pair, exporters = setup
    for node, p in exporters.items():
        r, samples = scrape(lab, node)
        assert r["status"] == 200 and r["ctype"].startswith("text/plain; version=0.0.4"), r
        chk = subprocess.run(["promtool", "check", "metrics"], input=r["body"], capture_output=True, text=True,
                             timeout=30)
        print(f"{node}: promtool check metrics: rc {chk.returncode} {chk.stdout.strip()} {chk.stderr.strip()}; "
              f"{len(r['body'])} bytes, {len(samples)} samples, scrape {r['seconds']} s")
        assert chk.returncode == 0 and not chk.stdout.strip() and not chk.stderr.strip(), chk
        assert samples['dsrlb_up{daemon="lbd"}'] == 1 and samples['dsrlb_up{daemon="vrrpd"}'] == 1
        assert samples["dsrlb_vrrp_master"] == (1 if node == "lb1" else 0)
        # Unprivileged: the setpriv identity, no capability at all.
        with open(f"/proc/{p.pid}/status") as f:
            st = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
        assert st["Uid"].split()[0] == "65534" and int(st["CapEff"].strip(), 16) == 0, st


def test_prometheus_active_node_and_backend_rates(lab, setup):
    pair, _ = setup
    job = client.ClientJob(lab, "client", [str(x) for x in (
        "http", "--url", f"http://{lab.vip}/", "--count", 1000000, "--parallel", 2, "--timeout", 2,
        "--deadline", 30)], 40, "client-http")
    try:
        masters = wait_for(lambda: promql(lab, "dsrlb_vrrp_master == 1"), 10, 0.2, "a MASTER in Prometheus")
        assert [m["node"] for m, _ in masters] == ["lb1"], masters
        actives = wait_for(lambda: promql(lab, "dsrlb_active == 1"), 10, 0.2, "an active lbd in Prometheus")
        assert [m["node"] for m, _ in actives] == ["lb1"], actives

        def rates_match():
            got = promql(lab, 'rate(dsrlb_backend_forwarded_frames_total{service="web"}[5s]) > 0')
            st = pair.lbd("lb1")
            web = next(s for s in st["services"] if s["name"] == "web")
            want = {("lb1", b["address"]) for b in web["backends"] if b["forwarded"] > 0}
            have = {(m["node"], m["backend"]) for m, _ in got}
            return (got, want) if len(want) >= 2 and have == want else None

        got, want = wait_for(rates_match, 15, 0.3, "per-backend forwarding rates in Prometheus equal to "
                             "the backends lb1 forwarded to")
        print("rates:", sorted((m["backend"], round(v, 1)) for m, v in got))
    finally:
        job.stop()
    durations = promql(lab, 'scrape_duration_seconds{job="dsrlb"}')
    print("Prometheus scrape_duration_seconds:", {m["node"]: v for m, v in durations})
    assert len(durations) == 2 and all(v < 0.45 for _, v in durations), durations


def test_garbage_is_answered_or_closed(lab, setup):
    _, exporters = setup
    p = exporters["lb1"]
    r = lab.run("router", [sys.executable, "-c", GARBAGE, lab.addr("lb1"), str(PORT)], timeout=60)
    out = json.loads(r.stdout)
    print(out)
    for k in ("random", "tls_hello", "http2_preface", "nul", "http09"):
        assert out[k] in ("HTTP/1.1 400 Bad Request", "HTTP/1.1 505 HTTP Version Not Supported", "closed"), (k, out)
    assert out["oversized"] in ("HTTP/1.1 431 Request Header Fields Too Large", "closed"), out
    assert out["post"] == "HTTP/1.1 405 Method Not Allowed", out
    assert out["path"] == "HTTP/1.1 404 Not Found", out
    assert out["scrape_while_held"] == "HTTP/1.1 200 OK" and out["scrape_while_held_s"] < 2, out
    assert p.poll() is None, "the exporter died:\n" + lab.log_tail("lb1-exporter")
    r, samples = scrape(lab, "lb1")
    assert r["status"] == 200 and samples['dsrlb_up{daemon="lbd"}'] == 1


def test_daemon_down_gives_up_0(lab, setup):
    pair, exporters = setup
    lbd = pair.proc("lb2", "lbd")
    lab.signal(lbd, signal.SIGSTOP)
    try:
        # A scrape waits up to the exporter's timeout (plus the cache of 100 ms), never longer.
        r, samples = wait_for(lambda: (lambda x: x if x[1].get('dsrlb_up{daemon="lbd"}') == 0 else None)(
            scrape(lab, "lb2")), 5, 0.1, "dsrlb_up 0 for a stopped lbd")
        assert r["status"] == 200 and r["seconds"] < TIMEOUT_MS / 1000 + 1.0, r["seconds"]
        assert samples['dsrlb_up{daemon="vrrpd"}'] == 1
        assert samples['dsrlb_exporter_query_seconds{daemon="lbd"}'] >= TIMEOUT_MS / 1000 * 0.9
        assert not any(k.startswith("dsrlb_backend_") for k in samples)
    finally:
        lab.signal(lbd, signal.SIGCONT)
    pair.kill("lb2", "lbd").wait(5)
    down = wait_for(lambda: promql(lab, 'dsrlb_up{daemon="lbd"} == 0'), 10, 0.2, "lbd down in Prometheus")
    assert [m["node"] for m, _ in down] == ["lb2"], down
    up = promql(lab, 'dsrlb_up{daemon="vrrpd"} == 1')
    assert sorted(m["node"] for m, _ in up) == ["lb1", "lb2"], up
    assert exporters["lb2"].poll() is None

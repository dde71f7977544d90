"""Traffic from the client namespace, and the harness-side helpers that run it.

Run as a script inside a namespace (standard library only); every mode is bounded in count and
time, prints progress events as JSON lines ({"event": ...}) and ends with one {"result": {...}}:
    client.py http     --url URL --count N [--parallel P] [--src A,B,..] [--timeout T]
    client.py download --host VIP --size N
    client.py upload   --host VIP --size N [--port 81]
    client.py udp      --host VIP --duration D [--interval 0.001] [--port 9000]
    client.py hold     --host VIP --conns K --seconds S
    client.py ping     --host ADDR [--count N] [--interval 0.2] [--timeout T]
Every address (--host, --src, the URL's host in brackets) may be IPv4 or IPv6: the socket family is
taken from the address.
"""

import argparse
import errno
import hashlib
import ipaddress
import json
import os
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

try:
    from . import pattern
    from .inet import checksum
except ImportError:  # run as a script: this directory is sys.path[0]
    import pattern
    from inet import checksum

HERE = os.path.dirname(os.path.abspath(__file__))
VIP = "192.0.2.100"


# ----------------------------------------------------------------------------- script side

def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def error_kind(exc):
    if isinstance(exc, socket.timeout):
        return "timeout"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno, str(exc.errno)).lower()
    return type(exc).__name__


def family_of(addr):
    """AF_INET or AF_INET6, from an address literal."""
    return socket.AF_INET6 if ipaddress.ip_address(addr).version == 6 else socket.AF_INET


def host_header(host):
    return f"[{host}]" if ":" in host else host


def connect(host, port, timeout, src=None):
    return socket.create_connection((host, port), timeout=timeout,
                                    source_address=(src, 0) if src else None)


def read_http(sock, verifier=None):
    """Read one HTTP/1.0 response until EOF: (status, headers, body or byte count)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("EOF before end of headers")
        buf += chunk
        if len(buf) > 65536:
            raise ValueError("headers too long")
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if verifier is None:
        chunks = [body]
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return status, headers, b"".join(chunks)
    verifier.feed(body)
    while True:
        chunk = sock.recv(1 << 18)
        if not chunk:
            break
        verifier.feed(chunk)
    return status, headers, verifier.count


def http_get(host, port, path, timeout, src=None):
    with connect(host, port, timeout, src) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: {host_header(host)}\r\n\r\n".encode())
        return read_http(s)


def mode_http(a):
    from urllib.parse import urlsplit
    u = urlsplit(a.url)
    host, port, path = u.hostname, u.port or 80, u.path or "/"
    sources = a.src.split(",") if a.src else [None]
    counts, kinds, samples = {}, {}, []
    lock = threading.Lock()
    deadline = time.monotonic() + a.deadline

    def one(i):
        if time.monotonic() > deadline:
            res = ("error", "deadline")
        else:
            try:
                status, _h, body = http_get(host, port, path, a.timeout, sources[i % len(sources)])
                if status == 200:
                    res = ("ok", body.decode(errors="replace").strip())
                else:
                    res = ("error", f"status {status}")
            except Exception as e:  # every failure is a result here
                res = ("error", error_kind(e))
        with lock:
            if res[0] == "ok":
                counts[res[1]] = counts.get(res[1], 0) + 1
            else:
                kinds[res[1]] = kinds.get(res[1], 0) + 1
                if len(samples) < 10:
                    samples.append([i, res[1]])

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, a.parallel)) as ex:
        list(ex.map(one, range(a.count)))
    return {"counts": counts, "ok": sum(counts.values()), "errors": sum(kinds.values()),
            "error_kinds": kinds, "error_samples": samples,
            "elapsed": round(time.monotonic() - t0, 3)}


def mode_download(a):
    v = pattern.Verifier()
    t0 = time.monotonic()
    res = {"ok": False, "expected": a.size, "bytes": 0, "backend": None, "error": None}
    try:
        with connect(a.host, a.port, a.timeout, a.src) as s:
            s.sendall(f"GET /bytes/{a.size} HTTP/1.0\r\nHost: {host_header(a.host)}\r\n\r\n".encode())
            status, headers, count = read_http(s, v)
            res.update(status=status, backend=headers.get("x-backend"), bytes=count)
            res["ok"] = status == 200 and count == a.size and v.ok
    except Exception as e:
        res["error"] = error_kind(e)
        res["bytes"] = v.count
    res["mismatch_at"] = v.mismatch_at
    res["elapsed"] = round(time.monotonic() - t0, 3)
    return res


def mode_upload(a):
    t0 = time.monotonic()
    h = hashlib.sha256()
    res = {"ok": False, "sent": 0, "received": None, "sha_ok": False, "backend": None, "error": None}
    try:
        with connect(a.host, a.port, a.timeout, a.src) as s:
            for chunk in pattern.chunks(a.size, b"upload"):
                s.sendall(chunk)
                h.update(chunk)
                res["sent"] += len(chunk)
            s.shutdown(socket.SHUT_WR)
            reply = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                reply += chunk
        f = reply.decode().split()
        res["received"] = int(f[1])
        res["backend"] = f[2]
        res["sha_ok"] = f[0] == h.hexdigest()
        res["ok"] = res["sha_ok"] and res["received"] == a.size
    except Exception as e:
        res["error"] = error_kind(e)
    res["elapsed"] = round(time.monotonic() - t0, 3)
    return res


def mode_udp(a):
    """One probe every `interval`; a probe is answered if any reply carries its sequence number."""
    n = max(1, int(round(a.duration / a.interval)))
    sock = socket.socket(family_of(a.host), socket.SOCK_DGRAM)
    if a.src:
        sock.bind((a.src, 0))
    # Connected: replies from any address other than the one probed (not DSR) are not counted.
    sock.connect((a.host, a.port))
    sock.settimeout(0.05)
    if a.rt:
        # Real-time only from here (the threads below inherit it): a Python start-up at real-time
        # priority takes a core from the kernel's softirq work for ~100 ms, and several probes
        # starting at once made the network path drop frames.
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        except OSError:
            pass
    sent_at = [None] * n
    answered = [None] * n  # backend name of the first reply
    dups = [0]
    count = [0]  # probes answered so far
    stop = threading.Event()
    first = threading.Event()
    magic = b"DSRP"

    def rx():
        while not stop.is_set():
            try:
                data = sock.recv(2048)
            except socket.timeout:
                continue
            except OSError:
                continue  # e.g. ICMP port unreachable reported on the connected socket
            name, _, payload = data.partition(b" ")
            if len(payload) < 12 or payload[:4] != magic:
                continue
            seq = struct.unpack("!Q", payload[4:12])[0]
            if seq >= n:
                continue
            if answered[seq] is None:
                answered[seq] = name.decode(errors="replace")
                count[0] += 1
                if not first.is_set():
                    first.set()
                    emit({"event": "answered", "seq": seq})
                if count[0] == a.steady:
                    emit({"event": "steady", "seq": seq, "answered": count[0]})
            else:
                dups[0] += 1

    th = threading.Thread(target=rx, daemon=True)
    th.start()
    emit({"event": "started", "probes": n})
    t0 = time.monotonic()
    send_errors = 0
    for i in range(n):
        target = t0 + i * a.interval
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent_at[i] = time.monotonic()
        try:
            sock.send(magic + struct.pack("!Q", i) + b"x" * max(0, a.size - 12))
        except OSError:
            send_errors += 1
    t_end = time.monotonic()
    # Late replies: wait up to `grace` for the last ones.
    deadline = t_end + a.grace
    while time.monotonic() < deadline and answered[n - 1] is None:
        time.sleep(0.005)
    stop.set()
    th.join(1)
    sock.close()

    outages = []
    i = 0
    while i < n:
        if answered[i] is None:
            j = i
            while j < n and answered[j] is None:
                j += 1
            end = sent_at[j] if j < n else t_end
            outages.append({"start_ms": round((sent_at[i] - t0) * 1000, 1),
                            "ms": round((end - sent_at[i]) * 1000, 1), "lost": j - i,
                            "recovered": j < n})
            i = j
        else:
            i += 1
    by_backend, switches, prev = {}, [], None
    for i in range(n):
        b = answered[i]
        if b is None:
            continue
        by_backend[b] = by_backend.get(b, 0) + 1
        if prev is not None and b != prev:
            switches.append({"at_ms": round((sent_at[i] - t0) * 1000, 1), "from": prev, "to": b})
        prev = b
    lost = sum(1 for x in answered if x is None)
    longest = max(outages, key=lambda o: o["ms"]) if outages else None
    return {"sent": n, "answered": n - lost, "lost": lost, "duplicates": dups[0], "t0": t0,
            "send_errors": send_errors, "duration_s": round(t_end - t0, 3),
            "longest_outage_ms": longest["ms"] if longest else 0.0,
            "longest_outage": longest, "outages": sorted(outages, key=lambda o: -o["ms"])[:20],
            "outage_count": len(outages), "by_backend": by_backend, "switches": switches[:50]}


def mode_ping(a):
    """ICMP (ICMPv6) echo with a raw socket (the lab does not rely on iputils-ping being installed).
    An ICMPv6 raw socket gets no IP header, and the kernel fills in the ICMPv6 checksum."""
    v6 = family_of(a.host) == socket.AF_INET6
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) if v6 else \
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    if a.src:
        s.bind((a.src, 0))
    request, reply = (128, 129) if v6 else (8, 0)
    want_from = ipaddress.ip_address(a.host)
    ident = os.getpid() & 0xFFFF
    rtts = []
    t0 = time.monotonic()
    for seq in range(a.count):
        if seq:
            time.sleep(max(0.0, t0 + seq * a.interval - time.monotonic()))
        payload = b"dsrlb-lab-ping".ljust(32, b".")
        hdr = struct.pack("!BBHHH", request, 0, 0, ident, seq)
        pkt = struct.pack("!BBHHH", request, 0, 0 if v6 else checksum(hdr + payload), ident, seq) + payload
        sent = time.monotonic()
        s.sendto(pkt, (a.host, 0))
        deadline = sent + a.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                buf, addr = s.recvfrom(2048)
            except socket.timeout:
                break
            ihl = 0 if v6 else (buf[0] & 0x0F) * 4
            if len(buf) < ihl + 8 or ipaddress.ip_address(addr[0].split("%")[0]) != want_from:
                continue
            typ, _code, _sum, rid, rseq = struct.unpack("!BBHHH", buf[ihl:ihl + 8])
            if typ == reply and rid == ident and rseq == seq:
                rtts.append(round((time.monotonic() - sent) * 1000, 3))
                break
    s.close()
    return {"sent": a.count, "received": len(rtts), "rtt_ms": rtts}


def mode_hold(a):
    """K connections to GET /hold/S: each ends ok, reset, short (early EOF) or stalled."""
    expected = int(round(a.seconds * 10))
    sel = selectors.DefaultSelector()
    conns = []
    for i in range(a.conns):
        c = {"i": i, "bytes": 0, "state": "open", "backend": None, "buf": b"", "body": False,
             "error": None}
        try:
            s = connect(a.host, a.port, a.timeout, a.src)
            c["lport"] = s.getsockname()[1]
            s.sendall(f"GET /hold/{a.seconds} HTTP/1.0\r\nHost: {host_header(a.host)}\r\n\r\n".encode())
            s.setblocking(False)
            c["sock"] = s
            c["last"] = time.monotonic()
            sel.register(s, selectors.EVENT_READ, c)
        except Exception as e:
            c["state"] = "connect_failed"
            c["error"] = error_kind(e)
        conns.append(c)
    announced = False
    deadline = time.monotonic() + a.seconds + a.stall + 5
    open_n = sum(1 for c in conns if c["state"] == "open")
    while open_n and time.monotonic() < deadline:
        for key, _ in sel.select(0.1):
            c = key.data
            s = c["sock"]
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                c["state"] = "reset" if isinstance(e, ConnectionResetError) else error_kind(e)
                data = None
            if data:
                c["last"] = time.monotonic()
                if not c["body"]:
                    c["buf"] += data
                    if b"\r\n\r\n" in c["buf"]:
                        head, rest = c["buf"].split(b"\r\n\r\n", 1)
                        for line in head.decode("latin-1").split("\r\n"):
                            if line.lower().startswith("x-backend:"):
                                c["backend"] = line.split(":", 1)[1].strip()
                        c["body"] = True
                        c["bytes"] += len(rest)
                        c["buf"] = b""
                else:
                    c["bytes"] += len(data)
                continue
            if data is not None:  # EOF
                c["state"] = "ok" if c["bytes"] == expected else "short"
            sel.unregister(s)
            s.close()
            open_n -= 1
        now = time.monotonic()
        for c in conns:
            if c["state"] == "open" and now - c["last"] > a.stall:
                c["state"] = "stalled"
                sel.unregister(c["sock"])
                c["sock"].close()
                open_n -= 1
        if not announced and all(c["state"] != "open" or c["bytes"] > 0 for c in conns):
            announced = True
            emit({"event": "connected", "conns": sum(1 for c in conns if c["state"] == "open")})
    for c in conns:
        if c["state"] == "open":
            c["state"] = "stalled"
            c["sock"].close()
    states = {}
    by_backend = {}
    for c in conns:
        states[c["state"]] = states.get(c["state"], 0) + 1
        if c["backend"]:
            by_backend[c["backend"]] = by_backend.get(c["backend"], 0) + 1
    return {"conns": a.conns, "ok": states.get("ok", 0), "reset": states.get("reset", 0),
            "states": states, "by_backend": by_backend, "expected_bytes": expected,
            "details": [{k: c.get(k) for k in ("i", "lport", "backend", "state", "bytes", "error")}
                        for c in conns]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)

    def common(p, port):
        p.add_argument("--host", default=VIP)
        p.add_argument("--port", type=int, default=port)
        p.add_argument("--src", help="source address")
        p.add_argument("--timeout", type=float, default=3.0, help="per-socket-operation timeout")

    p = sub.add_parser("http")
    p.add_argument("--url", default=f"http://{VIP}/")
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--parallel", type=int, default=1)
    p.add_argument("--src", help="comma-separated source addresses, used round robin")
    p.add_argument("--timeout", type=float, default=2.0)
    p.add_argument("--deadline", type=float, default=60.0, help="requests not started by then fail")
    p = sub.add_parser("download")
    common(p, 80)
    p.add_argument("--size", type=int, required=True)
    p = sub.add_parser("upload")
    common(p, 81)
    p.add_argument("--size", type=int, required=True)
    p = sub.add_parser("udp")
    common(p, 9000)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--interval", type=float, default=0.001)
    p.add_argument("--size", type=int, default=32, help="probe payload bytes (>= 12)")
    p.add_argument("--grace", type=float, default=0.3, help="wait for late replies")
    p.add_argument("--steady", type=int, default=200, help='report event "steady" at this many answers')
    p.add_argument("--rt", action="store_true", help="stream at SCHED_FIFO 1 once set up")
    p = sub.add_parser("ping")
    common(p, 0)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--interval", type=float, default=0.2)
    p = sub.add_parser("hold")
    common(p, 80)
    p.add_argument("--conns", type=int, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--stall", type=float, default=3.0, help="no byte for this long = stalled")
    a = ap.parse_args(argv)
    if a.mode == "udp" and a.duration / a.interval > 1_000_000:
        ap.error("more than 1e6 probes")
    res = {"http": mode_http, "download": mode_download, "upload": mode_upload,
           "udp": mode_udp, "hold": mode_hold, "ping": mode_ping}[a.mode](a)
    emit({"result": res})


# ----------------------------------------------------------------------------- harness side

class ClientJob:
    """A client.py run in a namespace: read its events while it runs, then its result."""

    def __init__(self, lab, host, args, limit, name, realtime=False):
        import queue
        self.lab = lab
        self.limit = limit  # seconds the job may take in total
        self.started = time.monotonic()
        self.events = []
        self._q = queue.Queue()
        self._result = None
        self._stderr_path = os.path.join(lab.logdir, f"{name}.log")
        # A timing probe streams real-time (below vrrpd's priority 10): on a busy machine a descheduled
        # probe would stop sending and count its own pause as an outage of the VIP. It raises itself
        # once set up (--rt), not at exec: see mode_udp.
        rt = ["--rt"] if realtime else []
        with open(self._stderr_path, "ab") as err:
            self.proc = lab.popen(host, [sys.executable, os.path.join(HERE, "client.py")] + args + rt,
                                  stdout=subprocess.PIPE, stderr=err, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            self._q.put(obj)
        self._q.put(None)

    def _next(self, timeout):
        import queue
        try:
            obj = self._q.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return False
        if obj is None:
            self._q.put(None)  # keep the end marker for later callers
            return None
        if "result" in obj:
            self._result = obj["result"]
        else:
            self.events.append(obj)
        return obj

    def wait_event(self, name, timeout=5):
        """Block until the job reports {"event": name}; returns the event."""
        from .lab import WaitTimeout
        for e in self.events:
            if e.get("event") == name:
                return e
        deadline = time.monotonic() + timeout
        while True:
            obj = self._next(deadline - time.monotonic())
            if obj is False or obj is None:
                raise WaitTimeout(f"client job never reported event {name!r} within {timeout}s "
                                  f"(exited: {self.proc.poll()}); stderr:\n{self._stderr()}")
            if obj.get("event") == name:
                return obj

    def result(self, timeout=None):
        """The job's result dict; waits at most `timeout` (default: what is left of its limit)."""
        from .lab import WaitTimeout
        if timeout is None:
            timeout = self.limit - (time.monotonic() - self.started) + 5
        deadline = time.monotonic() + timeout
        while self._result is None:
            obj = self._next(deadline - time.monotonic())
            if obj is False:
                self.lab.stop(self.proc)
                raise WaitTimeout(f"client job gave no result within {timeout:.1f}s; stderr:\n"
                                  + self._stderr())
            if obj is None:
                break
        try:
            self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except Exception:
            self.lab.stop(self.proc)
        if self._result is None:
            raise RuntimeError(f"client job exited {self.proc.returncode} without a result; "
                               f"stderr:\n{self._stderr()}")
        return self._result

    def stop(self):
        return self.lab.stop(self.proc)

    def _stderr(self):
        try:
            with open(self._stderr_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""


def _job(lab, host, args, limit, name, realtime=False):
    return ClientJob(lab, host, [str(x) for x in args], limit, name, realtime)


def ping(lab, dst, count=1, interval=0.2, timeout=1.0, host="client", src=None):
    """ICMP echo from host to dst; {"sent", "received", "rtt_ms": [...]}."""
    args = ["ping", "--host", dst, "--count", count, "--interval", interval, "--timeout", timeout]
    if src:
        args += ["--src", src]
    return _job(lab, host, args, count * (interval + timeout) + 5, "client-ping").result()


def http_url(addr, path="/", port=None):
    """http://addr[:port]/path, with an IPv6 address in brackets."""
    return f"http://{host_header(addr)}{f':{port}' if port else ''}{path}"


def http_gets(lab, count, url=None, parallel=1, timeout=2.0, sources=None, host="client",
              deadline=60.0):
    """`count` GETs, a new connection each; {"counts": {backend: n}, "ok", "errors", "error_kinds", ...}."""
    args = ["http", "--url", url or f"http://{lab.vip}/", "--count", count, "--parallel", parallel,
            "--timeout", timeout, "--deadline", deadline]
    if sources:
        args += ["--src", ",".join(sources)]
    return _job(lab, host, args, deadline + timeout + 5, "client-http").result()


def download(lab, size, dst=None, port=80, timeout=5.0, host="client", src=None):
    """GET /bytes/size and verify every byte; {"ok", "bytes", "expected", "backend", "mismatch_at", ...}."""
    args = ["download", "--host", dst or lab.vip, "--port", port, "--size", size, "--timeout", timeout]
    if src:
        args += ["--src", src]
    return _job(lab, host, args, 30 + size / 1e6, "client-download").result()


def upload(lab, size, dst=None, port=81, timeout=5.0, host="client", src=None):
    """Send `size` bytes to the sink; {"ok", "sent", "received", "sha_ok", "backend", ...}."""
    args = ["upload", "--host", dst or lab.vip, "--port", port, "--size", size, "--timeout", timeout]
    if src:
        args += ["--src", src]
    return _job(lab, host, args, 30 + size / 1e6, "client-upload").result()


def start_udp_probe(lab, duration, interval=0.001, dst=None, port=9000, host="client", src=None,
                    grace=0.3, steady=200):
    """Start probing; job.wait_event("answered") once the path works, job.wait_event("steady") once
    `steady` probes are answered (the stream runs before a fault is injected), job.result() at the
    end: {"sent", "answered", "lost", "longest_outage_ms", "outages", "by_backend", "switches",
    "duplicates"}."""
    args = ["udp", "--host", dst or lab.vip, "--port", port, "--duration", duration,
            "--interval", interval, "--grace", grace, "--steady", steady]
    if src:
        args += ["--src", src]
    return _job(lab, host, args, duration + grace + 5, "client-udp", realtime=True)


def udp_probe(lab, duration, **kw):
    return start_udp_probe(lab, duration, **kw).result()


# One datagram from each fixed (address, port), resent until answered; run with -c in a namespace.
UDP_QUERY = r"""
import json, selectors, socket, sys, time
a = json.loads(sys.argv[1])
sel = selectors.DefaultSelector()
socks = {}
fam = socket.AF_INET6 if ":" in a["dst"] else socket.AF_INET
for src, port in a["from"]:
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if a.get("dstopts"):
        # A Destination Options header (one PadN option) in the fragmentable part: after the fragment
        # header of every fragment, before UDP in the first one.
        s.setsockopt(socket.IPPROTO_IPV6, getattr(socket, "IPV6_DSTOPTS", 59), bytes([0, 0, 1, 4, 0, 0, 0, 0]))
    s.bind((src, port))
    s.connect((a["dst"], a["port"]))
    s.setblocking(False)
    key = f"[{src}]:{port}" if fam == socket.AF_INET6 else f"{src}:{port}"
    socks[key] = s
    sel.register(s, selectors.EVENT_READ, key)
def payload(key):
    return f"Q {key} ".encode().ljust(a["size"], b"x")
answers, sends = {}, 0
deadline = time.monotonic() + a["timeout"]
next_send = 0.0
while len(answers) < len(socks) and time.monotonic() < deadline:
    if time.monotonic() >= next_send:
        for key, s in socks.items():
            if key not in answers:
                try:
                    s.send(payload(key))
                    sends += 1
                except OSError:
                    pass
        next_send = time.monotonic() + a["resend"]
    for sk, _ in sel.select(max(0.0, min(next_send, deadline) - time.monotonic())):
        try:
            data = sk.fileobj.recv(65535)
        except OSError:
            continue
        name, _, body = data.partition(b" ")
        if body == payload(sk.data):
            answers.setdefault(sk.data, name.decode())
print(json.dumps({"answers": answers, "sends": sends}))
"""


def udp_query(lab, sources, dst=None, port=9000, size=32, timeout=3.0, resend=0.5, host="client", dstopts=False):
    """One datagram from each (src_addr, src_port) to dst:port, resent until answered;
    {"src:port": backend name} of the answers (the payload must come back intact); IPv6 sources
    are written "[src]:port". dstopts (IPv6): each datagram carries a Destination Options header."""
    arg = json.dumps({"from": [list(s) for s in sources], "dst": dst or lab.vip, "port": port, "size": size,
                      "timeout": timeout, "resend": resend, "dstopts": dstopts})
    r = lab.run(host, [sys.executable, "-c", UDP_QUERY, arg], timeout=timeout + 10)
    return json.loads(r.stdout)["answers"]


def start_hold(lab, conns, seconds, dst=None, port=80, host="client", src=None, stall=3.0,
               timeout=3.0):
    """Open `conns` long-lived connections (GET /hold/seconds); job.wait_event("connected") once
    every one has received data, job.result(): {"conns", "ok", "reset", "states", "by_backend", "details"}."""
    args = ["hold", "--host", dst or lab.vip, "--port", port, "--conns", conns,
            "--seconds", seconds, "--stall", stall, "--timeout", timeout]
    if src:
        args += ["--src", src]
    return _job(lab, host, args, conns * timeout + seconds + stall + 10, "client-hold")


if __name__ == "__main__":
    main()

"""Backend servers for the lab, and the helpers that start them in a backend namespace.

Run as a script inside a namespace (standard library only):
    python3 servers.py --name be1 [--http-port 80] [--udp-port 9000] [--sink-port 81]
                       [--status 200] [--fail-file PATH] [--ipv6]
  HTTP  GET /         -> body = the backend's name
        GET /bytes/N  -> N bytes of pattern.chunks(N) (header X-Backend names the backend)
        GET /hold/S   -> streams one byte every 100 ms for S seconds, then closes
        every response is 500 when --status 500 is given or while --fail-file exists.
  UDP   port 9000: replies "<name> <payload>" from the address the probe was sent to.
  TCP   port 81: reads until EOF, answers "<sha256 hex> <count> <name>\\n".
All sockets bind 0.0.0.0: the VIP is on lo, so TCP answers from the VIP; UDP replies set
their source with IP_PKTINFO, as a DSR backend must. With --ipv6 each server also listens on ::
(IPv6 only, same port and behaviour; UDP replies set their source with IPV6_PKTINFO).
"""

import argparse
import hashlib
import http.server
import os
import signal
import socket
import socketserver
import struct
import sys
import threading
import time

try:
    from . import pattern
except ImportError:  # run as a script: this directory is sys.path[0]
    import pattern

IP_PKTINFO = 8  # <linux/in.h>; the socket module does not export it
ANY = {socket.AF_INET: "0.0.0.0", socket.AF_INET6: "::"}
HERE = os.path.dirname(os.path.abspath(__file__))
MAX_BYTES = 1 << 30
MAX_HOLD = 600


# ----------------------------------------------------------------------------- servers

def _server_class(base, family):
    """base (a socketserver TCP server class) listening on `family`; IPv6 sockets are v6-only, so
    the IPv4 server on the same port keeps its own socket."""
    class Server(base):
        address_family = family
        request_queue_size = 1024
        daemon_threads = True
        allow_reuse_address = True

        def server_bind(self):
            if family == socket.AF_INET6:
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            super().server_bind()

    return Server


def make_http_server(name, port, status, fail_file, family=socket.AF_INET):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"
        server_version = "dsrlb-lab"
        timeout = 60

        def log_message(self, fmt, *args):
            pass

        def _send(self, code, body, ctype="text/plain", length=None):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("X-Backend", name)
            if length is not None:
                self.send_header("Content-Length", str(length))
            self.send_header("Connection", "close")
            self.end_headers()
            if body:
                self.wfile.write(body)

        def do_GET(self):
            failing = status != 200 or (fail_file and os.path.exists(fail_file))
            if failing:
                code = status if status != 200 else 500
                self._send(code, b"fail " + name.encode() + b"\n", length=len(name) + 6)
                return
            path = self.path.split("?", 1)[0]
            parts = [p for p in path.split("/") if p]
            try:
                if not parts:
                    body = name.encode()
                    self._send(200, body, length=len(body))
                elif parts[0] == "bytes" and len(parts) == 2:
                    n = int(parts[1])
                    if not 0 <= n <= MAX_BYTES:
                        raise ValueError(n)
                    self._send(200, b"", "application/octet-stream", length=n)
                    for chunk in pattern.chunks(n):
                        self.wfile.write(chunk)
                elif parts[0] == "hold" and len(parts) == 2:
                    secs = float(parts[1])
                    if not 0 <= secs <= MAX_HOLD:
                        raise ValueError(secs)
                    ticks = int(round(secs * 10))
                    self._send(200, b"", "application/octet-stream", length=ticks)
                    start = time.monotonic()
                    for i in range(ticks):
                        self.wfile.write(b".")
                        self.wfile.flush()
                        delay = start + (i + 1) * 0.1 - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                else:
                    self._send(404, b"not found\n", length=10)
            except ValueError:
                self._send(400, b"bad request\n", length=12)
            except OSError:
                pass  # the client went away

    return _server_class(http.server.ThreadingHTTPServer, family)((ANY[family], port), Handler)


def make_sink_server(name, port, family=socket.AF_INET):
    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            sock = self.request
            sock.settimeout(120)
            h = hashlib.sha256()
            count = 0
            try:
                while True:
                    buf = sock.recv(1 << 16)
                    if not buf:
                        break
                    h.update(buf)
                    count += len(buf)
                sock.sendall(f"{h.hexdigest()} {count} {name}\n".encode())
            except OSError:
                pass

    return _server_class(socketserver.ThreadingTCPServer, family)((ANY[family], port), Handler)


def _pktinfo(family, anc):
    """The reply's source-address control message: the address the datagram was sent to."""
    for level, typ, cdata in anc:
        if family == socket.AF_INET and level == socket.IPPROTO_IP and typ == IP_PKTINFO and len(cdata) >= 12:
            # struct in_pktinfo { ifindex; spec_dst; addr }
            return [(level, typ, struct.pack("=I4s4s", 0, cdata[8:12], b"\0\0\0\0"))]
        if family == socket.AF_INET6 and level == socket.IPPROTO_IPV6 and typ == socket.IPV6_PKTINFO \
                and len(cdata) >= 20:
            # struct in6_pktinfo { addr; ifindex }: the ifindex 0 lets the route pick the interface
            return [(level, typ, cdata[:16] + b"\0\0\0\0")]
    return []


# The echo's receive buffer: the probes of a fault test reach one backend at up to 6000 datagrams/s, and
# this process is not real-time. With the default buffer (208 KiB, about 80 ms of them) a stall of the
# echo thread on a busy machine dropped probes here (UdpRcvbufErrors in the backend's namespace), which
# a test then counted as the balancer's loss. 8 MiB holds seconds of them.
ECHO_RCVBUF = 8 << 20
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)


def udp_echo(name, port, family=socket.AF_INET):
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, ECHO_RCVBUF)  # as root: past rmem_max
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, ECHO_RCVBUF)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
    else:
        sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    sock.bind((ANY[family], port))
    prefix = name.encode() + b" "

    def loop():
        while True:
            try:
                data, anc, _flags, addr = sock.recvmsg(65535, socket.CMSG_SPACE(20))
            except OSError:
                continue
            try:
                sock.sendmsg([prefix + data], _pktinfo(family, anc), 0, addr)
            except OSError:
                pass

    threading.Thread(target=loop, daemon=True).start()
    return sock


def serve(args):
    servers = []
    families = [socket.AF_INET] + ([socket.AF_INET6] if args.ipv6 else [])
    for family in families:
        if args.http_port:
            servers.append(make_http_server(args.name, args.http_port, args.status, args.fail_file, family))
        if args.sink_port:
            servers.append(make_sink_server(args.name, args.sink_port, family))
        if args.udp_port:
            udp_echo(args.name, args.udp_port, family)
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"servers {args.name} ready", file=sys.stderr, flush=True)
    while not stop.wait(3600):
        pass
    # Nothing to flush: leave at once instead of waiting for serve_forever's poll interval.
    os._exit(0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True)
    ap.add_argument("--http-port", type=int, default=80)
    ap.add_argument("--udp-port", type=int, default=9000)
    ap.add_argument("--sink-port", type=int, default=81)
    ap.add_argument("--status", type=int, default=200)
    ap.add_argument("--fail-file")
    ap.add_argument("--ipv6", action="store_true", help="also listen on IPv6 (::)")
    serve(ap.parse_args(argv))


# ----------------------------------------------------------------------------- harness side

class BackendServers:
    """The server process of one backend, started by start_servers()."""

    def __init__(self, lab, host, proc, ports, fail_file):
        self.lab = lab
        self.host = host
        self.proc = proc
        self.ports = ports  # {"tcp": [...], "udp": [...]}
        self.fail_file = fail_file

    def set_failing(self, failing=True):
        """Make every HTTP answer 500 (True) or normal again (False), without a restart."""
        if failing:
            with open(self.fail_file, "w") as f:
                f.write("fail\n")
        elif os.path.exists(self.fail_file):
            os.unlink(self.fail_file)

    def stop(self, timeout=5):
        return self.lab.stop(self.proc, timeout=timeout)

    def running(self):
        return self.proc.poll() is None

    def wait_ready(self, timeout=5):
        wait_listening(self.lab, self.host, tcp=self.ports["tcp"], udp=self.ports["udp"],
                       timeout=timeout, proc=self.proc)
        return self


def listening(lab, host, family=4):
    """(tcp ports in LISTEN, udp ports bound) of one address family in the host's namespace."""
    out = lab.run(host, ["ss", "-Hlntu", f"-{family}"], timeout=5).stdout
    tcp, udp = set(), set()
    for line in out.splitlines():
        f = line.split()
        if len(f) < 5:
            continue
        port = f[4].rsplit(":", 1)[-1]
        if not port.isdigit():
            continue
        (tcp if f[0] == "tcp" else udp).add(int(port))
    return tcp, udp


def wait_listening(lab, host, tcp=(), udp=(), timeout=5, proc=None):
    from .lab import LabError, wait_for

    def ready():
        if proc is not None and proc.poll() is not None:
            raise LabError(f"server on {host} exited with {proc.returncode}:\n"
                           + lab.log_tail(f"{host}-servers"))
        for family in (4, 6) if lab.topo.get("ipv6") else (4,):
            t, u = listening(lab, host, family)
            if not (set(tcp) <= t and set(udp) <= u):
                return False
        return True

    wait_for(ready, timeout, what=f"{host} listening on tcp {sorted(tcp)} udp {sorted(udp)}",
             ignore=())


def start_servers(lab, host, http_port=80, udp_port=9000, sink_port=81, status=200,
                  wait=True, timeout=5):
    """Start the servers in `host`'s namespace (on IPv6 too in a lab with IPv6); with wait, return
    once every port listens."""
    fail_file = os.path.join(lab.tmpdir, f"{host}.fail")
    cmd = [sys.executable, os.path.join(HERE, "servers.py"), "--name", host,
           "--http-port", str(http_port), "--udp-port", str(udp_port),
           "--sink-port", str(sink_port), "--status", str(status), "--fail-file", fail_file]
    if lab.topo.get("ipv6"):
        cmd.append("--ipv6")
    proc = lab.popen(host, cmd, log=f"{host}-servers")
    ports = {"tcp": [p for p in (http_port, sink_port) if p], "udp": [udp_port] if udp_port else []}
    srv = BackendServers(lab, host, proc, ports, fail_file)
    if wait:
        srv.wait_ready(timeout)
    return srv


def start_all(lab, hosts=None, timeout=5, **kw):
    """Start servers on several backends at once (default: all but the spare); {host: BackendServers}."""
    if hosts is None:
        hosts = lab.backends[:3]
    started = {h: start_servers(lab, h, wait=False, **kw) for h in hosts}
    for srv in started.values():
        srv.wait_ready(timeout)
    return started


if __name__ == "__main__":
    main()

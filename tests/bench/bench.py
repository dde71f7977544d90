#!/usr/bin/python3
"""make bench: lbd's forwarding rate, CPU cost, latency and memory, measured in the network-namespace lab
against the kernel reference forwarder ../shared/anchors/nft-dsr.sh, in the same run and the same balancer
namespace, for IPv4 and for IPv6 (method: that directory's README.md; results and method:
docs/measurements.md).

    bench.py [--runs N] [--window S] [--warmup S] [--probes N] [--flows N] [--ring 2,3] [--family 4,6]
             [--frame6 BYTES] [--json PATH]

  throughput  a generator namespace (192.0.2.50, 2001:db8::50) sends UDP frames to VIP:9000 over 6 source
              ports (trafgen -P 1, pinned to CPU 0; lbd pinned to CPU 1); the backends count them with an
              nftables netdev ingress counter that drops them. Per forwarder: frames/s at the backends
              and whole-machine busy CPU time (/proc/stat) per delivered frame, the median of N windows
              after a warm-up; rounds interleave the forwarders and the families so drift hits all alike.
  latency     100 UDP probes/s from the client namespace through the router to the VIP, answered by a
              UDP echo on the backends (the counting rule leaves the client's address alone): p50, p99
              of all probes of N rounds that interleave the forwarders (lbd still on CPU 1).
  memory      lbd's table filled with distinct flows (trafgen over 256 source addresses x ports
              1024..65534), then VmRSS of the lbd process and flow_bytes from `lbctl status --json`.

The two families, each measured against its own reference run (nft-dsr.sh up with that family's VIP):
  IPv4  192.0.2.100; frames of 64 bytes handed to the device (no FCS): 14 Ethernet + 20 IPv4 + 8 UDP +
        22 payload. lbd runs with the IPv4 service alone, so its table is IPv4-only (32-byte entries).
        Fill sources 203.0.113.0-255. Probes from 198.51.100.10.
  IPv6  2001:db8::100 (the lab with topology(ipv6=True), VIP6 on the backends' lo); frames of 64 bytes
        handed to the device as well, the same size as IPv4's: 14 Ethernet + 40 IPv6 + 8 UDP + 2 payload.
        (The issue's "64-byte UDP payload frames" is read as 64-byte UDP frames; 64 bytes without FCS
        is possible for IPv6 and keeps the per-frame work comparable between the families. --frame6
        sends other sizes, e.g. 84 for IPv4's 22-byte payload or 126 for a 64-byte payload.)
        lbd runs dual-stack, the IPv4 service and an IPv6 one side by side, so its table holds both
        families in 56-byte entries. Fill sources 2001:db8:ff::0-ff. Probes from 2001:db8:1::10.

Bars (reported, not enforced: the exit status is non-zero only when the benchmark itself fails), for each
family against its own reference: frames/s through lbd >= 1.0 x the reference; CPU per delivered frame
<= 1.5 x the reference; probe p50 at most 0.1 ms above the reference and p99 <= 1 ms. Memory: 1 million
IPv4 flows in <= 64 MiB RSS (IPv4-only table), 1 million IPv6 flows in <= 80 MiB RSS (dual-stack table).
Results also go to build/bench.json: forwarders are named reference, lbd-v2, lbd-v3 for IPv4 and the
same with "-ipv6" appended for IPv6.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "lab"))

from lib import servers  # noqa: E402
from lib.lab import (VIP, VIP6, CommandError, Lab, LabError, WaitTimeout, reap_stale,  # noqa: E402
                     topology, v6_of, wait_for)

# The kernel reference lives next to the repository (../shared/anchors from the repo root).
REFERENCE = os.path.normpath(os.path.join(REPO, "..", "shared", "anchors", "nft-dsr.sh"))
GEN = "gen"
GEN_ADDR = "192.0.2.50"
PORT = 9000
SPORTS = (10000, 10005)          # 6 source ports
CLIENT_SRC = "198.51.100.10"     # the latency probe's source: never counted nor dropped at the backends
GEN_CPU, LBD_CPU = 0, 1

# What differs between the address families. "frame" is the bytes handed to the device (no FCS):
# 64 for IPv4 = 14 Ethernet + 20 IPv4 + 8 UDP + 22 payload; 64 for IPv6 too by default (--frame6)
# = 14 Ethernet + 40 IPv6 + 8 UDP + 2 payload. "fill_net": sources of the table fill, its byte
# "fill_byte" counting 0-255.
FAMILIES = {
    4: {"vip": VIP, "gen": GEN_ADDR, "client": CLIENT_SRC, "fill_net": "203.0.113.0", "fill_byte": 3,
        "ip_hdr": 20, "frame": 64, "nft": "ip", "suffix": ""},
    6: {"vip": VIP6, "gen": v6_of(GEN_ADDR), "client": v6_of(CLIENT_SRC), "fill_net": "2001:db8:ff::",
        "fill_byte": 15, "ip_hdr": 40, "frame": 64, "nft": "ip6", "suffix": "-ipv6"},
}
FRAME6_MIN = 14 + 40 + 8         # an IPv6 UDP frame without payload

BARS = {
    "rate_ratio_min": 1.0,       # frames/s lbd / reference
    "cpu_ratio_max": 1.5,        # CPU per frame lbd / reference
    "p50_extra_ms_max": 0.1,     # p50 lbd - p50 reference
    "p99_ms_max": 1.0,
    "rss_mb_max": 64.0,          # MiB of VmRSS with 1e6 IPv4 flows, IPv4-only config (32-byte entries)
    "rss6_mb_max": 80.0,         # MiB of VmRSS with 1e6 IPv6 flows, dual-stack config (56-byte entries)
}


def fname(ring, fam):
    """The name of a forwarder in the results: reference or lbd-vRING, "-ipv6" appended for IPv6."""
    return ("reference" if ring is None else f"lbd-v{ring}") + FAMILIES[fam]["suffix"]


class BenchError(Exception):
    pass


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- machine

def cpu_times():
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest is included in user)
    idle = v[3] + v[4]
    total = sum(v[:8])
    return total - idle, total


def hz():
    return os.sysconf("SC_CLK_TCK")


def rss_breakdown(pid):
    """VmRSS of a process split into packet rings (mappings of a socket), anonymous memory (heap, flow
    table) and files (binary, libraries), in MiB, from /proc/PID/smaps."""
    parts = {"packet_rings_mib": 0, "anonymous_mib": 0, "files_mib": 0}
    name = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            fields = line.split()
            if not fields:
                continue
            if "-" in fields[0] and not fields[0].endswith(":"):
                name = fields[5] if len(fields) > 5 else ""
            elif fields[0] == "Rss:":
                kb = int(fields[1])
                if name.startswith("socket:"):
                    parts["packet_rings_mib"] += kb
                elif name.startswith("/"):
                    parts["files_mib"] += kb
                else:
                    parts["anonymous_mib"] += kb
    return {k: round(v / 1024, 1) for k, v in parts.items()}


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


# ----------------------------------------------------------------------------- the bench

class Bench:
    def __init__(self, lab, args):
        self.lab = lab
        self.args = args
        self.lbd = None          # running lbd Popen
        self.lbd_ring = None
        self.ref_up = False
        self.trafgen = None
        self.backends = lab.active_backends
        self.lb_mac = lab.mac("lb1")
        self.gen_mac = lab.mac(GEN)
        self.be_macs = {b: lab.mac(b) for b in self.backends}
        self.key = lab.keygen()
        self.fams = args.family
        self.vip = {fam: FAMILIES[fam]["vip"] for fam in FAMILIES}

    # --- backends: counting drop rule, echo for the probe
    def setup_backends(self):
        for b in self.backends:
            # One pair of counters for both families: a window has the traffic of one family only.
            rules = ""
            for fam in self.fams:
                f = FAMILIES[fam]
                match = f"{f['nft']} daddr {self.vip[fam]} udp dport {PORT} {f['nft']} saddr != {f['client']}"
                rules += f"""
        {match} ether daddr != {self.be_macs[b]} counter name stray drop
        {match} counter name delivered drop"""
            rules = f"""
table netdev bench {{
    counter delivered {{ }}
    counter stray {{ }}
    chain ingress {{
        type filter hook ingress device "eth0" priority -500; policy accept;{rules}
    }}
}}
"""
            self.lab.run(b, ["nft", "-f", "-"], input=rules, timeout=10)
        servers.start_all(self.lab, self.backends, http_port=0, sink_port=0, udp_port=PORT)
        # The router reaches the VIP at lb1's MAC for both forwarders (nobody answers ARP or NS for it
        # while the reference runs); permanent, so lbd's gratuitous ARPs and unsolicited NAs leave it be.
        for fam in self.fams:
            self.lab.run("router", ["ip", f"-{fam}", "neigh", "replace", self.vip[fam], "lladdr", self.lb_mac,
                                    "dev", "eth0", "nud", "permanent"])
        self.pin_fdb()

    def counters(self):
        """{"delivered": frames, "stray": frames} summed over the backends, and the time of the read."""
        t0 = time.monotonic()
        tot = {"delivered": 0, "stray": 0}
        for b in self.backends:
            out = self.lab.run(b, ["nft", "-j", "list", "counters", "table", "netdev", "bench"], timeout=5).stdout
            for obj in json.loads(out)["nftables"]:
                c = obj.get("counter")
                if c and c.get("name") in tot:
                    tot[c["name"]] += c["packets"]
        return tot, (t0 + time.monotonic()) / 2

    def per_backend(self):
        res = {}
        for b in self.backends:
            out = self.lab.run(b, ["nft", "-j", "list", "counter", "netdev", "bench", "delivered"], timeout=5).stdout
            res[b] = next(o["counter"]["packets"] for o in json.loads(out)["nftables"] if "counter" in o)
        return res

    def pin_fdb(self):
        """Static bridge entries for every MAC on the path: with a learned (or not yet learned) entry the
        bridge floods frames to every port, which the "stray" counter would show."""
        lab = self.lab
        hosts = ["lb1", GEN, "router"] + self.backends
        batch = "".join(f"fdb replace {lab.mac(h)} dev {lab.bridge_port(h)} master static\n" for h in hosts)
        lab.run("br", ["bridge", "-batch", "-"], input=batch, timeout=10)

    # --- forwarders
    def ref_start(self, fam):
        if not os.path.exists(REFERENCE):
            raise BenchError(f"the kernel reference {REFERENCE} is missing (expected at ../shared/anchors/"
                             f"nft-dsr.sh next to the repository)")
        self.lab.run("lb1", ["sh", REFERENCE, "up", "eth0", self.vip[fam], self.lb_mac]
                     + [self.be_macs[b] for b in self.backends], timeout=10)
        self.ref_up = True

    def ref_stop(self):
        if self.ref_up:
            self.lab.run("lb1", ["sh", REFERENCE, "down"], timeout=10)
            self.ref_up = False

    def lbd_config(self, ring, fam):
        """IPv4: the IPv4 service alone (an IPv4-only table of 32-byte entries). IPv6: dual-stack, the
        same IPv4 service and an IPv6 one beside it (56-byte entries for both families)."""
        lines = ["[cluster]", "interface = eth0", f"key_file = {self.key}", f"rx_ring_version = {ring}",
                 "udp_timeout = 1h", "", "[node lb1]", f"address = {self.lab.addr('lb1')}", "priority = 100"]
        for f in (4, 6) if fam == 6 else (4,):
            lines += ["", f"[service bench{FAMILIES[f]['suffix']}]", f"vip = {self.vip[f]}", f"port = {PORT}",
                      "protocol = udp", "check = none"]
            lines += [f"backend = {self.lab.addr_of(b, f)}" for b in self.backends]
        return self.lab.write_config("\n".join(lines) + "\n", name=f"bench-{fname(ring, fam)}.conf")

    def lbd_start(self, ring, fam):
        conf = self.lbd_config(ring, fam)
        lab = self.lab
        cmd = ["taskset", "-c", str(LBD_CPU), lab.bin("lbd"), "-c", conf, "-n", "lb1",
               "--run-dir", lab.run_dir("lb1"), "-f", "--standalone"]
        self.lbd = lab.popen("lb1", cmd, log="lb1-lbd")
        self.lbd_ring = ring

        def ready():
            if self.lbd.poll() is not None:
                raise BenchError(f"lbd exited with {self.lbd.returncode}:\n{lab.log_tail('lb1-lbd')}")
            st = lab.status("lb1")["lbd"]
            bes = [b for s in st.get("services", []) for b in s.get("backends", [])]
            return st if st.get("active") and len(bes) == len(self.backends) * (2 if fam == 6 else 1) and \
                all(b.get("mac") for b in bes) else None

        try:
            wait_for(ready, 10, interval=0.05, what="lbd active with every backend's MAC",
                     ignore=(CommandError, ValueError, KeyError))
        except WaitTimeout as e:
            raise BenchError(f"{e}\n{lab.log_tail('lb1-lbd')}") from None

    def each_forwarder(self, fn):
        """Per family, brings up the reference and then lbd with each RX ring version, and calls
        fn(name, family, ring) while it is up (ring None: the reference)."""
        for fam in self.fams:
            for ring in [None] + self.args.ring:
                if ring is None:
                    self.ref_start(fam)
                else:
                    self.lbd_start(ring, fam)
                try:
                    fn(fname(ring, fam), fam, ring)
                finally:
                    if ring is None:
                        self.ref_stop()
                    else:
                        self.lbd_stop()

    def lbd_status(self):
        return self.lab.status("lb1")["lbd"]

    def lbd_stop(self):
        if self.lbd is not None:
            rc = self.lab.stop(self.lbd, timeout=5)
            self.lbd = None
            if rc not in (0, -signal.SIGTERM):
                raise BenchError(f"lbd exited with {rc} on SIGTERM:\n{self.lab.log_tail('lb1-lbd')}")

    # --- generator
    def trafgen_conf(self, kind, fam):
        f = FAMILIES[fam]
        if kind == "fill":
            # The source's last byte counts 0..255, sport 1024..65534 (64511 values, odd): 16.5 million
            # distinct pairs in turn.
            src, sport = f"{f['fill_net']}, sa[{f['fill_byte']}]=dinc()", "dinc(1024, 65534)"
        else:
            src, sport = f["gen"], f"dinc({SPORTS[0]}, {SPORTS[1]})"
        if fam == 4:
            eth = f"eth(da={self.lb_mac}, sa={self.gen_mac})"
            ip = f"ipv4(sa={src}, da={self.vip[4]}, ttl=64)"
        else:
            # trafgen 0.6.8 leaves the EtherType 0 before ipv6() unless told.
            eth = f"eth(da={self.lb_mac}, sa={self.gen_mac}, type=0x86dd)"
            ip = f"ipv6(sa={src}, da={self.vip[6]}, hoplimit=64)"
        udp = f"udp(sp={sport}, dp={PORT})"
        payload = f["frame"] - 14 - f["ip_hdr"] - 8
        text = f"{{ {eth}, {ip}, {udp}, fill(0x00, {payload}) }}\n"
        path = os.path.join(self.lab.tmpdir, "conf", f"trafgen-{kind}{f['suffix']}.cfg")
        with open(path, "w") as f:
            f.write(text)
        return path

    def trafgen_start(self, kind, fam):
        cmd = ["taskset", "-c", str(GEN_CPU), "trafgen", "-o", "eth0", "-P", "1", "--no-sock-mem", "-Q",
               "-i", self.trafgen_conf(kind, fam)]
        self.trafgen = self.lab.popen(GEN, cmd, log=f"{GEN}-trafgen")
        time.sleep(0.2)
        if self.trafgen.poll() is not None:
            raise BenchError(f"trafgen exited with {self.trafgen.returncode}:\n"
                             f"{self.lab.log_tail(GEN + '-trafgen')}")

    def trafgen_stop(self):
        if self.trafgen is not None:
            if self.trafgen.poll() is not None:
                raise BenchError(f"trafgen died with {self.trafgen.returncode}:\n"
                                 f"{self.lab.log_tail(GEN + '-trafgen')}")
            self.lab.stop(self.trafgen, sig=signal.SIGINT, timeout=5)
            self.trafgen = None

    # --- measurements
    def window(self, name, fam):
        """One throughput window of the forwarder that is up now."""
        a = self.args
        lbd_keys = ("rx_frames", "forwarded", "ring_drops", "tx_ring_full", "tx_wrong_format", "tx_kicks",
                    "flow_table_full", "drop_no_backend")
        self.trafgen_start("rate", fam)
        try:
            time.sleep(a.warmup)
            l0 = self.lbd_status()["counters"] if self.lbd else None
            c0, tc0 = self.counters()
            s0, t0 = cpu_times(), time.monotonic()
            time.sleep(a.window)
            s1, t1 = cpu_times(), time.monotonic()
            c1, tc1 = self.counters()
            l1 = self.lbd_status()["counters"] if self.lbd else None
        finally:
            self.trafgen_stop()
        frames = c1["delivered"] - c0["delivered"]
        rate = frames / (tc1 - tc0)
        busy_s = (s1[0] - s0[0]) / hz()
        total_s = (s1[1] - s0[1]) / hz()
        frames_cpu = rate * (t1 - t0)  # frames delivered while /proc/stat was being measured
        res = {"fps": round(rate), "frames": frames, "stray": c1["stray"] - c0["stray"],
               "busy_cpu_s": round(busy_s, 3), "cpus_busy": round(busy_s / (t1 - t0), 3),
               "idle_pct": round(100 * (1 - busy_s / total_s), 1) if total_s else None,
               "cpu_us_per_frame": round(busy_s / frames_cpu * 1e6, 3) if frames_cpu else None}
        extra = ""
        if l0 is not None:
            # lbd's own counters over the same window (a little wider: read just outside it).
            res["lbd_counters"] = {k: l1.get(k, 0) - l0.get(k, 0) for k in lbd_keys}
            lc = res["lbd_counters"]
            extra = (f"; lbd rx {lc['rx_frames']:,} fwd {lc['forwarded']:,} rx-ring drops {lc['ring_drops']:,} "
                     f"tx-ring full {lc['tx_ring_full']:,} kicks {lc['tx_kicks']:,}")
        log(f"  {name}: {res['fps']:,} frames/s, {res['cpu_us_per_frame']} us CPU/frame, "
            f"{res['cpus_busy']} CPUs busy, stray {res['stray']}{extra}")
        return res

    def background(self, secs=2.0):
        """Busy CPUs of the machine with no benchmark traffic (other work on the host)."""
        s0, t0 = cpu_times(), time.monotonic()
        time.sleep(secs)
        s1, t1 = cpu_times(), time.monotonic()
        return round((s1[0] - s0[0]) / hz() / (t1 - t0), 3)

    def probe(self, name, fam, count):
        """One round of `count` probes; the raw round trips (µs) and the number lost."""
        cmd = [sys.executable, os.path.join(HERE, "probe.py"), "--host", self.vip[fam], "--port", str(PORT),
               "--src", FAMILIES[fam]["client"], "--count", str(count), "--interval", "0.01"]
        r = self.lab.run("client", cmd, timeout=count * 0.01 + 20)
        res = json.loads(r.stdout)
        if len(res["rtt_us"]) < max(10, count // 2):
            raise BenchError(f"{name}: only {len(res['rtt_us'])} of {count} probes answered ({res['lost']} lost)")
        log(f"  {name}: probe p50 {pct(sorted(res['rtt_us']), 50) / 1000:.4f} ms, lost {res['lost']}")
        return res

    def fill(self, name, fam):
        """Fill the table of the running lbd with distinct flows; VmRSS and flow_bytes."""
        a = self.args
        st = self.lbd_status()
        if st["flow_max"] < a.flows:
            raise BenchError(f"lbd's flow_max {st['flow_max']} is below {a.flows}")
        pid = self.lbd.pid
        ps = proc_status(pid)
        if ps.get("Name") != "lbd":
            raise BenchError(f"pid {pid} is {ps.get('Name')!r}, not lbd")
        rss_before = int(ps["VmRSS"].split()[0]) * 1024
        self.trafgen_start("fill", fam)
        t0 = time.monotonic()
        try:
            st = wait_for(lambda: (lambda s: s if s["flows"] >= a.flows else None)(self.lbd_status()),
                          a.fill_timeout, interval=0.25, what=f"{a.flows} flows in lbd's table",
                          ignore=(CommandError, ValueError))
        except WaitTimeout as e:
            raise BenchError(f"{name}: {e}") from None
        finally:
            self.trafgen_stop()
        secs = time.monotonic() - t0
        time.sleep(0.3)
        st = self.lbd_status()
        ps = proc_status(pid)
        rss = int(ps["VmRSS"].split()[0]) * 1024
        res = {"flows": st["flows"], "flow_max": st["flow_max"], "flow_bytes": st["flow_bytes"],
               "rss_bytes": rss, "rss_mb": round(rss / 2**20, 1), "rss_before_fill_mb": round(rss_before / 2**20, 1),
               "hwm_mb": round(int(ps["VmHWM"].split()[0]) / 1024, 1), "fill_seconds": round(secs, 1),
               "rss_parts": rss_breakdown(pid), "counters": st.get("counters", {})}
        log(f"  {name}: {res['flows']:,} flows, VmRSS {res['rss_mb']} MiB (before fill "
            f"{res['rss_before_fill_mb']} MiB; {res['rss_parts']}), flow_bytes {res['flow_bytes']}")
        return res


def pct(sorted_vals, p):
    """Nearest-rank percentile."""
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def median_of(windows, key):
    vals = [w[key] for w in windows if w.get(key) is not None]
    return statistics.median(vals) if vals else None


# ----------------------------------------------------------------------------- run

def preflight(args):
    if os.geteuid() != 0:
        raise BenchError("the bench needs root (network namespaces)")
    for tool in ("trafgen", "nft", "taskset", "ip"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            raise BenchError(f"{tool} is not installed (make deps installs netsniff-ng, nftables, ...)")
    if not os.path.exists(REFERENCE):
        raise BenchError(f"the kernel reference {REFERENCE} is missing: it is expected at "
                         f"../shared/anchors/nft-dsr.sh relative to the repository root")
    for b in ("lbd", "lbctl"):
        if not os.access(os.path.join(args.build, b), os.X_OK):
            raise BenchError(f"{args.build}/{b} is missing (make all)")
    ncpu = os.cpu_count()
    if ncpu < 2:
        raise BenchError(f"the bench pins the generator and lbd to different CPUs; this machine has {ncpu}")


def run(args):
    fams, rings = args.family, args.ring
    topo = topology(backends=args.backends, spares=0, lbs=1, client_addrs=1, lan_hosts={GEN: GEN_ADDR},
                    ipv6=6 in fams)
    names = [fname(ring, fam) for fam in fams for ring in [None] + rings]
    git = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"], capture_output=True, text=True)
    result = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "commit": git.stdout.strip() or None,
              "machine": {"cpus": os.cpu_count(), "kernel": os.uname().release,
                          "loadavg_start": open("/proc/loadavg").read().split()[:3]},
              "params": {"runs": args.runs, "window_s": args.window, "warmup_s": args.warmup, "families": fams,
                         "frame_bytes": FAMILIES[4]["frame"], "frame_bytes_ipv6": FAMILIES[6]["frame"],
                         "source_ports": SPORTS[1] - SPORTS[0] + 1,
                         "backends": args.backends, "probes": args.probes, "flows": args.flows,
                         "generator": "trafgen -P 1 on CPU 0", "lbd_cpu": LBD_CPU},
              "vips": {str(fam): FAMILIES[fam]["vip"] for fam in FAMILIES},
              "throughput": {n: {"windows": []} for n in names}, "latency": {}, "memory": {}}
    t_start = time.monotonic()
    with Lab(topo, build_dir=args.build) as lab:
        log(f"lab {lab.prefix} built in {lab.build_seconds}s")
        b = Bench(lab, args)
        b.setup_backends()
        result["machine"]["background_cpus_busy"] = b.background()
        log(f"background load: {result['machine']['background_cpus_busy']} CPUs busy without bench traffic")
        try:
            # Throughput: rounds interleave the forwarders (and the families).
            for r in range(args.runs):
                log(f"throughput round {r + 1}/{args.runs}")
                b.each_forwarder(lambda n, fam, ring: result["throughput"][n]["windows"].append(b.window(n, fam)))
            log(f"frames per backend (cumulative): {b.per_backend()}")
            # Latency (no load): rounds interleave the forwarders, as for throughput; then the table fill.
            log("latency probes")
            per_round = -(-args.probes // args.runs)
            lat = {n: [] for n in names}
            for r in range(args.runs):
                log(f"latency round {r + 1}/{args.runs}")

                def probe(n, fam, ring, last=r == args.runs - 1):
                    lat[n].append(b.probe(n, fam, per_round))
                    if ring is not None and args.flows and last:
                        log(f"table fill, {n}")
                        result["memory"][n] = b.fill(n, fam)
                b.each_forwarder(probe)
            for n, rounds in lat.items():
                result["latency"][n] = latency_summary(rounds)
        except BaseException:
            for fn in (b.trafgen_stop, b.lbd_stop, b.ref_stop):
                try:
                    fn()
                except Exception:
                    pass
            raise
    for n in names:
        t = result["throughput"][n]
        for key in ("fps", "cpu_us_per_frame", "cpus_busy", "stray"):
            t[key] = median_of(t["windows"], key)
    result["seconds"] = round(time.monotonic() - t_start, 1)
    result["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    result["verdicts"] = verdicts(result, fams, rings)
    return result


def latency_summary(rounds):
    """Pools the probe rounds of one forwarder: p50/p99 of all round trips, and each round's p50."""
    rtts = sorted(x for r in rounds for x in r["rtt_us"])
    user = sorted(x for r in rounds for x in r["user_rtt_us"])
    return {"probes": sum(r["sent"] for r in rounds),
            "lost": sum(r["lost"] for r in rounds),
            "p50_ms": round(pct(rtts, 50) / 1000, 4), "p99_ms": round(pct(rtts, 99) / 1000, 4),
            "max_ms": round(rtts[-1] / 1000, 4),
            "user_p50_ms": round(pct(user, 50) / 1000, 4), "user_p99_ms": round(pct(user, 99) / 1000, 4),
            "round_p50_ms": [round(pct(sorted(r["rtt_us"]), 50) / 1000, 4) for r in rounds]}


def rss_bar(fam):
    return BARS["rss_mb_max" if fam == 4 else "rss6_mb_max"]


def verdicts(res, fams, rings):
    out = {}
    for fam in fams:
        out.update(family_verdicts(res, fam, rings))
    return out


def family_verdicts(res, fam, rings):
    out = {}
    ref_t = res["throughput"][fname(None, fam)]
    ref_l = res["latency"].get(fname(None, fam), {})
    for ring in rings:
        n = fname(ring, fam)
        t = res["throughput"][n]
        lat = res["latency"].get(n, {})
        mem = res["memory"].get(n)
        v = {}
        if ref_t["fps"] and t["fps"] is not None:
            ratio = t["fps"] / ref_t["fps"]
            v["rate"] = {"ratio": round(ratio, 3), "bar": f">= {BARS['rate_ratio_min']}",
                         "pass": ratio >= BARS["rate_ratio_min"]}
        if ref_t["cpu_us_per_frame"] and t["cpu_us_per_frame"]:
            ratio = t["cpu_us_per_frame"] / ref_t["cpu_us_per_frame"]
            v["cpu"] = {"ratio": round(ratio, 3), "bar": f"<= {BARS['cpu_ratio_max']}",
                        "pass": ratio <= BARS["cpu_ratio_max"]}
        if lat and ref_l:
            extra = lat["p50_ms"] - ref_l["p50_ms"]
            v["p50"] = {"extra_ms": round(extra, 4), "bar": f"<= ref + {BARS['p50_extra_ms_max']} ms",
                        "pass": extra <= BARS["p50_extra_ms_max"]}
            v["p99"] = {"ms": lat["p99_ms"], "bar": f"<= {BARS['p99_ms_max']} ms",
                        "pass": lat["p99_ms"] <= BARS["p99_ms_max"]}
        if mem:
            # 64 (80) MB read as MiB (the larger reading); the table shows MiB.
            v["rss"] = {"mib": mem["rss_mb"], "flows": mem["flows"], "bar": f"<= {rss_bar(fam):g} MiB",
                        "pass": mem["flows"] >= 1_000_000 and mem["rss_mb"] <= rss_bar(fam)}
        out[n] = v
    return out


def fmt_int(x):
    return "-" if x is None else f"{x:,.0f}"


def fmt(x, nd=2):
    return "-" if x is None else f"{x:.{nd}f}"


def report_table(res, fam, rings):
    """The table of one address family, as lines."""
    ref_t = res["throughput"][fname(None, fam)]
    ref_l = res["latency"].get(fname(None, fam), {})
    rows = [("", "reference (nft-dsr.sh)") + tuple(f"lbd rx_ring_version={r}" for r in rings)]
    lbd = [res["throughput"][fname(r, fam)] for r in rings]
    lat = [res["latency"].get(fname(r, fam), {}) for r in rings]
    mem = [res["memory"].get(fname(r, fam)) for r in rings]
    ver = [res["verdicts"][fname(r, fam)] for r in rings]

    def pf(v, key, show):
        if key not in v:
            return "-"
        return f"{show(v[key])} {'PASS' if v[key]['pass'] else 'FAIL'}"

    rows.append(("frames/s at backends (median)", fmt_int(ref_t["fps"])) + tuple(fmt_int(t["fps"]) for t in lbd))
    rows.append(("  ratio to reference (bar >= 1.0)", "1.00")
                + tuple(pf(v, "rate", lambda x: f"{x['ratio']:.2f}") for v in ver))
    rows.append(("CPU us per delivered frame", fmt(ref_t["cpu_us_per_frame"]))
                + tuple(fmt(t["cpu_us_per_frame"]) for t in lbd))
    rows.append(("  ratio to reference (bar <= 1.5)", "1.00")
                + tuple(pf(v, "cpu", lambda x: f"{x['ratio']:.2f}") for v in ver))
    rows.append(("CPUs busy (of 2)", fmt(ref_t["cpus_busy"])) + tuple(fmt(t["cpus_busy"]) for t in lbd))
    rows.append(("probe RTT p50 ms (bar <= ref + 0.1)", fmt(ref_l.get("p50_ms"), 3))
                + tuple(pf(v, "p50", lambda x, l=l: f"{l['p50_ms']:.3f}") if l else "-"
                        for v, l in zip(ver, lat)))
    rows.append(("probe RTT p99 ms (bar <= 1.0)", fmt(ref_l.get("p99_ms"), 3))
                + tuple(pf(v, "p99", lambda x: f"{x['ms']:.3f}") for v in ver))
    rows.append(("probes lost", str(ref_l.get("lost", "-"))) + tuple(str(l.get("lost", "-")) for l in lat))
    rows.append(("  p50 ms of each round", " ".join(f"{x:.3f}" for x in ref_l.get("round_p50_ms", [])) or "-")
                + tuple(" ".join(f"{x:.3f}" for x in l.get("round_p50_ms", [])) or "-" for l in lat))
    def drop_pct(t, key):
        vals = []
        for w in t["windows"]:
            c = w.get("lbd_counters")
            if c and c["rx_frames"]:
                den = c["rx_frames"] + (c["ring_drops"] if key == "ring_drops" else 0)
                vals.append(100 * c[key] / den)
        return f"{statistics.median(vals):.1f}%" if vals else "-"

    rows.append(("lbd: TX ring full, % of frames received", "n/a") + tuple(drop_pct(t, "tx_ring_full") for t in lbd))
    rows.append(("lbd: RX ring drops, % of frames arriving", "n/a") + tuple(drop_pct(t, "ring_drops") for t in lbd))
    rows.append((f"VmRSS MiB with 1e6 flows (bar <= {rss_bar(fam):g})", "n/a")
                + tuple(pf(v, "rss", lambda x: f"{x['mib']:.1f}") for v in ver))
    rows.append(("  flows in table / flow_bytes", "n/a")
                + tuple(f"{m['flows']:,} / {m['flow_bytes']}" if m else "-" for m in mem))
    rows.append(("  VmRSS MiB before the fill", "n/a")
                + tuple(fmt(m["rss_before_fill_mb"], 1) if m else "-" for m in mem))
    rows.append(("  of it: packet rings / anon / files MiB", "n/a")
                + tuple("{packet_rings_mib:.1f} / {anonymous_mib:.1f} / {files_mib:.1f}".format(**m["rss_parts"])
                        if m else "-" for m in mem))
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r)) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return lines


def report(res, fams, rings):
    m = res["machine"]
    head = (f"dsrlb forwarding benchmark: {m['cpus']} CPUs, Linux {m['kernel']}, {res['params']['runs']} x "
            f"{res['params']['window_s']} s windows (median), trafgen -P 1 on CPU "
            f"{GEN_CPU}, lbd on CPU {LBD_CPU}; load average at start {' '.join(m['loadavg_start'])}, "
            f"background {m.get('background_cpus_busy')} CPUs busy")
    print(head)
    titles = {4: f"IPv4: {FAMILIES[4]['frame']}-byte UDP frames to {res['vips']['4']}:{PORT}; lbd with the IPv4 "
                 f"service alone (32-byte table entries)",
              6: f"IPv6: {FAMILIES[6]['frame']}-byte UDP frames ({FAMILIES[6]['frame'] - FRAME6_MIN}-byte payload) "
                 f"to [{res['vips']['6']}]:{PORT}; lbd dual-stack (56-byte table entries)"}
    for fam in fams:
        print(f"\n{titles[fam]}")
        print("\n".join(report_table(res, fam, rings)))
    print()
    if (m.get("background_cpus_busy") or 0) > 0.1:
        print(f"WARNING other work kept {m['background_cpus_busy']} CPUs busy before the bench: rates and CPU "
              f"per frame are disturbed (the ratios less so: the forwarders are measured in alternation)")
    for n, mem in res["memory"].items():
        bar = rss_bar(6 if n.endswith(FAMILIES[6]["suffix"]) else 4)
        if mem and bar * 1e6 / 2**20 < mem["rss_mb"] <= bar:
            print(f"NOTE {n}: {mem['rss_mb']} MiB passes {bar:g} MiB but not {bar:g} MB (10^6 bytes)")
    for n, t in res["throughput"].items():
        if t.get("stray"):
            print(f"WARNING {n}: {t['stray']} frames per window reached a backend not addressed to it (flooding)")
    print(f"results in {res.get('json_path')}; took {res['seconds']} s")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="throughput windows per forwarder (median)")
    ap.add_argument("--window", type=float, default=4.0, help="seconds per throughput window")
    ap.add_argument("--warmup", type=float, default=1.5, help="seconds of traffic before each window")
    ap.add_argument("--probes", type=int, default=900,
                    help="latency probes per forwarder (100/s), split over --runs rounds")
    ap.add_argument("--flows", type=int, default=1_000_000, help="flows for the memory test (0: skip)")
    ap.add_argument("--fill-timeout", type=float, default=40.0)
    ap.add_argument("--backends", type=int, default=3)
    ap.add_argument("--ring", default="2,3", help="lbd rx_ring_version values to measure")
    ap.add_argument("--family", default="4,6", help="address families to measure: 4, 6 or 4,6")
    ap.add_argument("--frame6", type=int, default=FAMILIES[6]["frame"],
                    help=f"bytes of each IPv6 frame handed to the device ({FRAME6_MIN}..1514; "
                         f"default {FAMILIES[6]['frame']}: a {FAMILIES[6]['frame'] - FRAME6_MIN}-byte payload)")
    ap.add_argument("--json", default=os.path.join(REPO, "build", "bench.json"))
    ap.add_argument("--build", default=os.environ.get("DSRLB_BUILD", os.path.join(REPO, "build")),
                    help="directory with lbd and lbctl (default build/, or $DSRLB_BUILD)")
    args = ap.parse_args(argv)
    try:
        args.ring = [int(x) for x in args.ring.split(",")]
    except ValueError:
        ap.error("--ring: comma-separated 2 and/or 3")
    if not set(args.ring) <= {2, 3} or not args.ring:
        ap.error("--ring: comma-separated 2 and/or 3")
    try:
        args.family = [int(x) for x in args.family.split(",")]
    except ValueError:
        ap.error("--family: 4, 6 or 4,6")
    if not set(args.family) <= {4, 6} or not args.family or len(set(args.family)) < len(args.family):
        ap.error("--family: 4, 6 or 4,6")
    if not FRAME6_MIN <= args.frame6 <= 1514:
        ap.error(f"--frame6: {FRAME6_MIN}..1514 bytes")
    FAMILIES[6]["frame"] = args.frame6  # the script's one setting that is not passed down: read everywhere
    if not (1 <= args.runs <= 20 and 0.5 <= args.window <= 30 and 0 <= args.warmup <= 10
            and 10 <= args.probes <= 5000 and 0 <= args.flows <= 16_000_000 and 2 <= args.backends <= 3):
        ap.error("runs 1..20, window 0.5..30 s, warmup 0..10 s, probes 10..5000, flows 0..16e6, backends 2..3")
    try:
        preflight(args)
        reap_stale()
        res = run(args)
    except (BenchError, LabError, CommandError, WaitTimeout) as e:
        print(f"bench: error: {e}", file=sys.stderr)
        return 1
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    res["json_path"] = args.json
    with open(args.json, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    report(res, args.family, args.ring)
    return 0


if __name__ == "__main__":
    sys.exit(main())

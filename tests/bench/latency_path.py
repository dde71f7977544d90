#!/usr/bin/python3
"""Where a probe's time goes in the balancer: for lbd and the kernel reference, the time from the probe's
arrival on the balancer's interface to its arrival at the backend, taken from the kernel's capture
timestamps (tcpdump on lb1's eth0 and on each backend's eth0, one clock), beside the round trip.

    latency_path.py [--family 4|6] [--count 500] [--lbd-cpus 1] [--build DIR]

The reference forwards in the receiving CPU's softirq; lbd's worker must be woken (epoll), which on an
idle CPU of a virtual machine includes the vCPU's exit from halt. The difference of the two medians is
lbd's share of make bench's p50 gap. Same lab and probe as bench.py (100 probes/s, no other traffic).
"""

import argparse
import bisect
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lab"))

import bench  # noqa: E402
from lib.lab import CommandError, Lab, LabError, WaitTimeout, reap_stale, topology, wait_for  # noqa: E402


def pct(v, p):
    return v[min(len(v) - 1, int(p / 100 * len(v)))]


def stamps(lab, log):
    """Capture times (s) of the frames tcpdump printed to `log`, one per line."""
    out = []
    for line in open(lab.log_path(log)):
        parts = line.split()
        if len(parts) > 2 and parts[1] in ("IP", "IP6"):
            out.append(float(parts[0]))
    return out


def one(lab, b, fam, forwarder, count):
    """Probe through `forwarder` (reference or lbd); {"path_us": sorted per-probe delays, "rtt_us": ...}."""
    src = bench.FAMILIES[fam]["client"]
    if forwarder == "lbd":
        b.lbd_start(2, fam)
    else:
        b.ref_start(fam)
    dumps = {}
    try:
        for h in ["lb1"] + b.backends:
            log = f"path-{forwarder}-{h}"
            dumps[h] = (lab.popen(h, ["tcpdump", "-i", "eth0", "-nn", "-tt", "--time-stamp-precision=nano", "-l",
                                      "-Q", "in", f"udp and dst port {bench.PORT} and src host {src}"], log=log), log)
        wait_for(lambda: all("listening" in lab.log_tail(log, 5) for _p, log in dumps.values()), 10,
                 what="tcpdump listening")
        probe = b.probe(forwarder, fam, count)
    finally:
        for p, _log in dumps.values():
            lab.stop(p, timeout=5)
        if forwarder == "lbd":
            b.lbd_stop()
        else:
            b.ref_stop()
    arrive = stamps(lab, dumps["lb1"][1])
    leave = sorted(t for h in b.backends for t in stamps(lab, dumps[h][1]))
    delays = []
    for t in arrive:
        k = bisect.bisect_left(leave, t)
        if k < len(leave) and leave[k] - t < 0.01:     # the next probe comes 10 ms later
            delays.append((leave[k] - t) * 1e6)
    return {"path_us": sorted(delays), "rtt_us": sorted(probe["rtt_us"])}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", type=int, default=4, choices=(4, 6))
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--lbd-cpus", default=str(bench.LBD_CPU), help="taskset CPU list for lbd (bench.py: 1)")
    ap.add_argument("--build", default=os.environ.get("DSRLB_BUILD", os.path.join(bench.REPO, "build")))
    a = ap.parse_args(argv)
    if not 10 <= a.count <= 5000:
        ap.error("--count: 10..5000")
    bench.LBD_CPU = a.lbd_cpus
    args = argparse.Namespace(window=1, warmup=0, family=[a.family], ring=[2], build=a.build, flows=0,
                              probes=a.count, runs=1, backends=3)
    topo = topology(backends=3, spares=0, lbs=1, client_addrs=1, lan_hosts={bench.GEN: bench.GEN_ADDR},
                    ipv6=a.family == 6)
    try:
        bench.preflight(args)
        reap_stale()
        with Lab(topo, build_dir=a.build) as lab:
            b = bench.Bench(lab, args)
            b.setup_backends()
            res = {f: one(lab, b, a.family, f, a.count) for f in ("reference", "lbd")}
    except (bench.BenchError, LabError, CommandError, WaitTimeout) as e:
        print(f"latency_path: error: {e}", file=sys.stderr)
        return 1
    print(f"IPv{a.family}, {a.count} probes at 100/s, lbd on CPUs {a.lbd_cpus}; µs")
    print(f"{'':12} {'in->backend p10':>16} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7}   {'round trip p50':>14}")
    for f, r in res.items():
        d = r["path_us"]
        if not d:
            print(f"{f:12} no probe seen on both sides")
            continue
        print(f"{f:12} {pct(d, 10):16.1f} {pct(d, 50):7.1f} {pct(d, 90):7.1f} {pct(d, 99):7.1f} {d[-1]:7.1f}   "
              f"{pct(r['rtt_us'], 50):14.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

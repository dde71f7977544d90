#!/usr/bin/python3
"""A/B of lbd builds against the kernel reference in one lab, for changes smaller than make bench's
run-to-run spread (the reference alone moves 1.9-2.9 µs per frame between runs on a shared 2-vCPU guest).

    bench_ab.py --builds DIR_A,DIR_B[,...] [--rounds 5] [--window 3] [--family 4,6]

Each round measures, per family, a reference window and then a window of each build in turn (the same
lab, generator and counters as bench.py, lbd V2 on CPU 1), so drift hits every build alike. Per build and
family it prints each round's CPU-per-frame ratio to the round's own reference and the median, minimum
and maximum over the rounds, with the rate ratio's median. The JSON of every window goes to --json.
"""

import argparse
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lab"))

import bench  # noqa: E402
from lib.lab import CommandError, Lab, LabError, WaitTimeout, reap_stale, topology  # noqa: E402


def measure(lab, args, builds):
    b = bench.Bench(lab, args)
    b.setup_backends()
    rounds = []
    for r in range(args.rounds):
        row = {}
        for fam in args.family:
            b.ref_start(fam)
            try:
                ref = b.window(bench.fname(None, fam), fam)
            finally:
                b.ref_stop()
            row[f"reference-{fam}"] = ref
            for build in builds:
                lab.build_dir = build
                b.lbd_start(2, fam)
                try:
                    w = b.window(f"{build} IPv{fam}", fam)
                finally:
                    b.lbd_stop()
                w["cpu_ratio"] = round(w["cpu_us_per_frame"] / ref["cpu_us_per_frame"], 3)
                w["rate_ratio"] = round(w["fps"] / ref["fps"], 3)
                row[f"{build}-{fam}"] = w
                print(f"round {r + 1} IPv{fam} {build}: CPU ratio {w['cpu_ratio']:.3f} "
                      f"({w['cpu_us_per_frame']:.2f} / {ref['cpu_us_per_frame']:.2f} µs), rate {w['rate_ratio']:.2f}",
                      flush=True)
        rounds.append(row)
    return rounds


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--builds", required=True, help="comma-separated build directories (each with lbd, lbctl)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--window", type=float, default=3.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--family", default="4,6")
    ap.add_argument("--json", default=os.path.join(bench.REPO, "build", "bench-ab.json"))
    a = ap.parse_args(argv)
    builds = [os.path.abspath(x) for x in a.builds.split(",") if x]
    try:
        fams = [int(x) for x in a.family.split(",")]
    except ValueError:
        ap.error("--family: 4, 6 or 4,6")
    if not builds or not set(fams) <= {4, 6} or not 1 <= a.rounds <= 20 or not 0.5 <= a.window <= 30:
        ap.error("--builds: at least one; --family 4, 6 or 4,6; rounds 1..20; window 0.5..30 s")
    # What bench.Bench reads of its arguments.
    args = argparse.Namespace(window=a.window, warmup=a.warmup, family=fams, rounds=a.rounds, ring=[2],
                              build=builds[0], flows=0, probes=10, runs=1, backends=3)
    topo = topology(backends=3, spares=0, lbs=1, client_addrs=1, lan_hosts={bench.GEN: bench.GEN_ADDR},
                    ipv6=6 in fams)
    try:
        bench.preflight(args)
        for build in builds[1:]:
            bench.preflight(argparse.Namespace(**{**vars(args), "build": build}))
        reap_stale()
        with Lab(topo, build_dir=builds[0]) as lab:
            rounds = measure(lab, args, builds)
    except (bench.BenchError, LabError, CommandError, WaitTimeout) as e:
        print(f"bench_ab: error: {e}", file=sys.stderr)
        return 1
    print(f"\nCPU per frame against the reference of the same round, {a.rounds} rounds of {a.window} s:")
    for fam in fams:
        for build in builds:
            ws = [r[f"{build}-{fam}"] for r in rounds]
            c = [w["cpu_ratio"] for w in ws]
            print(f"  IPv{fam} {build}: median {statistics.median(c):.3f}, min {min(c):.3f}, max {max(c):.3f}; "
                  f"rate ratio median {statistics.median(w['rate_ratio'] for w in ws):.2f}")
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump({"builds": builds, "families": fams, "rounds": rounds}, f, indent=1)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

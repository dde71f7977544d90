#!/usr/bin/python3
"""make soak: no false failover under full forwarding load.

The bar (issue): "No false failover: at advert_interval = 20 ms, with the balancer forwarding at full
load from a traffic generator for 60 s, neither node changes state."

    no_false_failover.py [--seconds 60] [--advert 20ms] [--poll 0.2] [--gen-cpu 0] [--json PATH]

In the network-namespace lab (tests/lab/lib): the pair lb1 (priority 150) / lb2 (100) runs with
advert_interval = 20 ms (lib/pair.py's config: udp service on VIP:9000 over be1..be3, checks off).
A generator namespace on the LAN (192.0.2.50) sends 64-byte UDP frames to VIP:9000 straight to lb1's
MAC as fast as it can (trafgen -P 1 pinned to one CPU, as tests/bench/bench.py does); the backends
count and drop them in an nftables netdev ingress rule. Static bridge entries keep the flood off
every other port (lb2 sees only heartbeats and sync).

Throughout the load (both nodes' `lbctl status --json` every --poll seconds) and at the end:
lb1 MASTER with its lbd active, lb2 BACKUP with its lbd standby, vrrpd.transitions unchanged on both,
no FAULT, no split-brain warning, no rejected heartbeat (any reason) after the pair has settled. The
pair's start-up is allowed stale_epoch rejections (a node's first adverts to a peer that has not
learned its epoch yet); they are reported, not judged.

Reported: frames/s forwarded (lbd's counter and what the backends received), lbd's ring drops,
the largest vrrpd.peer.last_heard_ms seen by the polls on each node, and, exactly, the largest gap
between lb1's heartbeats as lb2 received them (tcpdump on lb2), with the heartbeat count against
the expected seconds / advert_interval.

Prints PASS or FAIL; exit status 0 on PASS, 1 on FAIL (or when the soak cannot run). The lab is
always torn down.
"""

import argparse
import json
import os
import signal
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "lab"))

from lib.capture import Capture  # noqa: E402
from lib.flood import FRAME_LEN, GEN, GEN_ADDR, PORT, trafgen_cmd  # noqa: E402
from lib.lab import CommandError, Lab, LabError, WaitTimeout, reap_stale, topology, wait_for  # noqa: E402
from lib.pair import NODES, Pair  # noqa: E402

HB_PORT = 8112                   # heartbeat_port default
MASTER, BACKUP = "lb1", "lb2"
REJECT_KEYS = ("malformed", "bad_mac", "replay", "unknown_node", "unknown_key", "stale_epoch")


class SoakError(Exception):
    pass


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def parse_duration_ms(text):
    units = {"ms": 1, "s": 1000, "m": 60000}
    for u in ("ms", "s", "m"):
        if text.endswith(u) and text[:-len(u)].isdigit():
            return int(text[:-len(u)]) * units[u]
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 20ms)")


def pcap_times(path):
    """Timestamps (seconds, float) of the packets of a classic pcap file (what tcpdump -w writes)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return []
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise SoakError(f"{path}: not a pcap file")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    out, off = [], 24
    while off + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack_from(endian + "IIII", data, off)
        out.append(sec + frac / (1e9 if nano else 1e6))
        off += 16 + incl
    return out


class Soak:
    def __init__(self, lab, args):
        self.lab = lab
        self.args = args
        self.pair = None
        self.trafgen = None
        self.capture = None
        self.backends = lab.active_backends
        self.violations = []          # (seconds into the soak, text)
        self.polls = 0
        self.poll_failures = 0
        self.max_heard = {MASTER: -1, BACKUP: -1}
        self.states_seen = {MASTER: set(), BACKUP: set()}

    # --- set-up
    def setup_backends(self):
        vip = self.lab.vip
        for b in self.backends:
            rules = f"""
table netdev soak {{
    counter delivered {{ }}
    chain ingress {{
        type filter hook ingress device "eth0" priority -500; policy accept;
        ip daddr {vip} udp dport {PORT} ip saddr {GEN_ADDR} counter name delivered drop
    }}
}}
"""
            self.lab.run(b, ["nft", "-f", "-"], input=rules, timeout=10)

    def delivered(self):
        tot = 0
        for b in self.backends:
            out = self.lab.run(b, ["nft", "-j", "list", "counter", "netdev", "soak", "delivered"], timeout=10).stdout
            tot += next(o["counter"]["packets"] for o in json.loads(out)["nftables"] if "counter" in o)
        return tot

    def pin_fdb(self):
        """Static bridge entries for every MAC, so that no frame of the flood reaches a port it is
        not addressed to (a learned entry that ages out would flood it to lb2 too)."""
        lab = self.lab
        hosts = [MASTER, BACKUP, GEN, lab.router] + self.backends
        batch = "".join(f"fdb replace {lab.mac(h)} dev {lab.bridge_port(h)} master static\n" for h in hosts)
        lab.run("br", ["bridge", "-batch", "-"], input=batch, timeout=10)

    def start_pair(self):
        self.pair = Pair(self.lab, advert=self.args.advert)
        self.pair.start(master=MASTER, timeout=10)

        def settled():
            s1, s2 = self.status(MASTER), self.status(BACKUP)
            ok = (s1["vrrpd"]["state"] == "MASTER" and s2["vrrpd"]["state"] == "BACKUP"
                  and s1["lbd"]["active"] and not s2["lbd"]["active"]
                  and s1["lbd"]["sync"]["state"] == "established" and s2["lbd"]["sync"]["state"] == "established"
                  and s2["vrrpd"]["peer"]["state"] == "MASTER" and s1["vrrpd"]["peer"]["state"] == "BACKUP"
                  and all(b["mac"] for s in s1["lbd"]["services"] for b in s["backends"]))
            return (s1, s2) if ok else None

        wait_for(settled, 10, interval=0.1, what="the pair settled (roles, sync, backend MACs)",
                 ignore=(CommandError, ValueError, KeyError, TypeError))
        time.sleep(1.0)  # a second of quiet: start-up rejections (stale_epoch) are over

    # --- traffic
    def trafgen_start(self):
        lab = self.lab
        cmd = trafgen_cmd(lab, MASTER, "soak", cpu=self.args.gen_cpu if self.args.gen_cpu >= 0 else None)
        self.trafgen = lab.popen(GEN, cmd, log=f"{GEN}-trafgen")
        time.sleep(0.3)
        if self.trafgen.poll() is not None:
            raise SoakError(f"trafgen exited with {self.trafgen.returncode}:\n{lab.log_tail(GEN + '-trafgen')}")

    def trafgen_stop(self):
        if self.trafgen is not None:
            alive = self.trafgen.poll() is None
            self.lab.stop(self.trafgen, sig=signal.SIGINT, timeout=5)
            rc, self.trafgen = self.trafgen.returncode, None
            if not alive:
                raise SoakError(f"trafgen died during the soak with {rc}:\n{self.lab.log_tail(GEN + '-trafgen')}")

    # --- status
    def status(self, node):
        r = self.lab.lbctl(node, "status", "--json", timeout=5)
        s = json.loads(r.stdout)
        if r.returncode or s["lbd"] is None or s["vrrpd"] is None:
            raise SoakError(f"lbctl status on {node}: exit {r.returncode}, errors {s.get('errors')}")
        return s

    def baseline(self):
        s = {n: self.status(n) for n in (MASTER, BACKUP)}
        return {n: {"transitions": s[n]["vrrpd"]["transitions"], "rejected": dict(s[n]["vrrpd"]["rejected"]),
                    "adverts_sent": s[n]["vrrpd"]["adverts_sent"],
                    "adverts_received": s[n]["vrrpd"]["adverts_received"],
                    "counters": dict(s[n]["lbd"]["counters"])} for n in s}

    def judge(self, t, node, s, base):
        """Record every way in which node's status s breaks the bar."""
        v, l = s["vrrpd"], s["lbd"]
        want, active = ("MASTER", True) if node == MASTER else ("BACKUP", False)
        bad = []
        self.states_seen[node].add(v["state"])
        if v["state"] != want:
            bad.append(f"vrrpd {v['state']} (want {want}; fault {v['fault_reason']!r})")
        if l["active"] != active:
            bad.append(f"lbd {'active' if l['active'] else 'standby'} ({l['mode_reason']})")
        if v["transitions"] != base[node]["transitions"]:
            bad.append(f"transitions {base[node]['transitions']} -> {v['transitions']}")
        grew = {k: v["rejected"][k] - base[node]["rejected"][k] for k in REJECT_KEYS
                if v["rejected"][k] != base[node]["rejected"][k]}
        if grew:
            bad.append(f"heartbeats rejected: {grew}")
        if any("split brain" in w.lower() for w in v["warnings"]):
            bad.append(f"warnings {v['warnings']}")
        if not v["lbd_healthy"] or not v["link_up"]:
            bad.append(f"lbd_healthy {v['lbd_healthy']} link_up {v['link_up']}")
        heard = v["peer"]["last_heard_ms"]
        if heard > self.max_heard[node]:
            self.max_heard[node] = heard
        for b in bad:
            self.violations.append((round(t, 3), f"{node}: {b}"))
        return not bad

    def poll_loop(self, seconds, base):
        t0 = time.monotonic()
        nxt = t0
        last_report = t0
        while True:
            now = time.monotonic()
            if now - t0 >= seconds:
                break
            if now < nxt:
                time.sleep(nxt - now)
            nxt += self.args.poll
            t = time.monotonic() - t0
            for node in (MASTER, BACKUP):
                try:
                    s = self.status(node)
                except (SoakError, CommandError, ValueError) as e:
                    self.poll_failures += 1
                    self.violations.append((round(t, 3), f"{node}: status unavailable: {str(e).splitlines()[0]}"))
                    continue
                self.judge(t, node, s, base)
            self.polls += 1
            if self.trafgen is not None and self.trafgen.poll() is not None:
                self.violations.append((round(t, 3), f"trafgen exited with {self.trafgen.returncode}"))
                break
            if time.monotonic() - last_report >= 10:
                last_report = time.monotonic()
                log(f"  {t:5.1f} s: {self.polls} polls, {len(self.violations)} violations, largest "
                    f"last_heard_ms lb1 {self.max_heard[MASTER]} lb2 {self.max_heard[BACKUP]}")
        return time.monotonic() - t0

    # --- the soak
    def run(self):
        a = self.args
        res = {"params": {"seconds": a.seconds, "advert_ms": a.advert_ms, "poll_s": a.poll, "frame_bytes": FRAME_LEN,
                          "generator": f"trafgen -P 1{'' if a.gen_cpu < 0 else f' on CPU {a.gen_cpu}'}"}}
        self.setup_backends()
        self.pin_fdb()
        self.start_pair()
        res["start_rejected"] = {n: self.status(n)["vrrpd"]["rejected"] for n in (MASTER, BACKUP)}
        v2 = self.status(BACKUP)["vrrpd"]
        res["master_down_ms"] = v2["master_down_ms"]
        self.capture = Capture(self.lab, BACKUP, "eth0",
                               f"udp and src host {NODES[MASTER][0]} and dst port {HB_PORT}", name="lb2-heartbeats")
        self.capture.start()
        base = self.baseline()
        d0 = self.delivered()
        self.trafgen_start()
        log(f"full load on: trafgen -> {self.lab.vip}:{PORT} at lb1's MAC for {a.seconds} s, "
            f"advert_interval {a.advert_ms} ms, master-down {res['master_down_ms']} ms")
        try:
            t_start, w_start = time.monotonic(), time.time()
            soak_s = self.poll_loop(a.seconds, base)
            end = self.baseline()
            d1 = self.delivered()
            t_end, w_end = time.monotonic(), time.time()
        finally:
            try:
                self.trafgen_stop()
            except SoakError as e:
                self.violations.append((round(time.monotonic() - t_start, 3), str(e).splitlines()[0]))
        # After the load: one more judgement, with the pair idle again.
        time.sleep(0.5)
        for node in (MASTER, BACKUP):
            try:
                self.judge(soak_s, node, self.status(node), base)
            except (SoakError, CommandError, ValueError) as e:
                self.violations.append((round(soak_s, 3), f"{node}: status unavailable at the end: {e}"))
        self.capture.stop()
        # lb1's heartbeats as lb2's interface received them while the load was on (pcap times are
        # the wall clock, as time.time()).
        times = [x for x in pcap_times(self.capture.path) if w_start <= x <= w_end]
        elapsed = t_end - t_start
        c0, c1 = base[MASTER]["counters"], end[MASTER]["counters"]
        lbd = {k: c1[k] - c0[k] for k in ("rx_frames", "forwarded", "ring_drops", "tx_ring_full", "drop_standby")}
        gaps = [b - a_ for a_, b in zip(times, times[1:])]
        res.update({
            "soak_seconds": round(soak_s, 2), "polls": self.polls, "poll_failures": self.poll_failures,
            "lbd": lbd,
            "forwarded_fps": round(lbd["forwarded"] / elapsed),
            "delivered_fps": round((d1 - d0) / elapsed),
            "ring_drop_pct": round(100 * lbd["ring_drops"] / max(1, lbd["rx_frames"] + lbd["ring_drops"]), 2),
            "max_last_heard_ms": dict(self.max_heard),
            "heartbeats_lb1_to_lb2": {
                "captured": len(times),
                "expected": round(elapsed * 1000 / a.advert_ms),
                "vrrpd_received": end[BACKUP]["adverts_received"] - base[BACKUP]["adverts_received"],
                "lb1_sent": end[MASTER]["adverts_sent"] - base[MASTER]["adverts_sent"],
                "max_gap_ms": round(max(gaps) * 1000, 1) if gaps else None,
                "gaps_over_2x_advert": sum(1 for g in gaps if g * 1000 > 2 * a.advert_ms),
                # The longest gaps: (seconds into the load when the late heartbeat came, gap in ms).
                "longest_gaps": sorted(((round(times[i + 1] - w_start, 3), round(g * 1000, 1))
                                        for i, g in enumerate(gaps) if g * 1000 > 2 * a.advert_ms),
                                       key=lambda x: -x[1])[:10],
            },
            "lb1_heard_lb2": {"vrrpd_received": end[MASTER]["adverts_received"] - base[MASTER]["adverts_received"],
                              "lb2_sent": end[BACKUP]["adverts_sent"] - base[BACKUP]["adverts_sent"]},
            "transitions": {n: [base[n]["transitions"], end[n]["transitions"]] for n in (MASTER, BACKUP)},
            "states_seen": {n: sorted(s) for n, s in self.states_seen.items()},
            "violations": self.violations,
        })
        if lbd["forwarded"] == 0:
            self.violations.append((round(soak_s, 3), "lbd forwarded nothing: there was no load"))
        hb = res["heartbeats_lb1_to_lb2"]
        if not times:
            self.violations.append((round(soak_s, 3), "no heartbeat from lb1 captured on lb2"))
        elif hb["max_gap_ms"] >= res["master_down_ms"]:
            self.violations.append((round(soak_s, 3), f"heartbeat gap {hb['max_gap_ms']} ms >= master-down "
                                                      f"{res['master_down_ms']} ms"))
        # A fence between two polls leaves no trace in status; lbd's log has every one.
        for node in (MASTER, BACKUP):
            try:
                with open(self.lab.log_path(f"{node}-lbd"), errors="replace") as f:
                    fenced = [line.strip() for line in f if "(fenced)" in line and "going standby" in line]
            except OSError:
                fenced = []
            for line in fenced:
                self.violations.append((round(soak_s, 3), f"{node}: lbd log: {line}"))
        res["pass"] = not self.violations
        return res

    def cleanup(self):
        for fn in (self.trafgen_stop, lambda: self.capture and self.capture.stop(), lambda: self.pair and self.pair.stop()):
            try:
                fn()
            except Exception as e:
                print(f"soak: cleanup: {e}", file=sys.stderr)


def report(res):
    p = res["params"]
    hb = res["heartbeats_lb1_to_lb2"]
    lbd = res["lbd"]
    print(f"no false failover: {res['soak_seconds']} s of full load ({p['frame_bytes']}-byte UDP, {p['generator']}), "
          f"advert_interval {p['advert_ms']} ms, master-down {res['master_down_ms']} ms")
    print(f"  forwarded      {res['forwarded_fps']:,} frames/s by lbd, {res['delivered_fps']:,} frames/s received "
          f"by the backends; rx {lbd['rx_frames']:,}, ring drops {lbd['ring_drops']:,} ({res['ring_drop_pct']}%), "
          f"tx ring full {lbd['tx_ring_full']:,}")
    print(f"  heartbeats     lb1 -> lb2: {hb['captured']} captured on lb2 / {hb['expected']} expected "
          f"(lb1 sent {hb['lb1_sent']}, lb2's vrrpd accepted {hb['vrrpd_received']}); largest gap "
          f"{hb['max_gap_ms']} ms, {hb['gaps_over_2x_advert']} gaps over 2 x advert")
    if hb["longest_gaps"]:
        print("                 longest gaps (s into the load: ms): "
              + ", ".join(f"{t:.3f}: {g}" for t, g in hb["longest_gaps"][:5]))
    print(f"                 lb2 -> lb1: lb2 sent {res['lb1_heard_lb2']['lb2_sent']}, lb1's vrrpd accepted "
          f"{res['lb1_heard_lb2']['vrrpd_received']}")
    print(f"  last_heard_ms  largest seen by {res['polls']} polls: lb2 (of lb1) {res['max_last_heard_ms'][BACKUP]} ms, "
          f"lb1 (of lb2) {res['max_last_heard_ms'][MASTER]} ms; status unavailable {res['poll_failures']} times")
    print(f"  states         lb1 {res['states_seen'][MASTER]}, lb2 {res['states_seen'][BACKUP]}; transitions "
          f"lb1 {res['transitions'][MASTER]}, lb2 {res['transitions'][BACKUP]} (before, after)")
    sr = {n: {k: v for k, v in r.items() if v} for n, r in res["start_rejected"].items()}
    print(f"  start-up       rejected heartbeats before the soak (allowed): {sr}")
    for t, v in res["violations"][:20]:
        print(f"  VIOLATION at {t:.3f} s: {v}")
    if len(res["violations"]) > 20:
        print(f"  ... {len(res['violations']) - 20} more violations")
    print("PASS" if res["pass"] else "FAIL")


def preflight(args):
    if os.geteuid() != 0:
        raise SoakError("the soak needs root (network namespaces)")
    for tool in ("trafgen", "nft", "taskset", "ip", "tcpdump", "bridge"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            raise SoakError(f"{tool} is not installed (make deps installs netsniff-ng, nftables, ...)")
    for b in ("lbd", "vrrpd", "lbctl"):
        if not os.access(os.path.join(args.build, b), os.X_OK):
            raise SoakError(f"{args.build}/{b} is missing (make all)")
    if args.gen_cpu >= os.cpu_count():
        raise SoakError(f"--gen-cpu {args.gen_cpu}: this machine has {os.cpu_count()} CPUs")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="seconds of full load (default 60)")
    ap.add_argument("--advert", default="20ms", help="advert_interval of the pair (default 20ms)")
    ap.add_argument("--poll", type=float, default=0.2, help="seconds between status polls (default 0.2)")
    ap.add_argument("--gen-cpu", type=int, default=0, help="CPU trafgen is pinned to (-1: not pinned)")
    ap.add_argument("--json", default=os.path.join(REPO, "build", "soak.json"))
    ap.add_argument("--build", default=os.environ.get("DSRLB_BUILD", os.path.join(REPO, "build")))
    args = ap.parse_args(argv)
    try:
        args.advert_ms = parse_duration_ms(args.advert)
    except argparse.ArgumentTypeError as e:
        ap.error(str(e))
    if not (1 <= args.seconds <= 3600 and 0.05 <= args.poll <= 5 and 5 <= args.advert_ms <= 40000):
        ap.error("seconds 1..3600, poll 0.05..5, advert 5ms..40s")
    topo = topology(backends=3, spares=0, lbs=2, client_addrs=1, lan_hosts={GEN: GEN_ADDR})
    try:
        preflight(args)
        reap_stale()
        with Lab(topo, build_dir=args.build) as lab:
            log(f"lab {lab.prefix} built in {lab.build_seconds}s")
            soak = Soak(lab, args)
            try:
                res = soak.run()
            finally:
                soak.cleanup()
            if not res["pass"]:
                lab.failed = True  # keep the logs
    except (SoakError, LabError, CommandError, WaitTimeout) as e:
        print(f"soak: error: {e}", file=sys.stderr)
        print("FAIL")
        return 1
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    report(res)
    return 0 if res["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())

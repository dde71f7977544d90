"""UDP round-trip latency probe for `make bench`, run inside the client namespace (standard library only).

    probe.py --host VIP --port 9000 --count 500 --interval 0.01 [--warmup 20] [--src ADDR]

VIP is an IPv4 or an IPv6 address (the socket's family follows it).

Sends one probe every `interval` (a sequence number in the payload) to a UDP echo service and waits for
its answer until the next probe is due; a late or missing answer counts as lost. The round trip runs from
just before send() to the kernel's receive timestamp of the answer (SO_TIMESTAMPNS), so the probe's own
wake-up delay is not counted; "user_rtt_us" is the same until recv() returned, for comparison.
The first `warmup` probes fill ARP caches and the connection table and are not counted. Prints one
JSON object: {"sent", "answered", "lost", "rtt_us": [...], "user_rtt_us": [...]} (microseconds).
"""

import argparse
import json
import socket
import struct
import sys
import time

MAGIC = b"DSRB"
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # <asm-generic/socket.h>; also the cmsg type
TS = struct.Struct("=qq")  # struct timespec


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=9000)
    ap.add_argument("--src")
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--interval", type=float, default=0.01)
    ap.add_argument("--warmup", type=int, default=20)
    a = ap.parse_args(argv)
    if not (1 <= a.count <= 100000 and 0.001 <= a.interval <= 1 and 0 <= a.warmup <= 1000):
        ap.error("count 1..100000, interval 0.001..1 s, warmup 0..1000")

    sock = socket.socket(socket.AF_INET6 if ":" in a.host else socket.AF_INET, socket.SOCK_DGRAM)
    if a.src:
        sock.bind((a.src, 0))
    sock.connect((a.host, a.port))
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    total = a.warmup + a.count
    rtts, user_rtts, lost, errors = [], [], 0, 0
    t0 = time.monotonic()
    for i in range(total):
        due = t0 + i * a.interval
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent_real = time.time_ns()
        sent = time.perf_counter_ns()
        try:
            sock.send(MAGIC + struct.pack("!Q", i) + b"x" * 20)
        except OSError:
            errors += 1
        got = kgot = None
        next_due = t0 + (i + 1) * a.interval
        while True:
            left = next_due - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            try:
                data, anc, _flags, _addr = sock.recvmsg(2048, socket.CMSG_SPACE(TS.size))
            except socket.timeout:
                break
            except OSError:
                continue  # e.g. ICMP port unreachable on the connected socket
            now = time.perf_counter_ns()
            # The lab's echo server answers "<backend name> <payload>".
            k = data.find(MAGIC)
            if k >= 0 and len(data) >= k + 12 and struct.unpack("!Q", data[k + 4:k + 12])[0] == i:
                got = now - sent
                for level, typ, cdata in anc:
                    if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS and len(cdata) >= TS.size:
                        sec, nsec = TS.unpack(cdata[:TS.size])
                        kgot = sec * 1_000_000_000 + nsec - sent_real
                break
        if i < a.warmup:
            continue
        if got is None:
            lost += 1
        else:
            user_rtts.append(round(got / 1000, 1))
            # Without a kernel timestamp (never expected) the user-space time stands in.
            rtts.append(round((kgot if kgot is not None and 0 < kgot <= got else got) / 1000, 1))
    sock.close()
    json.dump({"sent": a.count, "answered": len(rtts), "lost": lost, "send_errors": errors,
               "rtt_us": rtts, "user_rtt_us": user_rtts}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

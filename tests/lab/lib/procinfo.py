"""What /proc says about the daemons the lab runs: a process's status fields, its children, and lbd's
privileged helper (lbd-nft, the one process that keeps CAP_NET_ADMIN)."""

import os


def proc_status(pid):
    """/proc/PID/status as {field: value}; pid may be "PID/task/TID"."""
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def children(pid):
    """Child pids of every thread of pid (/proc/PID/task/TID/children)."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as f:
            out += [int(c) for c in f.read().split()]
    return out


def nft_helper(lbd_pid):
    """The pid of lbd's helper process; exactly one must run."""
    kids = [k for k in children(lbd_pid) if proc_status(k).get("Name") == "lbd-nft"]
    assert len(kids) == 1, f"lbd {lbd_pid} has {len(kids)} nftables helpers"
    return kids[0]

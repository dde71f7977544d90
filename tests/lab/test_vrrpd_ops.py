"""vrrpd operations: notify hooks and live reload of the election.

Notify hooks (notify_master, notify_backup, notify_fault) run asynchronously, with DSRLB_STATE and
DSRLB_NODE in their environment, and are killed (with their process group) after notify_timeout; a
slow or failing hook never delays the election. `lbctl reload` re-reads priority and
advert_interval, and the keys: the three reload steps of docs/deploy.md rotate the pair's key
without a lost probe, a transition, a rejected heartbeat or a dropped sync connection. A broken
file (syntax error, missing key file) is refused with its location, and the election goes on.

Hooks are short scripts in the lab's tmp dir (config lines stay under the 198-character limit of
docs/config.md); each appends "STATE NODE PGID" to a file of its node, so the test can follow what
ran where, and find the process group vrrpd must kill."""

import os
import pwd
import random
import signal
import time

import pytest

from lib import client
from lib.lab import wait_for
from lib.pair import config_text, make_pairs

ADVERT = "100ms"
NOTIFY_TIMEOUT_MS = 500
# A takeover may come this much later than master-down (after the master's last heartbeat) and still
# count as "not delayed": the hook under test would add notify_timeout (500 ms) or 30 s.
TAKEOVER_SLACK_MS = 100
MAX_LINE = 198


@pytest.fixture(scope="module", autouse=True)
def servers_up(backend_servers):
    return backend_servers


@pytest.fixture
def make_pair(lab):
    """make_pair(**Pair kwargs) -> a started Pair (lb1 MASTER); every daemon is killed after the test,
    and so is every hook process the test recorded (hooks run in their own sessions)."""
    def prepare(p):
        clear_hook_logs(lab)
        for line in p.conf_text.splitlines():
            assert len(line.strip()) <= MAX_LINE, f"config line over {MAX_LINE} characters: {line!r}"

    with make_pairs(lab, advert=ADVERT, cluster_extra={"lbd_timeout": "300ms"}, prepare=prepare) as make:
        yield make
    for pid in hook_pids(lab):
        kill_group(pid)


# ----------------------------------------------------------------------------- helpers

def hook_dir(lab):
    d = os.path.join(lab.tmpdir, "hooks")
    os.makedirs(d, exist_ok=True)
    if lab.daemon_gid() is not None:
        # Hooks run as the daemons' user (DSRLB_USER): they write their records here.
        os.chown(d, pwd.getpwnam(os.environ["DSRLB_USER"]).pw_uid, lab.daemon_gid())
    return d


def clear_hook_logs(lab):
    for pid in hook_pids(lab):
        kill_group(pid)
    for node in ("lb1", "lb2"):
        try:
            os.unlink(os.path.join(hook_dir(lab), f"{node}.log"))
        except FileNotFoundError:
            pass


def hook_script(lab, name, body):
    """An executable /bin/sh script in the lab's hook dir that first records
    "$DSRLB_STATE $DSRLB_NODE PGID START" in hooks/NODE.log (START: wall clock, s), then runs body;
    returns its path. The process group is the hook's: vrrpd forks `sh -c CMD` as a session leader,
    whose pid it logs."""
    d = hook_dir(lab)
    path = os.path.join(d, f"{name}.sh")
    with open(path, "w") as f:
        f.write("#!/bin/sh\n"
                f'echo "$DSRLB_STATE $DSRLB_NODE $(cut -d" " -f5 /proc/$$/stat) $(date +%s.%N)" >> "{d}/$DSRLB_NODE.log"\n'
                + body + "\n")
    os.chmod(path, 0o755)
    return path


def hook_runs(lab, node):
    """[(state, node, pgid)] of the hooks that ran on node, oldest first (hook_starts: their start)."""
    try:
        with open(os.path.join(hook_dir(lab), f"{node}.log")) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        f = line.split()
        if len(f) >= 3 and f[2].isdigit():
            out.append((f[0], f[1], int(f[2])))
    return out


def hook_states(lab, node):
    return [s for s, _n, _p in hook_runs(lab, node)]


def hook_pids(lab):
    pids = []
    for node in ("lb1", "lb2"):
        pids += [p for _s, _n, p in hook_runs(lab, node)]
    return pids


def group_members(pgid):
    """Pids of the live (not zombie) processes in process group pgid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # rest[0] = state, rest[2] = pgrp
        if int(rest[2]) == pgid and rest[0] != "Z":
            out.append(int(d))
    return out


def kill_group(pgid):
    if group_members(pgid):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def proc_start_s(pid):
    """Start of pid in seconds of CLOCK_BOOTTIME, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None
    return ticks / os.sysconf("SC_CLK_TCK")


def boottime():
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def rewrite(pair, text):
    """Replace the pair's config file (both nodes read the same file)."""
    pair.conf_text = text
    for line in text.splitlines():
        assert len(line.strip()) <= MAX_LINE, line
    tmp = pair.conf + ".new"
    with open(tmp, "w") as f:
        f.write(pair.lab.config_text(text))
    os.replace(tmp, pair.conf)


def reload_ok(pair, *nodes):
    for n in nodes:
        r = pair.lab.lbctl(n, "reload")
        assert r.returncode == 0, f"lbctl reload on {n} exited {r.returncode}: {r.stdout} {r.stderr}"


def snapshot(pair):
    """Roles, transitions and the heartbeat/sync health of both nodes."""
    out = {}
    for n in pair.nodes:
        st = pair.status(n)
        v, l = st["vrrpd"], st["lbd"]
        out[n] = {"state": v["state"], "transitions": v["transitions"], "active": l["active"],
                  "bad_mac": v["rejected"]["bad_mac"], "unknown_key": v["rejected"]["unknown_key"],
                  "sync": l["sync"]["state"], "sync_rejected": l["sync"]["rejected"],
                  "sync_reconnects": l["sync"]["reconnects"], "digest": v["config_digest"],
                  "adverts_received": v["adverts_received"], "received_flows": l["sync"]["received_flows"],
                  "priority": v["priority"], "advert_interval_ms": v["advert_interval_ms"],
                  "master_down_ms": v["master_down_ms"], "lbd_reloads": l["reloads"]}
    return out


STABLE_KEYS = ("state", "transitions", "active", "bad_mac", "unknown_key", "sync", "sync_rejected",
               "sync_reconnects")


def assert_stable(before, after, what):
    for n in before:
        for k in STABLE_KEYS:
            assert after[n][k] == before[n][k], f"{what}: {n} {k} changed {before[n][k]!r} -> {after[n][k]!r}"


def wait_sync_established(pair, timeout=5):
    for n in pair.nodes:
        pair.wait_lbd(n, {"sync": {"state": "established"}}, timeout, f"{n}'s connection sync established",
                      interval=0.05)


# ----------------------------------------------------------------------------- 1. hooks run

def test_hooks_run_with_state_and_node(lab, make_pair):
    hook = hook_script(lab, "record", "")
    pair = make_pair(cluster_extra={"notify_master": hook, "notify_backup": hook, "notify_fault": hook})
    wait_for(lambda: hook_states(lab, "lb1")[-1:] == ["MASTER"], 3, 0.02, "lb1's MASTER hook")
    wait_for(lambda: hook_states(lab, "lb2")[-1:] == ["BACKUP"], 3, 0.02, "lb2's BACKUP hook")
    # Each hook got its own node's name (the file is chosen by $DSRLB_NODE, so check the line too).
    for n in pair.nodes:
        assert all(node == n for _s, node, _p in hook_runs(lab, n)), hook_runs(lab, n)
    assert "MASTER" not in hook_states(lab, "lb2"), hook_runs(lab, "lb2")
    n1, n2 = len(hook_runs(lab, "lb1")), len(hook_runs(lab, "lb2"))

    # lb1's lbd dies: lb1's vrrpd goes FAULT (lbd_timeout), lb2 takes over.
    pair.kill("lb1", "lbd").wait(5)
    wait_for(lambda: "FAULT" in hook_states(lab, "lb1")[n1:], 3, 0.02, "lb1's FAULT hook")
    wait_for(lambda: "MASTER" in hook_states(lab, "lb2")[n2:], 3, 0.02, "lb2's MASTER hook")
    assert hook_states(lab, "lb1")[n1:] == ["FAULT"], hook_runs(lab, "lb1")
    assert hook_states(lab, "lb2")[n2:] == ["MASTER"], hook_runs(lab, "lb2")
    assert pair.assert_single_owner(arp_checks=1) == "lb2"

    # lb1's lbd back: lb1 leaves FAULT (BACKUP), preempts (MASTER); lb2 steps down (BACKUP).
    pair.start_lbd("lb1")
    pair.wait_master("lb1", 5)
    wait_for(lambda: hook_states(lab, "lb1")[n1:] == ["FAULT", "BACKUP", "MASTER"], 3, 0.02,
             "lb1's BACKUP and MASTER hooks after FAULT")
    wait_for(lambda: hook_states(lab, "lb2")[n2:] == ["MASTER", "BACKUP"], 3, 0.02, "lb2's BACKUP hook")
    assert pair.assert_single_owner(arp_checks=1) == "lb1"


def sched_policy(pid):
    """Scheduling policy of pid (0 SCHED_OTHER, 1 SCHED_FIFO, 2 SCHED_RR), field 41 of /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[38])




def test_hooks_not_realtime(lab, make_pair):
    """vrrpd runs SCHED_FIFO (realtime = yes) so its heartbeats are punctual; an operator's hook is
    ordinary work and must not inherit that class, or a busy hook could starve lbd or vrrpd itself."""
    d = hook_dir(lab)
    hook = hook_script(lab, "policy", f'cut -d" " -f41 /proc/$$/stat > "{d}/$DSRLB_NODE-$DSRLB_STATE.policy"')
    pair = make_pair(cluster_extra={"notify_master": hook, "notify_backup": hook})
    if sched_policy(pair.proc("lb1", "vrrpd").pid) == 0:
        pytest.skip("vrrpd did not get SCHED_FIFO on this host (no real-time scheduling)")
    path = os.path.join(d, "lb1-MASTER.policy")
    policy = wait_for(lambda: open(path).read().strip(), 3, 0.02, "lb1's MASTER hook recording its policy",
                      ignore=(OSError,))
    assert policy == "0", f"lb1's MASTER hook ran with scheduling policy {policy} (1 = SCHED_FIFO), not SCHED_OTHER"


# ----------------------------------------------------------------------------- 2. slow / failing hooks

def hook_start(lab, node, pgid):
    """Wall-clock start of the hook run with this pgid, as the hook itself recorded it."""
    with open(os.path.join(hook_dir(lab), f"{node}.log")) as f:
        for line in f.read().splitlines():
            fields = line.split()
            if len(fields) == 4 and fields[2] == str(pgid):
                return float(fields[3])
    return None


def kill_logged(lab, node, pgid):
    """Wall-clock time of vrrpd's line about killing hook pgid, or None."""
    for line in lab.log_tail(f"{node}-vrrpd", 2000).splitlines():
        if f"notify hook (pid {pgid}) still running after its timeout: killed" in line:
            return float(line.split()[0])
    return None


def wait_hooks_killed(lab, wanted):
    """wanted: [(node, state, since)], a hook run (state) in node's hook log after index `since`.
    Watches them all at once until each has started and it and its process group are gone; asserts
    vrrpd logged each kill within notify_timeout + 1 s of the hook's own start (both wall clock, so
    polling on a busy machine is not measured). Returns their pgids."""
    limit = NOTIFY_TIMEOUT_MS / 1000 + 1.0
    found, gone = {}, {}
    deadline = time.monotonic() + 3 + limit
    while len(gone) < len(wanted):
        for w in wanted:
            node, state, since = w
            if w not in found:
                run = next((r for r in hook_runs(lab, node)[since:] if r[0] == state), None)
                if run:
                    found[w] = (run[2], proc_start_s(run[2]))
            if w in found and w not in gone and not group_members(found[w][0]):
                gone[w] = boottime()
        if len(gone) == len(wanted):
            break
        assert time.monotonic() < deadline, (f"hooks not started or not gone: wanted {wanted}, "
                                             f"found {found}, gone {list(gone)}")
        time.sleep(0.02)
    for w, (pgid, _start) in found.items():
        node, state, _ = w
        killed = wait_for(lambda: kill_logged(lab, node, pgid), 2, 0.05, f"vrrpd on {node} logging the kill of {pgid}")
        took = killed - hook_start(lab, node, pgid)
        assert took <= limit, (f"{node}'s {state} hook (pgid {pgid}) lived {took:.2f}s "
                               f"(notify_timeout {NOTIFY_TIMEOUT_MS} ms)")
    return [found[w][0] for w in wanted]


@pytest.mark.parametrize("kind", ["none", "slow", "failing"])
def test_hooks_never_delay_the_election(lab, make_pair, kind):
    """kill -9 of the master: lb2 takes over within master-down (+ slack) of the crash whatever its
    hooks do; a slow hook is killed, with its children, after notify_timeout; a failing one is logged."""
    extra = {"notify_timeout": f"{NOTIFY_TIMEOUT_MS}ms"}
    if kind == "slow":
        hook = hook_script(lab, "slow", "sleep 30")
    elif kind == "failing":
        hook = hook_script(lab, "failing", "exit 1")
    if kind != "none":
        extra.update({"notify_master": hook, "notify_backup": hook, "notify_fault": hook})
    pair = make_pair(cluster_extra=extra)
    if kind == "slow":
        # The start-up hooks (lb1 MASTER, lb2 BACKUP) are killed too; none must be left to orphan.
        wait_hooks_killed(lab, [("lb1", "MASTER", 0), ("lb2", "BACKUP", 0)])
    since2 = len(hook_runs(lab, "lb2"))
    md = pair.vrrp("lb2")["master_down_ms"]

    job = client.start_udp_probe(lab, 1.5 + md / 1000)
    job.wait_event("steady", timeout=3)
    time.sleep(random.uniform(0, 0.1))  # a random phase of the crash against the adverts
    t_crash = time.monotonic()
    pair.crash("lb1")
    pair.wait_lbd("lb2", {"active": True}, 2, "lb2's lbd active", interval=0.01)
    active_ms = (time.monotonic() - t_crash) * 1000
    if kind == "slow":
        # Watched while the probe still runs: the kill comes notify_timeout after the takeover.
        wait_hooks_killed(lab, [("lb2", "MASTER", since2)])
    r = job.result()
    print(f"\nhooks {kind}: master-down {md} ms, lb2 active after {active_ms:.0f} ms (status poll), "
          f"probe outage {r['longest_outage_ms']} ms")
    assert r["answered"] > 0 and r["outage_count"] == 1 and r["longest_outage"]["recovered"], r
    assert r["longest_outage_ms"] <= md + TAKEOVER_SLACK_MS, (
        f"takeover with {kind} hooks took {r['longest_outage_ms']} ms > master-down {md} + {TAKEOVER_SLACK_MS} ms")
    v2 = pair.wait_master("lb2", 1)
    assert pair.assert_single_owner(arp_checks=1) == "lb2"

    if kind == "failing":
        run = wait_for(lambda: next((x for x in hook_runs(lab, "lb2")[since2:] if x[0] == "MASTER"), None),
                       3, 0.01, "lb2's MASTER hook to run")
        wait_for(lambda: f"notify hook (pid {run[2]}) exited with status 1" in lab.log_tail("lb2-vrrpd", 2000),
                 2, 0.05, "vrrpd logging the failing hook's exit status")
    # The hook's fate changes nothing: lb2 stays MASTER, no further transition, for three more of
    # its heartbeats (0.3 s).
    sent = pair.vrrp("lb2")["adverts_sent"]
    v2b = pair.wait_vrrp("lb2", {"adverts_sent": lambda x: x >= sent + 3}, 2, "three more heartbeats from lb2",
                         interval=0.05)
    assert v2b["state"] == "MASTER" and v2b["transitions"] == v2["transitions"], (v2, v2b)

    # lb1 comes back and preempts; lb2's BACKUP hook (slow / failing) does not hold that up either.
    pair.start_node("lb1")
    pair.wait_master("lb1", 5)
    pair.wait_backup("lb2", 3)
    assert pair.assert_single_owner(arp_checks=1) == "lb1"


# ----------------------------------------------------------------------------- 3. reload of the election

def test_reload_priority_preempts(lab, make_pair):
    pair = make_pair()
    key = pair.key
    wait_sync_established(pair)
    before = snapshot(pair)
    assert before["lb1"]["priority"] == 150 and before["lb2"]["priority"] == 100, before
    rewrite(pair, config_text(key, ADVERT, cluster_extra={"lbd_timeout": "300ms"},
                              priorities={"lb2": 200}))
    t0 = time.monotonic()
    reload_ok(pair, "lb1", "lb2")
    pair.wait_master("lb2", 2)
    pair.wait_backup("lb1", 2)
    took = time.monotonic() - t0
    assert pair.assert_single_owner() == "lb2"
    v1, v2 = pair.vrrp("lb1"), pair.vrrp("lb2")
    assert v2["priority"] == 200 and v2["effective_priority"] == 200, v2
    assert v1["priority"] == 150, v1
    pair.wait_vrrp("lb1", {"peer": {"priority": 200}}, 1, "lb1 hearing lb2's priority 200", interval=0.05)
    assert v1["master"] == "lb2" and v2["peer"]["priority"] == 150, (v1, v2)
    print(f"\nlb2 preempted {took:.3f}s after the reloads")


def test_reload_advert_interval(lab, make_pair):
    pair = make_pair()
    key = pair.key
    wait_sync_established(pair)
    before = snapshot(pair)
    assert before["lb1"]["advert_interval_ms"] == 100 and before["lb2"]["advert_interval_ms"] == 100, before
    job = client.start_udp_probe(lab, 2.0)
    job.wait_event("answered", timeout=3)
    rewrite(pair, config_text(key, "50ms", cluster_extra={"lbd_timeout": "300ms"}))
    reload_ok(pair, "lb1", "lb2")
    # Watch a while: no transition, the new timers in force on both nodes.
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        for n, want in (("lb1", "MASTER"), ("lb2", "BACKUP")):
            v = pair.vrrp(n)
            assert v["state"] == want, f"{n} left {want} after the advert_interval reload: {v}"
        time.sleep(0.05)
    after = snapshot(pair)
    r = job.result()
    assert_stable(before, after, "advert_interval reload")
    for n in pair.nodes:
        assert after[n]["advert_interval_ms"] == 50, after
        assert after[n]["master_down_ms"] < before[n]["master_down_ms"], (before, after)
    # lb2 (priority 100): 3 x 50 + (256 - 100) x 50 / 256 = 180 ms
    assert after["lb2"]["master_down_ms"] == 180, after
    assert pair.vrrp("lb2")["peer"]["advert_interval_ms"] == 50
    assert r["lost"] == 0 and len(r["by_backend"]) == 1, r
    assert pair.assert_single_owner() == "lb1"


# ----------------------------------------------------------------------------- 4. key rotation

def test_key_rotation_with_reloads(lab, make_pair):
    """docs/deploy.md's rotation (add the new key second, swap, drop the old), reloading lb1 then lb2
    after each step, under a 1 ms UDP probe: nothing lost, nothing rejected, no transition, sync
    stays up. Then the wrong order: lb1 seals with a key lb2 lacks, and lb2 counts unknown_key."""
    old = lab.keygen(os.path.join(lab.tmpdir, "conf", "rot-old.key"))
    new = lab.keygen(os.path.join(lab.tmpdir, "conf", "rot-new.key"))
    extra = {"lbd_timeout": "300ms"}
    pair = make_pair(key=old)
    wait_sync_established(pair)
    steps = [("add the new key second", config_text(old, ADVERT, cluster_extra=extra, key2=new)),
             ("swap: seal with the new key", config_text(new, ADVERT, cluster_extra=extra, key2=old)),
             ("drop the old key", config_text(new, ADVERT, cluster_extra=extra))]
    job = client.start_udp_probe(lab, 2.0 + 1.5 * len(steps))
    job.wait_event("answered", timeout=3)
    base = snapshot(pair)
    for n in pair.nodes:
        assert base[n]["bad_mac"] == 0 and base[n]["unknown_key"] == 0 and base[n]["sync"] == "established", base
    for what, text in steps:
        before = snapshot(pair)
        rewrite(pair, text)
        reload_ok(pair, "lb1", "lb2")
        # A few heartbeats each way under the new keys, and new flows for the sync stream to carry.
        for n in pair.nodes:
            pair.wait_vrrp(n, {"adverts_received": lambda x, n=n: x >= before[n]["adverts_received"] + 3}, 2,
                           f"heartbeats to {n} after '{what}'", interval=0.05)
        g = client.http_gets(lab, 3, timeout=1.0)
        assert g["ok"] == 3, (what, g)
        pair.wait_lbd("lb2", {"sync": {"received_flows": lambda x: x >= before["lb2"]["received_flows"] + 3}}, 2,
                      f"lb2's lbd receiving the new flows over sync after '{what}'", interval=0.05)
        after = snapshot(pair)
        assert_stable(base, after, f"key rotation step '{what}'")
        assert after["lb1"]["digest"] == after["lb2"]["digest"], what
        for n in pair.nodes:
            assert after[n]["sync"] == "established", (what, after)
    r = job.result()
    assert r["lost"] == 0 and r["outage_count"] == 0, f"probes lost during the key rotation: {r['outages'][:5]}"
    assert len(r["by_backend"]) == 1 and r["duplicates"] == 0, r
    assert pair.assert_single_owner() == "lb1"

    # The wrong order: lb1 alone seals with a brand-new key that lb2 does not have.
    rogue = lab.keygen(os.path.join(lab.tmpdir, "conf", "rot-rogue.key"))
    good = pair.conf_text
    before = snapshot(pair)
    rewrite(pair, config_text(rogue, ADVERT, cluster_extra=extra, key2=new))
    try:
        reload_ok(pair, "lb1")
        pair.wait_vrrp("lb2", {"rejected": {"unknown_key": lambda x: x > before["lb2"]["unknown_key"]}}, 2,
                       "lb2 counting unknown_key", interval=0.01)
    finally:
        rewrite(pair, good)
        reload_ok(pair, "lb1")
    v2 = pair.vrrp("lb2")
    assert v2["rejected"]["bad_mac"] == before["lb2"]["bad_mac"], v2["rejected"]
    print(f"\nwrong order: lb2 counted {v2['rejected']['unknown_key']} unknown_key, "
          f"transitions {before['lb2']['transitions']} -> {v2['transitions']}")
    # Restored: lb1 MASTER again (lb2 may have taken over meanwhile), heartbeats and sync healthy.
    pair.wait_master("lb1", 3)
    pair.wait_backup("lb2", 3)
    assert pair.assert_single_owner() == "lb1"
    wait_sync_established(pair)
    v2 = pair.vrrp("lb2")
    # Three more heartbeats from lb1 (0.3 s of them), and not one rejected.
    v2b = pair.wait_vrrp("lb2", {"adverts_received": lambda x: x >= v2["adverts_received"] + 3}, 2,
                         "further heartbeats to lb2", interval=0.05)
    assert v2b["rejected"]["unknown_key"] == v2["rejected"]["unknown_key"], "lb2 still rejecting after the restore"


# ----------------------------------------------------------------------------- 5. broken reloads

@pytest.mark.parametrize("kind", ["syntax", "missing-key"])
def test_broken_reload_refused(lab, make_pair, kind):
    pair = make_pair()
    good = pair.conf_text
    wait_sync_established(pair)
    lines = good.splitlines()
    if kind == "syntax":
        lines.insert(3, "this line is not ini")
        where = f"{pair.conf}:4"
    else:
        where = os.path.join(lab.tmpdir, "conf", "no-such.key")
        lines.insert(3, f"key_file = {where}")
    before = snapshot(pair)
    rewrite(pair, "\n".join(lines) + "\n")
    try:
        for n in pair.nodes:
            r = lab.lbctl(n, "reload")
            assert r.returncode != 0, f"lbctl reload on {n} accepted a broken file: {r.stdout} {r.stderr}"
            vmsg = [line for line in r.stderr.splitlines() if line.startswith("lbctl: vrrpd:")]
            assert vmsg and where in vmsg[0], f"vrrpd's refusal does not name {where}: {r.stderr!r}"
        assert "reload refused" in lab.log_tail("lb1-vrrpd", 20), lab.log_tail("lb1-vrrpd", 20)
        # Five more heartbeats each way (half a second of the old timers) before looking again.
        for n in pair.nodes:
            pair.wait_vrrp(n, {"adverts_received": lambda x, n=n: x >= before[n]["adverts_received"] + 5}, 3,
                           f"heartbeats to {n} after the refused reload", interval=0.05)
        after = snapshot(pair)
        assert_stable(before, after, f"refused reload ({kind})")
        for n in pair.nodes:
            assert after[n]["digest"] == before[n]["digest"], f"{n}'s vrrpd took the broken file"
            assert after[n]["adverts_received"] > before[n]["adverts_received"], f"{n} hears no more heartbeats"
        assert pair.assert_single_owner(arp_checks=1) == "lb1"
    finally:
        rewrite(pair, good)
    reload_ok(pair, "lb1", "lb2")
    assert_stable(before, snapshot(pair), "good reload after a refused one")




@pytest.mark.parametrize("kind", ["syntax", "missing-key"])
def test_broken_reload_refused_by_lbd(lab, make_pair, kind):
    """The same broken files as above, as lbd sees them: refused, old config kept (docs/config.md)."""
    pair = make_pair()
    good = pair.conf_text
    lines = good.splitlines()
    if kind == "syntax":
        lines.insert(3, "this line is not ini")
        where = f"{pair.conf}:4"
    else:
        where = os.path.join(lab.tmpdir, "conf", "no-such.key")
        lines.insert(3, f"key_file = {where}")
    st0 = pair.lbd("lb1")
    rewrite(pair, "\n".join(lines) + "\n")
    try:
        r = lab.lbctl("lb1", "reload")
        assert r.returncode != 0
        st = pair.lbd("lb1")
        assert st["reloads"] == st0["reloads"] and st["config_digest"] == st0["config_digest"], (
            f"lbd took the broken file: reloads {st0['reloads']} -> {st['reloads']}, last_reload_error "
            f"{st['last_reload_error']!r}; lbctl said {r.stderr!r}")
        assert where in st["last_reload_error"], st["last_reload_error"]
    finally:
        rewrite(pair, good)


# The change a reload makes -> who refuses it, with what words in its line of lbctl's output.
RESTART_ONLY = {
    "sync_port": {"lbd": "sync_port changes only on restart"},
    "rx_ring_version": {"lbd": "rx_ring_version changes only on restart"},
    "peer_address": {"lbd": "node lb2 is at a new address", "vrrpd": "change only on restart"},
    "multicast": {"vrrpd": "multicast and user change only on restart"},
}


def restart_only_text(text, change):
    if change == "peer_address":
        return text.replace("address = 192.0.2.12\n", "address = 192.0.2.19\n")
    extra = {"sync_port": "sync_port = 8114", "rx_ring_version": "rx_ring_version = 3",
             "multicast": "multicast = 224.0.0.18"}[change]
    return text.replace("[cluster]\n", f"[cluster]\n{extra}\n", 1)


@pytest.mark.parametrize("change", list(RESTART_ONLY))
def test_restart_only_change_refused(lab, make_pair, change):
    """A reload that changes what a daemon sets up only at start is refused by that daemon, naming what
    changed, and the pair goes on as before: lbd keeps its sync listener, its rings and its sync peers
    (the nodes), vrrpd its socket (bound to our address, joined to the multicast group) and its peer.
    The other daemon of the node takes the file. Restoring the file, the next reload passes."""
    pair = make_pair()
    wait_sync_established(pair)
    good = pair.conf_text
    new = restart_only_text(good, change)
    assert new != good, change
    before = snapshot(pair)
    st0 = pair.status("lb1")
    rewrite(pair, new)
    try:
        r = lab.lbctl("lb1", "reload")
        assert r.returncode != 0, f"lbctl reload accepted {change}: {r.stdout} {r.stderr}"
        st = pair.status("lb1")
        for daemon, words in RESTART_ONLY[change].items():
            # lbctl prints vrrpd's refusal as "lbctl: vrrpd: ...", lbd's as "lbctl: FILE: ...".
            msg = [line for line in r.stderr.splitlines()
                   if words in line and line.startswith("lbctl: vrrpd:") == (daemon == "vrrpd")]
            assert msg, f"{daemon}'s refusal of {change} does not say {words!r}: {r.stderr!r}"
            assert st[daemon]["config_digest"] == st0[daemon]["config_digest"], f"{daemon} took {change}"
        assert st["lbd"]["reloads"] == st0["lbd"]["reloads"] + ("lbd" not in RESTART_ONLY[change])
        # Five more heartbeats each way, and the pair as it was: roles, sync, no rejection.
        for n in pair.nodes:
            pair.wait_vrrp(n, {"adverts_received": lambda x, n=n: x >= before[n]["adverts_received"] + 5}, 3,
                           f"heartbeats to {n} after the refused reload", interval=0.05)
        assert_stable(before, snapshot(pair), f"reload changing {change}")
        assert pair.assert_single_owner(arp_checks=1) == "lb1"
    finally:
        rewrite(pair, good)
    reload_ok(pair, "lb1")
    assert_stable(before, snapshot(pair), f"good reload after {change} was refused")


def test_multicast_heartbeats(lab, make_pair):
    """With `multicast` set, heartbeats go to the group instead of unicast to the peer: the election and
    the takeover work the same, and nothing is rejected (one copy of each heartbeat, not two)."""
    pair = make_pair(cluster_extra={"multicast": "224.0.0.18"})
    v1, v2 = pair.vrrp("lb1"), pair.vrrp("lb2")
    assert v1["state"] == "MASTER" and v2["state"] == "BACKUP", (v1, v2)
    pair.wait_vrrp("lb2", {"peer": {"state": "MASTER"}}, 2, "lb2 hearing lb1 by multicast", interval=0.05)
    received = pair.vrrp("lb2")["adverts_received"]
    pair.wait_vrrp("lb2", {"adverts_received": lambda x: x >= received + 10}, 3, "further heartbeats",
                   interval=0.05)
    rej = pair.vrrp("lb2")["rejected"]
    assert rej["replay"] == 0 and rej["bad_mac"] == 0 and rej["unknown_node"] == 0, rej
    pair.crash("lb1")
    pair.wait_master("lb2", 2)
    assert pair.assert_single_owner() == "lb2"

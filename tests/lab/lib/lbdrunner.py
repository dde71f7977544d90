"""One lbd without vrrpd in a node's namespace, for the suites that test lbd alone: --standalone
(always active), a lone standby that a test switches with `lbctl set-mode`, or (ecmp=True) a node of
a `mode = ecmp` config, which forwards without vrrpd and without --standalone.

    lb = LbdRunner(lab, "lb1")           # standalone
    lb.ensure(text)                      # (re)started with this config, every backend resolved
    lb.write(new_text); lb.ok("reload")  # change the file in place; the next ensure() restarts
    lb.counters(), lb.flows(), lb.status()
    lb.stop()                            # always (finally)
"""

import json

from .jsonmatch import wait_json
from .lab import CommandError, LabError


class LbdRunner:
    """lbd in `node`'s namespace with its config in conf/NODE.conf, restarted only when its config
    must change. `unresolved`: backend addresses that may stay unresolved (nobody has them)."""

    def __init__(self, lab, node="lb1", standalone=True, unresolved=(), ecmp=False):
        self.lab = lab
        self.node = node
        self.standalone = standalone and not ecmp
        self.ecmp = ecmp
        self.unresolved = set(unresolved)
        self.proc = None
        self.text = None   # the config last written
        self.conf = None
        self.dirty = False  # the running lbd may not run `text` (changed in place): restart on ensure

    # --- process
    def start(self, text):
        """Write the config and start lbd; no wait (wait_ready, or ensure, does that)."""
        self.text = text
        self.conf = self.lab.write_config(text, name=f"{self.node}.conf")
        self.proc = self.lab.start_lbd(self.node, self.conf, ["--standalone"] if self.standalone else [])
        self.dirty = False
        return self

    def ensure(self, text):
        """lbd running `text` with every backend resolved: as it is, or restarted."""
        if self.running() and text == self.text and not self.dirty:
            return self
        self.stop()
        self.start(text)
        self.wait_ready()
        return self

    def write(self, text):
        """Change the config file in place (for a reload); the next ensure() restarts."""
        self.text = text
        self.dirty = True
        with open(self.conf, "w") as f:
            f.write(self.lab.config_text(text))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def alive(self):
        """Raise LabError, with the tail of its log, unless lbd still runs."""
        if not self.running():
            rc = None if self.proc is None else self.proc.returncode
            raise LabError(f"lbd on {self.node} is not running (exit {rc}):\n"
                           + self.lab.log_tail(f"{self.node}-lbd"))

    def stop(self):
        """Stop lbd (SIGTERM); its exit code, None when it was not started."""
        rc = None
        if self.proc is not None:
            rc = self.lab.stop(self.proc)
            self.proc = None
        return rc

    # --- status
    def status(self):
        """The "lbd" part of `lbctl status --json`."""
        return self.lab.status(self.node)["lbd"]

    def counters(self):
        return self.status()["counters"]

    def wait_ready(self, timeout=5):
        """Wait until lbd is active (standalone, ecmp) or standby (not), with backends, every one up
        except the unresolved ones; returns its status. Fails at once if lbd exits."""
        def all_up(services):
            bs = [b for s in services for b in s["backends"] if b["address"] not in self.unresolved]
            return bs and all(b["state"] == "up" for b in bs)

        def status():
            self.alive()
            return self.status()

        active = self.standalone or self.ecmp
        mode = "active" if active else "standby"
        return wait_json(status, {"active": active, "services": all_up}, timeout,
                         f"lbd on {self.node} {mode} with every backend up",
                         ignore=(CommandError, ValueError, KeyError, TypeError))

    def wait_json(self, subset, timeout=5, what=None, interval=0.05):
        """Poll status() until it contains subset (lib.jsonmatch.json_cmp); returns it."""
        return wait_json(self.status, subset, timeout, what or f"lbd on {self.node}", interval,
                         ignore=(CommandError, ValueError, KeyError, TypeError))

    # --- lbctl
    def lbctl(self, *args):
        """`lbctl ARGS` on the node; CompletedProcess."""
        return self.lab.lbctl(self.node, *args)

    def ok(self, *args):
        """`lbctl ARGS` that must succeed; its stdout."""
        r = self.lbctl(*args)
        assert r.returncode == 0, (f"lbctl {' '.join(args)} on {self.node}: exit {r.returncode}: "
                                   f"{r.stdout} {r.stderr}")
        return r.stdout

    def flows(self):
        return json.loads(self.ok("flows", "--json", "--limit", "100000"))["flows"]

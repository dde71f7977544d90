"""BIRD 2 in a lab namespace: its config, control socket and pid file under the lab's run dir,
started through lab.popen (tracked, killed by the lab's cleanup), and `birdc -s SOCK` queries.
The system's bird service and its /run/bird socket are never used.

    b = Bird(lab, "router", text)       # writes run/router/bird/bird.conf
    b.start()                           # bird -f -c CONF -s SOCK -P PID; returns once birdc answers
    b.protocols()                       # {"lb1": {"proto": "BGP", "state": "up", "info": "Established"}, ...}
    b.wait_protocols({"lb1": "Established"}, timeout=10)
    b.bfd_sessions()                    # {"192.0.2.11": "Up", ...}
    b.stop()                            # SIGTERM (b.kill() for SIGKILL)
"""

import os
import shutil
import signal

from .lab import CommandError, LabError, wait_for

BIRD = os.environ.get("DSRLB_BIRD", "/usr/sbin/bird")
BIRDC = os.environ.get("DSRLB_BIRDC", "/usr/sbin/birdc")
SUN_PATH_MAX = 107  # sockaddr_un.sun_path, less the terminating NUL


def available():
    """True when bird and birdc are installed (Debian bird2)."""
    return os.access(BIRD, os.X_OK) and os.access(BIRDC, os.X_OK)


def parse_protocols(text):
    """`show protocols` output -> {name: {"proto", "table", "state", "since", "info"}}."""
    out = {}
    header = False
    for line in text.splitlines():
        if line.startswith("Name "):
            header = True
            continue
        if not header or not line.strip():
            continue
        cols = line.split(None, 5)
        if len(cols) < 5:
            continue
        out[cols[0]] = {"proto": cols[1], "table": cols[2], "state": cols[3], "since": cols[4],
                        "info": cols[5].strip() if len(cols) > 5 else ""}
    return out


def parse_bfd_sessions(text):
    """`show bfd sessions` output -> {neighbor address: state ("Up", "Down", "Init", "AdminDown")}."""
    out = {}
    for line in text.splitlines():
        cols = line.split()
        if len(cols) >= 3 and cols[0][:1].isdigit() and cols[2] in ("Up", "Down", "Init", "AdminDown"):
            out[cols[0]] = cols[2]
    return out


class Bird:
    """One bird process in `host`'s namespace, with its files in run/HOST/NAME/."""

    def __init__(self, lab, host, text=None, name="bird", rt_priority=None):
        self.lab = lab
        # SCHED_FIFO priority (chrt -f), or None: with BFD at 10 ms x 3 a bird descheduled for 30 ms
        # on a busy machine drops its sessions, as a vrrpd would miss its adverts.
        self.rt_priority = rt_priority
        self.host = host
        self.name = name
        self.dir = os.path.join(lab.run_dir(host), name)
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "bird.conf")
        self.sock = os.path.join(self.dir, "bird.ctl")
        self.pidfile = os.path.join(self.dir, "bird.pid")
        if len(self.sock) > SUN_PATH_MAX:
            raise LabError(f"control socket path too long for a unix socket: {self.sock} "
                           "(set DSRLB_LAB_TMP to a shorter directory)")
        self.proc = None
        self.text = None
        if text is not None:
            self.write(text)

    def __repr__(self):
        return f"<Bird {self.host}/{self.name} {'running' if self.running() else 'stopped'}>"

    @property
    def log(self):
        return f"{self.host}-{self.name}"

    # --- config
    def write(self, text):
        """Write the config file (a running bird reads it at configure())."""
        self.text = text
        with open(self.conf, "w") as f:
            f.write(text)
        return self.conf

    def check(self):
        """`bird -p -c CONF`: parse the config and exit; raises CommandError on a bad config."""
        return self.lab.run(self.host, [BIRD, "-p", "-c", self.conf], timeout=10)

    def configure(self):
        """`birdc configure`: apply the config file to the running bird."""
        out = self.birdc("configure")
        if "Reconfigured" not in out and "Reconfiguration in progress" not in out:
            raise LabError(f"bird on {self.host}: configure failed:\n{out}")
        return out

    # --- process
    def start(self, timeout=5):
        """Start bird in the foreground (so the lab tracks and kills it) and wait for its control
        socket; fails at once, with the log, if bird exits."""
        if self.running():
            raise LabError(f"bird on {self.host} already runs")
        for path in (self.sock, self.pidfile):
            if os.path.exists(path):
                os.unlink(path)
        rt = ["chrt", "-f", str(self.rt_priority)] if self.rt_priority and shutil.which("chrt") else []
        self.proc = self.lab.popen(self.host, rt + [BIRD, "-f", "-c", self.conf, "-s", self.sock,
                                                    "-P", self.pidfile], log=self.log)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"bird on {self.host} exited with {self.proc.returncode}:\n"
                                     + self.lab.log_tail(self.log))
            return self.birdc("show status", timeout=2).find("Daemon is up") >= 0

        wait_for(ready, timeout, interval=0.02, what=f"bird on {self.host} answering on {self.sock}",
                 ignore=(CommandError,))
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=5):
        """SIGTERM (bird withdraws its routes and closes its sessions cleanly); exit code."""
        if self.proc is None:
            return None
        return self.lab.stop(self.proc, signal.SIGTERM, timeout)

    def kill(self):
        """SIGKILL bird itself (a crash) and reap it."""
        if self.running():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    # --- queries
    def birdc(self, command, timeout=5):
        """`birdc -s SOCK COMMAND` in the namespace; its stdout."""
        args = command.split() if isinstance(command, str) else list(command)
        return self.lab.run(self.host, [BIRDC, "-s", self.sock] + args, timeout=timeout).stdout

    def protocols(self):
        return parse_protocols(self.birdc("show protocols"))

    def bfd_sessions(self):
        return parse_bfd_sessions(self.birdc("show bfd sessions"))

    def routes(self, args="all"):
        """`show route ARGS` as text."""
        return self.birdc("show route " + args)

    def wait_protocols(self, want, timeout=10, interval=0.05):
        """Poll until every protocol in want ({name: info}, e.g. "Established", or {name: "up"} for the
        state) matches; returns protocols()."""
        def match():
            ps = self.protocols()
            for name, v in want.items():
                p = ps.get(name)
                if p is None or (p["info"] != v and p["state"] != v):
                    return None
            return ps

        return wait_for(match, timeout, interval, f"bird on {self.host}: protocols {want}",
                        ignore=(CommandError,))

    def wait_bfd(self, want, timeout=10, interval=0.05):
        """Poll until the BFD sessions include want ({neighbor: state}); returns bfd_sessions()."""
        def match():
            s = self.bfd_sessions()
            return s if all(s.get(k) == v for k, v in want.items()) else None

        return wait_for(match, timeout, interval, f"bird on {self.host}: BFD sessions {want}",
                        ignore=(CommandError,))

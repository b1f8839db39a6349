"""Process, /proc and document helpers for the reliability scenarios (run.py)."""
import json
import os
import resource
import signal
import socket
import subprocess
import threading
import time

ROOT = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                      cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
EX = os.path.join(ROOT, "target", "release", "examples")
ABUSE = os.path.join(ROOT, "target", "release", "ringcore-abuse")
TICK = os.sysconf("SC_CLK_TCK")
SERVER_CPU, LOAD_CPU = 0, 1
CHILDREN = []  # every process we started, killed by pid at exit
TMP = "/tmp/ringcore-reliability"


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def _pre(cpu, nofile, nice):
    def f():
        os.setpgrp()
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        if nice:
            os.nice(nice)
    return f


def spawn(cmd, cpu=None, nofile=None, nice=0, netns=None, out=None, err=None, stdin=None):
    """Starts cmd (pinned, with an fd limit, niced, in a netns) and records it."""
    if netns:
        cmd = ["ip", "netns", "exec", netns] + cmd
    p = subprocess.Popen(cmd, stdout=out or subprocess.DEVNULL, stderr=err or subprocess.DEVNULL,
                         stdin=stdin or subprocess.DEVNULL, preexec_fn=_pre(cpu, nofile, nice))
    CHILDREN.append(p)
    return p


def kill_all(since=0):
    """Kills (by pid) the processes we started, those from index `since` on."""
    for p in CHILDREN[since:]:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass


def wait_port(host, port, timeout=15.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection((host, port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def wait_listen(pid, port, timeout=15.0):
    """Waits until process pid (in whatever netns it runs) has a socket listening on
    port, without connecting to it (a probe connection would itself be served)."""
    hexport = f"{port:04X}"
    end = time.time() + timeout
    while time.time() < end:
        try:
            with open(f"/proc/{pid}/net/tcp") as f:
                for line in f.readlines()[1:]:
                    w = line.split()
                    if w[1].endswith(":" + hexport) and w[3] == "0A":
                        return True
        except OSError:
            return False
        time.sleep(0.05)
    return False


def abuse(args, addr, timeout=None, bg=False, cpu=LOAD_CPU, opt_timeout=5.0, nice=5):
    """Runs ringcore-abuse (pinned to the load CPU, niced unless throughput is what is
    measured); its JSON, or the Popen."""
    cmd = [ABUSE, "--addr", addr, "--timeout", str(opt_timeout)] + [str(a) for a in args]
    if bg:
        f = open(os.path.join(TMP, f"abuse-{time.time_ns()}.json"), "w+")
        p = spawn(cmd, cpu=cpu, nice=nice, out=f, nofile=20000)
        p.outfile = f
        return p
    p = spawn(cmd, cpu=cpu, nice=nice, out=subprocess.PIPE, nofile=20000)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        return {"error": "client timed out"}
    try:
        return json.loads(out.decode().strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"error": f"client exit {p.returncode}"}


def collect(p, timeout=None):
    """The JSON of a background abuse run."""
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    p.outfile.seek(0)
    try:
        return json.loads(p.outfile.read().strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"error": f"client exit {p.returncode}"}


def snap(pid):
    """rss (MiB), fds, cpu seconds (user+sys) of pid, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read().rsplit(")", 1)[1].split()
        cpu = (int(st[11]) + int(st[12])) / TICK
        rss = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        return {"t": time.time(), "rss": rss, "fds": fds, "cpu": cpu}
    except (OSError, IndexError, ValueError):
        return None


class Monitor:
    """Samples a process every 100 ms in a thread: peak RSS / fds and CPU windows."""

    def __init__(self, pid):
        self.pid, self.samples, self.stop = pid, [], False
        self.th = threading.Thread(target=self.run, daemon=True)
        self.th.start()

    def run(self):
        while not self.stop:
            s = snap(self.pid)
            if s is None:
                return
            self.samples.append(s)
            time.sleep(0.1)

    def close(self):
        self.stop = True
        self.th.join()

    def window(self, t0, t1):
        w = [s for s in self.samples if t0 <= s["t"] <= t1]
        if len(w) < 2:
            return {"rss_peak": None, "fds_peak": None, "cpu_pct": None}
        dt = w[-1]["t"] - w[0]["t"]
        return {"rss_peak": max(s["rss"] for s in w), "fds_peak": max(s["fds"] for s in w),
                "cpu_pct": 100.0 * (w[-1]["cpu"] - w[0]["cpu"]) / dt if dt > 0 else None}


def cpu_pct(pid, secs):
    a = snap(pid)
    time.sleep(secs)
    b = snap(pid)
    if not a or not b:
        return None
    return 100.0 * (b["cpu"] - a["cpu"]) / (b["t"] - a["t"])


def wait_fds(pid, target, secs):
    """Polls until pid's fd count <= target; seconds it took, or None."""
    t0 = time.time()
    while time.time() - t0 < secs:
        s = snap(pid)
        if s and s["fds"] <= target:
            return time.time() - t0
        time.sleep(0.05)
    return None


def stop(p, sig=signal.SIGINT, timeout=10.0):
    """Signals p and waits; seconds to exit, or None (then it is killed)."""
    if p.poll() is not None:
        return 0.0
    t0 = time.time()
    os.kill(p.pid, sig)
    try:
        p.wait(timeout)
        return time.time() - t0
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        return None


def replace_section(path, body, begin="<!-- scenarios:begin -->", end="<!-- scenarios:end -->"):
    """Rewrites only the text between the markers (creating file/markers if absent)."""
    text = open(path).read() if os.path.exists(path) else "# Reliability\n"
    if begin not in text or end not in text:
        text = text.rstrip("\n") + "\n\n## Soak and abuse scenarios\n\n" + begin + "\n" + end + "\n"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    open(path, "w").write(head + begin + "\n" + body.rstrip("\n") + "\n" + end + tail)


def f1(x, unit=""):
    return "n/a" if x is None else f"{x:.1f}{unit}"

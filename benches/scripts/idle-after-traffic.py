#!/usr/bin/env python3
"""Server memory per idle connection after one round trip (issue 12 item 7).

    benches/scripts/idle-after-traffic.py [--conns 15000] [--ping 128] [--idle 12]
        [--backends uring,epoll] [--server-args "..."]

For each backend: starts `examples/echo` (one worker, CPU 0), records its VmRSS, then
runs a holder (this script with --client, a separate process: each process may own
at most 20,000 fds) whose connections each send 128 B once, wait for the echo, then
idle. Prints the server's VmRSS growth per connection right after the last round trip
and again after `--idle` seconds (the pools trim what sat unused for 5 s), plus the
server's pool counters from its Prometheus dump at exit.
Needs `cargo build --release --example echo -p ringcore` first.
"""
import argparse
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ECHO = os.path.join(ROOT, "target/release/examples/echo")



def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def anon_areas(pid):
    """Rss (kB) of each mapping, keyed by address range and name."""
    out, cur = {}, None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                parts = line.split()
                cur = f"{parts[0]} {parts[5] if len(parts) > 5 else '[anon]'}"
                out[cur] = 0
            elif line.startswith("Rss:") and cur:
                out[cur] = int(line.split()[1])
    return out


def wait_listening(port, deadline=10.0):
    end = time.time() + deadline
    needle = f":{port:04X} "
    while time.time() < end:
        with open("/proc/net/tcp") as f:
            if any(needle in l and " 0A " in l for l in f):
                return
        time.sleep(0.05)
    sys.exit(f"server did not listen on port {port}")


def one(backend, a, port):
    env = dict(os.environ, RINGCORE_BACKEND=backend)
    srv = subprocess.Popen(
        ["taskset", "-c", "0", ECHO, "--addr", f"127.0.0.1:{port}", "--workers", "1"]
        + a.server_args.split(),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_listening(port)
        time.sleep(0.3)
        base = rss_kb(srv.pid)
        areas0 = anon_areas(srv.pid)
        gen = subprocess.Popen(
            ["taskset", "-c", "1", sys.executable, os.path.abspath(__file__), "--client", str(port),
             "--conns", str(a.conns), "--ping", str(a.ping), "--sources", str(a.sources),
             "--idle", str(a.idle + 2)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # The client prints "hold: ..." once every round trip came back.
        line = gen.stderr.readline()
        while line and not line.startswith("hold:"):
            line = gen.stderr.readline()
        t0 = time.time()
        after = rss_kb(srv.pid)
        time.sleep(a.idle)
        idle = rss_kb(srv.pid)
        areas1 = anon_areas(srv.pid)
        trimmed = None
        if a.gdb_trim:
            # Diagnosis only: how much of the growth is free memory malloc kept.
            subprocess.run(["gdb", "-p", str(srv.pid), "-batch", "-ex",
                            "call (int)malloc_trim(0)"], capture_output=True)
            trimmed = rss_kb(srv.pid)
        out, err = gen.communicate(timeout=120)
        m = re.search(r"opened (\d+) \(round trip done: (\d+)\)", line + out)
        opened, pinged = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
        n = max(pinged if a.ping else opened, 1)
        print(f"{backend:6} conns {opened} round trips {pinged}: base {base} kB, "
              f"after traffic +{(after - base) * 1024 / n:.0f} B/conn, "
              f"after {a.idle:.0f} s idle +{(idle - base) * 1024 / n:.0f} B/conn "
              + (f"after malloc_trim +{(trimmed - base) * 1024 / n:.0f} B/conn "
                 if trimmed is not None else "")
              + f"({line.strip()})", flush=True)
    finally:
        srv.terminate()
        try:
            _, serr = srv.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            srv.kill()
            _, serr = srv.communicate()
    grown = sorted(((areas1.get(k, 0) - areas0.get(k, 0), k) for k in areas1), reverse=True)
    print("    grown mappings (kB):", ", ".join(f"{k.split()[1]} {d}" for d, k in grown[:3] if d))
    for l in serr.splitlines():
        if re.match(r"ringcore_(pool|spare|pipes)", l):
            print("   ", l)


def client(a):
    """The holder: a separate process (each process may own at most 20,000 fds).
    Opens `conns` connections from 127.0.0.2.. (`sources` of them), sends `ping`
    bytes on each, waits for them to come back, reports, then idles."""
    import selectors
    import socket
    sel = selectors.EpollSelector()
    want = {}
    t0 = time.time()
    for i in range(a.conns):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_IP, 24, 1)  # IP_BIND_ADDRESS_NO_PORT
        s.bind((f"127.0.0.{2 + i % a.sources}", 0))
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", a.client))
        sel.register(s, selectors.EVENT_WRITE)
        want[s.fileno()] = [s, a.ping, False]
    opened = done = 0
    pending = len(want)
    while pending and time.time() - t0 < 120:
        for key, ev in sel.select(timeout=1.0):
            st = want[key.fd]
            s = st[0]
            if not st[2]:
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    sel.unregister(s)
                    pending -= 1
                    continue
                st[2] = True
                opened += 1
                if a.ping == 0:
                    sel.unregister(s)
                    pending -= 1
                    continue
                s.send(b"p" * a.ping)
                sel.modify(s, selectors.EVENT_READ)
                continue
            n = len(s.recv(65536))
            st[1] -= n
            if st[1] <= 0 or n == 0:
                done += st[1] <= 0
                sel.unregister(s)
                pending -= 1
    print(f"hold: opened {opened} (round trip done: {done}) in {time.time() - t0:.2f} s",
          file=sys.stderr, flush=True)
    time.sleep(a.idle)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=15000)
    ap.add_argument("--ping", type=int, default=128)
    ap.add_argument("--idle", type=float, default=12.0)
    ap.add_argument("--sources", type=int, default=8)
    ap.add_argument("--backends", default="uring,epoll")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--server-args", default="")
    ap.add_argument("--port", type=int, default=7312)
    ap.add_argument("--gdb-trim", action="store_true",
                    help="diagnosis: call malloc_trim(0) in the server through gdb at the end")
    ap.add_argument("--client", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.client:
        return client(a)
    for r in range(a.rounds):
        for b in a.backends.split(","):
            one(b, a, a.port)


if __name__ == "__main__":
    main()

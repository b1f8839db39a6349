#!/usr/bin/env python3
"""Issue 12 item 4 ablation: the io_uring set-up options on and off, alternating.

Variants (environment of the server): off (all off), `reg`
(RINGCORE_REGISTERED_RING=1), `skip` (RINGCORE_CQE_SKIP=1), `msg` (RINGCORE_MSG_RING=1),
`direct` (RINGCORE_DIRECT_FDS=1, item 1: direct descriptors; pass
`--variants off,direct`).
Scenarios: echo 128 B closed loop at 1/50/500 connections (ringcore-load), HTTP
/plaintext at pipeline depth 1 and 16 over 50 keep-alive connections, and depth 1 with
`Connection: close` (a new connection per request: where cancels happen) (wrk).

Server: one worker pinned to CPU 0 (`--cpus 0`); load pinned to CPU 1. Per run:
server CPU us/req (utime+stime of the whole process from /proc/PID/stat over the
load run, warm-up included, divided by the requests the server answered), syscalls/req
and CQEs/req from the server's own counters (echo prints them on exit; http serves
/metrics), and CQEs/req from
`perf stat -e io_uring:io_uring_complete` over the load run (the kernel's count).
Every round runs each variant once, in rotated order; the table gives medians and the
median of the per-round ratios to `off`.

    cargo build --release --example echo --example http -p ringcore
    cargo build --release -p ringcore-benches --bin ringcore-load
    benches/scripts/ablation-ring.py [--rounds 3] [--secs 3] [--only echo-1,http-d16]
"""

import argparse, json, os, re, signal, statistics, subprocess, sys, time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
REL = os.path.join(ROOT, "target", "release")
VARIANTS = {
    "off": {},
    "reg": {"RINGCORE_REGISTERED_RING": "1"},
    "skip": {"RINGCORE_CQE_SKIP": "1"},
    "msg": {"RINGCORE_MSG_RING": "1"},
    "direct": {"RINGCORE_DIRECT_FDS": "1"},
}
BASE_ENV = {"RINGCORE_REGISTERED_RING": "0", "RINGCORE_CQE_SKIP": "0", "RINGCORE_MSG_RING": "0",
            "RINGCORE_DIRECT_FDS": "0"}
TCK = os.sysconf("SC_CLK_TCK")
PORT = 7411


def scenarios():
    s = {}
    for c in (1, 50, 500):
        s[f"echo-{c}"] = ("echo", c, None)
    s["http-d1"] = ("http", 50, 1)
    s["http-d16"] = ("http", 50, 16)
    s["http-close"] = ("http-close", 50, 1)
    return s


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        v = f.read().rsplit(")", 1)[1].split()
    return int(v[11]) + int(v[12])


def wait_port(port):
    for _ in range(200):
        out = subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout
        if f":{port} " in out:
            return
        time.sleep(0.05)
    raise SystemExit(f"server did not listen on {port}")


def counter(log, name):
    m = re.search(r"ringcore_%s_total (\d+)" % name, log)
    return int(m.group(1)) if m else None


def run(kind, conns, depth, variant, secs):
    env = {**os.environ, **BASE_ENV, **VARIANTS[variant]}
    env.pop("RINGCORE_BACKEND", None)
    example = "echo" if kind == "echo" else "http"
    log_path = f"/tmp/ablation-ring-{os.getpid()}.log"
    log = open(log_path, "w")
    srv = subprocess.Popen(
        ["taskset", "-c", "0", os.path.join(REL, "examples", example), "--addr",
         f"127.0.0.1:{PORT}", "--workers", "1", "--cpus", "0", "--backend", "uring"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_port(PORT)
    perf_out = f"/tmp/ablation-ring-perf-{os.getpid()}.txt"
    perf = subprocess.Popen(["perf", "stat", "-x,", "-e", "io_uring:io_uring_complete",
                             "-p", str(srv.pid), "-o", perf_out],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.2)
    t0 = cpu_ticks(srv.pid)
    if kind == "echo":
        out = subprocess.run(
            [os.path.join(REL, "ringcore-load"), "echo", "--addr", f"127.0.0.1:{PORT}",
             "-c", str(conns), "--size", "128", "-d", str(secs), "--warmup", "1",
             "--cpu", "1", "--json"], capture_output=True, text=True, check=True).stdout
        r = json.loads(out)
        client_reqs = r.get("requests") or r.get("completed") or 0
    else:
        cmd = ["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", f"-d{secs}s"]
        if kind == "http-close":
            cmd += ["-H", "Connection: close"]
        cmd += ["-s", os.path.join(ROOT, "benches", "scripts", "pipeline.lua"),
                f"http://127.0.0.1:{PORT}/plaintext", "--", str(depth)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        client_reqs = int(re.search(r"(\d+) requests in", out).group(1))
    t1 = cpu_ticks(srv.pid)
    perf.send_signal(signal.SIGINT)
    perf.wait()
    metrics = ""
    if kind != "echo":
        # The http example serves its counters; the echo example prints them on exit.
        metrics = subprocess.run(["curl", "-s", f"http://127.0.0.1:{PORT}/metrics"],
                                 capture_output=True, text=True).stdout
    srv.send_signal(signal.SIGINT)
    try:
        srv.wait(timeout=15)
    except subprocess.TimeoutExpired:
        srv.kill()
        srv.wait()
    log.close()
    text = metrics or open(log_path).read()
    kernel_cqes = None
    try:
        for line in open(perf_out):
            if "io_uring_complete" in line:
                kernel_cqes = int(line.split(",")[0])
    except (OSError, ValueError):
        pass
    # Echo: the server's own count (the CPU and perf windows include the load's
    # warm-up second); wrk has no warm-up, so its count is the window's.
    if kind == "echo":
        bout = counter(text, "bytes_out")
        srv_reqs = bout // 128 if bout else client_reqs
    else:
        srv_reqs = client_reqs
    sysc, cqes = counter(text, "syscalls"), counter(text, "cqes")
    return {
        "us_req": (t1 - t0) / TCK * 1e6 / max(srv_reqs, 1),
        "sys_req": sysc / max(srv_reqs, 1) if sysc is not None else float("nan"),
        "cqe_req": cqes / max(srv_reqs, 1) if cqes is not None else float("nan"),
        "kcqe_req": kernel_cqes / max(srv_reqs, 1) if kernel_cqes else float("nan"),
        "rps": client_reqs / secs,
        "wakes": counter(text, "msg_ring_wakes") or 0,
        "direct_ops": counter(text, "direct_ops") or 0,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--secs", type=int, default=3)
    ap.add_argument("--only", default="")
    ap.add_argument("--variants", default="off,reg,skip,msg")
    a = ap.parse_args()
    names = a.variants.split(",")
    scen = scenarios()
    if a.only:
        scen = {k: v for k, v in scen.items() if k in a.only.split(",")}
    for name, (kind, conns, depth) in scen.items():
        res = {v: [] for v in names}
        for rnd in range(a.rounds):
            order = names[rnd % len(names):] + names[:rnd % len(names)]
            for v in order:
                res[v].append(run(kind, conns, depth, v, a.secs))
                print(f"# {name} round {rnd} {v}: {res[v][-1]}", file=sys.stderr, flush=True)
        for v in names:
            med = lambda k: statistics.median(x[k] for x in res[v])
            ratios = [res[v][i]["us_req"] / res["off"][i]["us_req"] for i in range(a.rounds)]
            print(f"| {name} | {v} | {med('rps'):,.0f} | {med('us_req'):.2f} | "
                  f"{statistics.median(ratios):.3f} | {med('sys_req'):.4f} | "
                  f"{med('cqe_req'):.3f} | {med('kcqe_req'):.3f} |", flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# Soak and abuse scenarios (issue 8) against the example servers on both backends;
# rewrites the "Soak and abuse scenarios" section of docs/reliability.md.
#
#   benches/scripts/reliability/run.sh [--quick] [--churn N] [--only churn,slow,...]
#                                      [--backends uring,epoll] [--no-nginx] [--no-doc]
#
# Needs root (netns, nft, prlimit), 2 CPUs (server on 0, load on 1), fd hard limit
# >= 20,000. Installs slowhttptest, nginx, wrk, nftables with apt-get if missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(git -C "$here" rev-parse --show-toplevel)"
cd "$root"

cleanup() {
    # Our netns/veth (the nft table lives inside the netns and goes with it).
    ip link del rcrel0 2>/dev/null || true
    ip netns del rcrel 2>/dev/null || true
    # Our children only (by pid, from this shell's job table).
    for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

need=()
for t in slowhttptest nginx wrk nft curl; do command -v "$t" >/dev/null || need+=("$t"); done
if ((${#need[@]})); then
    pkgs=("${need[@]/nft/nftables}")
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
# Distribution nginx may autostart on :80; we use our own single-process instance.

nice cargo build --release --examples -p ringcore 2>&1 | tail -1
nice cargo build --release -p ringcore-benches --bin ringcore-abuse 2>&1 | tail -1

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
python3 "$here/run.py" "$@" &
wait $!

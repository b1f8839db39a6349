#!/usr/bin/env bash
# The issue 12 targets and the fast-path ablation, measured with benches/pair (two
# servers side by side on CPU 0 at the same fixed rate; see its header for why).
#
#   cargo build --release -p ringcore-benches --bins --features http-peers
#   cargo build --release --example echo --example http --example fileserver
#   benches/scripts/pairs-issue12.sh OUT_DIR [ROUNDS]
#
# Every line of OUT_DIR/summary.txt is one pair: the median ratio A/B of server
# proc µs per request, its bootstrap 95 % interval and quartiles. Below 1: A is cheaper.
# Takes about 40 minutes at 12 rounds; needs an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:?out dir}; rounds=${2:-12}
mkdir -p "$out"
ECHO=(--scenario echo-128-c500 --rate 30000)
HTTP=(--scenario http-d1 --rate 30000)
FILE=(--scenario file-1mib-c10 --rate 200)
pair() { benches/pair --rounds "$rounds" --secs 3 --out "$out" "$@" 2>>"$out/log.txt" | tee -a "$out/summary.txt"; }
# Calibration: a server against itself should give 1.00.
pair --a tokio --b tokio "${ECHO[@]}"
pair --a ringcore-uring --b ringcore-uring "${HTTP[@]}"
pair --a ringcore-uring --b ringcore-uring "${FILE[@]}"
# Targets.
pair --a ringcore-uring --b tokio "${ECHO[@]}"
pair --a ringcore-epoll --b tokio "${ECHO[@]}"
pair --a ringcore-uring --b hyper "${HTTP[@]}"
pair --a ringcore-uring --b nginx "${HTTP[@]}"
pair --a ringcore-uring --b tokio "${HTTP[@]}"
pair --a ringcore-epoll --b tokio "${HTTP[@]}"
pair --a ringcore-uring --b ringcore-epoll "${FILE[@]}"
pair --a ringcore-uring --b nginx "${FILE[@]}"
# Ablation: A = the switch on, B = the defaults.
for sw in RINGCORE_DIRECT_FDS=1 RINGCORE_REGISTERED_RING=1 RINGCORE_RECV_BUNDLE=1 RINGCORE_BUF_INC=1 RINGCORE_CQE_SKIP=1; do
  for sc in ECHO HTTP FILE; do
    declare -n args=$sc
    pair --a ringcore-uring --a-env "$sw" --b ringcore-uring "${args[@]}"
  done
done
# SEND_ZC at its 16 KiB threshold, with loopback peers zero-copied too (without
# SEND_ZC_LOCAL a loopback peer gets copies) and without.
pair --a ringcore-uring --a-env RINGCORE_SEND_ZC=16384 --a-env RINGCORE_SEND_ZC_LOCAL=1 --b ringcore-uring --scenario echo-16k-c50 --rate 10000
pair --a ringcore-uring --a-env RINGCORE_SEND_ZC=16384 --b ringcore-uring --scenario echo-16k-c50 --rate 10000
# Files by the splice pair instead of sendfile (the default), on both backends.
pair --a ringcore-uring --a-env RINGCORE_SENDFILE=0 --b ringcore-uring "${FILE[@]}"
pair --a ringcore-epoll --a-env RINGCORE_SENDFILE=0 --b ringcore-epoll "${FILE[@]}"
for mode in ring drain; do
  pair --a ringcore-uring --a-env RINGCORE_SPLICE=$mode --b ringcore-uring "${FILE[@]}"
done
# The file server's per-request hand-off of resolve/open/fstat to its helper thread:
# with the open-file cache (a cached lookup is answered on the worker) against without,
# and against nginx (whose open_file_cache is off, but which opens on its worker).
pair --a ringcore-uring-ofc --b ringcore-uring "${FILE[@]}"
pair --a ringcore-uring-ofc --b nginx "${FILE[@]}"
pair --a ringcore-uring-ofc --b ringcore-epoll-ofc "${FILE[@]}"
# File lookups on the worker (the default: openat2 with RESOLVE_CACHED) against every
# lookup on the helper thread, on both backends; and the default against epoll and nginx.
pair --a ringcore-uring --b ringcore-uring-helper "${FILE[@]}"
pair --a ringcore-epoll --b ringcore-epoll-helper "${FILE[@]}"

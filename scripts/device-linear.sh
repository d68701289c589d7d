#!/usr/bin/env bash
# Runs ON the GPU machine: builds only what bench_linear needs (scripts/device-build.sh with
# QP_TARGET=bench_linear: the carried .deps, sm_90a, Release) and runs it: every linear kernel x
# weight type x the decode shapes of Qwen2.5 0.5B / 1.5B / 7B against the card's read ceiling
# (bench/bench_linear.cu). Arguments go to bench_linear (e.g. --check, --models 1.5B, --defaults).
# Writes under $OUT: linear.txt (the tables), linear-progress.log, card.txt, linear-build.log.
#   QP_LINEAR_TIMEOUT  seconds bench_linear may run (default 420)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/device-out}
mkdir -p "$out"
b=${QP_BUILD_DIR:-$root/build-device}
start=$(date +%s)
if ! QP_BUILD_DIR=$b QP_TARGET=bench_linear "$root/scripts/device-build.sh" > "$out/linear-build.log" 2>&1; then
  echo "device-linear: build failed" >&2
  tail -40 "$out/linear-build.log" >&2
  exit 1
fi
echo "device-linear: built in $(($(date +%s) - start)) s" >&2
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.sm,clocks.mem,memory.total --format=csv \
  > "$out/card.txt" 2>&1 || true
t0=$(date +%s)
timeout "${QP_LINEAR_TIMEOUT:-420}" "$b/bench/bench_linear" "$@" > "$out/linear.txt" 2> "$out/linear-progress.log"
rc=$?
echo "device-linear: bench_linear $* exited $rc after $(($(date +%s) - t0)) s" >&2
grep -E '^(bench_linear|read ceiling|ceiling used|FAIL)' "$out/linear.txt" | head -40 >&2
exit $rc

#!/usr/bin/env bash
# Runs ON the GPU machine: issue 18's measurements in one command (docs/performance.md, "A resident
# kernel"). Builds only what they need (scripts/device-build.sh: the carried .deps, sm_90a,
# Release), then
#   1. test_grid_sync: grid_sync.cuh's barriers, dependencies, watch and cooperative refusal
#   2. bench_persistent --check: the 0.5B step's 96 linears, one resident kernel against a graph
#      of one launch per node (same tile code), all outputs checked; the file's block types, every
#      node Q8_0, and two blocks an SM
#   3. bench_boundary: a graph boundary against four grid-wide barriers, and the read ceiling
# Writes under $OUT: card.txt, persistent-build.log, grid_sync.txt, persistent.txt, persistent-q8_0.txt,
# persistent-2.txt, boundary.txt.
# Exit status nonzero when the build, the test or a benchmark's check failed.
#   QP_BUILD_DIR  build folder (default <repo>/build-device)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/device-out}
mkdir -p "$out"
b=${QP_BUILD_DIR:-$root/build-device}
start=$(date +%s)
if ! QP_BUILD_DIR=$b QP_TARGET="test_grid_sync bench_persistent bench_boundary" "$root/scripts/device-build.sh" \
  > "$out/persistent-build.log" 2>&1; then
  echo "device-persistent: build failed" >&2
  tail -40 "$out/persistent-build.log" >&2
  exit 1
fi
echo "device-persistent: built in $(($(date +%s) - start)) s" >&2
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv > "$out/card.txt" 2>&1 || true
rc=0
timeout 60 "$b/tests/test_grid_sync" > "$out/grid_sync.txt" 2>&1 || rc=1
timeout 120 "$b/bench/bench_persistent" --check > "$out/persistent.txt" 2>&1 || rc=1
timeout 120 "$b/bench/bench_persistent" --check --type Q8_0 > "$out/persistent-q8_0.txt" 2>&1 || rc=1
timeout 120 "$b/bench/bench_persistent" --check --blocks-per-sm 2 > "$out/persistent-2.txt" 2>&1 || rc=1
timeout 60 "$b/bench/bench_boundary" 144 > "$out/boundary.txt" 2>&1 || rc=1
cat "$out/card.txt" "$out/grid_sync.txt" "$out/persistent.txt" "$out/persistent-q8_0.txt" "$out/persistent-2.txt" \
  "$out/boundary.txt"
echo "device-persistent: exit $rc after $(($(date +%s) - start)) s" >&2
exit $rc

#!/usr/bin/env bash
# Runs ON the GPU machine after scripts/device-e2e.sh's build and synth steps (or runs them):
# the time of every kernel of a few eager decode steps of the same-shape synthetic model, by
# Nsight Compute (ncu --clock-control none: the card's clocks are left alone), as CSV in $OUT,
# plus the decode graph's node count (qrun -v). Each kernel is timed in isolation (ncu
# serialises launches), so the sum is the GPU time of a step without launch gaps.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/device-out}
mkdir -p "$out"
b=${QP_BUILD_DIR:-$root/build-device}
work=${TMPDIR:-/tmp}/qp-e2e
[ -x "$b/runtime/qrun" ] && [ -f "$work/synth.yaml" ] || QP_STEPS="build synth" "$root/scripts/device-e2e.sh" > /dev/null
export PATH=/usr/local/cuda/bin:$PATH
"$b/runtime/qrun" "$work/synth.yaml" -m "$work/synth.gguf" --device cuda -v -p a -n 8 --temp 0 \
  > /dev/null 2> "$out/verbose.txt"
grep -E 'captured|device memory' "$out/verbose.txt"
# -p a: one prompt token, so every step runs the decode program; -n 3: three decode steps.
timeout ${QP_NCU_TIMEOUT:-240} ncu --clock-control none --metrics gpu__time_duration.sum --csv \
  "$b/runtime/qrun" "$work/synth.yaml" -m "$work/synth.gguf" --device cuda --no-graph -p a -n 3 --temp 0 \
  > "$out/ncu.csv" 2> "$out/ncu.err"
echo "ncu rc=$? rows $(grep -c gpu__time_duration "$out/ncu.csv")"
tail -3 "$out/ncu.err"

#!/usr/bin/env bash
# Times `qplan compile` of a model N times (default: the default model, 20 runs) and prints
# min / median / max wall time in ms. Usage: bench/plan_compile.sh [model.gguf] [N]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
qplan=${QP_BUILD_DIR:-$root/build}/compiler/qplan
model=${1:-$HOME/.cache/qplan/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf}
n=${2:-20}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for ((i = 0; i < n; i++)); do
  t0=$(date +%s%N)
  "$qplan" compile "$model" -o "$out/plan.yaml" >/dev/null
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000))
done | sort -n | awk '{a[NR]=$1} END {printf "qplan compile x%d: min %.1f ms, median %.1f ms, max %.1f ms\n", NR, a[1]/1000, a[int((NR+1)/2)]/1000, a[NR]/1000}'

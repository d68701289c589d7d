#!/usr/bin/env bash
# Runs ON the GPU machine (docs/device.md): prefill speed and device memory of this tree against a
# base tree (the previous commit), on one card in one call.
#   usage: scripts/device-prefill.sh BASE_TREE      (BASE_TREE: a copy of the base commit's files)
#   1. builds both (scripts/device-build.sh, build-device/ in each)
#   2. the same-shape synthetic model (base's qplan synth --like the carried header), a plan per
#      tree (each tree's qplan compile, --ctx $QP_CTX)
#   3. qrun --bench (pp512, tg128 at depth 0) base, this, base, this: tables, memory lines, JSON
#   4. this tree: qrun -v (memory taken by each init step and after), qrun --profile pp512
#      (device time per op), bench_gemm (cuBLAS memory and time by workspace size)
#   5. QP_STEPS containing "test": ctest -L gpu on this tree; "san": compute-sanitizer memcheck
#      on a prefill + decode
# Everything goes to $OUT/prefill.log (and JSON files); the table at the end.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
base=$(cd "${1:?usage: device-prefill.sh BASE_TREE}" && pwd)
out=${OUT:-$root/device-out}
mkdir -p "$out"
steps=${QP_STEPS:-test}
ctx=${QP_CTX:-16640}
header=${QP_HEADER:-$root/../model-header.gguf}
work=${TMPDIR:-/tmp}/qp-prefill
mkdir -p "$work"
export PATH=/usr/local/cuda/bin:$PATH
t0=$(date +%s)
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
for t in "$base" "$root"; do
  QP_BUILD_DIR=$t/build-device "$t/scripts/device-build.sh" > "$work/build-$(basename "$t").log" 2>&1 ||
    { tail -30 "$work/build-$(basename "$t").log"; echo "build of $t FAILED"; exit 1; }
done
echo "== builds ok ($(( $(date +%s) - t0 )) s)"
"$base/build-device/compiler/qplan" synth --like "$header" -o "$work/synth.gguf" > /dev/null || exit 1
"$base/build-device/compiler/qplan" compile "$work/synth.gguf" -o "$work/base.yaml" --ctx "$ctx" | grep memory
"$root/build-device/compiler/qplan" compile "$work/synth.gguf" -o "$work/this.yaml" --ctx "$ctx" | grep memory
bench() { # tree plan tag
  "$1/build-device/runtime/qrun" "$2" -m "$work/synth.gguf" --device cuda --bench --bench-depths 0 \
    --bench-json "$out/bench-$3.json" 2>&1 | grep -E '^\| .*(pp|tg)|device memory'
}
for r in 1 2; do
  echo "== base run $r"; bench "$base" "$work/base.yaml" "base$r"
  echo "== this run $r"; bench "$root" "$work/this.yaml" "this$r"
done
echo "== this tree, prefill attention on attn_split (qplan compile --kernel)"
"$root/build-device/compiler/qplan" compile "$work/synth.gguf" -o "$work/this-noap.yaml" --ctx "$ctx" \
  --kernel 'prefill:attention=attn_split' > /dev/null
bench "$root" "$work/this-noap.yaml" "this-noap"
echo "== memory by step (this tree, qrun -v)"
"$root/build-device/runtime/qrun" "$work/this.yaml" -m "$work/synth.gguf" --device cuda -v -p hi -n 8 --temp 0 \
  2>&1 >/dev/null | grep -E 'cuda:'
echo "== memory (base tree, qrun -v)"
"$base/build-device/runtime/qrun" "$work/base.yaml" -m "$work/synth.gguf" --device cuda -v -p hi -n 8 --temp 0 \
  2>&1 >/dev/null | grep -E 'cuda:'
echo "== prefill profile (this tree, qrun --profile, pp512, second run)"
"$root/build-device/runtime/qrun" "$work/this.yaml" -m "$work/synth.gguf" --device cuda --profile --bench \
  --bench-tg 0 --bench-reps 1 2>&1 | grep 'cuda profile' | tail -n 14
echo "== bench_gemm"
"$root/build-device/bench/bench_gemm" 512
echo "== bench_gemm memory with CUBLAS_WORKSPACE_CONFIG=:16:8"
CUBLAS_WORKSPACE_CONFIG=:16:8 "$root/build-device/bench/bench_gemm" 512 | grep memory
if [[ " $steps " == *" test "* ]]; then
  echo "== gpu tests (this tree)"
  ( cd "$root/build-device" && QP_E2E_MODEL=$work/synth.gguf QP_E2E_PLAN=$work/this.yaml timeout 300 \
    ctest -L gpu --output-on-failure -V ) > "$work/test.log" 2>&1
  rc=$?
  grep -E 'rel |identical|DIFFERENT|tests passed|tests failed|FAIL' "$work/test.log" | grep -v '^ok ' | tail -30
  echo "gpu tests rc=$rc"
  cp "$work/test.log" "$out/"
fi
if [[ " $steps " == *" san "* ]]; then
  timeout 200 compute-sanitizer --tool memcheck --error-exitcode 3 "$root/build-device/runtime/qrun" "$work/this.yaml" \
    -m "$work/synth.gguf" --device cuda --bench --bench-tg 4 --bench-pp 100 --bench-reps 1 --bench-depths 0 \
    > "$work/memcheck.log" 2>&1
  echo "memcheck rc=$? $(grep -m1 'ERROR SUMMARY' "$work/memcheck.log")"
  cp "$work/memcheck.log" "$out/"
fi
echo "== done ($(( $(date +%s) - t0 )) s)"

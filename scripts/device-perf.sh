#!/usr/bin/env bash
# Runs ON the GPU machine: decode-speed work in one command, this tree against a
# baseline tree, same machine, same synthetic model:
#   1. builds this tree and the baseline tree ($QP_BASE, a copy of the previous commit) in
#      parallel (qplan, qrun, and the GPU tests of this tree)
#   2. the same-shape synthetic model from the real model's header, a plan from each tree
#   3. the GPU tests of this tree (ctest -L gpu: every CUDA op vs the CPU op, and CUDA vs CPU
#      logits over a 64-token greedy run, graph == eager, on the same-shape model)
#   4. qrun --bench of both trees (graph replay), and this tree's plan with every node's pdl off
#   5. ncu (--clock-control none): per-kernel durations of ~2 decode steps of each tree
#   6. batch (not by default): both trees' plans compiled with $QP_SLOTS slots of 512 positions,
#      qrun --bench --batch $QP_BATCH (llama-batched-bench's table), base and new alternated
#      $QP_BATCH_ROUNDS times
# Logs to $OUT (at most 8 files come back) or ./device-out.
#   QP_BASE    baseline source tree (default <repo>/../perf-base); QP_BASE_DEPS its .deps
#   QP_HEADER  model header (default <repo>/../model-header.gguf)
#   QP_CTX     plan context (default 16640); QP_REPS bench repetitions (default 3)
#   QP_STEPS   default "build test bench ncu"; QP_NCU_TREES default "base new"
#   QP_BENCH_PDL=0 skips the pdl-off run
#   QP_SLOTS (default 8), QP_BATCH (default 1,2,4,8), QP_BATCH_ROUNDS (default 2): the batch step
#   QP_VARIANTS "name:-DFLAG,-DFLAG name2:..." also builds this tree with those CUDA flags into
#              build-<name> (qrun + test_gpu_ops; the GPU op tests of each variant run too)
#   QP_MATRIX  "name:VAR=v,VAR=v name2:..." extra runs of this tree (tg only, args
#              $QP_MATRIX_ARGS, default --bench-depths 0 --bench-pp 0); a name "variant-..."
#              runs that variant's qrun
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
base=${QP_BASE:-$root/../perf-base}
out=${OUT:-$root/device-out}
mkdir -p "$out"
header=${QP_HEADER:-$root/../model-header.gguf}
ctx=${QP_CTX:-16640}
reps=${QP_REPS:-3}
steps=${QP_STEPS:-build test bench ncu}
want() { [[ " $steps " == *" $1 "* ]]; }
export PATH=/usr/local/cuda/bin:$PATH
work=/tmp/qp-perf
mkdir -p "$work"
log=$out/perf.log
exec > >(tee -a "$log") 2>&1
t0=$(date +%s)
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
echo "tree $(cat "$root/.commit" 2>/dev/null), base $(cat "$base/.commit" 2>/dev/null)"

if want build; then
  QP_BUILD_DIR=$root/build-device QP_TARGET="qplan qrun test_gpu_ops test_cuda_backend" \
    "$root/scripts/device-build.sh" > "$work/build-new.log" 2>&1 &
  pn=$!
  if [ -d "$base" ]; then
    QP_DEPS=${QP_BASE_DEPS:-$root/../../.deps} QP_BUILD_DIR=$base/build-device QP_TARGET="qplan qrun" \
      "$base/scripts/device-build.sh" > "$work/build-base.log" 2>&1 &
    pb=$!
    wait $pb || { tail -30 "$work/build-base.log"; echo "BASE BUILD FAILED"; }
  fi
  pv=()
  for v in ${QP_VARIANTS:-}; do
    vn=${v%%:*}
    QP_BUILD_DIR=$root/build-$vn QP_TARGET="qrun test_gpu_ops" "$root/scripts/device-build.sh" \
      "-DCMAKE_CUDA_FLAGS=$(echo "${v#*:}" | tr ',' ' ')" > "$work/build-$vn.log" 2>&1 &
    pv+=($!)
  done
  wait $pn || { tail -60 "$work/build-new.log"; echo "BUILD FAILED"; exit 1; }
  for p in "${pv[@]}"; do wait $p || echo "A VARIANT BUILD FAILED"; done
  grep -i "warning" "$work/build-new.log" | grep -i "kernels/cuda" | head -10
  echo "== build: $(( $(date +%s) - t0 )) s"
fi

model=$work/synth.gguf
"$root/build-device/compiler/qplan" synth --like "$header" -o "$model" > "$work/synth.log" 2>&1 || { cat "$work/synth.log"; exit 1; }
for t in new base; do
  d=$root; [ $t = base ] && d=$base
  [ -x "$d/build-device/compiler/qplan" ] || continue
  "$d/build-device/compiler/qplan" compile "$model" -o "$work/plan-$t.yaml" --ctx "$ctx" >> "$work/synth.log" 2>&1 ||
    { cat "$work/synth.log"; echo "PLAN $t FAILED"; }
done
echo "== synth + plans: $(( $(date +%s) - t0 )) s"

if want test; then
  ( cd "$root/build-device" && QP_E2E_MODEL=$model QP_E2E_PLAN=$work/plan-new.yaml timeout ${QP_TEST_TIMEOUT:-240} \
      ctest -L gpu --output-on-failure -V ) > "$out/test.log" 2>&1
  rc=$?
  grep -E '^ *[0-9]+/[0-9]+ Test' "$out/test.log"
  for v in ${QP_VARIANTS:-}; do
    vn=${v%%:*}
    timeout 120 "$root/build-$vn/tests/test_gpu_ops" > "$work/test-$vn.log" 2>&1
    vr=$?
    echo "test_gpu_ops [$vn]: rc=$vr, $(grep -c '^ok ' "$work/test-$vn.log") ok, $(grep -c '^FAIL' "$work/test-$vn.log") FAIL"
    [ $vr = 0 ] || { grep '^FAIL' "$work/test-$vn.log" | head -5; rc=1; }
  done
  grep -E '^FAIL|rel |identical|DIFFERENT|tests passed|tests failed|skip|NaN' "$out/test.log" | grep -v '^ok ' | tail -25
  echo "== gpu tests: $([ $rc = 0 ] && echo ok || echo "FAILED rc=$rc") ($(grep -c '^ok ' "$out/test.log") op checks ok), $(( $(date +%s) - t0 )) s"
fi

bench() { # name qrun plan [env...]
  local name=$1 qrun=$2 plan=$3; shift 3
  [ -x "$qrun" ] || { echo "no qrun for $name"; return; }
  env "$@" timeout 200 "$qrun" "$plan" -m "$model" --device cuda --bench --bench-reps "$reps" \
    ${QP_BENCH_ARGS:-} --bench-json "$out/bench-$name.json" > "$work/bench-$name.txt" 2>&1
  echo "-- $name (rc=$?)"; grep -E '^\|' "$work/bench-$name.txt" || tail -5 "$work/bench-$name.txt"
}
if want bench; then
  bench base "$base/build-device/runtime/qrun" "$work/plan-base.yaml"
  bench new "$root/build-device/runtime/qrun" "$work/plan-new.yaml"
  if [ "${QP_BENCH_PDL:-1}" != 0 ]; then
    sed 's/pdl: true/pdl: false/' "$work/plan-new.yaml" > "$work/plan-new-nopdl.yaml"
    QP_BENCH_ARGS="--bench-depths 0 --bench-pp 0" bench new-nopdl "$root/build-device/runtime/qrun" "$work/plan-new-nopdl.yaml"
  fi
  for m in ${QP_MATRIX:-}; do
    name=${m%%:*}
    q=$root/build-${name%%-*}/runtime/qrun # a variant's build, when the name says one
    [ "${name%%-*}" != "$name" ] && [ -x "$q" ] || q=$root/build-device/runtime/qrun
    QP_BENCH_ARGS="${QP_MATRIX_ARGS:---bench-depths 0 --bench-pp 0}" bench "$name" "$q" "$work/plan-new.yaml" \
      $(echo "${m#*:}" | tr ',' ' ')
  done
  echo "== bench: $(( $(date +%s) - t0 )) s"
fi

if want ncu; then
  for t in ${QP_NCU_TREES:-base new}; do
    d=$root; [ $t = base ] && d=$base
    [ -x "$d/build-device/runtime/qrun" ] || continue
    timeout 150 ncu --clock-control none --metrics gpu__time_duration.sum --csv --launch-skip ${QP_NCU_SKIP:-1500} \
      --launch-count ${QP_NCU_COUNT:-330} "$d/build-device/runtime/qrun" "$work/plan-$t.yaml" -m "$model" \
      --device cuda -p "hello" -n 40 --temp 0 > "$work/ncu-$t.csv" 2> "$work/ncu-$t.err"
    echo "ncu $t rc=$? lines $(wc -l < "$work/ncu-$t.csv")"
    grep -E '^"' "$work/ncu-$t.csv" | gzip > "$out/ncu-$t.csv.gz"
  done
  echo "== ncu: $(( $(date +%s) - t0 )) s"
fi
if want batch; then
  for t in new base; do
    d=$root; [ $t = base ] && d=$base
    [ -x "$d/build-device/compiler/qplan" ] || continue
    "$d/build-device/compiler/qplan" compile "$model" -o "$work/slots-$t.yaml" --ctx 512 --slots "${QP_SLOTS:-8}" \
      >> "$work/synth.log" 2>&1 || { tail -5 "$work/synth.log"; echo "SLOTS PLAN $t FAILED"; }
  done
  for r in $(seq "${QP_BATCH_ROUNDS:-2}"); do
    for t in base new; do
      d=$root; [ $t = base ] && d=$base
      [ -x "$d/build-device/runtime/qrun" ] || continue
      timeout 200 "$d/build-device/runtime/qrun" "$work/slots-$t.yaml" -m "$model" --device cuda --bench \
        --batch "${QP_BATCH:-1,2,4,8}" --bench-reps "$reps" --bench-json "$out/batch-$t-$r.json" > "$work/batch-$t-$r.txt" 2>&1
      echo "-- batch $t round $r (rc=$?)"; grep -E '^\|' "$work/batch-$t-$r.txt" || tail -5 "$work/batch-$t-$r.txt"
    done
  done
  echo "== batch: $(( $(date +%s) - t0 )) s"
fi
echo "== total $(( $(date +%s) - t0 )) s"

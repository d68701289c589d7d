#!/usr/bin/env bash
# Runs ON the GPU machine (docs/device.md): the CUDA backend end to end, one command.
#   1. build (scripts/device-build.sh: .deps carried, sm_90a, Release)
#   2. the same-shape synthetic model from the real model's carried header
#      (qplan synth --like $QP_HEADER), and its plan (qplan compile, context $QP_CTX)
#   3. the GPU tests (ctest -L gpu): the CUDA ops vs the CPU ops, and test_cuda_backend (CUDA
#      vs CPU logits at every position of a 64-token greedy run, graph == eager) on a small
#      synthetic model and on the same-shape one (QP_E2E_MODEL / QP_E2E_PLAN)
#   4. qrun --bench (graph; and tg128 eager for comparison), JSON and table
#   5. device-to-device copy bandwidth (the decode floor's denominator), via PyTorch if present
#   6. compute-sanitizer memcheck and racecheck on a short generation (qrun, graph replay)
#      (QP_SAN_TIMEOUT seconds each, default 150)
#   7. a long run: 8,000 decode tokens, device memory sampled with nvidia-smi (constant?)
#   8. batch: the same-shape model compiled with $QP_SLOTS slots (default 64) of 512 positions,
#      qrun --bench --batch 1,2,4,8,16,32,64 (llama-batched-bench's table, PP 128, TG 128)
#   9. qplan tune on the same-shape plan (per-node table, untuned vs tuned pp512/tg128 in one
#      process), then test_cuda_backend on the tuned plan (CUDA vs CPU logits, graph == eager)
# Logs go to $OUT (the device tool's folder) or ./device-out. Each step's status is listed at
# the end; the script exits nonzero when any step failed.
#   QP_HEADER  the header (default: <repo>/../model-header.gguf, i.e. .device/model-header.gguf)
#   QP_CTX     plan context (default 16640 = 16384 + 256: enough for tg128 @ d16384)
#   QP_STEPS   steps to run (default "build synth test sanitize bench bw longrun batch tune")
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
final=${OUT:-$root/device-out}
mkdir -p "$final"
# Everything is logged under $work/logs; the few files the device tool can bring back (8 at
# most, with the caller's own log) are copied to $OUT at the end.
out=${TMPDIR:-/tmp}/qp-e2e/logs
mkdir -p "$out"
header=${QP_HEADER:-$root/../model-header.gguf}
ctx=${QP_CTX:-16640}
steps=${QP_STEPS:-build synth test sanitize bench bw longrun batch tune}
export QP_BUILD_DIR=${QP_BUILD_DIR:-$root/build-device}
b=$QP_BUILD_DIR
export PATH=/usr/local/cuda/bin:$PATH
work=${TMPDIR:-/tmp}/qp-e2e
mkdir -p "$work"
model=$work/synth.gguf
plan=$work/synth.yaml
summary=()
note() { summary+=("$1"); echo "== $1"; }
want() { [[ " $steps " == *" $1 "* ]]; }
t0=$(date +%s)
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader | tee "$out/gpu.txt"

if want build; then
  if "$root/scripts/device-build.sh" > "$out/build.log" 2>&1; then note "build: ok ($(( $(date +%s) - t0 )) s)"
  else tail -40 "$out/build.log"; note "build: FAILED (build.log)"; printf '%s\n' "${summary[@]}"; exit 1; fi
fi
if want synth; then
  if "$b/compiler/qplan" synth --like "$header" -o "$model" > "$out/synth.log" 2>&1 &&
     "$b/compiler/qplan" compile "$model" -o "$plan" --ctx "$ctx" >> "$out/synth.log" 2>&1; then
    cp "$plan" "$out/synth-plan.yaml"
    note "synth + compile: ok ($(grep -c '^  - op:\|^    - op:' "$plan" || true) node lines, ctx $ctx)"
  else tail -20 "$out/synth.log"; note "synth + compile: FAILED (synth.log)"; fi
fi
if want test; then
  ( cd "$b" && QP_E2E_MODEL=$model QP_E2E_PLAN=$plan timeout 420 ctest -L gpu --output-on-failure -V ) > "$out/test.log" 2>&1
  rc=$?
  grep -E '^(ok|FAIL)|rel |identical|DIFFERENT|tests passed|tests failed|Test +#|skip' "$out/test.log" | grep -v '^ok ' | tail -40
  note "gpu tests: $([ $rc = 0 ] && echo ok || echo "FAILED rc=$rc") ($(grep -c '^ok ' "$out/test.log") op checks ok)"
fi
prompt='<|im_start|>user
Write a haiku about the sea.<|im_end|>
<|im_start|>assistant
'
want bench && [ ! -x "$b/runtime/qrun" ] && note "bench: NOT RUN (no qrun in this build)"
if want bench && [ -x "$b/runtime/qrun" ]; then
  timeout 300 "$b/runtime/qrun" "$plan" -m "$model" --device cuda --bench --bench-json "$out/bench.json" \
    > "$out/bench.txt" 2>&1
  rc=$?
  cat "$out/bench.txt"
  note "bench (graph): $([ $rc = 0 ] && echo ok || echo "FAILED rc=$rc")"
  timeout 120 "$b/runtime/qrun" "$plan" -m "$model" --device cuda --no-graph --bench --bench-depths 0 \
    --bench-json "$out/bench-eager.json" > "$out/bench-eager.txt" 2>&1
  rc=$?
  grep -E '^\| .*tg|^\| .*pp' "$out/bench-eager.txt"
  note "bench (eager): $([ $rc = 0 ] && echo ok || echo "FAILED rc=$rc")"
fi
if want bw; then
  python3 - > "$out/bandwidth.txt" 2>&1 <<'PY'
import torch
n = 1 << 30
a = torch.empty(n, dtype=torch.uint8, device="cuda"); a.random_(0, 255)
b = torch.empty_like(a)
for _ in range(3): b.copy_(a)
s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
ts = []
for _ in range(10):
    s.record(); b.copy_(a); e.record(); torch.cuda.synchronize(); ts.append(s.elapsed_time(e))
ts.sort(); ms = ts[len(ts) // 2]
print(f"d2d copy of 1 GiB: median {ms:.3f} ms = {2 * n / (ms * 1e-3) / 1e9:.0f} GB/s (read + write)")
PY
  cat "$out/bandwidth.txt"
  note "bandwidth: $(tail -1 "$out/bandwidth.txt")"
fi
want sanitize && [ ! -x "$b/runtime/qrun" ] && note "sanitizers: NOT RUN (no qrun in this build)"
if want sanitize && [ -x "$b/runtime/qrun" ]; then
  # memcheck over the whole path (cuBLAS prefill of the 16-token ChatML prompt, graph decode);
  # racecheck twice: on a 6-token prompt, whose prefill runs only the project's own kernels
  # (matvec path, n_tok <= 8), and on the 16-token prompt, whose prefill goes through cuBLAS.
  short='Write a haiku about'
  for run in "memcheck full" "racecheck short" "racecheck full"; do
    set -- $run
    tool=$1; p=$prompt; [ "$2" = short ] && p=$short
    timeout ${QP_SAN_TIMEOUT:-150} compute-sanitizer --tool $tool --error-exitcode 3 "$b/runtime/qrun" "$plan" -m "$model" \
      --device cuda -p "$p" -n 6 --temp 0 > "$out/sanitizer-$tool-$2.log" 2>&1
    rc=$?
    tail -3 "$out/sanitizer-$tool-$2.log"
    hazards=$(grep -o 'in [A-Za-z_0-9]*' "$out/sanitizer-$tool-$2.log" | sort | uniq -c | sort -rn | head -3 | tr '\n' ' ')
    note "compute-sanitizer $tool ($2 prompt): $([ $rc = 0 ] && echo clean || echo "rc=$rc") ($(grep -m1 'ERROR SUMMARY\|RACECHECK SUMMARY' "$out/sanitizer-$tool-$2.log")) ${hazards}"
  done
fi
if want longrun && [ -x "$b/runtime/qrun" ]; then
  # 8,000 decode tokens through the captured graph, device memory sampled every 0.2 s.
  ( while :; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits; sleep 0.2; done ) \
    > "$out/longrun-mem.txt" 2>/dev/null &
  sampler=$!
  timeout 200 "$b/runtime/qrun" "$plan" -m "$model" --device cuda --bench --bench-pp 16 --bench-tg 8000 \
    --bench-depths 0 --bench-reps 1 > "$out/longrun.txt" 2>&1
  rc=$?
  kill $sampler 2>/dev/null; wait $sampler 2>/dev/null
  # Run-length encoded samples ("533x3 1247x55"): memory must rise once, during load, and then
  # stay flat through the 8,000 tokens.
  mem=$(awk 'NF { if ($1 == last) n++; else { if (NR > 1) printf "%sx%d ", last, n; last = $1; n = 1 } } END { printf "%sx%d MiB", last, n }' "$out/longrun-mem.txt")
  grep -E 'tg8000' "$out/longrun.txt"
  note "long run (8,000 tokens, graph): $([ $rc = 0 ] && echo ok || echo "FAILED rc=$rc"); device memory $mem"
fi
if want batch && [ -x "$b/runtime/qrun" ]; then
  slots=${QP_SLOTS:-64}
  "$b/compiler/qplan" compile "$model" -o "$work/slots.yaml" --ctx 512 --slots "$slots" > "$out/batch.txt" 2>&1
  timeout 300 "$b/runtime/qrun" "$work/slots.yaml" -m "$model" --device cuda --bench --batch 1,2,4,8,16,32,64 \
    --bench-reps 3 --bench-json "$out/batch.json" >> "$out/batch.txt" 2>&1
  rc=$?
  grep -E '^\|' "$out/batch.txt"
  note "batched bench ($slots slots): $([ $rc = 0 ] && echo ok || echo "FAILED rc=$rc")"
  cat "$out/batch.txt" >> "$out/bench.txt"
fi
if want tune && [ -x "$b/compiler/qplan" ]; then
  timeout 420 "$b/compiler/qplan" tune "$plan" -m "$model" -o "$work/tuned.yaml" > "$out/tune.txt" 2> "$out/tune.err"
  rc=$?
  tail -4 "$out/tune.err"
  grep -E 'nodes changed|end to end|wrote' "$out/tune.txt"
  note "qplan tune: $([ $rc = 0 ] && echo ok || echo "FAILED rc=$rc") ($(( $(date +%s) - t0 )) s)"
  if [ $rc = 0 ]; then
    cp "$work/tuned.yaml" "$out/tuned-plan.yaml"
    timeout 200 "$b/tests/test_cuda_backend" "$work/tuned.yaml" "$model" > "$out/tune-test.log" 2>&1
    rc=$?
    grep -E 'rel|identical|DIFFERENT|kernels:|FAIL|passed' "$out/tune-test.log"
    note "tuned plan, CUDA vs CPU: $([ $rc = 0 ] && echo ok || echo "FAILED rc=$rc")"
    cat "$out/tune-test.log" >> "$out/tune.txt"
  fi
  cat "$out/tune.err" >> "$out/tune.txt"
fi
echo "---- summary ($(( $(date +%s) - t0 )) s) ----"
printf '%s\n' "${summary[@]}" | tee "$out/summary.txt"
cat "$out/bench-eager.txt" >> "$out/bench.txt" 2>/dev/null
for f in summary.txt test.log bench.txt bench.json batch.json tune.txt tuned-plan.yaml sanitizer-memcheck-full.log; do
  [ -f "$out/$f" ] && cp "$out/$f" "$final/"
done
! grep -q 'FAILED\|rc=' "$out/summary.txt"

#!/usr/bin/env bash
# The main job: builds, fetches the default model if missing, compiles its plan if missing
# (plans/qwen2.5-coder-0.5b-instruct-q4_k_m.yaml), and generates text with qrun.
#
#   scripts/run.sh                               greedy haiku, 64 tokens, default device
#   scripts/run.sh --device cpu -p "..." -n 32   any qrun options replace the defaults
#
# QP_BUILD_DIR (default ./build) is the build folder; QP_MODEL overrides the model path.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${QP_BUILD_DIR:-$root/build}
"$root/scripts/build.sh" >&2
model=${QP_MODEL:-$("$root/scripts/fetch-model.sh")}
plan=$root/plans/$(basename "${model%.gguf}").yaml
if [ ! -f "$plan" ]; then
  mkdir -p "$root/plans"
  echo "run: compiling $plan" >&2
  "$build/compiler/qplan" compile "$model" -o "$plan"
fi
if [ $# -eq 0 ]; then
  set -- -p "<|im_start|>user
Write a haiku about the sea.<|im_end|>
<|im_start|>assistant
" -n 64 --temp 0
fi
exec "$build/runtime/qrun" "$plan" -m "$model" "$@"

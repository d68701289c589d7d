#!/usr/bin/env bash
# The main job, from a fresh clone: installs the Debian packages the project needs, builds,
# fetches the default model (Qwen2.5-Coder-0.5B-Instruct Q4_K_M, cached in ~/.cache/qplan),
# compiles its plan when plans/ has none (plans/<model name>.yaml), and generates text with
# qrun on the default device (cuda where built and a GPU is present, else cpu).
#
#   scripts/run.sh                                 a greedy haiku, 64 tokens
#   scripts/run.sh --device cpu -p "..." -n 32     any qrun options replace the defaults
#   QP_MODEL=/path/to/model.gguf scripts/run.sh    uses another Qwen2 GGUF instead
#   QP_BUILD_DIR (default ./build)                 where the build goes
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${QP_BUILD_DIR:-$root/build}

"$root/scripts/build.sh" >&2   # build progress to stderr: stdout is the job's output
if [ -n "${QP_MODEL:-}" ]; then
  model=$QP_MODEL
else
  model=$("$root/scripts/fetch-model.sh")
fi
plan=$root/plans/$(basename "${model%.gguf}").yaml
if [ ! -f "$plan" ]; then
  mkdir -p "$root/plans"
  echo "run: qplan compile $model -o $plan" >&2
  "$build/compiler/qplan" compile "$model" -o "$plan"
fi
if [ $# -eq 0 ]; then
  set -- -p "<|im_start|>user
Write a haiku about the sea.<|im_end|>
<|im_start|>assistant
" -n 64 --temp 0
fi
echo "run: qrun $plan -m $model $*" >&2
exec "$build/runtime/qrun" "$plan" -m "$model" "$@"

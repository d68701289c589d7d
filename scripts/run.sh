#!/usr/bin/env bash
# The main job, from a fresh clone: installs the Debian packages the project needs, builds,
# fetches the default model (Qwen2.5-Coder-0.5B-Instruct Q4_K_M, cached in ~/.cache/qplan), and
# runs what the project can do with it so far: `qplan inspect`. The next steps (compile the plan,
# generate text on the GPU, or on the CPU backend where there is none) are added here as they
# land.
#
#   QP_MODEL=/path/to/model.gguf scripts/run.sh   uses another Qwen2 GGUF instead
#   QP_BUILD_DIR (default ./build)                where the build goes
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${QP_BUILD_DIR:-$root/build}

"$root/scripts/build.sh" >&2   # build progress to stderr: stdout is the job's output
if [ -n "${QP_MODEL:-}" ]; then
  model=$QP_MODEL
else
  model=$("$root/scripts/fetch-model.sh")
fi
echo "run: qplan inspect $model" >&2
"$build/compiler/qplan" inspect "$model"

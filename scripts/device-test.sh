#!/usr/bin/env bash
# Runs the GPU tests (ctest label gpu) of a device build (scripts/device-build.sh first), with
# output on failure. Extra args go to ctest (e.g. -R test_gpu_ops, -V).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${QP_BUILD_DIR:-$root/build-device}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
cd "$build"
ctest -L gpu --output-on-failure "$@"

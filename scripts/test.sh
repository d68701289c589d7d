#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every ctest suite.
# Tests that need a GPU or the real model skip with the reason printed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh" "$@"
build=${QP_BUILD_DIR:-$root/build}
cd "$build"
ctest --output-on-failure -j"$(nproc)"

#!/usr/bin/env bash
# Builds the project on the lent GPU machine (nvcc and cmake there; no libyaml/pcre2 headers,
# no pkg-config guarantee, no network). The headers and static libraries come from .deps/root
# (Debian packages unpacked with dpkg -x, carried with the call; docs/device.md), passed to
# CMake as -DQP_DEPS_ROOT. Builds for sm_90a (Hopper), Release, QP_WERROR=OFF (the device gcc
# differs from CI's and warns differently; CI here keeps warnings as errors). Extra args go to cmake.
#   QP_DEPS   folder holding root/ (default: <repo>/.deps, else <repo>/../../.deps)
#   QP_BUILD_DIR  build folder (default <repo>/build-device)
#   QP_TARGET     build only this target (default: everything)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
deps=${QP_DEPS:-}
if [ -z "$deps" ]; then
  for d in "$root/.deps" "$root/../../.deps"; do
    [ -f "$d/root/usr/include/yaml.h" ] && deps=$(cd "$d" && pwd) && break
  done
fi
if [ -z "$deps" ] || [ ! -f "$deps/root/usr/include/yaml.h" ]; then
  echo "device-build: no .deps/root with yaml.h (see docs/device.md to prepare it)" >&2
  exit 1
fi
build=${QP_BUILD_DIR:-$root/build-device}
export PATH=/usr/local/cuda/bin:$PATH
echo "device-build: nvcc $(nvcc --version | tail -1); cmake $(cmake --version | head -1); deps $deps" >&2
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DQP_DEPS_ROOT="$deps/root" \
  -DCMAKE_CUDA_ARCHITECTURES=90a -DQP_WERROR=OFF "$@"
cmake --build "$build" -j"$(nproc)" ${QP_TARGET:+--target $QP_TARGET}

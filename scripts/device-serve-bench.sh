#!/usr/bin/env bash
# The server's benchmark on the lent GPU machine, in one command (docs/device.md): builds qrun
# (scripts/device-build.sh; .deps must hold libmicrohttpd and jansson, docs/device.md), writes the
# real model's shape with random weights (qplan synth --like ../model-header.gguf), compiles it
# with 64 slots, and runs scripts/serve-bench.sh on it (prompt 128, 128 generated, 1/4/16/64
# clients; then qrun --bench --batch at the same sizes).
#   QP_SERVE_HEADER  the model header (default: ../model-header.gguf, as device-e2e.sh)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
header=${QP_SERVE_HEADER:-$root/../model-header.gguf}
QP_TARGET=qrun "$root/scripts/device-build.sh" > /tmp/qp-serve-build.log 2>&1 || { tail -30 /tmp/qp-serve-build.log; exit 1; }
QP_TARGET=qplan "$root/scripts/device-build.sh" >> /tmp/qp-serve-build.log 2>&1 || { tail -30 /tmp/qp-serve-build.log; exit 1; }
grep -i "serve" /tmp/qp-serve-build.log | head -2
b=$root/build-device
mkdir -p /tmp/qp-serve
"$b/compiler/qplan" synth --like "$header" -o /tmp/qp-serve/synth.gguf || exit 1
"$b/compiler/qplan" compile /tmp/qp-serve/synth.gguf --slots 64 --ctx 512 -o /tmp/qp-serve/plan.yaml || exit 1
nvidia-smi --query-gpu=name --format=csv,noheader
git -C "$root" rev-parse --short HEAD 2>/dev/null || true
# 8 client processes: one asyncio loop parsing every event of 64 streams would be the bottleneck
QRUN=$b/runtime/qrun QP_SERVE_BENCH_OUT=${OUT:-/tmp/qp-serve}/serve-bench "$root/scripts/serve-bench.sh" /tmp/qp-serve/plan.yaml --procs 8 "$@"

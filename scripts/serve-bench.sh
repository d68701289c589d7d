#!/usr/bin/env bash
# The server's benchmark in one command (docs/serving.md, "Benchmark"): starts `qrun PLAN --serve`
# on a free port, runs bench/serve_load.py at 1, 4, 16 and 64 concurrent streaming clients
# (prompt 128, 128 generated), stops the server, then runs `qrun PLAN --bench --batch 1,4,16,64`
# on the same plan for comparison. PLAN: compiled with --slots 64 (and a context of 256 or more).
#   scripts/serve-bench.sh PLAN [extra serve_load.py args]
#   QRUN        the qrun to run (default: build-device/runtime/qrun, else build/runtime/qrun)
#   QP_SERVE_BENCH_OUT  folder for the JSON and logs (default: a temporary folder, printed)
#   QP_SERVE_BENCH_BATCH  the batched bench's sizes (default: the load's levels, 1,4,16,64)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
plan=${1:?usage: scripts/serve-bench.sh PLAN [serve_load.py args]}
shift
qrun=${QRUN:-}
[ -z "$qrun" ] && for q in "$root/build-device/runtime/qrun" "$root/build/runtime/qrun"; do
  [ -x "$q" ] && qrun=$q && break
done
[ -x "$qrun" ] || { echo "serve-bench: no qrun built (set QRUN)" >&2; exit 1; }
out=${QP_SERVE_BENCH_OUT:-$(mktemp -d /tmp/qrun-serve-bench.XXXXXX)}
mkdir -p "$out"
py=python3
[ -x "$root/build/serve-venv/bin/python" ] && py=$root/build/serve-venv/bin/python
echo "serve-bench: $qrun $plan, results in $out" >&2
"$qrun" "$plan" --serve --port 0 --queue 256 > "$out/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
port=
for _ in $(seq 600); do  # up to 60 s: the port, then /health
  port=$(sed -n 's/.*listening on http:\/\/[^:]*:\([0-9]*\).*/\1/p' "$out/serve.log" | head -1)
  if [ -n "$port" ] && "$py" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=2)" 2>/dev/null; then
    break
  fi
  kill -0 $pid 2>/dev/null || { cat "$out/serve.log" >&2; exit 1; }
  sleep 0.1
done
grep "serving" "$out/serve.log" >&2
"$py" "$root/bench/serve_load.py" --url "http://127.0.0.1:$port/v1" --concurrency 1,4,16,64 \
  --prompt-tokens 128 --gen-tokens 128 --json "$out/serve_load.json" "$@"
rc=$?
kill -TERM $pid
wait $pid
echo "serve-bench: server exit status $?" >&2
trap - EXIT
echo
echo "qrun --bench --batch (the same plan, no HTTP):"
"$qrun" "$plan" --bench --batch "${QP_SERVE_BENCH_BATCH:-1,4,16,64}" --bench-tg 128 --bench-reps 1
exit $rc

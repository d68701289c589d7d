#!/usr/bin/env bash
# Creates (once) the Python venv whose `openai` client (from PyPI) the server's tests and load
# generator drive qrun --serve with: scripts/serve-venv.sh [DIR] (default build/serve-venv).
# Prints the venv's python on stdout. Idempotent and safe to run from parallel tests (a lock).
# Exit 77 (the tests' "skipped") when PyPI cannot be reached, with the reason on stderr.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-$root/build/serve-venv}
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import openai" 2>/dev/null; then
  echo "$venv/bin/python"
  exit 0
fi
rm -rf "$venv"
python3 -m venv "$venv" >&2 || { echo "serve-venv: python3 -m venv failed (install python3-venv: scripts/deps.sh)" >&2; exit 1; }
# openai 1.x and later share the client API the tests use (OpenAI(), chat.completions, completions, models)
if ! log=$("$venv/bin/pip" install --disable-pip-version-check -q --timeout 20 "openai>=1.0" 2>&1); then
  rm -rf "$venv"
  echo "serve-venv: cannot install openai from PyPI (no network?): $(echo "$log" | tail -1)" >&2
  exit 77
fi
echo "$venv/bin/python"

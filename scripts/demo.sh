#!/usr/bin/env bash
# The main job, run by `make demo`. It grows as the model issues land; today it shows the
# runtime (libtorch, BLAS, measured speed) and the config system.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/imgcap}

echo "== imgcap env: the torch runtime on this machine"
"$BIN" env
echo
echo "== imgcap config check: every problem of a bad config at once"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'model:\n  arch: resnet\ntrain:\n  lr: fast\n  epocs: 3\n' > "$tmp/bad.yaml"
"$BIN" config check "$tmp/bad.yaml" || true

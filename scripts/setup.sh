#!/usr/bin/env bash
# imgcap setup: installs what is missing and prepares gotch for the libtorch found.
#   LIBTORCH=/path/to/libtorch  use a downloaded libtorch (CPU or CUDA) instead of Debian's libtorch-dev.
# Idempotent: a second run checks and returns in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
fi

have_pkg() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

# libgloo-dev: the Gloo headers that libtorch's ProcessGroupGloo.hpp includes, for imgcap's c10d
# shim (data-parallel training on CPU); the Gloo code itself is inside libtorch.
pkgs=(libopenblas0-pthread wordnet-base g++ binutils libgloo-dev)
if [ -z "${LIBTORCH:-}" ]; then pkgs+=(libtorch-dev); fi
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${pkgs[@]}"; do have_pkg "$p" || missing+=("$p"); done
fi
if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    log "missing packages ${missing[*]} and no apt-get: install them by hand"; exit 1
  fi
  log "installing ${missing[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v go >/dev/null 2>&1; then
  log "Go is not installed (need go >= 1.26)"; exit 1
fi

GOTCH_VERSION=v0.9.1
# The proxy refuses gotch's version list but serves the pinned version: always name it exactly.
src=$(cd /tmp && GOFLAGS=-mod=mod go mod download -json "github.com/sugarme/gotch@${GOTCH_VERSION}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [ -z "$src" ] || [ ! -d "$src" ]; then
  log "could not download github.com/sugarme/gotch@${GOTCH_VERSION}"; exit 1
fi

go run ./cmd/gotchprep -src "$src" -dst build/gotch -libtorch "${LIBTORCH:-}"

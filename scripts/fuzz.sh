#!/usr/bin/env bash
# Runs every fuzz target of the text and file parsers briefly (FUZZTIME each, default 3s).
# `make test` runs it after the unit tests; a crash fails the build and Go saves the input
# under the package's testdata/fuzz for a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-3s}
for pkg in $(grep -rlE '^func Fuzz' --include='*_test.go' . | xargs -n1 dirname | sort -u); do
  for target in $(grep -hoE '^func (Fuzz[A-Za-z0-9_]+)' "$pkg"/*_test.go | awk '{print $2}' | sort -u); do
    echo "fuzz $pkg $target ($FUZZTIME)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" > /tmp/imgcap-fuzz.log 2>&1 || { cat /tmp/imgcap-fuzz.log; exit 1; }
  done
done

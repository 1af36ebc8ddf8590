#!/usr/bin/env bash
# Installs headless Chromium (Debian's `chromium` package) for serve's browser test
# (serve/browser_test.go, driven by chromedp) when no Chromium or Chrome is on PATH.
# Idempotent: with a browser present it only reports which one. Without apt-get (or root/sudo)
# it says so and exits 0: the browser test then skips with a message.
#   IMGCAP_CHROMIUM=/path/to/chrome   use that browser instead (the test reads it too).
set -euo pipefail

log() { printf 'browser-test-deps: %s\n' "$*"; }

if [ -n "${IMGCAP_CHROMIUM:-}" ]; then
  if [ -x "$IMGCAP_CHROMIUM" ]; then log "using IMGCAP_CHROMIUM=$IMGCAP_CHROMIUM"; exit 0; fi
  log "IMGCAP_CHROMIUM=$IMGCAP_CHROMIUM is not an executable"; exit 1
fi
for b in chromium chromium-browser google-chrome google-chrome-stable headless-shell; do
  if command -v "$b" >/dev/null 2>&1; then log "found $(command -v "$b")"; exit 0; fi
done

SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    log "no Chromium, and not root (nor passwordless sudo): install the chromium package by hand; the browser test will skip"
    exit 0
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  log "no Chromium and no apt-get: install Chromium by hand (or set IMGCAP_CHROMIUM); the browser test will skip"
  exit 0
fi
log "installing chromium and fonts-liberation (apt)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
# Without recommends the install stays small (no udev, printing, notification daemon); the one
# recommend the test needs is a font for the page's text in screenshots.
$SUDO apt-get install -y -q --no-install-recommends chromium fonts-liberation >/dev/null
log "installed $(command -v chromium)"

#!/usr/bin/env bash
# .ci/chromium.sh - install Debian's Chromium (and a font with Arial metrics) for the headless
# browser tests (tests/test_preview_browser.py). Playwright itself is a Python package in the
# test extra; it never downloads a browser here: the tests launch /usr/bin/chromium.
#
# Idempotent: packages already installed are not reinstalled. Needs root and apt.
# Prints `export ...` lines on stdout (everything else goes to stderr), so .ci/run can do:
#   eval "$(bash .ci/chromium.sh)"
set -euo pipefail

CHROMIUM_EXECUTABLE="${CHROMIUM_EXECUTABLE:-/usr/bin/chromium}"
CHROMIUM_ARGS="${CHROMIUM_ARGS:---no-sandbox --disable-gpu --disable-dev-shm-usage}"

log() { echo "[chromium] $*" >&2; }

missing=""
for pkg in chromium fonts-liberation; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing="$missing $pkg"
done

if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    # apt may be held briefly by another installer: wait for the lock instead of failing.
    apt_opts=(-o DPkg::Lock::Timeout=300)
    # `update` takes the lists lock, which DPkg::Lock::Timeout does not cover: retry it.
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        apt-get "${apt_opts[@]}" update -q >&2 && break
        [ "$attempt" = 10 ] && { log "apt-get update kept failing"; exit 1; }
        log "apt-get update failed (lock held?); retrying in 15 s"
        sleep 15
    done
    # --no-install-recommends: the recommends pull in systemd, udev, avahi-daemon, cups helpers
    # and ~100 more packages that a headless test run does not need.
    # shellcheck disable=SC2086  # $missing is a word list
    apt-get "${apt_opts[@]}" install -y -q --no-install-recommends $missing >&2
    log "installed:$missing"
else
    log "chromium and fonts-liberation already installed"
fi

"$CHROMIUM_EXECUTABLE" --version >&2 || { log "$CHROMIUM_EXECUTABLE does not run"; exit 1; }

cat <<ENV
export CHROMIUM_EXECUTABLE=$CHROMIUM_EXECUTABLE
export CHROMIUM_ARGS='$CHROMIUM_ARGS'
ENV

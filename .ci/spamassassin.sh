#!/usr/bin/env bash
# .ci/spamassassin.sh - install Debian's SpamAssassin for `dripline check --spam` and its tests
# (tests/test_preflight_spam.py). The tests run `spamassassin -L -t` themselves: no spamd
# daemon, no rule updates (sa-update), no network.
#
# Idempotent: nothing is reinstalled when the package is there. Needs root and apt.
# Prints nothing on stdout (logs go to stderr), like the other .ci scripts that start no service.
set -euo pipefail

log() { echo "[spamassassin] $*" >&2; }

if ! dpkg-query -W -f='${Status}' spamassassin 2>/dev/null | grep -q 'ok installed'; then
    export DEBIAN_FRONTEND=noninteractive
    apt_opts=(-o DPkg::Lock::Timeout=300)
    if [ "${APT_UPDATE:-1}" = 1 ]; then
        apt-get "${apt_opts[@]}" update -q >&2
    fi
    # --no-install-recommends: the recommended sa-compile fails its post-install step where
    # there is no writable temporary folder, failing the whole install; the rules run without it.
    apt-get "${apt_opts[@]}" install -y -q --no-install-recommends spamassassin >&2
    log "installed spamassassin"
else
    log "spamassassin already installed"
fi

spamassassin --version >&2 || { log "spamassassin does not run"; exit 1; }

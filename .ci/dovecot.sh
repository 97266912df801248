#!/usr/bin/env bash
# .ci/dovecot.sh - Debian's Dovecot serving IMAP over TLS on 127.0.0.1 for the bounce mailbox
# tests (tests/test_bounces_imap.py). Its own configuration, certificates, mail and run
# directory under $DOVECOT_DIR, so a system Dovecot (if any) is neither used nor touched.
# A throwaway CA signs the server certificate; tests trust that CA through ?cafile=.
# Idempotent; root; Debian.
#
#   eval "$(bash .ci/dovecot.sh start)"    # install if missing, configure, start (or restart);
#                                          # prints export IMAP_HOST/IMAP_PORT/IMAP_USER/... lines
#   bash .ci/dovecot.sh stop
#
# Settings (environment; defaults): IMAP_PORT=10993, DOVECOT_DIR=/tmp/dovecot-ci,
# IMAP_USER=bounces, IMAP_PASSWORD=bounces-test-password (a test account on loopback only),
# IMAP_MAIL_USER=dripline-imap (the system user owning the mail), APT_UPDATE=1.
set -euo pipefail

IMAP_PORT="${IMAP_PORT:-10993}"
DOVECOT_DIR="${DOVECOT_DIR:-/tmp/dovecot-ci}"
IMAP_USER="${IMAP_USER:-bounces}"
IMAP_PASSWORD="${IMAP_PASSWORD:-bounces-test-password}"
IMAP_MAIL_USER="${IMAP_MAIL_USER:-dripline-imap}"
CONF="$DOVECOT_DIR/dovecot.conf"

log() { echo "[dovecot-recipe] $*" >&2; }

do_install() {
    if command -v dovecot >/dev/null 2>&1 && dpkg-query -W -f='${Status}' dovecot-imapd 2>/dev/null | grep -q 'ok installed'; then
        log "dovecot already installed: $(dovecot --version)"
        return 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    [ "${APT_UPDATE:-1}" = 0 ] || apt-get update -q >&2
    apt-get install -y -q --no-install-recommends dovecot-imapd openssl >&2
    # The package starts the system instance on 143/993; ours needs nothing of it.
    (systemctl stop dovecot || service dovecot stop || true) >/dev/null 2>&1
    log "installed dovecot $(dovecot --version)"
}

make_certificates() {
    local certs="$DOVECOT_DIR/certs"
    [ -f "$certs/server.pem" ] && [ -f "$certs/ca.pem" ] && return 0
    mkdir -p "$certs"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=dripline test CA" \
        -keyout "$certs/ca.key" -out "$certs/ca.pem" >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$certs/server.key" -out "$certs/server.csr" >/dev/null 2>&1
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' > "$certs/ext.cnf"
    openssl x509 -req -in "$certs/server.csr" -CA "$certs/ca.pem" -CAkey "$certs/ca.key" \
        -CAcreateserial -days 3650 -extfile "$certs/ext.cnf" -out "$certs/server.pem" >/dev/null 2>&1
    chmod 0600 "$certs/server.key" "$certs/ca.key"
    chmod 0644 "$certs/ca.pem"
    log "made a CA and a server certificate for 127.0.0.1 in $certs"
}

do_configure() {
    if ! id -u "$IMAP_MAIL_USER" >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin "$IMAP_MAIL_USER"
    fi
    local uid gid
    uid=$(id -u "$IMAP_MAIL_USER"); gid=$(id -g "$IMAP_MAIL_USER")
    mkdir -p "$DOVECOT_DIR/run" "$DOVECOT_DIR/state" "$DOVECOT_DIR/mail"
    chmod 0755 "$DOVECOT_DIR"
    chown "$uid:$gid" "$DOVECOT_DIR/mail"
    make_certificates
    printf '%s:{PLAIN}%s\n' "$IMAP_USER" "$IMAP_PASSWORD" > "$DOVECOT_DIR/users"
    chmod 0640 "$DOVECOT_DIR/users"; chgrp dovecot "$DOVECOT_DIR/users"
    cat > "$CONF" <<CONF
# Written by .ci/dovecot.sh: IMAP over TLS on 127.0.0.1:$IMAP_PORT only.
protocols = imap
listen = 127.0.0.1
base_dir = $DOVECOT_DIR/run
state_dir = $DOVECOT_DIR/state
instance_name = dripline-ci
log_path = $DOVECOT_DIR/dovecot.log
ssl = required
ssl_cert = <$DOVECOT_DIR/certs/server.pem
ssl_key = <$DOVECOT_DIR/certs/server.key
auth_mechanisms = plain
first_valid_uid = 100
mail_location = maildir:$DOVECOT_DIR/mail/%u/Maildir
namespace inbox {
  inbox = yes
  separator = /
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $DOVECOT_DIR/users
}
userdb {
  driver = static
  args = uid=$uid gid=$gid home=$DOVECOT_DIR/mail/%u
}
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $IMAP_PORT
    ssl = yes
  }
}
service stats {
  inet_listener http {
    port = 0
  }
}
CONF
    doveconf -c "$CONF" -n >/dev/null
}

is_running() { [ -f "$DOVECOT_DIR/run/master.pid" ] && kill -0 "$(cat "$DOVECOT_DIR/run/master.pid")" 2>/dev/null; }

wait_port() {
    python3 - "$IMAP_PORT" "$DOVECOT_DIR/certs/ca.pem" <<'PY'
import socket, ssl, sys, time
port, ca = int(sys.argv[1]), sys.argv[2]
context = ssl.create_default_context(cafile=ca)
deadline = time.time() + 20
while True:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                if tls.recv(200).startswith(b"* OK"):
                    break
    except OSError:
        pass
    if time.time() > deadline:
        sys.exit("dovecot did not answer on 127.0.0.1:%d" % port)
    time.sleep(0.1)
PY
}

print_env() {
    cat <<EOF
export IMAP_HOST=127.0.0.1
export IMAP_PORT=$IMAP_PORT
export IMAP_USER=$IMAP_USER
export IMAP_PASSWORD=$IMAP_PASSWORD
export IMAP_CAFILE=$DOVECOT_DIR/certs/ca.pem
EOF
}

do_stop() {
    if is_running; then
        local pid; pid=$(cat "$DOVECOT_DIR/run/master.pid")
        doveadm -c "$CONF" stop >&2 || kill "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        log "dovecot stopped"
    else
        log "dovecot not running"
    fi
}

do_start() {
    do_install
    do_configure
    do_stop
    # Its own stdio closed: a daemon holding ours would keep eval "$(...)" waiting forever.
    dovecot -c "$CONF" </dev/null >/dev/null 2>&1
    wait_port
    log "dovecot up: imaps on 127.0.0.1:$IMAP_PORT; CA $DOVECOT_DIR/certs/ca.pem; log $DOVECOT_DIR/dovecot.log"
    print_env
}

case "${1:-start}" in
    install) do_install ;;
    start) do_start ;;
    stop) do_stop ;;
    env) print_env ;;
    *) echo "usage: $0 [install|start|stop|env]" >&2; exit 2 ;;
esac

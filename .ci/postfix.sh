#!/usr/bin/env bash
# .ci/postfix.sh - a real Postfix MTA on 127.0.0.1:2525 delivering every accepted message into
# one Maildir, for tests/test_sender_postfix.py. For the bounce tests (tests/test_bounces_postfix.py)
# mail to bounces@ and its VERP forms bounces+TOKEN@ goes to a second Maildir ($BOUNCE_MAILDIR,
# next to $MAILDIR), and a recipient whose local part starts with no-such-user is accepted at RCPT
# and then bounced by the queue manager (error:5.1.1), so Postfix writes a real DSN to the sender. Also installs Postfix's smtp-sink/smtp-source,
# which bench/send.py uses. Nothing can leave the machine: other domains are refused at RCPT
# (554 Relay access denied) and every outbound transport is "error:". Idempotent; root; Debian.
#
#   eval "$(bash .ci/postfix.sh start)"     # install if missing, configure, start or reload;
#                                           # prints export SMTP_HOST/SMTP_PORT/MAILDIR/... lines
#   bash .ci/postfix.sh stop                # postfix stop (waits for its processes)
#   bash .ci/postfix.sh selftest            # send with smtplib, read back from the Maildir
#   bash .ci/postfix.sh                     # install, start, selftest, stop
#
# Settings (environment; defaults): SMTP_PORT=2525, MAIL_DOMAINS=example.test, BOUNCE_DOMAIN=mx.example.net,
# MAILDIR=/tmp/postfix-mail/Maildir, MAIL_USER=vmail, POSTFIX_LOG=/var/log/postfix.log,
# APT_UPDATE=1 (0 skips apt-get update). Postfix adds X-Original-To:/Delivered-To: headers that
# tell recipients apart. Pitfalls handled: debconf preseed, no syslog (maillog_file), chroot off,
# explicit myhostname, newaliases, a second start reloads.
set -euo pipefail

SMTP_PORT="${SMTP_PORT:-2525}"
MAIL_DOMAINS="${MAIL_DOMAINS:-example.test}"
MAILDIR="${MAILDIR:-/tmp/postfix-mail/Maildir}"
MAILDIR="${MAILDIR%/}"
MAIL_USER="${MAIL_USER:-vmail}"
POSTFIX_LOG="${POSTFIX_LOG:-/var/log/postfix.log}"
MYHOSTNAME="localhost.localdomain"
BOUNCE_MAILDIR="$(dirname "$MAILDIR")/bounces/Maildir"
# A mailbox domain for the bounce tests that dripline accepts in subscriber addresses
# (email-validator refuses .test): its mail is delivered like MAIL_DOMAINS' mail.
BOUNCE_DOMAIN="${BOUNCE_DOMAIN:-mx.example.net}"

log() { echo "[postfix-recipe] $*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

do_install() {
    if [ -x /usr/sbin/postfix ] && dpkg-query -W -f='${Status}' postfix 2>/dev/null | grep -q 'ok installed'; then
        log "postfix already installed: $(dpkg-query -W -f='${Version}' postfix)"
        return 0
    fi
    local t0; t0=$(now)
    export DEBIAN_FRONTEND=noninteractive
    # Preseed debconf so the postinst never asks.
    echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections
    echo "postfix postfix/mailname string $MYHOSTNAME" | debconf-set-selections
    [ "${APT_UPDATE:-1}" = 0 ] || apt-get update -q >&2
    apt-get install -y -q --no-install-recommends postfix >&2
    log "installed postfix $(dpkg-query -W -f='${Version}' postfix) in $(elapsed "$t0") s"
}

ensure_user() {
    if ! id -u "$MAIL_USER" >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin "$MAIL_USER"
        log "created system user $MAIL_USER"
    fi
}

do_configure() {
    ensure_user
    local uid gid
    uid=$(id -u "$MAIL_USER"); gid=$(id -g "$MAIL_USER")
    if [ "$uid" -lt 100 ]; then
        log "MAIL_USER $MAIL_USER has uid $uid < 100 (virtual_minimum_uid); pick another user"; exit 1
    fi
    case "$MAILDIR" in /?*/?*) ;; *) log "MAILDIR must be an absolute path two levels deep"; exit 1 ;; esac
    # The virtual delivery agent runs as $MAIL_USER: it must own the Maildir (not its parent).
    mkdir -p "$MAILDIR/tmp" "$MAILDIR/new" "$MAILDIR/cur"
    chown -R "$uid:$gid" "$MAILDIR"
    chmod 0755 "$MAILDIR" "$MAILDIR/tmp" "$MAILDIR/new" "$MAILDIR/cur"
    mkdir -p "$BOUNCE_MAILDIR/tmp" "$BOUNCE_MAILDIR/new" "$BOUNCE_MAILDIR/cur"
    chown -R "$uid:$gid" "$(dirname "$BOUNCE_MAILDIR")"

    # Mailboxes by address: bounces@ and bounces+TOKEN@ (VERP) to the bounce Maildir, everyone
    # else to $MAILDIR as before. Paths are relative to virtual_mailbox_base.
    cat > /etc/postfix/dripline_mailboxes.regexp <<MAPS
/^bounces(\+[^@]*)?@/	bounces/Maildir/
/./	$(basename "$MAILDIR")/
MAPS
    # no-such-user*@ is accepted at RCPT (the mailbox map takes every address), then rewritten
    # by cleanup to a domain whose transport is error:5.1.1, so the queue manager bounces it:
    # a real DSN. (An error: transport for the address itself is refused at RCPT by smtpd.)
    cat > /etc/postfix/dripline_aliases.regexp <<'MAPS'
/^(no-such-user[^@]*)@/	${1}@unknown.invalid
MAPS
    cat > /etc/postfix/dripline_transport.regexp <<'MAPS'
/@unknown\.invalid$/	error:5.1.1 User unknown in virtual mailbox table
MAPS

    local domains mydest
    if [ "$MAIL_DOMAINS" = "*" ]; then
        domains="static:all"          # every domain is a virtual mailbox domain
        mydest=""                     # nothing is left for local(8)
    else
        domains=$(echo "$MAIL_DOMAINS $BOUNCE_DOMAIN" | tr ',' ' ' | xargs)
        mydest="\$myhostname, localhost"
    fi

    postconf -e \
        "myhostname = $MYHOSTNAME" \
        "mydomain = localdomain" \
        "myorigin = \$myhostname" \
        "mydestination = $mydest" \
        "inet_interfaces = loopback-only" \
        "inet_protocols = ipv4" \
        "mynetworks = 127.0.0.0/8" \
        "relay_domains =" \
        "relayhost =" \
        "smtpd_relay_restrictions = reject_unauth_destination" \
        "smtpd_recipient_restrictions =" \
        "smtpd_peername_lookup = no" \
        "default_transport = error:5.7.1 outbound mail is disabled on this test MTA" \
        "relay_transport = error:5.7.1 outbound mail is disabled on this test MTA" \
        "virtual_mailbox_domains = $domains" \
        "virtual_mailbox_base = $(dirname "$MAILDIR")" \
        "virtual_mailbox_maps = regexp:/etc/postfix/dripline_mailboxes.regexp" \
        "transport_maps = regexp:/etc/postfix/dripline_transport.regexp" \
        "recipient_delimiter = +" \
        "virtual_uid_maps = static:$uid" \
        "virtual_gid_maps = static:$gid" \
        "virtual_alias_maps = regexp:/etc/postfix/dripline_aliases.regexp" \
        "alias_maps = hash:/etc/aliases" \
        "alias_database = hash:/etc/aliases" \
        "maillog_file = $POSTFIX_LOG" \
        "compatibility_level = 3.6"

    # master.cf: no port-25 listener; one smtpd on 127.0.0.1:$SMTP_PORT; no chroot anywhere.
    postconf -MX smtp/inet 2>/dev/null || true
    local svc
    for svc in $(postconf -M | awk '$2 == "inet" && $1 ~ /^127\.0\.0\.1:/ { print $1 }'); do
        [ "$svc" = "127.0.0.1:$SMTP_PORT" ] || postconf -MX "$svc/inet"
    done
    postconf -M "127.0.0.1:$SMTP_PORT/inet=127.0.0.1:$SMTP_PORT inet n - n - - smtpd"
    postconf -F '*/*/chroot = n'

    [ -f /etc/aliases ] || echo "postmaster: root" > /etc/aliases
    newaliases
    touch "$POSTFIX_LOG"
    postfix check >&2
}

is_running() { postfix status >/dev/null 2>&1; }

wait_port() {
    python3 - "$SMTP_PORT" <<'PY'
import socket, sys, time
port = int(sys.argv[1]); deadline = time.time() + 20
while True:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        banner = s.recv(200); s.sendall(b"QUIT\r\n"); s.close()
        if banner.startswith(b"220"):
            break
    except OSError:
        pass
    if time.time() > deadline:
        sys.exit("smtpd did not answer on 127.0.0.1:%d" % port)
    time.sleep(0.1)
PY
}

print_env() {
    cat <<EOF
export SMTP_HOST=127.0.0.1
export SMTP_PORT=$SMTP_PORT
export MAIL_DOMAINS='$MAIL_DOMAINS'
export MAILDIR=$MAILDIR
export BOUNCE_MAILDIR=$BOUNCE_MAILDIR
export BOUNCE_DOMAIN=$BOUNCE_DOMAIN
export POSTFIX_LOG=$POSTFIX_LOG
EOF
}

do_start() {
    do_install
    local t0; t0=$(now)
    do_configure
    if is_running; then
        postfix reload >&2
        log "postfix was running: reloaded"
    else
        postfix start >&2
    fi
    wait_port
    log "postfix up on 127.0.0.1:$SMTP_PORT in $(elapsed "$t0") s (configure + start); Maildir $MAILDIR; log $POSTFIX_LOG"
    print_env
}

do_stop() {
    if is_running; then
        # `postfix status` says "not running" a moment before the daemons have exited:
        # note the master and its children, then wait for each of those PIDs.
        local pidfile pids p alive
        pidfile="$(postconf -h queue_directory)/pid/master.pid"
        pids=$(tr -d ' ' < "$pidfile" 2>/dev/null || true)
        [ -n "$pids" ] && pids="$pids $(ps -o pid= --ppid "$pids" 2>/dev/null | xargs || true)"
        postfix stop >&2
        for _ in $(seq 100); do
            alive=""
            for p in $pids; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
            [ -z "$alive" ] && ! is_running && break
            sleep 0.1
        done
        if [ -n "$alive" ] || is_running; then log "postfix processes still alive after stop:$alive"; exit 1; fi
        log "postfix stopped (master and its children exited)"
    else
        log "postfix not running"
    fi
}

do_selftest() {
    local domain catch_all=0
    if [ "$MAIL_DOMAINS" = "*" ]; then domain=example.test; catch_all=1
    else domain=$(echo "$MAIL_DOMAINS" | tr ',' ' ' | awk '{ print $1 }'); fi
    local t0; t0=$(now)
    SMTP_PORT="$SMTP_PORT" MAILDIR="$MAILDIR" DOMAIN="$domain" CATCH_ALL="$catch_all" python3 - <<'PY'
import mailbox, os, smtplib, sys, time, uuid
from email.message import EmailMessage

port = int(os.environ["SMTP_PORT"]); maildir = os.environ["MAILDIR"]
domain = os.environ["DOMAIN"]; catch_all = os.environ["CATCH_ALL"] == "1"
token = uuid.uuid4().hex
rcpts = ["selftest-%s@%s" % (token[:8], domain), "Other.Person+tag-%s@%s" % (token[:8], domain)]
if catch_all:
    rcpts.append("someone-%s@elsewhere.invalid" % token[:8])
msg = EmailMessage()
msg["From"] = "sender@example.test"
msg["To"] = ", ".join(rcpts)
msg["Subject"] = "recipe selftest " + token
msg.set_content("Hello from smtplib.\nToken: %s\n" % token)

t0 = time.time()
with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
    code, ehlo = s.ehlo()
    assert code == 250, (code, ehlo)
    refused = s.send_message(msg)
    assert not refused, refused
    if not catch_all:
        # A domain we do not serve must be refused: nothing may be relayed off the machine.
        s.mail("sender@example.test")
        code, resp = s.rcpt("someone@elsewhere.invalid")
        assert code == 554, ("relay not refused", code, resp)
        print("relay to elsewhere.invalid refused: %d %s" % (code, resp.decode()))
        s.rset()
print("sent to %s via 127.0.0.1:%d" % (", ".join(rcpts), port))

md = mailbox.Maildir(maildir, create=False)
want = {r.lower() for r in rcpts}
deadline = time.time() + 30
got = {}
while time.time() < deadline and set(got) != want:
    for key, m in md.items():
        if token in (m["Subject"] or ""):
            got[(m["X-Original-To"] or "").lower()] = (key, m)
    if set(got) != want:
        time.sleep(0.05)
if set(got) != want:
    sys.exit("not delivered to %s within 30 s (see the Postfix log)" % sorted(want - set(got)))
print("all %d copies delivered %.2f s after the first connect" % (len(got), time.time() - t0))
for rcpt, (key, m) in sorted(got.items()):
    print("  %s/new/%s" % (maildir, key))
    for h in ("Return-Path", "X-Original-To", "Delivered-To"):
        print("    %s: %s" % (h, m[h]))
    assert token in m.get_payload(), "body mismatch"
PY
    log "selftest passed: send + delivery + read back in $(elapsed "$t0") s"
}

cmd="${1:-all}"
case "$cmd" in
    install)  do_install ;;
    start)    do_start ;;
    stop)     do_stop ;;
    selftest) do_selftest ;;
    env)      print_env ;;
    all)
        t_all=$(now)
        do_start >/dev/null
        trap 'do_stop' EXIT
        do_selftest
        do_stop
        trap - EXIT
        log "end to end in $(elapsed "$t_all") s"
        ;;
    *) echo "usage: $0 [install|start|selftest|stop|env]" >&2; exit 2 ;;
esac

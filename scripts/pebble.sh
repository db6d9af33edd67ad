#!/usr/bin/env bash
# Run Pebble (a real ACME CA for tests) and pebble-challtestsrv (its mock DNS,
# answering 127.0.0.1 for every name) on this host, detached, with PID files.
#
# Usage: scripts/pebble.sh start|stop|restart|status|roots
#   start    start both unless running; wait until https://localhost:14000/dir answers
#   stop     stop both (by PID file only)
#   restart  stop, then start (Pebble makes a new root at every start)
#   status   print running/stopped for each; exit 0 if both run, 3 otherwise
#   roots    write Pebble's current root + intermediate to $COMPOSEKIT_TESTENV/pebble/roots.pem
#            and print that path: issued certificates chain to it
#
# Lanes (the integration tier runs its modules in parallel lanes, tests/integration/conftest.py): with
# PEBBLE_LANE=N (N >= 1) every command acts on lane N's own Pebble instead, in $COMPOSEKIT_TESTENV/pebble-laneN,
# listening on 14000+N (ACME) and 15000+N (management), validating on ports 80+1000N / 443+1000N (lane 1:
# 1080/1443, where that lane's stacks publish). All lanes share the mock DNS (started by whichever starts
# first; stopped with lane 0) and the listener certificate in $COMPOSEKIT_TESTENV/pebble.
#
# Environment:
#   COMPOSEKIT_TESTENV            state dir (default /var/lib/composekit-testenv); scripts/setup-env.sh
#                                 must have made pebble/cert.pem and pebble/key.pem there
#   PEBBLE_LANE                   which lane's Pebble (default 0: the one on 14000, validating on 80/443)
#   PEBBLE_HTTP_PORT              port Pebble validates HTTP-01 on (default 80+1000*lane: where Traefik publishes)
#   PEBBLE_TLS_PORT               port for TLS-ALPN-01 (default 443+1000*lane)
#   PEBBLE_CERT_VALIDITY_SECONDS  lifetime of issued certificates (default: Pebble's, 5 years)
#
# Ports used on the host: 14000+lane (ACME), 15000+lane (management), 8053 (DNS), 8055 (challtestsrv).
set -euo pipefail

CK_LOG_PREFIX=pebble.sh
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LANE=${PEBBLE_LANE:-0}
[[ $LANE =~ ^[0-9]$ ]] || ck_die "PEBBLE_LANE must be a lane number 0-9, got '$LANE'"
SHARED=$CK_STATE/pebble  # lane 0's directory: the listener certificate and the mock DNS live here
if ((LANE == 0)); then DIR=$SHARED; else DIR=$CK_STATE/pebble-lane$LANE; fi
CONFIG=$DIR/config.json
PEBBLE_PID=$DIR/pebble.pid
CHALL_PID=$SHARED/challtestsrv.pid
ACME_PORT=$((14000 + LANE))
MGMT_PORT=$((15000 + LANE))
ACME_DIR_URL=https://localhost:$ACME_PORT/dir
MGMT_URL=https://localhost:$MGMT_PORT

usage() { sed -n '2,29s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

require_cert() {
    [[ -s $SHARED/cert.pem && -s $SHARED/key.pem ]] ||
        ck_die "no listener certificate in $SHARED: run scripts/setup-env.sh first"
}

# The config this invocation asks for, on stdout.
desired_config() {
    local http_port=${PEBBLE_HTTP_PORT:-$((80 + 1000 * LANE))} tls_port=${PEBBLE_TLS_PORT:-$((443 + 1000 * LANE))}
    local validity=${PEBBLE_CERT_VALIDITY_SECONDS:-} validity_line=""
    [[ $http_port =~ ^[0-9]+$ ]] || ck_die "PEBBLE_HTTP_PORT must be a port number, got '$http_port'"
    [[ $tls_port =~ ^[0-9]+$ ]] || ck_die "PEBBLE_TLS_PORT must be a port number, got '$tls_port'"
    if [[ -n $validity ]]; then
        [[ $validity =~ ^[1-9][0-9]*$ ]] ||
            ck_die "PEBBLE_CERT_VALIDITY_SECONDS must be a positive integer, got '$validity'"
        # Pebble 2.4 reads pebble.certificateValidityPeriod (seconds) from its config.
        validity_line=$',\n    "certificateValidityPeriod": '"$validity"
    fi
    cat <<EOF
{
  "pebble": {
    "listenAddress": "0.0.0.0:$ACME_PORT",
    "managementListenAddress": "0.0.0.0:$MGMT_PORT",
    "certificate": "$SHARED/cert.pem",
    "privateKey": "$SHARED/key.pem",
    "httpPort": $http_port,
    "tlsPort": $tls_port,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": false$validity_line
  }
}
EOF
}

chall_alive() { ck_pid_alive "$CHALL_PID" pebble-challtestsrv; }
pebble_alive() { ck_pid_alive "$PEBBLE_PID" pebble; }

dir_answers() { curl -fsS --max-time 2 --cacert "$SHARED/cert.pem" -o /dev/null "$ACME_DIR_URL"; }

# launch PIDFILE LOG CMD...: start CMD detached in its own session, output to LOG.
launch() {
    local pidfile=$1 log=$2
    shift 2
    setsid "$@" >"$log" 2>&1 </dev/null 9>&- &
    echo $! >"$pidfile"
}

# check_ports_free PORT...: fail, naming the holder, if something listens on a port we need.
check_ports_free() {
    local port holders
    for port in "$@"; do
        holders=$(ss -Hltnup "sport = :$port" 2>/dev/null | grep -o 'users:(.*)' | sort -u | tr "\n" " " || true)
        if [[ -n $holders ]]; then
            ck_die "port $port is already in use by ${holders% } without a PID file in $DIR; stop that process first"
        fi
    done
}

# Fail with the log tail when the process of PIDFILE is gone or never got ready.
startup_failed() {
    local what=$1 log=$2
    tail -n 20 "$log" >&2 || true
    cmd_stop >/dev/null 2>&1 || true
    ck_die "$what did not start (log: $log)"
}

cmd_start() {
    require_cert
    local want
    want=$(desired_config)
    if pebble_alive && chall_alive; then
        if [[ $want != "$(cat "$CONFIG" 2>/dev/null)" ]]; then
            ck_log "running (pids $(<"$PEBBLE_PID"), $(<"$CHALL_PID")) with another config than asked:"
            diff <(cat "$CONFIG") <(echo "$want") >&2 || true
            ck_log "run scripts/pebble.sh restart to apply it"
            exit 3
        fi
        if ! dir_answers 2>/dev/null; then
            ck_log "running (pids $(<"$PEBBLE_PID"), $(<"$CHALL_PID")) but $ACME_DIR_URL does not answer with"
            ck_log "the certificate in $SHARED/cert.pem (regenerated since Pebble started?)"
            ck_log "run scripts/pebble.sh restart"
            exit 3
        fi
        ck_log "already running (pebble pid $(<"$PEBBLE_PID"), challtestsrv pid $(<"$CHALL_PID"))"
        return 0
    fi
    mkdir -p "$DIR"
    local ports=()
    chall_alive || ports+=(8053 8055)
    pebble_alive || ports+=("$ACME_PORT" "$MGMT_PORT")
    check_ports_free "${ports[@]}"

    if ! chall_alive; then
        launch "$CHALL_PID" "$SHARED/challtestsrv.log" \
            pebble-challtestsrv -http01 "" -https01 "" -tlsalpn01 "" -dns01 :8053 -management :8055 \
            -defaultIPv4 127.0.0.1 -defaultIPv6 ""
    fi
    if ! pebble_alive; then
        echo "$want" >"$CONFIG"
        launch "$PEBBLE_PID" "$DIR/pebble.log" \
            env PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 \
            pebble -config "$CONFIG" -dnsserver 127.0.0.1:8053
    fi

    local deadline=$((SECONDS + 30))
    until dir_answers 2>/dev/null; do
        chall_alive || startup_failed pebble-challtestsrv "$SHARED/challtestsrv.log"
        pebble_alive || startup_failed pebble "$DIR/pebble.log"
        ((SECONDS < deadline)) || startup_failed "pebble (no answer from $ACME_DIR_URL within 30 s)" "$DIR/pebble.log"
        sleep 0.2
    done
    ck_log "lane $LANE: started (pebble pid $(<"$PEBBLE_PID"), challtestsrv pid $(<"$CHALL_PID")); ACME directory $ACME_DIR_URL"
}

cmd_stop() {
    ck_stop_pidfile pebble "$PEBBLE_PID" pebble
    ((LANE != 0)) || ck_stop_pidfile pebble-challtestsrv "$CHALL_PID" pebble-challtestsrv
}

cmd_status() {
    local rc=0
    if pebble_alive; then echo "pebble: running (pid $(<"$PEBBLE_PID"))"; else echo "pebble: stopped"; rc=3; fi
    if chall_alive; then echo "pebble-challtestsrv: running (pid $(<"$CHALL_PID"))"; else echo "pebble-challtestsrv: stopped"; rc=3; fi
    return $rc
}

cmd_roots() {
    pebble_alive || ck_die "pebble is not running: scripts/pebble.sh start"
    # Callers run at once (the integration tier's workers): each fetches into its own temporary file and
    # renames it into place, so none reads a file another is writing.
    local out=$DIR/roots.pem tmp
    tmp=$(mktemp "$DIR/roots.pem.XXXXXX")
    if ! {
        curl -fsS --max-time 5 --cacert "$SHARED/cert.pem" "$MGMT_URL/roots/0"
        echo
        curl -fsS --max-time 5 --cacert "$SHARED/cert.pem" "$MGMT_URL/intermediates/0"
        echo
    } | grep -v '^$' >"$tmp"; then
        rm -f "$tmp"
        ck_die "could not fetch the roots from $MGMT_URL"
    fi
    chmod 644 "$tmp"
    mv -f "$tmp" "$out"
    echo "$out"
}

case ${1:-} in
    start | stop | restart) ck_lock pebble ;;
esac
case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart) cmd_stop; cmd_start ;;
    status) cmd_status ;;
    roots) cmd_roots ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
esac

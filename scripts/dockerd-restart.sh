#!/usr/bin/env bash
# Stop and start again THE dockerd that scripts/setup-env.sh started (its PID file
# $COMPOSEKIT_TESTENV/dockerd.pid), optionally with another daemon.json, and wait
# until `docker info` answers. For tests and benchmarks of daemon restarts.
#
# Usage: scripts/dockerd-restart.sh [--daemon-json FILE | --original] [--down SECONDS]
#   --daemon-json FILE  start dockerd with --config-file FILE (its settings: live-restore, ...)
#   --original          start dockerd with the command line it had before the first restart
#                       by this script (the default when no option is given)
#   --down SECONDS      stay stopped this long before starting again (an upgrade's pause; default 0)
# Prints one line on stdout: "<stopped seconds> <seconds until docker info answered>".
# Restarting the engine breaks every docker command in flight: callers hold the host
# ports lock of the integration tests (/tmp/composekit-integration.lock) meanwhile.
set -euo pipefail

CK_LOG_PREFIX=dockerd-restart
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PID_FILE=$CK_STATE/dockerd.pid
ORIGINAL=$CK_STATE/dockerd.original-cmdline
LOG=/var/log/composekit-dockerd.log
STOP_TIMEOUT=90
START_TIMEOUT=60

config=""
down=0
while (($#)); do
    case $1 in
        --daemon-json) config=${2:?--daemon-json needs a file}; shift 2 ;;
        --original) config=""; shift ;;
        --down) down=${2:?--down needs seconds}; shift 2 ;;
        -h | --help) sed -n '2,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) ck_die "unknown argument: $1 (see --help)" ;;
    esac
done
[[ $down =~ ^[0-9]+(\.[0-9]+)?$ ]] || ck_die "--down: expected seconds, got '$down'"
if [[ -n $config ]]; then
    [[ -r $config ]] || ck_die "--daemon-json: cannot read $config"
    config=$(realpath "$config")
fi
[[ $(id -u) == 0 ]] || ck_die "run as root (it stops and starts dockerd)"
ck_lock dockerd-restart

pid=""
if ck_pid_alive "$PID_FILE" dockerd; then
    pid=$(<"$PID_FILE")
elif [[ -s $ORIGINAL ]] && ! docker info >/dev/null 2>&1; then
    # Our dockerd died (a daemon.json it refused, say): nothing to stop, start it again.
    ck_log "the dockerd of $PID_FILE is not running and no engine answers: starting it"
else
    ck_die "no running dockerd in $PID_FILE: this script only restarts the dockerd that scripts/setup-env.sh started"
fi

# The command line to come back to, recorded once, before this script changed anything.
if [[ ! -s $ORIGINAL ]]; then
    cp "/proc/$pid/cmdline" "$ORIGINAL.tmp"
    mv "$ORIGINAL.tmp" "$ORIGINAL"
fi
args=()
skip_next=0
while IFS= read -r -d '' arg; do
    if ((skip_next)); then skip_next=0; continue; fi
    if [[ -n $config && $arg == --config-file ]]; then skip_next=1; continue; fi
    if [[ -n $config && $arg == --config-file=* ]]; then continue; fi
    args+=("$arg")
done <"$ORIGINAL"
((${#args[@]})) || ck_die "$ORIGINAL is empty"
[[ -n $config ]] && args+=(--config-file "$config")

t0=$EPOCHREALTIME
if [[ -n $pid ]]; then
    kill -TERM "$pid"
    deadline=$((SECONDS + STOP_TIMEOUT))
    while [[ -e /proc/$pid ]] && [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]; do
        ((SECONDS < deadline)) || ck_die "dockerd (pid $pid) did not stop within $STOP_TIMEOUT s"
        sleep 0.1
    done
fi
t_stopped=$EPOCHREALTIME
sleep "$down"

echo "=== $(date -u +%FT%TZ) dockerd-restart: ${args[*]}" >>"$LOG"
# ck_lock's lock (fd 9) must not live on in the daemon.
setsid "${args[@]}" >>"$LOG" 2>&1 </dev/null 9>&- &
echo $! >"$PID_FILE"
# Ends the wait early when the new dockerd has exited (a daemon.json it refuses, say).
answers_or_exited() { docker info >/dev/null 2>&1 || ! ck_pid_alive "$PID_FILE" dockerd; }
if ! ck_wait_until "$START_TIMEOUT" "docker info" answers_or_exited || ! docker info >/dev/null 2>&1; then
    tail -n 30 "$LOG" >&2
    ck_die "dockerd (${args[*]}) did not answer within $START_TIMEOUT s or exited (log: $LOG);" \
        "scripts/dockerd-restart.sh --original starts it as it was"
fi
ck_log "dockerd restarted (pid $(<"$PID_FILE")): ${args[*]}"
awk -v a="$t0" -v b="$t_stopped" -v c="$EPOCHREALTIME" 'BEGIN { printf "%.2f %.2f\n", b - a, c - b }'

# Shared helpers of the scripts here (setup-env.sh, pebble.sh, swarm.sh, registry.sh, ...). Source it; do not run it.
# shellcheck shell=bash

# shellcheck disable=SC2034  # used by the scripts that source this file
CK_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
# shellcheck disable=SC2034
CK_STATE=${COMPOSEKIT_TESTENV:-/var/lib/composekit-testenv}
CK_LOG_PREFIX=${CK_LOG_PREFIX:-composekit}

ck_log() { printf '%s: %s\n' "$CK_LOG_PREFIX" "$*" >&2; }
ck_step() { ck_log "$1: $2"; }
ck_die() { ck_log "error: $*"; exit 1; }

# ck_wait_until SECONDS DESCRIPTION CMD...: run CMD every 0.5 s until it succeeds or the deadline passes.
ck_wait_until() {
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            ck_log "timed out waiting for $what"
            return 1
        fi
        sleep 0.5
    done
}

# Print the host's Debian apt sources as "URI SUITE COMPONENTS" lines, one per suite,
# from deb822 files (*.sources) and one-line sources.list files. Only Debian suites
# (bookworm, bookworm-updates, bookworm-security, ...) are kept.
ck_apt_sources() {
    local codename=${1:-bookworm} f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -r $f ]] || continue
        awk -v cn="$codename" '
            function flush() {
                if (types ~ /(^|[ \t])deb([ \t]|$)/ && uris != "" && enabled != "no") {
                    n = split(suites, s, /[ \t]+/)
                    m = split(uris, u, /[ \t]+/)
                    for (j = 1; j <= m; j++) for (i = 1; i <= n; i++)
                        if (u[j] != "" && (s[i] == cn || index(s[i], cn "-") == 1)) print u[j], s[i], comps
                }
                types = uris = suites = comps = enabled = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            {
                key = tolower($1); sub(/:$/, "", key)
                val = $0; sub(/^[^:]*:[ \t]*/, "", val)
                if (key == "types") types = val
                else if (key == "uris") uris = val
                else if (key == "suites") suites = val
                else if (key == "components") comps = val
                else if (key == "enabled") enabled = tolower(val)
            }
            END { flush() }
        ' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -r $f ]] || continue
        awk -v cn="$codename" '
            $1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                if ($(i + 1) == cn || index($(i + 1), cn "-") == 1) {
                    line = $i " " $(i + 1)
                    for (k = i + 2; k <= NF; k++) line = line " " $k
                    print line
                }
            }
        ' "$f"
    done
}

# The host's main Debian mirror (the URI that serves the bare codename suite).
ck_apt_mirror() {
    local codename=${1:-bookworm}
    ck_apt_sources "$codename" | awk -v cn="$codename" '$2 == cn { print $1; exit }'
}

# ck_pid_alive PIDFILE [COMM]: true when PIDFILE names a live process (whose
# /proc/PID/comm is COMM, if given, so that a recycled PID is not taken for ours).
ck_pid_alive() {
    local pid comm
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    if [[ -n ${2:-} ]]; then
        comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
        [[ $comm == "${2:0:15}" ]] || return 1
    fi
    # A zombie (exited, not yet reaped) is not alive.
    [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]
}

# ck_stop_pidfile NAME PIDFILE COMM: TERM the process of PIDFILE (if alive, with that comm), wait up to 10 s, then
# KILL; the PID file is removed either way.
ck_stop_pidfile() {
    local name=$1 pidfile=$2 comm=$3 pid
    if ! ck_pid_alive "$pidfile" "$comm"; then
        rm -f "$pidfile"
        ck_log "$name: not running"
        return
    fi
    pid=$(<"$pidfile")
    kill -TERM "$pid" 2>/dev/null || true
    if ! ck_wait_until 10 "$name (pid $pid) to exit" bash -c "! kill -0 $pid"; then
        kill -KILL "$pid" 2>/dev/null || true
        ck_wait_until 5 "$name (pid $pid) to die" bash -c "! kill -0 $pid" || true
    fi
    rm -f "$pidfile"
    ck_log "$name: stopped (pid $pid)"
}

# ck_lock NAME: hold $CK_STATE/NAME.lock until the script exits, so that two runs at once
# (two sessions, or a test fixture and a developer) take turns instead of racing. The
# lock is on fd 9: daemons started meanwhile must close it (9>&-) or they would keep it.
ck_lock() {
    local lock=$CK_STATE/$1.lock
    mkdir -p "$CK_STATE"
    exec 9>"$lock"
    if ! flock -n 9; then
        ck_log "waiting for another run to finish (lock $lock)"
        flock 9
    fi
}

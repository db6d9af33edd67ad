#!/usr/bin/env bash
# An OpenSSH server of the test environment's own, on a loopback port, for composekit's remote-engine tests.
#
#   scripts/sshd.sh start|stop|status|env
#
# start: generates (once) a host key, a client key, authorized_keys, known_hosts and an ssh config with the
# Host alias "composekit-test", then runs sshd (key-only login, loopback only) unless ours already runs.
# stop: ends the sshd started here, by the PID in its PID file. Idempotent both ways.
# env: prints COMPOSEKIT_SSH_CONFIG=... and COMPOSEKIT_TEST_SSH_HOST=... for the tests.
# Needs Debian's openssh-server (scripts/setup-env.sh installs it). Settings:
#   COMPOSEKIT_SSHD_DIR  (default /var/lib/composekit-testenv/sshd)   COMPOSEKIT_SSHD_PORT (default 2222)
set -euo pipefail

DIR=${COMPOSEKIT_SSHD_DIR:-/var/lib/composekit-testenv/sshd}
PORT=${COMPOSEKIT_SSHD_PORT:-2222}
ALIAS=composekit-test
PIDFILE=$DIR/sshd.pid
SSHD=${SSHD:-/usr/sbin/sshd}

running() {
    [[ -s $PIDFILE ]] || return 1
    local pid
    pid=$(cat "$PIDFILE")
    kill -0 "$pid" 2>/dev/null && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == sshd ]]
}

prepare() {
    [[ -x $SSHD ]] || { echo "sshd.sh: $SSHD not found: apt-get install openssh-server" >&2; exit 1; }
    mkdir -p "$DIR" /run/sshd
    chmod 700 "$DIR"
    [[ -f $DIR/host_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C composekit-test-host -f "$DIR/host_ed25519"
    [[ -f $DIR/client_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C composekit-test-client -f "$DIR/client_ed25519"
    cp "$DIR/client_ed25519.pub" "$DIR/authorized_keys"
    chmod 600 "$DIR/authorized_keys"
    echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$DIR/host_ed25519.pub")" > "$DIR/known_hosts"
    cat > "$DIR/sshd_config" <<CONF
Port $PORT
ListenAddress 127.0.0.1
HostKey $DIR/host_ed25519
PidFile $PIDFILE
AuthorizedKeysFile $DIR/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
AllowStreamLocalForwarding yes
AllowTcpForwarding yes
MaxSessions 64
MaxStartups 64:30:128
LogLevel INFO
CONF
    cat > "$DIR/ssh_config" <<CONF
Host $ALIAS
    HostName 127.0.0.1
    Port $PORT
    User root
    IdentityFile $DIR/client_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $DIR/known_hosts
    StrictHostKeyChecking yes
    BatchMode yes
CONF
}

case ${1:-} in
start)
    if running; then exit 0; fi
    prepare
    "$SSHD" -t -f "$DIR/sshd_config"
    "$SSHD" -f "$DIR/sshd_config" -E "$DIR/sshd.log"
    for _ in $(seq 50); do
        if running && ssh -F "$DIR/ssh_config" -o ConnectTimeout=5 "$ALIAS" true 2>/dev/null; then
            echo "sshd.sh: sshd $(cat "$PIDFILE") on 127.0.0.1:$PORT (ssh -F $DIR/ssh_config $ALIAS)"
            exit 0
        fi
        sleep 0.2
    done
    echo "sshd.sh: sshd did not accept a login within 10 s; $DIR/sshd.log ends with:" >&2
    tail -n 5 "$DIR/sshd.log" >&2 || true
    exit 1
    ;;
stop)
    if running; then
        pid=$(cat "$PIDFILE")
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$PIDFILE"
    ;;
status)
    if running; then echo "running: $(cat "$PIDFILE")"; else echo "stopped"; exit 1; fi
    ;;
env)
    echo "COMPOSEKIT_SSH_CONFIG=$DIR/ssh_config"
    echo "COMPOSEKIT_TEST_SSH_HOST=ssh://$ALIAS"
    ;;
*)
    echo "usage: $0 start|stop|status|env" >&2
    exit 2
    ;;
esac

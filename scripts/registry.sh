#!/usr/bin/env bash
# A container registry of the test environment's own (Debian's docker-registry, the distribution registry), for
# the tests of `registry:` in swarm mode: HTTPS with a certificate of a CA generated here, and a login (htpasswd),
# as a private registry is. Both engines of the test Swarm reach it at the host end of node2's veth.
#
#   scripts/registry.sh start|stop|status|env
#
# start: generates (once) a CA, the registry's certificate (IP SAN = the address), a user and password; installs
# the CA as /etc/docker/certs.d/ADDR/ca.crt (dockerd reads it at each pull and push, no restart); runs the
# registry on ADDR only (never on every interface) unless ours already runs. ADDR must exist: start the Swarm first
# (scripts/swarm.sh start). Storage: $DIR/data, emptied by `stop`.
# stop: ends the registry started here (by its PID file), removes its certs.d entry and its images. Idempotent.
# env: prints COMPOSEKIT_TEST_REGISTRY=ADDR, COMPOSEKIT_TEST_REGISTRY_USER and COMPOSEKIT_TEST_REGISTRY_PASSWORD_FILE.
# Needs docker-registry, apache2-utils (htpasswd) and openssl (scripts/setup-env.sh installs them). Settings:
#   COMPOSEKIT_REGISTRY_DIR (default $COMPOSEKIT_TESTENV/registry)   COMPOSEKIT_REGISTRY_ADDR (default 10.231.7.1:5000)
set -euo pipefail

# shellcheck disable=SC2034  # read by lib.sh
CK_LOG_PREFIX=registry
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DIR=${COMPOSEKIT_REGISTRY_DIR:-$CK_STATE/registry}
ADDR=${COMPOSEKIT_REGISTRY_ADDR:-10.231.7.1:5000}
HOST=${ADDR%:*}
PIDFILE=$DIR/registry.pid
CERTS_D=/etc/docker/certs.d/$ADDR
USER_NAME=composekit
REGISTRY=${REGISTRY:-/usr/bin/docker-registry}

running() { ck_pid_alive "$PIDFILE" docker-registry; }

answers() {
    # 401 without a login: the registry is up and asks for one.
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 --cacert "$DIR/ca.crt" "https://$ADDR/v2/") == 401 ]]
}

prepare() {
    [[ -x $REGISTRY ]] || ck_die "$REGISTRY not found: apt-get install docker-registry"
    command -v htpasswd >/dev/null || ck_die "htpasswd not found: apt-get install apache2-utils"
    # Not `ip | grep -q`: under pipefail, grep's early exit can kill ip with SIGPIPE and fail the pipeline.
    [[ $(ip -4 -o addr show) == *"inet $HOST/"* ]] || ck_die "no interface has $HOST: start the Swarm first (scripts/swarm.sh start)"
    mkdir -p "$DIR/data"
    chmod 700 "$DIR"
    if [[ ! -f $DIR/ca.crt ]]; then
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=composekit test registry CA" \
            -keyout "$DIR/ca.key" -out "$DIR/ca.crt" 2>/dev/null
    fi
    if [[ ! -f $DIR/registry.crt ]]; then
        openssl req -newkey rsa:2048 -nodes -subj "/CN=$HOST" -keyout "$DIR/registry.key" -out "$DIR/registry.csr" \
            2>/dev/null
        printf 'subjectAltName=IP:%s\nextendedKeyUsage=serverAuth\n' "$HOST" > "$DIR/ext.cnf"
        openssl x509 -req -in "$DIR/registry.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" -CAcreateserial \
            -days 3650 -extfile "$DIR/ext.cnf" -out "$DIR/registry.crt" 2>/dev/null
    fi
    if [[ ! -f $DIR/password ]]; then
        (umask 077; openssl rand -hex 16 > "$DIR/password")
    fi
    htpasswd -Bbn "$USER_NAME" "$(cat "$DIR/password")" > "$DIR/htpasswd"
    mkdir -p "$CERTS_D"
    cp "$DIR/ca.crt" "$CERTS_D/ca.crt"
    cat > "$DIR/config.yml" <<CONF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $DIR/data
  delete:
    enabled: true
http:
  addr: $ADDR
  tls:
    certificate: $DIR/registry.crt
    key: $DIR/registry.key
auth:
  htpasswd:
    realm: composekit-test
    path: $DIR/htpasswd
CONF
}

case ${1:-} in
start)
    if running && answers; then exit 0; fi
    prepare
    # fd 9 (a caller's lock) closed: the registry must not hold it.
    "$REGISTRY" serve "$DIR/config.yml" > "$DIR/registry.log" 2>&1 9>&- &
    echo $! > "$PIDFILE"
    if ! ck_wait_until 20 "the registry on https://$ADDR/v2/" answers; then
        tail -n 5 "$DIR/registry.log" >&2 || true
        exit 1
    fi
    ck_log "docker-registry $(cat "$PIDFILE") on https://$ADDR (user $USER_NAME, CA $CERTS_D/ca.crt)"
    ;;
stop)
    ck_stop_pidfile docker-registry "$PIDFILE" docker-registry
    rm -rf "$CERTS_D" "$DIR/data"
    ;;
status)
    if running; then echo "running: $(cat "$PIDFILE")"; else echo "stopped"; exit 1; fi
    ;;
env)
    echo "COMPOSEKIT_TEST_REGISTRY=$ADDR"
    echo "COMPOSEKIT_TEST_REGISTRY_USER=$USER_NAME"
    echo "COMPOSEKIT_TEST_REGISTRY_PASSWORD_FILE=$DIR/password"
    ;;
*)
    echo "usage: $0 start|stop|status|env" >&2
    exit 2
    ;;
esac

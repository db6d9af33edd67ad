#!/usr/bin/env bash
# The main job, locally: prepare this machine, start a local ACME CA (Pebble), bring up the example stack
# (stacks/fastapi: Traefik + a FastAPI app + its migration) with a real certificate from that CA, and
# smoke-test it over HTTPS. `scripts/example.sh down` takes it down again (volumes kept).
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=${COMPOSEKIT_TESTENV:-/var/lib/composekit-testenv}
EXAMPLE=stacks/fastapi
OVERLAY=$STATE/example-local.yaml

bash scripts/setup-env.sh
bash scripts/pebble.sh start
set -a
# shellcheck disable=SC1091
source "$STATE/env"
set +a
ROOTS=$(bash scripts/pebble.sh roots | tail -n 1)

# The example's composekit.yaml targets Let's Encrypt and the official images; this overlay points it at
# the local Pebble CA and at the images built on this machine (no registry is reachable here).
cat >"$OVERLAY" <<YAML
acme:
  ca_server: $COMPOSEKIT_TEST_ACME_DIR
  ca_certificates: [$COMPOSEKIT_TEST_PEBBLE_CA]
images:
  python: $COMPOSEKIT_TEST_PYTHON_IMAGE
  traefik: $COMPOSEKIT_TEST_TRAEFIK_IMAGE
YAML

ck() { .venv/bin/composekit -c "$EXAMPLE/composekit.yaml" -c "$OVERLAY" "$@"; }

if [[ ${1:-} == down ]]; then
    ck down
    exit 0
fi

# Pebble keeps nothing across restarts (a new root, no accounts): a certificate and an ACME account the example
# got from an earlier Pebble neither verify nor renew, and Traefik would keep serving that certificate. So when
# Pebble's root is not the one recorded at the example's last deploy, the example's ACME storage is set aside
# (kept in its volume as acme.json.<UTC time>.stale, nothing deleted) and Traefik asks the running Pebble again.
NAME=$(.venv/bin/python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["name"])' "$EXAMPLE/composekit.yaml")
ROOT_MARK=$STATE/example-pebble-root
ROOT_NOW=$(openssl x509 -in "$ROOTS" -noout -fingerprint -sha256)
if docker volume inspect "${NAME}_acme" >/dev/null 2>&1 && [[ $(cat "$ROOT_MARK" 2>/dev/null) != "$ROOT_NOW" ]]; then
    echo "example: Pebble restarted since the example's last deploy: setting its old ACME storage aside" >&2
    ck down
    docker run --rm --network none -v "${NAME}_acme:/acme" "$COMPOSEKIT_TEST_PYTHON_IMAGE" sh -c \
        'if [ -f /acme/acme.json ]; then mv /acme/acme.json "/acme/acme.json.$(date -u +%Y%m%dT%H%M%SZ).stale"; fi'
fi
DOMAIN=$(.venv/bin/python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["domain"])' "$EXAMPLE/composekit.yaml")
# `up` builds, migrates, starts, waits until healthy and routed, then smoke-tests over HTTPS: the
# certificate must chain to Pebble's roots (a Traefik default certificate fails), HTTP must redirect.
ck up --resolve "$DOMAIN:127.0.0.1" --ca-file "$ROOTS"
echo "$ROOT_NOW" >"$ROOT_MARK"
ck status
echo "example: https://$DOMAIN/ is up with a certificate from the local ACME CA; 'scripts/example.sh down' stops it"

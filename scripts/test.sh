#!/usr/bin/env bash
# The whole test suite: prepares this machine (scripts/setup-env.sh: Docker engine, Compose v2, local
# images, Pebble's certificate), starts Pebble, then runs pytest: unit tests and the integration suite
# against the real engine, Traefik and Pebble. Extra arguments go to pytest (e.g. tests/unit, -k smoke).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
bash scripts/pebble.sh start
set -a
# shellcheck disable=SC1091
source "${COMPOSEKIT_TESTENV:-/var/lib/composekit-testenv}/env"
set +a
if (($# == 0)); then set -- tests; fi
exec .venv/bin/python -m pytest "$@"

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
# The example stack (scripts/example.sh) holds ports 80/443, which the integration suite needs: stop it
# (its volumes are kept; `bash scripts/example.sh` brings it back).
if [[ -n $(docker ps -q --filter label=com.docker.compose.project=shop) && -f $COMPOSEKIT_TESTENV/example-local.yaml ]]; then
    echo "test.sh: stopping the example stack (scripts/example.sh) to free ports 80/443; volumes are kept" >&2
    .venv/bin/composekit -c stacks/fastapi/composekit.yaml -c "$COMPOSEKIT_TESTENV/example-local.yaml" down
fi
if (($# == 0)); then set -- tests; fi
exec .venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# The whole test suite: prepares this machine (scripts/setup-env.sh: the project venv, Docker engine,
# Compose v2, local images, Pebble's certificate), runs the static checks (scripts/lint.sh: ruff check,
# ruff format --check, mypy --strict on the package and the tests; a failure stops here), starts Pebble,
# then runs pytest: unit tests and the integration suite against the real engine, Traefik and Pebble.
# Extra arguments go to pytest (e.g. tests/unit, -k smoke). SKIP_LINT=1 skips the static checks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
if [[ ${SKIP_LINT:-0} != 1 ]]; then
    echo "== test.sh: lint, format, types (scripts/lint.sh)" >&2
    if ! bash scripts/lint.sh; then
        echo "test.sh: the static checks failed (summary above); fix them, or SKIP_LINT=1 to run the tests anyway" >&2
        exit 1
    fi
    echo "== test.sh: static checks passed" >&2
fi
bash scripts/pebble.sh start
bash scripts/sshd.sh start  # the remote-engine tests' own sshd on a loopback port (tests/integration/test_remote.py)
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
echo "== test.sh: unit and integration tests (pytest $*)" >&2
exec .venv/bin/python -m pytest "$@"

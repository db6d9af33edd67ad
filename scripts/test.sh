#!/usr/bin/env bash
# The test suite, in two tiers.
#
#   bash scripts/test.sh --unit [PYTEST ARGS]   the fast tier: tests/unit only, in parallel (pytest-xdist), with
#                                               no machine setup, no lint, no Docker; needs only python3 (uses
#                                               .venv, or a python3 that has the test extra, or creates .venv
#                                               with `pip install -e '.[test]'` once)
#   bash scripts/test.sh                        the whole suite, as CI runs it (.ci/run): prepares this machine
#                                               (scripts/setup-env.sh: the project venv, Docker engine, Compose v2,
#                                               local images, Pebble's certificate), runs the static checks
#                                               (scripts/lint.sh; a failure stops here; SKIP_LINT=1 skips them),
#                                               byte-compiles the package, starts Pebble (one per lane) and the
#                                               test sshd, then runs the unit tier (in parallel) and the integration
#                                               tier (in four lanes:
#                                               pytest-xdist workers, each deploying on its own host ports with its
#                                               own Pebble, one module per lane at a time; the exclusive module
#                                               alone, last; tests/integration/lanes.py); exits non-zero when either
#                                               tier fails, after running both
#   bash scripts/test.sh PYTEST ARGS            setup as above, then one pytest run with these arguments
#                                               (e.g. tests/integration/test_stack.py, -k smoke)
set -euo pipefail
cd "$(dirname "$0")/.."

# A python that runs the unit tier: the project venv (given the test extra when it lacks part of it, e.g. a venv
# made before pytest-xdist joined it); else python3 when it has the test extra (a CI image, a venv the caller
# activated); else a new .venv with it. The test extra's modules are looked up, not imported (importing them cost
# a second of CPU at every run; pytest imports them right after).
UNIT_IMPORTS='import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in ("composekit", "pytest", "xdist", "hypothesis", "jsonschema", "uvicorn")))'
unit_python() {
    if [[ ! -x .venv/bin/python ]] && python3 -c "$UNIT_IMPORTS" >/dev/null 2>&1; then
        echo python3
        return
    fi
    if [[ ! -x .venv/bin/python ]]; then
        echo "test.sh: no .venv: creating it (python3 -m venv .venv && .venv/bin/pip install -e '.[test]')" >&2
        python3 -m venv .venv >&2
    fi
    if ! .venv/bin/python -c "$UNIT_IMPORTS" >/dev/null 2>&1; then
        echo "test.sh: installing the test extra into .venv (.venv/bin/pip install -e '.[test]')" >&2
        .venv/bin/pip install -q -e '.[test]' >&2
    fi
    echo .venv/bin/python
}

# The unit tier's pytest: one worker per core (pytest-xdist; its tests hold no fixed port, file or container).
UNIT=(tests/unit -n auto)

if [[ ${1:-} == --unit ]]; then
    shift
    python=$(unit_python)
    echo "== test.sh: unit tier ($python -m pytest ${UNIT[*]} $*)" >&2
    exec "$python" -m pytest "${UNIT[@]}" "$@"
fi

bash scripts/setup-env.sh
if [[ ${SKIP_LINT:-0} != 1 ]]; then
    echo "== test.sh: lint, format, types (scripts/lint.sh)" >&2
    if ! bash scripts/lint.sh; then
        echo "test.sh: the static checks failed (summary above); fix them, or SKIP_LINT=1 to run the tests anyway" >&2
        exit 1
    fi
    echo "== test.sh: static checks passed" >&2
fi
# The package's bytecode, compiled once (0.2 s): pip never byte-compiles an editable install, and where
# PYTHONDONTWRITEBYTECODE is set (this machine, many CI images and containers) each of the integration tier's ~400
# `composekit` runs would compile it again: about 0.1 s of CPU each, a fifth of the CLI's start-up.
.venv/bin/python -m compileall -q composekit
# One Pebble per integration lane: lane N validates on 80+1000N/443+1000N (ACME on 14000+N).
bash scripts/pebble.sh start
PEBBLE_LANE=1 bash scripts/pebble.sh start
PEBBLE_LANE=2 bash scripts/pebble.sh start
PEBBLE_LANE=3 bash scripts/pebble.sh start
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
if (($# > 0)); then
    echo "== test.sh: pytest $*" >&2
    exec .venv/bin/python -m pytest "$@"
fi
echo "== test.sh: unit tier (pytest ${UNIT[*]})" >&2
unit=0
.venv/bin/python -m pytest "${UNIT[@]}" || unit=$?
# The integration tier in four lanes (tests/integration/lanes.py: four xdist workers, whole modules each, in the
# order and work units conftest gives them: the longest first, the swarm modules one unit (on lane 0), the shared
# edge's one unit (on any lane, one at a time), the exclusive module last, alone; the engine is in the two-node
# test swarm from before the workers start until the exclusive module or the end); it lists its 25 slowest steps and
# each module's lane, wait and time.
INTEGRATION=(tests/integration -n 4 --dist loadfile --no-loadscope-reorder --durations=25)
echo "== test.sh: integration tier (pytest ${INTEGRATION[*]})" >&2
integration=0
.venv/bin/python -m pytest "${INTEGRATION[@]}" || integration=$?
if ((unit != 0 || integration != 0)); then
    echo "test.sh: FAILED: unit tier exited $unit, integration tier exited $integration (each tier's summary above)" >&2
    exit 1
fi

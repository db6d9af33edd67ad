#!/usr/bin/env bash
# Re-record the JSON of tests/unit/test_deploy_recorded.py from real deploys of the fastapi-postgres
# template (project checks-rec, domain checks-rec.composekit.test) on this machine's engine, local images
# and Pebble (scripts/setup-env.sh first). Holds the integration suite's lock on ports 80/443 while the
# stack is up, and takes the stack and its volumes down at the end. Not run by the test suite.
#   bash tests/data/docker/record.sh
set -euo pipefail
WT=$(cd "$(dirname "$0")/../../.." && pwd -P)
OUT=$WT/tests/data/docker
if [[ -z ${CK_RECORD_LOCKED:-} ]]; then
    CK_RECORD_LOCKED=1 exec flock -w 1500 /tmp/composekit-integration.lock bash "$0" "$@"
fi
SRC=$(mktemp -d)/checks-rec
CK="$WT/.venv/bin/python -m composekit.cli -c composekit.yaml -c local.yaml"
set -a; source /var/lib/composekit-testenv/env; set +a
mkdir -p "$OUT"
cp -r "$WT/stacks/fastapi-postgres" "$SRC"; rm -rf "$SRC/.composekit" "$SRC"/app/__pycache__
mkdir -p "$SRC/secrets"; echo "recording-only-password" > "$SRC/secrets/db_password"
cat > "$SRC/local.yaml" <<YAML
name: checks-rec
domain: checks-rec.composekit.test
acme: {ca_server: "$COMPOSEKIT_TEST_ACME_DIR", ca_certificates: ["$COMPOSEKIT_TEST_PEBBLE_CA"]}
images: {python: "$COMPOSEKIT_TEST_PYTHON_IMAGE", traefik: "$COMPOSEKIT_TEST_TRAEFIK_IMAGE", postgres: "$COMPOSEKIT_TEST_POSTGRES_IMAGE"}
YAML
cd "$SRC"
ids() { docker ps -aq --no-trunc --filter label=com.docker.compose.project=checks-rec; }
record() {  # record NAME: docker inspect of every container of the project, and compose ps
    docker container inspect $(ids) > "$OUT/inspect-$1.json"
    docker compose -p checks-rec ps -a --format json > "$OUT/compose-ps-$1.jsonl"
    echo "recorded $1: $(docker ps -a --filter label=com.docker.compose.project=checks-rec --format '{{.Names}}={{.Status}}' | tr '\n' ' ')"
}
cleanup() { (cd "$SRC" && $CK down --delete-volumes >/dev/null 2>&1) || true; rm -rf "$(dirname "$SRC")"; }
trap cleanup EXIT
bash "$WT/scripts/pebble.sh" start >/dev/null

# 1. A first deploy, seen while the app is still starting, then healthy.
$CK up --no-smoke --timeout 240 > up1.out 2> up1.err &
up_pid=$!
for _ in $(seq 1 1200); do
    app=$(docker ps -q --filter label=com.docker.compose.project=checks-rec --filter label=com.docker.compose.service=app)
    if [[ -n $app && $(docker inspect -f '{{.State.Health.Status}}' "$app" 2>/dev/null) == starting ]]; then
        record starting; break
    fi
    sleep 0.2
done
wait $up_pid || { echo "first up failed"; cat up1.err; exit 1; }
record healthy
app=$(docker ps -q --filter label=com.docker.compose.project=checks-rec --filter label=com.docker.compose.service=app)
script=$("$WT/.venv/bin/python" -c 'from composekit.engine.status import _COUNT_WORKERS; print(_COUNT_WORKERS)')
docker exec "$app" python3 -c "$script" > "$OUT/exec-count-workers.txt"

# 2. A second deploy whose migration fails: the running app must be kept.
cat > failing.yaml <<'YAML'
migrate:
  command: ["python3", "-c", "import sys; print('migration 0002: relation \"items\" already exists'); sys.exit(3)"]
YAML
if $CK -c failing.yaml up --no-smoke --timeout 120 > up2.out 2> up2.err; then echo "second up should have failed"; exit 1; fi
record migrate-failed
tail -5 up2.err

# 3. An app that crashes at start: restart: always makes it loop.
cat > crashing.yaml <<'YAML'
app:
  module: app.missing:app
YAML
if $CK -c crashing.yaml up --no-smoke --timeout 120 > up3.out 2> up3.err; then echo "third up should have failed"; exit 1; fi
record app-crashing
tail -8 up3.err

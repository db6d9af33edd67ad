#!/usr/bin/env bash
# Records what Docker Engine 20.10 answers about a Swarm stack, for tests/unit/test_swarm_recorded.py.
# Makes the main engine a one-node Swarm ONLY while holding /tmp/composekit-integration.lock, and leaves the
# swarm (and removes the stack) on exit, also on failure. Run: tests/data/swarm/record.sh  (root, test env up)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here"
stack=swrec
export RECORD_IMAGE="${COMPOSEKIT_TEST_PYTHON_IMAGE:-composekit-test/python:3.11}"

exec 9>/tmp/composekit-integration.lock
flock -w 1200 9 || { echo "record.sh: the integration lock stayed busy" >&2; exit 1; }

cleanup() {
  docker stack rm "$stack" >/dev/null 2>&1 || true
  for _ in $(seq 1 30); do
    [ -z "$(docker network ls -q --filter "label=com.docker.stack.namespace=$stack")" ] && break
    sleep 1
  done
  docker swarm leave --force >/dev/null 2>&1 || true
}
trap cleanup EXIT

inspect_service() { docker service inspect "${stack}_$1" > "$out/$2"; }
inspect_tasks() {
  local ids
  ids=$(docker service ps -q --no-trunc "${stack}_$1")
  # shellcheck disable=SC2086
  docker inspect --type task $ids > "$out/$2"
}
# wait_for CMD...: until it succeeds, at most 90 s
wait_for() {
  for _ in $(seq 1 180); do "$@" && return 0; sleep 0.5; done
  echo "record.sh: timed out waiting for: $*" >&2; return 1
}
update_state() { docker service inspect -f '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' "${stack}_web"; }
running_healthy() { [ "$(docker service ps -q --filter desired-state=running --filter "name=${stack}_web" "${stack}_web" | wc -l)" = 2 ] \
  && [ "$(docker service ps --format '{{.CurrentState}}' --filter desired-state=running "${stack}_web" | grep -c '^Running')" = 2 ]; }
job_done() { docker service ps --format '{{.CurrentState}}' "${stack}_migrate" | grep -qE '^(Complete|Failed)'; }

docker info --format '{{json .Swarm}}' > "$out/info-swarm-inactive.json"
docker swarm init --advertise-addr 127.0.0.1 >/dev/null
docker info --format '{{json .Swarm}}' > "$out/info-swarm-manager.json"
docker node inspect $(docker node ls -q) > "$out/nodes.json"

# first deploy: the network exists, the job runs, then the web service starts
RECORD_VERSION=1 docker stack deploy -c "$here/stack.yml" "$stack" --resolve-image never >/dev/null
RECORD_MIGRATE_SAYS=migrated docker stack deploy -c "$here/migrate.yml" "$stack" --resolve-image never >/dev/null
inspect_tasks migrate tasks-migrate-running.json || true
wait_for job_done
inspect_service migrate service-migrate-complete.json
inspect_tasks migrate tasks-migrate-complete.json
inspect_tasks web tasks-web-starting.json
wait_for running_healthy
inspect_service web service-web-created.json
inspect_tasks web tasks-web-running.json
docker network inspect $(docker network ls -q --filter "label=com.docker.stack.namespace=$stack") > "$out/networks.json"

# a failing job: removed first (a job service runs once per spec), then deployed again
docker service rm "${stack}_migrate" >/dev/null
wait_for bash -c "! docker service inspect ${stack}_migrate >/dev/null 2>&1"
RECORD_MIGRATE_SAYS="relation users already exists" RECORD_MIGRATE_EXIT=3 \
  docker stack deploy -c "$here/migrate.yml" "$stack" --resolve-image never >/dev/null
wait_for job_done
inspect_service migrate service-migrate-failed.json
inspect_tasks migrate tasks-migrate-failed.json
docker service logs --no-task-ids "${stack}_migrate" > "$out/logs-migrate-failed.txt" 2>&1

# a good update (start-first): updating, then completed
RECORD_VERSION=2 docker stack deploy -c "$here/stack.yml" "$stack" --resolve-image never >/dev/null
wait_for bash -c "[ \"\$(docker service inspect -f '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' ${stack}_web)\" = updating ]"
inspect_service web service-web-updating.json
inspect_tasks web tasks-web-updating.json
wait_for bash -c "[ \"\$(docker service inspect -f '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' ${stack}_web)\" = completed ]"
wait_for running_healthy
inspect_service web service-web-completed.json
inspect_tasks web tasks-web-completed.json

# an unhealthy update: Swarm rolls it back
RECORD_VERSION=3 RECORD_HEALTH_PORT=9 docker stack deploy -c "$here/stack.yml" "$stack" --resolve-image never >/dev/null
wait_for bash -c "docker service inspect -f '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' ${stack}_web | grep -q rollback_started"
inspect_service web service-web-rollback-started.json
wait_for bash -c "[ \"\$(docker service inspect -f '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}' ${stack}_web)\" = rollback_completed ]"
wait_for running_healthy
inspect_service web service-web-rollback-completed.json
inspect_tasks web tasks-web-rollback-completed.json

docker service logs --no-task-ids --tail 5 "${stack}_web" > /dev/null 2>&1 || true
echo "recorded into $out"

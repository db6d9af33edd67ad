#!/usr/bin/env bash
# Records the nodes of the test environment's two-node Swarm (scripts/swarm.sh): `docker node inspect` with both
# nodes Ready, the worker's own `docker info` Swarm part, and the nodes once node2's engine is stopped (Down).
# Holds /tmp/composekit-integration.lock throughout; `scripts/swarm.sh stop` runs on exit, also on failure.
# Run: tests/data/swarm/record-nodes.sh  (root, test environment prepared)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
node2=unix:///run/ck-node2.sock

# Under `flock LOCK this-script`: the flock process, our parent, holds the lock (scripts/swarm.sh checks that).
if [[ -z ${RECORD_NODES_LOCKED:-} ]]; then
  RECORD_NODES_LOCKED=1 exec flock -w 1200 /tmp/composekit-integration.lock "$0" "$@"
fi
trap 'bash "$repo/scripts/swarm.sh" stop >/dev/null' EXIT

bash "$repo/scripts/swarm.sh" start >/dev/null
# shellcheck disable=SC2046
docker node inspect $(docker node ls -q) > "$here/nodes-two.json"
docker -H "$node2" info --format '{{json .Swarm}}' > "$here/info-swarm-worker.json"
bash "$repo/scripts/swarm.sh" stop-node2 >/dev/null
for _ in $(seq 1 120); do
  docker node ls --format '{{.Status}}' | grep -qx Down && break
  sleep 0.5
done
# shellcheck disable=SC2046
docker node inspect $(docker node ls -q) > "$here/nodes-node2-down.json"
echo "recorded into $here"

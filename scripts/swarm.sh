#!/usr/bin/env bash
# A real two-node Docker Swarm on this one machine, for composekit's Swarm integration tests: the main engine
# is the manager; a second engine ("node2") in its own network namespace is a worker.
#
# Usage: scripts/swarm.sh start|stop|status|stop-node2|start-node2
#   start        network namespace ck-node2 joined to the host by a veth pair (host end ck-n2h 10.231.7.1/24,
#                namespace end ck-n2p 10.231.7.2/24); a second dockerd in it (socket unix:///run/ck-node2.sock,
#                hostname ck-node2, images kept in $COMPOSEKIT_TESTENV/node2/data, swarm state fresh at each
#                start); `docker swarm init` on the main engine (advertised on 10.231.7.1) and node2 joined as
#                a worker; waits until `docker node ls` shows two Ready nodes. A no-op when that swarm is up;
#                after a crash it first undoes what the earlier run left.
#   stop         undo exactly what start made (recorded in $COMPOSEKIT_TESTENV/swarm/state): node2, then the
#                main engine leave the swarm; node2's dockerd is stopped by its PID file; leftover mounts under
#                its exec-root, the veth and the namespace go. Services and stacks are the callers' to remove.
#   status       print the state; exit 0 when the two-node swarm is up, 3 otherwise
#   stop-node2   stop node2's dockerd only (the swarm and the namespace stay): a node failure, for tests
#   start-node2  start it again with its swarm state; waits until both nodes are Ready
#
# The main engine must not run with live-restore (Swarm refuses it), and may be in a swarm only while the
# caller holds the integration tests' lock /tmp/composekit-integration.lock: start refuses without it. By hand:
#   flock /tmp/composekit-integration.lock bash    # a shell holding the lock; in it:
#   bash scripts/swarm.sh start; ...; bash scripts/swarm.sh stop; exit
# Needs ip (iproute2), nsenter and unshare (util-linux), and dockerd (docker.io), run as root.
set -euo pipefail

CK_LOG_PREFIX=swarm.sh
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NETNS=ck-node2
NETNS_PATH=/var/run/netns/$NETNS
HOST_IF=ck-n2h
PEER_IF=ck-n2p
SUBNET=10.231.7.0/24
HOST_ADDR=10.231.7.1
PEER_ADDR=10.231.7.2
BIP=10.232.7.1/24
NODE2_HOSTNAME=ck-node2
NODE2_SOCK=/run/ck-node2.sock
NODE2_HOST=unix://$NODE2_SOCK
EXEC_ROOT=/run/ck-node2
NODE2_DIR=$CK_STATE/node2
DATA_ROOT=$NODE2_DIR/data
NODE2_PID=$NODE2_DIR/dockerd.pid
NODE2_LOG=$NODE2_DIR/dockerd.log
NODE2_CONFIG=$NODE2_DIR/daemon.json
STATE_DIR=$CK_STATE/swarm
STATE=$STATE_DIR/state
INTEGRATION_LOCK=/tmp/composekit-integration.lock
START_TIMEOUT=60
STOP_TIMEOUT=30

usage() { sed -n '2,23s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

# --- state file: "key=value" lines, appended as each step is done; the last value of a key wins ---------------
record() { mkdir -p "$STATE_DIR" && echo "$1=$2" >>"$STATE"; }
recorded() {
    [[ -f $STATE ]] || return 0
    awk -F= -v k="$1" '$1 == k { v = substr($0, length(k) + 2) } END { print v }' "$STATE"
}

main_docker() { timeout 60 docker "$@"; }
node2_docker() { timeout 60 docker -H "$NODE2_HOST" "$@"; }

node2_alive() { ck_pid_alive "$NODE2_PID" dockerd; }
node2_answers() { node2_alive && node2_docker info >/dev/null 2>&1; }
main_swarm_state() { main_docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null; }
main_cluster_id() { main_docker info --format '{{if .Swarm.Cluster}}{{.Swarm.Cluster.ID}}{{end}}' 2>/dev/null; }
netns_exists() { [[ -e $NETNS_PATH ]]; }
link_exists() { ip link show "$HOST_IF" >/dev/null 2>&1; }

# True when the main engine manages the swarm that this script made (its cluster ID is the recorded one).
main_in_our_swarm() {
    local id
    id=$(recorded manager_cluster_id)
    [[ -n $id && $(main_cluster_id) == "$id" ]]
}

two_ready_nodes() {
    local all
    all=$(main_docker node ls --format '{{.Status}}' 2>/dev/null) || return 1
    [[ $(grep -cx Ready <<<"$all") == 2 && $(wc -l <<<"$all") == 2 ]]
}

is_up() { netns_exists && node2_answers && main_in_our_swarm && two_ready_nodes; }

# --- checks before start ----------------------------------------------------------------------------------------
ip2int() {
    local a b c d
    IFS=. read -r a b c d <<<"$1"
    echo $(((a << 24) | (b << 16) | (c << 8) | d))
}

# overlaps A/LEN B/LEN: true when the two IPv4 prefixes share an address.
overlaps() {
    local a=${1%/*} alen=${1#*/} b=${2%/*} blen=${2#*/} len mask
    len=$((alen < blen ? alen : blen))
    mask=$(((0xFFFFFFFF << (32 - len)) & 0xFFFFFFFF))
    (((($(ip2int "$a") ^ $(ip2int "$b")) & mask) == 0))
}

# Die when a route of the machine (other than the default route and our own veth's) overlaps SUBNET or the
# bridge of node2: traffic for one of them would go to the wrong place.
check_subnets_free() {
    local line dest want
    while read -r line; do
        [[ -n $line ]] || continue
        [[ $line == *" dev $HOST_IF "* || $line == *" dev $HOST_IF" ]] && continue
        # shellcheck disable=SC2086  # split the route into its words
        set -- $line
        if [[ $1 =~ ^(unicast|local|broadcast|multicast|anycast|throw|unreachable|prohibit|blackhole|nat)$ ]]; then
            shift
        fi
        dest=$1
        [[ $dest == default ]] && continue
        [[ $dest == */* ]] || dest=$dest/32
        [[ $dest =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+/[0-9]+$ ]] || continue
        for want in "$SUBNET" "$BIP"; do
            if overlaps "$dest" "$want"; then
                ck_die "the subnet $want of the test swarm collides with the route '$line' on this machine;" \
                    "free it or change SUBNET/BIP in scripts/swarm.sh"
            fi
        done
    done < <(ip -4 -o route show table all)
}

check_main_engine() {
    main_docker info >/dev/null 2>&1 || ck_die "the main Docker engine does not answer (docker info); start it first"
    if [[ $(main_docker info --format '{{.LiveRestoreEnabled}}') == true ]]; then
        ck_die "the main engine runs with live-restore, which Swarm refuses; restart it without" \
            "(the test engine: bash scripts/dockerd-restart.sh --original; elsewhere: drop \"live-restore\"" \
            "from its daemon.json and restart dockerd)"
    fi
    local st
    st=$(main_swarm_state)
    if [[ $st != inactive ]] && ! main_in_our_swarm; then
        ck_die "the main engine is already in a swarm (state $st, cluster $(main_cluster_id)) that" \
            "scripts/swarm.sh did not make; refusing to touch it (docker swarm leave --force, if it is yours)"
    fi
}

# True when a process among this script's ancestors (the pytest holding the host_ports fixture, the
# `flock LOCK bash` of a developer) holds the flock on INTEGRATION_LOCK. Someone else holding it is not enough.
lock_held_by_caller() {
    local ino dev holder lockdev kind p
    [[ -e $INTEGRATION_LOCK ]] || return 1
    read -r ino dev < <(stat -c '%i %D' "$INTEGRATION_LOCK")
    # /proc/locks: "N: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE START END" (waiters have "->" after N:).
    while read -r _ kind _ _ holder lockdev _; do
        [[ $kind == FLOCK && $lockdev == *:"$ino" ]] || continue
        [[ $(printf '%04x' "0x$dev") == "$(tr -d : <<<"${lockdev%:*}")" ]] || continue
        p=$$
        while [[ $p =~ ^[0-9]+$ ]] && ((p > 1)); do
            [[ $p == "$holder" ]] && return 0
            p=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $2 }')
        done
    done </proc/locks
    return 1
}

check_lock_held() {
    if ! lock_held_by_caller; then
        ck_die "the caller does not hold $INTEGRATION_LOCK: the main engine may be in a swarm only under it" \
            "(tests: the host_ports fixture; by hand: flock $INTEGRATION_LOCK bash, then run this script in that shell)"
    fi
}

# Anything named like ours that no run of this script recorded is someone else's: do not take it over.
check_no_foreign_leftovers() {
    if netns_exists && [[ -z $(recorded netns) ]]; then
        ck_die "network namespace $NETNS exists but scripts/swarm.sh did not make it (no record in $STATE);" \
            "remove it by hand (ip netns del $NETNS) if it is a leftover"
    fi
    if link_exists && [[ -z $(recorded veth) ]]; then
        ck_die "interface $HOST_IF exists but scripts/swarm.sh did not make it;" \
            "remove it by hand (ip link del $HOST_IF) if it is a leftover"
    fi
    if [[ -S $NODE2_SOCK ]] && docker -H "$NODE2_HOST" info >/dev/null 2>&1; then
        ck_die "an engine not started by this script answers on $NODE2_SOCK; stop it first"
    fi
}

# --- node2's dockerd -------------------------------------------------------------------------------------------
# launch_node2 fresh|keep: start dockerd in the namespace (with its own hostname) and wait until it answers.
launch_node2() {
    mkdir -p "$DATA_ROOT" "$EXEC_ROOT"
    # The swarm state of an earlier run would rejoin an old cluster: each start begins without one.
    [[ $1 == fresh ]] && rm -rf "$DATA_ROOT/swarm"
    # Its own (empty) daemon.json, so that a host /etc/docker/daemon.json (live-restore, hosts) does not apply.
    [[ -s $NODE2_CONFIG ]] || echo '{}' >"$NODE2_CONFIG"
    rm -f "$NODE2_PID"
    # nsenter, not `ip netns exec`: the latter remounts /sys and dockerd then fails ("Devices cgroup isn't
    # mounted"). A UTS namespace of its own gives node2 a hostname of its own in `docker node ls`.
    # shellcheck disable=SC2016  # $0 and $@ are expanded by the inner sh
    setsid nsenter --net="$NETNS_PATH" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$NODE2_HOSTNAME" \
        dockerd --config-file "$NODE2_CONFIG" --data-root "$DATA_ROOT" --exec-root "$EXEC_ROOT" \
        -H "$NODE2_HOST" --pidfile "$NODE2_PID" --bip "$BIP" \
        >>"$NODE2_LOG" 2>&1 </dev/null 9>&- &
    local launched=$! deadline=$((SECONDS + START_TIMEOUT))
    until node2_answers; do
        if ! kill -0 "$launched" 2>/dev/null || ((SECONDS >= deadline)); then
            tail -n 20 "$NODE2_LOG" >&2 || true
            ck_die "node2's dockerd did not answer on $NODE2_HOST within $START_TIMEOUT s (log: $NODE2_LOG)"
        fi
        sleep 0.5
    done
    record node2_pid "$(<"$NODE2_PID")"
}

# stop_node2_dockerd: SIGTERM the dockerd of the PID file, bounded wait, then SIGKILL; then the containerd and
# shims it leaves behind (found by node2's own containerd socket, never by name alone).
stop_node2_dockerd() {
    local pid shim_addr=$EXEC_ROOT/containerd/containerd.sock p
    if node2_alive; then
        pid=$(<"$NODE2_PID")
        kill -TERM "$pid" 2>/dev/null || true
        if ! ck_wait_until "$STOP_TIMEOUT" "node2's dockerd (pid $pid) to exit" bash -c "! kill -0 $pid"; then
            ck_log "node2's dockerd (pid $pid) ignored SIGTERM for $STOP_TIMEOUT s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            ck_wait_until 10 "node2's dockerd (pid $pid) to die" bash -c "! kill -0 $pid" || true
        fi
        ck_log "node2: dockerd stopped (pid $pid)"
    fi
    rm -f "$NODE2_PID"
    if ck_pid_alive "$EXEC_ROOT/containerd/containerd.pid" containerd; then
        pid=$(<"$EXEC_ROOT/containerd/containerd.pid")
        ck_log "node2: stopping the containerd its dockerd left (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        if ! ck_wait_until 10 "containerd (pid $pid) to exit" bash -c "! kill -0 $pid"; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    for p in /proc/[0-9]*; do
        # A process may exit between the glob and the read: no message for that.
        # The whole command line read first (not `| grep -q`: under pipefail an early exit can fail the pipeline).
        local cmdline
        cmdline=$({ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null) || continue
        if [[ $cmdline == *"-address $shim_addr "* ]]; then
            ck_log "node2: killing leftover shim ${p#/proc/}"
            kill -KILL "${p#/proc/}" 2>/dev/null || true
        fi
    done
}

# Mounts dockerd leaves under its exec-root and data-root when it dies hard (netns files, overlay merges).
unmount_leftovers() {
    local m
    findmnt -rn -o TARGET | grep -E "^($EXEC_ROOT|$DATA_ROOT)(/|$)" | sort -r | while read -r m; do
        ck_log "node2: unmounting leftover $m"
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || ck_log "could not unmount $m"
    done
    if [[ -d $EXEC_ROOT ]] && ! findmnt -rn -o TARGET | grep -E "^$EXEC_ROOT(/|$)" >/dev/null; then
        rm -rf "$EXEC_ROOT"
    fi
}

remove_stale_task_containers() {
    local ids
    ids=$(node2_docker ps -aq --filter label=com.docker.swarm.task.id) || return 0
    if [[ -n $ids ]]; then
        # shellcheck disable=SC2086  # one ID per word
        node2_docker rm -f $ids >/dev/null || true
        ck_log "node2: removed $(wc -w <<<"$ids") task container(s) of an earlier swarm"
    fi
}

# --- the commands ----------------------------------------------------------------------------------------------
# do_stop: undo what the state file records, each step tolerant of a partial start. Returns 1 when the main
# engine could not be made to leave our swarm (the state file is then kept, for another stop).
do_stop() {
    local rc=0
    if node2_alive; then
        if node2_docker swarm leave --force >/dev/null 2>&1; then ck_log "node2: left the swarm"; fi
    fi
    if [[ -n $(recorded manager_init) ]]; then
        local id
        id=$(recorded manager_cluster_id)
        if ! main_docker info >/dev/null 2>&1; then
            ck_log "error: the main engine does not answer: it may still be in the test swarm;" \
                "run scripts/swarm.sh stop again"
            rc=1
        elif [[ $(main_swarm_state) == inactive ]]; then
            :
        elif [[ -z $id || $(main_cluster_id) == "$id" ]]; then
            # No ID recorded: init ran (under the lock, on an engine seen inactive just before) but died before
            # the ID was read; the swarm the engine is in now is that one.
            if main_docker swarm leave --force >/dev/null; then
                ck_log "main engine: left the swarm"
            else
                ck_log "error: docker swarm leave --force failed on the main engine"
                rc=1
            fi
        else
            ck_log "main engine: in another swarm ($(main_cluster_id)) than the one this script made ($id): left alone"
        fi
        if ((rc == 0)) && [[ $(recorded gwbridge_before) == absent ]] &&
            main_docker network inspect docker_gwbridge >/dev/null 2>&1; then
            # Made by the swarm this script made; removed only when nothing uses it any more.
            if main_docker network rm docker_gwbridge >/dev/null 2>&1; then
                ck_log "main engine: removed docker_gwbridge"
            else
                ck_log "main engine: docker_gwbridge still in use: left alone"
            fi
        fi
    fi
    if [[ -n $(recorded node2_pid) || -n $(recorded netns) ]]; then
        stop_node2_dockerd
        unmount_leftovers
    fi
    if [[ -n $(recorded veth) ]] && link_exists; then
        ip link del "$HOST_IF" && ck_log "removed veth $HOST_IF"
    fi
    if [[ -n $(recorded netns) ]] && netns_exists; then
        ip netns del "$NETNS" && ck_log "removed network namespace $NETNS"
    fi
    if ((rc == 0)); then
        rm -f "$STATE"
    fi
    return "$rc"
}

start_failed() {
    local rc=$?
    trap - EXIT
    if ((rc != 0)); then
        ck_log "start failed: undoing what it made"
        do_stop || true
    fi
    exit "$rc"
}

cmd_start() {
    check_main_engine
    if is_up; then
        ck_log "already up"
        cmd_status
        return 0
    fi
    check_lock_held
    if [[ -f $STATE ]]; then
        ck_log "cleaning up what an earlier run left (state $STATE)"
        do_stop || ck_die "could not clean up the earlier run"
    fi
    check_no_foreign_leftovers
    check_subnets_free
    trap start_failed EXIT

    record netns "$NETNS"
    ip netns add "$NETNS"
    record veth "$HOST_IF"
    ip link add "$HOST_IF" type veth peer name "$PEER_IF"
    ip link set "$PEER_IF" netns "$NETNS"
    ip addr add "$HOST_ADDR/24" dev "$HOST_IF"
    ip link set "$HOST_IF" up
    ip -n "$NETNS" addr add "$PEER_ADDR/24" dev "$PEER_IF"
    ip -n "$NETNS" link set "$PEER_IF" up
    ip -n "$NETNS" link set lo up
    ck_log "network namespace $NETNS: $HOST_IF $HOST_ADDR <-> $PEER_IF $PEER_ADDR"

    launch_node2 fresh
    remove_stale_task_containers
    ck_log "node2: dockerd $(<"$NODE2_PID") answers on $NODE2_HOST"

    if main_docker network inspect docker_gwbridge >/dev/null 2>&1; then
        record gwbridge_before present
    else
        record gwbridge_before absent
    fi
    record manager_init pending
    main_docker swarm init --advertise-addr "$HOST_ADDR" --listen-addr "$HOST_ADDR:2377" >/dev/null
    record manager_cluster_id "$(main_cluster_id)"
    [[ -n $(recorded manager_cluster_id) ]] || ck_die "swarm init succeeded but the main engine shows no cluster ID"

    local token
    token=$(main_docker swarm join-token -q worker)
    node2_docker swarm join --token "$token" --advertise-addr "$PEER_ADDR" --listen-addr "$PEER_ADDR:2377" \
        "$HOST_ADDR:2377" >/dev/null
    if ! ck_wait_until "$START_TIMEOUT" "two Ready nodes in docker node ls" two_ready_nodes; then
        main_docker node ls >&2 || true
        ck_die "the swarm did not show two Ready nodes within $START_TIMEOUT s"
    fi
    trap - EXIT
    ck_log "up: main engine manager, node2 worker"
    cmd_status
}

cmd_stop() {
    if [[ ! -f $STATE ]]; then
        ck_log "nothing recorded in $STATE: nothing to stop"
        return 0
    fi
    do_stop || ck_die "stop incomplete (state kept in $STATE)"
    ck_log "stopped"
}

cmd_status() {
    local rc=0 line
    if netns_exists; then echo "netns $NETNS: present"; else echo "netns $NETNS: absent"; rc=3; fi
    if node2_answers; then
        echo "node2: dockerd $(<"$NODE2_PID") answers on $NODE2_HOST"
    elif node2_alive; then
        echo "node2: dockerd $(<"$NODE2_PID") runs but does not answer"
        rc=3
    else
        echo "node2: stopped"
        rc=3
    fi
    if main_in_our_swarm; then
        echo "main engine: manager of the test swarm $(recorded manager_cluster_id)"
        while read -r line; do
            echo "  $line"
        done < <(main_docker node ls --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}}')
        two_ready_nodes || rc=3
    else
        echo "main engine: not in the test swarm (swarm state $(main_swarm_state || echo unknown))"
        rc=3
    fi
    return "$rc"
}

cmd_stop_node2() {
    [[ -n $(recorded netns) ]] || ck_die "no test swarm recorded in $STATE: scripts/swarm.sh start first"
    stop_node2_dockerd
}

cmd_start_node2() {
    if [[ -z $(recorded netns) ]] || ! netns_exists; then
        ck_die "no test swarm recorded in $STATE: scripts/swarm.sh start first"
    fi
    if ! node2_answers; then
        launch_node2 keep
        ck_log "node2: dockerd $(<"$NODE2_PID") answers on $NODE2_HOST"
    fi
    if ! ck_wait_until "$START_TIMEOUT" "two Ready nodes in docker node ls" two_ready_nodes; then
        main_docker node ls >&2 || true
        ck_die "node2 did not come back Ready within $START_TIMEOUT s"
    fi
    ck_log "node2: Ready again"
}

case ${1:-} in
start | stop | status | stop-node2 | start-node2)
    [[ $(id -u) == 0 ]] || ck_die "run as root (ip netns, dockerd)"
    [[ $1 == status ]] || ck_lock swarm
    case $1 in
        start) cmd_start ;;
        stop) cmd_stop ;;
        status) cmd_status ;;
        stop-node2) cmd_stop_node2 ;;
        start-node2) cmd_start_node2 ;;
    esac
    ;;
-h | --help) usage ;;
*)
    usage >&2
    exit 2
    ;;
esac

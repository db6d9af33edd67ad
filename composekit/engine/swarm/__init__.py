"""Swarm mode on the engine: what `up`, `down`, `status` and `doctor` do with a Swarm manager.

Everything here reads the raw JSON the Docker module returns (`docker service inspect`, `docker inspect --type
task`, `docker node inspect`, `docker info`'s Swarm part) and decides from it; tests/unit/test_swarm_recorded.py
drives it with JSON recorded from a real Swarm. Swarm itself runs the stack: composekit ships the image, runs the
migration job before the app is updated, and waits for Swarm to report the update converged (or rolled back).

parse.py     the raw JSON -> SwarmState, NodeInfo, ServiceInfo (+ UpdateState), TaskInfo
image.py     the release image built on the manager and shipped to each node that lacks it
job.py       the migration job (a replicated-job), run to completion before the app changes
converge.py  the wait until a service's rolling update completed and every desired task runs
status.py    the engine is a manager; `composekit status` rows; the stack's Traefik task on this node
remove.py    `composekit down`: the stack removed, its networks waited for
failures.py  what a failed job or rollout says: failed tasks, their logs, the fix when a node lacks the image
"""

from __future__ import annotations

from .converge import wait_converged
from .image import Shipment, build_image, node_engines, ship_image
from .job import run_job
from .parse import (
    NodeInfo,
    ServiceInfo,
    SwarmState,
    TaskInfo,
    UpdateState,
    parse_node,
    parse_service,
    parse_task,
    swarm_state,
)
from .remove import down, remove_stack
from .status import SwarmServiceRow, SwarmStatus, SwarmTaskRow, require_manager, swarm_status, traefik_here

__all__ = [
    "NodeInfo",
    "ServiceInfo",
    "Shipment",
    "SwarmServiceRow",
    "SwarmState",
    "SwarmStatus",
    "SwarmTaskRow",
    "TaskInfo",
    "UpdateState",
    "build_image",
    "down",
    "node_engines",
    "parse_node",
    "parse_service",
    "parse_task",
    "remove_stack",
    "require_manager",
    "run_job",
    "ship_image",
    "swarm_state",
    "swarm_status",
    "traefik_here",
    "wait_converged",
]

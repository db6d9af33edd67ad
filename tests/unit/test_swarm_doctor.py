"""doctor in mode: swarm (composekit/verify/swarm_doctor.py) on recorded Swarm JSON (tests/data/swarm)."""

from __future__ import annotations

from typing import Any

from composekit.engine.docker import Docker
from composekit.engine.swarm import parse_node, swarm_state
from composekit.engine.target import Engine
from composekit.errors import DockerError
from composekit.verify.checks import CheckResult, Status
from composekit.verify.swarm_doctor import SwarmFacts, gather_swarm, swarm_checks

from .test_swarm_recorded import STACK, NodeDocker, RecordedSwarm, fake_connect, load, two_node_info, two_nodes

IMAGE = "swrec-app:abc123"


def manager() -> Any:
    return swarm_state({"Swarm": load("info-swarm-manager.json")})


def test_an_engine_outside_a_swarm_fails_and_stops_there() -> None:
    facts = SwarmFacts(swarm_state({"Swarm": load("info-swarm-inactive.json")}))
    assert swarm_checks(facts, STACK) == [
        CheckResult.fail(
            "swarm",
            "not active on this engine (Swarm: inactive)",
            "`docker swarm init` on the manager, `docker swarm join` on the other nodes; or set mode: compose",
        )
    ]


def test_a_worker_fails_the_manager_check() -> None:
    checks = swarm_checks(SwarmFacts(swarm_state({"Swarm": load("info-swarm-worker.json")})), STACK)
    assert (checks[0].name, checks[0].status, checks[0].detail) == (
        "swarm",
        Status.OK,
        "active (node counts: ask a manager)",
    )
    assert [(c.name, c.status) for c in checks] == [("swarm", Status.OK), ("swarm manager", Status.FAIL)]
    assert checks[1].detail == "this engine is a worker: stacks are deployed, and services inspected, on a manager only"


def test_a_healthy_two_node_swarm_with_the_image_everywhere() -> None:
    nodes = [parse_node(n) for n in two_nodes()]
    facts = SwarmFacts(
        swarm_state(two_node_info()), nodes, load("networks.json"), {"vm": True, "ck-node2": True}, IMAGE
    )
    assert [(c.name, c.status, c.detail) for c in swarm_checks(facts, STACK)] == [
        ("swarm", Status.OK, "active: 2 node(s), 1 manager(s)"),
        ("swarm manager", Status.OK, "this engine is a manager"),
        ("swarm node vm", Status.OK, "manager (leader), ready, availability active"),
        ("swarm node ck-node2", Status.OK, "worker, ready, availability active"),
        ("overlay networks", Status.OK, "swrec_web"),
        ("image on ck-node2", Status.OK, "swrec-app:abc123 is there"),
        ("image on vm", Status.OK, "swrec-app:abc123 is there"),
    ]


def test_a_down_node_and_a_missing_image_warn_with_their_fix() -> None:
    nodes = [parse_node(n) for n in two_nodes("down")]
    facts = SwarmFacts(swarm_state(two_node_info()), nodes, [], {"vm": True, "ck-node2": False}, IMAGE)
    checks = {c.name: c for c in swarm_checks(facts, STACK)}
    assert checks["swarm node ck-node2"] == CheckResult.warn(
        "swarm node ck-node2",
        "worker, down, availability active: Swarm runs nothing there and moves its tasks to the other nodes",
        "start the Docker engine on ck-node2 (it rejoins by itself), or `docker node rm ck-node2` if it is gone for "
        "good",
    )
    assert checks["image on ck-node2"] == CheckResult.warn(
        "image on ck-node2",
        "swrec-app:abc123 (the current release) is not there: Swarm cannot start the app on ck-node2 until it is",
        "`composekit up` ships it (docker save | docker load through the node's engine in swarm/nodes)",
    )
    assert checks["overlay networks"].detail == "stack swrec has none yet: the first `composekit up` creates them"


def test_a_network_that_is_not_an_overlay_fails() -> None:
    networks = load("networks.json")
    networks[0]["Driver"] = "bridge"
    facts = SwarmFacts(manager(), [], networks, {}, IMAGE)
    (check,) = [c for c in swarm_checks(facts, STACK) if c.name == "overlay networks"]
    assert check == CheckResult.fail(
        "overlay networks",
        "not Swarm overlay networks: swrec_web",
        "`composekit down` then `composekit up` recreates the stack's networks (`docker stack rm swrec`)",
    )


def test_gather_asks_each_nodes_engine_for_the_image() -> None:
    docker = RecordedSwarm(nodes=two_nodes(), info=two_node_info())
    docker.image_exists = lambda image: image == IMAGE  # type: ignore[method-assign]
    docker.stack_networks = lambda stack: load("networks.json")  # type: ignore[method-assign]
    asked: list[str] = []

    def node_docker(engine: Engine) -> Docker:
        asked.append(engine.target.url)
        return NodeDocker(False, engine)

    facts = gather_swarm(
        docker, STACK, IMAGE, {"ck-node2": "unix:///run/ck-node2.sock"}, None, fake_connect, node_docker
    )
    assert facts.images == {"vm": True, "ck-node2": False}
    assert asked == ["unix:///run/ck-node2.sock"]
    assert sorted(n.hostname for n in facts.nodes) == ["ck-node2", "vm"]


def test_gather_says_why_a_node_cannot_be_asked() -> None:
    docker = RecordedSwarm(nodes=two_nodes(), info=two_node_info())
    docker.image_exists = lambda image: True  # type: ignore[method-assign]

    def unreachable(engine: Engine) -> Docker:
        d = NodeDocker(False, engine)

        def fails(image: str) -> bool:
            raise DockerError("cannot inspect image x", ["docker", "image", "inspect"], "connection refused")

        d.image_exists = fails  # type: ignore[method-assign]
        return d

    facts = gather_swarm(docker, STACK, IMAGE, {"ck-node2": "unix:///gone.sock"}, None, fake_connect, unreachable)
    assert facts.images["ck-node2"] == "its engine (unix:///gone.sock) did not answer: cannot inspect image x"
    assert gather_swarm(docker, STACK, IMAGE, {}, None, fake_connect).images["ck-node2"] == (
        "no engine address for it under swarm/nodes and no registry set"
    )
    assert "ck-node2" not in gather_swarm(docker, STACK, IMAGE, {}, "registry.example.com/team", fake_connect).images


def test_the_stacks_traefik_running_here_is_found_for_the_ports_check() -> None:
    traefik = load("service-web-completed.json")[0]  # a recorded service standing in for swrec_traefik
    docker = RecordedSwarm(
        services={f"{STACK}_traefik": [traefik]}, task_lists={f"{STACK}_traefik": [load("tasks-web-completed.json")]}
    )
    docker.image_exists = lambda image: True  # type: ignore[method-assign]
    assert gather_swarm(docker, STACK, IMAGE, {}, None, fake_connect).traefik == "swrec_traefik.1"
    assert gather_swarm(RecordedSwarm(), STACK, IMAGE, {}, None, fake_connect).traefik is None


def test_the_image_checked_is_the_one_the_deployed_app_service_runs() -> None:
    app = load("service-web-completed.json")[0]  # a recorded service standing in for swrec_app
    docker = RecordedSwarm(services={f"{STACK}_app": [app]})
    asked: list[str] = []

    def image_exists(image: str) -> bool:
        asked.append(image)
        return True

    docker.image_exists = image_exists  # type: ignore[method-assign]
    facts = gather_swarm(docker, STACK, IMAGE, {}, None, fake_connect)
    assert (facts.image, asked) == ("composekit-test/python:3.11", ["composekit-test/python:3.11"])

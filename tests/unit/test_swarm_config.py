"""mode: swarm's config keys: defaults, constraints and the keys that apply to swarm mode only, word for word."""

from __future__ import annotations

import pytest

from composekit.config import parse_config
from composekit.config.schema import config_schema
from composekit.errors import ConfigError

MINIMAL = {"name": "shop", "domain": "shop.example.com", "app": {"module": "app.main:app"}}
SWARM = {**MINIMAL, "mode": "swarm"}


def problems(data: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return info.value.problems


def test_defaults() -> None:
    config = parse_config(MINIMAL)
    assert (config.mode, config.app.replicas, config.app.placement) == ("compose", 2, ())
    assert (config.swarm.nodes, config.registry) == ({}, None)


def test_every_swarm_key() -> None:
    config = parse_config(
        {
            **SWARM,
            "app": {
                "module": "app.main:app",
                "replicas": 3,
                "placement": ["node.labels.zone == a", "node.role!=manager"],
            },
            "swarm": {"nodes": {"manager-1": "unix:///var/run/docker.sock", "worker-1": "ssh://root@10.0.0.2:2222"}},
            "registry": "registry.example.com:5000/team",
        }
    )
    assert (config.app.replicas, config.app.placement) == (3, ("node.labels.zone == a", "node.role!=manager"))
    assert config.swarm.nodes == {"manager-1": "unix:///var/run/docker.sock", "worker-1": "ssh://root@10.0.0.2:2222"}
    assert config.registry == "registry.example.com:5000/team"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"app": {"module": "app.main:app", "replicas": 3}},
            "composekit.yaml: app/replicas: applies to mode: swarm only; set `mode: swarm` or remove the key",
        ),
        (
            {"app": {"module": "app.main:app", "placement": ["node.role == manager"]}},
            "composekit.yaml: app/placement: applies to mode: swarm only; set `mode: swarm` or remove the key",
        ),
        (
            {"swarm": {"nodes": {}}},
            "composekit.yaml: swarm: applies to mode: swarm only; set `mode: swarm` or remove the key",
        ),
        (
            {"registry": "registry.example.com/team"},
            "composekit.yaml: registry: applies to mode: swarm only; set `mode: swarm` or remove the key",
        ),
        (
            {"mode": "compose", "app": {"module": "app.main:app", "replicas": 2}},
            "composekit.yaml: app/replicas: applies to mode: swarm only; set `mode: swarm` or remove the key",
        ),
    ],
)
def test_swarm_keys_are_refused_in_compose_mode(extra: dict[str, object], message: str) -> None:
    assert problems({**MINIMAL, **extra}) == [message]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"mode": "k8s"}, 'composekit.yaml: mode: expected "compose" or "swarm", got "k8s"'),
        (
            {"app": {"module": "app.main:app", "replicas": 0}},
            "composekit.yaml: app/replicas: expected a positive integer, got 0",
        ),
        (
            {"app": {"module": "app.main:app", "replicas": "2"}},
            'composekit.yaml: app/replicas: expected a positive integer, got "2"',
        ),
        (
            {"app": {"module": "app.main:app", "placement": ["node.labels.zone == a", "node.zone = a"]}},
            'composekit.yaml: app/placement/1: expected a Swarm placement constraint such as "node.labels.zone == a" '
            'or "node.role != manager", got "node.zone = a"',
        ),
        (
            {"registry": "Registry.example.com/team:1"},
            'composekit.yaml: registry: expected an image repository prefix such as "registry.example.com/team" '
            '(lowercase, no tag), got "Registry.example.com/team:1"',
        ),
        (
            {"swarm": {"nodes": {"worker 1": "ssh://w1"}}},
            'composekit.yaml: swarm/nodes: expected node hostnames such as worker-1, got "worker 1"',
        ),
        (
            {"swarm": {"nodes": {"worker-1": "ftp://w1"}}},
            "composekit.yaml: swarm/nodes: worker-1: expected ssh://[user@]host[:port][/path/to/docker.sock], "
            'unix:///path/to/docker.sock, tcp://host:port or a Docker context name, got "ftp://w1"',
        ),
        (
            {"swarm": {"nodes": ["worker-1"]}},
            "composekit.yaml: swarm/nodes: expected a mapping of node hostname: Docker engine address, "
            "got ['worker-1']",
        ),
        ({"swarm": {"node": {}}}, "composekit.yaml: swarm/node: unknown key (expected one of: nodes)"),
    ],
)
def test_swarm_key_errors(extra: dict[str, object], message: str) -> None:
    assert problems({**SWARM, **extra}) == [message]


def test_schema_knows_the_swarm_keys() -> None:
    schema = config_schema()
    assert schema["properties"]["mode"]["enum"] == ["compose", "swarm"]
    assert schema["properties"]["mode"]["default"] == "compose"
    app = schema["$defs"]["App"]["properties"]
    assert app["replicas"]["minimum"] == 1 and app["replicas"]["default"] == 2
    assert app["placement"]["items"]["pattern"].startswith("^(node")
    nodes = schema["$defs"]["Swarm"]["properties"]["nodes"]
    assert nodes["type"] == "object" and "description" in nodes
    registry = schema["properties"]["registry"]
    assert any(option.get("pattern") for option in registry["anyOf"])

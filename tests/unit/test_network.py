"""The front network and the socket proxy in the render: the subnet (derived or configured, validated),
Traefik's fixed address that the app alone trusts, and who holds the Docker socket."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
import yaml

from composekit.config import parse_config
from composekit.config.project import load_project
from composekit.errors import ConfigError, DockerError
from composekit.render.compose import DEFAULT_SUBNET_POOL, traefik_address, web_subnet
from composekit.render.stack import render_stack

BASE = {"name": "shop", "domain": "shop.example.com", "app": {"module": "app.main:app"}}


def config(**extra: Any) -> Any:
    return parse_config({**BASE, **extra})


def render(tmp_path: Path, extra: str = "") -> dict[str, str]:
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "composekit.yaml").write_text(
        "name: shop\ndomain: shop.example.com\napp: {module: app.main:app}\n" + extra
    )
    return render_stack(load_project((tmp_path / "composekit.yaml",))).files


def test_default_subnet_is_a_deterministic_slash_24_per_project_name() -> None:
    subnets = {name: web_subnet(config(name=name)) for name in ("shop", "blog", "api", "shop-staging")}
    assert str(subnets["shop"]) == "10.129.211.0/24"
    assert web_subnet(config(name="shop")) == subnets["shop"]
    assert len(set(subnets.values())) == len(subnets)
    for subnet in subnets.values():
        assert subnet.prefixlen == 24 and subnet.subnet_of(DEFAULT_SUBNET_POOL)


def test_default_subnets_spread_over_the_pool() -> None:
    subnets = {web_subnet(config(name=f"project-{i}")) for i in range(300)}
    assert len(subnets) >= 298  # 32768 slots: collisions between a host's stacks are rare
    assert not any(s.subnet_of(ipaddress.IPv4Network("172.16.0.0/12")) for s in subnets)  # Docker's default pools
    assert not any(s.subnet_of(ipaddress.IPv4Network("192.168.0.0/16")) for s in subnets)


def test_configured_subnet_wins() -> None:
    conf = config(network={"subnet": "192.168.77.0/26"})
    assert str(web_subnet(conf)) == "192.168.77.0/26"
    assert traefik_address(conf) == "192.168.77.2"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10.1.2.3/24", 'expected the network address of the subnet ("10.1.2.0/24"), got "10.1.2.3/24"'),
        ("10.1.2.0", 'expected an IPv4 subnet in CIDR form such as "10.213.7.0/24", got "10.1.2.0"'),
        ("fd00::/64", 'expected an IPv4 subnet in CIDR form such as "10.213.7.0/24", got "fd00::/64"'),
        ("web", 'expected an IPv4 subnet in CIDR form such as "10.213.7.0/24", got "web"'),
        (24, 'expected an IPv4 subnet in CIDR form such as "10.213.7.0/24", got 24'),
        ("10.0.0.0/8", 'expected a prefix length from /16 to /28, got "10.0.0.0/8"'),
        ("10.0.0.0/29", 'expected a prefix length from /16 to /28, got "10.0.0.0/29"'),
        ("8.8.8.0/24", 'expected a private range (in 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16), got "8.8.8.0/24"'),
        (
            "100.64.0.0/24",
            'expected a private range (in 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16), got "100.64.0.0/24"',
        ),
    ],
)
def test_subnet_validation(value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config(network={"subnet": value})
    assert info.value.problems == [f"composekit.yaml: network/subnet: {message}"]


def test_unknown_network_key() -> None:
    with pytest.raises(ConfigError) as info:
        config(network={"name": "front"})
    assert info.value.problems == ["composekit.yaml: network/name: unknown key (expected one of: subnet)"]


def test_web_network_pins_traefik_and_keeps_dynamic_addresses_away_from_it(tmp_path: Path) -> None:
    doc = yaml.safe_load(render(tmp_path, "network: {subnet: 10.20.30.0/24}\n")["compose.yaml"])
    assert doc["networks"]["web"] == {
        "ipam": {"config": [{"subnet": "10.20.30.0/24", "ip_range": "10.20.30.128/25", "gateway": "10.20.30.1"}]}
    }
    assert doc["services"]["traefik"]["networks"]["web"] == {"ipv4_address": "10.20.30.2"}
    assert ipaddress.IPv4Address("10.20.30.2") not in ipaddress.IPv4Network("10.20.30.128/25")
    # The app trusts X-Forwarded-* from Traefik's address only, not from its networks.
    assert doc["services"]["app"]["environment"]["FORWARDED_ALLOW_IPS"] == "10.20.30.2"


def test_nothing_mounts_the_docker_socket_and_traefik_reads_its_routes_from_the_routes_volume(tmp_path: Path) -> None:
    files = render(tmp_path)
    doc = yaml.safe_load(files["compose.yaml"])
    services = doc["services"]
    holders = [name for name, s in services.items() if any("docker.sock" in v for v in s.get("volumes", []))]
    assert holders == []
    assert "socket-proxy" not in services and "socket-proxy" not in doc["networks"]
    # Traefik mounts the routes volume read-only; only the routes container, with no network, may write it.
    assert "routes:/etc/traefik/dynamic:ro" in services["traefik"]["volumes"]
    routes = services["routes"]
    assert routes["volumes"] == ["routes:/routes"]
    assert routes["image"] == "python:3.13-slim"  # images/python: no extra image to pull
    assert routes["network_mode"] == "none" and "networks" not in routes
    assert (routes["read_only"], routes["cap_drop"], routes["security_opt"]) == (
        True,
        ["ALL"],
        ["no-new-privileges:true"],
    )
    assert routes["restart"] == "always" and routes["pids_limit"] <= 32
    assert "ports" not in routes and "expose" not in routes
    assert [m for m in services["app"].get("labels", {}) if m.startswith("traefik.")] == []
    static = yaml.safe_load(doc["configs"]["traefik.yml"]["content"])
    assert static["providers"] == {
        "providersThrottleDuration": "0s",
        "file": {"directory": "/etc/traefik/dynamic", "watch": True},
    }
    assert "traefik-dynamic.yml" not in doc["configs"] and "socket-proxy.py" not in doc["configs"]
    assert "traefik.yml" not in files  # delivered inside compose.yaml, not bind-mounted


def test_a_subnet_collision_names_the_key_that_fixes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from python_on_whales.exceptions import DockerException

    from composekit.engine.docker import Docker

    docker = Docker("shop", [Path("/nowhere/compose.yaml")])
    answer = (
        "failed to create network shop_web: Error response from daemon: "
        "Pool overlaps with other one on this address space"
    )

    def up(*args: Any, **kwargs: Any) -> Any:
        yield "stderr", answer.encode()
        raise DockerException(["docker", "compose", "up"], 1, stderr=b"")

    monkeypatch.setattr(docker.client.compose, "up", up)
    with pytest.raises(DockerError) as info:
        docker.up()
    assert str(info.value) == (
        "`docker compose up` could not create the stack's network\n"
        "  command: docker compose up\n"
        "  docker said:\n"
        f"    {answer}\n"
        "  fix: the subnet of the stack's `web` network overlaps a network that already exists on this machine "
        "(another stack, Docker's own bridge, a VPN); set network/subnet in composekit.yaml to a free private "
        "range, such as another /24 (`docker network inspect $(docker network ls -q) --format '{{.Name}} "
        "{{range .IPAM.Config}}{{.Subnet}}{{end}}'` lists the subnets in use)"
    )

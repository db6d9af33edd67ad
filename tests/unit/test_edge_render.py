"""The shared edge's pure parts (render/edge.py), the domain list and www redirect (config, render/traefik.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from composekit.config import parse_config
from composekit.config.project import Project, load_project
from composekit.errors import ConfigError
from composekit.render.compose import render_compose
from composekit.render.edge import (
    EDGE_FILE,
    EDGE_PROJECT,
    REVISION_LABEL,
    SETTINGS_LABEL,
    SLOT_LABEL,
    STEER,
    claimed_names,
    domain_conflict,
    edge_dynamic,
    edge_revision,
    edge_settings,
    render_edge,
    settings_mismatch,
)
from composekit.render.stack import stack_configs
from composekit.render.traefik import routes_file

BASE: dict[str, Any] = {"name": "notes", "domain": "notes.example.test", "app": {"module": "app.main:app"}}


def config(**top: Any) -> Any:
    return parse_config({**BASE, **top})


def problems(**top: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config({**BASE, **top})
    return caught.value.problems


def project(tmp_path: Path, **top: Any) -> Project:
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    (app / "main.py").write_text("app = None\n")
    (tmp_path / "requirements.txt").write_text("fastapi\n")
    (tmp_path / "composekit.yaml").write_text(yaml.safe_dump({**BASE, **top}))
    return load_project((tmp_path / "composekit.yaml",), tmp_path / "out")


def routes(cfg: Any) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(routes_file(cfg, "g1", ["notes-app-1"], ["notes-app-2"]))
    return loaded


def test_domain_list_keeps_the_first_as_domain() -> None:
    cfg = config(domain=["notes.example.test", "notes.example.org"])
    assert cfg.domain == "notes.example.test"
    assert cfg.domains == ("notes.example.test", "notes.example.org")
    assert cfg.redacted()["domain"] == ["notes.example.test", "notes.example.org"]
    assert "extra_domains" not in cfg.redacted()


@pytest.mark.parametrize(
    ("top", "message"),
    [
        (
            {"domain": ["notes.example.test", "Bad"]},
            'composekit.yaml: domain/1: expected a fully qualified lowercase domain name such as "shop.example.com", '
            'got "Bad"',
        ),
        (
            {"domain": []},
            "composekit.yaml: domain: expected a fully qualified lowercase domain name such as "
            '"shop.example.com", or a non-empty list of them, got []',
        ),
        (
            {"domain": ["a.example.test", "a.example.test"]},
            "composekit.yaml: domain/1: a.example.test is listed twice; list each domain once",
        ),
        (
            {"extra_domains": ["a.example.test"]},
            "composekit.yaml: extra_domains: unknown key (list the domains under `domain`: domain: "
            '["a.example.test", "b.example.com"])'.replace("a.example.test", "a.example.com"),
        ),
        (
            {"domain": "www.notes.example.test", "www": "redirect_to_apex"},
            "composekit.yaml: domain: www: redirect_to_apex redirects www.<domain> to the domain listed, so list the "
            "apex notes.example.test instead of www.notes.example.test",
        ),
        (
            {"www": "redirect_to_www"},
            "composekit.yaml: domain: www: redirect_to_www redirects the apex to the www. name listed, so list "
            "www.notes.example.test instead of notes.example.test",
        ),
        (
            {"edge": "shared", "mode": "swarm"},
            "composekit.yaml: edge: shared applies to mode: compose only: in mode: swarm each stack runs its own "
            "Traefik service (see docs/swarm.md); remove `edge: shared` or set `mode: compose`. Nothing was changed.",
        ),
    ],
)
def test_domain_www_and_edge_errors(top: dict[str, Any], message: str) -> None:
    assert problems(**top) == [message]


def test_routes_file_routes_every_domain_each_with_its_certificate() -> None:
    doc = routes(config(domain=["notes.example.test", "notes.example.org"]))
    router = doc["http"]["routers"]["notes"]
    assert router["rule"] == "Host(`notes.example.test`) || Host(`notes.example.org`)"
    assert router["tls"]["domains"] == [{"main": "notes.example.test"}, {"main": "notes.example.org"}]
    # the probe router stays on the first domain, with the same certificates (else Traefik orders one for it alone)
    assert doc["http"]["routers"]["notes-probe"]["rule"].startswith("Host(`notes.example.test`) && Header(")
    assert doc["http"]["routers"]["notes-probe"]["tls"] == router["tls"]


def test_the_probe_router_outranks_an_app_router_with_many_domains() -> None:
    """Traefik ranks routers by rule length unless given a priority: with three domains the app's rule was longer
    than the probe's, which then never answered (seen on the real edge)."""
    many = [f"d{i}.notes.example.test" for i in range(5)]
    routers = routes(config(domain=many))["http"]["routers"]
    probe, app = routers["notes-probe"], routers["notes"]
    assert len(app["rule"]) > len(probe["rule"])
    assert probe.get("priority", len(probe["rule"])) > app.get("priority", len(app["rule"]))


@pytest.mark.parametrize(
    ("www", "domain", "source", "target"),
    [
        ("redirect_to_apex", "notes.example.test", "www.notes.example.test", "notes.example.test"),
        ("redirect_to_www", "www.notes.example.test", "notes.example.test", "www.notes.example.test"),
    ],
)
def test_www_redirect_is_permanent_and_on_the_domain_certificate(
    www: str, domain: str, source: str, target: str
) -> None:
    doc = routes(config(domain=domain, www=www))
    http = doc["http"]
    assert http["routers"]["notes-www-0"]["rule"] == f"Host(`{source}`)"
    assert http["routers"]["notes-www-0"]["middlewares"] == ["security-headers", "notes-www-0"]
    redirect = http["middlewares"]["notes-www-0"]["redirectRegex"]
    assert redirect["permanent"] is True
    assert redirect["replacement"] == f"https://{target}${{1}}/${{2}}"
    escaped = source.replace(".", "\\.")
    assert redirect["regex"] == f"^https?://{escaped}(:[0-9]+)?/(.*)$"
    assert http["routers"]["notes"]["tls"]["domains"] == [{"main": target, "sans": [source]}]


def test_single_domain_own_edge_routes_file_is_unchanged() -> None:
    router = routes(config())["http"]["routers"]["notes"]
    assert router["tls"] == {"certResolver": "composekit"}
    assert router["rule"] == "Host(`notes.example.test`)"


def test_shared_routes_file_names_start_with_the_app_and_define_no_tls_options() -> None:
    doc = routes(config(edge="shared"))
    assert "tls" not in doc  # the edge's own file holds them: two apps' files would clash
    http = doc["http"]
    for section in ("middlewares", "routers", "services"):
        assert all(name.startswith("notes") for name in http[section]), http[section]
    assert http["routers"]["notes"]["middlewares"] == ["notes-security-headers"]
    assert http["routers"]["notes"]["tls"]["domains"] == [{"main": "notes.example.test"}]


def test_shared_app_stack_has_no_traefik_of_its_own(tmp_path: Path) -> None:
    proj = project(tmp_path, edge="shared")
    doc = render_compose(proj, stack_configs(proj))
    assert "traefik" not in doc["services"]
    assert "acme" not in doc["volumes"]
    assert "traefik.yml" not in doc["configs"]
    assert set(doc["services"]) == {"routes", "files", "app"}


def test_edge_project(tmp_path: Path) -> None:
    proj = project(tmp_path, edge="shared", ports={"http": 8080, "https": 8443})
    doc = yaml.safe_load(render_edge(proj))
    assert doc["name"] == EDGE_PROJECT
    traefik = doc["services"]["traefik"]
    assert "ports" not in traefik  # the holder's (test_edge_upgrade_layout)
    assert traefik["volumes"] == ["routes:/etc/traefik/dynamic:ro", "acme:/acme"]
    assert set(doc["volumes"]) == {"acme", "routes"}
    routes_cmd = doc["services"]["routes"]["command"]
    assert routes_cmd[4] == f"/routes/{EDGE_FILE}"
    assert yaml.safe_load(routes_cmd[5])["tls"] == {"options": {"default": {"minVersion": "VersionTLS12"}}}
    static = yaml.safe_load(doc["configs"]["traefik.yml"]["content"])
    assert static["providers"]["file"] == {"directory": "/etc/traefik/dynamic", "watch": True}

    assert json.loads(traefik["labels"][SETTINGS_LABEL]) == edge_settings(proj)
    assert render_edge(proj) == render_edge(proj)


def test_settings_agreement(tmp_path: Path) -> None:
    mine = edge_settings(project(tmp_path, edge="shared", acme={"email": "a@example.test"}))
    assert settings_mismatch("blog", mine, dict(mine), "notes") is None
    edge = {**mine, "acme/email": "b@example.test", "ports/https": "8443"}
    assert settings_mismatch("blog", mine, edge, "notes") == (
        "edge: shared: app blog cannot use the running shared edge (composekit-edge, created by app notes): "
        "ports/https is '443' here but '8443' on the edge; acme/email is 'a@example.test' here but 'b@example.test' "
        "on the edge. Every app on one edge must agree on ports/http, ports/https, acme/ca_server, acme/email, "
        "acme/challenge, acme/ca_certificates and images/traefik. Fix: set the edge's values in this app's "
        "composekit.yaml, or upgrade the edge to this app's values with `composekit edge up` (no request is lost; "
        "ports excepted; every other app must then agree), or recreate it (`composekit edge down` once no app uses "
        "it, then `composekit up`). Nothing was changed."
    )


def test_domain_claims() -> None:
    notes = config(edge="shared", domain=["notes.example.test", "shared.example.test"], www="redirect_to_apex")
    text = routes_file(notes, "g1", ["notes-app-1"], ["notes-app-1"])
    assert claimed_names(text) == {
        "notes.example.test",
        "shared.example.test",
        "www.notes.example.test",
        "www.shared.example.test",
    }
    blog = parse_config({**BASE, "name": "blog", "domain": "blog.example.test", "edge": "shared"})
    assert domain_conflict(blog, {"notes": text}) is None
    thief = parse_config({**BASE, "name": "blog", "domain": ["blog.example.test", "www.shared.example.test"]})
    assert domain_conflict(thief, {"notes": text}) == (
        "domain: www.shared.example.test is routed by app notes on the shared edge, so app blog cannot claim it. "
        "Fix: remove www.shared.example.test from this app's domain (or www), or take it off app notes first "
        "(`composekit down` of notes, or its own domain changed and `composekit up`). Nothing was changed."
    )
    # its own file never conflicts: a redeploy
    assert domain_conflict(notes, {"notes": text}) is None
    assert claimed_names("not: [yaml") == set()


def _traefik(name: str, status: str = "running") -> Any:
    from composekit.engine.docker import ContainerInfo

    return ContainerInfo(name, name, "traefik", status, "healthy", None, 0, None, None, None, "traefik")


def test_doctor_accepts_ports_held_by_the_shared_edge_only_for_a_shared_app() -> None:
    from composekit.verify.host_doctor import check_ports

    edge = [_traefik("composekit-edge-traefik-1")]
    shared = check_ports(config(edge="shared"), [], lambda port: False, edge)
    assert [(r.status.value, r.detail) for r in shared] == [
        ("ok", "held by the shared edge's Traefik (composekit-edge-traefik-1), which routes this app")
    ] * 2
    own = check_ports(config(), [], lambda port: False, edge)
    assert {r.status.value for r in own} == {"fail"}
    assert "this app has edge: own" in own[0].detail
    other = check_ports(config(edge="shared"), [], lambda port: False, [_traefik("x", "exited")])
    assert [r.detail for r in other] == [
        "in use by another process (ports/http); Traefik cannot publish it",
        "in use by another process (ports/https); Traefik cannot publish it",
    ]


def test_edge_upgrade_layout(tmp_path: Path) -> None:
    """The holder publishes the ports and owns the namespace; Traefik runs in it, its public entrypoints shareable
    (reusePort) and draining on SIGTERM, its ping port and drain middleware those of its slot."""
    proj = project(tmp_path, edge="shared", ports={"http": 8080, "https": 8443})
    for slot, ping in (("a", 8082), ("b", 8083)):
        doc = yaml.safe_load(render_edge(proj, slot))
        holder, traefik = doc["services"]["holder"], doc["services"]["traefik"]
        assert holder["ports"] == ["8080:80", "8443:443"]
        assert holder["networks"] == ["edge"]
        assert holder["cap_drop"] == ["ALL"] and "cap_add" not in holder
        assert holder["read_only"] is True
        assert holder["sysctls"] == {"net.ipv4.tcp_migrate_req": "1"}
        assert holder["user"] == "0:0"  # Traefik's uid: STEER joins its listening sockets
        assert not any("docker.sock" in v for v in holder.get("volumes", []))
        assert traefik["network_mode"] == "service:holder"
        assert "ports" not in traefik and "networks" not in traefik
        assert traefik["stop_grace_period"] == "20s"
        assert traefik["labels"][SLOT_LABEL] == slot
        assert traefik["labels"][REVISION_LABEL] == edge_revision(proj)
        static = yaml.safe_load(doc["configs"]["traefik.yml"]["content"])
        for name in ("web", "websecure"):
            entry = static["entryPoints"][name]
            assert entry["reusePort"] is True
            assert entry["transport"] == {"lifeCycle": {"requestAcceptGraceTimeout": "1s", "graceTimeOut": "10s"}}
            assert entry["http"]["middlewares"] == [f"_drain-{slot}@file"]
        assert static["entryPoints"]["ping"]["address"] == f"127.0.0.1:{ping}"
        assert "&" not in doc["configs"]["traefik.yml"]["content"]  # no YAML anchors
    assert render_edge(proj, "a") != render_edge(proj, "b")
    compile(STEER, "STEER", "exec")
    # a kernel before 5.14 has no tcp_migrate_req, and Docker refuses to start a container asking for it
    assert "sysctls" not in yaml.safe_load(render_edge(proj, "a", migrate_req=False))["services"]["holder"]


def test_edge_revision_follows_the_traefik_definition(tmp_path: Path) -> None:
    for i in range(1, 6):
        (tmp_path / str(i)).mkdir()
    base = edge_revision(project(tmp_path / "1", edge="shared"))
    assert edge_revision(project(tmp_path / "2", edge="shared")) == base
    assert edge_revision(project(tmp_path / "3", edge="shared", images={"traefik": "traefik:v3.8"})) != base
    assert edge_revision(project(tmp_path / "4", edge="shared", acme={"email": "a@example.test"})) != base
    # each app's logging options are its own: two apps differing there must not upgrade the edge in turn
    assert edge_revision(project(tmp_path / "5", edge="shared", logging={"max_size": "20m"})) == base


def test_edge_dynamic_defines_both_drain_middlewares() -> None:
    """Both slots' middlewares always exist (an entrypoint naming a missing one drops every router); only the
    draining slot's closes connections."""
    calm = yaml.safe_load(edge_dynamic())["http"]["middlewares"]
    assert set(calm) == {"_drain-a", "_drain-b"}
    assert all("Connection" not in m["headers"]["customResponseHeaders"] for m in calm.values())
    draining = yaml.safe_load(edge_dynamic("a"))["http"]["middlewares"]
    assert draining["_drain-a"] == {"headers": {"customResponseHeaders": {"Connection": "close"}}}
    assert draining["_drain-b"] == calm["_drain-b"]

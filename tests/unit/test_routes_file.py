"""The routes file composekit writes into the routes volume at every switch: exact bytes, one generation each."""

from __future__ import annotations

import re

import yaml

from composekit.config import parse_config
from composekit.engine.routes_volume import new_generation
from composekit.render.traefik import GENERATION_HEADER, routes_file

CONFIG = parse_config({"name": "shop", "domain": "shop.example.com", "app": {"module": "app.main:app"}})

EXPECTED = """\
# Written by composekit: generation g2. Do not edit: `composekit up` rewrites it.
http:
  middlewares:
    security-headers:
      headers:
        stsSeconds: 31536000
        contentTypeNosniff: true
        frameDeny: true
        referrerPolicy: strict-origin-when-cross-origin
        customResponseHeaders:
          Server: ''
          X-Powered-By: ''
    shop-probe:
      headers:
        customResponseHeaders:
          X-Composekit-Generation: g2
  routers:
    shop:
      rule: Host(`shop.example.com`)
      entryPoints:
      - websecure
      service: shop
      middlewares:
      - security-headers
      tls:
        certResolver: composekit
    shop-probe:
      rule: Host(`shop.example.com`) && Header(`X-Composekit-Generation`, `g2`)
      entryPoints:
      - websecure
      service: shop-probe
      middlewares:
      - security-headers
      - shop-probe
      tls:
        certResolver: composekit
  services:
    shop:
      loadBalancer:
        servers:
        - url: http://shop-app-1:8000
    shop-probe:
      loadBalancer:
        servers:
        - url: http://shop-app-2:8000
tls:
  options:
    default:
      minVersion: VersionTLS12
"""


def test_routes_file_exact_bytes() -> None:
    assert routes_file(CONFIG, "g2", ["shop-app-1"], ["shop-app-2"]) == EXPECTED


def test_each_generation_names_itself_in_its_probe_router_and_answer_header() -> None:
    doc = yaml.safe_load(routes_file(CONFIG, "g7", ["shop-app-2"], ["shop-app-2"]))
    http = doc["http"]
    assert f"Header(`{GENERATION_HEADER}`, `g7`)" in http["routers"]["shop-probe"]["rule"]
    assert http["middlewares"]["shop-probe"]["headers"]["customResponseHeaders"] == {GENERATION_HEADER: "g7"}
    assert http["services"]["shop"] == http["services"]["shop-probe"]


# What a YAML 1.2 reader (Go's, Traefik's) resolves to a number or a bool/null instead of a string: the core schema.
_YAML12_NOT_A_STRING = re.compile(
    r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+|[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?"
    r"|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)|true|True|TRUE|false|False|FALSE|null|Null|NULL|~"
)


def test_generation_ids_are_strings_to_every_yaml_reader() -> None:
    """Traefik read the id 018068102065 as the integer 18068102065 and echoed that: the probe never matched."""
    assert _YAML12_NOT_A_STRING.fullmatch("018068102065")  # the id CI saw, and the check sees it
    assert _YAML12_NOT_A_STRING.fullmatch("123e45678901")
    for _ in range(2000):
        generation = new_generation()
        assert re.fullmatch(r"g[0-9a-f]{11}", generation)
        assert not _YAML12_NOT_A_STRING.fullmatch(generation)
    generation = new_generation()
    assert f"{GENERATION_HEADER}: {generation}\n" in routes_file(CONFIG, generation, ["a"], ["a"])


def test_the_maintenance_routes_of_a_restore_answer_503_with_retry_after() -> None:
    """No server behind the app's routers (Traefik answers 503) and a Retry-After on that answer; the domains,
    certificates and the probe's generation echo stay, so the switch to them is observed like any other."""
    normal = yaml.safe_load(routes_file(CONFIG, "g8", ["shop-app-1"], ["shop-app-1"]))
    doc = yaml.safe_load(routes_file(CONFIG, "g8", [], [], retry_after=60))
    http = doc["http"]
    assert http["middlewares"]["shop-maintenance"] == {"headers": {"customResponseHeaders": {"Retry-After": "60"}}}
    assert http["routers"]["shop"]["middlewares"] == ["security-headers", "shop-maintenance"]
    assert http["routers"]["shop-probe"]["middlewares"] == ["security-headers", "shop-probe", "shop-maintenance"]
    assert http["services"] == {
        "shop": {"loadBalancer": {"servers": []}},
        "shop-probe": {"loadBalancer": {"servers": []}},
    }
    for router in ("shop", "shop-probe"):
        assert {k: v for k, v in http["routers"][router].items() if k != "middlewares"} == {
            k: v for k, v in normal["http"]["routers"][router].items() if k != "middlewares"
        }
    assert "maintenance" not in routes_file(CONFIG, "g8", ["shop-app-1"], ["shop-app-1"])

"""smoke with several domains (`domain` as a list) and www redirects: each domain checked, each redirect too."""

from __future__ import annotations

from pathlib import Path

import httpx

from composekit.config import parse_config
from composekit.verify.smoke import SmokeOptions, run_smoke

from .test_smoke import GOOD_HEADERS, NOW, FakeClient, certificate, options

OTHER = "shop.example.org"


def app(request: httpx.Request) -> httpx.Response:
    host = request.headers["host"]
    if request.url.scheme == "http":
        return httpx.Response(301, headers={"Location": f"https://{host}{request.url.path}"})
    if host.startswith("www."):
        return httpx.Response(308, headers={"Location": f"https://{host[4:]}{request.url.path}"})
    if host == OTHER and request.url.path == "/health":
        return httpx.Response(503, text="no route")
    return httpx.Response(200, headers=GOOD_HEADERS, json={"status": "ok"})


def statuses(opts: SmokeOptions) -> dict[str, str]:
    report = run_smoke(
        opts,
        connect=lambda ep: FakeClient(ep, app, certificate(400)),
        resolver=lambda d: ["203.0.113.7"],
        now=lambda: NOW,
    )
    return {c.name: c.status.value for c in report.checks}


def test_every_domain_and_redirect_is_checked() -> None:
    found = statuses(
        options(also=(OTHER,), redirects=(("www.shop.example.com", "shop.example.com"), ("www.x.example", "x.example")))
    )
    assert found["tls certificate (shop.example.org)"] == "ok"
    assert found["health /health (shop.example.org)"] == "fail"  # its route answers 503
    assert found["www redirect (www.shop.example.com)"] == "ok"
    assert found["www redirect (www.x.example)"] == "ok"


def test_a_redirect_to_the_wrong_place_fails() -> None:
    found = statuses(options(redirects=(("www.shop.example.com", "elsewhere.example.com"),)))
    assert found["www redirect (www.shop.example.com)"] == "fail"


def test_options_from_a_config_with_several_domains() -> None:
    config = parse_config(
        {
            "name": "shop",
            "domain": ["shop.example.com", OTHER],
            "www": "redirect_to_apex",
            "app": {"module": "app.main:app"},
        }
    )
    opts = SmokeOptions.from_config(config, Path("."))
    assert opts.domain == "shop.example.com"
    assert opts.also == (OTHER,)
    assert opts.redirects == (("www.shop.example.com", "shop.example.com"), (f"www.{OTHER}", OTHER))

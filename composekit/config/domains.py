"""The names the app answers to: `domain` as one name or a list (its first item is `domain`, the others
extra_domains), the `www` name beside each that answers with a permanent redirect to it, and which Traefik routes
them (`edge: own | shared`).

Config (model.py) holds the keys; its validators call these checks, whose ValueErrors load.py words as
``FILE: key/path: ...`` like every other."""

from __future__ import annotations

from typing import Any

from .fields import _DOMAIN_RE, got

__all__ = [
    "DOMAIN_EXPECTED",
    "check_routing",
    "split_domain_list",
    "www_redirects",
]

DOMAIN_EXPECTED = 'a fully qualified lowercase domain name such as "shop.example.com"'


def split_domain_list(data: Any) -> Any:
    """`domain: [a, b]`: a becomes `domain`, the rest extra_domains; each checked as `domain` is."""
    if not isinstance(data, dict):
        return data
    if "extra_domains" in data:
        raise ValueError(
            'extra_domains: unknown key (list the domains under `domain`: domain: ["a.example.com", "b.example.com"])'
        )
    items = data.get("domain")
    if not isinstance(items, list):
        return data
    if not items:
        raise ValueError(f"domain: expected {DOMAIN_EXPECTED}, or a non-empty list of them, got []")
    for i, item in enumerate(items):
        if not isinstance(item, str) or not _DOMAIN_RE.match(item):
            raise ValueError(f"domain/{i}: expected {DOMAIN_EXPECTED}, got {got(item)}")
        if item in items[:i]:
            raise ValueError(f"domain/{i}: {item} is listed twice; list each domain once")
    return {**data, "domain": items[0], "extra_domains": tuple(items[1:])}


def www_redirects(www: str, domains: tuple[str, ...]) -> list[tuple[str, str]]:
    """(from, to) for each domain's www counterpart per `www` (a permanent redirect from -> to)."""
    if www == "redirect_to_apex":
        return [(f"www.{d}", d) for d in domains]
    if www == "redirect_to_www":
        return [(d.removeprefix("www."), d) for d in domains]
    return []


def check_routing(domains: tuple[str, ...], www: str, edge: str, mode: str) -> None:
    """Each listed domain fits its `www` redirect; `www` and `edge: shared` are of mode: compose. The first
    problem, as a ValueError."""
    for i, d in enumerate(domains):
        path = "domain" if len(domains) == 1 else f"domain/{i}"
        if www == "redirect_to_apex" and d.startswith("www."):
            raise ValueError(
                f"{path}: www: redirect_to_apex redirects www.<domain> to the domain listed, so list the apex "
                f"{d.removeprefix('www.')} instead of {d}"
            )
        if www == "redirect_to_www" and not d.startswith("www."):
            raise ValueError(
                f"{path}: www: redirect_to_www redirects the apex to the www. name listed, so list www.{d} "
                f"instead of {d}"
            )
    if www != "none" and mode == "swarm":
        raise ValueError(
            "www: the www redirect applies to mode: compose only for now; list both names under `domain` "
            "(each is routed to the app) or remove `www`"
        )
    if edge == "shared" and mode == "swarm":
        raise ValueError(
            "edge: shared applies to mode: compose only: in mode: swarm each stack runs its own Traefik service "
            "(see docs/swarm.md); remove `edge: shared` or set `mode: compose`. Nothing was changed."
        )

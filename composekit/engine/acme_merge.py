"""Pure: Traefik's ACME storage (acme.json) of two Traefiks merged into one, for moving an app's own Traefik onto the
shared edge (engine/edge_move.py). acme.json holds, per certificate resolver, the ACME account (``Account``) and the
certificates (``Certificates``: domain, certificate, key, store). Nothing of either side is lost: the edge's account
stays (the old one fills a resolver that has none); every certificate of both is kept, and where both hold one for the
same names the one valid longer wins."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509

from ..errors import UserError

__all__ = ["AcmeMerge", "merge_acme"]


@dataclass
class AcmeMerge:
    """The merged storage and what happened to each side's entries."""

    text: str
    carried: list[str] = field(default_factory=list)  # the old side's certificates added, by names
    renewed: list[str] = field(default_factory=list)  # names whose old certificate replaced the edge's (valid longer)
    kept: list[str] = field(default_factory=list)  # the edge's certificates kept, by names
    accounts: list[str] = field(default_factory=list)  # resolvers whose account came from the old side

    def summary(self) -> str:
        moved = self.carried + self.renewed
        said = f"{len(moved)} certificate(s) carried over ({'; '.join(moved) or 'none'})"
        if self.kept:
            said += f", {len(self.kept)} of the edge's kept"
        if self.accounts:
            said += f", the ACME account of resolver(s) {', '.join(self.accounts)} carried over"
        return said


def _load(text: str | None, what: str) -> dict[str, Any]:
    if text is None or not text.strip():
        return {}
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{what} is not valid JSON ({exc.msg}, line {exc.lineno}), so its certificates cannot be merged safely. "
            "Nothing was changed. Fix: repair or remove that acme.json (Traefik then requests the certificates again)"
        ) from None
    if not isinstance(doc, dict) or any(not isinstance(v, dict) for v in doc.values()):
        raise UserError(
            f"{what} is not Traefik's ACME storage (an object of resolvers, each with Account and Certificates), so "
            "its certificates cannot be merged safely. Nothing was changed. Fix: repair or remove that acme.json"
        )
    return doc


def _names(cert: dict[str, Any]) -> tuple[str, ...]:
    domain = cert.get("domain") or {}
    return (str(domain.get("main", "")), *sorted(str(s) for s in domain.get("sans") or []))


def _not_after(cert: dict[str, Any]) -> datetime | None:
    try:
        parsed = x509.load_pem_x509_certificate(base64.b64decode(str(cert.get("certificate", ""))))
    except ValueError:
        return None
    return parsed.not_valid_after_utc


def merge_acme(edge_text: str | None, old_text: str | None, edge_what: str, old_what: str) -> AcmeMerge:
    """``old_text`` (the app's own Traefik's acme.json) merged into ``edge_text`` (the edge's); None or empty is an
    empty storage. ``edge_what`` / ``old_what`` name them in errors."""
    edge, old = _load(edge_text, edge_what), _load(old_text, old_what)
    merged: dict[str, Any] = {}
    result = AcmeMerge("")
    for resolver in [*edge, *(r for r in old if r not in edge)]:
        mine, theirs = edge.get(resolver) or {}, old.get(resolver) or {}
        entry = {**theirs, **mine}
        if not mine.get("Account") and theirs.get("Account"):
            entry["Account"] = theirs["Account"]
            result.accounts.append(resolver)
        certs: list[dict[str, Any]] = list(mine.get("Certificates") or [])
        index = {_names(c): i for i, c in enumerate(certs)}
        result.kept += [", ".join(n for n in _names(c) if n) for c in certs]
        for cert in theirs.get("Certificates") or []:
            names = _names(cert)
            label = ", ".join(n for n in names if n)
            if names not in index:
                index[names] = len(certs)
                certs.append(cert)
                result.carried.append(label)
                continue
            ours = certs[index[names]]
            newer, current = _not_after(cert), _not_after(ours)
            if newer is not None and (current is None or newer > current):
                certs[index[names]] = cert
                result.renewed.append(label)
                result.kept.remove(label)
        entry["Certificates"] = certs or None
        merged[resolver] = entry
    result.text = json.dumps(merged, indent=2) + "\n"
    return result

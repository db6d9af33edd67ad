"""Merging an app's own acme.json into the shared edge's (engine/acme_merge.py): nothing of either side is lost."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from composekit.engine.acme_merge import merge_acme
from composekit.errors import UserError

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def cert(name: str, days: int) -> str:
    """A self-signed certificate for ``name`` valid ``days`` from NOW, base64 of its PEM as acme.json holds it."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    built = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(built.public_bytes(serialization.Encoding.PEM)).decode()


def entry(main: str, days: int, sans: list[str] | None = None) -> dict[str, Any]:
    return {"domain": {"main": main, "sans": sans}, "certificate": cert(main, days), "key": "k", "Store": "default"}


def storage(account: str | None, *certs: dict[str, Any]) -> str:
    account_doc = {"Email": account, "PrivateKey": account} if account else None
    return json.dumps({"composekit": {"Account": account_doc, "Certificates": list(certs) or None}})


def test_both_sides_certificates_are_kept_and_the_edges_account_stays() -> None:
    edge = storage("edge@x", entry("blog.example.com", 80))
    old = storage("notes@x", entry("notes.example.com", 60, ["www.notes.example.com"]))
    merged = merge_acme(edge, old, "edge", "old")
    doc = json.loads(merged.text)["composekit"]
    assert doc["Account"]["Email"] == "edge@x"
    assert [c["domain"]["main"] for c in doc["Certificates"]] == ["blog.example.com", "notes.example.com"]
    assert merged.carried == ["notes.example.com, www.notes.example.com"] and merged.kept == ["blog.example.com"]
    assert merged.summary() == (
        "1 certificate(s) carried over (notes.example.com, www.notes.example.com), 1 of the edge's kept"
    )


def test_into_an_empty_edge_the_old_account_and_certificates_are_carried_whole() -> None:
    old = storage("notes@x", entry("notes.example.com", 60))
    merged = merge_acme(None, old, "edge", "old")
    assert json.loads(merged.text) == json.loads(old)
    assert merged.accounts == ["composekit"]


def test_for_the_same_names_the_certificate_valid_longer_wins() -> None:
    longer, shorter = entry("notes.example.com", 80), entry("notes.example.com", 10)
    merged = merge_acme(storage("e", shorter), storage("o", longer), "edge", "old")
    assert json.loads(merged.text)["composekit"]["Certificates"] == [longer]
    assert merged.renewed == ["notes.example.com"] and merged.kept == []
    kept = merge_acme(storage("e", longer), storage("o", shorter), "edge", "old")
    assert json.loads(kept.text)["composekit"]["Certificates"] == [longer]
    assert kept.carried == [] and kept.renewed == []


def test_a_resolver_only_one_side_has_is_kept() -> None:
    edge = json.dumps({"other": {"Account": {"Email": "a"}, "Certificates": None}})
    merged = json.loads(merge_acme(edge, storage("o", entry("n.example.com", 5)), "edge", "old").text)
    assert sorted(merged) == ["composekit", "other"]


def test_storage_that_is_not_json_is_refused_naming_it() -> None:
    with pytest.raises(UserError) as caught:
        merge_acme("{}", "{not json", "the edge's acme.json", "app notes's own acme.json (volume notes_acme)")
    assert str(caught.value).startswith(
        "app notes's own acme.json (volume notes_acme) is not valid JSON (Expecting property name enclosed in double "
        "quotes, line 1), so its certificates cannot be merged safely. Nothing was changed."
    )

"""The secret heuristics: a variable name that names a secret, a value that looks like a credential; and the
redaction of `composekit config` (Config.redacted) built on them. app/environment's validation uses them too."""

from __future__ import annotations

import itertools
import math
import re
from typing import Any

__all__ = ["REDACTED", "redact", "secret_name_word", "secret_value_kind"]

_SECRET_NOUNS = frozenset(
    {
        "PASSWORD",
        "PASSWD",
        "PASS",
        "PASSPHRASE",
        "SECRET",
        "TOKEN",
        "CREDENTIAL",
        "CREDENTIALS",
        "APIKEY",
    }
)
_SECRET_KEY_PHRASES = frozenset({"API", "PRIVATE", "SECRET", "ACCESS", "SIGNING", "ENCRYPTION", "AUTH", "MASTER"})
_URL_USERINFO_RE = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^/?#@\s]+@")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9+/=_.~-]{20,}$")
REDACTED = "<redacted>"


def _entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    counts = {c: text.count(c) for c in set(text)}
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def secret_name_word(name: str) -> str | None:
    """The secret noun a variable name ends in (``DB_PASSWORD`` -> ``PASSWORD``), else None.

    Only the last word counts, so ``PASSWORD_MIN_LENGTH``, ``TOKEN_TTL`` or ``SECRET_FILE`` pass; ``KEY`` counts
    only after API, PRIVATE, SECRET, ACCESS, SIGNING, ENCRYPTION, AUTH or MASTER (``CACHE_KEY`` passes).
    """
    words = [w for w in name.upper().split("_") if w]
    if not words:
        return None
    if words[-1] in _SECRET_NOUNS:
        return words[-1]
    if words[-1] == "KEY" and len(words) > 1 and words[-2] in _SECRET_KEY_PHRASES:
        return f"{words[-2]}_KEY"
    return None


def secret_value_kind(value: str) -> str | None:
    """Why a value looks like a credential, else None. Never echoes the value.

    A URL with userinfo (``postgres://u:pw@host/db``), a PEM block, or a random-looking token: 20 or more
    characters of letters, digits and ``+/=_.~-`` only, not starting with ``/`` or ``.``, that either switches
    between letters and digits at least 4 times inside its words (split at ``_.~+=/-``) and has a word of 16+
    characters, or mixes letters and digits, has a word of 10+ characters and 4.2+ bits of entropy per
    character. That catches ``secrets.token_hex``/``token_urlsafe`` values, API keys and JWTs (a heuristic:
    nearly all, not all), and lets through paths, host names, versions, identifiers such as
    ``release_2024_11_30`` or ``MyService2``, and UUIDs.
    """
    if "-----BEGIN " in value:
        return "holds a PEM block"
    if _URL_USERINFO_RE.search(value):
        return "is a URL with credentials (user:password@)"
    if _TOKEN_RE.match(value) and not value.startswith(("/", ".")):
        words = re.split(r"[_.~+=/-]", value)
        switches = sum(a.isdigit() != b.isdigit() for w in words for a, b in itertools.pairwise(w))
        mixed = any(c.isdigit() for c in value) and any(c.isalpha() for c in value)
        longest = max(len(w) for w in words)
        if (switches >= 4 and longest >= 16) or (mixed and longest >= 10 and _entropy(value) >= 4.2):
            return "looks like a random token"
    return None


def redact(data: Any, name: str = "") -> Any:
    if isinstance(data, dict):
        return {k: redact(v, str(k)) for k, v in data.items()}
    if isinstance(data, list):
        return [redact(v, name) for v in data]
    if isinstance(data, str) and (secret_name_word(name) is not None or secret_value_kind(data) is not None):
        return REDACTED
    return data

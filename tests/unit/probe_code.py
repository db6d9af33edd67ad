"""The URL a rendered healthcheck probe (render/services.py http_probe) requests, read from its Python code."""

from __future__ import annotations

import ast


def probe_url(code: str) -> str | None:
    """http://HOST:PORT/PATH from the literals the probe passes to socket.create_connection and encodes into its
    request line; None when the code has not exactly one of each (the code is compiled: a SyntaxError raises)."""
    tree = ast.parse(code)
    compile(tree, "<healthcheck>", "exec")
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]
    connects = [c for c in calls if c.func.attr == "create_connection"]  # type: ignore[attr-defined]
    paths = [c.func.value for c in calls if c.func.attr == "encode"]  # type: ignore[attr-defined]
    if len(connects) != 1 or len(paths) != 1 or not isinstance(paths[0], ast.Constant):
        return None
    address = connects[0].args[0] if connects[0].args else None
    if not isinstance(address, ast.Tuple) or not all(isinstance(e, ast.Constant) for e in address.elts):
        return None
    host, port = (e.value for e in address.elts)  # type: ignore[attr-defined]
    path = paths[0].value
    return f"http://{host}:{port}{path}" if isinstance(path, str) else None

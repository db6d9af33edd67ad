"""The public API is what `composekit.__all__` names, and every name there resolves."""

from __future__ import annotations

import composekit


def test_all_exports_resolve() -> None:
    for name in composekit.__all__:
        assert hasattr(composekit, name), name


def test_public_names_are_exported() -> None:
    public = {n for n in dir(composekit) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(composekit, n)).__name__ == "module"}
    assert public - modules - {"annotations"} == set(composekit.__all__) - {"__version__"}


def test_user_errors_share_one_base() -> None:
    for name in (
        "ConfigError",
        "DockerError",
        "BuildError",
        "MigrationError",
        "PortInUseError",
        "HealthTimeoutError",
        "HttpCheckError",
        "TemplateError",
    ):
        assert issubclass(getattr(composekit, name), composekit.UserError)
    assert issubclass(composekit.UserError, composekit.ComposekitError)

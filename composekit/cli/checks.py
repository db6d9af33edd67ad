"""CLI commands that check a deployment: `smoke` and `doctor` (registered on the app of cli/app.py)."""

from __future__ import annotations

import ipaddress
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..config import CONFIG_FILENAME, Config, load_config
from ..config.project import load_project
from ..engine.docker import Docker, context_endpoint
from ..engine.switch import project_release_id
from ..engine.target import choose_target, connect, target_address
from ..errors import UserError
from ..render.swarm_variables import swarm_image
from ..verify.backup_age import CHECK as BACKUP_AGE
from ..verify.backup_age import backup_age
from ..verify.checks import CheckResult, Report, render_json
from ..verify.doctor import DoctorOptions, run_doctor
from ..verify.smoke import SmokeOptions, parse_resolve, smoke
from ..verify.swarm_doctor import SwarmFacts, gather_swarm
from .app import app, out, run, state
from .display import render_table, smoke_retrying

__all__ = ["print_report", "smoke_options"]


def _config_files() -> tuple[Path, ...]:
    return tuple(Path(os.path.abspath(f)) for f in (state.config_files or (Path(CONFIG_FILENAME),)))


def smoke_options(
    resolve: str | None = None,
    ca_file: Path | None = None,
    cert_warn_days: int | None = None,
    cert_fail_days: int | None = None,
    timeout: float = 10.0,
) -> SmokeOptions:
    """Smoke options from the config alone: smoke runs where the app's files (env files) may be absent."""
    files = _config_files()
    return SmokeOptions.from_config(
        load_config(*files),
        files[0].parent,
        resolve=parse_resolve(resolve) if resolve else None,
        ca_file=ca_file,
        cert_warn_days=cert_warn_days,
        cert_fail_days=cert_fail_days,
        timeout=timeout,
    )


def print_report(report: Report, as_json: bool, console: Console) -> None:
    if as_json:
        sys.stdout.write(render_json(report))
    else:
        render_table(report, console)


@app.command("smoke")
def smoke_command(
    resolve: Annotated[
        str | None,
        typer.Option(
            "--resolve",
            metavar="DOMAIN:IP",
            help="Send every request to IP, with DOMAIN as Host and TLS SNI (like curl): check a server "
            'before DNS points at it. DOMAIN is the domain checked. "server": the address of the target engine\'s '
            "server (--host, host:, DOCKER_HOST, context).",
        ),
    ] = None,
    ca_file: Annotated[
        Path | None,
        typer.Option(
            "--ca-file", metavar="PEM", help="Trust this CA file instead of the system's (private or test CA)."
        ),
    ] = None,
    cert_warn_days: Annotated[
        int | None, typer.Option(min=0, help="Warn when the certificate expires within N days (smoke/cert_warn_days).")
    ] = None,
    cert_fail_days: Annotated[
        int | None, typer.Option(min=0, help="Fail when the certificate expires within N days (smoke/cert_fail_days).")
    ] = None,
    wait: Annotated[
        float, typer.Option(min=0, help="Repeat the checks for up to N seconds until they pass (right after a deploy).")
    ] = 0,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for each answer.")] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable report on stdout.")] = False,
) -> None:
    """Check the live deployment from outside: DNS, HTTP->HTTPS redirect, certificate, health, headers.

    Exit code 0 when every check passed (warnings included), 1 otherwise.
    """

    def do() -> Report:
        opts = smoke_options(_server_resolve(resolve), ca_file, cert_warn_days, cert_fail_days, timeout)
        report = smoke(opts, wait=wait, on_retry=smoke_retrying)
        report = _with_backup_age(report)
        print_report(report, as_json, out)
        return report

    if not run(do).passed:
        raise typer.Exit(1)


def _with_backup_age(report: Report) -> Report:
    """The report with the age of the last verified backup when backups: is set (backups are configured), read on
    the target engine; an engine that does not answer fails the check, saying why."""
    files = _config_files()
    config = load_config(*files)
    if config.backups is None:
        return report
    target = choose_target(state.host, config.host, " + ".join(f.name for f in files), os.environ, context_endpoint)
    try:
        with connect(target) as engine:
            found = backup_age(config, Docker(config.name, [], engine=engine))
    except UserError as exc:
        first = str(exc).splitlines()[0]
        found = CheckResult.fail(
            BACKUP_AGE, f"cannot read the backups on the server: {first}", "check `composekit backups`"
        )
    return replace(report, checks=(*report.checks, found)) if found is not None else report


def _server_resolve(resolve: str | None) -> str | None:
    """`--resolve server` -> DOMAIN:ADDRESS of the target engine's server (found without connecting to it)."""
    if resolve != "server":
        return resolve
    files = _config_files()
    config = load_config(*files)
    target = choose_target(state.host, config.host, " + ".join(f.name for f in files), os.environ, context_endpoint)
    return f"{config.domain}:{target_address(target)}"


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip("[]")))
    except ValueError:
        raise UserError(f'--expect-ip: expected an IP address such as "203.0.113.7", got "{value}"') from None


@app.command("doctor")
def doctor_command(
    expect_ip: Annotated[
        list[str] | None,
        typer.Option(
            "--expect-ip",
            metavar="IP",
            help="The public IP(s) the domain must resolve to, when this machine cannot see it (NAT). "
            "Repeat for IPv4 and IPv6.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable report on stdout.")] = False,
) -> None:
    """Preflight this machine: Docker, Compose, Traefik image, ports, DNS, acme.json, disk, config.

    Exit code 0 when no check failed (warnings included), 1 otherwise.
    """

    def do() -> Report:
        opts = DoctorOptions(state.config_files, tuple(_ip(ip) for ip in expect_ip or ()))
        files = _config_files()
        try:
            config_host = load_config(*files).host
        except UserError:
            config_host = None  # doctor reports the config; the engine comes from --host, DOCKER_HOST or the context
        source = " + ".join(f.name for f in files)
        with connect(choose_target(state.host, config_host, source, os.environ, context_endpoint)) as engine:
            docker = Docker("composekit", [], engine=engine)

            def swarm_facts(config: Config) -> SwarmFacts:
                image = swarm_image(config, project_release_id(load_project(files)))
                manager = Docker(config.name, [], engine=engine)
                return gather_swarm(manager, config.name, image, config.swarm.nodes, config.registry)

            report = run_doctor(
                opts,
                probe=lambda name: Docker(name, [], engine=engine),
                server=engine,
                server_python=docker.run_python,
                swarm_facts=swarm_facts,
            )
        print_report(report, as_json, out)
        return report

    if not run(do).passed:
        raise typer.Exit(1)

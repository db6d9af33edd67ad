"""What the CLI draws with rich: a check report as a table, the status of a stack as a table."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..engine.status import StackStatus
from ..engine.swarm import SwarmStatus
from ..verify.checks import Report, Status
from .app import err

__all__ = ["render_table", "smoke_retrying", "status_table", "swarm_status_table"]

_STYLES = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "bold red"}


def render_table(report: Report, console: Console) -> None:
    """The report as a table (check, status, what was seen, fix), then a one-line verdict."""
    table = Table(title=f"{report.command}: {report.subject}", show_lines=True, title_justify="left")
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("seen")
    table.add_column("fix")
    for c in report.checks:
        table.add_row(
            Text(c.name),
            Text(c.status.value, style=_STYLES[c.status]),
            Text(c.detail),
            Text(c.fix or "-", style="dim" if not c.fix else ""),
        )
    console.print(table)
    console.print(Text(report.summary(), style="green" if report.passed else "bold red"))


def status_table(st: StackStatus) -> Table:
    """One row per service: container, state (with the exit code of a stopped one), health, workers, start."""
    table = Table(title=f"{st.name}  {st.url}")
    for col in ("service", "container", "state", "health", "workers", "started"):
        table.add_column(col)
    for s in st.services:
        state_text = s.status if s.exit_code in (None, 0) or s.status == "running" else f"{s.status} ({s.exit_code})"
        workers = "?" if s.note else "-" if s.workers is None else str(s.workers)
        table.add_row(s.service, s.container, state_text, s.health or "-", workers, s.started_at or "-")
    return table


def _when(iso: str | None) -> str:
    """An ISO time of state.json as "12-03 12:10" (the table's title says UTC)."""
    return "-" if iso is None else iso[5:16].replace("T", " ")


def schedules_table(st: StackStatus) -> Table:
    """One row per schedule: its cron, the last run (the time it stood for, its result, its last output line), the
    next time. A schedule with nothing known has a note, printed under the table."""
    table = Table(title="schedules (UTC)")
    for col in ("schedule", "cron", "last run", "result", "next", "last output"):
        table.add_column(col, no_wrap=col != "last output", min_width=8 if col == "last output" else None)
    for s in st.schedules:
        last_line = escape(s.output[-1]) if s.output else "-"
        table.add_row(s.name, s.cron, _when(s.scheduled), s.result, _when(s.next), last_line)
    return table


def swarm_status_table(st: SwarmStatus) -> Table:
    """mode: swarm: one row per service (running/desired, Swarm's update state), then one per current task."""
    table = Table(title=f"{st.name}  {st.url}  (Swarm)")
    for col in ("service / task", "node", "state", "health", "since"):
        table.add_column(col)
    for s in st.services:
        update = f", update {s.update}" if s.update else ""
        summary = s.mode if s.desired is None else f"{s.running}/{s.desired} running{update}"
        table.add_row(Text(s.service, style="bold"), "", summary, "", "")
        for t in s.tasks:
            state = f"{t.state} ({t.error})" if t.error else t.state
            table.add_row(f"  {t.task}", t.node, state, t.health or "-", t.since)
    return table


def smoke_retrying(report: Report) -> None:
    """Progress on stderr while smoke waits for the deployment to pass (Traefik getting its certificate)."""
    first = report.failures[0]
    err.print(
        "[bold]composekit:[/] " + escape(f"smoke not passing yet ({first.name}: {first.detail}); retrying"),
        markup=True,
        highlight=False,
    )

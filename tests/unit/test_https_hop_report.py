"""benchmarks/https_hop.py's readings of its runs: which direct runs left a gunicorn worker idle (and are left out of
the ratio), and what the CPU per request predicts. Pure functions over recorded rows; no Docker."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def hop() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCHMARKS))  # https_hop imports edge_lane as the scripts run it
    spec = importlib.util.spec_from_file_location("https_hop_under_test", BENCHMARKS / "https_hop.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]
        sys.modules.pop("edge_lane", None)
        sys.path.remove(str(BENCHMARKS))


def run(rps: float, shares: list[int], traefik: float = 0.0, app: float = 0.5) -> dict[str, Any]:
    cpu = {"traefik": traefik, "app": app, "docker-proxy": 0.08, "dockerd": 0.05, "wrk": 0.03}
    return {"rps": rps, "worker_shares": shares, "cpu_ms_per_request": cpu, "app_accepted_connections": 3}


def test_a_run_with_a_worker_below_a_quarter_of_its_even_share_is_lopsided(hop: ModuleType) -> None:
    assert hop.lopsided([100, 0])
    assert hop.lopsided([88, 12])
    assert not hop.lopsided([87, 13])
    assert not hop.lopsided([40, 60])
    assert hop.lopsided([50, 45, 5])  # three workers: a quarter of 33 % is 8 %
    assert not hop.lopsided([])


def test_the_ratio_leaves_out_the_rounds_whose_direct_run_was_lopsided(hop: ModuleType) -> None:
    rounds = [
        {"round": 1, "direct": run(1000, [100, 0]), "edge": run(1500, [50, 50])},
        {"round": 2, "direct": run(2000, [50, 50]), "edge": run(1400, [50, 50])},
        {"round": 3, "direct": run(2000, [45, 55]), "edge": run(1600, [50, 50])},
    ]
    lines = hop.one_sided(rounds, ["direct", "edge"])
    assert "round(s) 1 " in lines[0]
    assert lines[1] == "- edge / direct over the other 2 round(s): median 0.75"


def test_with_every_direct_run_lopsided_no_ratio_is_given(hop: ModuleType) -> None:
    rounds = [{"round": 1, "direct": run(1000, [0, 100]), "edge": run(1500, [50, 50])}]
    lines = hop.one_sided(rounds, ["direct", "edge"])
    assert not any("median" in line for line in lines)
    assert "run more rounds" in lines[-1]


def test_the_budget_is_a_quarter_of_directs_cpu_and_predicts_the_ratio_from_the_totals(hop: ModuleType) -> None:
    # direct: 0.5 + 0.08 + 0.05 + 0.03 = 0.66 ms; edge: 0.25 Traefik + 0.6 app + the same 0.16 = 1.01 ms
    cpu = {
        "direct": run(0, [], traefik=0.0, app=0.5)["cpu_ms_per_request"],
        "edge": run(0, [], traefik=0.25, app=0.6)["cpu_ms_per_request"],
    }
    lines = hop.budget(cpu, ["direct", "edge"])
    assert "direct 0.660 ms" in lines[0] and "at most 0.165 ms" in lines[0]
    assert lines[1] == (
        "- edge: 1.010 ms, the hop adds 0.350 (Traefik's own 0.250, the app +0.100); predicted / direct: 0.65"
    )

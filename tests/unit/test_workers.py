"""Worker sizing at container start, over cgroup v1 and v2 trees, cpusets, memory caps and env overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from composekit.runtime.gunicorn_conf import (
    Resources,
    compute_workers,
    container_networks,
    count_cpu_list,
    read_resources,
)


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content + "\n")
    return root


def v2(tmp_path: Path, cpu_max: str = "max 100000", cpuset: str = "", memory: str = "max") -> Path:
    files = {"cgroup.controllers": "cpuset cpu io memory pids", "cpu.max": cpu_max, "memory.max": memory}
    if cpuset:
        files["cpuset.cpus.effective"] = cpuset
    return write(tmp_path, files)


def v1(tmp_path: Path, quota: int = -1, period: int = 100000, cpuset: str = "", memory: int = 9223372036854771712) -> Path:
    files = {
        "cpu/cpu.cfs_quota_us": str(quota),
        "cpu/cpu.cfs_period_us": str(period),
        "memory/memory.limit_in_bytes": str(memory),
    }
    if cpuset:
        files["cpuset/cpuset.cpus"] = cpuset
    return write(tmp_path, files)


def test_v2_quota_limits_cpus_on_a_big_host(tmp_path: Path) -> None:
    res = read_resources(v2(tmp_path, cpu_max="100000 100000"), host_cpus=64)
    assert (res.source, res.quota_cpus, res.effective_cpus) == ("cgroup v2", 1.0, 1)
    assert compute_workers(res, {})[0] == 2  # max(1 cpu x 1, floor 2), not 64


def test_v2_fractional_quota_rounds_up(tmp_path: Path) -> None:
    res = read_resources(v2(tmp_path, cpu_max="150000 100000"), host_cpus=64)
    assert res.effective_cpus == 2
    assert compute_workers(res, {"WORKERS_PER_CORE": "3"})[0] == 6


def test_v2_unlimited_uses_host_count(tmp_path: Path) -> None:
    res = read_resources(v2(tmp_path), host_cpus=8)
    assert (res.quota_cpus, res.memory_limit, res.effective_cpus) == (None, None, 8)
    assert compute_workers(res, {})[0] == 8


def test_v2_cpuset_limits(tmp_path: Path) -> None:
    res = read_resources(v2(tmp_path, cpuset="0-2,7"), host_cpus=16)
    assert (res.cpuset_cpus, res.effective_cpus) == (4, 4)


def test_v2_smallest_of_quota_and_cpuset(tmp_path: Path) -> None:
    res = read_resources(v2(tmp_path, cpu_max="300000 100000", cpuset="0-1"), host_cpus=16)
    assert res.effective_cpus == 2


def test_v1_quota(tmp_path: Path) -> None:
    res = read_resources(v1(tmp_path, quota=200000, period=100000), host_cpus=64)
    assert (res.source, res.quota_cpus, res.effective_cpus) == ("cgroup v1", 2.0, 2)
    assert compute_workers(res, {"WORKERS_PER_CORE": "2"})[0] == 4


def test_v1_unlimited_quota_and_cpuset(tmp_path: Path) -> None:
    res = read_resources(v1(tmp_path, quota=-1, cpuset="3"), host_cpus=64)
    assert (res.quota_cpus, res.cpuset_cpus, res.memory_limit, res.effective_cpus) == (None, 1, None, 1)


def test_v1_memory_cap(tmp_path: Path) -> None:
    res = read_resources(v1(tmp_path, memory=512 * 1024**2), host_cpus=8)
    assert res.memory_limit == 512 * 1024**2
    workers, why = compute_workers(res, {})
    assert workers == 2
    assert "capped by memory 512MiB / 256MiB per worker" in why


def test_v2_memory_cap_can_go_below_the_floor(tmp_path: Path) -> None:
    res = read_resources(v2(tmp_path, memory=str(200 * 1024**2)), host_cpus=4)
    assert compute_workers(res, {})[0] == 1


def test_memory_budget_is_configurable(tmp_path: Path) -> None:
    res = read_resources(v2(tmp_path, memory=str(1024**3)), host_cpus=16)
    assert compute_workers(res, {"WORKER_MEMORY_MB": "128"})[0] == 8


def test_max_workers_caps() -> None:
    res = Resources(host_cpus=32, quota_cpus=None, cpuset_cpus=None, memory_limit=None, source="cgroup v2")
    workers, why = compute_workers(res, {"MAX_WORKERS": "5"})
    assert workers == 5
    assert why.endswith("capped by MAX_WORKERS=5")


def test_web_concurrency_overrides_everything() -> None:
    res = Resources(host_cpus=1, quota_cpus=0.5, cpuset_cpus=1, memory_limit=64 * 1024**2, source="cgroup v2")
    assert compute_workers(res, {"WEB_CONCURRENCY": "7", "MAX_WORKERS": "2"}) == (7, "WEB_CONCURRENCY=7")


def test_min_workers_floor() -> None:
    res = Resources(host_cpus=1, quota_cpus=None, cpuset_cpus=None, memory_limit=None, source="cgroup v2")
    assert compute_workers(res, {})[0] == 2
    assert compute_workers(res, {"MIN_WORKERS": "1"})[0] == 1


def test_explanation_lists_the_inputs(tmp_path: Path) -> None:
    res = read_resources(v1(tmp_path, quota=100000, cpuset="0-1"), host_cpus=2)
    assert compute_workers(res, {"WORKERS_PER_CORE": "3"}) == (
        3,
        "cgroup v1: cpu quota=1 cpuset=2 host=2 -> 1 cpu(s) x WORKERS_PER_CORE=3 (min 2)",
    )


@pytest.mark.parametrize("env", [{"WEB_CONCURRENCY": "0"}, {"MAX_WORKERS": "-1"}, {"WORKERS_PER_CORE": "0"}])
def test_bad_env_values_are_refused(env: dict[str, str]) -> None:
    res = Resources(host_cpus=2, quota_cpus=None, cpuset_cpus=None, memory_limit=None, source="cgroup v2")
    with pytest.raises(ValueError):
        compute_workers(res, env)


@pytest.mark.parametrize(("spec", "count"), [("0", 1), ("0-3", 4), ("0-3,8,10-11", 7), ("", None), ("x", None)])
def test_count_cpu_list(spec: str, count: int | None) -> None:
    assert count_cpu_list(spec) == count


def test_container_networks_from_route_table(tmp_path: Path) -> None:
    table = tmp_path / "route"
    table.write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010012AC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth0\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
    )
    assert container_networks(str(table)) == ["172.18.0.0/16"]


def test_gunicorn_settings_for_a_container() -> None:
    from composekit.runtime.gunicorn_conf import settings

    res = Resources(host_cpus=8, quota_cpus=2.0, cpuset_cpus=None, memory_limit=None, source="cgroup v2")
    conf = settings({"APP_PORT": "9000", "WORKERS_PER_CORE": "2"}, res, ["172.18.0.0/16"])
    assert conf["bind"] == "0.0.0.0:9000"
    assert conf["workers"] == 4
    assert conf["worker_class"] == "uvicorn_worker.UvicornWorker"
    assert conf["worker_tmp_dir"] == "/dev/shm"
    assert conf["forwarded_allow_ips"] == "172.18.0.0/16"
    assert conf["keepalive"] > 60  # above Traefik's idle timeout to backends
    assert str(conf["_explanation"]).startswith("composekit: workers=4 (cgroup v2: cpu quota=2 cpuset=none host=8")
    assert settings({"FORWARDED_ALLOW_IPS": "10.0.0.1"}, res, [])["forwarded_allow_ips"] == "10.0.0.1"

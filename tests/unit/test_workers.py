"""Worker sizing at container start, over cgroup v1 and v2 trees, cpusets, memory caps and env overrides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from composekit.runtime.gunicorn_conf import (
    Resources,
    compute_workers,
    count_cpu_list,
    own_cgroups,
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


def v1(
    tmp_path: Path, quota: int = -1, period: int = 100000, cpuset: str = "", memory: int = 9223372036854771712
) -> Path:
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


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY must be a positive integer, got '0'"),
        ({"MAX_WORKERS": "-1"}, "MAX_WORKERS must be a positive integer, got '-1'"),
        ({"WORKERS_PER_CORE": "0"}, "WORKERS_PER_CORE must be positive, got 0.0"),
    ],
)
def test_bad_env_values_are_refused(env: dict[str, str], message: str) -> None:
    res = Resources(host_cpus=2, quota_cpus=None, cpuset_cpus=None, memory_limit=None, source="cgroup v2")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        compute_workers(res, env)


@pytest.mark.parametrize(("spec", "count"), [("0", 1), ("0-3", 4), ("0-3,8,10-11", 7), ("", None), ("x", None)])
def test_count_cpu_list(spec: str, count: int | None) -> None:
    assert count_cpu_list(spec) == count


def test_gunicorn_settings_for_a_container() -> None:
    from composekit.runtime.gunicorn_conf import settings

    res = Resources(host_cpus=8, quota_cpus=2.0, cpuset_cpus=None, memory_limit=None, source="cgroup v2")
    everything = lambda module: True  # noqa: E731 (an image with uvicorn-worker and uvicorn installed)
    env = {"APP_PORT": "9000", "WORKERS_PER_CORE": "2", "FORWARDED_ALLOW_IPS": "10.1.2.2"}
    conf = settings(env, res, found=everything)
    assert conf["bind"] == "0.0.0.0:9000"
    assert conf["workers"] == 4
    assert conf["worker_class"] == "uvicorn_worker.UvicornWorker"
    assert conf["worker_tmp_dir"] == "/dev/shm"
    assert conf["forwarded_allow_ips"] == "10.1.2.2"
    assert isinstance(conf["keepalive"], int) and conf["keepalive"] > 60  # above Traefik's idle timeout to backends
    assert str(conf["_explanation"]).startswith("composekit: workers=4 (cgroup v2: cpu quota=2 cpuset=none host=8")
    # Without composekit's variable nothing but loopback is trusted, never the container's networks.
    assert settings({}, res, found=everything)["forwarded_allow_ips"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("installed", "worker"),
    [
        ({"uvicorn_worker", "uvicorn.workers"}, "uvicorn_worker.UvicornWorker"),
        ({"uvicorn.workers"}, "uvicorn.workers.UvicornWorker"),  # an own Dockerfile with gunicorn and uvicorn only
        (set(), "uvicorn_worker.UvicornWorker"),  # neither: gunicorn names the preferred one in its error
    ],
)
def test_the_worker_class_is_the_first_one_the_image_has(installed: set[str], worker: str) -> None:
    from composekit.runtime.gunicorn_conf import settings

    res = Resources(host_cpus=2, quota_cpus=None, cpuset_cpus=None, memory_limit=None, source="cgroup v2")
    conf = settings({}, res, found=installed.__contains__)
    assert conf["worker_class"] == worker
    assert f"worker_class={worker};" in str(conf["_explanation"])


# The container's own cgroup, as /proc/self/cgroup names it (cgroupns=host shows the host's whole tree) ----

V2_HOST_TREE = "0::/system.slice/docker-3f4e1c.scope\n"
V1_HOST_TREE = (
    "12:pids:/docker/3f4e1c\n11:memory:/docker/3f4e1c\n7:cpuset:/docker/3f4e1c\n"
    "4:cpu,cpuacct:/docker/3f4e1c\n1:name=systemd:/docker/3f4e1c\n0::/system.slice/containerd.service\n"
)


def proc_cgroup(tmp_path: Path, content: str) -> Path:
    path = tmp_path / "proc-self-cgroup"
    path.write_text(content)
    return path


def test_own_cgroups_parses_v1_and_v2_lines(tmp_path: Path) -> None:
    assert own_cgroups(proc_cgroup(tmp_path, V1_HOST_TREE)) == {
        "pids": "/docker/3f4e1c",
        "memory": "/docker/3f4e1c",
        "cpuset": "/docker/3f4e1c",
        "cpu": "/docker/3f4e1c",
        "cpuacct": "/docker/3f4e1c",
        "name=systemd": "/docker/3f4e1c",
        "": "/system.slice/containerd.service",
    }
    assert own_cgroups(proc_cgroup(tmp_path, "0::/\n")) == {"": "/"}
    assert own_cgroups(tmp_path / "missing") == {}


def test_v2_cgroupns_host_reads_the_containers_own_cgroup(tmp_path: Path) -> None:
    # The host's root cgroup has no cpu.max or memory.max; the limits live in the container's scope.
    tree = write(
        tmp_path / "sys",
        {
            "cgroup.controllers": "cpuset cpu io memory pids",
            "cpuset.cpus.effective": "0-63",
            "system.slice/docker-3f4e1c.scope/cpu.max": "100000 100000",
            "system.slice/docker-3f4e1c.scope/memory.max": str(512 * 1024**2),
            "system.slice/docker-3f4e1c.scope/cpuset.cpus.effective": "0-3",
            "system.slice/cpu.max": "max 100000",
        },
    )
    res = read_resources(tree, host_cpus=64, self_cgroup=proc_cgroup(tmp_path, V2_HOST_TREE))
    assert (res.quota_cpus, res.cpuset_cpus, res.memory_limit) == (1.0, 4, 512 * 1024**2)
    assert res.source == "cgroup v2 at /system.slice/docker-3f4e1c.scope"
    assert compute_workers(res, {})[0] == 2  # not 64


def test_v2_private_namespace_reads_the_root(tmp_path: Path) -> None:
    tree = v2(tmp_path / "sys", cpu_max="200000 100000", cpuset="0-5", memory=str(1024**3))
    res = read_resources(tree, host_cpus=64, self_cgroup=proc_cgroup(tmp_path, "0::/\n"))
    assert (res.source, res.quota_cpus, res.cpuset_cpus, res.memory_limit) == ("cgroup v2", 2.0, 6, 1024**3)


def test_v2_nested_path_takes_the_smallest_limit_of_its_ancestors(tmp_path: Path) -> None:
    # The process sits in a child cgroup; the CPU limit is on the container's cgroup above it.
    tree = write(
        tmp_path / "sys",
        {
            "cgroup.controllers": "cpu memory",
            "docker/3f4e1c/cpu.max": "300000 100000",
            "docker/3f4e1c/memory.max": str(2 * 1024**3),
            "docker/3f4e1c/init/cpu.max": "max 100000",
            "docker/3f4e1c/init/memory.max": str(1024**3),
            "docker/cpu.max": "400000 100000",
        },
    )
    res = read_resources(tree, host_cpus=64, self_cgroup=proc_cgroup(tmp_path, "0::/docker/3f4e1c/init\n"))
    assert (res.quota_cpus, res.memory_limit) == (3.0, 1024**3)
    assert res.source == "cgroup v2 at /docker/3f4e1c/init"


def test_v2_path_outside_the_namespace_falls_back_to_the_root(tmp_path: Path) -> None:
    tree = v2(tmp_path / "sys", cpu_max="100000 100000")
    res = read_resources(tree, host_cpus=8, self_cgroup=proc_cgroup(tmp_path, "0::/../../system.slice/x.scope\n"))
    assert (res.source, res.quota_cpus) == ("cgroup v2", 1.0)


def test_v1_cgroupns_host_with_the_whole_tree_mounted(tmp_path: Path) -> None:
    tree = write(
        tmp_path / "sys",
        {
            "cpu,cpuacct/cpu.cfs_quota_us": "-1",
            "cpu,cpuacct/cpu.cfs_period_us": "100000",
            "cpu,cpuacct/docker/3f4e1c/cpu.cfs_quota_us": "150000",
            "cpu,cpuacct/docker/3f4e1c/cpu.cfs_period_us": "100000",
            "cpuset/cpuset.cpus": "0-63",
            "cpuset/docker/3f4e1c/cpuset.cpus": "2-3",
            "memory/memory.limit_in_bytes": "9223372036854771712",
            "memory/docker/3f4e1c/memory.limit_in_bytes": str(768 * 1024**2),
        },
    )
    res = read_resources(tree, host_cpus=64, self_cgroup=proc_cgroup(tmp_path, V1_HOST_TREE))
    assert (res.quota_cpus, res.cpuset_cpus, res.memory_limit) == (1.5, 2, 768 * 1024**2)
    assert res.source == "cgroup v1 at /docker/3f4e1c"
    assert compute_workers(res, {"WORKERS_PER_CORE": "2"})[0] == 3  # 2 cpus x 2, capped by 768M / 256M


def test_v1_own_cgroup_mounted_at_the_root(tmp_path: Path) -> None:
    # Docker on v1 mounts the container's own cgroup at /sys/fs/cgroup/<controller> while /proc/self/cgroup
    # still names the host path: that path does not exist below the mount, so the root is read.
    tree = v1(tmp_path / "sys", quota=100000, cpuset="0-1", memory=512 * 1024**2)
    res = read_resources(tree, host_cpus=64, self_cgroup=proc_cgroup(tmp_path, V1_HOST_TREE))
    assert (res.source, res.quota_cpus, res.cpuset_cpus, res.memory_limit) == ("cgroup v1", 1.0, 2, 512 * 1024**2)

"""CPU threads: cgroup quota parsing on fake cgroup trees, affinity, and the torch settings."""

from pathlib import Path

import pytest

from cryodiff import threads


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


@pytest.fixture
def v2(tmp_path) -> tuple[Path, Path]:
    """A fake cgroup v2 root and a membership file putting the process in /job/step."""
    membership = tmp_path / "proc_self_cgroup"
    _write(membership, "0::/job/step")
    return tmp_path / "cgroup", membership


@pytest.fixture
def v1(tmp_path) -> tuple[Path, Path]:
    """A fake cgroup v1 root and a membership file with the cpu controller at /."""
    membership = tmp_path / "proc_self_cgroup"
    _write(membership, "4:memory:/x\n3:cpu,cpuacct:/\n1:name=systemd:/")
    return tmp_path / "cgroup", membership


@pytest.fixture
def torch_threads():
    """Restores torch's intra-op thread count after the test."""
    import torch

    before = torch.get_num_threads()
    yield torch
    torch.set_num_threads(before)


@pytest.mark.parametrize("text, cpus", [("50000 100000", 0.5), ("250000 100000", 2.5), ("400000 200000", 2.0), ("max 100000", None)])
def test_parse_cpu_max(text, cpus):
    assert threads.parse_cpu_max(text) == cpus


@pytest.mark.parametrize("quota, period, cpus", [("150000", "100000", 1.5), ("-1", "100000", None), ("50000", "50000", 1.0)])
def test_parse_cfs(quota, period, cpus):
    assert threads.parse_cfs(quota, period) == cpus


def test_v2_quota_of_the_process_cgroup(v2):
    root, membership = v2
    _write(root / "job" / "step" / "cpu.max", "300000 100000")
    assert threads.cgroup_cpu_limit(root, membership) == 3.0


def test_v2_tightest_ancestor_wins(v2):
    root, membership = v2
    _write(root / "job" / "cpu.max", "200000 100000")
    _write(root / "job" / "step" / "cpu.max", "max 100000")
    assert threads.cgroup_cpu_limit(root, membership) == 2.0


def test_v2_container_sees_its_cgroup_at_the_root(v2):
    """Inside a container the membership path does not exist under the mount; the root file applies."""
    root, membership = v2
    _write(root / "cpu.max", "150000 100000")
    assert threads.cgroup_cpu_limit(root, membership) == 1.5


def test_v2_max_means_no_limit(v2):
    root, membership = v2
    _write(root / "cpu.max", "max 100000")
    assert threads.cgroup_cpu_limit(root, membership) is None


def test_v1_quota(v1):
    root, membership = v1
    _write(root / "cpu,cpuacct" / "cpu.cfs_quota_us", "250000")
    _write(root / "cpu,cpuacct" / "cpu.cfs_period_us", "100000")
    assert threads.cgroup_cpu_limit(root, membership) == 2.5


def test_v1_no_quota(v1):
    root, membership = v1
    _write(root / "cpu" / "cpu.cfs_quota_us", "-1")
    _write(root / "cpu" / "cpu.cfs_period_us", "100000")
    assert threads.cgroup_cpu_limit(root, membership) is None


def test_missing_files_mean_no_limit(tmp_path):
    assert threads.cgroup_cpu_limit(tmp_path / "nothing", tmp_path / "no_membership") is None


def test_unreadable_quota_means_no_limit(v2):
    root, membership = v2
    _write(root / "job" / "cpu.max", "lots")
    _write(root / "job" / "step" / "cpu.max", "200000 100000")
    assert threads.cgroup_cpu_limit(root, membership) == 2.0


def test_malformed_membership_lines_are_skipped(v2):
    root, membership = v2
    _write(membership, "garbage\n0::/job/step")
    _write(root / "job" / "cpu.max", "100000 100000")
    assert threads.cgroup_cpu_limit(root, membership) == 1.0


@pytest.mark.parametrize("quota, affinity, cpus", [
    ("250000 100000", range(8), 2),  # fractional quota rounds down
    ("370000 100000", range(8), 3),
    ("50000 100000", range(8), 1),  # but never below one CPU
    ("1600000 100000", range(4), 4),  # affinity tighter than the quota
    ("max 100000", range(6), 6),  # no quota: the affinity mask
])
def test_available_cpus_intersects_affinity_and_quota(v2, quota, affinity, cpus):
    root, membership = v2
    _write(root / "cpu.max", quota)
    assert threads.available_cpus(root, membership, affinity=set(affinity)) == cpus


def test_available_cpus_of_this_process_is_within_its_affinity():
    import os

    assert 1 <= threads.available_cpus() <= len(os.sched_getaffinity(0))


def test_configure_threads_honours_an_explicit_request(torch_threads):
    assert threads.configure_threads(3) == 3
    assert torch_threads.get_num_threads() == 3


def test_configure_threads_warns_above_the_available_cpus(torch_threads, monkeypatch, caplog):
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    assert threads.configure_threads(4) == 4
    assert "4 threads on 2 available CPUs" in caplog.text


def test_configure_threads_default(torch_threads, monkeypatch):
    monkeypatch.setattr(threads, "default_threads", lambda: 1)
    assert threads.configure_threads(None) == 1
    assert torch_threads.get_num_threads() == 1


@pytest.mark.parametrize("bad", [0, -2])
def test_configure_threads_rejects_non_positive(bad, torch_threads):
    before = torch_threads.get_num_threads()
    with pytest.raises(ValueError, match=rf"number of CPU threads must be 1 or more, got {bad}$"):
        threads.configure_threads(bad)
    assert torch_threads.get_num_threads() == before


def test_prepare_environment_sets_a_short_spin():
    environ = {"PATH": "/bin"}
    threads.prepare_environment(environ)
    assert environ == {"PATH": "/bin", "GOMP_SPINCOUNT": "10000"}


@pytest.mark.parametrize("users", [{"OMP_WAIT_POLICY": "PASSIVE"}, {"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "0"}])
def test_prepare_environment_keeps_the_users_setting(users):
    environ = dict(users)
    threads.prepare_environment(environ)
    assert environ == users


@pytest.mark.parametrize("value, count", [("3", 3), ("4,2", 4), ("0", 2), ("lots", 2), (None, 2)])
def test_default_threads_prefers_the_users_omp_num_threads(value, count, monkeypatch):
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    environ = {} if value is None else {"OMP_NUM_THREADS": value}
    assert threads.default_threads(environ) == count

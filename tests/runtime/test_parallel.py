"""How many workers a run uses by default: what this process may use, and no more than SLURM granted."""

from __future__ import annotations

import os

from ukbb_pipeline.runtime.parallel import default_n_jobs, imap_unordered


def test_default_is_the_cpu_affinity_not_the_machine_count(monkeypatch):
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert default_n_jobs() == 3


def test_slurm_grant_caps_an_unbound_affinity(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))  # affinity not bound by SLURM
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "4")
    assert default_n_jobs() == 4
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "")
    assert default_n_jobs() == 64


def test_parallel_map_returns_every_result_once():
    results = sorted(imap_unordered(pow, [(i, 2) for i in range(20)], n_jobs=2))
    assert results == [i * i for i in range(20)]


def _scaled(shared: dict, value: int) -> int:
    return shared["scale"] * value


def test_a_shared_object_reaches_every_call_without_travelling_with_each():
    shared = {"scale": 3, "ballast": list(range(1000))}
    assert sorted(imap_unordered(_scaled, [(i,) for i in range(30)], n_jobs=2, shared=shared)) == [
        3 * i for i in range(30)]
    assert sorted(imap_unordered(_scaled, [(i,) for i in range(3)], n_jobs=1, shared=shared)) == [0, 3, 6]


def test_calls_sent_in_chunks_each_return_once():
    shared = {"scale": 2}
    results = sorted(imap_unordered(_scaled, [(i,) for i in range(53)], n_jobs=2, shared=shared, chunk_size=8))
    assert results == [2 * i for i in range(53)]

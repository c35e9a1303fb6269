"""Machine-hours and cost of a platform sweep, from per-subject figures measured on this project's own runs.

The single-core seconds per input of each stage are its row's ``seconds_per_input`` in the table of stages
(:data:`ukbb_pipeline.registry.STAGES`), measured in the worker on full-size synthetic subjects (README's throughput
table, tests/benchmarks/bench_pipeline.py, a 2-vCPU Xeon VM); collect's is assumed, not measured. They are estimates
for the platform, whose CPUs, mount throughput and prices have not been measured here.
"""

from __future__ import annotations

import re

from ukbb_pipeline import registry

JOB_OVERHEAD_S = 180.0  # start-up of a platform job (published: about 3 minutes)
PRICE_PER_CORE_HOUR_GBP = 0.04  # low priority (spot); published: about 0.16 GBP an hour for a 4-core instance


def cores(instance_type: str) -> int:
    """The cores of a DNAnexus instance type (``mem1_ssd1_v2_x16`` -> 16)."""
    match = re.search(r"_x(\d+)$", instance_type)
    return int(match.group(1)) if match else 1


def estimate(*, stage: str, subjects: int, jobs: int, instance_type: str) -> dict[str, float]:
    """Wall hours of the sweep (its jobs in parallel), machine-hours and cost, for ``subjects`` inputs."""
    n = cores(instance_type)
    known = registry.stage(stage).seconds_per_input if stage in registry.STAGE_NAMES else None
    per_subject = 1.0 if known is None else known
    job_hours = (JOB_OVERHEAD_S + per_subject * subjects / max(1, jobs) / n) / 3600
    machine_hours = job_hours * jobs
    return {"wall_hours": job_hours, "machine_hours": machine_hours,
            "cost_gbp": machine_hours * n * PRICE_PER_CORE_HOUR_GBP}


def describe(*, stage: str, subjects: int, jobs: int, instance_type: str) -> str:
    figures = estimate(stage=stage, subjects=subjects, jobs=jobs, instance_type=instance_type)
    return (f"estimate (unverified on the platform): {stage}, {subjects} subjects in {jobs} jobs on {instance_type}: "
            f"about {figures['wall_hours']:.1f} h, {figures['machine_hours']:.1f} machine-hours, "
            f"about GBP {figures['cost_gbp']:.2f} at low priority")

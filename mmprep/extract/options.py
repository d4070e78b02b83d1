"""How an extract run goes (not what it produces): the executor and its settings.

Kept apart from the executors so the command line can read the defaults without
loading them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

Executor = Literal["local", "ray", "slurm"]


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class PoolOptions:
    """How the local executor runs samples."""

    workers: int | None = None  # None: one per available core; 0: in this process
    sample_timeout: float | None = 300.0  # seconds per sample (None or 0: no limit)
    buffer_mb: float = 512.0  # finished samples waiting for an earlier one

    def resolved_workers(self) -> int:
        return default_workers() if self.workers is None else self.workers


@dataclass
class RayOptions:
    address: str | None = None  # None: start a local Ray instance (or join RAY_ADDRESS)
    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0
    retries: int = 3  # retries of a task whose worker or node died


@dataclass
class SlurmOptions:
    task_id: int | None = None
    task_count: int | None = None


@dataclass
class RunOptions:
    """Options that change how a run goes, not what it produces."""

    overwrite: bool = False
    fail_fast: bool = False
    progress: bool = True
    max_failure_rate: float | None = None  # checked by the caller (exit code 3)
    executor: Executor = "local"
    pool: PoolOptions = field(default_factory=PoolOptions)
    ray: RayOptions = field(default_factory=RayOptions)
    slurm: SlurmOptions = field(default_factory=SlurmOptions)

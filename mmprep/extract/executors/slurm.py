"""The SLURM executor: each array task takes every COUNT-th shard.

A job array of the same ``mmprep extract`` command covers the dataset: task ``t`` of
``n`` processes the shards whose index is ``t`` modulo ``n`` with the local pool, into
the same output folder. Task ids come from ``SLURM_ARRAY_TASK_ID`` (minus
``SLURM_ARRAY_TASK_MIN``, divided by ``SLURM_ARRAY_TASK_STEP``) and the count from
``SLURM_ARRAY_TASK_COUNT``, or from ``--task-id`` / ``--task-count``.
"""

from __future__ import annotations

import os

from mmprep.errors import MmprepError
from mmprep.extract.options import SlurmOptions


def task_slot(opts: SlurmOptions, environ=None) -> tuple[int, int]:
    """(task id, task count) from the options, else from SLURM's environment."""
    env = os.environ if environ is None else environ
    count = opts.task_count
    if count is None and env.get("SLURM_ARRAY_TASK_COUNT"):
        count = int(env["SLURM_ARRAY_TASK_COUNT"])
    task = opts.task_id
    if task is None and env.get("SLURM_ARRAY_TASK_ID"):
        raw = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN") or 0)
        task = raw // max(1, int(env.get("SLURM_ARRAY_TASK_STEP") or 1))
    if task is None or count is None:
        raise MmprepError(
            "executor 'slurm' needs SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT (submit "
            "the command as a job array, see examples/slurm_extract.sbatch) or "
            "task_id and task_count (--task-id, --task-count)"
        )
    if count < 1 or not 0 <= task < count:
        raise MmprepError(f"task id {task} is not within 0..{count - 1}")
    return task, count


def select_shards(plan: list, opts: SlurmOptions, environ=None) -> list:
    """The shards of ``plan`` (index, samples) that this array task owns."""
    task, count = task_slot(opts, environ)
    return [(index, chunk) for index, chunk in plan if index % count == task]

"""Options shared by the commands that run extract work (extract, retry-failed)."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click

from mmprep.cli.options import EXIT_FAILED
from mmprep.config import choices_of, field_info
from mmprep.extract import RunOptions

EXIT_TOO_MANY_FAILURES = 3


def _default(path: str):
    return field_info(RunOptions, path)[1]


_OPTIONS = [
    click.option("--workers", "run__workers", type=click.IntRange(0),
                 help="Worker processes (default: one per available core; 0: run in this "
                      "process, without timeouts)."),
    click.option("--sample-timeout", "run__sample_timeout", type=click.FloatRange(0),
                 default=_default("pool.sample_timeout"), show_default=True,
                 help="Seconds one sample may take before it is abandoned as an error and "
                      "its worker replaced (0: no limit)."),
    click.option("--max-failure-rate", "run__max_failure_rate", type=click.FloatRange(0, 1),
                 help="Exit with code 3 when more than this fraction of samples failed "
                      "(default: no limit)."),
    click.option("--executor", "run__executor",
                 type=click.Choice(choices_of(RunOptions, "executor")),
                 default=_default("executor"), show_default=True,
                 help="local: process pool on this machine; ray: one Ray task per shard; "
                      "slurm: this job-array task's share of the shards."),
    click.option("--ray-address", "run__ray_address",
                 help="Ray cluster to join (default: RAY_ADDRESS, else a local instance)."),
    click.option("--ray-cpus", "run__ray_cpus", type=click.FloatRange(0),
                 default=_default("ray.cpus_per_task"), show_default=True,
                 help="CPUs per Ray task (also its worker processes)."),
    click.option("--ray-gpus", "run__ray_gpus", type=click.FloatRange(0),
                 default=_default("ray.gpus_per_task"), show_default=True,
                 help="GPUs per Ray task."),
    click.option("--ray-retries", "run__ray_retries", type=click.IntRange(0),
                 default=_default("ray.retries"), show_default=True,
                 help="Retries of a Ray task whose worker or node died."),
    click.option("--task-id", "run__task_id", type=click.IntRange(0),
                 help="slurm: this task's id (default: from SLURM_ARRAY_TASK_ID)."),
    click.option("--task-count", "run__task_count", type=click.IntRange(1),
                 help="slurm: number of tasks (default: SLURM_ARRAY_TASK_COUNT)."),
]


def run_options(func: Callable) -> Callable:
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


def build_run_options(kwargs: dict, **fields):
    """RunOptions from the ``run__*`` options in ``kwargs`` (removed from it)."""
    from mmprep.extract.options import PoolOptions, RayOptions, SlurmOptions

    v = {k[5:]: kwargs.pop(k) for k in list(kwargs) if k.startswith("run__")}
    return RunOptions(
        max_failure_rate=v["max_failure_rate"],
        executor=v["executor"],
        pool=PoolOptions(workers=v["workers"], sample_timeout=v["sample_timeout"] or None),
        ray=RayOptions(address=v["ray_address"], cpus_per_task=v["ray_cpus"],
                       gpus_per_task=v["ray_gpus"], retries=v["ray_retries"]),
        slurm=SlurmOptions(task_id=v["task_id"], task_count=v["task_count"]),
        **fields,
    )


def format_summary(summary) -> str:
    d = summary.to_dict()
    lines = [
        f"{d['samples']} samples -> {d['out_dir']}: {d['ok']} ok, {d['failed']} failed "
        f"in {d['shards']} shard(s)"
        + (f" ({d['shards_done_before']} already done)" if d["shards_done_before"] else ""),
    ]
    if d["processed"]:
        lines.append(
            f"processed {d['processed']} in {d['seconds']:.2f} s: "
            f"{d['clips_per_second']:.2f} clips/s, {d['input_mb_per_second']:.2f} MB/s of input"
        )
    if d["failed"]:
        lines.append(f"errors: {d['errors_file']}")
    return "\n".join(lines)


def report(summary, opts, as_json: bool) -> None:
    """Print the summary; exit 1 if every sample failed, 3 above --max-failure-rate."""
    if as_json:
        click.echo(summary.to_json())
    else:
        click.echo(format_summary(summary), err=True)
    if summary.all_failed:
        sys.exit(EXIT_FAILED)
    limit = opts.max_failure_rate
    if summary.too_many_failures(limit):
        click.echo(
            f"Error: {summary.failed} of {summary.ok + summary.failed} samples failed "
            f"({summary.failure_rate:.1%}), above --max-failure-rate {limit:.1%}",
            err=True,
        )
        sys.exit(EXIT_TOO_MANY_FAILURES)

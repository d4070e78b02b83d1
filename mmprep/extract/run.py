"""Run extract over a manifest: plan shards, skip finished ones, pick an executor.

The shard is the unit of work: shard ``i`` holds manifest samples
``[i * samples_per_shard, (i + 1) * samples_per_shard)``, whatever the executor or the
number of workers, so a rerun knows exactly what is done (shards with a stats file)
and what is not.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, get_args

from mmprep import __version__
from mmprep.config import to_dict
from mmprep.errors import MmprepError, UsageError
from mmprep.extract.executors.local import run_local
from mmprep.extract.executors.slurm import select_shards
from mmprep.extract.options import Executor, RunOptions
from mmprep.extract.sample import ExtractConfig, check_config
from mmprep.manifest import Sample, manifest_fingerprint
from mmprep.results import Result
from mmprep.shards.folder import (
    FolderLock,
    check_output,
    current_failures,
    done_indices,
    open_output,
    read_record,
    read_stats,
    wipe,
    write_errors,
    write_record,
)
from mmprep.shards.index import write_wids_index
from mmprep.storage import Store

EXECUTORS = get_args(Executor)


@dataclass
class RunSummary(Result):
    """What an extract (or retry-failed) run did, and the state of its output folder."""

    out_dir: str
    samples: int  # in the manifest
    ok: int  # samples present in the shards
    failed: int  # samples whose latest attempt failed
    shards: int
    shards_done_before: int
    processed: int  # samples processed by this run (the rest were done before)
    seconds: float
    input_bytes: int
    output_bytes: int
    errors_file: str
    stages: dict[str, float] = field(default_factory=dict)
    index_file: str | None = None  # NAME-wids.json: the shards for wids.ShardListDataset

    @property
    def clips_per_second(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    @property
    def failure_rate(self) -> float:
        done = self.ok + self.failed
        return self.failed / done if done else 0.0

    @property
    def all_failed(self) -> bool:
        """The rule for "the run failed" (exit code 1, and a failed chain step): samples
        were attempted and none of them is in the shards."""
        return self.samples > 0 and self.ok == 0 and self.failed > 0

    def too_many_failures(self, max_failure_rate: float | None) -> bool:
        """More samples failed than ``max_failure_rate`` allows (exit code 3)."""
        return max_failure_rate is not None and self.failure_rate > max_failure_rate

    def derived(self) -> dict[str, Any]:
        mb = self.input_bytes / 1e6
        return {
            "clips_per_second": round(self.clips_per_second, 3),
            "input_mb_per_second": round(mb / self.seconds, 3) if self.seconds else 0.0,
            "failure_rate": round(self.failure_rate, 6),
        }


def plan_shards(samples: list[Sample], per_shard: int) -> list[tuple[int, list[Sample]]]:
    """Shard ``i`` is the manifest slice ``[i * per_shard, (i + 1) * per_shard)``."""
    return [
        (i // per_shard, samples[i : i + per_shard]) for i in range(0, len(samples), per_shard)
    ]


def run_record(samples: list[Sample], cfg: ExtractConfig) -> dict[str, Any]:
    """The output folder's run record for ``samples`` extracted with ``cfg``."""
    return {
        "mmprep_version": __version__,
        "content_hash": cfg.content_hash(),
        "manifest_fingerprint": manifest_fingerprint(samples),
        "samples": len(samples),
        "config": to_dict(cfg),
    }


def _input_bytes(samples: list[Sample]) -> int:
    total = 0
    for s in samples:
        try:
            total += os.path.getsize(s.source)
        except (OSError, ValueError):
            pass
    return total


class _Progress:
    def __init__(self, total: int, enabled: bool, desc: str = "extract"):
        self.bar = None
        self.failed = 0
        if enabled and total:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="clip", desc=desc, dynamic_ncols=True)

    def sample(self, ok: bool) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        if not ok:
            self.failed += 1
            self.bar.set_postfix(failed=self.failed)

    def shard(self, stats: dict[str, Any]) -> None:
        if self.bar is None:
            return
        self.bar.update(stats["count"]["input"])
        self.failed += stats["count"]["failed"]
        self.bar.set_postfix(failed=self.failed)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_shards(
    todo: list[tuple[int, list[Sample]]],
    cfg: ExtractConfig,
    store: Store,
    opts: RunOptions,
    *,
    extra_stats: dict[str, Any] | None = None,
    desc: str = "extract",
) -> None:
    """Process ``todo`` with the executor of ``opts``."""
    progress = _Progress(sum(len(c) for _, c in todo), opts.progress, desc)
    try:
        if opts.executor == "ray":
            from mmprep.extract.executors.ray import run_ray

            run_ray(todo, cfg, store.url, ray_opts=opts.ray, pool=opts.pool,
                    fail_fast=opts.fail_fast, on_shard=progress.shard, extra_stats=extra_stats)
        else:
            run_local(todo, cfg, store, pool=opts.pool, fail_fast=opts.fail_fast,
                      on_sample=progress.sample, extra_stats=extra_stats)
    finally:
        progress.close()
        store.release_staging()


def summarize(store: Store, cfg: ExtractConfig, n_samples: int, n_shards: int, done_before: int,
              processed: list[Sample], seconds: float) -> RunSummary:
    all_stats = [s for s in read_stats(store) if s.get("name") == cfg.shards.name]
    stages: dict[str, float] = {}
    for s in all_stats:
        for k, v in s.get("timings", {}).items():
            stages[k] = round(stages.get(k, 0.0) + v, 4)
    return RunSummary(
        out_dir=store.url,
        samples=n_samples,
        ok=len({k for s in all_stats for k in s.get("keys", [])}),
        failed=len(current_failures(all_stats)),
        shards=n_shards,
        shards_done_before=done_before,
        processed=len(processed),
        seconds=round(seconds, 4),
        input_bytes=_input_bytes(processed),
        output_bytes=sum(s.get("bytes", 0) for s in all_stats),
        errors_file=write_errors(store),
        index_file=write_wids_index(store, cfg.shards.name, all_stats),
        stages=stages,
    )


def extract(
    samples: list[Sample],
    out_dir,
    cfg: ExtractConfig,
    opts: RunOptions | None = None,
) -> RunSummary:
    """Extract ``samples`` into WebDataset shards under ``out_dir``; resumable.

    Args:
        samples: the manifest's samples (``mmprep.manifest.read_manifest``).
        out_dir: the output folder, local or an fsspec URL.
        cfg: what the shards hold (frames, audio features, tokens, shard layout).
        opts: how the run goes (workers, executor, overwrite, fail-fast, progress).

    Returns the run summary. Finished shards (those with a stats file) are skipped; a
    folder holding another config or manifest is refused unless ``opts.overwrite``.
    """
    opts = opts or RunOptions()
    if opts.executor not in EXECUTORS:
        raise MmprepError(f"unknown executor {opts.executor!r} (allowed: {', '.join(EXECUTORS)})")
    shared = opts.executor == "slurm"  # the tasks of one job array share the folder
    if opts.overwrite and shared:
        raise UsageError("overwrite=True (--overwrite) cannot be combined with executor "
                         "'slurm': every array task would wipe the others' shards; empty the "
                         "folder before submitting the array")
    check_config(cfg)
    store = open_output(out_dir)
    record = run_record(samples, cfg)
    with FolderLock(store, shared=shared, what="mmprep extract"):
        if opts.overwrite:
            wipe(store, cfg.shards.name)
        check_output(store, record)
        if read_record(store) != record:  # written once; array tasks write the same
            write_record(store, record)
        plan = plan_shards(samples, cfg.shards.samples_per_shard)
        mine = select_shards(plan, opts.slurm) if shared else plan
        done = done_indices(store, cfg.shards.name)
        todo = [(i, chunk) for i, chunk in mine if i not in done]
        t0 = time.perf_counter()
        run_shards(todo, cfg, store, opts,
                   extra_stats={"manifest_fingerprint": record["manifest_fingerprint"]})
        seconds = time.perf_counter() - t0
        processed = [s for _, chunk in todo for s in chunk]
        return summarize(store, cfg, len(samples), len(plan), len(mine) - len(todo),
                         processed, seconds)

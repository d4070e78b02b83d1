"""The local executor: one machine, a pool of worker processes, shards written in order.

Samples are handed to workers in manifest order. Each shard's samples are written as
soon as every sample before them is done, so results from other workers wait in memory
only while an earlier sample of the same shard is still running; dispatch pauses when
those waiting results exceed ``buffer_mb``.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from mmprep.errors import UsageError
from mmprep.extract.executors.job import ShardJob
from mmprep.extract.executors.pool import SamplePool
from mmprep.extract.options import PoolOptions
from mmprep.extract.sample import ExtractConfig, Outcome, failure_record, preflight, run_sample
from mmprep.manifest import Sample
from mmprep.storage import Store


def run_local(
    todo: list[tuple[int, list[Sample]]],
    cfg: ExtractConfig,
    store: Store,
    *,
    pool: PoolOptions | None = None,
    fail_fast: bool = False,
    on_sample: Callable[[bool], None] | None = None,
    extra_stats: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Process the shards ``todo`` (index, samples); returns their stats."""
    pool = pool or PoolOptions()
    on_sample = on_sample or (lambda ok: None)
    workers = min(pool.resolved_workers(), sum(len(c) for _, c in todo))
    if workers <= 0:
        return _run_inline(todo, cfg, store, fail_fast, on_sample, extra_stats,
                           pool.sample_timeout)

    tasks = deque((index, pos, sample) for index, chunk in todo for pos, sample in enumerate(chunk))
    chunks = dict(todo)
    jobs: dict[int, ShardJob] = {}
    finished: list[dict[str, Any]] = []
    cap = pool.buffer_mb * 1e6
    workers_pool = SamplePool(cfg, workers, sample_timeout=pool.sample_timeout)
    try:
        while tasks or workers_pool.busy() or workers_pool.orphans:
            while workers_pool.orphans:  # queued behind a sample whose worker was killed
                (index, pos), sample = workers_pool.orphans.popleft()
                tasks.appendleft((index, pos, sample))
            while tasks and sum(j.buffered_bytes for j in jobs.values()) <= cap:
                idle = workers_pool.idle()
                if not idle:
                    break
                index, pos, sample = tasks.popleft()
                if index not in jobs:
                    jobs[index] = ShardJob(index, chunks[index], cfg, store,
                                           fail_fast=fail_fast, extra_stats=extra_stats)
                workers_pool.submit(idle[0], (index, pos), sample)
            for (index, pos), outcome in workers_pool.poll(0.5):
                job = jobs[index]
                job.add(pos, outcome)
                on_sample(outcome.ok)
                if job.done:
                    finished.append(job.finish())
                    del jobs[index]
    except BaseException:
        workers_pool.terminate()
        for job in jobs.values():
            job.abort()
        raise
    workers_pool.close()
    if jobs:  # pragma: no cover - a scheduling bug must never pass silently
        raise RuntimeError(f"shards {sorted(jobs)} were left unfinished")
    return finished


class _SampleTimeout(BaseException):
    """Raised by the alarm of ``_deadline`` (a BaseException: no stage swallows it)."""


@contextlib.contextmanager
def _deadline(seconds: float | None):
    """Interrupt the sample running in this process after ``seconds`` (SIGALRM: blocking
    system calls such as opening a FIFO return, and Python code stops at the next
    line). Yields a function telling whether the alarm went off."""
    fired = False
    if not seconds:
        yield lambda: False
        return

    def on_alarm(signum, frame):
        nonlocal fired
        fired = True
        raise _SampleTimeout()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield lambda: fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _run_one(sample: Sample, cfg: ExtractConfig, timeout: float | None,
             pipeline_hash: str | None = None) -> Outcome:
    """``run_sample`` in this process, with the sample timeout enforced."""
    try:
        with _deadline(timeout) as expired:
            outcome = run_sample(sample, cfg, pipeline_hash=pipeline_hash)
    except _SampleTimeout:
        outcome = None
    if outcome is None or (not outcome.ok and expired()):
        return Outcome(None, error=failure_record(
            sample, "sample", "Timeout", f"no result after {timeout:g} s (interrupted)"))
    return outcome


def _run_inline(todo, cfg, store, fail_fast, on_sample, extra_stats,
                timeout: float | None = None) -> list[dict[str, Any]]:
    preflight(cfg)
    if timeout and threading.current_thread() is not threading.main_thread():
        raise UsageError("a sample timeout with workers=0 (--workers 0) needs the main "
                         "thread; run from the main thread, use workers >= 1, or set "
                         "sample_timeout to 0 (--sample-timeout 0)")
    finished = []
    pipeline_hash = cfg.content_hash()
    for index, chunk in todo:
        job = ShardJob(index, chunk, cfg, store, fail_fast=fail_fast, extra_stats=extra_stats)
        try:
            for pos, sample in enumerate(chunk):
                outcome = _run_one(sample, cfg, timeout, pipeline_hash)
                job.add(pos, outcome)
                on_sample(outcome.ok)
        except BaseException:
            job.abort()
            raise
        finished.append(job.finish())
    return finished

"""One shard being written: outcomes arrive in any order, are written in manifest order.

Writing in manifest order whatever the completion order is what makes shards
byte-identical for any number of workers.
"""

from __future__ import annotations

import time
from typing import Any

from mmprep.config import to_dict
from mmprep.errors import MmprepError
from mmprep.extract.sample import ExtractConfig, Outcome
from mmprep.manifest import Sample
from mmprep.shards.folder import shard_stats, write_stats
from mmprep.shards.index import write_shard_index
from mmprep.shards.writer import ShardWriter, clear_shard
from mmprep.storage import Store


class FailFast(MmprepError):
    """A sample failed and the run was asked to stop at the first failure."""


class ShardJob:
    def __init__(self, index: int, samples: list[Sample], cfg: ExtractConfig, store: Store,
                 *, fail_fast: bool = False, extra_stats: dict[str, Any] | None = None):
        self.index = index
        self.samples = samples
        self.cfg = cfg
        self.store = store
        self.fail_fast = fail_fast
        self.extra_stats = extra_stats or {}
        self.results: dict[int, Outcome] = {}
        self.cursor = 0
        self.keys: list[str] = []
        self.errors: list[dict[str, Any]] = []
        self.warnings = 0
        self.timings: dict[str, float] = {}
        self.buffered_bytes = 0
        self.started = time.time()
        self._t0 = time.perf_counter()
        clear_shard(store, cfg.shards.name, index)
        self.writer = ShardWriter(store, cfg.shards.name, index, cfg.shards.max_bytes)

    @property
    def done(self) -> bool:
        return self.cursor >= len(self.samples)

    def add(self, pos: int, outcome: Outcome) -> None:
        """Record sample ``pos``'s outcome and write every sample now in order."""
        if self.fail_fast and not outcome.ok:
            err = outcome.error
            raise FailFast(f"sample {err['key']!r} failed in stage {err['stage']}: "
                           f"{err['message']} (stopped by --fail-fast, fail_fast=True)")
        self.results[pos] = outcome
        self.buffered_bytes += outcome.nbytes
        while self.cursor in self.results:
            out = self.results.pop(self.cursor)
            self.buffered_bytes -= out.nbytes
            for stage, seconds in out.timings.items():
                self.timings[stage] = self.timings.get(stage, 0.0) + seconds
            if out.ok:
                t0 = time.perf_counter()
                self.writer.write(self.samples[self.cursor].key, out.members)
                self.timings["write"] = self.timings.get("write", 0.0) + time.perf_counter() - t0
                self.keys.append(self.samples[self.cursor].key)
                self.warnings += out.warnings
            else:
                self.errors.append(out.error)
            self.cursor += 1

    def finish(self) -> dict[str, Any]:
        """Close the tar(s), then write the stats file: the shard is complete."""
        t0 = time.perf_counter()
        parts = self.writer.close()
        self.timings["write"] = self.timings.get("write", 0.0) + time.perf_counter() - t0
        samples = self.samples
        stats = shard_stats(
            name=self.cfg.shards.name, index=self.index, files=parts, inputs=len(samples),
            manifest_range=([samples[0].index, samples[-1].index + 1] if samples else [0, 0]),
            keys=self.keys, errors=self.errors, warnings=self.warnings, timings=self.timings,
            seconds=time.perf_counter() - self._t0, started=self.started,
            pipeline_hash=self.cfg.content_hash(), shard_config=to_dict(self.cfg.shards),
            extra=self.extra_stats)
        write_shard_index(self.store, self.cfg.shards.name, self.index, self.writer.tables)
        write_stats(self.store, stats)  # last: the shard is complete
        return stats

    def abort(self) -> None:
        """Drop the partial tar (the next run redoes this shard)."""
        self.writer.abort()

"""Run extract over a manifest: plan shards, skip finished ones, collect errors.

The shard is the unit of work: shard ``i`` holds manifest samples
``[i * samples_per_shard, (i + 1) * samples_per_shard)``, whatever the number of workers,
so a rerun knows exactly what is done (shards with a stats file) and what is not.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmprep import __version__
from mmprep.config import to_dict
from mmprep.errors import MmprepError
from mmprep.extract import ExtractConfig, run_shard
from mmprep.shards import atomic_write_bytes, atomic_write_json, read_stats, stats_path
from mmprep.sources import Sample

RUN_FILE = "extract.json"
ERRORS_FILE = "errors.jsonl"


@dataclass
class RunOptions:
    """Options that change how a run goes, not what it produces."""

    overwrite: bool = False
    fail_fast: bool = False
    progress: bool = True


@dataclass
class RunSummary:
    out_dir: str
    samples: int
    ok: int
    failed: int
    shards: int
    shards_done_before: int
    processed: int  # samples processed by this run (the rest were done before)
    seconds: float
    input_bytes: int
    output_bytes: int
    errors_file: str
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def clips_per_second(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["clips_per_second"] = round(self.clips_per_second, 3)
        mb = self.input_bytes / 1e6
        d["input_mb_per_second"] = round(mb / self.seconds, 3) if self.seconds else 0.0
        return d


def plan_shards(samples: list[Sample], per_shard: int) -> list[tuple[int, list[Sample]]]:
    return [
        (i // per_shard, samples[i : i + per_shard]) for i in range(0, len(samples), per_shard)
    ]


def manifest_fingerprint(samples: list[Sample]) -> str:
    h = hashlib.sha256()
    for s in samples:
        h.update(json.dumps(s.to_dict(), sort_keys=True, ensure_ascii=True).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def _run_record(samples: list[Sample], cfg: ExtractConfig) -> dict[str, Any]:
    return {
        "mmprep_version": __version__,
        "content_hash": cfg.content_hash(),
        "manifest_fingerprint": manifest_fingerprint(samples),
        "samples": len(samples),
        "config": to_dict(cfg),
    }


def check_output(out_dir: Path, record: dict[str, Any], overwrite: bool) -> None:
    """Refuse to mix two different configs or manifests in one output folder."""
    path = out_dir / RUN_FILE
    if not path.exists():
        return
    if overwrite:
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return
    changes = []
    if old.get("content_hash") != record["content_hash"]:
        changes.append("the extraction config changed")
    if old.get("config", {}).get("shards") != record["config"]["shards"]:
        changes.append("the shard layout changed")
    if old.get("manifest_fingerprint") != record["manifest_fingerprint"]:
        changes.append("the manifest changed")
    if changes:
        raise MmprepError(
            f"{out_dir} holds shards from a different run ({'; '.join(changes)}). "
            "Use --overwrite to start fresh, or another output folder."
        )


def _wipe(out_dir: Path, name: str) -> None:
    for path in out_dir.glob(f"{name}-*"):
        if path.is_file():
            path.unlink()
    for fname in (RUN_FILE, ERRORS_FILE):
        (out_dir / fname).unlink(missing_ok=True)


def write_errors(out_dir: Path) -> Path:
    """Rebuild ``errors.jsonl`` from the stats of all complete shards (one line each)."""
    lines = [
        json.dumps(err, ensure_ascii=False)
        for stats in read_stats(out_dir)
        for err in stats.get("errors", [])
    ]
    path = out_dir / ERRORS_FILE
    atomic_write_bytes(path, ("\n".join(lines) + "\n" if lines else "").encode("utf-8"))
    return path


def _input_bytes(samples: list[Sample]) -> int:
    total = 0
    for s in samples:
        try:
            total += os.path.getsize(s.source)
        except (OSError, ValueError):
            pass
    return total


def extract(
    samples: list[Sample],
    out_dir: str | Path,
    cfg: ExtractConfig,
    opts: RunOptions | None = None,
) -> RunSummary:
    """Extract ``samples`` into WebDataset shards under ``out_dir``; resumable."""
    opts = opts or RunOptions()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = _run_record(samples, cfg)
    if opts.overwrite:
        _wipe(out_dir, cfg.shards.name)
    check_output(out_dir, record, opts.overwrite)
    atomic_write_json(out_dir / RUN_FILE, record)

    plan = plan_shards(samples, cfg.shards.samples_per_shard)
    todo = [(i, chunk) for i, chunk in plan if not stats_path(out_dir, cfg.shards.name, i).exists()]
    done_before = len(plan) - len(todo)
    pending = sum(len(chunk) for _, chunk in todo)

    bar = None
    if opts.progress and pending:
        from tqdm import tqdm

        bar = tqdm(total=pending, unit="clip", desc="extract", dynamic_ncols=True)
    failed_so_far = 0

    def on_sample(ok: bool) -> None:
        nonlocal failed_so_far
        if bar is not None:
            failed_so_far += 0 if ok else 1
            bar.update(1)
            if not ok:
                bar.set_postfix(failed=failed_so_far)

    t0 = time.perf_counter()
    try:
        for index, chunk in todo:
            run_shard(index, chunk, cfg, out_dir, fail_fast=opts.fail_fast, on_sample=on_sample)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    errors_path = write_errors(out_dir)

    all_stats = [s for s in read_stats(out_dir) if s.get("name") == cfg.shards.name]
    ok = sum(s["count"]["ok"] for s in all_stats)
    failed = sum(s["count"]["failed"] for s in all_stats)
    stages: dict[str, float] = {}
    for s in all_stats:
        for k, v in s.get("timings", {}).items():
            stages[k] = round(stages.get(k, 0.0) + v, 4)
    done_samples = [s for i, chunk in todo for s in chunk]
    return RunSummary(
        out_dir=str(out_dir),
        samples=len(samples),
        ok=ok,
        failed=failed,
        shards=len(plan),
        shards_done_before=done_before,
        processed=len(done_samples),
        seconds=round(seconds, 4),
        input_bytes=_input_bytes(done_samples),
        output_bytes=sum(s.get("bytes", 0) for s in all_stats),
        errors_file=str(errors_path),
        stages=stages,
    )

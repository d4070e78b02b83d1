"""The embed run: shards -> one feature cache, resumable.

Flow: resolve the shards -> load the encoders -> check their declared preprocessing
against the first sample's metadata (``build_layout``) -> plan one task per shard,
skipping keys the cache already holds (``resume``) and reusing the part files of an
interrupted run -> ``embed_shards`` (one process per device, each writing one part file
per shard under ``OUT.parts/``) -> ``merge_features`` of the existing cache (when
resuming) and the parts, in shard order, into ``OUT`` (atomic rename) -> parts removed.

Executors call ``embed_shards`` on their share of the tasks (one process, one model load)
and ``finish`` (the merge) once all parts exist.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmprep.embed.config import EmbedConfig
from mmprep.errors import MmprepError
from mmprep.results import Result


@dataclass
class EmbedOptions:
    """How a run goes, not what it produces."""

    resume: bool = False  # add the missing keys to an existing cache
    overwrite: bool = False  # replace an existing cache and discard leftover parts
    fail_fast: bool = False  # stop at the first bad sample
    progress: bool = True
    log: Callable[[str], None] | None = None  # notes (conversions, reuse) go here


@dataclass
class EmbedSummary(Result):
    """What an embed run did."""

    out: str
    shards: int
    shards_skipped: int  # nothing missing, or a part of an interrupted run reused
    rows: int  # clips in the cache
    embedded: int  # clips embedded by this run
    captions: int  # caption rows embedded by this run
    failed: int
    seconds: float
    errors_file: str | None
    modalities: dict[str, int] = field(default_factory=dict)
    conversions: dict[str, list[str]] = field(default_factory=dict)

    @property
    def samples_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0

    @property
    def all_failed(self) -> bool:
        """Nothing could be embedded (exit code 1)."""
        return self.failed > 0 and self.embedded == 0 and self.rows == 0

    def derived(self) -> dict[str, Any]:
        return {"samples_per_second": round(self.samples_per_second, 3)}


def parts_dir_for(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".parts")


def errors_file_for(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".errors.jsonl")


def finish(out: str | Path, parts: list[Path], *, base: Path | None = None,
           attrs: dict[str, Any] | None = None) -> tuple[Path, list[dict]]:
    """Merge ``base`` (an existing cache) and ``parts`` into ``out``; write the errors
    recorded in the parts to ``OUT.errors.jsonl``; remove the parts. Returns the errors."""
    from mmprep.features import merge_features, read_layout
    from mmprep.storage import atomic_write_bytes

    out = Path(out)
    errors: list[dict] = []
    for part in parts:
        raw = read_layout(part)["attrs"].get("errors", "[]")
        errors.extend(json.loads(raw) if isinstance(raw, str) else raw)
    sources = ([base] if base is not None else []) + list(parts)
    if sources:
        merge_features(sources, out, attrs=attrs)
    err_path = errors_file_for(out)
    if errors:
        lines = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in errors)
        atomic_write_bytes(err_path, lines.encode("utf-8"))
    else:
        err_path.unlink(missing_ok=True)
    for part in parts:
        part.unlink(missing_ok=True)
    pdir = parts_dir_for(out)
    if pdir.is_dir():
        for tmp in pdir.glob("*.tmp"):  # left by a killed writer
            tmp.unlink()
        if not any(pdir.iterdir()):
            pdir.rmdir()
    return out, errors


def embed(
    shards: list[str] | str,
    out: str | Path,
    cfg: EmbedConfig,
    opts: EmbedOptions | None = None,
) -> EmbedSummary:
    """Embed extract's shards with frozen encoders into one feature cache.

    Args:
        shards: a folder of complete shards, or tar paths, globs and brace patterns.
        out: the feature cache (HDF5) to write.
        cfg: the encoders (spec strings) and how to run them.
        opts: resume, overwrite, fail-fast, progress and where notes go.

    Returns the run summary; samples that cannot be embedded are listed in
    ``OUT.errors.jsonl``.
    """
    from mmprep.device import resolve_device
    from mmprep.embed.encode import ShardsResult, embed_shards
    from mmprep.embed.plan import (
        build_layout,
        describe_changes,
        existing_signature,
        expected_signature,
        load_encoders,
        plan_tasks,
        resolve_shards,
    )
    from mmprep.features import read_keys
    from mmprep.shards.reader import probe_meta

    opts = opts or EmbedOptions()
    log = opts.log or (lambda msg: None)
    out = Path(out)
    t0 = time.perf_counter()
    shard_list = resolve_shards([shards] if isinstance(shards, str | Path) else list(shards))
    parts_dir = parts_dir_for(out)
    if opts.overwrite:
        out.unlink(missing_ok=True)
        shutil.rmtree(parts_dir, ignore_errors=True)
        errors_file_for(out).unlink(missing_ok=True)
    if out.exists() and not opts.resume:
        raise MmprepError(f"{out} exists: resume=True (--resume) adds the missing keys, "
                          "overwrite=True (--overwrite) replaces it")
    devices = cfg.device_list
    for dev in devices:
        resolve_device(dev)
    encoders = load_encoders(cfg)
    layout = build_layout(encoders, cfg, probe_meta([p for p, _ in shard_list]))
    for m, spec in layout.modalities.items():
        for note in spec.attrs["preprocessing"]["conversions"]:
            log(f"{m}: {note}")

    base = None
    done_keys: set[str] = set()
    if out.exists():
        changes = describe_changes(existing_signature(out), expected_signature(layout))
        if changes:
            raise MmprepError(f"{out} was made with other settings ({'; '.join(changes)}); "
                              "overwrite=True (--overwrite) replaces it")
        base = out
        done_keys = set(read_keys(out))
    tasks, parts, reused = plan_tasks(shard_list, layout, parts_dir, done_keys)
    if tasks:
        parts_dir.mkdir(parents=True, exist_ok=True)
    if reused:
        log(f"reusing {len(reused)} part(s) of an interrupted run from {parts_dir}")
    skipped = len(shard_list) - len(tasks)

    pending = [t.pending for t in tasks]
    total = sum(pending) if all(p is not None for p in pending) else None
    bar = None
    if opts.progress and tasks:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="sample", desc="embed", dynamic_ncols=True)
    failed = 0

    def on_batch(clips: int, errors: int) -> None:
        nonlocal failed
        failed += errors
        if bar is not None:
            bar.update(clips + errors)
            if failed:
                bar.set_postfix(failed=failed)

    try:
        if not tasks:
            result = ShardsResult()
        elif len(devices) > 1:
            from mmprep.embed.parallel import embed_on_devices

            del encoders
            result = embed_on_devices(tasks, layout, cfg, devices, on_batch=on_batch,
                                      fail_fast=opts.fail_fast)
        else:
            result = embed_shards(tasks, encoders, layout, cfg,
                                  device=resolve_device(devices[0]), on_batch=on_batch,
                                  fail_fast=opts.fail_fast)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    if parts or base is None:
        finish(out, parts, base=base, attrs=layout.attrs)
    rows = len(read_keys(out))
    err_file = errors_file_for(out)
    return EmbedSummary(
        out=str(out), shards=len(shard_list), shards_skipped=skipped, rows=rows,
        embedded=result.clips, captions=result.captions, failed=len(result.errors),
        seconds=round(seconds, 3), errors_file=str(err_file) if err_file.exists() else None,
        modalities={m: s.dim for m, s in layout.modalities.items()},
        conversions={m: s.attrs["preprocessing"]["conversions"]
                     for m, s in layout.modalities.items()},
    )

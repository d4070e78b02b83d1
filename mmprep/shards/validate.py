"""``mmprep inspect``: validate shards and report counts, fields, shapes, failures.

Checks, for an extract output folder (or one or more tar files):

- every tar is readable to its end and ends with the end-of-archive marker;
- each sample's members are adjacent, and complete as its own ``KEY.json`` describes
  (frames, ``mel.npy`` when it has audio features, ``tok.npy``/``mask.npy``, ``txt``);
- no key appears twice, in one tar or across tars;
- for a folder: every shard's stats file matches its tars (files, sizes, keys), every
  planned shard is complete, and leftovers of interrupted runs are reported.

``deep=True`` also decodes every JPEG and array.
"""

from __future__ import annotations

import glob
import io
import json
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmprep.errors import MmprepError
from mmprep.results import Result
from mmprep.shards.folder import (
    ERRORS_FILE,
    RUN_FILE,
    as_store,
    current_failures,
    leftovers,
    missing_shards,
    planned_count,
    read_record,
    read_stats,
)
from mmprep.shards.format import (
    META,
    STATS_SUFFIX,
    expected_members,
    frame_member,
    index_name,
    is_frame_member,
    split_member,
)
from mmprep.shards.writer import has_end_marker
from mmprep.storage import Store, is_remote

MAX_PROBLEMS = 50
FRAMES_FIELD = "fNNN.jpg"  # all frame members, counted as one field


@dataclass
class InspectReport(Result):
    """What ``inspect_path`` found. ``kind``: folder, tar or tars; the folder fields
    (``shards`` ... ``manifest_samples``) are None for tar files."""

    path: str
    kind: str
    samples: int
    bytes: int
    with_audio: int
    captions: int
    fields: dict[str, dict[str, Any]]
    problems: list[str]
    warnings: list[str]
    valid: bool
    shards: int | None = None
    missing_shards: list[int] = field(default_factory=list)
    failed: int | None = None
    failed_by_stage: dict[str, int] = field(default_factory=dict)
    failed_by_type: dict[str, int] = field(default_factory=dict)
    top_errors: list[tuple[str, int]] = field(default_factory=list)
    errors_file: str | None = None
    manifest_samples: int | None = None


def _describe(suffix: str, data: bytes) -> dict[str, Any]:
    if suffix.endswith(".npy"):
        arr = np.load(io.BytesIO(data), allow_pickle=False)
        return {"dtype": str(arr.dtype), "shape": list(arr.shape)}
    if suffix.endswith(".jpg"):
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            return {"dtype": "uint8", "shape": [img.height, img.width, 3]}
    return {"bytes": len(data)}


def _deep_check(suffix: str, data: bytes) -> None:
    if suffix.endswith(".npy"):
        np.load(io.BytesIO(data), allow_pickle=False)
    elif suffix.endswith(".jpg"):
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            img.load()
    elif suffix == META:
        json.loads(data)


class _Report:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.keys: dict[str, str] = {}
        self.fields: dict[str, dict[str, Any]] = {}
        self.field_counts: Counter = Counter()
        self.samples = 0
        self.bytes = 0
        self.has_audio = 0
        self.captions = 0

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)
        elif len(self.problems) == MAX_PROBLEMS:
            self.problems.append("... more problems not shown")


def _check_tar(name: str, fileobj, report: _Report, deep: bool) -> list[str]:
    """Read one tar completely; returns its keys in order."""
    keys: list[str] = []
    current: str | None = None
    members: dict[str, bytes] = {}

    def close_sample() -> None:
        if current is None:
            return
        meta_raw = members.get(META)
        if meta_raw is None:
            report.problem(f"{name}: sample {current!r} has no json member")
            return
        try:
            meta = json.loads(meta_raw)
        except (ValueError, RecursionError):
            report.problem(f"{name}: sample {current!r} has invalid JSON metadata")
            return
        if not isinstance(meta, dict):
            report.problem(f"{name}: sample {current!r} has JSON metadata that is a "
                           f"{type(meta).__name__}, not an object")
            return
        missing = sorted(expected_members(meta) - set(members))
        if missing:
            report.problem(f"{name}: sample {current!r} lacks {', '.join(missing)}")
        report.samples += 1
        report.has_audio += bool(meta.get("has_audio"))
        report.captions += int(meta.get("num_captions", 0))
        for suffix, data in members.items():
            is_frame = is_frame_member(suffix)
            report.field_counts[FRAMES_FIELD if is_frame else suffix] += 1
            if suffix not in report.fields and (not is_frame or suffix == frame_member(0)):
                try:
                    report.fields[suffix] = _describe(suffix, data)
                except Exception as exc:  # noqa: BLE001
                    report.problem(f"{name}: {current}.{suffix} cannot be read: {exc}")
            if deep:
                try:
                    _deep_check(suffix, data)
                except Exception as exc:  # noqa: BLE001
                    report.problem(f"{name}: {current}.{suffix} is corrupt: {exc}")

    try:
        with tarfile.open(fileobj=fileobj, mode="r:") as tar:
            for info in tar:
                if not info.isfile():
                    report.problem(f"{name}: unexpected non-file member {info.name!r}")
                    continue
                parts = split_member(info.name)
                if "/" in info.name or parts is None:
                    report.problem(f"{name}: member name {info.name!r} breaks the key rules")
                    continue
                key, suffix = parts
                data = tar.extractfile(info).read()
                if key != current:
                    close_sample()
                    if key in keys or key in report.keys:
                        where = report.keys.get(key, name)
                        report.problem(f"{name}: key {key!r} appears again (first in {where})")
                    current, members = key, {}
                    keys.append(key)
                    report.keys.setdefault(key, name)
                members[suffix] = data
            close_sample()
    except (tarfile.TarError, EOFError, OSError) as exc:
        report.problem(f"{name}: unreadable or truncated tar ({exc})")
        return keys
    return keys


def _inspect_tar_paths(paths: list[str], report: _Report, deep: bool) -> None:
    for path in paths:
        with open(path, "rb") as fh:
            if not has_end_marker(fh):
                report.problem(f"{path}: no end-of-archive marker (truncated?)")
            fh.seek(0)
            _check_tar(Path(path).name, fh, report, deep)
        report.bytes += Path(path).stat().st_size


def _read_index(store: Store, stats: dict[str, Any], report: _Report) -> dict | None:
    """The shard's sample tables by tar file, None when it has no (readable) index."""
    from mmprep.shards.index import parse_index

    fname = index_name(stats.get("name", ""), stats["index"])
    if not store.exists(fname):
        report.warnings.append(f"{stats.get('shard')}: no {fname} (made before the shard "
                               "index existed; the loader scans the tar instead)")
        return None
    try:
        return parse_index(store.read_bytes(fname), fname)
    except MmprepError as exc:
        report.problem(str(exc))
        return None


def _check_index(fname: str, handle, tables: dict, report: _Report) -> None:
    """The index's table for tar ``fname`` is the one the tar gives."""
    from mmprep.shards.index import scan_tar

    if fname not in tables:
        report.problem(f"{fname}: not in its shard's index file")
        return
    handle.seek(0)
    try:
        table = scan_tar(handle)
    except MmprepError:
        return  # the tar's damage is reported already
    if table != tables[fname]:
        report.problem(f"{fname}: its shard index disagrees with the tar (offsets, sizes or "
                       "keys differ); rerun extract with --overwrite")


def _inspect_folder(store: Store, report: _Report, deep: bool) -> dict[str, Any]:
    run = read_record(store)
    if run is None and store.exists(RUN_FILE):
        report.problem(f"{RUN_FILE} is unreadable or not a run record")
    for fname in store.list(f"*{STATS_SUFFIX}"):
        try:
            data = json.loads(store.read_bytes(fname))
        except (OSError, ValueError, RecursionError):
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("index"), int):
            report.problem(f"{fname} is unreadable or not a stats record (its shard counts "
                           "as not done; the next run redoes it)")
    all_stats = read_stats(store)
    if not all_stats and run is None:
        raise MmprepError(f"{store.url}: no shards (no *{STATS_SUFFIX}) and no run record")
    for stats in all_stats:
        tar_keys: list[str] = []
        tables = _read_index(store, stats, report)
        for part in stats.get("files", []):
            fname = part["file"]
            if not store.exists(fname):
                report.problem(f"{fname}: listed in {stats['shard']}{STATS_SUFFIX} but missing")
                continue
            size = store.size(fname)
            report.bytes += size
            if size != part.get("bytes"):
                report.problem(f"{fname}: {size} bytes, the stats file says {part.get('bytes')}")
            with store.open(fname) as fh:
                data = io.BytesIO(fh.read()) if store.remote else None
                handle = data if data is not None else fh
                if not has_end_marker(handle):
                    report.problem(f"{fname}: no end-of-archive marker (truncated?)")
                handle.seek(0)
                tar_keys += _check_tar(fname, handle, report, deep)
                if tables is not None:
                    _check_index(fname, handle, tables, report)
        if tar_keys != stats.get("keys", []):
            report.problem(f"{stats['shard']}: its tars hold {len(tar_keys)} samples, its stats "
                           f"file lists {len(stats.get('keys', []))}")
    unfinished = leftovers(store, all_stats)
    if unfinished:
        report.warnings.append(f"{len(unfinished)} file(s) of unfinished shards (redone by the "
                               f"next run): {', '.join(unfinished[:5])}")
    failures = current_failures(all_stats)
    missing: list[int] = []
    if run is not None:
        missing = missing_shards(run, all_stats)
        if missing:
            shards = run["config"]["shards"]
            planned = planned_count(run["samples"], shards["samples_per_shard"])
            report.problem(f"{len(missing)} of {planned} planned shards are not complete "
                           f"(first: {missing[0]}); rerun the extract command to finish")
    by_stage = Counter(str(e.get("stage")) for e in failures)
    by_type = Counter(f"{e.get('stage')}: {e.get('type')}" for e in failures)
    messages = Counter(str(e.get("message"))[:120] for e in failures)
    return {
        "shards": len(all_stats),
        "missing_shards": missing,
        "failed": len(failures),
        "failed_by_stage": dict(by_stage.most_common()),
        "failed_by_type": dict(by_type.most_common()),
        "top_errors": messages.most_common(5),
        "errors_file": store.path(ERRORS_FILE),
        "manifest_samples": run["samples"] if run else None,
    }


def inspect_path(path: str, *, deep: bool = False) -> InspectReport:
    """Inspect and validate an extract output folder (local or fsspec URL), a tar file,
    or a glob of tar files.

    Args:
        path: the folder, tar file or quoted glob.
        deep: also decode every JPEG and array (slower).

    Returns the report; ``report.valid`` is False when any problem was found.
    """
    report = _Report()
    local = Path(path)
    folder: dict[str, Any] = {}
    if not is_remote(path) and local.is_file():
        kind = "tar"
        _inspect_tar_paths([str(local)], report, deep)
    elif not is_remote(path) and any(c in path for c in "*?["):
        paths = sorted(glob.glob(path))
        if not paths:
            raise MmprepError(f"no file matches {path}")
        kind = "tars"
        _inspect_tar_paths(paths, report, deep)
    else:
        if not is_remote(path) and not local.is_dir():
            raise MmprepError(f"not found: {path}")
        kind = "folder"
        folder = _inspect_folder(as_store(path), report, deep)
    first_frame = frame_member(0)
    return InspectReport(
        path=path,
        kind=kind,
        samples=report.samples,
        bytes=report.bytes,
        with_audio=report.has_audio,
        captions=report.captions,
        fields={k: {**report.fields.get(k if k != FRAMES_FIELD else first_frame, {}),
                    "count": n}
                for k, n in sorted(report.field_counts.items())},
        problems=report.problems,
        warnings=report.warnings,
        valid=not report.problems,
        **folder,
    )


def format_report(info: InspectReport) -> str:
    lines = [f"{info['path']} ({info['kind']})"]
    if info["kind"] == "folder":
        total = info.get("manifest_samples")
        lines.append(
            f"  shards: {info['shards']} complete"
            + (f", {len(info['missing_shards'])} not done" if info["missing_shards"] else ""))
        lines.append(f"  samples: {info['samples']} ok, {info['failed']} failed"
                     + (f" (manifest: {total})" if total is not None else ""))
        for stage_type, n in info["failed_by_type"].items():
            lines.append(f"    failed in {stage_type}: {n}")
        for message, n in info["top_errors"]:
            lines.append(f"    {n} x {message}")
    else:
        lines.append(f"  samples: {info['samples']}")
    lines.append(f"  size: {info['bytes'] / 1e6:.1f} MB; with audio: {info['with_audio']}; "
                 f"captions: {info['captions']}")
    lines.append("  fields (shape of the first sample):")
    for name, desc in info["fields"].items():
        shape = desc.get("shape")
        what = f"{desc.get('dtype', '')} {tuple(shape)}" if shape is not None else (
            f"{desc.get('bytes', '?')} bytes")
        lines.append(f"    {name:<10} x{desc['count']:<7} {what}")
    for w in info["warnings"]:
        lines.append(f"  warning: {w}")
    for p in info["problems"]:
        lines.append(f"  problem: {p}")
    lines.append("  valid: yes" if info["valid"] else "  valid: NO")
    return "\n".join(lines)

"""WebDataset shard files: deterministic tar writing, completion markers, listing.

A shard ``NAME-000042`` covers a fixed slice of the manifest. Its samples go to
``NAME-000042.tar`` (and ``NAME-000042_1.tar``, ... when ``max_bytes`` splits it); each
tar is written under a temporary name and renamed when complete. The shard's stats file
``NAME-000042.stats.json`` is written last, also by rename: it is the completion marker.
A shard without it is incomplete and is redone on the next run.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmprep.storage import FsspecStore, LocalStore, Store, open_store

TMP_SUFFIX = ".tmp"
STATS_SUFFIX = ".stats.json"
# Version of the per-sample layout (members and KEY.json fields). 2: every KEY.json field
# keeps one type across samples (start/end always numbers, split/warnings strings, the
# same audio keys with or without audio); format_version and num_warnings added.
SAMPLE_FORMAT_VERSION = 2


@dataclass
class ShardConfig:
    """How samples are grouped into shard files."""

    name: str = "shard"  # file prefix: NAME-000000.tar
    samples_per_shard: int = 1000
    max_bytes: int | None = None  # split a shard's tar into parts above this size

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", self.name):
            raise ValueError(
                f"shard name {self.name!r} must start with a letter or digit and contain "
                "only letters, digits, '_' and '-'"
            )
        if self.samples_per_shard < 1:
            raise ValueError("samples_per_shard must be >= 1")
        if self.max_bytes is not None and self.max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")


def shard_stem(name: str, index: int) -> str:
    return f"{name}-{index:06d}"


def part_name(name: str, index: int, part: int) -> str:
    stem = shard_stem(name, index)
    return f"{stem}.tar" if part == 0 else f"{stem}_{part}.tar"


def stats_name(name: str, index: int) -> str:
    return f"{shard_stem(name, index)}{STATS_SUFFIX}"


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def as_store(out: str | os.PathLike | Store) -> Store:
    return out if isinstance(out, LocalStore | FsspecStore) else open_store(out)


def write_json(store: Store, name: str, obj: Any) -> None:
    """Write JSON atomically (local) or as one upload (remote)."""
    store.write_bytes(name, (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode())


class ShardWriter:
    """Writes one shard's samples into one or more tar parts, deterministically.

    Every tar member has mtime 0, uid/gid 0, mode 0644 and empty owner names, so the same
    samples always give byte-identical tars. Parts are written under a temporary name
    and committed (renamed, or uploaded) when closed.
    """

    def __init__(self, store: Store, name: str, index: int, max_bytes: int | None = None):
        self.store = store
        self.name = name
        self.index = index
        self.max_bytes = max_bytes
        self.parts: list[dict[str, Any]] = []
        self._fh = None
        self._tar: tarfile.TarFile | None = None
        self._tmp: Path | None = None
        self._part_bytes = 0
        self._part_samples = 0

    def _open_part(self) -> None:
        final = part_name(self.name, self.index, len(self.parts))
        self._tmp = self.store.staging_dir() / (final + TMP_SUFFIX)
        self._fh = open(self._tmp, "wb")  # noqa: SIM115 - closed in _close_part/abort
        self._tar = tarfile.open(  # noqa: SIM115
            fileobj=self._fh, mode="w", format=tarfile.PAX_FORMAT
        )
        self.parts.append({"file": final, "samples": 0, "bytes": 0})
        self._part_bytes = 0
        self._part_samples = 0

    def _close_part(self) -> None:
        if self._tar is None:
            return
        self._tar.close()
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self.parts[-1]["bytes"] = self._tmp.stat().st_size
        self.store.commit(self._tmp, self.parts[-1]["file"])
        self._tar = self._fh = None

    def write(self, key: str, members: Iterable[tuple[str, bytes]]) -> int:
        """Add one sample (``KEY.suffix`` members); returns its size in bytes."""
        members = list(members)
        size = sum(512 + -(-len(data) // 512) * 512 for _, data in members)
        if self._tar is None:
            self._open_part()
        elif self.max_bytes is not None and self._part_samples and (
            self._part_bytes + size > self.max_bytes
        ):
            self._close_part()
            self._open_part()
        for suffix, data in members:
            info = tarfile.TarInfo(name=f"{key}.{suffix}")
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            self._tar.addfile(info, io.BytesIO(data))
        self._part_bytes += size
        self._part_samples += 1
        self.parts[-1]["samples"] += 1
        return size

    def close(self) -> list[dict[str, Any]]:
        """Finish the last part (an empty shard still gets one, empty, tar)."""
        if self._tar is None and not self.parts:
            self._open_part()
        self._close_part()
        return self.parts

    def abort(self) -> None:
        if self._tar is not None:
            try:
                self._tar.close()
                self._fh.close()
            finally:
                self._tmp.unlink(missing_ok=True)
            self._tar = self._fh = None


def clear_shard(store: Store, name: str, index: int) -> None:
    """Remove every file of shard ``index`` (parts, temporaries, marker)."""
    stem = shard_stem(name, index)
    for fname in store.list(f"{stem}*"):
        rest = fname[len(stem):]
        if rest == "" or rest[0] in "._":
            store.remove(fname)
    staging = store.staging_dir()
    if staging != getattr(store, "root", None):
        for path in staging.glob(f"{stem}*{TMP_SUFFIX}"):
            path.unlink(missing_ok=True)


def read_stats(out: str | os.PathLike | Store) -> list[dict[str, Any]]:
    """Stats of every complete shard, in shard order."""
    store = as_store(out)
    stats = []
    for fname in store.list(f"*{STATS_SUFFIX}"):
        try:
            stats.append(json.loads(store.read_bytes(fname).decode("utf-8")))
        except (OSError, ValueError):
            continue
    stats.sort(key=lambda s: (s.get("name", ""), s.get("index", 0)))
    return stats


def shard_files(out: str | os.PathLike | Store) -> list[str]:
    """Paths (or URLs) of the tar files of all complete shards, in order, for
    ``webdataset.WebDataset(...)``."""
    store = as_store(out)
    return [store.path(p["file"]) for s in read_stats(store) for p in s.get("files", [])]

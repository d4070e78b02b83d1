"""Reading shards back: the samples of a tar, one (key, members) pair at a time."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from typing import Any

from mmprep.errors import MmprepError
from mmprep.shards.format import META, split_member


def tar_samples(path: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {suffix: bytes}) for each sample of a WebDataset tar, in order.

    Raises ``MmprepError`` if the tar is truncated or corrupt (after yielding the samples
    that were complete before the damage).
    """
    key: str | None = None
    members: dict[str, bytes] = {}
    count = 0
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                parts = split_member(info.name)
                if parts is None:
                    continue
                k, suffix = parts
                data = tar.extractfile(info).read()
                if len(data) != info.size:
                    raise EOFError("unexpected end of data")
                if k != key:
                    if key is not None:
                        count += 1
                        yield key, members
                    key, members = k, {}
                members[suffix] = data
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise MmprepError(f"{path}: truncated or corrupt tar after {count} complete "
                          f"sample(s): {exc or type(exc).__name__}") from exc
    if key is not None:
        yield key, members


def probe_meta(paths: list[str], limit: int = 1000) -> dict[str, Any]:
    """The first readable ``KEY.json`` (an object) among the samples of ``paths``:
    what the shards were made with. Damaged samples before it are passed over (they
    become error records when their turn comes)."""
    seen = 0
    for path in paths:
        try:
            for _, members in tar_samples(path):
                seen += 1
                try:
                    meta = json.loads(members[META]) if META in members else None
                except (ValueError, RecursionError):
                    meta = None
                if isinstance(meta, dict):
                    return meta
                if seen >= limit:
                    break
        except MmprepError:
            continue
        if seen >= limit:
            break
    raise MmprepError("the shards hold no readable samples (no KEY.json object found)")

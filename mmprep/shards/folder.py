"""A shard folder: what an extract output holds besides the tars, and how it is read.

- ``extract.json`` (``RUN_FILE``): the run record: config, its content hash, the
  manifest's fingerprint and sample count. It decides what the folder may hold: a run
  with another config or manifest is refused (``check_output``).
- ``NAME-NNNNNN.stats.json``: one per complete shard, written last (``write_stats``):
  its files, keys, error records, timings. Shard *i* is always the manifest slice
  ``[i * samples_per_shard, (i + 1) * samples_per_shard)``, so the record and the stats
  files say exactly which planned shards are done (``missing_shards``).
- ``errors.jsonl`` (``ERRORS_FILE``): the samples whose latest attempt failed, rebuilt
  from the stats files (``write_errors``).
"""

from __future__ import annotations

import json
import os
from typing import Any

from mmprep.errors import MmprepError
from mmprep.shards.format import STATS_SUFFIX, TMP_SUFFIX, stats_name
from mmprep.storage import FsspecStore, LocalStore, Store, open_store

RUN_FILE = "extract.json"
ERRORS_FILE = "errors.jsonl"


def as_store(out: str | os.PathLike | Store) -> Store:
    return out if isinstance(out, LocalStore | FsspecStore) else open_store(out)


def write_json(store: Store, name: str, obj: Any) -> None:
    """Write JSON atomically (local) or as one upload (remote)."""
    store.write_bytes(name, (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode())


# -- the run record -------------------------------------------------------------------

def read_record(out: str | os.PathLike | Store) -> dict[str, Any] | None:
    """The folder's run record, or None when there is none (or it cannot be read)."""
    store = as_store(out)
    if not store.exists(RUN_FILE):
        return None
    try:
        record = json.loads(store.read_bytes(RUN_FILE))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_record(out: str | os.PathLike | Store, record: dict[str, Any]) -> None:
    write_json(as_store(out), RUN_FILE, record)


def check_output(store: Store, record: dict[str, Any]) -> None:
    """Refuse to mix two different configs or manifests in one output folder."""
    old = read_record(store)
    if old is None:
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
            f"{store.url} holds shards from a different run ({'; '.join(changes)}). "
            "overwrite=True (--overwrite) starts fresh; or use another output folder."
        )


def wipe(store: Store, name: str) -> None:
    """Remove every artifact of a previous run named ``name`` (shards, record, errors)."""
    for fname in store.list(f"{name}-*"):
        store.remove(fname)
    for fname in (RUN_FILE, ERRORS_FILE):
        store.remove(fname)


# -- planned and complete shards --------------------------------------------------------

def planned_count(samples: int, per_shard: int) -> int:
    """How many shards a manifest of ``samples`` samples is planned in."""
    return -(-samples // per_shard)


def read_stats(out: str | os.PathLike | Store) -> list[dict[str, Any]]:
    """Stats of every complete shard, in shard order.

    Args:
        out: an extract output folder or fsspec URL.
    """
    store = as_store(out)
    stats = []
    for fname in store.list(f"*{STATS_SUFFIX}"):
        try:
            stats.append(json.loads(store.read_bytes(fname).decode("utf-8")))
        except (OSError, ValueError):
            continue
    stats.sort(key=lambda s: (s.get("name", ""), s.get("index", 0)))
    return stats


def write_stats(store: Store, stats: dict[str, Any]) -> None:
    """Write a shard's stats file: from now on the shard is complete."""
    write_json(store, stats_name(stats["name"], stats["index"]), stats)


def done_indices(store: Store, name: str) -> set[int]:
    """Indices of the complete shards named ``name`` (their stats file exists)."""
    prefix = f"{name}-"
    out = set()
    for fname in store.list(f"{prefix}*{STATS_SUFFIX}"):
        digits = fname[len(prefix):-len(STATS_SUFFIX)]
        if digits.isdigit():
            out.add(int(digits))
    return out


def missing_shards(record: dict[str, Any], all_stats: list[dict[str, Any]]) -> list[int]:
    """Planned shards of the run ``record`` without a stats file."""
    shards = record["config"]["shards"]
    planned = planned_count(record["samples"], shards["samples_per_shard"])
    done = {s["index"] for s in all_stats if s.get("name") == shards["name"]}
    return [i for i in range(planned) if i not in done]


def shard_files(out: str | os.PathLike | Store) -> list[str]:
    """Paths (or URLs) of the tar files of all complete shards, in order, for
    ``webdataset.WebDataset(...)``.

    Args:
        out: an extract output folder or fsspec URL.
    """
    store = as_store(out)
    return [store.path(p["file"]) for s in read_stats(store) for p in s.get("files", [])]


def leftovers(store: Store, all_stats: list[dict[str, Any]]) -> list[str]:
    """Files of unfinished shards: temporaries and tars no stats file lists."""
    referenced = {p["file"] for s in all_stats for p in s.get("files", [])}
    return [n for n in store.list("*")
            if n.endswith(TMP_SUFFIX) or (n.endswith(".tar") and n not in referenced)]


# -- failures ---------------------------------------------------------------------------

def current_failures(all_stats: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Error records of samples whose latest attempt failed (a later retry that put the
    key into a shard, or failed again, supersedes an earlier record)."""
    present = {k for s in all_stats for k in s.get("keys", [])}
    latest: dict[str, dict[str, Any]] = {}
    for stats in all_stats:  # shard order: retries come after the shards they retry
        for err in stats.get("errors", []):
            latest[err["key"]] = err
    return [e for k, e in latest.items() if k not in present]


def write_errors(out: str | os.PathLike | Store) -> str:
    """Rebuild ``errors.jsonl`` from the stats of all complete shards (one line each)."""
    store = as_store(out)
    lines = [json.dumps({k: v for k, v in e.items() if k != "sample"}, ensure_ascii=False)
             for e in current_failures(read_stats(store))]
    store.write_bytes(ERRORS_FILE, ("\n".join(lines) + "\n" if lines else "").encode("utf-8"))
    return store.path(ERRORS_FILE)


# -- the stats file ---------------------------------------------------------------------

def shard_stats(*, name: str, index: int, files: list[dict[str, Any]], inputs: int,
                manifest_range: list[int], keys: list[str], errors: list[dict[str, Any]],
                warnings: int, timings: dict[str, float], seconds: float, started: float,
                pipeline_hash: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The content of a shard's stats file (documented in the README's shard format)."""
    from mmprep import __version__
    from mmprep.shards.format import SAMPLE_FORMAT_VERSION, shard_stem

    return {
        "format_version": SAMPLE_FORMAT_VERSION,
        "name": name,
        "index": index,
        "shard": shard_stem(name, index),
        "files": files,
        "count": {"input": inputs, "ok": len(keys), "failed": len(errors)},
        "manifest_range": manifest_range,
        "keys": keys,
        "errors": errors,
        "warnings": warnings,
        "timings": {k: round(v, 4) for k, v in sorted(timings.items())},
        "seconds": round(seconds, 4),
        "bytes": sum(p["bytes"] for p in files),
        "started": started,
        "pipeline_hash": pipeline_hash,
        "mmprep_version": __version__,
        **(extra or {}),
    }

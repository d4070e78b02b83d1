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

import contextlib
import json
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

from mmprep.errors import MmprepError, UsageError
from mmprep.shards.format import STATS_SUFFIX, TMP_SUFFIX, stats_name, wids_name
from mmprep.storage import FsspecStore, LocalStore, Store, open_store

RUN_FILE = "extract.json"
ERRORS_FILE = "errors.jsonl"


def as_store(out: str | os.PathLike | Store) -> Store:
    return out if isinstance(out, LocalStore | FsspecStore) else open_store(out)


def open_output(out: str | os.PathLike | Store) -> Store:
    """The output folder, created if needed; one clear error when it cannot be one
    (empty name, a file, a dangling link, under a file, not writable, read-only)."""
    if isinstance(out, LocalStore | FsspecStore):
        store = out
    else:
        text = os.fspath(out)
        if not text.strip():
            raise UsageError("the output folder is an empty name; give a folder (-o DIR)")
        if "\x00" in text:
            raise UsageError("the output folder name contains a NUL character")
        store = open_store(text)
    if store.remote:
        try:
            store.mkdirs()
        except Exception as exc:  # noqa: BLE001 - fsspec backends raise many types
            raise MmprepError(f"cannot create {store.url}: {type(exc).__name__}: {exc}"
                              ) from exc
        return store
    root = store.root
    if root.is_symlink() and not root.exists():
        raise UsageError(f"{root} is a symbolic link to a missing target "
                         f"({os.readlink(root)}); give an existing folder or a new name")
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} exists and is not a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UsageError(f"cannot create {root}: a part of that path is a file") from None
    except OSError as exc:
        raise MmprepError(f"cannot create {root}: {exc.strerror or exc}") from exc
    if not os.access(root, os.W_OK | os.X_OK):
        raise MmprepError(f"{root} is not writable (permission denied or a read-only "
                          "file system)")
    return store


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
    """Refuse to mix two different configs or manifests in one output folder.

    The run record says what the folder holds; every stats file says it too (its config
    hash, shard layout and manifest fingerprint), so a folder whose record was deleted or
    damaged is still never mixed.
    """
    changes: list[str] = []
    old = read_record(store)
    if old is not None:
        if old.get("content_hash") != record["content_hash"]:
            changes.append("the extraction config changed")
        if old.get("config", {}).get("shards") != record["config"]["shards"]:
            changes.append("the shard layout changed")
        if old.get("manifest_fingerprint") != record["manifest_fingerprint"]:
            changes.append("the manifest changed")
    else:
        for stats in read_stats(store):
            if stats.get("pipeline_hash") not in (None, record["content_hash"]):
                changes.append(f"{stats.get('shard')} was extracted with another config")
            elif stats.get("shard_config") not in (None, record["config"]["shards"]):
                changes.append(f"{stats.get('shard')} has another shard layout")
            elif stats.get("manifest_fingerprint") not in (None,
                                                          record["manifest_fingerprint"]):
                changes.append(f"{stats.get('shard')} comes from another manifest")
            if changes:
                break
    if changes:
        raise MmprepError(
            f"{store.url} holds shards from a different run ({'; '.join(changes)}). "
            "overwrite=True (--overwrite) starts fresh; or use another output folder."
        )


def shard_names(store: Store) -> set[str]:
    """Names (file prefixes) of the shards in the folder, from its record and stats."""
    names = {s["name"] for s in read_stats(store) if isinstance(s.get("name"), str)}
    record = read_record(store)
    if record is not None:
        with contextlib.suppress(AttributeError, KeyError, TypeError):
            names.add(record["config"]["shards"]["name"])
    return names


def wipe(store: Store, name: str) -> None:
    """Remove every artifact of previous runs: the shards of every name the folder's
    record and stats files mention (and ``name``), temporaries, the record, errors."""
    names = shard_names(store) | {name}
    alternatives = "|".join(re.escape(n) for n in sorted(names))
    pattern = re.compile(rf"({alternatives})-\d{{6}}([._].*)?")
    for fname in store.list("*"):
        if pattern.fullmatch(fname) or (fname.startswith(".") and fname.endswith(TMP_SUFFIX)):
            store.remove(fname)
    for fname in (RUN_FILE, ERRORS_FILE, *(wids_name(n) for n in names)):
        store.remove(fname)


# -- planned and complete shards --------------------------------------------------------

def planned_count(samples: int, per_shard: int) -> int:
    """How many shards a manifest of ``samples`` samples is planned in."""
    return -(-samples // per_shard)


def read_stats(out: str | os.PathLike | Store) -> list[dict[str, Any]]:
    """Stats of every complete shard, in shard order (unreadable or malformed stats files
    are left out: their shard counts as not done).

    Args:
        out: an extract output folder or fsspec URL.
    """
    store = as_store(out)
    stats = []
    for fname in store.list(f"*{STATS_SUFFIX}"):
        try:
            data = json.loads(store.read_bytes(fname).decode("utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("index"), int):
            stats.append(data)
    stats.sort(key=lambda s: (s.get("name", ""), s.get("index", 0)))
    return stats


def write_stats(store: Store, stats: dict[str, Any]) -> None:
    """Write a shard's stats file: from now on the shard is complete."""
    write_json(store, stats_name(stats["name"], stats["index"]), stats)


def done_indices(store: Store, name: str) -> set[int]:
    """Indices of the complete shards named ``name``: their stats file exists and their
    tars agree with it (``verify_shard``). A shard whose tars disagree is cleared, so the
    run redoes it."""
    from mmprep.shards.writer import clear_shard

    prefix = f"{name}-"
    out = set()
    for fname in store.list(f"{prefix}*{STATS_SUFFIX}"):
        digits = fname[len(prefix):-len(STATS_SUFFIX)]
        if not digits.isdigit():
            continue
        problem = verify_shard(store, fname)
        if problem is None:
            out.add(int(digits))
        else:
            clear_shard(store, name, int(digits))
    return out


def verify_shard(store: Store, stats_file: str) -> str | None:
    """Why the shard of ``stats_file`` is not complete (None: it is): its stats file is
    unreadable, or a tar it lists is missing, has another size, or is not closed."""
    from mmprep.shards.writer import has_end_marker

    try:
        stats = json.loads(store.read_bytes(stats_file))
    except (OSError, ValueError) as exc:
        return f"{stats_file} is unreadable ({exc})"
    if not isinstance(stats, dict) or not isinstance(stats.get("files"), list):
        return f"{stats_file} is not a stats record"
    for part in stats["files"]:
        fname = part.get("file") if isinstance(part, dict) else None
        if not isinstance(fname, str) or not store.exists(fname):
            return f"{fname} is missing"
        if store.size(fname) != part.get("bytes"):
            return (f"{fname} has {store.size(fname)} bytes, its stats file says "
                    f"{part.get('bytes')}")
        with store.open(fname) as fh:
            if not has_end_marker(fh):
                return f"{fname} has no end-of-archive marker"
    return None


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
    present = {k for s in all_stats for k in s.get("keys", []) if isinstance(k, str)}
    latest: dict[str, dict[str, Any]] = {}
    for stats in all_stats:  # shard order: retries come after the shards they retry
        for err in stats.get("errors", []):
            if isinstance(err, dict) and isinstance(err.get("key"), str):
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
                pipeline_hash: str, shard_config: dict[str, Any] | None = None,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
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
        "shard_config": shard_config,
        "mmprep_version": __version__,
        **(extra or {}),
    }


# -- one run at a time ------------------------------------------------------------------

LOCK_FILE = ".mmprep.lock"


class FolderLock:
    """An advisory lock on an output folder, held for the length of a run.

    ``OUT/.mmprep.lock`` is locked with ``flock`` (the kernel releases it when the holder
    exits, however it exits, so a lock left by a killed run is never in the way) and
    holds the owner's pid, host and start time for the "in use by ..." message. A run
    takes it exclusively; the tasks of a SLURM job array share it (each owns its
    shards), which still keeps any other run out. Remote (fsspec) folders are not
    locked: run one job per remote folder at a time.
    """

    def __init__(self, store: Store, *, shared: bool = False, what: str = "mmprep extract"):
        self.store = store
        self.shared = shared
        self.what = what
        self._fd: int | None = None

    def __enter__(self) -> FolderLock:
        if self.store.remote:
            return self
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not Unix
            return self
        path = Path(self.store.path(LOCK_FILE))
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as exc:
            raise MmprepError(f"cannot create the lock file {path}: {exc.strerror or exc}"
                              ) from exc
        mode = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise MmprepError(
                f"{self.store.url} is in use by {holder}: one run per output folder at a "
                "time (SLURM array tasks of one job may share it). Wait for it to finish, "
                "or use another folder.") from None
        self._fd = fd
        info = {"pid": os.getpid(), "host": socket.gethostname(), "what": self.what,
                "started": time.strftime("%Y-%m-%d %H:%M:%S"), "shared": self.shared}
        line = (json.dumps(info) + "\n").encode()
        if not self.shared:
            os.ftruncate(fd, 0)
            os.pwrite(fd, line, 0)
        else:  # several holders: one line each (the file is emptied by the next exclusive)
            os.lseek(fd, 0, os.SEEK_END)
            os.write(fd, line)
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None


def _read_holder(fd: int) -> str:
    try:
        raw = os.pread(fd, 65536, 0).decode("utf-8", "replace")
        info = json.loads(raw.strip().splitlines()[-1])
        return (f"{info.get('what', 'mmprep')} (pid {info.get('pid')} on host "
                f"{info.get('host')}, since {info.get('started')})")
    except (OSError, ValueError, IndexError, AttributeError):
        return "another mmprep run"

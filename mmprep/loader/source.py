"""Where the loader's samples are: the tars of a source and their sample tables.

A source is an extract output folder (its complete shards, from the stats files), a
brace pattern (``shards/shard-{000000..000009}.tar``), a glob, one tar, or a list of
paths or URLs; every path may be an fsspec URL (``s3://``, ``file://``, ``memory://``).
Each tar's sample table comes from its shard's index file
(``mmprep.shards.index``) or, for tars without one, from scanning the tar once.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass

from mmprep.errors import MmprepError, UsageError
from mmprep.shards.format import INDEX_SUFFIX, TAR_SUFFIX, stem_of_part
from mmprep.shards.index import Entry, parse_index, read_sample, scan_tar
from mmprep.storage import is_remote


@dataclass
class TarTable:
    url: str
    samples: list[Entry]


def open_file(url: str, mode: str = "rb"):
    """A local file or an fsspec URL, opened for reading."""
    if not is_remote(url):
        return open(url[len("file://"):] if url.startswith("file://") else url, mode)  # noqa: SIM115
    import fsspec

    return fsspec.open(url, mode).open()


def _exists(url: str) -> bool:
    if not is_remote(url):
        return os.path.exists(url[len("file://"):] if url.startswith("file://") else url)
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    return fs.exists(path)


def _split(url: str) -> tuple[str, str]:
    head, _, name = url.rpartition("/")
    return head, name


def list_tars(source) -> list[str]:
    """The tar paths/URLs of ``source``, in order."""
    if isinstance(source, str | os.PathLike):
        text = os.fspath(source)
        if "{" in text:
            from braceexpand import braceexpand

            return list(braceexpand(text))
        if any(c in text for c in "*?["):
            import fsspec

            fs, pattern = fsspec.core.url_to_fs(text)
            found = sorted(fs.glob(pattern))
            paths = [fs.unstrip_protocol(p) for p in found] if is_remote(text) else found
            if not paths:
                raise UsageError(f"no tar file matches {text}")
            return paths
        if text.endswith(TAR_SUFFIX):
            return [text]
        return _folder_tars(text)
    if isinstance(source, list | tuple):
        if not source:
            raise UsageError("the source is an empty list of shards")
        return [t for s in source for t in list_tars(s)]
    raise UsageError(f"source must be a folder, a pattern or a list of tars, not "
                     f"{type(source).__name__}")


def _folder_tars(folder: str) -> list[str]:
    from mmprep.shards.folder import as_store, read_stats

    local = folder.removeprefix("file://")
    if not is_remote(folder) and not os.path.isdir(local):
        what = "not a folder or a .tar" if os.path.exists(local) else "not found"
        raise UsageError(f"{what}: {folder} (give an extract output folder, a tar, a "
                         "brace pattern or a list of tars)")
    store = as_store(folder)
    stats = read_stats(store)
    if stats:
        return [store.path(p["file"]) for s in stats for p in s.get("files", [])
                if isinstance(p, dict) and p.get("samples")]
    tars = [store.path(n) for n in store.list(f"*{TAR_SUFFIX}")]
    if not tars:
        raise UsageError(f"{folder} holds no shards (no *.stats.json and no *.tar)")
    return tars


def load_tables(tars: list[str]) -> list[TarTable]:
    """Each tar with its sample table (from its shard's index file, else by scanning)."""
    indexes: dict[str, dict[str, list[Entry]] | None] = {}
    out = []
    for url in tars:
        head, name = _split(url)
        index_url = f"{head}/{stem_of_part(name)}{INDEX_SUFFIX}" if head else (
            f"{stem_of_part(name)}{INDEX_SUFFIX}")
        if index_url not in indexes:
            indexes[index_url] = None
            if _exists(index_url):
                with open_file(index_url) as fh:
                    indexes[index_url] = parse_index(fh.read(), index_url)
        tables = indexes[index_url]
        if tables is not None and name in tables:
            out.append(TarTable(url, tables[name]))
            continue
        try:
            with open_file(url) as fh:
                out.append(TarTable(url, scan_tar(fh)))
        except FileNotFoundError:
            raise MmprepError(f"{url}: no such shard") from None
        except MmprepError as exc:
            raise MmprepError(f"{url}: {exc}") from exc
    return out


class Files:
    """Open tar files of one process, least recently used closed first. Handles opened
    in another process (before a fork) are never used."""

    def __init__(self, size: int = 16):
        self.size = size
        self._pid = os.getpid()
        self._open: OrderedDict[str, object] = OrderedDict()

    def read(self, url: str, entry: Entry) -> dict[str, bytes]:
        if os.getpid() != self._pid:
            self._open = OrderedDict()
            self._pid = os.getpid()
        fh = self._open.pop(url, None)
        if fh is None:
            fh = open_file(url)
            while len(self._open) >= self.size:
                self._open.popitem(last=False)[1].close()
        self._open[url] = fh
        return read_sample(fh, entry)

    def close(self) -> None:
        if os.getpid() == self._pid:
            for fh in self._open.values():
                fh.close()
        self._open = OrderedDict()

    def __getstate__(self):
        return {"size": self.size}

    def __setstate__(self, state):
        self.__init__(state["size"])

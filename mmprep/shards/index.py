"""The shard index: where each sample lies in its tar, for random access.

``NAME-000042.index.json`` (one per shard, written before its stats file, so a complete
shard always has it) holds, for each tar part, each sample's key, the byte offset of its
first tar header, its size in bytes (headers included) and, for each member, the offset
and size of its data::

    {"format_version": 1, "shard": "NAME-000042",
     "files": [{"file": "NAME-000042.tar", "bytes": 123904,
                "samples": [["KEY", 0, 41472, [["json", 1024, 2200], ["f000.jpg", ...]]]]}]}

A reader seeks to a sample's offset, reads its size in one request and slices the
members out (``read_sample``), without reading the rest of the tar. The table is made
from the finished tar as it is read back (``scan_tar``), so it agrees with the tar by
construction; ``mmprep inspect`` checks it again.

``NAME-wids.json`` lists the folder's complete shards in the descriptor format that
``wids.ShardListDataset`` opens (``wids_version`` 1, ``shardlist`` of ``url`` relative to
the descriptor, ``nsamples``, ``filesize``), so no ``widsindex`` run is needed.
"""

from __future__ import annotations

import json
import tarfile
from typing import Any

from mmprep.errors import MmprepError
from mmprep.shards.format import index_name, shard_stem, split_member, wids_name

INDEX_FORMAT_VERSION = 1

# one sample of the table: [key, offset, size, [[suffix, data_offset, data_size], ...]]
Entry = list


def scan_members(fileobj) -> list[tuple[str, int, int, int]]:
    """(name, header offset, data offset, size) of each file member of a seekable tar, in
    order; the data is skipped over, not read. Raises ``tarfile.TarError``/``OSError``
    for a tar that cannot be read to its end."""
    start = fileobj.tell()
    fast = _scan_ustar(fileobj)
    if fast is not None:
        return fast
    fileobj.seek(start)
    out = []
    with tarfile.open(fileobj=fileobj, mode="r:") as tar:
        for info in tar:
            if info.isfile():
                out.append((info.name, info.offset, info.offset_data, info.size))
    return out


def _scan_ustar(fileobj) -> list[tuple[str, int, int, int]] | None:
    """``scan_members`` for the plain tars mmprep writes (ustar headers of regular files
    with ASCII names, no pax or GNU records), reading only the headers. None for
    anything else, a damaged header or a member running past the end of the file: then
    ``tarfile`` reads the tar (and raises its own error for a damaged one)."""
    base = fileobj.tell()
    fileobj.seek(0, 2)
    end = fileobj.tell()
    out = []
    offset = base
    while True:
        fileobj.seek(offset)
        block = fileobj.read(512)
        if len(block) < 512:
            return None  # no end-of-archive marker
        if block == _ZERO_BLOCK:
            return out
        if block[156:157] not in (b"0", b"\0") or block[257:263] != b"ustar\0":
            return None
        try:
            name = _text(block[:100])
            size = int(_text(block[124:136]).strip() or "0", 8)
            stored = int(_text(block[148:156]).strip() or "0", 8)
        except (ValueError, UnicodeDecodeError):
            return None
        data = offset + 512
        if (name.endswith("/") or block[345:346] != b"\0" or data + size > end
                or stored != sum(block[:148]) + 256 + sum(block[156:])):
            return None
        out.append((name, offset, data, size))
        offset = data + -(-size // 512) * 512


def _text(field: bytes) -> str:
    """A tar header field: ASCII up to the first NUL."""
    return field.split(b"\0", 1)[0].decode("ascii")


_ZERO_BLOCK = b"\0" * 512


def sample_table(members: list[tuple[str, int, int, int]]) -> list[Entry]:
    """Group scanned members into samples (adjacent members of one key)."""
    table: list[Entry] = []
    for name, offset, data, size in members:
        parts = split_member(name)
        if parts is None:
            continue
        key, suffix = parts
        end = data + -(-size // 512) * 512
        if not table or table[-1][0] != key:
            table.append([key, offset, end - offset, []])
        entry = table[-1]
        entry[2] = end - entry[1]
        entry[3].append([suffix, data, size])
    return table


def scan_tar(fileobj) -> list[Entry]:
    """The sample table of a seekable tar (raises ``MmprepError`` when it is corrupt)."""
    try:
        return sample_table(scan_members(fileobj))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise MmprepError(f"truncated or corrupt tar: {exc}") from exc


def shard_index(name: str, index: int, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The content of a shard's index file; ``parts``: ``{"file", "bytes", "samples"}``."""
    return {"format_version": INDEX_FORMAT_VERSION, "shard": shard_stem(name, index),
            "files": parts}


def write_shard_index(store, name: str, index: int, parts: list[dict[str, Any]]) -> None:
    """Write ``NAME-NNNNNN.index.json`` (before the stats file marks the shard complete)."""
    data = json.dumps(shard_index(name, index, parts), separators=(",", ":"))
    store.write_bytes(index_name(name, index), (data + "\n").encode())


def parse_index(raw: bytes, where: str) -> dict[str, list[Entry]]:
    """{tar file name: sample table} from an index file's bytes; ``MmprepError`` naming
    the field when it is not an index."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise MmprepError(f"{where}: not a JSON shard index ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        raise MmprepError(f"{where}: not a shard index (no 'files' list)")
    out: dict[str, list[Entry]] = {}
    for part in data["files"]:
        if not (isinstance(part, dict) and isinstance(part.get("file"), str)
                and isinstance(part.get("samples"), list)):
            raise MmprepError(f"{where}: a 'files' entry lacks 'file' or 'samples'")
        for entry in part["samples"]:
            if not (isinstance(entry, list) and len(entry) == 4 and isinstance(entry[0], str)
                    and isinstance(entry[1], int) and isinstance(entry[2], int)
                    and isinstance(entry[3], list)):
                raise MmprepError(f"{where}: a 'samples' entry of {part['file']} is not "
                                  "[key, offset, size, members]")
        out[part["file"]] = part["samples"]
    return out


def read_sample(fileobj, entry: Entry) -> dict[str, bytes]:
    """{suffix: bytes} of one sample, read with one seek and one read. Raises
    ``MmprepError`` when the tar ends before the sample does."""
    key, offset, size, members = entry
    fileobj.seek(offset)
    data = fileobj.read(size)
    if len(data) != size:
        raise MmprepError(f"sample {key!r}: the tar ends {size - len(data)} bytes early "
                          "(truncated)")
    return {suffix: data[start - offset:start - offset + n] for suffix, start, n in members}


def wids_descriptor(stats: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The ``wids`` descriptor of the complete shards named ``name``."""
    shardlist = [{"url": p["file"], "nsamples": int(p.get("samples", 0)),
                  "filesize": int(p.get("bytes", 0))}
                 for s in stats if s.get("name") == name for p in s.get("files", [])
                 if isinstance(p, dict) and p.get("samples")]
    return {"__kind__": "wids-shard-index-v1", "wids_version": 1, "name": name,
            "shardlist": shardlist}


def write_wids_index(store, name: str, stats: list[dict[str, Any]]) -> str:
    """Rebuild ``NAME-wids.json`` from the complete shards' ``stats``
    (``mmprep.shards.folder.read_stats``)."""
    data = json.dumps(wids_descriptor(stats, name), indent=1) + "\n"
    store.write_bytes(wids_name(name), data.encode())
    return store.path(wids_name(name))

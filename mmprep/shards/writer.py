"""Writing one shard: deterministic tar parts, committed under their final name when
complete (the stats file, written after them by ``mmprep.shards.folder``, marks the
shard complete)."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from mmprep.errors import MmprepError
from mmprep.shards.format import TMP_SUFFIX, part_name, shard_stem
from mmprep.storage import Store

_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE
# mode 0644, uid 0, gid 0 | mtime 0, checksum placeholder, regular file, no link name, ustar
_OWNER = b"0000644\0" b"0000000\0" b"0000000\0"
_TAIL = b"00000000000\0" + b" " * 8 + tarfile.REGTYPE + b"\0" * 100 + tarfile.POSIX_MAGIC


def member_header(name: str, size: int) -> bytes:
    """The header ``tarfile`` writes in PAX format for a regular member with mtime 0,
    mode 0644, uid/gid 0 and empty owner names, built directly for short ASCII names
    (``tarfile`` takes about ten times as long); other names go through ``tarfile``
    (a pax record first). Equal to tarfile's bytes (tested)."""
    if name.isascii() and len(name) <= 100 and size < 8 ** 11:
        head = (name.encode("ascii").ljust(100, b"\0") + _OWNER + b"%011o\0" % size
                + _TAIL).ljust(_BLOCK, b"\0")
        return head[:148] + b"%06o\0 " % sum(head) + head[156:]
    info = tarfile.TarInfo(name=name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")


def tar_file_size(member_bytes: int) -> int:
    """Size of a tar file whose members take ``member_bytes``: plus the end-of-archive
    marker (two zero blocks), rounded up to whole 10 KiB records (as ``tarfile``)."""
    end = member_bytes + 2 * _BLOCK
    return end + -end % _RECORD


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


class ShardWriter:
    """Writes one shard's samples into one or more tar parts, deterministically.

    Every tar member has mtime 0, uid/gid 0, mode 0644 and empty owner names, so the same
    samples always give byte-identical tars. Parts are written under a temporary name
    and committed (renamed, or uploaded) when closed. The bytes are those of
    ``tarfile`` in PAX format (headers from ``member_header``, data padded to 512-byte
    blocks, two zero blocks and padding to a 10 KiB record at the end).
    """

    def __init__(self, store: Store, name: str, index: int, max_bytes: int | None = None):
        self.store = store
        self.name = name
        self.index = index
        self.max_bytes = max_bytes
        self.parts: list[dict[str, Any]] = []
        self._fh = None  # the open part
        self._tmp: Path | None = None
        self._part_bytes = 0
        self._part_samples = 0
        self._part_members: list[str] = []  # member names written to the open part
        self.tables: list[dict[str, Any]] = []  # per part: file, bytes, sample table

    def _open_part(self) -> None:
        final = part_name(self.name, self.index, len(self.parts))
        self._tmp = self.store.temp_for(final)  # unique to this writer, created exclusively
        self._fh = open(self._tmp, "r+b")  # noqa: SIM115 - closed in _close_part/abort
        self.parts.append({"file": final, "samples": 0, "bytes": 0})
        self._part_bytes = 0
        self._part_samples = 0
        self._part_members = []

    def _close_part(self) -> None:
        if self._fh is None:
            return
        end = self._fh.tell()  # the end-of-archive marker, then padding to a whole record
        self._fh.write(b"\0" * (tar_file_size(end) - end))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._fh = None
        table = verify_tar(self._tmp, self._part_members)  # before it gets its final name
        self.parts[-1]["bytes"] = self._tmp.stat().st_size
        self.tables.append({"file": self.parts[-1]["file"], "bytes": self.parts[-1]["bytes"],
                           "samples": table})
        self.store.commit(self._tmp, self.parts[-1]["file"])

    def write(self, key: str, members: Iterable[tuple[str, bytes]]) -> int:
        """Add one sample (``KEY.suffix`` members); returns its size in bytes (headers,
        pax records and padding included). With ``max_bytes``, a part's file (end of
        archive included) stays within it unless its one sample alone is larger."""
        members = [(f"{key}.{suffix}", data) for suffix, data in members]
        headers = [member_header(name, len(data)) for name, data in members]
        size = sum(len(h) + len(d) + -len(d) % _BLOCK for h, (_, d) in zip(headers, members))
        if self._fh is None:
            self._open_part()
        elif self.max_bytes is not None and self._part_samples and (
            tar_file_size(self._part_bytes + size) > self.max_bytes
        ):
            self._close_part()
            self._open_part()
        for header, (name, data) in zip(headers, members):
            pad = -len(data) % _BLOCK
            self._fh.write(header)
            self._fh.write(data)
            if pad:
                self._fh.write(b"\0" * pad)
            self._part_members.append(name)
        self._part_bytes += size
        self._part_samples += 1
        self.parts[-1]["samples"] += 1
        return size

    def close(self) -> list[dict[str, Any]]:
        """Finish the last part (an empty shard still gets one, empty, tar)."""
        if self._fh is None and not self.parts:
            self._open_part()
        self._close_part()
        return self.parts

    def abort(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()
            finally:
                self._tmp.unlink(missing_ok=True)
            self._fh = None


def has_end_marker(fileobj) -> bool:
    """The tar ends with its end-of-archive marker (two zero blocks): it was closed."""
    fileobj.seek(0, io.SEEK_END)
    size = fileobj.tell()
    if size < 1024:
        return False
    fileobj.seek(size - 1024)
    return fileobj.read(1024) == b"\0" * 1024


def verify_tar(path: Path, members: list[str]) -> list[list]:
    """Check a finished tar holds exactly ``members``, in order, and is closed; raise
    ``MmprepError`` otherwise (the shard is then not marked complete). Returns its
    sample table (``mmprep.shards.index``), made from what was read back."""
    from mmprep.shards.index import sample_table, scan_members

    try:
        with open(path, "rb") as fh:
            closed = has_end_marker(fh)
            fh.seek(0)
            scanned = scan_members(fh)
            found = [m[0] for m in scanned]
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise MmprepError(f"{path.name}: the tar just written cannot be read back: {exc}"
                          ) from exc
    if not closed or found != members:
        raise MmprepError(
            f"{path.name}: the tar just written does not hold what was written "
            f"({len(found)} members read back, {len(members)} written"
            f"{'' if closed else ', no end-of-archive marker'}); the shard is not marked "
            "complete and will be redone")
    return sample_table(scanned)


def clear_shard(store: Store, name: str, index: int) -> None:
    """Remove every file of shard ``index`` (parts, temporaries, marker)."""
    stem = shard_stem(name, index)
    for fname in store.list(f"{stem}*"):
        rest = fname[len(stem):]
        if rest == "" or rest[0] in "._":
            store.remove(fname)
    for fname in store.list(f".{stem}*{TMP_SUFFIX}"):  # left by a killed writer
        store.remove(fname)
    staging = store.staging_dir()
    if staging != getattr(store, "root", None):
        for path in staging.glob(f".{stem}*{TMP_SUFFIX}"):
            path.unlink(missing_ok=True)

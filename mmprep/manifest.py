"""Manifests (CSV, TSV, JSONL, JSON, Parquet, path lists, folders, stdin) to ``Sample``
records.

Every row becomes a sample or, when the row itself is unusable (no media path, bad
start/end, a key that names another video), a sample carrying an ``error`` so it ends up
as an error record instead of vanishing. Rows naming the same clip (same key, or same
media path and cut when there is no key column) are merged: their captions are joined,
which is how one-row-per-caption layouts such as MSR-VTT's are read.

A manifest that cannot be read as one at all (binary data, invalid JSON, a broken gzip
file, a header and no rows) is a ``UsageError`` (exit code 2) before any work starts.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import re
import sys
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmprep.errors import UsageError

VIDEO_COLUMNS = ("video", "path", "file", "filepath", "video_path", "audio", "media")
CAPTION_COLUMNS = ("caption", "captions", "text", "sentence", "sentences")
KEY_COLUMNS = ("key",)
MEDIA_EXTENSIONS = (
    ".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi", ".flv", ".wmv", ".mpg", ".mpeg",
    ".ts", ".mts", ".3gp", ".ogv", ".gif",
    ".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac",
)
FORMATS = ("csv", "tsv", "jsonl", "json", "parquet", "txt", "folder")


@dataclass
class Sample:
    """One clip to process. ``index`` is its position in the manifest (shard assignment)."""

    index: int
    key: str
    source: str
    captions: list[str] = field(default_factory=list)
    start: float | None = None
    end: float | None = None
    split: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    source_key: str = ""
    lines: list[int] = field(default_factory=list)
    error: str | None = None  # a manifest-level problem: becomes an error record

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "key": self.key, "source": self.source,
            "captions": self.captions, "start": self.start, "end": self.end,
            "split": self.split, "meta": self.meta, "source_key": self.source_key,
            "lines": self.lines, "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sample:
        """A sample from its ``to_dict`` form, checked: it may come from a file on disk
        (an error record), so the key must follow the key rules and the fields their
        types. Raises ``ValueError`` naming the problem."""
        if not isinstance(data, dict):
            raise ValueError(f"a sample must be a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - _SAMPLE_FIELDS)
        if unknown:
            raise ValueError(f"unknown sample field(s) {', '.join(unknown)}")
        key = data.get("key")
        if not isinstance(key, str) or not key or sanitize_key(key) != key:
            raise ValueError(f"sample key {key!r} breaks the key rules")
        if not isinstance(data.get("source"), str) or "\x00" in data["source"]:
            raise ValueError(f"sample {key!r}: source must be a path without NUL characters")
        if not isinstance(data.get("index"), int):
            raise ValueError(f"sample {key!r}: index must be an integer")
        captions = data.get("captions", [])
        if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
            raise ValueError(f"sample {key!r}: captions must be a list of strings")
        for name in ("start", "end"):
            value = data.get(name)
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, int | float)):
                raise ValueError(f"sample {key!r}: {name} must be a number of seconds")
        return cls(**data)


_SAMPLE_FIELDS = {f for f in Sample.__dataclass_fields__}


@dataclass
class Columns:
    """Which manifest columns hold the media path, captions and key (None: aliases)."""

    video: str | None = None
    caption: str | None = None
    key: str | None = None


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def sanitize_key(text: str, max_len: int = 120) -> str:
    """A safe file-name stem: ASCII letters, digits, ``_`` and ``-`` only.

    No ``/``, no dots (WebDataset splits member names at the first dot), no control
    characters, no leading dot or dash. Long keys keep a hash of the original.
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    key = _UNSAFE.sub("_", ascii_text).strip("_").lstrip("-")
    if not key:
        key = "sample_" + hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    if len(key) > max_len:
        digest = hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]
        key = key[: max_len - 9] + "_" + digest
    return key


def is_url(text: str) -> bool:
    return "://" in text[:16]


def _read_bytes(source: str | Path) -> bytes:
    if str(source) == "-":
        return sys.stdin.buffer.read()
    if is_url(str(source)):
        try:
            import fsspec

            with fsspec.open(str(source), "rb") as fh:
                return fh.read()
        except (ImportError, ValueError, OSError) as exc:
            raise UsageError(f"cannot read manifest {source}: {exc}") from exc
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read manifest {source}: {exc.strerror or exc}") from exc


def _maybe_gunzip(data: bytes, name: str) -> bytes:
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise UsageError(f"manifest {name} is a broken gzip file: {exc}") from exc
    return data


def looks_like_media_path(text: str) -> bool:
    """A URL, or a path whose extension is a media file's (``clip.mp4``, ``a/b.wav``)."""
    text = text.strip()
    if not text or "\n" in text:
        return False
    if is_url(text):
        return True
    return Path(text).suffix.lower() in MEDIA_EXTENSIONS


def _is_header(line: str) -> bool:
    """Does this first line name a known column (video/path/caption/...)?"""
    names = {c.strip().strip('"').lower() for c in re.split(r"[,\t]", line)}
    return bool(names & {*VIDEO_COLUMNS, *CAPTION_COLUMNS, *KEY_COLUMNS})


def detect_format(name: str, text: str) -> str:
    lower = name.lower().removesuffix(".gz")
    for ext, fmt in ((".csv", "csv"), (".tsv", "tsv"), (".jsonl", "jsonl"), (".ndjson", "jsonl"),
                     (".json", "json"), (".parquet", "parquet"), (".txt", "txt"),
                     (".lst", "txt")):
        if lower.endswith(ext):
            return fmt
    head = text.lstrip()[:1]
    if head == "{":
        return "jsonl"
    if head == "[":
        return "json"
    first = next((line for line in text.split("\n") if line.strip()), "")
    if not _is_header(first) and looks_like_media_path(first):
        return "txt"  # one path or URL per line, like `find clips -name '*.mp4'` prints
    return "tsv" if "\t" in first else "csv"


_TEXT_CONTROL = set(range(32)) - {9, 10, 12, 13}


def check_text(data: bytes, name: str) -> None:
    """Refuse binary data (a video, an image, a compressed file) given as a manifest."""
    head = data[:65536]
    if b"\x00" in head:
        raise UsageError(
            f"manifest {name} is not a text file (NUL byte at offset {head.index(0)}); "
            f"expected one of: {', '.join(FORMATS)}")
    text = head.decode("utf-8", "replace")
    bad = sum(1 for c in text if c == "\ufffd" or ord(c) in _TEXT_CONTROL)
    if text and bad > 0.1 * len(text):
        raise UsageError(
            f"manifest {name} is not a text file ({bad} of the first {len(text)} characters "
            f"are not text); expected one of: {', '.join(FORMATS)}")


def _decode(data: bytes) -> str:
    text = data.decode("utf-8", "surrogateescape")
    return text[1:] if text.startswith("\ufeff") else text


_CSV_FIELD_LIMIT = 64 * 2**20  # characters; the csv module's default is 131,072


def _parse_line(text: str, delimiter: str) -> list[str]:
    return next(csv.reader([text], delimiter=delimiter), [])


def _records(text: str, delimiter: str, header_width: int | None = None
             ) -> Iterator[tuple[int, list[str] | str]]:
    """(first line, fields) of each CSV record, or (line, problem) for a record that is
    broken: a quote that is never closed, or a quoted field that runs over following
    lines which look like rows of their own (a stray quote would otherwise swallow them).
    """
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        start = i
        record = lines[i].rstrip("\r")
        i += 1
        while record.count('"') % 2 and i < len(lines):  # a quoted field goes on
            record += "\n" + lines[i].rstrip("\r")
            i += 1
        width = header_width
        stray = record.count('"') % 2 == 1
        if not stray and i - start > 1 and width and width > 1:
            stray = any(len(_parse_line(ln.rstrip("\r"), delimiter)) == width
                        for ln in lines[start + 1:i] if ln.strip())
        if stray:
            i = start + 1  # the lines after it are read as rows again
            yield start + 1, ("unbalanced quote: a quoted field opened on this line is "
                              "never closed, or runs over lines that look like rows; "
                              "close it, or double the quote character (\"\")")
            continue
        if not record.strip():
            continue
        try:
            fields = _parse_line(record, delimiter)
        except csv.Error as exc:
            yield start + 1, f"unreadable CSV record: {exc}"
            continue
        yield start + 1, fields
        if header_width is None:
            header_width = len(fields)


def _rows_delimited(text: str, delimiter: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, _CSV_FIELD_LIMIT))
    try:
        header = None
        for line, row in _records(text, delimiter):
            if isinstance(row, str):
                if header is None:
                    raise UsageError(f"manifest header (line {line}): {row}")
                yield line, row
                continue
            if not row or all(not c.strip() for c in row):
                continue
            if header is None:
                header = [h.strip() for h in row]
                continue
            if len(row) > len(header):
                yield line, f"row has {len(row)} fields, the header has {len(header)}"
                continue
            yield line, {h: v for h, v in zip(header, row)}
    finally:
        csv.field_size_limit(limit)


def _rows_txt(text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """One media path or URL per line; the key comes from the file name."""
    for i, line in enumerate(text.split("\n"), start=1):
        path = line.strip()
        if path:
            yield i, {"video": path}


def _rows_jsonl(text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for i, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield i, f"invalid JSON: {exc.msg} at column {exc.colno}"
            continue
        except RecursionError:
            yield i, "invalid JSON: nested too deeply"
            continue
        if isinstance(obj, dict):
            yield i, obj
        else:
            yield i, f"expected a JSON object, got {type(obj).__name__}"


def _rows_json(text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"manifest is not valid JSON: {exc}") from exc
    except RecursionError:
        raise UsageError("manifest is not usable JSON: nested too deeply") from None
    if isinstance(data, dict):
        # {"key": {...}} or {"key": "caption"} mappings.
        data = [
            ({"key": k, **v} if isinstance(v, dict) else {"key": k, "caption": v})
            for k, v in data.items()
        ]
    if not isinstance(data, list):
        raise UsageError("a JSON manifest must be a list of objects or a mapping")
    for i, obj in enumerate(data, start=1):
        yield i, obj if isinstance(obj, dict) else f"item {i} is not an object"


def _rows_parquet(data: bytes) -> Iterator[tuple[int, dict[str, Any] | str]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise UsageError(
            "reading Parquet manifests needs pyarrow: pip install 'mmprep[parquet]'"
        ) from exc
    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a bad file
        raise UsageError(f"cannot read the Parquet manifest: {type(exc).__name__}: {exc}") from exc
    yield from enumerate(table.to_pylist(), start=1)


def _rows_folder(folder: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    files = sorted(
        p for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in MEDIA_EXTENSIONS and not p.name.startswith(".")
    )
    if not files:
        raise UsageError(f"no media files ({', '.join(MEDIA_EXTENSIONS[:6])}, ...) under {folder}")
    for i, path in enumerate(files, start=1):
        rel = path.relative_to(folder)
        row: dict[str, Any] = {"video": str(rel), "key": str(rel.with_suffix(""))}
        sidecar = path.with_suffix(".txt")
        if sidecar.is_file():
            text = _decode(sidecar.read_bytes())
            row["caption"] = [c for c in text.splitlines() if c.strip()]
        yield i, row


def json_safe(value: Any) -> Any:
    """Manifest values as JSON data (Parquet gives timestamps, bytes, decimals...): kept
    when JSON has them, else their text (bytes as hex)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _pick(row: dict[str, Any], explicit: str | None, aliases: tuple[str, ...]) -> str | None:
    if explicit is not None:
        return explicit if explicit in row else None
    return next((a for a in aliases if a in row), None)


def _captions(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v is not None]
    text = str(value)
    if text.lstrip().startswith("["):
        try:
            parsed = json.loads(text)
            if isinstance(parsed, list):
                return [str(v) for v in parsed if v is not None]
        except json.JSONDecodeError:
            pass
    return [text]


def _time(value: Any, name: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not a number of seconds") from None
    if t != t or t < 0:
        raise ValueError(f"{name}={value!r} must be a non-negative number of seconds")
    return t


def _ms(t: float) -> str:
    return str(int(round(t * 1000)))


def read_manifest(
    source: str | Path,
    *,
    fmt: str | None = None,
    root: str | Path | None = None,
    columns: Columns | None = None,
) -> list[Sample]:
    """Read a manifest into samples: every row becomes a sample or an error sample.

    Args:
        source: a CSV/TSV/JSONL/JSON/Parquet file (optionally gzipped), a path list, a
            folder of media with ``.txt`` caption sidecars, an fsspec URL, or ``-``.
        fmt: one of ``FORMATS``; default: from the name, else sniffed from the content.
        root: folder relative media paths are resolved against (default: the
            manifest's folder, or the current folder for stdin).
        columns: which columns hold the media path, captions and key (default: aliases).

    Raises ``UsageError`` when the manifest cannot be read as one or holds no samples.
    """
    columns = columns or Columns()
    name = str(source)
    if fmt not in (None, *FORMATS):
        raise UsageError(f"unknown manifest format {fmt!r} (allowed: {', '.join(FORMATS)})")
    if name != "-" and (fmt == "folder" or (fmt is None and Path(name).is_dir())):
        folder = Path(name)
        base = Path(root).absolute() if root is not None else folder.absolute()
        rows = _rows_folder(folder)
    else:
        if root is not None:
            base = root if is_url(str(root)) else Path(root).absolute()
        elif is_url(name):
            base = name.rsplit("/", 1)[0]
        else:
            base = Path.cwd() if name == "-" else Path(name).absolute().parent
        data = _maybe_gunzip(_read_bytes(name), name)
        if fmt == "parquet" or (fmt is None and (name.lower().endswith(".parquet")
                                                  or data[:4] == b"PAR1")):
            rows = _rows_parquet(data)
        else:
            check_text(data, name)
            text = _decode(data)
            kind = fmt or detect_format(name, text)
            if kind == "parquet":
                rows = _rows_parquet(data)
            elif kind in ("csv", "tsv"):
                rows = _rows_delimited(text, "\t" if kind == "tsv" else ",")
            elif kind == "jsonl":
                rows = _rows_jsonl(text)
            elif kind == "txt":
                rows = _rows_txt(text)
            else:
                rows = _rows_json(text)
    samples = build_samples(rows, base=base, columns=columns)
    if not samples:
        where = "standard input" if name == "-" else name
        raise UsageError(f"manifest {where} holds no samples (empty, or a header with no rows)")
    return samples


def _given_keys(rows: list, columns: Columns) -> set[str]:
    """Keys the manifest gives explicitly that are already safe: they are kept as given,
    and cleaned or generated keys that would collide with them get the suffix instead."""
    given = set()
    for _, row in rows:
        if isinstance(row, dict):
            kcol = _pick(row, columns.key, KEY_COLUMNS)
            value = row.get(kcol) if kcol else None
            if value not in (None, "") and sanitize_key(str(value)) == str(value):
                given.add(str(value))
    return given


def build_samples(rows, *, base: Path | str, columns: Columns) -> list[Sample]:
    samples: list[Sample] = []
    by_identity: dict[tuple, Sample] = {}
    rows = list(rows)
    reserved = _given_keys(rows, columns)
    used: set[str] = set()
    for line, row in rows:
        if isinstance(row, str):
            samples.append(_bad(len(samples), line, row, used, reserved))
            continue
        vcol = _pick(row, columns.video, VIDEO_COLUMNS)
        ccol = _pick(row, columns.caption, CAPTION_COLUMNS)
        kcol = _pick(row, columns.key, KEY_COLUMNS)
        media = row.get(vcol) if vcol else None
        if media is None or not str(media).strip():
            wanted = columns.video or "video"
            samples.append(_bad(len(samples), line, f"no media path (column {wanted!r})",
                                    used, reserved))
            continue
        media = str(media).strip()
        if "\x00" in media:
            samples.append(_bad(len(samples), line, "media path contains a NUL character",
                                used, reserved))
            continue
        if not is_url(media) and not os.path.isabs(media):
            media = f"{base.rstrip('/')}/{media}" if isinstance(base, str) else str(base / media)
        try:
            start = _time(row.get("start"), "start")
            end = _time(row.get("end"), "end")
            if start is not None and end is not None and end <= start:
                raise ValueError(f"end ({end}) must be after start ({start})")
        except ValueError as exc:
            samples.append(_bad(len(samples), line, str(exc), used, reserved))
            continue
        captions = _captions(row.get(ccol)) if ccol else []
        explicit = row.get(kcol) if kcol else None
        identity = (media, start, end)
        group_key = ("key", str(explicit)) if explicit not in (None, "") else ("media", identity)
        if group_key in by_identity:
            first = by_identity[group_key]
            if (first.source, first.start, first.end) != identity:
                msg = (f"duplicate key {str(explicit)!r}: line {first.lines[0]} already uses it "
                       "for another clip")
                samples.append(_bad(len(samples), line, msg, used, reserved))
                continue
            first.captions.extend(captions)
            first.lines.append(line)
            continue
        if explicit not in (None, ""):
            source_key = str(explicit)
        else:
            stem = Path(media.split("?")[0]).stem if is_url(media) else Path(media).stem
            source_key = stem if start is None and end is None else (
                f"{stem}_{_ms(start or 0)}-{_ms(end) if end is not None else 'end'}")
        known = {vcol, ccol, kcol, "start", "end", "split"}
        meta = {str(k): json_safe(v) for k, v in row.items() if k not in known and k}
        split = row.get("split")
        if explicit not in (None, "") and source_key in reserved and source_key not in used:
            key = source_key  # a safe key given by the manifest: kept as given
            used.add(key)
        else:
            key = _unique(sanitize_key(source_key), used, reserved)
        sample = Sample(
            index=len(samples),
            key=key,
            source=media,
            captions=captions,
            start=start,
            end=end,
            split=str(split) if split not in (None, "") else None,
            meta=meta,
            source_key=source_key,
            lines=[line],
        )
        by_identity[group_key] = sample
        samples.append(sample)
    return samples


def manifest_fingerprint(samples: list[Sample]) -> str:
    """A short hash of the samples (what the manifest says), recorded by each stage that
    reads it so a changed manifest is detected."""
    h = hashlib.sha256()
    for s in samples:
        h.update(json.dumps(s.to_dict(), sort_keys=True, ensure_ascii=True).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def _unique(key: str, used: set[str], reserved: set[str] = frozenset()) -> str:
    candidate, n = key, 1
    while candidate in used or candidate in reserved:
        candidate = f"{key}-{n}"
        n += 1
    used.add(candidate)
    return candidate


def _bad(index: int, line: int, message: str, used: set[str],
         reserved: set[str] = frozenset()) -> Sample:
    key = _unique(f"line_{line}", used, reserved)
    return Sample(index=index, key=key, source="", lines=[line], error=f"line {line}: {message}",
                  source_key=key)

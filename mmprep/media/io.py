"""Opening media files with PyAV, turning every failure into a clear ``SampleError``."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any

from mmprep.errors import SampleError


def describe_open_error(source: Any, exc: BaseException) -> str:
    name = os.fspath(source) if isinstance(source, str | os.PathLike) else "input"
    if isinstance(exc, FileNotFoundError):
        return f"file not found: {name}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {name}"
    if isinstance(exc, IsADirectoryError):
        return f"is a directory, not a media file: {name}"
    if isinstance(source, str | os.PathLike):
        try:
            if os.path.getsize(source) == 0:
                return f"empty file (0 bytes): {name}"
        except OSError:
            pass
    text = str(exc).strip() or type(exc).__name__
    return f"cannot open as media ({text})"


def open_url(url: str):
    """A binary file object for an fsspec URL, or None when fsspec cannot open it (then
    FFmpeg gets the URL itself: http, rtmp, ...)."""
    try:
        import fsspec

        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError):
        return None
    return fs.open(path, "rb")


_HW_FAILED: set[str] = set()  # hardware device types that could not be opened here


def _open_hw(av, source, kwargs: dict[str, Any], hwaccel: str | None):
    """``av.open`` with hardware decoding on ``hwaccel`` (e.g. "cuda": NVDEC) when the
    device opens, else plain (CPU) decoding; a device that failed once is not retried in
    this process, so a machine without a GPU pays nothing after the first clip."""
    if hwaccel and hwaccel not in _HW_FAILED:
        pos = source.tell() if hasattr(source, "tell") else None
        try:
            from av.codec.hwaccel import HWAccel  # PyAV >= 14

            return av.open(source, hwaccel=HWAccel(device_type=hwaccel,
                                                   allow_software_fallback=True), **kwargs)
        except Exception:  # noqa: BLE001 - no device, no driver: decode on the CPU
            _HW_FAILED.add(hwaccel)
            if pos is not None:
                source.seek(pos)
    return av.open(source, **kwargs)


@contextmanager
def open_media(source: Any, *, stage: str, timeout: float | None = None,
               hwaccel: str | None = None):
    """``av.open`` for reading (paths, fsspec URLs, file objects); errors become
    ``SampleError(stage, reason)``. ``hwaccel`` (e.g. "cuda") asks for hardware
    decoding, with CPU decoding when the device is missing."""
    import av

    kwargs: dict[str, Any] = {"mode": "r", "metadata_errors": "replace"}
    if timeout:
        kwargs["timeout"] = timeout
    handle = None
    try:
        if isinstance(source, str) and "://" in source[:16]:
            handle = open_url(source)
        container = _open_hw(av, handle if handle is not None else source, kwargs, hwaccel)
    except (OSError, av.error.FFmpegError, ValueError, UnicodeError) as exc:
        if handle is not None:
            handle.close()
        raise SampleError(stage, describe_open_error(source, exc)) from exc
    try:
        yield container
    finally:
        container.close()
        if handle is not None:
            handle.close()


# Demuxers whose seek to a stream's first packet is exact (a sample table or cues), so a
# container the video stage used can be rewound for the audio stage: MP4/MOV, Matroska.
_REWINDABLE = ("mov", "matroska")


def is_local_file(source: Any) -> bool:
    """``source`` names a local file (not a URL, not a file object)."""
    if not isinstance(source, str | os.PathLike):
        return False
    path = os.fspath(source)
    return isinstance(path, str) and "://" not in path[:16] and os.path.isfile(path)


def rewind_for(container, stream) -> bool:
    """Seek ``container`` back to the first packet of ``stream``, so that decoding it
    gives what a freshly opened container gives (mov restores its priming-sample skip on
    a seek to the first packet). False, and nothing else done, where the demuxer is not
    known to seek exactly, the first packet's time is unknown (PyAV < 14) or the seek
    fails: then the caller opens the file again."""
    if container.format.name.split(",")[0] not in _REWINDABLE:
        return False
    if getattr(stream, "index_entries", None) is None:  # PyAV >= 14 has them
        return False  # the first packet's time is unknown
    return seek_to_first_packet(container, stream)


def first_packet_times(container, stream) -> tuple[int, ...]:
    """Timestamps (in ``stream``'s time base) to seek to, in order, to land on the first
    packet of ``stream``. With an index (a sample table, cues): the first entry, not the
    start time (MP4 stamps AAC's priming packet before the start, e.g. -1024, and a
    decoder that skipped it would lose its overlap). Matroska without entries: the start
    (its cues load on that seek). Elsewhere (MPEG-TS lands on the first packet *after* a
    time): a time far before the start first, then the start."""
    origin = stream.start_time or 0
    entries = getattr(stream, "index_entries", None)
    if entries is not None and len(entries):
        return (min(origin, entries[0].timestamp),)
    if container.format.name.startswith("matroska"):
        return (origin,)
    return (origin - (1 << 40), origin)


def seek_to_first_packet(container, stream) -> bool:
    """Seek to the first packet of ``stream`` (``first_packet_times``); False where the
    demuxer refuses every try."""
    import av

    for ts in first_packet_times(container, stream):
        try:
            container.seek(ts, stream=stream, backward=True)
        except (av.error.FFmpegError, OSError, ValueError):
            continue
        return True
    return False

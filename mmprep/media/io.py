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


@contextmanager
def open_media(source: Any, *, stage: str, timeout: float | None = None):
    """``av.open`` for reading; errors become ``SampleError(stage, reason)``."""
    import av

    kwargs: dict[str, Any] = {"mode": "r", "metadata_errors": "replace"}
    if timeout:
        kwargs["timeout"] = timeout
    try:
        container = av.open(source, **kwargs)
    except (OSError, av.error.FFmpegError, ValueError, UnicodeError) as exc:
        raise SampleError(stage, describe_open_error(source, exc)) from exc
    try:
        yield container
    finally:
        container.close()

"""Decode + resample of a whole local audio track inside one FFmpeg filter graph.

``amovie`` reads and decodes the track and two ``aformat`` filters mix it down to mono
at the source rate, then resample it to float32 at the target rate, through the same
automatically inserted libswresample stages PyAV's ``AudioResampler`` uses in
``decode_audio``'s frame loop (mixing first: see ``_MixThenResample``), so the samples
are those of the frame loop; but
no Python runs per 1024-sample frame, only per 65536-sample block. Used for local files
whose path needs no escaping in a filter graph; ``None`` (the caller decodes frame by
frame) for anything else or for a track that ends short of its declared duration.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np

from mmprep.media.io import is_local_file

_SAFE_PATH = re.compile(r"[\w./-]+")
BLOCK = 65536


def graph_path(source: Any) -> str | None:
    """The path of ``source`` when it is a local file a filter graph can name as is."""
    if not is_local_file(source):
        return None
    path = os.fspath(source)
    return path if _SAFE_PATH.fullmatch(path) else None


def decode_in_graph(path: str, stream, rate: int, hi: float | None
                    ) -> tuple[list[np.ndarray], float] | None:
    """(mono float32 blocks, time of the first sample) of ``stream`` of the file at
    ``path``, resampled to ``rate``; decoding stops once ``hi`` seconds are covered.
    None when the graph cannot be built or the track comes out shorter than declared."""
    import av

    origin = (stream.start_time or 0) * float(stream.time_base)
    graph = (f"amovie={path}:si={stream.index},"
             "aformat=sample_fmts=fltp:channel_layouts=mono,"
             f"aformat=sample_fmts=flt:sample_rates={rate}:channel_layouts=mono,"
             f"asetnsamples=n={BLOCK}:p=0")
    chunks: list[np.ndarray] = []
    first = None
    total = 0
    try:
        with av.open(graph, format="lavfi") as container:
            out = container.streams.audio[0]
            for packet in container.demux(out):
                if not packet.size:
                    continue
                if first is None:
                    pts = packet.pts if packet.pts is not None else 0
                    first = pts * float(packet.time_base) - origin
                arr = np.frombuffer(bytes(packet), dtype=np.float32)
                chunks.append(arr)
                total += arr.shape[0]
                if hi is not None and first + total / rate >= hi + 0.1:
                    return chunks, first
    except (av.error.FFmpegError, OSError, ValueError):
        return None
    if first is None:
        return None
    declared = stream.duration * float(stream.time_base) if stream.duration else None
    if declared is not None and first + total / rate < declared - 0.25:
        return None  # the graph stopped early (a bad packet?): decode frame by frame
    return chunks, first

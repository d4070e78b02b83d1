"""Frame-sampling benchmark: mmprep's seeking sampler against two baselines and the floor.

(a) PyAV decoding every frame and keeping the N wanted ones;
(b) the ``ffmpeg`` command line extracting the same N frames (one input-seeking process
    per frame, the usual shell loop), when ffmpeg is installed;
and the floor (``mmprep.bench.peers.floor_frames``: decode only up to each target,
non-reference frames skipped), timed in rounds interleaved with mmprep's.

All three return the same frames (checked); times are medians over repeats, reported
as ratios against mmprep measured in the same run.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from mmprep.bench import machine_description
from mmprep.media.video import VideoConfig, sample_frames
from mmprep.results import Result


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mmprep" / "bench"


def make_reference_clip(
    path: str | Path,
    *,
    seconds: float = 60.0,
    size: tuple[int, int] = (1280, 720),
    fps: int = 30,
    gop_seconds: float = 2.0,
    gop_frames: int | None = None,
    codec: str = "libx264",
    seed: int = 0,
    progress: bool = False,
) -> Path:
    """A textured, moving clip: H.264 (x264 'veryfast', B-frames) or VP9 (libvpx,
    realtime), a keyframe every ``gop_frames`` frames (default: every ``gop_seconds``)."""
    import av

    path = Path(path)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    n = int(seconds * fps)
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 60, size=(h + 64, w + 64, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    tmp = path.with_name(path.name + ".tmp" + path.suffix)
    frames = range(n)
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, desc="encoding reference clip", unit="frame")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        gop = gop_frames or int(round(gop_seconds * fps))
        stream.codec_context.gop_size = gop
        if codec == "libx264":
            stream.options = {"preset": "veryfast", "keyint": str(gop),
                              "min-keyint": str(gop), "scenecut": "0", "crf": "23"}
        elif codec == "libvpx-vp9":
            stream.options = {"deadline": "realtime", "cpu-used": "8", "crf": "32",
                              "b": "0", "row-mt": "1"}
        for i in frames:
            dx, dy = (i * 3) % 64, (i * 2) % 64
            img = texture[dy : dy + h, dx : dx + w].copy()
            cx = (w / 2) + (w / 3) * np.sin(i / 40.0)
            cy = (h / 2) + (h / 4) * np.cos(i / 55.0)
            disc = (xx - cx) ** 2 + (yy - cy) ** 2 < (h / 6) ** 2
            img[disc] = (200, 80 + (i % 100), 40)
            img[:, :, 2] = np.clip(img[:, :, 2].astype(int) + (i % 200) // 2, 0, 255)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    os.replace(tmp, path)
    return path


def decode_all_pick(path: str | Path, times: list[float], threads: int) -> list[np.ndarray]:
    """Baseline (a): decode every frame, keep the frames on screen at ``times``."""
    import av

    picked: list[Any] = [None] * len(times)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = threads
        if threads != 1:
            stream.codec_context.thread_type = "AUTO"
        origin = stream.start_time or 0
        tb = float(stream.time_base)
        for frame in container.decode(stream):
            t = (frame.pts - origin) * tb
            for i, target in enumerate(times):
                if t <= target + 1e-6:
                    picked[i] = frame
    return [f.to_ndarray(format="rgb24") for f in picked]


def ffmpeg_frames(path: str | Path, times: list[float], threads: int,
                  size: tuple[int, int]) -> list[np.ndarray]:
    """Baseline (b): one ``ffmpeg -ss T -i VIDEO -frames:v 1`` process per frame."""
    w, h = size
    out = []
    for t in times:
        cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-threads", str(threads),
               "-ss", f"{max(0.0, t - 0.0005):.6f}", "-i", str(path), "-frames:v", "1",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
        raw = subprocess.run(cmd, check=True, capture_output=True).stdout
        out.append(np.frombuffer(raw, np.uint8).reshape(h, w, 3))
    return out


def _time(fn, repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


@dataclass(kw_only=True)
class DecodeBench(Result):
    """Seconds to sample ``frames`` frames from one video: mmprep's seeking sampler vs
    (a) PyAV decoding every frame and (b) one ffmpeg process per frame (median of
    ``repeat`` runs each). The goal ratios are ``speedup_vs_pyav_decode_all`` and
    ``speedup_vs_ffmpeg_cli`` (times faster than the baseline); the ffmpeg fields are
    None when that baseline did not run."""

    video: str
    duration_s: float
    resolution: str  # WIDTHxHEIGHT
    codec: str
    fps: float | None
    frames: int
    threads: int
    repeat: int
    mmprep_s: float
    mmprep_decoded_frames: int
    mmprep_seeks: int
    stream_frames: int | None
    pyav_decode_all_s: float
    speedup_vs_pyav_decode_all: float
    same_frames_as_pyav: bool
    floor_s: float  # decode only up to each target, non-reference frames skipped
    floor_decoded_frames: int
    mmprep_vs_floor: float  # mmprep_s / floor_s (goal: at most 1.25)
    same_frames_as_floor: bool
    ffmpeg_cli_s: float | None = None
    speedup_vs_ffmpeg_cli: float | None = None
    max_mean_abs_diff_vs_ffmpeg: float | None = None  # pixel values, 0..255
    machine: str


def bench_decode(
    video: str | Path,
    *,
    frames: int = 8,
    threads: int = 1,
    repeat: int = 3,
    ffmpeg: bool = True,
) -> DecodeBench:
    """Time the three methods on ``video``; returns seconds, ratios and frame checks.

    Args:
        video: the video file to sample.
        frames: frames to sample, uniformly over the video.
        threads: decoder threads for every method (0: FFmpeg decides).
        repeat: runs of each method; the median is reported.
        ffmpeg: run baseline (b) when the ``ffmpeg`` command is installed.
    """
    from mmprep.bench.peers import floor_frames

    cfg = VideoConfig(num_frames=frames, size=None, resize="none", threads=threads)
    fs = sample_frames(video, cfg)
    shown = fs.timestamps
    floor, floor_decoded = floor_frames(video, shown, None, threads)
    mm_times, floor_times = [], []
    for _ in range(repeat):  # interleaved: mmprep, then the floor, in every round
        t_mm, fs = _time(lambda: sample_frames(video, cfg), 1)
        mm_times.append(t_mm)
        floor_times.append(_time(lambda: floor_frames(video, shown, None, threads), 1)[0])
    t_mm, t_floor = statistics.median(mm_times), statistics.median(floor_times)
    info = fs.info
    t_all, ref = _time(lambda: decode_all_pick(video, fs.timestamps, threads), repeat)
    result = DecodeBench(
        video=str(video),
        duration_s=round(info.duration or 0.0, 3),
        resolution=f"{info.width}x{info.height}",
        codec=info.codec,
        fps=info.fps,
        frames=frames,
        threads=threads,
        repeat=repeat,
        mmprep_s=round(t_mm, 4),
        mmprep_decoded_frames=fs.stats["decoded"],
        mmprep_seeks=fs.stats["seeks"],
        stream_frames=info.frames,
        pyav_decode_all_s=round(t_all, 4),
        speedup_vs_pyav_decode_all=round(t_all / t_mm, 2),
        same_frames_as_pyav=all(np.array_equal(a, b) for a, b in zip(fs.frames, ref)),
        floor_s=round(t_floor, 4),
        floor_decoded_frames=floor_decoded,
        mmprep_vs_floor=round(t_mm / t_floor, 2),
        same_frames_as_floor=all(np.array_equal(a, b) for a, b in zip(fs.frames, floor)),
        machine=machine_description(),
    )
    if ffmpeg and shutil.which("ffmpeg"):
        size = (fs.frames[0].shape[1], fs.frames[0].shape[0])
        t_ff, ff = _time(lambda: ffmpeg_frames(video, fs.timestamps, threads, size), repeat)
        result.ffmpeg_cli_s = round(t_ff, 4)
        result.speedup_vs_ffmpeg_cli = round(t_ff / t_mm, 2)
        diffs = [float(np.abs(a.astype(int) - b).mean()) for a, b in zip(fs.frames, ff)]
        result.max_mean_abs_diff_vs_ffmpeg = round(max(diffs), 3)
    return result

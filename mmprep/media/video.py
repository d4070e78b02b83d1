"""Video decoding with PyAV and frame sampling.

The sampler never decodes a whole long video to get a few frames: before each target
time it decides whether to keep decoding forward or to seek to the nearest keyframe at
or before the target (learning the keyframe interval as it goes, so it does not seek
backwards into frames it already decoded), then decodes up to the frame that is on
screen at the target time.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from mmprep.errors import SampleError
from mmprep.media.frames import Interpolation, ResizeMode, normalize_rotation, plan_geometry, render
from mmprep.media.io import first_packet_times, open_media
from mmprep.media.norms import pixel_norm

Sampling = Literal["uniform", "random", "fps", "keyframes"]

_EPS = 1e-6
_MAX_BAD_PACKETS = 64
WINDOW_STEPS = 1.5  # frame steps before a target decoded in full (see FrameReader)


@dataclass
class VideoConfig:
    """Frame sampling and resizing options."""

    enabled: bool = True
    sampling: Sampling = "uniform"
    num_frames: int = 8  # uniform / random: frames per clip
    fps: float = 1.0  # sampling=fps: frames per second
    max_frames: int | None = None  # fps / keyframes: cap, evenly thinned
    size: int | None = 224  # target side (None: keep decoded size)
    resize: ResizeMode = "center-crop"
    interpolation: Interpolation = "bicubic"
    format: Literal["jpg", "raw"] = "jpg"
    jpeg_quality: int = 90
    # recorded for trainers (pixels stay uint8); a name from media.norms (clip, imagenet)
    mean: tuple[float, float, float] | str | None = None
    std: tuple[float, float, float] | str | None = None
    threads: int | None = None  # decoder threads (0: FFmpeg chooses; None: decoder_threads)
    seek: bool = True  # seek to the nearest keyframe before far targets
    skip_nonref: bool = True  # drop non-reference frames that are not shown (same output)
    # hardware decoding: "cuda" decodes on NVDEC, on the CPU where there is none
    hwaccel: Literal["none", "cuda"] = "none"

    def __post_init__(self) -> None:
        self.mean = pixel_norm(self.mean, "mean")
        self.std = pixel_norm(self.std, "std")
        if self.num_frames < 1:
            raise ValueError("num_frames must be >= 1")
        if self.fps <= 0:
            raise ValueError("fps must be > 0")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError("max_frames must be >= 1")
        if self.size is not None and self.size < 1:
            raise ValueError("size must be >= 1")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError("jpeg_quality must be within 1..100")
        if self.hwaccel not in ("none", "cuda"):
            raise ValueError("hwaccel must be 'none' or 'cuda'")
        if self.threads is not None and self.threads < 0:
            raise ValueError("threads must be >= 0")


@dataclass
class VideoInfo:
    """What the container says about the video stream (times in seconds)."""

    duration: float | None
    fps: float | None
    width: int
    height: int
    codec: str
    rotation: int  # display-matrix rotation, counter-clockwise degrees (as ffprobe shows it)
    frames: int | None
    sar: float = 1.0


@dataclass
class FrameSample:
    frames: list[Any]  # (H, W, 3) uint8 arrays, or what ``transform`` made of them
    timestamps: list[float]  # seconds from the start of the stream
    info: VideoInfo
    window: tuple[float, float]
    stats: dict[str, int] = field(default_factory=dict)


def sample_seed(seed: int, key: str) -> int:
    """A per-sample seed that depends only on the run seed and the sample key."""
    return (int(seed) * 1_000_003 + zlib.crc32(key.encode("utf-8"))) % (2**32)


def target_times(
    cfg: VideoConfig, start: float, end: float, *, seed: int = 0
) -> list[float]:
    """Times (seconds) at which frames are wanted inside ``[start, end)``."""
    length = end - start
    if cfg.sampling in ("uniform", "random"):
        n = cfg.num_frames
        seg = length / n
        if cfg.sampling == "uniform":
            offsets = np.full(n, 0.5)
        else:
            offsets = np.random.default_rng(seed).uniform(0.0, 1.0, size=n)
        return [start + (i + float(o)) * seg for i, o in enumerate(offsets)]
    if cfg.sampling == "fps":
        count = max(1, int(math.ceil(length * cfg.fps - _EPS)))
        times = [start + k / cfg.fps for k in range(count)]
        return _thin(times, cfg.max_frames)
    raise ValueError(f"target_times does not apply to sampling={cfg.sampling!r}")


def _thin(items: list, limit: int | None) -> list:
    if limit is None or len(items) <= limit:
        return items
    idx = np.linspace(0, len(items) - 1, limit).round().astype(int)
    return [items[i] for i in idx]


def probe(container, stream) -> VideoInfo:
    ctx = stream.codec_context
    tb = stream.time_base
    duration = None
    if stream.duration is not None and tb is not None:
        duration = float(stream.duration * tb)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate else None
    sar = ctx.sample_aspect_ratio
    return VideoInfo(
        duration=duration if duration and duration > 0 else None,
        fps=fps,
        width=ctx.width,
        height=ctx.height,
        codec=ctx.name,
        rotation=0,
        frames=stream.frames or None,
        sar=float(sar) if sar else 1.0,
    )


class FrameReader:
    """Frames of one video stream in display order, with keyframe seeking.

    Frames travel as ``(time, frame)`` pairs. ``frame_at(t)`` returns the pair on
    screen at ``t``: the last frame whose time is <= t (the first frame if ``t`` is
    before it). Targets must be non-decreasing.

    Decoding less: the keyframe before each target comes from the container's index
    (seek there when it lies beyond what is already decoded), and with ``skip_nonref``
    the decoder drops non-reference frames (FFmpeg ``skip_frame=NONREF``) of packets
    more than ``window`` seconds before the target; no other frame depends on them, so
    every frame that is decoded is exactly the frame a full decode gives. The last
    stretch before the target is decoded in full; if a dropped frame turns out to be the
    one on screen (a gap longer than the window, variable frame rate), that target is
    decoded again from its keyframe without skipping.

    Never decoding past a target: for a codec whose frames leave the decoder in packet
    order (``IN_ORDER_CODECS``, one decoder thread), a packet stamped after the target
    cannot hold the frame shown at it, so it is held undecoded, as ``(time, None)``,
    and decoded only if a later target needs it (after a seek it is dropped unread).
    """

    def __init__(self, container, stream, *, seek: bool = True, skip_nonref: bool = True,
                 min_seek_gap: float = 1.0):
        self.container = container
        self.stream = stream
        self.ctx = stream.codec_context
        self.tb = float(stream.time_base)
        self.origin = stream.start_time if stream.start_time is not None else 0
        rate = stream.average_rate or stream.guessed_rate
        self.frame_step = 1.0 / float(rate) if rate else 0.04
        # packets earlier than this before a target cannot be the frame shown at a constant
        # frame rate (the half step absorbs rounded timestamps, e.g. Matroska's milliseconds)
        self.window = WINDOW_STEPS * self.frame_step
        self.allow_seek = seek
        self.skip_nonref = skip_nonref
        self.min_seek_gap = min_seek_gap
        self.kf_interval = 0.0  # largest keyframe spacing observed so far
        self.last_kf: float | None = None
        self.prev: tuple | None = None  # last decoded (time, frame) with time <= target
        self.pending: tuple | None = None  # decoded (time, frame) beyond the target
        self.target: float | None = None
        self.last_target = False
        self.skipping = False  # packets are being fed with skip_frame=NONREF
        self.dropped: list[float] = []  # times of packets fed while skipping
        self._manage_skip = skip_nonref
        # packets stamped after the target are held undecoded (see the class docs)
        self._hold = (self.ctx is not None and self.ctx.name in IN_ORDER_CODECS
                      and self.ctx.thread_count == 1
                      and not getattr(self.ctx, "is_hwaccel", False))
        self._iter: Iterator | None = None
        self._last_time: float | None = None
        self._kf_times: list[float] | None = None
        self.stats = {"decoded": 0, "seeks": 0, "bad_packets": 0, "skipped_packets": 0,
                      "redone": 0, "held_packets": 0}
        self._kf_seek: list[int] = []
        if seek and (index := self._index_keyframes()) is not None:
            self._kf_times, self._kf_seek = index

    def _index_keyframes(self) -> tuple[list[float], list[int]] | None:
        """Keyframes from the container's index: presentation times (seconds) and the
        timestamp to seek to for each, or None when the index holds fewer than two (then
        seeking falls back to learning intervals). Matroska loads its cues on the first
        seek, so one seek to the start comes first."""
        entries = getattr(self.stream, "index_entries", None)  # PyAV >= 14
        if entries is None:
            return None
        if sum(1 for e in entries if e.is_keyframe) < 2:
            if not self.container.format.name.startswith("matroska"):
                # no index to load; and a seek to the start is not exact everywhere
                # (MPEG-TS can land on a later keyframe), so nothing is moved
                return None
            try:
                self.container.seek(self.origin, stream=self.stream, backward=True)
            except Exception:  # noqa: BLE001 - an unseekable input keeps the fallback
                return None
            entries = self.stream.index_entries
        stamps = sorted(e.timestamp for e in entries if e.is_keyframe)
        if len(stamps) < 2:
            return None
        first = entries[0].timestamp
        if first >= self.origin:  # presentation times (Matroska cues, no reordering)
            return [(ts - self.origin) * self.tb for ts in stamps], stamps
        # MP4 indexes decode times, which trail presentation times by the reorder delay;
        # its seek compares targets with decode time + the first frame's delay. At a
        # constant frame rate that is the presentation time; otherwise the keyframes'
        # presentation times are read from the packet headers.
        seeks = [ts + self.origin - first for ts in stamps]
        gaps = np.diff([e.timestamp for e in entries])
        if gaps.size and int(gaps.max()) - int(gaps.min()) <= 1:
            return [(ts - self.origin) * self.tb for ts in seeks], seeks
        times = self._scan_keyframes()
        if len(times) != len(seeks):
            return None
        return times, seeks

    def _scan_keyframes(self) -> list[float]:
        """Keyframe presentation times from packet headers (demuxing only, no decoding)."""
        times = [(p.pts - self.origin) * self.tb for p in self.container.demux(self.stream)
                 if p.is_keyframe and p.pts is not None]
        self.container.seek(self.origin, stream=self.stream, backward=True)
        return sorted(times)

    def _set_skip(self, on: bool) -> None:
        if on != self.skipping:
            self.ctx.skip_frame = "NONREF" if on else "DEFAULT"
            self.skipping = on

    def _decode(self) -> Iterator[tuple[float, Any]]:
        import av

        for packet in self.container.demux(self.stream):
            if self._manage_skip and self.target is not None:
                pt = None if packet.pts is None else (packet.pts - self.origin) * self.tb
                early = pt is not None and pt < self.target - self.window
                late = self.last_target and pt is not None and pt > self.target + _EPS
                self._set_skip(early or late)
                if early:
                    self.dropped.append(pt)
                    self.stats["skipped_packets"] += 1
            if self._hold and self.target is not None and packet.pts is not None:
                pt = (packet.pts - self.origin) * self.tb
                if pt > self.target + _EPS:
                    self.stats["held_packets"] += 1
                    yield pt, None  # decoded below when the reader asks for more
                    self.stats["held_packets"] -= 1
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                self.stats["bad_packets"] += 1
                if self.stats["bad_packets"] > _MAX_BAD_PACKETS:
                    raise
                continue
            for frame in frames:
                self.stats["decoded"] += 1
                if frame.pts is not None:
                    t = (frame.pts - self.origin) * self.tb
                elif self._last_time is not None:  # no timestamp: nominal frame rate
                    t = self._last_time + self.frame_step
                else:
                    t = 0.0
                self._last_time = t
                yield t, frame

    def _next(self) -> tuple[float, Any] | None:
        if self._iter is None:
            self._iter = self._decode()
        item = next(self._iter, None)
        if item is not None and item[1] is not None and item[1].key_frame:
            t = item[0]
            if self.last_kf is not None and t > self.last_kf:
                self.kf_interval = max(self.kf_interval, t - self.last_kf)
            self.last_kf = t
        return item

    def _position(self) -> float | None:
        ref = self.pending if self.pending is not None else self.prev
        return None if ref is None else ref[0]

    def _keyframe_before(self, t: float) -> int:
        """Index in the keyframe list of the last keyframe at or before ``t`` (-1: none)."""
        return bisect.bisect_right(self._kf_times, t + _EPS) - 1

    def _should_seek(self, t: float) -> bool:
        if not self.allow_seek:
            return False
        pos = self._position()
        if self._kf_times is not None:
            i = self._keyframe_before(t)
            # Seek when the keyframe lies beyond what is decoded (or nothing is yet).
            return i >= 0 and self._kf_times[i] > (pos if pos is not None else 0.0) + _EPS
        if pos is None:
            pos = 0.0
        threshold = max(self.min_seek_gap, self.kf_interval)
        if self.last_kf is not None and pos > self.last_kf:
            # No keyframe seen since last_kf: the interval is at least this long.
            threshold = max(threshold, pos - self.last_kf)
        return t - pos > threshold

    def _seek_to(self, offset: int) -> None:
        self.container.seek(offset, stream=self.stream, backward=True, any_frame=False)
        self.stats["seeks"] += 1
        self.dropped = []  # every frame from the landing point on is fed again
        self._iter = None
        self._last_time = None
        self.last_kf = None  # keyframes before and after a seek are not neighbours
        self.prev = None
        self.pending = self._next()

    def _ticks(self, t: float) -> int:
        return int(math.floor(t / self.tb + _EPS)) + self.origin

    def _seek(self, t: float) -> None:
        before = self._position()
        i = self._keyframe_before(t) if self._kf_times is not None else -1
        self._seek_to(self._kf_seek[i] if i >= 0 else self._ticks(t))
        while self.pending is not None:
            landed = self.pending[0]
            if before is not None and landed <= before + _EPS:
                # Went back to an already decoded keyframe: the interval is longer.
                self.kf_interval = max(self.kf_interval, t - landed)
            if not (landed > t + _EPS and t > 0):
                return
            if i <= 0:
                break
            i -= 1  # the seek overshot (index and frames disagree): the keyframe before
            self._seek_to(self._kf_seek[i])
        if self.pending is None or (self.pending[0] > t + _EPS and t > 0):
            # Landed at the end or past the target: a broken or coarse index, or a
            # demuxer whose seeks are not exact (MPEG-TS lands on a later packet). Start
            # from the beginning and seek no more in this stream.
            self.allow_seek = False
            self._seek_to_start()

    def _seek_to_start(self) -> None:
        """Back to the first packet (``first_packet_times``: where each demuxer lands
        there), trying the next time while a seek lands later than the first frame."""
        for ts in first_packet_times(self.container, self.stream):
            try:
                self._seek_to(ts)
            except Exception:  # noqa: BLE001 - a demuxer that refuses: try the next
                continue
            if self.pending is None or self.pending[0] <= self.frame_step + _EPS:
                return

    def _run_to(self, t: float) -> tuple[float, Any] | None:
        while True:
            item = self.pending if self.pending is not None else self._next()
            self.pending = None
            if item is None:
                break
            if item[1] is None:  # a held packet
                if item[0] <= t + _EPS or self.prev is None:
                    continue  # needed after all: the reader decodes it next
                self.pending = item
                break
            if item[0] <= t + _EPS:
                self.prev = item
                continue
            self.pending = item
            break
        return self.prev if self.prev is not None else self.pending

    def frame_at(self, t: float, *, last: bool = False) -> tuple[float, Any] | None:
        """The frame on screen at ``t``; ``last`` says no later target follows, so
        frames after ``t`` may be dropped too."""
        self.target, self.last_target = t, last
        if self._should_seek(t):
            self._seek(t)
        item = self._run_to(t)
        shown = item[0] if item is not None else -math.inf
        if any(shown + _EPS < q <= t + _EPS for q in self.dropped):
            # A dropped frame was the one on screen: decode again without skipping.
            self.stats["redone"] += 1
            self._manage_skip = False
            self._set_skip(False)
            try:
                if self.allow_seek:
                    self._seek(t)
                else:
                    self._seek_to_start()
                item = self._run_to(t)
            finally:
                self._manage_skip = self.skip_nonref
        self.dropped = [q for q in self.dropped if q > t + _EPS]
        return item

    def keyframes(self, start: float = 0.0) -> Iterator[tuple[float, Any]]:
        """Decode only keyframes (the decoder discards everything else) from ``start``."""
        self.target = None  # no packet is held
        self._manage_skip = False
        self.ctx.skip_frame = "NONKEY"
        try:
            if start > 0 and self.allow_seek:
                self._seek_to(int(math.floor(start / self.tb)) + self.origin)
                item, self.pending = self.pending, None
                if item is not None:
                    yield item
            while (item := self._next()) is not None:
                yield item
        finally:
            self.ctx.skip_frame = "DEFAULT"
            self.skipping = False
            self._manage_skip = self.skip_nonref


def _frame_rotation(frame) -> int:
    """The display-matrix rotation as ffprobe reports it (counter-clockwise degrees)."""
    try:
        return int(round(float(frame.rotation or 0) / 90.0)) * 90 % 360
    except (AttributeError, ValueError, TypeError):
        return 0


def _stream_duration_by_scan(container, stream) -> float | None:
    """Last timestamp of the stream, found by demuxing (no decoding)."""
    tb = float(stream.time_base)
    origin = stream.start_time or 0
    last = None
    for packet in container.demux(stream):
        if packet.pts is None:
            continue
        end = packet.pts + (packet.duration or 0)
        last = end if last is None else max(last, end)
    container.seek(origin, stream=stream, backward=True, any_frame=False)
    return None if last is None else (last - origin) * tb


def sample_frames(
    source: Any,
    cfg: VideoConfig,
    *,
    start: float | None = None,
    end: float | None = None,
    seed: int = 0,
    transform=None,
    times: list[float] | None = None,
    container=None,
) -> FrameSample:
    """Decode ``source`` and sample frames per ``cfg``.

    Args:
        source: a path, URL or binary file object.
        cfg: sampling, size, resize and format options.
        start, end: seconds; cut a clip out of a longer video.
        seed: seed of ``random`` sampling (mmprep uses one per key).
        transform: applied to each rendered (H, W, 3) uint8 frame (e.g. JPEG encoding).
        times: explicit target times (seconds from the stream start) instead of
            ``cfg.sampling``; the frame on screen at each is returned.
        container: ``source`` already opened by ``open_video`` (left open: the caller
            closes it; the audio stage may read it next).

    ``start``/``end`` (seconds) cut a clip out of a longer video. Each frame is rendered
    (resized, rotated) as soon as it is picked and, when given, passed through
    ``transform`` (e.g. JPEG encoding), so memory stays proportional to the output.
    Raises ``SampleError`` for unreadable input, a missing video stream, or an empty
    clip window.
    """
    import av

    hw = None if cfg.hwaccel == "none" else cfg.hwaccel
    opened = contextlib.nullcontext(container) if container is not None else open_video(
        source, cfg)
    with opened as container:
        if not container.streams.video:
            raise SampleError("video", "no video stream in file")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if ctx is None:
            raise SampleError("video", "the video stream's codec is unknown or its "
                                       "parameters are damaged (no decoder opens)")
        info = probe(container, stream)
        threads = decoder_threads(info) if cfg.threads is None else cfg.threads
        ctx.thread_count = threads
        if threads != 1:
            ctx.thread_type = "AUTO"
        duration = info.duration
        if duration is None:
            duration = _stream_duration_by_scan(container, stream)
        if not duration or duration <= 0:
            raise SampleError("video", "cannot determine the video duration (no timestamps)")
        lo = max(0.0, float(start or 0.0))
        hi = duration if end is None else min(float(end), duration)
        if hi - lo <= _EPS:
            raise SampleError(
                "video",
                f"empty clip window [{lo:.3f}, {hi:.3f}] s (video lasts {duration:.3f} s)",
            )
        reader = FrameReader(container, stream, seek=cfg.seek, skip_nonref=cfg.skip_nonref)
        render_one = _Renderer(cfg, info, transform, threads=1 if cfg.threads is None else threads)
        items: list[Any] = []
        stamps: list[float] = []
        try:
            if times is not None:
                targets = sorted(float(t) for t in times)
            if times is None and cfg.sampling == "keyframes":
                wanted = _thin(_keyframes_in(source, container, stream, lo, hi),
                               cfg.max_frames)
                _check_count(len(wanted), cfg)
                remaining = set(wanted)
                for ts, frame in reader.keyframes(lo):
                    if ts >= hi or not remaining:
                        break
                    if ts in remaining:
                        remaining.discard(ts)
                        items.append(render_one(frame))
                        stamps.append(round(ts, 6))
            else:
                if times is None:
                    targets = target_times(cfg, lo, hi, seed=seed)
                _check_count(len(targets), cfg)
                for i, t in enumerate(targets):
                    item = reader.frame_at(t, last=i == len(targets) - 1)
                    if item is not None:
                        items.append(render_one(item[1]))
                        stamps.append(round(item[0], 6))
        except av.error.FFmpegError as exc:
            raise SampleError("video", f"decoding failed: {exc}") from exc
        if not items:
            raise SampleError("video", "no decodable frame in the clip window")
        info.duration = duration
        reader.stats["hwaccel"] = int(bool(hw) and bool(getattr(ctx, "is_hwaccel", False)))
        return FrameSample(
            frames=items, timestamps=stamps, info=info, window=(lo, hi), stats=reader.stats
        )


def open_video(source: Any, cfg: VideoConfig):
    """``open_media`` for the video stage (with ``cfg.hwaccel``); a context manager."""
    return open_media(source, stage="video",
                      hwaccel=None if cfg.hwaccel == "none" else cfg.hwaccel)


MAX_FRAMES_PER_CLIP = 10_000

# Frame threads pay off from about 480p up; below it the thread start-up and hand-over
# cost more than they save on a few frames per clip.
AUTO_THREADS_MIN_PIXELS = 400_000
# Codecs whose decoder gains from threads at any size: FFmpeg's VP9 decoder sampled
# 0.74-0.81x as long with its automatic threads as with one, on a 30 s 360p file on 2
# cores (``mmprep bench decode --suite --only "360p VP9"``, the "threads auto" row).
THREADED_CODECS = frozenset({"vp9"})
# Codecs without frame reordering: each packet's frame leaves a one-thread decoder at
# once, stamped with the packet's time (VP9's hidden frames travel inside the packet of
# the frame that shows them), so packets after a target need not be decoded.
IN_ORDER_CODECS = frozenset({"vp8", "vp9"})


# Cores each process may give its decoder threads; the extract pool sets it in every
# worker to the cores it has divided by the workers (None: not in a pool, all cores).
_CORES_PER_WORKER: int | None = None


def set_cores_per_worker(cores: int | None) -> None:
    """Tell ``decoder_threads`` how many cores this worker process may use (the
    extract pool calls it in each worker: usable cores // workers)."""
    global _CORES_PER_WORKER
    _CORES_PER_WORKER = None if cores is None else max(1, int(cores))


def decoder_threads(info: VideoInfo) -> int:
    """The decoder thread count ``VideoConfig.threads=None`` picks: one below about 480p
    (except for ``THREADED_CODECS``); from 480p up, FFmpeg's automatic count (which
    follows the process's CPU affinity) outside a pool, and in a pool the worker's share
    of the cores, so that workers times threads never exceeds the cores (a share of one
    core: one thread)."""
    if (info.width * info.height < AUTO_THREADS_MIN_PIXELS
            and info.codec not in THREADED_CODECS):
        return 1
    return 0 if _CORES_PER_WORKER is None else _CORES_PER_WORKER


def _check_count(n: int, cfg: VideoConfig) -> None:
    if n > MAX_FRAMES_PER_CLIP:
        raise SampleError(
            "video",
            f"{n} frames requested for one clip (limit {MAX_FRAMES_PER_CLIP}); "
            "set video.max_frames (--max-frames) to thin them",
        )


def _keyframes_in(source: Any, container, stream, lo: float, hi: float) -> list[float]:
    """``keyframe_times``, scanned in a second opening of ``source`` when it can be
    opened again (a path or URL), so that ``container`` stays where it is: the seek back
    after a scan is not exact everywhere (MPEG-TS can land on a later keyframe)."""
    if not isinstance(source, str) and not hasattr(source, "__fspath__"):
        return keyframe_times(container, stream, lo, hi)
    with open_media(source, stage="video") as scan:
        return keyframe_times(scan, scan.streams.video[0], lo, hi)


def keyframe_times(container, stream, lo: float, hi: float) -> list[float]:
    """Times of the keyframes in [lo, hi), from packet flags (demuxing only, no decoding)."""
    tb = float(stream.time_base)
    origin = stream.start_time or 0
    if lo > 0:
        container.seek(int(lo / tb) + origin, stream=stream, backward=True, any_frame=False)
    times = []
    for packet in container.demux(stream):
        if packet.pts is None or not packet.is_keyframe:
            continue
        t = (packet.pts - origin) * tb
        if t >= hi:
            break
        if t >= lo - _EPS:
            times.append(t)
    container.seek(origin, stream=stream, backward=True, any_frame=False)
    return sorted(times)


class _Renderer:
    """Renders each picked frame at once (so only output-sized arrays are kept)."""

    def __init__(self, cfg: VideoConfig, info: VideoInfo, transform=None, threads: int = 1):
        self.cfg = cfg
        self.threads = threads
        self.info = info
        self.transform = transform
        self.geom = None
        self.first_size = None

    def __call__(self, frame):
        cfg, info = self.cfg, self.info
        if self.geom is None:
            info.rotation = _frame_rotation(frame)
            self.first_size = (frame.width, frame.height)
        size = (frame.width, frame.height)
        geom = plan_geometry(frame.width, frame.height, size=cfg.size, mode=cfg.resize,
                             rotation=normalize_rotation(info.rotation), sar=info.sar)
        if self.geom is None:
            self.geom = geom
        arr = render(frame, geom, cfg.interpolation, threads=self.threads)
        if size != self.first_size and arr.shape[:2] != self.geom.out_size:
            # Resolution change mid-stream: all outputs of a clip share one size.
            arr = _fit(arr, self.geom.out_size)
        return self.transform(arr) if self.transform is not None else arr


def _fit(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(arr).resize((size[1], size[0]), Image.BICUBIC))

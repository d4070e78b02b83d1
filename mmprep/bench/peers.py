"""The frame samplers ``mmprep bench decode --suite`` times side by side.

Each method takes a file, the target times (seconds) and an output size (``None``:
native size; else (width, height)) and returns the frame on screen at each time as an
(H, W, 3) uint8 RGB array, plus how many frames it decoded when it can tell. The peers
(torchcodec, decord, OpenCV) are optional (``pip install 'mmprep[bench]'``); a peer
that does not import or cannot open the file is skipped with a note.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmprep.media.frames import Geometry, render
from mmprep.media.video import IN_ORDER_CODECS, VideoConfig, sample_frames

Frames = tuple[list[np.ndarray], int | None]
Size = tuple[int, int] | None


@dataclass(frozen=True)
class Method:
    name: str
    run: Callable[[Path, list[float], Size, int], Frames]
    needs: str | None = None  # module the method imports, "cuda" (None: mmprep's own)


def _mmprep(skip: bool, hwaccel: str = "none", threads_as: int | None = None):
    """mmprep's sampler; ``threads_as``: decoder threads regardless of the run's setting
    (0: FFmpeg's automatic count)."""

    def run(path, times, size, threads) -> Frames:
        threads = threads if threads_as is None else threads_as
        cfg = VideoConfig(num_frames=len(times), size=None if size is None else min(size),
                          resize="none" if size is None else "shorter-side",
                          interpolation="bilinear", threads=threads, skip_nonref=skip,
                          hwaccel=hwaccel)
        fs = sample_frames(path, cfg, times=times)
        if hwaccel != "none" and not fs.stats.get("hwaccel"):
            raise RuntimeError(f"no {hwaccel} hardware decoder here (it decoded on the CPU)")
        return fs.frames, fs.stats["decoded"]

    return run


def _reformat(frame, size: Size) -> np.ndarray:
    """Colour conversion and scaling in one pass, only for frames kept: the conversion
    mmprep's sampler does (``mmprep.media.frames.render``), so that the floor and
    decode-all rows differ from mmprep in decoding alone."""
    if size is None:
        return frame.to_ndarray(format="rgb24")
    geom = Geometry(scale_w=size[0], scale_h=size[1], rotation=0, crop=None, pad=None)
    return render(frame, geom, "bilinear", threads=1)


def pyav_decode_all(path, times, size, threads) -> Frames:
    """PyAV decoding every frame, converting only the frames on screen at ``times``."""
    import av

    picked: list = [None] * len(times)
    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = threads
        if threads != 1:
            stream.codec_context.thread_type = "AUTO"
        origin, tb = stream.start_time or 0, float(stream.time_base)
        for frame in container.decode(stream):
            count += 1
            t = (frame.pts - origin) * tb
            for i, target in enumerate(times):
                if t <= target + 1e-6 or picked[i] is None:
                    picked[i] = frame
    return [_reformat(f, size) for f in picked], count


def floor_frames(path, times, size, threads) -> Frames:
    """The floor: decode only up to each target, non-reference frames skipped. A plain
    PyAV loop (not mmprep's sampler): seek to the keyframe before a target when it lies
    ahead of what is decoded, feed packets more than 1.5 frame steps before the target
    with ``skip_frame="NONREF"``, decode the rest in full up to the first frame after the
    target (for a codec without reordering on one thread, up to the target's own frame:
    a packet stamped after the target is decoded only if the next target needs it), and
    convert only the frame shown (one ``reformat`` to the output size)."""
    import av

    out, count = [], 0
    with av.open(str(path)) as container:
        st = container.streams.video[0]
        ctx = st.codec_context
        ctx.thread_count = threads
        if threads != 1:
            ctx.thread_type = "AUTO"
        origin, tb = st.start_time or 0, float(st.time_base)
        in_order = ctx.name in IN_ORDER_CODECS and threads == 1
        window = 1.5 / float(st.average_rate or 25)
        entries = st.index_entries
        if sum(e.is_keyframe for e in entries) < 2:  # Matroska: cues load on a seek
            container.seek(origin, stream=st, backward=True)
            entries = st.index_entries
        # MP4 indexes decode times; shifted by the first one they are presentation times.
        shift = origin - entries[0].timestamp if entries and entries[0].timestamp < origin else 0
        seeks = sorted(e.timestamp + shift for e in entries if e.is_keyframe)
        keys = [(s - origin) * tb for s in seeks]
        target = 0.0

        def decoded():
            nonlocal count
            for packet in container.demux(st):
                if packet.pts is not None:
                    pt = (packet.pts - origin) * tb
                    ctx.skip_frame = "NONREF" if pt < target - window else "DEFAULT"
                    if in_order and pt > target + 1e-6:
                        yield pt, None  # decoded only when the loop resumes this
                for frame in packet.decode():
                    count += 1
                    yield (frame.pts - origin) * tb, frame

        frames, shown, ahead = decoded(), None, None
        for target in times:
            k = bisect.bisect_right(keys, target + 1e-6) - 1
            pos = ahead or shown
            if k >= 0 and (pos is None or keys[k] > pos[0] + 1e-6):
                container.seek(seeks[k], stream=st, backward=True)
                frames, shown, ahead = decoded(), None, None
            while (item := ahead or next(frames, None)) is not None:
                ahead = None
                if item[0] > target + 1e-6 and (item[1] is not None or shown is not None):
                    ahead = item
                    break
                if item[1] is not None:
                    shown = item
            out.append(_reformat((shown or ahead)[1], size))
    return out, count


def _torchcodec(mode: str):
    def run(path, times, size, threads) -> Frames:
        from torchcodec.decoders import VideoDecoder
        from torchcodec.transforms import Resize

        transforms = None if size is None else [Resize(size=(size[1], size[0]))]
        dec = VideoDecoder(str(path), dimension_order="NHWC", num_ffmpeg_threads=threads,
                           seek_mode=mode, transforms=transforms)
        end = dec.metadata.end_stream_seconds or max(times) + 1
        clamped = [min(t, end - 1e-6) for t in times]
        data = dec.get_frames_played_at(seconds=clamped).data.numpy()
        return list(data), None

    return run


def decord_frames(path, times, size, threads) -> Frames:
    import decord

    kw = {} if size is None else {"width": size[0], "height": size[1]}
    vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=threads, **kw)
    fps = vr.get_avg_fps()
    idx = [min(len(vr) - 1, int(t * fps + 1e-6)) for t in times]
    return list(vr.get_batch(idx).asnumpy()), None


def opencv_frames(path, times, size, threads) -> Frames:
    """OpenCV the way GRAM's data code reads frames: set the frame position, read one."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        cap.set(cv2.CAP_PROP_N_THREADS, threads)
        fps = cap.get(cv2.CAP_PROP_FPS)
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        out = []
        for t in times:
            cap.set(cv2.CAP_PROP_POS_FRAMES, min(total - 1, int(t * fps + 1e-6)))
            ok, bgr = cap.read()
            if not ok:
                raise RuntimeError(f"OpenCV could not read the frame at {t:.3f} s")
            if size is not None:
                bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR)
            out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        return out, None
    finally:
        cap.release()


METHODS = [
    Method("mmprep", _mmprep(True)),
    Method("mmprep, no skipping", _mmprep(False)),
    Method("mmprep, threads auto", _mmprep(True, threads_as=0)),
    Method("mmprep NVDEC", _mmprep(True, "cuda"), "cuda"),
    Method("PyAV decode-all", pyav_decode_all),
    Method("floor", floor_frames),
    Method("torchcodec exact", _torchcodec("exact"), "torchcodec"),
    Method("torchcodec approx", _torchcodec("approximate"), "torchcodec"),
    Method("decord", decord_frames, "decord"),
    Method("OpenCV", opencv_frames, "cv2"),
]


def unavailable(method: Method) -> str | None:
    """Why ``method`` cannot run here (its module does not import), else None."""
    if method.needs is None:
        return None
    if method.needs == "cuda":
        import torch

        return None if torch.cuda.is_available() else "no CUDA device (NVDEC not measured)"
    import importlib

    try:
        importlib.import_module(method.needs)
        if method.needs == "torchcodec":
            importlib.import_module("torchcodec.decoders")
    except Exception as exc:  # noqa: BLE001 - any import failure skips the peer
        return f"{method.needs} does not load: {str(exc).splitlines()[0][:120]}"
    return None


def audio_mmprep(path, rate: int) -> np.ndarray:
    from mmprep.media.audio import decode_audio

    return decode_audio(path, rate).samples


def audio_torchcodec(path, rate: int) -> np.ndarray:
    from torchcodec.decoders import AudioDecoder

    dec = AudioDecoder(str(path), sample_rate=rate, num_channels=1)
    return dec.get_all_samples().data.numpy()[0]

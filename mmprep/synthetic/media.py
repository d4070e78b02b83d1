"""Small media generators for tests, demos and bug reports (PyAV encoders only).

``encode_clip`` writes H.264/AAC (or other codecs) from numpy arrays.
``code_frame``/``read_code`` draw and read back a frame's index as a grid of black and
white blocks large enough to survive lossy compression, so a test can check exactly
which source frame a sampler returned.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np

CODE_BITS = 12  # frame indices up to 4095


def code_frame(index: int, width: int = 128, height: int = 96) -> np.ndarray:
    """An RGB frame whose top rows carry ``index`` in binary (white = 1)."""
    img = np.full((height, width, 3), 64, dtype=np.uint8)
    cols = 6
    rows = math.ceil(CODE_BITS / cols)
    bw, bh = width // cols, min(height // (rows + 1), width // cols)
    for bit in range(CODE_BITS):
        r, c = divmod(bit, cols)
        value = 255 if (index >> bit) & 1 else 0
        img[r * bh : (r + 1) * bh, c * bw : (c + 1) * bw] = value
    # A colour gradient in the lower part so frames are not trivially flat.
    img[rows * bh :, :, 0] = (np.arange(width) * 255 // max(1, width - 1)).astype(np.uint8)
    return img


def read_code(img: np.ndarray) -> int:
    """Inverse of ``code_frame`` for a frame at the same size (after decoding)."""
    height, width = img.shape[:2]
    cols = 6
    rows = math.ceil(CODE_BITS / cols)
    bw, bh = width // cols, min(height // (rows + 1), width // cols)
    gray = img.astype(np.float32).mean(axis=2)
    value = 0
    for bit in range(CODE_BITS):
        r, c = divmod(bit, cols)
        y0, y1 = r * bh + bh // 4, (r + 1) * bh - bh // 4
        x0, x1 = c * bw + bw // 4, (c + 1) * bw - bw // 4
        block = gray[y0:y1, x0:x1]
        if block.mean() > 127:
            value |= 1 << bit
    return value


def tone(
    seconds: float, sample_rate: int = 16000, freq: float = 440.0, channels: int = 1
) -> np.ndarray:
    """A (channels, samples) float32 sine tone at -10 dBFS."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    wave = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(wave[None, :], channels, axis=0)


def encode_clip(
    path: str | Path,
    frames: Iterable[np.ndarray] | None,
    *,
    fps: float = 24,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    audio_codec: str = "aac",
    gop: int | None = None,
    bframes: int | None = None,
    frame_times: Iterable[float] | None = None,
    options: dict[str, str] | None = None,
    container_format: str | None = None,
) -> Path:
    """Encode ``frames`` (H, W, 3 uint8) and/or ``audio`` (channels, samples float32).

    ``frame_times`` (seconds, increasing) gives variable-frame-rate timestamps.
    Output is deterministic for the same inputs (single-threaded encoders).
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = list(frames) if frames is not None else []
    times = list(frame_times) if frame_times is not None else None
    with av.open(str(path), mode="w", format=container_format) as out:
        vstream = astream = None
        if frames:
            height, width = frames[0].shape[:2]
            rate = Fraction(fps).limit_denominator(1001)
            vstream = out.add_stream(codec, rate=rate)
            vstream.width, vstream.height, vstream.pix_fmt = width, height, pix_fmt
            opts = {"threads": "1"} if codec.startswith("libx26") else {}
            if gop is not None:
                vstream.codec_context.gop_size = gop
                if codec == "libx264":
                    opts["keyint"] = str(gop)
                    opts["min-keyint"] = str(min(gop, 25))
                    opts["scenecut"] = "0"
            if bframes is not None:
                vstream.codec_context.max_b_frames = bframes
            opts.update(options or {})
            vstream.options = opts
            if times is not None:
                vstream.codec_context.time_base = Fraction(1, 1000)
        if audio is not None:
            audio = np.asarray(audio, dtype=np.float32)
            if audio.ndim == 1:
                audio = audio[None, :]
            layout = {1: "mono", 2: "stereo", 6: "5.1"}[audio.shape[0]]
            astream = out.add_stream(audio_codec, rate=sample_rate, layout=layout)
        if vstream is not None:
            for i, arr in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
                if times is not None:
                    frame.pts = int(round(times[i] * 1000))
                    frame.time_base = Fraction(1, 1000)
                else:
                    frame.pts = i
                for packet in vstream.encode(frame):
                    out.mux(packet)
            for packet in vstream.encode():
                out.mux(packet)
        if astream is not None:
            chunk = astream.codec_context.frame_size or 1024
            fmt = astream.codec_context.format.name
            for s in range(0, audio.shape[1], chunk):
                part = audio[:, s : s + chunk]
                if fmt.endswith("p"):
                    data = np.ascontiguousarray(part)
                else:
                    data = np.ascontiguousarray(part.T.reshape(1, -1))
                if fmt.startswith("s16"):
                    data = (np.clip(data, -1, 1) * 32767).astype(np.int16)
                af = av.AudioFrame.from_ndarray(data, format=fmt, layout=astream.layout.name)
                af.sample_rate = sample_rate
                af.pts = s
                for packet in astream.encode(af):
                    out.mux(packet)
            for packet in astream.encode():
                out.mux(packet)
    return path


def make_indexed_clip(
    path: str | Path,
    n_frames: int = 48,
    *,
    fps: float = 24,
    size: tuple[int, int] = (128, 96),
    audio: bool = True,
    sample_rate: int = 16000,
    gop: int | None = 12,
    frame_times: list[float] | None = None,
    **kwargs,
) -> Path:
    """A clip whose frame ``i`` shows code ``i`` (see ``read_code``), with a tone track."""
    width, height = size
    frames = [code_frame(i, width, height) for i in range(n_frames)]
    seconds = (frame_times[-1] + 1 / fps) if frame_times else n_frames / fps
    wave = tone(seconds, sample_rate) if audio else None
    return encode_clip(
        path, frames, fps=fps, audio=wave, sample_rate=sample_rate, gop=gop,
        frame_times=frame_times, **kwargs,
    )


def make_clip(
    path: str | Path,
    draw: Callable[[int], np.ndarray],
    n_frames: int,
    **kwargs,
) -> Path:
    """Encode ``draw(i)`` for i in range(n_frames)."""
    return encode_clip(path, (draw(i) for i in range(n_frames)), **kwargs)

"""Audio: decode with PyAV, downmix to mono and resample (libswresample), log-mel features.

Features are either Kaldi-compatible filter banks (``torchaudio.compliance.kaldi.fbank``),
``torchaudio.transforms.MelSpectrogram`` followed by a log, or PANNs' log-mel (``panns``:
the torchlibrosa front end of CNN14, Hann window of ``window_ms`` with n_fft = window,
centred reflect-padded frames, Slaney mel filters from 50 Hz to min(14 kHz, rate / 2),
10 log10 of the power, floored at 1e-10); all are normalised as
``(x - mean) / std`` and returned as (frames, mel_bins) float arrays, optionally cut into
fixed-length slices.
"""

from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from mmprep.errors import SampleError
from mmprep.media.audio_graph import decode_in_graph, graph_path
from mmprep.media.fbank import kaldi_fbank
from mmprep.media.io import open_media, rewind_for
from mmprep.media.norms import audio_norm

_MAX_BAD_PACKETS = 64


@dataclass
class AudioConfig:
    """Audio decoding and log-mel feature options."""

    enabled: bool = True
    sample_rate: int = 16000
    features: Literal["fbank", "melspectrogram", "panns"] = "fbank"
    mel_bins: int = 64
    window_ms: float = 25.0
    hop_ms: float = 10.0
    n_fft: int | None = None  # melspectrogram: next power of two >= window; panns: window
    window: Literal["povey", "hanning", "hamming", "rectangular", "blackman"] = "povey"
    waveform_scale: float = 1.0  # 32768 puts [-1, 1] audio in the int16 range Kaldi expects
    dither: float = 0.0
    log_eps: float = 1e-6  # melspectrogram: log(x + eps)
    mean: float | str = 0.0  # features are stored as (x - mean) / std; or a name (beats)
    std: float | str = 1.0
    target_frames: int | None = None  # pad/cut to this many frames (e.g. 1024 = 10.24 s)
    slices: int = 1  # with target_frames: keep this many slices (VAST-style)
    slice_sampling: Literal["uniform", "random"] = "uniform"
    pad_value: float = 0.0  # value of padded frames, after normalisation
    dtype: Literal["float32", "float16"] = "float32"
    missing: Literal["zeros", "omit", "error"] = "zeros"  # clips without an audio track
    max_seconds: float | None = 4 * 3600.0  # longer decoded audio is an error record

    def __post_init__(self) -> None:
        self.mean = audio_norm(self.mean, "mean")
        self.std = audio_norm(self.std, "std")
        if self.sample_rate < 1000:
            raise ValueError("sample_rate must be >= 1000")
        if self.mel_bins < 1:
            raise ValueError("mel_bins must be >= 1")
        if self.window_ms <= 0 or self.hop_ms <= 0:
            raise ValueError("window_ms and hop_ms must be > 0")
        if self.std == 0:
            raise ValueError("std must not be 0")
        if self.target_frames is not None and self.target_frames < 1:
            raise ValueError("target_frames must be >= 1")
        if self.slices < 1:
            raise ValueError("slices must be >= 1")
        if self.slices > 1 and self.target_frames is None:
            raise ValueError("slices > 1 needs target_frames")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ValueError("max_seconds must be > 0")

    @property
    def window_samples(self) -> int:
        return int(round(self.sample_rate * self.window_ms / 1000))

    @property
    def hop_samples(self) -> int:
        return int(round(self.sample_rate * self.hop_ms / 1000))


@dataclass
class Waveform:
    samples: np.ndarray  # (n,) float32 mono in [-1, 1]
    sample_rate: int
    source_rate: int
    source_channels: int
    codec: str
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.samples.shape[0] / self.sample_rate


def _decode_frames(container, stream, sample_rate: int, hi: float | None,
                   align: bool = False):
    """Demux and decode frame by frame (bad packets skipped), resampling in blocks.

    ``align`` (after a seek): the first source samples are dropped up to one whose
    offset from the stream's start falls on the output rate's grid (a multiple of
    ``source rate / gcd(source rate, rate)`` samples), so the resampled samples sit at
    the times of those of a decode from the start, not up to half an output sample off.
    Not for rates whose grid step is longer than ``ALIGN_MAX_SECONDS`` (e.g. 11127 Hz to
    16 kHz: 1 s), where the drop would eat into the seek's lead before the clip.
    """
    import av

    origin = stream.start_time or 0
    ctx = stream.codec_context
    tb = float(stream.time_base) if stream.time_base else 1.0 / (ctx.sample_rate or 1)
    block = _Blocks(lambda: _MixThenResample(sample_rate))
    first_time: float | None = None
    bad = 0
    decoded = 0.0  # seconds of source audio decoded
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                bad += 1
                if bad > _MAX_BAD_PACKETS:
                    raise
                continue
            for frame in frames:
                if first_time is None:
                    first_time = ((frame.pts - origin) * tb) if frame.pts is not None else 0.0
                    if align and frame.pts is not None and frame.sample_rate:
                        src = frame.sample_rate
                        offset = round(first_time * src)  # in source samples
                        skip = -offset % (src // math.gcd(src, sample_rate))
                        if skip <= ALIGN_MAX_SECONDS * src:
                            block.skip = skip
                            first_time = (offset + skip) / src
                            decoded = -skip / src  # coverage starts after the skip
                block.add(frame)
                decoded += frame.samples / (frame.sample_rate or 1)
            if hi is not None and first_time is not None and (
                first_time + decoded >= hi + 0.1
            ):
                break
        chunks = block.finish()
    except av.error.FFmpegError as exc:
        raise SampleError("audio", f"audio decoding failed: {exc}") from exc
    return chunks, first_time, bad


def decode_audio(
    source: Any,
    sample_rate: int = 16000,
    *,
    start: float | None = None,
    end: float | None = None,
    max_seconds: float | None = None,
    container=None,
) -> Waveform | None:
    """Decode the first audio stream as mono float32 at ``sample_rate``.

    Returns None when the file has no audio stream. ``start``/``end`` cut the clip
    (seconds from the start of the stream); ``max_seconds`` stops decoding early.
    ``container``: ``source`` already opened (e.g. by the video stage): it is rewound
    and read from the start when the clip starts within the first second (where no seek
    is made) and its demuxer rewinds exactly; else the file is opened again, so that a
    seek lands where it lands in a fresh container (a container's index grows as it is
    read, and a seek from a different index may land on another packet).
    """
    if container is not None and (not container.streams.audio or (
            (start or 0.0) <= SEEK_AFTER
            and rewind_for(container, container.streams.audio[0]))):
        opened = contextlib.nullcontext(container)
    else:
        opened = open_media(source, stage="audio")
    with opened as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        ctx = stream.codec_context
        if ctx is None:
            raise SampleError("audio", "the audio stream's codec is unknown or its "
                                       "parameters are damaged (no decoder opens)")
        origin = stream.start_time or 0
        tb = float(stream.time_base) if stream.time_base else 1.0 / (ctx.sample_rate or 1)
        lo = max(0.0, float(start or 0.0))
        hi = None if end is None else float(end)
        if max_seconds is not None:
            hi = lo + max_seconds if hi is None else min(hi, lo + max_seconds)
        fast = None
        declared = float(stream.duration * stream.time_base) if stream.duration else None
        span = None if declared is None else (min(hi, declared) if hi else declared) - lo
        if (lo <= SEEK_AFTER and (span is None or span > GRAPH_MIN_SECONDS)
                and (path := graph_path(source)) is not None):
            fast = decode_in_graph(path, stream, sample_rate, hi)
        if fast is not None:
            (chunks, first_time), bad = fast, 0
        else:
            if lo > SEEK_AFTER and not _seek_before(container, stream,
                                                    int((lo - SEEK_LEAD) / tb) + origin):
                chunks, first_time, bad = _decode_fresh(source, sample_rate, hi)
            else:
                chunks, first_time, bad = _decode_frames(container, stream, sample_rate, hi,
                                                         align=lo > SEEK_AFTER)
        wave = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
        first_time = first_time or 0.0
        a = max(0, int(round((lo - first_time) * sample_rate)))
        b = wave.shape[0] if hi is None else max(a, int(round((hi - first_time) * sample_rate)))
        wave = np.ascontiguousarray(wave[a:b], dtype=np.float32)
        return Waveform(
            samples=wave,
            sample_rate=sample_rate,
            source_rate=ctx.sample_rate or 0,
            source_channels=ctx.channels or 0,
            codec=ctx.name,
            stats={"bad_packets": bad},
        )


# Clips starting later than this (seconds) are reached by a seek, earlier ones by decoding
# from the start.
SEEK_AFTER = 1.0
# The seek lands this long (seconds) before the clip: the decoder and resampler settle.
SEEK_LEAD = 0.5
# Longest drop (seconds) to put a seek on the output grid; well inside SEEK_LEAD. Common
# rates need at most 40 ms (11025 Hz to 16 kHz: 441 samples).
ALIGN_MAX_SECONDS = 0.1


def _seek_before(container, stream, ts: int) -> bool:
    """Seek to the packet at or before ``ts``; False where the demuxer refuses (e.g. an
    AVI audio stream without an index: FFmpeg's generic seek reads ahead and gives up,
    leaving the container anywhere)."""
    import av

    try:
        container.seek(ts, stream=stream, backward=True)
    except av.error.FFmpegError:
        return False
    return True


def _decode_fresh(source: Any, sample_rate: int, hi: float | None):
    """``_decode_frames`` on a fresh open of ``source``, from its start (slower than a
    seek, the same samples)."""
    if hasattr(source, "seek"):
        source.seek(0)
    with open_media(source, stage="audio") as container:
        return _decode_frames(container, container.streams.audio[0], sample_rate, hi)


# The filter graph opens the file a second time (~10 ms for a small MP4 here); below a
# few seconds of audio, decoding frame by frame in the open container costs less.
GRAPH_MIN_SECONDS = 4.0

_DTYPES = {"u8": np.uint8, "s16": np.int16, "s32": np.int32, "s64": np.int64,
           "flt": np.float32, "dbl": np.float64}


class _MixThenResample:
    """Mono float32 at ``rate`` in two libswresample passes: the channels are mixed down
    at the source rate, then the one mono channel is resampled. A single pass (what
    FFmpeg picks for stereo to mono) resamples every channel before mixing: twice the
    filtering for stereo, the costliest step after the decoder. The samples differ from
    the single pass by float rounding only (both are linear; about 1e-7)."""

    def __init__(self, rate: int):
        import av

        self.mix = av.AudioResampler(format="fltp", layout="mono")
        self.rate = av.AudioResampler(format="flt", layout="mono", rate=rate)

    def resample(self, frame):
        if frame is None:  # flush: mixing holds nothing back, the resampler does
            return [out for f in self.mix.resample(None) for out in self.rate.resample(f)
                    ] + self.rate.resample(None)
        return [out for f in self.mix.resample(frame) for out in self.rate.resample(f)]


class _Blocks:
    """Feeds decoded frames to the resampler in blocks of about ``BLOCK_SAMPLES``:
    one call per block instead of one per (1024-sample) frame. libswresample keeps its
    state between calls, so the output is the same stream of samples. Frames are read
    as plane buffers (PyAV's per-frame ``to_ndarray`` costs more than the resampling)."""

    BLOCK_SAMPLES = 1 << 17

    def __init__(self, make_resampler):
        self.make_resampler = make_resampler
        self.resampler = None
        self.planes: list[list[np.ndarray]] = []
        self.key: tuple | None = None
        self.dtype = None
        self.count = 0
        self.skip = 0  # source samples still to drop from the start
        self.out: list[np.ndarray] = []

    def add(self, frame) -> None:
        fmt = frame.format.name
        key = (fmt, frame.layout.name, frame.sample_rate)
        if key != self.key:  # the first frame, or the stream changed format, layout or rate
            self.flush()
            self._drain()  # a resampler takes one setup: the old one gives what it holds
            self.resampler = self.make_resampler()
            self.key, self.dtype = key, _DTYPES.get(fmt.rstrip("p"))
            self.planar = fmt.endswith("p")
            self.width = 1 if self.planar else len(frame.layout.channels)
        if self.dtype is None:
            arrays = list(frame.to_ndarray())
        else:
            n = frame.samples * self.width  # plane buffers may be padded beyond the samples
            arrays = [np.frombuffer(p, dtype=self.dtype, count=n) for p in frame.planes]
        samples = frame.samples
        if self.skip:
            drop = min(self.skip, samples)
            self.skip -= drop
            samples -= drop
            if not samples:
                return
            arrays = [a[drop * self.width:] for a in arrays]
        if not self.planes:
            self.planes = [[] for _ in arrays]
        for dst, arr in zip(self.planes, arrays):
            dst.append(arr)
        self.count += samples
        if self.count >= self.BLOCK_SAMPLES:
            self.flush()

    def flush(self) -> None:
        if not self.planes:
            return
        import av

        data = np.stack([np.concatenate(p) for p in self.planes])
        fmt, layout, rate = self.key
        frame = av.AudioFrame.from_ndarray(data, format=fmt, layout=layout)
        frame.sample_rate = rate
        self.planes, self.count = [], 0
        self._take(self.resampler.resample(frame))

    def _take(self, frames) -> None:
        self.out.extend(f.to_ndarray().reshape(-1) for f in frames)

    def _drain(self) -> None:
        if self.resampler is not None:
            self._take(self.resampler.resample(None))

    def finish(self) -> list[np.ndarray]:
        self.flush()
        self._drain()
        return self.out


PANNS_FMIN = 50.0  # PANNs CNN14's mel range: 50 Hz to min(14 kHz, Nyquist)


def panns_fmax(sample_rate: int) -> float:
    return min(14000.0, sample_rate / 2)


@functools.lru_cache(maxsize=8)
def _panns_transform(sample_rate: int, n_fft: int, hop: int, n_mels: int):
    import torchaudio

    return torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=n_fft, win_length=n_fft, hop_length=hop,
        f_min=PANNS_FMIN, f_max=panns_fmax(sample_rate), n_mels=n_mels, power=2.0,
        center=True, pad_mode="reflect", norm="slaney", mel_scale="slaney",
    )


@functools.lru_cache(maxsize=8)
def _mel_transform(sample_rate: int, n_fft: int, win: int, hop: int, n_mels: int):
    import torchaudio

    return torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=n_fft, win_length=win, hop_length=hop, n_mels=n_mels,
        power=2.0,
    )


def log_mel(samples: np.ndarray, cfg: AudioConfig) -> np.ndarray:
    """Normalised log-mel features, (frames, mel_bins) float32."""
    import torch

    win = cfg.window_samples
    if samples.shape[0] < win:  # shorter than one window: pad to one frame
        samples = np.pad(samples, (0, win - samples.shape[0]))
    wave = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    if cfg.waveform_scale != 1.0:
        wave = wave * cfg.waveform_scale
    with torch.no_grad():
        if cfg.features == "fbank" and cfg.dither == 0.0:
            feats = kaldi_fbank(wave, cfg.sample_rate, cfg.mel_bins, cfg.window_ms,
                                cfg.hop_ms, cfg.window)
        elif cfg.features == "fbank":
            from torchaudio.compliance import kaldi

            feats = kaldi.fbank(
                wave.unsqueeze(0),
                sample_frequency=float(cfg.sample_rate),
                num_mel_bins=cfg.mel_bins,
                frame_length=cfg.window_ms,
                frame_shift=cfg.hop_ms,
                dither=cfg.dither,
                window_type=cfg.window,
            )
        elif cfg.features == "panns":
            mel = _panns_transform(cfg.sample_rate, cfg.n_fft or win, cfg.hop_samples,
                                   cfg.mel_bins)
            feats = 10.0 * torch.log10(torch.clamp(mel(wave), min=1e-10)).T
        else:
            n_fft = cfg.n_fft or 1 << max(0, math.ceil(math.log2(win)))
            mel = _mel_transform(cfg.sample_rate, n_fft, win, cfg.hop_samples, cfg.mel_bins)
            feats = torch.log(mel(wave) + cfg.log_eps).T
        feats = (feats - cfg.mean) / cfg.std
    return feats.numpy().astype(np.float32, copy=False)


def fix_length(
    feats: np.ndarray, cfg: AudioConfig, *, seed: int = 0
) -> tuple[np.ndarray, list[int]]:
    """Cut/pad to ``target_frames``; returns the array and the valid frames per slice.

    The frames are padded (with ``pad_value``) to a whole number of ``target_frames``
    chunks, the chunks are split into ``slices`` equal groups, and one chunk is taken from
    each group: the middle one (``uniform``) or a random one (``random``).
    """
    if cfg.target_frames is None:
        return feats, [int(feats.shape[0])]
    target, n = cfg.target_frames, feats.shape[0]
    total = max(target * cfg.slices, math.ceil(n / target) * target)
    padded = np.full((total, feats.shape[1]), cfg.pad_value, dtype=feats.dtype)
    padded[:n] = feats
    groups = np.array_split(np.arange(total // target), cfg.slices)
    rng = np.random.default_rng(seed)
    picks = [
        int(g[(len(g) + 1) // 2 - 1]) if cfg.slice_sampling == "uniform" else int(rng.choice(g))
        for g in groups
    ]
    out = np.stack([padded[i * target : (i + 1) * target] for i in picks])
    valid = [int(min(target, max(0, n - i * target))) for i in picks]
    return (out[0] if cfg.slices == 1 else out), valid


@dataclass
class AudioFeatures:
    mel: np.ndarray | None  # None when the clip has no audio and missing == "omit"
    has_audio: bool
    valid_frames: list[int]
    meta: dict[str, Any]


def audio_features(
    source: Any,
    cfg: AudioConfig,
    *,
    start: float | None = None,
    end: float | None = None,
    seed: int = 0,
    clip_seconds: float | None = None,
    max_bytes: int | None = None,
    container=None,
) -> AudioFeatures:
    """Decode, featurise and fix the length of one clip's audio, applying ``cfg.missing``.

    Args:
        source: a path, URL or binary file object.
        cfg: sample rate, features, normalisation, length and missing-audio policy.
        start, end: seconds; cut a clip out of a longer file.
        seed: seed of ``random`` slice sampling.
        clip_seconds: the clip's length, which sizes the all-zero features of a clip
            without audio when no ``target_frames`` is set.
        max_bytes: features larger than this are an error (``SampleError``), checked
            before they are allocated.
        container: ``source`` already opened (see ``decode_audio``).
    """
    limit = None if cfg.max_seconds is None else cfg.max_seconds + 1.0
    wave = decode_audio(source, cfg.sample_rate, start=start, end=end, max_seconds=limit,
                        container=container)
    if wave is not None and cfg.max_seconds is not None and (
            wave.samples.shape[0] > cfg.max_seconds * cfg.sample_rate):
        raise SampleError("audio", f"the audio lasts more than audio.max_seconds "
                                   f"{cfg.max_seconds:g} s (--max-audio-seconds)")
    meta: dict[str, Any] = {
        "sample_rate": cfg.sample_rate,
        "features": cfg.features,
        "mel_bins": cfg.mel_bins,
        "hop_s": cfg.hop_ms / 1000,
        "window_s": cfg.window_ms / 1000,
        "window": cfg.window if cfg.features == "fbank" else "hann",
        "waveform_scale": cfg.waveform_scale,
        "mean": cfg.mean,
        "std": cfg.std,
        # the same keys, with the same types, whether or not the clip has audio
        "duration": 0.0,
        "frames": 0,
        "source_sample_rate": 0,
        "source_channels": 0,
        "codec": "",
        "bad_packets": 0,
        "missing_reason": "",
    }
    if wave is None or wave.samples.shape[0] == 0:
        reason = "no audio stream" if wave is None else "audio stream has no samples"
        if cfg.missing == "error":
            raise SampleError("audio", f"{reason} (audio.missing=error)")
        meta["missing_reason"] = reason
        if cfg.missing == "omit":
            return AudioFeatures(None, False, [0] * cfg.slices, meta)
        if cfg.target_frames is not None:
            frames = cfg.target_frames
        else:
            seconds = clip_seconds or 0.0
            frames = max(1, 1 + int((seconds * 1000 - cfg.window_ms) // cfg.hop_ms))
        shape = (frames, cfg.mel_bins) if cfg.slices == 1 else (cfg.slices, frames, cfg.mel_bins)
        nbytes = math.prod(shape) * np.dtype(cfg.dtype).itemsize
        if max_bytes is not None and nbytes > max_bytes:
            raise SampleError("audio", f"{reason}: all-zero features for "
                                       f"{clip_seconds or 0:.0f} s would take "
                                       f"{nbytes / 2**20:.0f} MB, above the sample cap")
        zeros = np.zeros(shape, dtype=cfg.dtype)
        return AudioFeatures(zeros, False, [0] * cfg.slices, meta)
    feats = log_mel(wave.samples, cfg)
    mel, valid = fix_length(feats, cfg, seed=seed)
    meta.update(
        duration=round(wave.duration, 6),
        frames=int(feats.shape[0]),
        source_sample_rate=wave.source_rate,
        source_channels=wave.source_channels,
        codec=wave.codec or "",
        bad_packets=int(wave.stats.get("bad_packets", 0)),
    )
    return AudioFeatures(mel.astype(cfg.dtype, copy=False), True, valid, meta)

"""The extract stages for one sample.

``process_sample`` turns a ``Sample`` into the tar members of the shard contract
(``KEY.json``, ``KEY.fNNN.jpg`` or ``KEY.frames.npy``, ``KEY.mel.npy``, ``KEY.tok.npy``,
``KEY.mask.npy``, ``KEY.txt``); ``run_sample`` wraps it so that a bad sample becomes an
error record instead of an exception.
"""

from __future__ import annotations

import contextlib
import json
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmprep import __version__
from mmprep.config import config_hash, to_dict
from mmprep.errors import SampleError
from mmprep.manifest import Sample
from mmprep.media.audio import AudioConfig, audio_features
from mmprep.media.frames import encode_jpeg
from mmprep.media.io import is_local_file
from mmprep.media.text import TextConfig, clean_captions, get_tokenizer
from mmprep.media.video import VideoConfig, open_video, sample_frames, sample_seed
from mmprep.shards import format as shard_format
from mmprep.shards.format import SAMPLE_FORMAT_VERSION, ShardConfig
from mmprep.shards.writer import npy_bytes

STAGES = ("manifest", "text", "video", "audio", "pack", "write")


@dataclass
class ExtractConfig:
    """Everything that decides the content of the shards (hashed into the metadata)."""

    video: VideoConfig = field(default_factory=VideoConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    text: TextConfig = field(default_factory=TextConfig)
    shards: ShardConfig = field(default_factory=ShardConfig)
    seed: int = 0
    pipeline: str = "default"  # preset name, recorded in the metadata
    # a sample whose members would exceed this many MB is an error record (a tiny file
    # can claim hours of duration; nothing is allocated beyond the cap)
    max_sample_mb: float = 512.0

    def __post_init__(self) -> None:
        if self.max_sample_mb <= 0:
            raise ValueError("max_sample_mb must be > 0")

    def content_hash(self) -> str:
        """Hash of the options that change sample content (not shard grouping, speed,
        or the caps that turn oversized samples into error records)."""
        data = to_dict(self)
        data.pop("shards")
        data.pop("max_sample_mb")
        data["video"].pop("threads")
        data["video"].pop("skip_nonref")
        data["audio"].pop("max_seconds")
        return config_hash(data)

    @property
    def max_sample_bytes(self) -> int:
        return int(self.max_sample_mb * 2**20)


def required_modules(cfg: ExtractConfig) -> list[str]:
    """The libraries the stages of ``cfg`` load (checked before any sample runs)."""
    mods = ["numpy"]
    if cfg.video.enabled or cfg.audio.enabled:
        mods.append("av")
    if cfg.video.enabled:
        mods.append("PIL.Image")
    if cfg.audio.enabled:
        mods += ["torch", "torchaudio.compliance.kaldi" if cfg.audio.features == "fbank"
                 else "torchaudio.transforms"]
    if cfg.text.enabled:
        mods.append("tokenizers")
    return mods


def check_config(cfg: ExtractConfig) -> None:
    """What can be checked once before any sample runs: the tokenizer loads (a bad
    ``--tokenizer`` is one usage error, not an error record per sample)."""
    if cfg.text.enabled:
        from mmprep.media.text import get_tokenizer

        get_tokenizer(cfg.text.tokenizer, cfg.text.max_length, cfg.text.lowercase)


def preflight(cfg: ExtractConfig, what: str = "extract") -> None:
    """Raise ``EnvironmentProblem`` (exit code 4) when a library the stages need does not
    load: a broken install is one clear error, not an error record per sample."""
    from mmprep.environment import preflight as check

    check(required_modules(cfg), what=what)


def decoded_span(fs, video: VideoConfig) -> float:
    """Seconds of the clip that were really decoded. The window comes from the
    container's claimed duration; when the frames stop well before its end (the stream
    ended early: a tiny file can claim hours), the clip ends one frame after the last."""
    lo, hi = fs.window
    if not fs.timestamps:
        return hi - lo
    step = 1.0 / fs.info.fps if fs.info.fps else 0.04
    end = max(fs.timestamps) + step
    segment = (hi - lo) / max(1, len(fs.timestamps))
    return max(0.0, (end if end < hi - max(segment, 2 * step) else hi) - lo)


@contextlib.contextmanager
def _stage(stage: str):
    """Any failure inside becomes a ``SampleError`` of ``stage`` (the cause is kept)."""
    try:
        yield
    except SampleError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure becomes an error record
        raise SampleError(stage, f"{type(exc).__name__}: {exc}") from exc


def failure_record(sample: Sample, stage: str, type_name: str, message: str) -> dict[str, Any]:
    """The error record of a sample: where it came from, which stage failed, and why."""
    return {
        "key": sample.key,
        "index": sample.index,
        "source": sample.source,
        "lines": sample.lines,
        "stage": stage,
        "type": type_name,
        "message": message,
        "sample": sample.to_dict(),  # everything needed to retry it (retry-failed)
    }


def error_record(sample: Sample, exc: SampleError) -> dict[str, Any]:
    cause = exc.__cause__
    type_name = type(cause).__name__ if cause is not None else "SampleError"
    return failure_record(sample, exc.stage, type_name, str(exc))


def process_sample(
    sample: Sample,
    cfg: ExtractConfig,
    timings: dict[str, float] | None = None,
    on_stage=None,
    *,
    pipeline_hash: str | None = None,
) -> tuple[list[tuple[str, bytes]], dict[str, Any]]:
    """Run all stages for one sample; returns (tar members, metadata).

    Raises ``SampleError`` (with the failing stage) for any problem with this sample.
    ``on_stage(name)`` is called when a stage starts (used to report hung stages).
    A local file is opened once: the video stage reads it, the audio stage rewinds it.
    ``pipeline_hash``: ``cfg.content_hash()`` when the caller has it (a run computes it
    once instead of once per sample).
    """
    with contextlib.ExitStack() as media:
        return _process(sample, cfg, timings, on_stage, media,
                        pipeline_hash or cfg.content_hash())


def _process(sample: Sample, cfg: ExtractConfig, timings: dict[str, float] | None, on_stage,
             media: contextlib.ExitStack, pipeline_hash: str
             ) -> tuple[list[tuple[str, bytes]], dict[str, Any]]:
    timings = timings if timings is not None else {}
    on_stage = on_stage or (lambda stage: None)
    if sample.error:
        raise SampleError("manifest", sample.error)
    seed = sample_seed(cfg.seed, sample.key)
    clip_len = None if sample.end is None else sample.end - (sample.start or 0.0)
    # Every field keeps one JSON type across samples (readers such as Hugging Face
    # datasets infer a schema from the first samples): unknown numbers are 0, absent
    # strings "", lists of strings joined into one string where they are often empty.
    meta: dict[str, Any] = {
        "format_version": SAMPLE_FORMAT_VERSION,
        "key": sample.key,
        "source": sample.source,
        "source_key": sample.source_key,
        "index": sample.index,
        "split": sample.split or "",
        "start": float(sample.start or 0.0),
        "end": 0.0,  # set below: the end of the clip that was read
    }
    members: list[tuple[str, bytes]] = []
    warnings: list[str] = []

    on_stage("text")
    t0 = time.perf_counter()
    with _stage("text"):
        captions, text_warnings = clean_captions(sample.captions, cfg.text)
        warnings += text_warnings
        tok = None
        if cfg.text.enabled:
            tokenizer = get_tokenizer(cfg.text.tokenizer, cfg.text.max_length, cfg.text.lowercase)
            tok = tokenizer(captions)
    timings["text"] = timings.get("text", 0.0) + time.perf_counter() - t0

    frame_members: list[tuple[str, bytes]] = []
    shared = None  # the container the video stage opened, for the audio stage
    if cfg.video.enabled:
        on_stage("video")
        t0 = time.perf_counter()
        with _stage("video"):
            if cfg.audio.enabled and is_local_file(sample.source):
                shared = media.enter_context(open_video(sample.source, cfg.video))
            jpg = cfg.video.format == "jpg"
            fs = sample_frames(
                sample.source, cfg.video, start=sample.start, end=sample.end, seed=seed,
                transform=(lambda a: (encode_jpeg(a, cfg.video.jpeg_quality), a.shape)) if jpg
                else None, container=shared,
            )
            if jpg:
                frame_members = [(shard_format.frame_member(i), f[0])
                                 for i, f in enumerate(fs.frames)]
                out_shape = fs.frames[0][1]
            else:
                import numpy as np

                frame_members = [(shard_format.RAW_FRAMES, npy_bytes(np.stack(fs.frames)))]
                out_shape = fs.frames[0].shape
        timings["video"] = timings.get("video", 0.0) + time.perf_counter() - t0
        info = fs.info
        clip_len = decoded_span(fs, cfg.video)
        height, width = out_shape[:2]
        meta["video"] = {
            "codec": info.codec,
            "width": info.width,
            "height": info.height,
            "rotation": info.rotation,
            "fps": round(info.fps, 6) if info.fps else 0.0,
            "stream_duration": round(info.duration, 6) if info.duration else 0.0,
            "sampling": cfg.video.sampling,
            "num_frames": len(fs.frames),
            "frame_timestamps": fs.timestamps,
            "size": [height, width],
            "resize": cfg.video.resize,
            "format": cfg.video.format,
            "mean": list(cfg.video.mean) if cfg.video.mean else None,
            "std": list(cfg.video.std) if cfg.video.std else None,
        }
        if len(set(fs.timestamps)) < len(fs.timestamps):
            warnings.append("fewer distinct frames than requested: some frames repeat")
        if fs.stats.get("bad_packets"):
            warnings.append(f"video: {fs.stats['bad_packets']} undecodable packet(s) skipped")

    mel = None
    if cfg.audio.enabled:
        on_stage("audio")
        t0 = time.perf_counter()
        with _stage("audio"):
            af = audio_features(sample.source, cfg.audio, start=sample.start, end=sample.end,
                                seed=seed, clip_seconds=clip_len,
                                max_bytes=cfg.max_sample_bytes, container=shared)
        timings["audio"] = timings.get("audio", 0.0) + time.perf_counter() - t0
        mel = af.mel
        if clip_len is None and af.has_audio:
            clip_len = af.meta.get("duration")
        meta["has_audio"] = af.has_audio
        shape = list(mel.shape) if mel is not None else [
            *([cfg.audio.slices] if cfg.audio.slices > 1 else []), 0, cfg.audio.mel_bins]
        meta["audio"] = {**af.meta, "valid_frames": af.valid_frames, "shape": shape}
        if af.meta.get("bad_packets"):
            warnings.append(f"audio: {af.meta['bad_packets']} undecodable packet(s) skipped")
    else:
        meta["has_audio"] = False

    video_meta = meta.get("video", {})
    clip_len = max(0.0, clip_len or 0.0)
    meta["end"] = round(meta["start"] + clip_len, 6)
    meta.update(
        duration=round(clip_len, 6),
        fps=video_meta.get("fps"),
        size=video_meta.get("size"),
        frame_timestamps=video_meta.get("frame_timestamps"),
        audio_rate=cfg.audio.sample_rate if cfg.audio.enabled else None,
        mel_hop=cfg.audio.hop_ms / 1000 if cfg.audio.enabled else None,
        captions=captions,
        num_captions=len(captions),
    )
    if tok is not None:
        meta["text"] = {
            "tokenizer": cfg.text.tokenizer,
            "max_length": cfg.text.max_length,
            "pad_id": tokenizer.pad_id,
            "attention_mask": cfg.text.attention_mask,
            "lengths": [int(x) for x in tok.mask.sum(axis=1)],
            "truncated": tok.truncated,
        }
    meta.update(
        meta=sample.meta,
        warnings="\n".join(warnings),
        num_warnings=len(warnings),
        pipeline=cfg.pipeline,
        pipeline_hash=pipeline_hash,
        mmprep_version=__version__,
    )
    on_stage("pack")
    size = sum(len(d) for _, d in frame_members) + (mel.nbytes if mel is not None else 0)
    if size > cfg.max_sample_bytes:
        raise SampleError("pack", f"the sample would take {size / 2**20:.0f} MB, above "
                                  f"max_sample_mb {cfg.max_sample_mb:g} (--max-sample-mb)")
    members.append((shard_format.META, json.dumps(meta, ensure_ascii=False).encode("utf-8")))
    members.extend(frame_members)
    if mel is not None:
        members.append((shard_format.MEL, npy_bytes(mel)))
    if tok is not None:
        members.append((shard_format.TOKENS, npy_bytes(tok.ids)))
        if cfg.text.attention_mask:
            members.append((shard_format.MASK, npy_bytes(tok.mask)))
    members.append((shard_format.CAPTION, (captions[0] if captions else "").encode("utf-8")))
    return members, meta


@dataclass
class Outcome:
    """The result of one sample: tar members, or an error record."""

    members: list[tuple[str, bytes]] | None
    warnings: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    error: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def nbytes(self) -> int:
        return sum(len(d) for _, d in self.members) if self.members else 0


def run_sample(sample: Sample, cfg: ExtractConfig, on_stage=None, *,
               pipeline_hash: str | None = None) -> Outcome:
    """``process_sample`` that returns an error record instead of raising."""
    timings: dict[str, float] = {}
    try:
        members, meta = process_sample(sample, cfg, timings, on_stage,
                                       pipeline_hash=pipeline_hash)
    except SampleError as exc:
        record = error_record(sample, exc)
        cause = exc.__cause__
        if cause is not None and exc.stage != "manifest":
            tb = traceback.extract_tb(cause.__traceback__)
            if tb:
                record["where"] = f"{Path(tb[-1].filename).name}:{tb[-1].lineno}"
        return Outcome(None, 0, timings, record)
    return Outcome(members, meta["num_warnings"], timings)

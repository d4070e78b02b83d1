"""Extract throughput on generated sample clips, pinned to one CPU core.

Baselines, measured in the same run on the same clips and core, in interleaved rounds:

- a shell-style loop around the ``ffmpeg`` command line that writes each clip's N frames
  as JPEG and its audio as a 16 kHz mono WAV (two processes per clip), i.e. less work
  than mmprep does (no features, no tokens, no shards);
- the same job as a plain script on the usual libraries (``torchcodec_script``):
  torchcodec's ``VideoDecoder`` for the frames at mmprep's target times resized and
  centre-cropped to the same size, JPEG by Pillow, torchaudio's Kaldi fbank on
  torchcodec's ``AudioDecoder`` samples, the same WordPiece vocabulary, webdataset's
  ``TarWriter``. Skipped with a note where torchcodec or webdataset does not load.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mmprep.bench import machine_description
from mmprep.bench.decode import default_cache_dir
from mmprep.results import Result


@contextlib.contextmanager
def one_core():
    """Pin this process (and the processes it starts) to a single CPU core."""
    if not hasattr(os, "sched_getaffinity"):
        yield None
        return
    before = os.sched_getaffinity(0)
    core = min(before)
    os.sched_setaffinity(0, {core})
    try:
        yield core
    finally:
        os.sched_setaffinity(0, before)


def sample_clips(n: int, seconds: float, cache_dir: Path | None = None) -> Path:
    """Manifest of ``n`` generated 320x240 clips (cached between runs)."""
    from mmprep.synthetic.clips import write_sample_data

    folder = (cache_dir or default_cache_dir()) / f"clips_n{n}_s{seconds:g}"
    manifest = folder / "manifest.jsonl"
    if not manifest.exists():
        write_sample_data(folder, n, seconds=seconds, fps=25, size=(320, 240), progress=True)
    return manifest


def ffmpeg_loop(sources: list[str], frames: int, size: int, work: Path) -> None:
    for i, src in enumerate(sources):
        out = work / f"c{i}"
        out.mkdir(parents=True, exist_ok=True)
        # Every k-th frame (k spreads N frames over a 2 s, 25 fps clip), shorter side to
        # `size` and centre crop: the same geometry mmprep produces.
        step = max(1, 50 // frames)
        vf = (f"select='not(mod(n\\,{step}))',"
              f"scale={size}:{size}:force_original_aspect_ratio=increase,crop={size}:{size}")
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-threads", "1", "-i", src,
             "-vf", vf, "-vsync", "vfr",
             "-frames:v", str(frames), "-q:v", "3", str(out / "f%03d.jpg")],
            check=True,
        )
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-threads", "1", "-i", src,
             "-vn", "-ac", "1", "-ar", "16000", str(out / "audio.wav")],
            check=True,
        )


def torchcodec_script(samples, cfg, out: Path) -> None:
    """The extract job as a user would script it with torchcodec + torchaudio +
    webdataset, in this process: per clip, ``cfg.video.num_frames`` frames at the middle
    of equal segments (mmprep's uniform times) resized on the shorter side and
    centre-cropped to ``cfg.video.size``, as JPEG; a Kaldi fbank of the 16 kHz mono audio
    (normalised, padded or cut to ``cfg.audio.target_frames``); the captions' token ids
    and masks; one tar shard. torchcodec's ``Resize`` is bilinear (mmprep's preset may
    say bicubic); the rest matches mmprep's members to float rounding."""
    import io

    import numpy as np
    import torch
    import webdataset as wds
    from PIL import Image
    from tokenizers import BertWordPieceTokenizer
    from torchaudio.compliance import kaldi
    from torchcodec.decoders import AudioDecoder, VideoDecoder
    from torchcodec.transforms import Resize

    from mmprep.media.text import _packaged_vocab

    v, a, size = cfg.video, cfg.audio, cfg.video.size or 224
    tok = BertWordPieceTokenizer(str(_packaged_vocab()), lowercase=True)
    tok.enable_truncation(cfg.text.max_length)
    tok.enable_padding(length=cfg.text.max_length)
    out.mkdir(parents=True, exist_ok=True)
    src_size, resize = None, None  # the resize chosen for the previous clip's size

    def open_video(path, resize):
        return VideoDecoder(path, dimension_order="NHWC", num_ffmpeg_threads=1,
                            seek_mode="approximate",
                            transforms=None if resize is None else [Resize(size=resize)])

    with wds.TarWriter(str(out / "shard-000000.tar")) as sink:
        for s in samples:
            # Opened once per clip while clips share a size (reopened when it changes).
            dec = open_video(s.source, resize)
            if (dec.metadata.width, dec.metadata.height) != src_size:
                w, h = src_size = dec.metadata.width, dec.metadata.height
                scale = size / min(w, h)
                resize = (max(size, round(h * scale)), max(size, round(w * scale)))
                dec = open_video(s.source, resize)
            rh, rw = resize
            dur = dec.metadata.duration_seconds
            times = [(i + 0.5) * dur / v.num_frames for i in range(v.num_frames)]
            frames = dec.get_frames_played_at(seconds=times).data.numpy()
            top, left = (rh - size) // 2, (rw - size) // 2
            item = {"__key__": s.key}
            for i, f in enumerate(frames):
                buf = io.BytesIO()
                Image.fromarray(f[top:top + size, left:left + size]).save(
                    buf, format="JPEG", quality=v.jpeg_quality)
                item[f"f{i:03d}.jpg"] = buf.getvalue()
            wave = AudioDecoder(s.source, sample_rate=a.sample_rate,
                                num_channels=1).get_all_samples().data
            with torch.no_grad():
                fb = kaldi.fbank(wave * a.waveform_scale, sample_frequency=a.sample_rate,
                                 num_mel_bins=a.mel_bins, frame_length=a.window_ms,
                                 frame_shift=a.hop_ms, dither=0.0, window_type=a.window)
            fb = ((fb - a.mean) / a.std).numpy()
            n = a.target_frames or fb.shape[0]
            mel = np.zeros((n, fb.shape[1]), np.float32)
            mel[: min(n, fb.shape[0])] = fb[:n]
            enc = tok.encode_batch(s.captions or [""])
            item["mel.npy"] = mel
            item["tok.npy"] = np.asarray([e.ids for e in enc], np.int32)
            item["mask.npy"] = np.asarray([e.attention_mask for e in enc], np.uint8)
            item["txt"] = s.captions[0] if s.captions else ""
            sink.write(item)


def _script_unavailable() -> str | None:
    try:
        import torchcodec.decoders  # noqa: F401
        import webdataset  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure skips the baseline
        return f"does not load: {str(exc).splitlines()[0][:120]}"
    return None


@dataclass(kw_only=True)
class ExtractBench(Result):
    """Extract throughput on ``clips`` generated clips pinned to one CPU core (``core``),
    against a shell loop of ffmpeg commands and a torchcodec + torchaudio + webdataset
    script on the same core and clips. The goal ratios are ``speedup_vs_ffmpeg_loop``
    and ``speedup_vs_script`` (times faster than the baseline); a baseline's fields are
    None when it did not run. ``machine`` counts the cores usable before pinning."""

    clips: int
    clip_seconds: float
    pipeline: str
    input_mb: float
    core: int | None  # None where the OS cannot pin a process
    repeat: int  # interleaved rounds; the seconds are medians
    mmprep_s: float
    mmprep_runs_s: list[float]
    ok: int
    failed: int
    clips_per_s: float
    input_mb_per_s: float
    output_mb: float
    stage_seconds: dict[str, float]
    ffmpeg_loop_s: float | None = None
    ffmpeg_loop_clips_per_s: float | None = None
    speedup_vs_ffmpeg_loop: float | None = None
    # torchcodec + torchaudio + webdataset script (goal: speedup_vs_script >= 1.2)
    script_s: float | None = None
    script_runs_s: list[float] | None = None
    script_clips_per_s: float | None = None
    speedup_vs_script: float | None = None
    script_skipped: str | None = None  # why the script did not run
    machine: str


def bench_extract(
    n: int = 64,
    *,
    seconds: float = 2.0,
    pipeline: str = "gram-vast",
    cache_dir: Path | None = None,
    ffmpeg: bool = True,
    script: bool = True,
    repeat: int = 1,
) -> ExtractBench:
    """Time ``extract`` and the baselines on the same generated clips and core, in
    ``repeat`` interleaved rounds (medians reported).

    Args:
        n: generated sample clips (320x240, 25 fps, H.264 + AAC).
        seconds: length of each clip.
        pipeline: extract preset.
        cache_dir: where the generated clips are kept between runs (default: the user's
            cache, ``~/.cache/mmprep/bench``).
        ffmpeg: run the ffmpeg loop when the ``ffmpeg`` command is installed.
        script: run the torchcodec + torchaudio + webdataset script when they load.
        repeat: rounds; each runs mmprep, then each baseline.
    """
    import statistics

    import torch

    from mmprep.extract import RunOptions, extract
    from mmprep.extract.sample import ExtractConfig
    from mmprep.manifest import read_manifest
    from mmprep.presets import build_config

    machine = machine_description()
    manifest = sample_clips(n, seconds, cache_dir)
    samples = read_manifest(manifest)
    cfg = build_config(ExtractConfig, "extract", pipeline=pipeline,
                       values={"video.threads": 1, "shards.samples_per_shard": 256})
    input_bytes = sum(os.path.getsize(s.source) for s in samples)
    use_ffmpeg = ffmpeg and shutil.which("ffmpeg") is not None
    script_note = _script_unavailable() if script else "not run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    times: dict[str, list[float]] = {"mmprep": [], "ffmpeg": [], "script": []}
    try:
        with one_core() as core, tempfile.TemporaryDirectory() as tmp:
            # Warm-up: imports, tokenizer and filter banks are loaded once per process.
            extract(samples[:1], Path(tmp) / "warm", cfg, RunOptions(progress=False))
            if script_note is None:
                try:
                    torchcodec_script(samples[:1], cfg, Path(tmp) / "warm-script")
                except Exception as exc:  # noqa: BLE001 - a failing baseline is a note
                    script_note = f"failed: {type(exc).__name__}: {str(exc)[:120]}"
            for r in range(repeat):
                t0 = time.perf_counter()
                summary = extract(samples, Path(tmp) / f"out{r}", cfg,
                                  RunOptions(progress=False))
                times["mmprep"].append(time.perf_counter() - t0)
                if use_ffmpeg:
                    t0 = time.perf_counter()
                    ffmpeg_loop([s.source for s in samples], cfg.video.num_frames,
                                cfg.video.size or 224, Path(tmp) / f"ffmpeg{r}")
                    times["ffmpeg"].append(time.perf_counter() - t0)
                if script_note is None:
                    t0 = time.perf_counter()
                    torchcodec_script(samples, cfg, Path(tmp) / f"script{r}")
                    times["script"].append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    elapsed = statistics.median(times["mmprep"])
    result = ExtractBench(
        clips=n,
        clip_seconds=seconds,
        pipeline=pipeline,
        input_mb=round(input_bytes / 1e6, 3),
        core=core,
        repeat=repeat,
        mmprep_s=round(elapsed, 3),
        mmprep_runs_s=[round(t, 3) for t in times["mmprep"]],
        ok=summary.ok,
        failed=summary.failed,
        clips_per_s=round(n / elapsed, 2),
        input_mb_per_s=round(input_bytes / 1e6 / elapsed, 3),
        output_mb=round(summary.output_bytes / 1e6, 3),
        stage_seconds=summary.stages,
        script_skipped=script_note,
        machine=machine,
    )
    if times["ffmpeg"]:
        t_ff = statistics.median(times["ffmpeg"])
        result.ffmpeg_loop_s = round(t_ff, 3)
        result.ffmpeg_loop_clips_per_s = round(n / t_ff, 2)
        result.speedup_vs_ffmpeg_loop = round(t_ff / elapsed, 2)
    if times["script"]:
        t_sc = statistics.median(times["script"])
        result.script_s = round(t_sc, 3)
        result.script_runs_s = [round(t, 3) for t in times["script"]]
        result.script_clips_per_s = round(n / t_sc, 2)
        result.speedup_vs_script = round(t_sc / elapsed, 2)
    return result

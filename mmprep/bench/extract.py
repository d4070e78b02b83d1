"""Extract throughput on generated sample clips, pinned to one CPU core.

Baseline, measured in the same run on the same clips and core: a shell-style loop
around the ``ffmpeg`` command line that writes each clip's N frames as JPEG and its
audio as a 16 kHz mono WAV (two processes per clip), i.e. less work than mmprep does
(no features, no tokens, no shards).
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


@dataclass(kw_only=True)
class ExtractBench(Result):
    """Extract throughput on ``clips`` generated clips pinned to one CPU core (``core``),
    against a shell loop of ffmpeg commands on the same core and clips. The goal ratio
    is ``speedup_vs_ffmpeg_loop`` (times faster than the loop); the ffmpeg fields are
    None when the loop did not run. ``machine`` counts the cores usable before pinning."""

    clips: int
    clip_seconds: float
    pipeline: str
    input_mb: float
    core: int | None  # None where the OS cannot pin a process
    mmprep_s: float
    ok: int
    failed: int
    clips_per_s: float
    input_mb_per_s: float
    output_mb: float
    stage_seconds: dict[str, float]
    ffmpeg_loop_s: float | None = None
    ffmpeg_loop_clips_per_s: float | None = None
    speedup_vs_ffmpeg_loop: float | None = None
    machine: str


def bench_extract(
    n: int = 64,
    *,
    seconds: float = 2.0,
    pipeline: str = "gram-vast",
    cache_dir: Path | None = None,
    ffmpeg: bool = True,
) -> ExtractBench:
    """Time ``extract`` and the ffmpeg loop on the same generated clips and core.

    Args:
        n: generated sample clips (320x240, 25 fps, H.264 + AAC).
        seconds: length of each clip.
        pipeline: extract preset.
        cache_dir: where the generated clips are kept between runs (default: the user's
            cache, ``~/.cache/mmprep/bench``).
        ffmpeg: run the baseline when the ``ffmpeg`` command is installed.
    """
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
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with one_core() as core, tempfile.TemporaryDirectory() as tmp:
            # Warm-up: imports, tokenizer and filter banks are loaded once per process.
            extract(samples[:1], Path(tmp) / "warm", cfg, RunOptions(progress=False))
            t0 = time.perf_counter()
            summary = extract(samples, Path(tmp) / "out", cfg, RunOptions(progress=False))
            elapsed = time.perf_counter() - t0
            result = ExtractBench(
                clips=n,
                clip_seconds=seconds,
                pipeline=pipeline,
                input_mb=round(input_bytes / 1e6, 3),
                core=core,
                mmprep_s=round(elapsed, 3),
                ok=summary.ok,
                failed=summary.failed,
                clips_per_s=round(n / elapsed, 2),
                input_mb_per_s=round(input_bytes / 1e6 / elapsed, 3),
                output_mb=round(summary.output_bytes / 1e6, 3),
                stage_seconds=summary.stages,
                machine=machine,
            )
            if ffmpeg and shutil.which("ffmpeg"):
                t0 = time.perf_counter()
                ffmpeg_loop([s.source for s in samples], cfg.video.num_frames,
                            cfg.video.size or 224, Path(tmp) / "ffmpeg")
                t_ff = time.perf_counter() - t0
                result.ffmpeg_loop_s = round(t_ff, 3)
                result.ffmpeg_loop_clips_per_s = round(n / t_ff, 2)
                result.speedup_vs_ffmpeg_loop = round(t_ff / elapsed, 2)
    finally:
        torch.set_num_threads(threads)
    return result

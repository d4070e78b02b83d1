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
from pathlib import Path
from typing import Any

from mmprep.bench.decode import default_cache_dir


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


def bench_extract(
    n: int = 64,
    *,
    seconds: float = 2.0,
    pipeline: str = "gram-vast",
    cache_dir: Path | None = None,
    ffmpeg: bool = True,
) -> dict[str, Any]:
    import torch

    from mmprep.extract import RunOptions, extract
    from mmprep.extract.sample import ExtractConfig
    from mmprep.manifest import read_manifest
    from mmprep.presets import build_config

    manifest = sample_clips(n, seconds, cache_dir)
    samples = read_manifest(manifest)
    cfg = build_config(ExtractConfig, "extract", pipeline=pipeline,
                       values={"video.threads": 1, "shards.samples_per_shard": 256})
    input_bytes = sum(os.path.getsize(s.source) for s in samples)
    result: dict[str, Any] = {"clips": n, "clip_seconds": seconds, "pipeline": pipeline,
                              "input_mb": round(input_bytes / 1e6, 3)}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with one_core() as core, tempfile.TemporaryDirectory() as tmp:
            result["core"] = core
            # Warm-up: imports, tokenizer and filter banks are loaded once per process.
            extract(samples[:1], Path(tmp) / "warm", cfg, RunOptions(progress=False))
            t0 = time.perf_counter()
            summary = extract(samples, Path(tmp) / "out", cfg, RunOptions(progress=False))
            elapsed = time.perf_counter() - t0
            result.update(
                mmprep_s=round(elapsed, 3),
                ok=summary.ok,
                failed=summary.failed,
                clips_per_s=round(n / elapsed, 2),
                input_mb_per_s=round(input_bytes / 1e6 / elapsed, 3),
                output_mb=round(summary.output_bytes / 1e6, 3),
                stage_seconds=summary.stages,
            )
            if ffmpeg and shutil.which("ffmpeg"):
                t0 = time.perf_counter()
                ffmpeg_loop([s.source for s in samples], cfg.video.num_frames,
                            cfg.video.size or 224, Path(tmp) / "ffmpeg")
                t_ff = time.perf_counter() - t0
                result["ffmpeg_loop_s"] = round(t_ff, 3)
                result["ffmpeg_loop_clips_per_s"] = round(n / t_ff, 2)
                result["speedup_vs_ffmpeg_loop"] = round(t_ff / elapsed, 2)
    finally:
        torch.set_num_threads(threads)
    return result

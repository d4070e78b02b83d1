"""Scaling and overhead of the extract runner, measured in one run on the same clips.

- overhead: ``extract --workers 1`` (worker process, IPC, timeouts, in-order shard writing,
  stats files) against a bare in-process loop of ``run_sample`` + tar writing, both
  pinned to the same single core;
- scaling: ``--workers 2`` against ``--workers 1`` on all cores.

The worker server is started once before timing (a fixed cost of a few seconds per run,
not per clip).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mmprep.bench import machine_description
from mmprep.bench.extract import one_core, sample_clips
from mmprep.results import Result


def bare_loop(samples, cfg, out_dir: Path) -> float:
    """The same per-sample work with no fault tolerance around it."""
    from mmprep.extract.sample import run_sample
    from mmprep.shards.writer import ShardWriter
    from mmprep.storage import LocalStore

    store = LocalStore(out_dir)
    store.mkdirs()
    t0 = time.perf_counter()
    per = cfg.shards.samples_per_shard
    for start in range(0, len(samples), per):
        writer = ShardWriter(store, "bare", start // per)
        for sample in samples[start : start + per]:
            outcome = run_sample(sample, cfg)
            if outcome.ok:
                writer.write(sample.key, outcome.members)
        writer.close()
    return time.perf_counter() - t0


@dataclass(kw_only=True)
class ScaleBench(Result):
    """The extract runner on ``clips`` generated clips (fastest of ``repeat`` rounds
    each): its overhead over a bare in-process loop on one core (``overhead_pct``, goal:
    small) and the scaling from 1 to 2 workers (``speedup_2_vs_1``, the goal ratio:
    >= 1.7x). ``machine`` counts the cores usable outside the single-core rounds."""

    clips: int
    clip_seconds: float
    pipeline: str
    bare_loop_1core_s: float
    workers1_1core_s: float
    overhead_pct: float  # extract --workers 1 vs the bare loop, both on one core
    workers1_s: float
    workers2_s: float
    workers1_clips_per_s: float
    workers2_clips_per_s: float
    speedup_2_vs_1: float
    machine: str


def bench_scale(n: int = 128, *, seconds: float = 2.0, pipeline: str = "gram-vast",
                repeat: int = 3) -> ScaleBench:
    """Time the bare loop and ``extract`` with 1 and 2 workers on the same clips.

    Args:
        n: generated sample clips (320x240, 25 fps, H.264 + AAC), cached under the
            user's cache folder (``~/.cache/mmprep/bench``).
        seconds: length of each clip.
        pipeline: extract preset.
        repeat: rounds, the settings interleaved within each; the fastest run of each
            setting is reported.
    """
    import torch

    from mmprep.extract import RunOptions, extract
    from mmprep.extract.executors.pool import SamplePool
    from mmprep.extract.options import PoolOptions
    from mmprep.extract.sample import ExtractConfig
    from mmprep.manifest import read_manifest
    from mmprep.presets import build_config

    machine = machine_description()
    samples = read_manifest(sample_clips(n, seconds))
    cfg = build_config(ExtractConfig, "extract", pipeline=pipeline,
                       values={"video.threads": 1, "shards.samples_per_shard": 32})
    torch.set_num_threads(1)
    SamplePool(cfg, 1).close()  # start the worker server outside the timings

    def run(workers: int, out: Path) -> float:
        t0 = time.perf_counter()
        extract(samples, out, cfg, RunOptions(progress=False, pool=PoolOptions(workers=workers)))
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {"bare": [], "w1_pinned": [], "w1": [], "w2": []}
    with tempfile.TemporaryDirectory() as tmp:
        bare_loop(samples[:2], cfg, Path(tmp) / "warm")  # imports, tokenizer, filter banks
        for r in range(repeat):
            with one_core():
                times["bare"].append(bare_loop(samples, cfg, Path(tmp) / f"bare{r}"))
                times["w1_pinned"].append(run(1, Path(tmp) / f"p{r}"))
            times["w1"].append(run(1, Path(tmp) / f"a{r}"))
            times["w2"].append(run(2, Path(tmp) / f"b{r}"))
    best = {k: min(v) for k, v in times.items()}
    return ScaleBench(
        clips=n,
        clip_seconds=seconds,
        pipeline=pipeline,
        bare_loop_1core_s=round(best["bare"], 3),
        workers1_1core_s=round(best["w1_pinned"], 3),
        overhead_pct=round(100 * (best["w1_pinned"] / best["bare"] - 1), 1),
        workers1_s=round(best["w1"], 3),
        workers2_s=round(best["w2"], 3),
        workers1_clips_per_s=round(n / best["w1"], 2),
        workers2_clips_per_s=round(n / best["w2"], 2),
        speedup_2_vs_1=round(best["w1"] / best["w2"], 2),
        machine=machine,
    )

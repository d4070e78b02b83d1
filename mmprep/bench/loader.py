"""Loader throughput: ``mmprep.loader`` vs a hand-written webdataset pipeline.

Both read the same shards and do the same work per sample: parse ``KEY.json``, decode
every stored JPEG frame (torchvision's libjpeg-turbo decoder in both), stack and
normalise them with the recorded mean/std, load the log-mel, take one caption's tokens
and mask, and batch with padding. The baseline is what a trainer writes with
webdataset (``WebDataset`` + ``map`` + ``batched`` + ``WebLoader``); mmprep's loader
additionally shuffles the samples over all shards, splits them over ranks and workers
and keeps its resume state. Rounds interleave the two, for 1 and 2 workers.

Random access: reading every sample's raw members in a random order through the
shard index (mmprep, one seek and read per sample) and through ``wids`` (the
``NAME-wids.json`` extract writes), against streaming the tars in order.
"""

from __future__ import annotations

import io
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mmprep.bench import machine_description
from mmprep.results import Result


@dataclass(kw_only=True)
class LoaderRow(Result):
    """One worker count: medians over the rounds."""

    workers: int
    mmprep_samples_per_s: float
    baseline_samples_per_s: float
    ratio: float  # mmprep / baseline samples per second (goal >= 1.0)
    mmprep_mb_per_s: float
    baseline_mb_per_s: float
    runs_s: dict[str, list[float]]  # "mmprep" / "baseline" -> seconds of each round


@dataclass(kw_only=True)
class LoaderBench(Result):
    """``mmprep.loader`` vs a webdataset pipeline doing the same decoding (``rows``), and
    random access vs streaming over the raw members (samples/s; ``wids_samples_per_s``
    is None without wids installed)."""

    clips: int
    shards: int
    bytes: int
    frames_per_clip: int
    batch_size: int
    rounds: int
    rows: list[LoaderRow]
    streaming_samples_per_s: float
    index_random_samples_per_s: float
    wids_random_samples_per_s: float | None
    machine: str


def _baseline_sample(sample: dict):
    """What a trainer writes for webdataset: the same work as mmprep's loader."""
    import numpy as np
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    meta = json.loads(sample["json"])
    names = sorted(k for k in sample if k.endswith(".jpg"))
    frames = torch.stack([decode_jpeg(torch.frombuffer(bytearray(sample[n]), dtype=torch.uint8),
                                      mode=ImageReadMode.RGB) for n in names])
    video = frames.float().div_(255.0)
    if meta["video"].get("mean"):
        video.sub_(torch.tensor(meta["video"]["mean"]).view(1, 3, 1, 1)).div_(
            torch.tensor(meta["video"]["std"]).view(1, 3, 1, 1))
    out = {"__key__": sample["__key__"], "video": video}
    if "mel.npy" in sample:
        out["audio"] = torch.from_numpy(np.load(io.BytesIO(sample["mel.npy"])))
    ids = np.load(io.BytesIO(sample["tok.npy"]))
    mask = np.load(io.BytesIO(sample["mask.npy"]))
    out["text_ids"] = torch.from_numpy(ids[0].astype(np.int64))
    out["text_mask"] = torch.from_numpy(mask[0].astype(bool))
    return out


def _baseline_collate(samples: list[dict]):
    from mmprep.loader.collate import pad_stack

    batch = {"__key__": [s["__key__"] for s in samples]}
    for name in ("video", "audio", "text_ids", "text_mask"):
        if name in samples[0]:
            batch[name] = pad_stack([s[name] for s in samples])
    return batch


def _time(loader) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = sum(len(b["__key__"]) for b in loader)
    return time.perf_counter() - t0, n


def bench_loader(n: int = 64, *, batch_size: int = 8, workers: tuple[int, ...] = (1, 2),
                 rounds: int = 3, seconds: float = 2.0, pipeline: str = "gram-vast",
                 shards: str | Path | None = None) -> LoaderBench:
    """Time both loaders over the same shards (``rounds`` interleaved rounds per worker
    count), and random access vs streaming.

    Args:
        n: generated clips, extracted with ``pipeline`` (cached), when ``shards`` is None.
        batch_size: samples per batch.
        workers: DataLoader worker counts to measure.
        rounds: interleaved rounds (medians are reported).
        seconds: length of each generated clip.
        pipeline: extract preset of the generated clips.
        shards: an extract output folder to use instead.
    """
    import webdataset as wds

    from mmprep.bench.embed import bench_shards
    from mmprep.loader import make_loader
    from mmprep.loader.source import Files
    from mmprep.shards.folder import read_stats, shard_files
    from mmprep.shards.format import wids_name
    from mmprep.shards.reader import tar_samples

    folder = Path(shards) if shards else bench_shards(n, seconds, pipeline)
    tars = shard_files(folder)
    total_bytes = sum(Path(t).stat().st_size for t in tars)

    def ours(w):
        return make_loader(folder, batch_size=batch_size, num_workers=w, captions="first")

    def baseline(w):
        ds = (wds.WebDataset(tars, shardshuffle=False, empty_check=False)
              .map(_baseline_sample).batched(batch_size, collation_fn=_baseline_collate,
                                             partial=True))
        return wds.WebLoader(ds, batch_size=None, num_workers=w)

    probe = ours(0)
    clips = len(probe.dataset)
    frames = next(iter(probe))["video"].shape[1]
    rows = []
    for w in workers:
        runs: dict[str, list[float]] = {"mmprep": [], "baseline": []}
        for r in range(rounds):
            order = (("mmprep", ours), ("baseline", baseline))
            for name, make in order if r % 2 == 0 else order[::-1]:
                seconds_, count = _time(make(w))
                if count != clips:
                    raise RuntimeError(f"{name} loader gave {count} samples, not {clips}")
                runs[name].append(round(seconds_, 4))
        m, b = statistics.median(runs["mmprep"]), statistics.median(runs["baseline"])
        rows.append(LoaderRow(
            workers=w, mmprep_samples_per_s=round(clips / m, 2),
            baseline_samples_per_s=round(clips / b, 2), ratio=round(b / m, 3),
            mmprep_mb_per_s=round(total_bytes / m / 1e6, 2),
            baseline_mb_per_s=round(total_bytes / b / 1e6, 2), runs_s=runs))

    # random access vs streaming, raw members only
    import numpy as np

    ds = probe.dataset
    perm = np.random.default_rng(0).permutation(len(ds.samples))
    stream_s, index_s = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for t in tars:
            for _key, _members in tar_samples(t):
                pass
        stream_s.append(time.perf_counter() - t0)
        files = Files()
        t0 = time.perf_counter()
        for s in perm:
            t, i = ds.samples[int(s)]
            files.read(ds.tables[t].url, ds.tables[t].samples[i])
        index_s.append(time.perf_counter() - t0)
        files.close()
    wids_rate = None
    wids_json = Path(folder) / wids_name(read_stats(folder)[0]["name"])
    try:
        import wids
    except ImportError:
        wids = None
    if wids is not None and wids_json.exists():
        with tempfile.TemporaryDirectory() as tmp:
            wds_ds = wids.ShardListDataset(str(wids_json), cache_dir=tmp, transformations=[],
                                           lru_size=max(10, len(tars)))
            for s in perm:
                wds_ds[int(s)]  # a first pass copies the shards into its cache (not timed)
            times = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                for s in perm:
                    wds_ds[int(s)]
                times.append(time.perf_counter() - t0)
            wds_ds.close()
            wids_rate = round(len(perm) / statistics.median(times), 2)
    return LoaderBench(
        clips=clips, shards=len(tars), bytes=total_bytes, frames_per_clip=int(frames),
        batch_size=batch_size, rounds=rounds, rows=rows,
        streaming_samples_per_s=round(len(perm) / statistics.median(stream_s), 2),
        index_random_samples_per_s=round(len(perm) / statistics.median(index_s), 2),
        wids_random_samples_per_s=wids_rate, machine=machine_description())

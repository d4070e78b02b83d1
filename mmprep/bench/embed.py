"""Embed throughput: the models alone on preloaded tensors vs end to end from shards.

Both measurements use the same shards, encoders, batch size, device and precision, in
one run. *Model-only* times the forward passes (with the host-to-device copies and
pooling) over batches already decoded into memory; *end-to-end* times ``embed_shards``
plus the merge: tar reading, JPEG decoding, batching in DataLoader workers, the same
forward passes and the HDF5 writing. Their ratio says how much of the data loading is
hidden behind the compute (1.0: all of it). The loader alone is timed too.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mmprep.bench import machine_description
from mmprep.results import Result


def bench_shards(n: int, seconds: float, pipeline: str, cache_dir: Path | None = None) -> Path:
    """Shards of ``n`` generated clips extracted with ``pipeline`` (cached between runs)."""
    from mmprep.bench.decode import default_cache_dir
    from mmprep.bench.extract import sample_clips
    from mmprep.extract import RunOptions, extract
    from mmprep.extract.sample import ExtractConfig
    from mmprep.manifest import read_manifest
    from mmprep.presets import build_config

    cache = cache_dir or default_cache_dir()
    manifest = sample_clips(n, seconds, cache)
    cfg = build_config(ExtractConfig, "extract", pipeline=pipeline,
                       values={"shards.samples_per_shard": max(1, n // 4)})
    # the folder is named by the config's hash: shards cached by another mmprep version
    # (or preset) are never mixed with, or refused by, this one
    out = cache / f"embed_shards_n{n}_s{seconds:g}_{pipeline}_{cfg.content_hash()[:12]}"
    extract(read_manifest(manifest), out, cfg, RunOptions(progress=False))
    return out


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(kw_only=True)
class EmbedBench(Result):
    """Embed throughput on the same shards, encoders, batch size, device and precision:
    the encoders alone on preloaded batches vs end to end from the shards (medians of
    ``repeat`` runs; the loader alone is timed once). The goal ratio is
    ``end_to_end_vs_model_only`` (model-only seconds / end-to-end seconds; the goal on
    a GPU is >= 0.9)."""

    clips: int
    shards: int
    frames_per_clip: int | None  # None without a video encoder
    encoders: dict[str, str]  # modality -> encoder spec
    device: str
    device_name: str
    batch_size: int
    precision: str
    workers: int  # DataLoader workers
    repeat: int
    loader_clips_per_s: float
    model_only_s: float
    model_only_clips_per_s: float
    end_to_end_s: float
    end_to_end_clips_per_s: float
    end_to_end_vs_model_only: float
    runs_s: dict[str, list[float]]  # "model_only" / "end_to_end" -> seconds of each run
    machine: str


def bench_embed(
    n: int = 64,
    *,
    video_encoder: str | None = "efficientnet-lite0",
    audio_encoder: str | None = "efficientnet-lite0",
    text_encoder: str | None = "minilm",
    batch_size: int = 16,
    device: str = "auto",
    precision: str = "fp32",
    workers: int | None = None,
    repeat: int = 3,
    seconds: float = 2.0,
    pipeline: str = "gram-vast",
    shards: str | Path | None = None,
    cache_dir: Path | None = None,
) -> EmbedBench:
    """Time the encoders on preloaded batches, the loader alone and ``embed`` end to end.

    Args:
        n: generated sample clips, extracted with ``pipeline`` (both cached), used when
            ``shards`` is not given.
        video_encoder, audio_encoder, text_encoder: encoder specs (None: skip the
            modality).
        batch_size: clips per batch.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        precision: ``fp32``, ``fp16`` or ``bf16``.
        workers: DataLoader workers (None: the embed default for the device).
        repeat: runs of the model-only and end-to-end measurements; medians are reported.
        seconds: length of each generated clip.
        pipeline: extract preset for the generated clips.
        shards: a folder of shards to use instead of generated clips.
        cache_dir: where generated clips and shards are kept between runs (default: the
            user's cache, ``~/.cache/mmprep/bench``).
    """
    import torch

    from mmprep.device import resolve_device
    from mmprep.embed.config import EmbedConfig
    from mmprep.embed.data import ShardBatches, ShardTask, worker_init
    from mmprep.embed.encode import BatchEncoder, configure_threads, embed_shards
    from mmprep.embed.plan import build_layout, load_encoders, part_path, resolve_shards
    from mmprep.embed.run import finish
    from mmprep.shards.reader import probe_meta

    folder = Path(shards) if shards else bench_shards(n, seconds, pipeline, cache_dir)
    cfg = EmbedConfig(video_encoder=video_encoder, audio_encoder=audio_encoder,
                      text_encoder=text_encoder, batch_size=batch_size, device=device,
                      precision=precision, workers=workers)
    dev = resolve_device(cfg.device_list[0])
    shard_list = resolve_shards([str(folder)])
    encoders = load_encoders(cfg)
    layout = build_layout(encoders, cfg, probe_meta([p for p, _ in shard_list]))
    for enc in encoders.values():
        enc.to(dev)
    clips = sum(len(k or []) for _, k in shard_list)

    def tasks(tmp: Path) -> list[ShardTask]:
        return [ShardTask(i, p, k, part=str(part_path(tmp, p)))
                for i, (p, k) in enumerate(shard_list)]

    nw = min(cfg.num_workers(dev.type), len(shard_list))
    configure_threads(cfg, dev, nw)  # as embed_shards does: same threads for both runs
    with tempfile.TemporaryDirectory() as tmp:
        # Loader alone, and the decoded batches kept for the model-only runs.
        loader = torch.utils.data.DataLoader(
            ShardBatches(tasks(Path(tmp)), layout.decode), batch_size=None, num_workers=nw,
            prefetch_factor=cfg.prefetch if nw else None,
            worker_init_fn=worker_init if nw else None, pin_memory=dev.type == "cuda")
        t0 = time.perf_counter()
        batches = [b for b in loader if b["keys"]]
        loader_s = time.perf_counter() - t0
        run = BatchEncoder(encoders, layout, dev, cfg)
        run(batches[0])  # warm-up (kernel selection, allocator)
        _sync(dev)
        model_s, e2e_s = [], []
        for r in range(repeat):
            t0 = time.perf_counter()
            for b in batches:
                out = run(b)
                for v in out.values():
                    v.cpu()
            _sync(dev)
            model_s.append(time.perf_counter() - t0)
            work = Path(tmp) / f"e2e{r}"
            work.mkdir()
            t0 = time.perf_counter()
            res = embed_shards(tasks(work), encoders, layout, cfg, device=dev)
            finish(work / "features.h5", [Path(p) for p in res.parts], attrs=layout.attrs)
            e2e_s.append(time.perf_counter() - t0)
    model = statistics.median(model_s)
    e2e = statistics.median(e2e_s)
    return EmbedBench(
        clips=clips,
        shards=len(shard_list),
        frames_per_clip=(layout.decode.video.shard.get("num_frames")
                         if layout.decode.video else None),
        encoders=cfg.encoders,
        device=str(dev),
        device_name=(torch.cuda.get_device_name(dev) if dev.type == "cuda"
                     else f"CPU, {torch.get_num_threads()} torch threads"),
        batch_size=batch_size,
        precision=precision,
        workers=nw,
        repeat=repeat,
        loader_clips_per_s=round(clips / loader_s, 2),
        model_only_s=round(model, 3),
        model_only_clips_per_s=round(clips / model, 2),
        end_to_end_s=round(e2e, 3),
        end_to_end_clips_per_s=round(clips / e2e, 2),
        end_to_end_vs_model_only=round(model / e2e, 3),
        runs_s={"model_only": [round(x, 3) for x in model_s],
                "end_to_end": [round(x, 3) for x in e2e_s]},
        machine=machine_description(dev),
    )

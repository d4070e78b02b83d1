"""Embedding shards into part files, one process, one model load per encoder.

``embed_shards(tasks, encoders, layout, cfg)`` is the unit an executor runs: it reads the
shard tasks through a DataLoader (decoding in worker processes, overlapping with the
forward passes), runs the frozen encoders and writes one part file per shard (a complete
feature cache of that shard's rows, written atomically) as soon as the shard's last
sample is embedded. ``mmprep.embed.embed`` plans the tasks and merges the parts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mmprep.device import autocast
from mmprep.embed.config import EmbedConfig
from mmprep.embed.data import DecodeSpec, ShardBatches, ShardTask, worker_init
from mmprep.encoders.base import Encoder
from mmprep.errors import MmprepError
from mmprep.features import FeatureWriter, ModalitySpec


@dataclass
class Layout:
    """What every part (and the final cache) holds: modality specs and root attributes."""

    modalities: dict[str, ModalitySpec]
    attrs: dict[str, Any]
    decode: DecodeSpec
    dtype: str = "float32"


@dataclass
class ShardsResult:
    clips: int = 0
    captions: int = 0
    errors: list[dict] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    seconds: float = 0.0


def configure_threads(cfg: EmbedConfig, device: torch.device, workers: int) -> None:
    """On CPU, give the models the cores the loader workers leave (no oversubscription)."""
    if device.type == "cpu":
        torch.set_num_threads(cfg.num_threads(workers))


def segment_mean(rows: torch.Tensor, owner: torch.Tensor, n: int) -> torch.Tensor:
    """Mean of ``rows`` per owner index (0..n-1); owners without rows get zeros."""
    out = torch.zeros((n, rows.shape[1]), dtype=rows.dtype, device=rows.device)
    out.index_add_(0, owner, rows)
    counts = torch.bincount(owner, minlength=n).clamp(min=1).to(rows.dtype)
    return out / counts.unsqueeze(1)


class BatchEncoder:
    """Runs the encoders on one collated batch on the device."""

    def __init__(self, encoders: dict[str, Encoder], layout: Layout, device: torch.device,
                 cfg: EmbedConfig):
        self.encoders = encoders
        self.layout = layout
        self.device = device
        self.cfg = cfg

    def _to(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(self.device, non_blocking=True)

    @torch.inference_mode()
    def __call__(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        n = len(batch["keys"])
        out: dict[str, torch.Tensor] = {}
        with autocast(self.device, self.cfg.precision):
            enc = self.encoders.get("video")
            if enc is not None:
                x = enc.input.prepare(self._to(batch["frames"]), torch.float32,
                                      channels_last=enc.channels_last and self.cfg.channels_last)
                rows = enc(x)
                owner = self._to(batch["frame_clip"])
                out["video"] = segment_mean(rows, owner, n)
                if self.layout.decode.frames_per_clip:
                    out["video_tokens"] = rows.view(n, -1, rows.shape[-1])
            enc = self.encoders.get("audio")
            if enc is not None:
                emb = torch.zeros((n, enc.dim), device=self.device)
                plan = self.layout.decode.audio
                for owner, mel in batch["mel"]:
                    rows = enc(enc.input.prepare(self._to(mel), plan, torch.float32))
                    emb += segment_mean(rows, self._to(owner), n)
                out["audio"] = emb
                out["audio_mask"] = self._to(batch["has_audio"])
            enc = self.encoders.get("text")
            if enc is not None:
                # Trimmed / padded by the loader (TokenInput.fit); int32 until on the device.
                ids, mask = self._to(batch["ids"]).long(), self._to(batch["mask"]).long()
                out["text"] = (enc(ids, mask) if ids.shape[0]
                               else torch.zeros((0, enc.dim), device=self.device))
        return out


def nonfinite_clips(arrays: dict[str, np.ndarray], caption_clip, n: int
                    ) -> dict[int, list[str]]:
    """Batch rows (clips) whose embeddings hold NaN or inf, with the modalities."""
    bad: dict[int, list[str]] = {}
    for name in ("video", "audio", "video_tokens"):
        if name in arrays and arrays[name].size:
            rows = arrays[name].reshape(arrays[name].shape[0], -1)
            for i in np.flatnonzero(~np.isfinite(rows).all(axis=1)):
                bad.setdefault(int(i), []).append(name)
    if "text" in arrays and arrays["text"].size and caption_clip is not None:
        owners = caption_clip.numpy()[~np.isfinite(arrays["text"]).all(axis=1)]
        for i in np.unique(owners):
            bad.setdefault(int(i), []).append("text")
    return {i: names for i, names in bad.items() if i < n}


class _Fetched:
    """Embeddings of one batch on their way to the host (asynchronously on CUDA)."""

    def __init__(self, batch: dict[str, Any], out: dict[str, torch.Tensor], cuda: bool):
        self.batch = batch
        self.event = None
        if cuda:
            self.host = {}
            for k, v in out.items():
                buf = torch.empty(v.shape, dtype=v.dtype, pin_memory=True)
                buf.copy_(v, non_blocking=True)
                self.host[k] = buf
            self.event = torch.cuda.Event()
            self.event.record()
        else:
            self.host = out

    def arrays(self) -> dict[str, np.ndarray]:
        if self.event is not None:
            self.event.synchronize()
        return {k: v.float().numpy() if v.is_floating_point() else v.numpy()
                for k, v in self.host.items()}


@dataclass
class _PartBuffer:
    keys: list[str] = field(default_factory=list)
    split: list[str] = field(default_factory=list)
    rows: dict[str, list[np.ndarray]] = field(default_factory=dict)
    errors: list[dict] = field(default_factory=list)

    def add(self, name: str, value: np.ndarray) -> None:
        self.rows.setdefault(name, []).append(value)


def write_part(task: ShardTask, buf: _PartBuffer, layout: Layout) -> str:
    """Write one shard's rows as a complete feature cache (atomic rename)."""
    import os

    attrs = dict(layout.attrs)
    attrs.update(shard=task.path, shard_bytes=os.path.getsize(task.path) if os.path.exists(
        task.path) else -1, errors=buf.errors)
    mods = layout.modalities
    with FeatureWriter(task.part, mods, attrs=attrs, dtype=layout.dtype) as w:
        def cat(name: str, dim: tuple[int, ...]) -> np.ndarray:
            parts = buf.rows.get(name)
            return np.concatenate(parts) if parts else np.zeros((0, *dim), np.float32)

        data = {m: cat(m, (spec.dim,)) for m, spec in mods.items()}
        masks = {m: cat(f"{m}_mask", ()).astype(bool) for m, spec in mods.items() if spec.mask}
        owners = {m: cat(f"{m}_owner", ()).astype(np.int64)
                  for m, spec in mods.items() if spec.item_level}
        tokens = {m: cat(f"{m}_tokens", (spec.tokens, spec.dim))
                  for m, spec in mods.items() if spec.tokens}
        captions = {m: [c for chunk in buf.rows.get(f"{m}_caption", []) for c in chunk]
                    for m, spec in mods.items() if spec.captions}
        w.append(buf.keys, buf.split, data, masks=masks, owners=owners, captions=captions,
                 tokens=tokens)
    return task.part


def embed_shards(
    tasks: list[ShardTask],
    encoders: dict[str, Encoder],
    layout: Layout,
    cfg: EmbedConfig,
    *,
    device: str | torch.device = "cpu",
    on_batch: Callable[[int, int], None] | None = None,
    fail_fast: bool = False,
) -> ShardsResult:
    """Embed ``tasks`` (shards) with ``encoders`` on ``device``; one part file per task.

    ``on_batch(clips, errors)`` is called after each batch (progress reporting). With
    ``fail_fast`` the first bad sample raises ``MmprepError``.
    """
    device = torch.device(device) if not isinstance(device, torch.device) else device
    result = ShardsResult()
    if not tasks:
        return result
    t0 = time.perf_counter()
    workers = min(cfg.num_workers(device.type), len(tasks))
    configure_threads(cfg, device, workers)
    for enc in encoders.values():
        enc.to(device)
        if cfg.compile:
            enc.compile()
    run = BatchEncoder(encoders, layout, device, cfg)
    loader = torch.utils.data.DataLoader(
        ShardBatches(tasks, layout.decode), batch_size=None, num_workers=workers,
        pin_memory=device.type == "cuda", prefetch_factor=cfg.prefetch if workers else None,
        worker_init_fn=worker_init if workers else None, persistent_workers=False,
    )
    by_index = {t.index: t for t in tasks}
    buffers: dict[int, _PartBuffer] = {t.index: _PartBuffer() for t in tasks}

    def finish(f: _Fetched) -> None:
        batch = f.batch
        arrays = f.arrays() if batch["keys"] else {}
        tasks_of = np.asarray(batch["task"], dtype=np.int64)
        caption_clip = batch.get("caption_clip")
        bad = nonfinite_clips(arrays, caption_clip, len(batch["keys"]))
        for i, names in bad.items():  # never a NaN row in the cache: an error record
            batch["errors"].append({
                "key": batch["keys"][i], "shard": by_index[int(tasks_of[i])].path,
                "task": int(tasks_of[i]),
                "message": f"the encoder gave non-finite values for {', '.join(names)}"})
        for ti in np.unique(tasks_of):
            sel = np.flatnonzero(tasks_of == ti)
            sel = sel[~np.isin(sel, list(bad))]
            buf = buffers[int(ti)]
            base = len(buf.keys)
            buf.keys.extend(batch["keys"][i] for i in sel)
            buf.split.extend(batch["split"][i] for i in sel)
            for name in ("video", "audio", "audio_mask", "video_tokens"):
                if name in arrays:
                    buf.add(name, arrays[name][sel])
            if "text" in arrays:
                cc = caption_clip.numpy()
                rows = np.flatnonzero(np.isin(cc, sel))
                buf.add("text", arrays["text"][rows])
                # clip index within the batch -> row within this part
                local = {int(c): base + j for j, c in enumerate(sel)}
                buf.add("text_owner", np.array([local[int(c)] for c in cc[rows]], np.int64))
                buf.add("text_caption", [batch["captions"][r] for r in rows])
        result.clips += len(batch["keys"]) - len(bad)
        result.captions += len(batch.get("captions") or [])
        for err in batch["errors"]:
            if fail_fast:
                where = f"sample {err['key']} of " if err["key"] else ""
                raise MmprepError(f"{where}{err['shard']}: {err['message']}")
            buffers[err["task"]].errors.append(err)
            result.errors.append(err)
        for ti in batch["done"]:
            result.parts.append(write_part(by_index[ti], buffers.pop(ti), layout))
        if on_batch is not None:
            on_batch(len(batch["keys"]) - len(bad), len(batch["errors"]))

    pending: _Fetched | None = None
    for batch in loader:
        out = run(batch) if batch["keys"] else {}
        fetched = _Fetched(batch, out, device.type == "cuda")
        if pending is not None:
            finish(pending)  # the previous batch, while this one runs on the GPU
        pending = fetched
    if pending is not None:
        finish(pending)
    result.seconds = time.perf_counter() - t0
    return result

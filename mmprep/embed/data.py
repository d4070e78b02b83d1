"""Reading extract's shards for embedding: tar streaming, sample decoding, batching.

``ShardBatches`` is a torch ``IterableDataset`` that splits the shard tasks over the
DataLoader's worker processes (task ``i`` goes to worker ``i % workers``). Each worker
streams its tars sequentially, decodes the members the encoders need (JPEG frames with
libjpeg-turbo through torchvision, ``.npy`` arrays), applies the conversions of the
``InputPlan``s (resize, mel padding, re-tokenization) and yields whole batches, so the
main process only moves tensors to the device and runs the models.

A sample that cannot be used (missing member, undecodable frame, wrong shape) becomes an
error record; a tar that ends early (truncated) or is corrupt keeps the samples read
before the damage and reports the shard.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torch.utils.data import IterableDataset, get_worker_info

# Imported here, in the parent, so that forked loader workers do not each import them.
from torchvision.io import ImageReadMode, decode_jpeg

from mmprep.encoders.base import InputPlan, TokenInput
from mmprep.errors import MmprepError
from mmprep.shards.format import MASK, MEL, META, RAW_FRAMES, TOKENS, frame_members
from mmprep.shards.reader import tar_samples


class BadSample(Exception):
    """One sample cannot be embedded; becomes an error record."""


@dataclass
class ShardTask:
    index: int  # position in the run's shard list (the order of rows in the cache)
    path: str
    keys: list[str] | None = None  # from the shard's stats file, when known
    skip: frozenset[str] = frozenset()  # keys already in the cache: not read again
    part: str = ""  # the part file this shard's rows go to

    @property
    def pending(self) -> int | None:
        return None if self.keys is None else sum(k not in self.skip for k in self.keys)


@dataclass
class DecodeSpec:
    """What the workers produce; built from the encoders' input plans."""

    video: InputPlan | None = None
    audio: InputPlan | None = None
    text: InputPlan | None = None
    video_size: int | None = None  # frame side the video encoder takes
    tokens: TokenInput | None = None  # the text encoder's input (batch trimming / padding)
    trim_tokens: bool = True
    frames_per_clip: int | None = None  # required (per-frame tokens) or None
    pipeline_hash: str | None = None
    batch_size: int = 32


# -- one sample ------------------------------------------------------------------------


def _npy(members: dict[str, bytes], suffix: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(members[suffix]), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise BadSample(f"KEY.{suffix} is not a readable .npy array: {exc}") from exc


def decode_frames(members: dict[str, bytes], spec: DecodeSpec):
    """uint8 (frames, 3, S, S) tensor, resized when the shard's frames differ."""

    names = frame_members(members)
    if names:
        frames = []
        for name in names:
            try:
                data = torch.frombuffer(bytearray(members[name]), dtype=torch.uint8)
                frames.append(decode_jpeg(data, mode=ImageReadMode.RGB))
            except RuntimeError as exc:
                raise BadSample(f"KEY.{name} is not a decodable JPEG: {exc}") from exc
        shapes = {tuple(f.shape) for f in frames}
        if len(shapes) > 1:
            raise BadSample(f"frames of different sizes: {sorted(shapes)}")
        x = torch.stack(frames)
    elif RAW_FRAMES in members:
        arr = _npy(members, RAW_FRAMES)
        if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
            raise BadSample(f"KEY.frames.npy must be uint8 (N, H, W, 3), got {arr.dtype} "
                            f"{arr.shape}")
        x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).contiguous()
    else:
        raise BadSample("no frames (KEY.fNNN.jpg or KEY.frames.npy)")
    size = spec.video_size
    if x.shape[0] == 0:
        raise BadSample("no frames")
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        if spec.video is not None and spec.video.resize_to is None:
            raise BadSample(f"frames are {tuple(x.shape[-2:])}, the shard metadata and the "
                            f"encoder say {size}x{size}")
        x = resize_center_crop(x, size, spec.video.interpolation if spec.video else "bicubic")
    if spec.frames_per_clip is not None and x.shape[0] != spec.frames_per_clip:
        raise BadSample(f"{x.shape[0]} frames; per-frame tokens need {spec.frames_per_clip} "
                        "in every clip")
    return x


def resize_center_crop(x, size: int, interpolation: str = "bicubic"):
    """Shorter side to ``size`` (antialiased), then a centre crop to size x size."""
    mode = getattr(TF.InterpolationMode, interpolation.upper(), TF.InterpolationMode.BICUBIC)
    x = TF.resize(x, size, interpolation=mode, antialias=True)
    return TF.center_crop(x, [size, size])


def decode_mel(members: dict[str, bytes], meta: dict[str, Any], plan: InputPlan):
    """float32 (slices, frames, bins) tensor, or None for a clip without audio."""
    if not meta.get("has_audio", MEL in members):
        return None
    if MEL not in members:
        raise BadSample("has_audio is true but KEY.mel.npy is missing")
    mel = _npy(members, MEL).astype(np.float32, copy=False)
    if not np.isfinite(mel).all():
        raise BadSample("KEY.mel.npy holds NaN or infinite values")
    if mel.ndim == 2:
        mel = mel[None]
    if mel.ndim != 3 or mel.shape[1] == 0:
        raise BadSample(f"KEY.mel.npy has shape {mel.shape}, expected (frames, bins)")
    bins = plan.shard.get("mel_bins")
    if bins is not None and mel.shape[-1] != bins:
        raise BadSample(f"KEY.mel.npy has {mel.shape[-1]} mel bins, the metadata says {bins}")
    frames = plan.mel_frames
    if frames is not None and mel.shape[1] != frames:
        out = np.zeros((mel.shape[0], frames, mel.shape[2]), dtype=np.float32)
        n = min(frames, mel.shape[1])
        out[:, :n] = mel[:, :n]
        mel = out
    return torch.from_numpy(np.ascontiguousarray(mel))


def decode_tokens(members: dict[str, bytes], meta: dict[str, Any], plan: InputPlan):
    """(ids int32 (captions, L), mask uint8 (captions, L), captions)."""
    from mmprep.media.text import get_tokenizer

    captions = meta.get("captions")
    if not isinstance(captions, list):
        raise BadSample("KEY.json has no captions list")
    if not all(isinstance(c, str) for c in captions):
        raise BadSample("KEY.json captions must all be strings")
    if plan.retokenize is not None:
        tok = get_tokenizer(plan.retokenize, plan.max_length)(captions)
        return tok.ids, tok.mask, captions
    if TOKENS not in members:
        raise BadSample("KEY.tok.npy is missing")
    ids = _npy(members, TOKENS)
    if ids.dtype.kind not in "iu":
        raise BadSample(f"KEY.tok.npy holds {ids.dtype} values, not integer token ids")
    if ids.ndim != 2 or ids.shape[0] != len(captions):
        raise BadSample(f"KEY.tok.npy has shape {ids.shape} for {len(captions)} caption(s)")
    if MASK in members:
        mask = _npy(members, MASK)
        if mask.shape != ids.shape:
            raise BadSample(f"KEY.mask.npy has shape {mask.shape}, KEY.tok.npy {ids.shape}")
    else:
        lengths = (meta.get("text") or {}).get("lengths")
        if lengths is None or len(lengths) != ids.shape[0]:
            pad = (meta.get("text") or {}).get("pad_id", 0)
            mask = (ids != pad).astype(np.uint8)
        else:
            mask = (np.arange(ids.shape[1])[None, :] < np.asarray(lengths)[:, None])
    return ids.astype(np.int32, copy=False), mask.astype(np.uint8, copy=False), captions


@dataclass
class Decoded:
    key: str
    split: str
    task: int
    frames: Any = None
    mel: Any = None
    ids: Any = None
    mask: Any = None
    captions: list[str] = field(default_factory=list)


def decode_sample(key: str, members: dict[str, bytes], task: int, spec: DecodeSpec) -> Decoded:
    """One sample's inputs; ``BadSample`` (an error record) for anything wrong with it."""
    try:
        return _decode_sample(key, members, task, spec)
    except BadSample:
        raise
    except Exception as exc:  # noqa: BLE001 - a poisoned sample must not stop the run
        raise BadSample(f"cannot be read: {type(exc).__name__}: {exc}") from exc


def _decode_sample(key: str, members: dict[str, bytes], task: int, spec: DecodeSpec
                   ) -> Decoded:
    if META not in members:
        raise BadSample("KEY.json is missing")
    try:
        meta = json.loads(members[META])
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadSample(f"KEY.json is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise BadSample(f"KEY.json is a JSON {type(meta).__name__}, not an object")
    if spec.pipeline_hash and meta.get("pipeline_hash") != spec.pipeline_hash:
        raise BadSample(f"made by another extract config (pipeline_hash "
                        f"{meta.get('pipeline_hash')}, the run's is {spec.pipeline_hash})")
    out = Decoded(key=key, split=str(meta.get("split") or ""), task=task)
    if spec.video is not None:
        out.frames = decode_frames(members, spec)
    if spec.audio is not None:
        out.mel = decode_mel(members, meta, spec.audio)
    if spec.text is not None:
        out.ids, out.mask, out.captions = decode_tokens(members, meta, spec.text)
        vocab = spec.tokens.vocab_size if spec.tokens is not None else None
        if out.ids.size and (out.ids.min() < 0 or (vocab and out.ids.max() >= vocab)):
            allowed = f"0..{vocab - 1}" if vocab else "non-negative ids"
            raise BadSample(f"KEY.tok.npy holds token ids outside {allowed}")
    return out


# -- batches ----------------------------------------------------------------------------


def collate(samples: list[Decoded], errors: list[dict], done: list[int],
            spec: DecodeSpec) -> dict[str, Any]:
    """One batch: flat frame / slice / caption rows plus the clip each row belongs to.

    Frames of all clips are concatenated with ``frame_clip`` giving each frame's clip
    (a batch row); mel slices are grouped by shape (clips of different lengths cannot be
    stacked); captions are concatenated with ``caption_clip``.
    """
    batch: dict[str, Any] = {
        "keys": [s.key for s in samples],
        "split": [s.split for s in samples],
        "task": [s.task for s in samples],
        "errors": errors,
        "done": done,
    }
    if spec.video is not None and samples:
        batch["frames"] = torch.cat([s.frames for s in samples])
        batch["frame_clip"] = torch.cat([torch.full((s.frames.shape[0],), i, dtype=torch.long)
                                         for i, s in enumerate(samples)])
    if spec.audio is not None:
        groups: dict[tuple[int, int], list[tuple[int, Any]]] = {}
        for i, s in enumerate(samples):
            if s.mel is not None:
                groups.setdefault(tuple(s.mel.shape[1:]), []).append((i, s.mel))
        batch["mel"] = [
            (torch.cat([torch.full((m.shape[0],), i, dtype=torch.long) for i, m in items]),
             torch.cat([m for _, m in items]))
            for items in groups.values()
        ]
        batch["has_audio"] = torch.tensor([s.mel is not None for s in samples])
    if spec.text is not None and samples:
        ids = np.concatenate([s.ids for s in samples])
        mask = np.concatenate([s.mask for s in samples])
        if spec.tokens is not None:
            ids, mask = spec.tokens.fit(ids, mask, trim=spec.trim_tokens)
        batch["ids"], batch["mask"] = torch.from_numpy(ids), torch.from_numpy(mask)
        batch["caption_clip"] = torch.cat([torch.full((len(s.captions),), i, dtype=torch.long)
                                           for i, s in enumerate(samples)])
        batch["captions"] = [c for s in samples for c in s.captions]
    return batch


class ShardBatches(IterableDataset):
    """Batches over ``tasks``, each task read by one DataLoader worker (or in-process)."""

    def __init__(self, tasks: list[ShardTask], spec: DecodeSpec):
        self.tasks = tasks
        self.spec = spec

    def my_tasks(self) -> list[ShardTask]:
        info = get_worker_info()
        if info is None:
            return self.tasks
        return self.tasks[info.id :: info.num_workers]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        spec = self.spec
        samples: list[Decoded] = []
        errors: list[dict] = []
        done: list[int] = []
        for task in self.my_tasks():
            try:
                for key, members in tar_samples(task.path):
                    if key in task.skip:
                        continue
                    try:
                        samples.append(decode_sample(key, members, task.index, spec))
                    except BadSample as exc:
                        errors.append({"key": key, "shard": task.path, "task": task.index,
                                       "message": str(exc).replace("KEY.", f"{key}.")})
                    if len(samples) >= spec.batch_size:
                        yield collate(samples, errors, done, spec)
                        samples, errors, done = [], [], []
            except MmprepError as exc:
                errors.append({"key": None, "shard": task.path, "task": task.index,
                               "message": str(exc)})
            done.append(task.index)
        if samples or errors or done:
            yield collate(samples, errors, done, spec)


def worker_init(worker_id: int) -> None:
    torch.set_num_threads(1)

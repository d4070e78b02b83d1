"""Batches of ``ShardDataset`` items: padded, stacked, with masks.

``collate`` pads every tensor field to the largest shape in the batch (zeros, masks
False) and stacks it: ``video`` (B, T, 3, H, W) with ``video_mask`` (B, T),
``frame_times`` (B, T), ``audio`` (B, F, M) with ``audio_mask`` (B, F) (all False for a
clip without audio), ``text_ids``/``text_mask`` (B, L), or (B, C, L) with
``caption_mask`` (B, C) for ``captions="all"``. Strings, ``meta`` and JPEG bytes stay
lists. A field some items lack (their shard does not hold it) is an error naming it.
"""

from __future__ import annotations

from typing import Any

import torch

from mmprep.errors import MmprepError


def pad_stack(tensors: list[torch.Tensor], value=0) -> torch.Tensor:
    """Stack tensors of one rank, each padded with ``value`` to the largest shape."""
    if len({t.dim() for t in tensors}) > 1:
        raise MmprepError(f"cannot stack tensors of different ranks: "
                          f"{sorted({tuple(t.shape) for t in tensors})}")
    shape = [max(t.shape[d] for t in tensors) for d in range(tensors[0].dim())]
    out = torch.full((len(tensors), *shape), value, dtype=tensors[0].dtype)
    for i, t in enumerate(tensors):
        out[(i, *(slice(0, n) for n in t.shape))] = t
    return out


def _lengths_mask(lengths: list[int]) -> torch.Tensor:
    return torch.arange(max(lengths, default=0))[None] < torch.tensor(lengths)[:, None]


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """One batch from ``ShardDataset`` items (see the module's docstring)."""
    if not items:
        raise MmprepError("collate got an empty list of items")
    keys = set(items[0])
    for item in items[1:]:
        if set(item) != keys:
            odd = sorted(keys ^ set(item))
            raise MmprepError(f"items of one batch differ in their fields ({', '.join(odd)}): "
                              "the shards were made with different extract settings")
    batch: dict[str, Any] = {}
    for name in sorted(keys):
        values = [item[name] for item in items]
        if name == "video":
            shapes = {tuple(v.shape[1:]) for v in values if v.shape[0]}
            if len(shapes) > 1:
                raise MmprepError(f"frames of different sizes in one batch: {sorted(shapes)}")
            batch["video"] = pad_stack(values)
            batch["video_mask"] = _lengths_mask([v.shape[0] for v in values])
        elif name == "text_ids" and values[0].dim() == 2:  # captions="all"
            batch[name] = pad_stack(values)
            batch["caption_mask"] = _lengths_mask([v.shape[0] for v in values])
        elif isinstance(values[0], torch.Tensor):
            batch[name] = pad_stack(values, False if values[0].dtype == torch.bool else 0)
        else:
            batch[name] = values
    return batch

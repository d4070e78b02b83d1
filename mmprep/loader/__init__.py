"""Training from extract's shards: a deterministic, resumable PyTorch dataset.

``source``: the shard list and sample tables (index files, fsspec); ``decode``: one
sample's members into an item (frame choice, normalisation, caption choice);
``dataset``: ``ShardDataset`` (epoch order, ranks, workers, unreadable samples, resume
state) and ``make_loader``; ``collate``: padded batches with masks.

The names below are imported from their module on first use.
"""

from __future__ import annotations

from mmprep.lazy import lazy_names

_NAMES = {
    "collate": "mmprep.loader.collate",
    "pad_stack": "mmprep.loader.collate",
    "ShardDataset": "mmprep.loader.dataset",
    "make_loader": "mmprep.loader.dataset",
    "choose_frames": "mmprep.loader.decode",
}
__all__ = sorted(_NAMES)


__getattr__, __dir__ = lazy_names("mmprep.loader", _NAMES, globals())

"""Row access to a feature cache for training and evaluation, in memory or streamed.

``FeatureSource`` keeps the small arrays (keys, split, caption owners, masks) in memory
and either loads the embedding matrices too (when they fit) or reads rows from the HDF5
file on demand. Training batches come from ``epoch_batches``: clips in shuffled order
(streamed: blocks of consecutive rows in shuffled order, shuffled again inside a buffer,
so reads stay nearly sequential), one randomly chosen caption per clip and step for
item-level modalities such as ``text``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mmprep.errors import MmprepError
from mmprep.features.format import as_str_list
from mmprep.features.reader import listed_modalities, open_cache


def _memory_budget() -> int:
    """Bytes we allow ourselves to load: half of the physical memory, at most 16 GB."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 2**30
    return min(total // 2, 16 * 2**30)


def _strings(ds) -> np.ndarray:
    return np.array(as_str_list(ds))


class FeatureSource:
    """One feature cache opened for the modalities a run uses."""

    def __init__(self, path: str | Path, modalities: list[str] | None = None,
                 loading: str = "auto"):
        self.path = Path(path)
        self._file = f = open_cache(self.path)
        self.available = listed_modalities(f)
        names = list(modalities) if modalities is not None else list(self.available)
        missing = [m for m in names if m not in self.available or m not in f]
        if missing:
            self.close()
            raise MmprepError(f"{self.path} has no modality {', '.join(missing)} "
                              f"(has: {', '.join(self.available) or 'none'})")
        self.modalities = names
        self.keys = _strings(f["keys"])
        n = len(self.keys)
        self.split = _strings(f["split"]) if "split" in f else np.array([""] * n)
        self.owner: dict[str, np.ndarray] = {}
        self.mask: dict[str, np.ndarray] = {}
        self.dims: dict[str, int] = {}
        for m in names:
            ds = f[m]
            if ds.ndim != 2:
                raise MmprepError(f"{self.path}: /{m} is not a (rows, dim) array")
            self.dims[m] = int(ds.shape[1])
            if f"{m}_owner" in f:
                self.owner[m] = f[f"{m}_owner"][()].astype(np.int64)
            elif ds.shape[0] != n:
                raise MmprepError(f"{self.path}: /{m} has {ds.shape[0]} rows for {n} keys")
            if f"{m}_mask" in f:
                self.mask[m] = f[f"{m}_mask"][()].astype(bool)
        need = sum(f[m].shape[0] * f[m].shape[1] * 4 for m in names)
        if loading not in ("auto", "memory", "stream"):
            raise MmprepError(f"loading must be auto, memory or stream, not {loading!r}")
        self.in_memory = loading == "memory" or (loading == "auto" and need <= _memory_budget())
        self._data = {m: (f[m][()].astype(np.float32, copy=False) if self.in_memory else f[m])
                      for m in names}
        # item-level modalities: clip -> its item rows (CSR over rows sorted by owner)
        self._items = {}
        for m, own in self.owner.items():
            order = np.argsort(own, kind="stable")
            counts = np.bincount(own, minlength=n)
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
            self._items[m] = (order, starts, counts)

    # ------------------------------------------------------------------ basics
    def close(self) -> None:
        if getattr(self, "_file", None) is not None:
            self._file.close()
            self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __len__(self) -> int:
        return len(self.keys)

    def is_item_level(self, m: str) -> bool:
        return m in self.owner

    def split_counts(self) -> dict[str, int]:
        names, counts = np.unique(self.split, return_counts=True)
        return {str(k): int(v) for k, v in zip(names, counts)}

    def usable_clips(self, modalities: list[str] | None = None) -> np.ndarray:
        """Bool (N,): clips that have every modality named (mask set, >= 1 item)."""
        ok = np.ones(len(self), dtype=bool)
        for m in modalities or self.modalities:
            if m in self.mask and not self.is_item_level(m):
                ok &= self.mask[m]
            if m in self._items:
                ok &= self._items[m][2] > 0
        return ok

    def items_of(self, m: str, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All item rows of ``clips`` and, for each, the position of its clip in ``clips``."""
        order, starts, counts = self._items[m]
        rows = [order[starts[c]: starts[c] + counts[c]] for c in clips]
        pos = np.repeat(np.arange(len(clips)), [len(r) for r in rows])
        item_rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        if m in self.mask:  # an item-level mask drops individual items
            keep = self.mask[m][item_rows]
            item_rows, pos = item_rows[keep], pos[keep]
        return item_rows, pos

    def sample_items(self, m: str, clips: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One random item row per clip (clips must have >= 1 item)."""
        order, starts, counts = self._items[m]
        pick = (rng.random(len(clips)) * counts[clips]).astype(np.int64)
        return order[starts[clips] + pick]

    def captions(self, m: str) -> list[str] | None:
        """The caption text stored with modality ``m`` (``/M_caption``), if any."""
        name = f"{m}_caption"
        return as_str_list(self._file[name]) if name in self._file else None

    def take(self, m: str, rows: np.ndarray) -> np.ndarray:
        """Rows of modality ``m`` as float32, in the order given."""
        data = self._data[m]
        rows = np.asarray(rows, dtype=np.int64)
        if self.in_memory:
            return data[rows]
        if rows.size == 0:
            return np.zeros((0, self.dims[m]), np.float32)
        uniq, inverse = np.unique(rows, return_inverse=True)  # h5py wants increasing
        return data[uniq].astype(np.float32, copy=False)[inverse]

    def take_clips(self, clips: np.ndarray, rng: np.random.Generator | None = None,
                   modalities: list[str] | None = None) -> dict[str, np.ndarray]:
        """One row per clip for each modality (a sampled item for item-level ones;
        the first item when ``rng`` is None)."""
        out = {}
        for m in modalities or self.modalities:
            if self.is_item_level(m):
                if rng is None:
                    order, starts, _ = self._items[m]
                    rows = order[starts[clips]]
                else:
                    rows = self.sample_items(m, clips, rng)
                out[m] = self.take(m, rows)
            else:
                out[m] = self.take(m, clips)
        return out

    def epoch_batches(self, clips: np.ndarray, batch_size: int, rng: np.random.Generator,
                      *, block: int = 2048, buffer_blocks: int = 8,
                      ) -> Iterator[dict[str, np.ndarray]]:
        """Shuffled batches over ``clips`` (last incomplete batch dropped)."""
        if self.in_memory:
            groups = [rng.permutation(clips)]
        else:
            clips = np.sort(clips)
            blocks = [clips[i:i + block] for i in range(0, len(clips), block)]
            perm = rng.permutation(len(blocks))
            groups = [
                rng.permutation(np.concatenate([blocks[b] for b in perm[i:i + buffer_blocks]]))
                for i in range(0, len(blocks), buffer_blocks)
            ]
        carry = np.zeros(0, np.int64)
        for group in groups:
            group = np.concatenate([carry, group])
            full = len(group) - len(group) % batch_size
            data = self.take_clips(group[:full], rng) if full else None
            for start in range(0, full, batch_size):
                yield {m: v[start:start + batch_size] for m, v in data.items()}
            carry = group[full:]

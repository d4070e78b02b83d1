"""Row access to a feature cache for training and evaluation, in memory or streamed.

``FeatureSource`` keeps the small arrays (keys, split, caption owners, masks) in memory
and either loads the embedding matrices too (when they fit) or reads rows from the HDF5
file on demand. Training batches come from ``epoch_batches``: clips in shuffled order
(streamed: blocks of consecutive rows in shuffled order, shuffled again inside a buffer,
so reads stay nearly sequential), one randomly chosen caption per clip and step for
item-level modalities such as ``text``, and with each batch which clips have each
modality (``present``): a clip lacking audio (``/audio_mask`` false) or every caption
(no unmasked ``/text`` row) is kept, its row there is a placeholder to be masked out.

Opening checks what would otherwise fail later or silently: duplicate keys, datasets
whose row counts disagree, owners out of range, and (when loaded into memory; streamed
rows as they are read) NaN or infinite rows, each an error naming the dataset and rows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mmprep.errors import MmprepError
from mmprep.features.format import as_str_list, check_finite, check_keys, check_owner
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
        where = f"{self.path.name}:"
        self.keys = _strings(f["keys"])
        n = len(self.keys)
        try:
            check_keys(self.keys, where)
            self.split = _strings(f["split"]) if "split" in f else np.array([""] * n)
            if self.split.shape != (n,):
                raise MmprepError(f"{where}/split: {len(self.split)} values for {n} keys")
            self._open_modalities(f, names, n, where, loading)
        except BaseException:
            self.close()
            raise

    def _open_modalities(self, f, names: list[str], n: int, where: str, loading: str) -> None:
        self.owner: dict[str, np.ndarray] = {}
        self.mask: dict[str, np.ndarray] = {}
        self.dims: dict[str, int] = {}
        for m in names:
            ds = f[m]
            if ds.ndim != 2:
                raise MmprepError(f"{where}/{m} is not a (rows, dim) array (shape {ds.shape})")
            self.dims[m] = int(ds.shape[1])
            if f"{m}_owner" in f:
                self.owner[m] = f[f"{m}_owner"][()].astype(np.int64)
                if self.owner[m].shape != (ds.shape[0],):
                    raise MmprepError(f"{where}/{m}_owner: {len(self.owner[m])} values for "
                                      f"{ds.shape[0]} rows of /{m}")
                check_owner(m, self.owner[m], n, where)
            elif ds.shape[0] != n:
                raise MmprepError(f"{where}/{m}: {ds.shape[0]} rows for {n} keys (every "
                                  "clip-level dataset needs one row per key)")
            if f"{m}_mask" in f:
                self.mask[m] = f[f"{m}_mask"][()].astype(bool)
                if self.mask[m].shape != (ds.shape[0],):
                    raise MmprepError(f"{where}/{m}_mask: {len(self.mask[m])} values for "
                                      f"{ds.shape[0]} rows of /{m}")
        need = sum(f[m].shape[0] * f[m].shape[1] * 4 for m in names)
        if loading not in ("auto", "memory", "stream"):
            raise MmprepError(f"loading must be auto, memory or stream, not {loading!r}")
        self.in_memory = loading == "memory" or (loading == "auto" and need <= _memory_budget())
        self._data = {m: (f[m][()].astype(np.float32, copy=False) if self.in_memory else f[m])
                      for m in names}
        if self.in_memory:
            for m in names:  # masked-out rows (placeholders) may hold anything
                keep = self.mask.get(m)
                data = self._data[m]
                if keep is None:
                    check_finite(m, data, where)
                elif not keep.all():
                    check_finite(m, data[keep], where, rows=np.flatnonzero(keep))
                else:
                    check_finite(m, data, where)
        # item-level modalities: clip -> its usable item rows (CSR over rows sorted by
        # owner; items masked out by /<m>_mask are not listed)
        self._items = {}
        for m, own in self.owner.items():
            usable = np.flatnonzero(self.mask[m]) if m in self.mask else np.arange(len(own))
            order = usable[np.argsort(own[usable], kind="stable")]
            counts = np.bincount(own[usable], minlength=n)
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

    def has(self, m: str) -> np.ndarray:
        """Bool (N,): clips that have modality ``m`` (mask set; >= 1 usable item)."""
        if m in self._items:
            return self._items[m][2] > 0
        if m in self.mask:
            return self.mask[m].copy()
        return np.ones(len(self), dtype=bool)

    def usable_clips(self, modalities: list[str] | None = None, *, at_least: int | None = None
                     ) -> np.ndarray:
        """Bool (N,): clips that have every modality named (``at_least``: that many
        of them)."""
        names = modalities or self.modalities
        count = sum(self.has(m).astype(np.int64) for m in names)
        return count >= (len(names) if at_least is None else at_least)

    def items_of(self, m: str, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All item rows of ``clips`` and, for each, the position of its clip in ``clips``."""
        order, starts, counts = self._items[m]
        rows = [order[starts[c]: starts[c] + counts[c]] for c in clips]
        pos = np.repeat(np.arange(len(clips)), [len(r) for r in rows])
        item_rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        return item_rows.astype(np.int64), pos

    def sample_items(self, m: str, clips: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One random usable item row per clip (a placeholder row, to be masked out,
        for clips without any)."""
        order, starts, counts = self._items[m]
        pick = (rng.random(len(clips)) * counts[clips]).astype(np.int64)
        idx = np.minimum(starts[clips] + pick, max(len(order) - 1, 0))
        return order[idx] if len(order) else np.zeros(len(clips), np.int64)

    def captions(self, m: str) -> list[str] | None:
        """The caption text stored with modality ``m`` (``/M_caption``), if any."""
        name = f"{m}_caption"
        return as_str_list(self._file[name]) if name in self._file else None

    def take(self, m: str, rows: np.ndarray) -> np.ndarray:
        """Rows of modality ``m`` as float32, in the order given; rows masked out
        (placeholders, which may hold anything) come back as zeros."""
        data = self._data[m]
        rows = np.asarray(rows, dtype=np.int64)
        if self.in_memory:
            out = data[rows]
        elif rows.size == 0:
            return np.zeros((0, self.dims[m]), np.float32)
        else:
            uniq, inverse = np.unique(rows, return_inverse=True)  # h5py wants increasing
            out = data[uniq].astype(np.float32, copy=False)
            keep = self.mask[m][uniq] if m in self.mask else np.ones(len(uniq), bool)
            check_finite(m, out[keep], f"{self.path.name}:", rows=uniq[keep])
            out = out[inverse]
        if m in self.mask:
            out[~self.mask[m][rows]] = 0.0
        return out

    def take_clips(self, clips: np.ndarray, rng: np.random.Generator | None = None,
                   modalities: list[str] | None = None) -> dict[str, np.ndarray]:
        """One row per clip for each modality (a sampled item for item-level ones;
        the first item when ``rng`` is None; a placeholder where the clip lacks it,
        see ``has``)."""
        out = {}
        for m in modalities or self.modalities:
            if self.is_item_level(m):
                if rng is None:
                    order, starts, _ = self._items[m]
                    idx = np.minimum(starts[clips], max(len(order) - 1, 0))
                    rows = order[idx] if len(order) else np.zeros(len(clips), np.int64)
                else:
                    rows = self.sample_items(m, clips, rng)
                out[m] = self.take(m, rows)
            else:
                out[m] = self.take(m, clips)
        return out

    def epoch_batches(self, clips: np.ndarray, batch_size: int, rng: np.random.Generator,
                      *, block: int = 2048, buffer_blocks: int = 8,
                      ) -> Iterator[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
        """Shuffled batches over ``clips`` (last incomplete batch dropped): each is
        (rows by modality, which clips have each modality)."""
        has = {m: self.has(m) for m in self.modalities}
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
                ids = group[start:start + batch_size]
                yield ({m: v[start:start + batch_size] for m, v in data.items()},
                       {m: h[ids] for m, h in has.items()})
            carry = group[full:]

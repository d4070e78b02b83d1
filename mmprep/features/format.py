"""The feature cache: one HDF5 file of embeddings, rows aligned by clip key.

Schema (``format = "mmprep-features"``, ``version = 1``)::

    /keys            (N,)   str      clip keys, unique
    /split           (N,)   str      "train" / "val" / "test" / "" (unknown)
    /<modality>      (N, D) float    one row per clip (e.g. video, audio)
    /<modality>_mask (N,)   bool     optional: False where the clip lacks the modality
    /<modality>_tokens (N, T, D)     optional: per-frame / per-patch tokens
    /text            (M, D) float    one row per caption
    /text_owner      (M,)   int64    row of /keys each caption belongs to
    /text_caption    (M,)   str      optional: the caption text

A modality is item-level (several rows per clip) exactly when ``/<modality>_owner``
exists. Root attributes: ``format``, ``version``, ``mmprep_version``, ``modalities``
(JSON list, in order). Each modality dataset carries ``encoder`` (spec string),
``weights_sha256``, ``preprocessing`` (JSON) and ``preprocessing_hash``, so a stale cache
is detectable. Those provenance attributes are optional: a file with just the datasets
above (a minimal cache written by any tool) reads with a one-line warning that its
provenance is unknown; ``check_*`` below give the errors for files that cannot be used.

Writing: ``write_features`` writes a whole in-memory ``FeatureSet``; ``FeatureWriter``
appends rows batch by batch to resizable datasets. Both write ``PATH.tmp`` and rename it
to ``PATH`` when complete, so a file at ``PATH`` is always whole (a killed writer leaves
only the temporary). ``merge_features`` concatenates caches made with the same encoders
and preprocessing (e.g. parts written by several processes) into one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmprep.errors import MmprepError

FORMAT = "mmprep-features"
VERSION = 1
RESERVED_SUFFIXES = ("_mask", "_owner", "_tokens", "_caption")
SIGNATURE_ATTRS = ("encoder", "weights_sha256", "preprocessing_hash")



@dataclass
class Modality:
    """Embeddings of one modality; ``owner`` maps item rows to clip rows when item-level."""

    data: np.ndarray
    owner: np.ndarray | None = None
    mask: np.ndarray | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    captions: list[str] | None = None

    @property
    def dim(self) -> int:
        return int(self.data.shape[1])


@dataclass
class FeatureSet:
    keys: list[str]
    split: np.ndarray  # (N,) str
    modalities: dict[str, Modality]
    attrs: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.keys)

    def rows(self, split: str) -> np.ndarray:
        """Clip row indices of ``split``."""
        return np.flatnonzero(self.split == split)


@dataclass
class ModalitySpec:
    """Layout of one modality in a ``FeatureWriter``."""

    dim: int
    item_level: bool = False  # several rows per clip, with /<name>_owner (e.g. text)
    mask: bool = False  # write /<name>_mask
    tokens: int | None = None  # write /<name>_tokens (rows, tokens, dim)
    captions: bool = False  # write /<name>_caption (item-level text)
    attrs: dict[str, Any] = field(default_factory=dict)


def str_dtype():
    import h5py

    return h5py.string_dtype(encoding="utf-8")


def as_str_list(ds) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in ds[()]]


def decode_attrs(attrs) -> dict[str, Any]:
    return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in attrs.items()}


def describe_rows(rows, limit: int = 5) -> str:
    """'rows 3, 7' or 'rows 3, 7, 9, 10, 12 (and 40 more)'."""
    rows = [int(r) for r in np.asarray(rows).ravel()]
    head = ", ".join(str(r) for r in rows[:limit])
    more = f" (and {len(rows) - limit} more)" if len(rows) > limit else ""
    return f"row{'s' if len(rows) != 1 else ''} {head}{more}"


def check_keys(keys, where: str = "") -> None:
    """Duplicate keys are an error naming them and their rows."""
    arr = np.asarray(keys, dtype=object)
    uniq, inverse, counts = np.unique(arr.astype(str), return_inverse=True, return_counts=True)
    if (counts > 1).any():
        dup = np.flatnonzero(counts[inverse] > 1)
        first = uniq[counts > 1][:3]
        names = ", ".join(repr(str(k)) for k in first)
        raise MmprepError(f"{where}/keys: duplicate keys {names} at {describe_rows(dup)}")


def check_owner(name: str, owner: np.ndarray, n: int, where: str = "") -> None:
    """Item owners must be clip rows 0..n-1."""
    bad = np.flatnonzero((owner < 0) | (owner >= n))
    if bad.size:
        raise MmprepError(f"{where}/{name}_owner: values out of range 0..{n - 1} at "
                          f"{describe_rows(bad)} (e.g. {int(owner[bad[0]])})")


def check_finite(name: str, data: np.ndarray, where: str = "", offset: int = 0,
                 rows: np.ndarray | None = None) -> None:
    """NaN or infinite values are an error naming the dataset and its rows (``rows``:
    the file rows of ``data``, else ``offset + position``)."""
    if data.size == 0 or np.isfinite(data).all():
        return
    bad = np.flatnonzero(~np.isfinite(data.reshape(data.shape[0], -1)).all(1))
    at = rows[bad] if rows is not None else bad + offset
    raise MmprepError(f"{where}/{name}: NaN or infinite values at {describe_rows(at)}")


def validate(fs: FeatureSet, where: str = "") -> None:
    n = len(fs.keys)
    check_keys(fs.keys, where)
    if fs.split.shape != (n,):
        raise MmprepError(f"split has shape {fs.split.shape}, expected ({n},)")
    for name, mod in fs.modalities.items():
        if mod.data.ndim != 2:
            raise MmprepError(f"{name}: expected a 2-D (rows, dim) array, got {mod.data.shape}")
        if mod.owner is None and mod.data.shape[0] != n:
            raise MmprepError(f"{where}/{name}: {mod.data.shape[0]} rows for {n} keys "
                              "(every clip-level dataset needs one row per key)")
        if mod.owner is not None:
            if mod.owner.shape != (mod.data.shape[0],):
                raise MmprepError(f"{where}/{name}_owner: {mod.owner.shape[0]} values for "
                                  f"{mod.data.shape[0]} rows of /{name}")
            check_owner(name, mod.owner, n, where)
        if mod.mask is not None and mod.mask.shape != (mod.data.shape[0],):
            raise MmprepError(f"{where}/{name}_mask: {mod.mask.shape[0]} values for "
                              f"{mod.data.shape[0]} rows of /{name}")
        if mod.captions is not None and len(mod.captions) != mod.data.shape[0]:
            raise MmprepError(f"{where}/{name}_caption: {len(mod.captions)} captions for "
                              f"{mod.data.shape[0]} rows of /{name}")
        if np.issubdtype(mod.data.dtype, np.floating):
            check_finite(name, mod.data, where)

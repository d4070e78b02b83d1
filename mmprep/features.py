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
is detectable.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmprep import __version__
from mmprep.errors import MmprepError

FORMAT = "mmprep-features"
VERSION = 1
RESERVED_SUFFIXES = ("_mask", "_owner", "_tokens", "_caption")


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


def _str_dtype():
    import h5py

    return h5py.string_dtype(encoding="utf-8")


def _as_str_list(ds) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in ds[()]]


def validate(fs: FeatureSet) -> None:
    n = len(fs.keys)
    if len(set(fs.keys)) != n:
        raise MmprepError("feature cache has duplicate keys")
    if fs.split.shape != (n,):
        raise MmprepError(f"split has shape {fs.split.shape}, expected ({n},)")
    for name, mod in fs.modalities.items():
        if mod.data.ndim != 2:
            raise MmprepError(f"{name}: expected a 2-D (rows, dim) array, got {mod.data.shape}")
        if mod.owner is None and mod.data.shape[0] != n:
            raise MmprepError(f"{name}: {mod.data.shape[0]} rows for {n} keys")
        if mod.owner is not None:
            if mod.owner.shape != (mod.data.shape[0],):
                raise MmprepError(f"{name}_owner: shape {mod.owner.shape} does not match rows")
            if mod.owner.size and (mod.owner.min() < 0 or mod.owner.max() >= n):
                raise MmprepError(f"{name}_owner: row index out of range 0..{n - 1}")
        if mod.mask is not None and mod.mask.shape != (mod.data.shape[0],):
            raise MmprepError(f"{name}_mask: shape {mod.mask.shape} does not match rows")


def write_features(path: str | Path, fs: FeatureSet, *, dtype: str = "float32") -> Path:
    """Write a whole feature set atomically (temporary file + rename)."""
    import h5py

    validate(fs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["version"] = VERSION
        f.attrs["mmprep_version"] = __version__
        f.attrs["modalities"] = json.dumps(list(fs.modalities))
        for k, v in fs.attrs.items():
            if k not in ("format", "version", "mmprep_version", "modalities"):
                f.attrs[k] = v if isinstance(v, str | int | float) else json.dumps(v)
        f.create_dataset("keys", data=np.array(fs.keys, dtype=object), dtype=_str_dtype())
        f.create_dataset("split", data=np.array([str(s) for s in fs.split], dtype=object),
                         dtype=_str_dtype())
        for name, mod in fs.modalities.items():
            ds = f.create_dataset(name, data=mod.data.astype(dtype, copy=False))
            for k, v in mod.attrs.items():
                ds.attrs[k] = v if isinstance(v, str | int | float) else json.dumps(v)
            ds.attrs["dim"] = mod.dim
            if mod.owner is not None:
                f.create_dataset(f"{name}_owner", data=mod.owner.astype(np.int64))
            if mod.mask is not None:
                f.create_dataset(f"{name}_mask", data=mod.mask.astype(bool))
            if mod.captions is not None:
                f.create_dataset(f"{name}_caption", data=np.array(mod.captions, dtype=object),
                                 dtype=_str_dtype())
    os.replace(tmp, path)
    return path


def read_features(path: str | Path, modalities: list[str] | None = None) -> FeatureSet:
    """Load a feature cache into memory (all modalities, or the ones named)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise MmprepError(f"feature cache not found: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise MmprepError(f"{path} is not a readable HDF5 file: {exc}") from exc
    with f:
        if f.attrs.get("format") != FORMAT:
            raise MmprepError(f"{path} is not an mmprep feature cache (no format={FORMAT!r})")
        if "keys" not in f:
            raise MmprepError(f"{path}: missing /keys")
        names = json.loads(f.attrs.get("modalities", "[]")) or [
            k for k in f if k not in ("keys", "split") and not k.endswith(RESERVED_SUFFIXES)
        ]
        if modalities is not None:
            missing = [m for m in modalities if m not in names]
            if missing:
                raise MmprepError(
                    f"{path} has no modality {', '.join(missing)} (has: {', '.join(names)})"
                )
            names = list(modalities)
        keys = _as_str_list(f["keys"])
        split = np.array(_as_str_list(f["split"]) if "split" in f else [""] * len(keys))
        mods = {}
        for name in names:
            ds = f[name]
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in ds.attrs.items()}
            mods[name] = Modality(
                data=ds[()],
                owner=f[f"{name}_owner"][()] if f"{name}_owner" in f else None,
                mask=f[f"{name}_mask"][()] if f"{name}_mask" in f else None,
                attrs=attrs,
                captions=_as_str_list(f[f"{name}_caption"]) if f"{name}_caption" in f else None,
            )
        root = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    fs = FeatureSet(keys=keys, split=split, modalities=mods, attrs=root)
    validate(fs)
    return fs

"""Reading feature caches: whole into memory (``read_features``), their layout and keys
without the data, and row access for training (``FeatureSource``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from mmprep.errors import MmprepError
from mmprep.features.format import (
    FORMAT,
    RESERVED_SUFFIXES,
    SIGNATURE_ATTRS,
    FeatureSet,
    Modality,
    as_str_list,
    decode_attrs,
    validate,
)

log = logging.getLogger("mmprep.features")
_WARNED: set[str] = set()


def read_features(path: str | Path, modalities: list[str] | None = None) -> FeatureSet:
    """Load a feature cache into memory.

    Args:
        path: the HDF5 file.
        modalities: the modalities to load (default: all).
    """
    path = Path(path)
    with open_cache(path) as f:
        if "keys" not in f:
            raise MmprepError(f"{path}: missing /keys")
        names = listed_modalities(f)
        if modalities is not None:
            missing = [m for m in modalities if m not in names]
            if missing:
                raise MmprepError(
                    f"{path} has no modality {', '.join(missing)} (has: {', '.join(names)})"
                )
            names = list(modalities)
        keys = as_str_list(f["keys"])
        split = np.array(as_str_list(f["split"]) if "split" in f else [""] * len(keys))
        mods = {}
        for name in names:
            ds = f[name]
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in ds.attrs.items()}
            mods[name] = Modality(
                data=ds[()],
                owner=f[f"{name}_owner"][()] if f"{name}_owner" in f else None,
                mask=f[f"{name}_mask"][()] if f"{name}_mask" in f else None,
                attrs=attrs,
                captions=as_str_list(f[f"{name}_caption"]) if f"{name}_caption" in f else None,
            )
        root = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    fs = FeatureSet(keys=keys, split=split, modalities=mods, attrs=root)
    validate(fs, f"{path.name}:")
    return fs


def listed_modalities(f) -> list[str]:
    """The modalities of an open cache: its ``modalities`` attribute, else every
    dataset that is not keys, split or a per-modality companion (owner, mask, ...)."""
    listed = f.attrs.get("modalities")
    if listed:
        return json.loads(listed)
    return [k for k in f if k not in ("keys", "split") and not k.endswith(RESERVED_SUFFIXES)]


def open_cache(path: str | Path):
    """The feature cache at ``path`` opened read-only (an ``h5py.File``); a clear error
    when it is missing, not HDF5, or has no ``/keys``. A file without the provenance
    attributes (``format``, each modality's ``encoder``) is read with a one-line warning
    (once per file and process) that its provenance is unknown."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise MmprepError(f"feature cache not found: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise MmprepError(f"{path} is not a readable HDF5 file: {exc}") from exc
    fmt = f.attrs.get("format")
    fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
    if fmt is not None and fmt != FORMAT:
        f.close()
        raise MmprepError(f"{path} is not an mmprep feature cache (format={fmt!r}, "
                          f"expected {FORMAT!r})")
    if "keys" not in f:
        f.close()
        raise MmprepError(f"{path} is not a feature cache: no /keys dataset (the minimal "
                          "schema: /keys, one (N, D) dataset per modality, optional /split, "
                          "/<modality>_mask, /text and /text_owner; see the README)")
    unknown = [m for m in listed_modalities(f) if m in f and "encoder" not in f[m].attrs]
    if (fmt is None or unknown) and str(path.resolve()) not in _WARNED:
        _WARNED.add(str(path.resolve()))
        what = ("no format attribute" if fmt is None
                else f"no encoder attribute on {', '.join(unknown)}")
        log.warning("mmprep: warning: %s: %s, provenance unknown (encoders and "
                    "preprocessing cannot be checked)", path.name, what)
    return f


def read_layout(path: str | Path) -> dict[str, Any]:
    """Rows, root attributes and per-modality layout of a cache, without loading data."""
    path = Path(path)
    with open_cache(path) as f:
        names = listed_modalities(f)
        mods = {}
        for name in names:
            ds = f[name]
            mods[name] = {
                "dim": int(ds.shape[1]),
                "rows": int(ds.shape[0]),
                "item_level": f"{name}_owner" in f,
                "mask": f"{name}_mask" in f,
                "tokens": int(f[f"{name}_tokens"].shape[1]) if f"{name}_tokens" in f else None,
                "captions": f"{name}_caption" in f,
                "dtype": str(ds.dtype),
                "attrs": decode_attrs(ds.attrs),
            }
        return {"rows": int(f["keys"].shape[0]), "attrs": decode_attrs(f.attrs),
                "modalities": mods}


def read_keys(path: str | Path) -> list[str]:
    with open_cache(path) as f:
        return as_str_list(f["keys"])


def layout_signature(layout: dict[str, Any]) -> dict[str, Any]:
    """What must be equal for two caches to be merged or appended to each other."""
    return {
        name: {"dim": m["dim"], "item_level": m["item_level"], "mask": m["mask"],
               "tokens": m["tokens"], "captions": m["captions"], "dtype": m["dtype"],
               **{k: m["attrs"].get(k) for k in SIGNATURE_ATTRS}}
        for name, m in layout["modalities"].items()
    }

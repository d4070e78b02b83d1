"""``mmprep import-features``: features from another pipeline into a feature cache.

The input holds arrays named as the cache's datasets (``format.py``): ``keys`` (one per
clip, unique), optional ``split``, one ``(N, D)`` array per modality, and optional
``<m>_mask`` (clips lacking ``m``), ``<m>_owner`` (item-level modalities such as
``text``: the clip row of each item row) and ``<m>_caption``. Formats:

* ``.npz``: those names as members (``numpy.savez``);
* a folder of ``NAME.npy`` files (``keys`` and ``split`` may be ``keys.txt`` /
  ``split.txt``, one per line);
* ``.parquet``: one row per clip; a ``key`` (or ``keys``) column, optional ``split``,
  a list column per clip-level modality, a list-of-lists column per item-level one
  (e.g. ``text``: the clip's caption vectors; owners are derived), ``<m>_mask`` and
  ``<m>_caption`` (a list of strings per clip) columns;
* ``.safetensors``: the numeric arrays as tensors; ``keys`` and ``split`` (JSON lists)
  and ``<m>_caption`` in the file's metadata.

The arrays are checked (``format.validate``: row counts, owners, duplicate keys, NaN or
infinite rows) and written with ``writer.write_features``, the cache's one writer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mmprep.errors import MmprepError, UsageError
from mmprep.features.format import RESERVED_SUFFIXES, FeatureSet, Modality, validate
from mmprep.results import Result

ImportFormat = Literal["auto", "npz", "npy", "parquet", "safetensors"]
FORMATS = ("npz", "npy", "parquet", "safetensors")


@dataclass
class ImportSummary(Result):
    """What ``import_features`` wrote."""

    out: str
    source: str
    format: str
    rows: int  # clips
    modalities: dict[str, dict[str, Any]]  # name: rows, dim, item_level, masked clips
    splits: dict[str, int]


def detect_format(src: Path) -> str:
    if src.is_dir():
        return "npy"
    suffix = src.suffix.lower().lstrip(".")
    if suffix in ("npz", "parquet", "safetensors"):
        return suffix
    raise UsageError(f"{src}: cannot tell the format from the name; pass --format "
                     f"({', '.join(FORMATS)})")


def read_arrays(src: str | Path, fmt: str = "auto") -> dict[str, Any]:
    """The named arrays of ``src`` (see the module docstring)."""
    src = Path(src)
    if not src.exists():
        raise UsageError(f"input not found: {src}")
    fmt = detect_format(src) if fmt == "auto" else fmt
    try:
        if fmt == "npz":
            with np.load(src, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        if fmt == "npy":
            return _read_folder(src)
        if fmt == "parquet":
            return _read_parquet(src)
        if fmt == "safetensors":
            return _read_safetensors(src)
    except (MmprepError, OSError):
        raise
    except Exception as exc:  # a damaged file: any reader's own error, one line
        raise UsageError(f"{src} is not a readable {fmt} file: {exc}") from exc
    raise UsageError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")


def _read_folder(src: Path) -> dict[str, Any]:
    if not src.is_dir():
        raise UsageError(f"{src} is not a folder of .npy files")
    arrays: dict[str, Any] = {}
    for path in sorted(src.glob("*.npy")):
        arrays[path.stem] = np.load(path, allow_pickle=False)
    for name in ("keys", "split"):
        txt = src / f"{name}.txt"
        if name not in arrays and txt.is_file():
            arrays[name] = np.array(txt.read_text(encoding="utf-8").splitlines())
    return arrays


def _read_parquet(src: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    table = pq.read_table(src)
    arrays: dict[str, Any] = {}
    cols = table.column_names
    key_col = "key" if "key" in cols else "keys"
    if key_col not in cols:
        raise UsageError(f"{src}: no 'key' column (one row per clip, its key)")
    arrays["keys"] = np.array([str(k) for k in table.column(key_col).to_pylist()])
    for name in cols:
        if name == key_col:
            continue
        values = table.column(name).to_pylist()
        if name == "split" or name.endswith("_mask"):
            arrays[name] = np.array(values, dtype=bool if name.endswith("_mask") else str)
        elif name.endswith("_caption"):
            arrays[name] = [str(c) for per_clip in values for c in (per_clip or [])]
        elif values and isinstance(values[0], list) and values[0] and \
                isinstance(values[0][0], list):  # item-level: a list of vectors per clip
            counts = [len(v or []) for v in values]
            arrays[f"{name}_owner"] = np.repeat(np.arange(len(values)), counts)
            rows = [r for v in values for r in (v or [])]
            arrays[name] = _matrix(rows, name, src)
        else:
            arrays[name] = _matrix(values, name, src)
    return arrays


def _matrix(rows: list, name: str, src: Path) -> np.ndarray:
    lengths = {len(r) if r is not None else -1 for r in rows}
    if len(lengths) > 1:
        bad = [i for i, r in enumerate(rows) if r is None or len(r) != len(rows[0] or [])]
        raise UsageError(f"{src}: column {name!r} has vectors of different lengths "
                         f"({sorted(lengths)}), e.g. row {bad[0]}")
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)


def _read_safetensors(src: Path) -> dict[str, Any]:
    from safetensors import safe_open
    from safetensors.numpy import load_file

    arrays: dict[str, Any] = dict(load_file(str(src)))
    with safe_open(str(src), framework="np") as f:
        meta = f.metadata() or {}
    for name, text in meta.items():
        if name in ("keys", "split") or name.endswith("_caption"):
            try:
                arrays[name] = json.loads(text)
            except json.JSONDecodeError as exc:
                raise UsageError(f"{src}: metadata {name!r} is not a JSON list") from exc
    if "keys" not in arrays:
        raise UsageError(f"{src}: no 'keys' in the metadata (a JSON list of the clip keys, "
                         "e.g. save_file(tensors, path, metadata={'keys': json.dumps(keys)}))")
    return arrays


def feature_set(arrays: dict[str, Any], where: str = "") -> FeatureSet:
    """Check the named arrays and build a ``FeatureSet`` (errors name the dataset)."""
    arrays = dict(arrays)
    if "keys" not in arrays:
        raise UsageError(f"{where}no 'keys' array (one unique key per clip)")
    keys = [str(k) for k in np.asarray(arrays.pop("keys")).ravel()]
    n = len(keys)
    split = arrays.pop("split", None)
    split = np.array([""] * n) if split is None else np.array([str(s) for s in split])
    if split.shape != (n,):
        raise MmprepError(f"{where}/split: {split.size} values for {n} keys")
    names = [k for k in arrays if not k.endswith(RESERVED_SUFFIXES)]
    for k in arrays:
        base = next((k[: -len(s)] for s in RESERVED_SUFFIXES if k.endswith(s)), None)
        if base is not None and base not in arrays:
            raise UsageError(f"{where}/{k}: no /{base} array it belongs to")
    if not names:
        raise UsageError(f"{where}no modality arrays (e.g. video, audio, text)")
    mods = {}
    for m in names:
        data = np.asarray(arrays[m])
        if data.ndim != 2 or not np.issubdtype(data.dtype, np.number):
            raise UsageError(f"{where}/{m}: expected a numeric (rows, dim) array, got "
                             f"{data.dtype} of shape {data.shape}")
        owner = arrays.get(f"{m}_owner")
        mask = arrays.get(f"{m}_mask")
        captions = arrays.get(f"{m}_caption")
        mods[m] = Modality(
            data=data.astype(np.float32, copy=False),
            owner=None if owner is None else np.asarray(owner).astype(np.int64).ravel(),
            mask=None if mask is None else np.asarray(mask).astype(bool).ravel(),
            captions=None if captions is None else [str(c) for c in captions])
    fs = FeatureSet(keys=keys, split=split, modalities=mods)
    validate(fs, where)
    return fs


def import_features(src: str | Path, out: str | Path, *, fmt: ImportFormat = "auto",
                    overwrite: bool = False, dtype: str = "float32") -> ImportSummary:
    """Convert ``src`` (``.npz``, a folder of ``.npy``, ``.parquet``, ``.safetensors``)
    into the feature cache ``out``.

    Args:
        src: the input file or folder.
        out: the HDF5 cache to write (refused when it exists, unless ``overwrite``).
        fmt: the input format (auto: from the name).
        overwrite: replace ``out``.
        dtype: the stored dtype (float32 or float16).
    """
    from mmprep.features.writer import write_features

    src, out = Path(src), Path(out)
    if out.exists() and not overwrite:
        raise UsageError(f"{out} exists (--overwrite replaces it)")
    fmt = detect_format(src) if fmt == "auto" else fmt
    fs = feature_set(read_arrays(src, fmt), f"{src.name}:")
    for m in fs.modalities.values():
        m.attrs = {"notes": f"imported from {src.name}"}
    fs.attrs = {"created_by": "mmprep import-features", "imported_from": str(src.resolve())}
    write_features(out, fs, dtype=dtype)
    names, counts = np.unique(fs.split, return_counts=True)
    return ImportSummary(
        out=str(out), source=str(src), format=fmt, rows=len(fs),
        modalities={name: {"rows": int(m.data.shape[0]), "dim": m.dim,
                           "item_level": m.owner is not None,
                           "missing": int((~m.mask).sum()) if m.mask is not None else 0}
                    for name, m in fs.modalities.items()},
        splits={str(k): int(v) for k, v in zip(names, counts)})

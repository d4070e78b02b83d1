"""Writing feature caches: whole (``write_features``), row batches (``FeatureWriter``),
and merges of caches made with the same encoders (``merge_features``). Every writer
writes ``PATH.tmp`` and renames it when complete."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from mmprep import __version__
from mmprep.errors import MmprepError
from mmprep.features.format import (
    FORMAT,
    RESERVED_SUFFIXES,
    VERSION,
    FeatureSet,
    ModalitySpec,
    as_str_list,
    str_dtype,
    validate,
)
from mmprep.features.reader import layout_signature, open_cache, read_layout
from mmprep.storage import commit_temp, exclusive_temp


def write_features(path: str | Path, fs: FeatureSet, *, dtype: str = "float32") -> Path:
    """Write a whole feature set atomically (temporary file + rename).

    Args:
        path: the HDF5 file to write.
        fs: keys, split and one ``Modality`` per modality.
        dtype: dtype of the stored embeddings.
    """
    import h5py

    validate(fs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = exclusive_temp(path)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["version"] = VERSION
            f.attrs["mmprep_version"] = __version__
            f.attrs["modalities"] = json.dumps(list(fs.modalities))
            for k, v in fs.attrs.items():
                if k not in ("format", "version", "mmprep_version", "modalities"):
                    f.attrs[k] = _attr(v)
            f.create_dataset("keys", data=np.array(fs.keys, dtype=object), dtype=str_dtype())
            f.create_dataset("split", data=np.array([str(s) for s in fs.split], dtype=object),
                             dtype=str_dtype())
            for name, mod in fs.modalities.items():
                ds = f.create_dataset(name, data=mod.data.astype(dtype, copy=False))
                for k, v in mod.attrs.items():
                    ds.attrs[k] = _attr(v)
                ds.attrs["dim"] = mod.dim
                if mod.owner is not None:
                    f.create_dataset(f"{name}_owner", data=mod.owner.astype(np.int64))
                if mod.mask is not None:
                    f.create_dataset(f"{name}_mask", data=mod.mask.astype(bool))
                if mod.captions is not None:
                    f.create_dataset(f"{name}_caption", data=np.array(mod.captions, dtype=object),
                                     dtype=str_dtype())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    commit_temp(tmp, path)
    return path


def _attr(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    return value if isinstance(value, str | int | float | bool) else json.dumps(value)


class FeatureWriter:
    """Append rows to a new feature cache; ``close()`` makes it visible atomically.

    Rows go to ``PATH.tmp`` (datasets resizable along the first axis, chunked, flushed
    after every append); ``close()`` renames it to ``PATH``. If the process dies, ``PATH``
    is untouched and the temporary is garbage that the next writer replaces.

    ``append`` takes one batch of clips: their keys and splits, one row per clip for
    clip-level modalities, and for item-level modalities the rows plus ``owners`` (the
    index, within this batch, of the clip each row belongs to).
    """

    def __init__(
        self,
        path: str | Path,
        modalities: dict[str, ModalitySpec],
        *,
        attrs: dict[str, Any] | None = None,
        dtype: str = "float32",
        chunk_rows: int | None = None,
    ):
        import h5py

        for name in modalities:
            if name in ("keys", "split") or name.endswith(RESERVED_SUFFIXES):
                raise MmprepError(f"invalid modality name {name!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = exclusive_temp(self.path)  # unique, created exclusively
        self.modalities = dict(modalities)
        self.dtype = np.dtype(dtype)
        self.rows = 0
        self.item_rows = {n: 0 for n, m in modalities.items() if m.item_level}
        self._keys: set[str] = set()
        self._f = h5py.File(self.tmp, "w")
        f = self._f
        f.attrs["format"] = FORMAT
        f.attrs["version"] = VERSION
        f.attrs["mmprep_version"] = __version__
        f.attrs["modalities"] = json.dumps(list(modalities))
        for k, v in (attrs or {}).items():
            if k not in ("format", "version", "mmprep_version", "modalities"):
                f.attrs[k] = _attr(v)
        sdt = str_dtype()
        f.create_dataset("keys", shape=(0,), maxshape=(None,), dtype=sdt, chunks=(1024,))
        f.create_dataset("split", shape=(0,), maxshape=(None,), dtype=sdt, chunks=(1024,))
        for name, m in modalities.items():
            # About 256 KB per chunk unless told otherwise.
            rows = chunk_rows or max(16, min(4096, (1 << 18) // (m.dim * self.dtype.itemsize)))
            ds = f.create_dataset(name, shape=(0, m.dim), maxshape=(None, m.dim),
                                  dtype=self.dtype, chunks=(rows, m.dim))
            for k, v in m.attrs.items():
                ds.attrs[k] = _attr(v)
            ds.attrs["dim"] = m.dim
            if m.item_level:
                f.create_dataset(f"{name}_owner", shape=(0,), maxshape=(None,), dtype=np.int64,
                                 chunks=(1024,))
                if m.captions:
                    f.create_dataset(f"{name}_caption", shape=(0,), maxshape=(None,), dtype=sdt,
                                     chunks=(1024,))
            if m.mask:
                f.create_dataset(f"{name}_mask", shape=(0,), maxshape=(None,), dtype=bool,
                                 chunks=(1024,))
            if m.tokens:
                f.create_dataset(f"{name}_tokens", shape=(0, m.tokens, m.dim),
                                 maxshape=(None, m.tokens, m.dim), dtype=self.dtype,
                                 chunks=(max(1, rows // m.tokens), m.tokens, m.dim))

    def _extend(self, name: str, start: int, values) -> None:
        ds = self._f[name]
        values = np.asarray(values) if not isinstance(values, list) else values
        n = len(values)
        if n == 0:
            return
        ds.resize(start + n, axis=0)
        ds[start : start + n] = values

    def append(
        self,
        keys: list[str],
        split: list[str] | np.ndarray,
        data: dict[str, np.ndarray],
        *,
        masks: dict[str, np.ndarray] | None = None,
        owners: dict[str, np.ndarray] | None = None,
        captions: dict[str, list[str]] | None = None,
        tokens: dict[str, np.ndarray] | None = None,
    ) -> None:
        masks, owners = masks or {}, owners or {}
        captions, tokens = captions or {}, tokens or {}
        n = len(keys)
        if len(split) != n:
            raise MmprepError(f"{len(split)} split values for {n} keys")
        for key in keys:
            if key in self._keys:
                raise MmprepError(f"duplicate key {key!r} in {self.path.name}")
        missing = set(self.modalities) - set(data)
        if missing:
            raise MmprepError(f"append: no rows for {', '.join(sorted(missing))}")
        for name, m in self.modalities.items():
            rows = np.asarray(data[name])
            if rows.ndim != 2 or rows.shape[1] != m.dim:
                raise MmprepError(f"{name}: rows of shape {rows.shape}, expected (n, {m.dim})")
            if m.item_level:
                own = np.asarray(owners.get(name), dtype=np.int64)
                if own.shape != (rows.shape[0],) or (own.size and (own.min() < 0 or
                                                                   own.max() >= n)):
                    raise MmprepError(f"{name}: owners must give a clip row for every item row")
                if m.captions and len(captions.get(name, ())) != rows.shape[0]:
                    raise MmprepError(f"{name}: one caption per row is required")
            elif rows.shape[0] != n:
                raise MmprepError(f"{name}: {rows.shape[0]} rows for {n} keys")
            if m.mask and np.asarray(masks.get(name)).shape != (n,):
                raise MmprepError(f"{name}: a mask value per key is required")
            if m.tokens and np.asarray(tokens.get(name)).shape != (n, m.tokens, m.dim):
                raise MmprepError(f"{name}: tokens of shape (n, {m.tokens}, {m.dim}) required")
        start = self.rows
        self._extend("keys", start, list(keys))
        self._extend("split", start, [str(s) for s in split])
        for name, m in self.modalities.items():
            rows = np.asarray(data[name], dtype=self.dtype)
            if m.item_level:
                istart = self.item_rows[name]
                self._extend(name, istart, rows)
                self._extend(f"{name}_owner", istart, np.asarray(owners[name]) + start)
                if m.captions:
                    self._extend(f"{name}_caption", istart, list(captions[name]))
                self.item_rows[name] = istart + rows.shape[0]
            else:
                self._extend(name, start, rows)
            if m.mask:
                self._extend(f"{name}_mask", start, np.asarray(masks[name], dtype=bool))
            if m.tokens:
                self._extend(f"{name}_tokens", start, np.asarray(tokens[name], dtype=self.dtype))
        self._keys.update(keys)
        self.rows = start + n
        self._f.flush()

    def set_attrs(self, attrs: dict[str, Any]) -> None:
        for k, v in attrs.items():
            self._f.attrs[k] = _attr(v)

    def close(self) -> Path:
        """Finish the file and rename it into place."""
        self._f.attrs["rows"] = self.rows
        self._f.close()
        with open(self.tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        commit_temp(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        try:
            self._f.close()
        finally:
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> FeatureWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def merge_features(
    sources: list[str | Path],
    out: str | Path,
    *,
    attrs: dict[str, Any] | None = None,
    dtype: str | None = None,
    chunk_rows: int = 4096,
) -> Path:
    """Concatenate caches with identical modalities, encoders and preprocessing into
    ``out`` (rows in source order). Keys must be unique across sources. ``out`` may be
    one of the sources: the result is written to a temporary file first. Root attributes
    are ``attrs`` when given, else those of the first source."""
    import h5py

    sources = [Path(s) for s in sources]
    if not sources:
        raise MmprepError("merge_features: no input files")
    layouts = [read_layout(s) for s in sources]
    ref = layout_signature(layouts[0])
    for src, lay in zip(sources[1:], layouts[1:]):
        if layout_signature(lay) != ref:
            raise MmprepError(
                f"cannot merge {src} with {sources[0]}: different modalities, encoders or "
                "preprocessing"
            )
    first = layouts[0]
    specs = {
        name: ModalitySpec(dim=m["dim"], item_level=m["item_level"], mask=m["mask"],
                           tokens=m["tokens"], captions=m["captions"],
                           attrs={k: v for k, v in m["attrs"].items() if k != "dim"})
        for name, m in first["modalities"].items()
    }
    root = dict(attrs) if attrs is not None else {
        k: v for k, v in first["attrs"].items() if k != "rows"}
    if dtype is None:
        with open_cache(sources[0]) as f:
            names = list(specs)
            dtype = str(f[names[0]].dtype) if names else "float32"
    seen: dict[str, Path] = {}
    writer = FeatureWriter(out, specs, attrs=root, dtype=dtype)
    try:
        for src in sources:
            with h5py.File(src, "r") as f:
                keys = as_str_list(f["keys"])
                for k in keys:
                    if k in seen:
                        raise MmprepError(f"key {k!r} is in both {seen[k]} and {src}")
                    seen[k] = src
                split = as_str_list(f["split"])
                owners = {n: f[f"{n}_owner"][()] for n, m in specs.items() if m.item_level}
                for lo in range(0, len(keys), chunk_rows):
                    hi = min(len(keys), lo + chunk_rows)
                    data, own, caps, masks, toks = {}, {}, {}, {}, {}
                    for name, m in specs.items():
                        if m.item_level:
                            idx = np.flatnonzero((owners[name] >= lo) & (owners[name] < hi))
                            sel = idx
                            if idx.size and idx[-1] - idx[0] + 1 == idx.size:
                                sel = slice(int(idx[0]), int(idx[-1]) + 1)  # contiguous
                            data[name] = f[name][sel] if idx.size else np.zeros((0, m.dim))
                            own[name] = owners[name][idx] - lo
                            if m.captions:
                                raw = f[f"{name}_caption"][sel] if idx.size else []
                                caps[name] = [c.decode() if isinstance(c, bytes) else str(c)
                                              for c in raw]
                        else:
                            data[name] = f[name][lo:hi]
                        if m.mask:
                            masks[name] = f[f"{name}_mask"][lo:hi]
                        if m.tokens:
                            toks[name] = f[f"{name}_tokens"][lo:hi]
                    writer.append(keys[lo:hi], split[lo:hi], data, masks=masks, owners=own,
                                  captions=caps, tokens=toks)
        return writer.close()
    except BaseException:
        writer.abort()
        raise

"""The feature cache: one HDF5 file of embeddings, rows aligned by clip key (a public
contract; the schema is in ``format``). ``writer`` writes and merges caches, ``reader``
reads them whole or their layout, ``source`` gives training and evaluation row access.

The names below are imported from their module on first use.
"""

from __future__ import annotations

from mmprep.lazy import lazy_names

_NAMES = {
    "FORMAT": "mmprep.features.format",
    "FeatureSet": "mmprep.features.format",
    "Modality": "mmprep.features.format",
    "ModalitySpec": "mmprep.features.format",
    "VERSION": "mmprep.features.format",
    "as_str_list": "mmprep.features.format",
    "validate": "mmprep.features.format",
    "layout_signature": "mmprep.features.reader",
    "listed_modalities": "mmprep.features.reader",
    "open_cache": "mmprep.features.reader",
    "read_features": "mmprep.features.reader",
    "read_keys": "mmprep.features.reader",
    "read_layout": "mmprep.features.reader",
    "FeatureSource": "mmprep.features.source",
    "FeatureWriter": "mmprep.features.writer",
    "merge_features": "mmprep.features.writer",
    "write_features": "mmprep.features.writer",
}
__all__ = sorted(_NAMES)


__getattr__, __dir__ = lazy_names("mmprep.features", _NAMES, globals())

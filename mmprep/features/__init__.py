"""The feature cache: one HDF5 file of embeddings, rows aligned by clip key (a public
contract; the schema is in ``format``). ``writer`` writes and merges caches, ``reader``
reads them whole or their layout, ``source`` gives training and evaluation row access.
"""

from mmprep.features.format import (
    FORMAT,
    VERSION,
    FeatureSet,
    Modality,
    ModalitySpec,
    as_str_list,
    validate,
)
from mmprep.features.reader import (
    layout_signature,
    listed_modalities,
    open_cache,
    read_features,
    read_keys,
    read_layout,
)
from mmprep.features.source import FeatureSource
from mmprep.features.writer import FeatureWriter, merge_features, write_features

__all__ = [
    "FORMAT",
    "VERSION",
    "FeatureSet",
    "FeatureSource",
    "FeatureWriter",
    "Modality",
    "ModalitySpec",
    "as_str_list",
    "layout_signature",
    "listed_modalities",
    "merge_features",
    "open_cache",
    "read_features",
    "read_keys",
    "read_layout",
    "validate",
    "write_features",
]

"""``mmprep embed``: frozen-encoder embeddings of extract's shards, into one feature cache.

``config``: which encoders and how to run them; ``plan``: shards, layout, what is done;
``data``: shard samples decoded into batches (DataLoader workers); ``encode``: batches
through the encoders into part files; ``parallel``: one process per device; ``run``: the
whole run (``embed``) and the merge of its parts (``finish``).
"""

from mmprep.embed.config import EmbedConfig
from mmprep.embed.plan import load_encoders
from mmprep.embed.run import EmbedOptions, EmbedSummary, embed, finish, parts_dir_for

__all__ = [
    "EmbedConfig",
    "EmbedOptions",
    "EmbedSummary",
    "embed",
    "finish",
    "load_encoders",
    "parts_dir_for",
]

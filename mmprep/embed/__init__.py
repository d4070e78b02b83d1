"""``mmprep embed``: frozen-encoder embeddings of extract's shards, into one feature cache.

``config``: which encoders and how to run them; ``plan``: shards, layout, what is done;
``data``: shard samples decoded into batches (DataLoader workers); ``encode``: batches
through the encoders into part files; ``parallel``: one process per device; ``run``: the
whole run (``embed``) and the merge of its parts (``finish``).

The names below are imported from their module on first use.
"""

from __future__ import annotations

from mmprep.lazy import lazy_names

_NAMES = {
    "EmbedConfig": "mmprep.embed.config",
    "EmbedOptions": "mmprep.embed.run",
    "EmbedSummary": "mmprep.embed.run",
    "embed": "mmprep.embed.run",
    "finish": "mmprep.embed.run",
    "parts_dir_for": "mmprep.embed.run",
}
__all__ = sorted(_NAMES)


__getattr__, __dir__ = lazy_names("mmprep.embed", _NAMES, globals())

"""Extract: a manifest's samples -> WebDataset shards (the first stage of the chain).

``sample`` runs the stages of one sample (decode, frames, audio features, tokens) into
the members of the shard contract; ``options`` says how a run goes; ``run`` plans the
shards of a manifest, skips the finished ones and hands the rest to an executor
(``executors``: a local process pool, Ray, or a SLURM array task); ``retry``
reprocesses the failed samples. What a shard folder holds, and how it is written and
read back, is owned by ``mmprep.shards``.

The names below are imported from their module on first use, so reading a config's
defaults does not load the executors.
"""

from __future__ import annotations

from mmprep.lazy import lazy_names

_NAMES = {
    "ExtractConfig": "mmprep.extract.sample",
    "Outcome": "mmprep.extract.sample",
    "preflight": "mmprep.extract.sample",
    "process_sample": "mmprep.extract.sample",
    "run_sample": "mmprep.extract.sample",
    "RunOptions": "mmprep.extract.options",
    "PoolOptions": "mmprep.extract.options",
    "RunSummary": "mmprep.extract.run",
    "extract": "mmprep.extract.run",
    "retry_failed": "mmprep.extract.retry",
}
__all__ = sorted(_NAMES)


__getattr__, __dir__ = lazy_names("mmprep.extract", _NAMES, globals())

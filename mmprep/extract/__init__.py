"""Extract: a manifest's samples -> WebDataset shards (the first stage of the chain).

``sample`` runs the stages of one sample (decode, frames, audio features, tokens) into
the members of the shard contract; ``run`` plans the shards of a manifest, skips the
finished ones and hands the rest to an executor (``executors``: a local process pool,
Ray, or a SLURM array task); ``retry`` reprocesses the failed samples. What a shard
folder holds, and how it is written and read back, is owned by ``mmprep.shards``.
"""

from mmprep.extract.retry import retry_failed
from mmprep.extract.run import RunOptions, RunSummary, extract
from mmprep.extract.sample import ExtractConfig, Outcome, preflight, process_sample, run_sample

__all__ = [
    "ExtractConfig",
    "Outcome",
    "RunOptions",
    "RunSummary",
    "extract",
    "preflight",
    "process_sample",
    "retry_failed",
    "run_sample",
]

"""mmprep: raw video/audio/text datasets to training-ready multimodal artifacts.

The public API, one call per stage (each name is imported from its module on first use,
so ``import mmprep`` stays light). ``mmprep.extract`` and ``mmprep.embed`` are the
stages' packages; their run functions are ``run_extract`` and ``run_embed`` here::

    samples = mmprep.read_manifest("videos.csv")
    mmprep.run_extract(samples, "shards/", mmprep.ExtractConfig())      # -> RunSummary
    mmprep.inspect_path("shards/")                                      # -> InspectReport
    mmprep.run_embed("shards/", "features.h5",
                     mmprep.EmbedConfig(video_encoder="efficientnet-lite0"))  # -> EmbedSummary
    mmprep.train_heads("features.h5", "runs/gram", mmprep.TrainHeadConfig())  # -> TrainResult
    mmprep.evaluate_run("runs/gram", "features.h5")                     # -> EvalResult
    mmprep.run_chain(mmprep.load_chain("quickstart"), "demo/chain")     # -> ChainResult
"""

from __future__ import annotations

__version__ = "0.1.0"

from mmprep.errors import ConfigError as ConfigError  # noqa: E402
from mmprep.errors import EnvironmentProblem as EnvironmentProblem  # noqa: E402
from mmprep.errors import MmprepError as MmprepError  # noqa: E402
from mmprep.errors import SampleError as SampleError  # noqa: E402
from mmprep.errors import UsageError as UsageError  # noqa: E402
from mmprep.lazy import lazy_names  # noqa: E402

_ERRORS = ["ConfigError", "EnvironmentProblem", "MmprepError", "SampleError", "UsageError"]

# public name -> module that defines it (or: module, name there)
_ALIASES = {"run_extract": ("mmprep.extract", "extract"),
            "run_embed": ("mmprep.embed", "embed")}
_API: dict[str, str | tuple[str, str]] = {
    # manifests
    "Sample": "mmprep.manifest",
    "read_manifest": "mmprep.manifest",
    # media, one clip at a time
    "VideoConfig": "mmprep.media.video",
    "sample_frames": "mmprep.media.video",
    "AudioConfig": "mmprep.media.audio",
    "audio_features": "mmprep.media.audio",
    "TextConfig": "mmprep.media.text",
    "tokenize": "mmprep.media.text",
    # extract: manifest -> shards
    "ExtractConfig": "mmprep.extract",
    "RunOptions": "mmprep.extract",
    "RunSummary": "mmprep.extract",
    "retry_failed": "mmprep.extract",
    # shards
    "ShardConfig": "mmprep.shards",
    "InspectReport": "mmprep.shards",
    "inspect_path": "mmprep.shards",
    "shard_files": "mmprep.shards",
    "read_stats": "mmprep.shards",
    # training from the shards
    "ShardDataset": "mmprep.loader",
    "make_loader": "mmprep.loader",
    # embed: shards -> feature cache
    "EmbedConfig": "mmprep.embed",
    "EmbedOptions": "mmprep.embed",
    "EmbedSummary": "mmprep.embed",
    # feature caches
    "FeatureSet": "mmprep.features",
    "Modality": "mmprep.features",
    "FeatureSource": "mmprep.features",
    "read_features": "mmprep.features",
    "write_features": "mmprep.features",
    # alignment heads
    "TrainHeadConfig": "mmprep.heads.config",
    "train_heads": "mmprep.heads.train",
    "evaluate_run": "mmprep.heads.evaluate",
    "project_run": "mmprep.heads.evaluate",
    "load_heads": "mmprep.heads.model",
    "TrainResult": "mmprep.heads.results",
    "EvalResult": "mmprep.heads.results",
    # the whole chain
    "load_chain": "mmprep.chain",
    "run_chain": "mmprep.chain",
    "ChainOptions": "mmprep.chain",
    "ChainResult": "mmprep.chain",
    # the environment
    "run_doctor": "mmprep.environment.doctor",
}

__all__ = sorted([*_API, *_ALIASES, *_ERRORS, "__version__"])


__getattr__, __dir__ = lazy_names("mmprep", {**_API, **_ALIASES}, globals())

"""mmprep: raw video/audio/text datasets to training-ready multimodal artifacts."""

__version__ = "0.1.0"

from mmprep.errors import ConfigError, MmprepError  # noqa: E402

__all__ = ["ConfigError", "MmprepError", "__version__"]

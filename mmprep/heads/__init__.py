"""Alignment heads on cached features: losses, projection heads, training, retrieval.

``mmprep.heads.load(run_dir)`` returns a run's heads for use in your own code (see
``model.load``); the other names live in their modules (``train.train_heads``,
``evaluate.evaluate_run``, ``compare.compare_runs``, ``losses``).
"""

from __future__ import annotations

from mmprep.lazy import lazy_names

_NAMES = {
    "load": "mmprep.heads.model",
    "load_heads": "mmprep.heads.model",
}
__all__ = sorted(_NAMES)


__getattr__, __dir__ = lazy_names("mmprep.heads", _NAMES, globals())

"""Bootstrap intervals for retrieval recall, over clips.

A retrieval table's queries are grouped by clip (text -> video: a clip's captions; video
-> text: the clip itself). The test clips are the sample, so the bootstrap draws clips
with replacement (``clip_weights``: how many times each clip is drawn, for ``n_boot``
resamples) and recomputes R@K as the mean over the drawn clips' queries; the gallery
stays the full test set. The interval is the percentile interval of the resampled R@K.
Two runs scored on the same clips are compared with the *same* draws (paired
bootstrap): the interval of the difference is much narrower than the two intervals
suggest, because most of the clip-to-clip variation is shared.
"""

from __future__ import annotations

import numpy as np

N_BOOT = 1000
LEVEL = 0.95
SEED = 0


def clip_weights(n_clips: int, n_boot: int = N_BOOT, seed: int = SEED) -> np.ndarray:
    """(n_boot, n_clips) int: how often each clip is drawn in each resample."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_clips, size=(n_boot, n_clips))
    flat = idx + (np.arange(n_boot) * n_clips)[:, None]
    return np.bincount(flat.ravel(), minlength=n_boot * n_clips).reshape(n_boot, n_clips)


def resampled_recall(hits: np.ndarray, groups: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(n_boot, K) recall of each resample. ``hits`` (Q, K) bool: query q is a hit at
    the K-th cutoff; ``groups`` (Q,): the clip (column of ``weights``) of each query."""
    n_clips = weights.shape[1]
    per_clip = np.zeros((n_clips, hits.shape[1]))
    np.add.at(per_clip, groups, hits.astype(np.float64))
    queries = np.bincount(groups, minlength=n_clips).astype(np.float64)
    w = weights.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w @ per_clip) / (w @ queries)[:, None]


def interval(samples: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of ``samples`` (NaN resamples, with no query drawn, ignored)."""
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)

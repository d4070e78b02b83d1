"""``mmprep compare``: are two runs' retrieval results different beyond test-set noise?

Both runs (or groups of runs, e.g. three seeds each) are scored on the same clips; per
table and cutoff K the per-query hits of a group are averaged over its runs, and the
difference of R@K (A - B) is resampled with the *same* clip draws for both sides
(``mmprep.heads.bootstrap``). A difference is significant at 95% when its interval
excludes 0. The interval covers the choice of test clips; seed-to-seed variation is
only in it through the averaging over the runs given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmprep.errors import MmprepError
from mmprep.features.source import FeatureSource
from mmprep.heads.results import CompareResult


def _group_hits(runs: list[Path], features, split, device, pair_score, complete_only):
    """Per table: (mean hits over the runs (Q, K), query groups); and the clips."""
    from mmprep.device import resolve_device
    from mmprep.heads.evaluate import run_eval_clips, score_tables
    from mmprep.heads.metrics import RECALL_AT
    from mmprep.heads.model import load_heads

    dev = resolve_device(device)
    sums: dict[str, list] = {}
    clip_keys = None
    for run in runs:
        model, cfg, meta = load_heads(run)
        model.to(dev)
        mods = meta["modalities"]
        with FeatureSource(features, mods, loading=cfg.data.loading) as source:
            clips = run_eval_clips(source, cfg, meta, split, complete_only)
            keys = source.keys[clips]
            if clip_keys is not None and not np.array_equal(keys, clip_keys):
                raise MmprepError(f"{run} is evaluated on other clips than {runs[0]} (its "
                                  "modalities or settings differ); pass --split or "
                                  "--complete-only to compare on the same clips")
            clip_keys = keys
            tables, _ = score_tables(model, source, clips, mods, device=dev,
                                     pair_score=pair_score)
        for section in ("pairs", "tuples"):
            for name, (ranks, groups) in tables[section].items():
                hits = np.stack([ranks < k for k in RECALL_AT], 1).astype(np.float64)
                entry = sums.setdefault(name, [np.zeros_like(hits), groups, 0])
                entry[0] += hits
                entry[2] += 1
    return {k: (h / n, g) for k, (h, g, n) in sums.items() if n == len(runs)}, clip_keys


def compare_runs(runs_a: list[str | Path], runs_b: list[str | Path], features: str | Path,
                 *, split: str | None = None, device: str = "auto",
                 pair_score: str = "cosine", complete_only: bool | None = None,
                 n_boot: int = 1000, seed: int = 0) -> CompareResult:
    """Paired-bootstrap differences of R@1/5/10 between run groups A and B.

    Args:
        runs_a, runs_b: run folders of train-head (one or several each, e.g. seeds).
        features: the feature cache both are scored on.
        split: the split (default: the runs' eval rows; both must give the same clips).
        device, pair_score, complete_only: as ``evaluate_run``.
        n_boot: bootstrap resamples; seed: their seed.

    Returns per table (those both groups have) and cutoff: A, B, A - B, its 95%
    interval and whether it excludes 0.
    """
    from mmprep.heads.bootstrap import clip_weights, interval, resampled_recall
    from mmprep.heads.metrics import RECALL_AT

    runs_a, runs_b = [Path(r) for r in runs_a], [Path(r) for r in runs_b]
    if not runs_a or not runs_b:
        raise MmprepError("compare needs at least one run on each side")
    a, keys_a = _group_hits(runs_a, features, split, device, pair_score, complete_only)
    b, keys_b = _group_hits(runs_b, features, split, device, pair_score, complete_only)
    if not np.array_equal(keys_a, keys_b):
        raise MmprepError("the two runs are evaluated on different clips; pass --split or "
                          "--complete-only to compare on the same clips")
    weights = clip_weights(len(keys_a), n_boot, seed)
    tables = {}
    for name in [k for k in a if k in b]:
        (ha, groups), (hb, groups_b) = a[name], b[name]
        if not np.array_equal(groups, groups_b):
            continue
        ra, rb = resampled_recall(ha, groups, weights), resampled_recall(hb, groups, weights)
        row = {}
        for j, k in enumerate(RECALL_AT):
            lo, hi = interval(ra[:, j] - rb[:, j])
            va, vb = float(ha[:, j].mean()), float(hb[:, j].mean())
            row[f"R@{k}"] = {"a": va, "b": vb, "diff": va - vb, "ci": [lo, hi],
                             "significant": bool(lo > 0 or hi < 0)}
        row["queries"] = int(len(groups))
        row["clips"] = int(np.unique(groups).size)
        tables[name] = row
    return CompareResult(runs_a=[str(r) for r in runs_a], runs_b=[str(r) for r in runs_b],
                         features=str(features), clips=int(len(keys_a)), n_boot=n_boot,
                         tables=tables)

"""Retrieval metrics with the multi-caption convention.

Every query and gallery row carries a group id (its clip). A gallery row is correct for
a query when the groups match. The rank of a query is the number of *incorrect* gallery
rows scoring at least as high as its best-scoring correct row (0 = hit at 1). Ties
therefore count against the query, so a collapsed model whose scores all tie is at
chance, never perfect.

Multi-caption convention (text is item-level, several captions per clip):

* text -> clip: every caption is a query; it has exactly one correct clip.
* clip -> text: every clip is a query over all captions; it is correct at K if any of
  its captions ranks within the top K (its best caption counts).
"""

from __future__ import annotations

import numpy as np
import torch

RECALL_AT = (1, 5, 10)


def retrieval_ranks(scores_fn, n_queries: int, query_group: torch.Tensor,
                    gallery_group: torch.Tensor, *, chunk: int = 1024) -> torch.Tensor:
    """(Q,) ranks. ``scores_fn(start, stop)`` returns the (stop-start, G) scores of those
    queries (higher is better); chunks keep memory bounded."""
    out = []
    for start in range(0, n_queries, chunk):
        stop = min(start + chunk, n_queries)
        scores = scores_fn(start, stop)
        correct = query_group[start:stop, None] == gallery_group[None, :]
        if not bool(correct.any(1).all()):
            raise ValueError("every query needs at least one correct gallery row")
        best = scores.masked_fill(~correct, float("-inf")).amax(1, keepdim=True)
        out.append(((scores >= best) & ~correct).sum(1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def summarize(ranks: torch.Tensor, groups: np.ndarray | None = None,
              weights: np.ndarray | None = None) -> dict:
    """R@K, median and mean rank (1-based) and the query count; with the clip of each
    query (``groups``, columns of the bootstrap ``weights``) also the number of clips
    and a 95% bootstrap interval ``R@K_ci`` for each R@K (``mmprep.heads.bootstrap``)."""
    r = np.asarray(ranks.cpu().numpy() if hasattr(ranks, "cpu") else ranks, dtype=np.int64)
    out = {f"R@{k}": float((r < k).mean()) if r.size else float("nan") for k in RECALL_AT}
    out["median_rank"] = float(np.median(r + 1)) if r.size else float("nan")
    out["mean_rank"] = float((r + 1).mean()) if r.size else float("nan")
    out["queries"] = int(r.size)
    if groups is not None:
        from mmprep.heads.bootstrap import interval, resampled_recall

        out["clips"] = int(np.unique(groups).size)
        if weights is not None and r.size:
            hits = np.stack([r < k for k in RECALL_AT], 1)
            boot = resampled_recall(hits, groups, weights)
            for j, k in enumerate(RECALL_AT):
                out[f"R@{k}_ci"] = list(interval(boot[:, j]))
    return out


def chance_recall(gallery_size: int, k: int = 1, correct_per_query: float = 1.0) -> float:
    """Expected R@k of random scores (approximate for several correct rows)."""
    return min(1.0, k * correct_per_query / max(gallery_size, 1))


def pair_scores(query: torch.Tensor, gallery: torch.Tensor, score: str = "cosine"
                ) -> torch.Tensor:
    """cosine: q . g; volume: -sqrt(1 - (q . g)^2), the two-vector GRAM volume, which
    ignores the sign of either vector (as GRAM and PMRL objectives do)."""
    cos = query @ gallery.T
    if score == "cosine":
        return cos
    if score == "volume":
        return -(1 - cos * cos).clamp_min(0).sqrt()
    raise ValueError(f"unknown pair score {score!r} (cosine or volume)")


def pair_ranks(query: torch.Tensor, query_group: torch.Tensor, gallery: torch.Tensor,
               gallery_group: torch.Tensor, score: str = "cosine") -> torch.Tensor:
    """(Q,) ranks of retrieval between two sets of unit-norm embeddings."""
    return retrieval_ranks(lambda a, b: pair_scores(query[a:b], gallery, score),
                           query.shape[0], query_group, gallery_group)


def pair_metrics(query: torch.Tensor, query_group: torch.Tensor, gallery: torch.Tensor,
                 gallery_group: torch.Tensor, score: str = "cosine") -> dict[str, float]:
    """Retrieval between two sets of unit-norm embeddings (see :func:`pair_scores`)."""
    return summarize(pair_ranks(query, query_group, gallery, gallery_group, score))


def tuple_metrics(anchor: torch.Tensor, anchor_group: torch.Tensor,
                  others: list[torch.Tensor]) -> dict[str, dict[str, float]]:
    """Anchor -> tuple and tuple -> anchor retrieval scored by -GRAM volume. Tuple j
    is (others[0][j], others[1][j], ...), one per clip, group j."""
    return {k: summarize(r) for k, r in tuple_ranks(anchor, anchor_group, others).items()}


def tuple_ranks(anchor: torch.Tensor, anchor_group: torch.Tensor,
                others: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Ranks of anchor -> tuple (``forward``, one per anchor row) and tuple -> anchor
    (``backward``, one per tuple j) retrieval by -GRAM volume."""
    from mmprep.heads.losses import gram_volumes

    n = others[0].shape[0]
    tuple_group = torch.arange(n, device=anchor.device)
    fwd = retrieval_ranks(lambda a, b: -gram_volumes(anchor[a:b], *others), anchor.shape[0],
                          anchor_group, tuple_group)
    # tuple -> anchor: volumes are symmetric in the vectors, so score the transpose
    bwd = retrieval_ranks(lambda a, b: -gram_volumes(anchor, *[o[a:b] for o in others]).T, n,
                          tuple_group, anchor_group)
    return {"forward": fwd, "backward": bwd}

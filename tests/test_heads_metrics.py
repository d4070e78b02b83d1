"""Retrieval metrics on small hand-computed cases."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmprep.heads.metrics import pair_metrics, retrieval_ranks, summarize, tuple_metrics
from mmprep.heads.reference import gram_volumes_naive


def ranks_of(scores, qg, gg, chunk=1024):
    scores = torch.tensor(scores, dtype=torch.float64)
    return retrieval_ranks(lambda a, b: scores[a:b], scores.shape[0], torch.tensor(qg),
                           torch.tensor(gg), chunk=chunk).tolist()


def test_one_to_one_ranks():
    scores = [[0.9, 0.1, 0.2],   # correct (0) is best -> rank 0
              [0.8, 0.5, 0.7],   # correct 0.5; 0.8 and 0.7 above -> rank 2
              [0.1, 0.6, 0.3]]   # correct 0.3; 0.6 above -> rank 1
    assert ranks_of(scores, [0, 1, 2], [0, 1, 2]) == [0, 2, 1]
    assert ranks_of(scores, [0, 1, 2], [0, 1, 2], chunk=2) == [0, 2, 1]


def test_ties_count_against_the_query():
    # a collapsed model: every score equal -> every query at the last place
    assert ranks_of([[0.5] * 4] * 4, [0, 1, 2, 3], [0, 1, 2, 3]) == [3, 3, 3, 3]
    assert ranks_of([[0.7, 0.7, 0.1]], [0], [0, 1, 2]) == [1]


def test_clip_to_text_counts_the_best_caption():
    # clips 0, 1; captions 0, 1 belong to clip 0 and caption 2 to clip 1
    scores = [[0.1, 0.9, 0.5],   # clip 0: its caption 1 is top -> rank 0
              [0.8, 0.7, 0.75]]  # clip 1: its caption (0.75) is below caption 0 -> rank 1
    assert ranks_of(scores, [0, 1], [0, 0, 1]) == [0, 1]
    # a clip's other captions never count against it
    assert ranks_of([[0.9, 0.8, 0.1]], [0], [0, 0, 1]) == [0]
    assert ranks_of([[0.3, 0.8, 0.9]], [0], [0, 0, 1]) == [1]


def test_text_to_clip_every_caption_is_a_query():
    # captions owned by clips 0, 0, 1; gallery: 2 clips
    scores = [[0.9, 0.2],   # caption of clip 0 -> rank 0
              [0.3, 0.4],   # caption of clip 0 -> rank 1
              [0.5, 0.6]]   # caption of clip 1 -> rank 0
    r = ranks_of(scores, [0, 0, 1], [0, 1])
    assert r == [0, 1, 0]
    s = summarize(torch.tensor(r))
    assert s["R@1"] == pytest.approx(2 / 3)
    assert s["R@5"] == 1.0
    assert s["median_rank"] == 1.0
    assert s["mean_rank"] == pytest.approx(4 / 3)
    assert s["queries"] == 3


def test_summary_median_and_recall_at_k():
    s = summarize(torch.tensor([0, 4, 5, 9, 10, 20]))
    assert s["R@1"] == pytest.approx(1 / 6)
    assert s["R@5"] == pytest.approx(2 / 6)
    assert s["R@10"] == pytest.approx(4 / 6)
    assert s["median_rank"] == 8.0  # 1-based ranks 1 5 6 10 11 21


def test_query_without_a_correct_row_is_an_error():
    with pytest.raises(ValueError):
        ranks_of([[0.1, 0.2]], [5], [0, 1])


def test_pair_metrics_use_cosine():
    q = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=1)
    g = F.normalize(torch.tensor([[1.0, 0.1], [1.0, 0.2]]), dim=1)
    m = pair_metrics(q, torch.tensor([0, 1]), g, torch.tensor([0, 1]))
    assert m["R@1"] == 1.0  # q1 prefers g1 (larger y); q0 prefers g0


def test_tuple_metrics_match_brute_force_volumes():
    g = torch.Generator().manual_seed(0)
    anchor = F.normalize(torch.randn(7, 6, generator=g, dtype=torch.float64), dim=1)
    others = [F.normalize(torch.randn(4, 6, generator=g, dtype=torch.float64), dim=1)
              for _ in range(2)]
    groups = torch.tensor([0, 0, 1, 2, 3, 3, 3])  # several anchors (captions) per tuple
    res = tuple_metrics(anchor, groups, others)
    vol = gram_volumes_naive(anchor, *others)  # (7, 4)
    fwd = [int(((vol[i] <= vol[i, groups[i]]) & (torch.arange(4) != groups[i])).sum())
           for i in range(7)]
    bwd = []
    for j in range(4):
        mine = groups == j
        best = vol[mine, j].min()
        bwd.append(int(((vol[:, j] <= best) & ~mine).sum()))
    assert res["forward"]["R@1"] == pytest.approx(sum(r == 0 for r in fwd) / 7)
    assert res["forward"]["mean_rank"] == pytest.approx(sum(r + 1 for r in fwd) / 7)
    assert res["backward"]["mean_rank"] == pytest.approx(sum(r + 1 for r in bwd) / 4)


def test_volume_pair_score_ignores_the_sign():
    q = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=1)
    g = -F.normalize(torch.tensor([[1.0, 0.1], [0.1, 1.0]]), dim=1)  # flipped matches
    groups = torch.tensor([0, 1])
    assert pair_metrics(q, groups, g, groups)["R@1"] == 0.0  # cosine: last place
    assert pair_metrics(q, groups, g, groups, score="volume")["R@1"] == 1.0
    with pytest.raises(ValueError):
        pair_metrics(q, groups, g, groups, score="dot")
